//! Personal access tokens, the CSRF rule of cookie sessions, workspace API keys and the superadmin role.

use std::sync::Arc;

use anyhow::{Context, Result};
use axum::body::Body;
use axum::http::StatusCode;
use refract_broker::{BrokerConfig, MemoryBroker};
use refract_gateway::Config;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn personal_access_tokens_are_shown_once_used_and_revoked() -> Result<()> {
    let gw = Gw::new()?;
    let login = gw.login("ann@example.org").await?;
    let auth = bearer(&login.token());
    let expires = (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339();
    let mut req = post_json(
        "/v2/user/accessTokens",
        json!({"name": "ci", "expiresAt": expires}),
    );
    req.headers_mut().insert("authorization", auth.parse()?);
    let created = gw.send(req).await?;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let pat = created.body["token"]
        .as_str()
        .context("token shown at creation")?
        .to_string();
    assert!(pat.starts_with("at:"));
    let id = created.body["id"].as_str().context("id")?.to_string();
    assert_eq!(created.body["tokenHint"], &pat[pat.len() - 4..]);

    let list = gw
        .send(request(
            "GET",
            "/v2/user/accessTokens",
            &[("authorization", &auth)],
            Body::empty(),
        ))
        .await?;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.body.as_array().map(Vec::len), Some(1));
    assert_eq!(list.body[0]["id"], id.as_str());
    assert!(list.body[0].get("token").is_none() && !list.body.to_string().contains(&pat));

    // The PAT acts as its user, with session id at_<id>, on backends and /v2/me.
    let pat_auth = bearer(&pat);
    let r = gw
        .send(request(
            "POST",
            "/v2/workspaces",
            &[("authorization", &pat_auth)],
            Body::from("{}"),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["headers"]["x-prismeai-user-id"], login.body["id"]);
    assert_eq!(
        r.body["headers"]["x-prismeai-session-id"],
        format!("at_{id}")
    );
    let me = gw
        .send(request(
            "GET",
            "/v2/me",
            &[("authorization", &pat_auth)],
            Body::empty(),
        ))
        .await?;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["id"], login.body["id"]);

    // ... but not on credential routes.
    let r = gw
        .send(request(
            "GET",
            "/v2/user/accessTokens",
            &[("authorization", &pat_auth)],
            Body::empty(),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.body["error"], "ForbiddenError");
    let r = gw
        .send(request(
            "POST",
            "/v2/logout",
            &[("authorization", &pat_auth)],
            Body::empty(),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // Another user cannot revoke it.
    let other = bearer(&gw.login("bob@example.org").await?.token());
    let path = format!("/v2/user/accessTokens/{id}");
    let r = gw
        .send(request(
            "DELETE",
            &path,
            &[("authorization", &other)],
            Body::empty(),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let r = gw
        .send(request(
            "DELETE",
            &path,
            &[("authorization", &auth)],
            Body::empty(),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["id"], id.as_str());
    assert!(r.body.get("token").is_none());
    let r = gw
        .send(request(
            "POST",
            "/v2/workspaces",
            &[("authorization", &pat_auth)],
            Body::from("{}"),
        ))
        .await?;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "a revoked token stops working"
    );
    let r = gw
        .send(request(
            "DELETE",
            &path,
            &[("authorization", &auth)],
            Body::empty(),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    for bad in [
        (chrono::Utc::now() - chrono::Duration::days(1)).to_rfc3339(),
        (chrono::Utc::now() + chrono::Duration::days(400)).to_rfc3339(),
        "tomorrow".to_string(),
    ] {
        let mut req = post_json(
            "/v2/user/accessTokens",
            json!({"name": "ci", "expiresAt": bad}),
        );
        req.headers_mut().insert("authorization", auth.parse()?);
        let r = gw.send(req).await?;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(r.body["details"][0]["path"], "expiresAt");
    }
    Ok(())
}

#[tokio::test]
async fn cookie_sessions_need_the_csrf_token_to_write() -> Result<()> {
    let gw = Gw::new()?;
    let login = gw.login("ann@example.org").await?;
    let cookie = format!("access-token={}", login.cookie());
    let csrf = login.header("x-prismeai-csrf-token").to_string();

    let me = gw
        .send(request(
            "GET",
            "/v2/me",
            &[("cookie", &cookie)],
            Body::empty(),
        ))
        .await?;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.header("x-prismeai-csrf-token"), csrf);

    let r = gw
        .send(request(
            "POST",
            "/v2/workspaces",
            &[("cookie", &cookie)],
            Body::from("{}"),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.body["error"], "CSRFError");
    let r = gw
        .send(request(
            "POST",
            "/v2/workspaces",
            &[("cookie", &cookie), ("x-prismeai-csrf-token", "wrong")],
            Body::from("{}"),
        ))
        .await?;
    assert_eq!(r.body["error"], "CSRFError");
    let r = gw
        .send(request(
            "POST",
            "/v2/workspaces",
            &[("cookie", &cookie), ("x-prismeai-csrf-token", &csrf)],
            Body::from("{}"),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.body["headers"]["x-prismeai-csrf-token"],
        csrf.as_str(),
        "passes through"
    );
    let r = gw
        .send(request(
            "GET",
            "/v2/workspaces",
            &[("cookie", &cookie)],
            Body::empty(),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::OK, "reads need no token");

    // A cross-site page cannot write with the cookie, even with a leaked token.
    let evil = [
        ("cookie", cookie.as_str()),
        ("x-prismeai-csrf-token", csrf.as_str()),
        ("origin", "https://evil.example"),
        ("host", "127.0.0.1:3000"),
    ];
    let r = gw
        .send(request("POST", "/v2/workspaces", &evil, Body::from("{}")))
        .await?;
    assert_eq!(r.body["error"], "CSRFError");
    let own = [
        ("cookie", cookie.as_str()),
        ("x-prismeai-csrf-token", csrf.as_str()),
        ("origin", "http://127.0.0.1:3000"),
        ("host", "127.0.0.1:3000"),
    ];
    let r = gw
        .send(request("POST", "/v2/workspaces", &own, Body::from("{}")))
        .await?;
    assert_eq!(r.status, StatusCode::OK);

    // Bearer tokens are not ambient: exempt.
    let r = gw
        .send(request(
            "POST",
            "/v2/workspaces",
            &[("authorization", &bearer(&login.token()))],
            Body::from("{}"),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::OK);

    // Logout by cookie is a write too.
    let r = gw
        .send(request(
            "POST",
            "/v2/logout",
            &[("cookie", &cookie)],
            Body::empty(),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = gw
        .send(request(
            "POST",
            "/v2/logout",
            &[("cookie", &cookie), ("x-prismeai-csrf-token", &csrf)],
            Body::empty(),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::OK);
    let me = gw
        .send(request(
            "GET",
            "/v2/me",
            &[("cookie", &cookie)],
            Body::empty(),
        ))
        .await?;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
    Ok(())
}

#[tokio::test]
async fn unknown_api_keys_are_refused_and_listed_admins_are_superadmins() -> Result<()> {
    let gw = Gw::new()?;
    let r = gw
        .send(request(
            "GET",
            "/v2/workspaces/w1/automations",
            &[("x-prismeai-api-key", "rfk_guess")],
            Body::empty(),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    let r = gw
        .send(request(
            "GET",
            "/v2/workspaces/w1/automations",
            &[],
            Body::empty(),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    let config = Config {
        super_admin_emails: vec!["Root@Example.org".into()],
        ..Config::embedded()
    };
    let admins = Gw::with(
        config,
        in_process(),
        Arc::new(MemoryBroker::new(BrokerConfig::default())),
    )?;
    let role = |token: String| {
        let admins = &admins;
        async move {
            let auth = bearer(&token);
            let r = admins
                .send(request(
                    "GET",
                    "/v2/workspaces/w1",
                    &[("authorization", &auth)],
                    Body::empty(),
                ))
                .await?;
            Ok::<_, anyhow::Error>(
                r.body["headers"]["x-prismeai-role"]
                    .as_str()
                    .map(str::to_owned),
            )
        }
    };
    // A listed email verified by nobody (self-signup validates automatically) is no
    // superadmin; an operator's grant makes one, on the next request of the same session.
    let root = admins.login("root@example.org").await?.token();
    let ann = admins.login("ann@example.org").await?.token();
    assert_eq!(role(root.clone()).await?, None);
    assert_eq!(role(ann.clone()).await?, None);
    let granted =
        refract_gateway::users::update_by_email(admins.store.as_ref(), "root@example.org", |u| {
            u.platform_role = Some(refract_gateway::users::PlatformRole::Superadmin)
        })
        .await?;
    assert!(granted.is_some());
    assert_eq!(role(root).await?.as_deref(), Some("superadmin"));
    assert_eq!(role(ann).await?, None);
    Ok(())
}
