//! Response mapping without real components.

use axum::body::to_bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;
use refract_host::{
    AutomationError, HttpResponse, Output, RunOutcome, RunReport, TrapReason, Trapped,
};
use serde_json::Value;

use super::answer::{respond, webhook_output};
use super::webhook::guest_headers;
use crate::error::RuntimeError;

fn report(outcome: RunOutcome) -> RunReport {
    RunReport {
        outcome,
        emits: 0,
        fetches: 0,
        elapsed: std::time::Duration::ZERO,
        logs: Vec::new(),
        logs_dropped: 0,
        timings: Default::default(),
    }
}

fn out(body: &str, http: Option<HttpResponse>) -> RunOutcome {
    RunOutcome::Ok(Output {
        body: body.into(),
        http,
    })
}

async fn parts(response: Response) -> (StatusCode, HeaderMap, String) {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (status, headers, String::from_utf8(bytes.to_vec()).unwrap())
}

#[tokio::test]
async fn outputs_become_responses() {
    let http = HttpResponse {
        status: 201,
        headers: vec![
            ("X-Echo".into(), "1".into()),
            ("content-length".into(), "999".into()),
            ("set-cookie".into(), "access-token=stolen".into()),
            ("bad name".into(), "x".into()),
        ],
    };
    let (status, headers, body) = parts(respond(
        Ok(report(out(r#"{"a":1}"#, Some(http)))),
        "echo",
        webhook_output,
    ))
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(headers["x-echo"], "1");
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    assert!(headers.get("set-cookie").is_none());
    assert_eq!(body, r#"{"a":1}"#);

    let (status, headers, body) = parts(respond(
        Ok(report(out(r#""hello""#, None))),
        "echo",
        webhook_output,
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/plain; charset=utf-8");
    assert_eq!(body, "hello");

    let (_, headers, body) =
        parts(respond(Ok(report(out("", None))), "echo", webhook_output)).await;
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(body, "{}");

    let (_, _, body) = parts(respond(
        Ok(report(out("null", None))),
        "echo",
        webhook_output,
    ))
    .await;
    assert_eq!(body, "null");

    let custom = HttpResponse {
        status: 200,
        headers: vec![("Content-Type".into(), "text/html".into())],
    };
    let (_, headers, body) = parts(respond(
        Ok(report(out(r#""<p>hi</p>""#, Some(custom)))),
        "echo",
        webhook_output,
    ))
    .await;
    assert_eq!(headers[header::CONTENT_TYPE], "text/html");
    assert_eq!(body, "<p>hi</p>");
}

#[tokio::test]
async fn platform_cookies_and_security_headers_cannot_be_set() {
    let http = HttpResponse {
        status: 200,
        headers: vec![
            ("set-cookie".into(), "access-token =X".into()),
            ("Set-Cookie".into(), "ACCESS-TOKEN=x".into()),
            ("set-cookie".into(), " access-token=x; Path=/".into()),
            ("set-cookie".into(), "refract-oidc=x".into()),
            ("set-cookie".into(), "theme=dark; Path=/".into()),
            (
                "Content-Security-Policy".into(),
                "sandbox allow-scripts allow-same-origin".into(),
            ),
            ("clear-site-data".into(), "\"cookies\"".into()),
            ("access-control-allow-credentials".into(), "true".into()),
        ],
    };
    let (_, headers, _) = parts(respond(
        Ok(report(out("{}", Some(http)))),
        "echo",
        webhook_output,
    ))
    .await;
    let cookies: Vec<_> = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(cookies, ["theme=dark; Path=/"]);
    for refused in [
        "content-security-policy",
        "clear-site-data",
        "access-control-allow-credentials",
    ] {
        assert!(headers.get(refused).is_none(), "{refused}");
    }
}

#[tokio::test]
async fn failures_become_api_errors() {
    let failed = RunOutcome::Failed(AutomationError {
        code: "Nope".into(),
        message: "no".into(),
        details: Some(r#"{"k":1}"#.into()),
    });
    let (status, _, body) = parts(respond(Ok(report(failed)), "echo", webhook_output)).await;
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "AutomationError");
    assert_eq!(body["details"]["error"], "Nope");
    assert_eq!(body["details"]["automationSlug"], "echo");
    assert_eq!(body["details"]["details"]["k"], 1);

    let trapped = RunOutcome::Trapped(Trapped {
        reason: TrapReason::Memory,
        message: "too big".into(),
    });
    let (status, _, body) = parts(respond(Ok(report(trapped)), "echo", webhook_output)).await;
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["error"], "ComponentTrap");
    assert_eq!(body["details"]["reason"], "memory");

    let not_ready = RuntimeError::NotReady {
        slug: "echo".into(),
        reason: "no component uploaded".into(),
    };
    let (status, _, body) = parts(respond(Err(not_ready), "echo", webhook_output)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body.contains("ComponentNotReady"));
}

#[test]
fn guests_never_see_credentials_or_internal_headers() {
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("authorization", "Bearer x"),
        ("cookie", "access-token=y"),
        ("host", "example.org"),
        ("x-prismeai-user-id", "u1"),
        ("x-prismeai-workspace-id", "ws1"),
        ("content-type", "application/json"),
    ] {
        h.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
    }
    let seen: Vec<String> = guest_headers(&h).into_iter().map(|(k, _)| k).collect();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen.contains(&"content-type".to_string()));
    assert!(seen.contains(&"x-prismeai-workspace-id".to_string()));
}

/// A DSL automation in the index runs as it is; only a component waits for its upload. (A
/// DSL automation counted as not ready made every webhook request re-read it from the store
/// and recompile its program: a third of the YAML webhook path's CPU.)
#[test]
fn dsl_automations_are_ready_components_once_uploaded() {
    use refract_core::model::{Automation, ComponentStatus};
    let automation = |kind: &str, component: Option<Value>| -> Automation {
        let mut v = serde_json::json!({"slug": "a", "name": "a", "kind": kind,
            "createdAt": "2026-11-27T10:00:00.000Z", "createdBy": "u",
            "updatedAt": "2026-11-27T10:00:00.000Z", "updatedBy": "u"});
        if let Some(c) = component {
            v["component"] = c;
        }
        serde_json::from_value(v).expect("automation")
    };
    assert!(super::is_ready(&automation("dsl", None)));
    assert!(!super::is_ready(&automation("component", None)));
    let missing = automation("component", Some(serde_json::json!({"status": "missing"})));
    assert!(!super::is_ready(&missing), "a component not uploaded yet");
    let mut uploaded = missing;
    if let Some(c) = uploaded.component.as_mut() {
        c.status = ComponentStatus::Ready;
    }
    assert!(super::is_ready(&uploaded));
}

/// The events of a streamed answer as its client reads them, each with the (virtual) time it
/// arrived after the previous one.
async fn events(response: Response) -> Vec<(String, std::time::Duration)> {
    use futures::StreamExt;
    let mut body = response.into_body().into_data_stream();
    let mut got = Vec::new();
    let mut at = tokio::time::Instant::now();
    while let Some(bytes) = body.next().await {
        let text = String::from_utf8(bytes.unwrap().to_vec()).unwrap();
        got.push((text, at.elapsed()));
        at = tokio::time::Instant::now();
    }
    got
}

/// A head whose run may last `wall_time` from now.
fn head_of(
    keep_alive: Option<std::time::Duration>,
    wall_time: std::time::Duration,
) -> refract_host::AnswerPart {
    refract_host::AnswerPart::Head {
        status: 200,
        headers: vec![
            ("content-type".into(), "text/html".into()),
            ("set-cookie".into(), "access-token=stolen".into()),
            ("x-model".into(), "small".into()),
        ],
        keep_alive,
        run_ends_by: (tokio::time::Instant::now() + wall_time).into_std(),
    }
}

fn head(keep_alive: Option<std::time::Duration>) -> refract_host::AnswerPart {
    head_of(keep_alive, std::time::Duration::from_secs(120))
}

/// A streamed answer is `text/event-stream` whatever the guest set, keeps only the headers a
/// webhook may set, sends every chunk before the output, and skips an output of `{}`.
#[tokio::test]
async fn a_streamed_answer_sends_its_chunks_then_the_output() {
    use refract_host::AnswerPart;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(AnswerPart::Chunk(r#"{"n":1}"#.into()))
        .await
        .unwrap();
    tx.send(AnswerPart::Chunk(r#""two""#.into())).await.unwrap();
    // The run ends with the chunks still queued: they go out first.
    let run = tokio::spawn(async move {
        drop(tx);
        Ok(report(out(r#"{"done":true}"#, None)))
    });
    let response = super::streamed::answer(head(None), rx, run, "s");
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    assert_eq!(response.headers()["x-model"], "small");
    assert!(response.headers().get(header::SET_COOKIE).is_none());
    let got: Vec<String> = events(response).await.into_iter().map(|(e, _)| e).collect();
    assert_eq!(
        got,
        [
            "data: {\"n\":1}\n\n",
            "data: \"two\"\n\n",
            "data: {\"done\":true}\n\n"
        ]
    );

    let (_tx, rx) = tokio::sync::mpsc::channel(4);
    let run = tokio::spawn(async { Ok(report(out("{}", None))) });
    let got = events(super::streamed::answer(head(None), rx, run, "s")).await;
    assert!(got.is_empty(), "an output of {{}} is not sent: {got:?}");
}

/// Silence is filled with keep-alives at the interval asked for; without one, a stream silent
/// for 60 s is closed while its run goes on.
#[tokio::test(start_paused = true)]
async fn a_silent_stream_gets_keep_alives_or_is_closed() {
    use std::time::Duration;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let run = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(12)).await;
        drop(tx);
        Ok(report(out("\"end\"", None)))
    });
    let got = events(super::streamed::answer(
        head(Some(Duration::from_secs(5))),
        rx,
        run,
        "s",
    ))
    .await;
    let keep_alive = "data: {\"keepAlive\":true}\n\n".to_owned();
    assert_eq!(
        got,
        [
            (keep_alive.clone(), Duration::from_secs(5)),
            (keep_alive, Duration::from_secs(5)),
            ("data: \"end\"\n\n".to_owned(), Duration::from_secs(2)),
        ]
    );

    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let run = tokio::spawn(async move {
        let _sink = tx;
        std::future::pending().await
    });
    let started = tokio::time::Instant::now();
    let got = events(super::streamed::answer(head(None), rx, run, "s")).await;
    assert!(got.is_empty(), "{got:?}");
    assert_eq!(started.elapsed(), super::streamed::IDLE_CLOSE);

    // Keep-alives do not hold a stream open past its run's wall clock and the report's grace.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let run = tokio::spawn(async move {
        let _sink = tx;
        std::future::pending().await
    });
    let started = tokio::time::Instant::now();
    let got = events(super::streamed::answer(
        head_of(Some(Duration::from_secs(5)), Duration::from_secs(12)),
        rx,
        run,
        "s",
    ))
    .await;
    assert_eq!(got.len(), 4, "keep-alives at 5, 10, 15 and 20 s: {got:?}");
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(12) + super::streamed::REPORT_GRACE
    );
}
