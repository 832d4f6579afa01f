//! Retention on real partitions: by age of record timestamps (`apply_retention_at`), by total
//! size (`retention_bytes`) and by an explicit log start (`delete_records_before`, persisted
//! across clean and crash reopens). Checks which segments go (whole, oldest first, the active
//! one only by age once all of it expired, by rolling it first; never data at or above the
//! high watermark), that their files leave the
//! directory, that reads and timestamp lookups respect the new log start, and that batches a
//! reader already holds stay intact after their segment is deleted.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use seglog::retention::{self, RetentionPolicy, RetentionReason, SegmentInfo};
use seglog::testing::{SimError, SimFs, SimOp};
use seglog::{Durability, Error, LogRecord, Offset, Partition, PartitionConfig, Record};

/// No fsyncs, no age rolls, no retention unless a test asks for it.
fn quiet() -> PartitionConfig {
    PartitionConfig::default()
        .with_durability(Durability::NoSync)
        .with_segment_ms(None)
        .with_retention_ms(None)
        .with_retention_bytes(None)
        .with_index_bytes_max(4096)
        .with_index_interval_bytes(128)
}

fn rec(value: String, ts: i64) -> Record {
    Record {
        key: Some(Bytes::from(format!("k{}", value.len()))),
        value: Some(Bytes::from(value)),
        headers: Vec::new(),
        timestamp_ms: ts,
    }
}

fn value_of(offset: u64) -> String {
    format!("value-{offset:06}-{}", "p".repeat((offset % 23) as usize))
}

/// Appends `timestamps.len()` records as single-record batches; values follow `value_of`.
fn append_ts(p: &Partition, timestamps: &[i64]) {
    for &ts in timestamps {
        let o = p.log_end_offset().0;
        let info = p.append(&[rec(value_of(o), ts)]).unwrap();
        assert_eq!(info.base_offset, Offset(o));
    }
}

/// Builds sealed segments of `per_segment` records each (timestamps from `ts`), rolling
/// explicitly after each, then `per_segment` records in the active segment.
fn build(p: &Partition, segments: usize, per_segment: usize, ts: impl Fn(u64) -> i64) {
    for s in 0..=segments {
        let start = p.log_end_offset().0;
        let stamps: Vec<i64> = (start..start + per_segment as u64).map(&ts).collect();
        append_ts(p, &stamps);
        if s < segments {
            p.roll().unwrap();
        }
    }
    assert_eq!(p.segment_count(), segments + 1);
}

/// Reads every record from the log start to the high watermark and checks each value.
fn check_contents(p: &Partition) -> Vec<LogRecord> {
    let mut next = p.log_start_offset();
    let mut out = Vec::new();
    loop {
        let r = p.read(next, 700).unwrap();
        if r.is_empty() {
            assert_eq!(next, p.high_watermark());
            return out;
        }
        for rec in r.records() {
            let rec = rec.unwrap();
            assert_eq!(rec.offset, next);
            assert_eq!(rec.value.as_deref(), Some(value_of(next.0).as_bytes()));
            next = next.next();
            out.push(rec);
        }
    }
}

fn segment_files_exist(dir: &Path, base: Offset) -> [bool; 3] {
    ["log", "index", "timeindex"].map(|ext| seglog::segment_path(dir, base, ext).exists())
}

fn assert_deleted(dir: &Path, bases: &[Offset]) {
    for &b in bases {
        assert_eq!(
            segment_files_exist(dir, b),
            [false; 3],
            "segment {b} must be gone"
        );
    }
}

fn assert_present(dir: &Path, bases: &[Offset]) {
    for &b in bases {
        assert_eq!(
            segment_files_exist(dir, b),
            [true; 3],
            "segment {b} must be kept"
        );
    }
}

fn assert_out_of_range(p: &Partition, offset: Offset) {
    match p.read(offset, 1000) {
        Err(Error::OffsetOutOfRange {
            offset: o,
            log_start_offset,
            ..
        }) => {
            assert_eq!(o, offset);
            assert_eq!(log_start_offset, p.log_start_offset());
        }
        other => panic!("read({offset}) below the log start: {other:?}"),
    }
}

#[test]
fn retention_by_age_deletes_old_sealed_segments_by_record_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let config = quiet().with_retention_ms(Some(1000));
    let p = Partition::open(dir.path(), config.clone()).unwrap();
    // Five sealed segments of 10 records: segment s holds timestamps s*1000 + 0..=9,
    // then an active one with 5000..=5009.
    build(&p, 5, 10, |o| (o / 10) as i64 * 1000 + (o % 10) as i64);
    let bases = p.segment_base_offsets();
    assert_eq!(bases, (0..6).map(|s| Offset(s * 10)).collect::<Vec<_>>());

    // Cutoff = now - 1000 = 1009: segment 0 (newest 9) goes, segment 1 (newest 1009) stays,
    // as its newest record is not older than the cutoff.
    let plan = p.apply_retention_at(2009).unwrap();
    assert_eq!(plan.delete_count, 1);
    assert_eq!(plan.reasons, vec![RetentionReason::Age]);
    assert_eq!(plan.log_start_offset, Offset(10));
    assert_eq!(p.log_start_offset(), Offset(10));
    assert_eq!(p.segment_base_offsets(), bases[1..].to_vec());
    assert_deleted(dir.path(), &bases[..1]);
    assert_present(dir.path(), &bases[1..]);
    for o in [0, 5, 9] {
        assert_out_of_range(&p, Offset(o));
    }
    assert_eq!(check_contents(&p).len(), 50);

    // One millisecond later segment 1 is old enough too.
    let plan = p.apply_retention_at(2010).unwrap();
    assert_eq!(plan.delete_count, 1);
    assert_eq!(p.log_start_offset(), Offset(20));
    // Running it again at the same time deletes nothing more.
    assert_eq!(p.apply_retention_at(2010).unwrap().delete_count, 0);

    // A segment's age is its newest record: one young record among old ones keeps the
    // segment at 50 (5000..=5009, then 100000 and 1) alive.
    append_ts(&p, &[100_000, 1]);
    p.roll().unwrap();
    append_ts(&p, &[2]);
    let plan = p.apply_retention_at(6010).unwrap();
    assert_eq!(plan.delete_count, 3, "segments 20, 30 and 40");
    assert_eq!(p.segment_base_offsets(), vec![Offset(50), Offset(62)]);
    assert_eq!(p.log_start_offset(), Offset(50));
    // Far in the future every record is old, the active segment's too: it is rolled and
    // deleted with the rest (Kafka's rule), leaving an empty active segment at the log end.
    let plan = p.apply_retention_at(i64::MAX).unwrap();
    assert_eq!(
        plan.delete_count, 2,
        "segment 50 and the rolled active segment 62"
    );
    assert_eq!(p.segment_base_offsets(), vec![Offset(63)]);
    assert_eq!(p.log_start_offset(), Offset(63));
    assert_eq!(p.log_end_offset(), Offset(63), "offsets are not reused");
    assert_deleted(dir.path(), &bases[..]);
    assert_deleted(dir.path(), &[Offset(62)]);
    assert_eq!(check_contents(&p).len(), 0);
    assert_eq!(p.apply_retention_at(i64::MAX).unwrap().delete_count, 0);
    assert_eq!(p.offset_for_timestamp(i64::MIN).unwrap(), None);
    append_ts(&p, &[3]);

    // The deletions hold after reopening, cleanly and after a crash.
    drop(p);
    let p = Partition::open(dir.path(), config.clone()).unwrap();
    assert_eq!(p.log_start_offset(), Offset(63));
    assert_eq!(p.segment_base_offsets(), vec![Offset(63)]);
    p.simulate_crash();
    let p = Partition::open(dir.path(), config).unwrap();
    assert_eq!(p.log_start_offset(), Offset(63));
    assert_eq!(check_contents(&p).len(), 1);
}

#[test]
fn retention_by_age_reads_record_timestamps_not_file_times() {
    let dir = tempfile::tempdir().unwrap();
    let day = 24 * 60 * 60 * 1000;
    let now = seglog::now_ms();
    let config = quiet().with_retention_ms(Some(day as u64));
    let p = Partition::open(dir.path(), config).unwrap();
    // Fresh files, but records stamped two days ago: they are old.
    build(&p, 2, 5, |_| now - 2 * day);
    // Then records stamped in the future: they are young, though written just the same.
    append_ts(&p, &[now + day]);
    p.roll().unwrap();
    append_ts(&p, &[now - 3 * day]);
    // Segments [0,5) and [5,10) go. [10,16) ends with a young record and stays, and so does
    // the old record after it: retention deletes a prefix of the log.
    let plan = p.apply_retention().unwrap();
    assert_eq!(plan.delete_count, 2);
    assert_eq!(p.segment_base_offsets(), vec![Offset(10), Offset(16)]);
    assert_eq!(p.log_start_offset(), Offset(10));
    assert_eq!(p.apply_retention().unwrap().delete_count, 0);
}

#[test]
fn retention_by_size_deletes_whole_oldest_segments_while_the_excess_covers_them() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), quiet()).unwrap();
    build(&p, 6, 12, |o| o as i64);
    let bases = p.segment_base_offsets();
    drop(p);
    let size = |b: Offset| {
        std::fs::metadata(seglog::segment_path(dir.path(), b, "log"))
            .unwrap()
            .len()
    };
    let sizes: Vec<u64> = bases.iter().map(|&b| size(b)).collect();
    let total: u64 = sizes.iter().sum();

    // One byte less than two segments of excess: exactly one segment goes.
    let config = quiet().with_retention_bytes(Some(total - sizes[0] - sizes[1] + 1));
    let p = Partition::open(dir.path(), config).unwrap();
    let plan = p.apply_retention_at(0).unwrap();
    assert_eq!(plan.delete_count, 1);
    assert_eq!(plan.reasons, vec![RetentionReason::Size]);
    assert_eq!(p.log_start_offset(), bases[1]);
    assert_deleted(dir.path(), &bases[..1]);
    assert_present(dir.path(), &bases[1..]);
    drop(p);

    // Exactly two more segments of excess: both go.
    let left = total - sizes[0];
    let config = quiet().with_retention_bytes(Some(left - sizes[1] - sizes[2]));
    let p = Partition::open(dir.path(), config).unwrap();
    let plan = p.apply_retention_at(0).unwrap();
    assert_eq!(plan.delete_count, 2);
    assert_eq!(p.log_start_offset(), bases[3]);
    assert_eq!(p.segment_base_offsets(), bases[3..].to_vec());
    assert_deleted(dir.path(), &bases[..3]);
    assert_eq!(check_contents(&p).len(), 4 * 12);
    assert_eq!(
        p.apply_retention_at(0).unwrap().delete_count,
        0,
        "the log fits now"
    );
    drop(p);

    // The smallest limit deletes every sealed segment, never the active one.
    let config = quiet().with_retention_bytes(Some(1));
    let p = Partition::open(dir.path(), config).unwrap();
    let plan = p.apply_retention_at(0).unwrap();
    assert_eq!(plan.delete_count, 3);
    assert_eq!(p.segment_base_offsets(), vec![bases[6]]);
    assert_eq!(check_contents(&p).len(), 12);
    // Appends go on; retention keeps only the active segment.
    append_ts(&p, &[1, 2, 3]);
    p.roll().unwrap();
    append_ts(&p, &[4]);
    assert_eq!(p.apply_retention_at(0).unwrap().delete_count, 1);
    assert_eq!(p.segment_base_offsets(), vec![Offset(87)]);
    assert_eq!(check_contents(&p).len(), 1);
}

#[test]
fn delete_records_before_moves_the_log_start_and_persists_it() {
    for durability in [Durability::NoSync, Durability::SyncEachAppend] {
        let dir = tempfile::tempdir().unwrap();
        let config = quiet().with_durability(durability).with_segment_bytes(1024);
        let p = Partition::open(dir.path(), config.clone()).unwrap();
        let stamps: Vec<i64> = (0..200).map(|i| i * 10).collect();
        append_ts(&p, &stamps);
        let bases = p.segment_base_offsets();
        assert!(bases.len() > 5);
        let holder = |o: u64| *bases.iter().rev().find(|b| b.0 <= o).unwrap();
        // Pick an offset inside a segment, not at its base.
        let start = bases[3].0 + 2;
        assert!(start < bases[4].0);

        assert_eq!(
            p.delete_records_before(Offset(start)).unwrap(),
            Offset(start)
        );
        assert_eq!(p.log_start_offset(), Offset(start));
        assert_deleted(dir.path(), &bases[..3]);
        assert_present(dir.path(), &bases[3..]);
        assert_eq!(p.segment_base_offsets(), bases[3..].to_vec());
        assert_eq!(holder(start), bases[3]);
        for o in [0, bases[3].0, start - 1] {
            assert_out_of_range(&p, Offset(o));
        }
        let r = p.read(Offset(start), 1).unwrap();
        assert_eq!(r.records().next().unwrap().unwrap().offset, Offset(start));
        assert_eq!(check_contents(&p).len() as u64, 200 - start);
        // Timestamp lookups never answer below the log start.
        assert_eq!(
            p.offset_for_timestamp(i64::MIN).unwrap(),
            Some(Offset(start))
        );
        assert_eq!(p.offset_for_timestamp(0).unwrap(), Some(Offset(start)));
        assert_eq!(
            p.offset_for_timestamp(start as i64 * 10).unwrap(),
            Some(Offset(start))
        );
        assert_eq!(
            p.offset_for_timestamp(start as i64 * 10 + 1).unwrap(),
            Some(Offset(start + 1))
        );
        // A lower offset is a no-op that reports the current start.
        assert_eq!(p.delete_records_before(Offset(5)).unwrap(), Offset(start));
        assert_eq!(
            p.delete_records_before(Offset(start)).unwrap(),
            Offset(start)
        );
        assert_eq!(p.log_start_offset(), Offset(start));

        // Clean reopen: the start survives, though its segment begins below it.
        drop(p);
        let p = Partition::open(dir.path(), config.clone()).unwrap();
        assert_eq!(p.log_start_offset(), Offset(start));
        assert_out_of_range(&p, Offset(start - 1));
        assert_eq!(
            p.offset_for_timestamp(i64::MIN).unwrap(),
            Some(Offset(start))
        );
        assert_eq!(check_contents(&p).len() as u64, 200 - start);

        // Crash reopen: a start set just before the crash survives too.
        let start2 = 150;
        assert_eq!(
            p.delete_records_before(Offset(start2)).unwrap(),
            Offset(start2)
        );
        p.simulate_crash();
        let p = Partition::open(dir.path(), config.clone()).unwrap();
        assert!(!p.recovery_report().clean_shutdown);
        assert_eq!(p.log_start_offset(), Offset(start2));
        assert_out_of_range(&p, Offset(start2 - 1));
        assert_eq!(p.offset_for_timestamp(0).unwrap(), Some(Offset(start2)));
        assert_eq!(check_contents(&p).len() as u64, 200 - start2);
        assert!(p.segment_base_offsets()[0] <= Offset(start2));
        assert_deleted(
            dir.path(),
            &bases[..bases.iter().filter(|b| b.0 <= start2).count() - 1],
        );

        // Past the high watermark is an error and changes nothing.
        let hw = p.high_watermark();
        match p.delete_records_before(hw.next()) {
            Err(Error::InvalidOffset { offset, .. }) => assert_eq!(offset, hw.next()),
            other => panic!("delete_records_before past the high watermark: {other:?}"),
        }
        assert!(matches!(
            p.delete_records_before(Offset(u64::MAX)),
            Err(Error::InvalidOffset { .. })
        ));
        assert_eq!(p.log_start_offset(), Offset(start2));

        // Up to the high watermark empties the log but keeps the active segment.
        assert_eq!(p.delete_records_before(hw).unwrap(), hw);
        assert_eq!(p.log_start_offset(), hw);
        assert!(p.read(hw, 100).unwrap().is_empty());
        assert_out_of_range(&p, Offset(hw.0 - 1));
        assert_eq!(p.offset_for_timestamp(i64::MIN).unwrap(), None);
        assert_eq!(p.segment_count(), 1);
        // Appends continue at the end.
        append_ts(&p, &[5000]);
        assert_eq!(p.offset_for_timestamp(i64::MIN).unwrap(), Some(hw));
        p.simulate_crash();
        let p = Partition::open(dir.path(), config).unwrap();
        assert_eq!(p.log_start_offset(), hw);
        assert_eq!(p.log_end_offset(), hw.next());
        assert_eq!(check_contents(&p).len(), 1);
    }
}

#[test]
fn offset_for_timestamp_ignores_matches_below_the_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = quiet();
    let p = Partition::open(dir.path(), config.clone()).unwrap();
    // Offset 0 is the only record at 9000 or later, and it shares its batch with offsets 1
    // and 2, so the new log start falls inside that batch.
    let first: Vec<Record> = [9000, 1, 2]
        .iter()
        .enumerate()
        .map(|(o, &ts)| rec(value_of(o as u64), ts))
        .collect();
    p.append(&first).unwrap();
    let stamps: Vec<i64> = (3..50).collect();
    append_ts(&p, &stamps);
    assert_eq!(p.offset_for_timestamp(5000).unwrap(), Some(Offset(0)));
    p.delete_records_before(Offset(1)).unwrap();
    assert_eq!(p.offset_for_timestamp(5000).unwrap(), None);
    assert_eq!(p.offset_for_timestamp(i64::MIN).unwrap(), Some(Offset(1)));
    assert_eq!(p.offset_for_timestamp(10).unwrap(), Some(Offset(10)));
    drop(p);
    let p = Partition::open(dir.path(), config.clone()).unwrap();
    assert_eq!(p.offset_for_timestamp(5000).unwrap(), None);
    p.simulate_crash();
    let p = Partition::open(dir.path(), config).unwrap();
    assert_eq!(p.offset_for_timestamp(5000).unwrap(), None);
    assert_eq!(p.offset_for_timestamp(1).unwrap(), Some(Offset(1)));
}

#[test]
fn delete_records_before_combines_with_age_and_size_retention() {
    let dir = tempfile::tempdir().unwrap();
    let config = quiet().with_retention_ms(Some(100));
    let p = Partition::open(dir.path(), config).unwrap();
    // Stamped in the future: `delete_records_before` applies retention at the real time, and
    // nothing may be old by then.
    let base = seglog::now_ms() + 3_600_000;
    build(&p, 4, 5, |o| base + o as i64 * 100);
    // Segments [0,5) [5,10) [10,15) [15,20) sealed, [20,25) active.
    p.delete_records_before(Offset(7)).unwrap();
    assert_eq!(p.segment_base_offsets()[0], Offset(5));
    // Newest in [5,10) is base + 900, in [10,15) base + 1400: at base + 1501 both are older
    // than 100 ms.
    let plan = p.apply_retention_at(base + 1501).unwrap();
    assert_eq!(plan.delete_count, 2);
    assert_eq!(plan.reasons, vec![RetentionReason::Age; 2]);
    assert_eq!(p.log_start_offset(), Offset(15));
    // A log start inside a kept segment is not lowered by retention.
    p.delete_records_before(Offset(17)).unwrap();
    assert_eq!(p.apply_retention_at(0).unwrap().delete_count, 0);
    assert_eq!(p.log_start_offset(), Offset(17));
    assert_eq!(check_contents(&p).len(), 8);
}

#[test]
fn retention_rolls_and_deletes_an_expired_active_segment() {
    // A quiet topic: everything is in the active segment and no segment_ms roll comes. Kafka
    // rolls an active segment whose records all passed retention_ms, and deletes it; so does
    // seglog, and only then.
    let dir = tempfile::tempdir().unwrap();
    let config = quiet().with_retention_ms(Some(1_000));
    let p = Partition::open(dir.path(), config.clone()).unwrap();
    assert_eq!(
        p.apply_retention_at(i64::MAX).unwrap().delete_count,
        0,
        "empty log"
    );
    assert_eq!(p.segment_count(), 1);
    append_ts(&p, &[0, 100, 500]);
    // Not all of it is older than the cutoff yet.
    let plan = p.apply_retention_at(1_500).unwrap();
    assert_eq!((plan.delete_count, plan.roll_active), (0, false));
    assert_eq!(check_contents(&p).len(), 3);
    // Now it is: the segment is rolled and deleted, and the log is empty from offset 3 on.
    let plan = p.apply_retention_at(1_501).unwrap();
    assert_eq!(plan.delete_count, 1);
    assert_eq!(plan.reasons, vec![RetentionReason::Age]);
    assert_eq!(p.log_start_offset(), Offset(3));
    assert_eq!(p.segment_base_offsets(), vec![Offset(3)]);
    assert_deleted(dir.path(), &[Offset(0)]);
    assert_out_of_range(&p, Offset(0));
    append_ts(&p, &[2_000]);
    assert_eq!(check_contents(&p).len(), 1);
    drop(p);
    let p = Partition::open(dir.path(), config).unwrap();
    assert_eq!(p.log_start_offset(), Offset(3));
    assert_eq!(check_contents(&p).len(), 1);

    // Under a compact-only policy nothing expires by age.
    let dir = tempfile::tempdir().unwrap();
    let config = quiet()
        .with_retention_ms(Some(1))
        .with_cleanup_policy(seglog::CleanupPolicy::Compact);
    let p = Partition::open(dir.path(), config).unwrap();
    append_ts(&p, &[0, 1]);
    assert_eq!(p.apply_retention_at(i64::MAX).unwrap().delete_count, 0);
    assert_eq!(check_contents(&p).len(), 2);
}

#[test]
fn retention_never_deletes_data_at_or_above_the_high_watermark() {
    // The partition: a failed fsync under SyncEachAppend leaves written, unacknowledged data
    // above the high watermark. Retention must keep everything from the watermark on.
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(SimFs::new());
    let config = quiet()
        .with_durability(Durability::SyncEachAppend)
        .with_retention_ms(Some(1))
        .with_retention_bytes(Some(1))
        .with_file_system(faults.clone());
    let p = Partition::open(dir.path(), config).unwrap();
    build(&p, 3, 4, |o| o as i64);
    faults.fail_next(SimOp::Sync, SimError::Eio);
    assert!(p.append(&[rec(value_of(16), 16)]).is_err());
    assert_eq!(
        (p.high_watermark(), p.log_end_offset()),
        (Offset(16), Offset(17))
    );
    let plan = p.apply_retention_at(i64::MAX).unwrap();
    assert_eq!(plan.delete_count, 3);
    assert_eq!(p.log_start_offset(), Offset(12));
    assert!(p.log_start_offset() <= p.high_watermark());
    assert_eq!(check_contents(&p).len(), 4);
    assert!(
        p.delete_records_before(Offset(17)).is_err(),
        "past the high watermark"
    );
    drop(p);

    // The plan: a sealed segment holding the watermark is kept, whatever the limits say,
    // and so is every segment after it.
    let seg = |base: u64, end: u64| SegmentInfo {
        base_offset: Offset(base),
        end_offset: Offset(end),
        size_bytes: 1000,
        max_timestamp: Some(0),
    };
    let segments = [seg(0, 10), seg(10, 20), seg(20, 30), seg(30, 40)];
    let policy = RetentionPolicy {
        retention_ms: Some(1),
        retention_bytes: Some(1),
    };
    for (hw, keep_from) in [
        (0, 0),
        (5, 0),
        (10, 1),
        (15, 1),
        (20, 2),
        (25, 2),
        (35, 3),
        (40, 3),
    ] {
        let plan = retention::plan(&segments, Offset(0), Offset(hw), i64::MAX, policy);
        assert_eq!(plan.delete_count, keep_from, "high watermark {hw}");
        assert!(plan.log_start_offset <= Offset(hw));
    }
}

#[test]
fn a_reader_keeps_its_batches_when_retention_deletes_their_segment() {
    let dir = tempfile::tempdir().unwrap();
    let config = quiet().with_segment_bytes(1024);
    let p = Partition::open(dir.path(), config.clone()).unwrap();
    let stamps: Vec<i64> = (0..100).collect();
    append_ts(&p, &stamps);
    let bases = p.segment_base_offsets();
    let held = p.read(Offset(0), 1 << 20).unwrap();
    let value_1 = held.records().nth(1).unwrap().unwrap().value.unwrap();
    p.delete_records_before(bases[2]).unwrap();
    assert_deleted(dir.path(), &bases[..2]);
    assert_out_of_range(&p, Offset(0));
    // The held batches still iterate, with the right contents, as often as asked.
    for _ in 0..2 {
        let got: Vec<LogRecord> = held.records().map(Result::unwrap).collect();
        assert_eq!(got.len() as u64, bases[1].0, "the whole first segment");
        for (i, r) in got.iter().enumerate() {
            assert_eq!(r.offset, Offset(i as u64));
            assert_eq!(r.value.as_deref(), Some(value_of(i as u64).as_bytes()));
            assert_eq!(r.timestamp_ms, i as i64);
        }
    }
    assert_eq!(value_1, value_of(1));

    // The same for a segment loaded lazily after a reopen.
    drop(p);
    let p = Partition::open(dir.path(), config).unwrap();
    let from = bases[2];
    let held = p.read(from, 1 << 20).unwrap();
    let held_end = held.next_offset();
    assert!(held_end <= bases[3]);
    p.delete_records_before(bases[4]).unwrap();
    assert_deleted(dir.path(), &bases[..4]);
    let got: Vec<LogRecord> = held.records().map(Result::unwrap).collect();
    assert_eq!(got.len() as u64, held_end.0 - from.0);
    for r in &got {
        assert_eq!(r.value.as_deref(), Some(value_of(r.offset.0).as_bytes()));
    }
    assert_eq!(check_contents(&p).len() as u64, 100 - bases[4].0);
}
