//! The intake's index of event ids it has already appended to the log.
//!
//! It keeps platform callback retries out of the log in the common case. It is an
//! optimisation, not the guarantee: an id appended just before a crash, or seen by another
//! instance before a rebalance, can reach the log twice, and the fold drops the copy.
//!
//! It remembers an id for a window of event time ([`crate::Retention::dedup_window_ms`]) past
//! the index's watermark (the latest `occurred_at` it indexed) when the id was indexed; older
//! ids are pruned, a bounded amount per write. Layout: `i/{event id}` → the watermark it was
//! indexed at, `x/{time}{event id}` → empty (oldest first, for pruning), `m/watermark`. An
//! index of the earlier layout (bare ids, no window) is dropped on open: it only saves work.

use std::path::Path;

use orderflow_domain::{EventId, Timestamp};

use crate::{time_key, time_of_key, StoreError, PRUNE_AT_LEAST};

pub struct DedupIndex {
    tree: sled::Db,
    window_ms: i64,
    watermark: i64,
}

const WATERMARK_KEY: &[u8] = b"m/watermark";

fn id_key(event_id: &EventId) -> Vec<u8> {
    [&b"i/"[..], event_id.as_str().as_bytes()].concat()
}

impl DedupIndex {
    /// Opens the index at `path`, remembering ids for `window_ms` of event time.
    pub fn open(path: &Path, window_ms: i64) -> Result<DedupIndex, StoreError> {
        let tree = crate::open_db(path)?;
        let watermark = match tree.get(WATERMARK_KEY)? {
            Some(bytes) => time_of_key(&bytes)
                .ok_or_else(|| StoreError::Corrupt("unreadable dedup watermark".into()))?,
            None => {
                tree.clear()?;
                i64::MIN
            }
        };
        Ok(DedupIndex {
            tree,
            window_ms,
            watermark,
        })
    }

    /// Whether the id was indexed within the window.
    pub fn contains(&self, event_id: &EventId) -> Result<bool, StoreError> {
        Ok(match self.tree.get(id_key(event_id))? {
            Some(bytes) => time_of_key(&bytes)
                .is_some_and(|at| at > self.watermark.saturating_sub(self.window_ms)),
            None => false,
        })
    }

    /// Records ids whose events the broker has acknowledged, with their events' times, then
    /// prunes what fell out of the window (at least twice as many as it added).
    pub fn insert_all<'a>(
        &mut self,
        ids: impl Iterator<Item = &'a (EventId, Timestamp)>,
    ) -> Result<(), StoreError> {
        let ids: Vec<_> = ids.collect();
        let latest = ids.iter().map(|(_, at)| at.timestamp_millis()).max();
        self.watermark = self.watermark.max(latest.unwrap_or(i64::MIN));
        let at = time_key(self.watermark);
        let mut batch = sled::Batch::default();
        for (id, _) in &ids {
            batch.insert(id_key(id), &at);
            batch.insert([&b"x/"[..], &at, id.as_str().as_bytes()].concat(), &[]);
        }
        batch.insert(WATERMARK_KEY, &at);
        let end = [
            &b"x/"[..],
            &time_key(
                self.watermark
                    .saturating_sub(self.window_ms)
                    .saturating_add(1),
            ),
        ]
        .concat();
        for item in self
            .tree
            .range(&b"x/"[..]..&end[..])
            .take(PRUNE_AT_LEAST.max(2 * ids.len()))
        {
            let (index, _) = item?;
            let (time, id) = index[2..].split_at(8);
            let stored = [&b"i/"[..], id].concat();
            // An id indexed again later has a newer time: that one stays.
            if self.tree.get(&stored)?.as_deref() == Some(time) {
                batch.remove(stored);
            }
            batch.remove(index);
        }
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    /// Ids indexed and not pruned yet.
    pub fn len(&self) -> usize {
        self.tree.scan_prefix(b"i/").count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the index takes on disk (0 if sled can't tell).
    pub fn size_on_disk(&self) -> u64 {
        self.tree.size_on_disk().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(hours: i64) -> Timestamp {
        chrono::DateTime::UNIX_EPOCH + chrono::Duration::hours(hours)
    }

    #[test]
    fn remembers_ids_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let id = EventId::derive(&["payment_captured", "tmall:1", "P1"]);
        {
            let mut index = DedupIndex::open(dir.path(), 3_600_000).unwrap();
            assert!(!index.contains(&id).unwrap());
            index.insert_all([(id.clone(), at(0))].iter()).unwrap();
            index.tree.flush().unwrap();
        }
        let index = DedupIndex::open(dir.path(), 3_600_000).unwrap();
        assert!(index.contains(&id).unwrap());
        assert_eq!(index.len(), 1);
    }

    #[test]
    fn forgets_ids_older_than_the_window_of_event_time() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = DedupIndex::open(dir.path(), 2 * 3_600_000).unwrap();
        let (old, new) = (
            EventId::from("old".to_string()),
            EventId::from("new".to_string()),
        );
        index.insert_all([(old.clone(), at(0))].iter()).unwrap();
        index.insert_all([(new.clone(), at(1))].iter()).unwrap();
        assert!(index.contains(&old).unwrap(), "within the window");
        index.insert_all([(new.clone(), at(2))].iter()).unwrap();
        assert!(
            !index.contains(&old).unwrap(),
            "two hours of event time later"
        );
        assert!(index.contains(&new).unwrap(), "indexed again at hour 2");
        assert_eq!(index.len(), 1, "the old id is pruned, not just hidden");
    }

    #[test]
    fn an_index_of_the_earlier_layout_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = crate::open_db(dir.path()).unwrap();
            db.insert("bare-id", &[]).unwrap();
            db.flush().unwrap();
        }
        let index = DedupIndex::open(dir.path(), 3_600_000).unwrap();
        assert!(index.is_empty());
        assert!(!index.tree.contains_key("bare-id").unwrap());
    }
}
