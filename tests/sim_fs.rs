//! The simulated file system (`seglog::testing::SimFs`) keeps exactly what its model says
//! across a power loss — synced bytes, names whose directory was synced (a new directory
//! only once its parent was synced), under a torn power loss a random subset of unsynced
//! sectors and of unsynced directory changes — drops the writes a failed fsync lost, and
//! fails the operations it was told to, and partitions built on it keep their durability promises: every append acknowledged
//! under `SyncEachAppend` survives a power loss, and under `NoSync` a power loss leaves a
//! prefix of what was appended, never a wrong record.

use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::sync::Arc;

use seglog::testing::{SimError, SimFs, SimOp, SECTOR_BYTES};
use seglog::{Durability, Offset, Partition, PartitionConfig, Record};

const DIR: &str = "/data";
const FILE: &str = "/data/f";

/// A file system holding `/data/f` with `content`, durably (data, name, directory).
fn with_durable_file(content: &[u8]) -> SimFs {
    let sim = SimFs::new();
    sim.create_dir_all(DIR).unwrap();
    sim.sync_dir("/").unwrap();
    sim.write_file(FILE, 0, content).unwrap();
    sim.sync_file(FILE).unwrap();
    sim.sync_dir(DIR).unwrap();
    sim
}

#[test]
fn a_write_not_synced_is_gone_after_power_loss() {
    let sim = with_durable_file(b"durable");
    sim.write_file(FILE, 7, b"+lost").unwrap();
    sim.write_file(FILE, 0, b"D").unwrap();
    assert_eq!(sim.read_file(FILE).unwrap(), b"Durable+lost");
    sim.power_loss();
    assert_eq!(sim.read_file(FILE).unwrap(), b"durable");
}

#[test]
fn a_synced_write_survives_power_loss() {
    let sim = with_durable_file(b"durable");
    sim.write_file(FILE, 7, b"+kept").unwrap();
    sim.sync_file(FILE).unwrap();
    sim.write_file(FILE, 12, b"+lost").unwrap();
    sim.power_loss();
    assert_eq!(sim.read_file(FILE).unwrap(), b"durable+kept");
}

#[test]
fn a_new_file_is_gone_after_power_loss_unless_its_directory_was_synced() {
    let sim = SimFs::new();
    sim.create_dir_all(DIR).unwrap();
    sim.sync_dir("/").unwrap();
    sim.write_file(FILE, 0, b"data").unwrap();
    sim.sync_file(FILE).unwrap();
    sim.power_loss();
    assert!(!sim.exists(FILE), "its data was synced, its name was not");
    assert!(sim.exists(DIR), "the directory's own entry was synced");

    sim.write_file(FILE, 0, b"data").unwrap();
    sim.sync_dir(DIR).unwrap();
    sim.power_loss();
    assert!(sim.exists(FILE), "the name was synced");
    assert_eq!(
        sim.read_file(FILE).unwrap(),
        b"",
        "the name was synced, the data was not"
    );
}

#[test]
fn a_new_directory_is_gone_with_its_files_unless_its_parent_was_synced() {
    // Was forgiving before: directories were durable as soon as they were created.
    let sim = SimFs::new();
    sim.create_dir_all("/a/b").unwrap();
    sim.sync_dir("/").unwrap();
    sim.write_file("/a/b/f", 0, b"data").unwrap();
    sim.sync_file("/a/b/f").unwrap();
    sim.sync_dir("/a/b").unwrap();
    sim.power_loss();
    assert!(sim.exists("/a"), "its entry in / was synced");
    assert!(
        !sim.exists("/a/b") && !sim.exists("/a/b/f"),
        "/a was never synced: b's entry, and all below it, is lost"
    );
    sim.create_dir_all("/a/b").unwrap();
    sim.write_file("/a/b/f", 0, b"data").unwrap();
    sim.sync_file("/a/b/f").unwrap();
    sim.sync_dir("/a/b").unwrap();
    sim.sync_dir("/a").unwrap();
    sim.power_loss();
    assert_eq!(sim.read_file("/a/b/f").unwrap(), b"data");
}

#[test]
fn a_directory_rename_and_removal_follow_the_parent_sync() {
    let sim = with_durable_file(b"x");
    sim.rename(DIR, "/moved").unwrap();
    assert!(sim.exists("/moved/f") && !sim.exists(FILE));
    sim.power_loss();
    assert!(sim.exists(FILE) && !sim.exists("/moved"), "rename undone");
    sim.rename(DIR, "/moved").unwrap();
    sim.sync_dir("/").unwrap();
    sim.power_loss();
    assert_eq!(sim.read_file("/moved/f").unwrap(), b"x", "rename kept");

    sim.remove_dir_all("/moved").unwrap();
    assert!(!sim.exists("/moved/f") && !sim.exists("/moved"));
    sim.power_loss();
    assert_eq!(sim.read_file("/moved/f").unwrap(), b"x", "removal undone");
    sim.remove_dir_all("/moved").unwrap();
    sim.sync_dir("/").unwrap();
    sim.power_loss();
    assert!(!sim.exists("/moved"), "removal kept");
}

#[test]
fn rename_durability_follows_the_directory_sync() {
    let sim = with_durable_file(b"old name");
    let new = "/data/g";
    sim.rename(FILE, new).unwrap();
    assert!(!sim.exists(FILE) && sim.exists(new));
    sim.power_loss();
    assert!(
        sim.exists(FILE) && !sim.exists(new),
        "rename not synced: undone"
    );
    assert_eq!(sim.read_file(FILE).unwrap(), b"old name");

    sim.rename(FILE, new).unwrap();
    sim.sync_dir(DIR).unwrap();
    sim.power_loss();
    assert!(!sim.exists(FILE) && sim.exists(new), "rename synced: kept");
    assert_eq!(sim.read_file(new).unwrap(), b"old name");

    // A rename over an existing file: the old target comes back if not synced.
    sim.write_file(FILE, 0, b"replacement").unwrap();
    sim.sync_file(FILE).unwrap();
    sim.sync_dir(DIR).unwrap();
    sim.rename(FILE, new).unwrap();
    sim.power_loss();
    assert_eq!(sim.read_file(new).unwrap(), b"old name");
    assert_eq!(sim.read_file(FILE).unwrap(), b"replacement");
}

#[test]
fn removal_durability_follows_the_directory_sync() {
    let sim = with_durable_file(b"x");
    sim.remove_file(FILE).unwrap();
    assert!(!sim.exists(FILE));
    sim.power_loss();
    assert!(sim.exists(FILE), "removal not synced: undone");
    sim.remove_file(FILE).unwrap();
    sim.sync_dir(DIR).unwrap();
    sim.power_loss();
    assert!(!sim.exists(FILE));
}

fn pattern(len: usize, salt: u8) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ salt).collect()
}

#[test]
fn torn_power_loss_keeps_a_random_subset_of_unsynced_sectors() {
    // Was forgiving before: a torn power loss kept an in-order prefix of the unsynced
    // pieces. Now any subset of them, each whole: a later sector may survive an earlier one.
    const DURABLE: usize = 100;
    let unsynced = pattern(2048, 0x5a);
    let mut outcomes = BTreeSet::new();
    let mut hole_seen = false;
    for seed in 0..64 {
        let sim = with_durable_file(&[7u8; DURABLE]);
        sim.write_file(FILE, DURABLE as u64, &unsynced).unwrap();
        sim.power_loss_torn(seed);
        let got = sim.read_file(FILE).unwrap();
        assert_eq!(&got[..DURABLE], &[7u8; DURABLE], "seed {seed}");
        // The write in pieces cut at sector boundaries: each kept whole or not at all.
        let mut kept = Vec::new();
        let mut pos = DURABLE;
        while pos < DURABLE + unsynced.len() {
            let end = (pos / SECTOR_BYTES as usize + 1) * SECTOR_BYTES as usize;
            let end = end.min(DURABLE + unsynced.len());
            let piece = got.get(pos..end);
            let whole = piece == Some(&unsynced[pos - DURABLE..end - DURABLE]);
            let zero = piece.is_none_or(|p| p.iter().all(|&b| b == 0));
            assert!(whole || zero, "seed {seed}: piece at {pos} torn inside");
            assert!(
                piece.is_some() || got.len() <= pos,
                "seed {seed}: short file"
            );
            kept.push(whole);
            pos = end;
        }
        let last = kept.iter().rposition(|&k| k).map_or(DURABLE, |i| {
            (DURABLE / SECTOR_BYTES as usize + i + 1) * SECTOR_BYTES as usize
        });
        assert_eq!(got.len(), last.min(DURABLE + unsynced.len()), "seed {seed}");
        hole_seen |= kept.windows(2).any(|w| !w[0] && w[1]);
        outcomes.insert(kept);

        // Deterministic: the same seed and history tear the same way.
        let again = with_durable_file(&[7u8; DURABLE]);
        again.write_file(FILE, DURABLE as u64, &unsynced).unwrap();
        again.power_loss_torn(seed);
        assert_eq!(again.read_file(FILE).unwrap(), got, "seed {seed}");
    }
    assert!(outcomes.len() >= 8, "64 seeds gave only {outcomes:?}");
    assert!(
        hole_seen,
        "no seed kept a later sector without an earlier one"
    );
}

#[test]
fn torn_power_loss_keeps_a_random_subset_of_directory_changes() {
    // Was forgiving before: every unsynced directory change was undone. Now each one (a
    // creation, a removal, a rename: each whole) survives or not at random.
    let mut outcomes = BTreeSet::new();
    for seed in 0..32 {
        let sim = with_durable_file(b"x");
        for name in ["/data/a", "/data/b", "/data/c"] {
            sim.write_file(name, 0, b"new").unwrap();
        }
        sim.rename(FILE, "/data/g").unwrap();
        sim.power_loss_torn(seed);
        let names = sim.file_names(DIR);
        let renamed = names.contains(&"g".to_owned());
        assert_ne!(
            renamed,
            names.contains(&"f".to_owned()),
            "seed {seed}: a rename is whole: {names:?}"
        );
        outcomes.insert(names);
    }
    assert!(outcomes.len() >= 8, "32 seeds gave only {outcomes:?}");
}

#[test]
fn a_failed_sync_loses_the_writes_it_covered() {
    // Was forgiving before: a failed sync kept its writes pending, and the next good sync
    // made them durable. Linux drops them (marks the pages clean after the error).
    let sim = with_durable_file(b"abc");
    sim.write_file(FILE, 3, b"lost").unwrap();
    sim.fail_next(SimOp::Sync, SimError::Eio);
    assert!(sim.sync_file(FILE).is_err());
    assert_eq!(sim.read_file(FILE).unwrap(), b"abclost", "still cached");
    sim.write_file(FILE, 7, b"+later").unwrap();
    sim.sync_file(FILE).unwrap();
    sim.power_loss();
    assert_eq!(
        sim.read_file(FILE).unwrap(),
        b"abc\0\0\0\0+later",
        "the later sync succeeded without the lost write"
    );
}

#[test]
fn cut_power_at_fails_every_later_operation_until_the_power_loss() {
    let sim = with_durable_file(b"abc");
    sim.cut_power_at(2);
    sim.write_file(FILE, 3, b"d").unwrap();
    assert!(!sim.power_is_cut());
    assert_eq!(raw(&sim.sync_file(FILE).unwrap_err()), Some(5));
    assert!(sim.power_is_cut());
    assert!(sim.write_file(FILE, 0, b"z").is_err());
    sim.power_loss();
    assert!(!sim.power_is_cut());
    assert_eq!(sim.read_file(FILE).unwrap(), b"abc", "the sync never ran");
}

fn raw(e: &std::io::Error) -> Option<i32> {
    e.raw_os_error()
}

#[test]
fn fault_at_the_nth_operation() {
    let sim = with_durable_file(b"abc");
    let before = sim.operations();
    sim.fail_nth(3, None, SimError::Eio);
    sim.write_file(FILE, 3, b"1").unwrap();
    sim.read_file(FILE).unwrap();
    let e = sim.write_file(FILE, 4, b"2").unwrap_err();
    assert_eq!(raw(&e), Some(5), "EIO: {e:?}");
    assert_eq!(
        sim.read_file(FILE).unwrap(),
        b"abc1",
        "a failed write changes nothing"
    );
    assert_eq!(sim.operations() - before, 4, "failed operations count too");

    // Restricted to one kind: only syncs count.
    sim.fail_nth(2, Some(SimOp::Sync), SimError::Enospc);
    sim.sync_file(FILE).unwrap();
    sim.write_file(FILE, 4, b"2").unwrap();
    sim.read_file(FILE).unwrap();
    let e = sim.sync_file(FILE).unwrap_err();
    assert_eq!(raw(&e), Some(28), "ENOSPC: {e:?}");
    assert_eq!(e.kind(), ErrorKind::StorageFull);
    sim.power_loss();
    assert_eq!(
        sim.read_file(FILE).unwrap(),
        b"abc1",
        "the failed sync made nothing durable"
    );
    sim.sync_file(FILE).unwrap();
}

#[test]
fn fault_at_every_nth_operation() {
    for error in [SimError::Eio, SimError::Enospc] {
        let sim = with_durable_file(b"");
        sim.fail_every(3, Some(SimOp::Write), error);
        let mut failed = Vec::new();
        for i in 0..10u8 {
            // Other operations in between do not count.
            sim.sync_file(FILE).unwrap();
            if let Err(e) = sim.write_file(FILE, u64::from(i), &[i]) {
                let expected = if error == SimError::Eio { 5 } else { 28 };
                assert_eq!(raw(&e), Some(expected), "{error:?}");
                failed.push(i);
            }
        }
        assert_eq!(failed, [2, 5, 8], "{error:?}");
        sim.clear_faults();
        sim.write_file(FILE, 10, b"z").unwrap();
    }

    // Unrestricted: every operation counts.
    let sim = with_durable_file(b"");
    sim.fail_every(2, None, SimError::Eio);
    let results: Vec<bool> = (0..6).map(|_| sim.sync_file(FILE).is_ok()).collect();
    assert_eq!(results, [true, false, true, false, true, false]);
}

// ---- partitions on the simulated file system ----

fn config(sim: &Arc<SimFs>, durability: Durability) -> PartitionConfig {
    PartitionConfig::default()
        .with_segment_bytes(1024)
        .with_index_interval_bytes(256)
        .with_index_bytes_max(4096)
        .with_segment_ms(None)
        .with_retention_ms(None)
        .with_durability(durability)
        .with_file_system(sim.clone())
}

fn value(i: u64) -> Vec<u8> {
    format!("record-{i}-{}", "v".repeat((i % 7) as usize * 20)).into_bytes()
}

/// Append batches of 1..=3 records, `batches` times; returns the end offset.
fn append_batches(p: &Partition, from: u64, batches: u64) -> u64 {
    let mut next = from;
    for b in 0..batches {
        let n = 1 + b % 3;
        let records: Vec<Record> = (next..next + n).map(|i| Record::new(value(i))).collect();
        let info = p.append(&records).unwrap();
        assert_eq!(info.base_offset, Offset(next));
        next += n;
    }
    next
}

/// Every readable record, checking that offset `i` holds `value(i)`.
fn read_checked(p: &Partition) -> u64 {
    let hw = p.high_watermark().0;
    let mut next = p.log_start_offset().0;
    assert_eq!(next, 0);
    while next < hw {
        let batches = p.read(Offset(next), 64 << 10).unwrap();
        assert!(!batches.is_empty(), "empty read at {next} below {hw}");
        for r in batches.records() {
            let r = r.unwrap();
            assert_eq!(r.offset, Offset(next), "offsets are dense");
            assert_eq!(r.value.unwrap().as_ref(), value(next), "record {next}");
            next += 1;
        }
    }
    next
}

#[test]
fn sync_each_append_every_acknowledged_append_survives_power_loss() {
    for (batches, torn) in [
        (0, None),
        (1, None),
        (7, None),
        (40, None),
        (40, Some(3)),
        (25, Some(11)),
    ] {
        let ctx = format!("{batches} batches, torn {torn:?}");
        let sim = Arc::new(SimFs::new());
        let p = Partition::open(DIR, config(&sim, Durability::SyncEachAppend)).unwrap();
        let acked = append_batches(&p, 0, batches);
        assert!(
            batches < 40 || p.segment_count() > 3,
            "{ctx}: expected rolls"
        );
        p.simulate_crash();
        match torn {
            Some(seed) => sim.power_loss_torn(seed),
            None => sim.power_loss(),
        }
        let p = Partition::open(DIR, config(&sim, Durability::SyncEachAppend)).unwrap();
        assert_eq!(p.log_end_offset(), Offset(acked), "{ctx}");
        assert_eq!(read_checked(&p), acked, "{ctx}");
        // And the log goes on from there.
        let end = append_batches(&p, acked, 3);
        drop(p);
        sim.power_loss();
        let p = Partition::open(DIR, config(&sim, Durability::SyncEachAppend)).unwrap();
        assert_eq!(read_checked(&p), end, "{ctx}: after the second power loss");
    }
}

#[test]
fn no_sync_power_loss_leaves_a_prefix_of_the_appends() {
    let mut ends = BTreeSet::new();
    for seed in 0..12u64 {
        let sim = Arc::new(SimFs::new());
        let p = Partition::open(DIR, config(&sim, Durability::NoSync)).unwrap();
        let flushed = append_batches(&p, 0, seed * 3);
        p.flush().unwrap();
        let appended = append_batches(&p, flushed, 30);
        p.simulate_crash();
        if seed % 2 == 0 {
            sim.power_loss();
        } else {
            sim.power_loss_torn(seed);
        }
        let p = Partition::open(DIR, config(&sim, Durability::NoSync))
            .unwrap_or_else(|e| panic!("seed {seed}: reopen after power loss: {e}"));
        let end = read_checked(&p);
        assert_eq!(p.log_end_offset(), Offset(end), "seed {seed}");
        assert!(
            (flushed..=appended).contains(&end),
            "seed {seed}: kept {end}, flushed {flushed}, appended {appended}"
        );
        ends.insert(end);
        // Appends continue right after what survived.
        assert_eq!(append_batches(&p, end, 2), end + 3, "seed {seed}");
    }
    assert!(ends.len() > 1, "every run kept the same prefix: {ends:?}");
}

#[test]
fn failing_operations_during_appends_never_corrupt_what_was_acknowledged() {
    // Fail the nth file operation for many n: whatever fails, after a power loss the
    // acknowledged records are all there and nothing else is wrong.
    for n in (1..120).step_by(7) {
        let sim = Arc::new(SimFs::new());
        let p = Partition::open(DIR, config(&sim, Durability::SyncEachAppend)).unwrap();
        sim.fail_nth(n, None, SimError::Eio);
        let mut acked = 0;
        for b in 0..20u64 {
            let records: Vec<Record> = (acked..acked + 1 + b % 2)
                .map(|i| Record::new(value(i)))
                .collect();
            match p.append(&records) {
                Ok(info) => acked = info.last_offset.0 + 1,
                Err(_) => break,
            }
        }
        p.simulate_crash();
        sim.power_loss();
        sim.clear_faults();
        let p = Partition::open(DIR, config(&sim, Durability::SyncEachAppend))
            .unwrap_or_else(|e| panic!("fault at {n}: reopen: {e}"));
        let end = read_checked(&p);
        assert!(
            end >= acked,
            "fault at {n}: acknowledged {acked}, kept {end}"
        );
    }
}

#[test]
fn locks_and_handles_across_a_power_loss() {
    let sim = Arc::new(SimFs::new());
    let p = Partition::open(DIR, config(&sim, Durability::SyncEachAppend)).unwrap();
    let acked = append_batches(&p, 0, 4);
    assert!(
        matches!(
            Partition::open(DIR, config(&sim, Durability::SyncEachAppend)),
            Err(seglog::Error::AlreadyOpen { .. })
        ),
        "the simulated lock file is held"
    );
    sim.power_loss();
    // The machine went down: the old handle's files are dead, its lock is gone.
    assert!(matches!(
        p.append(&[Record::new("after")]),
        Err(seglog::Error::Io { .. })
    ));
    let q = Partition::open(DIR, config(&sim, Durability::SyncEachAppend)).unwrap();
    assert_eq!(read_checked(&q), acked);
    drop(p);
    assert_eq!(
        read_checked(&q),
        acked,
        "dropping the dead handle changed nothing"
    );
    drop(q);
    let q = Partition::open(DIR, config(&sim, Durability::SyncEachAppend)).unwrap();
    assert!(
        q.recovery_report().clean_shutdown,
        "closed cleanly on the simulation"
    );
    assert_eq!(read_checked(&q), acked);
}
