//! Resource bounds: open file descriptors stay bounded however many segments are read or rolled
//! (under every durability policy), retention frees the space of what it deletes, and a
//! partition reopens with index settings different from those it was written with.

use seglog::{Durability, Offset, Partition, PartitionConfig, Record};

fn fill(p: &Partition, records: u64) {
    for i in 0..records {
        p.append(&[Record::new(format!("value {i:06}")).with_timestamp(1_000 + i as i64)])
            .unwrap();
    }
}

fn read_all(p: &Partition) -> u64 {
    let mut next = Offset(0);
    let mut n = 0;
    while next < p.log_end_offset() {
        let r = p.read(next, 64 * 1024).unwrap();
        for rec in r.records() {
            let rec = rec.unwrap();
            assert_eq!(rec.offset, Offset(n));
            assert_eq!(rec.value.unwrap(), format!("value {n:06}").as_bytes());
            n += 1;
        }
        next = r.next_offset();
    }
    n
}

#[test]
fn descriptors_stay_bounded_while_reading_many_segments() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = PartitionConfig::default()
        .with_durability(Durability::NoSync)
        .with_segment_bytes(1024)
        .with_open_segments_max(4);
    let p = Partition::open(dir.path(), cfg.clone()).unwrap();
    fill(&p, 3_000);
    p.close().unwrap();
    drop(p);

    let p = Partition::open(dir.path(), cfg).unwrap();
    let segments = p.segment_count();
    assert!(segments > 100, "{segments} segments");
    let before = fds_in(dir.path()).len();
    // Read everything twice, look every timestamp up, apply retention: each touches every
    // segment, yet at most `open_segments_max` sealed ones may stay open.
    assert_eq!(read_all(&p), 3_000);
    assert_eq!(read_all(&p), 3_000);
    for ts in (1_000..4_000).step_by(97) {
        assert_eq!(
            p.offset_for_timestamp(ts).unwrap(),
            Some(Offset(ts as u64 - 1_000))
        );
    }
    p.apply_retention_at(0).unwrap();
    // Only descriptors on this partition's files: the other tests of this binary run in
    // parallel threads and open files of their own.
    let after = fds_in(dir.path()).len();
    assert!(
        after <= before + 4,
        "{before} descriptors before reading {segments} segments, {after} after"
    );
}

#[test]
fn reopens_with_smaller_or_larger_index_settings() {
    let dir = tempfile::tempdir().unwrap();
    let big = PartitionConfig::default()
        .with_durability(Durability::NoSync)
        .with_segment_bytes(64 * 1024)
        .with_index_interval_bytes(64)
        .with_index_bytes_max(64 * 1024);
    let p = Partition::open(dir.path(), big.clone()).unwrap();
    fill(&p, 2_000);
    let written = p.segment_count();
    p.simulate_crash();

    // Recovery rebuilds indexes that no longer fit: entries are skipped, never a panic.
    let small = big
        .clone()
        .with_index_bytes_max(64)
        .with_index_interval_bytes(4096);
    for clean in [false, true] {
        let p = Partition::open(dir.path(), small.clone()).unwrap();
        assert_eq!(p.recovery_report().clean_shutdown, clean);
        assert_eq!(read_all(&p), 2_000 + u64::from(clean) * 10);
        if !clean {
            fill_more(&p);
            p.close().unwrap();
        } else {
            // The small index rolls the active segment at once.
            fill_more(&p);
            assert!(p.segment_count() > written);
            p.close().unwrap();
        }
    }
    let p = Partition::open(dir.path(), big).unwrap();
    assert_eq!(read_all(&p), 2_020);
}

fn fill_more(p: &Partition) {
    let start = p.log_end_offset().0;
    for i in start..start + 10 {
        p.append(&[Record::new(format!("value {i:06}")).with_timestamp(1_000 + i as i64)])
            .unwrap();
    }
}

#[test]
fn a_closed_handle_changes_nothing_in_a_directory_reopened_since() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = PartitionConfig::default()
        .with_durability(Durability::NoSync)
        .with_segment_bytes(1024);
    let old = Partition::open(dir.path(), cfg.clone()).unwrap();
    fill(&old, 200);
    old.close().unwrap();
    let new = Partition::open(dir.path(), cfg).unwrap();
    for result in [
        old.delete_records_before(Offset(150)).map(|_| ()),
        old.apply_retention_at(i64::MAX).map(|_| ()),
        old.compact_at(i64::MAX, true).map(|_| ()),
    ] {
        assert!(matches!(result, Err(seglog::Error::Closed)), "{result:?}");
    }
    assert_eq!(new.log_start_offset(), Offset(0));
    assert_eq!(read_all(&new), 200);
}

#[test]
fn an_emptied_sealed_segment_is_a_hole_not_a_skip() {
    // Outside compaction nothing empties a sealed segment: an empty one lost its data, and
    // neither recovery nor reads may pass over its offsets silently.
    for (durability, crash) in [
        (Durability::SyncEachAppend, false),
        (Durability::SyncEachAppend, true),
        (Durability::NoSync, true),
    ] {
        let what = format!("{durability:?}, crash {crash}");
        let dir = tempfile::tempdir().unwrap();
        let cfg = PartitionConfig::default()
            .with_durability(durability.clone())
            .with_segment_bytes(1024);
        let p = Partition::open(dir.path(), cfg.clone()).unwrap();
        fill(&p, 200);
        let bases = p.segment_base_offsets();
        assert!(bases.len() > 3);
        if crash {
            p.simulate_crash();
        } else {
            p.close().unwrap();
            drop(p);
        }
        let victim = bases[1];
        std::fs::OpenOptions::new()
            .write(true)
            .open(seglog::segment_path(dir.path(), victim, "log"))
            .unwrap()
            .set_len(0)
            .unwrap();
        let p = Partition::open(dir.path(), cfg.clone()).unwrap_or_else(|e| panic!("{what}: {e}"));
        if durability == Durability::NoSync {
            // No recovery point was ever written: recovery scans everything and, above the
            // recovery point, truncates the log at the hole.
            assert_eq!(p.log_end_offset(), victim, "{what}");
            assert!(p.recovery_report().segments_removed > 0, "{what}");
        } else {
            // Below the recovery point nothing is scanned at open; reads find the hole.
            let r = p.read(victim, 1024);
            assert!(
                matches!(r, Err(seglog::Error::Corrupt { .. })),
                "{what}: {r:?}"
            );
            let r = p.read(Offset(0), usize::MAX);
            assert!(r.is_ok(), "{what}: the segment before the hole still reads");
        }
    }
}

#[test]
fn a_segment_log_over_the_largest_segment_size_is_refused_not_panicked_on() {
    // Kafka's index positions are i32: a longer `.log` written elsewhere is damage. A sparse
    // file costs no disk.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("00000000000000000000.log");
    std::fs::File::create(&log)
        .unwrap()
        .set_len(seglog::SEGMENT_BYTES_MAX + 1)
        .unwrap();
    match seglog::Partition::open(dir.path(), seglog::PartitionConfig::default()) {
        Err(seglog::Error::Corrupt { path, .. }) => assert_eq!(path, log),
        other => panic!("expected a typed error, got {other:?}"),
    }
}

/// What this process's descriptors on files in `dir` point at (only this test's directory, so
/// tests running in parallel do not count); a deleted file's ends in " (deleted)".
fn fds_in(dir: &std::path::Path) -> Vec<String> {
    let dir = dir.canonicalize().unwrap();
    let mut targets = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").unwrap() {
        // A descriptor may close between listing and reading its link.
        let Ok(target) = std::fs::read_link(entry.unwrap().path()) else {
            continue;
        };
        if target.starts_with(&dir) && target != dir {
            targets.push(target.to_string_lossy().into_owned());
        }
    }
    targets
}

#[test]
fn rolls_keep_the_descriptor_budget_without_fsyncs() {
    // A threshold never reached: SyncThreshold must not hold rolled segments open either.
    let never = Durability::SyncThreshold {
        records: Some(u64::MAX),
        bytes: None,
        interval: None,
    };
    for durability in [Durability::NoSync, never] {
        rolls_keep_the_descriptor_budget(durability);
    }
}

fn rolls_keep_the_descriptor_budget(durability: Durability) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = PartitionConfig::default()
        .with_durability(durability.clone())
        .with_segment_bytes(seglog::SEGMENT_BYTES_MIN)
        .with_open_segments_max(8);
    let p = Partition::open(dir.path(), cfg).unwrap();
    while p.segment_count() < 2_000 {
        let n = p.log_end_offset().0;
        p.append(&[Record::new(format!("value {n:06}"))]).unwrap();
    }
    // One `.log` descriptor per loaded segment: the active one plus at most
    // `open_segments_max` sealed ones. Before the fix every rolled segment stayed open.
    let fds = fds_in(dir.path());
    let logs = fds.iter().filter(|t| t.ends_with(".log")).count();
    assert!(
        logs <= 1 + 8,
        "{durability:?}: {logs} logs open after 2,000 rolls"
    );
    // `flush` still makes the sealed segments durable, reopening those it closed.
    p.flush().unwrap();
    assert_eq!(read_all(&p), p.log_end_offset().0);
}

#[test]
fn no_sync_retention_frees_the_space_of_deleted_segments() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = PartitionConfig::default()
        .with_durability(Durability::NoSync)
        .with_segment_bytes(seglog::SEGMENT_BYTES_MIN)
        .with_retention_bytes(Some(16 * 1024));
    let p = Partition::open(dir.path(), cfg).unwrap();
    let mut deleted_segments = 0;
    for _ in 0..20 {
        fill(&p, 400);
        deleted_segments += p.apply_retention_at(0).unwrap().delete_count;
    }
    assert!(
        deleted_segments > 100,
        "{deleted_segments} segments deleted"
    );
    let fds = fds_in(dir.path());
    let deleted: Vec<_> = fds.iter().filter(|t| t.ends_with(" (deleted)")).collect();
    assert!(
        deleted.is_empty(),
        "{} of {} descriptors hold deleted files, such as {:?}",
        deleted.len(),
        fds.len(),
        deleted.first()
    );
    // Nor does a map: the indexes (and reads) map the files.
    let dir = dir.path().canonicalize().unwrap();
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let mapped: Vec<_> = maps
        .lines()
        .filter(|l| l.contains(dir.to_str().unwrap()) && l.ends_with(" (deleted)"))
        .collect();
    assert!(mapped.is_empty(), "maps of deleted files: {mapped:?}");
}

/// Error messages state the rejected value and the limit as numbers, not just the name of a
/// constant, and say what to do.
#[test]
fn error_messages_state_values_and_limits() {
    let message = |e: seglog::Error| e.to_string();
    let err = seglog::TopicConfig::new(0).validate().unwrap_err();
    assert!(message(err).contains("between 1 and 10000"));
    let err = seglog::MemberConfig::new(["t"])
        .with_session_timeout(std::time::Duration::ZERO)
        .validate()
        .unwrap_err();
    assert!(message(err).contains("between 1 ms and 1 h"));
    let err = seglog::MemberConfig::new(["t"])
        .with_client_id("")
        .validate()
        .unwrap_err();
    assert!(message(err).contains("1 to 255 bytes"));
    let err = seglog::validate_group_id(&"g".repeat(300)).unwrap_err();
    let text = message(err);
    assert!(
        text.contains("255 bytes") && text.contains("shorter"),
        "{text}"
    );
    let err = seglog::ConsumerConfig::default()
        .with_fetch_max_bytes(0)
        .validate()
        .unwrap_err();
    assert!(message(err).contains("64 MiB"));
}
