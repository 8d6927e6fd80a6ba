//! Baselines the pipeline is measured against, through the same broker in the same run:
//! a plain consume→produce relay of the input topics, and a raw read of the order event log.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{ConsumerContext, StreamConsumer};
use rdkafka::message::{Message, OwnedMessage};
use serde::Serialize;

use crate::config::Config;
use crate::consumer::{self, BatchHandler, Committed};
use crate::kafka::{client_config, producer, Topics};
use crate::logread::{read_topic, Until};
use crate::output::{send, Output, Sent};
use crate::RuntimeError;

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
            quiet: crate::ops::END_QUIET,
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
