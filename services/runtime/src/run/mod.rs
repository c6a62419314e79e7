//! The run vocabulary: what one run of an automation is ([`Execution`]), what started it
//! ([`TriggerInfo`], [`TriggerKind`]), who asked for it ([`Credentials`]), why it may be refused
//! before it starts ([`Refusal`]) and which runs are live ([`LiveRuns`]). Plain types: every
//! trigger (event consumer, scheduler, webhooks, calls) builds an [`Execution`] and the executor
//! runs it, so neither side needs the other's module.

use refract_dsl::SetupTrigger;
use std::sync::Arc;

use refract_core::model::Automation;
use refract_core::{CorrelationId, SessionId, UserId, WorkspaceId};
use refract_host::{AnswerSink, RunContext, Trigger};
use refract_http::Caller;
use serde_json::{Value, json};

use crate::apps::AppScope;

mod live;
mod refusal;

pub(crate) use live::{LiveGuard, LiveRuns};
pub(crate) use refusal::{Refusal, RefusalCode};

/// The kinds of trigger a run reports (`trigger.type` of `runtime.automations.executed`, the
/// `trigger` label of the run metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TriggerKind {
    /// An event of the run's workspace (or app instance) the automation listens to.
    Event,
    /// A webhook request to one of the automation's endpoints.
    Endpoint,
    /// A tick of one of the automation's cron schedules.
    Schedule,
    /// A call from another run, or a test run over HTTP.
    Automation,
}

impl TriggerKind {
    /// The name the events, the DSL's `run.trigger` and the metrics use.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TriggerKind::Event => "event",
            TriggerKind::Endpoint => "endpoint",
            TriggerKind::Schedule => "schedule",
            TriggerKind::Automation => "automation",
        }
    }
}

/// What started a run, as `runtime.automations.executed` reports it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TriggerInfo {
    /// What kind of trigger it was.
    pub(crate) kind: TriggerKind,
    /// The event type, endpoint name, cron expression or slug.
    pub(crate) value: String,
    /// The triggering event's id.
    pub(crate) id: Option<String>,
}

impl TriggerInfo {
    /// The trigger as every event and the DSL's `run.trigger` show it:
    /// `{type, value}`, plus `id` for an event.
    pub(crate) fn to_json(&self) -> Value {
        serde_json::to_value(self.to_setup()).unwrap_or_default()
    }

    /// The same trigger, typed, as the DSL interpreter's setup carries it.
    pub(crate) fn to_setup(&self) -> SetupTrigger {
        SetupTrigger {
            kind: self.kind.as_str().to_owned(),
            value: self.value.clone(),
            id: self.id.clone(),
        }
    }
}

/// One run to do: built by a trigger, handed to the executor.
#[derive(Debug, Clone)]
pub(crate) struct Execution {
    /// The automation to run, as the trigger index holds it.
    pub(crate) automation: Arc<Automation>,
    /// The trigger as the guest receives it.
    pub(crate) trigger: Trigger,
    /// The trigger as the run's events report it.
    pub(crate) info: TriggerInfo,
    /// The run's identity: workspace, correlation, user, session, depth.
    pub(crate) context: RunContext,
    /// The run's input as reported in `runtime.automations.executed` (`payload`).
    pub(crate) payload: Value,
    /// The app instance the automation belongs to (`None`: the workspace's own).
    pub(crate) app: Option<Arc<AppScope>>,
    /// What the HTTP caller presented besides its user, for `authorizations.action` checks
    /// (`None` for events and schedules; a call inherits its caller's).
    pub(crate) credentials: Option<Arc<Credentials>>,
    /// Where the run streams its answer: only the run a webhook answers with has one.
    pub(crate) answer: Option<AnswerSink>,
}

impl Execution {
    /// The index key of the automation's workspace or app instance.
    pub(crate) fn key(&self) -> &str {
        self.app
            .as_ref()
            .map_or(self.context.workspace_id.as_str(), |s| s.key.as_str())
    }
}

/// What an HTTP caller presented besides its user id (which the run's context carries).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Credentials {
    /// The workspace API key it sent, checked against the key's rules.
    pub(crate) api_key: Option<String>,
    /// Whether it is a platform superadmin (allowed everything).
    pub(crate) superadmin: bool,
    /// The identity provider's data of its user, for rules on `user.authData`.
    pub(crate) auth_data: Option<Value>,
}

impl Credentials {
    /// The caller's credentials; `None` when it presented nothing but (maybe) a user.
    pub(crate) fn of(caller: &Caller) -> Option<Arc<Self>> {
        let c = Credentials {
            api_key: caller.api_key.clone(),
            superadmin: caller.superadmin,
            auth_data: caller.auth_data.clone(),
        };
        (c != Credentials::default()).then(|| Arc::new(c))
    }
}

/// The context of a new root run (or of an event-triggered one at `depth`).
pub(crate) fn run_context(
    workspace: &WorkspaceId,
    slug: &str,
    correlation: CorrelationId,
    user: Option<UserId>,
    session: Option<SessionId>,
    depth: u32,
) -> RunContext {
    RunContext {
        run_id: uuid::Uuid::new_v4().simple().to_string(),
        workspace_id: workspace.clone(),
        automation_slug: slug.to_owned(),
        correlation_id: correlation,
        user_id: user,
        session_id: session,
        depth,
        socket_id: None,
    }
}

/// Whether a failed run is in fact a called DSL automation's `break: {scope: all}`
/// ([`refract_dsl::BREAK_ALL`]): a break that stops its callers, with its output in the
/// details, which reports and metrics count as a success. Only the interpreter, in a called
/// run, ends that way: the same code from a component, or at the root, is a plain error.
pub(crate) fn stops_callers(exec: &Execution, e: &refract_host::AutomationError) -> bool {
    e.code == refract_dsl::BREAK_ALL
        && exec.automation.kind == refract_core::model::AutomationKind::Dsl
        && matches!(exec.trigger, Trigger::Call(_))
        && exec.context.depth > 0
}

/// The run's output body as JSON (`{}` when empty or unreadable).
pub(crate) fn output_value(body: &str) -> Value {
    if body.trim().is_empty() {
        return json!({});
    }
    serde_json::from_str(body).unwrap_or_else(|_| json!({}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triggers_and_outputs_have_one_json_form() {
        let event = TriggerInfo {
            kind: TriggerKind::Event,
            value: "orders.created".into(),
            id: Some("1-0".into()),
        };
        assert_eq!(
            event.to_json(),
            json!({"type": "event", "value": "orders.created", "id": "1-0"})
        );
        let tick = TriggerInfo {
            kind: TriggerKind::Schedule,
            value: "* * * * * *".into(),
            id: None,
        };
        assert_eq!(
            tick.to_json(),
            json!({"type": "schedule", "value": "* * * * * *"})
        );
        assert_eq!(output_value(""), json!({}));
        assert_eq!(output_value("\"hi\""), json!("hi"));
    }
}
