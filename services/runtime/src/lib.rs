//! `refract-runtime`: runs automations in the sandbox on events, webhooks and schedules.
//!
//! Triggers (what starts a run) are separate from the executor (what runs it); they meet in the
//! run vocabulary of `run`: a trigger builds an `Execution`, the executor runs it.
//!
//! - `run`: one run's plain types: `Execution`, `TriggerInfo`/`TriggerKind`, `Credentials`,
//!   the `Refusal`s that stop a run before it starts, and the registry of live runs.
//! - `state`: [`RuntimeState`], everything a runtime instance holds, built once.
//! - `config`: [`Config`], its defaults and [`ConfigError`].
//! - `triggering`: which events the consumer group reads and which of them start automations.
//! - `index`: the per-instance trigger index (events, endpoints, schedules), loaded from the
//!   `automations` collection and kept current from `workspaces.automations.*` (fan-out).
//! - `apps`: app instances: loaded per workspace into the index under their own keys,
//!   namespaced events, calls and endpoints (`automation-dsl.md` §8).
//! - `executor`: runs one automation in the host after its checks (`arguments`: the
//!   `validateArguments` schemas); also the `call` import. `report`: the events of a run
//!   (`runtime.interactions.triggered`, `runtime.automations.executed`, `error`);
//!   `observe`: its metrics.
//! - `http`: [`router`]: webhooks and test runs over HTTP, one file per route.
//! - `workers`: [`run_workers`]: the event consumer (group `runtime`), the fan-out listener
//!   (index updates, waits) and the scheduler; `fair`: each workspace's share of its
//!   concurrency.
//! - `dsl`: DSL automations: the embedded interpreter component (built by `build.rs`) and
//!   the compiled programs it is handed per run.
//! - `schedule`: cron with seconds and time zones, one run per tick cluster-wide.
//! - `contexts` + `paths`: the `state` import (global, user, session, run scopes);
//!   `coordination`: its cluster-wide `rate-limit` and user topics (WIT 0.1.1);
//!   `workspace_config`: the workspace `config` runs read and write (WIT 0.1.2 `set-config`);
//!   `user_fields`: `user.email`, `user.authData`, `user.role`.
//! - `bus` + `waiters`: the `emit` and `wait` imports over the broker; `throttle`: each
//!   workspace's execution and emit rates, cluster-wide.
//!
//! Modules depend in one direction, each only on those before it:
//!
//! 1. plain parts: `config` + `sandbox`, `error`, `triggering`, `apps`, `paths`, `fair`,
//!    `waiters`, `throttle`, `coordination`, `user_fields`, `arguments`;
//! 2. `run` (the run vocabulary), then `dsl`, `index`, `schedule`;
//! 3. the host's services: `bus`, `workspace_config`, `contexts`;
//! 4. running: `report`, `observe`, then `executor`;
//! 5. the instance: `state`, then its triggers `workers` and `http`.
//!
//! Wiring (the binary): build the [`Host`](refract_host::Host) with [`Config::host_config`] and
//! an artifact store over the shared file storage, then `RuntimeState::new(broker, store,
//! cache, files, host, config).await?`; serve [`router`] behind the gateway and spawn
//! `run_workers(state, shutdown)`.
//!
//! Depends on core, http, broker, storage and host; never on another service crate.

#![warn(missing_docs)]

mod apps;
mod arguments;
mod bus;
mod config;
mod contexts;
mod coordination;
mod dsl;
mod error;
mod executor;
mod fair;
mod http;
mod index;
mod observe;
mod paths;
mod quotas;
mod report;
mod retries;
mod run;
mod sandbox;
mod schedule;
mod secrets;
mod state;
mod throttle;
mod triggering;
mod usage;
mod user_fields;
mod waiters;
mod workers;
mod workspace_config;

pub use config::{Config, ConfigError};
pub use dsl::INTERPRETER;
pub use error::RuntimeError;
pub use http::{api, router};
pub use index::TriggerIndex;
pub use sandbox::SandboxPolicy;
pub use state::RuntimeState;
pub use workers::run_workers;
