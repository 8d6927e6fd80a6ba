//! Operator commands: create topics, replay the log into a fresh store (and verify the live
//! store against it), inspect one order's timeline.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use orderflow_domain::{EntityKey, Mode, OrderId, OrderSnapshot, Timestamp};
use orderflow_store::{PartitionDigest, Retention, SledStore, StateStore};
use rdkafka::Message;
use serde::Serialize;
use sha2::{Digest, Sha256};

use orderflow_runtime::config::Config;
use orderflow_runtime::fold::{Fold, LogSkips};
use orderflow_runtime::kafka::{check_topics, create_topics, TopicDifference, Topics};
use orderflow_runtime::logread::{content_type, read_topic, Until};
use orderflow_runtime::RuntimeError;
use orderflow_schema::log::{decode_log_record, LogRecordError};
use orderflow_schema::output::{OrderStateRecord, Versioned};

use crate::report::ExceptionLedger;

pub async fn topics_create(config: &Config) -> Result<(), RuntimeError> {
    let topics = Topics::new(&config.kafka.topic_prefix);
    let created = create_topics(&config.kafka, &topics).await?;
    let all = topics.all();
    crate::outln!(
        "{} topics ready ({} created, {} existed), {} partitions each",
        all.len(),
        created.len(),
        all.len() - created.len(),
        config.kafka.partitions
    );
    print_topic_differences(&check_topics(&config.kafka, &topics).await?);
    Ok(())
}

/// `orderflow topics check`: exit 1 when a topic is missing or differs from the configuration.
pub async fn topics_check(config: &Config) -> Result<(), crate::OpsError> {
    let topics = Topics::new(&config.kafka.topic_prefix);
    let found = check_topics(&config.kafka, &topics).await?;
    print_topic_differences(&found);
    let differences = found.iter().filter(|(_, d)| d.is_difference()).count();
    if differences > 0 {
        return Err(crate::OpsError::VerificationFailed(format!(
            "{differences} topic settings differ from the configuration"
        )));
    }
    crate::outln!("{} topics as configured", topics.all().len());
    Ok(())
}

/// One line per difference. orderflow never alters an existing topic: that is the operator's
/// call (kafka-topics.sh --alter, kafka-configs.sh --alter), since it may move data.
fn print_topic_differences(found: &[(String, TopicDifference)]) {
    for (topic, difference) in found {
        crate::outln!("{topic}: {difference}");
    }
    if found.iter().any(|(_, d)| d.is_difference()) {
        crate::outln!(
            "existing topics are not changed; alter them with kafka-configs.sh or kafka-topics.sh"
        );
    }
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
///
/// Partitions fold in parallel: the reader hands each record to the worker thread of its
/// partition's group (partition modulo the cores), each with a fold of its own and its share
/// of the cache; entities never cross a partition, so the store is the one a fold of the
/// records one after the other makes.
pub async fn replay(
    config: &Config,
    into: &Path,
    until: Until,
) -> Result<ReplayReport, RuntimeError> {
    let store = Arc::new(SledStore::open(into)?);
    let topic = Topics::new(&config.kafka.topic_prefix).order_events();
    if !store.checkpoints()?.is_empty() {
        return Err(RuntimeError::Config(format!(
            "replay target {} is not empty; give a new directory",
            into.display()
        )));
    }
    store.bind(&topic, config.store.retention())?;
    let groups = std::thread::available_parallelism().map_or(1, usize::from);
    let mut workers = Vec::with_capacity(groups);
    for _ in 0..groups {
        let (records, received) = std::sync::mpsc::sync_channel(HANDED_OVER_AHEAD);
        let worker = ReplayWorker {
            store: Arc::clone(&store),
            fold: Fold::new(
                config.consumer.cache_bytes() / groups,
                config.store.retention(),
            ),
            skips: config.consumer.skip_log_records.clone(),
            topic: topic.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("replay-fold".into())
            .spawn(move || worker.run(received))
            .map_err(|error| RuntimeError::Fatal(format!("starting a replay worker: {error}")))?;
        workers.push((records, Vec::with_capacity(HAND_OVER), thread));
    }
    // Timed from the first record to the last one folded, not counting the quiet wait for the
    // end.
    let mut first: Option<Instant> = None;
    let mut partitions: BTreeSet<i32> = BTreeSet::new();
    if let Until::Offsets(targets) = &until {
        partitions.extend(targets.keys());
    }
    let read = read_topic(&config.kafka, &topic, until, |message| {
        let partition = message.partition();
        first.get_or_insert_with(Instant::now);
        partitions.insert(partition);
        let (records, pending, _) = &mut workers[partition.rem_euclid(groups as i32) as usize];
        pending.push(LogRecord {
            partition,
            offset: message.offset(),
            content_type: content_type(message).map(<[u8]>::to_vec),
            payload: message.payload().unwrap_or_default().to_vec(),
        });
        if pending.len() >= HAND_OVER {
            hand_over(records, pending)?;
        }
        Ok(())
    })
    .await;
    // Every worker finishes (or has stopped at an error) before anything is reported: a
    // worker's error says more than the reader's "a worker stopped".
    let mut events = 0;
    let mut last: Option<Instant> = None;
    let mut stopped = None;
    for (records, mut pending, thread) in workers {
        let handed = hand_over(&records, &mut pending);
        drop(records);
        let folded = thread
            .join()
            .map_err(|_| RuntimeError::Fatal("a replay worker panicked".into()))
            .and_then(|folded| folded);
        match (folded, handed) {
            (Ok((worker_events, worker_last)), Ok(())) => {
                events += worker_events;
                last = last.max(worker_last);
            }
            (Err(error), _) | (Ok(_), Err(error)) => {
                stopped.get_or_insert(error);
            }
        }
    }
    if let Some(error) = stopped {
        return Err(error);
    }
    read?;
    store.flush()?;
    let seconds = match (first, last) {
        (Some(first), Some(last)) => last.duration_since(first).as_secs_f64(),
        _ => 0.0,
    };
    let lines = partitions
        .iter()
        .map(|p| store.digest(*p).map(DigestLine::from))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ReplayReport {
        events,
        seconds,
        digest: combined(&lines),
        partitions: lines,
    })
}

/// Records handed to a replay worker at once: one channel send per this many.
const HAND_OVER: usize = 512;

/// Hand-overs that may wait for a replay worker: how far the reader may run ahead of it.
const HANDED_OVER_AHEAD: usize = 16;

/// A record of the log, as the reader hands it to a replay worker.
struct LogRecord {
    partition: i32,
    offset: i64,
    content_type: Option<Vec<u8>>,
    payload: Vec<u8>,
}

/// Hands `pending` (if any) to a replay worker, waiting while the worker is that far behind.
fn hand_over(
    records: &SyncSender<Vec<LogRecord>>,
    pending: &mut Vec<LogRecord>,
) -> Result<(), RuntimeError> {
    if pending.is_empty() {
        return Ok(());
    }
    records
        .send(std::mem::replace(pending, Vec::with_capacity(HAND_OVER)))
        .map_err(|_| RuntimeError::Fatal("a replay worker stopped".into()))
}

/// Folds the records of one group of partitions, in the order the reader hands them over.
struct ReplayWorker {
    store: Arc<SledStore>,
    fold: Fold,
    skips: LogSkips,
    topic: String,
}

impl ReplayWorker {
    /// Folds until the reader is done; returns the events folded and when the last was.
    fn run(
        mut self,
        records: Receiver<Vec<LogRecord>>,
    ) -> Result<(u64, Option<Instant>), RuntimeError> {
        let store = self.store.as_ref();
        let (mut events, mut last) = (0, None);
        for handed in records {
            for record in handed {
                let (partition, offset) = (record.partition, record.offset);
                match decode_log_record(&record.payload, record.content_type.as_deref()) {
                    Ok(decoded) => {
                        for event in &decoded {
                            self.fold
                                .apply(store, partition, offset, event, Mode::Quiet)?;
                        }
                        events += decoded.len() as u64;
                    }
                    // Skipped by the state consumer too, so both fold the same records.
                    Err(_) if self.skips.contains(partition, offset) => {
                        self.fold.skip(partition, offset)
                    }
                    Err(error) => return Err(unreadable(&self.topic, partition, offset, &error)),
                }
                // Written only when the folded entities fill the cache's budget: an order's
                // events are spread over the log, and every write that follows one of them
                // stores its state again.
                if self.fold.full() {
                    self.fold.write(store)?;
                }
            }
            last = Some(Instant::now());
        }
        self.fold.write(store)?;
        Ok((events, last))
    }
}

/// A log record a command can't read: the same stop as the state consumer's, as an error.
fn unreadable(topic: &str, partition: i32, offset: i64, error: &LogRecordError) -> RuntimeError {
    RuntimeError::Fatal(format!(
        "{topic} partition {partition} offset {offset}: {error}"
    ))
}

/// The digests of a live store, per partition it holds: none for the store of a state
/// consumer that has not folded an event yet.
pub fn live_digests(
    store_dir: &Path,
    log_topic: &str,
    retention: Retention,
) -> Result<Vec<DigestLine>, RuntimeError> {
    // Opening a directory that holds no store makes a new, empty one in it: a mistyped path,
    // or the data dir itself, would pass as "nothing to compare". Every sled store has `db`.
    if !store_dir.join("db").is_file() {
        return Err(RuntimeError::Config(format!(
            "{} holds no state store: give the state consumer's store directory, \
             {{store.data-dir}}/orderflow-state-{{instance}}",
            store_dir.display()
        )));
    }
    let store = SledStore::open(store_dir).map_err(|error| {
        RuntimeError::Config(format!(
            "{error}; stop the state consumer that owns it before verifying"
        ))
    })?;
    store.bind(log_topic, retention)?;
    store
        .checkpoints()?
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
        config.store.retention(),
    )?;
    if live.is_empty() {
        let report = ReplayReport {
            events: 0,
            seconds: 0.0,
            partitions: Vec::new(),
            digest: combined(&[]),
        };
        return Ok((report, live));
    }
    let targets = live
        .iter()
        .map(|line| (line.partition, line.checkpoint))
        .collect();
    let replayed = replay(config, scratch, Until::Offsets(targets)).await?;
    Ok((replayed, live))
}

pub use orderflow_runtime::inspect::{Inspection, TimelineEntry};

/// Everything the log says about one order, and the state it folds to. Personal data masked.
pub async fn inspect(config: &Config, order_id: &OrderId) -> Result<Inspection, RuntimeError> {
    let topic = Topics::new(&config.kafka.topic_prefix).order_events();
    let key_text = EntityKey::Order(order_id.clone()).to_string();
    let mut records = Vec::new();
    read_topic(
        &config.kafka,
        &topic,
        Until::End { quiet: END_QUIET },
        |message| {
            if message.key() != Some(key_text.as_bytes()) {
                return Ok(());
            }
            let (partition, offset) = (message.partition(), message.offset());
            match orderflow_runtime::logread::decode_events(message) {
                Ok(events) => {
                    records.extend(events.into_iter().map(|event| (partition, offset, event)))
                }
                Err(_) if config.consumer.skip_log_records.contains(partition, offset) => {}
                Err(error) => return Err(unreadable(&topic, partition, offset, &error)),
            }
            Ok(())
        },
    )
    .await?;
    Ok(orderflow_runtime::inspect::inspection(
        order_id,
        records.iter().map(|(p, o, e)| (*p, *o, e)),
        true,
    ))
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

/// The latest snapshot per order on `order-state`: the one with the highest `version`. A value
/// that is not a snapshot this build reads is counted, not skipped silently.
pub async fn latest_states(config: &Config, topics: &Topics) -> Result<LatestStates, RuntimeError> {
    let mut latest = LatestStates::default();
    read_topic(
        &config.kafka,
        &topics.order_state(),
        Until::End { quiet: END_QUIET },
        |message| {
            let Some(payload) = message.payload() else {
                return Ok(());
            };
            match OrderStateRecord::from_json(payload) {
                Ok(Versioned { record, .. }) => keep_latest(&mut latest.orders, record),
                Err(_) => latest.unreadable += 1,
            }
            Ok(())
        },
    )
    .await?;
    Ok(latest)
}

/// The latest state of every order on `order-state`.
#[derive(Debug, Default, Serialize)]
pub struct LatestStates {
    pub orders: BTreeMap<String, OrderSnapshot>,
    /// Values that were not an order snapshot this build reads.
    pub unreadable: u64,
}

/// Keeps `snapshot` unless one of a higher `version` is kept for the order already: after a
/// crash or a rebalance a state consumer may publish an older snapshot again after a newer one.
fn keep_latest(states: &mut BTreeMap<String, OrderSnapshot>, snapshot: OrderSnapshot) {
    let newer = states
        .get(&snapshot.order_id.to_string())
        .is_none_or(|kept| kept.version <= snapshot.version);
    if newer {
        states.insert(snapshot.order_id.to_string(), snapshot);
    }
}

/// What the derived topics say now: latest state per order, exception and dead-letter counts.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub orders: BTreeMap<String, OrderSnapshot>,
    /// `order-state` values that were not a snapshot this build reads.
    pub unreadable_states: u64,
    pub exceptions_raised: BTreeMap<String, u64>,
    pub exceptions_open: u64,
    pub dead_letters: BTreeMap<String, u64>,
}

pub async fn summary(config: &Config) -> Result<Summary, RuntimeError> {
    use orderflow_runtime::kafka::header;
    use orderflow_schema::headers::dlq;
    let topics = Topics::new(&config.kafka.topic_prefix);
    let until = || Until::End { quiet: END_QUIET };
    let LatestStates {
        orders,
        unreadable: unreadable_states,
    } = latest_states(config, &topics).await?;
    // The same fold as the exception report, so both count an exception once and a
    // re-delivered "raised" after its "resolved" doesn't reopen it.
    let mut ledger = ExceptionLedger::default();
    read_topic(&config.kafka, &topics.exceptions(), until(), |message| {
        ledger.apply_payload(message.payload());
        Ok(())
    })
    .await?;
    // Every change on the topic counts, whatever its time (a clock file may run ahead).
    let report = ledger.report(Timestamp::MAX_UTC, None);
    let exceptions_raised = report
        .by_kind
        .into_iter()
        .filter(|(_, activity)| activity.raised > 0)
        .map(|(kind, activity)| (kind, activity.raised))
        .collect();
    let mut dead_letters = BTreeMap::new();
    read_topic(&config.kafka, &topics.dlq(), until(), |message| {
        let class = header(message.headers(), dlq::CLASS)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_else(|| "unknown".into());
        *dead_letters.entry(class).or_insert(0) += 1;
        Ok(())
    })
    .await?;
    Ok(Summary {
        orders,
        unreadable_states,
        exceptions_raised,
        exceptions_open: report.open.len() as u64,
        dead_letters,
    })
}

#[cfg(test)]
mod tests {
    use orderflow_domain::{OrderState, Status};

    use super::*;

    #[test]
    fn an_older_snapshot_published_again_does_not_replace_a_newer_one() {
        let mut states = BTreeMap::new();
        let published = [
            (3, Status::Paid),
            (5, Status::Routed),
            (4, Status::Approved),
        ];
        for (version, status) in published {
            let mut snapshot = OrderState::new("jd:J-1".parse().unwrap()).snapshot();
            (snapshot.version, snapshot.status) = (version, status);
            keep_latest(&mut states, snapshot);
        }
        let kept = &states["jd:J-1"];
        assert_eq!((kept.version, kept.status), (5, Status::Routed));
    }

    #[tokio::test]
    async fn the_store_of_a_state_consumer_that_folded_nothing_has_nothing_to_compare() {
        let config = Config::default();
        let topic = Topics::new(&config.kafka.topic_prefix).order_events();
        let dir = tempfile::tempdir().unwrap();
        let live_dir = dir.path().join("orderflow-state-0");
        // What a state consumer leaves when it started and stopped before its first event.
        SledStore::open(&live_dir)
            .unwrap()
            .bind(&topic, config.store.retention())
            .unwrap();

        let scratch = dir.path().join("replay");
        // No broker is configured: with nothing to compare, the log is not read.
        let (replayed, live) = verify(&config, &live_dir, &scratch).await.unwrap();
        assert!(live.is_empty());
        assert_eq!((replayed.events, replayed.partitions.len()), (0, 0));
    }

    #[test]
    fn a_path_without_a_store_is_refused_and_no_store_is_made_there() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("orderflow-state-7");
        // A mistyped store, and the data dir that holds the stores.
        for path in [missing.as_path(), dir.path()] {
            let error =
                live_digests(path, "orderflow.order-events", Retention::default()).unwrap_err();
            assert!(matches!(error, RuntimeError::Config(_)), "{error}");
            assert!(
                error.to_string().contains("holds no state store"),
                "{error}"
            );
        }
        assert!(!missing.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
