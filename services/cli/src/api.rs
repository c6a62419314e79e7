//! The HTTP client every command of the `refract` CLI shares: one base URL and one bearer
//! token, requests built from API paths, answers decoded into the caller's types, and the
//! platform's errors (`{error, message, details?}`) turned into [`ApiError`] values that print
//! as `<Code>: <message>`. A request that never got an answer says which URL it was calling.

use std::fmt;

use anyhow::Context;
use bytes::Bytes;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Longest piece of a non-JSON error answer kept in the error's message.
const MAX_RAW_ERROR: usize = 300;

/// An error answer of the platform: its status, stable code and message.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// The HTTP status of the answer.
    pub status: StatusCode,
    /// The stable code (`ObjectNotFoundError`, `ForbiddenError`, …), or the status's reason
    /// when the answer was not the platform's JSON (a proxy's page, say).
    pub code: String,
    /// The human explanation.
    pub message: String,
    /// Structured context (the failing path of a document, …), when the platform sent any.
    pub details: Option<Value>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

/// The body of an error answer as the platform sends it.
#[derive(Deserialize)]
struct ErrorBody {
    error: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    details: Option<Value>,
}

impl ApiError {
    /// The error an unsuccessful answer (`status`, `body`) carries.
    fn from_answer(status: StatusCode, body: &[u8]) -> Self {
        match serde_json::from_slice::<ErrorBody>(body) {
            Ok(e) => ApiError {
                status,
                code: e.error,
                message: e.message,
                details: e.details.filter(|d| !d.is_null()),
            },
            Err(_) => {
                let text = String::from_utf8_lossy(body);
                let text: String = text.trim().chars().take(MAX_RAW_ERROR).collect();
                ApiError {
                    status,
                    code: format!("HTTP {status}"),
                    message: if text.is_empty() {
                        "the server answered without a body".into()
                    } else {
                        text
                    },
                    details: None,
                }
            }
        }
    }

    /// Whether `error` is (or was caused by) an API error of `status`.
    pub fn has_status(error: &anyhow::Error, status: StatusCode) -> bool {
        error
            .downcast_ref::<ApiError>()
            .is_some_and(|e| e.status == status)
    }
}

/// A request body other than JSON.
#[derive(Debug)]
pub struct Upload {
    /// The body: bytes, or a stream (see [`crate::progress`]).
    pub body: reqwest::Body,
    /// Its `content-type`.
    pub content_type: &'static str,
    /// Its length in bytes, sent as `content-length` so a stream is not chunked.
    pub len: u64,
    /// More headers (`x-refract-component-language`, …).
    pub headers: Vec<(&'static str, String)>,
}

/// A client of one platform, as one caller.
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Api {
    /// A client of the platform at `url` (`http(s)://host[:port][/prefix]`), sending `token`
    /// as its bearer token when there is one.
    pub fn new(url: &str, token: Option<String>) -> anyhow::Result<Self> {
        let parsed = reqwest::Url::parse(url)
            .with_context(|| format!("the platform URL {url:?} is not a URL"))?;
        anyhow::ensure!(
            matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some(),
            "the platform URL {url:?} must be http:// or https:// with a host"
        );
        Ok(Self {
            http: reqwest::Client::new(),
            base: url.trim_end_matches('/').to_owned(),
            token,
        })
    }

    /// The platform's base URL, without a trailing `/`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The same platform as another caller.
    pub fn with_token(&self, token: Option<String>) -> Self {
        Self {
            token,
            ..self.clone()
        }
    }

    /// The absolute URL of an API path (`/v2/…`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request to `url` with the caller's token.
    fn request(&self, method: Method, url: impl reqwest::IntoUrl) -> reqwest::RequestBuilder {
        let req = self.http.request(method, url);
        match &self.token {
            Some(token) => req.bearer_auth(token),
            None => req,
        }
    }

    /// Sends `req` (`method` `path`): the answer when it is a success, else its [`ApiError`];
    /// a failure to get any answer names the URL.
    async fn send(
        &self,
        method: &Method,
        path: &str,
        req: reqwest::RequestBuilder,
    ) -> anyhow::Result<reqwest::Response> {
        let res = req
            .send()
            .await
            .with_context(|| format!("{method} {} failed", self.url(path)))?;
        if res.status().is_success() {
            return Ok(res);
        }
        let status = res.status();
        let body = res.bytes().await.unwrap_or_default();
        Err(ApiError::from_answer(status, &body).into())
    }

    async fn decode<T: DeserializeOwned>(
        &self,
        method: &Method,
        path: &str,
        res: reqwest::Response,
    ) -> anyhow::Result<T> {
        let body = res
            .bytes()
            .await
            .with_context(|| format!("reading the answer of {method} {}", self.url(path)))?;
        serde_json::from_slice(&body).with_context(|| {
            format!(
                "the answer of {method} {} is not what the CLI expects",
                self.url(path)
            )
        })
    }

    /// `method` `path` with an optional JSON body; the JSON answer as `T`.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<T> {
        let mut req = self.request(method.clone(), self.url(path));
        if let Some(body) = body {
            req = req.json(body);
        }
        let res = self.send(&method, path, req).await?;
        self.decode(&method, path, res).await
    }

    /// `GET path?query`; the JSON answer as `T`.
    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> anyhow::Result<T> {
        let url = reqwest::Url::parse_with_params(&self.url(path), query)
            .with_context(|| format!("the URL {} with its query", self.url(path)))?;
        let req = self.request(Method::GET, url);
        let res = self.send(&Method::GET, path, req).await?;
        self.decode(&Method::GET, path, res).await
    }

    /// `GET path`: the answer's bytes, whatever their type (an export's zip).
    pub async fn download(&self, path: &str) -> anyhow::Result<Bytes> {
        let req = self.request(Method::GET, self.url(path));
        let res = self.send(&Method::GET, path, req).await?;
        res.bytes()
            .await
            .with_context(|| format!("downloading {}", self.url(path)))
    }

    /// `method` `path` with `upload` as the body; the JSON answer as `T`.
    pub async fn upload<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        upload: Upload,
    ) -> anyhow::Result<T> {
        let mut req = self
            .request(method.clone(), self.url(path))
            .header(CONTENT_TYPE, upload.content_type)
            .header(CONTENT_LENGTH, upload.len);
        for (name, value) in upload.headers {
            req = req.header(name, value);
        }
        let res = self.send(&method, path, req.body(upload.body)).await?;
        self.decode(&method, path, res).await
    }
}

/// Fetches every page of a paged listing (`page`, `limit` as the workspaces service takes
/// them), in order.
pub async fn all_pages<T: DeserializeOwned>(api: &Api, path: &str) -> anyhow::Result<Vec<T>> {
    /// The service's largest page.
    const PAGE: usize = 100;
    /// A bound on the pages read, should a server keep answering full pages.
    const MAX_PAGES: usize = 1_000;
    let mut all = Vec::new();
    for page in 0..MAX_PAGES {
        let items: Vec<T> = api
            .get(
                path,
                &[("limit", PAGE.to_string()), ("page", page.to_string())],
            )
            .await?;
        let last = items.len() < PAGE;
        all.extend(items);
        if last {
            break;
        }
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_platform_error_keeps_its_code_message_and_details() {
        let e = ApiError::from_answer(
            StatusCode::BAD_REQUEST,
            br#"{"error":"InvalidInstructionError","message":"unknown instruction","details":[{"path":"do[0]"}]}"#,
        );
        assert_eq!(
            e.to_string(),
            "InvalidInstructionError: unknown instruction"
        );
        assert_eq!(e.details, Some(serde_json::json!([{"path": "do[0]"}])));
    }

    #[test]
    fn a_foreign_error_page_is_named_by_its_status() {
        let e = ApiError::from_answer(StatusCode::BAD_GATEWAY, b"<html>bad gateway</html>\n");
        assert_eq!(
            e.to_string(),
            "HTTP 502 Bad Gateway: <html>bad gateway</html>"
        );
        let empty = ApiError::from_answer(StatusCode::NOT_FOUND, b"");
        assert_eq!(
            empty.to_string(),
            "HTTP 404 Not Found: the server answered without a body"
        );
    }

    #[test]
    fn only_http_urls_with_a_host_are_platforms() {
        assert!(Api::new("ftp://example.org", None).is_err());
        assert!(Api::new("not a url", None).is_err());
        let api = Api::new("http://127.0.0.1:3000/", None).unwrap();
        assert_eq!(api.url("/v2/me"), "http://127.0.0.1:3000/v2/me");
    }
}
