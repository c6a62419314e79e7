//! Variable paths (`automation-dsl.md` §4.2): `order.lines[0].sku`, `headers['content-type']`,
//! `map["a.b"]`; lookup, and the writes of `set` and `delete` (§3.2, §3.3).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::SyntaxError;
use crate::value::{Val, utf16_len};

/// Largest array index a write may create, so `a[4000000000]` cannot allocate gigabytes.
pub const MAX_WRITE_INDEX: usize = 100_000;

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Seg {
    /// A member name.
    Key(String),
    /// A list index (`[2]`).
    Index(usize),
}

impl Seg {
    /// A segment from a key text: all digits become an index (leading zeros dropped).
    pub fn from_text(s: &str) -> Seg {
        if !s.is_empty()
            && s.len() < 16
            && s.bytes().all(|b| b.is_ascii_digit())
            && let Ok(i) = s.parse()
        {
            return Seg::Index(i);
        }
        Seg::Key(s.to_owned())
    }

    /// The segment as an object key (an index as its digits); borrowed for a key.
    pub fn as_key(&self) -> Cow<'_, str> {
        match self {
            Seg::Key(k) => Cow::Borrowed(k),
            Seg::Index(i) => Cow::Owned(i.to_string()),
        }
    }
}

/// Parses a path; the error text says what is wrong (`InvalidVariableNameError`).
pub fn parse(path: &str) -> Result<Vec<Seg>, SyntaxError> {
    parse_text(path).map_err(SyntaxError::new)
}

fn parse_text(path: &str) -> Result<Vec<Seg>, String> {
    let p = path.trim();
    if p.is_empty() {
        return Err("empty variable path".into());
    }
    if p.starts_with('[') {
        return Err(format!("variable path {p:?} starts with ["));
    }
    // Dotted names without brackets (nearly every path): the segments as they stand. Anything
    // else, errors included, goes through the full parser below.
    if !p.contains('[') && p.split('.').all(|s| !s.is_empty()) {
        return Ok(p.split('.').map(Seg::from_text).collect());
    }
    let chars: Vec<char> = p.chars().collect();
    let mut segs = Vec::new();
    let mut i = 0;
    let mut cur = String::new();
    let mut after_bracket = false;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                if cur.is_empty() && !after_bracket {
                    return Err(format!("empty segment in variable path {p:?}"));
                }
                if !cur.is_empty() {
                    segs.push(Seg::from_text(&cur));
                    cur.clear();
                }
                if i + 1 == chars.len() {
                    return Err(format!("variable path {p:?} ends with ."));
                }
                after_bracket = false;
                i += 1;
            }
            '[' => {
                if !cur.is_empty() {
                    segs.push(Seg::from_text(&cur));
                    cur.clear();
                }
                let (seg, next) = bracket(&chars, i + 1)
                    .ok_or_else(|| format!("malformed [] in variable path {p:?}"))?;
                segs.push(seg);
                after_bracket = true;
                i = next;
            }
            c => {
                after_bracket = false;
                cur.push(c);
                i += 1;
            }
        }
    }
    if !cur.is_empty() {
        segs.push(Seg::from_text(&cur));
    }
    Ok(segs)
}

/// The segment inside `[...]` starting at `start`; returns it and the index after `]`.
fn bracket(chars: &[char], start: usize) -> Option<(Seg, usize)> {
    let first = *chars.get(start)?;
    if first == '\'' || first == '"' {
        let end = (start + 1..chars.len()).find(|&j| chars[j] == first)?;
        if chars.get(end + 1) != Some(&']') {
            return None;
        }
        let name: String = chars[start + 1..end].iter().collect();
        return Some((Seg::Key(name), end + 2));
    }
    let end = (start..chars.len()).find(|&j| chars[j] == ']')?;
    let name: String = chars[start..end]
        .iter()
        .collect::<String>()
        .trim()
        .to_owned();
    if name.is_empty() {
        return None;
    }
    Some((Seg::from_text(&name), end + 1))
}

/// One lookup step: object member, array index or `length`, string code unit or `length`.
pub fn step(v: &Val, seg: &Seg) -> Val {
    match v {
        Val::Json(Value::Object(m)) => Val::from_opt(m.get(seg.as_key().as_ref()).cloned()),
        Val::Json(Value::Array(a)) => match seg {
            Seg::Index(i) => Val::from_opt(a.get(*i).cloned()),
            Seg::Key(k) if k == "length" => Val::Num(a.len() as f64),
            Seg::Key(_) => Val::Undefined,
        },
        Val::Json(Value::String(s)) => match seg {
            Seg::Index(i) => s
                .encode_utf16()
                .nth(*i)
                .map_or(Val::Undefined, |u| Val::str(String::from_utf16_lossy(&[u]))),
            Seg::Key(k) if k == "length" => Val::Num(utf16_len(s) as f64),
            Seg::Key(_) => Val::Undefined,
        },
        _ => Val::Undefined,
    }
}

/// The value at `segs` under `root`.
pub fn lookup(root: &Val, segs: &[Seg]) -> Val {
    match root {
        Val::Json(v) => lookup_value(Some(v), segs),
        other if segs.is_empty() => other.clone(),
        _ => Val::Undefined,
    }
}

/// The value at `segs` under `root`, walking by reference: only what is found is cloned (a
/// lookup such as `body.id` must not copy the whole body).
pub fn lookup_value(root: Option<&Value>, segs: &[Seg]) -> Val {
    let Some(mut cur) = root else {
        return Val::Undefined;
    };
    for (i, seg) in segs.iter().enumerate() {
        let next = match cur {
            Value::Object(m) => m.get(seg.as_key().as_ref()),
            Value::Array(a) => match seg {
                Seg::Index(n) => a.get(*n),
                Seg::Key(k) if k == "length" => {
                    return lookup(&Val::Num(a.len() as f64), &segs[i + 1..]);
                }
                Seg::Key(_) => None,
            },
            Value::String(_) => return lookup(&step(&Val::Json(cur.clone()), seg), &segs[i + 1..]),
            _ => None,
        };
        match next {
            Some(v) => cur = v,
            None => return Val::Undefined,
        }
    }
    Val::from_json(cur.clone())
}

/// The container at `segs` inside `doc`, creating `{}` for missing or `null` intermediates;
/// `Err` when a scalar stands in the way (`InvalidInstructionError`).
pub(crate) fn container<'a>(doc: &'a mut Value, segs: &[Seg]) -> Result<&'a mut Value, String> {
    let mut cur = doc;
    for s in segs {
        if cur.is_null() {
            *cur = Value::Object(Map::new());
        }
        cur = match cur {
            Value::Object(m) => m.entry(s.as_key()).or_insert(Value::Null),
            Value::Array(a) => match s {
                Seg::Index(i) if *i <= MAX_WRITE_INDEX => {
                    if a.len() <= *i {
                        a.resize(*i + 1, Value::Null);
                    }
                    &mut a[*i]
                }
                _ => return Err(format!("cannot write {:?} inside an array", s.as_key())),
            },
            other => {
                return Err(format!(
                    "cannot write {:?} inside a {}",
                    s.as_key(),
                    crate::value::json_type_name(other)
                ));
            }
        };
    }
    if cur.is_null() {
        *cur = Value::Object(Map::new());
    }
    Ok(cur)
}

/// The slot at `segs` (non-empty), creating intermediates.
pub(crate) fn slot<'a>(doc: &'a mut Value, segs: &[Seg]) -> Result<&'a mut Value, String> {
    let (last, parents) = segs.split_last().ok_or("empty path")?;
    let parent = container(doc, parents)?;
    match parent {
        Value::Object(m) => Ok(m.entry(last.as_key()).or_insert(Value::Null)),
        Value::Array(a) => match last {
            Seg::Index(i) if *i <= MAX_WRITE_INDEX => {
                if a.len() <= *i {
                    a.resize(*i + 1, Value::Null);
                }
                Ok(&mut a[*i])
            }
            _ => Err(format!("cannot write {:?} inside an array", last.as_key())),
        },
        other => Err(format!(
            "cannot write inside a {}",
            crate::value::json_type_name(other)
        )),
    }
}

/// Removes the member at `segs` (array elements are spliced out); missing is no error.
pub(crate) fn delete(doc: &mut Value, segs: &[Seg]) -> Result<(), String> {
    let Some((last, parents)) = segs.split_last() else {
        return Ok(());
    };
    match container(doc, parents)? {
        Value::Object(m) => {
            m.remove(last.as_key().as_ref());
        }
        Value::Array(a) => {
            if let Seg::Index(i) = last
                && *i < a.len()
            {
                a.remove(*i);
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn k(s: &str) -> Seg {
        Seg::Key(s.into())
    }

    #[test]
    fn parses_dots_brackets_and_quotes() {
        assert_eq!(
            parse("order.lines[0].sku").unwrap(),
            vec![k("order"), k("lines"), Seg::Index(0), k("sku")]
        );
        assert_eq!(
            parse("headers['content-type']").unwrap(),
            vec![k("headers"), k("content-type")]
        );
        assert_eq!(parse("map[\"a.b\"]").unwrap(), vec![k("map"), k("a.b")]);
        assert_eq!(parse("a[0]b").unwrap(), vec![k("a"), Seg::Index(0), k("b")]);
        assert_eq!(parse(" a.007 ").unwrap(), vec![k("a"), Seg::Index(7)]);
    }

    #[test]
    fn rejects_malformed_paths() {
        for bad in ["", "a.", "[a]", "a..b", "a[]", "a[0"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lookups_follow_js_members() {
        let v = Val::from_json(json!({"a": [1, 2, 3], "s": "h😀"}));
        assert_eq!(lookup(&v, &parse("a.length").unwrap()), Val::Num(3.0));
        assert_eq!(lookup(&v, &parse("a[1]").unwrap()), Val::Num(2.0));
        assert_eq!(lookup(&v, &parse("s.length").unwrap()), Val::Num(3.0));
        assert_eq!(lookup(&v, &parse("s[0]").unwrap()), Val::str("h"));
        assert_eq!(lookup(&v, &parse("x.y.z").unwrap()), Val::Undefined);
    }

    #[test]
    fn writes_create_intermediates_and_deletes_splice() {
        let mut doc = json!({});
        *slot(&mut doc, &parse("a.b.c").unwrap()).unwrap() = json!(1);
        assert_eq!(doc, json!({"a": {"b": {"c": 1}}}));
        let mut doc = json!({"a": 5});
        assert!(slot(&mut doc, &parse("a.b").unwrap()).is_err());
        let mut doc = json!({"l": [1, 2, 3]});
        delete(&mut doc, &parse("l[1]").unwrap()).unwrap();
        assert_eq!(doc, json!({"l": [1, 3]}));
        delete(&mut doc, &parse("missing.x").unwrap()).unwrap();
        assert_eq!(doc, json!({"l": [1, 3], "missing": {}}));
    }
}
