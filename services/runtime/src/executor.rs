//! The executor: runs one [`Execution`] in the host, whatever started it, after the checks that
//! may refuse it ([`Refusal`]: throttle, call depth, `authorizations.action`, `arguments`), and
//! reports it through [`Reports`]. Its [`call`] submodule is the `call` import: a call runs the
//! callee through the same path, one level deeper.

use std::str::FromStr;
use std::sync::{Arc, Weak};

use chrono::Utc;
use refract_core::model::{AutomationKind, ComponentStatus};
use refract_core::permissions::{Action, Principal, Subject};
use refract_host::{
    ComponentDigest, EgressPolicy, Host, HostError, HttpRequest, Limits, RunReport, RunRequest,
    Services, Trigger,
};
use refract_secrets::WorkspaceSecrets;
use refract_storage::{Digest, DocumentStore, FileStore};
use serde_json::{Value, json};
use tracing::Instrument;

use crate::arguments::ArgumentSchemas;
use crate::bus::BrokerBus;
use crate::contexts::ContextStore;
use crate::dsl;
use crate::error::RuntimeError;
use crate::index::TriggerIndex;
use crate::report::Reports;
use crate::retries::{Attempt, Retries};
use crate::run::{Execution, Refusal};
use crate::sandbox::Sandboxes;
use crate::secrets::Secrets;
use crate::throttle::{Throttle, ThrottledBus, Throttles};
use crate::usage::Usage;
use crate::workspace_config::WorkspaceConfig;

mod call;

/// Runs automations; one per instance.
pub(crate) struct Executor {
    this: Weak<Executor>,
    host: Arc<Host>,
    files: FileStore,
    /// Memberships and rules, for `authorizations.action`.
    store: Arc<dyn DocumentStore>,
    index: Arc<TriggerIndex>,
    bus: Arc<BrokerBus>,
    /// The events every run leaves (`runtime.automations.executed`, `error`).
    reports: Reports,
    contexts: Arc<ContextStore>,
    sandboxes: Sandboxes,
    /// The DSL interpreter component, compiled once per process on first use.
    interpreter: dsl::Interpreter,
    /// Compiled `arguments` schemas of the automations with `validateArguments`.
    arguments: ArgumentSchemas,
    /// Workspaces' `config.value`, the base of every run's `config`.
    configs: Arc<WorkspaceConfig>,
    /// Per-workspace execution and emit throttles.
    throttles: Arc<Throttles>,
    /// Workspaces' secrets: each run reads a snapshot and is redacted with it.
    secrets: Arc<Secrets>,
    /// Failed runs' next attempts and dead letters.
    retries: Arc<Retries>,
    /// Runs, run time, emits and fetches per workspace and day.
    usage: Usage,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor").finish_non_exhaustive()
    }
}

impl Executor {
    /// The executor of one instance, over its shared parts; `preview_bytes` of a run's input and
    /// output are kept in its report.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        host: Arc<Host>,
        files: FileStore,
        store: Arc<dyn DocumentStore>,
        index: Arc<TriggerIndex>,
        bus: Arc<BrokerBus>,
        contexts: Arc<ContextStore>,
        sandboxes: Sandboxes,
        configs: Arc<WorkspaceConfig>,
        throttles: Arc<Throttles>,
        secrets: Arc<Secrets>,
        retries: Arc<Retries>,
        usage: Usage,
        preview_bytes: usize,
    ) -> Arc<Self> {
        Arc::new_cyclic(|this| Executor {
            this: this.clone(),
            host,
            files,
            store,
            index,
            reports: Reports::new(bus.clone(), preview_bytes),
            bus,
            contexts,
            sandboxes,
            interpreter: dsl::Interpreter::default(),
            arguments: ArgumentSchemas::default(),
            configs,
            throttles,
            secrets,
            retries,
            usage,
        })
    }

    /// The workspaces' sandbox policies, live changes included.
    pub(crate) fn sandboxes(&self) -> &Sandboxes {
        &self.sandboxes
    }

    /// The workspaces' `config.value`.
    pub(crate) fn configs(&self) -> &WorkspaceConfig {
        &self.configs
    }

    /// The usage counters of this instance.
    pub(crate) fn usage(&self) -> &Usage {
        &self.usage
    }

    /// The per-workspace throttles.
    pub(crate) fn throttles(&self) -> &Throttles {
        &self.throttles
    }

    /// Failed runs' next attempts and dead letters.
    pub(crate) fn retries(&self) -> &Retries {
        &self.retries
    }

    /// The trigger index the executor runs from.
    pub(crate) fn index(&self) -> &TriggerIndex {
        &self.index
    }

    /// Forgets what is kept of `workspace`'s secrets (they changed).
    pub(crate) fn forget_secrets(&self, workspace: &str) {
        self.secrets.forget(workspace);
    }

    /// The events of runs, for triggers that announce an interaction or publish their own.
    pub(crate) fn reports(&self) -> &Reports {
        &self.reports
    }

    /// Runs `exec` and reports it. `Err` only when the run could not happen; a transient error
    /// (host busy, storage down) is not reported, so a redelivery can try again. A failed run
    /// started by an event or a schedule is retried as its automation's `retry` says.
    pub(crate) async fn execute(&self, exec: &Execution) -> Result<RunReport, RuntimeError> {
        self.attempt(exec, Attempt::First).await
    }

    /// Runs `exec` as `attempt` and reports it; a failure of a first attempt or a retry is kept
    /// for the next attempt or as a dead letter ([`crate::retries`]), one of a replay is not.
    pub(crate) async fn attempt(
        &self,
        exec: &Execution,
        attempt: Attempt,
    ) -> Result<RunReport, RuntimeError> {
        let result = self.execute_reported(exec, attempt.number()).await;
        if let Some(error) = crate::retries::failure(&result)
            && let Err(e) = self.retries.failed(exec, &attempt, error).await
        {
            tracing::warn!(workspace_id = %exec.context.workspace_id, automation = %exec.automation.slug,
                error = %e, "a failed run's retry could not be kept");
        }
        result
    }

    async fn execute_reported(
        &self,
        exec: &Execution,
        attempt: u32,
    ) -> Result<RunReport, RuntimeError> {
        let started_at = Utc::now();
        let wall = std::time::Instant::now();
        let span = tracing::info_span!("execute", workspace_id = %exec.context.workspace_id,
            automation = %exec.automation.slug, correlation_id = %exec.context.correlation_id,
            trigger = exec.info.kind.as_str());
        let c = &exec.context;
        // The run's snapshot of its workspace's secrets: what it may read, and what is
        // redacted from everything it leaves, even if they change while it runs.
        let secrets = self.secrets.of(c.workspace_id.as_str()).await;
        let redactor = secrets
            .as_ref()
            .map(|s| s.redactor().clone())
            .unwrap_or_default();
        let result = match secrets {
            Err(e) => Err(RuntimeError::from(e)),
            Ok(secrets) => match self
                .throttles
                .wait(&c.workspace_id, &c.run_id, Throttle::Executions)
                .await
            {
                Ok(()) => {
                    let guard =
                        self.bus
                            .enter(&c.run_id, exec.app.clone(), exec.credentials.clone());
                    let result = self.run(exec, secrets).instrument(span).await;
                    drop(guard);
                    result
                }
                Err(e) => Ok(Refusal::Throttled(e).into_report()),
            },
        };
        let mut result = result;
        if let Ok(report) = &mut result {
            crate::secrets::redact_failure(&mut report.outcome, &redactor);
        }
        let throttled = self.throttles.take_tally(&c.run_id);
        match &result {
            Ok(report) => {
                (self.reports)
                    .executed(exec, attempt, started_at, throttled, Ok(report), &redactor)
                    .await
            }
            Err(e) if !e.is_transient() => {
                (self.reports)
                    .executed(exec, attempt, started_at, throttled, Err(e), &redactor)
                    .await
            }
            Err(e) => {
                tracing::warn!(workspace_id = %exec.context.workspace_id, automation = %exec.automation.slug,
                error = %e, "run not started")
            }
        }
        crate::observe::record_run(exec, &result, wall.elapsed());
        if let Ok(report) = &result {
            self.usage.record(&exec.context.workspace_id, report);
        }
        result
    }

    async fn run(
        &self,
        exec: &Execution,
        secrets: Arc<WorkspaceSecrets>,
    ) -> Result<RunReport, RuntimeError> {
        let automation = &exec.automation;
        let not_ready = |reason: &str| RuntimeError::NotReady {
            slug: automation.slug.clone(),
            reason: reason.into(),
        };
        let sandbox = self.sandboxes.of(exec.context.workspace_id.as_str());
        let (policy, egress) = (&sandbox.policy, &sandbox.egress);
        if exec.context.depth > policy.max_call_depth {
            let refusal = Refusal::TooDeep {
                depth: exec.context.depth,
                limit: policy.max_call_depth,
            };
            return Ok(refusal.into_report());
        }
        if let Some(action) = automation.required_action()
            && !self.may_execute(exec, action).await?
        {
            let refusal = Refusal::Forbidden {
                slug: automation.slug.clone(),
                action: action.to_owned(),
            };
            return Ok(refusal.into_report());
        }
        if automation.validate_arguments {
            let failures = self.arguments.check(automation, &exec.payload);
            if !failures.is_empty() {
                let refusal = Refusal::InvalidArguments {
                    slug: automation.slug.clone(),
                    failures,
                };
                return Ok(refusal.into_report());
            }
        }
        if automation.kind == AutomationKind::Dsl {
            return self
                .run_dsl(
                    exec,
                    Arc::new(policy.limits_for(automation)),
                    egress.clone(),
                    secrets,
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
            config: self.run_config(exec, &secrets).await?.to_string(),
            limits: Arc::new(policy.limits_for(automation)),
            egress: egress.clone(),
            secrets,
            answer: exec.answer.clone(),
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
        secrets: Arc<WorkspaceSecrets>,
    ) -> Result<RunReport, RuntimeError> {
        let automation = &exec.automation;
        let compiled = self.index.program(exec.key(), automation);
        let program = match compiled.as_ref() {
            Ok(p) => p.clone(),
            Err(invalid) => return Ok(Refusal::InvalidProgram(invalid.clone()).into_report()),
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
        let workspace = match &exec.app {
            _ if !program.reads_workspace => None,
            // Inside an app instance, `$workspace` is the app's (§5.3): its identity.
            Some(app) => Some(Arc::new(
                json!({"slug": app.app_slug, "version": app.app_version}),
            )),
            None => Some(
                self.configs
                    .document(exec.context.workspace_id.as_str())
                    .await?,
            ),
        };
        let request = RunRequest {
            context: exec.context.clone(),
            trigger,
            config: dsl::invocation_config(
                &program.encoded,
                &self.run_config(exec, &secrets).await?,
                &exec.context,
                &exec.info,
                locals,
                workspace.as_deref(),
            ),
            limits,
            egress,
            secrets,
            answer: exec.answer.clone(),
        };
        Ok(self.host.run(&digest, request, self.services()?).await?)
    }

    /// The `config` a run sees (automation-dsl §5.2): the workspace's `config.value` overlaid
    /// by the automation's own `config`, with `{{secret.name}}` and `{{config.key}}` resolved
    /// (§5.8); inside an app instance, the automation's config (the instance's, merged in when
    /// the instance was loaded) alone, which cannot read the workspace's secrets.
    async fn run_config(
        &self,
        exec: &Execution,
        secrets: &WorkspaceSecrets,
    ) -> Result<Value, RuntimeError> {
        let own = exec.automation.config.clone().unwrap_or_else(|| json!({}));
        if exec.app.is_some() {
            return Ok(own);
        }
        let document = self
            .configs
            .document(exec.context.workspace_id.as_str())
            .await?;
        let merged = match (crate::workspace_config::config_value(&document), own) {
            (Value::Object(base), Value::Object(own)) => {
                let mut merged = base.clone();
                merged.extend(own);
                Value::Object(merged)
            }
            (_, own) => own,
        };
        Ok(crate::secrets::resolve_config(merged, secrets))
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
        let me = self.this.upgrade().ok_or(RuntimeError::ShuttingDown)?;
        let events = Arc::new(ThrottledBus {
            bus: self.bus.clone(),
            throttles: self.throttles.clone(),
            contexts: self.contexts.clone(),
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

    /// Loads a component's artifact into the host's cache ahead of its first run.
    pub(crate) async fn warm(&self, digest: &ComponentDigest) {
        if let Err(e) = self.host.warm(digest).await {
            tracing::debug!(%digest, error = %e, "component not warmed");
        }
    }
}
