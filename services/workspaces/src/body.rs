//! Request bodies, read only once the caller passed the request's access check.
//!
//! A handler takes [`Unread`] as its last argument: extracting it reads nothing. The body is
//! read and parsed by [`Unread::json`] or [`Unread::document`], which need a proof of the
//! access check ([`Checked`]), so until a request is authorized it costs its headers only, and
//! once it is, the parse stays within the document [`Budget`] (bytes, nodes after YAML alias
//! expansion, depth) of `refract-dsl`.

use std::convert::Infallible;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use refract_dsl::{Budget, DocumentError};
use refract_http::ApiError;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::state::{Checked, WorkspacesState};

/// A request body not read yet.
#[derive(Debug)]
pub struct Unread {
    req: Request,
    budget: Budget,
}

impl FromRequest<WorkspacesState> for Unread {
    type Rejection = Infallible;

    async fn from_request(req: Request, state: &WorkspacesState) -> Result<Self, Infallible> {
        Ok(Unread {
            req,
            budget: state.document_budget(),
        })
    }
}

/// What a body holds, by its `Content-Type`.
enum Format {
    Json,
    Yaml,
}

impl Unread {
    fn format(&self) -> Option<Format> {
        let ct = self
            .req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())?;
        if is_yaml(ct) {
            return Some(Format::Yaml);
        }
        let essence = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let json = essence == "application/json"
            || (essence.starts_with("application/") && essence.ends_with("+json"));
        json.then_some(Format::Json)
    }

    /// The JSON body as `T` (a 415 without a JSON content type).
    pub async fn json<T: DeserializeOwned>(self, _checked: &impl Checked) -> Result<T, ApiError> {
        let Some(Format::Json) = self.format() else {
            return Err(unsupported_media());
        };
        let mut budget = self.budget;
        let bytes = read(self.req).await?;
        let value = budget
            .json(&bytes)
            .map_err(|e| document_error(e, |m| ApiError::validation("body", m)))?;
        serde_json::from_value(value).map_err(|e| ApiError::validation("body", e.to_string()))
    }

    /// An automation document: JSON, or YAML (`application/yaml`, `text/yaml`,
    /// `application/x-yaml`, 1.2 core schema with merge keys), so a Prisme.ai
    /// `automations/<slug>.yml` can be posted as is.
    pub async fn document(self, _checked: &impl Checked) -> Result<Map<String, Value>, ApiError> {
        let format = self.format();
        let mut budget = self.budget;
        let value = match format {
            Some(Format::Yaml) => {
                let bytes = read(self.req).await?;
                let text = std::str::from_utf8(&bytes)
                    .map_err(|_| ApiError::validation("body", "YAML must be UTF-8"))?;
                budget.yaml(text).map_err(|e| {
                    document_error(e, |m| {
                        crate::dsl::invalid(refract_dsl::Invalid::new("", "InvalidYamlError", m))
                    })
                })?
            }
            Some(Format::Json) => {
                let bytes = read(self.req).await?;
                budget
                    .json(&bytes)
                    .map_err(|e| document_error(e, |m| ApiError::validation("body", m)))?
            }
            None => return Err(unsupported_media()),
        };
        match value {
            Value::Object(m) => Ok(m),
            _ => Err(ApiError::validation(
                "body",
                "an automation document is a mapping",
            )),
        }
    }
}

/// Is `content_type` one of the YAML media types?
pub fn is_yaml(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    matches!(
        essence.as_str(),
        "application/yaml" | "text/yaml" | "application/x-yaml" | "text/x-yaml"
    )
}

/// The whole body, under the route's limit (`DefaultBodyLimit`).
async fn read(req: Request) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, &()).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PayloadTooLarge",
                "the body is over this route's limit",
            )
        } else {
            ApiError::validation("body", rejection.body_text())
        }
    })
}

/// The API error of a document over its budget (413 `PayloadTooLarge`, 400
/// `DocumentTooComplex`), or of a syntax error (`syntax`, by format).
pub fn document_error(e: DocumentError, syntax: impl FnOnce(String) -> ApiError) -> ApiError {
    match e {
        DocumentError::TooLarge { limit } => ApiError::too_large(limit),
        DocumentError::Syntax(message) => syntax(message),
        over => ApiError::new(
            StatusCode::BAD_REQUEST,
            "DocumentTooComplex",
            over.to_string(),
        )
        .with_details(json!({ "limits": budget_details() })),
    }
}

fn budget_details() -> Value {
    json!({
        "nodes": refract_dsl::budget::MAX_DOCUMENT_NODES,
        "depth": refract_dsl::budget::MAX_DOCUMENT_DEPTH,
    })
}

fn unsupported_media() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UnsupportedMediaType",
        "expected Content-Type: application/json",
    )
    .with_details(json!({ "expected": "application/json" }))
}
