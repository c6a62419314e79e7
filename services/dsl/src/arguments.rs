//! Typed arguments as a JSON Schema (`automation-dsl.md` §2.4): the `arguments` map of an
//! automation, checked against its initial locals when `validateArguments` is on, and an app's
//! config schema, checked against an instance's config.
//!
//! A TypedArgument map becomes a draft-07 `{type: object, properties}`: `required: true` on a
//! field joins its parent's `required` list, `localized:X` accepts X or a language → X map, and
//! the UI keywords (`secret`, `event`, `ui:widget`, `ui:options`) are dropped. Formats are
//! asserted: the validator's own, the ajv-formats ones it lacks (`uuid`, `url`, `byte`) and
//! the four Prisme.ai adds (`workspaceId`, `objectId`, `identifier`, `name`). Patterns use the
//! `regex` engine (RE2 syntax, linear time: a hostile pattern cannot stall a run).

use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value, json};

use crate::error::SchemaError;

/// Most failures reported for one value (the rest are dropped).
pub const MAX_REPORTED: usize = 20;

/// The draft-07 schema of a TypedArgument map.
pub fn json_schema(arguments: &Map<String, Value>) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for (name, arg) in arguments {
        let (schema, is_required) = argument_schema(arg);
        if is_required {
            required.push(json!(name));
        }
        properties.insert(name.clone(), schema);
    }
    json!({"type": "object", "properties": properties, "required": required})
}

fn argument_schema(arg: &Value) -> (Value, bool) {
    let Value::Object(m) = arg else {
        return (json!({}), false);
    };
    let mut out = m.clone();
    let required = matches!(out.get("required"), Some(Value::Bool(true)));
    if matches!(out.get("required"), Some(Value::Bool(_))) {
        out.remove("required");
    }
    for key in ["secret", "event", "ui:widget", "ui:options"] {
        out.remove(key);
    }
    if let Some(Value::String(t)) = out.get("type")
        && let Some(base) = t.strip_prefix("localized:")
    {
        let base = base.to_owned();
        out.insert("type".into(), json!([base, "object"]));
    }
    if let Some(Value::Object(props)) = out.get("properties").cloned() {
        let nested = json_schema(&props);
        out.insert("properties".into(), nested["properties"].clone());
        if nested["required"].as_array().is_some_and(|r| !r.is_empty())
            && !out.contains_key("required")
        {
            out.insert("required".into(), nested["required"].clone());
        }
    }
    if let Some(items @ Value::Object(_)) = out.get("items").cloned() {
        out.insert("items".into(), argument_schema(&items).0);
    }
    (Value::Object(out), required)
}

/// One failure: where in the value (a JSON pointer) and what rule it breaks. Messages never
/// repeat the value, which may be a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Where in the value, as a JSON pointer.
    pub path: String,
    /// The rule it breaks.
    pub message: String,
}

/// A compiled TypedArgument map.
#[derive(Debug)]
pub struct Arguments {
    validator: jsonschema::Validator,
}

impl Arguments {
    /// Compiles `arguments`; `Err` says why the map is not a valid schema.
    pub fn compile(arguments: &Map<String, Value>) -> Result<Self, SchemaError> {
        let schema = json_schema(arguments);
        let validator = formats(jsonschema::draft7::options())
            .should_validate_formats(true)
            .with_pattern_options(jsonschema::PatternOptions::regex())
            .build(&schema)
            .map_err(|e| SchemaError(e.masked().to_string()))?;
        Ok(Arguments { validator })
    }

    /// The failures of `value` (at most [`MAX_REPORTED`]); empty when it conforms.
    pub fn check(&self, value: &Value) -> Vec<Failure> {
        self.validator
            .iter_errors(value)
            .take(MAX_REPORTED)
            .map(|e| Failure {
                path: e.instance_path().as_str().to_owned(),
                message: e.masked().to_string(),
            })
            .collect()
    }
}

fn matcher(pattern: &'static str) -> impl Fn(&str) -> bool + Send + Sync + 'static {
    let re = LazyLock::new(move || Regex::new(pattern).expect("a valid built-in format pattern"));
    move |s| re.is_match(s)
}

fn formats(
    options: jsonschema::ValidationOptions<'static>,
) -> jsonschema::ValidationOptions<'static> {
    options
        .with_format("workspaceId", matcher(r"^[\w_-]{7}$"))
        .with_format("objectId", matcher(r"^[a-fA-F0-9]{24}$"))
        .with_format("identifier", matcher(r"^[a-zA-Z0-9_ -]{12,48}$"))
        .with_format("name", matcher(r"(?i)^[a-z ,.'-]{2,60}$"))
        .with_format(
            "uuid",
            matcher(r"(?i)^(?:urn:uuid:)?[0-9a-f]{8}-(?:[0-9a-f]{4}-){3}[0-9a-f]{12}$"),
        )
        .with_format("url", matcher(r"(?i)^(?:https?|ftp)://[^\s/$.?#][^\s]*$"))
        .with_format(
            "byte",
            matcher(r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(arguments: Value) -> Arguments {
        Arguments::compile(arguments.as_object().expect("a map")).expect("compiles")
    }

    fn paths(failures: &[Failure]) -> Vec<&str> {
        failures.iter().map(|f| f.path.as_str()).collect()
    }

    #[test]
    fn typed_arguments_become_a_draft7_schema() {
        let schema = json_schema(
            json!({
                "title": {"type": "localized:string", "required": true, "secret": true, "ui:widget": "textarea"},
                "items": {"type": "array", "items": {"type": "object", "properties": {"id": {"type": "number", "required": true}}}}
            })
            .as_object()
            .expect("map"),
        );
        assert_eq!(schema["required"], json!(["title"]));
        assert_eq!(
            schema["properties"]["title"],
            json!({"type": ["string", "object"]})
        );
        assert_eq!(
            schema["properties"]["items"]["items"]["required"],
            json!(["id"])
        );
    }

    #[test]
    fn values_are_checked_with_paths_types_required_and_formats() {
        let args = compile(json!({
            "body": {"type": "object", "properties": {
                "email": {"type": "string", "format": "email", "required": true},
                "ws": {"type": "string", "format": "workspaceId"},
                "count": {"type": "number", "minimum": 1},
                "code": {"type": "string", "pattern": "^[A-Z]{3}$"}
            }}
        }));
        assert!(
            args.check(
                &json!({"body": {"email": "a@b.io", "ws": "abc_123", "count": 2, "code": "ABC"}})
            )
            .is_empty()
        );
        let failures = args.check(
            &json!({"body": {"email": "nope", "ws": "toolongid", "count": 0, "code": "abc"}}),
        );
        let mut got = paths(&failures);
        got.sort_unstable();
        assert_eq!(
            got,
            vec!["/body/code", "/body/count", "/body/email", "/body/ws"]
        );
        assert_eq!(
            paths(&args.check(&json!({"body": {}}))),
            vec!["/body"],
            "email is required"
        );
        // Messages name the rule, not the (maybe secret) value.
        assert!(
            failures.iter().all(|f| !f.message.contains("toolongid")),
            "{failures:?}"
        );
    }

    #[test]
    fn prisme_formats_and_the_ajv_ones_draft7_lacks_are_asserted() {
        let cases = [
            ("objectId", "507f1f77bcf86cd799439011", "507f1f77"),
            ("identifier", "my identifier_1", "short"),
            ("name", "O'Brien", "R2-D2"),
            ("uuid", "123e4567-e89b-12d3-a456-426614174000", "123e4567"),
            ("url", "https://refract.dev/x", "refract.dev"),
            ("byte", "aGVsbG8=", "a"),
        ];
        for (format, good, bad) in cases {
            let args = compile(json!({"v": {"type": "string", "format": format}}));
            assert!(
                args.check(&json!({"v": good})).is_empty(),
                "{format} accepts {good}"
            );
            assert_eq!(
                paths(&args.check(&json!({"v": bad}))),
                vec!["/v"],
                "{format} refuses {bad}"
            );
        }
    }

    #[test]
    fn bad_schemas_and_many_failures_are_bounded() {
        assert!(
            Arguments::compile(
                json!({"v": {"type": "no-such-type"}})
                    .as_object()
                    .expect("map")
            )
            .is_err()
        );
        assert!(
            Arguments::compile(
                json!({"v": {"type": "string", "pattern": "("}})
                    .as_object()
                    .expect("map")
            )
            .is_err()
        );
        let many: Map<String, Value> = (0..50)
            .map(|i| (format!("f{i}"), json!({"type": "number", "required": true})))
            .collect();
        let args = Arguments::compile(&many).expect("compiles");
        assert_eq!(
            args.check(&json!({})).len(),
            MAX_REPORTED,
            "50 missing, 20 reported"
        );
        let wrong: Map<String, Value> = (0..50).map(|i| (format!("f{i}"), json!("x"))).collect();
        assert_eq!(args.check(&Value::Object(wrong)).len(), MAX_REPORTED);
    }
}
