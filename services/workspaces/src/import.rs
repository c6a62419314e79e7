//! Import of a Prisme.ai workspace export (`spec/http-api.md` §11, `automation-dsl.md` §2.1):
//! `POST /v2/workspaces/{workspaceId}/import` with a zip archive (raw `application/zip` body,
//! or multipart field `archive`) of `index.yml` + `automations/<slug>.yml` (+ `imports/`,
//! `security.yml`, pages), or the single-file `runtime.yml` form (a YAML body).
//!
//! Every automation document is validated like a save through the automations API, and its
//! errors are reported with the file and the path inside it (`automations/a.yml: do[0].set`)
//! and the rule broken (`InvalidInstructionError`, `InvalidSlugError`,
//! `InvalidScheduleError`, …); valid documents are created, or replace the DSL automation of
//! the same slug. The export's `config.value` (index.yml) becomes the workspace's, which every
//! run reads as `{{config.x}}`. `security.yml` replaces the workspace's roles and rules when the
//! importer may manage its security (else it is listed among the errors); each
//! `imports/<slug>.yml` installs its app instance as the install route would (the app must be
//! published on this platform). Automations missing from the archive are kept (`deleted` is
//! always empty); components, secrets and pages are reported as skipped.

use refract_core::platform::types;
use std::io::{Cursor, Read};

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use chrono::Utc;
use refract_core::ErrorKind;
use refract_core::model::{Automation, AutomationKind, ComponentInfo};
use refract_dsl::{Budget, Invalid};
use refract_http::{ApiError, Caller, Json};
use refract_storage::Expect;
use serde_json::{Map, Value, json};

use crate::automation_fields::apply;
use crate::automations::{event_payload, load, store};
use crate::state::{Access, Action, Subject, WorkspacesState, storage};

/// Largest archive and total uncompressed size (http-api.md §14.2).
pub const MAX_ARCHIVE_BYTES: usize = 10 * 1024 * 1024;
/// Most entries an archive may hold.
pub const MAX_ENTRIES: usize = 5_000;
/// Largest single YAML file, uncompressed.
const MAX_FILE_BYTES: u64 = 2 * 1024 * 1024;
/// Most nodes all the documents of one import may have once their YAML aliases are expanded
/// (failed documents included): bounds the memory and CPU of an archive of alias bombs, which
/// each document's own budget alone would let multiply by [`MAX_ENTRIES`].
pub const MAX_IMPORT_NODES: usize = 1_000_000;

/// The documents of an export, by kind.
#[derive(Debug, PartialEq)]
pub struct Export {
    /// `index.yml` (or the workspace part of `runtime.yml`).
    pub workspace: Option<Map<String, Value>>,
    /// `(file, slug from the file name or map key, document)`.
    pub automations: Vec<(String, String, Value)>,
    /// `(file, slug from the file name, document)` of each `components/<slug>.yml`: a
    /// component automation of an export of this platform, with its grant.
    pub components: Vec<(String, String, Value)>,
    /// `security.yml`: the workspace's roles and rules.
    pub security: Option<Value>,
    /// `(file, document)` of each `imports/<slug>.yml`: an app instance to install.
    pub instances: Vec<(String, Value)>,
    /// Files read but not imported, with why.
    pub skipped: Vec<(String, String)>,
    /// Files that do not load: `(file, rule, message)`.
    pub errors: Vec<(String, String, String)>,
    /// What parsing the export's documents may still cost, shared by all of them.
    budget: Budget,
}

impl Default for Export {
    fn default() -> Self {
        Export {
            workspace: None,
            automations: Vec::new(),
            components: Vec::new(),
            security: None,
            instances: Vec::new(),
            skipped: Vec::new(),
            errors: Vec::new(),
            // A zip entry is capped at MAX_FILE_BYTES before it is read; the single-file
            // `runtime.yml` form is the whole export.
            budget: Budget::documents(MAX_IMPORT_NODES).with_max_bytes(MAX_ARCHIVE_BYTES),
        }
    }
}

fn yaml(export: &mut Export, file: &str, text: &str) -> Option<Value> {
    match export.budget.yaml(text) {
        Ok(v) => Some(v),
        Err(e) => {
            let e = Invalid::from(e);
            export.errors.push((file.to_owned(), e.rule, e.message));
            None
        }
    }
}

impl Export {
    /// An empty export whose documents are parsed within `budget`.
    pub fn within(budget: Budget) -> Self {
        Export {
            budget,
            ..Export::default()
        }
    }

    /// Sorts one file of an export by its path (relative to the export's root).
    pub fn add_file(&mut self, path: &str, text: &str) {
        let stem = |p: &str| {
            p.strip_suffix(".yml")
                .or_else(|| p.strip_suffix(".yaml"))
                .map(str::to_owned)
        };
        let parts: Vec<&str> = path.split('/').collect();
        match parts.as_slice() {
            ["index.yml" | "index.yaml"] => match yaml(self, path, text) {
                Some(Value::Object(m)) => self.workspace = Some(m),
                Some(_) => self.errors.push((
                    path.into(),
                    "InvalidYamlError".into(),
                    "index.yml is a mapping".into(),
                )),
                None => {}
            },
            ["runtime.yml" | "runtime.yaml"] => self.add_runtime(path, text),
            ["security.yml" | "security.yaml"] => {
                if let Some(doc) = yaml(self, path, text) {
                    self.security = Some(doc);
                }
            }
            ["automations", file] => match stem(file) {
                Some(slug) => {
                    if let Some(doc) = yaml(self, path, text) {
                        self.automations.push((path.to_owned(), slug, doc));
                    }
                }
                None => self.skipped.push((path.into(), "not a YAML file".into())),
            },
            ["components", file] if stem(file).is_some() => {
                if let (Some(slug), Some(doc)) = (stem(file), yaml(self, path, text)) {
                    self.components.push((path.to_owned(), slug, doc));
                }
            }
            ["imports", file] if stem(file).is_some() => {
                if let Some(doc) = yaml(self, path, text) {
                    self.instances.push((path.to_owned(), doc));
                }
            }
            _ => self.skipped.push((
                path.into(),
                "not used by Refract's import (secrets, pages, blocks, …)".into(),
            )),
        }
    }

    /// The single-file form: the workspace document plus `automations` and `imports` maps.
    pub fn add_runtime(&mut self, path: &str, text: &str) {
        let Some(doc) = yaml(self, path, text) else {
            return;
        };
        let Value::Object(mut m) = doc else {
            self.errors.push((
                path.into(),
                "InvalidYamlError".into(),
                "runtime.yml is a mapping".into(),
            ));
            return;
        };
        match m.remove("automations") {
            Some(Value::Object(autos)) => {
                for (slug, doc) in autos {
                    self.automations
                        .push((format!("{path}#automations.{slug}"), slug, doc));
                }
            }
            None | Some(Value::Null) => {}
            Some(_) => self.errors.push((
                format!("{path}#automations"),
                "InvalidYamlError".into(),
                "must be a map slug → automation".into(),
            )),
        }
        match m.remove("imports") {
            Some(Value::Object(instances)) => {
                for (slug, mut doc) in instances {
                    if let Some(map) = doc.as_object_mut() {
                        map.entry("slug").or_insert_with(|| json!(slug));
                    }
                    self.instances.push((format!("{path}#imports.{slug}"), doc));
                }
            }
            None | Some(Value::Null) => {}
            Some(_) => self.errors.push((
                format!("{path}#imports"),
                "InvalidYamlError".into(),
                "must be a map slug → app instance".into(),
            )),
        }
        self.workspace = Some(m);
    }
}

/// Reads a zip export. A single top folder holding the files (an exported `my-ws/index.yml`)
/// is treated as the root; `.wasm` and other binary files are skipped.
pub fn read_zip(bytes: &[u8]) -> Result<Export, ApiError> {
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, "InvalidArchiveError", m);
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| bad(format!("not a zip archive: {e}")))?;
    if zip.len() > MAX_ENTRIES {
        return Err(bad(format!(
            "the archive has more than {MAX_ENTRIES} entries"
        )));
    }
    let mut files = Vec::new();
    let mut total = 0u64;
    for i in 0..zip.len() {
        let mut entry = zip
            .by_index(i)
            .map_err(|e| bad(format!("entry {i}: {e}")))?;
        if entry.is_dir() {
            continue;
        }
        // Names that would escape the archive (`../x`, absolute) are refused, not resolved.
        let Some(name) = entry
            .enclosed_name()
            .and_then(|p| p.to_str().map(|s| s.replace('\\', "/")))
        else {
            return Err(bad(format!("entry {:?} has an unsafe path", entry.name())));
        };
        if !(name.ends_with(".yml") || name.ends_with(".yaml")) {
            files.push((name, None));
            continue;
        }
        let size = entry.size();
        total = total.saturating_add(size);
        if size > MAX_FILE_BYTES || total > MAX_ARCHIVE_BYTES as u64 {
            return Err(ApiError::too_large(MAX_ARCHIVE_BYTES));
        }
        let mut text = String::new();
        entry
            .by_ref()
            .take(MAX_FILE_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(|e| bad(format!("{name}: {e}")))?;
        files.push((name, Some(text)));
    }
    let root = common_root(files.iter().map(|(n, _)| n.as_str()));
    let mut export = Export::default();
    for (name, text) in files {
        let rel = name.strip_prefix(&root).unwrap_or(&name).to_owned();
        match text {
            Some(t) => export.add_file(&rel, &t),
            None => export.skipped.push((rel, "not a YAML document".into())),
        }
    }
    Ok(export)
}

/// `folder/` when every file sits under that one folder and no `index.yml` or `runtime.yml`
/// is at the top, else `""`.
fn common_root<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.collect();
    let top = |n: &str| n.split_once('/').map(|(d, _)| d.to_owned());
    let Some(first) = names.first().and_then(|n| top(n)) else {
        return String::new();
    };
    if names
        .iter()
        .all(|n| top(n).as_deref() == Some(first.as_str()))
    {
        format!("{first}/")
    } else {
        String::new()
    }
}

/// The archive of a request: a multipart `archive` field, a zip body, or a YAML body (the
/// `runtime.yml` form).
async fn read_request(req: Request, state: &WorkspacesState) -> Result<Export, ApiError> {
    let ct = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if ct.starts_with("multipart/form-data") {
        let mut form = Multipart::from_request(req, state)
            .await
            .map_err(|e| ApiError::validation("body", e.body_text()))?;
        while let Some(field) = form
            .next_field()
            .await
            .map_err(|e| ApiError::validation("body", e.body_text()))?
        {
            if field.name() == Some("archive") {
                let bytes = field
                    .bytes()
                    .await
                    .map_err(|_| ApiError::too_large(MAX_ARCHIVE_BYTES))?;
                return read_zip(&bytes);
            }
        }
        return Err(ApiError::validation("archive", "is required (a zip file)"));
    }
    let bytes = Bytes::from_request(req, state)
        .await
        .map_err(|_| ApiError::too_large(MAX_ARCHIVE_BYTES))?;
    if crate::body::is_yaml(&ct) {
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| ApiError::validation("body", "YAML must be UTF-8"))?;
        let mut export = Export::default();
        export.add_runtime("runtime.yml", text);
        return Ok(export);
    }
    read_zip(&bytes)
}

/// `POST /v2/workspaces/{workspaceId}/import`: imports a Prisme.ai workspace export (a zip, or
/// the `runtime.yml` form) into the workspace, and reports each file's fate.
#[utoipa::path(post, path = "/v2/workspaces/{workspace_id}/import", tag = "workspaces", params(refract_http::openapi::InWorkspace),
    request_body(description = "A Prisme.ai export: a zip (the body, or the multipart field `archive`), or the single-file `runtime.yml` form as YAML. At most 10 MiB.",
        content((crate::openapi::Binary = "application/zip"), (Object = "multipart/form-data"), (Object = "application/yaml"))),
    responses((status = 200, description = "The import's report: the files imported, failed (with why) and skipped.", body = crate::openapi::ImportReport),
        (status = 409, description = "The workspace changed while its config was imported.", body = refract_http::openapi::ErrorBody)))]
pub async fn import(
    State(state): State<WorkspacesState>,
    caller: Caller,
    Path(workspace_id): Path<String>,
    req: Request,
) -> Result<Json<Value>, ApiError> {
    let access = state
        .authorize(
            &caller,
            &workspace_id,
            (Action::Update, Subject::Automations),
        )
        .await?;
    let user = caller.require_user()?.to_string();
    let export = read_request(req, &state).await?;
    let config = export
        .workspace
        .as_ref()
        .and_then(|w| w.get("config"))
        .and_then(|c| c.get("value"))
        .cloned();
    let mut errors: Vec<Value> = export
        .errors
        .iter()
        .map(|(file, rule, message)| json!({"path": file, "error": rule, "message": message}))
        .collect();
    if let Some(value) = config {
        // The export's config is the workspace's (automation-dsl §5.2): every run reads it.
        crate::workspaces::change(&state, &caller, &workspace_id, |ws| {
            let mut config = ws
                .config
                .clone()
                .filter(Value::is_object)
                .unwrap_or_else(|| json!({}));
            config["value"] = value.clone();
            ws.config = Some(config);
            Ok(())
        })
        .await?;
    }
    let mut imported = Vec::new();
    let documents = (export.automations.into_iter())
        .map(|(file, slug, doc)| (file, slug, doc, AutomationKind::Dsl))
        .chain(
            (export.components.into_iter())
                .map(|(file, slug, doc)| (file, slug, doc, AutomationKind::Component)),
        );
    for (file, slug, doc, kind) in documents {
        match import_one(&state, &caller, &access, &user, &slug, doc, kind).await {
            Ok(()) => imported.push(json!(file)),
            Err(e) => errors.push(file_error(file, e)),
        }
    }
    for (file, doc) in export.instances {
        match import_instance(&state, &caller, &workspace_id, doc).await {
            Ok(()) => imported.push(json!(file)),
            Err(e) => errors.push(file_error(file, e)),
        }
    }
    if let Some(security) = export.security {
        let file = "security.yml";
        match crate::security::import(&state, &caller, &workspace_id, security).await {
            Ok(()) => imported.push(json!(file)),
            Err(e) => errors.push(file_error(file, e)),
        }
    }
    let skipped: Vec<Value> = export
        .skipped
        .iter()
        .map(|(f, why)| json!({"path": f, "reason": why}))
        .collect();
    Ok(Json(json!({
        "imported": imported,
        "deleted": [],
        "errors": errors,
        "skipped": skipped,
        "updatedWorkspaceIds": [access.id.as_str()],
        "workspace": {"id": access.id.as_str(), "name": access.workspace.name},
    })))
}

/// One file's failure in the import's report: `{path, error, message, details}`.
fn file_error(file: impl Into<String>, e: ApiError) -> Value {
    json!({"path": file.into(), "error": e.code, "message": e.message, "details": e.details})
}

/// Installs one app instance of an export (`imports/<slug>.yml`) as the install route would:
/// the importer may update the workspace, the app is published on this platform, and no
/// instance of that slug is installed yet.
async fn import_instance(
    state: &WorkspacesState,
    caller: &Caller,
    workspace_id: &str,
    doc: Value,
) -> Result<(), ApiError> {
    let access = state
        .authorize(caller, workspace_id, (Action::Update, Subject::Workspaces))
        .await?;
    let Value::Object(body) = doc else {
        return Err(ApiError::validation("body", "an app instance is a mapping"));
    };
    crate::instances::install_into(state, caller, &access, body).await?;
    Ok(())
}

/// Validates one automation document and creates it, or replaces the automation of the same
/// slug and kind. A component automation (`components/<slug>.yml`) comes with the grant of its
/// export ([`crate::grants`]): its component is the stored blob of that digest, compiled and
/// installed as an upload would ([`crate::components::install`], which also keeps the
/// automation it replaces as a version).
async fn import_one(
    state: &WorkspacesState,
    caller: &Caller,
    access: &Access,
    user: &str,
    slug: &str,
    doc: Value,
    kind: AutomationKind,
) -> Result<(), ApiError> {
    let Value::Object(mut body) = doc else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidAutomationError",
            "an automation document is a mapping",
        ));
    };
    // The platform assigns these.
    body.remove("workspaceId");
    body.remove("id");
    let component = match kind {
        AutomationKind::Dsl => {
            refract_dsl::compile_document(&Value::Object(body.clone()))
                .map_err(crate::dsl::invalid)?;
            None
        }
        AutomationKind::Component => Some(granted_component(state, &mut body).await?),
    };
    body.entry("slug").or_insert_with(|| json!(slug));
    let ws = access.id.as_str();
    let target = body
        .get("slug")
        .and_then(Value::as_str)
        .unwrap_or(slug)
        .to_owned();
    let existing = match load(state, ws, &target).await {
        Ok(found) => Some(found),
        Err(e) if e.status == StatusCode::NOT_FOUND => None,
        Err(e) => return Err(e),
    };
    if let Some((old, _)) = &existing
        && old.kind != kind
    {
        return Err(crate::automations::kind_conflict(format!(
            "{target:?} is an automation of the other kind"
        )));
    }
    let now = Utc::now();
    let (created_at, created_by) = existing.as_ref().map_or((now, user.to_owned()), |(a, _)| {
        (a.created_at, a.created_by.clone())
    });
    let mut a: Automation = serde_json::from_value(json!({
        "slug": target, "name": null, "kind": kind, "createdAt": created_at,
        "createdBy": created_by, "updatedAt": now, "updatedBy": user,
    }))
    .map_err(|e| ApiError::validation("body", e.to_string()))?;
    if kind == AutomationKind::Component {
        // Until the install below, the component it ran (none for a new automation).
        a.component = Some(match &existing {
            Some((old, _)) => old.component.clone().unwrap_or_else(ComponentInfo::missing),
            None => ComponentInfo::missing(),
        });
    }
    apply(state, &mut a, body)?;
    if a.name.is_null() {
        return Err(ApiError::validation("name", "is required"));
    }
    if kind == AutomationKind::Dsl {
        crate::dsl::check(&a)?;
    }
    let expect = existing
        .as_ref()
        .map_or(Expect::Absent, |(_, v)| Expect::Version(*v));
    let version = match store(state, ws, &a, expect).await? {
        Ok(doc) => doc.version,
        Err(e) if e.kind() == ErrorKind::Conflict => {
            return Err(ApiError::already_used(
                "slug",
                format!("automation {:?} changed during the import", a.slug),
            ));
        }
        Err(e) => return Err(storage(e)),
    };
    if let (Some((previous, _)), AutomationKind::Dsl) = (&existing, kind) {
        crate::automation_versions::saved(state, ws, &a.slug, previous).await;
    }
    let event = if existing.is_some() {
        types::AUTOMATIONS_UPDATED
    } else {
        types::AUTOMATIONS_CREATED
    };
    state
        .emit(caller, &access.id, event, event_payload(&a, None))
        .await;
    if let Some((bytes, language)) = component {
        // The automation as just stored, at the version the write gave it.
        let slot = state.compile_slots().try_acquire(&access.id)?;
        crate::components::install(state, caller, access, (a, version), slot, bytes, language)
            .await?;
    }
    Ok(())
}

/// The bytes and source language of the component a `components/<slug>.yml` names: its
/// `grant` must open to a digest stored on this platform (403 otherwise; 404 when the blob is
/// gone). The document keeps `component.limits` only: the other component members are facts
/// the install reads from the bytes again.
async fn granted_component(
    state: &WorkspacesState,
    body: &mut Map<String, Value>,
) -> Result<(Bytes, Option<String>), ApiError> {
    let grant = body.remove("grant").ok_or_else(|| {
        ApiError::forbidden("a component automation imports only with the grant of its export")
    })?;
    let digest = crate::grants::redeem(&state.config.keyring, &grant)?;
    let component = body.remove("component").unwrap_or(Value::Null);
    if let Some(limits) = component.get("limits") {
        body.insert("component".into(), json!({ "limits": limits }));
    }
    let language = component
        .get("language")
        .and_then(Value::as_str)
        .filter(|l| crate::components::LANGUAGES.contains(l))
        .map(str::to_owned);
    let bytes = crate::components::stored(state, &digest)
        .await?
        .ok_or_else(|| ApiError::not_found("the component is no longer stored on this platform"))?;
    Ok((bytes, language))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn zip_of(files: &[(&str, &str)]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, text) in files {
            w.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            w.write_all(text.as_bytes()).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn exports_are_sorted_by_path_under_one_root_folder() {
        let bytes = zip_of(&[
            (
                "shop/index.yml",
                "name: Shop\nconfig:\n  value:\n    currency: EUR\n",
            ),
            (
                "shop/automations/hello.yml",
                "name: Hello\ndo:\n  - set: {name: a, value: 1}\n",
            ),
            ("shop/automations/bad.yml", "name: [\n"),
            ("shop/imports/crm.yml", "appSlug: crm\n"),
            ("shop/security.yml", "authorizations: {}\n"),
            ("shop/pages/home.yml", "name: Home\n"),
        ]);
        let e = read_zip(&bytes).unwrap();
        assert_eq!(
            e.workspace.unwrap()["config"]["value"]["currency"],
            json!("EUR")
        );
        assert_eq!(e.automations.len(), 1);
        assert_eq!(
            (e.automations[0].0.as_str(), e.automations[0].1.as_str()),
            ("automations/hello.yml", "hello")
        );
        assert_eq!(e.errors[0].0, "automations/bad.yml");
        assert_eq!(e.errors[0].1, "InvalidYamlError");
        assert_eq!(e.security, Some(json!({"authorizations": {}})));
        assert_eq!(e.instances.len(), 1);
        assert_eq!(e.instances[0].0, "imports/crm.yml");
        assert_eq!(e.skipped.len(), 1, "{:?}", e.skipped);
        assert_eq!(e.skipped[0].0, "pages/home.yml");
    }

    #[test]
    fn runtime_yml_holds_workspace_and_automations() {
        let mut e = Export::default();
        e.add_runtime("runtime.yml", "name: Shop\nautomations:\n  a:\n    name: A\n    do: []\n  b:\n    name: B\n    do: []\nimports:\n  crm: {appSlug: crm}\n");
        assert_eq!(
            e.automations
                .iter()
                .map(|(_, s, _)| s.as_str())
                .collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(e.workspace.unwrap()["name"], json!("Shop"));
        assert_eq!(e.instances.len(), 1);
        assert_eq!(
            e.instances[0],
            (
                "runtime.yml#imports.crm".to_owned(),
                json!({"appSlug": "crm", "slug": "crm"})
            )
        );
        assert!(e.skipped.is_empty(), "{:?}", e.skipped);
    }

    #[test]
    fn bombs_are_errors_and_share_one_allowance() {
        let bomb = format!(
            "name: b\na: &a [{}]\nb: [{}]\n",
            vec!["0"; 2_000].join(","),
            vec!["*a"; 400].join(",")
        );
        // index.yml at the root: entries sharing one folder are read as that folder's export.
        let bytes = zip_of(&[
            ("index.yml", "name: Shop\n"),
            ("automations/ok.yml", "name: Ok\ndo: []\n"),
            ("automations/bomb.yml", &bomb),
        ]);
        let e = read_zip(&bytes).unwrap();
        assert_eq!(e.automations.len(), 1);
        assert_eq!(e.errors.len(), 1);
        assert_eq!(
            (e.errors[0].0.as_str(), e.errors[0].1.as_str()),
            ("automations/bomb.yml", "DocumentTooComplex")
        );
        // Each document within its own budget, too many together: the later ones are refused.
        let medium = format!(
            "name: m\na: &a [{}]\nb: [{}]\n",
            vec!["0"; 20].join(","),
            vec!["*a"; 20].join(",")
        );
        let mut e = Export::within(Budget::documents(1_000));
        for i in 0..3 {
            e.add_file(&format!("automations/m{i}.yml"), &medium);
        }
        assert_eq!(e.automations.len(), 2);
        assert_eq!(
            (e.errors[0].0.as_str(), e.errors[0].1.as_str()),
            ("automations/m2.yml", "DocumentTooComplex")
        );
    }

    #[test]
    fn unsafe_paths_and_non_archives_are_refused() {
        assert_eq!(read_zip(b"nope").unwrap_err().code, "InvalidArchiveError");
        let bytes = zip_of(&[("../evil.yml", "a: 1")]);
        assert_eq!(read_zip(&bytes).unwrap_err().code, "InvalidArchiveError");
    }
}
