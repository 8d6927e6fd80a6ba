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
    #[error("state store at {path} was built with {stored}, the config says {configured}; set them back, or delete the store and let the consumer rebuild it from the log")]
    OtherRetention {
        path: String,
        stored: Retention,
        configured: Retention,
    },
    #[error("state store at {path} was written by an older orderflow (layout {found}, this one reads and writes layout {expected} only); delete the directory and let the consumer rebuild it from the log")]
    OldLayout {
        path: String,
        expected: u32,
        found: u32,
    },
    #[error("state store at {path} was written by a newer orderflow (layout {found}, this one reads and writes layout {expected} only); run that version, or delete the directory and let this one rebuild it from the log")]
    NewerLayout {
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
    /// The entities as they are after the batch. A sku's or buyer's ids are not part of it
    /// ([`Entity::applied_kept_apart`]): they are written from [`Batch::applied`].
    pub entities: BTreeMap<(i32, EntityKey), Entity>,
    /// The event ids the batch folded into skus and buyers, with the partition's watermark
    /// when each was folded (milliseconds of event time).
    pub applied: BTreeMap<AppliedId, i64>,
    /// Per partition, the next log offset to read once this batch is durable.
    pub checkpoints: BTreeMap<i32, i64>,
    /// Per partition, the latest event time folded so far (milliseconds): the clock the
    /// windows of [`Retention`] run on, read from the log so a replay keeps the same time.
    pub watermarks: BTreeMap<i32, i64>,
}

/// One event id folded into one sku or buyer: `((partition, entity key), event id)`.
pub type AppliedId = ((i32, EntityKey), EventId);

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.entities.is_empty() && self.applied.is_empty() && self.checkpoints.is_empty()
    }
}

/// How long state is kept, in event time (the log's `occurred_at`, never the wall clock, so a
/// replay forgets exactly what the live consumer forgot).
///
/// - An event id folded into a sku or buyer is a duplicate only within `dedup_window_ms` of
///   the partition's watermark when it was folded; an older copy is folded again.
/// - An order closed ([`Entity::closed_since`]) for longer than `closed_order_ms` is gone from
///   the store; an event for it later starts a new, empty order.
///
/// Both are part of what the state means: a store remembers the retention it was built with
/// and refuses another ([`StoreError::OtherRetention`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub dedup_window_ms: i64,
    pub closed_order_ms: i64,
}

const HOUR_MS: i64 = 3_600_000;

impl Default for Retention {
    /// 7 days of dedup window, closed orders kept 30 days.
    fn default() -> Retention {
        Retention::from_hours(7 * 24, 30 * 24)
    }
}

impl Retention {
    pub fn from_hours(dedup_window_hours: u32, closed_order_hours: u32) -> Retention {
        Retention {
            dedup_window_ms: i64::from(dedup_window_hours) * HOUR_MS,
            closed_order_ms: i64::from(closed_order_hours) * HOUR_MS,
        }
    }

    /// Whether an id folded at watermark `folded_at` still counts as seen at `watermark`.
    pub fn remembers(&self, folded_at: i64, watermark: i64) -> bool {
        folded_at > watermark.saturating_sub(self.dedup_window_ms)
    }

    /// Whether `entity` is past its retention at `watermark`: to be read as absent.
    pub fn expired(&self, entity: &Entity, watermark: i64) -> bool {
        entity.closed_since().is_some_and(|closed| {
            closed.timestamp_millis() <= watermark.saturating_sub(self.closed_order_ms)
        })
    }

    fn to_bytes(self) -> [u8; 16] {
        let mut bytes = [0; 16];
        bytes[..8].copy_from_slice(&self.dedup_window_ms.to_be_bytes());
        bytes[8..].copy_from_slice(&self.closed_order_ms.to_be_bytes());
        bytes
    }

    fn from_bytes(bytes: &[u8]) -> Option<Retention> {
        let dedup = bytes.get(..8)?.try_into().ok()?;
        let closed = bytes.get(8..16)?.try_into().ok()?;
        Some(Retention {
            dedup_window_ms: i64::from_be_bytes(dedup),
            closed_order_ms: i64::from_be_bytes(closed),
        })
    }
}

impl std::fmt::Display for Retention {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "store.dedup-window-hours = {}, store.closed-order-retention-hours = {}",
            self.dedup_window_ms / HOUR_MS,
            self.closed_order_ms / HOUR_MS
        )
    }
}

/// At least this many expired entries are pruned per write, and at least twice as many as the
/// write added, so pruning keeps up with any steady rate of new state while a write after a
/// long jump of the watermark still does bounded work.
pub(crate) const PRUNE_AT_LEAST: usize = 1_024;

/// A time in milliseconds as bytes that sort as the times do (sign bit flipped).
pub(crate) fn time_key(millis: i64) -> [u8; 8] {
    ((millis as u64) ^ (1 << 63)).to_be_bytes()
}

pub(crate) fn time_of_key(bytes: &[u8]) -> Option<i64> {
    let raw: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
    Some((u64::from_be_bytes(raw) ^ (1 << 63)) as i64)
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
    /// Binds the store to the log it folds and the retention it keeps (on first use) or
    /// checks that it is that log and retention: checkpoints of one topic are meaningless on
    /// another, and state kept under one retention differs from a replay under another.
    fn bind(&self, log_topic: &str, retention: Retention) -> Result<(), StoreError>;
    /// The entity as written, without a sku's or buyer's ids (ask [`StateStore::applied_at`])
    /// and whether or not it is past its retention (the caller knows the watermark it reads at).
    fn load(&self, partition: i32, key: &EntityKey) -> Result<Option<Entity>, StoreError>;
    /// The watermark at which `event_id` was folded into the sku or buyer `key`, if it was and
    /// is not pruned yet (whether it still counts is [`Retention::remembers`]).
    fn applied_at(
        &self,
        partition: i32,
        key: &EntityKey,
        event_id: &EventId,
    ) -> Result<Option<i64>, StoreError>;
    /// The partition's watermark ([`Batch::watermarks`]).
    fn watermark(&self, partition: i32) -> Result<Option<i64>, StoreError>;
    fn checkpoint(&self, partition: i32) -> Result<Option<i64>, StoreError>;
    /// Every partition the store holds state for, with its checkpoint.
    fn checkpoints(&self) -> Result<BTreeMap<i32, i64>, StoreError>;
    /// Applies the batch atomically: all of it or none of it survives a crash; then prunes
    /// what fell out of the retention, a bounded amount per write. Returns the encoded size
    /// of each of the batch's entities, in the batch's order.
    fn write(&self, batch: &Batch) -> Result<Vec<usize>, StoreError>;
    /// Makes every written batch durable.
    fn flush(&self) -> Result<(), StoreError>;
    /// Covers what the partition holds within its retention at its watermark, however much
    /// of what fell out of it is pruned yet.
    fn digest(&self, partition: i32) -> Result<PartitionDigest, StoreError>;
    /// The entities of a partition a timer may still fire on ([`Entity::has_timers`]).
    fn scheduled(&self, partition: i32) -> Result<Vec<EntityKey>, StoreError>;
}

/// sled's page cache per store (its default is 1 GiB): what a store adds to a process's memory
/// besides the state consumer's entity cache (`consumer.cache-bytes`).
pub const PAGE_CACHE_BYTES: u64 = 128 << 20;

/// Opens a sled database tuned for many small batched writes.
pub(crate) fn open_db(path: &std::path::Path) -> Result<sled::Db, StoreError> {
    sled::Config::new()
        .path(path)
        .cache_capacity(PAGE_CACHE_BYTES)
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
        (EntityKey::Order(order_id), Entity::Order(Box::new(state)))
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

    const HOUR: i64 = 3_600_000;

    fn stock(sku: &str) -> EntityKey {
        EntityKey::Stock(sku.into())
    }

    fn id(text: &str) -> EventId {
        EventId::from(text.to_string())
    }

    /// A batch that only moves partition 5's watermark to `at`.
    fn tick(at: i64) -> Batch {
        let mut batch = Batch::default();
        batch.watermarks.insert(5, at);
        batch
    }

    /// A sku's event ids are written per batch, apart from the entity, with the watermark
    /// each was folded at, and are looked up one by one.
    pub(crate) fn keeps_the_ids_a_sku_folded(store: &impl StateStore) {
        // `S-1` and `S-10`: one key starts with the other, their ids stay apart.
        let mut first = tick(HOUR);
        first
            .entities
            .insert((5, stock("S-1")), Entity::empty(&stock("S-1")));
        first.applied.insert(((5, stock("S-1")), id("e1")), HOUR);
        first.applied.insert(((5, stock("S-10")), id("e2")), HOUR);
        store.write(&first).unwrap();
        let before = store.digest(5).unwrap();
        assert_eq!(
            store.applied_at(5, &stock("S-1"), &id("e1")).unwrap(),
            Some(HOUR)
        );
        assert_eq!(store.applied_at(5, &stock("S-1"), &id("e2")).unwrap(), None);
        assert_eq!(
            store.applied_at(5, &stock("S-10"), &id("e2")).unwrap(),
            Some(HOUR)
        );
        assert_eq!(store.applied_at(4, &stock("S-1"), &id("e1")).unwrap(), None);
        assert_eq!(store.watermark(5).unwrap(), Some(HOUR));

        let mut second = tick(2 * HOUR);
        second
            .applied
            .insert(((5, stock("S-1")), id("e3")), 2 * HOUR);
        store.write(&second).unwrap();
        assert_eq!(
            store.applied_at(5, &stock("S-1"), &id("e1")).unwrap(),
            Some(HOUR)
        );
        assert_eq!(
            store.applied_at(5, &stock("S-1"), &id("e3")).unwrap(),
            Some(2 * HOUR)
        );
        assert_ne!(
            store.digest(5).unwrap().sha256,
            before.sha256,
            "ids are digested"
        );
    }

    /// Ids fall out past the dedup window of the watermark, and a store that pruned them
    /// digests like one that never had them.
    pub(crate) fn prunes_ids_past_the_dedup_window(
        pruned: &impl StateStore,
        never: &impl StateStore,
    ) {
        let retention = Retention {
            dedup_window_ms: HOUR,
            closed_order_ms: HOUR,
        };
        pruned.bind("t.order-events", retention).unwrap();
        never.bind("t.order-events", retention).unwrap();
        let mut first = tick(0);
        first.applied.insert(((5, stock("S-1")), id("old")), 0);
        pruned.write(&first).unwrap();
        let mut kept = tick(HOUR / 2);
        kept.applied
            .insert(((5, stock("S-1")), id("recent")), HOUR / 2);
        pruned.write(&kept).unwrap();
        never.write(&kept).unwrap();
        assert!(retention.remembers(0, HOUR / 2));
        assert_eq!(
            pruned.applied_at(5, &stock("S-1"), &id("old")).unwrap(),
            Some(0)
        );

        // An hour after it was folded, `old` is out of the window and pruned at the next write.
        pruned.write(&tick(HOUR)).unwrap();
        never.write(&tick(HOUR)).unwrap();
        assert_eq!(
            pruned.applied_at(5, &stock("S-1"), &id("old")).unwrap(),
            None
        );
        assert_eq!(
            pruned.applied_at(5, &stock("S-1"), &id("recent")).unwrap(),
            Some(HOUR / 2)
        );
        assert_eq!(pruned.digest(5).unwrap(), never.digest(5).unwrap());

        // An id folded again after it expired is kept with its new time, not pruned with the old.
        let mut again = tick(HOUR + 1);
        again
            .applied
            .insert(((5, stock("S-1")), id("recent")), HOUR + 1);
        pruned.write(&again).unwrap();
        pruned.write(&tick(HOUR + HOUR / 2 + 1)).unwrap();
        assert_eq!(
            pruned.applied_at(5, &stock("S-1"), &id("recent")).unwrap(),
            Some(HOUR + 1)
        );
    }

    /// A closed order is gone from the store once it has been closed longer than the
    /// retention; an open one stays, and the digest is that of a store that never had it.
    pub(crate) fn evicts_closed_orders_after_their_retention(
        evicting: &impl StateStore,
        never: &impl StateStore,
    ) {
        use orderflow_domain::{Event, EventBody, Source};
        let retention = Retention {
            dedup_window_ms: HOUR,
            closed_order_ms: 2 * HOUR,
        };
        evicting.bind("t.order-events", retention).unwrap();
        never.bind("t.order-events", retention).unwrap();
        let (key, mut closed) = unpaid("tmall:C1");
        let cancel = Event::fact(
            key.clone(),
            chrono::DateTime::UNIX_EPOCH,
            Source::origin("test"),
            EventBody::OrderCancelled {
                reason: Some("test".into()),
            },
        );
        closed.apply(&cancel).unwrap();
        assert_eq!(closed.closed_since(), Some(chrono::DateTime::UNIX_EPOCH));
        let (open_key, open) = order("tmall:O1", 1);
        let mut first = tick(0);
        first.entities.insert((5, key.clone()), closed.clone());
        first.entities.insert((5, open_key.clone()), open.clone());
        evicting.write(&first).unwrap();
        let mut without = tick(0);
        without.entities.insert((5, open_key.clone()), open.clone());
        never.write(&without).unwrap();

        evicting.write(&tick(HOUR)).unwrap();
        assert_eq!(
            evicting.load(5, &key).unwrap().as_ref(),
            Some(&closed),
            "within its retention"
        );
        assert!(!retention.expired(&closed, HOUR));
        assert!(retention.expired(&closed, 2 * HOUR));
        evicting.write(&tick(2 * HOUR)).unwrap();
        never.write(&tick(2 * HOUR)).unwrap();
        assert_eq!(evicting.load(5, &key).unwrap(), None, "evicted");
        assert_eq!(evicting.load(5, &open_key).unwrap(), Some(open));
        assert_eq!(evicting.digest(5).unwrap(), never.digest(5).unwrap());
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
