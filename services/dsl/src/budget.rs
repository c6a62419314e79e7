//! Tenant documents (YAML and JSON) parsed within a [`Budget`]: bytes, nodes counted after YAML
//! alias expansion, and nesting depth.
//!
//! YAML aliases make a document's size a poor measure of its cost: `a: &a [0, 0, …]` then
//! `b: [*a, *a, …]` is a few kilobytes of text that expands quadratically (41 KB became 1.2 GB
//! and 6 s of CPU). `serde_yaml_ng` bounds nesting and the number of alias jumps, not the nodes
//! a jump replays. So every document is first walked by a counting visitor, which sees each
//! alias expanded exactly as the real parse will and stops at the first node over the budget
//! (memory: none kept; CPU: at most the budget's nodes); only a document within budget is then
//! parsed for real. Every path that parses a tenant's YAML or JSON document goes through
//! [`Budget::yaml`] or [`Budget::json`].

use std::fmt;

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, IgnoredAny, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};
use serde_json::Value;

/// Largest document, in bytes, unless the caller sets its own cap (a request body's limit). An
/// exported automation is a few kilobytes; this leaves room for generated ones.
pub const MAX_DOCUMENT_BYTES: usize = 2 << 20;

/// Most nodes (scalars, sequences, mappings, keys included) one document may have once its
/// aliases are expanded: what bounds the memory and CPU of an alias bomb. Real automations
/// have hundreds to a few thousand; 250,000 nodes is some 30 MB as a parsed tree.
pub const MAX_DOCUMENT_NODES: usize = 250_000;

/// Deepest nesting of sequences and mappings. Below the parsers' own recursion limits (128),
/// so a too-deep document gets this budget's error; above what the deepest instruction lists
/// the DSL accepts need (`MAX_NESTING` levels of `all: [...]` nest 2 per level).
pub const MAX_DOCUMENT_DEPTH: usize = 100;

/// What parsing tenant documents may cost. One budget can serve several documents (the files
/// of an import): their nodes are drawn from one allowance, failed attempts included, so many
/// small bombs cost no more than one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Largest text of one document.
    pub max_bytes: usize,
    /// Deepest nesting of one document.
    pub max_depth: usize,
    /// Most nodes of one document, after alias expansion.
    pub max_nodes: usize,
    /// Nodes left to every document still to be parsed with this budget.
    nodes_left: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Budget::document()
    }
}

impl Budget {
    /// The budget of one document.
    pub const fn document() -> Self {
        Budget {
            max_bytes: MAX_DOCUMENT_BYTES,
            max_depth: MAX_DOCUMENT_DEPTH,
            max_nodes: MAX_DOCUMENT_NODES,
            nodes_left: MAX_DOCUMENT_NODES,
        }
    }

    /// The budget of several documents whose nodes add up to at most `total_nodes`.
    pub const fn documents(total_nodes: usize) -> Self {
        Budget {
            nodes_left: total_nodes,
            ..Budget::document()
        }
    }

    /// The same budget with another cap on one document's text.
    pub const fn with_max_bytes(self, max_bytes: usize) -> Self {
        Budget { max_bytes, ..self }
    }

    /// Nodes left to the documents still to be parsed.
    pub fn nodes_left(&self) -> usize {
        self.nodes_left
    }

    /// Parses a YAML document (1.2 core schema, merge keys) into JSON, within the budget.
    #[cfg(feature = "yaml")]
    pub fn yaml(&mut self, text: &str) -> Result<Value, DocumentError> {
        let syntax = |e: serde_yaml_ng::Error| DocumentError::Syntax(e.to_string());
        self.check_bytes(text.len())?;
        self.count(|node| {
            node.deserialize(serde_yaml_ng::Deserializer::from_str(text))
                .map_err(syntax)
        })?;
        // Within budget: the real parse expands no more than what was just counted, and merge
        // keys move members, never copy them.
        let mut v: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).map_err(syntax)?;
        v.apply_merge().map_err(syntax)?;
        serde_json::to_value(v).map_err(|e| DocumentError::Syntax(e.to_string()))
    }

    /// Parses a JSON document within the budget (serde_json's own limits: recursion only).
    pub fn json(&mut self, bytes: &[u8]) -> Result<Value, DocumentError> {
        let syntax = |e: serde_json::Error| DocumentError::Syntax(e.to_string());
        self.check_bytes(bytes.len())?;
        self.count(|node| {
            let mut de = serde_json::Deserializer::from_slice(bytes);
            node.deserialize(&mut de)
                .and_then(|()| de.end())
                .map_err(syntax)
        })?;
        serde_json::from_slice(bytes).map_err(syntax)
    }

    fn check_bytes(&self, len: usize) -> Result<(), DocumentError> {
        if len > self.max_bytes {
            Err(DocumentError::TooLarge {
                limit: self.max_bytes,
            })
        } else {
            Ok(())
        }
    }

    /// Runs the counting pass `walk` and draws the nodes it saw from the allowance; a budget
    /// error found by the walk wins over the parser error it surfaced as.
    fn count(
        &mut self,
        walk: impl FnOnce(Node<'_>) -> Result<(), DocumentError>,
    ) -> Result<(), DocumentError> {
        let (limit, limited_by) = if self.nodes_left < self.max_nodes {
            (self.nodes_left, NodeLimit::Shared)
        } else {
            (self.max_nodes, NodeLimit::Document)
        };
        let mut tally = Tally {
            nodes: 0,
            limit,
            limited_by,
            max_depth: self.max_depth,
            exceeded: None,
        };
        let walked = walk(Node {
            tally: &mut tally,
            depth: 1,
        });
        self.nodes_left = self.nodes_left.saturating_sub(tally.nodes);
        match (tally.exceeded, walked) {
            (Some(e), _) => Err(e),
            (None, result) => result,
        }
    }
}

/// Why a document was not parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    /// Over the byte limit (`PayloadTooLarge`).
    #[error("the document is over the {limit}-byte limit")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// Over the node limit once aliases are expanded (`DocumentTooComplex`).
    #[error("the document has more than {limit} nodes once its aliases are expanded")]
    TooManyNodes {
        /// The limit, in nodes.
        limit: usize,
    },
    /// Several documents sharing one budget are over its node limit together.
    #[error("these documents have more than {limit} nodes in all once their aliases are expanded")]
    TooManyNodesInAll {
        /// The limit, in nodes.
        limit: usize,
    },
    /// Nested deeper than the depth limit (`DocumentTooComplex`).
    #[error("the document nests deeper than {limit} levels")]
    TooDeep {
        /// The limit, in levels.
        limit: usize,
    },
    /// Not well-formed YAML or JSON (the parser's message).
    #[error("{0}")]
    Syntax(String),
}

impl DocumentError {
    /// The error class a client sees: `PayloadTooLarge`, `DocumentTooComplex`, or `None` for a
    /// syntax error (whose class depends on the format: `InvalidYamlError`, …).
    pub fn class(&self) -> Option<&'static str> {
        match self {
            DocumentError::TooLarge { .. } => Some("PayloadTooLarge"),
            DocumentError::TooManyNodes { .. }
            | DocumentError::TooManyNodesInAll { .. }
            | DocumentError::TooDeep { .. } => Some("DocumentTooComplex"),
            DocumentError::Syntax(_) => None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum NodeLimit {
    Document,
    Shared,
}

/// The counting pass's state: nodes seen so far and the first budget error.
struct Tally {
    nodes: usize,
    limit: usize,
    limited_by: NodeLimit,
    max_depth: usize,
    exceeded: Option<DocumentError>,
}

/// One node of the counting pass, at `depth` (the root is 1). It deserializes anything and
/// keeps nothing.
struct Node<'t> {
    tally: &'t mut Tally,
    depth: usize,
}

impl Node<'_> {
    fn visit<E: de::Error>(&mut self) -> Result<(), E> {
        self.tally.nodes += 1;
        let exceeded = if self.tally.nodes > self.tally.limit {
            Some(match self.tally.limited_by {
                NodeLimit::Document => DocumentError::TooManyNodes {
                    limit: self.tally.limit,
                },
                NodeLimit::Shared => DocumentError::TooManyNodesInAll {
                    limit: self.tally.limit,
                },
            })
        } else if self.depth > self.tally.max_depth {
            Some(DocumentError::TooDeep {
                limit: self.tally.max_depth,
            })
        } else {
            None
        };
        match exceeded {
            None => Ok(()),
            Some(e) => {
                let err = E::custom(&e);
                self.tally.exceeded = Some(e);
                Err(err)
            }
        }
    }

    fn child(&mut self) -> Node<'_> {
        Node {
            tally: &mut *self.tally,
            depth: self.depth + 1,
        }
    }
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any document")
    }

    fn visit_bool<E: de::Error>(mut self, _: bool) -> Result<(), E> {
        self.visit()
    }

    fn visit_i64<E: de::Error>(mut self, _: i64) -> Result<(), E> {
        self.visit()
    }

    fn visit_i128<E: de::Error>(mut self, _: i128) -> Result<(), E> {
        self.visit()
    }

    fn visit_u64<E: de::Error>(mut self, _: u64) -> Result<(), E> {
        self.visit()
    }

    fn visit_u128<E: de::Error>(mut self, _: u128) -> Result<(), E> {
        self.visit()
    }

    fn visit_f64<E: de::Error>(mut self, _: f64) -> Result<(), E> {
        self.visit()
    }

    fn visit_str<E: de::Error>(mut self, _: &str) -> Result<(), E> {
        self.visit()
    }

    fn visit_bytes<E: de::Error>(mut self, _: &[u8]) -> Result<(), E> {
        self.visit()
    }

    fn visit_none<E: de::Error>(mut self) -> Result<(), E> {
        self.visit()
    }

    fn visit_unit<E: de::Error>(mut self) -> Result<(), E> {
        self.visit()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        self.visit::<A::Error>()?;
        while seq.next_element_seed(self.child())?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        self.visit::<A::Error>()?;
        while map.next_key_seed(self.child())?.is_some() {
            map.next_value_seed(self.child())?;
        }
        Ok(())
    }

    /// A YAML tagged node (`!tag value`): the tag is one node, its value another.
    fn visit_enum<A: EnumAccess<'de>>(mut self, data: A) -> Result<(), A::Error> {
        self.visit::<A::Error>()?;
        let (IgnoredAny, variant) = data.variant::<IgnoredAny>()?;
        variant.newtype_variant_seed(self.child())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `a: &a [0 × width]` and `b: [*a × copies]`: `width × copies` nodes from a few bytes.
    fn alias_bomb(width: usize, copies: usize) -> String {
        format!(
            "a: &a [{}]\nb: [{}]\n",
            vec!["0"; width].join(","),
            vec!["*a"; copies].join(",")
        )
    }

    #[cfg(feature = "yaml")]
    #[test]
    fn a_normal_document_passes_with_its_aliases_and_merges() {
        let text = "name: a\nbase: &b {x: 1}\nm:\n  <<: *b\n  y: 2\nl: [*b, *b]\ndo:\n  - set: {name: v, value: 1}\n";
        let v = Budget::document().yaml(text).expect("within budget");
        assert_eq!(v["m"], json!({"x": 1, "y": 2}));
        assert_eq!(v["l"], json!([{"x": 1}, {"x": 1}]));
        assert_eq!(v["do"][0]["set"]["name"], json!("v"));
    }

    #[cfg(feature = "yaml")]
    #[test]
    fn an_alias_bomb_is_refused_before_it_expands() {
        // 5 KB of text, 400 × 2,000 = 800,000 nodes expanded.
        let text = alias_bomb(2_000, 400);
        assert!(text.len() < 6_000);
        let mut budget = Budget::document();
        let e = budget.yaml(&text).unwrap_err();
        assert_eq!(
            e,
            DocumentError::TooManyNodes {
                limit: MAX_DOCUMENT_NODES
            }
        );
        assert_eq!(e.class(), Some("DocumentTooComplex"));
        // The nested kind: every level doubles the one below.
        let mut nested = String::from("l0: &l0 [0, 0]\n");
        for i in 1..40 {
            nested.push_str(&format!("l{i}: &l{i} [*l{p}, *l{p}]\n", p = i - 1));
        }
        // (the parser's own cap on alias jumps may stop this one first: refused either way)
        assert!(Budget::document().yaml(&nested).is_err());
        // A small one passes: aliases are fine, their expansion is what counts.
        assert!(Budget::document().yaml(&alias_bomb(100, 100)).is_ok());
    }

    #[cfg(feature = "yaml")]
    #[test]
    fn deep_nesting_fails_in_both_formats() {
        let deep = |n: usize| format!("{}0{}", "[".repeat(n), "]".repeat(n));
        assert!(
            Budget::document()
                .yaml(&deep(MAX_DOCUMENT_DEPTH - 1))
                .is_ok()
        );
        assert!(
            Budget::document()
                .json(deep(MAX_DOCUMENT_DEPTH - 1).as_bytes())
                .is_ok()
        );
        let too_deep = DocumentError::TooDeep {
            limit: MAX_DOCUMENT_DEPTH,
        };
        assert_eq!(
            Budget::document()
                .yaml(&deep(MAX_DOCUMENT_DEPTH + 1))
                .unwrap_err(),
            too_deep
        );
        assert_eq!(
            Budget::document()
                .json(deep(MAX_DOCUMENT_DEPTH + 1).as_bytes())
                .unwrap_err(),
            too_deep
        );
        // Far deeper: refused, by this budget or by the parser's own limits, never a crash.
        assert!(Budget::document().yaml(&deep(100_000)).is_err());
        assert!(Budget::document().json(deep(100_000).as_bytes()).is_err());
    }

    #[test]
    fn json_is_counted_and_capped_too() {
        let v = Budget::document()
            .json(br#"{"name": "a", "do": [{"set": {"name": "x", "value": [1, 2]}}]}"#)
            .unwrap();
        assert_eq!(v["do"][0]["set"]["value"], json!([1, 2]));
        // The array and its elements: one node over.
        let wide = format!("[{}]", vec!["0"; MAX_DOCUMENT_NODES].join(","));
        assert_eq!(
            Budget::document().json(wide.as_bytes()).unwrap_err(),
            DocumentError::TooManyNodes {
                limit: MAX_DOCUMENT_NODES
            }
        );
        let e = Budget::document()
            .with_max_bytes(100)
            .json(wide.as_bytes())
            .unwrap_err();
        assert_eq!(e, DocumentError::TooLarge { limit: 100 });
        assert_eq!(e.class(), Some("PayloadTooLarge"));
        assert!(matches!(
            Budget::document().json(b"{oops").unwrap_err(),
            DocumentError::Syntax(_)
        ));
        assert!(matches!(
            Budget::document().json(b"{} {}").unwrap_err(),
            DocumentError::Syntax(_)
        ));
    }

    #[cfg(feature = "yaml")]
    #[test]
    fn documents_draw_from_one_allowance_failures_included() {
        let mut budget = Budget::documents(1_000);
        assert!(budget.yaml("a: [1, 2, 3]").is_ok());
        assert_eq!(budget.nodes_left(), 1_000 - 6);
        // Over what is left: refused, and what it cost is spent.
        assert_eq!(
            budget.yaml(&alias_bomb(100, 100)).unwrap_err(),
            DocumentError::TooManyNodesInAll { limit: 994 }
        );
        assert_eq!(budget.nodes_left(), 0);
        assert_eq!(
            budget.yaml("a: 1").unwrap_err().class(),
            Some("DocumentTooComplex")
        );
    }

    #[cfg(feature = "yaml")]
    #[test]
    fn syntax_errors_stay_syntax_errors() {
        assert!(matches!(
            Budget::document().yaml("a: ["),
            Err(DocumentError::Syntax(_))
        ));
        assert!(matches!(
            Budget::document().yaml("a: *nowhere"),
            Err(DocumentError::Syntax(_))
        ));
        assert_eq!(
            Budget::document().yaml("").is_ok(),
            serde_yaml_ng::from_str::<serde_yaml_ng::Value>("").is_ok()
        );
        assert_eq!(
            Budget::document().yaml("x: !tag {a: 1}").unwrap(),
            json!({"x": {"!tag": {"a": 1}}})
        );
    }
}
