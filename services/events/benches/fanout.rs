//! Live fan-out latency: from publish to receipt on every connected WebSocket client.
//!
//! `cargo bench -p refract-events --bench fanout` (release; `--profile dev` for a quick debug
//! figure). The events router serves on loopback with the in-process broker; the clients
//! connect to it directly (the gateway only splices bytes). Settings (env):
//! - `REFRACT_BENCH_CLIENTS`: connected clients (default 1,000);
//! - `REFRACT_BENCH_EVENTS`: events published, one every 20 ms (default 200).
//!
//! Target (issue 6): p99 ≤ 20 ms at 1,000 clients.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use hdrhistogram::Histogram;
use refract_broker::{Broker, BrokerConfig, MemoryBroker};
use refract_core::model::permission_doc_id;
use refract_core::{Event, EventType, WorkspaceId};
use refract_storage::collections::PERMISSIONS;
use refract_storage::{Collections, Expect, MemoryStore};
use serde_json::{Map, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn env_usize(name: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v
            .parse()
            .with_context(|| format!("{name}={v} is not a number")),
        _ => Ok(default),
    }
}

/// The one field a client reads from an `event` frame (skipping the rest, as a real client
/// would, instead of building the whole frame as a `Value`).
#[derive(serde::Deserialize)]
struct Stamped {
    event: Option<StampedEvent>,
}

#[derive(serde::Deserialize)]
struct StampedEvent {
    payload: StampedPayload,
}

#[derive(serde::Deserialize)]
struct StampedPayload {
    #[serde(rename = "sentUs")]
    sent_us: Option<u64>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let clients = env_usize("REFRACT_BENCH_CLIENTS", 1_000)?;
    let events = env_usize("REFRACT_BENCH_EVENTS", 200)?;
    let broker: Arc<dyn Broker> = Arc::new(MemoryBroker::new(BrokerConfig::default()));
    let store = Arc::new(MemoryStore::new());
    let membership = json!({"workspaceId": "bench", "userId": "u", "role": "owner"});
    store
        .put(
            &PERMISSIONS,
            &permission_doc_id("bench", "u"),
            &membership,
            Expect::Any,
        )
        .await?;
    let cache = Arc::new(refract_storage::cache::MemoryCache::new("bench"));
    let state = refract_events::EventsState::new(
        broker.clone(),
        store,
        cache,
        refract_events::Config::new("bench"),
    );
    tokio::spawn(refract_events::run_live(
        state.clone(),
        std::future::pending(),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, refract_events::router(state)).await });

    let epoch = Instant::now();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let mut ready = Vec::with_capacity(clients);
    for _ in 0..clients {
        let mut req = format!("ws://{addr}/v2/workspaces/bench/events/ws").into_client_request()?;
        req.headers_mut().insert("x-prismeai-user-id", "u".parse()?);
        let (mut ws, _) = tokio_tungstenite::connect_async(req)
            .await
            .context("connecting a client")?;
        ws.next().await.context("hello")??;
        let tx = tx.clone();
        ready.push(tokio::spawn(async move {
            while let Some(Ok(msg)) = ws.next().await {
                let Message::Text(t) = msg else { continue };
                let Ok(frame) = serde_json::from_str::<Stamped>(t.as_str()) else {
                    continue;
                };
                if let Some(sent) = frame.event.and_then(|e| e.payload.sent_us) {
                    let now = epoch.elapsed().as_micros() as u64;
                    let _ = tx.send(now.saturating_sub(sent));
                }
            }
        }));
    }
    drop(tx);
    eprintln!("{clients} clients connected; publishing {events} events");
    let workspace = WorkspaceId::new("bench")?;
    for _ in 0..events {
        let mut payload = Map::new();
        payload.insert("sentUs".into(), json!(epoch.elapsed().as_micros() as u64));
        broker
            .publish(Event::new(
                EventType::new("bench.tick")?,
                Some(workspace.clone()),
                payload,
            ))
            .await?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut hist = Histogram::<u64>::new(3)?;
    let expected = clients * events;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while (hist.len() as usize) < expected {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(us)) => hist.record(us.max(1))?,
            _ => break,
        }
    }
    println!(
        "fan-out: {} deliveries of {expected} to {clients} clients; p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (target p99 <= 20 ms)",
        hist.len(),
        hist.value_at_quantile(0.5) as f64 / 1000.0,
        hist.value_at_quantile(0.99) as f64 / 1000.0,
        hist.max() as f64 / 1000.0
    );
    for task in ready {
        task.abort();
    }
    Ok(())
}
