//! The gateway's settings. The listen address, TOML and `REFRACT_*` layering belong to the CLI;
//! this struct holds what the gateway itself needs, with the spec's defaults
//! (`spec/http-api.md` §1.7, §1.8, §1.9, §2.1, §14.2).

use std::time::Duration;

use refract_http::gateway_key::GatewayKey;

/// How long a login session lives (`SESSION_TTL`, 30 days as in Prisme.ai): long enough that
/// people are not logged out every week, short enough that a stolen cookie does not work
/// forever. The cookie's `Max-Age` is the same.
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// Largest body of the gateway's own routes (signup, login, tokens: `REQUEST_MAX_SIZE`). They
/// take a few small fields; the cap keeps a client from making the gateway buffer megabytes.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// Largest webhook and test-run body (`WEBHOOK_BODY_MAX_SIZE`): webhooks are public, so a
/// small cap bounds what an anonymous caller can push into a sandboxed run.
pub const DEFAULT_WEBHOOK_BODY_LIMIT: usize = 1024 * 1024;

/// Largest component upload (`COMPONENTS_MAX_SIZE`, 64 MiB): JS and Python components embed an
/// engine, so they are large; the cap bounds compile time and file storage per upload.
pub const DEFAULT_COMPONENT_UPLOAD_LIMIT: usize = 64 * 1024 * 1024;

/// Largest body of every other proxied route (workspaces JSON documents, `JSON_MAX_SIZE`
/// 10 MB; events have their own, smaller, cap in the events service).
pub const DEFAULT_PROXY_BODY_LIMIT: usize = 10 * 1024 * 1024;

/// Upstream timeout of ordinary routes: a backend that has not answered by then is stuck,
/// and the client gets a 504 instead of hanging.
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(20);

/// Upstream timeout of webhooks and test runs: a run's own wall clock is 30 s by default.
pub const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(30);

/// Upstream timeout of component uploads: validation and Cranelift compilation of a large
/// component take tens of seconds.
pub const DEFAULT_UPLOAD_TIMEOUT: Duration = Duration::from_secs(90);

/// Time to open a TCP connection to an `Http` upstream: a down backend answers 503 quickly
/// instead of consuming the whole route timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Default password rule (`PASSWORD_VALIDATION_REGEXP`): 8 to 128 characters. Long enough to
/// resist guessing, short enough that argon2 never hashes a megabyte.
pub const DEFAULT_PASSWORD_RULE: &str = "^.{8,128}$";

/// Cookie `SameSite` policy (`SESSION_COOKIE_SAMESITE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SameSite {
    /// Sent on top-level navigations from other sites, not on their sub-requests (default).
    #[default]
    Lax,
    /// Never sent from another site, not even on a followed link.
    Strict,
    /// Needed when pages live on another site; requires `Secure`.
    None,
}

impl SameSite {
    /// The attribute's value in `Set-Cookie`.
    pub fn as_str(self) -> &'static str {
        match self {
            SameSite::Lax => "Lax",
            SameSite::Strict => "Strict",
            SameSite::None => "None",
        }
    }
}

/// The gateway's configuration. `Config::default()` is the distributed-mode default (secure
/// cookies); [`Config::embedded`] is the `refract serve` default on plain-http localhost.
#[derive(Debug, Clone)]
pub struct Config {
    /// Session lifetime; anonymous sessions are capped at it too.
    pub session_ttl: Duration,
    /// Body cap of the gateway's own routes.
    pub body_limit: usize,
    /// Body cap of webhooks and test runs.
    pub webhook_body_limit: usize,
    /// Body cap of component uploads (`PUT …/automations/{slug}/component`).
    pub component_upload_limit: usize,
    /// Body cap of every other proxied route.
    pub proxy_body_limit: usize,
    /// Upstream timeout of ordinary routes.
    pub upstream_timeout: Duration,
    /// Upstream timeout of webhooks and test runs.
    pub webhook_timeout: Duration,
    /// Upstream timeout of component uploads.
    pub upload_timeout: Duration,
    /// TCP connect timeout to `Http` upstreams.
    pub connect_timeout: Duration,
    /// Regular expression every new password must match.
    pub password_rule: String,
    /// Whether the session cookie carries `Secure`. Browsers and curl drop `Secure` cookies on
    /// plain `http://` (other than localhost for browsers), so local plain-http serving turns
    /// it off; anything reachable from a network must keep it on behind TLS.
    pub cookie_secure: bool,
    /// The session cookie's `SameSite`.
    pub cookie_same_site: SameSite,
    /// Key sent to every backend as `x-refract-gateway-key` on every forwarded request,
    /// WebSocket upgrades included (§1.5): backends refuse requests without it. `None` sends
    /// nothing, for backends run with `require_gateway_key = false` (loopback only).
    pub gateway_key: Option<GatewayKey>,
    /// Origins (`https://console.example.org`) besides the gateway's own whose cookie-
    /// authenticated writes are accepted (§1.8, `CORS_ADDITIONAL_ALLOWED_ORIGINS`). A request
    /// without `Origin` is not a cross-site browser request and is not refused for it.
    pub allowed_origins: Vec<String>,
    /// Emails of the platform's superadmins (`SUPER_ADMIN_EMAILS`): a validated account with one
    /// of them gets `x-prismeai-role: superadmin`, which every backend reads as every right.
    pub super_admin_emails: Vec<String>,
    /// The HTTP rate limits (§14.1), counted in the shared cache; `None` turns them off
    /// (`DISABLE_RATE_LIMIT`), as test harnesses that poll in loops need.
    pub rate_limits: Option<crate::ratelimit::RateLimits>,
    /// The gateway's public base URL (`API_URL`, e.g. `https://api.example.org`): OIDC
    /// callbacks go to `<public_url>/v2/login/callback`, and logins return to it by default.
    /// `None` derives it from the request's `Host` (`https` when `cookie_secure`), which is
    /// fine behind a proxy that keeps `Host` but should be set in production.
    pub public_url: Option<String>,
    /// External OpenID Connect identity providers (§2.3), by name.
    pub oidc_providers: Vec<crate::oidc::ProviderConfig>,
    /// Addresses and CIDR networks of the load balancers in front of the gateway
    /// (`TRUSTED_PROXIES`): only a socket peer listed here has its `X-Forwarded-*` headers
    /// read, and the client address is the nearest `X-Forwarded-For` hop not listed. Empty
    /// (the default), the socket peer is the client.
    pub trusted_proxies: Vec<String>,
    /// The origin webhooks are served from (`https://hooks.example.com`), a host name apart
    /// from the console's so a webhook answer never runs on the console's origin. `None`
    /// serves webhooks on every host. See the `webhooks_host` module.
    pub webhooks_origin: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            session_ttl: DEFAULT_SESSION_TTL,
            body_limit: DEFAULT_BODY_LIMIT,
            webhook_body_limit: DEFAULT_WEBHOOK_BODY_LIMIT,
            component_upload_limit: DEFAULT_COMPONENT_UPLOAD_LIMIT,
            proxy_body_limit: DEFAULT_PROXY_BODY_LIMIT,
            upstream_timeout: DEFAULT_UPSTREAM_TIMEOUT,
            webhook_timeout: DEFAULT_WEBHOOK_TIMEOUT,
            upload_timeout: DEFAULT_UPLOAD_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            password_rule: DEFAULT_PASSWORD_RULE.to_string(),
            cookie_secure: true,
            cookie_same_site: SameSite::Lax,
            gateway_key: None,
            allowed_origins: Vec::new(),
            super_admin_emails: Vec::new(),
            rate_limits: None,
            public_url: None,
            oidc_providers: Vec::new(),
            trusted_proxies: Vec::new(),
            webhooks_origin: None,
        }
    }
}

impl Config {
    /// The embedded-mode default: like `default()` but without `Secure` on the cookie, since
    /// `refract serve` listens on plain http on 127.0.0.1.
    pub fn embedded() -> Self {
        Self {
            cookie_secure: false,
            ..Self::default()
        }
    }

    /// Checks the settings; the error names the setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("session_ttl", self.session_ttl),
            ("upstream_timeout", self.upstream_timeout),
            ("webhook_timeout", self.webhook_timeout),
            ("upload_timeout", self.upload_timeout),
            ("connect_timeout", self.connect_timeout),
        ];
        for (name, value) in positive {
            if value.is_zero() {
                return Err(ConfigError::Invalid {
                    setting: name,
                    reason: "must be greater than zero".into(),
                });
            }
        }
        let limits = [
            ("body_limit", self.body_limit),
            ("webhook_body_limit", self.webhook_body_limit),
            ("component_upload_limit", self.component_upload_limit),
            ("proxy_body_limit", self.proxy_body_limit),
        ];
        for (name, value) in limits {
            if value == 0 {
                return Err(ConfigError::Invalid {
                    setting: name,
                    reason: "must be greater than zero".into(),
                });
            }
        }
        if self.cookie_same_site == SameSite::None && !self.cookie_secure {
            return Err(ConfigError::Invalid {
                setting: "cookie_same_site",
                reason:
                    "SameSite=None requires cookie_secure = true (browsers refuse it otherwise)"
                        .into(),
            });
        }
        regex::Regex::new(&self.password_rule).map_err(|e| ConfigError::Invalid {
            setting: "password_rule",
            reason: format!("not a valid regular expression: {e}"),
        })?;
        if let Some(url) = &self.public_url
            && !crate::oidc::is_http_base(url)
        {
            return Err(ConfigError::Invalid {
                setting: "public_url",
                reason: format!("{url:?} is not an http(s) URL without path, query or fragment"),
            });
        }
        crate::client::TrustedProxies::parse(&self.trusted_proxies).map_err(|reason| {
            ConfigError::Invalid {
                setting: "trusted_proxies",
                reason,
            }
        })?;
        if let Some(url) = &self.webhooks_origin {
            let invalid = |reason| ConfigError::Invalid {
                setting: "webhooks_origin",
                reason,
            };
            let hooks = crate::webhooks_host::WebhooksOrigin::parse(url).map_err(invalid)?;
            if self
                .public_url
                .as_deref()
                .is_some_and(|public| hooks.is_host(public.split_once("://").map(|(_, a)| a)))
            {
                return Err(invalid(format!(
                    "{url:?} has the host of public_url; webhooks need a host name of their own"
                )));
            }
        }
        crate::oidc::validate_providers(&self.oidc_providers).map_err(|reason| {
            ConfigError::Invalid {
                setting: "oidc_providers",
                reason,
            }
        })?;
        Ok(())
    }
}

/// A setting the gateway cannot start with.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A setting's value is malformed or contradicts another.
    #[error("invalid gateway setting {setting}: {reason}")]
    Invalid {
        /// The setting's name in [`Config`].
        setting: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The HTTP client for `Http` upstreams could not be built (TLS roots, system resolver).
    #[error("cannot build the upstream HTTP client: {0}")]
    HttpClient(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_settings_are_named() {
        assert!(Config::default().validate().is_ok());
        assert!(!Config::embedded().cookie_secure);
        let bad = Config {
            password_rule: "(".into(),
            ..Config::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("password_rule")
        );
        let bad = Config {
            cookie_same_site: SameSite::None,
            ..Config::embedded()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("cookie_same_site")
        );
        for (bad, setting) in [
            (
                Config {
                    trusted_proxies: vec!["10.0.0.0/8".into(), "lb".into()],
                    ..Config::default()
                },
                "trusted_proxies",
            ),
            (
                Config {
                    webhooks_origin: Some("https://hooks.example.com/x".into()),
                    ..Config::default()
                },
                "webhooks_origin",
            ),
            (
                Config {
                    public_url: Some("https://example.com".into()),
                    webhooks_origin: Some("https://example.com:8443".into()),
                    ..Config::default()
                },
                "webhooks_origin",
            ),
        ] {
            let err = bad.validate().unwrap_err().to_string();
            assert!(err.contains(setting), "{err}");
        }
        let good = Config {
            public_url: Some("https://api.example.com".into()),
            webhooks_origin: Some("https://hooks.example.com".into()),
            trusted_proxies: vec!["10.0.0.0/8".into(), "192.0.2.1".into()],
            ..Config::default()
        };
        assert!(good.validate().is_ok());
        let bad = Config {
            upstream_timeout: Duration::ZERO,
            ..Config::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("upstream_timeout")
        );
    }
}
