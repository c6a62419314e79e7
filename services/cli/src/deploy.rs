//! `refract deploy`: build a guest crate (or take a `.wasm`), create or update its automation
//! from a small manifest, and upload the component (streamed, with a progress bar on a
//! terminal).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::{Api, ApiError};
use crate::commands::segment;
use crate::{output, progress};

/// The manifest beside a guest crate (`refract.toml`).
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
    /// A guest crate folder (built here) or a `.wasm` file.
    pub path: PathBuf,
    /// The manifest; `refract.toml` in the crate folder by default.
    pub manifest: Option<PathBuf>,
    /// The workspace id.
    pub workspace: String,
    /// Print the automation as uploaded (JSON) instead of its webhook URL.
    pub json: bool,
    /// Draw the upload's progress bar on stderr.
    pub progress: bool,
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

    let wasm_path = if args.path.is_dir() {
        build(&args.path)?
    } else {
        args.path.clone()
    };
    let wasm =
        std::fs::read(&wasm_path).with_context(|| format!("reading {}", wasm_path.display()))?;
    eprintln!("component: {} ({} bytes)", wasm_path.display(), wasm.len());

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
        .push(("x-refract-component-language", "rust".to_owned()));
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

/// Builds the guest crate in `dir` for wasm32-wasip2 (release) and returns its `.wasm`.
fn build(dir: &Path) -> anyhow::Result<PathBuf> {
    eprintln!("building {} for wasm32-wasip2 …", dir.display());
    let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--message-format=json-render-diagnostics",
        ])
        .current_dir(dir)
        .stderr(Stdio::inherit())
        .output()
        .context(
            "running cargo (is the Rust toolchain installed? `rustup target add wasm32-wasip2`)",
        )?;
    if !output.status.success() {
        bail!("cargo build failed in {}", dir.display());
    }
    let manifest = std::fs::canonicalize(dir.join("Cargo.toml"))
        .with_context(|| format!("{} has no Cargo.toml", dir.display()))?;
    let mut found = None;
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if message["reason"] != "compiler-artifact"
            || message["manifest_path"].as_str() != manifest.to_str()
        {
            continue;
        }
        if let Some(files) = message["filenames"].as_array() {
            found = files
                .iter()
                .filter_map(Value::as_str)
                .find(|f| f.ends_with(".wasm"))
                .map(PathBuf::from)
                .or(found);
        }
    }
    found.context("the build produced no .wasm: is the crate a cdylib?")
}

fn toml_to_json(table: toml::Table) -> Value {
    serde_json::to_value(table).unwrap_or(Value::Null)
}
