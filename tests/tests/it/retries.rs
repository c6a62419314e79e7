//! End-to-end: retries and dead letters (issue: production features, 2). A failed run of an
//! event-triggered automation with a `retry` policy is tried again after its backoff until it
//! succeeds; one that fails every attempt becomes a dead letter that the workspace lists,
//! replays once the automation is fixed, and deletes. Readers list, editors replay, strangers
//! see nothing.

use refract_tests::platform::{Client, Platform};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn post(client: &Client, path: &str, body: Value) -> Value {
    let (status, body) = client.json(Method::POST, path, Some(body)).await.unwrap();
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    body
}

/// The `runtime.automations.executed` records of `slug`, oldest first, once there are `n`.
async fn runs_of(client: &Client, ws: &str, slug: &str, n: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (status, body) = client
            .json(
                Method::GET,
                &format!("/v2/workspaces/{ws}/events?types=runtime.automations.executed&payload.slug={slug}&sort=asc&limit=50"),
                None,
            )
            .await
            .unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        let runs = body["result"]["events"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if runs.len() >= n {
            return runs;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{slug}: {} of {n} runs: {body}",
            runs.len()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_runs_are_retried_and_the_last_failure_is_a_dead_letter_to_replay() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(dir.path()).await.unwrap();
    let ada = platform
        .client()
        .signed_up("ada@example.com")
        .await
        .unwrap();
    let ws = ada.workspace("Jobs").await.unwrap();
    let automations = format!("/v2/workspaces/{ws}/automations");
    let events = format!("/v2/workspaces/{ws}/events");

    // Fails on its first two attempts (a global counter), succeeds on the third.
    let flaky = json!({"slug": "flaky", "name": "Flaky", "when": {"events": ["job.requested"]},
        "retry": {"attempts": 3, "backoff": {"initialMs": 200, "maxMs": 400, "factor": 2}},
        "do": [
            {"set": {"name": "global.tries", "value": "{% ({{global.tries}} || 0) + 1 %}"}},
            {"conditions": {"{{global.tries}} < 3": [{"emit": {"event": "not a valid type!"}}], "default": []}}
        ],
        "output": {"tries": "{{global.tries}}"}});
    post(&ada, &automations, flaky).await;
    post(
        &ada,
        &events,
        json!({"events": [{"type": "job.requested", "payload": {"job": 1}}]}),
    )
    .await;
    let runs = runs_of(&ada, &ws, "flaky", 3).await;
    let statuses: Vec<&str> = runs
        .iter()
        .map(|r| r["payload"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["error", "error", "success"], "{runs:?}");
    assert_eq!(runs[2]["payload"]["attempt"], 3, "{}", runs[2]);
    assert_eq!(runs[2]["payload"]["output"]["tries"], 3);
    // The same trigger each time: the event's payload reached every attempt.
    assert!(
        runs.iter()
            .all(|r| r["payload"]["payload"]["payload"]["job"] == 1),
        "{runs:?}"
    );

    // Fails every attempt: a dead letter.
    let broken = json!({"slug": "broken", "name": "Broken", "when": {"events": ["job.broken"]},
        "retry": {"attempts": 2, "backoff": {"initialMs": 100}},
        "do": [{"emit": {"event": "not a valid type!"}}]});
    post(&ada, &automations, broken).await;
    post(
        &ada,
        &events,
        json!({"events": [{"type": "job.broken", "payload": {"job": 2}}]}),
    )
    .await;
    let announced = ada
        .wait_for_event(&ws, "runtime.automations.deadlettered", |_| true)
        .await
        .unwrap();
    assert_eq!(
        announced["payload"]["deadLetter"]["automation"], "broken",
        "{announced}"
    );
    let list = format!("/v2/workspaces/{ws}/deadletters");
    let (status, body) = ada.json(Method::GET, &list, None).await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let letters = body["result"]["deadLetters"].as_array().unwrap().clone();
    assert_eq!(letters.len(), 1, "{body}");
    let letter = &letters[0];
    assert_eq!(letter["automation"], "broken");
    assert_eq!(letter["attempts"], 2);
    assert_eq!(letter["trigger"]["type"], "event");
    assert_eq!(letter["trigger"]["value"], "job.broken");
    assert_eq!(letter["error"]["error"], "InvalidEventError", "{letter}");
    let id = letter["id"].as_str().unwrap().to_owned();
    assert_eq!(runs_of(&ada, &ws, "broken", 2).await.len(), 2);

    // Roles: a viewer lists but may not replay; a stranger sees no workspace.
    let bob = platform
        .client()
        .signed_up("bob@example.com")
        .await
        .unwrap();
    let eve = platform
        .client()
        .signed_up("eve@example.com")
        .await
        .unwrap();
    let (_, me) = bob.json(Method::GET, "/v2/me", None).await.unwrap();
    post(
        &ada,
        &format!("/v2/workspaces/{ws}/permissions"),
        json!({"target": {"id": me["id"]}, "permissions": {"role": "viewer"}}),
    )
    .await;
    let replay = format!("/v2/workspaces/{ws}/deadletters/{id}/replay");
    let (status, body) = bob.json(Method::GET, &list, None).await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = bob.json(Method::POST, &replay, None).await.unwrap();
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    for (method, path) in [(Method::GET, &list), (Method::POST, &replay)] {
        let (status, body) = eve.json(method, path, None).await.unwrap();
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    }

    // Replayed while still broken: it fails again and stays, one attempt more.
    let (status, body) = ada.json(Method::POST, &replay, None).await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "error", "{body}");
    assert_eq!(body["deadLetter"]["attempts"], 3, "{body}");

    // Fixed, then replayed: it runs with the same event and the dead letter is gone.
    let (status, body) = ada
        .json(
            Method::PATCH,
            &format!("{automations}/broken"),
            Some(json!({"do": [{"set": {"name": "job", "value": "{{payload.job}}"}}], "output": {"job": "{{job}}"}})),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let body = loop {
        // The fix reaches the runtime through the fan-out.
        let (status, body) = ada.json(Method::POST, &replay, None).await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        if body["status"] == "success" || tokio::time::Instant::now() > deadline {
            break body;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(body["status"], "success", "{body}");
    assert_eq!(body["output"], json!({"job": 2}));
    let (_, body) = ada.json(Method::GET, &list, None).await.unwrap();
    assert_eq!(body["result"]["deadLetters"], json!([]), "{body}");
    let (status, _) = ada.json(Method::POST, &replay, None).await.unwrap();
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A policy out of bounds is refused on save, naming the member.
    let (status, body) = ada
        .json(
            Method::PATCH,
            &format!("{automations}/broken"),
            Some(json!({"retry": {"attempts": 50}})),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.to_string().contains("retry.attempts"), "{body}");
    platform.stop().await.unwrap();
}
