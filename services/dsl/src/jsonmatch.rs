//! `jsonmatch(obj, query)` (`automation-dsl.md` §4.7): MongoDB query semantics over JSON —
//! implicit equality (deep for objects, element match on arrays), dot paths, and the operators
//! `$eq $ne $gt $gte $lt $lte $in $nin $all $size $exists $regex $options $elemMatch $mod $not
//! $and $or $nor`.

use std::cmp::Ordering;

use regex::RegexBuilder;
use serde_json::{Map, Value};

use crate::error::QueryError;

/// Whether `doc` matches `query` (both objects; the caller checked `query`).
pub fn matches(doc: &Value, query: &Map<String, Value>) -> Result<bool, QueryError> {
    query_matches(doc, query).map_err(QueryError)
}

fn query_matches(doc: &Value, query: &Map<String, Value>) -> Result<bool, String> {
    for (key, cond) in query {
        let ok = match key.as_str() {
            "$and" => list(cond, key)?.iter().try_fold(true, |acc, q| {
                Ok::<_, String>(acc && query_matches(doc, sub(q, key)?)?)
            })?,
            "$or" => list(cond, key)?.iter().try_fold(false, |acc, q| {
                Ok::<_, String>(acc || query_matches(doc, sub(q, key)?)?)
            })?,
            "$nor" => !list(cond, key)?.iter().try_fold(false, |acc, q| {
                Ok::<_, String>(acc || query_matches(doc, sub(q, key)?)?)
            })?,
            k if k.starts_with('$') => return Err(format!("unknown top-level operator {k}")),
            path => {
                let values = resolve(doc, &path.split('.').collect::<Vec<_>>());
                field(&values, cond)?
            }
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

fn list<'a>(v: &'a Value, op: &str) -> Result<&'a Vec<Value>, String> {
    v.as_array().ok_or_else(|| format!("{op} takes an array"))
}

fn sub<'a>(v: &'a Value, op: &str) -> Result<&'a Map<String, Value>, String> {
    v.as_object()
        .ok_or_else(|| format!("{op} takes an array of objects"))
}

/// The values a dot path reaches; arrays along the way fan out (`items.sku` on a list).
fn resolve<'a>(doc: &'a Value, path: &[&str]) -> Vec<Option<&'a Value>> {
    let Some((first, rest)) = path.split_first() else {
        return vec![Some(doc)];
    };
    match doc {
        Value::Object(m) => match m.get(*first) {
            Some(v) => resolve(v, rest),
            None => vec![None],
        },
        Value::Array(items) => {
            if let Ok(i) = first.parse::<usize>() {
                return items
                    .get(i)
                    .map_or_else(|| vec![None], |v| resolve(v, rest));
            }
            let out: Vec<_> = items
                .iter()
                .filter(|v| v.is_object())
                .flat_map(|v| resolve(v, path))
                .collect();
            if out.is_empty() { vec![None] } else { out }
        }
        _ => vec![None],
    }
}

fn is_operator_object(cond: &Value) -> bool {
    cond.as_object()
        .is_some_and(|m| !m.is_empty() && m.keys().all(|k| k.starts_with('$')))
}

/// A field condition against the values its path reached.
fn field(values: &[Option<&Value>], cond: &Value) -> Result<bool, String> {
    if !is_operator_object(cond) {
        return Ok(values.iter().any(|v| equals(*v, cond)));
    }
    let Some(ops) = cond.as_object() else {
        return Ok(false);
    };
    for (op, arg) in ops {
        let ok = match op.as_str() {
            "$eq" => values.iter().any(|v| equals(*v, arg)),
            "$ne" => !values.iter().any(|v| equals(*v, arg)),
            "$gt" | "$gte" | "$lt" | "$lte" => values.iter().flatten().any(|v| {
                each(v).any(|x| {
                    compare(x, arg).is_some_and(|o| match op.as_str() {
                        "$gt" => o == Ordering::Greater,
                        "$gte" => o != Ordering::Less,
                        "$lt" => o == Ordering::Less,
                        _ => o != Ordering::Greater,
                    })
                })
            }),
            "$in" => {
                let set = list(arg, op)?;
                values.iter().any(|v| set.iter().any(|s| equals(*v, s)))
            }
            "$nin" => {
                let set = list(arg, op)?;
                !values.iter().any(|v| set.iter().any(|s| equals(*v, s)))
            }
            "$all" => {
                let want = list(arg, op)?;
                values
                    .iter()
                    .flatten()
                    .any(|v| want.iter().all(|w| equals(Some(v), w)))
            }
            "$size" => values.iter().flatten().any(|v| {
                v.as_array()
                    .is_some_and(|a| arg.as_f64() == Some(a.len() as f64))
            }),
            "$exists" => {
                let want =
                    !matches!(arg, Value::Bool(false) | Value::Null) && arg.as_f64() != Some(0.0);
                values.iter().any(Option::is_some) == want
            }
            "$regex" => {
                let pattern = arg.as_str().ok_or("$regex takes a string")?;
                let flags = ops.get("$options").and_then(Value::as_str).unwrap_or("");
                let re = RegexBuilder::new(pattern)
                    .case_insensitive(flags.contains('i'))
                    .multi_line(flags.contains('m'))
                    .dot_matches_new_line(flags.contains('s'))
                    .ignore_whitespace(flags.contains('x'))
                    .build()
                    .map_err(|e| format!("$regex: {e}"))?;
                values
                    .iter()
                    .flatten()
                    .any(|v| each(v).any(|x| x.as_str().is_some_and(|s| re.is_match(s))))
            }
            "$options" => true,
            "$elemMatch" => {
                let q = sub(arg, op)?;
                let mut any = false;
                for v in values.iter().flatten() {
                    for item in v.as_array().into_iter().flatten() {
                        let hit = if is_operator_object(arg) {
                            field(&[Some(item)], arg)?
                        } else {
                            query_matches(item, q)?
                        };
                        any |= hit;
                    }
                }
                any
            }
            "$mod" => {
                let [d, r] = list(arg, op)?.as_slice() else {
                    return Err("$mod takes [divisor, remainder]".into());
                };
                let (d, r) = (
                    d.as_f64().ok_or("$mod divisor")?,
                    r.as_f64().ok_or("$mod remainder")?,
                );
                if d == 0.0 {
                    return Err("$mod by zero".into());
                }
                values.iter().flatten().any(|v| {
                    each(v).any(|x| {
                        x.as_f64()
                            .is_some_and(|n| (n.trunc() % d.trunc()) == r.trunc())
                    })
                })
            }
            "$not" => !field(values, arg)?,
            other => return Err(format!("unknown operator {other}")),
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A value, or the elements of an array value.
fn each(v: &Value) -> Box<dyn Iterator<Item = &Value> + '_> {
    match v {
        Value::Array(items) => Box::new(items.iter()),
        other => Box::new(std::iter::once(other)),
    }
}

/// Implicit / `$eq` equality: deep; an array matches when equal or containing the value;
/// `null` matches a missing field.
fn equals(v: Option<&Value>, want: &Value) -> bool {
    match v {
        None => want.is_null(),
        Some(v) => {
            same(v, want)
                || v.as_array()
                    .is_some_and(|a| a.iter().any(|x| same(x, want)))
        }
    }
}

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// Order between values of the same kind (numbers, strings); other pairs do not compare.
fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.encode_utf16().cmp(y.encode_utf16())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(doc: Value, q: Value) -> bool {
        matches(&doc, q.as_object().unwrap()).unwrap()
    }

    #[test]
    fn mongo_operators() {
        let doc = json!({"k": 1, "name": "Ada", "tags": ["a", "b"], "addr": {"city": "Paris"},
            "items": [{"sku": "A1", "qty": 2}, {"sku": "B2", "qty": 5}]});
        assert!(m(doc.clone(), json!({"k": {"$gt": 0}})));
        assert!(m(doc.clone(), json!({"k": 1, "addr.city": "Paris"})));
        assert!(
            m(doc.clone(), json!({"addr": {"city": "Paris"}})),
            "deep equality"
        );
        assert!(m(doc.clone(), json!({"tags": "a"})), "element match");
        assert!(
            m(doc.clone(), json!({"items.sku": "B2"})),
            "paths fan out over arrays"
        );
        assert!(m(
            doc.clone(),
            json!({"k": {"$gte": 1, "$lte": 1, "$ne": 2, "$in": [1, 3], "$nin": [5]}})
        ));
        assert!(!m(doc.clone(), json!({"k": {"$lt": 1}})));
        assert!(m(
            doc.clone(),
            json!({"tags": {"$all": ["b", "a"], "$size": 2}})
        ));
        assert!(m(
            doc.clone(),
            json!({"missing": {"$exists": false}, "k": {"$exists": true}})
        ));
        assert!(m(
            doc.clone(),
            json!({"name": {"$regex": "^ad", "$options": "i"}})
        ));
        assert!(m(
            doc.clone(),
            json!({"items": {"$elemMatch": {"sku": "A1", "qty": {"$gt": 1}}}})
        ));
        assert!(!m(
            doc.clone(),
            json!({"items": {"$elemMatch": {"sku": "A1", "qty": {"$gt": 2}}}})
        ));
        assert!(m(
            doc.clone(),
            json!({"k": {"$mod": [2, 1]}, "name": {"$not": {"$regex": "^B"}}})
        ));
        assert!(m(
            doc.clone(),
            json!({"$or": [{"k": 2}, {"name": "Ada"}], "$and": [{"k": 1}], "$nor": [{"k": 3}]})
        ));
        assert!(m(doc.clone(), json!({"missing": null})));
        assert!(matches(&doc, json!({"k": {"$bogus": 1}}).as_object().unwrap()).is_err());
    }
}
