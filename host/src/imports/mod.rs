//! The world's imports, one file per WIT interface. Each validates what the guest sent, checks
//! the run's limits, calls the runtime's service and turns its answer into WIT values. Errors the
//! guest caused are returned as values; only a guest that keeps calling after a per-run cap
//! refused it gets a trap.

mod automations;
mod concurrent;
mod events;
mod http;
mod logging;
mod response;
mod secrets;
mod state;
mod timers;

use wasmtime::component::{HasSelf, Linker};

pub(crate) use concurrent::InFlight;

use crate::bindings::{Automation, types};
use crate::store::{RunCtx, RunView};

impl types::Host for RunCtx {}

/// Adds the Refract imports to `linker`; host code reaches its state through [`RunView`].
pub(crate) fn add_to_linker<T: RunView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    Automation::add_to_linker::<T, HasSelf<RunCtx>>(linker, T::run_ctx)
}

/// Parses guest JSON, as the WIT promises: invalid JSON is an `invalid` error, never a trap.
pub(crate) fn parse_json(what: &str, text: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(text).map_err(|e| format!("{what} is not valid JSON: {e}"))
}
