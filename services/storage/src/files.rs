//! File storage over `object_store`: workspace files, uploads, components and their
//! precompiled artifacts, chosen by URL.
//!
//! - `file://path`: a local folder (the embedded default; a shared folder in distributed mode).
//! - `s3://bucket[/prefix]`: S3 or an S3-compatible server. Options come as URL query
//!   parameters or through [`open_file_store_with`] (for secrets): `endpoint`, `region`,
//!   `access_key_id`, `secret_access_key`, `session_token`, `allow_http`, … (any
//!   `object_store` S3 key). An `http://` endpoint turns `allow_http` on.
//! - `memory://`: in process, for tests.
//!
//! Content-addressed blobs ([`FileStore::put_blob`]) live under `blobs/sha256/`; their
//! digest is their name, so a component is stored once however many automations use it, and a
//! blob whose bytes no longer match its digest is reported corrupt instead of being run.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use sha2::{Digest as _, Sha256};

use crate::error::{Result, StorageError};
use crate::location::{Location, unsupported};

/// Schemes [`open_file_store`] accepts.
pub const FILE_STORE_SCHEMES: &str = "file://path, s3://bucket[/prefix], memory://";

/// Longest file path, in bytes (S3's key limit).
pub const MAX_PATH_LEN: usize = 1_024;

/// A SHA-256 digest: 64 lowercase hex characters; printed as `sha256:<hex>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    /// The SHA-256 of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(hex::encode(Sha256::digest(bytes)))
    }

    /// Lowercase hex, as in blob paths.
    pub fn hex(&self) -> &str {
        &self.0
    }
}

impl FromStr for Digest {
    type Err = StorageError;

    /// Accepts `sha256:<hex>` or bare `<hex>`.
    fn from_str(s: &str) -> Result<Self> {
        let hex = s.strip_prefix("sha256:").unwrap_or(s);
        if hex.len() != 64
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(StorageError::invalid(
                "digest",
                "expected sha256:<64 lowercase hex characters>",
            ));
        }
        Ok(Self(hex.to_string()))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.0)
    }
}

/// A file store. Cheap to clone; every clone shares the backend's connection pool.
#[derive(Clone)]
pub struct FileStore {
    store: Arc<dyn ObjectStore>,
    backend: &'static str,
    location: String,
}

impl fmt::Debug for FileStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FileStore({})", self.describe())
    }
}

/// Opens the file store `url` names (options as URL query parameters).
pub async fn open_file_store(url: &str) -> Result<FileStore> {
    open_file_store_with(url, &[]).await
}

/// Opens the file store `url` names, with extra backend options (e.g. S3 credentials from the
/// service's config) that win over the URL's.
pub async fn open_file_store_with(url: &str, options: &[(&str, &str)]) -> Result<FileStore> {
    let loc = Location::parse("file store", url)?;
    let invalid = |reason: String| StorageError::InvalidUrl {
        abstraction: "file store",
        url: loc.redacted().to_string(),
        reason,
    };
    let (store, backend): (Arc<dyn ObjectStore>, _) = match loc.scheme() {
        "memory" => (Arc::new(InMemory::new()), "memory"),
        "file" => {
            let root = loc.path_of_local("file store")?;
            tokio::fs::create_dir_all(&root)
                .await
                .map_err(|e| StorageError::Unavailable {
                    backend: "file",
                    url: loc.redacted().to_string(),
                    source: Box::new(e),
                })?;
            let fs = LocalFileSystem::new_with_prefix(&root).map_err(|e| invalid(e.to_string()))?;
            (Arc::new(fs.with_automatic_cleanup(true)), "file")
        }
        "s3" => {
            let bucket = loc
                .url()
                .host_str()
                .filter(|b| !b.is_empty())
                .ok_or_else(|| invalid("no bucket".into()))?;
            // The standard AWS_* variables (credentials, region, endpoint) first, then the URL's
            // options, then the caller's.
            let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
            let mut all: Vec<(String, String)> = loc.options().into_iter().collect();
            all.extend(options.iter().map(|(k, v)| (k.to_string(), v.to_string())));
            for (k, v) in &all {
                let key = AmazonS3ConfigKey::from_str(k)
                    .map_err(|_| invalid(format!("unknown S3 option {k:?}")))?;
                if matches!(key, AmazonS3ConfigKey::Endpoint) && v.starts_with("http://") {
                    builder = builder.with_allow_http(true);
                }
                builder = builder.with_config(key, v.clone());
            }
            let s3 = builder.build().map_err(|e| invalid(e.to_string()))?;
            let prefix = loc.url().path().trim_matches('/').to_string();
            let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
                Arc::new(s3)
            } else {
                Arc::new(object_store::prefix::PrefixStore::new(s3, prefix.as_str()))
            };
            (store, "s3")
        }
        _ => return Err(unsupported("file store", &loc, FILE_STORE_SCHEMES)),
    };
    Ok(FileStore {
        store,
        backend,
        location: loc.redacted().to_string(),
    })
}

fn check_path(path: &str) -> Result<Path> {
    let bad = |why: &str| StorageError::invalid("path", format!("{path:?}: {why}"));
    if path.is_empty() || path.len() > MAX_PATH_LEN {
        return Err(bad(&format!("must be 1 to {MAX_PATH_LEN} bytes")));
    }
    if path.chars().any(char::is_control) || path.contains('\\') {
        return Err(bad("no control characters or backslashes"));
    }
    if path
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(bad(
            "a relative path of non-empty segments, without . or ..",
        ));
    }
    Path::parse(path).map_err(|e| bad(&e.to_string()))
}

fn blob_path(digest: &Digest) -> Path {
    Path::from(format!("blobs/sha256/{}/{}", &digest.0[..2], digest.0))
}

impl FileStore {
    /// Backend name and URL without secrets.
    pub fn describe(&self) -> String {
        format!("{} {}", self.backend, self.location)
    }

    fn err(&self, operation: &'static str) -> impl Fn(object_store::Error) -> StorageError + '_ {
        move |e| match e {
            object_store::Error::NotFound { path, .. } => StorageError::NotFound {
                what: format!("file {path}"),
            },
            object_store::Error::AlreadyExists { path, .. } => {
                StorageError::conflict(format!("file {path} exists"))
            }
            object_store::Error::Precondition { path, .. } => {
                StorageError::conflict(format!("file {path} changed"))
            }
            object_store::Error::InvalidPath { source } => {
                StorageError::invalid("path", source.to_string())
            }
            other => StorageError::Backend {
                backend: self.backend,
                operation,
                source: Box::new(other),
            },
        }
    }

    /// Writes `bytes` at `path`, replacing what was there.
    pub async fn put(&self, path: &str, bytes: Bytes) -> Result<()> {
        let path = check_path(path)?;
        self.store
            .put(&path, PutPayload::from_bytes(bytes))
            .await
            .map_err(self.err("put"))?;
        Ok(())
    }

    /// The bytes at `path`, `None` when there is no such file.
    pub async fn get(&self, path: &str) -> Result<Option<Bytes>> {
        let path = check_path(path)?;
        self.get_at(&path).await
    }

    async fn get_at(&self, path: &Path) -> Result<Option<Bytes>> {
        match self.store.get(path).await {
            Ok(r) => Ok(Some(r.bytes().await.map_err(self.err("get"))?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err("get")(e)),
        }
    }

    /// Whether a file is at `path`.
    pub async fn exists(&self, path: &str) -> Result<bool> {
        let path = check_path(path)?;
        self.exists_at(&path).await
    }

    async fn exists_at(&self, path: &Path) -> Result<bool> {
        match self.store.head(path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.err("head")(e)),
        }
    }

    /// Deletes `path`; deleting a missing file is not an error.
    pub async fn delete(&self, path: &str) -> Result<()> {
        let path = check_path(path)?;
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err("delete")(e)),
        }
    }

    /// Every file under `prefix` (a folder path, `""` for all), sorted.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let prefix = if prefix.is_empty() {
            None
        } else {
            Some(check_path(prefix.trim_end_matches('/'))?)
        };
        let mut out: Vec<String> = self
            .store
            .list(prefix.as_ref())
            .map_ok(|meta| meta.location.to_string())
            .try_collect()
            .await
            .map_err(self.err("list"))?;
        out.sort();
        Ok(out)
    }

    /// Stores `bytes` under their SHA-256 digest (once: an existing blob is not rewritten).
    pub async fn put_blob(&self, bytes: Bytes) -> Result<Digest> {
        let digest = Digest::of(&bytes);
        let path = blob_path(&digest);
        if !self.exists_at(&path).await? {
            self.store
                .put(&path, PutPayload::from_bytes(bytes))
                .await
                .map_err(self.err("put blob"))?;
        }
        Ok(digest)
    }

    /// The blob with `digest`; `None` when absent, [`StorageError::Corrupt`] when its bytes no
    /// longer hash to `digest`.
    pub async fn get_blob(&self, digest: &Digest) -> Result<Option<Bytes>> {
        let Some(bytes) = self.get_at(&blob_path(digest)).await? else {
            return Ok(None);
        };
        if Digest::of(&bytes) != *digest {
            return Err(StorageError::corrupt(
                self.backend,
                format!("blob {digest}"),
                "content does not match its digest",
            ));
        }
        Ok(Some(bytes))
    }

    /// Whether the blob of `digest` is stored.
    pub async fn has_blob(&self, digest: &Digest) -> Result<bool> {
        self.exists_at(&blob_path(digest)).await
    }

    /// Where a blob is stored, relative to the store's root (for tests and tools).
    pub fn blob_path(digest: &Digest) -> String {
        blob_path(digest).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_parse_in_both_forms_and_print_prefixed() {
        let d = Digest::of(b"abc");
        assert_eq!(
            d.hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
        assert_eq!(d.hex().parse::<Digest>().unwrap(), d);
        assert!("sha256:XYZ".parse::<Digest>().is_err());
    }

    #[test]
    fn paths_cannot_escape_the_root() {
        for bad in ["", "/abs", "a/../b", "a//b", "./a", "a\\b", "a\nb"] {
            assert!(check_path(bad).is_err(), "{bad:?}");
        }
        assert!(check_path("ws1/automations/a.yaml").is_ok());
    }
}
