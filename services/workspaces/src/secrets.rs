//! Workspace secrets (`spec/http-api.md` §9.2): values are write-only, listings carry names and
//! metadata only. Documents live in the `secrets` collection under `<workspaceId>:<name>`, body
//! `{workspaceId, name, sealed | value, description?, createdAt, createdBy, updatedAt,
//! updatedBy}`. Owners only (`manage_security`).
//!
//! A tenant's value is stored sealed (`sealed`: AES-256-GCM under the platform keyring's
//! sealing key, bound to the workspace and name, [`refract_secrets`]); the runtime opens it for
//! runs. System secrets (`prismeai_*`: rate-limit settings written by superadmins, read by the
//! gateway and the runtime's throttles) are platform settings, not credentials, and keep their
//! `value` in the clear; so do values written before sealing existed, until their next write.

use refract_core::platform::types;
use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use refract_http::{ApiError, Caller, Json};
use refract_storage::{Expect, collections};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use refract_secrets::{Sealed, seal_secret};

use crate::body::Unread;
use crate::config::{MAX_SECRET_BYTES, MAX_SECRETS};
use crate::state::{Action, Subject, WorkspacesState, encode, storage, workspace_documents};

/// Names reserved for system secrets, writable by superadmins only.
const SYSTEM_PREFIX: &str = "prismeai_";

/// A stored secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Secret {
    pub workspace_id: String,
    pub name: String,
    /// The value in the clear: system secrets, and values stored before sealing existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// The value sealed under the platform keyring (every tenant secret written since).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<Sealed>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
}

/// The document id of secret `name` in `workspace`.
pub fn secret_doc_id(workspace: &str, name: &str) -> String {
    format!("{workspace}:{name}")
}

/// What listings show of a secret: never its value.
fn public(s: &Secret) -> Value {
    let mut v = json!({ "createdAt": s.created_at, "createdBy": s.created_by, "updatedAt": s.updated_at, "updatedBy": s.updated_by });
    if let Some(d) = &s.description {
        v["description"] = json!(d);
    }
    v
}

/// Checks a secret name: `^[A-Za-z_][A-Za-z0-9_]{0,63}$`; system names for superadmins only.
fn check_name(name: &str, caller: &Caller) -> Result<(), ApiError> {
    let mut chars = name.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 64;
    if !ok {
        return Err(ApiError::validation(
            name,
            "secret names match ^[A-Za-z_][A-Za-z0-9_]{0,63}$",
        ));
    }
    if name.starts_with(SYSTEM_PREFIX) && !caller.superadmin {
        return Err(ApiError::forbidden(format!(
            "{SYSTEM_PREFIX}* secrets are writable by superadmins only"
        )));
    }
    Ok(())
}

async fn load_all(
    state: &WorkspacesState,
    workspace: &str,
) -> Result<BTreeMap<String, Secret>, ApiError> {
    let secrets: Vec<Secret> =
        workspace_documents(state, &collections::SECRETS, workspace, "secret").await?;
    Ok(secrets.into_iter().map(|s| (s.name.clone(), s)).collect())
}

/// Deletes every secret of `workspace` (workspace deletion).
pub async fn delete_all(state: &WorkspacesState, workspace: &str) -> Result<(), ApiError> {
    for name in load_all(state, workspace).await?.into_keys() {
        state
            .store
            .delete(
                &collections::SECRETS,
                &secret_doc_id(workspace, &name),
                Expect::Any,
            )
            .await
            .map_err(storage)?;
    }
    Ok(())
}

fn listing(all: &BTreeMap<String, Secret>) -> Value {
    Value::Object(all.iter().map(|(k, s)| (k.clone(), public(s))).collect())
}

/// The workspace's secrets by name, with their descriptions and dates, never their values (a
/// workspace export).
pub(crate) async fn names(state: &WorkspacesState, workspace: &str) -> Result<Value, ApiError> {
    Ok(listing(&load_all(state, workspace).await?))
}

/// `GET …/security/secrets`.
#[utoipa::path(get, path = "/v2/workspaces/{workspace_id}/security/secrets", tag = "secrets", params(refract_http::openapi::InWorkspace),
    responses((status = 200, description = "The secrets by name, with their metadata, never their values.", body = BTreeMap<String, crate::openapi::SecretMeta>)))]
pub async fn list(
    State(state): State<WorkspacesState>,
    caller: Caller,
    Path(workspace_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let access = state
        .authorize(
            &caller,
            &workspace_id,
            (Action::ManageSecurity, Subject::Workspaces),
        )
        .await?;
    Ok(Json(listing(&load_all(&state, access.id.as_str()).await?)))
}

/// `PATCH …/security/secrets`: `{name: {value, description?}}` merged into the existing ones.
#[utoipa::path(patch, path = "/v2/workspaces/{workspace_id}/security/secrets", tag = "secrets", params(refract_http::openapi::InWorkspace),
    request_body(description = "Secrets by name, merged into the existing ones.", content((BTreeMap<String, crate::openapi::SecretInput> = "application/json"))),
    responses((status = 200, description = "Every secret by name, with its metadata.", body = BTreeMap<String, crate::openapi::SecretMeta>)))]
pub async fn merge(
    State(state): State<WorkspacesState>,
    caller: Caller,
    Path(workspace_id): Path<String>,
    body: Unread,
) -> Result<Json<Value>, ApiError> {
    write(state, caller, workspace_id, body, false).await
}

/// `PUT …/security/secrets`: the full map; names left out are deleted.
#[utoipa::path(put, path = "/v2/workspaces/{workspace_id}/security/secrets", tag = "secrets", params(refract_http::openapi::InWorkspace),
    request_body(description = "Every secret by name; secrets left out are deleted (system secrets only by superadmins).", content((BTreeMap<String, crate::openapi::SecretInput> = "application/json"))),
    responses((status = 200, description = "Every secret by name, with its metadata.", body = BTreeMap<String, crate::openapi::SecretMeta>)))]
pub async fn replace(
    State(state): State<WorkspacesState>,
    caller: Caller,
    Path(workspace_id): Path<String>,
    body: Unread,
) -> Result<Json<Value>, ApiError> {
    write(state, caller, workspace_id, body, true).await
}

async fn write(
    state: WorkspacesState,
    caller: Caller,
    workspace_id: String,
    body: Unread,
    replace: bool,
) -> Result<Json<Value>, ApiError> {
    let access = state
        .authorize(
            &caller,
            &workspace_id,
            (Action::ManageSecurity, Subject::Workspaces),
        )
        .await?;
    let body: Map<String, Value> = body.json(&access).await?;
    let user = caller.require_user()?.to_string();
    let ws = access.id.as_str();
    let mut input = Vec::new();
    for (name, entry) in &body {
        check_name(name, &caller)?;
        let Some(obj) = entry.as_object() else {
            return Err(ApiError::validation(name, "must be {value, description?}"));
        };
        if let Some(k) = obj
            .keys()
            .find(|k| !matches!(k.as_str(), "value" | "description"))
        {
            return Err(ApiError::validation(
                &format!("{name}.{k}"),
                "unknown field",
            ));
        }
        let value = obj
            .get("value")
            .cloned()
            .ok_or_else(|| ApiError::validation(&format!("{name}.value"), "is required"))?;
        if serde_json::to_vec(&value).map_or(0, |v| v.len()) > MAX_SECRET_BYTES {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PayloadTooLarge",
                format!("secret {name} is over {MAX_SECRET_BYTES} bytes"),
            )
            .with_details(json!({ "limit": MAX_SECRET_BYTES })));
        }
        let description = match obj.get("description") {
            None | Some(Value::Null) => None,
            Some(Value::String(d)) => Some(d.clone()),
            Some(_) => {
                return Err(ApiError::validation(
                    &format!("{name}.description"),
                    "must be a string",
                ));
            }
        };
        input.push((name.clone(), value, description));
    }
    let mut all = load_all(&state, ws).await?;
    let mut changed: Vec<String> = Vec::new();
    if replace {
        let gone: Vec<String> = all
            .keys()
            .filter(|k| !body.contains_key(*k))
            .cloned()
            .collect();
        for name in gone {
            if name.starts_with(SYSTEM_PREFIX) && !caller.superadmin {
                continue;
            }
            state
                .store
                .delete(
                    &collections::SECRETS,
                    &secret_doc_id(ws, &name),
                    Expect::Any,
                )
                .await
                .map_err(storage)?;
            all.remove(&name);
            changed.push(name);
        }
    }
    let new_names = input
        .iter()
        .filter(|(n, _, _)| !all.contains_key(n))
        .count();
    if all.len() + new_names > MAX_SECRETS {
        return Err(ApiError::validation(
            "body",
            format!("a workspace holds at most {MAX_SECRETS} secrets"),
        ));
    }
    let now = Utc::now();
    for (name, value, description) in input {
        let (value, sealed) = if name.starts_with(SYSTEM_PREFIX) {
            (Some(value), None)
        } else {
            let sealed = seal_secret(&state.config.keyring, ws, &name, &value).map_err(|e| {
                tracing::error!(workspace_id = ws, error = %e, "could not seal a secret");
                ApiError::unavailable("secrets cannot be stored right now")
            })?;
            (None, Some(sealed))
        };
        let secret = match all.get(&name) {
            Some(old) => Secret {
                value,
                sealed,
                description: description.or(old.description.clone()),
                updated_at: now,
                updated_by: user.clone(),
                ..old.clone()
            },
            None => Secret {
                workspace_id: ws.to_string(),
                name: name.clone(),
                value,
                sealed,
                description,
                created_at: now,
                created_by: user.clone(),
                updated_at: now,
                updated_by: user.clone(),
            },
        };
        state
            .store
            .put(
                &collections::SECRETS,
                &secret_doc_id(ws, &name),
                &encode(&secret)?,
                Expect::Any,
            )
            .await
            .map_err(storage)?;
        all.insert(name.clone(), secret);
        changed.push(name);
    }
    changed.sort();
    state
        .emit(
            &caller,
            &access.id,
            types::SECRETS_UPDATED,
            json!({ "names": changed }),
        )
        .await;
    Ok(Json(listing(&all)))
}

/// `DELETE …/security/secrets/{name}`: `{secretName}`.
#[utoipa::path(delete, path = "/v2/workspaces/{workspace_id}/security/secrets/{name}", tag = "secrets",
    params(refract_http::openapi::InWorkspace, ("name" = String, Path, description = "The secret's name.")),
    responses((status = 200, description = "The secret is deleted.", body = crate::openapi::DeletedSecret)))]
pub async fn remove(
    State(state): State<WorkspacesState>,
    caller: Caller,
    Path((workspace_id, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let access = state
        .authorize(
            &caller,
            &workspace_id,
            (Action::ManageSecurity, Subject::Workspaces),
        )
        .await?;
    check_name(&name, &caller)?;
    let deleted = state
        .store
        .delete(
            &collections::SECRETS,
            &secret_doc_id(access.id.as_str(), &name),
            Expect::Any,
        )
        .await
        .map_err(storage)?;
    if !deleted {
        return Err(ApiError::not_found(format!("secret {name} not found")));
    }
    state
        .emit(
            &caller,
            &access.id,
            types::SECRETS_UPDATED,
            json!({ "names": [name] }),
        )
        .await;
    Ok(Json(json!({ "secretName": name })))
}
