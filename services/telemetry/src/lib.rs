//! `refract-telemetry`: what every Refract service reports about itself (`spec/http-api.md`
//! §12), so operators can tell whether it is up, ready and how it behaves.
//!
//! - [`metrics`]: the process's Prometheus recorder and the `/metrics` text; services record
//!   through the `metrics` facade macros and never see the exporter.
//! - [`http`]: the tower middleware that counts and times every request by route template.
//! - [`readiness`]: dependency checks with a short timeout, as the `/sys/readiness` answer.
//! - [`logs`]: the process's tracing subscriber: text or JSON lines, and the OTLP trace
//!   exporter when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
//! - [`propagation`]: the W3C `traceparent` of the current span, carried in event envelopes
//!   and HTTP headers so one trace follows a request through the broker.
//!
//! Depends on no Refract crate: every service (and the broker) may depend on it.
#![warn(missing_docs)]

pub mod http;
pub mod logs;
pub mod metrics;
pub mod propagation;
pub mod readiness;

pub use readiness::{Check, readiness};
