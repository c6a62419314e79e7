//! `refract-core`: the vocabulary every Refract crate shares.
//!
//! - [`ids`]: validated newtypes for the ids that travel between services.
//! - [`event`]: the event envelope of `spec/http-api.md` §13.1, its validation and size.
//! - [`model`]: the workspace and automation documents.
//! - [`apps`]: published apps, their versions and app instances.
//! - [`permissions`]: roles, rules and the one permission check every service uses.
//! - [`platform`]: the platform's services and reserved event types: who may emit what, and
//!   how consumers tell a platform event from a tenant's.
//! - [`error`]: the small [`ErrorKind`] that retry logic and HTTP mapping read.
//!
//! This crate does no I/O and depends on nothing of ours: broker, storage, host and the
//! services all build on it.
#![warn(missing_docs)]

pub mod apps;
pub mod error;
pub mod event;
pub mod ids;
pub mod model;
pub mod permissions;
pub mod platform;
pub mod retention;
pub mod scope;

pub use error::{ErrorKind, ValidationError};
pub use event::{
    DEFAULT_MAX_EVENT_SIZE, ErrorLevel, Event, EventError, EventLimits, EventOptions, EventType,
    Source, SourceHost, SourceHttp, Target, json_size, type_is_under,
};
pub use ids::{CorrelationId, EventId, SessionId, UserId, WorkspaceId};
pub use scope::Scope;
