//! Scale-out: every service as its own `refract` process (2 gateways behind a round-robin
//! balancer, 2 runtimes, 2 events, 1 workspaces) on Redis, PostgreSQL and a shared folder.
//! Work spreads over the runtimes, and a runtime killed with SIGKILL under load loses nothing.
//! Needs `REFRACT_TEST_REDIS_URL` and `REFRACT_TEST_DATABASE_URL` (set by `.ci/run`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::bail;
use refract_tests::balancer::Balancer;
use refract_tests::cluster::{LocalCluster, Shape, SharedBackends};
use refract_tests::platform::{Client, example};
use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Longer than the broker's reclaim idle time (10 s) plus a restart of the work.
const PATIENCE: Duration = Duration::from_secs(90);

fn backends() -> Option<SharedBackends> {
    match SharedBackends::from_env() {
        Ok(b) => Some(b),
        Err(why) => {
            eprintln!("cluster tests skipped: {why}");
            None
        }
    }
}

/// A backend that answers every connection with its name.
async fn named_backend(name: &'static str) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
    let addr = listener.local_addr().expect("its address");
    let task = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let _ = socket.write_all(name.as_bytes()).await;
        }
    });
    (addr, task)
}

async fn through(balancer: &Balancer) -> String {
    let mut socket = tokio::net::TcpStream::connect(balancer.addr).await.expect("the balancer accepts");
    let mut answer = String::new();
    socket.read_to_string(&mut answer).await.expect("an answer");
    answer
}

#[tokio::test]
async fn the_balancer_takes_turns_and_skips_a_dead_backend() {
    let (a, _a) = named_backend("a").await;
    let (b, _b) = named_backend("b").await;
    let balancer = Balancer::start(vec![a, b]).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(through(&balancer).await);
    }
    assert_eq!(seen, ["a", "b", "a", "b"]);

    // A dead backend: its port stays bound (so no other test can take it) but nothing listens,
    // so connecting is refused.
    let dead = tokio::net::TcpSocket::new_v4().unwrap();
    dead.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let balancer = Balancer::start(vec![a, dead.local_addr().unwrap()]).await.unwrap();
    for _ in 0..3 {
        assert_eq!(through(&balancer).await, "a", "a dead backend is skipped");
    }
}

/// Every `runtime.automations.executed` of `slug` in the history, by the `n` of its trigger's
/// payload, with the runtime instance that ran it.
async fn executed_by_n(client: &Client, ws: &str, slug: &str) -> anyhow::Result<BTreeMap<u64, Vec<String>>> {
    let mut runs: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for page in 0..50 {
        let path = format!("/v2/workspaces/{ws}/events?types=runtime.automations.executed&limit=100&page={page}");
        let (status, body) = client.json(Method::GET, &path, None).await?;
        if status != StatusCode::OK {
            bail!("reading the history: {status} {body}");
        }
        let events = body["result"]["events"].as_array().cloned().unwrap_or_default();
        for e in &events {
            if e["payload"]["slug"] != slug {
                continue;
            }
            if let Some(n) = e["payload"]["payload"]["payload"]["n"].as_u64() {
                let replica = e["source"]["host"]["replica"].as_str().unwrap_or("?").to_string();
                runs.entry(n).or_default().push(replica);
            }
        }
        if events.len() < 100 {
            break;
        }
    }
    Ok(runs)
}

/// Emits `orders.created` with payload `{n}` for each `n`, one request each, `gap` apart.
async fn emit_orders(client: &Client, ws: &str, ns: impl Iterator<Item = u64>, gap: Duration) -> anyhow::Result<()> {
    for n in ns {
        let body = json!({"events": [{"type": "orders.created", "payload": {"n": n}}]});
        let (status, answer) = client.json(Method::POST, &format!("/v2/workspaces/{ws}/events"), Some(body)).await?;
        if !status.is_success() {
            bail!("emitting order {n}: {status} {answer}");
        }
        tokio::time::sleep(gap).await;
    }
    Ok(())
}

/// Waits until every `n` in `want` has run; returns the runs.
async fn until_all_ran(client: &Client, ws: &str, want: &BTreeSet<u64>) -> anyhow::Result<BTreeMap<u64, Vec<String>>> {
    let started = Instant::now();
    loop {
        let runs = executed_by_n(client, ws, "on-order").await?;
        if want.iter().all(|n| runs.contains_key(n)) {
            return Ok(runs);
        }
        if started.elapsed() > PATIENCE {
            let missing: Vec<_> = want.iter().filter(|n| !runs.contains_key(n)).collect();
            bail!("orders never processed: {missing:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_spread_over_two_runtimes_and_a_killed_one_loses_nothing() {
    let Some(backends) = backends() else { return };
    let bin = Path::new(env!("CARGO_BIN_EXE_refract-node"));
    let mut cluster = LocalCluster::start(bin, &backends, Shape::default()).await.unwrap();
    let result = scenario(&mut cluster).await;
    if let Err(e) = result {
        panic!("{e:#}\n\nprocess logs:\n{}", cluster.logs());
    }
}

async fn scenario(cluster: &mut LocalCluster) -> anyhow::Result<()> {
    let ada = cluster.client().signed_up("ada@example.com").await?;
    let ws = ada.workspace("Cluster").await?;
    let automation = json!({"slug": "on-order", "name": "Order processor", "when": {"events": ["orders.created"]}, "component": {}});
    ada.deploy(&ws, automation, &example("event-emitter")?).await?;

    // Steady emits through both gateways: both runtimes take a share, each order runs once.
    let first: BTreeSet<u64> = (0..40).collect();
    emit_orders(&ada, &ws, first.iter().copied(), Duration::from_millis(25)).await?;
    let runs = until_all_ran(&ada, &ws, &first).await?;
    let replicas: BTreeSet<&str> = runs.values().flatten().map(String::as_str).collect();
    assert_eq!(replicas, BTreeSet::from(["rt-1", "rt-2"]), "both runtimes worked: {runs:?}");
    let twice: Vec<_> = runs.iter().filter(|(_, r)| r.len() > 1).collect();
    assert!(twice.is_empty(), "orders run more than once while all were healthy: {twice:?}");

    // SIGKILL one runtime while orders keep coming: the survivor takes over what the dead one
    // had claimed (after the reclaim idle time) and everything new.
    let second: BTreeSet<u64> = (40..100).collect();
    let emitter = {
        let (ada, ws, second) = (ada.clone(), ws.clone(), second.clone());
        tokio::spawn(async move { emit_orders(&ada, &ws, second.into_iter(), Duration::from_millis(20)).await })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    cluster.kill("rt-1")?;
    emitter.await??;
    let all: BTreeSet<u64> = first.union(&second).copied().collect();
    let runs = until_all_ran(&ada, &ws, &all).await?;
    let after_kill: BTreeSet<&str> = second.iter().flat_map(|n| runs[n].iter().map(String::as_str)).collect();
    assert!(after_kill.contains("rt-2"), "the survivor ran the orders after the kill: {after_kill:?}");
    let twice: Vec<_> = runs.iter().filter(|(_, r)| r.len() > 1).collect();
    eprintln!("orders run twice around the kill (at-least-once): {twice:?}");
    Ok(())
}
