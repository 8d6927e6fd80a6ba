//! `orderflow-sync`: tells each sales channel what happened to its orders.
//!
//! It reads `order-state`, where every snapshot lists the changes the order's channel must hear
//! about (derived by the fold, `ChannelSync`) with every attempt made so far. It calls the
//! channel through its [`Connector`] for each change the channel's config asks for, and appends
//! what the call came to (`channel_sync_attempted`) to `order-events` before anything else
//! depends on it: the attempt carries the decision when to try again (backoff with jitter from
//! the ids, or the receiver's `Retry-After`), so a restart or a new owner of the partition reads
//! the schedule from the log instead of deciding it again. The state consumer folds the attempt
//! back; a change given up raises `sync_failure` there, with its alert.
//!
//! Crash safety: the changes waiting here are kept in a local store (sled) with the position in
//! `order-state` they were read to, written only once the attempts behind them are on the
//! broker. On start, a partition resumes from that position (from the start of the compacted
//! topic for a partition this instance never had). While it catches up to the end it calls
//! nothing, so it acts on the latest state of each order, not on a stale one. A call made and not
//! recorded before a crash is made again with the same idempotency key: the receiver drops it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use orderflow_domain::{
    next_attempt_at, Channel, ChannelSync, Event, OrderId, OrderSnapshot, SyncAttempt, SyncOutcome,
};
use orderflow_runtime::config::Config;
use orderflow_runtime::consumer::{self, BatchHandler, StartPosition};
use orderflow_runtime::kafka::{header, producer, with_retries, Topics, ATTEMPT_TIMEOUT};
use orderflow_runtime::output::{deliver, send, Output, Sent};
use orderflow_runtime::rules::{Clock, RulesSource};
use orderflow_runtime::state::log_record;
use orderflow_runtime::{telemetry, RuntimeError};
use orderflow_schema::headers;
use orderflow_schema::output::OrderStateRecord;
use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::FutureProducer;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::config::{ChannelEndpoint, SyncSettings};
use crate::connector::{self, CallAnswer, Connector, SyncCall};
use crate::limits::{Breaker, Pace};

pub const CONSUMER_NAME: &str = "orderflow-sync";

/// A channel's endpoint with what keeps it from being hammered.
struct ChannelLink {
    endpoint: ChannelEndpoint,
    connector: Box<dyn Connector>,
    breaker: Breaker,
    pace: Pace,
}

/// The changes of one order that still wait for something here.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct PendingOrder {
    partition: i32,
    /// The version of the latest snapshot merged in: an older one published again is ignored.
    version: u64,
    syncs: Vec<PendingSync>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PendingSync {
    /// The snapshot's change with the attempts it shows and those recorded here since.
    sync: ChannelSync,
    /// Attempts recorded here that no snapshot showed yet.
    unreflected: BTreeSet<u32>,
    /// When the fact behind it was appended to the log (ms), to time the trip to the channel.
    entered_at_ms: Option<i64>,
}

impl PendingSync {
    fn done(&self) -> bool {
        self.sync.acknowledged() || self.sync.gave_up()
    }
}

impl PendingOrder {
    /// Nothing left to do and nothing recorded that the log's state doesn't show yet.
    fn settled(&self) -> bool {
        self.syncs
            .iter()
            .all(|pending| pending.done() && pending.unreflected.is_empty())
    }
}

/// The local store: per order, what waits; per partition, where `order-state` was read to.
struct SyncStore {
    db: sled::Db,
}

impl SyncStore {
    fn open(dir: &Path) -> Result<SyncStore, RuntimeError> {
        let db = sled::open(dir).map_err(|error| {
            RuntimeError::Fatal(format!(
                "the sync store {} could not be opened: {error}",
                dir.display()
            ))
        })?;
        Ok(SyncStore { db })
    }

    fn checkpoint(&self, partition: i32) -> Result<Option<i64>, RuntimeError> {
        let key = format!("c/{partition:08x}");
        match self.db.get(key.as_bytes()).map_err(store_error)? {
            None => Ok(None),
            Some(bytes) => {
                let raw: [u8; 8] = bytes.as_ref().try_into().map_err(|_| {
                    RuntimeError::Fatal(format!("sync store: checkpoint {key} is not 8 bytes"))
                })?;
                Ok(Some(i64::from_be_bytes(raw)))
            }
        }
    }

    fn pending(&self) -> Result<HashMap<OrderId, PendingOrder>, RuntimeError> {
        let mut pending = HashMap::new();
        for entry in self.db.scan_prefix(b"p/") {
            let (key, value) = entry.map_err(store_error)?;
            let order_id: OrderId = std::str::from_utf8(&key[2..])
                .ok()
                .and_then(|text| text.parse().ok())
                .ok_or_else(|| {
                    RuntimeError::Fatal("sync store: a key is not an order id".into())
                })?;
            let order: PendingOrder = serde_json::from_slice(&value).map_err(|error| {
                RuntimeError::Fatal(format!("sync store: {order_id} is unreadable: {error}"))
            })?;
            pending.insert(order_id, order);
        }
        Ok(pending)
    }

    fn write(
        &self,
        orders: &[(&OrderId, Option<&PendingOrder>)],
        checkpoints: &BTreeMap<i32, i64>,
    ) -> Result<(), RuntimeError> {
        let mut batch = sled::Batch::default();
        for (order_id, pending) in orders {
            let key = format!("p/{order_id}");
            match pending {
                Some(order) => {
                    let value = serde_json::to_vec(order).map_err(|error| {
                        RuntimeError::Fatal(format!("sync store: encoding {order_id}: {error}"))
                    })?;
                    batch.insert(key.as_bytes(), value);
                }
                None => batch.remove(key.as_bytes()),
            }
        }
        for (partition, offset) in checkpoints {
            batch.insert(
                format!("c/{partition:08x}").as_bytes(),
                &offset.to_be_bytes(),
            );
        }
        self.db.apply_batch(batch).map_err(store_error)?;
        self.db.flush().map_err(store_error)?;
        Ok(())
    }
}

fn store_error(error: sled::Error) -> RuntimeError {
    RuntimeError::Fatal(format!("sync store: {error}"))
}

/// Partitions start where the local store left off (the beginning of the compacted topic for
/// one never read here).
struct StoreStart(Arc<SyncStore>);

impl StartPosition for StoreStart {
    fn start_offset(&self, partition: i32) -> Result<Option<i64>, RuntimeError> {
        Ok(Some(self.0.checkpoint(partition)?.unwrap_or(0)))
    }
}

pub struct SyncConsumer {
    topics: Topics,
    producer: FutureProducer,
    store: Arc<SyncStore>,
    channels: HashMap<Channel, ChannelLink>,
    rules: RulesSource,
    clock: Clock,
    tick_every: Duration,
    /// How long a broker call is retried before the consumer stops (`kafka.outage-limit-secs`).
    outage_limit: Duration,
    pending: HashMap<OrderId, PendingOrder>,
    /// Orders changed here since the store was last written.
    dirty: BTreeSet<OrderId>,
    /// Per partition, the next offset to read (what was merged in memory).
    position: HashMap<i32, i64>,
    /// Per partition, the positions whose attempts are on the broker: what the store may keep.
    acknowledged_to: BTreeMap<i32, i64>,
    generation: Arc<AtomicU64>,
    seen_generation: u64,
    /// Per assigned partition, the end of `order-state` when it was assigned: below it the
    /// partition catches up and calls nothing.
    live_from: HashMap<i32, i64>,
}

pub fn store_dir(config: &Config, instance: &str) -> std::path::PathBuf {
    config.store.dir_of(CONSUMER_NAME, instance)
}

pub async fn run(
    config: &Config,
    instance: &str,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), RuntimeError> {
    let settings = SyncSettings::from_config(config)?;
    let mut channels = HashMap::new();
    for (channel, endpoint) in &settings.channels {
        let connector = connector::build(endpoint).map_err(|error| {
            RuntimeError::Config(format!("sync.channel.{channel}.connector: {error}"))
        })?;
        channels.insert(
            *channel,
            ChannelLink {
                connector,
                breaker: Breaker::new(
                    settings.breaker_failures,
                    Duration::from_millis(settings.breaker_cooldown_ms),
                ),
                pace: Pace::new(endpoint.rate_per_second),
                endpoint: endpoint.clone(),
            },
        );
    }
    if channels.is_empty() {
        warn!("no [sync.channel.*] is configured: no channel will hear back");
    }
    let topics = Topics::new(&config.kafka.topic_prefix);
    let dir = store_dir(config, instance);
    let store = Arc::new(SyncStore::open(&dir)?);
    let group = format!("{}{CONSUMER_NAME}", config.kafka.topic_prefix);
    let (consumer, generation) = consumer::subscribe(
        config,
        &group,
        &topics.order_state(),
        StoreStart(Arc::clone(&store)),
    )?;
    let mut sync = SyncConsumer {
        producer: producer(&config.kafka)?,
        pending: store.pending()?,
        store,
        channels,
        rules: RulesSource::open(config)?,
        clock: Clock::from_config(config),
        tick_every: Duration::from_millis(config.timers.tick_ms),
        outage_limit: config.kafka.outage_limit(),
        dirty: BTreeSet::new(),
        position: HashMap::new(),
        acknowledged_to: BTreeMap::new(),
        generation,
        seen_generation: 0,
        live_from: HashMap::new(),
        topics,
    };
    sync.clock.now()?;
    let names: Vec<String> = sync.channels.keys().map(|c| c.to_string()).collect();
    info!(consumer = CONSUMER_NAME, store = %dir.display(), channels = ?names,
        waiting = sync.pending.len(), "sync started");
    consumer::run(
        CONSUMER_NAME,
        &consumer,
        config.consumer.max_batch,
        &mut sync,
        shutdown,
    )
    .await?;
    sync.write_store()
}

impl SyncConsumer {
    /// Learns where each newly assigned partition ends: it is live once read to there.
    async fn refresh_assignment<C: ConsumerContext>(
        &mut self,
        consumer: &StreamConsumer<C>,
    ) -> Result<Vec<i32>, RuntimeError> {
        let generation = self.generation.load(Ordering::SeqCst);
        if generation != self.seen_generation {
            self.live_from.clear();
            self.seen_generation = generation;
        }
        let assignment = consumer
            .assignment()
            .map_err(RuntimeError::kafka("reading the assignment"))?;
        let topic = self.topics.order_state();
        let mut live = Vec::new();
        for element in assignment.elements() {
            let partition = element.partition();
            if let std::collections::hash_map::Entry::Vacant(entry) =
                self.live_from.entry(partition)
            {
                let (_, high) =
                    with_retries("reading order-state's end", self.outage_limit, || {
                        consumer.fetch_watermarks(&topic, partition, ATTEMPT_TIMEOUT)
                    })
                    .await?;
                entry.insert(high);
            }
            let read_to = match self.position.get(&partition) {
                Some(position) => *position,
                None => self.store.checkpoint(partition)?.unwrap_or(0),
            };
            if read_to >= self.live_from.get(&partition).copied().unwrap_or(i64::MAX) {
                live.push(partition);
            }
        }
        Ok(live)
    }

    /// Merges a snapshot into what waits here: the attempts it shows, with those recorded here
    /// that it doesn't show yet.
    fn merge(&mut self, partition: i32, snapshot: OrderSnapshot, times: &HashMap<String, i64>) {
        let order_id = snapshot.order_id.clone();
        let Some(link) = self.channels.get(&snapshot.channel) else {
            return;
        };
        let wanted: Vec<ChannelSync> = snapshot
            .sync
            .into_iter()
            .filter(|sync| link.endpoint.changes.contains(&sync.change))
            .collect();
        let known = self.pending.get(&order_id);
        if known.is_some_and(|order| order.version > snapshot.version) {
            return; // an older snapshot published again
        }
        if known.is_none()
            && wanted
                .iter()
                .all(|sync| sync.acknowledged() || sync.gave_up())
        {
            return; // nothing to do, nothing unreflected
        }
        let mut order = self.pending.remove(&order_id).unwrap_or_default();
        let mut syncs = Vec::with_capacity(wanted.len());
        for mut sync in wanted {
            let shown: BTreeSet<u32> = sync.attempts.iter().map(|a| a.attempt).collect();
            let mut unreflected = BTreeSet::new();
            let mut entered_at_ms = None;
            if let Some(previous) = order
                .syncs
                .iter()
                .find(|pending| pending.sync.change_id == sync.change_id)
            {
                for attempt in &previous.sync.attempts {
                    if !shown.contains(&attempt.attempt) {
                        sync.attempts.push(attempt.clone());
                    }
                }
                sync.attempts.sort_by_key(|a| a.attempt);
                unreflected = previous.unreflected.clone();
                entered_at_ms = previous.entered_at_ms;
            }
            unreflected.retain(|attempt| !shown.contains(attempt));
            syncs.push(PendingSync {
                entered_at_ms: entered_at_ms.or_else(|| times.get(sync.cause.as_str()).copied()),
                sync,
                unreflected,
            });
        }
        order.partition = partition;
        order.version = snapshot.version;
        order.syncs = syncs;
        self.dirty.insert(order_id.clone());
        if !order.settled() {
            self.pending.insert(order_id, order);
        }
    }

    /// Calls every change due now on the orders of `partitions` (of `only` when given);
    /// returns the attempts to append to the log.
    async fn call_due(
        &mut self,
        partitions: &[i32],
        only: Option<&BTreeSet<OrderId>>,
    ) -> Result<Vec<Output>, RuntimeError> {
        let now = self.clock.now()?;
        let instant = tokio::time::Instant::now();
        let mut due: Vec<(SyncCall, tokio::time::Duration)> = Vec::new();
        let mut order_ids: Vec<&OrderId> = self
            .pending
            .iter()
            .filter(|(order_id, order)| {
                partitions.contains(&order.partition)
                    && only.is_none_or(|set| set.contains(order_id))
            })
            .map(|(order_id, _)| order_id)
            .collect();
        order_ids.sort();
        for order_id in order_ids {
            let Some(order) = self.pending.get(order_id) else {
                continue;
            };
            let Some(link) = self.channels.get_mut(&order_id.channel()) else {
                continue;
            };
            for pending in &order.syncs {
                let sync = &pending.sync;
                if pending.done() || !sync.is_due(now) {
                    continue;
                }
                if !link.breaker.allow(instant) {
                    metrics::counter!(telemetry::SYNC_CALLS.name, "channel" => order_id.channel().as_str(),
                        "change" => sync.change.as_str(), "outcome" => "deferred")
                    .increment(1);
                    continue;
                }
                let delay = link.pace.book(instant);
                due.push((call_of(order_id, sync), delay));
            }
        }
        if due.is_empty() {
            return Ok(Vec::new());
        }
        let channels = &self.channels;
        let answers = futures::future::join_all(due.iter().map(|(call, delay)| async move {
            tokio::time::sleep(*delay).await;
            let sent_at = chrono::Utc::now();
            let answer = match channels.get(&call.order_id.channel()) {
                Some(link) => link.connector.send(call).await,
                None => CallAnswer {
                    outcome: SyncOutcome::Failed,
                    http_status: None,
                    answer: "the channel is no longer configured".into(),
                    retry_after_secs: None,
                },
            };
            (sent_at, answer)
        }))
        .await;
        let mut outputs = Vec::with_capacity(due.len());
        for ((call, _), (sent_at, answer)) in due.iter().zip(answers) {
            outputs.push(self.record(call, sent_at, answer, now)?);
        }
        Ok(outputs)
    }

    /// Decides on an answer (when to try again), keeps the attempt here until the log's state
    /// shows it, and returns it as a log record.
    fn record(
        &mut self,
        call: &SyncCall,
        sent_at: chrono::DateTime<chrono::Utc>,
        answer: CallAnswer,
        now: orderflow_domain::Timestamp,
    ) -> Result<Output, RuntimeError> {
        let rules = self.rules.current();
        let channel = call.order_id.channel();
        let connector_name = self
            .channels
            .get(&channel)
            .map_or("webhook", |link| link.connector.name());
        let attempt = SyncAttempt {
            change_id: call.change_id.clone(),
            idempotency_key: call.idempotency_key.clone(),
            attempt: call.attempt,
            connector: connector_name.to_string(),
            // Decisions are taken on the consumer's clock (a drill's clock file), like timers.
            sent_at: now,
            outcome: answer.outcome,
            http_status: answer.http_status,
            answer: answer.answer.clone(),
            next_attempt_at: next_attempt_at(
                &call.idempotency_key,
                call.attempt,
                answer.outcome,
                answer.retry_after_secs,
                now,
                &rules.retry,
            ),
            max_attempts: rules.retry.max_attempts,
            rule_version: rules.version.clone(),
        };
        let took = chrono::Utc::now() - sent_at;
        info!(order_id = %call.order_id, change = %call.change_id, attempt = call.attempt,
            outcome = answer.outcome.as_str(), status = ?answer.http_status, answer = %answer.answer,
            next_attempt_at = ?attempt.next_attempt_at, ms = took.num_milliseconds(), "channel called");
        metrics::counter!(telemetry::SYNC_CALLS.name, "channel" => channel.as_str(),
            "change" => call.change.as_str(), "outcome" => answer.outcome.as_str())
        .increment(1);
        if let Some(link) = self.channels.get_mut(&channel) {
            let answered = answer.outcome != SyncOutcome::Failed || answer.http_status == Some(429);
            link.breaker.record(answered, tokio::time::Instant::now());
        }
        let event = Event::sync_attempt(&call.order_id, CONSUMER_NAME, attempt.clone());
        if let Some(order) = self.pending.get_mut(&call.order_id) {
            if let Some(pending) = order
                .syncs
                .iter_mut()
                .find(|pending| pending.sync.change_id == call.change_id)
            {
                if answer.outcome == SyncOutcome::Acknowledged {
                    if let Some(entered) = pending.entered_at_ms {
                        let seconds = (chrono::Utc::now().timestamp_millis() - entered).max(0);
                        metrics::histogram!(telemetry::SYNC_LATENCY.name, "channel" => channel.as_str())
                            .record(seconds as f64 / 1_000.0);
                    }
                }
                pending
                    .sync
                    .attempts
                    .retain(|a| a.attempt != attempt.attempt);
                pending.sync.attempts.push(attempt);
                pending.sync.attempts.sort_by_key(|a| a.attempt);
                pending.unreflected.insert(call.attempt);
            }
            self.dirty.insert(call.order_id.clone());
        }
        log_record(&self.topics, std::slice::from_ref(&event))
    }

    /// Writes the orders changed since the last write, and the positions whose attempts are
    /// all on the broker, in one atomic batch.
    fn write_store(&mut self) -> Result<(), RuntimeError> {
        if self.dirty.is_empty() && self.acknowledged_to.is_empty() {
            return Ok(());
        }
        let dirty = std::mem::take(&mut self.dirty);
        let orders: Vec<(&OrderId, Option<&PendingOrder>)> = dirty
            .iter()
            .map(|order_id| (order_id, self.pending.get(order_id)))
            .collect();
        self.store.write(&orders, &self.acknowledged_to)?;
        self.acknowledged_to.clear();
        Ok(())
    }
}

fn call_of(order_id: &OrderId, sync: &ChannelSync) -> SyncCall {
    SyncCall {
        order_id: order_id.clone(),
        channel: order_id.channel().to_string(),
        platform_order_id: order_id.platform_order_id().to_string(),
        change: sync.change,
        change_id: sync.change_id.clone(),
        idempotency_key: sync.idempotency_key.clone(),
        details: sync.details.clone(),
        happened_at: sync.happened_at.to_rfc3339(),
        event_id: sync.cause.to_string(),
        attempt: sync.attempts_made() + 1,
    }
}

/// `orderflow.event-ids` with `orderflow.event-times`: when each event of a snapshot was
/// appended to the log.
fn event_times(message: &OwnedMessage) -> HashMap<String, i64> {
    let borrowed = message.headers().map(|owned| owned.as_borrowed());
    let ids = header(borrowed, headers::EVENT_IDS);
    let times = header(borrowed, headers::EVENT_TIMES);
    let (Some(ids), Some(times)) = (ids, times) else {
        return HashMap::new();
    };
    let ids = String::from_utf8_lossy(ids);
    let times = String::from_utf8_lossy(times);
    ids.split(',')
        .zip(times.split(','))
        .filter_map(|(id, ms)| ms.parse().ok().map(|ms| (id.to_string(), ms)))
        .collect()
}

impl BatchHandler for SyncConsumer {
    /// The positions the batch read to.
    type Done = BTreeMap<i32, i64>;

    async fn handle<C: ConsumerContext>(
        &mut self,
        consumer: &StreamConsumer<C>,
        batch: &[OwnedMessage],
    ) -> Result<(Sent, Self::Done), RuntimeError> {
        let mut read_to = BTreeMap::new();
        let mut touched = BTreeSet::new();
        for message in batch {
            let partition = message.partition();
            read_to.insert(partition, message.offset() + 1);
            self.position.insert(partition, message.offset() + 1);
            let Some(payload) = message.payload() else {
                continue;
            };
            let snapshot = match OrderStateRecord::from_json(payload) {
                Ok(record) => record.record,
                Err(error) => {
                    warn!(partition, offset = message.offset(), %error,
                        "an order-state record is not a snapshot this build reads; skipped");
                    continue;
                }
            };
            touched.insert(snapshot.order_id.clone());
            let times = event_times(message);
            self.merge(partition, snapshot, &times);
        }
        let live = self.refresh_assignment(consumer).await?;
        let outputs = if live.is_empty() {
            Vec::new()
        } else {
            self.call_due(&live, Some(&touched)).await?
        };
        Ok((send(&self.producer, &outputs).await?, read_to))
    }

    fn acknowledged(&mut self, read_to: Self::Done, idle: bool) -> Result<(), RuntimeError> {
        self.acknowledged_to.extend(read_to);
        if idle {
            self.write_store()?;
        }
        Ok(())
    }

    fn tick_every(&self) -> Option<Duration> {
        Some(self.tick_every)
    }

    async fn tick<C: ConsumerContext>(
        &mut self,
        consumer: &StreamConsumer<C>,
    ) -> Result<(), RuntimeError> {
        self.rules.reload_if_changed();
        let live = self.refresh_assignment(consumer).await?;
        if !live.is_empty() {
            let outputs = self.call_due(&live, None).await?;
            if !outputs.is_empty() {
                deliver(&self.producer, &outputs).await?;
            }
        }
        self.write_store()
    }
}
