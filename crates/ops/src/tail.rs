//! `orderflow tail`: the order event log as JSON lines, one line per event with the record's
//! partition and offset, for people and `jq`. The log is protobuf; this is how people read it.
//! Personal data is masked unless asked for (`--unmasked`), as in `inspect` and `dlq show`.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use orderflow_domain::{mask_buyer_id, EntityKey, Event};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::Serialize;

use orderflow_runtime::config::Config;
use orderflow_runtime::kafka::{
    consumer_config, with_retries, Topics, ATTEMPT_TIMEOUT, COMMAND_RETRY_LIMIT,
};
use orderflow_runtime::logread::decode_events;
use orderflow_runtime::RuntimeError;

use crate::OpsError;

/// What to print.
#[derive(Debug, clap::Args)]
pub struct TailArgs {
    /// Start at the beginning of the log; otherwise at its end (only events appended from now
    /// on, with `--follow`).
    #[arg(long)]
    pub from_beginning: bool,
    /// Keep printing events as they are appended; otherwise stop at the end the log had when
    /// the command started.
    #[arg(long)]
    pub follow: bool,
    /// Only this partition.
    #[arg(long)]
    pub partition: Option<i32>,
    /// Stop after this many events.
    #[arg(long)]
    pub limit: Option<u64>,
    /// Print personal data (buyer ids, phones, street addresses, invoice titles) as it is.
    #[arg(long)]
    pub unmasked: bool,
}

/// Give up when the log has records left to read but none arrives for this long.
const STALL_LIMIT: Duration = Duration::from_secs(30);

/// One line of output: the event with where its record is.
#[derive(Serialize)]
struct Line<'a> {
    partition: i32,
    offset: i64,
    #[serde(flatten)]
    event: &'a Event,
}

/// Prints the log's events from the start position to the end (or forever with `--follow`).
pub async fn run(config: &Config, args: TailArgs) -> Result<(), OpsError> {
    let topic = Topics::new(&config.kafka.topic_prefix).order_events();
    let group = format!(
        "orderflow-tail-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    );
    let consumer: StreamConsumer = consumer_config(&config.kafka)
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .map_err(RuntimeError::kafka("creating the log reader"))?;
    let metadata = with_retries(
        &format!("reading metadata of {topic}"),
        COMMAND_RETRY_LIMIT,
        || consumer.fetch_metadata(Some(&topic), ATTEMPT_TIMEOUT),
    )
    .await?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .filter(|id| args.partition.is_none_or(|wanted| wanted == *id))
        .collect();
    if partitions.is_empty() {
        return Err(OpsError::NotFound(match args.partition {
            Some(partition) => format!("{topic} has no partition {partition}"),
            None => format!("{topic} has no partitions; create the topics first"),
        }));
    }
    // Where each partition starts, and (without --follow) the end it stops at.
    let mut assignment = TopicPartitionList::new();
    let mut ends: BTreeMap<i32, i64> = BTreeMap::new();
    for partition in partitions {
        let (low, high) = with_retries(
            &format!("reading the offsets of {topic} partition {partition}"),
            COMMAND_RETRY_LIMIT,
            || consumer.fetch_watermarks(&topic, partition, ATTEMPT_TIMEOUT),
        )
        .await?;
        let start = if args.from_beginning { low } else { high };
        assignment
            .add_partition_offset(&topic, partition, Offset::Offset(start))
            .map_err(RuntimeError::kafka("assigning the log's partitions"))?;
        if high > start {
            ends.insert(partition, high);
        }
    }
    consumer
        .assign(&assignment)
        .map_err(RuntimeError::kafka("assigning the log's partitions"))?;
    let mut out = std::io::stdout().lock();
    let mut printed = 0_u64;
    while args.follow || !ends.is_empty() {
        if args.limit.is_some_and(|limit| printed >= limit) {
            break;
        }
        let message = if args.follow {
            consumer.recv().await
        } else {
            tokio::time::timeout(STALL_LIMIT, consumer.recv())
                .await
                .map_err(|_| {
                    RuntimeError::Fatal(format!(
                        "no record of {topic} arrived for {} s before its end",
                        STALL_LIMIT.as_secs()
                    ))
                })?
        }
        .map_err(RuntimeError::kafka(format!("reading {topic}")))?;
        let (partition, offset) = (message.partition(), message.offset());
        if ends.get(&partition).is_some_and(|end| offset + 1 >= *end) {
            ends.remove(&partition);
        }
        let events = match decode_events(&message) {
            Ok(events) => events,
            Err(error) => {
                // Not a line of the output: a `jq` filter reads events only.
                eprintln!("{topic} partition {partition} offset {offset}: {error}");
                continue;
            }
        };
        for event in events {
            if args.limit.is_some_and(|limit| printed >= limit) {
                break;
            }
            let event = if args.unmasked { event } else { masked(&event) };
            let line = serde_json::to_string(&Line {
                partition,
                offset,
                event: &event,
            })
            .map_err(|error| RuntimeError::Fatal(format!("writing an event as JSON: {error}")))?;
            // A reader that went away (`| head`) ends the command, not as an error.
            if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                return Ok(());
            }
            printed += 1;
        }
    }
    Ok(())
}

/// `event` as people may see it: its personal data and a buyer's key masked.
fn masked(event: &Event) -> Event {
    let mut event = event.masked();
    if let EntityKey::Buyer(buyer_id) = &mut event.key {
        *buyer_id = mask_buyer_id(buyer_id);
    }
    event
}
