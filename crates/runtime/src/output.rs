//! Records to produce, as values: handlers build them, [`send`] hands them to the producer and
//! [`Sent::acknowledged`] waits until the broker has every one, which is when the inputs behind
//! them may be committed.
//!
//! Dead letters always fit ([`Dlq::output`] truncates a value that would not, keeping its size
//! and SHA-256), and a consumer's outputs are sent guarded ([`send_guarded`]): one the broker
//! refuses for good (too large, invalid) is dead-lettered instead, so no single record can stop
//! a consumer. Every other produce failure fails the batch, and its offsets are not committed.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::channel::oneshot::Canceled;
use futures::future::try_join_all;
use orderflow_domain::EventId;
use orderflow_schema::{headers, Rejection, RejectionKind};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::future_producer::OwnedDeliveryResult;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use sha2::{Digest, Sha256};
use tracing::warn;

use crate::RuntimeError;

#[derive(Debug, Clone)]
pub struct Output {
    pub topic: String,
    pub key: Vec<u8>,
    pub payload: Vec<u8>,
    pub headers: Vec<(&'static str, Vec<u8>)>,
}

impl Output {
    /// The record to hand to a producer, borrowing the output's key, value and headers.
    pub fn record(&self) -> FutureRecord<'_, [u8], [u8]> {
        let headers = self
            .headers
            .iter()
            .fold(OwnedHeaders::new(), |headers, (key, value)| {
                headers.insert(Header {
                    key,
                    value: Some(value),
                })
            });
        FutureRecord::to(&self.topic)
            .key(self.key.as_slice())
            .payload(self.payload.as_slice())
            .headers(headers)
    }
}

/// Where a consumer's dead letters go, and how large one may be (`limits.max-dead-letter-bytes`).
#[derive(Debug, Clone)]
pub struct Dlq {
    pub topic: String,
    pub consumer: String,
    pub max_bytes: usize,
    /// The events of [`Fallback::Record`]s dead-lettered because the broker refused them: not
    /// in the log, so the intake must not index them as appended (a redrive must get through).
    /// Whoever sends such fallbacks takes its events out ([`Dlq::take_refused`]).
    pub refused: Arc<Mutex<HashSet<EventId>>>,
}

/// A record that can't go on, with where it was read: what a dead letter carries.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub source_topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub content_type: Option<Vec<u8>>,
    /// For a record the broker refused: the topic it was meant for.
    pub output_topic: Option<String>,
}

/// Longest key a dead letter keeps; a longer one is cut (and the letter marked truncated).
pub const MAX_DEAD_LETTER_KEY_BYTES: usize = 1024;
/// Longest reason a dead letter carries, in bytes.
const MAX_REASON_BYTES: usize = 1024;
/// What a record costs beyond its key, value and headers' bytes (lengths, attributes, and the
/// `truncated` header's longest value), kept free when a value is cut to fit.
const RECORD_OVERHEAD_BYTES: usize = 128;
/// Per header: its length prefixes.
const HEADER_OVERHEAD_BYTES: usize = 10;

impl DeadLetter {
    /// The record a consumer read, as it was.
    pub fn of(message: &OwnedMessage) -> DeadLetter {
        DeadLetter {
            source_topic: message.topic().to_string(),
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().unwrap_or_default().to_vec(),
            content_type: message.headers().and_then(|headers| {
                headers
                    .iter()
                    .find(|header| header.key.eq_ignore_ascii_case(headers::CONTENT_TYPE))
                    .and_then(|header| header.value.map(<[u8]>::to_vec))
            }),
            output_topic: None,
        }
    }
}

impl Dlq {
    /// A consumer's dead letters on `topic`.
    pub fn new(topic: String, consumer: &str, max_bytes: usize) -> Dlq {
        Dlq {
            topic,
            consumer: consumer.to_string(),
            max_bytes,
            refused: Arc::default(),
        }
    }

    /// Of `events`, those the broker refused (dead-lettered instead), each reported once.
    pub fn take_refused<'a>(&self, events: impl Iterator<Item = &'a EventId>) -> HashSet<EventId> {
        let mut refused = self.refused.lock().unwrap_or_else(PoisonError::into_inner);
        if refused.is_empty() {
            return HashSet::new();
        }
        events
            .filter_map(|event_id| refused.take(event_id))
            .collect()
    }

    /// Each output with the fallback that dead-letters it itself if the broker refuses it,
    /// from where it was made: `made_at` holds, in order, the index of the first output made
    /// while handling the record at (partition, offset) of `source_topic`. A dead letter gets
    /// none: it always fits, and a refused one would only be refused again.
    pub fn made_from(
        &self,
        outputs: Vec<Output>,
        source_topic: &str,
        made_at: &[(usize, i32, i64)],
    ) -> Vec<(Output, Option<Fallback>)> {
        let mut marks = made_at.iter().peekable();
        let mut at = (-1, -1);
        outputs
            .into_iter()
            .enumerate()
            .map(|(index, output)| {
                while let Some((_, partition, offset)) =
                    marks.next_if(|(first, _, _)| *first <= index)
                {
                    at = (*partition, *offset);
                }
                let fallback = (output.topic != self.topic).then(|| Fallback::Output {
                    source_topic: source_topic.to_string(),
                    partition: at.0,
                    offset: at.1,
                });
                (output, fallback)
            })
            .collect()
    }

    /// The dead letter of `letter`: its key (cut to [`MAX_DEAD_LETTER_KEY_BYTES`]) and its bytes,
    /// with the reason and provenance in headers. A value that would make the record larger than
    /// [`Dlq::max_bytes`] is truncated to fit; its size and SHA-256 are always in the headers.
    pub fn output(&self, letter: &DeadLetter, rejection: &Rejection) -> Output {
        use orderflow_schema::headers::dlq::*;
        let key = letter.key.as_deref().unwrap_or_default();
        let key_cut = key.len() > MAX_DEAD_LETTER_KEY_BYTES;
        let key = &key[..key.len().min(MAX_DEAD_LETTER_KEY_BYTES)];
        let mut headers = vec![
            (TOPIC, letter.source_topic.as_bytes().to_vec()),
            (PARTITION, letter.partition.to_string().into_bytes()),
            (OFFSET, letter.offset.to_string().into_bytes()),
            (CLASS, rejection.kind.as_str().as_bytes().to_vec()),
            (
                MESSAGE,
                cut_text(&rejection.message, MAX_REASON_BYTES).into_bytes(),
            ),
            (CONNECTOR, self.consumer.as_bytes().to_vec()),
            (FAILED_AT, chrono::Utc::now().to_rfc3339().into_bytes()),
            (ORIGINAL_SIZE, letter.payload.len().to_string().into_bytes()),
            (
                ORIGINAL_SHA256,
                hex::encode(Sha256::digest(&letter.payload)).into_bytes(),
            ),
        ];
        if letter.key.is_some() {
            headers.push((ORIGINAL_KEY, key.to_vec()));
        }
        if let Some(content_type) = &letter.content_type {
            headers.push((ORIGINAL_CONTENT_TYPE, content_type.clone()));
        }
        if let Some(topic) = &letter.output_topic {
            headers.push((OUTPUT_TOPIC, topic.as_bytes().to_vec()));
        }
        let taken: usize = key.len()
            + RECORD_OVERHEAD_BYTES
            + headers
                .iter()
                .map(|(name, value)| name.len() + value.len() + HEADER_OVERHEAD_BYTES)
                .sum::<usize>()
            + TRUNCATED.len()
            + HEADER_OVERHEAD_BYTES;
        let room = self.max_bytes.saturating_sub(taken);
        let value_cut = letter.payload.len() > room;
        let payload = letter.payload[..letter.payload.len().min(room)].to_vec();
        let truncated = key_cut || value_cut;
        headers.push((TRUNCATED, truncated.to_string().into_bytes()));
        metrics::counter!(crate::telemetry::DLQ_RECORDS.name,
            "consumer" => self.consumer.clone(), "error_type" => rejection.kind.as_str())
        .increment(1);
        Output {
            topic: self.topic.clone(),
            key: key.to_vec(),
            payload,
            headers,
        }
    }

    /// The dead letter of an output the broker refused for good: per `fallback`, the record it
    /// was made from, or the output itself.
    fn refused(&self, output: Output, fallback: Fallback, error: &KafkaError) -> Output {
        let bytes = output.payload.len();
        let mut letter = match fallback {
            Fallback::Record { letter, event_id } => {
                self.refused
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(event_id);
                letter
            }
            Fallback::Output {
                source_topic,
                partition,
                offset,
            } => DeadLetter {
                source_topic,
                partition,
                offset,
                key: Some(output.key),
                payload: output.payload,
                content_type: None,
                output_topic: None,
            },
        };
        let reason = format!(
            "{} refused the {}-byte record made from this one for good: {error}",
            output.topic, bytes
        );
        warn!(topic = %letter.source_topic, partition = letter.partition, offset = letter.offset,
            output_topic = %output.topic, bytes, %error,
            "output refused by the broker; dead-lettered");
        letter.output_topic = Some(output.topic);
        self.output(
            &letter,
            &Rejection {
                kind: RejectionKind::OutputRefused,
                message: reason,
            },
        )
    }
}

/// `text` cut to at most `max` bytes, on a character boundary.
fn cut_text(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// What to dead-letter when the broker refuses an output for good.
pub enum Fallback {
    /// The record the output, event `event_id`, was made from (an intake's input, as it was
    /// read).
    Record {
        letter: DeadLetter,
        event_id: EventId,
    },
    /// The output itself, made while handling the record at this position.
    Output {
        source_topic: String,
        partition: i32,
        offset: i64,
    },
}

/// Whether the broker (or the client, before sending) refuses this record whatever is retried:
/// it is the record that is wrong (too large, invalid), not the broker.
pub fn refused_for_good(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::MessageBatchTooLarge
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::InvalidRecord
                | RDKafkaErrorCode::InvalidTimestamp
                | RDKafkaErrorCode::BadMessage
        )
    )
}

/// One output handed to the producer, and what to dead-letter if the broker refuses it.
struct Pending {
    delivery: DeliveryFuture,
    refused: Option<(Output, Fallback)>,
}

/// Outputs handed to the producer, not yet acknowledged.
#[must_use = "outputs are durable only once acknowledged"]
pub struct Sent {
    pending: Vec<Pending>,
    /// Where refused outputs are dead-lettered (guarded sends only).
    dlq: Option<(FutureProducer, Dlq)>,
}

impl Sent {
    /// Resolves once the broker has acknowledged every output, or with the first failure. An
    /// output of a guarded send that the broker refused for good is dead-lettered instead
    /// ([`send_guarded`]): done once the dead letter is acknowledged.
    pub async fn acknowledged(self) -> Result<(), RuntimeError> {
        let dlq = self.dlq.as_ref();
        try_join_all(self.pending.into_iter().map(|pending| async move {
            let delivery = pending.delivery.await;
            match (delivery, pending.refused, dlq) {
                (Ok(Err((error, _))), Some((output, fallback)), Some((producer, dlq)))
                    if refused_for_good(&error) =>
                {
                    let letter = dlq.refused(output, fallback, &error);
                    let delivery = enqueue(producer, &letter)
                        .await
                        .map_err(RuntimeError::kafka("producing a dead letter"))?;
                    delivered(delivery.await, "producing a dead letter")
                }
                (delivery, _, _) => delivered(delivery, "producing a batch"),
            }
        }))
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

/// Whether `error` is a record the producer gave up on after retrying it for
/// `message.timeout.ms` (the outage limit): no broker took it that long.
pub fn timed_out(error: &RuntimeError) -> bool {
    matches!(error, RuntimeError::Kafka { source, .. }
        if source.rdkafka_error_code() == Some(RDKafkaErrorCode::MessageTimedOut))
}

/// Hands every output to the producer without waiting for the broker, so the caller can go on
/// with the next batch meanwhile. Per-key order is kept by the idempotent producer. Waits only
/// while the producer's queue is full.
pub async fn send(producer: &FutureProducer, outputs: &[Output]) -> Result<Sent, RuntimeError> {
    let mut pending = Vec::with_capacity(outputs.len());
    for output in outputs {
        let delivery = enqueue(producer, output)
            .await
            .map_err(RuntimeError::kafka("producing a batch"))?;
        pending.push(Pending {
            delivery,
            refused: None,
        });
    }
    Ok(Sent { pending, dlq: None })
}

/// [`send`], where an output with a [`Fallback`] that the broker (or the client) refuses for
/// good — too large, invalid — is dead-lettered per its fallback instead of failing the batch, so one record can't stop
/// the consumer. Any other failure fails the batch as in [`send`].
pub async fn send_guarded(
    producer: &FutureProducer,
    dlq: &Dlq,
    outputs: Vec<(Output, Option<Fallback>)>,
) -> Result<Sent, RuntimeError> {
    let mut pending = Vec::with_capacity(outputs.len());
    for (output, fallback) in outputs {
        let delivery = match (enqueue(producer, &output).await, fallback) {
            (Ok(delivery), fallback) => {
                pending.push(Pending {
                    delivery,
                    refused: fallback.map(|fallback| (output, fallback)),
                });
                continue;
            }
            // librdkafka checks a record's size before it sends it.
            (Err(error), Some(fallback)) if refused_for_good(&error) => {
                let letter = dlq.refused(output, fallback, &error);
                enqueue(producer, &letter)
                    .await
                    .map_err(RuntimeError::kafka("producing a dead letter"))?
            }
            (Err(error), _) => return Err(RuntimeError::kafka("producing a batch")(error)),
        };
        pending.push(Pending {
            delivery,
            refused: None,
        });
    }
    Ok(Sent {
        pending,
        dlq: Some((producer.clone(), dlq.clone())),
    })
}

/// Hands one output to the producer, waiting while its queue is full (up to [`QUEUE_FULL_LIMIT`]).
async fn enqueue(producer: &FutureProducer, output: &Output) -> Result<DeliveryFuture, KafkaError> {
    let mut record = output.record();
    let full_since = Instant::now();
    loop {
        match producer.send_result(record) {
            Ok(delivery) => return Ok(delivery),
            Err((error, returned))
                if error.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull)
                    && full_since.elapsed() < QUEUE_FULL_LIMIT =>
            {
                record = returned;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err((error, _)) => return Err(error),
        }
    }
}

/// How long a full producer queue may hold up a batch before the consumer gives up.
const QUEUE_FULL_LIMIT: Duration = Duration::from_secs(30);

/// Sends every output and waits for the broker to acknowledge all of them; a failure here means
/// nothing of the batch is committed.
pub async fn deliver(producer: &FutureProducer, outputs: &[Output]) -> Result<(), RuntimeError> {
    send(producer, outputs).await?.acknowledged().await
}

#[cfg(test)]
mod tests {
    use orderflow_schema::headers::dlq;

    use super::*;

    fn dlq_of(max_bytes: usize) -> Dlq {
        Dlq::new("orderflow.dlq".into(), "orderflow-orders", max_bytes)
    }

    fn letter(key: Option<&[u8]>, payload: Vec<u8>) -> DeadLetter {
        DeadLetter {
            source_topic: "orderflow.in.orders".into(),
            partition: 2,
            offset: 1041,
            key: key.map(<[u8]>::to_vec),
            payload,
            content_type: Some(b"application/x-protobuf".to_vec()),
            output_topic: None,
        }
    }

    fn header<'a>(output: &'a Output, name: &str) -> Option<&'a str> {
        output
            .headers
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| std::str::from_utf8(value).unwrap())
    }

    fn size(output: &Output) -> usize {
        output.key.len()
            + output.payload.len()
            + output
                .headers
                .iter()
                .map(|(name, value)| name.len() + value.len() + HEADER_OVERHEAD_BYTES)
                .sum::<usize>()
    }

    fn rejection() -> Rejection {
        Rejection {
            kind: RejectionKind::RecordTooLarge,
            message: "value is 2000000 bytes".into(),
        }
    }

    #[test]
    fn a_dead_letter_that_fits_keeps_the_original_key_and_bytes() {
        let output = dlq_of(64 * 1024).output(
            &letter(Some(b"302918475631"), b"{oops".to_vec()),
            &rejection(),
        );
        assert_eq!(output.topic, "orderflow.dlq");
        assert_eq!(
            output.key, b"302918475631",
            "the original key, not the topic"
        );
        assert_eq!(output.payload, b"{oops");
        assert_eq!(header(&output, dlq::TOPIC), Some("orderflow.in.orders"));
        assert_eq!(header(&output, dlq::PARTITION), Some("2"));
        assert_eq!(header(&output, dlq::OFFSET), Some("1041"));
        assert_eq!(header(&output, dlq::CLASS), Some("record_too_large"));
        assert_eq!(header(&output, dlq::ORIGINAL_SIZE), Some("5"));
        assert_eq!(
            header(&output, dlq::ORIGINAL_SHA256),
            Some(hex::encode(Sha256::digest(b"{oops")).as_str())
        );
        assert_eq!(header(&output, dlq::TRUNCATED), Some("false"));
        assert_eq!(
            header(&output, dlq::ORIGINAL_CONTENT_TYPE),
            Some("application/x-protobuf")
        );
    }

    #[test]
    fn a_dead_letter_too_large_for_the_dlq_is_truncated_to_fit() {
        let payload: Vec<u8> = (0..2_000_000_u32).map(|n| (n % 251) as u8).collect();
        let max = 768 * 1024;
        let output = dlq_of(max).output(&letter(Some(b"BIG"), payload.clone()), &rejection());
        assert!(size(&output) <= max, "{}", size(&output));
        assert!(
            output.payload.len() > max - 4096,
            "{}",
            output.payload.len()
        );
        assert!(payload.starts_with(&output.payload));
        assert_eq!(header(&output, dlq::TRUNCATED), Some("true"));
        assert_eq!(header(&output, dlq::ORIGINAL_SIZE), Some("2000000"));
        assert_eq!(
            header(&output, dlq::ORIGINAL_SHA256),
            Some(hex::encode(Sha256::digest(&payload)).as_str())
        );
    }

    #[test]
    fn a_huge_key_and_reason_are_cut_too() {
        let key = vec![b'k'; 100_000];
        let mut rejection = rejection();
        rejection.message = "é".repeat(10_000);
        let output = dlq_of(16 * 1024).output(&letter(Some(&key), vec![b'x'; 100]), &rejection);
        assert_eq!(output.key.len(), MAX_DEAD_LETTER_KEY_BYTES);
        assert!(header(&output, dlq::MESSAGE).unwrap().len() <= MAX_REASON_BYTES);
        assert_eq!(header(&output, dlq::TRUNCATED), Some("true"));
        assert!(size(&output) <= 16 * 1024);
    }

    #[test]
    fn each_output_is_dead_lettered_with_the_record_it_was_made_from() {
        let output = |topic: &str| Output {
            topic: topic.into(),
            key: b"tmall:1".to_vec(),
            payload: Vec::new(),
            headers: Vec::new(),
        };
        let outputs = vec![
            output("orderflow.exceptions"),
            output("orderflow.dlq"),
            output("orderflow.order-state"),
            output("orderflow.order-state"),
        ];
        // Record 0@10 made the first output, 0@11 the dead letter, 1@7 nothing, 0@12 the rest.
        let made_at = [(0, 0, 10), (1, 0, 11), (2, 1, 7), (2, 0, 12)];
        let guarded = dlq_of(16 * 1024).made_from(outputs, "orderflow.order-events", &made_at);
        let positions: Vec<Option<(i32, i64)>> = guarded
            .iter()
            .map(|(_, fallback)| match fallback {
                Some(Fallback::Output {
                    source_topic,
                    partition,
                    offset,
                }) => {
                    assert_eq!(source_topic, "orderflow.order-events");
                    Some((*partition, *offset))
                }
                Some(Fallback::Record { .. }) => panic!("a state output dead-letters itself"),
                None => None,
            })
            .collect();
        assert_eq!(
            positions,
            [Some((0, 10)), None, Some((0, 12)), Some((0, 12))]
        );
    }

    #[test]
    fn an_event_refused_for_good_is_reported_once_to_the_intake() {
        let dlq = dlq_of(64 * 1024);
        let refused = EventId::from("0123456789abcdef0123456789abcdef".to_string());
        let kept = EventId::from("fedcba9876543210fedcba9876543210".to_string());
        let event = Output {
            topic: "orderflow.order-events".into(),
            key: b"tmall:1".to_vec(),
            payload: vec![b'e'; 10],
            headers: Vec::new(),
        };
        let fallback = Fallback::Record {
            letter: letter(Some(b"1"), b"{}".to_vec()),
            event_id: refused.clone(),
        };
        let error = KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge);
        let output = dlq.refused(event, fallback, &error);
        assert_eq!(output.payload, b"{}", "the input, not the event");
        assert_eq!(header(&output, dlq::CLASS), Some("output_refused"));
        assert_eq!(
            header(&output, dlq::OUTPUT_TOPIC),
            Some("orderflow.order-events")
        );
        let batch = [kept.clone(), refused.clone()];
        assert_eq!(
            dlq.take_refused(batch.iter()),
            HashSet::from([refused.clone()])
        );
        assert!(dlq.take_refused(batch.iter()).is_empty(), "reported once");
    }

    #[test]
    fn only_what_is_wrong_with_the_record_counts_as_refused_for_good() {
        let produce = |code| KafkaError::MessageProduction(code);
        for code in [
            RDKafkaErrorCode::MessageSizeTooLarge,
            RDKafkaErrorCode::InvalidRecord,
            RDKafkaErrorCode::MessageBatchTooLarge,
        ] {
            assert!(refused_for_good(&produce(code)), "{code:?}");
        }
        for code in [
            RDKafkaErrorCode::MessageTimedOut,
            RDKafkaErrorCode::NotEnoughReplicas,
            RDKafkaErrorCode::QueueFull,
            RDKafkaErrorCode::TopicAuthorizationFailed,
        ] {
            assert!(!refused_for_good(&produce(code)), "{code:?}");
        }
    }
}
