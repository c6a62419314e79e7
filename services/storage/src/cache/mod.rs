//! The cache: short-lived shared state (sessions, OIDC states, rate-limit counters, locks,
//! contexts, subscriptions), chosen by URL.
//!
//! - `memory://`: in process, nothing survives a restart (tests).
//! - `sqlite://path`: in process, and the keys marked durable ([`CacheKey::is_durable`]:
//!   sessions, global and user contexts) are written through to that SQLite file and loaded
//!   back at start. The embedded mode passes the same file as its document store.
//! - `redis://…` / `rediss://…`: shared by every replica.
//!
//! Every key is prefixed with the namespace given at open (`<namespace>:<key>`), so several
//! deployments or test runs can share one Redis.

mod durable;
pub(crate) mod memory;
mod redis;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::{Result, StorageError};
use crate::keys::CacheKey;
use crate::location::{Location, unsupported};

pub use memory::MemoryCache;
pub(crate) use redis::RedisCache;

/// Schemes [`open_cache`] accepts.
pub const CACHE_SCHEMES: &str =
    "memory://, sqlite://path (in process, durable keys in SQLite), redis://… (or rediss://)";

/// Largest value or hash field value, in bytes: the cache holds small state, not files.
pub const MAX_VALUE_SIZE: usize = 4 * 1024 * 1024;

/// A cache shared by the services.
#[async_trait]
pub trait Cache: Send + Sync {
    /// Backend name and URL without secrets.
    fn describe(&self) -> String;

    /// Whether the cache answers (readiness).
    async fn ping(&self) -> Result<()>;

    /// The value of `key`, if set and not expired.
    async fn get(&self, key: &CacheKey) -> Result<Option<Vec<u8>>>;

    /// Sets `key`; `ttl` `None` keeps it until deleted.
    async fn set(&self, key: &CacheKey, value: &[u8], ttl: Option<Duration>) -> Result<()>;

    /// Deletes `key` (of any kind); `false` when it did not exist.
    async fn delete(&self, key: &CacheKey) -> Result<bool>;

    /// Sets `key` only if it does not exist (a lock); `true` when this call set it.
    async fn set_if_absent(&self, key: &CacheKey, value: &[u8], ttl: Duration) -> Result<bool>;

    /// Adds `by` to the counter at `key` (0 when absent) and returns the new value; a counter
    /// created by this call expires after `ttl` (a fixed rate-limit window).
    async fn incr(&self, key: &CacheKey, by: i64, ttl: Duration) -> Result<i64>;

    /// Takes `cost` tokens from the token bucket at `key` (refilled at `bucket.per_second`,
    /// holding at most `bucket.burst`), reserving them ahead when the bucket is short: returns
    /// how long the caller must wait before going on (zero when the tokens were there), or
    /// `None`, taking nothing, when that wait would be longer than `max_wait`. Atomic for
    /// every caller of the cache, so a bucket in Redis is one budget for the whole cluster.
    async fn take_tokens(
        &self,
        key: &CacheKey,
        bucket: TokenBucket,
        cost: u32,
        max_wait: Duration,
    ) -> Result<Option<Duration>>;

    /// Sets `field` of the hash at `key`.
    async fn hset(&self, key: &CacheKey, field: &str, value: &[u8]) -> Result<()>;

    /// The value of `field` in the hash `key`, if any.
    async fn hget(&self, key: &CacheKey, field: &str) -> Result<Option<Vec<u8>>>;

    /// Every field of the hash at `key` (empty when absent).
    async fn hgetall(&self, key: &CacheKey) -> Result<BTreeMap<String, Vec<u8>>>;

    /// Deletes `field`; `false` when it did not exist.
    async fn hdel(&self, key: &CacheKey, field: &str) -> Result<bool>;

    /// Makes `key` expire after `ttl`; `false` when it does not exist.
    async fn expire(&self, key: &CacheKey, ttl: Duration) -> Result<bool>;
}

/// A token bucket: `per_second` tokens added each second, at most `burst` kept.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenBucket {
    /// Tokens added per second (the sustained rate).
    pub per_second: f64,
    /// Most tokens kept (the burst a quiet caller may spend at once).
    pub burst: u32,
}

impl TokenBucket {
    /// Milliseconds between two tokens.
    pub(crate) fn interval_ms(&self) -> f64 {
        1000.0 / self.per_second.max(f64::MIN_POSITIVE)
    }
}

/// One take from a bucket, as the generic cell rate algorithm: the bucket is the time at which
/// it will be full again (`tat`, ms on the backend's clock, `None` when unknown or past).
/// Returns the new `tat` and the wait in ms, or `None` when the wait would exceed `max_wait_ms`.
/// Redis runs the same arithmetic in a script.
pub(crate) fn take_from(
    tat: Option<f64>,
    now: f64,
    bucket: TokenBucket,
    cost: u32,
    max_wait_ms: f64,
) -> Option<(f64, f64)> {
    let interval = bucket.interval_ms();
    let tat = tat.filter(|t| t.is_finite()).map_or(now, |t| t.max(now));
    let next = tat + f64::from(cost) * interval;
    let wait = (next - f64::from(bucket.burst) * interval - now).max(0.0);
    (wait <= max_wait_ms).then_some((next, wait))
}

pub(crate) fn check_bucket(bucket: TokenBucket) -> Result<()> {
    if !(bucket.per_second.is_finite() && bucket.per_second > 0.0) || bucket.burst == 0 {
        return Err(StorageError::invalid(
            "bucket",
            "needs a positive rate and a burst of at least 1",
        ));
    }
    Ok(())
}

/// Opens the cache `url` names, with every key under `namespace` (`[A-Za-z0-9_.-]{1,64}`).
pub async fn open_cache(url: &str, namespace: &str) -> Result<Arc<dyn Cache>> {
    check_namespace(namespace)?;
    let loc = Location::parse("cache", url)?;
    Ok(match loc.scheme() {
        "memory" => Arc::new(MemoryCache::new(namespace)),
        "sqlite" => Arc::new(MemoryCache::open_durable(&loc, namespace).await?),
        "redis" | "rediss" => Arc::new(RedisCache::open(&loc, namespace).await?),
        _ => return Err(unsupported("cache", &loc, CACHE_SCHEMES)),
    })
}

fn check_namespace(namespace: &str) -> Result<()> {
    let ok = !namespace.is_empty()
        && namespace.len() <= 64
        && namespace
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(StorageError::invalid(
            "namespace",
            "use [A-Za-z0-9_.-]{1,64}",
        ))
    }
}

pub(crate) fn check_value(value: &[u8]) -> Result<()> {
    if value.len() > MAX_VALUE_SIZE {
        return Err(StorageError::invalid(
            "value",
            format!(
                "{} bytes, over the {MAX_VALUE_SIZE}-byte limit",
                value.len()
            ),
        ));
    }
    Ok(())
}

/// A zero TTL would expire before anyone reads it: it is a caller bug.
pub(crate) fn check_ttl(ttl: Duration) -> Result<()> {
    if ttl.as_millis() == 0 {
        return Err(StorageError::invalid("ttl", "must be at least 1 ms"));
    }
    Ok(())
}

pub(crate) fn wrong_kind(key: &CacheKey) -> StorageError {
    StorageError::invalid("key", format!("{} holds another kind of value", key.name()))
}
