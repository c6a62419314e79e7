//! `refract-storage`: the three kinds of storage Refract's services share, each an
//! `Arc<dyn Trait>` chosen by URL, so the embedded mode needs no server and the distributed
//! mode shares one instance between replicas.
//!
//! - [`store`]: the **document store** ([`DocumentStore`]) = the event history
//!   ([`EventHistory`], the datalake) + document collections ([`Collections`]: users,
//!   workspaces, permissions). Backends: `sqlite` (embedded default), `postgres`,
//!   `mongo`, and an in-memory twin; callers name none of them, [`open_document_store`]
//!   picks one by URL.
//! - [`access`]: who may do what in a workspace: memberships, custom roles, API keys and the
//!   workspace's rules, read for every request and decided by `refract_core::permissions`.
//! - [`cache`]: the **cache** ([`Cache`]): TTL values, counters, locks, hashes. Backends: in
//!   process (durable keys persisted in the embedded SQLite file) and Redis.
//! - [`files`]: **file storage** ([`FileStore`]) over `object_store`: local folder, S3, memory;
//!   content-addressed blobs for components.
//! - [`keys`]: every cache key name, built in one place.
//! - [`error`]: [`StorageError`] and its [`ErrorKind`](refract_core::ErrorKind).
//! - `location`: backend URLs, their options, and printing them without passwords.
//! - `sql`: what the SQLite and PostgreSQL backends share, written once over `sqlx`'s
//!   database-generic API: history reads and deletes, document reads and unique keys, the
//!   migration runner; each backend is a `sql::Dialect` for the few spellings that differ.
//!
//! Adding a document store backend: a module here implementing [`EventHistory`] and
//! [`Collections`] (for a SQL database supported by `sqlx`: a `sql::Dialect` and the append and
//! versioned-write statements, the rest is shared), its scheme in [`open_document_store`] and
//! [`DOCUMENT_STORE_SCHEMES`], and a conformance run in `tests/conformance`.
//!
//! Tests: `tests/conformance.rs` runs one suite per abstraction against every backend (the
//! server ones when `REFRACT_TEST_DATABASE_URL`, `REFRACT_TEST_REDIS_URL`,
//! `REFRACT_TEST_S3_ENDPOINT` or `MONGODB_URL` is set). Benchmark: `benches/history.rs`.
//!
//! This crate depends on `refract-core` only among our crates. It must not depend on the
//! broker, the host or any service: services depend on it.

#![warn(missing_docs)]

pub mod access;
pub mod cache;
pub mod documents;
pub mod error;
pub mod files;
pub mod history;
pub mod keys;
mod location;
mod mongo;
mod postgres;
mod sql;
mod sqlite;
pub mod store;

pub use access::{WorkspaceAccess, access_of, api_key_hash, is_member, role_of};
pub use cache::{CACHE_SCHEMES, Cache, TokenBucket, open_cache};
pub use documents::{CollectionSpec, Collections, Document, Expect, collections};
pub use error::{Result, StorageError};
pub use files::{Digest, FILE_STORE_SCHEMES, FileStore, open_file_store, open_file_store_with};
pub use history::{AppendOutcome, EventHistory, FieldFilter, HistoryQuery, SortOrder, TypeFilter};
pub use keys::{CacheKey, UsageMetric};
pub use refract_core::permissions::Principal;
pub use store::{DOCUMENT_STORE_SCHEMES, DocumentStore, MemoryStore, open_document_store};
