//! Write-path error handling, driven by one-shot faults of the simulated file system
//! (`seglog::testing::SimFs`, which all partitions here live on).
//!
//! A failing segment write, or a failing fsync under each durability policy (per append,
//! threshold-triggered, explicit `flush`, `close`, and with several threads appending), must
//! surface as `Error::Io`, after which every append is refused with `Error::PreviousIoFailed`
//! while reads keep working; after a reopen every acknowledged record is present with its
//! content and appends work again. Each test acknowledges records, injects one fault, and
//! checks the partition against the list of acknowledged records before and after reopening.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use seglog::testing::{SimError, SimFs, SimOp};
use seglog::{AppendInfo, Durability, Error, Offset, Partition, PartitionConfig, Record};

/// The partition's directory inside the simulated file system.
const DIR: &str = "/sim/partition";

/// Records whose appends returned `Ok`: offset and value.
type Acked = Vec<(u64, Vec<u8>)>;

fn value(tag: &str, i: usize) -> Vec<u8> {
    // Around 100 bytes, so that 1 KiB segments roll every few batches.
    format!("{tag}-{i}-{}", "x".repeat(80)).into_bytes()
}

fn batch(tag: &str, n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| Record::new(value(tag, i)).with_key(tag.to_owned()))
        .collect()
}

/// Append `n` records tagged `tag`; on success record them in `acked`.
fn try_append(p: &Partition, acked: &mut Acked, tag: &str, n: usize) -> seglog::Result<AppendInfo> {
    let info = p.append(&batch(tag, n))?;
    assert_eq!(
        info.last_offset.0 - info.base_offset.0 + 1,
        n as u64,
        "{tag}"
    );
    for i in 0..n {
        acked.push((info.base_offset.0 + i as u64, value(tag, i)));
    }
    Ok(info)
}

fn append_ok(p: &Partition, acked: &mut Acked, tag: &str, n: usize) -> AppendInfo {
    try_append(p, acked, tag, n).unwrap_or_else(|e| panic!("append {tag}: {e}"))
}

fn is_io(r: &seglog::Result<impl std::fmt::Debug>) -> bool {
    matches!(r, Err(Error::Io { .. }))
}

fn is_previous_failed(r: &seglog::Result<impl std::fmt::Debug>) -> bool {
    matches!(r, Err(Error::PreviousIoFailed))
}

/// Every readable record, from the log start to the high watermark, checking density.
fn read_all(p: &Partition) -> Vec<(u64, Vec<u8>)> {
    let (start, hw) = (p.log_start_offset().0, p.high_watermark().0);
    let mut out = Vec::new();
    let mut next = start;
    while next < hw {
        let rb = p.read(Offset(next), 64 << 10).expect("read");
        assert!(
            !rb.is_empty(),
            "empty read at {next} below the high watermark {hw}"
        );
        for r in rb.records() {
            let r = r.expect("record decodes");
            assert_eq!(r.offset.0, next, "offsets are dense");
            out.push((r.offset.0, r.value.expect("value").to_vec()));
            next += 1;
        }
    }
    assert!(p
        .read(Offset(hw), 1024)
        .expect("read at the high watermark")
        .is_empty());
    out
}

/// Every acknowledged record is readable at its offset with its value.
fn assert_acked_readable(p: &Partition, acked: &Acked, ctx: &str) {
    let all = read_all(p);
    let start = p.log_start_offset().0;
    for (offset, v) in acked {
        let got = all.get((offset - start) as usize);
        assert_eq!(
            got.map(|(o, v)| (*o, v.as_slice())),
            Some((*offset, v.as_slice())),
            "{ctx}: acknowledged record at {offset}"
        );
    }
}

fn acked_end(acked: &Acked) -> u64 {
    acked.last().map_or(0, |(o, _)| o + 1)
}

/// After the fault: appends and rolls are refused, reads of acknowledged records still work.
fn assert_refuses_writes(p: &Partition, acked: &Acked, ctx: &str) {
    for _ in 0..3 {
        let r = p.append(&batch("refused", 2));
        assert!(
            is_previous_failed(&r),
            "{ctx}: append after the fault: {r:?}"
        );
    }
    let r = p.roll();
    assert!(is_previous_failed(&r), "{ctx}: roll after the fault: {r:?}");
    assert_acked_readable(p, acked, ctx);
}

/// Reopen without a pending fault after a failure: recovery must run.
fn reopen(dir: &std::path::Path, config: PartitionConfig, ctx: &str) -> Partition {
    let p = Partition::open(dir, config).unwrap_or_else(|e| panic!("{ctx}: reopen: {e}"));
    assert!(
        !p.recovery_report().clean_shutdown,
        "{ctx}: a partition that failed must not be marked cleanly shut down"
    );
    p
}

/// Every acknowledged record is there after the reopen, and appends work again.
fn check_reopened(p: &Partition, acked: &mut Acked, ctx: &str) {
    assert!(
        p.log_end_offset().0 >= acked_end(acked),
        "{ctx}: acknowledged records lost"
    );
    assert_acked_readable(p, acked, ctx);
    let end = p.log_end_offset();
    let info = append_ok(p, acked, "after-reopen", 3);
    assert_eq!(info.base_offset, end, "{ctx}");
    assert_acked_readable(p, acked, ctx);
}

fn config(durability: Durability, fi: &Arc<SimFs>) -> PartitionConfig {
    PartitionConfig::default()
        .with_segment_bytes(1024)
        .with_index_interval_bytes(256)
        .with_durability(durability)
        .with_file_system(fi.clone())
}

/// The same configuration on the same file system, once its faults have fired.
fn plain(durability: Durability, fi: &Arc<SimFs>) -> PartitionConfig {
    fi.clear_faults();
    config(durability, fi)
}

#[test]
fn failed_write_is_an_error_and_blocks_appends_until_reopen() {
    // Fail after 0..8 good appends, under two policies, so that some failures land on the
    // append that rolls a segment. Alternate a crash and a plain drop before reopening.
    for durability in [Durability::SyncEachAppend, Durability::NoSync] {
        for good in 0..8 {
            let ctx = format!("{durability:?}, {good} good appends");
            let fi = Arc::new(SimFs::new());
            let p = Partition::open(Path::new(DIR), config(durability.clone(), &fi)).unwrap();
            let mut acked = Acked::new();
            for b in 0..good {
                append_ok(&p, &mut acked, &format!("b{b}"), 1 + b % 3);
            }
            let (end, hw) = (p.log_end_offset(), p.high_watermark());
            assert_eq!(end.0, acked_end(&acked), "{ctx}");

            fi.fail_next(SimOp::Write, SimError::Enospc);
            let r = p.append(&batch("doomed", 2));
            assert!(is_io(&r), "{ctx}: the failing write: {r:?}");
            assert_eq!(
                p.log_end_offset(),
                end,
                "{ctx}: a failed write must not advance the log"
            );
            assert_eq!(p.high_watermark(), hw, "{ctx}");
            assert_refuses_writes(&p, &acked, &ctx);
            let r = p.close();
            assert!(
                is_previous_failed(&r),
                "{ctx}: close after the fault: {r:?}"
            );

            if good % 2 == 0 {
                p.simulate_crash();
            } else {
                drop(p);
            }
            let p = reopen(Path::new(DIR), plain(durability.clone(), &fi), &ctx);
            // The failed batch was never written: the log resumes exactly where it stood.
            assert_eq!(p.log_end_offset(), end, "{ctx}");
            check_reopened(&p, &mut acked, &ctx);
        }
    }
}

#[test]
fn failed_fsync_under_sync_each_append() {
    for good in 0..8 {
        let ctx = format!("SyncEachAppend, {good} good appends");
        let fi = Arc::new(SimFs::new());
        let p = Partition::open(Path::new(DIR), config(Durability::SyncEachAppend, &fi)).unwrap();
        let mut acked = Acked::new();
        for b in 0..good {
            append_ok(&p, &mut acked, &format!("b{b}"), 1 + b % 3);
        }
        let end = acked_end(&acked);
        assert_eq!(p.high_watermark().0, end, "{ctx}");

        fi.fail_next(SimOp::Sync, SimError::Eio);
        let r = p.append(&batch("doomed", 2));
        assert!(is_io(&r), "{ctx}: the append whose fsync fails: {r:?}");
        // Under SyncEachAppend readers only see synced batches.
        assert_eq!(
            p.high_watermark().0,
            end,
            "{ctx}: an unsynced batch became visible"
        );
        assert_refuses_writes(&p, &acked, &ctx);
        let r = p.flush();
        assert!(
            is_previous_failed(&r),
            "{ctx}: flush after the fault: {r:?}"
        );

        if good % 2 == 0 {
            p.simulate_crash();
        } else {
            drop(p);
        }
        let p = reopen(Path::new(DIR), plain(Durability::SyncEachAppend, &fi), &ctx);
        // The unacknowledged batch may survive (it reached the page cache) or not, but only whole.
        let after = p.log_end_offset().0;
        assert!(
            after == end || after == end + 2,
            "{ctx}: log end {after}, acknowledged end {end}"
        );
        if after == end + 2 {
            let all = read_all(&p);
            let tail: Vec<_> = all[all.len() - 2..]
                .iter()
                .map(|(_, v)| v.clone())
                .collect();
            assert_eq!(tail, vec![value("doomed", 0), value("doomed", 1)], "{ctx}");
            acked.push((end, value("doomed", 0)));
            acked.push((end + 1, value("doomed", 1)));
        }
        check_reopened(&p, &mut acked, &ctx);
    }
}

#[test]
fn failed_threshold_fsync() {
    let thresholds = [
        Durability::SyncThreshold {
            records: Some(10),
            bytes: None,
            interval: None,
        },
        Durability::SyncThreshold {
            records: None,
            bytes: Some(1500),
            interval: None,
        },
        Durability::SyncThreshold {
            records: Some(7),
            bytes: Some(100_000),
            interval: Some(Duration::from_secs(3600)),
        },
    ];
    for durability in thresholds {
        let ctx = format!("{durability:?}");
        let fi = Arc::new(SimFs::new());
        let p = Partition::open(Path::new(DIR), config(durability.clone(), &fi)).unwrap();
        let mut acked = Acked::new();
        // A synced prefix, then arm: appends below the threshold do not fsync and succeed;
        // the first one to reach it fsyncs, fails, and reports the failure.
        for b in 0..5 {
            append_ok(&p, &mut acked, &format!("pre{b}"), 3);
        }
        p.flush().unwrap();
        fi.fail_next(SimOp::Sync, SimError::Eio);
        let mut below = 0;
        let err = loop {
            assert!(below < 100, "{ctx}: the threshold never triggered an fsync");
            match try_append(&p, &mut acked, &format!("t{below}"), 3) {
                Ok(_) => below += 1,
                Err(e) => break e,
            }
        };
        assert!(
            matches!(err, Error::Io { .. }),
            "{ctx}: threshold fsync failure: {err:?}"
        );
        assert!(
            below >= 1,
            "{ctx}: an fsync ran before any threshold was reached"
        );
        assert_refuses_writes(&p, &acked, &ctx);
        let r = p.flush();
        assert!(
            is_previous_failed(&r),
            "{ctx}: flush after the fault: {r:?}"
        );
        p.simulate_crash();
        // Acknowledged but unsynced records survive a process crash (they are in the page cache).
        let p = reopen(Path::new(DIR), plain(durability, &fi), &ctx);
        check_reopened(&p, &mut acked, &ctx);
    }
}

#[test]
fn failed_flush_under_no_sync() {
    for crash in [true, false] {
        let ctx = format!("NoSync, crash {crash}");
        let fi = Arc::new(SimFs::new());
        let p = Partition::open(Path::new(DIR), config(Durability::NoSync, &fi)).unwrap();
        let mut acked = Acked::new();
        // Armed from the start: NoSync appends never fsync, across several rolls.
        fi.fail_next(SimOp::Sync, SimError::Eio);
        for b in 0..20 {
            append_ok(&p, &mut acked, &format!("b{b}"), 1 + b % 4);
        }
        assert!(p.segment_count() > 2, "{ctx}: expected rolls");
        let r = p.flush();
        assert!(is_io(&r), "{ctx}: the failing flush: {r:?}");
        assert_refuses_writes(&p, &acked, &ctx);
        let r = p.flush();
        assert!(
            is_previous_failed(&r),
            "{ctx}: flush after the fault: {r:?}"
        );
        if crash {
            p.simulate_crash();
        } else {
            drop(p);
        }
        let p = reopen(Path::new(DIR), plain(Durability::NoSync, &fi), &ctx);
        // Nothing unacknowledged was written: the reopened log ends where the acks said.
        assert_eq!(p.log_end_offset().0, acked_end(&acked), "{ctx}");
        check_reopened(&p, &mut acked, &ctx);
    }
}

#[test]
fn fsync_failure_with_concurrent_appenders() {
    const THREADS: usize = 4;
    let fi = Arc::new(SimFs::new());
    let p = Partition::open(Path::new(DIR), config(Durability::SyncEachAppend, &fi)).unwrap();
    let acks = AtomicUsize::new(0);

    let results: Vec<(Acked, Vec<seglog::Result<AppendInfo>>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|tid| {
                let (p, acks) = (&p, &acks);
                s.spawn(move || {
                    let mut acked = Acked::new();
                    let mut errors = Vec::new();
                    for seq in 0.. {
                        assert!(seq < 1_000_000, "thread {tid}: appends never failed");
                        match try_append(
                            p,
                            &mut acked,
                            &format!("t{tid}-s{seq}"),
                            1 + (seq + tid) % 5,
                        ) {
                            Ok(_) => {
                                acks.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => {
                                errors.push(Err(e));
                                break;
                            }
                        }
                    }
                    // Once this thread has seen the failure, it stays refused.
                    for seq in 0..3 {
                        errors.push(try_append(p, &mut acked, &format!("t{tid}-late{seq}"), 1));
                    }
                    (acked, errors)
                })
            })
            .collect();
        // Let the threads build up acknowledged appends (and rolls), then fail one fsync.
        while acks.load(Ordering::Relaxed) < 60 && !handles.iter().all(|h| h.is_finished()) {
            std::thread::sleep(Duration::from_millis(1));
        }
        fi.fail_next(SimOp::Sync, SimError::Eio);
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    let mut acked = Acked::new();
    let mut io_errors = 0;
    for (tid, (a, errors)) in results.into_iter().enumerate() {
        let (first, later) = errors.split_first().expect("each thread stops at an error");
        assert!(
            is_io(first) || is_previous_failed(first),
            "thread {tid}: first error {first:?}"
        );
        io_errors += usize::from(is_io(first));
        for r in later {
            assert!(
                is_previous_failed(r),
                "thread {tid}: append after the fault: {r:?}"
            );
        }
        acked.extend(a);
    }
    assert_eq!(
        io_errors, 1,
        "exactly one append sees the injected fsync failure"
    );
    acked.sort();
    // Under SyncEachAppend every acknowledged record was synced and is visible.
    assert!(
        p.high_watermark().0 >= acked_end(&acked),
        "an append was acknowledged without a successful fsync covering it"
    );
    assert_acked_readable(&p, &acked, "before reopen");
    drop(p);
    let p = reopen(
        Path::new(DIR),
        plain(Durability::SyncEachAppend, &fi),
        "after reopen",
    );
    check_reopened(&p, &mut acked, "after reopen");
}

#[test]
fn failing_fsync_in_close_is_reported() {
    // NoSync with rolls leaves unsynced sealed segments for close to sync; SyncEachAppend
    // leaves nothing unsynced, but close still syncs the active segment.
    for durability in [Durability::NoSync, Durability::SyncEachAppend] {
        let ctx = format!("{durability:?}");
        let fi = Arc::new(SimFs::new());
        let p = Partition::open(Path::new(DIR), config(durability.clone(), &fi)).unwrap();
        let mut acked = Acked::new();
        for b in 0..12 {
            append_ok(&p, &mut acked, &format!("b{b}"), 1 + b % 3);
        }
        fi.fail_next(SimOp::Sync, SimError::Eio);
        let r = p.close();
        assert!(is_io(&r), "{ctx}: close with a failing fsync: {r:?}");
        assert!(
            !fi.exists(Path::new(DIR).join(".clean-shutdown")),
            "{ctx}: clean-shutdown marker written after a failed fsync"
        );
        let r = p.append(&batch("after-close", 1));
        assert!(
            matches!(r, Err(Error::Closed) | Err(Error::PreviousIoFailed)),
            "{ctx}: {r:?}"
        );
        assert_acked_readable(&p, &acked, &ctx);
        drop(p);
        assert!(
            !fi.exists(Path::new(DIR).join(".clean-shutdown")),
            "{ctx}: dropping after a failed close wrote the clean-shutdown marker"
        );
        let p = reopen(Path::new(DIR), plain(durability, &fi), &ctx);
        check_reopened(&p, &mut acked, &ctx);
    }
}
