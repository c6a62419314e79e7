//! The executor: runs one automation in the host, whatever started it, and reports the run
//! (`runtime.automations.executed`, plus `error` on failure). Also the `call` import: a call
//! runs the callee through the same path, one level deeper.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use refract_core::model::{Automation, AutomationKind, ComponentStatus};
use refract_core::permissions::{Action, Principal, Subject};
use refract_core::{ErrorLevel, Event, EventError, EventType, Source};
use refract_dsl::arguments::Arguments;
use refract_host::{
    AutomationCaller, AutomationError, CallFailure, ComponentDigest, EgressPolicy, Host, HostError,
    HttpRequest, Limits, RunContext, RunOutcome, RunReport, RunRequest, Services, Trigger,
};
use refract_http::Caller;
use refract_storage::{Digest, DocumentStore, FileStore};
use serde_json::{Map, Value, json};
use tracing::Instrument;

use crate::apps::AppScope;
use crate::bus::BrokerBus;
use crate::contexts::ContextStore;
use crate::dsl;
use crate::error::RuntimeError;
use crate::index::TriggerIndex;
use crate::sandbox::Sandboxes;
use crate::throttle::{Throttle, ThrottledBus, Throttles};
use crate::workspace_config::WorkspaceConfig;

/// What started a run, as `runtime.automations.executed` reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerInfo {
    /// `event`, `endpoint`, `schedule` or `automation`.
    pub kind: &'static str,
    /// The event type, endpoint name, cron expression or slug.
    pub value: String,
    /// The triggering event's id.
    pub id: Option<String>,
}

/// One run to do.
#[derive(Debug, Clone)]
pub struct Execution {
    pub automation: Arc<Automation>,
    pub trigger: Trigger,
    pub info: TriggerInfo,
    pub context: RunContext,
    /// The run's input as reported in `runtime.automations.executed` (`payload`).
    pub payload: Value,
    /// The app instance the automation belongs to (`None`: the workspace's own).
    pub app: Option<Arc<AppScope>>,
    /// What the HTTP caller presented besides its user, for `authorizations.action` checks
    /// (`None` for events and schedules; a call inherits its caller's).
    pub credentials: Option<Arc<Credentials>>,
}

/// What an HTTP caller presented besides its user id (which the run's context carries).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Credentials {
    pub api_key: Option<String>,
    pub superadmin: bool,
    pub auth_data: Option<Value>,
}

impl Credentials {
    /// The caller's credentials; `None` when it presented nothing but (maybe) a user.
    pub fn of(caller: &Caller) -> Option<Arc<Self>> {
        let c = Credentials {
            api_key: caller.api_key.clone(),
            superadmin: caller.superadmin,
            auth_data: caller.auth_data.clone(),
        };
        (c != Credentials::default()).then(|| Arc::new(c))
    }
}

impl Execution {
    /// The index key of the automation's workspace or app instance.
    pub fn key(&self) -> &str {
        self.app
            .as_ref()
            .map_or(self.context.workspace_id.as_str(), |s| s.key.as_str())
    }
}

/// Runs automations; one per instance.
pub struct Executor {
    this: Weak<Executor>,
    host: Arc<Host>,
    files: FileStore,
    /// Memberships and rules, for `authorizations.action`.
    store: Arc<dyn DocumentStore>,
    index: Arc<TriggerIndex>,
    bus: Arc<BrokerBus>,
    contexts: Arc<ContextStore>,
    sandboxes: Sandboxes,
    preview_bytes: usize,
    /// The DSL interpreter component, compiled once per process on first use.
    interpreter: dsl::Interpreter,
    /// Compiled `arguments` schemas of the automations with `validateArguments`.
    arguments: ArgumentSchemas,
    /// Workspaces' `config.value`, the base of every run's `config`.
    configs: Arc<WorkspaceConfig>,
    /// Per-workspace execution and emit throttles.
    throttles: Arc<Throttles>,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor").finish_non_exhaustive()
    }
}

/// The run's output body as JSON (`{}` when empty or unreadable).
pub fn output_value(body: &str) -> Value {
    if body.trim().is_empty() {
        return json!({});
    }
    serde_json::from_str(body).unwrap_or_else(|_| json!({}))
}

impl Executor {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        host: Arc<Host>,
        files: FileStore,
        store: Arc<dyn DocumentStore>,
        index: Arc<TriggerIndex>,
        bus: Arc<BrokerBus>,
        contexts: Arc<ContextStore>,
        sandboxes: Sandboxes,
        configs: Arc<WorkspaceConfig>,
        throttles: Arc<Throttles>,
        preview_bytes: usize,
    ) -> Arc<Self> {
        Arc::new_cyclic(|this| Executor {
            this: this.clone(),
            host,
            files,
            store,
            index,
            bus,
            contexts,
            sandboxes,
            preview_bytes,
            interpreter: dsl::Interpreter::default(),
            arguments: ArgumentSchemas::default(),
            configs,
            throttles,
        })
    }

    pub fn index(&self) -> &Arc<TriggerIndex> {
        &self.index
    }

    /// Runs `exec` and reports it. `Err` only when the run could not happen; a transient error
    /// (host busy, storage down) is not reported, so a redelivery can try again.
    pub async fn execute(&self, exec: Execution) -> Result<RunReport, RuntimeError> {
        let started_at = Utc::now();
        let wall = std::time::Instant::now();
        let span = tracing::info_span!("execute", workspace_id = %exec.context.workspace_id,
            automation = %exec.automation.slug, correlation_id = %exec.context.correlation_id,
            trigger = exec.info.kind);
        let c = &exec.context;
        let result = match self
            .throttles
            .wait(&c.workspace_id, &c.run_id, Throttle::Executions)
            .await
        {
            Ok(()) => {
                let guard = self
                    .bus
                    .enter(&c.run_id, exec.app.clone(), exec.credentials.clone());
                let result = self.run(&exec).instrument(span).await;
                drop(guard);
                result
            }
            Err(e) => Ok(refused(
                "ThrottledError",
                e.to_string(),
                json!({"throttle": e.kind, "perSecond": e.per_second, "burst": e.burst}),
            )),
        };
        let throttled = self.throttles.take_tally(&c.run_id);
        match &result {
            Ok(report) => self.report(&exec, started_at, throttled, Ok(report)).await,
            Err(e) if !e.is_transient() => self.report(&exec, started_at, throttled, Err(e)).await,
            Err(e) => {
                tracing::warn!(workspace_id = %exec.context.workspace_id, automation = %exec.automation.slug,
                error = %e, "run not started")
            }
        }
        crate::observe::record_run(&exec, &result, wall.elapsed());
        result
    }

    async fn run(&self, exec: &Execution) -> Result<RunReport, RuntimeError> {
        let automation = &exec.automation;
        let not_ready = |reason: &str| RuntimeError::NotReady {
            slug: automation.slug.clone(),
            reason: reason.into(),
        };
        let (policy, egress) = self.sandboxes.of(exec.context.workspace_id.as_str());
        if exec.context.depth > policy.max_call_depth {
            let limit = policy.max_call_depth;
            let message = format!(
                "call depth {} is over the limit of {limit}",
                exec.context.depth
            );
            return Ok(refused(
                "TooManyCallError",
                message,
                json!({"limit": limit}),
            ));
        }
        if let Some(action) = automation.required_action()
            && !self.may_execute(exec, action).await?
        {
            let message = format!(
                "running {} needs the permission to execute {action:?}",
                automation.slug
            );
            return Ok(refused(
                "ForbiddenError",
                message,
                json!({"action": action}),
            ));
        }
        if automation.validate_arguments {
            let failures = self.arguments.check(automation, &exec.payload);
            if !failures.is_empty() {
                let message = format!(
                    "the input of {} does not match its arguments",
                    automation.slug
                );
                return Ok(refused(
                    "InvalidArgumentsError",
                    message,
                    Value::Array(failures),
                ));
            }
        }
        if automation.kind == AutomationKind::Dsl {
            return self
                .run_dsl(
                    exec,
                    Arc::new(policy.limits_for(automation)),
                    egress.clone(),
                )
                .await;
        }
        let component = automation
            .component
            .as_ref()
            .ok_or_else(|| not_ready("no component uploaded"))?;
        if component.status != ComponentStatus::Ready {
            return Err(not_ready("no component uploaded"));
        }
        let digest = component
            .digest
            .as_deref()
            .and_then(ComponentDigest::parse)
            .ok_or_else(|| not_ready("the component digest is missing or malformed"))?;
        let request = RunRequest {
            context: exec.context.clone(),
            trigger: exec.trigger.clone(),
            config: self.run_config(exec).await?.to_string(),
            limits: Arc::new(policy.limits_for(automation)),
            egress: egress.clone(),
        };
        let services = self.services()?;
        match self
            .host
            .run(&digest, request.clone(), services.clone())
            .await
        {
            Err(HostError::NotCompiled { .. }) => {
                self.compile_from_blob(&digest, &automation.slug).await?;
                Ok(self.host.run(&digest, request, services).await?)
            }
            other => Ok(other?),
        }
    }

    /// Runs a DSL automation: the interpreter component with the automation's compiled program
    /// (compiled when the index learnt of it). A stored document that does not compile fails
    /// the run with its validation error.
    async fn run_dsl(
        &self,
        exec: &Execution,
        limits: Arc<Limits>,
        egress: Arc<EgressPolicy>,
    ) -> Result<RunReport, RuntimeError> {
        let automation = &exec.automation;
        let compiled = self.index.program(exec.key(), automation);
        let program = match compiled.as_ref() {
            Ok(p) => p.clone(),
            Err(invalid) => {
                return Ok(refused(
                    &invalid.rule,
                    invalid.message.clone(),
                    json!({"path": invalid.path}),
                ));
            }
        };
        let digest = self.interpreter.digest(&self.host).await?;
        // A webhook run gets its initial locals as the runtime decoded the request, not the
        // request a second time raw.
        let (trigger, locals) = match &exec.trigger {
            Trigger::Http(request) => {
                let bare = HttpRequest {
                    method: request.method.clone(),
                    path: request.path.clone(),
                    query: Vec::new(),
                    headers: Vec::new(),
                    body: Vec::new(),
                };
                (Trigger::Http(bare), Some(&exec.payload))
            }
            other => (other.clone(), None),
        };
        let request = RunRequest {
            context: exec.context.clone(),
            trigger,
            config: dsl::invocation_config(
                &program,
                &self.run_config(exec).await?,
                &exec.context,
                &exec.info,
                locals,
            ),
            limits,
            egress,
        };
        Ok(self.host.run(&digest, request, self.services()?).await?)
    }

    /// The `config` a run sees (automation-dsl §5.2): the workspace's `config.value` overlaid
    /// by the automation's own `config`; inside an app instance, the automation's config (the
    /// instance's, merged in when the instance was loaded) alone.
    async fn run_config(&self, exec: &Execution) -> Result<Value, RuntimeError> {
        let own = exec.automation.config.clone().unwrap_or_else(|| json!({}));
        if exec.app.is_some() {
            return Ok(own);
        }
        let shared = self
            .configs
            .value(exec.context.workspace_id.as_str())
            .await?;
        Ok(match (shared.as_ref(), own) {
            (Value::Object(base), Value::Object(own)) => {
                let mut merged = base.clone();
                merged.extend(own);
                Value::Object(merged)
            }
            (_, own) => own,
        })
    }

    /// Whether the run's principal (its user, plus what an HTTP caller presented) may execute
    /// an automation protected by `action` (`spec/http-api.md` §9.1).
    async fn may_execute(&self, exec: &Execution, action: &str) -> Result<bool, RuntimeError> {
        let credentials = exec.credentials.as_deref();
        let who = Principal {
            user_id: exec.context.user_id.as_ref().map(|u| u.as_str()),
            api_key: credentials.and_then(|c| c.api_key.as_deref()),
            superadmin: credentials.is_some_and(|c| c.superadmin),
            auth_data: credentials.and_then(|c| c.auth_data.as_ref()),
        };
        let access = refract_storage::access_of(
            self.store.as_ref(),
            exec.context.workspace_id.as_str(),
            &who,
        )
        .await?;
        let resource = json!({"slug": exec.automation.slug, "authorizations": {"action": action}});
        Ok(access.allows(Action::Execute, Subject::Automations, &resource))
    }

    fn services(&self) -> Result<Services, RuntimeError> {
        let me = self
            .this
            .upgrade()
            .ok_or_else(|| RuntimeError::Config("the executor is shutting down".into()))?;
        let events = Arc::new(ThrottledBus {
            bus: self.bus.clone(),
            throttles: self.throttles.clone(),
        });
        Ok(Services::new(events, self.contexts.clone(), me)
            .with_coordination(self.contexts.clone())
            .with_identities(self.contexts.clone())
            .with_config(self.configs.clone()))
    }

    /// No artifact for this engine (uploaded before an engine upgrade, or by a workspaces
    /// service without the artifact store): compile once from the stored bytes, which stores
    /// the artifact for every instance.
    async fn compile_from_blob(
        &self,
        digest: &ComponentDigest,
        slug: &str,
    ) -> Result<(), RuntimeError> {
        let not_ready = || RuntimeError::NotReady {
            slug: slug.to_owned(),
            reason: "the component bytes are missing".into(),
        };
        let blob = Digest::from_str(digest.hex()).map_err(|_| not_ready())?;
        let bytes = self.files.get_blob(&blob).await?.ok_or_else(not_ready)?;
        tracing::warn!(%digest, "no precompiled artifact: compiling on the run path");
        self.host.upload(&bytes).await?;
        Ok(())
    }

    async fn report(
        &self,
        exec: &Execution,
        started_at: DateTime<Utc>,
        throttled: Duration,
        result: Result<&RunReport, &RuntimeError>,
    ) {
        let (output, error, duration) = match result {
            Ok(report) => {
                let duration = report.elapsed.as_millis();
                match &report.outcome {
                    RunOutcome::Ok(out) => (Some(output_value(&out.body)), None, duration),
                    RunOutcome::Failed(e) => (None, Some(guest_error(e)), duration),
                    RunOutcome::Trapped(t) => (
                        None,
                        Some((
                            "ComponentTrap".to_owned(),
                            "the component was stopped".to_owned(),
                            json!({"reason": t.reason.as_str(), "message": t.message}),
                        )),
                        duration,
                    ),
                }
            }
            Err(e) => (None, Some(runtime_error(e)), 0),
        };
        // A guest's error details are its own JSON: cut like the output so the events fit.
        let error = error
            .map(|(code, message, details)| (code, message, preview(&details, self.preview_bytes)));
        let mut payload = Map::new();
        payload.insert("slug".into(), json!(exec.automation.slug));
        payload.insert("kind".into(), json!(exec.automation.kind));
        let mut trigger = json!({"type": exec.info.kind, "value": exec.info.value});
        if let Some(id) = &exec.info.id {
            trigger["id"] = json!(id);
        }
        payload.insert("trigger".into(), trigger);
        payload.insert(
            "status".into(),
            json!(if error.is_none() { "success" } else { "error" }),
        );
        payload.insert("payload".into(), preview(&exec.payload, self.preview_bytes));
        payload.insert(
            "output".into(),
            output
                .as_ref()
                .map_or(Value::Null, |o| preview(o, self.preview_bytes)),
        );
        payload.insert("duration".into(), json!(duration));
        payload.insert("throttled".into(), json!(throttled.as_millis()));
        payload.insert(
            "startedAt".into(),
            json!(started_at.to_rfc3339_opts(SecondsFormat::Millis, true)),
        );
        if let Some((code, message, details)) = &error {
            payload.insert(
                "error".into(),
                json!({"error": code, "message": message, "details": details}),
            );
        }
        self.publish("runtime.automations.executed", exec, payload, None)
            .await;
        if let Some((code, message, details)) = error {
            let mut details = details;
            if let Value::Object(map) = &mut details {
                map.insert("automationSlug".into(), json!(exec.automation.slug));
            } else {
                details = json!({"automationSlug": exec.automation.slug, "details": details});
            }
            let mut payload = Map::new();
            payload.insert("error".into(), json!(code));
            payload.insert("message".into(), json!(message));
            payload.insert("details".into(), details.clone());
            let envelope = EventError {
                error: code,
                message,
                details: Some(details),
                level: ErrorLevel::Error,
            };
            self.publish("error", exec, payload, Some(envelope)).await;
        }
    }

    /// Publishes `runtime.interactions.triggered` for a trigger occurrence (webhook request,
    /// schedule tick, test run), once, naming the first automation it starts.
    pub async fn announce(&self, exec: &Execution, test: bool) {
        let mut payload = Map::new();
        payload.insert("workspaceId".into(), json!(exec.context.workspace_id));
        payload.insert("automation".into(), json!(exec.automation.slug));
        let mut trigger = json!({"type": exec.info.kind, "value": exec.info.value});
        if let Some(id) = &exec.info.id {
            trigger["id"] = json!(id);
        }
        payload.insert("trigger".into(), trigger);
        if test {
            payload.insert("test".into(), json!(true));
        }
        payload.insert(
            "startedAt".into(),
            json!(Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)),
        );
        self.publish("runtime.interactions.triggered", exec, payload, None)
            .await;
    }

    /// Publishes an event of the runtime (stamped with this instance); a failure is logged.
    pub async fn publish_event(&self, event: Event) {
        let ty = event.event_type.clone();
        if let Err(e) = self.bus.publish(event).await {
            tracing::warn!(event_type = %ty, error = %e, "could not publish a runtime event");
        }
    }

    /// Loads a component's artifact into the host's cache ahead of its first run.
    pub async fn warm(&self, digest: &ComponentDigest) {
        if let Err(e) = self.host.warm(digest).await {
            tracing::debug!(%digest, error = %e, "component not warmed");
        }
    }

    async fn publish(
        &self,
        ty: &str,
        exec: &Execution,
        payload: Map<String, Value>,
        error: Option<EventError>,
    ) {
        let Ok(event_type) = EventType::new(ty) else {
            return;
        };
        let c = &exec.context;
        let mut event = Event::new(event_type, Some(c.workspace_id.clone()), payload);
        event.source = Source {
            workspace_id: Some(c.workspace_id.clone()),
            user_id: c.user_id.clone(),
            session_id: c.session_id.clone(),
            correlation_id: c.correlation_id.clone(),
            automation_slug: Some(exec.automation.slug.clone()),
            automation_depth: Some(c.depth),
            app_slug: exec.app.as_ref().map(|s| s.app_slug.clone()),
            app_instance_full_slug: exec.app.as_ref().map(|s| s.full_slug.clone()),
            app_instance_depth: exec.app.as_ref().map(|s| s.depth),
            ..Source::default()
        };
        event.error = error;
        if let Err(e) = self.bus.publish(event).await {
            tracing::warn!(workspace_id = %c.workspace_id, automation = %exec.automation.slug, event_type = ty,
                error = %e, "could not publish a run event");
        }
    }
}

/// `(code, message, details)` of a guest's typed error.
/// A run refused before it starts (the automation's code never ran).
fn refused(code: &str, message: String, details: Value) -> RunReport {
    RunReport {
        outcome: RunOutcome::Failed(AutomationError {
            code: code.to_owned(),
            message,
            details: Some(details.to_string()),
        }),
        emits: 0,
        fetches: 0,
        elapsed: Duration::ZERO,
        logs_dropped: 0,
        timings: Default::default(),
    }
}

/// Most distinct `arguments` schemas kept compiled; past it the cache starts over.
const MAX_ARGUMENT_SCHEMAS: usize = 1_024;

/// The compiled `arguments` of automations with `validateArguments`, by the schema's text, so
/// a run never recompiles a schema it has seen (and an edited one is simply a new entry).
#[derive(Debug, Default)]
struct ArgumentSchemas {
    compiled: Mutex<HashMap<String, Arc<Result<Arguments, String>>>>,
}

impl ArgumentSchemas {
    /// The failures of `input` against `automation`'s arguments, as `{instancePath, message}`;
    /// a schema that does not compile (saved before a stricter check) fails every input.
    fn check(&self, automation: &Automation, input: &Value) -> Vec<Value> {
        let empty = Map::new();
        let arguments = automation
            .arguments
            .as_ref()
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let key = serde_json::to_string(arguments).unwrap_or_default();
        let schema = {
            let mut map = self.compiled.lock().unwrap_or_else(PoisonError::into_inner);
            if map.len() >= MAX_ARGUMENT_SCHEMAS && !map.contains_key(&key) {
                map.clear();
            }
            map.entry(key)
                .or_insert_with(|| Arc::new(Arguments::compile(arguments)))
                .clone()
        };
        match schema.as_ref() {
            Ok(schema) => schema
                .check(input)
                .into_iter()
                .map(|f| json!({"instancePath": f.path, "message": f.message}))
                .collect(),
            Err(e) => vec![
                json!({"instancePath": "", "message": format!("the arguments schema is invalid: {e}")}),
            ],
        }
    }
}

fn guest_error(e: &AutomationError) -> (String, String, Value) {
    let details = e
        .details
        .as_deref()
        .map(|d| serde_json::from_str(d).unwrap_or_else(|_| json!(d)))
        .unwrap_or(json!({}));
    (e.code.clone(), e.message.clone(), details)
}

/// `(code, message, details)` of a run that could not start.
fn runtime_error(e: &RuntimeError) -> (String, String, Value) {
    match e {
        RuntimeError::NotReady { reason, .. } => {
            ("ComponentNotReady".into(), reason.clone(), json!({}))
        }
        RuntimeError::NotFound(slug) => (
            "ObjectNotFoundError".into(),
            format!("no automation {slug}"),
            json!({}),
        ),
        _ => (
            "Internal".into(),
            "the run could not start".into(),
            json!({}),
        ),
    }
}

/// `value` if its JSON is at most `limit` bytes, else its JSON text cut to `limit` bytes.
pub fn preview(value: &Value, limit: usize) -> Value {
    let text = value.to_string();
    if text.len() <= limit {
        return value.clone();
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Value::String(format!("{}…", &text[..end]))
}

impl Executor {
    /// The automation a call to `target` from a run of `caller` (an app instance, or the
    /// workspace itself) reaches, and its instance (`automation-dsl.md` §3.15, §8.3): `x` is
    /// the caller's own automation, `inst.x` automation `x` of the caller's direct instance
    /// `inst`, unless it is private. Anything else is not found.
    pub fn resolve_call(
        &self,
        workspace: &str,
        caller: Option<Arc<AppScope>>,
        target: &str,
    ) -> Option<(Arc<Automation>, Option<Arc<AppScope>>)> {
        match refract_core::apps::split_call(target) {
            (None, slug) => {
                let key = caller.as_ref().map_or(workspace, |s| s.key.as_str());
                Some((self.index.get(key, slug)?, caller))
            }
            (Some(instance), slug) => {
                let full = refract_core::apps::full_slug(
                    caller.as_ref().map(|s| s.full_slug.as_str()),
                    instance,
                );
                let scope = self.index.scope(workspace, &full)?;
                let automation = self.index.get(&scope.key, slug).filter(|a| !a.private)?;
                Some((automation, Some(scope)))
            }
        }
    }
}

#[async_trait]
impl AutomationCaller for Executor {
    async fn call(
        &self,
        callee: RunContext,
        slug: &str,
        arguments: Value,
    ) -> Result<Value, CallFailure> {
        let caller = self.bus.scopes().of_caller(&callee.run_id);
        let (automation, app) = self
            .resolve_call(callee.workspace_id.as_str(), caller, slug)
            .ok_or_else(|| CallFailure::NotFound(slug.to_owned()))?;
        let credentials = self.bus.scopes().credentials_of_caller(&callee.run_id);
        let exec = Execution {
            app,
            credentials,
            automation,
            trigger: Trigger::Call(arguments.to_string()),
            info: TriggerInfo {
                kind: "automation",
                value: slug.to_owned(),
                id: None,
            },
            context: callee,
            payload: arguments,
        };
        let report = self
            .execute(exec)
            .await
            .map_err(|e| CallFailure::Unavailable(e.to_string()))?;
        match report.outcome {
            RunOutcome::Ok(out) => Ok(output_value(&out.body)),
            RunOutcome::Failed(e) => Err(CallFailure::Failed {
                code: e.code,
                message: e.message,
                details: e.details,
            }),
            RunOutcome::Trapped(t) => Err(CallFailure::Trapped(format!(
                "{}: {}",
                t.reason.as_str(),
                t.message
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previews_cut_large_values_on_char_boundaries() {
        assert_eq!(preview(&json!({"a": 1}), 100), json!({"a": 1}));
        let cut = preview(&json!("ééééé"), 4);
        assert!(cut.as_str().unwrap().ends_with('…'));
        assert_eq!(output_value(""), json!({}));
        assert_eq!(output_value("\"hi\""), json!("hi"));
    }
}
