//! A webhook's answer streamed while the run goes on (world 0.1.6): server-sent events the
//! client reads as they come, such as a model's tokens. Without it, the answer is the run's
//! [`Output`](crate::Output), sent once the run has ended.
//!
//! The first [`send`] (or [`start`], to choose the status, headers and keep-alive) switches the
//! answer to `text/event-stream`; each chunk is one event `data: <json>`. When the run ends its
//! output is the last event, unless it is `{}`. Only the run a webhook started has a client:
//! elsewhere every call returns [`StreamError::NoClient`].
//!
//! ```no_run
//! use refract_sdk::response;
//!
//! response::start(200, &[("x-model", "small")], Some(15_000))?;
//! for token in ["Hel", "lo"] {
//!     response::send(&serde_json::json!({ "token": token }))?;
//! }
//! # Ok::<(), refract_sdk::Error>(())
//! ```

use std::fmt;

use serde::Serialize;

use crate::__bindings::refract::automation::response as host;
use crate::error::{CODE_STREAM_FAILED, Error};

/// Why nothing was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamError {
    /// The run has no client to answer: not started by a webhook, or a callee.
    NoClient,
    /// The status, a header or the chunk is invalid, or the answer had already started; the
    /// text says which.
    Invalid(String),
    /// The client went away; the run may go on, but nothing more reaches it.
    Closed,
    /// The answer would go over the run's streamed-bytes limit (bytes, given).
    TooLarge(u64),
}

impl StreamError {
    fn from_raw(e: host::StreamError) -> Self {
        match e {
            host::StreamError::NoClient => Self::NoClient,
            host::StreamError::Invalid(s) => Self::Invalid(s),
            host::StreamError::Closed => Self::Closed,
            host::StreamError::TooLarge(n) => Self::TooLarge(n),
        }
    }

    /// A stable camelCase name of the variant (`details.kind` once converted into [`Error`]).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NoClient => "noClient",
            Self::Invalid(_) => "invalid",
            Self::Closed => "closed",
            Self::TooLarge(_) => "tooLarge",
        }
    }
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoClient => write!(f, "this run has no client to stream an answer to"),
            Self::Invalid(s) => write!(f, "invalid streamed answer: {s}"),
            Self::Closed => write!(f, "the client went away"),
            Self::TooLarge(n) => write!(f, "over the streamed answer's limit ({n} bytes)"),
        }
    }
}

impl std::error::Error for StreamError {}

impl From<StreamError> for Error {
    fn from(e: StreamError) -> Self {
        Error::sdk(CODE_STREAM_FAILED, e.kind(), e.to_string(), None)
    }
}

/// Starts the streamed answer with `status` (100 to 599) and extra `headers`, sending a
/// keep-alive event after every `keep_alive_ms` of silence (at least 5,000). Once per run,
/// before the first [`send`].
pub fn start(
    status: u16,
    headers: &[(&str, &str)],
    keep_alive_ms: Option<u32>,
) -> Result<(), StreamError> {
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
    host::start(status, &headers, keep_alive_ms).map_err(StreamError::from_raw)
}

/// Sends `chunk` as the next event, starting the answer with status 200 if [`start`] was not
/// called. Blocks while the client reads slower than the run sends.
pub fn send(chunk: &impl Serialize) -> Result<(), StreamError> {
    let json = serde_json::to_string(chunk).map_err(|e| StreamError::Invalid(e.to_string()))?;
    host::send(&json).map_err(StreamError::from_raw)
}
