//! End-to-end: DSL automations (YAML-language `do`/`output`) saved through the automations API
//! and run by the runtime's embedded interpreter component, driven through the gateway.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use refract_tests::platform::{Client, Platform, next_event, serve_on_loopback};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Posts an export to the import route as `content_type` (a zip archive, or the single-file
/// `runtime.yml` form as YAML) and returns the report.
async fn import(
    client: &Client,
    ws: &str,
    content_type: &str,
    export: impl Into<reqwest::Body>,
) -> Value {
    let res = client
        .request(Method::POST, &format!("/v2/workspaces/{ws}/import"))
        .header("content-type", content_type)
        .body(export)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

/// Ada, the owner of a new workspace `name`, and Bob, a viewer of it: `(ada, bob, bob's id, ws)`.
async fn owner_and_viewer(platform: &Platform, name: &str) -> (Client, Client, String, String) {
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
    let ws = ada.workspace(name).await.unwrap();
    let (_, me) = bob.json(Method::GET, "/v2/me", None).await.unwrap();
    let bob_id = me["id"].as_str().unwrap().to_string();
    let share = json!({"target": {"id": bob_id}, "permissions": {"role": "viewer"}});
    let (status, body) = ada
        .json(
            Method::POST,
            &format!("/v2/workspaces/{ws}/permissions"),
            Some(share),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    (ada, bob, bob_id, ws)
}

/// A webhook answered by a DSL automation: templates over the request, conditions, a call to
/// another DSL automation, a persistent `global` counter, and `$http` status and headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dsl_automation_answers_a_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(dir.path()).await.unwrap();
    let ada = platform
        .client()
        .signed_up("ada@example.com")
        .await
        .unwrap();
    let ws = ada.workspace("Shop").await.unwrap();
    let automations = format!("/v2/workspaces/{ws}/automations");

    let double = json!({"slug": "double", "name": "Double", "do": [
        {"set": {"name": "result", "value": "{% {{n}} * 2 %}"}}
    ], "output": {"doubled": "{{result}}"}});
    let (status, body) = ada
        .json(Method::POST, &automations, Some(double))
        .await
        .unwrap();
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
    let (status, body) = ada
        .json(Method::POST, &automations, Some(quote))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");

    let mut answers = Vec::new();
    for qty in [12, 3] {
        let res = platform
            .client()
            .request(
                Method::POST,
                &format!("/v2/workspaces/{ws}/webhooks/quote?sku=A1"),
            )
            .json(&json!({"qty": qty}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        let tier = res.headers()["x-tier"].to_str().unwrap().to_string();
        let correlation = res.headers()["x-correlation-id"]
            .to_str()
            .unwrap()
            .to_string();
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["tier"], tier);
        answers.push((body, correlation));
    }
    assert_eq!(
        answers[0].0,
        json!({"sku": "A1", "tier": "bulk", "twice": 24, "calls": 1, "method": "POST", "line": "12 x A1"})
    );
    assert_eq!(
        answers[1].0,
        json!({"sku": "A1", "tier": "retail", "twice": 6, "calls": 2, "method": "POST", "line": "3 x A1"})
    );

    let executed = ada
        .wait_for_event(&ws, "runtime.automations.executed", |e| {
            e["source"]["correlationId"] == answers[0].1.as_str() && e["payload"]["slug"] == "quote"
        })
        .await
        .unwrap();
    assert_eq!(executed["payload"]["kind"], "dsl");
    assert_eq!(executed["payload"]["status"], "success", "{executed}");

    // Bodies by content type (http-api §6.1): a urlencoded form is an object and a binary body
    // `{base64, mimetype}`; a key repeated in a form or the query gives an array.
    let echo = json!({"slug": "echo", "name": "Echo", "when": {"endpoint": true}, "do": [],
        "output": {"body": "{{body}}", "query": "{{query}}"}});
    let (status, body) = ada
        .json(Method::POST, &automations, Some(echo))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let echo = |content_type: &'static str, body: &'static [u8]| {
        let req = platform.client().request(
            Method::POST,
            &format!("/v2/workspaces/{ws}/webhooks/echo?k=1&k=2"),
        );
        async move {
            req.header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let form = echo(
        "application/x-www-form-urlencoded",
        b"text=hi+there&tag=a&tag=b",
    )
    .await;
    assert_eq!(
        form,
        json!({"body": {"text": "hi there", "tag": ["a", "b"]}, "query": {"k": ["1", "2"]}})
    );
    let binary = echo("image/png", b"\x89PNG").await;
    assert_eq!(
        binary["body"],
        json!({"base64": "iVBORw==", "mimetype": "image/png"})
    );

    // `break: {scope: all}` in a callee stops every caller up to the root (a `try` does not
    // catch it), each still computing its output; the webhook answers the root's.
    for doc in [
        json!({"slug": "inner", "name": "Inner", "do": [
            {"set": {"name": "x", "value": 1}}, {"break": {"scope": "all"}}, {"set": {"name": "x", "value": 2}}
        ], "output": {"x": "{{x}}"}}),
        json!({"slug": "middle", "name": "Middle", "do": [
            {"inner": {"output": "got"}}, {"set": {"name": "late", "value": true}}
        ], "output": {"inner": "{{got}}", "late": "{{late}}"}}),
        json!({"slug": "outer", "name": "Outer", "when": {"endpoint": true}, "do": [
            {"try": {"do": [{"middle": {"output": "got"}}], "catch": [{"set": {"name": "caught", "value": true}}]}},
            {"set": {"name": "late", "value": true}}
        ], "output": {"middle": "{{got}}", "late": "{{late}}", "caught": "{{caught}}"}}),
    ] {
        let (status, body) = ada
            .json(Method::POST, &automations, Some(doc))
            .await
            .unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let res = platform
        .client()
        .request(Method::POST, &format!("/v2/workspaces/{ws}/webhooks/outer"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let correlation = res.headers()["x-correlation-id"]
        .to_str()
        .unwrap()
        .to_string();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body, json!({"middle": {"inner": {"x": 1}}}));
    let inner = ada
        .wait_for_event(&ws, "runtime.automations.executed", |e| {
            e["source"]["correlationId"] == correlation.as_str() && e["payload"]["slug"] == "inner"
        })
        .await
        .unwrap();
    assert_eq!(
        (&inner["payload"]["status"], &inner["payload"]["break"]),
        (&json!("success"), &json!(true)),
        "a break is not a failure: {inner}"
    );
    // At the root (a test run is one), `break: {scope: all}` is a plain break.
    let (status, body) = ada
        .json(
            Method::POST,
            &format!("/v2/workspaces/{ws}/test/inner"),
            Some(json!({"payload": {}})),
        )
        .await
        .unwrap();
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"x": 1})),
        "a test run answers the output"
    );
    platform.stop().await.unwrap();
}

/// An event triggers a DSL automation that emits an event of its own; a DSL error fails the
/// run with its class.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_triggers_a_dsl_automation_that_emits() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(dir.path()).await.unwrap();
    let ada = platform
        .client()
        .signed_up("ada@example.com")
        .await
        .unwrap();
    let ws = ada.workspace("Orders").await.unwrap();
    let automation = json!({"slug": "on-order", "name": "On order", "when": {"events": ["orders.created"]}, "do": [
        {"set": {"name": "total", "value": 0}},
        {"repeat": {"on": "{{payload.lines}}", "do": [
            {"set": {"name": "total", "value": "{% {{total}} + {{item.qty}} * {{item.price}} %}"}}
        ]}},
        {"emit": {"event": "orders.priced", "payload": {"order": "{{payload.order}}", "total": "{{total}}",
            "trigger": "{{run.trigger.type}}:{{run.trigger.value}}"}}}
    ]});
    ada.create_automation(&ws, automation).await.unwrap();

    let order = json!({"order": 42, "lines": [{"qty": 2, "price": 5}, {"qty": 1, "price": 2.5}]});
    let events = json!({"events": [{"type": "orders.created", "payload": order}]});
    let (status, emitted) = ada
        .json(
            Method::POST,
            &format!("/v2/workspaces/{ws}/events"),
            Some(events),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{emitted}");
    let priced = ada
        .wait_for_event(&ws, "orders.priced", |e| e["payload"]["order"] == 42)
        .await
        .unwrap();
    assert_eq!(priced["payload"]["total"], json!(12.5), "{priced}");
    assert_eq!(priced["payload"]["trigger"], "event:orders.created");
    assert_eq!(priced["source"]["automationSlug"], "on-order");
    assert_eq!(
        priced["source"]["correlationId"],
        emitted[0]["source"]["correlationId"]
    );

    // A failing instruction: the run reports its DSL error class.
    let failing = json!({"slug": "fails", "name": "Fails", "when": {"events": ["orders.cancelled"]}, "do": [
        {"emit": {"event": "not a valid type!"}}
    ]});
    ada.create_automation(&ws, failing).await.unwrap();
    let events = json!({"events": [{"type": "orders.cancelled", "payload": {}}]});
    let (status, _) = ada
        .json(
            Method::POST,
            &format!("/v2/workspaces/{ws}/events"),
            Some(events),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    let error = ada
        .wait_for_event(&ws, "error", |e| e["source"]["automationSlug"] == "fails")
        .await
        .unwrap();
    assert_eq!(error["payload"]["error"], "InvalidEventError", "{error}");
    platform.stop().await.unwrap();
}

/// Invalid DSL documents are refused on save with the rule broken and the member's path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_dsl_documents_are_refused_with_their_path() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(dir.path()).await.unwrap();
    let ada = platform
        .client()
        .signed_up("ada@example.com")
        .await
        .unwrap();
    let ws = ada.workspace("Checks").await.unwrap();
    let automations = format!("/v2/workspaces/{ws}/automations");

    let cases = [
        (
            json!([{"set": {"value": 1}}]),
            "InvalidInstructionError",
            "do[0].set",
        ),
        (json!(["emit"]), "InvalidInstructionError", "do[0]"),
        (
            json!([{"conditions": {"{{a}}==1": [], "default": []}}]),
            "InvalidExpressionSyntax",
            "do[0].conditions[\"{{a}}==1\"]",
        ),
        (
            json!([{"repeat": {"on": "{{l}}", "do": [{"set": {"name": "x", "value": "{{a..b}}"}}]}}]),
            "InvalidVariableNameError",
            "do[0].repeat.do[0].set",
        ),
    ];
    for (instructions, rule, path) in cases {
        let (status, body) = ada
            .json(
                Method::POST,
                &automations,
                Some(json!({"slug": "bad", "name": "Bad", "do": instructions})),
            )
            .await
            .unwrap();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"], rule, "{body}");
        assert_eq!(body["details"][0]["path"], path, "{body}");
        assert_eq!(body["details"][0]["rule"], rule, "{body}");
    }
    let (status, _) = ada
        .json(Method::GET, &format!("{automations}/bad"), None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was stored");

    // A valid automation, then a PATCH that breaks its output.
    let (status, body) = ada
        .json(
            Method::POST,
            &automations,
            Some(json!({"slug": "ok", "name": "Ok", "do": [], "output": "{{a}}"})),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = ada
        .json(
            Method::PATCH,
            &format!("{automations}/ok"),
            Some(json!({"output": "{% 1 + %}"})),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["details"][0]["path"], "output");
    platform.stop().await.unwrap();
}

/// `rateLimit` counts in the cache across runs (the third call in the window is refused and
/// breaks, its state in `output`); `joinUserTopic` writes the membership the events service
/// reads, so a viewer may then emit to the topic; `createUserTopic` answers `true` the second
/// time; `date()` formats and `jsonmatch` run inside the sandbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_and_user_topics_go_through_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(dir.path()).await.unwrap();
    let (ada, bob, bob_id, ws) = owner_and_viewer(&platform, "Limits").await;
    let automations = format!("/v2/workspaces/{ws}/automations");

    let limited = json!({"slug": "limited", "name": "Limited", "when": {"endpoint": true}, "do": [
        {"rateLimit": {"name": "partner", "limit": 2, "window": 60, "consumer": "{{query.who}}", "output": "rl"}},
        {"set": {"name": "passed", "value": true}}
    ], "output": {"ok": "{{rl.ok}}", "remaining": "{{rl.remaining}}", "retry": "{% {{rl.retryAfter}} > 0 %}",
        "passed": "{% {{passed}} exists %}"}});
    let (status, body) = ada
        .json(Method::POST, &automations, Some(limited))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut seen = Vec::new();
    for who in ["x", "x", "x", "y"] {
        let (status, body) = ada
            .json(
                Method::POST,
                &format!("/v2/workspaces/{ws}/webhooks/limited?who={who}"),
                Some(json!({})),
            )
            .await
            .unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        seen.push(body);
    }
    assert_eq!(
        seen[0],
        json!({"ok": true, "remaining": 1, "retry": false, "passed": true})
    );
    assert_eq!(
        seen[1],
        json!({"ok": true, "remaining": 0, "retry": false, "passed": true})
    );
    assert_eq!(
        seen[2],
        json!({"ok": false, "remaining": 0, "retry": true, "passed": false}),
        "refused: the automation broke"
    );
    assert_eq!(
        seen[3]["ok"],
        json!(true),
        "another consumer has its own counter"
    );

    let topics = json!({"slug": "topics", "name": "Topics", "when": {"endpoint": true}, "do": [
        {"createUserTopic": {"topic": "team", "output": "created"}},
        {"joinUserTopic": {"topic": "team", "userIds": ["{{body.user}}"], "output": "joined"}},
        {"set": {"name": "when", "value": "{% date(\"2024-03-05T14:30:00Z\", \"dddd D MMMM YYYY HH:mm\", \"fr\") %}"}},
        {"set": {"name": "query", "value": {"user": {"$exists": true}}}},
        {"set": {"name": "match", "value": "{% jsonmatch({{body}}, {{query}}) %}"}}
    ], "output": {"created": "{% isObject({{created}}) %}", "joined": "{{joined[0].payload.user.id}}",
        "type": "{{joined[0].type}}", "when": "{{when}}", "match": "{{match}}"}});
    let (status, body) = ada
        .json(Method::POST, &automations, Some(topics))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");

    let to_topic =
        json!({"events": [{"type": "team.note", "payload": {}, "target": {"userTopic": "team"}}]});
    let (status, body) = bob
        .json(
            Method::POST,
            &format!("/v2/workspaces/{ws}/events"),
            Some(to_topic.clone()),
        )
        .await
        .unwrap();
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "bob has not joined yet: {body}"
    );
    let hook = format!("/v2/workspaces/{ws}/webhooks/topics");
    let (status, first) = ada
        .json(Method::POST, &hook, Some(json!({"user": bob_id})))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(
        first,
        json!({"created": true, "joined": bob_id, "type": "events.userTopics.joined",
        "when": "mardi 5 mars 2024 15:30", "match": true})
    );
    let (_, second) = ada
        .json(Method::POST, &hook, Some(json!({"user": bob_id})))
        .await
        .unwrap();
    assert_eq!(
        second["created"],
        json!(false),
        "the topic existed: createUserTopic returned true"
    );
    let (status, body) = bob
        .json(
            Method::POST,
            &format!("/v2/workspaces/{ws}/events"),
            Some(to_topic),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "bob joined through the DSL: {body}");
    let joined = ada
        .wait_for_event(&ws, "events.userTopics.joined", |e| {
            e["payload"]["user"]["id"] == bob_id.as_str()
        })
        .await
        .unwrap();
    assert_eq!(joined["payload"]["topic"], "team");
    platform.stop().await.unwrap();
}

/// A Prisme.ai export imports unchanged: a zip of `index.yml` + `automations/*.yml` (its config
/// reaching `{{config.…}}`), then runs through its webhook and its event trigger; broken files
/// are reported with their path and rule. The single-file `runtime.yml` form and a YAML body on
/// the automations API are accepted too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prisme_export_imports_and_runs() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(dir.path()).await.unwrap();
    let ada = platform
        .client()
        .signed_up("ada@example.com")
        .await
        .unwrap();
    let ws = ada.workspace("Imported").await.unwrap();

    let files = [
        (
            "shop/index.yml",
            "name: Shop\nslug: shop\nconfig:\n  value:\n    greeting: Bonjour\n",
        ),
        (
            "shop/automations/hello.yml",
            "slug: hello\nname:\n  fr: Salut\n  en: Hello\nwhen:\n  endpoint: true\ndo:\n  - conditions:\n      '{{body.name}} exists':\n        - set:\n            name: who\n            value: '{{body.name}}'\n      default:\n        - set: {name: who, value: nobody}\n  - emit:\n      event: greeted\n      payload: {who: '{{who}}'}\noutput: '{{config.greeting}} {{who}}'\n",
        ),
        (
            "shop/automations/on-greeted.yml",
            "name: On greeted\nwhen:\n  events: [greeted]\ndo:\n  - emit: {event: counted, payload: {who: '{{payload.who}}', on: yes}}\n",
        ),
        (
            "shop/automations/bad-expr.yml",
            "name: Bad\ndo:\n  - conditions:\n      '{{a}}==1': []\n",
        ),
        (
            "shop/automations/bad-cron.yml",
            "name: Cron\nwhen:\n  schedules: ['61 * * * *']\ndo: []\n",
        ),
        (
            "shop/automations/bad-slug.yml",
            "slug: 'a/b'\nname: Slash\ndo: []\n",
        ),
        ("shop/security.yml", "authorizations: {}\n"),
    ];
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, text) in files {
        zip.start_file(name, zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(text.as_bytes()).unwrap();
    }
    let archive = zip.finish().unwrap().into_inner();
    let report = import(&ada, &ws, "application/zip", archive).await;
    let mut imported: Vec<&str> = report["imported"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    imported.sort_unstable();
    assert_eq!(
        imported,
        [
            "automations/hello.yml",
            "automations/on-greeted.yml",
            // The owner importing may manage security: the export's (empty) rules replace the
            // workspace's.
            "security.yml"
        ],
        "{report}"
    );
    let errors: Vec<(String, String)> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["path"].as_str().unwrap().to_owned(),
                e["error"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for want in [
        ("automations/bad-expr.yml", "InvalidExpressionSyntax"),
        ("automations/bad-cron.yml", "InvalidScheduleError"),
        ("automations/bad-slug.yml", "InvalidSlugError"),
    ] {
        assert!(
            errors.contains(&(want.0.to_owned(), want.1.to_owned())),
            "{want:?} in {report}"
        );
    }
    let bad = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "automations/bad-expr.yml")
        .unwrap();
    assert_eq!(
        bad["details"][0]["path"], "do[0].conditions[\"{{a}}==1\"]",
        "{bad}"
    );
    assert_eq!(report["skipped"], json!([]), "{report}");

    let mut answer = (StatusCode::NOT_FOUND, String::new());
    for _ in 0..50 {
        let res = platform
            .client()
            .request(Method::POST, &format!("/v2/workspaces/{ws}/webhooks/hello"))
            .json(&json!({"name": "Ada"}))
            .send()
            .await
            .unwrap();
        answer = (res.status(), res.text().await.unwrap());
        if answer.0 != StatusCode::NOT_FOUND {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        answer,
        (StatusCode::OK, "Bonjour Ada".to_owned()),
        "a string output is sent as text"
    );
    // The export's config became the workspace's; the automation carries no copy of it.
    let (_, workspace) = ada
        .json(Method::GET, &format!("/v2/workspaces/{ws}"), None)
        .await
        .unwrap();
    assert_eq!(
        workspace["config"]["value"],
        json!({"greeting": "Bonjour"}),
        "{workspace}"
    );
    let (_, hello) = ada
        .json(
            Method::GET,
            &format!("/v2/workspaces/{ws}/automations/hello"),
            None,
        )
        .await
        .unwrap();
    assert!(hello.get("config").is_none(), "{hello}");
    let counted = ada
        .wait_for_event(&ws, "counted", |e| e["payload"]["who"] == "Ada")
        .await
        .unwrap();
    assert_eq!(
        counted["payload"]["on"], "yes",
        "YAML 1.2: yes stays a string"
    );

    // runtime.yml, posted as YAML: a second import replaces `hello`.
    let runtime = "name: Shop\nconfig:\n  value:\n    greeting: Hi\nautomations:\n  hello:\n    name: Hello\n    when: {endpoint: true}\n    do: []\n    output: '{{config.greeting}} again'\n";
    let report = import(&ada, &ws, "application/yaml", runtime).await;
    assert_eq!(
        report["imported"],
        json!(["runtime.yml#automations.hello"]),
        "{report}"
    );
    // The runtime learns of the replacement from the workspaces event: poll briefly.
    let mut answer = String::new();
    for _ in 0..50 {
        let res = platform
            .client()
            .request(Method::POST, &format!("/v2/workspaces/{ws}/webhooks/hello"))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        answer = res.text().await.unwrap();
        if answer == "Hi again" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(answer, "Hi again");

    // One automation document as YAML through the automations API, and its errors.
    let yaml =
        "slug: yaml-one\nname: From YAML\ndo:\n  - set: {name: x, value: 1}\noutput: '{{x}}'\n";
    let res = ada
        .request(Method::POST, &format!("/v2/workspaces/{ws}/automations"))
        .header("content-type", "application/yaml")
        .body(yaml)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["kind"], "dsl");
    let res = ada
        .request(Method::POST, &format!("/v2/workspaces/{ws}/automations"))
        .header("content-type", "text/yaml")
        .body("name: Broken\ndo:\n  - set: {value: 1}\n")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        (body["error"].as_str(), body["details"][0]["path"].as_str()),
        (Some("InvalidInstructionError"), Some("do[0].set"))
    );
    platform.stop().await.unwrap();
}

/// Hostile DSL: an endless loop, unbounded allocation and unbounded recursion are stopped by
/// the host's limits with a clear error, and the platform keeps answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_dsl_is_stopped_by_the_host() {
    let dir = tempfile::tempdir().unwrap();
    // A 1-second compute budget keeps the endless loop short.
    let sandbox = refract_runtime::SandboxPolicy {
        cpu_ms: 1_000,
        ..refract_runtime::SandboxPolicy::default()
    };
    let config = refract::Config {
        data_dir: dir.path().to_path_buf(),
        disable_rate_limit: true,
        sandbox,
        ..Default::default()
    };
    let platform = Platform::start_with(config).await.unwrap();
    let ada = platform
        .client()
        .signed_up("ada@example.com")
        .await
        .unwrap();
    let ws = ada.workspace("Hostile").await.unwrap();
    let automations = format!("/v2/workspaces/{ws}/automations");
    let docs = [
        json!({"slug": "recurse", "name": "Recurse", "when": {"endpoint": true}, "do": [{"recurse": {}}]}),
        json!({"slug": "grow", "name": "Grow", "when": {"endpoint": true}, "do": [
            {"set": {"name": "s", "value": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}},
            {"repeat": {"until": 64, "do": [{"set": {"name": "s", "value": "{{s}}{{s}}"}}]}}
        ]}),
        json!({"slug": "spin", "name": "Spin", "when": {"endpoint": true}, "do": [
            {"repeat": {"until": 10000000, "do": [{"repeat": {"until": 10000000, "do": [{"set": {"name": "x", "value": "{% 1 + 1 %}"}}]}}]}}
        ]}),
    ];
    for doc in docs {
        let (status, body) = ada
            .json(Method::POST, &automations, Some(doc))
            .await
            .unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let hook = |slug: &str| format!("/v2/workspaces/{ws}/webhooks/{slug}");
    let (status, body) = ada
        .json(Method::POST, &hook("recurse"), Some(json!({})))
        .await
        .unwrap();
    assert!(
        status.is_client_error() || status.is_server_error(),
        "{status} {body}"
    );
    assert!(
        body.to_string().contains("TooManyCall") || body.to_string().contains("depth"),
        "recursion: {body}"
    );
    let (status, body) = ada
        .json(Method::POST, &hook("grow"), Some(json!({})))
        .await
        .unwrap();
    assert!(status.is_server_error(), "{status} {body}");
    assert!(
        body.to_string().to_lowercase().contains("memory"),
        "allocation: {body}"
    );
    let (status, body) = ada
        .json(Method::POST, &hook("spin"), Some(json!({})))
        .await
        .unwrap();
    assert!(status.is_server_error(), "{status} {body}");
    let text = body.to_string().to_lowercase();
    assert!(
        text.contains("cpu") || text.contains("time") || text.contains("limit"),
        "loop: {body}"
    );
    let (status, _) = ada.json(Method::GET, &automations, None).await.unwrap();
    assert_eq!(status, StatusCode::OK, "the platform still answers");
    platform.stop().await.unwrap();
}

/// `authorizations.action` (http-api §9.1): an automation with an action runs only for owners,
/// editors and principals a rule allows to execute it, whatever the trigger: a webhook, an
/// event, a call from a public automation. `validateArguments` checks a run's input against
/// its `arguments` first. Both come through the automations API and a Prisme.ai import.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_and_argument_validation_guard_every_trigger() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(dir.path()).await.unwrap();
    let (ada, bob, _, ws) = owner_and_viewer(&platform, "Refunds").await;
    let automations = format!("/v2/workspaces/{ws}/automations");

    let guarded = |slug: &str, when: Value, order: &str| {
        json!({"slug": slug, "name": slug, "when": when, "authorizations": {"action": "refund"}, "do": [
            {"emit": {"event": "refund.settled", "payload": {"order": order}}}
        ], "output": {"refunded": order}})
    };
    for automation in [
        guarded("refund", json!({"endpoint": true}), "{{body.order}}"),
        guarded(
            "on-refund",
            json!({"events": ["refund.asked"]}),
            "{{payload.order}}",
        ),
        json!({"slug": "front", "name": "Front", "when": {"endpoint": true}, "do": [
            {"refund": {"body": "{{body}}", "output": "answer"}}
        ], "output": "{{answer}}"}),
    ] {
        let (status, body) = ada
            .json(Method::POST, &automations, Some(automation))
            .await
            .unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (_, saved) = ada
        .json(Method::GET, &format!("{automations}/refund"), None)
        .await
        .unwrap();
    assert_eq!(saved["authorizations"], json!({"action": "refund"}));

    let webhook = |client: &Client, endpoint: &str, key: Option<&str>, order: u32| {
        let mut req = client
            .request(
                Method::POST,
                &format!("/v2/workspaces/{ws}/webhooks/{endpoint}"),
            )
            .json(&json!({"order": order}));
        if let Some(key) = key {
            req = req.header("x-prismeai-api-key", key);
        }
        async move {
            let res = req.send().await.unwrap();
            (
                res.status(),
                res.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    // Strangers, viewers, and a public automation calling it are refused; the owner is not.
    let anonymous = platform.client();
    let (status, body) = webhook(&anonymous, "refund", None, 1).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("ForbiddenError")),
        "{body}"
    );
    assert_eq!(
        webhook(&bob, "refund", None, 2).await.0,
        StatusCode::FORBIDDEN
    );
    let (status, body) = webhook(&anonymous, "front", None, 3).await;
    assert_eq!(
        (status, body["details"]["automationSlug"].as_str()),
        (StatusCode::FORBIDDEN, Some("front")),
        "{body}"
    );
    assert_eq!(
        webhook(&ada, "refund", None, 4).await,
        (StatusCode::OK, json!({"refunded": 4}))
    );
    assert_eq!(
        webhook(&ada, "front", None, 5).await,
        (StatusCode::OK, json!({"refunded": 5}))
    );

    // A rule naming the action opens it to an API key, and to the calls its runs make.
    let key = |rules: Value| {
        let ada = ada.clone();
        let path = format!("/v2/workspaces/{ws}/security/apikeys");
        async move {
            let (status, body) = ada
                .json(
                    Method::POST,
                    &path,
                    Some(json!({"name": "k", "rules": rules})),
                )
                .await
                .unwrap();
            assert_eq!(status, StatusCode::OK, "{body}");
            body["apiKey"].as_str().unwrap().to_owned()
        }
    };
    let refunder = key(json!([{"action": "execute", "subject": "automations", "conditions": {"authorizations.action": "refund"}}])).await;
    let other = key(json!([{"action": "execute", "subject": "automations", "conditions": {"authorizations.action": "close"}}])).await;
    assert_eq!(
        webhook(&anonymous, "refund", Some(&refunder), 6).await,
        (StatusCode::OK, json!({"refunded": 6}))
    );
    assert_eq!(
        webhook(&anonymous, "front", Some(&refunder), 7).await,
        (StatusCode::OK, json!({"refunded": 7}))
    );
    assert_eq!(
        webhook(&anonymous, "refund", Some(&other), 8).await.0,
        StatusCode::FORBIDDEN
    );

    // Events: the emitting user is the principal. Bob's event fails the run; Ada's runs it.
    let emit = |client: &Client, order: u32| {
        let events = json!({"events": [{"type": "refund.asked", "payload": {"order": order}}]});
        let (client, path) = (client.clone(), format!("/v2/workspaces/{ws}/events"));
        async move {
            let (status, body) = client
                .json(Method::POST, &path, Some(events))
                .await
                .unwrap();
            assert_eq!(status, StatusCode::OK, "{body}");
            body[0]["source"]["correlationId"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let bobs = emit(&bob, 9).await;
    let error = ada
        .wait_for_event(&ws, "error", |e| {
            e["source"]["correlationId"] == bobs.as_str()
        })
        .await
        .unwrap();
    assert_eq!(
        (
            error["payload"]["error"].as_str(),
            error["source"]["automationSlug"].as_str()
        ),
        (Some("ForbiddenError"), Some("on-refund")),
        "{error}"
    );
    emit(&ada, 10).await;
    ada.wait_for_event(&ws, "refund.settled", |e| e["payload"]["order"] == 10)
        .await
        .unwrap();

    // validateArguments: the input is checked against `arguments` before the run.
    let typed = json!({"slug": "typed", "name": "Typed", "when": {"endpoint": true}, "validateArguments": true,
        "arguments": {"body": {"type": "object", "properties": {"order": {"type": "number", "minimum": 1, "required": true}}}},
        "do": [], "output": {"ok": "{{body.order}}"}});
    let (status, body) = ada
        .json(Method::POST, &automations, Some(typed))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["validateArguments"], true);
    let (status, body) = webhook(&anonymous, "typed", None, 0).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("InvalidArgumentsError")),
        "{body}"
    );
    assert_eq!(
        body["details"]["details"][0]["instancePath"], "/body/order",
        "{body}"
    );
    assert_eq!(
        webhook(&anonymous, "typed", None, 11).await,
        (StatusCode::OK, json!({"ok": 11}))
    );

    // Bad values are refused on save with the member's path.
    for (bad, path) in [
        (
            json!({"authorizations": {"action": ""}}),
            "authorizations.action",
        ),
        (json!({"authorizations": {"role": "x"}}), "authorizations"),
        (json!({"validateArguments": "yes"}), "validateArguments"),
        (json!({"arguments": {"n": {"type": "nope"}}}), "arguments"),
    ] {
        let (status, body) = ada
            .json(Method::PATCH, &format!("{automations}/typed"), Some(bad))
            .await
            .unwrap();
        assert_eq!(
            (status, body["details"][0]["path"].as_str()),
            (StatusCode::BAD_REQUEST, Some(path)),
            "{body}"
        );
    }

    // A Prisme.ai export carrying both imports unchanged and is enforced.
    let runtime = "name: Refunds\nautomations:\n  imported:\n    name: Imported\n    when: {endpoint: true}\n    authorizations: {action: refund}\n    validateArguments: true\n    arguments:\n      body: {type: object}\n    do: []\n    output: {done: true}\n";
    let report = import(&ada, &ws, "application/yaml", runtime).await;
    assert_eq!(
        report["imported"],
        json!(["runtime.yml#automations.imported"]),
        "{report}"
    );
    let mut answer = (StatusCode::NOT_FOUND, Value::Null);
    for _ in 0..50 {
        answer = webhook(&anonymous, "imported", None, 12).await;
        if answer.0 != StatusCode::NOT_FOUND {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(answer.0, StatusCode::FORBIDDEN, "{answer:?}");
    assert_eq!(
        webhook(&anonymous, "imported", Some(&refunder), 12).await,
        (StatusCode::OK, json!({"done": true}))
    );
    platform.stop().await.unwrap();
}

/// The `user` scope's computed fields and identity switching (automation-dsl §5.2, §5.5):
/// `user.email`/`role` come from the account and the workspace; `set user.id` continues the run as another user,
/// with that user's `user` scope and events carrying that user; `set session.id` continues as a
/// known login session and its user, or as a session and user of that id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dsl_run_switches_identity() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(dir.path()).await.unwrap();
    let ada = platform
        .client()
        .signed_up("ada@example.com")
        .await
        .unwrap();
    let ws = ada.workspace("Loyalty").await.unwrap();
    let (_, me) = ada.json(Method::GET, "/v2/me", None).await.unwrap();
    let ada_id = me["id"].as_str().unwrap().to_owned();
    let automations = format!("/v2/workspaces/{ws}/automations");
    for automation in [
        json!({"slug": "as-user", "name": "As user", "when": {"endpoint": true}, "do": [
            {"set": {"name": "user.id", "value": "{{body.user}}"}},
            {"set": {"name": "user.points", "value": "{% ({{user.points}} || 0) + 1 %}"}},
            {"emit": {"event": "points.added", "payload": {"points": "{{user.points}}"}}}
        ], "output": {"user": "{{user.id}}", "session": "{{session.id}}", "points": "{{user.points}}"}}),
        json!({"slug": "as-session", "name": "As session", "when": {"endpoint": true}, "do": [
            {"set": {"name": "session.id", "value": "{{body.session}}"}}
        ], "output": {"user": "{{user.id}}", "session": "{{session.id}}"}}),
        json!({"slug": "mine", "name": "Mine", "when": {"endpoint": true}, "do": [],
            "output": {"user": "{{user.id}}", "points": "{% {{user.points}} || 0 %}", "email": "{{user.email}}", "role": "{{user.role}}"}}),
    ] {
        let (status, body) = ada
            .json(Method::POST, &automations, Some(automation))
            .await
            .unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let hook = |slug: &str, body: Value| {
        let req = ada
            .request(
                Method::POST,
                &format!("/v2/workspaces/{ws}/webhooks/{slug}"),
            )
            .json(&body);
        async move {
            let res = req.send().await.unwrap();
            let correlation = res.headers()["x-correlation-id"]
                .to_str()
                .unwrap()
                .to_owned();
            (res.json::<Value>().await.unwrap(), correlation)
        }
    };
    let (first, _) = hook("as-user", json!({"user": "bob"})).await;
    assert_eq!(first, json!({"user": "bob", "session": "bob", "points": 1}));
    let (second, correlation) = hook("as-user", json!({"user": "bob"})).await;
    assert_eq!(
        second["points"], 2,
        "bob's own user scope, kept between runs"
    );
    let added = ada
        .wait_for_event(&ws, "points.added", |e| {
            e["source"]["correlationId"] == correlation.as_str()
        })
        .await
        .unwrap();
    assert_eq!(
        (
            added["source"]["userId"].as_str(),
            added["source"]["sessionId"].as_str()
        ),
        (Some("bob"), Some("bob")),
        "{added}"
    );
    // Ada's own scope was never touched; her computed fields come from her account and role.
    let (mine, correlation) = hook("mine", json!({})).await;
    assert_eq!(
        mine,
        json!({"user": ada_id, "points": 0, "email": "ada@example.com", "role": "owner"})
    );

    // Ada's login session, as the platform knows it, switches to Ada; an unknown one is its own user.
    let executed = ada
        .wait_for_event(&ws, "runtime.automations.executed", |e| {
            e["source"]["correlationId"] == correlation.as_str()
        })
        .await
        .unwrap();
    let session = executed["source"]["sessionId"]
        .as_str()
        .expect("a logged-in run has a session")
        .to_owned();
    let (known, _) = hook("as-session", json!({"session": session})).await;
    assert_eq!(known, json!({"user": ada_id, "session": session}));
    let (unknown, _) = hook("as-session", json!({"session": "kiosk-7"})).await;
    assert_eq!(unknown, json!({"user": "kiosk-7", "session": "kiosk-7"}));
    platform.stop().await.unwrap();
}

/// The `config` scope (automation-dsl §5.2): the workspace's `config.value` overlaid by the
/// automation's own `config`, live after a change, which emits `workspaces.configured`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_see_the_workspace_config() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(dir.path()).await.unwrap();
    let ada = platform
        .client()
        .signed_up("ada@example.com")
        .await
        .unwrap();
    let ws = ada.workspace("Configured").await.unwrap();
    let configure = |value: Value| {
        let (ada, path) = (ada.clone(), format!("/v2/workspaces/{ws}"));
        async move {
            let (status, body) = ada
                .json(
                    Method::PATCH,
                    &path,
                    Some(json!({"config": {"value": value}})),
                )
                .await
                .unwrap();
            assert_eq!(status, StatusCode::OK, "{body}");
        }
    };
    configure(json!({"greeting": "Hello", "shared": 1})).await;
    let automations = format!("/v2/workspaces/{ws}/automations");
    for automation in [
        json!({"slug": "plain", "name": "Plain", "when": {"endpoint": true}, "do": [],
            "output": {"greeting": "{{config.greeting}}", "shared": "{{config.shared}}"}}),
        json!({"slug": "own", "name": "Own", "when": {"endpoint": true}, "config": {"shared": 2}, "do": [],
            "output": {"greeting": "{{config.greeting}}", "shared": "{{config.shared}}"}}),
        json!({"slug": "whoami", "name": "Who am I", "when": {"endpoint": true}, "do": [
            {"set": {"name": "$workspace.name", "value": "overwritten?"}}
        ], "output": {"id": "{{$workspace.id}}", "name": "{{$workspace.name}}", "greeting": "{{$workspace.config.value.greeting}}"}}),
        json!({"slug": "on-configured", "name": "On configured", "when": {"events": ["workspaces.configured"]}, "do": [
            {"emit": {"event": "config.seen", "payload": {"was": "{{payload.oldConfig.value.greeting}}", "now": "{{payload.config.value.greeting}}"}}}
        ]}),
    ] {
        let (status, body) = ada
            .json(Method::POST, &automations, Some(automation))
            .await
            .unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let hook = |slug: &'static str| {
        let req = platform.client().request(
            Method::POST,
            &format!("/v2/workspaces/{ws}/webhooks/{slug}"),
        );
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    assert_eq!(
        hook("plain").await,
        json!({"greeting": "Hello", "shared": 1})
    );
    assert_eq!(
        hook("own").await,
        json!({"greeting": "Hello", "shared": 2}),
        "the automation's own config wins"
    );
    assert_eq!(
        hook("whoami").await,
        json!({"id": ws, "name": "Configured", "greeting": "Hello"}),
        "`$workspace` is the running workspace's document, read-only"
    );

    configure(json!({"greeting": "Bonjour", "shared": 1})).await;
    let seen = ada
        .wait_for_event(&ws, "config.seen", |_| true)
        .await
        .unwrap();
    assert_eq!(seen["payload"], json!({"was": "Hello", "now": "Bonjour"}));
    let mut answer = Value::Null;
    for _ in 0..50 {
        answer = hook("plain").await;
        if answer["greeting"] == "Bonjour" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(answer, json!({"greeting": "Bonjour", "shared": 1}));

    // A run writes the config (WIT 0.1.2 `set-config`): stored in the workspace, seen by later
    // runs, announced like a PATCH.
    let remember = json!({"slug": "remember", "name": "Remember", "when": {"endpoint": true}, "do": [
        {"set": {"name": "config.greeting", "value": "{{body.greeting}}"}},
        {"delete": {"name": "config.shared"}}
    ], "output": "{{config}}"});
    let (status, body) = ada
        .json(Method::POST, &automations, Some(remember))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let res = platform
        .client()
        .request(
            Method::POST,
            &format!("/v2/workspaces/{ws}/webhooks/remember"),
        )
        .json(&json!({"greeting": "Hej"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"greeting": "Hej"}),
        "the run sees its own write"
    );
    let (_, workspace) = ada
        .json(Method::GET, &format!("/v2/workspaces/{ws}"), None)
        .await
        .unwrap();
    assert_eq!(
        workspace["config"]["value"],
        json!({"greeting": "Hej"}),
        "{workspace}"
    );
    assert_eq!(hook("plain").await, json!({"greeting": "Hej"}));
    // One event per write: the greeting's, then the removal's.
    ada.wait_for_event(&ws, "config.seen", |e| {
        e["payload"] == json!({"was": "Bonjour", "now": "Hej"})
    })
    .await
    .unwrap();
    platform.stop().await.unwrap();
}

/// An endpoint answering `{"n": n}` at `/slow/{n}` 300 ms after each request arrived; the times
/// the requests arrived.
async fn slow_api() -> (String, Arc<Mutex<Vec<Instant>>>) {
    let arrived = Arc::new(Mutex::new(Vec::new()));
    let seen = arrived.clone();
    let app = axum::Router::new().route(
        "/slow/{n}",
        axum::routing::get(move |axum::extract::Path(n): axum::extract::Path<u32>| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(Instant::now());
                tokio::time::sleep(Duration::from_millis(300)).await;
                axum::Json(json!({"n": n}))
            }
        }),
    );
    let addr = serve_on_loopback(app).await.unwrap();
    (format!("http://{addr}"), arrived)
}

/// `all` through the public API: three branches that each fetch an endpoint answering after
/// 300 ms, and a fourth waiting 300 ms for an event, end together in about 300 ms, not 1.2 s;
/// a wait in one branch catches the event a later branch emits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_branches_fetch_and_wait_together() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start_reaching_loopback(dir.path()).await.unwrap();
    let ada = platform
        .client()
        .signed_up("ada@example.com")
        .await
        .unwrap();
    let ws = ada.workspace("Fan-out").await.unwrap();
    let (api, arrived) = slow_api().await;
    let arrivals = arrived.clone();
    let fetch = |n: u32, output: &str| json!({"fetch": {"url": format!("{api}/slow/{n}"), "output": output}});
    let automation = json!({"slug": "fan-out", "name": "Fan out", "when": {"endpoint": true}, "do": [
        {"all": [
            fetch(1, "a"),
            fetch(2, "b"),
            {"conditions": {"default": [fetch(3, "c"), {"set": {"name": "after", "value": "{{c.n}}"}}]}},
            {"wait": {"oneOf": [{"event": "never.sent"}], "timeout": 0.3, "output": "none"}},
            {"wait": {"oneOf": [{"event": "fan.reply"}], "timeout": 5, "output": "reply"}},
            {"emit": {"event": "fan.reply", "payload": {"n": 4}}}
        ]}
    ], "output": {"sum": "{% {{a.n}} + {{b.n}} + {{after}} %}", "timedOut": "{% !{{none}} %}",
        "reply": "{{reply.payload.n}}"}});
    ada.create_automation(&ws, automation).await.unwrap();
    let run = || async {
        let started = Instant::now();
        let (status, answer) = ada
            .json(
                Method::POST,
                &format!("/v2/workspaces/{ws}/webhooks/fan-out"),
                Some(json!({})),
            )
            .await
            .unwrap();
        assert_eq!(status, StatusCode::OK, "{answer}");
        (answer, started.elapsed())
    };
    // The first run compiles the interpreter; the second is timed.
    run().await;
    arrived.lock().unwrap().clear();
    let (answer, took) = run().await;
    assert_eq!(
        answer,
        json!({"sum": 6, "timedOut": true, "reply": 4}),
        "a wait started in one branch catches what a later branch emits"
    );
    let arrived = arrived.lock().unwrap().clone();
    assert_eq!(arrived.len(), 3);
    let spread = *arrived.iter().max().unwrap() - *arrived.iter().min().unwrap();
    assert!(
        spread < Duration::from_millis(300),
        "the three requests were all sent before the first was answered (spread {spread:?})"
    );
    eprintln!("all: three 300 ms fetches and a 300 ms wait answered in {took:?}");
    assert!(
        took < Duration::from_millis(900),
        "one after the other they take 1.2 s; together about 300 ms (took {took:?})"
    );

    // `repeat` with `batch`: two 300 ms fetches at a time, 200 ms apart, each iteration
    // keeping its own item across its fetch.
    let batched = json!({"slug": "batched", "name": "Batched", "when": {"endpoint": true}, "do": [
        {"repeat": {"on": [1, 2, 3, 4], "batch": {"size": 2, "interval": 200}, "do": [
            {"fetch": {"url": format!("{api}/slow/{{{{item}}}}"), "output": "got"}},
            {"set": {"name": "pairs[]", "value": "{{item}}={{got.n}}"}}
        ]}}
    ], "output": "{{pairs}}"});
    ada.create_automation(&ws, batched).await.unwrap();
    arrivals.lock().unwrap().clear();
    let (status, answer) = ada
        .json(
            Method::POST,
            &format!("/v2/workspaces/{ws}/webhooks/batched"),
            Some(json!({})),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{answer}");
    let mut pairs: Vec<String> = serde_json::from_value(answer).unwrap();
    // Within a batch, the iterations end in the order their fetches are answered.
    pairs.sort();
    assert_eq!(pairs, ["1=1", "2=2", "3=3", "4=4"]);
    let arrived = arrivals.lock().unwrap().clone();
    assert_eq!(arrived.len(), 4);
    let apart = |a: usize, b: usize| arrived[b].duration_since(arrived[a]);
    assert!(
        apart(0, 1) < Duration::from_millis(250),
        "a batch's fetches start together"
    );
    assert!(
        apart(2, 3) < Duration::from_millis(250),
        "a batch's fetches start together"
    );
    assert!(
        apart(0, 2) >= Duration::from_millis(450),
        "the next batch starts after the first one ended and the 200 ms pause ({:?})",
        apart(0, 2)
    );
}

/// `$http` `chunk` through the public API: the client reads the first event while the run is
/// still waiting for an event only the client can send, then a keep-alive during the silence
/// it asked for, then the next chunk and the output last. A run that fails after it started
/// streaming ends its answer with its error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_answer_reaches_the_client_while_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(dir.path()).await.unwrap();
    let ada = platform
        .client()
        .signed_up("ada@example.com")
        .await
        .unwrap();
    let ws = ada.workspace("Streams").await.unwrap();
    let automations = [
        json!({"slug": "tokens", "name": "Tokens", "when": {"endpoint": true}, "do": [
            {"set": {"name": "$http", "value": {"status": 201, "headers": {"x-model": "small"}, "sseKeepAlive": 5000}}},
            {"set": {"name": "$http", "value": {"chunk": {"token": "Hel"}}}},
            {"wait": {"oneOf": [{"event": "go.on"}], "timeout": 20, "output": "go"}},
            {"set": {"name": "$http", "value": {"chunk": {"token": "{{go.payload.next}}"}}}}
        ], "output": {"done": true}}),
        json!({"slug": "half", "name": "Half", "when": {"endpoint": true}, "do": [
            {"set": {"name": "$http", "value": {"chunk": "first"}}},
            {"fetch": {"url": "{{nowhere}}"}}
        ]}),
    ];
    for automation in automations {
        ada.create_automation(&ws, automation).await.unwrap();
    }

    let mut res = ada
        .request(
            Method::POST,
            &format!("/v2/workspaces/{ws}/webhooks/tokens"),
        )
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    assert_eq!(res.headers()["x-model"], "small");
    let mut buf = String::new();
    assert_eq!(
        next_event(&mut res, &mut buf).await,
        Some(json!({"token": "Hel"})),
        "the first chunk arrives while the run waits for go.on"
    );
    let silent = Instant::now();
    assert_eq!(
        next_event(&mut res, &mut buf).await,
        Some(json!({"keepAlive": true}))
    );
    assert!(
        silent.elapsed() >= Duration::from_secs(4),
        "after the 5 s of silence asked for"
    );
    let (status, body) = ada
        .json(
            Method::POST,
            &format!("/v2/workspaces/{ws}/events"),
            Some(json!({"events": [{"type": "go.on", "payload": {"next": "lo"}}]})),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut rest = Vec::new();
    while let Some(event) = next_event(&mut res, &mut buf).await {
        if event != json!({"keepAlive": true}) {
            rest.push(event);
        }
    }
    assert_eq!(rest, vec![json!({"token": "lo"}), json!({"done": true})]);

    let mut res = ada
        .request(Method::POST, &format!("/v2/workspaces/{ws}/webhooks/half"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let mut buf = String::new();
    assert_eq!(next_event(&mut res, &mut buf).await, Some(json!("first")));
    let error = next_event(&mut res, &mut buf)
        .await
        .expect("the error event");
    assert_eq!(error["error"], "AutomationError", "{error}");
    assert_eq!(
        error["details"]["error"], "InvalidInstructionError",
        "{error}"
    );
    assert_eq!(next_event(&mut res, &mut buf).await, None);
}
