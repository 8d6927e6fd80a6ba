//! Records to produce, as values: handlers build them, [`send`] hands them to the producer and
//! [`Sent::acknowledged`] waits until the broker has every one, which is when the inputs behind
//! them may be committed.

use std::time::{Duration, Instant};

use futures::channel::oneshot::Canceled;
use futures::future::try_join_all;
use orderflow_schema::Rejection;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::future_producer::OwnedDeliveryResult;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;

use crate::RuntimeError;

#[derive(Debug, Clone)]
pub struct Output {
    pub topic: String,
    pub key: Vec<u8>,
    pub payload: Vec<u8>,
    pub headers: Vec<(&'static str, Vec<u8>)>,
}

/// Where a rejected record came from and what it was.
pub struct DeadLetter<'a> {
    pub dlq_topic: &'a str,
    pub consumer: &'a str,
    pub source_topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<&'a [u8]>,
    pub payload: &'a [u8],
}

impl DeadLetter<'_> {
    /// The original bytes, unchanged, with the reason and provenance in headers.
    pub fn output(&self, rejection: &Rejection) -> Output {
        use orderflow_schema::headers::dlq::*;
        let mut headers = vec![
            (TOPIC, self.source_topic.as_bytes().to_vec()),
            (PARTITION, self.partition.to_string().into_bytes()),
            (OFFSET, self.offset.to_string().into_bytes()),
            (CLASS, rejection.kind.as_str().as_bytes().to_vec()),
            (MESSAGE, rejection.message.clone().into_bytes()),
            (CONNECTOR, self.consumer.as_bytes().to_vec()),
            (FAILED_AT, chrono::Utc::now().to_rfc3339().into_bytes()),
        ];
        if let Some(key) = self.key {
            headers.push((ORIGINAL_KEY, key.to_vec()));
        }
        metrics::counter!(crate::telemetry::DLQ_RECORDS.name,
            "consumer" => self.consumer.to_string(), "error_type" => rejection.kind.as_str())
        .increment(1);
        Output {
            topic: self.dlq_topic.to_string(),
            key: self.source_topic.as_bytes().to_vec(),
            payload: self.payload.to_vec(),
            headers,
        }
    }
}

/// Outputs handed to the producer, not yet acknowledged.
#[must_use = "outputs are durable only once acknowledged"]
pub struct Sent(Vec<DeliveryFuture>);

impl Sent {
    /// Resolves once the broker has acknowledged every output, or with the first failure.
    pub async fn acknowledged(self) -> Result<(), RuntimeError> {
        try_join_all(
            self.0
                .into_iter()
                .map(|delivery| async { delivered(delivery.await, "producing a batch") }),
        )
        .await?;
        Ok(())
    }
}

/// What became of one record handed to the producer: Ok once the broker acknowledged it.
pub fn delivered(
    delivery: Result<OwnedDeliveryResult, Canceled>,
    context: &str,
) -> Result<(), RuntimeError> {
    match delivery {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((source, _))) => Err(RuntimeError::Kafka {
            context: context.to_string(),
            source,
        }),
        Err(_) => Err(RuntimeError::Fatal(format!(
            "{context}: the producer closed before acknowledging a record"
        ))),
    }
}

/// Hands every output to the producer without waiting for the broker, so the caller can go on
/// with the next batch meanwhile. Per-key order is kept by the idempotent producer. Waits only
/// while the producer's queue is full.
pub async fn send(producer: &FutureProducer, outputs: &[Output]) -> Result<Sent, RuntimeError> {
    let mut deliveries = Vec::with_capacity(outputs.len());
    for output in outputs {
        let headers = output
            .headers
            .iter()
            .fold(OwnedHeaders::new(), |headers, (key, value)| {
                headers.insert(Header {
                    key,
                    value: Some(value),
                })
            });
        let mut record = FutureRecord::to(&output.topic)
            .key(&output.key)
            .payload(&output.payload)
            .headers(headers);
        let full_since = Instant::now();
        loop {
            match producer.send_result(record) {
                Ok(delivery) => break deliveries.push(delivery),
                Err((error, returned))
                    if error.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull)
                        && full_since.elapsed() < QUEUE_FULL_LIMIT =>
                {
                    record = returned;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err((source, _)) => {
                    return Err(RuntimeError::Kafka {
                        context: "producing a batch".into(),
                        source,
                    })
                }
            }
        }
    }
    Ok(Sent(deliveries))
}

/// How long a full producer queue may hold up a batch before the consumer gives up.
const QUEUE_FULL_LIMIT: Duration = Duration::from_secs(30);

/// Sends every output and waits for the broker to acknowledge all of them; a failure here means
/// nothing of the batch is committed.
pub async fn deliver(producer: &FutureProducer, outputs: &[Output]) -> Result<(), RuntimeError> {
    send(producer, outputs).await?.acknowledged().await
}
