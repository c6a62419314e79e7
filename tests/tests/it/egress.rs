//! fetch under the egress policy. No traffic ever goes to a non-loopback address: refused
//! addresses are refused before any connection, and the allowed tests talk to a local server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use refract_host::egress::{Egress, FetchError, FetchLimits, FetchRequest};
use refract_host::{EgressConfig, EgressPolicy, Limits, RunOutcome};
use refract_tests::sandbox::{call, sandbox, services};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A tiny HTTP/1.1 server on loopback that counts connections.
struct Server {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
}

async fn serve(bind: &str) -> anyhow::Result<Server> {
    let listener = TcpListener::bind(bind).await?;
    let addr = listener.local_addr()?;
    let connections = Arc::new(AtomicUsize::new(0));
    let count = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut n = 0;
                while !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf[n..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => n += k,
                    }
                    if n == buf.len() {
                        return;
                    }
                }
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let reply = |status: &str, extra: &str, body: &str| {
                    format!(
                        "HTTP/1.1 {status}\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    )
                };
                let _ = match path.as_str() {
                    "/ok" => {
                        sock.write_all(reply("200 OK", "x-test: yes\r\n", "hello").as_bytes())
                            .await
                    }
                    "/to-ok" => {
                        sock.write_all(reply("302 Found", "location: /ok\r\n", "").as_bytes())
                            .await
                    }
                    "/to-private" => {
                        sock.write_all(
                            reply("302 Found", "location: http://10.0.0.1/x\r\n", "").as_bytes(),
                        )
                        .await
                    }
                    "/to-metadata" => {
                        sock.write_all(
                            reply(
                                "301 Moved",
                                "location: http://169.254.169.254/latest/meta-data\r\n",
                                "",
                            )
                            .as_bytes(),
                        )
                        .await
                    }
                    "/hang" => {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        Ok(())
                    }
                    "/loop" => {
                        sock.write_all(reply("302 Found", "location: /loop\r\n", "").as_bytes())
                            .await
                    }
                    "/big" => {
                        // No content-length: the cap must stop the stream.
                        let _ = sock
                            .write_all(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n")
                            .await;
                        let chunk = vec![b'x'; 64 << 10];
                        for _ in 0..256 {
                            if sock.write_all(&chunk).await.is_err() {
                                break;
                            }
                        }
                        Ok(())
                    }
                    _ => {
                        sock.write_all(reply("404 Not Found", "", "").as_bytes())
                            .await
                    }
                };
            });
        }
    });
    Ok(Server { addr, connections })
}

fn limits() -> FetchLimits {
    FetchLimits {
        total_timeout: Duration::from_secs(10),
        max_bytes: 1 << 20,
        max_redirects: 5,
    }
}

fn get(url: String) -> FetchRequest {
    FetchRequest {
        method: "GET".into(),
        url,
        headers: vec![],
        body: None,
    }
}

#[tokio::test]
async fn refused_addresses_are_refused_before_any_connection() -> anyhow::Result<()> {
    let v4 = serve("127.0.0.1:0").await?;
    let v6 = serve("[::1]:0").await.ok();
    let egress = Egress::new(&EgressConfig::default())?;
    let any = EgressPolicy::any_host();
    let p = v4.addr.port();
    let mut urls = vec![
        format!("http://127.0.0.1:{p}/ok"),
        format!("http://localhost:{p}/ok"),
        "http://10.0.0.1/".to_owned(),
        "http://169.254.169.254/latest/meta-data".to_owned(),
        "http://[::1]/".to_owned(),
        "http://[::ffff:127.0.0.1]/".to_owned(),
        "http://[fd00:ec2::254]/".to_owned(),
        "http://100.64.0.1/".to_owned(),
        "http://192.168.1.1/".to_owned(),
        "http://0.0.0.0/".to_owned(),
    ];
    if let Some(s) = &v6 {
        urls.push(format!("http://[::1]:{}/ok", s.addr.port()));
    }
    for url in urls {
        match egress.fetch(&any, limits(), get(url.clone())).await {
            Err(FetchError::Denied(_)) => {}
            other => panic!("{url}: expected Denied, got {other:?}"),
        }
    }
    assert_eq!(
        v4.connections.load(Ordering::SeqCst),
        0,
        "nothing may connect"
    );
    if let Some(s) = v6 {
        assert_eq!(
            s.connections.load(Ordering::SeqCst),
            0,
            "nothing may connect"
        );
    }
    Ok(())
}

#[tokio::test]
async fn the_allow_list_is_checked_first() -> anyhow::Result<()> {
    let server = serve("127.0.0.1:0").await?;
    let egress = Egress::new(&EgressConfig {
        allow_loopback: true,
        ..EgressConfig::default()
    })?;
    let only = EgressPolicy::new(["api.example.com", "*.example.org"])?;
    let url = format!("http://127.0.0.1:{}/ok", server.addr.port());
    assert!(matches!(
        egress.fetch(&only, limits(), get(url.clone())).await,
        Err(FetchError::Denied(_))
    ));
    assert!(matches!(
        egress
            .fetch(&EgressPolicy::default(), limits(), get(url))
            .await,
        Err(FetchError::Denied(_))
    ));
    assert_eq!(server.connections.load(Ordering::SeqCst), 0);
    Ok(())
}

#[tokio::test]
async fn with_loopback_allowed_a_local_server_answers_and_hops_are_rechecked() -> anyhow::Result<()>
{
    let server = serve("127.0.0.1:0").await?;
    let egress = Egress::new(&EgressConfig {
        allow_loopback: true,
        ..EgressConfig::default()
    })?;
    let policy = EgressPolicy::new(["127.0.0.1", "localhost"])?;
    let base = format!("http://127.0.0.1:{}", server.addr.port());

    let ok = egress
        .fetch(&policy, limits(), get(format!("{base}/ok")))
        .await?;
    assert_eq!((ok.status, ok.body.as_slice()), (200, &b"hello"[..]));
    assert!(ok.headers.iter().any(|(k, v)| k == "x-test" && v == "yes"));
    let by_name = egress
        .fetch(
            &policy,
            limits(),
            get(format!("http://localhost:{}/to-ok", server.addr.port())),
        )
        .await?;
    assert_eq!(by_name.body, b"hello");

    for path in ["/to-private", "/to-metadata"] {
        match egress
            .fetch(
                &EgressPolicy::any_host(),
                limits(),
                get(format!("{base}{path}")),
            )
            .await
        {
            Err(FetchError::Denied(m)) => assert!(m.contains("refused"), "{m}"),
            other => panic!("{path}: expected Denied, got {other:?}"),
        }
    }
    // A redirect to a host off the allow-list is refused too.
    match egress
        .fetch(&policy, limits(), get(format!("{base}/to-private")))
        .await
    {
        Err(FetchError::Denied(m)) => assert!(m.contains("allow-list"), "{m}"),
        other => panic!("expected Denied, got {other:?}"),
    }
    match egress
        .fetch(&policy, limits(), get(format!("{base}/loop")))
        .await
    {
        Err(FetchError::ConnectionFailed(m)) => assert!(m.contains("redirects"), "{m}"),
        other => panic!("expected too many redirects, got {other:?}"),
    }
    match egress
        .fetch(&policy, limits(), get(format!("{base}/big")))
        .await
    {
        Err(FetchError::TooLarge(n)) => assert_eq!(n, 1 << 20),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    match egress
        .fetch(&policy, limits(), get("ftp://127.0.0.1/".into()))
        .await
    {
        Err(FetchError::InvalidRequest(_)) => {}
        other => panic!("expected InvalidRequest, got {other:?}"),
    }
    Ok(())
}

fn guest_error(outcome: &RunOutcome) -> String {
    match outcome {
        RunOutcome::Ok(o) => serde_json::from_str::<Value>(&o.body).unwrap_or(Value::Null)["error"]
            .as_str()
            .unwrap_or("")
            .to_owned(),
        other => panic!("expected an output, got {other:?}"),
    }
}

#[tokio::test]
async fn guests_get_denied_for_refused_addresses() -> anyhow::Result<()> {
    let sb = sandbox()?;
    let server = serve("127.0.0.1:0").await?;
    let (services, _) = services(&sb.strict);
    let p = server.addr.port();
    for url in [
        format!("http://127.0.0.1:{p}/ok"),
        format!("http://[::1]:{p}/ok"),
        "http://10.0.0.1/".into(),
        "http://169.254.169.254/latest/meta-data".into(),
        format!("http://localhost:{p}/ok"),
    ] {
        let req = call(
            "hostile",
            json!({"mode": "fetch", "url": url}),
            Limits::default(),
            EgressPolicy::any_host(),
        );
        let report = sb.strict.run(&sb.hostile, req, services.clone()).await?;
        let err = guest_error(&report.outcome);
        assert!(err.starts_with("FetchError::Denied"), "{url}: {err}");
    }
    assert_eq!(server.connections.load(Ordering::SeqCst), 0);
    Ok(())
}

#[tokio::test]
async fn guests_fetch_from_a_local_server_when_loopback_is_allowed() -> anyhow::Result<()> {
    let sb = sandbox()?;
    let server = serve("127.0.0.1:0").await?;
    let (services, _) = services(&sb.loopback);
    let base = format!("http://127.0.0.1:{}", server.addr.port());
    let req = call(
        "hostile",
        json!({"mode": "fetch", "url": format!("{base}/to-ok")}),
        Limits::default(),
        EgressPolicy::new(["127.0.0.1"])?,
    );
    let report = sb.loopback.run(&sb.hostile, req, services.clone()).await?;
    match &report.outcome {
        RunOutcome::Ok(o) => {
            let v: Value = serde_json::from_str(&o.body)?;
            assert_eq!(v["status"], 200);
            assert_eq!(v["body"], "hello");
        }
        other => panic!("expected an output, got {other:?}"),
    }
    // The per-run cap on fetches.
    let limits = Limits {
        max_fetches: 0,
        ..Limits::default()
    };
    let req = call(
        "hostile",
        json!({"mode": "fetch", "url": format!("{base}/ok")}),
        limits,
        EgressPolicy::any_host(),
    );
    let report = sb.loopback.run(&sb.hostile, req, services).await?;
    assert!(guest_error(&report.outcome).contains("LimitExceeded(0)"));
    Ok(())
}

#[tokio::test]
async fn a_run_stuck_in_a_host_call_is_stopped_by_the_wall_clock() -> anyhow::Result<()> {
    // The server never answers; the fetch timeout (15 s) is longer than the run's budget, and
    // epoch interruption cannot see time spent in a host call: the run's timeout stops it.
    let sb = sandbox()?;
    let server = serve("127.0.0.1:0").await?;
    let (services, _) = services(&sb.loopback);
    let url = format!("http://127.0.0.1:{}/hang", server.addr.port());
    let limits = Limits {
        wall_time: Duration::from_millis(300),
        ..Limits::default()
    };
    let req = call(
        "hostile",
        json!({"mode": "fetch", "url": url}),
        limits,
        EgressPolicy::any_host(),
    );
    let report = sb.loopback.run(&sb.hostile, req, services).await?;
    assert_eq!(
        report.outcome.trap_reason(),
        Some(refract_host::TrapReason::Timeout),
        "{:?}",
        report.outcome
    );
    Ok(())
}
