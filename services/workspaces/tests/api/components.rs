use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::json;

use crate::common::{ALICE, App, BOB, app, component_body};

async fn setup() -> anyhow::Result<(App, String)> {
    let app = app().await?;
    let ws = app.workspace(ALICE, json!({"name": "Components"})).await?;
    let r = app
        .call(
            "POST",
            &format!("/v2/workspaces/{ws}/automations"),
            Some(ALICE),
            Some(component_body()),
        )
        .await?;
    anyhow::ensure!(r.status == StatusCode::OK, "{}", r.body);
    Ok((
        app,
        format!("/v2/workspaces/{ws}/automations/echo/component"),
    ))
}

fn put(path: &str, user: &str, content_type: &str, body: Vec<u8>) -> anyhow::Result<Request<Body>> {
    Ok(Request::put(path)
        .header("x-prismeai-user-id", user)
        .header("content-type", content_type)
        .body(Body::from(body))?)
}

#[tokio::test]
async fn garbage_core_modules_and_wrong_types_are_refused() -> anyhow::Result<()> {
    let (app, path) = setup().await?;
    let r = app
        .send(put(
            &path,
            ALICE,
            "application/wasm",
            b"definitely not wasm".to_vec(),
        )?)
        .await?;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["error"], "InvalidComponent");
    assert_eq!(r.body["details"]["reason"], "not-wasm");
    let r = app
        .send(put(
            &path,
            ALICE,
            "application/wasm",
            b"\0asm\x01\0\0\0".to_vec(),
        )?)
        .await?;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["details"]["reason"], "core-module");
    let r = app
        .send(put(
            &path,
            ALICE,
            "application/octet-stream",
            b"\0asm\x0d\0\x01\0".to_vec(),
        )?)
        .await?;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(r.body["error"], "UnsupportedMediaType");
    assert_eq!(r.body["details"]["expected"], "application/wasm");
    // Nothing changed: the component is still missing, and there is nothing to download.
    let r = app.call("GET", &path, Some(ALICE), None).await?;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.body["error"], "ObjectNotFoundError");
    let a = app
        .call(
            "GET",
            path.trim_end_matches("/component"),
            Some(ALICE),
            None,
        )
        .await?;
    assert_eq!(a.body["component"]["status"], "missing");
    Ok(())
}

#[tokio::test]
async fn uploads_check_access_kind_size_digest_and_gzip() -> anyhow::Result<()> {
    let (app, path) = setup().await?;
    let r = app
        .send(put(&path, BOB, "application/wasm", b"\0asm".to_vec())?)
        .await?;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let missing = path.replace("/echo/", "/nope/");
    assert_eq!(
        app.send(put(&missing, ALICE, "application/wasm", Vec::new())?)
            .await?
            .status,
        StatusCode::NOT_FOUND
    );

    let ws_path = path.trim_end_matches("/automations/echo/component");
    let r = app
        .call(
            "POST",
            &format!("{ws_path}/automations"),
            Some(ALICE),
            Some(json!({"name": "Flow", "slug": "flow", "do": []})),
        )
        .await?;
    assert_eq!(r.status, StatusCode::OK);
    let r = app
        .send(put(
            &path.replace("/echo/", "/flow/"),
            ALICE,
            "application/wasm",
            b"x".to_vec(),
        )?)
        .await?;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.body["error"], "AutomationKindConflict");

    let req = Request::put(&path)
        .header("x-prismeai-user-id", ALICE)
        .header("content-type", "application/wasm")
        .header("content-length", (65u64 << 20).to_string())
        .body(Body::empty())?;
    let r = app.send(req).await?;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.body["error"], "PayloadTooLarge");

    let req = Request::put(&path)
        .header("x-prismeai-user-id", ALICE)
        .header("content-type", "application/wasm")
        .header(
            "content-digest",
            "sha-256=:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:",
        )
        .body(Body::from(b"\0asm\x01\0\0\0".to_vec()))?;
    let r = app.send(req).await?;
    assert_eq!(r.body["details"]["reason"], "digest", "{}", r.body);

    // If-Match names the component being replaced; there is none yet.
    let req = Request::put(&path)
        .header("x-prismeai-user-id", ALICE)
        .header("content-type", "application/wasm")
        .header(
            "if-match",
            "\"sha256:0000000000000000000000000000000000000000000000000000000000000000\"",
        )
        .body(Body::from(b"\0asm\x0d\0\x01\0".to_vec()))?;
    let r = app.send(req).await?;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED, "{}", r.body);
    // validateOnly runs the same checks.
    let r = app
        .send(put(
            &format!("{path}?validateOnly=true"),
            ALICE,
            "application/wasm",
            b"nope".to_vec(),
        )?)
        .await?;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["details"]["reason"], "not-wasm");

    // A gzip body is decompressed before the checks.
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut enc, b"\0asm\x01\0\0\0")?;
    let req = Request::put(&path)
        .header("x-prismeai-user-id", ALICE)
        .header("content-type", "application/wasm")
        .header("content-encoding", "gzip")
        .body(Body::from(enc.finish()?))?;
    let r = app.send(req).await?;
    assert_eq!(r.body["details"]["reason"], "core-module", "{}", r.body);
    let req = Request::put(&path)
        .header("x-prismeai-user-id", ALICE)
        .header("content-type", "application/wasm")
        .header("content-encoding", "gzip")
        .body(Body::from(b"not gzip".to_vec()))?;
    assert_eq!(app.send(req).await?.status, StatusCode::BAD_REQUEST);
    Ok(())
}

/// Compiles cannot be stopped once started, so they run in capped slots: while a workspace's
/// compiles hold every one of its slots (a timed-out compile keeps its slot until it really
/// ends), its next upload is a 429 JSON answer at once, not one more compile piling up; other
/// workspaces still upload; a freed slot takes uploads again.
#[tokio::test]
async fn uploads_beyond_the_compile_slots_get_429() -> anyhow::Result<()> {
    let (app, path) = setup().await?;
    let ws = path.split('/').nth(3).unwrap_or_default().to_owned();
    let ws_id = refract_core::WorkspaceId::new(ws.clone())?;
    let busy: Vec<_> = (0..refract_workspaces::config::DEFAULT_MAX_WORKSPACE_COMPILES)
        .map(|_| app.state.compile_slots().try_acquire(&ws_id))
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // A component preamble followed by garbage: it would reach the compiler.
    let upload = || {
        put(
            &path,
            ALICE,
            "application/wasm",
            b"\0asm\x0d\0\x01\0garbage".to_vec(),
        )
    };
    let r = app.send(upload()?).await?;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    assert_eq!(r.body["error"], "TooManyRequests");
    let validate_only = put(
        &format!("{path}?validateOnly=true"),
        ALICE,
        "application/wasm",
        b"\0asm\x0d\0\x01\0garbage".to_vec(),
    )?;
    assert_eq!(
        app.send(validate_only).await?.status,
        StatusCode::TOO_MANY_REQUESTS
    );

    // Another workspace is not held back by this one's compiles.
    let other = app.workspace(BOB, json!({"name": "Other"})).await?;
    let r = app
        .call(
            "POST",
            &format!("/v2/workspaces/{other}/automations"),
            Some(BOB),
            Some(component_body()),
        )
        .await?;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = app
        .send(put(
            &format!("/v2/workspaces/{other}/automations/echo/component"),
            BOB,
            "application/wasm",
            b"\0asm\x0d\0\x01\0garbage".to_vec(),
        )?)
        .await?;
    assert_ne!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);

    drop(busy);
    let r = app.send(upload()?).await?;
    assert_ne!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    assert_eq!(
        r.status.as_u16() / 100,
        4,
        "garbage is refused by the compiler: {}",
        r.body
    );
    Ok(())
}
