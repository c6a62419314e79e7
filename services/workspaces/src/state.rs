//! Shared state, access checks and event emission.

use std::sync::Arc;

use refract_broker::Broker;
use refract_core::model::{Role, Workspace};
use refract_core::{Event, EventType, SourceHost, WorkspaceId};
use refract_host::Host;
use refract_http::{ApiError, Caller};
use refract_storage::{DocumentStore, FileStore, StorageError, collections};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::Config;

/// Name this service writes in `source.host.service`.
pub const SERVICE_NAME: &str = "workspaces";

/// Everything the handlers share. Cheap to clone.
#[derive(Clone)]
pub struct WorkspacesState {
    pub(crate) broker: Arc<dyn Broker>,
    pub(crate) store: Arc<dyn DocumentStore>,
    pub(crate) files: FileStore,
    pub(crate) host: Arc<Host>,
    pub(crate) config: Arc<Config>,
}

impl std::fmt::Debug for WorkspacesState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkspacesState")
            .field("files", &self.files)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// What a caller wants to do to a workspace (`spec/http-api.md` §9.1, built-in roles only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Read,
    Update,
    Delete,
    ManageSecurity,
}

impl Action {
    fn min_role(self) -> Role {
        match self {
            Action::Read => Role::Viewer,
            Action::Update => Role::Editor,
            Action::Delete | Action::ManageSecurity => Role::Owner,
        }
    }
}

/// A workspace the caller may act on.
#[derive(Debug)]
pub struct Access {
    pub id: WorkspaceId,
    pub workspace: Workspace,
    pub version: u64,
    pub role: Role,
}

impl WorkspacesState {
    /// `host` must have been built with an [`crate::FileArtifactStore`] over the same `files`
    /// (or another store the runtime reads), so the runtime finds the precompiled artifacts.
    pub fn new(
        broker: Arc<dyn Broker>,
        store: Arc<dyn DocumentStore>,
        files: FileStore,
        host: Arc<Host>,
        config: Config,
    ) -> Self {
        Self {
            broker,
            store,
            files,
            host,
            config: Arc::new(config),
        }
    }

    /// The caller's role in `workspace_id`, checked against `action`. Invisible workspaces
    /// (absent, or no membership) are 404, never 403.
    pub async fn authorize(
        &self,
        caller: &Caller,
        workspace_id: &str,
        action: Action,
    ) -> Result<Access, ApiError> {
        let user = caller.require_user()?;
        let hidden = || ApiError::not_found(format!("workspace {workspace_id} not found"));
        let id = WorkspaceId::new(workspace_id).map_err(|_| hidden())?;
        let Some(doc) = self
            .store
            .get(&collections::WORKSPACES, id.as_str())
            .await
            .map_err(storage)?
        else {
            return Err(hidden());
        };
        let role = if caller.superadmin {
            Role::Owner
        } else {
            match refract_storage::role_of(self.store.as_ref(), id.as_str(), user.as_str())
                .await
                .map_err(storage)?
            {
                Some(role) => role,
                None => return Err(hidden()),
            }
        };
        if role < action.min_role() {
            return Err(ApiError::forbidden(format!(
                "your role in this workspace does not allow this ({action:?})"
            )));
        }
        let workspace = decode(doc.body, "workspace")?;
        Ok(Access {
            id,
            workspace,
            version: doc.version,
            role,
        })
    }

    /// Publishes a `workspaces.*` event caused by `caller`'s request. The write it reports is
    /// already stored, so a failed publish is logged, not returned.
    pub async fn emit(
        &self,
        caller: &Caller,
        workspace: &WorkspaceId,
        event_type: &str,
        payload: Value,
    ) {
        let Ok(ty) = EventType::new(event_type) else {
            tracing::error!(event_type, "invalid event type");
            return;
        };
        let payload = match payload {
            Value::Object(map) => map,
            other => Map::from_iter([("value".to_string(), other)]),
        };
        let mut event = Event::new(ty, Some(workspace.clone()), payload);
        event.source.user_id = caller.user_id.clone();
        event.source.session_id = caller.session_id.clone();
        event.source.correlation_id = caller.correlation_id.clone();
        event.source.host = Some(SourceHost {
            service: SERVICE_NAME.into(),
            replica: None,
        });
        if let Err(e) = self.broker.publish(event).await {
            tracing::error!(error = %e, %workspace, event_type, correlation_id = %caller.correlation_id, "publishing failed");
        }
    }
}

/// The API error of a storage failure (conflicts are handled by the callers that expect them).
pub(crate) fn storage(e: StorageError) -> ApiError {
    ApiError::from_kind(e.kind(), e)
}

/// Decodes a stored document; a document that does not decode is our fault (500).
pub(crate) fn decode<T: DeserializeOwned>(body: Value, what: &str) -> Result<T, ApiError> {
    serde_json::from_value(body)
        .map_err(|e| ApiError::internal(format!("stored {what} does not decode: {e}")))
}

/// Encodes a document body.
pub(crate) fn encode<T: serde::Serialize>(value: &T) -> Result<Value, ApiError> {
    serde_json::to_value(value).map_err(ApiError::internal)
}
