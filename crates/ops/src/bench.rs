//! Baselines the pipeline is measured against, through the same broker in the same run:
//! a plain consume→produce relay of the input topics, and a raw read of the order event log;
//! where a fact's latency goes, hop by hop, from the records' timestamps; and how many broker
//! records the pipeline writes and reads per input fact.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::message::{Message, OwnedMessage};
use serde::Serialize;

use orderflow_schema::{headers, InputTopic};

use crate::simulate::{histogram, Latency};
use orderflow_runtime::config::Config;
use orderflow_runtime::consumer::{self, BatchHandler, Committed};
use orderflow_runtime::kafka::{
    client_config, consumer_config, header, producer, with_retries, Topics, ATTEMPT_TIMEOUT,
    COMMAND_RETRY_LIMIT,
};
use orderflow_runtime::logread::{decode_events, read_topic, Until};
use orderflow_runtime::output::{send, Output, Sent};
use orderflow_runtime::RuntimeError;

#[derive(Debug, Serialize)]
pub struct Rate {
    pub records: usize,
    pub seconds: f64,
    pub records_per_second: f64,
}

impl Rate {
    fn new(records: usize, first: Option<Instant>, last: Option<Instant>) -> Rate {
        let seconds = match (first, last) {
            (Some(first), Some(last)) => last.duration_since(first).as_secs_f64().max(1e-3),
            _ => 0.0,
        };
        Rate {
            records,
            seconds,
            records_per_second: if seconds > 0.0 {
                records as f64 / seconds
            } else {
                0.0
            },
        }
    }
}

/// Copies records to `bench.relay` with the pipeline's own batching and commit discipline,
/// and nothing else: no parsing, no state.
struct Relay {
    producer: rdkafka::producer::FutureProducer,
    topic: String,
    relayed: Arc<AtomicUsize>,
    window: Arc<Mutex<(Option<Instant>, Option<Instant>)>>,
}

impl BatchHandler for Relay {
    /// How many records the batch relayed.
    type Done = usize;

    async fn handle<C: ConsumerContext>(
        &mut self,
        _consumer: &StreamConsumer<C>,
        batch: &[OwnedMessage],
    ) -> Result<(Sent, usize), RuntimeError> {
        if let Ok(mut window) = self.window.lock() {
            window.0.get_or_insert_with(Instant::now);
        }
        let outputs: Vec<Output> = batch
            .iter()
            .map(|message| Output {
                topic: self.topic.clone(),
                key: message.key().unwrap_or_default().to_vec(),
                payload: message.payload().unwrap_or_default().to_vec(),
                headers: Vec::new(),
            })
            .collect();
        Ok((send(&self.producer, &outputs).await?, batch.len()))
    }

    fn acknowledged(&mut self, relayed: usize, _idle: bool) -> Result<(), RuntimeError> {
        self.relayed.fetch_add(relayed, Ordering::SeqCst);
        if let Ok(mut window) = self.window.lock() {
            window.1 = Some(Instant::now());
        }
        Ok(())
    }
}

/// Relays the input topics until `count` records went through.
pub async fn relay(config: &Config, count: usize) -> Result<Rate, RuntimeError> {
    let topics = Topics::new(&config.kafka.topic_prefix);
    let target = topics.name("bench.relay");
    let admin: AdminClient<DefaultClientContext> = client_config(&config.kafka)
        .create()
        .map_err(RuntimeError::kafka("creating admin client"))?;
    let _ = admin
        .create_topics(
            &[NewTopic::new(
                &target,
                config.kafka.partitions,
                TopicReplication::Fixed(config.kafka.replication_factor),
            )],
            &AdminOptions::new(),
        )
        .await;
    let relayed = Arc::new(AtomicUsize::new(0));
    let window = Arc::new(Mutex::new((None, None)));
    let mut handler = Relay {
        producer: producer(&config.kafka)?,
        topic: target,
        relayed: Arc::clone(&relayed),
        window: Arc::clone(&window),
    };
    let group = format!(
        "{}bench-relay-{}",
        config.kafka.topic_prefix,
        std::process::id()
    );
    let sources: Vec<String> = ["in.orders", "in.payments", "in.shipments", "in.inventory"]
        .iter()
        .map(|t| topics.name(t))
        .collect();
    let (consumer, _) = consumer::subscribe_all(config, &group, &sources, Committed)?;
    let done = {
        let relayed = Arc::clone(&relayed);
        async move {
            while relayed.load(Ordering::SeqCst) < count {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    consumer::run(
        "bench-relay",
        &consumer,
        config.consumer.max_batch,
        &mut handler,
        done,
    )
    .await?;
    let (first, last) = window.lock().map(|w| *w).unwrap_or((None, None));
    Ok(Rate::new(relayed.load(Ordering::SeqCst), first, last))
}

/// Reads `order-events` from the beginning to the end and counts, doing nothing else.
pub async fn read_log(config: &Config) -> Result<Rate, RuntimeError> {
    let topic = Topics::new(&config.kafka.topic_prefix).order_events();
    let mut records = 0usize;
    let (mut first, mut last) = (None, None);
    read_topic(
        &config.kafka,
        &topic,
        Until::End {
            quiet: crate::commands::END_QUIET,
        },
        |message| {
            let now = Instant::now();
            first.get_or_insert(now);
            last = Some(now);
            records += 1;
            std::hint::black_box(message.payload());
            Ok(())
        },
    )
    .await?;
    Ok(Rate::new(records, first, last))
}

/// Per-hop latency of the facts on a deployment's topics, in ms.
#[derive(Debug, Serialize)]
pub struct Hops {
    /// Facts whose input record, log record and first snapshot were all found.
    pub facts: u64,
    /// Facts sent in the first `skip` seconds, left out.
    pub skipped: u64,
    /// Input record produced → its log record produced (the intake consumer).
    pub intake_ms: Latency,
    /// Log record produced → the first `order-state` snapshot naming it produced (the state
    /// consumer).
    pub state_ms: Latency,
    /// Both hops: input record produced → the snapshot produced.
    pub total_ms: Latency,
}

/// Joins every input record to the log record its fact became (by the log record's source
/// topic, partition and offset) and to the first snapshot that reflects it (by the
/// `orderflow.event-ids` header), and times each hop by the records' create times, which
/// their producers set. Facts sent in the first `skip` are left out.
pub async fn hops(config: &Config, skip: Duration) -> Result<Hops, RuntimeError> {
    let topics = Topics::new(&config.kafka.topic_prefix);
    let until = || Until::End {
        quiet: crate::commands::END_QUIET,
    };
    let created = |message: &rdkafka::message::BorrowedMessage<'_>| message.timestamp().to_millis();
    // Input record → when it was produced.
    let mut sent: HashMap<(String, i32, i64), i64> = HashMap::new();
    for input in InputTopic::ALL {
        let topic = topics.name(input.name());
        read_topic(&config.kafka, &topic, until(), |message| {
            if let Some(at) = created(message) {
                sent.insert((topic.clone(), message.partition(), message.offset()), at);
            }
            Ok(())
        })
        .await?;
    }
    // Fact → when its input and its log record were produced.
    let mut logged: HashMap<String, (i64, i64)> = HashMap::new();
    read_topic(&config.kafka, &topics.order_events(), until(), |message| {
        let (Ok(events), Some(at)) = (decode_events(message), created(message)) else {
            return Ok(());
        };
        for event in events {
            let source = &event.source;
            if let (Some(partition), Some(offset)) = (source.partition, source.offset) {
                if let Some(input_at) = sent.get(&(source.origin.clone(), partition, offset)) {
                    logged
                        .entry(event.event_id.to_string())
                        .or_insert((*input_at, at));
                }
            }
        }
        Ok(())
    })
    .await?;
    let first_sent = logged.values().map(|(input_at, _)| *input_at).min();
    let skip_until = first_sent.unwrap_or_default() + skip.as_millis() as i64;
    let (mut intake, mut state, mut total) = (histogram(), histogram(), histogram());
    let (mut facts, mut skipped) = (0, 0);
    read_topic(&config.kafka, &topics.order_state(), until(), |message| {
        let (Some(ids), Some(at)) = (
            header(message.headers(), headers::EVENT_IDS),
            created(message),
        ) else {
            return Ok(());
        };
        for id in String::from_utf8_lossy(ids).split(',') {
            let Some((input_at, log_at)) = logged.remove(id) else {
                continue;
            };
            if input_at < skip_until {
                skipped += 1;
                continue;
            }
            facts += 1;
            let micros = |from: i64, to: i64| (to - from).max(0) as u64 * 1_000 + 1;
            let _ = intake.record(micros(input_at, log_at));
            let _ = state.record(micros(log_at, at));
            let _ = total.record(micros(input_at, at));
        }
        Ok(())
    })
    .await?;
    Ok(Hops {
        facts,
        skipped,
        intake_ms: Latency::of(&intake),
        state_ms: Latency::of(&state),
        total_ms: Latency::of(&total),
    })
}

/// The topics the pipeline writes, as [`records`] reports them.
const WRITTEN_TOPICS: [&str; 6] = [
    "order-events",
    "order-state",
    "exceptions",
    "notifications",
    "warehouse-routing",
    "dlq",
];

/// What a run's topics hold, per input record: the broker records the pipeline wrote and
/// read for each fact it was given.
#[derive(Debug, Serialize)]
pub struct Records {
    /// Records on the input topics (`in.*`): the facts given, duplicates and malformed ones
    /// included.
    pub inputs: i64,
    /// Records per topic (the prefix left off): the input topics and the written ones.
    pub topics: BTreeMap<String, i64>,
    /// The topics the pipeline writes, in the order they are reported.
    pub written_topics: Vec<&'static str>,
    /// Per written topic, its records per input record.
    pub per_input: BTreeMap<String, f64>,
    /// Records on the written topics.
    pub written: i64,
    pub written_per_input: f64,
    /// Records the consumers read: the input topics (the intakes) and the log (the state
    /// consumer).
    pub read: i64,
    pub read_per_input: f64,
}

/// Counts the records of the deployment's topics (high watermark minus low, over every
/// partition). Only exact on topics that hold one run (a fresh prefix), before compaction
/// (`order-state`) or retention removed any, and on a broker whose watermarks are exact (Tansu
/// undercounts, [`read_topic`]).
pub async fn records(config: &Config) -> Result<Records, RuntimeError> {
    let topics = Topics::new(&config.kafka.topic_prefix);
    let consumer: BaseConsumer = consumer_config(&config.kafka)
        .set(
            "group.id",
            format!("{}bench-records", config.kafka.topic_prefix),
        )
        .create()
        .map_err(RuntimeError::kafka("creating a watermark reader"))?;
    let inputs_names = InputTopic::ALL.iter().map(|input| input.name());
    let mut held = BTreeMap::new();
    for name in inputs_names.chain(WRITTEN_TOPICS) {
        held.insert(
            name.to_string(),
            records_of(&consumer, &topics.name(name)).await?,
        );
    }
    let inputs: i64 = InputTopic::ALL.iter().map(|input| held[input.name()]).sum();
    let written: i64 = WRITTEN_TOPICS.iter().map(|name| held[*name]).sum();
    let read = inputs + held["order-events"];
    let per_input = |records: i64| records as f64 / inputs.max(1) as f64;
    Ok(Records {
        inputs,
        per_input: WRITTEN_TOPICS
            .iter()
            .map(|name| (name.to_string(), per_input(held[*name])))
            .collect(),
        topics: held,
        written_topics: WRITTEN_TOPICS.to_vec(),
        written,
        written_per_input: per_input(written),
        read,
        read_per_input: per_input(read),
    })
}

/// The records `topic` holds: high watermark minus low, summed over its partitions.
async fn records_of(consumer: &BaseConsumer, topic: &str) -> Result<i64, RuntimeError> {
    let metadata = with_retries(
        &format!("reading metadata of {topic}"),
        COMMAND_RETRY_LIMIT,
        || consumer.fetch_metadata(Some(topic), ATTEMPT_TIMEOUT),
    )
    .await?;
    let mut records = 0;
    for partition in metadata
        .topics()
        .iter()
        .flat_map(|topic| topic.partitions().iter().map(|partition| partition.id()))
    {
        let (low, high) = with_retries(
            &format!("reading watermarks of {topic}"),
            COMMAND_RETRY_LIMIT,
            || consumer.fetch_watermarks(topic, partition, ATTEMPT_TIMEOUT),
        )
        .await?;
        records += high - low;
    }
    Ok(records)
}
