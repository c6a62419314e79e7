//! `refract-sdk`: what Refract automation authors depend on.
//!
//! An automation is a WebAssembly component targeting the `refract:automation@0.1.6` world
//! (`wit/automation.wit`). Every run gets a fresh instance: nothing in guest memory survives from
//! one run to the next; what must survive goes through [`state`]. This crate hides the
//! `wit-bindgen` bindings behind hand-written types and one attribute macro,
//! [`automation`]:
//!
//! ```no_run
//! use refract_sdk::{Error, Invocation, Output, Trigger};
//!
//! #[refract_sdk::automation]
//! fn handler(inv: Invocation) -> Result<Output, Error> {
//!     let name = match &inv.trigger {
//!         Trigger::Call { arguments } => arguments["name"].as_str().unwrap_or("world").to_owned(),
//!         _ => "world".to_owned(),
//!     };
//!     refract_sdk::log::info(&format!("greeting {name}"));
//!     Ok(Output::json(&serde_json::json!({ "hello": name })))
//! }
//! ```
//!
//! Build with `cargo build --target wasm32-wasip2 --release`; the component is
//! `target/wasm32-wasip2/release/<crate_name>.wasm`.
//!
//! Layout, one module per host interface:
//! - [`invocation`]: what a run is given ([`Invocation`], [`Trigger`]).
//! - [`output`] and [`error`](mod@error): what a run returns ([`Output`], [`Error`]).
//! - [`events`]: [`emit`] and [`wait`]; [`http`]: [`fetch`]; [`state`]; [`log`];
//!   [`automations`]: [`call`]; [`secrets`]: the workspace's secrets (world 0.1.3);
//!   [`concurrent`]: fetches, waits and calls started without blocking (world 0.1.5);
//!   [`response`]: a webhook's answer streamed while the run goes on, and [`timers`]: a pause
//!   that spends wall clock, not CPU (world 0.1.6).
//!
//! Errors are values: every host error is a typed enum, host data that fails to parse becomes an
//! error rather than a panic, and every SDK error converts into [`Error`] so `?` works in a
//! handler. The crate depends on nothing of Refract's but `wit/`.

#![warn(missing_docs)]

pub mod automations;
pub mod concurrent;
pub mod error;
pub mod events;
pub mod http;
pub mod invocation;
pub mod log;
pub mod output;
pub mod response;
pub mod secrets;
pub mod state;
pub mod timers;

pub use automations::{CallError, call};
pub use error::Error;
pub use events::{Condition, Emit, EmitError, Event, Target, WaitError, emit, wait};
pub use http::{FetchError, Request, Response, fetch};
pub use invocation::{HttpRequest, Invocation, InvocationError, Trigger};
pub use output::Output;
pub use state::{Scope, StateError};

/// The `serde_json` the SDK is built with, for authors who do not depend on it themselves.
pub use serde_json;

/// Marks the automation's handler and exports it as the component's `run`.
///
/// The handler is a plain (not `async`) function taking an [`Invocation`] and returning
/// `Result<O, E>` where `O: Into<Output>` and `E: Into<Error>`:
///
/// ```no_run
/// #[refract_sdk::automation]
/// fn handler(inv: refract_sdk::Invocation) -> Result<refract_sdk::Output, refract_sdk::Error> {
///     Ok(refract_sdk::Output::text(format!("run in {}", inv.workspace_id)))
/// }
/// ```
///
/// Any output convertible into [`Output`] works, including an opaque one:
///
/// ```no_run
/// #[refract_sdk::automation]
/// fn handler(
///     inv: refract_sdk::Invocation,
/// ) -> Result<impl Into<refract_sdk::Output>, refract_sdk::Error> {
///     Ok(serde_json::json!({ "slug": inv.automation_slug }))
/// }
/// ```
///
/// Exactly one function per component may carry this attribute. The author's crate must
/// depend on this crate under its own name, `refract_sdk` (the expansion names it).
///
/// An `async` handler, or one with other than one argument, is a compile error:
///
/// ```compile_fail
/// #[refract_sdk::automation]
/// async fn handler(inv: refract_sdk::Invocation) -> Result<(), refract_sdk::Error> {
///     Ok(())
/// }
/// ```
///
/// ```compile_fail
/// #[refract_sdk::automation]
/// fn handler() -> Result<(), refract_sdk::Error> {
///     Ok(())
/// }
/// ```
pub use refract_sdk_macro::automation;

// Lets the generated bindings and the macro name this crate as `::refract_sdk` from inside it.
extern crate self as refract_sdk;

/// The `wit-bindgen` bindings of the world: the one `generate!` of the SDK.
///
/// Public only because the `export!` macro it defines expands in the author's crate and must
/// name these items by path; not part of the API.
#[doc(hidden)]
// wit-bindgen's generated code is built on `unsafe` (raw canonical-ABI pointers, `static mut`
// return areas, `#[unsafe(export_name)]`); this module is the narrowest scope holding all of it.
#[allow(unsafe_code, missing_docs, clippy::all)]
pub mod __bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "refract:automation/automation@0.1.6",
        // The export macro is used by `#[automation]` in the author's crate.
        pub_export_macro: true,
        default_bindings_module: "::refract_sdk::__bindings",
        export_macro_name: "__export_automation",
    });
}

/// Items `#[automation]` expands to. Not part of the API; may change in any release.
#[doc(hidden)]
pub mod __private {
    pub use crate::__bindings::__export_automation;
    pub use crate::__bindings::Guest;
    use crate::__bindings::refract::automation::types as raw;

    /// The raw invocation as lifted by wit-bindgen.
    pub type RawInvocation = raw::Invocation;
    /// The raw output handed back to the host.
    pub type RawOutput = raw::Output;
    /// The raw automation error handed back to the host.
    pub type RawError = raw::AutomationError;

    /// Runs `handler` on a raw invocation: converts the invocation (bad host JSON becomes an
    /// `InvalidInvocation` error, not a panic), calls the handler, converts the result.
    pub fn run<O, E>(
        invocation: RawInvocation,
        handler: fn(crate::Invocation) -> Result<O, E>,
    ) -> Result<RawOutput, RawError>
    where
        O: Into<crate::Output>,
        E: Into<crate::Error>,
    {
        let invocation = crate::Invocation::from_raw(invocation)
            .map_err(|e| crate::Error::from(e).into_raw())?;
        match handler(invocation) {
            Ok(output) => output.into().into_raw().map_err(crate::Error::into_raw),
            Err(error) => Err(error.into().into_raw()),
        }
    }
}

/// Compiles the README's Rust example as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

#[cfg(test)]
mod tests {
    use super::__private::{RawInvocation, run};
    use super::*;
    use crate::__bindings::refract::automation::types as raw;

    fn invocation(config: &str) -> RawInvocation {
        raw::Invocation {
            trigger: raw::Trigger::Call(r#"{"n":2}"#.into()),
            workspace_id: "ws".into(),
            automation_slug: "double".into(),
            correlation_id: "c".into(),
            user_id: None,
            session_id: None,
            config: config.into(),
        }
    }

    fn double(inv: Invocation) -> Result<Output, Error> {
        let Trigger::Call { arguments } = inv.trigger else {
            return Err(Error::new("NotACall", "expected a call"));
        };
        let n = arguments["n"]
            .as_i64()
            .ok_or_else(|| Error::new("BadArgs", "n must be an integer"))?;
        Ok(Output::json(&serde_json::json!({ "n": n * 2 })).status(202))
    }

    fn fails(_: Invocation) -> Result<(), serde_json::Error> {
        serde_json::from_str::<()>("nope")
    }

    fn must_not_run(_: Invocation) -> Result<(), Error> {
        panic!("the handler must not run on bad host data");
    }

    #[test]
    fn run_converts_invocation_and_output() {
        let out = run(invocation("{}"), double).unwrap();
        assert_eq!(out.body, r#"{"n":4}"#);
        assert_eq!(out.http.map(|h| h.status), Some(202));
    }

    #[test]
    fn run_converts_any_error_into_the_automation_error() {
        let err = run(invocation("{}"), fails).unwrap_err();
        assert_eq!(err.code, error::CODE_INVALID_JSON);
        assert_eq!(err.details.as_deref(), Some(r#"{"kind":"json"}"#));
    }

    #[test]
    fn run_reports_bad_host_data_without_calling_the_handler() {
        let err = run(invocation("not json"), must_not_run).unwrap_err();
        assert_eq!(err.code, error::CODE_INVALID_INVOCATION);
    }
}
