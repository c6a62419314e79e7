//! The sockets of this instance and the delivery of each event to them.
//!
//! One task per instance reads every event through a broker fan-out subscription and calls
//! [`Hub::dispatch`], which, under one lock, sends each socket of the event's workspace the
//! events it may read (the platform's read rule, [`EventReader::may_read`], then delivery
//! routing) and asked for. What a socket may read is replaced, or its delivery ended, when
//! its workspace's permissions change ([`Hub::reauthorize`], from [`super::recheck`]).
//!
//! Each socket has a bounded queue: a socket whose queue is full is a slow consumer, dropped
//! from the hub (its task sees the queue close and ends the connection with 4008; 4003 when
//! its access was revoked). A closed socket leaves the hub at once: what it misses until it
//! reconnects is replayed from the broker by whichever instance it reconnects to
//! ([`super::sockets`]), so nothing is buffered here for absent sockets.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use axum::extract::ws::Utf8Bytes;
use refract_core::model::Role;
use refract_core::permissions::reads::EventReader;
use refract_core::{Event, EventId, WorkspaceId};
use refract_http::Caller;
use serde_json::json;
use tokio::sync::{broadcast, mpsc};

use super::filters::Filters;

/// Who a socket reads as: its reader (the read rule's input, [`EventReader::may_read`]), the
/// role its emits act with, and the caller it was authenticated as, whose access is decided
/// again when the workspace's permissions change ([`super::recheck`]).
#[derive(Debug, Clone)]
pub struct Reader {
    /// What the socket's principal may read in the workspace, and who it is for routing.
    pub read: EventReader,
    /// The workspace role its emits act with.
    pub role: Role,
    /// The authenticated caller, checked again on permission changes.
    pub caller: Caller,
}

impl Reader {
    /// Whether the socket `socket_id` of this reader may receive `event` (§8 Delivery): the
    /// reader may read it, and routing lets it through — an event targeted at users, sessions
    /// or a topic reaches only them; an event from a socket goes back to that socket only,
    /// unless `target.currentSocket` is false. `doc` caches the event as JSON.
    pub(crate) fn may_read(
        &self,
        socket_id: &str,
        event: &Event,
        doc: &mut Option<serde_json::Value>,
    ) -> bool {
        let target = event.target.as_ref();
        if let Some(from) = &event.source.socket_id
            && target.and_then(|t| t.current_socket) != Some(false)
            && from != socket_id
        {
            return false;
        }
        let routed = match target {
            Some(t) if t.user_id.is_some() || t.session_id.is_some() || t.user_topic.is_some() => {
                (t.user_id.is_some() && t.user_id == self.read.user)
                    || (t.session_id.is_some() && t.session_id == self.read.session)
                    || t.user_topic
                        .as_ref()
                        .is_some_and(|topic| self.read.topics.contains(topic))
            }
            _ => true,
        };
        routed && self.read.may_read(event, doc)
    }
}

/// Why the hub stopped delivering to a socket (its queue is closed then).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Its queue was full: a slow consumer.
    Slow,
    /// The caller lost its access to the workspace.
    Revoked,
}

/// A connected socket as the hub sees it.
struct Live {
    reader: Reader,
    filters: Filters,
    queue: mpsc::Sender<Frame>,
    ended: Arc<OnceLock<Ended>>,
}

/// One `event` frame for a socket, with the event's id (`(ms, seq)`, ordered within the
/// workspace) so a socket can skip what a reconnect replay already sent.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The event's id as `(ms, seq)`.
    pub id: (u64, u64),
    /// The frame as sent, serialized once for every socket it goes to.
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
    /// The socket's frames, in order; closed when the hub drops the socket.
    pub queue: mpsc::Receiver<Frame>,
    /// Set when the hub dropped the socket, and why.
    pub ended: Arc<OnceLock<Ended>>,
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
    /// An empty hub whose sockets each queue at most `queue_len` frames (at least 1).
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
        let ended = Arc::new(OnceLock::new());
        let mut rooms = self.rooms();
        let room = rooms.entry(workspace.clone()).or_default();
        room.live.insert(
            id.to_string(),
            Live {
                reader,
                filters,
                queue,
                ended: ended.clone(),
            },
        );
        Registration {
            queue: rx,
            ended,
            last_id: room.last_id.clone(),
        }
    }

    /// The reader of socket `id`, as last decided.
    pub fn reader(&self, workspace: &WorkspaceId, id: &str) -> Option<Reader> {
        self.rooms()
            .get(workspace)
            .and_then(|r| r.live.get(id))
            .map(|l| l.reader.clone())
    }

    /// The role socket `id` emits with, as last decided.
    pub fn role(&self, workspace: &WorkspaceId, id: &str) -> Option<Role> {
        self.rooms()
            .get(workspace)
            .and_then(|r| r.live.get(id))
            .map(|l| l.reader.role)
    }

    /// The sockets of `workspace` and the callers they were opened by.
    pub fn callers(&self, workspace: &WorkspaceId) -> Vec<(String, Caller)> {
        self.rooms()
            .get(workspace)
            .map(|r| {
                r.live
                    .iter()
                    .map(|(id, l)| (id.clone(), l.reader.caller.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Socket `id` emits as `role` and reads as `read` from now on; `None` ends its delivery
    /// ([`Ended::Revoked`]).
    pub fn reauthorize(
        &self,
        workspace: &WorkspaceId,
        id: &str,
        access: Option<(Role, EventReader)>,
    ) {
        let mut rooms = self.rooms();
        let Some(room) = rooms.get_mut(workspace) else {
            return;
        };
        match access {
            Some((role, read)) => {
                if let Some(live) = room.live.get_mut(id) {
                    live.reader.role = role;
                    live.reader.read = read;
                }
            }
            None => {
                if let Some(live) = room.live.remove(id) {
                    let _ = live.ended.set(Ended::Revoked);
                }
            }
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
                    let _ = live.ended.set(Ended::Slow);
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
    if !reader.may_read(socket_id, event, doc) {
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
    use std::collections::HashSet;

    use refract_core::permissions::Grant;
    use refract_core::{CorrelationId, EventType, SessionId, Target, UserId};
    use serde_json::{Map, json};

    use super::*;

    fn ws() -> WorkspaceId {
        WorkspaceId::new("w1").expect("ws")
    }

    fn reader(user: &str, session: &str) -> Reader {
        let grant = Grant {
            role: Some(Role::Viewer),
            ..Grant::default()
        };
        reader_with(user, session, grant, json!({}))
    }

    fn reader_with(user: &str, session: &str, grant: Grant, rules: serde_json::Value) -> Reader {
        let user = UserId::new(user).expect("user");
        let session = SessionId::new(session).expect("session");
        let caller = Caller {
            user_id: Some(user.clone()),
            session_id: Some(session.clone()),
            correlation_id: CorrelationId::generate(),
            superadmin: false,
            api_key: None,
            auth_data: None,
        };
        let read = EventReader {
            grant,
            rules: serde_json::from_value(rules).expect("rules"),
            user: Some(user),
            session: Some(session),
            topics: HashSet::new(),
        };
        Reader {
            read,
            role: Role::Viewer,
            caller,
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
        assert_eq!(slowpoke.ended.get(), Some(&Ended::Slow));
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

    #[test]
    fn a_custom_role_receives_only_what_its_rules_let_it_read_until_revoked() {
        let hub = Hub::new(10);
        let grant = Grant {
            custom_roles: vec!["support".into()],
            ..Grant::default()
        };
        let rules = json!({
            "roles": {"support": {}},
            "rules": [{"role": "support", "action": "read", "subject": "events", "conditions": {"type": "tickets.opened"}}]
        });
        let mut sam = hub.register(
            &ws(),
            "s",
            reader_with("sam", "s1", grant, rules),
            Filters::default(),
        );
        let typed = |seq: u64, ty: &str| {
            let mut e = event(seq, None);
            e.event_type = EventType::new(ty).expect("type");
            e
        };
        hub.dispatch(&typed(1, "tickets.opened"));
        hub.dispatch(&typed(2, "payroll.paid"));
        hub.dispatch(&typed(3, "runtime.contexts.updated"));
        assert_eq!(drain(&mut sam), 1);

        hub.reauthorize(&ws(), "s", None);
        hub.dispatch(&typed(4, "tickets.opened"));
        assert_eq!(drain(&mut sam), 0);
        assert_eq!(sam.ended.get(), Some(&Ended::Revoked));
        assert_eq!(hub.connected(), 0);
    }
}
