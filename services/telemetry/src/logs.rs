//! The process's tracing subscriber: log lines on stderr as text (default) or JSON (one object
//! per line, with the fields of the current span such as `correlation_id`), and, when an OTLP
//! endpoint is configured, every span exported as an OpenTelemetry trace.
//!
//! The binary decides from its environment (`REFRACT_LOG_FORMAT`, `RUST_LOG`, the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT`); this module only builds what it is told.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines (development).
    #[default]
    Text,
    /// One JSON object per line (log shippers).
    Json,
}

impl LogFormat {
    /// `text` or `json`.
    pub fn parse(value: &str) -> Result<Self, String> {
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!("unknown log format {other:?}: use text or json")),
        }
    }
}

/// What to set up.
#[derive(Debug, Clone)]
pub struct LogSettings {
    /// Human-readable lines or one JSON object per line.
    pub format: LogFormat,
    /// An `EnvFilter` directive (`RUST_LOG` syntax).
    pub filter: String,
    /// Export spans over OTLP/HTTP: the exporter reads the standard `OTEL_EXPORTER_OTLP_*`
    /// variables (endpoint, headers, timeout) itself.
    pub otlp: bool,
    /// `service.name` of exported spans.
    pub service_name: String,
}

/// Keeps the trace exporter alive; dropping it flushes the spans not yet sent.
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("refract: flushing traces: {e}");
        }
    }
}

/// Installs the global subscriber. Call once, before the async runtime starts (the OTLP
/// exporter builds a blocking HTTP client). Fails when the filter or the exporter is invalid,
/// or a subscriber is already installed.
pub fn init(settings: &LogSettings) -> Result<Telemetry, String> {
    let filter = EnvFilter::try_new(&settings.filter)
        .map_err(|e| format!("log filter {:?}: {e}", settings.filter))?;
    let fmt: Box<dyn Layer<Registry> + Send + Sync> = match settings.format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let provider = if settings.otlp {
        Some(tracer_provider(&settings.service_name)?)
    } else {
        None
    };
    let otel = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("refract")));
    tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .with(filter)
        .try_init()
        .map_err(|e| format!("installing the log subscriber: {e}"))?;
    Ok(Telemetry { provider })
}

fn tracer_provider(service_name: &str) -> Result<SdkTracerProvider, String> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .map_err(|e| format!("the OTLP trace exporter (OTEL_EXPORTER_OTLP_ENDPOINT): {e}"))?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name(service_name.to_string())
                .build(),
        )
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse() {
        assert_eq!(LogFormat::parse("JSON"), Ok(LogFormat::Json));
        assert_eq!(LogFormat::parse(""), Ok(LogFormat::Text));
        assert!(
            LogFormat::parse("xml")
                .unwrap_err()
                .contains("text or json")
        );
    }
}
