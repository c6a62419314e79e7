//! What every test module shares: echo backends, a gateway in front of them, requests and replies.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result, ensure};
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use http_body_util::BodyExt;
use refract_broker::{
    Broker, BrokerConfig, BrokerError, DeadLetter, MemoryBroker, Subscriber, Subscription,
};
use refract_core::{Event, EventId};
use refract_gateway::{Config, GatewayState, Upstream, Upstreams, router};
use refract_storage::cache::MemoryCache;
use refract_storage::{Cache, DocumentStore, MemoryStore};
use serde_json::{Value, json};
use tower::ServiceExt;

/// A backend that answers with what reached it: service, method, path, headers, body size.
/// A body that fails to stream (the gateway's cap) gets 413, as axum backends answer.
pub fn echo(service: &'static str) -> Router {
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

pub fn in_process() -> Upstreams {
    Upstreams {
        workspaces: Upstream::InProcess(echo("workspaces")),
        runtime: Upstream::InProcess(echo("runtime")),
        events: Upstream::InProcess(echo("events")),
    }
}

/// A broker that is always down.
pub struct DownBroker;

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

pub struct Gw {
    pub app: Router,
    pub broker: Arc<dyn Broker>,
    pub store: Arc<dyn DocumentStore>,
    pub cache: Arc<dyn Cache>,
}

impl Gw {
    pub fn with(config: Config, upstreams: Upstreams, broker: Arc<dyn Broker>) -> Result<Self> {
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

    pub fn new() -> Result<Self> {
        Self::to(in_process())
    }

    /// The embedded configuration and an in-process broker, in front of `upstreams`.
    pub fn to(upstreams: Upstreams) -> Result<Self> {
        Self::with(
            Config::embedded(),
            upstreams,
            Arc::new(MemoryBroker::new(BrokerConfig::default())),
        )
    }

    /// Sends `req` from a client at 203.0.113.7.
    pub async fn send(&self, mut req: Request) -> Result<Reply> {
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

    pub async fn signup(&self, email: &str, password: &str) -> Result<Reply> {
        self.send(post_json(
            "/v2/signup",
            json!({"email": email, "password": password, "firstName": "Ann"}),
        ))
        .await
    }

    /// Signs up and logs in; returns the login reply.
    pub async fn login(&self, email: &str) -> Result<Reply> {
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

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    pub fn token(&self) -> String {
        self.body["token"].as_str().unwrap_or_default().to_string()
    }

    /// The `access-token` cookie value from `Set-Cookie`.
    pub fn cookie(&self) -> String {
        let set = self.header("set-cookie");
        set.split(';')
            .next()
            .and_then(|kv| kv.strip_prefix("access-token="))
            .unwrap_or_default()
            .to_string()
    }
}

pub fn post_json(uri: &str, body: Value) -> Request {
    request(
        "POST",
        uri,
        &[("content-type", "application/json")],
        Body::from(body.to_string()),
    )
}

pub fn request(method: &str, uri: &str, headers: &[(&str, &str)], body: Body) -> Request {
    let mut builder = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    builder.body(body).expect("static request parts are valid")
}

pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}
