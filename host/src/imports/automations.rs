//! `refract:automation/automations`: calling another automation, one level deeper.

use crate::bindings::automations::{CallError, Host};
use crate::bindings::types::AutomationError;
use crate::services::{CallFailure, RunContext};
use crate::store::{HostFuture, RunCtx, refused};

use super::parse_json;

impl Host for RunCtx {
    async fn call(
        &mut self,
        slug: String,
        arguments: String,
    ) -> wasmtime::Result<Result<String, CallError>> {
        let call = self.automation_call(slug, &arguments);
        Ok(self.io("call", call).await)
    }
}

impl RunCtx {
    /// Checks a call; the call, to be awaited now or later.
    pub(crate) fn automation_call(
        &mut self,
        slug: String,
        arguments: &str,
    ) -> HostFuture<Result<String, CallError>> {
        let max = self.limits.max_call_depth;
        let depth = self.info.depth.saturating_add(1);
        if depth > max {
            return refused(CallError::DepthExceeded(max));
        }
        let args = match parse_json("arguments", arguments) {
            Ok(v) if v.is_object() => v,
            Ok(_) => {
                return refused(CallError::InvalidArguments(
                    "arguments must be a JSON object".into(),
                ));
            }
            Err(m) => return refused(CallError::InvalidArguments(m)),
        };
        self.calls += 1;
        let callee = RunContext {
            run_id: format!("{}.c{}", self.info.run_id, self.calls),
            automation_slug: slug.clone(),
            depth,
            ..(*self.info).clone()
        };
        let caller = self.services.automations.clone();
        Box::pin(async move {
            match caller.call(callee, &slug, args).await {
                Ok(v) => Ok(serde_json::to_string(&v).unwrap_or_else(|_| "null".into())),
                Err(CallFailure::NotFound(s)) => Err(CallError::NotFound(s)),
                Err(CallFailure::InvalidArguments(m)) => Err(CallError::InvalidArguments(m)),
                Err(CallFailure::Failed {
                    code,
                    message,
                    details,
                }) => Err(CallError::Failed(AutomationError {
                    code,
                    message,
                    details,
                })),
                Err(CallFailure::Trapped(m)) => Err(CallError::Trapped(m)),
                Err(CallFailure::Unavailable(m)) => {
                    Err(CallError::Trapped(format!("not run: {m}")))
                }
            }
        })
    }
}
