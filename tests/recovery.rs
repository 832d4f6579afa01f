//! Corruption and recovery on real files: torn tails cut at every byte length, truncation after a
//! clean close, random byte flips in logs and indexes, deleted index files, crashes around a roll,
//! leftover temp and orphan files, damaged checkpoints. Each test writes a partition into a temp
//! directory, damages its files directly (on a copy), reopens it and checks what `open`, the
//! recovery report and every read return against a model of what was appended.

mod support;
use support::Rng;

use std::fs::{self, OpenOptions};
use std::path::Path;

use seglog::{
    segment_path, BatchHeader, CorruptKind, Durability, Error, Header, LogRecord, Offset,
    Partition, PartitionConfig, Record,
};

/// Timestamps start here; record `o` gets roughly `TS_BASE + 10 * o`, with jitter, so time goes
/// slightly backwards now and then, as real producers' clocks do.
const TS_BASE: i64 = 1_700_000_000_000;

/// Every record appended, indexed by offset (all logs here start at offset 0).
#[derive(Default)]
struct Model {
    records: Vec<Record>,
}

impl Model {
    fn end(&self) -> u64 {
        self.records.len() as u64
    }

    /// The first offset in `[start, end)` whose timestamp is `>= ts`: what
    /// `offset_for_timestamp` must answer.
    fn offset_for_timestamp(&self, start: u64, end: u64, ts: i64) -> Option<Offset> {
        (start..end)
            .find(|&o| self.records[o as usize].timestamp_ms >= ts)
            .map(Offset)
    }
}

fn config(durability: Durability) -> PartitionConfig {
    PartitionConfig::default()
        .with_segment_bytes(64 << 10)
        .with_index_interval_bytes(256)
        .with_index_bytes_max(16 << 10)
        .with_segment_ms(None)
        .with_retention_ms(None)
        .with_durability(durability)
}

/// A batch of 1 to 4 records starting at `first_offset`: some keyed, some tombstones, some with
/// headers (including a null header value), values of `0..=value_max` random bytes.
fn gen_batch(rng: &mut Rng, first_offset: u64, value_max: usize) -> Vec<Record> {
    let count = 1 + rng.below(4);
    (0..count)
        .map(|i| {
            let offset = first_offset + i;
            let ts = TS_BASE + offset as i64 * 10 + rng.below(25) as i64;
            let mut r = if rng.below(8) == 0 {
                Record::tombstone(format!("key-{offset}"))
            } else {
                let len = rng.below(value_max as u64 + 1) as usize;
                let r = Record::new(rng.bytes(len));
                if rng.below(2) == 0 {
                    r.with_key(format!("key-{offset}"))
                } else {
                    r
                }
            };
            r = r.with_timestamp(ts);
            for h in 0..rng.below(3) {
                let len = rng.below(8) as usize;
                r = r.with_header(format!("h{h}"), rng.bytes(len));
            }
            if rng.below(5) == 0 {
                r.headers.push(Header {
                    key: "null".into(),
                    value: None,
                });
            }
            r
        })
        .collect()
}

/// Append one batch and record it in the model.
fn append(p: &Partition, model: &mut Model, records: Vec<Record>) {
    let info = p.append(&records).expect("append");
    assert_eq!(info.base_offset, Offset(model.end()));
    assert_eq!(
        info.last_offset,
        Offset(model.end() + records.len() as u64 - 1)
    );
    model.records.extend(records);
}

fn append_random(
    p: &Partition,
    model: &mut Model,
    rng: &mut Rng,
    batches: usize,
    value_max: usize,
) {
    for _ in 0..batches {
        let batch = gen_batch(rng, model.end(), value_max);
        append(p, model, batch);
    }
}

/// A partition of several segments (rolled by size) in `dir`, left open.
fn build(dir: &Path, durability: Durability, seed: u64) -> (Partition, Model) {
    let p = Partition::open(dir, config(durability)).unwrap();
    let mut model = Model::default();
    let mut rng = Rng::from_state(seed);
    append_random(&p, &mut model, &mut rng, 45, 3000);
    assert!(
        p.segment_count() >= 3,
        "want sealed segments, got {}",
        p.segment_count()
    );
    (p, model)
}

/// A small partition of three segments (rolled by hand), for tests that copy it many times.
fn build_small(dir: &Path, durability: Durability, seed: u64) -> (Partition, Model) {
    let p = Partition::open(dir, config(durability)).unwrap();
    let mut model = Model::default();
    let mut rng = Rng::from_state(seed);
    for _ in 0..2 {
        append_random(&p, &mut model, &mut rng, 8, 600);
        p.roll().unwrap();
    }
    append_random(&p, &mut model, &mut rng, 3, 300);
    assert_eq!(p.segment_count(), 3);
    (p, model)
}

fn assert_record(got: &LogRecord, want: &Record, offset: u64) {
    assert_eq!(got.offset, Offset(offset), "record offset");
    assert_eq!(got.timestamp_ms, want.timestamp_ms, "timestamp at {offset}");
    assert_eq!(got.key, want.key, "key at {offset}");
    assert_eq!(got.value, want.value, "value at {offset}");
    assert_eq!(got.headers, want.headers, "headers at {offset}");
}

/// Read `[log_start, high_watermark)` and check it equals the model's records there, one by one.
fn assert_log_matches(p: &Partition, model: &Model, end: u64) {
    assert_eq!(p.log_end_offset(), Offset(end), "log end");
    assert_eq!(p.high_watermark(), Offset(end), "high watermark");
    let mut next = p.log_start_offset().0;
    while next < end {
        let read = p
            .read(Offset(next), 8 << 10)
            .unwrap_or_else(|e| panic!("read at {next}: {e}"));
        assert!(!read.is_empty(), "empty read at {next} below the end {end}");
        for r in read.records() {
            let r = r.unwrap();
            assert_record(&r, &model.records[next as usize], next);
            next += 1;
        }
        assert_eq!(read.next_offset(), Offset(next));
    }
    assert_eq!(next, end);
    assert!(p.read(Offset(end), 1024).unwrap().is_empty());
}

/// `offset_for_timestamp` agrees with the model for timestamps around every record's.
fn assert_timestamps_match(p: &Partition, model: &Model, rng: &mut Rng, probes: usize) {
    let (start, end) = (p.log_start_offset().0, p.log_end_offset().0);
    let mut targets = vec![i64::MIN, TS_BASE - 1, TS_BASE + end as i64 * 10 + 100];
    for _ in 0..probes {
        let o = rng.below(model.end());
        targets.push(model.records[o as usize].timestamp_ms + rng.below(3) as i64 - 1);
    }
    for ts in targets {
        assert_eq!(
            p.offset_for_timestamp(ts).unwrap(),
            model.offset_for_timestamp(start, end, ts),
            "offset_for_timestamp({ts})"
        );
    }
}

/// Append one more batch and read it back.
fn assert_append_works(p: &Partition, model: &mut Model, seed: u64) {
    let batch = gen_batch(&mut Rng::from_state(seed), model.end(), 200);
    let base = model.end();
    append(p, model, batch);
    let read = p.read(Offset(base), 1 << 20).unwrap();
    let mut next = base;
    for r in read.records() {
        assert_record(&r.unwrap(), &model.records[next as usize], next);
        next += 1;
    }
    assert_eq!(next, model.end());
}

/// Copy a partition directory's files (not its lock) into `to`.
fn copy_dir(from: &Path, to: &Path) {
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() != ".lock" {
            fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

fn set_len(path: &Path, len: u64) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).unwrap().len()
}

/// XOR one byte of a file with a non-zero mask.
fn flip_byte(path: &Path, at: u64, mask: u8) {
    assert_ne!(mask, 0);
    let mut bytes = fs::read(path).unwrap();
    bytes[at as usize] ^= mask;
    fs::write(path, bytes).unwrap();
}

/// One batch's place in a log file, parsed from the bytes.
#[derive(Clone, Copy, Debug)]
struct Placed {
    start: u64,
    end: u64,
    base_offset: u64,
    next_offset: u64,
}

/// The batches of an undamaged log file, in order, up to its end or to a zero-filled tail
/// (preallocated space of an active segment).
fn batch_layout(log: &Path) -> Vec<Placed> {
    let bytes = fs::read(log).unwrap();
    let mut out = Vec::new();
    let mut pos = 0usize;
    while has_data(&bytes[pos..]) {
        let h = BatchHeader::parse(&bytes[pos..]).expect("an undamaged log parses");
        let end = pos + h.total_len();
        out.push(Placed {
            start: pos as u64,
            end: end as u64,
            base_offset: h.base_offset,
            next_offset: h.last_offset() + 1,
        });
        pos = end;
    }
    assert!(pos <= bytes.len());
    out
}

/// Whether `bytes` hold anything but zeros.
fn has_data(bytes: &[u8]) -> bool {
    bytes.iter().any(|&b| b != 0)
}

fn active_log(p: &Partition) -> std::path::PathBuf {
    let base = *p.segment_base_offsets().last().unwrap();
    segment_path(p.dir(), base, "log")
}

// ---------------------------------------------------------------------------------------------
// 1. Torn tail at every length.

/// How a torn tail looks on disk.
#[derive(Clone, Copy, Debug)]
enum Tear {
    /// The file ends at the cut.
    Truncated,
    /// The file keeps its length; everything from the cut on reads as zeros (a size update or
    /// preallocation that reached the disk before the data did).
    Zeroed,
}

/// Tear the active segment at every byte length through its last three batches after a crash;
/// recovery must keep exactly the whole batches before the tear and report what it cut.
/// `scanned`: how many segments recovery is expected to scan.
fn torn_tail_every_length(durability: Durability, tears: &[Tear], scanned: usize, seed: u64) {
    let src = tempfile::tempdir().unwrap();
    let (p, mut model) = build_small(src.path(), durability.clone(), seed);
    let mut rng = Rng::from_state(seed + 1);
    // Small batches at the end keep the number of lengths (opens) modest.
    append_random(&p, &mut model, &mut rng, 3, 40);
    let log_name = active_log(&p).file_name().unwrap().to_owned();
    let active_base = p.segment_base_offsets().last().unwrap().0;
    let segments = p.segment_count();
    p.simulate_crash();

    let src_log = src.path().join(&log_name);
    let layout = batch_layout(&src_log);
    assert_eq!(layout.len(), 6);
    assert_eq!(layout[0].base_offset, active_base);
    assert_eq!(layout.last().unwrap().next_offset, model.end());
    let from = layout[layout.len() - 3].start;
    let data_end = layout.last().unwrap().end;
    // Past the data there may be preallocated zeros: cut a few lengths in there too.
    let src_bytes = fs::read(&src_log).unwrap();
    let src_len = src_bytes.len() as u64;
    let mut lengths: Vec<u64> = (from..=data_end).collect();
    lengths.extend(
        [data_end + 1, data_end + 61, src_len]
            .into_iter()
            .filter(|&l| l > data_end && l <= src_len),
    );
    lengths.dedup();
    for len in lengths {
        for &tear in tears {
            let what = format!(
                "{durability:?}, {tear:?} at {len} (data ends at {data_end}, file at {src_len})"
            );
            let dir = tempfile::tempdir().unwrap();
            copy_dir(src.path(), dir.path());
            let log = dir.path().join(&log_name);
            let old_len = match tear {
                Tear::Truncated => {
                    set_len(&log, len);
                    len
                }
                Tear::Zeroed => {
                    let mut bytes = fs::read(&log).unwrap();
                    bytes[len as usize..].fill(0);
                    fs::write(&log, &bytes).unwrap();
                    src_len
                }
            };

            let p = Partition::open(dir.path(), config(durability.clone()))
                .unwrap_or_else(|e| panic!("{what}: open: {e}"));
            // The batches whose bytes are all still there survive, nothing else. (Zeroing can
            // leave a batch intact when its last bytes were zeros already.)
            let intact = |b: &&Placed| {
                b.end <= len
                    || matches!(tear, Tear::Zeroed)
                        && !has_data(&src_bytes[len.max(b.start) as usize..b.end as usize])
            };
            let kept = layout.iter().take_while(intact).last().unwrap();
            let (boundary, end) = (kept.end, kept.next_offset);
            // Bytes of a torn batch are cut; zeros alone are never-written space, not damage.
            let torn = has_data(&src_bytes[boundary.min(len) as usize..len as usize]);
            let report = p.recovery_report();
            assert!(!report.clean_shutdown, "{what}");
            assert_eq!(report.segments_scanned, scanned, "{what}");
            let cut = if torn { old_len - boundary } else { 0 };
            assert_eq!(report.truncated_bytes, cut, "{what}");
            assert_eq!(report.log_end_offset, Offset(end), "{what}");
            assert_eq!(report.segments_removed, 0, "{what}");
            let damage = torn.then(|| (log.clone(), boundary));
            assert_eq!(report.damage_at, damage, "{what}");
            assert_eq!(file_len(&log), boundary, "{what}");
            assert_eq!(p.segment_count(), segments, "{what}");
            assert_eq!(
                p.segment_base_offsets().last(),
                Some(&Offset(active_base)),
                "{what}"
            );

            let mut m = Model {
                records: model.records[..end as usize].to_vec(),
            };
            assert_log_matches(&p, &m, end);
            assert_append_works(&p, &mut m, len);
            assert_log_matches(&p, &m, m.end());
            p.simulate_crash();
        }
    }
}

#[test]
fn torn_tail_every_length_no_sync() {
    // No recovery point was ever written: recovery scans every segment.
    torn_tail_every_length(Durability::NoSync, &[Tear::Truncated], 3, 11);
}

#[test]
fn torn_tail_every_length_sync_each_append() {
    // The recovery point is the active segment's base: only the active segment is scanned.
    // The active file is preallocated with zeros, so a tear also shows as zeros past the cut.
    torn_tail_every_length(
        Durability::SyncEachAppend,
        &[Tear::Truncated, Tear::Zeroed],
        1,
        12,
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Data lost below the recovery point.

#[test]
fn truncation_after_a_clean_close_is_an_error_unless_truncate_corrupt() {
    for old_timestamps in [false, true] {
        truncation_after_a_clean_close(old_timestamps);
    }
}

/// `old_timestamps`: the last batches carry timestamps older than the segment's newest, so
/// the time index's closing entry does not mark where the log ended.
fn truncation_after_a_clean_close(old_timestamps: bool) {
    let src = tempfile::tempdir().unwrap();
    let (p, mut model) = build(src.path(), Durability::NoSync, 21);
    let log = active_log(&p);
    drop(p);
    // Tiny batches at the end, several per index interval, until the last one starts after the
    // last index entry: then nothing but the recovery point says it existed.
    let mut rng = Rng::from_state(22);
    let mut rounds = 0;
    let layout = loop {
        rounds += 1;
        assert!(rounds < 20, "the last batch always got an index entry");
        let p = Partition::open(src.path(), config(Durability::NoSync)).unwrap();
        for _ in 0..3 {
            let mut batch = gen_batch(&mut rng, model.end(), 10);
            if old_timestamps {
                batch
                    .iter_mut()
                    .for_each(|r| r.timestamp_ms = TS_BASE - 1000);
            }
            append(&p, &mut model, batch);
        }
        p.close().unwrap();
        drop(p);
        let layout = batch_layout(&log);
        let index = fs::read(log.with_extension("index")).unwrap();
        // A sealed index is trimmed to its entries (Kafka's: relative offset and position,
        // big-endian i32 each): the last entry's position ends the file.
        let last_entry = index
            .len()
            .checked_sub(4)
            .map_or(0, |at| u32::from_be_bytes(index[at..].try_into().unwrap()));
        if u64::from(last_entry) < layout.last().unwrap().start {
            break layout;
        }
    };
    let log_name = log.file_name().unwrap().to_owned();

    // Cut inside the last batch, and at the start of each of the last few (whole batches gone).
    let last = layout.last().unwrap();
    // A cut at `start + 1` leaves only a zero byte of the torn batch (the high byte of a
    // big-endian base offset), which recovery cuts as a preallocated tail without counting it
    // as truncated; at `start + 17` the magic byte (2) remains.
    let mut cuts = vec![
        last.end - 1,
        last.start + 30,
        last.start + 17,
        last.start + 1,
    ];
    let original = std::fs::read(src.path().join(log.file_name().unwrap())).unwrap();
    cuts.extend(layout.iter().rev().take(6).map(|b| b.start));
    for cut in cuts {
        let kept = layout.iter().take_while(|b| b.end <= cut).last().unwrap();
        let (boundary, end) = (kept.end, kept.next_offset);
        let dir = tempfile::tempdir().unwrap();
        copy_dir(src.path(), dir.path());
        let log = dir.path().join(&log_name);
        set_len(&log, cut);
        for attempt in 0..2 {
            // The second attempt runs without the clean-shutdown marker the first one removed.
            match Partition::open(dir.path(), config(Durability::NoSync)) {
                Err(Error::CorruptBelowRecoveryPoint {
                    path,
                    offset,
                    recovery_point,
                }) => {
                    assert_eq!(path, log, "cut at {cut}");
                    assert_eq!(offset, Offset(end), "cut at {cut}");
                    assert_eq!(recovery_point, Offset(model.end()), "cut at {cut}");
                }
                other => panic!(
                    "old timestamps {old_timestamps}, cut at {cut} (batch boundary {boundary}), \
                     attempt {attempt}: expected CorruptBelowRecoveryPoint, got {other:?}"
                ),
            }
        }
        let p = Partition::open(
            dir.path(),
            config(Durability::NoSync).with_truncate_corrupt(true),
        )
        .unwrap_or_else(|e| panic!("truncate_corrupt open after a cut at {cut}: {e}"));
        let report = p.recovery_report();
        let torn = &original[boundary as usize..cut as usize];
        let counted = if torn.iter().all(|&b| b == 0) {
            0
        } else {
            cut - boundary
        };
        assert_eq!(report.truncated_bytes, counted, "cut at {cut}");
        assert_eq!(report.log_end_offset, Offset(end));
        assert_eq!(file_len(&log), boundary);
        let mut m = Model {
            records: model.records[..end as usize].to_vec(),
        };
        assert_log_matches(&p, &m, end);
        assert_append_works(&p, &mut m, cut);
        drop(p);
        // The truncation is final: a plain open afterwards is clean and agrees.
        let p = Partition::open(dir.path(), config(Durability::NoSync)).unwrap();
        assert!(p.recovery_report().clean_shutdown);
        assert_log_matches(&p, &m, m.end());
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Random byte flips.

#[derive(Clone, Copy, Debug, PartialEq)]
enum Target {
    SealedLog,
    ActiveLog,
    Index,
    TimeIndex,
}

/// Read everything from the log start up to the high watermark, offset by offset through any
/// damage. Every record returned must be the one appended at its offset, and a read must start
/// at the offset asked for; damage may only show as a typed `Err`. Returns the errors seen.
fn reads_are_right_or_err(p: &Partition, model: &Model, what: &str) -> usize {
    let hw = p.high_watermark().0;
    assert!(
        hw <= model.end(),
        "{what}: high watermark {hw} past what was appended"
    );
    let mut errors = 0;
    let mut next = p.log_start_offset().0;
    while next < hw {
        match p.read(Offset(next), 8 << 10) {
            Ok(read) => {
                assert!(!read.is_empty(), "{what}: empty read at {next} below {hw}");
                let mut expect = next;
                let mut failed = false;
                for r in read.records() {
                    match r {
                        Ok(r) => {
                            assert_eq!(
                                r.offset,
                                Offset(expect),
                                "{what}: read at {next} returned a record at the wrong offset"
                            );
                            assert_record(&r, &model.records[expect as usize], expect);
                            expect += 1;
                        }
                        Err(e) => {
                            assert!(matches!(e, Error::Corrupt { .. }), "{what}: {e:?}");
                            failed = true;
                            break;
                        }
                    }
                }
                if failed {
                    errors += 1;
                    next = expect + 1;
                } else {
                    assert!(expect > next, "{what}: read at {next} returned no record");
                    next = expect;
                }
            }
            Err(e) => {
                assert!(
                    matches!(e, Error::Corrupt { .. }),
                    "{what}: read at {next}: {e:?}"
                );
                errors += 1;
                next += 1;
            }
        }
    }
    errors
}

#[test]
fn flipped_bytes_never_yield_a_wrong_record() {
    // Three starting states: a clean close (nothing is scanned at open), a crash with no
    // recovery point (everything is scanned), a crash with the recovery point at the active
    // segment's base (only the active segment is scanned).
    let mut sources = Vec::new();
    for (i, (durability, crash)) in [
        (Durability::NoSync, false),
        (Durability::NoSync, true),
        (Durability::SyncEachAppend, true),
    ]
    .into_iter()
    .enumerate()
    {
        let dir = tempfile::tempdir().unwrap();
        let (p, model) = build(dir.path(), durability.clone(), 31 + i as u64);
        let bases = p.segment_base_offsets();
        if crash {
            p.simulate_crash();
        } else {
            p.close().unwrap();
        }
        sources.push((dir, durability, crash, model, bases));
    }

    let mut rng = Rng::from_state(33);
    let targets = [
        Target::SealedLog,
        Target::ActiveLog,
        Target::Index,
        Target::TimeIndex,
    ];
    let mut errors = 0;
    for iteration in 0..240 {
        let (src, durability, crash, model, bases) = &sources[iteration % sources.len()];
        let target = targets[rng.below(4) as usize];
        let base = match target {
            Target::SealedLog => bases[rng.below(bases.len() as u64 - 1) as usize],
            Target::ActiveLog => *bases.last().unwrap(),
            Target::Index | Target::TimeIndex => bases[rng.below(bases.len() as u64) as usize],
        };
        let ext = match target {
            Target::SealedLog | Target::ActiveLog => "log",
            Target::Index => "index",
            Target::TimeIndex => "timeindex",
        };
        let dir = tempfile::tempdir().unwrap();
        copy_dir(src.path(), dir.path());
        let path = segment_path(dir.path(), base, ext);
        // Flip where the data is: not in a preallocated zero tail (of a log or an index).
        let bytes = fs::read(&path).unwrap();
        let len = bytes
            .iter()
            .rposition(|&b| b != 0)
            .map_or(0, |i| i as u64 + 1);
        if len == 0 {
            continue;
        }
        let mut flips = Vec::new();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(len);
            let mask = 1 + rng.below(255) as u8;
            flip_byte(&path, at, mask);
            flips.push((at, mask));
        }
        let what = format!("iteration {iteration}: {target:?} {ext} of segment {base}, crash {crash}, flips {flips:?}");

        let p = match Partition::open(dir.path(), config(durability.clone())) {
            Ok(p) => p,
            Err(e) => {
                // Only damage to data that a clean close vouched for may fail the open.
                assert!(
                    !*crash && matches!(target, Target::SealedLog | Target::ActiveLog),
                    "{what}: open failed: {e:?}"
                );
                assert!(
                    matches!(
                        e,
                        Error::CorruptBelowRecoveryPoint { .. } | Error::Corrupt { .. }
                    ),
                    "{what}: {e:?}"
                );
                errors += 1;
                continue;
            }
        };
        match target {
            Target::Index | Target::TimeIndex => {
                // Indexes are caches: damage to them must cost nothing.
                assert_eq!(p.log_end_offset(), Offset(model.end()), "{what}");
                assert_eq!(reads_are_right_or_err(&p, model, &what), 0, "{what}");
                // Sealed indexes carry a checksum, so damage is detected and they are rebuilt.
                assert_timestamps_match(&p, model, &mut Rng::from_state(iteration as u64), 20);
            }
            Target::SealedLog | Target::ActiveLog => {
                errors += reads_are_right_or_err(&p, model, &what);
                if let Ok(Some(o)) = p.offset_for_timestamp(TS_BASE + 5000) {
                    assert!(o <= p.log_end_offset(), "{what}");
                }
            }
        }
        p.simulate_crash();
    }
    // The flips did hit something: this test is not vacuous.
    assert!(errors > 0);
}

#[test]
fn flipped_base_offset_outside_the_crc_never_yields_a_wrong_record() {
    // The base offset precedes the CRC'd range (it is assigned after checksumming), so only
    // offset checks can catch damage to it: flip each of its bytes in a batch of a sealed
    // segment and of the active one, after a clean close and after a crash.
    for crash in [false, true] {
        let src = tempfile::tempdir().unwrap();
        let (p, model) = build(src.path(), Durability::SyncEachAppend, 81);
        let bases = p.segment_base_offsets();
        if crash {
            p.simulate_crash();
        } else {
            p.close().unwrap();
        }
        for base in [bases[1], *bases.last().unwrap()] {
            let layout = batch_layout(&segment_path(src.path(), base, "log"));
            for batch in [layout[1], layout[layout.len() / 2]] {
                for at in 0..8 {
                    for mask in [0x01, 0x80, 0x10] {
                        let what = format!(
                            "crash {crash}, segment {base}, batch {batch:?}, byte {at} ^ {mask:#x}"
                        );
                        let dir = tempfile::tempdir().unwrap();
                        copy_dir(src.path(), dir.path());
                        flip_byte(
                            &segment_path(dir.path(), base, "log"),
                            batch.start + at,
                            mask,
                        );
                        match Partition::open(dir.path(), config(Durability::SyncEachAppend)) {
                            Ok(p) => {
                                reads_are_right_or_err(&p, &model, &what);
                                p.simulate_crash();
                            }
                            Err(e) => assert!(
                                !crash && matches!(e, Error::CorruptBelowRecoveryPoint { .. }),
                                "{what}: {e:?}"
                            ),
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn damaged_time_index_entry_is_detected_and_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let (p, model) = build(dir.path(), Durability::NoSync, 91);
    p.close().unwrap();
    drop(p);
    // Lower the first entry's timestamp of the first segment's time index below every record's.
    // The entries still increase, so only checking the entry against the batch it names (whose
    // max timestamp it must be) can tell: without that, a lookup would start past offset 0.
    let path = segment_path(dir.path(), Offset(0), "timeindex");
    let mut bytes = fs::read(&path).unwrap();
    bytes[..8].copy_from_slice(&(TS_BASE - 1_000_000).to_be_bytes());
    fs::write(&path, bytes).unwrap();
    let p = Partition::open(dir.path(), config(Durability::NoSync)).unwrap();
    assert_log_matches(&p, &model, model.end());
    assert_eq!(
        p.offset_for_timestamp(TS_BASE - 1).unwrap(),
        Some(Offset(0))
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Deleted index files.

#[test]
fn deleted_index_files_are_rebuilt() {
    for crash in [false, true] {
        for durability in [Durability::NoSync, Durability::SyncEachAppend] {
            for (which, exts) in [
                ("index", &["index"][..]),
                ("timeindex", &["timeindex"][..]),
                ("both", &["index", "timeindex"][..]),
            ] {
                for sealed in [true, false] {
                    let what = format!("crash {crash}, {durability:?}, {which}, sealed {sealed}");
                    let dir = tempfile::tempdir().unwrap();
                    let (p, mut model) = build(dir.path(), durability.clone(), 41);
                    let bases = p.segment_base_offsets();
                    if crash {
                        p.simulate_crash();
                    } else {
                        p.close().unwrap();
                        drop(p);
                    }
                    let base = if sealed {
                        bases[1]
                    } else {
                        *bases.last().unwrap()
                    };
                    for ext in exts {
                        fs::remove_file(segment_path(dir.path(), base, ext)).unwrap();
                    }

                    let p = Partition::open(dir.path(), config(durability.clone()))
                        .unwrap_or_else(|e| panic!("{what}: {e}"));
                    assert_eq!(p.segment_base_offsets(), bases, "{what}");
                    assert_log_matches(&p, &model, model.end());
                    assert_timestamps_match(&p, &model, &mut Rng::from_state(42), 40);
                    for ext in ["index", "timeindex"] {
                        for b in &bases {
                            assert!(
                                segment_path(dir.path(), *b, ext).exists(),
                                "{what}: {b}.{ext}"
                            );
                        }
                    }
                    assert_append_works(&p, &mut model, 43);
                    drop(p);
                    // What was rebuilt serves a clean reopen as well.
                    let p = Partition::open(dir.path(), config(durability.clone())).unwrap();
                    assert!(p.recovery_report().clean_shutdown, "{what}");
                    assert_log_matches(&p, &model, model.end());
                    assert_timestamps_match(&p, &model, &mut Rng::from_state(44), 40);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 5. A crash right after a roll.

#[test]
fn crash_right_after_a_roll_recovers_to_the_previous_segment_end() {
    for durability in [Durability::NoSync, Durability::SyncEachAppend] {
        // An empty newest segment.
        let dir = tempfile::tempdir().unwrap();
        let (p, mut model) = build(dir.path(), durability.clone(), 51);
        p.roll().unwrap();
        let bases = p.segment_base_offsets();
        assert_eq!(bases.last(), Some(&Offset(model.end())));
        p.simulate_crash();
        let p = Partition::open(dir.path(), config(durability.clone())).unwrap();
        assert_eq!(p.recovery_report().log_end_offset, Offset(model.end()));
        assert_eq!(p.recovery_report().truncated_bytes, 0);
        assert_eq!(p.recovery_report().damage_at, None);
        assert_eq!(p.segment_base_offsets(), bases);
        assert_log_matches(&p, &model, model.end());
        assert_append_works(&p, &mut model, 52);
        assert_log_matches(&p, &model, model.end());
        drop(p);

        // A torn first batch in the newest segment, cut at every length.
        let src = tempfile::tempdir().unwrap();
        let (p, model) = build_small(src.path(), durability.clone(), 53);
        p.roll().unwrap();
        let prev_end = model.end();
        let prev_bases = p.segment_base_offsets();
        let batch = gen_batch(&mut Rng::from_state(54), prev_end, 100);
        p.append(&batch).unwrap();
        let new_log = active_log(&p);
        let new_name = new_log.file_name().unwrap().to_owned();
        p.simulate_crash();
        let new_bytes = fs::read(&new_log).unwrap();
        let full = batch_layout(&new_log)[0].end;
        // Every length through the header and the first record, then a stride.
        let lengths = (0..full).filter(|&l| l < 100 || l % 7 == 0 || l + 3 >= full);
        for len in lengths {
            let what = format!("{durability:?}, first batch cut at {len} of {full}");
            let dir = tempfile::tempdir().unwrap();
            copy_dir(src.path(), dir.path());
            let log = dir.path().join(&new_name);
            set_len(&log, len);
            let p = Partition::open(dir.path(), config(durability.clone()))
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            let report = p.recovery_report();
            assert_eq!(report.log_end_offset, Offset(prev_end), "{what}");
            let torn = has_data(&new_bytes[..len as usize]);
            assert_eq!(report.truncated_bytes, if torn { len } else { 0 }, "{what}");
            if torn {
                // Nothing valid was left in the newest segment: it is gone.
                assert_eq!(report.segments_removed, 1, "{what}");
                assert!(!log.exists(), "{what}");
                assert_eq!(
                    p.segment_base_offsets(),
                    prev_bases[..prev_bases.len() - 1],
                    "{what}"
                );
            }
            let mut m = Model {
                records: model.records.clone(),
            };
            assert_log_matches(&p, &m, prev_end);
            assert_append_works(&p, &mut m, len);
            assert_log_matches(&p, &m, m.end());
            drop(p);
            let p = Partition::open(dir.path(), config(durability.clone())).unwrap();
            assert!(p.recovery_report().clean_shutdown, "{what}");
            assert_log_matches(&p, &m, m.end());
            p.simulate_crash();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 6. Leftovers of interrupted writes.

#[test]
fn leftover_temp_and_orphan_index_files_are_removed_at_open() {
    for crash in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let (p, model) = build(dir.path(), Durability::NoSync, 61);
        p.delete_records_before(Offset(2)).unwrap();
        let bases = p.segment_base_offsets();
        if crash {
            p.simulate_crash();
        } else {
            drop(p);
        }
        let orphan_base = Offset(bases[1].0 + 1);
        let leftovers = [
            dir.path().join("recovery-point.tmp"),
            dir.path().join("log-start-offset.tmp"),
            segment_path(dir.path(), Offset(999_999), "index"),
            segment_path(dir.path(), Offset(999_999), "timeindex"),
            segment_path(dir.path(), orphan_base, "index"),
            segment_path(dir.path(), orphan_base, "timeindex"),
        ];
        for f in &leftovers {
            fs::write(f, b"leftover bytes of an interrupted write").unwrap();
        }
        let p = Partition::open(dir.path(), config(Durability::NoSync)).unwrap();
        for f in &leftovers {
            assert!(!f.exists(), "crash {crash}: {f:?} survived open");
        }
        assert_eq!(p.segment_base_offsets(), bases);
        assert_eq!(p.log_start_offset(), Offset(2));
        assert_log_matches(&p, &model, model.end());
    }
}

// ---------------------------------------------------------------------------------------------
// 7. Damaged checkpoints.

/// The log start has two copies (`log-start-offset.checkpoint` and
/// `seglog.log-start.checkpoint`): one damaged copy is outvoted by the other; a damaged copy
/// with no other is a typed error, never a log start of 0 that would bring back deleted
/// records.
#[test]
fn damaged_log_start_checkpoint_is_a_typed_error() {
    let src = tempfile::tempdir().unwrap();
    let (p, model) = build(src.path(), Durability::NoSync, 71);
    p.delete_records_before(Offset(3)).unwrap();
    p.close().unwrap();
    drop(p);
    let name = "log-start-offset.checkpoint";
    let second = "seglog.log-start.checkpoint";
    let original = fs::read(src.path().join(name)).unwrap();

    let mut damaged: Vec<Vec<u8>> = Vec::new();
    for at in 0..original.len() {
        for mask in [0x01, 0x80, 0xff] {
            let mut b = original.clone();
            b[at] ^= mask;
            damaged.push(b);
        }
    }
    damaged.push(Vec::new());
    damaged.push(original[..8].to_vec());
    damaged.push([&original[..], &[0]].concat());
    for (i, bytes) in damaged.iter().enumerate() {
        for (file, other) in [(name, second), (second, name)] {
            let dir = tempfile::tempdir().unwrap();
            copy_dir(src.path(), dir.path());
            fs::write(dir.path().join(file), bytes).unwrap();
            // The other copy outvotes the damaged one.
            let p = Partition::open(dir.path(), config(Durability::NoSync))
                .unwrap_or_else(|e| panic!("case {i} in {file}: {e}"));
            assert_eq!(p.log_start_offset(), Offset(3), "case {i} in {file}");
            drop(p);
            // Without the other copy, the damage is an error.
            let dir = tempfile::tempdir().unwrap();
            copy_dir(src.path(), dir.path());
            fs::write(dir.path().join(file), bytes).unwrap();
            fs::remove_file(dir.path().join(other)).unwrap();
            match Partition::open(dir.path(), config(Durability::NoSync)) {
                Err(Error::Corrupt { path, reason, .. }) => {
                    assert_eq!(reason, CorruptKind::BadCheckpoint, "case {i}");
                    assert_eq!(path, dir.path().join(file), "case {i}");
                }
                other => panic!(
                    "case {i} ({bytes:?}) in {file} alone: expected a damaged-checkpoint \
                     error, got {other:?}"
                ),
            }
        }
    }

    // The undamaged copy still opens, with its log start.
    let dir = tempfile::tempdir().unwrap();
    copy_dir(src.path(), dir.path());
    let p = Partition::open(dir.path(), config(Durability::NoSync)).unwrap();
    assert_eq!(p.log_start_offset(), Offset(3));
    assert_log_matches(&p, &model, model.end());
}

#[test]
fn damaged_recovery_point_after_a_crash_only_costs_a_full_scan() {
    let dir = tempfile::tempdir().unwrap();
    let (p, mut model) = build(dir.path(), Durability::SyncEachAppend, 72);
    let segments = p.segment_count();
    p.simulate_crash();
    let ckpt = dir.path().join("recovery-point.checkpoint");
    assert!(ckpt.exists(), "a synced roll writes the recovery point");
    flip_byte(&ckpt, 6, 0x40);
    let p = Partition::open(dir.path(), config(Durability::SyncEachAppend)).unwrap();
    assert_eq!(p.recovery_report().segments_scanned, segments);
    assert_log_matches(&p, &model, model.end());
    assert_append_works(&p, &mut model, 73);
}

#[test]
fn a_sealed_segment_cut_at_a_batch_boundary_is_an_error_not_a_skip() {
    // A sealed segment that lost its last whole batches (below the recovery point, so open does
    // not scan it) must not make reads jump silently to the next segment's base offset.
    let dir = tempfile::tempdir().unwrap();
    let cfg = PartitionConfig::default()
        .with_durability(Durability::NoSync)
        .with_segment_bytes(4096)
        .with_index_interval_bytes(128);
    let p = Partition::open(dir.path(), cfg.clone()).unwrap();
    for i in 0..200u32 {
        p.append(&[Record::new(format!("record {i}")).with_timestamp(TS_BASE)])
            .unwrap();
    }
    let bases = p.segment_base_offsets();
    assert!(bases.len() >= 3);
    p.close().unwrap();
    drop(p);
    let log = segment_path(dir.path(), bases[0], "log");
    let layout = batch_layout(&log);
    let cut = layout[layout.len() - 2];
    set_len(&log, cut.start);
    let p = Partition::open(dir.path(), cfg).unwrap();
    let missing = Offset(cut.next_offset - 1);
    match p.read(missing, 1024) {
        Err(Error::Corrupt { .. }) => {}
        other => panic!("read of a lost offset: {other:?}"),
    }
    // Offsets before the cut still read correctly.
    let r = p.read(Offset(0), 1).unwrap();
    assert_eq!(r.records().next().unwrap().unwrap().offset, Offset(0));
}

/// Issue 9, bug 1: an empty segment file whose base lies above the recovered log end (left by a
/// crash between creating a segment and writing to it, or by a stray file) is past the tail.
/// Recovery must remove it; keeping it as the active segment made the next appends land where
/// reads never look, and acknowledged records were lost.
#[test]
fn an_empty_segment_above_the_log_end_is_removed_and_appends_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let config = || {
        PartitionConfig::default()
            .with_segment_bytes(seglog::SEGMENT_BYTES_MIN)
            .with_segment_ms(None)
            .with_retention_ms(None)
            .with_durability(Durability::SyncEachAppend)
    };
    let value = |o: u64| format!("value-{o}");
    let p = Partition::open(dir.path(), config()).unwrap();
    for o in 0..3 {
        let info = p.append(&[Record::new(value(o))]).unwrap();
        assert_eq!(info.base_offset, Offset(o));
    }
    p.simulate_crash();
    fs::File::create(segment_path(dir.path(), Offset(5), "log")).unwrap();

    let p = Partition::open(dir.path(), config()).unwrap();
    assert_eq!(p.log_end_offset(), Offset(3));
    let removed = p.recovery_report().segments_removed;
    for o in 3..6 {
        let info = p.append(&[Record::new(value(o))]).unwrap();
        assert_eq!(info.base_offset, Offset(o), "acknowledged at {o}");
    }
    let read_back = |p: &Partition| {
        for o in 0..6 {
            let read = p.read(Offset(o), 1 << 10).unwrap();
            let first = read
                .records()
                .next()
                .unwrap_or_else(|| panic!("nothing at {o}"));
            let r = first.unwrap();
            assert_eq!(r.offset, Offset(o));
            assert_eq!(
                r.value.as_deref(),
                Some(value(o).as_bytes()),
                "value at {o}"
            );
        }
        assert_eq!(p.log_end_offset(), Offset(6));
    };
    read_back(&p);
    p.close().unwrap();
    drop(p);
    let p = Partition::open(dir.path(), config()).unwrap();
    read_back(&p);
    assert_eq!(
        removed, 1,
        "the empty segment past the tail is reported removed"
    );
}
