//! Backends under test: where they are, how to isolate a run, how to clean up.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use refract_storage::{DocumentStore, open_document_store};

/// A name no other run uses: `t<32 hex>`.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

pub fn skip(suite: &str, why: &str) {
    eprintln!("skipped: {suite}: {why}");
}

/// Runs `body`, then `cleanup` even when `body` panicked, then re-raises the panic.
pub async fn with_cleanup<F, C>(body: F, cleanup: C)
where
    F: Future<Output = ()>,
    C: Future<Output = ()>,
{
    let outcome = AssertUnwindSafe(body).catch_unwind().await;
    cleanup.await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Polls `check` until it holds or `deadline` passes; returns whether it held.
pub async fn eventually<F, Fut>(deadline: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let end = tokio::time::Instant::now() + deadline;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

pub fn postgres_url() -> Option<String> {
    env("REFRACT_TEST_DATABASE_URL")
}

pub fn redis_url() -> Option<String> {
    env("REFRACT_TEST_REDIS_URL")
}

pub fn mongodb_url() -> Option<String> {
    env("MONGODB_URL")
}

pub struct S3 {
    pub endpoint: String,
    pub region: String,
    pub key: String,
    pub secret: String,
}

pub fn s3() -> Option<S3> {
    Some(S3 {
        endpoint: env("REFRACT_TEST_S3_ENDPOINT")?,
        region: env("AWS_REGION").unwrap_or_else(|| "us-east-1".into()),
        key: env("AWS_ACCESS_KEY_ID")?,
        secret: env("AWS_SECRET_ACCESS_KEY")?,
    })
}

/// `url` with `?schema=<schema>` (or `&schema=`).
pub fn with_schema(url: &str, schema: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}schema={schema}")
}

/// Drops a test schema (best effort: a failure is printed, not raised over the test's own).
pub async fn drop_schema(url: &str, schema: &str) {
    let result = async {
        let pool = sqlx::PgPool::connect(url).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
        )))
        .execute(&pool)
        .await?;
        pool.close().await;
        Ok::<_, sqlx::Error>(())
    }
    .await;
    if let Err(e) = result {
        eprintln!("could not drop test schema {schema}: {e}");
    }
}

/// `mongodb://host/...` with the database replaced by `db`.
pub fn with_database(url: &str, db: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            u.set_path(&format!("/{db}"));
            u.to_string()
        }
        Err(_) => url.to_string(),
    }
}

pub async fn drop_mongo_database(url: &str) {
    let result = async {
        let client = mongodb::Client::with_uri_str(url).await?;
        if let Some(db) = client.default_database() {
            db.drop().await?;
        }
        Ok::<_, mongodb::error::Error>(())
    }
    .await;
    if let Err(e) = result {
        eprintln!("could not drop test database: {e}");
    }
}

/// Runs `suite` on every document-store backend available, each on fresh storage.
pub async fn each_document_store<S, Fut>(name: &str, suite: S)
where
    S: Fn(Arc<dyn DocumentStore>) -> Fut,
    Fut: Future<Output = ()>,
{
    // memory
    let memory = open_document_store("memory://")
        .await
        .expect("memory store");
    eprintln!("{name}: memory");
    suite(memory).await;

    // sqlite
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}/refract.db", dir.path().display());
    let sqlite = open_document_store(&url).await.expect("sqlite store");
    eprintln!("{name}: sqlite");
    suite(sqlite).await;

    // postgres
    match postgres_url() {
        None => skip(
            &format!("{name}: postgres"),
            "REFRACT_TEST_DATABASE_URL not set",
        ),
        Some(base) => {
            let schema = unique("refract_t");
            let store = open_document_store(&with_schema(&base, &schema))
                .await
                .expect("postgres store");
            eprintln!("{name}: postgres (schema {schema})");
            with_cleanup(suite(store), drop_schema(&base, &schema)).await;
        }
    }

    // mongodb
    match mongodb_url() {
        None => skip(&format!("{name}: mongodb"), "MONGODB_URL not set"),
        Some(base) => {
            let url = with_database(&base, &unique("refract_t"));
            let store = open_document_store(&url).await.expect("mongodb store");
            eprintln!("{name}: mongodb");
            with_cleanup(suite(store), drop_mongo_database(&url)).await;
        }
    }
}
