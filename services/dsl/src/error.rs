//! Errors: [`DslError`] is a run-time error of the DSL (its `class` is the spec's error name,
//! `automation-dsl.md` §6.3); [`Invalid`] is a document that fails validation on save, with the
//! path of the offending member and the rule it breaks. The parsers' own errors are typed too:
//! [`SyntaxError`] (an expression or a variable path), [`TemplateError`] (a template, with the
//! rule it breaks) and [`DecodeError`] (a compiled program that cannot be read back); their
//! text is the message users see.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An error raised while running an automation (§6.3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{class}: {message}")]
pub struct DslError {
    /// `InvalidInstructionError`, `InvalidExpressionSyntax`, `ObjectNotFoundError`, …
    pub class: String,
    /// What went wrong, for a person.
    pub message: String,
    /// Structured details (`null` when none).
    pub details: Value,
}

impl DslError {
    /// An error of `class` without details.
    pub fn new(class: impl Into<String>, message: impl Into<String>) -> Self {
        DslError {
            class: class.into(),
            message: message.into(),
            details: Value::Null,
        }
    }

    /// The same error with structured `details` (what `$error.details` shows).
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
    /// What breaks the rule, for a person.
    pub message: String,
}

impl Invalid {
    /// The member at `path` breaks `rule`.
    pub fn new(path: &str, rule: &str, message: impl Into<String>) -> Self {
        Invalid {
            path: path.to_owned(),
            rule: rule.to_owned(),
            message: message.into(),
        }
    }
}

/// An expression or a variable path that does not parse; the text says where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SyntaxError(pub String);

impl SyntaxError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        SyntaxError(message.into())
    }
}

/// An `arguments` map (a TypedArgument map, `automation-dsl.md` §2.4) that is not a valid
/// JSON schema; the text says why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SchemaError(pub String);

/// A `jsonmatch` query that is not one (an unknown operator, an operand of the wrong type, a
/// bad `$regex`); the text says which.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct QueryError(pub String);

/// A template that does not compile: the rule it breaks (`InvalidVariableNameError`,
/// `InvalidExpressionSyntax`) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
    /// The error class of the rule, as [`Invalid::rule`] reports it.
    pub rule: &'static str,
    /// What breaks the rule, for a person.
    pub message: String,
}

/// A compiled program that cannot be read back ([`Program::decode`](crate::Program::decode)):
/// the runtime handed the interpreter something it did not encode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The text is not base64.
    #[error("not base64: {0}")]
    NotBase64(String),
    /// The bytes are not a program.
    #[error("not a compiled program: {0}")]
    NotAProgram(String),
    /// A program followed by bytes that belong to none.
    #[error("not a compiled program: {0} bytes after its end")]
    TrailingBytes(usize),
}
