//! End-to-end: workspace secrets in runs (issue: production features, 1). Values are stored
//! sealed, resolve as `{{secret.name}}` in DSL automations and config, travel where a run sends
//! them on purpose (a `fetch`, the webhook answer), and never appear in anything the platform
//! records: emitted events, `runtime.fetch.failed`, `runtime.automations.executed`, `error`.

use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode as AxumStatus};
use refract_storage::collections;
use refract_tests::platform::{Platform, example, serve_on_loopback};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const KEY: &str = "sk-live-51f0c2d9e8";

/// A loopback API that answers 401 and keeps the `authorization` header it was sent.
async fn api_refusing_all() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let kept = seen.clone();
    let app = axum::Router::new().fallback(move |headers: HeaderMap| {
        let kept = kept.clone();
        async move {
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            kept.lock().unwrap().push(auth);
            (AxumStatus::UNAUTHORIZED, "{\"error\":\"bad key\"}")
        }
    });
    let addr = serve_on_loopback(app).await.unwrap();
    (format!("http://{addr}"), seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_reach_runs_and_never_what_the_platform_records() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start_reaching_loopback(dir.path()).await.unwrap();
    let ada = platform
        .client()
        .signed_up("ada@example.com")
        .await
        .unwrap();
    let ws = ada.workspace("Integrations").await.unwrap();
    let (status, body) = ada
        .json(
            Method::PATCH,
            &format!("/v2/workspaces/{ws}/security/secrets"),
            Some(json!({"apiKey": {"value": KEY, "description": "CRM key"}})),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(!body.to_string().contains(KEY), "{body}");

    // At rest: sealed, the plaintext nowhere in the stored document.
    let store = refract_storage::open_document_store(&format!(
        "sqlite://{}",
        dir.path().join("refract.db").display()
    ))
    .await
    .unwrap();
    let stored = store
        .get(&collections::SECRETS, &format!("{ws}:apiKey"))
        .await
        .unwrap()
        .expect("the secret document");
    assert!(stored.body.get("sealed").is_some(), "{}", stored.body);
    assert!(!stored.body.to_string().contains(KEY), "{}", stored.body);

    let (api, seen) = api_refusing_all().await;
    let leaky = json!({"slug": "leaky", "name": "Leaky", "when": {"endpoint": true}, "do": [
        {"set": {"name": "token", "value": "{{secret.apiKey}}"}},
        {"emit": {"event": "leak.tried", "payload": {"token": "{{token}}", "text": "key={{secret.apiKey}}"}}},
        {"fetch": {"url": format!("{api}/v1/items?key={{{{secret.apiKey}}}}"), "method": "get",
            "headers": {"authorization": "Bearer {{secret.apiKey}}"}, "output": "crm"}},
    ], "output": {"token": "{{token}}", "crm": "{{crm}}"}});
    let failing = json!({"slug": "failing", "name": "Failing", "when": {"endpoint": true}, "do": [
        {"fetch": {"url": "http://10.0.0.1:9/hook?key={{secret.apiKey}}", "output": "x"}},
    ]});
    for automation in [leaky, failing] {
        ada.create_automation(&ws, automation).await.unwrap();
    }

    // The run reads the secret, sends it to the API on purpose, and answers with it: the
    // caller of the webhook gets what the automation chose to answer.
    let res = ada
        .request(Method::POST, &format!("/v2/workspaces/{ws}/webhooks/leaky"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let status = res.status();
    let answer: Value = res.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["token"], KEY, "{answer}");
    assert_eq!(seen.lock().unwrap().as_slice(), [format!("Bearer {KEY}")]);

    let res = ada
        .request(
            Method::POST,
            &format!("/v2/workspaces/{ws}/webhooks/failing"),
        )
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_server_error() || res.status().is_client_error());
    let refused = res.text().await.unwrap();

    // Every record of both runs: redacted.
    let leak = ada
        .wait_for_event(&ws, "leak.tried", |_| true)
        .await
        .unwrap();
    assert_eq!(leak["payload"]["token"], "REDACTED", "{leak}");
    assert_eq!(leak["payload"]["text"], "key=REDACTED", "{leak}");
    let failed = ada
        .wait_for_event(&ws, "runtime.fetch.failed", |_| true)
        .await
        .unwrap();
    assert_eq!(
        failed["payload"]["request"]["headers"]["authorization"], "Bearer REDACTED",
        "{failed}"
    );
    let executed = ada
        .wait_for_event(&ws, "runtime.automations.executed", |e| {
            e["payload"]["slug"] == "leaky"
        })
        .await
        .unwrap();
    assert_eq!(
        executed["payload"]["output"]["token"], "REDACTED",
        "{executed}"
    );
    let error = ada
        .wait_for_event(&ws, "error", |e| e["source"]["automationSlug"] == "failing")
        .await
        .unwrap();
    assert!(error.to_string().contains("REDACTED"), "{error}");
    let (status, history) = ada
        .json(
            Method::GET,
            &format!("/v2/workspaces/{ws}/events?limit=100"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(
        history["result"]["events"].as_array().unwrap().len() >= 6,
        "{history}"
    );
    assert!(!history.to_string().contains(KEY), "{history}");
    assert!(!refused.contains(KEY), "the error answer: {refused}");

    // A component reads it through the SDK (WIT 0.1.3 `secrets`): the API gets the key, the
    // run's report does not.
    let automation = json!({"slug": "authorized-fetch", "name": "Authorized fetch",
        "when": {"endpoint": true}, "component": {}, "config": {"url": format!("{api}/v2/items"), "secret": "apiKey"}});
    ada.deploy(&ws, automation, &example("authorized-fetch").unwrap())
        .await
        .unwrap();
    let res = ada
        .request(
            Method::POST,
            &format!("/v2/workspaces/{ws}/webhooks/authorized-fetch"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let answer: Value = res.json().await.unwrap();
    assert_eq!(answer["status"], 401, "{answer}");
    assert_eq!(seen.lock().unwrap().last(), Some(&format!("Bearer {KEY}")));
    let executed = ada
        .wait_for_event(&ws, "runtime.automations.executed", |e| {
            e["payload"]["slug"] == "authorized-fetch"
        })
        .await
        .unwrap();
    assert_eq!(executed["payload"]["status"], "success", "{executed}");
    let (_, history) = ada
        .json(
            Method::GET,
            &format!("/v2/workspaces/{ws}/events?limit=100"),
            None,
        )
        .await
        .unwrap();
    assert!(!history.to_string().contains(KEY), "{history}");

    // The runs' logs, as their workspace reads them: the component's own line, and the host's
    // line about the failed run's refused fetch, both without the key.
    let run = |query: &'static str| {
        let (ada, ws) = (ada.clone(), ws.clone());
        async move {
            let (status, body) = ada
                .json(
                    Method::GET,
                    &format!("/v2/workspaces/{ws}/runs?{query}"),
                    None,
                )
                .await
                .unwrap();
            assert_eq!(status, StatusCode::OK, "{body}");
            let id = body["result"]["runs"][0]["runId"]
                .as_str()
                .unwrap()
                .to_owned();
            let (status, run) = ada
                .json(Method::GET, &format!("/v2/workspaces/{ws}/runs/{id}"), None)
                .await
                .unwrap();
            assert_eq!(status, StatusCode::OK, "{run}");
            run
        }
    };
    let fetched = run("automation=authorized-fetch").await;
    assert_eq!(fetched["status"], "success", "{fetched}");
    let lines: Vec<&str> = fetched["logs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["message"].as_str())
        .collect();
    assert!(
        lines.iter().any(|l| l.ends_with("with key REDACTED")),
        "{fetched}"
    );
    // `refract logs --automation authorized-fetch` prints the same.
    let mut printed = Vec::new();
    let args = refract::logs::Logs {
        url: platform.url.clone(),
        token: ada.token.clone().unwrap(),
        workspace: ws.clone(),
        automation: Some("authorized-fetch".into()),
        last: 10,
        follow: false,
    };
    refract::logs::logs(&args, &mut printed).await.unwrap();
    let printed = String::from_utf8(printed).unwrap();
    assert!(printed.contains(" authorized-fetch success "), "{printed}");
    assert!(printed.contains("with key REDACTED"), "{printed}");
    assert!(!printed.contains(KEY), "{printed}");
    let failed = run("automation=failing&status=error").await;
    assert_eq!(failed["status"], "error", "{failed}");
    let host = failed["logs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["source"] == "host")
        .unwrap_or_else(|| panic!("no host line: {failed}"));
    assert!(
        host["message"].as_str().unwrap().contains("fetch refused"),
        "{host}"
    );
    assert!(!failed.to_string().contains(KEY), "{failed}");
    let (status, _) = ada
        .json(
            Method::GET,
            &format!("/v2/workspaces/{ws}/runs/no-such-run"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = ada
        .json(
            Method::GET,
            &format!("/v2/workspaces/{ws}/runs?status=maybe"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    platform.stop().await.unwrap();
}
