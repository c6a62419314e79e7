//! The history and emit endpoints.

use std::collections::HashMap;

use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use refract_core::model::Role;
use refract_core::{Event, EventId, EventOptions, EventType, Source, Target, WorkspaceId};
use refract_http::{ApiError, Caller, Json};
use refract_storage::{FieldFilter, HistoryQuery, SortOrder, TypeFilter};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::{EventsState, MAX_EMIT_BATCH, MAX_EMIT_BODY};

/// Default and largest history page (`spec/http-api.md` §1.3).
const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 500;
/// `page × limit` ceiling on history queries: deeper pages use cursors.
const MAX_OFFSET: u64 = 10_000;
/// Type namespaces only the platform may emit (§7.2).
const RESERVED_PREFIXES: &[&str] = &["gateway", "workspaces", "apps", "apikeys", "runtime", "events"];
const RESERVED_TYPES: &[&str] = &["error", "usage"];

pub fn router(state: EventsState) -> Router {
    Router::new()
        .route("/v2/workspaces/{workspace_id}/events", get(history).post(emit))
        .layer(DefaultBodyLimit::max(MAX_EMIT_BODY))
        .fallback(refract_http::not_found)
        .with_state(state)
}

/// The caller's role in the workspace, or 404 (invisible workspaces do not exist).
async fn member(state: &EventsState, caller: &Caller, workspace: &str) -> Result<(WorkspaceId, Role), ApiError> {
    let user = caller.require_user()?;
    let not_found = || ApiError::not_found(format!("workspace {workspace} not found"));
    let workspace_id = WorkspaceId::new(workspace).map_err(|_| not_found())?;
    let role = refract_storage::role_of(state.store.as_ref(), workspace, user.as_str())
        .await
        .map_err(|e| ApiError::from_kind(e.kind(), e))?
        .ok_or_else(not_found)?;
    Ok((workspace_id, role))
}

async fn history(
    State(state): State<EventsState>,
    caller: Caller,
    Path(workspace): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let (workspace_id, _) = member(&state, &caller, &workspace).await?;
    let query = parse_query(workspace_id, &params)?;
    let events = state.store.query(&query).await.map_err(|e| ApiError::from_kind(e.kind(), e))?;
    Ok(Json(json!({ "result": { "events": events } })))
}

fn parse_query(workspace: WorkspaceId, params: &[(String, String)]) -> Result<HistoryQuery, ApiError> {
    let invalid = |path: &str, reason: String| {
        ApiError::new(StatusCode::BAD_REQUEST, "InvalidQuery", format!("{path}: {reason}"))
            .with_details(json!({ "path": path, "reason": reason }))
    };
    let mut query = HistoryQuery::new(workspace);
    query.limit = DEFAULT_LIMIT;
    let mut fields: HashMap<&str, Vec<&str>> = HashMap::new();
    for (key, value) in params {
        let date = |v: &str| {
            DateTime::parse_from_rfc3339(v).map(|d| d.with_timezone(&Utc)).map_err(|e| invalid(key, e.to_string()))
        };
        let id = |v: &str| EventId::new(v).map_err(|e| invalid(key, e.to_string()));
        match key.as_str() {
            "types" => {
                for t in value.split(',').filter(|t| !t.is_empty()) {
                    query.types.push(TypeFilter::parse(t).map_err(|e| invalid("types", e.to_string()))?);
                }
            }
            "text" => query.text = Some(value.clone()),
            "afterDate" => query.after_date = Some(date(value)?),
            "beforeDate" => query.before_date = Some(date(value)?),
            "beforeId" => query.before_id = Some(id(value)?),
            "afterId" => query.after_id = Some(id(value)?),
            "page" => query.page = value.parse().map_err(|_| invalid("page", "must be a whole number".into()))?,
            "limit" => {
                let limit: u32 = value.parse().map_err(|_| invalid("limit", "must be a whole number".into()))?;
                query.limit = limit.clamp(1, MAX_LIMIT);
            }
            "sort" => {
                query.sort = match value.as_str() {
                    "asc" => SortOrder::Asc,
                    "desc" => SortOrder::Desc,
                    _ => return Err(invalid("sort", "must be asc or desc".into())),
                }
            }
            k if ["payload.", "source.", "target.", "error."].iter().any(|p| k.starts_with(p)) => {
                fields.entry(k.trim_end_matches("[]")).or_default().push(value);
            }
            other => return Err(invalid(other, "unknown query parameter".into())),
        }
    }
    if query.offset() + u64::from(query.limit) > MAX_OFFSET {
        return Err(invalid("page", format!("page × limit must stay within {MAX_OFFSET}; use beforeId")));
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
        query.fields.push(FieldFilter::new(path, value).map_err(|e| invalid(path, e.to_string()))?);
    }
    query.validate().map_err(|e| invalid("query", e.to_string()))?;
    Ok(query)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmitBody {
    events: Vec<EmitEvent>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmitEvent {
    #[serde(rename = "type")]
    event_type: String,
    #[serde(default)]
    payload: Option<Value>,
    #[serde(default)]
    target: Option<Target>,
    #[serde(default)]
    options: Option<EventOptions>,
    /// Ignored: the server sets the source.
    #[serde(default)]
    #[allow(dead_code)]
    source: Option<Value>,
}

async fn emit(
    State(state): State<EventsState>,
    caller: Caller,
    Path(workspace): Path<String>,
    Json(body): Json<EmitBody>,
) -> Result<Json<Vec<Event>>, ApiError> {
    let (workspace_id, role) = member(&state, &caller, &workspace).await?;
    if body.events.is_empty() || body.events.len() > MAX_EMIT_BATCH {
        return Err(ApiError::validation("events", format!("1 to {MAX_EMIT_BATCH} events")));
    }
    // Validate all before publishing any.
    let mut events = Vec::with_capacity(body.events.len());
    for (i, e) in body.events.into_iter().enumerate() {
        let invalid_event = |message: String| {
            ApiError::new(StatusCode::BAD_REQUEST, "InvalidEventError", format!("events[{i}]: {message}"))
        };
        let event_type = EventType::new(e.event_type).map_err(|err| invalid_event(err.to_string()))?;
        let t = event_type.as_str();
        if RESERVED_TYPES.contains(&t) || RESERVED_PREFIXES.iter().any(|p| event_type.is_under(p)) {
            return Err(ApiError::new(StatusCode::FORBIDDEN, "ReservedEventType", format!("events[{i}]: {t} is a system event type")));
        }
        let payload = match e.payload {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(map)) => map,
            Some(_) => return Err(invalid_event("payload must be a JSON object".into())),
        };
        if let Some(target) = &e.target {
            let other_user = target.user_id.as_ref().is_some_and(|u| Some(u) != caller.user_id.as_ref());
            if other_user && role < Role::Editor {
                return Err(ApiError::forbidden(format!("events[{i}]: targeting another user needs the editor role")));
            }
        }
        let mut event = Event::new(event_type, Some(workspace_id.clone()), payload);
        event.source = Source {
            workspace_id: Some(workspace_id.clone()),
            user_id: caller.user_id.clone(),
            session_id: caller.session_id.clone(),
            correlation_id: caller.correlation_id.clone(),
            ..Source::default()
        };
        event.target = e.target;
        event.options = e.options;
        event.seal(&Default::default()).map_err(|err| match err {
            refract_core::ValidationError::TooLarge { .. } => ApiError::from(err),
            other => invalid_event(other.to_string()),
        })?;
        events.push(event);
    }
    for event in &mut events {
        let id = state.broker.publish(event.clone()).await.map_err(|e| ApiError::from_kind(e.kind(), e))?;
        event.id = Some(id);
    }
    Ok(Json(events))
}
