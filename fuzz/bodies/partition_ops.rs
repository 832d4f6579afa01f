//! The body of the `partition_ops` fuzz target: a whole-partition operation model, a plain
//! function that `tests/model.rs` also runs on proptest's inputs (`#[path]` module), so
//! `cargo test` builds and exercises it.
//!
//! The input bytes decode (totally: any bytes are a valid program) into a configuration —
//! durability policy, cleanup policy, codec, tiny segments and indexes, retention limits,
//! compaction settings, a small open-segment budget — and a sequence of operations on a
//! `Partition` living on a `SimFs`: append (keys, values, tombstones, headers, several records
//! per batch, timestamps out of order), read at offsets chosen relative to the log, time
//! lookups, roll, retention at a chosen time, `delete_records_before`, compaction,
//! `truncate_to` (a follower's cut, at any offset, also inside compacted segments), flush,
//! clean close and reopen (optionally with a fault during the open), a process crash, a power
//! loss (clean or torn), and an injected `EIO`/`ENOSPC` at a countdown during another
//! operation. Each result is checked against a plain in-memory model:
//!
//! - `history`: every record ever appended and not lost, by offset; every record the
//!   partition returns must be exactly the one at its offset there (never a wrong record);
//! - `gone`: offsets compaction removed; `start`/`end`: the log's bounds. Outside compaction
//!   the partition must return exactly the records of `[start, end)` not gone;
//! - compaction may only remove records: the compacted view (the newest record of each key;
//!   a tombstone deletes its key) stays what the model says;
//! - `durable_end`: what the durability policy promised durable (`SyncEachAppend`: every
//!   acknowledged append; `SyncThreshold { records: n }`: all but the last `n - 1` records;
//!   `NoSync`: what `flush` or `close` covered). After a power loss the log may end anywhere
//!   from there to the last append, and every record kept is exact;
//! - after an injected fault fails an operation, the partition is closed (errors ignored) and
//!   reopened: the operation took effect entirely or not at all (an append's batch is all
//!   there or absent; the log start is the old or the new one), nothing durable was lost.
//!
//! Only documented promises are relied on: nothing assumes that unsynced data is lost or
//! kept, or which fsync a policy happens to issue.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bytes::Bytes;
use seglog::testing::{SimError, SimFs};
use seglog::{
    CleanupPolicy, CompactionConfig, Compression, Durability, Error, Header, LogRecord, Offset,
    Partition, PartitionConfig, Record,
};

/// 2100-01-01: records lie far past the wall clock, so the age rule `delete_records_before`
/// applies with the real time never deletes anything.
const BASE_TS: i64 = 4_102_444_800_000;
const DIR: &str = "/data/p0";

/// Reads the fuzz input; past its end every number is 0.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from(self.u8()) << 8 | u16::from(self.u8())
    }
    fn below(&mut self, n: u8) -> u8 {
        self.u8() % n
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Rec {
    timestamp_ms: i64,
    key: Option<Bytes>,
    value: Option<Bytes>,
    headers: Vec<Header>,
}

impl Rec {
    fn matches(&self, r: &LogRecord) -> bool {
        self.timestamp_ms == r.timestamp_ms
            && self.key == r.key
            && self.value == r.value
            && self.headers == r.headers
    }
}

fn config(input: &mut Input, sim: &Arc<SimFs>) -> PartitionConfig {
    let durability = match input.below(3) {
        0 => Durability::NoSync,
        1 => Durability::SyncEachAppend,
        _ => Durability::SyncThreshold {
            records: Some(u64::from(input.below(6)) + 1),
            bytes: None,
            interval: None,
        },
    };
    let cleanup = match input.below(4) {
        0 | 1 => CleanupPolicy::Delete,
        2 => CleanupPolicy::Compact,
        _ => CleanupPolicy::CompactAndDelete,
    };
    let compression = match input.below(8) {
        0 => Compression::Gzip,
        1 => Compression::Snappy,
        2 => Compression::Lz4,
        3 => Compression::Zstd,
        _ => Compression::None,
    };
    let flags = input.u8();
    let compaction = CompactionConfig::default()
        .with_delete_retention_ms([0, 1_500, 86_400_000][usize::from(flags % 3)])
        .with_min_compaction_lag_ms(if flags & 4 != 0 { 2_000 } else { 0 })
        .with_min_cleanable_dirty_ratio(if flags & 8 != 0 { 0.5 } else { 0.0 })
        .with_map_bytes_max(if flags & 16 != 0 { 1024 } else { 64 << 20 });
    PartitionConfig::default()
        .with_file_system(sim.clone())
        .with_durability(durability)
        .with_cleanup_policy(cleanup)
        .with_compaction(compaction)
        .with_compression(compression)
        .with_segment_bytes(1024 + u64::from(input.below(4)) * 1024)
        .with_segment_ms((flags & 32 != 0).then_some(20_000))
        .with_index_interval_bytes([64, 256, 4096][usize::from(input.below(3))])
        .with_index_bytes_max([64, 256, 64 << 10][usize::from(input.below(3))])
        .with_preallocate_bytes(if flags & 64 != 0 { 4096 } else { 0 })
        .with_open_segments_max(usize::from(input.below(3)) + 1)
        .with_retention_ms((input.u8() & 1 != 0).then_some(30_000))
        .with_retention_bytes((input.u8() & 1 != 0).then_some(4_000))
}

/// An offset chosen relative to the log at the time the operation runs.
fn pick(input: &mut Input, start: u64, end: u64) -> u64 {
    let raw = u64::from(input.u16());
    match input.below(8) {
        0 => raw % (end + 3),
        1 => start,
        2 => end,
        3 => end + 1 + raw % 4,
        4 => start.saturating_sub(1 + raw % 4),
        _ => start + raw % (end - start + 1),
    }
}

/// Deterministic bytes for a record field.
fn fill(seed: u16, salt: u8, len: usize) -> Bytes {
    let mut x = u64::from(seed) << 8 | u64::from(salt) | 1 << 40;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

fn decode_records(input: &mut Input, clock_ms: i64, keyed: bool) -> Vec<Record> {
    let n = usize::from(input.below(8)) + 1;
    (0..n)
        .map(|i| {
            let shape = input.u8();
            let seed = input.u16();
            let key = (keyed || shape & 1 != 0).then(|| Bytes::from(format!("k{}", seed % 6)));
            // A tombstone now and then, only where there is a key to delete.
            let value = (key.is_none() || shape & 0x0e != 0)
                .then(|| fill(seed, 1, usize::from(shape >> 2) * 3));
            let headers = (0..shape >> 6)
                .map(|h| Header {
                    key: fill(seed, 10 + h, usize::from(h) * 2),
                    value: (h != 1).then(|| fill(seed, 20 + h, 5)),
                })
                .collect();
            let jitter = if shape & 0x10 != 0 {
                i64::from(seed % 4_000) - 2_000
            } else {
                0
            };
            Record {
                key,
                value,
                headers,
                timestamp_ms: clock_ms + jitter + i as i64,
            }
        })
        .collect()
}

struct Model {
    history: Vec<Rec>,
    gone: BTreeSet<u64>,
    start: u64,
    durable_end: u64,
    clock_ms: i64,
    /// Compaction has removed records at some point (segment timestamps may have shrunk).
    compacted: bool,
    /// Batch boundaries: 0 and the end offset of every batch appended (compaction keeps a
    /// batch's offsets or drops the whole batch; it never moves a boundary).
    bounds: BTreeSet<u64>,
}

impl Model {
    fn end(&self) -> u64 {
        self.history.len() as u64
    }
    fn rec(&self, o: u64) -> &Rec {
        &self.history[usize::try_from(o).expect("small")]
    }
    /// The offsets a full read must return.
    fn present(&self) -> Vec<u64> {
        (self.start..self.end())
            .filter(|o| !self.gone.contains(o))
            .collect()
    }
}

/// The partition under test, its file system, configuration, and the model.
struct World {
    sim: Arc<SimFs>,
    config: PartitionConfig,
    p: Option<Partition>,
    m: Model,
    /// A fault injected for the current operation: operations counted before it, countdown.
    armed: Option<(u64, u64)>,
    /// Whether the last armed fault fired.
    fired: bool,
}

/// What an operation that failed under an injected fault may have done.
struct Undecided {
    /// Records an append may have written.
    pending: Vec<Rec>,
    /// The highest log start the operation may have set.
    start_up_to: u64,
    /// The operation may have compacted.
    compaction: bool,
}

impl World {
    fn p(&self) -> &Partition {
        self.p.as_ref().expect("open")
    }

    /// Fail the `n`th file-system operation from now with `error`.
    fn arm(&mut self, n: u64, error: SimError) {
        self.armed = Some((self.sim.operations(), n));
        self.fired = false;
        self.sim.fail_nth(n, None, error);
    }

    /// The operation under test is done: clear the fault (the model's own checks run
    /// without it) and note whether it fired.
    fn disarm(&mut self) {
        if let Some((before, n)) = self.armed.take() {
            self.fired = self.sim.operations() - before >= n;
            self.sim.clear_faults();
        }
    }

    fn open(&mut self) -> Partition {
        Partition::open(DIR, self.config.clone()).unwrap_or_else(|e| panic!("open: {e}"))
    }

    /// Read `[start, end)` in `step`-byte reads; every record exact, offsets increasing.
    fn scan(&self, p: &Partition, extra: &[Rec], step: usize) -> Vec<u64> {
        let (start, end) = (p.log_start_offset().0, p.log_end_offset().0);
        let mut out = Vec::new();
        let mut at = start;
        while at < end {
            let r = p
                .read(Offset(at), step)
                .unwrap_or_else(|e| panic!("read at {at}: {e}"));
            for rec in r.records() {
                let rec = rec.unwrap_or_else(|e| panic!("record read at {at}: {e}"));
                let o = rec.offset.0;
                assert!(o >= at && o < end, "record {o} read at {at}, log end {end}");
                assert!(out.last().is_none_or(|&l| l < o), "offset {o} out of order");
                let want = self.expected_rec(o, extra);
                assert!(
                    want.matches(&rec),
                    "wrong record at {o}: {rec:?}, want {want:?}"
                );
                out.push(o);
            }
            assert!(r.next_offset().0 > at, "no progress reading at {at}");
            at = r.next_offset().0;
        }
        out
    }

    fn expected_rec<'a>(&'a self, o: u64, extra: &'a [Rec]) -> &'a Rec {
        let end = self.m.end();
        if o < end {
            self.m.rec(o)
        } else {
            extra
                .get(usize::try_from(o - end).expect("small"))
                .unwrap_or_else(|| panic!("record {o} past everything appended ({end})"))
        }
    }

    /// Bounds and a full read match the model exactly.
    fn check_all(&self, step: usize) {
        let p = self.p();
        assert_eq!(p.log_start_offset().0, self.m.start, "log start");
        assert_eq!(p.log_end_offset().0, self.m.end(), "log end");
        assert_eq!(p.high_watermark().0, self.m.end(), "high watermark");
        assert_eq!(self.scan(p, &[], step), self.m.present(), "records present");
    }

    /// The newest record of each key in `[start, end)` of `history`, and what `read` (the
    /// offsets kept) must still show of it: a value stays, a tombstone stays or takes all
    /// of its key's records with it.
    fn check_compacted_view(&self, start: u64, end: u64, read: &[u64], extra: &[Rec]) {
        let mut newest: BTreeMap<&Bytes, u64> = BTreeMap::new();
        // A record compaction already removed stays removed: after `truncate_to` cut away a
        // key's newer records, its newest left may be one of those (as in Kafka).
        for o in (start..end).filter(|o| !self.m.gone.contains(o)) {
            if let Some(k) = &self.expected_rec(o, extra).key {
                newest.insert(k, o);
            }
        }
        let mut kept: BTreeMap<&Bytes, u64> = BTreeMap::new();
        for &o in read {
            // Records without a key are checked below: compaction keeps them all.
            if let Some(k) = &self.expected_rec(o, extra).key {
                kept.insert(k, o);
            }
        }
        for (k, &o) in &newest {
            let tombstone = self.expected_rec(o, extra).value.is_none();
            match kept.get(k) {
                Some(&got) if got == o => {}
                None if tombstone => {}
                other => panic!(
                    "key {k:?}: newest record at {o} (tombstone: {tombstone}), the log's newest \
                     is {other:?}"
                ),
            }
        }
        let unkeyed: Vec<u64> = (start..end)
            .filter(|&o| self.expected_rec(o, extra).key.is_none())
            .collect();
        let read_unkeyed: Vec<u64> = read
            .iter()
            .copied()
            .filter(|&o| self.expected_rec(o, extra).key.is_none())
            .collect();
        assert_eq!(
            read_unkeyed, unkeyed,
            "records without a key are never compacted"
        );
    }

    /// Close (errors ignored) or crash, optionally lose power, reopen, and make the model
    /// agree with what survived, checking that it may.
    fn reopen_and_reconcile(&mut self, how: Restart, undecided: &Undecided) {
        let p = self.p.take().expect("open");
        match how {
            Restart::Close => {
                let _ = p.close();
                drop(p);
            }
            Restart::Crash | Restart::PowerLoss(_) => p.simulate_crash(),
        }
        self.sim.clear_faults();
        match how {
            Restart::PowerLoss(None) => self.sim.power_loss(),
            Restart::PowerLoss(Some(seed)) => self.sim.power_loss_torn(seed),
            _ => {}
        }
        let p = self.open();
        let (start, end) = (p.log_start_offset().0, p.log_end_offset().0);
        let m = &self.m;
        let appended = m.end() + undecided.pending.len() as u64;
        assert_eq!(p.high_watermark().0, end, "high watermark after open");
        assert!(
            end <= appended,
            "log end {end} past the {appended} records appended"
        );
        // A process crash keeps everything written. A power loss keeps what was promised
        // durable; so does a failed operation (a failed fsync may drop what it did not make
        // durable, and seglog never acknowledged that as durable).
        let floor = match how {
            Restart::Crash => m.end(),
            _ => m.durable_end,
        };
        assert!(
            end >= floor,
            "log end {end}: records below {floor} were promised (durable end {}, {how:?})",
            m.durable_end
        );
        assert!(start <= end, "log start {start} past log end {end}");
        if m.start <= end {
            assert!(
                start >= m.start && start <= undecided.start_up_to.max(m.start),
                "log start {start}, model {} (up to {})",
                m.start,
                undecided.start_up_to
            );
        }
        let read = self.scan(&p, &undecided.pending, 1 << 10);
        if std::env::var_os("SEGLOG_OPS_TRACE").is_some() {
            eprintln!(
                "reopened ({how:?}): [{start}, {end}) segments {:?} read {read:?} {:?}",
                p.segment_base_offsets(),
                p.recovery_report()
            );
        }
        let compacts = self.config.cleanup_policy.compacts();
        if compacts && (m.compacted || undecided.compaction) {
            self.check_compacted_view(start.max(m.start), end, &read, &undecided.pending);
        } else {
            let want: Vec<u64> = (start..end).filter(|o| !m.gone.contains(o)).collect();
            assert_eq!(read, want, "records after reopen ({how:?})");
        }
        // The model follows what survived.
        let m = &mut self.m;
        let mut history = std::mem::take(&mut m.history);
        history.extend(undecided.pending.iter().cloned());
        history.truncate(usize::try_from(end).expect("small"));
        m.history = history;
        m.bounds.retain(|&b| b <= end);
        m.bounds.insert(end);
        let read: BTreeSet<u64> = read.into_iter().collect();
        m.gone = (start..end).filter(|o| !read.contains(o)).collect();
        m.compacted |= !m.gone.is_empty();
        m.start = start;
        m.durable_end = m.durable_end.min(end);
        self.p = Some(p);
    }
}

#[derive(Debug, Clone, Copy)]
enum Restart {
    Close,
    Crash,
    /// `Some(seed)`: torn.
    PowerLoss(Option<u64>),
}

const NOTHING: Undecided = Undecided {
    pending: Vec::new(),
    start_up_to: 0,
    compaction: false,
};

/// An operation's error, and what the operation may have done.
type Failed = Box<(Error, Undecided)>;

/// One operation; `Err` only from the partition (the caller decides whether a fault
/// explains it). The model changes only when the operation succeeded.
fn step(w: &mut World, op: u8, input: &mut Input) -> Result<(), Failed> {
    let (start, end) = (w.m.start, w.m.end());
    match op {
        0..=4 => {
            w.m.clock_ms += i64::from(input.u16() % 3_000);
            let keyed = w.config.cleanup_policy.compacts();
            let records = decode_records(input, w.m.clock_ms, keyed);
            let recs: Vec<Rec> = records
                .iter()
                .map(|r| Rec {
                    timestamp_ms: r.timestamp_ms,
                    key: r.key.clone(),
                    value: r.value.clone(),
                    headers: r.headers.clone(),
                })
                .collect();
            let appended = w.p().append(&records);
            w.disarm();
            let info = match appended {
                Ok(info) => info,
                Err(e) => {
                    let undecided = Undecided {
                        pending: recs,
                        ..NOTHING
                    };
                    return Err(Box::new((e, undecided)));
                }
            };
            assert_eq!(info.base_offset, Offset(end));
            assert_eq!(info.last_offset, Offset(end + recs.len() as u64 - 1));
            w.m.history.extend(recs);
            let end = w.m.end();
            w.m.bounds.insert(end);
            w.m.durable_end = match &w.config.durability {
                Durability::SyncEachAppend => end,
                Durability::SyncThreshold {
                    records: Some(n), ..
                } => w.m.durable_end.max(end.saturating_sub(n - 1)),
                _ => w.m.durable_end,
            };
        }
        5 => {
            let at = pick(input, start, end);
            let max_bytes = [0, 1, 100, 700, 5_000, usize::MAX][usize::from(input.below(6))];
            let r = w.p().read(Offset(at), max_bytes);
            w.disarm();
            check_read(w, at, max_bytes, r).map_err(|e| Box::new((e, NOTHING)))?;
        }
        6 => {
            let ts = w.m.clock_ms - i64::from(input.u16()) * 2 + 20_000;
            let got = w.p().offset_for_timestamp(ts);
            w.disarm();
            let got = got.map_err(|e| Box::new((e, NOTHING)))?;
            let want =
                w.m.present()
                    .into_iter()
                    .find(|&o| w.m.rec(o).timestamp_ms >= ts);
            assert_eq!(got, want.map(Offset), "offset_for_timestamp({ts})");
        }
        7 => {
            let before = w.p().segment_base_offsets();
            let rolled = w.p().roll();
            w.disarm();
            rolled.map_err(|e| Box::new((e, NOTHING)))?;
            let after = w.p().segment_base_offsets();
            let last = before.last().expect("a segment").0;
            // After `truncate_to`, the active segment can be one compaction emptied: it covers
            // offsets but holds no bytes, and a roll leaves it be.
            let emptied = (last..end).all(|o| w.m.gone.contains(&o)) && after == before;
            if last < end && !emptied {
                assert_eq!(after.len(), before.len() + 1, "roll of a non-empty segment");
                assert_eq!(*after.last().expect("a segment"), Offset(end));
            } else {
                assert_eq!(after, before, "roll of an empty segment");
            }
        }
        8 => {
            let now = w.m.clock_ms + i64::from(input.u16()) - 10_000;
            let (count, new_start) =
                expected_retention(w, start, Some(now)).map_err(|e| Box::new((e, NOTHING)))?;
            let undecided = Undecided {
                start_up_to: new_start,
                ..NOTHING
            };
            let before = w.p().segment_base_offsets();
            let plan = w.p().apply_retention_at(now);
            w.disarm();
            let plan = plan.map_err(|e| Box::new((e, undecided)))?;
            assert_eq!(
                plan.delete_count, count,
                "segments retention deletes at {now}"
            );
            assert_eq!(plan.log_start_offset, Offset(new_start));
            let kept = if count == before.len() {
                vec![Offset(end)] // the expired active segment was rolled, then deleted
            } else {
                before[count..].to_vec()
            };
            assert_eq!(w.p().segment_base_offsets(), kept);
            w.m.start = new_start;
        }
        9 => {
            let o = pick(input, start, end);
            // It applies retention at the real time: records (in 2100) are never too old, but a
            // segment compaction emptied has no newest record and goes.
            let now = Some(seglog::now_ms());
            let (count, new_start) =
                expected_retention(w, o, now).map_err(|e| Box::new((e, NOTHING)))?;
            let undecided = Undecided {
                start_up_to: new_start.max(o),
                ..NOTHING
            };
            let before = w.p().segment_base_offsets();
            let r = w.p().delete_records_before(Offset(o));
            w.disarm();
            if o > end {
                assert!(matches!(r, Err(Error::InvalidOffset { .. })), "{r:?}");
                return Ok(());
            }
            let got = r.map_err(|e| Box::new((e, undecided)))?;
            if o <= start {
                assert_eq!(got, Offset(start));
                assert_eq!(w.p().segment_base_offsets(), before);
            } else {
                assert_eq!(got, Offset(o));
                assert_eq!(w.p().segment_base_offsets(), before[count..].to_vec());
                w.m.start = new_start;
            }
        }
        10 => {
            if !w.config.cleanup_policy.compacts() {
                return Ok(());
            }
            let now = w.m.clock_ms + i64::from(input.u16() % 8_000);
            let force = input.u8() & 1 != 0;
            let undecided = Undecided {
                compaction: true,
                ..NOTHING
            };
            let report = w.p().compact_at(now, force);
            w.disarm();
            let report = report.map_err(|e| Box::new((e, undecided)))?;
            let read = w.scan(w.p(), &[], 1 << 12);
            let present: BTreeSet<u64> = w.m.present().into_iter().collect();
            assert!(
                read.iter().all(|o| present.contains(o)),
                "compaction brought records back: {report:?}"
            );
            w.check_compacted_view(start, end, &read, &[]);
            let read: BTreeSet<u64> = read.into_iter().collect();
            w.m.gone = (start..end).filter(|o| !read.contains(o)).collect();
            w.m.compacted |= !w.m.gone.is_empty();
        }
        11 => {
            let flushed = w.p().flush();
            w.disarm();
            flushed.map_err(|e| Box::new((e, NOTHING)))?;
            w.m.durable_end = end;
        }
        12 => {
            // A clean close and reopen, sometimes with a fault during the open.
            let closed = w.p().close();
            if closed.is_err() {
                w.disarm();
            }
            closed.map_err(|e| Box::new((e, NOTHING)))?;
            w.m.durable_end = end;
            drop(w.p.take());
            if input.u8() & 1 != 0 {
                let n = u64::from(input.below(40)) + 1;
                w.sim.fail_nth(n, None, sim_error(input));
            }
            // An open failed by a fault (this one's, or one injected around this operation)
            // is fine; the next open recovers.
            w.p = Partition::open(DIR, w.config.clone()).ok();
            w.disarm();
            w.sim.clear_faults();
            if w.p.is_none() {
                w.p = Some(w.open());
            }
            w.check_all(700);
        }
        13 => w.reopen_and_reconcile(Restart::Crash, &NOTHING),
        15 => {
            let o = pick(input, start, end);
            let r = w.p().truncate_to(Offset(o));
            w.disarm();
            check_truncate(w, o, r)?;
        }
        _ => {
            let torn = input.u8();
            let seed = (torn & 1 != 0).then(|| u64::from(input.u16()));
            w.reopen_and_reconcile(Restart::PowerLoss(seed), &NOTHING);
        }
    }
    Ok(())
}

/// `truncate_to(o)` cuts before the batch holding `o`, at a batch boundary no higher than that
/// batch's base and never below the log start; only batches compaction dropped whole (no record
/// present) may lie between the cut and that base. Everything is durable afterwards.
fn check_truncate(w: &mut World, o: u64, r: seglog::Result<Offset>) -> Result<(), Failed> {
    let (start, end) = (w.m.start, w.m.end());
    if o >= end {
        assert_eq!(
            r.map_err(|e| Box::new((e, NOTHING)))?,
            Offset(end),
            "truncate_to({o}) at or past the end"
        );
        return Ok(());
    }
    let present = w.m.present();
    let none_present = |a: u64, b: u64| !present.iter().any(|&x| x >= a && x < b);
    let base = *w.m.bounds.range(..=o).next_back().expect("0 is a boundary");
    let new_end = match r {
        Err(Error::InvalidOffset { .. }) => {
            assert!(
                o < start || none_present(start, base),
                "truncate_to({o}) refused, log start {start}, batch base {base}"
            );
            return Ok(());
        }
        other => other.map_err(|e| Box::new((e, NOTHING)))?.0,
    };
    assert!(
        o >= start && base >= start,
        "truncate_to({o}) below the log start {start} cut at {new_end}"
    );
    assert!(
        new_end >= start && new_end <= base && w.m.bounds.contains(&new_end),
        "truncate_to({o}) cut at {new_end}: batch base {base}, log start {start}"
    );
    assert!(
        none_present(new_end, base),
        "truncate_to({o}) cut at {new_end} removed records below {base}"
    );
    let m = &mut w.m;
    m.history.truncate(usize::try_from(new_end).expect("small"));
    m.gone.retain(|&g| g < new_end);
    m.bounds.retain(|&b| b <= new_end);
    m.durable_end = new_end;
    w.check_all(500);
    Ok(())
}

fn sim_error(input: &mut Input) -> SimError {
    if input.u8() & 1 != 0 {
        SimError::Enospc
    } else {
        SimError::Eio
    }
}

/// One read checked: range errors, the empty read at the end, the records exact and from
/// `at` on, the byte budget.
fn check_read(
    w: &World,
    at: u64,
    max_bytes: usize,
    r: seglog::Result<seglog::ReadBatches>,
) -> seglog::Result<()> {
    let (start, end) = (w.m.start, w.m.end());
    if at < start || at > end {
        match r {
            Err(Error::OffsetOutOfRange { .. }) => return Ok(()),
            Err(e @ Error::Io { .. }) => return Err(e),
            other => panic!("read at {at} outside [{start}, {end}]: {other:?}"),
        }
    }
    let r = r?;
    if at == end {
        assert!(r.is_empty(), "read at the end returned data");
        return Ok(());
    }
    let present = w.m.present();
    let first = present.iter().copied().find(|&o| o >= at);
    let mut got = Vec::new();
    for rec in r.records() {
        let rec = rec?;
        let want = w.m.rec(rec.offset.0);
        assert!(want.matches(&rec), "wrong record at {}", rec.offset);
        got.push(rec.offset.0);
    }
    if r.batches().len() > 1 {
        assert!(r.size_bytes() <= max_bytes, "read over its budget");
    }
    let expected: Vec<u64> = present
        .iter()
        .copied()
        .filter(|&o| o >= at && o < r.next_offset().0)
        .collect();
    assert_eq!(got, expected, "records read at {at}");
    if first.is_some() {
        assert!(
            !got.is_empty(),
            "read at {at} found nothing; {first:?} is there"
        );
    }
    assert!(r.next_offset().0 > at && r.next_offset().0 <= end);
    Ok(())
}

/// What retention must do, from the segments' sizes and the records' timestamps:
/// (segments deleted, log start after).
/// `segment_infos` may fail under an injected fault: that fails the operation.
fn expected_retention(w: &World, start: u64, now_ms: Option<i64>) -> seglog::Result<(usize, u64)> {
    let infos = w.p().segment_infos()?;
    let end = w.m.end();
    let segs: Vec<(u64, u64, Option<i64>)> = infos
        .iter()
        .map(|s| {
            let (base, seg_end) = (s.base_offset.0, s.end_offset.0.min(end));
            let max_ts = (base..seg_end)
                .filter(|o| !w.m.gone.contains(o))
                .map(|o| w.m.rec(o).timestamp_ms)
                .max();
            if !w.m.compacted && base >= w.m.start {
                assert_eq!(
                    s.max_timestamp, max_ts,
                    "newest timestamp of segment {base}"
                );
            }
            (s.end_offset.0, s.size_bytes, s.max_timestamp)
        })
        .collect();
    let sealed = &segs[..segs.len() - 1];
    let by_start = sealed.iter().take_while(|s| s.0 <= start).count();
    let deletes = w.config.cleanup_policy.deletes();
    let by_age = match (w.config.retention_ms.filter(|_| deletes), now_ms) {
        (Some(ms), Some(now)) => {
            let cutoff = now - ms as i64;
            sealed
                .iter()
                .take_while(|s| s.2.is_none_or(|t| t < cutoff))
                .count()
        }
        _ => 0,
    };
    let by_size = w
        .config
        .retention_bytes
        .filter(|_| deletes)
        .map_or(0, |limit| {
            let mut excess = segs.iter().map(|s| s.1).sum::<u64>().saturating_sub(limit);
            sealed
                .iter()
                .take_while(|s| {
                    let fits = s.1 <= excess;
                    if fits {
                        excess -= s.1;
                    }
                    fits
                })
                .count()
        });
    // Every sealed segment expired and so did the active one (holding records, all below the
    // high watermark): retention rolls it and deletes it too, as Kafka does.
    let hw = w.p().high_watermark().0;
    let roll_active = by_age == sealed.len()
        && match (
            w.config.retention_ms.filter(|_| deletes),
            now_ms,
            segs.last(),
        ) {
            (Some(ms), Some(now), Some(active)) => {
                active.1 > 0 && active.0 <= hw && active.2.is_some_and(|t| t < now - ms as i64)
            }
            _ => false,
        };
    if roll_active {
        return Ok((segs.len(), start.max(end)));
    }
    let count = by_start.max(by_age).max(by_size);
    let new_start = if count == 0 {
        start
    } else {
        start.max(infos[count].base_offset.0)
    };
    Ok((count, new_start))
}

/// Run the program the bytes of `data` decode to; panics on any disagreement with the model.
pub fn partition_ops(data: &[u8]) {
    let mut input = Input(data);
    let sim = Arc::new(SimFs::new());
    let config = config(&mut input, &sim);
    let p = Partition::open(DIR, config.clone()).expect("open a new partition");
    let mut w = World {
        sim,
        config,
        p: Some(p),
        m: Model {
            history: Vec::new(),
            gone: BTreeSet::new(),
            start: 0,
            durable_end: 0,
            clock_ms: BASE_TS,
            compacted: false,
            bounds: BTreeSet::from([0]),
        },
        armed: None,
        fired: false,
    };
    let mut ops = 0;
    // `SEGLOG_OPS_TRACE=1`: print each operation, to follow a failing input.
    let trace = std::env::var_os("SEGLOG_OPS_TRACE").is_some();
    if trace {
        eprintln!("{:?}", w.config);
    }
    while !input.is_empty() && ops < 64 {
        ops += 1;
        let op = input.below(20);
        if trace {
            eprintln!(
                "op {op} [{}, {}) durable {} segments {:?}",
                w.m.start,
                w.m.end(),
                w.m.durable_end,
                w.p.as_ref().map(Partition::segment_base_offsets)
            );
        }
        let result = if op >= 16 {
            // An injected fault during the next operation.
            let n = u64::from(input.below(24)) + 1;
            let error = sim_error(&mut input);
            let inner = input.below(13);
            w.arm(n, error);
            let r = step(&mut w, inner, &mut input);
            w.disarm();
            let fired = w.fired;
            if trace {
                eprintln!(
                    "  fault {error:?} at {n} in op {inner}: fired {fired}, ok {}",
                    r.is_ok()
                );
            }
            match r {
                Err(failed) if fired => {
                    w.reopen_and_reconcile(Restart::Close, &failed.1);
                    Ok(())
                }
                // The fault never fired (it was cleared) or the operation survived it.
                other => other,
            }
        } else {
            step(&mut w, op, &mut input)
        };
        if let Err(failed) = result {
            panic!("operation {op} failed with no fault injected: {}", failed.0);
        }
        if w.p.is_some() {
            let p = w.p();
            assert_eq!(p.log_start_offset().0, w.m.start, "log start");
            assert_eq!(p.log_end_offset().0, w.m.end(), "log end");
            if trace {
                w.check_all(1 << 20);
            }
        }
    }
    w.check_all(1 << 20);
    w.reopen_and_reconcile(Restart::PowerLoss(None), &NOTHING);
    w.check_all(300);
}
