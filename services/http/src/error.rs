//! The API error body: `{"error": "<Code>", "message": "<text>", "details"?: <any>}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use refract_core::{ErrorKind, ValidationError};
use serde_json::{Value, json};

/// An error as the client sees it. Internal details are logged once where the error is built
/// and never sent (5xx messages are generic).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// The HTTP status of the response.
    pub status: StatusCode,
    /// Stable machine-readable code (`ObjectNotFoundError`, …).
    pub code: &'static str,
    /// Human-readable explanation, sent as `message`.
    pub message: String,
    /// Structured context sent as `details` (e.g. the offending path), when there is any.
    pub details: Option<Value>,
}

impl ApiError {
    /// An error with no `details`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: None,
        }
    }

    /// The same error with `details` in its body.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// 400 `RequestValidationError` for one field.
    pub fn validation(path: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::new(
            StatusCode::BAD_REQUEST,
            "RequestValidationError",
            format!("{path}: {message}"),
        )
        .with_details(json!([{ "path": path, "message": message }]))
    }

    /// 401 `AuthenticationError`.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "AuthenticationError", message)
    }

    /// 403 `ForbiddenError`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "ForbiddenError", message)
    }

    /// 404 `ObjectNotFoundError`: also for objects the caller may not see.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "ObjectNotFoundError", message)
    }

    /// 409 `AlreadyUsedError` naming the field.
    pub fn already_used(field: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "AlreadyUsedError", message)
            .with_details(json!({ "field": field }))
    }

    /// 413 `PayloadTooLarge`.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLarge",
            format!("the body is over the {limit}-byte limit"),
        )
        .with_details(json!({ "limit": limit }))
    }

    /// 500 `Internal`: logs `cause` and sends a generic message.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal",
            "an internal error occurred",
        )
    }

    /// 503 `ServiceUnavailable`: logs `cause`.
    pub fn unavailable(cause: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %cause, "dependency unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "a backend is unavailable; retry later",
        )
    }

    /// The default mapping of an error kind, for errors without a more specific code.
    pub fn from_kind(kind: ErrorKind, cause: impl std::fmt::Display) -> Self {
        match kind {
            ErrorKind::NotFound => Self::not_found(cause.to_string()),
            ErrorKind::Conflict => {
                Self::new(StatusCode::CONFLICT, "AlreadyUsedError", cause.to_string())
            }
            ErrorKind::Invalid => Self::new(
                StatusCode::BAD_REQUEST,
                "RequestValidationError",
                cause.to_string(),
            ),
            ErrorKind::Forbidden => Self::forbidden(cause.to_string()),
            ErrorKind::Limit => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PayloadTooLarge",
                cause.to_string(),
            ),
            ErrorKind::Timeout => {
                tracing::warn!(error = %cause, "timeout");
                Self::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    "TimeoutError",
                    "the operation timed out",
                )
            }
            ErrorKind::Unavailable => Self::unavailable(cause),
            ErrorKind::Internal => Self::internal(cause),
        }
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        match &e {
            ValidationError::Invalid { field, reason } => Self::validation(field, reason.clone()),
            ValidationError::TooLarge { limit, .. } => Self::too_large(*limit),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.code, "message": self.message });
        if let Some(details) = self.details {
            body["details"] = details;
        }
        (self.status, axum::Json(body)).into_response()
    }
}
