//! Runs blocked in `wait`, fulfilled by events this instance sees in fan-out mode: whichever
//! instance consumed the event for its group, every instance's listener feeds this registry.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use refract_core::Event;
use refract_host::WaitCondition;
use tokio::sync::oneshot;

struct Waiter {
    workspace: String,
    conditions: Vec<WaitCondition>,
    tx: oneshot::Sender<Event>,
}

/// The waits in progress on this instance.
#[derive(Default)]
pub struct Waiters {
    next: AtomicU64,
    waiting: Mutex<HashMap<u64, Waiter>>,
}

impl std::fmt::Debug for Waiters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiters").field("waiting", &self.len()).finish()
    }
}

/// A registered wait; dropping it unregisters.
pub struct WaitHandle<'a> {
    id: u64,
    waiters: &'a Waiters,
    pub rx: oneshot::Receiver<Event>,
}

impl Drop for WaitHandle<'_> {
    fn drop(&mut self) {
        self.waiters.waiting.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.id);
    }
}

impl Waiters {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a wait for an event of `workspace` meeting one of `conditions`.
    pub fn register(&self, workspace: &str, conditions: Vec<WaitCondition>) -> WaitHandle<'_> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, Waiter { workspace: workspace.to_owned(), conditions, tx });
        WaitHandle { id, waiters: self, rx }
    }

    /// Hands `event` to every wait it fulfils; returns how many.
    pub fn dispatch(&self, event: &Event) -> usize {
        let Some(ws) = event.source.workspace_id.as_ref() else { return 0 };
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        let matched: Vec<u64> = waiting
            .iter()
            .filter(|(_, w)| w.workspace == ws.as_str() && w.conditions.iter().any(|c| c.matches(event)))
            .map(|(id, _)| *id)
            .collect();
        for id in &matched {
            if let Some(w) = waiting.remove(id) {
                let _ = w.tx.send(event.clone());
            }
        }
        matched.len()
    }

    pub fn len(&self) -> usize {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use refract_core::{EventType, WorkspaceId};
    use serde_json::{Map, json};

    fn event(ws: &str, ty: &str, order: i64) -> Event {
        let mut payload = Map::new();
        payload.insert("order".into(), json!({"id": order}));
        Event::new(EventType::new(ty).unwrap(), Some(WorkspaceId::new(ws).unwrap()), payload)
    }

    #[tokio::test]
    async fn a_wait_is_fulfilled_by_a_matching_event_of_its_workspace_only() {
        let waiters = Waiters::new();
        let cond = WaitCondition {
            event_type: EventType::new("orders.paid").unwrap(),
            filters: vec![("payload.order.id".into(), json!(7))],
        };
        let mut handle = waiters.register("ws1", vec![cond]);
        assert_eq!(waiters.dispatch(&event("ws2", "orders.paid", 7)), 0, "other workspace");
        assert_eq!(waiters.dispatch(&event("ws1", "orders.paid", 8)), 0, "filter");
        assert_eq!(waiters.dispatch(&event("ws1", "orders.created", 7)), 0, "type");
        assert_eq!(waiters.dispatch(&event("ws1", "orders.paid", 7)), 1);
        let got = (&mut handle.rx).await.unwrap();
        drop(handle);
        assert_eq!(got.payload["order"]["id"], 7);
        assert!(waiters.is_empty());
    }

    #[test]
    fn dropping_a_handle_unregisters() {
        let waiters = Waiters::new();
        let cond = WaitCondition { event_type: EventType::new("x").unwrap(), filters: vec![] };
        drop(waiters.register("ws1", vec![cond]));
        assert!(waiters.is_empty());
    }
}
