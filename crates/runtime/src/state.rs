//! The state consumer: folds the order event log into per-order state in sled, records the
//! decisions orders call for back into the log, and publishes snapshots and exceptions.
//!
//! On assignment a partition starts at the local store's checkpoint, not the group's
//! committed offset: a partition this instance never owned (or owned long ago) is rebuilt
//! from the log. Records below the group's committed offset were already published by the
//! previous owner, so they are folded quietly ("catch-up"); from the committed offset on the
//! consumer is live and publishes what changes.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use orderflow_domain::{decide, Entity, EntityKey, Event, EventId, Rules};
use orderflow_schema::{Rejection, RejectionKind};
use orderflow_store::{SledStore, StateStore};
use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::FutureProducer;
use rdkafka::{Offset, TopicPartitionList};
use tracing::{debug, info, info_span, warn, Instrument};

use crate::config::Config;
use crate::consumer::{self, BatchHandler, StartPosition};
use crate::fold::{decode_log_record, Applied, Fold};
use crate::kafka::{producer, with_retries, Topics};
use crate::output::{deliver, DeadLetter, Output};
use crate::RuntimeError;

pub const CONSUMER_NAME: &str = "orderflow-state";

/// Header of an `order-state` record: the ids of the events it is the first snapshot after.
pub const EVENT_IDS_HEADER: &str = "orderflow.event-ids";

/// Partitions start where the local store left off.
pub struct StoreStart(pub Arc<SledStore>);

impl StartPosition for StoreStart {
    fn start_offset(&self, partition: i32) -> Option<i64> {
        // No checkpoint: rebuild this partition from the beginning of the log.
        Some(self.0.checkpoint(partition).ok().flatten().unwrap_or(0))
    }
}

pub struct StateConsumer {
    topics: Topics,
    producer: FutureProducer,
    store: Arc<SledStore>,
    rules: Rules,
    generation: Arc<AtomicU64>,
    seen_generation: u64,
    /// Per partition, the group's committed offset when it was assigned: below it, quiet.
    live_from: HashMap<i32, i64>,
    /// Decisions appended but not read back yet, so they aren't appended again meanwhile.
    in_flight: HashSet<EventId>,
}

pub fn store_dir(config: &Config, instance: &str) -> std::path::PathBuf {
    config
        .store
        .data_dir
        .join(format!("{CONSUMER_NAME}-{instance}"))
}

pub async fn run(
    config: &Config,
    instance: &str,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), RuntimeError> {
    let topics = Topics::new(&config.kafka.topic_prefix);
    let dir = store_dir(config, instance);
    let store = Arc::new(SledStore::open(&dir)?);
    store.bind(&topics.order_events())?;
    let group = format!("{}{CONSUMER_NAME}", config.kafka.topic_prefix);
    let (consumer, generation) = consumer::subscribe(
        config,
        &group,
        &topics.order_events(),
        StoreStart(Arc::clone(&store)),
    )?;
    let mut state = StateConsumer {
        topics,
        producer: producer(&config.kafka)?,
        store,
        rules: config.rules.clone(),
        generation,
        seen_generation: 0,
        live_from: HashMap::new(),
        in_flight: HashSet::new(),
    };
    info!(consumer = CONSUMER_NAME, store = %dir.display(), rules = %config.rules.version, "state consumer started");
    consumer::run(
        CONSUMER_NAME,
        &consumer,
        config.consumer.max_batch,
        &mut state,
        shutdown,
    )
    .await?;
    state.store.flush()?;
    Ok(())
}

impl StateConsumer {
    /// Learns the committed offset of partitions new to this assignment.
    fn refresh_live_from<C: ConsumerContext>(
        &mut self,
        consumer: &StreamConsumer<C>,
        batch: &[OwnedMessage],
    ) -> Result<(), RuntimeError> {
        let generation = self.generation.load(Ordering::SeqCst);
        if generation != self.seen_generation {
            self.live_from.clear();
            self.seen_generation = generation;
        }
        let unknown: BTreeSet<(&str, i32)> = batch
            .iter()
            .filter(|message| !self.live_from.contains_key(&message.partition()))
            .map(|message| (message.topic(), message.partition()))
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for (topic, partition) in &unknown {
            tpl.add_partition(topic, *partition);
        }
        let committed = with_retries("reading committed offsets", || {
            consumer.committed_offsets(tpl.clone(), Duration::from_secs(10))
        })?;
        for element in committed.elements() {
            let offset = match element.offset() {
                Offset::Offset(offset) => offset,
                _ => 0,
            };
            info!(
                partition = element.partition(),
                live_from = offset,
                "partition progress known"
            );
            self.live_from.insert(element.partition(), offset);
        }
        Ok(())
    }
}

impl BatchHandler for StateConsumer {
    async fn handle<C: ConsumerContext>(
        &mut self,
        consumer: &StreamConsumer<C>,
        batch: &[OwnedMessage],
    ) -> Result<(), RuntimeError> {
        self.refresh_live_from(consumer, batch)?;
        let span = info_span!(
            "state_batch",
            consumer = CONSUMER_NAME,
            records = batch.len()
        );
        async {
            let log_topic = self.topics.order_events();
            let dlq_topic = self.topics.dlq();
            let exceptions_topic = self.topics.exceptions();
            let mut outputs = Vec::new();
            // Per order touched live: the events folded since its last snapshot, so a reader can tell
            // which facts a snapshot reflects (end-to-end latency is measured with it).
            let mut snapshots: BTreeMap<(i32, EntityKey), Vec<String>> = BTreeMap::new();
            let mut fold = Fold::new(self.store.as_ref());
            for message in batch {
                let (partition, offset) = (message.partition(), message.offset());
                let live = offset >= self.live_from.get(&partition).copied().unwrap_or(0);
                let event = match decode_log_record(message.payload().unwrap_or_default()) {
                    Ok(event) => event,
                    Err(reason) => {
                        warn!(topic = message.topic(), partition, offset, %reason, "unreadable order event dead-lettered");
                        if live {
                            outputs.push(
                                DeadLetter {
                                    dlq_topic: &dlq_topic,
                                    consumer: CONSUMER_NAME,
                                    source_topic: message.topic(),
                                    partition,
                                    offset,
                                    key: message.key(),
                                    payload: message.payload().unwrap_or_default(),
                                }
                                .output(&Rejection { kind: RejectionKind::MalformedJson, message: reason }),
                            );
                        }
                        fold.skip(partition, offset);
                        continue;
                    }
                };
                self.in_flight.remove(&event.event_id);
                let changes = match fold.apply(partition, offset, &event)? {
                    Applied::Duplicate => {
                        debug!(order_id = %event.key, event_id = %event.event_id, partition, offset, "duplicate event dropped");
                        metrics::counter!("orderflow_duplicates_dropped_total",
                            "consumer" => CONSUMER_NAME, "stage" => "fold").increment(1);
                        continue;
                    }
                    Applied::Changed(changes) => changes,
                };
                debug!(order_id = %event.key, kind = event.body.kind(), partition, offset, live, "event folded");
                if !live {
                    continue;
                }
                snapshots.entry((partition, event.key.clone())).or_default().push(event.event_id.to_string());
                for change in changes {
                    metrics::counter!("orderflow_exceptions_total",
                        "kind" => change.exception.kind.as_str(),
                        "action" => if change.exception.is_open() { "raised" } else { "resolved" })
                    .increment(1);
                    outputs.push(Output {
                        topic: exceptions_topic.clone(),
                        key: change.order_id.to_string().into_bytes(),
                        headers: vec![("orderflow.change-id", change.change_id().into_bytes())],
                        payload: to_json(&change)?,
                    });
                }
                if let Some(Entity::Order(order)) = fold.entity(partition, &event.key) {
                    for body in decide(order, &self.rules) {
                        let decision = Event::decision(
                            &order.order_id,
                            chrono::Utc::now(),
                            CONSUMER_NAME,
                            &event.event_id,
                            body,
                        );
                        if self.in_flight.insert(decision.event_id.clone()) {
                            info!(order_id = %order.order_id, decision = decision.body.kind(),
                                rule_version = %self.rules.version, "decision recorded");
                            metrics::counter!("orderflow_decisions_total", "kind" => decision.body.kind()).increment(1);
                            outputs.push(Output {
                                topic: log_topic.clone(),
                                key: decision.key.to_string().into_bytes(),
                                headers: vec![("content-type", b"application/json".to_vec())],
                                payload: to_json(&decision)?,
                            });
                        }
                    }
                }
            }
            for ((partition, key), event_ids) in &snapshots {
                if let Some(Entity::Order(order)) = fold.entity(*partition, key) {
                    outputs.push(Output {
                        topic: self.topics.order_state(),
                        key: key.to_string().into_bytes(),
                        headers: vec![
                            ("orderflow.version", order.version.to_string().into_bytes()),
                            (EVENT_IDS_HEADER, event_ids.join(",").into_bytes()),
                        ],
                        payload: to_json(&order.snapshot())?,
                    });
                }
            }
            deliver(&self.producer, &outputs).await?;
            // Not flushed here: state and checkpoint are written in one atomic batch, and sled
            // flushes in the background. A crash can lose the newest batches of the store, never
            // half of one; the consumer then restarts at the older checkpoint and refolds up to
            // the committed offset quietly, because those outputs are already on the broker.
            fold.write()?;
            Ok(())
        }
        .instrument(span)
        .await
    }
}

fn to_json(value: &impl serde::Serialize) -> Result<Vec<u8>, RuntimeError> {
    serde_json::to_vec(value)
        .map_err(|error| RuntimeError::Fatal(format!("encoding output: {error}")))
}
