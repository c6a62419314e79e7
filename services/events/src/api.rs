//! The history and emit endpoints.

use std::collections::HashMap;

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use refract_core::model::Role;
use refract_core::permissions::reads::EventReader;
use refract_core::permissions::{Action, Subject};
use refract_core::{Event, EventId, WorkspaceId};
use refract_http::{ApiError, Caller, Json};
use refract_storage::{FieldFilter, HistoryQuery, SortOrder, TypeFilter, WorkspaceAccess};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::config::MAX_WAIT;
use crate::emit::{EmitEvent, Emitter, emit};
use crate::live::socket;
use crate::{EventsState, MAX_EMIT_BODY, readers, runs, search};

/// Default and largest history page (`spec/http-api.md` §1.3).
const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 500;
/// `page × limit` ceiling on history queries: deeper pages use cursors.
const MAX_OFFSET: u64 = 10_000;
/// Largest search body (§7.3) and longest search (§14.2).
const MAX_SEARCH_BODY: usize = 64 * 1024;
const SEARCH_TIMEOUT: Duration = Duration::from_secs(2);
/// Once a long-poll hears of a new event, how long it re-reads history for it: ingestion
/// writes in batches, so a just-published event shows up within about one batch window.
const CATCH_UP: Duration = Duration::from_secs(1);
const CATCH_UP_STEP: Duration = Duration::from_millis(25);

/// The events service's routes with their operations: history and emits, the WebSocket upgrade and search, under
/// `/v2/workspaces/{workspace_id}/…`.
pub fn api() -> OpenApiRouter<EventsState> {
    let search = OpenApiRouter::new()
        .routes(routes!(search))
        .layer(DefaultBodyLimit::max(MAX_SEARCH_BODY));
    OpenApiRouter::new()
        .routes(routes!(history, emit_events))
        .routes(routes!(socket::upgrade))
        .routes(routes!(runs::list))
        .routes(routes!(runs::one))
        .layer(DefaultBodyLimit::max(MAX_EMIT_BODY))
        .merge(search)
}

/// The events service's routes, ready to serve.
pub fn router(state: EventsState) -> Router {
    api()
        .split_for_parts()
        .0
        .fallback(refract_http::not_found)
        .with_state(state)
}

/// The caller's rights in the workspace (`refract_storage::access_of`: built-in and custom
/// roles, roles bound by identity-provider claims, the API key's rules, the workspace's
/// rules), or 401 without any credential and 404 when the workspace is invisible to it.
pub(crate) async fn access(
    state: &EventsState,
    caller: &Caller,
    workspace: &str,
) -> Result<(WorkspaceId, WorkspaceAccess), ApiError> {
    if caller.user_id.is_none() && caller.api_key.is_none() && !caller.superadmin {
        return Err(ApiError::unauthenticated("authentication required"));
    }
    let not_found = || ApiError::not_found(format!("workspace {workspace} not found"));
    let workspace_id = WorkspaceId::new(workspace).map_err(|_| not_found())?;
    let rights = refract_storage::access_of(state.store.as_ref(), workspace, &caller.principal())
        .await
        .map_err(|e| ApiError::from_kind(e.kind(), e))?;
    if !rights.visible() {
        return Err(not_found());
    }
    Ok((workspace_id, rights))
}

/// The caller's standing as a WebSocket reader (user sessions of members only): its role as an
/// emitter and its reader; or 404.
pub(crate) async fn member(
    state: &EventsState,
    caller: &Caller,
    workspace: &str,
) -> Result<(WorkspaceId, Role, EventReader), ApiError> {
    caller.require_user()?;
    let (workspace_id, rights) = access(state, caller, workspace).await?;
    if !rights.grant.is_member() {
        return Err(ApiError::not_found(format!(
            "workspace {workspace} not found"
        )));
    }
    let role = emitter_role(&rights);
    let reader = readers::reader(state, caller, &workspace_id, rights)
        .await
        .map_err(storage)?;
    Ok((workspace_id, role, reader))
}

fn storage(e: refract_storage::StorageError) -> ApiError {
    ApiError::from_kind(e.kind(), e)
}

/// The role an emitter acts with: its built-in role (viewer when it has none), raised to
/// editor when its rules grant `manage events` (targeting other users, sessions, topics).
fn emitter_role(rights: &WorkspaceAccess) -> Role {
    let role = if rights.grant.superadmin {
        Role::Owner
    } else {
        rights.grant.role.unwrap_or(Role::Viewer)
    };
    if role < Role::Editor && rights.allows(Action::Manage, Subject::Events, &json!({})) {
        Role::Editor
    } else {
        role
    }
}

/// `GET …/events`: the workspace's history the caller may read, newest first. Also filters
/// on fields: `payload.*`, `source.*`, `target.*`, `error.*` query parameters match exactly.
#[utoipa::path(get, path = "/v2/workspaces/{workspace_id}/events", tag = "events",
    params(refract_http::openapi::InWorkspace, ("types" = Option<String>, Query, description = "Comma-separated event types; `prefix.*` matches a prefix."),
        ("text" = Option<String>, Query, description = "Full-text search over the events."),
        ("afterDate" = Option<String>, Query, description = "RFC 3339 date: only events after it."),
        ("beforeDate" = Option<String>, Query, description = "RFC 3339 date: only events before it."),
        ("beforeId" = Option<String>, Query, description = "Cursor: only events older than this id."),
        ("afterId" = Option<String>, Query, description = "Cursor: only events newer than this id."),
        ("page" = Option<u32>, Query, description = "Page number (page × limit ≤ 10,000; deeper pages use beforeId)."),
        ("limit" = Option<u32>, Query, description = "Events per page, 1 to 500 (default 50)."),
        ("sort" = Option<String>, Query, description = "`asc` or `desc` (default)."),
        ("wait" = Option<f64>, Query, description = "With afterId: long-poll up to this many seconds (at most 15) for a new event.")),
    responses((status = 200, description = "`{result: {events: [Event]}}`.", body = crate::openapi::EventPage)))]
async fn history(
    State(state): State<EventsState>,
    caller: Caller,
    Path(workspace): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let (workspace_id, rights) = access(&state, &caller, &workspace).await?;
    let mut wait = None;
    let mut rest = Vec::with_capacity(params.len());
    for (key, value) in params {
        if key == "wait" {
            let secs: f64 = value
                .parse()
                .ok()
                .filter(|s: &f64| s.is_finite() && *s >= 0.0)
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "InvalidQuery",
                        "wait: seconds, at most 15",
                    )
                    .with_details(json!({ "path": "wait", "reason": "seconds, at most 15" }))
                })?;
            // A finite wait past what a Duration holds (1.8e19 s) panics in from_secs_f64:
            // anything over the cap is the cap.
            wait = Some(Duration::try_from_secs_f64(secs).map_or(MAX_WAIT, |d| d.min(MAX_WAIT)));
        } else {
            rest.push((key, value));
        }
    }
    let query = parse_query(workspace_id.clone(), &rest)?;
    let reader = readers::reader(&state, &caller, &workspace_id, rights)
        .await
        .map_err(storage)?;
    let events = match wait {
        Some(wait) if query.after_id.is_some() => long_poll(&state, &reader, &query, wait).await?,
        _ => {
            readers::readable_page(state.store.as_ref(), &reader, &query, false)
                .await
                .map_err(storage)?
                .0
        }
    };
    Ok(Json(json!({ "result": { "events": events } })))
}

/// Long-polling (§7.1 `wait`): answers at once when history already has matching events
/// after the cursor the reader may read, else when one is stored before `wait` ends (then
/// `[]`). Woken by the live hub when the workspace gets an event, it re-reads history while
/// ingestion catches up.
async fn long_poll(
    state: &EventsState,
    reader: &EventReader,
    query: &HistoryQuery,
    wait: Duration,
) -> Result<Vec<Event>, ApiError> {
    let page = || async {
        readers::readable_page(state.store.as_ref(), reader, query, false)
            .await
            .map(|(events, _)| events)
            .map_err(storage)
    };
    let deadline = tokio::time::Instant::now() + wait;
    let mut news = state.hub.news();
    let events = page().await?;
    if !events.is_empty() {
        return Ok(events);
    }
    loop {
        match tokio::time::timeout_at(deadline, news.recv()).await {
            Err(_) => return Ok(Vec::new()),
            Ok(Ok(ws)) if ws != query.workspace => continue,
            Ok(_) => {}
        }
        let catch_up = (tokio::time::Instant::now() + CATCH_UP).min(deadline);
        loop {
            let events = page().await?;
            if !events.is_empty() {
                return Ok(events);
            }
            if tokio::time::Instant::now() >= catch_up {
                break;
            }
            tokio::time::sleep(CATCH_UP_STEP).await;
        }
    }
}

fn parse_query(
    workspace: WorkspaceId,
    params: &[(String, String)],
) -> Result<HistoryQuery, ApiError> {
    let invalid = |path: &str, reason: String| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidQuery",
            format!("{path}: {reason}"),
        )
        .with_details(json!({ "path": path, "reason": reason }))
    };
    let mut query = HistoryQuery::new(workspace);
    query.limit = DEFAULT_LIMIT;
    let mut fields: HashMap<&str, Vec<&str>> = HashMap::new();
    for (key, value) in params {
        let date = |v: &str| {
            DateTime::parse_from_rfc3339(v)
                .map(|d| d.with_timezone(&Utc))
                .map_err(|e| invalid(key, e.to_string()))
        };
        let id = |v: &str| EventId::new(v).map_err(|e| invalid(key, e.to_string()));
        match key.as_str() {
            "types" => {
                for t in value.split(',').filter(|t| !t.is_empty()) {
                    query
                        .types
                        .push(TypeFilter::parse(t).map_err(|e| invalid("types", e.to_string()))?);
                }
            }
            "text" => query.text = Some(value.clone()),
            "afterDate" => query.after_date = Some(date(value)?),
            "beforeDate" => query.before_date = Some(date(value)?),
            "beforeId" => query.before_id = Some(id(value)?),
            "afterId" => query.after_id = Some(id(value)?),
            "page" => {
                query.page = value
                    .parse()
                    .map_err(|_| invalid("page", "must be a whole number".into()))?
            }
            "limit" => {
                let limit: u32 = value
                    .parse()
                    .map_err(|_| invalid("limit", "must be a whole number".into()))?;
                query.limit = limit.clamp(1, MAX_LIMIT);
            }
            "sort" => {
                query.sort = match value.as_str() {
                    "asc" => SortOrder::Asc,
                    "desc" => SortOrder::Desc,
                    _ => return Err(invalid("sort", "must be asc or desc".into())),
                }
            }
            k if ["payload.", "source.", "target.", "error."]
                .iter()
                .any(|p| k.starts_with(p)) =>
            {
                fields
                    .entry(k.trim_end_matches("[]"))
                    .or_default()
                    .push(value);
            }
            other => return Err(invalid(other, "unknown query parameter".into())),
        }
    }
    if query.offset() + u64::from(query.limit) > MAX_OFFSET {
        return Err(invalid(
            "page",
            format!("page × limit must stay within {MAX_OFFSET}; use beforeId"),
        ));
    }
    for (path, values) in fields {
        if values.len() > 1 {
            return Err(invalid(path, "OR lists are not supported yet".into()));
        }
        // A query value that is a JSON number or boolean matches that JSON value.
        let value = match serde_json::from_str::<Value>(values[0]) {
            Ok(v @ (Value::Number(_) | Value::Bool(_))) => v,
            _ => Value::String(values[0].to_string()),
        };
        query
            .fields
            .push(FieldFilter::new(path, value).map_err(|e| invalid(path, e.to_string()))?);
    }
    query
        .validate()
        .map_err(|e| invalid("query", e.to_string()))?;
    Ok(query)
}

// The body's schema caps `events` at 100.
const _: () = assert!(crate::MAX_EMIT_BATCH == 100);

/// The body of `POST …/events`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct EmitBody {
    /// The events, published in order, all or none.
    // max_items is `crate::MAX_EMIT_BATCH`.
    #[schema(min_items = 1, max_items = 100)]
    events: Vec<EmitEvent>,
}

/// `POST …/events`: emits custom events (members; others by a rule allowing it). Platform
/// event types are reserved.
#[utoipa::path(post, path = "/v2/workspaces/{workspace_id}/events", tag = "events",
    params(refract_http::openapi::InWorkspace), request_body = EmitBody,
    responses((status = 200, description = "The events as stored, with their ids and sources.", body = [refract_core::Event])))]
async fn emit_events(
    State(state): State<EventsState>,
    caller: Caller,
    Path(workspace): Path<String>,
    Json(body): Json<EmitBody>,
) -> Result<Json<Vec<Event>>, ApiError> {
    let (workspace_id, rights) = access(&state, &caller, &workspace).await?;
    // Members (any role) create custom events; others need a rule allowing it (§9.1).
    if !rights.grant.is_member() {
        for (i, e) in body.events.iter().enumerate() {
            let resource =
                json!({ "type": e.event_type, "payload": e.payload, "target": e.target });
            if !rights.allows(Action::Create, Subject::Events, &resource) {
                return Err(ApiError::forbidden(format!(
                    "events[{i}]: you may not create {} events in this workspace",
                    e.event_type
                )));
            }
        }
    }
    let who = Emitter {
        caller: &caller,
        workspace: &workspace_id,
        role: emitter_role(&rights),
        socket_id: None,
    };
    Ok(Json(emit(&state, &who, body.events).await?))
}

/// `POST …/search`: an Elasticsearch-style query over the history the caller may read.
#[utoipa::path(post, path = "/v2/workspaces/{workspace_id}/search", tag = "events",
    params(refract_http::openapi::InWorkspace),
    request_body(description = "`{scope?, where?, sort?, fields?, page?, limit?, trackTotal?}`: a condition tree over the history's indexed fields (never a raw search-engine query).", content((crate::openapi::SearchRequest = "application/json"))),
    responses((status = 200, description = "`{size, documents}`: how many events match and the page of them (projected on `fields`).", body = crate::openapi::SearchAnswer)))]
async fn search(
    State(state): State<EventsState>,
    caller: Caller,
    Path(workspace): Path<String>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, ApiError> {
    let (workspace_id, rights) = access(&state, &caller, &workspace).await?;
    let body = search::parse(body)?;
    let (query, track_total) = search::to_query(workspace_id.clone(), &body)?;
    let run = async {
        let reader = readers::reader(&state, &caller, &workspace_id, rights).await?;
        readers::readable_page(state.store.as_ref(), &reader, &query, true).await
    };
    let (events, total) = tokio::time::timeout(SEARCH_TIMEOUT, run)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "TimeoutError",
                "the search took longer than 2 s",
            )
        })?
        .map_err(storage)?;
    let documents = search::project(events, search::fields(&body));
    Ok(Json(
        json!({ "size": search::size(total, track_total), "documents": documents }),
    ))
}
