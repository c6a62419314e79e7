//! The broker on Redis Streams (5.0+).
//!
//! - Publish: `XADD <ns>:events:<partition> MAXLEN ~ <max_len> * type <type> event <json>`;
//!   the entry id is the event id.
//! - Groups: `XGROUP CREATE … $ MKSTREAM` per partition, `XREADGROUP … BLOCK` over every
//!   partition, `XACK` after the handler succeeds. Entries a consumer still handles are
//!   refreshed with `XCLAIM … JUSTID` more often than the claim idle time, so only the entries
//!   of dead consumers (and failed ones) grow idle; those are taken over with `XPENDING` +
//!   `XCLAIM <min-idle>` (which also works on Redis 5, unlike XAUTOCLAIM) and dead-lettered
//!   once delivered `max_deliveries` times.
//! - Fan-out: `XREAD … BLOCK` from the partitions' ends at subscribe time.
//! - Redis restarts: the connection manager reconnects; reads retry with backoff and recreate
//!   groups that vanished (`NOGROUP`) from the start of the new streams, so nothing published
//!   after the restart is skipped.

mod subscriber;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use refract_core::{Event, EventId, WorkspaceId};

use crate::api::sealed;
use crate::{
    Broker, BrokerConfig, BrokerError, DeadLetter, Page, Subscriber, Subscription, keys, redact,
};

/// How long a command (other than a blocking read) may take before it counts as failed.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long connecting may take before the attempt counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The Redis Streams broker. Cheap to clone.
#[derive(Clone)]
pub struct RedisBroker {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) config: BrokerConfig,
    pub(crate) client: redis::Client,
    pub(crate) url: String,
    pub(crate) conn: ConnectionManager,
    pub(crate) streams: Vec<String>,
}

impl RedisBroker {
    /// Connects to `url` and checks that the server answers; the error names the URL
    /// (password redacted) when it does not.
    pub async fn connect(url: &str, config: BrokerConfig) -> Result<Self, BrokerError> {
        config.validate()?;
        let shown = redact(url);
        let connect_err = |source| BrokerError::Connect {
            url: shown.clone(),
            source,
        };
        let client = redis::Client::open(url).map_err(connect_err)?;
        let conn = connection(&client, RESPONSE_TIMEOUT)
            .await
            .map_err(connect_err)?;
        let mut ping = conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut ping)
            .await
            .map_err(connect_err)?;
        let streams = (0..config.partitions)
            .map(|p| keys::partition_stream(&config.namespace, p))
            .collect();
        Ok(Self {
            shared: Arc::new(Shared {
                config,
                client,
                url: shown,
                conn,
                streams,
            }),
        })
    }

    /// Appends a raw entry that bypasses validation, as a foreign or corrupt producer would.
    /// For tests of how consumers survive bad entries.
    pub async fn inject_raw(
        &self,
        partition: u32,
        fields: &[(&str, &str)],
    ) -> Result<String, BrokerError> {
        let key = &self.shared.streams[partition as usize % self.shared.streams.len()];
        let mut cmd = redis::cmd("XADD");
        cmd.arg(key).arg("*");
        for (field, value) in fields {
            cmd.arg(field).arg(value);
        }
        cmd.query_async(&mut self.shared.conn.clone())
            .await
            .map_err(BrokerError::command("XADD"))
    }
}

pub(crate) async fn connection(
    client: &redis::Client,
    response_timeout: Duration,
) -> redis::RedisResult<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(response_timeout))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_secs(2));
    ConnectionManager::new_with_config(client.clone(), config).await
}

impl RedisBroker {
    /// The `XADD` of a sealed event to its workspace's partition, trimmed to about `max_len`.
    fn xadd(&self, event: &Event) -> redis::Cmd {
        let config = &self.shared.config;
        let partition = config.partition_of(event.source.workspace_id.as_ref().map(|w| w.as_str()));
        let mut cmd = redis::cmd("XADD");
        cmd.arg(&self.shared.streams[partition as usize])
            .arg("MAXLEN")
            .arg("~")
            .arg(config.max_len)
            .arg("*")
            .arg("type")
            .arg(event.event_type.as_str())
            .arg("event")
            .arg(event.to_json());
        cmd
    }
}

#[async_trait]
impl Broker for RedisBroker {
    async fn publish(&self, event: Event) -> Result<EventId, BrokerError> {
        let event = sealed(event, &self.shared.config.event_limits)?;
        let id: String = self
            .xadd(&event)
            .query_async(&mut self.shared.conn.clone())
            .await
            .map_err(BrokerError::command("XADD"))?;
        crate::observe::published(&event);
        EventId::new(id).map_err(BrokerError::Invalid)
    }

    async fn publish_all(&self, events: Vec<Event>) -> Result<Vec<EventId>, BrokerError> {
        let limits = &self.shared.config.event_limits;
        let events = events
            .into_iter()
            .map(|e| sealed(e, limits))
            .collect::<Result<Vec<_>, _>>()?;
        let mut pipe = redis::pipe();
        pipe.atomic();
        for event in &events {
            pipe.add_command(self.xadd(event));
        }
        let ids: Vec<String> = pipe
            .query_async(&mut self.shared.conn.clone())
            .await
            .map_err(BrokerError::command("XADD"))?;
        events.iter().for_each(crate::observe::published);
        ids.into_iter()
            .map(|id| EventId::new(id).map_err(BrokerError::Invalid))
            .collect()
    }

    /// `PING` on the shared connection (bounded by its response timeout).
    async fn ping(&self) -> Result<(), BrokerError> {
        redis::cmd("PING")
            .query_async::<()>(&mut self.shared.conn.clone())
            .await
            .map_err(BrokerError::command("PING"))
    }

    /// `XINFO GROUPS` of every partition: pending entries and lag (Redis 7+) per group, summed.
    async fn group_stats(&self) -> Result<Vec<crate::GroupStats>, BrokerError> {
        let mut conn = self.shared.conn.clone();
        let mut stats: std::collections::BTreeMap<String, crate::GroupStats> =
            std::collections::BTreeMap::new();
        for stream in &self.shared.streams {
            let reply: Result<redis::streams::StreamInfoGroupsReply, _> = redis::cmd("XINFO")
                .arg("GROUPS")
                .arg(stream)
                .query_async(&mut conn)
                .await;
            let groups = match reply {
                Ok(reply) => reply.groups,
                // A partition nobody published to yet has no stream, hence no groups.
                Err(e)
                    if e.kind()
                        == redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError) =>
                {
                    continue;
                }
                Err(e) => return Err(BrokerError::command("XINFO")(e)),
            };
            for g in groups {
                let entry = stats.entry(g.name.clone()).or_insert(crate::GroupStats {
                    group: g.name,
                    pending: 0,
                    lag: Some(0),
                });
                entry.pending += g.pending as u64;
                entry.lag = entry.lag.zip(g.lag).map(|(a, b)| a + b as u64);
            }
        }
        Ok(stats.into_values().collect())
    }

    async fn subscribe(
        &self,
        subscription: Subscription,
    ) -> Result<Box<dyn Subscriber>, BrokerError> {
        Ok(Box::new(
            subscriber::RedisSubscriber::start(self.shared.clone(), subscription).await?,
        ))
    }

    /// `XRANGE <partition> <after+1> + COUNT <scan>`. Exclusive ranges (`(id`) need Redis 6.2,
    /// so the start is the next possible id. The gap is truncated when the stream's first
    /// entry is newer than `after`: trimmed by `MAXLEN`, or a Redis restart lost it.
    async fn read_after(
        &self,
        workspace: &WorkspaceId,
        after: &EventId,
        scan: usize,
    ) -> Result<Page, BrokerError> {
        let partition = self.shared.config.partition_of(Some(workspace.as_str()));
        let key = &self.shared.streams[partition as usize];
        let (ms, seq) = after.parts();
        let start = match seq.checked_add(1) {
            Some(seq) => format!("{ms}-{seq}"),
            None => format!("{}-0", ms.saturating_add(1)),
        };
        let mut conn = self.shared.conn.clone();
        let first: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(key)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut conn)
            .await
            .map_err(BrokerError::command("XRANGE"))?;
        let truncated = first
            .ids
            .first()
            .and_then(|e| EventId::new(e.id.as_str()).ok())
            .is_none_or(|id| id.parts() > (ms, seq));
        let scan = scan.max(1);
        let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(key)
            .arg(&start)
            .arg("+")
            .arg("COUNT")
            .arg(scan)
            .query_async(&mut conn)
            .await
            .map_err(BrokerError::command("XRANGE"))?;
        let next = (reply.ids.len() == scan)
            .then(|| {
                reply
                    .ids
                    .last()
                    .and_then(|e| EventId::new(e.id.as_str()).ok())
            })
            .flatten();
        let events = reply
            .ids
            .iter()
            .filter_map(|entry| subscriber::parse(entry).ok().map(|(event, _)| event))
            .filter(|event| event.source.workspace_id.as_ref() == Some(workspace))
            .collect();
        Ok(Page {
            events,
            next,
            truncated,
        })
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, BrokerError> {
        let key = keys::dead_letter_stream(&self.shared.config.namespace);
        let reply: redis::streams::StreamRangeReply = redis::cmd("XREVRANGE")
            .arg(&key)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(limit)
            .query_async(&mut self.shared.conn.clone())
            .await
            .map_err(BrokerError::command("XREVRANGE"))?;
        Ok(reply
            .ids
            .iter()
            .map(|entry| DeadLetter {
                id: entry.get("id").unwrap_or_default(),
                group: entry.get("group").unwrap_or_default(),
                error: entry.get("error").unwrap_or_default(),
                deliveries: entry.get("deliveries").unwrap_or_default(),
                raw: entry.get("raw").unwrap_or_default(),
            })
            .collect())
    }
}
