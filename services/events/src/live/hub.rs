//! The sockets of this instance and the delivery of each event to them.
//!
//! One task per instance reads every event through a broker fan-out subscription and calls
//! [`Hub::dispatch`], which, under one lock, sends each socket of the event's workspace the
//! events it may read and asked for. Each socket has a bounded queue: a socket whose queue is
//! full is a slow consumer, dropped from the hub (its task sees the queue close and ends the
//! connection with 4008). A closed socket stays as a detached entry for
//! [`RECONNECT_WINDOW`], buffering up to [`RECONNECT_BUFFER`] events it would have received,
//! so a client that reconnects with its socket id loses nothing in between.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use axum::extract::ws::Utf8Bytes;
use refract_core::{Event, EventId, SessionId, UserId, WorkspaceId};
use serde_json::json;
use tokio::sync::{broadcast, mpsc};

use super::filters::Filters;
use crate::config::{RECONNECT_BUFFER, RECONNECT_WINDOW};

/// Events nobody reads over live delivery (§9.1).
const UNREADABLE: &[&str] = &["runtime.contexts.updated"];

/// Who a socket reads as.
#[derive(Debug, Clone)]
pub struct Reader {
    pub user: UserId,
    pub session: Option<SessionId>,
    /// User topics joined in the socket's workspace.
    pub topics: HashSet<String>,
}

impl Reader {
    /// Whether the socket `socket_id` of this reader may receive `event` (§8 Delivery, §9.1):
    /// an event targeted at users, sessions or a topic reaches only them; an event from a
    /// socket goes back to that socket only, unless `target.currentSocket` is false.
    fn may_read(&self, socket_id: &str, event: &Event) -> bool {
        if UNREADABLE.contains(&event.event_type.as_str()) {
            return false;
        }
        let target = event.target.as_ref();
        if let Some(from) = &event.source.socket_id
            && target.and_then(|t| t.current_socket) != Some(false)
            && from != socket_id
        {
            return false;
        }
        let Some(t) = target else { return true };
        if t.user_id.is_none() && t.session_id.is_none() && t.user_topic.is_none() {
            return true;
        }
        t.user_id.as_ref() == Some(&self.user)
            || (t.session_id.is_some() && t.session_id == self.session)
            || t.user_topic.as_ref().is_some_and(|topic| self.topics.contains(topic))
    }
}

/// A connected socket as the hub sees it.
struct Live {
    reader: Reader,
    filters: Filters,
    queue: mpsc::Sender<Utf8Bytes>,
    slow: Arc<AtomicBool>,
}

/// A closed socket kept for reconnection.
struct Detached {
    reader: Reader,
    filters: Filters,
    buffer: VecDeque<(EventId, Utf8Bytes)>,
    /// Events were dropped from the front of the buffer.
    overflowed: bool,
    since: Instant,
}

#[derive(Default)]
struct Room {
    live: HashMap<String, Live>,
    detached: HashMap<String, Detached>,
    /// The newest event id seen for the workspace (`hello.lastEventId`).
    last_id: Option<EventId>,
}

/// What a new socket gets from [`Hub::register`].
pub struct Registration {
    pub queue: mpsc::Receiver<Utf8Bytes>,
    /// Set when the hub dropped the socket as a slow consumer.
    pub slow: Arc<AtomicBool>,
    /// The workspace's stream position when delivery started.
    pub last_id: Option<EventId>,
}

/// Why a `reconnect` was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// No such socket was seen here recently (or it is connected).
    Unknown,
    /// The old socket belonged to another session or user.
    NotYours,
}

/// What a `reconnect` replays.
pub struct Adopted {
    pub frames: Vec<Utf8Bytes>,
    /// False when the gap held more than the buffer kept.
    pub complete: bool,
}

/// The live sockets of this events instance.
pub struct Hub {
    rooms: Mutex<HashMap<WorkspaceId, Room>>,
    /// Workspaces that just got an event: wakes long-polls.
    news: broadcast::Sender<WorkspaceId>,
    queue_len: usize,
}

/// Room for queued wake-ups of long-polls; a lagging long-poll just re-queries.
const NEWS_CAPACITY: usize = 1_024;

impl Hub {
    pub fn new(queue_len: usize) -> Self {
        Self { rooms: Mutex::new(HashMap::new()), news: broadcast::channel(NEWS_CAPACITY).0, queue_len: queue_len.max(1) }
    }

    fn rooms(&self) -> MutexGuard<'_, HashMap<WorkspaceId, Room>> {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes on every event published to any workspace (long-polling).
    pub fn news(&self) -> broadcast::Receiver<WorkspaceId> {
        self.news.subscribe()
    }

    /// Starts delivery to socket `id`.
    pub fn register(&self, workspace: &WorkspaceId, id: &str, reader: Reader, filters: Filters) -> Registration {
        let (queue, rx) = mpsc::channel(self.queue_len);
        let slow = Arc::new(AtomicBool::new(false));
        let mut rooms = self.rooms();
        let room = rooms.entry(workspace.clone()).or_default();
        room.live.insert(id.to_string(), Live { reader, filters, queue, slow: slow.clone() });
        Registration { queue: rx, slow, last_id: room.last_id.clone() }
    }

    /// Replaces the filters of socket `id`.
    pub fn set_filters(&self, workspace: &WorkspaceId, id: &str, filters: Filters) {
        if let Some(live) = self.rooms().get_mut(workspace).and_then(|r| r.live.get_mut(id)) {
            live.filters = filters;
        }
    }

    /// Socket `id` closed: keep what it would receive until it reconnects or expires. A slow
    /// consumer is forgotten (it was already dropped).
    pub fn detach(&self, workspace: &WorkspaceId, id: &str) {
        let mut rooms = self.rooms();
        let Some(room) = rooms.get_mut(workspace) else { return };
        if let Some(live) = room.live.remove(id) {
            let detached = Detached {
                reader: live.reader,
                filters: live.filters,
                buffer: VecDeque::new(),
                overflowed: false,
                since: Instant::now(),
            };
            room.detached.insert(id.to_string(), detached);
        }
    }

    /// Socket `current` (connected since `started`, the position it was registered at)
    /// takes the id `old` of a detached socket of the same session; returns the events
    /// buffered for `old` newer than `after` and not already delivered to `current`.
    pub fn adopt(
        &self,
        workspace: &WorkspaceId,
        current: &str,
        old: &str,
        after: Option<&EventId>,
        started: Option<&EventId>,
    ) -> Result<Adopted, Refused> {
        let mut rooms = self.rooms();
        let room = rooms.get_mut(workspace).ok_or(Refused::Unknown)?;
        let live = room.live.get(current).ok_or(Refused::Unknown)?;
        let detached = room.detached.get(old).ok_or(Refused::Unknown)?;
        let same = detached.reader.user == live.reader.user && detached.reader.session == live.reader.session;
        if !same {
            return Err(Refused::NotYours);
        }
        let detached = room.detached.remove(old).ok_or(Refused::Unknown)?;
        let live = room.live.remove(current).ok_or(Refused::Unknown)?;
        room.live.insert(old.to_string(), live);
        let after = after.map(EventId::parts);
        let upto = started.map(EventId::parts);
        let frames = detached
            .buffer
            .into_iter()
            .filter(|(id, _)| after.is_none_or(|a| id.parts() > a) && upto.is_none_or(|u| id.parts() <= u))
            .map(|(_, frame)| frame)
            .collect();
        Ok(Adopted { frames, complete: !detached.overflowed })
    }

    /// Forgets detached sockets older than the reconnection window.
    pub fn sweep(&self) {
        let mut rooms = self.rooms();
        for room in rooms.values_mut() {
            room.detached.retain(|_, d| d.since.elapsed() < RECONNECT_WINDOW);
        }
        rooms.retain(|_, room| !room.live.is_empty() || !room.detached.is_empty());
    }

    /// Hands `event` to every socket of its workspace that may read it and asked for it.
    pub fn dispatch(&self, event: &Event) {
        let (Some(workspace), Some(id)) = (event.source.workspace_id.as_ref(), event.id.as_ref()) else { return };
        let mut frame: Option<Utf8Bytes> = None;
        let mut doc: Option<serde_json::Value> = None;
        {
            let mut rooms = self.rooms();
            let room = rooms.entry(workspace.clone()).or_default();
            room.last_id = Some(id.clone());
            let mut slow = Vec::new();
            for (socket_id, live) in &room.live {
                if !wants(&live.reader, &live.filters, socket_id, event, &mut doc) {
                    continue;
                }
                let frame = frame.get_or_insert_with(|| event_frame(event)).clone();
                if live.queue.try_send(frame).is_err() {
                    live.slow.store(true, Ordering::Relaxed);
                    slow.push(socket_id.clone());
                }
            }
            for socket_id in slow {
                tracing::info!(%workspace, %socket_id, "events: slow WebSocket consumer dropped");
                room.live.remove(&socket_id);
            }
            for (socket_id, detached) in room.detached.iter_mut() {
                if !wants(&detached.reader, &detached.filters, socket_id, event, &mut doc) {
                    continue;
                }
                if detached.buffer.len() >= RECONNECT_BUFFER {
                    detached.buffer.pop_front();
                    detached.overflowed = true;
                }
                let frame = frame.get_or_insert_with(|| event_frame(event)).clone();
                detached.buffer.push_back((id.clone(), frame));
            }
        }
        let _ = self.news.send(workspace.clone());
    }

    /// How many sockets are connected here (metrics, tests).
    pub fn connected(&self) -> usize {
        self.rooms().values().map(|r| r.live.len()).sum()
    }
}

fn wants(reader: &Reader, filters: &Filters, socket_id: &str, event: &Event, doc: &mut Option<serde_json::Value>) -> bool {
    if !reader.may_read(socket_id, event) {
        return false;
    }
    if filters.needs_doc() && doc.is_none() {
        *doc = serde_json::to_value(event).ok();
    }
    filters.matches(event, doc.as_ref())
}

/// The `event` frame, serialized once for every socket.
fn event_frame(event: &Event) -> Utf8Bytes {
    Utf8Bytes::from(json!({ "type": "event", "event": event }).to_string())
}

#[cfg(test)]
mod tests {
    use refract_core::{EventType, Target};
    use serde_json::Map;

    use super::*;

    fn ws() -> WorkspaceId {
        WorkspaceId::new("w1").expect("ws")
    }

    fn reader(user: &str, session: &str) -> Reader {
        Reader {
            user: UserId::new(user).expect("user"),
            session: Some(SessionId::new(session).expect("session")),
            topics: HashSet::new(),
        }
    }

    fn event(seq: u64, target: Option<Target>) -> Event {
        let mut e = Event::new(EventType::new("t").expect("type"), Some(ws()), Map::new());
        e.id = Some(EventId::new(format!("1-{seq}")).expect("id"));
        e.target = target;
        e
    }

    fn drain(reg: &mut Registration) -> usize {
        let mut n = 0;
        while reg.queue.try_recv().is_ok() {
            n += 1;
        }
        n
    }

    #[test]
    fn targeted_events_reach_only_their_target() {
        let hub = Hub::new(10);
        let mut alice = hub.register(&ws(), "a", reader("alice", "s1"), Filters::default());
        let mut bob = hub.register(&ws(), "b", reader("bob", "s2"), Filters::default());
        hub.dispatch(&event(1, None));
        hub.dispatch(&event(2, Some(Target { user_id: Some(UserId::new("alice").expect("u")), ..Target::default() })));
        hub.dispatch(&event(3, Some(Target { session_id: Some(SessionId::new("s2").expect("s")), ..Target::default() })));
        hub.dispatch(&event(4, Some(Target { user_topic: Some("ops".into()), ..Target::default() })));
        assert_eq!((drain(&mut alice), drain(&mut bob)), (2, 2));
    }

    #[test]
    fn a_full_queue_drops_the_socket_and_a_reconnect_replays_the_gap() {
        let hub = Hub::new(2);
        let mut slowpoke = hub.register(&ws(), "s", reader("carol", "s3"), Filters::default());
        for seq in 1..=3 {
            hub.dispatch(&event(seq, None));
        }
        assert!(slowpoke.slow.load(Ordering::Relaxed));
        assert_eq!(hub.connected(), 0);
        assert_eq!(drain(&mut slowpoke), 2);

        let first = hub.register(&ws(), "old", reader("alice", "s1"), Filters::default());
        drop(first);
        hub.detach(&ws(), "old");
        hub.dispatch(&event(4, Some(Target { user_id: Some(UserId::new("alice").expect("u")), ..Target::default() })));
        hub.dispatch(&event(5, None));
        let again = hub.register(&ws(), "new", reader("alice", "s1"), Filters::default());
        let stranger = hub.register(&ws(), "x", reader("mallory", "s9"), Filters::default());
        assert_eq!(hub.adopt(&ws(), "x", "old", None, stranger.last_id.as_ref()).err(), Some(Refused::NotYours));
        let adopted = hub.adopt(&ws(), "new", "old", None, again.last_id.as_ref()).expect("adopt");
        assert_eq!((adopted.frames.len(), adopted.complete), (2, true));
        assert_eq!(hub.adopt(&ws(), "old", "old", None, None).err(), Some(Refused::Unknown), "adopted once");
    }
}
