//! The broker conformance suite: every scenario runs against the in-process broker always, and
//! against Redis when `REFRACT_TEST_REDIS_URL` is set (each test in its own key namespace).
// Helpers fail their test by panicking, like the tests themselves (clippy's
// `allow-unwrap-in-tests` covers only `#[test]` functions).
#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use refract_broker::{
    Broker, BrokerConfig, BrokerError, Delivery, MemoryBroker, RedisBroker, Subscriber,
    Subscription, TypeFilter,
};
use refract_core::{ErrorKind, Event, EventLimits, EventType, WorkspaceId};
use serde_json::{Map, Value, json};

/// Upper bound for anything that should happen: reached only when the behaviour is broken.
const PATIENCE: Duration = Duration::from_secs(15);

fn config() -> BrokerConfig {
    BrokerConfig {
        namespace: format!("refract-test-{}", uuid::Uuid::new_v4().simple()),
        claim_idle: Duration::from_millis(400),
        block: Duration::from_millis(100),
        max_deliveries: 3,
        ..BrokerConfig::default()
    }
}

enum Backend {
    Memory(MemoryBroker),
    Redis(RedisBroker, String),
}

impl Backend {
    fn broker(&self) -> Arc<dyn Broker> {
        match self {
            Backend::Memory(b) => Arc::new(b.clone()),
            Backend::Redis(b, _) => Arc::new(b.clone()),
        }
    }

    async fn inject_garbage(&self, event_type: &str, raw: &str) {
        match self {
            Backend::Memory(b) => {
                b.inject_raw(0, event_type, raw);
            }
            Backend::Redis(b, _) => {
                b.inject_raw(0, &[("type", event_type), ("event", raw)])
                    .await
                    .unwrap();
            }
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Backend::Redis(_, namespace) = self
            && let Some(url) = redis_url()
            && let Ok(client) = redis::Client::open(url)
            && let Ok(mut conn) = client.get_connection()
        {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{namespace}:*"))
                .query(&mut conn)
                .unwrap_or_default();
            if !keys.is_empty() {
                let _: Result<(), _> = redis::cmd("DEL").arg(keys).query(&mut conn);
            }
        }
    }
}

fn redis_url() -> Option<String> {
    std::env::var("REFRACT_TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

async fn memory(config: BrokerConfig) -> Option<Backend> {
    Some(Backend::Memory(MemoryBroker::new(config)))
}

async fn redis(config: BrokerConfig) -> Option<Backend> {
    let Some(url) = redis_url() else {
        eprintln!("skipped: REFRACT_TEST_REDIS_URL is not set, so the Redis broker was not tested");
        return None;
    };
    let namespace = config.namespace.clone();
    Some(Backend::Redis(
        RedisBroker::connect(&url, config)
            .await
            .expect("connect to the test redis"),
        namespace,
    ))
}

/// Runs each scenario against both backends, as `memory::<name>` and `redis::<name>`.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod memory_broker {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { if let Some(b) = super::memory(super::config()).await { super::$name(b).await } })*
        }
        mod redis_broker {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { if let Some(b) = super::redis(super::config()).await { super::$name(b).await } })*
        }
    };
}

conformance!(
    order_holds_per_partition,
    each_event_goes_to_one_consumer_per_group,
    fan_out_reaches_every_subscriber_from_now_on,
    filters_select_by_type_and_prefix,
    a_failed_delivery_is_retried_then_acknowledged,
    a_dropped_consumers_work_is_reclaimed,
    an_unsettled_delivery_is_redelivered,
    a_slow_handler_keeps_its_event,
    poison_events_are_dead_lettered_after_max_deliveries,
    malformed_entries_are_dead_lettered_and_consumption_goes_on,
    invalid_events_are_refused_at_publish,
    a_workspace_is_read_back_after_an_id,
    a_batch_is_acknowledged_at_once,
    a_batch_is_published_in_order_or_not_at_all,
    an_abandoned_read_loses_nothing,
);

fn event(event_type: &str, workspace: &str, payload: Value) -> Event {
    let Value::Object(map) = payload else {
        panic!("payload must be an object")
    };
    Event::new(
        EventType::new(event_type).unwrap(),
        Some(WorkspaceId::new(workspace).unwrap()),
        map,
    )
}

async fn next(sub: &mut Box<dyn Subscriber>) -> Delivery {
    tokio::time::timeout(PATIENCE, sub.next())
        .await
        .expect("a delivery in time")
        .expect("broker open")
}

/// Whether `sub` receives anything within `window`.
async fn receives_within(sub: &mut Box<dyn Subscriber>, window: Duration) -> Option<Delivery> {
    tokio::time::timeout(window, sub.next())
        .await
        .ok()
        .map(|r| r.expect("broker open"))
}

fn seq(d: &Delivery) -> u64 {
    d.event.payload["seq"].as_u64().unwrap()
}

async fn order_holds_per_partition(backend: Backend) {
    let broker = backend.broker();
    let mut sub = broker
        .subscribe(Subscription::group("runtime", "r1", TypeFilter::all()))
        .await
        .unwrap();
    let mut ids = HashSet::new();
    for i in 0..60u64 {
        let ws = if i % 2 == 0 { "ws-a" } else { "ws-b" };
        let id = broker
            .publish(event("orders.created", ws, json!({"seq": i})))
            .await
            .unwrap();
        assert!(
            ids.insert((ws.to_string(), id)),
            "ids are unique within a workspace"
        );
    }
    let mut last: HashMap<String, u64> = HashMap::new();
    for _ in 0..60 {
        let d = next(&mut sub).await;
        let ws = d.event.source.workspace_id.clone().unwrap().to_string();
        let s = seq(&d);
        if let Some(prev) = last.insert(ws.clone(), s) {
            assert!(s > prev, "{ws}: {s} after {prev}");
        }
        assert!(
            ids.contains(&(ws.clone(), d.id().unwrap().clone())),
            "the delivered id is the published one"
        );
        assert!(d.event.size.unwrap() > 0);
        d.ack().await.unwrap();
    }
    assert_eq!(last.len(), 2);
}

async fn each_event_goes_to_one_consumer_per_group(backend: Backend) {
    let broker = backend.broker();
    let a = broker
        .subscribe(Subscription::group("runtime", "r1", TypeFilter::all()))
        .await
        .unwrap();
    let b = broker
        .subscribe(Subscription::group("runtime", "r2", TypeFilter::all()))
        .await
        .unwrap();
    let mut other = broker
        .subscribe(Subscription::group("events", "e1", TypeFilter::all()))
        .await
        .unwrap();
    const N: u64 = 40;
    for i in 0..N {
        broker
            .publish(event("ping", &format!("ws-{}", i % 7), json!({"seq": i})))
            .await
            .unwrap();
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut workers = Vec::new();
    for (name, mut sub) in [("r1", a), ("r2", b)] {
        let tx = tx.clone();
        workers.push(tokio::spawn(async move {
            loop {
                let d = sub.next().await.unwrap();
                tx.send((name, seq(&d))).unwrap();
                d.ack().await.unwrap();
            }
        }));
    }
    let mut seen = HashMap::new();
    while seen.len() < N as usize {
        let (who, s) = tokio::time::timeout(PATIENCE, rx.recv())
            .await
            .expect("all events handled")
            .unwrap();
        assert!(seen.insert(s, who).is_none(), "event {s} was handled twice");
    }
    // Nothing more comes to the group: each event was handled exactly once.
    assert!(
        tokio::time::timeout(Duration::from_millis(600), rx.recv())
            .await
            .is_err()
    );
    for w in workers {
        w.abort();
    }
    // Another group gets its own copy of every event.
    let mut theirs = HashSet::new();
    for _ in 0..N {
        let d = next(&mut other).await;
        theirs.insert(seq(&d));
        d.ack().await.unwrap();
    }
    assert_eq!(theirs.len(), N as usize);
}

async fn fan_out_reaches_every_subscriber_from_now_on(backend: Backend) {
    let broker = backend.broker();
    broker
        .publish(event("before", "ws-a", json!({"seq": 0})))
        .await
        .unwrap();
    let mut subs = Vec::new();
    for _ in 0..2 {
        subs.push(
            broker
                .subscribe(Subscription::fan_out(TypeFilter::all()))
                .await
                .unwrap(),
        );
    }
    for i in 1..=10u64 {
        broker
            .publish(event("live", "ws-a", json!({"seq": i})))
            .await
            .unwrap();
    }
    for sub in &mut subs {
        for i in 1..=10u64 {
            let d = next(sub).await;
            assert_eq!(d.event.event_type.as_str(), "live");
            assert_eq!(seq(&d), i);
            d.ack().await.unwrap();
        }
        assert!(
            receives_within(sub, Duration::from_millis(300))
                .await
                .is_none()
        );
    }
}

async fn filters_select_by_type_and_prefix(backend: Backend) {
    let broker = backend.broker();
    let filter = TypeFilter::new(["workspaces.*", "orders.created"]);
    let mut sub = broker
        .subscribe(Subscription::group("runtime", "r1", filter.clone()))
        .await
        .unwrap();
    let mut fan = broker
        .subscribe(Subscription::fan_out(filter))
        .await
        .unwrap();
    for (i, t) in [
        "workspaces.created",
        "orders.updated",
        "workspacesX",
        "orders.created",
        "workspaces.automations.deleted",
    ]
    .into_iter()
    .enumerate()
    {
        broker
            .publish(event(t, "ws-a", json!({"seq": i})))
            .await
            .unwrap();
    }
    for sub in [&mut sub, &mut fan] {
        let mut got = Vec::new();
        for _ in 0..3 {
            let d = next(sub).await;
            got.push(d.event.event_type.to_string());
            d.ack().await.unwrap();
        }
        assert_eq!(
            got,
            [
                "workspaces.created",
                "orders.created",
                "workspaces.automations.deleted"
            ]
        );
        assert!(
            receives_within(sub, Duration::from_millis(300))
                .await
                .is_none()
        );
    }
}

async fn a_failed_delivery_is_retried_then_acknowledged(backend: Backend) {
    let broker = backend.broker();
    let mut sub = broker
        .subscribe(Subscription::group("runtime", "r1", TypeFilter::all()))
        .await
        .unwrap();
    let id = broker
        .publish(event("job", "ws-a", json!({"seq": 1})))
        .await
        .unwrap();
    let first = next(&mut sub).await;
    assert_eq!(first.attempt, 1);
    first.nack("database unavailable").await.unwrap();
    let second = next(&mut sub).await;
    assert_eq!(second.id(), Some(&id));
    assert_eq!(second.attempt, 2);
    second.ack().await.unwrap();
    assert!(
        receives_within(&mut sub, Duration::from_millis(1500))
            .await
            .is_none(),
        "acknowledged work is not redelivered"
    );
    assert!(broker.dead_letters(10).await.unwrap().is_empty());
}

async fn a_batch_is_acknowledged_at_once(backend: Backend) {
    let broker = backend.broker();
    let mut runtime = broker
        .subscribe(Subscription::group("runtime", "r1", TypeFilter::all()))
        .await
        .unwrap();
    let mut events = broker
        .subscribe(Subscription::group("events", "e1", TypeFilter::all()))
        .await
        .unwrap();
    // Several workspaces, so the batch spans partitions; one delivery is a redelivery.
    for seq in 0..12 {
        broker
            .publish(event(
                "job",
                &format!("ws-{}", seq % 5),
                json!({"seq": seq}),
            ))
            .await
            .unwrap();
    }
    let mut batch = Vec::new();
    for _ in 0..12 {
        batch.push(next(&mut runtime).await);
    }
    let failed = batch.pop().unwrap();
    failed.nack("retry me").await.unwrap();
    batch.push(next(&mut runtime).await);
    assert_eq!(batch.last().unwrap().attempt, 2);
    // Deliveries of two groups settled together.
    batch.push(next(&mut events).await);
    Delivery::ack_all(batch).await.unwrap();
    assert!(
        receives_within(&mut runtime, Duration::from_millis(1500))
            .await
            .is_none(),
        "an acknowledged event came back"
    );
    let mut seen = Vec::new();
    while let Some(d) = receives_within(&mut events, Duration::from_millis(300)).await {
        seen.push(seq(&d));
        d.ack().await.unwrap();
    }
    assert_eq!(
        seen.len(),
        11,
        "the events group still gets the 11 events it had not read, and only those"
    );
    assert!(broker.dead_letters(10).await.unwrap().is_empty());
    Delivery::ack_all(Vec::new()).await.unwrap();
}

/// A consumer may stop waiting for `next()` at any moment (a timeout, or a `select!` such as
/// the events service's batch window): what Redis hands the read it was waiting on belongs to
/// the next call, not left pending unseen until it is reclaimed claim-idle later as a
/// redelivery (issue #22: the history writers' slow tail).
async fn an_abandoned_read_loses_nothing(backend: Backend) {
    const EVENTS: u64 = 1_000;
    const CHUNK: u64 = 5;
    let broker = backend.broker();
    let mut sub = broker
        .subscribe(Subscription::group("events", "e1", TypeFilter::all()))
        .await
        .unwrap();
    // Events keep arriving while the consumer reads, as a cluster's runs publish theirs.
    let publisher = {
        let broker = broker.clone();
        tokio::spawn(async move {
            for chunk in 0..EVENTS / CHUNK {
                let events = (chunk * CHUNK..(chunk + 1) * CHUNK)
                    .map(|seq| event("job", &format!("ws-{}", seq % 8), json!({"seq": seq})))
                    .collect();
                broker.publish_all(events).await.unwrap();
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    let mut seen = HashSet::new();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    for i in 0.. {
        if seen.len() as u64 == EVENTS || tokio::time::Instant::now() > deadline {
            break;
        }
        // Every other call is given up after a moment, mostly while its read waits for entries.
        let wait = if i % 2 == 0 {
            Duration::from_micros(100 << (i / 2 % 6))
        } else {
            PATIENCE
        };
        let Ok(delivery) = tokio::time::timeout(wait, sub.next()).await else {
            continue;
        };
        let d = delivery.expect("broker open");
        assert_eq!(
            d.attempt,
            1,
            "event {} came back as a redelivery: an abandoned read lost it",
            seq(&d)
        );
        assert!(seen.insert(seq(&d)), "event {} delivered twice", seq(&d));
        d.ack().await.unwrap();
    }
    publisher.await.unwrap();
    assert_eq!(seen.len() as u64, EVENTS, "every event delivered");
    assert!(
        receives_within(&mut sub, Duration::from_millis(1200))
            .await
            .is_none(),
        "nothing left pending to be redelivered"
    );
}

async fn a_dropped_consumers_work_is_reclaimed(backend: Backend) {
    let broker = backend.broker();
    let mut dying = broker
        .subscribe(Subscription::group("runtime", "r1", TypeFilter::all()))
        .await
        .unwrap();
    let id = broker
        .publish(event("job", "ws-a", json!({"seq": 1})))
        .await
        .unwrap();
    let taken = next(&mut dying).await;
    assert_eq!(taken.id(), Some(&id));
    // The instance dies mid-handling: neither the delivery nor the consumer settle anything.
    std::mem::forget(taken);
    drop(dying);
    let mut survivor = broker
        .subscribe(Subscription::group("runtime", "r2", TypeFilter::all()))
        .await
        .unwrap();
    let again = next(&mut survivor).await;
    assert_eq!(again.id(), Some(&id));
    assert_eq!(again.attempt, 2);
    again.ack().await.unwrap();
    assert!(
        receives_within(&mut survivor, Duration::from_millis(1200))
            .await
            .is_none()
    );
}

async fn an_unsettled_delivery_is_redelivered(backend: Backend) {
    let broker = backend.broker();
    let mut sub = broker
        .subscribe(Subscription::group("runtime", "r1", TypeFilter::all()))
        .await
        .unwrap();
    let id = broker
        .publish(event("job", "ws-a", json!({"seq": 1})))
        .await
        .unwrap();
    // A handler that panics drops its delivery without settling it.
    drop(next(&mut sub).await);
    let again = next(&mut sub).await;
    assert_eq!(again.id(), Some(&id));
    assert_eq!(again.attempt, 2);
    again.ack().await.unwrap();
}

async fn a_slow_handler_keeps_its_event(backend: Backend) {
    let broker = backend.broker();
    let mut slow = broker
        .subscribe(Subscription::group("runtime", "r1", TypeFilter::all()))
        .await
        .unwrap();
    broker
        .publish(event("job", "ws-a", json!({"seq": 1})))
        .await
        .unwrap();
    let held = next(&mut slow).await;
    let mut other = broker
        .subscribe(Subscription::group("runtime", "r2", TypeFilter::all()))
        .await
        .unwrap();
    // Hold it for several claim-idle periods while the other consumer keeps reading.
    assert!(
        receives_within(&mut other, Duration::from_millis(2000))
            .await
            .is_none(),
        "a live handler's event was reclaimed"
    );
    held.ack().await.unwrap();
    drop(slow);
    assert!(
        receives_within(&mut other, Duration::from_millis(1200))
            .await
            .is_none()
    );
}

async fn poison_events_are_dead_lettered_after_max_deliveries(backend: Backend) {
    let broker = backend.broker();
    let mut sub = broker
        .subscribe(Subscription::group("runtime", "r1", TypeFilter::all()))
        .await
        .unwrap();
    let id = broker
        .publish(event("poison", "ws-a", json!({"seq": 1})))
        .await
        .unwrap();
    for attempt in 1..=3 {
        let d = next(&mut sub).await;
        assert_eq!(d.attempt, attempt);
        d.nack(&format!("handler failed on attempt {attempt}"))
            .await
            .unwrap();
    }
    assert!(
        receives_within(&mut sub, Duration::from_millis(1500))
            .await
            .is_none(),
        "a dead letter is not redelivered"
    );
    let dead = broker.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].id, id.to_string());
    assert_eq!(dead[0].group, "runtime");
    assert_eq!(dead[0].deliveries, 3);
    assert_eq!(dead[0].error, "handler failed on attempt 3");
    assert!(dead[0].raw.contains("\"poison\""));
}

async fn malformed_entries_are_dead_lettered_and_consumption_goes_on(backend: Backend) {
    let broker = backend.broker();
    let mut sub = broker
        .subscribe(Subscription::group("runtime", "r1", TypeFilter::all()))
        .await
        .unwrap();
    backend.inject_garbage("bad", "{not json").await;
    backend
        .inject_garbage("bad", r#"{"type":"bad","payload":[1,2]}"#)
        .await;
    broker
        .publish(event("good", "ws-a", json!({"seq": 7})))
        .await
        .unwrap();
    let d = next(&mut sub).await;
    assert_eq!(d.event.event_type.as_str(), "good");
    assert_eq!(seq(&d), 7);
    d.ack().await.unwrap();
    let dead = broker.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert!(
        dead.iter()
            .all(|l| l.error.starts_with("not a valid event")),
        "{dead:?}"
    );
    assert!(
        dead.iter()
            .any(|l| l.error.contains("payload must be a JSON object")),
        "{dead:?}"
    );
    assert!(dead.iter().any(|l| l.raw == "{not json"));
}

async fn invalid_events_are_refused_at_publish(backend: Backend) {
    let broker = backend.broker();
    let mut big = Map::new();
    big.insert(
        "blob".into(),
        Value::String("x".repeat(EventLimits::default().max_size)),
    );
    let err = broker
        .publish(event("big", "ws-a", Value::Object(big)))
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::Invalid(_)));
    assert_eq!(err.kind(), ErrorKind::Limit);
    assert!(
        err.to_string().contains("over the 100000-byte limit"),
        "{err}"
    );
}

/// `publish_all` appends a batch in order with distinct ids; one invalid event in a batch
/// publishes none of it.
async fn a_batch_is_published_in_order_or_not_at_all(backend: Backend) {
    let broker = backend.broker();
    let mut sub = broker
        .subscribe(Subscription::group("runtime", "r1", TypeFilter::all()))
        .await
        .unwrap();
    let mut big = Map::new();
    big.insert(
        "blob".into(),
        Value::String("x".repeat(EventLimits::default().max_size)),
    );
    let refused = vec![
        event("t", "ws-a", json!({"seq": 0})),
        event("big", "ws-a", Value::Object(big)),
    ];
    let err = broker.publish_all(refused).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Limit);

    let batch = (1..=50u64)
        .map(|i| event("t", "ws-a", json!({"seq": i})))
        .collect();
    let ids = broker.publish_all(batch).await.unwrap();
    assert_eq!(ids.len(), 50);
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 50, "distinct ids");
    for (i, id) in (1..=50u64).zip(&ids) {
        let d = next(&mut sub).await;
        assert_eq!(seq(&d), i, "in order, and nothing of the refused batch");
        assert_eq!(d.event.id.as_ref(), Some(id));
        d.ack().await.unwrap();
    }
    assert!(
        receives_within(&mut sub, Duration::from_millis(200))
            .await
            .is_none()
    );
}

#[tokio::test]
async fn an_unreachable_redis_is_named_in_the_error() {
    let err = RedisBroker::connect("redis://:hunter2@127.0.0.1:1/0", BrokerConfig::default())
        .await
        .err()
        .unwrap();
    let text = err.to_string();
    assert!(text.contains("redis://:***@127.0.0.1:1/0"), "{text}");
    assert!(!text.contains("hunter2"));
    assert_eq!(err.kind(), ErrorKind::Unavailable);
}

#[tokio::test]
async fn unknown_broker_schemes_list_the_supported_ones() {
    let err = refract_broker::open("kafka://x", BrokerConfig::default())
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("memory:// or redis://"), "{err}");
}

/// The in-process broker trims only what every consumer group has read: a group that falls
/// far behind (here 200 events past a 10-entry cap) still gets every event, while what all
/// groups have read is trimmed to the cap (the replay of `read_after` says so).
#[tokio::test]
async fn the_memory_broker_never_trims_what_a_group_has_not_read() {
    let broker = MemoryBroker::new(BrokerConfig {
        partitions: 1,
        max_len: 10,
        ..config()
    });
    let mut sub = broker
        .subscribe(Subscription::group("events", "e1", TypeFilter::all()))
        .await
        .unwrap();
    let mut first = None;
    for i in 0..200u64 {
        let id = broker
            .publish(event("orders.created", "ws-a", json!({"seq": i})))
            .await
            .unwrap();
        first.get_or_insert(id);
    }
    for i in 0..200u64 {
        let d = next(&mut sub).await;
        assert_eq!(seq(&d), i, "the slow group gets every event, in order");
        d.ack().await.unwrap();
    }
    // Read by every group now: the next publish trims the partition to its cap.
    broker
        .publish(event("orders.created", "ws-a", json!({"seq": 200})))
        .await
        .unwrap();
    let ws = WorkspaceId::new("ws-a").unwrap();
    let page = broker.read_after(&ws, &first.unwrap(), 1000).await.unwrap();
    assert!(page.truncated, "the oldest read entries were trimmed");
    assert!(
        page.events.len() <= 10,
        "{} entries kept",
        page.events.len()
    );
}

/// What every group has read is also trimmed to the in-process broker's byte budget, so a
/// burst of events does not stay in memory (the cap in entries is far off here).
#[tokio::test]
async fn the_memory_broker_keeps_read_events_within_its_byte_budget() {
    let broker = MemoryBroker::new(BrokerConfig {
        partitions: 1,
        max_len: 100_000,
        memory_max_bytes: 4096,
        ..config()
    });
    let mut sub = broker
        .subscribe(Subscription::group("events", "e1", TypeFilter::all()))
        .await
        .unwrap();
    let mut first = None;
    for i in 0..200u64 {
        let id = broker
            .publish(event(
                "orders.created",
                "ws-a",
                json!({"seq": i, "pad": "x".repeat(100)}),
            ))
            .await
            .unwrap();
        first.get_or_insert(id);
        let d = next(&mut sub).await;
        assert_eq!(seq(&d), i);
        d.ack().await.unwrap();
    }
    let ws = WorkspaceId::new("ws-a").unwrap();
    let page = broker.read_after(&ws, &first.unwrap(), 1000).await.unwrap();
    let kept: usize = page.events.iter().map(|e| e.size.unwrap()).sum();
    assert!(page.truncated, "the oldest read entries were trimmed");
    assert!(
        !page.events.is_empty() && kept <= 4096,
        "{} events of {kept} bytes kept",
        page.events.len()
    );
    assert_eq!(
        page.events.last().map(|e| e.payload["seq"].clone()),
        Some(json!(199)),
        "the newest are kept"
    );
}

/// `read_after` returns one workspace's events after an id, oldest first, in pages, from the
/// stream every instance shares (what a WebSocket reconnecting elsewhere replays).
async fn a_workspace_is_read_back_after_an_id(backend: Backend) {
    let broker = backend.broker();
    let mut ids = Vec::new();
    for seq in 0..6 {
        ids.push(
            broker
                .publish(event("t", "ws-a", json!({"seq": seq})))
                .await
                .unwrap(),
        );
        broker
            .publish(event("t", "ws-b", json!({"seq": seq})))
            .await
            .unwrap();
    }
    let ws = WorkspaceId::new("ws-a").unwrap();
    let page = broker.read_after(&ws, &ids[1], 1_000).await.unwrap();
    let seqs: Vec<u64> = page
        .events
        .iter()
        .map(|e| e.payload["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [2, 3, 4, 5]);
    assert_eq!(
        page.events[0].id.as_ref(),
        Some(&ids[2]),
        "events carry their ids"
    );
    assert!(
        page.next.is_none() && !page.truncated,
        "one page, nothing trimmed"
    );

    // Pages of at most `scan` entries of the partition (other workspaces may share it).
    let (mut cursor, mut seen, mut pages) = (ids[0].clone(), Vec::new(), 0);
    loop {
        let page = broker.read_after(&ws, &cursor, 2).await.unwrap();
        seen.extend(
            page.events
                .iter()
                .map(|e| e.payload["seq"].as_u64().unwrap()),
        );
        pages += 1;
        match page.next {
            Some(next) => cursor = next,
            None => break,
        }
        assert!(pages < 20, "pages end");
    }
    assert_eq!(seen, [1, 2, 3, 4, 5]);
    assert!(
        broker
            .read_after(&ws, &ids[5], 10)
            .await
            .unwrap()
            .events
            .is_empty(),
        "nothing after the newest"
    );
}

/// A private Redis server on a free loopback port, killed on drop.
struct PrivateRedis {
    port: u16,
    child: std::process::Child,
}

impl PrivateRedis {
    fn start(port: u16) -> std::io::Result<Self> {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()?;
        Ok(Self { port, child })
    }

    async fn wait_ready(&self) {
        let url = format!("redis://127.0.0.1:{}", self.port);
        for _ in 0..100 {
            if let Ok(client) = redis::Client::open(url.as_str())
                && let Ok(mut conn) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("private redis-server did not start on port {}", self.port);
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Redis restarts (losing every stream and group, as it keeps nothing on disk): publishers get
/// an `Unavailable` error meanwhile, and a consumer resumes by itself without a panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_survive_a_redis_restart() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let Ok(server) = PrivateRedis::start(port) else {
        eprintln!("skipped: no redis-server binary to restart");
        return;
    };
    server.wait_ready().await;
    let url = format!("redis://127.0.0.1:{port}");
    let broker = RedisBroker::connect(&url, config()).await.unwrap();
    let mut sub = broker
        .subscribe(Subscription::group("runtime", "r1", TypeFilter::all()))
        .await
        .unwrap();
    broker
        .publish(event("before", "ws-a", json!({"seq": 1})))
        .await
        .unwrap();
    next(&mut sub).await.ack().await.unwrap();

    drop(server);
    let err = broker
        .publish(event("during", "ws-a", json!({"seq": 2})))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    let reader = tokio::spawn(async move {
        let d = next(&mut sub).await;
        d.event.event_type.to_string()
    });
    tokio::time::sleep(Duration::from_millis(500)).await;

    let server = PrivateRedis::start(port).unwrap();
    server.wait_ready().await;
    // The publisher reconnects by itself; retry until it has.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match broker
            .publish(event("after", "ws-a", json!({"seq": 3})))
            .await
        {
            Ok(_) => break,
            Err(e) if tokio::time::Instant::now() < deadline => {
                assert_eq!(e.kind(), ErrorKind::Unavailable);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("publisher never reconnected: {e}"),
        }
    }
    let got = tokio::time::timeout(PATIENCE, reader)
        .await
        .expect("consumer resumed")
        .unwrap();
    assert_eq!(got, "after");
    drop(server);
}
