//! Instruction behaviour against an in-memory outside world.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::*;
use crate::document::compile;

#[derive(Default)]
struct World {
    emitted: Vec<(String, Value, bool)>,
    state: HashMap<(Scope, String), Value>,
    calls: Vec<(String, Value)>,
    waits: Vec<(Vec<WaitFor>, u32)>,
    reply: Option<Value>,
    fetched: Vec<FetchRequest>,
    /// What `fetch` answers (default: 200 `{"ok":true}`).
    response: Option<FetchResponse>,
    /// Points used per (limiter, consumer).
    used: HashMap<(String, String), u32>,
    topics: Vec<String>,
    members: Vec<(String, String)>,
    /// The user a switched run acts as: its `user` variables are kept under `<user>/<name>`.
    switched_to: Option<String>,
    config_writes: Vec<(String, Option<Value>)>,
}

impl World {
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
        self.waits.push((on.to_vec(), timeout_ms));
        Ok(self.reply.clone())
    }
    fn fetch(&mut self, request: FetchRequest) -> Result<FetchResponse, DslError> {
        self.fetched.push(request);
        if let Some(r) = &self.response {
            return Ok(r.clone());
        }
        Ok(FetchResponse {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: br#"{"ok":true}"#.to_vec(),
        })
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
    fn set_config(&mut self, name: &str, value: Option<&Value>) -> Result<(), DslError> {
        self.config_writes.push((name.to_owned(), value.cloned()));
        Ok(())
    }
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
    fn call(&mut self, slug: &str, arguments: &Value) -> Result<Value, DslError> {
        self.calls.push((slug.to_owned(), arguments.clone()));
        if slug == "missing" {
            return Err(DslError::new("ObjectNotFoundError", "Automation not found"));
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
    fn random(&mut self) -> f64 {
        0.5
    }
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

fn go_with(
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
    };
    run(&program, input, world)
}

fn go(steps: Value, output: Value) -> Value {
    go_with(&mut World::default(), steps, output, json!({}))
        .unwrap()
        .output
}

#[test]
fn set_replace_merge_push() {
    let out = go(
        json!([
            {"set": {"name": "cart", "value": {"items": [], "total": 0}}},
            {"set": {"name": "cart.items[]", "value": {"sku": "A1", "qty": 2}}},
            {"set": {"name": "cart", "type": "merge", "value": {"total": 18.5}}},
            {"set": {"name": "l", "value": [1]}},
            {"set": {"name": "l", "type": "merge", "value": [2, 3]}},
            {"set": {"name": "l", "type": "push", "value": [4]}},
            {"set": {"name": "s", "value": "x"}},
            {"set": {"name": "s", "type": "push", "value": "y"}},
            {"set": {"name": "o", "value": {"a": 1}}},
            {"set": {"name": "o", "type": "merge", "value": 5}},
            {"set": {"name": "first", "value": "{{cart.items[0].sku}}"}}
        ]),
        json!({"cart": "{{cart}}", "l": "{{l}}", "s": "{{s}}", "o": "{{o}}", "first": "{{first}}"}),
    );
    assert_eq!(
        out,
        json!({"cart": {"items": [{"sku": "A1", "qty": 2}], "total": 18.5}, "l": [1, 2, 3, [4]],
        "s": ["y"], "o": {"a": 1}, "first": "A1"})
    );
}

#[test]
fn set_through_a_scalar_is_an_error_and_delete_splices() {
    let e = go_with(
        &mut World::default(),
        json!([{"set": {"name": "a", "value": 1}}, {"set": {"name": "a.b", "value": 2}}]),
        json!({}),
        json!({}),
    )
    .unwrap_err();
    assert_eq!(e.class, "InvalidInstructionError");
    let out = go(
        json!([{"set": {"name": "l", "value": [1, 2, 3]}}, {"delete": {"name": "l[0]"}}, {"delete": {"name": "nothing"}}]),
        json!("{{l}}"),
    );
    assert_eq!(out, json!([2, 3]));
}

#[test]
fn persistent_scopes_go_through_the_outside_and_computed_fields_are_read_only() {
    let mut w = World::default();
    w.state.insert((Scope::Global, "counter".into()), json!(41));
    let r = go_with(
        &mut w,
        json!([
            {"set": {"name": "global.counter", "value": "{% {{global.counter}} + 1 %}"}},
            {"set": {"name": "user.prefs.lang", "value": "fr"}},
            {"set": {"name": "session.seen[]", "value": 1}},
            {"set": {"name": "run.step", "value": "x"}},
            {"delete": {"name": "run.step"}}
        ]),
        json!({"c": "{{global.counter}}", "ws": "{{global.workspaceId}}", "u": "{{user.id}}", "s": "{{session.id}}",
            "d": "{{run.depth}}", "cfg": "{{config.apiBase}}", "lang": "{{user.prefs.lang}}"}),
        json!({}),
    )
    .unwrap();
    assert_eq!(
        r.output,
        json!({"c": 42, "ws": "ws1", "u": "u1", "s": "u1", "d": 1, "cfg": "https://api.example", "lang": "fr"})
    );
    assert_eq!(w.state[&(Scope::Global, "counter".into())], json!(42));
    assert_eq!(
        w.state[&(Scope::User, "prefs".into())],
        json!({"lang": "fr"})
    );
    assert_eq!(w.state[&(Scope::Session, "seen".into())], json!([1]));
    assert!(!w.state.contains_key(&(Scope::Run, "step".into())));
    let e = go_with(
        &mut World::default(),
        json!([{"set": {"name": "run.depth", "value": 0}}]),
        json!({}),
        json!({}),
    )
    .unwrap_err();
    assert_eq!(e.class, "InvalidInstructionError");
}

#[test]
fn emit_returns_the_envelope_and_bad_payloads_become_error_events() {
    let mut w = World::default();
    let r = go_with(
        &mut w,
        json!([
            {"emit": {"event": "order.done", "payload": {"id": "{{id}}"}, "output": "sent"}},
            {"emit": {"event": "quiet", "options": {"persist": false}}},
            {"emit": {"event": "bad", "payload": [1]}}
        ]),
        json!("{{sent.payload.id}}"),
        json!({"id": 7}),
    )
    .unwrap();
    assert_eq!(r.output, json!(7));
    assert_eq!(w.emitted[0], ("order.done".into(), json!({"id": 7}), true));
    assert_eq!(w.emitted[1], ("quiet".into(), json!({}), false));
    assert_eq!(w.emitted[2].0, "error");
    assert_eq!(w.emitted[2].1["error"], json!("InvalidEventError"));
    let e = go_with(
        &mut World::default(),
        json!([{"emit": {"event": "bad type!"}}]),
        json!({}),
        json!({}),
    )
    .unwrap_err();
    assert_eq!(e.class, "InvalidEventError");
}

#[test]
fn conditions_take_the_first_truthy_branch_in_order() {
    let steps = json!([{"conditions": {
        "{{qty}} > 10": [{"set": {"name": "tier", "value": "bulk"}}],
        "{{qty}} exists": [{"set": {"name": "tier", "value": "normal"}}],
        "default": [{"set": {"name": "tier", "value": "none"}}]
    }}]);
    let tier = |locals: Value| {
        go_with(
            &mut World::default(),
            steps.clone(),
            json!("{{tier}}"),
            locals,
        )
        .unwrap()
        .output
    };
    assert_eq!(tier(json!({"qty": 20})), json!("bulk"));
    assert_eq!(tier(json!({"qty": 2})), json!("normal"));
    assert_eq!(tier(json!({})), json!("none"));
}

#[test]
fn repeat_over_arrays_objects_strings_and_counts() {
    let out = go(
        json!([
            {"set": {"name": "sum", "value": 0}},
            {"repeat": {"on": [1, 2, 3], "do": [{"set": {"name": "sum", "value": "{% {{sum}} + {{item}} %}"}}]}},
            {"repeat": {"on": {"a": 1, "b": 2}, "do": [{"set": {"name": "keys[]", "value": "{{item.key}}"}}]}},
            {"repeat": {"on": "hé", "do": [{"set": {"name": "chars[]", "value": "{{item}}"}}]}},
            {"repeat": {"until": 3, "do": [{"set": {"name": "idx[]", "value": "{{$index}}"}}]}},
            {"repeat": {"on": [1, 2, 3, 4], "until": 2, "do": [{"set": {"name": "capped[]", "value": "{{item}}"}}]}}
        ]),
        json!({"sum": "{{sum}}", "keys": "{{keys}}", "chars": "{{chars}}", "idx": "{{idx}}", "capped": "{{capped}}",
            "item": "{{item}}", "last": "{{$index}}"}),
    );
    assert_eq!(
        out,
        json!({"sum": 6, "keys": ["a", "b"], "chars": ["h", "é"], "idx": [0, 1, 2], "capped": [1, 2], "last": 1})
    );
}

#[test]
fn break_stops_the_automation_but_output_is_computed() {
    let r = go_with(
        &mut World::default(),
        json!([
            {"repeat": {"on": [1, 2, 3], "do": [
                {"conditions": {"{{item}} == 2": [{"break": {"scope": "repeat"}}], "default": []}},
                {"set": {"name": "seen[]", "value": "{{item}}"}}
            ]}},
            {"set": {"name": "after", "value": true}},
            {"break": {}},
            {"set": {"name": "never", "value": true}}
        ]),
        json!({"seen": "{{seen}}", "after": "{{after}}", "never": "{{never}}"}),
        json!({}),
    )
    .unwrap();
    assert_eq!(r.output, json!({"seen": [1], "after": true}));
    assert!(r.broke);
}

#[test]
fn try_catch_exposes_the_error_and_all_runs_every_branch() {
    let out = go(
        json!([
            {"try": {"do": [{"missing": {}}, {"set": {"name": "skipped", "value": 1}}],
                "catch": [{"set": {"name": "caught", "value": "{{$error.error}}"}}]}},
            {"try": {"do": [{"emit": {"event": "bad!"}}]}},
            {"all": [{"set": {"name": "a", "value": 1}}, {"set": {"name": "b", "value": 2}}]}
        ]),
        json!({"caught": "{{caught}}", "skipped": "{{skipped}}", "class": "{{$error.name}}", "a": "{{a}}", "b": "{{b}}"}),
    );
    assert_eq!(
        out,
        json!({"caught": "ObjectNotFoundError", "class": "InvalidEventError", "a": 1, "b": 2})
    );
}

#[test]
fn calls_pass_interpolated_arguments_and_write_the_output() {
    let mut w = World::default();
    let r = go_with(
        &mut w,
        json!([{"quote": {"sku": "{{sku}}", "output": "price"}}]),
        json!("{{price.with.sku}}"),
        json!({"sku": "A1"}),
    )
    .unwrap();
    assert_eq!(r.output, json!("A1"));
    assert_eq!(
        w.calls,
        vec![("quote".into(), json!({"sku": "A1", "output": "price"}))]
    );
    let e = go_with(
        &mut World::default(),
        json!([{"missing": {}}]),
        json!({}),
        json!({}),
    )
    .unwrap_err();
    assert_eq!(e.class, "ObjectNotFoundError");
}

#[test]
fn wait_passes_filters_and_timeout() {
    let mut w = World {
        reply: Some(json!({"type": "reply", "payload": {"ok": 1}})),
        ..World::default()
    };
    let r = go_with(
        &mut w,
        json!([{"wait": {"oneOf": [{"event": "reply", "filters": {"source.correlationId": "{{run.correlationId}}"}}],
            "timeout": 2, "output": "got"}}]),
        json!("{{got.payload.ok}}"),
        json!({}),
    )
    .unwrap();
    assert_eq!(r.output, json!(1));
    assert_eq!(w.waits[0].1, 2000);
    assert_eq!(
        w.waits[0].0[0].filters,
        vec![("source.correlationId".to_owned(), json!("c1"))]
    );
}

#[test]
fn fetch_builds_the_request_and_parses_json() {
    let mut w = World::default();
    let r = go_with(
        &mut w,
        json!([{"fetch": {"url": "https://x.example/a?z=1", "method": "post", "query": {"q": "a b", "n": [1, 2]},
            "body": {"k": "{{v}}"}, "output": "res"}}]),
        json!("{{res.ok}}"),
        json!({"v": 3}),
    )
    .unwrap();
    assert_eq!(r.output, json!(true));
    let req = &w.fetched[0];
    assert_eq!(req.method, "POST");
    assert_eq!(req.url, "https://x.example/a?z=1&q=a%20b&n=1&n=2");
    assert_eq!(req.body.as_deref(), Some(br#"{"k":3}"#.as_slice()));
    assert!(
        req.headers
            .contains(&("content-type".into(), "application/json".into()))
    );
}

#[test]
fn http_channel_sets_status_and_headers() {
    let r = go_with(
        &mut World::default(),
        json!([{"set": {"name": "$http", "value": {"status": 201, "headers": {"X-Id": 5}}}}, {"set": {"name": "$http.status", "value": 500}}]),
        json!({"ok": true}),
        json!({}),
    )
    .unwrap();
    assert_eq!(
        r.http,
        HttpOut {
            status: Some(201),
            headers: vec![("x-id".into(), "5".into())]
        }
    );
}

#[test]
fn null_arguments_and_unsupported_instructions_fail_when_reached() {
    let e = go_with(
        &mut World::default(),
        json!([{"emit": null}]),
        json!({}),
        json!({}),
    )
    .unwrap_err();
    assert_eq!(e.class, "InvalidInstructionError");
    let e = compile(&json!([{"rateLimit": {"name": "x"}}]), None).unwrap_err();
    assert_eq!(
        (e.path.as_str(), e.rule.as_str()),
        ("do[0].rateLimit", "InvalidInstructionError")
    );
    assert_eq!(
        go(
            json!([{"break": null}, {"set": {"name": "a", "value": 1}}]),
            json!("{{a}}")
        ),
        json!({})
    );
}

#[test]
fn compiled_programs_survive_serialization() {
    let p = compile(&json!([{"conditions": {"{{a}} > 1 and {{b}}": [{"emit": {"event": "x"}}], "default": []}}]), Some(&json!("{{a}}"))).unwrap();
    let text = serde_json::to_string(&p).unwrap();
    let back: crate::Program = serde_json::from_str(&text).unwrap();
    assert_eq!(back, p);
}

#[test]
fn rate_limit_writes_its_state_and_breaks_when_refused() {
    let mut w = World::default();
    let steps = json!([
        {"rateLimit": {"name": "api", "limit": 2, "window": 60, "consumer": "{{who}}", "output": "rl"}},
        {"set": {"name": "passed", "value": true}}
    ]);
    let out = json!({"rl": "{{rl}}", "passed": "{{passed}}"});
    let first = go_with(&mut w, steps.clone(), out.clone(), json!({"who": "ada"})).unwrap();
    assert_eq!(
        first.output,
        json!({"rl": {"ok": true, "remaining": 1, "retryAfter": 0, "limit": 2, "window": 60, "consumer": "ada"}, "passed": true})
    );
    go_with(&mut w, steps.clone(), out.clone(), json!({"who": "ada"})).unwrap();
    let third = go_with(&mut w, steps.clone(), out.clone(), json!({"who": "ada"})).unwrap();
    assert!(third.broke, "a refusal breaks by default");
    assert_eq!(
        third.output["rl"]["ok"],
        json!(false),
        "output is written before the break"
    );
    assert_eq!(third.output["rl"]["retryAfter"], json!(60));
    assert_eq!(third.output.get("passed"), None);
    // break: false continues; consume and the default consumer
    let r = go_with(&mut w, json!([{"rateLimit": {"name": "api", "limit": 2, "window": 60, "consume": 3, "break": false, "output": "rl"}}, {"set": {"name": "passed", "value": true}}]), out.clone(), json!({})).unwrap();
    assert_eq!(
        (
            r.output["rl"]["ok"].clone(),
            r.output["rl"]["consumer"].clone(),
            r.output["passed"].clone()
        ),
        (json!(false), json!("global"), json!(true))
    );
    let e = go_with(
        &mut w,
        json!([{"rateLimit": {"name": "api", "limit": 0, "window": 60}}]),
        json!({}),
        json!({}),
    )
    .unwrap_err();
    assert_eq!(e.class, "InvalidInstructionError");
}

#[test]
fn user_topics_are_created_once_and_joined() {
    let mut w = World::default();
    let out = go_with(
        &mut w,
        json!([
            {"createUserTopic": {"topic": "team", "userIds": ["a"], "output": "c1"}},
            {"createUserTopic": {"topic": "team", "output": "c2"}},
            {"joinUserTopic": {"topic": "team", "output": "j"}},
            {"joinUserTopic": {"topic": "new", "userIds": ["b", "c"], "output": "j2"}}
        ]),
        json!({"c1": "{{c1.type}}", "c2": "{{c2}}", "j": "{{j[0].payload.user.id}}", "n": "{{j2.length}}"}),
        json!({}),
    )
    .unwrap()
    .output;
    assert_eq!(
        out,
        json!({"c1": "events.userTopics.created", "c2": true, "j": "u1", "n": 2})
    );
    let e = go_with(
        &mut w,
        json!([{"joinUserTopic": {"topic": "nope", "create": false}}]),
        json!({}),
        json!({}),
    )
    .unwrap_err();
    assert_eq!(e.class, "PrismeError");
    let e = go_with(
        &mut w,
        json!([{"joinUserTopic": {"topic": ""}}]),
        json!({}),
        json!({}),
    )
    .unwrap_err();
    assert_eq!(e.class, "PrismeError");
}

#[test]
fn all_interpolates_every_branch_before_running_any() {
    let mut w = World::default();
    let r = go_with(
        &mut w,
        json!([
            {"set": {"name": "n", "value": 1}},
            {"all": [
                {"set": {"name": "n", "value": 2}},
                {"set": {"name": "seen", "value": "{{n}}"}},
                {"emit": {"event": "boom", "payload": 3}},
                {"missing": {}},
                {"set": {"name": "after", "value": true}}
            ]}
        ]),
        json!({"n": "{{n}}", "seen": "{{seen}}", "after": "{{after}}"}),
        json!({}),
    );
    let e = r.unwrap_err();
    assert_eq!(
        e.class, "ObjectNotFoundError",
        "the first error is raised once all branches settled"
    );
    let r = go_with(&mut World::default(), json!([{"set": {"name": "n", "value": 1}}, {"all": [{"set": {"name": "n", "value": 2}}, {"set": {"name": "seen", "value": "{{n}}"}}]}]), json!({"n": "{{n}}", "seen": "{{seen}}"}), json!({})).unwrap();
    assert_eq!(
        r.output,
        json!({"n": 2, "seen": 1}),
        "branch 2 saw the scopes before branch 1 ran"
    );
    assert_eq!(
        w.emitted.len(),
        1,
        "the error event of branch 3 was emitted although branch 4 failed"
    );
    let mut w = World::default();
    let e = go_with(&mut w, json!([{"all": [{"missing": {}}, {"set": {"name": "x", "value": 1}}, {"emit": {"event": "after"}}]}]), json!({}), json!({})).unwrap_err();
    assert_eq!(e.class, "ObjectNotFoundError");
    assert_eq!(w.emitted.len(), 1, "later branches still ran");
}

fn response(status: u16, ct: &str, body: &str) -> Option<FetchResponse> {
    Some(FetchResponse {
        status,
        headers: vec![("Content-Type".into(), ct.into())],
        body: body.as_bytes().to_vec(),
    })
}

#[test]
fn fetch_streams_sse_into_events_or_a_repeatable_body() {
    let sse = "data: {\"t\":\"Hel\"}\n\nevent: part\nid: 2\ndata: {\"t\":\"lo\"}\n\n: keep-alive\n\ndata: [DONE]\n\n";
    let mut w = World {
        response: response(200, "text/event-stream", sse),
        ..World::default()
    };
    let r = go_with(
        &mut w,
        json!([{"fetch": {"url": "https://x.test/s", "stream": {"event": "chunk", "concatenate": {"path": "t"}, "payload": {"k": 1}}, "output": "res"}}]),
        json!("{{res}}"),
        json!({}),
    )
    .unwrap();
    assert_eq!(r.output["stream"], json!(true));
    assert_eq!(
        r.output.get("body"),
        None,
        "with stream.event the body is not returned"
    );
    assert_eq!(w.emitted.len(), 4);
    assert_eq!(w.emitted[1].0, "chunk");
    assert_eq!(
        w.emitted[1].1,
        json!({"index": 1, "chunk": {"event": "part", "id": "2", "data": [{"t": "lo"}]}, "additionalPayload": {"k": 1}, "concatenated": {"value": "Hello"}})
    );
    assert_eq!(
        w.emitted[2].1["chunk"],
        json!({"comment": "keep-alive", "data": []})
    );
    assert_eq!(w.emitted[3].1["chunk"]["data"], json!(["[DONE]"]));

    let mut w = World {
        response: response(200, "text/event-stream", sse),
        ..World::default()
    };
    let r = go_with(
        &mut w,
        json!([{"fetch": {"url": "https://x.test/s", "output": "res"}}, {"repeat": {"on": "{{res.body}}", "do": [{"set": {"name": "seen[]", "value": "{{item.index}}"}}]}}]),
        json!("{{seen}}"),
        json!({}),
    )
    .unwrap();
    assert_eq!(
        r.output,
        json!([0, 1, 2, 3]),
        "repeat iterates the streamed body"
    );
}

#[test]
fn fetch_output_modes_and_failure_events() {
    let mut w = World {
        response: response(404, "application/json", "{\"error\":\"nope\"}"),
        ..World::default()
    };
    let r = go_with(&mut w, json!([{"fetch": {"url": "https://x.test/a", "outputMode": "detailed_response", "output": "res"}}]), json!("{{res}}"), json!({})).unwrap();
    assert_eq!(r.output["status"], json!(404));
    assert_eq!(
        r.output["headers"],
        json!({"content-type": "application/json"})
    );
    assert_eq!(w.emitted[0].0, "runtime.fetch.failed");
    assert_eq!(w.emitted[0].1["response"]["body"], json!({"error": "nope"}));
    let mut w = World {
        response: response(500, "text/plain", "x"),
        ..World::default()
    };
    go_with(
        &mut w,
        json!([{"fetch": {"url": "https://x.test/a", "emitErrors": false}}]),
        json!({}),
        json!({}),
    )
    .unwrap();
    assert!(w.emitted.is_empty(), "emitErrors: false");
    let mut w = World {
        response: response(200, "image/png", "\u{1}\u{2}\u{3}"),
        ..World::default()
    };
    let r = go_with(&mut w, json!([{"fetch": {"url": "https://x.test/i", "output": "b"}}, {"fetch": {"url": "https://x.test/i", "outputMode": "data_url", "output": "d"}}]), json!({"b": "{{b}}", "d": "{{d}}"}), json!({})).unwrap();
    assert_eq!(
        r.output,
        json!({"b": "AQID", "d": "data:image/png;base64,AQID"})
    );
}

#[test]
fn setting_user_or_session_id_switches_identity() {
    let mut w = World::default();
    w.state.insert((Scope::User, "bob/points".into()), json!(7));
    // What the host would answer for bob's account: a switched run must not see it (§5.5).
    w.state
        .insert((Scope::User, "bob/email".into()), json!("bob@example.com"));
    w.state.insert((Scope::User, "points".into()), json!(1));
    let r = go_with(
        &mut w,
        json!([
            {"set": {"name": "before", "value": "{{user.points}}"}},
            {"set": {"name": "user.id", "value": "u1"}},
            {"set": {"name": "user.id", "value": "bob"}},
            {"set": {"name": "bobs", "value": "{{user.points}}"}},
            {"set": {"name": "user.points", "value": "{% {{user.points}} + 1 %}"}},
            {"set": {"name": "as_bob", "value": {"u": "{{user.id}}", "s": "{{session.id}}", "email": "{{user.email}}"}}},
            {"set": {"name": "session.id", "value": "s-ada"}}
        ]),
        json!({"before": "{{before}}", "bobs": "{{bobs}}", "as_bob": "{{as_bob}}", "u": "{{user.id}}", "s": "{{session.id}}"}),
        json!({}),
    )
    .unwrap();
    assert_eq!(
        r.output,
        json!({"before": 1, "bobs": 7, "as_bob": {"u": "bob", "s": "bob", "email": null}, "u": "ada", "s": "s-ada"})
    );
    assert_eq!(
        w.state[&(Scope::User, "bob/points".into())],
        json!(8),
        "written as bob, not as u1"
    );
    assert_eq!(w.state[&(Scope::User, "points".into())], json!(1));
    let e = go_with(
        &mut World::default(),
        json!([{"set": {"name": "user.id", "value": ""}}]),
        json!({}),
        json!({}),
    )
    .unwrap_err();
    assert_eq!(e.class, "InvalidInstructionError");
}

#[test]
fn fetch_sends_form_and_multipart_bodies() {
    let mut w = World::default();
    go_with(
        &mut w,
        json!([
            {"fetch": {"url": "https://api.example/form", "method": "post",
                "headers": {"content-type": "application/x-www-form-urlencoded"}, "body": {"q": "a b&c", "n": 2}}},
            {"fetch": {"url": "https://api.example/upload", "method": "post", "headers": {"Content-Type": "application/json"},
                "body": {"ignored": true},
                "multipart": [
                    {"fieldname": "doc", "value": "aGVsbG8=", "filename": "a\"b.txt", "contentType": "text/plain"},
                    {"fieldname": "note", "value": "hi there"},
                    {"fieldname": "raw", "value": [104, 105]}
                ]}},
            {"fetch": {"url": "https://api.example/get", "body": {"dropped": true}}}
        ]),
        json!({}),
        json!({}),
    )
    .unwrap();
    let [form, upload, get] = &w.fetched[..] else {
        panic!("three requests: {:?}", w.fetched)
    };
    assert_eq!(form.body.as_deref(), Some(&b"q=a%20b%26c&n=2"[..]));

    let content_types: Vec<&str> = upload
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.as_str())
        .collect();
    let [content_type] = content_types[..] else {
        panic!("one content type: {content_types:?}")
    };
    let boundary = content_type
        .strip_prefix("multipart/form-data; boundary=")
        .expect("a multipart content type");
    let body = String::from_utf8(upload.body.clone().expect("a body")).unwrap();
    let expected = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"doc\"; filename=\"a%22b.txt\"\r\nContent-Type: text/plain\r\n\r\nhello\r\n\
--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi there\r\n\
--{boundary}\r\nContent-Disposition: form-data; name=\"raw\"\r\n\r\nhi\r\n--{boundary}--\r\n"
    );
    assert_eq!(body, expected);
    assert_eq!(get.body, None, "GET sends no body");
    assert!(
        get.headers
            .iter()
            .any(|(k, v)| k == "content-type" && v == "application/json"),
        "but declares JSON"
    );

    let e = go_with(&mut World::default(), json!([{"fetch": {"url": "https://x.example", "method": "post", "multipart": [{"value": "v"}]}}]), json!({}), json!({}))
        .unwrap_err();
    assert_eq!(e.class, "InvalidInstructionError");
}

#[test]
fn a_callees_writes_to_shared_scopes_are_seen_after_the_call() {
    let out = go(
        json!([
            {"set": {"name": "global.n", "value": 1}},
            {"set": {"name": "before", "value": "{{global.n}}"}},
            {"bump": {}},
            {"set": {"name": "after", "value": "{{global.n}}"}}
        ]),
        json!({"before": "{{before}}", "after": "{{after}}"}),
    );
    assert_eq!(out, json!({"before": 1, "after": 2}));
}

#[test]
fn config_writes_change_the_run_and_store_the_member() {
    let mut w = World::default();
    let r = go_with(
        &mut w,
        json!([
            {"set": {"name": "config.greeting", "value": "hi"}},
            {"set": {"name": "config.limits.daily", "value": 5}},
            {"delete": {"name": "config.apiBase"}}
        ]),
        json!("{{config}}"),
        json!({}),
    )
    .unwrap();
    assert_eq!(r.output, json!({"greeting": "hi", "limits": {"daily": 5}}));
    assert_eq!(
        w.config_writes,
        vec![
            ("greeting".to_owned(), Some(json!("hi"))),
            ("limits".to_owned(), Some(json!({"daily": 5}))),
            ("apiBase".to_owned(), None)
        ]
    );
    let e = go_with(
        &mut World::default(),
        json!([{"set": {"name": "config", "value": {}}}]),
        json!({}),
        json!({}),
    )
    .unwrap_err();
    assert_eq!(e.class, "InvalidInstructionError");
}
