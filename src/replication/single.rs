//! The do-nothing replicator: one partition, no copies (seglog without replication).

use std::sync::Arc;

use super::{Acks, Replicator};
use crate::error::{Error, Result};
use crate::format::batch::BatchMeta;
use crate::format::record::Record;
use crate::log::partition::{AppendInfo, Partition};
use crate::offset::Offset;

/// A single copy: the partition is its own leader and only in-sync replica, and its high
/// watermark follows its appends as it always did (every written batch, or under
/// `SyncEachAppend` every synced one).
///
/// [`Acks::All`] is [`Acks::Leader`] here, and needs `min_insync_replicas <= 1`;
/// [`Acks::None`] does not wait for the partition's fsync (under `SyncEachAppend` such a
/// batch becomes readable with the next fsync: another append's, or `flush`).
#[derive(Debug)]
pub struct SingleCopy {
    partition: Arc<Partition>,
    min_insync_replicas: usize,
}

impl SingleCopy {
    /// Replicate `partition` nowhere. Its high watermark must follow its appends (not
    /// [`high_watermark_external`](crate::PartitionConfig::high_watermark_external)), or
    /// nothing it holds ever becomes readable: that is [`Error::InvalidConfig`].
    pub fn new(partition: Arc<Partition>, min_insync_replicas: usize) -> Result<SingleCopy> {
        if partition.config().high_watermark_external {
            return Err(Error::config(
                "high_watermark_external",
                true,
                "a single copy moves its own high watermark",
            ));
        }
        Ok(SingleCopy {
            partition,
            min_insync_replicas,
        })
    }
}

impl Replicator for SingleCopy {
    fn append(&self, records: &[Record], meta: &BatchMeta, acks: Acks) -> Result<AppendInfo> {
        match acks {
            Acks::None => self.partition.append_no_wait(records, meta),
            Acks::All if self.min_insync_replicas > 1 => Err(Error::NotEnoughReplicas {
                in_sync: 1,
                required: self.min_insync_replicas,
            }),
            _ => self.partition.append_with_meta(records, meta),
        }
    }

    fn leader(&self) -> Result<Arc<Partition>> {
        Ok(self.partition.clone())
    }

    fn high_watermark(&self) -> Offset {
        self.partition.high_watermark()
    }

    fn in_sync_replicas(&self) -> usize {
        1
    }

    fn leader_epoch(&self) -> Option<i32> {
        self.partition.leader_epoch()
    }

    fn close(&self) -> Result<()> {
        self.partition.close()
    }
}
