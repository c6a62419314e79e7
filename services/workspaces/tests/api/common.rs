//! The test app and request helpers.

use std::sync::Arc;
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
    pub async fn send(&self, req: Request<Body>) -> anyhow::Result<Reply> {
        let res = self.router.clone().oneshot(req).await?;
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await?.to_bytes();
        Ok(Reply {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
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

/// The next event, or an error after a second.
pub async fn next_event(sub: &mut Box<dyn Subscriber>) -> anyhow::Result<Event> {
    let delivery = tokio::time::timeout(Duration::from_secs(1), sub.next()).await??;
    Ok(Event::clone(&delivery.event))
}

pub fn component_body() -> Value {
    json!({ "name": "Echo", "slug": "echo", "component": {}, "when": { "endpoint": true } })
}
