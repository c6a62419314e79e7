//! The typed result of a run.

use std::time::Duration;

use crate::runlog::LogLine;

pub use crate::bindings::types::{AutomationError, HttpResponse, Output};

/// Why a run was stopped; the `reason` of the API's `ComponentTrap` (`spec/http-api.md` §1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrapReason {
    /// The guest-compute budget (epoch deadline) ran out.
    Cpu,
    /// The run's wall-clock budget ran out.
    Timeout,
    /// The guest asked for more linear memory than its limit.
    Memory,
    /// The guest overflowed its stack.
    Stack,
    /// The output is over its size limit.
    Output,
    /// The guest kept emitting or fetching after a per-run cap refused it.
    Limit,
    /// The guest panicked; the message is its panic message.
    Panic,
    /// Any other trap (unreachable, out-of-bounds access, division by zero, ...).
    Trap,
}

impl TrapReason {
    /// The reason as the API and the run records spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            TrapReason::Cpu => "cpu",
            TrapReason::Timeout => "timeout",
            TrapReason::Memory => "memory",
            TrapReason::Stack => "stack",
            TrapReason::Output => "output",
            TrapReason::Limit => "limit",
            TrapReason::Panic => "panic",
            TrapReason::Trap => "trap",
        }
    }
}

/// A run that did not return: why, and a message for humans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trapped {
    /// What stopped the run.
    pub reason: TrapReason,
    /// Details for the author (the limit hit, the panic message, the trap).
    pub message: String,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum RunOutcome {
    /// The automation returned an output.
    Ok(Output),
    /// The automation returned its own typed error (on purpose).
    Failed(AutomationError),
    /// The sandbox stopped the run.
    Trapped(Trapped),
}

impl RunOutcome {
    /// Why the sandbox stopped the run; `None` if the guest returned.
    pub fn trap_reason(&self) -> Option<TrapReason> {
        match self {
            RunOutcome::Trapped(t) => Some(t.reason),
            _ => None,
        }
    }
}

/// A finished run: its outcome and what it used.
#[derive(Debug, Clone, PartialEq)]
pub struct RunReport {
    /// How the run ended.
    pub outcome: RunOutcome,
    /// Events the run emitted.
    pub emits: u32,
    /// Outbound requests the run made.
    pub fetches: u32,
    /// Wall-clock time of the run (instantiation included).
    pub elapsed: Duration,
    /// The run's log as kept ([`crate::runlog`]): its `log` lines, stdio lines and the host's
    /// messages about it, secrets redacted.
    pub logs: Vec<LogLine>,
    /// Log lines and stdio bytes dropped over the log budget.
    pub logs_dropped: u64,
    /// The run's time, phase by phase.
    pub timings: RunTimings,
}

/// Where a run's time went (for metrics and the benchmark).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunTimings {
    /// Building the invocation and the `Store` (WASI context, limiter, epoch deadline).
    pub setup: Duration,
    /// Instantiating from the `InstancePre` (pool slots, memory image).
    pub instantiate: Duration,
    /// The `run` export, host calls included.
    pub call: Duration,
    /// Dropping the store (pool slots reset).
    pub teardown: Duration,
}
