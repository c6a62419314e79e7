//! Signup, password and anonymous logins, sessions, logout, `/v2/me` and the `gateway.*` events they emit.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use axum::body::Body;
use axum::http::StatusCode;
use refract_broker::{Broker, BrokerConfig, MemoryBroker, Subscription, TypeFilter};
use refract_gateway::{Config, GatewayState, router};
use refract_storage::{Cache, DocumentStore, MemoryStore};
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn signup_login_me_logout() -> Result<()> {
    let gw = Gw::new()?;
    let r = gw.signup("Ann@Example.org", "correct horse").await?;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["email"], "ann@example.org");
    assert_eq!(r.body["status"], "validated");
    assert_eq!(r.body["firstName"], "Ann");
    assert!(r.body["id"].is_string() && r.body["authData"]["prismeai"].is_object());
    assert!(
        !r.body.to_string().contains("argon2"),
        "no hash in {}",
        r.body
    );
    assert!(r.header("set-cookie").is_empty(), "signup opens no session");
    let user_id = r.body["id"].clone();

    let r = gw
        .send(post_json(
            "/v2/login",
            json!({"email": "ann@example.org", "password": "correct horse"}),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["id"], user_id);
    let token = r.token();
    assert!(token.len() >= 43, "{token}");
    assert!(r.body["sessionId"].is_string() && r.body["expires"].is_string());
    let cookie = r.header("set-cookie");
    for part in ["HttpOnly", "Path=/", "SameSite=Lax", "Max-Age="] {
        assert!(cookie.contains(part), "{cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "embedded config has no Secure: {cookie}"
    );
    assert_eq!(r.cookie(), token);
    assert!(!r.header("x-prismeai-csrf-token").is_empty());

    let me = gw
        .send(request(
            "GET",
            "/v2/me",
            &[("authorization", &bearer(&token))],
            Body::empty(),
        ))
        .await?;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    assert_eq!(me.body["id"], user_id);
    assert_eq!(me.body["sessionId"], r.body["sessionId"]);
    assert_eq!(me.body["expires"], r.body["expires"]);
    assert!(
        me.header("x-prismeai-csrf-token").is_empty(),
        "bearer sessions need no CSRF token"
    );

    // The legacy header works too.
    let me = gw
        .send(request(
            "GET",
            "/v2/me",
            &[("x-prismeai-token", &token)],
            Body::empty(),
        ))
        .await?;
    assert_eq!(me.status, StatusCode::OK);

    let out = gw
        .send(request(
            "POST",
            "/v2/logout",
            &[("authorization", &bearer(&token))],
            Body::empty(),
        ))
        .await?;
    assert_eq!(out.status, StatusCode::OK);
    assert_eq!(out.body, json!({"success": true}));
    assert!(out.header("set-cookie").contains("Max-Age=0"));
    let me = gw
        .send(request(
            "GET",
            "/v2/me",
            &[("authorization", &bearer(&token))],
            Body::empty(),
        ))
        .await?;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
    assert_eq!(me.body["error"], "AuthenticationError");
    let again = gw
        .send(request(
            "POST",
            "/v2/logout",
            &[("authorization", &bearer(&token))],
            Body::empty(),
        ))
        .await?;
    assert_eq!(again.status, StatusCode::OK, "logout is idempotent");
    Ok(())
}

#[tokio::test]
async fn a_session_is_visible_to_another_gateway_on_the_same_cache() -> Result<()> {
    let gw = Gw::new()?;
    let token = gw.login("ann@example.org").await?.token();
    let state = GatewayState::new(
        Config::embedded(),
        gw.store.clone(),
        gw.cache.clone(),
        gw.broker.clone(),
        in_process(),
    )?;
    let other = Gw {
        app: router(state),
        broker: gw.broker.clone(),
        store: gw.store.clone(),
        cache: gw.cache.clone(),
    };
    let me = other
        .send(request(
            "GET",
            "/v2/me",
            &[("authorization", &bearer(&token))],
            Body::empty(),
        ))
        .await?;
    assert_eq!(me.status, StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn duplicate_emails_conflict_whatever_their_case() -> Result<()> {
    let gw = Gw::new()?;
    assert_eq!(
        gw.signup("ann@example.org", "correct horse").await?.status,
        StatusCode::OK
    );
    let r = gw.signup("ANN@example.org", "another password").await?;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.body["error"], "AlreadyUsedError");
    assert_eq!(r.body["details"]["field"], "email");
    Ok(())
}

#[tokio::test]
async fn bad_password_and_unknown_email_get_the_same_401_and_a_failed_event() -> Result<()> {
    let gw = Gw::new()?;
    let mut events = gw
        .broker
        .subscribe(Subscription::fan_out(TypeFilter::new([
            "gateway.login.failed",
        ])))
        .await?;
    gw.signup("ann@example.org", "correct horse").await?;
    let wrong = gw
        .send(post_json(
            "/v2/login",
            json!({"email": "ann@example.org", "password": "wrong horse"}),
        ))
        .await?;
    let unknown = gw
        .send(post_json(
            "/v2/login",
            json!({"email": "bob@example.org", "password": "correct horse"}),
        ))
        .await?;
    for r in [&wrong, &unknown] {
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(r.body["error"], "AuthenticationError");
        assert!(r.header("set-cookie").is_empty());
    }
    assert_eq!(wrong.body["message"], unknown.body["message"]);
    let delivery = tokio::time::timeout(Duration::from_secs(5), events.next()).await??;
    let event = &delivery.event;
    assert_eq!(event.payload["email"], "ann@example.org");
    assert_eq!(event.payload["ip"], "203.0.113.7");
    assert!(
        !serde_json::to_string(&event.payload)?.contains("horse"),
        "no password in the event"
    );
    assert_eq!(
        event.source.correlation_id.as_str(),
        wrong.header("x-correlation-id")
    );
    Ok(())
}

#[tokio::test]
async fn login_and_signup_emit_events_without_secrets() -> Result<()> {
    let gw = Gw::new()?;
    let mut events = gw
        .broker
        .subscribe(Subscription::fan_out(TypeFilter::new(["gateway.*"])))
        .await?;
    let login = gw.login("ann@example.org").await?;
    let signup = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await??
        .event
        .clone();
    assert_eq!(signup.event_type.as_str(), "gateway.signup.succeeded");
    assert_eq!(signup.payload["user"]["email"], "ann@example.org");
    let ok = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await??
        .event
        .clone();
    assert_eq!(ok.event_type.as_str(), "gateway.login.succeeded");
    assert_eq!(ok.payload["session"]["id"], login.body["sessionId"]);
    let text = serde_json::to_string(&ok)? + &serde_json::to_string(&signup)?;
    assert!(
        !text.contains(&login.token()) && !text.contains("horse") && !text.contains("argon2"),
        "{text}"
    );
    Ok(())
}

#[tokio::test]
async fn a_broken_broker_does_not_break_login() -> Result<()> {
    let gw = Gw::with(Config::embedded(), in_process(), Arc::new(DownBroker))?;
    let r = gw.login("ann@example.org").await?;
    assert!(!r.token().is_empty());
    Ok(())
}

#[tokio::test]
async fn bad_input_gets_json_400s() -> Result<()> {
    let gw = Gw::new()?;
    let malformed = request(
        "POST",
        "/v2/signup",
        &[("content-type", "application/json")],
        Body::from("{oops"),
    );
    for (req, field) in [
        (malformed, "body"),
        (
            post_json(
                "/v2/signup",
                json!({"email": "a@x.org", "password": "correct horse", "firstName": "A", "admin": true}),
            ),
            "body",
        ),
        (
            post_json(
                "/v2/signup",
                json!({"email": "a@x.org", "password": "short", "firstName": "A"}),
            ),
            "password",
        ),
        (
            post_json(
                "/v2/signup",
                json!({"email": "not an email", "password": "correct horse", "firstName": "A"}),
            ),
            "email",
        ),
        (
            post_json(
                "/v2/signup",
                json!({"email": "a@x.org", "password": "correct horse", "firstName": ""}),
            ),
            "firstName",
        ),
    ] {
        let r = gw.send(req).await?;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
        assert_eq!(r.body["error"], "RequestValidationError");
        assert_eq!(r.body["details"][0]["path"], field, "{}", r.body);
    }
    let r = gw
        .send(request("POST", "/v2/login", &[], Body::from("{}")))
        .await?;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    Ok(())
}

#[tokio::test]
async fn anonymous_sessions_have_a_user_without_email() -> Result<()> {
    let gw = Gw::new()?;
    let r = gw
        .send(post_json(
            "/v2/login/anonymous",
            json!({"expiresAfter": 60}),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.get("email").is_none());
    assert!(r.body["authData"]["anonymous"].is_object());
    assert!(
        r.header("set-cookie").contains("Max-Age=60")
            || r.header("set-cookie").contains("Max-Age=59")
    );
    let token = r.token();
    let me = gw
        .send(request(
            "GET",
            "/v2/me",
            &[("authorization", &bearer(&token))],
            Body::empty(),
        ))
        .await?;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["id"], r.body["id"]);
    let tokens = gw
        .send(request(
            "GET",
            "/v2/user/accessTokens",
            &[("authorization", &bearer(&token))],
            Body::empty(),
        ))
        .await?;
    assert_eq!(
        tokens.status,
        StatusCode::FORBIDDEN,
        "anonymous sessions are not `named`"
    );
    let out = gw
        .send(request(
            "POST",
            "/v2/logout",
            &[("authorization", &bearer(&token))],
            Body::empty(),
        ))
        .await?;
    assert_eq!(out.status, StatusCode::OK, "but they can log out");
    let r = gw
        .send(request("POST", "/v2/login/anonymous", &[], Body::empty()))
        .await?;
    assert_eq!(r.status, StatusCode::OK, "the body is optional: {}", r.body);
    Ok(())
}

#[tokio::test]
async fn sessions_survive_a_restart_of_the_embedded_cache() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("refract.db").display());
    let store: Arc<dyn DocumentStore> = Arc::new(MemoryStore::new());
    let broker: Arc<dyn Broker> = Arc::new(MemoryBroker::new(BrokerConfig::default()));
    let start = |cache: Arc<dyn Cache>| -> Result<Gw> {
        let state = GatewayState::new(
            Config::embedded(),
            store.clone(),
            cache.clone(),
            broker.clone(),
            in_process(),
        )?;
        Ok(Gw {
            app: router(state),
            broker: broker.clone(),
            store: store.clone(),
            cache,
        })
    };
    let first = start(refract_storage::open_cache(&url, "refract").await?)?;
    let token = first.login("ann@example.org").await?.token();
    drop(first);
    let second = start(refract_storage::open_cache(&url, "refract").await?)?;
    let me = second
        .send(request(
            "GET",
            "/v2/me",
            &[("authorization", &bearer(&token))],
            Body::empty(),
        ))
        .await?;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    Ok(())
}
