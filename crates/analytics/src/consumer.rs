//! The projection as a consumer: one group member per topic it reads (`order-events`,
//! `exceptions`, `order-state`), each on the runtime's consumer loop. A batch's changes and its
//! checkpoints go to the store in one durable transaction inside [`BatchHandler::handle`]; the
//! loop stores the batch's offsets only once that returned and the `order-facts` records the
//! batch published (if any) are acknowledged. A partition starts at the store's own checkpoint,
//! so a fresh store rebuilds from offset 0 and a store restored from a backup resumes where it
//! stands, whatever the group committed.
//!
//! A record that can't be read (not JSON, a newer layout) is counted
//! (`orderflow_analytics_unreadable_records_total`) and logged with its position, then passed:
//! the analytics reader is not the writer, and the writer's own DLQ holds bad input.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rdkafka::consumer::{ConsumerContext, StreamConsumer};
use rdkafka::message::OwnedMessage;
use rdkafka::producer::FutureProducer;
use rdkafka::Message;
use tracing::warn;

use orderflow_runtime::config::Config;
use orderflow_runtime::consumer::{self, BatchHandler, StartPosition};
use orderflow_runtime::kafka::Topics;
use orderflow_runtime::logread::{content_type, read_topic, Until};
use orderflow_runtime::output::{send, Output, Sent};
use orderflow_runtime::{telemetry, RuntimeError};
use orderflow_schema::log::decode_log_record;
use orderflow_schema::output::{ExceptionChangeRecord, OrderStateRecord};

use crate::facts::order_fact;
use crate::project::{Change, Input, Projection, StateView};
use crate::store::Store;
use crate::AnalyticsError;

/// The consumer's name in logs and metrics.
pub const NAME: &str = "orderflow-analytics";

/// Which topic a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Events,
    Exceptions,
    State,
}

impl Source {
    pub const ALL: [Source; 3] = [Source::Events, Source::Exceptions, Source::State];

    pub fn topic(self, topics: &Topics) -> String {
        match self {
            Source::Events => topics.order_events(),
            Source::Exceptions => topics.exceptions(),
            Source::State => topics.order_state(),
        }
    }

    fn label(self) -> &'static str {
        match self {
            Source::Events => "order-events",
            Source::Exceptions => "exceptions",
            Source::State => "order-state",
        }
    }
}

/// What the projection reads of a record of one of its topics.
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    /// When the broker appended it, in ms since the epoch.
    pub timestamp_ms: i64,
    /// Its `content-type` header: how a log record is encoded.
    pub content_type: Option<Vec<u8>>,
    /// `None` for a tombstone.
    pub payload: Option<Vec<u8>>,
}

impl Record {
    /// What the projection reads of `message`.
    pub fn of(message: &impl Message) -> Record {
        Record {
            partition: message.partition(),
            offset: message.offset(),
            timestamp_ms: message.timestamp().to_millis().unwrap_or(0),
            content_type: content_type(message).map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec),
        }
    }
}

/// The changes one record makes; an error says why it can't be read.
pub fn fold_record(
    projection: &Projection,
    source: Source,
    record: &Record,
    payload: &[u8],
) -> Result<Vec<Change>, String> {
    match source {
        Source::Events => {
            let events = decode_log_record(payload, record.content_type.as_deref())?;
            Ok(events
                .iter()
                .flat_map(|event| {
                    projection.changes(Input::Event {
                        event,
                        partition: record.partition,
                        offset: record.offset,
                        log_ms: record.timestamp_ms,
                    })
                })
                .collect())
        }
        Source::Exceptions => {
            let change = ExceptionChangeRecord::from_json(payload).map_err(|e| e.to_string())?;
            Ok(projection.changes(Input::Exception(&change.record)))
        }
        Source::State => {
            let state = OrderStateRecord::from_json(payload).map_err(|e| e.to_string())?;
            let view = StateView::of(&state.record, record.timestamp_ms);
            Ok(projection.changes(Input::State(&view)))
        }
    }
}

/// What the consumers, the dashboard and the digest share.
pub struct Shared {
    store: Mutex<Store>,
    pub projection: Projection,
    /// Bumped after every write: the dashboard's live updates watch it.
    pub generation: AtomicU64,
    pub producer: Option<FutureProducer>,
    /// `order-facts`, when publishing it.
    pub facts_topic: Option<String>,
}

impl Shared {
    pub fn new(
        store: Store,
        projection: Projection,
        producer: Option<FutureProducer>,
        facts_topic: Option<String>,
    ) -> Shared {
        Shared {
            store: Mutex::new(store),
            projection,
            generation: AtomicU64::new(0),
            producer,
            facts_topic,
        }
    }

    /// The store, for one short use (a poisoned lock is still the store: every write is one
    /// transaction, rolled back if it panicked).
    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Folds records into the store in one transaction; returns the `order-facts` outputs of
    /// the orders they changed.
    pub fn fold(
        &self,
        source: Source,
        topic: &str,
        records: impl Iterator<Item = Record>,
    ) -> Result<Vec<Output>, AnalyticsError> {
        let mut changes = Vec::new();
        let mut next: BTreeMap<i32, i64> = BTreeMap::new();
        for record in records {
            let (partition, offset) = (record.partition, record.offset);
            let entry = next.entry(partition).or_insert(offset + 1);
            *entry = (*entry).max(offset + 1);
            let Some(payload) = &record.payload else {
                // A tombstone on the compacted order-state: nothing to fold.
                continue;
            };
            match fold_record(&self.projection, source, &record, payload) {
                Ok(more) => changes.extend(more),
                Err(reason) => {
                    metrics::counter!(telemetry::ANALYTICS_UNREADABLE.name, "topic" => source.label())
                        .increment(1);
                    warn!(topic, partition, offset, %reason, "record not folded into analytics");
                }
            }
        }
        let checkpoints: Vec<(String, i32, i64)> = next
            .into_iter()
            .map(|(partition, offset)| (topic.to_string(), partition, offset))
            .collect();
        let mut store = self.store();
        let touched = store.apply(&changes, &checkpoints)?;
        self.generation.fetch_add(1, Ordering::SeqCst);
        let mut outputs = Vec::new();
        if let Some(facts_topic) = &self.facts_topic {
            for order_id in touched {
                if let Some(fact) = order_fact(store.conn(), &order_id)? {
                    let payload = serde_json::to_vec(&fact)
                        .map_err(|e| AnalyticsError::Fatal(format!("encoding order-facts: {e}")))?;
                    outputs.push(Output {
                        topic: facts_topic.clone(),
                        key: order_id.into_bytes(),
                        payload,
                        headers: Vec::new(),
                    });
                }
            }
        }
        Ok(outputs)
    }
}

/// A partition of one topic starts at the store's checkpoint, or at 0 for a fresh store.
struct StorePosition {
    shared: Arc<Shared>,
    topic: String,
}

impl StartPosition for StorePosition {
    fn start_offset(&self, partition: i32) -> Result<Option<i64>, RuntimeError> {
        let next = self
            .shared
            .store()
            .checkpoint(&self.topic, partition)
            .map_err(RuntimeError::from)?;
        Ok(Some(next.unwrap_or(0)))
    }
}

struct Handler {
    shared: Arc<Shared>,
    source: Source,
    topic: String,
}

impl BatchHandler for Handler {
    type Done = ();

    async fn handle<C: ConsumerContext>(
        &mut self,
        _consumer: &StreamConsumer<C>,
        batch: &[OwnedMessage],
    ) -> Result<(Sent, ()), RuntimeError> {
        let records = batch.iter().map(Record::of);
        let outputs =
            tokio::task::block_in_place(|| self.shared.fold(self.source, &self.topic, records))?;
        let sent = match &self.shared.producer {
            Some(producer) => send(producer, &outputs).await?,
            None => {
                return Err(RuntimeError::Fatal(
                    "the analytics consumer runs without a producer".into(),
                ))
            }
        };
        Ok((sent, ()))
    }
}

/// Runs the consumer of `source` until `shutdown` resolves.
pub async fn run_source(
    config: &Config,
    shared: Arc<Shared>,
    source: Source,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), RuntimeError> {
    let topics = Topics::new(&config.kafka.topic_prefix);
    let topic = source.topic(&topics);
    let group = format!("{NAME}.{}", source.label());
    let start = StorePosition {
        shared: Arc::clone(&shared),
        topic: topic.clone(),
    };
    let (consumer, _generation) = consumer::subscribe(config, &group, &topic, start)?;
    let mut handler = Handler {
        shared,
        source,
        topic,
    };
    consumer::run(
        NAME,
        &consumer,
        config.consumer.max_batch,
        &mut handler,
        shutdown,
    )
    .await
}

/// Folds the three topics from offset 0 to their end into `shared`'s store, outside any group:
/// the replay that a live store must equal (and what `orderflow report` does without a store).
pub async fn replay(config: &Config, shared: &Shared) -> Result<u64, AnalyticsError> {
    let topics = Topics::new(&config.kafka.topic_prefix);
    let mut folded = 0_u64;
    for source in Source::ALL {
        let topic = source.topic(&topics);
        let mut pending: Vec<Record> = Vec::new();
        let mut failure: Option<AnalyticsError> = None;
        read_topic(
            &config.kafka,
            &topic,
            Until::End {
                quiet: std::time::Duration::from_millis(1_500),
            },
            |message| {
                pending.push(Record::of(message));
                if pending.len() >= 5_000 {
                    folded += pending.len() as u64;
                    if let Err(error) = shared.fold(source, &topic, pending.drain(..)) {
                        failure.get_or_insert(error);
                    }
                }
                Ok(())
            },
        )
        .await?;
        if let Some(error) = failure {
            return Err(error);
        }
        folded += pending.len() as u64;
        shared.fold(source, &topic, pending.into_iter())?;
    }
    Ok(folded)
}
