//! `refract-gateway`: Refract's only public listener (`spec/http-api.md` §1, §2).
//!
//! - [`config`]: [`Config`], its defaults and validation.
//! - `state`: [`GatewayState`], what every handler shares, and the `gateway.*` events.
//! - `edge`: the middleware every request passes first, before routing: the path made
//!   canonical (`path`), the client hop read (`client`, `TRUSTED_PROXIES`), trusted headers
//!   deleted, correlation id set on request and response, one log line per request.
//! - `webhooks_host`: webhooks on a host of their own (`webhooks_origin`).
//! - `accounts`: signup, password and anonymous login, logout, `/v2/me`.
//! - [`oidc`]: login with external OpenID Connect providers (code flow with PKCE, logins in
//!   flight kept in the shared cache).
//! - `sessions`: login sessions in the shared cache, keyed by the token's SHA-256.
//! - `tokens`: personal access tokens.
//! - `auth`: credentials → a principal (never a deactivated account), and the CSRF rule of
//!   cookie sessions.
//! - `proxy`: the route table (path → backend, auth rule, body cap, timeout), [`Upstreams`]
//!   and their failover, forwarding in process or over HTTP, WebSocket splicing; workspace
//!   API keys checked, identity headers (`x-prismeai-auth-data`, superadmin role) set.
//! - [`ratelimit`]: cluster-wide HTTP rate limits (counters in the shared cache).
//! - `console`: the web UI's embedded files, served on every non-API path.
//! - [`users`], [`secrets`], `error`: accounts storage, token and password material, error
//!   mapping.
//!
//! [`router`] builds the whole public app from a [`GatewayState`]; serving it (listener,
//! shutdown) is the CLI's job. Depends on core, http, storage and broker; on no other service
//! crate — backends are reached through [`Upstream`]s.
//!
//! Backends receive the full public path (`/v2/workspaces/…`). In process, the request keeps
//! its extensions, so a WebSocket upgrade reaches the backend's `WebSocketUpgrade`; over HTTP
//! the gateway sends the handshake itself and splices the two upgraded connections. Session
//! tokens are opaque random strings, not JWTs: RS256 session JWTs with a JWKS are a later
//! step, and clients treat the token as opaque either way.
//!
//! Adding a `/v2` route that a backend serves: the backend's router, then one row of the route
//! table in `proxy/routes.rs` (its unit test fails until the row exists).

#![warn(missing_docs)]

mod accounts;
mod auth;
mod client;
pub mod config;
mod console;
mod edge;
mod error;
pub mod oidc;
mod openapi;
mod path;
mod proxy;
pub mod ratelimit;
pub mod secrets;
mod sessions;
mod state;
mod tokens;
pub mod users;
mod webhooks_host;

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::response::{IntoResponse, Response};
use refract_http::ApiError;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use config::{Config, ConfigError, SameSite};
pub use proxy::{Instances, Upstream, Upstreams, proxied_paths};
pub use state::GatewayState;

/// How long the healthcheck waits for the cache.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /sys/healthcheck`: 200 `{"status":"ok","healthy":true}` while the gateway's own
/// dependency (the session cache) answers, 503 JSON otherwise.
#[utoipa::path(get, path = "/sys/healthcheck", tag = "platform", security(()),
    responses((status = 200, description = "`{status: \"ok\", healthy: true}`.", body = openapi::Health)))]
async fn healthcheck(State(state): State<GatewayState>) -> Response {
    match tokio::time::timeout(HEALTH_TIMEOUT, state.cache().ping()).await {
        Ok(Ok(())) => axum::Json(json!({ "status": "ok", "healthy": true })).into_response(),
        Ok(Err(e)) => ApiError::unavailable(format!("cache: {e}")).into_response(),
        Err(_) => ApiError::unavailable("cache: no answer to ping").into_response(),
    }
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        "this route does not accept this method",
    )
}

/// The gateway's own routes (accounts, sessions, tokens, the API document) with their
/// operations; [`router`] serves them.
pub fn api() -> OpenApiRouter<GatewayState> {
    OpenApiRouter::new()
        .routes(routes!(accounts::signup))
        .routes(routes!(oidc::start, accounts::login))
        .routes(routes!(oidc::callback))
        .routes(routes!(oidc::list))
        .routes(routes!(accounts::login_anonymous))
        .routes(routes!(accounts::logout))
        .routes(routes!(accounts::me))
        .routes(routes!(tokens::list, tokens::create))
        .routes(routes!(tokens::revoke))
        .routes(routes!(openapi_json))
        .routes(routes!(healthcheck))
}

/// `GET /v2/openapi.json`: the platform's API as an OpenAPI 3.1 document (the gateway's own
/// operations alone until the binary publishes the whole one).
// Its 200 stays a plain `Object`: the OpenAPI 3.1 meta-schema, not a type of this API, is what
// describes the document.
#[utoipa::path(get, path = "/v2/openapi.json", tag = "platform", security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document.", body = Object)))]
async fn openapi_json(State(state): State<GatewayState>) -> Response {
    let body = match state.api_document() {
        Some(published) => published.clone(),
        None => match serde_json::to_vec(&refract_http::openapi::document(
            env!("CARGO_PKG_VERSION"),
            [api().into_openapi()],
        )) {
            Ok(own) => own.into(),
            Err(e) => return ApiError::internal(e).into_response(),
        },
    };
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// The whole public app: the gateway's own routes, `/sys/healthcheck`, dispatch of
/// `/v2/workspaces**` to the backends, and JSON 404s for everything else. Serve it with
/// `into_make_service_with_connect_info::<SocketAddr>()` so `x-forwarded-for` and event IPs
/// are set.
///
/// The edge and the webhooks-host split wrap the routed app rather than being layers of it:
/// a router's own layers run after it picked a route, and the route must be picked from the
/// canonical path the edge computes.
pub fn router(state: GatewayState) -> Router {
    let own = api()
        .split_for_parts()
        .0
        .layer(DefaultBodyLimit::max(state.config().body_limit));
    let routed = Router::new()
        .merge(own)
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(console::console_or_dispatch)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ratelimit::guard,
        ))
        .with_state(state.clone());
    Router::new()
        .fallback_service(routed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            webhooks_host::split,
        ))
        .layer(axum::middleware::from_fn_with_state(state, edge::edge))
}
