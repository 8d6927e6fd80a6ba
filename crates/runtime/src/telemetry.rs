//! Logs (tracing), metrics (Prometheus text on `telemetry.metrics-listen`), and the health and
//! readiness the same listener answers (`/healthz`, `/readyz`).
//!
//! Every metric is defined once, in [`ALL`]: its name, type, labels and help text. Call sites
//! name a definition (`metrics::counter!(telemetry::RECORDS_RECEIVED.name, ...)`), never a
//! string, and `orderflow metrics` prints the table that the README's list is generated from
//! (`scripts/check-docs.py` keeps the two equal). Metric names are part of the interface and
//! stay stable.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use metrics_util::MetricKindMask;
use tracing::error;
use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, TelemetryConfig};
use crate::RuntimeError;

/// Logs go to stderr; `RUST_LOG` narrows or widens them (default `info`).
pub fn init_logs(format: LogFormat) {
    init_logs_with(format, "info");
}

/// [`init_logs`] with another filter than `info` where `RUST_LOG` is unset (the operator CLI
/// keeps the Kafka clients' lines out of an operator's way unless asked for them).
pub fn init_logs_with(format: LogFormat, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Starts the endpoint on `telemetry.metrics-listen`, if one is configured: `/metrics`
/// (Prometheus text), `/healthz` and `/readyz` (see [`Health`]). Needs a running tokio runtime.
pub fn init_metrics(telemetry: &TelemetryConfig) -> Result<(), RuntimeError> {
    if let Some(address) = telemetry.metrics_listen {
        let unserved = |error: &dyn std::fmt::Display| {
            RuntimeError::Config(format!(
                "telemetry.metrics-listen {address} could not be served: {error}"
            ))
        };
        // Per-partition gauges of partitions this copy no longer owns disappear once nothing
        // sets them; every gauge that is still meant is set at least every few seconds.
        let mut builder =
            PrometheusBuilder::new().idle_timeout(MetricKindMask::GAUGE, Some(GAUGE_IDLE_TIMEOUT));
        for metric in ALL.iter().filter(|m| m.kind == MetricKind::Histogram) {
            builder = builder
                .set_buckets_for_metric(Matcher::Full(metric.name.to_string()), buckets(metric))
                .map_err(|error| unserved(&error))?;
        }
        let listener = std::net::TcpListener::bind(address).map_err(|error| unserved(&error))?;
        listener
            .set_nonblocking(true)
            .map_err(|error| unserved(&error))?;
        let listener =
            tokio::net::TcpListener::from_std(listener).map_err(|error| unserved(&error))?;
        let handle = builder
            .install_recorder()
            .map_err(|error| unserved(&error))?;
        tokio::spawn(serve(listener, handle.clone()));
        tokio::spawn(async move {
            let mut every = tokio::time::interval(EXPORT_EVERY);
            loop {
                every.tick().await;
                handle.run_upkeep();
                health().export();
            }
        });
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

/// How often the health gauges are exported and the recorder's upkeep runs.
const EXPORT_EVERY: Duration = Duration::from_secs(5);

/// A gauge nobody has set for this long is dropped from `/metrics`.
const GAUGE_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The buckets of a histogram (seconds): from a millisecond to two minutes, dense where the
/// pipeline's latencies are (10 ms to 1 s).
pub fn buckets(_metric: &MetricDef) -> &'static [f64] {
    &[
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
        10.0, 30.0, 60.0, 120.0,
    ]
}

async fn serve(listener: tokio::net::TcpListener, handle: PrometheusHandle) {
    use axum::http::{header, StatusCode};
    use axum::routing::get;

    let status = |ok: bool| {
        if ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        }
    };
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let text = handle.render();
                async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        text,
                    )
                }
            }),
        )
        .route(
            "/healthz",
            get(move || async move {
                let (alive, text) = health().liveness();
                (status(alive), format!("{text}\n"))
            }),
        )
        .route(
            "/readyz",
            get(move || async move {
                let (ready, text) = health().readiness();
                (status(ready), format!("{text}\n"))
            }),
        );
    if let Err(error) = axum::serve(listener, app).await {
        error!(%error, "the metrics endpoint stopped");
    }
}

/// What `/healthz` and `/readyz` answer for the binary this process runs.
///
/// - `/healthz` is 200 while the consumer loop turns: it has turned within [`LIVENESS_LIMIT`]
///   (it turns at least every tick, records or not), or it hasn't started yet. A 503 means
///   the process is stuck and should be restarted.
/// - `/readyz` is 200 once the consumer is in its group (an assignment arrived, possibly
///   empty), every partition assigned to it is live (the state consumer has rebuilt its state
///   up to what was already published), and a broker answered recently (librdkafka's
///   statistics, every 5 s); 503 while joining, rebuilding, without a broker, or shutting
///   down. A binary that is no group member (the gateway) needs only the broker.
///
/// One per process, like the metrics registry: each binary runs one consumer.
pub struct Health {
    started: Instant,
    /// Milliseconds after `started` of the loop's last turn; 0 before the first.
    beat_ms: AtomicU64,
    state: Mutex<HealthState>,
}

#[derive(Default)]
struct HealthState {
    /// The group member this process runs, if any.
    consumer: Option<String>,
    joined: bool,
    /// Assigned partitions, and whether each is live.
    partitions: BTreeMap<(String, i32), bool>,
    broker_reachable: bool,
    shutting_down: bool,
    last_commit_unix: Option<f64>,
    /// Partitions stopped at a log record this build can't read, and why (issue 13).
    stalled: BTreeMap<(String, i32), String>,
}

/// `/healthz` fails once the consumer loop hasn't turned for this long.
pub const LIVENESS_LIMIT: Duration = Duration::from_secs(60);

static HEALTH: OnceLock<Health> = OnceLock::new();

/// This process's health.
pub fn health() -> &'static Health {
    HEALTH.get_or_init(Health::new)
}

impl Default for Health {
    fn default() -> Health {
        Health::new()
    }
}

impl Health {
    pub fn new() -> Health {
        Health {
            started: Instant::now(),
            beat_ms: AtomicU64::new(0),
            state: Mutex::new(HealthState::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, HealthState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The consumer loop turned.
    pub fn beat(&self) {
        let elapsed = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.beat_ms.store(elapsed.max(1), Ordering::Relaxed);
    }

    /// This process is the group member `name`: readiness waits for its assignment.
    pub fn member_of_group(&self, name: &str) {
        self.state().consumer = Some(name.to_string());
    }

    pub fn consumer_name(&self) -> Option<String> {
        self.state().consumer.clone()
    }

    /// Partitions were assigned; `live` unless their state must be rebuilt first.
    pub fn assigned(&self, partitions: &[(String, i32)], live: bool) {
        let mut state = self.state();
        state.joined = true;
        for partition in partitions {
            state.partitions.insert(partition.clone(), live);
        }
    }

    /// Partitions were taken away; `all` for an eager rebalance, which revokes everything
    /// and leaves the member outside the group until the next assignment.
    pub fn revoked(&self, partitions: &[(String, i32)], all: bool) {
        let mut state = self.state();
        for partition in partitions {
            state.partitions.remove(partition);
            state.stalled.remove(partition);
        }
        if all {
            state.partitions.clear();
            state.stalled.clear();
            state.joined = false;
        }
    }

    /// An assigned partition became live (or went back to rebuilding).
    pub fn set_live(&self, topic: &str, partition: i32, live: bool) {
        if let Some(entry) = self
            .state()
            .partitions
            .get_mut(&(topic.to_string(), partition))
        {
            *entry = live;
        }
    }

    /// A partition stopped at a log record this build can't read (`Some(why)`), or no longer.
    pub fn stalled(&self, topic: &str, partition: i32, why: Option<String>) {
        let key = (topic.to_string(), partition);
        let mut state = self.state();
        match why {
            Some(why) => state.stalled.insert(key, why),
            None => state.stalled.remove(&key),
        };
    }

    pub fn broker_reachable(&self, reachable: bool) {
        self.state().broker_reachable = reachable;
    }

    pub fn shutting_down(&self) {
        self.state().shutting_down = true;
    }

    /// The broker accepted an offset commit.
    pub fn committed(&self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|since| since.as_secs_f64())
            .unwrap_or_default();
        self.state().last_commit_unix = Some(now);
    }

    /// `/healthz`: whether the loop is alive, and a line saying why.
    pub fn liveness(&self) -> (bool, String) {
        let beat = self.beat_ms.load(Ordering::Relaxed);
        if beat == 0 {
            return (true, "alive: starting".into());
        }
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let quiet = Duration::from_millis(now.saturating_sub(beat));
        if quiet > LIVENESS_LIMIT {
            (
                false,
                format!(
                    "stuck: the consumer loop has not turned for {} s",
                    quiet.as_secs()
                ),
            )
        } else {
            (true, "alive".into())
        }
    }

    /// `/readyz`: whether the binary is ready, and a line saying why (not).
    pub fn readiness(&self) -> (bool, String) {
        let state = self.state();
        if state.shutting_down {
            return (false, "not ready: shutting down".into());
        }
        if !state.broker_reachable {
            return (false, "not ready: no broker reachable".into());
        }
        if state.consumer.is_none() {
            return (true, "ready".into());
        }
        if !state.joined {
            return (false, "not ready: joining the consumer group".into());
        }
        if !state.stalled.is_empty() {
            let stalled: Vec<String> = state
                .stalled
                .iter()
                .map(|((topic, partition), why)| format!("{topic}[{partition}] at {why}"))
                .collect();
            return (
                false,
                format!("not ready: stopped at a log record: {}", stalled.join("; ")),
            );
        }
        let rebuilding: Vec<String> = state
            .partitions
            .iter()
            .filter(|(_, live)| !**live)
            .map(|((topic, partition), _)| format!("{topic}[{partition}]"))
            .collect();
        if !rebuilding.is_empty() {
            return (
                false,
                format!("not ready: rebuilding {}", rebuilding.join(", ")),
            );
        }
        (
            true,
            format!("ready: {} partitions live", state.partitions.len()),
        )
    }

    /// Sets the gauges of this state: readiness, the assignment, live partitions, last commit.
    pub fn export(&self) {
        let (ready, _) = self.readiness();
        let state = self.state();
        let Some(consumer) = state.consumer.clone() else {
            return;
        };
        metrics::gauge!(crate::telemetry::READY.name, "consumer" => consumer.clone())
            .set(if ready { 1.0 } else { 0.0 });
        metrics::gauge!(crate::telemetry::ASSIGNED_PARTITIONS.name, "consumer" => consumer.clone())
            .set(state.partitions.len() as f64);
        for ((topic, partition), live) in &state.partitions {
            metrics::gauge!(crate::telemetry::PARTITION_LIVE.name, "consumer" => consumer.clone(),
                "topic" => topic.clone(), "partition" => partition.to_string())
            .set(if *live { 1.0 } else { 0.0 });
            let stalled = state.stalled.contains_key(&(topic.clone(), *partition));
            metrics::gauge!(crate::telemetry::LOG_PARTITION_STALLED.name, "consumer" => consumer.clone(),
                "topic" => topic.clone(), "partition" => partition.to_string())
            .set(if stalled { 1.0 } else { 0.0 });
        }
        if let Some(at) = state.last_commit_unix {
            metrics::gauge!(crate::telemetry::LAST_COMMIT.name, "consumer" => consumer).set(at);
        }
    }
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

pub const STORE_WRITE_DURATION: MetricDef = MetricDef {
    name: "orderflow_state_store_write_seconds",
    kind: MetricKind::Histogram,
    labels: &[],
    help: "Seconds one write of what orderflow-state folded (entities and checkpoints) to its store took, on its writer thread: every 500 ms or when the fold is full, once the outputs of what it holds are acknowledged; the loop folds on meanwhile, and waits for it only when the fold is full or a partition's exceptions are counted.",
};

pub const GATEWAY_REQUESTS: MetricDef = MetricDef {
    name: "orderflow_gateway_requests_total",
    kind: MetricKind::Counter,
    labels: &["route", "status"],
    help: "HTTP requests the gateway answered, by route template and status code.",
};

pub const GATEWAY_REQUEST_DURATION: MetricDef = MetricDef {
    name: "orderflow_gateway_request_duration_seconds",
    kind: MetricKind::Histogram,
    labels: &["route"],
    help: "Seconds from a request's arrival at the gateway to its answer; for ingestion, until the broker acknowledged its records.",
};

pub const GATEWAY_RECORDS_PRODUCED: MetricDef = MetricDef {
    name: "orderflow_gateway_records_produced_total",
    kind: MetricKind::Counter,
    labels: &["topic"],
    help: "Input records the gateway produced and the broker acknowledged, by input topic.",
};

pub const GATEWAY_IDEMPOTENCY: MetricDef = MetricDef {
    name: "orderflow_gateway_idempotency_total",
    kind: MetricKind::Counter,
    labels: &["outcome"],
    help: "Requests with an Idempotency-Key, by outcome: claimed (ran), replayed (stored answer), in_flight (409), mismatch (422).",
};

pub const GATEWAY_VIEW_LAG: MetricDef = MetricDef {
    name: "orderflow_gateway_view_lag_records",
    kind: MetricKind::Gauge,
    labels: &[],
    help: "Records of order-state and order-events the gateway's order view has not read yet.",
};

pub const RECORD_LATENCY: MetricDef = MetricDef {
    name: "orderflow_record_latency_seconds",
    kind: MetricKind::Histogram,
    labels: &["consumer"],
    help: "Seconds from a record's timestamp (when it was produced) until the outputs of its batch were acknowledged: how long records take to reach and pass this consumer.",
};

pub const CONSUMER_LAG: MetricDef = MetricDef {
    name: "orderflow_consumer_lag_records",
    kind: MetricKind::Gauge,
    labels: &["consumer", "topic", "partition"],
    help: "Records after the group's committed offset, per partition assigned to this copy (librdkafka statistics, every 5 s).",
};

pub const ASSIGNED_PARTITIONS: MetricDef = MetricDef {
    name: "orderflow_assigned_partitions",
    kind: MetricKind::Gauge,
    labels: &["consumer"],
    help: "Partitions assigned to this copy of the consumer.",
};

pub const PARTITION_LIVE: MetricDef = MetricDef {
    name: "orderflow_partition_live",
    kind: MetricKind::Gauge,
    labels: &["consumer", "topic", "partition"],
    help: "Per assigned partition: 1 when live, 0 while the state consumer rebuilds its state up to what was already published (catch-up).",
};

pub const LOG_PARTITION_STALLED: MetricDef = MetricDef {
    name: "orderflow_log_partition_stalled",
    kind: MetricKind::Gauge,
    labels: &["consumer", "topic", "partition"],
    help: "Per assigned partition: 1 while it is stopped at a log record this build can't read (a newer layout or event type, or invalid bytes), else 0; /readyz says which record.",
};

pub const REBALANCES: MetricDef = MetricDef {
    name: "orderflow_rebalances_total",
    kind: MetricKind::Counter,
    labels: &["consumer", "kind"],
    help: "Changes of this copy's partitions, by kind: assigned, revoked, lost (taken without a revoke, e.g. after a session timeout), failed.",
};

pub const READY: MetricDef = MetricDef {
    name: "orderflow_ready",
    kind: MetricKind::Gauge,
    labels: &["consumer"],
    help: "1 when /readyz answers 200 (in the group, every assigned partition live, a broker reachable), else 0.",
};

pub const LAST_COMMIT: MetricDef = MetricDef {
    name: "orderflow_last_commit_timestamp_seconds",
    kind: MetricKind::Gauge,
    labels: &["consumer"],
    help: "Unix time of the last offset commit the broker accepted; a consumer with nothing new to commit doesn't commit.",
};

pub const TIMERS_SCHEDULED: MetricDef = MetricDef {
    name: "orderflow_timers_scheduled",
    kind: MetricKind::Gauge,
    labels: &[],
    help: "Orders with a pending timer (payment timeout, SLA escalation) in the live partitions of this state consumer.",
};

pub const TIMERS_OVERDUE: MetricDef = MetricDef {
    name: "orderflow_timers_overdue_seconds",
    kind: MetricKind::Gauge,
    labels: &[],
    help: "How long the most overdue timer of this state consumer has been due without firing; 0 when none is due.",
};

pub const OPEN_EXCEPTIONS: MetricDef = MetricDef {
    name: "orderflow_open_exceptions",
    kind: MetricKind::Gauge,
    labels: &["owner", "level"],
    help: "Open exceptions on the orders of this state consumer's live partitions, by owner and level (L3: the risk committee).",
};

pub const ENTITY_CACHE_ENTITIES: MetricDef = MetricDef {
    name: "orderflow_entity_cache_entities",
    kind: MetricKind::Gauge,
    labels: &[],
    help: "Entities orderflow-state keeps in memory between batches.",
};

pub const ENTITY_CACHE_BYTES: MetricDef = MetricDef {
    name: "orderflow_entity_cache_bytes",
    kind: MetricKind::Gauge,
    labels: &[],
    help: "Approximate memory of those entities (encoded size plus overhead), at most consumer.cache-bytes.",
};

pub const STORE_SIZE: MetricDef = MetricDef {
    name: "orderflow_store_size_bytes",
    kind: MetricKind::Gauge,
    labels: &["consumer"],
    help: "Disk space of the consumer's local store: the state store of orderflow-state, the dedup index of an intake.",
};

pub const SYNC_CALLS: MetricDef = MetricDef {
    name: "orderflow_sync_calls_total",
    kind: MetricKind::Counter,
    labels: &["channel", "change", "outcome"],
    help: "Calls orderflow-sync made to a channel's endpoint, by change and outcome (acknowledged, failed, rejected), plus calls held back (deferred) while the channel's circuit breaker is open.",
};

pub const SYNC_LATENCY: MetricDef = MetricDef {
    name: "orderflow_sync_latency_seconds",
    kind: MetricKind::Histogram,
    labels: &["channel"],
    help: "Seconds from a fact entering orderflow (its record on order-events) until the channel acknowledged the change it caused.",
};

pub const OUTBOUND_MESSAGES: MetricDef = MetricDef {
    name: "orderflow_outbound_messages_total",
    kind: MetricKind::Counter,
    labels: &["target", "outcome"],
    help: "Notifications orderflow-notify handled, by target (dingtalk, wecom, sms, none) and outcome (acknowledged, failed, rejected, skipped: no route).",
};

pub const ANALYTICS_UNREADABLE: MetricDef = MetricDef {
    name: "orderflow_analytics_unreadable_records_total",
    kind: MetricKind::Counter,
    labels: &["topic"],
    help: "Records the analytics projection could not read and passed over (logged with their position), by topic.",
};

pub const ANALYTICS_QUERY_DURATION: MetricDef = MetricDef {
    name: "orderflow_analytics_query_duration_seconds",
    kind: MetricKind::Histogram,
    labels: &["endpoint"],
    help: "Seconds the analytics dashboard took to answer a JSON endpoint, by endpoint.",
};

pub const ANALYTICS_DIGESTS: MetricDef = MetricDef {
    name: "orderflow_analytics_digests_total",
    kind: MetricKind::Counter,
    labels: &[],
    help: "Daily KPI digests the analytics projection published on notifications.",
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
    STORE_WRITE_DURATION,
    RECORD_LATENCY,
    CONSUMER_LAG,
    ASSIGNED_PARTITIONS,
    PARTITION_LIVE,
    LOG_PARTITION_STALLED,
    REBALANCES,
    READY,
    LAST_COMMIT,
    TIMERS_SCHEDULED,
    TIMERS_OVERDUE,
    OPEN_EXCEPTIONS,
    ENTITY_CACHE_ENTITIES,
    ENTITY_CACHE_BYTES,
    STORE_SIZE,
    GATEWAY_REQUESTS,
    GATEWAY_REQUEST_DURATION,
    GATEWAY_RECORDS_PRODUCED,
    GATEWAY_IDEMPOTENCY,
    GATEWAY_VIEW_LAG,
    SYNC_CALLS,
    SYNC_LATENCY,
    OUTBOUND_MESSAGES,
    ANALYTICS_UNREADABLE,
    ANALYTICS_QUERY_DURATION,
    ANALYTICS_DIGESTS,
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
    fn readiness_follows_the_group_the_rebuild_and_the_broker() {
        let health = Health::new();
        assert_eq!(
            health.readiness(),
            (false, "not ready: no broker reachable".into())
        );
        health.broker_reachable(true);
        assert_eq!(
            health.readiness(),
            (true, "ready".into()),
            "no group member: the broker is enough"
        );
        health.member_of_group("orderflow-state");
        assert_eq!(
            health.readiness(),
            (false, "not ready: joining the consumer group".into())
        );
        let log = |p: i32| ("orderflow.order-events".to_string(), p);
        health.assigned(&[log(0), log(1)], false);
        assert_eq!(
            health.readiness(),
            (
                false,
                "not ready: rebuilding orderflow.order-events[0], orderflow.order-events[1]".into()
            )
        );
        health.set_live("orderflow.order-events", 0, true);
        health.set_live("orderflow.order-events", 1, true);
        assert_eq!(
            health.readiness(),
            (true, "ready: 2 partitions live".into())
        );
        // Incremental: one partition more, to rebuild; one taken away.
        health.assigned(&[log(2)], false);
        health.revoked(&[log(0)], false);
        assert_eq!(
            health.readiness(),
            (
                false,
                "not ready: rebuilding orderflow.order-events[2]".into()
            )
        );
        health.set_live("orderflow.order-events", 2, true);
        assert_eq!(
            health.readiness(),
            (true, "ready: 2 partitions live".into())
        );
        health.broker_reachable(false);
        assert_eq!(
            health.readiness(),
            (false, "not ready: no broker reachable".into())
        );
        health.broker_reachable(true);
        // Eager: everything revoked, out of the group until the next assignment.
        health.revoked(&[log(1), log(2)], true);
        assert_eq!(
            health.readiness(),
            (false, "not ready: joining the consumer group".into())
        );
        health.assigned(&[], true);
        assert_eq!(
            health.readiness(),
            (true, "ready: 0 partitions live".into())
        );
        health.shutting_down();
        assert_eq!(
            health.readiness(),
            (false, "not ready: shutting down".into())
        );
    }

    #[test]
    fn liveness_needs_the_loop_to_turn() {
        let health = Health::new();
        assert_eq!(health.liveness(), (true, "alive: starting".into()));
        health.beat();
        assert_eq!(health.liveness(), (true, "alive".into()));
        let later = Health {
            started: Instant::now() - LIVENESS_LIMIT - Duration::from_secs(5),
            beat_ms: AtomicU64::new(1),
            state: Mutex::new(HealthState::default()),
        };
        let (alive, text) = later.liveness();
        assert!(
            !alive && text.starts_with("stuck: the consumer loop has not turned for "),
            "{text}"
        );
    }

    #[test]
    fn every_histogram_has_buckets_in_order() {
        for metric in ALL.iter().filter(|m| m.kind == MetricKind::Histogram) {
            let buckets = buckets(metric);
            assert!(
                buckets.windows(2).all(|pair| pair[0] < pair[1]),
                "{}",
                metric.name
            );
            assert!(buckets.len() >= 10, "{}", metric.name);
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

#[cfg(test)]
mod stall_tests {
    use super::*;

    #[test]
    fn a_stopped_partition_is_not_ready_until_it_resumes_or_moves_away() {
        let health = Health::new();
        health.broker_reachable(true);
        health.member_of_group("orderflow-state");
        let log = |p: i32| ("orderflow.order-events".to_string(), p);
        health.assigned(&[log(0), log(1)], true);
        health.stalled(
            "orderflow.order-events",
            1,
            Some("offset 7: layout 2".into()),
        );
        assert_eq!(
            health.readiness(),
            (
                false,
                "not ready: stopped at a log record: orderflow.order-events[1] at offset 7: layout 2"
                    .into()
            )
        );
        health.stalled("orderflow.order-events", 1, None);
        assert_eq!(
            health.readiness(),
            (true, "ready: 2 partitions live".into())
        );
        // Its new owner meets the record itself.
        health.stalled(
            "orderflow.order-events",
            0,
            Some("offset 3: garbage".into()),
        );
        health.revoked(&[log(0)], false);
        assert_eq!(
            health.readiness(),
            (true, "ready: 1 partitions live".into())
        );
    }
}
