//! The whole platform in process, driven over real HTTP through the gateway: what the
//! end-to-end tests use. Also builds the SDK's example automations once per test binary.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, bail};
use refract::Config;
use refract::serve::Cluster;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running embedded platform on a loopback port.
pub struct Platform {
    /// Base URL of its gateway (`http://127.0.0.1:<port>`).
    pub url: String,
    stop: oneshot::Sender<()>,
    server: JoinHandle<anyhow::Result<()>>,
}

impl Platform {
    /// Starts `refract serve` in process with its data in `data_dir`, rate limits off (tests
    /// sign up several users from one address and poll the history).
    pub async fn start(data_dir: &Path) -> anyhow::Result<Self> {
        Self::start_with(Config {
            data_dir: data_dir.to_path_buf(),
            disable_rate_limit: true,
            ..Config::default()
        })
        .await
    }

    /// Like [`start`](Self::start), with runs allowed to `fetch` loopback servers (a test's
    /// own endpoints on 127.0.0.1).
    pub async fn start_reaching_loopback(data_dir: &Path) -> anyhow::Result<Self> {
        let mut config = Config {
            data_dir: data_dir.to_path_buf(),
            disable_rate_limit: true,
            allow_loopback_fetch: true,
            ..Config::default()
        };
        config.sandbox.allow_hosts = vec!["127.0.0.1".into()];
        Self::start_with(config).await
    }

    /// Starts the platform in process with `config` (its `listen` is replaced by a free
    /// loopback port). Several platforms on the same shared backends are a distributed
    /// deployment in one process.
    pub async fn start_with(config: Config) -> anyhow::Result<Self> {
        let config = Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..config
        };
        let cluster = Cluster::embedded(&config).await?;
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = oneshot::channel::<()>();
        let app = cluster.app.clone();
        let server = tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await?;
            cluster.shutdown().await;
            Ok(())
        });
        Ok(Self { url, stop, server })
    }

    /// Stops serving and waits until the workers are done, releasing the data folder.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.server.await?
    }

    /// A client with no credentials.
    pub fn client(&self) -> Client {
        Client {
            http: reqwest::Client::new(),
            url: self.url.clone(),
            token: None,
        }
    }
}

/// An HTTP client of the platform, optionally authenticated.
#[derive(Clone)]
pub struct Client {
    /// The underlying client (connection pool shared by clones).
    pub http: reqwest::Client,
    /// Base URL the request paths are appended to.
    pub url: String,
    /// The bearer token sent with every request; `None`: anonymous.
    pub token: Option<String>,
}

impl Client {
    /// Signs up `email` and logs in; returns a client carrying the session token.
    pub async fn signed_up(&self, email: &str) -> anyhow::Result<Client> {
        let password = "correct horse battery";
        let (status, body) = self
            .json(
                Method::POST,
                "/v2/signup",
                Some(json!({"email": email, "password": password, "firstName": "Test"})),
            )
            .await?;
        if status != StatusCode::OK {
            bail!("signup failed: {status} {body}");
        }
        self.logged_in(email, password).await
    }

    /// Logs in an existing user; returns a client carrying the session token.
    pub async fn logged_in(&self, email: &str, password: &str) -> anyhow::Result<Client> {
        let (status, body) = self
            .json(
                Method::POST,
                "/v2/login",
                Some(json!({"email": email, "password": password})),
            )
            .await?;
        if status != StatusCode::OK {
            bail!("login failed: {status} {body}");
        }
        let token = body["token"]
            .as_str()
            .context("login response without token")?
            .to_string();
        Ok(Client {
            token: Some(token),
            ..self.clone()
        })
    }

    /// A request to `path` on the platform, with the token if the client has one.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let req = self.http.request(method, format!("{}{path}", self.url));
        match &self.token {
            Some(token) => req.bearer_auth(token),
            None => req,
        }
    }

    /// Sends `body` as JSON (or nothing) and returns the status and the JSON answer
    /// (`null` when the answer is not JSON).
    pub async fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let mut req = self.request(method, path);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await?;
        let status = res.status();
        let bytes = res.bytes().await?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    /// Creates a workspace and returns its id.
    pub async fn workspace(&self, name: &str) -> anyhow::Result<String> {
        let (status, body) = self
            .json(Method::POST, "/v2/workspaces", Some(json!({"name": name})))
            .await?;
        if status != StatusCode::OK {
            bail!("creating a workspace failed: {status} {body}");
        }
        Ok(body["id"]
            .as_str()
            .context("workspace without id")?
            .to_string())
    }

    /// Creates `automation` (a DSL document, or a component's declaration) in `workspace`.
    pub async fn create_automation(
        &self,
        workspace: &str,
        automation: Value,
    ) -> anyhow::Result<()> {
        let slug = automation["slug"].as_str().unwrap_or_default().to_owned();
        let (status, body) = self
            .json(
                Method::POST,
                &format!("/v2/workspaces/{workspace}/automations"),
                Some(automation),
            )
            .await?;
        if status != StatusCode::OK {
            bail!("creating automation {slug} failed: {status} {body}");
        }
        Ok(())
    }

    /// Creates a component automation and uploads `wasm` for it.
    pub async fn deploy(
        &self,
        workspace: &str,
        automation: Value,
        wasm: &[u8],
    ) -> anyhow::Result<Value> {
        let slug = automation["slug"]
            .as_str()
            .context("automation without slug")?
            .to_string();
        self.create_automation(workspace, automation).await?;
        let res = self
            .request(
                Method::PUT,
                &format!("/v2/workspaces/{workspace}/automations/{slug}/component"),
            )
            .header("content-type", "application/wasm")
            .body(wasm.to_vec())
            .send()
            .await?;
        let status = res.status();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        if status != StatusCode::OK {
            bail!("uploading {slug} failed: {status} {body}");
        }
        Ok(body)
    }

    /// Polls the history until an event of `event_type` matching `pred` shows up.
    pub async fn wait_for_event(
        &self,
        workspace: &str,
        event_type: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let (status, body) = self
                .json(
                    Method::GET,
                    &format!("/v2/workspaces/{workspace}/events?types={event_type}&limit=100"),
                    None,
                )
                .await?;
            if status != StatusCode::OK {
                bail!("reading events failed: {status} {body}");
            }
            if let Some(event) = body["result"]["events"]
                .as_array()
                .and_then(|events| events.iter().find(|e| pred(e)))
            {
                return Ok(event.clone());
            }
            if tokio::time::Instant::now() > deadline {
                bail!("no {event_type} event showed up; last page: {body}");
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

static EXAMPLES: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// Serves `app` on a free loopback port for the rest of the test (an API a run fetches, a
/// collector the platform exports to); its address.
pub async fn serve_on_loopback(app: axum::Router) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

/// The bytes of the SDK example `name` (`webhook-echo`, `event-emitter`, `counter`,
/// `fetch-then-wait`, `authorized-fetch`), built once per test binary.
pub fn example(name: &str) -> anyhow::Result<Vec<u8>> {
    let dir = EXAMPLES
        .get_or_init(|| build_examples().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)?;
    let path = dir.join(format!("{}.wasm", name.replace('-', "_")));
    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
}

fn build_examples() -> anyhow::Result<PathBuf> {
    let target = crate::fixtures::guest_target_dir().with_file_name("guest-examples");
    let manifest =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk/examples/Cargo.toml");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--manifest-path",
        ])
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .status()
        .with_context(|| format!("running {cargo} build for {}", manifest.display()))?;
    if !status.success() {
        bail!(
            "building the SDK examples failed ({status}): cargo build --release --target wasm32-wasip2 --manifest-path {}",
            manifest.display()
        );
    }
    Ok(target.join("wasm32-wasip2").join("release"))
}

/// The next server-sent event's `data` from a streamed answer, `None` when the stream ends.
pub async fn next_event(res: &mut reqwest::Response, buf: &mut String) -> Option<Value> {
    loop {
        if let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            let data = event.strip_prefix("data: ").expect("a data event");
            return Some(serde_json::from_str(data.trim_end()).expect("JSON data"));
        }
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(20), res.chunk())
            .await
            .expect("an event within 20 s")
            .expect("the stream reads")?;
        buf.push_str(std::str::from_utf8(&chunk).expect("UTF-8 events"));
    }
}
