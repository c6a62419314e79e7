//! The `call` import: which automation a call reaches ([`Executor::resolve_call`]) and the
//! callee's run, through [`Executor::execute`] like any other.

use std::sync::Arc;

use async_trait::async_trait;
use refract_core::model::Automation;
use refract_host::{AutomationCaller, CallFailure, RunContext, RunOutcome, Trigger};
use serde_json::Value;

use super::Executor;
use crate::apps::AppScope;
use crate::run::{Execution, TriggerInfo, TriggerKind, output_value, stops_callers};

impl Executor {
    /// The automation a call to `target` from a run of `caller` (an app instance, or the
    /// workspace itself) reaches, and its instance (`automation-dsl.md` §3.15, §8.3): `x` is
    /// the caller's own automation, `inst.x` automation `x` of the caller's direct instance
    /// `inst`, unless it is private. Anything else is not found.
    pub(crate) fn resolve_call(
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
        let caller = self.bus.live_runs().of_caller(&callee.run_id);
        let (automation, app) = self
            .resolve_call(callee.workspace_id.as_str(), caller, slug)
            .ok_or_else(|| CallFailure::NotFound(slug.to_owned()))?;
        let credentials = self.bus.live_runs().credentials_of_caller(&callee.run_id);
        let exec = Execution {
            app,
            credentials,
            automation,
            trigger: Trigger::Call(arguments.to_string()),
            info: TriggerInfo {
                kind: TriggerKind::Automation,
                value: slug.to_owned(),
                id: None,
            },
            context: callee,
            payload: arguments,
            answer: None,
        };
        let mut report = self
            .execute(&exec)
            .await
            .map_err(|e| CallFailure::Unavailable(e.to_string()))?;
        // Only a called DSL run may stop its callers (`BreakAll`): a component failing with
        // that code is failing, and its caller must not mistake it for a break.
        if let RunOutcome::Failed(e) = &mut report.outcome
            && e.code == refract_dsl::BREAK_ALL
            && !stops_callers(&exec, e)
        {
            e.code = "AutomationError".to_owned();
        }
        CallFailure::from_outcome(report.outcome).map(|out| output_value(&out.body))
    }
}
