//! The test app and request helpers.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use refract_broker::{Broker, BrokerConfig, MemoryBroker, Subscriber, Subscription, TypeFilter};
use refract_core::Event;
use refract_core::model::{Membership, Role, permission_doc_id};
use refract_host::{EngineConfig, Host, HostConfig};
use refract_storage::{Collections, Expect, FileStore, MemoryStore, collections, open_file_store};
use refract_workspaces::{Config, FileArtifactStore, WorkspacesState, router};
use serde_json::{Value, json};
use tower::ServiceExt;

pub const ALICE: &str = "alice";
pub const BOB: &str = "bob";

pub struct App {
    pub router: Router,
    pub broker: Arc<MemoryBroker>,
    #[allow(dead_code)]
    pub files: FileStore,
    pub store: Arc<MemoryStore>,
    #[allow(dead_code)]
    pub state: WorkspacesState,
}

pub async fn app() -> anyhow::Result<App> {
    let broker = Arc::new(MemoryBroker::new(BrokerConfig::default()));
    let store = Arc::new(MemoryStore::new());
    let files = open_file_store("memory://").await?;
    let host_config = HostConfig {
        engine: EngineConfig {
            pooling: false,
            ..EngineConfig::default()
        },
        ..HostConfig::default()
    };
    let host = Arc::new(Host::new(
        host_config,
        Arc::new(FileArtifactStore::new(files.clone())),
    )?);
    let state = WorkspacesState::new(
        broker.clone(),
        store.clone(),
        files.clone(),
        host,
        Config::default(),
    );
    Ok(App {
        router: router(state.clone()),
        state,
        broker,
        files,
        store,
    })
}

/// A response: status, JSON body (null when not JSON), headers.
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    #[allow(dead_code)]
    pub headers: axum::http::HeaderMap,
}

impl App {
    /// Sends `req`; every answer is checked against the service's OpenAPI document
    /// ([`conforms`]).
    pub async fn send(&self, req: Request<Body>) -> anyhow::Result<Reply> {
        let method = req.method().as_str().to_owned();
        let path = req.uri().path().to_owned();
        let res = self.router.clone().oneshot(req).await?;
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await?.to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        conforms(&method, &path, status, &headers, &body)?;
        Ok(Reply {
            status,
            body,
            headers,
        })
    }

    /// A JSON request as `user` (through the gateway's trusted headers).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        user: Option<&str>,
        body: Option<Value>,
    ) -> anyhow::Result<Reply> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("x-correlation-id", "0123456789abcdef0123456789abcdef");
        if let Some(u) = user {
            req = req.header("x-prismeai-user-id", u);
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b.to_string()))?,
            None => req.body(Body::empty())?,
        };
        self.send(req).await
    }

    /// Creates a workspace as `user`; returns its id.
    pub async fn workspace(&self, user: &str, body: Value) -> anyhow::Result<String> {
        let r = self
            .call("POST", "/v2/workspaces", Some(user), Some(body))
            .await?;
        anyhow::ensure!(
            r.status == StatusCode::OK,
            "create workspace: {} {}",
            r.status,
            r.body
        );
        Ok(r.body["id"].as_str().unwrap_or_default().to_string())
    }

    /// Gives `user` `role` in `workspace` (sharing is not an endpoint of this service yet).
    pub async fn share(&self, workspace: &str, user: &str, role: Role) -> anyhow::Result<()> {
        let m = Membership {
            workspace_id: workspace.into(),
            user_id: user.into(),
            role: role.into(),
        };
        let id = permission_doc_id(workspace, user);
        self.store
            .put(
                &collections::PERMISSIONS,
                &id,
                &serde_json::to_value(m)?,
                Expect::Any,
            )
            .await?;
        Ok(())
    }

    /// Subscribes to every event published from now on.
    pub async fn events(&self) -> anyhow::Result<Box<dyn Subscriber>> {
        Ok(self
            .broker
            .subscribe(Subscription::fan_out(TypeFilter::all()))
            .await?)
    }
}

/// The service's OpenAPI document, finished as the platform serves it, as JSON.
fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = refract_workspaces::api().into_openapi();
        refract_http::openapi::finish(&mut doc);
        serde_json::to_value(&doc).unwrap_or(Value::Null)
    })
}

/// The path template of the document that `path` matches, if any.
fn template<'a>(paths: &'a serde_json::Map<String, Value>, path: &str) -> Option<&'a Value> {
    let segments: Vec<&str> = path.split('/').collect();
    paths.iter().find_map(|(t, item)| {
        let ts: Vec<&str> = t.split('/').collect();
        let matches = ts.len() == segments.len()
            && ts
                .iter()
                .zip(&segments)
                .all(|(t, s)| (t.starts_with('{') && !s.is_empty()) || t == s);
        matches.then_some(item)
    })
}

/// Checks an answer against the document: its status is documented for the operation and a
/// JSON answer matches the documented schema (formats included). Routes the document lacks
/// (the fallback's 404, a method's 405) are not checked.
fn conforms(
    method: &str,
    path: &str,
    status: StatusCode,
    headers: &axum::http::HeaderMap,
    body: &Value,
) -> anyhow::Result<()> {
    let doc = document();
    let Some(paths) = doc["paths"].as_object() else {
        anyhow::bail!("the document has no paths");
    };
    let Some(op) = template(paths, path).map(|item| &item[method.to_lowercase()]) else {
        return Ok(());
    };
    if op.is_null() {
        return Ok(());
    }
    let label = format!("{method} {path} → {status}");
    let response = &op["responses"][status.as_str()];
    anyhow::ensure!(!response.is_null(), "{label}: status not documented");
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_owned();
    let content = &response["content"];
    if content.as_object().is_none_or(|c| c.is_empty()) {
        return Ok(());
    }
    let Some(media) = content.get(&content_type) else {
        anyhow::bail!("{label}: content type {content_type:?} not documented ({content})");
    };
    if content_type != "application/json" {
        return Ok(());
    }
    let mut schema = media["schema"].clone();
    schema["components"] = doc["components"].clone();
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .map_err(|e| anyhow::anyhow!("{label}: schema does not compile: {e}"))?;
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    anyhow::ensure!(
        errors.is_empty(),
        "{label}: the answer does not match its schema: {errors:#?}\n{body:#}"
    );
    Ok(())
}

/// The next event, or an error after a second.
pub async fn next_event(sub: &mut Box<dyn Subscriber>) -> anyhow::Result<Event> {
    let delivery = tokio::time::timeout(Duration::from_secs(1), sub.next()).await??;
    Ok(Event::clone(&delivery.event))
}

pub fn component_body() -> Value {
    json!({ "name": "Echo", "slug": "echo", "component": {}, "when": { "endpoint": true } })
}
