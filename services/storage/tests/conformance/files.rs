//! File storage conformance: files, listings, content-addressed blobs, path safety; against
//! memory, a local folder, and an S3-compatible server when one is configured.

use bytes::Bytes;
use refract_core::ErrorKind;
use refract_storage::files::Digest;
use refract_storage::{FileStore, open_file_store, open_file_store_with};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{s3, skip, unique};

async fn files_round_trip(store: &FileStore) {
    assert_eq!(store.get("ws1/a.yaml").await.expect("missing"), None);
    assert!(!store.exists("ws1/a.yaml").await.expect("exists"));
    store
        .put("ws1/a.yaml", Bytes::from_static(b"slug: a"))
        .await
        .expect("put");
    store
        .put("ws1/sub/b.bin", Bytes::from(vec![0u8, 255, 1]))
        .await
        .expect("put");
    store
        .put("ws2/c.txt", Bytes::from_static(b"c"))
        .await
        .expect("put");
    assert!(store.exists("ws1/a.yaml").await.expect("exists"));
    assert_eq!(
        store.get("ws1/sub/b.bin").await.expect("get").as_deref(),
        Some(&[0u8, 255, 1][..])
    );
    store
        .put("ws1/a.yaml", Bytes::from_static(b"slug: a2"))
        .await
        .expect("overwrite");
    assert_eq!(
        store.get("ws1/a.yaml").await.expect("get").as_deref(),
        Some(&b"slug: a2"[..])
    );
    assert_eq!(
        store.list("ws1").await.expect("list"),
        vec!["ws1/a.yaml", "ws1/sub/b.bin"]
    );
    assert_eq!(
        store.list("ws1/").await.expect("list slash"),
        vec!["ws1/a.yaml", "ws1/sub/b.bin"]
    );
    assert!(
        store
            .list("nothing-here")
            .await
            .expect("empty list")
            .is_empty()
    );
    store.delete("ws1/a.yaml").await.expect("delete");
    store
        .delete("ws1/a.yaml")
        .await
        .expect("delete twice is fine");
    assert!(!store.exists("ws1/a.yaml").await.expect("gone"));
    assert_eq!(
        store.list("").await.expect("all"),
        vec!["ws1/sub/b.bin", "ws2/c.txt"]
    );
}

async fn blobs_are_content_addressed(store: &FileStore) {
    let component = Bytes::from(vec![7u8; 100_000]);
    let digest = store.put_blob(component.clone()).await.expect("put blob");
    assert_eq!(digest, Digest::of(&component));
    assert_eq!(
        store.put_blob(component.clone()).await.expect("again"),
        digest,
        "same bytes, same digest"
    );
    assert!(store.has_blob(&digest).await.expect("has"));
    assert_eq!(
        store.get_blob(&digest).await.expect("get").as_deref(),
        Some(&component[..])
    );
    let absent = Digest::of(b"never stored");
    assert!(!store.has_blob(&absent).await.expect("has absent"));
    assert_eq!(store.get_blob(&absent).await.expect("get absent"), None);
    // A blob whose bytes were changed behind our back is reported, not served.
    let tampered = Digest::of(b"original");
    store
        .put(
            &FileStore::blob_path(&tampered),
            Bytes::from_static(b"evil"),
        )
        .await
        .expect("tamper");
    let err = store.get_blob(&tampered).await.expect_err("tampered blob");
    assert_eq!(err.kind(), ErrorKind::Internal, "{err}");
}

async fn paths_cannot_escape(store: &FileStore) {
    for bad in ["", "/etc/passwd", "../up", "a/../../b", "a//b", "a\0b"] {
        let err = store
            .put(bad, Bytes::from_static(b"x"))
            .await
            .expect_err(bad);
        assert_eq!(err.kind(), ErrorKind::Invalid, "{bad:?}: {err}");
    }
}

async fn suite(store: FileStore) {
    files_round_trip(&store).await;
    blobs_are_content_addressed(&store).await;
    paths_cannot_escape(&store).await;
}

#[tokio::test]
async fn file_storage_conformance_local() {
    eprintln!("files: memory");
    suite(open_file_store("memory://").await.expect("memory")).await;
    let dir = tempfile::tempdir().expect("dir");
    eprintln!("files: local folder");
    let url = format!("file://{}/files", dir.path().display());
    suite(open_file_store(&url).await.expect("file")).await;
    assert!(
        dir.path().join("files/ws2/c.txt").is_file(),
        "files land in the folder"
    );
}

/// Creates `bucket` on the S3-compatible server (moto accepts an unsigned PUT; real S3 would
/// refuse, and CI only points this at a local server).
async fn create_bucket(endpoint: &str, bucket: &str) -> anyhow::Result<()> {
    let url = url::Url::parse(endpoint)?;
    let host = url.host_str().unwrap_or("127.0.0.1").to_string();
    let port = url.port_or_known_default().unwrap_or(80);
    let mut tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
    let request = format!(
        "PUT /{bucket} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await?;
    let mut reply = String::new();
    tcp.read_to_string(&mut reply).await?;
    anyhow::ensure!(
        reply.starts_with("HTTP/1.1 200"),
        "creating bucket {bucket}: {}",
        reply.lines().next().unwrap_or("")
    );
    Ok(())
}

#[tokio::test]
async fn file_storage_conformance_s3() {
    let Some(s3) = s3() else {
        return skip(
            "files: s3",
            "REFRACT_TEST_S3_ENDPOINT (with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) not set",
        );
    };
    let bucket = unique("refract-t-");
    create_bucket(&s3.endpoint, &bucket)
        .await
        .expect("create bucket");
    let options = [
        ("endpoint", s3.endpoint.as_str()),
        ("region", s3.region.as_str()),
        ("access_key_id", s3.key.as_str()),
        ("secret_access_key", s3.secret.as_str()),
    ];
    eprintln!(
        "files: s3 at {} (bucket {bucket}, prefix run/)",
        s3.endpoint
    );
    let store = open_file_store_with(&format!("s3://{bucket}/run"), &options)
        .await
        .expect("s3");
    suite(store.clone()).await;
    // The prefix is a real folder in the bucket: a store on the bucket root sees it.
    let root = open_file_store_with(&format!("s3://{bucket}"), &options)
        .await
        .expect("s3 root");
    assert!(root.exists("run/ws2/c.txt").await.expect("under prefix"));
    for path in root.list("").await.expect("list all") {
        root.delete(&path).await.expect("cleanup");
    }
}
