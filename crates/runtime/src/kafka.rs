//! Topic names and Kafka client settings shared by every binary.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::FutureProducer;
use rdkafka::types::RDKafkaErrorCode;

use crate::config::KafkaConfig;
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

    pub fn notifications(&self) -> String {
        self.name("notifications")
    }

    pub fn warehouse_routing(&self) -> String {
        self.name("warehouse-routing")
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
            plain("exceptions"),
            plain("warehouse-routing"),
            plain("notifications"),
            (self.dlq(), vec![("retention.ms", "-1")]),
        ]
    }
}

/// Settings every client shares.
pub fn client_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &kafka.brokers)
        .set("client.id", "orderflow");
    config
}

/// A producer that keeps per-key order and can't duplicate within a session (idempotence);
/// the Java-compatible partitioner keeps keys on the partitions other Kafka clients pick.
pub fn producer(kafka: &KafkaConfig) -> Result<FutureProducer, RuntimeError> {
    client_config(kafka)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5")
        .set("compression.type", "lz4")
        .set("message.timeout.ms", kafka.message_timeout_ms.to_string())
        .create()
        .map_err(RuntimeError::kafka("creating producer"))
}

/// Creates every topic; ones that exist already are left as they are.
pub async fn create_topics(
    kafka: &KafkaConfig,
    topics: &Topics,
) -> Result<Vec<String>, RuntimeError> {
    let admin: AdminClient<DefaultClientContext> = client_config(kafka)
        .create()
        .map_err(RuntimeError::kafka("creating admin client"))?;
    let wanted = topics.all();
    let new_topics: Vec<NewTopic<'_>> = wanted
        .iter()
        .map(|(name, configs)| {
            configs.iter().fold(
                NewTopic::new(
                    name,
                    kafka.partitions,
                    TopicReplication::Fixed(kafka.replication_factor),
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

/// Retries a blocking broker call with exponential backoff while its error is transient
/// (leader moving, coordinator loading, broker restarting), for at most 30 s; a permanent
/// error stops at once.
pub fn with_retries<T>(
    context: &str,
    mut call: impl FnMut() -> rdkafka::error::KafkaResult<T>,
) -> Result<T, RuntimeError> {
    let policy = backoff::ExponentialBackoff {
        initial_interval: Duration::from_millis(50),
        max_interval: Duration::from_secs(2),
        max_elapsed_time: Some(Duration::from_secs(30)),
        ..backoff::ExponentialBackoff::default()
    };
    backoff::retry(policy, || {
        call().map_err(|source| {
            let error = RuntimeError::Kafka {
                context: context.to_string(),
                source,
            };
            if error.is_retryable() {
                backoff::Error::transient(error)
            } else {
                backoff::Error::permanent(error)
            }
        })
    })
    .map_err(|error| match error {
        backoff::Error::Permanent(error) | backoff::Error::Transient { err: error, .. } => error,
    })
}
