//! DSL automations on save (`spec/automation-dsl.md` §2.3, §9): `do` and `output` are
//! validated and compiled with `refract-dsl` before the automation is stored, so a document
//! that would fail to load never reaches the runtime. Errors are 400s naming the rule broken
//! (`InvalidInstructionError`, `InvalidExpressionSyntax`, `InvalidVariableNameError`, …) with
//! the path of the offending member.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use refract_core::model::Automation;
use refract_dsl::Invalid;
use refract_http::{ApiError, Json};
use serde_json::{Map, Value, json};

/// An automation body as JSON, or as YAML (`application/yaml`, `text/yaml`, `application/x-yaml`,
/// 1.2 core schema with merge keys): a Prisme.ai `automations/<slug>.yml` can be posted as is.
#[derive(Debug)]
pub struct DocBody(pub Map<String, Value>);

/// Is `content_type` one of the YAML media types?
pub fn is_yaml(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    matches!(
        essence.as_str(),
        "application/yaml" | "text/yaml" | "application/x-yaml" | "text/x-yaml"
    )
}

impl<S: Send + Sync> FromRequest<S> for DocBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let yaml = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(is_yaml);
        if !yaml {
            let Json(body) = Json::<Map<String, Value>>::from_request(req, state).await?;
            return Ok(DocBody(body));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PayloadTooLarge",
                "the body is over this route's limit",
            )
        })?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| ApiError::validation("body", "YAML must be UTF-8"))?;
        match refract_dsl::from_yaml(text).map_err(invalid)? {
            Value::Object(m) => Ok(DocBody(m)),
            _ => Err(ApiError::validation(
                "body",
                "an automation document is a mapping",
            )),
        }
    }
}

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
