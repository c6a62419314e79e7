//! The migration runner both SQL backends use: schema versions recorded in
//! `refract_migrations`, each applied once. How runs are serialized (PostgreSQL: an advisory
//! lock around one transaction; SQLite: one transaction per version on the single writer)
//! stays in each backend.

use sqlx::{Encode, Executor, IntoArguments, Type};

use super::Dialect;

/// A schema version and the SQL that reaches it. Never edit a released entry: add a new one.
pub(crate) type Migration = (i64, &'static str);

/// Applies `migration` on `conn` unless `refract_migrations` records it; `Ok(true)` when it
/// ran. The caller owns the transaction around it.
pub(crate) async fn apply_migration<DB>(
    conn: &mut DB::Connection,
    (version, sql): Migration,
) -> sqlx::Result<bool>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB> + Default,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
{
    let mut qb = sqlx::QueryBuilder::<DB>::new("SELECT 1 FROM refract_migrations WHERE version = ");
    qb.push_bind(version);
    if qb.build().fetch_optional(&mut *conn).await?.is_some() {
        return Ok(false);
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut *conn)
        .await?;
    let mut qb = sqlx::QueryBuilder::<DB>::new(
        "INSERT INTO refract_migrations (version, applied_at) VALUES (",
    );
    qb.push_bind(version)
        .push(", ")
        .push_bind(chrono::Utc::now().timestamp_millis())
        .push(")");
    qb.build().execute(&mut *conn).await?;
    tracing::info!(version, "{} migration applied", DB::BACKEND);
    Ok(true)
}

/// Creates `refract_migrations` if missing.
pub(crate) async fn create_migrations_table<DB>(conn: &mut DB::Connection) -> sqlx::Result<()>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    sqlx::raw_sql(sqlx::AssertSqlSafe(DB::MIGRATIONS_TABLE))
        .execute(&mut *conn)
        .await?;
    Ok(())
}
