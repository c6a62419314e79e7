//! Outbound HTTP under the workspace's egress policy: [`fetch`] a [`Request`], get a
//! [`Response`].

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::__bindings::refract::automation::http as host;
use crate::error::{CODE_FETCH_FAILED, Error};
use crate::invocation::find;

/// An outbound request; build it, then [`send`](Request::send) it (or pass it to [`fetch`]).
///
/// ```no_run
/// use refract_sdk::http::Request;
/// # fn f() -> Result<(), refract_sdk::Error> {
/// let resp = Request::post("https://api.example.com/orders")
///     .header("authorization", "Bearer ...")
///     .json(&serde_json::json!({"id": 1}))
///     .send()?;
/// let body: serde_json::Value = resp.json()?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a Request does nothing until it is sent"]
pub struct Request {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Result<Option<Vec<u8>>, String>,
}

impl Request {
    /// A request with `method` (sent upper-case) to `url`, an absolute `http://` or `https://`
    /// URL.
    pub fn new(method: &str, url: impl Into<String>) -> Self {
        Self {
            method: method.to_ascii_uppercase(),
            url: url.into(),
            headers: Vec::new(),
            body: Ok(None),
        }
    }

    /// A `GET` request.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new("GET", url)
    }

    /// A `POST` request.
    pub fn post(url: impl Into<String>) -> Self {
        Self::new("POST", url)
    }

    /// A `PUT` request.
    pub fn put(url: impl Into<String>) -> Self {
        Self::new("PUT", url)
    }

    /// A `DELETE` request.
    pub fn delete(url: impl Into<String>) -> Self {
        Self::new("DELETE", url)
    }

    /// Adds a header (repeatable).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the raw body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Ok(Some(body.into()));
        self
    }

    /// Sets the body to `value` as JSON and adds `content-type: application/json` unless a
    /// content type is already set. A value that fails to serialize makes `send` return
    /// [`FetchError::InvalidRequest`].
    pub fn json(mut self, value: &impl Serialize) -> Self {
        self.body = serde_json::to_vec(value)
            .map(Some)
            .map_err(|e| format!("body could not be serialized: {e}"));
        if find(&self.headers, "content-type", true).is_none() {
            self.headers
                .push(("content-type".to_owned(), "application/json".to_owned()));
        }
        self
    }

    pub(crate) fn into_raw(self) -> Result<host::Request, FetchError> {
        Ok(host::Request {
            body: self.body.map_err(FetchError::InvalidRequest)?,
            method: self.method,
            url: self.url,
            headers: self.headers,
        })
    }

    /// Sends the request; same as [`fetch`].
    pub fn send(self) -> Result<Response, FetchError> {
        fetch(self)
    }
}

/// The answer of the remote server, whatever its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Response headers with lower-case names.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// `true` for a 2xx status.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first header named `name` (compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        find(&self.headers, name, true)
    }

    /// The body parsed as JSON into `T` (`serde_json::Value` for any JSON).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// The body as UTF-8 text.
    pub fn text(&self) -> Result<&str, std::str::Utf8Error> {
        std::str::from_utf8(&self.body)
    }
}

/// Why a request got no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// The egress policy refused the host or the address it resolved to (not on the
    /// workspace's allow-list; a loopback, private, link-local, unique-local or
    /// cloud-metadata address), or a redirect led there. The text says which.
    Denied(String),
    /// The connect or total timeout passed.
    Timeout,
    /// The response body is over the size cap (bytes, given).
    TooLarge(u64),
    /// DNS failed, the connection was refused or reset, TLS failed; the text says which.
    ConnectionFailed(String),
    /// The method, URL or a header is malformed, or the body could not be serialized.
    InvalidRequest(String),
    /// The run already made as many requests as its limit allows (the limit, given).
    LimitExceeded(u32),
}

impl FetchError {
    fn from_raw(e: host::FetchError) -> Self {
        match e {
            host::FetchError::Denied(s) => Self::Denied(s),
            host::FetchError::Timeout => Self::Timeout,
            host::FetchError::TooLarge(n) => Self::TooLarge(n),
            host::FetchError::ConnectionFailed(s) => Self::ConnectionFailed(s),
            host::FetchError::InvalidRequest(s) => Self::InvalidRequest(s),
            host::FetchError::LimitExceeded(n) => Self::LimitExceeded(n),
        }
    }

    /// A stable camelCase name of the variant (`details.kind` once converted into [`Error`]).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Denied(_) => "denied",
            Self::Timeout => "timeout",
            Self::TooLarge(_) => "tooLarge",
            Self::ConnectionFailed(_) => "connectionFailed",
            Self::InvalidRequest(_) => "invalidRequest",
            Self::LimitExceeded(_) => "limitExceeded",
        }
    }
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Denied(s) => write!(f, "request denied by the egress policy: {s}"),
            Self::Timeout => write!(f, "request timed out"),
            Self::TooLarge(n) => write!(f, "response body over the size cap ({n} bytes)"),
            Self::ConnectionFailed(s) => write!(f, "connection failed: {s}"),
            Self::InvalidRequest(s) => write!(f, "invalid request: {s}"),
            Self::LimitExceeded(n) => write!(f, "fetch limit reached ({n} per run)"),
        }
    }
}

impl std::error::Error for FetchError {}

impl From<FetchError> for Error {
    fn from(e: FetchError) -> Self {
        Error::sdk(CODE_FETCH_FAILED, e.kind(), e.to_string(), None)
    }
}

/// Sends `request` and returns the response. Redirects are followed (at most 5), each hop
/// re-checked against the egress policy.
pub fn fetch(request: Request) -> Result<Response, FetchError> {
    let raw = request.into_raw()?;
    fetch_result(host::fetch(&raw))
}

/// What the host answered to a fetch.
pub(crate) fn fetch_result(
    result: Result<host::Response, host::FetchError>,
) -> Result<Response, FetchError> {
    result
        .map(|r| Response {
            status: r.status,
            headers: r.headers,
            body: r.body,
        })
        .map_err(FetchError::from_raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_produces_the_raw_request() {
        let raw = Request::new("post", "https://x.test/a")
            .header("x-a", "1")
            .json(&serde_json::json!({"k": "v"}))
            .into_raw()
            .unwrap();
        assert_eq!(raw.method, "POST");
        assert_eq!(raw.url, "https://x.test/a");
        assert_eq!(
            raw.headers,
            vec![
                ("x-a".to_owned(), "1".to_owned()),
                ("content-type".to_owned(), "application/json".to_owned())
            ]
        );
        assert_eq!(raw.body.as_deref(), Some(br#"{"k":"v"}"#.as_slice()));
        let raw = Request::get("https://x.test")
            .header("Content-Type", "text/plain")
            .json(&1)
            .into_raw()
            .unwrap();
        assert_eq!(raw.headers.len(), 1, "an explicit content type is kept");
        assert_eq!(
            Request::get("https://x.test").into_raw().unwrap().body,
            None
        );
    }

    #[test]
    fn unserializable_body_is_an_invalid_request() {
        let mut m = std::collections::BTreeMap::new();
        m.insert((1, 2), 3);
        let err = Request::post("https://x.test")
            .json(&m)
            .into_raw()
            .unwrap_err();
        assert_eq!(err.kind(), "invalidRequest");
    }

    #[test]
    fn response_helpers() {
        let r = Response {
            status: 201,
            headers: vec![("content-type".into(), "application/json".into())],
            body: br#"{"a":[1,2]}"#.to_vec(),
        };
        assert!(r.is_success());
        assert_eq!(r.header("Content-Type"), Some("application/json"));
        assert_eq!(r.json::<serde_json::Value>().unwrap()["a"][1], 2);
        assert!(r.json::<String>().is_err());
        let bad = Response {
            status: 500,
            headers: vec![],
            body: vec![0xc3],
        };
        assert!(!bad.is_success());
        assert!(bad.text().is_err());
        let e: Error = bad.text().unwrap_err().into();
        assert_eq!(e.code, crate::error::CODE_INVALID_UTF8);
    }

    #[test]
    fn fetch_errors_convert() {
        assert_eq!(
            FetchError::from_raw(host::FetchError::Timeout),
            FetchError::Timeout
        );
        let e: Error = FetchError::from_raw(host::FetchError::Denied("10.0.0.1".into())).into();
        assert_eq!(e.code, CODE_FETCH_FAILED);
        assert_eq!(e.details.unwrap()["kind"], "denied");
        assert!(e.message.contains("10.0.0.1"));
    }
}
