//! A socket's server-side filters (`spec/http-api.md` §8 `filters`): types (exact or
//! `prefix.*`), text words, and `payloadQuery` equality on dotted paths, replaceable while
//! connected.

use std::collections::HashSet;

use refract_core::Event;
use refract_storage::history::{event_text, text_words};
use refract_storage::{FieldFilter, TypeFilter};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// Most `payloadQuery` paths and `types` entries per socket: each is evaluated for every
/// event of the workspace.
const MAX_PATHS: usize = 20;
const MAX_TYPES: usize = 100;
/// Most alternatives in one `payloadQuery` list.
const MAX_ALTERNATIVES: usize = 100;

/// The filters as a client sends them.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RawFilters {
    #[serde(default)]
    pub types: Option<Vec<String>>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub payload_query: Option<Map<String, Value>>,
}

/// One `payloadQuery` path: the event matches when any alternative does.
#[derive(Debug, Clone)]
struct FieldAny {
    path: String,
    alternatives: Vec<FieldFilter>,
}

/// Checked filters; the default passes every event.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    types: Vec<TypeFilter>,
    raw_types: Vec<String>,
    text: Option<String>,
    words: Vec<String>,
    fields: Vec<FieldAny>,
}

/// Why filters were refused: the offending key and the reason.
#[derive(Debug)]
pub(crate) struct FilterError {
    pub path: String,
    pub reason: String,
}

fn bad(path: impl Into<String>, reason: impl Into<String>) -> FilterError {
    FilterError {
        path: path.into(),
        reason: reason.into(),
    }
}

impl Filters {
    pub(crate) fn parse(raw: RawFilters) -> Result<Self, FilterError> {
        let mut filters = Filters::default();
        let types = raw.types.unwrap_or_default();
        if types.len() > MAX_TYPES {
            return Err(bad("types", format!("at most {MAX_TYPES} types")));
        }
        for t in types {
            filters
                .types
                .push(TypeFilter::parse(&t).map_err(|e| bad("types", e.to_string()))?);
            filters.raw_types.push(t);
        }
        if let Some(text) = raw.text.filter(|t| !t.trim().is_empty()) {
            filters.words = text_words(&text);
            filters.text = Some(text);
        }
        let query = raw.payload_query.unwrap_or_default();
        if query.len() > MAX_PATHS {
            return Err(bad("payloadQuery", format!("at most {MAX_PATHS} paths")));
        }
        for (key, value) in query {
            filters.fields.push(field_any(&key, value)?);
        }
        Ok(filters)
    }

    /// Filters from the upgrade query string (§7.1 names: `types`, `text`, dotted paths).
    pub(crate) fn from_query(params: &[(String, String)]) -> Result<Self, FilterError> {
        let mut raw = RawFilters::default();
        let mut query = Map::new();
        for (key, value) in params {
            match key.as_str() {
                "types" => {
                    raw.types = Some(
                        value
                            .split(',')
                            .filter(|t| !t.is_empty())
                            .map(str::to_string)
                            .collect(),
                    )
                }
                "text" => raw.text = Some(value.clone()),
                k if k.contains('.') => {
                    query.insert(k.trim_end_matches("[]").to_string(), scalar(value));
                }
                other => return Err(bad(other, "unknown filter parameter")),
            }
        }
        if !query.is_empty() {
            raw.payload_query = Some(query);
        }
        Self::parse(raw)
    }

    /// Whether the filters need the event as JSON (field filters do).
    pub fn needs_doc(&self) -> bool {
        !self.fields.is_empty()
    }

    /// Whether `event` passes; `doc` is its JSON form when [`Self::needs_doc`].
    pub fn matches(&self, event: &Event, doc: Option<&Value>) -> bool {
        let t = event.event_type.as_str();
        if !self.types.is_empty() && !self.types.iter().any(|f| f.matches(t)) {
            return false;
        }
        if !self.words.is_empty() {
            let have: HashSet<String> = text_words(&event_text(event)).into_iter().collect();
            if !self.words.iter().all(|w| have.contains(w)) {
                return false;
            }
        }
        match doc {
            Some(doc) => self
                .fields
                .iter()
                .all(|f| f.alternatives.iter().any(|a| a.matches(doc))),
            None => self.fields.is_empty(),
        }
    }

    /// The normalized form echoed in `subscribed`.
    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        if !self.raw_types.is_empty() {
            out.insert("types".into(), json!(self.raw_types));
        }
        if let Some(text) = &self.text {
            out.insert("text".into(), json!(text));
        }
        if !self.fields.is_empty() {
            let query: Map<String, Value> = self
                .fields
                .iter()
                .map(|f| {
                    let values: Vec<Value> =
                        f.alternatives.iter().map(|a| a.value().clone()).collect();
                    let value = if values.len() == 1 {
                        values[0].clone()
                    } else {
                        Value::Array(values)
                    };
                    (f.path.clone(), value)
                })
                .collect();
            out.insert("payloadQuery".into(), Value::Object(query));
        }
        Value::Object(out)
    }
}

/// A query-string value: a JSON number or boolean is that value, anything else a string.
fn scalar(raw: &str) -> Value {
    match serde_json::from_str::<Value>(raw) {
        Ok(v @ (Value::Number(_) | Value::Bool(_))) => v,
        _ => Value::String(raw.to_string()),
    }
}

/// `payloadQuery` keys are dotted paths; one not rooted at an envelope member is taken
/// inside `payload` (the Prisme.ai form: `{"orderId": 1}`).
fn field_any(key: &str, value: Value) -> Result<FieldAny, FilterError> {
    let roots = ["payload.", "source.", "target.", "error.", "options."];
    let path = if roots.iter().any(|r| key.starts_with(r)) {
        key.to_string()
    } else {
        format!("payload.{key}")
    };
    let values = match value {
        Value::Array(items) if items.is_empty() => {
            return Err(bad(key, "an empty list matches nothing"));
        }
        Value::Array(items) if items.len() > MAX_ALTERNATIVES => {
            return Err(bad(key, format!("at most {MAX_ALTERNATIVES} alternatives")));
        }
        Value::Array(items) => items,
        v => vec![v],
    };
    let mut alternatives = Vec::with_capacity(values.len());
    for v in values {
        if v.as_str().is_some_and(|s| s.contains('*')) {
            return Err(bad(key, "wildcards are not supported in live filters"));
        }
        alternatives.push(FieldFilter::new(&path, v).map_err(|e| bad(key, e.to_string()))?);
    }
    Ok(FieldAny { path, alternatives })
}

#[cfg(test)]
mod tests {
    use refract_core::{Event, EventType, WorkspaceId};
    use serde_json::{Map, json};

    use super::*;

    fn event(ty: &str, payload: Value) -> Event {
        let Value::Object(map) = payload else {
            return Event::new(EventType::new(ty).expect("type"), None, Map::new());
        };
        Event::new(
            EventType::new(ty).expect("type"),
            Some(WorkspaceId::new("w").expect("ws")),
            map,
        )
    }

    fn check(filters: &Filters, e: &Event) -> bool {
        let doc = serde_json::to_value(e).expect("json");
        filters.matches(e, Some(&doc))
    }

    #[test]
    fn types_prefixes_words_and_fields_select_events() {
        let raw: RawFilters = serde_json::from_value(json!({
            "types": ["orders.*", "ping"],
            "payloadQuery": {"status": ["paid", "sent"], "payload.n": 2}
        }))
        .expect("raw");
        let f = Filters::parse(raw).expect("filters");
        assert!(check(
            &f,
            &event("orders.created", json!({"status": "paid", "n": 2}))
        ));
        assert!(check(
            &f,
            &event("ping", json!({"status": "sent", "n": 2.0}))
        ));
        assert!(!check(
            &f,
            &event("orders.created", json!({"status": "new", "n": 2}))
        ));
        assert!(!check(
            &f,
            &event("other", json!({"status": "paid", "n": 2}))
        ));
        assert_eq!(
            f.to_json()["payloadQuery"]["payload.status"],
            json!(["paid", "sent"])
        );

        let f = Filters::from_query(&[("text".into(), "Hello World".into())]).expect("query");
        assert!(check(&f, &event("x", json!({"msg": "hello big world"}))));
        assert!(!check(&f, &event("x", json!({"msg": "hello"}))));
        assert!(Filters::default().matches(&event("any", json!({})), None));
    }

    #[test]
    fn bad_filters_name_what_is_wrong() {
        let err = Filters::from_query(&[("bogus".into(), "1".into())]).expect_err("unknown");
        assert_eq!(err.path, "bogus");
        let raw: RawFilters =
            serde_json::from_value(json!({"payloadQuery": {"a": "x*"}})).expect("raw");
        assert_eq!(Filters::parse(raw).expect_err("wildcard").path, "a");
        let raw: RawFilters = serde_json::from_value(json!({"types": ["a/b"]})).expect("raw");
        assert_eq!(Filters::parse(raw).expect_err("type").path, "types");
    }
}
