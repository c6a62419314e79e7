//! The DSL interpreter component: runs a compiled DSL automation (`refract_dsl::Program`) in
//! the sandbox. Every effect goes through the WIT imports of the `refract:automation` world via
//! the guest SDK; clocks and randomness come from WASI.
//!
//! The runtime hands each run, in the invocation's `config`, a [`Setup`]: the compiled program
//! (in its compact form, compiled when the automation was saved), the automation's own config,
//! the call depth and the trigger as `runtime.automations.executed` reports it.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use refract_dsl::interpreter::{
    ConfigWriter, Coordination, FetchRequest, FetchResponse, HostCall, HostReply, HttpOut,
    IdentitySwitch, Outside, RateLimitCall, RateLimitState, RunInput, Scope, Ticket, WaitFor,
};
use refract_dsl::{DslError, Program, Setup};
use refract_sdk::concurrent::{self, Outcome};
use refract_sdk::response::{self, StreamError};
use refract_sdk::state::Scope as WitScope;
use refract_sdk::{Condition, Emit, Error, Invocation, Output, Request, Target, Trigger};
use serde::Deserialize;
use serde_json::{Map, Value, json};

#[refract_sdk::automation]
fn handler(inv: Invocation) -> Result<Output, Error> {
    let setup = Setup::deserialize(&inv.config).map_err(|e| {
        Error::new(
            "InvalidInvocation",
            format!("no DSL program in the invocation: {e}"),
        )
    })?;
    let program = Program::decode(&setup.program)
        .map_err(|e| Error::new("InvalidInvocation", format!("unreadable DSL program: {e}")))?;
    // Called by another automation (a test run is a call trigger too, but at depth 0: a root).
    let called = matches!(inv.trigger, Trigger::Call { .. }) && setup.depth > 0;
    let input = input(&inv, setup);
    let ran = refract_dsl::run(&program, input, &mut Wit::default());
    // Every run has an instance of its own, thrown away with all its memory when the run
    // ends: freeing the program and the invocation node by node first would only cost time
    // (the allocator was a quarter of the guest's time in the DSL benchmark).
    std::mem::forget(program);
    std::mem::forget(inv);
    match ran {
        // `break: {scope: all}` in a called automation stops its callers too: the call fails
        // with this code, its output in the details, and the caller breaks the same way.
        Ok(result) if called && result.stops_callers => Err(Error::new(
            refract_dsl::BREAK_ALL,
            "break with scope all: the callers stop too",
        )
        .with_details(&result.output)),
        Ok(result) => {
            let mut out = Output::json(&result.output);
            std::mem::forget(result.output);
            if let Some(status) = result.http.status {
                out = out.status(status);
            }
            for (name, value) in result.http.headers {
                out = out.header(name, value);
            }
            Ok(out)
        }
        Err(e) => Err(Error::new(e.class, e.message).with_details(&e.details)),
    }
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The initial locals and computed scope fields of the run (`automation-dsl.md` §2.7, §5.2).
fn input(inv: &Invocation, setup: Setup) -> RunInput {
    let mut locals = Map::new();
    match &inv.trigger {
        Trigger::Event(e) => {
            locals.insert("payload".into(), e.payload.clone());
            locals.insert("source".into(), e.source.clone());
            locals.insert("id".into(), json!(e.id));
        }
        Trigger::Http(_) => locals = setup.locals.unwrap_or_default(),
        Trigger::Schedule { expression, time } => {
            locals.insert(
                "payload".into(),
                json!({"workspaceId": inv.workspace_id, "automation": inv.automation_slug,
                    "trigger": {"type": "schedule", "value": expression}, "startedAt": time}),
            );
        }
        Trigger::Call { arguments } => {
            if let Value::Object(args) = arguments {
                locals = args.clone();
            }
        }
    }
    let date = refract_dsl::functions::iso_from_millis(now_millis()).unwrap_or_default();
    let mut run = Map::new();
    run.insert("depth".into(), json!(setup.depth));
    run.insert("correlationId".into(), json!(inv.correlation_id));
    run.insert("date".into(), json!(date));
    run.insert(
        "trigger".into(),
        serde_json::to_value(&setup.trigger).unwrap_or(Value::Null),
    );
    run.insert("automationSlug".into(), json!(inv.automation_slug));
    if let Some(socket) = setup.socket_id {
        run.insert("socketId".into(), json!(socket));
    }
    let mut global = Map::new();
    global.insert("workspaceId".into(), json!(inv.workspace_id));
    RunInput {
        locals,
        run,
        global,
        user_id: inv.user_id.clone(),
        session_id: inv.session_id.clone(),
        config: setup.config,
        workspace: setup.workspace,
    }
}

/// The outside world through the WIT imports.
#[derive(Default)]
struct Wit {
    /// Calls in flight: what their errors name (a fetch's URL, a callee's slug).
    started: HashMap<Ticket, String>,
}

fn wit_scope(s: Scope) -> WitScope {
    match s {
        Scope::Global => WitScope::Global,
        Scope::User => WitScope::User,
        Scope::Session => WitScope::Session,
        Scope::Run => WitScope::Run,
        Scope::Socket => WitScope::Socket,
    }
}

fn millis(ms: u32) -> Duration {
    Duration::from_millis(u64::from(ms))
}

fn sdk_request(request: FetchRequest) -> Request {
    let mut req = Request::new(&request.method, request.url);
    for (k, v) in request.headers {
        req = req.header(k, v);
    }
    if let Some(body) = request.body {
        req = req.body(body);
    }
    req
}

fn fetch_reply(
    url: &str,
    reply: Result<refract_sdk::Response, refract_sdk::FetchError>,
) -> Result<FetchResponse, DslError> {
    let resp = reply.map_err(|e| {
        DslError::new("FetchError", e.to_string())
            .with_details(json!({"url": url, "code": e.kind()}))
    })?;
    Ok(FetchResponse {
        status: resp.status,
        headers: resp.headers,
        body: resp.body,
    })
}

fn conditions(on: &[WaitFor]) -> Vec<Condition> {
    on.iter()
        .map(|w| {
            w.filters
                .iter()
                .fold(Condition::new(w.event_type.clone()), |c, (k, v)| {
                    c.filter(k.clone(), v)
                })
        })
        .collect()
}

fn wait_reply(
    reply: Result<Option<refract_sdk::Event>, refract_sdk::WaitError>,
) -> Result<Option<Value>, DslError> {
    let event = reply.map_err(|e| host_error("InvalidInstructionError", e))?;
    Ok(event.map(
        |e| json!({"id": e.id, "type": e.event_type, "payload": e.payload, "source": e.source}),
    ))
}

fn call_reply(slug: &str, reply: Result<Value, refract_sdk::CallError>) -> Result<Value, DslError> {
    use refract_sdk::CallError;
    reply.map_err(|e| match e {
        CallError::NotFound(_) => DslError::new("ObjectNotFoundError", "Automation not found")
            .with_details(json!({"automation": slug})),
        CallError::DepthExceeded(limit) => {
            DslError::new("TooManyCallError", "Too many automation calls")
                .with_details(json!({"limit": limit}))
        }
        CallError::Failed(err) => {
            DslError::new(err.code, err.message).with_details(err.details.unwrap_or(Value::Null))
        }
        CallError::InvalidArguments(m) => DslError::new("InvalidArgumentsError", m),
        other => host_error("AutomationError", other),
    })
}

/// Host errors as DSL errors: the class a `try` sees and an error event reports.
fn host_error(class: &str, e: impl std::fmt::Display) -> DslError {
    DslError::new(class, e.to_string())
}

/// A `$http` write to the streamed answer, as the run sees it: with no client (not a webhook
/// run, a callee) or a client gone, the run goes on as if it had been sent (§6.2).
fn streamed(sent: Result<(), StreamError>) -> Result<(), DslError> {
    match sent {
        Ok(()) | Err(StreamError::NoClient | StreamError::Closed) => Ok(()),
        Err(StreamError::TooLarge(n)) => Err(DslError::new(
            "LimitExceededError",
            format!("the streamed answer is over its limit of {n} bytes"),
        )
        .with_details(json!({"limit": "streamBytes", "value": n}))),
        Err(e @ StreamError::Invalid(_)) => Err(host_error("InvalidInstructionError", e)),
    }
}

impl Outside for Wit {
    fn emit(
        &mut self,
        event_type: &str,
        payload: &Value,
        target: Option<&Value>,
        persist: bool,
    ) -> Result<String, DslError> {
        let mut emit = Emit::new(event_type, payload).persist(persist);
        if let Some(t) = target {
            let text = |k: &str| t.get(k).and_then(Value::as_str).map(str::to_owned);
            emit = emit.target(Target {
                user_id: text("userId"),
                session_id: text("sessionId"),
                user_topic: text("userTopic"),
            });
        }
        emit.send().map_err(|e| {
            let class = match e {
                refract_sdk::EmitError::TooLarge(_) => "BrokerError",
                refract_sdk::EmitError::DepthExceeded(_) => "TooManyCallError",
                _ => "InvalidEventError",
            };
            host_error(class, e)
        })
    }

    fn wait(&mut self, on: &[WaitFor], timeout_ms: u32) -> Result<Option<Value>, DslError> {
        wait_reply(refract_sdk::wait(&conditions(on), millis(timeout_ms)))
    }

    fn fetch(&mut self, request: FetchRequest) -> Result<FetchResponse, DslError> {
        let url = request.url.clone();
        fetch_reply(&url, sdk_request(request).send())
    }

    fn get(&mut self, scope: Scope, name: &str) -> Result<Option<Value>, DslError> {
        match refract_sdk::state::get::<Value>(wit_scope(scope), name) {
            Err(refract_sdk::StateError::NoSuchScope) => Ok(None),
            other => other.map_err(|e| host_error("InvalidInstructionError", e)),
        }
    }

    fn set(&mut self, scope: Scope, name: &str, value: &Value) -> Result<(), DslError> {
        match refract_sdk::state::set(wit_scope(scope), name, value) {
            // A scope without an owner in this run (no user): the write stays in memory.
            Err(refract_sdk::StateError::NoSuchScope) => Ok(()),
            Err(refract_sdk::StateError::TooLarge(n)) => Err(DslError::new(
                "LimitExceededError",
                format!("value over {n} bytes"),
            )
            .with_details(json!({"limit": "valueSize", "value": n}))),
            other => other.map_err(|e| host_error("InvalidInstructionError", e)),
        }
    }

    fn delete(&mut self, scope: Scope, name: &str) -> Result<(), DslError> {
        match refract_sdk::state::delete(wit_scope(scope), name) {
            Err(refract_sdk::StateError::NoSuchScope) => Ok(()),
            other => other.map_err(|e| host_error("InvalidInstructionError", e)),
        }
    }

    fn call(&mut self, slug: &str, arguments: &Value) -> Result<Value, DslError> {
        call_reply(slug, refract_sdk::call::<Value>(slug, arguments))
    }

    fn start(&mut self, call: HostCall) -> Result<Ticket, HostCall> {
        let (started, names) = match &call {
            HostCall::Fetch(req) => (
                // A copy: a start the host refuses gives the call back to be made blocking.
                concurrent::start_fetch(sdk_request(req.clone()))
                    .ok()
                    .flatten(),
                req.url.clone(),
            ),
            HostCall::Wait { on, timeout_ms } => (
                concurrent::start_wait(&conditions(on), millis(*timeout_ms))
                    .ok()
                    .flatten(),
                String::new(),
            ),
            HostCall::Call { slug, arguments } => (
                concurrent::start_call(slug, arguments).ok().flatten(),
                slug.clone(),
            ),
        };
        // Not started (64 in flight, or a request the host would refuse): the interpreter
        // makes it with the blocking import, which answers the same way.
        let ticket = started.ok_or(call)?;
        self.started.insert(ticket, names);
        Ok(ticket)
    }

    fn next_done(&mut self) -> Vec<(Ticket, HostReply)> {
        concurrent::next_done()
            .into_iter()
            .map(|(ticket, outcome)| {
                let names = self.started.remove(&ticket).unwrap_or_default();
                let reply = match outcome {
                    Outcome::Fetched(r) => HostReply::Fetch(fetch_reply(&names, r)),
                    Outcome::Waited(r) => HostReply::Wait(wait_reply(r)),
                    Outcome::Called(r) => HostReply::Call(call_reply(&names, r)),
                };
                (ticket, reply)
            })
            .collect()
    }

    fn secret(&mut self, name: &str) -> Result<Option<Value>, DslError> {
        Ok(refract_sdk::secrets::get_json(name))
    }

    fn start_answer(&mut self, head: &HttpOut) -> Result<(), DslError> {
        let headers: Vec<(&str, &str)> = head
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        streamed(response::start(
            head.status.unwrap_or(200),
            &headers,
            head.keep_alive_ms,
        ))
    }

    fn sleep(&mut self, ms: u32) -> Result<(), DslError> {
        if refract_sdk::timers::sleep(Duration::from_millis(ms.into())) {
            return Ok(());
        }
        // Pacing that cannot be kept any longer stops the run rather than going on unpaced.
        Err(DslError::new(
            "LimitExceededError",
            format!("a pause of {ms} ms would outlast the run's wall clock"),
        )
        .with_details(json!({"limit": "wallTime", "value": ms})))
    }

    fn send_chunk(&mut self, chunk: &Value) -> Result<(), DslError> {
        streamed(response::send(chunk))
    }

    fn coordination(&mut self) -> Option<&mut dyn Coordination> {
        Some(self)
    }

    fn config(&mut self) -> Option<&mut dyn ConfigWriter> {
        Some(self)
    }

    fn identity(&mut self) -> Option<&mut dyn IdentitySwitch> {
        Some(self)
    }

    fn random(&mut self) -> f64 {
        // 53 random bits as a float in [0, 1).
        let bits = getrandom::u64().unwrap_or(0) >> 11;
        #[allow(clippy::cast_precision_loss)]
        let r = bits as f64 / (1u64 << 53) as f64;
        r
    }
}

impl Coordination for Wit {
    fn rate_limit(&mut self, l: &RateLimitCall) -> Result<RateLimitState, DslError> {
        let s =
            refract_sdk::state::rate_limit(&l.name, &l.consumer, l.limit, l.window_secs, l.consume)
                .map_err(|e| host_error("PrismeError", e))?;
        Ok(RateLimitState {
            ok: s.ok,
            remaining: s.remaining,
            retry_after: s.retry_after,
        })
    }

    fn create_user_topic(
        &mut self,
        topic: &str,
        user_ids: &[String],
    ) -> Result<Option<Value>, DslError> {
        refract_sdk::state::create_user_topic(topic, user_ids)
            .map_err(|e| host_error("PrismeError", e))
    }

    fn join_user_topic(
        &mut self,
        topic: &str,
        user_ids: &[String],
        create: bool,
    ) -> Result<Vec<Value>, DslError> {
        refract_sdk::state::join_user_topic(topic, user_ids, create).map_err(|e| match e {
            refract_sdk::StateError::NoSuchScope => {
                DslError::new("PrismeError", "joinUserTopic needs userIds or a user")
            }
            other => host_error("PrismeError", other),
        })
    }
}

impl ConfigWriter for Wit {
    fn set_config(&mut self, name: &str, value: Option<&Value>) -> Result<(), DslError> {
        refract_sdk::state::set_config(name, value)
            .map_err(|e| host_error("InvalidInstructionError", e))
    }
}

impl IdentitySwitch for Wit {
    fn switch_identity(
        &mut self,
        user_id: Option<&str>,
        session_id: Option<&str>,
    ) -> Result<(Option<String>, Option<String>), DslError> {
        let now = refract_sdk::state::switch_identity(user_id, session_id)
            .map_err(|e| host_error("InvalidInstructionError", e))?;
        Ok((now.user_id, now.session_id))
    }
}
