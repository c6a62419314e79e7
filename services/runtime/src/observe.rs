//! What the runtime reports to Prometheus (`spec/http-api.md` §12): `runs_total` and
//! `run_duration_seconds` by kind (`wasm`, `dsl`), trigger (`event`, `endpoint`, `schedule`,
//! `automation`) and outcome (`success`, `error`, `trapped`, `not_started`), and the consumer's
//! `events_pickup_delay_seconds` / `events_process_duration_seconds`. Labels are small closed
//! sets: never a workspace or automation id, which would make one series per tenant (the
//! per-workspace usage counters, with their cap on series, are [`crate::usage`]'s).

use std::time::Duration;

use chrono::Utc;
use refract_core::Event;
use refract_core::model::AutomationKind;
use refract_host::{RunOutcome, RunReport};

use crate::error::RuntimeError;
use crate::run::Execution;
use crate::triggering::GROUP;

/// Records one run, whatever its result.
pub(crate) fn record_run(
    exec: &Execution,
    result: &Result<RunReport, RuntimeError>,
    wall: Duration,
) {
    let kind = match exec.automation.kind {
        AutomationKind::Dsl => "dsl",
        AutomationKind::Component => "wasm",
    };
    let (outcome, seconds) = match result {
        Ok(report) => {
            let outcome = match &report.outcome {
                RunOutcome::Ok(_) => "success",
                RunOutcome::Failed(e) if crate::run::stops_callers(exec, e) => "success",
                RunOutcome::Failed(_) => "error",
                RunOutcome::Trapped(_) => "trapped",
            };
            (outcome, report.elapsed.as_secs_f64())
        }
        Err(_) => ("not_started", wall.as_secs_f64()),
    };
    let trigger = exec.info.kind.as_str();
    metrics::counter!("runs_total", "kind" => kind, "trigger" => trigger, "outcome" => outcome)
        .increment(1);
    metrics::histogram!("run_duration_seconds", "kind" => kind, "trigger" => trigger, "outcome" => outcome).record(seconds);
}

/// Records how long `event` waited in the broker before this consumer got it.
pub(crate) fn record_pickup(event: &Event) {
    let waited = (Utc::now() - event.created_at).to_std().unwrap_or_default();
    metrics::histogram!("events_pickup_delay_seconds", "group" => GROUP)
        .record(waited.as_secs_f64());
}

/// Records how long handling one delivery took (every run it started, then the ack).
pub(crate) fn record_processed(took: Duration) {
    metrics::histogram!("events_process_duration_seconds", "group" => GROUP)
        .record(took.as_secs_f64());
}
