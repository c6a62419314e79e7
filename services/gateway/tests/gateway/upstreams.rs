//! Backends over HTTP: unreachable and stuck instances, failover between instances, headers and streamed bodies.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use axum::Router;
use axum::body::Body;
use axum::http::StatusCode;
use refract_broker::{BrokerConfig, MemoryBroker};
use refract_gateway::{Config, Upstream, Upstreams};

use crate::support::*;

/// A port nothing listens on (just freed).
async fn dead_url() -> Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    drop(listener);
    Ok(url)
}

/// An `echo(name)` backend on a loopback port: its URL, and a stop that returns once it has
/// closed every connection.
async fn live_backend(
    name: &'static str,
) -> Result<(String, impl FnOnce() -> tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, echo(name))
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await;
    });
    Ok((url, move || {
        let _ = stop.send(());
        task
    }))
}

#[tokio::test]
async fn an_unreachable_http_backend_is_a_503_and_a_stuck_one_a_504() -> Result<()> {
    let upstreams = Upstreams {
        runtime: Upstream::http("runtime_url", [dead_url().await?])?,
        ..in_process()
    };
    let gw = Gw::to(upstreams)?;
    let r = gw
        .send(request(
            "POST",
            "/v2/workspaces/w1/webhooks/a",
            &[],
            Body::from("{}"),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.body["error"], "ServiceUnavailable");
    assert!(!r.header("retry-after").is_empty());

    let stuck = Router::new().fallback(|| async {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        "late"
    });
    let upstreams = Upstreams {
        workspaces: Upstream::InProcess(stuck),
        ..in_process()
    };
    let config = Config {
        upstream_timeout: Duration::from_millis(50),
        ..Config::embedded()
    };
    let gw = Gw::with(
        config,
        upstreams,
        Arc::new(MemoryBroker::new(BrokerConfig::default())),
    )?;
    let auth = bearer(&gw.login("ann@example.org").await?.token());
    let r = gw
        .send(request(
            "GET",
            "/v2/workspaces",
            &[("authorization", &auth)],
            Body::empty(),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(r.body["error"], "TimeoutError");
    Ok(())
}

#[tokio::test]
async fn a_backend_with_several_instances_survives_a_dead_one() -> Result<()> {
    let dead = dead_url().await?;
    let (first, stop_first) = live_backend("runtime-1").await?;
    let (second, _stop_second) = live_backend("runtime-2").await?;
    let upstreams = Upstreams {
        runtime: Upstream::http("runtime_url", [dead, first, second])?,
        ..in_process()
    };
    let gw = Gw::to(upstreams)?;
    let post = || {
        request(
            "POST",
            "/v2/workspaces/w1/webhooks/a",
            &[("content-type", "application/json")],
            Body::from("{\"n\": 1}"),
        )
    };
    let get = || request("GET", "/v2/workspaces/w1/webhooks/a", &[], Body::empty());

    // A body is streamed once: the dead first instance refuses it (503, retry later) and is
    // passed over from then on.
    let r = gw.send(post()).await?;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
    assert!(!r.header("retry-after").is_empty());
    let r = gw.send(post()).await?;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["service"], "runtime-1");
    assert_eq!(r.body["bodyLen"], 8);

    // The next instance in order takes over when the preferred one dies; a request without a
    // body moves on within the same call.
    stop_first().await?;
    let r = gw.send(get()).await?;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["service"], "runtime-2");
    let r = gw.send(post()).await?;
    assert_eq!(r.body["service"], "runtime-2", "{}", r.body);

    // Nothing valid, nothing started.
    assert!(Upstream::http("runtime_url", Vec::<String>::new()).is_err());
    let bad = Upstream::http("runtime_url", ["ftp://runtime:21"]).expect_err("ftp is refused");
    assert!(bad.to_string().contains("runtime_url"), "{bad}");
    Ok(())
}

#[tokio::test]
async fn http_backends_get_the_same_headers_and_streamed_bodies() -> Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(async move { axum::serve(listener, echo("runtime")).await });
    let upstreams = Upstreams {
        runtime: Upstream::http("runtime_url", [base])?,
        ..in_process()
    };
    let key = refract_http::gateway_key::GatewayKey::new("internal-key-0123456789")?;
    let config = Config {
        gateway_key: Some(key),
        ..Config::embedded()
    };
    let gw = Gw::with(
        config,
        upstreams,
        Arc::new(MemoryBroker::new(BrokerConfig::default())),
    )?;
    let login = gw.login("ann@example.org").await?;
    let auth = bearer(&login.token());

    let r = gw
        .send(request(
            "PUT",
            "/v2/workspaces/w1/webhooks/echo?x=1",
            &[("authorization", &auth), ("x-prismeai-user-id", "admin")],
            Body::from(vec![7u8; 5000]),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["method"], "PUT");
    assert_eq!(r.body["query"], "x=1");
    assert_eq!(r.body["bodyLen"], 5000);
    assert_eq!(r.body["headers"]["x-prismeai-user-id"], login.body["id"]);
    assert_eq!(
        r.body["headers"]["x-correlation-id"],
        r.header("x-correlation-id")
    );
    assert!(r.body["headers"].get("authorization").is_none());
    assert_eq!(
        r.body["headers"]["x-refract-gateway-key"],
        "internal-key-0123456789"
    );

    // Dot segments would be normalized away by the HTTP client: refused, never forwarded.
    let sneaky = "/v2/workspaces/w1/webhooks/../../../sys/metrics";
    let r = gw.send(request("GET", sneaky, &[], Body::empty())).await?;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["error"], "RequestValidationError");

    let chunks =
        futures::stream::iter((0..20).map(|_| Ok::<_, std::io::Error>(vec![1u8; 64 * 1024])));
    let r = gw
        .send(request(
            "POST",
            "/v2/workspaces/w1/webhooks/echo",
            &[],
            Body::from_stream(chunks),
        ))
        .await?;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.body);
    assert_eq!(r.body["error"], "PayloadTooLarge");
    server.abort();
    Ok(())
}
