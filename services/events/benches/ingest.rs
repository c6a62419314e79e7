//! Historization throughput: events stored per second by the events service's ingest loop
//! (broker → batch → one append per batch → ack), embedded (in-process broker + SQLite) and
//! clustered (Redis broker + PostgreSQL).
//!
//! `cargo bench -p refract-events --bench ingest` (release). The events are published first,
//! then the ingest loop starts and the clock runs until the history holds them all, so the
//! figure is the drain rate of a backlog: what the service sustains, not what producers send.
//! Settings (env):
//! - `REFRACT_BENCH_EVENTS`: events stored per backend (default 100,000);
//! - `REFRACT_BENCH_BACKENDS`: comma list among `embedded,postgres` (default both);
//! - `REFRACT_TEST_REDIS_URL`, `REFRACT_TEST_DATABASE_URL`: the clustered backends (a fresh
//!   broker namespace and schema, removed after).
//!
//! Target (issue 6): ≥ 10,000 events/s stored.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use refract_broker::{Broker, BrokerConfig, Subscription, TypeFilter};
use refract_core::{Event, EventType, WorkspaceId};
use refract_storage::{DocumentStore, HistoryQuery, open_document_store};
use serde_json::{Map, json};

const WORKSPACES: usize = 10;

fn env_usize(name: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v
            .replace('_', "")
            .parse()
            .with_context(|| format!("{name}={v} is not a number")),
        _ => Ok(default),
    }
}

/// An event like the runtime's `runtime.automations.executed`: a few hundred bytes of payload.
fn event(i: usize) -> anyhow::Result<Event> {
    let mut payload = Map::new();
    payload.insert("slug".into(), json!(format!("automation-{}", i % 50)));
    payload.insert("status".into(), json!("success"));
    payload.insert("duration".into(), json!(i % 7));
    payload.insert(
        "payload".into(),
        json!({"method": "POST", "body": {"order": i, "note": "bench order"}}),
    );
    payload.insert("output".into(), json!({"ok": true, "items": [1, 2, 3]}));
    let workspace = WorkspaceId::new(format!("bench{}", i % WORKSPACES))?;
    Ok(Event::new(
        EventType::new("runtime.automations.executed")?,
        Some(workspace),
        payload,
    ))
}

async fn stored(store: &dyn DocumentStore) -> anyhow::Result<u64> {
    let mut total = 0;
    for w in 0..WORKSPACES {
        total += store
            .count(&HistoryQuery::new(WorkspaceId::new(format!("bench{w}"))?))
            .await?;
    }
    Ok(total)
}

async fn run(
    label: &str,
    broker: Arc<dyn Broker>,
    store: Arc<dyn DocumentStore>,
    n: usize,
) -> anyhow::Result<()> {
    // The ingest group exists before the backlog is published (a new group starts at the end
    // of the stream, as a new Redis group made with `$` does).
    let group = broker
        .subscribe(Subscription::group(
            refract_events::ingest::GROUP,
            "bench",
            TypeFilter::all(),
        ))
        .await?;
    drop(group);
    let publish = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(1_000) {
        let events = chunk
            .iter()
            .map(|&i| event(i))
            .collect::<anyhow::Result<Vec<_>>>()?;
        futures::future::try_join_all(events.into_iter().map(|e| broker.publish(e))).await?;
    }
    eprintln!(
        "{label}: {n} events published in {:.2} s; ingesting",
        publish.elapsed().as_secs_f64()
    );
    let cache = Arc::new(refract_storage::cache::MemoryCache::new("bench"));
    let state = refract_events::EventsState::new(
        broker,
        store.clone(),
        cache,
        refract_events::Config::new("bench"),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let started = Instant::now();
    let ingest = tokio::spawn(refract_events::run_ingest(state, async {
        let _ = stopped.await;
    }));
    let deadline = started + Duration::from_secs(600);
    let mut done = 0;
    while Instant::now() < deadline {
        done = stored(store.as_ref()).await?;
        if done >= n as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let _ = stop.send(());
    ingest.await?;
    println!(
        "{label}: {done} of {n} events stored in {elapsed:.2} s = {:.0} events/s (target >= 10,000)",
        done as f64 / elapsed
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n = env_usize("REFRACT_BENCH_EVENTS", 100_000)?;
    let backends =
        std::env::var("REFRACT_BENCH_BACKENDS").unwrap_or_else(|_| "embedded,postgres".into());
    let config = BrokerConfig {
        max_len: n * 2,
        ..BrokerConfig::default()
    };

    if backends.split(',').any(|b| b.trim() == "embedded") {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}", dir.path().join("bench.db").display());
        let store = open_document_store(&url).await.context("opening sqlite")?;
        let broker = refract_broker::open("memory://", config.clone()).await?;
        run("embedded (in-process broker, SQLite)", broker, store, n).await?;
    }

    if backends.split(',').any(|b| b.trim() == "postgres") {
        let (Ok(redis_url), Ok(db_url)) = (
            std::env::var("REFRACT_TEST_REDIS_URL"),
            std::env::var("REFRACT_TEST_DATABASE_URL"),
        ) else {
            println!(
                "clustered: skipped (set REFRACT_TEST_REDIS_URL and REFRACT_TEST_DATABASE_URL)"
            );
            return Ok(());
        };
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let schema = format!("refract_bench_{suffix}");
        let sep = if db_url.contains('?') { '&' } else { '?' };
        let store = open_document_store(&format!("{db_url}{sep}schema={schema}"))
            .await
            .context("opening postgres")?;
        let namespace = format!("refract-bench-{suffix}");
        let broker = refract_broker::open(
            &redis_url,
            BrokerConfig {
                namespace: namespace.clone(),
                ..config
            },
        )
        .await?;
        let outcome = run("clustered (Redis broker, PostgreSQL)", broker, store, n).await;
        let pool = sqlx::PgPool::connect(&db_url)
            .await
            .context("connecting to drop the bench schema")?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
        )))
        .execute(&pool)
        .await?;
        let client = redis::Client::open(redis_url.as_str())?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{namespace}*"))
            .query_async(&mut conn)
            .await?;
        if !keys.is_empty() {
            let _: () = redis::cmd("DEL").arg(keys).query_async(&mut conn).await?;
        }
        outcome?;
    }
    Ok(())
}
