//! User topics: named groups of users in a workspace that events can target
//! (`target.userTopic`). Membership lives in the cache, one hash per (workspace, user) whose
//! fields are the topics joined, so every events instance sees the same membership.

use std::collections::HashSet;

use refract_core::{UserId, WorkspaceId};
use refract_storage::{Cache, CacheKey, StorageError};

/// The topics `user` joined in `workspace`.
pub async fn joined(
    cache: &dyn Cache,
    workspace: &WorkspaceId,
    user: &UserId,
) -> Result<HashSet<String>, StorageError> {
    let fields = cache
        .hgetall(&CacheKey::user_topics(workspace, user))
        .await?;
    Ok(fields.into_keys().collect())
}
