//! Local state of the consumers: a rebuildable cache of the order event log.
//!
//! The state consumer keeps, per log partition, the folded entities and a checkpoint (the next
//! log offset to apply). Entities and checkpoints are written in one atomic batch, so after a
//! crash the store is exactly "the log folded up to the checkpoint" and reading resumes there.
//! Because the log is the truth, losing the store costs a replay, never data.
//!
//! [`StateStore`] is the contract; [`SledStore`] the implementation. `contract_tests` holds
//! the behaviour any implementation must show.

mod dedup;
mod sled_store;

use std::collections::BTreeMap;

use orderflow_domain::{Entity, EntityKey, EventId};
use sha2::{Digest, Sha256};

pub use dedup::DedupIndex;
pub use sled_store::SledStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state store at {path} could not be opened: {source} (is another consumer using it?)")]
    Open { path: String, source: sled::Error },
    #[error("state store I/O failed: {0}")]
    Io(#[from] sled::Error),
    #[error("state store is corrupt: {0}; delete it and let the consumer rebuild it from the log")]
    Corrupt(String),
    #[error("state store at {path} holds the state of {found}, not of {expected}; give each log its own store directory")]
    OtherLog {
        path: String,
        expected: String,
        found: String,
    },
    #[error("state store at {path} was written by an older orderflow (layout {found}, this one writes {expected}); delete it and let the consumer rebuild it from the log")]
    OldLayout {
        path: String,
        expected: u32,
        found: u32,
    },
}

impl StoreError {
    /// Whether a retry may succeed. Corruption never heals by itself.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Io(_))
    }
}

/// Everything one processed batch changes, applied atomically.
#[derive(Debug, Default)]
pub struct Batch {
    /// The entities as they are after the batch; their `applied` ids are not written from
    /// here but from [`Batch::applied`].
    pub entities: BTreeMap<(i32, EntityKey), Entity>,
    /// The event ids the batch folded, per entity.
    pub applied: Vec<((i32, EntityKey), EventId)>,
    /// Per partition, the next log offset to read once this batch is durable.
    pub checkpoints: BTreeMap<i32, i64>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.entities.is_empty() && self.applied.is_empty() && self.checkpoints.is_empty()
    }
}

/// A digest of one partition's folded state: equal digests mean byte-identical state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionDigest {
    pub partition: i32,
    /// The log offset the state was folded up to (exclusive).
    pub checkpoint: i64,
    pub entities: u64,
    pub sha256: String,
}

pub trait StateStore {
    /// Binds the store to the log it folds (on first use) or checks that it is that log:
    /// checkpoints of one topic are meaningless on another.
    fn bind(&self, log_topic: &str) -> Result<(), StoreError>;
    fn load(&self, partition: i32, key: &EntityKey) -> Result<Option<Entity>, StoreError>;
    fn checkpoint(&self, partition: i32) -> Result<Option<i64>, StoreError>;
    /// Every partition the store holds state for, with its checkpoint.
    fn checkpoints(&self) -> Result<BTreeMap<i32, i64>, StoreError>;
    /// Applies the batch atomically: all of it or none of it survives a crash.
    fn write(&self, batch: &Batch) -> Result<(), StoreError>;
    /// Makes every written batch durable.
    fn flush(&self) -> Result<(), StoreError>;
    fn digest(&self, partition: i32) -> Result<PartitionDigest, StoreError>;
    /// The entities of a partition a timer may still fire on ([`Entity::has_timers`]).
    fn scheduled(&self, partition: i32) -> Result<Vec<EntityKey>, StoreError>;
}

/// Opens a sled database tuned for many small batched writes.
pub(crate) fn open_db(path: &std::path::Path) -> Result<sled::Db, StoreError> {
    sled::Config::new()
        .path(path)
        .mode(sled::Mode::HighThroughput)
        .open()
        .map_err(|source| StoreError::Open {
            path: path.display().to_string(),
            source,
        })
}

/// Hashes `(key, value)` pairs in the order given, length-prefixed so boundaries can't blur.
pub(crate) fn hash_pairs<'a>(pairs: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> String {
    let mut hasher = Sha256::new();
    for (key, value) in pairs {
        hasher.update((key.len() as u64).to_be_bytes());
        hasher.update(key);
        hasher.update((value.len() as u64).to_be_bytes());
        hasher.update(value);
    }
    hex::encode(hasher.finalize())
}

/// The behaviour every [`StateStore`] must show; run by each implementation's tests.
#[cfg(test)]
pub(crate) mod contract_tests {
    use super::*;
    use orderflow_domain::{OrderId, OrderState};

    fn order(id: &str, version: u64) -> (EntityKey, Entity) {
        let order_id: OrderId = id.parse().unwrap();
        let mut state = OrderState::new(order_id.clone());
        state.version = version;
        (EntityKey::Order(order_id), Entity::Order(state))
    }

    fn batch(partition: i32, next_offset: i64, orders: &[(&str, u64)]) -> Batch {
        let mut batch = Batch::default();
        for (id, version) in orders {
            let (key, entity) = order(id, *version);
            batch.entities.insert((partition, key), entity);
        }
        batch.checkpoints.insert(partition, next_offset);
        batch
    }

    /// An order placed and not paid: its payment timeout may still fire.
    fn unpaid(id: &str) -> (EntityKey, Entity) {
        use orderflow_domain::{Address, Event, EventBody, OrderPlaced, Source};
        let (key, mut entity) = order(id, 0);
        let placed = Event::fact(
            key.clone(),
            chrono::DateTime::UNIX_EPOCH,
            Source::origin("test"),
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
        entity.apply(&placed).unwrap();
        (key, entity)
    }

    pub(crate) fn schedules_entities_with_timers(store: &impl StateStore) {
        let (key, entity) = unpaid("tmall:T1");
        let mut batch = batch(3, 1, &[("tmall:T2", 1)]);
        batch.entities.insert((3, key.clone()), entity);
        store.write(&batch).unwrap();
        assert_eq!(store.scheduled(3).unwrap(), std::slice::from_ref(&key));
        assert!(store.scheduled(4).unwrap().is_empty());
        // Once nothing can fire any more it leaves the schedule.
        let (_, done) = order("tmall:T1", 9);
        let mut later = Batch::default();
        later.entities.insert((3, key), done);
        store.write(&later).unwrap();
        assert!(store.scheduled(3).unwrap().is_empty());
    }

    pub(crate) fn loads_what_was_written(store: &impl StateStore) {
        store
            .write(&batch(1, 10, &[("tmall:A", 1), ("jd:B", 2)]))
            .unwrap();
        let (key, expected) = order("jd:B", 2);
        assert_eq!(store.load(1, &key).unwrap(), Some(expected));
        assert_eq!(
            store.load(0, &key).unwrap(),
            None,
            "partitions are separate"
        );
        assert_eq!(store.checkpoint(1).unwrap(), Some(10));
        assert_eq!(store.checkpoint(2).unwrap(), None);
    }

    /// A sku's event ids are written per batch, apart from the entity, and come back with it.
    pub(crate) fn keeps_the_ids_a_sku_folded(store: &impl StateStore) {
        use orderflow_domain::{Event, Source};
        let stock = |sku: &str| EntityKey::Stock(sku.into());
        let level = |sku: &str, on_hand: u64| {
            let at = chrono::DateTime::UNIX_EPOCH + chrono::Duration::seconds(on_hand as i64);
            Event::stock_level(sku, "WH-HZ", on_hand, at, Source::origin("test"))
        };
        let fold = |entity: &mut Entity, event: &Event, batch: &mut Batch| {
            let slot = (5, event.key.clone());
            entity.apply(event).unwrap();
            batch.applied.push((slot.clone(), event.event_id.clone()));
            batch.entities.insert(slot, entity.clone());
        };
        // `S-1` and `S-10`: one key starts with the other, their ids stay apart.
        let (mut short, mut long) = (Entity::empty(&stock("S-1")), Entity::empty(&stock("S-10")));
        let mut first = Batch::default();
        fold(&mut short, &level("S-1", 3), &mut first);
        fold(&mut long, &level("S-10", 4), &mut first);
        store.write(&first).unwrap();
        let before = store.digest(5).unwrap();
        assert_eq!(store.load(5, &stock("S-1")).unwrap().as_ref(), Some(&short));

        let mut second = Batch::default();
        fold(&mut short, &level("S-1", 5), &mut second);
        store.write(&second).unwrap();
        let mut loaded = store.load(5, &stock("S-1")).unwrap().unwrap();
        assert_eq!(loaded, short, "both batches' ids, and only this sku's");
        assert_eq!(loaded.applied_kept_apart().map(|ids| ids.len()), Some(2));
        assert_eq!(store.load(5, &stock("S-10")).unwrap().as_ref(), Some(&long));
        assert_ne!(
            store.digest(5).unwrap().sha256,
            before.sha256,
            "ids are digested"
        );
    }

    pub(crate) fn later_writes_replace_earlier_ones(store: &impl StateStore) {
        store.write(&batch(0, 5, &[("web:A", 1)])).unwrap();
        store.write(&batch(0, 6, &[("web:A", 2)])).unwrap();
        assert_eq!(
            store
                .load(0, &order("web:A", 0).0)
                .unwrap()
                .unwrap()
                .version(),
            2
        );
        assert_eq!(store.checkpoints().unwrap(), BTreeMap::from([(0, 6)]));
    }

    pub(crate) fn digest_depends_on_content_not_write_order(
        first: &impl StateStore,
        second: &impl StateStore,
    ) {
        first.write(&batch(2, 3, &[("tmall:A", 1)])).unwrap();
        first.write(&batch(2, 4, &[("jd:B", 1)])).unwrap();
        second
            .write(&batch(2, 4, &[("jd:B", 1), ("tmall:A", 1)]))
            .unwrap();
        let (a, b) = (first.digest(2).unwrap(), second.digest(2).unwrap());
        assert_eq!(a, b);
        assert_eq!(a.entities, 2);
        second.write(&batch(2, 4, &[("jd:B", 2)])).unwrap();
        assert_ne!(
            first.digest(2).unwrap().sha256,
            second.digest(2).unwrap().sha256
        );
    }
}
