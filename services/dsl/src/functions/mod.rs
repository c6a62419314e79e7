//! Expression functions (`automation-dsl.md` §4.7). Wrong argument types and unknown names
//! raise `InvalidExpressionSyntax`.

mod newer;

use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};
use serde_json::Value;

use crate::error::DslError;
use crate::eval::Env;
use crate::path;
use crate::value::{Val, json_to_string, utf16_len};

fn bad(name: &str, what: &str) -> DslError {
    DslError::new("InvalidExpressionSyntax", format!("{name}(): {what}"))
}

/// Calls function `name` with evaluated `args`; `field` is the `.field` after the call.
pub fn call(
    name: &str,
    args: Vec<Val>,
    field: Option<&str>,
    env: &mut dyn Env,
) -> Result<Val, DslError> {
    let arg = |i: usize| args.get(i).cloned().unwrap_or(Val::Undefined);
    match name {
        "rand" => {
            let r = env.random();
            match (args.first(), args.get(1)) {
                (None, _) => Ok(Val::Num(r)),
                (Some(min), max) => {
                    let min = min.to_number();
                    let max = max.map_or(1.0, Val::to_number);
                    if min == 0.0 && max == 1.0 {
                        Ok(Val::Num(r))
                    } else {
                        Ok(Val::Num((r * (max - min) + min).floor()))
                    }
                }
            }
        }
        "round" | "floor" | "ceil" => {
            let n = match arg(0) {
                Val::Num(n) => n,
                _ => return Err(bad(name, "the first argument must be a number")),
            };
            let d = match arg(1) {
                Val::Undefined => 0.0,
                Val::Num(d) => d,
                _ => return Err(bad(name, "the precision must be a number")),
            };
            let scale = 10f64.powf(d);
            let x = n * scale;
            let r = match name {
                // JS Math.round: halves go up.
                "round" => (x + 0.5).floor(),
                "floor" => x.floor(),
                _ => x.ceil(),
            };
            Ok(Val::Num(r / scale))
        }
        "split" => match (arg(0).as_str(), arg(1).as_str()) {
            (Some(s), Some("")) => Ok(Val::Json(Value::Array(
                s.encode_utf16()
                    .map(|u| Value::String(String::from_utf16_lossy(&[u])))
                    .collect(),
            ))),
            (Some(s), Some(sep)) => Ok(Val::Json(Value::Array(
                s.split(sep).map(|p| Value::String(p.into())).collect(),
            ))),
            _ => Err(bad(name, "takes two strings")),
        },
        "join" => match (arg(0), arg(1).as_str()) {
            (Val::Json(Value::Array(items)), Some(sep)) => {
                Ok(Val::str(crate::value::join(&items, sep)))
            }
            _ => Err(bad(name, "takes an array and a string")),
        },
        "json" => match arg(0) {
            Val::Json(Value::String(s)) => serde_json::from_str::<Value>(&s)
                .map(Val::from_json)
                .map_err(|e| bad(name, &format!("invalid JSON: {e}"))),
            Val::Undefined => Ok(Val::Undefined),
            other => Ok(Val::str(
                serde_json::to_string(&other.into_json_or_null()).unwrap_or_default(),
            )),
        },
        "replace" => match (arg(0).as_str(), arg(1).as_str(), arg(2).as_str()) {
            (Some(s), Some(pat), Some(with)) => Ok(Val::str(replace_first(s, pat, with))),
            _ => Err(bad(name, "takes three strings")),
        },
        "slice" => slice(&arg(0), &arg(1), &arg(2))
            .ok_or_else(|| bad(name, "takes an array or string and numbers")),
        "isArray" | "isObject" => {
            let mut v = arg(0);
            if let Some(s) = v.as_str().filter(|s| !s.is_empty())
                && let Ok(segs) = path::parse(s)
            {
                v = env.lookup(&segs)?;
            }
            Ok(Val::bool(match name {
                "isArray" => matches!(v, Val::Json(Value::Array(_))),
                _ => matches!(v, Val::Json(Value::Object(_) | Value::Null)),
            }))
        }
        "date" if args.len() <= 1 => Ok(date_field(parse_date(&arg(0)), field)),
        "date" => {
            let Some(format) = arg(1).as_str().map(str::to_owned) else {
                return Err(bad(name, "the format must be a string"));
            };
            let text = |v: Val| match v {
                Val::Undefined | Val::Json(Value::Null) => Ok(None),
                other => other
                    .as_str()
                    .map(|s| Some(s.to_owned()))
                    .ok_or_else(|| bad(name, "locale and time zone are strings")),
            };
            let (locale, tz) = (text(arg(2))?, text(arg(3))?);
            Ok(parse_date(&arg(0))
                .and_then(|d| crate::datefmt::format(d, &format, locale.as_deref(), tz.as_deref()))
                .map_or(Val::Undefined, Val::str))
        }
        "jsonmatch" => {
            let Val::Json(Value::Object(query)) = arg(1) else {
                return Err(bad(name, "the query must be an object"));
            };
            match arg(0) {
                Val::Json(doc @ Value::Object(_)) => crate::jsonmatch::matches(&doc, &query)
                    .map(Val::bool)
                    .map_err(|e| bad(name, &e.0)),
                _ => Ok(Val::bool(false)),
            }
        }
        "URLSearchParams" => Ok(url_search_params(&arg(0), field)),
        _ => newer::call(name, &args, env).unwrap_or_else(|| {
            Err(DslError::new(
                "InvalidExpressionSyntax",
                format!("unknown or unsupported function {name}()"),
            ))
        }),
    }
}

/// Replaces the first literal occurrence of `pat`; `with` honours `$$`, `$&`, `` $` ``, `$'`.
fn replace_first(s: &str, pat: &str, with: &str) -> String {
    let Some(at) = s.find(pat) else {
        return s.to_owned();
    };
    let (before, after) = (&s[..at], &s[at + pat.len()..]);
    let mut rep = String::new();
    let mut chars = with.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('$', Some('$')) => {
                rep.push('$');
                chars.next();
            }
            ('$', Some('&')) => {
                rep.push_str(pat);
                chars.next();
            }
            ('$', Some('`')) => {
                rep.push_str(before);
                chars.next();
            }
            ('$', Some('\'')) => {
                rep.push_str(after);
                chars.next();
            }
            _ => rep.push(c),
        }
    }
    format!("{before}{rep}{after}")
}

/// JS `slice` bounds: negative counts from the end.
fn bounds(len: usize, start: f64, end: Option<f64>) -> (usize, usize) {
    let clamp = |x: f64| -> usize {
        let l = len as f64;
        let v = if x < 0.0 { (l + x).max(0.0) } else { x.min(l) };
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        {
            v.trunc() as usize
        }
    };
    let s = clamp(start);
    let e = end.map_or(len, clamp);
    (s, e.max(s))
}

fn slice(v: &Val, start: &Val, end: &Val) -> Option<Val> {
    let Val::Num(s) = start else { return None };
    let e = match end {
        Val::Undefined => None,
        Val::Num(e) => Some(*e),
        _ => return None,
    };
    match v {
        Val::Json(Value::Array(a)) => {
            let (s, e) = bounds(a.len(), *s, e);
            Some(Val::Json(Value::Array(a[s..e].to_vec())))
        }
        Val::Json(Value::String(text)) => {
            let units: Vec<u16> = text.encode_utf16().collect();
            let (s, e) = bounds(utf16_len(text), *s, e);
            Some(Val::str(String::from_utf16_lossy(&units[s..e])))
        }
        _ => None,
    }
}

/// `date(x)`: numbers are epoch ms, strings ISO-8601 or RFC 2822 (no offset = UTC, D9).
fn parse_date(v: &Val) -> Option<DateTime<Utc>> {
    match v {
        Val::Num(ms) if ms.is_finite() =>
        {
            #[allow(clippy::cast_possible_truncation)]
            DateTime::from_timestamp_millis(*ms as i64)
        }
        Val::Json(Value::Null) => DateTime::from_timestamp_millis(0),
        Val::Json(Value::String(s)) => {
            let s = s.trim();
            DateTime::parse_from_rfc3339(s)
                .or_else(|_| DateTime::parse_from_rfc2822(s))
                .map(|d| d.with_timezone(&Utc))
                .ok()
                .or_else(|| {
                    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
                        .or_else(|_| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M"))
                        .ok()
                        .or_else(|| {
                            chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                                .ok()
                                .and_then(|d| d.and_hms_opt(0, 0, 0))
                        })
                        .map(|n| n.and_utc())
                })
        }
        _ => None,
    }
}

fn date_field(d: Option<DateTime<Utc>>, field: Option<&str>) -> Val {
    let Some(d) = d else {
        return match field {
            Some("iso") => Val::Undefined,
            None
            | Some("year" | "month" | "date" | "day" | "hour" | "minute" | "second" | "ts") => {
                Val::Num(f64::NAN)
            }
            Some(_) => Val::Undefined,
        };
    };
    let n = |x: u32| Val::Num(f64::from(x));
    match field {
        None | Some("ts") => Val::Num(d.timestamp_millis() as f64),
        Some("year") => Val::Num(f64::from(d.year())),
        Some("month") => n(d.month()),
        Some("date") => n(d.day()),
        Some("day") => n(d.weekday().num_days_from_sunday()),
        Some("hour") => n(d.hour()),
        Some("minute") => n(d.minute()),
        Some("second") => n(d.second()),
        Some("iso") => Val::str(d.to_rfc3339_opts(SecondsFormat::Millis, true)),
        Some(_) => Val::Undefined,
    }
}

/// ISO-8601 UTC with milliseconds of an epoch time in ms (`run.date`).
pub fn iso_from_millis(ms: i64) -> Option<String> {
    DateTime::from_timestamp_millis(ms).map(|d| d.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// `application/x-www-form-urlencoded` escaping (space → `+`).
fn form_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                Some(v) => {
                    out.push(v);
                    i += 2;
                }
                None => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn url_search_params(x: &Val, field: Option<&str>) -> Val {
    match (field, x) {
        (Some("asString"), Val::Json(Value::String(s))) => {
            let s = s.strip_prefix('?').unwrap_or(s);
            let pairs: Vec<String> = s
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    format!(
                        "{}={}",
                        form_encode(&form_decode(k)),
                        form_encode(&form_decode(v))
                    )
                })
                .collect();
            Val::str(pairs.join("&"))
        }
        (Some("asString"), Val::Json(Value::Object(m))) => Val::str(
            m.iter()
                .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(&json_to_string(v))))
                .collect::<Vec<_>>()
                .join("&"),
        ),
        (Some("asJSON"), Val::Json(Value::String(s))) => {
            let s = s.strip_prefix('?').unwrap_or(s);
            let mut out = serde_json::Map::new();
            for p in s.split('&').filter(|p| !p.is_empty()) {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                out.insert(form_decode(k), Value::String(form_decode(v)));
            }
            Val::Json(Value::Object(out))
        }
        _ => Val::Undefined,
    }
}

#[cfg(test)]
mod tests {
    use crate::DslError;
    use crate::eval::{Env, eval};
    use crate::expr::parse;
    use crate::path::Seg;
    use crate::value::Val;
    use serde_json::{Value, json};

    struct Vars(Value);

    impl Env for Vars {
        fn lookup(&mut self, segs: &[Seg]) -> Result<Val, DslError> {
            Ok(crate::path::lookup(&Val::Json(self.0.clone()), segs))
        }
        fn random(&mut self) -> f64 {
            0.25
        }
    }

    fn ev(src: &str) -> Value {
        let mut env = Vars(
            json!({"tags": ["a", "b"], "obj": {"k": 1}, "when": "2024-03-05T14:30:00.000Z",
            "p": {"city": "New York", "n": 2}}),
        );
        eval(&parse(src).unwrap(), &mut env)
            .unwrap_or_else(|e| panic!("{src}: {e}"))
            .into_json_or_null()
    }

    fn fails(src: &str) -> bool {
        let mut env = Vars(json!({}));
        parse(src)
            .map(|e| eval(&e, &mut env).is_err())
            .unwrap_or(true)
    }

    #[test]
    fn rounding() {
        assert_eq!(ev("round(2.71828, 2)"), json!(2.72));
        assert_eq!(ev("floor(9.99)"), json!(9));
        assert_eq!(ev("ceil(1.01, 1)"), json!(1.1));
        assert_eq!(ev("round(-2.5)"), json!(-2));
        assert!(fails("round(\"a\")"));
    }

    #[test]
    fn strings_and_lists() {
        assert_eq!(ev("split(\"x,y\", \",\")"), json!(["x", "y"]));
        assert_eq!(ev("split(\"ab\", \"\")"), json!(["a", "b"]));
        assert_eq!(ev("join({{tags}}, \"+\")"), json!("a+b"));
        assert_eq!(ev("replace(\"a-b-c\", \"-\", \"+\")"), json!("a+b-c"));
        assert_eq!(ev("replace(\"a-b\", \"-\", \"[$&]\")"), json!("a[-]b"));
        assert_eq!(ev("slice({{tags}}, -1)"), json!(["b"]));
        assert_eq!(ev("slice(\"hello\", 1, 3)"), json!("el"));
        assert!(fails("split(1, \",\")"));
    }

    #[test]
    fn json_and_types() {
        assert_eq!(ev("json('{\"a\":1}')"), json!({"a": 1}));
        assert_eq!(ev("json({{obj}})"), json!("{\"k\":1}"));
        assert!(fails("json('{')"));
        assert_eq!(ev("isArray({{tags}})"), json!(true));
        assert_eq!(ev("isObject({{tags}})"), json!(false));
        assert_eq!(ev("isArray(\"tags\")"), json!(true));
        assert_eq!(ev("isObject(null)"), json!(true));
        assert!(fails("nosuchfunction(1)"));
    }

    #[test]
    fn dates() {
        assert_eq!(ev("date({{when}}).hour"), json!(14));
        assert_eq!(ev("date({{when}}).day"), json!(2));
        assert_eq!(ev("date({{when}}).month"), json!(3));
        assert_eq!(ev("date({{when}})"), json!(1709649000000_i64));
        assert_eq!(ev("date(0).iso"), json!("1970-01-01T00:00:00.000Z"));
        assert_eq!(ev("date(\"nope\").hour"), Value::Null);
    }

    #[test]
    fn random_and_url_params() {
        assert_eq!(ev("rand()"), json!(0.25));
        assert_eq!(ev("rand(10, 20)"), json!(12));
        assert_eq!(
            ev("URLSearchParams(\"a=1&b=x%20y\").asJSON"),
            json!({"a": "1", "b": "x y"})
        );
        assert_eq!(
            ev("URLSearchParams({{p}}).asString"),
            json!("city=New+York&n=2")
        );
    }
}
