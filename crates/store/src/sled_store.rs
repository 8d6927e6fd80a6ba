//! The sled implementation of [`StateStore`].
//!
//! Layout, one tree: `e/{partition:08x}/{entity key}` → entity JSON,
//! `c/{partition:08x}` → next offset (big-endian i64), and `t/{partition:08x}/{entity key}`
//! → empty for every entity a timer may still fire on (the schedule, derived from the
//! entities and written in the same batch). Fixed-width hex partitions keep a partition's
//! entities contiguous and in key order, which is what the digest hashes.

use std::collections::BTreeMap;
use std::path::Path;

use orderflow_domain::{Entity, EntityKey};

use crate::{hash_pairs, Batch, PartitionDigest, StateStore, StoreError};

pub struct SledStore {
    db: sled::Db,
    path: String,
}

const LOG_KEY: &[u8] = b"m/log";

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
        self.db
            .get(entity_key(partition, key))?
            .map(|bytes| decode_entity(&bytes))
            .transpose()
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
            if entity.has_timers() {
                writes.insert(timer_key(*partition, key), &[]);
            } else {
                writes.remove(timer_key(*partition, key));
            }
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
        let prefix = entity_prefix(partition);
        let pairs = self
            .db
            .scan_prefix(&prefix)
            .collect::<Result<Vec<_>, sled::Error>>()?;
        let sha256 = hash_pairs(
            pairs
                .iter()
                .map(|(key, value)| (&key[prefix.len()..], value.as_ref())),
        );
        Ok(PartitionDigest {
            partition,
            checkpoint: self.checkpoint(partition)?.unwrap_or(0),
            entities: pairs.len() as u64,
            sha256,
        })
    }

    fn entities(&self, partition: i32) -> Result<Vec<Entity>, StoreError> {
        self.db
            .scan_prefix(entity_prefix(partition))
            .map(|item| decode_entity(&item?.1))
            .collect()
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
    fn a_second_opener_gets_a_clear_error() {
        let (dir, _store) = store();
        let error = SledStore::open(dir.path()).err().unwrap();
        assert!(error.to_string().contains("could not be opened"), "{error}");
    }
}
