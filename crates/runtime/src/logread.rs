//! Reading a topic from the beginning to its end, outside any consumer group.
//!
//! "The end" can't be taken from high watermarks alone: some Kafka-protocol brokers (Tansu)
//! report the base offset of the last batch + 1, which undercounts. So reading stops only
//! once every partition has reached its watermark *and* nothing more arrived for a quiet
//! period — or, when exact targets are known, once each partition reached its target.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use orderflow_domain::Event;
use orderflow_schema::headers;
use orderflow_schema::log::{decode_log_record, LogRecordError};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::config::KafkaConfig;
use crate::kafka::{consumer_config, with_retries, ATTEMPT_TIMEOUT, COMMAND_RETRY_LIMIT};
use crate::RuntimeError;

/// A record's `content-type` header, which tells how a log record is encoded.
pub fn content_type<M: Message>(message: &M) -> Option<&[u8]> {
    message.headers().and_then(|record_headers| {
        record_headers
            .iter()
            .find(|header| header.key.eq_ignore_ascii_case(headers::CONTENT_TYPE))
            .and_then(|header| header.value)
    })
}

/// The events of a record of the order event log read from the broker, decoded by its
/// `content-type` (protobuf, or a JSON-era record upcast).
pub fn decode_events<M: Message>(message: &M) -> Result<Vec<Event>, LogRecordError> {
    decode_log_record(message.payload().unwrap_or_default(), content_type(message))
}

/// Where to stop.
pub enum Until {
    /// The end of every partition, judged by watermark plus `quiet` with no new record.
    End { quiet: Duration },
    /// Exactly these next-offsets per partition; other partitions are not read.
    Offsets(BTreeMap<i32, i64>),
}

/// Give up if no record at all arrives for this long while the end isn't reached.
const STALL_LIMIT: Duration = Duration::from_secs(60);

/// Calls `visit` for every record of `topic` up to `until`, in order within each partition.
pub async fn read_topic(
    kafka: &KafkaConfig,
    topic: &str,
    until: Until,
    mut visit: impl FnMut(&BorrowedMessage<'_>) -> Result<(), RuntimeError>,
) -> Result<(), RuntimeError> {
    let group = format!(
        "orderflow-reader-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    );
    let consumer: StreamConsumer = consumer_config(kafka)
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("fetch.queue.backoff.ms", "10")
        .create()
        .map_err(RuntimeError::kafka("creating log reader"))?;
    let metadata = with_retries(
        &format!("reading metadata of {topic}"),
        COMMAND_RETRY_LIMIT,
        || consumer.fetch_metadata(Some(topic), ATTEMPT_TIMEOUT),
    )
    .await?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(RuntimeError::Config(format!(
            "topic {topic} does not exist; run `orderflow topics create` first"
        )));
    }
    // Per partition, the next offset at which we are done.
    let mut goal: BTreeMap<i32, i64> = BTreeMap::new();
    let quiet = match &until {
        Until::End { quiet } => {
            for partition in &partitions {
                let (_, high) = with_retries(
                    &format!("reading watermarks of {topic}"),
                    COMMAND_RETRY_LIMIT,
                    || consumer.fetch_watermarks(topic, *partition, ATTEMPT_TIMEOUT),
                )
                .await?;
                goal.insert(*partition, high);
            }
            Some(*quiet)
        }
        Until::Offsets(targets) => {
            goal.extend(
                targets
                    .iter()
                    .filter(|(p, _)| partitions.contains(p))
                    .map(|(p, o)| (*p, *o)),
            );
            None
        }
    };
    let mut assignment = TopicPartitionList::new();
    for partition in goal.keys() {
        assignment
            .add_partition_offset(topic, *partition, Offset::Beginning)
            .map_err(RuntimeError::kafka("building assignment"))?;
    }
    consumer
        .assign(&assignment)
        .map_err(RuntimeError::kafka(format!("assigning {topic}")))?;
    let mut position: BTreeMap<i32, i64> = goal.keys().map(|p| (*p, 0)).collect();
    let reached = |position: &BTreeMap<i32, i64>| {
        goal.iter()
            .all(|(p, end)| position.get(p).copied().unwrap_or(0) >= *end)
    };
    let mut last_record = Instant::now();
    loop {
        if quiet.is_none() && reached(&position) {
            return Ok(());
        }
        let wait = quiet.unwrap_or(Duration::from_millis(500));
        match tokio::time::timeout(wait, consumer.recv()).await {
            Ok(Ok(message)) => {
                last_record = Instant::now();
                let partition = message.partition();
                let within = match &until {
                    Until::End { .. } => true,
                    Until::Offsets(_) => message.offset() < goal.get(&partition).copied().unwrap_or(0),
                };
                if within {
                    visit(&message)?;
                }
                position.insert(partition, message.offset() + 1);
            }
            Ok(Err(error)) => {
                return Err(RuntimeError::Kafka {
                    context: format!("reading {topic}"),
                    source: error,
                })
            }
            Err(_) if quiet.is_some() && reached(&position) => return Ok(()),
            Err(_) if last_record.elapsed() > STALL_LIMIT => {
                return Err(RuntimeError::Fatal(format!(
                    "reading {topic} stalled: no record for {}s before reaching the end ({position:?} of {goal:?})",
                    STALL_LIMIT.as_secs()
                )))
            }
            Err(_) => {}
        }
    }
}
