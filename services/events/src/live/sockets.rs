//! Reconnection across the cluster (`spec/http-api.md` §8 Reconnection).
//!
//! A client that loses its socket — the network dropped, or the events instance serving it
//! died, even by SIGKILL with nothing written on the way out — reconnects through any gateway
//! to any events instance and sends `reconnect {socketId, lastEventId}`. Nothing about the old
//! socket has to live in the instance that served it:
//!
//! - **The socket record** ([`SocketRecord`], cache key `socket:<id>`, [`SOCKET_LIFETIME`]):
//!   written when the socket opens and when its filters change, renewed while it lives, and
//!   given the socket's last delivered position when it closes gracefully. The instance taking
//!   the reconnect checks the old socket's workspace and owner (same user and session) there.
//! - **Replay from the broker** ([`replay`]): the gap is read back from the workspace's
//!   partition stream, which every instance shares, and filtered as the old socket would have
//!   been: its id (so events from it, `currentSocket` routing, still reach it), its filters,
//!   and the reader's permissions. No instance buffers anything for absent sockets, so the
//!   instance can die without losing the gap, nothing is written per event per absent socket,
//!   and events not yet in history (or `persist: false`) are included. Bounds: [`REPLAY_MAX`]
//!   events, [`REPLAY_AGE`], [`REPLAY_SCAN`] entries read, and what the stream still holds (its
//!   maximum length; a Redis restart empties it); past any, `complete` is false and the client
//!   pages `GET …/events`.
//!
//! Exactly once around the switch: the connection takes the old id in the hub *before* the
//! replay reads the stream, so every event is in the read (published before), queued live
//! (dispatched after), or both — and then the live copy, whose id is not newer than the end of
//! the read, is skipped by the connection. Events the new socket received live before its
//! `reconnect` are left out of the replay.
//!
//! Without `lastEventId` the replay starts where the old socket's record says it stopped; a
//! socket whose instance died has no such position, so nothing is replayed and `complete` is
//! false. The embedded mode runs the same code on the in-memory cache and broker.
//!
//! Two live connections may hold one id only on different instances (a client that reconnects
//! while its old connection still looks open elsewhere); each then delivers to its own, which
//! only the session that owns the id can cause.

use std::collections::HashSet;

use axum::extract::ws::Utf8Bytes;
use chrono::Utc;
use refract_broker::BrokerError;
use refract_core::{EventId, SessionId, UserId, WorkspaceId};
use refract_storage::{Cache, CacheKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::filters::{Filters, RawFilters};
use super::hub::{Reader, event_frame, wants};
use crate::EventsState;
use crate::config::{REPLAY_AGE, REPLAY_MAX, REPLAY_PAGE, REPLAY_SCAN, SOCKET_LIFETIME};

/// What any instance knows of a socket, in the cache.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SocketRecord {
    /// The workspace the socket reads.
    pub workspace_id: WorkspaceId,
    /// The user it was authenticated as: only they may adopt it on `reconnect`.
    pub user_id: UserId,
    /// The session it was opened with, if any: a `reconnect` must come from the same one.
    #[serde(default)]
    pub session_id: Option<SessionId>,
    /// The socket's filters, normalized (`subscribed.filters`).
    #[serde(default)]
    pub filters: Value,
    /// The newest event the socket was sent (or its start position), set when it closed
    /// gracefully.
    #[serde(default)]
    pub last_event_id: Option<EventId>,
}

impl SocketRecord {
    /// The old socket's filters; a record that no longer parses (written by another version)
    /// replays everything readable rather than nothing.
    pub fn filters(&self) -> Filters {
        serde_json::from_value::<RawFilters>(self.filters.clone())
            .ok()
            .and_then(|raw| Filters::parse(raw).ok())
            .unwrap_or_default()
    }
}

/// Writes the record of socket `id` for [`SOCKET_LIFETIME`]. A failing cache only costs the
/// ability to reconnect to this socket, so it is logged, not fatal.
pub async fn save(cache: &dyn Cache, id: &str, record: &SocketRecord) {
    let Ok(bytes) = serde_json::to_vec(record) else {
        return;
    };
    if let Err(error) = cache
        .set(&CacheKey::socket(id), &bytes, Some(SOCKET_LIFETIME))
        .await
    {
        tracing::warn!(%error, socket_id = %id, "events: socket record not saved; a reconnect to it may be refused");
    }
}

/// Renews the record of socket `id` (a long-lived connection).
pub async fn renew(cache: &dyn Cache, id: &str) {
    if let Err(error) = cache.expire(&CacheKey::socket(id), SOCKET_LIFETIME).await {
        tracing::warn!(%error, socket_id = %id, "events: socket record not renewed");
    }
}

/// Drops the record of socket `id` (the id a reconnecting socket gave up for an old one).
pub async fn forget(cache: &dyn Cache, id: &str) {
    let _ = cache.delete(&CacheKey::socket(id)).await;
}

/// The record of socket `id`, if it was seen within [`SOCKET_LIFETIME`].
pub async fn load(
    cache: &dyn Cache,
    id: &str,
) -> Result<Option<SocketRecord>, refract_storage::StorageError> {
    Ok(cache
        .get(&CacheKey::socket(id))
        .await?
        .and_then(|bytes| serde_json::from_slice(&bytes).ok()))
}

/// What a `reconnect` sends before its ack.
#[derive(Debug, Default)]
pub struct Replay {
    /// The `event` frames of the gap, oldest first.
    pub frames: Vec<Utf8Bytes>,
    /// False when the gap was larger than the bounds, or the stream no longer held it.
    pub complete: bool,
    /// The newest entry read: live frames up to it are duplicates of the read.
    pub upto: Option<(u64, u64)>,
}

/// Reads the events of `workspace` after `after` that socket `socket_id` of `reader` with
/// `filters` would have received, except those in `sent` (already delivered live).
pub async fn replay(
    state: &EventsState,
    workspace: &WorkspaceId,
    reader: &Reader,
    socket_id: &str,
    filters: &Filters,
    after: &EventId,
    sent: &HashSet<(u64, u64)>,
) -> Result<Replay, BrokerError> {
    let oldest = Utc::now()
        - chrono::Duration::from_std(REPLAY_AGE).unwrap_or_else(|_| chrono::Duration::minutes(10));
    let mut out = Replay {
        complete: true,
        ..Replay::default()
    };
    let mut cursor = after.clone();
    let mut scanned = 0;
    loop {
        let page = state
            .broker
            .read_after(workspace, &cursor, REPLAY_PAGE)
            .await?;
        if page.truncated && scanned == 0 {
            out.complete = false;
        }
        for event in &page.events {
            let Some(id) = event.id.as_ref() else {
                continue;
            };
            out.upto = Some(id.parts());
            let mut doc = None;
            if sent.contains(&id.parts()) || !wants(reader, filters, socket_id, event, &mut doc) {
                continue;
            }
            if event.created_at < oldest {
                out.complete = false;
                continue;
            }
            if out.frames.len() == REPLAY_MAX {
                out.complete = false;
                return Ok(out);
            }
            out.frames.push(event_frame(event));
        }
        scanned += REPLAY_PAGE;
        match page.next {
            Some(next) if scanned < REPLAY_SCAN => {
                out.upto = Some(next.parts());
                cursor = next;
            }
            Some(_) => {
                out.complete = false;
                return Ok(out);
            }
            None => return Ok(out),
        }
    }
}
