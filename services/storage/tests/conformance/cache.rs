//! Cache conformance: values with TTL, locks, counters, hashes, namespaces; durable keys of the
//! embedded cache survive a reopen.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use refract_core::Scope;
use refract_core::{ErrorKind, SessionId, UserId, WorkspaceId};
use refract_storage::{Cache, CacheKey, TokenBucket, open_cache};

use crate::support::{eventually, redis_url, skip, unique, with_cleanup};

/// Short enough to keep the suite quick, long enough that a loaded machine reads the value
/// before it expires.
const SHORT_TTL: Duration = Duration::from_millis(300);
const LONG_TTL: Duration = Duration::from_secs(60);
/// How long an expiry may take to show: generous, a deadline and not a measurement.
const EXPIRY_DEADLINE: Duration = Duration::from_secs(10);

fn ws() -> WorkspaceId {
    WorkspaceId::new(unique("ws")).expect("ws")
}

async fn values_expire(cache: &Arc<dyn Cache>) {
    let key = CacheKey::session(&SessionId::new(unique("s")).expect("session"));
    assert_eq!(cache.get(&key).await.expect("get"), None);
    cache.set(&key, b"v1", None).await.expect("set");
    assert_eq!(
        cache.get(&key).await.expect("get").as_deref(),
        Some(&b"v1"[..])
    );
    cache
        .set(&key, b"v2", Some(SHORT_TTL))
        .await
        .expect("set ttl");
    assert_eq!(
        cache.get(&key).await.expect("get").as_deref(),
        Some(&b"v2"[..])
    );
    assert!(
        eventually(EXPIRY_DEADLINE, || async {
            cache.get(&key).await.expect("get").is_none()
        })
        .await
    );
    cache.set(&key, b"v3", None).await.expect("set");
    assert!(cache.delete(&key).await.expect("delete"));
    assert!(!cache.delete(&key).await.expect("delete again"));
    assert_eq!(cache.get(&key).await.expect("get"), None);
    let err = cache
        .set(&key, b"x", Some(Duration::ZERO))
        .await
        .expect_err("zero ttl");
    assert_eq!(err.kind(), ErrorKind::Invalid);
}

async fn locks_are_taken_once_until_they_expire(cache: &Arc<dyn Cache>) {
    let key = CacheKey::lock(&unique("cron:ws:auto:"));
    assert!(
        cache
            .set_if_absent(&key, b"replica-1", SHORT_TTL)
            .await
            .expect("take")
    );
    assert!(
        !cache
            .set_if_absent(&key, b"replica-2", SHORT_TTL)
            .await
            .expect("taken")
    );
    assert_eq!(
        cache.get(&key).await.expect("holder").as_deref(),
        Some(&b"replica-1"[..])
    );
    assert!(
        eventually(EXPIRY_DEADLINE, || async {
            cache
                .set_if_absent(&key, b"replica-2", LONG_TTL)
                .await
                .expect("retake")
        })
        .await,
        "an expired lock can be taken again"
    );
    assert_eq!(
        cache.get(&key).await.expect("holder").as_deref(),
        Some(&b"replica-2"[..])
    );
    // Many contenders at once: exactly one wins.
    let contested = CacheKey::lock(&unique("tick"));
    let tries = (0..16).map(|i| {
        let cache = cache.clone();
        let key = contested.clone();
        async move {
            cache
                .set_if_absent(&key, format!("{i}").as_bytes(), LONG_TTL)
                .await
                .expect("try")
        }
    });
    let wins = futures::future::join_all(tries)
        .await
        .into_iter()
        .filter(|w| *w)
        .count();
    assert_eq!(wins, 1);
}

async fn counters_count_within_their_window(cache: &Arc<dyn Cache>) {
    let key = CacheKey::rate_limit("events.emit", &unique("user"), 0);
    assert_eq!(cache.incr(&key, 1, SHORT_TTL).await.expect("1"), 1);
    assert_eq!(cache.incr(&key, 2, SHORT_TTL).await.expect("3"), 3);
    assert_eq!(
        cache.get(&key).await.expect("read").as_deref(),
        Some(&b"3"[..]),
        "a counter reads as its number"
    );
    assert!(
        eventually(EXPIRY_DEADLINE, || async {
            cache.get(&key).await.expect("get").is_none()
        })
        .await,
        "the window expires although it was incremented again"
    );
    assert_eq!(cache.incr(&key, 1, LONG_TTL).await.expect("new window"), 1);
    // Concurrent increments are atomic.
    let hot = CacheKey::rate_limit("hot", &unique("ip"), 0);
    let adds = (0..20).map(|_| {
        let cache = cache.clone();
        let key = hot.clone();
        async move { cache.incr(&key, 1, LONG_TTL).await.expect("incr") }
    });
    futures::future::join_all(adds).await;
    assert_eq!(cache.incr(&hot, 0, LONG_TTL).await.expect("total"), 20);
    let text = CacheKey::lock(&unique("not-a-number"));
    cache.set(&text, b"abc", None).await.expect("set");
    assert_eq!(
        cache
            .incr(&text, 1, LONG_TTL)
            .await
            .expect_err("text")
            .kind(),
        ErrorKind::Invalid
    );
}

async fn token_buckets_delay_past_their_burst(cache: &Arc<dyn Cache>) {
    let key = CacheKey::throttle(&ws(), "emits");
    // One token an hour: the burst is all there is during the test.
    let bucket = TokenBucket {
        per_second: 1.0 / 3600.0,
        burst: 3,
    };
    let max_wait = Duration::from_secs(7200);
    for i in 0..3 {
        let wait = cache
            .take_tokens(&key, bucket, 1, max_wait)
            .await
            .expect("take");
        assert_eq!(wait, Some(Duration::ZERO), "token {i} of the burst");
    }
    let wait = cache
        .take_tokens(&key, bucket, 1, max_wait)
        .await
        .expect("4th");
    let wait = wait.expect("reserved ahead");
    assert!(
        wait > Duration::from_secs(3000) && wait <= Duration::from_secs(3600),
        "the next token comes in about an hour: {wait:?}"
    );
    // Past the longest wait the caller accepts, nothing is taken.
    let short = Duration::from_secs(3600 + 1800);
    assert_eq!(
        cache
            .take_tokens(&key, bucket, 1, short)
            .await
            .expect("refused"),
        None
    );
    assert_eq!(
        cache
            .take_tokens(&key, bucket, 1, short)
            .await
            .expect("refused"),
        None
    );
    let later = cache
        .take_tokens(&key, bucket, 1, max_wait)
        .await
        .expect("5th");
    assert!(
        later.expect("reserved") > Duration::from_secs(6000),
        "{later:?}"
    );
    // Concurrent takes are atomic: of 20 at once on a burst of 10, 10 go on at once.
    let hot = CacheKey::throttle(&ws(), "automations");
    let bucket = TokenBucket {
        per_second: 1.0 / 3600.0,
        burst: 10,
    };
    let takes = (0..20).map(|_| {
        let cache = cache.clone();
        let key = hot.clone();
        async move {
            cache
                .take_tokens(&key, bucket, 1, max_wait)
                .await
                .expect("take")
        }
    });
    let waits = futures::future::join_all(takes).await;
    assert_eq!(
        waits.iter().filter(|w| **w == Some(Duration::ZERO)).count(),
        10
    );
    // A fast bucket refills: after a pause the burst is back.
    let quick = CacheKey::throttle(&ws(), "quick");
    let bucket = TokenBucket {
        per_second: 1000.0,
        burst: 1,
    };
    assert_eq!(
        cache
            .take_tokens(&quick, bucket, 1, max_wait)
            .await
            .expect("1"),
        Some(Duration::ZERO)
    );
    assert!(
        eventually(EXPIRY_DEADLINE, || async {
            cache
                .take_tokens(&quick, bucket, 1, max_wait)
                .await
                .expect("again")
                == Some(Duration::ZERO)
        })
        .await,
        "the bucket refills"
    );
    let bad = TokenBucket {
        per_second: 0.0,
        burst: 1,
    };
    let err = cache
        .take_tokens(&quick, bad, 1, max_wait)
        .await
        .expect_err("no rate");
    assert_eq!(err.kind(), ErrorKind::Invalid);
}

async fn hashes_hold_contexts(cache: &Arc<dyn Cache>) {
    let key = CacheKey::context(&ws(), Scope::Run, &unique("run"));
    assert!(cache.hgetall(&key).await.expect("empty").is_empty());
    cache.hset(&key, "a", b"1").await.expect("a");
    cache.hset(&key, "b", br#"{"x":2}"#).await.expect("b");
    cache.hset(&key, "a", b"3").await.expect("a again");
    assert_eq!(
        cache.hget(&key, "a").await.expect("a").as_deref(),
        Some(&b"3"[..])
    );
    assert_eq!(cache.hget(&key, "zz").await.expect("missing"), None);
    let all = cache.hgetall(&key).await.expect("all");
    assert_eq!(all.keys().cloned().collect::<Vec<_>>(), vec!["a", "b"]);
    assert_eq!(all["b"], br#"{"x":2}"#.to_vec());
    assert!(cache.hdel(&key, "a").await.expect("del a"));
    assert!(!cache.hdel(&key, "a").await.expect("del a again"));
    let err = cache.get(&key).await.expect_err("a hash is not a value");
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert!(cache.expire(&key, SHORT_TTL).await.expect("expire"));
    assert!(
        eventually(EXPIRY_DEADLINE, || async {
            cache.hgetall(&key).await.expect("all").is_empty()
        })
        .await
    );
    assert!(!cache.expire(&key, SHORT_TTL).await.expect("expire missing"));
    // Deleting the last field deletes the hash.
    cache.hset(&key, "only", b"1").await.expect("only");
    assert!(cache.hdel(&key, "only").await.expect("del only"));
    cache
        .set(&key, b"plain", None)
        .await
        .expect("a value may take the name again");
}

async fn suite(cache: Arc<dyn Cache>) {
    cache.ping().await.expect("ping");
    values_expire(&cache).await;
    locks_are_taken_once_until_they_expire(&cache).await;
    counters_count_within_their_window(&cache).await;
    token_buckets_delay_past_their_burst(&cache).await;
    hashes_hold_contexts(&cache).await;
}

/// Two namespaces on one backend never see each other's keys.
async fn namespaces_isolate<F, Fut>(open: F)
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Arc<dyn Cache>>,
{
    let (a, b) = (open(unique("ns")).await, open(unique("ns")).await);
    let key = CacheKey::lock("shared-name");
    a.set(&key, b"a", Some(LONG_TTL)).await.expect("set a");
    assert_eq!(b.get(&key).await.expect("get b"), None);
    assert!(
        b.set_if_absent(&key, b"b", LONG_TTL)
            .await
            .expect("b takes its own")
    );
    assert_eq!(a.get(&key).await.expect("a").as_deref(), Some(&b"a"[..]));
    a.delete(&key).await.expect("clean a");
    b.delete(&key).await.expect("clean b");
}

#[tokio::test]
async fn cache_conformance_in_process() {
    eprintln!("cache: memory");
    suite(
        open_cache("memory://", &unique("t"))
            .await
            .expect("memory cache"),
    )
    .await;
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}/cache.db", dir.path().display());
    eprintln!("cache: sqlite-backed in-process");
    suite(open_cache(&url, &unique("t")).await.expect("sqlite cache")).await;
    namespaces_isolate(|ns| {
        let url = url.clone();
        async move { open_cache(&url, &ns).await.expect("cache") }
    })
    .await;
}

#[tokio::test]
async fn cache_conformance_redis() {
    let Some(url) = redis_url() else {
        return skip("cache: redis", "REFRACT_TEST_REDIS_URL not set");
    };
    eprintln!("cache: redis");
    let ns = unique("refract-test-");
    let body = async {
        suite(open_cache(&url, &ns).await.expect("redis cache")).await;
        namespaces_isolate(|other| {
            let url = url.clone();
            async move { open_cache(&url, &other).await.expect("cache") }
        })
        .await;
    };
    with_cleanup(body, delete_namespace(&url, &ns)).await;
}

/// Deletes every key of a test namespace (best effort).
async fn delete_namespace(url: &str, ns: &str) {
    let result = async {
        let mut conn = redis::Client::open(url)?
            .get_multiplexed_async_connection()
            .await?;
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{ns}:*"))
            .query_async(&mut conn)
            .await?;
        if !keys.is_empty() {
            redis::cmd("DEL")
                .arg(keys)
                .query_async::<()>(&mut conn)
                .await?;
        }
        Ok::<_, redis::RedisError>(())
    }
    .await;
    if let Err(e) = result {
        eprintln!("could not clean redis namespace {ns}: {e}");
    }
}

#[tokio::test]
async fn durable_keys_of_the_embedded_cache_survive_a_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}/refract.db", dir.path().display());
    let w = ws();
    let session = CacheKey::session(&SessionId::new("s1").expect("s"));
    let global = CacheKey::context(&w, Scope::Global, "");
    let user = CacheKey::context(&w, Scope::User, UserId::new("u1").expect("u").as_str());
    let run = CacheKey::context(&w, Scope::Run, "r1");
    let short = CacheKey::session(&SessionId::new("s2").expect("s"));
    {
        let cache = open_cache(&url, "prod").await.expect("open");
        cache
            .set(&session, b"token-data", Some(LONG_TTL))
            .await
            .expect("session");
        cache.hset(&global, "counter", b"41").await.expect("global");
        cache
            .hset(&global, "name", b"\"x\"")
            .await
            .expect("global 2");
        cache.hset(&user, "lang", b"\"fr\"").await.expect("user");
        cache.hset(&run, "tmp", b"1").await.expect("run");
        cache
            .set(&short, b"gone soon", Some(SHORT_TTL))
            .await
            .expect("short");
        cache.hdel(&global, "name").await.expect("hdel");
    }
    tokio::time::sleep(SHORT_TTL + Duration::from_millis(100)).await;
    let cache = open_cache(&url, "prod").await.expect("reopen");
    assert_eq!(
        cache.get(&session).await.expect("session").as_deref(),
        Some(&b"token-data"[..])
    );
    let g = cache.hgetall(&global).await.expect("global");
    assert_eq!(
        g.keys().cloned().collect::<Vec<_>>(),
        vec!["counter"],
        "the deleted field stays deleted"
    );
    assert_eq!(
        cache.hget(&user, "lang").await.expect("user").as_deref(),
        Some(&b"\"fr\""[..])
    );
    assert!(
        cache.hgetall(&run).await.expect("run").is_empty(),
        "run contexts are not durable"
    );
    assert_eq!(
        cache.get(&short).await.expect("short"),
        None,
        "an expired durable key does not come back"
    );
    let other = open_cache(&url, "staging").await.expect("other namespace");
    assert_eq!(
        other.get(&session).await.expect("other"),
        None,
        "namespaces stay apart on disk too"
    );
    cache.delete(&session).await.expect("delete");
    drop(cache);
    let again = open_cache(&url, "prod").await.expect("reopen 2");
    assert_eq!(
        again.get(&session).await.expect("deleted"),
        None,
        "deletes are persisted"
    );
}
