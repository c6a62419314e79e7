//! The broker abstraction every service programs against.

use std::sync::Arc;

use async_trait::async_trait;
use refract_core::{Event, EventId, WorkspaceId};

use crate::{BrokerError, TypeFilter};

/// Publishes events and hands them to subscribers.
#[async_trait]
pub trait Broker: Send + Sync {
    /// Validates `event` (type, payload, size), records its size, appends it to its
    /// workspace's partition, and returns the id it was given there.
    async fn publish(&self, event: Event) -> Result<EventId, BrokerError>;

    /// Publishes `events` in order; returns their ids. The default publishes one by one and
    /// stops at the first failure. Both brokers here check every event before publishing any,
    /// so an invalid one publishes nothing, and Redis sends them in one transaction (one round
    /// trip, all or none).
    async fn publish_all(&self, events: Vec<Event>) -> Result<Vec<EventId>, BrokerError> {
        let mut ids = Vec::with_capacity(events.len());
        for event in events {
            ids.push(self.publish(event).await?);
        }
        Ok(ids)
    }

    /// Whether the broker answers now (readiness). The in-process broker always does.
    async fn ping(&self) -> Result<(), BrokerError> {
        Ok(())
    }

    /// The backlog of every consumer group, summed over partitions (metrics: `events_pending`,
    /// `events_lag`). Empty for a broker that does not track it.
    async fn group_stats(&self) -> Result<Vec<GroupStats>, BrokerError> {
        Ok(Vec::new())
    }

    /// Starts reading. A [`Mode::Group`] subscription receives new events published from now on
    /// (and any its group left pending); a [`Mode::FanOut`] one receives every event published
    /// from now on.
    async fn subscribe(
        &self,
        subscription: Subscription,
    ) -> Result<Box<dyn Subscriber>, BrokerError>;

    /// The newest `limit` dead letters, newest first.
    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, BrokerError>;

    /// Reads back the partition of `workspace` after `after`: at most `scan` entries of the
    /// partition (every workspace's), of which the events of `workspace` are returned, oldest
    /// first. What a WebSocket reconnecting on any instance replays from (`spec/http-api.md`
    /// §8): the streams are shared, so the gap survives the instance that served the socket.
    ///
    /// The default is a broker that keeps no readable log: nothing to replay, and the page
    /// says the gap is incomplete.
    async fn read_after(
        &self,
        workspace: &WorkspaceId,
        after: &EventId,
        scan: usize,
    ) -> Result<Page, BrokerError> {
        let _ = (workspace, after, scan);
        Ok(Page {
            truncated: true,
            ..Page::default()
        })
    }
}

/// `event` as a broker appends it: no id yet, the current trace context, checked against
/// `limits` and its size recorded.
pub(crate) fn sealed(
    mut event: Event,
    limits: &refract_core::EventLimits,
) -> Result<Event, BrokerError> {
    event.id = None;
    crate::observe::stamp(&mut event);
    event.seal(limits)?;
    Ok(event)
}

/// A page of [`Broker::read_after`].
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// The workspace's events of the page, oldest first.
    pub events: Vec<Event>,
    /// The last entry scanned (the cursor of the next page); `None` when the page reached the
    /// end of the partition.
    pub next: Option<EventId>,
    /// The partition no longer holds every entry after `after` (trimmed by its maximum length,
    /// or lost with a Redis restart): the page is not the whole gap.
    pub truncated: bool,
}

/// A stream of deliveries.
#[async_trait]
pub trait Subscriber: Send {
    /// Waits for the next delivery. Transient broker failures are retried with backoff inside;
    /// an error means the broker is closed.
    async fn next(&mut self) -> Result<Delivery, BrokerError>;
}

/// What to read and how.
#[derive(Debug, Clone)]
pub struct Subscription {
    /// Whether events are shared out among a group or seen by every subscriber.
    pub mode: Mode,
    /// The event types this subscription receives; other events never reach it.
    pub filter: TypeFilter,
}

impl Subscription {
    /// Work distribution: each event goes to one consumer of `group`.
    pub fn group(
        group: impl Into<String>,
        consumer: impl Into<String>,
        filter: TypeFilter,
    ) -> Self {
        Self {
            mode: Mode::Group {
                group: group.into(),
                consumer: consumer.into(),
            },
            filter,
        }
    }

    /// Fan-out: this subscriber sees every matching event.
    pub fn fan_out(filter: TypeFilter) -> Self {
        Self {
            mode: Mode::FanOut,
            filter,
        }
    }
}

/// How a subscription shares events with the other subscribers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// One consumer group per service kind, one consumer per instance.
    Group {
        /// The consumer group: each event goes to one of its consumers.
        group: String,
        /// This instance's name in the group; the events it leaves pending are claimed by it
        /// again after a restart under the same name.
        consumer: String,
    },
    /// Every subscriber sees every event; nothing to acknowledge.
    FanOut,
}

/// One event handed to one subscriber.
pub struct Delivery {
    /// The event as read back from its partition, with its id set; shared, not copied,
    /// between the subscribers it is delivered to.
    pub event: Arc<Event>,
    /// 1 on first delivery; higher when the event is redelivered.
    pub attempt: u32,
    pub(crate) acker: Option<Box<dyn Acker>>,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("event", &self.event)
            .field("attempt", &self.attempt)
            .finish()
    }
}

impl Delivery {
    /// The event's id (always set on deliveries).
    pub fn id(&self) -> Option<&EventId> {
        self.event.id.as_ref()
    }

    /// Marks the event handled: it will not be delivered to this group again.
    pub async fn ack(mut self) -> Result<(), BrokerError> {
        match self.acker.take() {
            Some(acker) => acker.ack().await,
            None => Ok(()),
        }
    }

    /// Acknowledges every delivery of `batch` (e.g. a batch a consumer has just stored), in
    /// as few broker round trips as it allows: on Redis, one pipelined `XACK` per partition
    /// instead of one command per event. Every delivery is attempted; the first error is
    /// returned, and a delivery whose acknowledgement failed is delivered again later.
    pub async fn ack_all(batch: impl IntoIterator<Item = Delivery>) -> Result<(), BrokerError> {
        let mut ackers = batch.into_iter().filter_map(|mut d| d.acker.take());
        let Some(first) = ackers.next() else {
            return Ok(());
        };
        first.ack_with(ackers.collect()).await
    }

    /// Reports that handling failed with `error`: the event is delivered again after the claim
    /// idle time, or moved to the dead-letter stream with `error` once it has been delivered
    /// `max_deliveries` times.
    pub async fn nack(mut self, error: &str) -> Result<(), BrokerError> {
        match self.acker.take() {
            Some(acker) => acker.nack(self.attempt, error).await,
            None => Ok(()),
        }
    }
}

/// A delivery dropped unsettled (its handler panicked or was cancelled) counts as failed: it
/// is delivered again after the claim idle time.
impl Drop for Delivery {
    fn drop(&mut self) {
        if let Some(acker) = self.acker.take() {
            acker.abandon();
        }
    }
}

/// Settles one delivery; each implementation has its own.
#[async_trait]
pub(crate) trait Acker: Send + Sync + 'static {
    async fn ack(&self) -> Result<(), BrokerError>;
    /// Acknowledges this delivery and `others` (deliveries of any subscription). The default
    /// settles each in turn; a broker that can acknowledge many entries at once overrides it.
    async fn ack_with(&self, others: Vec<Box<dyn Acker>>) -> Result<(), BrokerError> {
        let mut first_error = self.ack().await.err();
        for other in others {
            if let Err(e) = other.ack().await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
    /// For [`Acker::ack_with`] overrides: to recognise their own kind among `others`.
    fn as_any(&self) -> &dyn std::any::Any;
    async fn nack(&self, attempt: u32, error: &str) -> Result<(), BrokerError>;
    /// Called without a runtime when the delivery is dropped unsettled: must not block.
    fn abandon(&self);
}

/// An entry that could not be handled.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// Its id in its partition.
    pub id: String,
    /// The group that gave up on it.
    pub group: String,
    /// Why: the last handler error, or why the entry is not a valid event.
    pub error: String,
    /// How many times it was delivered.
    pub deliveries: u32,
    /// The entry as stored, for inspection and replay.
    pub raw: String,
}

/// One consumer group's backlog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupStats {
    /// The consumer group's name.
    pub group: String,
    /// Entries delivered to a consumer and not yet acknowledged.
    pub pending: u64,
    /// Entries not yet delivered to the group; `None` when the broker cannot tell (Redis
    /// before 7.0, or a trimmed stream).
    pub lag: Option<u64>,
}
