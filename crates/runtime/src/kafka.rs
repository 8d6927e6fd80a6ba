//! Topic names and Kafka client settings shared by every binary: the clients' properties
//! (orderflow's own, then the `[kafka.*]` tables), the connection check that turns a refused
//! login or an untrusted certificate into one sentence, and the topics' settings.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureProducer;
use rdkafka::types::RDKafkaErrorCode;
use tracing::{debug, error, info, warn};

use crate::config::{is_secret, ClientProperties, KafkaConfig};
use crate::RuntimeError;

/// Every topic of a deployment, prefix applied.
#[derive(Debug, Clone)]
pub struct Topics {
    pub prefix: String,
}

impl Topics {
    pub fn new(prefix: &str) -> Topics {
        Topics {
            prefix: prefix.to_string(),
        }
    }

    pub fn name(&self, topic: &str) -> String {
        format!("{}{topic}", self.prefix)
    }

    pub fn order_events(&self) -> String {
        self.name("order-events")
    }

    pub fn order_state(&self) -> String {
        self.name("order-state")
    }

    pub fn exceptions(&self) -> String {
        self.name("exceptions")
    }

    pub fn dlq(&self) -> String {
        self.name("dlq")
    }

    /// Which dead letters `orderflow dlq redrive` sent back: one record per dead letter, keyed
    /// `{partition}/{offset}` of the `dlq` record (compacted).
    pub fn dlq_redriven(&self) -> String {
        self.name("dlq.redriven")
    }

    pub fn notifications(&self) -> String {
        self.name("notifications")
    }

    pub fn warehouse_routing(&self) -> String {
        self.name("warehouse-routing")
    }

    /// The gateway's idempotency keys: claims and stored responses, keyed by credential and key.
    pub fn gateway_idempotency(&self) -> String {
        self.name("gateway.idempotency")
    }

    /// Every topic with the configs it is created with.
    pub fn all(&self) -> Vec<(String, Vec<(&'static str, &'static str)>)> {
        let plain = |topic: &str| (self.name(topic), vec![]);
        vec![
            plain("in.orders"),
            plain("in.payments"),
            plain("in.shipments"),
            plain("in.inventory"),
            plain("in.actions"),
            // The log is the truth: never deleted, never compacted.
            (
                self.order_events(),
                vec![("retention.ms", "-1"), ("retention.bytes", "-1")],
            ),
            // Latest snapshot per order is all a reader needs.
            (self.order_state(), vec![("cleanup.policy", "compact")]),
            // `orderflow exceptions` reports over all time (open exceptions, handling times,
            // recurrence): kept as long as the log.
            (
                self.exceptions(),
                vec![("retention.ms", "-1"), ("retention.bytes", "-1")],
            ),
            plain("warehouse-routing"),
            plain("notifications"),
            (self.dlq(), vec![("retention.ms", "-1")]),
            // The latest marker per dead letter is all a redrive needs, kept as long as the dlq.
            (
                self.dlq_redriven(),
                vec![("cleanup.policy", "compact"), ("retention.ms", "-1")],
            ),
            // The latest record per key is the answer; kept a week (the gateway replays a
            // stored response for `gateway.idempotency-ttl-secs`, at most that long), and never
            // compacted while a claim on it can still be in flight.
            (
                self.gateway_idempotency(),
                vec![
                    ("cleanup.policy", "compact,delete"),
                    ("retention.ms", "604800000"),
                    ("min.compaction.lag.ms", "3600000"),
                ],
            ),
        ]
    }
}

/// Properties orderflow sets itself, refused in every `[kafka.*]` table: what each is for.
pub const OWNED_PROPERTIES: &[(&str, &str)] = &[
    ("bootstrap.servers", "set the brokers with kafka.brokers or ORDERFLOW_BROKERS"),
    ("metadata.broker.list", "set the brokers with kafka.brokers or ORDERFLOW_BROKERS"),
    ("group.id", "each consumer's group is the topic prefix and the consumer's name"),
    ("group.instance.id", "it is the group and --instance; kafka.static-membership turns it off"),
    ("group.protocol", "set it with kafka.group-protocol"),
    ("session.timeout.ms", "set it with kafka.session-timeout-ms"),
    ("enable.auto.commit", "a consumer commits an offset only once the outputs of its records are on the broker"),
    ("enable.auto.offset.store", "a consumer commits an offset only once the outputs of its records are on the broker"),
    ("auto.offset.reset", "a consumer without a committed offset reads its topics from the beginning, so no record is skipped"),
    ("enable.partition.eof", "the consumer loop reads without end-of-partition events"),
    ("enable.idempotence", "producers are idempotent, so a retry can't duplicate or reorder a key's records"),
    ("acks", "an output counts as durable only once every in-sync replica has it (acks=all)"),
    ("partitioner", "keys must land where Kafka's Java clients put them (murmur2_random), so one order's events share a partition"),
    ("transactional.id", "orderflow uses no transactions: event ids make every output count once"),
    ("message.timeout.ms", "set it with kafka.outage-limit-secs or kafka.message-timeout-ms"),
];

/// Refuses a `[kafka.*]` table that sets one of orderflow's own properties or something
/// librdkafka doesn't know or accept, in one sentence naming the table and the property.
pub fn check_properties(kafka: &KafkaConfig) -> Result<(), RuntimeError> {
    let tables = [
        ("client", &kafka.client),
        ("consumer", &kafka.consumer),
        ("producer", &kafka.producer),
        ("admin", &kafka.admin),
    ];
    for (table, properties) in tables {
        let mut config = ClientConfig::new();
        for (name, value) in properties.iter() {
            if let Some((_, why)) = OWNED_PROPERTIES
                .iter()
                .find(|(owned, _)| owned.eq_ignore_ascii_case(name))
            {
                return Err(RuntimeError::Config(format!(
                    "kafka.{table}: {name} is orderflow's to set and can't be overridden ({why})"
                )));
            }
            config.set(name, value);
        }
        if let Err(error) = config.create_native_config() {
            return Err(RuntimeError::Config(match error {
                KafkaError::ClientConfig(_, description, name, _) if !is_secret(&name) => {
                    format!("kafka.{table}: {description}")
                }
                KafkaError::ClientConfig(_, _, name, _) => {
                    format!("kafka.{table}: librdkafka refused the value of {name}")
                }
                other => format!("kafka.{table}: {other}"),
            }));
        }
    }
    Ok(())
}

fn apply(config: &mut ClientConfig, properties: &ClientProperties) {
    for (name, value) in properties.iter() {
        config.set(name, value);
    }
}

/// Settings every client shares: the brokers, a client id, and `[kafka.client]` (security,
/// timeouts, anything librdkafka takes).
pub fn client_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &kafka.brokers)
        .set("client.id", "orderflow");
    // OpenSSL is built into librdkafka (rdkafka's ssl-vendored) and looks for trusted CAs under
    // its own build-time directory, not the system's: without a CA of its own, a client finds
    // the system's (/etc/ssl/certs, ...) by probing, so a cluster with a public CA just works.
    let own_ca = ["ssl.ca.location", "ssl.ca.pem", "ssl.ca.certificate.stores"]
        .iter()
        .any(|name| kafka.client.get(name).is_some());
    if !own_ca {
        config.set("ssl.ca.location", "probe");
    }
    apply(&mut config, &kafka.client);
    config
}

/// An admin client's settings: [`client_config`], then `[kafka.admin]`.
pub fn admin_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut config = client_config(kafka);
    apply(&mut config, &kafka.admin);
    config
}

/// A consumer's settings before any group policy: [`client_config`], orderflow's tuning
/// defaults, then `[kafka.consumer]`. Group consumers and the log readers start from here.
pub fn consumer_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut config = client_config(kafka);
    // librdkafka waits up to a second (its default) after draining a large local queue.
    config.set("fetch.queue.backoff.ms", "10");
    apply(&mut config, &kafka.consumer);
    config
}

/// A producer that keeps per-key order and can't duplicate within a session (idempotence);
/// the Java-compatible partitioner keeps keys on the partitions other Kafka clients pick.
/// `[kafka.producer]` may tune batching and compression, not those guarantees.
pub fn producer_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut config = client_config(kafka);
    config.set("linger.ms", "5").set("compression.type", "lz4");
    apply(&mut config, &kafka.producer);
    config
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("partitioner", "murmur2_random")
        .set("message.timeout.ms", message_timeout_ms(kafka).to_string());
    config
}

/// How long librdkafka retries a produce: `kafka.message-timeout-ms`, else the outage limit,
/// so a producer rides out a broker outage up to the bound and no longer.
pub fn message_timeout_ms(kafka: &KafkaConfig) -> u64 {
    kafka
        .message_timeout_ms
        .map_or(u64::from(kafka.outage_limit_secs) * 1_000, u64::from)
}

pub fn producer(kafka: &KafkaConfig) -> Result<FutureProducer, RuntimeError> {
    producer_config(kafka)
        .create()
        .map_err(creation_error("producer"))
}

pub fn admin(kafka: &KafkaConfig) -> Result<AdminClient<DefaultClientContext>, RuntimeError> {
    admin_config(kafka)
        .create()
        .map_err(creation_error("admin client"))
}

/// A client librdkafka refuses to create was given settings that don't go together (e.g. a
/// classic-protocol property with `group.protocol=consumer`): a configuration error.
pub fn creation_error(what: &'static str) -> impl FnOnce(KafkaError) -> RuntimeError {
    move |error| match error {
        KafkaError::ClientCreation(message) => {
            RuntimeError::Config(format!("kafka: the {what} could not be created: {message}"))
        }
        KafkaError::ClientConfig(_, description, name, _) if !is_secret(&name) => {
            RuntimeError::Config(format!("kafka: {description}"))
        }
        other => RuntimeError::Kafka {
            context: format!("creating {what}"),
            source: other,
        },
    }
}

/// librdkafka's client-wide errors, read for what they mean. A refused login or an untrusted
/// certificate is a configuration problem no retry fixes: it is kept for whoever checks the
/// connection. Brokers going away is reported to the readiness state. Every kind of error is
/// logged at most once a minute, with the count of those not logged, instead of librdkafka's
/// one line per connection attempt.
#[derive(Default)]
pub struct Watch {
    refused: Mutex<Option<String>>,
    logged: Mutex<HashMap<String, (Instant, u64)>>,
    /// The connection check's: it reports a refusal itself (its one line) and what it waits
    /// for, so nothing is logged here.
    refusals_reported_by_caller: bool,
    /// Since when no broker has been reachable (all brokers down, or no broker `UP` in the
    /// statistics); `None` while one is.
    unreachable_since: Mutex<Option<Instant>>,
}

/// How often one kind of client error is logged, at most.
const ERROR_LOG_EVERY: Duration = Duration::from_secs(60);

impl Watch {
    pub fn error(&self, error: &KafkaError, reason: &str) {
        let code = error.rdkafka_error_code();
        if let Some(refusal) = refusal(code, reason) {
            let mut refused = self.refused.lock().unwrap_or_else(PoisonError::into_inner);
            refused.get_or_insert(refusal);
            if self.refusals_reported_by_caller {
                return;
            }
        }
        if code == Some(RDKafkaErrorCode::AllBrokersDown) {
            self.broker_reachable(false);
        }
        let kind = code.map_or_else(|| error.to_string(), |code| format!("{code:?}"));
        if self.refusals_reported_by_caller {
            // The connection check says itself what it waits for.
            return;
        }
        let mut logged = self.logged.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        match logged.get_mut(&kind) {
            Some((last, suppressed)) if now.duration_since(*last) < ERROR_LOG_EVERY => {
                *suppressed += 1;
            }
            Some((last, suppressed)) => {
                warn!(%error, reason, repeated = *suppressed, "kafka client error (and {} more like it in the last minute)", *suppressed);
                *last = now;
                *suppressed = 0;
            }
            None => {
                warn!(%error, reason, "kafka client error");
                logged.insert(kind, (now, 0));
            }
        }
    }

    /// Whether a broker is reachable now, for readiness and for [`Watch::unreachable_for`].
    pub fn broker_reachable(&self, reachable: bool) {
        crate::telemetry::health().broker_reachable(reachable);
        let mut since = self
            .unreachable_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if reachable {
            *since = None;
        } else {
            since.get_or_insert_with(Instant::now);
        }
    }

    /// How long no broker has been reachable, if none is.
    pub fn unreachable_for(&self) -> Option<Duration> {
        self.unreachable_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .map(|since| since.elapsed())
    }

    /// The first refused login or failed TLS handshake, as a sentence.
    pub fn refused(&self) -> Option<String> {
        self.refused
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// What a client-wide error says about the configuration, if it is one retrying can't fix.
fn refusal(code: Option<RDKafkaErrorCode>, reason: &str) -> Option<String> {
    match code? {
        RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SaslAuthenticationFailed => {
            Some(format!(
                "the broker refused the login ({reason}); check sasl.mechanism, sasl.username and the password"
            ))
        }
        RDKafkaErrorCode::SSL => Some(format!(
            "the TLS connection failed ({reason}); check ssl.ca.location (the CA that signed the broker's certificate) and that kafka.brokers names the hosts the certificate is for"
        )),
        _ => None,
    }
}

/// librdkafka's log lines, through tracing. Its `FAIL` and `ERROR` lines repeat what the error
/// callback reports ([`Watch`]), so they are kept at debug level.
pub fn forward_log(level: RDKafkaLogLevel, facility: &str, message: &str) {
    if matches!(facility, "FAIL" | "ERROR") {
        debug!(target: "librdkafka", facility, "{message}");
        return;
    }
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => error!(target: "librdkafka", facility, "{message}"),
        RDKafkaLogLevel::Warning => warn!(target: "librdkafka", facility, "{message}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            info!(target: "librdkafka", facility, "{message}")
        }
        RDKafkaLogLevel::Debug => debug!(target: "librdkafka", facility, "{message}"),
    }
}

/// The context of the connection check's client.
pub struct ProbeContext {
    pub watch: Watch,
}

impl Default for ProbeContext {
    fn default() -> ProbeContext {
        ProbeContext {
            watch: Watch {
                refusals_reported_by_caller: true,
                ..Watch::default()
            },
        }
    }
}

impl ClientContext for ProbeContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        forward_log(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.watch.error(&error, reason);
    }
}

impl ConsumerContext for ProbeContext {}

/// How long one metadata request of the connection check may take.
const PROBE_ATTEMPT: Duration = Duration::from_secs(2);

/// Waits until a broker answers a metadata request, before a binary starts its work. A refused
/// login or a certificate that isn't trusted fails at once with one sentence (a configuration
/// error: exit 2); while no broker answers (starting, restarting, not resolvable yet) it keeps
/// trying and warns every 10 s. The caller bounds it with its shutdown signal.
pub async fn check_connection(kafka: &KafkaConfig) -> Result<(), RuntimeError> {
    // A consumer outside any group: the lightest client that asks for metadata.
    let client: BaseConsumer<ProbeContext> = client_config(kafka)
        .create_with_context(ProbeContext::default())
        .map_err(creation_error("client"))?;
    let client = Arc::new(client);
    let mut last_warning = Instant::now();
    loop {
        let attempt = {
            let client = Arc::clone(&client);
            tokio::task::spawn_blocking(move || {
                let brokers = client
                    .fetch_metadata(None, PROBE_ATTEMPT)
                    .map(|metadata| metadata.brokers().len());
                // Client-wide errors reach the error callback only through a poll. (Not
                // subscribed to anything, the poll returns no record.)
                let _ = client.poll(Duration::from_millis(100));
                brokers
            })
            .await
        };
        if let Some(refusal) = client.context().watch.refused() {
            return Err(RuntimeError::Config(format!(
                "kafka at {}: {refusal}",
                kafka.brokers
            )));
        }
        match attempt {
            Ok(Ok(brokers)) if brokers > 0 => {
                crate::telemetry::health().broker_reachable(true);
                return Ok(());
            }
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                if last_warning.elapsed() >= Duration::from_secs(10) {
                    warn!(brokers = %kafka.brokers, %error, "no broker has answered yet; still trying");
                    last_warning = Instant::now();
                }
            }
            Err(error) => {
                return Err(RuntimeError::Fatal(format!(
                    "the connection check did not finish: {error}"
                )))
            }
        }
    }
}

/// [`check_connection`] bounded by `kafka.connect-timeout-secs`, for a command that has an
/// operator waiting: no broker answering within it is one sentence naming the brokers.
pub async fn check_connection_within(kafka: &KafkaConfig) -> Result<(), RuntimeError> {
    let limit = Duration::from_secs(u64::from(kafka.connect_timeout_secs));
    match tokio::time::timeout(limit, check_connection(kafka)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(RuntimeError::Fatal(format!(
            "no Kafka broker answered at {} within {} s (kafka.connect-timeout-secs); is \
             ORDERFLOW_BROKERS (kafka.brokers) right, and is the broker running?",
            kafka.brokers,
            limit.as_secs()
        ))),
    }
}

/// A topic as orderflow wants it: partitions, replication and configs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i32,
    pub configs: Vec<(String, String)>,
}

/// Every topic as the configuration wants it: [`Topics::all`]'s configs, plus
/// `kafka.min-insync-replicas`, and `kafka.retention-ms` on the topics that don't set their
/// own retention (the input topics, `warehouse-routing`, `notifications`).
pub fn topic_specs(kafka: &KafkaConfig, topics: &Topics) -> Vec<TopicSpec> {
    topics
        .all()
        .into_iter()
        .map(|(name, fixed)| {
            let mut configs: Vec<(String, String)> = fixed
                .iter()
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .collect();
            if let Some(retention) = kafka.retention_ms {
                if !fixed.iter().any(|(key, _)| *key == "retention.ms") {
                    configs.push(("retention.ms".into(), retention.to_string()));
                }
            }
            if let Some(min_insync) = kafka.min_insync_replicas {
                configs.push(("min.insync.replicas".into(), min_insync.to_string()));
            }
            TopicSpec {
                name,
                partitions: kafka.partitions,
                replication_factor: kafka.replication_factor,
                configs,
            }
        })
        .collect()
}

/// Creates every topic; ones that exist already are left as they are.
pub async fn create_topics(
    kafka: &KafkaConfig,
    topics: &Topics,
) -> Result<Vec<String>, RuntimeError> {
    let admin = admin(kafka)?;
    let wanted = topic_specs(kafka, topics);
    let new_topics: Vec<NewTopic<'_>> = wanted
        .iter()
        .map(|spec| {
            spec.configs.iter().fold(
                NewTopic::new(
                    &spec.name,
                    spec.partitions,
                    TopicReplication::Fixed(spec.replication_factor),
                ),
                |topic, (key, value)| topic.set(key, value),
            )
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(&new_topics, &options)
        .await
        .map_err(RuntimeError::kafka("creating topics"))?;
    let mut created = Vec::new();
    for result in results {
        match result {
            Ok(name) => created.push(name),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(RuntimeError::Fatal(format!(
                    "topic {name} could not be created: {code}"
                )))
            }
        }
    }
    Ok(created)
}

/// How an existing topic differs from what the configuration wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicDifference {
    Missing,
    Partitions {
        actual: i32,
        wanted: i32,
    },
    ReplicationFactor {
        actual: i32,
        wanted: i32,
    },
    Config {
        key: String,
        actual: String,
        wanted: String,
    },
    /// The broker didn't say (Tansu reports only the configs a topic was created with).
    Unreported {
        key: String,
    },
}

impl std::fmt::Display for TopicDifference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TopicDifference::Missing => write!(f, "does not exist"),
            TopicDifference::Partitions { actual, wanted } => {
                write!(
                    f,
                    "has {actual} partitions, the configuration says {wanted}"
                )
            }
            TopicDifference::ReplicationFactor { actual, wanted } => write!(
                f,
                "has replication factor {actual}, the configuration says {wanted}"
            ),
            TopicDifference::Config {
                key,
                actual,
                wanted,
            } => write!(f, "has {key}={actual}, the configuration says {wanted}"),
            TopicDifference::Unreported { key } => {
                write!(
                    f,
                    "{key}: the broker does not report it, so it can't be checked"
                )
            }
        }
    }
}

impl TopicDifference {
    /// Whether this is a difference (not just something the broker can't tell).
    pub fn is_difference(&self) -> bool {
        !matches!(self, TopicDifference::Unreported { .. })
    }
}

/// Compares every existing topic with what the configuration wants (partitions, replication
/// factor and configs, read with Metadata and DescribeConfigs). Nothing is changed.
pub async fn check_topics(
    kafka: &KafkaConfig,
    topics: &Topics,
) -> Result<Vec<(String, TopicDifference)>, RuntimeError> {
    let admin = admin(kafka)?;
    let wanted = topic_specs(kafka, topics);
    let metadata = with_retries("reading topic metadata", COMMAND_RETRY_LIMIT, || {
        admin.inner().fetch_metadata(None, ATTEMPT_TIMEOUT)
    })
    .await?;
    let mut found = Vec::new();
    let mut existing = Vec::new();
    for spec in &wanted {
        let Some(topic) = metadata
            .topics()
            .iter()
            .find(|topic| topic.name() == spec.name && !topic.partitions().is_empty())
        else {
            found.push((spec.name.clone(), TopicDifference::Missing));
            continue;
        };
        let partitions = i32::try_from(topic.partitions().len()).unwrap_or(i32::MAX);
        if partitions != spec.partitions {
            found.push((
                spec.name.clone(),
                TopicDifference::Partitions {
                    actual: partitions,
                    wanted: spec.partitions,
                },
            ));
        }
        let replicas = topic
            .partitions()
            .iter()
            .map(|partition| partition.replicas().len())
            .min()
            .unwrap_or(0);
        let replicas = i32::try_from(replicas).unwrap_or(i32::MAX);
        if replicas != spec.replication_factor {
            found.push((
                spec.name.clone(),
                TopicDifference::ReplicationFactor {
                    actual: replicas,
                    wanted: spec.replication_factor,
                },
            ));
        }
        existing.push(spec);
    }
    if existing.is_empty() {
        return Ok(found);
    }
    let resources: Vec<ResourceSpecifier<'_>> = existing
        .iter()
        .map(|spec| ResourceSpecifier::Topic(&spec.name))
        .collect();
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(30)));
    let described = admin
        .describe_configs(&resources, &options)
        .await
        .map_err(RuntimeError::kafka("reading topic configs"))?;
    for (spec, result) in existing.iter().zip(described) {
        let resource = result.map_err(|code| {
            RuntimeError::Fatal(format!(
                "the configs of {} could not be read: {code}",
                spec.name
            ))
        })?;
        for (key, wanted) in &spec.configs {
            let difference = match resource.get(key).and_then(|entry| entry.value.clone()) {
                None => TopicDifference::Unreported { key: key.clone() },
                Some(actual) if same_config(key, &actual, wanted) => continue,
                Some(actual) => TopicDifference::Config {
                    key: key.clone(),
                    actual,
                    wanted: wanted.clone(),
                },
            };
            found.push((spec.name.clone(), difference));
        }
    }
    Ok(found)
}

/// Config values compare as text, except lists (`compact,delete`), which compare as sets.
fn same_config(key: &str, actual: &str, wanted: &str) -> bool {
    if key == "cleanup.policy" {
        let set = |text: &str| {
            let mut items: Vec<String> = text
                .split(',')
                .map(|item| item.trim().to_string())
                .collect();
            items.sort();
            items
        };
        return set(actual) == set(wanted);
    }
    actual.trim() == wanted.trim()
}

/// Reads a header's value by name.
pub fn header<'a>(
    headers: Option<&'a rdkafka::message::BorrowedHeaders>,
    name: &str,
) -> Option<&'a [u8]> {
    use rdkafka::message::Headers;
    headers.and_then(|headers| {
        headers
            .iter()
            .find(|header| header.key.eq_ignore_ascii_case(name))
            .and_then(|header| header.value)
    })
}

/// Partition → offset, as kept per batch.
pub type Offsets = HashMap<(String, i32), i64>;

/// How long one attempt of a blocking broker call ([`with_retries`]) may hold its thread: a
/// short wait, retried, instead of one long block of an async worker.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);

/// Retries a blocking broker call (committed offsets, watermarks, metadata; each attempt
/// bounded by [`ATTEMPT_TIMEOUT`]) with exponential backoff while its error is transient
/// (leader moving, coordinator loading, broker restarting), for at most `limit`; a permanent
/// error stops at once. The waits between attempts are async: they never hold a tokio worker.
pub async fn with_retries<T>(
    context: &str,
    limit: Duration,
    mut call: impl FnMut() -> rdkafka::error::KafkaResult<T>,
) -> Result<T, RuntimeError> {
    let policy = backoff::ExponentialBackoff {
        initial_interval: Duration::from_millis(50),
        max_interval: Duration::from_secs(2),
        max_elapsed_time: Some(limit),
        ..backoff::ExponentialBackoff::default()
    };
    backoff::future::retry(policy, || {
        let attempt = call().map_err(|source| {
            let error = RuntimeError::Kafka {
                context: context.to_string(),
                source,
            };
            if error.is_retryable() {
                backoff::Error::transient(error)
            } else {
                backoff::Error::permanent(error)
            }
        });
        std::future::ready(attempt)
    })
    .await
}

/// How long the operator commands retry a broker call before they give up.
pub const COMMAND_RETRY_LIMIT: Duration = Duration::from_secs(30);
