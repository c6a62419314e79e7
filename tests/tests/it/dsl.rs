//! End-to-end: DSL automations (YAML-language `do`/`output`) saved through the automations API
//! and run by the runtime's embedded interpreter component, driven through the gateway.

use refract_tests::platform::Platform;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A webhook answered by a DSL automation: templates over the request, conditions, a call to
/// another DSL automation, a persistent `global` counter, and `$http` status and headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dsl_automation_answers_a_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(dir.path()).await.unwrap();
    let ada = platform.client().signed_up("ada@example.com").await.unwrap();
    let ws = ada.workspace("Shop").await.unwrap();
    let automations = format!("/v2/workspaces/{ws}/automations");

    let double = json!({"slug": "double", "name": "Double", "do": [
        {"set": {"name": "result", "value": "{% {{n}} * 2 %}"}}
    ], "output": {"doubled": "{{result}}"}});
    let (status, body) = ada.json(Method::POST, &automations, Some(double)).await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["kind"], "dsl");

    let quote = json!({"slug": "quote", "name": "Quote", "when": {"endpoint": true}, "do": [
        {"set": {"name": "global.calls", "value": "{% ({{global.calls}} || 0) + 1 %}"}},
        {"conditions": {
            "{{body.qty}} > 10": [{"set": {"name": "tier", "value": "bulk"}}],
            "default": [{"set": {"name": "tier", "value": "retail"}}]
        }},
        {"double": {"n": "{{body.qty}}", "output": "twice"}},
        {"set": {"name": "$http", "value": {"status": 201, "headers": {"x-tier": "{{tier}}"}}}}
    ], "output": {"sku": "{{query.sku}}", "tier": "{{tier}}", "twice": "{{twice.doubled}}", "calls": "{{global.calls}}",
        "method": "{{method}}", "line": "{{body.qty}} x {{query.sku}}"}});
    let (status, body) = ada.json(Method::POST, &automations, Some(quote)).await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");

    let mut answers = Vec::new();
    for qty in [12, 3] {
        let res = platform
            .client()
            .request(Method::POST, &format!("/v2/workspaces/{ws}/webhooks/quote?sku=A1"))
            .json(&json!({"qty": qty}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        let tier = res.headers()["x-tier"].to_str().unwrap().to_string();
        let correlation = res.headers()["x-correlation-id"].to_str().unwrap().to_string();
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["tier"], tier);
        answers.push((body, correlation));
    }
    assert_eq!(answers[0].0, json!({"sku": "A1", "tier": "bulk", "twice": 24, "calls": 1, "method": "POST", "line": "12 x A1"}));
    assert_eq!(answers[1].0, json!({"sku": "A1", "tier": "retail", "twice": 6, "calls": 2, "method": "POST", "line": "3 x A1"}));

    let executed = ada
        .wait_for_event(&ws, "runtime.automations.executed", |e| {
            e["source"]["correlationId"] == answers[0].1.as_str() && e["payload"]["slug"] == "quote"
        })
        .await
        .unwrap();
    assert_eq!(executed["payload"]["kind"], "dsl");
    assert_eq!(executed["payload"]["status"], "success", "{executed}");
    platform.stop().await.unwrap();
}

/// An event triggers a DSL automation that emits an event of its own; a DSL error fails the
/// run with its class.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_triggers_a_dsl_automation_that_emits() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(dir.path()).await.unwrap();
    let ada = platform.client().signed_up("ada@example.com").await.unwrap();
    let ws = ada.workspace("Orders").await.unwrap();
    let automation = json!({"slug": "on-order", "name": "On order", "when": {"events": ["orders.created"]}, "do": [
        {"set": {"name": "total", "value": 0}},
        {"repeat": {"on": "{{payload.lines}}", "do": [
            {"set": {"name": "total", "value": "{% {{total}} + {{item.qty}} * {{item.price}} %}"}}
        ]}},
        {"emit": {"event": "orders.priced", "payload": {"order": "{{payload.order}}", "total": "{{total}}",
            "trigger": "{{run.trigger.type}}:{{run.trigger.value}}"}}}
    ]});
    let (status, body) = ada.json(Method::POST, &format!("/v2/workspaces/{ws}/automations"), Some(automation)).await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");

    let order = json!({"order": 42, "lines": [{"qty": 2, "price": 5}, {"qty": 1, "price": 2.5}]});
    let events = json!({"events": [{"type": "orders.created", "payload": order}]});
    let (status, emitted) = ada.json(Method::POST, &format!("/v2/workspaces/{ws}/events"), Some(events)).await.unwrap();
    assert_eq!(status, StatusCode::OK, "{emitted}");
    let priced = ada.wait_for_event(&ws, "orders.priced", |e| e["payload"]["order"] == 42).await.unwrap();
    assert_eq!(priced["payload"]["total"], json!(12.5), "{priced}");
    assert_eq!(priced["payload"]["trigger"], "event:orders.created");
    assert_eq!(priced["source"]["automationSlug"], "on-order");
    assert_eq!(priced["source"]["correlationId"], emitted[0]["source"]["correlationId"]);

    // A failing instruction: the run reports its DSL error class.
    let failing = json!({"slug": "fails", "name": "Fails", "when": {"events": ["orders.cancelled"]}, "do": [
        {"emit": {"event": "not a valid type!"}}
    ]});
    let (status, body) = ada.json(Method::POST, &format!("/v2/workspaces/{ws}/automations"), Some(failing)).await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let events = json!({"events": [{"type": "orders.cancelled", "payload": {}}]});
    let (status, _) = ada.json(Method::POST, &format!("/v2/workspaces/{ws}/events"), Some(events)).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    let error = ada.wait_for_event(&ws, "error", |e| e["source"]["automationSlug"] == "fails").await.unwrap();
    assert_eq!(error["payload"]["error"], "InvalidEventError", "{error}");
    platform.stop().await.unwrap();
}

/// Invalid DSL documents are refused on save with the rule broken and the member's path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_dsl_documents_are_refused_with_their_path() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(dir.path()).await.unwrap();
    let ada = platform.client().signed_up("ada@example.com").await.unwrap();
    let ws = ada.workspace("Checks").await.unwrap();
    let automations = format!("/v2/workspaces/{ws}/automations");

    let cases = [
        (json!([{"set": {"value": 1}}]), "InvalidInstructionError", "do[0].set"),
        (json!(["emit"]), "InvalidInstructionError", "do[0]"),
        (json!([{"conditions": {"{{a}}==1": [], "default": []}}]), "InvalidExpressionSyntax", "do[0].conditions[\"{{a}}==1\"]"),
        (json!([{"repeat": {"on": "{{l}}", "do": [{"set": {"name": "x", "value": "{{a..b}}"}}]}}]), "InvalidVariableNameError",
            "do[0].repeat.do[0].set"),
    ];
    for (instructions, rule, path) in cases {
        let (status, body) =
            ada.json(Method::POST, &automations, Some(json!({"slug": "bad", "name": "Bad", "do": instructions}))).await.unwrap();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"], rule, "{body}");
        assert_eq!(body["details"][0]["path"], path, "{body}");
        assert_eq!(body["details"][0]["rule"], rule, "{body}");
    }
    let (status, _) = ada.json(Method::GET, &format!("{automations}/bad"), None).await.unwrap();
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was stored");

    // A valid automation, then a PATCH that breaks its output.
    let (status, body) =
        ada.json(Method::POST, &automations, Some(json!({"slug": "ok", "name": "Ok", "do": [], "output": "{{a}}"}))).await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) =
        ada.json(Method::PATCH, &format!("{automations}/ok"), Some(json!({"output": "{% 1 + %}"}))).await.unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["details"][0]["path"], "output");
    platform.stop().await.unwrap();
}
