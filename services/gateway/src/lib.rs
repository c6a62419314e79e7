//! `refract-gateway`: Refract's only public listener (`spec/http-api.md` §1, §2).
//!
//! - [`config`]: [`Config`], its defaults and validation.
//! - [`edge`]: the middleware every request passes first, before routing: the path made
//!   canonical ([`path`]), the client hop read ([`client`], `TRUSTED_PROXIES`), trusted headers
//!   deleted, correlation id set on request and response, one log line per request.
//! - [`webhooks_host`]: webhooks on a host of their own (`webhooks_origin`).
//! - [`accounts`]: signup, password and anonymous login, logout, `/v2/me`.
//! - [`oidc`]: login with external OpenID Connect providers (code flow with PKCE, logins in
//!   flight kept in the shared cache).
//! - [`sessions`]: login sessions in the shared cache, keyed by the token's SHA-256.
//! - [`tokens`]: personal access tokens.
//! - [`auth`]: credentials → [`auth::Principal`] (never a deactivated account), and the CSRF
//!   rule of cookie sessions.
//! - [`proxy`]: [`Upstreams`], path → backend, body caps, timeouts, forwarding; workspace
//!   API keys checked, identity headers (`x-prismeai-auth-data`, superadmin role) set.
//! - [`ratelimit`]: cluster-wide HTTP rate limits (counters in the shared cache).
//! - [`console`]: the web UI's embedded files, served on every non-API path.
//! - [`users`], [`secrets`], [`error`]: accounts storage, token and password material, error
//!   mapping.
//!
//! [`router`] builds the whole public app from a [`GatewayState`]; serving it (listener,
//! shutdown) is the CLI's job. Depends on core, http, storage and broker; on no other service
//! crate — backends are reached through [`Upstream`]s.
//!
//! Backends receive the full public path (`/v2/workspaces/…`). In process, the request keeps
//! its extensions, so a WebSocket upgrade reaches the backend's `WebSocketUpgrade`; over HTTP
//! the gateway sends the handshake itself and splices the two upgraded connections. Session tokens are opaque random strings, not JWTs: RS256
//! session JWTs with a JWKS are a later step, and clients treat the token as opaque either way.

pub mod accounts;
pub mod auth;
pub mod client;
pub mod config;
pub mod console;
pub mod edge;
mod error;
pub mod oidc;
pub mod path;
pub mod proxy;
pub mod ratelimit;
pub mod secrets;
pub mod sessions;
pub mod tokens;
pub mod users;
pub mod webhooks_host;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use refract_broker::Broker;
use refract_core::{EventType, SessionId, SourceHost, UserId};
use refract_http::ApiError;
use refract_storage::{Cache, DocumentStore};
use serde_json::{Value, json};

pub use config::{Config, ConfigError, SameSite};
pub use proxy::{Upstream, Upstreams};

use crate::edge::RequestMeta;

/// How long an event publish may take before the gateway gives up on it: events are a side
/// effect, and a slow broker must not hold a login.
const EMIT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long the healthcheck waits for the cache.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// Everything the handlers share; cheap to clone.
#[derive(Clone)]
pub struct GatewayState {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    store: Arc<dyn DocumentStore>,
    cache: Arc<dyn Cache>,
    broker: Arc<dyn Broker>,
    upstreams: Upstreams,
    http: reqwest::Client,
    password_rule: regex::Regex,
    oidc: oidc::Providers,
    trusted_proxies: client::TrustedProxies,
    webhooks_origin: Option<webhooks_host::WebhooksOrigin>,
}

impl std::fmt::Debug for GatewayState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayState")
            .field("config", &self.inner.config)
            .field("store", &self.inner.store.describe())
            .field("cache", &self.inner.cache.describe())
            .field("upstreams", &self.inner.upstreams)
            .finish()
    }
}

impl GatewayState {
    /// Validates `config` and builds the state, with one pooled HTTP client for `Http`
    /// upstreams.
    pub fn new(
        config: Config,
        store: Arc<dyn DocumentStore>,
        cache: Arc<dyn Cache>,
        broker: Arc<dyn Broker>,
        upstreams: Upstreams,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let password_rule =
            regex::Regex::new(&config.password_rule).map_err(|e| ConfigError::Invalid {
                setting: "password_rule",
                reason: e.to_string(),
            })?;
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ConfigError::HttpClient(e.to_string()))?;
        let oidc = oidc::Providers::new(&config.oidc_providers, http.clone()).map_err(|e| {
            ConfigError::Invalid {
                setting: "oidc_providers",
                reason: e.to_string(),
            }
        })?;
        let invalid = |setting| move |reason| ConfigError::Invalid { setting, reason };
        let trusted_proxies = client::TrustedProxies::parse(&config.trusted_proxies)
            .map_err(invalid("trusted_proxies"))?;
        let webhooks_origin = config
            .webhooks_origin
            .as_deref()
            .map(webhooks_host::WebhooksOrigin::parse)
            .transpose()
            .map_err(invalid("webhooks_origin"))?;
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                store,
                cache,
                broker,
                upstreams,
                http,
                password_rule,
                oidc,
                trusted_proxies,
                webhooks_origin,
            }),
        })
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub(crate) fn store(&self) -> &dyn DocumentStore {
        self.inner.store.as_ref()
    }

    pub(crate) fn cache(&self) -> &dyn Cache {
        self.inner.cache.as_ref()
    }

    pub(crate) fn upstreams(&self) -> &Upstreams {
        &self.inner.upstreams
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    pub(crate) fn oidc(&self) -> &oidc::Providers {
        &self.inner.oidc
    }

    pub(crate) fn trusted_proxies(&self) -> &client::TrustedProxies {
        &self.inner.trusted_proxies
    }

    pub(crate) fn webhooks_origin(&self) -> Option<&webhooks_host::WebhooksOrigin> {
        self.inner.webhooks_origin.as_ref()
    }

    pub(crate) fn password_rule(&self) -> &regex::Regex {
        &self.inner.password_rule
    }

    /// Publishes a `gateway.*` event. A broker failure is logged, never returned: the login
    /// or signup it reports has already happened.
    pub(crate) async fn emit(
        &self,
        event_type: &str,
        payload: Value,
        meta: &RequestMeta,
        user: Option<&str>,
        session: Option<&str>,
    ) {
        let (Ok(event_type), Value::Object(payload)) = (EventType::new(event_type), payload) else {
            tracing::error!(
                event_type,
                "gateway event with a bad type or a non-object payload"
            );
            return;
        };
        let mut event = refract_core::Event::new(event_type, None, payload);
        event.source.correlation_id = meta.correlation_id.clone();
        event.source.user_id = user.and_then(|u| UserId::new(u).ok());
        event.source.session_id = session.and_then(|s| SessionId::new(s).ok());
        event.source.ip = meta.ip();
        event.source.host = Some(SourceHost {
            service: refract_core::platform::service::GATEWAY.into(),
            replica: None,
        });
        let kind = event.event_type.to_string();
        match tokio::time::timeout(EMIT_TIMEOUT, self.inner.broker.publish(event)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(event_type = %kind, error = %e, "could not publish a gateway event")
            }
            Err(_) => tracing::warn!(event_type = %kind, "publishing a gateway event timed out"),
        }
    }
}

/// `GET /sys/healthcheck`: 200 `{"status":"ok","healthy":true}` while the gateway's own
/// dependency (the session cache) answers, 503 JSON otherwise.
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

/// The whole public app: the gateway's own routes, `/sys/healthcheck`, dispatch of
/// `/v2/workspaces**` to the backends, and JSON 404s for everything else. Serve it with
/// `into_make_service_with_connect_info::<SocketAddr>()` so `x-forwarded-for` and event IPs
/// are set.
///
/// The edge and the webhooks-host split wrap the routed app rather than being layers of it:
/// a router's own layers run after it picked a route, and the route must be picked from the
/// canonical path the edge computes.
pub fn router(state: GatewayState) -> Router {
    let own = Router::new()
        .route("/v2/signup", post(accounts::signup))
        .route("/v2/login", get(oidc::start).post(accounts::login))
        .route("/v2/login/callback", get(oidc::callback))
        .route("/v2/login/providers", get(oidc::list))
        .route("/v2/login/anonymous", post(accounts::login_anonymous))
        .route("/v2/logout", post(accounts::logout))
        .route("/v2/me", get(accounts::me))
        .route(
            "/v2/user/accessTokens",
            get(tokens::list).post(tokens::create),
        )
        .route("/v2/user/accessTokens/{token}", delete(tokens::revoke))
        .layer(DefaultBodyLimit::max(state.config().body_limit));
    let routed = Router::new()
        .merge(own)
        .route("/sys/healthcheck", get(healthcheck))
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
