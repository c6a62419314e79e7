//! The in-process cache: a map of expiring entries behind a std mutex (never held across an
//! await), optionally writing durable keys through to SQLite.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::durable::{Durable, Snapshot};
use super::{Cache, TokenBucket, check_bucket, check_ttl, check_value, take_from, wrong_kind};
use crate::error::{Result, StorageError};
use crate::keys::CacheKey;
use crate::location::Location;

/// Writes between two sweeps of expired entries: reads drop expired entries they meet, the
/// sweep bounds the memory held by keys nobody reads again.
const SWEEP_EVERY: u64 = 1_024;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Bytes(Vec<u8>),
    Hash(BTreeMap<String, Vec<u8>>),
}

#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub value: Value,
    pub expires: Option<Instant>,
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|t| t > now)
    }
}

#[derive(Default)]
struct State {
    entries: HashMap<String, Entry>,
    writes: u64,
}

/// The in-process cache (`memory://`, or `sqlite://path` with durable keys persisted).
pub struct MemoryCache {
    namespace: String,
    state: Mutex<State>,
    durable: Option<Durable>,
    /// The zero of token-bucket times (ms since this instant).
    epoch: Instant,
}

impl MemoryCache {
    /// An empty cache with keys under `namespace`, nothing persisted.
    pub fn new(namespace: &str) -> Self {
        Self {
            namespace: namespace.to_string(),
            state: Mutex::default(),
            durable: None,
            epoch: Instant::now(),
        }
    }

    /// An in-process cache whose durable keys live in the SQLite file of `location`; the
    /// unexpired ones of this namespace are loaded now.
    pub async fn open_durable(location: &Location, namespace: &str) -> Result<Self> {
        let prefix = format!("{namespace}:");
        let (durable, loaded) = Durable::open(location, &prefix).await?;
        let cache = Self {
            namespace: namespace.to_string(),
            state: Mutex::default(),
            durable: Some(durable),
            epoch: Instant::now(),
        };
        {
            let mut state = cache.lock()?;
            state.entries.extend(loaded);
        }
        Ok(cache)
    }

    fn full(&self, key: &CacheKey) -> String {
        format!("{}:{}", self.namespace, key.name())
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>> {
        self.state
            .lock()
            .map_err(|_| StorageError::backend("memory cache", "lock", "lock poisoned"))
    }

    /// Runs `f` on the live entry of `key` (expired ones are dropped first) and, for a durable
    /// key on a persisting cache, writes the result through. Returns `f`'s output.
    async fn update<T>(
        &self,
        key: &CacheKey,
        f: impl FnOnce(&mut Option<Entry>) -> Result<T>,
    ) -> Result<T> {
        let full = self.full(key);
        let persist = self.durable.as_ref().filter(|_| key.is_durable());
        // Serializes durable writes so the database sees them in the map's order.
        let _order = match persist {
            Some(d) => Some(d.order.lock().await),
            None => None,
        };
        let (out, snapshot) = {
            let mut state = self.lock()?;
            let now = Instant::now();
            state.writes += 1;
            if state.writes % SWEEP_EVERY == 0 {
                state.entries.retain(|_, e| e.live(now));
            }
            let mut slot = state.entries.remove(&full).filter(|e| e.live(now));
            let before = slot.clone();
            let out = f(&mut slot);
            let changed = out.is_ok() && !same(&before, &slot);
            let snapshot = changed.then(|| Snapshot::of(&slot));
            if let Some(entry) = slot {
                state.entries.insert(full.clone(), entry);
            }
            (out?, snapshot)
        };
        if let (Some(d), Some(snapshot)) = (persist, snapshot) {
            d.write(&full, snapshot).await?;
        }
        Ok(out)
    }

    fn read<T>(&self, key: &CacheKey, f: impl FnOnce(Option<&Entry>) -> Result<T>) -> Result<T> {
        let full = self.full(key);
        let state = self.lock()?;
        f(state.entries.get(&full).filter(|e| e.live(Instant::now())))
    }
}

fn same(a: &Option<Entry>, b: &Option<Entry>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => a.value == b.value && a.expires == b.expires,
        _ => false,
    }
}

fn expiry(ttl: Option<Duration>) -> Option<Instant> {
    ttl.map(|t| Instant::now() + t)
}

#[async_trait]
impl Cache for MemoryCache {
    fn describe(&self) -> String {
        match &self.durable {
            Some(d) => format!(
                "in-process cache, durable keys in sqlite {}",
                d.location.redacted()
            ),
            None => "in-process cache (memory://)".into(),
        }
    }

    async fn ping(&self) -> Result<()> {
        match &self.durable {
            Some(d) => d.ping().await,
            None => Ok(()),
        }
    }

    async fn get(&self, key: &CacheKey) -> Result<Option<Vec<u8>>> {
        self.read(key, |e| match e.map(|e| &e.value) {
            None => Ok(None),
            Some(Value::Bytes(b)) => Ok(Some(b.clone())),
            Some(Value::Hash(_)) => Err(wrong_kind(key)),
        })
    }

    async fn set(&self, key: &CacheKey, value: &[u8], ttl: Option<Duration>) -> Result<()> {
        check_value(value)?;
        if let Some(ttl) = ttl {
            check_ttl(ttl)?;
        }
        self.update(key, |slot| {
            *slot = Some(Entry {
                value: Value::Bytes(value.to_vec()),
                expires: expiry(ttl),
            });
            Ok(())
        })
        .await
    }

    async fn delete(&self, key: &CacheKey) -> Result<bool> {
        self.update(key, |slot| Ok(slot.take().is_some())).await
    }

    async fn set_if_absent(&self, key: &CacheKey, value: &[u8], ttl: Duration) -> Result<bool> {
        check_value(value)?;
        check_ttl(ttl)?;
        self.update(key, |slot| {
            if slot.is_some() {
                return Ok(false);
            }
            *slot = Some(Entry {
                value: Value::Bytes(value.to_vec()),
                expires: expiry(Some(ttl)),
            });
            Ok(true)
        })
        .await
    }

    async fn incr(&self, key: &CacheKey, by: i64, ttl: Duration) -> Result<i64> {
        check_ttl(ttl)?;
        self.update(key, |slot| {
            let (current, expires) = match slot {
                None => (0, expiry(Some(ttl))),
                Some(Entry {
                    value: Value::Bytes(b),
                    expires,
                }) => {
                    let n = std::str::from_utf8(b)
                        .ok()
                        .and_then(|s| s.parse::<i64>().ok());
                    let n = n.ok_or_else(|| {
                        StorageError::invalid("key", format!("{} is not a counter", key.name()))
                    })?;
                    // A counter without expiry gets the window, as in Redis's script.
                    (n, expires.or_else(|| expiry(Some(ttl))))
                }
                Some(_) => return Err(wrong_kind(key)),
            };
            let next = current
                .checked_add(by)
                .ok_or_else(|| StorageError::invalid("by", "the counter would overflow"))?;
            *slot = Some(Entry {
                value: Value::Bytes(next.to_string().into_bytes()),
                expires,
            });
            Ok(next)
        })
        .await
    }

    async fn take_tokens(
        &self,
        key: &CacheKey,
        bucket: TokenBucket,
        cost: u32,
        max_wait: Duration,
    ) -> Result<Option<Duration>> {
        check_bucket(bucket)?;
        let now = Instant::now();
        let now_ms = now.duration_since(self.epoch).as_secs_f64() * 1000.0;
        self.update(key, |slot| {
            let tat = match slot {
                None => None,
                Some(Entry {
                    value: Value::Bytes(b),
                    ..
                }) => std::str::from_utf8(b)
                    .ok()
                    .and_then(|s| s.parse::<f64>().ok()),
                Some(_) => return Err(wrong_kind(key)),
            };
            let max_wait_ms = max_wait.as_secs_f64() * 1000.0;
            let Some((next, wait)) = take_from(tat, now_ms, bucket, cost, max_wait_ms) else {
                return Ok(None);
            };
            // Kept until the bucket is full again: an absent bucket is a full one.
            let full_in = Duration::from_secs_f64(((next - now_ms) / 1000.0).max(0.001));
            *slot = Some(Entry {
                value: Value::Bytes(next.to_string().into_bytes()),
                expires: Some(now + full_in),
            });
            Ok(Some(Duration::from_secs_f64(wait / 1000.0)))
        })
        .await
    }

    async fn hset(&self, key: &CacheKey, field: &str, value: &[u8]) -> Result<()> {
        check_value(value)?;
        self.update(key, |slot| match slot {
            None => {
                *slot = Some(Entry {
                    value: Value::Hash(BTreeMap::from([(field.to_string(), value.to_vec())])),
                    expires: None,
                });
                Ok(())
            }
            Some(Entry {
                value: Value::Hash(h),
                ..
            }) => {
                h.insert(field.to_string(), value.to_vec());
                Ok(())
            }
            Some(_) => Err(wrong_kind(key)),
        })
        .await
    }

    async fn hget(&self, key: &CacheKey, field: &str) -> Result<Option<Vec<u8>>> {
        self.read(key, |e| match e.map(|e| &e.value) {
            None => Ok(None),
            Some(Value::Hash(h)) => Ok(h.get(field).cloned()),
            Some(_) => Err(wrong_kind(key)),
        })
    }

    async fn hgetall(&self, key: &CacheKey) -> Result<BTreeMap<String, Vec<u8>>> {
        self.read(key, |e| match e.map(|e| &e.value) {
            None => Ok(BTreeMap::new()),
            Some(Value::Hash(h)) => Ok(h.clone()),
            Some(_) => Err(wrong_kind(key)),
        })
    }

    async fn hdel(&self, key: &CacheKey, field: &str) -> Result<bool> {
        self.update(key, |slot| match slot {
            None => Ok(false),
            Some(Entry {
                value: Value::Hash(h),
                ..
            }) => {
                let removed = h.remove(field).is_some();
                if h.is_empty() {
                    *slot = None; // as in Redis: an empty hash does not exist
                }
                Ok(removed)
            }
            Some(_) => Err(wrong_kind(key)),
        })
        .await
    }

    async fn expire(&self, key: &CacheKey, ttl: Duration) -> Result<bool> {
        check_ttl(ttl)?;
        self.update(key, |slot| match slot {
            None => Ok(false),
            Some(e) => {
                e.expires = expiry(Some(ttl));
                Ok(true)
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn entries_expire_on_the_tokio_clock() {
        let cache = MemoryCache::new("t");
        let key = CacheKey::lock("a");
        assert!(
            cache
                .set_if_absent(&key, b"1", Duration::from_secs(30))
                .await
                .unwrap()
        );
        assert!(
            !cache
                .set_if_absent(&key, b"2", Duration::from_secs(30))
                .await
                .unwrap()
        );
        tokio::time::advance(Duration::from_secs(31)).await;
        assert_eq!(cache.get(&key).await.unwrap(), None);
        assert!(
            cache
                .set_if_absent(&key, b"3", Duration::from_secs(30))
                .await
                .unwrap()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_counter_keeps_the_window_of_its_first_increment() {
        let cache = MemoryCache::new("t");
        let key = CacheKey::rate_limit("r", "u", 0);
        assert_eq!(
            cache.incr(&key, 1, Duration::from_secs(60)).await.unwrap(),
            1
        );
        tokio::time::advance(Duration::from_secs(59)).await;
        assert_eq!(
            cache.incr(&key, 1, Duration::from_secs(60)).await.unwrap(),
            2
        );
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(
            cache.incr(&key, 1, Duration::from_secs(60)).await.unwrap(),
            1
        );
    }
}
