//! The sled implementation of [`StateStore`].
//!
//! Layout, one tree:
//! - `e/{partition:08x}/{entity key}` → entity JSON, without the ids of the events it folded;
//! - `a/{partition:08x}/{key length:08x}{entity key}{event id}` → empty, one per event id a
//!   sku or buyer folded ([`Entity::applied_kept_apart`]): a batch adds the ids it folded
//!   instead of rewriting an entity's whole history, which grows with every order;
//! - `c/{partition:08x}` → next offset (big-endian i64);
//! - `t/{partition:08x}/{entity key}` → empty for every entity a timer may still fire on (the
//!   schedule, derived from the entities and written in the same batch).
//!
//! Fixed-width hex partitions keep a partition's entities contiguous and in key order, which
//! is what the digest hashes; the key length in `a/` keys keeps one entity's ids apart from
//! those of a key that merely starts with it.

use std::collections::BTreeMap;
use std::path::Path;

use orderflow_domain::{Entity, EntityKey, EventId};

use crate::{hash_pairs, Batch, PartitionDigest, StateStore, StoreError};

pub struct SledStore {
    db: sled::Db,
    path: String,
}

const LOG_KEY: &[u8] = b"m/log";
const LAYOUT_KEY: &[u8] = b"m/layout";
/// 2: the ids a sku or buyer folded moved from its JSON to `a/` keys. 3: an order folds the
/// changes each channel must hear about and its sync attempts (the outbound sync), so a store
/// of layout 2 would differ from a replay. A store without the key is layout 1 if it holds any
/// state.
const LAYOUT: u32 = 3;

fn entity_prefix(partition: i32) -> Vec<u8> {
    format!("e/{:08x}/", partition as u32).into_bytes()
}

fn entity_key(partition: i32, key: &EntityKey) -> Vec<u8> {
    let mut bytes = entity_prefix(partition);
    bytes.extend_from_slice(key.to_string().as_bytes());
    bytes
}

fn timer_prefix(partition: i32) -> Vec<u8> {
    format!("t/{:08x}/", partition as u32).into_bytes()
}

fn timer_key(partition: i32, key: &EntityKey) -> Vec<u8> {
    let mut bytes = timer_prefix(partition);
    bytes.extend_from_slice(key.to_string().as_bytes());
    bytes
}

fn applied_prefix(partition: i32) -> Vec<u8> {
    format!("a/{:08x}/", partition as u32).into_bytes()
}

fn applied_entity_prefix(partition: i32, key: &EntityKey) -> Vec<u8> {
    let key = key.to_string();
    let mut bytes = applied_prefix(partition);
    bytes.extend_from_slice(format!("{:08x}{key}", key.len()).as_bytes());
    bytes
}

fn checkpoint_key(partition: i32) -> Vec<u8> {
    format!("c/{:08x}", partition as u32).into_bytes()
}

fn decode_offset(bytes: &[u8]) -> Result<i64, StoreError> {
    let raw: [u8; 8] = bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("checkpoint of {} bytes", bytes.len())))?;
    Ok(i64::from_be_bytes(raw))
}

fn decode_entity(bytes: &[u8]) -> Result<Entity, StoreError> {
    serde_json::from_slice(bytes).map_err(|error| StoreError::Corrupt(error.to_string()))
}

impl SledStore {
    /// Every entity of a partition, as written (for a scan such as counting open exceptions).
    pub fn entities(
        &self,
        partition: i32,
    ) -> impl Iterator<Item = Result<Entity, StoreError>> + '_ {
        self.db
            .scan_prefix(entity_prefix(partition))
            .map(|item| decode_entity(&item?.1))
    }

    /// Bytes the store takes on disk (0 if sled can't tell).
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }

    pub fn open(path: &Path) -> Result<SledStore, StoreError> {
        let db = crate::open_db(path)?;
        Ok(SledStore {
            db,
            path: path.display().to_string(),
        })
    }
}

impl StateStore for SledStore {
    fn bind(&self, log_topic: &str) -> Result<(), StoreError> {
        let layout = match self.db.get(LAYOUT_KEY)? {
            Some(bytes) => bytes
                .as_ref()
                .try_into()
                .map(u32::from_be_bytes)
                .map_err(|_| StoreError::Corrupt("unreadable layout version".into()))?,
            None if self.db.scan_prefix(b"c/").next().is_some() => 1,
            None => {
                self.db.insert(LAYOUT_KEY, &LAYOUT.to_be_bytes())?;
                LAYOUT
            }
        };
        if layout != LAYOUT {
            return Err(StoreError::OldLayout {
                path: self.path.clone(),
                expected: LAYOUT,
                found: layout,
            });
        }
        match self.db.compare_and_swap(
            LOG_KEY,
            None as Option<&[u8]>,
            Some(log_topic.as_bytes()),
        )? {
            Ok(()) => Ok(()),
            Err(existing) => match existing.current {
                Some(found) if found.as_ref() == log_topic.as_bytes() => Ok(()),
                found => Err(StoreError::OtherLog {
                    path: self.path.clone(),
                    expected: log_topic.to_string(),
                    found: found
                        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                        .unwrap_or_default(),
                }),
            },
        }
    }

    fn load(&self, partition: i32, key: &EntityKey) -> Result<Option<Entity>, StoreError> {
        let Some(bytes) = self.db.get(entity_key(partition, key))? else {
            return Ok(None);
        };
        let mut entity = decode_entity(&bytes)?;
        let Some(applied) = entity.applied_kept_apart() else {
            return Ok(Some(entity));
        };
        let prefix = applied_entity_prefix(partition, key);
        for item in self.db.scan_prefix(&prefix) {
            let (stored, _) = item?;
            let id = std::str::from_utf8(&stored[prefix.len()..])
                .map_err(|_| StoreError::Corrupt("unreadable event id".into()))?;
            applied.insert(EventId::from(id.to_string()));
        }
        Ok(Some(entity))
    }

    fn checkpoint(&self, partition: i32) -> Result<Option<i64>, StoreError> {
        self.db
            .get(checkpoint_key(partition))?
            .map(|bytes| decode_offset(&bytes))
            .transpose()
    }

    fn checkpoints(&self) -> Result<BTreeMap<i32, i64>, StoreError> {
        let mut found = BTreeMap::new();
        for item in self.db.scan_prefix(b"c/") {
            let (key, value) = item?;
            let partition = std::str::from_utf8(&key[2..])
                .ok()
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .ok_or_else(|| StoreError::Corrupt("unreadable checkpoint key".into()))?;
            found.insert(partition as i32, decode_offset(&value)?);
        }
        Ok(found)
    }

    fn write(&self, batch: &Batch) -> Result<(), StoreError> {
        let mut writes = sled::Batch::default();
        for ((partition, key), entity) in &batch.entities {
            let bytes = serde_json::to_vec(entity)
                .map_err(|error| StoreError::Corrupt(error.to_string()))?;
            writes.insert(entity_key(*partition, key), bytes);
            // Only a change of the schedule is written: most batches don't change it.
            let timer = timer_key(*partition, key);
            match (entity.has_timers(), self.db.contains_key(&timer)?) {
                (true, false) => writes.insert(timer, &[]),
                (false, true) => writes.remove(timer),
                _ => {}
            }
        }
        for ((partition, key), id) in &batch.applied {
            let mut stored = applied_entity_prefix(*partition, key);
            stored.extend_from_slice(id.as_str().as_bytes());
            writes.insert(stored, &[]);
        }
        for (partition, offset) in &batch.checkpoints {
            writes.insert(checkpoint_key(*partition), &offset.to_be_bytes());
        }
        self.db.apply_batch(writes)?;
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    fn digest(&self, partition: i32) -> Result<PartitionDigest, StoreError> {
        let scan = |prefix: Vec<u8>| {
            self.db
                .scan_prefix(&prefix)
                .map(|item| {
                    item.map(|(key, value)| {
                        (key.subslice(prefix.len(), key.len() - prefix.len()), value)
                    })
                })
                .collect::<Result<Vec<_>, sled::Error>>()
        };
        let entities = scan(entity_prefix(partition))?;
        let applied = scan(applied_prefix(partition))?;
        // The entities, then the ids they folded: both are state a replay must rebuild. An id's
        // pair has an empty value and an entity's never does, so the two can't be confused.
        let sha256 = hash_pairs(
            entities
                .iter()
                .chain(applied.iter())
                .map(|(key, value)| (key.as_ref(), value.as_ref())),
        );
        Ok(PartitionDigest {
            partition,
            checkpoint: self.checkpoint(partition)?.unwrap_or(0),
            entities: entities.len() as u64,
            sha256,
        })
    }

    fn scheduled(&self, partition: i32) -> Result<Vec<EntityKey>, StoreError> {
        let prefix = timer_prefix(partition);
        self.db
            .scan_prefix(&prefix)
            .map(|item| {
                let (key, _) = item?;
                std::str::from_utf8(&key[prefix.len()..])
                    .ok()
                    .and_then(|text| text.parse().ok())
                    .ok_or_else(|| StoreError::Corrupt("unreadable timer key".into()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract_tests;

    fn store() -> (tempfile::TempDir, SledStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        (dir, store)
    }

    #[test]
    fn loads_what_was_written() {
        contract_tests::loads_what_was_written(&store().1);
    }

    #[test]
    fn schedules_entities_with_timers() {
        contract_tests::schedules_entities_with_timers(&store().1);
    }

    #[test]
    fn keeps_the_ids_a_sku_folded() {
        contract_tests::keeps_the_ids_a_sku_folded(&store().1);
    }

    #[test]
    fn later_writes_replace_earlier_ones() {
        contract_tests::later_writes_replace_earlier_ones(&store().1);
    }

    #[test]
    fn digest_depends_on_content_not_write_order() {
        contract_tests::digest_depends_on_content_not_write_order(&store().1, &store().1);
    }

    #[test]
    fn state_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let digest = {
            let store = SledStore::open(dir.path()).unwrap();
            contract_tests::loads_what_was_written(&store);
            store.flush().unwrap();
            store.digest(1).unwrap()
        };
        let reopened = SledStore::open(dir.path()).unwrap();
        assert_eq!(reopened.digest(1).unwrap(), digest);
    }

    #[test]
    fn a_store_serves_one_log_only() {
        let (_dir, store) = store();
        store.bind("a.order-events").unwrap();
        store.bind("a.order-events").unwrap();
        let error = store.bind("b.order-events").unwrap_err().to_string();
        assert!(
            error.contains("holds the state of a.order-events, not of b.order-events"),
            "{error}"
        );
    }

    #[test]
    fn a_store_of_an_older_layout_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            // Layout 1 had no version key: state without it is from then.
            let db = crate::open_db(dir.path()).unwrap();
            db.insert(checkpoint_key(0), &7i64.to_be_bytes()).unwrap();
            db.flush().unwrap();
        }
        let store = SledStore::open(dir.path()).unwrap();
        let error = store.bind("a.order-events").unwrap_err().to_string();
        assert!(
            error.contains(&format!(
                "written by an older orderflow (layout 1, this one writes {LAYOUT}); delete it"
            )),
            "{error}"
        );
    }

    #[test]
    fn a_second_opener_gets_a_clear_error() {
        let (dir, _store) = store();
        let error = SledStore::open(dir.path()).err().unwrap();
        assert!(error.to_string().contains("could not be opened"), "{error}");
    }
}
