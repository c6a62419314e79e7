//! Workspace export: `GET /v2/workspaces/{workspaceId}/export` answers a zip in the layout the
//! import takes ([`crate::import`]), so export → import into another workspace of this platform
//! brings its automations, config, security rules and app instances along:
//!
//! - `index.yml`: the workspace's `name`, `slug`, `description`, `labels` and `config`;
//! - `automations/<slug>.yml`: each DSL automation, as the automations API takes it;
//! - `components/<slug>.yml`: each component automation, with its component's digest and a
//!   grant ([`crate::grants`]) that lets an import on this platform run the same stored bytes
//!   (they are downloaded by `GET …/automations/{slug}/component`, not copied into the
//!   archive, so an export stays small);
//! - `security.yml`: the workspace's roles and rules;
//! - `imports/<slug>.yml`: each app instance (app, pinned version, config);
//! - `secrets.yml`: the secrets' names and descriptions, never their values.
//!
//! Documents are written as JSON, which is YAML. The export holds the workspace's security and
//! secret names, so it needs the right to manage its security (owners). An archive the import
//! could not take (over [`MAX_ARCHIVE_BYTES`]) is refused with 413.

use std::io::{Cursor, Write};

use axum::extract::{Path, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use refract_core::model::{Automation, AutomationKind};
use refract_http::{ApiError, Caller};
use serde_json::{Map, Value, json};
use zip::write::SimpleFileOptions;

use crate::import::MAX_ARCHIVE_BYTES;
use crate::state::{Action, Subject, WorkspacesState, encode};

/// Members of a stored automation the platform sets, left out of an export.
const SET_BY_PLATFORM: &[&str] = &["createdAt", "createdBy", "updatedAt", "updatedBy"];

/// `GET …/export`: the zip (`application/zip`, `attachment; filename="<slug>.zip"`).
#[utoipa::path(get, path = "/v2/workspaces/{workspace_id}/export", tag = "workspaces", params(refract_http::openapi::InWorkspace),
    responses((status = 200, description = "A zip of the workspace (`index.yml`, `automations/`, `components/`, `security.yml`, `imports/`, `secrets.yml` without values), as the import takes it.",
        content_type = "application/zip", body = crate::openapi::Binary,
        headers(("content-disposition" = String, description = "`attachment; filename=\"<slug>.zip\"`")))))]
pub async fn export(
    State(state): State<WorkspacesState>,
    caller: Caller,
    Path(workspace_id): Path<String>,
) -> Result<Response, ApiError> {
    let access = state
        .authorize(
            &caller,
            &workspace_id,
            (Action::ManageSecurity, Subject::Workspaces),
        )
        .await?;
    let ws = &access.workspace;
    let mut files: Vec<(String, Value)> = Vec::new();
    let mut index = Map::new();
    index.insert("name".into(), ws.name.clone());
    index.insert("slug".into(), json!(ws.slug));
    if let Some(description) = &ws.description {
        index.insert("description".into(), description.clone());
    }
    if !ws.labels.is_empty() {
        index.insert("labels".into(), json!(ws.labels));
    }
    if let Some(config) = &ws.config {
        index.insert("config".into(), config.clone());
    }
    files.push(("index.yml".into(), Value::Object(index)));
    for a in crate::automations::load_all(&state, &access.id).await? {
        let folder = match a.kind {
            AutomationKind::Dsl => "automations",
            AutomationKind::Component => "components",
        };
        let mut doc = document(&a)?;
        if let Some(digest) = a.component.as_ref().and_then(|c| c.digest.as_deref()) {
            doc["grant"] = crate::grants::issue(&state.config.keyring, digest)?;
        }
        files.push((format!("{folder}/{}.yml", a.slug), doc));
    }
    files.push((
        "security.yml".into(),
        json!({"authorizations": access.rights.authorizations}),
    ));
    for instance in crate::versions::instances_of(&state, access.id.as_str()).await? {
        files.push((
            format!("imports/{}.yml", instance.slug),
            json!({"slug": instance.slug, "appSlug": instance.app_slug,
                "appVersion": instance.app_version, "disabled": instance.disabled,
                "labels": instance.labels, "config": instance.config}),
        ));
    }
    files.push((
        "secrets.yml".into(),
        crate::secrets::names(&state, access.id.as_str()).await?,
    ));
    let zip = archive(&files)?;
    let name = format!("attachment; filename=\"{}.zip\"", ws.slug);
    Ok((
        [
            (CONTENT_TYPE, "application/zip".to_owned()),
            (CONTENT_DISPOSITION, name),
        ],
        zip,
    )
        .into_response())
}

/// An automation as the automations API (and the import) takes it.
fn document(a: &Automation) -> Result<Value, ApiError> {
    let mut doc = encode(a)?;
    if let Some(map) = doc.as_object_mut() {
        for key in SET_BY_PLATFORM {
            map.remove(*key);
        }
    }
    Ok(doc)
}

/// The zip of `files`, each written as pretty JSON; 413 past what an import accepts.
fn archive(files: &[(String, Value)]) -> Result<Vec<u8>, ApiError> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    let mut total = 0usize;
    for (name, doc) in files {
        let text = serde_json::to_vec_pretty(doc).map_err(ApiError::internal)?;
        total = total.saturating_add(text.len());
        if total > MAX_ARCHIVE_BYTES {
            return Err(ApiError::too_large(MAX_ARCHIVE_BYTES).with_details(json!({
                "reason": "the workspace is larger than an archive the import accepts"
            })));
        }
        zip.start_file(name.as_str(), options)
            .map_err(ApiError::internal)?;
        zip.write_all(&text).map_err(ApiError::internal)?;
    }
    Ok(zip.finish().map_err(ApiError::internal)?.into_inner())
}
