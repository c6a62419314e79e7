//! Compile once per content hash: precompiled artifacts go through an [`ArtifactStore`] (so other
//! instances and restarts skip Cranelift), ready-to-instantiate `InstancePre`s stay in an LRU.
//! The run path only ever loads artifacts; it never compiles.

use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use lru::LruCache;
use sha2::{Digest as _, Sha256};

use crate::bindings::AutomationPre;
use crate::store::StoreData;

/// `InstancePre`s kept ready (each holds a loaded component: code mapped, types resolved).
pub const DEFAULT_INSTANCE_CACHE: usize = 256;

/// The sha256 of a component's bytes, lower-case hex.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ComponentDigest(String);

impl ComponentDigest {
    /// The digest of `bytes`: what an upload is stored and run under.
    pub fn of(bytes: &[u8]) -> Self {
        ComponentDigest(hex::encode(Sha256::digest(bytes)))
    }

    /// Parses `<64 hex>` or `sha256:<64 hex>`.
    pub fn parse(text: &str) -> Option<Self> {
        let hex = text.strip_prefix("sha256:").unwrap_or(text);
        (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| ComponentDigest(hex.to_ascii_lowercase()))
    }

    /// The bare hex, without the `sha256:` prefix (file names, artifact keys).
    pub fn hex(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ComponentDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.0)
    }
}

/// The key of an artifact: the component digest plus the engine fingerprint (wasmtime version
/// and a hash of the settings that shape compiled code). An artifact is only ever loaded under
/// the key it was stored with.
pub fn artifact_key(digest: &ComponentDigest, engine_fingerprint: &str) -> String {
    format!("{}.{}.cwasm", digest.hex(), engine_fingerprint)
}

/// A failure of the artifact store.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ArtifactStoreError {
    /// What failed, for logs (the backend's own error, with context).
    pub message: String,
    /// Whether trying again later may succeed.
    pub transient: bool,
}

/// Where precompiled artifacts live. Loading an artifact runs it as native code: only trusted
/// writers (the workspaces service and the runtime, through this host) may write this storage.
#[async_trait]
pub trait ArtifactStore: Send + Sync {
    /// The artifact stored under `key` (see [`artifact_key`]), or `None` if there is none.
    async fn get(&self, key: &str) -> Result<Option<Arc<[u8]>>, ArtifactStoreError>;
    /// Stores an artifact under `key`, replacing any previous one (same key, same bytes).
    async fn put(&self, key: &str, bytes: Arc<[u8]>) -> Result<(), ArtifactStoreError>;
}

/// The in-memory twin of the artifact store.
#[derive(Debug, Default)]
pub struct MemoryArtifactStore {
    map: Mutex<HashMap<String, Arc<[u8]>>>,
}

impl MemoryArtifactStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of artifacts stored (tests check that uploads compiled something).
    pub fn len(&self) -> usize {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether nothing was stored yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl ArtifactStore for MemoryArtifactStore {
    async fn get(&self, key: &str) -> Result<Option<Arc<[u8]>>, ArtifactStoreError> {
        Ok(self
            .map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned())
    }

    async fn put(&self, key: &str, bytes: Arc<[u8]>) -> Result<(), ArtifactStoreError> {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.to_owned(), bytes);
        Ok(())
    }
}

/// The LRU of ready `InstancePre`s.
pub(crate) struct PreCache {
    lru: Mutex<LruCache<ComponentDigest, AutomationPre<StoreData>>>,
}

impl PreCache {
    pub(crate) fn new(capacity: usize) -> Self {
        let cap = NonZeroUsize::new(capacity.max(1)).unwrap_or(NonZeroUsize::MIN);
        PreCache {
            lru: Mutex::new(LruCache::new(cap)),
        }
    }

    pub(crate) fn get(&self, digest: &ComponentDigest) -> Option<AutomationPre<StoreData>> {
        self.lru
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(digest)
            .cloned()
    }

    pub(crate) fn put(&self, digest: ComponentDigest, pre: AutomationPre<StoreData>) {
        self.lru
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .put(digest, pre);
    }

    pub(crate) fn len(&self) -> usize {
        self.lru
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_round_trip() {
        let d = ComponentDigest::of(b"abc");
        assert_eq!(
            d.hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(ComponentDigest::parse(&d.to_string()), Some(d.clone()));
        assert_eq!(ComponentDigest::parse("sha256:zz"), None);
        assert!(artifact_key(&d, "wasmtime-48-x").starts_with(d.hex()));
    }
}
