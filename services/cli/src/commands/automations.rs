//! `refract automations list|get|apply|versions|rollback`: a workspace's automations through
//! `…/automations`, `…/automations/{slug}` and its versions.
//!
//! `apply -f FILE` makes a DSL automation what the file says: created (`POST`) when its slug is
//! new, else updated (`PATCH`) with the members the file leaves out cleared, so the same file
//! applied twice changes nothing (and keeps no second version).

use std::path::Path;

use anyhow::{Context, bail};
use refract_core::model::{Schedule, When};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{AutomationsCommand, Call, Console, InWorkspace, segment};
use crate::api::{Api, ApiError, all_pages};
use crate::output;

/// What a PATCH from `apply` sends for a member its file leaves out: the member's "absent".
const CLEARED: &[(&str, Value)] = &[
    ("description", Value::Null),
    ("labels", Value::Null),
    ("when", Value::Null),
    ("arguments", Value::Null),
    ("validateArguments", Value::Bool(false)),
    ("retry", Value::Null),
    ("authorizations", Value::Null),
    ("config", Value::Null),
    ("output", Value::Null),
    ("disabled", Value::Bool(false)),
    ("private", Value::Bool(false)),
];

/// The members of an automation (or one of its versions) the CLI prints.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Listed {
    slug: String,
    #[serde(default)]
    name: Value,
    #[serde(default)]
    description: Value,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    when: Option<When>,
    #[serde(default)]
    disabled: bool,
    #[serde(default)]
    updated_at: String,
    #[serde(default)]
    updated_by: String,
    /// In a version listing only.
    #[serde(default)]
    version: Option<u64>,
}

/// `GET …/versions`.
#[derive(Deserialize)]
struct Versions {
    versions: Vec<Value>,
    next: u64,
}

/// The workspace's automations path.
fn automations(workspace: &str) -> String {
    format!("/v2/workspaces/{}/automations", segment(workspace))
}

/// One automation's path.
fn automation(workspace: &str, slug: &str) -> String {
    format!("{}/{}", automations(workspace), segment(slug))
}

fn decode(value: &Value) -> anyhow::Result<Listed> {
    Listed::deserialize(value).context("an automation in the platform's answer")
}

/// Runs one `refract automations` command.
pub(super) async fn run(
    command: AutomationsCommand,
    console: &mut Console<'_>,
) -> anyhow::Result<()> {
    let at = match &command {
        AutomationsCommand::List(at)
        | AutomationsCommand::Get { at, .. }
        | AutomationsCommand::Apply { at, .. }
        | AutomationsCommand::Versions { at, .. }
        | AutomationsCommand::Rollback { at, .. } => at.clone(),
    };
    let InWorkspace { conn, workspace } = at;
    let call = Call::new(console, &conn, workspace.as_deref())?;
    let api = call.api()?;
    let ws = call.workspace()?.to_owned();
    let out = &mut *console.stdout;
    match command {
        AutomationsCommand::List(_) => {
            let found: Vec<Value> = all_pages(&api, &automations(&ws)).await?;
            if conn.json {
                return output::json(out, &found);
            }
            let mut rows = Vec::with_capacity(found.len());
            for value in &found {
                let a = decode(value)?;
                let mut kind = a.kind.clone();
                if a.disabled {
                    kind.push_str(" (disabled)");
                }
                rows.push(vec![
                    a.slug.clone(),
                    output::text(&a.name),
                    kind,
                    triggers(&a),
                    a.updated_at,
                ]);
            }
            output::table(out, &["SLUG", "NAME", "KIND", "TRIGGERS", "UPDATED"], rows)
        }
        AutomationsCommand::Get { slug, .. } => {
            let found: Value = api.get(&automation(&ws, &slug), &[]).await?;
            if conn.json {
                return output::json(out, &found);
            }
            let yaml =
                serde_yaml_ng::to_string(&found).context("writing the automation as YAML")?;
            out.write_all(yaml.as_bytes())?;
            Ok(())
        }
        AutomationsCommand::Apply { file, .. } => {
            let (slug, document) = read_automation(&file)?;
            let (created, saved) = apply(&api, &ws, &slug, document).await?;
            if conn.json {
                return output::json(out, &saved);
            }
            let a = decode(&saved)?;
            let verb = if created { "Created" } else { "Updated" };
            writeln!(out, "{verb} automation {}.", a.slug)?;
            if let Some(name) = a.when.as_ref().and_then(|w| w.endpoint_name(&a.slug)) {
                writeln!(
                    out,
                    "Webhook: {}/v2/workspaces/{ws}/webhooks/{name}",
                    api.base()
                )?;
            }
            Ok(())
        }
        AutomationsCommand::Versions { slug, .. } => {
            let found: Value = api
                .get(&format!("{}/versions", automation(&ws, &slug)), &[])
                .await?;
            if conn.json {
                return output::json(out, &found);
            }
            let listing = Versions::deserialize(&found).context("the version listing")?;
            let mut rows = Vec::with_capacity(listing.versions.len());
            for value in &listing.versions {
                let v = decode(value)?;
                rows.push(vec![
                    v.version.map(|n| n.to_string()).unwrap_or_default(),
                    v.updated_at,
                    v.updated_by,
                    output::text(&v.description),
                ]);
            }
            output::table(out, &["VERSION", "SAVED", "BY", "DESCRIPTION"], rows)?;
            writeln!(out, "The next save is kept as version {}.", listing.next)?;
            Ok(())
        }
        AutomationsCommand::Rollback { slug, version, .. } => {
            let path = format!("{}/versions/{version}/restore", automation(&ws, &slug));
            let restored: Value = api.call(Method::POST, &path, None).await?;
            if conn.json {
                return output::json(out, &restored);
            }
            writeln!(
                out,
                "Restored automation {slug} to version {version} (what it replaced is kept as a \
                 version too)."
            )?;
            Ok(())
        }
    }
}

/// The slug and document of an automation file: YAML (JSON is YAML) holding one mapping; the
/// slug is its `slug`, else the file's name without extension.
fn read_automation(file: &Path) -> anyhow::Result<(String, Map<String, Value>)> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let document: Value = serde_yaml_ng::from_str(&text)
        .with_context(|| format!("{} is not YAML", file.display()))?;
    let Value::Object(document) = document else {
        bail!(
            "{} must hold one automation (a mapping of its members)",
            file.display()
        );
    };
    let slug = match document.get("slug") {
        Some(Value::String(slug)) => slug.clone(),
        Some(other) => bail!("{}: slug must be a string, not {other}", file.display()),
        None => file
            .file_stem()
            .and_then(|s| s.to_str())
            .filter(|s| !s.is_empty())
            .with_context(|| format!("{} has no slug and no usable name", file.display()))?
            .to_owned(),
    };
    Ok((slug, document))
}

/// Creates the automation `slug` from `document`, or updates it when it exists; whether it was
/// created, and the automation as saved.
async fn apply(
    api: &Api,
    ws: &str,
    slug: &str,
    mut document: Map<String, Value>,
) -> anyhow::Result<(bool, Value)> {
    let path = automation(ws, slug);
    match api.get::<Value>(&path, &[]).await {
        Ok(_) => {
            document.remove("slug");
            for (member, absent) in CLEARED {
                if !document.contains_key(*member) {
                    document.insert((*member).to_owned(), absent.clone());
                }
            }
            let saved = api
                .call(Method::PATCH, &path, Some(&Value::Object(document)))
                .await?;
            Ok((false, saved))
        }
        Err(e) if ApiError::has_status(&e, StatusCode::NOT_FOUND) => {
            document.insert("slug".into(), json!(slug));
            let saved = api
                .call(
                    Method::POST,
                    &automations(ws),
                    Some(&Value::Object(document)),
                )
                .await?;
            Ok((true, saved))
        }
        Err(e) => Err(e),
    }
}

/// What starts an automation, in a few words: `endpoint:name`, its events, its schedules.
fn triggers(a: &Listed) -> String {
    let Some(when) = &a.when else {
        return String::new();
    };
    let mut parts = Vec::new();
    if let Some(name) = when.endpoint_name(&a.slug) {
        parts.push(format!("endpoint:{name}"));
    }
    parts.extend(when.events.iter().map(|e| format!("event:{e}")));
    parts.extend(when.schedules.iter().map(|s| match s {
        Schedule::Utc(cron) => format!("cron:{cron}"),
        Schedule::Zoned { cron, timezone } => format!("cron:{cron} {timezone}"),
    }));
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_automation_file_names_its_slug_or_takes_its_file_name() {
        let dir = std::env::temp_dir().join(format!("refract-apply-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let named = dir.join("whatever.yml");
        std::fs::write(&named, "slug: hello\nname: Hello\ndo: []\n").unwrap();
        let (slug, doc) = read_automation(&named).unwrap();
        assert_eq!(slug, "hello");
        assert_eq!(doc["name"], "Hello");
        let unnamed = dir.join("greet.yaml");
        std::fs::write(&unnamed, "name: Greet\ndo: []\n").unwrap();
        assert_eq!(read_automation(&unnamed).unwrap().0, "greet");
        let list = dir.join("list.yml");
        std::fs::write(&list, "- a\n- b\n").unwrap();
        assert!(read_automation(&list).is_err());
        let numbered = dir.join("n.yml");
        std::fs::write(&numbered, "slug: 3\n").unwrap();
        assert!(read_automation(&numbered).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn triggers_read_as_one_line() {
        let a: Listed = serde_json::from_value(json!({"slug": "s", "kind": "dsl",
            "when": {"endpoint": true, "events": ["a.b"],
                "schedules": ["0 * * * *", {"cron": "0 9 * * *", "timezone": "Europe/Paris"}]}}))
        .unwrap();
        assert_eq!(
            triggers(&a),
            "endpoint:s, event:a.b, cron:0 * * * *, cron:0 9 * * * Europe/Paris"
        );
    }
}
