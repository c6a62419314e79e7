//! Schemas of the answers the gateway's own handlers build as JSON values rather than
//! serialize from a type: the OpenAPI document describes them with these types, which are
//! never serialized themselves. A comment above each one names the function that builds the
//! shape it describes (not in its doc, which becomes the schema's description): keep the two
//! together.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::users::User;

/// A new session: the user with its token (shown this once), the session's id and expiry. The
/// session cookie is set too; the CSRF token the cookie needs on writes is in the
/// `x-prismeai-csrf-token` header, not in the body.
// Built by `crate::accounts::session_response`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Session {
    /// The user the session is for.
    #[serde(flatten)]
    pub user: User,
    /// The session token, for `Authorization: Bearer …`.
    pub token: String,
    /// The session's id.
    pub session_id: String,
    /// When the session ends (ISO 8601, milliseconds).
    pub expires: DateTime<Utc>,
}

/// The caller: its user, session id and expiry. For cookie sessions the CSRF token is in the
/// `x-prismeai-csrf-token` header, not in the body.
// Built by `crate::accounts::me`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Me {
    /// The caller's user.
    #[serde(flatten)]
    pub user: User,
    /// The session's id (`at:<tokenId>`-style for a personal access token).
    pub session_id: String,
    /// When the session or token ends (ISO 8601, milliseconds).
    pub expires: DateTime<Utc>,
}

/// `{success: true}`.
// Built by `crate::accounts::logout`.
#[derive(Serialize, ToSchema)]
pub(crate) struct LoggedOut {
    /// Always true: logging out is idempotent.
    pub success: bool,
}

/// `oidc`.
#[expect(
    dead_code,
    reason = "schema-only: the handler writes the value as JSON"
)]
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ProviderType {
    /// An OpenID Connect provider.
    Oidc,
}

/// A configured identity provider, for login pages.
// Built by `crate::oidc::list`.
#[derive(Serialize, ToSchema)]
pub(crate) struct LoginProvider {
    /// The name `GET /v2/login?provider=` takes.
    pub name: String,
    /// `oidc`.
    #[serde(rename = "type")]
    pub kind: ProviderType,
    /// What a login page shows (the name when none is configured).
    pub label: String,
}

/// `ok`.
#[expect(
    dead_code,
    reason = "schema-only: the handler writes the value as JSON"
)]
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum HealthStatus {
    /// The gateway and its session cache answer.
    Ok,
}

/// `{status: ok, healthy: true}`.
// Built by `crate::healthcheck`.
#[derive(Serialize, ToSchema)]
pub(crate) struct Health {
    /// `ok`.
    pub status: HealthStatus,
    /// Always true in a 200 (an unhealthy gateway answers 503).
    pub healthy: bool,
}
