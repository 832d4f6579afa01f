//! Layer 4, replication: the seam between a partition and the copies of it kept elsewhere.
//!
//! A [`Replicator`] takes a partition's appends and decides when they count as committed: the
//! high watermark (HW) is the replicator's, and consumers read below it. Two implementations
//! ship: [`SingleCopy`] (today's single partition, no replicas) and [`ReplicaSet`] (a leader and
//! followers in one process, each a partition directory of its own, with Kafka's acks, in-sync
//! replica set, high watermark and leader epochs). A network transport or a consensus engine
//! sits behind the same trait.
//!
//! # Mapping to Kafka
//!
//! | Kafka | seglog |
//! |-------|--------|
//! | `acks=0` / `1` / `all` | [`Acks::None`] / [`Acks::Leader`] / [`Acks::All`] |
//! | `min.insync.replicas` | [`ReplicationConfig::min_insync_replicas`] |
//! | `replica.lag.time.max.ms` | [`ReplicationConfig::replica_lag_ms`] |
//! | `unclean.leader.election.enable` | [`ReplicationConfig::unclean_leader_election`] |
//! | `NOT_ENOUGH_REPLICAS(_AFTER_APPEND)` | [`Error::NotEnoughReplicas`](crate::Error::NotEnoughReplicas) |
//! | `NOT_LEADER_OR_FOLLOWER` | [`Error::NotLeader`](crate::Error::NotLeader) |

mod set;
mod single;

use std::sync::Arc;
use std::time::Duration;

use crate::error::Result;
use crate::format::batch::BatchMeta;
use crate::format::record::Record;
use crate::log::partition::{AppendInfo, Partition};
use crate::offset::Offset;

pub use set::{PendingAppend, ReplicaSet, ReplicaSpec, UncleanElection};
pub use single::SingleCopy;

/// What an append waits for before it returns (Kafka's producer `acks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Acks {
    /// Return as soon as the leader has written the batch, without waiting for its fsync or
    /// for any follower. The batch may be lost by any failure.
    None,
    /// Return after the leader's append under the leader partition's durability policy. The
    /// batch may be lost if the leader fails before a follower copies it.
    Leader,
    /// Return after every in-sync replica has the batch (the high watermark passed its last
    /// offset) while at least `min_insync_replicas` are in sync. The batch is then committed:
    /// it survives as long as one in-sync replica that holds it does.
    #[default]
    All,
}

/// Settings of a replicated partition.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplicationConfig {
    /// An [`Acks::All`] append needs at least this many in-sync replicas (the leader
    /// included), and fails if fewer remain while it waits. Default 1; at least 1.
    pub min_insync_replicas: usize,
    /// A follower that has not caught up to the leader's log end for this long leaves the
    /// in-sync set; it rejoins once it holds everything below the high watermark. Default
    /// 30 000 (Kafka's).
    pub replica_lag_ms: u64,
    /// Most bytes a follower fetches at once. Default 1 MiB.
    pub fetch_bytes_max: usize,
    /// When no in-sync replica is alive, elect the most advanced live one anyway, losing
    /// committed records it lacks (reported by [`ReplicaSet::unclean_elections`]). Default
    /// `false`: the partition stays without a leader until an in-sync replica returns.
    pub unclean_leader_election: bool,
    /// How long a follower thread waits for new data before fetching again. Default 50 ms.
    pub fetch_wait: Duration,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        ReplicationConfig {
            min_insync_replicas: 1,
            replica_lag_ms: 30_000,
            fetch_bytes_max: 1 << 20,
            unclean_leader_election: false,
            fetch_wait: Duration::from_millis(50),
        }
    }
}

impl ReplicationConfig {
    /// Sets `min_insync_replicas`.
    pub fn with_min_insync_replicas(mut self, v: usize) -> Self {
        self.min_insync_replicas = v;
        self
    }
    /// Sets `replica_lag_ms`.
    pub fn with_replica_lag_ms(mut self, v: u64) -> Self {
        self.replica_lag_ms = v;
        self
    }
    /// Sets `fetch_bytes_max`.
    pub fn with_fetch_bytes_max(mut self, v: usize) -> Self {
        self.fetch_bytes_max = v;
        self
    }
    /// Sets `unclean_leader_election`.
    pub fn with_unclean_leader_election(mut self, v: bool) -> Self {
        self.unclean_leader_election = v;
        self
    }
    /// Sets `fetch_wait`.
    pub fn with_fetch_wait(mut self, v: Duration) -> Self {
        self.fetch_wait = v;
        self
    }

    /// Check every field; the first bad one is [`Error::InvalidConfig`](crate::Error::InvalidConfig).
    pub fn validate(&self) -> Result<()> {
        use crate::error::Error;
        if self.min_insync_replicas == 0 {
            return Err(Error::config(
                "min_insync_replicas",
                self.min_insync_replicas,
                "at least 1",
            ));
        }
        if self.fetch_bytes_max == 0 {
            return Err(Error::config("fetch_bytes_max", 0, "at least 1"));
        }
        Ok(())
    }
}

/// The seam between a partition and its copies: appends go through it, and it owns the high
/// watermark (what is committed).
///
/// Why a trait: replication is a policy over storage. The partition offers the hooks (a
/// follower's [`append_batches`](Partition::append_batches),
/// [`truncate_to`](Partition::truncate_to), leader epochs, an external high watermark); a
/// replicator decides who copies what and when a record counts as committed. Implementations
/// may keep the copies in this process ([`ReplicaSet`]), on other machines, or nowhere
/// ([`SingleCopy`]).
///
/// # Contract
///
/// Offsets are those of the leader's log; "the HW" is
/// [`high_watermark`](Replicator::high_watermark). An implementation **must**:
///
/// - keep *visible* and *durable* apart: a record is visible to consumers (readable through
///   [`leader`](Replicator::leader)'s `read`) only below the HW, and the HW is never above the
///   end of the copy counted durable on any replica that counts toward `acks=all` (its fsynced
///   end, or its log end under a policy that never fsyncs, where copies stand in for fsync as
///   in Kafka);
/// - return `Ok` from [`append`](Replicator::append) under [`Acks::All`] only once the HW has
///   passed the batch's last offset with at least `min_insync_replicas` replicas in sync, and
///   keep every such record, unchanged, at its offset while one in-sync replica that holds it
///   survives (a committed record is never lost nor rewritten);
/// - refuse an [`Acks::All`] append with
///   [`Error::NotEnoughReplicas`](crate::Error::NotEnoughReplicas) before writing it when fewer
///   than `min_insync_replicas` replicas are in sync, and fail one that is waiting with the
///   same error if the set shrinks below that (the batch may still become committed later:
///   the error means "not known committed", as Kafka's `NOT_ENOUGH_REPLICAS_AFTER_APPEND`);
/// - fail a waiting append with [`Error::NotLeader`](crate::Error::NotLeader) when the leader
///   changes before it is committed (its offsets may now hold other records);
/// - move the HW forward only, while the leader does not change by an unclean election;
/// - return the offsets of the batch in `Ok` (`[base_offset, last_offset]`, inclusive).
///
/// An implementation **may**:
///
/// - acknowledge [`Acks::None`] and [`Acks::Leader`] appends that a failure later loses (they
///   are not committed until the HW passes them);
/// - let the HW lag behind what is durable everywhere, and move it in steps;
/// - expose records at or above the HW to followers (never to consumers);
/// - refuse any append with [`Error::NotLeader`](crate::Error::NotLeader) while it has no
///   leader.
///
/// `testing::replicator_conformance` (feature `testing`) checks an implementation against
/// this contract.
pub trait Replicator: Send + Sync {
    /// Append `records` as one batch through the leader and wait as `acks` says.
    fn append(&self, records: &[Record], meta: &BatchMeta, acks: Acks) -> Result<AppendInfo>;

    /// The leader's partition: readers use it (its `read` stops at the HW).
    /// [`Error::NotLeader`](crate::Error::NotLeader) while there is no leader.
    fn leader(&self) -> Result<Arc<Partition>>;

    /// One past the last committed offset.
    fn high_watermark(&self) -> Offset;

    /// How many replicas are in sync, the leader included.
    fn in_sync_replicas(&self) -> usize;

    /// The current leader epoch, `None` while it has none.
    fn leader_epoch(&self) -> Option<i32>;

    /// Stop replicating and close every local copy; later calls fail.
    fn close(&self) -> Result<()>;
}

/// A shared replicator is a replicator (a [`ReplicaSet`] is handed out as an `Arc`).
impl<R: Replicator + ?Sized> Replicator for Arc<R> {
    fn append(&self, records: &[Record], meta: &BatchMeta, acks: Acks) -> Result<AppendInfo> {
        (**self).append(records, meta, acks)
    }
    fn leader(&self) -> Result<Arc<Partition>> {
        (**self).leader()
    }
    fn high_watermark(&self) -> Offset {
        (**self).high_watermark()
    }
    fn in_sync_replicas(&self) -> usize {
        (**self).in_sync_replicas()
    }
    fn leader_epoch(&self) -> Option<i32> {
        (**self).leader_epoch()
    }
    fn close(&self) -> Result<()> {
        (**self).close()
    }
}
