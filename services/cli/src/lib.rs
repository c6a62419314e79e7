//! `refract`: the one binary, as a library so end-to-end tests can start the same cluster
//! in process.
//!
//! - [`cli`]: the command line (the binary's `main`).
//! - [`contract`]: the API's OpenAPI document, merged from every service's operations.
//! - [`config`]: settings, layered defaults < TOML file < `REFRACT_*` env < flags.
//! - [`serve`]: the embedded mode (every service in one process) and one-service modes.
//! - [`commands`]: the commands that call a platform's HTTP API (`login`, `workspaces`,
//!   `automations`, `export`, `import`, `deploy`, `logs`), runnable in process with
//!   [`run_api_command`]; they share [`api`] (the HTTP client), [`profile`] (where the URL,
//!   token and workspace come from), [`output`] (JSON or tables) and [`progress`] (upload
//!   progress bars).
//! - [`deploy`]: build, register and upload an automation.
//! - [`logs`]: the runs of a workspace and their logs (`refract logs`).
//! - [`scaffold`]: `refract new`, a new automation folder in Rust, JavaScript, TypeScript or
//!   Python.
//! - [`admin`]: operator commands on accounts (superadmin grants, deactivation).
//! - [`observability`]: readiness, `/metrics` and the HTTP metrics layer of every process.
#![warn(missing_docs)]

pub mod admin;
pub mod api;
mod build;
pub mod cli;
pub mod commands;
pub mod config;
pub mod contract;
pub mod deploy;
pub mod logs;
pub mod observability;
pub mod output;
pub mod profile;
pub mod progress;
pub mod scaffold;
pub mod serve;

pub use commands::{Console, run_api_command};
pub use config::{Config, Flags};

/// mimalloc rather than glibc's malloc: the platform allocates and frees many short-lived
/// buffers across threads (events, JSON, guest stores), where glibc's per-thread arenas cost
/// CPU in consolidation and keep freed memory as RSS (see the webhook benchmark). Declared in
/// the library, so every binary that runs the platform gets it: `refract`, and `refract-node`,
/// the same command line the cluster tests and benchmarks start as processes.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Gives back what a compile freed (the host calls it after compiling a component or the DSL
/// interpreter): mimalloc keeps a thread's freed pages until that thread allocates again, and
/// Cranelift compiles on rayon's threads, which then sit idle. Measured: `refract serve` idled
/// at 132 MiB after compiling the interpreter, against 54 MiB once restarted on its stored
/// artifact.
pub(crate) fn release_compiler_memory() {
    #[allow(unsafe_code)]
    fn collect() {
        // SAFETY: `mi_collect` takes no pointer and may be called from any thread at any time;
        // it only returns this thread's free pages (and abandoned ones) to the OS.
        unsafe { libmimalloc_sys::mi_collect(true) }
    }
    rayon::broadcast(|_| collect());
    collect();
}
