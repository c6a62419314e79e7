//! `GET /v2/workspaces/{id}/events/ws`: the upgrade (the gateway authenticated it and set the
//! trusted identity headers) and the frame protocol of one socket.
//!
//! Client frames: `subscribe {filters}`, `emit {events}`, `reconnect {socketId, lastEventId?}`,
//! `ping`; each may carry `ref`, echoed in its reply. Server frames: `hello`, `subscribed`,
//! `event`, `emitted`, `reconnected`, `pong`, `error`.

use std::collections::HashSet;
use std::time::Instant;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use refract_core::{EventId, UserId, WorkspaceId};
use refract_http::{ApiError, Caller};
use serde::Deserialize;
use serde_json::{Value, json};

use super::filters::{FilterError, Filters, RawFilters};
use super::hub::{Ended, Reader, Refused};
use super::recheck;
use super::sockets::{self, SocketRecord};
use crate::config::{EMIT_BURST, EMIT_RATE, MAX_FRAME, SOCKET_QUEUE, SOCKET_RENEW};
use crate::emit::{EmitEvent, Emitter, emit};
use crate::{EventsState, api};

/// The optional subprotocol, echoed when offered.
pub const PROTOCOL: &str = "refract.events.v1";

/// Close codes (§8).
const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_POLICY: u16 = 1008;
const CLOSE_UNAUTHENTICATED: u16 = 4001;
const CLOSE_FORBIDDEN: u16 = 4003;
const CLOSE_SLOW: u16 = 4008;

/// Longest `ref` echoed back.
const MAX_REF: usize = 64;

/// `GET …/events/ws`: the live event stream over a WebSocket (members).
#[utoipa::path(get, path = "/v2/workspaces/{workspace_id}/events/ws", tag = "events",
    params(refract_http::openapi::InWorkspace, ("types" = Option<String>, Query, description = "Comma-separated event types to receive.")),
    responses((status = 101, description = "Switching to the WebSocket protocol (400 when the request is not an upgrade).")))]
pub(crate) async fn upgrade(
    State(state): State<EventsState>,
    caller: Caller,
    Path(workspace): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let (workspace, role, read) = api::member(&state, &caller, &workspace).await?;
    let filters = Filters::from_query(&params).map_err(invalid_query)?;
    let ws = ws.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            format!("a WebSocket upgrade is expected: {e}"),
        )
    })?;
    let user = caller.require_user()?.clone();
    let reader = Reader {
        read,
        role,
        caller: caller.clone(),
    };
    let offered = headers
        .get(axum::http::header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|p| p.trim() == PROTOCOL));
    let ws = if offered {
        ws.protocols([PROTOCOL])
    } else {
        ws
    };
    Ok(ws
        .max_message_size(MAX_FRAME)
        .max_frame_size(MAX_FRAME)
        .on_upgrade(move |socket| {
            let connection = Connection {
                state,
                caller,
                workspace,
                id: new_socket_id(),
                user,
                filters: filters.to_json(),
                sent_early: Some(HashSet::new()),
                skip_upto: None,
                last_sent: None,
            };
            connection.run(socket, reader, filters)
        }))
}

fn invalid_query(e: FilterError) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "InvalidQuery",
        format!("{}: {}", e.path, e.reason),
    )
    .with_details(json!({ "path": e.path, "reason": e.reason }))
}

fn new_socket_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A frame from the client.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
enum ClientFrame {
    Subscribe {
        #[serde(default)]
        filters: Option<RawFilters>,
    },
    Emit {
        events: Vec<EmitEvent>,
    },
    #[serde(rename_all = "camelCase")]
    Reconnect {
        socket_id: String,
        #[serde(default)]
        last_event_id: Option<String>,
    },
    Ping,
    Auth {},
}

/// Inbound `emit` budget: a token bucket (§14.1, 20/s, burst 50).
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn take(&mut self) -> bool {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.at).as_secs_f64() * EMIT_RATE).min(EMIT_BURST);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

struct Connection {
    state: EventsState,
    caller: Caller,
    workspace: WorkspaceId,
    /// This socket's id; a `reconnect` replaces it with the previous socket's.
    id: String,
    /// The user the socket was opened by (its record's owner).
    user: UserId,
    /// The current filters, normalized (for the socket record).
    filters: Value,
    /// Ids of the events sent live before a `reconnect` (a replay leaves them out); `None`
    /// once a reconnect happened, or after [`SOCKET_QUEUE`] of them (a client that reconnects
    /// that late accepts duplicates).
    sent_early: Option<HashSet<(u64, u64)>>,
    /// Live frames up to this id duplicate the last replay.
    skip_upto: Option<(u64, u64)>,
    /// The newest event sent.
    last_sent: Option<(u64, u64)>,
}

impl Connection {
    async fn run(mut self, socket: WebSocket, reader: Reader, filters: Filters) {
        let hub = self.state.hub.clone();
        let mut reg = hub.register(&self.workspace, &self.id, reader, filters);
        let started = reg.last_id.clone();
        let (mut sink, mut stream) = socket.split();
        let hello = json!({
            "type": "hello",
            "socketId": self.id,
            "sessionId": self.caller.session_id,
            "userId": self.caller.user_id,
            "heartbeatMs": self.state.config.heartbeat.as_millis() as u64,
            "protocol": PROTOCOL,
            "lastEventId": started,
        });
        self.save_record(None).await;
        let mut bucket = Bucket {
            tokens: EMIT_BURST,
            at: Instant::now(),
        };
        let mut heartbeat = tokio::time::interval(self.state.config.heartbeat);
        heartbeat.tick().await;
        let mut seen = Instant::now();
        let mut renewed = Instant::now();
        let mut close: Option<(u16, &'static str)> = None;
        if sink.send(text(&hello)).await.is_ok() {
            loop {
                tokio::select! {
                    frame = reg.queue.recv() => match frame {
                        Some(frame) => {
                            if self.skip_upto.is_some_and(|upto| frame.id <= upto) {
                                continue;
                            }
                            if sink.send(Message::Text(frame.text)).await.is_err() {
                                break;
                            }
                            self.last_sent = Some(frame.id);
                            if let Some(sent) = self.sent_early.as_mut() {
                                sent.insert(frame.id);
                                if sent.len() > SOCKET_QUEUE {
                                    self.sent_early = None;
                                }
                            }
                        }
                        None => {
                            close = match reg.ended.get() {
                                Some(Ended::Slow) => Some((CLOSE_SLOW, "slow consumer")),
                                Some(Ended::Revoked) => Some((CLOSE_FORBIDDEN, "access revoked")),
                                None => None,
                            };
                            break;
                        }
                    },
                    msg = stream.next() => {
                        seen = Instant::now();
                        let Some(Ok(msg)) = msg else { break };
                        let replies = match msg {
                            Message::Text(t) => self.frame(t.as_str(), &mut bucket).await,
                            Message::Binary(_) => vec![error_frame(None, "InvalidFrame", "frames are JSON text", None)],
                            Message::Close(_) => break,
                            Message::Ping(_) | Message::Pong(_) => Vec::new(),
                        };
                        let mut failed = false;
                        for reply in replies {
                            if sink.send(reply).await.is_err() {
                                failed = true;
                                break;
                            }
                        }
                        if failed {
                            break;
                        }
                    },
                    _ = heartbeat.tick() => {
                        if seen.elapsed() > self.state.config.idle_timeout {
                            close = Some((CLOSE_POLICY, "no pong"));
                            break;
                        }
                        if sink.send(Message::Ping(Default::default())).await.is_err() {
                            break;
                        }
                        if let Some(session) = &self.caller.session_id
                            && !recheck::session_alive(self.state.cache.as_ref(), session).await
                        {
                            close = Some((CLOSE_UNAUTHENTICATED, "session ended"));
                            break;
                        }
                        if renewed.elapsed() >= SOCKET_RENEW {
                            renewed = Instant::now();
                            sockets::renew(self.state.cache.as_ref(), &self.id).await;
                        }
                    },
                }
            }
        }
        hub.leave(&self.workspace, &self.id);
        let position = self
            .last_sent
            .map(|(ms, seq)| EventId::from_parts(ms, seq))
            .or(started);
        self.save_record(position).await;
        let (code, reason) = close.unwrap_or((CLOSE_GOING_AWAY, "closing"));
        let _ = sink
            .send(Message::Close(Some(CloseFrame {
                code,
                reason: Utf8Bytes::from_static(reason),
            })))
            .await;
    }

    /// Writes this socket's record (`position`: where it stopped, when it closes).
    async fn save_record(&self, position: Option<EventId>) {
        let record = SocketRecord {
            workspace_id: self.workspace.clone(),
            user_id: self.user.clone(),
            session_id: self.caller.session_id.clone(),
            filters: self.filters.clone(),
            last_event_id: position,
        };
        sockets::save(self.state.cache.as_ref(), &self.id, &record).await;
    }

    /// Handles one client frame; returns the frames to send back, in order.
    async fn frame(&mut self, raw: &str, bucket: &mut Bucket) -> Vec<Message> {
        let value: Value = match serde_json::from_str(raw) {
            Ok(v) => v,
            Err(e) => {
                return vec![error_frame(
                    None,
                    "InvalidFrame",
                    &format!("not JSON: {e}"),
                    None,
                )];
            }
        };
        let reference = value
            .get("ref")
            .and_then(Value::as_str)
            .map(|r| r.chars().take(MAX_REF).collect::<String>());
        let mut body = value;
        if let Some(map) = body.as_object_mut() {
            map.remove("ref");
        }
        let frame: ClientFrame = match serde_json::from_value(body) {
            Ok(f) => f,
            Err(e) => return vec![error_frame(reference, "InvalidFrame", &e.to_string(), None)],
        };
        match frame {
            ClientFrame::Ping => vec![reply(reference, json!({ "type": "pong" }))],
            ClientFrame::Auth {} => vec![error_frame(
                reference,
                "InvalidFrame",
                "this socket is already authenticated",
                None,
            )],
            ClientFrame::Subscribe { filters } => match Filters::parse(filters.unwrap_or_default())
            {
                Ok(filters) => {
                    let normalized = filters.to_json();
                    self.state
                        .hub
                        .set_filters(&self.workspace, &self.id, filters);
                    self.filters = normalized.clone();
                    self.save_record(None).await;
                    vec![reply(
                        reference,
                        json!({ "type": "subscribed", "filters": normalized }),
                    )]
                }
                Err(e) => {
                    let details = json!({ "path": e.path, "reason": e.reason });
                    vec![error_frame(
                        reference,
                        "InvalidQuery",
                        &format!("{}: {}", e.path, e.reason),
                        Some(details),
                    )]
                }
            },
            ClientFrame::Emit { events } => {
                if !bucket.take() {
                    return vec![error_frame(
                        reference,
                        "TooManyRequests",
                        "at most 20 emits per second per socket",
                        None,
                    )];
                }
                // The role as last decided: a re-check may have lowered it since the upgrade.
                let Some(role) = self.state.hub.role(&self.workspace, &self.id) else {
                    return vec![error_frame(
                        reference,
                        "ForbiddenError",
                        "this socket lost its access",
                        None,
                    )];
                };
                let who = Emitter {
                    caller: &self.caller,
                    workspace: &self.workspace,
                    role,
                    socket_id: Some(&self.id),
                };
                match emit(&self.state, &who, events).await {
                    Ok(published) => {
                        let ids: Vec<_> = published.iter().map(|e| e.id.clone()).collect();
                        vec![reply(reference, json!({ "type": "emitted", "ids": ids }))]
                    }
                    Err(e) => vec![api_error_frame(reference, e)],
                }
            }
            ClientFrame::Reconnect {
                socket_id,
                last_event_id,
            } => {
                let after = match last_event_id.map(EventId::new).transpose() {
                    Ok(after) => after,
                    Err(e) => {
                        return vec![error_frame(
                            reference,
                            "InvalidFrame",
                            &format!("lastEventId: {e}"),
                            None,
                        )];
                    }
                };
                self.reconnect(reference, socket_id, after).await
            }
        }
    }

    /// `reconnect`: takes the id of a previous socket of the same session, wherever it was
    /// connected, and replays what it missed ([`sockets`]).
    async fn reconnect(
        &mut self,
        reference: Option<String>,
        old: String,
        after: Option<EventId>,
    ) -> Vec<Message> {
        let unknown = || {
            vec![error_frame(
                reference.clone(),
                "ForbiddenError",
                "no such socket was seen recently",
                None,
            )]
        };
        if old == self.id {
            return unknown();
        }
        let record = match sockets::load(self.state.cache.as_ref(), &old).await {
            Ok(Some(record)) if record.workspace_id == self.workspace => record,
            Ok(_) => return unknown(),
            Err(e) => {
                return vec![api_error_frame(
                    reference.clone(),
                    ApiError::from_kind(e.kind(), e),
                )];
            }
        };
        if record.user_id != self.user || record.session_id != self.caller.session_id {
            return vec![error_frame(
                reference.clone(),
                "ForbiddenError",
                "that socket belonged to another session",
                None,
            )];
        }
        match self.state.hub.rekey(&self.workspace, &self.id, &old) {
            Ok(()) => {}
            Err(Refused::Unknown | Refused::NotYours) => return unknown(),
        }
        let previous = std::mem::replace(&mut self.id, old);
        let sent = self.sent_early.take().unwrap_or_default();
        // The reader as last decided: a re-check may have narrowed it since the upgrade.
        let reader = self.state.hub.reader(&self.workspace, &self.id);
        let replay = match (after.or_else(|| record.last_event_id.clone()), reader) {
            (Some(after), Some(reader)) => {
                let filters = record.filters();
                match sockets::replay(
                    &self.state,
                    &self.workspace,
                    &reader,
                    &self.id,
                    &filters,
                    &after,
                    &sent,
                )
                .await
                {
                    Ok(replay) => replay,
                    Err(error) => {
                        tracing::warn!(%error, socket_id = %self.id, "events: reconnect replay failed");
                        sockets::Replay::default()
                    }
                }
            }
            _ => sockets::Replay::default(),
        };
        self.skip_upto = replay.upto.max(self.skip_upto);
        sockets::forget(self.state.cache.as_ref(), &previous).await;
        self.save_record(None).await;
        let replayed = replay.frames.len();
        let mut out: Vec<Message> = replay.frames.into_iter().map(Message::Text).collect();
        out.push(reply(reference, json!({ "type": "reconnected", "socketId": self.id, "replayed": replayed, "complete": replay.complete })));
        out
    }
}

fn text(v: &Value) -> Message {
    Message::Text(Utf8Bytes::from(v.to_string()))
}

fn reply(reference: Option<String>, mut v: Value) -> Message {
    if let (Some(r), Some(map)) = (reference, v.as_object_mut()) {
        map.insert("ref".into(), Value::String(r));
    }
    text(&v)
}

fn error_frame(
    reference: Option<String>,
    code: &str,
    message: &str,
    details: Option<Value>,
) -> Message {
    let mut v = json!({ "type": "error", "error": code, "message": message });
    if let Some(d) = details {
        v["details"] = d;
    }
    reply(reference, v)
}

fn api_error_frame(reference: Option<String>, e: ApiError) -> Message {
    error_frame(reference, e.code, &e.message, e.details)
}
