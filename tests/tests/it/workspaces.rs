//! The workspaces service with real guest components: uploads compile through the host, the
//! `.wasm` lands in file storage by content hash, the artifact under the host's key where a
//! second host (another instance, or the runtime) loads it without compiling.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use refract_broker::{Broker, BrokerConfig, MemoryBroker, Subscriber, Subscription, TypeFilter};
use refract_host::{ComponentDigest, EngineConfig, Host, HostConfig};
use refract_storage::{FileStore, MemoryStore, open_file_store};
use refract_tests::fixtures::fixture;
use refract_workspaces::{Config, FileArtifactStore, WorkspacesState, router};
use serde_json::{Value, json};
use tower::ServiceExt;

const USER: &str = "uploader";

fn host(files: &FileStore) -> anyhow::Result<Arc<Host>> {
    let config = HostConfig {
        engine: EngineConfig {
            pooling: false,
            ..EngineConfig::default()
        },
        ..HostConfig::default()
    };
    Ok(Arc::new(Host::new(
        config,
        Arc::new(FileArtifactStore::new(files.clone())),
    )?))
}

async fn send(
    app: &axum::Router,
    req: Request<Body>,
) -> anyhow::Result<(StatusCode, Value, axum::http::HeaderMap)> {
    let res = app.clone().oneshot(req).await?;
    let (status, headers) = (res.status(), res.headers().clone());
    let bytes = res.into_body().collect().await?.to_bytes();
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        headers,
    ))
}

fn json_req(method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Request<Body>> {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("x-prismeai-user-id", USER);
    Ok(match body {
        Some(b) => req
            .header("content-type", "application/json")
            .body(Body::from(b.to_string()))?,
        None => req.body(Body::empty())?,
    })
}

fn wasm_req(path: &str, bytes: Vec<u8>) -> anyhow::Result<Request<Body>> {
    Ok(Request::put(path)
        .header("x-prismeai-user-id", USER)
        .header("content-type", "application/wasm")
        .body(Body::from(bytes))?)
}

async fn next_event(sub: &mut Box<dyn Subscriber>) -> anyhow::Result<refract_core::Event> {
    let d = tokio::time::timeout(Duration::from_secs(2), sub.next()).await??;
    Ok(refract_core::Event::clone(&d.event))
}

#[tokio::test]
async fn a_real_component_uploads_compiles_and_is_stored_for_the_runtime() -> anyhow::Result<()> {
    let trivial = fixture("trivial")?;
    let files = open_file_store("memory://").await?;
    let broker = Arc::new(MemoryBroker::new(BrokerConfig::default()));
    let state = WorkspacesState::new(
        broker.clone(),
        Arc::new(MemoryStore::new()),
        files.clone(),
        host(&files)?,
        Config::default(),
    );
    let app = router(state);

    let (status, ws, _) = send(
        &app,
        json_req("POST", "/v2/workspaces", Some(json!({"name": "Uploads"})))?,
    )
    .await?;
    assert_eq!(status, StatusCode::OK, "{ws}");
    let ws = ws["id"].as_str().unwrap_or_default().to_string();
    let body = json!({"name": "Echo", "slug": "echo", "component": {}, "when": {"endpoint": true}});
    let (status, _, _) = send(
        &app,
        json_req(
            "POST",
            &format!("/v2/workspaces/{ws}/automations"),
            Some(body),
        )?,
    )
    .await?;
    assert_eq!(status, StatusCode::OK);
    let path = format!("/v2/workspaces/{ws}/automations/echo/component");
    let mut events = broker
        .subscribe(Subscription::fan_out(TypeFilter::all()))
        .await?;

    // validateOnly: checked, nothing stored.
    let (status, out, _) = send(
        &app,
        wasm_req(&format!("{path}?validateOnly=true"), trivial.clone())?,
    )
    .await?;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out["component"]["status"], "missing");
    assert!(
        files.list("").await?.is_empty(),
        "validateOnly stored something"
    );

    let (status, out, _) = send(&app, wasm_req(&path, trivial.clone())?).await?;
    assert_eq!(status, StatusCode::OK, "{out}");
    let digest = ComponentDigest::of(&trivial);
    assert_eq!(out["unchanged"], false);
    assert_eq!(out["component"]["status"], "ready");
    assert_eq!(out["component"]["digest"], digest.to_string());
    assert_eq!(out["component"]["size"], trivial.len());
    assert_eq!(
        out["component"]["world"],
        "refract:automation/automation@0.1.6"
    );
    assert_eq!(out["component"]["language"], "rust", "{out}");
    assert!(
        out["component"]["compiledWith"]
            .as_str()
            .is_some_and(|c| c.starts_with("wasmtime-48-"))
    );

    // The .wasm by content hash, the artifact under the host's key.
    let blob = files.get_blob(&digest.to_string().parse()?).await?;
    assert_eq!(blob.as_deref(), Some(&trivial[..]));
    let artifacts = files.list("artifacts").await?;
    assert_eq!(artifacts.len(), 1, "{artifacts:?}");
    assert!(
        artifacts[0].starts_with(&format!("artifacts/{}.wasmtime-48-", digest.hex())),
        "{artifacts:?}"
    );

    let updated = next_event(&mut events).await?;
    assert_eq!(
        updated.event_type.as_str(),
        "workspaces.automations.updated"
    );
    assert_eq!(
        updated.payload["automation"]["component"]["digest"],
        digest.to_string()
    );
    let uploaded = next_event(&mut events).await?;
    assert_eq!(
        uploaded.event_type.as_str(),
        "workspaces.components.uploaded"
    );
    assert_eq!(uploaded.payload["automationSlug"], "echo");
    assert_eq!(uploaded.payload["digest"], digest.to_string());
    assert_eq!(uploaded.payload["size"], trivial.len());
    assert!(uploaded.payload.get("previousDigest").is_none());

    // GET carries the digest as ETag; the same bytes again are unchanged and emit nothing.
    let (_, _, headers) = send(
        &app,
        json_req(
            "GET",
            &format!("/v2/workspaces/{ws}/automations/echo"),
            None,
        )?,
    )
    .await?;
    assert_eq!(
        headers.get("etag").and_then(|v| v.to_str().ok()),
        Some(format!("\"{digest}\"").as_str())
    );
    let (status, out, _) = send(&app, wasm_req(&path, trivial.clone())?).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(out["unchanged"], true);
    assert!(
        tokio::time::timeout(Duration::from_millis(200), events.next())
            .await
            .is_err(),
        "unchanged upload emitted"
    );

    // The stored bytes download as they were uploaded.
    let res = app.clone().oneshot(json_req("GET", &path, None)?).await?;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/wasm")
    );
    let downloaded = res.into_body().collect().await?.to_bytes();
    assert_eq!(&downloaded[..], &trivial[..]);

    // Another instance over the same file storage loads the artifact without compiling.
    let other = host(&files)?;
    other.warm(&digest).await?;
    assert_eq!(other.cached_instances(), 1);
    Ok(())
}

#[tokio::test]
async fn components_outside_our_world_are_422s() -> anyhow::Result<()> {
    let files = open_file_store("memory://").await?;
    let broker = Arc::new(MemoryBroker::new(BrokerConfig::default()));
    let state = WorkspacesState::new(
        broker,
        Arc::new(MemoryStore::new()),
        files.clone(),
        host(&files)?,
        Config::default(),
    );
    let app = router(state);
    let (_, ws, _) = send(
        &app,
        json_req(
            "POST",
            "/v2/workspaces",
            Some(json!({"name": "World checks"})),
        )?,
    )
    .await?;
    let ws = ws["id"].as_str().unwrap_or_default().to_string();
    let body = json!({"name": "Bad", "slug": "bad", "component": {}});
    send(
        &app,
        json_req(
            "POST",
            &format!("/v2/workspaces/{ws}/automations"),
            Some(body),
        )?,
    )
    .await?;
    let path = format!("/v2/workspaces/{ws}/automations/bad/component");

    let (status, out, _) = send(&app, wasm_req(&path, fixture("bad-import")?)?).await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{out}");
    assert_eq!(out["error"], "ComponentWorldMismatch");
    assert_eq!(
        out["details"]["forbiddenImports"],
        json!(["evil:probe/raw"])
    );
    let (status, out, _) = send(&app, wasm_req(&path, fixture("no-run")?)?).await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{out}");
    assert_eq!(out["details"]["missingExports"], json!(["run"]));
    let mut truncated = fixture("trivial")?;
    truncated.truncate(truncated.len() / 2);
    let (status, out, _) = send(&app, wasm_req(&path, truncated)?).await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{out}");
    assert_eq!(out["error"], "ComponentCompileError");
    assert!(
        files.list("").await?.is_empty(),
        "a refused upload stored something"
    );
    Ok(())
}
