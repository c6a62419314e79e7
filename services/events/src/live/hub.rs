//! The sockets of this instance and the delivery of each event to them.
//!
//! One task per instance reads every event through a broker fan-out subscription and calls
//! [`Hub::dispatch`], which, under one lock, sends each socket of the event's workspace the
//! events it may read and asked for. Each socket has a bounded queue: a socket whose queue is
//! full is a slow consumer, dropped from the hub (its task sees the queue close and ends the
//! connection with 4008). A closed socket leaves the hub at once: what it misses until it
//! reconnects is replayed from the broker by whichever instance it reconnects to
//! ([`super::sockets`]), so nothing is buffered here for absent sockets.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::ws::Utf8Bytes;
use refract_core::{Event, EventId, SessionId, UserId, WorkspaceId};
use serde_json::json;
use tokio::sync::{broadcast, mpsc};

use super::filters::Filters;

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
    pub(crate) fn may_read(&self, socket_id: &str, event: &Event) -> bool {
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
            || t.user_topic
                .as_ref()
                .is_some_and(|topic| self.topics.contains(topic))
    }
}

/// A connected socket as the hub sees it.
struct Live {
    reader: Reader,
    filters: Filters,
    queue: mpsc::Sender<Frame>,
    slow: Arc<AtomicBool>,
}

/// One `event` frame for a socket, with the event's id (`(ms, seq)`, ordered within the
/// workspace) so a socket can skip what a reconnect replay already sent.
#[derive(Debug, Clone)]
pub struct Frame {
    pub id: (u64, u64),
    pub text: Utf8Bytes,
}

#[derive(Default)]
struct Room {
    live: HashMap<String, Live>,
    /// The newest event id seen for the workspace (`hello.lastEventId`).
    last_id: Option<EventId>,
}

/// What a new socket gets from [`Hub::register`].
pub struct Registration {
    pub queue: mpsc::Receiver<Frame>,
    /// Set when the hub dropped the socket as a slow consumer.
    pub slow: Arc<AtomicBool>,
    /// The workspace's stream position when delivery started.
    pub last_id: Option<EventId>,
}

/// Why a `reconnect` was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// No such socket was seen recently, or it is connected to this instance.
    Unknown,
    /// The old socket belonged to another session or user.
    NotYours,
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
        Self {
            rooms: Mutex::new(HashMap::new()),
            news: broadcast::channel(NEWS_CAPACITY).0,
            queue_len: queue_len.max(1),
        }
    }

    fn rooms(&self) -> MutexGuard<'_, HashMap<WorkspaceId, Room>> {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes on every event published to any workspace (long-polling).
    pub fn news(&self) -> broadcast::Receiver<WorkspaceId> {
        self.news.subscribe()
    }

    /// Starts delivery to socket `id`.
    pub fn register(
        &self,
        workspace: &WorkspaceId,
        id: &str,
        reader: Reader,
        filters: Filters,
    ) -> Registration {
        let (queue, rx) = mpsc::channel(self.queue_len);
        let slow = Arc::new(AtomicBool::new(false));
        let mut rooms = self.rooms();
        let room = rooms.entry(workspace.clone()).or_default();
        room.live.insert(
            id.to_string(),
            Live {
                reader,
                filters,
                queue,
                slow: slow.clone(),
            },
        );
        Registration {
            queue: rx,
            slow,
            last_id: room.last_id.clone(),
        }
    }

    /// Replaces the filters of socket `id`.
    pub fn set_filters(&self, workspace: &WorkspaceId, id: &str, filters: Filters) {
        if let Some(live) = self
            .rooms()
            .get_mut(workspace)
            .and_then(|r| r.live.get_mut(id))
        {
            live.filters = filters;
        }
    }

    /// Socket `id` closed: it leaves the hub (a slow consumer already has).
    pub fn leave(&self, workspace: &WorkspaceId, id: &str) {
        let mut rooms = self.rooms();
        let Some(room) = rooms.get_mut(workspace) else {
            return;
        };
        room.live.remove(id);
        if room.live.is_empty() && room.last_id.is_none() {
            rooms.remove(workspace);
        }
    }

    /// Socket `current` takes the id `old` (a `reconnect`): from now on it receives what is
    /// routed to `old`. Refused when `old` is connected to this instance.
    pub fn rekey(&self, workspace: &WorkspaceId, current: &str, old: &str) -> Result<(), Refused> {
        let mut rooms = self.rooms();
        let room = rooms.get_mut(workspace).ok_or(Refused::Unknown)?;
        if room.live.contains_key(old) || !room.live.contains_key(current) {
            return Err(Refused::Unknown);
        }
        let live = room.live.remove(current).ok_or(Refused::Unknown)?;
        room.live.insert(old.to_string(), live);
        Ok(())
    }

    /// Hands `event` to every socket of its workspace that may read it and asked for it.
    pub fn dispatch(&self, event: &Event) {
        let (Some(workspace), Some(id)) = (event.source.workspace_id.as_ref(), event.id.as_ref())
        else {
            return;
        };
        let mut frame: Option<Frame> = None;
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
                let frame = frame
                    .get_or_insert_with(|| Frame {
                        id: id.parts(),
                        text: event_frame(event),
                    })
                    .clone();
                if live.queue.try_send(frame).is_err() {
                    live.slow.store(true, Ordering::Relaxed);
                    slow.push(socket_id.clone());
                }
            }
            for socket_id in slow {
                tracing::info!(%workspace, %socket_id, "events: slow WebSocket consumer dropped");
                room.live.remove(&socket_id);
            }
        }
        let _ = self.news.send(workspace.clone());
    }

    /// How many sockets are connected here (metrics, tests).
    pub fn connected(&self) -> usize {
        self.rooms().values().map(|r| r.live.len()).sum()
    }
}

/// Whether the socket `socket_id` of `reader` with `filters` receives `event` (`doc` caches
/// the event as JSON for payload filters).
pub(crate) fn wants(
    reader: &Reader,
    filters: &Filters,
    socket_id: &str,
    event: &Event,
    doc: &mut Option<serde_json::Value>,
) -> bool {
    if !reader.may_read(socket_id, event) {
        return false;
    }
    if filters.needs_doc() && doc.is_none() {
        *doc = serde_json::to_value(event).ok();
    }
    filters.matches(event, doc.as_ref())
}

/// The `event` frame, serialized once for every socket.
pub(crate) fn event_frame(event: &Event) -> Utf8Bytes {
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
        hub.dispatch(&event(
            2,
            Some(Target {
                user_id: Some(UserId::new("alice").expect("u")),
                ..Target::default()
            }),
        ));
        hub.dispatch(&event(
            3,
            Some(Target {
                session_id: Some(SessionId::new("s2").expect("s")),
                ..Target::default()
            }),
        ));
        hub.dispatch(&event(
            4,
            Some(Target {
                user_topic: Some("ops".into()),
                ..Target::default()
            }),
        ));
        assert_eq!((drain(&mut alice), drain(&mut bob)), (2, 2));
    }

    #[test]
    fn a_full_queue_drops_the_socket_and_a_rekeyed_socket_gets_the_old_routing() {
        let hub = Hub::new(2);
        let mut slowpoke = hub.register(&ws(), "s", reader("carol", "s3"), Filters::default());
        for seq in 1..=3 {
            hub.dispatch(&event(seq, None));
        }
        assert!(slowpoke.slow.load(Ordering::Relaxed));
        assert_eq!(hub.connected(), 0);
        assert_eq!(drain(&mut slowpoke), 2);

        // An event from socket "old" reaches only "old": once "new" takes that id, it gets it.
        let mut again = hub.register(&ws(), "new", reader("alice", "s1"), Filters::default());
        let mut from_old = event(4, None);
        from_old.source.socket_id = Some("old".into());
        hub.dispatch(&from_old);
        assert_eq!(drain(&mut again), 0);
        hub.rekey(&ws(), "new", "old").expect("rekey");
        hub.dispatch(&event(5, None));
        let mut from_old = event(6, None);
        from_old.source.socket_id = Some("old".into());
        hub.dispatch(&from_old);
        assert_eq!(drain(&mut again), 2);
        let _other = hub.register(&ws(), "x", reader("alice", "s1"), Filters::default());
        assert_eq!(
            hub.rekey(&ws(), "x", "old").err(),
            Some(Refused::Unknown),
            "old is connected here"
        );
        hub.leave(&ws(), "old");
        assert_eq!(hub.connected(), 1);
    }
}
