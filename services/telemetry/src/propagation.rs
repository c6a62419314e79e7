//! The W3C trace context (`traceparent`) of the current span: what a producer writes into an
//! event envelope or an HTTP request, and what a consumer makes the parent of its own span, so
//! one trace follows a request from the gateway through the broker into a run.
//!
//! Without the OpenTelemetry layer (traces off), spans carry no trace context:
//! [`current_traceparent`] returns `None` and [`set_parent`] does nothing.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The HTTP header (and envelope field) name of the W3C trace context.
pub const TRACEPARENT: &str = "traceparent";

/// The `traceparent` of the current span, when traces are on and the span is sampled-in.
pub fn current_traceparent() -> Option<String> {
    traceparent_of(&tracing::Span::current())
}

/// The `traceparent` of `span`, when it has a valid trace context.
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// Makes the trace named by `traceparent` the parent of `span` (before it is entered). An
/// unparseable value is ignored: the span then starts a trace of its own.
pub fn set_parent(span: &tracing::Span, traceparent: &str) {
    let carrier = HashMap::from([(TRACEPARENT.to_string(), traceparent.to_string())]);
    let cx = TraceContextPropagator::new().extract(&carrier);
    if cx.span().span_context().is_valid() {
        // Only fails when the OpenTelemetry layer is absent, when there is nothing to link.
        let _ = span.set_parent(cx);
    }
}

/// The trace id (32 hex digits) of `traceparent`, for logs and tests.
pub fn trace_id(traceparent: &str) -> Option<&str> {
    let mut parts = traceparent.split('-');
    let (_version, id) = (parts.next()?, parts.next()?);
    (id.len() == 32).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn without_traces_nothing_is_carried() {
        let span = tracing::info_span!("no layer");
        assert_eq!(traceparent_of(&span), None);
        set_parent(
            &span,
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        );
    }

    #[test]
    fn a_consumer_span_continues_the_producer_trace() {
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let producer = tracing::info_span!("gateway request");
            let sent = producer
                .in_scope(current_traceparent)
                .expect("a sampled span has a traceparent");
            let trace = trace_id(&sent).expect("a trace id").to_string();

            // What the runtime does with the envelope's field, on another instance.
            let consumer = tracing::info_span!("run");
            set_parent(&consumer, &sent);
            let continued = traceparent_of(&consumer).expect("the consumer span is traced");
            assert_eq!(trace_id(&continued), Some(trace.as_str()));
            assert_ne!(continued, sent, "a new span of the same trace");

            let child = consumer.in_scope(|| tracing::info_span!("fetch"));
            assert_eq!(
                traceparent_of(&child).as_deref().and_then(trace_id),
                Some(trace.as_str())
            );

            let unrelated = tracing::info_span!("other");
            set_parent(&unrelated, "garbage");
            assert_ne!(
                traceparent_of(&unrelated).as_deref().and_then(trace_id),
                Some(trace.as_str())
            );
        });
    }
}
