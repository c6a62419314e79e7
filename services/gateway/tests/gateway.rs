//! Service tests of the gateway through `router(state).oneshot(..)`, with in-memory storage and
//! broker, and fake backends that echo what they received.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use http_body_util::BodyExt;
use refract_broker::{
    Broker, BrokerConfig, BrokerError, DeadLetter, MemoryBroker, Subscriber, Subscription,
    TypeFilter,
};
use refract_core::{Event, EventId};
use refract_gateway::{Config, GatewayState, Upstream, Upstreams, router};
use refract_storage::cache::MemoryCache;
use refract_storage::{Cache, DocumentStore, MemoryStore};
use serde_json::{Value, json};
use tower::ServiceExt;

/// A backend that answers with what reached it: service, method, path, headers, body size.
/// A body that fails to stream (the gateway's cap) gets 413, as axum backends answer.
fn echo(service: &'static str) -> Router {
    Router::new().fallback(move |req: Request| async move {
        let (parts, body) = req.into_parts();
        let Ok(collected) = body.collect().await else {
            let body = json!({"error": "PayloadTooLarge", "message": "too large"});
            return (StatusCode::PAYLOAD_TOO_LARGE, axum::Json(body)).into_response();
        };
        let headers: serde_json::Map<String, Value> = parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    Value::String(v.to_str().unwrap_or("?").to_string()),
                )
            })
            .collect();
        axum::Json(json!({
            "service": service,
            "method": parts.method.as_str(),
            "path": parts.uri.path(),
            "query": parts.uri.query(),
            "headers": headers,
            "bodyLen": collected.to_bytes().len(),
        }))
        .into_response()
    })
}

fn in_process() -> Upstreams {
    Upstreams {
        workspaces: Upstream::InProcess(echo("workspaces")),
        runtime: Upstream::InProcess(echo("runtime")),
        events: Upstream::InProcess(echo("events")),
    }
}

/// A broker that is always down.
struct DownBroker;

#[async_trait::async_trait]
impl Broker for DownBroker {
    async fn publish(&self, _: Event) -> Result<EventId, BrokerError> {
        Err(BrokerError::Closed)
    }
    async fn subscribe(&self, _: Subscription) -> Result<Box<dyn Subscriber>, BrokerError> {
        Err(BrokerError::Closed)
    }
    async fn dead_letters(&self, _: usize) -> Result<Vec<DeadLetter>, BrokerError> {
        Err(BrokerError::Closed)
    }
}

struct Gw {
    app: Router,
    broker: Arc<dyn Broker>,
    store: Arc<dyn DocumentStore>,
    cache: Arc<dyn Cache>,
}

impl Gw {
    fn with(config: Config, upstreams: Upstreams, broker: Arc<dyn Broker>) -> Result<Self> {
        let store: Arc<dyn DocumentStore> = Arc::new(MemoryStore::new());
        let cache: Arc<dyn Cache> = Arc::new(MemoryCache::new("test"));
        let state = GatewayState::new(
            config,
            store.clone(),
            cache.clone(),
            broker.clone(),
            upstreams,
        )?;
        Ok(Self {
            app: router(state),
            broker,
            store,
            cache,
        })
    }

    fn new() -> Result<Self> {
        Self::to(in_process())
    }

    /// The embedded configuration and an in-process broker, in front of `upstreams`.
    fn to(upstreams: Upstreams) -> Result<Self> {
        Self::with(
            Config::embedded(),
            upstreams,
            Arc::new(MemoryBroker::new(BrokerConfig::default())),
        )
    }

    /// Sends `req` from a client at 203.0.113.7.
    async fn send(&self, mut req: Request) -> Result<Reply> {
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([203, 0, 113, 7], 40000))));
        let res = self.app.clone().oneshot(req).await?;
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await?.to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).context("response is not JSON")?
        };
        let correlation = headers
            .get("x-correlation-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        ensure!(
            correlation.len() == 32 && correlation.bytes().all(|b| b.is_ascii_hexdigit()),
            "bad correlation id {correlation:?} on {status}"
        );
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    async fn signup(&self, email: &str, password: &str) -> Result<Reply> {
        self.send(post_json(
            "/v2/signup",
            json!({"email": email, "password": password, "firstName": "Ann"}),
        ))
        .await
    }

    /// Signs up and logs in; returns the login reply.
    async fn login(&self, email: &str) -> Result<Reply> {
        let r = self.signup(email, "correct horse").await?;
        ensure!(
            r.status == StatusCode::OK,
            "signup: {} {}",
            r.status,
            r.body
        );
        let r = self
            .send(post_json(
                "/v2/login",
                json!({"email": email, "password": "correct horse"}),
            ))
            .await?;
        ensure!(r.status == StatusCode::OK, "login: {} {}", r.status, r.body);
        Ok(r)
    }
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Reply {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    fn token(&self) -> String {
        self.body["token"].as_str().unwrap_or_default().to_string()
    }

    /// The `access-token` cookie value from `Set-Cookie`.
    fn cookie(&self) -> String {
        let set = self.header("set-cookie");
        set.split(';')
            .next()
            .and_then(|kv| kv.strip_prefix("access-token="))
            .unwrap_or_default()
            .to_string()
    }
}

fn post_json(uri: &str, body: Value) -> Request {
    request(
        "POST",
        uri,
        &[("content-type", "application/json")],
        Body::from(body.to_string()),
    )
}

fn request(method: &str, uri: &str, headers: &[(&str, &str)], body: Body) -> Request {
    let mut builder = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    builder.body(body).expect("static request parts are valid")
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test]
async fn signup_login_me_logout() -> Result<()> {
    let gw = Gw::new()?;
    let r = gw.signup("Ann@Example.org", "correct horse").await?;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["email"], "ann@example.org");
    assert_eq!(r.body["status"], "validated");
    assert_eq!(r.body["firstName"], "Ann");
    assert!(r.body["id"].is_string() && r.body["authData"]["prismeai"].is_object());
    assert!(
        !r.body.to_string().contains("argon2"),
        "no hash in {}",
        r.body
    );
    assert!(r.header("set-cookie").is_empty(), "signup opens no session");
    let user_id = r.body["id"].clone();

    let r = gw
        .send(post_json(
            "/v2/login",
            json!({"email": "ann@example.org", "password": "correct horse"}),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["id"], user_id);
    let token = r.token();
    assert!(token.len() >= 43, "{token}");
    assert!(r.body["sessionId"].is_string() && r.body["expires"].is_string());
    let cookie = r.header("set-cookie");
    for part in ["HttpOnly", "Path=/", "SameSite=Lax", "Max-Age="] {
        assert!(cookie.contains(part), "{cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "embedded config has no Secure: {cookie}"
    );
    assert_eq!(r.cookie(), token);
    assert!(!r.header("x-prismeai-csrf-token").is_empty());

    let me = gw
        .send(request(
            "GET",
            "/v2/me",
            &[("authorization", &bearer(&token))],
            Body::empty(),
        ))
        .await?;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    assert_eq!(me.body["id"], user_id);
    assert_eq!(me.body["sessionId"], r.body["sessionId"]);
    assert_eq!(me.body["expires"], r.body["expires"]);
    assert!(
        me.header("x-prismeai-csrf-token").is_empty(),
        "bearer sessions need no CSRF token"
    );

    // The legacy header works too.
    let me = gw
        .send(request(
            "GET",
            "/v2/me",
            &[("x-prismeai-token", &token)],
            Body::empty(),
        ))
        .await?;
    assert_eq!(me.status, StatusCode::OK);

    let out = gw
        .send(request(
            "POST",
            "/v2/logout",
            &[("authorization", &bearer(&token))],
            Body::empty(),
        ))
        .await?;
    assert_eq!(out.status, StatusCode::OK);
    assert_eq!(out.body, json!({"success": true}));
    assert!(out.header("set-cookie").contains("Max-Age=0"));
    let me = gw
        .send(request(
            "GET",
            "/v2/me",
            &[("authorization", &bearer(&token))],
            Body::empty(),
        ))
        .await?;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
    assert_eq!(me.body["error"], "AuthenticationError");
    let again = gw
        .send(request(
            "POST",
            "/v2/logout",
            &[("authorization", &bearer(&token))],
            Body::empty(),
        ))
        .await?;
    assert_eq!(again.status, StatusCode::OK, "logout is idempotent");
    Ok(())
}

#[tokio::test]
async fn a_session_is_visible_to_another_gateway_on_the_same_cache() -> Result<()> {
    let gw = Gw::new()?;
    let token = gw.login("ann@example.org").await?.token();
    let state = GatewayState::new(
        Config::embedded(),
        gw.store.clone(),
        gw.cache.clone(),
        gw.broker.clone(),
        in_process(),
    )?;
    let other = Gw {
        app: router(state),
        broker: gw.broker.clone(),
        store: gw.store.clone(),
        cache: gw.cache.clone(),
    };
    let me = other
        .send(request(
            "GET",
            "/v2/me",
            &[("authorization", &bearer(&token))],
            Body::empty(),
        ))
        .await?;
    assert_eq!(me.status, StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn duplicate_emails_conflict_whatever_their_case() -> Result<()> {
    let gw = Gw::new()?;
    assert_eq!(
        gw.signup("ann@example.org", "correct horse").await?.status,
        StatusCode::OK
    );
    let r = gw.signup("ANN@example.org", "another password").await?;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.body["error"], "AlreadyUsedError");
    assert_eq!(r.body["details"]["field"], "email");
    Ok(())
}

#[tokio::test]
async fn bad_password_and_unknown_email_get_the_same_401_and_a_failed_event() -> Result<()> {
    let gw = Gw::new()?;
    let mut events = gw
        .broker
        .subscribe(Subscription::fan_out(TypeFilter::new([
            "gateway.login.failed",
        ])))
        .await?;
    gw.signup("ann@example.org", "correct horse").await?;
    let wrong = gw
        .send(post_json(
            "/v2/login",
            json!({"email": "ann@example.org", "password": "wrong horse"}),
        ))
        .await?;
    let unknown = gw
        .send(post_json(
            "/v2/login",
            json!({"email": "bob@example.org", "password": "correct horse"}),
        ))
        .await?;
    for r in [&wrong, &unknown] {
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(r.body["error"], "AuthenticationError");
        assert!(r.header("set-cookie").is_empty());
    }
    assert_eq!(wrong.body["message"], unknown.body["message"]);
    let delivery = tokio::time::timeout(Duration::from_secs(5), events.next()).await??;
    let event = &delivery.event;
    assert_eq!(event.payload["email"], "ann@example.org");
    assert_eq!(event.payload["ip"], "203.0.113.7");
    assert!(
        !serde_json::to_string(&event.payload)?.contains("horse"),
        "no password in the event"
    );
    assert_eq!(
        event.source.correlation_id.as_str(),
        wrong.header("x-correlation-id")
    );
    Ok(())
}

#[tokio::test]
async fn login_and_signup_emit_events_without_secrets() -> Result<()> {
    let gw = Gw::new()?;
    let mut events = gw
        .broker
        .subscribe(Subscription::fan_out(TypeFilter::new(["gateway.*"])))
        .await?;
    let login = gw.login("ann@example.org").await?;
    let signup = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await??
        .event
        .clone();
    assert_eq!(signup.event_type.as_str(), "gateway.signup.succeeded");
    assert_eq!(signup.payload["user"]["email"], "ann@example.org");
    let ok = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await??
        .event
        .clone();
    assert_eq!(ok.event_type.as_str(), "gateway.login.succeeded");
    assert_eq!(ok.payload["session"]["id"], login.body["sessionId"]);
    let text = serde_json::to_string(&ok)? + &serde_json::to_string(&signup)?;
    assert!(
        !text.contains(&login.token()) && !text.contains("horse") && !text.contains("argon2"),
        "{text}"
    );
    Ok(())
}

#[tokio::test]
async fn a_broken_broker_does_not_break_login() -> Result<()> {
    let gw = Gw::with(Config::embedded(), in_process(), Arc::new(DownBroker))?;
    let r = gw.login("ann@example.org").await?;
    assert!(!r.token().is_empty());
    Ok(())
}

#[tokio::test]
async fn bad_input_gets_json_400s() -> Result<()> {
    let gw = Gw::new()?;
    let malformed = request(
        "POST",
        "/v2/signup",
        &[("content-type", "application/json")],
        Body::from("{oops"),
    );
    for (req, field) in [
        (malformed, "body"),
        (
            post_json(
                "/v2/signup",
                json!({"email": "a@x.org", "password": "correct horse", "firstName": "A", "admin": true}),
            ),
            "body",
        ),
        (
            post_json(
                "/v2/signup",
                json!({"email": "a@x.org", "password": "short", "firstName": "A"}),
            ),
            "password",
        ),
        (
            post_json(
                "/v2/signup",
                json!({"email": "not an email", "password": "correct horse", "firstName": "A"}),
            ),
            "email",
        ),
        (
            post_json(
                "/v2/signup",
                json!({"email": "a@x.org", "password": "correct horse", "firstName": ""}),
            ),
            "firstName",
        ),
    ] {
        let r = gw.send(req).await?;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
        assert_eq!(r.body["error"], "RequestValidationError");
        assert_eq!(r.body["details"][0]["path"], field, "{}", r.body);
    }
    let r = gw
        .send(request("POST", "/v2/login", &[], Body::from("{}")))
        .await?;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    Ok(())
}

#[tokio::test]
async fn oversized_bodies_get_413_on_own_and_proxied_routes() -> Result<()> {
    let gw = Gw::new()?;
    let big = "x".repeat(1024 * 1024 + 10);
    let r = gw
        .send(post_json(
            "/v2/signup",
            json!({"email": "a@x.org", "password": "correct horse", "firstName": big}),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.body);
    assert_eq!(r.body["error"], "PayloadTooLarge");

    // Declared too large: refused before the backend is called.
    let len = (1024 * 1024 + 1).to_string();
    let r = gw
        .send(request(
            "POST",
            "/v2/workspaces/w1/webhooks/echo",
            &[("content-length", &len)],
            Body::from(vec![0u8; 1024 * 1024 + 1]),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.body["error"], "PayloadTooLarge");
    assert_eq!(r.body["details"]["limit"], 1024 * 1024);

    // Streamed without a length: cut while streaming.
    let chunks =
        futures::stream::iter((0..20).map(|_| Ok::<_, std::io::Error>(vec![1u8; 64 * 1024])));
    let r = gw
        .send(request(
            "POST",
            "/v2/workspaces/w1/webhooks/echo",
            &[],
            Body::from_stream(chunks),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);

    // Under the cap, the backend gets it all.
    let r = gw
        .send(request(
            "POST",
            "/v2/workspaces/w1/webhooks/echo",
            &[],
            Body::from(vec![1u8; 1000]),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["bodyLen"], 1000);
    Ok(())
}

#[tokio::test]
async fn backends_see_the_real_user_never_a_spoofed_one() -> Result<()> {
    let gw = Gw::new()?;
    // A workspace API key that exists: it passes through; its rules are the backend's business.
    let record = serde_json::json!({
        "id": "k1", "workspaceId": "w1", "name": "ci", "hash": refract_storage::api_key_hash("rfk_key"),
        "keyHint": "_key", "rules": [], "createdAt": "2026-01-01T00:00:00Z", "createdBy": "ann"
    });
    gw.store
        .put(
            &refract_storage::collections::API_KEYS,
            "k1",
            &record,
            refract_storage::Expect::Absent,
        )
        .await?;
    let login = gw.login("ann@example.org").await?;
    let token = login.token();
    let spoof = [
        ("x-prismeai-user-id", "admin"),
        ("x-prismeai-session-id", "stolen"),
        ("x-prismeai-role", "superadmin"),
        ("x-refract-gateway-key", "guess"),
        ("x-correlation-id", "client-chosen-id-1234"),
        ("x-forwarded-for", "10.0.0.1"),
        ("x-prismeai-api-key", "rfk_key"),
        ("cookie", "theme=dark"),
        ("x-refract-component-language", "rust"),
    ];
    let mut headers = spoof.to_vec();
    let auth = bearer(&token);
    headers.push(("authorization", &auth));
    let r = gw
        .send(request(
            "GET",
            "/v2/workspaces/w1/automations?limit=5",
            &headers,
            Body::empty(),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let seen = &r.body["headers"];
    assert_eq!(r.body["service"], "workspaces");
    assert_eq!(r.body["path"], "/v2/workspaces/w1/automations");
    assert_eq!(r.body["query"], "limit=5");
    assert_eq!(seen["x-prismeai-user-id"], login.body["id"]);
    assert_eq!(seen["x-prismeai-session-id"], login.body["sessionId"]);
    assert!(seen.get("x-prismeai-role").is_none() && seen.get("x-refract-gateway-key").is_none());
    assert!(
        seen.get("authorization").is_none(),
        "credentials stay at the gateway"
    );
    assert_eq!(seen["x-correlation-id"], r.header("x-correlation-id"));
    assert_eq!(seen["x-forwarded-for"], "203.0.113.7");
    assert_eq!(
        seen["x-prismeai-api-key"], "rfk_key",
        "the API key passes through"
    );
    assert_eq!(seen["cookie"], "theme=dark");
    assert_eq!(
        seen["x-refract-component-language"], "rust",
        "an upload hint, not an identity"
    );
    assert!(
        seen["x-prismeai-auth-data"]
            .as_str()
            .is_some_and(|a| a.contains("prismeai")),
        "the user's identities travel for role bindings"
    );
    assert_eq!(
        r.header("x-prismeai-session-id"),
        login.body["sessionId"].as_str().unwrap_or("-")
    );

    // Anonymous webhook call with a spoofed identity and a cookie session: no identity header
    // but the real one, and no session cookie reach the runtime.
    let r = gw
        .send(request(
            "POST",
            "/v2/workspaces/w1/webhooks/echo",
            &spoof,
            Body::from("{}"),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["service"], "runtime");
    assert!(
        r.body["headers"].get("x-prismeai-user-id").is_none(),
        "{}",
        r.body
    );
    assert!(r.body["headers"].get("x-prismeai-session-id").is_none());
    let cookie = format!("access-token={token}; theme=dark");
    let r = gw
        .send(request(
            "GET",
            "/v2/workspaces/w1/webhooks/echo",
            &[
                ("cookie", &cookie),
                ("x-prismeai-user-id", "admin"),
                ("sec-fetch-site", "same-origin"),
            ],
            Body::empty(),
        ))
        .await?;
    assert_eq!(r.body["headers"]["x-prismeai-user-id"], login.body["id"]);
    assert_eq!(r.body["headers"]["cookie"], "theme=dark");
    // The same GET from another site (a link, an image) runs anonymously.
    let r = gw
        .send(request(
            "GET",
            "/v2/workspaces/w1/webhooks/echo",
            &[("cookie", &cookie), ("sec-fetch-site", "cross-site")],
            Body::empty(),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body["headers"].get("x-prismeai-user-id").is_none());
    // A cookie write without the CSRF token goes on anonymously on a public webhook.
    let r = gw
        .send(request(
            "POST",
            "/v2/workspaces/w1/webhooks/echo",
            &[("cookie", &cookie)],
            Body::from("{}"),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.body["headers"].get("x-prismeai-user-id").is_none(),
        "{}",
        r.body
    );
    Ok(())
}

#[tokio::test]
async fn routes_reach_their_services_and_need_a_user_except_webhooks() -> Result<()> {
    let gw = Gw::new()?;
    for path in [
        "/v2/workspaces",
        "/v2/workspaces/w1/events",
        "/v2/workspaces/w1/search",
        "/v2/workspaces/w1/test/a",
    ] {
        let r = gw
            .send(request(
                "GET",
                path,
                &[("x-prismeai-user-id", "admin")],
                Body::empty(),
            ))
            .await?;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(r.body["error"], "AuthenticationError");
    }
    let bad = gw
        .send(request(
            "GET",
            "/v2/workspaces",
            &[("authorization", "Bearer nope")],
            Body::empty(),
        ))
        .await?;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    let auth = bearer(&gw.login("ann@example.org").await?.token());
    for (path, service) in [
        ("/v2/workspaces", "workspaces"),
        ("/v2/workspaces/w1/events", "events"),
        ("/v2/workspaces/w1/search", "events"),
        ("/v2/workspaces/w1/test/a", "runtime"),
        ("/v2/workspaces/w1/webhooks/a", "runtime"),
        ("/v2/workspaces/w1/automations/a/component", "workspaces"),
    ] {
        let r = gw
            .send(request(
                "GET",
                path,
                &[("authorization", &auth)],
                Body::empty(),
            ))
            .await?;
        assert_eq!(r.body["service"], service, "{path}");
    }
    Ok(())
}

#[tokio::test]
async fn every_response_has_a_fresh_correlation_id() -> Result<()> {
    let gw = Gw::new()?;
    let mut seen = std::collections::HashSet::new();
    for req in [
        request(
            "GET",
            "/v2/nothing",
            &[("x-correlation-id", "0123456789abcdef0123456789abcdef")],
            Body::empty(),
        ),
        request("GET", "/v2/me", &[], Body::empty()),
        request("GET", "/sys/healthcheck", &[], Body::empty()),
        request(
            "POST",
            "/v2/login",
            &[("content-type", "application/json")],
            Body::from("nope"),
        ),
        request("GET", "/v2/workspaces/w1/webhooks/x", &[], Body::empty()),
    ] {
        let r = gw.send(req).await?; // `send` checks the header's shape
        assert!(seen.insert(r.header("x-correlation-id").to_string()));
    }
    assert!(
        !seen.contains("0123456789abcdef0123456789abcdef"),
        "client ids are replaced"
    );
    Ok(())
}

#[tokio::test]
async fn personal_access_tokens_are_shown_once_used_and_revoked() -> Result<()> {
    let gw = Gw::new()?;
    let login = gw.login("ann@example.org").await?;
    let auth = bearer(&login.token());
    let expires = (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339();
    let mut req = post_json(
        "/v2/user/accessTokens",
        json!({"name": "ci", "expiresAt": expires}),
    );
    req.headers_mut().insert("authorization", auth.parse()?);
    let created = gw.send(req).await?;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let pat = created.body["token"]
        .as_str()
        .context("token shown at creation")?
        .to_string();
    assert!(pat.starts_with("at:"));
    let id = created.body["id"].as_str().context("id")?.to_string();
    assert_eq!(created.body["tokenHint"], &pat[pat.len() - 4..]);

    let list = gw
        .send(request(
            "GET",
            "/v2/user/accessTokens",
            &[("authorization", &auth)],
            Body::empty(),
        ))
        .await?;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.body.as_array().map(Vec::len), Some(1));
    assert_eq!(list.body[0]["id"], id.as_str());
    assert!(list.body[0].get("token").is_none() && !list.body.to_string().contains(&pat));

    // The PAT acts as its user, with session id at_<id>, on backends and /v2/me.
    let pat_auth = bearer(&pat);
    let r = gw
        .send(request(
            "POST",
            "/v2/workspaces",
            &[("authorization", &pat_auth)],
            Body::from("{}"),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["headers"]["x-prismeai-user-id"], login.body["id"]);
    assert_eq!(
        r.body["headers"]["x-prismeai-session-id"],
        format!("at_{id}")
    );
    let me = gw
        .send(request(
            "GET",
            "/v2/me",
            &[("authorization", &pat_auth)],
            Body::empty(),
        ))
        .await?;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["id"], login.body["id"]);

    // ... but not on credential routes.
    let r = gw
        .send(request(
            "GET",
            "/v2/user/accessTokens",
            &[("authorization", &pat_auth)],
            Body::empty(),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.body["error"], "ForbiddenError");
    let r = gw
        .send(request(
            "POST",
            "/v2/logout",
            &[("authorization", &pat_auth)],
            Body::empty(),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // Another user cannot revoke it.
    let other = bearer(&gw.login("bob@example.org").await?.token());
    let path = format!("/v2/user/accessTokens/{id}");
    let r = gw
        .send(request(
            "DELETE",
            &path,
            &[("authorization", &other)],
            Body::empty(),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let r = gw
        .send(request(
            "DELETE",
            &path,
            &[("authorization", &auth)],
            Body::empty(),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["id"], id.as_str());
    assert!(r.body.get("token").is_none());
    let r = gw
        .send(request(
            "POST",
            "/v2/workspaces",
            &[("authorization", &pat_auth)],
            Body::from("{}"),
        ))
        .await?;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "a revoked token stops working"
    );
    let r = gw
        .send(request(
            "DELETE",
            &path,
            &[("authorization", &auth)],
            Body::empty(),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    for bad in [
        (chrono::Utc::now() - chrono::Duration::days(1)).to_rfc3339(),
        (chrono::Utc::now() + chrono::Duration::days(400)).to_rfc3339(),
        "tomorrow".to_string(),
    ] {
        let mut req = post_json(
            "/v2/user/accessTokens",
            json!({"name": "ci", "expiresAt": bad}),
        );
        req.headers_mut().insert("authorization", auth.parse()?);
        let r = gw.send(req).await?;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(r.body["details"][0]["path"], "expiresAt");
    }
    Ok(())
}

#[tokio::test]
async fn cookie_sessions_need_the_csrf_token_to_write() -> Result<()> {
    let gw = Gw::new()?;
    let login = gw.login("ann@example.org").await?;
    let cookie = format!("access-token={}", login.cookie());
    let csrf = login.header("x-prismeai-csrf-token").to_string();

    let me = gw
        .send(request(
            "GET",
            "/v2/me",
            &[("cookie", &cookie)],
            Body::empty(),
        ))
        .await?;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.header("x-prismeai-csrf-token"), csrf);

    let r = gw
        .send(request(
            "POST",
            "/v2/workspaces",
            &[("cookie", &cookie)],
            Body::from("{}"),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.body["error"], "CSRFError");
    let r = gw
        .send(request(
            "POST",
            "/v2/workspaces",
            &[("cookie", &cookie), ("x-prismeai-csrf-token", "wrong")],
            Body::from("{}"),
        ))
        .await?;
    assert_eq!(r.body["error"], "CSRFError");
    let r = gw
        .send(request(
            "POST",
            "/v2/workspaces",
            &[("cookie", &cookie), ("x-prismeai-csrf-token", &csrf)],
            Body::from("{}"),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.body["headers"]["x-prismeai-csrf-token"],
        csrf.as_str(),
        "passes through"
    );
    let r = gw
        .send(request(
            "GET",
            "/v2/workspaces",
            &[("cookie", &cookie)],
            Body::empty(),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::OK, "reads need no token");

    // A cross-site page cannot write with the cookie, even with a leaked token.
    let evil = [
        ("cookie", cookie.as_str()),
        ("x-prismeai-csrf-token", csrf.as_str()),
        ("origin", "https://evil.example"),
        ("host", "127.0.0.1:3000"),
    ];
    let r = gw
        .send(request("POST", "/v2/workspaces", &evil, Body::from("{}")))
        .await?;
    assert_eq!(r.body["error"], "CSRFError");
    let own = [
        ("cookie", cookie.as_str()),
        ("x-prismeai-csrf-token", csrf.as_str()),
        ("origin", "http://127.0.0.1:3000"),
        ("host", "127.0.0.1:3000"),
    ];
    let r = gw
        .send(request("POST", "/v2/workspaces", &own, Body::from("{}")))
        .await?;
    assert_eq!(r.status, StatusCode::OK);

    // Bearer tokens are not ambient: exempt.
    let r = gw
        .send(request(
            "POST",
            "/v2/workspaces",
            &[("authorization", &bearer(&login.token()))],
            Body::from("{}"),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::OK);

    // Logout by cookie is a write too.
    let r = gw
        .send(request(
            "POST",
            "/v2/logout",
            &[("cookie", &cookie)],
            Body::empty(),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = gw
        .send(request(
            "POST",
            "/v2/logout",
            &[("cookie", &cookie), ("x-prismeai-csrf-token", &csrf)],
            Body::empty(),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::OK);
    let me = gw
        .send(request(
            "GET",
            "/v2/me",
            &[("cookie", &cookie)],
            Body::empty(),
        ))
        .await?;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
    Ok(())
}

#[tokio::test]
async fn anonymous_sessions_have_a_user_without_email() -> Result<()> {
    let gw = Gw::new()?;
    let r = gw
        .send(post_json(
            "/v2/login/anonymous",
            json!({"expiresAfter": 60}),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.get("email").is_none());
    assert!(r.body["authData"]["anonymous"].is_object());
    assert!(
        r.header("set-cookie").contains("Max-Age=60")
            || r.header("set-cookie").contains("Max-Age=59")
    );
    let token = r.token();
    let me = gw
        .send(request(
            "GET",
            "/v2/me",
            &[("authorization", &bearer(&token))],
            Body::empty(),
        ))
        .await?;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["id"], r.body["id"]);
    let tokens = gw
        .send(request(
            "GET",
            "/v2/user/accessTokens",
            &[("authorization", &bearer(&token))],
            Body::empty(),
        ))
        .await?;
    assert_eq!(
        tokens.status,
        StatusCode::FORBIDDEN,
        "anonymous sessions are not `named`"
    );
    let out = gw
        .send(request(
            "POST",
            "/v2/logout",
            &[("authorization", &bearer(&token))],
            Body::empty(),
        ))
        .await?;
    assert_eq!(out.status, StatusCode::OK, "but they can log out");
    let r = gw
        .send(request("POST", "/v2/login/anonymous", &[], Body::empty()))
        .await?;
    assert_eq!(r.status, StatusCode::OK, "the body is optional: {}", r.body);
    Ok(())
}

#[tokio::test]
async fn unknown_routes_get_json_404s_and_health_answers() -> Result<()> {
    let gw = Gw::new()?;
    // `/` and other non-API paths are the console's (web UI); API paths keep JSON 404s.
    for path in ["/v2/nothing", "/sys/other", "/v2/workspacesX"] {
        let r = gw.send(request("GET", path, &[], Body::empty())).await?;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(r.body["error"], "ObjectNotFoundError");
    }
    let r = gw
        .send(request("DELETE", "/v2/signup", &[], Body::empty()))
        .await?;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(r.body["error"].is_string());
    let r = gw
        .send(request("GET", "/sys/healthcheck", &[], Body::empty()))
        .await?;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["status"], "ok");
    Ok(())
}

/// A port nothing listens on (just freed).
async fn dead_url() -> Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    drop(listener);
    Ok(url)
}

/// An `echo(name)` backend on a loopback port: its URL, and a stop that returns once it has
/// closed every connection.
async fn live_backend(
    name: &'static str,
) -> Result<(String, impl FnOnce() -> tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, echo(name))
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await;
    });
    Ok((url, move || {
        let _ = stop.send(());
        task
    }))
}

#[tokio::test]
async fn an_unreachable_http_backend_is_a_503_and_a_stuck_one_a_504() -> Result<()> {
    let upstreams = Upstreams {
        runtime: Upstream::http("runtime_url", [dead_url().await?])?,
        ..in_process()
    };
    let gw = Gw::to(upstreams)?;
    let r = gw
        .send(request(
            "POST",
            "/v2/workspaces/w1/webhooks/a",
            &[],
            Body::from("{}"),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.body["error"], "ServiceUnavailable");
    assert!(!r.header("retry-after").is_empty());

    let stuck = Router::new().fallback(|| async {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        "late"
    });
    let upstreams = Upstreams {
        workspaces: Upstream::InProcess(stuck),
        ..in_process()
    };
    let config = Config {
        upstream_timeout: Duration::from_millis(50),
        ..Config::embedded()
    };
    let gw = Gw::with(
        config,
        upstreams,
        Arc::new(MemoryBroker::new(BrokerConfig::default())),
    )?;
    let auth = bearer(&gw.login("ann@example.org").await?.token());
    let r = gw
        .send(request(
            "GET",
            "/v2/workspaces",
            &[("authorization", &auth)],
            Body::empty(),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(r.body["error"], "TimeoutError");
    Ok(())
}

#[tokio::test]
async fn a_backend_with_several_instances_survives_a_dead_one() -> Result<()> {
    let dead = dead_url().await?;
    let (first, stop_first) = live_backend("runtime-1").await?;
    let (second, _stop_second) = live_backend("runtime-2").await?;
    let upstreams = Upstreams {
        runtime: Upstream::http("runtime_url", [dead, first, second])?,
        ..in_process()
    };
    let gw = Gw::to(upstreams)?;
    let post = || {
        request(
            "POST",
            "/v2/workspaces/w1/webhooks/a",
            &[("content-type", "application/json")],
            Body::from("{\"n\": 1}"),
        )
    };
    let get = || request("GET", "/v2/workspaces/w1/webhooks/a", &[], Body::empty());

    // A body is streamed once: the dead first instance refuses it (503, retry later) and is
    // passed over from then on.
    let r = gw.send(post()).await?;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
    assert!(!r.header("retry-after").is_empty());
    let r = gw.send(post()).await?;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["service"], "runtime-1");
    assert_eq!(r.body["bodyLen"], 8);

    // The next instance in order takes over when the preferred one dies; a request without a
    // body moves on within the same call.
    stop_first().await?;
    let r = gw.send(get()).await?;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["service"], "runtime-2");
    let r = gw.send(post()).await?;
    assert_eq!(r.body["service"], "runtime-2", "{}", r.body);

    // Nothing valid, nothing started.
    assert!(Upstream::http("runtime_url", Vec::<String>::new()).is_err());
    let bad = Upstream::http("runtime_url", ["ftp://runtime:21"]).expect_err("ftp is refused");
    assert!(bad.to_string().contains("runtime_url"), "{bad}");
    Ok(())
}

#[tokio::test]
async fn http_backends_get_the_same_headers_and_streamed_bodies() -> Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(async move { axum::serve(listener, echo("runtime")).await });
    let upstreams = Upstreams {
        runtime: Upstream::http("runtime_url", [base])?,
        ..in_process()
    };
    let key = refract_http::gateway_key::GatewayKey::new("internal-key-0123456789")?;
    let config = Config {
        gateway_key: Some(key),
        ..Config::embedded()
    };
    let gw = Gw::with(
        config,
        upstreams,
        Arc::new(MemoryBroker::new(BrokerConfig::default())),
    )?;
    let login = gw.login("ann@example.org").await?;
    let auth = bearer(&login.token());

    let r = gw
        .send(request(
            "PUT",
            "/v2/workspaces/w1/webhooks/echo?x=1",
            &[("authorization", &auth), ("x-prismeai-user-id", "admin")],
            Body::from(vec![7u8; 5000]),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["method"], "PUT");
    assert_eq!(r.body["query"], "x=1");
    assert_eq!(r.body["bodyLen"], 5000);
    assert_eq!(r.body["headers"]["x-prismeai-user-id"], login.body["id"]);
    assert_eq!(
        r.body["headers"]["x-correlation-id"],
        r.header("x-correlation-id")
    );
    assert!(r.body["headers"].get("authorization").is_none());
    assert_eq!(
        r.body["headers"]["x-refract-gateway-key"],
        "internal-key-0123456789"
    );

    // Dot segments would be normalized away by the HTTP client: refused, never forwarded.
    let sneaky = "/v2/workspaces/w1/webhooks/../../../sys/metrics";
    let r = gw.send(request("GET", sneaky, &[], Body::empty())).await?;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["error"], "RequestValidationError");

    let chunks =
        futures::stream::iter((0..20).map(|_| Ok::<_, std::io::Error>(vec![1u8; 64 * 1024])));
    let r = gw
        .send(request(
            "POST",
            "/v2/workspaces/w1/webhooks/echo",
            &[],
            Body::from_stream(chunks),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.body);
    assert_eq!(r.body["error"], "PayloadTooLarge");
    server.abort();
    Ok(())
}

#[tokio::test]
async fn sessions_survive_a_restart_of_the_embedded_cache() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("refract.db").display());
    let store: Arc<dyn DocumentStore> = Arc::new(MemoryStore::new());
    let broker: Arc<dyn Broker> = Arc::new(MemoryBroker::new(BrokerConfig::default()));
    let start = |cache: Arc<dyn Cache>| -> Result<Gw> {
        let state = GatewayState::new(
            Config::embedded(),
            store.clone(),
            cache.clone(),
            broker.clone(),
            in_process(),
        )?;
        Ok(Gw {
            app: router(state),
            broker: broker.clone(),
            store: store.clone(),
            cache,
        })
    };
    let first = start(refract_storage::open_cache(&url, "refract").await?)?;
    let token = first.login("ann@example.org").await?.token();
    drop(first);
    let second = start(refract_storage::open_cache(&url, "refract").await?)?;
    let me = second
        .send(request(
            "GET",
            "/v2/me",
            &[("authorization", &bearer(&token))],
            Body::empty(),
        ))
        .await?;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    Ok(())
}

/// A cache whose server went away: every call fails.
struct DownCache;

fn down() -> refract_storage::StorageError {
    refract_storage::StorageError::Timeout {
        backend: "redis",
        url: "redis://cache".into(),
        seconds: 1,
    }
}

#[async_trait::async_trait]
impl Cache for DownCache {
    fn describe(&self) -> String {
        "down".into()
    }
    async fn ping(&self) -> refract_storage::Result<()> {
        Err(down())
    }
    async fn get(&self, _: &refract_storage::CacheKey) -> refract_storage::Result<Option<Vec<u8>>> {
        Err(down())
    }
    async fn set(
        &self,
        _: &refract_storage::CacheKey,
        _: &[u8],
        _: Option<Duration>,
    ) -> refract_storage::Result<()> {
        Err(down())
    }
    async fn delete(&self, _: &refract_storage::CacheKey) -> refract_storage::Result<bool> {
        Err(down())
    }
    async fn set_if_absent(
        &self,
        _: &refract_storage::CacheKey,
        _: &[u8],
        _: Duration,
    ) -> refract_storage::Result<bool> {
        Err(down())
    }
    async fn incr(
        &self,
        _: &refract_storage::CacheKey,
        _: i64,
        _: Duration,
    ) -> refract_storage::Result<i64> {
        Err(down())
    }
    async fn take_tokens(
        &self,
        _: &refract_storage::CacheKey,
        _: refract_storage::TokenBucket,
        _: u32,
        _: Duration,
    ) -> refract_storage::Result<Option<Duration>> {
        Err(down())
    }
    async fn hset(
        &self,
        _: &refract_storage::CacheKey,
        _: &str,
        _: &[u8],
    ) -> refract_storage::Result<()> {
        Err(down())
    }
    async fn hget(
        &self,
        _: &refract_storage::CacheKey,
        _: &str,
    ) -> refract_storage::Result<Option<Vec<u8>>> {
        Err(down())
    }
    async fn hgetall(
        &self,
        _: &refract_storage::CacheKey,
    ) -> refract_storage::Result<std::collections::BTreeMap<String, Vec<u8>>> {
        Err(down())
    }
    async fn hdel(&self, _: &refract_storage::CacheKey, _: &str) -> refract_storage::Result<bool> {
        Err(down())
    }
    async fn expire(
        &self,
        _: &refract_storage::CacheKey,
        _: Duration,
    ) -> refract_storage::Result<bool> {
        Err(down())
    }
}

#[tokio::test]
async fn without_its_cache_the_gateway_reports_unhealthy_and_refuses_logins_cleanly() -> Result<()>
{
    let store: Arc<dyn DocumentStore> = Arc::new(MemoryStore::new());
    let cache: Arc<dyn Cache> = Arc::new(DownCache);
    let broker: Arc<dyn Broker> = Arc::new(MemoryBroker::new(BrokerConfig::default()));
    let state = GatewayState::new(
        Config::embedded(),
        store.clone(),
        cache.clone(),
        broker.clone(),
        in_process(),
    )?;
    let gw = Gw {
        app: router(state),
        broker,
        store,
        cache,
    };
    let r = gw
        .send(request("GET", "/sys/healthcheck", &[], Body::empty()))
        .await?;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.body["error"], "ServiceUnavailable");
    assert_eq!(
        gw.signup("ann@example.org", "correct horse").await?.status,
        StatusCode::OK
    );
    let r = gw
        .send(post_json(
            "/v2/login",
            json!({"email": "ann@example.org", "password": "correct horse"}),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT, "{}", r.body);
    assert_eq!(r.body["error"], "TimeoutError");
    assert!(
        !r.body.to_string().contains("redis://"),
        "no internals in the body: {}",
        r.body
    );
    let r = gw
        .send(request(
            "GET",
            "/v2/workspaces",
            &[("authorization", "Bearer abc")],
            Body::empty(),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT);
    Ok(())
}

#[tokio::test]
async fn webhooks_answer_cors_preflights_from_any_origin() -> Result<()> {
    let gw = Gw::new()?;
    let preflight = [
        ("origin", "https://shop.example"),
        ("access-control-request-method", "POST"),
        ("access-control-request-headers", "content-type"),
    ];
    let res = gw
        .app
        .clone()
        .oneshot(request(
            "OPTIONS",
            "/v2/workspaces/w1/webhooks/echo",
            &preflight,
            Body::empty(),
        ))
        .await?;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(res.headers()["access-control-allow-origin"], "*");
    assert_eq!(
        res.headers()["access-control-allow-headers"],
        "content-type"
    );
    assert!(
        res.headers()
            .get("access-control-allow-credentials")
            .is_none()
    );
    let r = gw
        .send(request(
            "POST",
            "/v2/workspaces/w1/webhooks/echo",
            &[("origin", "https://shop.example")],
            Body::from("{}"),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("access-control-allow-origin"), "*");
    assert_eq!(r.body["service"], "runtime");
    // Private routes get no CORS grant.
    let res = gw
        .app
        .clone()
        .oneshot(request(
            "OPTIONS",
            "/v2/workspaces/w1",
            &preflight,
            Body::empty(),
        ))
        .await?;
    assert!(res.headers().get("access-control-allow-origin").is_none());
    Ok(())
}

#[tokio::test]
async fn websocket_upgrades_reach_an_in_process_backend() -> Result<()> {
    use axum::extract::ws::WebSocketUpgrade;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let events = Router::new().fallback(|ws: WebSocketUpgrade, headers: HeaderMap| async move {
        let user = headers.get("x-prismeai-user-id").is_some();
        ws.on_upgrade(move |mut socket| async move {
            let text = if user { "hello user" } else { "hello nobody" };
            let _ = socket
                .send(axum::extract::ws::Message::Text(text.into()))
                .await;
        })
    });
    let upstreams = Upstreams {
        events: Upstream::InProcess(events),
        ..in_process()
    };
    let gw = Gw::to(upstreams)?;
    let token = gw.login("ann@example.org").await?.token();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = gw.app.clone();
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    let mut tcp = tokio::net::TcpStream::connect(addr).await?;
    let handshake = format!(
        "GET /v2/workspaces/w1/events/ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    tcp.write_all(handshake.as_bytes()).await?;
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !String::from_utf8_lossy(&seen).contains("hello") {
        let n = tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await??;
        ensure!(n > 0, "closed early: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&seen);
    assert!(text.starts_with("HTTP/1.1 101"), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("x-correlation-id:"),
        "{text}"
    );
    assert!(text.contains("hello user"), "{text}");
    server.abort();
    Ok(())
}

#[tokio::test]
async fn unknown_api_keys_are_refused_and_listed_admins_are_superadmins() -> Result<()> {
    let gw = Gw::new()?;
    let r = gw
        .send(request(
            "GET",
            "/v2/workspaces/w1/automations",
            &[("x-prismeai-api-key", "rfk_guess")],
            Body::empty(),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    let r = gw
        .send(request(
            "GET",
            "/v2/workspaces/w1/automations",
            &[],
            Body::empty(),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    let config = Config {
        super_admin_emails: vec!["Root@Example.org".into()],
        ..Config::embedded()
    };
    let admins = Gw::with(
        config,
        in_process(),
        Arc::new(MemoryBroker::new(BrokerConfig::default())),
    )?;
    let role = |token: String| {
        let admins = &admins;
        async move {
            let auth = bearer(&token);
            let r = admins
                .send(request(
                    "GET",
                    "/v2/workspaces/w1",
                    &[("authorization", &auth)],
                    Body::empty(),
                ))
                .await?;
            Ok::<_, anyhow::Error>(
                r.body["headers"]["x-prismeai-role"]
                    .as_str()
                    .map(str::to_owned),
            )
        }
    };
    // A listed email verified by nobody (self-signup validates automatically) is no
    // superadmin; an operator's grant makes one, on the next request of the same session.
    let root = admins.login("root@example.org").await?.token();
    let ann = admins.login("ann@example.org").await?.token();
    assert_eq!(role(root.clone()).await?, None);
    assert_eq!(role(ann.clone()).await?, None);
    let granted =
        refract_gateway::users::update_by_email(admins.store.as_ref(), "root@example.org", |u| {
            u.platform_role = Some(refract_gateway::users::PlatformRole::Superadmin)
        })
        .await?;
    assert!(granted.is_some());
    assert_eq!(role(root).await?.as_deref(), Some("superadmin"));
    assert_eq!(role(ann).await?, None);
    Ok(())
}
