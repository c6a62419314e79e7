//! [`Reports`]: the events a run leaves on the bus. `runtime.interactions.triggered` when a
//! trigger starts an interaction, `runtime.automations.executed` for every run (its input and
//! output cut to the configured preview size) and `error` for a failed one. Every one of them
//! that carries what the run saw or made (input, output, error) is redacted with the run's
//! secrets (`automation-dsl.md` §6.6) before it leaves: no secret value reaches the bus, the
//! history or a client reading either. (The announcement carries only names the platform
//! chose: slug, trigger, time.)

use refract_core::platform::types;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use refract_core::{ErrorLevel, Event, EventError};
use refract_host::{AutomationError, LogLine, RunOutcome, RunReport};
use refract_secrets::Redactor;
use serde_json::{Map, Value, json};

use crate::bus::{BrokerBus, run_event};
use crate::error::RuntimeError;
use crate::run::{Execution, output_value, stops_callers};

/// Publishes the events of runs, stamped with this instance.
#[derive(Clone)]
pub(crate) struct Reports {
    bus: Arc<BrokerBus>,
    /// Bytes of input and output kept in `runtime.automations.executed`.
    preview_bytes: usize,
}

impl std::fmt::Debug for Reports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reports")
            .field("preview_bytes", &self.preview_bytes)
            .finish_non_exhaustive()
    }
}

impl Reports {
    /// Reports publishing to `bus`, keeping `preview_bytes` of a run's input and output.
    pub(crate) fn new(bus: Arc<BrokerBus>, preview_bytes: usize) -> Self {
        Self { bus, preview_bytes }
    }

    /// Publishes `runtime.automations.executed` for a run that happened or failed to start
    /// for good, and `error` when it failed. `redactor` holds the secrets the run could read:
    /// its input and output are redacted here, its error already was ([`Executor::execute`]).
    ///
    /// [`Executor::execute`]: crate::executor::Executor::execute
    pub(crate) async fn executed(
        &self,
        exec: &Execution,
        attempt: u32,
        started_at: DateTime<Utc>,
        throttled: Duration,
        result: Result<&RunReport, &RuntimeError>,
        redactor: &Redactor,
    ) {
        let mut stopped_callers = false;
        let (output, error, duration) = match result {
            Ok(report) => {
                let duration = report.elapsed.as_millis();
                match &report.outcome {
                    RunOutcome::Ok(out) => (Some(output_value(&out.body)), None, duration),
                    // A called DSL automation that ended with `break: {scope: all}`: a break,
                    // not a failure; its output travels in the details to its caller.
                    RunOutcome::Failed(e) if stops_callers(exec, e) => {
                        stopped_callers = true;
                        (Some(guest_error(e).2), None, duration)
                    }
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
        payload.insert("runId".into(), json!(exec.context.run_id));
        if attempt > 1 {
            payload.insert("attempt".into(), json!(attempt));
        }
        payload.insert("slug".into(), json!(exec.automation.slug));
        payload.insert("kind".into(), json!(exec.automation.kind));
        payload.insert("trigger".into(), exec.info.to_json());
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
        if let Ok(report) = result {
            payload.insert("logs".into(), log_lines(&report.logs));
            payload.insert("logsDropped".into(), json!(report.logs_dropped));
        }
        if stopped_callers {
            payload.insert("break".into(), json!(true));
        }
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
        redactor.redact_members(&mut payload);
        self.publish(types::AUTOMATIONS_EXECUTED, exec, payload, None)
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
    pub(crate) async fn announce(&self, exec: &Execution, test: bool) {
        let mut payload = Map::new();
        payload.insert("workspaceId".into(), json!(exec.context.workspace_id));
        payload.insert("automation".into(), json!(exec.automation.slug));
        payload.insert("trigger".into(), exec.info.to_json());
        if test {
            payload.insert("test".into(), json!(true));
        }
        payload.insert(
            "startedAt".into(),
            json!(Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)),
        );
        self.publish(types::INTERACTIONS_TRIGGERED, exec, payload, None)
            .await;
    }

    /// Publishes an event of the runtime (stamped with this instance); a failure is logged.
    pub(crate) async fn publish_event(&self, event: Event) {
        let ty = event.event_type.clone();
        if let Err(e) = self.bus.publish(event).await {
            tracing::warn!(event_type = %ty, error = %e, "could not publish a runtime event");
        }
    }

    async fn publish(
        &self,
        ty: &str,
        exec: &Execution,
        payload: Map<String, Value>,
        error: Option<EventError>,
    ) {
        let c = &exec.context;
        let Some(mut event) = run_event(c, ty, Value::Object(payload), c.depth) else {
            return;
        };
        // The automation as the index names it (a call's context carries the slug it was
        // called by), and the app instance it belongs to.
        let source = &mut event.source;
        source.automation_slug = Some(exec.automation.slug.clone());
        if let Some(app) = &exec.app {
            source.app_slug = Some(app.app_slug.clone());
            source.app_instance_full_slug = Some(app.full_slug.clone());
            source.app_instance_depth = Some(app.depth);
        }
        event.error = error;
        if let Err(e) = self.bus.publish(event).await {
            tracing::warn!(workspace_id = %c.workspace_id, automation = %exec.automation.slug, event_type = ty,
                error = %e, "could not publish a run event");
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

/// A run's log as its record carries it: `[{at (ms since the run started), level, source,
/// message}]`.
fn log_lines(lines: &[LogLine]) -> Value {
    Value::Array(
        lines
            .iter()
            .map(|l| {
                json!({"at": l.at.as_millis() as u64, "level": l.level.as_str(),
                    "source": l.source.as_str(), "message": l.message})
            })
            .collect(),
    )
}

/// `value` if its JSON is at most `limit` bytes, else its JSON text cut to `limit` bytes.
fn preview(value: &Value, limit: usize) -> Value {
    if refract_core::json_size(value) <= limit {
        return value.clone();
    }
    let text = value.to_string();
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Value::String(format!("{}…", &text[..end]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previews_cut_large_values_on_char_boundaries() {
        assert_eq!(preview(&json!({"a": 1}), 100), json!({"a": 1}));
        let cut = preview(&json!("ééééé"), 4);
        assert!(cut.as_str().unwrap().ends_with('…'));
    }
}
