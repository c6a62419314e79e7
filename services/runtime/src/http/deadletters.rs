//! Dead letters (`/v2/workspaces/{workspaceId}/deadletters`): the runs that failed every
//! attempt of their automation's `retry` policy, and the broker's own dead letters of the
//! workspace's events. Listed to those who may read automations; replayed (run once more with
//! the automation as it is now) by those who may test them; deleted by those who may change
//! them.

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, Uri};
use refract_core::permissions::{Action, Subject};
use refract_host::RunOutcome;
use refract_http::{ApiError, Caller, Json};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{rights, workspace};
use crate::retries::{Attempt, DeadLetter, failure};
use crate::run::output_value;
use crate::state::RuntimeState;

/// Default and largest page.
const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 200;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct Page {
    /// The last id of the previous page.
    after: Option<String>,
    limit: Option<u32>,
}

fn storage(e: refract_storage::StorageError) -> ApiError {
    ApiError::from_kind(e.kind(), e)
}

/// `GET …/deadletters`: `{result: {deadLetters, next, broker}}`, oldest first; `next` is the
/// cursor of the next page (`after`), `broker` the broker's dead letters of the workspace's
/// events (first page only).
#[utoipa::path(get, path = "/v2/workspaces/{workspace_id}/deadletters", tag = "dead letters",
    params(refract_http::openapi::InWorkspace, Page),
    responses((status = 200, description = "`{result: {deadLetters, next, broker}}`, oldest first.", body = super::openapi::DeadLetterPage)))]
pub(super) async fn list(
    State(state): State<RuntimeState>,
    Path(workspace_id): Path<String>,
    caller: Caller,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let ws = workspace(&workspace_id)?;
    let access = rights(&state, &ws, &caller).await?;
    if !access.allows(Action::Read, Subject::Automations, &json!({})) {
        return Err(ApiError::forbidden(
            "reading dead letters needs read access to automations",
        ));
    }
    let Query(page) = Query::<Page>::try_from_uri(&uri)
        .map_err(|e| ApiError::validation("query", e.body_text()))?;
    let limit = page.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let retries = state.executor().retries();
    let letters = retries
        .dead_letters(ws.as_str(), page.after.as_deref(), limit)
        .await
        .map_err(storage)?;
    let next = (letters.len() as u32 == limit)
        .then(|| letters.last().map(|l| l.id.clone()))
        .flatten();
    let broker = if page.after.is_none() {
        retries.broker_dead_letters(ws.as_str()).await
    } else {
        Vec::new()
    };
    let letters: Vec<Value> = letters.iter().map(|l| l.to_json()).collect();
    Ok(Json(
        json!({"result": {"deadLetters": letters, "next": next, "broker": broker}}),
    ))
}

/// Dead letter `id` of the workspace, with its version, when `caller` may do `action` on its
/// automation (`refusal` otherwise); 404 when the workspace or the letter is not there.
async fn letter_for(
    state: &RuntimeState,
    workspace_id: &str,
    id: &str,
    caller: &Caller,
    action: Action,
    refusal: &str,
) -> Result<(DeadLetter, u64), ApiError> {
    let ws = workspace(workspace_id)?;
    let access = rights(state, &ws, caller).await?;
    let (letter, version) = state
        .executor()
        .retries()
        .dead_letter_of(ws.as_str(), id)
        .await
        .map_err(storage)?
        .ok_or_else(|| ApiError::not_found(format!("no dead letter {id}")))?;
    if !access.allows(
        action,
        Subject::Automations,
        &json!({"slug": letter.run.automation}),
    ) {
        return Err(ApiError::forbidden(refusal.to_owned()));
    }
    Ok((letter, version))
}

/// `POST …/deadletters/{id}/replay`: runs it once more with the automation as it is now. A
/// success removes the dead letter; a failure is recorded on it. Answers the run:
/// `{status, runId, output | error, deadLetter?}`.
#[utoipa::path(post, path = "/v2/workspaces/{workspace_id}/deadletters/{id}/replay", tag = "dead letters",
    params(refract_http::openapi::InWorkspace, ("id" = String, Path, description = "The dead letter's id.")),
    responses((status = 200, description = "The run: `{status: success, runId, output}`, or `{status: error, runId, error, deadLetter}`.", body = super::openapi::Replay),
        (status = 409, description = refract_http::openapi::CONFLICT, body = refract_http::openapi::ErrorBody)))]
pub(super) async fn replay(
    State(state): State<RuntimeState>,
    Path((workspace_id, id)): Path<(String, String)>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let (letter, version) = letter_for(
        &state,
        &workspace_id,
        &id,
        &caller,
        Action::Test,
        "replaying needs the right to test the automation (editor)",
    )
    .await?;
    let retries = state.executor().retries();
    let exec = letter
        .run
        .execution(state.index())
        .map_err(|why| ApiError::new(StatusCode::CONFLICT, "AutomationGone", why))?;
    let run_id = exec.context.run_id.clone();
    let attempt = Attempt::Replay {
        number: letter.attempts + 1,
    };
    let result = state.executor().attempt(&exec, attempt).await;
    if let Err(e) = &result
        && e.is_transient()
    {
        return Err(ApiError::from_kind(e.kind(), e));
    }
    match failure(&result) {
        None => {
            retries.delete_dead_letter(&id).await.map_err(storage)?;
            let output = match result {
                Ok(report) => match report.outcome {
                    RunOutcome::Ok(out) => output_value(&out.body),
                    _ => Value::Null,
                },
                Err(_) => Value::Null,
            };
            Ok(Json(
                json!({"status": "success", "runId": run_id, "output": output}),
            ))
        }
        Some(error) => {
            let letter = retries
                .failed_again(letter, version, error.clone())
                .await
                .map_err(storage)?;
            Ok(Json(
                json!({"status": "error", "runId": run_id, "error": error,
                "deadLetter": letter.to_json()}),
            ))
        }
    }
}

/// `DELETE …/deadletters/{id}`: `{id}`.
#[utoipa::path(delete, path = "/v2/workspaces/{workspace_id}/deadletters/{id}", tag = "dead letters",
    params(refract_http::openapi::InWorkspace, ("id" = String, Path, description = "The dead letter's id.")),
    responses((status = 200, description = "`{id}` of the removed letter.", body = super::openapi::DeletedLetter)))]
pub(super) async fn remove(
    State(state): State<RuntimeState>,
    Path((workspace_id, id)): Path<(String, String)>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    letter_for(
        &state,
        &workspace_id,
        &id,
        &caller,
        Action::Update,
        "deleting a dead letter needs the right to change the automation (editor)",
    )
    .await?;
    (state.executor().retries())
        .delete_dead_letter(&id)
        .await
        .map_err(storage)?;
    Ok(Json(json!({ "id": id })))
}
