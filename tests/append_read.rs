//! Append and read behaviour of one `Partition` on real files: every record field round-trips,
//! offsets are dense, reads return whole batches and cross segment boundaries, segments roll
//! by size / age / full index / on request, timestamp lookups match a brute-force model, the
//! durability policies and `wait_for` behave as documented, reopen preserves everything, and
//! bad input or bad configuration yields the documented typed errors.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use seglog::testing::{SimError, SimFs, SimOp};
use seglog::{Durability, Error, Header, LogRecord, Offset, Partition, PartitionConfig, Record};

/// A config with no time-based behaviour (no age rolls, no retention) and no fsyncs, so tests
/// control everything through their record timestamps and explicit calls.
fn quiet() -> PartitionConfig {
    PartitionConfig::default()
        .with_durability(Durability::NoSync)
        .with_segment_ms(None)
        .with_retention_ms(None)
        .with_index_bytes_max(4096)
}

/// Small segments and a dense index, so a few hundred records span many segments.
fn small() -> PartitionConfig {
    quiet()
        .with_segment_bytes(1024)
        .with_index_interval_bytes(128)
}

fn rec(value: &str, ts: i64) -> Record {
    Record {
        key: None,
        value: Some(Bytes::copy_from_slice(value.as_bytes())),
        headers: Vec::new(),
        timestamp_ms: ts,
    }
}

/// Every record from `from` to the high watermark, reading `max_bytes` at a time, checking
/// that each read starts where the previous one stopped and that offsets are dense.
fn read_all(p: &Partition, from: Offset, max_bytes: usize) -> Vec<LogRecord> {
    let mut out: Vec<LogRecord> = Vec::new();
    let mut next = from;
    loop {
        let r = p.read(next, max_bytes).unwrap();
        if r.is_empty() {
            assert_eq!(
                next,
                p.high_watermark(),
                "an empty read only at the high watermark"
            );
            return out;
        }
        for rec in r.records() {
            let rec = rec.unwrap();
            assert_eq!(rec.offset, next, "offsets must be dense");
            next = next.next();
            out.push(rec);
        }
        assert_eq!(r.next_offset(), next);
    }
}

/// Appends `n` single-record batches "v{i}" with timestamp `ts(i)`; returns the records.
fn fill(p: &Partition, n: usize, ts: impl Fn(usize) -> i64) -> Vec<Record> {
    let start = p.log_end_offset().0 as usize;
    (start..start + n)
        .map(|i| {
            let r = rec(&format!("v{i:05}-{}", "x".repeat(i % 37)), ts(i));
            let info = p.append(std::slice::from_ref(&r)).unwrap();
            assert_eq!(info.base_offset, Offset(i as u64));
            assert_eq!(info.last_offset, Offset(i as u64));
            r
        })
        .collect()
}

fn assert_same(read: &LogRecord, want: &Record, offset: u64) {
    assert_eq!(read.offset, Offset(offset));
    assert_eq!(
        read.timestamp_ms, want.timestamp_ms,
        "timestamp at {offset}"
    );
    assert_eq!(read.key, want.key, "key at {offset}");
    assert_eq!(read.value, want.value, "value at {offset}");
    assert_eq!(read.headers, want.headers, "headers at {offset}");
}

fn log_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".log"))
        .collect();
    names.sort();
    names
}

/// Brute force: the first offset whose timestamp is `>= target`.
fn model_offset_for_timestamp(records: &[Record], first: u64, target: i64) -> Option<Offset> {
    records
        .iter()
        .position(|r| r.timestamp_ms >= target)
        .map(|i| Offset(first + i as u64))
}

/// A small deterministic pseudo-random sequence (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[test]
fn partition_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Partition>();
    assert_send_sync::<seglog::ReadBatches>();
}

#[test]
fn every_field_round_trips_and_offsets_are_dense() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), quiet()).unwrap();
    let batches: Vec<Vec<Record>> = vec![
        vec![Record::new("plain")],
        vec![
            Record::new("keyed").with_key("k1").with_timestamp(-1),
            Record::tombstone("k1").with_timestamp(1),
            Record {
                key: Some(Bytes::new()),
                value: Some(Bytes::new()),
                headers: vec![
                    Header {
                        key: Bytes::from_static(b"h-null"),
                        value: None,
                    },
                    Header {
                        key: Bytes::from_static(b"h-empty"),
                        value: Some(Bytes::new()),
                    },
                    Header {
                        key: Bytes::new(),
                        value: Some(Bytes::from_static(b"\x00\xff binary")),
                    },
                ],
                timestamp_ms: 0,
            },
        ],
        vec![Record {
            key: None,
            value: None,
            headers: Vec::new(),
            timestamp_ms: 42,
        }],
        vec![
            Record::new(vec![7u8; 5000])
                .with_key(vec![1u8; 300])
                .with_header("a", "1")
                .with_header("b", "2")
                .with_timestamp(0),
            Record::new("max").with_timestamp(i64::MAX),
            Record::new("min again").with_timestamp(0),
        ],
        (0..100)
            .map(|i| Record::new(format!("many-{i}")).with_timestamp(1_700_000_000_000 - i * 7))
            .collect(),
    ];
    let mut expected: Vec<Record> = Vec::new();
    for b in &batches {
        let info = p.append(b).unwrap();
        let base = expected.len() as u64;
        assert_eq!(
            (info.base_offset, info.last_offset),
            (Offset(base), Offset(base + b.len() as u64 - 1))
        );
        expected.extend(b.iter().cloned());
    }
    let end = expected.len() as u64;
    assert_eq!(p.log_end_offset(), Offset(end));
    assert_eq!(p.high_watermark(), Offset(end));
    assert_eq!(p.log_start_offset(), Offset(0));

    let all = read_all(&p, Offset(0), 1 << 20);
    assert_eq!(all.len(), expected.len());
    for (i, (got, want)) in all.iter().zip(&expected).enumerate() {
        assert_same(got, want, i as u64);
    }
    // One read of everything returns every batch, with the offsets the appends reported.
    let r = p.read(Offset(0), 1 << 20).unwrap();
    assert_eq!(r.batches().len(), batches.len());
    let mut base = 0u64;
    for (got, want) in r.batches().iter().zip(&batches) {
        assert_eq!(got.base_offset(), Offset(base));
        assert_eq!(got.record_count() as usize, want.len());
        base += want.len() as u64;
        assert_eq!(got.last_offset(), Offset(base - 1));
        let max_ts = want.iter().map(|r| r.timestamp_ms).max().unwrap();
        assert_eq!(got.max_timestamp(), max_ts);
    }
    // The same after a clean reopen.
    drop(p);
    let p = Partition::open(dir.path(), quiet()).unwrap();
    let all = read_all(&p, Offset(0), 1);
    assert_eq!(all.len(), expected.len());
    for (i, (got, want)) in all.iter().zip(&expected).enumerate() {
        assert_same(got, want, i as u64);
    }
}

#[test]
fn read_at_every_offset_starts_with_the_batch_holding_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), small()).unwrap();
    let mut expected = Vec::new();
    let mut bounds = Vec::new(); // (base, last) of every batch
    for i in 0..120usize {
        let n = 1 + i % 4;
        let batch: Vec<Record> = (0..n)
            .map(|j| {
                rec(
                    &format!("b{i}-r{j}-{}", "y".repeat((i * 7 + j) % 29)),
                    i as i64,
                )
            })
            .collect();
        let info = p.append(&batch).unwrap();
        assert_eq!(info.base_offset, Offset(expected.len() as u64));
        bounds.push((info.base_offset, info.last_offset));
        expected.extend(batch);
    }
    assert!(p.segment_count() > 5, "small segments must have rolled");
    for &(base, last) in &bounds {
        for o in base.0..=last.0 {
            for max_bytes in [0, 1, 200, 1 << 20] {
                let r = p.read(Offset(o), max_bytes).unwrap();
                let first = &r.batches()[0];
                assert_eq!(
                    (first.base_offset(), first.last_offset()),
                    (base, last),
                    "read({o})"
                );
                let got: Vec<LogRecord> = r.records().map(Result::unwrap).collect();
                assert_eq!(
                    got[0].offset,
                    Offset(o),
                    "records() starts at the requested offset"
                );
                for (k, g) in got.iter().enumerate() {
                    assert_same(g, &expected[o as usize + k], o + k as u64);
                }
                if max_bytes <= 1 {
                    assert_eq!(
                        r.batches().len(),
                        1,
                        "a tiny max_bytes still returns one batch"
                    );
                }
            }
        }
    }
}

#[test]
fn max_bytes_bounds_whole_batches() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), quiet()).unwrap();
    for i in 0..50 {
        p.append(&[rec(&"z".repeat(100 + i), i as i64), rec("second", i as i64)])
            .unwrap();
    }
    let all = p.read(Offset(0), usize::MAX).unwrap();
    assert_eq!(
        all.batches().len(),
        50,
        "a huge max_bytes returns every batch of the segment"
    );
    assert_eq!(all.next_offset(), Offset(100));
    let sizes: Vec<usize> = all.batches().iter().map(|b| b.encoded_len()).collect();
    assert_eq!(all.size_bytes(), sizes.iter().sum::<usize>());

    // A batch larger than max_bytes still comes back whole.
    let one = p.read(Offset(1), sizes[0] - 1).unwrap();
    assert_eq!(one.batches().len(), 1);
    assert_eq!(one.batches()[0].encoded_len(), sizes[0]);
    assert_eq!(
        one.records().count(),
        1,
        "records() skips offset 0 of the first batch"
    );
    // Exactly k batches fit: k come back; one byte less: k - 1.
    for k in 1..10 {
        let fit: usize = sizes[..k].iter().sum();
        assert_eq!(p.read(Offset(0), fit).unwrap().batches().len(), k);
        assert_eq!(
            p.read(Offset(0), fit - 1).unwrap().batches().len(),
            (k - 1).max(1)
        );
    }
    // Batches after the first are never partial.
    let r = p.read(Offset(10), 1000).unwrap();
    assert!(r.size_bytes() <= 1000 || r.batches().len() == 1);
    assert!(r.batches().len() > 1);
}

#[test]
fn reads_continue_across_segment_boundaries() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), small()).unwrap();
    let expected = fill(&p, 300, |i| i as i64);
    let bases = p.segment_base_offsets();
    assert!(bases.len() > 10);
    for max_bytes in [1, 100, 4096, usize::MAX] {
        let all = read_all(&p, Offset(0), max_bytes);
        assert_eq!(all.len(), expected.len());
        for (i, (g, w)) in all.iter().zip(&expected).enumerate() {
            assert_same(g, w, i as u64);
        }
    }
    // Reading at each segment's base and just before it.
    for b in &bases[1..] {
        let r = p.read(*b, 1).unwrap();
        assert_eq!(r.batches()[0].base_offset(), *b);
        let r = p.read(Offset(b.0 - 1), 1).unwrap();
        assert_eq!(r.batches()[0].last_offset(), Offset(b.0 - 1));
    }
}

#[test]
fn reads_outside_the_log_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), small()).unwrap();
    let empty = p.read(Offset(0), 100).unwrap();
    assert!(empty.is_empty());
    assert_eq!(empty.next_offset(), Offset(0));
    assert!(matches!(
        p.read(Offset(1), 100),
        Err(Error::OffsetOutOfRange {
            offset: Offset(1),
            ..
        })
    ));

    fill(&p, 100, |i| i as i64);
    let end = p.log_end_offset();
    let r = p.read(end, 100).unwrap();
    assert!(r.is_empty());
    assert_eq!(r.next_offset(), end);
    assert_eq!(r.records().count(), 0);
    for o in [end.next(), Offset(end.0 + 1000), Offset(u64::MAX)] {
        match p.read(o, 100) {
            Err(Error::OffsetOutOfRange {
                offset,
                log_start_offset,
                high_watermark,
            }) => {
                assert_eq!(offset, o);
                assert_eq!(log_start_offset, Offset(0));
                assert_eq!(high_watermark, end);
            }
            other => panic!("read({o}) past the end: {other:?}"),
        }
    }
    // Below the log start.
    assert_eq!(p.delete_records_before(Offset(40)).unwrap(), Offset(40));
    assert_eq!(p.log_start_offset(), Offset(40));
    for o in [0, 1, 39] {
        assert!(matches!(
            p.read(Offset(o), 100),
            Err(Error::OffsetOutOfRange {
                log_start_offset: Offset(40),
                ..
            })
        ));
    }
    let r = p.read(Offset(40), 1).unwrap();
    assert_eq!(r.records().next().unwrap().unwrap().offset, Offset(40));
}

#[test]
fn oversized_and_empty_input_is_rejected_without_side_effects() {
    let dir = tempfile::tempdir().unwrap();
    let config = quiet()
        .with_record_bytes_max(1000)
        .with_batch_bytes_max(4000);
    let p = Partition::open(dir.path(), config).unwrap();
    p.append(&[Record::new("before")]).unwrap();

    assert!(matches!(p.append(&[]), Err(Error::EmptyBatch)));
    let big_value = Record::new(vec![0u8; 1001]);
    match p.append(&[Record::new("ok"), big_value]) {
        Err(Error::RecordTooLarge { size, limit }) => {
            assert_eq!(limit, 1000);
            assert!(size > 1000);
        }
        other => panic!("oversized record: {other:?}"),
    }
    // Key and headers count towards the record size too.
    let big_key = Record::new(vec![0u8; 600]).with_key(vec![1u8; 600]);
    assert!(matches!(
        p.append(&[big_key]),
        Err(Error::RecordTooLarge { .. })
    ));
    let big_header = Record::new("v").with_header("h", vec![2u8; 1200]);
    assert!(matches!(
        p.append(&[big_header]),
        Err(Error::RecordTooLarge { .. })
    ));
    // Each record fits, together they do not.
    let many: Vec<Record> = (0..10).map(|_| Record::new(vec![3u8; 900])).collect();
    match p.append(&many) {
        Err(Error::BatchTooLarge { size, limit }) => {
            assert_eq!(limit, 4000);
            assert!(size > 4000);
        }
        other => panic!("oversized batch: {other:?}"),
    }
    // Nothing was written and the partition still works.
    assert_eq!(p.log_end_offset(), Offset(1));
    let info = p.append(&[Record::new(vec![4u8; 1000])]).unwrap();
    assert_eq!(info.base_offset, Offset(1));
    assert_eq!(read_all(&p, Offset(0), 1 << 20).len(), 2);
}

#[test]
fn invalid_configs_are_rejected_by_open() {
    let dir = tempfile::tempdir().unwrap();
    let threshold = |records, bytes, interval| {
        quiet().with_durability(Durability::SyncThreshold {
            records,
            bytes,
            interval,
        })
    };
    let cases: Vec<(&str, PartitionConfig)> = vec![
        ("segment_bytes", quiet().with_segment_bytes(1023)),
        ("segment_bytes", quiet().with_segment_bytes(0)),
        (
            "segment_bytes",
            quiet().with_segment_bytes(seglog::SEGMENT_BYTES_MAX + 1),
        ),
        ("segment_ms", quiet().with_segment_ms(Some(0))),
        ("index_interval_bytes", quiet().with_index_interval_bytes(0)),
        ("index_bytes_max", quiet().with_index_bytes_max(63)),
        (
            "batch_bytes_max",
            quiet().with_batch_bytes_max(seglog::BATCH_BYTES_LIMIT + 1),
        ),
        ("batch_bytes_max", quiet().with_batch_bytes_max(10)),
        ("record_bytes_max", quiet().with_record_bytes_max(0)),
        (
            "record_bytes_max",
            quiet()
                .with_batch_bytes_max(1000)
                .with_record_bytes_max(1001),
        ),
        ("retention_bytes", quiet().with_retention_bytes(Some(0))),
        ("durability", threshold(None, None, None)),
        ("durability", threshold(Some(0), None, None)),
        ("durability", threshold(None, Some(0), None)),
    ];
    for (want, config) in cases {
        let sub = dir.path().join(want);
        match Partition::open(&sub, config.clone()) {
            Err(Error::InvalidConfig { field, .. }) => assert_eq!(field, want, "{config:?}"),
            Err(e) => panic!("{config:?}: wrong error {e:?}"),
            Ok(_) => panic!("{config:?} accepted"),
        }
    }
    // The edges of the ranges are accepted.
    let ok = [
        quiet().with_segment_bytes(seglog::SEGMENT_BYTES_MIN),
        quiet()
            .with_index_bytes_max(64)
            .with_index_interval_bytes(1),
        quiet().with_segment_ms(Some(1)),
        threshold(None, None, Some(Duration::ZERO)),
        threshold(Some(1), Some(1), None),
    ];
    for (i, config) in ok.into_iter().enumerate() {
        let p = Partition::open(dir.path().join(format!("ok{i}")), config).unwrap();
        p.append(&[Record::new("x")]).unwrap();
    }
}

#[test]
fn a_second_open_of_the_same_dir_fails_while_the_first_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), quiet()).unwrap();
    p.append(&[Record::new("a")]).unwrap();
    match Partition::open(dir.path(), quiet()) {
        Err(Error::AlreadyOpen { path }) => assert_eq!(path, dir.path()),
        other => panic!("second open: {other:?}"),
    }
    // A successful close releases the directory: it opens again while the stale handle,
    // which refuses writes, is still around.
    p.close().unwrap();
    let again = Partition::open(dir.path(), quiet()).unwrap();
    assert_eq!(again.log_end_offset(), Offset(1));
    assert!(matches!(p.append(&[Record::new("b")]), Err(Error::Closed)));
    assert!(matches!(
        Partition::open(dir.path(), quiet()),
        Err(Error::AlreadyOpen { .. })
    ));
    drop(again);
    drop(p);
    let p = Partition::open(dir.path(), quiet()).unwrap();
    assert_eq!(p.log_end_offset(), Offset(1));
    // After a crash (the handle is gone) the directory can be opened again as well.
    p.simulate_crash();
    let p = Partition::open(dir.path(), quiet()).unwrap();
    assert_eq!(p.log_end_offset(), Offset(1));
}

#[test]
fn writes_after_close_fail_and_reads_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), quiet()).unwrap();
    p.append(&[Record::new("a"), Record::new("b")]).unwrap();
    p.close().unwrap();
    p.close().unwrap(); // idempotent
    assert!(matches!(p.append(&[Record::new("c")]), Err(Error::Closed)));
    assert!(matches!(p.roll(), Err(Error::Closed)));
    assert_eq!(p.log_end_offset(), Offset(2));
    assert_eq!(read_all(&p, Offset(0), 1).len(), 2);
    assert!(p.wait_for(Offset(1), Duration::from_secs(10)));
}

#[test]
fn segments_roll_by_size_and_are_named_by_base_offset() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), small()).unwrap();
    fill(&p, 200, |i| i as i64);
    let bases = p.segment_base_offsets();
    assert!(bases.len() > 5, "{bases:?}");
    assert_eq!(bases[0], Offset(0));
    assert!(bases.windows(2).all(|w| w[0] < w[1]));
    let names = log_files(dir.path());
    let want: Vec<String> = bases.iter().map(|b| format!("{:020}.log", b.0)).collect();
    assert_eq!(names, want);
    for b in &bases {
        let name = format!("{:020}", b.0);
        assert_eq!(name.len(), 20);
        for ext in ["log", "index", "timeindex"] {
            assert!(
                dir.path().join(format!("{name}.{ext}")).exists(),
                "{name}.{ext}"
            );
        }
    }
    // No sealed segment exceeds segment_bytes (every batch is far smaller than a segment).
    for b in &bases[..bases.len() - 1] {
        let len = std::fs::metadata(seglog::segment_path(dir.path(), *b, "log"))
            .unwrap()
            .len();
        assert!(len <= 1024, "segment {b} has {len} bytes");
        assert!(len > 1024 / 2, "segment {b} rolled early: {len} bytes");
    }
    // A batch larger than a segment gets a segment of its own.
    let before = p.segment_count();
    let big = p
        .append(&[Record::new(vec![9u8; 3000]).with_timestamp(1)])
        .unwrap();
    p.append(&[rec("after", 2)]).unwrap();
    let bases = p.segment_base_offsets();
    assert_eq!(bases.len(), before + 2);
    assert_eq!(bases[bases.len() - 2], big.base_offset);
    assert_eq!(bases[bases.len() - 1], big.base_offset.next());
    assert_eq!(read_all(&p, Offset(0), 1 << 20).len(), 202);
}

#[test]
fn segments_roll_by_age_of_record_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), quiet().with_segment_ms(Some(1000))).unwrap();
    p.append(&[rec("a", 0)]).unwrap(); // 0
    p.append(&[rec("b", 999)]).unwrap(); // 1: 999 ms after the first, no roll
    assert_eq!(p.segment_base_offsets(), vec![Offset(0)]);
    p.append(&[rec("c", 1000)]).unwrap(); // 2: 1000 ms after: roll
    assert_eq!(p.segment_base_offsets(), vec![Offset(0), Offset(2)]);
    p.append(&[rec("d", 500)]).unwrap(); // 3: older than the segment's first: no roll
    p.append(&[rec("e", 1500), rec("f", 1999)]).unwrap(); // 4, 5: newest 999 ms after 1000
    assert_eq!(p.segment_base_offsets(), vec![Offset(0), Offset(2)]);
    // A batch rolls by its newest timestamp, not its first.
    p.append(&[rec("g", 100), rec("h", 2000)]).unwrap(); // 6, 7
    assert_eq!(
        p.segment_base_offsets(),
        vec![Offset(0), Offset(2), Offset(6)]
    );
    // The age is measured from the new segment's first timestamp (100), also after a reopen.
    drop(p);
    let p = Partition::open(dir.path(), quiet().with_segment_ms(Some(1000))).unwrap();
    p.append(&[rec("i", 1099)]).unwrap(); // 8
    assert_eq!(p.segment_count(), 3);
    p.append(&[rec("j", 1100)]).unwrap(); // 9
    assert_eq!(
        p.segment_base_offsets(),
        vec![Offset(0), Offset(2), Offset(6), Offset(9)]
    );
    let all = read_all(&p, Offset(0), 1 << 20);
    let ts: Vec<i64> = all.iter().map(|r| r.timestamp_ms).collect();
    assert_eq!(
        ts,
        vec![0, 999, 1000, 500, 1500, 1999, 100, 2000, 1099, 1100]
    );
}

#[test]
fn segments_roll_when_an_index_is_full() {
    let dir = tempfile::tempdir().unwrap();
    // Index entries after every batch, 64-byte index files: 8 offset entries, 5 time entries.
    let config = quiet()
        .with_index_bytes_max(64)
        .with_index_interval_bytes(1);
    let p = Partition::open(dir.path(), config.clone()).unwrap();
    // Increasing timestamps fill the time index.
    let mut expected = fill(&p, 40, |i| i as i64);
    let rising = p.segment_count();
    assert!(
        rising >= 5,
        "40 batches with a 5-entry time index: {rising} segments"
    );
    // Constant timestamps add no time entries; the offset index fills instead.
    let d = tempfile::tempdir().unwrap();
    let q = Partition::open(d.path(), config.clone()).unwrap();
    let flat = fill(&q, 40, |_| 7);
    assert!(
        q.segment_count() >= 4,
        "40 batches with an 8-entry index: {}",
        q.segment_count()
    );
    let got = read_all(&q, Offset(0), 1);
    for (i, (g, w)) in got.iter().zip(&flat).enumerate() {
        assert_same(g, w, i as u64);
    }
    assert_eq!(q.offset_for_timestamp(7).unwrap(), Some(Offset(0)));
    assert_eq!(q.offset_for_timestamp(8).unwrap(), None);
    q.simulate_crash();
    let q = Partition::open(d.path(), config.clone()).unwrap();
    assert_eq!(read_all(&q, Offset(0), 1).len(), 40);
    drop(q);

    // Everything reads back, after a clean reopen and after a crash too, and appends continue.
    let check = |p: &Partition, expected: &[Record]| {
        let got = read_all(p, Offset(0), 1);
        assert_eq!(got.len(), expected.len());
        for (i, (g, w)) in got.iter().zip(expected).enumerate() {
            assert_same(g, w, i as u64);
        }
        for (i, w) in expected.iter().enumerate() {
            assert_eq!(
                p.offset_for_timestamp(w.timestamp_ms).unwrap(),
                Some(Offset(i as u64))
            );
        }
    };
    check(&p, &expected);
    drop(p);
    let p = Partition::open(dir.path(), config.clone()).unwrap();
    check(&p, &expected);
    expected.extend(fill(&p, 20, |i| i as i64));
    check(&p, &expected);
    p.simulate_crash();
    let p = Partition::open(dir.path(), config.clone()).unwrap();
    assert!(!p.recovery_report().clean_shutdown);
    check(&p, &expected);
    expected.extend(fill(&p, 20, |i| i as i64));
    check(&p, &expected);
}

#[test]
fn explicit_roll_seals_the_active_segment() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), quiet()).unwrap();
    p.roll().unwrap(); // an empty active segment: no-op
    assert_eq!(p.segment_base_offsets(), vec![Offset(0)]);
    p.append(&[rec("a", 1), rec("b", 2)]).unwrap();
    p.roll().unwrap();
    p.roll().unwrap(); // the new active segment is empty: no-op
    assert_eq!(p.segment_base_offsets(), vec![Offset(0), Offset(2)]);
    p.append(&[rec("c", 3)]).unwrap();
    p.roll().unwrap();
    assert_eq!(
        p.segment_base_offsets(),
        vec![Offset(0), Offset(2), Offset(3)]
    );
    assert_eq!(
        log_files(dir.path()),
        vec![
            "00000000000000000000.log",
            "00000000000000000002.log",
            "00000000000000000003.log"
        ]
    );
    let values: Vec<Bytes> = read_all(&p, Offset(0), 1)
        .into_iter()
        .map(|r| r.value.unwrap())
        .collect();
    assert_eq!(values, vec!["a", "b", "c"]);
    drop(p);
    let p = Partition::open(dir.path(), quiet()).unwrap();
    assert_eq!(
        p.segment_base_offsets(),
        vec![Offset(0), Offset(2), Offset(3)]
    );
    assert_eq!(p.log_end_offset(), Offset(3));
    assert_eq!(p.offset_for_timestamp(3).unwrap(), Some(Offset(2)));
}

#[test]
fn offset_for_timestamp_matches_a_brute_force_model() {
    let dir = tempfile::tempdir().unwrap();
    let config = small().with_index_interval_bytes(64);
    let p = Partition::open(dir.path(), config.clone()).unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    // Timestamps that mostly rise but jump back now and then.
    let mut expected: Vec<Record> = Vec::new();
    let mut base_ts = 5_000i64;
    for i in 0..150 {
        let n = 1 + (rng.next() % 3) as usize;
        let batch: Vec<Record> = (0..n)
            .map(|j| {
                base_ts += (rng.next() % 40) as i64;
                // One record in five jumps back by up to 3 s.
                let jitter = match rng.next() % 5 {
                    0 => -((rng.next() % 3000) as i64),
                    _ => 0,
                };
                rec(&format!("t{i}-{j}"), base_ts + jitter)
            })
            .collect();
        p.append(&batch).unwrap();
        expected.extend(batch);
    }
    assert!(p.segment_count() > 5);
    let mut targets: BTreeSet<i64> = BTreeSet::new();
    for r in &expected {
        for d in [-1, 0, 1] {
            targets.insert(r.timestamp_ms + d);
        }
    }
    let min = expected.iter().map(|r| r.timestamp_ms).min().unwrap();
    let max = expected.iter().map(|r| r.timestamp_ms).max().unwrap();
    targets.extend([i64::MIN, min - 1000, max + 1, i64::MAX]);
    let check = |p: &Partition| {
        for &t in &targets {
            assert_eq!(
                p.offset_for_timestamp(t).unwrap(),
                model_offset_for_timestamp(&expected, 0, t),
                "offset_for_timestamp({t})"
            );
        }
        assert_eq!(p.offset_for_timestamp(i64::MIN).unwrap(), Some(Offset(0)));
        assert_eq!(p.offset_for_timestamp(max + 1).unwrap(), None);
    };
    check(&p);
    drop(p);
    let p = Partition::open(dir.path(), config.clone()).unwrap();
    assert!(p.recovery_report().clean_shutdown);
    check(&p);
    p.simulate_crash();
    let p = Partition::open(dir.path(), config.clone()).unwrap();
    assert!(!p.recovery_report().clean_shutdown);
    check(&p);
    // An empty partition has no offset for any timestamp.
    let empty = tempfile::tempdir().unwrap();
    let e = Partition::open(empty.path(), config).unwrap();
    assert_eq!(e.offset_for_timestamp(i64::MIN).unwrap(), None);
}

#[test]
fn wait_for_returns_true_when_the_offset_exists_and_false_after_a_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), quiet()).unwrap();
    assert!(!p.wait_for(Offset(0), Duration::from_millis(20)));
    p.append(&[rec("a", 1), rec("b", 2)]).unwrap();
    // A correct wait_for returns at once; a wrong one returns false after the timeout.
    assert!(p.wait_for(Offset(0), Duration::from_secs(10)));
    assert!(p.wait_for(Offset(1), Duration::from_secs(10)));
    assert!(!p.wait_for(Offset(2), Duration::from_millis(20)));
    assert!(!p.wait_for(Offset(2), Duration::ZERO));
}

#[test]
fn wait_for_wakes_when_another_thread_appends() {
    for durability in [Durability::NoSync, Durability::SyncEachAppend] {
        let dir = tempfile::tempdir().unwrap();
        let p = Arc::new(Partition::open(dir.path(), quiet().with_durability(durability)).unwrap());
        p.append(&[rec("a", 1)]).unwrap();
        let writer = {
            let p = p.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(30));
                p.append(&[rec("b", 2), rec("c", 3)]).unwrap();
            })
        };
        assert!(p.wait_for(Offset(2), Duration::from_secs(60)));
        let r = p.read(Offset(2), 1).unwrap();
        assert_eq!(r.records().next().unwrap().unwrap().value.unwrap(), "c");
        writer.join().unwrap();
    }
}

#[test]
fn high_watermark_covers_acknowledged_appends_under_every_policy() {
    let policies = [
        Durability::NoSync,
        Durability::SyncEachAppend,
        Durability::SyncThreshold {
            records: Some(10),
            bytes: None,
            interval: None,
        },
        Durability::SyncThreshold {
            records: None,
            bytes: Some(1 << 20),
            interval: Some(Duration::from_secs(3600)),
        },
    ];
    for durability in policies {
        let dir = tempfile::tempdir().unwrap();
        let config = small().with_durability(durability.clone());
        let p = Partition::open(dir.path(), config).unwrap();
        for i in 0..60u64 {
            let info = p.append(&[rec(&format!("r{i}"), i as i64)]).unwrap();
            assert_eq!(info.base_offset, Offset(i));
            assert_eq!(p.high_watermark(), Offset(i + 1), "{durability:?}");
            assert_eq!(p.log_end_offset(), Offset(i + 1));
            let r = p.read(info.base_offset, 1).unwrap();
            assert_eq!(
                r.records().next().unwrap().unwrap().value.unwrap(),
                format!("r{i}")
            );
        }
        p.flush().unwrap();
        assert_eq!(p.high_watermark(), Offset(60));
    }
}

#[test]
fn sync_threshold_by_records_syncs_on_the_tenth_record() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(SimFs::new());
    let config = quiet()
        .with_durability(Durability::SyncThreshold {
            records: Some(10),
            bytes: None,
            interval: None,
        })
        .with_file_system(faults.clone());
    let p = Partition::open(dir.path(), config).unwrap();
    // The next fsync fails: it shows exactly when the partition syncs.
    faults.fail_next(SimOp::Sync, SimError::Eio);
    for i in 0..9 {
        p.append(&[rec("x", i)]).unwrap();
        assert!(
            !p.flush_if_due().unwrap(),
            "only {} records are unsynced",
            i + 1
        );
    }
    assert!(
        p.append(&[rec("tenth", 9)]).is_err(),
        "the tenth record must trigger an fsync"
    );
    assert!(matches!(
        p.append(&[rec("x", 10)]),
        Err(Error::PreviousIoFailed)
    ));

    // Without the fault: nine records and a batch of two, then counting restarts.
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(SimFs::new());
    let config = quiet()
        .with_durability(Durability::SyncThreshold {
            records: Some(10),
            bytes: None,
            interval: None,
        })
        .with_file_system(faults.clone());
    let p = Partition::open(dir.path(), config).unwrap();
    for i in 0..9 {
        p.append(&[rec("x", i)]).unwrap();
    }
    p.append(&[rec("y", 9), rec("z", 10)]).unwrap(); // 11 unsynced: synced by this append
    assert!(!p.flush_if_due().unwrap());
    faults.fail_next(SimOp::Sync, SimError::Eio);
    for i in 0..9 {
        p.append(&[rec("x", i)]).unwrap();
    }
    assert!(!p.flush_if_due().unwrap());
    assert!(p.append(&[rec("x", 9)]).is_err());
    assert_eq!(
        p.high_watermark(),
        Offset(21),
        "written batches stay readable"
    );
}

#[test]
fn sync_threshold_by_bytes_syncs_once_the_bytes_are_reached() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(SimFs::new());
    let config = quiet()
        .with_durability(Durability::SyncThreshold {
            records: None,
            bytes: Some(1000),
            interval: None,
        })
        .with_file_system(faults.clone());
    let p = Partition::open(dir.path(), config).unwrap();
    faults.fail_next(SimOp::Sync, SimError::Eio);
    let mut appended = 0;
    loop {
        appended += 1;
        assert!(appended < 100, "1000 bytes never triggered an fsync");
        if p.append(&[rec(&"b".repeat(50), 0)]).is_err() {
            break;
        }
        assert!(!p.flush_if_due().unwrap());
    }
    let r = p.read(Offset(0), usize::MAX).unwrap();
    let sizes: Vec<usize> = r.batches().iter().map(|b| b.encoded_len()).collect();
    assert_eq!(sizes.len(), appended);
    let before: usize = sizes[..sizes.len() - 1].iter().sum();
    assert!(
        before < 1000,
        "synced late: {before} bytes were already unsynced"
    );
    assert!(before + sizes[sizes.len() - 1] >= 1000);
}

#[test]
fn sync_threshold_by_interval_is_enforced_by_flush_if_due() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(SimFs::new());
    let config = quiet()
        .with_durability(Durability::SyncThreshold {
            records: None,
            bytes: None,
            interval: Some(Duration::from_millis(250)),
        })
        .with_file_system(faults.clone());
    let p = Partition::open(dir.path(), config).unwrap();
    assert!(!p.flush_if_due().unwrap(), "nothing appended, nothing due");
    p.append(&[rec("a", 1)]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        p.flush_if_due().unwrap(),
        "the oldest unsynced append is older than the interval"
    );
    assert!(!p.flush_if_due().unwrap(), "everything is synced");
    // The interval is also checked by append.
    p.append(&[rec("b", 2)]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    faults.fail_next(SimOp::Sync, SimError::Eio);
    assert!(
        p.append(&[rec("c", 3)]).is_err(),
        "append past the interval must fsync"
    );

    // A zero interval syncs on every append, so nothing is ever left due.
    let dir = tempfile::tempdir().unwrap();
    let config = quiet().with_durability(Durability::SyncThreshold {
        records: None,
        bytes: None,
        interval: Some(Duration::ZERO),
    });
    let p = Partition::open(dir.path(), config).unwrap();
    p.append(&[rec("a", 1)]).unwrap();
    assert!(!p.flush_if_due().unwrap());
    assert_eq!(p.high_watermark(), Offset(1));

    // Under the other policies flush_if_due never has anything to do.
    for durability in [Durability::NoSync, Durability::SyncEachAppend] {
        let dir = tempfile::tempdir().unwrap();
        let p = Partition::open(dir.path(), quiet().with_durability(durability)).unwrap();
        p.append(&[rec("a", 1)]).unwrap();
        std::thread::sleep(Duration::from_millis(2));
        assert!(!p.flush_if_due().unwrap());
    }
}

#[test]
fn sync_each_append_fsyncs_before_acknowledging() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(SimFs::new());
    let config = quiet()
        .with_durability(Durability::SyncEachAppend)
        .with_file_system(faults.clone());
    let p = Partition::open(dir.path(), config).unwrap();
    p.append(&[rec("a", 1)]).unwrap();
    assert_eq!(p.high_watermark(), Offset(1));
    faults.fail_next(SimOp::Sync, SimError::Eio);
    assert!(p.append(&[rec("b", 2)]).is_err());
    // The unsynced batch was never acknowledged, so readers never see it.
    assert_eq!(p.high_watermark(), Offset(1));
    assert_eq!(p.log_end_offset(), Offset(2));
    assert!(p.read(Offset(1), 100).unwrap().is_empty());
    assert!(matches!(
        p.read(Offset(2), 100),
        Err(Error::OffsetOutOfRange { .. })
    ));
    assert!(matches!(
        p.append(&[rec("c", 3)]),
        Err(Error::PreviousIoFailed)
    ));
}

#[test]
fn clean_reopen_preserves_everything() {
    let dir = tempfile::tempdir().unwrap();
    let config = small().with_segment_ms(Some(10_000));
    let p = Partition::open(dir.path(), config.clone()).unwrap();
    assert!(
        p.recovery_report().clean_shutdown,
        "a new partition needs no recovery"
    );
    let mut expected = fill(&p, 150, |i| (i as i64) * 100);
    let bases = p.segment_base_offsets();
    let end = p.log_end_offset();
    p.close().unwrap();
    assert!(dir.path().join(".clean-shutdown").exists());
    drop(p);

    let p = Partition::open(dir.path(), config.clone()).unwrap();
    let report = p.recovery_report().clone();
    assert!(report.clean_shutdown);
    assert_eq!(report.segments_scanned, 0);
    assert_eq!(report.truncated_bytes, 0);
    assert_eq!(report.log_end_offset, end);
    assert!(
        !dir.path().join(".clean-shutdown").exists(),
        "the marker is consumed at open"
    );
    assert_eq!(p.segment_base_offsets(), bases);
    assert_eq!(
        (p.log_start_offset(), p.log_end_offset(), p.high_watermark()),
        (Offset(0), end, end)
    );
    let got = read_all(&p, Offset(0), 333);
    for (i, (g, w)) in got.iter().zip(&expected).enumerate() {
        assert_same(g, w, i as u64);
    }
    for (i, w) in expected.iter().enumerate() {
        assert_eq!(
            p.offset_for_timestamp(w.timestamp_ms).unwrap(),
            Some(Offset(i as u64))
        );
    }
    // Appends continue at the end.
    expected.extend(fill(&p, 10, |i| (i as i64) * 100));

    // A crash (no close) is seen as unclean; nothing acknowledged is lost.
    p.simulate_crash();
    assert!(!dir.path().join(".clean-shutdown").exists());
    let p = Partition::open(dir.path(), config.clone()).unwrap();
    let report = p.recovery_report().clone();
    assert!(!report.clean_shutdown);
    assert!(report.segments_scanned > 0);
    assert_eq!(report.log_end_offset, Offset(160));
    assert_eq!(read_all(&p, Offset(0), 1 << 20).len(), 160);
    for (i, w) in expected.iter().enumerate() {
        assert_eq!(
            p.offset_for_timestamp(w.timestamp_ms).unwrap(),
            Some(Offset(i as u64))
        );
    }
    // Dropping without close is a clean close too.
    drop(p);
    let p = Partition::open(dir.path(), config).unwrap();
    assert!(p.recovery_report().clean_shutdown);
    assert_eq!(p.log_end_offset(), Offset(160));
}

#[test]
fn negative_timestamps_are_rejected_on_append_except_no_timestamp() {
    // Kafka's producer refuses a negative timestamp; -1 is Kafka's "no timestamp".
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), quiet()).unwrap();
    for bad in [-2, -3, -1_000, i64::MIN] {
        let batch = [Record::new("ok"), Record::new("bad").with_timestamp(bad)];
        let err = p.append(&batch).unwrap_err();
        assert!(
            matches!(err, Error::InvalidTimestamp { timestamp_ms, index: Some(1), .. } if timestamp_ms == bad),
            "{err:?}"
        );
        assert!(err.to_string().contains(&bad.to_string()), "{err}");
    }
    assert_eq!(p.log_end_offset(), Offset(0), "nothing was appended");
    p.append(&[Record::new("none").with_timestamp(seglog::NO_TIMESTAMP)])
        .unwrap();
    assert_eq!(p.log_end_offset(), Offset(1));
}

#[test]
fn list_offsets_reads_kafkas_special_timestamps() {
    use seglog::OffsetSpec;
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), quiet()).unwrap();
    assert_eq!(p.list_offset(OffsetSpec::MaxTimestamp).unwrap(), None);
    assert_eq!(p.list_offset(OffsetSpec::Latest).unwrap(), Some(Offset(0)));
    // Timestamps 10, 50, 30, 50, 20 at offsets 0..5; the first 50 is at offset 1.
    for ts in [10, 50, 30, 50, 20] {
        p.append(&[Record::new("r").with_timestamp(ts)]).unwrap();
    }
    p.roll().unwrap();
    p.append(&[Record::new("r").with_timestamp(40)]).unwrap();
    let at = |t: i64| {
        p.list_offset(OffsetSpec::from_kafka_timestamp(t).unwrap())
            .unwrap()
    };
    assert_eq!(at(-1), Some(Offset(6)), "latest: the high watermark");
    assert_eq!(at(-2), Some(Offset(0)), "earliest: the log start");
    assert_eq!(
        at(-3),
        Some(Offset(1)),
        "max timestamp: the first record holding it"
    );
    assert_eq!(at(25), Some(Offset(1)));
    assert_eq!(at(51), None);
    assert!(matches!(
        OffsetSpec::from_kafka_timestamp(-4),
        Err(Error::InvalidTimestamp {
            timestamp_ms: -4,
            index: None,
            ..
        })
    ));
    // The max timestamp below the log start no longer counts.
    p.delete_records_before(Offset(4)).unwrap();
    assert_eq!(at(-2), Some(Offset(4)));
    assert_eq!(
        at(-3),
        Some(Offset(5)),
        "40 is the largest visible timestamp"
    );
}
