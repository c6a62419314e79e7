//! `POST /v2/workspaces/{id}/search` (`spec/http-api.md` §7.3): a JSON condition tree that
//! maps onto the history's indexed query ([`HistoryQuery`]); never a raw database query.
//!
//! Supported now: `and` lists (nested), `text`, and the leaves the history indexes —
//! `type` `eq`/`in`/`prefix` (a prefix ending with `.`), `createdAt` `gt`/`gte`/`lt`/`lte`,
//! `id` `gt`/`lt`, `source.correlationId` `eq`, and `eq` on `payload.*`, `source.*`,
//! `target.*`, `error.*`, `options.*` paths. `or`, `not`, the other operators and `aggs` are
//! refused with 400 `InvalidQuery` (`reason: unsupported`) rather than answered wrongly.

use chrono::{DateTime, Duration, Utc};
use refract_core::{CorrelationId, Event, EventId, WorkspaceId};
use refract_http::ApiError;
use refract_storage::{FieldFilter, HistoryQuery, SortOrder, TypeFilter};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// Default and largest search page (§1.3).
const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 500;
/// `page × limit` ceiling, and the cap of `size` unless `trackTotal`.
const MAX_WINDOW: u64 = 10_000;
/// Condition tree limits (§7.3).
const MAX_DEPTH: usize = 5;
const MAX_LEAVES: usize = 50;
const MAX_LIST: usize = 100;
const MAX_FIELDS: usize = 50;

/// Keys of search-engine bodies that are refused outright.
const RAW_KEYS: &[&str] = &["query", "runtime_mappings", "track_total_hits"];

/// A `POST …/search` body (§7.3) as typed by [`parse`]: scope, `where` condition tree,
/// sort, projection and paging; [`to_query`] checks it against the limits.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SearchBody {
    #[serde(default)]
    scope: Option<String>,
    #[serde(default, rename = "where")]
    condition: Option<Value>,
    #[serde(default)]
    sort: Option<Vec<SortKey>>,
    #[serde(default)]
    fields: Option<Vec<String>>,
    #[serde(default)]
    page: Option<u32>,
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    track_total: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SortKey {
    field: String,
    #[serde(default)]
    order: Option<String>,
}

/// A 400 `InvalidQuery` at `path`.
pub fn invalid(path: &str, reason: &str) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::BAD_REQUEST,
        "InvalidQuery",
        format!("{path}: {reason}"),
    )
    .with_details(json!({ "path": path, "reason": reason }))
}

/// Checks the raw body before it is typed: search-engine DSL and aggregations are named
/// as such instead of "unknown field".
pub fn parse(body: Value) -> Result<SearchBody, ApiError> {
    let Some(map) = body.as_object() else {
        return Err(invalid("body", "a JSON object is expected"));
    };
    if let Some(key) = RAW_KEYS.iter().find(|k| map.contains_key(**k)) {
        return Err(invalid(key, "use-where"));
    }
    if map.contains_key("aggs") {
        return Err(invalid("aggs", "unsupported"));
    }
    serde_json::from_value(body).map_err(|e| invalid("body", &e.to_string()))
}

/// The history query of `body` in `workspace`, and the projection of `fields`.
pub fn to_query(
    workspace: WorkspaceId,
    body: &SearchBody,
) -> Result<(HistoryQuery, bool), ApiError> {
    if body.scope.as_deref().is_some_and(|s| s != "events") {
        return Err(invalid("scope", "only events can be searched"));
    }
    let mut q = HistoryQuery::new(workspace);
    q.limit = body.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    q.page = body.page.unwrap_or(0);
    if q.offset() + u64::from(q.limit) > MAX_WINDOW {
        return Err(invalid(
            "page",
            "page × limit must stay within 10000; narrow by createdAt or id",
        ));
    }
    for (i, key) in body.sort.iter().flatten().enumerate() {
        if key.field != "createdAt" && key.field != "id" {
            return Err(invalid(&format!("sort[{i}].field"), "unsupported"));
        }
        q.sort = match key.order.as_deref() {
            None | Some("desc") => SortOrder::Desc,
            Some("asc") => SortOrder::Asc,
            Some(_) => return Err(invalid(&format!("sort[{i}].order"), "asc or desc")),
        };
    }
    if body.fields.as_ref().is_some_and(|f| f.len() > MAX_FIELDS) {
        return Err(invalid("fields", "at most 50 paths"));
    }
    let mut leaves = 0;
    if let Some(condition) = &body.condition {
        apply(&mut q, condition, "where", 1, &mut leaves)?;
    }
    q.validate().map_err(|e| invalid("where", &e.to_string()))?;
    Ok((q, body.track_total))
}

fn apply(
    q: &mut HistoryQuery,
    c: &Value,
    path: &str,
    depth: usize,
    leaves: &mut usize,
) -> Result<(), ApiError> {
    if depth > MAX_DEPTH {
        return Err(invalid(path, "nesting deeper than 5"));
    }
    let Some(map) = c.as_object() else {
        return Err(invalid(path, "a condition is an object"));
    };
    if let Some(items) = map.get("and") {
        let Some(items) = items.as_array().filter(|a| !a.is_empty() && a.len() <= 20) else {
            return Err(invalid(path, "`and` takes 1 to 20 conditions"));
        };
        for (i, item) in items.iter().enumerate() {
            apply(q, item, &format!("{path}.and[{i}]"), depth + 1, leaves)?;
        }
        return Ok(());
    }
    if map.contains_key("or") || map.contains_key("not") {
        return Err(invalid(path, "unsupported"));
    }
    *leaves += 1;
    if *leaves > MAX_LEAVES {
        return Err(invalid(path, "more than 50 conditions"));
    }
    if let Some(text) = map.get("text") {
        let Some(text) = text.as_str().filter(|t| t.len() <= 1024) else {
            return Err(invalid(path, "text is a string"));
        };
        q.text = Some(match q.text.take() {
            Some(prev) => format!("{prev} {text}"),
            None => text.to_string(),
        });
        return Ok(());
    }
    leaf(q, map, path)
}

fn leaf(q: &mut HistoryQuery, map: &Map<String, Value>, path: &str) -> Result<(), ApiError> {
    let field = map
        .get("field")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(path, "a leaf has field, op and value"))?;
    let op = map
        .get("op")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(path, "a leaf has field, op and value"))?;
    let value = map
        .get("value")
        .ok_or_else(|| invalid(path, "a leaf has field, op and value"))?;
    if value.as_str().is_some_and(|s| s.len() > 1024) {
        return Err(invalid(path, "strings are at most 1024 characters"));
    }
    let unsupported = || invalid(path, "unsupported");
    match (field, op) {
        ("type", "eq") => q.types.push(type_filter(value, path, false)?),
        ("type", "prefix") => q.types.push(type_filter(value, path, true)?),
        ("type", "in") => {
            let items = value
                .as_array()
                .filter(|a| !a.is_empty() && a.len() <= MAX_LIST)
                .ok_or_else(|| invalid(path, "`in` takes 1 to 100 values"))?;
            for item in items {
                q.types.push(type_filter(item, path, false)?);
            }
        }
        ("createdAt", "gt" | "gte" | "lt" | "lte") => {
            let at = date(value).ok_or_else(|| invalid(path, "an ISO date or milliseconds"))?;
            // Stored times have millisecond precision: an inclusive bound is one ms wider.
            match op {
                "gt" => q.after_date = Some(at),
                "gte" => q.after_date = Some(at - Duration::milliseconds(1)),
                "lt" => q.before_date = Some(at),
                _ => q.before_date = Some(at + Duration::milliseconds(1)),
            }
        }
        ("id", "gt" | "lt") => {
            let id = value
                .as_str()
                .and_then(|v| EventId::new(v).ok())
                .ok_or_else(|| invalid(path, "an event id"))?;
            if op == "gt" {
                q.after_id = Some(id);
            } else {
                q.before_id = Some(id);
            }
        }
        ("source.correlationId", "eq") => {
            let id = value
                .as_str()
                .and_then(|v| CorrelationId::new(v).ok())
                .ok_or_else(|| invalid(path, "a correlation id"))?;
            q.correlation_id = Some(id);
        }
        (_, "eq") if !value.is_array() && !value.is_object() => {
            q.fields.push(
                FieldFilter::new(field, value.clone())
                    .map_err(|e| invalid(path, &e.to_string()))?,
            );
        }
        _ => return Err(unsupported()),
    }
    Ok(())
}

fn type_filter(value: &Value, path: &str, prefix: bool) -> Result<TypeFilter, ApiError> {
    let t = value
        .as_str()
        .ok_or_else(|| invalid(path, "a type is a string"))?;
    let raw = if prefix {
        let Some(base) = t.strip_suffix('.') else {
            return Err(invalid(path, "a type prefix ends with `.`"));
        };
        format!("{base}.*")
    } else {
        t.to_string()
    };
    TypeFilter::parse(&raw).map_err(|e| invalid(path, &e.to_string()))
}

fn date(v: &Value) -> Option<DateTime<Utc>> {
    match v {
        Value::String(s) => DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|d| d.with_timezone(&Utc)),
        Value::Number(n) => DateTime::from_timestamp_millis(n.as_i64()?),
        _ => None,
    }
}

/// `events` cut down to the dotted `fields` (all of each event without a projection).
pub fn project(events: Vec<Event>, fields: Option<&[String]>) -> Vec<Value> {
    events
        .into_iter()
        .map(|e| {
            let doc = serde_json::to_value(&e).unwrap_or(Value::Null);
            match fields {
                None => doc,
                Some(fields) => {
                    let mut out = Value::Object(Map::new());
                    for f in fields {
                        let pointer = format!("/{}", f.replace('.', "/"));
                        if let Some(v) = doc.pointer(&pointer) {
                            insert_path(&mut out, f, v.clone());
                        }
                    }
                    out
                }
            }
        })
        .collect()
}

fn insert_path(out: &mut Value, path: &str, v: Value) {
    let mut at = out;
    let segments: Vec<&str> = path.split('.').collect();
    for (i, seg) in segments.iter().enumerate() {
        let Some(map) = at.as_object_mut() else {
            return;
        };
        if i + 1 == segments.len() {
            map.insert((*seg).to_string(), v);
            return;
        }
        at = map
            .entry((*seg).to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

/// The fields projection of a body.
pub fn fields(body: &SearchBody) -> Option<&[String]> {
    body.fields.as_deref()
}

/// `size`: the total, capped unless `trackTotal`.
pub fn size(total: u64, track_total: bool) -> u64 {
    if track_total {
        total
    } else {
        total.min(MAX_WINDOW)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws() -> WorkspaceId {
        WorkspaceId::new("w").expect("ws")
    }

    #[test]
    fn conditions_map_onto_the_indexed_query() {
        let body = parse(json!({
            "where": {"and": [
                {"field": "type", "op": "in", "value": ["orders.created", "orders.paid"]},
                {"field": "payload.total", "op": "eq", "value": 10},
                {"text": "urgent"},
                {"field": "createdAt", "op": "gte", "value": "2026-01-01T00:00:00Z"}
            ]},
            "sort": [{"field": "createdAt", "order": "asc"}],
            "limit": 900
        }))
        .expect("body");
        let (q, _) = to_query(ws(), &body).expect("query");
        assert_eq!(q.types.len(), 2);
        assert_eq!(q.fields.len(), 1);
        assert_eq!(q.text.as_deref(), Some("urgent"));
        assert_eq!((q.sort, q.limit), (SortOrder::Asc, 500));
        assert!(q.after_date.is_some());
    }

    #[test]
    fn raw_engine_queries_and_unsupported_forms_are_refused() {
        let reason = |v: Value| match parse(v.clone()).and_then(|b| to_query(ws(), &b).map(|_| ()))
        {
            Err(e) => e
                .details
                .and_then(|d| d["reason"].as_str().map(str::to_string)),
            Ok(()) => None,
        };
        assert_eq!(
            reason(json!({"query": {"match_all": {}}})).as_deref(),
            Some("use-where")
        );
        assert_eq!(
            reason(json!({"where": {"or": [{"text": "a"}]}})).as_deref(),
            Some("unsupported")
        );
        assert_eq!(
            reason(json!({"where": {"field": "payload.n", "op": "gte", "value": 1}})).as_deref(),
            Some("unsupported")
        );
        assert!(
            reason(json!({"where": {"field": "payload.a b", "op": "eq", "value": 1}})).is_some()
        );
        assert!(reason(json!({"page": 100, "limit": 500})).is_some());
    }

    #[test]
    fn projections_keep_only_the_asked_paths() {
        let mut e = Event::new(
            refract_core::EventType::new("t").expect("t"),
            Some(ws()),
            Map::new(),
        );
        e.payload.insert("slug".into(), json!("a"));
        e.payload.insert("big".into(), json!("b"));
        let docs = project(
            vec![e],
            Some(&["type".to_string(), "payload.slug".to_string()]),
        );
        assert_eq!(docs[0], json!({"type": "t", "payload": {"slug": "a"}}));
    }
}
