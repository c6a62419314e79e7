//! A workspace's limits and usage: `GET …/quotas` (its effective sandbox policy, egress
//! allow-list, throttles and context caps, with today's usage), `PUT …/quotas` (a superadmin's
//! change, live on every runtime instance), `PUT …/quotas/egress` (its owner narrows, never
//! widens, the allow-list) and `GET …/usage?from&to` (runs, run time, emits, fetches per day).

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::Uri;
use chrono::{Duration, NaiveDate, Utc};
use refract_core::WorkspaceId;
use refract_core::permissions::{Action, Subject};
use refract_core::platform::types;
use refract_http::{ApiError, Caller, Json};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{rights, workspace};
use crate::bus::run_event;
use crate::quotas;
use crate::run::run_context;
use crate::sandbox::{LiveQuota, PolicyPatch};
use crate::state::RuntimeState;

/// Largest body of a quota change.
const MAX_BODY: usize = 64 << 10;
/// Longest usage period, in days.
const MAX_DAYS: i64 = 366;

fn storage(e: refract_storage::StorageError) -> ApiError {
    ApiError::from_kind(e.kind(), e)
}

fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    if body.len() > MAX_BODY {
        return Err(ApiError::too_large(MAX_BODY));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::validation("body", e.to_string()))
}

/// The workspace's limits and today's usage.
async fn current(state: &RuntimeState, ws: &WorkspaceId) -> Result<Value, ApiError> {
    let executor = state.executor();
    let resolved = executor.sandboxes().of(ws.as_str());
    let changed = quotas::read(state.inner.store.as_ref(), ws.as_str())
        .await
        .map_err(storage)?
        .is_some();
    let budgets = executor.throttles().budgets(ws).await;
    let document = executor
        .configs()
        .document(ws.as_str())
        .await
        .map_err(storage)?;
    let config = crate::workspace_config::config_value(&document);
    let limits = quotas::Limits {
        event_share: state.config().event_share(),
        event_runs: state.config().max_concurrent_events,
        retention_days: refract_core::retention::configured_days(config),
    };
    let mut view = quotas::view(&resolved, changed, budgets, &limits);
    let today = Utc::now().date_naive();
    view["usage"] = executor
        .usage()
        .between(ws, today, today)
        .await
        .map_err(storage)?["total"]
        .clone();
    view["workspaceId"] = json!(ws);
    Ok(view)
}

/// `GET …/quotas`: every member and API key that sees the workspace.
#[utoipa::path(get, path = "/v2/workspaces/{workspace_id}/quotas", tag = "quotas",
    params(refract_http::openapi::InWorkspace),
    responses((status = 200, description = "The workspace's effective limits and today's usage.", body = super::openapi::Quotas)))]
pub(super) async fn get(
    State(state): State<RuntimeState>,
    Path(workspace_id): Path<String>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let ws = workspace(&workspace_id)?;
    rights(&state, &ws, &caller).await?;
    Ok(Json(current(&state, &ws).await?))
}

/// Applies `quota` to `ws` here and stores it; every other instance reads it again on
/// `runtime.quotas.updated`.
async fn apply(
    state: &RuntimeState,
    ws: &WorkspaceId,
    caller: &Caller,
    quota: Option<LiveQuota>,
) -> Result<(), ApiError> {
    let sandboxes = state.executor().sandboxes();
    if let Some(q) = &quota {
        sandboxes
            .resolve(ws.as_str(), q)
            .map_err(|e| ApiError::validation("body", e))?;
    }
    let by = caller
        .user_id
        .as_ref()
        .map_or_else(|| "api-key".to_owned(), ToString::to_string);
    quotas::write(state.inner.store.as_ref(), ws.as_str(), quota.as_ref(), &by)
        .await
        .map_err(storage)?;
    sandboxes
        .set_live(ws.as_str(), quota.as_ref())
        .map_err(|e| ApiError::validation("body", e))?;
    let context = run_context(
        ws,
        "quotas",
        caller.correlation_id.clone(),
        caller.user_id.clone(),
        caller.session_id.clone(),
        0,
    );
    if let Some(mut event) = run_event(
        &context,
        types::QUOTAS_UPDATED,
        json!({"workspaceId": ws}),
        0,
    ) {
        event.source.automation_slug = None;
        event.source.automation_depth = None;
        state.executor().reports().publish_event(event).await;
    }
    Ok(())
}

/// `PUT …/quotas`: superadmins only. The body sets the sandbox limits over what the operator
/// configured (`{allowHosts?, maxMemoryMiB?, maxTimeoutMs?, cpuMs?, maxOutputKiB?,
/// maxStreamKiB?, maxEmits?, maxFetches?, maxWaits?, maxCallDepth?}`; `{}` goes back to the configured
/// policy). The owner's narrower allow-list is kept.
#[utoipa::path(put, path = "/v2/workspaces/{workspace_id}/quotas", tag = "quotas",
    params(refract_http::openapi::InWorkspace), request_body = PolicyPatch,
    responses((status = 200, description = "The limits now in force.", body = super::openapi::Quotas)))]
pub(super) async fn put(
    State(state): State<RuntimeState>,
    Path(workspace_id): Path<String>,
    caller: Caller,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let ws = workspace(&workspace_id)?;
    rights(&state, &ws, &caller).await?;
    if !caller.superadmin {
        return Err(ApiError::forbidden(
            "only a platform superadmin changes a workspace's limits",
        ));
    }
    let patch: PolicyPatch = parse(&body)?;
    let narrowed = quotas::read(state.inner.store.as_ref(), ws.as_str())
        .await
        .map_err(storage)?
        .and_then(|q| q.narrowed_hosts);
    let quota = (patch != PolicyPatch::default() || narrowed.is_some()).then_some(LiveQuota {
        patch,
        narrowed_hosts: narrowed,
    });
    apply(&state, &ws, &caller, quota).await?;
    Ok(Json(current(&state, &ws).await?))
}

/// The body of `PUT …/quotas/egress`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Egress {
    /// Hosts the workspace's runs may reach, within the platform's list; `null`: the whole
    /// platform list again.
    allow_hosts: Option<Vec<String>>,
}

/// `PUT …/quotas/egress`: owners (security managers). A host must be on this list and on the
/// platform's: the list narrows, it never widens.
#[utoipa::path(put, path = "/v2/workspaces/{workspace_id}/quotas/egress", tag = "quotas",
    params(refract_http::openapi::InWorkspace), request_body = Egress,
    responses((status = 200, description = "The limits now in force.", body = super::openapi::Quotas)))]
pub(super) async fn put_egress(
    State(state): State<RuntimeState>,
    Path(workspace_id): Path<String>,
    caller: Caller,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let ws = workspace(&workspace_id)?;
    let access = rights(&state, &ws, &caller).await?;
    if !access.allows(Action::ManageSecurity, Subject::Workspaces, &json!({})) {
        return Err(ApiError::forbidden(
            "narrowing the egress allow-list needs the owner role",
        ));
    }
    let egress: Egress = parse(&body)?;
    if egress.allow_hosts.as_ref().is_some_and(|h| h.len() > 200) {
        return Err(ApiError::validation("allowHosts", "at most 200 hosts"));
    }
    let patch = quotas::read(state.inner.store.as_ref(), ws.as_str())
        .await
        .map_err(storage)?
        .map(|q| q.patch)
        .unwrap_or_default();
    let quota =
        (patch != PolicyPatch::default() || egress.allow_hosts.is_some()).then_some(LiveQuota {
            patch,
            narrowed_hosts: egress.allow_hosts,
        });
    apply(&state, &ws, &caller, quota).await?;
    Ok(Json(current(&state, &ws).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct Period {
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
}

/// `GET …/usage?from=YYYY-MM-DD&to=YYYY-MM-DD` (UTC days, default the last 30): those who may
/// read the workspace's usage.
#[utoipa::path(get, path = "/v2/workspaces/{workspace_id}/usage", tag = "quotas",
    params(refract_http::openapi::InWorkspace, Period),
    responses((status = 200, description = "Runs, run time, emits and fetches per UTC day, with the total.", body = super::openapi::Usage)))]
pub(super) async fn usage(
    State(state): State<RuntimeState>,
    Path(workspace_id): Path<String>,
    caller: Caller,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let ws = workspace(&workspace_id)?;
    let access = rights(&state, &ws, &caller).await?;
    if !access.allows(Action::GetUsage, Subject::Workspaces, &json!({})) {
        return Err(ApiError::forbidden(
            "reading usage needs the owner or editor role",
        ));
    }
    let Query(period) = Query::<Period>::try_from_uri(&uri)
        .map_err(|e| ApiError::validation("query", e.body_text()))?;
    let to = period.to.unwrap_or_else(|| Utc::now().date_naive());
    let from = period.from.unwrap_or(to - Duration::days(29));
    if from > to || (to - from).num_days() >= MAX_DAYS {
        return Err(ApiError::validation(
            "from",
            format!("from must be on or before to, at most {MAX_DAYS} days apart"),
        ));
    }
    let mut body = state
        .executor()
        .usage()
        .between(&ws, from, to)
        .await
        .map_err(storage)?;
    body["from"] = json!(from);
    body["to"] = json!(to);
    Ok(Json(body))
}
