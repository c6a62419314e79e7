//! Workspace CRUD (`spec/http-api.md` §4). The creator becomes `owner` through a membership
//! document; listing goes through the caller's memberships, so a user sees only their
//! workspaces.

use axum::extract::{Path, RawQuery, State};
use chrono::Utc;
use refract_core::model::{Membership, Role, Workspace, check_workspace_slug, permission_doc_id};
use refract_core::platform::types;
use refract_core::{ErrorKind, WorkspaceId};
use refract_http::{ApiError, Caller, Json};
use refract_storage::documents::MAX_FIND_LIMIT;
use refract_storage::{CollectionSpec, Expect, collections};
use serde_json::{Map, Value, json};

use crate::body::Unread;
use crate::params::{self, invalid_slug};
use crate::state::signed_in;
use crate::state::{Action, Subject, WorkspacesState, decode, encode, storage};
use crate::{automations, secrets};

/// Attempts at a free generated slug before giving up.
const SLUG_ATTEMPTS: usize = 10;

/// Longest workspace description, in characters.
const MAX_DESCRIPTION: usize = 2_000;

const ADJECTIVES: &[&str] = &[
    "amber", "brave", "calm", "clever", "crisp", "eager", "fuzzy", "gentle", "golden", "happy",
    "jolly", "keen", "lively", "lucky", "mellow", "nimble", "proud", "quiet", "rapid", "shiny",
    "sunny", "swift", "tidy", "witty",
];
const NOUNS: &[&str] = &[
    "badger", "beacon", "canyon", "comet", "falcon", "forest", "harbor", "island", "lagoon",
    "meadow", "otter", "panda", "pebble", "planet", "quartz", "river", "rocket", "sparrow",
    "summit", "tiger", "tulip", "valley", "walrus", "willow",
];

/// A generated slug: `adjective-noun-NN`.
pub fn generate_slug() -> String {
    let r = params::random_bytes();
    let adjective = ADJECTIVES[usize::from(r[0]) % ADJECTIVES.len()];
    let noun = NOUNS[usize::from(r[1]) % NOUNS.len()];
    format!("{adjective}-{noun}-{:02}", r[2] % 100)
}

/// `GET /v2/workspaces`: the caller's workspaces (`WorkspaceMeta`), filtered, sorted, paged.
#[utoipa::path(get, path = "/v2/workspaces", tag = "workspaces",
    params(crate::openapi::Page,
        ("labels" = Option<String>, Query, description = "Comma-separated labels the workspace must all have."),
        ("ids" = Option<String>, Query, description = "Comma-separated workspace ids to keep."),
        ("name" = Option<String>, Query, description = "Text the name must contain (case-insensitive)."),
        ("slug" = Option<String>, Query, description = "The exact slug."),
        ("sort" = Option<String>, Query, description = "`createdAt`, `updatedAt`, `name` or `slug`, `-` first for descending (default `-createdAt`).")),
    responses((status = 200, description = "The caller's workspaces (`WorkspaceMeta`: without `config`).", body = Vec<Workspace>)))]
pub async fn list(
    State(state): State<WorkspacesState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Json<Vec<Value>>, ApiError> {
    let user = caller.require_user()?;
    let q = params::query(raw.as_deref());
    let (offset, limit) = params::page(&q)?;
    let members = state
        .store
        .find(
            &collections::PERMISSIONS,
            "userId",
            &json!(user.as_str()),
            MAX_FIND_LIMIT,
        )
        .await
        .map_err(storage)?;
    let labels = params::list(&q, "labels");
    let ids = params::list(&q, "ids");
    let name = q.get("name").map(|n| n.to_lowercase());
    let mut found = Vec::new();
    for doc in members {
        let m: Membership = decode(doc.body, "membership")?;
        if ids
            .as_ref()
            .is_some_and(|ids| !ids.contains(&m.workspace_id))
        {
            continue;
        }
        let Some(doc) = state
            .store
            .get(&collections::WORKSPACES, &m.workspace_id)
            .await
            .map_err(storage)?
        else {
            continue;
        };
        let ws: Workspace = decode(doc.body, "workspace")?;
        let keep = q.get("slug").is_none_or(|s| *s == ws.slug)
            && labels
                .as_ref()
                .is_none_or(|want| want.iter().all(|l| ws.labels.contains(l)))
            && name.as_ref().is_none_or(|n| {
                params::first_text(&ws.name).is_some_and(|t| t.to_lowercase().contains(n.as_str()))
            });
        if keep {
            found.push(ws);
        }
    }
    let sort = q.get("sort").map_or("-createdAt", String::as_str);
    let (descending, field) = match sort.strip_prefix('-') {
        Some(f) => (true, f),
        None => (false, sort),
    };
    match field {
        "createdAt" => found.sort_by_key(|w| w.created_at),
        "updatedAt" => found.sort_by_key(|w| w.updated_at),
        "slug" => found.sort_by(|a, b| a.slug.cmp(&b.slug)),
        "name" => found.sort_by_key(|w| params::first_text(&w.name).map(str::to_lowercase)),
        _ => {
            return Err(ApiError::validation(
                "sort",
                "one of createdAt, updatedAt, name, slug, with an optional '-'",
            ));
        }
    }
    if descending {
        found.reverse();
    }
    found
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|w| meta(&w))
        .collect::<Result<_, _>>()
        .map(Json)
}

/// `WorkspaceMeta`: the workspace without its config.
fn meta(ws: &Workspace) -> Result<Value, ApiError> {
    let mut v = encode(ws)?;
    if let Some(map) = v.as_object_mut() {
        map.remove("config");
    }
    Ok(v)
}

/// `POST /v2/workspaces`: `name` required; `slug` checked, or generated when absent.
#[utoipa::path(post, path = "/v2/workspaces", tag = "workspaces",
    request_body = crate::openapi::WorkspaceInput,
    responses((status = 200, description = "The workspace created; the caller owns it.", body = Workspace),
        (status = 409, description = "The slug is already used.", body = refract_http::openapi::ErrorBody)))]
pub async fn create(
    State(state): State<WorkspacesState>,
    caller: Caller,
    body: Unread,
) -> Result<Json<Workspace>, ApiError> {
    let checked = signed_in(&caller)?;
    let body: Map<String, Value> = body.json(&checked).await?;
    let user = checked.user().clone();
    let now = Utc::now();
    let mut ws = Workspace {
        id: params::new_id(),
        slug: String::new(),
        name: Value::Null,
        description: None,
        photo: None,
        labels: Vec::new(),
        config: None,
        created_at: now,
        updated_at: now,
        created_by: user.to_string(),
    };
    apply(&mut ws, body)?;
    if ws.name.is_null() {
        return Err(ApiError::validation("name", "is required"));
    }
    let explicit = !ws.slug.is_empty();
    for attempt in 1..=SLUG_ATTEMPTS {
        if !explicit {
            ws.slug = generate_slug();
        }
        match state
            .store
            .put(
                &collections::WORKSPACES,
                &ws.id,
                &encode(&ws)?,
                Expect::Absent,
            )
            .await
        {
            Ok(_) => break,
            Err(e) if e.kind() == ErrorKind::Conflict && explicit => {
                return Err(ApiError::already_used(
                    "slug",
                    format!("slug {:?} is already used", ws.slug),
                ));
            }
            Err(e) if e.kind() == ErrorKind::Conflict && attempt < SLUG_ATTEMPTS => continue,
            Err(e) => return Err(storage(e)),
        }
    }
    let owner = Membership {
        workspace_id: ws.id.clone(),
        user_id: user.to_string(),
        role: Role::Owner.into(),
    };
    state
        .store
        .put(
            &collections::PERMISSIONS,
            &permission_doc_id(&ws.id, user.as_str()),
            &encode(&owner)?,
            Expect::Any,
        )
        .await
        .map_err(storage)?;
    let id = WorkspaceId::new(ws.id.clone()).map_err(ApiError::internal)?;
    tracing::info!(workspace_id = %id, slug = %ws.slug, correlation_id = %caller.correlation_id, "workspace created");
    state
        .emit(
            &caller,
            &id,
            types::WORKSPACES_CREATED,
            json!({ "workspace": ws }),
        )
        .await;
    Ok(Json(ws))
}

/// Applies the members of a create or PATCH body. Read-only members of the GET shape are
/// ignored so a client can send back what it read.
fn apply(ws: &mut Workspace, body: Map<String, Value>) -> Result<(), ApiError> {
    for (key, value) in body {
        match key.as_str() {
            "slug" => {
                let slug = params::string("slug", &value)?;
                check_workspace_slug(slug).map_err(|e| invalid_slug(slug, e))?;
                ws.slug = slug.to_string();
            }
            "name" => {
                params::localized("name", &value, params::check_name)?;
                ws.name = value;
            }
            "description" if value.is_null() => ws.description = None,
            "description" => {
                params::localized("description", &value, params::check_text(MAX_DESCRIPTION))?;
                ws.description = Some(value);
            }
            "photo" if value.is_null() => ws.photo = None,
            "photo" => ws.photo = Some(params::string("photo", &value)?.to_string()),
            "labels" if value.is_null() => ws.labels.clear(),
            "labels" => ws.labels = params::labels(&value)?,
            "config" if value.is_null() => ws.config = None,
            "config" if value.is_object() => ws.config = Some(value),
            "config" => {
                return Err(ApiError::validation(
                    "config",
                    "must be an object {schema?, value?}",
                ));
            }
            "id" if value.as_str() == Some(ws.id.as_str()) => {}
            "id" => {
                return Err(ApiError::validation(
                    "id",
                    "is assigned by the server and cannot change",
                ));
            }
            "createdAt" | "updatedAt" | "createdBy" | "automations" | "imports" | "pages" => {}
            other => return Err(params::unknown_field(other)),
        }
    }
    Ok(())
}

/// `GET /v2/workspaces/{id}`: `WorkspaceDetail` (with `automations` as `{slug: AutomationMeta}`).
#[utoipa::path(get, path = "/v2/workspaces/{workspace_id}", tag = "workspaces", params(refract_http::openapi::InWorkspace),
    responses((status = 200, description = "The workspace with its automations' metadata (`WorkspaceDetail`).", body = crate::openapi::WorkspaceDetail)))]
pub async fn get_one(
    State(state): State<WorkspacesState>,
    caller: Caller,
    Path(workspace_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let access = state
        .authorize(&caller, &workspace_id, (Action::Read, Subject::Workspaces))
        .await?;
    let mut detail = encode(&access.workspace)?;
    let mut autos = Map::new();
    for a in automations::load_all(&state, &access.id).await? {
        autos.insert(a.slug.clone(), automations::meta(&a)?);
    }
    if let Some(map) = detail.as_object_mut() {
        map.insert("automations".into(), Value::Object(autos));
        map.insert("imports".into(), json!({}));
        map.insert("pages".into(), json!({}));
    }
    Ok(Json(detail))
}

/// Rounds of `find` + delete over a deleted workspace's memberships.
const MEMBERSHIP_SWEEPS: usize = 100;

/// Rounds over what is left of a deleted workspace's automation versions (those of its
/// automations went with them; only a save racing the deletion leaves any).
const VERSION_SWEEPS: usize = 16;

/// Deletes every document of `workspace` in `collection` (by its `workspaceId`), a page per
/// round, in at most `rounds`: a backend that reports a delete but keeps the document must not
/// spin us.
async fn sweep(
    state: &WorkspacesState,
    collection: &CollectionSpec,
    workspace: &str,
    rounds: usize,
) -> Result<(), ApiError> {
    for _ in 0..rounds {
        let left = state
            .store
            .find(collection, "workspaceId", &json!(workspace), MAX_FIND_LIMIT)
            .await
            .map_err(storage)?;
        if left.is_empty() {
            break;
        }
        for doc in left {
            state
                .store
                .delete(collection, &doc.id, Expect::Any)
                .await
                .map_err(storage)?;
        }
    }
    Ok(())
}

/// Attempts at a PATCH that lost an optimistic-version race.
const WRITE_ATTEMPTS: usize = 3;

/// `PATCH /v2/workspaces/{id}`: any subset of the writable members.
#[utoipa::path(patch, path = "/v2/workspaces/{workspace_id}", tag = "workspaces", params(refract_http::openapi::InWorkspace),
    request_body = crate::openapi::WorkspaceInput,
    responses((status = 200, description = "The workspace as updated.", body = Workspace),
        (status = 409, description = refract_http::openapi::CONFLICT, body = refract_http::openapi::ErrorBody)))]
pub async fn update(
    State(state): State<WorkspacesState>,
    caller: Caller,
    Path(workspace_id): Path<String>,
    body: Unread,
) -> Result<Json<Workspace>, ApiError> {
    // `change` checks again on every attempt; this first check guards the body.
    let access = state
        .authorize(
            &caller,
            &workspace_id,
            (Action::Update, Subject::Workspaces),
        )
        .await?;
    let body: Map<String, Value> = body.json(&access).await?;
    change(&state, &caller, &workspace_id, |ws| apply(ws, body.clone()))
        .await
        .map(Json)
}

/// Applies `edit` to the workspace (retried when another write comes first) and emits
/// `workspaces.updated`, plus `workspaces.configured` when its config changed.
pub(crate) async fn change(
    state: &WorkspacesState,
    caller: &Caller,
    workspace_id: &str,
    edit: impl Fn(&mut Workspace) -> Result<(), ApiError>,
) -> Result<Workspace, ApiError> {
    for _ in 0..WRITE_ATTEMPTS {
        let access = state
            .authorize(caller, workspace_id, (Action::Update, Subject::Workspaces))
            .await?;
        let old = access.workspace;
        let mut ws = old.clone();
        edit(&mut ws)?;
        ws.updated_at = Utc::now();
        match state
            .store
            .put(
                &collections::WORKSPACES,
                &ws.id,
                &encode(&ws)?,
                Expect::Version(access.version),
            )
            .await
        {
            Ok(_) => {
                let mut payload = json!({ "workspace": ws });
                if old.slug != ws.slug {
                    payload["oldSlug"] = json!(old.slug);
                }
                state
                    .emit(caller, &access.id, types::WORKSPACES_UPDATED, payload)
                    .await;
                if old.config != ws.config {
                    let configured = json!({ "config": ws.config, "oldConfig": old.config });
                    state
                        .emit(caller, &access.id, types::WORKSPACES_CONFIGURED, configured)
                        .await;
                }
                return Ok(ws);
            }
            Err(e) if e.kind() == ErrorKind::Conflict => {
                if ws.slug != old.slug && slug_taken(state, &ws.slug, &ws.id).await? {
                    return Err(ApiError::already_used(
                        "slug",
                        format!("slug {:?} is already used", ws.slug),
                    ));
                }
            }
            Err(e) => return Err(storage(e)),
        }
    }
    Err(ApiError::new(
        axum::http::StatusCode::CONFLICT,
        "AlreadyUsedError",
        "the workspace changed while updating; retry",
    )
    .with_details(json!({ "field": "version" })))
}

async fn slug_taken(state: &WorkspacesState, slug: &str, own_id: &str) -> Result<bool, ApiError> {
    let found = state
        .store
        .find(&collections::WORKSPACES, "slug", &json!(slug), 2)
        .await
        .map_err(storage)?;
    Ok(found.iter().any(|d| d.id != own_id))
}

/// `DELETE /v2/workspaces/{id}` (owners): the workspace, its memberships, automations and
/// secrets. Component blobs are content-addressed and may be shared, so they stay.
#[utoipa::path(delete, path = "/v2/workspaces/{workspace_id}", tag = "workspaces", params(refract_http::openapi::InWorkspace),
    responses((status = 200, description = "The workspace is deleted, with its memberships, automations, secrets and app instances.", body = crate::openapi::Deleted)))]
pub async fn remove(
    State(state): State<WorkspacesState>,
    caller: Caller,
    Path(workspace_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let access = state
        .authorize(
            &caller,
            &workspace_id,
            (Action::Delete, Subject::Workspaces),
        )
        .await?;
    let id = access.id.as_str();
    state
        .store
        .delete(&collections::WORKSPACES, id, Expect::Any)
        .await
        .map_err(storage)?;
    for a in automations::load_all(&state, &access.id).await? {
        automations::delete_doc(&state, id, &a.slug).await?;
    }
    // Versions of its automations went with them; this takes any a save racing the deletion
    // left behind.
    sweep(
        &state,
        &collections::AUTOMATION_VERSIONS,
        id,
        VERSION_SWEEPS,
    )
    .await?;
    secrets::delete_all(&state, id).await?;
    crate::instances::delete_all(&state, id).await?;
    sweep(&state, &collections::PERMISSIONS, id, MEMBERSHIP_SWEEPS).await?;
    tracing::info!(workspace_id = %access.id, correlation_id = %caller.correlation_id, "workspace deleted");
    let payload = json!({ "workspaceId": id, "workspaceSlug": access.workspace.slug });
    state
        .emit(&caller, &access.id, types::WORKSPACES_DELETED, payload)
        .await;
    Ok(Json(json!({ "id": id })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_slugs_are_valid() {
        for _ in 0..50 {
            let s = generate_slug();
            assert!(check_workspace_slug(&s).is_ok(), "{s}");
        }
    }
}
