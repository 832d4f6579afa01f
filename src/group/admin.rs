//! Administering consumer groups (Kafka's `kafka-consumer-groups.sh`): resetting a group's
//! committed offsets while it has no members, and describing its lag.

use std::collections::BTreeSet;

use crate::error::Result;
use crate::group::coordinator::GroupCoordinator;
use crate::group::offset_store::{validate_group_id, CommittedOffset};
use crate::offset::{Offset, TopicPartition};
use crate::topic::store::LogStore;

/// Where [`GroupCoordinator::reset_offsets`] moves a group's committed offsets (Kafka's
/// `--to-earliest`, `--to-latest`, `--to-datetime`, `--to-offset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OffsetResetTarget {
    /// The log start offset.
    Earliest,
    /// The high watermark.
    Latest,
    /// The first record with a timestamp at or after this (milliseconds since the epoch);
    /// the high watermark if none is that new.
    Timestamp(i64),
    /// This offset, clamped to `[log start, high watermark]` (as Kafka clamps).
    Offset(Offset),
}

/// One partition of [`GroupCoordinator::group_lag`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartitionLag {
    /// The partition.
    pub topic_partition: TopicPartition,
    /// The member that owns it now, if one does.
    pub owner: Option<String>,
    /// The group's committed offset, if any.
    pub committed: Option<Offset>,
    /// The partition's log start offset.
    pub log_start_offset: Offset,
    /// The partition's high watermark.
    pub high_watermark: Offset,
    /// `high_watermark - committed` (0 if the commit is past it); `None` without a commit.
    pub lag: Option<u64>,
}

impl GroupCoordinator {
    /// Set `group`'s committed offsets of `partitions` (of `store`'s topics) to `target`, as
    /// an administrator. Only while the group has no members: [`Error::GroupNotEmpty`]
    /// otherwise, and [`Error::UnknownTopic`] / [`Error::PartitionOutOfRange`] for a
    /// partition that does not exist; nothing is written then. Returns the offsets written.
    ///
    /// [`Error::GroupNotEmpty`]: crate::Error::GroupNotEmpty
    /// [`Error::UnknownTopic`]: crate::Error::UnknownTopic
    /// [`Error::PartitionOutOfRange`]: crate::Error::PartitionOutOfRange
    pub fn reset_offsets(
        &self,
        store: &LogStore,
        group: &str,
        partitions: &[TopicPartition],
        target: OffsetResetTarget,
    ) -> Result<Vec<(TopicPartition, Offset)>> {
        validate_group_id(group)?;
        let mut offsets = Vec::with_capacity(partitions.len());
        for tp in partitions {
            let partition = store.partition(tp)?;
            let (start, end) = (partition.log_start_offset(), partition.high_watermark());
            let offset = match target {
                OffsetResetTarget::Earliest => start,
                OffsetResetTarget::Latest => end,
                OffsetResetTarget::Timestamp(t) => {
                    partition.offset_for_timestamp(t)?.unwrap_or(end)
                }
                OffsetResetTarget::Offset(o) => o.clamp(start, end),
            };
            offsets.push((tp.clone(), offset));
        }
        let commits: Vec<(TopicPartition, CommittedOffset)> = offsets
            .iter()
            .map(|(tp, o)| (tp.clone(), CommittedOffset::new(*o)))
            .collect();
        self.commit_unmanaged(group, &commits)?;
        Ok(offsets)
    }

    /// Delete `group` (Kafka's `DeleteGroups`): its committed offsets are removed from the
    /// offset store and the coordinator forgets it. Only while it has no members:
    /// [`Error::GroupNotEmpty`](crate::Error::GroupNotEmpty) otherwise, and nothing changes.
    pub fn delete_group(&self, group: &str) -> Result<()> {
        self.delete_offsets(group, None)?;
        self.forget_group(group);
        Ok(())
    }

    /// Delete `group`'s committed offsets of `partitions`, or all with `None` (Kafka's
    /// `OffsetDelete`): its consumers then start from `auto_offset_reset`. Only while the
    /// group has no members ([`Error::GroupNotEmpty`](crate::Error::GroupNotEmpty)).
    pub fn delete_offsets(&self, group: &str, partitions: Option<&[TopicPartition]>) -> Result<()> {
        validate_group_id(group)?;
        self.with_empty_group(group, || self.offset_store().delete(group, partitions))
    }

    /// The lag of `group` on every partition it has committed or owns, sorted (Kafka's
    /// `kafka-consumer-groups.sh --describe`). Partitions of deleted topics are left out.
    pub fn group_lag(&self, store: &LogStore, group: &str) -> Result<Vec<PartitionLag>> {
        validate_group_id(group)?;
        let committed = self.offset_store().fetch_group(group)?;
        let owners: Vec<(TopicPartition, String)> = self
            .describe(group)
            .map(|d| {
                d.members
                    .into_iter()
                    .flat_map(|m| {
                        let id = m.member_id;
                        m.owned.into_iter().map(move |tp| (tp, id.clone()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let partitions: BTreeSet<TopicPartition> = committed
            .iter()
            .map(|(tp, _)| tp.clone())
            .chain(owners.iter().map(|(tp, _)| tp.clone()))
            .collect();
        let mut out = Vec::with_capacity(partitions.len());
        for tp in partitions {
            let Ok(partition) = store.partition(&tp) else {
                continue;
            };
            let high_watermark = partition.high_watermark();
            let committed = committed
                .iter()
                .find(|(c, _)| *c == tp)
                .map(|(_, c)| c.offset);
            out.push(PartitionLag {
                owner: owners
                    .iter()
                    .find(|(o, _)| *o == tp)
                    .map(|(_, m)| m.clone()),
                committed,
                log_start_offset: partition.log_start_offset(),
                high_watermark,
                lag: committed.map(|c| high_watermark.get().saturating_sub(c.get())),
                topic_partition: tp,
            });
        }
        Ok(out)
    }
}
