//! Schemas of the answers (and a few request bodies) the handlers build as JSON values rather
//! than serialize from a type: the OpenAPI document describes them with these types, which
//! are never serialized themselves. A comment above each one names the function that builds
//! the shape it describes (not in its doc, which becomes the schema's description): keep the
//! two together.
//!
//! Where a shape is the model type plus members (`AutomationMeta + version`, `App + version`),
//! the type flattens the model type (an `allOf` in the document). `AutomationMeta` and
//! `WorkspaceMeta` are described by [`Automation`] and [`Workspace`], whose members they leave
//! out (`do`, `output`, `component.imports`; `config`) are optional there.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use refract_core::apps::{App, AppInstance};
use refract_core::model::{Automation, AutomationKind, Workspace};
use refract_core::permissions::{Authorizations, PermissionRule};
use serde::Serialize;
use serde_json::Value;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::{IntoParams, PartialSchema, ToSchema};

/// Bytes that are not JSON: a zip archive, a WebAssembly component.
pub struct Binary;

impl PartialSchema for Binary {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .into()
    }
}

impl ToSchema for Binary {}

/// `page` and `limit` of a list's query (`spec/http-api.md` §1.3).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// The page, from 0.
    pub page: Option<u32>,
    /// Items per page, 1 to 100 (default 20; larger values are clamped).
    pub limit: Option<u32>,
}

/// `{id}`: what a deletion answers (the deleted object's id, slug or name).
#[derive(Serialize, ToSchema)]
pub struct Deleted {
    /// The id (or slug, name, member) of what was deleted.
    pub id: String,
}

/// `{slug}`: what deleting an automation answers.
// Built by `crate::automations::remove`.
#[derive(Serialize, ToSchema)]
pub struct DeletedAutomation {
    /// The deleted automation's slug.
    pub slug: String,
}

/// `{secretName}`: what deleting a secret answers.
// Built by `crate::secrets::remove`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeletedSecret {
    /// The deleted secret's name.
    pub secret_name: String,
}

/// `WorkspaceDetail`: the workspace, its automations'
/// metadata by slug, and (always empty) `imports` and `pages`.
// Built by `crate::workspaces::get_one`.
#[derive(Serialize, ToSchema)]
pub struct WorkspaceDetail {
    /// The workspace.
    #[serde(flatten)]
    pub workspace: Workspace,
    /// `AutomationMeta` by slug: the automations without `do`, `output`, `component.imports`.
    pub automations: BTreeMap<String, Automation>,
    /// Always `{}` (app instances are read from `…/apps`).
    #[schema(value_type = Object)]
    pub imports: Value,
    /// Always `{}`.
    #[schema(value_type = Object)]
    pub pages: Value,
}

/// The members a workspace create or `PATCH` body may have.
/// Read-only members of the answer (`id` unchanged, `createdAt`, `updatedAt`, `createdBy`,
/// `automations`, `imports`, `pages`) are accepted and ignored; any other member is a 400.
// Read by `crate::workspaces::apply`.
#[derive(Serialize, ToSchema)]
pub struct WorkspaceInput {
    /// A DNS label, not reserved; generated (`adjective-noun-NN`) when absent at creation.
    pub slug: Option<String>,
    /// Required at creation: a string or `{lang: text}` (2–60 characters each).
    pub name: Option<Value>,
    /// A string or `{lang: text}`; `null` removes it.
    pub description: Option<Value>,
    /// URL of the workspace's picture; `null` removes it.
    pub photo: Option<String>,
    /// At most 20 labels matching `^[0-9A-Za-z._:-]{2,60}$`; `null` clears them.
    pub labels: Option<Vec<String>>,
    /// `{schema?, value?}`; `null` removes it.
    #[schema(value_type = Option<Object>)]
    pub config: Option<Value>,
}

/// An automation version as listed: its `AutomationMeta` as it was, with its number.
#[derive(Serialize, ToSchema)]
pub struct AutomationVersionMeta {
    /// The automation.
    #[serde(flatten)]
    pub automation: Automation,
    /// The version's number.
    pub version: u64,
}

/// The versions of an automation.
// Built by `crate::automation_versions::list`.
#[derive(Serialize, ToSchema)]
pub struct AutomationVersions {
    /// Newest first.
    pub versions: Vec<AutomationVersionMeta>,
    /// The number the next save will keep.
    pub next: u64,
}

/// One version of an automation, whole.
// Built by `crate::automation_versions::get_one`.
#[derive(Serialize, ToSchema)]
pub struct AutomationVersion {
    /// The version's number.
    pub version: u64,
    /// The automation as it was.
    pub automation: Automation,
}

/// The automation after a component upload.
// Built by `crate::components::upload`.
#[derive(Serialize, ToSchema)]
pub struct UploadedAutomation {
    /// The automation.
    #[serde(flatten)]
    pub automation: Automation,
    /// `true` when the same component was already the automation's (nothing changed).
    pub unchanged: bool,
}

/// The workspace's roles and rules (`GET`/`PUT …/security`).
#[derive(Serialize, ToSchema)]
pub struct SecurityView {
    /// The custom roles and the rules.
    pub authorizations: Authorizations,
}

/// A role of the workspace.
// Built by `crate::security::roles`.
#[derive(Serialize, ToSchema)]
pub struct RoleView {
    /// `owner`, `editor`, `viewer` or a custom role's name.
    pub name: String,
    /// A custom role's description (`null` when it has none); absent for built-in roles.
    pub description: Option<String>,
}

/// `ApiKey`: a workspace API key as clients see it.
// Built by `crate::security::api_key`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyView {
    /// The key's id.
    pub id: String,
    /// The key's last 4 characters.
    pub key_hint: String,
    /// The key's name.
    pub name: String,
    /// Always `workspaces`.
    pub subject_type: String,
    /// The workspace's id.
    pub subject_id: String,
    /// What the key may do.
    pub rules: Vec<PermissionRule>,
    /// A disabled key is refused.
    pub disabled: bool,
    /// When the key was created.
    pub created_at: DateTime<Utc>,
    /// The key itself (`rfk_…`): only in the answer that creates it, shown this once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
}

/// A secret as listed: its metadata, never its value.
// Built by `crate::secrets::public`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretMeta {
    /// What the secret is for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// The user id that created it.
    pub created_by: String,
    /// When its value last changed.
    pub updated_at: DateTime<Utc>,
    /// The user id that last changed it.
    pub updated_by: String,
}

/// One secret of a `PATCH`/`PUT …/security/secrets` body, by name
/// (`^[A-Za-z_][A-Za-z0-9_]{0,63}$`; `prismeai_*` for superadmins only).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretInput {
    /// Any JSON value, at most 64 KiB.
    pub value: Value,
    /// What the secret is for; absent or `null` keeps the current one.
    pub description: Option<String>,
}

/// Who a share is for, as listed.
#[derive(Serialize, ToSchema)]
pub struct ShareTargetView {
    /// A user id, `*` (the public) or `role:<name>`.
    pub id: String,
    /// `true` for the public share.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public: Option<bool>,
    /// The custom role, for a share with its holders.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// The role a share gives.
#[derive(Serialize, ToSchema)]
pub struct SharedRole {
    /// A built-in role (`owner`, `editor`, `viewer`) or a custom role's name.
    pub role: String,
}

/// `UserPermissions`: one share of the workspace.
// Built by `crate::sharing::user_permissions`.
#[derive(Serialize, ToSchema)]
pub struct UserPermissions {
    /// Who it is for.
    pub target: ShareTargetView,
    /// What it gives.
    pub permissions: SharedRole,
}

/// The workspace's shares.
// Built by `crate::sharing::list`.
#[derive(Serialize, ToSchema)]
pub struct SharesList {
    /// Every share, the owners' included.
    pub result: Vec<UserPermissions>,
}

/// An automation of an app that a parent may call (neither private nor disabled).
#[derive(Serialize, ToSchema)]
pub struct AppAutomation {
    /// Its slug.
    pub slug: String,
    /// Its name (a string or `{lang: text}`).
    pub name: Value,
    /// Its description, `null` when it has none.
    pub description: Value,
    /// DSL or component.
    pub kind: AutomationKind,
    /// The JSON schema of its input, `null` when it has none.
    pub arguments: Value,
}

/// An app at one version: the app, the version read, its config
/// (schema and default value, secrets redacted) and the automations a parent may call.
// Built by `crate::apps::view`.
#[derive(Serialize, ToSchema)]
pub struct AppView {
    /// The app.
    #[serde(flatten)]
    pub app: App,
    /// The version read.
    pub version: u32,
    /// `{schema, value}`: the config schema (`null` when none) and the version's default
    /// config, secret fields read as `REDACTED`.
    #[schema(value_type = Object)]
    pub config: Value,
    /// The automations a parent may call.
    pub automations: Vec<AppAutomation>,
}

/// The body of `POST /v2/apps`; other members are a 400.
// Read by `crate::apps::publish`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PublishInput {
    /// The workspace to publish (the caller must be allowed to update it).
    pub workspace_id: String,
    /// A named version of that workspace to publish instead of its current state.
    pub workspace_version: Option<String>,
    /// The app's slug (no spaces); the workspace's slug by default.
    pub slug: Option<String>,
    /// Display name (a string or `{lang: text}`); the workspace's by default.
    pub name: Option<Value>,
    /// Description (a string or `{lang: text}`); the workspace's by default.
    pub description: Option<Value>,
    /// Labels for the app store.
    pub labels: Option<Vec<String>>,
    /// URL of the app's picture.
    pub photo: Option<String>,
    /// The config schema (name → argument); the workspace's `config.schema` by default.
    #[schema(value_type = Option<Object>)]
    pub config_schema: Option<Value>,
}

/// `DetailedAppInstance`: the instance, its config with secrets
/// redacted, and, while its app is published, the app's description, the version it runs and
/// the automations it offers.
// Built by `crate::instances::detailed`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DetailedAppInstance {
    /// The instance.
    #[serde(flatten)]
    pub instance: AppInstance,
    /// The app's description (`null` when it has none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_description: Option<Value>,
    /// The app version the instance runs (its pinned one, or the app's current).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running_version: Option<u32>,
    /// Slugs of the automations the workspace may call on the instance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub automations: Option<Vec<String>>,
}

/// The members of an install (`POST …/apps`) or instance `PATCH` body
///. `appSlug` is required to install; `slug` and `appSlug` cannot
/// change afterwards. Read-only members of the answer are accepted and ignored.
// Read by `crate::instances::apply`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceInput {
    /// The app to install (published on this platform).
    pub app_slug: Option<String>,
    /// The instance's slug in the workspace; the app's slug by default.
    pub slug: Option<String>,
    /// A version number, a numeric string, `current` or `null` (follow the latest).
    #[schema(value_type = Option<Object>)]
    pub app_version: Option<Value>,
    /// A disabled instance's automations do not run.
    pub disabled: Option<bool>,
    /// Free-form labels; `null` clears them.
    pub labels: Option<Vec<String>>,
    /// The instance's own config (an object), checked against the app's schema.
    #[schema(value_type = Option<Object>)]
    pub config: Option<Value>,
}

/// A workspace version as listed.
// Built by `crate::versions::meta`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceVersionMeta {
    /// The version's name.
    pub name: String,
    /// Its description (a string or `{lang: text}`), `null` when it has none.
    pub description: Value,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// Where it was pushed to, as given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<Value>,
}

/// The body of `POST …/versions`; other members are a 400.
// Read by `crate::versions::create`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VersionInput {
    /// The version's name (`^[A-Za-z0-9 _-]{1,64}$`); `v<timestamp>` by default.
    pub name: Option<String>,
    /// Its description.
    pub description: Option<Value>,
    /// Where it was pushed to (stored as given).
    pub repository: Option<Value>,
}

/// One file of an import's report that was not imported.
#[derive(Serialize, ToSchema)]
pub struct ImportError {
    /// The file (and the path inside it).
    pub path: String,
    /// The rule broken (`InvalidInstructionError`, `InvalidSlugError`, …).
    pub error: String,
    /// What went wrong.
    pub message: String,
    /// Structured context, when any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

/// A file of the archive read but not imported (components, secrets, pages).
#[derive(Serialize, ToSchema)]
pub struct ImportSkipped {
    /// The file.
    pub path: String,
    /// Why it was skipped.
    pub reason: String,
}

/// The workspace an import went into.
#[derive(Serialize, ToSchema)]
pub struct ImportedWorkspace {
    /// Its id.
    pub id: String,
    /// Its name (a string or `{lang: text}`).
    pub name: Value,
}

/// The report of an import.
// Built by `crate::import::import`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportReport {
    /// The files imported.
    pub imported: Vec<String>,
    /// Always empty: automations missing from the archive are kept.
    pub deleted: Vec<String>,
    /// The files that failed, with why.
    pub errors: Vec<ImportError>,
    /// The files read but not imported.
    pub skipped: Vec<ImportSkipped>,
    /// The workspace imported into.
    pub updated_workspace_ids: Vec<String>,
    /// The workspace imported into, with its name.
    pub workspace: ImportedWorkspace,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    /// Every route of the service, as `METHOD path`.
    const OPERATIONS: &[&str] = &[
        "GET /v2/workspaces",
        "POST /v2/workspaces",
        "GET /v2/workspaces/{workspace_id}",
        "PATCH /v2/workspaces/{workspace_id}",
        "DELETE /v2/workspaces/{workspace_id}",
        "GET /v2/workspaces/{workspace_id}/automations",
        "POST /v2/workspaces/{workspace_id}/automations",
        "GET /v2/workspaces/{workspace_id}/automations/{slug}",
        "PATCH /v2/workspaces/{workspace_id}/automations/{slug}",
        "DELETE /v2/workspaces/{workspace_id}/automations/{slug}",
        "GET /v2/workspaces/{workspace_id}/automations/{slug}/versions",
        "GET /v2/workspaces/{workspace_id}/automations/{slug}/versions/{version}",
        "POST /v2/workspaces/{workspace_id}/automations/{slug}/versions/{version}/restore",
        "GET /v2/workspaces/{workspace_id}/automations/{slug}/component",
        "PUT /v2/workspaces/{workspace_id}/automations/{slug}/component",
        "GET /v2/workspaces/{workspace_id}/permissions",
        "POST /v2/workspaces/{workspace_id}/permissions",
        "DELETE /v2/workspaces/{workspace_id}/permissions/{user_id}",
        "GET /v2/workspaces/{workspace_id}/security",
        "PUT /v2/workspaces/{workspace_id}/security",
        "GET /v2/workspaces/{workspace_id}/security/roles",
        "GET /v2/workspaces/{workspace_id}/security/apikeys",
        "POST /v2/workspaces/{workspace_id}/security/apikeys",
        "PUT /v2/workspaces/{workspace_id}/security/apikeys/{key_id}",
        "DELETE /v2/workspaces/{workspace_id}/security/apikeys/{key_id}",
        "GET /v2/workspaces/{workspace_id}/security/secrets",
        "PATCH /v2/workspaces/{workspace_id}/security/secrets",
        "PUT /v2/workspaces/{workspace_id}/security/secrets",
        "DELETE /v2/workspaces/{workspace_id}/security/secrets/{name}",
        "GET /v2/apps",
        "POST /v2/apps",
        "GET /v2/apps/{app_slug}",
        "DELETE /v2/apps/{app_slug}",
        "GET /v2/workspaces/{workspace_id}/apps",
        "POST /v2/workspaces/{workspace_id}/apps",
        "GET /v2/workspaces/{workspace_id}/apps/{slug}",
        "PATCH /v2/workspaces/{workspace_id}/apps/{slug}",
        "DELETE /v2/workspaces/{workspace_id}/apps/{slug}",
        "GET /v2/workspaces/{workspace_id}/apps/{slug}/config",
        "PATCH /v2/workspaces/{workspace_id}/apps/{slug}/config",
        "GET /v2/workspaces/{workspace_id}/export",
        "POST /v2/workspaces/{workspace_id}/import",
        "GET /v2/workspaces/{workspace_id}/versions",
        "POST /v2/workspaces/{workspace_id}/versions",
        "DELETE /v2/workspaces/{workspace_id}/versions/{name}",
    ];

    fn document() -> Value {
        let mut doc = crate::api().into_openapi();
        refract_http::openapi::finish(&mut doc);
        let text = doc.to_pretty_json().expect("the document serializes");
        serde_json::from_str(&text).expect("the document is JSON")
    }

    /// Every `$ref` under `value`.
    fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("$ref", Value::String(r)) => out.push(r),
                        _ => refs(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn every_route_has_an_operation_with_a_success_answer() {
        let doc = document();
        let paths = doc["paths"].as_object().expect("paths");
        let mut found = BTreeSet::new();
        for (path, item) in paths {
            for (method, op) in item.as_object().expect("a path item") {
                if method == "parameters" {
                    continue;
                }
                let label = format!("{} {path}", method.to_uppercase());
                let responses = op["responses"].as_object().expect("responses");
                assert!(
                    responses.keys().any(|s| s.starts_with('2')),
                    "{label} has no 2xx answer"
                );
                assert!(
                    op["tags"].as_array().is_some_and(|t| !t.is_empty()),
                    "{label} has no tag"
                );
                assert!(op["summary"].is_string(), "{label} has no summary");
                // Every path parameter of the template is declared.
                let declared: BTreeSet<&str> = op["parameters"]
                    .as_array()
                    .map(|ps| {
                        ps.iter()
                            .filter(|p| p["in"] == "path")
                            .filter_map(|p| p["name"].as_str())
                            .collect()
                    })
                    .unwrap_or_default();
                let in_template: BTreeSet<&str> = path
                    .split('/')
                    .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                    .collect();
                assert_eq!(declared, in_template, "{label}: path parameters");
                found.insert(label);
            }
        }
        let expected: BTreeSet<String> = OPERATIONS.iter().map(|s| s.to_string()).collect();
        assert_eq!(found, expected);
        // Every schema an operation refers to is in the document.
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        let mut all = Vec::new();
        refs(&doc, &mut all);
        for r in all {
            let name = r
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("unexpected $ref {r}"));
            assert!(schemas.contains_key(name), "{r} is not in the document");
        }
    }

    #[test]
    fn answers_built_as_values_match_their_schemas_members() {
        // The shapes of the handlers' `json!` answers, by their schema's required members.
        let doc = document();
        let schemas = &doc["components"]["schemas"];
        let required = |name: &str| -> BTreeSet<String> {
            schemas[name]["required"]
                .as_array()
                .map(|r| {
                    r.iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        };
        let set = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        assert_eq!(
            required("ApiKeyView"),
            set(&[
                "id",
                "keyHint",
                "name",
                "subjectType",
                "subjectId",
                "rules",
                "disabled",
                "createdAt"
            ])
        );
        assert_eq!(
            required("SecretMeta"),
            set(&["createdAt", "createdBy", "updatedAt", "updatedBy"])
        );
        assert_eq!(
            required("ImportReport"),
            set(&[
                "imported",
                "deleted",
                "errors",
                "skipped",
                "updatedWorkspaceIds",
                "workspace"
            ])
        );
        assert!(!required("Automation").contains("do"));
    }
}
