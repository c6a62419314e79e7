//! Webhook answers in a browser: script on the platform's origin, cookies, cross-site requests.

use refract_tests::platform::{Client, Platform};
use reqwest::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE, SET_COOKIE, X_CONTENT_TYPE_OPTIONS};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn automation(client: &Client, ws: &str, body: Value) {
    let (status, answer) = client
        .json(
            Method::POST,
            &format!("/v2/workspaces/{ws}/automations"),
            Some(body),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{answer}");
}

/// The answer is sandboxed: one CSP, exactly `sandbox` (no `allow-same-origin`, nothing the
/// automation wrote), and never sniffed.
fn assert_sandboxed(res: &reqwest::Response, what: &str) {
    let csp: Vec<_> = res
        .headers()
        .get_all(CONTENT_SECURITY_POLICY)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(csp, ["sandbox"], "{what}: {:?}", res.headers());
    assert_eq!(
        res.headers()
            .get(X_CONTENT_TYPE_OPTIONS)
            .map(|v| v.to_str().unwrap()),
        Some("nosniff"),
        "{what}"
    );
}

/// A DSL automation answering `text/html` with a `<script>` (and its own lax CSP) used to run
/// that script on the console's origin, with the visitor's session: every webhook and test-run
/// answer, success or failure, now carries `Content-Security-Policy: sandbox` and `nosniff`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_answer_cannot_run_script_on_the_platform_origin() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(dir.path()).await.unwrap();
    let mallory = platform
        .client()
        .signed_up("mallory@example.com")
        .await
        .unwrap();
    let ws = mallory.workspace("Pages").await.unwrap();
    automation(&mallory, &ws, json!({"slug": "p", "name": "Page", "when": {"endpoint": true}, "do": [
        {"set": {"name": "$http", "value": {"headers": {"content-type": "text/html",
            "content-security-policy": "default-src * 'unsafe-inline'", "x-content-type-options": "sniff-away"}}}}
    ], "output": "<script>fetch('/v2/me')</script>"}))
    .await;
    automation(
        &mallory,
        &ws,
        json!({"slug": "broken", "name": "Broken", "when": {"endpoint": true}, "do": [
            {"set": {"name": "$http", "value": {"headers": {"content-type": "text/html"}}}},
            {"emit": {"event": "not/a type"}}
        ]}),
    )
    .await;

    let res = platform
        .client()
        .request(Method::GET, &format!("/v2/workspaces/{ws}/webhooks/p"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[CONTENT_TYPE], "text/html");
    assert_sandboxed(&res, "a page");
    let res = platform
        .client()
        .request(Method::GET, &format!("/v2/workspaces/{ws}/webhooks/broken"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_sandboxed(&res, "a failed run");
    let res = platform
        .client()
        .request(
            Method::GET,
            &format!("/v2/workspaces/{ws}/webhooks/nothing-here"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_sandboxed(&res, "no such endpoint");
    let res = mallory
        .request(Method::POST, &format!("/v2/workspaces/{ws}/test/p"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_sandboxed(&res, "a test run");
    platform.stop().await.unwrap();
}

/// `Set-Cookie: access-token =X` slipped past the filter (browsers trim the name): a webhook
/// could plant a session of its author's choosing (session fixation). Platform cookies are
/// refused however written; other cookies still pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_cannot_set_a_platform_cookie() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(dir.path()).await.unwrap();
    let mallory = platform
        .client()
        .signed_up("mallory@example.com")
        .await
        .unwrap();
    let ws = mallory.workspace("Cookies").await.unwrap();
    automation(
        &mallory,
        &ws,
        json!({"slug": "c", "name": "Cookie", "when": {"endpoint": true}, "do": [
        {"set": {"name": "$http", "value": {"headers": {"set-cookie": "{{body.cookie}}"}}}}
    ], "output": "ok"}),
    )
    .await;
    let set_cookie = |cookie: &'static str| {
        let req = platform
            .client()
            .request(Method::POST, &format!("/v2/workspaces/{ws}/webhooks/c"))
            .json(&json!({"cookie": cookie}));
        async move {
            let res = req.send().await.unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            res.headers()
                .get_all(SET_COOKIE)
                .iter()
                .map(|v| v.to_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    for hostile in [
        "access-token =X",
        "ACCESS-TOKEN=x",
        " access-token=x; Path=/",
        "refract-oidc=x; Path=/",
    ] {
        assert_eq!(
            set_cookie(hostile).await,
            Vec::<String>::new(),
            "{hostile:?} was set"
        );
    }
    assert_eq!(
        set_cookie("theme=dark; Path=/").await,
        ["theme=dark; Path=/"]
    );
    platform.stop().await.unwrap();
}
