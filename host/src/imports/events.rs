//! `refract:automation/events`: emit and wait.

use std::time::Duration;

use chrono::Utc;
use refract_core::{Event, EventLimits, EventOptions, EventType, Source, Target, ValidationError};
use serde_json::Value;

use super::parse_json;
use crate::bindings::events::{Condition, EmitError, Host, WaitError};
use crate::bindings::types;
use crate::services::{ServiceError, WaitCondition};
use crate::store::{Cap, HostFuture, RunCtx, refused};

/// Time kept for the guest to answer after a `wait` or a pause capped by the run's wall-clock
/// budget.
const WAIT_MARGIN: Duration = Duration::from_secs(1);

impl Host for RunCtx {
    async fn emit(
        &mut self,
        ty: String,
        payload: String,
        target: Option<String>,
        persist: bool,
    ) -> wasmtime::Result<Result<String, EmitError>> {
        let max = self.limits.max_emits;
        if self.emits >= max {
            self.refuse(Cap::Emits, "emit", max)?;
            return Ok(Err(EmitError::LimitExceeded(max)));
        }
        let depth = self.info.depth.saturating_add(1);
        if depth > self.limits.max_call_depth {
            return Ok(Err(EmitError::DepthExceeded(self.limits.max_call_depth)));
        }
        let mut event = match self.build_event(&ty, &payload, target.as_deref(), persist, depth) {
            Ok(e) => e,
            Err(e) => return Ok(Err(e)),
        };
        // What a run emits is recorded (history, deliveries): its secrets never are.
        self.secrets.redactor().redact_members(&mut event.payload);
        match event.seal(&EventLimits {
            max_size: self.limits.max_event_bytes,
        }) {
            Ok(_) => {}
            Err(ValidationError::TooLarge { size, .. }) => {
                return Ok(Err(EmitError::TooLarge(
                    u32::try_from(size).unwrap_or(u32::MAX),
                )));
            }
            Err(e) => return Ok(Err(EmitError::Invalid(e.to_string()))),
        }
        self.emits += 1;
        let events = self.services.events.clone();
        let info = self.info.clone();
        let result = self.io("emit", events.emit(&info, event)).await;
        Ok(match result {
            Ok(id) => Ok(id.as_str().to_owned()),
            Err(ServiceError::Invalid(m)) => Err(EmitError::Invalid(m)),
            Err(ServiceError::TooLarge(n)) => Err(EmitError::TooLarge(n)),
            Err(ServiceError::Unavailable(m)) => Err(EmitError::Unavailable(m)),
        })
    }

    async fn wait(
        &mut self,
        conditions: Vec<Condition>,
        timeout_ms: u32,
    ) -> wasmtime::Result<Result<Option<types::Event>, WaitError>> {
        let call = self.wait_call(conditions, timeout_ms)?;
        Ok(self.io("wait", call).await)
    }
}

impl RunCtx {
    /// What is left of the run's wall-clock budget, less a margin (a tenth of it, at most
    /// 1 s) for the guest to answer after a wait or a pause instead of being cut off.
    pub(crate) fn time_left(&self) -> Duration {
        let left = self.limits.wall_time.saturating_sub(self.started.elapsed());
        left.saturating_sub((self.limits.wall_time / 10).min(WAIT_MARGIN))
    }

    /// Checks and counts a wait (a trap only for a guest that keeps waiting after the run's
    /// cap refused it); the wait, to be awaited now or later (the conditions are registered
    /// when it is first polled).
    pub(crate) fn wait_call(
        &mut self,
        conditions: Vec<Condition>,
        timeout_ms: u32,
    ) -> wasmtime::Result<HostFuture<Result<Option<types::Event>, WaitError>>> {
        let max = self.limits.max_waits;
        if self.waits >= max {
            self.refuse(Cap::Waits, "wait", max)?;
            return Ok(refused(WaitError::Invalid(format!(
                "the run reached its limit of {max} waits"
            ))));
        }
        self.waits += 1;
        Ok(self.check_wait(conditions, timeout_ms))
    }

    fn check_wait(
        &mut self,
        conditions: Vec<Condition>,
        timeout_ms: u32,
    ) -> HostFuture<Result<Option<types::Event>, WaitError>> {
        let invalid = |m: String| refused(WaitError::Invalid(m));
        if conditions.is_empty() {
            return invalid("no condition".into());
        }
        let mut parsed = Vec::with_capacity(conditions.len());
        for c in conditions {
            let event_type = match EventType::new(c.type_) {
                Ok(t) => t,
                Err(e) => return invalid(e.to_string()),
            };
            let mut filters = Vec::with_capacity(c.filters.len());
            for (path, value) in c.filters {
                if path.is_empty() || path.split('.').any(str::is_empty) {
                    return invalid(format!("malformed filter path {path:?}"));
                }
                match parse_json("filter value", &value) {
                    Ok(v) => filters.push((path, v)),
                    Err(m) => return invalid(m),
                }
            }
            parsed.push(WaitCondition {
                event_type,
                filters,
            });
        }
        // Capped by what is left of the run's wall-clock budget, less a margin, so the guest
        // gets `none` and can still answer instead of being cut off by the run's timeout.
        let timeout = Duration::from_millis(u64::from(timeout_ms)).min(self.time_left());
        let events = self.services.events.clone();
        let info = self.info.clone();
        Box::pin(async move {
            match events.wait(&info, &parsed, timeout).await {
                Ok(None) => Ok(None),
                Ok(Some(event)) => Ok(Some(to_wit_event(&event))),
                Err(ServiceError::Invalid(m)) => Err(WaitError::Invalid(m)),
                Err(ServiceError::TooLarge(n)) => {
                    Err(WaitError::Invalid(format!("too large: {n} bytes")))
                }
                Err(ServiceError::Unavailable(m)) => Err(WaitError::Unavailable(m)),
            }
        })
    }

    pub(super) fn build_event(
        &self,
        ty: &str,
        payload: &str,
        target: Option<&str>,
        persist: bool,
        depth: u32,
    ) -> Result<Event, EmitError> {
        let event_type = EventType::new(ty).map_err(|e| EmitError::Invalid(e.to_string()))?;
        let payload = match parse_json("payload", payload).map_err(EmitError::Invalid)? {
            Value::Object(map) => map,
            _ => return Err(EmitError::Invalid("payload: must be a JSON object".into())),
        };
        let target = match target {
            None => None,
            Some(t) => Some(
                serde_json::from_str::<Target>(t)
                    .map_err(|e| EmitError::Invalid(format!("target: {e}")))?,
            ),
        };
        let info = &self.info;
        Ok(Event {
            id: None,
            event_type,
            source: Source {
                workspace_id: Some(info.workspace_id.clone()),
                user_id: info.user_id.clone(),
                session_id: info.session_id.clone(),
                correlation_id: info.correlation_id.clone(),
                automation_slug: Some(info.automation_slug.clone()),
                automation_depth: Some(depth),
                app_slug: None,
                app_instance_full_slug: None,
                app_instance_depth: None,
                socket_id: info.socket_id.clone(),
                ip: None,
                host: None,
                service_topic: None,
                http: None,
                traceparent: None,
            },
            payload,
            target,
            options: (!persist).then_some(EventOptions {
                persist: Some(false),
            }),
            error: None,
            created_at: Utc::now(),
            size: None,
        })
    }
}

/// An event as the guest sees it.
pub(crate) fn to_wit_event(event: &Event) -> types::Event {
    types::Event {
        id: event
            .id
            .as_ref()
            .map(|i| i.as_str().to_owned())
            .unwrap_or_default(),
        type_: event.event_type.as_str().to_owned(),
        payload: serde_json::to_string(&event.payload).unwrap_or_else(|_| "{}".into()),
        source: serde_json::to_string(&event.source).unwrap_or_else(|_| "{}".into()),
    }
}
