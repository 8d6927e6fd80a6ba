//! The intake's index of event ids it has already appended to the log.
//!
//! It keeps platform callback retries out of the log in the common case. It is an
//! optimisation, not the guarantee: an id appended just before a crash, or seen by another
//! instance before a rebalance, can reach the log twice, and the fold drops the copy.

use std::path::Path;

use orderflow_domain::EventId;

use crate::StoreError;

pub struct DedupIndex {
    tree: sled::Db,
}

impl DedupIndex {
    pub fn open(path: &Path) -> Result<DedupIndex, StoreError> {
        let tree = crate::open_db(path)?;
        Ok(DedupIndex { tree })
    }

    pub fn contains(&self, event_id: &EventId) -> Result<bool, StoreError> {
        Ok(self.tree.contains_key(event_id.as_str())?)
    }

    /// Records ids whose events the broker has acknowledged.
    pub fn insert_all<'a>(&self, ids: impl Iterator<Item = &'a EventId>) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for id in ids {
            batch.insert(id.as_str(), &[]);
        }
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.tree.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    /// Bytes the index takes on disk (0 if sled can't tell).
    pub fn size_on_disk(&self) -> u64 {
        self.tree.size_on_disk().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_ids_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let id = EventId::derive(&["payment_captured", "tmall:1", "P1"]);
        {
            let index = DedupIndex::open(dir.path()).unwrap();
            assert!(!index.contains(&id).unwrap());
            index.insert_all([&id].into_iter()).unwrap();
            index.tree.flush().unwrap();
        }
        let index = DedupIndex::open(dir.path()).unwrap();
        assert!(index.contains(&id).unwrap());
        assert_eq!(index.len(), 1);
    }
}
