//! Read rules: WebSocket delivery, history, search counts, long-poll, re-checks when access changes.
//!
//! The attacker is a member with a custom role whose rules let it read some event types only,
//! a restricted API key, and a foreign page using a victim's session cookie. Each reads exactly
//! what the workspace's rules give it, over every read path, and loses it when it is revoked.

use std::time::Duration;

use futures::StreamExt;
use refract_tests::platform::{Client, Platform};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// How long a test waits for one frame before failing.
const FRAME_WAIT: Duration = Duration::from_secs(20);

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// What the server sent next: a JSON frame, or the close code it closed with.
#[derive(Debug)]
enum Next {
    Frame(Value),
    Closed(Option<u16>),
}

async fn open(client: &Client, workspace: &str) -> Ws {
    let url = format!(
        "{}/v2/workspaces/{workspace}/events/ws",
        client.url.replacen("http", "ws", 1)
    );
    let mut req = url.into_client_request().expect("request");
    let token = client.token.as_deref().expect("a logged-in client");
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("upgrade");
    match next(&mut ws).await {
        Next::Frame(hello) if hello["type"] == "hello" => ws,
        other => panic!("expected hello, got {other:?}"),
    }
}

async fn next(ws: &mut Ws) -> Next {
    loop {
        let msg = tokio::time::timeout(FRAME_WAIT, ws.next())
            .await
            .expect("a frame in time");
        match msg {
            None | Some(Err(_)) => return Next::Closed(None),
            Some(Ok(Message::Text(t))) => {
                return Next::Frame(serde_json::from_str(t.as_str()).expect("JSON frame"));
            }
            Some(Ok(Message::Close(c))) => return Next::Closed(c.map(|c| u16::from(c.code))),
            Some(Ok(_)) => {}
        }
    }
}

/// The type of the next delivered event.
async fn next_event_type(ws: &mut Ws) -> String {
    loop {
        match next(ws).await {
            Next::Frame(f) if f["type"] == "event" => {
                return f["event"]["type"].as_str().expect("type").to_string();
            }
            Next::Frame(f) => assert_ne!(f["type"], "error", "{f}"),
            Next::Closed(code) => panic!("closed by the server: {code:?}"),
        }
    }
}

async fn emit(client: &Client, ws: &str, events: Value) -> Value {
    let (status, body) = client
        .json(
            Method::POST,
            &format!("/v2/workspaces/{ws}/events"),
            Some(json!({ "events": events })),
        )
        .await
        .expect("emit");
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// A workspace of `owner` where the custom role `support` reads `tickets.*` events only, and
/// `member` holds that role; returns the workspace and the member's id.
async fn support_desk(owner: &Client, member: &Client) -> (String, String) {
    let ws = owner.workspace("Desk").await.expect("workspace");
    let security = json!({"authorizations": {
        "roles": {"support": {"description": "reads tickets"}},
        "rules": [{"role": "support", "action": "read", "subject": "events", "conditions": {"type": {"$in": ["tickets.opened", "tickets.closed"]}}}]
    }});
    let (status, body) = owner
        .json(
            Method::PUT,
            &format!("/v2/workspaces/{ws}/security"),
            Some(security),
        )
        .await
        .expect("security");
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, me) = member.json(Method::GET, "/v2/me", None).await.expect("me");
    let member_id = me["id"].as_str().expect("id").to_string();
    let share = json!({"target": {"id": member_id}, "permissions": {"role": "support"}});
    let (status, body) = owner
        .json(
            Method::POST,
            &format!("/v2/workspaces/{ws}/permissions"),
            Some(share),
        )
        .await
        .expect("share");
    assert_eq!(status, StatusCode::OK, "{body}");
    (ws, member_id)
}

/// A custom role reads over the socket only the event types its rules allow — as over HTTP —
/// and once its share is revoked its open socket is closed (4003) instead of reading on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_role_socket_reads_only_its_rules_and_is_closed_when_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(dir.path()).await.unwrap();
    let ada = platform
        .client()
        .signed_up("ada@example.com")
        .await
        .unwrap();
    let sam = platform
        .client()
        .signed_up("sam@example.com")
        .await
        .unwrap();
    let (ws, sam_id) = support_desk(&ada, &sam).await;

    let mut socket = open(&sam, &ws).await;
    emit(
        &ada,
        &ws,
        json!([
            {"type": "payroll.paid", "payload": {"salary": 9000}},
            {"type": "tickets.opened", "payload": {"n": 1}},
            {"type": "payroll.paid", "payload": {"salary": 9500}},
            {"type": "tickets.closed", "payload": {"n": 1}}
        ]),
    )
    .await;
    // Delivery keeps the workspace's order: a payroll event would arrive first.
    assert_eq!(next_event_type(&mut socket).await, "tickets.opened");
    assert_eq!(next_event_type(&mut socket).await, "tickets.closed");

    let (status, body) = ada
        .json(
            Method::DELETE,
            &format!("/v2/workspaces/{ws}/permissions/{sam_id}"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    loop {
        match next(&mut socket).await {
            Next::Closed(code) => {
                assert_eq!(code, Some(4003), "closed for lost access");
                break;
            }
            Next::Frame(f) => assert_ne!(
                f["type"], "event",
                "nothing is delivered once access is revoked: {f}"
            ),
        }
    }
    let (status, _) = sam
        .json(Method::GET, &format!("/v2/workspaces/{ws}/events"), None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::NOT_FOUND);
    platform.stop().await.unwrap();
}

/// `size` counts only what the caller may read: a custom role or a restricted API key probing
/// a payload value of events hidden from it learns nothing (size 0), while the owner sees them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_counts_only_readable_events() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(dir.path()).await.unwrap();
    let ada = platform
        .client()
        .signed_up("ada@example.com")
        .await
        .unwrap();
    let sam = platform
        .client()
        .signed_up("sam@example.com")
        .await
        .unwrap();
    let (ws, _) = support_desk(&ada, &sam).await;
    let (status, body) = ada
        .json(
            Method::POST,
            &format!("/v2/workspaces/{ws}/security/apikeys"),
            Some(json!({"name": "tickets", "rules": [{"action": "read", "subject": "events", "conditions": {"type": "tickets.opened"}}]})),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let key = body["apiKey"].as_str().expect("apiKey").to_string();

    let published = emit(
        &ada,
        &ws,
        json!([
            {"type": "payroll.paid", "payload": {"iban": "FR7630001007941234567890185"}},
            {"type": "payroll.paid", "payload": {"iban": "FR7630001007941234567890185"}},
            {"type": "tickets.opened", "payload": {"iban": "none"}}
        ]),
    )
    .await;
    let last = published[2]["id"].as_str().unwrap().to_string();
    ada.wait_for_event(&ws, "tickets.opened", |e| e["id"] == last.as_str())
        .await
        .unwrap();

    let probe = |value: &str| json!({"where": {"field": "payload.iban", "op": "eq", "value": value}, "trackTotal": true});
    let path = format!("/v2/workspaces/{ws}/search");
    let (status, owner) = ada
        .json(
            Method::POST,
            &path,
            Some(probe("FR7630001007941234567890185")),
        )
        .await
        .unwrap();
    assert_eq!(
        (status, owner["size"].clone()),
        (StatusCode::OK, json!(2)),
        "{owner}"
    );

    let (status, by_role) = sam
        .json(
            Method::POST,
            &path,
            Some(probe("FR7630001007941234567890185")),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{by_role}");
    assert_eq!(
        (by_role["size"].clone(), by_role["documents"].clone()),
        (json!(0), json!([])),
        "{by_role}"
    );
    let (_, readable) = sam
        .json(Method::POST, &path, Some(probe("none")))
        .await
        .unwrap();
    assert_eq!(readable["size"], 1, "{readable}");

    let res = platform
        .client()
        .request(Method::POST, &path)
        .header("x-prismeai-api-key", &key)
        .json(&probe("FR7630001007941234567890185"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let by_key: Value = res.json().await.unwrap();
    assert_eq!(
        (by_key["size"].clone(), by_key["documents"].clone()),
        (json!(0), json!([])),
        "{by_key}"
    );
    platform.stop().await.unwrap();
}

/// A page on another site cannot open a socket with the victim's session cookie (403 before
/// the upgrade); the same cookie from the platform's own origin still can.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cookie_upgrade_from_a_foreign_origin_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(dir.path()).await.unwrap();
    let ada = platform
        .client()
        .signed_up("ada@example.com")
        .await
        .unwrap();
    let ws = ada.workspace("Mine").await.unwrap();
    let token = ada.token.clone().expect("token");
    let url = format!(
        "{}/v2/workspaces/{ws}/events/ws",
        platform.url.replacen("http", "ws", 1)
    );
    let upgrade = |origin: String| {
        let mut req = url.as_str().into_client_request().expect("request");
        req.headers_mut().insert(
            "cookie",
            format!("access-token={token}").parse().expect("cookie"),
        );
        req.headers_mut()
            .insert("origin", origin.parse().expect("origin"));
        tokio_tungstenite::connect_async(req)
    };

    match upgrade("https://evil.example".into()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
            assert_eq!(res.status(), StatusCode::FORBIDDEN)
        }
        Err(e) => panic!("expected 403, got {e}"),
        Ok(_) => panic!("a foreign origin opened a socket with the victim's cookie"),
    }
    let (mut own, _) = upgrade(platform.url.clone())
        .await
        .expect("the platform's own origin may upgrade");
    match next(&mut own).await {
        Next::Frame(hello) => assert_eq!(hello["type"], "hello"),
        Next::Closed(code) => panic!("closed: {code:?}"),
    }
    let _ = own.close(None).await;
    platform.stop().await.unwrap();
}

/// The runs view is the history read another way: a member whose role reads `tickets.*` only
/// sees no run (their records are `runtime.automations.executed`), and so cannot open one by
/// id; a stranger gets 404 for the workspace itself. The owner reads both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_read_like_their_records() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(dir.path()).await.unwrap();
    let ada = platform
        .client()
        .signed_up("ada@example.com")
        .await
        .unwrap();
    let sam = platform
        .client()
        .signed_up("sam@example.com")
        .await
        .unwrap();
    let eve = platform
        .client()
        .signed_up("eve@example.com")
        .await
        .unwrap();
    let (ws, _) = support_desk(&ada, &sam).await;
    let automation = json!({"slug": "payroll", "name": "Payroll", "when": {"endpoint": true},
        "do": [], "output": {"iban": "FR7630001007941234567890185"}});
    ada.create_automation(&ws, automation).await.unwrap();
    let res = ada
        .request(
            Method::POST,
            &format!("/v2/workspaces/{ws}/webhooks/payroll"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    ada.wait_for_event(&ws, "runtime.automations.executed", |_| true)
        .await
        .unwrap();
    let list = format!("/v2/workspaces/{ws}/runs");
    let (status, owner) = ada.json(Method::GET, &list, None).await.unwrap();
    assert_eq!(status, StatusCode::OK, "{owner}");
    let run_id = owner["result"]["runs"][0]["runId"]
        .as_str()
        .expect("a run")
        .to_string();
    let one = format!("/v2/workspaces/{ws}/runs/{run_id}");
    let (status, run) = ada.json(Method::GET, &one, None).await.unwrap();
    assert_eq!(status, StatusCode::OK, "{run}");
    assert_eq!(run["output"]["iban"], "FR7630001007941234567890185");

    let (status, member) = sam.json(Method::GET, &list, None).await.unwrap();
    assert_eq!(status, StatusCode::OK, "{member}");
    assert_eq!(member["result"]["runs"], json!([]), "{member}");
    let (status, body) = sam.json(Method::GET, &one, None).await.unwrap();
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    for path in [&list, &one] {
        let (status, body) = eve.json(Method::GET, path, None).await.unwrap();
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert!(!body.to_string().contains("FR76"), "{body}");
    }
    platform.stop().await.unwrap();
}
