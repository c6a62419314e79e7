//! `refract:automation/concurrent`: fetch, wait and call started without blocking the guest,
//! and awaited together by `next-done` (the DSL's `all`).
//!
//! A started call is checked and counted at once, by the same code as its blocking twin, and
//! kept in [`InFlight`] as a future that owns what it needs. Fetches and waits make progress
//! while the guest is blocked in `next-done` (a wait is registered when it starts; its timeout,
//! capped a margin short of the run's wall clock, absorbs a late first poll); an automation call
//! is a task of its own, so the callee runs, and is timed, on its own. What is still in flight
//! when the run ends is dropped with its store, which cancels it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use futures::FutureExt as _;
use futures::StreamExt as _;
use futures::stream::FuturesUnordered;

use tracing::Instrument as _;

use crate::bindings::automations::CallError;
use crate::bindings::concurrent::{Done, Host, Outcome, Ticket};
use crate::bindings::events::Condition;
use crate::bindings::http::Request;
use crate::store::{HostFuture, RunCtx};

/// Calls a run may have in flight at once (the WIT promises this number).
pub(crate) const MAX_IN_FLIGHT: usize = 64;
/// Automation calls among them: each is a run of its own, with its own instance and memory.
pub(crate) const MAX_CALLS_IN_FLIGHT: usize = 4;

/// The started calls of one run that `next-done` has not reported yet.
#[derive(Default)]
pub(crate) struct InFlight {
    last: Ticket,
    running: FuturesUnordered<HostFuture<Done>>,
    /// Ended when they were started or polled, not reported yet.
    ended: Vec<Done>,
    /// Automation calls among `running`.
    calls: usize,
    /// Fetches started and not handed to the guest yet: the host may hold each one's body, up
    /// to the run's fetch size cap.
    fetches: usize,
}

impl InFlight {
    /// A ticket for one more call, unless `MAX_IN_FLIGHT` are in flight.
    fn admit(&mut self) -> Option<Ticket> {
        if self.running.len() + self.ended.len() >= MAX_IN_FLIGHT {
            return None;
        }
        self.last += 1;
        Some(self.last)
    }

    /// Keeps `call` in flight under `ticket`, polling it once: a wait registers its
    /// conditions before the guest goes on, so it misses no event published after the start.
    fn start(&mut self, ticket: Ticket, name: &'static str, call: HostFuture<Outcome>) {
        let call = call
            .map(move |outcome| Done { ticket, outcome })
            .instrument(tracing::info_span!("host_call", call = name));
        self.running.push(Box::pin(call));
        self.collect_ended();
    }

    /// Moves every call that has ended to `ended`, without waiting.
    fn collect_ended(&mut self) {
        let mut cx = Context::from_waker(Waker::noop());
        while let Poll::Ready(Some(done)) = self.running.poll_next_unpin(&mut cx) {
            self.finished(done);
        }
    }

    /// Keeps `done` for the guest.
    fn finished(&mut self, done: Done) {
        if matches!(done.outcome, Outcome::Called(_)) {
            self.calls -= 1;
        }
        self.ended.push(done);
    }

    /// Every call that has ended, waiting for one if none has; empty when none is in flight.
    async fn next_done(&mut self) -> Vec<Done> {
        if self.ended.is_empty()
            && let Some(done) = self.running.next().await
        {
            self.finished(done);
        }
        self.collect_ended();
        let done = std::mem::take(&mut self.ended);
        self.fetches -= done
            .iter()
            .filter(|d| matches!(d.outcome, Outcome::Fetched(_)))
            .count();
        done
    }
}

/// A spawned call, aborted when dropped (its caller ended before it).
struct Spawned<T>(tokio::task::JoinHandle<T>);

impl<T> Future for Spawned<T> {
    type Output = Result<T, tokio::task::JoinError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl<T> Drop for Spawned<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Host for RunCtx {
    async fn start_fetch(&mut self, request: Request) -> wasmtime::Result<Option<Ticket>> {
        // The bodies the host may hold for the run stay within the run's own memory limit.
        let held = (self.in_flight.fetches as u64 + 1).saturating_mul(self.limits.fetch_max_bytes);
        if held > self.limits.memory_bytes as u64 {
            return Ok(None);
        }
        let Some(ticket) = self.in_flight.admit() else {
            return Ok(None);
        };
        self.in_flight.fetches += 1;
        let call = self.fetch_call(request)?;
        self.in_flight
            .start(ticket, "fetch", Box::pin(call.map(Outcome::Fetched)));
        Ok(Some(ticket))
    }

    async fn start_wait(
        &mut self,
        conditions: Vec<Condition>,
        timeout_ms: u32,
    ) -> wasmtime::Result<Option<Ticket>> {
        let Some(ticket) = self.in_flight.admit() else {
            return Ok(None);
        };
        let call = self.wait_call(conditions, timeout_ms)?;
        self.in_flight
            .start(ticket, "wait", Box::pin(call.map(Outcome::Waited)));
        Ok(Some(ticket))
    }

    async fn start_call(
        &mut self,
        slug: String,
        arguments: String,
    ) -> wasmtime::Result<Option<Ticket>> {
        // Only the run a trigger started fans out: a callee's calls (depth 1 and deeper) run
        // one at a time, so one request keeps at most 1 + MAX_CALLS_IN_FLIGHT call chains alive.
        if self.info.depth > 0 || self.in_flight.calls >= MAX_CALLS_IN_FLIGHT {
            return Ok(None);
        }
        let Some(ticket) = self.in_flight.admit() else {
            return Ok(None);
        };
        self.in_flight.calls += 1;
        // A task of its own: the callee runs on while this guest computes or makes a blocking
        // call, and its CPU time is never its caller's (or frozen into its own budget).
        let call = Spawned(tokio::spawn(self.automation_call(slug, &arguments)));
        self.in_flight.start(
            ticket,
            "call",
            Box::pin(call.map(|joined| {
                Outcome::Called(joined.unwrap_or_else(|e| {
                    Err(CallError::Trapped(format!("the call's task ended: {e}")))
                }))
            })),
        );
        Ok(Some(ticket))
    }

    async fn next_done(&mut self) -> wasmtime::Result<Vec<Done>> {
        let started = std::time::Instant::now();
        let done = self.in_flight.next_done().await;
        self.io_time += started.elapsed();
        Ok(done)
    }
}
