//! Runs a [`Program`] (`automation-dsl.md` §3, §5, §6). Every effect on the outside world goes
//! through [`Outside`], which the interpreter component implements with the WIT imports and the
//! tests with an in-memory twin.

use std::collections::HashMap;
use std::sync::LazyLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use crate::document::{Instr, Program};
use crate::error::DslError;
use crate::eval::{Env, eval};
use crate::path::{self, Seg};
use crate::template::{Tpl, render};
use crate::value::{Val, json_type_name, pairs_object};

/// A persistent scope of the state import (§5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    Global,
    User,
    Session,
    Run,
}

impl Scope {
    fn of(name: &str) -> Option<Scope> {
        Some(match name {
            "global" => Scope::Global,
            "user" => Scope::User,
            "session" => Scope::Session,
            "run" => Scope::Run,
            _ => return None,
        })
    }
}

/// One entry of a `wait`: an event type and equality filters on envelope paths.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitFor {
    pub event_type: String,
    pub filters: Vec<(String, Value)>,
}

/// An outbound request of `fetch`.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

/// The answer to a `fetch`.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The outside world of a run. Errors are DSL errors (their class is what `try` sees).
pub trait Outside {
    /// Publishes a custom event; returns its id.
    fn emit(
        &mut self,
        event_type: &str,
        payload: &Value,
        target: Option<&Value>,
        persist: bool,
    ) -> Result<String, DslError>;
    /// Waits for the first event matching one entry; `None` on timeout. Returns the envelope
    /// (`{id, type, payload, source}`).
    fn wait(&mut self, on: &[WaitFor], timeout_ms: u32) -> Result<Option<Value>, DslError>;
    fn fetch(&mut self, request: FetchRequest) -> Result<FetchResponse, DslError>;
    /// The variable `name` of a persistent scope.
    fn get(&mut self, scope: Scope, name: &str) -> Result<Option<Value>, DslError>;
    fn set(&mut self, scope: Scope, name: &str, value: &Value) -> Result<(), DslError>;
    fn delete(&mut self, scope: Scope, name: &str) -> Result<(), DslError>;
    /// Runs another automation with `arguments`; returns its output.
    fn call(&mut self, slug: &str, arguments: &Value) -> Result<Value, DslError>;
    /// A float in [0, 1).
    fn random(&mut self) -> f64;
    /// Takes `consume` points from the cluster-wide limiter `name`/`consumer` (§3.13).
    fn rate_limit(&mut self, limiter: &RateLimitCall) -> Result<RateLimitState, DslError> {
        let _ = limiter;
        Err(DslError::new(
            "PrismeError",
            "rate limits are not available here",
        ))
    }
    /// Creates a user topic with `user_ids` as members: `None` if it existed, else the
    /// `events.userTopics.created` event (§3.14).
    fn create_user_topic(
        &mut self,
        topic: &str,
        user_ids: &[String],
    ) -> Result<Option<Value>, DslError> {
        let _ = (topic, user_ids);
        Err(DslError::new(
            "PrismeError",
            "user topics are not available here",
        ))
    }
    /// Joins `user_ids` (empty: the run's user) to `topic`; the `events.userTopics.joined`
    /// events, one per user (§3.14).
    fn join_user_topic(
        &mut self,
        topic: &str,
        user_ids: &[String],
        create: bool,
    ) -> Result<Vec<Value>, DslError> {
        let _ = (topic, user_ids, create);
        Err(DslError::new(
            "PrismeError",
            "user topics are not available here",
        ))
    }
    /// Writes the workspace config's member `name` (`None`: removes it), for every later run.
    fn set_config(&mut self, name: &str, value: Option<&Value>) -> Result<(), DslError> {
        let _ = (name, value);
        Err(DslError::new(
            "PrismeError",
            "config writes are not available here",
        ))
    }
    /// Continues the run as user `user_id` or as login session `session_id` (one of them,
    /// §5.5); returns the user and session ids now in effect.
    fn switch_identity(
        &mut self,
        user_id: Option<&str>,
        session_id: Option<&str>,
    ) -> Result<(Option<String>, Option<String>), DslError> {
        let _ = (user_id, session_id);
        Err(DslError::new(
            "PrismeError",
            "identity switching is not available here",
        ))
    }
}

/// One `rateLimit` call, its numbers already checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitCall {
    pub name: String,
    pub consumer: String,
    pub limit: u32,
    pub window_secs: u32,
    pub consume: u32,
}

/// A limiter after a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitState {
    pub ok: bool,
    pub remaining: u32,
    pub retry_after: u32,
}

/// What a run starts from.
#[derive(Debug, Clone, Default)]
pub struct RunInput {
    /// Initial locals (§2.7).
    pub locals: Map<String, Value>,
    /// Computed `run` fields: `depth`, `correlationId`, `date`, `trigger`, `automationSlug`.
    pub run: Map<String, Value>,
    /// Computed `global` fields: `workspaceId`.
    pub global: Map<String, Value>,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    /// The `config` scope.
    pub config: Value,
}

/// The HTTP response channel (`$http`, §6.2).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HttpOut {
    pub status: Option<u16>,
    pub headers: Vec<(String, String)>,
}

/// The result of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunResult {
    pub output: Value,
    pub http: HttpOut,
    /// A `break` ended the automation.
    pub broke: bool,
}

/// How an instruction list ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Next,
    Break(BreakScope),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BreakScope {
    Automation,
    All,
    Repeat,
}

/// Runs `program` with `input` against `outside`.
pub fn run(
    program: &Program,
    input: RunInput,
    outside: &mut dyn Outside,
) -> Result<RunResult, DslError> {
    let mut r = Runner {
        out: outside,
        input,
        scopes: HashMap::new(),
        http: HttpOut::default(),
        locals: Value::Null,
        switched: false,
    };
    r.locals = Value::Object(std::mem::take(&mut r.input.locals));
    let flow = r.block(&program.instructions)?;
    let output = match &program.output {
        None => json!({}),
        Some(t) => render(t, &mut r)?.into_json().unwrap_or_else(|| json!({})),
    };
    Ok(RunResult {
        output,
        http: r.http,
        broke: matches!(flow, Flow::Break(_)),
    })
}

struct Runner<'o> {
    out: &'o mut dyn Outside,
    input: RunInput,
    locals: Value,
    /// Persistent variables read or written in this run: (scope, name) → value.
    scopes: HashMap<(Scope, String), Option<Value>>,
    http: HttpOut,
    /// The run switched identity (§5.5): `user.email` and `user.authData` are empty.
    switched: bool,
}

fn invalid(message: impl Into<String>) -> DslError {
    DslError::new("InvalidInstructionError", message)
}

impl Env for Runner<'_> {
    fn lookup(&mut self, segs: &[Seg]) -> Result<Val, DslError> {
        let Some(first) = segs.first() else {
            return Ok(Val::Undefined);
        };
        let first = first.as_key();
        if first == "config" {
            return Ok(path::lookup_value(Some(&self.input.config), &segs[1..]));
        }
        let Some(scope) = Scope::of(&first) else {
            return Ok(path::lookup_value(self.locals.get(&*first), &segs[1..]));
        };
        let Some(name) = segs.get(1) else {
            return Ok(Val::Json(self.whole_scope(scope)));
        };
        let v = self.variable(scope, &name.as_key())?;
        Ok(path::lookup_value(v.as_ref(), &segs[2..]))
    }

    fn random(&mut self) -> f64 {
        self.out.random()
    }
}

impl Runner<'_> {
    /// Computed fields of a scope (§5.2); they win over stored values.
    fn computed(&self, scope: Scope, name: &str) -> Option<Value> {
        match (scope, name) {
            (Scope::Global, n) => self.input.global.get(n).cloned(),
            (Scope::Run, n) => self.input.run.get(n).cloned(),
            (Scope::User, "id") => self.input.user_id.clone().map(Value::String),
            (Scope::Session, "id") => self
                .input
                .session_id
                .clone()
                .or_else(|| self.input.user_id.clone())
                .map(Value::String),
            (Scope::User, "email" | "authData") if self.switched => Some(Value::Null),
            _ => None,
        }
    }

    fn variable(&mut self, scope: Scope, name: &str) -> Result<Option<Value>, DslError> {
        if let Some(v) = self.computed(scope, name) {
            return Ok(Some(v));
        }
        let key = (scope, name.to_owned());
        if let Some(v) = self.scopes.get(&key) {
            return Ok(v.clone());
        }
        let v = self.out.get(scope, name)?;
        self.scopes.insert(key, v.clone());
        Ok(v)
    }

    /// A whole scope as far as this run knows it: computed fields plus the variables read or
    /// written so far (the state import reads variables by name).
    fn whole_scope(&self, scope: Scope) -> Value {
        let mut m = Map::new();
        for ((s, name), v) in &self.scopes {
            if *s == scope
                && let Some(v) = v
            {
                m.insert(name.clone(), v.clone());
            }
        }
        let computed: Vec<(String, Value)> = match scope {
            Scope::Global => self.input.global.clone().into_iter().collect(),
            Scope::Run => self.input.run.clone().into_iter().collect(),
            Scope::User | Scope::Session => self
                .computed(scope, "id")
                .map(|v| ("id".to_owned(), v))
                .into_iter()
                .collect(),
        };
        m.extend(computed);
        Value::Object(m)
    }

    fn block(&mut self, list: &[Instr]) -> Result<Flow, DslError> {
        for i in list {
            let flow = self.instruction(i)?;
            if flow != Flow::Next {
                return Ok(flow);
            }
        }
        Ok(Flow::Next)
    }

    /// Renders an instruction's argument mapping.
    fn args(&mut self, t: &Tpl, name: &str) -> Result<Map<String, Value>, DslError> {
        match render(t, self)? {
            Val::Json(Value::Object(m)) => Ok(m),
            other => Err(invalid(format!(
                "{name} takes a mapping, got {}",
                other.type_name()
            ))),
        }
    }

    /// Writes an instruction's result at its `output` path, if any (§3.1).
    fn output_to(
        &mut self,
        args: &Map<String, Value>,
        value: Option<Value>,
    ) -> Result<(), DslError> {
        let (Some(target), Some(value)) = (args.get("output"), value) else {
            return Ok(());
        };
        let Some(name) = target.as_str() else {
            // A non-string output raises an error event in Prisme.ai; the run continues.
            return Ok(());
        };
        self.write(name, SetMode::Replace, Some(value))
    }

    fn instruction(&mut self, i: &Instr) -> Result<Flow, DslError> {
        if let Instr::Set(Tpl::Obj(members)) = i {
            return self.set_members(members);
        }
        let args = self.render_args(i)?;
        self.exec(i, args)
    }

    /// `set` written as a mapping (nearly every one): its members rendered in order, as the
    /// generic path does, but read as they come instead of gathered into a mapping first.
    fn set_members(&mut self, members: &[(String, Tpl)]) -> Result<Flow, DslError> {
        let (mut name, mut kind, mut value) = (None, None, None);
        for (key, t) in members {
            let rendered = render(t, self)?.into_json();
            match key.as_str() {
                "name" => name = rendered,
                "type" => kind = rendered,
                "value" => value = rendered,
                _ => {}
            }
        }
        self.set(name.as_ref(), kind.as_ref(), value)
    }

    /// `set` (§3.2) once its argument is rendered.
    fn set(
        &mut self,
        name: Option<&Value>,
        kind: Option<&Value>,
        value: Option<Value>,
    ) -> Result<Flow, DslError> {
        let name = name
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("set needs a string name"))?;
        let mode = match kind.and_then(Value::as_str) {
            Some("merge") => SetMode::Merge,
            Some("push") => SetMode::Push,
            _ => SetMode::Replace,
        };
        let (name, mode) = match name.strip_suffix("[]") {
            Some(base) => (base, SetMode::Push),
            None => (name, mode),
        };
        self.write(name, mode, value)?;
        Ok(Flow::Next)
    }

    /// Interpolates an instruction's own argument (§3.1): everything but its lazy lists.
    fn render_args(&mut self, i: &Instr) -> Result<Option<Map<String, Value>>, DslError> {
        let (t, name) = match i {
            Instr::Set(t) => (t, "set"),
            Instr::Delete(t) => (t, "delete"),
            Instr::Emit(t) => (t, "emit"),
            Instr::Wait(t) => (t, "wait"),
            Instr::Fetch(t) => (t, "fetch"),
            Instr::Repeat { args, .. } => (args, "repeat"),
            Instr::RateLimit(t) => (t, "rateLimit"),
            Instr::CreateUserTopic(t) => (t, "createUserTopic"),
            Instr::JoinUserTopic(t) => (t, "joinUserTopic"),
            Instr::Call { slug, args } => (args, slug.as_str()),
            Instr::Break(t) => {
                return Ok(match render(t, self)? {
                    Val::Json(Value::Object(m)) => Some(m),
                    _ => Some(Map::new()),
                });
            }
            _ => return Ok(None),
        };
        self.args(t, name).map(Some)
    }

    fn exec(&mut self, i: &Instr, args: Option<Map<String, Value>>) -> Result<Flow, DslError> {
        let mut a = args.unwrap_or_default();
        match i {
            Instr::Comment => Ok(Flow::Next),
            Instr::Null(name) => Err(invalid(format!("{name} needs an argument"))),
            Instr::Unsupported(name) => Err(invalid(format!(
                "{name} is not supported by this interpreter yet"
            ))),
            Instr::Set(_) => {
                // The rendered value is this instruction's own: moved, not copied.
                let value = a.remove("value");
                self.set(a.get("name"), a.get("type"), value)
            }
            Instr::Delete(_) => {
                let name = a
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid("delete needs a string name"))?;
                self.delete(name)?;
                Ok(Flow::Next)
            }
            Instr::Emit(_) => {
                let envelope = self.emit(&a)?;
                self.output_to(&a, Some(envelope))?;
                Ok(Flow::Next)
            }
            Instr::Wait(_) => {
                let event = self.wait(&a)?;
                self.output_to(&a, event)?;
                Ok(Flow::Next)
            }
            Instr::Fetch(_) => {
                let result = self.fetch(&a)?;
                self.output_to(&a, Some(result))?;
                Ok(Flow::Next)
            }
            Instr::Conditions { branches, default } => {
                for (cond, body) in branches {
                    if eval(cond, self)?.truthy() {
                        return self.block(body);
                    }
                }
                self.block(default)
            }
            Instr::Repeat { body, .. } => self.repeat(&a, body),
            Instr::All(branches) => self.all(branches),
            Instr::Break(_) => Ok(Flow::Break(match a.get("scope").and_then(Value::as_str) {
                Some("all") => BreakScope::All,
                Some("repeat") => BreakScope::Repeat,
                _ => BreakScope::Automation,
            })),
            Instr::Try { body, catch } => match self.block(body) {
                Err(e) => {
                    let err = json!({"error": e.class, "name": e.class, "message": e.message, "details": e.details});
                    self.set_local("$error", err);
                    match catch {
                        Some(c) => self.block(c),
                        None => Ok(Flow::Next),
                    }
                }
                ok => ok,
            },
            Instr::RateLimit(_) => self.rate_limit(&a),
            Instr::CreateUserTopic(_) => {
                let (topic, users) = topic_args(&a, "createUserTopic")?;
                let result = self
                    .out
                    .create_user_topic(&topic, &users)?
                    .unwrap_or(Value::Bool(true));
                self.output_to(&a, Some(result))?;
                Ok(Flow::Next)
            }
            Instr::JoinUserTopic(_) => {
                let (topic, users) = topic_args(&a, "joinUserTopic")?;
                let create = a
                    .get("create")
                    .is_none_or(|c| Val::from_json(c.clone()).truthy());
                let events = self.out.join_user_topic(&topic, &users, create)?;
                self.output_to(&a, Some(Value::Array(events)))?;
                Ok(Flow::Next)
            }
            Instr::Call { slug, .. } => {
                let result = self.out.call(slug, &Value::Object(a.clone()));
                // The callee shares the persistent scopes: what it wrote is read afresh (§5.3).
                self.scopes.clear();
                self.output_to(&a, Some(result?))?;
                Ok(Flow::Next)
            }
        }
    }

    /// `all` (§3.10): every branch's own argument is interpolated first, against the scopes
    /// before any branch runs; then the branches run in list order (host calls block, so they
    /// do not interleave) and, once all have settled, the first error or break is raised.
    fn all(&mut self, branches: &[Instr]) -> Result<Flow, DslError> {
        let rendered: Vec<Result<Option<Map<String, Value>>, DslError>> =
            branches.iter().map(|b| self.render_args(b)).collect();
        let mut first: Option<Result<Flow, DslError>> = None;
        for (b, args) in branches.iter().zip(rendered) {
            let r = args.and_then(|a| self.exec(b, a));
            if first.is_none() && !matches!(r, Ok(Flow::Next)) {
                first = Some(r);
            }
        }
        first.unwrap_or(Ok(Flow::Next))
    }

    /// `rateLimit` (§3.13): `output` gets the limiter's state before a refusal breaks.
    fn rate_limit(&mut self, a: &Map<String, Value>) -> Result<Flow, DslError> {
        let name = a
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| invalid("rateLimit needs a name"))?;
        let number = |key: &str, default: Option<f64>| -> Result<u32, DslError> {
            let n = match a.get(key) {
                Some(v) => Val::from_json(v.clone()).to_number(),
                None => default.ok_or_else(|| invalid(format!("rateLimit needs {key}")))?,
            };
            if !n.is_finite() || n < 0.0 {
                return Err(invalid(format!(
                    "rateLimit {key} must be a non-negative number"
                )));
            }
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            Ok(n.min(f64::from(u32::MAX)).ceil() as u32)
        };
        let limit = number("limit", None)?;
        let window = number("window", None)?;
        if limit == 0 || window == 0 {
            return Err(invalid("rateLimit limit and window must be positive"));
        }
        let consume = number("consume", Some(1.0))?;
        let consumer = match a.get("consumer") {
            None | Some(Value::Null) => "global".to_owned(),
            Some(v) => Val::from_json(v.clone()).to_js_string(),
        };
        let call = RateLimitCall {
            name: name.to_owned(),
            consumer: consumer.clone(),
            limit,
            window_secs: window,
            consume,
        };
        let state = self.out.rate_limit(&call)?;
        let result = json!({"ok": state.ok, "remaining": state.remaining, "retryAfter": state.retry_after,
            "limit": limit, "window": window, "consumer": consumer});
        self.output_to(a, Some(result))?;
        let breaks = a
            .get("break")
            .is_none_or(|b| Val::from_json(b.clone()).truthy());
        Ok(if !state.ok && breaks {
            Flow::Break(BreakScope::Automation)
        } else {
            Flow::Next
        })
    }

    fn set_local(&mut self, name: &str, value: Value) {
        if let Value::Object(m) = &mut self.locals {
            m.insert(name.to_owned(), value);
        }
    }

    fn repeat(&mut self, a: &Map<String, Value>, body: &[Instr]) -> Result<Flow, DslError> {
        let until = a
            .get("until")
            .map(|u| Val::from_json(u.clone()).to_number())
            .filter(|n| *n > 0.0 && !n.is_nan());
        // Counted loops are not materialized: `until: 1e12` costs CPU time (stopped by the
        // host's budget), not memory.
        let items: Box<dyn Iterator<Item = Value>> = match a.get("on") {
            Some(Value::Array(items)) => Box::new(items.clone().into_iter()),
            Some(Value::Object(m)) => Box::new(
                m.iter()
                    .map(|(k, v)| json!({"key": k, "value": v}))
                    .collect::<Vec<_>>()
                    .into_iter(),
            ),
            Some(Value::String(s)) => Box::new(
                s.encode_utf16()
                    .map(|u| Value::String(String::from_utf16_lossy(&[u])))
                    .collect::<Vec<_>>()
                    .into_iter(),
            ),
            Some(_) => Box::new(std::iter::empty()),
            None => {
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let n = until.unwrap_or(0.0).min(u64::MAX as f64) as u64;
                Box::new((0..n).map(|i| json!(i)))
            }
        };
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let cap = if a.contains_key("on") {
            until.map_or(usize::MAX, |u| u as usize)
        } else {
            usize::MAX
        };
        let mut flow = Flow::Next;
        for (index, item) in items.take(cap).enumerate() {
            self.set_local("item", item);
            self.set_local("$index", json!(index));
            match self.block(body)? {
                Flow::Next => {}
                Flow::Break(BreakScope::Repeat) => break,
                other => {
                    flow = other;
                    break;
                }
            }
        }
        if let Value::Object(m) = &mut self.locals {
            m.remove("item");
        }
        Ok(flow)
    }

    /// `set` at `name` (§3.2): locals, or a persistent scope variable written whole.
    fn write(&mut self, name: &str, mode: SetMode, value: Option<Value>) -> Result<(), DslError> {
        let segs = path::parse(name).map_err(invalid)?;
        let first = segs[0].as_key();
        if first == "$http" {
            if segs.len() == 1
                && let Some(Value::Object(v)) = &value
            {
                self.set_http(v);
            }
            return Ok(());
        }
        if let Some(scope) = Scope::of(&first) {
            let Some(var) = segs.get(1).map(|s| s.as_key().into_owned()) else {
                return Err(invalid(format!("cannot replace the whole {first} scope")));
            };
            if matches!(scope, Scope::User | Scope::Session)
                && var == "id"
                && segs.len() == 2
                && mode == SetMode::Replace
            {
                return self.switch_identity(scope, value);
            }
            if self.computed(scope, &var).is_some() {
                // Computed fields (run.depth, global.workspaceId, …) cannot be written.
                return Err(invalid(format!("{first}.{var} is read-only here")));
            }
            let mut doc = json!({});
            if let Some(current) = self.variable(scope, &var)? {
                doc[&var] = current;
            }
            apply_set(&mut doc, &segs[1..], mode, value)?;
            let new = doc.get(&var).cloned();
            match &new {
                Some(v) => self.out.set(scope, &var, v)?,
                None => self.out.delete(scope, &var)?,
            }
            self.scopes.insert((scope, var), new);
            return Ok(());
        }
        if first == "config" {
            return self.change_config(&segs, |doc| apply_set(doc, &segs, mode, value));
        }
        apply_set(&mut self.locals, &segs, mode, value)
    }

    /// `set user.id` / `set session.id` (§5.5): the run goes on as that identity, with the
    /// `user` and `session` scopes of the new one. Setting the current id changes nothing.
    fn switch_identity(&mut self, scope: Scope, value: Option<Value>) -> Result<(), DslError> {
        let id = match value {
            Some(Value::String(s)) if !s.is_empty() => s,
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err(invalid("an identity switch needs a non-empty string id")),
        };
        let current = if scope == Scope::User {
            &self.input.user_id
        } else {
            &self.input.session_id
        };
        if current.as_deref() == Some(id.as_str()) {
            return Ok(());
        }
        let (user, session) = match scope {
            Scope::User => self.out.switch_identity(Some(&id), None)?,
            _ => self.out.switch_identity(None, Some(&id))?,
        };
        self.input.user_id = user;
        self.input.session_id = session;
        self.switched = true;
        self.scopes
            .retain(|(s, _), _| !matches!(s, Scope::User | Scope::Session));
        Ok(())
    }

    fn delete(&mut self, name: &str) -> Result<(), DslError> {
        let segs = path::parse(name).map_err(invalid)?;
        let first = segs[0].as_key();
        if let Some(scope) = Scope::of(&first) {
            let Some(var) = segs.get(1).map(|s| s.as_key().into_owned()) else {
                return Err(invalid(format!("cannot delete the whole {first} scope")));
            };
            let mut doc = json!({});
            if let Some(current) = self.variable(scope, &var)? {
                doc[&var] = current;
            }
            path::delete(&mut doc, &segs[1..]).map_err(invalid)?;
            let new = doc.get(&var).cloned();
            match &new {
                Some(v) => self.out.set(scope, &var, v)?,
                None => self.out.delete(scope, &var)?,
            }
            self.scopes.insert((scope, var), new);
            return Ok(());
        }
        if first == "config" {
            return self.change_config(&segs, |doc| path::delete(doc, &segs).map_err(invalid));
        }
        path::delete(&mut self.locals, &segs).map_err(invalid)
    }

    /// A write to `config` at `segs` (§5.2): applied to this run's config, then the changed
    /// member is stored for every later run.
    fn change_config(
        &mut self,
        segs: &[Seg],
        change: impl FnOnce(&mut Value) -> Result<(), DslError>,
    ) -> Result<(), DslError> {
        let Some(key) = segs.get(1).map(|s| s.as_key().into_owned()) else {
            return Err(invalid("cannot replace the whole config"));
        };
        let mut doc = json!({"config": std::mem::take(&mut self.input.config)});
        let changed = change(&mut doc);
        self.input.config = doc["config"].take();
        changed?;
        let value = self.input.config.get(&key).cloned();
        self.out.set_config(&key, value.as_ref())
    }

    fn set_http(&mut self, v: &Map<String, Value>) {
        if let Some(s) = v
            .get("status")
            .and_then(Value::as_u64)
            .and_then(|s| u16::try_from(s).ok())
        {
            self.http.status = Some(s);
        }
        if let Some(Value::Object(h)) = v.get("headers") {
            for (k, val) in h {
                let text = Val::from_json(val.clone()).to_js_string();
                self.http
                    .headers
                    .retain(|(n, _)| !n.eq_ignore_ascii_case(k));
                self.http.headers.push((k.to_ascii_lowercase(), text));
            }
        }
    }

    fn emit(&mut self, a: &Map<String, Value>) -> Result<Value, DslError> {
        let event = a
            .get("event")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let valid = !event.is_empty()
            && event.len() <= 128
            && event
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || " ._-".contains(c));
        if !valid {
            return Err(DslError::new(
                "InvalidEventError",
                format!("invalid event type {event:?}"),
            ));
        }
        let payload = match a.get("payload") {
            None | Some(Value::Null) => json!({}),
            Some(p @ Value::Object(_)) => p.clone(),
            Some(other) => {
                // Not an error of the run: an `error` event is emitted instead (§3.4).
                let err = json!({"error": "InvalidEventError",
                    "message": format!("Event payload must be an object, received {}", json_type_name(other)),
                    "details": {"event": event, "payload": other}});
                let id = self.out.emit("error", &err, None, true)?;
                return Ok(json!({"id": id, "type": "error", "payload": err}));
            }
        };
        let persist = a
            .get("options")
            .and_then(|o| o.get("persist"))
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let target = a.get("target").filter(|t| t.is_object());
        let id = self.out.emit(&event, &payload, target, persist)?;
        Ok(json!({"id": id, "type": event, "payload": payload}))
    }

    fn wait(&mut self, a: &Map<String, Value>) -> Result<Option<Value>, DslError> {
        let Some(Value::Array(entries)) = a.get("oneOf") else {
            return Err(invalid("wait needs oneOf"));
        };
        let mut on = Vec::new();
        for e in entries {
            let Some(event_type) = e.get("event").and_then(Value::as_str) else {
                return Err(invalid("each wait.oneOf entry needs an event"));
            };
            let filters = e
                .get("filters")
                .and_then(Value::as_object)
                .map(|f| f.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default();
            on.push(WaitFor {
                event_type: event_type.to_owned(),
                filters,
            });
        }
        let secs = a
            .get("timeout")
            .map(|t| Val::from_json(t.clone()).to_number())
            .filter(|t| *t > 0.0)
            .unwrap_or(20.0);
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let ms = (secs * 1000.0).min(f64::from(u32::MAX)) as u32;
        self.out.wait(&on, ms)
    }

    fn fetch(&mut self, a: &Map<String, Value>) -> Result<Value, DslError> {
        let url = a
            .get("url")
            .and_then(Value::as_str)
            .filter(|u| !u.is_empty())
            .ok_or_else(|| invalid("fetch needs a url"))?;
        let mut url = url.to_owned();
        if let Some(Value::Object(q)) = a.get("query") {
            let mut pairs = Vec::new();
            for (k, v) in q {
                let values = match v {
                    Value::Array(items) => items.clone(),
                    other => vec![other.clone()],
                };
                for v in values {
                    pairs.push(format!(
                        "{}={}",
                        encode(k),
                        encode(&Val::from_json(v).to_js_string())
                    ));
                }
            }
            if !pairs.is_empty() {
                url.push(if url.contains('?') { '&' } else { '?' });
                url.push_str(&pairs.join("&"));
            }
        }
        let method = a
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or("GET")
            .to_ascii_uppercase();
        let mut headers: Vec<(String, String)> = a
            .get("headers")
            .and_then(Value::as_object)
            .map(|h| {
                h.iter()
                    .map(|(k, v)| (k.clone(), Val::from_json(v.clone()).to_js_string()))
                    .collect()
            })
            .unwrap_or_default();
        let body = match a.get("multipart") {
            Some(Value::Array(parts)) => {
                let boundary = format!(
                    "----refract{:016x}",
                    (self.out.random() * 2f64.powi(53)) as u64
                );
                headers.retain(|(k, _)| !k.eq_ignore_ascii_case("content-type"));
                headers.push((
                    "content-type".into(),
                    format!("multipart/form-data; boundary={boundary}"),
                ));
                Some(multipart_body(parts, &boundary)?)
            }
            None | Some(Value::Null) => json_or_form_body(a.get("body"), &mut headers),
            Some(_) => {
                return Err(invalid(
                    "fetch.multipart must be a list of {fieldname, value}",
                ));
            }
        };
        let body = body.filter(|_| method != "GET");
        let resp = self.out.fetch(FetchRequest {
            method,
            url,
            headers,
            body,
        })?;
        let content_type = resp
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            .map(|(_, v)| v.to_ascii_lowercase())
            .unwrap_or_default();
        let headers = pairs_object(
            resp.headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), Value::String(v.clone()))),
        );
        let stream = a.get("stream").and_then(Value::as_object);
        let stream_event = stream
            .and_then(|s| s.get("event"))
            .and_then(Value::as_str)
            .filter(|e| !e.is_empty());
        if content_type.contains("text/event-stream") || stream_event.is_some() {
            return self.streamed(&resp, headers, &content_type, stream);
        }
        let body = if content_type.contains("application/json") {
            if resp.body.is_empty() {
                json!("")
            } else {
                serde_json::from_slice(&resp.body).unwrap_or_else(|_| {
                    Value::String(String::from_utf8_lossy(&resp.body).into_owned())
                })
            }
        } else if !content_type.contains("text/")
            && (content_type.contains("application/") || content_type.contains("image/"))
        {
            // Bytes serialize as base64 (§1.2).
            Value::String(STANDARD.encode(&resp.body))
        } else {
            Value::String(String::from_utf8_lossy(&resp.body).into_owned())
        };
        if resp.status >= 400
            && a.get("emitErrors")
                .is_none_or(|e| Val::from_json(e.clone()).truthy())
        {
            let failed = json!({"request": a, "response": {"status": resp.status, "body": body, "headers": headers}});
            self.out.emit("runtime.fetch.failed", &failed, None, true)?;
        }
        Ok(match a.get("outputMode").and_then(Value::as_str) {
            Some("detailed_response") => {
                json!({"status": resp.status, "headers": headers, "body": body, "stream": false})
            }
            Some("data_url") => {
                let ct = if content_type.is_empty() {
                    "application/octet-stream".to_owned()
                } else {
                    content_type
                };
                Value::String(format!("data:{ct};base64,{}", STANDARD.encode(&resp.body)))
            }
            _ => body,
        })
    }

    /// A streamed response (§3.6), read whole by the host: SSE events (or lines) become items
    /// `{index, chunk, concatenated?, additionalPayload}`. With `stream.event` each item is
    /// emitted and the result has no body; otherwise `body` is the list of items, which
    /// `repeat` iterates like the live stream.
    fn streamed(
        &mut self,
        resp: &FetchResponse,
        headers: Map<String, Value>,
        content_type: &str,
        stream: Option<&Map<String, Value>>,
    ) -> Result<Value, DslError> {
        let text = String::from_utf8_lossy(&resp.body);
        let chunks = if content_type.contains("text/event-stream") {
            sse_chunks(&text)
        } else {
            line_chunks(&text)
        };
        let concat_path = stream
            .and_then(|s| s.get("concatenate"))
            .and_then(|c| c.get("path"))
            .and_then(Value::as_str)
            .and_then(|p| path::parse(p).ok());
        let extra = stream
            .and_then(|s| s.get("payload"))
            .cloned()
            .unwrap_or(Value::Null);
        let mut acc: Option<Value> = None;
        let mut items = Vec::with_capacity(chunks.len());
        for (index, chunk) in chunks.into_iter().enumerate() {
            let mut item = json!({"index": index, "chunk": chunk, "additionalPayload": extra});
            if let Some(segs) = &concat_path {
                for data in item["chunk"]["data"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                {
                    if let Some(v) = path::lookup(&Val::Json(data), segs).into_json() {
                        acc = Some(match (acc.take(), v) {
                            (None, v) => v,
                            (Some(Value::Array(mut a)), Value::Array(b)) => {
                                a.extend(b);
                                Value::Array(a)
                            }
                            (Some(Value::Array(mut a)), v) => {
                                a.push(v);
                                Value::Array(a)
                            }
                            (Some(prev), v) => Value::String(
                                Val::Json(prev).to_js_string() + &Val::Json(v).to_js_string(),
                            ),
                        });
                    }
                }
                item["concatenated"] = json!({"value": acc.clone().unwrap_or(Value::Null)});
            }
            items.push(item);
        }
        let Some(event) = stream
            .and_then(|s| s.get("event"))
            .and_then(Value::as_str)
            .filter(|e| !e.is_empty())
        else {
            return Ok(
                json!({"status": resp.status, "headers": headers, "body": items, "stream": true}),
            );
        };
        let target = stream
            .and_then(|s| s.get("target"))
            .filter(|t| t.is_object());
        let persist = stream
            .and_then(|s| s.get("options"))
            .and_then(|o| o.get("persist"))
            .and_then(Value::as_bool)
            .unwrap_or(true);
        // The host hands over the whole body at once, so a throttle interval keeps the first
        // and the last item only (the last is always emitted).
        let throttled = stream
            .and_then(|s| s.get("concatenate"))
            .and_then(|c| c.get("throttle"))
            .is_some_and(|t| Val::from_json(t.clone()).to_number() > 0.0);
        let last = items.len().saturating_sub(1);
        for (i, item) in items.iter().enumerate() {
            if throttled && i != 0 && i != last {
                continue;
            }
            self.out.emit(event, item, target, persist)?;
        }
        Ok(json!({"status": resp.status, "headers": headers, "stream": true}))
    }
}

/// SSE events of a body, one chunk per blank-line-delimited event (D11).
fn sse_chunks(text: &str) -> Vec<Value> {
    let normalized = text.replace("\r\n", "\n");
    let mut out = Vec::new();
    for block in normalized.split("\n\n") {
        let mut chunk = Map::new();
        let mut data = Vec::new();
        let mut comments = Vec::new();
        for line in block.lines() {
            if let Some(c) = line.strip_prefix(':') {
                comments.push(c.trim().to_owned());
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.trim();
            match field {
                "data" => data.push(parse_data(value)),
                "event" | "id" => {
                    chunk.insert(field.to_owned(), json!(value));
                }
                "retry" => {
                    chunk.insert(
                        "retry".into(),
                        value
                            .parse::<u64>()
                            .map_or_else(|_| json!(value), |n| json!(n)),
                    );
                }
                _ => {}
            }
        }
        if data.is_empty() && chunk.is_empty() && comments.is_empty() {
            continue;
        }
        if !comments.is_empty() {
            chunk.insert("comment".into(), json!(comments.join("\n")));
        }
        chunk.insert("data".into(), Value::Array(data));
        out.push(Value::Object(chunk));
    }
    out
}

/// A non-SSE streamed body: one chunk per non-empty line.
fn line_chunks(text: &str) -> Vec<Value> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| json!({"data": [parse_data(l)]}))
        .collect()
}

/// A `data:` value: JSON when it starts with `{` or `[` and parses, else the text.
fn parse_data(v: &str) -> Value {
    if (v.starts_with('{') || v.starts_with('['))
        && let Ok(j) = serde_json::from_str(v)
    {
        return j;
    }
    Value::String(v.to_owned())
}

/// `topic` and `userIds` of the user-topic instructions (§3.14).
fn topic_args(a: &Map<String, Value>, name: &str) -> Result<(String, Vec<String>), DslError> {
    let topic = match a.get("topic") {
        Some(Value::String(t)) if !t.is_empty() => t.clone(),
        _ => {
            return Err(DslError::new(
                "PrismeError",
                format!("{name} needs a topic (a string)"),
            ));
        }
    };
    let users = match a.get("userIds") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(ids)) => ids
            .iter()
            .map(|v| Val::from_json(v.clone()).to_js_string())
            .collect(),
        Some(other) => vec![Val::from_json(other.clone()).to_js_string()],
    };
    Ok((topic, users))
}

/// A truthy `fetch.body` (§3.6): objects and arrays as JSON, or as form pairs under an
/// urlencoded content type; other values as text. Without a content type, JSON is declared.
fn json_or_form_body(body: Option<&Value>, headers: &mut Vec<(String, String)>) -> Option<Vec<u8>> {
    let body = body.cloned().map(Val::from_json).filter(Val::truthy)?;
    let content_type = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.to_ascii_lowercase());
    let Some(content_type) = content_type else {
        headers.push(("content-type".into(), "application/json".into()));
        return Some(json_text(body));
    };
    Some(match body {
        Val::Json(Value::Object(fields))
            if content_type.contains("application/x-www-form-urlencoded") =>
        {
            fields
                .into_iter()
                .map(|(k, v)| {
                    format!(
                        "{}={}",
                        encode(&k),
                        encode(&Val::from_json(v).to_js_string())
                    )
                })
                .collect::<Vec<_>>()
                .join("&")
                .into_bytes()
        }
        other => json_text(other),
    })
}

fn json_text(v: Val) -> Vec<u8> {
    match v {
        Val::Json(v @ (Value::Object(_) | Value::Array(_))) => {
            serde_json::to_vec(&v).unwrap_or_default()
        }
        other => other.to_js_string().into_bytes(),
    }
}

/// A `multipart/form-data` body from `fetch.multipart` parts `{fieldname, value, filename?,
/// contentType?}` (§3.6): a base64-looking string is decoded (as Prisme.ai does, even `test`),
/// an array of numbers is bytes, anything else is its text.
fn multipart_body(parts: &[Value], boundary: &str) -> Result<Vec<u8>, DslError> {
    static BASE64: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r"^([0-9a-zA-Z+/]{4})*(([0-9a-zA-Z+/]{2}==)|([0-9a-zA-Z+/]{3}=))?$")
            .expect("a valid pattern")
    });
    // Quotes and line breaks cannot appear inside a header's quoted string.
    let quoted = |s: &str| {
        s.replace('"', "%22")
            .replace('\r', "%0D")
            .replace('\n', "%0A")
    };
    let mut out = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let field = |k: &str| {
            part.get(k)
                .map(|v| Val::from_json(v.clone()).to_js_string())
        };
        let Some(name) = part
            .get("fieldname")
            .filter(|v| !v.is_null())
            .and(field("fieldname"))
        else {
            return Err(invalid(format!("fetch.multipart[{i}] needs a fieldname")));
        };
        let bytes = match part.get("value") {
            Some(Value::String(s))
                if s != "true"
                    && s != "false"
                    && BASE64.is_match(&s[..s.floor_char_boundary(1024)]) =>
            {
                STANDARD
                    .decode(s)
                    .unwrap_or_else(|_| s.clone().into_bytes())
            }
            Some(Value::Array(items)) if items.iter().all(Value::is_u64) => items
                .iter()
                .map(|n| n.as_u64().map_or(0, |n| (n & 0xff) as u8))
                .collect(),
            Some(v) => Val::from_json(v.clone()).to_js_string().into_bytes(),
            None => Vec::new(),
        };
        out.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"",
                quoted(&name)
            )
            .as_bytes(),
        );
        if let Some(filename) = field("filename") {
            out.extend_from_slice(format!("; filename=\"{}\"", quoted(&filename)).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        if let Some(content_type) = field("contentType") {
            out.extend_from_slice(
                format!("Content-Type: {}\r\n", quoted(&content_type)).as_bytes(),
            );
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&bytes);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    Ok(out)
}

/// Percent-encoding of a query component.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SetMode {
    Replace,
    Merge,
    Push,
}

/// The table of §3.2 applied at `segs` inside `doc`.
fn apply_set(
    doc: &mut Value,
    segs: &[Seg],
    mode: SetMode,
    value: Option<Value>,
) -> Result<(), DslError> {
    let existed = !matches!(path::lookup_value(Some(doc), segs), Val::Undefined);
    let Some(value) = value else {
        // `undefined` replaces by removing.
        if mode == SetMode::Replace {
            return path::delete(doc, segs).map_err(invalid);
        }
        return Ok(());
    };
    let slot = path::slot(doc, segs).map_err(invalid)?;
    match mode {
        SetMode::Replace => *slot = value,
        SetMode::Merge => match (&mut *slot, value) {
            (Value::Array(a), Value::Array(v)) => a.extend(v),
            (Value::Array(a), v) => a.push(v),
            (Value::Object(o), Value::Object(v)) => o.extend(v),
            (Value::Null, Value::Object(v)) => *slot = Value::Object(v),
            (Value::Object(_), _) => {}
            (Value::Null, _) if existed => {}
            (_, v) => *slot = v,
        },
        SetMode::Push => match &mut *slot {
            Value::Array(a) => a.push(value),
            _ => *slot = Value::Array(vec![value]),
        },
    }
    Ok(())
}

#[cfg(test)]
mod tests;
