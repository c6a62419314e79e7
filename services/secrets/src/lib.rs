//! `refract-secrets`: what the platform does with workspace secrets beyond storing documents.
//!
//! - [`Keyring`]: values are sealed at rest with AES-256-GCM under the keyring's first key and
//!   opened with whichever key sealed them, so a new key can be put first while the values
//!   sealed under older ones stay readable.
//! - [`Redactor`]: every value of a workspace's secrets replaced by `"REDACTED"` in what a run
//!   leaves behind (events, history, reports, logs).
//! - [`WorkspaceSecrets`]: one workspace's opened values and their redactor, as a run holds them.

#![warn(missing_docs)]

mod keyring;
mod redact;
mod workspace;

pub use keyring::{Keyring, KeyringError, Sealed};
pub use redact::Redactor;
pub use refract_core::apps::REDACTED;
pub use workspace::{WorkspaceSecrets, open_secret, seal_secret};
