//! Versions of an automation: every successful save (an update, a component upload, an import
//! over it, a restore) keeps the automation as it was as a numbered version, so a bad save can
//! be undone. Numbers grow from 1 for as long as the automation lives (a deleted automation's
//! versions go with it); the newest [`Config::automation_versions`] are kept, older ones are
//! deleted.
//!
//! Stored in the `automation_versions` collection: one index document per automation under
//! its own document id (`<workspaceId>:<slug>`, `{workspaceId, slug, next, numbers}`) and one
//! document per version under `<workspaceId>:<slug>@<n>` (`{workspaceId, slug, number,
//! automation}`), so nothing is ever scanned. Versions follow a rename and go with the
//! automation when it or its workspace is deleted.
//!
//! Routes: `GET …/automations/{slug}/versions` (newest first, without `do`/`output`),
//! `GET …/versions/{n}` (the whole automation as it was) and `POST …/versions/{n}/restore`.
//!
//! [`Config::automation_versions`]: crate::Config::automation_versions

use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::Utc;
use refract_core::ErrorKind;
use refract_core::model::{Automation, automation_doc_id};
use refract_core::platform::types;
use refract_http::{ApiError, Caller, Json};
use refract_storage::{Document, Expect, StorageError, collections};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::automations::{event_payload, load, meta, store};
use crate::state::{Action, Subject, WorkspacesState, decode, encode, storage};

/// Attempts at updating an automation's index when concurrent saves race for it.
const INDEX_ATTEMPTS: usize = 8;

/// The index document of one automation's versions.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    workspace_id: String,
    slug: String,
    /// The number the next version gets.
    next: u64,
    /// The numbers kept, oldest first.
    numbers: Vec<u64>,
}

fn version_id(workspace: &str, slug: &str, number: u64) -> String {
    format!("{}@{number}", automation_doc_id(workspace, slug))
}

/// The document `id` of the collection, if any.
async fn get(state: &WorkspacesState, id: &str) -> Result<Option<Document>, ApiError> {
    state
        .store
        .get(&collections::AUTOMATION_VERSIONS, id)
        .await
        .map_err(storage)
}

/// Writes `body` as document `id` if it is as `expect`ed (a conflict is the caller's to read).
async fn put(
    state: &WorkspacesState,
    id: &str,
    body: &impl Serialize,
    expect: Expect,
) -> Result<Result<(), StorageError>, ApiError> {
    let body = encode(body)?;
    Ok(state
        .store
        .put(&collections::AUTOMATION_VERSIONS, id, &body, expect)
        .await
        .map(drop))
}

async fn delete(state: &WorkspacesState, id: &str) -> Result<(), ApiError> {
    state
        .store
        .delete(&collections::AUTOMATION_VERSIONS, id, Expect::Any)
        .await
        .map_err(storage)?;
    Ok(())
}

async fn read_index(
    state: &WorkspacesState,
    workspace: &str,
    slug: &str,
) -> Result<Option<(Index, u64)>, ApiError> {
    get(state, &automation_doc_id(workspace, slug))
        .await?
        .map(|d| Ok((decode(d.body, "automation versions")?, d.version)))
        .transpose()
}

/// Keeps `previous`, what a save that succeeded just replaced, as a version of the automation
/// now at `slug`. The save stands whatever happens here: a failure is logged, and costs that one
/// version.
pub async fn saved(state: &WorkspacesState, workspace: &str, slug: &str, previous: &Automation) {
    let mut previous = previous.clone();
    previous.slug = slug.to_owned();
    if let Err(e) = keep(state, workspace, previous).await {
        tracing::warn!(workspace_id = workspace, automation = slug, error = %e.message,
            "a saved automation's previous version was not kept");
    }
}

/// Keeps `previous`, the automation `workspace` held before a save, as its next version;
/// deletes the versions past the configured count.
async fn keep(
    state: &WorkspacesState,
    workspace: &str,
    previous: Automation,
) -> Result<(), ApiError> {
    let slug = previous.slug.clone();
    let slug = slug.as_str();
    let kept = state.config.automation_versions.max(1);
    for _ in 0..INDEX_ATTEMPTS {
        let (mut index, expect) = match read_index(state, workspace, slug).await? {
            Some((index, version)) => (index, Expect::Version(version)),
            None => (
                Index {
                    workspace_id: workspace.to_owned(),
                    slug: slug.to_owned(),
                    next: 1,
                    numbers: Vec::new(),
                },
                Expect::Absent,
            ),
        };
        // The number is claimed in the index first, so two saves racing never write the same
        // version; a version whose write failed afterwards is only missing from the listing.
        let number = index.next;
        index.next = number + 1;
        index.numbers.push(number);
        let gone: Vec<u64> = if index.numbers.len() > kept {
            index.numbers.drain(..index.numbers.len() - kept).collect()
        } else {
            Vec::new()
        };
        match put(state, &automation_doc_id(workspace, slug), &index, expect).await? {
            Ok(()) => {}
            // Another save took this number: try the next.
            Err(e) if e.kind() == ErrorKind::Conflict => continue,
            Err(e) => return Err(storage(e)),
        }
        let version = Version {
            workspace_id: workspace.to_owned(),
            slug: slug.to_owned(),
            number,
            automation: previous,
        };
        put(
            state,
            &version_id(workspace, slug, number),
            &version,
            Expect::Any,
        )
        .await?
        .map_err(storage)?;
        for n in gone {
            if let Err(e) = delete(state, &version_id(workspace, slug, n)).await {
                tracing::warn!(workspace_id = workspace, automation = slug, version = n,
                    error = %e.message, "an old automation version was not deleted");
            }
        }
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "AlreadyUsedError",
        "the automation is being saved by someone else; retry",
    ))
}

/// Deletes every version of automation `slug` (it was deleted, or renamed and its versions
/// moved).
pub async fn remove_all(
    state: &WorkspacesState,
    workspace: &str,
    slug: &str,
) -> Result<(), ApiError> {
    let Some((index, _)) = read_index(state, workspace, slug).await? else {
        return Ok(());
    };
    for n in index.numbers {
        delete(state, &version_id(workspace, slug, n)).await?;
    }
    delete(state, &automation_doc_id(workspace, slug)).await
}

/// Copies the versions of automation `old` to its new slug `new` (a rename, already stored);
/// their numbers stay. The caller then deletes the old slug, its versions with it. A failure
/// is logged: the rename stands, and the versions not copied go with the old slug.
pub async fn rename(state: &WorkspacesState, workspace: &str, old: &str, new: &str) {
    if let Err(e) = move_all(state, workspace, old, new).await {
        tracing::warn!(workspace_id = workspace, automation = new, old_slug = old,
            error = %e.message, "a renamed automation's versions were not all moved");
    }
}

async fn move_all(
    state: &WorkspacesState,
    workspace: &str,
    old: &str,
    new: &str,
) -> Result<(), ApiError> {
    let Some((mut index, _)) = read_index(state, workspace, old).await? else {
        return Ok(());
    };
    let mut moved = Vec::with_capacity(index.numbers.len());
    for &n in &index.numbers {
        let Some(mut version) = read_version(state, workspace, old, n).await? else {
            continue;
        };
        version.slug = new.to_owned();
        version.automation.slug = new.to_owned();
        put(state, &version_id(workspace, new, n), &version, Expect::Any)
            .await?
            .map_err(storage)?;
        moved.push(n);
    }
    index.slug = new.to_owned();
    index.numbers = moved;
    // The new slug was free (the rename stored it as new), so it has no index of its own.
    put(
        state,
        &automation_doc_id(workspace, new),
        &index,
        Expect::Absent,
    )
    .await?
    .map_err(storage)
}

/// One stored version.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Version {
    workspace_id: String,
    slug: String,
    number: u64,
    automation: Automation,
}

async fn read_version(
    state: &WorkspacesState,
    workspace: &str,
    slug: &str,
    number: u64,
) -> Result<Option<Version>, ApiError> {
    get(state, &version_id(workspace, slug, number))
        .await?
        .map(|d| decode(d.body, "automation version"))
        .transpose()
}

/// The version `n` of automation `slug` (the caller has loaded the automation), or 404.
async fn version_or_404(
    state: &WorkspacesState,
    workspace: &str,
    slug: &str,
    n: &str,
) -> Result<Version, ApiError> {
    let missing = || ApiError::not_found(format!("automation {slug:?} has no version {n:?}"));
    let number: u64 = n.parse().map_err(|_| missing())?;
    let listed = read_index(state, workspace, slug)
        .await?
        .is_some_and(|(index, _)| index.numbers.contains(&number));
    if !listed {
        return Err(missing());
    }
    read_version(state, workspace, slug, number)
        .await?
        .ok_or_else(missing)
}

/// A version as listed: its number and the automation's metadata as it was.
fn listed(version: &Version) -> Result<Value, ApiError> {
    let mut v = meta(&version.automation)?;
    if let Some(map) = v.as_object_mut() {
        map.insert("version".into(), json!(version.number));
    }
    Ok(v)
}

/// `GET …/automations/{slug}/versions`: `{versions: [AutomationMeta + version], next}`, newest
/// first; `next` is the number the next save will keep.
#[utoipa::path(get, path = "/v2/workspaces/{workspace_id}/automations/{slug}/versions", tag = "automations",
    params(refract_http::openapi::InWorkspace, ("slug" = String, Path, description = "The automation's slug.")),
    responses((status = 200, description = "The automation's versions, newest first, and the number the next save keeps.", body = crate::openapi::AutomationVersions)))]
pub async fn list(
    State(state): State<WorkspacesState>,
    caller: Caller,
    Path((workspace_id, slug)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let access = state
        .authorize(&caller, &workspace_id, (Action::Read, Subject::Automations))
        .await?;
    let ws = access.id.as_str();
    load(&state, ws, &slug).await?;
    // An automation never saved since its creation has no index yet: its first version is 1.
    let (numbers, next) = read_index(&state, ws, &slug)
        .await?
        .map_or((Vec::new(), 1), |(i, _)| (i.numbers, i.next));
    let mut versions = Vec::with_capacity(numbers.len());
    for &n in numbers.iter().rev() {
        if let Some(version) = read_version(&state, ws, &slug, n).await? {
            versions.push(listed(&version)?);
        }
    }
    Ok(Json(json!({"versions": versions, "next": next})))
}

/// `GET …/automations/{slug}/versions/{n}`: `{version, automation}`, the automation whole.
#[utoipa::path(get, path = "/v2/workspaces/{workspace_id}/automations/{slug}/versions/{version}", tag = "automations",
    params(refract_http::openapi::InWorkspace, ("slug" = String, Path, description = "The automation's slug."), ("version" = String, Path, description = "The version's number.")),
    responses((status = 200, description = "The version, with the automation whole as it was.", body = crate::openapi::AutomationVersion)))]
pub async fn get_one(
    State(state): State<WorkspacesState>,
    caller: Caller,
    Path((workspace_id, slug, n)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    let access = state
        .authorize(&caller, &workspace_id, (Action::Read, Subject::Automations))
        .await?;
    let ws = access.id.as_str();
    load(&state, ws, &slug).await?;
    let version = version_or_404(&state, ws, &slug, &n).await?;
    Ok(Json(
        json!({"version": version.number, "automation": encode(&version.automation)?}),
    ))
}

/// `POST …/automations/{slug}/versions/{n}/restore`: the automation becomes version `n` again
/// (its slug stays, and what it was just before is kept as a version too, so a restore can be
/// undone). The version must be of the automation's kind and pass today's checks of a save; a
/// component version runs the component it had, whose bytes stay stored by digest.
#[utoipa::path(post, path = "/v2/workspaces/{workspace_id}/automations/{slug}/versions/{version}/restore", tag = "automations",
    params(refract_http::openapi::InWorkspace, ("slug" = String, Path, description = "The automation's slug."), ("version" = String, Path, description = "The version's number.")),
    responses((status = 200, description = "The automation as restored.", body = Automation),
        (status = 409, description = "The version is of another kind (`AutomationKindConflict`), or the automation changed meanwhile.", body = refract_http::openapi::ErrorBody)))]
pub async fn restore(
    State(state): State<WorkspacesState>,
    caller: Caller,
    Path((workspace_id, slug, n)): Path<(String, String, String)>,
) -> Result<Json<Automation>, ApiError> {
    let access = state
        .authorize(
            &caller,
            &workspace_id,
            (Action::Update, Subject::Automations),
        )
        .await?;
    let ws = access.id.as_str();
    let (current, expect) = load(&state, ws, &slug).await?;
    let version = version_or_404(&state, ws, &slug, &n).await?;
    let mut a = version.automation;
    if a.kind != current.kind {
        return Err(crate::automations::kind_conflict(
            "this version is of another kind of automation",
        ));
    }
    a.slug = current.slug.clone();
    a.created_at = current.created_at;
    a.created_by = current.created_by.clone();
    a.updated_at = Utc::now();
    a.updated_by = caller.require_user()?.to_string();
    crate::automation_fields::recheck(&state, &a)?;
    match store(&state, ws, &a, Expect::Version(expect)).await? {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::Conflict => {
            return Err(crate::automations::changed_meanwhile("while restoring"));
        }
        Err(e) => return Err(storage(e)),
    }
    saved(&state, ws, &a.slug, &current).await;
    state
        .emit(
            &caller,
            &access.id,
            types::AUTOMATIONS_UPDATED,
            event_payload(&a, None),
        )
        .await;
    Ok(Json(a))
}
