//! What the broker reports about itself: Prometheus counters through the `metrics` facade
//! (`events_published_total`, `events_size_bytes`, `events_reclaimed_total`,
//! `events_dead_lettered_total` by group), and the trace context every published event carries
//! so that its consumer's span continues the publisher's trace.

use refract_core::Event;

/// Stamps `event` with the current span's trace context, unless the producer set one.
pub(crate) fn stamp(event: &mut Event) {
    if event.source.traceparent.is_none() {
        event.source.traceparent = refract_telemetry::propagation::current_traceparent();
    }
}

/// Counts one appended event and its size.
pub(crate) fn published(event: &Event) {
    metrics::counter!("events_published_total").increment(1);
    if let Some(size) = event.size {
        metrics::histogram!("events_size_bytes").record(size as f64);
    }
}

/// Counts one entry taken over from an idle consumer of `group`.
pub(crate) fn reclaimed(group: &str) {
    metrics::counter!("events_reclaimed_total", "group" => group.to_string()).increment(1);
}

/// Counts one entry of `group` moved to the dead-letter stream.
pub(crate) fn dead_lettered(group: &str) {
    metrics::counter!("events_dead_lettered_total", "group" => group.to_string()).increment(1);
}
