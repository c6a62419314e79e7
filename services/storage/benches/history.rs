//! Event-history benchmark: batch-insert throughput and the p50 of a filtered first page
//! (workspace + type + time range) over a large history, on SQLite and PostgreSQL.
//!
//! `cargo bench -p refract-storage --bench history` (release). Settings (env):
//! - `REFRACT_BENCH_EVENTS`: events stored (default 1,000,000);
//! - `REFRACT_BENCH_BATCH`: events per append (default 1,000);
//! - `REFRACT_BENCH_QUERIES`: filtered queries timed (default 500);
//! - `REFRACT_BENCH_BACKENDS`: comma list among `sqlite,postgres` (default both);
//! - `REFRACT_TEST_DATABASE_URL`: PostgreSQL to include (a fresh schema, dropped after).
//!
//! Targets (issue 3): insert ≥ 20,000 events/s on SQLite and ≥ 10,000/s on PostgreSQL; over
//! 1,000,000 events the filtered query p50 ≤ 50 ms on both.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{TimeZone, Utc};
use hdrhistogram::Histogram;
use refract_core::{CorrelationId, Event, EventId, EventType, WorkspaceId};
use refract_storage::{DocumentStore, HistoryQuery, TypeFilter, open_document_store};
use serde_json::{Map, json};

const WORKSPACES: u64 = 20;
const TYPES: u64 = 25;
/// The stored events span this many days (createdAt), like a month of retention.
const DAYS: u64 = 30;
const DAY_MS: u64 = 86_400_000;
/// Start of the generated history (2026-10-01T00:00:00Z).
const T0_MS: u64 = 1_790_812_800_000;

fn env_u64(name: &str, default: u64) -> anyhow::Result<u64> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v
            .replace('_', "")
            .parse()
            .with_context(|| format!("{name}={v} is not a number")),
        _ => Ok(default),
    }
}

/// A cheap deterministic generator (SplitMix64): the same history on every run and backend.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn workspace(i: u64) -> WorkspaceId {
    WorkspaceId::new(format!("bench-ws-{i}")).unwrap_or_else(|_| unreachable!("valid id"))
}

fn event_type(i: u64) -> String {
    format!("bench.type{i}.happened")
}

/// Event `i` of `n`: spread evenly over `DAYS`, round-robin over workspaces, random type.
fn event(i: u64, n: u64, rng: &mut Rng) -> anyhow::Result<Event> {
    let ms = T0_MS + i * (DAYS * DAY_MS) / n.max(1);
    let ws = workspace(i % WORKSPACES);
    let ty = event_type(rng.next() % TYPES);
    let mut payload = Map::new();
    payload.insert(
        "order".into(),
        json!({"id": i, "total": rng.next() % 10_000, "currency": "EUR"}),
    );
    payload.insert(
        "customer".into(),
        json!(format!("customer {} of shop", rng.next() % 5_000)),
    );
    payload.insert(
        "status".into(),
        json!(if i.is_multiple_of(3) {
            "paid"
        } else {
            "pending"
        }),
    );
    let mut e = Event::new(EventType::new(ty)?, Some(ws), payload);
    e.id = Some(EventId::from_parts(ms, i % 7));
    e.created_at = Utc
        .timestamp_millis_opt(i64::try_from(ms)?)
        .single()
        .context("time")?;
    e.source.correlation_id = CorrelationId::generate();
    Ok(e)
}

/// CPU time of this process so far (all threads, user + system), from /proc: on a shared
/// machine the wall-clock rate also measures the neighbours' load, the CPU rate does not.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // After the command name: state is field 3, utime 14, stime 15 (1-based, `man 5 proc`).
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10)) // USER_HZ is 100 on Linux
}

struct InsertRate {
    wall: f64,
    /// Events per CPU-second of this process (SQLite runs in process; PostgreSQL does not).
    cpu: Option<f64>,
}

async fn insert(store: &Arc<dyn DocumentStore>, n: u64, batch: u64) -> anyhow::Result<InsertRate> {
    let mut rng = Rng(42);
    // Only `append` is timed: building the events is the producer's cost, not the store's.
    let (mut spent, mut cpu) = (Duration::ZERO, Some(Duration::ZERO));
    let (mut done, mut last_done, mut last_spent) = (0, 0, Duration::ZERO);
    let mut next_report = n / 10;
    while done < n {
        let size = batch.min(n - done);
        let events = (done..done + size)
            .map(|i| event(i, n, &mut rng).map(Arc::new))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let (started, cpu_before) = (Instant::now(), cpu_time());
        let outcome = store.append(&events).await?;
        spent += started.elapsed();
        cpu = match (cpu, cpu_before, cpu_time()) {
            (Some(total), Some(a), Some(b)) => Some(total + b.saturating_sub(a)),
            _ => None,
        };
        anyhow::ensure!(
            outcome.inserted == size,
            "expected {size} new events, stored {}",
            outcome.inserted
        );
        done += size;
        if done >= next_report && n >= 100_000 {
            eprintln!(
                "  {done} events: {:.0} events/s overall, {:.0} events/s over the last {}",
                done as f64 / spent.as_secs_f64(),
                (done - last_done) as f64 / (spent - last_spent).as_secs_f64(),
                done - last_done,
            );
            (last_done, last_spent) = (done, spent);
            next_report += n / 10;
        }
    }
    Ok(InsertRate {
        wall: n as f64 / spent.as_secs_f64(),
        cpu: cpu
            .filter(|c| !c.is_zero())
            .map(|c| n as f64 / c.as_secs_f64()),
    })
}

/// Times `queries` first pages of workspace + type + one-day window; returns (p50, p95, p99, max).
async fn query(store: &Arc<dyn DocumentStore>, queries: u64) -> anyhow::Result<[Duration; 4]> {
    let mut rng = Rng(7);
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut rows = 0;
    for _ in 0..queries {
        let mut q = HistoryQuery::new(workspace(rng.next() % WORKSPACES));
        q.types = vec![TypeFilter::parse(&event_type(rng.next() % TYPES))?];
        let day = rng.next() % DAYS;
        let from = T0_MS + day * DAY_MS;
        q.after_date = Some(
            Utc.timestamp_millis_opt(i64::try_from(from)?)
                .single()
                .context("time")?,
        );
        q.before_date = Some(
            Utc.timestamp_millis_opt(i64::try_from(from + DAY_MS)?)
                .single()
                .context("time")?,
        );
        let started = Instant::now();
        let page = store.query(&q).await?;
        hist.record(u64::try_from(started.elapsed().as_micros())?.max(1))?;
        rows += page.len();
    }
    eprintln!(
        "  {queries} queries returned {rows} events ({:.1} per page)",
        rows as f64 / queries as f64
    );
    let us = |v: u64| Duration::from_micros(v);
    Ok([
        us(hist.value_at_quantile(0.5)),
        us(hist.value_at_quantile(0.95)),
        us(hist.value_at_quantile(0.99)),
        us(hist.max()),
    ])
}

async fn run(
    name: &str,
    store: Arc<dyn DocumentStore>,
    n: u64,
    batch: u64,
    queries: u64,
    target: f64,
) -> anyhow::Result<()> {
    eprintln!("== {name}: inserting {n} events in batches of {batch}");
    let rate = insert(&store, n, batch).await?;
    // Warm-up page, so the first timed query does not pay for cold caches alone.
    query(&store, 5).await?;
    let [p50, p95, p99, max] = query(&store, queries).await?;
    // Only SQLite runs inside this process; PostgreSQL's work is in its server's processes.
    let cpu = rate
        .cpu
        .filter(|_| name == "sqlite")
        .map(|c| format!(", {c:.0} per CPU-second of this process"))
        .unwrap_or_default();
    println!(
        "{name}: insert {:.0} events/s wall{cpu} (target >= {target:.0}) | filtered first page over {n} events: \
         p50 {:.2} ms (target <= 50), p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        rate.wall,
        p50.as_secs_f64() * 1e3,
        p95.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3,
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n = env_u64("REFRACT_BENCH_EVENTS", 1_000_000)?;
    let batch = env_u64("REFRACT_BENCH_BATCH", 1_000)?.clamp(1, 5_000);
    let queries = env_u64("REFRACT_BENCH_QUERIES", 500)?.max(1);

    let backends =
        std::env::var("REFRACT_BENCH_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".into());
    let wanted = |name: &str| backends.split(',').any(|b| b.trim() == name);

    if wanted("sqlite") {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}/bench.db", dir.path().display());
        let sqlite = open_document_store(&url).await.context("opening sqlite")?;
        run("sqlite", sqlite, n, batch, queries, 20_000.0).await?;
    }

    if !wanted("postgres") {
        return Ok(());
    }
    match std::env::var("REFRACT_TEST_DATABASE_URL")
        .ok()
        .filter(|v| !v.is_empty())
    {
        None => eprintln!("skipped: postgres: REFRACT_TEST_DATABASE_URL not set"),
        Some(base) => {
            let schema = format!("refract_bench_{}", uuid::Uuid::new_v4().simple());
            let sep = if base.contains('?') { '&' } else { '?' };
            let store = open_document_store(&format!("{base}{sep}schema={schema}"))
                .await
                .context("opening postgres")?;
            let outcome = run("postgres", store, n, batch, queries, 10_000.0).await;
            let pool = sqlx::PgPool::connect(&base)
                .await
                .context("connecting to drop the bench schema")?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
            )))
            .execute(&pool)
            .await?;
            outcome?;
        }
    }
    Ok(())
}
