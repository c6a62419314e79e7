//! JSON 404s, the healthcheck, and the gateway without its cache.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use axum::body::Body;
use axum::http::StatusCode;
use refract_broker::{Broker, BrokerConfig, MemoryBroker};
use refract_gateway::{Config, GatewayState, router};
use refract_storage::{Cache, DocumentStore, MemoryStore};
use serde_json::json;

use crate::support::*;

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
