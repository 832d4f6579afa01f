//! The partition's storage hooks for replication: a follower's append of leader-made batches
//! (checked, contiguous, epochs non-decreasing), public `truncate_to`, the leader epoch cache
//! and its Kafka-format checkpoint (rebuilt from batch headers when missing, consistent after
//! a power loss), an externally set high watermark, and durable-end notifications. Each test
//! drives real partitions (on disk, or on the simulated file system for power loss) and
//! checks what a reader or a reopened partition sees.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use seglog::testing::SimFs;
use seglog::{
    Durability, EpochEntry, Error, Offset, Partition, PartitionConfig, Record,
    LEADER_EPOCH_CHECKPOINT_FILE,
};

fn config(durability: Durability) -> PartitionConfig {
    PartitionConfig::default()
        .with_segment_bytes(seglog::SEGMENT_BYTES_MIN)
        .with_segment_ms(None)
        .with_retention_ms(None)
        .with_durability(durability)
}

fn replica_config() -> PartitionConfig {
    config(Durability::SyncEachAppend).with_high_watermark_external(true)
}

fn records(first: u64, n: u64) -> Vec<Record> {
    (first..first + n)
        .map(|o| Record::new(format!("value-{o}")))
        .collect()
}

/// Append `n` records as one batch at the log end.
fn append(p: &Partition, n: u64) {
    let first = p.log_end_offset().0;
    p.append(&records(first, n)).unwrap();
}

/// The encoded batches from `from` to the log end, back to back.
fn batches_from(p: &Partition, from: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut next = Offset(from);
    while next < p.log_end_offset() {
        let read = p.read_uncommitted(next, 1 << 20).unwrap();
        for b in read.batches() {
            out.extend_from_slice(b.as_bytes());
        }
        next = read.next_offset();
    }
    out
}

/// Each batch's (base offset, epoch) from `from` to the log end.
fn epochs_of_batches(p: &Partition) -> Vec<(u64, i32)> {
    let mut out = Vec::new();
    let mut next = p.log_start_offset();
    while next < p.log_end_offset() {
        let read = p.read_uncommitted(next, 1 << 20).unwrap();
        for b in read.batches() {
            out.push((b.base_offset().0, b.header().partition_leader_epoch));
        }
        next = read.next_offset();
    }
    out
}

/// The epoch cache a log's batch headers imply (Kafka's rules: first batch of each epoch).
fn expected_cache(p: &Partition) -> Vec<(i32, u64)> {
    let mut out: Vec<(i32, u64)> = Vec::new();
    for (base, epoch) in epochs_of_batches(p) {
        if epoch >= 0 && out.last().is_none_or(|&(e, _)| e < epoch) {
            out.push((epoch, base));
        }
    }
    out
}

fn pairs(entries: &[EpochEntry]) -> Vec<(i32, u64)> {
    entries.iter().map(|e| (e.epoch, e.start_offset)).collect()
}

fn values(p: &Partition, upto_log_end: bool) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut next = p.log_start_offset();
    let end = if upto_log_end {
        p.log_end_offset()
    } else {
        p.high_watermark()
    };
    while next < end {
        let read = if upto_log_end {
            p.read_uncommitted(next, 1 << 20).unwrap()
        } else {
            p.read(next, 1 << 20).unwrap()
        };
        for r in read.records() {
            let r = r.unwrap();
            out.push((r.offset.0, r.value.unwrap().to_vec()));
        }
        next = read.next_offset();
    }
    out
}

#[test]
fn a_follower_stores_the_leaders_batches_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let leader = Partition::open(dir.path().join("l"), config(Durability::NoSync)).unwrap();
    let follower = Partition::open(dir.path().join("f"), config(Durability::NoSync)).unwrap();
    leader.assign_leader_epoch(3).unwrap();
    for n in [1, 4, 2, 7] {
        append(&leader, n);
    }
    leader.assign_leader_epoch(5).unwrap();
    append(&leader, 3);
    let bytes = batches_from(&leader, 0);
    let info = follower.append_batches(&bytes).unwrap().unwrap();
    assert_eq!(
        (info.base_offset, info.last_offset),
        (Offset(0), Offset(16))
    );
    assert_eq!(batches_from(&follower, 0), bytes);
    assert_eq!(follower.log_end_offset(), Offset(17));
    assert_eq!(pairs(&follower.leader_epochs()), [(3, 0), (5, 14)]);
    assert_eq!(follower.leader_epochs(), leader.leader_epochs());
    assert_eq!(values(&follower, false), values(&leader, false));
    // Empty input is nothing to do.
    assert_eq!(follower.append_batches(&[]).unwrap(), None);
    // The next fetch continues at the log end.
    append(&leader, 2);
    follower
        .append_batches(&batches_from(&leader, 17))
        .unwrap()
        .unwrap();
    assert_eq!(batches_from(&follower, 0), batches_from(&leader, 0));
}

#[test]
fn a_gap_or_an_overlap_is_refused_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let leader = Partition::open(dir.path().join("l"), config(Durability::NoSync)).unwrap();
    let follower = Partition::open(dir.path().join("f"), config(Durability::NoSync)).unwrap();
    for n in [2, 3, 4] {
        append(&leader, n);
    }
    follower
        .append_batches(&batches_from(&leader, 0)[..])
        .unwrap();
    let before = batches_from(&follower, 0);
    // Overlap: the leader's batches from 2 again.
    let err = follower
        .append_batches(&batches_from(&leader, 2))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::NonContiguousAppend {
                expected: Offset(9),
                found: Offset(2)
            }
        ),
        "{err:?}"
    );
    // Gap: a batch starting past the log end.
    append(&leader, 1);
    append(&leader, 1);
    let err = follower
        .append_batches(&batches_from(&leader, 10))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::OffsetGapUnsupported {
                expected: Offset(9),
                found: Offset(10),
            }
        ),
        "{err:?}"
    );
    // A gap between two batches of the input: nothing of it is written.
    let first = batches_from(&leader, 9);
    let one = first.len() / 2;
    let mut gapped = first[..one].to_vec();
    gapped.extend_from_slice(&first[..one]);
    let err = follower.append_batches(&gapped).unwrap_err();
    assert!(matches!(err, Error::NonContiguousAppend { .. }), "{err:?}");
    assert_eq!(batches_from(&follower, 0), before);
    // The failures did not fail the partition.
    follower.append_batches(&first).unwrap();
    assert_eq!(follower.log_end_offset(), Offset(11));
}

#[test]
fn a_damaged_or_oversized_batch_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let leader = Partition::open(dir.path().join("l"), config(Durability::NoSync)).unwrap();
    let follower = Partition::open(
        dir.path().join("f"),
        config(Durability::NoSync)
            .with_record_bytes_max(100)
            .with_batch_bytes_max(200),
    )
    .unwrap();
    append(&leader, 2);
    append(&leader, 2);
    let good = batches_from(&leader, 0);
    for at in [16, 20, 30, 70, good.len() - 1] {
        let mut bad = good.clone();
        bad[at] ^= 0x40;
        let err = follower.append_batches(&bad).unwrap_err();
        assert!(
            matches!(err, Error::InvalidBatch { .. }),
            "byte {at}: {err:?}"
        );
    }
    let err = follower
        .append_batches(&good[..good.len() - 3])
        .unwrap_err();
    assert!(matches!(err, Error::InvalidBatch { .. }), "{err:?}");
    assert_eq!(follower.log_end_offset(), Offset(0));
    append(&leader, 40);
    let big = batches_from(&leader, 4);
    let err = follower
        .append_batches(&[&good[..], &big[..]].concat())
        .unwrap_err();
    assert!(matches!(err, Error::BatchTooLarge { .. }), "{err:?}");
    assert_eq!(follower.log_end_offset(), Offset(0));
    follower.append_batches(&good).unwrap();
    assert_eq!(follower.log_end_offset(), Offset(4));
}

#[test]
fn epochs_may_not_go_back() {
    let dir = tempfile::tempdir().unwrap();
    let old = Partition::open(dir.path().join("o"), config(Durability::NoSync)).unwrap();
    let new = Partition::open(dir.path().join("n"), config(Durability::NoSync)).unwrap();
    let follower = Partition::open(dir.path().join("f"), config(Durability::NoSync)).unwrap();
    new.assign_leader_epoch(4).unwrap();
    append(&new, 2);
    old.assign_leader_epoch(2).unwrap();
    append(&old, 2);
    append(&old, 2);
    follower.append_batches(&batches_from(&new, 0)).unwrap();
    // A stale leader's batch at the right offset but an older epoch.
    let err = follower.append_batches(&batches_from(&old, 2)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::LeaderEpochRegression {
                epoch: 2,
                latest: 4
            }
        ),
        "{err:?}"
    );
    // Decreasing inside the input.
    let mixed = Partition::open(dir.path().join("m"), config(Durability::NoSync)).unwrap();
    mixed.assign_leader_epoch(7).unwrap();
    append(&mixed, 2);
    mixed.assign_leader_epoch(9).unwrap();
    append(&mixed, 2);
    let b = batches_from(&mixed, 0);
    let first_len = b.len() / 2;
    let swapped = [&b[first_len..], &b[..first_len]].concat();
    let lone = Partition::open(dir.path().join("x"), config(Durability::NoSync)).unwrap();
    assert!(lone.append_batches(&swapped).is_err());
    // assign_leader_epoch refuses to go back as well.
    let err = follower.assign_leader_epoch(3).unwrap_err();
    assert!(
        matches!(err, Error::LeaderEpochRegression { .. }),
        "{err:?}"
    );
    follower.assign_leader_epoch(4).unwrap();
    assert_eq!(pairs(&follower.leader_epochs()), [(4, 0)]);
}

#[test]
fn leader_appends_are_stamped_and_the_checkpoint_is_kafkas_format() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p");
    let p = Partition::open(&path, config(Durability::SyncEachAppend)).unwrap();
    assert_eq!(p.leader_epoch(), None);
    append(&p, 2);
    p.assign_leader_epoch(0).unwrap();
    append(&p, 3);
    p.assign_leader_epoch(3).unwrap();
    // Epoch 3 starts at the log end even before it writes.
    assert_eq!(pairs(&p.leader_epochs()), [(0, 2), (3, 5)]);
    append(&p, 1);
    let text = std::fs::read_to_string(path.join(LEADER_EPOCH_CHECKPOINT_FILE)).unwrap();
    assert_eq!(text, "0\n2\n0 2\n3 5\n");
    assert_eq!(
        epochs_of_batches(&p),
        [(0, -1), (2, 0), (5, 3)],
        "batches carry the epoch of their leader"
    );
    // OffsetsForLeaderEpoch on the partition.
    assert_eq!(p.end_offset_for_epoch(3), Some((3, Offset(6))));
    assert_eq!(p.end_offset_for_epoch(2), Some((0, Offset(5))));
    assert_eq!(p.end_offset_for_epoch(0), Some((0, Offset(5))));
    assert_eq!(p.end_offset_for_epoch(4), None);
    assert_eq!(p.end_offset_for_epoch(-1), None);
    p.close().unwrap();
    drop(p);
    let p = Partition::open(&path, config(Durability::SyncEachAppend)).unwrap();
    assert_eq!(pairs(&p.leader_epochs()), [(0, 2), (3, 5)]);
    // Leading is not persisted: unstamped until the epoch is assigned again.
    append(&p, 1);
    p.assign_leader_epoch(3).unwrap();
    append(&p, 1);
    assert_eq!(epochs_of_batches(&p)[3..], [(6, -1), (7, 3)]);
    assert_eq!(pairs(&p.leader_epochs()), [(0, 2), (3, 5)]);
}

#[test]
fn a_missing_or_damaged_checkpoint_is_rebuilt_from_batch_headers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p");
    let build = || {
        let p = Partition::open(&path, config(Durability::NoSync)).unwrap();
        for epoch in [1, 2, 6] {
            p.assign_leader_epoch(epoch).unwrap();
            for _ in 0..20 {
                append(&p, 3);
            }
        }
        assert!(p.segment_count() > 3);
        p.close().unwrap();
    };
    build();
    let file = path.join(LEADER_EPOCH_CHECKPOINT_FILE);
    let want = "0\n3\n1 0\n2 60\n6 120\n";
    assert_eq!(std::fs::read_to_string(&file).unwrap(), want);
    for damage in [None, Some(&b"0\n3\n1 0\n"[..]), Some(b"garbage")] {
        match damage {
            None => std::fs::remove_file(&file).unwrap(),
            Some(bytes) => std::fs::write(&file, bytes).unwrap(),
        }
        let p = Partition::open(&path, config(Durability::NoSync)).unwrap();
        assert_eq!(pairs(&p.leader_epochs()), [(1, 0), (2, 60), (6, 120)]);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), want, "rewritten");
        p.close().unwrap();
    }
}

#[test]
fn truncation_drops_later_epochs_durably() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p");
    let p = Partition::open(&path, config(Durability::SyncEachAppend)).unwrap();
    for epoch in [1, 2, 3] {
        p.assign_leader_epoch(epoch).unwrap();
        for _ in 0..10 {
            append(&p, 2);
        }
    }
    assert_eq!(pairs(&p.leader_epochs()), [(1, 0), (2, 20), (3, 40)]);
    // Inside epoch 2: epoch 3 goes, epoch 2 stays.
    assert_eq!(p.truncate_to(Offset(31)).unwrap(), Offset(30));
    assert_eq!(pairs(&p.leader_epochs()), [(1, 0), (2, 20)]);
    let file = path.join(LEADER_EPOCH_CHECKPOINT_FILE);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "0\n2\n1 0\n2 20\n");
    // Exactly at epoch 2's start.
    assert_eq!(p.truncate_to(Offset(20)).unwrap(), Offset(20));
    assert_eq!(pairs(&p.leader_epochs()), [(1, 0)]);
    p.simulate_crash();
    let p = Partition::open(&path, config(Durability::SyncEachAppend)).unwrap();
    assert_eq!(p.log_end_offset(), Offset(20));
    assert_eq!(pairs(&p.leader_epochs()), [(1, 0)]);
    // A follower may now take epoch 2 from a new leader at its end.
    p.assign_leader_epoch(4).unwrap();
    append(&p, 1);
    assert_eq!(pairs(&p.leader_epochs()), [(1, 0), (4, 20)]);
}

#[test]
fn deleting_records_moves_the_first_epoch_start() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), config(Durability::NoSync)).unwrap();
    for epoch in [1, 2] {
        p.assign_leader_epoch(epoch).unwrap();
        for _ in 0..5 {
            append(&p, 2);
        }
    }
    p.delete_records_before(Offset(13)).unwrap();
    assert_eq!(pairs(&p.leader_epochs()), [(2, 13)]);
    // Kafka's answer for an epoch below the first known: its start.
    assert_eq!(p.end_offset_for_epoch(1), Some((1, Offset(13))));
}

#[test]
fn an_external_high_watermark_hides_records_until_set() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p");
    let p = Partition::open(&path, replica_config()).unwrap();
    append(&p, 3);
    append(&p, 2);
    append(&p, 4);
    assert_eq!(p.log_end_offset(), Offset(9));
    assert_eq!(p.durable_end_offset(), Offset(9));
    assert_eq!(p.high_watermark(), Offset(0));
    assert!(p.read(Offset(0), 1 << 20).unwrap().is_empty());
    assert!(matches!(
        p.read(Offset(1), 1 << 20),
        Err(Error::OffsetOutOfRange { .. })
    ));
    assert_eq!(
        values(&p, true).len(),
        9,
        "a follower fetch sees the log end"
    );
    assert!(matches!(
        p.set_high_watermark(Offset(4)),
        Err(Error::InvalidOffset { .. })
    ));
    assert!(matches!(
        p.set_high_watermark(Offset(10)),
        Err(Error::InvalidOffset { .. })
    ));
    assert_eq!(p.set_high_watermark(Offset(5)).unwrap(), Offset(5));
    assert_eq!(values(&p, false).len(), 5);
    // It never goes back.
    assert_eq!(p.set_high_watermark(Offset(3)).unwrap(), Offset(5));
    p.checkpoint_high_watermark().unwrap();
    assert_eq!(p.set_high_watermark(Offset(9)).unwrap(), Offset(9));
    // A crash keeps the last checkpoint; a close writes the current one.
    p.simulate_crash();
    let p = Partition::open(&path, replica_config()).unwrap();
    assert_eq!(p.high_watermark(), Offset(5));
    assert_eq!(values(&p, false).len(), 5);
    p.set_high_watermark(Offset(9)).unwrap();
    p.close().unwrap();
    drop(p);
    let p = Partition::open(&path, replica_config()).unwrap();
    assert_eq!(p.high_watermark(), Offset(9));
    // Truncation clamps it.
    p.truncate_to(Offset(5)).unwrap();
    assert_eq!(p.high_watermark(), Offset(5));
    // Without the setting, setting it is refused.
    let q = Partition::open(dir.path().join("q"), config(Durability::NoSync)).unwrap();
    assert!(matches!(
        q.set_high_watermark(Offset(0)),
        Err(Error::InvalidOffset { .. })
    ));
}

#[test]
fn the_high_watermark_is_found_in_older_segments_too() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(
        dir.path(),
        config(Durability::NoSync).with_high_watermark_external(true),
    )
    .unwrap();
    for _ in 0..5000 {
        append(&p, 1);
    }
    assert!(p.segment_count() > 10);
    // Far behind the log end, beyond the recent batch ends kept in memory.
    assert_eq!(p.set_high_watermark(Offset(100)).unwrap(), Offset(100));
    assert_eq!(values(&p, false).len(), 100);
    let base = p.segment_base_offsets()[20];
    assert!(base.0 > 100);
    assert_eq!(p.set_high_watermark(base).unwrap(), base);
    assert_eq!(values(&p, false).len() as u64, base.0);
    assert_eq!(p.set_high_watermark(Offset(4321)).unwrap(), Offset(4321));
    assert_eq!(values(&p, false).last().unwrap().0, 4320);
}

#[test]
fn durable_end_notifications_follow_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), replica_config()).unwrap();
    let seen = Arc::new(AtomicU64::new(0));
    let s = seen.clone();
    p.set_durable_listener(Some(Arc::new(move |end: Offset| {
        s.store(end.0, Ordering::SeqCst);
    })));
    append(&p, 3);
    assert_eq!(seen.load(Ordering::SeqCst), 3);
    append(&p, 2);
    assert_eq!(seen.load(Ordering::SeqCst), 5);
    p.set_durable_listener(None);
    append(&p, 1);
    assert_eq!(seen.load(Ordering::SeqCst), 5);

    let q = Partition::open(
        dir.path().join("q"),
        config(Durability::NoSync).with_high_watermark_external(true),
    )
    .unwrap();
    let s = seen.clone();
    q.set_durable_listener(Some(Arc::new(move |end: Offset| {
        s.store(end.0 + 100, Ordering::SeqCst);
    })));
    append(&q, 4);
    assert_eq!(seen.load(Ordering::SeqCst), 5, "NoSync does not fsync");
    assert_eq!(q.durable_end_offset(), Offset(0));
    q.flush().unwrap();
    assert_eq!(seen.load(Ordering::SeqCst), 104);
    assert_eq!(q.durable_end_offset(), Offset(4));
}

/// After a power loss at any point of a run with leader changes, follower appends and
/// truncations, the reopened partition's epoch cache is exactly what its batches imply.
#[test]
fn the_epoch_cache_matches_the_log_after_power_loss() {
    for seed in 0..40u64 {
        let sim = Arc::new(SimFs::new());
        let cfg = config(if seed % 2 == 0 {
            Durability::SyncEachAppend
        } else {
            Durability::NoSync
        })
        .with_high_watermark_external(true)
        .with_file_system(sim.clone());
        let p = Partition::open("/p", cfg.clone()).unwrap();
        let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut epoch = 0;
        let steps = 20 + next() % 60;
        for _ in 0..steps {
            match next() % 10 {
                0 | 1 => {
                    epoch += 1 + (next() % 3) as i32;
                    p.assign_leader_epoch(epoch).unwrap();
                }
                2 => {
                    let end = p.log_end_offset().0;
                    if end > 0 {
                        p.truncate_to(Offset(next() % end)).unwrap();
                    }
                }
                3 => p.flush().unwrap(),
                _ => append(&p, 1 + next() % 5),
            }
        }
        p.simulate_crash();
        if seed % 3 == 0 {
            sim.power_loss_torn(seed);
        } else {
            sim.power_loss();
        }
        let p = Partition::open("/p", cfg).unwrap();
        assert_eq!(
            pairs(&p.leader_epochs())
                .into_iter()
                .filter(|&(_, o)| o < p.log_end_offset().0)
                .collect::<Vec<_>>(),
            expected_cache(&p),
            "seed {seed}"
        );
        assert!(p.high_watermark() <= p.log_end_offset());
    }
}

/// Regression (found by the 10,000-schedule run, seeds 2 and 1000002): a follower fetch
/// (`read_uncommitted`, bounded by the log end) of the segment holding the high watermark,
/// when the log end had rolled into a later segment, required that segment's walk to end at
/// the log end offset instead of the segment's end, and failed with `Corrupt { BadOffset }`.
#[test]
fn a_follower_fetch_reads_the_high_watermarks_segment_when_the_log_end_is_past_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), replica_config().with_preallocate_bytes(0)).unwrap();
    while p.segment_count() < 2 {
        append(&p, 1);
    }
    // The batch that rolled starts the second segment.
    let second_base = p.log_end_offset().0 - 1;
    // The high watermark stays in the first segment, below its end.
    assert_eq!(p.set_high_watermark(Offset(1)).unwrap(), Offset(1));
    let read = p.read_uncommitted(Offset(0), 1 << 20).unwrap();
    let last = read.batches().last().unwrap().header().last_offset();
    assert_eq!(last + 1, second_base, "the whole first segment is read");
    assert!(!batches_from(&p, 0).is_empty());
}

/// A follower below its leader's log start restarts its log empty there
/// (`truncate_fully_and_start_at`): every bound and checkpoint moves to the new start, the
/// epoch cache empties, and a power loss at every file operation of the restart leaves either
/// the old log or the new empty one, never a mix.
#[test]
fn a_full_truncation_restarts_the_log_empty_at_any_power_loss() {
    let build = |sim: &Arc<SimFs>| {
        let cfg = replica_config().with_file_system(sim.clone());
        let p = Partition::open("/p", cfg.clone()).unwrap();
        for epoch in [1, 2] {
            p.assign_leader_epoch(epoch).unwrap();
            for _ in 0..20 {
                append(&p, 3);
            }
        }
        p.set_high_watermark(Offset(120)).unwrap();
        p.checkpoint_high_watermark().unwrap();
        (p, cfg)
    };
    let old_values = {
        let sim = Arc::new(SimFs::new());
        let (p, _) = build(&sim);
        assert!(p.segment_count() > 2);
        assert!(matches!(
            p.truncate_fully_and_start_at(Offset(119)),
            Err(Error::InvalidOffset { .. })
        ));
        values(&p, true)
    };
    let mut k = 1;
    loop {
        let sim = Arc::new(SimFs::new());
        let (p, cfg) = build(&sim);
        sim.cut_power_at(k);
        let done = p.truncate_fully_and_start_at(Offset(500));
        let cut = sim.power_is_cut();
        if done.is_ok() && !cut {
            // The restart needed fewer operations than `k`: move the cut out of the way.
            sim.cut_power_at(1 << 40);
            assert_eq!(p.log_start_offset(), Offset(500));
            assert_eq!(p.log_end_offset(), Offset(500));
            assert_eq!(p.high_watermark(), Offset(500));
            assert!(p.leader_epochs().is_empty());
            assert!(p.read_uncommitted(Offset(500), 1 << 20).unwrap().is_empty());
            p.assign_leader_epoch(3).unwrap();
            append(&p, 2);
            p.set_high_watermark(Offset(502)).unwrap();
            assert_eq!(pairs(&p.leader_epochs()), [(3, 500)]);
            assert_eq!(values(&p, false).len(), 2);
        }
        p.simulate_crash();
        sim.power_loss();
        let p = Partition::open("/p", cfg).unwrap();
        if p.log_start_offset() == Offset(0) {
            assert!(done.is_err() || cut, "k {k}: the restart was lost");
            assert_eq!(values(&p, true), old_values, "k {k}");
        } else {
            assert_eq!(p.log_start_offset(), Offset(500), "k {k}");
            assert!(values(&p, true).iter().all(|(o, _)| *o >= 500), "k {k}");
            assert!(p.high_watermark() >= Offset(500), "k {k}");
            assert!(
                p.leader_epochs().iter().all(|e| e.start_offset >= 500),
                "k {k}: {:?}",
                p.leader_epochs()
            );
            if done.is_ok() && !cut {
                assert_eq!(p.log_end_offset(), Offset(502), "k {k}");
                // The restart checkpointed the high watermark at the new start; no later
                // checkpoint was taken.
                assert_eq!(p.high_watermark(), Offset(500), "k {k}");
                break;
            }
        }
        k += 1;
    }
}

/// The value of a seglog checkpoint file (4-byte header, then the offset little-endian).
fn checkpoint_value(path: &std::path::Path) -> u64 {
    let bytes = std::fs::read(path).unwrap();
    u64::from_le_bytes(bytes[4..12].try_into().unwrap())
}

/// Regression: `truncate_to` clamped the high watermark in memory but left its checkpoint
/// above the cut, so after a crash the records written after the truncation (never
/// acknowledged) came back as committed.
#[test]
fn truncation_lowers_the_high_watermark_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), replica_config()).unwrap();
    for _ in 0..10 {
        append(&p, 1);
    }
    p.set_high_watermark(Offset(10)).unwrap();
    p.checkpoint_high_watermark().unwrap();
    assert_eq!(p.truncate_to(Offset(5)).unwrap(), Offset(5));
    assert_eq!(p.high_watermark(), Offset(5));
    for _ in 0..5 {
        append(&p, 1);
    }
    p.simulate_crash();
    let p = Partition::open(dir.path(), replica_config()).unwrap();
    assert_eq!(p.log_end_offset(), Offset(10));
    assert_eq!(p.high_watermark(), Offset(5));
}

/// Regression: `truncate_to` left the cleaner checkpoint above the cut, so records written
/// after the truncation were taken for already compacted.
#[test]
fn truncation_lowers_the_cleaner_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let cfg =
        config(Durability::SyncEachAppend).with_cleanup_policy(seglog::CleanupPolicy::Compact);
    let p = Partition::open(dir.path(), cfg).unwrap();
    // Distinct keys: compaction keeps every record (no gaps) but still moves its checkpoint.
    for i in 0..40u64 {
        p.append(&[Record::new(format!("value-{i:060}")).with_key(format!("k{i}"))])
            .unwrap();
    }
    p.roll().unwrap();
    let cleaned = p.compact_at(i64::MAX / 2, true).unwrap().cleaned_up_to;
    let file = dir.path().join("cleaner-offset.checkpoint");
    assert_eq!(checkpoint_value(&file), cleaned.0);
    assert!(cleaned > Offset(20), "{cleaned:?}");
    assert_eq!(p.truncate_to(Offset(20)).unwrap(), Offset(20));
    assert_eq!(checkpoint_value(&file), 20);
}

/// Regression: retention wrote the epoch checkpoint between taking segments out of the list
/// and deleting their files, and returned its error without failing the partition: the
/// segments stayed on disk, unlisted, and a clean close would vouch for them. A fault at any
/// operation of retention now leaves either every unlisted segment deleted or the partition
/// refusing appends until reopened.
#[test]
fn retention_failing_at_any_operation_never_leaves_unlisted_segments_behind() {
    use seglog::testing::SimError;
    let mut k = 1;
    loop {
        let sim = Arc::new(SimFs::new());
        let cfg = config(Durability::SyncEachAppend)
            .with_retention_ms(Some(1))
            .with_file_system(sim.clone());
        let p = Partition::open("/p", cfg).unwrap();
        p.assign_leader_epoch(1).unwrap();
        for _ in 0..30 {
            append(&p, 3);
        }
        assert!(p.segment_count() > 2);
        let before = p.segment_base_offsets();
        sim.fail_nth(k, None, SimError::Eio);
        let result = p.apply_retention_at(i64::MAX / 2);
        sim.clear_faults();
        if result.is_ok() {
            assert!(p.segment_count() < before.len());
            break;
        }
        let first = p.segment_base_offsets()[0];
        let unlisted_on_disk: Vec<Offset> = before
            .iter()
            .copied()
            .filter(|b| *b < first && sim.exists(format!("/p/{:020}.log", b.0)))
            .collect();
        if !unlisted_on_disk.is_empty() {
            assert!(
                matches!(p.append(&records(0, 1)), Err(Error::PreviousIoFailed)),
                "k {k}: {unlisted_on_disk:?} left on disk by a partition still appending"
            );
        }
        k += 1;
    }
}

/// A compacted leader's batches leave gaps: a follower append refuses them with a typed
/// error that names the limitation, and writes nothing (a gap is only accepted where a batch
/// witness lists it, and a follower append writes none yet). Before, the refusal was a
/// `NonContiguousAppend`, which a replica set answers by truncating and fetching again,
/// forever.
#[test]
fn a_compacted_leaders_gaps_are_refused_with_a_typed_error() {
    let (ld, fd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let c = config(Durability::NoSync).with_cleanup_policy(seglog::CleanupPolicy::Compact);
    let leader = Partition::open(ld.path(), c.clone()).unwrap();
    for i in 0..60u64 {
        leader
            .append(&[Record::new(format!("value-{i:040}")).with_key(format!("k{}", i % 3))])
            .unwrap();
    }
    leader.roll().unwrap();
    leader.compact_at(i64::MAX / 2, true).unwrap();
    let bytes = batches_from(&leader, 0);
    let follower = Partition::open(fd.path(), c).unwrap();
    let first = leader.read_uncommitted(Offset(0), 1 << 20).unwrap();
    let first = first.batches()[0].base_offset();
    assert!(first > Offset(0), "compaction left no gap: {first:?}");
    match follower.append_batches(&bytes) {
        Err(Error::OffsetGapUnsupported { expected, found }) => {
            assert_eq!((expected, found), (Offset(0), first));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(follower.log_end_offset(), Offset(0));
    // An overlap is still a `NonContiguousAppend`.
    follower.append(&[Record::new("v").with_key("k")]).unwrap();
    assert!(matches!(
        follower.append_batches(&batches_from(&follower, 0)),
        Err(Error::NonContiguousAppend { .. })
    ));
}

#[test]
fn a_follower_append_writes_the_checkpoint_of_an_epoch_started_before_its_last_batch() {
    let dir = tempfile::tempdir().unwrap();
    let leader = Partition::open(dir.path().join("l"), config(Durability::NoSync)).unwrap();
    leader.assign_leader_epoch(4).unwrap();
    append(&leader, 2);
    append(&leader, 3);
    let bytes = batches_from(&leader, 0);
    // No fsync on append: only the append itself writes the checkpoint.
    let path = dir.path().join("f");
    let follower = Partition::open(&path, config(Durability::NoSync)).unwrap();
    follower.append_batches(&bytes).unwrap();
    assert_eq!(pairs(&follower.leader_epochs()), [(4, 0)]);
    let text = std::fs::read_to_string(path.join(LEADER_EPOCH_CHECKPOINT_FILE)).unwrap();
    assert_eq!(
        text, "0\n1\n4 0\n",
        "epoch 4 began in the first of two batches"
    );
}
