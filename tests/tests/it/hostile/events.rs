//! Platform events a tenant must not forge (guest and client emits) and the consumers that must ignore forgeries.
//! Also the identity a run may take on: never the one behind another tenant's login session.

use refract_tests::platform::{Client, Platform};
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

/// Sends events to `ws` as a client would; returns the status and answer.
async fn send(client: &Client, ws: &str, ty: &str, payload: Value) -> (StatusCode, Value) {
    let events = json!({"events": [{"type": ty, "payload": payload}]});
    client
        .json(
            Method::POST,
            &format!("/v2/workspaces/{ws}/events"),
            Some(events),
        )
        .await
        .unwrap()
}

/// Every event of `ty` in the history of `ws`.
async fn history(client: &Client, ws: &str, ty: &str) -> Vec<Value> {
    let (status, body) = client
        .json(
            Method::GET,
            &format!("/v2/workspaces/{ws}/events?types={ty}&limit=100"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    body["result"]["events"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// A DSL automation that forges a platform event, answering a webhook: `event` with the
/// request body as payload.
fn forger(slug: &str, event: &str) -> Value {
    json!({"slug": slug, "name": slug, "when": {"endpoint": true}, "do": [
        {"emit": {"event": event, "payload": "{{body}}"}}
    ], "output": "sent"})
}

/// The run that tried to emit a platform event failed with the reason, as a DSL error (not a
/// sandbox trap), and the webhook says so.
fn assert_refused(status: StatusCode, body: &Value, event: &str) {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "AutomationError", "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(event) && message.contains("system event type"),
        "{body}"
    );
}

/// `emit: {event: workspaces.deleted}` used to erase its workspace's whole history (which an
/// editor cannot otherwise do): the emit is refused, the run fails, the history is intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dsl_emit_of_workspaces_deleted_fails_and_the_history_stays() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(dir.path()).await.unwrap();
    let ada = platform
        .client()
        .signed_up("ada@example.com")
        .await
        .unwrap();
    let ws = ada.workspace("Ledger").await.unwrap();
    for n in 0..3 {
        assert_eq!(
            send(&ada, &ws, "orders.created", json!({"n": n})).await.0,
            StatusCode::OK
        );
    }
    ada.wait_for_event(&ws, "orders.created", |e| e["payload"]["n"] == 2)
        .await
        .unwrap();
    automation(&ada, &ws, forger("wipe", "workspaces.deleted")).await;

    let (status, body) = hook(&ada, &ws, "wipe", json!({})).await;
    assert_refused(status, &body, "workspaces.deleted");

    // An event sent after the attempt is stored: ingestion went past it, and kept the rest.
    assert_eq!(
        send(&ada, &ws, "after.wipe", json!({})).await.0,
        StatusCode::OK
    );
    ada.wait_for_event(&ws, "after.wipe", |_| true)
        .await
        .unwrap();
    assert_eq!(history(&ada, &ws, "orders.created").await.len(), 3);
    assert!(history(&ada, &ws, "workspaces.deleted").await.is_empty());
    platform.stop().await.unwrap();
}

/// A forged `workspaces.automations.updated` used to be loaded into the runtime's index as is,
/// skipping the workspaces service's validation: it is refused, and what runs is unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_automation_update_does_not_change_what_runs() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(dir.path()).await.unwrap();
    let ada = platform
        .client()
        .signed_up("ada@example.com")
        .await
        .unwrap();
    let ws = ada.workspace("Relay").await.unwrap();
    automation(
        &ada,
        &ws,
        json!({"slug": "relay", "name": "Relay", "when": {"events": ["boom"]}, "do": [
            {"emit": {"event": "relayed", "payload": {"by": "the saved automation"}}}
        ]}),
    )
    .await;
    automation(&ada, &ws, forger("forge", "workspaces.automations.updated")).await;
    let forged = json!({"automation": {"slug": "relay", "name": "Relay", "kind": "dsl", "when": {"events": ["boom"]},
        "do": [{"emit": {"event": "relayed", "payload": {"by": "the forgery"}}}],
        "createdAt": "2026-01-01T00:00:00.000Z", "createdBy": "x", "updatedAt": "2026-01-01T00:00:00.000Z", "updatedBy": "x"}});

    let (status, body) = hook(&ada, &ws, "forge", forged.clone()).await;
    assert_refused(status, &body, "workspaces.automations.updated");
    let (status, body) = send(&ada, &ws, "workspaces.automations.updated", forged).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("ReservedEventType")),
        "{body}"
    );

    assert_eq!(send(&ada, &ws, "boom", json!({})).await.0, StatusCode::OK);
    let relayed = ada.wait_for_event(&ws, "relayed", |_| true).await.unwrap();
    assert_eq!(
        relayed["payload"]["by"], "the saved automation",
        "{relayed}"
    );
    platform.stop().await.unwrap();
}

/// A forged `apps.published {appSlug}` from any workspace used to run every instance of that
/// app, in every workspace, with the forger's payload: refused; only the real publication runs
/// the victim's instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_apps_published_does_not_run_another_workspaces_instances() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(dir.path()).await.unwrap();
    let vic = platform
        .client()
        .signed_up("vic@example.com")
        .await
        .unwrap();
    let source = vic.workspace("Notifier").await.unwrap();
    automation(&vic, &source, json!({"slug": "on-publish", "name": "On publish", "when": {"events": ["apps.published"]}, "do": [
        {"emit": {"event": "republished", "payload": {"version": "{{payload.version}}", "evil": "{{payload.evil}}"}}}
    ]}))
    .await;
    let (status, body) = vic
        .json(
            Method::POST,
            "/v2/apps",
            Some(json!({"workspaceId": source, "slug": "notifier"})),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let shop = vic.workspace("Shop").await.unwrap();
    let (status, body) = vic
        .json(
            Method::POST,
            &format!("/v2/workspaces/{shop}/apps"),
            Some(json!({"appSlug": "notifier", "slug": "n"})),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");

    let mallory = platform
        .client()
        .signed_up("mallory@example.com")
        .await
        .unwrap();
    let lair = mallory.workspace("Lair").await.unwrap();
    automation(&mallory, &lair, forger("forge", "apps.published")).await;
    let (status, body) = hook(
        &mallory,
        &lair,
        "forge",
        json!({"appSlug": "notifier", "evil": "yes"}),
    )
    .await;
    assert_refused(status, &body, "apps.published");

    // The real publication of version 2 reaches the instance; the forgery never did.
    let (status, body) = vic
        .json(
            Method::POST,
            "/v2/apps",
            Some(json!({"workspaceId": source, "slug": "notifier"})),
        )
        .await
        .unwrap();
    assert_eq!(
        (status, body["version"].as_u64()),
        (StatusCode::OK, Some(2)),
        "{body}"
    );
    vic.wait_for_event(&shop, "n.republished", |e| e["payload"]["version"] == 2)
        .await
        .unwrap();
    let heard = history(&vic, &shop, "n.republished").await;
    assert!(
        heard.iter().all(|e| e["payload"]["evil"] != "yes"),
        "{heard:?}"
    );
    assert_eq!(heard.len(), 1, "{heard:?}");
    platform.stop().await.unwrap();
}

/// Clients may not emit the platform's types either (http-api §7.2), whatever the role.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_emit_of_a_platform_type_is_403() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(dir.path()).await.unwrap();
    let ada = platform
        .client()
        .signed_up("ada@example.com")
        .await
        .unwrap();
    let ws = ada.workspace("Owned").await.unwrap();
    for ty in [
        "workspaces.deleted",
        "workspaces.automations.updated",
        "apps.published",
        "runtime.automations.executed",
        "error",
        "usage",
    ] {
        let (status, body) = send(&ada, &ws, ty, json!({})).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::FORBIDDEN, Some("ReservedEventType")),
            "{ty}: {body}"
        );
    }
    assert_eq!(
        send(&ada, &ws, "workspaces-like.custom", json!({})).await.0,
        StatusCode::OK
    );
    platform.stop().await.unwrap();
}

/// `set session.id` used to resolve any login session of the platform to its user: a run could
/// continue as a user of another workspace. Now a session resolves only to the run's own user
/// or a member of the run's workspace; any other is an unknown session (user id = session id).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_cannot_take_on_the_user_behind_another_tenants_session() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(dir.path()).await.unwrap();
    let me = |client: Client| async move {
        let (status, me) = client.json(Method::GET, "/v2/me", None).await.unwrap();
        assert_eq!(status, StatusCode::OK, "{me}");
        (
            me["id"].as_str().unwrap().to_owned(),
            me["sessionId"].as_str().unwrap().to_owned(),
        )
    };
    let vic = platform
        .client()
        .signed_up("vic@example.com")
        .await
        .unwrap();
    vic.workspace("Vic's").await.unwrap();
    let (vic_id, vic_session) = me(vic).await;
    let bob = platform
        .client()
        .signed_up("bob@example.com")
        .await
        .unwrap();
    let (bob_id, bob_session) = me(bob).await;
    let mallory = platform
        .client()
        .signed_up("mallory@example.com")
        .await
        .unwrap();
    let (mallory_id, mallory_session) = me(mallory.clone()).await;
    let lair = mallory.workspace("Lair").await.unwrap();
    let share = json!({"target": {"id": bob_id}, "permissions": {"role": "viewer"}});
    let (status, body) = mallory
        .json(
            Method::POST,
            &format!("/v2/workspaces/{lair}/permissions"),
            Some(share),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    automation(
        &mallory,
        &lair,
        json!({"slug": "as-session", "name": "As session", "when": {"endpoint": true}, "do": [
        {"set": {"name": "session.id", "value": "{{body.session}}"}}
    ], "output": {"user": "{{user.id}}", "session": "{{session.id}}"}}),
    )
    .await;

    let (status, body) = hook(
        &mallory,
        &lair,
        "as-session",
        json!({"session": vic_session}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"user": vic_session, "session": vic_session}),
        "Vic ({vic_id}) is no one here"
    );
    let (_, body) = hook(
        &mallory,
        &lair,
        "as-session",
        json!({"session": bob_session}),
    )
    .await;
    assert_eq!(
        body,
        json!({"user": bob_id, "session": bob_session}),
        "a member's session is known"
    );
    let (_, body) = hook(
        &mallory,
        &lair,
        "as-session",
        json!({"session": mallory_session}),
    )
    .await;
    assert_eq!(
        body,
        json!({"user": mallory_id, "session": mallory_session}),
        "the run's own session is known"
    );
    platform.stop().await.unwrap();
}
