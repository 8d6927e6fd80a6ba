//! Producing with backpressure: at most `gateway.max-in-flight` records are being produced at
//! once over all requests, each must be acknowledged (`acks=all`, the runtime's producer
//! settings, so the deployment's TLS/SASL apply) within `gateway.produce-timeout-ms`, and
//! whatever can't be taken on now is answered `503` with `Retry-After` — memory stays bounded by
//! the permits and the request size limit, never by how long the broker is away.
//!
//! A `503` means "not known to be accepted": a record may still have reached the broker (its
//! acknowledgement timed out). Sending it again is safe, because the intake drops the copy by
//! its deterministic event id.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use orderflow_runtime::config::{Config, KafkaConfig};
use orderflow_runtime::kafka;
use orderflow_runtime::output::Output;
use rdkafka::producer::{FutureProducer, Producer as _};
use rdkafka::types::RDKafkaErrorCode;
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

use crate::problem::Problem;

/// Where the broker put a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    pub partition: i32,
    pub offset: i64,
}

pub struct Producer {
    kafka: KafkaConfig,
    inner: RwLock<FutureProducer>,
    permits: Arc<Semaphore>,
    timeout: Duration,
    retry_after: u32,
    /// Whether the last look at the broker's metadata succeeded.
    broker_up: AtomicBool,
    /// Unix millis of the last successful look.
    last_seen_ms: AtomicI64,
}

impl Producer {
    pub fn new(config: &Config) -> Result<Producer, orderflow_runtime::RuntimeError> {
        // The runtime's producer, with the gateway's shorter delivery timeout: a caller waits
        // for the answer, so a broker that can't take the record soon gets a 503, not a hang.
        let kafka = KafkaConfig {
            message_timeout_ms: Some(config.gateway.produce_timeout_ms),
            ..config.kafka.clone()
        };
        let producer = kafka::producer(&kafka)?;
        Ok(Producer {
            kafka,
            inner: RwLock::new(producer),
            permits: Arc::new(Semaphore::new(config.gateway.max_in_flight)),
            timeout: Duration::from_millis(u64::from(config.gateway.produce_timeout_ms)),
            retry_after: config.gateway.retry_after_secs,
            broker_up: AtomicBool::new(true),
            last_seen_ms: AtomicI64::new(0),
        })
    }

    pub fn retry_after(&self) -> u32 {
        self.retry_after
    }

    pub fn broker_up(&self) -> bool {
        self.broker_up.load(Ordering::Relaxed)
    }

    fn current(&self) -> FutureProducer {
        self.inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Produces `outputs` and waits for every acknowledgement; all of them or a 503.
    pub async fn produce(&self, outputs: &[Output]) -> Result<Vec<Placed>, Problem> {
        if !self.broker_up() {
            return Err(self.unavailable("the broker is not reachable"));
        }
        let wanted = u32::try_from(outputs.len()).unwrap_or(u32::MAX);
        let _permits = self
            .permits
            .clone()
            .try_acquire_many_owned(wanted)
            .map_err(|_| {
                self.unavailable(
                    "too many records in flight; the broker is slower than the callers",
                )
            })?;
        let producer = self.current();
        let mut deliveries = Vec::with_capacity(outputs.len());
        for output in outputs {
            match producer.send_result(output.record()) {
                Ok(delivery) => deliveries.push(delivery),
                Err((error, _))
                    if error.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) =>
                {
                    return Err(self.unavailable("the producer queue is full"))
                }
                Err((error, _)) => return Err(self.failed(&producer, &error)),
            }
        }
        // librdkafka fails each record after message.timeout.ms; the extra second covers the
        // report reaching us.
        let all = futures::future::join_all(deliveries);
        let results = tokio::time::timeout(self.timeout + Duration::from_secs(1), all)
            .await
            .map_err(|_| self.unavailable("the broker did not acknowledge in time"))?;
        let mut placed = Vec::with_capacity(results.len());
        for result in results {
            match result {
                Ok(Ok(delivery)) => placed.push(Placed {
                    partition: delivery.partition,
                    offset: delivery.offset,
                }),
                Ok(Err((error, _))) => return Err(self.failed(&producer, &error)),
                Err(_) => return Err(self.unavailable("the producer closed")),
            }
        }
        Ok(placed)
    }

    fn unavailable(&self, detail: &str) -> Problem {
        debug!(detail, "answering 503");
        Problem::unavailable(
            format!("{detail}; nothing is known to be accepted, send again after Retry-After"),
            self.retry_after,
        )
    }

    /// A failed delivery. An idempotent producer that hit a fatal error, or whose producer id
    /// the broker no longer takes (after deliveries timed out, some brokers fence the bumped
    /// epoch), accepts nothing more: it is replaced for the next request.
    fn failed(&self, producer: &FutureProducer, error: &rdkafka::error::KafkaError) -> Problem {
        warn!(%error, "producing failed");
        let fenced = matches!(
            error.rdkafka_error_code(),
            Some(
                RDKafkaErrorCode::ProducerFenced
                    | RDKafkaErrorCode::InvalidProducerEpoch
                    | RDKafkaErrorCode::UnknownProducerId
                    | RDKafkaErrorCode::OutOfOrderSequenceNumber
                    | RDKafkaErrorCode::Fatal
            )
        );
        if let Some(reason) = producer
            .client()
            .fatal_error()
            .map(|(_, reason)| reason)
            .or_else(|| fenced.then(|| error.to_string()))
        {
            warn!(%reason, "the producer can't go on; replacing it");
            match kafka::producer(&self.kafka) {
                Ok(fresh) => {
                    *self
                        .inner
                        .write()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
                }
                Err(error) => warn!(%error, "a new producer could not be made"),
            }
        }
        self.unavailable(&format!("producing failed: {error}"))
    }

    /// Looks at the broker every `every` until `shutdown`: readiness, and fast 503s while it
    /// is away instead of every request waiting out the produce timeout.
    pub async fn watch_broker(self: Arc<Self>, probe_topic: String, every: Duration) {
        loop {
            let producer = self.current();
            let topic = probe_topic.clone();
            let probe = tokio::task::spawn_blocking(move || {
                // Offsets, not metadata: librdkafka may answer a metadata request from its
                // cache, a ListOffsets request only the partition's leader answers.
                producer
                    .client()
                    .fetch_watermarks(&topic, 0, Duration::from_secs(2))
                    .map(|_| ())
            })
            .await;
            let up = matches!(probe, Ok(Ok(())));
            let was = self.broker_up.swap(up, Ordering::Relaxed);
            if up {
                self.last_seen_ms
                    .store(chrono::Utc::now().timestamp_millis(), Ordering::Relaxed);
            }
            if up != was {
                if up {
                    info!("the broker is reachable again");
                } else {
                    warn!("the broker is not reachable; ingestion answers 503 until it is");
                }
            }
            tokio::time::sleep(every).await;
        }
    }
}
