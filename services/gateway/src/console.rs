//! The console: the web UI the gateway serves at `/` (`spec/http-api.md` §1.1). It is plain ES
//! modules and CSS from `services/gateway/console/`, embedded in the binary by `rust-embed`
//! (read from that folder at run time in debug builds, so editing a file needs no rebuild), and
//! it speaks only the public API, so this module only serves files.
//!
//! Every path outside the API (`/v2`, `/sys`, `/metrics`, `/oidc`, `/.well-known`) belongs to
//! the console: a known file is served as is, any other extension-less path gets `index.html`
//! (client-side routes), and a missing file with an extension is a JSON 404. Files are
//! revalidated on every load (`no-cache`) against a content-hash `ETag`, so a new binary never
//! leaves a browser running stale modules, and an unchanged file costs a 304.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use refract_http::ApiError;
use rust_embed::RustEmbed;

use crate::GatewayState;
use crate::edge::RequestMeta;

#[derive(RustEmbed)]
#[folder = "console/"]
struct Assets;

/// Scripts, styles and connections only from the gateway's own origin (WebSocket included,
/// CSP 3 `'self'`); no inline code, no plugins, no framing. Charts are SVG built with DOM calls,
/// so `img-src` needs nothing beyond `'self'` and `data:` (favicon).
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; font-src 'self'; connect-src 'self'; manifest-src 'self'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'";

/// The API reference page (`/api.html`): the console's policy with inline styles allowed, which
/// the vendored viewer (RapiDoc) sets on its elements. Scripts stay `'self'` only, and what it
/// renders is the platform's own OpenAPI document, with nothing a tenant wrote.
const API_REFERENCE_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self'; connect-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'; object-src 'none'";

/// Path prefixes that are API, operations or reserved, never console pages.
const NOT_CONSOLE: &[&str] = &["/v2", "/sys", "/metrics", "/oidc", "/.well-known"];

/// Whether `path` belongs to the console rather than to the API.
pub fn is_console_path(path: &str) -> bool {
    !NOT_CONSOLE.iter().any(|prefix| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

/// The gateway's fallback: console paths get the console, everything else goes to
/// [`crate::proxy::dispatch`].
pub async fn console_or_dispatch(
    state: State<GatewayState>,
    meta: RequestMeta,
    req: Request,
) -> Response {
    if is_console_path(req.uri().path()) {
        asset(req.method(), req.uri().path(), req.headers())
    } else {
        crate::proxy::dispatch(state, meta, req).await
    }
}

/// Serves the console file for `path` (GET/HEAD only).
pub fn asset(method: &Method, path: &str, headers: &HeaderMap) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "the console only answers GET and HEAD",
        )
        .into_response();
    }
    let name = path.trim_start_matches('/');
    let file = match Assets::get(if name.is_empty() { "index.html" } else { name }) {
        Some(file) => file,
        // A client-side route (no extension): the app decides what to show.
        None if !name.rsplit('/').next().unwrap_or("").contains('.') => {
            match Assets::get("index.html") {
                Some(index) => index,
                None => return ApiError::not_found("the console is not built in").into_response(),
            }
        }
        None => return ApiError::not_found("no such console file").into_response(),
    };
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..16]));
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut res = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else if method == Method::HEAD {
        StatusCode::OK.into_response()
    } else {
        file.data.into_owned().into_response()
    };
    let out = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&content_type(file.metadata.mimetype())) {
        out.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&etag) {
        out.insert(header::ETAG, v);
    }
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    let policy = if name == "api.html" {
        API_REFERENCE_POLICY
    } else {
        CONTENT_SECURITY_POLICY
    };
    out.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(policy),
    );
    out.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    out.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    out.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    out.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    res
}

/// The guessed MIME type, with the charset for text the browser would otherwise sniff.
fn content_type(mime: &str) -> String {
    let mime = match mime {
        // mime_guess still answers the obsolete `application/javascript`.
        "application/javascript" => "text/javascript",
        other => other,
    };
    if mime.starts_with("text/") || mime == "image/svg+xml" {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str, headers: &HeaderMap) -> Response {
        asset(&Method::GET, path, headers)
    }

    fn header_of(res: &Response, name: header::HeaderName) -> &str {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    #[test]
    fn api_paths_never_reach_the_console() {
        for path in [
            "/v2",
            "/v2/me",
            "/sys/healthcheck",
            "/metrics",
            "/oidc/auth",
        ] {
            assert!(!is_console_path(path), "{path}");
        }
        for path in ["/", "/app.js", "/workspaces/abc", "/v2x", "/metricsboard"] {
            assert!(is_console_path(path), "{path}");
        }
    }

    #[test]
    fn the_page_comes_with_a_strict_policy_and_a_revalidated_etag() {
        let res = get("/", &HeaderMap::new());
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(
            header_of(&res, header::CONTENT_TYPE),
            "text/html; charset=utf-8"
        );
        assert_eq!(header_of(&res, header::CACHE_CONTROL), "no-cache");
        let csp = header_of(&res, header::CONTENT_SECURITY_POLICY);
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe"),
            "{csp}"
        );
        let etag = header_of(&res, header::ETAG).to_string();
        assert!(etag.starts_with('"') && etag.len() == 34, "{etag}");

        let mut headers = HeaderMap::new();
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_str(&etag).unwrap());
        assert_eq!(get("/", &headers).status(), StatusCode::NOT_MODIFIED);
    }

    #[test]
    fn modules_are_served_as_javascript_and_missing_files_are_404() {
        let res = get("/js/main.js", &HeaderMap::new());
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(
            header_of(&res, header::CONTENT_TYPE),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(
            get("/js/nope.js", &HeaderMap::new()).status(),
            StatusCode::NOT_FOUND
        );
        // A client-side route gets the page.
        let res = get("/workspaces/w1", &HeaderMap::new());
        assert_eq!(
            header_of(&res, header::CONTENT_TYPE),
            "text/html; charset=utf-8"
        );
    }

    #[test]
    fn the_console_refuses_writes() {
        let res = asset(&Method::POST, "/", &HeaderMap::new());
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    }
}
