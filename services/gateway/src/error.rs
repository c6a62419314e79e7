//! Mapping the errors of our dependencies to [`ApiError`], the one error type every handler
//! returns (it renders the JSON body of `spec/http-api.md` §1.2).

use axum::http::StatusCode;
use refract_http::ApiError;
use refract_storage::StorageError;

/// A storage failure as the client sees it: details are logged by `ApiError`, never sent.
pub(crate) fn storage(e: StorageError) -> ApiError {
    ApiError::from_kind(e.kind(), e)
}

/// A fault of our own (no randomness, a corrupt stored document, a join error).
pub(crate) fn internal(cause: impl std::fmt::Display) -> ApiError {
    ApiError::internal(cause)
}

/// 403 `CSRFError` (§1.8).
pub(crate) fn csrf() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "CSRFError",
        "this cookie-authenticated request needs the x-prismeai-csrf-token header of its session",
    )
}

/// 504 `TimeoutError` for an upstream that did not answer within the route's timeout.
pub(crate) fn upstream_timeout(service: &str, after: std::time::Duration) -> ApiError {
    tracing::warn!(
        service,
        timeout_ms = after.as_millis() as u64,
        "upstream timed out"
    );
    ApiError::new(
        StatusCode::GATEWAY_TIMEOUT,
        "TimeoutError",
        "the backend did not answer in time",
    )
}
