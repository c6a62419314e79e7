//! End-to-end test helpers.
//!
//! - [`fixtures`]: builds the guest components of `tests/fixtures` (their own cargo workspace,
//!   target `wasm32-wasip2`) once per test binary, into a target folder of their own so the
//!   build never waits on the outer cargo lock.
//! - [`platform`]: the whole platform in process on a loopback port, an HTTP client for it,
//!   and the SDK examples built once.
//! - [`sandbox`]: one shared pair of hosts per test binary (strict egress, and loopback allowed
//!   for local HTTP servers), with every fixture compiled once, plus request builders.

pub mod fixtures;
pub mod platform;
pub mod sandbox;
