//! The copies of one partition of a topic: a single partition (replication factor 1, the
//! store as it always was) or an in-process [`ReplicaSet`] (replication factor above 1).
//!
//! Where the replicas live: replica 0 is the partition directory of an unreplicated topic,
//! `<store>/<topic>-<p>/`; replica `n >= 1` is `<store>/__replica<n>/<topic>-<p>/` (a
//! directory per replica number, named so it never parses as a partition directory). Each
//! replica root is swept like the data directory at open.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::Result;
use crate::format::batch::BatchMeta;
use crate::format::record::Record;
use crate::log::partition::{AppendInfo, Partition};
use crate::replication::{Acks, ReplicaSet, Replicator};

/// Prefix of the directory of replica `n >= 1` in the data directory: `__replica<n>`.
pub(crate) const REPLICA_ROOT_PREFIX: &str = "__replica";

/// The root of replica `replica`'s partition directories: the data directory for replica 0,
/// `<dir>/__replica<n>` for the others.
pub(crate) fn replica_root(dir: &Path, replica: u32) -> PathBuf {
    if replica == 0 {
        dir.to_owned()
    } else {
        dir.join(format!("{REPLICA_ROOT_PREFIX}{replica}"))
    }
}

/// The copies of one partition.
pub(crate) enum Copies {
    /// One partition, no replicas.
    Single(Arc<Partition>),
    /// A leader and followers in this process, fetcher threads running.
    Replicated(Arc<ReplicaSet>),
}

impl std::fmt::Debug for Copies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Copies::Single(p) => f.debug_tuple("Single").field(&p.dir()).finish(),
            Copies::Replicated(s) => f.debug_tuple("Replicated").field(s).finish(),
        }
    }
}

impl Copies {
    /// The partition readers use: the single one, or the current leader (its reads stop at
    /// the high watermark). [`Error::NotLeader`](crate::Error::NotLeader) while a replica set
    /// has no leader.
    pub(crate) fn leader(&self) -> Result<Arc<Partition>> {
        match self {
            Copies::Single(p) => Ok(p.clone()),
            Copies::Replicated(s) => s.leader(),
        }
    }

    /// Append `records` as one batch, waiting as `acks` says. A single copy: `None` does not
    /// wait for the partition's fsync, `Leader` and `All` are the partition's `append`.
    pub(crate) fn append(&self, records: &[Record], acks: Acks) -> Result<AppendInfo> {
        match self {
            Copies::Single(p) if acks == Acks::None => {
                p.append_no_wait(records, &BatchMeta::default())
            }
            Copies::Single(p) => p.append(records),
            Copies::Replicated(s) => s.append(records, &BatchMeta::default(), acks),
        }
    }

    /// Every live copy, by replica number: what maintenance visits.
    pub(crate) fn live_partitions(&self) -> Vec<Arc<Partition>> {
        match self {
            Copies::Single(p) => vec![p.clone()],
            Copies::Replicated(s) => (0..s.replica_count())
                .filter_map(|i| s.replica(i))
                .collect(),
        }
    }

    /// The replica set, if this partition is replicated.
    pub(crate) fn replica_set(&self) -> Option<&Arc<ReplicaSet>> {
        match self {
            Copies::Single(_) => None,
            Copies::Replicated(s) => Some(s),
        }
    }

    /// Close every copy (a replica set stops and joins its fetcher threads first).
    pub(crate) fn close(&self) -> Result<()> {
        match self {
            Copies::Single(p) => p.close(),
            Copies::Replicated(s) => s.close(),
        }
    }
}
