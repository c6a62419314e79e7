//! `refract`: the one binary, as a library so end-to-end tests can start the same cluster
//! in process.
//!
//! - [`cli`]: the command line (the binary's `main`).
//! - [`config`]: settings, layered defaults < TOML file < `REFRACT_*` env < flags.
//! - [`serve`]: the embedded mode (every service in one process) and one-service modes.
//! - [`deploy`]: build, register and upload an automation.
//! - [`observability`]: readiness, `/metrics` and the HTTP metrics layer of every process.

pub mod cli;
pub mod config;
pub mod deploy;
pub mod observability;
pub mod serve;

pub use config::{Config, Flags};
