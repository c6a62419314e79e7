//! History ingestion: every event the broker carries, stored once.

use std::future::Future;
use std::time::Duration;

use refract_broker::{Delivery, Subscription, TypeFilter};

use crate::{EventsState, INGEST_BATCH};

/// Consumer group of the events service.
pub const GROUP: &str = "events";

/// How long a batch waits for more deliveries before it is written.
const BATCH_WINDOW: Duration = Duration::from_millis(20);

/// Stores every persisted event until `shutdown` resolves. Deliveries are acknowledged only
/// after their batch is stored (a duplicate delivery is skipped by the store's idempotency);
/// a failed append is reported to the broker, which redelivers and eventually dead-letters.
pub async fn run_ingest(state: EventsState, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    let subscription = Subscription::group(GROUP, state.instance.clone(), TypeFilter::all());
    let mut sub = loop {
        match state.broker.subscribe(subscription.clone()).await {
            Ok(sub) => break sub,
            Err(error) => {
                tracing::warn!(%error, "events: subscribing failed; retrying");
                tokio::select! {
                    _ = &mut shutdown => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    };
    loop {
        let first = tokio::select! {
            _ = &mut shutdown => return,
            next = sub.next() => match next {
                Ok(d) => d,
                Err(error) => {
                    tracing::error!(%error, "events: broker closed; ingestion stops");
                    return;
                }
            },
        };
        let mut batch = vec![first];
        let window = tokio::time::sleep(BATCH_WINDOW);
        tokio::pin!(window);
        while batch.len() < INGEST_BATCH {
            tokio::select! {
                _ = &mut window => break,
                next = sub.next() => match next {
                    Ok(d) => batch.push(d),
                    Err(_) => break,
                },
            }
        }
        store(&state, batch).await;
    }
}

async fn store(state: &EventsState, batch: Vec<Delivery>) {
    let events: Vec<_> = batch
        .iter()
        .filter(|d| d.event.persist() && d.event.source.workspace_id.is_some())
        .map(|d| d.event.clone())
        .collect();
    let result = if events.is_empty() { Ok(Default::default()) } else { state.store.append(&events).await };
    match result {
        Ok(outcome) => {
            tracing::debug!(inserted = outcome.inserted, duplicates = outcome.duplicates, "events stored");
            for delivery in batch {
                if let Err(error) = delivery.ack().await {
                    tracing::warn!(%error, "events: ack failed; the event will be delivered again");
                }
            }
        }
        Err(error) => {
            tracing::warn!(%error, events = events.len(), "events: storing a batch failed");
            let reason = error.to_string();
            for delivery in batch {
                let _ = delivery.nack(&reason).await;
            }
        }
    }
}
