//! Templates (`automation-dsl.md` §4.1–4.3): strings mixing text, `{{path}}` placeholders and
//! `{% expression %}` blocks, parsed once on save into [`Tpl`]; values without any template
//! string stay constants, so rendering them is a clone.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{DslError, TemplateError};
use crate::eval::{Env, eval};
use crate::expr::{self, Expr};
use crate::path::{self, Seg};
use crate::value::{Val, render_in_text};

/// A piece of a template string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Part {
    /// Literal text.
    Text(String),
    /// A `{{path}}` placeholder.
    Var(VarRef),
    /// A `{% expr %}` block.
    Block(Expr),
}

/// The path of a placeholder: parsed on save, or built at run time from nested items
/// (`{{prices[{{item.sku}}]}}`, §4.3 step 5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum VarRef {
    /// A path parsed on save.
    Path(Vec<Seg>),
    /// A path rendered from these parts at run time, then parsed.
    Dynamic(Vec<Part>),
}

/// A value that may hold templates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Tpl {
    /// A value without templates, used as is.
    Const(#[serde(with = "crate::program::json_value")] Value),
    /// A string with placeholders or blocks.
    Str(Vec<Part>),
    /// A list with templates among its items.
    Arr(Vec<Tpl>),
    /// A mapping with templates among its members, in document order.
    Obj(Vec<(String, Tpl)>),
}

/// Placeholders nested deeper than this (`{{a[{{b[{{…}}]}}]}}`) are refused, so a hostile
/// template cannot overflow the stack.
const MAX_PLACEHOLDER_NESTING: usize = 32;

/// Parses the template parts of `s`.
pub fn parse_str(s: &str) -> Result<Vec<Part>, TemplateError> {
    parse_nested(s, 0)
}

fn parse_nested(s: &str, depth: usize) -> Result<Vec<Part>, TemplateError> {
    if depth > MAX_PLACEHOLDER_NESTING {
        return Err(TemplateError {
            rule: "InvalidVariableNameError",
            message: format!("placeholders nested deeper than {MAX_PLACEHOLDER_NESTING}"),
        });
    }
    let chars: Vec<char> = s.chars().collect();
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut i = 0;
    while i < chars.len() {
        let opens =
            |a: char, b: char, j: usize| chars.get(j) == Some(&a) && chars.get(j + 1) == Some(&b);
        if opens('{', '%', i)
            && let Some(end) = matching(&chars, i, ('{', '%'), ('%', '}'))
        {
            let inner: String = chars[i + 2..end].iter().collect();
            let e = expr::parse(&inner).map_err(|m| TemplateError {
                rule: "InvalidExpressionSyntax",
                message: format!("{{% {} %}}: {m}", inner.trim()),
            })?;
            flush(&mut text, &mut parts);
            parts.push(Part::Block(e));
            i = end + 2;
            continue;
        }
        if opens('{', '{', i)
            && let Some(end) = matching(&chars, i, ('{', '{'), ('}', '}'))
        {
            let inner: String = chars[i + 2..end].iter().collect();
            let inner_parts = parse_nested(&inner, depth + 1)?;
            flush(&mut text, &mut parts);
            if inner_parts.iter().all(|p| matches!(p, Part::Text(_))) {
                let segs = path::parse(&inner).map_err(|m| TemplateError {
                    rule: "InvalidVariableNameError",
                    message: m.to_string(),
                })?;
                parts.push(Part::Var(VarRef::Path(segs)));
            } else {
                parts.push(Part::Var(VarRef::Dynamic(inner_parts)));
            }
            i = end + 2;
            continue;
        }
        text.push(chars[i]);
        i += 1;
    }
    flush(&mut text, &mut parts);
    Ok(parts)
}

fn flush(text: &mut String, parts: &mut Vec<Part>) {
    if !text.is_empty() {
        parts.push(Part::Text(std::mem::take(text)));
    }
}

/// The index of the closer matching the opener at `start`, counting nested openers.
fn matching(
    chars: &[char],
    start: usize,
    open: (char, char),
    close: (char, char),
) -> Option<usize> {
    let mut depth = 0usize;
    let mut j = start;
    while j + 1 < chars.len() {
        if chars[j] == open.0 && chars[j + 1] == open.1 {
            depth += 1;
            j += 2;
        } else if chars[j] == close.0 && chars[j + 1] == close.1 {
            depth -= 1;
            if depth == 0 {
                return Some(j);
            }
            j += 2;
        } else {
            j += 1;
        }
    }
    None
}

/// Compiles a value: strings with items become templates, the rest constants.
pub fn compile(v: &Value) -> Result<Tpl, TemplateError> {
    Ok(match v {
        Value::String(s) => {
            let parts = parse_str(s)?;
            if parts.iter().all(|p| matches!(p, Part::Text(_))) {
                Tpl::Const(v.clone())
            } else {
                Tpl::Str(parts)
            }
        }
        Value::Array(items) => {
            let t = items.iter().map(compile).collect::<Result<Vec<_>, _>>()?;
            if t.iter().all(|x| matches!(x, Tpl::Const(_))) {
                Tpl::Const(v.clone())
            } else {
                Tpl::Arr(t)
            }
        }
        Value::Object(m) => {
            let t = m
                .iter()
                .map(|(k, x)| Ok((k.clone(), compile(x)?)))
                .collect::<Result<Vec<_>, TemplateError>>()?;
            if t.iter().all(|(_, x)| matches!(x, Tpl::Const(_))) {
                Tpl::Const(v.clone())
            } else {
                Tpl::Obj(t)
            }
        }
        other => Tpl::Const(other.clone()),
    })
}

/// Renders a template value (§4.3): whole-value items keep their type, `undefined` members
/// are dropped and `undefined` array elements become `null`.
pub fn render(t: &Tpl, env: &mut dyn Env) -> Result<Val, DslError> {
    match t {
        Tpl::Const(v) => Ok(Val::from_json(v.clone())),
        Tpl::Str(parts) => render_parts(parts, env),
        Tpl::Arr(items) => {
            let mut out = Vec::with_capacity(items.len());
            for i in items {
                out.push(render(i, env)?.into_json_or_null());
            }
            Ok(Val::Json(Value::Array(out)))
        }
        Tpl::Obj(members) => {
            let mut out = Map::with_capacity(members.len());
            for (k, v) in members {
                if let Some(v) = render(v, env)?.into_json() {
                    out.insert(k.clone(), v);
                }
            }
            Ok(Val::Json(Value::Object(out)))
        }
    }
}

/// The variables of a restricted rendering: one JSON document, nothing from outside.
struct Vars<'a>(&'a Value);

impl Env for Vars<'_> {
    fn lookup(&mut self, segs: &[Seg]) -> Result<Val, DslError> {
        Ok(path::lookup_value(Some(self.0), segs))
    }
    fn random(&mut self) -> f64 {
        0.0
    }
}

/// Renders `value` in restricted mode (§4.3): its templates read only the members of `vars`
/// (`{config, secret}` for a config at load time, §5.8), never a scope or the outside world.
pub fn render_with(value: &Value, vars: &Value) -> Result<Option<Value>, DslError> {
    let tpl = compile(value).map_err(|e| DslError::new("InvalidTemplate", e.to_string()))?;
    Ok(render(&tpl, &mut Vars(vars))?.into_json())
}

/// Renders string parts: one item alone is its typed value, else text.
pub fn render_parts(parts: &[Part], env: &mut dyn Env) -> Result<Val, DslError> {
    if let [only] = parts {
        return item(only, env);
    }
    let mut s = String::new();
    for p in parts {
        match p {
            Part::Text(t) => s.push_str(t),
            other => s.push_str(&render_in_text(&item(other, env)?)),
        }
    }
    Ok(Val::str(s))
}

fn item(p: &Part, env: &mut dyn Env) -> Result<Val, DslError> {
    match p {
        Part::Text(t) => Ok(Val::str(t.clone())),
        Part::Block(e) => eval(e, env),
        Part::Var(VarRef::Path(segs)) => env.lookup(segs),
        Part::Var(VarRef::Dynamic(inner)) => {
            let mut text = String::new();
            for p in inner {
                match p {
                    Part::Text(t) => text.push_str(t),
                    other => text.push_str(&render_in_text(&item(other, env)?)),
                }
            }
            let segs = path::parse(&text)
                .map_err(|m| DslError::new("InvalidVariableNameError", m.to_string()))?;
            env.lookup(&segs)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn r(v: Value) -> Option<Value> {
        let vars = json!({"n": 7, "name": "Ada", "tags": ["a", "b"], "obj": {"k": 1}, "key": "k",
            "prices": {"A1": 5}, "item": {"sku": "A1"}, "field": "name", "i": 0, "a": [10, 20]});
        render_with(&v, &vars).unwrap()
    }

    #[test]
    fn whole_values_keep_their_type() {
        assert_eq!(r(json!("{{n}}")), Some(json!(7)));
        assert_eq!(r(json!("{{obj}}")), Some(json!({"k": 1})));
        assert_eq!(r(json!("{{ n }}")), Some(json!(7)));
        assert_eq!(r(json!("{% {{n}} * 2 %}")), Some(json!(14)));
    }

    #[test]
    fn mixed_text_renders_json_with_indent() {
        assert_eq!(r(json!("n={{n}}")), Some(json!("n=7")));
        assert_eq!(r(json!("o={{obj}}")), Some(json!("o={\n  \"k\": 1\n}")));
        assert_eq!(r(json!("x{{missing}}y")), Some(json!("xy")));
        assert_eq!(r(json!("{{tags[1]}}-{{name.length}}")), Some(json!("b-3")));
        assert_eq!(r(json!("x{% {{n}} * 2 %}")), Some(json!("x14")));
        assert_eq!(
            r(json!("adult: {% {{n}} >= 18 %}")),
            Some(json!("adult: false"))
        );
    }

    #[test]
    fn undefined_members_are_removed_and_elements_null() {
        assert_eq!(
            r(json!({"a": "{{missing}}", "b": 1, "c": "{{n}}"})),
            Some(json!({"b": 1, "c": 7}))
        );
        assert_eq!(r(json!(["{{missing}}", "{{n}}"])), Some(json!([null, 7])));
        assert_eq!(r(json!("{{missing}}")), None);
    }

    #[test]
    fn dynamic_paths() {
        assert_eq!(r(json!("{{obj[{{key}}]}}")), Some(json!(1)));
        assert_eq!(r(json!("{{prices[{{item.sku}}]}}")), Some(json!(5)));
        assert_eq!(r(json!("{{{{field}}}}")), Some(json!("Ada")));
        assert_eq!(r(json!("{{a[{% {{i}} + 1 %}]}}")), Some(json!(20)));
    }

    #[test]
    fn inserted_text_is_not_rescanned_and_unmatched_delimiters_are_text() {
        let v = render_with(&json!("a {{t}}"), &json!({"t": "{{n}}", "n": 1})).unwrap();
        assert_eq!(v, Some(json!("a {{n}}")));
        assert_eq!(r(json!("a {{ b")), Some(json!("a {{ b")));
        assert_eq!(r(json!("50% {% off")), Some(json!("50% {% off")));
        assert_eq!(r(json!("{% \"{{x}}\" %}")), Some(json!("{{x}}")));
    }

    #[test]
    fn constants_stay_constants_and_errors_name_the_rule() {
        assert_eq!(
            compile(&json!({"a": [1, "b"]})).unwrap(),
            Tpl::Const(json!({"a": [1, "b"]}))
        );
        assert_eq!(
            compile(&json!("{{a..b}}")).unwrap_err().rule,
            "InvalidVariableNameError"
        );
        assert_eq!(
            compile(&json!("{% {{a}}==1 %}")).unwrap_err().rule,
            "InvalidExpressionSyntax"
        );
    }
}
