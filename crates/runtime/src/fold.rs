//! Folding log records into the store: the one code path the live state consumer and the
//! replay tool share, which is why a replay yields the live state byte for byte.

use std::collections::BTreeMap;

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

/// A batch of folds over a store: reads through to the store, keeps changes in memory until
/// [`Fold::write`] applies them atomically with the checkpoints.
pub struct Fold<'s, S: StateStore> {
    store: &'s S,
    batch: Batch,
}

impl<'s, S: StateStore> Fold<'s, S> {
    pub fn new(store: &'s S) -> Fold<'s, S> {
        Fold {
            store,
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
            None => self
                .store
                .load(partition, &event.key)?
                .unwrap_or_else(|| Entity::empty(&event.key)),
        };
        let applied = match entity.apply(event) {
            Some(effects) => Applied::Changed(effects),
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

    pub fn write(self) -> Result<(), StoreError> {
        if !self.batch.is_empty() {
            self.store.write(&self.batch)?;
        }
        Ok(())
    }
}

/// Per partition, the next offset the local store expects.
pub type Checkpoints = BTreeMap<i32, i64>;
