//! The DSL's value model (`automation-dsl.md` §1.2) and the ECMAScript conversions the
//! expression language is defined by (§4.6): ToBoolean, ToNumber, ToString, loose and strict
//! equality. Results must match JS exactly, hence `ryu-js` for Number::toString.

use serde_json::{Map, Number, Value};

/// A value during evaluation: JSON, `undefined`, or a number JSON cannot hold (NaN, ±Infinity).
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    /// JS `undefined`: a missing variable or member.
    Undefined,
    /// Any JSON value except a number.
    Json(Value),
    /// A number, NaN and ±Infinity included.
    Num(f64),
}

impl Val {
    /// Reads a JSON value (numbers become [`Val::Num`]).
    pub fn from_json(v: Value) -> Val {
        match v {
            Value::Number(n) => Val::Num(n.as_f64().unwrap_or(f64::NAN)),
            other => Val::Json(other),
        }
    }

    /// Reads an optional JSON value (`None` is `undefined`).
    pub fn from_opt(v: Option<Value>) -> Val {
        v.map_or(Val::Undefined, Val::from_json)
    }

    /// A string value.
    pub fn str(s: impl Into<String>) -> Val {
        Val::Json(Value::String(s.into()))
    }

    /// A boolean value.
    pub fn bool(b: bool) -> Val {
        Val::Json(Value::Bool(b))
    }

    /// The JSON form; `None` for `undefined`. NaN and ±Infinity become `null` (as JSON prints
    /// them).
    pub fn into_json(self) -> Option<Value> {
        match self {
            Val::Undefined => None,
            Val::Json(v) => Some(v),
            Val::Num(n) => Some(num(n)),
        }
    }

    /// The JSON form with `undefined` as `null`.
    pub fn into_json_or_null(self) -> Value {
        self.into_json().unwrap_or(Value::Null)
    }

    /// `null` or `undefined` (what `??`-like defaults test).
    pub fn is_nullish(&self) -> bool {
        matches!(self, Val::Undefined | Val::Json(Value::Null))
    }

    /// The text of a string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Val::Json(Value::String(s)) => Some(s),
            _ => None,
        }
    }

    /// The JS `typeof`-like name used in messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Val::Undefined => "undefined",
            Val::Num(_) => "Number",
            Val::Json(v) => json_type_name(v),
        }
    }

    /// ECMAScript ToBoolean.
    pub fn truthy(&self) -> bool {
        match self {
            Val::Undefined => false,
            Val::Num(n) => *n != 0.0 && !n.is_nan(),
            Val::Json(Value::Null) => false,
            Val::Json(Value::Bool(b)) => *b,
            Val::Json(Value::String(s)) => !s.is_empty(),
            Val::Json(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0 && !f.is_nan()),
            Val::Json(_) => true,
        }
    }

    /// ECMAScript ToNumber.
    pub fn to_number(&self) -> f64 {
        match self {
            Val::Undefined => f64::NAN,
            Val::Num(n) => *n,
            Val::Json(v) => json_to_number(v),
        }
    }

    /// ECMAScript ToString.
    pub fn to_js_string(&self) -> String {
        match self {
            Val::Undefined => "undefined".into(),
            Val::Num(n) => number_to_string(*n),
            Val::Json(v) => json_to_string(v),
        }
    }

    fn is_object_like(&self) -> bool {
        matches!(self, Val::Json(Value::Array(_) | Value::Object(_)))
    }

    fn is_string(&self) -> bool {
        matches!(self, Val::Json(Value::String(_)))
    }
}

/// A JSON number for `n`; NaN and ±Infinity become `null`, integral values print without `.0`.
pub fn num(n: f64) -> Value {
    if n.is_finite() && n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 {
        // Exact: |n| < 2^53.
        #[allow(clippy::cast_possible_truncation)]
        return Value::Number(Number::from(n as i64));
    }
    Number::from_f64(n).map_or(Value::Null, Value::Number)
}

/// `name → value` pairs as an object, the way HTTP repeats a name (query and form keys,
/// response headers): a name given twice or more becomes an array of its values, in order.
pub fn pairs_object(pairs: impl IntoIterator<Item = (String, Value)>) -> Map<String, Value> {
    let mut out = Map::new();
    for (key, value) in pairs {
        match out.get_mut(&key) {
            None => {
                out.insert(key, value);
            }
            Some(Value::Array(values)) => values.push(value),
            Some(first) => *first = Value::Array(vec![first.take(), value]),
        }
    }
    out
}

/// The JS `typeof`-like name of a JSON value, as error messages show it.
pub fn json_type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "Boolean",
        Value::Number(_) => "Number",
        Value::String(_) => "String",
        Value::Array(_) => "Array",
        Value::Object(_) => "Object",
    }
}

/// ECMAScript Number::toString (`7`, `3.5`, `1e+21`, `1e-7`, `NaN`, `Infinity`).
pub fn number_to_string(n: f64) -> String {
    if n == 0.0 {
        return "0".into();
    }
    let mut buf = ryu_js::Buffer::new();
    buf.format(n).to_owned()
}

fn json_to_number(v: &Value) -> f64 {
    match v {
        Value::Null => 0.0,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        Value::String(s) => string_to_number(s),
        Value::Array(_) | Value::Object(_) => string_to_number(&json_to_string(v)),
    }
}

/// ToNumber of a string: trimmed decimal (with exponent, `Infinity`) or `0x`/`0o`/`0b`
/// literal; `""` is 0; anything else NaN.
pub fn string_to_number(s: &str) -> f64 {
    let t = s.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    if t.is_empty() {
        return 0.0;
    }
    for (prefix, radix) in [
        ("0x", 16),
        ("0X", 16),
        ("0o", 8),
        ("0O", 8),
        ("0b", 2),
        ("0B", 2),
    ] {
        if let Some(digits) = t.strip_prefix(prefix) {
            if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
                return f64::NAN;
            }
            return digits.chars().fold(0.0, |acc, c| {
                acc * f64::from(radix) + f64::from(c.to_digit(radix).unwrap_or(0))
            });
        }
    }
    match t {
        "Infinity" | "+Infinity" => return f64::INFINITY,
        "-Infinity" => return f64::NEG_INFINITY,
        _ => {}
    }
    // Rust's parser also takes "inf", "nan", "infinity": JS does not.
    let body = t.strip_prefix(['+', '-']).unwrap_or(t);
    if !body.starts_with(|c: char| c.is_ascii_digit() || c == '.')
        || body
            .chars()
            .any(|c| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
    {
        return f64::NAN;
    }
    t.parse::<f64>().unwrap_or(f64::NAN)
}

/// ToString of a JSON value.
pub fn json_to_string(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => number_to_string(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => s.clone(),
        Value::Array(items) => join(items, ","),
        Value::Object(_) => "[object Object]".into(),
    }
}

/// JS `Array.prototype.join`: each item's ToString, `null` items empty, between `sep`s.
pub fn join(items: &[Value], sep: &str) -> String {
    items
        .iter()
        .map(|i| {
            if i.is_null() {
                String::new()
            } else {
                json_to_string(i)
            }
        })
        .collect::<Vec<_>>()
        .join(sep)
}

/// JS strict equality (`===`); objects and arrays are never equal (D8).
pub fn strict_eq(a: &Val, b: &Val) -> bool {
    match (a, b) {
        (Val::Undefined, Val::Undefined) => true,
        (Val::Num(x), Val::Num(y)) => x == y,
        (Val::Json(x), Val::Json(y)) => match (x, y) {
            (Value::Null, Value::Null) => true,
            (Value::Bool(p), Value::Bool(q)) => p == q,
            (Value::String(p), Value::String(q)) => p == q,
            _ => false,
        },
        _ => false,
    }
}

/// JS loose equality (`==`), with D8 for objects.
pub fn loose_eq(a: &Val, b: &Val) -> bool {
    if a.is_nullish() || b.is_nullish() {
        return a.is_nullish() && b.is_nullish();
    }
    match (a, b) {
        _ if a.is_object_like() && b.is_object_like() => false,
        (Val::Num(_), Val::Num(_)) => strict_eq(a, b),
        (Val::Json(x), Val::Json(y)) if std::mem::discriminant(x) == std::mem::discriminant(y) => {
            strict_eq(a, b)
        }
        _ if a.is_object_like() => loose_eq(&Val::str(a.to_js_string()), b),
        _ if b.is_object_like() => loose_eq(a, &Val::str(b.to_js_string())),
        // Remaining mixes of number, string and boolean compare as numbers.
        _ => {
            let (x, y) = (a.to_number(), b.to_number());
            x == y
        }
    }
}

/// `<`, `<=`, `>`, `>=`: strings by UTF-16 code units, else numbers; NaN → false.
pub fn compare(a: &Val, b: &Val) -> Option<std::cmp::Ordering> {
    if let (Some(x), Some(y)) = (a.as_str(), b.as_str()) {
        return Some(x.encode_utf16().cmp(y.encode_utf16()));
    }
    let a = if a.is_object_like() {
        Val::str(a.to_js_string())
    } else {
        a.clone()
    };
    let b = if b.is_object_like() {
        Val::str(b.to_js_string())
    } else {
        b.clone()
    };
    if let (Some(x), Some(y)) = (a.as_str(), b.as_str()) {
        return Some(x.encode_utf16().cmp(y.encode_utf16()));
    }
    a.to_number().partial_cmp(&b.to_number())
}

/// JS `+`: concatenation when either side (arrays/objects as ToString) is a string.
pub fn add(a: &Val, b: &Val) -> Val {
    if a.is_string() || b.is_string() || a.is_object_like() || b.is_object_like() {
        return Val::str(a.to_js_string() + &b.to_js_string());
    }
    Val::Num(a.to_number() + b.to_number())
}

/// How a non-string value is inserted into text (§4.3 step 4): JSON with two-space indent;
/// `undefined` and `null` as nothing.
pub fn render_in_text(v: &Val) -> String {
    match v {
        Val::Undefined | Val::Json(Value::Null) => String::new(),
        Val::Json(Value::String(s)) => s.clone(),
        Val::Num(n) if !n.is_finite() => "null".into(),
        Val::Num(n) => number_to_string(*n),
        Val::Json(other) => serde_json::to_string_pretty(other).unwrap_or_default(),
    }
}

/// The UTF-16 length of a string (JS `length`).
pub fn utf16_len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// An object from pairs.
pub fn object<I: IntoIterator<Item = (String, Value)>>(pairs: I) -> Value {
    Value::Object(pairs.into_iter().collect::<Map<_, _>>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn j(v: Value) -> Val {
        Val::from_json(v)
    }

    #[test]
    fn numbers_print_like_javascript() {
        assert_eq!(number_to_string(7.0), "7");
        assert_eq!(number_to_string(3.5), "3.5");
        assert_eq!(number_to_string(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(number_to_string(1e21), "1e+21");
        assert_eq!(number_to_string(1e-7), "1e-7");
        assert_eq!(number_to_string(-0.0), "0");
        assert_eq!(number_to_string(f64::NAN), "NaN");
        assert_eq!(number_to_string(f64::INFINITY), "Infinity");
    }

    #[test]
    fn to_number_follows_js() {
        assert_eq!(string_to_number(" 42 "), 42.0);
        assert_eq!(string_to_number(""), 0.0);
        assert_eq!(string_to_number("0x1F"), 31.0);
        assert!(string_to_number("12abc").is_nan());
        assert!(string_to_number("inf").is_nan());
        assert_eq!(string_to_number("1e3"), 1000.0);
        assert_eq!(j(json!(null)).to_number(), 0.0);
        assert!(Val::Undefined.to_number().is_nan());
        assert_eq!(j(json!([5])).to_number(), 5.0);
        assert_eq!(j(json!(true)).to_number(), 1.0);
    }

    #[test]
    fn to_boolean_and_to_string() {
        for falsy in [json!(false), json!(0), json!(""), json!(null)] {
            assert!(!j(falsy).truthy());
        }
        for truthy in [json!("0"), json!("false"), json!([]), json!({})] {
            assert!(j(truthy).truthy());
        }
        assert!(!Val::Num(f64::NAN).truthy());
        assert_eq!(j(json!([1, null, "a", [2, 3]])).to_js_string(), "1,,a,2,3");
        assert_eq!(j(json!({"a": 1})).to_js_string(), "[object Object]");
    }

    #[test]
    fn loose_and_strict_equality() {
        assert!(loose_eq(&j(json!(7)), &j(json!("7"))));
        assert!(!strict_eq(&j(json!(7)), &j(json!("7"))));
        assert!(loose_eq(&Val::Undefined, &j(json!(null))));
        assert!(!loose_eq(&j(json!(0)), &j(json!(null))));
        assert!(loose_eq(&j(json!(true)), &j(json!("1"))));
        assert!(loose_eq(&j(json!(["a"])), &j(json!("a"))));
        assert!(!loose_eq(&j(json!({})), &j(json!({}))));
        assert!(!strict_eq(&Val::Num(f64::NAN), &Val::Num(f64::NAN)));
    }

    #[test]
    fn comparison_and_addition() {
        assert_eq!(
            compare(&j(json!("10")), &j(json!("9"))),
            Some(std::cmp::Ordering::Less)
        );
        assert_eq!(
            compare(&j(json!(10)), &j(json!("9"))),
            Some(std::cmp::Ordering::Greater)
        );
        assert_eq!(compare(&Val::Num(f64::NAN), &j(json!(1))), None);
        assert_eq!(add(&j(json!("7")), &j(json!(1))), Val::str("71"));
        assert_eq!(add(&j(json!(7)), &j(json!(true))), Val::Num(8.0));
    }

    #[test]
    fn rendering_in_text() {
        assert_eq!(render_in_text(&j(json!({"a": 1}))), "{\n  \"a\": 1\n}");
        assert_eq!(render_in_text(&Val::Undefined), "");
        assert_eq!(render_in_text(&j(json!(42))), "42");
        assert_eq!(num(3.0), json!(3));
        assert_eq!(num(f64::NAN), Value::Null);
    }
}
