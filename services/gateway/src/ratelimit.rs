//! HTTP rate limits (`spec/http-api.md` §1.6, §14.1), enforced cluster-wide: every counter is a
//! fixed-window counter in the shared cache (`INCR` with the window as TTL in Redis), so two
//! gateways behind one load balancer share one budget. Keys come from the canonical path the
//! edge computed (one spelling per workspace id) and from the client address it established
//! (the socket peer, or behind `TRUSTED_PROXIES` the nearest untrusted hop), so neither
//! re-encoding the path nor forging `X-Forwarded-For` buys a fresh budget. A limited route answers
//! `X-RateLimit-Limit`, `-Remaining` and `-Reset` (of the limiter with the fewest points left)
//! and, once over, 429 `TooManyRequests` with `Retry-After`.
//!
//! The webhook and event-read limits of one workspace can be changed by its system secrets
//! `prismeai_ratelimit_http_{webhooks,events}_{user,workspace}` (`"<points>/<seconds>"`, written
//! by superadmins only).

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use refract_http::ApiError;
use refract_storage::{Cache, CacheKey, Collections, collections};
use serde_json::json;

use crate::GatewayState;
use crate::edge::RequestMeta;
use crate::error::storage;

/// A budget: `points` requests per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Requests allowed per window.
    pub points: u32,
    /// The window the points refill over.
    pub window: Duration,
}

impl Limit {
    /// `points` requests per `secs` seconds.
    pub const fn per(points: u32, secs: u64) -> Self {
        Self {
            points,
            window: Duration::from_secs(secs),
        }
    }

    /// `"<points>/<seconds>"`, as in the per-workspace secrets.
    pub fn parse(text: &str) -> Option<Self> {
        let (points, secs) = text.trim().split_once('/')?;
        let (points, secs) = (points.trim().parse().ok()?, secs.trim().parse().ok()?);
        (secs > 0).then(|| Self::per(points, secs))
    }
}

/// The limits of `spec/http-api.md` §14.1 that the gateway enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// `POST /v2/login` per email: slows password guessing on one account.
    pub login_email: Limit,
    /// `POST /v2/login` per client IP: slows guessing across accounts.
    pub login_ip: Limit,
    /// `POST /v2/login/anonymous` per IP: anonymous sessions cost a cache entry each.
    pub anonymous_ip: Limit,
    /// `POST /v2/signup` per IP: bounds account creation by one client.
    pub signup_ip: Limit,
    /// Webhooks and test runs per user (else IP): each one is a sandboxed run.
    pub webhooks_user: Limit,
    /// Webhooks and test runs per workspace.
    pub webhooks_workspace: Limit,
    /// Event history and search per user (else IP): the datalake's most expensive reads.
    pub events_user: Limit,
    /// Event history and search per workspace.
    pub events_workspace: Limit,
    /// Client emits (`POST …/events`) per user (else IP): each event is stored, fanned out to
    /// sockets and may trigger runs.
    pub emits_user: Limit,
    /// WebSocket upgrades per user (else IP): each socket holds a connection and a
    /// subscription for as long as it lives.
    pub sockets_user: Limit,
    /// `POST /v2/workspaces` per user: bounds how fast one account multiplies workspaces (and
    /// their quotas).
    pub workspace_create_user: Limit,
    /// Imports, version pulls and duplicates per user: each writes a whole workspace.
    pub imports_user: Limit,
    /// Component uploads per user: each is validated and compiled, seconds of CPU.
    pub component_upload_user: Limit,
}

impl Default for RateLimits {
    /// The spec's values.
    fn default() -> Self {
        Self {
            login_email: Limit::per(5, 60),
            login_ip: Limit::per(20, 60),
            anonymous_ip: Limit::per(10, 60),
            signup_ip: Limit::per(1, 60),
            webhooks_user: Limit::per(30, 60),
            webhooks_workspace: Limit::per(2_000, 3_600),
            events_user: Limit::per(20, 60),
            events_workspace: Limit::per(1_200, 60),
            emits_user: Limit::per(120, 60),
            sockets_user: Limit::per(30, 60),
            workspace_create_user: Limit::per(3, 60),
            imports_user: Limit::per(3, 60),
            component_upload_user: Limit::per(10, 60),
        }
    }
}

/// One limiter to charge: a rule name, who is charged, and the budget.
#[derive(Debug, Clone)]
pub(crate) struct Charge {
    pub rule: &'static str,
    pub subject: String,
    pub limit: Limit,
}

/// Where a limiter stands after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Standing {
    pub limit: u32,
    pub remaining: u32,
    /// Unix seconds when the window resets.
    pub reset: i64,
    /// Seconds until then (at least 1).
    pub retry_after: u64,
    pub exceeded: bool,
}

impl Standing {
    /// Sets the `X-RateLimit-*` headers (and `Retry-After` when exceeded).
    pub fn apply(&self, headers: &mut HeaderMap) {
        let mut set = |name: &'static str, value: String| {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(name, v);
            }
        };
        set("x-ratelimit-limit", self.limit.to_string());
        set("x-ratelimit-remaining", self.remaining.to_string());
        set("x-ratelimit-reset", self.reset.to_string());
        if self.exceeded {
            set("retry-after", self.retry_after.to_string());
        }
    }

    /// 429 `TooManyRequests` with `details.retryAfter`.
    pub fn error(&self) -> ApiError {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            format!("too many requests; retry in {} s", self.retry_after),
        )
        .with_details(json!({ "retryAfter": self.retry_after }))
    }
}

/// Counts one request against every charge, and returns the standing with the fewest points
/// left (an exceeded one first). Counting goes on even past the limit, so a client that keeps
/// hammering stays limited for the whole window.
pub(crate) async fn charge(
    cache: &dyn Cache,
    charges: &[Charge],
) -> Result<Option<Standing>, ApiError> {
    let now = chrono::Utc::now().timestamp();
    let mut worst: Option<Standing> = None;
    for c in charges {
        let window = c.limit.window.as_secs().max(1) as i64;
        let start = now - now.rem_euclid(window);
        let key = CacheKey::rate_limit(c.rule, &c.subject, start);
        // The counter outlives its window by a second so a late INCR never revives it.
        let ttl = Duration::from_secs(window as u64 + 1);
        let count = cache.incr(&key, 1, ttl).await.map_err(storage)?;
        let used = u32::try_from(count.max(0)).unwrap_or(u32::MAX);
        let standing = Standing {
            limit: c.limit.points,
            remaining: c.limit.points.saturating_sub(used),
            reset: start + window,
            retry_after: (start + window - now).max(1) as u64,
            exceeded: used > c.limit.points,
        };
        let worse = worst.is_none_or(|w| {
            (standing.exceeded, u32::MAX - standing.remaining)
                > (w.exceeded, u32::MAX - w.remaining)
        });
        if worse {
            worst = Some(standing);
        }
    }
    Ok(worst)
}

/// Most bytes of a login body read to find the email (the route's own cap is larger, but an
/// email and a password never need more).
const LOGIN_BODY_PEEK: usize = 64 * 1024;

/// What `path` and `method` are charged, given the caller (user id, else IP) and, for login,
/// the email in the body.
async fn charges_for(
    state: &GatewayState,
    method: &Method,
    path: &str,
    who: &str,
    email: Option<String>,
    limits: &RateLimits,
) -> Result<Vec<Charge>, ApiError> {
    let c = |rule, subject: &str, limit| Charge {
        rule,
        subject: subject.to_string(),
        limit,
    };
    let out = match (method.as_str(), path) {
        ("POST", "/v2/login") => {
            let mut out = vec![c("login_ip", who, limits.login_ip)];
            if let Some(email) = email {
                out.push(c("login_email", &email, limits.login_email));
            }
            out
        }
        ("POST", "/v2/login/anonymous") => vec![c("anonymous_ip", who, limits.anonymous_ip)],
        ("POST", "/v2/signup") => vec![c("signup_ip", who, limits.signup_ip)],
        ("POST", "/v2/workspaces") => vec![c(
            "workspace_create_user",
            who,
            limits.workspace_create_user,
        )],
        _ => {
            let segs: Vec<&str> = path.split('/').skip(1).collect();
            let per_user = match (method.as_str(), segs.as_slice()) {
                ("POST", ["v2", "workspaces", "import"])
                | ("POST", ["v2", "workspaces", _, "import"])
                | ("POST", ["v2", "workspaces", _, "versions", _, "pull" | "duplicate"]) => {
                    Some(("imports_user", limits.imports_user))
                }
                ("PUT" | "POST", ["v2", "workspaces", _, "automations", _, "component"]) => {
                    Some(("component_upload_user", limits.component_upload_user))
                }
                ("POST", ["v2", "workspaces", _, "events"]) => {
                    Some(("emits_user", limits.emits_user))
                }
                ("GET", ["v2", "workspaces", _, "events", "ws"]) => {
                    Some(("sockets_user", limits.sockets_user))
                }
                _ => None,
            };
            if let Some((rule, limit)) = per_user {
                return Ok(vec![c(rule, who, limit)]);
            }
            let (ws, kind) = match segs.as_slice() {
                ["v2", "workspaces", ws, "webhooks" | "test", _, ..] => (*ws, "webhooks"),
                ["v2", "workspaces", ws, "events"] if method == Method::GET => (*ws, "events"),
                ["v2", "workspaces", ws, "search"] if method == Method::POST => (*ws, "events"),
                _ => return Ok(Vec::new()),
            };
            let (user, workspace) = if kind == "webhooks" {
                (limits.webhooks_user, limits.webhooks_workspace)
            } else {
                (limits.events_user, limits.events_workspace)
            };
            let store = state.store();
            let user = workspace_limit(
                store,
                ws,
                &format!("prismeai_ratelimit_http_{kind}_user"),
                user,
            )
            .await?;
            let workspace = workspace_limit(
                store,
                ws,
                &format!("prismeai_ratelimit_http_{kind}_workspace"),
                workspace,
            )
            .await?;
            let (user_rule, ws_rule) = if kind == "webhooks" {
                ("webhooks_user", "webhooks_workspace")
            } else {
                ("events_user", "events_workspace")
            };
            // The user's budget is per workspace too: one busy workspace must not lock a
            // user out of the others.
            vec![
                c(user_rule, &format!("{ws}/{who}"), user),
                c(ws_rule, ws, workspace),
            ]
        }
    };
    Ok(out)
}

/// The middleware: charges the limiters of the route, refuses with 429 once one is spent, and
/// sets the `X-RateLimit-*` headers on the answer. Off when `Config::rate_limits` is `None`.
pub(crate) async fn guard(State(state): State<GatewayState>, req: Request, next: Next) -> Response {
    let Some(limits) = state.config().rate_limits else {
        return next.run(req).await;
    };
    match limited(&state, &limits, req, next).await {
        Ok(res) | Err(res) => res,
    }
}

async fn limited(
    state: &GatewayState,
    limits: &RateLimits,
    req: Request,
    next: Next,
) -> Result<Response, Response> {
    let ip = req
        .extensions()
        .get::<RequestMeta>()
        .and_then(RequestMeta::ip)
        .unwrap_or_else(|| "unknown".to_string());
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let (req, email) = if method == Method::POST && path == "/v2/login" {
        let (parts, body) = req.into_parts();
        let bytes = axum::body::to_bytes(body, LOGIN_BODY_PEEK)
            .await
            .map_err(|_| ApiError::too_large(LOGIN_BODY_PEEK).into_response())?;
        let email = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("email")?.as_str().map(crate::users::normalize_email));
        (Request::from_parts(parts, Body::from(bytes)), email)
    } else {
        (req, None)
    };
    let limited_path = path == "/v2/workspaces" || path.starts_with("/v2/workspaces/");
    let user = if limited_path {
        // The identity the request will run with: a cross-site webhook call goes on
        // anonymously, so it is charged to the client address, not to the victim's budget.
        let public = crate::webhooks_host::is_webhook(&path, state.config());
        crate::auth::authenticate(state, req.headers())
            .await
            .map_err(IntoResponse::into_response)?
            .and_then(|p| {
                crate::auth::admit(state, &method, req.headers(), p, public)
                    .ok()
                    .flatten()
            })
            .map(|p| p.user_id)
    } else {
        None
    };
    let who = user.map_or_else(|| format!("ip:{ip}"), |u| format!("user:{u}"));
    let charges = charges_for(state, &method, &path, &who, email, limits)
        .await
        .map_err(IntoResponse::into_response)?;
    if charges.is_empty() {
        return Ok(next.run(req).await);
    }
    let standing = charge(state.cache(), &charges)
        .await
        .map_err(IntoResponse::into_response)?;
    let Some(standing) = standing else {
        return Ok(next.run(req).await);
    };
    if standing.exceeded {
        let mut res = standing.error().into_response();
        standing.apply(res.headers_mut());
        return Err(res);
    }
    let mut res = next.run(req).await;
    standing.apply(res.headers_mut());
    Ok(res)
}

/// The workspace's override of a limit (a system secret), or `default`.
pub(crate) async fn workspace_limit(
    store: &dyn Collections,
    workspace: &str,
    secret: &str,
    default: Limit,
) -> Result<Limit, ApiError> {
    let id = format!("{workspace}:{secret}");
    let Some(doc) = store
        .get(&collections::SECRETS, &id)
        .await
        .map_err(storage)?
    else {
        return Ok(default);
    };
    match doc
        .body
        .get("value")
        .and_then(|v| v.as_str())
        .and_then(Limit::parse)
    {
        Some(limit) => Ok(limit),
        None => {
            tracing::warn!(
                workspace,
                secret,
                "ignoring a rate-limit secret that is not <points>/<seconds>"
            );
            Ok(default)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use refract_storage::cache::MemoryCache;

    #[test]
    fn limits_parse_from_secrets() {
        assert_eq!(Limit::parse("100/60"), Some(Limit::per(100, 60)));
        assert_eq!(Limit::parse(" 5 / 1 "), Some(Limit::per(5, 1)));
        for bad in ["", "5", "a/60", "5/0", "5/-1"] {
            assert_eq!(Limit::parse(bad), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn the_tightest_limiter_speaks_and_the_excess_is_refused() {
        let cache = MemoryCache::new("test");
        let charges = [
            Charge {
                rule: "a",
                subject: "ip".into(),
                limit: Limit::per(2, 3600),
            },
            Charge {
                rule: "b",
                subject: "ip".into(),
                limit: Limit::per(10, 3600),
            },
        ];
        let first = charge(&cache, &charges).await.unwrap().unwrap();
        assert_eq!(
            (first.limit, first.remaining, first.exceeded),
            (2, 1, false)
        );
        let second = charge(&cache, &charges).await.unwrap().unwrap();
        assert_eq!((second.remaining, second.exceeded), (0, false));
        let third = charge(&cache, &charges).await.unwrap().unwrap();
        assert!(third.exceeded);
        assert!(third.retry_after >= 1 && third.retry_after <= 3600);
        let mut headers = HeaderMap::new();
        third.apply(&mut headers);
        assert_eq!(headers["x-ratelimit-remaining"], "0");
        assert!(headers.contains_key("retry-after"));
        // Another subject has its own budget.
        let other = [Charge {
            rule: "a",
            subject: "other".into(),
            limit: Limit::per(2, 3600),
        }];
        assert!(!charge(&cache, &other).await.unwrap().unwrap().exceeded);
    }
}
