use axum::http::StatusCode;
use serde_json::json;

use crate::common::{ALICE, BOB, app, next_event};

#[tokio::test]
async fn create_list_get_patch_delete_with_per_user_visibility() -> anyhow::Result<()> {
    let app = app().await?;
    let mut events = app.events().await?;
    let r = app
        .call(
            "POST",
            "/v2/workspaces",
            Some(ALICE),
            Some(json!({"name": "Sales team", "slug": "sales", "labels": ["crm"]})),
        )
        .await?;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let id = r.body["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(r.body["slug"], "sales");
    assert_eq!(r.body["createdBy"], ALICE);
    let created = next_event(&mut events).await?;
    assert_eq!(created.event_type.as_str(), "workspaces.created");
    assert_eq!(
        created.source.workspace_id.as_ref().map(|w| w.as_str()),
        Some(id.as_str())
    );
    assert_eq!(
        created.source.user_id.as_ref().map(|u| u.as_str()),
        Some(ALICE)
    );
    assert_eq!(
        created.source.correlation_id.as_str(),
        "0123456789abcdef0123456789abcdef"
    );
    assert_eq!(created.payload["workspace"]["slug"], "sales");

    app.workspace(BOB, json!({"name": "Bob's place"})).await?;
    let mine = app.call("GET", "/v2/workspaces", Some(ALICE), None).await?;
    assert_eq!(mine.status, StatusCode::OK);
    let slugs: Vec<_> = mine
        .body
        .as_array()
        .into_iter()
        .flatten()
        .map(|w| w["slug"].clone())
        .collect();
    assert_eq!(slugs, vec![json!("sales")]);

    // Bob cannot see, change or delete Alice's workspace: 404, never 403.
    for (method, body) in [
        ("GET", None),
        ("PATCH", Some(json!({"name": "Mine now"}))),
        ("DELETE", None),
    ] {
        let r = app
            .call(method, &format!("/v2/workspaces/{id}"), Some(BOB), body)
            .await?;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{method}: {}", r.body);
        assert_eq!(r.body["error"], "ObjectNotFoundError");
    }
    // No identity at all: 401.
    let r = app
        .call("GET", &format!("/v2/workspaces/{id}"), None, None)
        .await?;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    let r = app
        .call("GET", &format!("/v2/workspaces/{id}"), Some(ALICE), None)
        .await?;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["automations"], json!({}));

    let r = app
        .call(
            "PATCH",
            &format!("/v2/workspaces/{id}"),
            Some(ALICE),
            Some(json!({"slug": "sales-eu", "description": "EU"})),
        )
        .await?;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["slug"], "sales-eu");
    assert_eq!(r.body["name"], "Sales team");
    let updated = next_event(&mut events).await?;
    let updated = if updated.event_type.as_str() == "workspaces.created" {
        next_event(&mut events).await?
    } else {
        updated
    };
    assert_eq!(updated.event_type.as_str(), "workspaces.updated");
    assert_eq!(updated.payload["oldSlug"], "sales");

    let r = app
        .call("DELETE", &format!("/v2/workspaces/{id}"), Some(ALICE), None)
        .await?;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["id"], id.as_str());
    let deleted = next_event(&mut events).await?;
    assert_eq!(deleted.event_type.as_str(), "workspaces.deleted");
    let r = app
        .call("GET", &format!("/v2/workspaces/{id}"), Some(ALICE), None)
        .await?;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let mine = app.call("GET", "/v2/workspaces", Some(ALICE), None).await?;
    assert_eq!(mine.body, json!([]));
    // The slug is free again.
    app.workspace(BOB, json!({"name": "Reuse", "slug": "sales-eu"}))
        .await?;
    Ok(())
}

#[tokio::test]
async fn slugs_are_checked_generated_and_unique() -> anyhow::Result<()> {
    let app = app().await?;
    for bad in ["Upper", "-dash", "api", "a_b"] {
        let r = app
            .call(
                "POST",
                "/v2/workspaces",
                Some(ALICE),
                Some(json!({"name": "Team", "slug": bad})),
            )
            .await?;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(r.body["error"], "InvalidSlugError");
        assert_eq!(r.body["details"]["slug"], bad);
    }
    let r = app
        .call(
            "POST",
            "/v2/workspaces",
            Some(ALICE),
            Some(json!({"name": "Team"})),
        )
        .await?;
    let generated = r.body["slug"].as_str().unwrap_or_default().to_string();
    assert_eq!(generated.split('-').count(), 3, "{generated}");
    let r = app
        .call(
            "POST",
            "/v2/workspaces",
            Some(BOB),
            Some(json!({"name": "Other", "slug": generated})),
        )
        .await?;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.body["error"], "AlreadyUsedError");
    assert_eq!(r.body["details"]["field"], "slug");
    // Renaming onto a taken slug is a 409 too.
    let other = app
        .workspace(BOB, json!({"name": "Other", "slug": "other"}))
        .await?;
    let r = app
        .call(
            "PATCH",
            &format!("/v2/workspaces/{other}"),
            Some(BOB),
            Some(json!({"slug": generated})),
        )
        .await?;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert_eq!(r.body["details"]["field"], "slug");
    Ok(())
}

#[tokio::test]
async fn bad_bodies_get_json_errors() -> anyhow::Result<()> {
    let app = app().await?;
    let r = app
        .call(
            "POST",
            "/v2/workspaces",
            Some(ALICE),
            Some(json!({"slug": "no-name"})),
        )
        .await?;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["error"], "RequestValidationError");
    let r = app
        .call(
            "POST",
            "/v2/workspaces",
            Some(ALICE),
            Some(json!({"name": "Team", "color": "red"})),
        )
        .await?;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["details"][0]["path"], "color");
    let r = app
        .call(
            "POST",
            "/v2/workspaces",
            Some(ALICE),
            Some(json!({"name": "<script>"})),
        )
        .await?;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let req = axum::http::Request::post("/v2/workspaces")
        .header("x-prismeai-user-id", ALICE)
        .header("content-type", "application/json")
        .body(axum::body::Body::from("{\"name\": "))?;
    let r = app.send(req).await?;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["error"], "RequestValidationError");
    let r = app
        .call("GET", "/v2/workspaces?limit=abc", Some(ALICE), None)
        .await?;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = app.call("GET", "/v2/nowhere", Some(ALICE), None).await?;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.body["error"], "ObjectNotFoundError");
    Ok(())
}

#[tokio::test]
async fn lists_page_and_filter() -> anyhow::Result<()> {
    let app = app().await?;
    for i in 0..5 {
        app.workspace(ALICE, json!({"name": format!("Team {i}"), "slug": format!("team-{i}"), "labels": if i % 2 == 0 { json!(["even"]) } else { json!([]) }})).await?;
    }
    let r = app
        .call(
            "GET",
            "/v2/workspaces?limit=2&page=1&sort=slug",
            Some(ALICE),
            None,
        )
        .await?;
    let slugs: Vec<_> = r
        .body
        .as_array()
        .into_iter()
        .flatten()
        .map(|w| w["slug"].clone())
        .collect();
    assert_eq!(slugs, vec![json!("team-2"), json!("team-3")]);
    let r = app
        .call("GET", "/v2/workspaces?labels=even", Some(ALICE), None)
        .await?;
    assert_eq!(r.body.as_array().map(Vec::len), Some(3));
    assert!(r.body[0].get("config").is_none());
    Ok(())
}

#[tokio::test]
async fn viewers_read_editors_update_only_owners_delete() -> anyhow::Result<()> {
    use refract_core::model::Role;
    let app = app().await?;
    let id = app.workspace(ALICE, json!({"name": "Shared"})).await?;
    app.share(&id, BOB, Role::Viewer).await?;
    let path = format!("/v2/workspaces/{id}");
    assert_eq!(
        app.call("GET", &path, Some(BOB), None).await?.status,
        StatusCode::OK
    );
    let listed = app.call("GET", "/v2/workspaces", Some(BOB), None).await?;
    assert_eq!(listed.body.as_array().map(Vec::len), Some(1));
    let r = app
        .call("PATCH", &path, Some(BOB), Some(json!({"name": "Bob's"})))
        .await?;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.body["error"], "ForbiddenError");
    app.share(&id, BOB, Role::Editor).await?;
    assert_eq!(
        app.call("PATCH", &path, Some(BOB), Some(json!({"name": "Bob's"})))
            .await?
            .status,
        StatusCode::OK
    );
    assert_eq!(
        app.call("DELETE", &path, Some(BOB), None).await?.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.call("DELETE", &path, Some(ALICE), None).await?.status,
        StatusCode::OK
    );
    Ok(())
}

#[tokio::test]
async fn owners_share_by_role_and_keep_one_owner() -> anyhow::Result<()> {
    let app = app().await?;
    let id = app.workspace(ALICE, json!({"name": "Shared"})).await?;
    let perms = format!("/v2/workspaces/{id}/permissions");
    let share = |role: &str| json!({"target": {"id": BOB}, "permissions": {"role": role}});
    let r = app
        .call("POST", &perms, Some(ALICE), Some(share("wizard")))
        .await?;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["error"], "UnknownRole");
    let r = app
        .call("POST", &perms, Some(ALICE), Some(share("viewer")))
        .await?;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["permissions"]["role"], "viewer");
    assert_eq!(
        app.call("GET", &format!("/v2/workspaces/{id}"), Some(BOB), None)
            .await?
            .status,
        StatusCode::OK
    );
    // A viewer cannot share; the last owner cannot leave or be downgraded.
    assert_eq!(
        app.call("POST", &perms, Some(BOB), Some(share("owner")))
            .await?
            .status,
        StatusCode::FORBIDDEN
    );
    let r = app
        .call("DELETE", &format!("{perms}/{ALICE}"), Some(ALICE), None)
        .await?;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.body["error"], "LastOwnerError");
    let demote = json!({"target": {"id": ALICE}, "permissions": {"role": "editor"}});
    assert_eq!(
        app.call("POST", &perms, Some(ALICE), Some(demote))
            .await?
            .status,
        StatusCode::CONFLICT
    );
    let r = app.call("GET", &perms, Some(ALICE), None).await?;
    assert_eq!(r.body["result"].as_array().map(Vec::len), Some(2));
    // Bob leaves by himself; then the workspace is invisible to him again.
    assert_eq!(
        app.call("DELETE", &format!("{perms}/{BOB}"), Some(BOB), None)
            .await?
            .status,
        StatusCode::OK
    );
    assert_eq!(
        app.call("GET", &format!("/v2/workspaces/{id}"), Some(BOB), None)
            .await?
            .status,
        StatusCode::NOT_FOUND
    );
    Ok(())
}
