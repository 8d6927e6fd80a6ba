//! Folding log records into the store: the one code path the live state consumer and the
//! replay tool share, which is why a replay yields the live state byte for byte.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

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
/// when the caller chooses: by [`Fold::write`] on its own thread (the replay, when
/// [`Fold::full`]), or sealed ([`Fold::seal`]) and written on another thread while the fold
/// goes on, landing back in order ([`Fold::landed`]; the state consumer, every few hundred
/// milliseconds, once the outputs of what it sealed are acknowledged). Until a seal lands, the
/// fold reads its entities from the seal. Written entities stay in a cache of recently used
/// ones, bounded in bytes, so a fold reads the store only for an entity it hasn't seen
/// lately. The cache always equals what the store holds; what was folded and not yet written
/// is lost with the process, and the store's older checkpoint is where folding resumes.
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
    /// How many seals were made: a cached entity is stamped with the seal that put it there,
    /// which orders entities of different partitions by how recently they were used.
    writes: u64,
    /// The stamps of the seals not landed yet, oldest first.
    sealed: VecDeque<u64>,
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
    /// Folded, not sealed yet.
    batch: Batch,
    /// Sealed for a write that has not landed yet, oldest first, with the seal's stamp: what
    /// they hold is read from here until it lands.
    sealed: VecDeque<(u64, Arc<Batch>)>,
}

impl Shard {
    fn new() -> Shard {
        Shard {
            cache: LruCache::unbounded(),
            cached_bytes: 0,
            watermark: None,
            batch: Batch::default(),
            sealed: VecDeque::new(),
        }
    }

    /// The sealed batches, newest first.
    fn sealed_newest_first(&self) -> impl Iterator<Item = &Batch> {
        self.sealed.iter().rev().map(|(_, batch)| batch.as_ref())
    }

    /// Whether `key` was folded again after the seal that is landing (the oldest one).
    fn refolded(&self, slot: &(i32, EntityKey)) -> bool {
        self.batch.entities.contains_key(slot)
            || self
                .sealed
                .iter()
                .any(|(_, batch)| batch.entities.contains_key(slot))
    }

    /// The oldest seal landed, as `stamp` with these encoded `sizes`: caches what it wrote,
    /// unless folded again since (the newer state is read from where it waits instead).
    fn landed(&mut self, stamp: u64, sizes: Vec<usize>) -> Result<(), StoreError> {
        let Some((sealed, batch)) = self.sealed.pop_front() else {
            return Err(StoreError::Corrupt(format!(
                "write {stamp} landed, none was sealed"
            )));
        };
        if sealed != stamp {
            return Err(StoreError::Corrupt(format!(
                "write {stamp} landed before write {sealed}"
            )));
        }
        // Still shared only if a writer kept it: then it is read back from the store instead.
        let Some(batch) = Arc::into_inner(batch) else {
            return Ok(());
        };
        for ((slot, entity), size) in batch.entities.into_iter().zip(sizes) {
            if self.refolded(&slot) {
                continue;
            }
            let weight = size + weight_besides_encoding(&entity);
            self.cached_bytes += weight;
            if let Some((_, (_, replaced, _))) = self.cache.push(slot.1, (entity, weight, stamp)) {
                self.cached_bytes -= replaced;
            }
        }
        Ok(())
    }
}

/// What [`Fold::seal`] took out of the fold to be written: per partition, one batch (its
/// entities with its checkpoint), stamped in the order sealed. It may be written on another
/// thread ([`Sealed::write`]) while the fold goes on; the fold reads what it holds until
/// [`Fold::landed`] hears it was written. Seals must be written, and land, in the order they
/// were sealed.
pub struct Sealed {
    stamp: u64,
    batches: Vec<(i32, Arc<Batch>)>,
}

/// A [`Sealed`] written: its stamp and, per partition, the encoded size of each entity.
pub struct Written {
    stamp: u64,
    sizes: Vec<(i32, Vec<usize>)>,
}

impl Sealed {
    /// Writes each partition's batch atomically, one after the other: sled applies one batch
    /// at a time, whatever the tree (a process-wide lock), so writing partitions in parallel
    /// only made threads wait for each other.
    pub fn write<S: StateStore>(self, store: &S) -> Result<Written, StoreError> {
        let sizes = self
            .batches
            .iter()
            .map(|(partition, batch)| store.write(batch).map(|sizes| (*partition, sizes)))
            .collect::<Result<_, _>>()?;
        Ok(Written {
            stamp: self.stamp,
            sizes,
        })
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
            sealed: VecDeque::new(),
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

    /// An entity folded since the last seal.
    pub fn entity(&self, partition: i32, key: &EntityKey) -> Option<&Entity> {
        self.shards
            .get(&partition)?
            .batch
            .entities
            .get(&(partition, key.clone()))
    }

    /// How many entities were folded and not written yet (sealed or not).
    pub fn unwritten(&self) -> usize {
        self.shards
            .values()
            .map(|shard| {
                shard.batch.entities.len()
                    + shard
                        .sealed
                        .iter()
                        .map(|(_, batch)| batch.entities.len())
                        .sum::<usize>()
            })
            .sum()
    }

    /// Whether the entities folded and not written yet take about a quarter of the cache's
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

    /// Takes what was folded since the last seal out to be written ([`Sealed`]); `None` if
    /// nothing was. Until it lands ([`Fold::landed`]), the fold reads it where it waits.
    pub fn seal(&mut self) -> Option<Sealed> {
        let stamp = self.writes + 1;
        let mut batches = Vec::new();
        for (partition, shard) in &mut self.shards {
            if shard.batch.is_empty() {
                continue;
            }
            let batch = Arc::new(std::mem::take(&mut shard.batch));
            shard.sealed.push_back((stamp, Arc::clone(&batch)));
            batches.push((*partition, batch));
        }
        if batches.is_empty() {
            return None;
        }
        self.writes = stamp;
        self.sealed.push_back(stamp);
        Some(Sealed { stamp, batches })
    }

    /// Seals not landed yet.
    pub fn sealed(&self) -> usize {
        self.sealed.len()
    }

    /// A seal was written: what it wrote joins the cache (past its budget, the entities least
    /// recently written leave it).
    pub fn landed(&mut self, written: Written) -> Result<(), StoreError> {
        if self.sealed.pop_front() != Some(written.stamp) {
            return Err(StoreError::Corrupt(format!(
                "write {} landed out of the order sealed",
                written.stamp
            )));
        }
        for (partition, sizes) in written.sizes {
            let shard = self.shards.entry(partition).or_insert_with(Shard::new);
            shard.landed(written.stamp, sizes)?;
        }
        self.evict();
        Ok(())
    }

    /// Writes what was folded and not written yet to the store, one atomic write per
    /// partition (its entities with its checkpoint), on this thread;
    /// then keeps those entities in the cache. Every earlier seal must have landed.
    pub fn write<S: StateStore>(&mut self, store: &S) -> Result<(), StoreError> {
        if self.sealed() > 0 {
            return Err(StoreError::Corrupt(
                "a write was asked for while a sealed one had not landed".into(),
            ));
        }
        match self.seal() {
            Some(sealed) => self.landed(sealed.write(store)?),
            None => Ok(()),
        }
    }

    /// Evicts the least recently written entities while the cache is over its budget.
    fn evict(&mut self) {
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
    }

    /// The next offset of `partition` to fold, as far as this fold knows (written or not);
    /// `None` if it folded nothing of it since it began (the store knows).
    pub fn checkpoint(&self, partition: i32) -> Option<i64> {
        let shard = self.shards.get(&partition)?;
        std::iter::once(&shard.batch)
            .chain(shard.sealed_newest_first())
            .find_map(|batch| batch.checkpoints.get(&partition).copied())
    }

    /// An entity as folded so far, written or not: from memory, else from `store`.
    pub fn load<S: StateStore>(
        &self,
        store: &S,
        partition: i32,
        key: &EntityKey,
    ) -> Result<Option<Entity>, StoreError> {
        let Some(shard) = self.shards.get(&partition) else {
            return store.load(partition, key);
        };
        let slot = (partition, key.clone());
        if let Some(entity) = shard.batch.entities.get(&slot) {
            return Ok(Some(entity.clone()));
        }
        if let Some((entity, _, _)) = shard.cache.peek(key) {
            return Ok(Some(entity.clone()));
        }
        match shard
            .sealed_newest_first()
            .find_map(|batch| batch.entities.get(&slot))
        {
            Some(entity) => Ok(Some(entity.clone())),
            None => store.load(partition, key),
        }
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
            sealed,
            ..
        } = &mut *self.shard;
        // Folded in place: an entity is large, and moving it out of the batch and back moved
        // it (and its neighbours in the tree) twice per event.
        let entity = match batch.entities.entry((partition, event.key.clone())) {
            Entry::Occupied(folded) => folded.into_mut(),
            Entry::Vacant(slot) => {
                let entity =
                    match cache.pop(&event.key) {
                        Some((entity, weight, _)) => {
                            *cached_bytes -= weight;
                            entity
                        }
                        None => match sealed.iter().rev().find_map(|(_, batch)| {
                            batch.entities.get(&(partition, event.key.clone()))
                        }) {
                            Some(entity) => entity.clone(),
                            None => store
                                .load(partition, &event.key)?
                                .unwrap_or_else(|| Entity::empty(&event.key)),
                        },
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
            let slot = id_slot();
            let folded = batch.applied.get(&slot).copied().or_else(|| {
                sealed
                    .iter()
                    .rev()
                    .find_map(|(_, batch)| batch.applied.get(&slot).copied())
            });
            let seen = match folded {
                Some(at) => Some(at),
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

    /// An entity of this partition folded since the last seal.
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
    fn a_seal_is_read_from_memory_until_its_write_lands_and_a_write_out_of_order_is_refused() {
        let (_dir, store) = store();
        let key = EntityKey::Stock("S-1".into());
        let mut fold = Fold::new(PLENTY, Retention::default());
        fold.apply(&store, 0, 0, &level("S-1", 1, 5), Mode::Quiet)
            .unwrap();
        let _first = fold.seal().unwrap(); // never written here
        fold.apply(&store, 0, 1, &level("S-1", 2, 4), Mode::Quiet)
            .unwrap();
        let second = fold.seal().unwrap();
        assert!(fold.seal().is_none(), "nothing folded since");
        assert_eq!(fold.sealed(), 2);

        // Nothing written yet: the store knows nothing, the fold knows both.
        assert_eq!(store.load(0, &key).unwrap(), None);
        assert_eq!(store.checkpoint(0).unwrap(), None);
        assert_eq!(fold.checkpoint(0), Some(2));
        let Some(Entity::Stock(stock)) = fold.load(&store, 0, &key).unwrap() else {
            panic!("the sealed sku is read from memory");
        };
        assert_eq!(stock.warehouses["WH-HZ"].on_hand, 4);
        assert!(
            !changed(
                fold.apply(&store, 0, 2, &level("S-1", 1, 5), Mode::Quiet)
                    .unwrap()
            ),
            "an id of a seal not written yet is known"
        );
        assert!(
            fold.write(&store).is_err(),
            "a write may not overtake the seals before it"
        );

        let second = second.write(&store).unwrap();
        assert!(
            fold.landed(second).is_err(),
            "a seal may not land before an older one"
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
    fn what_is_folded_depends_on_the_log_only_not_on_caching_writing_behind_or_pruning() {
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
        // Sealed every `seal_every` events; a seal lands once `lag` newer ones were made, as
        // when the store writes behind the fold.
        let run = |cache_bytes: usize, seal_every: usize, lag: usize| {
            let (dir, store) = store_with(retention);
            let mut fold = Fold::new(cache_bytes, retention);
            let mut sealed = VecDeque::new();
            let mut answers = Vec::new();
            for (offset, event) in log.iter().enumerate() {
                answers.push(changed(
                    fold.apply(&store, 0, offset as i64, event, Mode::Quiet)
                        .unwrap(),
                ));
                if (offset + 1) % seal_every == 0 {
                    sealed.extend(fold.seal());
                    while sealed.len() > lag {
                        let written = sealed.pop_front().unwrap().write(&store).unwrap();
                        fold.landed(written).unwrap();
                    }
                }
            }
            for seal in sealed {
                fold.landed(seal.write(&store).unwrap()).unwrap();
            }
            fold.write(&store).unwrap();
            (dir, store.digest(0).unwrap(), answers)
        };
        let (_a, big, big_answers) = run(PLENTY, log.len(), 0);
        let (_b, tiny, tiny_answers) = run(1, 7, 0);
        let (_c, behind, behind_answers) = run(1, 5, 3);
        let (_d, cached_behind, cached_behind_answers) = run(PLENTY, 3, 2);
        assert_eq!(big, tiny);
        assert_eq!(big, behind);
        assert_eq!(big, cached_behind);
        assert_eq!(big_answers, tiny_answers);
        assert_eq!(big_answers, behind_answers);
        assert_eq!(big_answers, cached_behind_answers);
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
