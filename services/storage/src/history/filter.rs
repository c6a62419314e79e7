//! Query conditions shared by every backend, and their in-process evaluation (the in-memory
//! twin uses it; the SQL and Mongo backends translate the same conditions).

use refract_core::{Event, EventType};
use serde_json::Value;

use crate::error::{Result, StorageError};

/// Most segments in a field path (`spec/http-api.md` §7.3).
pub const MAX_PATH_SEGMENTS: usize = 10;

/// Envelope members a field filter may start with.
const FILTER_ROOTS: &[&str] = &["payload", "source", "target", "error", "options"];

/// A type condition: an exact type, or every type under a prefix (`workspaces.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeFilter {
    /// This type only.
    Exact(String),
    /// The prefix with its trailing dot (`workspaces.`): matches `workspaces.created`.
    Prefix(String),
}

impl TypeFilter {
    /// Parses `a.b` (exact) or `a.*` (prefix).
    pub fn parse(raw: &str) -> Result<Self> {
        let (base, prefix) = match raw.strip_suffix(".*") {
            Some(base) => (base, true),
            None => (raw, false),
        };
        EventType::new(base).map_err(|e| StorageError::invalid("types", e.to_string()))?;
        Ok(if prefix {
            TypeFilter::Prefix(format!("{base}."))
        } else {
            TypeFilter::Exact(base.to_string())
        })
    }

    /// Whether `event_type` passes this filter.
    pub fn matches(&self, event_type: &str) -> bool {
        match self {
            TypeFilter::Exact(t) => event_type == t,
            TypeFilter::Prefix(p) => event_type.starts_with(p.as_str()),
        }
    }

    /// For a prefix, the exclusive upper bound of a range scan: the prefix with its last byte
    /// (the dot) incremented, `workspaces/`.
    pub fn prefix_upper_bound(prefix: &str) -> String {
        let mut s = prefix.trim_end_matches('.').to_string();
        s.push('/');
        s
    }
}

/// Equality on a dotted path of the stored envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldFilter {
    segments: Vec<String>,
    value: Value,
}

impl FieldFilter {
    /// `path` is dotted (`payload.order.id`), starts with `payload`, `source`, `target`,
    /// `error` or `options`, and has segments of `[A-Za-z0-9_$-]`.
    pub fn new(path: &str, value: Value) -> Result<Self> {
        let segments: Vec<String> = path.split('.').map(str::to_string).collect();
        if segments.len() < 2 || segments.len() > MAX_PATH_SEGMENTS {
            return Err(StorageError::invalid(
                "fields",
                format!("{path:?}: a path has 2 to {MAX_PATH_SEGMENTS} dotted segments"),
            ));
        }
        if !FILTER_ROOTS.contains(&segments[0].as_str()) {
            return Err(StorageError::invalid(
                "fields",
                format!(
                    "{path:?}: must start with one of {}",
                    FILTER_ROOTS.join(", ")
                ),
            ));
        }
        if !segments.iter().all(|s| segment_ok(s)) {
            return Err(StorageError::invalid(
                "fields",
                format!("{path:?}: segments use A-Z a-z 0-9 _ $ -"),
            ));
        }
        Ok(Self { segments, value })
    }

    /// The path's segments (`["payload", "order", "id"]`).
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// The value the path must hold.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// The dotted path as given.
    pub fn path(&self) -> String {
        self.segments.join(".")
    }

    /// The value as a nested object (`{"payload":{"a":1}}`), for containment queries.
    pub fn as_containment(&self) -> Value {
        self.segments
            .iter()
            .rev()
            .fold(self.value.clone(), |inner, seg| {
                let mut map = serde_json::Map::new();
                map.insert(seg.clone(), inner);
                Value::Object(map)
            })
    }

    /// Whether `doc` (a serialized envelope) has this value at this path.
    pub fn matches(&self, doc: &Value) -> bool {
        let mut at = doc;
        for seg in &self.segments {
            match at.get(seg.as_str()) {
                Some(next) => at = next,
                None => return false,
            }
        }
        json_eq(at, &self.value)
    }
}

/// Whether `s` is a valid path segment (`[A-Za-z0-9_$-]+`): safe to quote into SQL paths.
pub(crate) fn segment_ok(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'$' | b'-'))
}

/// JSON equality where numbers compare numerically (`1` equals `1.0`), as in SQL and Mongo.
pub(crate) fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// The text an event is searchable by: its type and every string in its payload.
pub fn event_text(event: &Event) -> String {
    let mut out = event.event_type.as_str().to_string();
    for v in event.payload.values() {
        collect_strings(v, &mut out);
    }
    out
}

fn collect_strings(v: &Value, out: &mut String) {
    match v {
        Value::String(s) => {
            out.push(' ');
            out.push_str(s);
        }
        Value::Array(items) => items.iter().for_each(|i| collect_strings(i, out)),
        Value::Object(map) => map.values().for_each(|i| collect_strings(i, out)),
        _ => {}
    }
}

/// The words of `text` as they are: runs of letters and digits. The one rule of what a word is,
/// for what is stored and what is searched.
fn raw_words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
}

/// The lowercase words of `text` joined by single spaces: what the backends index, built in
/// one string (an event's text is split once per stored event).
pub fn search_words(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in raw_words(text) {
        if !out.is_empty() {
            out.push(' ');
        }
        if word.is_ascii() {
            out.extend(word.bytes().map(|b| char::from(b.to_ascii_lowercase())));
        } else {
            out.push_str(&word.to_lowercase());
        }
    }
    out
}

/// Splits text into lowercase words (runs of letters and digits), the unit text search
/// matches on every backend.
pub fn text_words(text: &str) -> Vec<String> {
    raw_words(text).map(str::to_lowercase).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn type_filters_match_exactly_or_under_a_prefix() {
        let p = TypeFilter::parse("workspaces.*").unwrap();
        assert!(
            p.matches("workspaces.created")
                && !p.matches("workspacesX.a")
                && !p.matches("workspaces")
        );
        assert!(TypeFilter::parse("a.b").unwrap().matches("a.b"));
        assert!(TypeFilter::parse("a/b").is_err());
        assert_eq!(TypeFilter::prefix_upper_bound("workspaces."), "workspaces/");
    }

    #[test]
    fn field_paths_are_checked_and_compared_numerically() {
        assert!(FieldFilter::new("payload", json!(1)).is_err());
        assert!(FieldFilter::new("createdAt.x", json!(1)).is_err());
        assert!(FieldFilter::new("payload.a b", json!(1)).is_err());
        let f = FieldFilter::new("payload.order.total", json!(10)).unwrap();
        assert!(f.matches(&json!({"payload": {"order": {"total": 10.0}}})));
        assert!(!f.matches(&json!({"payload": {"order": {"total": "10"}}})));
        assert_eq!(
            f.as_containment(),
            json!({"payload": {"order": {"total": 10}}})
        );
    }

    #[test]
    fn words_are_lowercase_alphanumeric_runs() {
        assert_eq!(text_words("Hello, wörld-42!"), vec!["hello", "wörld", "42"]);
        for text in [
            "Hello, wörld-42!",
            "  ÉTÉ  x_Y.z ",
            "",
            "--",
            "orders.paid Ünïcode ΣΑΣ",
        ] {
            assert_eq!(search_words(text), text_words(text).join(" "), "{text:?}");
        }
    }
}
