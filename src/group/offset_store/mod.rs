//! Committed consumer offsets: the [`OffsetStore`] trait, its limits, and two implementations,
//! [`MemoryOffsetStore`] (nothing survives the process) and [`FileOffsetStore`] (a small
//! compacted log, fsynced on every commit).

mod file;
mod memory;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::offset::{Offset, TopicPartition};

pub use file::{FileOffsetStore, FileOffsetStoreConfig};
pub use memory::MemoryOffsetStore;

/// Longest accepted consumer group id, in bytes (UTF-8). Ids must also be non-empty.
pub const GROUP_ID_BYTES_MAX: usize = 255;

/// Longest topic name accepted in an offset commit, in bytes (UTF-8). Kafka's own limit is
/// 249 characters. Names must also be non-empty.
pub const OFFSET_TOPIC_BYTES_MAX: usize = 255;

// The validation messages state these values: keep them in step.
const _: () = assert!(GROUP_ID_BYTES_MAX == 255 && OFFSET_TOPIC_BYTES_MAX == 255);

/// Longest accepted [`CommittedOffset::metadata`], in bytes (UTF-8): Kafka's default
/// `offset.metadata.max.bytes`.
pub const OFFSET_METADATA_BYTES_MAX: usize = 4096;

/// Most entries one [`OffsetStore::commit`] call may carry.
pub const OFFSET_COMMIT_PARTITIONS_MAX: usize = 10_000;

/// A committed position: the next offset to consume, plus free-form application metadata
/// (Kafka's `OffsetAndMetadata`).
///
/// Offsets follow Kafka: a committed offset is the *next* offset the group will consume, so a
/// consumer that processed records up to and including offset 41 commits `Offset(42)`.
///
/// Build one with [`CommittedOffset::new`] and [`with_metadata`](Self::with_metadata): the
/// struct is non-exhaustive, so that fields Kafka's `OffsetAndMetadata` has (a leader epoch)
/// can join it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub struct CommittedOffset {
    /// The next offset the group will consume in the partition.
    pub offset: Offset,
    /// Application data stored with the offset; at most [`OFFSET_METADATA_BYTES_MAX`] bytes.
    pub metadata: String,
}

impl CommittedOffset {
    /// `offset` with empty metadata.
    pub fn new(offset: Offset) -> Self {
        CommittedOffset {
            offset,
            metadata: String::new(),
        }
    }

    /// Replace the metadata.
    pub fn with_metadata(mut self, metadata: impl Into<String>) -> Self {
        self.metadata = metadata.into();
        self
    }
}

/// Where consumer groups keep their committed offsets: `(group, topic, partition) ->
/// (offset, metadata)`.
///
/// A seam so that applications can keep offsets wherever their results live: an
/// implementation over the application's own database that commits offsets and results in one
/// transaction gives exactly-once processing. The crate ships [`MemoryOffsetStore`] and the
/// durable [`FileOffsetStore`]; `seglog::testing::offset_store_conformance` (feature `testing`)
/// checks an implementation against this contract.
///
/// # Contract
///
/// Validation, the same for every method and every implementation:
/// - A group id **must** be accepted when it is 1 to [`GROUP_ID_BYTES_MAX`] bytes long (any
///   characters) and **must** be rejected otherwise with [`Error::InvalidGroupId`], by
///   `commit`, `fetch` and `fetch_group` alike.
/// - `commit` **must** reject, with nothing applied: a topic name that is empty or longer
///   than [`OFFSET_TOPIC_BYTES_MAX`] bytes ([`Error::InvalidCommitTopic`]), metadata longer
///   than [`OFFSET_METADATA_BYTES_MAX`] bytes ([`Error::OffsetMetadataTooLarge`]), and a list
///   longer than [`OFFSET_COMMIT_PARTITIONS_MAX`] entries ([`Error::OffsetCommitTooLarge`]).
///   Values at the limits **must** be accepted. Every `u64` offset and every `u32` partition
///   number **must** be accepted. [`validate_offset_commit`] performs exactly these checks.
///
/// Commits:
/// - **Atomicity.** A commit **must** be applied all or nothing: no `fetch` or `fetch_group`,
///   concurrent or later, and no reopen after a crash, may observe part of a list.
/// - **Ordering.** Commits to the same `(group, topic, partition)` are last-writer-wins in the
///   order the `commit` calls took effect; a later commit overwrites an earlier one even with a
///   lower offset (a consumer that seeks back commits a lower offset). Within one list, if a
///   partition appears more than once, the last occurrence wins. Metadata is replaced along with
///   the offset, never merged.
/// - **Visibility.** Once `commit` returns `Ok`, every later `fetch`/`fetch_group` on the same
///   store, from any thread, **must** see it (or a later commit).
/// - **Durability** is per implementation and **must** be documented as "when `commit`
///   returns `Ok`, X survives": [`MemoryOffsetStore`]: nothing survives the store;
///   [`FileOffsetStore`]: the commit is fsynced and survives a process crash or power loss.
///   A durable store, reopened after a crash, **must** show the result of a prefix of the
///   commits in the order they took effect, a prefix that includes every acknowledged one:
///   never a torn commit, never a later commit without an earlier one.
/// - **Errors.** A validation error means nothing was applied. After any other error (I/O) the
///   commit **must not** be visible in this store instance; a durable store **may** still show
///   it, whole, after a reopen (the data may have reached the disk before the failure).
/// - An empty list, with a valid group id, is a no-op that returns `Ok(())` and **must not**
///   change anything.
///
/// Reads:
/// - **A missing entry** (`fetch` returns `Ok(None)`) means the group never committed an offset
///   for the partition: the consumer falls back to its `auto_offset_reset` policy. A store
///   **must not** invent entries or drop them; there is no expiry.
/// - `fetch_group` **must** return every entry of the group, sorted by [`TopicPartition`]
///   (topic, then partition), as one consistent snapshot: each commit entirely or not at all.
///   An unknown group yields an empty list.
/// - Groups **must** be independent: commits to one group never change another's entries.
///
/// Implementations are shared between threads (`Send + Sync`); every method **must** be safe
/// to call concurrently.
pub trait OffsetStore: Send + Sync {
    /// Atomically store every `(partition, committed offset)` of the list for `group`.
    fn commit(&self, group: &str, offsets: &[(TopicPartition, CommittedOffset)]) -> Result<()>;

    /// The offset `group` last committed for `partition`; `None` if it never committed one.
    fn fetch(&self, group: &str, partition: &TopicPartition) -> Result<Option<CommittedOffset>>;

    /// Every offset `group` has committed, sorted by partition; empty for an unknown group.
    fn fetch_group(&self, group: &str) -> Result<Vec<(TopicPartition, CommittedOffset)>>;

    /// Remove `group`'s committed offsets of `partitions`, or all of them with `None`
    /// (Kafka's `DeleteGroups` / `OffsetDelete`); entries that do not exist are ignored.
    /// Afterwards `fetch` returns `None` for them. A durable store **must** make the removal
    /// durable before it returns `Ok` and **must not** show it to fetches before; after an
    /// error nothing changed in this instance. The provided implementation refuses with
    /// [`Error::Unsupported`](crate::Error::Unsupported); both shipped stores implement it.
    fn delete(&self, group: &str, partitions: Option<&[TopicPartition]>) -> Result<()> {
        let _ = (group, partitions);
        Err(crate::error::Error::Unsupported {
            operation: "OffsetStore::delete",
        })
    }
}

impl<T: OffsetStore + ?Sized> OffsetStore for Arc<T> {
    fn commit(&self, group: &str, offsets: &[(TopicPartition, CommittedOffset)]) -> Result<()> {
        (**self).commit(group, offsets)
    }

    fn delete(&self, group: &str, partitions: Option<&[TopicPartition]>) -> Result<()> {
        (**self).delete(group, partitions)
    }

    fn fetch(&self, group: &str, partition: &TopicPartition) -> Result<Option<CommittedOffset>> {
        (**self).fetch(group, partition)
    }

    fn fetch_group(&self, group: &str) -> Result<Vec<(TopicPartition, CommittedOffset)>> {
        (**self).fetch_group(group)
    }
}

impl<T: OffsetStore + ?Sized> OffsetStore for Box<T> {
    fn commit(&self, group: &str, offsets: &[(TopicPartition, CommittedOffset)]) -> Result<()> {
        (**self).commit(group, offsets)
    }

    fn delete(&self, group: &str, partitions: Option<&[TopicPartition]>) -> Result<()> {
        (**self).delete(group, partitions)
    }

    fn fetch(&self, group: &str, partition: &TopicPartition) -> Result<Option<CommittedOffset>> {
        (**self).fetch(group, partition)
    }

    fn fetch_group(&self, group: &str) -> Result<Vec<(TopicPartition, CommittedOffset)>> {
        (**self).fetch_group(group)
    }
}

/// Check a group id against the [`OffsetStore`] contract: 1 to [`GROUP_ID_BYTES_MAX`] bytes.
pub fn validate_group_id(group: &str) -> Result<()> {
    let reason = if group.is_empty() {
        "must not be empty"
    } else if group.len() > GROUP_ID_BYTES_MAX {
        "longer than 255 bytes (GROUP_ID_BYTES_MAX); use a shorter group id"
    } else {
        return Ok(());
    };
    Err(Error::InvalidGroupId {
        group: group.to_owned(),
        reason,
    })
}

/// Check a commit against the [`OffsetStore`] contract's limits, in this order: the group id,
/// the list's length, then each entry's topic name and metadata. For implementors: call it
/// first in `commit` to reject exactly what the contract says.
pub fn validate_offset_commit(
    group: &str,
    offsets: &[(TopicPartition, CommittedOffset)],
) -> Result<()> {
    validate_group_id(group)?;
    if offsets.len() > OFFSET_COMMIT_PARTITIONS_MAX {
        return Err(Error::OffsetCommitTooLarge {
            count: offsets.len(),
            limit: OFFSET_COMMIT_PARTITIONS_MAX,
        });
    }
    for (tp, committed) in offsets {
        let reason = if tp.topic.is_empty() {
            Some("must not be empty")
        } else if tp.topic.len() > OFFSET_TOPIC_BYTES_MAX {
            Some("longer than 255 bytes (OFFSET_TOPIC_BYTES_MAX)")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(Error::InvalidCommitTopic {
                topic: tp.topic.clone(),
                reason,
            });
        }
        if committed.metadata.len() > OFFSET_METADATA_BYTES_MAX {
            return Err(Error::OffsetMetadataTooLarge {
                topic_partition: tp.clone(),
                size: committed.metadata.len(),
                limit: OFFSET_METADATA_BYTES_MAX,
            });
        }
    }
    Ok(())
}

/// The in-memory map both shipped stores keep: group -> partition -> committed offset.
#[derive(Debug, Default, Clone)]
pub(crate) struct OffsetMap {
    groups: HashMap<String, BTreeMap<TopicPartition, CommittedOffset>>,
}

impl OffsetMap {
    /// Set one entry; returns the entry it replaced.
    pub(crate) fn insert(
        &mut self,
        group: &str,
        tp: TopicPartition,
        committed: CommittedOffset,
    ) -> Option<CommittedOffset> {
        if let Some(entries) = self.groups.get_mut(group) {
            return entries.insert(tp, committed);
        }
        let mut entries = BTreeMap::new();
        entries.insert(tp, committed);
        self.groups.insert(group.to_owned(), entries);
        None
    }

    /// Remove `group`'s entries of `partitions` (every entry with `None`); returns how many
    /// were removed.
    pub(crate) fn remove(&mut self, group: &str, partitions: Option<&[TopicPartition]>) -> usize {
        let Some(entries) = self.groups.get_mut(group) else {
            return 0;
        };
        let before = entries.len();
        match partitions {
            None => entries.clear(),
            Some(list) => entries.retain(|tp, _| !list.contains(tp)),
        }
        let removed = before - entries.len();
        if entries.is_empty() {
            self.groups.remove(group);
        }
        removed
    }

    pub(crate) fn fetch(&self, group: &str, tp: &TopicPartition) -> Option<CommittedOffset> {
        self.groups.get(group)?.get(tp).cloned()
    }

    pub(crate) fn fetch_group(&self, group: &str) -> Vec<(TopicPartition, CommittedOffset)> {
        self.groups.get(group).map_or_else(Vec::new, |entries| {
            entries
                .iter()
                .map(|(tp, c)| (tp.clone(), c.clone()))
                .collect()
        })
    }

    /// Every entry, grouped by group (groups in no particular order).
    pub(crate) fn iter(
        &self,
    ) -> impl Iterator<Item = (&str, &TopicPartition, &CommittedOffset)> + '_ {
        self.groups
            .iter()
            .flat_map(|(g, entries)| entries.iter().map(move |(tp, c)| (g.as_str(), tp, c)))
    }
}
