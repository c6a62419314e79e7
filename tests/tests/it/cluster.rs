//! Scale-out and fault tolerance: every service as its own `refract` process (2 gateways
//! behind a round-robin balancer, 2 runtimes, 2 events, 1 workspaces) on Redis, PostgreSQL and
//! a shared folder. Two clusters, several faults each (a cluster start costs seconds):
//!
//! - work spreads over the runtimes; a wait on one runtime is fulfilled by an event consumed
//!   on the other; a schedule fires once per tick; a runtime killed with SIGKILL under load
//!   loses nothing and the schedule keeps firing;
//! - on a private Redis and behind a cuttable PostgreSQL proxy: an events instance killed with
//!   SIGKILL (its WebSocket clients reconnect to the other and miss nothing), PostgreSQL
//!   unreachable for 10 s under load, and a Redis restart that loses everything it held.
//!
//! Needs `REFRACT_TEST_REDIS_URL` and `REFRACT_TEST_DATABASE_URL` (set by `.ci/run`), and
//! `redis-server` on the `PATH` for the second cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use futures::{SinkExt, StreamExt};
use refract_tests::balancer::Balancer;
use refract_tests::cluster::{LocalCluster, Shape, SharedBackends};
use refract_tests::platform::{Client, example, next_event};
use refract_tests::proxy::Proxy;
use refract_tests::redis_server::RedisServer;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let addr = listener.local_addr().expect("its address");
    let task = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let _ = socket.write_all(name.as_bytes()).await;
        }
    });
    (addr, task)
}

async fn through(balancer: &Balancer) -> String {
    let mut socket = tokio::net::TcpStream::connect(balancer.addr)
        .await
        .expect("the balancer accepts");
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
    let balancer = Balancer::start(vec![a, dead.local_addr().unwrap()])
        .await
        .unwrap();
    for _ in 0..3 {
        assert_eq!(through(&balancer).await, "a", "a dead backend is skipped");
    }
}

/// Every `runtime.automations.executed` of `slug` in the history, by the `n` of its trigger's
/// payload, with the runtime instance that ran it.
async fn executed_by_n(
    client: &Client,
    ws: &str,
    slug: &str,
) -> anyhow::Result<BTreeMap<u64, Vec<String>>> {
    let mut runs: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for page in 0..50 {
        let path = format!(
            "/v2/workspaces/{ws}/events?types=runtime.automations.executed&limit=100&page={page}"
        );
        let (status, body) = client.json(Method::GET, &path, None).await?;
        if status != StatusCode::OK {
            bail!("reading the history: {status} {body}");
        }
        let events = body["result"]["events"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for e in &events {
            if e["payload"]["slug"] != slug {
                continue;
            }
            if let Some(n) = e["payload"]["payload"]["payload"]["n"].as_u64() {
                let replica = e["source"]["host"]["replica"]
                    .as_str()
                    .unwrap_or("?")
                    .to_string();
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
async fn emit_orders(
    client: &Client,
    ws: &str,
    ns: impl Iterator<Item = u64>,
    gap: Duration,
) -> anyhow::Result<()> {
    for n in ns {
        let body = json!({"events": [{"type": "orders.created", "payload": {"n": n}}]});
        let (status, answer) = client
            .json(
                Method::POST,
                &format!("/v2/workspaces/{ws}/events"),
                Some(body),
            )
            .await?;
        if !status.is_success() {
            bail!("emitting order {n}: {status} {answer}");
        }
        tokio::time::sleep(gap).await;
    }
    Ok(())
}

/// Waits until every `n` in `want` has run; returns the runs.
async fn until_all_ran(
    client: &Client,
    ws: &str,
    want: &BTreeSet<u64>,
) -> anyhow::Result<BTreeMap<u64, Vec<String>>> {
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
async fn work_spreads_waits_cross_runtimes_schedules_tick_once_and_a_killed_runtime_loses_nothing()
{
    let Some(backends) = backends() else { return };
    let bin = Path::new(env!("CARGO_BIN_EXE_refract-node"));
    let mut cluster = LocalCluster::start(bin, &backends, Shape::default())
        .await
        .unwrap();
    let result = scenario(&mut cluster).await;
    if let Err(e) = result {
        panic!("{e:#}\n\nprocess logs:\n{}", cluster.logs());
    }
}

async fn scenario(cluster: &mut LocalCluster) -> anyhow::Result<()> {
    let ada = cluster.client().signed_up("ada@example.com").await?;
    let ws = ada.workspace("Cluster").await?;
    let automation = json!({"slug": "on-order", "name": "Order processor", "when": {"events": ["orders.created"]}, "component": {}});
    ada.deploy(&ws, automation, &example("event-emitter")?)
        .await?;

    // Steady emits through both gateways: both runtimes take a share, each order runs once.
    // Emitted in rounds of 40 (at most 3): a runtime that was still busy starting up under a
    // loaded CI machine may miss the first round, never all of them.
    let mut first = BTreeSet::new();
    let mut runs = BTreeMap::new();
    for round in 0..3u64 {
        let batch: BTreeSet<u64> = (round * 40..(round + 1) * 40).collect();
        emit_orders(&ada, &ws, batch.iter().copied(), Duration::from_millis(25)).await?;
        first.extend(batch);
        runs = until_all_ran(&ada, &ws, &first).await?;
        let replicas: BTreeSet<&str> = runs.values().flatten().map(String::as_str).collect();
        if replicas.len() == 2 {
            break;
        }
        eprintln!("round {round}: only {replicas:?} ran orders; emitting another round");
    }
    let replicas: BTreeSet<&str> = runs.values().flatten().map(String::as_str).collect();
    ensure!(
        replicas == BTreeSet::from(["rt-1", "rt-2"]),
        "both runtimes should have worked: {runs:?}"
    );
    let twice: Vec<_> = runs.iter().filter(|(_, r)| r.len() > 1).collect();
    ensure!(
        twice.is_empty(),
        "orders run more than once while all were healthy: {twice:?}"
    );

    quota_reaches_every_runtime(cluster, &ada, &ws).await?;
    answers_stream_through_a_gateway(cluster, &ada, &ws).await?;

    // A schedule ticking every second from now on, and waits across runtimes.
    let ticker = json!({"slug": "ticker", "name": "Every second", "when": {"schedules": ["* * * * * *"]},
        "do": [{"set": {"name": "n", "value": 1}}]});
    ada.create_automation(&ws, ticker).await?;
    waits_cross_runtimes(cluster, &ada, &ws).await?;

    // A failed run whose retry is due in 3 s, kept in PostgreSQL: it is still pending when a
    // runtime is killed below, and a surviving one runs it.
    let retried = json!({"slug": "retried", "name": "Retried", "when": {"events": ["retry.me"]},
    "retry": {"attempts": 2, "backoff": {"initialMs": 3000}},
    "do": [
        {"set": {"name": "global.retried", "value": "{% ({{global.retried}} || 0) + 1 %}"}},
        {"conditions": {"{{global.retried}} < 2": [{"emit": {"event": "not a valid type!"}}], "default": []}}
    ]});
    ada.create_automation(&ws, retried).await?;
    emit_http(&ada, &ws, json!([{"type": "retry.me", "payload": {}}])).await?;
    let first_failure = runs_of(&ada, &ws, "retried", 1).await?;
    ensure!(
        first_failure[0]["payload"]["status"] == "error",
        "the first attempt fails: {first_failure:?}"
    );

    // SIGKILL one runtime while orders keep coming: the survivor takes over what the dead one
    // had claimed (after the reclaim idle time) and everything new.
    let from = first.len() as u64;
    let second: BTreeSet<u64> = (from..from + 60).collect();
    let emitter = {
        let (ada, ws, second) = (ada.clone(), ws.clone(), second.clone());
        tokio::spawn(async move {
            emit_orders(&ada, &ws, second.into_iter(), Duration::from_millis(20)).await
        })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    cluster.kill("rt-1")?;
    webhook_fails_over(cluster, &ada, &ws).await?;
    emitter.await??;
    let all: BTreeSet<u64> = first.union(&second).copied().collect();
    let runs = until_all_ran(&ada, &ws, &all).await?;
    let after_kill: BTreeSet<&str> = second
        .iter()
        .flat_map(|n| runs[n].iter().map(String::as_str))
        .collect();
    ensure!(
        after_kill.contains("rt-2"),
        "the survivor ran the orders after the kill: {after_kill:?}"
    );
    let twice: Vec<_> = runs.iter().filter(|(_, r)| r.len() > 1).collect();
    eprintln!("orders run twice around the kill (at-least-once): {twice:?}");
    let retried = runs_of(&ada, &ws, "retried", 2).await?;
    ensure!(
        retried[1]["payload"]["status"] == "success"
            && retried[1]["payload"]["attempt"] == 2
            && retried[1]["source"]["host"]["replica"] == "rt-2",
        "the retry pending across the kill ran on the survivor: {retried:?}"
    );

    // The schedule: one run per tick while both runtimes were up, and ticks after the kill
    // still fire (on the survivor), still once each.
    let killed_at = chrono::Utc::now();
    let started = Instant::now();
    let ticks = loop {
        let ticks = ticks_of(&ada, &ws).await?;
        let killed_at = killed_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        if ticks
            .keys()
            .filter(|t| t.as_str() > killed_at.as_str())
            .count()
            >= 3
        {
            break ticks;
        }
        if started.elapsed() > PATIENCE {
            bail!("the schedule stopped firing after rt-1 was killed: {ticks:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let twice: Vec<_> = ticks.iter().filter(|(_, r)| r.len() > 1).collect();
    ensure!(twice.is_empty(), "ticks run more than once: {twice:?}");
    let replicas: BTreeSet<&str> = ticks.values().flatten().map(String::as_str).collect();
    ensure!(
        ticks.len() >= 6,
        "a tick a second over the whole test: {ticks:?}"
    );
    eprintln!(
        "schedule: {} ticks, each once, run by {replicas:?}; {:.1?} from the kill to 3 ticks on the survivor",
        ticks.len(),
        started.elapsed()
    );
    Ok(())
}

/// A superadmin lowers the workspace's emits per run through one gateway: the runtime that took
/// the change applies it, the other hears `runtime.quotas.updated` and reads it again, so runs
/// on both runtimes are refused their second emit. Then back to the configured policy.
async fn quota_reaches_every_runtime(
    cluster: &LocalCluster,
    ada: &Client,
    ws: &str,
) -> anyhow::Result<()> {
    let root = cluster.client().signed_up("root@example.com").await?;
    let admin = refract::Config {
        database_url: Some(cluster.database_url()),
        ..refract::Config::default()
    };
    refract::admin::run(
        &admin,
        refract::admin::AdminCommand::Grant,
        "root@example.com",
    )
    .await?;
    let quotas = format!("/v2/workspaces/{ws}/quotas");
    let (status, body) = root
        .json(Method::PUT, &quotas, Some(json!({"maxEmits": 1})))
        .await?;
    ensure!(
        status == StatusCode::OK,
        "lowering maxEmits: {status} {body}"
    );
    ada.create_automation(
        ws,
        json!({"slug": "twice", "name": "Emits twice", "when": {"events": ["quota.check"]},
        "do": [{"emit": {"event": "quota.one"}}, {"emit": {"event": "quota.two"}}]}),
    )
    .await?;
    // The broker carries the change to the other runtime within milliseconds; leave it a moment.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut replicas = BTreeSet::new();
    let mut runs = Vec::new();
    for round in 0..8 {
        // One event per request, a little apart: a batch in one request is one stream read, so
        // one runtime could take it whole, round after round.
        for i in 0..10 {
            let event = json!({"type": "quota.check", "payload": {"n": round * 10 + i}});
            emit_http(ada, ws, json!([event])).await?;
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        // A runtime may still be adding `twice` to its index when the first events come: count
        // on at least one run per round, not ten.
        runs = runs_of(ada, ws, "twice", round * 10 + 1).await?;
        replicas = runs
            .iter()
            .filter_map(|r| r["source"]["host"]["replica"].as_str())
            .map(str::to_owned)
            .collect();
        if replicas.len() == 2 {
            break;
        }
    }
    ensure!(
        replicas == BTreeSet::from(["rt-1".to_owned(), "rt-2".to_owned()]),
        "both runtimes should have run `twice`: {replicas:?}"
    );
    let allowed: Vec<&Value> = runs
        .iter()
        .filter(|r| r["payload"]["status"] != "error")
        .map(|r| &r["source"]["host"]["replica"])
        .collect();
    ensure!(
        allowed.is_empty(),
        "{} of {} runs went past the lowered limit (their runtime did not apply the change), on {allowed:?}",
        allowed.len(),
        runs.len()
    );
    let (status, body) = root.json(Method::PUT, &quotas, Some(json!({}))).await?;
    ensure!(
        status == StatusCode::OK,
        "back to the configured policy: {status} {body}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok(())
}

/// A webhook answer streamed by a run on a runtime process crosses a gateway process as it
/// comes: the first event arrives while the run still waits for an event the client sends.
async fn answers_stream_through_a_gateway(
    cluster: &LocalCluster,
    ada: &Client,
    ws: &str,
) -> anyhow::Result<()> {
    let streams = json!({"slug": "streams", "name": "Streams", "when": {"endpoint": true}, "do": [
        {"set": {"name": "$http", "value": {"chunk": {"step": 1}}}},
        {"wait": {"oneOf": [{"event": "stream.go"}], "timeout": 20}},
        {"set": {"name": "$http", "value": {"chunk": {"step": 2}}}}
    ], "output": "done"});
    ada.create_automation(ws, streams).await?;
    let gw2 = Client {
        url: cluster.node_url("gw-2").context("gw-2")?.to_string(),
        ..ada.clone()
    };
    let mut res = gw2
        .request(
            Method::POST,
            &format!("/v2/workspaces/{ws}/webhooks/streams"),
        )
        .send()
        .await?;
    ensure!(res.status() == StatusCode::OK, "{}", res.status());
    ensure!(res.headers()["content-type"] == "text/event-stream");
    let mut buf = String::new();
    let first = next_event(&mut res, &mut buf).await;
    ensure!(first == Some(json!({"step": 1})), "{first:?}");
    emit_http(ada, ws, json!([{"type": "stream.go", "payload": {}}])).await?;
    let mut rest = Vec::new();
    while let Some(event) = next_event(&mut res, &mut buf).await {
        rest.push(event);
    }
    ensure!(rest == vec![json!({"step": 2}), json!("done")], "{rest:?}");
    Ok(())
}

/// With rt-1 dead, a webhook through gw-1 (which prefers rt-1) runs on rt-2: the gateway passes
/// over the instance that refuses connections. A request that was already on its way to the
/// dead one gets 503 with `Retry-After`, and its retry goes to the other.
async fn webhook_fails_over(cluster: &LocalCluster, ada: &Client, ws: &str) -> anyhow::Result<()> {
    let gw1 = Client {
        url: cluster.node_url("gw-1").context("gw-1")?.to_string(),
        ..ada.clone()
    };
    let mut refused = 0;
    let (correlation, body) = loop {
        let res = gw1
            .request(Method::POST, &format!("/v2/workspaces/{ws}/webhooks/ask"))
            .json(&json!({"q": 21}))
            .send()
            .await?;
        let status = res.status();
        if status == StatusCode::SERVICE_UNAVAILABLE && refused < 5 {
            ensure!(
                res.headers().contains_key("retry-after"),
                "a 503 says when to retry"
            );
            refused += 1;
            continue;
        }
        let correlation = res
            .headers()
            .get("x-correlation-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        ensure!(
            status == StatusCode::OK,
            "a webhook through gw-1 with rt-1 dead: {status} {body}"
        );
        break (correlation, body);
    };
    ensure!(body["a"] == json!(42) || body["a"] == json!("42"), "{body}");
    let ran_on = executed_replica(ada, ws, "ask", |e: &Value| {
        e["source"]["correlationId"] == correlation.as_str()
    })
    .await?;
    ensure!(ran_on == "rt-2", "the webhook ran on {ran_on}");
    eprintln!(
        "webhook through gw-1 after the kill: ran on rt-2 after {refused} refused attempt(s)"
    );
    Ok(())
}

/// The `runtime.automations.executed` records of `slug`, oldest first, once there are `n`.
async fn runs_of(client: &Client, ws: &str, slug: &str, n: usize) -> anyhow::Result<Vec<Value>> {
    let started = Instant::now();
    loop {
        let (status, body) = client
            .json(
                Method::GET,
                &format!("/v2/workspaces/{ws}/events?types=runtime.automations.executed&payload.slug={slug}&sort=asc&limit=100"),
                None,
            )
            .await?;
        ensure!(status == StatusCode::OK, "history: {status} {body}");
        let runs = body["result"]["events"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if runs.len() >= n {
            return Ok(runs);
        }
        if started.elapsed() > PATIENCE {
            bail!("{slug}: {} of {n} runs: {body}", runs.len());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every `runtime.automations.executed` of the `ticker` schedule, by tick time, with the
/// runtime that ran it.
async fn ticks_of(client: &Client, ws: &str) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let mut ticks: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for page in 0..50 {
        let path = format!(
            "/v2/workspaces/{ws}/events?types=runtime.automations.executed&limit=100&page={page}"
        );
        let (status, body) = client.json(Method::GET, &path, None).await?;
        if status != StatusCode::OK {
            bail!("reading the history: {status} {body}");
        }
        let events = body["result"]["events"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for e in events.iter().filter(|e| e["payload"]["slug"] == "ticker") {
            let tick = e["payload"]["payload"]["payload"]["startedAt"]
                .as_str()
                .unwrap_or("?")
                .to_string();
            ticks.entry(tick).or_default().push(
                e["source"]["host"]["replica"]
                    .as_str()
                    .unwrap_or("?")
                    .to_string(),
            );
        }
        if events.len() < 100 {
            break;
        }
    }
    Ok(ticks)
}

/// A webhook run on rt-1 (called through gw-1, whose runtime it is) emits `question` and
/// waits for the `answer` of its correlation; the `question` is consumed by whichever runtime
/// the group hands it to. Asks until one answer came from rt-2: that wait, on rt-1, was
/// fulfilled by an event produced on the other runtime.
async fn waits_cross_runtimes(
    cluster: &LocalCluster,
    ada: &Client,
    ws: &str,
) -> anyhow::Result<()> {
    // The `run` scope belongs to the correlation, not to a process: what `ask` writes there on
    // one runtime, `answer` reads on the other.
    let ask = json!({"slug": "ask", "name": "Ask", "when": {"endpoint": true}, "do": [
        {"set": {"name": "run.asked", "value": "q{{body.q}}"}},
        {"emit": {"event": "question", "payload": {"q": "{{body.q}}"}}},
        {"wait": {"oneOf": [{"event": "answer", "filters": {"source.correlationId": "{{run.correlationId}}"}}], "timeout": 20, "output": "reply"}}
    ], "output": {"q": "{{body.q}}", "a": "{{reply.payload.a}}", "seen": "{{reply.payload.seen}}"}});
    let answer = json!({"slug": "answer", "name": "Answer", "when": {"events": ["question"]}, "do": [
        {"emit": {"event": "answer", "payload": {"q": "{{payload.q}}", "a": "{% {{payload.q}} * 2 %}", "seen": "{{run.asked}}"}}}
    ]});
    ada.create_automation(ws, ask).await?;
    ada.create_automation(ws, answer).await?;
    let gw1 = Client {
        url: cluster.node_url("gw-1").context("gw-1")?.to_string(),
        ..ada.clone()
    };
    for q in 1..=30u64 {
        // The runtime learns of a new automation from the broker: give it a moment.
        let mut tries = 0;
        let res = loop {
            let res = gw1
                .request(Method::POST, &format!("/v2/workspaces/{ws}/webhooks/ask"))
                .json(&json!({"q": q}))
                .send()
                .await?;
            tries += 1;
            if res.status() != StatusCode::NOT_FOUND || tries > 50 {
                break res;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let status = res.status();
        let correlation = res
            .headers()
            .get("x-correlation-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        if status != StatusCode::OK
            || (body["a"] != json!(q * 2) && body["a"] != json!((q * 2).to_string()))
        {
            bail!("ask {q}: the wait got no answer: {status} {body}");
        }
        let of_this = |e: &Value| e["source"]["correlationId"] == correlation.as_str();
        let asked_on = executed_replica(ada, ws, "ask", of_this).await?;
        let answered_by = executed_replica(ada, ws, "answer", of_this).await?;
        eprintln!("ask {q}: waited on {asked_on}, answered by {answered_by}");
        ensure!(
            asked_on == "rt-1",
            "a webhook through gw-1 runs on its runtime"
        );
        ensure!(
            body["seen"] == format!("q{q}").as_str(),
            "ask {q}: `answer` on {answered_by} did not see the run variable `ask` set on {asked_on}: {body}"
        );
        if answered_by == "rt-2" {
            return Ok(());
        }
    }
    bail!("30 questions were all answered on rt-1: the group never handed one to rt-2")
}

/// The runtime that ran `slug` for the first run `pred` picks, once it is in the history.
async fn executed_replica(
    client: &Client,
    ws: &str,
    slug: &str,
    pred: impl Fn(&Value) -> bool,
) -> anyhow::Result<String> {
    let found = client
        .wait_for_event(ws, "runtime.automations.executed", |e| {
            e["payload"]["slug"] == slug && pred(e)
        })
        .await
        .with_context(|| format!("no run of {slug}"))?;
    Ok(found["source"]["host"]["replica"]
        .as_str()
        .unwrap_or("?")
        .to_string())
}

// ---------------------------------------------------------------------------------------------
// The second cluster: an events instance killed, PostgreSQL cut for 10 s, Redis restarted.

/// `database_url` with its `host:port` replaced by `addr` (the proxy), and the original
/// `host:port` as a socket address.
fn through_proxy(
    database_url: &str,
    addr: std::net::SocketAddr,
) -> anyhow::Result<(String, std::net::SocketAddr)> {
    let (scheme, rest) = database_url.split_once("://").context("a database URL")?;
    let (userinfo, hostpath) = match rest.rsplit_once('@') {
        Some((u, h)) => (format!("{u}@"), h),
        None => (String::new(), rest),
    };
    let (host, path) = hostpath
        .split_once('/')
        .map_or((hostpath, ""), |(h, p)| (h, p));
    let host = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:5432")
    };
    let host = host.replace("localhost", "127.0.0.1");
    let backend = host
        .parse()
        .with_context(|| format!("{host} is not an IP:port"))?;
    Ok((format!("{scheme}://{userinfo}{addr}/{path}"), backend))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_survives_a_killed_events_instance_a_postgres_outage_and_a_redis_restart() {
    let Some(shared) = backends() else { return };
    if std::process::Command::new("redis-server")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("fault cluster skipped: redis-server is not installed");
        return;
    }
    let mut redis = RedisServer::start().await.unwrap();
    let (_, postgres) =
        through_proxy(&shared.database_url, "127.0.0.1:1".parse().unwrap()).unwrap();
    // The proxy outlives the cluster (declared first, dropped last): the cluster's drop
    // removes its schema through it.
    let proxy = Proxy::start(postgres).await.unwrap();
    let (database_url, _) = through_proxy(&shared.database_url, proxy.addr).unwrap();
    let backends = SharedBackends {
        redis_url: redis.url(),
        database_url,
        files_url: None,
    };
    let bin = Path::new(env!("CARGO_BIN_EXE_refract-node"));
    let mut cluster = LocalCluster::start(bin, &backends, Shape::default())
        .await
        .unwrap();
    let result = faults(&mut cluster, &proxy, &mut redis).await;
    if let Err(e) = result {
        panic!("{e:#}\n\nprocess logs:\n{}", cluster.logs());
    }
}

async fn faults(
    cluster: &mut LocalCluster,
    proxy: &Proxy,
    redis: &mut RedisServer,
) -> anyhow::Result<()> {
    let ada = cluster.client().signed_up("ada@example.com").await?;
    let ws = ada.workspace("Faults").await?;
    let automation = json!({"slug": "on-order", "name": "Order processor", "when": {"events": ["orders.created"]}, "component": {}});
    ada.deploy(&ws, automation, &example("event-emitter")?)
        .await?;

    events_instance_killed(cluster, &ada, &ws).await?;
    cluster.restart("ev-1").await?;
    postgres_outage(cluster, &ada, &ws, proxy).await?;
    let ada = redis_restart(cluster, &ws, redis).await?;
    let (status, body) = ada
        .json(
            Method::GET,
            &format!("/v2/workspaces/{ws}/automations"),
            None,
        )
        .await?;
    if status != StatusCode::OK {
        bail!("the workspace API after every fault: {status} {body}");
    }
    Ok(())
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket client that remembers what it received.
struct LiveClient {
    ws: Ws,
    id: String,
    /// The newest event id received (or the `hello` position): the reconnect cursor.
    position: Value,
    /// Every event received: (type, id).
    received: Vec<(String, String)>,
}

impl LiveClient {
    /// Opens `/events/ws{query}` on `base` (a gateway or the balancer).
    async fn open(
        base: &str,
        client: &Client,
        ws: &str,
        query: &str,
    ) -> anyhow::Result<LiveClient> {
        let url = format!(
            "{}/v2/workspaces/{ws}/events/ws{query}",
            base.replacen("http", "ws", 1)
        );
        let mut req = url.into_client_request()?;
        req.headers_mut().insert(
            "authorization",
            format!("Bearer {}", client.token.as_deref().unwrap_or_default()).parse()?,
        );
        let (ws, _) = tokio_tungstenite::connect_async(req).await?;
        let mut live = LiveClient {
            ws,
            id: String::new(),
            position: Value::Null,
            received: Vec::new(),
        };
        let hello = live.next_of("hello").await?;
        live.id = hello["socketId"].as_str().context("socketId")?.to_string();
        live.position = hello["lastEventId"].clone();
        Ok(live)
    }

    async fn send(&mut self, frame: Value) -> anyhow::Result<()> {
        Ok(self
            .ws
            .send(Message::Text(frame.to_string().into()))
            .await?)
    }

    /// The next frame; `event` frames are recorded. An error when the socket closes.
    async fn next(&mut self) -> anyhow::Result<Value> {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(30), self.ws.next())
                .await
                .context("no frame in 30 s")?;
            match msg {
                Some(Ok(Message::Text(t))) => {
                    let frame: Value = serde_json::from_str(t.as_str())?;
                    if frame["type"] == "event" {
                        let (ty, id) = (
                            frame["event"]["type"].as_str().unwrap_or("?"),
                            frame["event"]["id"].as_str().unwrap_or("?"),
                        );
                        self.received.push((ty.to_string(), id.to_string()));
                        self.position = frame["event"]["id"].clone();
                    }
                    return Ok(frame);
                }
                Some(Ok(Message::Close(c))) => bail!("closed: {c:?}"),
                Some(Ok(_)) => {}
                Some(Err(e)) => bail!("socket error: {e}"),
                None => bail!("socket ended"),
            }
        }
    }

    async fn next_of(&mut self, kind: &str) -> anyhow::Result<Value> {
        loop {
            let frame = self.next().await?;
            if frame["type"] == kind {
                return Ok(frame);
            }
            if frame["type"] == "error" {
                bail!("error frame while waiting for {kind}: {frame}");
            }
        }
    }

    /// Reads until every id of `want` was received.
    async fn until_received(&mut self, want: &BTreeSet<String>) -> anyhow::Result<()> {
        while !want
            .iter()
            .all(|id| self.received.iter().any(|(_, r)| r == id))
        {
            self.next().await?;
        }
        Ok(())
    }

    /// How many times each id of `want` was received.
    fn counts(&self, want: &BTreeSet<String>) -> BTreeMap<String, usize> {
        want.iter()
            .map(|id| {
                (
                    id.clone(),
                    self.received.iter().filter(|(_, r)| r == id).count(),
                )
            })
            .collect()
    }
}

/// Emits `events` over HTTP; returns their ids.
async fn emit_http(client: &Client, ws: &str, events: Value) -> anyhow::Result<Vec<String>> {
    let (status, body) = client
        .json(
            Method::POST,
            &format!("/v2/workspaces/{ws}/events"),
            Some(json!({"events": events})),
        )
        .await?;
    if !status.is_success() {
        bail!("emit: {status} {body}");
    }
    Ok(body
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default())
}

/// How many times each event of `types` is in the history, by id.
async fn history_counts(
    client: &Client,
    ws: &str,
    types: &str,
) -> anyhow::Result<BTreeMap<String, usize>> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for page in 0..100 {
        let path = format!("/v2/workspaces/{ws}/events?types={types}&limit=100&page={page}");
        let (status, body) = client.json(Method::GET, &path, None).await?;
        if status != StatusCode::OK {
            bail!("reading the history: {status} {body}");
        }
        let events = body["result"]["events"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for e in &events {
            *counts
                .entry(e["id"].as_str().unwrap_or("?").to_string())
                .or_default() += 1;
        }
        if events.len() < 100 {
            break;
        }
    }
    Ok(counts)
}

/// Waits until every id of `want` is in the history; fails if one is there twice.
async fn until_in_history(
    client: &Client,
    ws: &str,
    types: &str,
    want: &BTreeSet<String>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let counts = history_counts(client, ws, types).await?;
        let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
        if !twice.is_empty() {
            bail!("events stored twice: {twice:?}");
        }
        let missing: Vec<_> = want.iter().filter(|id| !counts.contains_key(*id)).collect();
        if missing.is_empty() {
            return Ok(());
        }
        if started.elapsed() > PATIENCE {
            bail!("acknowledged events never stored: {missing:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// SIGKILL `ev-1` while its WebSocket client `a` (connected through gw-1) is receiving its own
/// emits and events targeted at its user: `a` reconnects through the balancer (to ev-2, the
/// only one left) with its socket id and receives every event once; `b`, on ev-2 all along,
/// never sees `a`'s socket events; the history has every event once.
async fn events_instance_killed(
    cluster: &mut LocalCluster,
    ada: &Client,
    ws: &str,
) -> anyhow::Result<()> {
    let query = "?types=note.*";
    let mut a = LiveClient::open(cluster.node_url("gw-1").context("gw-1")?, ada, ws, query).await?;
    let mut b = LiveClient::open(cluster.node_url("gw-2").context("gw-2")?, ada, ws, query).await?;

    // Events from socket a reach a only.
    a.send(json!({"type": "emit", "events": (0..5).map(|k| json!({"type": "note.own", "payload": {"k": k}})).collect::<Vec<_>>()})).await?;
    let emitted = a.next_of("emitted").await?;
    let own: BTreeSet<String> = emitted["ids"]
        .as_array()
        .context("ids")?
        .iter()
        .filter_map(|i| i.as_str().map(str::to_string))
        .collect();
    a.until_received(&own).await?;

    // Events targeted at ada's user keep coming (through gw-2, whose events instance lives)
    // while ev-1 dies.
    let (_, me) = ada.json(Method::GET, "/v2/me", None).await?;
    let user = me["id"].as_str().context("my id")?.to_string();
    let gw2 = Client {
        url: cluster.node_url("gw-2").context("gw-2")?.to_string(),
        ..ada.clone()
    };
    let emitter = {
        let (gw2, ws, user) = (gw2.clone(), ws.to_string(), user.clone());
        tokio::spawn(async move {
            let mut ids = BTreeSet::new();
            for n in 0..40 {
                ids.extend(emit_http(&gw2, &ws, json!([{"type": "note.user", "payload": {"n": n}, "target": {"userId": user}}])).await?);
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
            anyhow::Ok(ids)
        })
    };
    // Read a until the kill closes it.
    let kill_at = Instant::now() + Duration::from_millis(400);
    let mut killed = None;
    loop {
        if killed.is_none() && Instant::now() >= kill_at {
            cluster.kill("ev-1")?;
            killed = Some(Instant::now());
        }
        match tokio::time::timeout(Duration::from_millis(100), a.next()).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => break,
            Err(_) => {}
        }
    }
    let killed = killed.context("socket a closed before the kill")?;
    let closed_after = killed.elapsed();

    // Away for half a second (targeted events keep coming), then reconnect through the
    // balancer: whichever gateway takes it, ev-2 answers (gw-1 fails over from the dead ev-1).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut again = None;
    for _ in 0..20 {
        match LiveClient::open(&cluster.url, ada, ws, query).await {
            Ok(c) => {
                again = Some(c);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let mut again = again.context("no events instance took the reconnect")?;
    again
        .send(json!({"type": "reconnect", "socketId": a.id, "lastEventId": a.position}))
        .await?;
    let ack = again.next_of("reconnected").await?;
    let reconnected = killed.elapsed();
    ensure!(
        ack["socketId"] == json!(a.id),
        "the socket keeps its id: {ack}"
    );
    ensure!(ack["complete"] == json!(true), "{ack}");
    ensure!(
        ack["replayed"].as_u64().is_some_and(|n| n > 0),
        "the gap was replayed: {ack}"
    );
    let targeted = emitter.await??;

    // Its own emits once more: they go to that socket only, whichever instance serves it.
    again
        .send(json!({"type": "emit", "events": [{"type": "note.own", "payload": {"k": 99}}]}))
        .await?;
    let emitted = again.next_of("emitted").await?;
    let own_after: BTreeSet<String> = emitted["ids"]
        .as_array()
        .context("ids")?
        .iter()
        .filter_map(|i| i.as_str().map(str::to_string))
        .collect();

    let mut all_for_a: BTreeSet<String> = targeted.union(&own).cloned().collect();
    all_for_a.extend(own_after.iter().cloned());
    // Before the kill on the old socket, after it on the new one.
    let received = |again: &LiveClient| -> Vec<(String, String)> {
        a.received.iter().chain(&again.received).cloned().collect()
    };
    while !all_for_a
        .iter()
        .all(|id| received(&again).iter().any(|(_, r)| r == id))
    {
        again.next().await?;
    }
    b.until_received(&targeted).await?;
    let got = received(&again);
    let dupes: Vec<_> = all_for_a
        .iter()
        .filter(|id| got.iter().filter(|(_, r)| r == *id).count() != 1)
        .collect();
    ensure!(
        dupes.is_empty(),
        "socket a got these events other than once: {dupes:?}"
    );
    let leaked: Vec<_> = b
        .received
        .iter()
        .filter(|(ty, _)| ty == "note.own")
        .collect();
    ensure!(
        leaked.is_empty(),
        "b received a's socket events: {leaked:?}"
    );
    ensure!(
        b.counts(&targeted).values().all(|n| *n == 1),
        "b got a targeted event twice"
    );

    // Through gw-2, which prefers the live ev-2.
    let history = Instant::now();
    until_in_history(&gw2, ws, "note.own,note.user", &all_for_a).await?;
    eprintln!(
        "events kill: socket closed {closed_after:.1?} after the kill, reconnected (ack) {reconnected:.1?} after it, replayed {}; history complete {:.1?} later",
        ack["replayed"],
        history.elapsed()
    );
    Ok(())
}

/// Readiness of `node` if the service has the endpoint: `Some(ready)`, `None` without one.
async fn readiness(cluster: &LocalCluster, node: &str) -> Option<bool> {
    let url = format!("{}/sys/readiness", cluster.node_url(node)?);
    let res = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .ok()?
        .get(url)
        .send()
        .await
        .ok()?;
    match res.status() {
        StatusCode::NOT_FOUND => None,
        status => Some(status.is_success()),
    }
}

/// PostgreSQL unreachable for 10 s while orders keep coming through the balancer: every
/// order the platform acknowledged is stored once after the outage, and processed; services
/// recover without a restart (and say not-ready meanwhile, when they have readiness).
async fn postgres_outage(
    cluster: &mut LocalCluster,
    ada: &Client,
    ws: &str,
    proxy: &Proxy,
) -> anyhow::Result<()> {
    let emitter = {
        let (ada, ws) = (ada.clone(), ws.to_string());
        tokio::spawn(async move {
            let (mut acked, mut refused) = (BTreeMap::new(), 0);
            for n in 1_000..1_160u64 {
                let body = json!({"events": [{"type": "orders.created", "payload": {"n": n}}]});
                match ada
                    .json(
                        Method::POST,
                        &format!("/v2/workspaces/{ws}/events"),
                        Some(body),
                    )
                    .await
                {
                    Ok((status, answer)) if status.is_success() => {
                        if let Some(id) = answer[0]["id"].as_str() {
                            acked.insert(n, id.to_string());
                        }
                    }
                    _ => refused += 1,
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (acked, refused)
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy.cut();
    let cut_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let during = (
        readiness(cluster, "ev-1").await,
        readiness(cluster, "ws-1").await,
    );
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(cut_at.elapsed())).await;
    proxy.restore();
    let restored = Instant::now();
    eprintln!(
        "postgres cut for {:.1?}; readiness during (ev-1, ws-1): {during:?}",
        cut_at.elapsed()
    );
    if let Some(ready) = during.0 {
        ensure!(!ready, "ev-1 reported ready without its database");
    }
    if let Some(ready) = during.1 {
        ensure!(!ready, "ws-1 reported ready without its database");
    }
    // The workspace API answers again without a restart.
    loop {
        let (status, _) = ada
            .json(
                Method::GET,
                &format!("/v2/workspaces/{ws}/automations"),
                None,
            )
            .await?;
        if status == StatusCode::OK {
            break;
        }
        if restored.elapsed() > PATIENCE {
            bail!("the workspaces service did not recover: {status}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let api_back = restored.elapsed();
    let (acked, refused) = emitter.await?;
    let ids: BTreeSet<String> = acked.values().cloned().collect();
    until_in_history(ada, ws, "orders.created", &ids).await?;
    let stored = restored.elapsed();
    let ns: BTreeSet<u64> = acked.keys().copied().collect();
    until_all_ran(ada, ws, &ns).await?;
    let ready_again = (
        readiness(cluster, "ev-1").await,
        readiness(cluster, "ws-1").await,
    );
    ensure!(
        ready_again.0 != Some(false) && ready_again.1 != Some(false),
        "ready again after the outage: {ready_again:?}"
    );
    eprintln!(
        "postgres outage: {} orders acknowledged, {refused} refused; API back {api_back:.1?} after the restore, every acknowledged order stored once {stored:.1?} after, all processed {:.1?} after",
        acked.len(),
        restored.elapsed()
    );
    Ok(())
}

/// Redis killed and started empty: services reconnect, recreate their consumer groups, and
/// new events are processed. Sessions lived in Redis, so the user logs in again.
async fn redis_restart(
    cluster: &mut LocalCluster,
    ws: &str,
    redis: &mut RedisServer,
) -> anyhow::Result<Client> {
    redis.restart(Duration::from_secs(1)).await?;
    let restarted = Instant::now();
    let ada = loop {
        match cluster
            .client()
            .logged_in("ada@example.com", "correct horse battery")
            .await
        {
            Ok(client) => break client,
            Err(e) if restarted.elapsed() > PATIENCE => {
                return Err(e.context("logging in after the Redis restart"));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    let login_back = restarted.elapsed();
    let mut acked = BTreeMap::new();
    let mut n = 2_000u64;
    while acked.len() < 20 {
        let body = json!({"events": [{"type": "orders.created", "payload": {"n": n}}]});
        if let Ok((status, answer)) = ada_emit(&ada, ws, body).await
            && status.is_success()
            && let Some(id) = answer[0]["id"].as_str()
        {
            acked.insert(n, id.to_string());
        }
        if restarted.elapsed() > PATIENCE {
            bail!("no emit accepted after the Redis restart");
        }
        n += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ns: BTreeSet<u64> = acked.keys().copied().collect();
    until_all_ran(&ada, ws, &ns).await?;
    let processed = restarted.elapsed();
    let ids: BTreeSet<String> = acked.values().cloned().collect();
    until_in_history(&ada, ws, "orders.created", &ids).await?;
    eprintln!(
        "redis restart: login works {login_back:.1?} after, 20 new orders processed {processed:.1?} after, stored {:.1?} after",
        restarted.elapsed()
    );
    Ok(ada)
}

async fn ada_emit(ada: &Client, ws: &str, body: Value) -> anyhow::Result<(StatusCode, Value)> {
    ada.json(
        Method::POST,
        &format!("/v2/workspaces/{ws}/events"),
        Some(body),
    )
    .await
}
