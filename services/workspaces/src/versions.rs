//! Workspace versions (`spec/http-api.md` §11): a named snapshot of a workspace's automations
//! (DSL documents and component digests), config and app instances. Apps are published from
//! a version or from the workspace as it is ([`snapshot`]).

use axum::extract::{Path, State};
use chrono::Utc;
use refract_core::apps::{AppInstance, Snapshot, WorkspaceVersion, workspace_version_doc_id};
use refract_core::model::Workspace;
use refract_core::platform::types;
use refract_core::{ErrorKind, WorkspaceId};
use refract_http::{ApiError, Caller, Json};
use refract_storage::{Expect, collections};
use serde_json::{Map, Value, json};

use crate::automations;
use crate::body::Unread;
use crate::params;
use crate::state::{
    Action, Subject, WorkspacesState, decode, encode, storage, workspace_documents,
};

/// Most versions one workspace keeps (`MAXIMUM_WORKSPACE_VERSION`, §14.2).
pub const MAX_WORKSPACE_VERSIONS: usize = 20;

/// The workspace as it is now: config, automations, installed apps.
pub async fn snapshot(
    state: &WorkspacesState,
    id: &WorkspaceId,
    workspace: &Workspace,
) -> Result<Snapshot, ApiError> {
    Ok(Snapshot {
        config: workspace.config.clone(),
        automations: automations::load_all(state, id).await?,
        imports: instances_of(state, id.as_str()).await?,
    })
}

/// The app instances of a workspace, by slug.
pub async fn instances_of(
    state: &WorkspacesState,
    workspace: &str,
) -> Result<Vec<AppInstance>, ApiError> {
    let mut all: Vec<AppInstance> = workspace_documents(
        state,
        &collections::APP_INSTANCES,
        workspace,
        "app instance",
    )
    .await?;
    all.sort_by(|a, b| a.slug.cmp(&b.slug));
    Ok(all)
}

/// A stored version of `workspace`, or 404.
pub async fn load(
    state: &WorkspacesState,
    workspace: &str,
    name: &str,
) -> Result<WorkspaceVersion, ApiError> {
    let doc = state
        .store
        .get(
            &collections::WORKSPACE_VERSIONS,
            &workspace_version_doc_id(workspace, name),
        )
        .await
        .map_err(storage)?
        .ok_or_else(|| ApiError::not_found(format!("workspace version {name:?} not found")))?;
    decode(doc.body, "workspace version")
}

fn meta(v: &WorkspaceVersion) -> Value {
    let mut m = json!({"name": v.name, "description": v.description, "createdAt": v.created_at});
    if let Some(r) = &v.repository {
        m["repository"] = r.clone();
    }
    m
}

/// `GET …/versions`: `[{name, description, createdAt, repository?}]`, newest first.
#[utoipa::path(get, path = "/v2/workspaces/{workspace_id}/versions", tag = "versions", params(refract_http::openapi::InWorkspace),
    responses((status = 200, description = "The workspace's versions, newest first.", body = Vec<crate::openapi::WorkspaceVersionMeta>)))]
pub async fn list(
    State(state): State<WorkspacesState>,
    caller: Caller,
    Path(workspace_id): Path<String>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let access = state
        .authorize(&caller, &workspace_id, (Action::Read, Subject::Workspaces))
        .await?;
    let mut all: Vec<WorkspaceVersion> = workspace_documents(
        &state,
        &collections::WORKSPACE_VERSIONS,
        access.id.as_str(),
        "workspace version",
    )
    .await?;
    all.sort_by_key(|v| std::cmp::Reverse(v.created_at));
    Ok(Json(all.iter().map(meta).collect()))
}

/// `POST …/versions`: `{name?, description, repository?}` → the version's metadata.
#[utoipa::path(post, path = "/v2/workspaces/{workspace_id}/versions", tag = "versions", params(refract_http::openapi::InWorkspace),
    request_body = crate::openapi::VersionInput,
    responses((status = 200, description = "The version made.", body = crate::openapi::WorkspaceVersionMeta),
        (status = 409, description = "A version of that name exists.", body = refract_http::openapi::ErrorBody),
        (status = 422, description = "The workspace keeps the most versions it may (`TooManyVersions`).", body = refract_http::openapi::ErrorBody)))]
pub async fn create(
    State(state): State<WorkspacesState>,
    caller: Caller,
    Path(workspace_id): Path<String>,
    body: Unread,
) -> Result<Json<Value>, ApiError> {
    let access = state
        .authorize(
            &caller,
            &workspace_id,
            (Action::Update, Subject::Workspaces),
        )
        .await?;
    let body: Map<String, Value> = body.json(&access).await?;
    let user = caller.require_user()?.to_string();
    let (mut name, mut description, mut repository) = (None, None, None);
    for (key, value) in body {
        match key.as_str() {
            "name" if value.is_null() => {}
            "name" => {
                let n = params::string("name", &value)?;
                refract_core::model::check_automation_slug(n)
                    .map_err(|e| params::invalid_slug(n, e))?;
                name = Some(n.to_owned());
            }
            "description" => description = Some(value).filter(|v| !v.is_null()),
            "repository" => repository = Some(value).filter(|v| !v.is_null()),
            other => return Err(params::unknown_field(other)),
        }
    }
    let ws = access.id.as_str();
    let existing: Vec<WorkspaceVersion> = workspace_documents(
        &state,
        &collections::WORKSPACE_VERSIONS,
        ws,
        "workspace version",
    )
    .await?;
    if existing.len() >= MAX_WORKSPACE_VERSIONS {
        return Err(ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "TooManyVersions",
            format!(
                "a workspace keeps at most {MAX_WORKSPACE_VERSIONS} versions; delete one first"
            ),
        ));
    }
    let now = Utc::now();
    let name = name.unwrap_or_else(|| format!("v{}", now.format("%Y%m%d%H%M%S%3f")));
    let version = WorkspaceVersion {
        workspace_id: ws.to_owned(),
        name: name.clone(),
        description,
        repository,
        snapshot: snapshot(&state, &access.id, &access.workspace).await?,
        created_at: now,
        created_by: user,
    };
    match state
        .store
        .put(
            &collections::WORKSPACE_VERSIONS,
            &workspace_version_doc_id(ws, &name),
            &encode(&version)?,
            Expect::Absent,
        )
        .await
    {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::Conflict => {
            return Err(ApiError::already_used(
                "name",
                format!("version {name:?} already exists"),
            ));
        }
        Err(e) => return Err(storage(e)),
    }
    let m = meta(&version);
    state
        .emit(
            &caller,
            &access.id,
            types::VERSIONS_PUBLISHED,
            json!({"version": m}),
        )
        .await;
    Ok(Json(m))
}

/// `DELETE …/versions/{name}` → `{id}`.
#[utoipa::path(delete, path = "/v2/workspaces/{workspace_id}/versions/{name}", tag = "versions",
    params(refract_http::openapi::InWorkspace, ("name" = String, Path, description = "The version's name.")),
    responses((status = 200, description = "The version is deleted.", body = crate::openapi::Deleted)))]
pub async fn remove(
    State(state): State<WorkspacesState>,
    caller: Caller,
    Path((workspace_id, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let access = state
        .authorize(
            &caller,
            &workspace_id,
            (Action::Update, Subject::Workspaces),
        )
        .await?;
    let ws = access.id.as_str();
    load(&state, ws, &name).await?;
    state
        .store
        .delete(
            &collections::WORKSPACE_VERSIONS,
            &workspace_version_doc_id(ws, &name),
            Expect::Any,
        )
        .await
        .map_err(storage)?;
    state
        .emit(
            &caller,
            &access.id,
            types::VERSIONS_DELETED,
            json!({"version": {"name": name}}),
        )
        .await;
    Ok(Json(json!({ "id": name })))
}
