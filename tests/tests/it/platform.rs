//! End-to-end: the embedded platform (`refract serve` in process), driven only through the
//! gateway's HTTP API, with the SDK's example automations.

use refract_tests::platform::{Platform, example};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn echo_automation() -> Value {
    json!({"slug": "echo", "name": "Webhook echo", "when": {"endpoint": true}, "component": {}})
}

/// The README quickstart: sign up, create a workspace, deploy the webhook echo, call it, see
/// the `runtime.automations.executed` event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quickstart_path_works() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(dir.path()).await.unwrap();
    let health = platform
        .client()
        .json(Method::GET, "/sys/healthcheck", None)
        .await
        .unwrap();
    assert_eq!(health.0, StatusCode::OK);

    let ada = platform
        .client()
        .signed_up("ada@example.com")
        .await
        .unwrap();
    let ws = ada.workspace("Demo").await.unwrap();
    let uploaded = ada
        .deploy(&ws, echo_automation(), &example("webhook-echo").unwrap())
        .await
        .unwrap();
    assert_eq!(uploaded["component"]["status"], "ready", "{uploaded}");

    // Webhooks need no credentials.
    let res = platform
        .client()
        .request(
            Method::POST,
            &format!("/v2/workspaces/{ws}/webhooks/echo?x=1"),
        )
        .json(&json!({"hello": "world"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let correlation = res.headers()["x-correlation-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        res.headers()["x-refract-echo"].to_str().unwrap(),
        correlation,
        "the run saw the request's correlation id"
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["method"], "POST");
    assert_eq!(body["body"], json!({"hello": "world"}));
    assert_eq!(body["query"], json!([["x", "1"]]));

    let executed = ada
        .wait_for_event(&ws, "runtime.automations.executed", |e| {
            e["source"]["correlationId"] == correlation.as_str()
        })
        .await
        .unwrap();
    assert_eq!(executed["payload"]["slug"], "echo");
    assert_eq!(executed["payload"]["status"], "success", "{executed}");
    platform.stop().await.unwrap();
}

/// An event emitted through the API triggers an automation whose own event lands in history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_triggers_an_automation_that_emits() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(dir.path()).await.unwrap();
    let ada = platform
        .client()
        .signed_up("ada@example.com")
        .await
        .unwrap();
    let ws = ada.workspace("Orders").await.unwrap();
    let automation = json!({"slug": "on-order", "name": "On order", "when": {"events": ["orders.created"]}, "component": {}});
    ada.deploy(&ws, automation, &example("event-emitter").unwrap())
        .await
        .unwrap();

    let (status, emitted) = ada
        .json(
            Method::POST,
            &format!("/v2/workspaces/{ws}/events"),
            Some(json!({"events": [{"type": "orders.created", "payload": {"order": 42}}]})),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{emitted}");
    let source_id = emitted[0]["id"].as_str().unwrap().to_string();
    let processed = ada
        .wait_for_event(&ws, "orders.created.processed", |e| {
            e["payload"]["sourceEventId"] == source_id.as_str()
        })
        .await
        .unwrap();
    assert_eq!(processed["payload"]["original"]["order"], 42, "{processed}");
    assert_eq!(processed["source"]["automationSlug"], "on-order");
    assert_eq!(
        processed["source"]["correlationId"],
        emitted[0]["source"]["correlationId"]
    );
    platform.stop().await.unwrap();
}

/// One user cannot see or change another's workspace, even by forging the identity header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workspaces_are_private_and_identity_headers_cannot_be_forged() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(dir.path()).await.unwrap();
    let ada = platform
        .client()
        .signed_up("ada@example.com")
        .await
        .unwrap();
    let bob = platform
        .client()
        .signed_up("bob@example.com")
        .await
        .unwrap();
    let ws = ada.workspace("Secret").await.unwrap();
    let (_, me) = ada.json(Method::GET, "/v2/me", None).await.unwrap();
    let ada_id = me["id"].as_str().unwrap().to_string();

    let (status, body) = bob
        .json(Method::GET, &format!("/v2/workspaces/{ws}"), None)
        .await
        .unwrap();
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("ObjectNotFoundError"))
    );
    let forged = bob
        .request(Method::GET, &format!("/v2/workspaces/{ws}"))
        .header("x-prismeai-user-id", &ada_id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        forged.status(),
        StatusCode::NOT_FOUND,
        "a forged x-prismeai-user-id must be ignored"
    );
    let anonymous_forged = platform
        .client()
        .request(Method::GET, &format!("/v2/workspaces/{ws}"))
        .header("x-prismeai-user-id", &ada_id)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous_forged.status(), StatusCode::UNAUTHORIZED);
    let (status, list) = bob.json(Method::GET, "/v2/workspaces", None).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|w| w["id"] != ws.as_str()),
        "{list}"
    );
    let (status, _) = bob
        .json(
            Method::POST,
            &format!("/v2/workspaces/{ws}/automations"),
            Some(echo_automation()),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = ada
        .json(Method::GET, &format!("/v2/workspaces/{ws}"), None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    platform.stop().await.unwrap();
}

/// Bad input gets a 4xx JSON error and loses nothing: the automation still answers after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_json_errors_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(dir.path()).await.unwrap();
    let ada = platform
        .client()
        .signed_up("ada@example.com")
        .await
        .unwrap();
    let ws = ada.workspace("Robust").await.unwrap();
    ada.deploy(&ws, echo_automation(), &example("webhook-echo").unwrap())
        .await
        .unwrap();

    let expect = |status: StatusCode, body: &Value, want: StatusCode, code: &str| {
        assert_eq!(status, want, "{body}");
        assert_eq!(body["error"], code, "{body}");
        assert!(body["message"].is_string(), "{body}");
    };

    let res = ada
        .request(Method::POST, &format!("/v2/workspaces/{ws}/automations"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let status = res.status();
    expect(
        status,
        &res.json().await.unwrap(),
        StatusCode::BAD_REQUEST,
        "RequestValidationError",
    );

    let (status, body) = platform
        .client()
        .json(
            Method::POST,
            &format!("/v2/workspaces/{ws}/webhooks/nope"),
            Some(json!({})),
        )
        .await
        .unwrap();
    expect(status, &body, StatusCode::NOT_FOUND, "ObjectNotFoundError");

    // A body declared over the limit is refused from its headers. Sent over a raw socket with
    // only a prefix of the body: a client still writing megabytes when the server answers and
    // closes sees a broken pipe instead of the 413, which is a race, not a behaviour.
    let (status, body) = declared_oversized_post(
        &platform.url,
        &format!("/v2/workspaces/{ws}/webhooks/echo"),
        2 << 20,
    )
    .await;
    expect(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "PayloadTooLarge",
    );

    let automation = json!({"slug": "junk", "name": "Junk", "component": {}});
    let (status, _) = ada
        .json(
            Method::POST,
            &format!("/v2/workspaces/{ws}/automations"),
            Some(automation),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    let res = ada
        .request(
            Method::PUT,
            &format!("/v2/workspaces/{ws}/automations/junk/component"),
        )
        .header("content-type", "application/wasm")
        .body(b"definitely not wasm".to_vec())
        .send()
        .await
        .unwrap();
    let status = res.status();
    expect(
        status,
        &res.json().await.unwrap(),
        StatusCode::BAD_REQUEST,
        "InvalidComponent",
    );

    let cron = json!({"slug": "tick", "name": "Tick", "when": {"schedules": ["every now and then"]}, "component": {}});
    let (status, body) = ada
        .json(
            Method::POST,
            &format!("/v2/workspaces/{ws}/automations"),
            Some(cron),
        )
        .await
        .unwrap();
    expect(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "InvalidScheduleError",
    );

    let (status, body) = platform
        .client()
        .json(Method::GET, "/v2/no/such/route", None)
        .await
        .unwrap();
    expect(status, &body, StatusCode::NOT_FOUND, "ObjectNotFoundError");

    // Nothing was lost: the echo automation still answers.
    let (status, body) = platform
        .client()
        .json(
            Method::POST,
            &format!("/v2/workspaces/{ws}/webhooks/echo"),
            Some(json!({"still": "here"})),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["body"]["still"], "here");
    platform.stop().await.unwrap();
}

/// POSTs `path` declaring a `length`-byte body, sends its first 16 KiB, and reads the answer.
async fn declared_oversized_post(url: &str, path: &str, length: usize) -> (StatusCode, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = url.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: text/plain\r\ncontent-length: {length}\r\nconnection: close\r\n\r\n"
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(&[b'x'; 16 * 1024]).await.unwrap();
    let mut answer = Vec::new();
    socket.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8(answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let code = head.split(' ').nth(1).unwrap().parse::<u16>().unwrap();
    (
        StatusCode::from_u16(code).unwrap(),
        serde_json::from_str(body).unwrap(),
    )
}

/// Sessions, workspaces and automations survive a restart of `refract serve`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(dir.path()).await.unwrap();
    let ada = platform
        .client()
        .signed_up("ada@example.com")
        .await
        .unwrap();
    let ws = ada.workspace("Durable").await.unwrap();
    ada.deploy(&ws, echo_automation(), &example("webhook-echo").unwrap())
        .await
        .unwrap();
    let token = ada.token.clone();
    platform.stop().await.unwrap();

    let platform = Platform::start(dir.path()).await.unwrap();
    let ada = refract_tests::platform::Client {
        token,
        ..platform.client()
    };
    let (status, me) = ada.json(Method::GET, "/v2/me", None).await.unwrap();
    assert_eq!(
        status,
        StatusCode::OK,
        "the session outlived the restart: {me}"
    );
    assert_eq!(me["email"], "ada@example.com");
    let (status, body) = platform
        .client()
        .json(
            Method::POST,
            &format!("/v2/workspaces/{ws}/webhooks/echo"),
            Some(json!({"after": "restart"})),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["body"]["after"], "restart");
    platform.stop().await.unwrap();
}

/// Two platform instances on one Redis (broker and cache), one PostgreSQL and one file store:
/// a schedule fires once per tick across both runtimes, and a session opened on one gateway
/// works on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_fires_once_per_tick_across_two_instances() {
    let (Ok(redis), Ok(postgres)) = (
        std::env::var("REFRACT_TEST_REDIS_URL"),
        std::env::var("REFRACT_TEST_DATABASE_URL"),
    ) else {
        eprintln!(
            "skipped: REFRACT_TEST_REDIS_URL and REFRACT_TEST_DATABASE_URL are needed for two instances on shared backends"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let unique = uuid_like();
    let separator = if postgres.contains('?') { '&' } else { '?' };
    let config = refract::Config {
        data_dir: dir.path().to_path_buf(),
        broker_url: Some(redis.clone()),
        cache_url: Some(redis.clone()),
        database_url: Some(format!("{postgres}{separator}schema=e2e_{unique}")),
        files_url: Some(format!("file://{}", dir.path().join("files").display())),
        namespace: format!("e2e-{unique}"),
        disable_rate_limit: true,
        ..refract::Config::default()
    };
    let first = Platform::start_with(refract::Config {
        instance: Some("one".into()),
        ..config.clone()
    })
    .await
    .unwrap();
    let second = Platform::start_with(refract::Config {
        instance: Some("two".into()),
        ..config
    })
    .await
    .unwrap();

    let ada = first.client().signed_up("ada@example.com").await.unwrap();
    let ws = ada.workspace("Ticks").await.unwrap();
    let automation = json!({"slug": "tick", "name": "Tick", "when": {"schedules": ["* * * * * *"]}, "component": {}});
    ada.deploy(&ws, automation, &example("counter").unwrap())
        .await
        .unwrap();
    // A tick between creating the automation and uploading its component fails
    // (`ComponentNotReady`); the ticks after the upload are the ones checked.
    let deployed = chrono::Utc::now();

    // The session opened on the first gateway works on the second.
    let on_second = refract_tests::platform::Client {
        token: ada.token.clone(),
        ..second.client()
    };
    let (status, _) = on_second.json(Method::GET, "/v2/me", None).await.unwrap();
    assert_eq!(status, StatusCode::OK);

    // Wait for a few ticks, read every executed run of the schedule.
    let mut runs = Vec::new();
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let (status, body) = on_second
            .json(
                Method::GET,
                &format!("/v2/workspaces/{ws}/events?types=runtime.automations.executed&limit=500"),
                None,
            )
            .await
            .unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        runs = body["result"]["events"].as_array().unwrap().clone();
        runs.retain(|r| {
            r["payload"]["payload"]["payload"]["startedAt"]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .is_some_and(|t| t > deployed)
        });
        if runs.len() >= 4 {
            break;
        }
    }
    assert!(runs.len() >= 4, "the schedule fired: {runs:?}");
    let ticks: std::collections::HashSet<String> = runs
        .iter()
        .map(|r| {
            r["payload"]["payload"]["payload"]["startedAt"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(
        ticks.len(),
        runs.len(),
        "each tick ran once across both instances: {runs:?}"
    );
    assert!(
        runs.iter().all(|r| r["payload"]["status"] == "success"),
        "{runs:?}"
    );
    first.stop().await.unwrap();
    second.stop().await.unwrap();
}

fn uuid_like() -> String {
    format!(
        "{:x}{:x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

/// `refract serve` limits signups per address out of the box (1 per minute, spec §14.1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_are_on_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start_with(refract::Config {
        data_dir: dir.path().to_path_buf(),
        ..refract::Config::default()
    })
    .await
    .unwrap();
    platform
        .client()
        .signed_up("ada@example.com")
        .await
        .unwrap();
    let signup = json!({"email": "bob@example.com", "password": "correct horse battery", "firstName": "Bob"});
    let res = platform
        .client()
        .request(Method::POST, "/v2/signup")
        .json(&signup)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().contains_key("retry-after"));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "TooManyRequests", "{body}");
    platform.stop().await.unwrap();
}
