//! [`Output`]: the result of a successful run.

use serde::Serialize;
use serde_json::Value;

use crate::__bindings::refract::automation::types as raw;
use crate::error::{CODE_INVALID_OUTPUT, Error};

/// The result of a successful run: a JSON body, plus the HTTP status and headers of a webhook
/// response.
///
/// For a webhook run the body becomes the response body: a JSON string is sent as
/// `text/plain`, anything else as `application/json`. Status and headers are ignored for
/// other triggers.
///
/// ```
/// use refract_sdk::Output;
/// let created = Output::json(&serde_json::json!({"id": 7})).status(201).header("location", "/orders/7");
/// let hello = Output::text("hello");
/// ```
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub struct Output {
    /// The body as JSON text, or why it could not be serialized.
    body: Result<String, String>,
    status: Option<u16>,
    headers: Vec<(String, String)>,
}

impl Output {
    /// An output whose body is `value` serialized to JSON. A value that fails to serialize
    /// makes the run fail with an `InvalidOutput` error (it does not panic).
    pub fn json(value: &impl Serialize) -> Self {
        Self::from_body(serde_json::to_string(value).map_err(|e| e.to_string()))
    }

    /// An output whose body is the JSON string `text` (sent as `text/plain` by a webhook).
    pub fn text(text: impl Into<String>) -> Self {
        Self::from(Value::String(text.into()))
    }

    /// An output whose body is JSON `null`.
    pub fn empty() -> Self {
        Self::from(Value::Null)
    }

    fn from_body(body: Result<String, String>) -> Self {
        Self {
            body,
            status: None,
            headers: Vec::new(),
        }
    }

    /// Sets the webhook response status, 100 to 599 (default 200); another value makes the run
    /// fail with an `InvalidOutput` error.
    pub fn status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// Adds a webhook response header (repeatable).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The raw output, or the error the run returns instead.
    pub(crate) fn into_raw(self) -> Result<raw::Output, Error> {
        let body = self
            .body
            .map_err(|e| invalid(format!("the output could not be serialized: {e}")))?;
        let status = self.status.unwrap_or(200);
        if !(100..=599).contains(&status) {
            return Err(invalid(format!(
                "HTTP status {status} is outside 100 to 599"
            )));
        }
        let has_http = self.status.is_some() || !self.headers.is_empty();
        let http = has_http.then_some(raw::HttpResponse {
            status,
            headers: self.headers,
        });
        Ok(raw::Output { body, http })
    }
}

fn invalid(message: String) -> Error {
    Error::sdk(CODE_INVALID_OUTPUT, "invalidOutput", message, None)
}

impl From<Value> for Output {
    fn from(value: Value) -> Self {
        // Serializing a `Value` cannot fail: its map keys are strings.
        Self::from_body(Ok(value.to_string()))
    }
}

/// A string output is the JSON string (sent as `text/plain` by a webhook), like
/// [`Output::text`].
impl From<String> for Output {
    fn from(text: String) -> Self {
        Self::text(text)
    }
}

impl From<&str> for Output {
    fn from(text: &str) -> Self {
        Self::text(text)
    }
}

/// `()` is the output `null`.
impl From<()> for Output {
    fn from((): ()) -> Self {
        Self::empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_output_without_http_parts() {
        let raw = Output::json(&serde_json::json!({"a": 1}))
            .into_raw()
            .unwrap();
        assert_eq!(raw.body, r#"{"a":1}"#);
        assert!(raw.http.is_none());
    }

    #[test]
    fn status_and_headers_make_an_http_response() {
        let raw = Output::text("hi")
            .status(201)
            .header("x-a", "1")
            .into_raw()
            .unwrap();
        assert_eq!(raw.body, r#""hi""#);
        let http = raw.http.unwrap();
        assert_eq!(http.status, 201);
        assert_eq!(http.headers, vec![("x-a".to_owned(), "1".to_owned())]);
        let raw = Output::empty().header("x-b", "2").into_raw().unwrap();
        assert_eq!((raw.body.as_str(), raw.http.unwrap().status), ("null", 200));
    }

    #[test]
    fn conversions() {
        assert_eq!(Output::from("x"), Output::text("x"));
        assert_eq!(Output::from(String::from("x")), Output::text("x"));
        assert_eq!(Output::from(()).into_raw().unwrap().body, "null");
        assert_eq!(
            Output::from(serde_json::json!([1]))
                .into_raw()
                .unwrap()
                .body,
            "[1]"
        );
    }

    #[test]
    fn bad_outputs_are_errors_not_panics() {
        let mut m = std::collections::BTreeMap::new();
        m.insert((1, 2), 3);
        assert_eq!(
            Output::json(&m).into_raw().unwrap_err().code,
            CODE_INVALID_OUTPUT
        );
        assert_eq!(
            Output::empty().status(99).into_raw().unwrap_err().code,
            CODE_INVALID_OUTPUT
        );
        assert_eq!(
            Output::empty().status(600).into_raw().unwrap_err().code,
            CODE_INVALID_OUTPUT
        );
    }
}
