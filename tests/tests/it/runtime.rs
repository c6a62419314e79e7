//! The runtime service with real guest components: webhooks, event triggers, emit and wait
//! across instances, calls, state, and schedules firing once per tick with two instances on one
//! broker and cache (in memory, and on Redis when `REFRACT_TEST_REDIS_URL` is set).
//!
//! Components are the SDK examples (`guest-sdk/examples`, built here once per test binary)
//! and the `hostile`/`trivial` fixtures; they are compiled once into a shared host whose
//! artifacts live in a shared in-memory file store, as the workspaces service would leave them.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{Context, bail};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use refract_broker::{Broker, BrokerConfig, MemoryBroker, Subscriber, Subscription, TypeFilter};
use refract_core::model::{Automation, automation_doc_id, permission_doc_id};
use refract_core::{Event, EventType, SourceHost, WorkspaceId};
use refract_host::{ComponentDigest, Host, HostConfig};
use refract_runtime::{Config, RuntimeState, SandboxPolicy, router, run_workers};
use refract_storage::cache::MemoryCache;
use refract_storage::{Cache, DocumentStore, Expect, FileStore, MemoryStore, collections};
use refract_tests::fixtures::fixture;
use refract_tests::platform::example;
use refract_workspaces::FileArtifactStore;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tower::ServiceExt;

const WS: &str = "ws-rt";
const USER: &str = "owner-1";
/// Bound on every wait for something asynchronous, so a broken runtime fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(60);

/// One host and file store shared by every runtime test, components compiled once.
struct Components {
    host: Arc<Host>,
    files: FileStore,
    digests: BTreeMap<&'static str, ComponentDigest>,
}

static COMPONENTS: OnceLock<Result<Components, String>> = OnceLock::new();

fn components() -> anyhow::Result<&'static Components> {
    COMPONENTS
        .get_or_init(|| {
            std::thread::spawn(|| setup().map_err(|e| format!("{e:#}")))
                .join()
                .unwrap_or_else(|_| Err("runtime test setup panicked".into()))
        })
        .as_ref()
        .map_err(|e| anyhow::anyhow!("{e}"))
}

fn setup() -> anyhow::Result<Components> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let files = refract_storage::open_file_store("memory://").await?;
        let host = Arc::new(Host::new(
            HostConfig::default(),
            Arc::new(FileArtifactStore::new(files.clone())),
        )?);
        let mut digests = BTreeMap::new();
        for (key, name) in [
            ("webhook_echo", "webhook-echo"),
            ("event_emitter", "event-emitter"),
            ("counter", "counter"),
        ] {
            digests.insert(key, upload(&host, &files, example(name)?).await?);
        }
        for name in ["hostile", "trivial"] {
            digests.insert(name, upload(&host, &files, fixture(name)?).await?);
        }
        Ok(Components {
            host,
            files,
            digests,
        })
    })
}

/// What the workspaces service does on upload: the bytes as a blob, the artifact via the host.
async fn upload(host: &Host, files: &FileStore, bytes: Vec<u8>) -> anyhow::Result<ComponentDigest> {
    files.put_blob(bytes.clone().into()).await?;
    Ok(host.upload(&bytes).await?)
}

/// An automation document as workspaces stores it.
fn automation(slug: &str, component: &str, when: Value) -> anyhow::Result<Automation> {
    let digest = components()?
        .digests
        .get(component)
        .context("unknown component")?;
    Ok(serde_json::from_value(json!({
        "slug": slug, "name": slug, "kind": "component", "when": when,
        "component": {"status": "ready", "digest": digest.to_string()},
        "createdAt": "2026-11-27T10:00:00.000Z", "createdBy": USER,
        "updatedAt": "2026-11-27T10:00:00.000Z", "updatedBy": USER,
    }))?)
}

/// The shared backends of a cluster of runtime instances.
struct Cluster {
    broker: Arc<dyn Broker>,
    store: Arc<dyn DocumentStore>,
    cache: Arc<dyn Cache>,
}

impl Cluster {
    async fn memory() -> anyhow::Result<Self> {
        let store: Arc<dyn DocumentStore> = Arc::new(MemoryStore::new());
        let membership = json!({"workspaceId": WS, "userId": USER, "role": "owner"});
        store
            .put(
                &collections::PERMISSIONS,
                &permission_doc_id(WS, USER),
                &membership,
                Expect::Any,
            )
            .await?;
        Ok(Self {
            broker: Arc::new(MemoryBroker::new(BrokerConfig::default())),
            store,
            cache: Arc::new(MemoryCache::new("rt-test")),
        })
    }

    /// Stores an automation in the collection (read by instances started afterwards).
    async fn store(&self, a: &Automation) -> anyhow::Result<()> {
        let mut body = serde_json::to_value(a)?;
        body["workspaceId"] = json!(WS);
        self.store
            .put(
                &collections::AUTOMATIONS,
                &automation_doc_id(WS, &a.slug),
                &body,
                Expect::Any,
            )
            .await?;
        Ok(())
    }

    /// Deploys to running instances as workspaces does: `workspaces.automations.created`.
    async fn announce(&self, a: &Automation) -> anyhow::Result<()> {
        self.store(a).await?;
        self.publish(
            "workspaces.automations.created",
            json!({"automation": a, "slug": a.slug}),
        )
        .await
    }

    /// Publishes an event as the workspaces service does (its `source.host`: consumers act on
    /// platform events only from the service that owns them).
    async fn publish(&self, ty: &str, payload: Value) -> anyhow::Result<()> {
        let Value::Object(map) = payload else {
            bail!("payload must be an object")
        };
        let mut event = Event::new(EventType::new(ty)?, Some(WorkspaceId::new(WS)?), map);
        event.source.host = Some(SourceHost {
            service: refract_core::platform::service::WORKSPACES.into(),
            replica: None,
        });
        self.broker.publish(event).await?;
        Ok(())
    }

    /// Starts one runtime instance with its workers; dropping the guard stops them.
    async fn instance(&self, id: &str) -> anyhow::Result<Instance> {
        self.instance_with(Config {
            instance_id: id.into(),
            ..Config::default()
        })
        .await
    }

    async fn instance_with(&self, config: Config) -> anyhow::Result<Instance> {
        let c = components()?;
        let state = RuntimeState::new(
            self.broker.clone(),
            self.store.clone(),
            self.cache.clone(),
            c.files.clone(),
            c.host.clone(),
            config,
        )
        .await?;
        let (stop, stopped) = oneshot::channel::<()>();
        let workers = tokio::spawn(run_workers(state.clone(), async move {
            let _ = stopped.await;
        }));
        Ok(Instance {
            state,
            _stop: stop,
            _workers: workers,
        })
    }

    async fn watch(&self) -> anyhow::Result<Box<dyn Subscriber>> {
        Ok(self
            .broker
            .subscribe(Subscription::fan_out(TypeFilter::all()))
            .await?)
    }
}

struct Instance {
    state: RuntimeState,
    _stop: oneshot::Sender<()>,
    _workers: tokio::task::JoinHandle<Result<(), refract_runtime::RuntimeError>>,
}

impl Instance {
    async fn call(
        &self,
        request: Request<Body>,
    ) -> anyhow::Result<(StatusCode, axum::http::HeaderMap, Vec<u8>)> {
        call(&self.state, request).await
    }

    async fn test_run(&self, slug: &str, payload: Value) -> anyhow::Result<(StatusCode, Value)> {
        test_run(&self.state, slug, payload).await
    }
}

async fn call(
    state: &RuntimeState,
    request: Request<Body>,
) -> anyhow::Result<(StatusCode, axum::http::HeaderMap, Vec<u8>)> {
    let response = router(state.clone()).oneshot(request).await?;
    let (status, headers) = (response.status(), response.headers().clone());
    let body = response.into_body().collect().await?.to_bytes().to_vec();
    Ok((status, headers, body))
}

/// `POST /test/{slug}` as the workspace owner.
async fn test_run(
    state: &RuntimeState,
    slug: &str,
    payload: Value,
) -> anyhow::Result<(StatusCode, Value)> {
    let request = Request::post(format!("/v2/workspaces/{WS}/test/{slug}"))
        .header("content-type", "application/json")
        .header("x-prismeai-user-id", USER)
        .body(Body::from(json!({ "payload": payload }).to_string()))?;
    let (status, _, body) = call(state, request).await?;
    Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

/// The next event of `sub` meeting `pred`, within [`PATIENCE`].
async fn next_event(
    sub: &mut Box<dyn Subscriber>,
    pred: impl Fn(&Event) -> bool,
) -> anyhow::Result<Event> {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let delivery = sub.next().await?;
            if pred(&delivery.event) {
                return anyhow::Ok(Event::clone(&delivery.event));
            }
        }
    })
    .await
    .context("no matching event in time")?
}

fn executed(slug: &'static str) -> impl Fn(&Event) -> bool {
    move |e| e.event_type.as_str() == "runtime.automations.executed" && e.payload["slug"] == slug
}

#[tokio::test]
async fn a_webhook_runs_the_component_and_answers_with_its_output() -> anyhow::Result<()> {
    let cluster = Cluster::memory().await?;
    cluster
        .store(&automation(
            "echo",
            "webhook_echo",
            json!({"endpoint": true}),
        )?)
        .await?;
    let mut not_ready = automation("later", "webhook_echo", json!({"endpoint": "later"}))?;
    if let Some(c) = not_ready.component.as_mut() {
        c.status = refract_core::model::ComponentStatus::Missing;
    }
    cluster.store(&not_ready).await?;
    let node = cluster.instance("rt-a").await?;
    let mut watch = cluster.watch().await?;

    let request = Request::post(format!("/v2/workspaces/{WS}/webhooks/echo?x=1&x=2"))
        .header("content-type", "application/json")
        .header("x-correlation-id", "0123456789abcdef0123456789abcdef")
        .body(Body::from(r#"{"order": 42}"#))?;
    let (status, headers, body) = node.call(request).await?;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(
        headers["x-refract-echo"],
        "0123456789abcdef0123456789abcdef"
    );
    assert_eq!(headers["content-type"], "application/json");
    let body: Value = serde_json::from_slice(&body)?;
    assert_eq!(body["method"], "POST");
    assert_eq!(body["body"], json!({"order": 42}));
    assert_eq!(body["query"], json!([["x", "1"], ["x", "2"]]));
    assert_eq!(body["path"], format!("/v2/workspaces/{WS}/webhooks/echo"));

    let event = next_event(&mut watch, |e| {
        e.event_type.as_str() == "runtime.interactions.triggered"
    })
    .await?;
    assert_eq!(
        event.payload["trigger"],
        json!({"type": "endpoint", "value": "echo"})
    );
    let event = next_event(&mut watch, executed("echo")).await?;
    assert_eq!(event.payload["status"], "success");
    assert_eq!(
        event.payload["trigger"],
        json!({"type": "endpoint", "value": "echo"})
    );
    assert_eq!(event.payload["output"]["body"], json!({"order": 42}));
    assert_eq!(
        event.source.correlation_id.as_str(),
        "0123456789abcdef0123456789abcdef"
    );

    // A GET has no body and gets 200.
    let (status, _, body) = node
        .call(Request::get(format!("/v2/workspaces/{WS}/webhooks/echo")).body(Body::empty())?)
        .await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(serde_json::from_slice::<Value>(&body)?["method"], "GET");

    // The component's typed error (a body that is not JSON) is a 400 AutomationError.
    let request = Request::post(format!("/v2/workspaces/{WS}/webhooks/echo"))
        .header("content-type", "application/json")
        .body(Body::from("{nope"))?;
    let (status, _, body) = node.call(request).await?;
    let body: Value = serde_json::from_slice(&body)?;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "AutomationError");
    assert_eq!(body["details"]["automationSlug"], "echo");
    let event = next_event(&mut watch, |e| e.event_type.as_str() == "error").await?;
    assert_eq!(
        event.error.as_ref().map(|e| e.level),
        Some(refract_core::ErrorLevel::Error)
    );

    // Stored a moment ago, before any event reached this instance: read from the collection.
    cluster
        .store(&automation(
            "fresh",
            "webhook_echo",
            json!({"endpoint": true}),
        )?)
        .await?;
    let (status, _, _) = node
        .call(Request::get(format!("/v2/workspaces/{WS}/webhooks/fresh")).body(Body::empty())?)
        .await?;
    assert_eq!(status, StatusCode::OK);

    let (status, _, body) = node
        .call(Request::get(format!("/v2/workspaces/{WS}/webhooks/nobody")).body(Body::empty())?)
        .await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        serde_json::from_slice::<Value>(&body)?["error"],
        "ObjectNotFoundError"
    );
    let (status, _, body) = node
        .call(Request::get(format!("/v2/workspaces/{WS}/webhooks/later")).body(Body::empty())?)
        .await?;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        serde_json::from_slice::<Value>(&body)?["error"],
        "ComponentNotReady"
    );
    Ok(())
}

#[tokio::test]
async fn a_trap_is_a_500_component_trap() -> anyhow::Result<()> {
    let cluster = Cluster::memory().await?;
    cluster
        .store(&automation("hostile", "hostile", json!({}))?)
        .await?;
    let node = cluster.instance("rt-a").await?;
    let (status, body) = node
        .test_run("hostile", json!({"mode": "panic", "message": "boom"}))
        .await?;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(body["error"], "ComponentTrap");
    assert_eq!(body["details"]["reason"], "panic");
    // A run that outlives the webhook timeout answers 504 (the run itself goes on).
    let impatient = cluster
        .instance_with(Config {
            instance_id: "rt-impatient".into(),
            webhook_timeout: Duration::from_millis(200),
            ..Config::default()
        })
        .await?;
    let (status, body) = impatient
        .test_run(
            "hostile",
            json!({"mode": "wait", "type": "never.happens", "timeoutMs": 5000}),
        )
        .await?;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert_eq!(body["error"], "TimeoutError");
    // Only members may run tests.
    let request = Request::post(format!("/v2/workspaces/{WS}/test/hostile"))
        .header("content-type", "application/json")
        .header("x-prismeai-user-id", "stranger")
        .body(Body::from(r#"{"payload": {}}"#))?;
    let (status, _, _) = node.call(request).await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    Ok(())
}

/// The operator's per-workspace sandbox policy is what a hostile guest of that workspace hits:
/// lower memory and emit caps than the platform's, and an egress allow-list of its own.
#[tokio::test]
async fn a_workspace_sandbox_policy_bounds_its_runs() -> anyhow::Result<()> {
    let cluster = Cluster::memory().await?;
    cluster
        .store(&automation("hostile", "hostile", json!({}))?)
        .await?;
    let platform = cluster.instance("rt-platform").await?;
    let tight = SandboxPolicy {
        max_memory_mib: 8,
        max_emits: 3,
        allow_hosts: vec!["partner.invalid".into()],
        ..SandboxPolicy::default()
    };
    let config = Config {
        instance_id: "rt-tight".into(),
        workspace_sandboxes: HashMap::from([
            (WS.to_string(), tight),
            ("ws-other".to_string(), SandboxPolicy::default()),
        ]),
        ..Config::default()
    };
    let tight = cluster.instance_with(config).await?;

    let (status, body) = platform
        .test_run("hostile", json!({"mode": "emit-until-refused"}))
        .await?;
    assert_eq!(
        (status, &body["emitted"]),
        (StatusCode::OK, &json!(100)),
        "{body}"
    );
    let (status, body) = tight
        .test_run("hostile", json!({"mode": "emit-until-refused"}))
        .await?;
    assert_eq!(
        (status, &body["emitted"]),
        (StatusCode::OK, &json!(3)),
        "{body}"
    );

    // 16 MiB fits the platform's default 64 MiB, not the workspace's 8 MiB.
    let (status, body) = platform
        .test_run("hostile", json!({"mode": "allocate", "mib": 16}))
        .await?;
    assert_eq!((status, &body), (StatusCode::OK, &json!(16)), "{body}");
    let (status, body) = tight
        .test_run("hostile", json!({"mode": "allocate", "mib": 16}))
        .await?;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(body["details"]["reason"], "memory", "{body}");

    // Fetch: the platform denies every host; the workspace allows its partner only.
    let (_, body) = platform
        .test_run(
            "hostile",
            json!({"mode": "fetch", "url": "http://partner.invalid/"}),
        )
        .await?;
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains("Denied")),
        "{body}"
    );
    let (_, body) = tight
        .test_run(
            "hostile",
            json!({"mode": "fetch", "url": "http://elsewhere.invalid/"}),
        )
        .await?;
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains("Denied")),
        "{body}"
    );
    let (_, body) = tight
        .test_run(
            "hostile",
            json!({"mode": "fetch", "url": "http://partner.invalid/"}),
        )
        .await?;
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        !error.contains("Denied") && !error.is_empty(),
        "allowed, then failed to resolve: {body}"
    );
    Ok(())
}

#[tokio::test]
async fn an_event_runs_an_automation_whose_emit_fulfils_a_wait_on_another_instance()
-> anyhow::Result<()> {
    let cluster = Cluster::memory().await?;
    let a = cluster.instance("rt-a").await?;
    let b = cluster.instance("rt-b").await?;
    let mut watch = cluster.watch().await?;
    // Deployed while running: both instances learn it from the fan-out.
    cluster
        .announce(&automation(
            "emitter",
            "event_emitter",
            json!({"events": ["orders.created"]}),
        )?)
        .await?;
    cluster
        .announce(&automation("waiter", "hostile", json!({}))?)
        .await?;
    for node in [&a, &b] {
        tokio::time::timeout(PATIENCE, async {
            while node.state.index().get(WS, "waiter").is_none()
                || node.state.index().get(WS, "emitter").is_none()
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .context("the index did not learn the automations")?;
    }

    // Instance A runs `waiter`, which waits for `orders.created.processed`.
    let a_state = a.state.clone();
    let waiting = tokio::spawn(async move {
        test_run(
            &a_state,
            "waiter",
            json!({"mode": "wait", "type": "orders.created.processed", "timeoutMs": 20000}),
        )
        .await
    });
    tokio::time::timeout(PATIENCE, async {
        while a.state.waiting() == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .context("the wait did not start")?;

    // Whichever instance consumes `orders.created` runs `emitter`, which emits the awaited event.
    cluster
        .publish("orders.created", json!({"order": {"id": 7}}))
        .await?;
    let (status, body) = waiting.await??;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["event"], "orders.created.processed");
    let payload: Value = serde_json::from_str(body["payload"].as_str().context("payload text")?)?;
    assert_eq!(payload["original"], json!({"order": {"id": 7}}));

    // Runs on two instances publish concurrently: gather the events, then check each.
    let mut events: Vec<Event> = Vec::new();
    let has = |events: &[Event], pred: &dyn Fn(&Event) -> bool| events.iter().any(pred);
    let is = |ty: &'static str| move |e: &Event| e.event_type.as_str() == ty;
    while !(has(&events, &executed("emitter")) && has(&events, &is("runtime.waits.fulfilled"))) {
        events.push(next_event(&mut watch, |_| true).await?);
    }
    let find = |pred: &dyn Fn(&Event) -> bool| {
        events
            .iter()
            .find(|e| pred(e))
            .cloned()
            .context("missing event")
    };
    let interaction = find(&|e| {
        is("runtime.interactions.triggered")(e) && e.payload["trigger"]["type"] == "event"
    })?;
    assert_eq!(interaction.payload["automation"], "emitter");
    let pending = find(&is("runtime.waits.pending"))?;
    assert_eq!(
        pending.payload["wait"]["oneOf"],
        json!(["orders.created.processed"])
    );
    let processed = find(&is("orders.created.processed"))?;
    let run = find(&executed("emitter"))?;
    let fulfilled = find(&is("runtime.waits.fulfilled"))?;
    assert_eq!(fulfilled.payload["id"], pending.payload["id"]);
    assert_eq!(
        fulfilled.payload["event"]["type"],
        "orders.created.processed"
    );
    assert_eq!(fulfilled.source.automation_slug.as_deref(), Some("waiter"));
    assert_eq!(run.payload["status"], "success");
    assert_eq!(run.payload["trigger"]["type"], "event");
    assert_eq!(run.payload["trigger"]["value"], "orders.created");
    assert_eq!(processed.source.automation_slug.as_deref(), Some("emitter"));
    assert_eq!(processed.source.automation_depth, Some(1));
    assert_eq!(processed.source.correlation_id, run.source.correlation_id);
    Ok(())
}

#[tokio::test]
async fn counter_state_persists_across_runs_and_instances_and_calls_share_it() -> anyhow::Result<()>
{
    let cluster = Cluster::memory().await?;
    cluster
        .store(&automation("counter", "counter", json!({}))?)
        .await?;
    cluster
        .store(&automation("caller", "hostile", json!({}))?)
        .await?;
    let a = cluster.instance("rt-a").await?;
    assert_eq!(
        a.test_run("counter", json!({})).await?,
        (StatusCode::OK, json!({"count": 1}))
    );
    assert_eq!(
        a.test_run("counter", json!({})).await?,
        (StatusCode::OK, json!({"count": 2}))
    );
    let b = cluster.instance("rt-b").await?;
    assert_eq!(
        b.test_run("counter", json!({})).await?,
        (StatusCode::OK, json!({"count": 3}))
    );
    // `call` runs the callee through the same executor.
    let (status, body) = b
        .test_run(
            "caller",
            json!({"mode": "call", "slug": "counter", "args": {}}),
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["output"], json!({"count": 4}));
    let (_, body) = b
        .test_run(
            "caller",
            json!({"mode": "call", "slug": "missing", "args": {}}),
        )
        .await?;
    assert!(
        body["error"].as_str().unwrap_or("").contains("NotFound"),
        "{body}"
    );
    Ok(())
}

/// Collects executed events of `slug` until `ticks` distinct ticks were seen, and returns how
/// many runs each tick had.
async fn runs_per_tick(
    watch: &mut Box<dyn Subscriber>,
    slug: &'static str,
    ticks: usize,
) -> anyhow::Result<BTreeMap<String, usize>> {
    let mut seen = BTreeMap::new();
    while seen.len() < ticks {
        let event = next_event(watch, executed(slug)).await?;
        assert_eq!(event.payload["trigger"]["type"], "schedule");
        let tick = event.payload["payload"]["payload"]["startedAt"]
            .as_str()
            .context("tick time")?
            .to_owned();
        *seen.entry(tick).or_insert(0) += 1;
    }
    Ok(seen)
}

async fn schedule_fires_once_per_tick(cluster: Cluster) -> anyhow::Result<()> {
    let _a = cluster.instance("rt-a").await?;
    let _b = cluster.instance("rt-b").await?;
    let mut watch = cluster.watch().await?;
    cluster
        .announce(&automation(
            "ticker",
            "trivial",
            json!({"schedules": ["* * * * * *"]}),
        )?)
        .await?;
    // Four distinct ticks; the runs of the first three are complete once the fourth shows up
    // (both instances try each tick at the same time).
    let scheduled = next_event(&mut watch, |e| {
        e.event_type.as_str() == "runtime.automations.scheduled"
    })
    .await?;
    assert_eq!(scheduled.payload["schedules"], json!(["* * * * * *"]));
    let seen = runs_per_tick(&mut watch, "ticker", 4).await?;
    let complete: Vec<_> = seen.iter().take(3).collect();
    assert!(
        complete.iter().all(|(_, runs)| **runs == 1),
        "each tick runs once: {seen:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_schedule_fires_once_per_tick_with_two_instances() -> anyhow::Result<()> {
    schedule_fires_once_per_tick(Cluster::memory().await?).await
}

#[tokio::test]
async fn a_schedule_fires_once_per_tick_with_two_instances_on_redis() -> anyhow::Result<()> {
    let Ok(url) = std::env::var("REFRACT_TEST_REDIS_URL") else {
        eprintln!("skipped: REFRACT_TEST_REDIS_URL is not set");
        return Ok(());
    };
    let namespace = format!("rt-test-{}", refract_core::CorrelationId::generate());
    let broker = refract_broker::open(
        &url,
        BrokerConfig {
            namespace: namespace.clone(),
            ..BrokerConfig::default()
        },
    )
    .await?;
    let cache = refract_storage::open_cache(&url, &namespace).await?;
    let memory = Cluster::memory().await?;
    schedule_fires_once_per_tick(Cluster {
        broker,
        cache,
        store: memory.store,
    })
    .await
}
