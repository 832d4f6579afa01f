//! The [`Replicator`] conformance suite.
//!
//! [`replicator_conformance`] checks what every replicator must keep, whatever carries its
//! copies: offsets are dense and returned as written; an [`Acks::All`] append returns only
//! once the high watermark passed it; consumers (the leader's `read`) see exactly the records
//! below the high watermark, unchanged; the high watermark never moves back; a
//! `min_insync_replicas` that cannot be met refuses [`Acks::All`] with
//! [`Error::NotEnoughReplicas`] and writes nothing visible; a closed replicator refuses
//! appends.
//!
//! ```
//! use std::sync::Arc;
//! use seglog::{Partition, PartitionConfig, SingleCopy};
//!
//! # fn main() {
//! let root = tempfile::tempdir().unwrap();
//! let mut n = 0;
//! seglog::testing::replicator_conformance(|min_insync| {
//!     n += 1;
//!     let p = Partition::open(root.path().join(n.to_string()), PartitionConfig::default());
//!     SingleCopy::new(Arc::new(p.unwrap()), min_insync).unwrap()
//! }, 1);
//! # }
//! ```

use crate::error::Error;
use crate::format::batch::BatchMeta;
use crate::format::record::Record;
use crate::offset::Offset;
use crate::replication::{Acks, Replicator};

/// Run every check of the [`Replicator`] contract.
///
/// `new_replicator(min_insync_replicas)` must return a fresh replicator over empty logs,
/// ready to acknowledge (followers fetching), with that `min_insync_replicas`; `replicas` is
/// how many replicas it keeps in sync once running (1 for a single copy). Panics, naming the
/// check, on the first violation.
pub fn replicator_conformance<R: Replicator>(
    mut new_replicator: impl FnMut(usize) -> R,
    replicas: usize,
) {
    offsets_are_dense_and_acks_all_is_committed(&new_replicator(1));
    every_acks_mode_returns_offsets(&new_replicator(1));
    consumers_see_exactly_the_committed_records(&new_replicator(1));
    too_few_in_sync_replicas_refuse_acks_all(&new_replicator(replicas + 1));
    closed_refuses_appends(&new_replicator(1));
}

fn batch(first: u64, n: u64) -> Vec<Record> {
    (first..first + n)
        .map(|i| Record::new(format!("conformance-{i}")).with_key(format!("k{i}")))
        .collect()
}

fn offsets_are_dense_and_acks_all_is_committed<R: Replicator>(r: &R) {
    let mut next = 0;
    let mut hw = r.high_watermark();
    for n in [1u64, 3, 7, 2] {
        let info = r
            .append(&batch(next, n), &BatchMeta::default(), Acks::All)
            .expect("acks=all append");
        assert_eq!(
            (info.base_offset, info.last_offset),
            (Offset(next), Offset(next + n - 1)),
            "offsets_are_dense: the batch got the next offsets"
        );
        let now = r.high_watermark();
        assert!(
            now > info.last_offset,
            "acks_all_is_committed: HW {now} not past {}",
            info.last_offset
        );
        assert!(now >= hw, "hw_monotonic: {hw} then {now}");
        hw = now;
        next += n;
    }
    assert!(
        r.in_sync_replicas() >= 1,
        "in_sync_replicas counts the leader"
    );
    r.close().expect("close");
}

fn every_acks_mode_returns_offsets<R: Replicator>(r: &R) {
    let mut next = 0;
    for acks in [Acks::None, Acks::Leader, Acks::All, Acks::None, Acks::All] {
        let info = r
            .append(&batch(next, 2), &BatchMeta::default(), acks)
            .expect("append");
        assert_eq!(info.base_offset, Offset(next), "acks_{acks:?}: base offset");
        next += 2;
    }
    // The last append was acks=all: everything before it is committed too.
    assert!(
        r.high_watermark() >= Offset(next),
        "acks_all covers earlier appends"
    );
    r.close().expect("close");
}

fn consumers_see_exactly_the_committed_records<R: Replicator>(r: &R) {
    for i in 0..5 {
        r.append(&batch(i * 3, 3), &BatchMeta::default(), Acks::All)
            .expect("append");
    }
    let leader = r.leader().expect("a leader");
    let hw = r.high_watermark();
    assert_eq!(
        leader.high_watermark(),
        hw,
        "consumers_see_committed: the leader's HW is the replicator's"
    );
    let mut next = Offset(0);
    while next < hw {
        let read = leader.read(next, 1 << 20).expect("read below HW");
        for rec in read.records() {
            let rec = rec.expect("record");
            assert_eq!(rec.offset, next, "consumers_see_committed: dense offsets");
            let want = format!("conformance-{}", next.0);
            assert_eq!(
                rec.value.as_deref(),
                Some(want.as_bytes()),
                "consumers_see_committed: the record as appended"
            );
            next = next.next();
        }
    }
    assert!(
        leader.read(hw, 1 << 20).expect("read at HW").is_empty(),
        "consumers_see_committed: nothing at the HW"
    );
    r.close().expect("close");
}

fn too_few_in_sync_replicas_refuse_acks_all<R: Replicator>(r: &R) {
    let hw = r.high_watermark();
    let err = r
        .append(&batch(0, 1), &BatchMeta::default(), Acks::All)
        .expect_err("min_insync_replicas above the replica count refuses acks=all");
    assert!(
        matches!(err, Error::NotEnoughReplicas { .. }),
        "not_enough_replicas: {err:?}"
    );
    assert_eq!(
        r.high_watermark(),
        hw,
        "not_enough_replicas: nothing committed"
    );
    // Acks that do not need the ISR still work.
    r.append(&batch(0, 1), &BatchMeta::default(), Acks::Leader)
        .expect("acks=leader does not need min_insync_replicas");
    r.close().expect("close");
}

fn closed_refuses_appends<R: Replicator>(r: &R) {
    r.append(&batch(0, 1), &BatchMeta::default(), Acks::All)
        .expect("append");
    r.close().expect("close");
    assert!(
        r.append(&batch(1, 1), &BatchMeta::default(), Acks::Leader)
            .is_err(),
        "closed_refuses_appends"
    );
}
