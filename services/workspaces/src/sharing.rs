//! Sharing (`spec/http-api.md` §10, `subjectType = workspaces`), the built-in roles only:
//! owners give users a role by id, list the members, and revoke them. `target.email` is
//! resolved by the gateway's user store and is not supported here yet. Memberships are the
//! `permissions` documents ([`Membership`] under `permission_doc_id`), the same ones access
//! checks read.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use refract_core::UserId;
use refract_core::model::{Membership, Role, permission_doc_id};
use refract_http::{ApiError, Caller, Json};
use refract_storage::documents::MAX_FIND_LIMIT;
use refract_storage::{Expect, collections};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::state::{Action, WorkspacesState, decode, encode, storage};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ShareRequest {
    pub target: Target,
    pub permissions: Permissions,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Target {
    pub id: Option<String>,
    pub email: Option<String>,
    pub display_name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Permissions {
    pub role: String,
}

fn user_permissions(m: &Membership) -> Value {
    json!({ "target": { "id": m.user_id }, "permissions": { "role": m.role } })
}

async fn members(state: &WorkspacesState, workspace: &str) -> Result<Vec<Membership>, ApiError> {
    let docs = state
        .store
        .find(
            &collections::PERMISSIONS,
            "workspaceId",
            &json!(workspace),
            MAX_FIND_LIMIT,
        )
        .await
        .map_err(storage)?;
    docs.into_iter()
        .map(|d| decode(d.body, "membership"))
        .collect()
}

/// `POST /v2/workspaces/{id}/permissions`: `{target: {id}, permissions: {role}}`.
pub async fn share(
    State(state): State<WorkspacesState>,
    caller: Caller,
    Path(workspace_id): Path<String>,
    Json(req): Json<ShareRequest>,
) -> Result<Json<Value>, ApiError> {
    let access = state
        .authorize(&caller, &workspace_id, Action::ManageSecurity)
        .await?;
    let role: Role = serde_json::from_value(json!(req.permissions.role)).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "UnknownRole",
            format!("no role {:?} in this workspace", req.permissions.role),
        )
    })?;
    // `displayName` is accepted (Prisme.ai clients send it) and not stored.
    let _ = req.target.display_name;
    let Some(id) = req.target.id else {
        let what = if req.target.email.is_some() {
            "sharing by email is not supported yet; use target.id"
        } else {
            "is required"
        };
        return Err(ApiError::validation("target.id", what));
    };
    let user = UserId::new(id).map_err(|e| ApiError::validation("target.id", e.to_string()))?;
    let ws = access.id.as_str();
    if role != Role::Owner {
        check_not_last_owner(&state, ws, user.as_str()).await?;
    }
    let m = Membership {
        workspace_id: ws.to_string(),
        user_id: user.to_string(),
        role,
    };
    state
        .store
        .put(
            &collections::PERMISSIONS,
            &permission_doc_id(ws, user.as_str()),
            &encode(&m)?,
            Expect::Any,
        )
        .await
        .map_err(storage)?;
    let saved = user_permissions(&m);
    state
        .emit(
            &caller,
            &access.id,
            "workspaces.permissions.shared",
            saved.clone(),
        )
        .await;
    Ok(Json(saved))
}

/// `GET /v2/workspaces/{id}/permissions`: `{result: [UserPermissions]}`.
pub async fn list(
    State(state): State<WorkspacesState>,
    caller: Caller,
    Path(workspace_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let access = state
        .authorize(&caller, &workspace_id, Action::ManageSecurity)
        .await?;
    let result: Vec<Value> = members(&state, access.id.as_str())
        .await?
        .iter()
        .map(user_permissions)
        .collect();
    Ok(Json(json!({ "result": result })))
}

/// `DELETE /v2/workspaces/{id}/permissions/{userId}`: owners revoke anyone; anyone may leave.
pub async fn revoke(
    State(state): State<WorkspacesState>,
    caller: Caller,
    Path((workspace_id, user_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let me = caller.require_user()?.to_string();
    let action = if me == user_id {
        Action::Read
    } else {
        Action::ManageSecurity
    };
    let access = state.authorize(&caller, &workspace_id, action).await?;
    let ws = access.id.as_str();
    check_not_last_owner(&state, ws, &user_id).await?;
    let id = permission_doc_id(ws, &user_id);
    if !state
        .store
        .delete(&collections::PERMISSIONS, &id, Expect::Any)
        .await
        .map_err(storage)?
    {
        return Err(ApiError::not_found(format!("{user_id} is not a member")));
    }
    state
        .emit(
            &caller,
            &access.id,
            "workspaces.permissions.deleted",
            json!({ "target": { "id": user_id } }),
        )
        .await;
    Ok(Json(json!({ "id": user_id })))
}

/// 409 `LastOwnerError` when `user` is the only owner left.
async fn check_not_last_owner(
    state: &WorkspacesState,
    workspace: &str,
    user: &str,
) -> Result<(), ApiError> {
    let all = members(state, workspace).await?;
    let owners: Vec<&Membership> = all.iter().filter(|m| m.role == Role::Owner).collect();
    if owners.len() == 1 && owners[0].user_id == user {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "LastOwnerError",
            "a workspace keeps at least one owner",
        ));
    }
    Ok(())
}
