//! A JSON body extractor whose every rejection is an [`ApiError`].

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::ApiError;

/// Like `axum::Json`, but a malformed body is a 400 `RequestValidationError` naming the problem,
/// a missing JSON content type a 415, and a body over the route's limit a 413.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Json(value)),
            Err(rejection) => Err(rejection_to_error(rejection)),
        }
    }
}

fn rejection_to_error(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            "expected Content-Type: application/json",
        )
        .with_details(json!({ "expected": "application/json" })),
        JsonRejection::JsonDataError(e) => ApiError::validation("body", e.body_text()),
        JsonRejection::JsonSyntaxError(e) => ApiError::validation("body", e.body_text()),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLarge",
            "the body is over this route's limit",
        ),
        other => ApiError::validation("body", other.body_text()),
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::post;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Input {
        name: String,
    }

    async fn call(content_type: Option<&str>, body: &str) -> (StatusCode, serde_json::Value) {
        let app = Router::new().route("/", post(|Json(_): Json<Input>| async { "ok" }));
        let mut req = Request::post("/");
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let res = app
            .oneshot(req.body(Body::from(body.to_string())).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(json!(null)),
        )
    }

    #[tokio::test]
    async fn bad_bodies_get_json_errors() {
        let (status, body) = call(Some("application/json"), "{\"name\": 1}").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"], "RequestValidationError");
        let (status, body) = call(Some("application/json"), "{\"name\":\"a\",\"x\":1}").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            body["message"].as_str().unwrap().contains("unknown field"),
            "{body}"
        );
        let (status, _) = call(Some("application/json"), "{oops").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, body) = call(None, "{}").await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(body["error"], "UnsupportedMediaType");
    }
}
