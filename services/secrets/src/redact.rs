//! [`Redactor`]: replaces every occurrence of a set of secret values by `"REDACTED"`.

use std::fmt;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, MatchKind};
use serde_json::{Map, Value};

use crate::REDACTED;

/// Replaces secret values in text and in every string (and member name) of a JSON value. Made
/// once per workspace secrets snapshot; cloning shares it. Empty, it changes nothing and costs
/// a branch.
#[derive(Clone, Default)]
pub struct Redactor {
    matcher: Option<Arc<AhoCorasick>>,
    patterns: usize,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("patterns", &self.patterns)
            .finish()
    }
}

impl Redactor {
    /// A redactor of `values`: each non-empty one as given and, when it differs, as it reads
    /// inside JSON text (quotes and backslashes escaped), longest first where they overlap.
    pub fn new<I, S>(values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut patterns: Vec<String> = Vec::new();
        for v in values {
            let v = v.as_ref();
            if v.is_empty() {
                continue;
            }
            patterns.push(v.to_owned());
            let quoted = serde_json::to_string(v).unwrap_or_default();
            if let Some(escaped) = quoted.strip_prefix('"').and_then(|q| q.strip_suffix('"'))
                && escaped != v
            {
                patterns.push(escaped.to_owned());
            }
        }
        patterns.sort();
        patterns.dedup();
        if patterns.is_empty() {
            return Self::default();
        }
        let matcher = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&patterns)
            .ok()
            .map(Arc::new);
        Self {
            patterns: patterns.len(),
            matcher,
        }
    }

    /// No value to redact.
    pub fn is_empty(&self) -> bool {
        self.matcher.is_none()
    }

    /// `text` with every secret value replaced, or `None` when it holds none.
    pub fn redact_str(&self, text: &str) -> Option<String> {
        let m = self.matcher.as_ref()?;
        m.find(text)?;
        Some(m.replace_all(text, &vec![REDACTED; self.patterns]))
    }

    /// `text` with every secret value replaced.
    pub fn redact_text(&self, text: String) -> String {
        self.redact_str(&text).unwrap_or(text)
    }

    /// Replaces secret values in every string and member name of `value`, in place.
    pub fn redact_value(&self, value: &mut Value) {
        if self.is_empty() {
            return;
        }
        match value {
            Value::String(s) => {
                if let Some(r) = self.redact_str(s) {
                    *s = r;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.redact_value(v)),
            Value::Object(members) => self.redact_members(members),
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    /// [`redact_value`](Self::redact_value) over the members of an object.
    pub fn redact_members(&self, members: &mut Map<String, Value>) {
        if self.is_empty() {
            return;
        }
        if members.keys().any(|k| self.redact_str(k).is_some()) {
            let old = std::mem::take(members);
            for (k, mut v) in old {
                self.redact_value(&mut v);
                members.insert(self.redact_text(k), v);
            }
            return;
        }
        members.values_mut().for_each(|v| self.redact_value(v));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_occurrence_in_strings_and_names_is_replaced() {
        let r = Redactor::new(["s3cret", "tok\"en", ""]);
        assert!(!r.is_empty());
        let mut v = json!({
            "url": "https://api.example.com/?key=s3cret&x=s3cret",
            "nested": [{"s3cret": 1, "n": 42, "ok": true, "none": null}],
            "text": "{\"a\":\"tok\\\"en\"}",
            "plain": "tok\"en",
        });
        r.redact_value(&mut v);
        assert_eq!(
            v,
            json!({
                "url": "https://api.example.com/?key=REDACTED&x=REDACTED",
                "nested": [{"REDACTED": 1, "n": 42, "ok": true, "none": null}],
                "text": "{\"a\":\"REDACTED\"}",
                "plain": "REDACTED",
            })
        );
        assert_eq!(r.redact_text("no secret here".into()), "no secret here");
        assert_eq!(r.redact_str("a s3cret b").as_deref(), Some("a REDACTED b"));
    }

    #[test]
    fn overlapping_values_are_replaced_whole_and_an_empty_set_changes_nothing() {
        let r = Redactor::new(["abc", "abcdef"]);
        assert_eq!(r.redact_text("xabcdefx abc".into()), "xREDACTEDx REDACTED");
        let none = Redactor::new(Vec::<String>::new());
        assert!(none.is_empty());
        let mut v = json!({"a": "abc"});
        none.redact_value(&mut v);
        assert_eq!(v, json!({"a": "abc"}));
    }
}
