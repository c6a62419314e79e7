//! HTTP triggers: webhooks (every method on `/v2/workspaces/{workspaceId}/webhooks/{endpoint}`)
//! and test runs (`POST /v2/workspaces/{workspaceId}/test/{automationSlug}`). The run's output
//! becomes the response (`spec/http-api.md` §6.1).

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use refract_core::WorkspaceId;
use refract_core::model::{Automation, ComponentStatus};
use refract_core::permissions::{Action, Subject};
use refract_host::{HttpRequest, Output, RunOutcome, RunReport, Trigger};
use refract_http::{ApiError, Caller, Json};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::apps::AppScope;
use crate::error::RuntimeError;
use crate::executor::{Credentials, Execution, TriggerInfo, output_value};
use crate::state::{RuntimeState, run_context};

mod input;

/// The routes of the runtime (paths as the gateway forwards them). Every answer, whatever the
/// automation wrote and whether it succeeded or failed, is sandboxed ([`sandboxed`]).
pub fn router(state: RuntimeState) -> Router {
    Router::new()
        .route(
            "/v2/workspaces/{workspace_id}/webhooks/{endpoint}",
            any(webhook),
        )
        .route("/v2/workspaces/{workspace_id}/test/{slug}", post(test_run))
        .layer(axum::middleware::map_response(sandboxed))
        .with_state(state)
}

/// `Content-Security-Policy` of every runtime answer: a tenant's page is served from the
/// platform's origin, so it gets a unique opaque origin instead (no `allow-same-origin`): no
/// script, no access to the visitor's session, cookies or the console's storage.
pub const SANDBOX_CSP: &str = "sandbox";

/// Stamps the sandbox and `nosniff` on a runtime answer, replacing whatever the automation set
/// (a tenant's own CSP cannot loosen it, and a JSON or text body is never sniffed into HTML).
async fn sandboxed(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(SANDBOX_CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// Whether the index's copy of `a` can run as is (a component is uploaded).
fn is_ready(a: &Automation) -> bool {
    a.component
        .as_ref()
        .is_some_and(|c| c.status == ComponentStatus::Ready)
}

fn workspace(id: &str) -> Result<WorkspaceId, ApiError> {
    WorkspaceId::new(id).map_err(|_| ApiError::not_found("no such workspace"))
}

/// Request headers the guest sees: lower-case, without credentials and internal headers.
pub fn guest_headers(headers: &HeaderMap) -> Vec<(String, String)> {
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

async fn webhook(
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
        kind: "endpoint",
        value: endpoint.clone(),
        id: None,
    };
    let credentials = Credentials::of(&caller);
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
        };
        let executor = state.executor().clone();
        if first.is_none() {
            executor.announce(&exec, false).await;
        }
        // Spawned: the run goes on past the webhook timeout (to its own wall-clock cap).
        let handle = tokio::spawn(tracing::Instrument::in_current_span(async move {
            executor.execute(exec).await
        }));
        first.get_or_insert((handle, slug));
    }
    let Some((handle, slug)) = first else {
        return Err(ApiError::not_found("no automation answers this endpoint"));
    };
    let result = tokio::time::timeout(state.config().webhook_timeout, handle).await;
    let result = match result {
        Err(_) => return Err(timeout()),
        Ok(Err(join)) => return Err(ApiError::internal(join)),
        Ok(Ok(result)) => result,
    };
    Ok(with_correlation(
        respond(result, &slug, webhook_output),
        &caller,
    ))
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

fn timeout() -> ApiError {
    ApiError::new(
        StatusCode::GATEWAY_TIMEOUT,
        "TimeoutError",
        "the automation did not answer in time",
    )
}

fn with_correlation(mut response: Response, caller: &Caller) -> Response {
    if let Ok(v) = HeaderValue::from_str(caller.correlation_id.as_str()) {
        response.headers_mut().insert("x-correlation-id", v);
    }
    response
}

/// Maps a finished run (or one that could not start) to the HTTP answer; `ok` renders an
/// output.
pub fn respond(
    result: Result<RunReport, RuntimeError>,
    slug: &str,
    ok: fn(&Output) -> Response,
) -> Response {
    match result {
        Ok(report) => match report.outcome {
            RunOutcome::Ok(output) => ok(&output),
            RunOutcome::Failed(e) => {
                let details: Value = e
                    .details
                    .as_deref()
                    .map(|d| serde_json::from_str(d).unwrap_or_else(|_| json!(d)))
                    .unwrap_or(Value::Null);
                let mut body =
                    json!({"error": e.code, "message": e.message, "automationSlug": slug});
                if !details.is_null() {
                    body["details"] = details;
                }
                // Refusals before the run keep their own name (§6.1); the rest are logic errors.
                let (status, error) = match e.code.as_str() {
                    "ForbiddenError" => (StatusCode::FORBIDDEN, "ForbiddenError"),
                    "InvalidArgumentsError" => (StatusCode::BAD_REQUEST, "InvalidArgumentsError"),
                    "ThrottledError" => (StatusCode::TOO_MANY_REQUESTS, "ThrottledError"),
                    _ => (StatusCode::BAD_REQUEST, "AutomationError"),
                };
                ApiError::new(status, error, e.message.clone())
                    .with_details(body)
                    .into_response()
            }
            RunOutcome::Trapped(t) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "ComponentTrap",
                "the automation was stopped by the sandbox",
            )
            .with_details(json!({"reason": t.reason.as_str(), "message": t.message}))
            .into_response(),
        },
        Err(RuntimeError::NotReady { reason, .. }) => {
            ApiError::new(StatusCode::CONFLICT, "ComponentNotReady", reason).into_response()
        }
        Err(RuntimeError::NotFound(slug)) => {
            ApiError::not_found(format!("no automation {slug}")).into_response()
        }
        Err(e) => ApiError::from_kind(e.kind(), &e).into_response(),
    }
}

/// Response headers a guest may not set (`name` lower-case): hop-by-hop and framing, the
/// security headers the platform sets itself, those that would reach beyond the answer
/// (credentialed cross-origin reads, wiping the visitor's platform cookies and storage,
/// service workers, pinning HTTPS for the platform's host), and cookies the platform uses.
fn refused_header(name: &str, value: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "content-length"
            | "content-security-policy"
            | "content-security-policy-report-only"
            | "x-content-type-options"
            | "access-control-allow-credentials"
            | "clear-site-data"
            | "service-worker-allowed"
            | "strict-transport-security"
    ) || (name == "set-cookie" && refract_http::cookies::sets_platform_cookie(value))
}

/// A webhook answer: the guest's status and headers; a JSON string body as text, anything
/// else as JSON, no output as `{}`.
pub fn webhook_output(output: &Output) -> Response {
    let status = output
        .http
        .as_ref()
        .and_then(|h| StatusCode::from_u16(h.status).ok())
        .unwrap_or(StatusCode::OK);
    let mut headers = HeaderMap::new();
    for (name, value) in output.http.iter().flat_map(|h| h.headers.iter()) {
        let lower = name.to_ascii_lowercase();
        if refused_header(&lower, value) {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(lower.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.append(n, v);
        }
    }
    let (content_type, body) = match output_value(&output.body) {
        Value::String(text) => ("text/plain; charset=utf-8", text),
        _ if output.body.trim().is_empty() => ("application/json", "{}".to_owned()),
        _ => ("application/json", output.body.clone()),
    };
    if !headers.contains_key(header::CONTENT_TYPE) {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// A test run's answer: the output as JSON.
fn test_output(output: &Output) -> Response {
    axum::Json(output_value(&output.body)).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestBody {
    #[serde(default)]
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
    if caller.user_id.is_none() && caller.api_key.is_none() && !caller.superadmin {
        return Err(ApiError::unauthenticated("authentication required"));
    }
    let access =
        refract_storage::access_of(state.inner.store.as_ref(), ws.as_str(), &caller.principal())
            .await
            .map_err(|e| ApiError::from_kind(e.kind(), &e))?;
    if access.allows(Action::Test, Subject::Automations, &json!({ "slug": slug })) {
        Ok(())
    } else if access.visible() {
        Err(ApiError::forbidden(
            "testing automations needs the editor role or a rule allowing test",
        ))
    } else {
        Err(ApiError::not_found("no such workspace"))
    }
}

async fn test_run(
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
            kind: "automation",
            value: slug.clone(),
            id: None,
        },
        payload,
    };
    let executor = state.executor().clone();
    executor.announce(&exec, true).await;
    let handle = tokio::spawn(tracing::Instrument::in_current_span(async move {
        executor.execute(exec).await
    }));
    let result = match tokio::time::timeout(state.config().webhook_timeout, handle).await {
        Err(_) => return Err(timeout()),
        Ok(Err(join)) => return Err(ApiError::internal(join)),
        Ok(Ok(result)) => result,
    };
    Ok(with_correlation(
        respond(result, &slug, test_output),
        &caller,
    ))
}

#[cfg(test)]
mod tests;
