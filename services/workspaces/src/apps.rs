//! The app store (`spec/http-api.md` §11): publishing a workspace (or one of its versions) as
//! a new immutable version of an app, searching apps, reading one at a version, deleting one.
//!
//! An app is one document in `apps` (slug, metadata, `currentVersion`, the version list) and
//! one document per version in `app_versions` holding the [`Snapshot`]. Versions are numbered
//! 1, 2, … and never rewritten; `current` is the latest.

use refract_core::platform::types;
use std::collections::HashSet;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use chrono::Utc;
use refract_core::apps::{
    App, AppVersion, AppVersionMeta, MAX_APP_DEPTH, app_version_doc_id, parse_app_version,
};
use refract_core::model::check_automation_slug;
use refract_core::{ErrorKind, WorkspaceId};
use refract_http::{ApiError, Caller, Json};
use refract_storage::documents::MAX_FIND_LIMIT;
use refract_storage::{Expect, collections};
use serde_json::{Map, Value, json};

use crate::body::Unread;
use crate::instances;
use crate::params;
use crate::state::signed_in;
use crate::state::{Action, Subject, WorkspacesState, decode, encode, storage};
use crate::versions;

/// Most versions one app keeps (`MAXIMUM_APP_VERSION`, §14.2).
pub const MAX_APP_VERSIONS: u32 = 1_000;

/// The member every app document carries so the store can list them all (it finds by field).
const LISTED: &str = "listed";

/// The app `slug`, with its document version, if published.
pub async fn find(state: &WorkspacesState, slug: &str) -> Result<Option<(App, u64)>, ApiError> {
    if check_automation_slug(slug).is_err() {
        return Ok(None);
    }
    match state
        .store
        .get(&collections::APPS, slug)
        .await
        .map_err(storage)?
    {
        Some(doc) => Ok(Some((decode(doc.body, "app")?, doc.version))),
        None => Ok(None),
    }
}

/// The app `slug` or 404.
pub async fn load(state: &WorkspacesState, slug: &str) -> Result<App, ApiError> {
    find(state, slug)
        .await?
        .map(|(a, _)| a)
        .ok_or_else(|| ApiError::not_found(format!("app {slug:?} not found")))
}

/// Version `version` (`None` = current) of `app`, or 404.
pub async fn load_version(
    state: &WorkspacesState,
    app: &App,
    version: Option<u32>,
) -> Result<AppVersion, ApiError> {
    let n = version.unwrap_or(app.current_version);
    let doc = state
        .store
        .get(
            &collections::APP_VERSIONS,
            &app_version_doc_id(&app.slug, n),
        )
        .await
        .map_err(storage)?
        .ok_or_else(|| ApiError::not_found(format!("app {:?} has no version {n}", app.slug)))?;
    decode(doc.body, "app version")
}

/// Every app an instance of `app` (at `version`) brings along: the app itself and, through the
/// instances its snapshot installs, its descendants. Bounded by [`MAX_APP_DEPTH`].
pub async fn import_tree(
    state: &WorkspacesState,
    app: &App,
    version: Option<u32>,
) -> Result<HashSet<String>, ApiError> {
    let mut seen = HashSet::new();
    let mut frontier = vec![(app.clone(), version, 0u32)];
    while let Some((app, version, depth)) = frontier.pop() {
        if !seen.insert(app.slug.clone()) || depth >= MAX_APP_DEPTH {
            continue;
        }
        let Ok(v) = load_version(state, &app, version).await else {
            continue;
        };
        for import in v.snapshot.imports {
            if let Some((child, _)) = find(state, &import.app_slug).await? {
                frontier.push((child, import.app_version, depth + 1));
            }
        }
    }
    Ok(seen)
}

/// The public view of an app: its document plus the version asked for, its config schema and
/// the automations a parent may call.
fn view(app: &App, version: &AppVersion) -> Result<Value, ApiError> {
    let mut v = encode(app)?;
    if let Some(m) = v.as_object_mut() {
        m.remove(LISTED);
        m.insert("version".into(), json!(version.version));
        m.insert("config".into(), json!({
            "schema": app.config_schema,
            "value": refract_core::apps::redact(&version.snapshot.default_config(), app.config_schema.as_ref()),
        }));
        let automations: Vec<Value> = version
            .snapshot
            .automations
            .iter()
            .filter(|a| !a.private && !a.disabled)
            .map(|a| json!({"slug": a.slug, "name": a.name, "description": a.description, "kind": a.kind, "arguments": a.arguments}))
            .collect();
        m.insert("automations".into(), json!(automations));
    }
    Ok(v)
}

/// `POST /v2/apps`: `{workspaceId, workspaceVersion?, slug?, name?, description?, labels?,
/// photo?, configSchema?}` → `App`. A new version of the app when the slug is already this
/// workspace's; 409 when it is another workspace's.
#[utoipa::path(post, path = "/v2/apps", tag = "apps",
    request_body = crate::openapi::PublishInput,
    responses((status = 200, description = "The app at the version published.", body = crate::openapi::AppView),
        (status = 409, description = "The slug is another workspace's app, or the app was published concurrently.", body = refract_http::openapi::ErrorBody),
        (status = 422, description = "The app keeps the most versions it may (`TooManyVersions`).", body = refract_http::openapi::ErrorBody)))]
pub async fn publish(
    State(state): State<WorkspacesState>,
    caller: Caller,
    body: Unread,
) -> Result<Json<Value>, ApiError> {
    // The workspace is named in the body: a signed-in caller's body is read, then checked.
    let body: Map<String, Value> = body.json(&signed_in(&caller)?).await?;
    let workspace_id = body
        .get("workspaceId")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::validation("workspaceId", "is required"))?
        .to_owned();
    let access = state
        .authorize(
            &caller,
            &workspace_id,
            (Action::Update, Subject::Workspaces),
        )
        .await?;
    let user = caller.require_user()?.to_string();
    let ws = &access.workspace;
    let (mut slug, mut name, mut description, mut labels, mut photo, mut schema, mut from) =
        (None, None, None, None, None, None, None);
    for (key, value) in body {
        match key.as_str() {
            "workspaceId" => {}
            "workspaceVersion" if value.is_null() => {}
            "workspaceVersion" => {
                from = Some(params::string("workspaceVersion", &value)?.to_owned())
            }
            "slug" if value.is_null() => {}
            "slug" => {
                let s = params::string("slug", &value)?;
                check_app_slug(s)?;
                slug = Some(s.to_owned());
            }
            "name" => name = Some(value).filter(|v| !v.is_null()),
            "description" => description = Some(value).filter(|v| !v.is_null()),
            "labels" => labels = Some(params::labels(&value)?),
            "photo" => photo = value.as_str().map(str::to_owned),
            "configSchema" if value.is_null() || value.is_object() => {
                schema = Some(value).filter(|v| !v.is_null())
            }
            "configSchema" => {
                return Err(ApiError::validation(
                    "configSchema",
                    "must be an object (name → argument)",
                ));
            }
            other => return Err(params::unknown_field(other)),
        }
    }
    let slug = match slug {
        Some(s) => s,
        None => {
            let s = ws.slug.clone();
            check_app_slug(&s)?;
            s
        }
    };
    let snapshot = match &from {
        Some(v) => {
            versions::load(&state, access.id.as_str(), v)
                .await?
                .snapshot
        }
        None => versions::snapshot(&state, &access.id, ws).await?,
    };
    let now = Utc::now();
    let existing = find(&state, &slug).await?;
    if let Some((app, _)) = &existing
        && app.workspace_id != access.id.as_str()
    {
        return Err(ApiError::already_used(
            "slug",
            format!("app slug {slug:?} is already used"),
        ));
    }
    // Recursion: an app whose snapshot (transitively) installs itself.
    for import in &snapshot.imports {
        if let Some((child, _)) = find(&state, &import.app_slug).await?
            && import_tree(&state, &child, import.app_version)
                .await?
                .contains(&slug)
        {
            return Err(recursive(&slug));
        }
    }
    let schema = schema.or_else(|| ws.config.as_ref().and_then(|c| c.get("schema")).cloned());
    let number = existing.as_ref().map_or(1, |(a, _)| a.current_version + 1);
    if number > MAX_APP_VERSIONS {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "TooManyVersions",
            format!("an app keeps at most {MAX_APP_VERSIONS} versions"),
        ));
    }
    let version = AppVersion {
        app_slug: slug.clone(),
        version: number,
        workspace_id: access.id.as_str().to_owned(),
        workspace_version: from.clone(),
        snapshot,
        created_at: now,
    };
    match state
        .store
        .put(
            &collections::APP_VERSIONS,
            &app_version_doc_id(&slug, number),
            &encode(&version)?,
            Expect::Absent,
        )
        .await
    {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::Conflict => return Err(concurrent()),
        Err(e) => return Err(storage(e)),
    }
    let meta = AppVersionMeta {
        version: number,
        workspace_version: from,
        created_at: now,
    };
    let (app, expect) = match existing {
        Some((mut app, doc_version)) => {
            app.current_version = number;
            app.versions.push(meta);
            app.updated_at = now;
            app.name = name.unwrap_or(app.name);
            app.description = description.or(app.description);
            app.labels = labels.unwrap_or(app.labels);
            app.photo = photo.or(app.photo);
            app.config_schema = schema;
            (app, Expect::Version(doc_version))
        }
        None => (
            App {
                slug: slug.clone(),
                name: name.unwrap_or_else(|| ws.name.clone()),
                description: description.or_else(|| ws.description.clone()),
                labels: labels.unwrap_or_else(|| ws.labels.clone()),
                photo: photo.or_else(|| ws.photo.clone()),
                workspace_id: access.id.as_str().to_owned(),
                config_schema: schema,
                current_version: number,
                versions: vec![meta],
                created_at: now,
                updated_at: now,
                created_by: user,
            },
            Expect::Absent,
        ),
    };
    let mut doc = encode(&app)?;
    doc[LISTED] = json!(true);
    match state
        .store
        .put(&collections::APPS, &slug, &doc, expect)
        .await
    {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::Conflict => return Err(concurrent()),
        Err(e) => return Err(storage(e)),
    }
    let out = view(&app, &version)?;
    state
        .emit(
            &caller,
            &access.id,
            types::APPS_PUBLISHED,
            json!({"appSlug": slug, "version": number, "app": out}),
        )
        .await;
    Ok(Json(out))
}

fn check_app_slug(slug: &str) -> Result<(), ApiError> {
    check_automation_slug(slug).map_err(|e| params::invalid_slug(slug, e))?;
    if slug.contains(' ') {
        return Err(params::invalid_slug(slug, "an app slug has no spaces"));
    }
    Ok(())
}

fn concurrent() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "AlreadyUsedError",
        "the app was published concurrently; retry",
    )
}

/// 400: an app that would (transitively) install itself.
pub fn recursive(slug: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "RecursiveImportError",
        format!("app {slug:?} would install itself (recursive import)"),
    )
    .with_details(json!({"appSlug": slug}))
}

/// `GET /v2/apps`: query `text, workspaceId, labels, page, limit` → `[App]` (current versions).
#[utoipa::path(get, path = "/v2/apps", tag = "apps",
    params(crate::openapi::Page,
        ("text" = Option<String>, Query, description = "Text the slug, name or description must contain (case-insensitive)."),
        ("workspaceId" = Option<String>, Query, description = "Only the apps published from this workspace."),
        ("labels" = Option<String>, Query, description = "Comma-separated labels the app must all have.")),
    responses((status = 200, description = "The published apps, by slug.", body = Vec<App>)))]
pub async fn list(
    State(state): State<WorkspacesState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Json<Vec<Value>>, ApiError> {
    caller.require_user()?;
    let q = params::query(raw.as_deref());
    let (offset, limit) = params::page(&q)?;
    let text = q
        .get("text")
        .map(|t| t.to_lowercase())
        .filter(|t| !t.is_empty());
    let labels = params::list(&q, "labels");
    let workspace = q.get("workspaceId");
    let docs = state
        .store
        .find(&collections::APPS, LISTED, &json!(true), MAX_FIND_LIMIT)
        .await
        .map_err(storage)?;
    let mut apps: Vec<App> = docs
        .into_iter()
        .map(|d| decode(d.body, "app"))
        .collect::<Result<_, _>>()?;
    apps.sort_by(|a, b| a.slug.cmp(&b.slug));
    let matches_text = |a: &App| {
        text.as_ref().is_none_or(|t| {
            let hay = format!(
                "{} {} {}",
                a.slug,
                a.name,
                a.description.clone().unwrap_or_default()
            )
            .to_lowercase();
            hay.contains(t.as_str())
        })
    };
    let mut out = Vec::new();
    for app in apps
        .iter()
        .filter(|a| workspace.is_none_or(|w| &a.workspace_id == w))
        .filter(|a| {
            labels
                .as_ref()
                .is_none_or(|want| want.iter().all(|l| a.labels.contains(l)))
        })
        .filter(|a| matches_text(a))
        .skip(offset)
        .take(limit)
    {
        let mut v = encode(app)?;
        if let Some(m) = v.as_object_mut() {
            m.remove(LISTED);
        }
        out.push(v);
    }
    Ok(Json(out))
}

/// `GET /v2/apps/{appSlug}`: query `version` (a number or `current`, the default) → `App`.
#[utoipa::path(get, path = "/v2/apps/{app_slug}", tag = "apps",
    params(("app_slug" = String, Path, description = "The app's slug."),
        ("version" = Option<String>, Query, description = "A version number, or `current` (the default).")),
    responses((status = 200, description = "The app at that version.", body = crate::openapi::AppView)))]
pub async fn get_one(
    State(state): State<WorkspacesState>,
    caller: Caller,
    Path(slug): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    caller.require_user()?;
    let q = params::query(raw.as_deref());
    let version = match q.get("version") {
        None => None,
        Some(v) => parse_app_version(&json!(v)).map_err(|m| ApiError::validation("version", m))?,
    };
    let app = load(&state, &slug).await?;
    let v = load_version(&state, &app, version).await?;
    Ok(Json(view(&app, &v)?))
}

/// `DELETE /v2/apps/{appSlug}`: 409 `AppInUse` while installed, unless `force=true`, which
/// uninstalls every instance first. Needs `delete apps` on the source workspace.
#[utoipa::path(delete, path = "/v2/apps/{app_slug}", tag = "apps",
    params(("app_slug" = String, Path, description = "The app's slug."),
        ("force" = Option<bool>, Query, description = "`true` uninstalls every instance first.")),
    responses((status = 200, description = "The app and its versions are deleted.", body = crate::openapi::Deleted),
        (status = 409, description = "The app is installed somewhere and `force` is not `true` (`AppInUse`).", body = refract_http::openapi::ErrorBody)))]
pub async fn remove(
    State(state): State<WorkspacesState>,
    caller: Caller,
    Path(slug): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let app = load(&state, &slug).await?;
    if !caller.superadmin {
        state
            .authorize(&caller, &app.workspace_id, (Action::Delete, Subject::Apps))
            .await?;
    }
    let force = params::query(raw.as_deref())
        .get("force")
        .is_some_and(|f| f == "true");
    let installed = state
        .store
        .find(
            &collections::APP_INSTANCES,
            "appSlug",
            &json!(slug),
            MAX_FIND_LIMIT,
        )
        .await
        .map_err(storage)?;
    if !installed.is_empty() && !force {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "AppInUse",
            format!(
                "app {slug:?} is installed {} time(s); uninstall it first or pass force=true",
                installed.len()
            ),
        )
        .with_details(json!({"instances": installed.len()})));
    }
    for doc in installed {
        let instance: refract_core::apps::AppInstance = decode(doc.body.clone(), "app instance")?;
        let Some(ws) = doc
            .body
            .get("workspaceId")
            .and_then(Value::as_str)
            .and_then(|w| WorkspaceId::new(w).ok())
        else {
            continue;
        };
        instances::uninstall(&state, &caller, &ws, &instance).await?;
    }
    for meta in &app.versions {
        state
            .store
            .delete(
                &collections::APP_VERSIONS,
                &app_version_doc_id(&slug, meta.version),
                Expect::Any,
            )
            .await
            .map_err(storage)?;
    }
    state
        .store
        .delete(&collections::APPS, &slug, Expect::Any)
        .await
        .map_err(storage)?;
    if let Ok(source) = WorkspaceId::new(&app.workspace_id) {
        state
            .emit(
                &caller,
                &source,
                types::APPS_DELETED,
                json!({"appSlug": slug}),
            )
            .await;
    }
    Ok(Json(json!({ "id": slug })))
}
