//! The sled implementation of [`StateStore`].
//!
//! Layout 5, one tree:
//! - `e/{partition:08x}/{entity key}` → the entity ([`encode_entity`]), without a sku's or
//!   buyer's event ids;
//! - `a/{partition:08x}/{key length:08x}{entity key}{event id}` → the watermark it was folded
//!   at ([`time_key`]), one per event id a sku or buyer folded
//!   ([`Entity::applied_kept_apart`]): a batch adds the ids it folded, and a fold asks for one
//!   id instead of reading an entity's whole history;
//! - `x/{partition:08x}/{time}{key length:08x}{entity key}{event id}` → empty: the `a/` ids by
//!   the time they were folded at, oldest first, which is how pruning finds the expired ones;
//! - `z/{partition:08x}/{time}{entity key}` → empty: orders by the time they closed at
//!   ([`Entity::closed_since`]), which is how eviction finds the expired ones (an entry whose
//!   order changed since is stale and dropped when reached);
//! - `w/{partition:08x}` → the partition's watermark ([`time_key`]);
//! - `c/{partition:08x}` → next offset (big-endian i64);
//! - `t/{partition:08x}/{entity key}` → empty for every entity a timer may still fire on (the
//!   schedule, derived from the entities and written in the same batch);
//! - `m/log`, `m/layout`, `m/retention`: what the store folds, how, and keeps how long.
//!
//! Fixed-width hex partitions keep a partition's entries contiguous and in key order, which
//! is what the digest hashes; the key length in `a/` and `x/` keys keeps one entity's ids apart
//! from those of a key that merely starts with it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use orderflow_domain::{Entity, EntityKey, EventId};

use crate::{
    hash_pairs, time_key, time_of_key, Batch, PartitionDigest, Retention, StateStore, StoreError,
    PRUNE_AT_LEAST,
};

pub struct SledStore {
    db: sled::Db,
    path: String,
}

const LOG_KEY: &[u8] = b"m/log";
const LAYOUT_KEY: &[u8] = b"m/layout";
const RETENTION_KEY: &[u8] = b"m/retention";
/// 2: the ids a sku or buyer folded moved from its JSON to `a/` keys. 3: an order folds the
/// changes each channel must hear about and its sync attempts (the outbound sync), so a store
/// of layout 2 would differ from a replay. 4: ids carry the time they were folded at and are
/// pruned past the dedup window; closed orders are evicted past their retention; watermarks.
/// 5: entities are MessagePack, not JSON ([`encode_entity`]).
/// A store without the key is layout 1 if it holds any state.
const LAYOUT: u32 = 5;

fn prefixed(tag: &str, partition: i32) -> Vec<u8> {
    format!("{tag}/{:08x}/", partition as u32).into_bytes()
}

fn entity_key(partition: i32, key: &EntityKey) -> Vec<u8> {
    let mut bytes = prefixed("e", partition);
    bytes.extend_from_slice(key.to_string().as_bytes());
    bytes
}

fn timer_key(partition: i32, key: &EntityKey) -> Vec<u8> {
    let mut bytes = prefixed("t", partition);
    bytes.extend_from_slice(key.to_string().as_bytes());
    bytes
}

/// `{key length:08x}{entity key}{event id}`: what follows the partition in `a/` and `x/` keys.
fn applied_tail(key: &EntityKey, event_id: &EventId) -> Vec<u8> {
    let key = key.to_string();
    format!("{:08x}{key}{}", key.len(), event_id.as_str()).into_bytes()
}

fn applied_key(partition: i32, tail: &[u8]) -> Vec<u8> {
    let mut bytes = prefixed("a", partition);
    bytes.extend_from_slice(tail);
    bytes
}

fn expiry_key(tag: &str, partition: i32, at: i64, tail: &[u8]) -> Vec<u8> {
    let mut bytes = prefixed(tag, partition);
    bytes.extend_from_slice(&time_key(at));
    bytes.extend_from_slice(tail);
    bytes
}

fn watermark_key(partition: i32) -> Vec<u8> {
    format!("w/{:08x}", partition as u32).into_bytes()
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

fn decode_time(bytes: &[u8]) -> Result<i64, StoreError> {
    time_of_key(bytes).ok_or_else(|| StoreError::Corrupt(format!("time of {} bytes", bytes.len())))
}

/// An entity as stored: MessagePack with field names. A self-describing format, because the
/// domain's serde shapes need one (entities and effects are internally tagged enums, a
/// placement flattens the order it records, empty fields are skipped); about half the bytes
/// of JSON and several times faster to read back (BENCHMARKS.md). Fields come in declaration
/// order and maps and sets sorted, so equal entities encode to equal bytes: the digest hashes
/// them.
fn encode_entity(entity: &Entity) -> Result<Vec<u8>, StoreError> {
    rmp_serde::to_vec_named(entity).map_err(|error| StoreError::Corrupt(error.to_string()))
}

fn decode_entity(bytes: &[u8]) -> Result<Entity, StoreError> {
    rmp_serde::from_slice(bytes).map_err(|error| StoreError::Corrupt(error.to_string()))
}

/// Orders past their retention (their `e/` key and `z/` entry), and stale `z/` entries.
type ExpiredOrders = (Vec<(Vec<u8>, sled::IVec)>, Vec<sled::IVec>);

impl SledStore {
    /// Every entity of a partition, as written (for a scan such as counting open exceptions).
    pub fn entities(
        &self,
        partition: i32,
    ) -> impl Iterator<Item = Result<Entity, StoreError>> + '_ {
        self.db
            .scan_prefix(prefixed("e", partition))
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

    /// The retention the store was bound with (the default before it was bound).
    fn retention(&self) -> Result<Retention, StoreError> {
        match self.db.get(RETENTION_KEY)? {
            Some(bytes) => Retention::from_bytes(&bytes)
                .ok_or_else(|| StoreError::Corrupt("unreadable retention".into())),
            None => Ok(Retention::default()),
        }
    }

    /// The entities of `partition` that are past their retention at `watermark` and not
    /// evicted yet, at most `limit` of them (all when `None`), with their `z/` entries; and the
    /// `z/` entries that turned stale (the order changed since).
    fn expired_orders(
        &self,
        partition: i32,
        watermark: i64,
        retention: Retention,
        limit: Option<usize>,
    ) -> Result<ExpiredOrders, StoreError> {
        let prefix = prefixed("z", partition);
        let cutoff = watermark.saturating_sub(retention.closed_order_ms);
        let end = expiry_key("z", partition, cutoff.saturating_add(1), b"");
        let (mut expired, mut stale) = (Vec::new(), Vec::new());
        for item in self.db.range(prefix.clone()..end) {
            if limit.is_some_and(|limit| expired.len() + stale.len() >= limit) {
                break;
            }
            let (index, _) = item?;
            let key = std::str::from_utf8(&index[prefix.len() + 8..])
                .ok()
                .and_then(|text| text.parse::<EntityKey>().ok())
                .ok_or_else(|| StoreError::Corrupt("unreadable eviction key".into()))?;
            let stored = entity_key(partition, &key);
            let current = self.db.get(&stored)?;
            match current {
                Some(bytes) if retention.expired(&decode_entity(&bytes)?, watermark) => {
                    expired.push((stored, index));
                }
                _ => stale.push(index),
            }
        }
        Ok((expired, stale))
    }

    /// Prunes ids past the dedup window and evicts orders past their retention, at most
    /// `budget` of each, in one batch of its own: pruning is idempotent, and what a crash
    /// leaves unpruned is read as absent and left out of the digest all the same.
    fn prune(&self, partition: i32, watermark: i64, budget: usize) -> Result<(), StoreError> {
        let retention = self.retention()?;
        let mut writes = sled::Batch::default();
        let prefix = prefixed("x", partition);
        let end = expiry_key(
            "x",
            partition,
            watermark
                .saturating_sub(retention.dedup_window_ms)
                .saturating_add(1),
            b"",
        );
        for item in self.db.range(prefix.clone()..end).take(budget) {
            let (index, _) = item?;
            let at = decode_time(&index[prefix.len()..])?;
            let applied = applied_key(partition, &index[prefix.len() + 8..]);
            // An id folded again after it expired has a newer time: that one stays.
            if self.db.get(&applied)?.as_deref() == Some(&time_key(at)[..]) {
                writes.remove(applied);
            }
            writes.remove(index);
        }
        let (expired, stale) =
            self.expired_orders(partition, watermark, retention, Some(budget))?;
        for (stored, index) in expired {
            let timer = [&b"t"[..], &stored[1..]].concat();
            writes.remove(stored);
            writes.remove(timer);
            writes.remove(index);
        }
        for index in stale {
            writes.remove(index);
        }
        self.db.apply_batch(writes)?;
        Ok(())
    }
}

impl StateStore for SledStore {
    fn bind(&self, log_topic: &str, retention: Retention) -> Result<(), StoreError> {
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
        if layout < LAYOUT {
            return Err(StoreError::OldLayout {
                path: self.path.clone(),
                expected: LAYOUT,
                found: layout,
            });
        }
        if layout > LAYOUT {
            return Err(StoreError::NewerLayout {
                path: self.path.clone(),
                expected: LAYOUT,
                found: layout,
            });
        }
        match self.db.compare_and_swap(
            RETENTION_KEY,
            None as Option<&[u8]>,
            Some(&retention.to_bytes()[..]),
        )? {
            Ok(()) => {}
            Err(existing) => {
                let stored = existing
                    .current
                    .as_deref()
                    .and_then(Retention::from_bytes)
                    .ok_or_else(|| StoreError::Corrupt("unreadable retention".into()))?;
                if stored != retention {
                    return Err(StoreError::OtherRetention {
                        path: self.path.clone(),
                        stored,
                        configured: retention,
                    });
                }
            }
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
        self.db
            .get(entity_key(partition, key))?
            .map(|bytes| decode_entity(&bytes))
            .transpose()
    }

    fn applied_at(
        &self,
        partition: i32,
        key: &EntityKey,
        event_id: &EventId,
    ) -> Result<Option<i64>, StoreError> {
        self.db
            .get(applied_key(partition, &applied_tail(key, event_id)))?
            .map(|bytes| decode_time(&bytes))
            .transpose()
    }

    fn watermark(&self, partition: i32) -> Result<Option<i64>, StoreError> {
        self.db
            .get(watermark_key(partition))?
            .map(|bytes| decode_time(&bytes))
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

    fn write(&self, batch: &Batch) -> Result<Vec<usize>, StoreError> {
        let mut writes = sled::Batch::default();
        let mut sizes = Vec::with_capacity(batch.entities.len());
        for ((partition, key), entity) in &batch.entities {
            let bytes = encode_entity(entity)?;
            sizes.push(bytes.len());
            writes.insert(entity_key(*partition, key), bytes);
            // Only a change of the schedule is written: most batches don't change it.
            let timer = timer_key(*partition, key);
            match (entity.has_timers(), self.db.contains_key(&timer)?) {
                (true, false) => writes.insert(timer, &[]),
                (false, true) => writes.remove(timer),
                _ => {}
            }
            if let Some(closed) = entity.closed_since() {
                let tail = key.to_string();
                let at = closed.timestamp_millis();
                writes.insert(expiry_key("z", *partition, at, tail.as_bytes()), &[]);
            }
        }
        for (((partition, key), event_id), at) in &batch.applied {
            let tail = applied_tail(key, event_id);
            writes.insert(applied_key(*partition, &tail), &time_key(*at));
            writes.insert(expiry_key("x", *partition, *at, &tail), &[]);
        }
        for (partition, offset) in &batch.checkpoints {
            writes.insert(checkpoint_key(*partition), &offset.to_be_bytes());
        }
        for (partition, watermark) in &batch.watermarks {
            writes.insert(watermark_key(*partition), &time_key(*watermark));
        }
        self.db.apply_batch(writes)?;
        let budget = PRUNE_AT_LEAST.max(2 * (batch.entities.len() + batch.applied.len()));
        for (partition, watermark) in &batch.watermarks {
            self.prune(*partition, *watermark, budget)?;
        }
        Ok(sizes)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    fn digest(&self, partition: i32) -> Result<PartitionDigest, StoreError> {
        let retention = self.retention()?;
        let watermark = self.watermark(partition)?;
        let evicted: BTreeSet<Vec<u8>> = match watermark {
            Some(watermark) => self
                .expired_orders(partition, watermark, retention, None)?
                .0
                .into_iter()
                .map(|(stored, _)| stored)
                .collect(),
            None => BTreeSet::new(),
        };
        let remembered = |value: &[u8]| match (watermark, time_of_key(value)) {
            (Some(watermark), Some(at)) => retention.remembers(at, watermark),
            _ => true,
        };
        let scan = |tag: &str| {
            let prefix = prefixed(tag, partition);
            self.db
                .scan_prefix(&prefix)
                .map(|item| {
                    item.map(|(key, value)| {
                        let stored = key.to_vec();
                        (
                            stored,
                            key.subslice(prefix.len(), key.len() - prefix.len()),
                            value,
                        )
                    })
                })
                .collect::<Result<Vec<_>, sled::Error>>()
        };
        let entities: Vec<_> = scan("e")?
            .into_iter()
            .filter(|(stored, _, _)| !evicted.contains(stored))
            .map(|(_, key, value)| (key, value))
            .collect();
        let applied: Vec<_> = scan("a")?
            .into_iter()
            .filter(|(_, _, value)| remembered(value))
            .map(|(_, key, value)| (key, value))
            .collect();
        let watermark = watermark.map(time_key).unwrap_or_default();
        // The entities, the ids they folded, then the watermark: all state a replay must
        // rebuild, within the retention. An entity's value is its encoding, an id's its 8-byte time.
        let sha256 = hash_pairs(
            entities
                .iter()
                .chain(applied.iter())
                .map(|(key, value)| (key.as_ref(), value.as_ref()))
                .chain(std::iter::once((&b"w"[..], &watermark[..]))),
        );
        Ok(PartitionDigest {
            partition,
            checkpoint: self.checkpoint(partition)?.unwrap_or(0),
            entities: entities.len() as u64,
            sha256,
        })
    }

    fn scheduled(&self, partition: i32) -> Result<Vec<EntityKey>, StoreError> {
        let prefix = prefixed("t", partition);
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
    fn prunes_ids_past_the_dedup_window() {
        contract_tests::prunes_ids_past_the_dedup_window(&store().1, &store().1);
    }

    #[test]
    fn evicts_closed_orders_after_their_retention() {
        contract_tests::evicts_closed_orders_after_their_retention(&store().1, &store().1);
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
        let retention = Retention::default();
        store.bind("a.order-events", retention).unwrap();
        store.bind("a.order-events", retention).unwrap();
        let error = store
            .bind("b.order-events", retention)
            .unwrap_err()
            .to_string();
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
        let error = store
            .bind("a.order-events", Retention::default())
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(&format!(
                "written by an older orderflow (layout 1, this one reads and writes layout {LAYOUT} only); delete the directory"
            )),
            "{error}"
        );
    }

    /// A store of layout 4 holds JSON entities, which this build can't read: it is refused
    /// before anything is read from it, with what to do.
    #[test]
    fn a_store_of_json_entities_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = crate::open_db(dir.path()).unwrap();
            db.insert(LAYOUT_KEY, &4u32.to_be_bytes()).unwrap();
            db.insert(LOG_KEY, b"a.order-events").unwrap();
            db.insert(checkpoint_key(0), &7i64.to_be_bytes()).unwrap();
            let key: EntityKey = "tmall:T1".parse().unwrap();
            let json = br#"{"entity":"order","order_id":"tmall:T1","version":1}"#;
            db.insert(entity_key(0, &key), &json[..]).unwrap();
            db.flush().unwrap();
        }
        let store = SledStore::open(dir.path()).unwrap();
        let error = store
            .bind("a.order-events", Retention::default())
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("written by an older orderflow (layout 4, this one reads and writes layout 5 only); delete the directory and let the consumer rebuild it from the log"),
            "{error}"
        );
    }

    #[test]
    fn a_store_of_a_newer_layout_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = crate::open_db(dir.path()).unwrap();
            db.insert(LAYOUT_KEY, &(LAYOUT + 1).to_be_bytes()).unwrap();
            db.flush().unwrap();
        }
        let store = SledStore::open(dir.path()).unwrap();
        let error = store
            .bind("a.order-events", Retention::default())
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(&format!(
                "written by a newer orderflow (layout {}, this one reads and writes layout {LAYOUT} only); run that version",
                LAYOUT + 1
            )),
            "{error}"
        );
    }

    /// Orders, skus and buyers as a simulated run leaves them (placed, paid, shipped,
    /// cancelled, refunded, returned, with exceptions, reservations and syncs) read back equal
    /// from their encoding, and equal entities encode to equal bytes.
    #[test]
    fn every_kind_of_entity_reads_back_as_written() {
        let mut kinds = std::collections::HashSet::new();
        let entities = simulated_entities();
        for mut entity in entities {
            // Kept apart from the entity's value ([`Entity::applied_kept_apart`]).
            if let Some(ids) = entity.applied_kept_apart() {
                ids.clear();
            }
            let bytes = encode_entity(&entity).unwrap();
            assert_eq!(decode_entity(&bytes).unwrap(), entity);
            assert_eq!(encode_entity(&entity.clone()).unwrap(), bytes);
            kinds.insert(std::mem::discriminant(&entity));
        }
        assert_eq!(kinds.len(), 3, "orders, skus and buyers");
    }

    /// The entities a simulated run of 300 orders folds to, in the domain's in-memory loop.
    fn simulated_entities() -> Vec<Entity> {
        let start = chrono::DateTime::parse_from_rfc3339("2026-11-11T00:00:00+08:00").unwrap();
        orderflow_sim::simulated_world(300, start)
            .entities
            .into_values()
            .collect()
    }

    #[test]
    fn a_store_keeps_the_retention_it_was_built_with() {
        let (_dir, store) = store();
        store
            .bind("a.order-events", Retention::from_hours(168, 720))
            .unwrap();
        let error = store
            .bind("a.order-events", Retention::from_hours(24, 720))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("was built with store.dedup-window-hours = 168, store.closed-order-retention-hours = 720, the config says store.dedup-window-hours = 24"),
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
