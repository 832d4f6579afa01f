//! Exhaustive single-byte damage (issue 9, bug 3): small partitions — dense, gapped (a
//! compacting partition never compacted), compacted (tombstones kept, segments that keep their
//! last batch and segments that lost it), and Kafka-written directories opened once by seglog
//! (which gives their gapped segments a batch witness) — are closed; then every byte of every
//! segment file (`.log`, `.index`, `.timeindex`, `.batches`) is flipped, one at a time, with a
//! few XOR masks. Each damaged copy is opened (on the simulated file system, so no fsync slows
//! it) and read in full: by batch-sized reads, by 1 MiB reads, at every offset, and by
//! `offset_for_timestamp` at a few times. Every full read walks both the owned records and the
//! borrowed views (`for_each_record`, and `read_each_record` fed by the read walk), which must
//! agree record for record and fail together.
//!
//! What must hold: every record returned is at its true offset with its true key, value and
//! timestamp (compared with what an undamaged copy returns); records come in offset order
//! with none skipped; a timestamp lookup answers what the undamaged copy answers. The damage
//! may instead show as a typed error, or as a shorter read. Which, as measured (the tallies
//! are printed with `--nocapture`):
//! - after a clean shutdown, damage to flushed data is a typed error: at open
//!   (`CorruptBelowRecoveryPoint` when the clean-open check of the last segment fails and
//!   recovery finds the damage below the recovery point) or at the read that reaches it
//!   (`Corrupt`; the reads before it return the records in front of it: a shorter read, then
//!   the error); a damaged `.index` / `.timeindex` is rebuilt and reads whole; a damaged
//!   witness holds its segment to dense offsets, so its gaps read as `Corrupt`;
//! - after a crash that left no recovery point, recovery cuts the log at the damage as it cuts
//!   a torn tail: a shorter log, every record in it right (`compacted_partition_after_a_crash`).
//!
//! Sized to run in well under a minute: one mask per byte (taken in turn from `0x01`, `0x80`,
//! `0xff`); seglog's partitions are swept at every byte, Kafka's at every byte of their index
//! and witness files and of every batch header's first 27 bytes (the fields outside the CRC,
//! and the offsets), and at a stride of 31 bytes elsewhere; reads at single offsets probe every
//! third offset. `SEGLOG_BIT_FLIPS=full` sweeps every byte of everything with nine masks
//! (every single bit, and all eight; several minutes).

mod support;
use std::collections::BTreeMap;
use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use support::small_partition_config as small;

use seglog::testing::SimFs;
use seglog::{CleanupPolicy, Durability, Offset, Partition, PartitionConfig, Record};

/// Where the damaged copies live on the simulated file system.
const DIR: &str = "/p";
/// A compaction time past every timestamp and lag used here.
const FAR: i64 = i64::MAX / 4;
const TS0: i64 = 1_700_000_000_000;

/// A record as read: key, value, timestamp.
type Rec = (Option<Vec<u8>>, Option<Vec<u8>>, i64);

struct Fixture {
    name: String,
    /// The closed partition's files (everything but the lock file).
    files: Vec<(String, Vec<u8>)>,
    config: PartitionConfig,
    /// Every record of the undamaged copy, by offset.
    truth: BTreeMap<u64, Rec>,
    /// `offset_for_timestamp` of the undamaged copy at a few times.
    probes: Vec<(i64, Option<Offset>)>,
    /// Sweep every byte (seglog's small partitions) or headers and indexes (Kafka's).
    every_byte: bool,
    /// The undamaged copy's high watermark.
    end: u64,
    /// Open each damaged copy as after a crash: no clean-shutdown marker, no recovery point
    /// (recovery scans everything and cuts the log at the damage, as at a torn tail).
    crashed: bool,
}

fn full_sweep() -> bool {
    std::env::var("SEGLOG_BIT_FLIPS").is_ok_and(|v| v == "full")
}

/// Appends batches of one to three records: keys from a small set (so compaction has work),
/// some tombstones when `tombstones`, timestamps mostly increasing.
fn fill(p: &Partition, batches: u64, tombstones: bool) {
    for b in 0..batches {
        let n = 1 + b % 3;
        let recs: Vec<Record> = (0..n)
            .map(|i| {
                let k = (b * 7 + i * 3) % 5;
                let ts = TS0 + (b * 10 + i) as i64 - if b % 4 == 3 { 25 } else { 0 };
                let r = if tombstones && (b + i) % 6 == 5 {
                    Record::tombstone(format!("k{k}"))
                } else {
                    Record::new(format!("v{b}-{i}-{}", "x".repeat((b % 4) as usize * 5)))
                        .with_key(format!("k{k}"))
                };
                r.with_timestamp(ts)
            })
            .collect();
        p.append(&recs).unwrap();
    }
}

fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file() && e.file_name() != ".lock")
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name, fs::read(e.path()).unwrap())
        })
        .collect();
    files.sort();
    files
}

/// A copy of `files` on a fresh simulated file system, made durable, with byte `at` of file
/// `flip` XORed with `mask`; as after a crash (no clean-shutdown marker, no recovery point)
/// if `crashed`.
fn load(
    files: &[(String, Vec<u8>)],
    flip: Option<(usize, usize, u8)>,
    crashed: bool,
) -> Arc<SimFs> {
    let sim = Arc::new(SimFs::new());
    sim.create_dir_all(DIR).unwrap();
    for (i, (name, bytes)) in files.iter().enumerate() {
        if crashed && [".clean-shutdown", "recovery-point.checkpoint"].contains(&name.as_str()) {
            continue;
        }
        let mut b = bytes.clone();
        if let Some((f, at, mask)) = flip {
            if f == i {
                b[at] ^= mask;
            }
        }
        let path = Path::new(DIR).join(name);
        sim.write_file(&path, 0, &b).unwrap();
        sim.sync_file(&path).unwrap();
    }
    sim.sync_dir(DIR).unwrap();
    sim
}

/// The records `Partition::read_each_record` gives at `next`, and the offset it returns.
fn sink_read(p: &Partition, next: Offset, max_bytes: usize) -> (Vec<(u64, Rec)>, Option<Offset>) {
    let mut got = Vec::new();
    let end = p.read_each_record(next, max_bytes, |rec| {
        let key = rec.key().map(<[u8]>::to_vec);
        let value = rec.value().map(<[u8]>::to_vec);
        got.push((rec.offset().0, (key, value, rec.timestamp_ms())));
    });
    (got, end.ok())
}

/// Everything a full read of `p` returns, reading `max_bytes` at a time from the log start:
/// the records in order, and whether the read ended early on an error. Each read is also
/// made by `read_each_record`, which must agree with it.
fn read_all(p: &Partition, max_bytes: usize) -> (Vec<(u64, Rec)>, bool) {
    let mut out = Vec::new();
    let hw = p.high_watermark();
    let mut next = p.log_start_offset();
    while next < hw {
        let (sunk, sink_end) = sink_read(p, next, max_bytes);
        let Ok(r) = p.read(next, max_bytes) else {
            // It fails too, having given only records in front of the damage: the caller
            // checks them against the truth.
            assert!(sink_end.is_none(), "read failed, read_each_record did not");
            out.extend(sunk);
            return (out, true);
        };
        if r.is_empty() {
            break;
        }
        let mut owned = Vec::new();
        let mut failed = false;
        for rec in r.records() {
            let Ok(rec) = rec else {
                failed = true;
                break;
            };
            let key = rec.key.as_ref().map(|k| k.to_vec());
            let value = rec.value.as_ref().map(|v| v.to_vec());
            owned.push((rec.offset.0, (key, value, rec.timestamp_ms)));
        }
        // The borrowed views of the same read: the same records, failing at the same place.
        let mut views = Vec::new();
        let walked = r.for_each_record(|rec| {
            let key = rec.key().map(<[u8]>::to_vec);
            let value = rec.value().map(<[u8]>::to_vec);
            views.push((rec.offset().0, (key, value, rec.timestamp_ms())));
        });
        assert_eq!(
            walked.is_err(),
            failed,
            "views and owned records disagree on damage"
        );
        assert!(views == owned, "views and owned records differ");
        assert!(sunk == owned, "read_each_record and owned records differ");
        assert_eq!(
            sink_end,
            (!failed).then(|| r.next_offset()),
            "read_each_record and read disagree on the end or on damage"
        );
        out.extend(owned);
        if failed {
            return (out, true);
        }
        if r.next_offset() <= next {
            panic!("read at {next:?} made no progress");
        }
        next = r.next_offset();
    }
    (out, false)
}

/// A record for a failure message: offset, key, start of the value.
fn show((offset, (key, value, ts)): &(u64, Rec)) -> String {
    let text = |b: &Option<Vec<u8>>| {
        b.as_ref()
            .map(|b| String::from_utf8_lossy(&b[..b.len().min(24)]).into_owned())
    };
    format!("{offset}: {:?} = {:?} @ {ts}", text(key), text(value))
}

/// What one damaged copy did.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    trials: u64,
    open_errors: u64,
    read_errors: u64,
    /// Opened with a shorter log (recovery cut it at the damage: only after a crash).
    shorter: u64,
    whole: u64,
}

/// Open the copy and read it every way; panics on a wrong record.
fn check_copy(fx: &Fixture, sim: &Arc<SimFs>, tally: &mut Tally, ctx: &str) {
    tally.trials += 1;
    let cfg = fx.config.clone().with_file_system(sim.clone());
    let Ok(p) = Partition::open(DIR, cfg) else {
        tally.open_errors += 1;
        return;
    };
    let mut errored = false;
    let complete = p.high_watermark().0 >= fx.end;
    assert!(
        complete || fx.crashed,
        "{ctx}: the log got shorter without an error"
    );
    for max_bytes in [1usize, 1 << 20] {
        let (got, err) = read_all(&p, max_bytes);
        errored |= err;
        // Records in order, none skipped: a prefix of the truth from the log start.
        let want: Vec<(u64, Rec)> = fx
            .truth
            .range(p.log_start_offset().0..)
            .map(|(o, r)| (*o, r.clone()))
            .take(got.len())
            .collect();
        if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
            panic!(
                "{ctx}: reads of {max_bytes} bytes: record {i} is {} where the log holds {}",
                show(&got[i]),
                show(&want[i])
            );
        }
        let all = fx.truth.range(p.log_start_offset().0..p.high_watermark().0);
        assert!(
            err || got.len() == all.count(),
            "{ctx}: a read ended early without an error"
        );
    }
    // A read at any offset (every third: each trial stays cheap) starts at the first record
    // at or after it.
    for o in (p.log_start_offset().0..p.high_watermark().0).step_by(3) {
        let (sunk, sink_end) = sink_read(&p, Offset(o), 1);
        let Ok(r) = p.read(Offset(o), 1) else {
            assert!(
                sink_end.is_none(),
                "{ctx}: read at {o} failed, read_each_record did not"
            );
            // What it gave before the damage stopped it is right.
            for (offset, rec) in &sunk {
                assert_eq!(
                    fx.truth.get(offset),
                    Some(rec),
                    "{ctx}: read_each_record at {o}"
                );
            }
            errored = true;
            continue;
        };
        // The same read by `read_each_record`: the same records from `o`, the same end.
        let owned: Result<Vec<_>, _> = r.records().collect();
        match owned {
            Ok(owned) => {
                let offsets: Vec<u64> = owned.iter().map(|rec| rec.offset.0).collect();
                let sunk: Vec<u64> = sunk.iter().map(|(offset, _)| *offset).collect();
                assert_eq!(sunk, offsets, "{ctx}: read_each_record at {o}");
                assert_eq!(
                    sink_end,
                    Some(r.next_offset()),
                    "{ctx}: read_each_record at {o}"
                );
            }
            Err(_) => assert!(sink_end.is_none(), "{ctx}: read_each_record at {o}"),
        }
        let first = r.records().next();
        let want = fx.truth.range(o..).next();
        match (first, want) {
            (Some(Ok(rec)), Some((wo, wr))) => {
                let key = rec.key.as_ref().map(|k| k.to_vec());
                let value = rec.value.as_ref().map(|v| v.to_vec());
                assert_eq!(
                    (rec.offset.0, (key, value, rec.timestamp_ms)),
                    (*wo, wr.clone()),
                    "{ctx}: read at {o}"
                );
            }
            (Some(Err(_)), _) => errored = true,
            (None, want) => {
                // Nothing returned: only right if no record remains at or after `o` in this
                // read's batches (compaction's trailing gaps) — then the next read moves on.
                assert!(
                    r.is_empty() || want.is_none() || r.next_offset().0 <= *want.unwrap().0,
                    "{ctx}: read at {o} skipped {want:?}"
                );
            }
            (Some(Ok(rec)), None) => panic!("{ctx}: read at {o} returned {rec:?} past the end"),
        }
    }
    // A shorter log answers for fewer records.
    for (t, want) in fx.probes.iter().filter(|_| complete) {
        match p.offset_for_timestamp(*t) {
            Ok(got) => assert_eq!(got, *want, "{ctx}: offset_for_timestamp({t})"),
            Err(_) => errored = true,
        }
    }
    if errored {
        tally.read_errors += 1;
    } else if !complete {
        tally.shorter += 1;
    } else {
        tally.whole += 1;
    }
    drop(p);
}

/// The truth and probes of an undamaged copy; checks it reads whole.
fn with_truth(name: &str, dir: &Path, config: PartitionConfig, every_byte: bool) -> Fixture {
    let files = snapshot(dir);
    let sim = load(&files, None, false);
    let p = Partition::open(DIR, config.clone().with_file_system(sim)).unwrap();
    let (got, err) = read_all(&p, 1 << 20);
    assert!(!err, "{name}: the undamaged copy reads whole");
    let truth: BTreeMap<u64, Rec> = got.into_iter().collect();
    assert!(!truth.is_empty());
    let probes = [
        TS0 - 1_000,
        TS0 + 5,
        TS0 + 37,
        TS0 + 200,
        TS0 + 399,
        i64::MAX,
    ]
    .into_iter()
    .chain(truth.values().step_by(7).map(|r| r.2))
    .map(|t| (t, p.offset_for_timestamp(t).unwrap()))
    .collect();
    Fixture {
        name: name.to_owned(),
        files,
        config,
        end: p.high_watermark().0,
        truth,
        probes,
        every_byte,
        crashed: false,
    }
}

fn seglog_fixture(name: &str, policy: CleanupPolicy, compact: bool) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let config = small(policy);
    let p = Partition::open(tmp.path(), config.clone()).unwrap();
    fill(&p, 18, compact);
    if compact {
        p.roll().unwrap();
        p.compact_at(FAR, true).unwrap();
        fill(&p, 2, false);
    }
    p.close().unwrap();
    drop(p);
    with_truth(name, tmp.path(), config, true)
}

fn kafka_fixture(name: &str) -> Fixture {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/kafka")
        .join(name);
    let tmp = tempfile::tempdir().unwrap();
    for e in fs::read_dir(&src).unwrap() {
        let path = e.unwrap().path();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if ["log", "index", "timeindex", "txnindex"].contains(&ext) {
            fs::copy(&path, tmp.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    // The first open trusts Kafka's offsets and witnesses every gapped segment.
    let config = PartitionConfig::default()
        .with_durability(Durability::NoSync)
        .with_index_bytes_max(4096);
    let p = Partition::open(tmp.path(), config.clone()).unwrap();
    p.close().unwrap();
    drop(p);
    with_truth(&format!("kafka/{name}"), tmp.path(), config, false)
}

/// Byte positions of the fields of every batch header of a `.log` that the CRC does not
/// cover or that carry offsets: `baseOffset` to `lastOffsetDelta` (27 bytes from each batch
/// start).
fn header_bytes(log: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos + 12 <= log.len() {
        out.extend(pos..(pos + 27).min(log.len()));
        let len = u32::from_be_bytes(log[pos + 8..pos + 12].try_into().unwrap()) as usize;
        pos += 12 + len;
    }
    out
}

/// The (byte, mask) pairs to try in file number `f`: one mask per byte, taken in turn from a
/// few (every mask at every byte under `SEGLOG_BIT_FLIPS=full`).
fn plan(fx: &Fixture, f: usize, name: &str, bytes: &[u8]) -> Vec<(usize, u8)> {
    const MASKS: [u8; 3] = [0x01, 0x80, 0xff];
    let full = full_sweep();
    let positions: Vec<usize> = if full || fx.every_byte || !name.ends_with(".log") {
        (0..bytes.len()).collect()
    } else {
        let mut p = header_bytes(bytes);
        p.extend((0..bytes.len()).step_by(31));
        p.sort_unstable();
        p.dedup();
        p
    };
    positions
        .into_iter()
        .flat_map(|at| {
            let masks: Vec<u8> = if full {
                (0..8).map(|b| 1u8 << b).chain([0xff]).collect()
            } else {
                vec![MASKS[(at + f) % MASKS.len()]]
            };
            masks.into_iter().map(move |m| (at, m))
        })
        .collect()
}

fn is_segment_file(name: &str) -> bool {
    [".log", ".index", ".timeindex", ".batches"]
        .iter()
        .any(|ext| name.ends_with(ext))
}

fn sweep(fx: &Fixture) -> Tally {
    let mut tally = Tally::default();
    for (f, (name, bytes)) in fx.files.iter().enumerate() {
        if !is_segment_file(name) {
            continue;
        }
        for (at, mask) in plan(fx, f, name, bytes) {
            let ctx = format!("{}: {name} byte {at} ^ {mask:#04x}", fx.name);
            let sim = load(&fx.files, Some((f, at, mask)), fx.crashed);
            let run = catch_unwind(AssertUnwindSafe(|| check_copy(fx, &sim, &mut tally, &ctx)));
            if let Err(e) = run {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                panic!("{ctx}: {msg}");
            }
        }
    }
    eprintln!("{}: {tally:?}", fx.name);
    tally
}

fn run(fx: &Fixture) {
    let t = sweep(fx);
    assert!(t.trials > 0);
    // The sweep reaches damage that is caught, and damage that changes nothing a reader
    // sees (bytes the CRC covers but no record holds are rare: most flips are caught).
    assert!(t.open_errors + t.read_errors > 0, "{}: {t:?}", fx.name);
}

#[test]
fn dense_partition() {
    let fx = seglog_fixture("dense", CleanupPolicy::Delete, false);
    assert!(fx.files.iter().all(|(n, _)| !n.ends_with(".batches")));
    run(&fx);
}

#[test]
fn gapped_partition_never_compacted() {
    run(&seglog_fixture("gaps", CleanupPolicy::Compact, false));
}

#[test]
fn compacted_partition() {
    let fx = seglog_fixture("compacted", CleanupPolicy::Compact, true);
    let witnesses = fx.files.iter().filter(|(n, _)| n.ends_with(".batches"));
    assert!(witnesses.count() > 0, "compaction writes witnesses");
    // Gaps inside and at the end of segments, and kept tombstones.
    let offsets: Vec<u64> = fx.truth.keys().copied().collect();
    assert!(offsets.windows(2).any(|w| w[1] > w[0] + 1), "has gaps");
    assert!(fx.truth.values().any(|r| r.1.is_none()), "keeps tombstones");
    run(&fx);
}

/// The compacted partition opened as after a crash with no recovery point: recovery scans
/// every segment, and damage it finds above the recovery point (here: anywhere) is cut like a
/// torn tail — a shorter log, with every record left right.
#[test]
fn compacted_partition_after_a_crash() {
    let mut fx = seglog_fixture("compacted-crashed", CleanupPolicy::Compact, true);
    fx.crashed = true;
    let t = sweep(&fx);
    assert!(t.shorter > 0 && t.whole > 0, "{t:?}");
}

#[test]
fn kafka_compacted_gaps() {
    let fx = kafka_fixture("compacted-gaps");
    assert!(
        fx.files.iter().any(|(n, _)| n.ends_with(".batches")),
        "the first open witnesses Kafka's gapped segments"
    );
    run(&fx);
}

#[test]
fn kafka_multi_segment_and_transactional() {
    run(&kafka_fixture("multi-segment"));
    run(&kafka_fixture("transactional"));
}
