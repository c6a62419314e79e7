//! The trusted-header contract (`spec/http-api.md` §1.5). Only the gateway sets these; it
//! deletes every `x-prismeai-*` and `x-refract-*` header a client sends first.

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use refract_core::permissions::Principal;
use refract_core::{CorrelationId, SessionId, UserId};

use crate::ApiError;

/// The authenticated user's id (anonymous sessions have one too), set by the gateway.
pub const USER_ID: &str = "x-prismeai-user-id";
/// The caller's session id (`at:<tokenId>` for a personal access token), set by the gateway.
pub const SESSION_ID: &str = "x-prismeai-session-id";
/// The user's `authData` as JSON (provider claims custom roles bind on), set by the gateway.
pub const AUTH_DATA: &str = "x-prismeai-auth-data";
/// `superadmin` when the caller is a platform super-admin, set by the gateway.
pub const ROLE: &str = "x-prismeai-role";
/// The workspace whose automation made the call, set by the gateway for runtime-issued tokens.
pub const WORKSPACE_ID: &str = "x-prismeai-workspace-id";
/// A workspace API key the client sends; passes through the gateway, which checks it exists
/// and is enabled.
pub const API_KEY: &str = "x-prismeai-api-key";
/// The CSRF token a cookie session sends; passes through the gateway, which checks it.
pub const CSRF_TOKEN: &str = "x-prismeai-csrf-token";
/// The id that ties the logs and events of one request together; set on request and response.
pub const CORRELATION_ID: &str = "x-correlation-id";
/// The shared secret the gateway sends and backends require ([`crate::gateway_key`]).
pub const GATEWAY_KEY: &str = "x-refract-gateway-key";
/// Client hint on component uploads (`spec/http-api.md` §5.3): a description of the upload,
/// not an identity claim, so it passes through the gateway.
pub const COMPONENT_LANGUAGE: &str = "x-refract-component-language";

/// Whether a client-sent header must be removed before the gateway sets its own.
pub fn is_trusted_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    (name.starts_with("x-prismeai-") || name.starts_with("x-refract-"))
        && name != API_KEY
        && name != CSRF_TOKEN
        && name != COMPONENT_LANGUAGE
}

/// Who is calling a backend, as the gateway said.
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    /// The authenticated user (anonymous sessions have one); `None` when no principal was
    /// authenticated.
    pub user_id: Option<UserId>,
    /// The session the user called with, if any (routes events to it, scopes reconnects).
    pub session_id: Option<SessionId>,
    /// The request's correlation id (a fresh one when the header is missing or malformed).
    pub correlation_id: CorrelationId,
    /// The caller is a platform super-admin: every workspace check passes.
    pub superadmin: bool,
    /// The workspace API key the client sent (`x-prismeai-api-key`, a pass-through the gateway
    /// checked exists and is enabled); backends evaluate its rules.
    pub api_key: Option<String>,
    /// `user.authData` from `x-prismeai-auth-data` (custom roles bind on provider claims).
    pub auth_data: Option<serde_json::Value>,
}

impl Caller {
    /// The caller as permission checks see it (`refract_storage::access_of`).
    pub fn principal(&self) -> Principal<'_> {
        Principal {
            user_id: self.user_id.as_ref().map(|u| u.as_str()),
            api_key: self.api_key.as_deref(),
            superadmin: self.superadmin,
            auth_data: self.auth_data.as_ref(),
        }
    }

    /// Reads the trusted headers; a missing or malformed one counts as absent, never as an
    /// error (the gateway is the only one to set them).
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        Self {
            user_id: text(USER_ID).and_then(|v| UserId::new(v).ok()),
            session_id: text(SESSION_ID).and_then(|v| SessionId::new(v).ok()),
            correlation_id: text(CORRELATION_ID)
                .and_then(|v| CorrelationId::new(v).ok())
                .unwrap_or_else(CorrelationId::generate),
            superadmin: text(ROLE) == Some("superadmin"),
            api_key: text(API_KEY).filter(|k| !k.is_empty()).map(str::to_string),
            auth_data: text(AUTH_DATA).and_then(|v| serde_json::from_str(v).ok()),
        }
    }

    /// The authenticated user, or 401.
    pub fn require_user(&self) -> Result<&UserId, ApiError> {
        self.user_id
            .as_ref()
            .ok_or_else(|| ApiError::unauthenticated("authentication required"))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::from_headers(&parts.headers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_identity_headers_are_untrusted_but_pass_throughs_are_kept() {
        assert!(is_trusted_header("X-Prismeai-User-Id"));
        assert!(is_trusted_header("x-refract-gateway-key"));
        assert!(!is_trusted_header(API_KEY));
        assert!(!is_trusted_header("X-Refract-Component-Language"));
        assert!(!is_trusted_header("content-type"));
    }

    #[test]
    fn caller_reads_valid_headers_and_ignores_bad_ones() {
        let mut headers = HeaderMap::new();
        headers.insert(USER_ID, "u1".parse().unwrap());
        headers.insert(CORRELATION_ID, "bad id!".parse().unwrap());
        let caller = Caller::from_headers(&headers);
        assert_eq!(caller.user_id.unwrap().as_str(), "u1");
        assert_eq!(caller.correlation_id.as_str().len(), 32);
        assert!(
            Caller::from_headers(&HeaderMap::new())
                .require_user()
                .is_err()
        );
    }
}
