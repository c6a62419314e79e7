//! The gateway key (`spec/http-api.md` §1.5): a secret shared by the gateways and the backends,
//! sent by the gateway as `x-refract-gateway-key` on every request it forwards (WebSocket
//! upgrades included) and required by every backend route but the operational ones. Backends
//! trust identity headers (`x-prismeai-role: superadmin`, …), so without it whoever reaches a
//! backend's port — another process on the host, a tenant's `fetch` where loopback is
//! allowed — would be whoever it claims.
//!
//! [`guard`] is the one check: the binary applies it to each backend's whole app, so a new
//! route cannot forget it. [`GatewayGuard::for_listener`] is the one startup rule: a backend
//! runs without a key only when told to (`require_gateway_key = false`) and only on loopback.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::ApiError;
use crate::headers::GATEWAY_KEY;

/// Shortest key accepted: 16 characters leave a guesser nothing to do over the network.
pub const MIN_LEN: usize = 16;

/// Random bytes in a key made for one process (embedded mode): 256 bits.
const RANDOM_BYTES: usize = 32;

/// Paths a backend answers without the key: liveness, readiness and metrics, which probes and
/// scrapers call directly and which reveal no tenant data (`/metrics` has its own key).
pub const OPEN_PATHS: &[&str] = &["/sys/healthcheck", "/sys/readiness", "/metrics"];

/// The shared secret. Its `Debug` is redacted, so a config dump never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct GatewayKey(Arc<str>);

/// Why a key or a guard is refused; each message names the setting to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayKeyError {
    /// The configured key is too short or not printable ASCII.
    #[error(
        "gateway_key (REFRACT_GATEWAY_KEY) must be at least {MIN_LEN} printable ASCII characters"
    )]
    Malformed,
    /// A backend must require a key but none is configured.
    #[error(
        "a backend listening on {listen} needs gateway_key (REFRACT_GATEWAY_KEY), the secret its gateways send; \
         set the same value on every gateway and backend"
    )]
    Missing {
        /// The backend's listen address.
        listen: SocketAddr,
    },
    /// The key was turned off on a listen address reachable from other hosts.
    #[error(
        "require_gateway_key = false (REFRACT_REQUIRE_GATEWAY_KEY) is allowed on a loopback listen address only, \
         not on {listen}"
    )]
    DisabledOffLoopback {
        /// The backend's non-loopback listen address.
        listen: SocketAddr,
    },
    /// The system's random source failed while making a per-process key.
    #[error("no randomness for the gateway key: {0}")]
    Random(String),
}

impl GatewayKey {
    /// A key from the configuration: at least [`MIN_LEN`] printable ASCII characters (it
    /// travels as a header value).
    pub fn new(value: impl Into<String>) -> Result<Self, GatewayKeyError> {
        let value = value.into();
        let printable = value.bytes().all(|b| b.is_ascii_graphic());
        if value.len() < MIN_LEN || !printable {
            return Err(GatewayKeyError::Malformed);
        }
        Ok(Self(value.into()))
    }

    /// A fresh random key (64 hex characters), for a process whose gateway and backends share
    /// memory (embedded mode) and so need not share a configured secret.
    pub fn random() -> Result<Self, GatewayKeyError> {
        let mut bytes = [0u8; RANDOM_BYTES];
        getrandom::fill(&mut bytes).map_err(|e| GatewayKeyError::Random(e.to_string()))?;
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Ok(Self(hex.into()))
    }

    /// The key itself, to send.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `sent` is the key, in time independent of where they differ.
    pub fn matches(&self, sent: &[u8]) -> bool {
        self.0.as_bytes().ct_eq(sent).into()
    }
}

impl std::fmt::Debug for GatewayKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GatewayKey(***)")
    }
}

/// Whom a backend serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayGuard {
    /// Only requests carrying this key (the normal case).
    Key(GatewayKey),
    /// Anyone (`require_gateway_key = false`): only ever on a loopback listen address.
    Open,
}

impl GatewayGuard {
    /// The guard of a backend listening on `listen`: the key when there is one; without one,
    /// open only if `required` is false and `listen` is loopback, else a startup error.
    pub fn for_listener(
        listen: SocketAddr,
        key: Option<GatewayKey>,
        required: bool,
    ) -> Result<Self, GatewayKeyError> {
        match key {
            Some(key) => Ok(Self::Key(key)),
            None if !listen.ip().is_loopback() && !required => {
                Err(GatewayKeyError::DisabledOffLoopback { listen })
            }
            None if required => Err(GatewayKeyError::Missing { listen }),
            None => Ok(Self::Open),
        }
    }
}

/// `app` answering only requests that carry the key, but on [`OPEN_PATHS`]: 401 without the
/// header, 403 with a wrong one. The header is removed before the request goes on, so no
/// handler (nor a guest reading its webhook's headers) ever sees it.
pub fn guard(app: Router, guard: GatewayGuard) -> Router {
    match guard {
        GatewayGuard::Key(key) => app.layer(axum::middleware::from_fn_with_state(key, check)),
        GatewayGuard::Open => app,
    }
}

async fn check(State(key): State<GatewayKey>, mut req: Request, next: Next) -> Response {
    if OPEN_PATHS.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    match req.headers_mut().remove(GATEWAY_KEY) {
        Some(sent) if key.matches(sent.as_bytes()) => next.run(req).await,
        Some(_) => ApiError::forbidden("wrong gateway key: call the platform through its gateway")
            .into_response(),
        None => {
            ApiError::unauthenticated("this is a backend: call the platform through its gateway")
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::StatusCode;
    use axum::routing::get;
    use tower::ServiceExt;

    fn app() -> Router {
        let app = Router::new()
            .route(
                "/v2/workspaces",
                get(|headers: axum::http::HeaderMap| async move {
                    format!("{}", headers.contains_key(GATEWAY_KEY))
                }),
            )
            .route("/sys/healthcheck", get(|| async { "ok" }));
        guard(
            app,
            GatewayGuard::Key(GatewayKey::new("0123456789abcdef").unwrap()),
        )
    }

    async fn call(path: &str, key: Option<&str>) -> (StatusCode, String) {
        let mut req = Request::get(path).header("x-prismeai-role", "superadmin");
        if let Some(key) = key {
            req = req.header(GATEWAY_KEY, key);
        }
        let res = app()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let body = http_body_util::BodyExt::collect(res.into_body())
            .await
            .unwrap()
            .to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn only_requests_with_the_key_pass_and_the_key_goes_no_further() {
        let (status, body) = call("/v2/workspaces", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(body.contains("AuthenticationError"), "{body}");
        let (status, body) = call("/v2/workspaces", Some("0123456789abcdeX")).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(body.contains("ForbiddenError"), "{body}");
        assert_eq!(
            call("/v2/workspaces", Some("0123456789abcdef")).await,
            (StatusCode::OK, "false".into())
        );
        assert_eq!(
            call("/sys/healthcheck", None).await,
            (StatusCode::OK, "ok".into())
        );
        assert_eq!(call("/nowhere", None).await.0, StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn keys_are_long_redacted_and_compared_whole() {
        assert_eq!(GatewayKey::new("short"), Err(GatewayKeyError::Malformed));
        assert_eq!(
            GatewayKey::new("0123456789abcdef\n"),
            Err(GatewayKeyError::Malformed)
        );
        let key = GatewayKey::new("0123456789abcdef").unwrap();
        assert_eq!(format!("{key:?}"), "GatewayKey(***)");
        assert!(key.matches(b"0123456789abcdef"));
        assert!(!key.matches(b"0123456789abcde") && !key.matches(b"0123456789abcdef0"));
        let random = GatewayKey::random().unwrap();
        assert_eq!(random.expose().len(), 64);
        assert_ne!(random, GatewayKey::random().unwrap());
    }

    #[test]
    fn a_backend_without_a_key_runs_only_when_told_and_only_on_loopback() {
        let loopback: SocketAddr = "127.0.0.1:3001".parse().unwrap();
        let public: SocketAddr = "0.0.0.0:3001".parse().unwrap();
        let key = GatewayKey::new("0123456789abcdef").unwrap();
        assert_eq!(
            GatewayGuard::for_listener(public, Some(key.clone()), true),
            Ok(GatewayGuard::Key(key))
        );
        let missing = GatewayGuard::for_listener(public, None, true).unwrap_err();
        assert!(missing.to_string().contains("gateway_key"), "{missing}");
        assert!(GatewayGuard::for_listener(loopback, None, true).is_err());
        assert_eq!(
            GatewayGuard::for_listener(loopback, None, false),
            Ok(GatewayGuard::Open)
        );
        let off = GatewayGuard::for_listener(public, None, false).unwrap_err();
        assert!(off.to_string().contains("require_gateway_key"), "{off}");
    }
}
