//! `refract deploy`: build a guest folder (a Rust crate, a JavaScript/TypeScript package or a
//! Python project: see the `build` module) or take a `.wasm`, create or update its automation
//! from a small manifest, and upload the component (streamed, with a progress bar on a
//! terminal).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::{Api, ApiError};
use crate::build;
use crate::commands::segment;
use crate::{output, progress};

/// The manifest in a guest folder (`refract.toml`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Manifest {
    /// The automation's slug in the workspace: what identifies it on a later deploy.
    pub slug: String,
    /// Its display name.
    pub name: String,
    /// Its description.
    #[serde(default)]
    pub description: Option<String>,
    /// `{events?, schedules?, endpoint?}` as in the automation object.
    #[serde(default)]
    pub when: Option<toml::Table>,
    /// The automation's configuration object, as the guest reads it.
    #[serde(default)]
    pub config: Option<toml::Table>,
    /// `{memoryMiB?, timeoutMs?}`.
    #[serde(default)]
    pub limits: Option<toml::Table>,
}

/// The arguments of `refract deploy`.
pub(crate) struct Deploy {
    /// A guest folder (a Rust crate or an npm package, built here) or a `.wasm` file.
    pub path: PathBuf,
    /// The manifest; `refract.toml` in the guest folder by default.
    pub manifest: Option<PathBuf>,
    /// The workspace id.
    pub workspace: String,
    /// Print the automation as uploaded (JSON) instead of its webhook URL.
    pub json: bool,
    /// Draw the upload's progress bar on stderr.
    pub progress: bool,
    /// The command's environment (the Python build reads `REFRACT_PYTHON`, `VIRTUAL_ENV` and
    /// `PYTHONPATH` from it).
    pub env: std::collections::HashMap<String, String>,
}

/// Builds the component if needed, creates the automation (or updates the one with the
/// manifest's slug) and uploads the component, through `api`; prints the webhook URL when the
/// automation has an endpoint (or, with `json`, the automation as uploaded).
pub(crate) async fn deploy(
    api: &Api,
    args: Deploy,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    let manifest_path = match &args.manifest {
        Some(p) => p.clone(),
        None if args.path.is_dir() => args.path.join("refract.toml"),
        None => bail!("a .wasm file needs --manifest <refract.toml>"),
    };
    let text = std::fs::read_to_string(&manifest_path)
        .with_context(|| format!("reading the manifest {}", manifest_path.display()))?;
    let manifest: Manifest = toml::from_str(&text)
        .with_context(|| format!("parsing the manifest {}", manifest_path.display()))?;

    let (wasm_path, language) = if args.path.is_dir() {
        let (language, wasm) = build::build(&args.path, &args.env)?;
        (wasm, Some(language.header()))
    } else {
        (args.path.clone(), None)
    };
    let wasm =
        std::fs::read(&wasm_path).with_context(|| format!("reading {}", wasm_path.display()))?;
    let language = language.unwrap_or_else(|| build::language_of_component(&wasm));
    eprintln!(
        "component: {} ({} bytes, {language})",
        wasm_path.display(),
        wasm.len()
    );

    let automations = format!("/v2/workspaces/{}/automations", segment(&args.workspace));
    let automation = format!("{automations}/{}", segment(&manifest.slug));
    let mut body = json!({
        "slug": manifest.slug,
        "name": manifest.name,
        "component": { "limits": manifest.limits.clone().map(toml_to_json).unwrap_or(json!({})) },
    });
    if let Some(d) = &manifest.description {
        body["description"] = json!(d);
    }
    if let Some(when) = manifest.when.clone() {
        body["when"] = toml_to_json(when);
    }
    if let Some(config) = manifest.config.clone() {
        body["config"] = toml_to_json(config);
    }

    match api
        .call::<Value>(Method::POST, &automations, Some(&body))
        .await
    {
        Ok(_) => eprintln!("automation {} created", manifest.slug),
        Err(e) if ApiError::has_status(&e, StatusCode::CONFLICT) => {
            eprintln!("automation {} exists: updating it", manifest.slug);
            let mut patch = body.clone();
            if let Some(map) = patch.as_object_mut() {
                map.remove("slug");
                map.remove("component");
            }
            api.call::<Value>(Method::PATCH, &automation, Some(&patch))
                .await?;
        }
        Err(e) => return Err(e),
    }

    let bar = progress::bar(wasm.len() as u64, "uploading the component", args.progress);
    let mut upload = progress::upload_bytes(wasm.into(), "application/wasm", &bar);
    upload
        .headers
        .push(("x-refract-component-language", language.to_owned()));
    let uploaded: anyhow::Result<Value> = api
        .upload(Method::PUT, &format!("{automation}/component"), upload)
        .await;
    bar.finish_and_clear();
    let uploaded = uploaded?;
    let digest = uploaded
        .pointer("/component/digest")
        .and_then(Value::as_str)
        .unwrap_or("?");
    eprintln!("component uploaded: {digest}");
    if args.json {
        return output::json(out, &uploaded);
    }
    let endpoint = match manifest.when.as_ref().and_then(|w| w.get("endpoint")) {
        Some(toml::Value::Boolean(true)) => Some(manifest.slug.clone()),
        Some(toml::Value::String(name)) => Some(name.clone()),
        _ => None,
    };
    if let Some(endpoint) = endpoint {
        writeln!(
            out,
            "{}/v2/workspaces/{}/webhooks/{endpoint}",
            api.base(),
            args.workspace
        )?;
    }
    Ok(())
}

fn toml_to_json(table: toml::Table) -> Value {
    serde_json::to_value(table).unwrap_or(Value::Null)
}
