//! One conformance suite per storage abstraction, run against every backend: the in-memory
//! twins and SQLite always; PostgreSQL (`REFRACT_TEST_DATABASE_URL`), Redis
//! (`REFRACT_TEST_REDIS_URL`), S3 (`REFRACT_TEST_S3_ENDPOINT` + `AWS_*`) and MongoDB
//! (`MONGODB_URL`) when configured. A suite that cannot run prints why and passes.
//!
//! Every run uses its own PostgreSQL schema, Redis namespace, S3 prefix and MongoDB database,
//! dropped at the end, so parallel runs never see each other's data.

#[path = "conformance/bad_input.rs"]
mod bad_input;
#[path = "conformance/cache.rs"]
mod cache;
#[path = "conformance/documents.rs"]
mod documents;
#[path = "conformance/files.rs"]
mod files;
#[path = "conformance/history.rs"]
mod history;
#[path = "conformance/support.rs"]
mod support;
