//! Folding log records into the store: the one code path the live state consumer and the
//! replay tool share, which is why a replay yields the live state byte for byte.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;

use lru::LruCache;

use orderflow_domain::{step, Entity, EntityKey, Event, Mode, Step, LOG_SCHEMA_VERSION};
use orderflow_store::{Batch, StateStore, StoreError};

/// Reads one record of the order event log.
pub fn decode_log_record(payload: &[u8]) -> Result<Event, String> {
    let event: Event = serde_json::from_slice(payload)
        .map_err(|error| format!("order event is not valid: {error}"))?;
    // Version 1 is the only layout so far; a later one upcasts older records here.
    if event.schema_version != LOG_SCHEMA_VERSION {
        return Err(format!(
            "order event schema_version {} is not supported, expected {LOG_SCHEMA_VERSION}",
            event.schema_version
        ));
    }
    Ok(event)
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
/// Entities are folded in memory and written to the store, with the partitions' checkpoints,
/// in one atomic batch by [`Fold::write`], which the caller runs when it chooses (the state
/// consumer every few hundred milliseconds, the replay when the unwritten entities fill the
/// cache). Written entities stay in a cache of recently used ones, so a fold reads the store
/// only for an entity it hasn't seen lately. The cache always equals what the store holds;
/// what was folded and not yet written is lost with the process, and the store's older
/// checkpoint is where folding resumes.
pub struct Fold {
    /// Written, as the store holds them, least recently used evicted first.
    cache: LruCache<(i32, EntityKey), Entity>,
    /// Folded, not written yet.
    batch: Batch,
}

impl Fold {
    /// Keeps at most `cache_entities` written entities in memory (at least one).
    pub fn new(cache_entities: usize) -> Fold {
        Fold {
            cache: LruCache::new(NonZeroUsize::new(cache_entities).unwrap_or(NonZeroUsize::MIN)),
            batch: Batch::default(),
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
        self.batch.checkpoints.insert(partition, offset + 1);
        let slot = (partition, event.key.clone());
        let mut entity = match self.batch.entities.remove(&slot) {
            Some(entity) => entity,
            None => match self.cache.pop(&slot) {
                Some(entity) => entity,
                None => store
                    .load(partition, &event.key)?
                    .unwrap_or_else(|| Entity::empty(&event.key)),
            },
        };
        let applied = match step(&mut entity, event, mode) {
            Some(step) => {
                if entity.applied_kept_apart().is_some() {
                    self.batch
                        .applied
                        .push((slot.clone(), event.event_id.clone()));
                }
                Applied::Changed(step)
            }
            None => Applied::Duplicate,
        };
        self.batch.entities.insert(slot, entity);
        Ok(applied)
    }

    /// Moves the checkpoint past a record that holds no event (a dead letter).
    pub fn skip(&mut self, partition: i32, offset: i64) {
        self.batch.checkpoints.insert(partition, offset + 1);
    }

    /// An entity folded since the last write.
    pub fn entity(&self, partition: i32, key: &EntityKey) -> Option<&Entity> {
        self.batch.entities.get(&(partition, key.clone()))
    }

    /// How many entities were folded since the last write.
    pub fn unwritten(&self) -> usize {
        self.batch.entities.len()
    }

    /// Writes what was folded since the last write to the store in one atomic batch, then
    /// keeps those entities in the cache.
    pub fn write(&mut self, store: &impl StateStore) -> Result<(), StoreError> {
        let batch = std::mem::take(&mut self.batch);
        if batch.is_empty() {
            return Ok(());
        }
        store.write(&batch)?;
        for (slot, entity) in batch.entities {
            self.cache.put(slot, entity);
        }
        Ok(())
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

    /// A level snapshot of `sku` taken `minutes` after the epoch.
    fn level(sku: &str, minutes: i64, on_hand: u64) -> Event {
        let at = DateTime::UNIX_EPOCH + Duration::minutes(minutes);
        Event::stock_level(sku, "WH-HZ", on_hand, at, Source::origin("in.inventory"))
    }

    fn changed(applied: Applied) -> bool {
        matches!(applied, Applied::Changed(_))
    }

    #[test]
    fn a_sku_knows_its_events_after_a_restart_and_forgets_what_was_never_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let (first, second, third) = (level("S-1", 1, 5), level("S-1", 2, 4), level("S-1", 3, 3));

        let mut fold = Fold::new(10);
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

        // A new process reads the sku's ids back from the store.
        let mut restarted = Fold::new(10);
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
    fn an_entity_evicted_from_the_cache_is_read_back_from_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let mut fold = Fold::new(1);
        let (a, b) = (level("S-A", 1, 5), level("S-B", 1, 5));
        fold.apply(&store, 0, 0, &a, Mode::Quiet).unwrap();
        fold.apply(&store, 0, 1, &b, Mode::Quiet).unwrap();
        fold.write(&store).unwrap();
        // The cache holds one entity: one of the two came back from sled, ids and all.
        assert!(!changed(fold.apply(&store, 0, 2, &a, Mode::Quiet).unwrap()));
        assert!(!changed(fold.apply(&store, 0, 2, &b, Mode::Quiet).unwrap()));
        assert_eq!(
            fold.entity(0, &EntityKey::Stock("S-A".into())),
            store
                .load(0, &EntityKey::Stock("S-A".into()))
                .unwrap()
                .as_ref()
        );
    }
}
