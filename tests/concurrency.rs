//! Concurrent use of one `Partition` on real files, with segments small enough to roll many
//! times during each test: several appender threads and several reader threads (polling and
//! tail-following with `wait_for`) under NoSync, SyncEachAppend (group commit) and a sync
//! threshold. Readers must only ever see a dense prefix of whole, intact batches whose
//! records match what some appender wrote, in each appender's order; at the end every record
//! is present exactly once. A second scenario runs retention (`delete_records_before`,
//! size retention) while readers read: they get correct data or `OffsetOutOfRange`, nothing
//! else.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use seglog::{
    AppendInfo, Durability, Error, Offset, Partition, PartitionConfig, ReadBatches, Record,
};

const WRITERS: usize = 3;
const BATCHES_PER_WRITER: u64 = 120;
const POLLING_READERS: usize = 3;

fn config(durability: Durability) -> PartitionConfig {
    PartitionConfig::default()
        .with_durability(durability)
        .with_segment_bytes(2048)
        .with_index_interval_bytes(200)
        .with_index_bytes_max(1024)
        .with_segment_ms(None)
        .with_retention_ms(None)
}

/// A small deterministic pseudo-random sequence (xorshift64*).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

/// Records in batch `batch` of writer `writer`: 1 to 4.
fn batch_len(writer: usize, batch: u64) -> u64 {
    1 + (writer as u64 * 7 + batch * 3) % 4
}

/// Total records writer `writer` appends.
fn writer_total(writer: usize) -> u64 {
    (0..BATCHES_PER_WRITER).map(|b| batch_len(writer, b)).sum()
}

fn filler(writer: usize, seq: u64) -> String {
    let c = char::from(b'a' + ((writer as u64 * 5 + seq) % 26) as u8);
    c.to_string()
        .repeat(((seq * 13 + writer as u64) % 60) as usize)
}

/// The record with sequence number `seq` of writer `writer`: the value names both and
/// carries a filler derived from them, so any corruption or mix-up is visible.
fn writer_record(writer: usize, seq: u64) -> Record {
    Record {
        key: Some(Bytes::from(format!("w{writer}"))),
        value: Some(Bytes::from(format!(
            "{writer}:{seq}:{}",
            filler(writer, seq)
        ))),
        headers: Vec::new(),
        timestamp_ms: seq as i64,
    }
}

/// Parse and fully check a record written by `writer_record`; returns (writer, seq).
fn parse_writer_record(r: &seglog::LogRecord) -> (usize, u64) {
    let value = std::str::from_utf8(r.value.as_deref().expect("no tombstones written")).unwrap();
    let mut parts = value.splitn(3, ':');
    let writer: usize = parts.next().unwrap().parse().unwrap();
    let seq: u64 = parts.next().unwrap().parse().unwrap();
    assert!(writer < WRITERS, "unknown writer in {value:?}");
    assert_eq!(
        parts.next().unwrap(),
        filler(writer, seq),
        "filler of {value:?}"
    );
    assert_eq!(r.key.as_deref(), Some(format!("w{writer}").as_bytes()));
    assert_eq!(r.timestamp_ms, seq as i64);
    assert!(r.headers.is_empty());
    (writer, seq)
}

/// What one reader has seen so far: where it continues, and each writer's last sequence.
struct Seen {
    next: Offset,
    last_seq: [Option<u64>; WRITERS],
    records: u64,
}

impl Seen {
    fn new(start: Offset) -> Self {
        Seen {
            next: start,
            last_seq: [None; WRITERS],
            records: 0,
        }
    }

    /// Check one read made at `self.next` and advance. `from_zero`: the reader started at
    /// offset 0, so each writer's first record must be its sequence 0.
    fn absorb(&mut self, read: &ReadBatches, from_zero: bool) {
        for batch in read.batches() {
            assert_eq!(
                batch.base_offset(),
                self.next,
                "batches must continue where the last ended"
            );
            let mut batch_writer = None;
            let mut offset = batch.base_offset();
            let mut count = 0;
            for r in batch.records() {
                let r = r.unwrap();
                assert_eq!(r.offset, offset, "offsets inside a batch are dense");
                let (w, seq) = parse_writer_record(&r);
                assert_eq!(
                    *batch_writer.get_or_insert(w),
                    w,
                    "a batch holds one append"
                );
                let want = match self.last_seq[w] {
                    Some(s) => Some(s + 1),
                    None if from_zero => Some(0),
                    None => None,
                };
                if let Some(want) = want {
                    assert_eq!(
                        seq, want,
                        "writer {w}'s records out of order at offset {offset}"
                    );
                }
                self.last_seq[w] = Some(seq);
                offset = offset.next();
                count += 1;
            }
            assert_eq!(count, batch.record_count());
            assert_eq!(offset, batch.last_offset().next());
            self.next = offset;
            self.records += u64::from(count);
        }
        assert_eq!(read.next_offset(), self.next);
    }
}

/// Appenders, polling readers and a `wait_for` tail follower, all at once.
fn appenders_and_readers(durability: Durability) {
    let dir = tempfile::tempdir().unwrap();
    let p = Arc::new(Partition::open(dir.path(), config(durability.clone())).unwrap());
    let total: u64 = (0..WRITERS).map(writer_total).sum();
    let done = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(WRITERS + POLLING_READERS + 1));

    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (p, start) = (p.clone(), start.clone());
            thread::spawn(move || {
                start.wait();
                let mut seq = 0;
                let mut infos = Vec::new();
                for b in 0..BATCHES_PER_WRITER {
                    let n = batch_len(w, b);
                    let batch: Vec<Record> = (seq..seq + n).map(|s| writer_record(w, s)).collect();
                    let info = p.append(&batch).unwrap();
                    assert_eq!(info.last_offset.0 - info.base_offset.0 + 1, n);
                    // Acknowledged means visible to this process.
                    assert!(p.high_watermark() > info.last_offset);
                    infos.push((info, seq));
                    seq += n;
                }
                infos
            })
        })
        .collect();

    let readers: Vec<_> = (0..POLLING_READERS)
        .map(|i| {
            let (p, start, done) = (p.clone(), start.clone(), done.clone());
            thread::spawn(move || {
                start.wait();
                // Reader 0 starts at the beginning, the others wherever the log is by then.
                let from_zero = i == 0;
                let first = if from_zero {
                    Offset(0)
                } else {
                    p.high_watermark()
                };
                let mut seen = Seen::new(first);
                let max_bytes = [1, 700, 64 << 10][i % 3];
                let mut reads = 0u64;
                loop {
                    let finished = done.load(Ordering::Acquire);
                    let read = p.read(seen.next, max_bytes).unwrap();
                    reads += 1;
                    if read.is_empty() {
                        if finished {
                            break;
                        }
                        thread::sleep(Duration::from_micros(200));
                        continue;
                    }
                    seen.absorb(&read, from_zero);
                }
                assert_eq!(seen.next, Offset(total), "reader {i} stopped early");
                assert_eq!(seen.records, total - first.0);
                if from_zero {
                    for w in 0..WRITERS {
                        assert_eq!(seen.last_seq[w], Some(writer_total(w) - 1));
                    }
                }
                reads
            })
        })
        .collect();

    let follower = {
        let (p, done) = (p.clone(), done.clone());
        thread::spawn(move || {
            let mut seen = Seen::new(Offset(0));
            loop {
                let finished = done.load(Ordering::Acquire);
                if !p.wait_for(seen.next, Duration::from_millis(50)) {
                    if finished {
                        // Every append had returned before `done`: nothing left to wait for.
                        break;
                    }
                    continue;
                }
                let read = p.read(seen.next, 1024).unwrap();
                assert!(
                    !read.is_empty(),
                    "wait_for said offset {} is readable",
                    seen.next
                );
                seen.absorb(&read, true);
            }
            assert_eq!(seen.next, Offset(total), "the follower missed records");
            seen.records
        })
    };

    start.wait();
    let mut infos: Vec<(AppendInfo, usize, u64)> = Vec::new();
    for (w, h) in writers.into_iter().enumerate() {
        infos.extend(
            h.join()
                .unwrap()
                .into_iter()
                .map(|(info, seq)| (info, w, seq)),
        );
    }
    done.store(true, Ordering::Release);
    for h in readers {
        assert!(h.join().unwrap() > 0);
    }
    assert_eq!(follower.join().unwrap(), total);

    // The acknowledged offset ranges tile [0, total) exactly: every record once.
    infos.sort_by_key(|(info, _, _)| info.base_offset);
    let mut next = Offset(0);
    for (info, _, _) in &infos {
        assert_eq!(info.base_offset, next);
        next = info.last_offset.next();
    }
    assert_eq!(next, Offset(total));
    assert_eq!(p.log_end_offset(), Offset(total));
    assert_eq!(p.high_watermark(), Offset(total));
    assert!(
        p.segment_count() > 10,
        "segments must have rolled during the test"
    );
    // Each acknowledged range holds exactly what its writer appended.
    for (info, w, seq) in &infos {
        let read = p.read(info.base_offset, 1).unwrap();
        let batch = &read.batches()[0];
        assert_eq!(
            (batch.base_offset(), batch.last_offset()),
            (info.base_offset, info.last_offset)
        );
        for (k, r) in batch.records().enumerate() {
            assert_eq!(parse_writer_record(&r.unwrap()), (*w, seq + k as u64));
        }
    }

    // And the same after reopening, cleanly and after a crash.
    let p = Arc::into_inner(p).expect("all threads are done");
    p.close().unwrap();
    drop(p);
    for crash in [true, false] {
        let p = Partition::open(dir.path(), config(durability.clone())).unwrap();
        let mut seen = Seen::new(Offset(0));
        loop {
            let read = p.read(seen.next, 16 << 10).unwrap();
            if read.is_empty() {
                break;
            }
            seen.absorb(&read, true);
        }
        assert_eq!(seen.records, total);
        if crash {
            p.simulate_crash();
        }
    }
}

#[test]
fn appenders_and_readers_without_fsync() {
    appenders_and_readers(Durability::NoSync);
}

#[test]
fn appenders_and_readers_with_group_commit() {
    appenders_and_readers(Durability::SyncEachAppend);
}

#[test]
fn appenders_and_readers_with_a_sync_threshold() {
    appenders_and_readers(Durability::SyncThreshold {
        records: Some(7),
        bytes: Some(1500),
        interval: None,
    });
}

/// The value of the record at `offset` in the retention scenario (one appender, so offsets
/// are known in advance).
fn value_at(offset: u64) -> String {
    format!("{offset}:{}", "r".repeat((offset * 7 % 45) as usize))
}

fn record_at(offset: u64) -> Record {
    Record {
        key: Some(Bytes::from(format!("k{}", offset % 10))),
        value: Some(Bytes::from(value_at(offset))),
        headers: Vec::new(),
        timestamp_ms: offset as i64,
    }
}

/// Checks a read made at `at`: the first batch holds `at`, offsets are dense from there, and
/// every record is exactly the one appended at its offset. Returns the next offset.
fn check_retention_read(read: &ReadBatches, at: Offset) -> Offset {
    let first = &read.batches()[0];
    assert!(
        first.base_offset() <= at && at <= first.last_offset(),
        "read({at}) got {first:?}"
    );
    let mut next = first.base_offset();
    for batch in read.batches() {
        assert_eq!(batch.base_offset(), next);
        for r in batch.records() {
            let r = r.unwrap();
            assert_eq!(r.offset, next);
            assert_eq!(
                r.value.as_deref(),
                Some(value_at(next.0).as_bytes()),
                "at {next}"
            );
            assert_eq!(
                r.key.as_deref(),
                Some(format!("k{}", next.0 % 10).as_bytes())
            );
            assert_eq!(r.timestamp_ms, next.0 as i64);
            next = next.next();
        }
    }
    let skipped = read.records().next().unwrap().unwrap();
    assert_eq!(
        skipped.offset, at,
        "records() starts at the requested offset"
    );
    assert_eq!(read.next_offset(), next);
    next
}

/// Appends single-writer batches of 1 to 3 records up to offset `end`, pausing now and then
/// when `pause` is set so that other threads get to run in between.
fn append_until(p: &Partition, end: u64, rng: &mut Rng, pause: bool) {
    while p.log_end_offset().0 < end {
        if pause && rng.below(10) == 0 {
            thread::sleep(Duration::from_micros(200));
        }
        let base = p.log_end_offset().0;
        let n = 1 + rng.below(3);
        let batch: Vec<Record> = (base..base + n).map(record_at).collect();
        let info = p.append(&batch).unwrap();
        assert_eq!(info.base_offset, Offset(base), "only this thread appends");
    }
}

/// One appender, a retention thread and readers, on a partition reopened so that its first
/// segments are not loaded yet when readers and retention start on them.
fn retention_with_readers(durability: Durability) {
    let dir = tempfile::tempdir().unwrap();
    let config = config(durability)
        .with_segment_bytes(1024)
        .with_retention_bytes(Some(6000));
    let mut rng = Rng::new(1);
    {
        let p = Partition::open(dir.path(), config.clone()).unwrap();
        append_until(&p, 300, &mut rng, false);
    }
    let p = Arc::new(Partition::open(dir.path(), config.clone()).unwrap());
    let end = 1500;
    let done = Arc::new(AtomicBool::new(false));
    let go = Arc::new(Barrier::new(5));

    let appender = {
        let (p, go) = (p.clone(), go.clone());
        thread::spawn(move || {
            go.wait();
            append_until(&p, end, &mut Rng::new(2), true)
        })
    };
    let retainer = {
        let (p, done, go) = (p.clone(), done.clone(), go.clone());
        thread::spawn(move || {
            go.wait();
            let mut rng = Rng::new(3);
            // Rounds in which the oldest segment changed, by either kind of deletion.
            let mut deleting_rounds = 0;
            loop {
                let finished = done.load(Ordering::Acquire);
                let oldest = p.segment_base_offsets()[0];
                let hw = p.high_watermark().0;
                let target = Offset(hw.saturating_sub(30 + rng.below(100)));
                let start = p.delete_records_before(target).unwrap();
                assert!(start >= target);
                if rng.below(2) == 0 {
                    p.apply_retention_at(0).unwrap();
                }
                assert!(p.log_start_offset() <= p.high_watermark());
                if p.segment_base_offsets()[0] > oldest {
                    deleting_rounds += 1;
                }
                if finished {
                    return deleting_rounds;
                }
                thread::sleep(Duration::from_micros(500));
            }
        })
    };
    let readers: Vec<_> = (0..3u64)
        .map(|i| {
            let (p, done, go) = (p.clone(), done.clone(), go.clone());
            thread::spawn(move || {
                go.wait();
                let mut rng = Rng::new(10 + i);
                let mut next = Offset(0);
                let mut good = 0u64;
                loop {
                    let finished = done.load(Ordering::Acquire);
                    if rng.below(8) == 0 {
                        // Jump somewhere, possibly into a segment about to be deleted.
                        let low = p.log_start_offset().0.saturating_sub(20);
                        next = Offset(low + rng.below(p.high_watermark().0 - low + 1));
                    }
                    if i == 2 {
                        check_timestamp_lookup(&p, &mut rng);
                    }
                    match p.read(next, [1, 300, 5000][i as usize]) {
                        Ok(read) if read.is_empty() => {
                            if finished {
                                break;
                            }
                            p.wait_for(next, Duration::from_millis(5));
                        }
                        Ok(read) => {
                            next = check_retention_read(&read, next);
                            good += 1;
                        }
                        Err(Error::OffsetOutOfRange {
                            offset,
                            log_start_offset,
                            high_watermark,
                        }) => {
                            assert_eq!(offset, next);
                            assert!(
                                offset < log_start_offset,
                                "{offset} is below the watermark {high_watermark}"
                            );
                            next = log_start_offset;
                        }
                        Err(e) => panic!("read({next}) during retention: {e:?}"),
                    }
                }
                assert_eq!(next, p.log_end_offset());
                good
            })
        })
        .collect();

    appender.join().unwrap();
    done.store(true, Ordering::Release);
    let deleting_rounds = retainer.join().unwrap();
    for h in readers {
        assert!(h.join().unwrap() > 0);
    }
    assert!(
        deleting_rounds > 0,
        "retention must have deleted segments during the test"
    );

    // Afterwards: every remaining record is right, and the deleted segments' files are gone.
    let start = p.log_start_offset();
    let mut next = start;
    loop {
        let read = p.read(next, 1 << 20).unwrap();
        if read.is_empty() {
            break;
        }
        next = check_retention_read(&read, next);
    }
    assert_eq!(next, p.log_end_offset());
    assert!(next.0 >= end);
    let mut logs: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".log"))
        .collect();
    logs.sort();
    let bases: Vec<String> = p
        .segment_base_offsets()
        .iter()
        .map(|b| format!("{:020}.log", b.0))
        .collect();
    assert_eq!(logs, bases);
    assert!(p.segment_base_offsets()[0] <= start);
}

/// Timestamps equal offsets here, so the answer is known up to how far the log start moved
/// during the call.
fn check_timestamp_lookup(p: &Partition, rng: &mut Rng) {
    let (start_before, hw_before) = (p.log_start_offset().0, p.high_watermark().0);
    if hw_before == 0 {
        return;
    }
    let t = rng.below(hw_before);
    let got = p.offset_for_timestamp(t as i64).unwrap();
    let start_after = p.log_start_offset().0;
    match got {
        Some(o) => {
            assert!(
                o.0 >= t && o.0 >= start_before,
                "offset_for_timestamp({t}) = {o}"
            );
            assert!(o.0 <= t.max(start_after), "offset_for_timestamp({t}) = {o}");
        }
        None => assert!(start_after >= hw_before, "offset_for_timestamp({t}) = None"),
    }
}

#[test]
fn retention_runs_concurrently_with_readers_without_fsync() {
    retention_with_readers(Durability::NoSync);
}

#[test]
fn retention_runs_concurrently_with_readers_with_group_commit() {
    retention_with_readers(Durability::SyncEachAppend);
}

/// Readers chase the log start of a freshly reopened partition (sealed segments not loaded
/// yet) while another thread deletes segment after segment right under them: every read is
/// either correct or `OffsetOutOfRange`. (A smoke test: the window in which a reader could
/// meet a never-loaded segment whose files are already gone is too narrow to hit reliably.)
#[test]
fn readers_chasing_the_log_start_while_segments_are_deleted() {
    let template = tempfile::tempdir().unwrap();
    let config = config(Durability::NoSync).with_segment_bytes(1024);
    {
        let p = Partition::open(template.path(), config.clone()).unwrap();
        append_until(&p, 600, &mut Rng::new(4), false);
    }
    for round in 0..12u64 {
        let dir = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(template.path()).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
        }
        let p = Arc::new(Partition::open(dir.path(), config.clone()).unwrap());
        let bases = p.segment_base_offsets();
        let last = *bases.last().unwrap();
        let go = Arc::new(Barrier::new(3));
        let deleter = {
            let (p, go, bases) = (p.clone(), go.clone(), bases.clone());
            thread::spawn(move || {
                go.wait();
                let mut rng = Rng::new(round);
                for b in &bases[1..] {
                    assert_eq!(p.delete_records_before(*b).unwrap(), *b);
                    for _ in 0..rng.below(3) {
                        thread::yield_now();
                    }
                }
            })
        };
        let readers: Vec<_> = (0..2)
            .map(|i| {
                let (p, go) = (p.clone(), go.clone());
                thread::spawn(move || {
                    go.wait();
                    let mut next = Offset(0);
                    while p.log_start_offset() < last || next < last {
                        next = next.max(p.log_start_offset());
                        match p.read(next, [1, 2000][i]) {
                            Ok(read) if read.is_empty() => break,
                            Ok(read) => next = check_retention_read(&read, next),
                            Err(Error::OffsetOutOfRange {
                                log_start_offset, ..
                            }) => {
                                assert!(next < log_start_offset);
                            }
                            Err(e) => panic!("read({next}) while its segment is deleted: {e:?}"),
                        }
                    }
                })
            })
            .collect();
        deleter.join().unwrap();
        for r in readers {
            r.join().unwrap();
        }
        assert_eq!(p.segment_base_offsets(), vec![last]);
    }
}
