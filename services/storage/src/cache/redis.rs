//! The Redis cache (`redis://…`): one `ConnectionManager` (reconnecting, pipelined) shared
//! by every caller.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{Cache, TokenBucket, check_bucket, check_ttl, check_value};
use crate::error::{Result, StorageError};
use crate::keys::CacheKey;
use crate::location::{CONNECT_TIMEOUT, Location};

const BACKEND: &str = "redis";

/// How long one command may wait for its reply before the cache counts as unavailable.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// INCRBY, then set the window's expiry only on a counter this call created: later
/// increments must not extend a rate-limit window.
const INCR_SCRIPT: &str = r"
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) == -1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return v";

/// One take from a token bucket on Redis's clock: the arithmetic of `cache::take_from`
/// (ARGV: ms between tokens, burst, cost, longest wait in ms). Returns the wait in µs, or -1
/// when it would be longer than allowed (nothing taken).
const TAKE_TOKENS_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local interval = tonumber(ARGV[1])
local tat = now
local stored = redis.call('GET', KEYS[1])
if stored then
  local v = tonumber(stored)
  if v and v > now then tat = v end
end
local nxt = tat + tonumber(ARGV[3]) * interval
local wait = nxt - tonumber(ARGV[2]) * interval - now
if wait < 0 then wait = 0 end
if wait > tonumber(ARGV[4]) then return -1 end
redis.call('SET', KEYS[1], string.format('%.3f', nxt), 'PX', math.max(1, math.ceil(nxt - now)))
return math.floor(wait * 1000)";

/// The Redis cache (`redis://…`): shared by every replica; token buckets run as Lua scripts.
pub struct RedisCache {
    namespace: String,
    conn: ConnectionManager,
    location: Location,
    incr: redis::Script,
    take_tokens: redis::Script,
}

impl RedisCache {
    /// Connects, failing within [`CONNECT_TIMEOUT`] when Redis does not answer.
    pub async fn open(location: &Location, namespace: &str) -> Result<Self> {
        let client = redis::Client::open(location.as_secret_str()).map_err(|e| {
            StorageError::InvalidUrl {
                abstraction: "cache",
                url: location.redacted().to_string(),
                reason: e.to_string(),
            }
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(1);
        let conn = match tokio::time::timeout(
            CONNECT_TIMEOUT,
            ConnectionManager::new_with_config(client, config),
        )
        .await
        {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return Err(unavailable(location, e)),
            Err(_) => {
                return Err(StorageError::Timeout {
                    backend: BACKEND,
                    url: location.redacted().to_string(),
                    seconds: CONNECT_TIMEOUT.as_secs(),
                });
            }
        };
        Ok(Self {
            namespace: namespace.to_string(),
            conn,
            location: location.clone(),
            incr: redis::Script::new(INCR_SCRIPT),
            take_tokens: redis::Script::new(TAKE_TOKENS_SCRIPT),
        })
    }

    fn full(&self, key: &CacheKey) -> String {
        format!("{}:{}", self.namespace, key.name())
    }

    fn err(
        &self,
        key: &CacheKey,
        operation: &'static str,
    ) -> impl Fn(redis::RedisError) -> StorageError + '_ {
        let name = key.name().to_string();
        move |e| {
            if e.code() == Some("WRONGTYPE") {
                return StorageError::invalid("key", format!("{name} holds another kind of value"));
            }
            if e.is_io_error()
                || e.is_connection_refusal()
                || e.is_timeout()
                || e.is_connection_dropped()
            {
                return unavailable(&self.location, e);
            }
            StorageError::backend(BACKEND, operation, e)
        }
    }
}

/// Runs a read once more when the first attempt met a connection Redis dropped (a restart, an
/// idle timeout): the manager reconnects behind the failed command, and a read is safe to
/// repeat, so a caller never sees the one broken pipe every restart leaves behind.
async fn read_retrying<T, F, Fut>(conn: &ConnectionManager, read: F) -> redis::RedisResult<T>
where
    F: Fn(ConnectionManager) -> Fut,
    Fut: std::future::Future<Output = redis::RedisResult<T>>,
{
    match read(conn.clone()).await {
        Err(e) if e.is_connection_dropped() || e.is_io_error() => read(conn.clone()).await,
        other => other,
    }
}

fn unavailable(location: &Location, e: redis::RedisError) -> StorageError {
    StorageError::Unavailable {
        backend: BACKEND,
        url: location.redacted().to_string(),
        source: Box::new(e),
    }
}

fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)
}

#[async_trait]
impl Cache for RedisCache {
    fn describe(&self) -> String {
        format!("redis {}", self.location.redacted())
    }

    async fn ping(&self) -> Result<()> {
        let mut conn = self.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map_err(|e| unavailable(&self.location, e))?;
        Ok(())
    }

    async fn get(&self, key: &CacheKey) -> Result<Option<Vec<u8>>> {
        let name = self.full(key);
        read_retrying(&self.conn, |mut conn| {
            let name = name.clone();
            async move { conn.get(name).await }
        })
        .await
        .map_err(self.err(key, "get"))
    }

    async fn set(&self, key: &CacheKey, value: &[u8], ttl: Option<Duration>) -> Result<()> {
        check_value(value)?;
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.full(key)).arg(value);
        if let Some(ttl) = ttl {
            check_ttl(ttl)?;
            cmd.arg("PX").arg(millis(ttl));
        }
        let mut conn = self.conn.clone();
        cmd.query_async::<()>(&mut conn)
            .await
            .map_err(self.err(key, "set"))
    }

    async fn delete(&self, key: &CacheKey) -> Result<bool> {
        let mut conn = self.conn.clone();
        let n: i64 = conn
            .del(self.full(key))
            .await
            .map_err(self.err(key, "delete"))?;
        Ok(n > 0)
    }

    async fn set_if_absent(&self, key: &CacheKey, value: &[u8], ttl: Duration) -> Result<bool> {
        check_value(value)?;
        check_ttl(ttl)?;
        let mut conn = self.conn.clone();
        let reply: Option<String> = redis::cmd("SET")
            .arg(self.full(key))
            .arg(value)
            .arg("NX")
            .arg("PX")
            .arg(millis(ttl))
            .query_async(&mut conn)
            .await
            .map_err(self.err(key, "set if absent"))?;
        Ok(reply.is_some())
    }

    async fn incr(&self, key: &CacheKey, by: i64, ttl: Duration) -> Result<i64> {
        check_ttl(ttl)?;
        let mut conn = self.conn.clone();
        self.incr
            .key(self.full(key))
            .arg(by)
            .arg(millis(ttl))
            .invoke_async(&mut conn)
            .await
            .map_err(|e| {
                if e.to_string().contains("not an integer") {
                    StorageError::invalid("key", format!("{} is not a counter", key.name()))
                } else {
                    self.err(key, "incr")(e)
                }
            })
    }

    async fn take_tokens(
        &self,
        key: &CacheKey,
        bucket: TokenBucket,
        cost: u32,
        max_wait: Duration,
    ) -> Result<Option<Duration>> {
        check_bucket(bucket)?;
        let mut conn = self.conn.clone();
        let wait_us: i64 = self
            .take_tokens
            .key(self.full(key))
            .arg(bucket.interval_ms())
            .arg(bucket.burst)
            .arg(cost)
            .arg(max_wait.as_secs_f64() * 1000.0)
            .invoke_async(&mut conn)
            .await
            .map_err(self.err(key, "take_tokens"))?;
        Ok(u64::try_from(wait_us).ok().map(Duration::from_micros))
    }

    async fn hset(&self, key: &CacheKey, field: &str, value: &[u8]) -> Result<()> {
        check_value(value)?;
        let mut conn = self.conn.clone();
        conn.hset::<_, _, _, ()>(self.full(key), field, value)
            .await
            .map_err(self.err(key, "hset"))
    }

    async fn hget(&self, key: &CacheKey, field: &str) -> Result<Option<Vec<u8>>> {
        let name = self.full(key);
        read_retrying(&self.conn, |mut conn| {
            let name = name.clone();
            async move { conn.hget(name, field).await }
        })
        .await
        .map_err(self.err(key, "hget"))
    }

    async fn hgetall(&self, key: &CacheKey) -> Result<BTreeMap<String, Vec<u8>>> {
        let name = self.full(key);
        read_retrying(&self.conn, |mut conn| {
            let name = name.clone();
            async move { conn.hgetall(name).await }
        })
        .await
        .map_err(self.err(key, "hgetall"))
    }

    async fn hdel(&self, key: &CacheKey, field: &str) -> Result<bool> {
        let mut conn = self.conn.clone();
        let n: i64 = conn
            .hdel(self.full(key), field)
            .await
            .map_err(self.err(key, "hdel"))?;
        Ok(n > 0)
    }

    async fn expire(&self, key: &CacheKey, ttl: Duration) -> Result<bool> {
        check_ttl(ttl)?;
        let mut conn = self.conn.clone();
        let set: i64 = redis::cmd("PEXPIRE")
            .arg(self.full(key))
            .arg(millis(ttl))
            .query_async(&mut conn)
            .await
            .map_err(self.err(key, "expire"))?;
        Ok(set == 1)
    }
}
