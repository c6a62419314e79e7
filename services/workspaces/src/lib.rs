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
//! - [`export`]: the workspace as a zip the import takes; [`grants`]: what lets an import run
//!   an exported component by digest.
//! - [`versions`]: workspace versions (snapshots); [`apps`]: the app store (publish, search,
//!   delete); [`instances`]: apps installed in a workspace, their config and lifecycle events.
//! - [`sharing`]: shares with users, the public or custom roles (`…/permissions`).
//! - [`security`]: custom roles and rules, workspace API keys (`…/security`).
//! - [`openapi`]: schemas of the answers built as JSON values, for the OpenAPI document.
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
pub mod grants;
pub mod import;
pub mod inspect;
pub mod instances;
pub mod openapi;
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
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The service's routes with their operations (the OpenAPI document of
/// `spec/http-api.md` §4, §5, §9–§11), JSON bodies capped at the default
/// [`config::DEFAULT_MAX_JSON_BYTES`]: the document does not depend on the caps, so this is
/// what the platform's document is built from. [`router`] serves them with the configured
/// caps.
pub fn api() -> OpenApiRouter<WorkspacesState> {
    api_with(config::DEFAULT_MAX_JSON_BYTES)
}

/// The service's routes with their operations, all under `/v2/workspaces` and `/v2/apps`;
/// JSON bodies are capped at `json_limit` bytes ([`Config::max_json_bytes`]).
pub fn api_with(json_limit: usize) -> OpenApiRouter<WorkspacesState> {
    let api = OpenApiRouter::new()
        .routes(routes!(workspaces::list, workspaces::create))
        .routes(routes!(
            workspaces::get_one,
            workspaces::update,
            workspaces::remove
        ))
        .routes(routes!(automations::list, automations::create))
        .routes(routes!(
            automations::get_one,
            automations::update,
            automations::remove
        ))
        .routes(routes!(automation_versions::list))
        .routes(routes!(automation_versions::get_one))
        .routes(routes!(automation_versions::restore))
        .routes(routes!(sharing::list, sharing::share))
        .routes(routes!(sharing::revoke))
        .routes(routes!(security::get, security::replace))
        .routes(routes!(security::roles))
        .routes(routes!(security::list_keys, security::create_key))
        .routes(routes!(security::update_key, security::delete_key))
        .routes(routes!(secrets::list, secrets::merge, secrets::replace))
        .routes(routes!(secrets::remove))
        .routes(routes!(apps::list, apps::publish))
        .routes(routes!(apps::get_one, apps::remove))
        .routes(routes!(instances::list, instances::install))
        .routes(routes!(
            instances::get_one,
            instances::update,
            instances::remove
        ))
        .routes(routes!(instances::get_config, instances::patch_config))
        .routes(routes!(export::export))
        .routes(routes!(versions::list, versions::create))
        .routes(routes!(versions::remove))
        .layer(DefaultBodyLimit::max(json_limit));
    // The upload reads its body itself, with its own cap and gzip handling.
    let upload = OpenApiRouter::new()
        .routes(routes!(components::download, components::upload))
        .layer(DefaultBodyLimit::disable());
    // Archives of a Prisme.ai export (zip, or the runtime.yml form).
    let import = OpenApiRouter::new()
        .routes(routes!(import::import))
        .layer(DefaultBodyLimit::max(import::MAX_ARCHIVE_BYTES + 64 * 1024));
    api.merge(upload)
        .merge(import)
        .fallback(refract_http::not_found)
}

/// The service's routes, ready to serve. Serving (listener, shutdown) is the caller's job, so
/// tests drive this with `oneshot`.
pub fn router(state: WorkspacesState) -> Router {
    let json_limit = state.config.max_json_bytes;
    api_with(json_limit).split_for_parts().0.with_state(state)
}
