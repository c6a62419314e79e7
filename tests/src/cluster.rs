//! A distributed Refract on this machine: every service a separate `refract` process on shared
//! Redis, PostgreSQL and a shared file folder, with a round-robin [`Balancer`] in front of the
//! gateways. What the scale-out and fault tests use.
//!
//! Each cluster gets its own key namespace in Redis and its own PostgreSQL schema, so clusters
//! of parallel tests (and the other suites) never see each other's data.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::balancer::Balancer;
use crate::platform::Client;

/// How long a process may take to answer its healthcheck (a debug build loads wasmtime).
const START_PATIENCE: Duration = Duration::from_secs(90);

/// The backends every instance shares.
#[derive(Debug, Clone)]
pub struct SharedBackends {
    /// The Redis of the broker and the cache.
    pub redis_url: String,
    /// The PostgreSQL of the document store.
    pub database_url: String,
    /// The file store of the workspaces and runtimes (e.g. `s3://bucket/prefix?endpoint=…`);
    /// `None`: a folder of the cluster's own.
    pub files_url: Option<String>,
}

impl SharedBackends {
    /// From `REFRACT_TEST_REDIS_URL` and `REFRACT_TEST_DATABASE_URL`, and the optional
    /// `REFRACT_TEST_FILES_URL`; `None` (with the reason) when either of the first is unset.
    pub fn from_env() -> Result<Self, String> {
        let var = |name: &str| std::env::var(name).map_err(|_| format!("{name} is not set"));
        Ok(Self {
            redis_url: var("REFRACT_TEST_REDIS_URL")?,
            database_url: var("REFRACT_TEST_DATABASE_URL")?,
            files_url: std::env::var("REFRACT_TEST_FILES_URL")
                .ok()
                .filter(|u| !u.is_empty()),
        })
    }
}

/// How many instances of each service.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Gateway processes, all behind the balancer.
    pub gateways: usize,
    /// Runtime processes (the workers that run automations).
    pub runtimes: usize,
    /// Events processes (WebSocket delivery).
    pub events: usize,
}

impl Default for Shape {
    /// The cluster: 2 gateways, 2 runtimes, 2 events, and always 1 workspaces.
    fn default() -> Self {
        Self {
            gateways: 2,
            runtimes: 2,
            events: 2,
        }
    }
}

/// One `refract <service>` process, and how to start it again.
struct Node {
    child: Child,
    url: String,
    log: PathBuf,
    service: String,
    extra: Vec<(String, String)>,
}

/// A running cluster; dropping it kills every process.
pub struct LocalCluster {
    /// The balancer in front of the gateways: what clients use.
    pub url: String,
    /// The Redis key namespace (and PostgreSQL schema) of this cluster.
    pub namespace: String,
    /// The gateway key every process of this cluster shares (`REFRACT_GATEWAY_KEY`): what a
    /// test that calls a backend directly must send to be believed.
    pub gateway_key: String,
    /// The keyring the workspaces and runtime processes share (`REFRACT_SECRETS_KEYRING`).
    secrets_keyring: String,
    bin: PathBuf,
    backends: SharedBackends,
    database_url: String,
    nodes: BTreeMap<String, Node>,
    /// Set once every gateway is healthy.
    balancer: Option<Balancer>,
    dir: tempfile::TempDir,
}

impl LocalCluster {
    /// The PostgreSQL URL of this cluster's schema, as its processes use it (e.g. to run
    /// `refract admin` against the cluster).
    pub fn database_url(&self) -> String {
        let separator = if self.database_url.contains('?') {
            '&'
        } else {
            '?'
        };
        format!("{}{separator}schema={}", self.database_url, self.namespace)
    }

    /// Starts `shape` on `backends` with the `refract` binary `bin` (end-to-end tests pass their
    /// `CARGO_BIN_EXE_refract-node`): workspaces `ws-1`, runtimes `rt-N`, events `ev-N`, gateways
    /// `gw-N` (gateway N prefers runtime N and events N, wrapping around, and fails over to the
    /// others), and waits until
    /// every one answers its healthcheck.
    pub async fn start(
        bin: &Path,
        backends: &SharedBackends,
        shape: Shape,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let namespace = format!(
            "cluster{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let gateway_key = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let (_, secrets_keyring) = refract_secrets::Keyring::generate("cluster")?;
        let mut cluster = Self {
            secrets_keyring,
            bin: bin.to_path_buf(),
            backends: backends.clone(),
            database_url: backends.database_url.clone(),
            url: String::new(),
            namespace,
            gateway_key,
            nodes: BTreeMap::new(),
            balancer: None,
            dir,
        };
        let workspaces = cluster.spawn("ws-1", "workspaces", backends, &[])?;
        let runtimes: Vec<String> = (1..=shape.runtimes)
            .map(|i| cluster.spawn(&format!("rt-{i}"), "runtime", backends, &[]))
            .collect::<anyhow::Result<_>>()?;
        let events: Vec<String> = (1..=shape.events)
            .map(|i| cluster.spawn(&format!("ev-{i}"), "events", backends, &[]))
            .collect::<anyhow::Result<_>>()?;
        let mut gateways = Vec::new();
        for i in 0..shape.gateways {
            let upstreams = [
                ("REFRACT_WORKSPACES_URL", workspaces.clone()),
                ("REFRACT_RUNTIME_URL", preferring(&runtimes, i)),
                ("REFRACT_EVENTS_URL", preferring(&events, i)),
            ];
            gateways.push(cluster.spawn(
                &format!("gw-{}", i + 1),
                "gateway",
                backends,
                &upstreams,
            )?);
        }
        let names: Vec<String> = cluster.nodes.keys().cloned().collect();
        for name in names {
            cluster.wait_healthy(&name).await?;
        }
        let addrs = gateways
            .iter()
            .map(|u| u.trim_start_matches("http://").parse())
            .collect::<Result<Vec<SocketAddr>, _>>()?;
        let balancer = Balancer::start(addrs).await?;
        cluster.url = format!("http://{}", balancer.addr);
        cluster.balancer = Some(balancer);
        Ok(cluster)
    }

    /// Starts `refract <service>` as `name` on a free loopback port; returns its URL.
    fn spawn(
        &mut self,
        name: &str,
        service: &str,
        backends: &SharedBackends,
        extra: &[(&str, String)],
    ) -> anyhow::Result<String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let extra: Vec<(String, String)> = extra
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        self.spawn_on(name, service, backends, port, extra)
    }

    fn spawn_on(
        &mut self,
        name: &str,
        service: &str,
        backends: &SharedBackends,
        port: u16,
        extra: Vec<(String, String)>,
    ) -> anyhow::Result<String> {
        let url = format!("http://127.0.0.1:{port}");
        let log = self.dir.path().join(format!("{name}.log"));
        // One handle for both streams (two `create`s would each write at their own offset);
        // a restarted node appends, so the log shows both lives.
        let output = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)?;
        let files = backends
            .files_url
            .clone()
            .unwrap_or_else(|| format!("file://{}", self.dir.path().join("files").display()));
        let mut command = Command::new(&self.bin);
        command
            .args([service, "--listen", &format!("127.0.0.1:{port}")])
            .env("REFRACT_BROKER_URL", &backends.redis_url)
            .env("REFRACT_CACHE_URL", &backends.redis_url)
            .env("REFRACT_DATABASE_URL", self.database_url())
            .env("REFRACT_FILES_URL", files)
            .env("REFRACT_NAMESPACE", &self.namespace)
            .env("REFRACT_INSTANCE", name)
            .env("REFRACT_GATEWAY_KEY", &self.gateway_key)
            .env("REFRACT_SECRETS_KEYRING", &self.secrets_keyring)
            .env("REFRACT_DISABLE_RATE_LIMIT", "true")
            .env("RUST_LOG", "warn,refract=info")
            .env("RUST_LIB_BACKTRACE", "0")
            .env_remove("REFRACT_CONFIG")
            .stdin(Stdio::null())
            .stdout(output.try_clone()?)
            .stderr(output);
        for (key, value) in &extra {
            command.env(key, value);
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        self.nodes.insert(
            name.to_string(),
            Node {
                child,
                url: url.clone(),
                log,
                service: service.to_string(),
                extra,
            },
        );
        Ok(url)
    }

    async fn wait_healthy(&mut self, name: &str) -> anyhow::Result<()> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let started = Instant::now();
        loop {
            let node = self.nodes.get_mut(name).context("no such node")?;
            if let Some(status) = node.child.try_wait()? {
                bail!(
                    "{name} exited ({status}) before it was healthy:\n{}",
                    tail(&node.log)
                );
            }
            let url = format!("{}/sys/healthcheck", node.url);
            if http
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(());
            }
            if started.elapsed() > START_PATIENCE {
                bail!(
                    "{name} not healthy after {START_PATIENCE:?}:\n{}",
                    tail(&node.log)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Kills `name` with SIGKILL: no graceful shutdown, no acknowledgements sent on the way out.
    pub fn kill(&mut self, name: &str) -> anyhow::Result<()> {
        let node = self
            .nodes
            .get_mut(name)
            .with_context(|| format!("no node {name}"))?;
        node.child.kill()?;
        node.child.wait()?;
        Ok(())
    }

    /// Starts `name` again (after [`LocalCluster::kill`]) on the same port with the same
    /// settings, and waits until it is healthy.
    pub async fn restart(&mut self, name: &str) -> anyhow::Result<()> {
        let node = self
            .nodes
            .get_mut(name)
            .with_context(|| format!("no node {name}"))?;
        let _ = node.child.kill();
        node.child.wait()?;
        let port: u16 = node
            .url
            .rsplit(':')
            .next()
            .context("node URL without port")?
            .parse()?;
        let (service, extra) = (node.service.clone(), node.extra.clone());
        let backends = self.backends.clone();
        self.spawn_on(name, &service, &backends, port, extra)?;
        self.wait_healthy(name).await
    }

    /// A client of the cluster through the balancer.
    pub fn client(&self) -> Client {
        Client {
            http: reqwest::Client::new(),
            url: self.url.clone(),
            token: None,
        }
    }

    /// The URL of one node (to call a given gateway directly).
    pub fn node_url(&self, name: &str) -> Option<&str> {
        self.nodes.get(name).map(|n| n.url.as_str())
    }

    /// The names and URLs of the processes.
    pub fn nodes(&self) -> Vec<(String, String)> {
        self.nodes
            .iter()
            .map(|(name, n)| (name.clone(), n.url.clone()))
            .collect()
    }

    /// The folder of the processes' logs (`<name>.log`), removed with the cluster.
    pub fn log_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The last lines each process logged: for failure messages.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|(name, n)| format!("== {name}\n{}", tail(&n.log)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for node in self.nodes.values_mut() {
            let _ = node.child.kill();
            let _ = node.child.wait();
        }
        // Best effort: the schema is unique to this cluster, and only psql can drop it without
        // an async runtime here.
        let drop = format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.namespace);
        let _ = Command::new("psql")
            .args([self.database_url.as_str(), "-qc", &drop])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Every instance URL, comma-separated, starting with the `i`-th (wrapping around): a gateway's
/// backend setting that prefers its own instance and fails over to the others in turn.
fn preferring(urls: &[String], i: usize) -> String {
    (0..urls.len())
        .map(|k| urls[(i + k) % urls.len()].as_str())
        .collect::<Vec<_>>()
        .join(",")
}
