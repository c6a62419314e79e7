//! An in-memory outside world for the instruction tests, and the helpers that run a program
//! against it.

use std::collections::HashMap;

pub(crate) use serde_json::{Value, json};

pub(crate) use super::*;
pub(crate) use crate::document::compile;
pub(crate) use crate::error::DslError;

/// The outside world of a test run: what the run did, and what it is answered.
#[derive(Default)]
pub(crate) struct World {
    pub(crate) emitted: Vec<(String, Value, bool)>,
    pub(crate) state: HashMap<(Scope, String), Value>,
    pub(crate) calls: Vec<(String, Value)>,
    pub(crate) waits: Vec<(Vec<WaitFor>, u32)>,
    pub(crate) reply: Option<Value>,
    pub(crate) fetched: Vec<FetchRequest>,
    /// What `fetch` answers (default: 200 `{"ok":true}`).
    pub(crate) response: Option<FetchResponse>,
    /// Points used per (limiter, consumer).
    pub(crate) used: HashMap<(String, String), u32>,
    pub(crate) topics: Vec<String>,
    pub(crate) members: Vec<(String, String)>,
    /// The user a switched run acts as: its `user` variables are kept under `<user>/<name>`.
    pub(crate) switched_to: Option<String>,
    pub(crate) config_writes: Vec<(String, Option<Value>)>,
    /// The workspace's secrets, by name.
    pub(crate) secrets: HashMap<String, Value>,
    /// Host calls can be started and run together (`Outside::start`).
    pub(crate) concurrent: bool,
    /// The world's clock, in milliseconds: a fetch of a URL ending in `/<n>` takes n ms, a
    /// wait takes its timeout (or 0 ms with a `reply`); blocking calls advance it one by one.
    pub(crate) clock: u64,
    /// Started calls: ticket, when it ends, the call.
    pub(crate) in_flight: Vec<(Ticket, u64, HostCall)>,
    pub(crate) tickets: Ticket,
    /// `start <what>` and `end <what>`, in the order they happened.
    pub(crate) journal: Vec<String>,
    /// The head of the streamed answer, once started.
    pub(crate) answer_head: Option<HttpOut>,
    /// The chunks streamed, in order.
    pub(crate) chunks: Vec<Value>,
}

impl World {
    /// A world where host calls run together (`Outside::start`).
    pub(crate) fn together() -> Self {
        World {
            concurrent: true,
            ..World::default()
        }
    }

    /// How long `call` takes, and its name in the journal.
    fn timing(&self, call: &HostCall) -> (u64, String) {
        match call {
            HostCall::Fetch(req) => {
                let ms = req.url.rsplit('/').next().and_then(|n| n.parse().ok());
                (ms.unwrap_or(0), format!("fetch {}", req.url))
            }
            HostCall::Wait { on, timeout_ms } => {
                let ms = if self.reply.is_some() {
                    0
                } else {
                    u64::from(*timeout_ms)
                };
                let first = on.first().map_or("", |w| w.event_type.as_str());
                (ms, format!("wait {first}"))
            }
            HostCall::Call { slug, .. } => (0, format!("call {slug}")),
        }
    }

    /// Answers `call`, the clock already at its end.
    fn make(&mut self, call: HostCall) -> HostReply {
        match call {
            HostCall::Fetch(request) => {
                self.fetched.push(request);
                HostReply::Fetch(Ok(self.response.clone().unwrap_or_else(|| FetchResponse {
                    status: 200,
                    headers: vec![("content-type".into(), "application/json".into())],
                    body: br#"{"ok":true}"#.to_vec(),
                })))
            }
            HostCall::Wait { on, timeout_ms } => {
                self.waits.push((on, timeout_ms));
                HostReply::Wait(Ok(self.reply.clone()))
            }
            HostCall::Call { slug, arguments } => {
                HostReply::Call(self.answer_call(&slug, &arguments))
            }
        }
    }

    /// What `call` answers: a few slugs behave in their own way.
    fn answer_call(&mut self, slug: &str, arguments: &Value) -> Result<Value, DslError> {
        self.calls.push((slug.to_owned(), arguments.clone()));
        if slug == "missing" {
            return Err(DslError::new("ObjectNotFoundError", "Automation not found"));
        }
        if slug == "breaks-all" {
            // A callee that ended with `break: {scope: all}` after computing its output.
            return Err(
                DslError::new(crate::BREAK_ALL, "break").with_details(json!({"partial": 1}))
            );
        }
        if slug == "bump" {
            // A callee writing a shared scope.
            let n = self
                .state
                .get(&(Scope::Global, "n".to_owned()))
                .and_then(Value::as_i64)
                .unwrap_or(0);
            self.state
                .insert((Scope::Global, "n".to_owned()), json!(n + 1));
        }
        Ok(json!({"called": slug, "with": arguments}))
    }

    /// Makes `call` at once: the clock moves by its duration.
    fn block(&mut self, call: HostCall) -> HostReply {
        self.clock += self.timing(&call).0;
        self.make(call)
    }

    fn key(&self, scope: Scope, name: &str) -> (Scope, String) {
        match (&self.switched_to, scope) {
            (Some(user), Scope::User) => (scope, format!("{user}/{name}")),
            _ => (scope, name.to_owned()),
        }
    }
}

impl Outside for World {
    fn emit(
        &mut self,
        t: &str,
        payload: &Value,
        _target: Option<&Value>,
        persist: bool,
    ) -> Result<String, DslError> {
        self.emitted.push((t.to_owned(), payload.clone(), persist));
        Ok(format!("e{}", self.emitted.len()))
    }
    fn wait(&mut self, on: &[WaitFor], timeout_ms: u32) -> Result<Option<Value>, DslError> {
        let on = on.to_vec();
        match self.block(HostCall::Wait { on, timeout_ms }) {
            HostReply::Wait(reply) => reply,
            _ => unreachable!(),
        }
    }
    fn fetch(&mut self, request: FetchRequest) -> Result<FetchResponse, DslError> {
        match self.block(HostCall::Fetch(request)) {
            HostReply::Fetch(reply) => reply,
            _ => unreachable!(),
        }
    }
    fn get(&mut self, scope: Scope, name: &str) -> Result<Option<Value>, DslError> {
        Ok(self.state.get(&self.key(scope, name)).cloned())
    }
    fn set(&mut self, scope: Scope, name: &str, value: &Value) -> Result<(), DslError> {
        self.state.insert(self.key(scope, name), value.clone());
        Ok(())
    }
    fn delete(&mut self, scope: Scope, name: &str) -> Result<(), DslError> {
        self.state.remove(&self.key(scope, name));
        Ok(())
    }
    fn call(&mut self, slug: &str, arguments: &Value) -> Result<Value, DslError> {
        self.answer_call(slug, arguments)
    }
    fn random(&mut self) -> f64 {
        0.5
    }
    fn start(&mut self, call: HostCall) -> Result<Ticket, HostCall> {
        if !self.concurrent {
            return Err(call);
        }
        let (ms, what) = self.timing(&call);
        self.tickets += 1;
        self.journal.push(format!("start {what}"));
        self.in_flight.push((self.tickets, self.clock + ms, call));
        Ok(self.tickets)
    }
    fn next_done(&mut self) -> Vec<(Ticket, HostReply)> {
        let Some(due) = self.in_flight.iter().map(|(_, due, _)| *due).min() else {
            return Vec::new();
        };
        self.clock = due;
        let (ended, left) = std::mem::take(&mut self.in_flight)
            .into_iter()
            .partition::<Vec<_>, _>(|(_, d, _)| *d == due);
        self.in_flight = left;
        let mut replies = Vec::new();
        for (ticket, _, call) in ended {
            let what = self.timing(&call).1;
            self.journal.push(format!("end {what}"));
            replies.push((ticket, self.make(call)));
        }
        replies
    }
    fn secret(&mut self, name: &str) -> Result<Option<Value>, DslError> {
        Ok(self.secrets.get(name).cloned())
    }
    fn sleep(&mut self, ms: u32) -> Result<(), DslError> {
        self.clock += u64::from(ms);
        self.journal.push(format!("sleep {ms}"));
        Ok(())
    }
    fn start_answer(&mut self, head: &HttpOut) -> Result<(), DslError> {
        assert!(self.answer_head.is_none(), "the answer starts once");
        self.answer_head = Some(head.clone());
        Ok(())
    }
    fn send_chunk(&mut self, chunk: &Value) -> Result<(), DslError> {
        assert!(self.answer_head.is_some(), "a chunk follows the head");
        self.chunks.push(chunk.clone());
        Ok(())
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
}

impl Coordination for World {
    fn rate_limit(&mut self, l: &RateLimitCall) -> Result<RateLimitState, DslError> {
        let used = self
            .used
            .entry((l.name.clone(), l.consumer.clone()))
            .or_default();
        let ok = *used + l.consume <= l.limit;
        if ok {
            *used += l.consume;
        }
        Ok(RateLimitState {
            ok,
            remaining: l.limit - *used,
            retry_after: if ok { 0 } else { l.window_secs },
        })
    }
    fn create_user_topic(
        &mut self,
        topic: &str,
        user_ids: &[String],
    ) -> Result<Option<Value>, DslError> {
        if self.topics.iter().any(|t| t == topic) {
            return Ok(None);
        }
        self.topics.push(topic.to_owned());
        self.members
            .extend(user_ids.iter().map(|u| (topic.to_owned(), u.clone())));
        Ok(Some(
            json!({"type": "events.userTopics.created", "payload": {"topic": topic, "userIds": user_ids}}),
        ))
    }
    fn join_user_topic(
        &mut self,
        topic: &str,
        user_ids: &[String],
        create: bool,
    ) -> Result<Vec<Value>, DslError> {
        if !self.topics.iter().any(|t| t == topic) {
            if !create {
                return Err(DslError::new("PrismeError", "unknown topic"));
            }
            self.topics.push(topic.to_owned());
        }
        let users = if user_ids.is_empty() {
            vec!["u1".to_owned()]
        } else {
            user_ids.to_vec()
        };
        Ok(users
            .into_iter()
            .map(|u| {
                self.members.push((topic.to_owned(), u.clone()));
                json!({"type": "events.userTopics.joined", "payload": {"topic": topic, "user": {"id": u}}})
            })
            .collect())
    }
}

impl ConfigWriter for World {
    fn set_config(&mut self, name: &str, value: Option<&Value>) -> Result<(), DslError> {
        self.config_writes.push((name.to_owned(), value.cloned()));
        Ok(())
    }
}

impl IdentitySwitch for World {
    fn switch_identity(
        &mut self,
        user: Option<&str>,
        session: Option<&str>,
    ) -> Result<(Option<String>, Option<String>), DslError> {
        // A known login session "s-ada" belongs to "ada"; others are a user of their own id.
        let (user, session) = match (user, session) {
            (Some(u), None) => (u.to_owned(), u.to_owned()),
            (None, Some("s-ada")) => ("ada".to_owned(), "s-ada".to_owned()),
            (None, Some(s)) => (s.to_owned(), s.to_owned()),
            _ => {
                return Err(DslError::new(
                    "InvalidInstructionError",
                    "one of user and session",
                ));
            }
        };
        self.switched_to = Some(user.clone());
        Ok((Some(user), Some(session)))
    }
}

/// Runs `steps` and `output` against `world`, as user `u1` with `locals`.
pub(crate) fn go_with(
    world: &mut World,
    steps: Value,
    output: Value,
    locals: Value,
) -> Result<RunResult, DslError> {
    let program = compile(&steps, Some(&output)).unwrap_or_else(|e| panic!("{e}"));
    let Value::Object(locals) = locals else {
        panic!("locals")
    };
    let input = RunInput {
        locals,
        run: serde_json::from_value(json!({"depth": 1, "correlationId": "c1"})).unwrap(),
        global: serde_json::from_value(json!({"workspaceId": "ws1"})).unwrap(),
        user_id: Some("u1".into()),
        session_id: None,
        config: json!({"apiBase": "https://api.example"}),
        workspace: Some(json!({"id": "ws1", "name": "Shop", "slug": "shop", "labels": ["retail"]})),
    };
    run(&program, input, world)
}

/// Runs `steps` and `output` against a fresh world; the output.
pub(crate) fn go(steps: Value, output: Value) -> Value {
    go_with(&mut World::default(), steps, output, json!({}))
        .unwrap()
        .output
}

/// A `fetch` answer of `status` with content type `ct`.
pub(crate) fn response(status: u16, ct: &str, body: &str) -> Option<FetchResponse> {
    Some(FetchResponse {
        status,
        headers: vec![("Content-Type".into(), ct.into())],
        body: body.as_bytes().to_vec(),
    })
}
