use axum::http::StatusCode;
use refract_core::model::Role;
use serde_json::json;

use crate::common::{ALICE, BOB, app};

#[tokio::test]
async fn secrets_are_write_only_and_for_owners() -> anyhow::Result<()> {
    let app = app().await?;
    let ws = app.workspace(ALICE, json!({"name": "Secrets"})).await?;
    let path = format!("/v2/workspaces/{ws}/security/secrets");
    let r = app
        .call(
            "PATCH",
            &path,
            Some(ALICE),
            Some(json!({"API_TOKEN": {"value": "s3cret", "description": "CRM"}})),
        )
        .await?;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["API_TOKEN"]["description"], "CRM");
    assert!(!r.body.to_string().contains("s3cret"));
    let r = app.call("GET", &path, Some(ALICE), None).await?;
    assert!(r.body.get("API_TOKEN").is_some());
    assert!(!r.body.to_string().contains("s3cret"));

    let r = app
        .call(
            "PUT",
            &path,
            Some(ALICE),
            Some(json!({"OTHER": {"value": 1}})),
        )
        .await?;
    let names: Vec<_> = r
        .body
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    assert_eq!(names, vec!["OTHER".to_string()]);
    let r = app
        .call(
            "PATCH",
            &path,
            Some(ALICE),
            Some(json!({"bad-name": {"value": 1}})),
        )
        .await?;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = app
        .call(
            "PATCH",
            &path,
            Some(ALICE),
            Some(json!({"prismeai_ratelimit": {"value": "1/1"}})),
        )
        .await?;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    app.share(&ws, BOB, Role::Editor).await?;
    assert_eq!(
        app.call("GET", &path, Some(BOB), None).await?.status,
        StatusCode::FORBIDDEN
    );

    let r = app
        .call("DELETE", &format!("{path}/OTHER"), Some(ALICE), None)
        .await?;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["secretName"], "OTHER");
    assert_eq!(
        app.call("DELETE", &format!("{path}/OTHER"), Some(ALICE), None)
            .await?
            .status,
        StatusCode::NOT_FOUND
    );
    Ok(())
}
