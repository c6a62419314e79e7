//! [`GatewayState`]: what every handler shares (configuration, storage, broker, backends, the
//! HTTP client and what is parsed from the configuration once), and the `gateway.*` events it
//! publishes.

use std::sync::Arc;
use std::time::Duration;

use refract_broker::Broker;
use refract_core::{EventType, SessionId, SourceHost, UserId};
use refract_storage::{Cache, DocumentStore};
use serde_json::Value;

use crate::config::{Config, ConfigError};
use crate::edge::RequestMeta;
use crate::proxy::Upstreams;
use crate::{client, oidc, webhooks_host};

/// How long an event publish may take before the gateway gives up on it: events are a side
/// effect, and a slow broker must not hold a login.
const EMIT_TIMEOUT: Duration = Duration::from_secs(2);

/// Everything the handlers share; cheap to clone.
#[derive(Clone)]
pub struct GatewayState {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    store: Arc<dyn DocumentStore>,
    cache: Arc<dyn Cache>,
    broker: Arc<dyn Broker>,
    upstreams: Upstreams,
    http: reqwest::Client,
    password_rule: regex::Regex,
    oidc: oidc::Providers,
    trusted_proxies: client::TrustedProxies,
    webhooks_origin: Option<webhooks_host::WebhooksOrigin>,
    /// The platform's OpenAPI document as served, once published ([`GatewayState::publish_api`]).
    api_document: std::sync::OnceLock<bytes::Bytes>,
}

impl std::fmt::Debug for GatewayState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayState")
            .field("config", &self.inner.config)
            .field("store", &self.inner.store.describe())
            .field("cache", &self.inner.cache.describe())
            .field("upstreams", &self.inner.upstreams)
            .finish()
    }
}

impl GatewayState {
    /// Validates `config` and builds the state, with one pooled HTTP client for `Http`
    /// upstreams.
    pub fn new(
        config: Config,
        store: Arc<dyn DocumentStore>,
        cache: Arc<dyn Cache>,
        broker: Arc<dyn Broker>,
        upstreams: Upstreams,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let password_rule =
            regex::Regex::new(&config.password_rule).map_err(|e| ConfigError::Invalid {
                setting: "password_rule",
                reason: e.to_string(),
            })?;
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ConfigError::HttpClient(e.to_string()))?;
        let oidc = oidc::Providers::new(&config.oidc_providers, http.clone()).map_err(|e| {
            ConfigError::Invalid {
                setting: "oidc_providers",
                reason: e.to_string(),
            }
        })?;
        let invalid = |setting| move |reason| ConfigError::Invalid { setting, reason };
        let trusted_proxies = client::TrustedProxies::parse(&config.trusted_proxies)
            .map_err(invalid("trusted_proxies"))?;
        let webhooks_origin = config
            .webhooks_origin
            .as_deref()
            .map(webhooks_host::WebhooksOrigin::parse)
            .transpose()
            .map_err(invalid("webhooks_origin"))?;
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                store,
                cache,
                broker,
                upstreams,
                http,
                password_rule,
                oidc,
                trusted_proxies,
                webhooks_origin,
                api_document: std::sync::OnceLock::new(),
            }),
        })
    }

    /// Serves `document` (the gateway's and its backends' operations, merged by the binary
    /// that knows them all) at `GET /v2/openapi.json`; the first call wins.
    pub fn publish_api(
        &self,
        document: &utoipa::openapi::OpenApi,
    ) -> Result<(), serde_json::Error> {
        let bytes = serde_json::to_vec(document)?;
        let _ = self.inner.api_document.set(bytes.into());
        Ok(())
    }

    /// The published OpenAPI document, if any.
    pub(crate) fn api_document(&self) -> Option<&bytes::Bytes> {
        self.inner.api_document.get()
    }

    /// The validated configuration the gateway runs with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub(crate) fn store(&self) -> &dyn DocumentStore {
        self.inner.store.as_ref()
    }

    pub(crate) fn cache(&self) -> &dyn Cache {
        self.inner.cache.as_ref()
    }

    pub(crate) fn upstreams(&self) -> &Upstreams {
        &self.inner.upstreams
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    pub(crate) fn oidc(&self) -> &oidc::Providers {
        &self.inner.oidc
    }

    pub(crate) fn trusted_proxies(&self) -> &client::TrustedProxies {
        &self.inner.trusted_proxies
    }

    pub(crate) fn webhooks_origin(&self) -> Option<&webhooks_host::WebhooksOrigin> {
        self.inner.webhooks_origin.as_ref()
    }

    pub(crate) fn password_rule(&self) -> &regex::Regex {
        &self.inner.password_rule
    }

    /// Publishes a `gateway.*` event. A broker failure is logged, never returned: the login
    /// or signup it reports has already happened.
    pub(crate) async fn emit(
        &self,
        event_type: &str,
        payload: Value,
        meta: &RequestMeta,
        user: Option<&str>,
        session: Option<&str>,
    ) {
        let (Ok(event_type), Value::Object(payload)) = (EventType::new(event_type), payload) else {
            tracing::error!(
                event_type,
                "gateway event with a bad type or a non-object payload"
            );
            return;
        };
        let mut event = refract_core::Event::new(event_type, None, payload);
        event.source.correlation_id = meta.correlation_id.clone();
        event.source.user_id = user.and_then(|u| UserId::new(u).ok());
        event.source.session_id = session.and_then(|s| SessionId::new(s).ok());
        event.source.ip = meta.ip();
        event.source.host = Some(SourceHost {
            service: refract_core::platform::service::GATEWAY.into(),
            replica: None,
        });
        let kind = event.event_type.to_string();
        match tokio::time::timeout(EMIT_TIMEOUT, self.inner.broker.publish(event)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(event_type = %kind, error = %e, "could not publish a gateway event")
            }
            Err(_) => tracing::warn!(event_type = %kind, "publishing a gateway event timed out"),
        }
    }
}
