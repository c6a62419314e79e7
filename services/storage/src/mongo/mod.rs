//! MongoDB (`mongodb://…/database`): events in one `events` collection (compound indexes on
//! workspace + id, type, time and correlation id, and a text index), each document collection
//! in `docs_<name>` with a unique index per unique field.
//!
//! No mongod runs on the development machine: this backend compiles here and its suite runs
//! where `MONGODB_URL` is set.

mod documents;
mod history;

use std::collections::HashSet;
use std::sync::Mutex;

use mongodb::bson::{Bson, Document as BsonDoc, doc};
use mongodb::options::{ClientOptions, IndexOptions};
use mongodb::{Client, Database, IndexModel};

use crate::error::{Result, StorageError};
use crate::location::{CONNECT_TIMEOUT, Location};

pub(crate) const BACKEND: &str = "mongodb";

/// Database used when the URL names none.
pub const DEFAULT_DATABASE: &str = "refract";

/// Duplicate-key error code.
const DUPLICATE_KEY: i32 = 11000;

pub struct MongoStore {
    db: Database,
    location: Location,
    /// Document collections whose indexes exist already.
    indexed: Mutex<HashSet<&'static str>>,
}

impl MongoStore {
    /// Connects (failing within [`CONNECT_TIMEOUT`] when no server answers) and creates the
    /// event indexes.
    pub async fn open(location: &Location) -> Result<Self> {
        let mut options = ClientOptions::parse(location.as_secret_str())
            .await
            .map_err(|e| StorageError::InvalidUrl {
                abstraction: "document store",
                url: location.redacted().to_string(),
                reason: e.to_string(),
            })?;
        options.server_selection_timeout = Some(CONNECT_TIMEOUT);
        options.connect_timeout = Some(CONNECT_TIMEOUT);
        options.app_name = Some("refract".into());
        let client = Client::with_options(options).map_err(|e| unavailable(location, e))?;
        let db = client
            .default_database()
            .unwrap_or_else(|| client.database(DEFAULT_DATABASE));
        let store = Self {
            db,
            location: location.clone(),
            indexed: Mutex::default(),
        };
        store.ping().await?;
        store.create_event_indexes().await?;
        Ok(store)
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    pub async fn ping(&self) -> Result<()> {
        self.db
            .run_command(doc! { "ping": 1 })
            .await
            .map_err(|e| unavailable(&self.location, e))?;
        Ok(())
    }

    async fn create_event_indexes(&self) -> Result<()> {
        let index = |keys: BsonDoc, name: &str| {
            IndexModel::builder()
                .keys(keys)
                .options(IndexOptions::builder().name(name.to_string()).build())
                .build()
        };
        let text = IndexModel::builder()
            .keys(doc! { "text": "text" })
            .options(
                IndexOptions::builder()
                    .name("events_text".to_string())
                    .default_language("none".to_string())
                    .build(),
            )
            .build();
        let models = vec![
            index(doc! { "ws": 1, "ms": -1, "seq": -1 }, "events_ws_id"),
            index(
                doc! { "ws": 1, "type": 1, "ms": -1, "seq": -1 },
                "events_ws_type",
            ),
            index(doc! { "ws": 1, "at": 1 }, "events_ws_created"),
            index(doc! { "ws": 1, "corr": 1 }, "events_ws_corr"),
            text,
        ];
        self.db
            .collection::<BsonDoc>("events")
            .create_indexes(models)
            .await
            .map_err(|e| op_error(&self.location, "create indexes", e))?;
        Ok(())
    }
}

pub(crate) fn unavailable(location: &Location, e: mongodb::error::Error) -> StorageError {
    StorageError::Unavailable {
        backend: BACKEND,
        url: location.redacted().to_string(),
        source: Box::new(e),
    }
}

pub(crate) fn op_error(
    location: &Location,
    operation: &'static str,
    e: mongodb::error::Error,
) -> StorageError {
    use mongodb::error::ErrorKind;
    match *e.kind {
        ErrorKind::ServerSelection { .. }
        | ErrorKind::Io(_)
        | ErrorKind::ConnectionPoolCleared { .. } => unavailable(location, e),
        _ => StorageError::backend(BACKEND, operation, e),
    }
}

/// Whether `e` is a duplicate-key write error, and the message naming the index.
pub(crate) fn duplicate_key(e: &mongodb::error::Error) -> Option<String> {
    use mongodb::error::{ErrorKind, WriteFailure};
    match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) if w.code == DUPLICATE_KEY => {
            Some(w.message.clone())
        }
        ErrorKind::Command(c) if c.code == DUPLICATE_KEY => Some(c.message.clone()),
        _ => None,
    }
}

/// JSON → BSON for filters and bodies.
pub(crate) fn to_bson<T: serde::Serialize + ?Sized>(v: &T) -> Result<Bson> {
    mongodb::bson::to_bson(v).map_err(|e| StorageError::invalid("value", e.to_string()))
}

/// BSON → JSON (relaxed extended JSON: numbers stay numbers).
pub(crate) fn to_json(b: Bson) -> serde_json::Value {
    b.into_relaxed_extjson()
}
