//! Folding log records into the store: the one code path the live state consumer and the
//! replay tool share, which is why a replay yields the live state byte for byte.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;

use lru::LruCache;

use orderflow_domain::{Effect, Entity, EntityKey, Event, LOG_SCHEMA_VERSION};
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
    /// Folded in; what it produced (exceptions, messages, notifications, routing).
    Changed(Vec<Effect>),
}

/// Entities kept in memory between batches, exactly as the store holds them: [`Fold::write`]
/// puts an entity back only once the store has it, and a fold that fails drops what it took.
/// Without it every batch would read and decode, from the store, each entity it touches.
pub struct EntityCache {
    entries: LruCache<(i32, EntityKey), Entity>,
}

impl EntityCache {
    /// Keeps at most `capacity` entities (at least one), the least recently used going first.
    pub fn new(capacity: usize) -> EntityCache {
        EntityCache {
            entries: LruCache::new(NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN)),
        }
    }
}

/// A batch of folds over a store: reads through the cache to the store, keeps changes in
/// memory until [`Fold::write`] applies them atomically with the checkpoints.
pub struct Fold<'s, S: StateStore> {
    store: &'s S,
    cache: &'s mut EntityCache,
    batch: Batch,
}

impl<'s, S: StateStore> Fold<'s, S> {
    pub fn new(store: &'s S, cache: &'s mut EntityCache) -> Fold<'s, S> {
        Fold {
            store,
            cache,
            batch: Batch::default(),
        }
    }

    /// Folds `event`, read at `offset` of `partition`.
    pub fn apply(
        &mut self,
        partition: i32,
        offset: i64,
        event: &Event,
    ) -> Result<Applied, StoreError> {
        self.batch.checkpoints.insert(partition, offset + 1);
        let slot = (partition, event.key.clone());
        let mut entity = match self.batch.entities.remove(&slot) {
            Some(entity) => entity,
            None => match self.cache.entries.pop(&slot) {
                Some(entity) => entity,
                None => self
                    .store
                    .load(partition, &event.key)?
                    .unwrap_or_else(|| Entity::empty(&event.key)),
            },
        };
        let applied = match entity.apply(event) {
            Some(effects) => {
                if entity.applied_kept_apart().is_some() {
                    self.batch
                        .applied
                        .push((slot.clone(), event.event_id.clone()));
                }
                Applied::Changed(effects)
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

    pub fn entity(&self, partition: i32, key: &EntityKey) -> Option<&Entity> {
        self.batch.entities.get(&(partition, key.clone()))
    }

    /// The entities this batch touched.
    pub fn touched(&self) -> impl Iterator<Item = (&(i32, EntityKey), &Entity)> {
        self.batch.entities.iter()
    }

    /// Writes the batch to the store, then keeps its entities in the cache; the fold goes on
    /// with an empty batch.
    pub fn write(&mut self) -> Result<(), StoreError> {
        let batch = std::mem::take(&mut self.batch);
        if !batch.is_empty() {
            self.store.write(&batch)?;
        }
        for (slot, entity) in batch.entities {
            self.cache.entries.put(slot, entity);
        }
        Ok(())
    }
}

/// Per partition, the next offset the local store expects.
pub type Checkpoints = BTreeMap<i32, i64>;
