//! Apps and app instances (`automation-dsl.md` §8, `http-api.md` §11): the documents the
//! workspaces service writes and the runtime reads, and the rules both sides apply the same
//! way (config merging, secret redaction, call and event namespacing).
//!
//! An app is a published, versioned copy of a workspace. Each [`AppVersion`] is an immutable
//! snapshot (automations with their DSL documents and component digests, default config,
//! the app instances it installs itself); [`App::current_version`] is the `current` alias.
//! An [`AppInstance`] installs an app in a workspace under its own slug and config.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ValidationError;
use crate::model::Automation;

/// Most app levels one workspace may nest (`crm.mailer.smtp`…): a bound on materializing.
pub const MAX_APP_DEPTH: u32 = 8;

/// What a secret config field reads as (`http-api.md` §11).
pub const REDACTED: &str = "REDACTED";

/// A published app, by slug.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct App {
    /// The app's slug, unique on the platform: what instances name it by.
    pub slug: String,
    /// Localized display name: a string or `{lang: text}`.
    pub name: Value,
    /// Localized description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Value>,
    /// Free-form labels for the app store.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// URL of the app's picture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub photo: Option<String>,
    /// The source workspace (the one published).
    pub workspace_id: String,
    /// The config schema: a map name → TypedArgument (`automation-dsl.md` §2.4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_schema: Option<Value>,
    /// The latest published version, what `current` means.
    pub current_version: u32,
    /// Every published version, oldest first.
    #[serde(default)]
    pub versions: Vec<AppVersionMeta>,
    /// When the app was first published.
    pub created_at: DateTime<Utc>,
    /// When a version was last published.
    pub updated_at: DateTime<Utc>,
    /// The user id that first published it.
    pub created_by: String,
}

/// One published version in an app's list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AppVersionMeta {
    /// The version number, from 1.
    pub version: u32,
    /// The workspace version it was published from, if named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_version: Option<String>,
    /// When it was published.
    pub created_at: DateTime<Utc>,
}

/// What a workspace holds at one moment: the part of it an app version or a workspace
/// version keeps.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    /// The workspace's `config` (`{schema?, value?}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Value>,
    /// The workspace's automations.
    #[serde(default)]
    pub automations: Vec<Automation>,
    /// The app instances the workspace installs (nested apps).
    #[serde(default)]
    pub imports: Vec<AppInstance>,
}

impl Snapshot {
    /// The default config value (`config.value`), an object.
    pub fn default_config(&self) -> Value {
        match self.config.as_ref().and_then(|c| c.get("value")) {
            Some(v @ Value::Object(_)) => v.clone(),
            _ => Value::Object(Map::new()),
        }
    }
}

/// An immutable version of an app, by `<appSlug>@<version>` ([`app_version_doc_id`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppVersion {
    /// The app it is a version of.
    pub app_slug: String,
    /// The version number, from 1.
    pub version: u32,
    /// The workspace it was published from.
    pub workspace_id: String,
    /// The workspace version it was published from, if named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_version: Option<String>,
    /// What the version runs: config, automations and nested app instances.
    pub snapshot: Snapshot,
    /// When it was published.
    pub created_at: DateTime<Utc>,
}

/// A named version of a workspace (`POST …/versions`), by `<workspaceId>@<name>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceVersion {
    /// The versioned workspace.
    pub workspace_id: String,
    /// The version's name, unique in the workspace.
    pub name: String,
    /// Localized description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Value>,
    /// Where the version was pushed to, if anywhere (a repository reference, stored as given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<Value>,
    /// The workspace's contents at that moment.
    pub snapshot: Snapshot,
    /// When the version was made.
    pub created_at: DateTime<Utc>,
    /// The user id that made it.
    pub created_by: String,
}

/// An app installed in a workspace (`AppInstance`, `imports/<slug>.yml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AppInstance {
    /// The instance's slug in the workspace: its events and calls are prefixed with it.
    pub slug: String,
    /// The installed app.
    pub app_slug: String,
    /// The pinned version; absent follows `current`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_version: Option<u32>,
    /// A disabled instance's automations do not run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
    /// Free-form labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// The instance's own config, overlaid on the app's default (§8.2).
    #[serde(default = "empty_object")]
    pub config: Value,
    /// The app's name, copied at install for display.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_name: Option<Value>,
    /// When the app was installed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
    /// When the instance last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

/// Document id of an app version.
pub fn app_version_doc_id(app_slug: &str, version: u32) -> String {
    format!("{app_slug}@{version}")
}

/// Document id of an app instance.
pub fn app_instance_doc_id(workspace: &str, slug: &str) -> String {
    format!("{workspace}:{slug}")
}

/// Document id of a workspace version.
pub fn workspace_version_doc_id(workspace: &str, name: &str) -> String {
    format!("{workspace}@{name}")
}

/// An instance's config: the app's default overlaid, key by key, by the instance's own
/// (`automation-dsl.md` §8.2).
pub fn instance_config(default: &Value, own: &Value) -> Value {
    let mut merged = match default {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    if let Value::Object(own) = own {
        for (k, v) in own {
            merged.insert(k.clone(), v.clone());
        }
    }
    Value::Object(merged)
}

/// The names of the `secret: true` fields of a config schema (TypedArgument map).
pub fn secret_fields(schema: Option<&Value>) -> Vec<String> {
    schema
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter(|(_, arg)| arg.get("secret").and_then(Value::as_bool) == Some(true))
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// `config` with its secret fields (per `schema`) read as [`REDACTED`].
pub fn redact(config: &Value, schema: Option<&Value>) -> Value {
    let mut out = config.clone();
    if let Value::Object(m) = &mut out {
        for name in secret_fields(schema) {
            if let Some(v) = m.get_mut(&name) {
                *v = Value::String(REDACTED.into());
            }
        }
    }
    out
}

/// Splits a call target at its first `.`: `mailer.send` → `(Some("mailer"), "send")`,
/// `send` → `(None, "send")` (`automation-dsl.md` §3.15).
pub fn split_call(target: &str) -> (Option<&str>, &str) {
    match target.split_once('.') {
        Some((instance, automation)) => (Some(instance), automation),
        None => (None, target),
    }
}

/// Checks an app instance slug: an automation slug that is not a reserved event namespace
/// (the instance's events are typed `<slug>.<event>`, so an instance named `workspaces` would
/// emit the platform's events and hear them as its own).
pub fn check_instance_slug(slug: &str) -> Result<(), ValidationError> {
    crate::model::check_automation_slug(slug)?;
    if crate::platform::is_reserved_namespace(slug) {
        return Err(ValidationError::invalid(
            "slug",
            format!("{slug:?} is a system event namespace"),
        ));
    }
    Ok(())
}

/// The full slug of instance `slug` under `parent` (`None` for the workspace itself).
pub fn full_slug(parent: Option<&str>, slug: &str) -> String {
    match parent {
        Some(p) => format!("{p}.{slug}"),
        None => slug.to_owned(),
    }
}

/// Reads an `appVersion` as given in a request or a document: a number, a numeric string,
/// `current` or null (both follow the latest). `Err` names what is wrong.
pub fn parse_app_version(value: &Value) -> Result<Option<u32>, String> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) if s == "current" || s == "latest" => Ok(None),
        Value::String(s) => s
            .parse::<u32>()
            .map(Some)
            .map_err(|_| format!("{s:?} is not a version number or \"current\"")),
        Value::Number(n) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| format!("{n} is not a version number")),
        _ => Err("must be a version number or \"current\"".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn instance_config_overlays_top_level_keys_and_secrets_are_redacted() {
        let merged = instance_config(
            &json!({"greeting": "hi", "nested": {"a": 1}}),
            &json!({"nested": {"b": 2}, "token": "t"}),
        );
        assert_eq!(
            merged,
            json!({"greeting": "hi", "nested": {"b": 2}, "token": "t"})
        );
        let schema =
            json!({"token": {"type": "string", "secret": true}, "greeting": {"type": "string"}});
        assert_eq!(redact(&merged, Some(&schema))["token"], json!(REDACTED));
        assert_eq!(redact(&merged, Some(&schema))["greeting"], json!("hi"));
    }

    #[test]
    fn calls_split_at_the_first_dot_and_versions_parse() {
        assert_eq!(split_call("mailer.send"), (Some("mailer"), "send"));
        assert_eq!(split_call("send"), (None, "send"));
        assert_eq!(split_call("a.b.c"), (Some("a"), "b.c"));
        assert_eq!(full_slug(Some("crm"), "mailer"), "crm.mailer");
        assert_eq!(parse_app_version(&json!("current")), Ok(None));
        assert_eq!(parse_app_version(&json!(3)), Ok(Some(3)));
        assert_eq!(parse_app_version(&json!("2")), Ok(Some(2)));
        assert!(parse_app_version(&json!("x")).is_err());
        assert!(parse_app_version(&json!(-1)).is_err());
    }
}
