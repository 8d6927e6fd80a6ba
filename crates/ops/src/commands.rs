//! Operator commands: create topics, replay the log into a fresh store (and verify the live
//! store against it), inspect one order's timeline.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use orderflow_domain::{Entity, EntityKey, Event, OrderId, OrderState};
use orderflow_store::{PartitionDigest, SledStore, StateStore};
use rdkafka::Message;
use serde::Serialize;
use sha2::{Digest, Sha256};

use orderflow_runtime::config::Config;
use orderflow_runtime::fold::{decode_log_record, Fold};
use orderflow_runtime::kafka::{create_topics, Topics};
use orderflow_runtime::logread::{read_topic, Until};
use orderflow_runtime::RuntimeError;

pub async fn topics_create(config: &Config) -> Result<(), RuntimeError> {
    let topics = Topics::new(&config.kafka.topic_prefix);
    let created = create_topics(&config.kafka, &topics).await?;
    let all = topics.all();
    println!(
        "{} topics ready ({} created, {} existed), {} partitions each",
        all.len(),
        created.len(),
        all.len() - created.len(),
        config.kafka.partitions
    );
    Ok(())
}

/// How long the log must stay quiet after the watermarks are reached to count as its end.
pub const END_QUIET: Duration = Duration::from_millis(1_500);

/// The outcome of a replay.
#[derive(Debug, Serialize)]
pub struct ReplayReport {
    pub events: u64,
    pub seconds: f64,
    pub partitions: Vec<DigestLine>,
    /// SHA-256 over the partition digests in partition order.
    pub digest: String,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct DigestLine {
    pub partition: i32,
    pub checkpoint: i64,
    pub entities: u64,
    pub sha256: String,
}

impl From<PartitionDigest> for DigestLine {
    fn from(d: PartitionDigest) -> DigestLine {
        DigestLine {
            partition: d.partition,
            checkpoint: d.checkpoint,
            entities: d.entities,
            sha256: d.sha256,
        }
    }
}

fn combined(lines: &[DigestLine]) -> String {
    let mut hasher = Sha256::new();
    for line in lines {
        hasher.update(format!(
            "{}:{}:{}\n",
            line.partition, line.checkpoint, line.sha256
        ));
    }
    hex::encode(hasher.finalize())
}

/// Folds `order-events` into the empty store at `into`, up to `until`.
pub async fn replay(
    config: &Config,
    into: &Path,
    until: Until,
) -> Result<ReplayReport, RuntimeError> {
    let store = SledStore::open(into)?;
    let topic = Topics::new(&config.kafka.topic_prefix).order_events();
    if !store.checkpoints()?.is_empty() {
        return Err(RuntimeError::Config(format!(
            "replay target {} is not empty; give a new directory",
            into.display()
        )));
    }
    store.bind(&topic)?;
    // Timed from the first record to the last, not counting the quiet wait for the end.
    let (mut first, mut last): (Option<Instant>, Option<Instant>) = (None, None);
    let mut events = 0u64;
    let mut fold = Fold::new(config.consumer.cache_entities);
    let mut partitions: BTreeMap<i32, ()> = BTreeMap::new();
    if let Until::Offsets(targets) = &until {
        partitions.extend(targets.keys().map(|p| (*p, ())));
    }
    read_topic(&config.kafka, &topic, until, |message| {
        let (partition, offset) = (message.partition(), message.offset());
        first.get_or_insert_with(Instant::now);
        partitions.insert(partition, ());
        match decode_log_record(message.payload().unwrap_or_default()) {
            Ok(event) => {
                fold.apply(&store, partition, offset, &event)?;
                events += 1;
            }
            Err(_) => fold.skip(partition, offset),
        }
        // Written only when the folded entities fill the cache: an order's events are spread
        // over the log, and every write that follows one of them stores its state again.
        if fold.unwritten() >= config.consumer.cache_entities {
            fold.write(&store)?;
        }
        last = Some(Instant::now());
        Ok(())
    })
    .await?;
    fold.write(&store)?;
    store.flush()?;
    let seconds = match (first, last) {
        (Some(first), Some(last)) => last.duration_since(first).as_secs_f64(),
        _ => 0.0,
    };
    let lines = partitions
        .keys()
        .map(|p| store.digest(*p).map(DigestLine::from))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ReplayReport {
        events,
        seconds,
        digest: combined(&lines),
        partitions: lines,
    })
}

/// The digests of a live store, per partition it holds.
pub fn live_digests(store_dir: &Path, log_topic: &str) -> Result<Vec<DigestLine>, RuntimeError> {
    let store = SledStore::open(store_dir).map_err(|error| {
        RuntimeError::Config(format!(
            "{error}; stop the state consumer that owns it before verifying"
        ))
    })?;
    store.bind(log_topic)?;
    let checkpoints = store.checkpoints()?;
    if checkpoints.is_empty() {
        return Err(RuntimeError::Config(format!(
            "{} holds no state: is it the state consumer's store directory?",
            store_dir.display()
        )));
    }
    checkpoints
        .keys()
        .map(|p| {
            store
                .digest(*p)
                .map(DigestLine::from)
                .map_err(RuntimeError::from)
        })
        .collect()
}

/// Replays each partition the live store holds up to the live checkpoint and compares.
pub async fn verify(
    config: &Config,
    live_dir: &Path,
    scratch: &Path,
) -> Result<(ReplayReport, Vec<DigestLine>), RuntimeError> {
    let live = live_digests(
        live_dir,
        &Topics::new(&config.kafka.topic_prefix).order_events(),
    )?;
    let targets = live
        .iter()
        .map(|line| (line.partition, line.checkpoint))
        .collect();
    let replayed = replay(config, scratch, Until::Offsets(targets)).await?;
    Ok((replayed, live))
}

/// One line of an order's timeline.
#[derive(Debug, Serialize)]
pub struct TimelineEntry {
    pub partition: i32,
    pub offset: i64,
    pub counted: bool,
    pub event: Event,
}

#[derive(Debug, Serialize)]
pub struct Inspection {
    pub order_id: String,
    pub timeline: Vec<TimelineEntry>,
    pub state: Option<OrderState>,
}

/// Everything the log says about one order, and the state it folds to. Personal data masked.
pub async fn inspect(config: &Config, order_id: &OrderId) -> Result<Inspection, RuntimeError> {
    let topic = Topics::new(&config.kafka.topic_prefix).order_events();
    let key = EntityKey::Order(order_id.clone());
    let key_text = key.to_string();
    let mut state = Entity::empty(&key);
    let mut timeline = Vec::new();
    read_topic(
        &config.kafka,
        &topic,
        Until::End { quiet: END_QUIET },
        |message| {
            if message.key() != Some(key_text.as_bytes()) {
                return Ok(());
            }
            if let Ok(event) = decode_log_record(message.payload().unwrap_or_default()) {
                let counted = state.apply(&event).is_some();
                timeline.push(TimelineEntry {
                    partition: message.partition(),
                    offset: message.offset(),
                    counted,
                    event: event.masked(),
                });
            }
            Ok(())
        },
    )
    .await?;
    let state = match state {
        Entity::Order(mut order) if order.version > 0 => {
            if let Some(placed) = &mut order.placed {
                placed.order.mask();
            }
            Some(order)
        }
        _ => None,
    };
    Ok(Inspection {
        order_id: order_id.to_string(),
        timeline,
        state,
    })
}

/// One record to feed: what an adapter would produce.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedRecord {
    /// Topic name without the prefix, e.g. `in.payments`.
    pub topic: String,
    pub key: Option<String>,
    /// The record value: a JSON document, or a raw string sent as is (for malformed input).
    pub value: serde_json::Value,
}

/// Produces JSON-lines records (`{"topic", "key", "value"}`) to the input topics, in order.
pub async fn feed(config: &Config, lines: &str) -> Result<usize, RuntimeError> {
    let topics = Topics::new(&config.kafka.topic_prefix);
    let mut outputs = Vec::new();
    for (index, line) in lines.lines().enumerate() {
        if line.trim().is_empty() || line.trim_start().starts_with("//") {
            continue;
        }
        let record: FeedRecord = serde_json::from_str(line)
            .map_err(|error| RuntimeError::Config(format!("feed line {}: {error}", index + 1)))?;
        let payload = match record.value {
            serde_json::Value::String(raw) => raw.into_bytes(),
            other => other.to_string().into_bytes(),
        };
        outputs.push(orderflow_runtime::output::Output {
            topic: topics.name(&record.topic),
            key: record.key.unwrap_or_default().into_bytes(),
            payload,
            headers: Vec::new(),
        });
    }
    let producer = orderflow_runtime::kafka::producer(&config.kafka)?;
    // One record at a time keeps the file's order across topics, as a platform would send it.
    for output in &outputs {
        orderflow_runtime::output::deliver(&producer, std::slice::from_ref(output)).await?;
    }
    Ok(outputs.len())
}

/// The latest snapshot per order on `order-state`.
pub async fn latest_states(
    config: &Config,
    topics: &Topics,
) -> Result<BTreeMap<String, serde_json::Value>, RuntimeError> {
    let mut states = BTreeMap::new();
    read_topic(
        &config.kafka,
        &topics.order_state(),
        Until::End { quiet: END_QUIET },
        |message| {
            if let (Some(key), Some(payload)) = (message.key(), message.payload()) {
                if let Ok(value) = serde_json::from_slice::<serde_json::Value>(payload) {
                    states.insert(String::from_utf8_lossy(key).into_owned(), value);
                }
            }
            Ok(())
        },
    )
    .await?;
    Ok(states)
}

/// What the derived topics say now: latest state per order, exception and dead-letter counts.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub orders: BTreeMap<String, serde_json::Value>,
    pub exceptions_raised: BTreeMap<String, u64>,
    pub exceptions_open: u64,
    pub dead_letters: BTreeMap<String, u64>,
}

pub async fn summary(config: &Config) -> Result<Summary, RuntimeError> {
    use orderflow_runtime::kafka::header;
    use orderflow_runtime::output::dlq_headers;
    let topics = Topics::new(&config.kafka.topic_prefix);
    let until = || Until::End { quiet: END_QUIET };
    let orders = latest_states(config, &topics).await?;
    let mut exceptions_raised = BTreeMap::new();
    let mut open: BTreeMap<String, bool> = BTreeMap::new();
    read_topic(&config.kafka, &topics.exceptions(), until(), |message| {
        let Some(change) = message
            .payload()
            .and_then(|p| serde_json::from_slice::<orderflow_domain::ExceptionChange>(p).ok())
        else {
            return Ok(());
        };
        let id = change.exception.exception_id.to_string();
        if change.exception.is_open() {
            if open.insert(id, true).is_none() {
                *exceptions_raised
                    .entry(change.exception.kind.as_str().to_string())
                    .or_insert(0) += 1;
            }
        } else {
            open.insert(id, false);
        }
        Ok(())
    })
    .await?;
    let mut dead_letters = BTreeMap::new();
    read_topic(&config.kafka, &topics.dlq(), until(), |message| {
        let class = header(message.headers(), dlq_headers::CLASS)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_else(|| "unknown".into());
        *dead_letters.entry(class).or_insert(0) += 1;
        Ok(())
    })
    .await?;
    Ok(Summary {
        orders,
        exceptions_raised,
        exceptions_open: open.values().filter(|o| **o).count() as u64,
        dead_letters,
    })
}
