//! Evaluation of expressions (`automation-dsl.md` §4.6–4.7) against the run's scopes.

use regex::Regex;
use serde_json::Value;

use crate::error::DslError;
use crate::expr::{Expr, Op, PathSeg, RegexBody};
use crate::path::Seg;
use crate::value::{Val, add, compare, json_to_string, loose_eq, strict_eq, string_to_number};

/// What expressions read: variables, the clock and randomness.
pub trait Env {
    /// The value at a variable path (first segment = scope or local name).
    fn lookup(&mut self, segs: &[Seg]) -> Result<Val, DslError>;
    /// A float in [0, 1).
    fn random(&mut self) -> f64;
}

fn syntax(message: impl Into<String>) -> DslError {
    DslError::new("InvalidExpressionSyntax", message)
}

/// Evaluates `e`.
pub fn eval(e: &Expr, env: &mut dyn Env) -> Result<Val, DslError> {
    match e {
        Expr::Lit(v) => Ok(Val::from_json(v.clone())),
        Expr::Undefined => Ok(Val::Undefined),
        Expr::Var(segs) => {
            let segs = resolve_path(segs, env)?;
            env.lookup(&segs)
        }
        Expr::Not(inner) => Ok(Val::bool(!eval(inner, env)?.truthy())),
        Expr::Exists(inner, neg) => Ok(Val::bool(eval(inner, env)?.is_nullish() == *neg)),
        Expr::Regex(left, body, neg) => {
            let subject = eval(left, env)?.to_js_string();
            let pattern = match body {
                RegexBody::Text(t) => t.clone(),
                RegexBody::Var(segs) => {
                    let segs = resolve_path(segs, env)?;
                    env.lookup(&segs)?.to_js_string()
                }
            };
            Ok(Val::bool(
                regex_literal(&pattern)?.is_match(&subject) != *neg,
            ))
        }
        Expr::Bin(op, l, r) => {
            // Both sides are always evaluated (§4.5).
            let (a, b) = (eval(l, env)?, eval(r, env)?);
            binary(*op, a, b)
        }
        Expr::Call(name, args, field) => {
            let args = args
                .iter()
                .map(|a| eval(a, env))
                .collect::<Result<Vec<_>, _>>()?;
            crate::functions::call(name, args, field.as_deref(), env)
        }
    }
}

/// The path of a variable with its `[expr]` segments evaluated.
pub fn resolve_path(segs: &[PathSeg], env: &mut dyn Env) -> Result<Vec<Seg>, DslError> {
    segs.iter()
        .map(|s| match s {
            PathSeg::Name(n) => Ok(Seg::from_text(n)),
            PathSeg::Index(e) => Ok(key_of(&eval(e, env)?)),
        })
        .collect()
}

/// A computed key: non-negative integers index arrays, anything else is its ToString.
pub fn key_of(v: &Val) -> Seg {
    match v {
        Val::Num(n) if *n >= 0.0 && n.fract() == 0.0 && *n < 1e15 =>
        {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            Seg::Index(*n as usize)
        }
        other => Seg::from_text(&other.to_js_string()),
    }
}

fn binary(op: Op, a: Val, b: Val) -> Result<Val, DslError> {
    use std::cmp::Ordering::{Equal, Greater, Less};
    Ok(match op {
        Op::And => {
            if a.truthy() {
                b
            } else {
                a
            }
        }
        Op::Or => {
            if a.truthy() {
                a
            } else {
                b
            }
        }
        Op::LooseEq => Val::bool(loose_eq(&a, &b)),
        Op::LooseNe => Val::bool(!loose_eq(&a, &b)),
        Op::StrictEq => Val::bool(strict_eq(&a, &b)),
        Op::StrictNe => Val::bool(!strict_eq(&a, &b)),
        Op::Matches => Val::bool(matches(&a, &b)?),
        Op::NotMatches => Val::bool(!matches(&a, &b)?),
        Op::In => Val::bool(is_in(&a, &b)),
        Op::NotIn => Val::bool(!is_in(&a, &b)),
        Op::Lt => Val::bool(compare(&a, &b) == Some(Less)),
        Op::Le => Val::bool(matches!(compare(&a, &b), Some(Less | Equal))),
        Op::Gt => Val::bool(compare(&a, &b) == Some(Greater)),
        Op::Ge => Val::bool(matches!(compare(&a, &b), Some(Greater | Equal))),
        Op::Add => add(&a, &b),
        Op::Sub => Val::Num(a.to_number() - b.to_number()),
        Op::Mul => Val::Num(a.to_number() * b.to_number()),
        Op::Div => Val::Num(a.to_number() / b.to_number()),
        // Rust's `%` on f64 is the JS remainder (sign of the dividend).
        Op::Rem => Val::Num(a.to_number() % b.to_number()),
    })
}

/// Compiles a regex literal: `/pattern/flags` or a bare pattern (§4.6 `matches`).
pub fn regex_literal(text: &str) -> Result<Regex, DslError> {
    if let Some(rest) = text.strip_prefix('/')
        && let Some(end) = rest.rfind('/')
    {
        let (pattern, flags) = (&rest[..end], &rest[end + 1..]);
        if flags.chars().all(|c| "gimsuy".contains(c)) {
            let inline: String = flags.chars().filter(|c| "ims".contains(*c)).collect();
            let full = if inline.is_empty() {
                pattern.to_owned()
            } else {
                format!("(?{inline}){pattern}")
            };
            return compile_regex(&full);
        }
    }
    compile_regex(text)
}

/// Patterns compiled per thread (the interpreter component has one thread per run): a
/// `matches` inside a loop, or the same pattern in several expressions, compiles once.
const REGEX_CACHE: usize = 64;

thread_local! {
    static REGEXES: std::cell::RefCell<std::collections::HashMap<String, Regex>> = std::cell::RefCell::default();
}

fn compile_regex(pattern: &str) -> Result<Regex, DslError> {
    if let Some(re) = REGEXES.with_borrow(|c| c.get(pattern).cloned()) {
        return Ok(re);
    }
    let re = regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| syntax(format!("invalid regex {pattern:?}: {e}")))?;
    REGEXES.with_borrow_mut(|c| {
        if c.len() >= REGEX_CACHE {
            c.clear();
        }
        c.insert(pattern.to_owned(), re.clone());
    });
    Ok(re)
}

fn matches(left: &Val, right: &Val) -> Result<bool, DslError> {
    let subject = left.to_js_string();
    match right {
        Val::Json(Value::Array(items)) if items.len() >= 2 => {
            for item in items {
                if compile_regex(&json_to_string(item))?.is_match(&subject) {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Val::Json(Value::Array(items)) if items.len() == 1 => {
            Ok(regex_literal(&json_to_string(&items[0]))?.is_match(&subject))
        }
        Val::Json(Value::Array(_)) => Ok(false),
        Val::Undefined => Ok(true),
        other => Ok(compile_regex(&other.to_js_string())?.is_match(&subject)),
    }
}

/// JS `parseInt` of a string, for `in` on comma lists: the integer prefix, or NaN.
fn parse_int(s: &str) -> f64 {
    let t = s.trim_start();
    let (sign, digits) = match t.strip_prefix('-') {
        Some(rest) => (-1.0, rest),
        None => (1.0, t.strip_prefix('+').unwrap_or(t)),
    };
    let prefix: String = digits.chars().take_while(char::is_ascii_digit).collect();
    if prefix.is_empty() {
        f64::NAN
    } else {
        sign * string_to_number(&prefix)
    }
}

fn is_in(left: &Val, right: &Val) -> bool {
    match right {
        Val::Json(Value::String(s)) if !s.is_empty() => {
            let numeric = !left.to_number().is_nan();
            s.split(',').any(|i| {
                let item = if numeric && !string_to_number(i).is_nan() {
                    Val::Num(parse_int(i))
                } else {
                    Val::str(i)
                };
                strict_eq(left, &item)
            })
        }
        Val::Json(Value::Array(items)) => items
            .iter()
            .any(|i| strict_eq(left, &Val::from_json(i.clone()))),
        Val::Json(Value::Object(m)) => m.contains_key(&left.to_js_string()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::parse;
    use serde_json::json;

    /// Variables from a JSON object; `rand` fixed.
    struct Vars(Value);

    impl Env for Vars {
        fn lookup(&mut self, segs: &[Seg]) -> Result<Val, DslError> {
            Ok(crate::path::lookup(&Val::Json(self.0.clone()), segs))
        }
        fn random(&mut self) -> f64 {
            0.5
        }
    }

    fn scopes() -> Vars {
        Vars(
            json!({"n": 7, "s": "7", "name": "Ada", "tags": ["a", "b"], "obj": {"k": 1}, "key": "k",
            "empty": "", "when": "2024-03-05T14:30:00.000Z", "p": {"city": "New York", "n": 2}, "i": 1,
            "rows": [{"x": "r0"}, {"x": "r1"}], "pat": "^A"}),
        )
    }

    fn ev(src: &str) -> Value {
        let e = parse(src).unwrap_or_else(|err| panic!("{src}: {err}"));
        eval(&e, &mut scopes())
            .unwrap_or_else(|err| panic!("{src}: {err}"))
            .into_json_or_null()
    }

    fn ev_err(src: &str) -> String {
        match parse(src) {
            Err(_) => "InvalidExpressionSyntax".into(),
            Ok(e) => eval(&e, &mut scopes())
                .err()
                .map(|e| e.class)
                .unwrap_or_default(),
        }
    }

    // The rows of automation-dsl.md §4.8.
    #[test]
    fn spec_examples_equality() {
        assert_eq!(ev("{{n}} == {{s}}"), json!(true));
        assert_eq!(ev("{{n}} === {{s}}"), json!(false));
        assert_eq!(ev("{{n}} != {{s}}"), json!(true));
        assert_eq!(ev("{{n}} not equals {{s}}"), json!(false));
        assert_eq!(ev("{{n}} > 5 and {{name}} == Ada"), json!(true));
        assert_eq!(ev("false and true or true"), json!(false));
        assert_eq!(ev("{{n}} < 10 < 5"), json!(false));
        assert_eq!(ev("\"10\" < \"9\""), json!(true));
    }

    #[test]
    fn spec_examples_exists_not_in() {
        assert_eq!(ev("{{missing}} exists"), json!(false));
        assert_eq!(ev("{{empty}} exists"), json!(true));
        assert_eq!(ev("!{{empty}}"), json!(true));
        assert_eq!(ev("!{{tags}}"), json!(false));
        assert_eq!(ev("b in {{tags}}"), json!(true));
        assert_eq!(ev("k in {{obj}}"), json!(true));
        assert_eq!(ev("7 in \"5,7,9\""), json!(true));
        assert_eq!(ev("{{s}} in \"5,7,9\""), json!(false));
        assert_eq!(ev("c not in {{tags}}"), json!(true));
    }

    #[test]
    fn spec_examples_matches() {
        assert_eq!(ev("{{name}} matches \"^A\""), json!(true));
        assert_eq!(ev("{{name}} matches {{tags}}"), json!(true));
        assert_eq!(ev("{{name}} matches regex(/^ada$/i)"), json!(true));
        assert_eq!(ev("{{name}} matches regex({{pat}})"), json!(true));
        assert_eq!(ev("{{missing}} matches fine"), json!(true));
        assert_eq!(ev("{{name}} not matches \"^B\""), json!(true));
        assert_eq!(ev_err("{{name}} matches \"(\""), "InvalidExpressionSyntax");
    }

    #[test]
    fn spec_examples_arithmetic() {
        assert_eq!(ev_err("{{n}}==7"), "InvalidExpressionSyntax");
        assert_eq!(ev("1 + 2 * 3"), json!(7));
        assert_eq!(ev("(1 + 2) * 3"), json!(9));
        assert_eq!(ev("({{n}} + 1) % 3"), json!(2));
        assert_eq!(ev("{{s}} + 1"), json!("71"));
        assert_eq!(ev("{{n}} / 0"), Value::Null);
        assert_eq!(ev("{{n}} / 0 > 1000"), json!(true));
        assert_eq!(ev("-7 % 3"), json!(-1));
        assert_eq!(ev("{{missing}} || \"none\""), json!("none"));
        assert_eq!(ev("{{name}} && 0"), json!(0));
    }

    #[test]
    fn dynamic_paths_and_nested_blocks() {
        assert_eq!(ev("{{rows[{{i}}].x}}"), json!("r1"));
        assert_eq!(ev("{{obj[{{key}}]}}"), json!(1));
        assert_eq!(ev("{% {{n}} * 2 %} + 1"), json!(15));
        assert_eq!(ev("{{tags.length}}"), json!(2));
    }

    #[test]
    fn regex_literals_take_flags() {
        assert!(regex_literal("/^a/i").unwrap().is_match("Abc"));
        assert!(regex_literal("a/b").unwrap().is_match("xa/b"));
        assert!(regex_literal("/[/").is_err());
    }

    #[test]
    fn compiled_patterns_are_reused_and_the_cache_stays_bounded() {
        for i in 0..200 {
            let pattern = format!("^p{i}$");
            assert!(compile_regex(&pattern).unwrap().is_match(&format!("p{i}")));
            assert!(
                !compile_regex(&pattern).unwrap().is_match("p"),
                "a cached pattern still matches as its own"
            );
        }
        assert!(REGEXES.with_borrow(|c| c.len()) <= REGEX_CACHE);
        assert!(
            compile_regex("(").is_err(),
            "errors are not cached as patterns"
        );
        assert!(compile_regex("(").is_err());
    }
}
