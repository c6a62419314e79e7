//! End-to-end: apps (`automation-dsl.md` §8, `http-api.md` §11) through the gateway. A
//! workspace is published as an app, installed as instances with their own configs, and its
//! DSL and component automations answer calls, events and endpoints inside each instance.

use std::time::Duration;

use refract_tests::platform::{Client, Platform, example};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Bound on every poll for something asynchronous (an index catching up).
const PATIENCE: Duration = Duration::from_secs(30);

async fn post(client: &Client, path: &str, body: Value) -> Value {
    let (status, answer) = client.json(Method::POST, path, Some(body)).await.unwrap();
    assert_eq!(status, StatusCode::OK, "POST {path}: {answer}");
    answer
}

async fn automation(client: &Client, ws: &str, body: Value) {
    post(client, &format!("/v2/workspaces/{ws}/automations"), body).await;
}

/// Calls webhook `endpoint` of `ws` with a JSON body.
async fn hook(client: &Client, ws: &str, endpoint: &str, body: Value) -> (StatusCode, Value) {
    client
        .json(
            Method::POST,
            &format!("/v2/workspaces/{ws}/webhooks/{endpoint}"),
            Some(body),
        )
        .await
        .unwrap()
}

/// Polls webhook `endpoint` until `done` holds for its answer.
async fn hook_until(
    client: &Client,
    ws: &str,
    endpoint: &str,
    done: impl Fn(StatusCode, &Value) -> bool,
) -> (StatusCode, Value) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (status, body) = hook(client, ws, endpoint, json!({})).await;
        if done(status, &body) {
            return (status, body);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{endpoint} never answered as expected; last: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends custom events to `ws` as a client would.
async fn send(client: &Client, ws: &str, event: &str, payload: Value) {
    post(
        client,
        &format!("/v2/workspaces/{ws}/events"),
        json!({"events": [{"type": event, "payload": payload}]}),
    )
    .await;
}

/// The source workspace of the `greeter` app: DSL automations (an endpoint, a public one that
/// calls a private one, an event listener, a lifecycle listener) and a component (the counter
/// example, whose state path comes from the config).
async fn greeter_source(ada: &Client) -> String {
    let ws = ada.workspace("Greeter").await.unwrap();
    let (status, body) = ada
        .json(
            Method::PATCH,
            &format!("/v2/workspaces/{ws}"),
            Some(json!({"config": {
                "schema": {
                    "greeting": {"type": "string", "required": true},
                    "key": {"type": "string"},
                    "token": {"type": "string", "secret": true},
                },
                "value": {"greeting": "Hello", "key": "greeter.count"},
            }})),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    automation(
        ada,
        &ws,
        json!({"slug": "hello", "name": "Hello", "when": {"endpoint": true}, "do": [],
        "output": {"greeting": "{{config.greeting}}"}}),
    )
    .await;
    automation(
        ada,
        &ws,
        json!({"slug": "sauce", "name": "Sauce", "private": true, "do": [],
        "output": "{{config.greeting}}"}),
    )
    .await;
    automation(
        ada,
        &ws,
        json!({"slug": "greet", "name": "Greet", "do": [
        {"sauce": {"output": "word"}}
    ], "output": {"greeting": "{{word}}, {{name}}"}}),
    )
    .await;
    automation(ada, &ws, json!({"slug": "on-ping", "name": "On ping", "when": {"events": ["ping"]}, "do": [
        {"emit": {"event": "pong", "payload": {"greeting": "{{config.greeting}}", "heard": "{{run.trigger.value}}"}}}
    ]})).await;
    automation(ada, &ws, json!({"slug": "on-install", "name": "On install", "when": {"events": ["workspaces.apps.installed"]}, "do": [
        {"emit": {"event": "installed", "payload": {"greeting": "{{config.greeting}}"}}}
    ]})).await;
    ada.deploy(
        &ws,
        json!({"slug": "count", "name": "Count", "when": {"endpoint": "count"}, "component": {}}),
        &example("counter").unwrap(),
    )
    .await
    .unwrap();
    ws
}

/// One app installed twice in one workspace: each instance answers with its own config (DSL
/// and component automations), is reached by calls, events and endpoints under its slug,
/// keeps its private automation to itself, and only the instance following `current` moves
/// to a new version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_installed_twice_answers_with_each_instance_config() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(dir.path()).await.unwrap();
    let ada = platform
        .client()
        .signed_up("ada@example.com")
        .await
        .unwrap();
    let source = greeter_source(&ada).await;

    // Publish, then find it in the store.
    let app = post(
        &ada,
        "/v2/apps",
        json!({"workspaceId": source, "slug": "greeter", "name": "Greeter",
        "description": "Greets people", "labels": ["greetings"]}),
    )
    .await;
    assert_eq!(app["version"], 1, "{app}");
    assert_eq!(app["currentVersion"], 1);
    let callable: Vec<&str> = app["automations"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["slug"].as_str())
        .collect();
    assert!(
        callable.contains(&"greet") && !callable.contains(&"sauce"),
        "private automations are not listed: {callable:?}"
    );
    let (status, found) = ada
        .json(Method::GET, "/v2/apps?text=greets&labels=greetings", None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(found.as_array().map(Vec::len), Some(1), "{found}");
    let (_, none) = ada
        .json(Method::GET, "/v2/apps?text=nothing-like-it", None)
        .await
        .unwrap();
    assert_eq!(none, json!([]));
    let (_, page) = ada
        .json(Method::GET, "/v2/apps?page=1&limit=1", None)
        .await
        .unwrap();
    assert_eq!(page, json!([]), "one app: the second page is empty");
    let (status, body) = ada
        .json(
            Method::POST,
            "/v2/apps",
            Some(json!({"workspaceId": source, "slug": "has.dot"})),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Install twice in a shop; the config is checked against the app's schema.
    let shop = ada.workspace("Shop").await.unwrap();
    let apps = format!("/v2/workspaces/{shop}/apps");
    let (status, body) = ada
        .json(
            Method::POST,
            &apps,
            Some(json!({"appSlug": "greeter", "slug": "bad", "config": {"greeting": 42}})),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "InvalidConfigError");
    assert_eq!(body["details"][0]["path"], "/greeting");
    let en = post(&ada, &apps, json!({"appSlug": "greeter", "slug": "en", "config": {"key": "en.count", "token": "t0k3n"}})).await;
    assert_eq!(en["config"]["token"], "REDACTED", "{en}");
    post(&ada, &apps, json!({"appSlug": "greeter", "slug": "fr", "appVersion": 1, "config": {"greeting": "Bonjour", "key": "fr.count"}})).await;
    let (status, body) = ada
        .json(
            Method::POST,
            &apps,
            Some(json!({"appSlug": "greeter", "slug": "en"})),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (_, config) = ada
        .json(Method::GET, &format!("{apps}/en/config"), None)
        .await
        .unwrap();
    assert_eq!(config, json!({"key": "en.count", "token": "REDACTED"}));
    let (_, listed) = ada.json(Method::GET, &apps, None).await.unwrap();
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");

    // Lifecycle: each instance's own listener heard its installation, with its config.
    let installed = ada
        .wait_for_event(&shop, "en.installed", |_| true)
        .await
        .unwrap();
    assert_eq!(installed["payload"]["greeting"], "Hello", "{installed}");
    assert_eq!(installed["source"]["appInstanceFullSlug"], "en");
    let installed = ada
        .wait_for_event(&shop, "fr.installed", |_| true)
        .await
        .unwrap();
    assert_eq!(installed["payload"]["greeting"], "Bonjour");

    // Endpoints: DSL and component, each with the instance's config.
    let (status, body) = hook(&ada, &shop, "en.hello", json!({})).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"greeting": "Hello"}))
    );
    let (status, body) = hook(&ada, &shop, "fr.hello", json!({})).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"greeting": "Bonjour"}))
    );
    for expected in [1, 2] {
        let (status, body) = hook(&ada, &shop, "en.count", json!({})).await;
        assert_eq!((status, body), (StatusCode::OK, json!({"count": expected})));
    }
    let (status, body) = hook(&ada, &shop, "fr.count", json!({})).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"count": 1})),
        "fr counts under its own key"
    );
    let (status, _) = hook(&ada, &shop, "hello", json!({})).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "an instance's endpoint is only reachable under its slug"
    );

    // Calls from the parent: `<instance>.<automation>`; the private one stays private.
    automation(
        &ada,
        &shop,
        json!({"slug": "ask", "name": "Ask", "when": {"endpoint": true}, "do": [
        {"en.greet": {"name": "Ada", "output": "a"}},
        {"fr.greet": {"name": "Ada", "output": "b"}}
    ], "output": {"en": "{{a.greeting}}", "fr": "{{b.greeting}}"}}),
    )
    .await;
    let (status, body) = hook(&ada, &shop, "ask", json!({})).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"en": "Hello, Ada", "fr": "Bonjour, Ada"})
        )
    );
    automation(
        &ada,
        &shop,
        json!({"slug": "sneaky", "name": "Sneaky", "when": {"endpoint": true}, "do": [
        {"en.sauce": {"output": "x"}}
    ], "output": "{{x}}"}),
    )
    .await;
    let (status, body) = hook(&ada, &shop, "sneaky", json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["details"]["error"], "ObjectNotFoundError", "{body}");

    // Events both ways: the parent emits `fr.ping`, the instance hears `ping` and emits `pong`,
    // which the parent's own listener hears as `fr.pong`.
    automation(&ada, &shop, json!({"slug": "heard", "name": "Heard", "when": {"events": ["fr.pong"]}, "do": [
        {"emit": {"event": "heard", "payload": {"greeting": "{{payload.greeting}}", "heard": "{{payload.heard}}"}}}
    ]})).await;
    send(&ada, &shop, "fr.ping", json!({})).await;
    let heard = ada.wait_for_event(&shop, "heard", |_| true).await.unwrap();
    assert_eq!(heard["payload"]["greeting"], "Bonjour", "{heard}");
    let pong = ada
        .wait_for_event(&shop, "fr.pong", |_| true)
        .await
        .unwrap();
    assert_eq!(pong["source"]["appInstanceFullSlug"], "fr", "{pong}");
    assert_eq!(pong["source"]["appSlug"], "greeter");

    // Configure: the instance answers with its new config.
    let (status, body) = ada
        .json(
            Method::PATCH,
            &format!("{apps}/en/config"),
            Some(json!({"greeting": "Hi", "token": "REDACTED"})),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    hook_until(&ada, &shop, "en.hello", |s, b| {
        s == StatusCode::OK && b["greeting"] == "Hi"
    })
    .await;

    // A new version: `en` follows `current`, `fr` is pinned to 1.
    let (status, body) = ada
        .json(
            Method::PATCH,
            &format!("/v2/workspaces/{source}/automations/hello"),
            Some(json!({"output": {"greeting": "{{config.greeting}}", "version": 2}})),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let app = post(
        &ada,
        "/v2/apps",
        json!({"workspaceId": source, "slug": "greeter"}),
    )
    .await;
    assert_eq!(app["version"], 2, "{app}");
    let (_, v1) = ada
        .json(Method::GET, "/v2/apps/greeter?version=1", None)
        .await
        .unwrap();
    assert_eq!(v1["version"], 1, "versions are kept");
    hook_until(&ada, &shop, "en.hello", |s, b| {
        s == StatusCode::OK && b["version"] == 2
    })
    .await;
    let (status, body) = hook(&ada, &shop, "fr.hello", json!({})).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"greeting": "Bonjour"})),
        "the pinned instance keeps version 1"
    );
    platform.stop().await.unwrap();
}

/// An app whose workspace installs another, installed in a third: calls and endpoints reach
/// two levels down with each level's config; grandchildren are not callable from the top;
/// an app that would install itself is refused; a used app is not deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_apps_two_levels_deep() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(dir.path()).await.unwrap();
    let ada = platform
        .client()
        .signed_up("ada@example.com")
        .await
        .unwrap();

    let inner = ada.workspace("Inner").await.unwrap();
    let (status, body) = ada
        .json(
            Method::PATCH,
            &format!("/v2/workspaces/{inner}"),
            Some(json!({"config": {"value": {"prefix": "!"}}})),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    automation(&ada, &inner, json!({"slug": "shout", "name": "Shout", "do": [], "output": {"text": "{{config.prefix}}{{text}}"}})).await;
    automation(
        &ada,
        &inner,
        json!({"slug": "ping", "name": "Ping", "when": {"endpoint": true}, "do": [],
        "output": {"prefix": "{{config.prefix}}"}}),
    )
    .await;
    post(
        &ada,
        "/v2/apps",
        json!({"workspaceId": inner, "slug": "inner"}),
    )
    .await;

    let middle = ada.workspace("Middle").await.unwrap();
    post(
        &ada,
        &format!("/v2/workspaces/{middle}/apps"),
        json!({"appSlug": "inner", "slug": "loud", "config": {"prefix": ">>"}}),
    )
    .await;
    automation(
        &ada,
        &middle,
        json!({"slug": "relay", "name": "Relay", "do": [
        {"loud.shout": {"text": "{{text}}", "output": "r"}}
    ], "output": {"relayed": "{{r.text}}"}}),
    )
    .await;
    post(
        &ada,
        "/v2/apps",
        json!({"workspaceId": middle, "slug": "middle"}),
    )
    .await;

    let top = ada.workspace("Top").await.unwrap();
    post(
        &ada,
        &format!("/v2/workspaces/{top}/apps"),
        json!({"appSlug": "middle", "slug": "m"}),
    )
    .await;
    automation(
        &ada,
        &top,
        json!({"slug": "go", "name": "Go", "when": {"endpoint": true}, "do": [
        {"m.relay": {"text": "hi", "output": "o"}}
    ], "output": "{{o}}"}),
    )
    .await;
    automation(
        &ada,
        &top,
        json!({"slug": "grand", "name": "Grand", "when": {"endpoint": true}, "do": [
        {"m.loud.shout": {"text": "hi", "output": "o"}}
    ], "output": "{{o}}"}),
    )
    .await;

    let (status, body) = hook_until(&ada, &top, "go", |s, _| s != StatusCode::NOT_FOUND).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"relayed": ">>hi"})),
        "two levels down, each with its config"
    );
    let (status, body) = hook(&ada, &top, "m.loud.ping", json!({})).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"prefix": ">>"})),
        "a nested instance's endpoint"
    );
    let (status, body) = hook(&ada, &top, "grand", json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body["details"]["error"], "ObjectNotFoundError",
        "grandchildren are not callable: {body}"
    );

    // Inner installing middle (which installs inner) would recurse.
    let (status, body) = ada
        .json(
            Method::POST,
            &format!("/v2/workspaces/{inner}/apps"),
            Some(json!({"appSlug": "middle"})),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "RecursiveImportError");
    let (status, body) = ada
        .json(Method::DELETE, "/v2/apps/inner", None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"], "AppInUse");
    platform.stop().await.unwrap();
}

/// Uninstalling an instance removes its schedules and endpoints; a forced app delete
/// uninstalls what is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uninstalling_removes_schedules_and_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(dir.path()).await.unwrap();
    let ada = platform
        .client()
        .signed_up("ada@example.com")
        .await
        .unwrap();
    let source = ada.workspace("Ticker").await.unwrap();
    automation(
        &ada,
        &source,
        json!({"slug": "tick", "name": "Tick", "when": {"schedules": ["* * * * * *"]}, "do": [
            {"emit": {"event": "ticked"}}
        ]}),
    )
    .await;
    automation(&ada, &source, json!({"slug": "status", "name": "Status", "when": {"endpoint": true}, "do": [], "output": {"ok": true}})).await;
    post(
        &ada,
        "/v2/apps",
        json!({"workspaceId": source, "slug": "ticker"}),
    )
    .await;
    // The source's own schedule is not the test's business.
    let (status, _) = ada
        .json(
            Method::DELETE,
            &format!("/v2/workspaces/{source}/automations/tick"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);

    let home = ada.workspace("Home").await.unwrap();
    let apps = format!("/v2/workspaces/{home}/apps");
    post(&ada, &apps, json!({"appSlug": "ticker", "slug": "t"})).await;
    let ticked = ada
        .wait_for_event(&home, "t.ticked", |_| true)
        .await
        .unwrap();
    assert_eq!(ticked["source"]["appInstanceFullSlug"], "t");
    let (status, body) = hook_until(&ada, &home, "t.status", |s, _| s == StatusCode::OK).await;
    assert_eq!(body, json!({"ok": true}), "{status}");

    let (status, _) = ada
        .json(Method::DELETE, &format!("{apps}/t"), None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    hook_until(&ada, &home, "t.status", |s, _| s == StatusCode::NOT_FOUND).await;
    // The schedule is gone: at most a tick already under way lands after this point.
    let count = |ada: Client, home: String| async move {
        let (_, body) = ada
            .json(
                Method::GET,
                &format!("/v2/workspaces/{home}/events?types=t.ticked&limit=100"),
                None,
            )
            .await
            .unwrap();
        body["result"]["events"].as_array().map_or(0, Vec::len)
    };
    let before = count(ada.clone(), home.clone()).await;
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    let after = count(ada.clone(), home.clone()).await;
    assert!(
        after <= before + 1,
        "ticks went on after uninstalling: {before} then {after}"
    );

    // Installed again, the app is only deleted by force, which uninstalls it.
    post(&ada, &apps, json!({"appSlug": "ticker", "slug": "t2"})).await;
    let (status, _) = ada
        .json(Method::DELETE, "/v2/apps/ticker", None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, body) = ada
        .json(Method::DELETE, "/v2/apps/ticker?force=true", None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, listed) = ada.json(Method::GET, &apps, None).await.unwrap();
    assert_eq!(listed, json!([]));
    let (status, _) = ada
        .json(Method::GET, "/v2/apps/ticker", None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::NOT_FOUND);
    hook_until(&ada, &home, "t2.status", |s, _| s == StatusCode::NOT_FOUND).await;
    platform.stop().await.unwrap();
}
