//! DSL automations on save (`spec/automation-dsl.md` §2.3, §9): `do` and `output` are
//! validated and compiled with `refract-dsl` before the automation is stored, so a document
//! that would fail to load never reaches the runtime. Errors are 400s naming the rule broken
//! (`InvalidInstructionError`, `InvalidExpressionSyntax`, `InvalidVariableNameError`, …) with
//! the path of the offending member.

use axum::http::StatusCode;
use refract_core::model::Automation;
use refract_dsl::Invalid;
use refract_http::ApiError;
use serde_json::{Value, json};

/// Checks that a DSL automation's `do` and `output` compile.
pub fn check(a: &Automation) -> Result<(), ApiError> {
    refract_dsl::compile(
        a.instructions.as_ref().unwrap_or(&Value::Null),
        a.output.as_ref(),
    )
    .map(drop)
    .map_err(invalid)
}

/// The 400 of a document that breaks a rule: `{error: <rule>, message, details: [{path, rule,
/// message}]}`.
pub fn invalid(e: Invalid) -> ApiError {
    let code = match e.rule.as_str() {
        "InvalidExpressionSyntax" => "InvalidExpressionSyntax",
        "InvalidVariableNameError" => "InvalidVariableNameError",
        "InvalidYamlError" => "InvalidYamlError",
        "DocumentTooComplex" => "DocumentTooComplex",
        "InvalidAutomationError" => "InvalidAutomationError",
        "InvalidSlugError" => "InvalidSlugError",
        "InvalidScheduleError" => "InvalidScheduleError",
        _ => "InvalidInstructionError",
    };
    ApiError::new(
        StatusCode::BAD_REQUEST,
        code,
        format!("{}: {}", e.path, e.message),
    )
    .with_details(json!([{ "path": e.path, "rule": e.rule, "message": e.message }]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn automation(instructions: Value, output: Option<Value>) -> Automation {
        let mut v = json!({"slug": "a", "name": "a", "kind": "dsl", "do": instructions,
            "createdAt": "2026-11-27T10:00:00.000Z", "createdBy": "u",
            "updatedAt": "2026-11-27T10:00:00.000Z", "updatedBy": "u"});
        if let Some(o) = output {
            v["output"] = o;
        }
        serde_json::from_value(v).expect("automation")
    }

    #[test]
    fn valid_documents_pass_and_bad_ones_name_path_and_rule() {
        assert!(
            check(&automation(
                json!([{"set": {"name": "a", "value": "{{b}}"}}]),
                Some(json!("{{a}}"))
            ))
            .is_ok()
        );
        let e = check(&automation(json!([{"emit": {"payload": {}}}]), None)).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.code, "InvalidInstructionError");
        assert_eq!(
            e.details,
            Some(
                json!([{"path": "do[0].emit.event", "rule": "InvalidInstructionError",
            "message": "emit needs an event (a string)"}])
            )
        );
        let e = check(&automation(json!([]), Some(json!("{% 1 + %}")))).unwrap_err();
        assert_eq!(e.code, "InvalidExpressionSyntax");
    }
}
