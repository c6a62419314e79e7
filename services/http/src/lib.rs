//! `refract-http`: the HTTP conventions every Refract service shares (`spec/http-api.md` §1).
//!
//! - [`cookies`]: the cookies the platform sets, which nothing a tenant writes may set.
//! - [`error`]: [`ApiError`], the `{error, message, details?}` body with its status.
//! - [`headers`]: the trusted `x-prismeai-*` headers the gateway sets and backends read, and the
//!   [`Caller`] extractor built from them.
//! - [`json`]: a [`Json`] extractor whose rejections are API errors.
//! - [`openapi`]: the API contract's shared parts (the `Error` schema, platform-wide answers,
//!   security schemes) that every service's generated OpenAPI document is finished with.
//! - [`gateway_key`]: the secret proving a request came through a gateway, and the guard every
//!   backend's app is wrapped in.
//!
//! Depends on `refract-core` and axum (plus small helpers: `subtle`, `getrandom`, `cookie`); no
//! service logic.
#![warn(missing_docs)]

pub mod cookies;
pub mod error;
pub mod gateway_key;
pub mod headers;
pub mod json;
pub mod openapi;

pub use error::ApiError;
pub use headers::Caller;
pub use json::Json;

/// The JSON 404 for paths no route matches.
pub async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}
