//! Webhooks: every method on `/v2/workspaces/{workspaceId}/webhooks/{endpoint}` runs the
//! automations answering the endpoint (the workspace's, and an app instance's for a dotted
//! `<fullSlug>.<name>`); the first one's output is the answer.

use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::HeaderMap;
use axum::response::Response;
use refract_core::model::Automation;
use refract_host::{AnswerSink, HttpRequest, Trigger};
use refract_http::{ApiError, Caller};
use serde_json::{Map, Value, json};

use super::{answer, input, is_ready, reply, spawn_run, workspace};
use crate::apps::AppScope;
use crate::run::{Credentials, Execution, TriggerInfo, TriggerKind, run_context};
use crate::state::RuntimeState;

/// Request headers the guest sees: lower-case, without credentials and internal headers.
pub(crate) fn guest_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(name, _)| {
            let n = name.as_str();
            !(matches!(n, "cookie" | "host" | "authorization")
                || (n.starts_with("x-") && n != "x-prismeai-workspace-id"))
        })
        .filter_map(|(name, value)| {
            value
                .to_str()
                .ok()
                .map(|v| (name.as_str().to_owned(), v.to_owned()))
        })
        .collect()
}

/// Runs the automations answering `endpoint`; answers with the first one's output.
// The answer stays loose: any JSON value (`answer::webhook_output`: a JSON string output is
// sent as text/plain), or whatever status, content type and body the automation wrote.
#[utoipa::path(method(get, post, put, patch, delete), path = "/v2/workspaces/{workspace_id}/webhooks/{endpoint}",
    tag = "webhooks", security((), ("bearer" = []), ("apiKey" = [])),
    params(refract_http::openapi::InWorkspace, ("endpoint" = String, Path, description = "The endpoint an automation answers (`when.endpoint`).")),
    request_body(description = "Anything: JSON, a form, multipart or raw bytes, as the automation reads it.", content(
        (Object = "application/json"), (Object = "application/x-www-form-urlencoded"), (Object = "multipart/form-data"), (String = "application/octet-stream"))),
    responses((status = 200, description = "The automation's answer: its status, headers and body as it wrote them (any content type): by default its output as JSON (any JSON value), or as text when the output is a string.",
            content((serde_json::Value = "application/json"), (String = "text/plain"))),
        (status = "default", description = "Any status the automation chose.")))]
pub(super) async fn webhook(
    State(state): State<RuntimeState>,
    Path((workspace_id, endpoint)): Path<(String, String)>,
    caller: Caller,
    request: Request,
) -> Result<Response, ApiError> {
    let ws = workspace(&workspace_id)?;
    let mut automations = state.index().by_endpoint(ws.as_str(), &endpoint);
    if automations.iter().all(|a| !is_ready(a)) {
        // Maybe created or uploaded a moment ago: the fan-out has not told this instance yet.
        let slug = automations
            .first()
            .map_or(endpoint.clone(), |a| a.slug.clone());
        state
            .refresh_automation(ws.as_str(), &slug)
            .await
            .map_err(|e| ApiError::from_kind(e.kind(), &e))?;
        automations = state.index().by_endpoint(ws.as_str(), &endpoint);
    }
    // App endpoints are `<fullSlug>.<name>` (§8.3); an instance installed a moment ago may
    // not have reached this instance's index yet.
    let mut automations: Vec<_> = automations.into_iter().map(|a| (None, a)).collect();
    if endpoint.contains('.') {
        let mut found = app_endpoints(&state, ws.as_str(), &endpoint);
        if found.is_empty() && automations.is_empty() {
            state
                .reload_apps(ws.as_str())
                .await
                .map_err(|e| ApiError::from_kind(e.kind(), &e))?;
            found = app_endpoints(&state, ws.as_str(), &endpoint);
        }
        automations.extend(found);
    }
    if automations.is_empty() {
        return Err(ApiError::not_found(format!(
            "no automation answers the endpoint {endpoint:?}"
        )));
    }
    let (parts, body) = request.into_parts();
    let Query(query) = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
        .map_err(|e| ApiError::validation("query", e.body_text()))?;
    let limit = state.config().webhook_body_limit;
    let body = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::too_large(limit))?;
    let headers = guest_headers(&parts.headers);
    let decoded = input::body(&parts.headers, body.clone()).await?;
    let http = HttpRequest {
        method: parts.method.as_str().to_ascii_uppercase(),
        path: parts.uri.path().to_owned(),
        query: query.clone(),
        headers: headers.clone(),
        body: body.to_vec(),
    };
    // The run's initial locals (automation-dsl §2.7).
    let payload = json!({
        "method": http.method, "headers": headers.into_iter().map(|(k, v)| (k, json!(v))).collect::<Map<String, Value>>(),
        "query": refract_dsl::value::pairs_object(query.into_iter().map(|(k, v)| (k, json!(v)))), "body": decoded,
        "workspaceId": ws, "automationSlug": endpoint,
    });
    let info = TriggerInfo {
        kind: TriggerKind::Endpoint,
        value: endpoint.clone(),
        id: None,
    };
    let credentials = Credentials::of(&caller);
    // The first automation's run answers, and may stream its answer while it runs.
    let (sink, answer_parts) = AnswerSink::channel();
    let mut sink = Some(sink);
    let mut first = None;
    for (app, automation) in automations {
        let slug = automation.slug.clone();
        let exec = Execution {
            app,
            credentials: credentials.clone(),
            context: run_context(
                &ws,
                &automation.slug,
                caller.correlation_id.clone(),
                caller.user_id.clone(),
                caller.session_id.clone(),
                0,
            ),
            automation,
            trigger: Trigger::Http(http.clone()),
            info: info.clone(),
            payload: payload.clone(),
            answer: sink.take(),
        };
        if first.is_none() {
            state.executor().reports().announce(&exec, false).await;
        }
        first.get_or_insert((spawn_run(&state, exec), slug));
    }
    let Some((handle, slug)) = first else {
        return Err(ApiError::not_found("no automation answers this endpoint"));
    };
    reply(
        &state,
        handle,
        Some(answer_parts),
        &slug,
        &caller,
        answer::webhook_output,
    )
    .await
}

/// The automations of app instances answering the dotted endpoint `name`, with their instance.
fn app_endpoints(
    state: &RuntimeState,
    ws: &str,
    name: &str,
) -> Vec<(Option<Arc<AppScope>>, Arc<Automation>)> {
    state
        .index()
        .route(ws, name)
        .into_iter()
        .flat_map(|(scope, rest)| {
            state
                .index()
                .by_endpoint(&scope.key, &rest)
                .into_iter()
                .map(move |a| (Some(scope.clone()), a))
        })
        .collect()
}
