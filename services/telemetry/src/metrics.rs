//! The process's Prometheus recorder. Services record through the `metrics` facade macros
//! (`counter!`, `histogram!`, `gauge!`); this module installs the one recorder that keeps the
//! values and renders them as Prometheus text (format 0.0.4) for `GET /metrics`.
//!
//! The recorder is process-wide (the facade has one global recorder): in the embedded mode
//! every service of the process reports into it, and the `service` label on HTTP metrics
//! tells them apart.

use std::sync::OnceLock;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// The content type Prometheus expects for its text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Buckets of every `*_seconds` histogram: from 0.5 ms (an in-process webhook) to 60 s (the
/// longest run a sandbox allows by default).
const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// Buckets of `events_size_bytes`: up to the 100,000-byte envelope limit.
const SIZE_BUCKETS: &[f64] = &[256.0, 1024.0, 4096.0, 16384.0, 65536.0, 100_000.0];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder on first call and returns its handle; `None` when
/// another recorder was installed first (then nothing is exported, and that is logged once).
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let built = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full("events_size_bytes".into()), SIZE_BUCKETS))
                .and_then(|b| b.install_recorder());
            match built {
                Ok(handle) => {
                    describe();
                    Some(handle)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed: /metrics will be empty");
                    None
                }
            }
        })
        .as_ref()
}

/// Everything recorded so far, as Prometheus text.
pub fn render() -> String {
    match install() {
        Some(handle) => {
            // Histograms drain their buckets on upkeep; without an exporter thread it is ours.
            handle.run_upkeep();
            handle.render()
        }
        None => String::new(),
    }
}

/// `text` as a `/metrics` response.
pub fn response(text: String) -> Response {
    let mut res = text.into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    res
}

/// HELP lines for the families of `spec/http-api.md` §12.
fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "http_requests_total",
        "HTTP requests served, by service, route template, method and status"
    );
    describe_histogram!(
        "http_request_duration_seconds",
        Unit::Seconds,
        "HTTP request latency, by service, route template, method and status"
    );
    describe_counter!("events_published_total", "Events appended to the broker");
    describe_histogram!(
        "events_size_bytes",
        Unit::Bytes,
        "Serialized size of published events"
    );
    describe_gauge!(
        "events_pending",
        "Entries delivered to a consumer group and not yet acknowledged"
    );
    describe_gauge!(
        "events_lag",
        "Entries not yet delivered to a consumer group"
    );
    describe_counter!(
        "events_reclaimed_total",
        "Pending entries taken over from an idle (presumed dead) consumer"
    );
    describe_counter!(
        "events_dead_lettered_total",
        "Entries moved to the dead-letter stream after too many failed deliveries"
    );
    describe_histogram!(
        "events_pickup_delay_seconds",
        Unit::Seconds,
        "Time from an event's creation to its delivery to a consumer"
    );
    describe_histogram!(
        "events_process_duration_seconds",
        Unit::Seconds,
        "Time a consumer spent handling one delivery"
    );
    describe_counter!("events_stored_total", "Events written to the history");
    describe_gauge!("websocket_connections", "Open WebSocket connections");
    describe_counter!(
        "runs_total",
        "Automation runs, by kind, trigger and outcome"
    );
    describe_histogram!(
        "run_duration_seconds",
        Unit::Seconds,
        "Automation run duration, by kind, trigger and outcome"
    );
    describe_counter!(
        "workspace_runs_total",
        "Runs per workspace (the first 100 workspaces an instance sees; the rest as _other)"
    );
    describe_counter!(
        "workspace_run_milliseconds_total",
        "Run time per workspace, in milliseconds"
    );
    describe_counter!(
        "workspace_emits_total",
        "Events emitted by runs, per workspace"
    );
    describe_counter!(
        "workspace_fetches_total",
        "Fetches made by runs, per workspace"
    );
    describe_counter!(
        "ratelimit_rejections_total",
        "Requests refused by a gateway rate limiter"
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn recorded_values_are_rendered_with_their_labels() {
        super::install();
        metrics::counter!("runs_total", "kind" => "wasm", "trigger" => "webhook", "outcome" => "success").increment(2);
        metrics::histogram!("run_duration_seconds", "kind" => "wasm").record(0.003);
        let text = super::render();
        assert!(text.contains("# TYPE runs_total counter"), "{text}");
        assert!(
            text.contains(r#"runs_total{kind="wasm",trigger="webhook",outcome="success"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"run_duration_seconds_bucket{kind="wasm",le="0.005"} 1"#),
            "{text}"
        );
    }
}
