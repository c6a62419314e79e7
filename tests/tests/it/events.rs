//! The events service end to end: live delivery over WebSocket through the gateway (filters,
//! targeting, reconnection), long-polling, history search, and ingestion that survives a
//! killed instance.

use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use refract_tests::platform::{Client, Platform, example};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// How long a test waits for one frame before failing.
const FRAME_WAIT: Duration = Duration::from_secs(20);

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket client of `/v2/workspaces/{id}/events/ws`.
struct Socket {
    ws: Ws,
    hello: Value,
}

impl Socket {
    async fn open(client: &Client, workspace: &str, query: &str) -> Socket {
        let url = format!(
            "{}/v2/workspaces/{workspace}/events/ws{query}",
            client.url.replacen("http", "ws", 1)
        );
        let mut req = url.into_client_request().expect("request");
        let token = client.token.as_deref().expect("a logged-in client");
        req.headers_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("header"),
        );
        let (ws, _) = tokio_tungstenite::connect_async(req)
            .await
            .expect("upgrade");
        let mut socket = Socket {
            ws,
            hello: Value::Null,
        };
        socket.hello = socket.next_of("hello").await;
        socket
    }

    fn id(&self) -> String {
        self.hello["socketId"]
            .as_str()
            .expect("socketId")
            .to_string()
    }

    async fn send(&mut self, frame: Value) {
        self.ws
            .send(Message::Text(frame.to_string().into()))
            .await
            .expect("send");
    }

    /// The next JSON frame.
    async fn next(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(FRAME_WAIT, self.ws.next())
                .await
                .expect("a frame in time");
            match msg.expect("socket open").expect("frame") {
                Message::Text(t) => return serde_json::from_str(t.as_str()).expect("JSON frame"),
                Message::Close(c) => panic!("closed by the server: {c:?}"),
                _ => {}
            }
        }
    }

    /// The next frame of `kind`, skipping others.
    async fn next_of(&mut self, kind: &str) -> Value {
        loop {
            let frame = self.next().await;
            if frame["type"] == kind {
                return frame;
            }
            assert_ne!(frame["type"], "error", "{frame}");
        }
    }

    /// The next delivered event.
    async fn event(&mut self) -> Value {
        self.next_of("event").await["event"].clone()
    }

    /// Closes and waits for the server's close reply (sent once it detached the socket).
    async fn close(mut self) {
        let _ = self.ws.close(None).await;
        while let Ok(Some(Ok(_))) = tokio::time::timeout(FRAME_WAIT, self.ws.next()).await {}
    }
}

async fn emit(client: &Client, ws: &str, events: Value) -> Value {
    let (status, body) = client
        .json(
            Method::POST,
            &format!("/v2/workspaces/{ws}/events"),
            Some(json!({ "events": events })),
        )
        .await
        .expect("emit");
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// An automation's events reach a connected socket in order after their trigger; the
/// socket's filters, from the query string or replaced by `subscribe`, select what arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_receive_an_automations_events_in_order_through_their_filters() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(dir.path()).await.unwrap();
    let ada = platform
        .client()
        .signed_up("ada@example.com")
        .await
        .unwrap();
    let ws = ada.workspace("Live").await.unwrap();
    let automation = json!({"slug": "on-order", "name": "On order", "when": {"events": ["orders.created"]}, "component": {}});
    ada.deploy(&ws, automation, &example("event-emitter").unwrap())
        .await
        .unwrap();

    let mut socket = Socket::open(&ada, &ws, "?types=orders.*").await;
    assert_eq!(socket.hello["protocol"], "refract.events.v1");
    emit(&ada, &ws, json!([{"type": "noise"}])).await;
    for n in 1..=3 {
        emit(
            &ada,
            &ws,
            json!([{"type": "orders.created", "payload": {"n": n}}]),
        )
        .await;
    }
    let mut seen = Vec::new();
    while seen.len() < 6 {
        let e = socket.event().await;
        let n = e["payload"]["n"]
            .as_i64()
            .or_else(|| e["payload"]["original"]["n"].as_i64())
            .expect("n");
        seen.push((e["type"].as_str().unwrap().to_string(), n));
    }
    let created: Vec<i64> = seen
        .iter()
        .filter(|(t, _)| t == "orders.created")
        .map(|(_, n)| *n)
        .collect();
    assert_eq!(
        created,
        vec![1, 2, 3],
        "triggers arrive in publish order: {seen:?}"
    );
    for n in 1..=3 {
        let trigger = seen
            .iter()
            .position(|(t, m)| t == "orders.created" && *m == n)
            .unwrap();
        let derived = seen
            .iter()
            .position(|(t, m)| t == "orders.created.processed" && *m == n)
            .expect("derived event");
        assert!(
            trigger < derived,
            "the automation's event follows its trigger: {seen:?}"
        );
    }
    assert!(
        seen.iter().all(|(t, _)| t != "noise"),
        "the type filter keeps other types out"
    );

    socket.send(json!({"type": "subscribe", "ref": "r1", "filters": {"types": ["custom.*"], "payloadQuery": {"color": "red"}}})).await;
    let ack = socket.next_of("subscribed").await;
    assert_eq!(
        (
            ack["ref"].clone(),
            ack["filters"]["payloadQuery"]["payload.color"].clone()
        ),
        (json!("r1"), json!("red"))
    );
    emit(
        &ada,
        &ws,
        json!([
            {"type": "orders.created", "payload": {"n": 4}},
            {"type": "custom.paint", "payload": {"color": "blue"}},
            {"type": "custom.paint", "payload": {"color": "red"}}
        ]),
    )
    .await;
    let e = socket.event().await;
    assert_eq!(
        (e["type"].clone(), e["payload"]["color"].clone()),
        (json!("custom.paint"), json!("red"))
    );

    // Emitting from the socket: acknowledged with ids, routed back to this socket.
    socket.send(json!({"type": "emit", "ref": "e1", "events": [{"type": "custom.chat", "payload": {"color": "red"}}]})).await;
    let emitted = socket.next_of("emitted").await;
    assert_eq!(emitted["ref"], "e1");
    let e = socket.event().await;
    assert_eq!(
        (e["id"].clone(), e["source"]["socketId"].clone()),
        (emitted["ids"][0].clone(), json!(socket.id()))
    );
    socket
        .send(json!({"type": "emit", "events": [{"type": "runtime.fake"}]}))
        .await;
    assert_eq!(socket.next_of("error").await["error"], "ReservedEventType");
    socket
        .send(json!({"type": "subscribe", "filters": {"payloadQuery": {"x": "a*"}}}))
        .await;
    assert_eq!(socket.next_of("error").await["error"], "InvalidQuery");
    socket.send(json!({"type": "ping", "ref": "p"})).await;
    assert_eq!(socket.next_of("pong").await["ref"], "p");

    // An automation triggered by a socket's event answers that socket: its events carry the
    // trigger's socket id, and another socket of the same user gets neither.
    socket
        .send(json!({"type": "subscribe", "ref": "r2", "filters": {"types": ["orders.*"]}}))
        .await;
    socket.next_of("subscribed").await;
    let mut other = Socket::open(&ada, &ws, "?types=orders.*").await;
    socket
        .send(json!({"type": "emit", "events": [{"type": "orders.created", "payload": {"n": 5}}]}))
        .await;
    let answer = loop {
        let e = socket.event().await;
        if e["type"] == "orders.created.processed" {
            break e;
        }
    };
    assert_eq!(answer["source"]["socketId"], json!(socket.id()), "{answer}");
    emit(
        &ada,
        &ws,
        json!([{"type": "orders.created", "payload": {"n": 6}}]),
    )
    .await;
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|e: &Value| e["type"] == "orders.created.processed")
    {
        seen.push(other.event().await);
    }
    let of = |e: &Value| {
        e["payload"]["n"]
            .as_i64()
            .or_else(|| e["payload"]["original"]["n"].as_i64())
    };
    assert!(
        seen.iter().all(|e| of(e) == Some(6)),
        "the other socket got only the HTTP-emitted order: {seen:?}"
    );

    // A DSL automation sees the socket in `run.socketId`, and keeps variables per socket in
    // the `socket` scope (WIT 0.1.4).
    let answer = json!({"slug": "answer", "name": "Answer", "when": {"events": ["orders.asked"]},
    "do": [
        {"set": {"name": "socket.asked", "value": "{% ({{socket.asked}} || 0) + 1 %}"}},
        {"emit": {"event": "orders.answered", "payload": {"socket": "{{run.socketId}}", "count": "{{socket.asked}}"}}}
    ]});
    ada.create_automation(&ws, answer).await.unwrap();
    // The runtime learns of the automation from the broker: ask until it answers.
    let answered = 'ask: loop {
        socket
            .send(json!({"type": "emit", "events": [{"type": "orders.asked"}]}))
            .await;
        let until = tokio::time::Instant::now() + Duration::from_millis(500);
        while let Ok(e) = tokio::time::timeout_at(until, socket.event()).await {
            if e["type"] == "orders.answered" {
                break 'ask e;
            }
        }
    };
    assert_eq!(
        answered["payload"]["socket"],
        json!(socket.id()),
        "{answered}"
    );
    async fn answer_on(socket: &mut Socket) -> Value {
        socket
            .send(json!({"type": "emit", "events": [{"type": "orders.asked"}]}))
            .await;
        loop {
            let e = socket.event().await;
            if e["type"] == "orders.answered" {
                break e;
            }
        }
    }
    // The loop above may have left asks in flight, answered concurrently from the same
    // snapshot (last writer wins): ask one at a time until the count has moved on.
    let first = answered["payload"]["count"].as_i64().expect("a count");
    let mut answers = Vec::new();
    while answers.len() < 8 {
        let again = answer_on(&mut socket).await;
        answers.push(again["payload"]["count"].clone());
        if again["payload"]["count"].as_i64() > Some(first) {
            break;
        }
    }
    assert!(
        answers.last().and_then(Value::as_i64) > Some(first),
        "the socket's own scope counts on: {first} then {answers:?}"
    );
    let elsewhere = answer_on(&mut other).await;
    assert_eq!(
        (
            &elsewhere["payload"]["socket"],
            &elsewhere["payload"]["count"]
        ),
        (&json!(other.id()), &json!(1)),
        "another socket of the same user has a scope of its own: {elsewhere}"
    );
    platform.stop().await.unwrap();
}

/// A second user never receives the first user's targeted events; a socket that reconnects
/// with its id gets what was targeted at it while it was away, and only its session may.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targeted_events_reach_only_their_user_and_survive_a_reconnect() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(dir.path()).await.unwrap();
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
    let ws = ada.workspace("Shared").await.unwrap();
    let (_, me) = bob.json(Method::GET, "/v2/me", None).await.unwrap();
    let bob_id = me["id"].as_str().expect("bob's id").to_string();
    let (status, body) = ada
        .json(
            Method::POST,
            &format!("/v2/workspaces/{ws}/permissions"),
            Some(json!({"target": {"id": bob_id}, "permissions": {"role": "viewer"}})),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");

    let first = Socket::open(&ada, &ws, "").await;
    let ada_id = first.hello["userId"].as_str().unwrap().to_string();
    let mut bobs = Socket::open(&bob, &ws, "").await;
    let old_id = first.id();
    let position = first.hello["lastEventId"].clone();
    first.close().await;

    emit(
        &ada,
        &ws,
        json!([
            {"type": "secret.note", "payload": {"for": "ada"}, "target": {"userId": ada_id}},
            {"type": "public.note"}
        ]),
    )
    .await;
    assert_eq!(
        bobs.event().await["type"],
        "public.note",
        "bob skips ada's targeted event"
    );

    let mut again = Socket::open(&ada, &ws, "").await;
    // Bob cannot take ada's socket over.
    bobs.send(json!({"type": "reconnect", "socketId": old_id}))
        .await;
    assert_eq!(bobs.next_of("error").await["error"], "ForbiddenError");
    again
        .send(json!({"type": "reconnect", "socketId": old_id, "lastEventId": position}))
        .await;
    let replayed = again.event().await;
    assert_eq!(replayed["type"], "secret.note");
    assert_eq!(again.event().await["type"], "public.note");
    let ack = again.next_of("reconnected").await;
    assert_eq!(
        (
            ack["socketId"].clone(),
            ack["replayed"].clone(),
            ack["complete"].clone()
        ),
        (json!(old_id), json!(2), json!(true))
    );

    // Targeting another user needs the editor role: bob is a viewer.
    let (status, body) = bob
        .json(
            Method::POST,
            &format!("/v2/workspaces/{ws}/events"),
            Some(json!({"events": [{"type": "x", "target": {"userId": ada_id}}]})),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    platform.stop().await.unwrap();
}

/// History search returns what was emitted, paginated, with its filters applied; a
/// long-poll after the newest id answers when the next event is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_search_pages_and_long_polls() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(dir.path()).await.unwrap();
    let ada = platform
        .client()
        .signed_up("ada@example.com")
        .await
        .unwrap();
    let ws = ada.workspace("Search").await.unwrap();
    let colors = ["red", "blue", "red", "green", "red"];
    let events: Vec<Value> = colors.iter().enumerate().map(|(i, c)| json!({"type": "paint.done", "payload": {"i": i, "color": c, "note": format!("coat {c}")}})).collect();
    let published = emit(&ada, &ws, Value::Array(events)).await;
    let last = published[4]["id"].as_str().unwrap().to_string();
    ada.wait_for_event(&ws, "paint.done", |e| e["id"] == last.as_str())
        .await
        .unwrap();

    let search = |body: Value| {
        let ada = ada.clone();
        let ws = ws.clone();
        async move {
            ada.json(
                Method::POST,
                &format!("/v2/workspaces/{ws}/search"),
                Some(body),
            )
            .await
            .unwrap()
        }
    };
    let red = json!({"and": [{"field": "type", "op": "eq", "value": "paint.done"}, {"field": "payload.color", "op": "eq", "value": "red"}]});
    let (status, page0) = search(json!({"where": red, "limit": 2, "page": 0, "sort": [{"field": "createdAt", "order": "asc"}]})).await;
    assert_eq!(status, StatusCode::OK, "{page0}");
    let (_, page1) = search(json!({"where": red, "limit": 2, "page": 1, "sort": [{"field": "createdAt", "order": "asc"}], "fields": ["id", "payload.i"]})).await;
    let is = |page: &Value| {
        page["documents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["payload"]["i"].as_i64().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        (page0["size"].clone(), is(&page0), is(&page1)),
        (json!(3), vec![0, 2], vec![4])
    );
    assert!(
        page1["documents"][0].get("type").is_none(),
        "only the asked fields: {page1}"
    );
    let (_, text) = search(json!({"where": {"text": "coat green"}})).await;
    assert_eq!(is(&text), vec![3]);
    let (status, body) = search(json!({"query": {"match_all": {}}})).await;
    assert_eq!(
        (status, body["details"]["reason"].clone()),
        (StatusCode::BAD_REQUEST, json!("use-where"))
    );

    let (_, history) = ada
        .json(
            Method::GET,
            &format!("/v2/workspaces/{ws}/events?types=paint.done&payload.color=red&limit=2"),
            None,
        )
        .await
        .unwrap();
    let got: Vec<i64> = history["result"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["payload"]["i"].as_i64().unwrap())
        .collect();
    assert_eq!(got, vec![4, 2], "newest first, filtered, limited");

    let poller = ada.clone();
    let path = format!("/v2/workspaces/{ws}/events?afterId={last}&wait=10&types=paint.done");
    let poll = tokio::spawn(async move { poller.json(Method::GET, &path, None).await.unwrap() });
    tokio::time::sleep(Duration::from_millis(300)).await;
    emit(
        &ada,
        &ws,
        json!([{"type": "paint.done", "payload": {"i": 5, "color": "white"}}]),
    )
    .await;
    let (status, body) = poll.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"]["events"][0]["payload"]["i"], 5, "{body}");
    platform.stop().await.unwrap();
}

/// With the events service reached over HTTP (distributed mode), the gateway still carries
/// the authenticated upgrade, and events flow to the socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_reach_an_events_service_over_http() {
    use refract_broker::{Broker, BrokerConfig, MemoryBroker};
    use refract_gateway::Upstream;
    use refract_storage::{Cache, Collections, Expect, MemoryStore, collections::PERMISSIONS};

    let broker: Arc<dyn Broker> = Arc::new(MemoryBroker::new(BrokerConfig::default()));
    let store = Arc::new(MemoryStore::new());
    let cache: Arc<dyn Cache> = Arc::new(refract_storage::cache::MemoryCache::new("it"));
    let events = refract_events::EventsState::new(
        broker.clone(),
        store.clone(),
        cache.clone(),
        refract_events::Config::new("e1"),
    );
    let live = tokio::spawn(refract_events::run_live(
        events.clone(),
        std::future::pending(),
    ));
    let serve = |app: axum::Router| async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let server = tokio::spawn(async move {
            let _ = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .await;
        });
        (url, server)
    };
    let (events_url, events_server) = serve(refract_events::router(events)).await;
    let upstream = Upstream::http("events_url", [events_url]).expect("a valid URL");
    let upstreams = refract_gateway::Upstreams {
        workspaces: upstream.clone(),
        runtime: upstream.clone(),
        events: upstream,
    };
    let gateway = refract_gateway::GatewayState::new(
        refract_gateway::Config::default(),
        store.clone(),
        cache,
        broker.clone(),
        upstreams,
    )
    .expect("gateway");
    let (url, gateway_server) = serve(refract_gateway::router(gateway)).await;

    let ada = Client {
        http: reqwest::Client::new(),
        url,
        token: None,
    }
    .signed_up("ada@example.com")
    .await
    .unwrap();
    let (_, me) = ada.json(Method::GET, "/v2/me", None).await.unwrap();
    let id = me["id"].as_str().expect("id");
    let membership = json!({"workspaceId": "w1", "userId": id, "role": "owner"});
    store
        .put(
            &PERMISSIONS,
            &refract_core::model::permission_doc_id("w1", id),
            &membership,
            Expect::Any,
        )
        .await
        .expect("membership");

    let mut socket = Socket::open(&ada, "w1", "").await;
    assert_eq!(socket.hello["userId"], id);
    emit(
        &ada,
        "w1",
        json!([{"type": "over.http", "payload": {"ok": true}}]),
    )
    .await;
    assert_eq!(socket.event().await["type"], "over.http");
    live.abort();
    events_server.abort();
    gateway_server.abort();
}

/// Ingestion survives an instance killed after writing a batch but before acknowledging it:
/// another instance re-reads the batch from Redis and the history keeps each event once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_left_by_a_killed_instance_is_stored_once() {
    let Ok(url) = std::env::var("REFRACT_TEST_REDIS_URL") else {
        eprintln!("skipped: set REFRACT_TEST_REDIS_URL to run the Redis ingestion test");
        return;
    };
    use refract_broker::{Broker, BrokerConfig, RedisBroker};
    use refract_storage::{DocumentStore, EventHistory, HistoryQuery, MemoryStore};

    let namespace = format!("it-events-{}", uuid_like());
    let config = BrokerConfig {
        namespace,
        claim_idle: Duration::from_millis(600),
        block: Duration::from_millis(200),
        ..BrokerConfig::default()
    };
    let broker: Arc<dyn Broker> =
        Arc::new(RedisBroker::connect(&url, config).await.expect("redis"));
    let history = Arc::new(MemoryStore::new());
    let cache = Arc::new(refract_storage::cache::MemoryCache::new("it"));
    let state = |store: Arc<dyn DocumentStore>, name: &str| {
        refract_events::EventsState::new(
            broker.clone(),
            store,
            cache.clone(),
            refract_events::Config::new(name),
        )
    };

    // Instance A stores its first batch, then hangs before acknowledging it; it is killed.
    let a_store = Arc::new(probe::Probe::new(history.clone(), true));
    let a = tokio::spawn(refract_events::run_ingest(
        state(a_store.clone(), "a"),
        std::future::pending(),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let workspace = refract_core::WorkspaceId::new("wskill").unwrap();
    for i in 0..20 {
        let mut payload = serde_json::Map::new();
        payload.insert("i".into(), json!(i));
        let event = refract_core::Event::new(
            refract_core::EventType::new("batch.item").unwrap(),
            Some(workspace.clone()),
            payload,
        );
        broker.publish(event).await.expect("publish");
    }
    let count = || async {
        history
            .count(&HistoryQuery::new(workspace.clone()))
            .await
            .expect("count")
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while count().await == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stored_by_a = count().await;
    assert!(stored_by_a > 0, "A wrote a batch");
    a.abort();
    let _ = a.await;

    // Instance B reads the rest and reclaims A's unacknowledged batch: appended again, and
    // skipped as already stored.
    let b_store = Arc::new(probe::Probe::new(history.clone(), false));
    let b = tokio::spawn(refract_events::run_ingest(
        state(b_store.clone(), "b"),
        std::future::pending(),
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while b_store.duplicates() < stored_by_a && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        b_store.duplicates(),
        stored_by_a,
        "B re-read exactly A's unacknowledged batch"
    );
    assert_eq!(count().await, 20, "every event is stored, once");
    b.abort();
}

fn uuid_like() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
    )
}

/// A store that writes appends through and counts the duplicates it was handed; when
/// `stall`, it never returns from an append: an instance that dies between storing a batch
/// and acknowledging it.
mod probe {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use async_trait::async_trait;
    use chrono::{DateTime, Utc};
    use refract_core::{Event, WorkspaceId};
    use refract_storage::{
        AppendOutcome, CollectionSpec, Collections, Document, DocumentStore, EventHistory, Expect,
        HistoryQuery, MemoryStore, Result,
    };
    use serde_json::Value;

    pub struct Probe {
        inner: Arc<MemoryStore>,
        stall: bool,
        duplicates: AtomicU64,
    }

    impl Probe {
        pub fn new(inner: Arc<MemoryStore>, stall: bool) -> Self {
            Self {
                inner,
                stall,
                duplicates: AtomicU64::new(0),
            }
        }

        pub fn duplicates(&self) -> u64 {
            self.duplicates.load(Ordering::Relaxed)
        }
    }

    #[async_trait]
    impl EventHistory for Probe {
        async fn append(&self, events: &[Arc<Event>]) -> Result<AppendOutcome> {
            let outcome = self.inner.append(events).await?;
            self.duplicates
                .fetch_add(outcome.duplicates, Ordering::Relaxed);
            if self.stall {
                std::future::pending::<()>().await;
            }
            Ok(outcome)
        }
        async fn query(&self, q: &HistoryQuery) -> Result<Vec<Event>> {
            self.inner.query(q).await
        }
        async fn count(&self, q: &HistoryQuery) -> Result<u64> {
            self.inner.count(q).await
        }
        async fn delete_workspace(&self, w: &WorkspaceId) -> Result<u64> {
            self.inner.delete_workspace(w).await
        }
        async fn delete_workspace_before(
            &self,
            w: &WorkspaceId,
            cutoff: DateTime<Utc>,
        ) -> Result<u64> {
            self.inner.delete_workspace_before(w, cutoff).await
        }
        async fn workspaces(&self) -> Result<Vec<WorkspaceId>> {
            self.inner.workspaces().await
        }
    }

    #[async_trait]
    impl Collections for Probe {
        async fn put(
            &self,
            c: &CollectionSpec,
            id: &str,
            body: &Value,
            expect: Expect,
        ) -> Result<Document> {
            self.inner.put(c, id, body, expect).await
        }
        async fn get(&self, c: &CollectionSpec, id: &str) -> Result<Option<Document>> {
            self.inner.get(c, id).await
        }
        async fn delete(&self, c: &CollectionSpec, id: &str, expect: Expect) -> Result<bool> {
            self.inner.delete(c, id, expect).await
        }
        async fn find_after(
            &self,
            c: &CollectionSpec,
            field: &str,
            value: &Value,
            after: Option<&str>,
            limit: u32,
        ) -> Result<Vec<Document>> {
            self.inner.find_after(c, field, value, after, limit).await
        }
    }

    #[async_trait]
    impl DocumentStore for Probe {
        fn describe(&self) -> String {
            "probe".into()
        }
        async fn ping(&self) -> Result<()> {
            Ok(())
        }
    }
}
