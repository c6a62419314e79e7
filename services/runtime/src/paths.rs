//! Dotted paths with indexes (`a.b[2].c`) inside JSON documents: the addressing of the `state`
//! import. The host has already checked the syntax; these functions re-parse defensively.

use serde_json::{Map, Value};

/// Largest array index a write may create: a write at `a[4000000000]` must not allocate
/// gigabytes of nulls.
pub(crate) const MAX_INDEX: usize = 10_000;

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    Key(String),
    Index(usize),
}

/// Parses `a.b[2].c`; the first segment is always a key (the variable name).
pub(crate) fn parse(path: &str) -> Result<Vec<Segment>, String> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let name = part.split('[').next().unwrap_or("");
        if name.is_empty() {
            return Err(format!("empty name in path {path:?}"));
        }
        out.push(Segment::Key(name.to_owned()));
        let mut rest = &part[name.len()..];
        while !rest.is_empty() {
            let (inner, tail) = rest
                .strip_prefix('[')
                .and_then(|r| r.split_once(']'))
                .ok_or_else(|| format!("malformed index in path {path:?}"))?;
            let index: usize = inner
                .parse()
                .map_err(|_| format!("malformed index in path {path:?}"))?;
            if index > MAX_INDEX {
                return Err(format!("index {index} is over the limit of {MAX_INDEX}"));
            }
            out.push(Segment::Index(index));
            rest = tail;
        }
    }
    if out.is_empty() {
        return Err("empty path".into());
    }
    Ok(out)
}

/// The value at `path` inside `doc`.
pub(crate) fn get<'a>(doc: &'a Value, path: &[Segment]) -> Option<&'a Value> {
    path.iter().try_fold(doc, |at, seg| match seg {
        Segment::Key(k) => at.get(k.as_str()),
        Segment::Index(i) => at.get(*i),
    })
}

/// Writes `value` at `path` inside `doc`, creating objects (for keys) and arrays (for indexes)
/// on the way and replacing scalars that stand in the way.
pub(crate) fn set(doc: &mut Value, path: &[Segment], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        *doc = value;
        return;
    };
    let mut at = doc;
    for seg in parents {
        at = child(at, seg);
    }
    *child(at, last) = value;
}

fn child<'a>(at: &'a mut Value, seg: &Segment) -> &'a mut Value {
    match seg {
        Segment::Key(k) => {
            if !at.is_object() {
                *at = Value::Object(Map::new());
            }
            match at {
                Value::Object(map) => map.entry(k.clone()).or_insert(Value::Null),
                _ => unreachable_value(at),
            }
        }
        Segment::Index(i) => {
            if !at.is_array() {
                *at = Value::Array(Vec::new());
            }
            match at {
                Value::Array(items) => {
                    if items.len() <= *i {
                        items.resize(i + 1, Value::Null);
                    }
                    &mut items[*i]
                }
                _ => unreachable_value(at),
            }
        }
    }
}

/// Never reached (the value was just made an object or array); returns it unchanged so no
/// panic path exists.
fn unreachable_value(at: &mut Value) -> &mut Value {
    at
}

/// Removes the value at `path`; `false` when nothing was there. An array element is removed
/// (later elements shift), as a DSL `delete` does.
pub(crate) fn delete(doc: &mut Value, path: &[Segment]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut at = doc;
    for seg in parents {
        let next = match seg {
            Segment::Key(k) => at.get_mut(k.as_str()),
            Segment::Index(i) => at.get_mut(*i),
        };
        match next {
            Some(n) => at = n,
            None => return false,
        }
    }
    match (at, last) {
        (Value::Object(map), Segment::Key(k)) => map.remove(k).is_some(),
        (Value::Array(items), Segment::Index(i)) if *i < items.len() => {
            items.remove(*i);
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(s: &str) -> Vec<Segment> {
        parse(s).unwrap()
    }

    #[test]
    fn parse_keys_and_indexes() {
        assert_eq!(
            p("a.b[2].c"),
            vec![
                Segment::Key("a".into()),
                Segment::Key("b".into()),
                Segment::Index(2),
                Segment::Key("c".into())
            ]
        );
        for bad in ["", ".a", "a..b", "a[", "a[x]", "[0]", "a[99999999]"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn set_creates_parents_and_get_reads_them_back() {
        let mut doc = Value::Null;
        set(&mut doc, &p("counter.value"), json!(1));
        set(&mut doc, &p("list[2].name"), json!("c"));
        assert_eq!(
            doc,
            json!({"counter": {"value": 1}, "list": [null, null, {"name": "c"}]})
        );
        assert_eq!(get(&doc, &p("list[2].name")), Some(&json!("c")));
        assert_eq!(get(&doc, &p("counter")), Some(&json!({"value": 1})));
        assert_eq!(get(&doc, &p("counter.value.deeper")), None);
        // A scalar in the way is replaced.
        set(&mut doc, &p("counter.value.deeper"), json!(true));
        assert_eq!(get(&doc, &p("counter.value.deeper")), Some(&json!(true)));
    }

    #[test]
    fn delete_removes_keys_and_elements() {
        let mut doc = json!({"a": {"b": 1, "c": 2}, "l": [1, 2, 3]});
        assert!(delete(&mut doc, &p("a.b")));
        assert!(!delete(&mut doc, &p("a.b")));
        assert!(delete(&mut doc, &p("l[0]")));
        assert!(!delete(&mut doc, &p("missing.x")));
        assert_eq!(doc, json!({"a": {"c": 2}, "l": [2, 3]}));
    }
}
