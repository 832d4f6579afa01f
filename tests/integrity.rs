//! Regression tests of issue 9, bugs 3, 4 and 5: a batch moved by a damaged base offset in a
//! compacted segment (inside a gap, in the trailing gap of a sealed segment, at the end of the
//! active segment behind a clean shutdown) never yields records at wrong offsets; an index
//! copied from another segment is not trusted; a missing first segment and a deleted log-start
//! checkpoint are detected, never a silently moved log start.

mod support;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::Path;
use support::small_partition_config as config;

use seglog::{
    segment_path, CleanupPolicy, Durability, Error, Offset, Partition, PartitionConfig, Record,
};

const FAR: i64 = i64::MAX / 4;
const TS0: i64 = 1_700_000_000_000;

type Rec = (Option<Vec<u8>>, Option<Vec<u8>>);

/// Batches of one to three keyed records: every third batch's keys are rewritten by later
/// such batches, so compaction removes those batches whole and leaves gaps between the
/// others (inside segments and at their ends).
fn fill(p: &Partition, batches: u64) {
    for b in 0..batches {
        let n = if b % 3 == 0 { 3 } else { 1 + b % 2 };
        let recs: Vec<Record> = (0..n)
            .map(|i| {
                let key = if b % 3 == 0 {
                    format!("hot{i}")
                } else {
                    format!("u{b}-{i}")
                };
                Record::new(format!("v{b}-{i}"))
                    .with_key(key)
                    .with_timestamp(TS0 + (b * 10 + i) as i64)
            })
            .collect();
        p.append(&recs).unwrap();
    }
}

/// Every record, by sequential reads of `max_bytes`; the first error ends it.
fn read_all(p: &Partition, max_bytes: usize) -> Result<BTreeMap<u64, Rec>, Error> {
    let mut out = BTreeMap::new();
    let mut next = p.log_start_offset();
    while next < p.high_watermark() {
        let r = p.read(next, max_bytes)?;
        if r.is_empty() {
            break;
        }
        for rec in r.records() {
            let rec = rec?;
            let kv = (
                rec.key.as_ref().map(|k| k.to_vec()),
                rec.value.as_ref().map(|v| v.to_vec()),
            );
            out.insert(rec.offset.0, kv);
        }
        next = r.next_offset();
    }
    Ok(out)
}

/// Batch positions and base offsets of a `.log` file.
fn batches(log: &[u8]) -> Vec<(usize, u64, u64)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 61 <= log.len() {
        let base = u64::from_be_bytes(log[pos..pos + 8].try_into().unwrap());
        let len = u32::from_be_bytes(log[pos + 8..pos + 12].try_into().unwrap()) as usize;
        let delta = u32::from_be_bytes(log[pos + 23..pos + 27].try_into().unwrap());
        out.push((pos, base, base + u64::from(delta)));
        pos += 12 + len;
    }
    out
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() && e.file_name() != ".lock" {
            fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// A closed, compacted partition with gaps, and what it holds.
fn compacted() -> (tempfile::TempDir, BTreeMap<u64, Rec>) {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), config(CleanupPolicy::Compact)).unwrap();
    fill(&p, 40);
    p.roll().unwrap();
    p.compact_at(FAR, true).unwrap();
    fill(&p, 3);
    let truth = read_all(&p, 1 << 20).unwrap();
    p.close().unwrap();
    (dir, truth)
}

/// Bug 3: every batch of every sealed, compacted segment, moved up by one offset (its base
/// offset is outside the CRC) wherever that stays inside a gap — before the next batch, or
/// in the trailing gap before the next segment's base — reads as an error, never as records
/// at wrong offsets. Before the batch witness, about every such move read as valid.
#[test]
fn a_batch_moved_within_a_gap_is_caught() {
    let (dir, truth) = compacted();
    let offsets: Vec<u64> = truth.keys().copied().collect();
    assert!(
        offsets.windows(2).any(|w| w[1] > w[0] + 2),
        "gaps to move into"
    );
    let p = Partition::open(dir.path(), config(CleanupPolicy::Compact)).unwrap();
    let bases: Vec<u64> = p.segment_base_offsets().iter().map(|o| o.0).collect();
    drop(p);
    let tmp = tempfile::tempdir().unwrap();
    let mut moved = 0;
    for (s, base) in bases.iter().enumerate().take(bases.len() - 1) {
        let log_path = segment_path(dir.path(), Offset(*base), "log");
        let log = fs::read(&log_path).unwrap();
        let list = batches(&log);
        for (i, &(pos, b, last)) in list.iter().enumerate() {
            let limit = list.get(i + 1).map_or(bases[s + 1], |n| n.1);
            if last + 1 >= limit {
                continue; // no room: a move overlaps the next batch (caught anyway)
            }
            moved += 1;
            let copy = tmp.path().join(format!("{base}-{pos}"));
            copy_dir(dir.path(), &copy);
            let mut damaged = log.clone();
            damaged[pos..pos + 8].copy_from_slice(&(b + 1).to_be_bytes());
            fs::write(segment_path(&copy, Offset(*base), "log"), &damaged).unwrap();
            let p = Partition::open(&copy, config(CleanupPolicy::Compact)).unwrap();
            for max_bytes in [1, 1 << 20] {
                match read_all(&p, max_bytes) {
                    Ok(got) => panic!(
                        "segment {base} batch at {pos} moved from {b} to {}: read {} records \
                         without an error (wrong ones: {:?})",
                        b + 1,
                        got.len(),
                        got.iter()
                            .filter(|(o, r)| truth.get(o) != Some(r))
                            .map(|(o, _)| o)
                            .collect::<Vec<_>>()
                    ),
                    Err(Error::Corrupt { .. }) => {}
                    Err(e) => panic!("unexpected error {e}"),
                }
            }
        }
    }
    assert!(moved > 3, "the sweep moved batches ({moved})");
}

/// Bug 3 (b): after a clean shutdown, the active segment's last batch moved up (past the
/// recovery point) makes the fast path fail; recovery must not accept the log end it then
/// finds above the recovery point (a gap no witness confirms): the flushed log is damaged.
#[test]
fn a_moved_last_batch_behind_a_clean_shutdown_is_damage() {
    let (dir, truth) = compacted();
    let p = Partition::open(dir.path(), config(CleanupPolicy::Compact)).unwrap();
    let active = *p.segment_base_offsets().last().unwrap();
    let end = p.log_end_offset();
    drop(p);
    let log_path = segment_path(dir.path(), active, "log");
    let mut log = fs::read(&log_path).unwrap();
    let &(pos, b, _) = batches(&log).last().unwrap();
    log[pos..pos + 8].copy_from_slice(&(b + 5).to_be_bytes());
    fs::write(&log_path, &log).unwrap();
    match Partition::open(dir.path(), config(CleanupPolicy::Compact)) {
        Err(Error::CorruptBelowRecoveryPoint { offset, .. }) => assert_eq!(offset.0, b),
        Err(e) => panic!("unexpected error {e}"),
        Ok(p) => {
            let got = read_all(&p, 1 << 20);
            panic!(
                "opened with log end {:?} (was {end:?}); records right: {}",
                p.log_end_offset(),
                got.is_ok_and(|g| g.iter().all(|(o, r)| truth.get(o) == Some(r)))
            );
        }
    }
}

/// Bug 4: a `.timeindex` copied over from another segment (it passes every check a file can
/// make of itself) must not make `offset_for_timestamp` answer wrongly: indexes are checked
/// against their own segment's batches when loaded, and rebuilt on a mismatch.
#[test]
fn a_time_index_from_another_segment_is_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(CleanupPolicy::Delete);
    let p = Partition::open(dir.path(), cfg.clone()).unwrap();
    fill(&p, 40);
    let bases = p.segment_base_offsets();
    assert!(bases.len() >= 4);
    let mut truth: Vec<(u64, i64)> = Vec::new();
    let mut next = Offset(0);
    while next < p.high_watermark() {
        let r = p.read(next, 1 << 20).unwrap();
        truth.extend(
            r.records()
                .map(|r| r.unwrap())
                .map(|r| (r.offset.0, r.timestamp_ms)),
        );
        next = r.next_offset();
    }
    p.close().unwrap();
    drop(p);
    let want = |t: i64| {
        truth
            .iter()
            .filter(|(_, ts)| *ts >= t)
            .map(|(o, _)| *o)
            .min()
    };
    for (from, to) in [(2, 0), (0, 1), (1, 2), (0, bases.len() - 1)] {
        let copy = tempfile::tempdir().unwrap();
        copy_dir(dir.path(), copy.path());
        fs::copy(
            segment_path(dir.path(), bases[from], "timeindex"),
            segment_path(copy.path(), bases[to], "timeindex"),
        )
        .unwrap();
        let p = Partition::open(copy.path(), cfg.clone()).unwrap();
        for &(_, t) in &truth {
            for t in [t - 1, t, t + 1] {
                let got = p.offset_for_timestamp(t).unwrap().map(|o| o.0);
                assert_eq!(
                    got,
                    want(t),
                    "timeindex of segment {from} over {to}, time {t}"
                );
            }
        }
    }
}

fn five_segments(dir: &Path) -> Vec<Offset> {
    let p = Partition::open(dir, config(CleanupPolicy::Delete)).unwrap();
    fill(&p, 45);
    let bases = p.segment_base_offsets();
    assert!(bases.len() >= 5, "{bases:?}");
    p.close().unwrap();
    bases
}

/// Bug 5: the first segment's `.log` deleted: open fails (typed), instead of silently moving
/// the log start past flushed records; with `truncate_corrupt` it opens and reports the
/// missing offsets, and the log start is persisted past them.
#[test]
fn a_missing_first_segment_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let bases = five_segments(dir.path());
    fs::remove_file(segment_path(dir.path(), bases[0], "log")).unwrap();
    match Partition::open(dir.path(), config(CleanupPolicy::Delete)) {
        Err(Error::MissingSegments {
            log_start,
            first_segment,
            ..
        }) => assert_eq!((log_start, first_segment), (bases[0], bases[1])),
        Err(e) => panic!("unexpected error {e}"),
        Ok(p) => panic!("opened with log start {:?}", p.log_start_offset()),
    }
    let lenient = config(CleanupPolicy::Delete).with_truncate_corrupt(true);
    let p = Partition::open(dir.path(), lenient).unwrap();
    assert_eq!(p.log_start_offset(), bases[1]);
    assert_eq!(
        p.recovery_report().missing_offsets,
        Some((bases[0], bases[1]))
    );
    p.close().unwrap();
    drop(p);
    // Reported once: the log start now lies at the first segment.
    let p = Partition::open(dir.path(), config(CleanupPolicy::Delete)).unwrap();
    assert_eq!(p.log_start_offset(), bases[1]);
    assert_eq!(p.recovery_report().missing_offsets, None);
}

/// Bug 5: the log start set by `delete_records_before` survives the loss of its checkpoint
/// (its second copy holds it), and retention moving the log start is not mistaken for a
/// missing segment.
#[test]
fn a_deleted_log_start_checkpoint_does_not_resurrect_records() {
    let dir = tempfile::tempdir().unwrap();
    let bases = five_segments(dir.path());
    let cut = Offset(bases[2].0 + 2);
    let p = Partition::open(dir.path(), config(CleanupPolicy::Delete)).unwrap();
    assert_eq!(p.delete_records_before(cut).unwrap(), cut);
    p.close().unwrap();
    drop(p);
    fs::remove_file(dir.path().join("log-start-offset.checkpoint")).unwrap();
    let p = Partition::open(dir.path(), config(CleanupPolicy::Delete)).unwrap();
    assert_eq!(p.log_start_offset(), cut, "records below the cut came back");
    assert!(matches!(
        p.read(Offset(cut.0 - 1), 1),
        Err(Error::OffsetOutOfRange { .. })
    ));
    p.close().unwrap();
    drop(p);
    // Retention deletes whole segments; the log start moves first, so reopening is fine.
    let cfg = config(CleanupPolicy::Delete).with_retention_ms(Some(1));
    let p = Partition::open(dir.path(), cfg.clone()).unwrap();
    let plan = p.apply_retention_at(TS0 + 1_000_000).unwrap();
    assert!(plan.delete_count > 0);
    let start = p.log_start_offset();
    p.close().unwrap();
    drop(p);
    let p = Partition::open(dir.path(), cfg).unwrap();
    assert_eq!(p.log_start_offset(), start);
}

/// A witnessed (compacted) segment that recovery cuts (damage above the recovery point, with
/// `truncate_corrupt`) and that then takes appends as the active segment: its witness is cut
/// with it, so the new batches read back after a reopen, and the kept ones are still checked.
#[test]
fn a_witnessed_segment_cut_by_recovery_takes_appends() {
    let (dir, truth) = compacted();
    let p = Partition::open(dir.path(), config(CleanupPolicy::Compact)).unwrap();
    let bases = p.segment_base_offsets();
    drop(p);
    let (sealed, active) = (bases[bases.len() - 2], bases[bases.len() - 1]);
    // Drop the active segment: the compacted one becomes the last, and is scanned.
    for ext in ["log", "index", "timeindex"] {
        fs::remove_file(segment_path(dir.path(), active, ext)).unwrap();
    }
    fs::remove_file(dir.path().join(".clean-shutdown")).unwrap();
    let log_path = segment_path(dir.path(), sealed, "log");
    let mut log = fs::read(&log_path).unwrap();
    let list = batches(&log);
    let k = list.len() / 2;
    let (pos, b, _) = list[k];
    log[pos..pos + 8].copy_from_slice(&(b + 1).to_be_bytes());
    fs::write(&log_path, &log).unwrap();
    let lenient = config(CleanupPolicy::Compact).with_truncate_corrupt(true);
    let p = Partition::open(dir.path(), lenient.clone()).unwrap();
    let end = list[k - 1].2 + 1;
    assert_eq!(p.log_end_offset().0, end, "cut before the damaged batch");
    let kept: BTreeMap<u64, Rec> = truth.range(..end).map(|(o, r)| (*o, r.clone())).collect();
    assert_eq!(read_all(&p, 1).unwrap(), kept);
    let info = p.append(&[Record::new("after").with_key("z")]).unwrap();
    assert_eq!(info.base_offset.0, end);
    p.close().unwrap();
    drop(p);
    let p = Partition::open(dir.path(), lenient).unwrap();
    let mut want = kept;
    want.insert(end, (Some(b"z".to_vec()), Some(b"after".to_vec())));
    for max_bytes in [1, 1 << 20] {
        assert_eq!(read_all(&p, max_bytes).unwrap(), want);
    }
}

/// An older seglog's compacting partition (no `seglog.log-start.checkpoint`) crashed with
/// records above its recovery point: the first open scans those segments as dense (compaction
/// never rewrites past the recovery point) and must not give them a witness listing no batch
/// (every record then read as damage, and the next open refused the directory).
#[test]
fn a_first_open_after_a_crash_keeps_dense_segments_unwitnessed() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = || {
        PartitionConfig::default()
            .with_durability(Durability::NoSync)
            .with_segment_ms(None)
            .with_preallocate_bytes(0)
            .with_cleanup_policy(CleanupPolicy::Compact)
    };
    let p = Partition::open(dir.path(), cfg()).unwrap();
    for i in 0..5 {
        p.append(&[Record::new("v").with_key(format!("k{i}"))])
            .unwrap();
    }
    p.simulate_crash();
    fs::remove_file(dir.path().join("seglog.log-start.checkpoint")).unwrap();
    let p = Partition::open(dir.path(), cfg()).unwrap();
    assert_eq!(p.read(Offset(0), 1 << 20).unwrap().records().count(), 5);
    p.simulate_crash();
    let p = Partition::open(dir.path(), cfg()).unwrap();
    assert_eq!(p.read(Offset(0), 1 << 20).unwrap().records().count(), 5);
    assert_eq!(p.log_end_offset(), Offset(5));
}

/// `Partition::read_each_record` gives a batch's records only once the batch after it (or
/// the end of the visible log) vouched for their offsets: a batch moved down by one offset
/// (its base offset is outside the CRC) after the partition loaded its index, so that a read
/// starting at it through the index takes its base offset as the walk's start (only the
/// next batch can then catch it), gives no record at a wrong offset, from any start offset
/// and at any read size; some of those reads fail.
#[test]
fn read_each_record_gives_no_record_of_a_moved_batch() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), config(CleanupPolicy::Delete)).unwrap();
    fill(&p, 40);
    let truth = read_all(&p, 1 << 20).unwrap();
    let bases: Vec<u64> = p.segment_base_offsets().iter().map(|o| o.0).collect();
    p.close().unwrap();
    drop(p);
    let tmp = tempfile::tempdir().unwrap();
    let (mut failed, mut wrong) = (0, Vec::new());
    for base in &bases[..bases.len() - 1] {
        let log = fs::read(segment_path(dir.path(), Offset(*base), "log")).unwrap();
        for &(pos, b, _) in batches(&log).iter().filter(|(_, b, _)| b > base) {
            let copy = tmp.path().join(format!("{base}-{pos}"));
            copy_dir(dir.path(), &copy);
            let p = Partition::open(&copy, config(CleanupPolicy::Delete)).unwrap();
            assert_eq!(read_all(&p, 1 << 20).unwrap(), truth, "loads every index");
            // In place, under the partition's map of the file.
            let file = fs::OpenOptions::new()
                .write(true)
                .open(segment_path(&copy, Offset(*base), "log"))
                .unwrap();
            file.write_all_at(&(b - 1).to_be_bytes(), pos as u64)
                .unwrap();
            for max_bytes in [1, 1 << 20] {
                for &from in truth.keys() {
                    let mut got = Vec::new();
                    let end = p.read_each_record(Offset(from), max_bytes, |r| {
                        let kv = (r.key().map(<[u8]>::to_vec), r.value().map(<[u8]>::to_vec));
                        got.push((r.offset().0, kv));
                    });
                    failed += usize::from(end.is_err());
                    wrong.extend(
                        got.into_iter()
                            .filter(|(o, kv)| truth.get(o) != Some(kv))
                            .map(|(o, _)| (b, from, max_bytes, o)),
                    );
                }
            }
        }
    }
    assert!(failed > 0, "some reads meet the damage");
    assert_eq!(
        wrong,
        [],
        "(moved batch, read from, max bytes, wrong record)"
    );
}
