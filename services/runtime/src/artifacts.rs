//! Precompiled artifacts in file storage, shared by every instance (and by the workspaces
//! service, which compiles at upload). Only trusted writers may write under `artifacts/`:
//! loading an artifact runs it as native code.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use refract_host::{ArtifactStore, ArtifactStoreError};
use refract_storage::{FileStore, StorageError};

/// Folder of the artifacts in the file store.
pub const ARTIFACTS_PREFIX: &str = "artifacts";

/// An [`ArtifactStore`] over a [`FileStore`]: `artifacts/<digest>.<engine>.cwasm`.
#[derive(Debug, Clone)]
pub struct FileArtifactStore {
    files: FileStore,
}

impl FileArtifactStore {
    pub fn new(files: FileStore) -> Self {
        Self { files }
    }
}

fn to_host(e: StorageError) -> ArtifactStoreError {
    ArtifactStoreError { transient: e.kind().is_transient(), message: e.to_string() }
}

#[async_trait]
impl ArtifactStore for FileArtifactStore {
    async fn get(&self, key: &str) -> Result<Option<Arc<[u8]>>, ArtifactStoreError> {
        let bytes = self.files.get(&format!("{ARTIFACTS_PREFIX}/{key}")).await.map_err(to_host)?;
        Ok(bytes.map(|b| Arc::from(b.as_ref())))
    }

    async fn put(&self, key: &str, bytes: Arc<[u8]>) -> Result<(), ArtifactStoreError> {
        self.files
            .put(&format!("{ARTIFACTS_PREFIX}/{key}"), Bytes::copy_from_slice(&bytes))
            .await
            .map_err(to_host)
    }
}
