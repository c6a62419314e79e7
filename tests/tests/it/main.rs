//! The one integration-test binary of the workspace (each test binary links wasmtime).
//! Guest fixtures are built and compiled once per run of this binary.
// Test helpers fail their test by panicking, like the tests themselves (clippy's
// `allow-unwrap-in-tests` covers only `#[test]` functions).
#![allow(clippy::unwrap_used)]

mod apps;
mod cli;
mod cluster;
mod console;
mod dsl;
mod egress;
mod events;
mod export;
mod hostile;
mod identity;
mod interpreted;
mod js_guests;
mod observability;
mod oidc;
mod platform;
mod python_guests;
mod quotas;
mod retries;
mod runtime;
mod sandbox;
mod secrets;
mod tenants;
mod validation;
mod versions;
mod workspaces;
