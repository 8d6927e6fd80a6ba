//! Logs (tracing) and metrics (Prometheus text on `telemetry.metrics-listen`).
//!
//! Metric names are part of the interface and stay stable:
//! `orderflow_records_received_total{consumer}`, `orderflow_events_appended_total{consumer,kind}`,
//! `orderflow_duplicates_dropped_total{consumer,stage}`, `orderflow_dlq_records_total{consumer,error_type}`,
//! `orderflow_exceptions_total{kind,action}`, `orderflow_decisions_total{kind}`,
//! `orderflow_batch_duration_seconds{consumer}`.

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, TelemetryConfig};
use crate::RuntimeError;

/// Logs go to stderr; `RUST_LOG` narrows or widens them (default `info`).
pub fn init_logs(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Starts the metrics endpoint if one is configured. Needs a running tokio runtime.
pub fn init_metrics(telemetry: &TelemetryConfig) -> Result<(), RuntimeError> {
    if let Some(address) = telemetry.metrics_listen {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .with_http_listener(address)
            .install()
            .map_err(|error| {
                RuntimeError::Config(format!(
                    "telemetry.metrics-listen {address} could not be served: {error}"
                ))
            })?;
    }
    Ok(())
}
