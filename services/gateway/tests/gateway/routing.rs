//! Dispatch to in-process backends: which service answers a path, auth rules, body caps, identity headers, correlation ids, CORS preflights on webhooks, WebSocket upgrades.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Result, ensure};
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use refract_gateway::{Upstream, Upstreams};
use serde_json::json;
use tower::ServiceExt;

use crate::support::*;

#[tokio::test]
async fn oversized_bodies_get_413_on_own_and_proxied_routes() -> Result<()> {
    let gw = Gw::new()?;
    let big = "x".repeat(1024 * 1024 + 10);
    let r = gw
        .send(post_json(
            "/v2/signup",
            json!({"email": "a@x.org", "password": "correct horse", "firstName": big}),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.body);
    assert_eq!(r.body["error"], "PayloadTooLarge");

    // Declared too large: refused before the backend is called.
    let len = (1024 * 1024 + 1).to_string();
    let r = gw
        .send(request(
            "POST",
            "/v2/workspaces/w1/webhooks/echo",
            &[("content-length", &len)],
            Body::from(vec![0u8; 1024 * 1024 + 1]),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.body["error"], "PayloadTooLarge");
    assert_eq!(r.body["details"]["limit"], 1024 * 1024);

    // Streamed without a length: cut while streaming.
    let chunks =
        futures::stream::iter((0..20).map(|_| Ok::<_, std::io::Error>(vec![1u8; 64 * 1024])));
    let r = gw
        .send(request(
            "POST",
            "/v2/workspaces/w1/webhooks/echo",
            &[],
            Body::from_stream(chunks),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);

    // Under the cap, the backend gets it all.
    let r = gw
        .send(request(
            "POST",
            "/v2/workspaces/w1/webhooks/echo",
            &[],
            Body::from(vec![1u8; 1000]),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["bodyLen"], 1000);
    Ok(())
}

#[tokio::test]
async fn backends_see_the_real_user_never_a_spoofed_one() -> Result<()> {
    let gw = Gw::new()?;
    // A workspace API key that exists: it passes through; its rules are the backend's business.
    let record = serde_json::json!({
        "id": "k1", "workspaceId": "w1", "name": "ci", "hash": refract_storage::api_key_hash("rfk_key"),
        "keyHint": "_key", "rules": [], "createdAt": "2026-01-01T00:00:00Z", "createdBy": "ann"
    });
    gw.store
        .put(
            &refract_storage::collections::API_KEYS,
            "k1",
            &record,
            refract_storage::Expect::Absent,
        )
        .await?;
    let login = gw.login("ann@example.org").await?;
    let token = login.token();
    let spoof = [
        ("x-prismeai-user-id", "admin"),
        ("x-prismeai-session-id", "stolen"),
        ("x-prismeai-role", "superadmin"),
        ("x-refract-gateway-key", "guess"),
        ("x-correlation-id", "client-chosen-id-1234"),
        ("x-forwarded-for", "10.0.0.1"),
        ("x-prismeai-api-key", "rfk_key"),
        ("cookie", "theme=dark"),
        ("x-refract-component-language", "rust"),
    ];
    let mut headers = spoof.to_vec();
    let auth = bearer(&token);
    headers.push(("authorization", &auth));
    let r = gw
        .send(request(
            "GET",
            "/v2/workspaces/w1/automations?limit=5",
            &headers,
            Body::empty(),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let seen = &r.body["headers"];
    assert_eq!(r.body["service"], "workspaces");
    assert_eq!(r.body["path"], "/v2/workspaces/w1/automations");
    assert_eq!(r.body["query"], "limit=5");
    assert_eq!(seen["x-prismeai-user-id"], login.body["id"]);
    assert_eq!(seen["x-prismeai-session-id"], login.body["sessionId"]);
    assert!(seen.get("x-prismeai-role").is_none() && seen.get("x-refract-gateway-key").is_none());
    assert!(
        seen.get("authorization").is_none(),
        "credentials stay at the gateway"
    );
    assert_eq!(seen["x-correlation-id"], r.header("x-correlation-id"));
    assert_eq!(seen["x-forwarded-for"], "203.0.113.7");
    assert_eq!(
        seen["x-prismeai-api-key"], "rfk_key",
        "the API key passes through"
    );
    assert_eq!(seen["cookie"], "theme=dark");
    assert_eq!(
        seen["x-refract-component-language"], "rust",
        "an upload hint, not an identity"
    );
    assert!(
        seen["x-prismeai-auth-data"]
            .as_str()
            .is_some_and(|a| a.contains("prismeai")),
        "the user's identities travel for role bindings"
    );
    assert_eq!(
        r.header("x-prismeai-session-id"),
        login.body["sessionId"].as_str().unwrap_or("-")
    );

    // Anonymous webhook call with a spoofed identity and a cookie session: no identity header
    // but the real one, and no session cookie reach the runtime.
    let r = gw
        .send(request(
            "POST",
            "/v2/workspaces/w1/webhooks/echo",
            &spoof,
            Body::from("{}"),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["service"], "runtime");
    assert!(
        r.body["headers"].get("x-prismeai-user-id").is_none(),
        "{}",
        r.body
    );
    assert!(r.body["headers"].get("x-prismeai-session-id").is_none());
    let cookie = format!("access-token={token}; theme=dark");
    let r = gw
        .send(request(
            "GET",
            "/v2/workspaces/w1/webhooks/echo",
            &[
                ("cookie", &cookie),
                ("x-prismeai-user-id", "admin"),
                ("sec-fetch-site", "same-origin"),
            ],
            Body::empty(),
        ))
        .await?;
    assert_eq!(r.body["headers"]["x-prismeai-user-id"], login.body["id"]);
    assert_eq!(r.body["headers"]["cookie"], "theme=dark");
    // The same GET from another site (a link, an image) runs anonymously.
    let r = gw
        .send(request(
            "GET",
            "/v2/workspaces/w1/webhooks/echo",
            &[("cookie", &cookie), ("sec-fetch-site", "cross-site")],
            Body::empty(),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body["headers"].get("x-prismeai-user-id").is_none());
    // A cookie write without the CSRF token goes on anonymously on a public webhook.
    let r = gw
        .send(request(
            "POST",
            "/v2/workspaces/w1/webhooks/echo",
            &[("cookie", &cookie)],
            Body::from("{}"),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.body["headers"].get("x-prismeai-user-id").is_none(),
        "{}",
        r.body
    );
    Ok(())
}

#[tokio::test]
async fn routes_reach_their_services_and_need_a_user_except_webhooks() -> Result<()> {
    let gw = Gw::new()?;
    for path in [
        "/v2/workspaces",
        "/v2/workspaces/w1/events",
        "/v2/workspaces/w1/search",
        "/v2/workspaces/w1/test/a",
    ] {
        let r = gw
            .send(request(
                "GET",
                path,
                &[("x-prismeai-user-id", "admin")],
                Body::empty(),
            ))
            .await?;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(r.body["error"], "AuthenticationError");
    }
    let bad = gw
        .send(request(
            "GET",
            "/v2/workspaces",
            &[("authorization", "Bearer nope")],
            Body::empty(),
        ))
        .await?;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    let auth = bearer(&gw.login("ann@example.org").await?.token());
    for (path, service) in [
        ("/v2/workspaces", "workspaces"),
        ("/v2/workspaces/w1/events", "events"),
        ("/v2/workspaces/w1/search", "events"),
        ("/v2/workspaces/w1/test/a", "runtime"),
        ("/v2/workspaces/w1/webhooks/a", "runtime"),
        ("/v2/workspaces/w1/automations/a/component", "workspaces"),
    ] {
        let r = gw
            .send(request(
                "GET",
                path,
                &[("authorization", &auth)],
                Body::empty(),
            ))
            .await?;
        assert_eq!(r.body["service"], service, "{path}");
    }
    Ok(())
}

#[tokio::test]
async fn every_response_has_a_fresh_correlation_id() -> Result<()> {
    let gw = Gw::new()?;
    let mut seen = std::collections::HashSet::new();
    for req in [
        request(
            "GET",
            "/v2/nothing",
            &[("x-correlation-id", "0123456789abcdef0123456789abcdef")],
            Body::empty(),
        ),
        request("GET", "/v2/me", &[], Body::empty()),
        request("GET", "/sys/healthcheck", &[], Body::empty()),
        request(
            "POST",
            "/v2/login",
            &[("content-type", "application/json")],
            Body::from("nope"),
        ),
        request("GET", "/v2/workspaces/w1/webhooks/x", &[], Body::empty()),
    ] {
        let r = gw.send(req).await?; // `send` checks the header's shape
        assert!(seen.insert(r.header("x-correlation-id").to_string()));
    }
    assert!(
        !seen.contains("0123456789abcdef0123456789abcdef"),
        "client ids are replaced"
    );
    Ok(())
}

#[tokio::test]
async fn webhooks_answer_cors_preflights_from_any_origin() -> Result<()> {
    let gw = Gw::new()?;
    let preflight = [
        ("origin", "https://shop.example"),
        ("access-control-request-method", "POST"),
        ("access-control-request-headers", "content-type"),
    ];
    let res = gw
        .app
        .clone()
        .oneshot(request(
            "OPTIONS",
            "/v2/workspaces/w1/webhooks/echo",
            &preflight,
            Body::empty(),
        ))
        .await?;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(res.headers()["access-control-allow-origin"], "*");
    assert_eq!(
        res.headers()["access-control-allow-headers"],
        "content-type"
    );
    assert!(
        res.headers()
            .get("access-control-allow-credentials")
            .is_none()
    );
    let r = gw
        .send(request(
            "POST",
            "/v2/workspaces/w1/webhooks/echo",
            &[("origin", "https://shop.example")],
            Body::from("{}"),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("access-control-allow-origin"), "*");
    assert_eq!(r.body["service"], "runtime");
    // Private routes get no CORS grant.
    let res = gw
        .app
        .clone()
        .oneshot(request(
            "OPTIONS",
            "/v2/workspaces/w1",
            &preflight,
            Body::empty(),
        ))
        .await?;
    assert!(res.headers().get("access-control-allow-origin").is_none());
    Ok(())
}

#[tokio::test]
async fn websocket_upgrades_reach_an_in_process_backend() -> Result<()> {
    use axum::extract::ws::WebSocketUpgrade;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let events = Router::new().fallback(|ws: WebSocketUpgrade, headers: HeaderMap| async move {
        let user = headers.get("x-prismeai-user-id").is_some();
        ws.on_upgrade(move |mut socket| async move {
            let text = if user { "hello user" } else { "hello nobody" };
            let _ = socket
                .send(axum::extract::ws::Message::Text(text.into()))
                .await;
        })
    });
    let upstreams = Upstreams {
        events: Upstream::InProcess(events),
        ..in_process()
    };
    let gw = Gw::to(upstreams)?;
    let token = gw.login("ann@example.org").await?.token();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = gw.app.clone();
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    let mut tcp = tokio::net::TcpStream::connect(addr).await?;
    let handshake = format!(
        "GET /v2/workspaces/w1/events/ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    tcp.write_all(handshake.as_bytes()).await?;
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !String::from_utf8_lossy(&seen).contains("hello") {
        let n = tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await??;
        ensure!(n > 0, "closed early: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&seen);
    assert!(text.starts_with("HTTP/1.1 101"), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("x-correlation-id:"),
        "{text}"
    );
    assert!(text.contains("hello user"), "{text}");
    server.abort();
    Ok(())
}
