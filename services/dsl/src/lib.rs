//! `refract-dsl`: the Prisme.ai-compatible YAML automation language (`spec/automation-dsl.md`).
//!
//! No I/O: it builds for native (the workspaces service validates and compiles on save) and for
//! `wasm32-wasip2` (the interpreter component runs the compiled form in the sandbox).
//!
//! - [`document`]: validation of automation documents (errors with path and rule) and the
//!   compiled, serializable [`Program`]; YAML loading behind the `yaml` feature.
//! - [`budget`]: what parsing a tenant's YAML or JSON document may cost ([`Budget`]: bytes,
//!   nodes after alias expansion, depth); every parse of a tenant document goes through it.
//! - [`template`]: `{{path}}` / `{% expr %}` templates; [`expr`] parses expressions,
//!   [`eval`] and [`functions`] evaluate them ([`datefmt`]: `date()` formatting, [`jsonmatch`]:
//!   MongoDB-style queries); [`path`]: variable paths.
//! - [`value`]: the JS value semantics the language is defined by.
//! - [`interpreter`]: runs a [`Program`] against the [`Outside`] trait (emit, wait, fetch,
//!   state, call), which the interpreter component implements with the WIT imports.

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
pub mod interpreter;
pub mod jsonmatch;
pub mod path;
pub mod template;
pub mod value;

pub use budget::{Budget, DocumentError};
#[cfg(feature = "yaml")]
pub use document::from_yaml;
pub use document::{Instr, Program, compile, compile_document};
pub use error::{DslError, Invalid};
pub use interpreter::{
    FetchRequest, FetchResponse, HttpOut, Outside, RateLimitCall, RateLimitState, RunInput,
    RunResult, Scope, WaitFor, run,
};
