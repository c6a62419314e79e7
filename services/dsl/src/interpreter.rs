//! Runs a [`Program`] (`automation-dsl.md` §3, §5, §6). Every effect on the outside world goes
//! through [`Outside`], which the interpreter component implements with the WIT imports and the
//! tests with an in-memory twin.
//!
//! - `outside`: the [`Outside`] trait, its optional capabilities and the run's plain types.
//! - `runner`: the state of one run ([`Runner`](runner::Runner)): locals, the `$http` channel,
//!   how an instruction's argument is rendered and its result written.
//! - `concurrent`: how the branches of an `all` run together on one thread.
//! - `scopes`: the persistent and computed scopes (§5.2) and identity switches (§5.5).
//! - `paths`: writes and deletes at a variable path (§3.2, §3.3): locals, scopes, `config`,
//!   `$http`.
//!
//! The instructions themselves (each one's compile and run) are in [`crate::instructions`].

pub(crate) mod concurrent;
mod outside;
pub(crate) mod paths;
pub(crate) mod runner;
mod scopes;

pub use outside::{
    ConfigWriter, Coordination, FetchRequest, FetchResponse, HostCall, HostReply, HttpOut,
    IdentitySwitch, Outside, RateLimitCall, RateLimitState, RunInput, RunResult, Scope, Ticket,
    WaitFor,
};

use std::cell::RefCell;

use serde_json::json;

use crate::error::DslError;
use crate::instructions;
use crate::program::Program;
use crate::template::render;
use runner::{BreakScope, Flow, Runner};

/// The error code by which a called automation that ended with `break: {scope: all}` stops
/// its caller (whose own run then ends the same way, up to the root, where it is a plain
/// break); the details are the callee's output. The runtime records such a run as a success.
pub const BREAK_ALL: &str = "BreakAll";

/// Runs `program` with `input` against `outside`.
pub fn run(
    program: &Program,
    input: RunInput,
    outside: &mut dyn Outside,
) -> Result<RunResult, DslError> {
    let r = RefCell::new(Runner::new(input, outside));
    let flow = concurrent::complete(instructions::block(&r, &program.instructions))?;
    let mut r = r.into_inner();
    let (broke, stops_callers) = (
        matches!(flow, Flow::Break(..)),
        matches!(flow, Flow::Break(BreakScope::All, _)),
    );
    // A loop's break outside any loop still ends the automation; its payload is meant for a
    // loop, so it has no output to become here either.
    let payload = match flow {
        Flow::Break(BreakScope::Automation | BreakScope::All, payload) => payload,
        _ => None,
    };
    let output = match (&program.output, payload) {
        (_, Some(payload)) => payload,
        (None, None) => json!({}),
        // A template resolving to nothing answers `undefined`, which JSON writes as null.
        (Some(t), None) => render(t, &mut r)?.into_json_or_null(),
    };
    Ok(RunResult {
        output,
        http: r.http,
        broke,
        stops_callers,
    })
}

#[cfg(test)]
pub(crate) mod twin;
