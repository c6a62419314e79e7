//! Reading from Redis Streams: group and fan-out subscribers, acknowledgement, reclaim and
//! dead-lettering.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use redis::streams::{StreamClaimReply, StreamId, StreamPendingCountReply, StreamReadReply};
use refract_core::{Event, EventId};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::{RESPONSE_TIMEOUT, Shared, connection};
use crate::api::Acker;
use crate::{BrokerError, Delivery, Mode, Subscriber, Subscription, TypeFilter, keys};

/// First wait after a failed read; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between two attempts while Redis is unreachable.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

pub(crate) struct RedisSubscriber {
    /// Deliveries read and not yet handed out.
    buffer: VecDeque<Delivery>,
    /// The next read from Redis, kept here rather than in a `next` call, because a caller may
    /// give up on `next` at any moment (a timeout, a `select!` such as the events service's
    /// batch window) while the read waits on Redis. Redis hands the entries that arrive to
    /// that read all the same and records them as pending for this consumer: dropped with the
    /// call, they would sit unseen until reclaimed claim-idle later, as redeliveries. Kept,
    /// the read is resumed by the next call. Lazy: nothing is read while `buffer` holds some.
    read: Pin<Box<dyn Future<Output = (Reader, VecDeque<Delivery>)> + Send>>,
    /// The group's heartbeat (none for fan-out), stopped with the subscriber.
    heartbeat: Option<AbortHandle>,
}

/// Everything a read needs, owned by the read in progress.
struct Reader {
    shared: Arc<Shared>,
    conn: ConnectionManager,
    filter: TypeFilter,
    kind: Kind,
    /// What the read in progress has taken so far.
    buffer: VecDeque<Delivery>,
    backoff: Duration,
}

enum Kind {
    Group {
        state: Arc<GroupState>,
        next_reclaim: Instant,
    },
    FanOut {
        cursors: Vec<String>,
    },
}

/// What a group subscriber shares with its deliveries' ackers and its heartbeat.
struct GroupState {
    group: String,
    consumer: String,
    failures_key: String,
    /// Entries handed out and not yet settled, as (partition, entry id).
    inflight: Mutex<HashSet<(usize, String)>>,
}

impl GroupState {
    fn inflight(&self) -> MutexGuard<'_, HashSet<(usize, String)>> {
        self.inflight.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl RedisSubscriber {
    pub(crate) async fn start(
        shared: Arc<Shared>,
        subscription: Subscription,
    ) -> Result<Self, BrokerError> {
        let connect_err = |source| BrokerError::Connect {
            url: shared.url.clone(),
            source,
        };
        let conn = connection(&shared.client, shared.config.block + RESPONSE_TIMEOUT)
            .await
            .map_err(connect_err)?;
        let mut heartbeat_task = None;
        let kind = match subscription.mode {
            Mode::Group { group, consumer } => {
                create_groups(&shared, &group, "$").await?;
                let state = Arc::new(GroupState {
                    failures_key: keys::failures(&shared.config.namespace, &group),
                    group,
                    consumer,
                    inflight: Mutex::new(HashSet::new()),
                });
                heartbeat_task = Some(
                    tokio::spawn(heartbeat(shared.clone(), Arc::downgrade(&state))).abort_handle(),
                );
                Kind::Group {
                    state,
                    next_reclaim: Instant::now(),
                }
            }
            Mode::FanOut => {
                let mut cursors = Vec::with_capacity(shared.streams.len());
                for stream in &shared.streams {
                    let last: StreamRangeIds = redis::cmd("XREVRANGE")
                        .arg(stream)
                        .arg("+")
                        .arg("-")
                        .arg("COUNT")
                        .arg(1)
                        .query_async(&mut shared.conn.clone())
                        .await
                        .map_err(BrokerError::command("XREVRANGE"))?;
                    cursors.push(
                        last.0
                            .into_iter()
                            .next()
                            .unwrap_or_else(|| "0-0".to_string()),
                    );
                }
                Kind::FanOut { cursors }
            }
        };
        let reader = Reader {
            shared,
            conn,
            filter: subscription.filter,
            kind,
            buffer: VecDeque::new(),
            backoff: MIN_BACKOFF,
        };
        Ok(Self {
            buffer: VecDeque::new(),
            read: Box::pin(reader.read()),
            heartbeat: heartbeat_task,
        })
    }
}

impl Reader {
    /// One read (retrying a failed one after a backoff): returns the reader and what it took,
    /// possibly nothing (the blocking read timed out).
    async fn read(mut self) -> (Self, VecDeque<Delivery>) {
        match self.fill().await {
            Ok(()) => self.backoff = MIN_BACKOFF,
            Err(e) if e.code() == Some("NOGROUP") => {
                // Redis lost the group (a restart without persistence): recreate it from the
                // start of the new streams, so nothing published since is skipped.
                if let Kind::Group { state, .. } = &self.kind {
                    tracing::warn!(group = %state.group, "consumer group vanished; recreating it");
                    if let Err(e) = create_groups(&self.shared, &state.group, "0").await {
                        tracing::warn!(error = %e, "recreating the consumer group failed");
                        self.sleep_backoff().await;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(url = %self.shared.url, error = %e, retry_in_ms = self.backoff.as_millis() as u64, "broker read failed; retrying");
                self.sleep_backoff().await;
            }
        }
        let taken = std::mem::take(&mut self.buffer);
        (self, taken)
    }

    async fn sleep_backoff(&mut self) {
        tokio::time::sleep(self.backoff).await;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }

    async fn fill(&mut self) -> Result<(), redis::RedisError> {
        match &mut self.kind {
            Kind::FanOut { cursors } => {
                let reply = read(&mut self.conn, &self.shared, None, cursors).await?;
                for stream in reply.keys {
                    let Some(p) = self.shared.streams.iter().position(|s| *s == stream.key) else {
                        continue;
                    };
                    for entry in stream.ids {
                        cursors[p] = entry.id.clone();
                        if !type_matches(&self.filter, &entry) {
                            continue;
                        }
                        match parse(&entry) {
                            Ok((event, _)) => self.buffer.push_back(Delivery {
                                event: Arc::new(event),
                                attempt: 1,
                                acker: None,
                            }),
                            Err(error) => {
                                tracing::warn!(id = %entry.id, %error, "skipping a malformed entry")
                            }
                        }
                    }
                }
                Ok(())
            }
            Kind::Group {
                state,
                next_reclaim,
                ..
            } => {
                let state = state.clone();
                if Instant::now() >= *next_reclaim {
                    *next_reclaim = Instant::now() + self.shared.config.claim_idle / 2;
                    self.reclaim(&state).await?;
                    if !self.buffer.is_empty() {
                        return Ok(());
                    }
                }
                let ids = vec![">".to_string(); self.shared.streams.len()];
                let reply = read(&mut self.conn, &self.shared, Some(&state), &ids).await?;
                for stream in reply.keys {
                    let Some(p) = self.shared.streams.iter().position(|s| *s == stream.key) else {
                        continue;
                    };
                    let mut skipped = Vec::new();
                    for entry in stream.ids {
                        if let Some(id) = self.accept(&state, p, entry, 1).await? {
                            skipped.push(id);
                        }
                    }
                    if !skipped.is_empty() {
                        redis::cmd("XACK")
                            .arg(&stream.key)
                            .arg(&state.group)
                            .arg(&skipped)
                            .query_async::<()>(&mut self.shared.conn.clone())
                            .await?;
                    }
                }
                Ok(())
            }
        }
    }

    /// Queues a delivery for `entry`, dead-letters it when it is not an event, or returns its
    /// id when the filter skips it (the caller acknowledges those in one batch).
    async fn accept(
        &mut self,
        state: &Arc<GroupState>,
        p: usize,
        entry: StreamId,
        attempt: u32,
    ) -> Result<Option<String>, redis::RedisError> {
        if !type_matches(&self.filter, &entry) {
            return Ok(Some(entry.id));
        }
        match parse(&entry) {
            Ok((event, raw)) => {
                state.inflight().insert((p, entry.id.clone()));
                let acker = RedisAcker {
                    shared: self.shared.clone(),
                    state: state.clone(),
                    partition: p,
                    id: entry.id,
                    raw,
                    attempt,
                };
                self.buffer.push_back(Delivery {
                    event: Arc::new(event),
                    attempt,
                    acker: Some(Box::new(acker)),
                });
            }
            Err(error) => {
                let raw = entry
                    .get::<String>("event")
                    .unwrap_or_else(|| format!("{:?}", entry.map));
                dead_letter(&self.shared, state, p, &entry.id, &raw, &error, attempt).await?;
            }
        }
        Ok(None)
    }

    /// Takes over entries of this group that stayed pending longer than the claim idle time
    /// (their consumer died, or their handler failed), dead-lettering those already delivered
    /// `max_deliveries` times.
    async fn reclaim(&mut self, state: &Arc<GroupState>) -> Result<(), redis::RedisError> {
        let shared = self.shared.clone();
        let config = &shared.config;
        let min_idle = config.claim_idle.as_millis() as usize;
        let mut conn = self.shared.conn.clone();
        for p in 0..self.shared.streams.len() {
            let stream = self.shared.streams[p].clone();
            let pending: StreamPendingCountReply = redis::cmd("XPENDING")
                .arg(&stream)
                .arg(&state.group)
                .arg("-")
                .arg("+")
                .arg(config.batch)
                .query_async(&mut conn)
                .await?;
            let delivered: HashMap<String, usize> = {
                let inflight = state.inflight();
                pending
                    .ids
                    .into_iter()
                    .filter(|e| {
                        e.last_delivered_ms >= min_idle && !inflight.contains(&(p, e.id.clone()))
                    })
                    .map(|e| (e.id, e.times_delivered))
                    .collect()
            };
            if delivered.is_empty() {
                continue;
            }
            let claimed: StreamClaimReply = redis::cmd("XCLAIM")
                .arg(&stream)
                .arg(&state.group)
                .arg(&state.consumer)
                .arg(min_idle)
                .arg(delivered.keys().collect::<Vec<_>>())
                .query_async(&mut conn)
                .await?;
            let mut skipped = Vec::new();
            for entry in claimed.ids {
                let before = delivered.get(&entry.id).copied().unwrap_or(0) as u32;
                tracing::info!(id = %entry.id, group = %state.group, deliveries = before, "reclaimed a pending event");
                crate::observe::reclaimed(&state.group);
                if before >= config.max_deliveries {
                    let error: Option<String> = redis::cmd("HGET")
                        .arg(&state.failures_key)
                        .arg(failure_field(&stream, &entry.id))
                        .query_async(&mut conn)
                        .await?;
                    let error = error
                        .unwrap_or_else(|| format!("not acknowledged after {before} deliveries"));
                    let raw = entry.get::<String>("event").unwrap_or_default();
                    dead_letter(&self.shared, state, p, &entry.id, &raw, &error, before).await?;
                } else if let Some(id) = self.accept(state, p, entry, before + 1).await? {
                    skipped.push(id);
                }
            }
            if !skipped.is_empty() {
                redis::cmd("XACK")
                    .arg(&stream)
                    .arg(&state.group)
                    .arg(&skipped)
                    .query_async::<()>(&mut conn)
                    .await?;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Subscriber for RedisSubscriber {
    /// Cancel-safe: a call given up mid-read leaves the read in `self.read`, where the next
    /// call resumes it, so what Redis handed it is delivered, not stranded as pending.
    async fn next(&mut self) -> Result<Delivery, BrokerError> {
        loop {
            if let Some(delivery) = self.buffer.pop_front() {
                return Ok(delivery);
            }
            // No await between the read's end and its replacement: a cancelled call leaves
            // either the read in progress or its successor, never a finished read.
            let (reader, taken) = self.read.as_mut().await;
            self.buffer = taken;
            self.read = Box::pin(reader.read());
        }
    }
}

impl Drop for RedisSubscriber {
    fn drop(&mut self) {
        if let Some(heartbeat) = &self.heartbeat {
            heartbeat.abort();
        }
    }
}

/// The ids of an `XRANGE`/`XREVRANGE` reply.
struct StreamRangeIds(Vec<String>);

impl redis::FromRedisValue for StreamRangeIds {
    fn from_redis_value(v: redis::Value) -> Result<Self, redis::ParsingError> {
        let reply: redis::streams::StreamRangeReply = redis::from_redis_value(v)?;
        Ok(Self(reply.ids.into_iter().map(|e| e.id).collect()))
    }
}

async fn read(
    reader: &mut ConnectionManager,
    shared: &Shared,
    group: Option<&GroupState>,
    ids: &[String],
) -> Result<StreamReadReply, redis::RedisError> {
    let mut cmd = match group {
        Some(state) => {
            let mut cmd = redis::cmd("XREADGROUP");
            cmd.arg("GROUP").arg(&state.group).arg(&state.consumer);
            cmd
        }
        None => redis::cmd("XREAD"),
    };
    cmd.arg("COUNT")
        .arg(shared.config.batch)
        .arg("BLOCK")
        .arg(shared.config.block.as_millis() as u64)
        .arg("STREAMS")
        .arg(&shared.streams)
        .arg(ids);
    let reply: Option<StreamReadReply> = cmd.query_async(reader).await?;
    Ok(reply.unwrap_or_default())
}

async fn create_groups(shared: &Shared, group: &str, start: &str) -> Result<(), BrokerError> {
    let mut conn = shared.conn.clone();
    for stream in &shared.streams {
        let created: Result<(), redis::RedisError> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(stream)
            .arg(group)
            .arg(start)
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        match created {
            Ok(()) => {}
            Err(e) if e.code() == Some("BUSYGROUP") => {}
            Err(e) => {
                return Err(BrokerError::Command {
                    command: "XGROUP CREATE",
                    source: e,
                });
            }
        }
    }
    Ok(())
}

/// Keeps the entries this consumer is handling from growing idle, so live work is never
/// reclaimed and run twice, however long a handler takes. Ends with its subscriber.
async fn heartbeat(shared: Arc<Shared>, state: Weak<GroupState>) {
    let period = shared.config.claim_idle / 3;
    let mut conn = shared.conn.clone();
    loop {
        tokio::time::sleep(period).await;
        let Some(state) = state.upgrade() else { return };
        let mut by_partition: HashMap<usize, Vec<String>> = HashMap::new();
        for (p, id) in state.inflight().iter() {
            by_partition.entry(*p).or_default().push(id.clone());
        }
        for (p, ids) in by_partition {
            let refreshed: Result<redis::Value, _> = redis::cmd("XCLAIM")
                .arg(&shared.streams[p])
                .arg(&state.group)
                .arg(&state.consumer)
                .arg(0)
                .arg(&ids)
                .arg("JUSTID")
                .query_async(&mut conn)
                .await;
            if let Err(error) = refreshed {
                tracing::warn!(%error, "refreshing in-flight events failed");
            }
        }
    }
}

fn type_matches(filter: &TypeFilter, entry: &StreamId) -> bool {
    match entry.get::<String>("type") {
        Some(t) => filter.matches(&t),
        // Let `parse` decide: a typeless entry is malformed, and gets dead-lettered.
        None => true,
    }
}

pub(super) fn parse(entry: &StreamId) -> Result<(Event, Arc<str>), String> {
    let raw: String = entry
        .get("event")
        .ok_or_else(|| "entry has no `event` field".to_string())?;
    let mut event =
        Event::from_json(raw.as_bytes()).map_err(|e| format!("not a valid event: {e}"))?;
    event.id = Some(EventId::new(entry.id.as_str()).map_err(|e| e.to_string())?);
    Ok((event, raw.into()))
}

fn failure_field(stream: &str, id: &str) -> String {
    format!("{stream}/{id}")
}

async fn dead_letter(
    shared: &Shared,
    state: &GroupState,
    p: usize,
    id: &str,
    raw: &str,
    error: &str,
    deliveries: u32,
) -> Result<(), redis::RedisError> {
    let stream = &shared.streams[p];
    tracing::warn!(%id, group = %state.group, %error, deliveries, "event dead-lettered");
    crate::observe::dead_lettered(&state.group);
    state.inflight().remove(&(p, id.to_string()));
    redis::pipe()
        .atomic()
        .cmd("XADD")
        .arg(keys::dead_letter_stream(&shared.config.namespace))
        .arg("MAXLEN")
        .arg("~")
        .arg(shared.config.dead_letter_max_len)
        .arg("*")
        .arg("id")
        .arg(id)
        .arg("group")
        .arg(&state.group)
        .arg("stream")
        .arg(stream)
        .arg("error")
        .arg(error)
        .arg("deliveries")
        .arg(deliveries)
        .arg("raw")
        .arg(raw)
        .ignore()
        .cmd("XACK")
        .arg(stream)
        .arg(&state.group)
        .arg(id)
        .ignore()
        .cmd("HDEL")
        .arg(&state.failures_key)
        .arg(failure_field(stream, id))
        .ignore()
        .query_async::<()>(&mut shared.conn.clone())
        .await
}

struct RedisAcker {
    shared: Arc<Shared>,
    state: Arc<GroupState>,
    partition: usize,
    id: String,
    raw: Arc<str>,
    attempt: u32,
}

#[async_trait]
impl Acker for RedisAcker {
    async fn ack(&self) -> Result<(), BrokerError> {
        self.ack_with(Vec::new()).await
    }

    /// One pipeline for the whole batch: an `XACK` per (group, partition) with all its ids,
    /// and the `HDEL` of redeliveries' failure records. Deliveries of another connection or
    /// broker are acknowledged one by one.
    async fn ack_with(&self, others: Vec<Box<dyn Acker>>) -> Result<(), BrokerError> {
        let mut foreign = Vec::new();
        let mut mine = vec![self];
        for other in &others {
            match other.as_any().downcast_ref::<RedisAcker>() {
                Some(a) if Arc::ptr_eq(&a.shared, &self.shared) => mine.push(a),
                _ => foreign.push(other),
            }
        }
        // (group state, partition) -> ids, in delivery order.
        let mut by_partition: Vec<(&Arc<GroupState>, usize, Vec<&str>)> = Vec::new();
        let mut pipe = redis::pipe();
        for a in &mine {
            match by_partition
                .iter_mut()
                .find(|(s, p, _)| Arc::ptr_eq(s, &a.state) && *p == a.partition)
            {
                Some((_, _, ids)) => ids.push(&a.id),
                None => by_partition.push((&a.state, a.partition, vec![&a.id])),
            }
            if a.attempt > 1 {
                // A redelivery may have a failure recorded; a first delivery has none.
                let stream = &self.shared.streams[a.partition];
                pipe.cmd("HDEL")
                    .arg(&a.state.failures_key)
                    .arg(failure_field(stream, &a.id))
                    .ignore();
            }
        }
        for (state, partition, ids) in &by_partition {
            pipe.cmd("XACK")
                .arg(&self.shared.streams[*partition])
                .arg(&state.group)
                .arg(ids)
                .ignore();
        }
        let mut result = pipe
            .query_async::<()>(&mut self.shared.conn.clone())
            .await
            .map_err(BrokerError::command("XACK"));
        // Acknowledged, or (on failure) no longer refreshed: left to grow idle and be reclaimed.
        for a in &mine {
            a.state.inflight().remove(&(a.partition, a.id.clone()));
        }
        for other in foreign {
            if let Err(e) = other.ack().await {
                result = result.and(Err(e));
            }
        }
        result
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn abandon(&self) {
        // No longer refreshed by the heartbeat: it grows idle and is reclaimed.
        self.state
            .inflight()
            .remove(&(self.partition, self.id.clone()));
    }

    async fn nack(&self, attempt: u32, error: &str) -> Result<(), BrokerError> {
        self.state
            .inflight()
            .remove(&(self.partition, self.id.clone()));
        if attempt >= self.shared.config.max_deliveries {
            return dead_letter(
                &self.shared,
                &self.state,
                self.partition,
                &self.id,
                &self.raw,
                error,
                attempt,
            )
            .await
            .map_err(BrokerError::command("XADD"));
        }
        let stream = &self.shared.streams[self.partition];
        redis::cmd("HSET")
            .arg(&self.state.failures_key)
            .arg(failure_field(stream, &self.id))
            .arg(error)
            .query_async::<()>(&mut self.shared.conn.clone())
            .await
            .map_err(BrokerError::command("HSET"))
    }
}
