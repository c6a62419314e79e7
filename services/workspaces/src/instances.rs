//! App instances (`spec/http-api.md` §11, `automation-dsl.md` §2.5, §8): an app installed in a
//! workspace under its own slug and config, optionally pinned to a version, disabled or not.
//! Documents live in `app_instances` by `<workspaceId>:<slug>` with a `workspaceId` member.
//!
//! Configs are checked against the app's schema (JSON Schema draft 7 built from the
//! TypedArgument map, [`refract_dsl::arguments`]) and read back with `secret: true` fields redacted.
//! Every write emits `workspaces.apps.installed|configured|uninstalled`, which the runtime
//! reads to (re)load the instance.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::Utc;
use refract_core::apps::{
    App, AppInstance, REDACTED, app_instance_doc_id, check_instance_slug, instance_config,
    parse_app_version, redact, secret_fields,
};
use refract_core::model::check_automation_slug;
use refract_core::platform::types;
use refract_core::{ErrorKind, WorkspaceId};
use refract_dsl::arguments::Arguments;
use refract_http::{ApiError, Caller, Json};
use refract_storage::documents::MAX_FIND_LIMIT;
use refract_storage::{Expect, collections};
use serde_json::{Map, Value, json};

use crate::apps;
use crate::body::Unread;
use crate::params;
use crate::state::{Access, Action, Subject, WorkspacesState, decode, encode, storage};
use crate::versions::instances_of;

/// The constant member of every instance document (see `refract_runtime::apps`).
pub const INSTALLED: &str = "installed";

/// Checks `config` against the app's schema: 400 `InvalidConfigError` with one `{path,
/// message}` per failure (messages never repeat the value, which may be a secret).
pub fn validate_config(app: &App, config: &Value) -> Result<(), ApiError> {
    let Some(Value::Object(arguments)) = app.config_schema.as_ref() else {
        return Ok(());
    };
    let schema = Arguments::compile(arguments).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "InvalidAppSchema",
            format!(
                "the config schema of app {:?} is not a valid JSON schema: {e}",
                app.slug
            ),
        )
    })?;
    let errors: Vec<Value> = schema
        .check(config)
        .into_iter()
        .map(|f| json!({"path": f.path, "message": f.message}))
        .collect();
    if errors.is_empty() {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::BAD_REQUEST,
        "InvalidConfigError",
        format!("the config does not match the schema of app {:?}", app.slug),
    )
    .with_details(json!(errors)))
}

/// An instance as clients read it: its config with secrets redacted.
fn public(instance: &AppInstance, app: Option<&App>) -> Value {
    let mut v = serde_json::to_value(instance).unwrap_or(Value::Null);
    v["config"] = redact(&instance.config, app.and_then(|a| a.config_schema.as_ref()));
    v
}

/// `DetailedAppInstance`: the instance plus the app's name, description, the version it runs
/// and the automations its parent may call.
async fn detailed(state: &WorkspacesState, instance: &AppInstance) -> Result<Value, ApiError> {
    let app = apps::find(state, &instance.app_slug).await?.map(|(a, _)| a);
    let mut v = public(instance, app.as_ref());
    if let Some(app) = &app {
        v["appName"] = app.name.clone();
        v["appDescription"] = json!(app.description);
        v["runningVersion"] = json!(instance.app_version.unwrap_or(app.current_version));
        if let Ok(version) = apps::load_version(state, app, instance.app_version).await {
            let callable: Vec<&str> = version
                .snapshot
                .automations
                .iter()
                .filter(|a| !a.private && !a.disabled)
                .map(|a| a.slug.as_str())
                .collect();
            v["automations"] = json!(callable);
        }
    }
    Ok(v)
}

async fn load(
    state: &WorkspacesState,
    workspace: &str,
    slug: &str,
) -> Result<(AppInstance, u64), ApiError> {
    let missing = || ApiError::not_found(format!("app instance {slug:?} not found"));
    if check_automation_slug(slug).is_err() {
        return Err(missing());
    }
    let doc = state
        .store
        .get(
            &collections::APP_INSTANCES,
            &app_instance_doc_id(workspace, slug),
        )
        .await
        .map_err(storage)?
        .ok_or_else(missing)?;
    Ok((decode(doc.body, "app instance")?, doc.version))
}

async fn store(
    state: &WorkspacesState,
    workspace: &str,
    instance: &AppInstance,
    expect: Expect,
) -> Result<(), ApiError> {
    let mut body = encode(instance)?;
    body["workspaceId"] = json!(workspace);
    // Lets the runtime find every workspace with instances (the store finds by field).
    body[INSTALLED] = json!(true);
    match state
        .store
        .put(
            &collections::APP_INSTANCES,
            &app_instance_doc_id(workspace, &instance.slug),
            &body,
            expect,
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == ErrorKind::Conflict && expect == Expect::Absent => {
            Err(ApiError::already_used(
                "slug",
                format!(
                    "an app instance {:?} is already installed here",
                    instance.slug
                ),
            ))
        }
        Err(e) if e.kind() == ErrorKind::Conflict => Err(ApiError::new(
            StatusCode::CONFLICT,
            "AlreadyUsedError",
            "the app instance changed while updating; retry",
        )),
        Err(e) => Err(storage(e)),
    }
}

/// The payload of `workspaces.apps.*`: `{appInstance, slug, appSlug, oldConfig?}` (redacted).
fn event_payload(instance: &AppInstance, app: Option<&App>) -> Value {
    json!({"appInstance": public(instance, app), "slug": instance.slug, "appSlug": instance.app_slug})
}

/// Refuses installing `app` in `workspace` when the app already has `workspace` as an
/// ancestor: the workspace publishes an app that the installed one (transitively) installs.
async fn check_not_recursive(
    state: &WorkspacesState,
    workspace: &str,
    app: &App,
    version: Option<u32>,
) -> Result<(), ApiError> {
    let tree = apps::import_tree(state, app, version).await?;
    let own = state
        .store
        .find(
            &collections::APPS,
            "workspaceId",
            &json!(workspace),
            MAX_FIND_LIMIT,
        )
        .await
        .map_err(storage)?;
    for doc in own {
        if let Some(slug) = doc.body.get("slug").and_then(Value::as_str)
            && tree.contains(slug)
        {
            return Err(apps::recursive(slug));
        }
    }
    Ok(())
}

/// `GET …/apps` → `[DetailedAppInstance]`.
#[utoipa::path(get, path = "/v2/workspaces/{workspace_id}/apps", tag = "app instances", params(refract_http::openapi::InWorkspace),
    responses((status = 200, description = "The apps installed in the workspace.", body = Vec<crate::openapi::DetailedAppInstance>)))]
pub async fn list(
    State(state): State<WorkspacesState>,
    caller: Caller,
    Path(workspace_id): Path<String>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let access = state
        .authorize(&caller, &workspace_id, (Action::Read, Subject::Workspaces))
        .await?;
    let mut out = Vec::new();
    for instance in instances_of(&state, access.id.as_str()).await? {
        out.push(detailed(&state, &instance).await?);
    }
    Ok(Json(out))
}

/// `POST …/apps`: `{appSlug, appVersion?, slug?, disabled?, labels?, config?}` → `AppInstance`.
#[utoipa::path(post, path = "/v2/workspaces/{workspace_id}/apps", tag = "app instances", params(refract_http::openapi::InWorkspace),
    request_body = crate::openapi::InstanceInput,
    responses((status = 200, description = "The instance installed.", body = crate::openapi::DetailedAppInstance),
        (status = 409, description = "An instance of that slug is already installed.", body = refract_http::openapi::ErrorBody),
        (status = 422, description = "The app's config schema is not a valid schema (`InvalidAppSchema`).", body = refract_http::openapi::ErrorBody)))]
pub async fn install(
    State(state): State<WorkspacesState>,
    caller: Caller,
    Path(workspace_id): Path<String>,
    body: Unread,
) -> Result<Json<Value>, ApiError> {
    let access = state
        .authorize(
            &caller,
            &workspace_id,
            (Action::Update, Subject::Workspaces),
        )
        .await?;
    let body: Map<String, Value> = body.json(&access).await?;
    let instance = install_into(&state, &caller, &access, body).await?;
    Ok(Json(detailed(&state, &instance).await?))
}

/// Installs the instance `body` describes (`appSlug`, and optionally `slug`, `appVersion`,
/// `disabled`, `labels`, `config`) in the workspace of `access`, which the caller may update:
/// the install route's checks, stored, `apps.installed` emitted. A workspace import installs
/// its `imports/` this way.
pub(crate) async fn install_into(
    state: &WorkspacesState,
    caller: &Caller,
    access: &Access,
    body: Map<String, Value>,
) -> Result<AppInstance, ApiError> {
    let app_slug = body
        .get("appSlug")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::validation("appSlug", "is required"))?
        .to_owned();
    let app = apps::load(state, &app_slug).await?;
    let now = Utc::now();
    let mut instance = AppInstance {
        slug: app_slug.clone(),
        app_slug: app_slug.clone(),
        app_version: None,
        disabled: false,
        labels: Vec::new(),
        config: json!({}),
        app_name: Some(app.name.clone()),
        created_at: Some(now),
        updated_at: Some(now),
    };
    apply(&mut instance, body, true)?;
    // The slug given, or the app's own by default.
    check_instance_slug(&instance.slug).map_err(|e| params::invalid_slug(&instance.slug, e))?;
    let version = apps::load_version(state, &app, instance.app_version).await?;
    check_not_recursive(state, access.id.as_str(), &app, instance.app_version).await?;
    validate_config(
        &app,
        &instance_config(&version.snapshot.default_config(), &instance.config),
    )?;
    store(state, access.id.as_str(), &instance, Expect::Absent).await?;
    state
        .emit(
            caller,
            &access.id,
            types::APPS_INSTALLED,
            event_payload(&instance, Some(&app)),
        )
        .await;
    Ok(instance)
}

/// Applies body members; `installing` allows `appSlug` and `slug`.
fn apply(
    instance: &mut AppInstance,
    body: Map<String, Value>,
    installing: bool,
) -> Result<(), ApiError> {
    for (key, value) in body {
        match key.as_str() {
            "appSlug" if installing => {}
            "appSlug" if value.as_str() == Some(instance.app_slug.as_str()) => {}
            "appSlug" => {
                return Err(ApiError::validation(
                    "appSlug",
                    "an instance's app is fixed; install another instance",
                ));
            }
            "slug" if value.is_null() => {}
            "slug" => {
                let s = params::string("slug", &value)?;
                if !installing && s != instance.slug {
                    return Err(ApiError::validation(
                        "slug",
                        "an instance's slug is fixed; uninstall and install again",
                    ));
                }
                instance.slug = s.to_owned();
            }
            "appVersion" => {
                instance.app_version =
                    parse_app_version(&value).map_err(|m| ApiError::validation("appVersion", m))?
            }
            "disabled" => {
                instance.disabled = value
                    .as_bool()
                    .ok_or_else(|| ApiError::validation("disabled", "must be a boolean"))?
            }
            "labels" if value.is_null() => instance.labels.clear(),
            "labels" => instance.labels = params::labels(&value)?,
            "config" if value.is_null() => instance.config = json!({}),
            "config" if value.is_object() => instance.config = value,
            "config" => return Err(ApiError::validation("config", "must be an object")),
            "appName" | "appDescription" | "createdAt" | "updatedAt" | "automations"
            | "runningVersion" | "workspaceId" | INSTALLED => {}
            other => return Err(params::unknown_field(other)),
        }
    }
    Ok(())
}

/// `GET …/apps/{slug}` → `DetailedAppInstance`.
#[utoipa::path(get, path = "/v2/workspaces/{workspace_id}/apps/{slug}", tag = "app instances",
    params(refract_http::openapi::InWorkspace, ("slug" = String, Path, description = "The instance's slug.")),
    responses((status = 200, description = "The instance.", body = crate::openapi::DetailedAppInstance)))]
pub async fn get_one(
    State(state): State<WorkspacesState>,
    caller: Caller,
    Path((workspace_id, slug)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let access = state
        .authorize(&caller, &workspace_id, (Action::Read, Subject::Workspaces))
        .await?;
    let (instance, _) = load(&state, access.id.as_str(), &slug).await?;
    Ok(Json(detailed(&state, &instance).await?))
}

/// Keeps the stored value of a secret field sent back as `"REDACTED"` (a client editing what
/// it read).
fn keep_redacted(new: &mut Value, old: &Value, app: &App) {
    for name in secret_fields(app.config_schema.as_ref()) {
        if new.get(&name).and_then(Value::as_str) == Some(REDACTED)
            && let (Some(m), Some(old)) = (new.as_object_mut(), old.get(&name))
        {
            m.insert(name, old.clone());
        }
    }
}

/// Validates and stores a changed instance, then emits `workspaces.apps.configured`.
async fn save(
    state: &WorkspacesState,
    caller: &Caller,
    access_id: &WorkspaceId,
    old: &AppInstance,
    mut instance: AppInstance,
    version: u64,
) -> Result<Value, ApiError> {
    let app = apps::load(state, &instance.app_slug).await?;
    keep_redacted(&mut instance.config, &old.config, &app);
    let v = apps::load_version(state, &app, instance.app_version).await?;
    if instance.app_version != old.app_version {
        check_not_recursive(state, access_id.as_str(), &app, instance.app_version).await?;
    }
    validate_config(
        &app,
        &instance_config(&v.snapshot.default_config(), &instance.config),
    )?;
    instance.updated_at = Some(Utc::now());
    store(
        state,
        access_id.as_str(),
        &instance,
        Expect::Version(version),
    )
    .await?;
    let mut payload = event_payload(&instance, Some(&app));
    payload["oldConfig"] = redact(&old.config, app.config_schema.as_ref());
    state
        .emit(caller, access_id, types::APPS_CONFIGURED, payload)
        .await;
    detailed(state, &instance).await
}

/// `PATCH …/apps/{slug}`: `AppInstance` members (`appVersion`, `disabled`, `labels`, `config`).
#[utoipa::path(patch, path = "/v2/workspaces/{workspace_id}/apps/{slug}", tag = "app instances",
    params(refract_http::openapi::InWorkspace, ("slug" = String, Path, description = "The instance's slug.")),
    request_body = crate::openapi::InstanceInput,
    responses((status = 200, description = "The instance as updated.", body = crate::openapi::DetailedAppInstance),
        (status = 409, description = refract_http::openapi::CONFLICT, body = refract_http::openapi::ErrorBody),
        (status = 422, description = "The app's config schema is not a valid schema (`InvalidAppSchema`).", body = refract_http::openapi::ErrorBody)))]
pub async fn update(
    State(state): State<WorkspacesState>,
    caller: Caller,
    Path((workspace_id, slug)): Path<(String, String)>,
    body: Unread,
) -> Result<Json<Value>, ApiError> {
    let access = state
        .authorize(
            &caller,
            &workspace_id,
            (Action::Update, Subject::Workspaces),
        )
        .await?;
    let body: Map<String, Value> = body.json(&access).await?;
    let (old, version) = load(&state, access.id.as_str(), &slug).await?;
    let mut instance = old.clone();
    apply(&mut instance, body, false)?;
    Ok(Json(
        save(&state, &caller, &access.id, &old, instance, version).await?,
    ))
}

/// `GET …/apps/{slug}/config`: the instance's own config, secrets redacted.
#[utoipa::path(get, path = "/v2/workspaces/{workspace_id}/apps/{slug}/config", tag = "app instances",
    params(refract_http::openapi::InWorkspace, ("slug" = String, Path, description = "The instance's slug.")),
    responses((status = 200, description = "The instance's own config, secret fields read as `REDACTED`.", body = Object)))]
pub async fn get_config(
    State(state): State<WorkspacesState>,
    caller: Caller,
    Path((workspace_id, slug)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let access = state
        .authorize(&caller, &workspace_id, (Action::Read, Subject::Workspaces))
        .await?;
    let (instance, _) = load(&state, access.id.as_str(), &slug).await?;
    let app = apps::find(&state, &instance.app_slug)
        .await?
        .map(|(a, _)| a);
    Ok(Json(redact(
        &instance.config,
        app.as_ref().and_then(|a| a.config_schema.as_ref()),
    )))
}

/// `PATCH …/apps/{slug}/config`: merges top-level keys into the instance config (`null`
/// removes one) → `AppInstance`.
#[utoipa::path(patch, path = "/v2/workspaces/{workspace_id}/apps/{slug}/config", tag = "app instances",
    params(refract_http::openapi::InWorkspace, ("slug" = String, Path, description = "The instance's slug.")),
    request_body(description = "Config keys to set; a `null` value removes the key. A secret field sent back as `REDACTED` keeps its value.", content((Object = "application/json"))),
    responses((status = 200, description = "The instance as updated.", body = crate::openapi::DetailedAppInstance),
        (status = 409, description = refract_http::openapi::CONFLICT, body = refract_http::openapi::ErrorBody),
        (status = 422, description = "The app's config schema is not a valid schema (`InvalidAppSchema`).", body = refract_http::openapi::ErrorBody)))]
pub async fn patch_config(
    State(state): State<WorkspacesState>,
    caller: Caller,
    Path((workspace_id, slug)): Path<(String, String)>,
    body: Unread,
) -> Result<Json<Value>, ApiError> {
    let access = state
        .authorize(
            &caller,
            &workspace_id,
            (Action::Update, Subject::Workspaces),
        )
        .await?;
    let body: Map<String, Value> = body.json(&access).await?;
    let (old, version) = load(&state, access.id.as_str(), &slug).await?;
    let mut instance = old.clone();
    let mut config = match &old.config {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    for (k, v) in body {
        if v.is_null() {
            config.remove(&k);
        } else {
            config.insert(k, v);
        }
    }
    instance.config = Value::Object(config);
    Ok(Json(
        save(&state, &caller, &access.id, &old, instance, version).await?,
    ))
}

/// Deletes an instance and emits `workspaces.apps.uninstalled` (the runtime drops its
/// triggers: events, endpoints, schedules).
pub async fn uninstall(
    state: &WorkspacesState,
    caller: &Caller,
    workspace: &WorkspaceId,
    instance: &AppInstance,
) -> Result<(), ApiError> {
    state
        .store
        .delete(
            &collections::APP_INSTANCES,
            &app_instance_doc_id(workspace.as_str(), &instance.slug),
            Expect::Any,
        )
        .await
        .map_err(storage)?;
    let app = apps::find(state, &instance.app_slug).await?.map(|(a, _)| a);
    state
        .emit(
            caller,
            workspace,
            types::APPS_UNINSTALLED,
            event_payload(instance, app.as_ref()),
        )
        .await;
    Ok(())
}

/// `DELETE …/apps/{slug}` → `{id}`.
#[utoipa::path(delete, path = "/v2/workspaces/{workspace_id}/apps/{slug}", tag = "app instances",
    params(refract_http::openapi::InWorkspace, ("slug" = String, Path, description = "The instance's slug.")),
    responses((status = 200, description = "The instance is uninstalled.", body = crate::openapi::Deleted)))]
pub async fn remove(
    State(state): State<WorkspacesState>,
    caller: Caller,
    Path((workspace_id, slug)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let access = state
        .authorize(
            &caller,
            &workspace_id,
            (Action::Update, Subject::Workspaces),
        )
        .await?;
    let (instance, _) = load(&state, access.id.as_str(), &slug).await?;
    uninstall(&state, &caller, &access.id, &instance).await?;
    Ok(Json(json!({ "id": slug })))
}

/// Deletes every instance of a workspace being deleted (no events: `workspaces.deleted` says it).
pub async fn delete_all(state: &WorkspacesState, workspace: &str) -> Result<(), ApiError> {
    for instance in instances_of(state, workspace).await? {
        state
            .store
            .delete(
                &collections::APP_INSTANCES,
                &app_instance_doc_id(workspace, &instance.slug),
                Expect::Any,
            )
            .await
            .map_err(storage)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(schema: Value) -> App {
        serde_json::from_value(json!({"slug": "mailer", "name": "Mailer", "workspaceId": "w1", "configSchema": schema,
            "currentVersion": 1, "createdAt": "2026-11-27T10:00:00Z", "updatedAt": "2026-11-27T10:00:00Z", "createdBy": "u"}))
        .expect("app")
    }

    #[test]
    fn configs_are_checked_against_the_typed_argument_schema() {
        let a = app(json!({
            "greeting": {"type": "string", "required": true, "ui:widget": "textarea"},
            "retries": {"type": "number", "maximum": 5},
            "token": {"type": "string", "secret": true},
            "title": {"type": "localized:string"},
        }));
        assert!(
            validate_config(
                &a,
                &json!({"greeting": "hi", "retries": 2, "title": {"fr": "salut"}})
            )
            .is_ok()
        );
        let e = validate_config(&a, &json!({"retries": 9, "token": 42})).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.code, "InvalidConfigError");
        let details = e.details.expect("details").to_string();
        assert!(
            details.contains("/retries") && details.contains("/token"),
            "{details}"
        );
        assert!(!details.contains("42"), "values are not echoed: {details}");
        assert!(validate_config(&app(Value::Null), &json!({"anything": 1})).is_ok());
    }

    #[test]
    fn a_secret_sent_back_redacted_keeps_its_value() {
        let a = app(json!({"token": {"type": "string", "secret": true}}));
        let mut new = json!({"token": REDACTED, "x": 1});
        keep_redacted(&mut new, &json!({"token": "s3cret"}), &a);
        assert_eq!(new, json!({"token": "s3cret", "x": 1}));
    }
}
