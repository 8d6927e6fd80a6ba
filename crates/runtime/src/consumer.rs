//! The loop every consumer binary runs: take a batch, let the handler send its outputs, go on
//! with the next batch while the broker acknowledges them, and store each batch's offsets for
//! the next commit once its outputs are acknowledged.
//!
//! Offsets are stored only after every output of the batch was acknowledged by the broker and
//! the handler's own follow-up (its local state) is done, batch after batch in order
//! (rust-rdkafka's at-least-once pattern); duplicates that at-least-once allows are absorbed by
//! event ids downstream.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::stream::FuturesOrdered;
use futures::StreamExt;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol, StreamConsumer,
};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::Notify;
use tracing::{error, info, warn};

use crate::config::{Config, GroupProtocol};
use crate::kafka::{consumer_config, creation_error, forward_log, Watch};
use crate::output::Sent;
use crate::telemetry::health;
use crate::RuntimeError;

/// Where a partition should start when this instance is given it: the local store's
/// checkpoint for the state consumer, the group's committed offset (`None`) for intake.
pub trait StartPosition: Send + Sync + 'static {
    /// An error stops the consumer: a partition whose start is unknown is not consumed from
    /// anywhere else, since a wrong start would skip records or silently rebuild.
    fn start_offset(&self, partition: i32) -> Result<Option<i64>, RuntimeError>;

    /// Whether a partition new to this instance is rebuilt before it is live (not ready
    /// meanwhile); whoever rebuilds it reports it live ([`crate::telemetry::Health::set_live`]).
    fn rebuilds(&self) -> bool {
        false
    }
}

/// Intake consumers keep no per-partition state: they resume at the committed offset.
pub struct Committed;

impl StartPosition for Committed {
    fn start_offset(&self, _partition: i32) -> Result<Option<i64>, RuntimeError> {
        Ok(None)
    }
}

pub struct Context<P> {
    /// The consumer's name, for logs and metric labels.
    name: String,
    start: P,
    /// Client-wide errors: logged once a minute per kind, brokers down reported to readiness.
    watch: Watch,
    /// Bumped on every assignment, so handlers know to refresh what they know of partitions.
    pub generation: Arc<AtomicU64>,
    /// An error met in a callback, where it can't be returned: the loop ends with it.
    failure: Failure,
    /// What ends the consumer when the broker is gone too long (`kafka.outage-limit-secs`).
    outage: OutageLimit,
    /// Whether a commit of the loop's is waiting for its answer ([`commit_stored`]).
    commit_in_flight: AtomicBool,
}

/// A broker lost for longer than `kafka.outage-limit-secs` ends the consumer, in one sentence
/// naming the brokers and the bound; shorter outages are ridden out (librdkafka reconnects and
/// retries every produce for as long).
#[derive(Debug, Clone)]
pub struct OutageLimit {
    brokers: String,
    /// How long no broker may be reachable.
    limit: Duration,
    /// How long a produce is retried (`message.timeout.ms`: the limit, unless
    /// `kafka.message-timeout-ms` sets its own), and the setting that says so.
    delivery: Duration,
    delivery_setting: &'static str,
}

impl OutageLimit {
    pub fn of(kafka: &crate::config::KafkaConfig) -> OutageLimit {
        OutageLimit {
            brokers: kafka.brokers.clone(),
            limit: kafka.outage_limit(),
            delivery: Duration::from_millis(crate::kafka::message_timeout_ms(kafka)),
            delivery_setting: if kafka.message_timeout_ms.is_some() {
                "kafka.message-timeout-ms"
            } else {
                "kafka.outage-limit-secs"
            },
        }
    }

    /// The error that ends the consumer when no broker has been reachable for `lost`.
    fn lost_for(&self, lost: Duration) -> Option<RuntimeError> {
        (lost > self.limit).then(|| {
            RuntimeError::Fatal(format!(
                "kafka at {}: no broker reachable for {} s, longer than kafka.outage-limit-secs ({} s); stopping with nothing committed past what the broker acknowledged, for the supervisor to restart",
                self.brokers,
                lost.as_secs(),
                self.limit.as_secs()
            ))
        })
    }

    /// A produce that timed out is the broker lost for the delivery bound: said as such.
    pub fn explain(&self, error: RuntimeError) -> RuntimeError {
        if !crate::output::timed_out(&error) {
            return error;
        }
        RuntimeError::Fatal(format!(
            "kafka at {}: no broker acknowledged a record within {} s ({}); stopping with nothing committed past what the broker acknowledged, for the supervisor to restart ({error})",
            self.brokers,
            self.delivery.as_secs(),
            self.delivery_setting
        ))
    }
}

impl<P> Context<P> {
    /// Ends the loop once no broker has been reachable for longer than the outage limit.
    fn check_outage(&self) {
        if let Some(error) = self
            .watch
            .unreachable_for()
            .and_then(|lost| self.outage.lost_for(lost))
        {
            self.failure.record(error);
        }
    }
}

/// The first error a client callback met, handed to the consumer loop, which stops with it.
#[derive(Default)]
struct Failure {
    first: Mutex<Option<RuntimeError>>,
    recorded: Notify,
}

impl Failure {
    /// Keeps `error` unless an earlier one is waiting, and wakes the loop.
    fn record(&self, error: RuntimeError) {
        let mut first = self.first.lock().unwrap_or_else(PoisonError::into_inner);
        if first.is_none() {
            *first = Some(error);
            self.recorded.notify_one();
        }
    }

    /// Resolves with the recorded error.
    async fn wait(&self) -> RuntimeError {
        loop {
            let taken = self
                .first
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(error) = taken {
                return error;
            }
            // A record between the check and here leaves a permit, so this can't miss it.
            self.recorded.notified().await;
        }
    }
}

impl<P: StartPosition> ClientContext for Context<P> {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        forward_log(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.watch.error(&error, reason);
        self.check_outage();
        // A fatal error (a static member fenced) leaves a client that can't go on: the
        // consumer stops, for its supervisor to start a new one.
        if reason.starts_with("Fatal")
            || matches!(
                error.rdkafka_error_code(),
                Some(
                    rdkafka::types::RDKafkaErrorCode::Fatal
                        | rdkafka::types::RDKafkaErrorCode::FencedInstanceId
                )
            )
        {
            self.failure.record(RuntimeError::Kafka {
                context: format!("a fatal error of the client ({reason})"),
                source: error,
            });
        }
    }

    fn stats(&self, statistics: Statistics) {
        let reachable = record_statistics(&self.name, &statistics);
        self.watch.broker_reachable(reachable);
        self.check_outage();
    }
}

/// Per-partition lag of the assigned partitions from librdkafka's statistics; returns whether
/// any broker is up.
fn record_statistics(consumer: &str, statistics: &Statistics) -> bool {
    // (bootstrap and logical entries have node id -1)
    let reachable = statistics
        .brokers
        .values()
        .any(|broker| broker.nodeid >= 0 && broker.state == "UP");
    for (topic, stats) in &statistics.topics {
        for (partition, stats) in &stats.partitions {
            if *partition < 0 || !stats.desired {
                continue;
            }
            let lag = if stats.consumer_lag >= 0 {
                stats.consumer_lag
            } else if stats.hi_offset >= 0 && stats.committed_offset < 0 {
                // Nothing committed yet: all of the partition is to be read.
                (stats.hi_offset - stats.lo_offset.max(0)).max(0)
            } else {
                continue;
            };
            metrics::gauge!(crate::telemetry::CONSUMER_LAG.name, "consumer" => consumer.to_string(),
                "topic" => topic.clone(), "partition" => partition.to_string())
            .set(lag as f64);
        }
    }
    reachable
}

impl<P: StartPosition> ConsumerContext for Context<P> {
    /// Eager (`roundrobin`, `range`) and incremental (`cooperative-sticky`, KIP-848) rebalances
    /// differ: an eager one revokes everything and assigns the whole new set; an incremental
    /// one adds or takes away only the partitions that move, and must be answered with
    /// `incremental_assign` / `incremental_unassign`, or the member would drop (or keep) the
    /// partitions it keeps (or lost).
    fn rebalance(
        &self,
        base_consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let incremental = matches!(
            base_consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let rebalanced = |kind: &'static str| {
            metrics::counter!(crate::telemetry::REBALANCES.name,
                "consumer" => self.name.clone(), "kind" => kind)
            .increment(1);
        };
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let partitions: Vec<(String, i32)> = tpl
                    .elements()
                    .iter()
                    .map(|e| (e.topic().to_string(), e.partition()))
                    .collect();
                for (topic, partition) in partitions.iter().cloned() {
                    match self.start.start_offset(partition) {
                        Ok(Some(offset)) => {
                            let _ =
                                tpl.set_partition_offset(&topic, partition, Offset::Offset(offset));
                        }
                        Ok(None) => {}
                        Err(failure) => {
                            // Nothing is assigned: consuming from a guessed offset would skip
                            // records or rebuild the partition without saying so.
                            error!(topic = %topic, partition, error = %failure,
                                "the partition's start position could not be read; the consumer stops");
                            self.failure.record(failure);
                            return;
                        }
                    }
                }
                info!(consumer = %self.name, partitions = ?partition_list(tpl),
                    starts = ?start_list(tpl), incremental, "partitions assigned");
                self.generation.fetch_add(1, Ordering::SeqCst);
                let assigned = if incremental {
                    base_consumer.incremental_assign(tpl)
                } else {
                    base_consumer.assign(tpl)
                };
                match assigned {
                    Ok(()) => {
                        health().assigned(&partitions, !self.start.rebuilds());
                        rebalanced("assigned");
                    }
                    Err(error) => {
                        warn!(%error, "assigning partitions failed");
                        rebalanced("failed");
                    }
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let lost = base_consumer.assignment_lost();
                info!(consumer = %self.name, partitions = ?partition_list(tpl), incremental, lost,
                    "partitions revoked");
                let partitions: Vec<(String, i32)> = tpl
                    .elements()
                    .iter()
                    .map(|e| (e.topic().to_string(), e.partition()))
                    .collect();
                health().revoked(&partitions, !incremental);
                rebalanced(if lost { "lost" } else { "revoked" });
                // Offsets stored for finished batches go to the group before another owner
                // starts, so it doesn't redo them.
                if let Err(error) = base_consumer.commit_consumer_state(CommitMode::Sync) {
                    if error.rdkafka_error_code()
                        != Some(rdkafka::types::RDKafkaErrorCode::NoOffset)
                    {
                        warn!(%error, "commit before revoke failed");
                    }
                }
                let unassigned = if incremental {
                    base_consumer.incremental_unassign(tpl)
                } else {
                    base_consumer.unassign()
                };
                if let Err(error) = unassigned {
                    warn!(%error, "unassigning partitions failed");
                }
            }
            other => {
                warn!(error = ?other, "rebalance error");
                rebalanced("failed");
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        self.commit_in_flight.store(false, Ordering::SeqCst);
        match result {
            Ok(()) => health().committed(),
            Err(error) => {
                if error.rdkafka_error_code() != Some(rdkafka::types::RDKafkaErrorCode::NoOffset) {
                    warn!(%error, "offset commit failed");
                }
            }
        }
    }
}

fn partition_list(tpl: &TopicPartitionList) -> Vec<i32> {
    tpl.elements().iter().map(|e| e.partition()).collect()
}

/// Where each assigned partition starts: an offset, or the committed one (`committed`).
fn start_list(tpl: &TopicPartitionList) -> Vec<String> {
    tpl.elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(offset) => format!("{}@{offset}", e.partition()),
            _ => format!("{}@committed", e.partition()),
        })
        .collect()
}

/// A consumer group member on one topic, without static membership.
pub fn subscribe<P: StartPosition>(
    config: &Config,
    group: &str,
    topic: &str,
    start: P,
) -> Result<(StreamConsumer<Context<P>>, Arc<AtomicU64>), RuntimeError> {
    subscribe_all(config, group, &[topic.to_string()], start)
}

/// A consumer group member on several topics, without static membership.
pub fn subscribe_all<P: StartPosition>(
    config: &Config,
    group: &str,
    topics: &[String],
    start: P,
) -> Result<(StreamConsumer<Context<P>>, Arc<AtomicU64>), RuntimeError> {
    subscribe_member(config, group, group, None, topics, start)
}

/// How often librdkafka reports its statistics (lag per partition, broker states).
pub const STATISTICS_EVERY_MS: u32 = 5_000;

/// The consumer `name` joins `group` on `topics`. With `instance` (and
/// `kafka.static-membership`) it is a static member, `{group}-{instance}`: a copy that
/// restarts within the session timeout gets its partitions back without a rebalance, and the
/// other copies keep theirs.
pub fn subscribe_member<P: StartPosition>(
    config: &Config,
    name: &str,
    group: &str,
    instance: Option<&str>,
    topics: &[String],
    start: P,
) -> Result<(StreamConsumer<Context<P>>, Arc<AtomicU64>), RuntimeError> {
    let kafka = &config.kafka;
    let generation = Arc::new(AtomicU64::new(0));
    let mut settings = consumer_config(kafka);
    if settings.get("statistics.interval.ms").is_none() {
        settings.set("statistics.interval.ms", STATISTICS_EVERY_MS.to_string());
    }
    match kafka.group_protocol {
        GroupProtocol::Classic => {
            // The session timeout and heartbeats are the client's to set in the classic
            // protocol (in KIP-848 they are the broker's).
            settings.set("session.timeout.ms", kafka.session_timeout_ms.to_string());
            if settings.get("heartbeat.interval.ms").is_none() {
                settings.set(
                    "heartbeat.interval.ms",
                    (kafka.session_timeout_ms / 3).max(100).to_string(),
                );
            }
            if settings.get("partition.assignment.strategy").is_none() {
                settings.set("partition.assignment.strategy", "cooperative-sticky");
            }
        }
        GroupProtocol::Consumer => {
            settings.set("group.protocol", "consumer");
        }
    }
    if let Some(instance) = instance.filter(|_| kafka.static_membership) {
        settings.set("group.instance.id", format!("{group}-{instance}"));
    }
    let consumer: StreamConsumer<Context<P>> = settings
        .set("group.id", group)
        // Committed by the loop every COMMIT_EVERY, not by librdkafka's auto-commit: that one
        // also commits when a session timeout (a broker outage) has taken the assignment away,
        // and a static member is then fenced for good (FencedInstanceId, a fatal error) when
        // the broker is back. (librdkafka 2.12; fixed upstream by confluentinc/librdkafka#5585.)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .create_with_context(Context {
            name: name.to_string(),
            start,
            watch: Watch::default(),
            generation: Arc::clone(&generation),
            failure: Failure::default(),
            outage: OutageLimit::of(kafka),
            commit_in_flight: AtomicBool::new(false),
        })
        .map_err(creation_error("consumer"))?;
    health().member_of_group(name);
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&names)
        .map_err(RuntimeError::kafka(format!(
            "subscribing to {}",
            names.join(", ")
        )))?;
    info!(
        consumer = name,
        group,
        group_protocol = kafka.group_protocol.as_str(),
        static_member = instance.is_some() && kafka.static_membership,
        "joining the consumer group"
    );
    Ok((consumer, generation))
}

/// What a consumer does with a batch. A batch is done once the outputs [`BatchHandler::handle`]
/// sent are acknowledged: the loop then calls [`BatchHandler::acknowledged`] and stores the
/// batch's offsets, batch after batch in the order they were handled. Meanwhile the loop goes
/// on with the next batches, up to [`MAX_IN_FLIGHT`] of them.
pub trait BatchHandler {
    /// What the handler keeps of a batch until its outputs are acknowledged.
    type Done;

    /// Handles a batch and hands its outputs to the producer.
    fn handle<C: ConsumerContext>(
        &mut self,
        consumer: &StreamConsumer<C>,
        batch: &[OwnedMessage],
    ) -> impl Future<Output = Result<(Sent, Self::Done), RuntimeError>>;

    /// Runs once every output of a batch is on the broker; `idle` when no later batch is in
    /// flight, so that everything handled so far is acknowledged.
    fn acknowledged(&mut self, _done: Self::Done, _idle: bool) -> Result<(), RuntimeError> {
        Ok(())
    }

    /// The first offset of `partition` the handler stopped at and will read again (a record
    /// it can't read yet), if any: the loop stores no offset of the partition from there on.
    fn resume_at(&self, _partition: i32) -> Option<i64> {
        None
    }

    /// How often [`BatchHandler::tick`] runs between batches; never if `None`.
    fn tick_every(&self) -> Option<Duration> {
        None
    }

    /// Work driven by time rather than records (timers); runs when no batch is in flight.
    fn tick<C: ConsumerContext>(
        &mut self,
        _consumer: &StreamConsumer<C>,
    ) -> impl Future<Output = Result<(), RuntimeError>> {
        async { Ok(()) }
    }
}

/// Batches handled and not yet acknowledged, at most. Handling the next batch while the broker
/// acknowledges the last one keeps a record from waiting for a whole round trip of the batch
/// before it.
pub const MAX_IN_FLIGHT: usize = 4;

/// A handled batch: its last offsets, when its handling began, its records' timestamps (ms)
/// and what the handler keeps.
type Finished<D> = (Vec<((String, i32), i64)>, Instant, Vec<i64>, D);

/// Runs until `shutdown` resolves, then lets the batches in flight finish and commits. An
/// error a client callback met (a partition's start position) ends it the same way, and it
/// returns that error.
pub async fn run<P, H>(
    name: &str,
    consumer: &StreamConsumer<Context<P>>,
    max_batch: usize,
    handler: &mut H,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RuntimeError>
where
    P: StartPosition,
    H: BatchHandler,
{
    let failure = &consumer.context().failure;
    let mut stopped_by = None;
    let mut stream = consumer.stream().ready_chunks(max_batch);
    let mut ticker = handler.tick_every().map(|every| {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker
    });
    let mut commits = tokio::time::interval(COMMIT_EVERY);
    commits.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut in_flight = FuturesOrdered::new();
    // A tick waits for the batches in flight; no new batch starts meanwhile.
    let mut tick_due = false;
    tokio::pin!(shutdown);
    loop {
        health().beat();
        if tick_due && in_flight.is_empty() {
            tick_due = false;
            handler.tick(consumer).await?;
            continue;
        }
        let take = !tick_due && in_flight.len() < MAX_IN_FLIGHT;
        let tick = async {
            match ticker.as_mut() {
                Some(ticker) => ticker.tick().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = &mut shutdown => break,
            error = failure.wait() => {
                stopped_by = Some(error);
                break;
            }
            Some(finished) = in_flight.next(), if !in_flight.is_empty() => {
                finish(name, consumer, handler, finished, in_flight.is_empty())
                    .map_err(|error| consumer.context().outage.explain(error))?;
            }
            _ = tick, if !tick_due => tick_due = true,
            _ = commits.tick() => commit_stored(consumer),
            chunk = stream.next(), if take => {
                let Some(chunk) = chunk else { break };
                let mut batch = Vec::with_capacity(chunk.len());
                for result in chunk {
                    match result {
                        Ok(message) => batch.push(message.detach()),
                        // A fatal error (a static member fenced) leaves a client that can't go
                        // on: the consumer stops, for its supervisor to start a new one.
                        Err(source @ KafkaError::MessageConsumptionFatal(_)) => {
                            stopped_by = Some(RuntimeError::Kafka {
                                context: "consuming, a fatal error of the client".into(),
                                source,
                            });
                        }
                        // Brokers gone are reported by the client's error callback (Watch).
                        Err(error) if all_brokers_down(&error) => {}
                        // Fetch errors (broker restarting, partition moving) are retried by the
                        // client; they are reported, not fatal.
                        Err(error) => warn!(consumer = name, %error, "consume error"),
                    }
                }
                if stopped_by.is_some() {
                    break;
                }
                if batch.is_empty() {
                    continue;
                }
                let started = Instant::now();
                metrics::counter!(crate::telemetry::RECORDS_RECEIVED.name, "consumer" => name.to_string())
                    .increment(batch.len() as u64);
                let (sent, done) = handler.handle(consumer, &batch).await?;
                let offsets = last_offsets(&batch, |partition| handler.resume_at(partition));
                let produced: Vec<i64> = batch
                    .iter()
                    .filter_map(|message| message.timestamp().to_millis())
                    .collect();
                in_flight.push_back(async move {
                    sent.acknowledged().await.map(|()| (offsets, started, produced, done))
                });
            }
        }
    }
    health().shutting_down();
    if let Some(error) =
        stopped_by.take_if(|_| consumer.context().watch.unreachable_for().is_some())
    {
        // No broker to acknowledge the batches in flight or take a commit: they are redone
        // after the restart, as after a crash.
        return Err(error);
    }
    info!(
        consumer = name,
        "draining: finishing batches in flight and committing offsets"
    );
    while let Some(finished) = in_flight.next().await {
        finish(name, consumer, handler, finished, in_flight.is_empty())?;
    }
    drop(stream);
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) => {}
        Err(error)
            if error.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::NoOffset) => {}
        Err(error) => warn!(consumer = name, %error, "final commit failed"),
    }
    stopped_by.map_or(Ok(()), Err)
}

/// A batch whose outputs were acknowledged (or failed): the handler's part, then its offsets.
fn finish<C: ConsumerContext, H: BatchHandler>(
    name: &str,
    consumer: &StreamConsumer<C>,
    handler: &mut H,
    finished: Result<Finished<H::Done>, RuntimeError>,
    idle: bool,
) -> Result<(), RuntimeError> {
    let (offsets, started, produced, done) = finished?;
    handler.acknowledged(done, idle)?;
    store_offsets(consumer, &offsets);
    metrics::histogram!(crate::telemetry::BATCH_DURATION.name, "consumer" => name.to_string())
        .record(started.elapsed().as_secs_f64());
    let now_ms = chrono::Utc::now().timestamp_millis();
    let latency =
        metrics::histogram!(crate::telemetry::RECORD_LATENCY.name, "consumer" => name.to_string());
    for at in produced {
        latency.record((now_ms - at).max(0) as f64 / 1_000.0);
    }
    Ok(())
}

/// The last offset done of each partition in a batch: the last one, or the one before where the
/// handler stopped (`resume_at`); none if it stopped at the partition's offset 0.
fn last_offsets(
    batch: &[OwnedMessage],
    resume_at: impl Fn(i32) -> Option<i64>,
) -> Vec<((String, i32), i64)> {
    let mut last: BTreeMap<(&str, i32), i64> = BTreeMap::new();
    for message in batch {
        let entry = last
            .entry((message.topic(), message.partition()))
            .or_insert(message.offset());
        *entry = (*entry).max(message.offset());
    }
    last.into_iter()
        .filter_map(|((topic, partition), offset)| {
            let done = match resume_at(partition) {
                Some(stopped) => offset.min(stopped - 1),
                None => offset,
            };
            (done >= 0).then(|| ((topic.to_string(), partition), done))
        })
        .collect()
}

fn all_brokers_down(error: &KafkaError) -> bool {
    error.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::AllBrokersDown)
}

/// How often the offsets stored for finished batches are committed.
pub const COMMIT_EVERY: Duration = Duration::from_secs(1);

/// Commits the offsets stored so far, without waiting: the result reaches the commit
/// callback. Nothing new to commit, or an assignment lost to a session timeout, is refused by
/// the client at once. One commit at a time, and none while no broker is reachable: a commit
/// left waiting for the coordinator through an outage goes out after the session has timed
/// out, under the reset member id, and a static member is fenced for it (a fatal error).
fn commit_stored<P: StartPosition>(consumer: &StreamConsumer<Context<P>>) {
    let context = consumer.context();
    if context.watch.unreachable_for().is_some()
        || context.commit_in_flight.swap(true, Ordering::SeqCst)
    {
        return;
    }
    if let Err(error) = consumer.commit_consumer_state(CommitMode::Async) {
        context.commit_in_flight.store(false, Ordering::SeqCst);
        if !matches!(
            error.rdkafka_error_code(),
            Some(
                rdkafka::types::RDKafkaErrorCode::NoOffset
                    | rdkafka::types::RDKafkaErrorCode::AssignmentLost
            )
        ) {
            warn!(%error, "offset commit failed");
        }
    }
}

/// Stores the last offset done per partition; librdkafka commits the one after it.
fn store_offsets<C: ConsumerContext>(
    consumer: &StreamConsumer<C>,
    offsets: &[((String, i32), i64)],
) {
    for ((topic, partition), offset) in offsets {
        // Fails only if the partition was revoked meanwhile; its new owner redoes the
        // batch, which the event ids make harmless.
        if let Err(error) = consumer.store_offset(topic, *partition, *offset) {
            warn!(topic, partition, offset, %error, "storing offset failed");
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use orderflow_store::StoreError;
    use rdkafka::ClientConfig;

    use super::*;

    /// A start position whose store can't be read.
    struct Unreadable;

    impl StartPosition for Unreadable {
        fn start_offset(&self, partition: i32) -> Result<Option<i64>, RuntimeError> {
            Err(RuntimeError::Store(StoreError::Corrupt(format!(
                "checkpoint of partition {partition}"
            ))))
        }
    }

    /// Handles nothing: no broker is there to give it a batch.
    struct NoBatches;

    impl BatchHandler for NoBatches {
        type Done = ();

        async fn handle<C: ConsumerContext>(
            &mut self,
            _consumer: &StreamConsumer<C>,
            _batch: &[OwnedMessage],
        ) -> Result<(Sent, ()), RuntimeError> {
            Err(RuntimeError::Fatal("no batch was expected".into()))
        }
    }

    fn context<P>(start: P) -> Context<P> {
        Context {
            name: "test".into(),
            start,
            watch: Watch::default(),
            generation: Arc::new(AtomicU64::new(0)),
            failure: Failure::default(),
            outage: an_hour_limit(),
            commit_in_flight: AtomicBool::new(false),
        }
    }

    fn an_hour_limit() -> OutageLimit {
        OutageLimit {
            brokers: "10.0.0.5:9092".into(),
            limit: Duration::from_secs(3_600),
            delivery: Duration::from_secs(3_600),
            delivery_setting: "kafka.outage-limit-secs",
        }
    }

    #[test]
    fn a_broker_lost_longer_than_the_limit_is_one_sentence_naming_broker_and_bound() {
        let outage = an_hour_limit();
        assert!(outage.lost_for(Duration::from_secs(3_600)).is_none());
        let error = outage.lost_for(Duration::from_secs(3_601)).unwrap();
        assert!(error.to_string().starts_with(
            "kafka at 10.0.0.5:9092: no broker reachable for 3601 s, longer than kafka.outage-limit-secs (3600 s); stopping"
        ), "{error}");
    }

    #[test]
    fn a_produce_that_timed_out_is_said_as_the_broker_lost_other_errors_pass_unchanged() {
        let outage = an_hour_limit();
        let timed_out = RuntimeError::Kafka {
            context: "producing a batch".into(),
            source: KafkaError::MessageProduction(
                rdkafka::types::RDKafkaErrorCode::MessageTimedOut,
            ),
        };
        let said = outage.explain(timed_out).to_string();
        assert!(said.starts_with("kafka at 10.0.0.5:9092: no broker acknowledged a record within 3600 s (kafka.outage-limit-secs); stopping"), "{said}");
        let refused = RuntimeError::Kafka {
            context: "producing a batch".into(),
            source: KafkaError::MessageProduction(
                rdkafka::types::RDKafkaErrorCode::MessageSizeTooLarge,
            ),
        };
        assert_eq!(outage.explain(refused).to_string(), "kafka: producing a batch: Message production error: MessageSizeTooLarge (Broker: Message size too large)");
    }

    /// A client of a broker that isn't there: it never connects, which these tests don't need.
    fn offline() -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", "127.0.0.1:9")
            .set("group.id", "orderflow-unit-test")
            .set("enable.auto.commit", "false");
        config
    }

    #[test]
    fn an_unreadable_start_position_assigns_nothing_and_is_recorded() {
        let consumer: BaseConsumer<Context<Unreadable>> =
            offline().create_with_context(context(Unreadable)).unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition("orderflow.order-events", 3);
        consumer.context().rebalance(
            &consumer,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS,
            &mut tpl,
        );
        assert_eq!(consumer.assignment().unwrap().count(), 0);
        assert_eq!(consumer.context().generation.load(Ordering::SeqCst), 0);
        let recorded = consumer.context().failure.first.lock().unwrap().take();
        assert!(
            matches!(&recorded, Some(RuntimeError::Store(StoreError::Corrupt(what))) if what == "checkpoint of partition 3"),
            "{recorded:?}"
        );
    }

    #[tokio::test]
    async fn the_first_recorded_failure_is_the_one_handed_on() {
        let failure = Failure::default();
        failure.record(RuntimeError::Fatal("first".into()));
        failure.record(RuntimeError::Fatal("second".into()));
        let error = failure.wait().await;
        assert_eq!(error.to_string(), "first");
    }

    #[tokio::test]
    async fn the_loop_stops_with_a_failure_recorded_while_it_waits() {
        let consumer: StreamConsumer<Context<Committed>> =
            offline().create_with_context(context(Committed)).unwrap();
        let recorder = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            consumer
                .context()
                .failure
                .record(RuntimeError::Fatal("partition 3: unreadable".into()));
        };
        let mut handler = NoBatches;
        let (outcome, ()) = tokio::time::timeout(Duration::from_secs(30), async {
            tokio::join!(
                run("test", &consumer, 10, &mut handler, std::future::pending()),
                recorder
            )
        })
        .await
        .unwrap();
        let error = outcome.unwrap_err();
        assert_eq!(error.to_string(), "partition 3: unreadable");
    }
}
