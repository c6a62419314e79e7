//! counter: a counter in the workspace's global state, incremented once per run; returns the
//! new count. The state path is `config.key` (default `counter.value`).

use refract_sdk::state::{self, Scope};
use refract_sdk::{Error, Invocation, Output};
use serde_json::json;

#[refract_sdk::automation]
fn handler(inv: Invocation) -> Result<Output, Error> {
    let path = inv.config_str("key").unwrap_or("counter.value");
    // Nothing stored yet counts as 0; a stored value that is not a number fails the run.
    let count = state::get::<u64>(Scope::Global, path)?.unwrap_or(0) + 1;
    state::set(Scope::Global, path, &count)?;
    Ok(Output::json(&json!({ "count": count })))
}
