//! Bad configuration and bad data: clear errors, never a panic or a hang.

use std::time::Duration;

use refract_core::ErrorKind;
use refract_storage::{HistoryQuery, open_cache, open_document_store, open_file_store};

#[tokio::test]
async fn unknown_schemes_list_the_supported_ones() {
    let err = open_document_store("mysql://db/x")
        .await
        .err()
        .expect("unsupported");
    let text = err.to_string();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    for scheme in ["sqlite://", "postgres://", "mongodb://", "memory://"] {
        assert!(text.contains(scheme), "{text}");
    }
    let err = open_cache("memcached://h", "ns")
        .await
        .err()
        .expect("unsupported");
    assert!(err.to_string().contains("redis://"), "{err}");
    let err = open_file_store("gs://bucket")
        .await
        .expect_err("unsupported");
    assert!(
        err.to_string().contains("s3://") && err.to_string().contains("file://"),
        "{err}"
    );
    let err = open_document_store("not a url")
        .await
        .err()
        .expect("not a url");
    assert_eq!(err.kind(), ErrorKind::Invalid);
    let err = open_cache("memory://", "bad namespace!")
        .await
        .err()
        .expect("namespace");
    assert_eq!(err.kind(), ErrorKind::Invalid);
}

/// A port nothing listens on (bound, then closed).
async fn dead_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    port
}

#[tokio::test]
async fn servers_that_do_not_answer_are_named_without_their_password() {
    let port = dead_port().await;
    let within = Duration::from_secs(30);
    let url = format!("postgres://refract:s3cret@127.0.0.1:{port}/db");
    let err = tokio::time::timeout(within, open_document_store(&url))
        .await
        .expect("no hang")
        .err()
        .expect("down");
    let text = err.to_string();
    assert!(err.kind().is_transient(), "{text}");
    assert!(
        text.contains("postgres") && text.contains(&format!("127.0.0.1:{port}")),
        "{text}"
    );
    assert!(!text.contains("s3cret"), "the password leaked: {text}");

    let url = format!("redis://:s3cret@127.0.0.1:{port}");
    let err = tokio::time::timeout(within, open_cache(&url, "ns"))
        .await
        .expect("no hang")
        .err()
        .expect("down");
    let text = err.to_string();
    assert!(err.kind().is_transient(), "{text}");
    assert!(text.contains("redis") && !text.contains("s3cret"), "{text}");

    let url = format!("mongodb://refract:s3cret@127.0.0.1:{port}/db");
    let err = tokio::time::timeout(within, open_document_store(&url))
        .await
        .expect("no hang")
        .err()
        .expect("down");
    let text = err.to_string();
    assert!(err.kind().is_transient(), "{text}");
    assert!(
        text.contains("mongodb") && !text.contains("s3cret"),
        "{text}"
    );
}

#[tokio::test]
async fn corrupt_rows_are_errors_not_panics() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("refract.db");
    let url = format!("sqlite://{}", path.display());
    let store = open_document_store(&url).await.expect("open");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("raw");
    sqlx::query(
        "INSERT INTO events (workspace, id_ms, id_seq, id, type, correlation_id, created_at, text, doc)
         VALUES ('ws1', 1, 0, '1-0', 't', 'c', 0, 't', '{\"type\": 42')",
    )
    .execute(&pool)
    .await
    .expect("insert corrupt event");
    sqlx::query("INSERT INTO documents (collection, id, version, body) VALUES ('users', 'u1', 1, 'not json')")
        .execute(&pool)
        .await
        .expect("insert corrupt document");
    let ws = refract_core::WorkspaceId::new("ws1").expect("ws");
    let err = store
        .query(&HistoryQuery::new(ws))
        .await
        .expect_err("corrupt event");
    assert_eq!(err.kind(), ErrorKind::Internal);
    assert!(err.to_string().contains("corrupt event ws1/1-0"), "{err}");
    let err = store
        .get(&refract_storage::collections::USERS, "u1")
        .await
        .expect_err("corrupt document");
    assert!(
        err.to_string().contains("corrupt document users/u1"),
        "{err}"
    );
}
