//! Broker benchmark: publish → deliver → ack throughput and delivery latency (p50/p99), for the
//! in-process broker and Redis, with 1 and 2 consumers in one group.
//!
//! `cargo bench -p refract-broker --bench broker` (release). Redis is measured when
//! `REFRACT_TEST_REDIS_URL` is set. `REFRACT_BENCH_EVENTS` sets the events per run.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use refract_broker::{Broker, BrokerConfig, MemoryBroker, RedisBroker, Subscription, TypeFilter};
use refract_core::{Event, EventType, WorkspaceId};
use serde_json::{Value, json};
use tokio::sync::Mutex;

/// Publishing tasks: a service publishes from many requests at once.
const PUBLISHERS: usize = 8;
/// Handlers in flight per consumer: services handle deliveries concurrently.
const IN_FLIGHT: usize = 64;
/// Publish rate of the latency run: well under saturation, so latency is the broker's, not a
/// queue's.
const LATENCY_RATE: u64 = 5_000;
/// Events of the latency run.
const LATENCY_EVENTS: u64 = 10_000;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let events: u64 = std::env::var("REFRACT_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    println!(
        "broker benchmark: {events} events per run, {PUBLISHERS} publishers, {IN_FLIGHT} handlers in flight per consumer"
    );
    println!(
        "{:<8} {:>9} {:>12} {:>10} {:>10}   (latency at {LATENCY_RATE} events/s)",
        "broker", "consumers", "events/s", "p50", "p99"
    );
    for consumers in [1, 2] {
        let broker: Arc<dyn Broker> = Arc::new(MemoryBroker::new(config()));
        run("memory", broker, consumers, events).await?;
    }
    match std::env::var("REFRACT_TEST_REDIS_URL") {
        Ok(url) => {
            for consumers in [1, 2] {
                let config = config();
                let namespace = config.namespace.clone();
                let broker: Arc<dyn Broker> = Arc::new(RedisBroker::connect(&url, config).await?);
                run("redis", broker, consumers, events / 2).await?;
                cleanup(&url, &namespace).await?;
            }
        }
        Err(_) => println!("redis: skipped (REFRACT_TEST_REDIS_URL is not set)"),
    }
    Ok(())
}

fn config() -> BrokerConfig {
    BrokerConfig {
        namespace: format!("refract-bench-{}", uuid::Uuid::new_v4().simple()),
        max_len: 1_000_000,
        ..BrokerConfig::default()
    }
}

async fn run(
    name: &str,
    broker: Arc<dyn Broker>,
    consumers: usize,
    events: u64,
) -> anyhow::Result<()> {
    let (throughput, _) = pass(&broker, "throughput", consumers, events, None).await?;
    let (_, latency) = pass(
        &broker,
        "latency",
        consumers,
        LATENCY_EVENTS,
        Some(LATENCY_RATE),
    )
    .await?;
    println!(
        "{name:<8} {consumers:>9} {throughput:>12.0} {:>8.2}ms {:>8.2}ms",
        latency.value_at_quantile(0.5) as f64 / 1000.0,
        latency.value_at_quantile(0.99) as f64 / 1000.0,
    );
    Ok(())
}

/// Publishes `events` (as fast as possible, or at `rate` per second) while `consumers` read
/// and ack them; returns events/s and the publish-to-delivery latency histogram (µs).
async fn pass(
    broker: &Arc<dyn Broker>,
    group: &str,
    consumers: usize,
    events: u64,
    rate: Option<u64>,
) -> anyhow::Result<(f64, Histogram<u64>)> {
    let base = Instant::now();
    let histogram = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(
        1, 60_000_000, 3,
    )?));
    let handled = Arc::new(AtomicU64::new(0));
    let done = Arc::new(tokio::sync::Notify::new());

    let mut readers = Vec::new();
    for c in 0..consumers {
        let mut sub = broker
            .subscribe(Subscription::group(
                group,
                format!("c{c}"),
                TypeFilter::all(),
            ))
            .await?;
        let (histogram, handled, done) = (histogram.clone(), handled.clone(), done.clone());
        readers.push(tokio::spawn(async move {
            let permits = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
            let mut local =
                Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
            loop {
                let Ok(delivery) = sub.next().await else {
                    break;
                };
                let sent = delivery
                    .event
                    .payload
                    .get("sentUs")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                let now = base.elapsed().as_micros() as u64;
                local.saturating_record(now.saturating_sub(sent).max(1));
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                let (acked, done) = (handled.clone(), done.clone());
                tokio::spawn(async move {
                    if delivery.ack().await.is_ok()
                        && acked.fetch_add(1, Ordering::Relaxed) + 1 == events
                    {
                        done.notify_one();
                    }
                    drop(permit);
                });
                if local.len().is_multiple_of(4096) {
                    histogram.lock().await.add(&local).ok();
                    local.reset();
                }
                if handled.load(Ordering::Relaxed) >= events {
                    break;
                }
            }
            histogram.lock().await.add(&local).ok();
        }));
    }

    let workspace = WorkspaceId::new("bench-ws")?;
    let event_type = EventType::new("bench.tick")?;
    let started = Instant::now();
    let mut publishers = Vec::new();
    let publishers_count = if rate.is_some() { 1 } else { PUBLISHERS as u64 };
    for p in 0..publishers_count {
        let (broker, workspace, event_type) =
            (broker.clone(), workspace.clone(), event_type.clone());
        publishers.push(tokio::spawn(async move {
            let mut ticker = rate.map(|r| tokio::time::interval(Duration::from_micros(1_000_000 / r)));
            for i in (p..events).step_by(publishers_count as usize) {
                if let Some(ticker) = ticker.as_mut() {
                    ticker.tick().await;
                }
                let Value::Object(payload) = json!({"seq": i, "sentUs": base.elapsed().as_micros() as u64, "body": "a small payload"}) else {
                    unreachable!()
                };
                let event: Event = Event::new(event_type.clone(), Some(workspace.clone()), payload);
                broker.publish(event).await?;
            }
            anyhow::Ok(())
        }));
    }
    for p in publishers {
        p.await??;
    }
    tokio::time::timeout(Duration::from_secs(300), done.notified()).await?;
    let elapsed = started.elapsed();
    for r in readers {
        r.abort();
    }
    let h = histogram.lock().await.clone();
    Ok((events as f64 / elapsed.as_secs_f64(), h))
}

async fn cleanup(url: &str, namespace: &str) -> anyhow::Result<()> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{namespace}:*"))
        .query_async(&mut conn)
        .await?;
    if !keys.is_empty() {
        redis::cmd("DEL")
            .arg(keys)
            .query_async::<()>(&mut conn)
            .await?;
    }
    Ok(())
}
