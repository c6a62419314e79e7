//! Automation CRUD (`spec/http-api.md` §5.1–5.2). Documents live in the `automations`
//! collection under `automation_doc_id(workspace, slug)`; the stored body is the [`Automation`]
//! plus a `workspaceId` member, so a workspace's automations can be found.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::http::header::ETAG;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use refract_core::model::{
    Automation, AutomationKind, ComponentInfo, automation_doc_id, check_automation_slug,
};
use refract_core::platform::types;
use refract_core::{ErrorKind, WorkspaceId};
use refract_http::{ApiError, Caller, Json};
use refract_storage::{Document, Expect, collections};
use serde_json::{Value, json};

use crate::automation_fields::{apply, free_slug};
use crate::body::Unread;
use crate::params;
use crate::state::{
    Action, Subject, WorkspacesState, decode, encode, storage, workspace_documents,
};

/// Every automation of a workspace, by slug.
pub async fn load_all(
    state: &WorkspacesState,
    workspace: &WorkspaceId,
) -> Result<Vec<Automation>, ApiError> {
    let mut all: Vec<Automation> = workspace_documents(
        state,
        &collections::AUTOMATIONS,
        workspace.as_str(),
        "automation",
    )
    .await?;
    all.sort_by(|a, b| a.slug.cmp(&b.slug));
    Ok(all)
}

/// The automation `slug` of `workspace` and its document version, or 404.
pub async fn load(
    state: &WorkspacesState,
    workspace: &str,
    slug: &str,
) -> Result<(Automation, u64), ApiError> {
    let missing = || ApiError::not_found(format!("automation {slug:?} not found"));
    if check_automation_slug(slug).is_err() {
        return Err(missing());
    }
    let doc = state
        .store
        .get(
            &collections::AUTOMATIONS,
            &automation_doc_id(workspace, slug),
        )
        .await
        .map_err(storage)?;
    let Document { body, version, .. } = doc.ok_or_else(missing)?;
    Ok((decode(body, "automation")?, version))
}

/// Stores `automation` as `expect`ed; a conflict is returned as is for the caller to read.
pub async fn store(
    state: &WorkspacesState,
    workspace: &str,
    automation: &Automation,
    expect: Expect,
) -> Result<Result<Document, refract_storage::StorageError>, ApiError> {
    let mut body = encode(automation)?;
    if let Some(map) = body.as_object_mut() {
        map.insert("workspaceId".into(), json!(workspace));
    }
    Ok(state
        .store
        .put(
            &collections::AUTOMATIONS,
            &automation_doc_id(workspace, &automation.slug),
            &body,
            expect,
        )
        .await)
}

/// Deletes automation `slug` and its versions.
pub(crate) async fn delete_doc(
    state: &WorkspacesState,
    workspace: &str,
    slug: &str,
) -> Result<(), ApiError> {
    crate::automation_versions::remove_all(state, workspace, slug).await?;
    state
        .store
        .delete(
            &collections::AUTOMATIONS,
            &automation_doc_id(workspace, slug),
            Expect::Any,
        )
        .await
        .map_err(storage)?;
    Ok(())
}

/// `AutomationMeta`: the automation without `do`, `output` and `component.imports`.
pub fn meta(a: &Automation) -> Result<Value, ApiError> {
    let mut v = encode(a)?;
    if let Some(map) = v.as_object_mut() {
        map.remove("do");
        map.remove("output");
        if let Some(c) = map.get_mut("component").and_then(Value::as_object_mut) {
            c.remove("imports");
        }
    }
    Ok(v)
}

/// Largest `automation` member sent in events: past it the event carries `AutomationMeta`
/// (no `do`, `output`, `component.imports`) so it stays under the broker's 100 kB cap.
pub const MAX_EVENT_AUTOMATION_BYTES: usize = 80_000;

/// The payload of `workspaces.automations.*` events: `{automation, slug, oldSlug?}`.
pub fn event_payload(a: &Automation, old_slug: Option<&str>) -> Value {
    let full = serde_json::to_value(a).unwrap_or(Value::Null);
    let automation =
        if serde_json::to_vec(&full).map_or(0, |b| b.len()) > MAX_EVENT_AUTOMATION_BYTES {
            meta(a).unwrap_or(Value::Null)
        } else {
            full
        };
    let mut p = json!({ "automation": automation, "slug": a.slug });
    if let Some(old) = old_slug {
        p["oldSlug"] = json!(old);
    }
    p
}

/// 409 `AlreadyUsedError` on `version`: the automation was written by someone else between
/// this request's read and its write (`while` says during what).
pub fn changed_meanwhile(while_: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "AlreadyUsedError",
        format!("the automation changed {while_}; retry"),
    )
    .with_details(json!({ "field": "version" }))
}

/// 409 `AutomationKindConflict`.
pub fn kind_conflict(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "AutomationKindConflict", message)
}

/// `GET …/automations`: `[AutomationMeta]`, query `page, limit, labels, kind`.
#[utoipa::path(get, path = "/v2/workspaces/{workspace_id}/automations", tag = "automations",
    params(refract_http::openapi::InWorkspace, crate::openapi::Page,
        ("labels" = Option<String>, Query, description = "Comma-separated labels the automation must all have."),
        ("kind" = Option<AutomationKind>, Query, description = "Only automations of this kind.")),
    responses((status = 200, description = "The workspace's automations by slug (`AutomationMeta`: without `do`, `output`, `component.imports`).", body = Vec<Automation>)))]
pub async fn list(
    State(state): State<WorkspacesState>,
    caller: Caller,
    Path(workspace_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Vec<Value>>, ApiError> {
    let access = state
        .authorize(&caller, &workspace_id, (Action::Read, Subject::Automations))
        .await?;
    let q = params::query(raw.as_deref());
    let (offset, limit) = params::page(&q)?;
    let kind = match q.get("kind").map(String::as_str) {
        None => None,
        Some("dsl") => Some(AutomationKind::Dsl),
        Some("component") => Some(AutomationKind::Component),
        Some(_) => return Err(ApiError::validation("kind", "must be dsl or component")),
    };
    let labels = params::list(&q, "labels");
    load_all(&state, &access.id)
        .await?
        .iter()
        .filter(|a| kind.is_none_or(|k| a.kind == k))
        .filter(|a| {
            labels
                .as_ref()
                .is_none_or(|want| want.iter().all(|l| a.labels.contains(l)))
        })
        .skip(offset)
        .take(limit)
        .map(meta)
        .collect::<Result<_, _>>()
        .map(Json)
}

/// `POST …/automations`: kind from the body (`do` → dsl, `component` → component).
#[utoipa::path(post, path = "/v2/workspaces/{workspace_id}/automations", tag = "automations", params(refract_http::openapi::InWorkspace),
    request_body(description = "An automation document (`spec/http-api.md` §5.1): `name` required, `do` (and `output`) for a DSL automation or `component` for a component one, and optionally `slug`, `description`, `labels`, `disabled`, `private`, `when`, `arguments`, `validateArguments`, `authorizations`, `retry`, `config`. JSON, or YAML (a Prisme.ai `automations/<slug>.yml` as is).",
        content((Object = "application/json"), (Object = "application/yaml"))),
    responses((status = 200, description = "The automation created.", body = Automation),
        (status = 409, description = "The slug is already used.", body = refract_http::openapi::ErrorBody)))]
pub async fn create(
    State(state): State<WorkspacesState>,
    caller: Caller,
    Path(workspace_id): Path<String>,
    body: Unread,
) -> Result<Json<Automation>, ApiError> {
    let access = state
        .authorize(
            &caller,
            &workspace_id,
            (Action::Update, Subject::Automations),
        )
        .await?;
    let body = body.document(&access).await?;
    let user = caller.require_user()?.to_string();
    let present = |k: &str| body.get(k).is_some_and(|v| !v.is_null());
    let kind = match (
        present("do"),
        present("component"),
        body.get("kind").and_then(Value::as_str),
    ) {
        (true, true, _) => {
            return Err(ApiError::validation(
                "body",
                "has both do and component; choose one kind",
            ));
        }
        (true, false, None | Some("dsl")) => AutomationKind::Dsl,
        (false, _, None | Some("component")) if present("component") || present("kind") => {
            AutomationKind::Component
        }
        (false, false, Some("dsl")) => {
            return Err(ApiError::validation(
                "do",
                "is required for a dsl automation",
            ));
        }
        (_, _, Some(_)) => {
            return Err(ApiError::validation(
                "kind",
                "must be dsl or component, and agree with the body",
            ));
        }
        _ => {
            return Err(ApiError::validation(
                "body",
                "needs do (a dsl automation) or component (a component automation)",
            ));
        }
    };
    let now = Utc::now();
    let mut a = Automation {
        slug: String::new(),
        name: Value::Null,
        description: None,
        labels: Vec::new(),
        disabled: false,
        private: false,
        when: None,
        arguments: None,
        validate_arguments: false,
        authorizations: None,
        retry: None,
        config: None,
        kind,
        instructions: None,
        output: None,
        component: (kind == AutomationKind::Component).then(ComponentInfo::missing),
        created_at: now,
        created_by: user.clone(),
        updated_at: now,
        updated_by: user,
    };
    apply(&state, &mut a, body)?;
    if a.name.is_null() {
        return Err(ApiError::validation("name", "is required"));
    }
    if a.kind == AutomationKind::Dsl {
        crate::dsl::check(&a)?;
    }
    let ws = access.id.as_str();
    let explicit = !a.slug.is_empty();
    if !explicit {
        a.slug = free_slug(&state, ws, &a.name).await?;
    }
    match store(&state, ws, &a, Expect::Absent).await? {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::Conflict => {
            return Err(ApiError::already_used(
                "slug",
                format!("automation slug {:?} is already used", a.slug),
            ));
        }
        Err(e) => return Err(storage(e)),
    }
    state
        .emit(
            &caller,
            &access.id,
            types::AUTOMATIONS_CREATED,
            event_payload(&a, None),
        )
        .await;
    Ok(Json(a))
}

/// `GET …/automations/{slug}`: the automation; `ETag` is the component digest.
#[utoipa::path(get, path = "/v2/workspaces/{workspace_id}/automations/{slug}", tag = "automations",
    params(refract_http::openapi::InWorkspace, ("slug" = String, Path, description = "The automation's slug.")),
    responses((status = 200, description = "The automation.", body = Automation,
        headers(("etag" = String, description = "A component automation's component digest, once uploaded.")))))]
pub async fn get_one(
    State(state): State<WorkspacesState>,
    caller: Caller,
    Path((workspace_id, slug)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let access = state
        .authorize(&caller, &workspace_id, (Action::Read, Subject::Automations))
        .await?;
    let (a, _) = load(&state, access.id.as_str(), &slug).await?;
    let etag = a
        .component
        .as_ref()
        .and_then(|c| c.digest.as_ref())
        .map(|d| format!("\"{d}\""));
    let mut response = Json(a).into_response();
    if let Some(tag) = etag.and_then(|t| t.parse().ok()) {
        response.headers_mut().insert(ETAG, tag);
    }
    Ok(response)
}

/// `PATCH …/automations/{slug}`: top-level members to replace; `slug` renames.
#[utoipa::path(patch, path = "/v2/workspaces/{workspace_id}/automations/{slug}", tag = "automations",
    params(refract_http::openapi::InWorkspace, ("slug" = String, Path, description = "The automation's slug.")),
    request_body(description = "The members to replace (those of the create body); `slug` renames the automation. JSON or YAML.",
        content((Object = "application/json"), (Object = "application/yaml"))),
    responses((status = 200, description = "The automation as updated.", body = Automation),
        (status = 409, description = "The new slug is already used, the automation changed meanwhile (`AlreadyUsedError`), or the body is of the other kind (`AutomationKindConflict`).", body = refract_http::openapi::ErrorBody)))]
pub async fn update(
    State(state): State<WorkspacesState>,
    caller: Caller,
    Path((workspace_id, slug)): Path<(String, String)>,
    body: Unread,
) -> Result<Json<Automation>, ApiError> {
    let access = state
        .authorize(
            &caller,
            &workspace_id,
            (Action::Update, Subject::Automations),
        )
        .await?;
    let body = body.document(&access).await?;
    let ws = access.id.as_str();
    let (old, version) = load(&state, ws, &slug).await?;
    let present = |k: &str| body.get(k).is_some_and(|v| !v.is_null());
    match old.kind {
        AutomationKind::Component if present("do") => {
            return Err(kind_conflict("a component automation has no do"));
        }
        AutomationKind::Dsl if present("component") => {
            return Err(kind_conflict("a dsl automation has no component"));
        }
        _ => {}
    }
    if let Some(kind) = body.get("kind").filter(|v| !v.is_null())
        && serde_json::from_value::<AutomationKind>(kind.clone()).ok() != Some(old.kind)
    {
        return Err(kind_conflict(
            "the kind of an automation is fixed at creation",
        ));
    }
    let mut a = old.clone();
    apply(&state, &mut a, body)?;
    if a.kind == AutomationKind::Dsl && a.instructions.is_none() {
        return Err(ApiError::validation(
            "do",
            "is required for a dsl automation",
        ));
    }
    if a.kind == AutomationKind::Dsl {
        crate::dsl::check(&a)?;
    }
    // A save that changes nothing keeps no version: repeating it cannot push out real history.
    let changed = a != old;
    a.updated_at = Utc::now();
    a.updated_by = caller.require_user()?.to_string();
    let renamed = a.slug != old.slug;
    let expect = if renamed {
        Expect::Absent
    } else {
        Expect::Version(version)
    };
    match store(&state, ws, &a, expect).await? {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::Conflict && renamed => {
            return Err(ApiError::already_used(
                "slug",
                format!("automation slug {:?} is already used", a.slug),
            ));
        }
        Err(e) if e.kind() == ErrorKind::Conflict => {
            return Err(changed_meanwhile("while updating"));
        }
        Err(e) => return Err(storage(e)),
    }
    if renamed {
        crate::automation_versions::rename(&state, ws, &old.slug, &a.slug).await;
        delete_doc(&state, ws, &old.slug).await?;
    }
    if changed {
        crate::automation_versions::saved(&state, ws, &a.slug, &old).await;
    }
    let old_slug = renamed.then_some(old.slug.as_str());
    state
        .emit(
            &caller,
            &access.id,
            types::AUTOMATIONS_UPDATED,
            event_payload(&a, old_slug),
        )
        .await;
    Ok(Json(a))
}

/// `DELETE …/automations/{slug}`: `{slug}`. The component blob stays (content-addressed,
/// possibly shared); the runtime drops the automation's triggers on the event.
#[utoipa::path(delete, path = "/v2/workspaces/{workspace_id}/automations/{slug}", tag = "automations",
    params(refract_http::openapi::InWorkspace, ("slug" = String, Path, description = "The automation's slug.")),
    responses((status = 200, description = "The automation and its versions are deleted.", body = crate::openapi::DeletedAutomation)))]
pub async fn remove(
    State(state): State<WorkspacesState>,
    caller: Caller,
    Path((workspace_id, slug)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let access = state
        .authorize(
            &caller,
            &workspace_id,
            (Action::Update, Subject::Automations),
        )
        .await?;
    let (a, _) = load(&state, access.id.as_str(), &slug).await?;
    delete_doc(&state, access.id.as_str(), &a.slug).await?;
    state
        .emit(
            &caller,
            &access.id,
            types::AUTOMATIONS_DELETED,
            event_payload(&a, None),
        )
        .await;
    Ok(Json(json!({ "slug": a.slug })))
}
