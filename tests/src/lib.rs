//! End-to-end test helpers.
//!
//! - [`balancer`]: a round-robin TCP load balancer with failover, in front of gateways.
//! - [`cluster`]: every service as its own `refract` process on Redis, PostgreSQL and a shared
//!   folder, behind the balancer.
//! - [`fixtures`]: builds the guest components of `tests/fixtures` (their own cargo workspace,
//!   target `wasm32-wasip2`) once per test binary, into a target folder of their own so the
//!   build never waits on the outer cargo lock.
//! - [`proxy`]: a TCP proxy that can be cut (a backend outage without stopping the server).
//! - [`redis_server`]: a private `redis-server` a test can restart.
//! - [`platform`]: the whole platform in process on a loopback port, an HTTP client for it,
//!   and the SDK examples built once.
//! - [`sandbox`]: one shared pair of hosts per test binary (strict egress, and loopback allowed
//!   for local HTTP servers), with every fixture compiled once, plus request builders.

#![warn(missing_docs)]

pub mod balancer;
pub mod cluster;
pub mod fixtures;
pub mod platform;
pub mod proxy;
pub mod redis_server;
pub mod sandbox;
