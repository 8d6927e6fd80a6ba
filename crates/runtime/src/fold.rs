//! Folding log records into the store: the one code path the live state consumer and the
//! replay tool share, which is why a replay yields the live state byte for byte.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};

use lru::LruCache;
use rayon::iter::{IntoParallelIterator, ParallelIterator};

use orderflow_domain::{step, Entity, EntityKey, Event, Mode, Step};
use orderflow_store::{Batch, Retention, StateStore, StoreError};

/// Records of the log an operator chose to pass over, as `partition@offset`
/// (`consumer.skip-log-records`): only ever records that can't be read, each dead-lettered
/// by the state consumer and skipped by a replay alike, so both fold the same log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogSkips(BTreeSet<(i32, i64)>);

impl LogSkips {
    pub fn contains(&self, partition: i32, offset: i64) -> bool {
        self.0.contains(&(partition, offset))
    }

    fn parse(text: &str) -> Result<(i32, i64), String> {
        let (partition, offset) = text
            .trim()
            .split_once('@')
            .ok_or_else(|| format!("{text:?} is not partition@offset (e.g. \"3@1042\")"))?;
        match (partition.trim().parse(), offset.trim().parse()) {
            (Ok(partition), Ok(offset)) if partition >= 0 && offset >= 0 => Ok((partition, offset)),
            _ => Err(format!(
                "{text:?} is not partition@offset of two non-negative integers (e.g. \"3@1042\")"
            )),
        }
    }
}

impl serde::Serialize for LogSkips {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|(p, o)| format!("{p}@{o}")))
    }
}

impl<'de> serde::Deserialize<'de> for LogSkips {
    /// A list of `"partition@offset"`, or one string of them separated by commas (as the
    /// environment variable gives it).
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<LogSkips, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Given {
            List(Vec<String>),
            Text(String),
        }
        let items = match Given::deserialize(deserializer)? {
            Given::List(items) => items,
            Given::Text(text) => text
                .split(',')
                .filter(|item| !item.trim().is_empty())
                .map(str::to_string)
                .collect(),
        };
        items
            .iter()
            .map(|item| LogSkips::parse(item))
            .collect::<Result<_, _>>()
            .map(LogSkips)
            .map_err(serde::de::Error::custom)
    }
}

/// What one record did.
pub enum Applied {
    /// Already folded in: a duplicate by event id.
    Duplicate,
    /// Folded in; what it produced (exceptions, messages, notifications, routing) and, when
    /// live, the decisions it led to.
    Changed(Step),
}

/// Folds log records over a store, keeping state in memory in between.
///
/// Entities are folded in memory and written to the store, with their partition's checkpoint,
/// by [`Fold::write`], which the caller runs when it chooses (the state consumer every few
/// hundred milliseconds, the replay when [`Fold::full`]). Written entities stay in a cache of
/// recently used ones, bounded in bytes, so a fold reads the store only for an entity it
/// hasn't seen lately. The cache always equals what the store holds; what was folded and not
/// yet written is lost with the process, and the store's older checkpoint is where folding
/// resumes.
///
/// Entities never cross a partition (the log is keyed by entity), so each partition folds in
/// a [`PartitionFold`] of its own: [`Fold::fold_partitions`] folds several at once, one core
/// each, and what is folded is the same as folding them one after the other. The cache's
/// budget is shared: past it, the entities least recently written go first, whichever
/// partition holds them.
///
/// Whether an event was already folded into a sku or buyer is asked of the store one id at a
/// time ([`StateStore::applied_at`]), never by loading the sku's whole history; an id counts
/// within the dedup window of the partition's watermark (the latest event time folded), and
/// an order past its retention reads as absent ([`Retention`]). Both depend only on the log,
/// whatever was cached, written or pruned, so a replay folds the live state byte for byte.
pub struct Fold {
    /// Per partition folded since this fold began: its cache, watermark and unwritten batch.
    shards: BTreeMap<i32, Shard>,
    /// The cache's bound over every partition, in (approximate) bytes.
    cache_bytes: usize,
    retention: Retention,
    /// How many writes were made: a cached entity is stamped with the write that put it there,
    /// which orders entities of different partitions by how recently they were used.
    writes: u64,
}

/// One partition's part of a [`Fold`].
struct Shard {
    /// Written, as the store holds them, with their weight and the write that cached them;
    /// least recently used first.
    cache: LruCache<EntityKey, (Entity, usize, u64)>,
    /// What the cache holds, in (approximate) bytes.
    cached_bytes: usize,
    /// The latest event time folded (including what is not written yet), once known.
    watermark: Option<i64>,
    /// Folded, not written yet.
    batch: Batch,
}

impl Shard {
    fn new() -> Shard {
        Shard {
            cache: LruCache::unbounded(),
            cached_bytes: 0,
            watermark: None,
            batch: Batch::default(),
        }
    }

    /// Writes the batch (one atomic write: the partition's entities with its checkpoint) and
    /// caches what it wrote, stamped `stamp`.
    fn write(&mut self, store: &impl StateStore, stamp: u64) -> Result<(), StoreError> {
        let batch = std::mem::take(&mut self.batch);
        if batch.is_empty() {
            return Ok(());
        }
        let sizes = store.write(&batch)?;
        for (((_, key), entity), size) in batch.entities.into_iter().zip(sizes) {
            let weight = size + weight_besides_encoding(&entity);
            self.cached_bytes += weight;
            if let Some((_, (_, replaced, _))) = self.cache.push(key, (entity, weight, stamp)) {
                self.cached_bytes -= replaced;
            }
        }
        Ok(())
    }
}

/// What an entity costs in memory besides its encoded size: the enum itself, the key, the
/// cache's node. The encoded size stands in for its heap: close for strings, which dominate,
/// within a factor of two for the rest.
const ENTITY_OVERHEAD: usize = std::mem::size_of::<Entity>() + 64;

/// [`ENTITY_OVERHEAD`], and for an order the box its state lives in (over a kilobyte).
fn weight_besides_encoding(entity: &Entity) -> usize {
    match entity {
        Entity::Order(_) => ENTITY_OVERHEAD + std::mem::size_of::<orderflow_domain::OrderState>(),
        Entity::Stock(_) | Entity::Buyer(_) => ENTITY_OVERHEAD,
    }
}

/// What a folded entity not written yet is assumed to take, to bound the batch by a quarter of
/// the cache's budget (its encoded size is known only once written): memory stays within
/// about 1.25 times `cache-bytes`.
const UNWRITTEN_ENTITY_BYTES: usize = 2_048;

impl Fold {
    /// Keeps at most about `cache_bytes` of written entities in memory, and keeps `retention`.
    pub fn new(cache_bytes: usize, retention: Retention) -> Fold {
        Fold {
            shards: BTreeMap::new(),
            cache_bytes,
            retention,
            writes: 0,
        }
    }

    /// Folds `partition` alone (see [`PartitionFold`]).
    pub fn partition<'a, S: StateStore>(
        &'a mut self,
        store: &'a S,
        partition: i32,
    ) -> PartitionFold<'a, S> {
        PartitionFold {
            partition,
            shard: self.shards.entry(partition).or_insert_with(Shard::new),
            store,
            retention: self.retention,
        }
    }

    /// Folds `event`, read at `offset` of `partition`, with the domain's [`step`] in `mode`.
    pub fn apply(
        &mut self,
        store: &impl StateStore,
        partition: i32,
        offset: i64,
        event: &Event,
        mode: Mode<'_>,
    ) -> Result<Applied, StoreError> {
        self.partition(store, partition).apply(offset, event, mode)
    }

    /// Runs `fold` on each partition of `work` with its part of the work, partitions in
    /// parallel (a core each, as far as there are cores), and returns what each run returned,
    /// in partition order. Each run sees only its own partition, so what is folded is what
    /// running them one after the other would fold; the caller puts together what they
    /// returned in the order it needs.
    pub fn fold_partitions<S, W, T, F>(
        &mut self,
        store: &S,
        work: BTreeMap<i32, W>,
        fold: F,
    ) -> Vec<(i32, T)>
    where
        S: StateStore + Sync,
        W: Send,
        T: Send,
        F: Fn(&mut PartitionFold<'_, S>, W) -> T + Sync,
    {
        for partition in work.keys() {
            self.shards.entry(*partition).or_insert_with(Shard::new);
        }
        let partitions: BTreeSet<i32> = work.keys().copied().collect();
        let retention = self.retention;
        let jobs: Vec<(PartitionFold<'_, S>, W)> = self
            .shards
            .iter_mut()
            .filter(|(partition, _)| partitions.contains(partition))
            .zip(work.into_values())
            .map(|((partition, shard), work)| {
                let folding = PartitionFold {
                    partition: *partition,
                    shard,
                    store,
                    retention,
                };
                (folding, work)
            })
            .collect();
        let run = |(mut folding, work): (PartitionFold<'_, S>, W)| {
            let done = fold(&mut folding, work);
            (folding.partition, done)
        };
        // One partition: no hand-over to the pool's threads and back.
        if jobs.len() <= 1 {
            jobs.into_iter().map(run).collect()
        } else {
            jobs.into_par_iter().map(run).collect()
        }
    }

    /// Moves the checkpoint past a record that holds no event: one an operator skipped
    /// ([`LogSkips`]).
    pub fn skip(&mut self, partition: i32, offset: i64) {
        let shard = self.shards.entry(partition).or_insert_with(Shard::new);
        shard.batch.checkpoints.insert(partition, offset + 1);
    }

    /// An entity folded since the last write.
    pub fn entity(&self, partition: i32, key: &EntityKey) -> Option<&Entity> {
        self.shards
            .get(&partition)?
            .batch
            .entities
            .get(&(partition, key.clone()))
    }

    /// How many entities were folded since the last write.
    pub fn unwritten(&self) -> usize {
        self.shards
            .values()
            .map(|shard| shard.batch.entities.len())
            .sum()
    }

    /// Whether the entities folded since the last write take about a quarter of the cache's
    /// budget: time to write them.
    pub fn full(&self) -> bool {
        self.unwritten().saturating_mul(UNWRITTEN_ENTITY_BYTES) >= self.cache_bytes / 4
    }

    /// Written entities in memory, and their approximate bytes.
    pub fn cached(&self) -> (usize, usize) {
        self.shards
            .values()
            .fold((0, 0), |(entities, bytes), shard| {
                (entities + shard.cache.len(), bytes + shard.cached_bytes)
            })
    }

    /// Writes what was folded since the last write to the store, one atomic write per
    /// partition (its entities with its checkpoint), partitions in parallel; then keeps those
    /// entities in the cache, evicting the least recently used past its budget.
    ///
    /// One write per partition rather than one for all: a partition's state and checkpoint
    /// depend on its own records only, so each is consistent on its own after a crash, and
    /// encoding the partitions' entities runs on every core.
    pub fn write<S: StateStore + Sync>(&mut self, store: &S) -> Result<(), StoreError> {
        self.writes += 1;
        let stamp = self.writes;
        let shards: Vec<&mut Shard> = self
            .shards
            .values_mut()
            .filter(|shard| !shard.batch.is_empty())
            .collect();
        if shards.len() <= 1 {
            shards
                .into_iter()
                .try_for_each(|shard| shard.write(store, stamp))?;
        } else {
            shards
                .into_par_iter()
                .try_for_each(|shard| shard.write(store, stamp))?;
        }
        let (_, mut cached) = self.cached();
        while cached > self.cache_bytes {
            // The partition whose least recently used entity was written longest ago.
            let oldest = self
                .shards
                .values_mut()
                .filter_map(|shard| {
                    let (_, (_, _, stamp)) = shard.cache.peek_lru()?;
                    Some((*stamp, shard))
                })
                .min_by_key(|(stamp, _)| *stamp);
            let Some((_, shard)) = oldest else { break };
            if let Some((_, (_, weight, _))) = shard.cache.pop_lru() {
                shard.cached_bytes -= weight;
                cached -= weight;
            }
        }
        Ok(())
    }
}

/// One partition of a [`Fold`], folding alone: what [`Fold::fold_partitions`] hands each
/// partition's run.
pub struct PartitionFold<'a, S> {
    partition: i32,
    shard: &'a mut Shard,
    store: &'a S,
    retention: Retention,
}

impl<S: StateStore> PartitionFold<'_, S> {
    /// The partition folded.
    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// Folds `event`, read at `offset` of this partition, with the domain's [`step`] in `mode`.
    pub fn apply(
        &mut self,
        offset: i64,
        event: &Event,
        mode: Mode<'_>,
    ) -> Result<Applied, StoreError> {
        let (store, partition, retention) = (self.store, self.partition, self.retention);
        self.shard.batch.checkpoints.insert(partition, offset + 1);
        let watermark = self.advance(event.occurred_at.timestamp_millis())?;
        let Shard {
            cache,
            cached_bytes,
            batch,
            ..
        } = &mut *self.shard;
        // Folded in place: an entity is large, and moving it out of the batch and back moved
        // it (and its neighbours in the tree) twice per event.
        let entity = match batch.entities.entry((partition, event.key.clone())) {
            Entry::Occupied(folded) => folded.into_mut(),
            Entry::Vacant(slot) => {
                let entity = match cache.pop(&event.key) {
                    Some((entity, weight, _)) => {
                        *cached_bytes -= weight;
                        entity
                    }
                    None => store
                        .load(partition, &event.key)?
                        .unwrap_or_else(|| Entity::empty(&event.key)),
                };
                slot.insert(entity)
            }
        };
        if retention.expired(entity, watermark) {
            *entity = Entity::empty(&event.key);
        }
        // A sku's or buyer's ids live in the store: the fold answers "seen?" for the domain,
        // whose own set then only ever holds the one event being folded.
        let kept_apart = entity.applied_kept_apart().is_some();
        let id_slot = || ((partition, event.key.clone()), event.event_id.clone());
        if kept_apart {
            let seen = match batch.applied.get(&id_slot()) {
                Some(at) => Some(*at),
                None => store.applied_at(partition, &event.key, &event.event_id)?,
            };
            if seen.is_some_and(|at| retention.remembers(at, watermark)) {
                return Ok(Applied::Duplicate);
            }
        }
        Ok(match step(entity, event, mode) {
            Some(step) => {
                if let Some(ids) = entity.applied_kept_apart() {
                    ids.clear();
                    batch.applied.insert(id_slot(), watermark);
                }
                Applied::Changed(step)
            }
            None => Applied::Duplicate,
        })
    }

    /// Moves the partition's watermark to `occurred_at` if that is later; returns it.
    fn advance(&mut self, occurred_at: i64) -> Result<i64, StoreError> {
        let known = match self.shard.watermark {
            Some(known) => Some(known),
            None => self.store.watermark(self.partition)?,
        };
        let watermark = known.map_or(occurred_at, |known| known.max(occurred_at));
        self.shard.watermark = Some(watermark);
        self.shard
            .batch
            .watermarks
            .insert(self.partition, watermark);
        Ok(watermark)
    }

    /// Moves the checkpoint past a record that holds no event: one an operator skipped
    /// ([`LogSkips`]).
    pub fn skip(&mut self, offset: i64) {
        self.shard
            .batch
            .checkpoints
            .insert(self.partition, offset + 1);
    }

    /// An entity of this partition folded since the last write.
    pub fn entity(&self, key: &EntityKey) -> Option<&Entity> {
        self.shard
            .batch
            .entities
            .get(&(self.partition, key.clone()))
    }
}

/// Per partition, the next offset the local store expects.
pub type Checkpoints = BTreeMap<i32, i64>;

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Duration};
    use orderflow_domain::Source;
    use orderflow_store::SledStore;

    use super::*;

    const HOUR: i64 = 3_600_000;

    /// A level snapshot of `sku` taken `minutes` after the epoch.
    fn level(sku: &str, minutes: i64, on_hand: u64) -> Event {
        let at = DateTime::UNIX_EPOCH + Duration::minutes(minutes);
        Event::stock_level(sku, "WH-HZ", on_hand, at, Source::origin("in.inventory"))
    }

    fn changed(applied: Applied) -> bool {
        matches!(applied, Applied::Changed(_))
    }

    fn store() -> (tempfile::TempDir, SledStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        store.bind("t.order-events", Retention::default()).unwrap();
        (dir, store)
    }

    const PLENTY: usize = 1 << 30;

    #[test]
    fn a_sku_knows_its_events_after_a_restart_and_forgets_what_was_never_written() {
        let (_dir, store) = store();
        let (first, second, third) = (level("S-1", 1, 5), level("S-1", 2, 4), level("S-1", 3, 3));

        let mut fold = Fold::new(PLENTY, Retention::default());
        assert!(changed(
            fold.apply(&store, 0, 0, &first, Mode::Quiet).unwrap()
        ));
        assert!(
            !changed(fold.apply(&store, 0, 1, &first, Mode::Quiet).unwrap()),
            "a copy, in memory"
        );
        assert!(changed(
            fold.apply(&store, 0, 2, &second, Mode::Quiet).unwrap()
        ));
        fold.write(&store).unwrap();
        assert!(
            !changed(fold.apply(&store, 0, 3, &second, Mode::Quiet).unwrap()),
            "a copy, cached"
        );
        // Folded, never written: lost with the process, like a crash.
        assert!(changed(
            fold.apply(&store, 0, 4, &third, Mode::Quiet).unwrap()
        ));
        drop(fold);
        assert_eq!(store.checkpoint(0).unwrap(), Some(3));

        // A new process asks the store about the sku's ids.
        let mut restarted = Fold::new(PLENTY, Retention::default());
        assert!(!changed(
            restarted.apply(&store, 0, 3, &first, Mode::Quiet).unwrap()
        ));
        assert!(!changed(
            restarted.apply(&store, 0, 3, &second, Mode::Quiet).unwrap()
        ));
        assert!(
            changed(restarted.apply(&store, 0, 4, &third, Mode::Quiet).unwrap()),
            "the unwritten event is folded again from the log"
        );
    }

    #[test]
    fn the_cache_stays_within_its_bytes_and_reads_the_rest_back_from_the_store() {
        let (_dir, store) = store();
        let budget = 8 * ENTITY_OVERHEAD;
        let mut fold = Fold::new(budget, Retention::default());
        for (offset, n) in (0..50).enumerate() {
            let event = level(&format!("S-{n}"), 1, 5);
            fold.apply(&store, 0, offset as i64, &event, Mode::Quiet)
                .unwrap();
        }
        fold.write(&store).unwrap();
        let (entities, bytes) = fold.cached();
        assert!(bytes <= budget, "{bytes} > {budget}");
        assert!(entities > 0 && entities < 8, "{entities} cached");
        // Cached or not, every sku knows its event, and holds none of its ids in memory.
        for n in 0..50 {
            let event = level(&format!("S-{n}"), 1, 5);
            assert!(!changed(
                fold.apply(&store, 0, 50, &event, Mode::Quiet).unwrap()
            ));
            let key = EntityKey::Stock(format!("S-{n}"));
            let mut entity = fold.entity(0, &key).unwrap().clone();
            assert_eq!(entity.applied_kept_apart().map(|ids| ids.len()), Some(0));
            assert_eq!(Some(entity), store.load(0, &key).unwrap());
        }
    }

    /// An order's state lives in a box of over a kilobyte that its encoding doesn't show: the
    /// cache counts it, so a budget of orders holds what it says.
    #[test]
    fn a_cached_order_weighs_its_boxed_state() {
        let (_dir, store) = store();
        let mut fold = Fold::new(PLENTY, Retention::default());
        let at = DateTime::UNIX_EPOCH + Duration::minutes(1);
        for n in 0..20_i64 {
            let key = EntityKey::Order(format!("tmall:O-{n}").parse().unwrap());
            let body = orderflow_domain::EventBody::PaymentCaptured {
                payment_id: format!("P-{n}"),
                amount_fen: 100,
                method: "alipay".into(),
            };
            let event = Event::fact(key, at, Source::origin("in.payments"), body);
            fold.apply(&store, 0, n, &event, Mode::Quiet).unwrap();
        }
        fold.write(&store).unwrap();
        let (entities, bytes) = fold.cached();
        assert_eq!(entities, 20);
        let boxed = std::mem::size_of::<orderflow_domain::OrderState>();
        assert!(boxed > 1_000, "{boxed}");
        assert!(bytes >= 20 * (boxed + ENTITY_OVERHEAD), "{bytes}");
    }

    /// An event stream over many skus and hours with copies near and far: folded with a big
    /// cache written once and with a tiny cache written every few records, the stores digest
    /// the same, and the fold's answers are the same.
    #[test]
    fn what_is_folded_depends_on_the_log_only_not_on_caching_writing_or_pruning() {
        let retention = Retention {
            dedup_window_ms: 2 * HOUR,
            closed_order_ms: 2 * HOUR,
        };
        let events: Vec<Event> = (0..400)
            .map(|i| level(&format!("S-{}", i % 37), (i / 3) * 7, i as u64))
            .collect();
        // Each event again right after, and again 5 hours (of event time) later.
        let mut log = Vec::new();
        for (i, event) in events.iter().enumerate() {
            log.push(event.clone());
            log.push(event.clone());
            if i >= 130 {
                log.push(events[i - 130].clone());
            }
        }
        let run = |cache_bytes: usize, write_every: usize| {
            let (dir, store) = store_with(retention);
            let mut fold = Fold::new(cache_bytes, retention);
            let mut answers = Vec::new();
            for (offset, event) in log.iter().enumerate() {
                answers.push(changed(
                    fold.apply(&store, 0, offset as i64, event, Mode::Quiet)
                        .unwrap(),
                ));
                if (offset + 1) % write_every == 0 {
                    fold.write(&store).unwrap();
                }
            }
            fold.write(&store).unwrap();
            (dir, store.digest(0).unwrap(), answers)
        };
        let (_a, big, big_answers) = run(PLENTY, log.len());
        let (_b, tiny, tiny_answers) = run(1, 7);
        assert_eq!(big, tiny);
        assert_eq!(big_answers, tiny_answers);
        // 400 events once each; the copies right after are dropped; the 270 copies 5 hours
        // later are past the 2-hour window and folded again.
        assert_eq!(big_answers.iter().filter(|c| **c).count(), 400 + 270);
    }

    /// Where a key's events go in the tests: entities never cross a partition.
    fn partition_of(key: &EntityKey) -> i32 {
        (key.to_string().bytes().map(u32::from).sum::<u32>() % 4) as i32
    }

    /// The facts of simulated journeys (orders, payments, shipments, duplicates, out of order)
    /// with the messages their orders send to skus and buyers, and the decisions they lead
    /// to, spread over four partitions: folded live one record after the other with a big
    /// cache, and partition by partition in parallel rounds with a tiny cache written every
    /// few rounds, the stores digest the same and every record's answer (effects and
    /// decisions) is the same.
    #[test]
    fn folding_partitions_in_parallel_folds_what_folding_them_in_turn_does() {
        use orderflow_schema::{decode, Provenance};
        use orderflow_sim::{plan, Mix};

        let plan = plan(&Mix {
            orders: 300,
            malformed_share: 0.0,
            ..Mix::default()
        });
        let provenance = Provenance {
            topic: "t.in".into(),
            partition: 0,
            offset: 0,
        };
        let facts: Vec<Event> = plan
            .records
            .iter()
            .filter_map(|record| decode(record.topic, &provenance, None, &record.payload).ok())
            .collect();
        let rules = orderflow_domain::Rules::default();
        let now = facts.iter().map(|event| event.occurred_at).max().unwrap();
        let live = Mode::Live {
            rules: &rules,
            now,
            decider: "test",
        };
        // The log: each fact, then what folding it live appends (as the state consumer does).
        let mut log: Vec<Event> = Vec::new();
        {
            let (_dir, store) = store();
            let mut fold = Fold::new(PLENTY, Retention::default());
            let mut pending: std::collections::VecDeque<Event> = facts.into();
            while let Some(event) = pending.pop_front() {
                let partition = partition_of(&event.key);
                if let Applied::Changed(step) =
                    fold.apply(&store, partition, 0, &event, live).unwrap()
                {
                    for effect in step.effects {
                        if let orderflow_domain::Effect::Append(message) = effect {
                            pending.push_back(message);
                        }
                    }
                    pending.extend(step.decisions);
                }
                log.push(event);
            }
        }
        let mut offsets: BTreeMap<i32, i64> = BTreeMap::new();
        let records: Vec<(i32, i64, Event)> = log
            .into_iter()
            .map(|event| {
                let partition = partition_of(&event.key);
                let offset = offsets.entry(partition).or_default();
                *offset += 1;
                (partition, *offset - 1, event)
            })
            .collect();
        let answer = |applied: Applied| match applied {
            Applied::Changed(step) => Some(step),
            Applied::Duplicate => None,
        };

        let (_a, sequential) = store();
        let mut fold = Fold::new(PLENTY, Retention::default());
        let mut in_turn = BTreeMap::new();
        for (partition, offset, event) in &records {
            let applied = fold
                .apply(&sequential, *partition, *offset, event, live)
                .unwrap();
            in_turn.insert((*partition, *offset), answer(applied));
        }
        fold.write(&sequential).unwrap();

        let (_b, parallel) = store();
        let mut fold = Fold::new(1, Retention::default());
        let mut at_once = BTreeMap::new();
        for (round, chunk) in records.chunks(40).enumerate() {
            let mut work: BTreeMap<i32, Vec<&(i32, i64, Event)>> = BTreeMap::new();
            for record in chunk {
                work.entry(record.0).or_default().push(record);
            }
            let answers = fold.fold_partitions(&parallel, work, |folding, records| {
                records
                    .into_iter()
                    .map(|(_, offset, event)| {
                        let applied = folding.apply(*offset, event, live).unwrap();
                        (*offset, answer(applied))
                    })
                    .collect::<Vec<_>>()
            });
            for (partition, answers) in answers {
                for (offset, answer) in answers {
                    at_once.insert((partition, offset), answer);
                }
            }
            if round % 3 == 2 {
                fold.write(&parallel).unwrap();
            }
        }
        fold.write(&parallel).unwrap();

        assert_eq!(in_turn, at_once);
        let decided = in_turn
            .values()
            .flatten()
            .map(|step| step.decisions.len())
            .sum::<usize>();
        assert!(decided > 0, "the orders decided something");
        assert_eq!(offsets.len(), 4, "every partition has records");
        for partition in offsets.keys() {
            assert_eq!(
                sequential.digest(*partition).unwrap(),
                parallel.digest(*partition).unwrap()
            );
        }
    }

    fn store_with(retention: Retention) -> (tempfile::TempDir, SledStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        store.bind("t.order-events", retention).unwrap();
        (dir, store)
    }

    #[test]
    fn an_event_for_an_order_past_its_retention_starts_a_new_order() {
        use orderflow_domain::{Address, EventBody, OrderPlaced};
        let retention = Retention {
            dedup_window_ms: HOUR,
            closed_order_ms: 24 * HOUR,
        };
        let (_dir, store) = store_with(retention);
        let key: EntityKey = "tmall:T1".parse().unwrap();
        let at = |hours: i64| DateTime::UNIX_EPOCH + Duration::hours(hours);
        let fact = |hours: i64, body: EventBody| {
            Event::fact(key.clone(), at(hours), Source::origin("test"), body)
        };
        let placed = fact(
            0,
            EventBody::OrderPlaced(OrderPlaced {
                buyer_id: "b".into(),
                phone: "13800138000".into(),
                address: Address {
                    province: "浙江省".into(),
                    city: "杭州市".into(),
                    district: "西湖区".into(),
                    detail: "文三路 1 号".into(),
                },
                lines: vec![],
                discount_fen: 0,
                shipping_fen: 0,
                total_fen: 1,
                payment_method: "alipay".into(),
                coupon_type: None,
                invoice: None,
            }),
        );
        let cancelled = fact(1, EventBody::OrderCancelled { reason: None });
        let mut fold = Fold::new(PLENTY, retention);
        fold.apply(&store, 0, 0, &placed, Mode::Quiet).unwrap();
        fold.apply(&store, 0, 1, &cancelled, Mode::Quiet).unwrap();
        fold.write(&store).unwrap();
        // A day of event time passes on the partition (another sku's snapshot).
        let later = Event::stock_level("S-1", "WH-HZ", 1, at(26), Source::origin("in.inventory"));
        fold.apply(&store, 0, 2, &later, Mode::Quiet).unwrap();
        fold.write(&store).unwrap();
        assert_eq!(store.load(0, &key).unwrap(), None, "evicted from the store");
        // The copy of the placement folds into a new order, as the first event of it.
        assert!(changed(
            fold.apply(&store, 0, 3, &placed, Mode::Quiet).unwrap()
        ));
        assert_eq!(fold.entity(0, &key).map(Entity::version), Some(1));
    }
}

#[cfg(test)]
mod skip_tests {
    use super::*;

    #[test]
    fn skips_are_read_from_a_list_or_a_comma_separated_string() {
        let list: LogSkips = serde_json::from_str(r#"["3@1042", "0@0"]"#).unwrap();
        let text: LogSkips = serde_json::from_str(r#"" 3@1042, 0@0 ""#).unwrap();
        assert_eq!(list, text);
        assert!(list.contains(3, 1042) && list.contains(0, 0) && !list.contains(3, 1041));
        assert_eq!(serde_json::to_string(&list).unwrap(), r#"["0@0","3@1042"]"#);
        for bad in [r#""3""#, r#""3@x""#, r#"["-1@4"]"#] {
            let error = serde_json::from_str::<LogSkips>(bad)
                .unwrap_err()
                .to_string();
            assert!(error.contains("partition@offset"), "{bad}: {error}");
        }
    }
}
