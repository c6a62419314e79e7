//! Runs as their workspace reads them (`GET /v2/workspaces/{id}/runs`, `…/runs/{runId}`): a
//! view over the history's `runtime.automations.executed` records, which carry each run's
//! status, trigger, timings, input and output previews, error and log (secrets redacted by the
//! runtime). Read through the same reader as the history, so who may read a run is who may read
//! its record.

use axum::extract::{Path, Query, State};
use axum::http::Uri;
use refract_core::Event;
use refract_core::platform::types;
use refract_http::{ApiError, Caller, Json};
use refract_storage::{FieldFilter, HistoryQuery, TypeFilter};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::api::access;
use crate::{EventsState, readers};

/// Default and largest page of runs.
const DEFAULT_LIMIT: u32 = 20;
const MAX_LIMIT: u32 = 200;

/// The filters of a run list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RunFilters {
    /// Only the runs of this automation (slug).
    automation: Option<String>,
    /// `success` or `error`.
    status: Option<String>,
    /// Runs recorded before this one (its `recordId`, the cursor of the next page).
    before_id: Option<String>,
    /// Runs recorded after this one (for following new runs).
    after_id: Option<String>,
    limit: Option<u32>,
}

fn invalid(path: &str, reason: impl std::fmt::Display) -> ApiError {
    ApiError::validation(path, reason.to_string())
}

/// The run records `query` selects that the caller may read.
async fn records(
    state: &EventsState,
    caller: &Caller,
    workspace: &str,
    fields: Vec<(&str, Value)>,
    tune: impl FnOnce(&mut HistoryQuery) -> Result<(), ApiError>,
) -> Result<Vec<Event>, ApiError> {
    let (workspace_id, rights) = access(state, caller, workspace).await?;
    let mut query = HistoryQuery::new(workspace_id.clone());
    query
        .types
        .push(TypeFilter::parse(types::AUTOMATIONS_EXECUTED).map_err(|e| invalid("types", e))?);
    for (path, value) in fields {
        query
            .fields
            .push(FieldFilter::new(path, value).map_err(|e| invalid(path, e))?);
    }
    tune(&mut query)?;
    query.validate().map_err(|e| invalid("query", e))?;
    let reader = readers::reader(state, caller, &workspace_id, rights)
        .await
        .map_err(|e| ApiError::from_kind(e.kind(), e))?;
    let (events, _) = readers::readable_page(state.store.as_ref(), &reader, &query, false)
        .await
        .map_err(|e| ApiError::from_kind(e.kind(), e))?;
    Ok(events)
}

/// `GET …/runs`: the newest runs first, `{result: {runs: [summary]}}`; `beforeId` pages.
#[utoipa::path(get, path = "/v2/workspaces/{workspace_id}/runs", tag = "runs",
    params(refract_http::openapi::InWorkspace, RunFilters),
    responses((status = 200, description = "`{result: {runs}}`: the runs, newest first (each with its `recordId`, the cursor of the next page).", body = crate::openapi::RunPage)))]
pub(crate) async fn list(
    State(state): State<EventsState>,
    caller: Caller,
    Path(workspace): Path<String>,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let Query(filters) = Query::<RunFilters>::try_from_uri(&uri)
        .map_err(|e| ApiError::validation("query", e.body_text()))?;
    let mut fields = Vec::new();
    if let Some(slug) = &filters.automation {
        fields.push(("payload.slug", json!(slug)));
    }
    match filters.status.as_deref() {
        None => {}
        Some(s @ ("success" | "error")) => fields.push(("payload.status", json!(s))),
        Some(_) => return Err(invalid("status", "success or error")),
    }
    let events = records(&state, &caller, &workspace, fields, |q| {
        q.limit = filters.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
        let id = |v: &str, path| refract_core::EventId::new(v).map_err(|e| invalid(path, e));
        if let Some(before) = &filters.before_id {
            q.before_id = Some(id(before, "beforeId")?);
        }
        if let Some(after) = &filters.after_id {
            q.after_id = Some(id(after, "afterId")?);
            q.sort = refract_storage::SortOrder::Asc;
        }
        Ok(())
    })
    .await?;
    let runs: Vec<Value> = events.iter().map(|e| run(e, false)).collect();
    Ok(Json(json!({ "result": { "runs": runs } })))
}

/// `GET …/runs/{runId}`: one run whole (input, output, error, log).
#[utoipa::path(get, path = "/v2/workspaces/{workspace_id}/runs/{run_id}", tag = "runs",
    params(refract_http::openapi::InWorkspace, ("run_id" = String, Path, description = "The run's id.")),
    responses((status = 200, description = "The run with its input, output and log.", body = crate::openapi::Run)))]
pub(crate) async fn one(
    State(state): State<EventsState>,
    caller: Caller,
    Path((workspace, run_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    if run_id.is_empty() || run_id.len() > 256 {
        return Err(invalid("runId", "1 to 256 characters"));
    }
    let events = records(
        &state,
        &caller,
        &workspace,
        vec![("payload.runId", json!(run_id))],
        |q| {
            q.limit = 1;
            Ok(())
        },
    )
    .await?;
    let event = events
        .first()
        .ok_or_else(|| ApiError::not_found(format!("no run {run_id}")))?;
    Ok(Json(run(event, true)))
}

/// A run from its record: the summary, and with `whole` its input, output and log.
pub(crate) fn run(event: &Event, whole: bool) -> Value {
    let p = &event.payload;
    let text = |k: &str| p.get(k).cloned().unwrap_or(Value::Null);
    let mut run = Map::new();
    run.insert("runId".into(), text("runId"));
    run.insert("recordId".into(), json!(event.id));
    run.insert("automation".into(), text("slug"));
    run.insert("kind".into(), text("kind"));
    run.insert("status".into(), text("status"));
    run.insert("trigger".into(), text("trigger"));
    run.insert("startedAt".into(), text("startedAt"));
    run.insert("duration".into(), text("duration"));
    run.insert("throttled".into(), text("throttled"));
    run.insert(
        "correlationId".into(),
        json!(event.source.correlation_id.as_str()),
    );
    if let Some(error) = p.get("error") {
        run.insert("error".into(), error.clone());
    }
    let logs = p.get("logs").and_then(Value::as_array);
    run.insert("logLines".into(), json!(logs.map_or(0, Vec::len)));
    if whole {
        run.insert("input".into(), text("payload"));
        run.insert("output".into(), text("output"));
        run.insert(
            "logs".into(),
            logs.map_or(Value::Array(Vec::new()), |l| Value::Array(l.clone())),
        );
        run.insert(
            "logsDropped".into(),
            p.get("logsDropped").cloned().unwrap_or(json!(0)),
        );
    }
    Value::Object(run)
}
