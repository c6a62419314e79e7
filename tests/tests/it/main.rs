//! The one integration-test binary of the workspace (each test binary links wasmtime).
//! Guest fixtures are built and compiled once per run of this binary.

mod cluster;
mod console;
mod dsl;
mod egress;
mod identity;
mod events;
mod platform;
mod runtime;
mod sandbox;
mod validation;
mod workspaces;
