//! The in-process broker of the embedded mode: the same semantics as Redis Streams
//! (partitions, consumer groups, fan-out, acknowledgement, redelivery, dead letters) inside one
//! process. A subscriber that is dropped with unacknowledged deliveries hands them back to its
//! group at once; a failed delivery is retried after the claim idle time.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use refract_core::{Event, EventId, WorkspaceId};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::api::{Acker, sealed};
use crate::{
    Broker, BrokerConfig, BrokerError, DeadLetter, Delivery, Mode, Page, Subscriber, Subscription,
    TypeFilter,
};

/// The in-process broker. Cheap to clone; clones share the streams.
#[derive(Clone)]
pub struct MemoryBroker {
    shared: Arc<Shared>,
}

struct Shared {
    config: BrokerConfig,
    state: Mutex<State>,
    notify: Notify,
    next_consumer: AtomicU64,
}

#[derive(Default)]
struct State {
    partitions: Vec<Partition>,
    groups: HashMap<String, Group>,
    dead: VecDeque<DeadLetter>,
}

#[derive(Default)]
struct Partition {
    entries: VecDeque<Entry>,
    /// Absolute index of `entries[0]`; grows as the partition is trimmed.
    first: u64,
    /// Bytes of the events in `entries`.
    bytes: usize,
    last_id: (u64, u64),
}

impl Partition {
    fn end(&self) -> u64 {
        self.first + self.entries.len() as u64
    }

    fn get(&self, index: u64) -> Option<&Entry> {
        index
            .checked_sub(self.first)
            .and_then(|i| self.entries.get(i as usize))
    }
}

#[derive(Clone)]
struct Entry {
    id: EventId,
    event_type: Arc<str>,
    body: Body,
    /// Serialized size of the event.
    bytes: usize,
}

/// An entry's content: a published event is kept parsed (deliveries clone it, and it is only
/// serialized if it is dead-lettered); an injected raw entry is parsed on delivery.
#[derive(Clone)]
enum Body {
    Event(Arc<Event>),
    Raw(Arc<str>),
}

impl Entry {
    fn raw(&self) -> String {
        match &self.body {
            Body::Event(event) => String::from_utf8_lossy(&event.to_json()).into_owned(),
            Body::Raw(raw) => raw.to_string(),
        }
    }
}

struct Group {
    cursors: Vec<u64>,
    next_partition: usize,
    pending: BTreeMap<(u32, u64), Pending>,
    /// Pending entries that are failed or orphaned: when zero, nothing to reclaim.
    reclaimable: usize,
}

struct Pending {
    entry: Entry,
    owner: u64,
    deliveries: u32,
    state: PendingState,
}

enum PendingState {
    InFlight,
    Failed { at: Instant, error: String },
    Orphaned,
}

impl MemoryBroker {
    /// An empty broker with `config`'s partitions and limits (not validated here).
    pub fn new(config: BrokerConfig) -> Self {
        let partitions = (0..config.partitions)
            .map(|_| Partition::default())
            .collect();
        Self {
            shared: Arc::new(Shared {
                config,
                state: Mutex::new(State {
                    partitions,
                    ..State::default()
                }),
                notify: Notify::new(),
                next_consumer: AtomicU64::new(1),
            }),
        }
    }

    /// Appends a raw entry that bypasses validation, as a foreign or corrupt producer would.
    /// For tests of how consumers survive bad entries.
    pub fn inject_raw(&self, partition: u32, event_type: &str, raw: &str) -> EventId {
        let id = self
            .shared
            .append(partition, event_type.into(), Err(raw.into()));
        self.shared.notify.notify_waiters();
        id
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-written in a way that
        // matters more than stopping every consumer would; keep serving.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Appends a sealed event to its workspace's partition and returns its new id.
    fn append_event(&self, event: Event) -> EventId {
        crate::observe::published(&event);
        let partition = self
            .config
            .partition_of(event.source.workspace_id.as_ref().map(|w| w.as_str()));
        self.append(partition, event.event_type.as_str().into(), Ok(event))
    }

    /// Appends a published event (`Ok`) or a raw entry (`Err`) and returns its new id.
    fn append(
        &self,
        partition: u32,
        event_type: Arc<str>,
        content: Result<Event, Arc<str>>,
    ) -> EventId {
        let now_ms = chrono::Utc::now().timestamp_millis().max(0) as u64;
        let mut state = self.lock();
        let max_len = self.config.max_len;
        let max_bytes = self.config.memory_max_bytes / self.config.partitions as usize;
        let p = partition as usize % self.config.partitions as usize;
        let State {
            partitions, groups, ..
        } = &mut *state;
        // Entries a consumer group has not read yet are never trimmed: past `max_len` a slow
        // group costs memory, not events (Redis's MAXLEN would drop them).
        let unread_from = groups
            .values()
            .map(|g| g.cursors[p])
            .min()
            .unwrap_or(u64::MAX);
        let part = &mut partitions[p];
        let (ms, seq) = part.last_id;
        part.last_id = if now_ms > ms {
            (now_ms, 0)
        } else {
            (ms, seq + 1)
        };
        let id = EventId::from_parts(part.last_id.0, part.last_id.1);
        let (body, bytes) = match content {
            Ok(mut event) => {
                event.id = Some(id.clone());
                let bytes = event.size.unwrap_or_default();
                (Body::Event(Arc::new(event)), bytes)
            }
            Err(raw) => {
                let bytes = raw.len();
                (Body::Raw(raw), bytes)
            }
        };
        part.entries.push_back(Entry {
            id: id.clone(),
            event_type,
            body,
            bytes,
        });
        part.bytes += bytes;
        while (part.entries.len() > max_len || part.bytes > max_bytes) && part.first < unread_from {
            let Some(gone) = part.entries.pop_front() else {
                break;
            };
            part.bytes -= gone.bytes;
            part.first += 1;
        }
        id
    }

    fn dead_letter(&self, state: &mut State, dead: DeadLetter) {
        tracing::warn!(id = %dead.id, group = %dead.group, error = %dead.error, "event dead-lettered");
        crate::observe::dead_lettered(&dead.group);
        state.dead.push_front(dead);
        state.dead.truncate(self.config.dead_letter_max_len);
    }
}

#[async_trait]
impl Broker for MemoryBroker {
    async fn publish(&self, event: Event) -> Result<EventId, BrokerError> {
        let event = sealed(event, &self.shared.config.event_limits)?;
        let id = self.shared.append_event(event);
        self.shared.notify.notify_waiters();
        Ok(id)
    }

    async fn publish_all(&self, events: Vec<Event>) -> Result<Vec<EventId>, BrokerError> {
        let limits = &self.shared.config.event_limits;
        let events = events
            .into_iter()
            .map(|e| sealed(e, limits))
            .collect::<Result<Vec<_>, _>>()?;
        let ids = events
            .into_iter()
            .map(|e| self.shared.append_event(e))
            .collect();
        self.shared.notify.notify_waiters();
        Ok(ids)
    }

    async fn subscribe(
        &self,
        subscription: Subscription,
    ) -> Result<Box<dyn Subscriber>, BrokerError> {
        let consumer = self.shared.next_consumer.fetch_add(1, Ordering::Relaxed);
        let mut state = self.shared.lock();
        let ends: Vec<u64> = state.partitions.iter().map(Partition::end).collect();
        let reader = match subscription.mode {
            Mode::Group { group, .. } => {
                state.groups.entry(group.clone()).or_insert_with(|| Group {
                    cursors: ends,
                    next_partition: 0,
                    pending: BTreeMap::new(),
                    reclaimable: 0,
                });
                Reader::Group(group)
            }
            Mode::FanOut => Reader::FanOut {
                cursors: ends,
                next_partition: 0,
            },
        };
        Ok(Box::new(MemorySubscriber {
            shared: self.shared.clone(),
            consumer,
            reader,
            filter: subscription.filter,
        }))
    }

    async fn read_after(
        &self,
        workspace: &WorkspaceId,
        after: &EventId,
        scan: usize,
    ) -> Result<Page, BrokerError> {
        let partition = self.shared.config.partition_of(Some(workspace.as_str()));
        let state = self.shared.lock();
        let part = &state.partitions[partition as usize % state.partitions.len()];
        let after = after.parts();
        let truncated =
            part.first > 0 && part.entries.front().is_some_and(|e| e.id.parts() > after);
        // Ids grow along the partition: the first entry after `after` by binary search.
        let start = part.entries.partition_point(|e| e.id.parts() <= after);
        let scanned: Vec<&Entry> = part.entries.range(start..).take(scan.max(1)).collect();
        let next = (start + scanned.len() < part.entries.len())
            .then(|| scanned.last().map(|e| e.id.clone()))
            .flatten();
        let events = scanned
            .into_iter()
            .filter_map(|entry| parse(entry).ok())
            .filter(|event| event.source.workspace_id.as_ref() == Some(workspace))
            .map(Arc::unwrap_or_clone)
            .collect();
        Ok(Page {
            events,
            next,
            truncated,
        })
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, BrokerError> {
        Ok(self
            .shared
            .lock()
            .dead
            .iter()
            .take(limit)
            .cloned()
            .collect())
    }
}

struct MemorySubscriber {
    shared: Arc<Shared>,
    consumer: u64,
    reader: Reader,
    filter: TypeFilter,
}

enum Reader {
    Group(String),
    FanOut {
        cursors: Vec<u64>,
        next_partition: usize,
    },
}

/// What one look at a group found. A delivery is large next to the other variants, but these
/// live for one call on the stack; boxing it would allocate once per delivery.
#[allow(clippy::large_enum_variant)]
enum Step {
    Ready(Delivery),
    Dead(DeadLetter),
    /// Nothing now; maybe a failed delivery becomes due at this instant.
    Idle(Option<Instant>),
}

/// What one look at the state found (large like [`Step`], for the same reason).
#[allow(clippy::large_enum_variant)]
enum Poll {
    Ready(Delivery),
    /// Nothing now; a failed delivery becomes due at this instant.
    RetryAt(Instant),
    Idle,
}

impl MemorySubscriber {
    fn poll(&mut self) -> Poll {
        let shared = self.shared.clone();
        let mut state = shared.lock();
        match &mut self.reader {
            Reader::FanOut {
                cursors,
                next_partition,
            } => {
                let count = cursors.len();
                for step in 0..count {
                    let p = (*next_partition + step) % count;
                    let part = &state.partitions[p];
                    cursors[p] = cursors[p].max(part.first);
                    while let Some(entry) = part.get(cursors[p]) {
                        cursors[p] += 1;
                        if !self.filter.matches(&entry.event_type) {
                            continue;
                        }
                        match parse(entry) {
                            Ok(event) => {
                                *next_partition = (p + 1) % count;
                                return Poll::Ready(Delivery {
                                    event,
                                    attempt: 1,
                                    acker: None,
                                });
                            }
                            Err(error) => {
                                tracing::warn!(id = %entry.id, %error, "skipping a malformed entry")
                            }
                        }
                    }
                }
                Poll::Idle
            }
            Reader::Group(name) => {
                let name = name.clone();
                self.poll_group(&mut state, &name)
            }
        }
    }

    fn poll_group(&self, state: &mut State, name: &str) -> Poll {
        loop {
            let State {
                partitions, groups, ..
            } = &mut *state;
            let Some(group) = groups.get_mut(name) else {
                return Poll::Idle;
            };
            match self.step(partitions, group, name) {
                Step::Ready(delivery) => return Poll::Ready(delivery),
                Step::Dead(letter) => self.shared.dead_letter(state, letter),
                Step::Idle(Some(at)) => return Poll::RetryAt(at),
                Step::Idle(None) => return Poll::Idle,
            }
        }
    }

    fn step(&self, partitions: &[Partition], group: &mut Group, name: &str) -> Step {
        let config = &self.shared.config;
        let dead = |entry: &Entry, error: String, deliveries: u32| {
            Step::Dead(DeadLetter {
                id: entry.id.to_string(),
                group: name.to_string(),
                error,
                deliveries,
                raw: entry.raw(),
            })
        };

        // Redeliveries first: failed entries whose retry is due, and orphans of dropped
        // subscribers.
        let mut retry_at: Option<Instant> = None;
        if group.reclaimable > 0 {
            let now = Instant::now();
            let due = group
                .pending
                .iter()
                .find_map(|(key, pending)| match &pending.state {
                    PendingState::Orphaned => Some(*key),
                    PendingState::Failed { at, .. } => {
                        let due_at = *at + config.claim_idle;
                        retry_at = Some(retry_at.map_or(due_at, |r| r.min(due_at)));
                        (due_at <= now).then_some(*key)
                    }
                    PendingState::InFlight => None,
                });
            if let Some(key) = due
                && let Some(mut pending) = group.pending.remove(&key)
            {
                group.reclaimable -= 1;
                if pending.deliveries >= config.max_deliveries {
                    let error = match &pending.state {
                        PendingState::Failed { error, .. } => error.clone(),
                        _ => format!("not acknowledged after {} deliveries", pending.deliveries),
                    };
                    return dead(&pending.entry, error, pending.deliveries);
                }
                let event = match parse(&pending.entry) {
                    Ok(event) => event,
                    Err(error) => return dead(&pending.entry, error, pending.deliveries),
                };
                pending.deliveries += 1;
                pending.owner = self.consumer;
                pending.state = PendingState::InFlight;
                let attempt = pending.deliveries;
                group.pending.insert(key, pending);
                return Step::Ready(self.delivery(name, key, event, attempt));
            }
        }

        // Then new entries, round-robin over partitions.
        let count = partitions.len();
        for offset in 0..count {
            let p = (group.next_partition + offset) % count;
            let part = &partitions[p];
            group.cursors[p] = group.cursors[p].max(part.first);
            while let Some(entry) = part.get(group.cursors[p]) {
                let key = (p as u32, group.cursors[p]);
                group.cursors[p] += 1;
                if !self.filter.matches(&entry.event_type) {
                    continue;
                }
                let event = match parse(entry) {
                    Ok(event) => event,
                    Err(error) => return dead(entry, error, 1),
                };
                group.next_partition = (p + 1) % count;
                let pending = Pending {
                    entry: entry.clone(),
                    owner: self.consumer,
                    deliveries: 1,
                    state: PendingState::InFlight,
                };
                group.pending.insert(key, pending);
                return Step::Ready(self.delivery(name, key, event, 1));
            }
        }
        Step::Idle(retry_at)
    }

    fn delivery(&self, group: &str, key: (u32, u64), event: Arc<Event>, attempt: u32) -> Delivery {
        let acker = MemoryAcker {
            shared: self.shared.clone(),
            group: group.to_string(),
            key,
        };
        Delivery {
            event,
            attempt,
            acker: Some(Box::new(acker)),
        }
    }
}

/// The entry's event: the published one itself (its id was set when it was appended), or
/// the raw text parsed.
fn parse(entry: &Entry) -> Result<Arc<Event>, String> {
    let raw = match &entry.body {
        Body::Event(event) => return Ok(Arc::clone(event)),
        Body::Raw(raw) => raw,
    };
    let mut event =
        Event::from_json(raw.as_bytes()).map_err(|e| format!("not a valid event: {e}"))?;
    event.id = Some(entry.id.clone());
    Ok(Arc::new(event))
}

#[async_trait]
impl Subscriber for MemorySubscriber {
    async fn next(&mut self) -> Result<Delivery, BrokerError> {
        loop {
            let shared = self.shared.clone();
            let notified = shared.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.poll() {
                Poll::Ready(delivery) => return Ok(delivery),
                Poll::RetryAt(at) => {
                    tokio::select! {
                        _ = notified => {}
                        _ = tokio::time::sleep_until(at) => {}
                    }
                }
                Poll::Idle => notified.await,
            }
        }
    }
}

impl Drop for MemorySubscriber {
    fn drop(&mut self) {
        let Reader::Group(name) = &self.reader else {
            return;
        };
        let mut state = self.shared.lock();
        if let Some(group) = state.groups.get_mut(name) {
            for pending in group.pending.values_mut() {
                if pending.owner == self.consumer && matches!(pending.state, PendingState::InFlight)
                {
                    pending.state = PendingState::Orphaned;
                    group.reclaimable += 1;
                }
            }
        }
        drop(state);
        self.shared.notify.notify_waiters();
    }
}

struct MemoryAcker {
    shared: Arc<Shared>,
    group: String,
    key: (u32, u64),
}

#[async_trait]
impl Acker for MemoryAcker {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    async fn ack(&self) -> Result<(), BrokerError> {
        let mut state = self.shared.lock();
        if let Some(group) = state.groups.get_mut(&self.group)
            && let Some(pending) = group.pending.remove(&self.key)
            && !matches!(pending.state, PendingState::InFlight)
        {
            group.reclaimable -= 1;
        }
        Ok(())
    }

    fn abandon(&self) {
        let mut state = self.shared.lock();
        if let Some(group) = state.groups.get_mut(&self.group)
            && let Some(pending) = group.pending.get_mut(&self.key)
            && matches!(pending.state, PendingState::InFlight)
        {
            group.reclaimable += 1;
            let error = "dropped without acknowledgement".to_string();
            pending.state = PendingState::Failed {
                at: Instant::now(),
                error,
            };
        }
        drop(state);
        self.shared.notify.notify_waiters();
    }

    async fn nack(&self, _attempt: u32, error: &str) -> Result<(), BrokerError> {
        let max = self.shared.config.max_deliveries;
        let mut state = self.shared.lock();
        let Some(group) = state.groups.get_mut(&self.group) else {
            return Ok(());
        };
        let Some(pending) = group.pending.get_mut(&self.key) else {
            return Ok(());
        };
        if pending.deliveries >= max {
            let dead = DeadLetter {
                id: pending.entry.id.to_string(),
                group: self.group.clone(),
                error: error.to_string(),
                deliveries: pending.deliveries,
                raw: pending.entry.raw(),
            };
            if !matches!(pending.state, PendingState::InFlight) {
                group.reclaimable -= 1;
            }
            group.pending.remove(&self.key);
            self.shared.dead_letter(&mut state, dead);
        } else {
            if matches!(pending.state, PendingState::InFlight) {
                group.reclaimable += 1;
            }
            pending.state = PendingState::Failed {
                at: Instant::now(),
                error: error.to_string(),
            };
        }
        drop(state);
        self.shared.notify.notify_waiters();
        Ok(())
    }
}
