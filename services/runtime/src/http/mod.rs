//! HTTP triggers: webhooks (every method on `/v2/workspaces/{workspaceId}/webhooks/{endpoint}`,
//! [`webhook`]) and test runs (`POST /v2/workspaces/{workspaceId}/test/{automationSlug}`,
//! [`test_run`]). The run's output becomes the response ([`answer`], `spec/http-api.md` §6.1).
//!
//! A route is a handler in its own file, listed in [`router`]; it builds an
//! [`Execution`](crate::run::Execution), starts it with [`spawn_run`] and answers with
//! [`reply`].

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::any;
use refract_core::WorkspaceId;
use refract_core::model::{Automation, AutomationKind, ComponentStatus};
use refract_host::{AnswerPart, Output, RunReport};
use refract_http::{ApiError, Caller};
use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinHandle};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::RuntimeError;
use crate::run::Execution;
use crate::state::RuntimeState;

mod answer;
mod deadletters;
mod input;
mod openapi;
mod quotas;
mod streamed;
mod test_run;
mod webhook;

/// The routes of the runtime (paths as the gateway forwards them), with their operations.
/// Every answer, whatever the automation wrote and whether it succeeded or failed, is
/// sandboxed ([`sandboxed`]).
pub fn api() -> OpenApiRouter<RuntimeState> {
    #[derive(utoipa::OpenApi)]
    #[openapi(paths(webhook::webhook))]
    struct Webhook;
    // A webhook takes every method (HEAD and OPTIONS too); the document names the usual five.
    let mut api = OpenApiRouter::new().route(
        "/v2/workspaces/{workspace_id}/webhooks/{endpoint}",
        any(webhook::webhook),
    );
    api.get_openapi_mut().merge(Webhook::openapi());
    api.routes(routes!(test_run::test_run))
        .routes(routes!(deadletters::list))
        .routes(routes!(quotas::get, quotas::put))
        .routes(routes!(quotas::put_egress))
        .routes(routes!(quotas::usage))
        .routes(routes!(deadletters::remove))
        .routes(routes!(deadletters::replay))
        .layer(axum::middleware::map_response(sandboxed))
}

/// The runtime's routes, ready to serve.
pub fn router(state: RuntimeState) -> Router {
    api().split_for_parts().0.with_state(state)
}

/// `Content-Security-Policy` of every runtime answer: a tenant's page is served from the
/// platform's origin, so it gets a unique opaque origin instead (no `allow-same-origin`): no
/// script, no access to the visitor's session, cookies or the console's storage.
pub(crate) const SANDBOX_CSP: &str = "sandbox";

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

/// Whether the index's copy of `a` can run as is: a DSL automation always (its program compiles
/// on its first run), a component once it is uploaded. A webhook or test run
/// re-reads an automation that is not, in case its upload has not reached this instance yet.
fn is_ready(a: &Automation) -> bool {
    match a.kind {
        AutomationKind::Dsl => true,
        AutomationKind::Component => a
            .component
            .as_ref()
            .is_some_and(|c| c.status == ComponentStatus::Ready),
    }
}

fn workspace(id: &str) -> Result<WorkspaceId, ApiError> {
    WorkspaceId::new(id).map_err(|_| ApiError::not_found("no such workspace"))
}

/// The caller's rights in `ws` (`refract_storage::access_of`: built-in and custom roles, API
/// key rules): 401 without any credential, 404 when the workspace is invisible to it.
async fn rights(
    state: &RuntimeState,
    ws: &WorkspaceId,
    caller: &Caller,
) -> Result<refract_storage::WorkspaceAccess, ApiError> {
    if caller.user_id.is_none() && caller.api_key.is_none() && !caller.superadmin {
        return Err(ApiError::unauthenticated("authentication required"));
    }
    let access =
        refract_storage::access_of(state.inner.store.as_ref(), ws.as_str(), &caller.principal())
            .await
            .map_err(|e| ApiError::from_kind(e.kind(), &e))?;
    if !access.visible() {
        return Err(ApiError::not_found("no such workspace"));
    }
    Ok(access)
}

/// Starts `exec` (announced by the caller). Spawned: the run goes on past the webhook timeout,
/// to its own wall-clock cap.
fn spawn_run(state: &RuntimeState, exec: Execution) -> JoinHandle<Result<RunReport, RuntimeError>> {
    let executor = state.executor().clone();
    tokio::spawn(tracing::Instrument::in_current_span(async move {
        executor.execute(&exec).await
    }))
}

/// The HTTP answer of the run `handle` of automation `slug`, once it ends or the webhook
/// timeout passes (504); `ok` renders its output. A run given the sending end of `answer`
/// may start streaming its answer instead ([`streamed`]): the timeout then ends with the
/// head it sends first.
async fn reply(
    state: &RuntimeState,
    mut handle: JoinHandle<Result<RunReport, RuntimeError>>,
    answer: Option<mpsc::Receiver<AnswerPart>>,
    slug: &str,
    caller: &Caller,
    ok: fn(&Output) -> Response,
) -> Result<Response, ApiError> {
    enum First {
        Ended(Result<Result<RunReport, RuntimeError>, JoinError>),
        Streams(AnswerPart, mpsc::Receiver<AnswerPart>),
    }
    let first = async {
        match answer {
            Some(mut parts) => tokio::select! {
                biased;
                Some(head) = parts.recv() => First::Streams(head, parts),
                ended = &mut handle => First::Ended(ended),
            },
            None => First::Ended((&mut handle).await),
        }
    };
    let response = match tokio::time::timeout(state.config().webhook_timeout, first).await {
        Err(_) => return Err(timeout()),
        Ok(First::Ended(Err(join))) => return Err(ApiError::internal(join)),
        Ok(First::Ended(Ok(result))) => answer::respond(result, slug, ok),
        Ok(First::Streams(head, parts)) => streamed::answer(head, parts, handle, slug),
    };
    Ok(with_correlation(response, caller))
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

#[cfg(test)]
mod tests;
