//! The events service's settings and their defaults.

use std::time::Duration;

/// Most events written per history append. One append is one transaction (one multi-row
/// INSERT on SQLite, one UNNEST insert on PostgreSQL): larger batches amortize the commit and
/// the FTS5 index update, smaller ones bound how long a transaction holds the writer.
pub const DEFAULT_INGEST_BATCH: usize = 512;

/// How long a batch waits for more events before it is written: bounds the delay between a
/// publish and its visibility in history under light load.
pub const DEFAULT_BATCH_WINDOW: Duration = Duration::from_millis(50);

/// Batches being written at once: the next batch is read (and its append started) while the
/// previous one is still in the database, so reading, writing and acknowledging overlap
/// instead of taking turns (on PostgreSQL each append also runs on its own connection).
pub const DEFAULT_INGEST_IN_FLIGHT: usize = 2;

/// First pause before a failed append is retried; doubles up to [`MAX_RETRY_BACKOFF`].
pub const RETRY_BACKOFF: Duration = Duration::from_millis(200);
/// Longest pause between two tries of a failing append: a recovering database is written
/// again within seconds.
pub const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(5);

/// How long events are kept when the workspace does not say (`config.value.eventsRetentionDays`).
pub const DEFAULT_RETENTION_DAYS: u32 = refract_core::retention::DEFAULT_DAYS;
/// Longest retention a workspace may ask for (ten years).
pub const MAX_RETENTION_DAYS: u32 = refract_core::retention::MAX_DAYS;
/// How often the retention pass runs: deleting by age is not urgent, and each pass scans the
/// list of workspaces.
pub const DEFAULT_RETENTION_INTERVAL: Duration = Duration::from_secs(3_600);

/// Server ping period on WebSockets (`spec/http-api.md` §8 `heartbeatMs`).
pub const HEARTBEAT: Duration = Duration::from_secs(25);
/// A socket silent (no pong, no frame) for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Events queued for one socket before it counts as a slow consumer and is closed (4008):
/// a client that stops reading cannot grow the server's memory without bound.
pub const SOCKET_QUEUE: usize = 1_000;
/// Largest inbound WebSocket frame (§14.2).
pub const MAX_FRAME: usize = 1024 * 1024;
/// Most events a `reconnect` replays, and the oldest it replays (§8: 500 events or 10
/// minutes); past either, `reconnected.complete` is false and the client pages the history.
pub const REPLAY_MAX: usize = 500;
/// The oldest event a `reconnect` replays (10 minutes).
pub const REPLAY_AGE: Duration = Duration::from_secs(600);
/// Broker entries read per page of a replay, and at most in all (the partition holds every
/// workspace of its hash: a busy neighbour must not make one reconnect read without bound).
pub const REPLAY_PAGE: usize = 1_000;
/// Most broker entries one replay reads over all its pages.
pub const REPLAY_SCAN: usize = 50_000;
/// How long a socket's record lives after it was last written: a socket may be adopted by a
/// `reconnect` for this long (§8, the socket-context lifetime).
pub const SOCKET_LIFETIME: Duration = Duration::from_secs(6 * 3_600);
/// How often a connected socket renews its record.
pub const SOCKET_RENEW: Duration = Duration::from_secs(600);
/// Inbound `emit` frames per socket: sustained rate per second and burst (§14.1).
pub const EMIT_RATE: f64 = 20.0;
/// Inbound `emit` frames a socket may send at once after a quiet spell (the burst).
pub const EMIT_BURST: f64 = 50.0;

/// Longest long-poll (`wait` on `GET …/events`, §7.1).
pub const MAX_WAIT: Duration = Duration::from_secs(15);

/// The events service's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// This instance's name in the `events` consumer group.
    pub instance: String,
    /// Most events per history append (default [`DEFAULT_INGEST_BATCH`]).
    pub ingest_batch: usize,
    /// How long a batch waits for more events before it is written (default
    /// [`DEFAULT_BATCH_WINDOW`], 50 ms).
    pub batch_window: Duration,
    /// Appends in flight at once (at least 1).
    pub ingest_in_flight: usize,
    /// Days of history kept for a workspace that sets no retention of its own (default
    /// [`DEFAULT_RETENTION_DAYS`], 90).
    pub default_retention_days: u32,
    /// Time between two retention passes (default [`DEFAULT_RETENTION_INTERVAL`], one hour).
    pub retention_interval: Duration,
    /// Server ping period on WebSockets (default [`HEARTBEAT`], 25 s).
    pub heartbeat: Duration,
    /// Silence after which a WebSocket is closed (default [`IDLE_TIMEOUT`], 60 s).
    pub idle_timeout: Duration,
    /// Events queued for one WebSocket before it is closed as a slow consumer (default
    /// [`SOCKET_QUEUE`], 1,000).
    pub socket_queue: usize,
}

impl Config {
    /// The defaults, for instance `instance`.
    pub fn new(instance: impl Into<String>) -> Self {
        Self {
            instance: instance.into(),
            ingest_batch: DEFAULT_INGEST_BATCH,
            batch_window: DEFAULT_BATCH_WINDOW,
            ingest_in_flight: DEFAULT_INGEST_IN_FLIGHT,
            default_retention_days: DEFAULT_RETENTION_DAYS,
            retention_interval: DEFAULT_RETENTION_INTERVAL,
            heartbeat: HEARTBEAT,
            idle_timeout: IDLE_TIMEOUT,
            socket_queue: SOCKET_QUEUE,
        }
    }
}
