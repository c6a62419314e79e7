//! Service tests of the workspaces router through `oneshot`, with in-memory backends and the
//! trusted headers set as the gateway sets them. No real component is compiled here (debug
//! builds compile slowly); successful uploads are tested in `tests/tests/it/workspaces.rs`.

mod automations;
mod common;
mod components;
mod secrets;
mod workspaces;
