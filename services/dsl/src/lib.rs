//! `refract-dsl`: the Prisme.ai-compatible YAML automation language (`spec/automation-dsl.md`).
//!
//! No I/O: it builds for native (the workspaces service validates and compiles on save) and for
//! `wasm32-wasip2` (the interpreter component runs the compiled form in the sandbox). It depends
//! on no crate of ours.
//!
//! - [`document`]: validation of automation documents (errors with path and rule) and their
//!   compilation; YAML loading behind the `yaml` feature. [`program`]: the compiled,
//!   serializable [`Program`].
//! - `instructions`: one file per instruction, holding both its compile-time checks and how it
//!   runs, and the registry that dispatches to them.
//! - [`interpreter`]: runs a [`Program`] against the [`Outside`] trait (emit, wait, fetch,
//!   state, call) and its optional capabilities, which the interpreter component implements
//!   with the WIT imports.
//! - [`setup`]: the run contract: what the runtime hands the interpreter component per run.
//! - [`budget`]: what parsing a tenant's YAML or JSON document may cost ([`Budget`]: bytes,
//!   nodes after alias expansion, depth); every parse of a tenant document goes through it.
//! - [`template`]: `{{path}}` / `{% expr %}` templates; [`expr`] parses expressions,
//!   [`eval`] and [`functions`] evaluate them ([`datefmt`]: `date()` formatting, [`jsonmatch`]:
//!   MongoDB-style queries); [`path`]: variable paths.
//! - [`value`]: the JS value semantics the language is defined by.
//! - [`error`]: the run-time [`DslError`], the save-time [`Invalid`] and the parsers' errors.

#![warn(missing_docs)]

#[cfg(feature = "arguments")]
pub mod arguments;
pub mod budget;
#[cfg(test)]
mod conformance;
pub mod datefmt;
pub mod document;
pub mod error;
pub mod eval;
pub mod expr;
pub mod functions;
#[cfg(all(test, feature = "yaml"))]
mod fuzz;
mod instructions;
pub mod interpreter;
pub mod jsonmatch;
pub mod path;
pub mod program;
#[cfg(test)]
mod reference_examples;
pub mod setup;
pub mod template;
pub mod value;

pub use budget::{Budget, DocumentError};
#[cfg(feature = "yaml")]
pub use document::from_yaml;
pub use document::{compile, compile_document, reads_workspace};
pub use error::{
    DecodeError, DslError, Invalid, QueryError, SchemaError, SyntaxError, TemplateError,
};
pub use instructions::MAX_NESTING;
pub use interpreter::{
    BREAK_ALL, ConfigWriter, Coordination, FetchRequest, FetchResponse, HostCall, HostReply,
    HttpOut, IdentitySwitch, Outside, RateLimitCall, RateLimitState, RunInput, RunResult, Scope,
    Ticket, WaitFor, run,
};
pub use program::{Instr, Program};
pub use setup::{Setup, SetupTrigger};
