//! [`MemoryOffsetStore`]: the simple, volatile implementation.

use parking_lot::RwLock;

use super::{validate_group_id, validate_offset_commit, CommittedOffset, OffsetMap, OffsetStore};
use crate::error::Result;
use crate::offset::TopicPartition;

/// An [`OffsetStore`] in a map in memory.
///
/// Durability: none. When `commit` returns, the offsets are visible to every later fetch on
/// this store, and lost when the store is dropped. For tests, for consumers whose positions
/// need not survive a restart, and as a reference for implementors.
#[derive(Debug, Default)]
pub struct MemoryOffsetStore {
    map: RwLock<OffsetMap>,
}

impl MemoryOffsetStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl OffsetStore for MemoryOffsetStore {
    fn commit(&self, group: &str, offsets: &[(TopicPartition, CommittedOffset)]) -> Result<()> {
        validate_offset_commit(group, offsets)?;
        // One write lock for the whole list: readers see all of it or none.
        let mut map = self.map.write();
        for (tp, committed) in offsets {
            map.insert(group, tp.clone(), committed.clone());
        }
        Ok(())
    }

    fn fetch(&self, group: &str, partition: &TopicPartition) -> Result<Option<CommittedOffset>> {
        validate_group_id(group)?;
        Ok(self.map.read().fetch(group, partition))
    }

    fn fetch_group(&self, group: &str) -> Result<Vec<(TopicPartition, CommittedOffset)>> {
        validate_group_id(group)?;
        Ok(self.map.read().fetch_group(group))
    }

    fn delete(&self, group: &str, partitions: Option<&[TopicPartition]>) -> Result<()> {
        validate_group_id(group)?;
        self.map.write().remove(group, partitions);
        Ok(())
    }
}
