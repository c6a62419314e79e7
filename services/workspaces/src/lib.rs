//! `refract-workspaces`: the workspaces service (`spec/http-api.md` §4, §5.1–5.3, §9.2
//! secrets). It owns workspaces, memberships, automations, component uploads and secrets, and
//! emits `workspaces.*` events on every write.
//!
//! - [`config`]: [`Config`] and its defaults (size caps, compile timeout).
//! - [`body`]: request bodies, read and parsed (within the DSL's document budget) only after
//!   the access check.
//! - [`state`]: [`WorkspacesState`], access checks (`refract_storage::access_of` and the one
//!   rule evaluation of `refract_core::permissions`), event emission.
//! - [`workspaces`]: workspace CRUD (memberships, slugs).
//! - [`automations`]: automation CRUD; [`automation_fields`] applies and checks body members;
//!   [`schedule`] checks `when.schedules`; [`dsl`] validates and compiles DSL `do`/`output`.
//! - [`components`]: `PUT …/component`: read, check, compile through the host, store;
//!   [`compiles`] caps the compiles running at once (per process, per workspace);
//!   [`inspect`] reads imports and the source language from the binary.
//! - [`artifacts`]: [`FileArtifactStore`], the host's artifact store over file storage.
//! - [`secrets`]: write-only workspace secrets.
//! - [`versions`]: workspace versions (snapshots); [`apps`]: the app store (publish, search,
//!   delete); [`instances`]: apps installed in a workspace, their config and lifecycle events.
//! - [`sharing`]: shares with users, the public or custom roles (`…/permissions`).
//! - [`security`]: custom roles and rules, workspace API keys (`…/security`).
//! - `params`: query strings and body-map helpers shared by the handlers.
//!
//! Depends on core, http, broker, storage and host; never on another service crate.
#![warn(missing_docs)]

pub mod apps;
pub mod artifacts;
pub mod automation_fields;
pub mod automation_versions;
pub mod automations;
pub mod body;
pub mod compiles;
pub mod components;
pub mod config;
pub mod dsl;
pub mod export;
pub mod import;
pub mod inspect;
pub mod instances;
mod params;
pub mod schedule;
pub mod secrets;
pub mod security;
pub mod sharing;
pub mod state;
pub mod versions;
pub mod workspaces;

pub use artifacts::{ARTIFACTS_PREFIX, FileArtifactStore};
pub use config::Config;
pub use state::WorkspacesState;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post, put};

/// The service's routes, all under `/v2/workspaces`. Serving (listener, shutdown) is the
/// caller's job, so tests drive this with `oneshot`.
pub fn router(state: WorkspacesState) -> Router {
    let json_limit = state.config.max_json_bytes;
    let api = Router::new()
        .route(
            "/v2/workspaces",
            get(workspaces::list).post(workspaces::create),
        )
        .route(
            "/v2/workspaces/{workspace_id}",
            get(workspaces::get_one)
                .patch(workspaces::update)
                .delete(workspaces::remove),
        )
        .route(
            "/v2/workspaces/{workspace_id}/automations",
            get(automations::list).post(automations::create),
        )
        .route(
            "/v2/workspaces/{workspace_id}/automations/{slug}",
            get(automations::get_one)
                .patch(automations::update)
                .delete(automations::remove),
        )
        .route(
            "/v2/workspaces/{workspace_id}/automations/{slug}/versions",
            get(automation_versions::list),
        )
        .route(
            "/v2/workspaces/{workspace_id}/automations/{slug}/versions/{version}",
            get(automation_versions::get_one),
        )
        .route(
            "/v2/workspaces/{workspace_id}/automations/{slug}/versions/{version}/restore",
            post(automation_versions::restore),
        )
        .route(
            "/v2/workspaces/{workspace_id}/permissions",
            get(sharing::list).post(sharing::share),
        )
        .route(
            "/v2/workspaces/{workspace_id}/permissions/{user_id}",
            delete(sharing::revoke),
        )
        .route(
            "/v2/workspaces/{workspace_id}/security",
            get(security::get).put(security::replace),
        )
        .route(
            "/v2/workspaces/{workspace_id}/security/roles",
            get(security::roles),
        )
        .route(
            "/v2/workspaces/{workspace_id}/security/apikeys",
            get(security::list_keys).post(security::create_key),
        )
        .route(
            "/v2/workspaces/{workspace_id}/security/apikeys/{key_id}",
            put(security::update_key).delete(security::delete_key),
        )
        .route(
            "/v2/workspaces/{workspace_id}/security/secrets",
            get(secrets::list)
                .patch(secrets::merge)
                .put(secrets::replace),
        )
        .route(
            "/v2/workspaces/{workspace_id}/security/secrets/{name}",
            delete(secrets::remove),
        )
        .route("/v2/apps", get(apps::list).post(apps::publish))
        .route(
            "/v2/apps/{app_slug}",
            get(apps::get_one).delete(apps::remove),
        )
        .route(
            "/v2/workspaces/{workspace_id}/apps",
            get(instances::list).post(instances::install),
        )
        .route(
            "/v2/workspaces/{workspace_id}/apps/{slug}",
            get(instances::get_one)
                .patch(instances::update)
                .delete(instances::remove),
        )
        .route(
            "/v2/workspaces/{workspace_id}/apps/{slug}/config",
            get(instances::get_config).patch(instances::patch_config),
        )
        .route("/v2/workspaces/{workspace_id}/export", get(export::export))
        .route(
            "/v2/workspaces/{workspace_id}/versions",
            get(versions::list).post(versions::create),
        )
        .route(
            "/v2/workspaces/{workspace_id}/versions/{name}",
            delete(versions::remove),
        )
        .layer(DefaultBodyLimit::max(json_limit));
    // The upload reads its body itself, with its own cap and gzip handling.
    let upload = Router::new()
        .route(
            "/v2/workspaces/{workspace_id}/automations/{slug}/component",
            get(components::download).put(components::upload),
        )
        .layer(DefaultBodyLimit::disable());
    // Archives of a Prisme.ai export (zip, or the runtime.yml form).
    let import = Router::new()
        .route("/v2/workspaces/{workspace_id}/import", post(import::import))
        .layer(DefaultBodyLimit::max(import::MAX_ARCHIVE_BYTES + 64 * 1024));
    api.merge(upload)
        .merge(import)
        .fallback(refract_http::not_found)
        .with_state(state)
}
