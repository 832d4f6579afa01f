//! The replicators: both shipped implementations pass the conformance suite; the in-process
//! replica set, driven step by step (manual clock, one simulated disk per replica), keeps
//! acks=all waiting for the in-sync replicas, shrinks and grows the ISR by lag, refuses and
//! fails acks=all below `min_insync_replicas`, fails over without losing a committed record
//! (KIP-101 and KIP-279 divergence scenarios by name), refuses unclean elections unless asked;
//! and with real threads it survives a leader killed under concurrent producers and consumers.

mod support;
use support::log_of;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use seglog::testing::SimFs;
use seglog::{
    Acks, BatchMeta, Durability, Error, Offset, Partition, PartitionConfig, Record, ReplicaSet,
    ReplicaSpec, ReplicationConfig, Replicator, SingleCopy,
};

fn partition_config(durability: Durability) -> PartitionConfig {
    PartitionConfig::default()
        .with_segment_bytes(seglog::SEGMENT_BYTES_MIN * 4)
        .with_segment_ms(None)
        .with_retention_ms(None)
        .with_durability(durability)
}

struct Cluster {
    set: Arc<ReplicaSet>,
    sims: Vec<Arc<SimFs>>,
}

fn cluster(n: usize, config: ReplicationConfig) -> Cluster {
    let sims: Vec<Arc<SimFs>> = (0..n).map(|_| Arc::new(SimFs::new())).collect();
    let specs = sims
        .iter()
        .enumerate()
        .map(|(i, sim)| {
            ReplicaSpec::new(
                format!("/replica-{i}"),
                // SimFs maps are snapshots: preallocated zeros would be mapped stale.
                partition_config(Durability::SyncEachAppend)
                    .with_preallocate_bytes(0)
                    .with_file_system(sim.clone()),
            )
        })
        .collect();
    let set = ReplicaSet::open_with_manual_clock(specs, config).unwrap();
    Cluster { set, sims }
}

fn rec(v: &str) -> Vec<Record> {
    vec![Record::new(v.to_owned())]
}

fn meta() -> BatchMeta {
    BatchMeta::default()
}

/// Fetch every follower until nothing moves.
fn settle(set: &ReplicaSet) {
    for _ in 0..100 {
        let mut moved = 0;
        for id in 0..set.replica_count() {
            moved += set.fetch_once(id).unwrap_or(0);
        }
        if moved == 0 {
            return;
        }
    }
    panic!("replication did not settle");
}

#[test]
fn single_copy_passes_the_conformance_suite() {
    let root = tempfile::tempdir().unwrap();
    let mut n = 0;
    seglog::testing::replicator_conformance(
        |min| {
            n += 1;
            let p = Partition::open(
                root.path().join(n.to_string()),
                partition_config(Durability::NoSync),
            )
            .unwrap();
            SingleCopy::new(Arc::new(p), min).unwrap()
        },
        1,
    );
}

#[test]
fn the_replica_set_passes_the_conformance_suite() {
    let root = tempfile::tempdir().unwrap();
    let mut n = 0;
    seglog::testing::replicator_conformance(
        |min| {
            n += 1;
            let specs = (0..3)
                .map(|i| {
                    ReplicaSpec::new(
                        root.path().join(format!("{n}-{i}")),
                        partition_config(Durability::NoSync),
                    )
                })
                .collect();
            let config = ReplicationConfig::default()
                .with_min_insync_replicas(min)
                .with_fetch_wait(Duration::from_millis(5));
            let set = ReplicaSet::open(specs, config).unwrap();
            set.start_fetchers();
            set
        },
        3,
    );
}

#[test]
fn acks_all_waits_for_every_in_sync_replica() {
    let c = cluster(3, ReplicationConfig::default().with_min_insync_replicas(2));
    let set = &c.set;
    assert_eq!(set.isr(), [0]);
    let err = set
        .append_pending(&rec("a"), &meta(), Acks::All)
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotEnoughReplicas {
                in_sync: 1,
                required: 2
            }
        ),
        "{err:?}"
    );
    // acks=leader needs no ISR; followers join once caught up.
    set.append_pending(&rec("a"), &meta(), Acks::Leader)
        .unwrap();
    assert_eq!(
        set.high_watermark(),
        Offset(1),
        "the ISR is the leader alone"
    );
    settle(set);
    assert_eq!(set.isr(), [0, 1, 2]);
    let pending = set.append_pending(&rec("b"), &meta(), Acks::All).unwrap();
    assert!(set.poll(&pending).is_none(), "no follower has it yet");
    set.fetch_once(1).unwrap();
    assert!(
        set.poll(&pending).is_none(),
        "replica 2 is in sync and lacks it"
    );
    assert_eq!(set.high_watermark(), Offset(1));
    // Consumers of the leader see only the committed record.
    let leader = set.leader().unwrap();
    assert_eq!(leader.log_end_offset(), Offset(2));
    assert!(leader.read(Offset(1), 1 << 20).unwrap().is_empty());
    set.fetch_once(2).unwrap();
    let info = set.poll(&pending).unwrap().unwrap();
    assert_eq!(info.base_offset, Offset(1));
    assert_eq!(set.high_watermark(), Offset(2));
    // A follower shows its readers the HW it learned, not its log end.
    set.fetch_once(1).unwrap();
    assert_eq!(set.replica(1).unwrap().high_watermark(), Offset(2));
}

#[test]
fn a_lagging_follower_leaves_the_isr_and_rejoins_when_caught_up() {
    let c = cluster(3, ReplicationConfig::default().with_replica_lag_ms(1000));
    let set = &c.set;
    settle(set);
    assert_eq!(set.isr(), [0, 1, 2]);
    let pending = set.append_pending(&rec("a"), &meta(), Acks::All).unwrap();
    set.fetch_once(1).unwrap();
    set.advance_clock(600);
    assert_eq!(set.update_isr(), 0, "within the lag");
    set.fetch_once(1).unwrap();
    set.advance_clock(600);
    // Replica 2 has not caught up for 1200 ms: it leaves, and the HW moves without it.
    assert_eq!(set.update_isr(), 1);
    assert_eq!(set.isr(), [0, 1]);
    assert_eq!(set.poll(&pending).unwrap().unwrap().base_offset, Offset(0));
    assert_eq!(set.high_watermark(), Offset(1));
    set.fetch_once(2).unwrap();
    assert_eq!(set.isr(), [0, 1, 2], "caught up again");
}

#[test]
fn an_acks_all_append_in_flight_fails_when_the_isr_shrinks_below_the_minimum() {
    let c = cluster(
        2,
        ReplicationConfig::default()
            .with_min_insync_replicas(2)
            .with_replica_lag_ms(100),
    );
    let set = &c.set;
    settle(set);
    let pending = set.append_pending(&rec("a"), &meta(), Acks::All).unwrap();
    set.advance_clock(101);
    set.update_isr();
    let err = set.poll(&pending).unwrap().unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotEnoughReplicas {
                in_sync: 1,
                required: 2
            }
        ),
        "{err:?}"
    );
    // And new ones are refused.
    assert!(matches!(
        set.append_pending(&rec("b"), &meta(), Acks::All),
        Err(Error::NotEnoughReplicas { .. })
    ));
}

#[test]
fn failover_keeps_every_committed_record_and_the_old_leader_truncates() {
    let c = cluster(3, ReplicationConfig::default().with_min_insync_replicas(2));
    let set = &c.set;
    settle(set);
    for i in 0..5 {
        let p = set
            .append_pending(&rec(&format!("c{i}")), &meta(), Acks::All)
            .unwrap();
        settle(set);
        set.poll(&p).unwrap().unwrap();
    }
    let epoch = set.leader_epoch().unwrap();
    // Uncommitted tail on the leader only.
    set.append_pending(&rec("lost-1"), &meta(), Acks::Leader)
        .unwrap();
    set.append_pending(&rec("lost-2"), &meta(), Acks::Leader)
        .unwrap();
    set.crash(0).unwrap().unwrap();
    c.sims[0].power_loss();
    let new_leader = set.leader_id().unwrap();
    assert_ne!(new_leader, 0);
    assert_eq!(
        set.leader_epoch(),
        Some(epoch + 1),
        "a leader change bumps the epoch"
    );
    assert_eq!(set.high_watermark(), Offset(5));
    let p = set
        .append_pending(&rec("after"), &meta(), Acks::All)
        .unwrap();
    settle(set);
    set.poll(&p).unwrap().unwrap();
    set.restart(0).unwrap();
    settle(set);
    let want: Vec<(u64, String)> = (0..5)
        .map(|i| (i, format!("c{i}")))
        .chain([(5, "after".to_owned())])
        .collect();
    for id in 0..3 {
        assert_eq!(log_of(&set.replica(id).unwrap()), want, "replica {id}");
    }
    assert_eq!(set.isr(), [0, 1, 2]);
}

/// KIP-101's first scenario: two failovers in quick succession leave replicas with
/// different records at the same offsets; epochs, not the high watermark, find the cut.
#[test]
fn kip_101_divergent_tails_after_two_fast_failovers() {
    let c = cluster(2, ReplicationConfig::default());
    let set = &c.set;
    set.append_pending(&rec("m0"), &meta(), Acks::Leader)
        .unwrap();
    settle(set);
    assert_eq!(set.isr(), [0, 1]);
    // m1 reaches the leader's disk only.
    set.append_pending(&rec("m1-old"), &meta(), Acks::Leader)
        .unwrap();
    set.crash(0).unwrap().unwrap();
    c.sims[0].power_loss();
    assert_eq!(set.leader_id(), Some(1));
    set.append_pending(&rec("m1-new"), &meta(), Acks::Leader)
        .unwrap();
    // The new leader dies too before anyone copies m1-new; it is the last ISR member.
    assert!(set.crash(1).unwrap().is_err(), "no live in-sync replica");
    assert_eq!(set.leader_id(), None);
    // Replica 0 comes back first: it is not in the ISR, so it may not lead.
    set.restart(0).unwrap();
    assert_eq!(set.leader_id(), None);
    set.restart(1).unwrap();
    assert_eq!(set.leader_id(), Some(1));
    settle(set);
    let want = vec![(0, "m0".to_owned()), (1, "m1-new".to_owned())];
    assert_eq!(log_of(&set.replica(0).unwrap()), want);
    assert_eq!(log_of(&set.replica(1).unwrap()), want);
}

/// KIP-279: a follower that led an epoch the new leader never saw asks for that epoch, gets
/// an older one back, and cuts at the older epoch's end on its own log too.
#[test]
fn kip_279_a_follower_that_led_an_older_epoch() {
    let c = cluster(3, ReplicationConfig::default());
    let set = &c.set;
    for i in 0..3 {
        set.append_pending(&rec(&format!("m{i}")), &meta(), Acks::Leader)
            .unwrap();
    }
    settle(set);
    // Replica 0 writes more in its epoch; nobody copies it.
    set.append_pending(&rec("a3"), &meta(), Acks::Leader)
        .unwrap();
    set.append_pending(&rec("a4"), &meta(), Acks::Leader)
        .unwrap();
    set.crash(0).unwrap().unwrap();
    // Replica 1 leads an epoch of its own and writes, but nobody copies that either.
    set.elect(Some(1)).ok();
    assert_eq!(set.leader_id(), Some(1));
    let b_epoch = set.leader_epoch().unwrap();
    set.append_pending(&rec("b3"), &meta(), Acks::Leader)
        .unwrap();
    // Replica 2 takes over (a controlled move): it never saw epoch b_epoch's data.
    set.elect(Some(2)).unwrap();
    assert_eq!(set.leader_id(), Some(2));
    set.append_pending(&rec("c3"), &meta(), Acks::Leader)
        .unwrap();
    let leader = set.replica(2).unwrap();
    assert!(leader.leader_epochs().iter().all(|e| e.epoch != b_epoch));
    set.restart(0).unwrap();
    settle(set);
    let want: Vec<(u64, String)> = vec![
        (0, "m0".into()),
        (1, "m1".into()),
        (2, "m2".into()),
        (3, "c3".into()),
    ];
    for id in 0..3 {
        assert_eq!(log_of(&set.replica(id).unwrap()), want, "replica {id}");
    }
}

#[test]
fn unclean_election_is_off_by_default_and_reports_its_loss_when_on() {
    for unclean in [false, true] {
        let c = cluster(
            2,
            ReplicationConfig::default()
                .with_replica_lag_ms(10)
                .with_unclean_leader_election(unclean),
        );
        let set = &c.set;
        set.append_pending(&rec("a"), &meta(), Acks::Leader)
            .unwrap();
        settle(set);
        // Replica 1 falls behind and out of the ISR; the leader commits alone.
        set.advance_clock(11);
        set.update_isr();
        assert_eq!(set.isr(), [0]);
        set.append_pending(&rec("b"), &meta(), Acks::All).unwrap();
        assert_eq!(set.high_watermark(), Offset(2));
        let crashed = set.crash(0).unwrap();
        if unclean {
            crashed.unwrap();
            assert_eq!(set.leader_id(), Some(1));
            let lost = set.unclean_elections();
            assert_eq!(lost.len(), 1);
            assert_eq!(lost[0].high_watermark_before, Offset(2));
            assert_eq!(lost[0].leader_end, Offset(1));
        } else {
            assert!(matches!(crashed, Err(Error::NotLeader { .. })));
            assert_eq!(set.leader_id(), None);
            assert!(set.unclean_elections().is_empty());
            assert!(matches!(
                set.append_pending(&rec("c"), &meta(), Acks::Leader),
                Err(Error::NotLeader { .. })
            ));
            // The last in-sync replica comes back and leads again, with everything.
            set.restart(0).unwrap();
            assert_eq!(set.leader_id(), Some(0));
            settle(set);
            assert_eq!(log_of(&set.replica(1).unwrap()).len(), 2);
        }
    }
}

/// Real threads: producers with acks=all, consumers reading committed records, and the
/// leader killed in the middle. Every acknowledged record is on the new leader, at its
/// offset, and no consumer ever read a record that is not there now.
#[test]
fn a_leader_killed_under_concurrent_producers_and_consumers_loses_nothing_acknowledged() {
    let c = cluster(3, ReplicationConfig::default().with_min_insync_replicas(2));
    let set = c.set.clone();
    settle(&set);
    set.start_fetchers();
    let acked = Arc::new(parking_lot::Mutex::new(Vec::<(u64, String)>::new()));
    let seen = Arc::new(parking_lot::Mutex::new(Vec::<(u64, String)>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let produced = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for t in 0..3 {
        let (set, acked, stop, produced) =
            (set.clone(), acked.clone(), stop.clone(), produced.clone());
        threads.push(std::thread::spawn(move || {
            // Up to 100 acknowledged records each; appends refused during the failover
            // (no leader yet, too few in sync) are retried, so they never use up the budget
            // (counting attempts stalled the test when a failover refused many in a row).
            let mut ok = 0;
            for i in 0.. {
                if stop.load(Ordering::Acquire) || ok >= 100 {
                    break;
                }
                let v = format!("p{t}-{i}");
                match set.append(&rec(&v), &meta(), Acks::All) {
                    Ok(info) => {
                        acked.lock().push((info.base_offset.0, v));
                        produced.fetch_add(1, Ordering::AcqRel);
                        ok += 1;
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
        }));
    }
    {
        let (set, seen, stop) = (set.clone(), seen.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            let mut next = Offset(0);
            while !stop.load(Ordering::Acquire) {
                let Ok(leader) = set.leader() else { continue };
                let Ok(read) = leader.read(next, 1 << 16) else {
                    continue;
                };
                for r in read.records() {
                    let r = r.unwrap();
                    let v = String::from_utf8(r.value.unwrap().to_vec()).unwrap();
                    seen.lock().push((r.offset.0, v));
                }
                next = read.next_offset();
            }
        }));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let wait_for = |n: u64| {
        while produced.load(Ordering::Acquire) < n {
            assert!(std::time::Instant::now() < deadline, "producers stalled");
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    wait_for(100);
    let old = set.leader_id().unwrap();
    set.crash(old).unwrap().unwrap();
    wait_for(250);
    stop.store(true, Ordering::Release);
    for t in threads {
        t.join().unwrap();
    }
    set.restart(old).unwrap();
    let leader = set.leader().unwrap();
    let log: std::collections::BTreeMap<u64, String> = log_of(&leader).into_iter().collect();
    for (offset, v) in acked.lock().iter() {
        assert_eq!(log.get(offset), Some(v), "acknowledged record at {offset}");
    }
    for (offset, v) in seen.lock().iter() {
        assert_eq!(log.get(offset), Some(v), "consumed record at {offset}");
    }
    set.close().unwrap();
}

/// Found by the schedules (seed 229): a replica with an uncommitted tail from epoch 0 leads
/// epoch 2 without writing and without ever truncating, then follows again. Its latest epoch
/// is the empty one; dropping it must lead to a second round that cuts the old tail.
#[test]
fn a_follower_whose_last_leadership_wrote_nothing_still_cuts_its_older_tail() {
    let c = cluster(2, ReplicationConfig::default());
    let set = &c.set;
    for v in ["a0", "a1", "a2"] {
        set.append_pending(&rec(v), &meta(), Acks::Leader).unwrap();
    }
    settle(set);
    set.append_pending(&rec("x3"), &meta(), Acks::Leader)
        .unwrap();
    set.append_pending(&rec("x4"), &meta(), Acks::Leader)
        .unwrap();
    set.elect(Some(1)).unwrap();
    for v in ["b3", "b4", "b5"] {
        set.append_pending(&rec(v), &meta(), Acks::Leader).unwrap();
    }
    set.elect(Some(0)).unwrap();
    set.elect(Some(1)).unwrap();
    settle(set);
    let want: Vec<(u64, String)> = ["a0", "a1", "a2", "b3", "b4", "b5"]
        .iter()
        .enumerate()
        .map(|(i, v)| (i as u64, (*v).to_owned()))
        .collect();
    assert_eq!(log_of(&set.replica(0).unwrap()), want);
    assert_eq!(log_of(&set.replica(1).unwrap()), want);
}

/// Regression: a follower whose log ended below its leader's log start (the leader deleted
/// records while it was down) never caught up: the leader's `OffsetOutOfRange` was taken for
/// a transient truncation forever. Like Kafka's follower it now restarts its log empty at the
/// leader's log start, durably (a crash afterwards keeps the new start).
#[test]
fn a_follower_below_the_leaders_log_start_restarts_there_and_catches_up() {
    let c = cluster(3, ReplicationConfig::default().with_replica_lag_ms(1000));
    let set = &c.set;
    settle(set);
    let leader = set.leader_id().unwrap();
    let lagging = (leader + 1) % 3;
    set.crash(lagging);
    set.advance_clock(2000);
    set.update_isr();
    assert!(!set.isr().contains(&lagging));
    for i in 0..60 {
        let p = set
            .append_pending(&rec(&format!("value-{i:01000}")), &meta(), Acks::All)
            .unwrap();
        settle(set);
        set.poll(&p).unwrap().unwrap();
    }
    let lp = set.replica(leader).unwrap();
    assert!(lp.segment_count() > 2, "{}", lp.segment_count());
    let start = lp.delete_records_before(Offset(50)).unwrap();
    assert_eq!(start, Offset(50));
    set.restart(lagging).unwrap();
    settle(set);
    let f = set.replica(lagging).unwrap();
    assert_eq!(f.log_start_offset(), Offset(50));
    assert_eq!(log_of(&f), log_of(&lp));
    assert_eq!(f.log_end_offset(), Offset(60));
    // It follows from there and rejoins the ISR.
    let p = set
        .append_pending(&rec("after"), &meta(), Acks::All)
        .unwrap();
    settle(set);
    set.poll(&p).unwrap().unwrap();
    assert_eq!(set.isr(), [0, 1, 2]);
    assert_eq!(log_of(&f), log_of(&lp));
    // The restart is durable: a power loss keeps the new log start and every synced record.
    set.crash(lagging);
    c.sims[lagging].power_loss();
    set.restart(lagging).unwrap();
    settle(set);
    let f = set.replica(lagging).unwrap();
    assert_eq!(f.log_start_offset(), Offset(50));
    assert_eq!(log_of(&f), log_of(&lp));
}

/// A follower of a compacted leader gets a typed error from its fetch, saying compacted
/// leaders cannot be followed yet, instead of truncating and fetching again forever.
#[test]
fn a_follower_of_a_compacted_leader_fails_its_fetch_clearly() {
    let sims: Vec<Arc<SimFs>> = (0..2).map(|_| Arc::new(SimFs::new())).collect();
    let specs = sims
        .iter()
        .enumerate()
        .map(|(i, sim)| {
            ReplicaSpec::new(
                format!("/replica-{i}"),
                partition_config(Durability::SyncEachAppend)
                    .with_cleanup_policy(seglog::CleanupPolicy::Compact)
                    .with_preallocate_bytes(0)
                    .with_file_system(sim.clone()),
            )
        })
        .collect();
    let set = ReplicaSet::open_with_manual_clock(
        specs,
        ReplicationConfig::default().with_replica_lag_ms(1000),
    )
    .unwrap();
    settle(&set);
    let leader = set.leader_id().unwrap();
    let follower = 1 - leader;
    set.crash(follower);
    set.advance_clock(2000);
    set.update_isr();
    for i in 0..60 {
        let r = Record::new(format!("value-{i:0200}")).with_key(format!("k{}", i % 3));
        set.append_pending(&[r], &meta(), Acks::All).unwrap();
    }
    let lp = set.replica(leader).unwrap();
    lp.roll().unwrap();
    lp.compact_at(i64::MAX / 2, true).unwrap();
    let first = lp.read_uncommitted(Offset(0), 1 << 20).unwrap().batches()[0].base_offset();
    assert!(first > Offset(0), "compaction left no gap");
    set.restart(follower).unwrap();
    for _ in 0..3 {
        assert!(matches!(
            set.fetch_once(follower),
            Err(Error::OffsetGapUnsupported { .. })
        ));
    }
    assert_eq!(set.replica(follower).unwrap().log_end_offset(), Offset(0));
}
