//! Automation documents (`automation-dsl.md` §2.3, §3): the closed schema of a document, and
//! its compilation into the [`Program`] the interpreter runs (each instruction's own checks are
//! in [`crate::instructions`]); YAML loading behind the `yaml` feature.

use serde_json::Value;

#[cfg(feature = "yaml")]
use crate::budget::Budget;
use crate::budget::DocumentError;
use crate::error::Invalid;
use crate::instructions;
use crate::program::Program;
use crate::template;

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
    "retry",
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

/// Whether `do` or `output` mention the `$workspace` scope anywhere (a template, a condition,
/// a key): only such runs are handed the workspace's document.
pub fn reads_workspace(instructions: &Value, output: Option<&Value>) -> bool {
    fn mentions(v: &Value) -> bool {
        match v {
            Value::String(s) => s.contains("$workspace"),
            Value::Array(items) => items.iter().any(mentions),
            Value::Object(m) => m
                .iter()
                .any(|(k, v)| k.contains("$workspace") || mentions(v)),
            _ => false,
        }
    }
    mentions(instructions) || output.is_some_and(mentions)
}

/// Compiles `do` and `output` (what the automations API stores).
pub fn compile(instructions: &Value, output: Option<&Value>) -> Result<Program, Invalid> {
    let instructions = instructions::list(instructions, "do", 0)?;
    let output = match output {
        None | Some(Value::Null) => None,
        Some(o) => {
            Some(template::compile(o).map_err(|e| Invalid::new("output", e.rule, e.message))?)
        }
    };
    Ok(Program {
        instructions,
        output,
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
    use crate::program::Instr;
    use serde_json::json;

    #[test]
    fn only_programs_mentioning_workspace_read_it() {
        let uses = json!([{"conditions": {"{{$workspace.slug}} == shop": [], "default": []}}]);
        assert!(reads_workspace(&uses, None));
        assert!(reads_workspace(
            &json!([]),
            Some(&json!({"n": "{{$workspace.name}}"}))
        ));
        assert!(!reads_workspace(
            &json!([{"set": {"name": "w", "value": "{{workspace}}"}}]),
            Some(&json!("{{config.x}}"))
        ));
    }

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
                .to_string()
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
