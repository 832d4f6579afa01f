//! Group commit under `Durability::SyncEachAppend` holds its promises with many threads, on
//! the simulated file system (`seglog::testing::SimFs`): 16 threads append one record at a
//! time (small segments, so fsyncs also cover rolls, sealed segments and directory syncs)
//! while a reader follows the high watermark.
//!
//! - Power cut at some operation mid-run, then a power loss (clean or torn): every append
//!   that returned `Ok`, and every record a reader saw, is there after the reopen, exact.
//! - One failed fsync: exactly one append gets the I/O error, every other thread's pending
//!   append fails with `PreviousIoFailed` and so does every later one (the partition is
//!   fenced); after a power loss (the failed fsync's writes dropped, as Linux may) every
//!   acknowledged append is there.
//! - `close` while the threads append: each append is acknowledged or refused with `Closed`,
//!   and every acknowledged one survives a power loss.
//! - The group-commit counters add up: each append is covered by exactly one fsync, and one
//!   appender alone gets one fsync per append (no waiting for company that never comes).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use seglog::testing::{SimError, SimFs, SimOp};
use seglog::{Durability, Error, Offset, Partition, PartitionConfig, Record};

const DIR: &str = "/sim/partition";
const THREADS: usize = 16;

/// Acknowledged (or seen) records: offset to value.
type Records = BTreeMap<u64, Vec<u8>>;

fn config(fi: &Arc<SimFs>) -> PartitionConfig {
    PartitionConfig::default()
        .with_durability(Durability::SyncEachAppend)
        .with_segment_bytes(4096)
        .with_index_interval_bytes(256)
        .with_segment_ms(None)
        .with_retention_ms(None)
        .with_file_system(fi.clone())
}

fn value(tid: usize, seq: usize) -> Vec<u8> {
    format!("t{tid}-s{seq}-{}", "v".repeat(40)).into_bytes()
}

/// What one appender thread ends with: its acknowledged records and the errors it got.
struct Outcome {
    acked: Records,
    errors: Vec<Error>,
}

/// Append one record at a time until an append fails (or `max` appends); then try `after`
/// more, which must fail too (collected in `errors`).
fn appender(p: &Partition, tid: usize, acks: &AtomicUsize, max: usize, after: usize) -> Outcome {
    let mut acked = Records::new();
    let mut errors = Vec::new();
    for seq in 0..max {
        match p.append(&[Record::new(value(tid, seq))]) {
            Ok(info) => {
                assert_eq!(info.base_offset, info.last_offset);
                assert!(acked.insert(info.base_offset.0, value(tid, seq)).is_none());
                acks.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                errors.push(e);
                break;
            }
        }
    }
    for seq in 0..after {
        match p.append(&[Record::new(value(tid, max + seq))]) {
            Ok(info) => panic!("thread {tid}: append acknowledged after a failure: {info:?}"),
            Err(e) => errors.push(e),
        }
    }
    Outcome { acked, errors }
}

/// Follow the high watermark until `stop`, collecting every record read; each read returns
/// only records below the high watermark seen before it.
fn reader(p: &Partition, stop: &AtomicBool) -> Records {
    let mut seen = Records::new();
    let mut next = 0;
    while !stop.load(Ordering::Relaxed) {
        let hw = p.high_watermark().0;
        if next >= hw {
            p.wait_for(Offset(next), Duration::from_millis(5));
            continue;
        }
        let Ok(batches) = p.read(Offset(next), 16 << 10) else {
            continue;
        };
        for r in batches.records() {
            let r = r.expect("a visible record decodes");
            assert_eq!(r.offset.0, next, "visible offsets are dense");
            seen.insert(next, r.value.expect("value").to_vec());
            next += 1;
        }
    }
    seen
}

/// Every record of `expected` is in the reopened partition at its offset, exact.
fn assert_present(p: &Partition, expected: &Records, ctx: &str) {
    let Some((&last, _)) = expected.last_key_value() else {
        return;
    };
    assert!(
        p.high_watermark().0 > last,
        "{ctx}: offset {last} lost (high watermark {})",
        p.high_watermark().0
    );
    let mut next = 0;
    while next <= last {
        let batches = p.read(Offset(next), 64 << 10).expect("read");
        assert!(!batches.is_empty(), "{ctx}: nothing at {next}");
        for r in batches.records() {
            let r = r.expect("record decodes");
            if let Some(v) = expected.get(&r.offset.0) {
                assert_eq!(
                    r.value.as_deref(),
                    Some(v.as_slice()),
                    "{ctx}: offset {}",
                    r.offset.0
                );
            }
            next = r.offset.0 + 1;
        }
    }
}

/// Run `THREADS` appenders and a reader on `p`; `fault` runs on the main thread once `acks`
/// appends were acknowledged. Returns the outcomes and what the reader saw.
fn run(
    p: &Partition,
    acks_before_fault: usize,
    max: usize,
    after: usize,
    fault: impl FnOnce(),
) -> (Vec<Outcome>, Records) {
    let acks = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let appenders: Vec<_> = (0..THREADS)
            .map(|tid| {
                let acks = &acks;
                s.spawn(move || appender(p, tid, acks, max, after))
            })
            .collect();
        let read = s.spawn(|| reader(p, &stop));
        while acks.load(Ordering::Relaxed) < acks_before_fault
            && !appenders.iter().all(|h| h.is_finished())
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        fault();
        let outcomes: Vec<Outcome> = appenders.into_iter().map(|h| h.join().unwrap()).collect();
        stop.store(true, Ordering::Relaxed);
        (outcomes, read.join().unwrap())
    })
}

fn all_acked(outcomes: &[Outcome]) -> Records {
    let mut all = Records::new();
    for o in outcomes {
        for (k, v) in &o.acked {
            assert!(
                all.insert(*k, v.clone()).is_none(),
                "offset {k} acknowledged twice"
            );
        }
    }
    all
}

#[test]
fn acknowledged_and_visible_appends_survive_a_power_cut_under_many_threads() {
    for (round, (acks, cut_after, torn)) in [
        (30, 1, false),
        (150, 5, true),
        (400, 13, false),
        (250, 2, true),
    ]
    .into_iter()
    .enumerate()
    {
        let ctx = format!("round {round}: cut {cut_after} operations after {acks} acks");
        let fi = Arc::new(SimFs::new());
        let p = Partition::open(Path::new(DIR), config(&fi)).unwrap();
        let (outcomes, seen) = run(&p, acks, 100_000, 0, || fi.cut_power_at(cut_after));
        for (tid, o) in outcomes.iter().enumerate() {
            assert_eq!(o.errors.len(), 1, "{ctx}: thread {tid} stops at the cut");
        }
        let acked = all_acked(&outcomes);
        p.simulate_crash();
        if torn {
            fi.power_loss_torn(round as u64);
        } else {
            fi.power_loss();
        }
        let p = Partition::open(Path::new(DIR), config(&fi)).unwrap();
        assert_present(&p, &acked, &format!("{ctx}: acknowledged"));
        assert_present(&p, &seen, &format!("{ctx}: seen by a reader"));
        // The reader saw only what some append wrote, at the offset it was acknowledged at.
        for (offset, v) in &seen {
            if let Some(a) = acked.get(offset) {
                assert_eq!(a, v, "{ctx}: offset {offset}");
            }
        }
    }
}

#[test]
fn a_failed_fsync_under_many_threads_fails_every_pending_append_and_fences() {
    for acks in [20, 120, 300] {
        let ctx = format!("fsync failed after {acks} acks");
        let fi = Arc::new(SimFs::new());
        let p = Partition::open(Path::new(DIR), config(&fi)).unwrap();
        let (outcomes, seen) = run(&p, acks, 1_000_000, 3, || {
            fi.fail_next(SimOp::Sync, SimError::Eio);
        });
        let mut io_errors = 0;
        for (tid, o) in outcomes.iter().enumerate() {
            let (first, later) = o.errors.split_first().expect("every thread fails");
            match first {
                Error::Io { .. } => io_errors += 1,
                Error::PreviousIoFailed => {}
                e => panic!("{ctx}: thread {tid}: {e:?}"),
            }
            for e in later {
                assert!(
                    matches!(e, Error::PreviousIoFailed),
                    "{ctx}: thread {tid}: after the failure: {e:?}"
                );
            }
        }
        assert_eq!(
            io_errors, 1,
            "{ctx}: the failed fsync's leader gets its error"
        );
        let acked = all_acked(&outcomes);
        let hw = p.high_watermark().0;
        assert!(
            acked.last_key_value().is_none_or(|(&k, _)| k < hw),
            "{ctx}: an acknowledged append is not visible"
        );
        assert!(
            p.durable_end_offset().0 >= hw,
            "{ctx}: readers see past the durable end"
        );
        drop(p);
        fi.clear_faults();
        fi.power_loss();
        let p = Partition::open(Path::new(DIR), config(&fi)).unwrap();
        assert_present(&p, &acked, &format!("{ctx}: acknowledged"));
        assert_present(&p, &seen, &format!("{ctx}: seen by a reader"));
        assert!(
            p.log_end_offset().0 >= hw,
            "{ctx}: visible records lost by the failed fsync"
        );
    }
}

#[test]
fn close_while_many_threads_append_keeps_every_acknowledged_append() {
    for acks in [10, 200] {
        let ctx = format!("closed after {acks} acks");
        let fi = Arc::new(SimFs::new());
        let p = Partition::open(Path::new(DIR), config(&fi)).unwrap();
        let (outcomes, _) = run(&p, acks, 1_000_000, 1, || p.close().unwrap());
        for (tid, o) in outcomes.iter().enumerate() {
            for e in &o.errors {
                assert!(matches!(e, Error::Closed), "{ctx}: thread {tid}: {e:?}");
            }
        }
        let acked = all_acked(&outcomes);
        drop(p);
        fi.power_loss();
        let p = Partition::open(Path::new(DIR), config(&fi)).unwrap();
        assert_present(&p, &acked, &ctx);
        assert_eq!(
            p.log_end_offset().0,
            acked.len() as u64,
            "{ctx}: only acknowledged appends were written"
        );
    }
}

#[test]
fn every_append_is_counted_by_exactly_one_fsync() {
    let fi = Arc::new(SimFs::new());
    let p = Partition::open(Path::new(DIR), config(&fi)).unwrap();
    let (outcomes, _) = run(&p, 0, 60, 0, || {});
    let appends = all_acked(&outcomes).len() as u64;
    assert_eq!(appends, (THREADS * 60) as u64);
    let stats = p.group_commit_stats();
    assert_eq!(stats.appends, appends, "{stats:?}");
    assert!(stats.fsyncs >= 1 && stats.fsyncs <= appends, "{stats:?}");
    assert_eq!(p.high_watermark().0, appends);
}

#[test]
fn one_appender_gets_one_fsync_per_append() {
    let fi = Arc::new(SimFs::new());
    let p = Partition::open(Path::new(DIR), config(&fi)).unwrap();
    for i in 0..50 {
        p.append(&[Record::new(value(0, i))]).unwrap();
        let stats = p.group_commit_stats();
        assert_eq!((stats.fsyncs, stats.appends), (i as u64 + 1, i as u64 + 1));
    }
}

/// A failed write (ENOSPC) while an fsync runs fences the partition; the thread woken to lead
/// the next fsync then leaves with `PreviousIoFailed`. It must hand its turn on: before the
/// fix the followers queued behind it were never woken and hung. Syncs take 2 ms here so that
/// followers queue behind the fsync in progress, as on a real disk.
#[test]
fn a_failed_write_while_an_fsync_runs_fails_every_queued_append() {
    const ROUNDS: usize = 4;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for round in 0..ROUNDS {
            let fi = Arc::new(SimFs::new());
            fi.set_sync_delay(Duration::from_millis(2));
            let p = Partition::open(Path::new(DIR), config(&fi)).unwrap();
            // A few appends after the fault is set succeed and queue behind an fsync, so the
            // failing one comes while followers wait.
            let nth = [3, 6, 9, 12][round];
            let (outcomes, _) = run(&p, 40, 1_000_000, 1, || {
                fi.fail_nth(nth, Some(SimOp::Write), SimError::Enospc);
            });
            let mut io_errors = 0;
            for (tid, o) in outcomes.iter().enumerate() {
                for e in &o.errors {
                    match e {
                        Error::Io { .. } => io_errors += 1,
                        Error::PreviousIoFailed => {}
                        e => panic!("round {round}: thread {tid}: {e:?}"),
                    }
                }
                assert_eq!(o.errors.len(), 2, "round {round}: thread {tid} fails twice");
            }
            assert_eq!(
                io_errors, 1,
                "round {round}: the failed write's appender gets it"
            );
            tx.send(round).unwrap();
        }
    });
    for round in 0..ROUNDS {
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(60)),
            Ok(round),
            "round {round}: appenders hung (or failed) after a failed write"
        );
    }
}
