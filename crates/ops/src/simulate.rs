//! `orderflow simulate`: plays seeded multi-channel journeys into the input topics, measures
//! how long each fact takes to become visible state on `order-state`, and verifies that every
//! order ended where its journey says.
//!
//! Latency is measured per fact: the send time of each event id is kept, and the state
//! consumer names the event ids each snapshot reflects (header `orderflow.event-ids`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use hdrhistogram::Histogram;
use orderflow_domain::Channel;
use orderflow_sim::{plan, verify, Mix, Verdict};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::FutureRecord;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::Serialize;
use tracing::info;

use orderflow_runtime::config::Config;
use orderflow_runtime::kafka::{
    client_config, header, producer, with_retries, Topics, ATTEMPT_TIMEOUT, COMMAND_RETRY_LIMIT,
};
use orderflow_runtime::logread::{read_topic, Until};
use orderflow_runtime::output::delivered;
use orderflow_runtime::RuntimeError;
use orderflow_schema::headers;

use crate::OpsError;

pub struct Options {
    pub mix: Mix,
    /// Events per second; `None` sends as fast as the broker takes them.
    pub rate: Option<u64>,
    /// How long to wait for the pipeline to reflect every fact after the last send.
    pub settle_timeout: Duration,
    /// Facts first sent this early in the run are timed apart from the rest: clients
    /// connecting, producers getting their ids and a cold broker make them slower than the
    /// steady state the run is meant to measure.
    pub warmup: Duration,
    /// Serve a fake sales platform here for `orderflow-sync` to call back, and time the calls.
    pub platform_listen: Option<std::net::SocketAddr>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub seed: u64,
    pub tag: String,
    pub orders: usize,
    pub records_sent: usize,
    pub duplicates_sent: usize,
    pub malformed_sent: usize,
    pub send_seconds: f64,
    /// Distinct facts per second from the first to the last snapshot that reflected one.
    pub pipeline_events_per_second: f64,
    pub facts: usize,
    pub facts_not_reflected: usize,
    /// Of facts first sent after the warm-up.
    pub latency_ms: Latency,
    pub latency_ms_by_channel: BTreeMap<String, Latency>,
    pub warmup_seconds: f64,
    /// Of facts first sent during the warm-up.
    pub warmup_latency_ms: Latency,
    pub dead_letters: usize,
    /// What the fake platform saw (with `--platform-listen`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync: Option<crate::platform::SyncReport>,
    pub verdict: Verdict,
}

impl Report {
    /// Whether the run checks out: every order ended where its journey says, every fact
    /// showed on `order-state` and every malformed record was dead-lettered. The error names
    /// what didn't.
    pub fn verified(&self) -> Result<(), OpsError> {
        let v = &self.verdict;
        let mut failures = Vec::new();
        if !v.passed() {
            failures.push(format!(
                "{} of {} orders lost, {} duplicated, {} wrong",
                v.lost, v.orders, v.duplicated, v.wrong
            ));
        }
        if self.facts_not_reflected > 0 {
            failures.push(format!(
                "{} of {} facts never showed on order-state",
                self.facts_not_reflected, self.facts
            ));
        }
        if self.dead_letters != self.malformed_sent {
            failures.push(format!(
                "{} dead letters for {} malformed records sent",
                self.dead_letters, self.malformed_sent
            ));
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(OpsError::VerificationFailed(format!(
                "simulation verification failed: {}",
                failures.join("; ")
            )))
        }
    }
}

#[derive(Debug, Default, Serialize)]
pub struct Latency {
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Latency {
    pub fn of(histogram: &Histogram<u64>) -> Latency {
        let ms = |micros: u64| micros as f64 / 1_000.0;
        Latency {
            count: histogram.len(),
            p50: ms(histogram.value_at_quantile(0.50)),
            p90: ms(histogram.value_at_quantile(0.90)),
            p99: ms(histogram.value_at_quantile(0.99)),
            p999: ms(histogram.value_at_quantile(0.999)),
            max: ms(histogram.max()),
        }
    }
}

/// Facts sent and not yet seen on `order-state`, with what latency they have.
#[derive(Default)]
struct Tracker {
    /// When each was sent, its channel, and whether it was sent during the warm-up.
    pending: HashMap<String, (Instant, Channel, bool)>,
    overall: Option<Histogram<u64>>,
    warmup: Option<Histogram<u64>>,
    by_channel: BTreeMap<Channel, Histogram<u64>>,
    first_seen: Option<Instant>,
    last_seen: Option<Instant>,
    reflected: usize,
}

// 1 µs to 10 min at 3 significant digits: constant, valid bounds, so creation can't fail.
#[allow(clippy::expect_used)]
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("constant histogram bounds are valid")
}

pub async fn simulate(config: &Config, options: Options) -> Result<Report, RuntimeError> {
    options.mix.check().map_err(RuntimeError::Config)?;
    let mut mix = options.mix.clone();
    // Orders placed now: with the plan's fixed day every payment timeout would be long due.
    mix.start
        .get_or_insert_with(|| chrono::Utc::now().fixed_offset());
    let plan = plan(&mix);
    let topics = Topics::new(&config.kafka.topic_prefix);
    let tracker = Arc::new(Mutex::new(Tracker {
        overall: Some(histogram()),
        warmup: Some(histogram()),
        ..Tracker::default()
    }));
    let watcher = watch_state(config, &topics, Arc::clone(&tracker)).await?;
    let send_times: crate::platform::SendTimes = Arc::default();
    let platform = match options.platform_listen {
        Some(address) => {
            Some(crate::platform::FakePlatform::start(address, Arc::clone(&send_times)).await?)
        }
        None => None,
    };

    let producer = producer(&config.kafka)?;
    let started = Instant::now();
    let mut in_flight = FuturesUnordered::new();
    let mut last_progress = Instant::now();
    let mut sent = std::collections::HashSet::new();
    for (index, record) in plan.records.iter().enumerate() {
        if let Some(rate) = options.rate.filter(|r| *r > 0) {
            let due = started + Duration::from_secs_f64(index as f64 / rate as f64);
            tokio::time::sleep_until(due.into()).await;
        }
        // Latency counts from the first send of a fact; a retry of it is not a new fact.
        if let Some(fact) = record
            .fact
            .as_ref()
            .filter(|f| sent.insert(f.event_id.clone()))
        {
            if let Ok(mut tracker) = tracker.lock() {
                let now = Instant::now();
                let warming = now.duration_since(started) < options.warmup;
                tracker
                    .pending
                    .insert(fact.event_id.to_string(), (now, fact.channel, warming));
                if let Ok(mut sent) = send_times.lock() {
                    sent.insert(fact.event_id.to_string(), (now, fact.channel));
                }
            }
        }
        let topic = topics.name(record.topic.name());
        let key = if record.fact.is_some() {
            record.key.clone()
        } else {
            format!("broken-{}", options.mix.tag)
        };
        // Enqueued now (send_result), not when the delivery future is first polled, so the
        // send time recorded above is when the record really leaves.
        let mut pending = FutureRecord::to(&topic).key(&key).payload(&record.payload);
        loop {
            match producer.send_result(pending) {
                Ok(delivery) => {
                    in_flight.push(delivery);
                    break;
                }
                Err((error, returned))
                    if error.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) =>
                {
                    pending = returned;
                    match in_flight.next().await {
                        Some(delivery) => delivered(delivery, "sending a simulated record")?,
                        None => tokio::time::sleep(Duration::from_millis(1)).await,
                    }
                }
                Err((source, _)) => {
                    return Err(RuntimeError::Kafka {
                        context: "sending a simulated record".into(),
                        source,
                    })
                }
            }
        }
        if last_progress.elapsed() > Duration::from_secs(5) {
            last_progress = Instant::now();
            let reflected = tracker.lock().map(|t| t.reflected).unwrap_or_default();
            eprintln!(
                "simulate: sent {index}/{} records, {reflected} facts reflected",
                plan.records.len()
            );
        }
    }
    while let Some(delivery) = in_flight.next().await {
        delivered(delivery, "sending a simulated record")?;
    }
    let send_seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "simulate: all {} records sent in {send_seconds:.1}s",
        plan.records.len()
    );

    let deadline = Instant::now() + options.settle_timeout;
    loop {
        let pending = tracker.lock().map(|t| t.pending.len()).unwrap_or_default();
        if pending == 0 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    watcher.abort();
    // The channel calls trail the states: wait until the platform has been quiet for 3 s.
    if let Some(platform) = &platform {
        let quiet = Duration::from_secs(3);
        let until = Instant::now() + options.settle_timeout;
        while Instant::now() < until {
            let last = platform.last_call().unwrap_or_else(Instant::now);
            if last.elapsed() >= quiet {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    let states = crate::commands::latest_states(config, &topics).await?;
    let verdict = verify(&plan.expected, &states.orders);
    let dead_letters = count_dead_letters(config, &topics, &options.mix.tag).await?;
    let tracker = tracker
        .lock()
        .map_err(|_| RuntimeError::Fatal("latency tracker poisoned".into()))?;
    let busy = match (tracker.first_seen, tracker.last_seen) {
        (Some(first), Some(last)) => last.duration_since(first).as_secs_f64().max(1e-3),
        _ => f64::INFINITY,
    };
    let facts = plan
        .records
        .iter()
        .filter_map(|r| r.fact.as_ref().map(|f| &f.event_id))
        .collect::<std::collections::HashSet<_>>()
        .len();
    Ok(Report {
        seed: options.mix.seed,
        tag: options.mix.tag.clone(),
        orders: options.mix.orders,
        records_sent: plan.records.len(),
        duplicates_sent: plan.duplicates,
        malformed_sent: plan.malformed,
        send_seconds,
        pipeline_events_per_second: tracker.reflected as f64 / busy,
        facts,
        facts_not_reflected: tracker.pending.len(),
        latency_ms: tracker
            .overall
            .as_ref()
            .map(Latency::of)
            .unwrap_or_default(),
        latency_ms_by_channel: tracker
            .by_channel
            .iter()
            .map(|(c, h)| (c.to_string(), Latency::of(h)))
            .collect(),
        warmup_seconds: options.warmup.as_secs_f64(),
        warmup_latency_ms: tracker.warmup.as_ref().map(Latency::of).unwrap_or_default(),
        dead_letters,
        sync: platform.map(crate::platform::FakePlatform::report),
        verdict,
    })
}

/// Follows `order-state` from its current end and records the latency of every fact named.
async fn watch_state(
    config: &Config,
    topics: &Topics,
    tracker: Arc<Mutex<Tracker>>,
) -> Result<tokio::task::JoinHandle<()>, RuntimeError> {
    let consumer: StreamConsumer = client_config(&config.kafka)
        .set(
            "group.id",
            format!("orderflow-simulate-{}", std::process::id()),
        )
        .set("enable.auto.commit", "false")
        .set("fetch.queue.backoff.ms", "1")
        .set("fetch.wait.max.ms", "10")
        .create()
        .map_err(RuntimeError::kafka("creating the state watcher"))?;
    let topic = topics.order_state();
    let metadata = with_retries("reading order-state metadata", COMMAND_RETRY_LIMIT, || {
        consumer.fetch_metadata(Some(&topic), ATTEMPT_TIMEOUT)
    })
    .await?;
    let mut assignment = TopicPartitionList::new();
    for partition in metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
    {
        let (_, high) = with_retries(
            "reading order-state watermarks",
            COMMAND_RETRY_LIMIT,
            || consumer.fetch_watermarks(&topic, partition, ATTEMPT_TIMEOUT),
        )
        .await?;
        assignment
            .add_partition_offset(&topic, partition, Offset::Offset(high))
            .map_err(RuntimeError::kafka("building assignment"))?;
    }
    consumer
        .assign(&assignment)
        .map_err(RuntimeError::kafka("assigning order-state"))?;
    info!(topic = %topic, "watching order-state for reflected facts");
    Ok(tokio::spawn(async move {
        while let Ok(message) = consumer.recv().await {
            let now = Instant::now();
            let Some(ids) = header(message.headers(), headers::EVENT_IDS) else {
                continue;
            };
            let Ok(mut tracker) = tracker.lock() else {
                return;
            };
            for id in String::from_utf8_lossy(ids).split(',') {
                if let Some((sent, channel, warming)) = tracker.pending.remove(id) {
                    let micros = now.duration_since(sent).as_micros().max(1) as u64;
                    if warming {
                        if let Some(warmup) = tracker.warmup.as_mut() {
                            let _ = warmup.record(micros);
                        }
                    } else {
                        if let Some(overall) = tracker.overall.as_mut() {
                            let _ = overall.record(micros);
                        }
                        let _ = tracker
                            .by_channel
                            .entry(channel)
                            .or_insert_with(histogram)
                            .record(micros);
                    }
                    tracker.reflected += 1;
                    tracker.first_seen.get_or_insert(now);
                    tracker.last_seen = Some(now);
                }
            }
        }
    }))
}

/// Dead letters of this run: malformed records are sent with key `broken-{tag}`.
async fn count_dead_letters(
    config: &Config,
    topics: &Topics,
    tag: &str,
) -> Result<usize, RuntimeError> {
    let key = format!("broken-{tag}");
    let mut count = 0;
    read_topic(
        &config.kafka,
        &topics.dlq(),
        Until::End {
            quiet: crate::commands::END_QUIET,
        },
        |message| {
            if header(message.headers(), headers::dlq::ORIGINAL_KEY) == Some(key.as_bytes()) {
                count += 1;
            }
            Ok(())
        },
    )
    .await?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        Report {
            seed: 1,
            tag: "T".into(),
            orders: 3,
            records_sent: 12,
            duplicates_sent: 1,
            malformed_sent: 2,
            send_seconds: 0.1,
            pipeline_events_per_second: 100.0,
            facts: 10,
            facts_not_reflected: 0,
            latency_ms: Latency::default(),
            latency_ms_by_channel: BTreeMap::new(),
            warmup_seconds: 0.0,
            warmup_latency_ms: Latency::default(),
            dead_letters: 2,
            sync: None,
            verdict: Verdict {
                orders: 3,
                ..Verdict::default()
            },
        }
    }

    #[test]
    fn a_clean_run_verifies() {
        assert!(report().verified().is_ok());
    }

    #[test]
    fn a_failed_verification_names_each_difference_and_is_no_usage_error() {
        let mut run = report();
        run.verdict.lost = 1;
        run.facts_not_reflected = 4;
        run.dead_letters = 1;
        let Err(error) = run.verified() else {
            panic!("a run with a lost order verified");
        };
        assert!(matches!(error, OpsError::VerificationFailed(_)));
        assert_eq!(
            error.to_string(),
            "simulation verification failed: 1 of 3 orders lost, 0 duplicated, 0 wrong; \
             4 of 10 facts never showed on order-state; 1 dead letters for 2 malformed records sent"
        );
    }
}
