//! The route table: every path the gateway proxies, the backend that serves it, and its auth
//! rule, body cap and timeout. A path without a row is not proxied at all (JSON 404 at the
//! gateway), so a route a backend adds is unreachable, never served under a default rule,
//! until it is listed here; the API contract's test (`refract::contract`) compares this table
//! with the operations the backends document and fails while one of their routes has no row.

use std::time::Duration;

use crate::Config;

/// A backend service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Service {
    Workspaces,
    Runtime,
    Events,
}

impl Service {
    /// The name in logs and upstream errors.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Service::Workspaces => "workspaces",
            Service::Runtime => "runtime",
            Service::Events => "events",
        }
    }
}

/// How a proxied path is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Route {
    pub(crate) service: Service,
    /// Whether an authenticated principal is required (else credentials are optional).
    pub(crate) user_required: bool,
    pub(crate) body_limit: usize,
    pub(crate) timeout: Duration,
}

/// The kinds of route, each a service and a rule whose numbers come from the [`Config`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The workspaces service: credentials required, the ordinary body cap and timeout.
    Workspaces,
    /// A component upload: the workspaces service with the upload cap and timeout.
    Upload,
    /// A webhook: the runtime, public (§1.8), with the webhook cap and timeout.
    Webhook,
    /// A test run: the runtime with the webhook cap and timeout, credentials required.
    TestRun,
    /// The events service: credentials required, the ordinary body cap and timeout.
    Events,
    /// The runtime's other routes: credentials required, the ordinary body cap and timeout.
    Runtime,
}

impl Kind {
    fn route(self, config: &Config) -> Route {
        let ordinary = Route {
            service: Service::Workspaces,
            user_required: true,
            body_limit: config.proxy_body_limit,
            timeout: config.upstream_timeout,
        };
        match self {
            Kind::Workspaces => ordinary,
            Kind::Upload => Route {
                body_limit: config.component_upload_limit,
                timeout: config.upload_timeout,
                ..ordinary
            },
            Kind::Webhook => Route {
                service: Service::Runtime,
                user_required: false,
                body_limit: config.webhook_body_limit,
                timeout: config.webhook_timeout,
            },
            Kind::TestRun => Route {
                service: Service::Runtime,
                body_limit: config.webhook_body_limit,
                timeout: config.webhook_timeout,
                ..ordinary
            },
            Kind::Events => Route {
                service: Service::Events,
                ..ordinary
            },
            Kind::Runtime => Route {
                service: Service::Runtime,
                ..ordinary
            },
        }
    }
}

/// Every proxied path, spelled as the backends' routers spell it: `{name}` stands for one
/// non-empty segment, everything else must match exactly. Methods are the backend's business.
const ROUTES: &[(&str, Kind)] = &[
    // The app store (§11).
    ("/v2/apps", Kind::Workspaces),
    ("/v2/apps/{app_slug}", Kind::Workspaces),
    // Workspaces, automations, sharing, security, app instances, versions, imports.
    ("/v2/workspaces", Kind::Workspaces),
    ("/v2/workspaces/{workspace_id}", Kind::Workspaces),
    (
        "/v2/workspaces/{workspace_id}/automations",
        Kind::Workspaces,
    ),
    (
        "/v2/workspaces/{workspace_id}/automations/{slug}",
        Kind::Workspaces,
    ),
    (
        "/v2/workspaces/{workspace_id}/automations/{slug}/component",
        Kind::Upload,
    ),
    (
        "/v2/workspaces/{workspace_id}/automations/{slug}/versions",
        Kind::Workspaces,
    ),
    (
        "/v2/workspaces/{workspace_id}/automations/{slug}/versions/{version}",
        Kind::Workspaces,
    ),
    (
        "/v2/workspaces/{workspace_id}/automations/{slug}/versions/{version}/restore",
        Kind::Workspaces,
    ),
    (
        "/v2/workspaces/{workspace_id}/permissions",
        Kind::Workspaces,
    ),
    (
        "/v2/workspaces/{workspace_id}/permissions/{user_id}",
        Kind::Workspaces,
    ),
    ("/v2/workspaces/{workspace_id}/security", Kind::Workspaces),
    (
        "/v2/workspaces/{workspace_id}/security/roles",
        Kind::Workspaces,
    ),
    (
        "/v2/workspaces/{workspace_id}/security/apikeys",
        Kind::Workspaces,
    ),
    (
        "/v2/workspaces/{workspace_id}/security/apikeys/{key_id}",
        Kind::Workspaces,
    ),
    (
        "/v2/workspaces/{workspace_id}/security/secrets",
        Kind::Workspaces,
    ),
    (
        "/v2/workspaces/{workspace_id}/security/secrets/{name}",
        Kind::Workspaces,
    ),
    ("/v2/workspaces/{workspace_id}/apps", Kind::Workspaces),
    (
        "/v2/workspaces/{workspace_id}/apps/{slug}",
        Kind::Workspaces,
    ),
    (
        "/v2/workspaces/{workspace_id}/apps/{slug}/config",
        Kind::Workspaces,
    ),
    ("/v2/workspaces/{workspace_id}/versions", Kind::Workspaces),
    ("/v2/workspaces/{workspace_id}/export", Kind::Workspaces),
    (
        "/v2/workspaces/{workspace_id}/versions/{name}",
        Kind::Workspaces,
    ),
    ("/v2/workspaces/{workspace_id}/import", Kind::Workspaces),
    // The runtime: webhooks and test runs.
    (
        "/v2/workspaces/{workspace_id}/webhooks/{endpoint}",
        Kind::Webhook,
    ),
    ("/v2/workspaces/{workspace_id}/test/{slug}", Kind::TestRun),
    // The runtime: dead letters (a replay runs the automation, hence the test-run rule).
    ("/v2/workspaces/{workspace_id}/deadletters", Kind::Runtime),
    (
        "/v2/workspaces/{workspace_id}/deadletters/{id}",
        Kind::Runtime,
    ),
    (
        "/v2/workspaces/{workspace_id}/deadletters/{id}/replay",
        Kind::TestRun,
    ),
    // The runtime: limits and usage.
    ("/v2/workspaces/{workspace_id}/quotas", Kind::Runtime),
    ("/v2/workspaces/{workspace_id}/quotas/egress", Kind::Runtime),
    ("/v2/workspaces/{workspace_id}/usage", Kind::Runtime),
    // The events service: history, emits, the live socket, search, the runs' records.
    ("/v2/workspaces/{workspace_id}/events", Kind::Events),
    ("/v2/workspaces/{workspace_id}/events/ws", Kind::Events),
    ("/v2/workspaces/{workspace_id}/search", Kind::Events),
    ("/v2/workspaces/{workspace_id}/runs", Kind::Events),
    ("/v2/workspaces/{workspace_id}/runs/{run_id}", Kind::Events),
];

/// Every path the gateway proxies, as the backends' routers spell it, with the name of the
/// service it goes to (`workspaces`, `runtime`, `events`).
pub fn proxied_paths() -> impl Iterator<Item = (&'static str, &'static str)> {
    let config = Config::default();
    ROUTES
        .iter()
        .map(move |(path, kind)| (*path, kind.route(&config).service.name()))
}

/// The route of `path`, or `None` for paths the gateway does not proxy.
pub(crate) fn classify(path: &str, config: &Config) -> Option<Route> {
    let rest = path.strip_prefix('/')?;
    // An HTTP client normalizes `..` (also spelled `%2e%2e`, or with `\` for `/`) before
    // sending, which would let `/v2/workspaces/w/webhooks/../../../sys/…` reach a backend
    // path the gateway never routes, without authentication.
    if rest.contains('\\') || rest.split('/').any(is_dot_segment) {
        return None;
    }
    ROUTES
        .iter()
        .find(|(pattern, _)| matches(pattern, rest))
        .map(|(_, kind)| kind.route(config))
}

/// Whether `path` (without its leading `/`) has the shape of `pattern`.
fn matches(pattern: &str, path: &str) -> bool {
    let mut want = pattern[1..].split('/');
    let mut got = path.split('/');
    loop {
        match (want.next(), got.next()) {
            (None, None) => return true,
            (Some(w), Some(g)) if w.starts_with('{') => {
                if g.is_empty() {
                    return false;
                }
            }
            (Some(w), Some(g)) if w == g => {}
            _ => return false,
        }
    }
}

/// `.` or `..`, percent-encoded or not.
fn is_dot_segment(seg: &str) -> bool {
    let decoded = seg.to_ascii_lowercase().replace("%2e", ".");
    decoded == "." || decoded == ".."
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_route_to_the_documented_services() {
        let c = Config::default();
        let r = |p: &str| classify(p, &c).map(|r| (r.service, r.user_required));
        assert_eq!(r("/v2/workspaces"), Some((Service::Workspaces, true)));
        assert_eq!(
            r("/v2/workspaces/w1/webhooks/echo"),
            Some((Service::Runtime, false))
        );
        assert_eq!(
            r("/v2/workspaces/w1/test/echo"),
            Some((Service::Runtime, true))
        );
        assert_eq!(r("/v2/workspaces/w1/events"), Some((Service::Events, true)));
        assert_eq!(
            r("/v2/workspaces/w1/events/ws"),
            Some((Service::Events, true))
        );
        assert_eq!(r("/v2/workspaces/w1/search"), Some((Service::Events, true)));
        assert_eq!(
            r("/v2/workspaces/w1/automations/a"),
            Some((Service::Workspaces, true))
        );
        assert_eq!(r("/v2/workspacesX"), None);
        assert_eq!(r("/v2/apps"), Some((Service::Workspaces, true)));
        assert_eq!(r("/v2/apps/crm"), Some((Service::Workspaces, true)));
        assert_eq!(r("/v2/apps/../sys/x"), None);
        assert_eq!(r("/v2/appsX"), None);
        assert_eq!(r("/v2/workspaces/w1/webhooks/../../../sys/metrics"), None);
        assert_eq!(r("/v2/workspaces/w1/webhooks/%2E%2e/x"), None);
        assert_eq!(r("/v2/workspaces/w1/webhooks/./x"), None);
        assert_eq!(
            r("/v2/workspaces/w1/webhooks/a..b"),
            Some((Service::Runtime, false))
        );
        assert_eq!(r("/v2/other"), None);
        let upload = classify("/v2/workspaces/w1/automations/a/component", &c).unwrap();
        assert_eq!(
            (upload.body_limit, upload.timeout),
            (c.component_upload_limit, c.upload_timeout)
        );
        let hook = classify("/v2/workspaces/w1/webhooks/a", &c).unwrap();
        assert_eq!(
            (hook.body_limit, hook.timeout),
            (c.webhook_body_limit, c.webhook_timeout)
        );
    }

    #[test]
    fn unlisted_paths_are_not_proxied() {
        let c = Config::default();
        for path in [
            "/v2/workspaces/w1/whatever",
            "/v2/workspaces/w1/automations/a/b/c",
            "/v2/workspaces/w1/webhooks",
            "/v2/workspaces/w1/webhooks/a/b",
            "/v2/workspaces/w1/events/other",
            "/v2/workspaces/",
            "/v2/workspaces//automations",
            "/v2/apps/crm/versions",
        ] {
            assert_eq!(classify(path, &c), None, "{path}");
        }
    }
}
