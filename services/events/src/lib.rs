//! `refract-events`: the events service.
//!
//! - [`ingest`]: reads every event through the `events` consumer group and writes the ones
//!   that persist to the history (the datalake) in batches, acknowledging only once stored;
//!   `workspaces.deleted` deletes a workspace's history.
//! - [`retention`]: deletes history older than each workspace's retention.
//! - [`api`]: `GET /v2/workspaces/{id}/events` (history with filters, cursors and
//!   long-polling), `POST …/events` (client emits, [`emit`]), `POST …/search` ([`search`]) and
//!   the WebSocket upgrade `GET …/events/ws` ([`live`]).
//! - [`runs`]: `GET …/runs` and `…/runs/{runId}`, the runs (status, timings, output, log) as
//!   their `runtime.automations.executed` records tell them.
//! - [`readers`]: who reads what — the caller's reader and the readable page every read path
//!   (history, long-poll, search, sockets) goes through.
//! - [`topics`]: user-topic membership (in the cache).
//! - [`config`]: settings and their defaults.
//!
//! Depends on core, broker, storage and refract-http; never on another service crate.
#![warn(missing_docs)]

pub mod api;
pub mod config;
pub mod emit;
pub mod ingest;
pub mod live;
pub mod openapi;
pub mod readers;
pub mod retention;
pub mod runs;
pub mod search;
pub mod topics;

use std::future::Future;
use std::sync::Arc;

use refract_broker::Broker;
use refract_storage::{Cache, DocumentStore};

pub use api::{api, router};
pub use config::Config;
pub use ingest::run_ingest;
pub use live::hub::Hub;
pub use live::run_live;
pub use retention::run_retention;

/// Largest number of events one client `POST /events` may publish (`spec/http-api.md` §7.2).
pub const MAX_EMIT_BATCH: usize = 100;
/// Largest `POST /events` body, in bytes.
pub const MAX_EMIT_BODY: usize = 1024 * 1024;

/// What the events service needs.
#[derive(Clone)]
pub struct EventsState {
    pub(crate) broker: Arc<dyn Broker>,
    pub(crate) store: Arc<dyn DocumentStore>,
    pub(crate) cache: Arc<dyn Cache>,
    pub(crate) config: Config,
    /// This instance's WebSockets.
    pub(crate) hub: Arc<Hub>,
}

impl EventsState {
    /// The state of one events instance on these backends, with an empty hub of sockets
    /// (each queueing at most `config.socket_queue` events).
    pub fn new(
        broker: Arc<dyn Broker>,
        store: Arc<dyn DocumentStore>,
        cache: Arc<dyn Cache>,
        config: Config,
    ) -> Self {
        let hub = Arc::new(Hub::new(config.socket_queue));
        Self {
            broker,
            store,
            cache,
            config,
            hub,
        }
    }
}

/// The background work of an events instance — history ingestion, retention and live
/// delivery — until `shutdown` resolves.
pub async fn run_workers(state: EventsState, shutdown: impl Future<Output = ()> + Send + 'static) {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    };
    let tasks = [
        tokio::spawn(run_ingest(state.clone(), until())),
        tokio::spawn(run_retention(state.clone(), until())),
        tokio::spawn(run_live(state, until())),
    ];
    shutdown.await;
    let _ = stop.send(true);
    for task in tasks {
        let _ = task.await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use refract_broker::{BrokerConfig, MemoryBroker};
    use refract_core::model::{Membership, Role, permission_doc_id};
    use refract_storage::collections::PERMISSIONS;
    use refract_storage::{Collections, Expect, MemoryStore};
    use serde_json::{Value, json};
    use tower::ServiceExt;

    use super::*;

    async fn state() -> EventsState {
        let store = Arc::new(MemoryStore::new());
        let membership = Membership {
            workspace_id: "ws1".into(),
            user_id: "alice".into(),
            role: Role::Owner.into(),
        };
        store
            .put(
                &PERMISSIONS,
                &permission_doc_id("ws1", "alice"),
                &serde_json::to_value(membership).unwrap(),
                Expect::Any,
            )
            .await
            .unwrap();
        EventsState::new(
            Arc::new(MemoryBroker::new(BrokerConfig::default())),
            store,
            Arc::new(refract_storage::cache::MemoryCache::new("test")),
            Config::new("e1"),
        )
    }

    async fn call(
        state: &EventsState,
        method: &str,
        uri: &str,
        user: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(user) = user {
            req = req.header("x-prismeai-user-id", user);
        }
        let body = match body {
            Some(b) => {
                req = req.header("content-type", "application/json");
                Body::from(b.to_string())
            }
            None => Body::empty(),
        };
        let res = router(state.clone())
            .oneshot(req.body(body).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    #[tokio::test]
    async fn emitted_events_are_ingested_and_queryable() {
        let state = state().await;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let ingest = tokio::spawn(run_ingest(state.clone(), async move {
            let _ = stop_rx.await;
        }));
        tokio::time::sleep(Duration::from_millis(50)).await;

        let (status, body) = call(
            &state,
            "POST",
            "/v2/workspaces/ws1/events",
            Some("alice"),
            Some(json!({"events": [
                {"type": "orders.created", "payload": {"id": 1}},
                {"type": "orders.created", "payload": {"id": 2}},
                {"type": "ping", "options": {"persist": false}}
            ]})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body.as_array().unwrap().len(), 3);
        assert_eq!(body[0]["source"]["userId"], "alice");
        assert!(body[0]["id"].is_string());

        // Ingestion is asynchronous: poll until both persisted events are there.
        let mut events = Value::Null;
        for _ in 0..100 {
            let (status, body) = call(
                &state,
                "GET",
                "/v2/workspaces/ws1/events?types=orders.*",
                Some("alice"),
                None,
            )
            .await;
            assert_eq!(status, StatusCode::OK);
            events = body["result"]["events"].clone();
            if events.as_array().unwrap().len() == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(events.as_array().unwrap().len(), 2, "{events}");
        assert_eq!(events[0]["payload"]["id"], 2, "newest first");

        let (_, body) = call(
            &state,
            "GET",
            "/v2/workspaces/ws1/events?payload.id=1",
            Some("alice"),
            None,
        )
        .await;
        assert_eq!(body["result"]["events"].as_array().unwrap().len(), 1);
        let (_, body) = call(
            &state,
            "GET",
            "/v2/workspaces/ws1/events?types=ping",
            Some("alice"),
            None,
        )
        .await;
        assert!(
            body["result"]["events"].as_array().unwrap().is_empty(),
            "persist: false stays out of history"
        );
        let _ = stop_tx.send(());
        ingest.await.unwrap();
    }

    #[tokio::test]
    async fn strangers_bad_queries_and_system_types_are_refused() {
        let state = state().await;
        let (status, body) = call(
            &state,
            "GET",
            "/v2/workspaces/ws1/events",
            Some("mallory"),
            None,
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::NOT_FOUND, Some("ObjectNotFoundError"))
        );
        let (status, _) = call(&state, "GET", "/v2/workspaces/ws1/events", None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, body) = call(
            &state,
            "GET",
            "/v2/workspaces/ws1/events?afterDate=yesterday",
            Some("alice"),
            None,
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("InvalidQuery"))
        );
        let (status, body) = call(
            &state,
            "POST",
            "/v2/workspaces/ws1/events",
            Some("alice"),
            Some(json!({"events": [{"type": "runtime.automations.executed"}]})),
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::FORBIDDEN, Some("ReservedEventType"))
        );
        let (status, body) = call(
            &state,
            "POST",
            "/v2/workspaces/ws1/events",
            Some("alice"),
            Some(json!({"events": [{"type": "ok", "payload": [1]}]})),
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("InvalidEventError"))
        );
        let (status, body) = call(
            &state,
            "POST",
            "/v2/workspaces/ws1/events",
            Some("alice"),
            Some(json!({"evnts": []})),
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("RequestValidationError"))
        );
    }
}
