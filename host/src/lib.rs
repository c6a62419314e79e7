//! `refract-host`: Refract's wasmtime embedding. It validates and compiles automation components,
//! and runs each trigger in a fresh, limited instance.
//!
//! - [`engine`]: the process-wide engine (pooling allocator, copy-on-write images, epochs).
//! - [`limits`]: per-run limits, their defaults, and the memory limiter.
//! - [`validate`]: upload checks (a component, our world, allowed imports only).
//! - [`cache`]: compile once per content hash; [`ArtifactStore`] and the `InstancePre` LRU.
//! - [`run`]: the [`Host`]: `check`, `upload` and `run`.
//! - [`outcome`]: the typed result of a run ([`RunOutcome`], [`TrapReason`]).
//! - [`runlog`]: a run's log as its workspace reads it ([`LogLine`]), bounded and redacted.
//! - [`services`]: the traits the runtime implements for the imports, one per capability
//!   ([`EventBus`], [`StateStore`], [`AutomationCaller`], and the optional [`Coordination`],
//!   [`ConfigStore`], [`Identities`]) gathered in [`Services`]; [`memory`] has their in-memory
//!   twins and `conformance` (feature `testing`) the one test suite every implementation passes.
//! - [`answer`]: a webhook run's answer streamed while it runs ([`AnswerSink`]).
//! - [`egress`]: `fetch` under the egress policy (allow-list, refused address ranges after
//!   DNS, redirects re-checked, timeouts, size cap).
//! - `imports/`: one file per WIT interface; `store`: what a run's `Store` holds; `stdio`:
//!   guest stdout/stderr into `tracing`; `bindings`: the one `bindgen!`.
//!
//! This crate depends on `refract-core` and on traits only: never on Redis, HTTP servers or any
//! service crate. Errors a guest causes are values ([`RunOutcome`], the WIT error variants);
//! traps are for exceeded limits and host bugs.

#![warn(missing_docs)]

pub mod answer;
pub mod bindings;
pub mod cache;
#[cfg(any(test, feature = "testing"))]
pub mod conformance;
pub mod egress;
pub mod engine;
pub mod error;
mod imports;
pub mod limits;
pub mod memory;
pub mod outcome;
pub mod run;
pub mod runlog;
pub mod services;
mod shares;
mod stdio;
mod store;
pub mod validate;

pub use answer::{AnswerPart, AnswerSink};
pub use bindings::types::{Event as WitEvent, HttpRequest, Invocation, ScheduleTick, Trigger};
pub use cache::{ArtifactStore, ArtifactStoreError, ComponentDigest, MemoryArtifactStore};
pub use egress::{EgressConfig, EgressPolicy};
pub use engine::EngineConfig;
pub use error::{HostError, NotAComponent};
pub use limits::Limits;
pub use outcome::{
    AutomationError, HttpResponse, Output, RunOutcome, RunReport, RunTimings, TrapReason, Trapped,
};
pub use run::{Host, HostConfig, RunRequest};
pub use runlog::{LogLevel, LogLine, LogSource};
pub use services::{
    AutomationCaller, CallFailure, ConfigStore, Coordination, EventBus, Identities, RateLimitState,
    RateLimiter, RunContext, ServiceError, Services, StateStore, WaitCondition,
};
