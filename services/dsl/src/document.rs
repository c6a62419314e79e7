//! Automation documents (`automation-dsl.md` §2.3, §3): validation on save and the compiled
//! [`Program`] the interpreter runs, with every template and expression already parsed.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[cfg(feature = "yaml")]
use crate::budget::Budget;
use crate::budget::DocumentError;
use crate::error::Invalid;
use crate::expr::{self, Expr};
use crate::template::{self, Tpl};

/// Instruction lists nested deeper than this are refused on save, so running one can never
/// exhaust the interpreter's stack.
pub const MAX_NESTING: usize = 48;

/// A compiled automation: what the interpreter component receives per run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Program {
    pub instructions: Vec<Instr>,
    /// `output`, evaluated after `do`; `None` returns `{}`.
    pub output: Option<Tpl>,
}

impl Program {
    /// The compact form the runtime hands the interpreter on every run: postcard bytes as
    /// base64 text (it travels in the invocation's JSON config). Decoding it costs a fraction
    /// of decoding the JSON form, which matters because every run decodes it in a fresh
    /// instance.
    pub fn encode(&self) -> String {
        use base64::Engine as _;
        // Serializing into a Vec fails only for types postcard cannot express; Program has none.
        let bytes = postcard::to_allocvec(self).unwrap_or_default();
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    /// Reads what [`Program::encode`] wrote.
    pub fn decode(text: &str) -> Result<Program, String> {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| format!("not base64: {e}"))?;
        match postcard::take_from_bytes(&bytes) {
            Ok((program, [])) => Ok(program),
            Ok((_, rest)) => Err(format!(
                "not a compiled program: {} bytes after its end",
                rest.len()
            )),
            Err(e) => Err(format!("not a compiled program: {e}")),
        }
    }
}

/// Serde for the JSON constants inside a program: as themselves in human-readable formats
/// (JSON), as JSON text in binary ones (postcard cannot carry a self-describing value).
pub(crate) mod json_value {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_json::Value;

    pub fn serialize<S: Serializer>(v: &Value, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            v.serialize(s)
        } else {
            s.serialize_str(&v.to_string())
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        if d.is_human_readable() {
            Value::deserialize(d)
        } else {
            let text = <&str>::deserialize(d)?;
            // Most constants are plain strings (names, event types, text): no parser needed.
            if let Some(plain) = text.strip_prefix('"').and_then(|t| t.strip_suffix('"'))
                && !plain.contains(['"', '\\'])
            {
                return Ok(Value::String(plain.to_owned()));
            }
            serde_json::from_str(text).map_err(D::Error::custom)
        }
    }
}

/// One instruction with its argument pre-parsed. Lazy parts (`conditions` bodies, `repeat.do`,
/// `try.do`/`catch`) are instruction lists; everything else is interpolated when it starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Instr {
    Set(Tpl),
    Delete(Tpl),
    Emit(Tpl),
    Wait(Tpl),
    Fetch(Tpl),
    Conditions {
        branches: Vec<(Expr, Vec<Instr>)>,
        default: Vec<Instr>,
    },
    /// `args` holds every member but `do`.
    Repeat {
        args: Tpl,
        body: Vec<Instr>,
    },
    All(Vec<Instr>),
    Break(Tpl),
    Comment,
    Try {
        body: Vec<Instr>,
        catch: Option<Vec<Instr>>,
    },
    /// A call of another automation (`slug` or `instance.slug`), `args` its argument object.
    Call {
        slug: String,
        args: Tpl,
    },
    /// `rateLimit` (§3.13).
    RateLimit(Tpl),
    /// `createUserTopic` / `joinUserTopic` (§3.14).
    CreateUserTopic(Tpl),
    JoinUserTopic(Tpl),
    /// An instruction given a `null` argument: raises `InvalidInstructionError` when reached.
    Null(String),
    /// A known instruction this interpreter does not run yet: fails when reached.
    Unsupported(String),
}

/// Top-level members an automation document may have (§2.3, closed schema).
const FIELDS: &[&str] = &[
    "name",
    "do",
    "slug",
    "description",
    "labels",
    "when",
    "arguments",
    "validateArguments",
    "output",
    "private",
    "disabled",
    "authorizations",
    "events",
    "createdAt",
    "createdBy",
    "updatedAt",
    "updatedBy",
    "kind",
    "config",
    "workspaceId",
    "id",
];

/// Instructions of the spec not run by this interpreter yet (they fail when reached).
const UNSUPPORTED: &[&str] = &[];

/// Validates a whole automation document (JSON form of the YAML) and compiles it.
pub fn compile_document(doc: &Value) -> Result<Program, Invalid> {
    let Some(map) = doc.as_object() else {
        return Err(Invalid::new(
            "",
            "InvalidAutomationError",
            "an automation document is a mapping",
        ));
    };
    if let Some(unknown) = map.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(Invalid::new(
            unknown,
            "InvalidAutomationError",
            format!("unknown member {unknown:?}"),
        ));
    }
    if !map.contains_key("name") {
        return Err(Invalid::new(
            "name",
            "InvalidAutomationError",
            "name is required",
        ));
    }
    compile(map.get("do").unwrap_or(&Value::Null), map.get("output"))
}

/// Compiles `do` and `output` (what the automations API stores).
pub fn compile(instructions: &Value, output: Option<&Value>) -> Result<Program, Invalid> {
    let instructions = list(instructions, "do", 0)?;
    let output = match output {
        None | Some(Value::Null) => None,
        Some(o) => Some(tpl(o, "output")?),
    };
    Ok(Program {
        instructions,
        output,
    })
}

fn tpl(v: &Value, path: &str) -> Result<Tpl, Invalid> {
    template::compile(v).map_err(|(rule, m)| Invalid::new(path, rule, m))
}

fn list(v: &Value, path: &str, depth: usize) -> Result<Vec<Instr>, Invalid> {
    if depth > MAX_NESTING {
        return Err(Invalid::new(
            path,
            "InvalidInstructionError",
            format!("instructions nested deeper than {MAX_NESTING}"),
        ));
    }
    let Value::Array(items) = v else {
        return Err(Invalid::new(
            path,
            "InvalidInstructionError",
            "must be a list of instructions",
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| instruction(item, &format!("{path}[{i}]"), depth))
        .collect()
}

/// `a.b` for identifier-like keys, `a['k']` for the rest.
fn member(path: &str, key: &str) -> String {
    if key
        .chars()
        .all(|c| c.is_alphanumeric() || c == '_' || c == '$')
        && !key.is_empty()
    {
        format!("{path}.{key}")
    } else {
        format!("{path}[{key:?}]")
    }
}

fn object<'a>(arg: &'a Value, path: &str, name: &str) -> Result<&'a Map<String, Value>, Invalid> {
    arg.as_object().ok_or_else(|| {
        Invalid::new(
            path,
            "InvalidInstructionError",
            format!("{name} takes a mapping"),
        )
    })
}

fn instruction(item: &Value, path: &str, depth: usize) -> Result<Instr, Invalid> {
    let Some(map) = item.as_object() else {
        return Err(Invalid::new(
            path,
            "InvalidInstructionError",
            "an instruction is a one-key mapping",
        ));
    };
    // `{}` is a no-op; several keys: the first one counts (as in Prisme.ai).
    let Some((name, arg)) = map.iter().next() else {
        return Ok(Instr::Comment);
    };
    let at = member(path, name);
    if arg.is_null() && name != "break" && name != "comment" {
        return Ok(Instr::Null(name.clone()));
    }
    Ok(match name.as_str() {
        "set" | "delete" => {
            let m = object(arg, &at, name)?;
            match m.get("name") {
                Some(Value::String(_)) => {}
                Some(_) => {
                    return Err(Invalid::new(
                        &member(&at, "name"),
                        "InvalidInstructionError",
                        "name must be a string",
                    ));
                }
                None => {
                    return Err(Invalid::new(
                        &at,
                        "InvalidInstructionError",
                        format!("{name} needs a name"),
                    ));
                }
            }
            if name == "set" {
                if let Some(t) = m.get("type").and_then(Value::as_str)
                    && !["replace", "merge", "push"].contains(&t)
                {
                    return Err(Invalid::new(
                        &member(&at, "type"),
                        "InvalidInstructionError",
                        "type is replace, merge or push",
                    ));
                }
                Instr::Set(tpl(arg, &at)?)
            } else {
                Instr::Delete(tpl(arg, &at)?)
            }
        }
        "emit" => {
            let m = object(arg, &at, name)?;
            if !m.get("event").is_some_and(Value::is_string) {
                return Err(Invalid::new(
                    &member(&at, "event"),
                    "InvalidInstructionError",
                    "emit needs an event (a string)",
                ));
            }
            Instr::Emit(tpl(arg, &at)?)
        }
        "wait" => {
            let m = object(arg, &at, name)?;
            if !m.get("oneOf").is_some_and(Value::is_array) {
                return Err(Invalid::new(
                    &member(&at, "oneOf"),
                    "InvalidInstructionError",
                    "wait needs oneOf (a list)",
                ));
            }
            Instr::Wait(tpl(arg, &at)?)
        }
        "fetch" => {
            let m = object(arg, &at, name)?;
            if m.get("url")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return Err(Invalid::new(
                    &member(&at, "url"),
                    "InvalidInstructionError",
                    "fetch needs a url",
                ));
            }
            Instr::Fetch(tpl(arg, &at)?)
        }
        "conditions" => {
            let m = object(arg, &at, name)?;
            let mut branches = Vec::new();
            let mut default = Vec::new();
            for (key, body) in m {
                let p = format!("{at}[{key:?}]");
                let body = if body.is_null() {
                    Vec::new()
                } else {
                    list(body, &p, depth + 1)?
                };
                if key == "default" {
                    default = body;
                } else {
                    let e = expr::parse(key)
                        .map_err(|msg| Invalid::new(&p, "InvalidExpressionSyntax", msg))?;
                    branches.push((e, body));
                }
            }
            Instr::Conditions { branches, default }
        }
        "repeat" => {
            let m = object(arg, &at, name)?;
            if !m.contains_key("on") && !m.contains_key("until") {
                return Err(Invalid::new(
                    &at,
                    "InvalidInstructionError",
                    "repeat needs on or until",
                ));
            }
            let body = list(
                m.get("do").unwrap_or(&Value::Null),
                &member(&at, "do"),
                depth + 1,
            )?;
            let mut rest = m.clone();
            rest.remove("do");
            Instr::Repeat {
                args: tpl(&Value::Object(rest), &at)?,
                body,
            }
        }
        "all" => Instr::All(list(arg, &at, depth + 1)?),
        "break" => Instr::Break(tpl(if arg.is_null() { &Value::Null } else { arg }, &at)?),
        "comment" => Instr::Comment,
        "try" => {
            let m = object(arg, &at, name)?;
            let body = list(
                m.get("do").unwrap_or(&Value::Null),
                &member(&at, "do"),
                depth + 1,
            )?;
            let catch = match m.get("catch") {
                None | Some(Value::Null) => None,
                Some(c) => Some(list(c, &member(&at, "catch"), depth + 1)?),
            };
            Instr::Try { body, catch }
        }
        "rateLimit" => {
            let m = object(arg, &at, name)?;
            for key in ["name", "limit", "window"] {
                if !m.contains_key(key) {
                    return Err(Invalid::new(
                        &at,
                        "InvalidInstructionError",
                        format!("rateLimit needs {key}"),
                    ));
                }
            }
            Instr::RateLimit(tpl(arg, &at)?)
        }
        "createUserTopic" | "joinUserTopic" => {
            let m = object(arg, &at, name)?;
            if !m.contains_key("topic") {
                return Err(Invalid::new(
                    &member(&at, "topic"),
                    "InvalidInstructionError",
                    format!("{name} needs a topic"),
                ));
            }
            let t = tpl(arg, &at)?;
            if name == "createUserTopic" {
                Instr::CreateUserTopic(t)
            } else {
                Instr::JoinUserTopic(t)
            }
        }
        n if UNSUPPORTED.contains(&n) => Instr::Unsupported(n.to_owned()),
        slug => {
            if !arg.is_object() {
                return Err(Invalid::new(
                    &at,
                    "InvalidInstructionError",
                    "an automation call takes a mapping of arguments",
                ));
            }
            Instr::Call {
                slug: slug.to_owned(),
                args: tpl(arg, &at)?,
            }
        }
    })
}

/// Parses a YAML automation document (YAML 1.2 core schema, merge keys) into JSON, within the
/// budget of one document ([`Budget::document`]).
#[cfg(feature = "yaml")]
pub fn from_yaml(text: &str) -> Result<Value, Invalid> {
    Budget::document().yaml(text).map_err(Invalid::from)
}

/// A document that could not be parsed, as the rule it breaks: `InvalidYamlError` for YAML that
/// is not well-formed, `DocumentTooComplex` or `PayloadTooLarge` for one over its budget.
impl From<DocumentError> for Invalid {
    fn from(e: DocumentError) -> Self {
        Invalid::new("", e.class().unwrap_or("InvalidYamlError"), e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(doc: Value) -> Invalid {
        compile(&doc, None).unwrap_err()
    }

    #[test]
    fn the_compact_form_reads_back_the_same_program() {
        let p = compile(
            &json!([
                {"set": {"name": "order", "value": {"id": "{{body.id}}", "n": 1.5, "tags": ["a", null, true], "deep": {"x": {"y": []}}}}},
                {"conditions": {"{{body.qty}} > 10 and {{body.country}} == \"FR\"": [{"emit": {"event": "big", "payload": {"q": "{% {{body.qty}} * 2 %}"}}}], "default": [{"comment": "x"}]}},
                {"repeat": {"on": "{{body.items}}", "do": [{"set": {"name": "seen[]", "value": "{{item}}"}}]}},
                {"try": {"do": [{"fetch": {"url": "https://example.com/{{body.id}}"}}], "catch": [{"break": {}}]}},
                {"set": {"name": "texts", "value": ["plain", "say \"hi\" \\ to é\n\u{1}", "", "\"", 0, -2.5e-7]}},
            ]),
            Some(&json!({"ok": true, "total": "{% round({{body.qty}} / 3, 2) %}", "big": 12345678901234567890u64})),
        )
        .expect("compiles");
        let text = p.encode();
        assert!(
            text.len() < serde_json::to_string(&p).expect("json").len(),
            "smaller than the JSON form"
        );
        assert_eq!(Program::decode(&text).expect("decodes"), p);
        assert!(
            Program::decode("not base64!")
                .unwrap_err()
                .contains("base64")
        );
        assert!(
            Program::decode("AAAA").is_err(),
            "bytes that are not a program are refused, not run"
        );
    }

    #[test]
    fn compiles_every_instruction_kind() {
        let p = compile(
            &json!([
                {"set": {"name": "a", "value": "{{b}}"}},
                {"delete": {"name": "a"}},
                {"emit": {"event": "done"}},
                {"wait": {"oneOf": [{"event": "x"}]}},
                {"fetch": {"url": "https://example.com"}},
                {"conditions": {"{{a}} > 1": [{"comment": "big"}], "default": []}},
                {"repeat": {"on": "{{l}}", "do": [{"break": {}}]}},
                {"all": [{"comment": "x"}]},
                {"try": {"do": [], "catch": []}},
                {"other": {"x": 1}},
                {"emit": null},
                {}
            ]),
            Some(&json!("{{a}}")),
        )
        .unwrap();
        assert_eq!(p.instructions.len(), 12);
        assert!(matches!(p.instructions[9], Instr::Call { ref slug, .. } if slug == "other"));
        assert!(matches!(p.instructions[10], Instr::Null(ref n) if n == "emit"));
        assert!(p.output.is_some());
    }

    #[test]
    fn errors_give_the_path_and_the_rule() {
        let e = err(json!([{"set": {"value": 1}}]));
        assert_eq!(
            (e.path.as_str(), e.rule.as_str()),
            ("do[0].set", "InvalidInstructionError")
        );
        let e = err(json!([{"set": {"name": 3}}]));
        assert_eq!(e.path, "do[0].set.name");
        let e = err(json!(["set"]));
        assert_eq!(e.path, "do[0]");
        let e = err(json!([{"conditions": {"{{a}}==1": []}}]));
        assert_eq!(
            (e.path.as_str(), e.rule.as_str()),
            ("do[0].conditions[\"{{a}}==1\"]", "InvalidExpressionSyntax")
        );
        let e = err(json!([{"repeat": {"on": [], "do": [{"emit": {"event": "{{a..b}}"}}]}}]));
        assert_eq!(
            (e.path.as_str(), e.rule.as_str()),
            ("do[0].repeat.do[0].emit", "InvalidVariableNameError")
        );
        let e = err(json!({"set": {}}));
        assert_eq!(e.path, "do");
        let e = err(json!([{"fetch": {"method": "get"}}]));
        assert_eq!(e.path, "do[0].fetch.url");
        let e = err(json!([{"set": {"name": "a", "type": "append"}}]));
        assert_eq!(e.path, "do[0].set.type");
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut v = json!([]);
        for _ in 0..60 {
            v = json!([{"all": v}]);
        }
        assert!(err(v).message.contains("nested"));
    }

    #[test]
    fn documents_are_closed() {
        assert_eq!(
            compile_document(&json!({"name": "a", "do": [], "bogus": 1}))
                .unwrap_err()
                .path,
            "bogus"
        );
        assert_eq!(
            compile_document(&json!({"do": []})).unwrap_err().path,
            "name"
        );
        assert!(
            compile_document(&json!({"name": "a", "do": [], "when": {"endpoint": true}})).is_ok()
        );
    }

    #[cfg(feature = "yaml")]
    #[test]
    fn yaml_follows_the_core_schema_and_merges() {
        let v = from_yaml("name: a\ndo:\n  - repeat:\n      on: [1]\n      do: []\nflag: yes\nbase: &b {x: 1}\nm:\n  <<: *b\n  y: 2\n").unwrap();
        assert_eq!(v["do"][0]["repeat"]["on"], json!([1]));
        assert_eq!(v["flag"], json!("yes"));
        assert_eq!(v["m"], json!({"x": 1, "y": 2}));
        assert_eq!(from_yaml("a: [").unwrap_err().rule, "InvalidYamlError");
    }
}
