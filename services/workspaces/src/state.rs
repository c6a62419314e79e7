//! Shared state, access checks and event emission.

use std::sync::Arc;

use refract_broker::Broker;
use refract_core::model::Workspace;
pub use refract_core::permissions::{Action, Subject};
use refract_core::{Event, EventType, SourceHost, UserId, WorkspaceId};
use refract_host::Host;
use refract_http::{ApiError, Caller};
use refract_storage::documents::MAX_FIND_LIMIT;
use refract_storage::{
    CollectionSpec, DocumentStore, FileStore, StorageError, WorkspaceAccess, collections,
};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::Config;
use crate::compiles::CompileSlots;

/// Name this service writes in `source.host.service`.
pub const SERVICE_NAME: &str = refract_core::platform::service::WORKSPACES;

/// Everything the handlers share. Cheap to clone.
#[derive(Clone)]
pub struct WorkspacesState {
    pub(crate) broker: Arc<dyn Broker>,
    pub(crate) store: Arc<dyn DocumentStore>,
    pub(crate) files: FileStore,
    pub(crate) host: Arc<Host>,
    pub(crate) config: Arc<Config>,
    pub(crate) compiles: Arc<CompileSlots>,
}

impl std::fmt::Debug for WorkspacesState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkspacesState")
            .field("files", &self.files)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// What a handler needs: an action on a subject (`spec/http-api.md` §9.1).
pub type Need = (Action, Subject);

/// Proof that a request passed its access check: what [`crate::body::Unread`] asks for before
/// it reads a body. Only this module makes one ([`WorkspacesState::authorize`],
/// [`signed_in`]), so a handler cannot parse a body it has not authorized.
pub trait Checked: sealed::Sealed {}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Access {}
    impl Sealed for super::SignedIn {}
}

impl Checked for Access {}
impl Checked for SignedIn {}

/// A caller signed in as a user: the whole check of `POST /v2/workspaces`, and the first one of
/// `POST /v2/apps` (whose workspace is named in the body, checked once it is read).
#[derive(Debug)]
pub struct SignedIn(UserId);

impl SignedIn {
    /// The signed-in user.
    pub fn user(&self) -> &UserId {
        &self.0
    }
}

/// The caller's user, or 401.
pub fn signed_in(caller: &Caller) -> Result<SignedIn, ApiError> {
    caller.require_user().map(|u| SignedIn(u.clone()))
}

/// A workspace the caller may act on.
#[derive(Debug)]
pub struct Access {
    /// The workspace's id.
    pub id: WorkspaceId,
    /// The workspace as read for the check.
    pub workspace: Workspace,
    /// The stored version of `workspace`, for a conditional write of it.
    pub version: u64,
    /// Everything the caller holds here, for finer checks (per automation, per key).
    pub rights: WorkspaceAccess,
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
            compiles: Arc::new(CompileSlots::new(
                config.max_compiles,
                config.max_workspace_compiles,
            )),
            config: Arc::new(config),
        }
    }

    /// The process's component compile slots.
    pub fn compile_slots(&self) -> &CompileSlots {
        &self.compiles
    }

    /// What parsing one request body may cost: the document budget, with the JSON body limit
    /// as its byte cap.
    pub fn document_budget(&self) -> refract_dsl::Budget {
        refract_dsl::Budget::document().with_max_bytes(self.config.max_json_bytes)
    }

    /// The caller's access to `workspace_id`, checked against `need` by the platform's one
    /// permission check. Invisible workspaces (absent, or nothing granted) are 404, never 403.
    pub async fn authorize(
        &self,
        caller: &Caller,
        workspace_id: &str,
        need: Need,
    ) -> Result<Access, ApiError> {
        if caller.user_id.is_none() && caller.api_key.is_none() && !caller.superadmin {
            return Err(ApiError::unauthenticated("authentication required"));
        }
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
        let grant =
            refract_storage::access_of(self.store.as_ref(), id.as_str(), &caller.principal())
                .await
                .map_err(storage)?;
        let workspace: Workspace = decode(doc.body, "workspace")?;
        let (action, subject) = need;
        if !grant.allows(action, subject, &encode(&workspace)?) {
            if !grant.visible() {
                return Err(hidden());
            }
            return Err(ApiError::forbidden(format!(
                "you may not {action:?} {subject:?} in this workspace"
            )));
        }
        Ok(Access {
            id,
            workspace,
            version: doc.version,
            rights: grant,
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

/// The storage-side view of the gateway's trusted headers.
/// The API error of a storage failure (conflicts are handled by the callers that expect them).
pub(crate) fn storage(e: StorageError) -> ApiError {
    ApiError::from_kind(e.kind(), e)
}

/// Every document of `workspace` in `collection` (at most [`MAX_FIND_LIMIT`]), decoded.
pub(crate) async fn workspace_documents<T: DeserializeOwned>(
    state: &WorkspacesState,
    collection: &CollectionSpec,
    workspace: &str,
    what: &str,
) -> Result<Vec<T>, ApiError> {
    let docs = state
        .store
        .find(
            collection,
            "workspaceId",
            &Value::from(workspace),
            MAX_FIND_LIMIT,
        )
        .await
        .map_err(storage)?;
    docs.into_iter().map(|d| decode(d.body, what)).collect()
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
