//! PostgreSQL's spelling of what the shared SQL code leaves to a dialect: JSONB read as text
//! and compared through containment (served by the GIN index) plus an exact path comparison,
//! `tsvector` search, and byte-ordered type prefixes.

use serde_json::{Map, Value};
use sqlx::{Postgres, QueryBuilder};

use super::{BACKEND, op_error};
use crate::error::StorageError;
use crate::history::HistoryQuery;
use crate::location::Location;
use crate::sql::Dialect;

impl Dialect for Postgres {
    const BACKEND: &'static str = BACKEND;
    // COLLATE "C": byte order, so a prefix's range is exactly the prefix's.
    const BYTE_ORDERED_TYPE: &'static str = "type COLLATE \"C\"";
    const MIGRATIONS_TABLE: &'static str = "CREATE TABLE IF NOT EXISTS refract_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)";

    fn json_as_text(column: &'static str) -> String {
        format!("{column}::text AS {column}")
    }

    fn rows_affected(done: &sqlx::postgres::PgQueryResult) -> u64 {
        done.rows_affected()
    }

    fn op_error(location: &Location, operation: &'static str, e: sqlx::Error) -> StorageError {
        op_error(location, operation, e)
    }

    fn push_text_conditions(qb: &mut QueryBuilder<Postgres>, q: &HistoryQuery) {
        if let Some(c) = &q.correlation_id {
            qb.push(" AND correlation_id = ")
                .push_bind(c.as_str().to_string());
        }
        if let Some(words) = q.words() {
            qb.push(" AND tsv @@ plainto_tsquery('simple', ")
                .push_bind(words.join(" "))
                .push(")");
        }
    }

    /// Containment (served by the GIN index) narrows, the path comparison makes it exact
    /// (containment alone lets `[1]` match `[1, 2]`).
    fn push_json_eq(
        qb: &mut QueryBuilder<Postgres>,
        column: &str,
        segments: &[String],
        value: &Value,
    ) {
        let containment = segments.iter().rev().fold(value.clone(), |inner, seg| {
            let mut map = Map::new();
            map.insert(seg.clone(), inner);
            Value::Object(map)
        });
        qb.push(format!("({column} @> "))
            .push_bind(containment.to_string())
            .push("::jsonb");
        qb.push(format!(" AND {column} #> "))
            .push_bind(segments.to_vec())
            .push("::text[] = ");
        qb.push_bind(value.to_string()).push("::jsonb)");
    }
}
