//! OpenID Connect login against a real provider on loopback (issue 7): the certified
//! `oidc-provider` npm package (tests/oidc/server.mjs) run by node, and a browser-less login
//! scripted with reqwest: the gateway's login route → the provider's login and consent forms →
//! the gateway's callback → a session that works on `/v2/me`. Signature, expiry, issuer,
//! audience and nonce checks of ID tokens are unit tests of `refract_gateway::oidc::provider`
//! (a forged token cannot be slipped into a real code exchange).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use refract::config::AuthProvider;
use refract_storage::{Cache, DocumentStore, MemoryStore};
use refract_tests::platform::Platform;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const CLIENT_ID: &str = "refract";
const CLIENT_SECRET: &str = "refract-test-secret";

/// The provider's folder (server script, package.json, node_modules).
fn provider_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("oidc")
}

/// Why the provider cannot run here (no node, or `npm ci --prefix tests/oidc` not run).
fn unavailable() -> Option<String> {
    match Command::new("node").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        _ => return Some("node is not installed".into()),
    }
    if !provider_dir().join("node_modules/oidc-provider").is_dir() {
        return Some("tests/oidc/node_modules is missing (run npm ci --prefix tests/oidc)".into());
    }
    None
}

/// A free loopback port (bound, read, released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The node process of the provider; killed on drop.
struct Provider {
    issuer: String,
    child: Child,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Provider {
    /// Starts the provider on `port`, allowing `redirect_uri` for its one client; waits until
    /// it listens.
    fn start(port: u16, redirect_uri: &str) -> Provider {
        let mut child = Command::new("node")
            .arg(provider_dir().join("server.mjs"))
            .arg(port.to_string())
            .arg(redirect_uri)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting node tests/oidc/server.mjs");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("listening ") {
                    let _ = tx.send(());
                }
            }
        });
        let provider = Provider {
            issuer: format!("http://127.0.0.1:{port}"),
            child,
        };
        rx.recv_timeout(Duration::from_secs(30))
            .expect("the OpenID provider did not start within 30 s");
        provider
    }
}

/// Cookies by name, for one site: enough for a scripted login (paths and expiry ignored,
/// `Max-Age=0` deletes).
#[derive(Default, Debug)]
struct Jar(BTreeMap<String, String>);

impl Jar {
    fn store(&mut self, res: &reqwest::Response) {
        for value in res.headers().get_all(SET_COOKIE) {
            let Ok(value) = value.to_str() else { continue };
            let Some((name, rest)) = value.split_once('=') else {
                continue;
            };
            let val = rest.split(';').next().unwrap_or_default().to_string();
            if val.is_empty() || value.contains("Max-Age=0") || value.contains("max-age=0") {
                self.0.remove(name.trim());
            } else {
                self.0.insert(name.trim().to_string(), val);
            }
        }
    }

    fn header(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

/// A browser without JavaScript: one cookie jar for the gateway (every instance of it is one
/// site), one for the provider.
struct Browser {
    http: reqwest::Client,
    /// The gateway instances' base URLs; the first is where logins start.
    gateways: Vec<String>,
    gateway_jar: Jar,
    provider_jar: Jar,
}

/// The gateway's answer to a callback (status, `Location`).
struct Landing {
    status: StatusCode,
    location: Option<String>,
}

fn html_attr(tag: &str, name: &str) -> Option<String> {
    let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
    let end = tag[start..].find('"')? + start;
    Some(tag[start..end].replace("&amp;", "&"))
}

/// The first form of `html`: its action and its fields, with `login`/`password` filled.
fn form(html: &str) -> Option<(String, Vec<(String, String)>)> {
    let start = html.find("<form")?;
    let end = html[start..].find("</form>")? + start;
    let form = &html[start..end];
    let action = html_attr(&form[..form.find('>')?], "action")?;
    let mut fields = Vec::new();
    for piece in form.split("<input").skip(1) {
        let tag = &piece[..piece.find('>').unwrap_or(piece.len())];
        let Some(name) = html_attr(tag, "name") else {
            continue;
        };
        let value = match name.as_str() {
            "login" => "ada".to_string(),
            "password" => "any password".to_string(),
            _ => html_attr(tag, "value").unwrap_or_default(),
        };
        fields.push((name, value));
    }
    Some((action, fields))
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn absolute(base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        return location.to_string();
    }
    let origin_end = base[8..].find('/').map_or(base.len(), |i| i + 8);
    format!("{}{location}", &base[..origin_end])
}

impl Browser {
    fn new(gateways: &[&str]) -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            gateways: gateways.iter().map(|g| g.to_string()).collect(),
            gateway_jar: Jar::default(),
            provider_jar: Jar::default(),
        }
    }

    fn is_gateway(&self, url: &str) -> bool {
        self.gateways.iter().any(|g| url.starts_with(g.as_str()))
    }

    async fn send(&mut self, method: Method, url: &str, form: Option<String>) -> reqwest::Response {
        let to_gateway = self.is_gateway(url);
        let jar = if to_gateway {
            &self.gateway_jar
        } else {
            &self.provider_jar
        };
        let mut req = self.http.request(method, url).header(COOKIE, jar.header());
        if let Some(body) = form {
            req = req
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body);
        }
        let res = req.send().await.unwrap();
        if to_gateway {
            self.gateway_jar.store(&res);
        } else {
            self.provider_jar.store(&res);
        }
        res
    }

    /// Starts a login at the first gateway and goes through the provider's forms; returns the
    /// callback URL the provider sends the browser to (not followed yet).
    async fn follow_to_callback(&mut self, provider: &str) -> String {
        let mut url = format!(
            "{}/v2/login?provider={provider}&redirect=/after",
            self.gateways[0]
        );
        let mut method = Method::GET;
        let mut body = None;
        for _ in 0..20 {
            if self.is_gateway(&url) && url.contains("/v2/login/callback") {
                return url;
            }
            let res = self.send(method.clone(), &url, body.take()).await;
            let status = res.status();
            if status.is_redirection() {
                let location = res
                    .headers()
                    .get(LOCATION)
                    .expect("a redirect without Location");
                url = absolute(&url, location.to_str().unwrap());
                method = Method::GET;
                continue;
            }
            let html = res.text().await.unwrap();
            assert_eq!(
                status,
                StatusCode::OK,
                "unexpected answer from {url}: {html}"
            );
            let (action, fields) = form(&html)
                .unwrap_or_else(|| panic!("no form on the provider's page {url}: {html}"));
            url = absolute(&url, &action);
            method = Method::POST;
            body = Some(
                fields
                    .iter()
                    .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
                    .collect::<Vec<_>>()
                    .join("&"),
            );
        }
        panic!("the login did not come back to the gateway in 20 steps");
    }

    /// Follows a callback URL with this browser's cookies.
    async fn finish(&mut self, callback: &str) -> Landing {
        let res = self.send(Method::GET, callback, None).await;
        Landing {
            status: res.status(),
            location: res
                .headers()
                .get(LOCATION)
                .map(|l| absolute(callback, l.to_str().unwrap())),
        }
    }

    async fn login(&mut self, provider: &str) -> Landing {
        let callback = self.follow_to_callback(provider).await;
        self.finish(&callback).await
    }

    async fn me(&self) -> (StatusCode, Value, Option<String>) {
        let res = self
            .http
            .get(format!("{}/v2/me", self.gateways[0]))
            .header(COOKIE, self.gateway_jar.header())
            .send()
            .await
            .unwrap();
        let status = res.status();
        let csrf = res
            .headers()
            .get("x-prismeai-csrf-token")
            .map(|v| v.to_str().unwrap().to_string());
        (status, res.json().await.unwrap_or(Value::Null), csrf)
    }

    async fn logout(&mut self, csrf: &str) -> StatusCode {
        let res = self
            .http
            .post(format!("{}/v2/logout", self.gateways[0]))
            .header(COOKIE, self.gateway_jar.header())
            .header("x-prismeai-csrf-token", csrf)
            .send()
            .await
            .unwrap();
        self.gateway_jar.store(&res);
        res.status()
    }
}

fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_login_round_trip_against_a_real_provider() {
    if let Some(why) = unavailable() {
        println!("skipped: the OpenID provider cannot run: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let mut config = refract::Config {
        data_dir: dir.path().to_path_buf(),
        disable_rate_limit: true,
        ..refract::Config::default()
    };
    let settings = AuthProvider {
        issuer: issuer.clone(),
        client_id: CLIENT_ID.into(),
        client_secret: Some(CLIENT_SECRET.into()),
        label: Some("Test IdP".into()),
        ..AuthProvider::default()
    };
    config.auth_providers.insert("testidp".into(), settings);
    let platform = Platform::start_with(config).await.unwrap();
    let provider = Provider::start(port, &format!("{}/v2/login/callback", platform.url));
    assert_eq!(provider.issuer, issuer);

    // The login page can list the providers.
    let (status, providers) = platform
        .client()
        .json(Method::GET, "/v2/login/providers", None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        providers,
        json!([{"name": "testidp", "type": "oidc", "label": "Test IdP"}])
    );

    // Unknown provider and foreign redirect are refused before anything is stored.
    let (status, body) = platform
        .client()
        .json(Method::GET, "/v2/login?provider=nope", None)
        .await
        .unwrap();
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("UnknownAuthProvider"))
    );
    let (status, body) = platform
        .client()
        .json(
            Method::GET,
            "/v2/login?provider=testidp&redirect=https://evil.example/x",
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("InvalidRedirect"))
    );

    // First login: the account is created from the ID token's claims.
    let mut browser = Browser::new(&[&platform.url]);
    let landing = browser.login("testidp").await;
    assert_eq!(landing.status, StatusCode::FOUND);
    assert_eq!(
        landing.location.as_deref(),
        Some(format!("{}/after", platform.url).as_str())
    );
    assert!(
        browser.gateway_jar.get("access-token").is_some(),
        "no session cookie"
    );
    let (status, me, csrf) = browser.me().await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["email"], "ada@oidc.test");
    assert_eq!(me["firstName"], "Ada");
    assert_eq!(me["lastName"], "Lovelace");
    assert_eq!(me["authData"]["testidp"]["id"], "ada");
    assert_eq!(me["authData"]["testidp"]["email_verified"], true);
    let first_id = me["id"].as_str().unwrap().to_string();
    let csrf = csrf.expect("a cookie session gets its CSRF token from /v2/me");

    // The session is a real one: it creates a workspace like a password session.
    let res = browser
        .http
        .post(format!("{}/v2/workspaces", platform.url))
        .header(COOKIE, browser.gateway_jar.header())
        .header("x-prismeai-csrf-token", &csrf)
        .json(&json!({"name": "From OIDC"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    // Logout revokes the session.
    assert_eq!(browser.logout(&csrf).await, StatusCode::OK);
    assert_eq!(browser.me().await.0, StatusCode::UNAUTHORIZED);

    // Second login (a new browser, the provider asks again): the same account.
    let mut again = Browser::new(&[&platform.url]);
    assert_eq!(again.login("testidp").await.status, StatusCode::FOUND);
    let (status, me, _) = again.me().await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        me["id"],
        first_id.as_str(),
        "the second login found the first account"
    );

    // A tampered state is refused and opens no session.
    let mut tamper = Browser::new(&[&platform.url]);
    let callback = tamper.follow_to_callback("testidp").await;
    let landing = tamper.finish(&callback.replace("state=", "state=x")).await;
    assert_eq!(landing.status, StatusCode::UNAUTHORIZED);
    assert!(tamper.gateway_jar.get("access-token").is_none());

    // The right callback from another browser (without the pre-auth cookie) is refused, back
    // to the redirect with invalid_state, and does not burn the login...
    let mut thief = Browser::new(&[&platform.url]);
    let landing = thief.finish(&callback).await;
    assert_eq!(landing.status, StatusCode::FOUND);
    let location = landing.location.unwrap();
    assert_eq!(
        query_param(&location, "error").as_deref(),
        Some("invalid_state"),
        "{location}"
    );
    assert!(thief.gateway_jar.get("access-token").is_none());
    // ...which the browser that started it finishes, once.
    let landing = tamper.finish(&callback).await;
    assert_eq!(landing.status, StatusCode::FOUND);
    assert!(query_param(landing.location.as_deref().unwrap(), "error").is_none());
    assert_eq!(tamper.me().await.0, StatusCode::OK);
    let replay = Browser::new(&[&platform.url]).finish(&callback).await;
    assert_eq!(
        replay.status,
        StatusCode::UNAUTHORIZED,
        "a used state is unknown"
    );

    drop(provider);
    platform.stop().await.unwrap();
}

/// A gateway on the shared store and cache (no backends needed for logins).
async fn gateway(
    store: Arc<MemoryStore>,
    cache: Arc<dyn Cache>,
    provider: refract_gateway::oidc::ProviderConfig,
    public_url: Option<String>,
) -> (String, tokio::task::JoinHandle<()>) {
    let broker = Arc::new(refract_broker::MemoryBroker::new(
        refract_broker::BrokerConfig::default(),
    ));
    let stub = axum::Router::new().fallback(|| async { axum::Json(json!({})) });
    let upstreams = refract_gateway::Upstreams {
        workspaces: refract_gateway::Upstream::InProcess(stub.clone()),
        runtime: refract_gateway::Upstream::InProcess(stub.clone()),
        events: refract_gateway::Upstream::InProcess(stub),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let config = refract_gateway::Config {
        oidc_providers: vec![provider],
        public_url: Some(public_url.unwrap_or_else(|| url.clone())),
        ..refract_gateway::Config::embedded()
    };
    let store: Arc<dyn DocumentStore> = store;
    let state =
        refract_gateway::GatewayState::new(config, store, cache, broker, upstreams).unwrap();
    let app = refract_gateway::router(state);
    let server = tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    (url, server)
}

/// A login started on one gateway instance finishes on another: the login in flight lives in
/// the shared cache (Redis when `REFRACT_TEST_REDIS_URL` is set, else one in-memory cache
/// shared by both instances).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oidc_login_started_on_one_gateway_finishes_on_another() {
    if let Some(why) = unavailable() {
        println!("skipped: the OpenID provider cannot run: {why}");
        return;
    }
    let namespace = format!("oidc-{}-{}", std::process::id(), free_port());
    let cache_url = std::env::var("REFRACT_TEST_REDIS_URL").unwrap_or_else(|_| "memory://".into());
    let cache = refract_storage::open_cache(&cache_url, &namespace)
        .await
        .unwrap();
    let store = Arc::new(MemoryStore::new());
    let port = free_port();
    let settings = refract_gateway::oidc::ProviderConfig {
        name: "testidp".into(),
        issuer: format!("http://127.0.0.1:{port}"),
        client_id: CLIENT_ID.into(),
        client_secret: Some(refract_gateway::secrets::Secret::new(CLIENT_SECRET)),
        scopes: vec!["openid".into(), "email".into(), "profile".into()],
        link_by_email: false,
        label: None,
    };
    let (a, server_a) = gateway(store.clone(), cache.clone(), settings.clone(), None).await;
    // Both instances are one site behind a balancer: the same public URL.
    let (b, server_b) = gateway(store.clone(), cache.clone(), settings, Some(a.clone())).await;
    let provider = Provider::start(port, &format!("{a}/v2/login/callback"));

    let mut browser = Browser::new(&[&a, &b]);
    // The provider sends the browser to A's callback; the balancer hands it to B.
    let callback = browser.follow_to_callback("testidp").await;
    let landing = browser.finish(&callback.replacen(&a, &b, 1)).await;
    assert_eq!(landing.status, StatusCode::FOUND);
    let location = landing.location.unwrap();
    assert!(query_param(&location, "error").is_none(), "{location}");
    assert_eq!(location, format!("{a}/after"));
    // The session opened by B works on A.
    let (status, me, _) = browser.me().await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["authData"]["testidp"]["id"], "ada");
    drop(provider);
    server_a.abort();
    server_b.abort();
}
