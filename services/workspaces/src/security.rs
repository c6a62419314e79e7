//! Workspace security (`spec/http-api.md` §9.2): custom roles and rules (`GET`/`PUT
//! …/security`, `GET …/security/roles`) and workspace API keys (`…/security/apikeys`). Keys are
//! `rfk_` + 43 base64url characters, returned once by the POST that creates them and stored as
//! a SHA-256; every other response carries the `keyHint` only.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use base64::Engine;
use chrono::Utc;
use refract_core::WorkspaceId;
use refract_core::permissions::{
    API_KEY_PREFIX, ApiKeyRecord, Authorizations, PermissionRule, rule_problems,
};
use refract_core::platform::types;
use refract_http::{ApiError, Caller, Json};
use refract_storage::{Expect, api_key_hash, collections};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::body::Unread;
use crate::state::{
    Action, Subject, WorkspacesState, decode, encode, storage, workspace_documents,
};

/// Most API keys per workspace: each one is a credential to audit.
pub const MAX_API_KEYS: usize = 100;
/// Longest API key name.
pub const MAX_NAME_LEN: usize = 200;

const MANAGE: (Action, Subject) = (Action::ManageSecurity, Subject::Workspaces);
const READ: (Action, Subject) = (Action::Read, Subject::Workspaces);

/// 400 `InvalidSecurity` with `details: [{path, message}]`.
fn invalid(problems: Vec<(String, String)>) -> ApiError {
    let details: Vec<Value> = problems
        .iter()
        .map(|(path, message)| json!({ "path": path, "message": message }))
        .collect();
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "InvalidSecurity",
        format!("{} problem(s) in the security settings", problems.len()),
    )
    .with_details(Value::Array(details))
}

/// The body of `PUT …/security`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct WorkspaceSecurity {
    /// The custom roles and the rules; none clears them.
    #[serde(default)]
    authorizations: Authorizations,
}

/// `GET …/security`: `{authorizations: {roles, rules}}`.
#[utoipa::path(get, path = "/v2/workspaces/{workspace_id}/security", tag = "security", params(refract_http::openapi::InWorkspace),
    responses((status = 200, description = "The workspace's custom roles and rules.", body = crate::openapi::SecurityView)))]
pub async fn get(
    State(state): State<WorkspacesState>,
    caller: Caller,
    Path(workspace_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let access = state.authorize(&caller, &workspace_id, READ).await?;
    Ok(Json(
        json!({ "authorizations": access.rights.authorizations }),
    ))
}

/// `PUT …/security`: replaces the roles and rules.
#[utoipa::path(put, path = "/v2/workspaces/{workspace_id}/security", tag = "security", params(refract_http::openapi::InWorkspace),
    request_body = WorkspaceSecurity,
    responses((status = 200, description = "The roles and rules as stored.", body = crate::openapi::SecurityView)))]
pub async fn replace(
    State(state): State<WorkspacesState>,
    caller: Caller,
    Path(workspace_id): Path<String>,
    body: Unread,
) -> Result<Json<Value>, ApiError> {
    caller.require_user()?;
    let access = state.authorize(&caller, &workspace_id, MANAGE).await?;
    let input: WorkspaceSecurity = body.json(&access).await?;
    store(&state, &caller, &access.id, &input).await.map(Json)
}

/// Checks and stores `input` as the roles and rules of `workspace` (the caller may manage its
/// security); answers `{authorizations}` as stored.
async fn store(
    state: &WorkspacesState,
    caller: &Caller,
    workspace: &WorkspaceId,
    input: &WorkspaceSecurity,
) -> Result<Value, ApiError> {
    let problems = input.authorizations.problems();
    if !problems.is_empty() {
        return Err(invalid(problems));
    }
    let body = encode(&input.authorizations)?;
    state
        .store
        .put(
            &collections::SECURITY,
            workspace.as_str(),
            &body,
            Expect::Any,
        )
        .await
        .map_err(storage)?;
    let saved = json!({ "authorizations": body });
    state
        .emit(caller, workspace, types::SECURITY_UPDATED, saved.clone())
        .await;
    Ok(saved)
}

/// Imports a workspace export's `security.yml` (`{authorizations: {roles, rules}}`), as `PUT
/// …/security` would: the importer must be allowed to manage the workspace's security.
pub(crate) async fn import(
    state: &WorkspacesState,
    caller: &Caller,
    workspace_id: &str,
    document: Value,
) -> Result<(), ApiError> {
    caller.require_user()?;
    let access = state.authorize(caller, workspace_id, MANAGE).await?;
    let input: WorkspaceSecurity = serde_json::from_value(document)
        .map_err(|e| ApiError::validation("authorizations", e.to_string()))?;
    store(state, caller, &access.id, &input).await.map(drop)
}

/// `GET …/security/roles`: built-in and custom roles.
#[utoipa::path(get, path = "/v2/workspaces/{workspace_id}/security/roles", tag = "security", params(refract_http::openapi::InWorkspace),
    responses((status = 200, description = "The built-in roles, then the custom ones.", body = Vec<crate::openapi::RoleView>)))]
pub async fn roles(
    State(state): State<WorkspacesState>,
    caller: Caller,
    Path(workspace_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let access = state.authorize(&caller, &workspace_id, READ).await?;
    let mut out: Vec<Value> = ["owner", "editor", "viewer"]
        .iter()
        .map(|name| json!({ "name": name }))
        .collect();
    out.extend(
        access
            .rights
            .authorizations
            .roles
            .iter()
            .map(|(name, role)| json!({ "name": name, "description": role.description })),
    );
    Ok(Json(Value::Array(out)))
}

/// The body of an API key's creation or update.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeyInput {
    /// 1 to 200 characters.
    name: String,
    /// What the key may do (rules without `role`).
    #[serde(default)]
    rules: Vec<PermissionRule>,
    /// A disabled key is refused.
    #[serde(default)]
    disabled: bool,
}

impl KeyInput {
    fn check(&self) -> Result<String, ApiError> {
        let name = self.name.trim().to_string();
        let mut problems = rule_problems(&self.rules, None);
        if name.is_empty() || name.chars().count() > MAX_NAME_LEN {
            problems.push((
                "name".into(),
                format!("must be 1 to {MAX_NAME_LEN} characters"),
            ));
        }
        if self.rules.iter().any(|r| r.role.is_some()) {
            problems.push((
                "rules".into(),
                "API key rules apply to the key; drop `role`".into(),
            ));
        }
        if problems.is_empty() {
            Ok(name)
        } else {
            Err(invalid(problems))
        }
    }
}

/// `ApiKey` as clients see it; `apiKey` only in the creation response.
fn api_key(record: &ApiKeyRecord, key: Option<&str>) -> Value {
    let mut out = json!({
        "id": record.id,
        "keyHint": record.key_hint,
        "name": record.name,
        "subjectType": "workspaces",
        "subjectId": record.workspace_id,
        "rules": record.rules,
        "disabled": record.disabled,
        "createdAt": record.created_at,
    });
    if let Some(key) = key {
        out["apiKey"] = json!(key);
    }
    out
}

async fn keys_of(state: &WorkspacesState, workspace: &str) -> Result<Vec<ApiKeyRecord>, ApiError> {
    workspace_documents(state, &collections::API_KEYS, workspace, "api key").await
}

/// A fresh key: 32 random bytes, base64url without padding.
fn new_key() -> Result<String, ApiError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(ApiError::internal)?;
    Ok(format!(
        "{API_KEY_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// `GET …/security/apikeys`.
#[utoipa::path(get, path = "/v2/workspaces/{workspace_id}/security/apikeys", tag = "security", params(refract_http::openapi::InWorkspace),
    responses((status = 200, description = "The workspace's API keys, oldest first (without the keys themselves).", body = Vec<crate::openapi::ApiKeyView>)))]
pub async fn list_keys(
    State(state): State<WorkspacesState>,
    caller: Caller,
    Path(workspace_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require_user()?;
    let access = state.authorize(&caller, &workspace_id, MANAGE).await?;
    let mut keys = keys_of(&state, access.id.as_str()).await?;
    keys.sort_by_key(|k| k.created_at);
    Ok(Json(Value::Array(
        keys.iter().map(|k| api_key(k, None)).collect(),
    )))
}

/// `POST …/security/apikeys`: `{name, rules}` → `ApiKey` with `apiKey`, shown this once.
#[utoipa::path(post, path = "/v2/workspaces/{workspace_id}/security/apikeys", tag = "security", params(refract_http::openapi::InWorkspace),
    request_body = KeyInput,
    responses((status = 200, description = "The key created, with `apiKey` (shown this once).", body = crate::openapi::ApiKeyView)))]
pub async fn create_key(
    State(state): State<WorkspacesState>,
    caller: Caller,
    Path(workspace_id): Path<String>,
    body: Unread,
) -> Result<Json<Value>, ApiError> {
    let user = caller.require_user()?.to_string();
    let access = state.authorize(&caller, &workspace_id, MANAGE).await?;
    let input: KeyInput = body.json(&access).await?;
    let name = input.check()?;
    if keys_of(&state, access.id.as_str()).await?.len() >= MAX_API_KEYS {
        return Err(ApiError::validation(
            "name",
            format!("a workspace holds at most {MAX_API_KEYS} API keys"),
        ));
    }
    let key = new_key()?;
    let record = ApiKeyRecord {
        id: uuid::Uuid::new_v4().simple().to_string(),
        workspace_id: access.id.to_string(),
        name,
        hash: api_key_hash(&key),
        key_hint: key[key.len() - 4..].to_string(),
        rules: input.rules,
        disabled: input.disabled,
        created_at: Utc::now(),
        created_by: user,
    };
    state
        .store
        .put(
            &collections::API_KEYS,
            &record.id,
            &encode(&record)?,
            Expect::Absent,
        )
        .await
        .map_err(storage)?;
    state
        .emit(
            &caller,
            &access.id,
            types::APIKEYS_CREATED,
            json!({ "id": record.id, "keyHint": record.key_hint }),
        )
        .await;
    Ok(Json(api_key(&record, Some(&key))))
}

/// The key `key_id` of the workspace, or 404 (keys of other workspaces do not exist here).
async fn key_in(
    state: &WorkspacesState,
    workspace: &str,
    key_id: &str,
) -> Result<(ApiKeyRecord, u64), ApiError> {
    let missing = || ApiError::not_found(format!("no API key {key_id}"));
    if key_id.is_empty() || key_id.len() > 64 {
        return Err(missing());
    }
    let doc = state
        .store
        .get(&collections::API_KEYS, key_id)
        .await
        .map_err(storage)?
        .ok_or_else(missing)?;
    let record: ApiKeyRecord = decode(doc.body, "api key")?;
    if record.workspace_id != workspace {
        return Err(missing());
    }
    Ok((record, doc.version))
}

/// `PUT …/security/apikeys/{id}`: `{name, rules, disabled?}`.
#[utoipa::path(put, path = "/v2/workspaces/{workspace_id}/security/apikeys/{key_id}", tag = "security",
    params(refract_http::openapi::InWorkspace, ("key_id" = String, Path, description = "The key's id.")),
    request_body = KeyInput,
    responses((status = 200, description = "The key as updated.", body = crate::openapi::ApiKeyView),
        (status = 409, description = refract_http::openapi::CONFLICT, body = refract_http::openapi::ErrorBody)))]
pub async fn update_key(
    State(state): State<WorkspacesState>,
    caller: Caller,
    Path((workspace_id, key_id)): Path<(String, String)>,
    body: Unread,
) -> Result<Json<Value>, ApiError> {
    caller.require_user()?;
    let access = state.authorize(&caller, &workspace_id, MANAGE).await?;
    let input: KeyInput = body.json(&access).await?;
    let name = input.check()?;
    let (mut record, version) = key_in(&state, access.id.as_str(), &key_id).await?;
    record.name = name;
    record.rules = input.rules;
    record.disabled = input.disabled;
    state
        .store
        .put(
            &collections::API_KEYS,
            &record.id,
            &encode(&record)?,
            Expect::Version(version),
        )
        .await
        .map_err(storage)?;
    state
        .emit(
            &caller,
            &access.id,
            types::APIKEYS_UPDATED,
            json!({ "id": record.id, "keyHint": record.key_hint }),
        )
        .await;
    Ok(Json(api_key(&record, None)))
}

/// `DELETE …/security/apikeys/{id}`: `{id}`; the key stops working at once.
#[utoipa::path(delete, path = "/v2/workspaces/{workspace_id}/security/apikeys/{key_id}", tag = "security",
    params(refract_http::openapi::InWorkspace, ("key_id" = String, Path, description = "The key's id.")),
    responses((status = 200, description = "The key is deleted and stops working at once.", body = crate::openapi::Deleted)))]
pub async fn delete_key(
    State(state): State<WorkspacesState>,
    caller: Caller,
    Path((workspace_id, key_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    caller.require_user()?;
    let access = state.authorize(&caller, &workspace_id, MANAGE).await?;
    let (record, _) = key_in(&state, access.id.as_str(), &key_id).await?;
    state
        .store
        .delete(&collections::API_KEYS, &record.id, Expect::Any)
        .await
        .map_err(storage)?;
    state
        .emit(
            &caller,
            &access.id,
            types::APIKEYS_DELETED,
            json!({ "id": record.id, "keyHint": record.key_hint }),
        )
        .await;
    Ok(Json(json!({ "id": record.id })))
}
