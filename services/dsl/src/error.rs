//! Errors: [`DslError`] is a run-time error of the DSL (its `class` is the spec's error name,
//! `automation-dsl.md` §6.3); [`Invalid`] is a document that fails validation on save, with the
//! path of the offending member and the rule it breaks.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An error raised while running an automation (§6.3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{class}: {message}")]
pub struct DslError {
    /// `InvalidInstructionError`, `InvalidExpressionSyntax`, `ObjectNotFoundError`, …
    pub class: String,
    pub message: String,
    /// Structured details (`null` when none).
    pub details: Value,
}

impl DslError {
    pub fn new(class: impl Into<String>, message: impl Into<String>) -> Self {
        DslError {
            class: class.into(),
            message: message.into(),
            details: Value::Null,
        }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }
}

/// A document member that breaks a rule of the spec, found when the document is saved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{rule} at {path}: {message}")]
pub struct Invalid {
    /// Where in the document: `do[2].conditions['{{a}} > 1'][0].set.name`.
    pub path: String,
    /// The error class of the rule: `InvalidInstructionError`, `InvalidExpressionSyntax`,
    /// `InvalidVariableNameError`, `InvalidAutomationError`, `InvalidYamlError`, and for a
    /// document over its parse budget `DocumentTooComplex` or `PayloadTooLarge`.
    pub rule: String,
    pub message: String,
}

impl Invalid {
    pub fn new(path: &str, rule: &str, message: impl Into<String>) -> Self {
        Invalid {
            path: path.to_owned(),
            rule: rule.to_owned(),
            message: message.into(),
        }
    }
}
