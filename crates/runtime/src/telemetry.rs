//! Logs (tracing) and metrics (Prometheus text on `telemetry.metrics-listen`).
//!
//! Every metric is defined once, in [`ALL`]: its name, type, labels and help text. Call sites
//! name a definition (`metrics::counter!(telemetry::RECORDS_RECEIVED.name, ...)`), never a
//! string, and `orderflow metrics` prints the table that the README's list is generated from
//! (`scripts/check-docs.py` keeps the two equal). Metric names are part of the interface and
//! stay stable.

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
    // Without a recorder (no endpoint) these do nothing.
    for metric in ALL {
        match metric.kind {
            MetricKind::Counter => metrics::describe_counter!(metric.name, metric.help),
            MetricKind::Gauge => metrics::describe_gauge!(metric.name, metric.help),
            MetricKind::Histogram => metrics::describe_histogram!(metric.name, metric.help),
        }
    }
    Ok(())
}

/// One metric: what it is called, what it counts, and the labels it is split by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricDef {
    pub name: &'static str,
    pub kind: MetricKind,
    pub labels: &'static [&'static str],
    /// The Prometheus `# HELP` text.
    pub help: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

impl MetricKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
        }
    }
}

pub const RECORDS_RECEIVED: MetricDef = MetricDef {
    name: "orderflow_records_received_total",
    kind: MetricKind::Counter,
    labels: &["consumer"],
    help: "Records a consumer read from its topics and handled.",
};

pub const EVENTS_APPENDED: MetricDef = MetricDef {
    name: "orderflow_events_appended_total",
    kind: MetricKind::Counter,
    labels: &["consumer", "kind"],
    help: "Input facts an intake consumer appended to order-events, by event kind.",
};

pub const DUPLICATES_DROPPED: MetricDef = MetricDef {
    name: "orderflow_duplicates_dropped_total",
    kind: MetricKind::Counter,
    labels: &["consumer", "stage"],
    help: "Events dropped as copies of one already seen: by the intake's dedup index (stage intake) or by the fold (stage fold).",
};

pub const DLQ_RECORDS: MetricDef = MetricDef {
    name: "orderflow_dlq_records_total",
    kind: MetricKind::Counter,
    labels: &["consumer", "error_type"],
    help: "Records sent to the dead-letter topic, by rejection kind.",
};

pub const EXCEPTIONS: MetricDef = MetricDef {
    name: "orderflow_exceptions_total",
    kind: MetricKind::Counter,
    labels: &["kind", "action"],
    help: "Exception changes published, by exception kind and action (raised, escalated, assigned, resolved).",
};

pub const DECISIONS: MetricDef = MetricDef {
    name: "orderflow_decisions_total",
    kind: MetricKind::Counter,
    labels: &["kind"],
    help: "Decisions the state consumer appended to order-events (what depends on the rules or the clock), by event kind.",
};

pub const NOTIFICATIONS: MetricDef = MetricDef {
    name: "orderflow_notifications_total",
    kind: MetricKind::Counter,
    labels: &["kind"],
    help: "Notifications published, by notification kind.",
};

pub const RULES_RELOADS: MetricDef = MetricDef {
    name: "orderflow_rules_reloads_total",
    kind: MetricKind::Counter,
    labels: &["outcome"],
    help: "Changes of the rules file the state consumer saw: applied, or refused (the rules in force stay).",
};

pub const BATCH_DURATION: MetricDef = MetricDef {
    name: "orderflow_batch_duration_seconds",
    kind: MetricKind::Histogram,
    labels: &["consumer"],
    help: "Seconds from the start of handling a batch until its outputs were acknowledged and its offsets stored.",
};

/// Every metric orderflow exports, in the order they are documented.
pub const ALL: &[MetricDef] = &[
    RECORDS_RECEIVED,
    EVENTS_APPENDED,
    DUPLICATES_DROPPED,
    DLQ_RECORDS,
    EXCEPTIONS,
    DECISIONS,
    NOTIFICATIONS,
    RULES_RELOADS,
    BATCH_DURATION,
];

/// [`ALL`] as a Markdown table (name | type | labels | help), as the README shows it.
pub fn markdown_table() -> String {
    let mut table = String::from("| name | type | labels | help |\n|---|---|---|---|\n");
    for metric in ALL {
        let labels = if metric.labels.is_empty() {
            "-".to_string()
        } else {
            metric
                .labels
                .iter()
                .map(|label| format!("`{label}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        table.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            metric.name,
            metric.kind.as_str(),
            labels,
            metric.help
        ));
    }
    table
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn metric_names_are_unique_snake_case_and_prefixed() {
        let mut seen = HashSet::new();
        for metric in ALL {
            assert!(seen.insert(metric.name), "{} is defined twice", metric.name);
            assert!(
                metric.name.starts_with("orderflow_"),
                "{} lacks the orderflow_ prefix",
                metric.name
            );
            let snake = metric
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                && !metric.name.contains("__")
                && !metric.name.ends_with('_');
            assert!(snake, "{} is not snake_case", metric.name);
            assert_eq!(
                metric.kind == MetricKind::Counter,
                metric.name.ends_with("_total"),
                "{}: counters, and only counters, end in _total",
                metric.name
            );
            for label in metric.labels {
                assert!(
                    label.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                    "{}: label {label} is not snake_case",
                    metric.name
                );
            }
            assert!(
                !metric.help.is_empty() && !metric.help.contains('|'),
                "{}: help must be one table cell",
                metric.name
            );
        }
    }

    #[test]
    fn the_table_has_a_row_per_metric() {
        let table = markdown_table();
        assert_eq!(table.lines().count(), ALL.len() + 2, "{table}");
        assert!(table
            .contains("| `orderflow_dlq_records_total` | counter | `consumer`, `error_type` | "));
    }
}
