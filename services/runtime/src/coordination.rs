//! Cluster-wide coordination of DSL runs through the cache (WIT 0.1.1 additions to `state`):
//! `rateLimit` counters and user-topic memberships (`automation-dsl.md` §3.13, §3.14).
//!
//! - A limiter (workspace, name, consumer) keeps its window's start in one key (set if absent,
//!   expiring with the window) and its used points in a counter named after that start, so a
//!   new window starts from zero on every instance at once. A refused call gives its points back.
//! - User topics: the workspace's topic set is one hash (field = topic); memberships are the
//!   hash `usertopics:{workspace}:{user}` (field = topic) that the events service reads to
//!   deliver `target.userTopic` events.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use refract_core::UserId;
use refract_host::{RateLimitState, RateLimiter, RunContext, ServiceError};
use refract_storage::{Cache, CacheKey};

fn unavailable(e: impl std::fmt::Display) -> ServiceError {
    ServiceError::Unavailable(e.to_string())
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Takes `limiter.consume` points if they fit in the current window.
pub(crate) async fn rate_limit(
    cache: &dyn Cache,
    run: &RunContext,
    limiter: &RateLimiter,
) -> Result<RateLimitState, ServiceError> {
    let rule = format!("dsl.{}.{}", run.workspace_id, limiter.name);
    let consumer = &limiter.consumer;
    let window_ms = i64::try_from(limiter.window.as_millis()).unwrap_or(i64::MAX);
    let now = now_ms();
    // The window's start: ours if no window is open, else the open one's.
    let start_key = CacheKey::rate_limit(&rule, consumer, -1);
    let start = if cache
        .set_if_absent(&start_key, now.to_string().as_bytes(), limiter.window)
        .await
        .map_err(unavailable)?
    {
        now
    } else {
        let stored = cache.get(&start_key).await.map_err(unavailable)?;
        stored
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(now)
    };
    let counter = CacheKey::rate_limit(&rule, consumer, start);
    // The counter outlives its window a little: the start key decides when a window ends.
    let ttl = limiter.window + Duration::from_secs(1);
    let consume = i64::from(limiter.consume);
    let limit = i64::from(limiter.limit);
    let used = cache
        .incr(&counter, consume, ttl)
        .await
        .map_err(unavailable)?;
    let to_u32 = |n: i64| u32::try_from(n.max(0)).unwrap_or(u32::MAX);
    if used <= limit {
        return Ok(RateLimitState {
            ok: true,
            remaining: to_u32(limit - used),
            retry_after: 0,
        });
    }
    if consume != 0 {
        cache
            .incr(&counter, -consume, ttl)
            .await
            .map_err(unavailable)?;
    }
    let left_ms = (start.saturating_add(window_ms) - now).max(0);
    Ok(RateLimitState {
        ok: false,
        remaining: to_u32(limit - (used - consume)),
        retry_after: to_u32((left_ms + 999) / 1000),
    })
}

async fn add_members(
    cache: &dyn Cache,
    run: &RunContext,
    topic: &str,
    users: &[UserId],
) -> Result<(), ServiceError> {
    for user in users {
        cache
            .hset(&CacheKey::user_topics(&run.workspace_id, user), topic, b"1")
            .await
            .map_err(unavailable)?;
    }
    Ok(())
}

/// Adds `topic` to the workspace's topics and `users` to its members; `true` if it existed.
pub(crate) async fn create_user_topic(
    cache: &dyn Cache,
    run: &RunContext,
    topic: &str,
    users: &[UserId],
) -> Result<bool, ServiceError> {
    let set = CacheKey::user_topic_set(&run.workspace_id);
    let existed = cache
        .hget(&set, topic)
        .await
        .map_err(unavailable)?
        .is_some();
    if !existed {
        cache.hset(&set, topic, b"1").await.map_err(unavailable)?;
    }
    add_members(cache, run, topic, users).await?;
    Ok(existed)
}

/// Makes `users` members of `topic` (created first when `create`).
pub(crate) async fn join_user_topic(
    cache: &dyn Cache,
    run: &RunContext,
    topic: &str,
    users: &[UserId],
    create: bool,
) -> Result<(), ServiceError> {
    let set = CacheKey::user_topic_set(&run.workspace_id);
    if cache
        .hget(&set, topic)
        .await
        .map_err(unavailable)?
        .is_none()
    {
        if !create {
            return Err(ServiceError::Invalid(format!(
                "no user topic {topic:?} in this workspace"
            )));
        }
        cache.hset(&set, topic, b"1").await.map_err(unavailable)?;
    }
    add_members(cache, run, topic, users).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use refract_core::{CorrelationId, WorkspaceId};
    use refract_storage::cache::MemoryCache;

    fn run() -> RunContext {
        RunContext {
            run_id: "r".into(),
            workspace_id: WorkspaceId::new("ws1").unwrap(),
            automation_slug: "a".into(),
            correlation_id: CorrelationId::generate(),
            user_id: None,
            session_id: None,
            depth: 0,
            socket_id: None,
        }
    }

    fn limiter(consume: u32) -> RateLimiter {
        RateLimiter {
            name: "api".into(),
            consumer: "u1".into(),
            limit: 3,
            window: Duration::from_secs(60),
            consume,
        }
    }

    #[tokio::test]
    async fn a_window_accepts_up_to_its_limit_and_refusals_take_nothing() {
        let cache = MemoryCache::new("t");
        let r = run();
        let a = rate_limit(&cache, &r, &limiter(2)).await.unwrap();
        assert_eq!((a.ok, a.remaining, a.retry_after), (true, 1, 0));
        let b = rate_limit(&cache, &r, &limiter(2)).await.unwrap();
        assert!(!b.ok);
        assert_eq!(b.remaining, 1, "a refused call consumes nothing");
        assert!((59..=60).contains(&b.retry_after), "{b:?}");
        let c = rate_limit(&cache, &r, &limiter(1)).await.unwrap();
        assert_eq!((c.ok, c.remaining), (true, 0));
        let other = RateLimiter {
            consumer: "u2".into(),
            ..limiter(3)
        };
        assert!(
            rate_limit(&cache, &r, &other).await.unwrap().ok,
            "consumers are separate"
        );
    }

    #[tokio::test]
    async fn topics_are_created_once_and_joined_into_the_events_service_key() {
        let cache = MemoryCache::new("t");
        let r = run();
        let alice = UserId::new("alice").unwrap();
        assert!(!create_user_topic(&cache, &r, "team", &[]).await.unwrap());
        assert!(create_user_topic(&cache, &r, "team", &[]).await.unwrap());
        assert!(
            join_user_topic(&cache, &r, "other", std::slice::from_ref(&alice), false)
                .await
                .is_err()
        );
        join_user_topic(&cache, &r, "team", std::slice::from_ref(&alice), false)
            .await
            .unwrap();
        let joined = cache
            .hgetall(&CacheKey::user_topics(&r.workspace_id, &alice))
            .await
            .unwrap();
        assert!(joined.contains_key("team"));
    }
}
