//! Conformance vectors written from the spec (`automation-dsl.md` §4.8 and the operator,
//! function, template and path rules of §4.2–§4.7): one row per operator, function and template
//! rule, evaluated exactly as a `{% %}` block or a template string would be at run time.

// `round(3.14159, 2)` is 3.14 by the spec's table, not an approximation of π.
#![allow(clippy::approx_constant)]

use serde_json::{Value, json};

use crate::error::DslError;
use crate::eval::{Env, eval};
use crate::path::{self, Seg};
use crate::template::{compile, render};
use crate::value::Val;

/// The scopes of §4.8.
struct Scopes(Value);

impl Env for Scopes {
    fn lookup(&mut self, segs: &[Seg]) -> Result<Val, DslError> {
        Ok(path::lookup(&Val::Json(self.0.clone()), segs))
    }
    fn random(&mut self) -> f64 {
        0.5
    }
}

fn scopes() -> Scopes {
    Scopes(
        json!({"n": 7, "s": "7", "name": "Ada", "tags": ["a", "b"], "obj": {"k": 1}, "key": "k", "empty": "",
        "when": "2024-03-05T14:30:00.000Z", "q": {"k": {"$gt": 0}}, "p": {"city": "New York", "n": 2},
        "i": 0, "rows": [10, 20], "emoji": "😀x", "nested": {"a.b": 5, "my-var": 6}}),
    )
}

/// An expression's value as JSON (`undefined` → the string `"<undefined>"`, errors → the class).
fn expr(src: &str) -> Value {
    let e = match crate::expr::parse(src) {
        Ok(e) => e,
        Err(_) => return json!("InvalidExpressionSyntax"),
    };
    match eval(&e, &mut scopes()) {
        Ok(Val::Undefined) => json!("<undefined>"),
        Ok(v) => v.into_json_or_null(),
        Err(e) => json!(e.class),
    }
}

/// A template string's value (`undefined` → `"<undefined>"`, errors → the class).
fn tpl(src: &str) -> Value {
    let t = match compile(&json!(src)) {
        Ok(t) => t,
        Err(e) => return json!(e.rule),
    };
    match render(&t, &mut scopes()) {
        Ok(Val::Undefined) => json!("<undefined>"),
        Ok(v) => v.into_json_or_null(),
        Err(e) => json!(e.class),
    }
}

#[test]
fn section_4_8_expressions() {
    let rows: &[(&str, Value)] = &[
        ("{{n}} == {{s}}", json!(true)),
        ("{{n}} === {{s}}", json!(false)),
        ("{{n}} != {{s}}", json!(true)),
        ("{{n}} not equals {{s}}", json!(false)),
        ("{{n}} > 5 and {{name}} == Ada", json!(true)),
        ("false and true or true", json!(false)),
        ("{{n}} < 10 < 5", json!(false)),
        ("\"10\" < \"9\"", json!(true)),
        ("{{missing}} exists", json!(false)),
        ("{{empty}} exists", json!(true)),
        ("!{{empty}}", json!(true)),
        ("!{{tags}}", json!(false)),
        ("b in {{tags}}", json!(true)),
        ("k in {{obj}}", json!(true)),
        ("7 in \"5,7,9\"", json!(true)),
        ("{{s}} in \"5,7,9\"", json!(false)),
        ("{{name}} matches \"^A\"", json!(true)),
        ("{{name}} matches {{tags}}", json!(true)),
        ("{{name}} matches regex(/^ada$/i)", json!(true)),
        ("{{missing}} matches fine", json!(true)),
        ("{{n}}==7", json!("InvalidExpressionSyntax")),
        ("1 + 2 * 3", json!(7)),
        ("(1 + 2) * 3", json!(9)),
        ("({{n}} + 1) % 3", json!(2)),
        ("{{s}} + 1", json!("71")),
        ("{{n}} / 0", Value::Null),
        ("{{missing}} || \"none\"", json!("none")),
        ("round(3.14159, 2)", json!(3.14)),
        ("floor(9.99)", json!(9)),
        ("ceil(1.01, 1)", json!(1.1)),
        ("date({{when}}).hour", json!(14)),
        ("date({{when}}).day", json!(2)),
        ("date({{when}}).month", json!(3)),
        ("date({{when}})", json!(1_709_649_000_000_i64)),
        (
            "date({{when}}, \"DD/MM/YYYY HH:mm\")",
            json!("05/03/2024 15:30"),
        ),
        ("date({{when}}, \"HH:mm\", \"en\", \"UTC\")", json!("14:30")),
        ("split(\"x,y\", \",\")", json!(["x", "y"])),
        ("join({{tags}}, \"+\")", json!("a+b")),
        ("json('{\"a\":1}')", json!({"a": 1})),
        ("json({{obj}})", json!("{\"k\":1}")),
        ("replace(\"a-b-c\", \"-\", \"+\")", json!("a+b-c")),
        ("slice({{tags}}, -1)", json!(["b"])),
        ("isArray({{tags}})", json!(true)),
        ("isObject({{tags}})", json!(false)),
        ("jsonmatch({{obj}}, {{q}})", json!(true)),
        (
            "URLSearchParams(\"a=1&b=x%20y\").asJSON",
            json!({"a": "1", "b": "x y"}),
        ),
        (
            "URLSearchParams({{p}}).asString",
            json!("city=New+York&n=2"),
        ),
    ];
    for (src, want) in rows {
        assert_eq!(&expr(src), want, "{src}");
    }
}

#[test]
fn every_operator_and_keyword() {
    let rows: &[(&str, Value)] = &[
        ("{{n}} = 7", json!(true)),
        ("{{n}} equals \"7\"", json!(true)),
        ("{{n}} !== 7", json!(false)),
        ("{{n}} <= 7", json!(true)),
        ("{{n}} >= 8", json!(false)),
        ("{{n}} > 6 && {{n}} < 8", json!(true)),
        ("0 || {{name}}", json!("Ada")),
        ("{{name}} && 0", json!(0)),
        ("{{name}} not matches \"^B\"", json!(true)),
        ("c not in {{tags}}", json!(true)),
        ("{{missing}} not exists", json!(true)),
        ("null == undefined", json!(true)),
        ("null === undefined", json!(false)),
        ("true == 1", json!(true)),
        ("{{tags}} == \"a,b\"", json!(true)),
        ("{{obj}} == {{obj}}", json!(false)),
        ("-7 % 3", json!(-1)),
        ("10 - 4 - 3", json!(3)),
        ("2 * 3 / 4", json!(1.5)),
        ("!{{n}} + 1", json!(false)),
        ("{% {{n}} + 1 %} * 2", json!(16)),
        ("0.1 + 0.2", json!(0.300_000_000_000_000_04)),
        ("undefined", json!("<undefined>")),
        ("{{rows[{{i}}]}}", json!(10)),
        ("{{nested['my-var']}}", json!(6)),
        ("{{my-var}}", json!("InvalidExpressionSyntax")),
        ("orange", json!("orange")),
        ("2abc", json!("InvalidExpressionSyntax")),
        ("'a' + 'b'", json!("InvalidExpressionSyntax")),
        ("nosuchfn(1)", json!("InvalidExpressionSyntax")),
        ("json(\"{bad\")", json!("InvalidExpressionSyntax")),
        ("{{name}} matches \"(\"", json!("InvalidExpressionSyntax")),
        ("rand()", json!(0.5)),
        ("rand(1, 11)", json!(6)),
        ("round(-2.5)", json!(-2)),
        ("round(\"x\")", json!("InvalidExpressionSyntax")),
        ("slice(\"hello\", 1, 3)", json!("el")),
        ("split(\"ab\", \"\")", json!(["a", "b"])),
        ("replace(\"a-b\", \"-\", \"[$&]\")", json!("a[-]b")),
        ("isObject(null)", json!(true)),
        ("isArray(\"tags\")", json!(true)),
        ("date(\"nope\").iso", json!("<undefined>")),
        ("date(0).iso", json!("1970-01-01T00:00:00.000Z")),
        (
            "date({{when}}, \"dddd D MMMM YYYY\", \"fr\", \"UTC\")",
            json!("mardi 5 mars 2024"),
        ),
        ("date({{when}}, \"LLLL\", \"xx\")", json!("<undefined>")),
        ("jsonmatch({{p}}, 1)", json!("InvalidExpressionSyntax")),
        ("jsonmatch(\"x\", {{q}})", json!(false)),
        ("URLSearchParams(1).asJSON", json!("<undefined>")),
    ];
    for (src, want) in rows {
        assert_eq!(&expr(src), want, "{src}");
    }
}

/// The functions of the newer runtime (`docs/dsl.md`, "Functions").
#[test]
fn newer_runtime_functions() {
    let rows: &[(&str, Value)] = &[
        ("lower(\"ÀDA Lovelace\")", json!("àda lovelace")),
        ("upper({{name}})", json!("ADA")),
        ("lower({{n}})", json!("InvalidExpressionSyntax")),
        ("number({{s}}) + 1", json!(8)),
        ("number(\"abc\")", json!(null)),
        ("number(true)", json!(1)),
        ("min(3, {{s}}, 9)", json!(3)),
        ("max({{rows}})", json!(20)),
        ("max(1, \"x\")", json!(null)),
        ("truncate(\"hello world\", 5)", json!("hello...")),
        ("truncate(\"hello world\", 5, \"…\")", json!("hello…")),
        ("truncate({{name}}, 10)", json!("Ada")),
        ("truncate({{emoji}}, 1)", json!("...")),
        (
            "truncate({{name}}, \"2\")",
            json!("InvalidExpressionSyntax"),
        ),
        (
            "deepmerge({{obj}}, {{p}})",
            json!({"k": 1, "city": "New York", "n": 2}),
        ),
        ("deepmerge({{tags}}, {{rows}})", json!(["a", "b", 10, 20])),
        ("deepmerge({{obj}}, {{missing}})", json!({"k": 1})),
        ("base64(\"hello\")", json!("aGVsbG8=")),
        ("base64({{n}})", json!("InvalidExpressionSyntax")),
        ("uuid()", json!("00000080-0000-4080-8000-008000000080")),
        ("isString({{s}})", json!(true)),
        ("isString({{n}})", json!(false)),
        ("isNumber({{n}})", json!(true)),
        ("isNumber({{s}})", json!(false)),
        ("isNumber(number(\"x\"))", json!(true)),
        ("unsafejson(\"{}\")", json!("InvalidExpressionSyntax")),
    ];
    for (src, want) in rows {
        assert_eq!(&expr(src), want, "{src}");
    }
}

#[test]
fn section_4_8_templates_and_paths() {
    let rows: &[(&str, Value)] = &[
        ("{{n}}", json!(7)),
        ("n={{n}}", json!("n=7")),
        ("{{obj}}", json!({"k": 1})),
        ("o={{obj}}", json!("o={\n  \"k\": 1\n}")),
        ("x{{missing}}y", json!("xy")),
        ("{{missing}}", json!("<undefined>")),
        ("{{tags[1]}}-{{name.length}}", json!("b-3")),
        ("{{obj[{{key}}]}}", json!(1)),
        ("{% {{n}} * 2 %}", json!(14)),
        ("x{% {{n}} * 2 %}", json!("x14")),
        ("adult: {% {{n}} >= 18 %}", json!("adult: false")),
        ("{% {{n}} %}", json!(7)),
        ("{% \"{{x}}\" %}", json!("{{x}}")),
        ("{{ n }}", json!(7)),
        ("{{emoji.length}}", json!(3)),
        ("{{emoji[0]}}", json!("\u{FFFD}")),
        ("{{nested[\"a.b\"]}}", json!(5)),
        ("{{nested['a.b']}}", json!(5)),
        ("{{tags.length}}", json!(2)),
        ("{{tags[01]}}", json!("b")),
        ("{{a..b}}", json!("InvalidVariableNameError")),
        ("{{a.}}", json!("InvalidVariableNameError")),
        ("{{[a]}}", json!("InvalidVariableNameError")),
        ("{{a[]}}", json!("InvalidVariableNameError")),
        ("50% {% off", json!("50% {% off")),
        ("a {{ b", json!("a {{ b")),
        ("$& {{name}} $$", json!("$& Ada $$")),
    ];
    for (src, want) in rows {
        assert_eq!(&tpl(src), want, "{src}");
    }
}
