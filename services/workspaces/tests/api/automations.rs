use axum::http::StatusCode;
use serde_json::json;

use crate::common::{ALICE, BOB, app, component_body, next_event};

#[tokio::test]
async fn automation_crud_and_events() -> anyhow::Result<()> {
    let app = app().await?;
    let ws = app.workspace(ALICE, json!({"name": "Flows"})).await?;
    let base = format!("/v2/workspaces/{ws}/automations");
    let mut events = app.events().await?;

    let r = app
        .call("POST", &base, Some(ALICE), Some(component_body()))
        .await?;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["kind"], "component");
    assert_eq!(r.body["component"]["status"], "missing");
    let e = next_event(&mut events).await?;
    assert_eq!(e.event_type.as_str(), "workspaces.automations.created");
    assert_eq!(e.payload["slug"], "echo");
    assert_eq!(e.payload["automation"]["when"]["endpoint"], true);

    let dsl = json!({"name": "Été: notify!", "do": [{"emit": {"event": "x"}}], "when": {"events": ["order.created"], "schedules": ["*/10 * * * * *", {"cron": "0 9 * * 1-5", "timezone": "Europe/Paris"}]}});
    let r = app.call("POST", &base, Some(ALICE), Some(dsl)).await?;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["slug"], "Ete notify");
    assert_eq!(r.body["kind"], "dsl");
    next_event(&mut events).await?;

    let r = app
        .call("GET", &format!("{base}?kind=dsl"), Some(ALICE), None)
        .await?;
    let slugs: Vec<_> = r
        .body
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| a["slug"].clone())
        .collect();
    assert_eq!(slugs, vec![json!("Ete notify")]);
    assert!(r.body[0].get("do").is_none(), "lists carry AutomationMeta");
    let r = app.call("GET", &base, Some(ALICE), None).await?;
    assert_eq!(r.body.as_array().map(Vec::len), Some(2));
    let detail = app
        .call("GET", &format!("/v2/workspaces/{ws}"), Some(ALICE), None)
        .await?;
    assert_eq!(detail.body["automations"]["echo"]["kind"], "component");

    let one = format!("{base}/echo");
    let r = app.call("GET", &one, Some(ALICE), None).await?;
    assert_eq!(r.status, StatusCode::OK);
    let r = app.call("PATCH", &one, Some(ALICE), Some(json!({"slug": "echo2", "description": "renamed", "component": {"limits": {"memoryMiB": 32}}}))).await?;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["component"]["limits"]["memoryMiB"], 32);
    let e = next_event(&mut events).await?;
    assert_eq!(e.event_type.as_str(), "workspaces.automations.updated");
    assert_eq!(e.payload["oldSlug"], "echo");
    assert_eq!(e.payload["slug"], "echo2");
    assert_eq!(
        app.call("GET", &one, Some(ALICE), None).await?.status,
        StatusCode::NOT_FOUND
    );

    // Renaming onto a used slug, and changing kind, are conflicts.
    let r = app
        .call(
            "PATCH",
            &format!("{base}/echo2"),
            Some(ALICE),
            Some(json!({"slug": "Ete notify"})),
        )
        .await?;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.body["error"], "AlreadyUsedError");
    let r = app
        .call(
            "PATCH",
            &format!("{base}/echo2"),
            Some(ALICE),
            Some(json!({"do": []})),
        )
        .await?;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.body["error"], "AutomationKindConflict");

    // Another user sees nothing of it.
    assert_eq!(
        app.call("GET", &format!("{base}/echo2"), Some(BOB), None)
            .await?
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.call("GET", &base, Some(BOB), None).await?.status,
        StatusCode::NOT_FOUND
    );

    let r = app
        .call("DELETE", &format!("{base}/echo2"), Some(ALICE), None)
        .await?;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["slug"], "echo2");
    let e = next_event(&mut events).await?;
    assert_eq!(e.event_type.as_str(), "workspaces.automations.deleted");
    assert_eq!(
        app.call("DELETE", &format!("{base}/echo2"), Some(ALICE), None)
            .await?
            .status,
        StatusCode::NOT_FOUND
    );
    Ok(())
}

#[tokio::test]
async fn bad_automations_are_400s() -> anyhow::Result<()> {
    let app = app().await?;
    let ws = app.workspace(ALICE, json!({"name": "Flows"})).await?;
    let base = format!("/v2/workspaces/{ws}/automations");
    let cases = [
        (
            json!({"name": "Both", "do": [], "component": {}}),
            "RequestValidationError",
        ),
        (json!({"name": "Neither"}), "RequestValidationError"),
        (json!({"do": []}), "RequestValidationError"),
        (
            json!({"name": "Bad slug", "slug": "a/b", "do": []}),
            "InvalidSlugError",
        ),
        (
            json!({"name": "Unknown", "do": [], "colour": 1}),
            "RequestValidationError",
        ),
        (
            json!({"name": "Empty when", "do": [], "when": {}}),
            "RequestValidationError",
        ),
        (
            json!({"name": "Bad when", "do": [], "when": {"cron": "x"}}),
            "RequestValidationError",
        ),
        (
            json!({"name": "Bad event", "do": [], "when": {"events": ["a/b"]}}),
            "RequestValidationError",
        ),
        (
            json!({"name": "Bad cron", "do": [], "when": {"schedules": ["61 * * * *"]}}),
            "InvalidScheduleError",
        ),
        (
            json!({"name": "Garbage cron", "do": [], "when": {"schedules": ["every day"]}}),
            "InvalidScheduleError",
        ),
        (
            json!({"name": "Bad zone", "do": [], "when": {"schedules": [{"cron": "0 9 * * *", "timezone": "Mars/Base"}]}}),
            "InvalidScheduleError",
        ),
        (
            json!({"name": "Big", "component": {"limits": {"memoryMiB": 4096}}}),
            "RequestValidationError",
        ),
    ];
    for (body, code) in cases {
        let r = app
            .call("POST", &base, Some(ALICE), Some(body.clone()))
            .await?;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.body);
        assert_eq!(r.body["error"], code, "{body}: {}", r.body);
    }
    assert_eq!(
        app.call("POST", &base, Some(ALICE), Some(component_body()))
            .await?
            .status,
        StatusCode::OK
    );
    let r = app
        .call("POST", &base, Some(ALICE), Some(component_body()))
        .await?;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.body["details"]["field"], "slug");
    let r = app
        .call(
            "PATCH",
            &format!("{base}/echo"),
            Some(ALICE),
            Some(json!({"when": {"schedules": ["bad"]}})),
        )
        .await?;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["error"], "InvalidScheduleError");
    let req = axum::http::Request::post(&base)
        .header("x-prismeai-user-id", ALICE)
        .header("content-type", "application/json")
        .body(axum::body::Body::from("{oops"))?;
    let r = app.send(req).await?;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["error"], "RequestValidationError");
    Ok(())
}

/// A body is read only once the caller passed the access check: a stranger's unparsable body
/// gets the same 404 as any other, a caller without identity a 401. The owner's alias bomb is a
/// 400 `DocumentTooComplex`, not an expansion.
#[tokio::test]
async fn bodies_are_read_after_the_access_check_and_within_budget() -> anyhow::Result<()> {
    let app = app().await?;
    let ws = app.workspace(ALICE, json!({"name": "Flows"})).await?;
    let base = format!("/v2/workspaces/{ws}/automations");
    let yaml = |user: Option<&str>,
                body: String|
     -> anyhow::Result<axum::http::Request<axum::body::Body>> {
        let mut req = axum::http::Request::post(&base).header("content-type", "application/yaml");
        if let Some(u) = user {
            req = req.header("x-prismeai-user-id", u);
        }
        Ok(req.body(axum::body::Body::from(body))?)
    };
    let bomb = format!(
        "name: b\na: &a [{}]\nb: [{}]\n",
        vec!["0"; 2_000].join(","),
        vec!["*a"; 400].join(",")
    );
    for body in ["name: [".to_owned(), bomb.clone()] {
        let r = app.send(yaml(Some(BOB), body.clone())?).await?;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
        let r = app.send(yaml(None, body)?).await?;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    }
    let r = app.send(yaml(Some(ALICE), bomb)?).await?;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(r.body["error"], "DocumentTooComplex");
    let r = app.send(yaml(Some(ALICE), "name: [".to_owned())?).await?;
    assert_eq!(r.body["error"], "InvalidYamlError");
    let r = app
        .send(yaml(
            Some(ALICE),
            "name: Ok\ndo:\n  - set: &s {name: x, value: 1}\n  - set: *s\n".to_owned(),
        )?)
        .await?;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    // The other bodies of the service too: a stranger's garbage is a 404, not a 400.
    for (method, path) in [
        ("PATCH", format!("/v2/workspaces/{ws}")),
        ("PATCH", format!("/v2/workspaces/{ws}/security/secrets")),
        ("PUT", format!("/v2/workspaces/{ws}/security")),
        ("POST", format!("/v2/workspaces/{ws}/versions")),
        ("POST", format!("/v2/workspaces/{ws}/apps")),
    ] {
        let req = axum::http::Request::builder()
            .method(method)
            .uri(&path)
            .header("x-prismeai-user-id", BOB)
            .header("content-type", "application/json")
            .body(axum::body::Body::from("{oops"))?;
        assert_eq!(
            app.send(req).await?.status,
            StatusCode::NOT_FOUND,
            "{method} {path}"
        );
    }
    Ok(())
}
