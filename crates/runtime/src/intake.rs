//! An intake consumer: reads one input topic, validates, normalises and dedupes each record,
//! appends canonical events to the order event log and dead-letters what it can't accept.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use orderflow_domain::{EventId, Timestamp};
use orderflow_schema::{decode_within, InputTopic, Provenance, Rejection, RejectionKind};
use orderflow_store::DedupIndex;
use rdkafka::consumer::{ConsumerContext, StreamConsumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::FutureProducer;
use tracing::{debug, info, info_span, Instrument};

use crate::config::Config;
use crate::consumer::{self, BatchHandler, Committed};
use crate::kafka::{producer, Topics};
use crate::logread::content_type;
use crate::output::{send_guarded, DeadLetter, Dlq, Fallback, Sent};
use crate::state::log_record;
use crate::RuntimeError;

pub struct Intake {
    name: String,
    input: InputTopic,
    topics: Topics,
    producer: FutureProducer,
    dedup: DedupIndex,
    /// Appended and not in the dedup index yet: in batches still in flight, or acknowledged
    /// and waiting for the next index write.
    unindexed: HashSet<EventId>,
    /// Acknowledged, to be added to the dedup index at its next write.
    acknowledged: Vec<(EventId, Timestamp)>,
    /// When the index's size was last reported.
    sized: Instant,
    /// Where rejected records go (and refused events' inputs).
    dlq: Dlq,
    /// The input contract's limits and clock skew every record is decoded within.
    limits: orderflow_schema::Limits,
}

/// How often the size of the dedup index is reported.
const SIZE_EVERY: Duration = Duration::from_secs(10);

/// How often the intake adds acknowledged event ids to its dedup index (a tick, when no batch
/// is in flight). Writing it after every batch kept sled's IO threads busy with many small
/// writes; a crash loses at most this much of the index, and the copies a redelivery then
/// appends are dropped by the fold.
const INDEX_EVERY: Duration = Duration::from_millis(500);

/// The consumer name (and group id) of an input domain: `orderflow-payments`.
pub fn consumer_name(input: InputTopic) -> String {
    format!("orderflow-{}", input.domain())
}

pub async fn run(
    config: &Config,
    input: InputTopic,
    instance: &str,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), RuntimeError> {
    let name = consumer_name(input);
    let topics = Topics::new(&config.kafka.topic_prefix);
    let store_dir = config.store.dir_of(&name, instance);
    let dedup = DedupIndex::open(&store_dir, config.store.retention().dedup_window_ms)?;
    let mut intake = Intake {
        name: name.clone(),
        input,
        topics: topics.clone(),
        producer: producer(&config.kafka)?,
        dedup,
        unindexed: HashSet::new(),
        acknowledged: Vec::new(),
        sized: Instant::now()
            .checked_sub(SIZE_EVERY)
            .unwrap_or_else(Instant::now),
        dlq: Dlq::new(topics.dlq(), &name, config.limits.max_dead_letter_bytes),
        limits: config.limits.clone(),
    };
    let source = topics.name(input.name());
    let group = format!("{}{name}", config.kafka.topic_prefix);
    let (consumer, _) = consumer::subscribe_member(
        config,
        &name,
        &group,
        Some(instance),
        std::slice::from_ref(&source),
        Committed,
    )?;
    info!(consumer = %name, topic = %source, store = %store_dir.display(), "intake started");
    consumer::run(
        &name,
        &consumer,
        config.consumer.max_batch,
        &mut intake,
        shutdown,
    )
    .await?;
    intake.write_index()
}

impl Intake {
    /// Adds the acknowledged event ids to the dedup index.
    fn write_index(&mut self) -> Result<(), RuntimeError> {
        self.dedup.insert_all(self.acknowledged.iter())?;
        for (event_id, _) in self.acknowledged.drain(..) {
            self.unindexed.remove(&event_id);
        }
        Ok(())
    }
}

impl BatchHandler for Intake {
    /// The events the batch appended.
    type Done = Vec<(EventId, Timestamp)>;

    async fn handle<C: ConsumerContext>(
        &mut self,
        _consumer: &StreamConsumer<C>,
        batch: &[OwnedMessage],
    ) -> Result<(Sent, Vec<(EventId, Timestamp)>), RuntimeError> {
        let span = info_span!("intake_batch", consumer = %self.name, records = batch.len());
        async {
            // Each event with its input, dead-lettered if the log refuses the event for good.
            let mut outputs = Vec::with_capacity(batch.len());
            let mut appended: Vec<(EventId, Timestamp)> = Vec::new();
            for message in batch {
                let provenance = Provenance {
                    topic: message.topic().to_string(),
                    partition: message.partition(),
                    offset: message.offset(),
                };
                let content_type = content_type(message);
                let payload = message.payload().unwrap_or_default();
                let decoded = if message.payload().is_none() {
                    Err(Rejection {
                        kind: RejectionKind::InvalidField,
                        message: "value is empty (a tombstone is not an input fact)".into(),
                    })
                } else if payload.len() > self.limits.max_record_bytes {
                    // Not decoded at all: parsing a huge value is the harm the limit prevents.
                    Err(Rejection {
                        kind: RejectionKind::RecordTooLarge,
                        message: format!(
                            "value is {} bytes, more than limits.max-record-bytes ({})",
                            payload.len(),
                            self.limits.max_record_bytes
                        ),
                    })
                } else {
                    decode_within(
                        self.input,
                        &provenance,
                        content_type,
                        payload,
                        &self.limits,
                        Some(chrono::Utc::now()),
                    )
                };
                match decoded {
                    Ok(event) => {
                        let fresh = !self.unindexed.contains(&event.event_id)
                            && !self.dedup.contains(&event.event_id)?;
                        debug!(order_id = %event.key.masked(), kind = event.body.kind(), event_id = %event.event_id,
                            topic = %provenance.topic, partition = provenance.partition,
                            offset = provenance.offset, fresh, "input record");
                        if !fresh {
                            metrics::counter!(crate::telemetry::DUPLICATES_DROPPED.name,
                                "consumer" => self.name.clone(), "stage" => "intake").increment(1);
                            continue;
                        }
                        metrics::counter!(crate::telemetry::EVENTS_APPENDED.name,
                            "consumer" => self.name.clone(), "kind" => event.body.kind()).increment(1);
                        outputs.push((
                            log_record(&self.topics, std::slice::from_ref(&event))?,
                            Some(Fallback::Record {
                                letter: DeadLetter::of(message),
                                event_id: event.event_id.clone(),
                            }),
                        ));
                        self.unindexed.insert(event.event_id.clone());
                        appended.push((event.event_id, event.occurred_at));
                    }
                    Err(rejection) => {
                        info!(topic = %provenance.topic, partition = provenance.partition,
                            offset = provenance.offset, error_type = rejection.kind.as_str(),
                            reason = %rejection.message, "record dead-lettered");
                        outputs.push((self.dlq.output(&DeadLetter::of(message), &rejection), None));
                    }
                }
            }
            Ok((send_guarded(&self.producer, &self.dlq, outputs).await?, appended))
        }
        .instrument(span)
        .await
    }

    fn acknowledged(
        &mut self,
        mut appended: Vec<(EventId, Timestamp)>,
        _idle: bool,
    ) -> Result<(), RuntimeError> {
        // Events the log refused were dead-lettered with their input: not appended, so a
        // redriven copy must not be dropped as a duplicate.
        let refused = self
            .dlq
            .take_refused(appended.iter().map(|(event_id, _)| event_id));
        if !refused.is_empty() {
            appended.retain(|(event_id, _)| !refused.contains(event_id));
            for event_id in &refused {
                self.unindexed.remove(event_id);
            }
        }
        // Indexed only once the log has them; a crash before the index write lets a
        // redelivery append them again, and the fold drops the copies.
        self.acknowledged.extend(appended);
        Ok(())
    }

    fn tick_every(&self) -> Option<Duration> {
        Some(INDEX_EVERY)
    }

    async fn tick<C: ConsumerContext>(
        &mut self,
        _consumer: &StreamConsumer<C>,
    ) -> Result<(), RuntimeError> {
        if self.sized.elapsed() >= SIZE_EVERY {
            self.sized = Instant::now();
            metrics::gauge!(crate::telemetry::STORE_SIZE.name, "consumer" => self.name.clone())
                .set(self.dedup.size_on_disk() as f64);
        }
        if self.acknowledged.is_empty() {
            return Ok(());
        }
        self.write_index()
    }
}
