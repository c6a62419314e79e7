//! Host calls that do not block (world 0.1.5): start several fetches, waits and calls, then
//! take their answers as they come with [`next_done`].
//!
//! ```no_run
//! use refract_sdk::concurrent::{self, Outcome};
//! use refract_sdk::Request;
//!
//! # fn main() -> Result<(), refract_sdk::FetchError> {
//! let mut pending = Vec::new();
//! for url in ["https://a.example/", "https://b.example/"] {
//!     // `None`: too many calls are in flight already; make this one with `fetch` instead.
//!     if let Some(ticket) = concurrent::start_fetch(Request::get(url))? {
//!         pending.push(ticket);
//!     }
//! }
//! while !pending.is_empty() {
//!     for (ticket, outcome) in concurrent::next_done() {
//!         pending.retain(|t| *t != ticket);
//!         if let Outcome::Fetched(Ok(response)) = outcome {
//!             refract_sdk::log::info(&format!("{ticket}: {}", response.status));
//!         }
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Each started call is checked and counted like its blocking twin ([`fetch`](crate::fetch),
//! [`wait`](crate::wait), [`call`](crate::call)); a `wait` catches every event published from
//! the moment it was started. A run has at most 64 calls in flight, of them 4 automation calls
//! (only in a run a trigger started: a callee's calls run one at a time) and as many fetches as
//! fit in its memory limit at the fetch size cap; a start function answers `None` past that.
//! Calls still in flight when the run ends are cancelled.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::__bindings::refract::automation::concurrent as host;
use crate::automations::{CallError, call_result};
use crate::events::{Condition, Event, WaitError, conditions_to_raw, timeout_ms, wait_result};
use crate::http::{FetchError, Request, Response, fetch_result};

/// Names a started call until [`next_done`] reports it; unique within the run.
pub type Ticket = u64;

/// How a started call ended: what its blocking twin would have returned.
#[derive(Debug)]
pub enum Outcome {
    /// Of [`start_fetch`].
    Fetched(Result<Response, FetchError>),
    /// Of [`start_wait`].
    Waited(Result<Option<Event>, WaitError>),
    /// Of [`start_call`]: the callee's output as JSON.
    Called(Result<Value, CallError>),
}

/// Starts sending `request`. `Ok(None)` when 64 calls are in flight; `Err` for a request that
/// cannot be sent (as [`fetch`](crate::fetch) would say).
pub fn start_fetch(request: Request) -> Result<Option<Ticket>, FetchError> {
    let raw = request.into_raw()?;
    Ok(host::start_fetch(&raw))
}

/// Starts waiting for an event meeting one of `conditions` (see [`wait`](crate::wait)).
pub fn start_wait(
    conditions: &[Condition],
    timeout: Duration,
) -> Result<Option<Ticket>, WaitError> {
    let raw = conditions_to_raw(conditions)?;
    Ok(host::start_wait(&raw, timeout_ms(timeout)))
}

/// Starts running the automation `slug` with `arguments` (see [`call`](crate::call)).
pub fn start_call(slug: &str, arguments: &impl Serialize) -> Result<Option<Ticket>, CallError> {
    let arguments =
        serde_json::to_string(arguments).map_err(|e| CallError::InvalidArguments(e.to_string()))?;
    Ok(host::start_call(slug, &arguments))
}

/// Blocks until at least one started call has ended; every call that has, each reported once.
/// Empty when none is in flight.
pub fn next_done() -> Vec<(Ticket, Outcome)> {
    host::next_done()
        .into_iter()
        .map(|d| {
            let outcome = match d.outcome {
                host::Outcome::Fetched(r) => Outcome::Fetched(fetch_result(r)),
                host::Outcome::Waited(r) => Outcome::Waited(wait_result(r)),
                host::Outcome::Called(r) => Outcome::Called(call_result(r)),
            };
            (d.ticket, outcome)
        })
        .collect()
}
