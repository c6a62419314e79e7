//! SQLite's spelling of what the shared SQL code leaves to a dialect: JSON kept as text and
//! compared with SQLite's JSON functions, FTS5 for words and correlation ids.

use serde_json::Value;
use sqlx::{QueryBuilder, Sqlite};

use super::{BACKEND, op_error};
use crate::error::StorageError;
use crate::history::{HistoryQuery, text_words};
use crate::location::Location;
use crate::sql::Dialect;

impl Dialect for Sqlite {
    const BACKEND: &'static str = BACKEND;
    // SQLite compares text in byte order (BINARY) unless told otherwise.
    const BYTE_ORDERED_TYPE: &'static str = "type";
    const MIGRATIONS_TABLE: &'static str = "CREATE TABLE IF NOT EXISTS refract_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)";

    fn json_as_text(column: &'static str) -> String {
        column.to_string()
    }

    fn rows_affected(done: &sqlx::sqlite::SqliteQueryResult) -> u64 {
        done.rows_affected()
    }

    fn op_error(location: &Location, operation: &'static str, e: sqlx::Error) -> StorageError {
        op_error(location, operation, e)
    }

    /// Correlation ids and words narrowed through the FTS5 table, then (correlation ids)
    /// compared exactly on the column.
    fn push_text_conditions(qb: &mut QueryBuilder<Sqlite>, q: &HistoryQuery) {
        if let Some(c) = &q.correlation_id {
            qb.push(" AND correlation_id = ")
                .push_bind(c.as_str().to_string());
            let tokens = text_words(c.as_str());
            if !tokens.is_empty() {
                qb.push(" AND seq IN (SELECT rowid FROM events_fts WHERE events_fts MATCH ")
                    .push_bind(fts_all("correlation_id", &tokens))
                    .push(")");
            }
        }
        if let Some(words) = q.words() {
            qb.push(" AND seq IN (SELECT rowid FROM events_fts WHERE events_fts MATCH ")
                .push_bind(fts_all("text", &words))
                .push(")");
        }
    }

    fn push_json_eq(
        qb: &mut QueryBuilder<Sqlite>,
        column: &str,
        segments: &[String],
        value: &Value,
    ) {
        json_functions_eq(qb, column, segments, value);
    }
}

/// An FTS5 query: every word in `column`. Words are alphanumeric runs (quoted anyway), one
/// token each, so no phrase query is needed (the index keeps no positions).
fn fts_all(column: &str, words: &[String]) -> String {
    let terms = words
        .iter()
        .map(|w| format!("\"{w}\""))
        .collect::<Vec<_>>()
        .join(" AND ");
    format!("{column} : ({terms})")
}

/// `column` has `value` at `segments`, with SQLite's JSON functions. Segments are checked
/// (`[A-Za-z0-9_$-]`) and the path is bound anyway.
fn json_functions_eq(
    qb: &mut QueryBuilder<Sqlite>,
    column: &str,
    segments: &[String],
    value: &Value,
) {
    let path = sqlite_path(segments);
    let jtype = |qb: &mut QueryBuilder<Sqlite>| {
        qb.push(format!("json_type({column}, "))
            .push_bind(path.clone())
            .push(")");
    };
    match value {
        Value::Null => {
            jtype(qb);
            qb.push(" = 'null'");
        }
        Value::Bool(b) => {
            jtype(qb);
            qb.push(if *b { " = 'true'" } else { " = 'false'" });
        }
        Value::Number(n) => {
            qb.push("(");
            jtype(qb);
            qb.push(" IN ('integer', 'real') AND ");
            qb.push(format!("json_extract({column}, "))
                .push_bind(path.clone())
                .push(") = ");
            match n.as_i64() {
                Some(i) => qb.push_bind(i),
                None => qb.push_bind(n.as_f64().unwrap_or(f64::NAN)),
            };
            qb.push(")");
        }
        Value::String(s) => {
            qb.push("(");
            jtype(qb);
            qb.push(" = 'text' AND ");
            qb.push(format!("json_extract({column}, "))
                .push_bind(path.clone())
                .push(") = ");
            qb.push_bind(s.clone()).push(")");
        }
        Value::Array(_) | Value::Object(_) => {
            qb.push(format!("json_extract({column}, "))
                .push_bind(path.clone())
                .push(") = json(");
            qb.push_bind(value.to_string()).push(")");
        }
    }
}

/// `$."a"."b"`: quoted labels, so `-` and `$` in segments need no escaping.
fn sqlite_path(segments: &[String]) -> String {
    let mut path = String::from("$");
    for s in segments {
        path.push_str(".\"");
        path.push_str(s);
        path.push('"');
    }
    path
}
