//! Configuration: one TOML file, then environment overrides, then defaults for local use.
//!
//! Unknown keys are refused with their name, so a typo can't silently fall back to a default.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::RuntimeError;

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct Config {
    pub kafka: KafkaConfig,
    pub store: StoreConfig,
    pub consumer: ConsumerConfig,
    pub telemetry: TelemetryConfig,
    pub rules: RulesConfig,
    pub timers: TimersConfig,
    pub display: DisplayConfig,
    /// `orderflow-sync`: the channels' endpoints (read and checked by `orderflow-outbound`,
    /// which names a bad key as `sync.<key>`).
    pub sync: toml::Table,
    /// `orderflow-notify`: group robots and the SMS gateway (read by `orderflow-outbound`).
    pub notify: toml::Table,
    pub gateway: GatewayConfig,
    pub analytics: AnalyticsConfig,
    /// The input contract's size, amount and clock-skew limits (`docs/input-contract.md`).
    pub limits: orderflow_schema::Limits,
}

/// The analytics projection and its dashboard (`orderflow-analytics`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct AnalyticsConfig {
    /// Where the dashboard and its JSON endpoints are served.
    pub listen: SocketAddr,
    /// The dashboard's folder: `node_modules/` (ECharts, installed by `scripts/web.sh`) is
    /// served from here.
    pub web_dir: PathBuf,
    /// An order waiting longer than this in one stage is listed as stuck on the lifecycle board.
    pub stuck_after_minutes: u64,
    /// Days the sales forecast looks ahead.
    pub forecast_horizon_days: u32,
    /// Local time (`HH:MM`, display zone) the daily KPI digest is published on `notifications`;
    /// none if unset.
    pub digest_at: Option<String>,
    /// Publish the flat `order-facts` topic (for ClickHouse's Kafka engine).
    pub order_facts: bool,
    /// A file whose first line keys the phone hash that links one buyer across channels.
    pub customer_key_file: Option<PathBuf>,
}

impl Default for AnalyticsConfig {
    fn default() -> AnalyticsConfig {
        AnalyticsConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8090)),
            web_dir: PathBuf::from("web/dashboard"),
            stuck_after_minutes: 240,
            forecast_horizon_days: 14,
            digest_at: None,
            order_facts: false,
            customer_key_file: None,
        }
    }
}

/// The HTTP gateway (`orderflow-gateway`): where it listens, who may call it, how much it holds.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct GatewayConfig {
    pub listen: SocketAddr,
    /// The credentials file: one entry per calling system, with its secret's source and scope.
    pub credentials: Option<PathBuf>,
    /// Records being produced at once over all requests; a request that would exceed it gets 503.
    pub max_in_flight: usize,
    /// Most records in one batch request.
    pub max_batch: usize,
    /// How long producing a request's records may take before it is answered 503.
    pub produce_timeout_ms: u32,
    /// How far a signed request's timestamp may be from the gateway's clock, in seconds.
    pub signature_window_secs: u64,
    /// How long a stored response is replayed for a repeated idempotency key, in seconds.
    pub idempotency_ttl_secs: u64,
    /// How long a claim on an idempotency key holds before another request may take it over.
    pub idempotency_lease_ms: u64,
    /// The `Retry-After` of a 503, in seconds.
    pub retry_after_secs: u32,
}

impl Default for GatewayConfig {
    fn default() -> GatewayConfig {
        GatewayConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            credentials: None,
            max_in_flight: 2_000,
            max_batch: 500,
            produce_timeout_ms: 5_000,
            signature_window_secs: 300,
            idempotency_ttl_secs: 86_400,
            idempotency_lease_ms: 30_000,
            retry_after_secs: 1,
        }
    }
}

/// How the operator CLI shows times to people. Logs and every Kafka topic stay in UTC.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct DisplayConfig {
    /// The IANA time zone of the shop's people: `orderflow status`, `inspect` and `exceptions`
    /// show times in it, as RFC 3339 with its offset.
    #[serde(deserialize_with = "iana_time_zone", serialize_with = "time_zone_name")]
    pub time_zone: chrono_tz::Tz,
}

impl Default for DisplayConfig {
    fn default() -> DisplayConfig {
        DisplayConfig {
            time_zone: chrono_tz::Asia::Shanghai,
        }
    }
}

fn time_zone_name<S: Serializer>(zone: &chrono_tz::Tz, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(zone.name())
}

fn iana_time_zone<'de, D: Deserializer<'de>>(deserializer: D) -> Result<chrono_tz::Tz, D::Error> {
    let name = String::deserialize(deserializer)?;
    name.parse().map_err(|_| {
        serde::de::Error::custom(format!(
            "{name:?} is not an IANA time zone (e.g. Asia/Shanghai)"
        ))
    })
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct RulesConfig {
    /// The rules file (`docs/rules.md`); the built-in rules when unset. The state consumer
    /// re-reads it when it changes.
    pub path: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct TimersConfig {
    /// How often the state consumer looks for due timers and a changed rules file.
    pub tick_ms: u64,
    /// A file holding the current time (RFC 3339) to use instead of the system clock: for
    /// drills and tests that move time forward without waiting.
    pub clock_file: Option<PathBuf>,
}

impl Default for TimersConfig {
    fn default() -> TimersConfig {
        TimersConfig {
            tick_ms: 1_000,
            clock_file: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct KafkaConfig {
    /// Bootstrap servers, comma separated.
    pub brokers: String,
    /// Prepended to every topic name (`orderflow.` → `orderflow.order-events`).
    pub topic_prefix: String,
    /// Partitions of every topic `orderflow topics create` makes.
    pub partitions: i32,
    pub replication_factor: i32,
    /// Consumer group session timeout. Short in dev/test so a restarted consumer rejoins fast.
    pub session_timeout_ms: u32,
    /// How long a consumer rides out a broker it can't reach: produces are retried that long
    /// (librdkafka's `message.timeout.ms`), and a consumer that has seen no broker for longer
    /// stops with one line naming the brokers, for its supervisor to restart it.
    pub outage_limit_secs: u32,
    /// How long one produce may be retried by the client before it fails; unset, the outage
    /// limit. (The gateway sets its own, shorter: a caller waits for the answer.)
    pub message_timeout_ms: Option<u32>,
    /// How long an operator command (`orderflow status`, `inspect`, ...) waits for a broker to
    /// answer before it gives up with one line naming `kafka.brokers`.
    pub connect_timeout_secs: u32,
    /// `min.insync.replicas` of the topics `orderflow topics create` makes; the broker's
    /// default when unset.
    pub min_insync_replicas: Option<i32>,
    /// `retention.ms` of the topics that are not kept forever (the input topics,
    /// `warehouse-routing`, `notifications`); the broker's default (7 days) when unset.
    pub retention_ms: Option<i64>,
    /// A file holding the SASL password (a mounted secret): its first line becomes
    /// `sasl.password`, so the password never sits in this file or in a process listing.
    pub sasl_password_file: Option<PathBuf>,
    /// How consumers share partitions: `classic` (cooperative-sticky assignment) or `consumer`
    /// (KIP-848, the broker assigns; Kafka 4.0+).
    pub group_protocol: GroupProtocol,
    /// Each consumer joins its group as a static member named after its `--instance`, so a
    /// copy that restarts within the session timeout gets its partitions back and nobody else
    /// is moved.
    pub static_membership: bool,
    /// librdkafka properties for every client (`security.protocol`, `ssl.ca.location`, ...).
    pub client: ClientProperties,
    /// librdkafka properties for the consumers only, over `client`.
    pub consumer: ClientProperties,
    /// librdkafka properties for the producers only, over `client`.
    pub producer: ClientProperties,
    /// librdkafka properties for the admin clients (`orderflow topics`), over `client`.
    pub admin: ClientProperties,
}

/// The consumer group protocol (KIP-848 is `consumer`).
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum GroupProtocol {
    /// JoinGroup/SyncGroup with the cooperative-sticky assignor: a rebalance moves only the
    /// partitions that change owner.
    #[default]
    Classic,
    /// The broker-side protocol of KIP-848 (librdkafka 2.12, Kafka 4.0+): incremental by design.
    Consumer,
}

impl GroupProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupProtocol::Classic => "classic",
            GroupProtocol::Consumer => "consumer",
        }
    }
}

/// librdkafka properties by name (`fetch.wait.max.ms`), from a table such as
/// `[kafka.consumer]`. A key may be quoted (`"fetch.wait.max.ms" = 500`) or dotted
/// (`fetch.wait.max.ms = 500`, which TOML reads as nested tables); values are strings,
/// numbers or booleans, passed to librdkafka as text.
///
/// Secret values (passwords, private keys, client secrets) are never shown: `Debug` and
/// `Serialize` print `<redacted>` in their place, so neither a log line nor
/// `orderflow config show` can leak them.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ClientProperties(BTreeMap<String, String>);

/// What stands in for a secret wherever a config is shown.
pub const REDACTED: &str = "<redacted>";

impl ClientProperties {
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.insert(name.into(), value.into());
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn shown(&self) -> BTreeMap<&str, &str> {
        self.iter()
            .map(|(name, value)| (name, if is_secret(name) { REDACTED } else { value }))
            .collect()
    }
}

/// Whether a librdkafka property holds a secret that must never be printed.
pub fn is_secret(property: &str) -> bool {
    let name = property.to_ascii_lowercase();
    ["password", "secret", "private.key", "key.pem"]
        .iter()
        .any(|part| name.contains(part))
        || name == "sasl.oauthbearer.config"
}

impl std::fmt::Debug for ClientProperties {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.shown()).finish()
    }
}

impl Serialize for ClientProperties {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.shown().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ClientProperties {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ClientProperties, D::Error> {
        fn flatten(
            prefix: &str,
            table: toml::Table,
            into: &mut BTreeMap<String, String>,
        ) -> Result<(), String> {
            for (key, value) in table {
                let name = if prefix.is_empty() {
                    key
                } else {
                    format!("{prefix}.{key}")
                };
                let text = match value {
                    toml::Value::String(text) => text,
                    toml::Value::Integer(number) => number.to_string(),
                    toml::Value::Float(number) => number.to_string(),
                    toml::Value::Boolean(flag) => flag.to_string(),
                    toml::Value::Table(inner) => {
                        flatten(&name, inner, into)?;
                        continue;
                    }
                    toml::Value::Array(_) | toml::Value::Datetime(_) => {
                        return Err(format!(
                            "{name}: a librdkafka property is a string, number or boolean \
                             (write a list as one comma-separated string)"
                        ))
                    }
                };
                into.insert(name, text);
            }
            Ok(())
        }
        let table = toml::Table::deserialize(deserializer)?;
        let mut properties = BTreeMap::new();
        flatten("", table, &mut properties).map_err(serde::de::Error::custom)?;
        Ok(ClientProperties(properties))
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct StoreConfig {
    /// Each consumer keeps its local state in `{data-dir}/{consumer}-{instance}`.
    pub data_dir: PathBuf,
    /// Hours of event time an event id is remembered for dedupe (intake index, skus, buyers).
    pub dedup_window_hours: u32,
    /// Hours of event time a closed order stays in the state store after its last event.
    pub closed_order_retention_hours: u32,
}

impl StoreConfig {
    /// Where a copy of `consumer` keeps its local state: `{data-dir}/{consumer}-{instance}`.
    pub fn dir_of(&self, consumer: &str, instance: &str) -> PathBuf {
        self.data_dir.join(format!("{consumer}-{instance}"))
    }

    pub fn retention(&self) -> orderflow_store::Retention {
        orderflow_store::Retention::from_hours(
            self.dedup_window_hours,
            self.closed_order_retention_hours,
        )
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct ConsumerConfig {
    /// Most records processed (and made durable) together.
    pub max_batch: usize,
    /// Bytes of entities the state consumer (and a replay) keeps in memory between batches;
    /// unset: an eighth of the memory available at start, between 64 MiB and 1 GiB.
    pub cache_bytes: Option<u64>,
    /// Replaced by `cache-bytes`; read only to say so.
    #[serde(skip_serializing)]
    cache_entities: Option<serde::de::IgnoredAny>,
    /// Records of `order-events` that can't be read and that an operator chose to pass over,
    /// as `"partition@offset"`: the state consumer dead-letters each and goes on, a replay
    /// skips them too. Any other unreadable record stops its partition.
    pub skip_log_records: crate::fold::LogSkips,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct TelemetryConfig {
    /// Where `/metrics` (Prometheus text) is served; none if unset.
    pub metrics_listen: Option<SocketAddr>,
    /// `text` for people, `json` for log pipelines.
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The longest `kafka.outage-limit-secs`: librdkafka's `message.timeout.ms` is an i32 of ms.
pub const MAX_OUTAGE_LIMIT_SECS: u32 = 2_147_483;

impl KafkaConfig {
    /// `kafka.outage-limit-secs` as a duration.
    pub fn outage_limit(&self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::from(self.outage_limit_secs))
    }
}

impl Default for KafkaConfig {
    fn default() -> KafkaConfig {
        KafkaConfig {
            brokers: "127.0.0.1:9092".into(),
            topic_prefix: "orderflow.".into(),
            partitions: 6,
            replication_factor: 1,
            session_timeout_ms: 6_000,
            outage_limit_secs: 300,
            message_timeout_ms: None,
            connect_timeout_secs: 10,
            min_insync_replicas: None,
            retention_ms: None,
            sasl_password_file: None,
            group_protocol: GroupProtocol::Classic,
            static_membership: true,
            client: ClientProperties::default(),
            consumer: ClientProperties::default(),
            producer: ClientProperties::default(),
            admin: ClientProperties::default(),
        }
    }
}

impl Default for StoreConfig {
    fn default() -> StoreConfig {
        StoreConfig {
            data_dir: PathBuf::from("var"),
            dedup_window_hours: 7 * 24,
            closed_order_retention_hours: 30 * 24,
        }
    }
}

impl ConsumerConfig {
    /// The entity cache's budget: `cache-bytes`, or an eighth of `MemAvailable` in
    /// `/proc/meminfo` between 64 MiB and 1 GiB (256 MiB where there is no such file).
    pub fn cache_bytes(&self) -> usize {
        const MIB: u64 = 1 << 20;
        let bytes = self.cache_bytes.unwrap_or_else(|| {
            let available_kib = std::fs::read_to_string("/proc/meminfo")
                .ok()
                .and_then(|info| {
                    info.lines()
                        .find_map(|line| line.strip_prefix("MemAvailable:"))
                        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
                });
            available_kib.map_or(256 * MIB, |kib: u64| {
                (kib * 1024 / 8).clamp(64 * MIB, 1024 * MIB)
            })
        });
        usize::try_from(bytes).unwrap_or(usize::MAX)
    }
}

impl Default for ConsumerConfig {
    fn default() -> ConsumerConfig {
        ConsumerConfig {
            max_batch: 1_000,
            cache_bytes: None,
            cache_entities: None,
            skip_log_records: crate::fold::LogSkips::default(),
        }
    }
}

/// librdkafka's default `message.max.bytes`: the largest record a producer sends.
const LIBRDKAFKA_MESSAGE_MAX_BYTES: usize = 1_000_000;

/// The environment variables that override the file, and the key each one sets.
pub const ENV_OVERRIDES: &[(&str, &str)] = &[
    ("ORDERFLOW_BROKERS", "kafka.brokers"),
    ("ORDERFLOW_TOPIC_PREFIX", "kafka.topic-prefix"),
    ("ORDERFLOW_PARTITIONS", "kafka.partitions"),
    ("ORDERFLOW_DATA_DIR", "store.data-dir"),
    ("ORDERFLOW_METRICS_LISTEN", "telemetry.metrics-listen"),
    ("ORDERFLOW_LOG_FORMAT", "telemetry.log-format"),
    ("ORDERFLOW_RULES", "rules.path"),
    ("ORDERFLOW_CLOCK_FILE", "timers.clock-file"),
    ("ORDERFLOW_TICK_MS", "timers.tick-ms"),
    ("ORDERFLOW_MAX_BATCH", "consumer.max-batch"),
    ("ORDERFLOW_CACHE_BYTES", "consumer.cache-bytes"),
    ("ORDERFLOW_SKIP_LOG_RECORDS", "consumer.skip-log-records"),
    ("ORDERFLOW_DISPLAY_TIME_ZONE", "display.time-zone"),
    ("ORDERFLOW_REPLICATION_FACTOR", "kafka.replication-factor"),
    ("ORDERFLOW_MIN_INSYNC_REPLICAS", "kafka.min-insync-replicas"),
    ("ORDERFLOW_RETENTION_MS", "kafka.retention-ms"),
    ("ORDERFLOW_SESSION_TIMEOUT_MS", "kafka.session-timeout-ms"),
    ("ORDERFLOW_OUTAGE_LIMIT_SECS", "kafka.outage-limit-secs"),
    (
        "ORDERFLOW_CONNECT_TIMEOUT_SECS",
        "kafka.connect-timeout-secs",
    ),
    (
        "ORDERFLOW_KAFKA_SASL_PASSWORD_FILE",
        "kafka.sasl-password-file",
    ),
    ("ORDERFLOW_GROUP_PROTOCOL", "kafka.group-protocol"),
    ("ORDERFLOW_STATIC_MEMBERSHIP", "kafka.static-membership"),
    ("ORDERFLOW_GATEWAY_LISTEN", "gateway.listen"),
    ("ORDERFLOW_GATEWAY_CREDENTIALS", "gateway.credentials"),
    ("ORDERFLOW_ANALYTICS_LISTEN", "analytics.listen"),
    ("ORDERFLOW_MAX_RECORD_BYTES", "limits.max-record-bytes"),
    (
        "ORDERFLOW_MAX_FUTURE_SKEW_SECS",
        "limits.max-future-skew-secs",
    ),
];

impl Config {
    /// Reads `path` (if given) and applies the environment overrides: the variables of
    /// [`ENV_OVERRIDES`] and the librdkafka properties of [`CLIENT_PROPERTY_VARIABLES`].
    pub fn load(path: Option<&Path>) -> Result<Config, RuntimeError> {
        // (vars_os: a variable that isn't Unicode is someone else's, and must not panic us)
        let vars = std::env::vars_os().filter_map(|(name, value)| {
            Some((name.into_string().ok()?, value.into_string().ok()?))
        });
        Config::load_from_env(path, vars)
    }

    /// [`Config::load`] with the whole environment passed in, for tests.
    pub fn load_from_env(
        path: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, RuntimeError> {
        let vars: BTreeMap<String, String> = vars.into_iter().collect();
        let properties = client_property_variables(&vars)?;
        Config::load_inner(path, |name| vars.get(name).cloned(), properties)
    }

    /// [`Config::load`] with the fixed-name variables passed in as a lookup, for tests.
    pub fn load_with(
        path: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, RuntimeError> {
        Config::load_inner(path, env, Vec::new())
    }

    fn load_inner(
        path: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
        properties: Vec<(&'static str, String, String)>,
    ) -> Result<Config, RuntimeError> {
        let mut document = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|error| {
                    RuntimeError::Config(format!(
                        "config file {} could not be read: {error}",
                        path.display()
                    ))
                })?;
                text.parse::<toml::Table>().map_err(|error| {
                    RuntimeError::Config(format!(
                        "config file {} is not valid TOML: {}",
                        path.display(),
                        error.message()
                    ))
                })?
            }
            None => toml::Table::new(),
        };
        for (variable, key) in ENV_OVERRIDES {
            if let Some(raw) = env(variable) {
                set_override(&mut document, key, &raw);
            }
        }
        for (role, property, value) in properties {
            set_property(&mut document, role, property, value);
        }
        let origin = path.map_or_else(|| "configuration".to_string(), |p| p.display().to_string());
        let config: Config = serde_path_to_error::deserialize(toml::Value::Table(document))
            .map_err(|error| {
                let path = error.path().to_string();
                let message = error.inner().message().trim_end().to_string();
                RuntimeError::Config(if path == "." {
                    format!("{origin}: {message}")
                } else {
                    format!("{origin}: {path}: {message}")
                })
            })?;
        let mut config = config;
        config.kafka.read_password_file()?;
        config.check()?;
        Ok(config)
    }

    /// The effective configuration as TOML, secrets redacted: what `orderflow config show`
    /// prints.
    pub fn to_redacted_toml(&self) -> Result<String, RuntimeError> {
        let mut value = toml::Value::try_from(self)
            .map_err(|error| RuntimeError::Fatal(format!("showing the configuration: {error}")))?;
        redact(&mut value);
        toml::to_string_pretty(&value)
            .map_err(|error| RuntimeError::Fatal(format!("showing the configuration: {error}")))
    }

    fn check(&self) -> Result<(), RuntimeError> {
        let fail = |message: &str| Err(RuntimeError::Config(message.to_string()));
        if self.kafka.brokers.trim().is_empty() {
            return fail("kafka.brokers must name at least one host:port");
        }
        if self.kafka.partitions < 1 {
            return fail("kafka.partitions must be at least 1");
        }
        if self.kafka.replication_factor < 1 {
            return fail("kafka.replication-factor must be at least 1");
        }
        if let Some(min_insync) = self.kafka.min_insync_replicas {
            if min_insync < 1 || min_insync > self.kafka.replication_factor {
                return fail(
                    "kafka.min-insync-replicas must be at least 1 and at most kafka.replication-factor",
                );
            }
        }
        if !(1..=MAX_OUTAGE_LIMIT_SECS).contains(&self.kafka.outage_limit_secs) {
            return fail(&format!(
                "kafka.outage-limit-secs must be between 1 and {MAX_OUTAGE_LIMIT_SECS} (librdkafka's message.timeout.ms limit)"
            ));
        }
        if self.kafka.connect_timeout_secs == 0 {
            return fail("kafka.connect-timeout-secs must be at least 1");
        }
        if self.kafka.retention_ms.is_some_and(|ms| ms == 0 || ms < -1) {
            return fail("kafka.retention-ms must be positive, or -1 to keep records forever");
        }
        crate::kafka::check_properties(&self.kafka)?;
        self.limits.check().map_err(RuntimeError::Config)?;
        // A dead letter must fit what the producer sends.
        let producer_max = self
            .kafka
            .producer
            .get("message.max.bytes")
            .or_else(|| self.kafka.client.get("message.max.bytes"))
            .and_then(|value| value.parse::<usize>().ok())
            .unwrap_or(LIBRDKAFKA_MESSAGE_MAX_BYTES);
        if self.limits.max_dead_letter_bytes > producer_max {
            return Err(RuntimeError::Config(format!(
                "limits.max-dead-letter-bytes ({}) must be at most the producer's message.max.bytes ({producer_max}), or a dead letter could be refused",
                self.limits.max_dead_letter_bytes
            )));
        }
        if self.consumer.max_batch == 0 {
            return fail("consumer.max-batch must be at least 1");
        }
        if self.consumer.cache_entities.is_some() {
            return fail("consumer.cache-entities is no longer read: the entity cache is bounded in bytes, set consumer.cache-bytes instead (or leave it out for an eighth of the available memory)");
        }
        if self.consumer.cache_bytes == Some(0) {
            return fail("consumer.cache-bytes must be at least 1");
        }
        if self.store.dedup_window_hours == 0 || self.store.closed_order_retention_hours == 0 {
            return fail(
                "store.dedup-window-hours and store.closed-order-retention-hours must be at least 1",
            );
        }
        if self.timers.tick_ms == 0 {
            return fail("timers.tick-ms must be at least 1");
        }
        let gateway = &self.gateway;
        if gateway.max_in_flight == 0 {
            return fail("gateway.max-in-flight must be at least 1");
        }
        if gateway.max_batch == 0 || gateway.max_batch > gateway.max_in_flight {
            return fail("gateway.max-batch must be at least 1 and at most gateway.max-in-flight");
        }
        if gateway.produce_timeout_ms == 0 {
            return fail("gateway.produce-timeout-ms must be at least 1");
        }
        if gateway.idempotency_lease_ms <= u64::from(gateway.produce_timeout_ms) {
            return fail(
                "gateway.idempotency-lease-ms must be longer than gateway.produce-timeout-ms",
            );
        }
        if gateway.idempotency_ttl_secs == 0 || gateway.idempotency_ttl_secs > 7 * 86_400 {
            return fail(
                "gateway.idempotency-ttl-secs must be 1 to 604800 (the topic keeps keys a week)",
            );
        }
        Ok(())
    }
}

/// The variables that set librdkafka properties: `ORDERFLOW_KAFKA_{ROLE}__{PROPERTY}`, where
/// ROLE is the table (`CLIENT`, `CONSUMER`, `PRODUCER`, `ADMIN`) and PROPERTY the property's
/// name upper-cased with `_` for `.`: `ORDERFLOW_KAFKA_CONSUMER__FETCH_WAIT_MAX_MS=500` sets
/// `fetch.wait.max.ms` in `[kafka.consumer]`. The value is passed as it is, as text.
pub const CLIENT_PROPERTY_VARIABLES: &[(&str, &str)] = &[
    ("ORDERFLOW_KAFKA_CLIENT__", "client"),
    ("ORDERFLOW_KAFKA_CONSUMER__", "consumer"),
    ("ORDERFLOW_KAFKA_PRODUCER__", "producer"),
    ("ORDERFLOW_KAFKA_ADMIN__", "admin"),
];

/// (table, property, value) of every `ORDERFLOW_KAFKA_{ROLE}__{PROPERTY}` variable.
fn client_property_variables(
    vars: &BTreeMap<String, String>,
) -> Result<Vec<(&'static str, String, String)>, RuntimeError> {
    let mut found = Vec::new();
    for (name, value) in vars {
        let Some((prefix, role)) = CLIENT_PROPERTY_VARIABLES
            .iter()
            .find(|(prefix, _)| name.starts_with(prefix))
        else {
            continue;
        };
        let property = name[prefix.len()..].to_ascii_lowercase().replace('_', ".");
        if property.is_empty() || property.split('.').any(str::is_empty) {
            return Err(RuntimeError::Config(format!(
                "{name} names no librdkafka property (write e.g. {prefix}FETCH_WAIT_MAX_MS)"
            )));
        }
        found.push((*role, property, value.clone()));
    }
    Ok(found)
}

/// Sets `kafka.{role}` property `name` (a literal key, dots and all) to `value`, as text.
fn set_property(document: &mut toml::Table, role: &str, name: String, value: String) {
    let kafka = document
        .entry("kafka")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if !kafka.is_table() {
        // The file's own error (kafka is not a table) is reported when it is read.
        return;
    }
    if let toml::Value::Table(kafka) = kafka {
        let table = kafka
            .entry(role)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if let toml::Value::Table(table) = table {
            table.insert(name, toml::Value::String(value));
        }
    }
}

/// Replaces the value of every secret in a config document with [`REDACTED`]: librdkafka's
/// secrets (already redacted by [`ClientProperties`]) and any key that names a password,
/// secret, token or private key, whichever section it is in.
fn redact(value: &mut toml::Value) {
    if let toml::Value::Table(table) = value {
        for (key, inner) in table.iter_mut() {
            let lower = key.to_ascii_lowercase();
            let secret = !lower.ends_with("-file")
                && (is_secret(&lower)
                    || ["token", "api-key", "signing-key"]
                        .iter()
                        .any(|part| lower.contains(part)));
            if secret && !inner.is_table() {
                *inner = toml::Value::String(REDACTED.to_string());
            } else {
                redact(inner);
            }
        }
    }
}

impl KafkaConfig {
    /// Reads `sasl-password-file` into the `sasl.password` property.
    fn read_password_file(&mut self) -> Result<(), RuntimeError> {
        // (an empty ORDERFLOW_KAFKA_SASL_PASSWORD_FILE unsets it)
        if self
            .sasl_password_file
            .as_ref()
            .is_some_and(|path| path.as_os_str().is_empty())
        {
            self.sasl_password_file = None;
        }
        let Some(path) = &self.sasl_password_file else {
            return Ok(());
        };
        if self.client.get("sasl.password").is_some() {
            return Err(RuntimeError::Config(
                "kafka.sasl-password-file and the sasl.password property are both set; keep one"
                    .into(),
            ));
        }
        let text = std::fs::read_to_string(path).map_err(|error| {
            RuntimeError::Config(format!(
                "kafka.sasl-password-file {} could not be read: {error}",
                path.display()
            ))
        })?;
        let password = text.lines().next().unwrap_or_default();
        if password.is_empty() {
            return Err(RuntimeError::Config(format!(
                "kafka.sasl-password-file {} is empty",
                path.display()
            )));
        }
        self.client.insert("sasl.password", password);
        Ok(())
    }
}

/// Puts an environment value at a dotted key, typed as the TOML literal it reads as (a number
/// stays a number) or else as a string.
fn set_override(document: &mut toml::Table, dotted: &str, raw: &str) {
    let value = format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut table| table.remove("v"))
        .filter(|value| !value.is_table())
        .unwrap_or_else(|| toml::Value::String(raw.to_string()));
    let mut table = document;
    let mut parts = dotted.split('.').peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            table.insert(part.to_string(), value);
            return;
        }
        let entry = table
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        match entry {
            toml::Value::Table(inner) => table = inner,
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        file
    }

    #[test]
    fn defaults_work_without_a_file() {
        let config = Config::load_with(None, |_| None).unwrap();
        assert_eq!(config.kafka.topic_prefix, "orderflow.");
        assert_eq!(config.rules.path, None);
        assert_eq!(config.timers.tick_ms, 1_000);
        assert_eq!(config.display.time_zone, chrono_tz::Asia::Shanghai);
    }

    #[test]
    fn a_dead_letter_must_fit_what_the_producer_sends() {
        let small = file("[kafka.producer]\n\"message.max.bytes\" = 20000\n");
        let error = Config::load_with(Some(small.path()), |_| None).unwrap_err();
        assert!(
            error.to_string().starts_with(
                "limits.max-dead-letter-bytes (786432) must be at most the producer's message.max.bytes (20000)"
            ),
            "{error}"
        );
        let fits = file(
            "[kafka.producer]\n\"message.max.bytes\" = 20000\n[limits]\nmax-dead-letter-bytes = 16384\n",
        );
        let config = Config::load_with(Some(fits.path()), |_| None).unwrap();
        assert_eq!(config.limits.max_dead_letter_bytes, 16_384);
    }

    #[test]
    fn the_display_zone_is_an_iana_name() {
        let toml = file("[display]\ntime-zone = \"Europe/Berlin\"\n");
        let config = Config::load_with(Some(toml.path()), |_| None).unwrap();
        assert_eq!(config.display.time_zone, chrono_tz::Europe::Berlin);
        let config = Config::load_with(Some(toml.path()), |name| {
            (name == "ORDERFLOW_DISPLAY_TIME_ZONE").then(|| "UTC".to_string())
        })
        .unwrap();
        assert_eq!(config.display.time_zone, chrono_tz::UTC);

        let error = Config::load_with(None, |name| {
            (name == "ORDERFLOW_DISPLAY_TIME_ZONE").then(|| "Mars/Base".to_string())
        })
        .unwrap_err();
        assert!(
            matches!(error, RuntimeError::Config(_)),
            "not a usage error"
        );
        assert_eq!(
            error.to_string(),
            "configuration: display.time-zone: \"Mars/Base\" is not an IANA time zone (e.g. Asia/Shanghai)"
        );
    }

    #[test]
    fn environment_overrides_the_file() {
        let toml = file("[kafka]\nbrokers = \"a:1\"\npartitions = 3\n");
        let config = Config::load_with(Some(toml.path()), |name| match name {
            "ORDERFLOW_BROKERS" => Some("b:2,c:3".into()),
            "ORDERFLOW_PARTITIONS" => Some("12".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(config.kafka.brokers, "b:2,c:3");
        assert_eq!(config.kafka.partitions, 12);
    }

    #[test]
    fn limits_are_read_checked_and_overridden() {
        let toml = file("[limits]\nmax-lines = 50\nmax-amount-fen = 100000\n");
        let config = Config::load_with(Some(toml.path()), |name| {
            (name == "ORDERFLOW_MAX_FUTURE_SKEW_SECS").then(|| "60".into())
        })
        .unwrap();
        assert_eq!(config.limits.max_lines, 50);
        assert_eq!(config.limits.max_amount_fen, 100_000);
        assert_eq!(config.limits.max_future_skew_secs, 60);
        assert_eq!(
            config.limits.max_text_bytes,
            orderflow_schema::Limits::default().max_text_bytes
        );
        let zero = file("[limits]\nmax-collection = 0\n");
        let error = Config::load_with(Some(zero.path()), |_| None).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("limits.max-collection must be at least 1"),
            "{error}"
        );
        let typo = file("[limits]\nmax-line = 5\n");
        let error = Config::load_with(Some(typo.path()), |_| None).unwrap_err();
        assert!(error.to_string().contains("max-line"), "{error}");
    }

    #[test]
    fn the_cache_is_sized_in_bytes_and_the_old_entity_count_is_refused_naming_the_new_field() {
        let toml = file("[consumer]\ncache-entities = 50000\n");
        let error = Config::load_with(Some(toml.path()), |_| None)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("consumer.cache-entities is no longer read")
                && error.contains("set consumer.cache-bytes instead"),
            "{error}"
        );
        let config = Config::load_with(None, |name| {
            (name == "ORDERFLOW_CACHE_BYTES").then(|| "1048576".to_string())
        })
        .unwrap();
        assert_eq!(config.consumer.cache_bytes(), 1_048_576);
        let derived = Config::default().consumer.cache_bytes();
        assert!((64 << 20..=1 << 30).contains(&derived), "{derived}");
    }

    #[test]
    fn retention_is_in_hours_of_event_time() {
        let toml = file("[store]\ndedup-window-hours = 24\nclosed-order-retention-hours = 48\n");
        let config = Config::load_with(Some(toml.path()), |_| None).unwrap();
        assert_eq!(
            config.store.retention(),
            orderflow_store::Retention::from_hours(24, 48)
        );
        let toml = file("[store]\ndedup-window-hours = 0\n");
        let error = Config::load_with(Some(toml.path()), |_| None)
            .unwrap_err()
            .to_string();
        assert!(error.contains("store.dedup-window-hours"), "{error}");
    }

    #[test]
    fn an_unknown_key_is_refused_by_name() {
        let toml = file("[kafka]\nbrokerz = \"a:1\"\n");
        let error = Config::load_with(Some(toml.path()), |_| None)
            .unwrap_err()
            .to_string();
        assert!(error.contains("unknown field `brokerz`"), "{error}");
    }

    #[test]
    fn a_wrong_type_names_the_field() {
        let error = Config::load_with(None, |name| {
            (name == "ORDERFLOW_PARTITIONS").then(|| "many".to_string())
        })
        .unwrap_err()
        .to_string();
        assert!(error.contains("partitions"), "{error}");
        let error = Config::load_with(None, |name| {
            (name == "ORDERFLOW_PARTITIONS").then(|| "0".into())
        })
        .unwrap_err()
        .to_string();
        assert_eq!(error, "kafka.partitions must be at least 1");
    }

    #[test]
    fn the_outage_limit_is_the_producers_delivery_timeout_unless_one_is_set() {
        let config = Config::load_with(None, |name| {
            (name == "ORDERFLOW_OUTAGE_LIMIT_SECS").then(|| "45".to_string())
        })
        .unwrap();
        assert_eq!(config.kafka.outage_limit().as_secs(), 45);
        let producer = crate::kafka::producer_config(&config.kafka);
        assert_eq!(producer.get("message.timeout.ms"), Some("45000"));
        let error = Config::load_with(None, |name| {
            (name == "ORDERFLOW_OUTAGE_LIMIT_SECS").then(|| "0".to_string())
        })
        .unwrap_err()
        .to_string();
        assert!(
            error.starts_with("kafka.outage-limit-secs must be between 1 and"),
            "{error}"
        );
    }

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    #[test]
    fn client_properties_come_from_tables_and_variables() {
        let toml = file(
            "[kafka.client]\n\"security.protocol\" = \"SASL_SSL\"\nsasl.mechanism = \"SCRAM-SHA-512\"\n\
             [kafka.consumer]\nfetch.wait.max.ms = 200\n[kafka.producer]\n\"linger.ms\" = 20\n\
             \"enable.gapless.guarantee\" = false\n",
        );
        let config = Config::load_from_env(
            Some(toml.path()),
            vars(&[
                ("ORDERFLOW_KAFKA_CONSUMER__FETCH_WAIT_MAX_MS", "500"),
                ("ORDERFLOW_KAFKA_ADMIN__REQUEST_TIMEOUT_MS", "9000"),
                ("ORDERFLOW_KAFKA_CLIENT__SASL_USERNAME", "shop"),
            ]),
        )
        .unwrap();
        let kafka = &config.kafka;
        assert_eq!(kafka.client.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(kafka.client.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(kafka.client.get("sasl.username"), Some("shop"));
        assert_eq!(
            kafka.consumer.get("fetch.wait.max.ms"),
            Some("500"),
            "the environment wins"
        );
        assert_eq!(kafka.producer.get("linger.ms"), Some("20"));
        assert_eq!(
            kafka.producer.get("enable.gapless.guarantee"),
            Some("false")
        );
        assert_eq!(kafka.admin.get("request.timeout.ms"), Some("9000"));
        let settings = crate::kafka::producer_config(kafka);
        assert_eq!(settings.get("linger.ms"), Some("20"));
        assert_eq!(settings.get("acks"), Some("all"));
        assert_eq!(settings.get("security.protocol"), Some("SASL_SSL"));
    }

    #[test]
    fn orderflows_own_properties_are_refused_by_name() {
        for (variable, key) in [
            (
                "ORDERFLOW_KAFKA_CONSUMER__ENABLE_AUTO_COMMIT",
                "enable.auto.commit",
            ),
            ("ORDERFLOW_KAFKA_CLIENT__GROUP_ID", "group.id"),
            ("ORDERFLOW_KAFKA_PRODUCER__ACKS", "acks"),
            (
                "ORDERFLOW_KAFKA_CLIENT__BOOTSTRAP_SERVERS",
                "bootstrap.servers",
            ),
        ] {
            let error = Config::load_from_env(None, vars(&[(variable, "1")])).unwrap_err();
            assert!(matches!(error, RuntimeError::Config(_)), "{error:?}");
            let text = error.to_string();
            assert!(
                text.contains(&format!(
                    ": {key} is orderflow's to set and can't be overridden ("
                )),
                "{text}"
            );
            assert_eq!(text.lines().count(), 1, "{text}");
        }
    }

    #[test]
    fn an_unknown_or_bad_property_is_refused_with_librdkafkas_reason() {
        let error = Config::load_from_env(
            None,
            vars(&[("ORDERFLOW_KAFKA_CONSUMER__FETCH_WAIT_MAX_MSS", "1")]),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            error,
            "kafka.consumer: No such configuration property: \"fetch.wait.max.mss\""
        );
        let toml = file("[kafka.client]\nsecurity.protocol = \"carrier-pigeon\"\n");
        let error = Config::load_from_env(Some(toml.path()), Vec::new())
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("kafka.client: "), "{error}");
        assert!(error.contains("security.protocol"), "{error}");
        let toml = file("[kafka.client]\n\"sasl.kerberos.principal\" = [\"a\"]\n");
        let error = Config::load_from_env(Some(toml.path()), Vec::new())
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("a librdkafka property is a string"),
            "{error}"
        );
    }

    #[test]
    fn the_password_file_becomes_sasl_password_and_is_never_shown() {
        let secret = file("s3cr3t-from-file\n");
        let path = secret.path().to_str().unwrap().to_string();
        let config = Config::load_from_env(
            None,
            vars(&[
                ("ORDERFLOW_KAFKA_SASL_PASSWORD_FILE", &path),
                ("ORDERFLOW_KAFKA_CLIENT__SASL_USERNAME", "shop"),
                ("ORDERFLOW_KAFKA_CLIENT__SSL_KEY_PASSWORD", "key-secret"),
            ]),
        )
        .unwrap();
        assert_eq!(
            config.kafka.client.get("sasl.password"),
            Some("s3cr3t-from-file")
        );
        let shown = config.to_redacted_toml().unwrap();
        let debugged = format!("{config:?}");
        for text in [&shown, &debugged] {
            assert!(!text.contains("s3cr3t"), "{text}");
            assert!(!text.contains("key-secret"), "{text}");
            assert!(text.contains(REDACTED), "{text}");
            assert!(text.contains("shop"), "{text}");
        }
        assert!(
            shown.contains("\"sasl.password\" = \"<redacted>\""),
            "{shown}"
        );
        assert!(
            shown.contains(&format!("sasl-password-file = {path:?}")),
            "{shown}"
        );

        let both = Config::load_from_env(
            None,
            vars(&[
                ("ORDERFLOW_KAFKA_SASL_PASSWORD_FILE", &path),
                ("ORDERFLOW_KAFKA_CLIENT__SASL_PASSWORD", "inline"),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            both,
            "kafka.sasl-password-file and the sasl.password property are both set; keep one"
        );
        let missing = Config::load_from_env(
            None,
            vars(&[("ORDERFLOW_KAFKA_SASL_PASSWORD_FILE", "/nonexistent/secret")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            missing.starts_with("kafka.sasl-password-file /nonexistent/secret could not be read: "),
            "{missing}"
        );
    }

    #[test]
    fn the_shown_config_reads_back_as_the_same_config() {
        let toml = file(
            "[kafka]\nbrokers = \"b:9093\"\ngroup-protocol = \"consumer\"\nmin-insync-replicas = 1\n\
             [kafka.consumer]\n\"fetch.wait.max.ms\" = 200\n",
        );
        let config = Config::load_from_env(Some(toml.path()), Vec::new()).unwrap();
        assert_eq!(config.kafka.group_protocol, GroupProtocol::Consumer);
        let shown = file(&config.to_redacted_toml().unwrap());
        let again = Config::load_from_env(Some(shown.path()), Vec::new()).unwrap();
        assert_eq!(again.kafka.brokers, "b:9093");
        assert_eq!(again.kafka.consumer, config.kafka.consumer);
        assert_eq!(again.kafka.min_insync_replicas, Some(1));
        assert_eq!(again.display.time_zone, config.display.time_zone);
    }

    #[test]
    fn topic_settings_are_checked() {
        let error = Config::load_with(None, |name| {
            (name == "ORDERFLOW_MIN_INSYNC_REPLICAS").then(|| "2".to_string())
        })
        .unwrap_err()
        .to_string();
        assert_eq!(
            error,
            "kafka.min-insync-replicas must be at least 1 and at most kafka.replication-factor"
        );
    }
}
