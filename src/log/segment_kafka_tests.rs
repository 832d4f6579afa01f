//! Seglog's index code against Kafka's own `.index` / `.timeindex` / `.txnindex` files
//! (`tests/data/kafka/`, written by Apache Kafka 3.8.0, Apache-2.0; see the README there).
//!
//! The `.log` files are Kafka record batch v2 (big-endian). Until seglog's batch parser reads
//! that format, these tests walk the batch headers with `kafka_span` below (the only fields the
//! indexes need: base offset, last offset delta, max timestamp, length) and hand the spans to
//! the same index code appends, recovery and rebuilds use.

use std::path::{Path, PathBuf};

use super::{BatchSpan, IndexCursor, LogProbe, Segment, INDEX_EXT, LOG_EXT, TIME_INDEX_EXT};
use crate::io::fs::{Fs, OpenFlags};
use crate::log::index::{AbortedTxn, OffsetIndex, TimeIndex, TxnIndex};
use crate::offset::Offset;

/// Fixtures whose indexes Kafka's producer path wrote (one batch per `LogSegment.append`).
const PRODUCER_PATH: [&str; 10] = [
    "plain",
    "multi-segment",
    "compressed-gzip",
    "compressed-snappy",
    "compressed-lz4",
    "compressed-zstd",
    "idempotent",
    "transactional",
    "log-append-time",
    "torn-tail-recovered",
];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/kafka")
        .join(name)
}

/// A Kafka v2 batch header at the front of `b`: baseOffset i64 @0, batchLength i32 @8,
/// magic i8 @16, lastOffsetDelta i32 @23, maxTimestamp i64 @35, all big-endian.
fn kafka_span(b: &[u8]) -> Option<BatchSpan> {
    let h = b.get(..61)?;
    let i32_at = |at: usize| i32::from_be_bytes(h[at..at + 4].try_into().unwrap());
    let i64_at = |at: usize| i64::from_be_bytes(h[at..at + 8].try_into().unwrap());
    let base = u64::try_from(i64_at(0)).ok()?;
    let len = u64::try_from(i32_at(8)).ok()? + 12;
    let delta = u64::try_from(i32_at(23)).ok()?;
    (h[16] == 2 && len >= 61).then_some(BatchSpan {
        base_offset: base,
        last_offset: base + delta,
        max_timestamp: i64_at(35),
        len,
    })
}

/// Every batch of a Kafka `.log`, with its position.
fn kafka_batches(log: &[u8]) -> Vec<(u64, BatchSpan)> {
    let mut out = Vec::new();
    let mut pos = 0u64;
    while (pos as usize) < log.len() {
        let s = kafka_span(&log[pos as usize..]).expect("a whole Kafka batch");
        out.push((pos, s));
        pos += s.len;
    }
    assert_eq!(pos as usize, log.len(), "the log ends at a batch boundary");
    out
}

/// Segment base offsets of a fixture directory, sorted.
fn bases(dir: &Path) -> Vec<u64> {
    let mut b: Vec<u64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| super::parse_log_name(e.unwrap().file_name().to_str()?))
        .map(|o| o.0)
        .collect();
    b.sort_unstable();
    b
}

fn seg_file(dir: &Path, base: u64, ext: &str) -> PathBuf {
    super::segment_path(dir, Offset(base), ext)
}

/// The end offset of each segment: the next one's base, or after the last batch.
fn ends(dir: &Path) -> Vec<(u64, u64)> {
    let b = bases(dir);
    b.iter()
        .enumerate()
        .map(|(i, &base)| {
            let end = b.get(i + 1).copied().unwrap_or_else(|| {
                let log = std::fs::read(seg_file(dir, base, LOG_EXT)).unwrap();
                kafka_batches(&log)
                    .last()
                    .map_or(base, |(_, s)| s.last_offset + 1)
            });
            (base, end)
        })
        .collect()
}

/// Whether the indexes at `index` / `time` match the log of segment `base` in `dir`.
fn matches(dir: &Path, base: u64, end: u64, index: &Path, time: &Path) -> bool {
    matches_with_tail(dir, base, end, index, time, super::TAIL_BYTES_MAX)
}

/// [`matches`], leaving at most `tail_max` bytes after the last offset-index entry's batch.
fn matches_with_tail(
    dir: &Path,
    base: u64,
    end: u64,
    index: &Path,
    time: &Path,
    tail_max: u64,
) -> bool {
    let log_path = seg_file(dir, base, LOG_EXT);
    let log = Fs::Std.open(&log_path, OpenFlags::READ).unwrap();
    let size = log.len().unwrap();
    let mut probe = LogProbe::new(&log, &log_path, size, base);
    probe.parse = kafka_span;
    probe.tail_max = tail_max;
    let (Ok(i), Ok(t)) = (
        OffsetIndex::open_read_only(&Fs::Std, index),
        TimeIndex::open_read_only(&Fs::Std, time),
    ) else {
        return false;
    };
    probe.indexes_match(&i, &t, end - base).unwrap()
}

/// Build segment `base`'s indexes from its log with seglog's cursor, as appending it batch by
/// batch and sealing would; returns the written `.index` and `.timeindex` bytes.
fn seglog_indexes(src: &Path, base: u64, end: u64) -> (Vec<u8>, Vec<u8>) {
    let tmp = tempfile::tempdir().unwrap();
    let log = std::fs::read(seg_file(src, base, LOG_EXT)).unwrap();
    std::fs::write(seg_file(tmp.path(), base, LOG_EXT), &log).unwrap();
    let (seg, files) =
        Segment::open_active(&Fs::Std, tmp.path(), Offset(base), 0, 0, 10 << 20).unwrap();
    let mut cursor = IndexCursor::new(4096);
    for (pos, span) in kafka_batches(&log) {
        cursor.on_span(&seg, &files, span, pos);
    }
    seg.seal(&files, &cursor, end, log.len() as u64).unwrap();
    drop(files);
    (
        std::fs::read(seg.path(INDEX_EXT)).unwrap(),
        std::fs::read(seg.path(TIME_INDEX_EXT)).unwrap(),
    )
}

#[test]
fn indexes_built_from_the_log_equal_kafkas() {
    for name in PRODUCER_PATH {
        let dir = fixture(name);
        for (base, end) in ends(&dir) {
            let (index, time) = seglog_indexes(&dir, base, end);
            let what = format!("{name}/{base:020}");
            assert_eq!(
                index,
                std::fs::read(seg_file(&dir, base, INDEX_EXT)).unwrap(),
                "{what}.index"
            );
            assert_eq!(
                time,
                std::fs::read(seg_file(&dir, base, TIME_INDEX_EXT)).unwrap(),
                "{what}.timeindex"
            );
        }
    }
}

#[test]
fn kafkas_indexes_pass_the_checks_against_the_log() {
    // Including the cleaner's chunk-level offset-index entry in compacted-gaps.
    for name in PRODUCER_PATH.iter().chain(&["compacted-gaps"]) {
        let dir = fixture(name);
        for (base, end) in ends(&dir) {
            let (i, t) = (
                seg_file(&dir, base, INDEX_EXT),
                seg_file(&dir, base, TIME_INDEX_EXT),
            );
            assert!(matches(&dir, base, end, &i, &t), "{name}/{base:020}");
        }
    }
}

#[test]
fn torn_tail_indexes_naming_the_cut_batch_are_rejected() {
    let dir = fixture("torn-tail");
    let (i, t) = (
        seg_file(&dir, 0, INDEX_EXT),
        seg_file(&dir, 0, TIME_INDEX_EXT),
    );
    // The log's whole batches end at offset 571; the indexes still name 572-581.
    assert!(!matches(&dir, 0, 582, &i, &t));
}

/// A copy of `fixture`'s segment `base` indexes after `damage`, checked against its log.
fn damaged(name: &str, base: u64, ext: &str, damage: impl Fn(&mut Vec<u8>)) -> bool {
    damaged_with_tail(name, base, ext, damage, super::TAIL_BYTES_MAX)
}

/// [`damaged`] with a probe leaving at most `tail_max` bytes unindexed.
fn damaged_with_tail(
    name: &str,
    base: u64,
    ext: &str,
    damage: impl Fn(&mut Vec<u8>),
    tail_max: u64,
) -> bool {
    let dir = fixture(name);
    let end = ends(&dir).into_iter().find(|e| e.0 == base).unwrap().1;
    let tmp = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for e in [INDEX_EXT, TIME_INDEX_EXT] {
        let p = seg_file(tmp.path(), base, e);
        let mut bytes = std::fs::read(seg_file(&dir, base, e)).unwrap();
        if e == ext {
            damage(&mut bytes);
        }
        std::fs::write(&p, bytes).unwrap();
        paths.push(p);
    }
    matches_with_tail(&dir, base, end, &paths[0], &paths[1], tail_max)
}

/// Whether every lookup through `index` (bytes) starts at or before the batch of its target.
fn lookups_are_safe(log: &[u8], base: u64, index: &[u8]) -> bool {
    let batches = kafka_batches(log);
    let entries: Vec<(u64, u64)> = index
        .chunks_exact(8)
        .map(|e| {
            let f = |at: usize| u64::from(u32::from_be_bytes(e[at..at + 4].try_into().unwrap()));
            (base + f(0), f(4))
        })
        .collect();
    batches.iter().all(|&(_, b)| {
        let target = b.last_offset;
        let start = entries
            .iter()
            .rev()
            .find(|e| e.0 <= target)
            .map_or(0, |e| e.1);
        let holder = batches
            .iter()
            .find(|(_, s)| s.last_offset >= target)
            .unwrap();
        start <= holder.0 && batches.iter().any(|(p, _)| *p == start)
    })
}

#[test]
fn every_flipped_byte_is_rejected_or_harmless() {
    let dir = fixture("plain");
    let log = std::fs::read(seg_file(&dir, 0, LOG_EXT)).unwrap();
    let good = std::fs::read(seg_file(&dir, 0, INDEX_EXT)).unwrap();
    let mut accepted = 0;
    for i in 0..good.len() {
        for bit in [0x01, 0x80] {
            let mut bad = good.clone();
            bad[i] ^= bit;
            if damaged("plain", 0, INDEX_EXT, |b| b[i] ^= bit) {
                // Only an entry that still starts lookups at or before the target's batch.
                assert!(lookups_are_safe(&log, 0, &bad), "byte {i} bit {bit:#x}");
                accepted += 1;
            }
        }
    }
    assert!(accepted < good.len() / 4, "{accepted} flips accepted");
    let good = std::fs::read(seg_file(&dir, 0, TIME_INDEX_EXT)).unwrap();
    for i in 0..good.len() {
        for bit in [0x01, 0x80] {
            assert!(
                !damaged("plain", 0, TIME_INDEX_EXT, |b| b[i] ^= bit),
                "time index byte {i} bit {bit:#x}"
            );
        }
    }
}

#[test]
fn wrong_lengths_moved_positions_and_foreign_entries_are_rejected() {
    for ext in [INDEX_EXT, TIME_INDEX_EXT] {
        assert!(
            !damaged("plain", 0, ext, |b| b.truncate(b.len() - 1)),
            "{ext}"
        );
        assert!(!damaged("plain", 0, ext, |b| b.push(0)), "{ext}");
    }
    assert!(!damaged("plain", 0, TIME_INDEX_EXT, Vec::clear), "emptied");
    // An emptied or shortened offset index only makes lookups scan further: it is rebuilt
    // once it leaves more than the probe's limit unindexed (16 MiB; here 8 KiB, plain's last
    // entry is at its last batch).
    let tail = 8 << 10;
    assert!(damaged_with_tail("plain", 0, INDEX_EXT, |_| (), tail));
    assert!(!damaged_with_tail("plain", 0, INDEX_EXT, Vec::clear, tail));
    assert!(!damaged_with_tail(
        "plain",
        0,
        INDEX_EXT,
        |b| b.truncate(b.len() - 16),
        tail
    ));
    assert!(
        damaged("plain", 0, INDEX_EXT, Vec::clear),
        "harmless under 16 MiB"
    );
    // The final time entry (added at close) dropped: the tail is newer than the index says.
    assert!(!damaged("plain", 0, TIME_INDEX_EXT, |b| b.truncate(b.len() - 12)));
    // A position moved off the batch boundary, by one byte either way.
    for delta in [1i32, -1] {
        assert!(!damaged("plain", 0, INDEX_EXT, |b| {
            let p = i32::from_be_bytes(b[12..16].try_into().unwrap());
            b[12..16].copy_from_slice(&(p + delta).to_be_bytes());
        }));
    }
    // Another segment's files beside this segment's log.
    let dir = fixture("multi-segment");
    for (from, to) in [(69u64, 0u64), (147, 69), (0, 147)] {
        let tmp = tempfile::tempdir().unwrap();
        let p: Vec<PathBuf> = [INDEX_EXT, TIME_INDEX_EXT]
            .iter()
            .map(|e| {
                let p = seg_file(tmp.path(), to, e);
                std::fs::copy(seg_file(&dir, from, e), &p).unwrap();
                p
            })
            .collect();
        let end = ends(&dir).into_iter().find(|e| e.0 == to).unwrap().1;
        assert!(!matches(&dir, to, end, &p[0], &p[1]), "{from} for {to}");
    }
}

#[test]
fn reads_start_at_the_floor_entry_of_kafkas_index() {
    // Kafka's entries hold a batch's last offset: every offset's read starts at the floor
    // entry's batch (never past its own batch), and that batch's base is the offset expected.
    for name in PRODUCER_PATH.iter().chain(&["compacted-gaps"]) {
        let dir = fixture(name);
        for (base, _) in ends(&dir) {
            let log = std::fs::read(seg_file(&dir, base, LOG_EXT)).unwrap();
            let index =
                OffsetIndex::open_read_only(&Fs::Std, &seg_file(&dir, base, INDEX_EXT)).unwrap();
            let batches = kafka_batches(&log);
            let (first, last) = (base, batches.last().unwrap().1.last_offset);
            for o in first..=last {
                let rel = u32::try_from(o - base).unwrap();
                let (pos, expected) = super::index_start_with(&index, &log, base, rel, kafka_span);
                let want = index.lookup(rel).map_or(0, |e| e.position as usize);
                assert_eq!(pos, want, "{name} offset {o}: the index is used");
                let (_, at) = batches.iter().find(|(p, _)| *p as usize == pos).unwrap();
                let holder = batches.iter().find(|(_, s)| s.last_offset >= o).unwrap();
                assert!(pos as u64 <= holder.0, "{name} offset {o}");
                assert_eq!(expected, at.base_offset, "{name} offset {o}");
            }
            // An entry whose position's batch ends past the entry's offset is not used.
            if let Some(e) = index.last().filter(|e| e.position > 0) {
                let (_, at) = batches
                    .iter()
                    .find(|(p, _)| *p == u64::from(e.position))
                    .unwrap();
                let rel = u32::try_from(at.last_offset - 1 - base).unwrap();
                let mut bad = std::fs::read(seg_file(&dir, base, INDEX_EXT)).unwrap();
                let n = bad.len();
                bad[n - 8..n - 4].copy_from_slice(&rel.to_be_bytes());
                let tmp = tempfile::tempdir().unwrap();
                let p = tmp.path().join("x.index");
                std::fs::write(&p, bad).unwrap();
                let bad = OffsetIndex::open_read_only(&Fs::Std, &p).unwrap();
                let (pos, _) = super::index_start_with(&bad, &log, base, rel, kafka_span);
                assert!(pos < e.position as usize, "{name}: stale entry not used");
            }
        }
    }
}

#[test]
fn kafkas_txn_index_loads() {
    let path = seg_file(&fixture("transactional"), 0, "txnindex");
    let txn = TxnIndex::load(&Fs::Std, &path, 0, Some(76)).unwrap();
    let want = [(2001, 12, 44, 45), (2000, 45, 63, 47)].map(|(p, f, l, s)| AbortedTxn {
        producer_id: p,
        first_offset: f,
        last_offset: l,
        last_stable_offset: s,
    });
    assert_eq!(txn, TxnIndex::Loaded(want.to_vec()));
    assert_eq!(
        TxnIndex::load(
            &Fs::Std,
            &seg_file(&fixture("plain"), 0, "txnindex"),
            0,
            None
        )
        .unwrap(),
        TxnIndex::Absent
    );
    // Its markers end at 63: a segment ending at 60 cannot hold them.
    assert_eq!(
        TxnIndex::load(&Fs::Std, &path, 0, Some(60)).unwrap(),
        TxnIndex::Damaged
    );
}

/// The whole load path on a Kafka segment: Kafka's indexes are kept (not rebuilt), and once
/// damaged, rebuilt from the log to Kafka's bytes again. Needs seglog's batch parser to read
/// Kafka record batch v2.
#[test]
fn sealed_kafka_segments_load_their_indexes_or_rebuild_them_equal() {
    for name in PRODUCER_PATH {
        let src = fixture(name);
        let tmp = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(&src).unwrap() {
            let p = entry.unwrap().path();
            std::fs::copy(&p, tmp.path().join(p.file_name().unwrap())).unwrap();
        }
        for (base, end) in ends(&src) {
            let seg = Segment::sealed_lazy(&Fs::Std, tmp.path(), Offset(base), Offset(end));
            let kafka = |ext| std::fs::read(seg_file(&src, base, ext)).unwrap();
            let files = seg.files().unwrap();
            assert_eq!(
                files.index.read().len() * 8,
                kafka(INDEX_EXT).len(),
                "{name}"
            );
            assert_eq!(
                files.txn_index != TxnIndex::Absent,
                name == "transactional",
                "{name}"
            );
            drop(files);
            seg.unload();
            // Damage both; loading rebuilds them to Kafka's bytes.
            for ext in [INDEX_EXT, TIME_INDEX_EXT] {
                std::fs::write(seg.path(ext), [1u8; 7]).unwrap();
            }
            drop(seg.files().unwrap());
            for ext in [INDEX_EXT, TIME_INDEX_EXT] {
                assert_eq!(
                    std::fs::read(seg.path(ext)).unwrap(),
                    kafka(ext),
                    "{name} {ext}"
                );
            }
        }
    }
}
