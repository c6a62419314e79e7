//! Runs blocked in `wait`, fulfilled by events this instance sees in fan-out mode: whichever
//! instance consumed the event for its group, every instance's listener feeds this registry.
//!
//! A run that emits a question and then waits for the answer must get the answer even when it
//! comes back before the wait is registered (another instance may answer within a millisecond).
//! So an `emit` marks its run as *asking*, and while any run asks, the events seen are kept for a
//! while; a wait that follows an emit first looks for its event among those created since the
//! first emit after the run's previous wait, then waits for new ones. With no run asking,
//! nothing is kept.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use refract_core::Event;
use refract_host::WaitCondition;
use tokio::sync::oneshot;

/// How long a seen event stays eligible for a wait that follows an emit.
const KEEP_FOR: Duration = Duration::from_secs(30);
/// Bytes of seen events kept at most (the oldest go first).
const KEEP_BYTES: usize = 8 << 20;
/// Bytes counted for an event whose size is unknown.
const UNSIZED_EVENT: usize = 1024;

struct Waiter {
    workspace: String,
    conditions: Vec<WaitCondition>,
    tx: oneshot::Sender<Event>,
}

impl Waiter {
    fn wants(&self, event: &Event) -> bool {
        event
            .source
            .workspace_id
            .as_ref()
            .is_some_and(|ws| ws.as_str() == self.workspace)
            && self.conditions.iter().any(|c| c.matches(event))
    }
}

struct Seen {
    at: Instant,
    bytes: usize,
    event: Event,
}

#[derive(Default)]
struct Inner {
    next: u64,
    waiting: HashMap<u64, Waiter>,
    /// Runs that emitted since their last wait began: run id → `createdAt` (ms) of the first
    /// such emit.
    asking: HashMap<String, i64>,
    /// Events seen while a run was asking, oldest first, and their bytes.
    seen: VecDeque<Seen>,
    seen_bytes: usize,
}

impl Inner {
    fn keep(&mut self, event: &Event) {
        if self.asking.is_empty() {
            // Every later wait looks only at events created after a later emit.
            self.seen.clear();
            self.seen_bytes = 0;
            return;
        }
        let now = Instant::now();
        let bytes = event.size.unwrap_or(UNSIZED_EVENT);
        while let Some(old) = self.seen.front()
            && (now.duration_since(old.at) > KEEP_FOR || self.seen_bytes + bytes > KEEP_BYTES)
        {
            self.seen_bytes -= old.bytes;
            self.seen.pop_front();
        }
        self.seen_bytes += bytes;
        self.seen.push_back(Seen {
            at: now,
            bytes,
            event: event.clone(),
        });
    }
}

/// The waits in progress on this instance.
#[derive(Default)]
pub(crate) struct Waiters {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Waiters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiters")
            .field("waiting", &self.len())
            .finish()
    }
}

/// A registered wait; dropping it unregisters.
pub(crate) struct WaitHandle<'a> {
    id: u64,
    waiters: &'a Waiters,
    pub(crate) rx: oneshot::Receiver<Event>,
}

impl Drop for WaitHandle<'_> {
    fn drop(&mut self) {
        self.waiters.lock().waiting.remove(&self.id);
    }
}

impl Waiters {
    /// No run waiting.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Run `run_id` emitted an event created at `created_at` (ms): its next wait may be
    /// answered by any event created from then on.
    pub(crate) fn asked(&self, run_id: &str, created_at: i64) {
        self.lock()
            .asking
            .entry(run_id.to_owned())
            .or_insert(created_at);
    }

    /// Run `run_id` ended.
    pub(crate) fn forget(&self, run_id: &str) {
        let mut inner = self.lock();
        if !inner.asking.is_empty() {
            inner.asking.remove(run_id);
        }
    }

    /// Registers a wait of run `run_id` for an event of `workspace` meeting one of
    /// `conditions`; when the run emitted since its last wait, an event already seen that was
    /// created since that emit fulfils it at once.
    pub(crate) fn register(
        &self,
        run_id: &str,
        workspace: &str,
        conditions: Vec<WaitCondition>,
    ) -> WaitHandle<'_> {
        let (tx, rx) = oneshot::channel();
        let mut inner = self.lock();
        let id = inner.next;
        inner.next += 1;
        let waiter = Waiter {
            workspace: workspace.to_owned(),
            conditions,
            tx,
        };
        let since = inner.asking.remove(run_id);
        let early = since.and_then(|since| {
            inner
                .seen
                .iter()
                .find(|s| s.event.created_at.timestamp_millis() >= since && waiter.wants(&s.event))
        });
        match early {
            Some(seen) => {
                let _ = waiter.tx.send(seen.event.clone());
            }
            None => {
                inner.waiting.insert(id, waiter);
            }
        }
        drop(inner);
        WaitHandle {
            id,
            waiters: self,
            rx,
        }
    }

    /// Hands `event` to every wait it fulfils; returns how many.
    pub(crate) fn dispatch(&self, event: &Event) -> usize {
        if event.source.workspace_id.is_none() {
            return 0;
        }
        let mut inner = self.lock();
        let matched: Vec<u64> = inner
            .waiting
            .iter()
            .filter(|(_, w)| w.wants(event))
            .map(|(id, _)| *id)
            .collect();
        for id in &matched {
            if let Some(w) = inner.waiting.remove(id) {
                let _ = w.tx.send(event.clone());
            }
        }
        inner.keep(event);
        matched.len()
    }

    /// Runs blocked in `wait` on this instance.
    pub(crate) fn len(&self) -> usize {
        self.lock().waiting.len()
    }

    /// Whether no run is blocked in `wait`.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
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
        Event::new(
            EventType::new(ty).unwrap(),
            Some(WorkspaceId::new(ws).unwrap()),
            payload,
        )
    }

    #[tokio::test]
    async fn a_wait_is_fulfilled_by_a_matching_event_of_its_workspace_only() {
        let waiters = Waiters::new();
        let cond = WaitCondition {
            event_type: EventType::new("orders.paid").unwrap(),
            filters: vec![("payload.order.id".into(), json!(7))],
        };
        let mut handle = waiters.register("run1", "ws1", vec![cond]);
        assert_eq!(
            waiters.dispatch(&event("ws2", "orders.paid", 7)),
            0,
            "other workspace"
        );
        assert_eq!(
            waiters.dispatch(&event("ws1", "orders.paid", 8)),
            0,
            "filter"
        );
        assert_eq!(
            waiters.dispatch(&event("ws1", "orders.created", 7)),
            0,
            "type"
        );
        assert_eq!(waiters.dispatch(&event("ws1", "orders.paid", 7)), 1);
        let got = (&mut handle.rx).await.unwrap();
        drop(handle);
        assert_eq!(got.payload["order"]["id"], 7);
        assert!(waiters.is_empty());
    }

    #[test]
    fn dropping_a_handle_unregisters() {
        let waiters = Waiters::new();
        let cond = WaitCondition {
            event_type: EventType::new("x").unwrap(),
            filters: vec![],
        };
        drop(waiters.register("run1", "ws1", vec![cond]));
        assert!(waiters.is_empty());
    }

    fn paid() -> Vec<WaitCondition> {
        vec![WaitCondition {
            event_type: EventType::new("orders.paid").unwrap(),
            filters: vec![],
        }]
    }

    fn at(mut event: Event, ms: i64) -> Event {
        event.created_at = chrono::DateTime::from_timestamp_millis(ms).unwrap();
        event
    }

    #[test]
    fn an_answer_seen_before_the_wait_of_the_run_that_asked_fulfils_it() {
        let waiters = Waiters::new();
        waiters.dispatch(&at(event("ws1", "orders.paid", 1), 1_000));
        waiters.asked("run1", 2_000);
        waiters.asked("run1", 2_500); // a later emit does not move the mark
        waiters.dispatch(&at(event("ws1", "orders.paid", 2), 1_999)); // created before the ask
        waiters.dispatch(&at(event("ws2", "orders.paid", 3), 2_000)); // another workspace
        waiters.dispatch(&at(event("ws1", "orders.paid", 4), 2_100));
        waiters.dispatch(&at(event("ws1", "orders.paid", 5), 2_200));
        let mut handle = waiters.register("run1", "ws1", paid());
        let got = handle.rx.try_recv().expect("fulfilled at once");
        assert_eq!(
            got.payload["order"]["id"], 4,
            "the first answer created since the ask"
        );
        drop(handle);
        assert!(waiters.is_empty());

        // The next wait of the same run, with no emit in between, waits for a new event.
        let mut handle = waiters.register("run1", "ws1", paid());
        assert!(
            handle.rx.try_recv().is_err(),
            "earlier answers are not handed twice"
        );
        assert_eq!(
            waiters.dispatch(&at(event("ws1", "orders.paid", 6), 2_300)),
            1
        );
        assert_eq!(handle.rx.try_recv().unwrap().payload["order"]["id"], 6);
    }

    #[test]
    fn a_run_that_did_not_ask_waits_for_new_events_and_nothing_is_kept_without_an_ask() {
        let waiters = Waiters::new();
        waiters.asked("run1", 1_000);
        waiters.dispatch(&at(event("ws1", "orders.paid", 1), 1_500));
        let mut other = waiters.register("run2", "ws1", paid());
        assert!(
            other.rx.try_recv().is_err(),
            "run2 emitted nothing: only new events"
        );
        drop(other);

        waiters.forget("run1");
        waiters.dispatch(&at(event("ws1", "orders.paid", 2), 1_600));
        assert!(
            waiters.lock().seen.is_empty(),
            "with no run asking, seen events are let go"
        );
        assert!(waiters.lock().asking.is_empty());
    }
}
