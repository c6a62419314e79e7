//! Property tests: no input makes the template, expression and path parsers, the YAML loader,
//! the compiler or the evaluator panic (`automation-dsl.md` §9: hostile documents are data).
//! Inputs mix random text with the language's own tokens so that deep parser paths are reached.

use proptest::prelude::*;
use serde_json::{Value, json};

use crate::document::compile;
use crate::error::DslError;
use crate::eval::{Env, eval};
use crate::interpreter::{FetchRequest, FetchResponse, Outside, RunInput, Scope, WaitFor, run};
use crate::path::{self, Seg};
use crate::template::{self, render};
use crate::value::Val;

const TOKENS: &[&str] = &[
    "{{",
    "}}",
    "{%",
    "%}",
    "{",
    "}",
    "[",
    "]",
    "(",
    ")",
    ".",
    ",",
    "'",
    "\"",
    " ",
    "\n",
    "a",
    "n",
    "tags",
    "obj",
    "0",
    "1",
    "-1",
    "2.5",
    "and",
    "or",
    "not",
    "in",
    "matches",
    "equals",
    "exists",
    "==",
    "===",
    "!=",
    "!==",
    "=",
    "<",
    "<=",
    ">",
    ">=",
    "+",
    "-",
    "*",
    "/",
    "%",
    "!",
    "&&",
    "||",
    "true",
    "null",
    "undefined",
    "regex(",
    "/^a/i",
    "date(",
    "json(",
    "split(",
    "join(",
    "slice(",
    "round(",
    "rand(",
    "jsonmatch(",
    "URLSearchParams(",
    ").asJSON",
    "isArray(",
    "replace(",
    "\"YYYY-MM-DD LLLL\"",
    "'fr'",
    "'UTC'",
    "$",
    "_",
    "é",
    "😀",
];

fn tokens() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..40).prop_map(|t| t.concat())
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![tokens(), any::<String>()]
}

struct Vars(Value);

impl Env for Vars {
    fn lookup(&mut self, segs: &[Seg]) -> Result<Val, DslError> {
        Ok(path::lookup(&Val::Json(self.0.clone()), segs))
    }
    fn random(&mut self) -> f64 {
        0.25
    }
}

fn vars() -> Vars {
    Vars(
        json!({"a": 1, "n": 7, "tags": ["a", "b"], "obj": {"k": {"$gt": 0}}, "s": "x,y", "d": "2024-03-05T14:30:00Z"}),
    )
}

/// A world where every effect succeeds at once.
struct Quiet;

impl Outside for Quiet {
    fn emit(&mut self, _: &str, _: &Value, _: Option<&Value>, _: bool) -> Result<String, DslError> {
        Ok("e".into())
    }
    fn wait(&mut self, _: &[WaitFor], _: u32) -> Result<Option<Value>, DslError> {
        Ok(None)
    }
    fn fetch(&mut self, _: FetchRequest) -> Result<FetchResponse, DslError> {
        Ok(FetchResponse {
            status: 200,
            headers: vec![("content-type".into(), "text/event-stream".into())],
            body: b"data: {\"a\":1}\n\n".to_vec(),
        })
    }
    fn get(&mut self, _: Scope, _: &str) -> Result<Option<Value>, DslError> {
        Ok(None)
    }
    fn set(&mut self, _: Scope, _: &str, _: &Value) -> Result<(), DslError> {
        Ok(())
    }
    fn delete(&mut self, _: Scope, _: &str) -> Result<(), DslError> {
        Ok(())
    }
    fn call(&mut self, _: &str, a: &Value) -> Result<Value, DslError> {
        Ok(a.clone())
    }
    fn random(&mut self) -> f64 {
        0.5
    }
}

/// Small JSON documents whose strings are template-ish and whose numbers stay small (a
/// `repeat` with `until: 1e9` is a valid, merely slow, program).
fn doc() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-3i64..20).prop_map(|n| json!(n)),
        tokens().prop_map(Value::String),
        prop::sample::select(vec![
            "set",
            "emit",
            "repeat",
            "all",
            "break",
            "try",
            "fetch",
            "conditions",
            "rateLimit"
        ])
        .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop::sample::select(vec![
                        "set",
                        "name",
                        "value",
                        "emit",
                        "event",
                        "payload",
                        "repeat",
                        "on",
                        "until",
                        "do",
                        "all",
                        "conditions",
                        "default",
                        "try",
                        "catch",
                        "break",
                        "scope",
                        "fetch",
                        "url",
                        "stream",
                        "output",
                        "rateLimit",
                        "limit",
                        "window",
                        "joinUserTopic",
                        "topic",
                        "{{a}} > 0",
                        "delete",
                        "x",
                    ]),
                    inner
                ),
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn expressions_parse_and_evaluate_without_panicking(src in text()) {
        if let Ok(e) = crate::expr::parse(&src) {
            let _ = eval(&e, &mut vars());
        }
    }

    #[test]
    fn templates_parse_and_render_without_panicking(src in text()) {
        if let Ok(t) = template::compile(&Value::String(src)) {
            let _ = render(&t, &mut vars());
        }
    }

    #[test]
    fn paths_parse_without_panicking(src in text()) {
        if let Ok(segs) = path::parse(&src) {
            let _ = path::lookup(&Val::Json(json!({"a": [1]})), &segs);
        }
    }

    #[test]
    fn yaml_loads_without_panicking(src in text()) {
        let _ = crate::document::from_yaml(&src);
    }

    #[test]
    fn programs_compile_and_run_without_panicking(steps in doc(), output in doc()) {
        if let Ok(p) = compile(&steps, Some(&output)) {
            let _ = run(&p, RunInput::default(), &mut Quiet);
        }
    }
}

#[test]
fn hostile_nesting_is_an_error_not_a_stack_overflow() {
    let deep = "(".repeat(100_000) + "1" + &")".repeat(100_000);
    assert!(crate::expr::parse(&deep).is_err());
    let placeholders = "{{".repeat(50_000) + "a" + &"}}".repeat(50_000);
    assert!(template::compile(&Value::String(placeholders)).is_err());
    let blocks = "{%".repeat(20_000) + "1" + &"%}".repeat(20_000);
    assert!(template::compile(&Value::String(blocks)).is_err());
    let brackets = "a".to_owned() + &"[".repeat(50_000);
    assert!(path::parse(&brackets).is_err());
    let yaml = "[".repeat(100_000);
    assert!(crate::document::from_yaml(&yaml).is_err());
}
