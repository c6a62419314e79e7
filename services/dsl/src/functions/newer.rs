//! The functions of the newer Prisme.ai runtime (`docs/dsl.md`, "Functions"): case, numbers,
//! `truncate`, `deepmerge`, `base64`, `uuid` and the type tests `isString` / `isNumber`.

use base64::Engine as _;
use serde_json::Value;

use super::bad;
use crate::error::DslError;
use crate::eval::Env;
use crate::value::Val;

/// Calls `name` if it is one of these functions; `None` for any other name.
pub(super) fn call(name: &str, args: &[Val], env: &mut dyn Env) -> Option<Result<Val, DslError>> {
    let arg = |i: usize| args.get(i).unwrap_or(&Val::Undefined);
    Some(match name {
        "lower" | "upper" => match arg(0).as_str() {
            Some(s) if name == "lower" => Ok(Val::str(s.to_lowercase())),
            Some(s) => Ok(Val::str(s.to_uppercase())),
            None => Err(bad(name, "takes a string")),
        },
        "number" => Ok(Val::Num(arg(0).to_number())),
        "min" | "max" => Ok(Val::Num(extreme(name == "min", args))),
        "truncate" => truncate(arg(0), arg(1), arg(2)).ok_or_else(|| {
            bad(
                name,
                "takes a string, a length (a number) and an optional ending string",
            )
        }),
        "deepmerge" => Ok(args
            .iter()
            .filter_map(|a| a.clone().into_json())
            .reduce(deepmerge)
            .map_or(Val::Undefined, Val::from_json)),
        "base64" => match arg(0).as_str() {
            Some(s) => Ok(Val::str(
                base64::engine::general_purpose::STANDARD.encode(s.as_bytes()),
            )),
            None => Err(bad(name, "takes a string")),
        },
        "uuid" => Ok(Val::str(uuid_v4(env))),
        "isString" => Ok(Val::bool(matches!(arg(0), Val::Json(Value::String(_))))),
        "isNumber" => Ok(Val::bool(matches!(arg(0), Val::Num(_)))),
        _ => return None,
    })
}

/// JS `Math.min(...xs)` / `Math.max(...xs)` over ToNumber of each argument, or of the elements
/// of a single array argument: NaN if any is NaN, ±Infinity without any.
fn extreme(min: bool, args: &[Val]) -> f64 {
    let numbers: Vec<f64> = match args {
        [Val::Json(Value::Array(items))] => items
            .iter()
            .map(|v| Val::from_json(v.clone()).to_number())
            .collect(),
        _ => args.iter().map(Val::to_number).collect(),
    };
    let start = if min {
        f64::INFINITY
    } else {
        f64::NEG_INFINITY
    };
    numbers.into_iter().fold(start, |acc, n| match () {
        _ if acc.is_nan() || n.is_nan() => f64::NAN,
        _ if min => acc.min(n),
        _ => acc.max(n),
    })
}

/// `text` cut to `length` UTF-16 code units followed by `ending` (default `...`) when longer;
/// unchanged otherwise.
fn truncate(text: &Val, length: &Val, ending: &Val) -> Option<Val> {
    let text = text.as_str()?;
    let Val::Num(length) = length else {
        return None;
    };
    let ending = match ending {
        Val::Undefined => "...",
        other => other.as_str()?,
    };
    let limit = if length.is_nan() || *length < 0.0 {
        0
    } else {
        length.floor() as usize
    };
    let mut units = 0;
    let cut = text.char_indices().find_map(|(at, c)| {
        units += c.len_utf16();
        (units > limit).then_some(at)
    });
    Some(match cut {
        None => Val::str(text),
        Some(at) => Val::str(format!("{}{ending}", &text[..at])),
    })
}

/// The npm `deepmerge` of two values: objects merged member by member (recursively, `b`'s
/// members win), arrays concatenated, anything else replaced by `b`.
fn deepmerge(a: Value, b: Value) -> Value {
    match (a, b) {
        (Value::Object(mut a), Value::Object(b)) => {
            for (key, value) in b {
                let merged = match a.remove(&key) {
                    Some(old) => deepmerge(old, value),
                    None => value,
                };
                a.insert(key, merged);
            }
            Value::Object(a)
        }
        (Value::Array(mut a), Value::Array(b)) => {
            a.extend(b);
            Value::Array(a)
        }
        (_, b) => b,
    }
}

/// A random (version 4) UUID from the run's random source.
fn uuid_v4(env: &mut dyn Env) -> String {
    let mut bytes = [0u8; 16];
    for chunk in bytes.chunks_mut(4) {
        // random() is a double in [0, 1): 32 of its bits per call.
        let word = (env.random() * 4_294_967_296.0) as u32;
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deepmerge_merges_objects_and_concatenates_arrays() {
        let a = json!({"a": {"x": 1, "l": [1]}, "b": 1});
        let b = json!({"a": {"y": 2, "l": [2]}, "b": {"z": 3}});
        assert_eq!(
            deepmerge(a, b),
            json!({"a": {"x": 1, "l": [1, 2], "y": 2}, "b": {"z": 3}})
        );
        assert_eq!(deepmerge(json!([1]), json!("x")), json!("x"));
    }

    #[test]
    fn truncate_counts_utf16_units_and_keeps_short_text() {
        let n = |x: f64| Val::Num(x);
        assert_eq!(
            truncate(&Val::str("hello world"), &n(5.0), &Val::Undefined),
            Some(Val::str("hello..."))
        );
        assert_eq!(
            truncate(&Val::str("hello"), &n(5.0), &Val::str("…")),
            Some(Val::str("hello"))
        );
        assert_eq!(
            truncate(&Val::str("😀😀"), &n(3.0), &Val::str("")),
            Some(Val::str("😀"))
        );
        assert_eq!(truncate(&Val::Num(1.0), &n(3.0), &Val::Undefined), None);
    }

    #[test]
    fn min_and_max_follow_math_min_and_max() {
        assert_eq!(extreme(true, &[Val::Num(3.0), Val::str("2")]), 2.0);
        assert_eq!(
            extreme(false, &[Val::Json(json!([1, 9, 4]))]),
            9.0,
            "a single array is spread"
        );
        assert!(extreme(true, &[Val::Num(1.0), Val::str("x")]).is_nan());
        assert_eq!(extreme(true, &[]), f64::INFINITY);
    }
}
