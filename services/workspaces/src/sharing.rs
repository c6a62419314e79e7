//! Sharing (`spec/http-api.md` §10, `subjectType = workspaces`): owners give a role — built-in
//! or one of the workspace's custom roles — to a user (`target.id`), to every authenticated
//! user (`target.public`), or to the holders of a custom role (`target.role`); they list and
//! revoke those shares; anyone may leave. `target.email` is resolved by the gateway's user
//! store and is not supported here yet. Shares are the `permissions` documents ([`Membership`]
//! under `permission_doc_id`) that `refract_storage::access_of` reads for every request.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use refract_core::UserId;
use refract_core::model::{
    MemberRole, Membership, PUBLIC_MEMBER, ROLE_MEMBER_PREFIX, Role, permission_doc_id,
};
use refract_core::platform::types;
use refract_http::{ApiError, Caller, Json};
use refract_storage::{Expect, collections};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::body::Unread;
use crate::state::{Action, Subject, WorkspacesState, encode, storage, workspace_documents};

/// The body of a share: who it is for and the role it gives.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ShareRequest {
    pub target: Target,
    pub permissions: Permissions,
}

/// Who a share is for: exactly one of `id`, `public: true` or `role`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = ShareTarget)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Target {
    /// A user id.
    pub id: Option<String>,
    /// Not supported yet (a 400): use `id`.
    pub email: Option<String>,
    /// Every authenticated user.
    #[serde(default)]
    pub public: bool,
    /// The holders of this custom role.
    pub role: Option<String>,
    /// Accepted and not stored.
    pub display_name: Option<String>,
}

/// The role a share gives.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = SharePermissions)]
#[serde(deny_unknown_fields)]
pub(crate) struct Permissions {
    /// A built-in role (`owner`, `editor`, `viewer`) or a custom role of the workspace.
    pub role: String,
}

/// A share as clients see it (`UserPermissions`).
fn user_permissions(m: &Membership) -> Value {
    let target = if m.user_id == PUBLIC_MEMBER {
        json!({ "id": PUBLIC_MEMBER, "public": true })
    } else if let Some(role) = m.user_id.strip_prefix(ROLE_MEMBER_PREFIX) {
        json!({ "id": m.user_id, "role": role })
    } else {
        json!({ "id": m.user_id })
    };
    json!({ "target": target, "permissions": { "role": m.role } })
}

async fn members(state: &WorkspacesState, workspace: &str) -> Result<Vec<Membership>, ApiError> {
    workspace_documents(state, &collections::PERMISSIONS, workspace, "membership").await
}

fn unknown_role(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "UnknownRole",
        format!("no role {name:?} in this workspace"),
    )
}

/// The role called `name`: built-in, or a custom role the workspace defines.
async fn resolve_role(
    state: &WorkspacesState,
    workspace: &str,
    name: &str,
) -> Result<MemberRole, ApiError> {
    if let Some(role) = Role::parse(name) {
        return Ok(role.into());
    }
    let security = refract_storage::access::authorizations_of(state.store.as_ref(), workspace)
        .await
        .map_err(storage)?;
    if security.roles.contains_key(name) {
        Ok(MemberRole::Custom(name.to_string()))
    } else {
        Err(unknown_role(name))
    }
}

/// Who the share is for, as a membership subject: a user id, `*` or `role:<name>`.
async fn member_of(
    state: &WorkspacesState,
    workspace: &str,
    target: Target,
) -> Result<String, ApiError> {
    // `displayName` is accepted (Prisme.ai clients send it) and not stored.
    let _ = target.display_name;
    match (target.id, target.public, target.role) {
        (Some(id), false, None) => UserId::new(id)
            .map(|u| u.to_string())
            .map_err(|e| ApiError::validation("target.id", e.to_string())),
        (None, true, None) => Ok(PUBLIC_MEMBER.to_string()),
        (None, false, Some(role)) => match resolve_role(state, workspace, &role).await? {
            MemberRole::Custom(name) => Ok(format!("{ROLE_MEMBER_PREFIX}{name}")),
            MemberRole::BuiltIn(_) => Err(ApiError::validation(
                "target.role",
                "only custom roles can be shared with; built-in roles are given to users",
            )),
        },
        (None, false, None) if target.email.is_some() => Err(ApiError::validation(
            "target.email",
            "sharing by email is not supported yet; use target.id",
        )),
        _ => Err(ApiError::validation(
            "target",
            "give exactly one of id, public: true or role",
        )),
    }
}

/// `POST /v2/workspaces/{id}/permissions`: `{target: {id | public | role}, permissions: {role}}`.
#[utoipa::path(post, path = "/v2/workspaces/{workspace_id}/permissions", tag = "sharing", params(refract_http::openapi::InWorkspace),
    request_body = ShareRequest,
    responses((status = 200, description = "The share as stored.", body = crate::openapi::UserPermissions),
        (status = 409, description = "The share would take the role of the last owner (`LastOwnerError`).", body = refract_http::openapi::ErrorBody)))]
pub async fn share(
    State(state): State<WorkspacesState>,
    caller: Caller,
    Path(workspace_id): Path<String>,
    body: Unread,
) -> Result<Json<Value>, ApiError> {
    let access = state
        .authorize(
            &caller,
            &workspace_id,
            (Action::ManagePermissions, Subject::Workspaces),
        )
        .await?;
    let req: ShareRequest = body.json(&access).await?;
    let ws = access.id.as_str();
    let role = resolve_role(&state, ws, &req.permissions.role).await?;
    let member = member_of(&state, ws, req.target).await?;
    if member == PUBLIC_MEMBER && role == MemberRole::BuiltIn(Role::Owner) {
        return Err(ApiError::forbidden("the public cannot own a workspace"));
    }
    let owner = access.rights.grant.superadmin || access.rights.grant.role == Some(Role::Owner);
    if role == MemberRole::BuiltIn(Role::Owner) && !owner {
        return Err(ApiError::forbidden("only owners grant the owner role"));
    }
    if role != MemberRole::BuiltIn(Role::Owner) {
        check_not_last_owner(&state, ws, &member).await?;
    }
    let m = Membership {
        workspace_id: ws.to_string(),
        user_id: member,
        role,
    };
    state
        .store
        .put(
            &collections::PERMISSIONS,
            &permission_doc_id(ws, &m.user_id),
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
            types::PERMISSIONS_SHARED,
            saved.clone(),
        )
        .await;
    Ok(Json(saved))
}

/// `GET /v2/workspaces/{id}/permissions`: `{result: [UserPermissions]}`.
#[utoipa::path(get, path = "/v2/workspaces/{workspace_id}/permissions", tag = "sharing", params(refract_http::openapi::InWorkspace),
    responses((status = 200, description = "The workspace's shares.", body = crate::openapi::SharesList)))]
pub async fn list(
    State(state): State<WorkspacesState>,
    caller: Caller,
    Path(workspace_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let access = state
        .authorize(
            &caller,
            &workspace_id,
            (Action::ManagePermissions, Subject::Workspaces),
        )
        .await?;
    let result: Vec<Value> = members(&state, access.id.as_str())
        .await?
        .iter()
        .map(user_permissions)
        .collect();
    Ok(Json(json!({ "result": result })))
}

/// `DELETE /v2/workspaces/{id}/permissions/{id}` (a user id, `*` or `role:<name>`): owners
/// revoke any share; a member may remove itself.
#[utoipa::path(delete, path = "/v2/workspaces/{workspace_id}/permissions/{user_id}", tag = "sharing",
    params(refract_http::openapi::InWorkspace, ("user_id" = String, Path, description = "A user id, `*` (the public) or `role:<name>`.")),
    responses((status = 200, description = "The share is revoked.", body = crate::openapi::Deleted),
        (status = 409, description = "That member is the last owner (`LastOwnerError`).", body = refract_http::openapi::ErrorBody)))]
pub async fn revoke(
    State(state): State<WorkspacesState>,
    caller: Caller,
    Path((workspace_id, member)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let me = caller.require_user()?.to_string();
    let need = if me == member {
        (Action::Read, Subject::Workspaces)
    } else {
        (Action::ManagePermissions, Subject::Workspaces)
    };
    let access = state.authorize(&caller, &workspace_id, need).await?;
    let ws = access.id.as_str();
    check_not_last_owner(&state, ws, &member).await?;
    let id = permission_doc_id(ws, &member);
    if !state
        .store
        .delete(&collections::PERMISSIONS, &id, Expect::Any)
        .await
        .map_err(storage)?
    {
        return Err(ApiError::not_found(format!("{member} is not a member")));
    }
    state
        .emit(
            &caller,
            &access.id,
            types::PERMISSIONS_DELETED,
            json!({ "target": { "id": member } }),
        )
        .await;
    Ok(Json(json!({ "id": member })))
}

/// 409 `LastOwnerError` when `member` is the only owner left.
async fn check_not_last_owner(
    state: &WorkspacesState,
    workspace: &str,
    member: &str,
) -> Result<(), ApiError> {
    let all = members(state, workspace).await?;
    let owners: Vec<&Membership> = all
        .iter()
        .filter(|m| m.role == MemberRole::BuiltIn(Role::Owner))
        .collect();
    if owners.len() == 1 && owners[0].user_id == member {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "LastOwnerError",
            "a workspace keeps at least one owner",
        ));
    }
    Ok(())
}
