//! Test runs: `POST /v2/workspaces/{workspaceId}/test/{automationSlug}` runs one automation of
//! the workspace with the given payload, for those allowed to test it; its output is the answer.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;
use refract_core::WorkspaceId;
use refract_core::model::Automation;
use refract_core::permissions::{Action, Subject};
use refract_host::Trigger;
use refract_http::{ApiError, Caller, Json};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{answer, is_ready, reply, rights, spawn_run, workspace};
use crate::run::{Credentials, Execution, TriggerInfo, TriggerKind, run_context};
use crate::state::RuntimeState;

/// The body of a test run: the run's payload (an object; none is `{}`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TestBody {
    /// The run's payload: a JSON object (none or null is `{}`).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    payload: Option<Value>,
}

/// Whether `caller` may test automation `slug` of `ws`, by the workspace's rules
/// (`refract_storage::access_of`: built-in and custom roles, API-key rules): 401 without any
/// credential, 404 when the workspace is invisible to the caller, 403 when it may only look.
async fn may_test(
    state: &RuntimeState,
    ws: &WorkspaceId,
    slug: &str,
    caller: &Caller,
) -> Result<(), ApiError> {
    let access = rights(state, ws, caller).await?;
    if access.allows(Action::Test, Subject::Automations, &json!({ "slug": slug })) {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "testing automations needs the editor role or a rule allowing test",
        ))
    }
}

/// Runs automation `slug` with the body's payload; answers with its output as JSON.
#[utoipa::path(post, path = "/v2/workspaces/{workspace_id}/test/{slug}", tag = "automations",
    params(refract_http::openapi::InWorkspace, ("slug" = String, Path, description = "The automation's slug.")),
    request_body = TestBody,
    responses((status = 200, description = "The run's output as JSON: any JSON value the automation answered (`{}` when it answered nothing), so it stays untyped.", body = serde_json::Value)))]
pub(super) async fn test_run(
    State(state): State<RuntimeState>,
    Path((workspace_id, slug)): Path<(String, String)>,
    caller: Caller,
    Json(body): Json<TestBody>,
) -> Result<Response, ApiError> {
    let ws = workspace(&workspace_id)?;
    may_test(&state, &ws, &slug, &caller).await?;
    let mut automation = state.index().get(ws.as_str(), &slug);
    if !automation.as_ref().is_some_and(|a| is_ready(a)) {
        // Maybe created or uploaded a moment ago: the fan-out has not told this instance yet.
        automation = state
            .refresh_automation(ws.as_str(), &slug)
            .await
            .map_err(|e| ApiError::from_kind(e.kind(), &e))?;
    }
    let automation: Arc<Automation> =
        automation.ok_or_else(|| ApiError::not_found(format!("no automation {slug}")))?;
    let payload = match body.payload {
        None | Some(Value::Null) => json!({}),
        Some(p @ Value::Object(_)) => p,
        Some(_) => return Err(ApiError::validation("payload", "must be a JSON object")),
    };
    let exec = Execution {
        app: None,
        credentials: Credentials::of(&caller),
        context: run_context(
            &ws,
            &slug,
            caller.correlation_id.clone(),
            caller.user_id.clone(),
            caller.session_id.clone(),
            0,
        ),
        automation,
        trigger: Trigger::Call(payload.to_string()),
        info: TriggerInfo {
            kind: TriggerKind::Automation,
            value: slug.clone(),
            id: None,
        },
        payload,
        answer: None,
    };
    state.executor().reports().announce(&exec, true).await;
    let handle = spawn_run(&state, exec);
    reply(&state, handle, None, &slug, &caller, answer::test_output).await
}
