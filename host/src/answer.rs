//! A webhook run's answer streamed while the run goes on (`refract:automation/response`): the
//! parts the guest sends, in order, through a bounded channel the runtime drains into the HTTP
//! response. The host checks and counts each part; the runtime frames it as server-sent events.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;

/// The shortest keep-alive interval; a guest asking for less gets this (`sseKeepAlive`, §6.2).
pub const MIN_KEEP_ALIVE: Duration = Duration::from_secs(5);

/// Headers a streamed answer's head may carry (also the most a webhook answer keeps).
pub const MAX_HEAD_HEADERS: usize = 64;
/// Bytes of a streamed answer's head headers, names and values.
pub const MAX_HEAD_BYTES: usize = 16 << 10;

/// Parts the channel holds before `send` blocks the guest: a client slower than the run slows
/// the run (its wall clock still counting) instead of filling the host's memory.
const CHANNEL_PARTS: usize = 16;

/// One part of a streamed answer.
#[derive(Debug, Clone, PartialEq)]
pub enum AnswerPart {
    /// The answer starts: always the first part, sent once.
    Head {
        /// Status code: 200 to 599, not 204, 205 or 304 (one that carries a body).
        status: u16,
        /// Extra headers as the guest set them; the runtime drops those a webhook may not set.
        headers: Vec<(String, String)>,
        /// Silence after which the runtime sends a keep-alive event, at least
        /// [`MIN_KEEP_ALIVE`]; none without one.
        keep_alive: Option<Duration>,
        /// When the run's wall clock runs out: no part comes after it.
        run_ends_by: Instant,
    },
    /// One event's data: compact JSON on one line.
    Chunk(String),
}

/// The sending end a webhook run's [`RunRequest`](crate::RunRequest) carries; only the run the
/// webhook started has one.
#[derive(Debug, Clone)]
pub struct AnswerSink {
    tx: mpsc::Sender<AnswerPart>,
}

impl AnswerSink {
    /// A sink and the receiver the HTTP answer drains. The receiver ends once every sink is
    /// dropped: the run's own when it ends, the runtime's when its task does.
    pub fn channel() -> (AnswerSink, mpsc::Receiver<AnswerPart>) {
        let (tx, rx) = mpsc::channel(CHANNEL_PARTS);
        (AnswerSink { tx }, rx)
    }

    /// Hands `part` over, waiting while the channel is full; `false` once the client is gone.
    pub(crate) async fn send(&self, part: AnswerPart) -> bool {
        self.tx.send(part).await.is_ok()
    }
}

/// A run's side of its streamed answer: the sink, whether the head went out, the bytes sent,
/// whether the client is gone.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) sink: AnswerSink,
    pub(crate) started: bool,
    pub(crate) bytes: u64,
    pub(crate) closed: bool,
}

impl Answer {
    pub(crate) fn new(sink: AnswerSink) -> Self {
        Answer {
            sink,
            started: false,
            bytes: 0,
            closed: false,
        }
    }
}

/// Whether a streamed answer can have status `status`: a final status whose response has a
/// body (not 1xx, 204, 205 or 304).
pub(crate) fn streams_with(status: u16) -> bool {
    (200..=599).contains(&status) && !matches!(status, 204 | 205 | 304)
}
