//! How a finished run (or one that could not start) becomes the HTTP answer: a guest's
//! output with the headers it may set, its failure or a refusal as an API error.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use refract_host::answer::MAX_HEAD_HEADERS;
use refract_host::{Output, RunOutcome, RunReport};
use refract_http::ApiError;
use serde_json::{Value, json};

use crate::error::RuntimeError;
use crate::run::{RefusalCode, output_value};

/// Maps a finished run (or one that could not start) to the HTTP answer; `ok` renders an
/// output.
pub(crate) fn respond(
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
                // Refusals before the run keep their own name (§6.1), also when a guest passes
                // on a refused call's; the rest are logic errors.
                let (status, error) = match RefusalCode::of(&e.code) {
                    Some(code @ RefusalCode::Forbidden) => (StatusCode::FORBIDDEN, code.as_str()),
                    Some(code @ RefusalCode::InvalidArguments) => {
                        (StatusCode::BAD_REQUEST, code.as_str())
                    }
                    Some(code @ RefusalCode::Throttled) => {
                        (StatusCode::TOO_MANY_REQUESTS, code.as_str())
                    }
                    Some(RefusalCode::TooDeep) | None => {
                        (StatusCode::BAD_REQUEST, "AutomationError")
                    }
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

/// The response headers a guest set, without those it may not set and those HTTP cannot carry;
/// the first [`MAX_HEAD_HEADERS`] only (a proxy refuses answers with many more).
pub(super) fn guest_headers<'a>(set: impl Iterator<Item = &'a (String, String)>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in set.take(MAX_HEAD_HEADERS) {
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
    headers
}

/// A webhook answer: the guest's status and headers; a JSON string body as text, anything
/// else as JSON, no output as `{}`.
pub(crate) fn webhook_output(output: &Output) -> Response {
    let status = output
        .http
        .as_ref()
        .and_then(|h| StatusCode::from_u16(h.status).ok())
        .unwrap_or(StatusCode::OK);
    let mut headers = guest_headers(output.http.iter().flat_map(|h| h.headers.iter()));
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
pub(super) fn test_output(output: &Output) -> Response {
    axum::Json(output_value(&output.body)).into_response()
}
