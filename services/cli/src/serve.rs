//! Running the platform: every service in one process (`refract serve`), or one service per
//! process on shared backends (`refract gateway|workspaces|runtime|events`).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use axum::Router;
use refract_broker::{Broker, BrokerConfig};
use refract_host::{Host, HostConfig};
use refract_http::gateway_key::{self, GatewayGuard, GatewayKey};
use refract_secrets::Keyring;
use refract_storage::{Cache, DocumentStore, FileStore};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::{Config, observability};

/// How many events each in-process broker partition keeps once every consumer group has read
/// them (unread entries are never trimmed from the in-process broker). They serve WebSocket
/// reconnects' replays; Redis's default (100,000 per partition) would keep hundreds of MB in
/// the process.
pub const EMBEDDED_BROKER_MAX_LEN: usize = 2_000;

/// One service of the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// The only public listener: logins and sessions, routing to the other services.
    Gateway,
    /// Workspaces, memberships, automations, component uploads and secrets.
    Workspaces,
    /// Runs automations in the sandbox on events, webhooks and schedules.
    Runtime,
    /// Event history and search, client emits, live WebSocket streams.
    Events,
}

/// The shared backends, opened from the config's URLs.
#[derive(Clone)]
pub struct Backends {
    /// The event broker (`broker_url`).
    pub broker: Arc<dyn Broker>,
    /// The document store (`database_url`).
    pub store: Arc<dyn DocumentStore>,
    /// The cache (`cache_url`).
    pub cache: Arc<dyn Cache>,
    /// File storage (`files_url`): components, artifacts.
    pub files: FileStore,
    /// The sandbox host that compiles and runs components, reading them from `files`.
    pub host: Arc<Host>,
}

impl Backends {
    /// Opens every backend the config names, and the embedded default of each URL it leaves
    /// unset (creating the data folder they live in).
    pub async fn open(config: &Config) -> anyhow::Result<Self> {
        let embedded = [
            config.database_url.as_ref(),
            config.cache_url.as_ref(),
            config.files_url.as_ref(),
        ]
        .iter()
        .any(Option::is_none);
        if embedded {
            std::fs::create_dir_all(&config.data_dir).with_context(|| {
                format!("creating the data folder {}", config.data_dir.display())
            })?;
        }
        let broker_url = config.broker();
        let mut broker_config = BrokerConfig {
            namespace: config.namespace.clone(),
            ..BrokerConfig::default()
        };
        if broker_url.starts_with("memory:") {
            broker_config.max_len = EMBEDDED_BROKER_MAX_LEN;
        }
        let broker = refract_broker::open(&broker_url, broker_config)
            .await
            .context("broker_url")?;
        let store = refract_storage::open_document_store(&config.database())
            .await
            .context("database_url")?;
        let cache = refract_storage::open_cache(&config.cache(), &config.namespace)
            .await
            .context("cache_url")?;
        let files = refract_storage::open_file_store(&config.files())
            .await
            .context("files_url")?;
        let mut host_config = HostConfig::default();
        host_config.egress.allow_loopback = config.allow_loopback_fetch;
        host_config.after_compile = Some(crate::release_compiler_memory);
        let artifacts = Arc::new(refract_workspaces::FileArtifactStore::new(files.clone()));
        let host = Arc::new(
            Host::new(host_config, artifacts)
                .map_err(|e| anyhow!("starting the sandbox host: {e}"))?,
        );
        Ok(Self {
            broker,
            store,
            cache,
            files,
            host,
        })
    }
}

/// Every service in one process: the gateway's app (dispatching in process) and the
/// background workers (runtime consumers and scheduler, history ingestion).
pub struct Cluster {
    /// The public router: the gateway, with its backends mounted in process, and the
    /// operational endpoints.
    pub app: Router,
    /// The backends the cluster runs on.
    pub backends: Backends,
    stop: watch::Sender<bool>,
    workers: Vec<JoinHandle<()>>,
}

impl Cluster {
    /// Opens the backends and starts every service's workers; the caller serves
    /// [`Cluster::app`] and calls [`Cluster::shutdown`] when done.
    pub async fn embedded(config: &Config) -> anyhow::Result<Self> {
        let keyring = config.keyring(true)?;
        let backends = Backends::open(config).await?;
        let (stop, stopped) = watch::channel(false);
        let mut workers = Vec::new();

        let events = events_state(&backends, config);
        workers.push(tokio::spawn(refract_events::run_workers(
            events.clone(),
            until(stopped.clone()),
        )));

        let runtime = runtime_state(&backends, config, keyring.clone()).await?;
        let runtime_workers = runtime.clone();
        let runtime_stopped = stopped.clone();
        workers.push(tokio::spawn(async move {
            if let Err(e) =
                refract_runtime::run_workers(runtime_workers, until(runtime_stopped)).await
            {
                tracing::error!(error = %e, "runtime workers stopped");
            }
        }));

        let workspaces = workspaces_state(&backends, config, keyring);
        // The backends are reached in process only, so no secret needs configuring; they keep
        // the distributed mode's guard all the same, with a random key of this process.
        let key = GatewayKey::random().context("making the embedded gateway key")?;
        let guarded = |router, which| {
            gateway_key::guard(
                observability::tracked(router, which),
                GatewayGuard::Key(key.clone()),
            )
        };
        let upstreams = refract_gateway::Upstreams {
            workspaces: refract_gateway::Upstream::InProcess(guarded(
                refract_workspaces::router(workspaces),
                Service::Workspaces,
            )),
            runtime: refract_gateway::Upstream::InProcess(guarded(
                refract_runtime::router(runtime),
                Service::Runtime,
            )),
            events: refract_gateway::Upstream::InProcess(guarded(
                refract_events::router(events),
                Service::Events,
            )),
        };
        let gateway =
            refract_gateway::router(gateway_state(&backends, config, upstreams, Some(key))?);
        let app = observability::public(
            gateway,
            None,
            &backends,
            config.internal_api_key.as_deref(),
            Vec::new(),
        );
        Ok(Self {
            app,
            backends,
            stop,
            workers,
        })
    }

    /// Stops the workers and waits for them.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for worker in self.workers {
            let _ = worker.await;
        }
    }
}

/// `refract serve`: the embedded mode, until `shutdown` resolves.
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    tracing::info!(?config, "starting refract (embedded)");
    let cluster = Cluster::embedded(&config).await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {} (setting `listen`)", config.listen))?;
    eprintln!(
        "refract is listening on http://{} (data in {})",
        listener.local_addr()?,
        config.data_dir.display()
    );
    let app = cluster.app.clone();
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .context("serving HTTP")?;
    cluster.shutdown().await;
    Ok(())
}

/// One service alone on shared backends (distributed mode).
pub async fn service(which: Service, config: Config) -> anyhow::Result<()> {
    tracing::info!(?which, ?config, "starting refract service");
    // Before opening anything: a process that would not be safe refuses to start.
    let (gateway_key, guard) = gateway_key_of(which, &config)?;
    let keyring = match which {
        Service::Workspaces | Service::Runtime => Some(config.keyring(false)?),
        Service::Gateway | Service::Events => None,
    };
    let backends = Backends::open(&config).await?;
    let (stop, stopped) = watch::channel(false);
    let mut workers: Vec<JoinHandle<()>> = Vec::new();
    let key = config.internal_api_key.as_deref();
    let with_health = |router: Router, which: Service| {
        gateway_key::guard(
            observability::backend(router, which, &backends, key),
            guard.clone(),
        )
    };
    let app = match which {
        Service::Gateway => {
            let upstream = |urls: &Option<String>, setting: &'static str| {
                let urls = urls.as_deref().ok_or_else(|| {
                    anyhow!(
                        "the gateway needs `{setting}` (REFRACT_{}) in distributed mode",
                        setting.to_uppercase()
                    )
                })?;
                anyhow::Ok(refract_gateway::Upstream::http(
                    setting,
                    instance_urls(urls),
                )?)
            };
            let upstreams = refract_gateway::Upstreams {
                workspaces: upstream(&config.workspaces_url, "workspaces_url")?,
                runtime: upstream(&config.runtime_url, "runtime_url")?,
                events: upstream(&config.events_url, "events_url")?,
            };
            let probed = [
                ("workspaces", &config.workspaces_url),
                ("runtime", &config.runtime_url),
                ("events", &config.events_url),
            ]
            .into_iter()
            .filter_map(|(name, urls)| {
                urls.as_deref()
                    .map(|u| (name, instance_urls(u).map(str::to_owned).collect()))
            })
            .collect();
            let gateway =
                refract_gateway::router(gateway_state(&backends, &config, upstreams, gateway_key)?);
            observability::public(gateway, Some(Service::Gateway), &backends, key, probed)
        }
        Service::Workspaces => with_health(
            refract_workspaces::router(workspaces_state(
                &backends,
                &config,
                keyring.context("the workspaces service's keyring")?,
            )),
            which,
        ),
        Service::Runtime => {
            let keyring = keyring.context("the runtime's keyring")?;
            let runtime = runtime_state(&backends, &config, keyring).await?;
            let workers_state = runtime.clone();
            let worker_stop = stopped.clone();
            workers.push(tokio::spawn(async move {
                if let Err(e) =
                    refract_runtime::run_workers(workers_state, until(worker_stop)).await
                {
                    tracing::error!(error = %e, "runtime workers stopped");
                }
            }));
            with_health(refract_runtime::router(runtime), which)
        }
        Service::Events => {
            let events = events_state(&backends, &config);
            workers.push(tokio::spawn(refract_events::run_workers(
                events.clone(),
                until(stopped.clone()),
            )));
            with_health(refract_events::router(events), which)
        }
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {} (setting `listen`)", config.listen))?;
    eprintln!(
        "refract {which:?} is listening on http://{}",
        listener.local_addr()?
    );
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
    .context("serving HTTP")?;
    let _ = stop.send(true);
    for worker in workers {
        let _ = worker.await;
    }
    Ok(())
}

/// The gateway key of a distributed-mode process: what a gateway sends, and what a backend
/// requires (the guard of a gateway is unused). Errors name the setting: a backend without a
/// key starts only with `require_gateway_key = false` on loopback, and a gateway without one
/// only with `require_gateway_key = false`.
fn gateway_key_of(
    which: Service,
    config: &Config,
) -> anyhow::Result<(Option<GatewayKey>, GatewayGuard)> {
    let key = config.gateway_key()?;
    if which == Service::Gateway {
        if key.is_none() && config.require_gateway_key {
            bail!(
                "the gateway needs gateway_key (REFRACT_GATEWAY_KEY), the secret its backends require, in distributed \
                 mode; or require_gateway_key = false if its backends run without one, on loopback"
            );
        }
        return Ok((key, GatewayGuard::Open));
    }
    let guard = GatewayGuard::for_listener(config.listen, key.clone(), config.require_gateway_key)?;
    Ok((key, guard))
}

/// A backend setting of the gateway: one URL, or several separated by commas (the instances in
/// order of preference).
fn instance_urls(setting: &str) -> impl Iterator<Item = &str> {
    setting.split(',').map(str::trim).filter(|u| !u.is_empty())
}

fn events_state(backends: &Backends, config: &Config) -> refract_events::EventsState {
    refract_events::EventsState::new(
        backends.broker.clone(),
        backends.store.clone(),
        backends.cache.clone(),
        refract_events::Config::new(config.instance()),
    )
}

fn workspaces_state(
    backends: &Backends,
    config: &Config,
    keyring: Keyring,
) -> refract_workspaces::WorkspacesState {
    refract_workspaces::WorkspacesState::new(
        backends.broker.clone(),
        backends.store.clone(),
        backends.files.clone(),
        backends.host.clone(),
        refract_workspaces::Config {
            keyring,
            automation_versions: config.automation_versions,
            ..refract_workspaces::Config::default()
        },
    )
}

async fn runtime_state(
    backends: &Backends,
    config: &Config,
    keyring: Keyring,
) -> anyhow::Result<refract_runtime::RuntimeState> {
    let runtime_config = refract_runtime::Config {
        keyring,
        instance_id: config.instance(),
        allow_loopback: config.allow_loopback_fetch,
        sandbox: config.sandbox.clone(),
        workspace_sandboxes: config.workspace_sandboxes()?,
        ..refract_runtime::Config::default()
    };
    refract_runtime::RuntimeState::new(
        backends.broker.clone(),
        backends.store.clone(),
        backends.cache.clone(),
        backends.files.clone(),
        backends.host.clone(),
        runtime_config,
    )
    .await
    .map_err(|e| anyhow!("starting the runtime: {e}"))
}

fn gateway_state(
    backends: &Backends,
    config: &Config,
    upstreams: refract_gateway::Upstreams,
    gateway_key: Option<GatewayKey>,
) -> anyhow::Result<refract_gateway::GatewayState> {
    let gateway_config = refract_gateway::Config {
        gateway_key,
        cookie_secure: config.secure_cookies,
        super_admin_emails: config.super_admin_emails.clone(),
        public_url: config.public_url.clone(),
        oidc_providers: config.oidc_providers(),
        rate_limits: (!config.disable_rate_limit)
            .then(refract_gateway::ratelimit::RateLimits::default),
        trusted_proxies: config.trusted_proxies.clone(),
        webhooks_origin: config.webhooks_origin.clone(),
        ..refract_gateway::Config::default()
    };
    let state = refract_gateway::GatewayState::new(
        gateway_config,
        backends.store.clone(),
        backends.cache.clone(),
        backends.broker.clone(),
        upstreams,
    )
    .map_err(|e| anyhow!("gateway configuration: {e}"))?;
    state.publish_api(&crate::contract::api_document())?;
    Ok(state)
}

/// Resolves once `stopped` turns true (or its sender is gone).
async fn until(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutting down");
}
