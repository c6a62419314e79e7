//! The one `bindgen!` of the host side: Rust types and traits for `wit/automation.wit`.
//!
//! I/O imports (`emit`, `wait`, `fetch`, state, `call`) are async so the runtime's
//! implementations can await their backends; `log` and `secrets.get` stay sync because they
//! only hand a line to `tracing` or read the run's secrets snapshot. Every import is `trappable`: an `Err` ends the run, and the host uses that only for
//! exceeded limits (a guest that keeps calling after a refusal), never for errors the guest can
//! handle.

// Everything below is generated from `wit/automation.wit`, whose own comments document each
// type and function; bindgen copies those as doc comments where it can, but not onto the glue
// it adds (the `Automation*` structs, `add_to_linker`, the `Host` traits' plumbing).
#![allow(missing_docs)]

wasmtime::component::bindgen!({
    path: "../wit",
    world: "automation",
    imports: {
        "refract:automation/logging.log": trappable,
        "refract:automation/secrets.get": trappable,
        default: async | trappable,
    },
    exports: { default: async },
    additional_derives: [PartialEq],
});

pub use refract::automation::{
    automations, concurrent, events, http, logging, response, secrets, state, timers, types,
};
