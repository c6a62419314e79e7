//! `refract-runtime`: runs automations in the sandbox on events, webhooks and schedules.
//!
//! Triggers (what starts a run) are separate from the executor (what runs it):
//!
//! - [`state`]: [`RuntimeState`], everything a runtime instance holds, built once.
//! - [`config`]: [`Config`] and its defaults.
//! - [`index`]: the per-instance trigger index (events, endpoints, schedules), loaded from the
//!   `automations` collection and kept current from `workspaces.automations.*` (fan-out).
//! - [`apps`]: app instances: loaded per workspace into the index under their own keys,
//!   namespaced events, calls and endpoints (`automation-dsl.md` §8).
//! - [`executor`]: runs one automation in the host and reports `runtime.automations.executed`
//!   (and `error`); also the `call` import.
//! - [`webhook`]: `router(state)`: webhooks and test runs over HTTP.
//! - [`workers`]: `run_workers`: the event consumer (group `runtime`), the fan-out listener
//!   (index updates, waits) and the scheduler; [`fair`]: each workspace's share of its
//!   concurrency.
//! - [`dsl`]: DSL automations: the embedded interpreter component (built by `build.rs`) and
//!   the compiled programs it is handed per run.
//! - [`schedule`]: cron with seconds and time zones, one run per tick cluster-wide.
//! - [`contexts`] + [`paths`]: the `state` import (global, user, session, run scopes);
//!   [`coordination`]: its cluster-wide `rate-limit` and user topics (WIT 0.1.1);
//!   [`workspace_config`]: the workspace `config` runs read and write (WIT 0.1.2 `set-config`);
//!   [`user_fields`]: `user.email`, `user.authData`, `user.role`.
//! - [`bus`] + [`waiters`]: the `emit` and `wait` imports over the broker; [`throttle`]: each
//!   workspace's execution and emit rates, cluster-wide.
//!
//! Wiring (the binary): build the [`Host`](refract_host::Host) with [`Config::host_config`] and
//! an artifact store over the shared file storage, then `RuntimeState::new(broker, store,
//! cache, files, host, config).await?`; serve [`router`] behind the gateway and spawn
//! `run_workers(state, shutdown)`.
//!
//! Depends on core, http, broker, storage and host; never on another service crate.

pub mod apps;
pub mod bus;
pub mod config;
pub mod contexts;
pub mod coordination;
pub mod dsl;
pub mod error;
pub mod executor;
pub mod fair;
pub mod index;
mod observe;
pub mod paths;
pub mod sandbox;
pub mod schedule;
pub mod state;
pub mod throttle;
pub mod user_fields;
pub mod waiters;
pub mod webhook;
pub mod workers;
pub mod workspace_config;

pub use config::Config;
pub use error::RuntimeError;
pub use sandbox::SandboxPolicy;
pub use state::RuntimeState;
pub use webhook::router;
pub use workers::run_workers;
