//! The state consumer: folds the order event log into per-entity state in sled, records the
//! decisions orders call for back into the log (and the messages entities send each other),
//! and publishes snapshots, exceptions, notifications and warehouse routing.
//!
//! Timers (payment timeout, SLA escalation) are decisions too: a tick between batches asks
//! the orders in the store's schedule what is due at the clock's time and appends that to
//! the log; only folding it back takes effect. The schedule is part of the folded state, so
//! it survives restarts and moves with a partition to its new owner.
//!
//! On assignment a partition starts at the local store's checkpoint, not the group's
//! committed offset: a partition this instance never owned (or owned long ago) is rebuilt
//! from the log. Records below the group's committed offset were already published by the
//! previous owner, so they are folded quietly ("catch-up"); from the committed offset on the
//! consumer is live and publishes what changes.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use orderflow_domain::{
    fire_timers, timers, Effect, Entity, EntityKey, Event, EventId, Level, Mode, Owner,
};
use orderflow_schema::output::Versioned;
use orderflow_schema::{headers, Rejection, RejectionKind};
use orderflow_store::{SledStore, StateStore, StoreError};
use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::FutureProducer;
use rdkafka::{Offset, TopicPartitionList};
use tracing::{debug, info, info_span, warn, Instrument};

use crate::config::Config;
use crate::consumer::{self, BatchHandler, StartPosition};
use crate::fold::{Applied, Fold, LogSkips, Sealed};
use crate::kafka::{producer, with_retries, Topics, ATTEMPT_TIMEOUT};
use crate::logread::decode_events;
use crate::output::{deliver, send_guarded, DeadLetter, Dlq, Output, Sent};
use crate::rules::{Clock, RulesSource};
use crate::telemetry::health;
use crate::writer::StoreWriter;
use crate::RuntimeError;
use orderflow_schema::log::{encode_log_record, LogRecordError};

pub const CONSUMER_NAME: &str = "orderflow-state";

/// Partitions start where the local store left off.
pub struct StoreStart(pub Arc<SledStore>);

impl StartPosition for StoreStart {
    fn start_offset(&self, partition: i32) -> Result<Option<i64>, RuntimeError> {
        // No checkpoint: rebuild this partition from the beginning of the log. A checkpoint
        // that can't be read is an error, not a reason to rebuild.
        Ok(Some(self.0.checkpoint(partition)?.unwrap_or(0)))
    }

    fn rebuilds(&self) -> bool {
        true
    }
}

pub struct StateConsumer {
    topics: Topics,
    producer: FutureProducer,
    /// Unreadable log records, and outputs the broker refuses for good (dead letters, H1).
    dlq: Dlq,
    store: Arc<SledStore>,
    rules: RulesSource,
    clock: Clock,
    tick_every: Duration,
    /// How long a broker call is retried before the consumer stops (`kafka.outage-limit-secs`).
    outage_limit: Duration,
    generation: Arc<AtomicU64>,
    seen_generation: u64,
    /// Per partition, the group's committed offset when it was assigned: below it, quiet.
    live_from: HashMap<i32, i64>,
    /// Decisions appended but not read back yet.
    awaited: Awaited,
    /// Per live partition, when the first timer of each order that has one is due: read from
    /// the store once a partition is live (and again when the rules change), then kept up to
    /// date by the fold, so a tick neither scans the schedule nor loads an order not due.
    first_due: BTreeMap<i32, HashMap<EntityKey, orderflow_domain::Timestamp>>,
    /// The folded state: sealed every [`WRITE_EVERY`] and written to the store by `writer` once
    /// the outputs of what it holds are acknowledged; kept in memory between.
    fold: Fold,
    writer: StoreWriter,
    /// When the fold was last sealed.
    sealed_at: Instant,
    /// When the store's size was last reported.
    sized: Instant,
    /// Per live partition, the open exceptions (owner, level) of each order that has any:
    /// counted from the store once a partition is live, then kept up to date by the fold.
    open_exceptions: BTreeMap<i32, HashMap<EntityKey, Vec<(Owner, Level)>>>,
    /// (owner, level) pairs ever reported, so one that drops to none reads 0, not stale.
    exception_gauges: BTreeSet<(Owner, Level)>,
    /// Per partition stopped at a record this build can't read, that record's offset: nothing
    /// of the partition from it on is folded, and no offset past it is stored or committed.
    stalled: BTreeMap<i32, i64>,
    /// Unreadable records an operator chose to pass over (`consumer.skip-log-records`).
    skips: LogSkips,
}

/// How often the store's size is reported.
const SIZE_EVERY: Duration = Duration::from_secs(10);

/// How often the state consumer writes what it folded to its store, at most. A crash loses at
/// most this much of the store, which is refolded from the log quietly: every output of those
/// records was acknowledged before the batch finished. Writing every batch instead rewrote an
/// order touched by several batches once per batch.
pub const WRITE_EVERY: Duration = Duration::from_millis(500);

pub fn store_dir(config: &Config, instance: &str) -> std::path::PathBuf {
    config.store.dir_of(CONSUMER_NAME, instance)
}

pub async fn run(
    config: &Config,
    instance: &str,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), RuntimeError> {
    let topics = Topics::new(&config.kafka.topic_prefix);
    let dir = store_dir(config, instance);
    let store = Arc::new(SledStore::open(&dir)?);
    store.bind(&topics.order_events(), config.store.retention())?;
    let writer = StoreWriter::start(Arc::clone(&store))?;
    let group = format!("{}{CONSUMER_NAME}", config.kafka.topic_prefix);
    let (consumer, generation) = consumer::subscribe_member(
        config,
        CONSUMER_NAME,
        &group,
        Some(instance),
        &[topics.order_events()],
        StoreStart(Arc::clone(&store)),
    )?;
    let mut state = StateConsumer {
        dlq: Dlq::new(
            topics.dlq(),
            CONSUMER_NAME,
            config.limits.max_dead_letter_bytes,
        ),
        topics,
        producer: producer(&config.kafka)?,
        store,
        rules: RulesSource::open(config)?,
        clock: Clock::from_config(config),
        tick_every: Duration::from_millis(config.timers.tick_ms),
        outage_limit: config.kafka.outage_limit(),
        generation,
        seen_generation: 0,
        live_from: HashMap::new(),
        awaited: Awaited::default(),
        first_due: BTreeMap::new(),
        fold: Fold::new(config.consumer.cache_bytes(), config.store.retention()),
        writer,
        sealed_at: Instant::now(),
        sized: Instant::now()
            .checked_sub(SIZE_EVERY)
            .unwrap_or_else(Instant::now),
        open_exceptions: BTreeMap::new(),
        stalled: BTreeMap::new(),
        skips: config.consumer.skip_log_records.clone(),
        exception_gauges: BTreeSet::new(),
    };
    state.clock.now()?;
    info!(consumer = CONSUMER_NAME, store = %dir.display(), rules = %state.rules.current().version, "state consumer started");
    consumer::run(
        CONSUMER_NAME,
        &consumer,
        config.consumer.max_batch,
        &mut state,
        shutdown,
    )
    .await?;
    // Every batch in flight finished: all that was folded may be written.
    state.write_store()?;
    state.store.flush()?;
    Ok(())
}

impl StateConsumer {
    /// Learns the committed offset of partitions new to this assignment.
    async fn refresh_live_from<C: ConsumerContext>(
        &mut self,
        consumer: &StreamConsumer<C>,
        partitions: impl Iterator<Item = i32>,
    ) -> Result<(), RuntimeError> {
        let generation = self.generation.load(Ordering::SeqCst);
        if generation != self.seen_generation {
            self.live_from.clear();
            self.first_due.clear();
            self.open_exceptions.clear();
            // A decision awaited on a partition that went away lands at its new owner, which
            // publishes the snapshot naming its cause: forgotten here, or it would hold back
            // that order's snapshots should the partition come back.
            let assignment = consumer
                .assignment()
                .map_err(RuntimeError::kafka("reading the assignment"))?;
            let assigned: BTreeSet<i32> = assignment
                .elements()
                .iter()
                .map(|element| element.partition())
                .collect();
            self.awaited.keep(|partition| assigned.contains(&partition));
            self.seen_generation = generation;
        }
        let unknown: BTreeSet<i32> = partitions
            .filter(|partition| !self.live_from.contains_key(partition))
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        let log_topic = self.topics.order_events();
        let mut tpl = TopicPartitionList::new();
        for partition in &unknown {
            tpl.add_partition(&log_topic, *partition);
        }
        let committed = with_retries("reading committed offsets", self.outage_limit, || {
            consumer.committed_offsets(tpl.clone(), ATTEMPT_TIMEOUT)
        })
        .await?;
        for element in committed.elements() {
            let offset = match element.offset() {
                Offset::Offset(offset) => offset,
                _ => 0,
            };
            info!(
                partition = element.partition(),
                live_from = offset,
                "partition progress known"
            );
            self.live_from.insert(element.partition(), offset);
        }
        Ok(())
    }

    /// Counts the open exceptions of a partition that just became live, from the store.
    fn count_open_exceptions(&mut self, partition: i32) -> Result<(), RuntimeError> {
        if self.open_exceptions.contains_key(&partition) {
            return Ok(());
        }
        let mut orders = HashMap::new();
        for entity in self.store.entities(partition) {
            if let Entity::Order(order) = entity? {
                let open = open_of(&order);
                if !open.is_empty() {
                    orders.insert(EntityKey::Order(order.order_id.clone()), open);
                }
            }
        }
        self.open_exceptions.insert(partition, orders);
        Ok(())
    }

    /// Reads when the first timer of each scheduled order of `partition` is due, unless known.
    fn schedule(&mut self, partition: i32) -> Result<(), RuntimeError> {
        if self.first_due.contains_key(&partition) {
            return Ok(());
        }
        let mut orders = HashMap::new();
        for key in self.store.scheduled(partition)? {
            if let Some(Entity::Order(order)) = self.store.load(partition, &key)? {
                if let Some(first) = first_due(&order, self.rules.current()) {
                    orders.insert(key, first);
                }
            }
        }
        self.first_due.insert(partition, orders);
        Ok(())
    }

    /// Keeps the open exceptions and the first due timer of a counted partition up to date
    /// after `key` was folded.
    fn recount(&mut self, partition: i32, key: &EntityKey) {
        let Some(Entity::Order(order)) = self.fold.entity(partition, key) else {
            return;
        };
        if let Some(orders) = self.open_exceptions.get_mut(&partition) {
            let open = open_of(order);
            if open.is_empty() {
                orders.remove(key);
            } else {
                orders.insert(key.clone(), open);
            }
        }
        if let Some(orders) = self.first_due.get_mut(&partition) {
            match first_due(order, self.rules.current()) {
                Some(first) => orders.insert(key.clone(), first),
                None => orders.remove(key),
            };
        }
    }

    /// The open exceptions of the live partitions, by owner and level, as gauges.
    fn report_open_exceptions(&mut self) {
        let mut counts: BTreeMap<(Owner, Level), usize> = BTreeMap::new();
        for open in self.open_exceptions.values().flat_map(HashMap::values) {
            for pair in open {
                *counts.entry(*pair).or_default() += 1;
            }
        }
        self.exception_gauges.extend(counts.keys().copied());
        for pair in &self.exception_gauges {
            let (owner, level) = *pair;
            metrics::gauge!(crate::telemetry::OPEN_EXCEPTIONS.name,
                "owner" => owner.as_str(), "level" => level.as_str())
            .set(counts.get(pair).copied().unwrap_or(0) as f64);
        }
    }

    /// The timer backlog (orders scheduled; how overdue the oldest due timer is) and the
    /// store's size, as gauges.
    fn report_backlog(&mut self, scheduled: usize, now: orderflow_domain::Timestamp) {
        metrics::gauge!(crate::telemetry::TIMERS_SCHEDULED.name).set(scheduled as f64);
        let overdue = self
            .first_due
            .values()
            .flat_map(HashMap::values)
            .filter(|due| **due <= now)
            .min()
            .map_or(0.0, |oldest| {
                (now - *oldest).num_milliseconds() as f64 / 1_000.0
            });
        metrics::gauge!(crate::telemetry::TIMERS_OVERDUE.name).set(overdue);
        if self.sized.elapsed() >= SIZE_EVERY {
            self.sized = Instant::now();
            metrics::gauge!(crate::telemetry::STORE_SIZE.name, "consumer" => CONSUMER_NAME)
                .set(self.store.size_on_disk() as f64);
            let (entities, bytes) = self.fold.cached();
            metrics::gauge!(crate::telemetry::ENTITY_CACHE_ENTITIES.name).set(entities as f64);
            metrics::gauge!(crate::telemetry::ENTITY_CACHE_BYTES.name).set(bytes as f64);
        }
    }

    /// Of `decisions`, those to append to the log: each at most once until it is read back.
    fn record_decisions(&mut self, partition: i32, decisions: Vec<Event>) -> Vec<Event> {
        let mut recorded = Vec::with_capacity(decisions.len());
        for decision in decisions {
            if self.awaited.sent(partition, &decision) {
                debug!(order_id = %decision.key.masked(), decision = decision.body.kind(),
                    rule_version = %self.rules.current().version, "decision recorded");
                metrics::counter!(crate::telemetry::DECISIONS.name, "kind" => decision.body.kind())
                    .increment(1);
                recorded.push(decision);
            }
        }
        recorded
    }

    /// What an effect of a live fold publishes; a message to another entity goes to `appends`.
    fn publish(
        &self,
        effect: Effect,
        outputs: &mut Vec<Output>,
        appends: &mut Appends,
    ) -> Result<(), RuntimeError> {
        match effect {
            Effect::Exception(change) => {
                metrics::counter!(crate::telemetry::EXCEPTIONS.name,
                    "kind" => change.exception.kind.as_str(), "action" => change.action.as_str())
                .increment(1);
                outputs.push(Output {
                    topic: self.topics.exceptions(),
                    key: change.order_id.to_string().into_bytes(),
                    headers: vec![(headers::CHANGE_ID, change.change_id().into_bytes())],
                    payload: to_json(&Versioned::new(&change))?,
                });
            }
            Effect::Append(message) => appends.push(message),
            Effect::Notify(notification) => {
                metrics::counter!(crate::telemetry::NOTIFICATIONS.name, "kind" => notification.kind.clone())
                    .increment(1);
                outputs.push(Output {
                    topic: self.topics.notifications(),
                    key: notification.order_id.to_string().into_bytes(),
                    headers: vec![(
                        headers::NOTIFICATION_ID,
                        notification.notification_id.to_string().into_bytes(),
                    )],
                    payload: to_json(&Versioned::new(&notification))?,
                });
            }
            Effect::Route(instruction) => {
                info!(order_id = %instruction.order_id, warehouse = %instruction.warehouse,
                    routing_id = %instruction.routing_id, "order routed");
                outputs.push(Output {
                    topic: self.topics.warehouse_routing(),
                    key: instruction.warehouse.clone().into_bytes(),
                    headers: vec![(
                        headers::ROUTING_ID,
                        instruction.routing_id.clone().into_bytes(),
                    )],
                    payload: to_json(&Versioned::new(&instruction))?,
                });
            }
        }
        Ok(())
    }

    /// One snapshot per order the batch touched live, naming the events it is the first to
    /// reflect.
    fn publish_snapshots(
        &self,
        snapshots: Snapshots,
        outputs: &mut Vec<Output>,
        made_at: &mut Vec<(usize, i32, i64)>,
    ) -> Result<(), RuntimeError> {
        for (
            slot,
            Touched {
                offset,
                reflected: named,
            },
        ) in snapshots.0
        {
            let Some(Entity::Order(order)) = self.fold.entity(slot.0, &slot.1) else {
                continue;
            };
            let event_ids: Vec<&str> = named.iter().map(|(id, _)| id.as_str()).collect();
            let event_times: Vec<String> = named.iter().map(|(_, ms)| ms.to_string()).collect();
            made_at.push((outputs.len(), slot.0, offset));
            outputs.push(Output {
                topic: self.topics.order_state(),
                key: slot.1.to_string().into_bytes(),
                headers: vec![
                    (headers::VERSION, order.version.to_string().into_bytes()),
                    (headers::EVENT_IDS, event_ids.join(",").into_bytes()),
                    (headers::EVENT_TIMES, event_times.join(",").into_bytes()),
                ],
                payload: to_json(&Versioned::new(order.snapshot()))?,
            });
        }
        Ok(())
    }

    /// Writes everything folded to the store, and waits until it is written. Only when no
    /// batch is in flight: what is written must have its outputs acknowledged.
    fn write_store(&mut self) -> Result<(), RuntimeError> {
        self.writer.land_all(&mut self.fold)?;
        if let Some(sealed) = self.fold.seal() {
            self.sealed_at = Instant::now();
            self.writer.write(sealed)?;
            self.writer.land_all(&mut self.fold)?;
        }
        Ok(())
    }

    /// Seals what was folded, for the writer, every [`WRITE_EVERY`] or when the fold is full.
    /// While a write is under way the fold goes on gathering, so a slow store makes bigger
    /// writes rather than more of them; only a full fold waits for the write.
    fn seal(&mut self) -> Result<Option<Sealed>, RuntimeError> {
        self.writer.land(&mut self.fold)?;
        let full = self.fold.full();
        if !full && self.sealed_at.elapsed() < WRITE_EVERY {
            return Ok(None);
        }
        if self.writer.writing() > 0 {
            if !full {
                return Ok(None);
            }
            self.writer.land_all(&mut self.fold)?;
        }
        self.sealed_at = Instant::now();
        Ok(self.fold.seal())
    }

    /// The next offset of `partition` to fold, as far as the fold knows (written or not).
    fn folded_to(&self, partition: i32) -> Result<i64, RuntimeError> {
        Ok(match self.fold.checkpoint(partition) {
            Some(offset) => offset,
            None => self.store.checkpoint(partition)?.unwrap_or(0),
        })
    }

    /// Whether the local store has folded every record the log partition holds now.
    async fn folded_to_end<C: ConsumerContext>(
        &self,
        consumer: &StreamConsumer<C>,
        partition: i32,
    ) -> Result<bool, RuntimeError> {
        let topic = self.topics.order_events();
        let (_, high) = with_retries("reading the log's end", self.outage_limit, || {
            consumer.fetch_watermarks(&topic, partition, ATTEMPT_TIMEOUT)
        })
        .await?;
        Ok(self.folded_to(partition)? >= high)
    }

    /// Partitions assigned to this instance whose local state has caught up with what was
    /// already published: only there may a timer fire.
    async fn live_partitions<C: ConsumerContext>(
        &mut self,
        consumer: &StreamConsumer<C>,
    ) -> Result<Vec<i32>, RuntimeError> {
        let assignment = consumer
            .assignment()
            .map_err(RuntimeError::kafka("reading the assignment"))?;
        let assigned: Vec<i32> = assignment
            .elements()
            .iter()
            .map(|element| element.partition())
            .collect();
        self.refresh_live_from(consumer, assigned.iter().copied())
            .await?;
        let mut live = Vec::new();
        let log_topic = self.topics.order_events();
        for partition in assigned {
            let folded = self.folded_to(partition)?;
            let caught_up = folded >= self.live_from.get(&partition).copied().unwrap_or(i64::MAX);
            crate::telemetry::health().set_live(&log_topic, partition, caught_up);
            if caught_up {
                live.push(partition);
            }
        }
        Ok(live)
    }
}

impl BatchHandler for StateConsumer {
    /// What was sealed once the batch was folded: written once the batch is acknowledged.
    type Done = Option<Sealed>;

    fn tick_every(&self) -> Option<Duration> {
        Some(self.tick_every)
    }

    async fn tick<C: ConsumerContext>(
        &mut self,
        consumer: &StreamConsumer<C>,
    ) -> Result<(), RuntimeError> {
        if self.rules.reload_if_changed() {
            self.first_due.clear();
        }
        // No batch is in flight: everything folded had its outputs acknowledged.
        self.writer.land(&mut self.fold)?;
        if self.sealed_at.elapsed() >= WRITE_EVERY && self.writer.writing() == 0 {
            if let Some(sealed) = self.fold.seal() {
                self.sealed_at = Instant::now();
                self.writer.write(sealed)?;
            }
        }
        let now = self.clock.now()?;
        let mut outputs = Vec::new();
        let mut scheduled = 0_usize;
        let live = self.live_partitions(consumer).await?;
        self.open_exceptions
            .retain(|partition, _| live.contains(partition));
        self.first_due
            .retain(|partition, _| live.contains(partition));
        let uncounted = live.iter().any(|partition| {
            !self.open_exceptions.contains_key(partition) || !self.first_due.contains_key(partition)
        });
        if uncounted {
            // Counting reads the store: it must hold everything folded.
            self.write_store()?;
        }
        for partition in &live {
            self.count_open_exceptions(*partition)?;
            self.schedule(*partition)?;
        }
        self.report_open_exceptions();
        for partition in live {
            let mut due = Vec::new();
            let orders = self.first_due.get(&partition).map(|orders| {
                scheduled += orders.len();
                orders
                    .iter()
                    .filter(|(_, first)| **first <= now)
                    .map(|(key, _)| key.clone())
                    .collect::<Vec<_>>()
            });
            for key in orders.unwrap_or_default() {
                if let Some(Entity::Order(order)) =
                    self.fold.load(self.store.as_ref(), partition, &key)?
                {
                    due.push(order);
                }
            }
            // Fire only on state folded to the end of the log: a payment already appended but
            // not folded yet must win over the timeout, and a timer appended before a restart
            // must be read back before it could be taken again.
            if due.is_empty() || !self.folded_to_end(consumer, partition).await? {
                continue;
            }
            for order in &due {
                let decisions = fire_timers(order, self.rules.current(), now, CONSUMER_NAME);
                let decisions = self.record_decisions(partition, decisions);
                if !decisions.is_empty() {
                    outputs.push(log_record(&self.topics, &decisions)?);
                }
            }
        }
        self.report_backlog(scheduled, now);
        if !outputs.is_empty() {
            debug!(records = outputs.len(), %now, "timers fired");
            deliver(&self.producer, &outputs).await?;
        }
        Ok(())
    }

    async fn handle<C: ConsumerContext>(
        &mut self,
        consumer: &StreamConsumer<C>,
        batch: &[OwnedMessage],
    ) -> Result<(Sent, Option<Sealed>), RuntimeError> {
        self.refresh_live_from(consumer, batch.iter().map(|message| message.partition()))
            .await?;
        self.forget_stalls_of_revoked(consumer)?;
        let now = self.clock.now()?;
        let span = info_span!(
            "state_batch",
            consumer = CONSUMER_NAME,
            records = batch.len()
        );
        async {
            let mut work: BTreeMap<i32, Vec<&OwnedMessage>> = BTreeMap::new();
            for message in batch {
                let (partition, offset) = (message.partition(), message.offset());
                if self.stalled.get(&partition).is_some_and(|at| offset > *at) {
                    // Fetched before the partition was paused: read again once it resumes.
                    continue;
                }
                work.entry(partition).or_default().push(message);
            }
            // Decoding and folding, the CPU of a batch, run on a core per partition; what
            // the records come to is then published partition after partition, each in log
            // order, as folding them one after the other would.
            let store = Arc::clone(&self.store);
            let (live_from, skips) = (&self.live_from, &self.skips);
            let rules = self.rules.current();
            let folded = self.fold.fold_partitions(store.as_ref(), work, |folding, messages| {
                let partition = folding.partition();
                let live_from = live_from.get(&partition).copied().unwrap_or(0);
                let mut folded = Vec::with_capacity(messages.len());
                for message in messages {
                    let offset = message.offset();
                    let live = offset >= live_from;
                    let mode = if live {
                        Mode::Live { rules, now, decider: CONSUMER_NAME }
                    } else {
                        Mode::Quiet
                    };
                    let read = match decode_events(message) {
                        Ok(events) => {
                            let mut applied = Vec::with_capacity(events.len());
                            for event in events {
                                let answer = folding.apply(offset, &event, mode)?;
                                applied.push((event, answer));
                            }
                            Ok(applied)
                        }
                        Err(error) => Err(error),
                    };
                    let skipped = read.is_err() && skips.contains(partition, offset);
                    if skipped {
                        folding.skip(offset);
                    }
                    let stops = read.is_err() && !skipped;
                    folded.push(Folded { message, live, read });
                    if stops {
                        // Nothing of the partition after a record it can't read is folded.
                        break;
                    }
                }
                Ok::<_, StoreError>(folded)
            });
            let mut outputs = Vec::new();
            // Where each output was made: (its index, the log record's partition and
            // offset), so one the broker refuses is dead-lettered with that provenance.
            let mut made_at: Vec<(usize, i32, i64)> = Vec::new();
            let mut snapshots = Snapshots::default();
            for (partition, records) in folded {
                for Folded { message, live, read } in records? {
                    let offset = message.offset();
                    made_at.push((outputs.len(), partition, offset));
                    let events = match read {
                        Ok(events) => events,
                        Err(error) if self.skips.contains(partition, offset) => {
                            warn!(topic = message.topic(), partition, offset, %error,
                                "unreadable order event skipped as consumer.skip-log-records says, and dead-lettered");
                            // Below the committed offset it was dead-lettered when it was skipped.
                            if live {
                                let rejection = Rejection { kind: RejectionKind::UnreadableLogRecord, message: error.to_string() };
                                outputs.push(self.dlq.output(&DeadLetter::of(message), &rejection));
                            }
                            continue;
                        }
                        Err(error) => {
                            self.stall(consumer, message, &error);
                            continue;
                        }
                    };
                    let appended_ms = message.timestamp().to_millis().unwrap_or(0);
                    for (event, applied) in events {
                        self.awaited.landed(partition, &event);
                        let slot = (partition, event.key.clone());
                        let step = match applied {
                            Applied::Duplicate => {
                                debug!(order_id = %event.key.masked(), event_id = %event.event_id, partition, offset, "duplicate event dropped");
                                metrics::counter!(crate::telemetry::DUPLICATES_DROPPED.name,
                                    "consumer" => CONSUMER_NAME, "stage" => "fold").increment(1);
                                continue;
                            }
                            Applied::Changed(step) => step,
                        };
                        self.recount(partition, &event.key);
                        debug!(order_id = %event.key.masked(), kind = event.body.kind(), partition, offset, live, "event folded");
                        if !live {
                            continue;
                        }
                        if matches!(event.key, EntityKey::Order(_)) {
                            let reflected = snapshots.touched(slot, offset);
                            reflected.push((event.event_id.to_string(), appended_ms));
                        }
                        let mut appends = Appends::default();
                        for effect in step.effects {
                            self.publish(effect, &mut outputs, &mut appends)?;
                        }
                        appends.extend(self.record_decisions(partition, step.decisions));
                        outputs.extend(appends.records(&self.topics)?);
                    }
                }
            }
            self.publish_snapshots(snapshots, &mut outputs, &mut made_at)?;
            let outputs = self.dlq.made_from(outputs, &self.topics.order_events(), &made_at);
            let sealed = self.seal()?;
            Ok((send_guarded(&self.producer, &self.dlq, outputs).await?, sealed))
        }
        .instrument(span)
        .await
    }

    fn resume_at(&self, partition: i32) -> Option<i64> {
        self.stalled.get(&partition).copied()
    }

    fn acknowledged(&mut self, sealed: Option<Sealed>, _idle: bool) -> Result<(), RuntimeError> {
        // Every output of this batch and of the batches before it is on the broker, so what
        // was folded up to it may now be written. Not flushed: state and checkpoints are
        // written in one atomic batch, and sled flushes in the background. A crash can lose
        // the newest writes of the store, never half of one; the consumer then restarts at the
        // older checkpoint and refolds up to the committed offset quietly, because those
        // outputs are already on the broker.
        self.writer.land(&mut self.fold)?;
        if let Some(sealed) = sealed {
            self.writer.write(sealed)?;
        }
        Ok(())
    }
}

impl StateConsumer {
    /// Stops `message`'s partition at it: a record this build can't read is a fact it can't
    /// fold yet (or bytes an operator must look at), so nothing after it may be folded.
    /// The other partitions go on; a restart with a build that reads it resumes here.
    fn stall<C: ConsumerContext>(
        &mut self,
        consumer: &StreamConsumer<C>,
        message: &OwnedMessage,
        error: &LogRecordError,
    ) {
        let (topic, partition, offset) = (message.topic(), message.partition(), message.offset());
        if self.stalled.insert(partition, offset) != Some(offset) {
            tracing::error!(topic, partition, offset, %error,
                "the log partition stops at a record this build can't read; nothing after it is folded until it can be");
        }
        health().stalled(topic, partition, Some(format!("offset {offset}: {error}")));
        let mut paused = TopicPartitionList::new();
        paused.add_partition(topic, partition);
        if let Err(error) = consumer.pause(&paused) {
            // Still stopped: what is fetched of it is left unread.
            warn!(topic, partition, %error, "pausing the stopped partition failed");
        }
    }

    /// Forgets the stops of partitions no longer assigned here: their new owner meets the
    /// record itself.
    fn forget_stalls_of_revoked<C: ConsumerContext>(
        &mut self,
        consumer: &StreamConsumer<C>,
    ) -> Result<(), RuntimeError> {
        if self.stalled.is_empty() {
            return Ok(());
        }
        let assigned = consumer
            .assignment()
            .map_err(RuntimeError::kafka("reading the assignment"))?;
        let topic = self.topics.order_events();
        self.stalled.retain(|partition, _| {
            let kept = assigned.find_partition(&topic, *partition).is_some();
            if !kept {
                health().stalled(&topic, *partition, None);
            }
            kept
        });
        Ok(())
    }
}

/// What folding one log record came to: handed from a batch's parallel part to its
/// sequential one.
struct Folded<'m> {
    message: &'m OwnedMessage,
    /// Read at or past the group's committed offset: what it does is published.
    live: bool,
    /// Its events with what folding each did, or why it can't be read.
    read: Result<Vec<(Event, Applied)>, LogRecordError>,
}

/// The orders a batch touched live: one snapshot each at the batch's end, made at the offset
/// of the last record that touched it, naming the events it is the first to reflect.
#[derive(Default)]
struct Snapshots(BTreeMap<(i32, EntityKey), Touched>);

struct Touched {
    offset: i64,
    /// Event id, and when its record was appended to the log (ms).
    reflected: Vec<(String, i64)>,
}

impl Snapshots {
    /// Notes the order in `slot` touched at `offset`; returns what its snapshot reflects.
    fn touched(&mut self, slot: (i32, EntityKey), offset: i64) -> &mut Vec<(String, i64)> {
        let touched = self.0.entry(slot).or_insert_with(|| Touched {
            offset,
            reflected: Vec::new(),
        });
        touched.offset = offset;
        &mut touched.reflected
    }
}

/// Decisions on their way back to the orders that made them (appended, not read back yet),
/// so that none is appended twice meanwhile.
#[derive(Default)]
struct Awaited {
    decisions: HashMap<(i32, EntityKey), HashSet<EventId>>,
}

impl Awaited {
    /// Notes `decision`, about an entity of `partition`, appended; false if it is already on
    /// its way (not to append again).
    fn sent(&mut self, partition: i32, decision: &Event) -> bool {
        self.decisions
            .entry((partition, decision.key.clone()))
            .or_default()
            .insert(decision.event_id.clone())
    }

    /// Notes `event` read back from `partition`: if it was a decision on its way, it is no
    /// longer.
    fn landed(&mut self, partition: i32, event: &Event) {
        let slot = (partition, event.key.clone());
        if let Some(on_the_way) = self.decisions.get_mut(&slot) {
            on_the_way.remove(&event.event_id);
            if on_the_way.is_empty() {
                self.decisions.remove(&slot);
            }
        }
    }

    /// Forgets what was awaited on the partitions `assigned` says no longer are: their new
    /// owner reads those decisions.
    fn keep(&mut self, assigned: impl Fn(i32) -> bool) {
        self.decisions
            .retain(|(partition, _), _| assigned(*partition));
    }
}

/// What one folded event appends to the log: one record per key, its events in the order
/// they were made, each with its own id (dedupe, the in-flight set and replay work per event).
#[derive(Default)]
struct Appends(Vec<Vec<Event>>);

impl Appends {
    fn push(&mut self, event: Event) {
        let same_key = self
            .0
            .iter_mut()
            .find(|events| events.first().is_some_and(|first| first.key == event.key));
        match same_key {
            Some(events) => events.push(event),
            None => self.0.push(vec![event]),
        }
    }

    fn extend(&mut self, events: Vec<Event>) {
        for event in events {
            self.push(event);
        }
    }

    fn records(&self, topics: &Topics) -> Result<Vec<Output>, RuntimeError> {
        self.0
            .iter()
            .map(|events| log_record(topics, events))
            .collect()
    }
}

/// When the first timer of an order is due, if it has any.
fn first_due(
    order: &orderflow_domain::OrderState,
    rules: &orderflow_domain::Rules,
) -> Option<orderflow_domain::Timestamp> {
    timers(order, rules).iter().map(|(due, _)| *due).min()
}

/// The (owner, level) of each open exception of an order.
fn open_of(order: &orderflow_domain::OrderState) -> Vec<(Owner, Level)> {
    order
        .open_exceptions()
        .map(|exception| (exception.owner, exception.level))
        .collect()
}

/// Events of one key as one record of the order event log (protobuf, `orderflow.log.v1`).
/// Refuses an empty list or events of different keys: a record has one key.
pub fn log_record(topics: &Topics, events: &[Event]) -> Result<Output, RuntimeError> {
    let Some(first) = events.first() else {
        return Err(RuntimeError::Fatal(
            "a log record needs at least one event".into(),
        ));
    };
    if events.iter().any(|event| event.key != first.key) {
        return Err(RuntimeError::Fatal(
            "the events of one log record must share a key".into(),
        ));
    }
    Ok(Output {
        topic: topics.order_events(),
        key: first.key.to_string().into_bytes(),
        headers: vec![(headers::CONTENT_TYPE, headers::LOG_CONTENT_TYPE.into())],
        payload: encode_log_record(events),
    })
}

fn to_json(value: &impl serde::Serialize) -> Result<Vec<u8>, RuntimeError> {
    serde_json::to_vec(value)
        .map_err(|error| RuntimeError::Fatal(format!("encoding output: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_that_cannot_be_read_is_an_error_not_a_rebuild() {
        let dir = tempfile::tempdir().unwrap();
        {
            // Written behind the store's back, in its layout (`c/{partition:08x}` → an
            // 8-byte offset): one good checkpoint, one of 3 bytes.
            let db = sled::open(dir.path()).unwrap();
            db.insert(b"c/00000001", &42_i64.to_be_bytes()).unwrap();
            db.insert(b"c/00000002", &[1_u8, 2, 3]).unwrap();
            db.flush().unwrap();
        }
        let start = StoreStart(Arc::new(SledStore::open(dir.path()).unwrap()));
        assert_eq!(start.start_offset(1).unwrap(), Some(42));
        assert_eq!(
            start.start_offset(7).unwrap(),
            Some(0),
            "no checkpoint: rebuild"
        );
        let error = start.start_offset(2).unwrap_err();
        assert!(
            matches!(
                error,
                RuntimeError::Store(orderflow_store::StoreError::Corrupt(_))
            ),
            "{error:?}"
        );
    }

    /// A decision about `order` (its id depends on the order and the kind of decision).
    fn decided(order: &str, body: orderflow_domain::EventBody) -> Event {
        let at = chrono::DateTime::UNIX_EPOCH;
        Event::decision(&order.parse().unwrap(), at, CONSUMER_NAME, None, body)
    }

    fn timed_out(order: &str) -> Event {
        decided(
            order,
            orderflow_domain::EventBody::PaymentTimedOut {
                timeout_minutes: 30,
                rule_version: "r1".into(),
            },
        )
    }

    fn approved(order: &str) -> Event {
        decided(
            order,
            orderflow_domain::EventBody::OrderAutoApproved(orderflow_domain::Approval {
                rule_version: "r1".into(),
                threshold_fen: 50_000,
            }),
        )
    }

    #[test]
    fn a_decision_on_its_way_is_not_appended_again_until_it_lands_or_its_partition_goes() {
        let mut awaited = Awaited::default();
        assert!(awaited.sent(0, &approved("tmall:T1")));
        assert!(awaited.sent(0, &timed_out("tmall:T1")));
        assert!(!awaited.sent(0, &approved("tmall:T1")), "on its way");
        awaited.landed(0, &approved("tmall:T1"));
        assert!(
            awaited.sent(0, &approved("tmall:T1")),
            "landed: may be decided again"
        );
        assert!(awaited.sent(1, &approved("tmall:T2")));
        awaited.keep(|partition| partition == 1);
        assert!(
            awaited.sent(0, &timed_out("tmall:T1")),
            "partition 0 went away"
        );
        assert!(
            !awaited.sent(1, &approved("tmall:T2")),
            "partition 1 stayed"
        );
    }

    #[test]
    fn what_one_event_appends_is_one_record_per_key_in_the_order_made() {
        let level = |sku: &str, minutes: i64| {
            let at = chrono::DateTime::UNIX_EPOCH + chrono::Duration::minutes(minutes);
            Event::stock_level(sku, "WH-HZ", 5, at, orderflow_domain::Source::origin("t"))
        };
        let mut appends = Appends::default();
        appends.push(level("S-1", 1));
        appends.push(level("S-2", 1));
        appends.extend(vec![
            approved("tmall:T1"),
            level("S-1", 2),
            timed_out("tmall:T1"),
        ]);
        let records = appends.records(&Topics::new("t.")).unwrap();
        let read: Vec<(String, Vec<EventId>)> = records
            .iter()
            .map(|record| {
                let content_type = record
                    .headers
                    .iter()
                    .find(|(name, _)| *name == headers::CONTENT_TYPE);
                let events = orderflow_schema::log::decode_log_record(
                    &record.payload,
                    content_type.map(|(_, value)| value.as_slice()),
                )
                .unwrap();
                assert!(events
                    .iter()
                    .all(|event| event.key.to_string().as_bytes() == record.key));
                (
                    String::from_utf8(record.key.clone()).unwrap(),
                    events.into_iter().map(|event| event.event_id).collect(),
                )
            })
            .collect();
        let ids = |events: &[Event]| {
            events
                .iter()
                .map(|e| e.event_id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            read,
            vec![
                (
                    "sku:S-1".to_string(),
                    ids(&[level("S-1", 1), level("S-1", 2)])
                ),
                ("sku:S-2".to_string(), ids(&[level("S-2", 1)])),
                (
                    "tmall:T1".to_string(),
                    ids(&[approved("tmall:T1"), timed_out("tmall:T1")])
                ),
            ]
        );
    }
}
