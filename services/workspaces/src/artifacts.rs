//! [`FileArtifactStore`]: the host's [`ArtifactStore`] over file storage, so every workspaces
//! and runtime instance sharing the storage loads what one of them compiled.
//!
//! Artifacts live at `artifacts/<key>`, where `key` is the host's
//! `refract_host::cache::artifact_key(digest, engine_fingerprint)`
//! (`<sha256 hex>.wasmtime-48-<hash>.cwasm`). Loading an artifact runs it as native code: only the
//! workspaces service and the runtime may write this storage.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use refract_host::{ArtifactStore, ArtifactStoreError};
use refract_storage::FileStore;

/// The folder of precompiled artifacts in file storage.
pub const ARTIFACTS_PREFIX: &str = "artifacts";

/// An [`ArtifactStore`] over a [`FileStore`].
#[derive(Debug, Clone)]
pub struct FileArtifactStore {
    files: FileStore,
}

impl FileArtifactStore {
    /// A store keeping its artifacts under [`ARTIFACTS_PREFIX`] in `files`.
    pub fn new(files: FileStore) -> Self {
        Self { files }
    }

    /// The file path of artifact `key`; keys are one path segment.
    pub fn path(key: &str) -> Result<String, ArtifactStoreError> {
        let ok = !key.is_empty()
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
        if !ok || key.starts_with('.') {
            return Err(ArtifactStoreError {
                message: format!("invalid artifact key {key:?}"),
                transient: false,
            });
        }
        Ok(format!("{ARTIFACTS_PREFIX}/{key}"))
    }
}

fn store_error(e: refract_storage::StorageError) -> ArtifactStoreError {
    ArtifactStoreError {
        transient: e.kind().is_transient(),
        message: e.to_string(),
    }
}

#[async_trait]
impl ArtifactStore for FileArtifactStore {
    async fn get(&self, key: &str) -> Result<Option<Arc<[u8]>>, ArtifactStoreError> {
        let bytes = self
            .files
            .get(&Self::path(key)?)
            .await
            .map_err(store_error)?;
        Ok(bytes.map(|b| Arc::from(b.as_ref())))
    }

    async fn put(&self, key: &str, bytes: Arc<[u8]>) -> Result<(), ArtifactStoreError> {
        self.files
            .put(&Self::path(key)?, Bytes::from(bytes.to_vec()))
            .await
            .map_err(store_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn artifacts_round_trip_under_their_key() -> anyhow::Result<()> {
        let files = refract_storage::open_file_store("memory://").await?;
        let store = FileArtifactStore::new(files.clone());
        let key = format!("{}.wasmtime-48-0123456789abcdef.cwasm", "a".repeat(64));
        assert!(store.get(&key).await?.is_none());
        store.put(&key, Arc::from(&b"native"[..])).await?;
        assert_eq!(store.get(&key).await?.as_deref(), Some(&b"native"[..]));
        assert!(files.exists(&format!("artifacts/{key}")).await?);
        assert!(store.put("../escape", Arc::from(&b"x"[..])).await.is_err());
        Ok(())
    }
}
