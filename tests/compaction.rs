//! Keyed compaction against models: a proptest model (random puts, tombstones, timestamps,
//! compactions, rolls, reopens and crashes checked against a per-key `HashMap` and the record
//! appended at every offset), a SIGKILL loop on a child process that appends and compacts,
//! hand-built crash states of the `.cleaned` / `.swap` / `.deleted` swap checked on reopen, and
//! targeted tests of tombstone expiry, compaction lag, the active segment, the dirty ratio, the
//! key-map budget, batch header fields, cleanup policies, old readers and concurrent use.

mod support;
use support::{kill_after, mix, wait_for_first_ack, Rng};

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use proptest::prelude::*;
use seglog::{
    segment_path, BatchMeta, CleanupPolicy, CompactionConfig, CompactionReport, Durability, Error,
    Header, LogRecord, Offset, Partition, PartitionConfig, ReadBatches, Record,
};

/// Base of the record timestamps of the model tests.
const TS0: i64 = 1_000_000;
/// A compaction time past every timestamp, lag and retention used below.
const FAR: i64 = i64::MAX / 4;

// ---------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------

/// Spawning a child process copies every file descriptor of this process into it until it
/// execs, the directory lock among them: a partition closed and reopened by another test in
/// that window would find its directory still locked. The SIGKILL test spawns alone.
static SPAWNING: RwLock<()> = RwLock::new(());

fn shared() -> RwLockReadGuard<'static, ()> {
    SPAWNING.read().unwrap_or_else(|e| e.into_inner())
}

fn exclusive() -> RwLockWriteGuard<'static, ()> {
    SPAWNING.write().unwrap_or_else(|e| e.into_inner())
}

/// A record's content as appended, comparable with what a read returns.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rec {
    key: Vec<u8>,
    value: Option<Vec<u8>>,
    ts: i64,
    headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl Rec {
    fn record(&self) -> Record {
        let mut r = match &self.value {
            Some(v) => Record::new(v.clone()).with_key(self.key.clone()),
            None => Record::tombstone(self.key.clone()),
        }
        .with_timestamp(self.ts);
        r.headers = self
            .headers
            .iter()
            .map(|(k, v)| Header {
                key: k.clone().into(),
                value: v.clone().map(Into::into),
            })
            .collect();
        r
    }

    fn of(r: &LogRecord) -> Rec {
        Rec {
            key: r.key.as_ref().expect("compacted logs have keys").to_vec(),
            value: r.value.as_ref().map(|v| v.to_vec()),
            ts: r.timestamp_ms,
            headers: r
                .headers
                .iter()
                .map(|h| (h.key.to_vec(), h.value.as_ref().map(|v| v.to_vec())))
                .collect(),
        }
    }
}

fn put(key: &str, value: &str, ts: i64) -> Record {
    Record::new(value.to_owned())
        .with_key(key.to_owned())
        .with_timestamp(ts)
}

fn del(key: &str, ts: i64) -> Record {
    Record::tombstone(key.to_owned()).with_timestamp(ts)
}

fn compact_cfg() -> CompactionConfig {
    CompactionConfig::default()
        .with_min_cleanable_dirty_ratio(0.0)
        .with_min_compaction_lag_ms(0)
        .with_delete_retention_ms(0)
}

/// Small files, no time rolling, no fsync, compact policy.
fn base_cfg(segment_bytes: u64, compaction: CompactionConfig) -> PartitionConfig {
    PartitionConfig::default()
        .with_durability(Durability::NoSync)
        .with_segment_bytes(segment_bytes)
        .with_segment_ms(None)
        .with_index_interval_bytes(128)
        .with_index_bytes_max(4096)
        .with_cleanup_policy(CleanupPolicy::Compact)
        .with_compaction(compaction)
}

/// Every record from the log start to the high watermark, by sequential reads of
/// `max_bytes`; checks that offsets strictly increase and stay below the log end.
fn read_all_with(p: &Partition, max_bytes: usize) -> Vec<(u64, Rec)> {
    let mut out: Vec<(u64, Rec)> = Vec::new();
    let hw = p.high_watermark();
    let mut next = p.log_start_offset();
    while next < hw {
        let r = p
            .read(next, max_bytes)
            .unwrap_or_else(|e| panic!("read at {next:?}: {e}"));
        if r.is_empty() {
            // Compaction removed everything from here to the end of the sealed segments and
            // the active segment is empty.
            break;
        }
        for rec in r.records() {
            let rec = rec.unwrap();
            assert!(rec.offset >= next, "record {rec:?} before the read offset");
            assert!(
                rec.offset < hw,
                "record {rec:?} at or past the high watermark"
            );
            if let Some((last, _)) = out.last() {
                assert!(*last < rec.offset.0, "offsets not increasing at {rec:?}");
            }
            out.push((rec.offset.0, Rec::of(&rec)));
        }
        assert!(r.next_offset() > next, "read made no progress at {next:?}");
        next = r.next_offset();
    }
    out
}

fn read_all(p: &Partition) -> Vec<(u64, Rec)> {
    read_all_with(p, 4096)
}

/// The newest record per key present in `snap`.
fn latest_of(snap: &[(u64, Rec)]) -> HashMap<Vec<u8>, (u64, Rec)> {
    let mut m = HashMap::new();
    for (o, r) in snap {
        m.insert(r.key.clone(), (*o, r.clone()));
    }
    m
}

/// Checks, against the records themselves, that a read at every offset of `[log start, high
/// watermark]` (one batch, and 1 MiB) leads to the first record at or after it (see
/// `first_record_from`), and that `offset_for_timestamp` finds the first record (in offset
/// order) at least as new as each probed time.
fn check_reads(p: &Partition, snap: &[(u64, Rec)], probes: &[i64], ctx: &str) {
    let hw = p.high_watermark().0;
    let mut at = 0;
    for o in p.log_start_offset().0..hw {
        while at < snap.len() && snap[at].0 < o {
            at += 1;
        }
        let want = snap.get(at).map(|(off, _)| *off);
        for max_bytes in [1, 1 << 20] {
            let got = first_record_from(p, o, max_bytes);
            assert_eq!(
                got,
                want,
                "{ctx}: read at {o} with max_bytes {max_bytes} (a removed offset reads the next \
                 record); segments {:?}, records {:?}",
                p.segment_infos().unwrap(),
                snap.iter().map(|(o, _)| o).collect::<Vec<_>>()
            );
        }
    }
    assert!(p.read(Offset(hw), 1).unwrap().is_empty());
    for &ts in probes {
        let want = snap
            .iter()
            .find(|(_, r)| r.ts >= ts)
            .map(|(o, _)| Offset(*o));
        assert_eq!(
            p.offset_for_timestamp(ts).unwrap(),
            want,
            "{ctx}: offset_for_timestamp({ts})"
        );
    }
}

/// The offset of the first record a read at `o` yields: a read at a removed offset must
/// return the next record that exists, in its first batch (even when compaction removed the
/// last records of a batch, which keeps its offset range), or nothing at the end of the log.
fn first_record_from(p: &Partition, o: u64, max_bytes: usize) -> Option<u64> {
    let r = p.read(Offset(o), max_bytes).unwrap();
    if r.is_empty() {
        return None;
    }
    let first = r.batches()[0]
        .records()
        .find(|rec| rec.as_ref().map_or(true, |rec| rec.offset >= Offset(o)));
    let first =
        first.unwrap_or_else(|| panic!("read at {o}: first batch holds no record at or after it"));
    Some(first.unwrap().offset.0)
}

/// Sizes of the sealed segments (all but the last), oldest first.
fn sealed_sizes(p: &Partition) -> Vec<u64> {
    let infos = p.segment_infos().unwrap();
    infos[..infos.len() - 1]
        .iter()
        .map(|i| i.size_bytes)
        .collect()
}

/// The grouping rule bounds a full rewrite: adjacent groups G, H of the last pass satisfy
/// `size(G) + size(first segment of H) > segment_bytes` (sizes before the rewrite), so any two
/// neighbours together exceed `segment_bytes`: `floor(n / 2) * segment_bytes < input bytes`.
fn assert_group_bound(n: usize, segment_bytes: u64, input_bytes: u64, ctx: &str) {
    assert!(
        n <= 1 || (n as u64 / 2) * segment_bytes < input_bytes,
        "{ctx}: {n} sealed segments after a full compaction of {input_bytes} bytes \
         with {segment_bytes}-byte segments"
    );
}

fn leftovers(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".cleaned") || n.ends_with(".deleted") || n.ends_with(".swap"))
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Model test
// ---------------------------------------------------------------------------------------------

/// The reference: every record ever appended, the newest offset per key, and which newest
/// tombstones a compaction has been allowed to drop.
#[derive(Default)]
struct Model {
    appended: BTreeMap<u64, Rec>,
    latest: HashMap<Vec<u8>, u64>,
    /// Offsets of tombstones that were their key's newest record when a compaction ran at a
    /// time more than `delete_retention_ms` past their timestamp. Only these may vanish
    /// (with every older record of their key); every other newest record must stay.
    expirable: BTreeSet<u64>,
    /// The log start offset (`delete_records_before`): nothing below it is readable.
    start: u64,
}

impl Model {
    fn append(&mut self, base: u64, recs: &[Rec]) {
        for (i, r) in recs.iter().enumerate() {
            let o = base + i as u64;
            self.appended.insert(o, r.clone());
            // Concurrent appenders may report out of offset order.
            let newest = self.latest.entry(r.key.clone()).or_insert(o);
            *newest = (*newest).max(o);
        }
    }

    fn end(&self) -> u64 {
        self.appended.keys().next_back().map_or(0, |o| o + 1)
    }

    /// A compaction is about to run at `now`: tombstones already past retention may go.
    fn compacting_at(&mut self, now: i64, delete_retention_ms: u64) {
        let horizon = now.saturating_sub(delete_retention_ms as i64);
        for o in self.latest.values() {
            let r = &self.appended[o];
            if r.value.is_none() && r.ts < horizon {
                self.expirable.insert(*o);
            }
        }
    }

    /// The log holds exactly: records as appended at their offsets, and for every key its
    /// newest record — or nothing at all, only for an expirable tombstone.
    fn check(&self, p: &Partition, ctx: &str) -> Vec<(u64, Rec)> {
        assert_eq!(p.log_start_offset(), Offset(self.start), "{ctx}: log start");
        assert_eq!(p.log_end_offset(), Offset(self.end()), "{ctx}: log end");
        assert_eq!(
            p.high_watermark(),
            Offset(self.end()),
            "{ctx}: high watermark"
        );
        let snap = read_all(p);
        for (o, r) in &snap {
            assert_eq!(Some(r), self.appended.get(o), "{ctx}: record at {o}");
        }
        let present = latest_of(&snap);
        for (k, o) in &self.latest {
            if *o < self.start {
                assert!(!present.contains_key(k), "{ctx}: {k:?} below the log start");
                continue;
            }
            match present.get(k) {
                Some((got, _)) => assert_eq!(got, o, "{ctx}: newest record of {k:?}"),
                None => assert!(
                    self.appended[o].value.is_none() && self.expirable.contains(o),
                    "{ctx}: key {k:?} lost (newest at {o}: {:?})",
                    self.appended[o]
                ),
            }
        }
        snap
    }

    /// `check` plus a read at every offset and timestamp lookups.
    fn check_full(&self, p: &Partition, ctx: &str) {
        let snap = self.check(p, ctx);
        assert_eq!(read_all_with(p, 1), snap, "{ctx}: one-batch reads");
        let mut probes: Vec<i64> = snap.iter().map(|(_, r)| r.ts).collect();
        probes.sort_unstable();
        probes.dedup();
        let mut picked: Vec<i64> = probes.iter().step_by(7).copied().collect();
        picked.extend(probes.iter().map(|t| t + 1).step_by(11));
        picked.extend([i64::MIN, TS0 - 1_000, i64::MAX]);
        check_reads(p, &snap, &picked, ctx);
    }
}

#[derive(Debug, Clone)]
struct Setup {
    segment_bytes: u64,
    map_bytes_max: usize,
    delete_retention_ms: u64,
    min_compaction_lag_ms: u64,
    dirty_ratio: f64,
    keys: u8,
    open_segments_max: usize,
}

impl Setup {
    fn config(&self) -> PartitionConfig {
        base_cfg(
            self.segment_bytes,
            CompactionConfig::default()
                .with_map_bytes_max(self.map_bytes_max)
                .with_delete_retention_ms(self.delete_retention_ms)
                .with_min_compaction_lag_ms(self.min_compaction_lag_ms)
                .with_min_cleanable_dirty_ratio(self.dirty_ratio),
        )
        .with_open_segments_max(self.open_segments_max)
    }
}

/// One record of an append: key index, tombstone or not, value length, timestamp jitter,
/// whether it has a header.
type RecSpec = (u8, bool, u8, i64, bool);

#[derive(Debug, Clone)]
enum Op {
    /// One batch; the clock advances first.
    Append {
        advance_ms: i64,
        recs: Vec<RecSpec>,
    },
    /// `compact_at(clock + rel_now_ms, force)`.
    Compact {
        rel_now_ms: i64,
        force: bool,
    },
    Roll,
    /// `delete_records_before` a point `permille` of the way from log start to the watermark.
    DeleteBefore {
        permille: u64,
    },
    Reopen,
    Crash,
}

fn setup_strategy() -> impl Strategy<Value = Setup> {
    (
        1024u64..3000,
        1024usize..2600,
        prop::sample::select(vec![0u64, 30, 300, 1_000_000]),
        prop::sample::select(vec![0u64, 20, 200]),
        prop::sample::select(vec![0.0f64, 0.3, 0.8]),
        4u8..40,
        prop::sample::select(vec![1usize, 3, 128]),
    )
        .prop_map(|(s, m, r, l, d, k, o)| Setup {
            segment_bytes: s,
            map_bytes_max: m,
            delete_retention_ms: r,
            min_compaction_lag_ms: l,
            dirty_ratio: d,
            keys: k,
            open_segments_max: o,
        })
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let rec = (
        any::<u8>(),
        prop::bool::weighted(0.2),
        0u8..60,
        -20i64..20,
        prop::bool::weighted(0.1),
    );
    prop_oneof![
        10 => (0i64..30, prop::collection::vec(rec, 1..5))
            .prop_map(|(advance_ms, recs)| Op::Append { advance_ms, recs }),
        3 => (-100i64..600, any::<bool>()).prop_map(|(rel_now_ms, force)| Op::Compact { rel_now_ms, force }),
        1 => Just(Op::Roll),
        1 => (0u64..300).prop_map(|permille| Op::DeleteBefore { permille }),
        1 => Just(Op::Reopen),
        1 => Just(Op::Crash),
    ]
}

fn rec_of(spec: &RecSpec, keys: u8, ts: i64, n: u64) -> Rec {
    let (k, tomb, len, jitter, header) = *spec;
    let key = format!("k{:02}", k % keys).into_bytes();
    let value = (!tomb).then(|| {
        let h = mix(n);
        (0..len)
            .map(|i| b'a' + ((h >> (i % 60)) as u8) % 26)
            .collect()
    });
    let headers = if header {
        vec![(b"h".to_vec(), Some(n.to_string().into_bytes()))]
    } else {
        Vec::new()
    };
    Rec {
        key,
        value,
        ts: ts + jitter,
        headers,
    }
}

fn run_model(setup: &Setup, ops: &[Op]) {
    let _g = shared();
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup.config();
    let mut p = Some(Partition::open(dir.path(), cfg.clone()).unwrap());
    let mut m = Model::default();
    let mut clock = TS0;
    let mut n = 0u64;
    for (step, op) in ops.iter().enumerate() {
        let ctx = format!("step {step} {op:?}");
        let part = p.as_ref().unwrap();
        match op {
            Op::Append { advance_ms, recs } => {
                clock += advance_ms;
                let recs: Vec<Rec> = recs
                    .iter()
                    .map(|s| {
                        n += 1;
                        rec_of(s, setup.keys, clock, n)
                    })
                    .collect();
                let batch: Vec<Record> = recs.iter().map(Rec::record).collect();
                let info = part.append(&batch).unwrap();
                assert_eq!(info.base_offset, Offset(m.end()), "{ctx}");
                m.append(info.base_offset.0, &recs);
                continue;
            }
            Op::Compact { rel_now_ms, force } => {
                let now = clock + rel_now_ms;
                let bases = part.segment_base_offsets();
                let active = *bases.last().unwrap();
                m.compacting_at(now, setup.delete_retention_ms);
                let report = part.compact_at(now, *force).unwrap();
                assert!(
                    report.cleaned_up_to <= part.high_watermark(),
                    "{ctx}: {report:?}"
                );
                assert!(report.cleaned_up_to <= active, "{ctx}: {report:?}");
                assert_eq!(
                    *part.segment_base_offsets().last().unwrap(),
                    active,
                    "{ctx}: active segment changed"
                );
            }
            Op::Roll => part.roll().unwrap(),
            Op::DeleteBefore { permille } => {
                let to = m.start + (m.end() - m.start) * permille / 1000;
                part.delete_records_before(Offset(to)).unwrap();
                m.start = m.start.max(to);
            }
            Op::Reopen => {
                let old = p.take().unwrap();
                old.close().unwrap();
                drop(old);
                p = Some(Partition::open(dir.path(), cfg.clone()).unwrap());
                assert!(leftovers(dir.path()).is_empty(), "{ctx}");
            }
            Op::Crash => {
                p.take().unwrap().simulate_crash();
                p = Some(Partition::open(dir.path(), cfg.clone()).unwrap());
                assert!(leftovers(dir.path()).is_empty(), "{ctx}");
            }
        }
        m.check_full(p.as_ref().unwrap(), &ctx);
    }
    let part = p.as_ref().unwrap();
    m.check_full(part, "end");

    // Bounded segment count: a full compaction (one new record so there is dirty data, time
    // past every lag and retention) regroups every sealed segment; a second one regroups the
    // survivors, so the bound then follows the live bytes.
    for round in 0..2 {
        let ctx = format!("full compaction {round}");
        let rec = rec_of(
            &(0, false, 1, 0, false),
            setup.keys,
            clock,
            u64::MAX - round,
        );
        let info = part.append(&[rec.record()]).unwrap();
        m.append(info.base_offset.0, &[rec]);
        part.roll().unwrap();
        let input: u64 = sealed_sizes(part).iter().sum();
        m.compacting_at(FAR, setup.delete_retention_ms);
        let report = part.compact_at(FAR, true).unwrap();
        assert_eq!(
            report.cleaned_up_to,
            part.log_end_offset(),
            "{ctx}: {report:?}"
        );
        let sealed = sealed_sizes(part);
        assert_group_bound(sealed.len(), setup.segment_bytes, input, &ctx);
        m.check_full(part, &ctx);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, max_shrink_iters: 300, ..ProptestConfig::default() })]

    #[test]
    fn model_random_puts_deletes_compactions_reopens(
        setup in setup_strategy(),
        ops in prop::collection::vec(op_strategy(), 10..70),
    ) {
        run_model(&setup, &ops);
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Crashes: SIGKILLed child processes, and hand-built states of the segment swap
// ---------------------------------------------------------------------------------------------

const ENV_DIR: &str = "SEGLOG_COMPACT_CHILD_DIR";
const ENV_ACKS: &str = "SEGLOG_COMPACT_CHILD_ACKS";
const ENV_GEN: &str = "SEGLOG_COMPACT_CHILD_GEN";
const ENV_SYNC: &str = "SEGLOG_COMPACT_CHILD_SYNC";
const ENV_SEED: &str = "SEGLOG_COMPACT_CRASH_SEED";
const CRASH_KEYS: u64 = 24;
const CRASH_RETENTION_MS: u64 = 200;

fn crash_cfg(sync: bool) -> PartitionConfig {
    base_cfg(
        2048,
        compact_cfg()
            .with_map_bytes_max(1024)
            .with_delete_retention_ms(CRASH_RETENTION_MS),
    )
    .with_durability(if sync {
        Durability::SyncEachAppend
    } else {
        Durability::NoSync
    })
}

fn crash_ts(gen: u64, seq: u64) -> i64 {
    TS0 + ((gen * 100_000 + seq) * 10) as i64
}

/// Append `seq` of child `gen`: one to four records, derived from the two numbers alone, so
/// the parent knows what every acknowledged (or in-flight) append wrote.
fn crash_batch(gen: u64, seq: u64) -> Vec<Rec> {
    let h = mix((gen << 32) ^ seq);
    (0..1 + h % 4)
        .map(|i| {
            let hi = mix(h ^ (i + 1));
            let value = (!hi.is_multiple_of(6)).then(|| {
                let mut v = format!("g{gen} s{seq} i{i}|").into_bytes();
                v.extend((0..hi % 40).map(|j| b'a' + ((hi >> (j % 50)) as u8) % 26));
                v
            });
            Rec {
                key: format!("k{:02}", (hi >> 8) % CRASH_KEYS).into_bytes(),
                value,
                ts: crash_ts(gen, seq),
                headers: Vec::new(),
            }
        })
        .collect()
}

fn env_u64(name: &str) -> u64 {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} not set"))
        .parse()
        .unwrap_or_else(|_| panic!("{name} is not a number"))
}

/// The child: append a few batches, maybe roll, compact (forced or not, at a time that expires
/// some tombstones), forever, logging each acknowledged append. Inert in a normal test run.
#[test]
fn compaction_crash_child() {
    let Ok(dir) = std::env::var(ENV_DIR) else {
        return;
    };
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        std::process::exit(101);
    }));
    let gen = env_u64(ENV_GEN);
    let p = Partition::open(&dir, crash_cfg(env_u64(ENV_SYNC) == 1)).expect("child: open");
    let mut acks = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(std::env::var(ENV_ACKS).expect("acks path"))
        .expect("child: acks file");
    let mut rng = Rng::seeded(gen ^ 0xC0FFEE);
    let mut seq = 0;
    loop {
        for _ in 0..rng.range(1, 8) {
            let recs: Vec<Record> = crash_batch(gen, seq).iter().map(Rec::record).collect();
            let info = p.append(&recs).expect("child: append");
            // One write per line: a kill leaves whole lines.
            acks.write_all(
                format!("{} {} {seq}\n", info.base_offset.0, info.last_offset.0).as_bytes(),
            )
            .expect("child: ack");
            seq += 1;
        }
        if rng.range(0, 3) == 0 {
            p.roll().expect("child: roll");
        }
        let now = crash_ts(gen, seq) + rng.range(0, 2 * CRASH_RETENTION_MS) as i64;
        p.compact_at(now, rng.range(0, 1) == 0)
            .expect("child: compact");
    }
}

/// `(base, last, seq)` of each whole line of an acks file.
fn read_acks(path: &Path) -> Vec<(u64, u64, u64)> {
    let text = fs::read_to_string(path).unwrap_or_default();
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    complete
        .lines()
        .map(|line| {
            let f: Vec<u64> = line.split(' ').map(|x| x.parse().unwrap()).collect();
            assert_eq!(f.len(), 3, "bad ack line {line:?}");
            (f[0], f[1], f[2])
        })
        .collect()
}

/// Run child `gen` on `dir` until it has acknowledged an append, plus `delay_ms`; SIGKILL it.
fn run_crash_child(dir: &Path, acks: &Path, gen: u64, sync: bool, delay_ms: u64, ctx: &str) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "compaction_crash_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ENV_DIR, dir)
        .env(ENV_ACKS, acks)
        .env(ENV_GEN, gen.to_string())
        .env(ENV_SYNC, u64::from(sync).to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn child");
    wait_for_first_ack(&mut child, acks);
    kill_after(child, Duration::from_millis(delay_ms), ctx);
}

/// Children append and compact on one directory and are killed at seeded random moments; after
/// each kill the directory must open, hold no swap leftovers, and agree with the model built
/// from the acknowledged appends (plus the append in flight, whole, if it made it).
#[test]
fn sigkill_during_compaction_keeps_every_key() {
    let _g = exclusive();
    let seed = std::env::var(ENV_SEED)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0xC0_4AC7_u64);
    let mut rng = Rng::seeded(seed);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("partition");
    let mut m = Model::default();
    let mut mid_swap = 0;
    let kills = 24;
    for gen in 0..kills {
        let sync = rng.range(0, 3) == 0;
        let delay = rng.range(0, 40);
        let ctx =
            format!("seed {seed} gen {gen} (sync {sync}, kill {delay} ms after the first ack)");
        let acks_path: PathBuf = tmp.path().join(format!("acks-{gen}"));
        run_crash_child(&dir, &acks_path, gen, sync, delay, &ctx);
        if !leftovers(&dir).is_empty() {
            mid_swap += 1;
        }
        let acks = read_acks(&acks_path);
        assert!(!acks.is_empty(), "{ctx}: child acknowledged nothing");
        for (i, &(base, last, seq)) in acks.iter().enumerate() {
            assert_eq!(seq, i as u64, "{ctx}");
            assert_eq!(base, m.end(), "{ctx}: ack {seq} not at the log end");
            let recs = crash_batch(gen, seq);
            assert_eq!(last - base + 1, recs.len() as u64, "{ctx}: ack {seq}");
            m.append(base, &recs);
        }
        let p = Partition::open(&dir, crash_cfg(sync))
            .unwrap_or_else(|e| panic!("{ctx}: open after kill: {e}"));
        assert_eq!(leftovers(&dir), Vec::<String>::new(), "{ctx}: after open");
        let end = p.log_end_offset().0;
        if end > m.end() {
            let recs = crash_batch(gen, acks.len() as u64);
            assert_eq!(end, m.end() + recs.len() as u64, "{ctx}: unexpected tail");
            m.append(m.end(), &recs);
        }
        // The child compacted at times this test does not track: any newest tombstone may go.
        m.compacting_at(FAR, 0);
        m.check_full(&p, &ctx);
        if rng.range(0, 1) == 0 {
            p.close().unwrap();
        } else {
            p.simulate_crash();
        }
    }
    eprintln!("{mid_swap} of {kills} kills left compaction files behind");
}

/// CRC-32C (Castagnoli, reflected), bitwise: the test does not share the crate's CRC.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn write_checkpoint(path: &Path, value: u64) {
    let mut buf = b"SLCK".to_vec();
    buf.extend_from_slice(&value.to_le_bytes());
    let crc = crc32c(&buf);
    buf.extend_from_slice(&crc.to_le_bytes());
    fs::write(path, buf).unwrap();
}

/// A segment's files; compaction's output also has a batch witness (`.batches`), segments
/// written by appends have none.
const EXTS: [&str; 4] = ["log", "index", "timeindex", "batches"];

/// Remove or rename a segment file that may not exist (a segment without a witness).
fn if_exists(r: std::io::Result<()>) {
    match r {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        r => r.unwrap(),
    }
}

fn with_suffix(path: PathBuf, suffix: &str) -> PathBuf {
    let mut s = path.into_os_string();
    s.push(suffix);
    s.into()
}

/// A log before and after one real single-pass compaction that rewrites two groups of small
/// segments, both ending in a removed batch (expired tombstones).
struct SwapFixture {
    _tmp: tempfile::TempDir,
    before: PathBuf,
    after: PathBuf,
    /// `[base, end)` of each group the compaction wrote, and the old bases it replaced.
    groups: Vec<(u64, u64, Vec<u64>)>,
    snap_before: Vec<(u64, Rec)>,
    snap_after: Vec<(u64, Rec)>,
}

fn swap_fixture() -> SwapFixture {
    let tmp = tempfile::tempdir().unwrap();
    let before = tmp.path().join("before");
    let after = tmp.path().join("after");
    let cfg = base_cfg(4096, compact_cfg());
    let p = Partition::open(&before, cfg.clone()).unwrap();
    let mut ts = TS0;
    for seg in 0..12 {
        for i in 0..6 {
            ts += 1;
            let key = format!("k{}", (seg * 3 + i) % 8);
            p.append(&[put(&key, &format!("v{seg}.{i}"), ts)]).unwrap();
        }
        // Segments 8 and 11 (the last of each group) end in a batch of tombstones.
        if seg == 8 || seg == 11 {
            p.append(&[del(&format!("k{seg}"), ts), del("gone", ts)])
                .unwrap();
        }
        p.roll().unwrap();
    }
    p.append(&[put("k1", "active", ts + 1), put("k1", "active2", ts + 2)])
        .unwrap();
    let snap_before = read_all(&p);
    p.close().unwrap();
    drop(p);
    copy_dir(&before, &after);
    let p = Partition::open(&after, cfg).unwrap();
    let old_bases: Vec<u64> = p.segment_base_offsets().iter().map(|o| o.0).collect();
    let sizes = sealed_sizes(&p);
    let report = p.compact_at(FAR, true).unwrap();
    assert_eq!(report.passes, 1, "{report:?}");
    let new_bases: Vec<u64> = p.segment_base_offsets().iter().map(|o| o.0).collect();
    let snap_after = read_all(&p);
    p.close().unwrap();
    drop(p);
    let groups: Vec<(u64, u64, Vec<u64>)> = new_bases
        .windows(2)
        .map(|w| {
            let olds = old_bases
                .iter()
                .copied()
                .filter(|b| w[0] <= *b && *b < w[1])
                .collect();
            (w[0], w[1], olds)
        })
        .collect();
    assert_eq!(
        groups.len(),
        2,
        "fixture groups {groups:?}, sizes {sizes:?}"
    );
    assert!(
        groups.iter().all(|g| g.2.len() > 1),
        "{groups:?}, sizes {sizes:?}"
    );
    for (_, end, _) in &groups {
        assert!(
            snap_after.iter().all(|(o, _)| *o != end - 1),
            "the fixture's groups must end in removed offsets"
        );
    }
    SwapFixture {
        _tmp: tmp,
        before,
        after,
        groups,
        snap_before,
        snap_after,
    }
}

/// How far the swap of one group got before the crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    /// `.cleaned` log half written, no index files, no manifest.
    PartialCleaned,
    /// Whole `.cleaned` files, no manifest.
    Cleaned,
    /// The manifest (commit point) is written.
    Manifest,
    /// The first old log has been renamed to `.deleted`.
    FirstOldDeleted,
    /// All old files renamed to `.deleted`.
    AllOldDeleted,
    /// The cleaned log has its final name; its indexes do not yet.
    LogRenamed,
    /// All cleaned files have their final names; the `.deleted` files are still there.
    AllRenamed,
    /// Only the manifest is left to remove.
    DeletedRemoved,
}

const STAGES: [Stage; 8] = [
    Stage::PartialCleaned,
    Stage::Cleaned,
    Stage::Manifest,
    Stage::FirstOldDeleted,
    Stage::AllOldDeleted,
    Stage::LogRenamed,
    Stage::AllRenamed,
    Stage::DeletedRemoved,
];

/// Build, in `dir`, the state of a process killed while swapping group `g` at `stage` (earlier
/// groups swapped, later ones untouched), as the open that ran the compaction left it: no
/// clean-shutdown marker; with or without a recovery point.
fn build_swap_state(fx: &SwapFixture, dir: &Path, g: usize, stage: Stage, keep_rp: bool) {
    copy_dir(&fx.before, dir);
    fs::remove_file(dir.join(".clean-shutdown")).unwrap();
    if !keep_rp {
        fs::remove_file(dir.join("recovery-point.checkpoint")).unwrap();
    }
    let new_file = |base: u64, ext: &str| segment_path(&fx.after, Offset(base), ext);
    let at = |base: u64, ext: &str| segment_path(dir, Offset(base), ext);
    for (base, _, olds) in &fx.groups[..g] {
        for old in olds {
            for ext in EXTS {
                if_exists(fs::remove_file(at(*old, ext)));
            }
        }
        for ext in EXTS {
            fs::copy(new_file(*base, ext), at(*base, ext)).unwrap();
        }
    }
    let (base, end, olds) = &fx.groups[g];
    let cleaned = |ext: &str| with_suffix(at(*base, ext), ".cleaned");
    let deleted = |old: u64, ext: &str| with_suffix(at(old, ext), ".deleted");
    if stage == Stage::PartialCleaned {
        let log = fs::read(new_file(*base, "log")).unwrap();
        fs::write(cleaned("log"), &log[..log.len() / 2]).unwrap();
        return;
    }
    for ext in EXTS {
        fs::copy(new_file(*base, ext), cleaned(ext)).unwrap();
    }
    if stage == Stage::Cleaned {
        return;
    }
    write_checkpoint(&segment_path(dir, Offset(*base), "swap"), *end);
    match stage {
        Stage::Manifest => return,
        Stage::FirstOldDeleted => {
            fs::rename(at(olds[0], "log"), deleted(olds[0], "log")).unwrap();
            return;
        }
        _ => {}
    }
    for old in olds {
        for ext in EXTS {
            if_exists(fs::rename(at(*old, ext), deleted(*old, ext)));
        }
    }
    let renamed: &[&str] = match stage {
        Stage::AllOldDeleted => &[],
        Stage::LogRenamed => &["log"],
        _ => &EXTS,
    };
    for ext in renamed {
        fs::rename(cleaned(ext), at(*base, ext)).unwrap();
    }
    if stage == Stage::DeletedRemoved {
        for old in olds {
            for ext in EXTS {
                if_exists(fs::remove_file(deleted(*old, ext)));
            }
        }
    }
}

/// Every intermediate state of the swap, for each of two groups, with and without a recovery
/// point (without one, open rescans every segment): open completes the swap once the manifest
/// exists and discards the cleaned files otherwise, leaving no leftovers; the records are the
/// old group's or the new group's, never a mix; every key keeps its newest record; and a
/// further compaction reaches the same records as the uninterrupted one.
#[test]
fn every_swap_state_opens_as_old_or_new() {
    let _g = shared();
    let fx = swap_fixture();
    let cfg = base_cfg(4096, compact_cfg());
    let tmp = tempfile::tempdir().unwrap();
    let latest_before = latest_of(&fx.snap_before);
    for g in 0..fx.groups.len() {
        for stage in STAGES {
            for keep_rp in [true, false] {
                let ctx = format!("group {g} stage {stage:?} recovery point kept {keep_rp}");
                let dir = tmp.path().join(format!("{g}-{stage:?}-{keep_rp}"));
                build_swap_state(&fx, &dir, g, stage, keep_rp);
                let p = Partition::open(&dir, cfg.clone())
                    .unwrap_or_else(|e| panic!("{ctx}: open: {e}"));
                assert_eq!(leftovers(&dir), Vec::<String>::new(), "{ctx}");
                let swapped = stage >= Stage::Manifest;
                let want: Vec<(u64, Rec)> = fx
                    .snap_before
                    .iter()
                    .filter(|(o, _)| {
                        let gi = fx.groups.iter().position(|(b, e, _)| b <= o && o < e);
                        !matches!(gi, Some(i) if i < g || (i == g && swapped))
                    })
                    .chain(fx.snap_after.iter().filter(|(o, _)| {
                        let gi = fx.groups.iter().position(|(b, e, _)| b <= o && o < e);
                        matches!(gi, Some(i) if i < g || (i == g && swapped))
                    }))
                    .cloned()
                    .collect::<BTreeMap<u64, Rec>>()
                    .into_iter()
                    .collect();
                let snap = read_all(&p);
                assert_eq!(snap, want, "{ctx}: records");
                assert_eq!(
                    p.log_end_offset(),
                    Offset(fx.snap_before.last().unwrap().0 + 1)
                );
                let latest = latest_of(&snap);
                for (k, (o, r)) in &latest_before {
                    match latest.get(k) {
                        Some((got, _)) => assert_eq!(got, o, "{ctx}: newest of {k:?}"),
                        None => assert!(r.value.is_none(), "{ctx}: {k:?} lost"),
                    }
                }
                check_reads(&p, &snap, &[TS0, TS0 + 30, TS0 + 1_000], &ctx);
                p.compact_at(FAR, true).unwrap();
                assert_eq!(read_all(&p), fx.snap_after, "{ctx}: compacted again");
                p.simulate_crash();
                let p = Partition::open(&dir, cfg.clone()).unwrap();
                assert_eq!(read_all(&p), fx.snap_after, "{ctx}: reopened");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 3. The rules one by one
// ---------------------------------------------------------------------------------------------

fn offsets(p: &Partition) -> Vec<u64> {
    read_all(p).into_iter().map(|(o, _)| o).collect()
}

fn log_bytes(p: &Partition, base: u64) -> Vec<u8> {
    fs::read(segment_path(p.dir(), Offset(base), "log")).unwrap()
}

#[test]
fn tombstones_expire_after_delete_retention_ms() {
    let _g = shared();
    let dir = tempfile::tempdir().unwrap();
    let cfg = base_cfg(1 << 20, compact_cfg().with_delete_retention_ms(1_000));
    let p = Partition::open(dir.path(), cfg.clone()).unwrap();
    p.append(&[put("a", "a1", 10_000), put("b", "b1", 10_000)])
        .unwrap();
    p.append(&[del("a", 20_000)]).unwrap();
    p.roll().unwrap();
    // 999 ms old: the tombstone stays; the value it deletes goes.
    let r = p.compact_at(20_999, false).unwrap();
    assert_eq!(
        (r.records_superseded, r.tombstones_removed),
        (1, 0),
        "{r:?}"
    );
    assert_eq!(offsets(&p), [1, 2]);
    assert_eq!(read_all(&p)[1].1.value, None);
    // 1001 ms old (compaction needs new dirty data to run again): the tombstone goes.
    p.append(&[put("c", "c1", 21_000)]).unwrap();
    p.roll().unwrap();
    let r = p.compact_at(21_001, false).unwrap();
    assert_eq!(
        (r.records_superseded, r.tombstones_removed),
        (0, 1),
        "{r:?}"
    );
    assert_eq!(offsets(&p), [1, 3]);
    // A tombstone in the active segment stays however old, and so does the value it
    // deletes, which is newest in the cleanable part.
    p.append(&[del("b", 0)]).unwrap();
    let r = p.compact_at(FAR, true).unwrap();
    assert_eq!(r.passes, 0, "{r:?}");
    assert_eq!(offsets(&p), [1, 3, 4]);
    // Sealed, it deletes the value and then goes itself, in one pass.
    p.roll().unwrap();
    let r = p.compact_at(FAR, false).unwrap();
    assert_eq!(
        (r.records_superseded, r.tombstones_removed),
        (1, 1),
        "{r:?}"
    );
    assert_eq!(offsets(&p), [3]);
    p.simulate_crash();
    let p = Partition::open(dir.path(), cfg).unwrap();
    assert_eq!(offsets(&p), [3]);
    assert_eq!(p.log_end_offset(), Offset(5));
    assert_eq!(
        p.append(&[put("d", "d1", 0)]).unwrap().base_offset,
        Offset(5)
    );
}

#[test]
fn min_compaction_lag_protects_young_segments() {
    let _g = shared();
    let dir = tempfile::tempdir().unwrap();
    let cfg = base_cfg(1 << 20, compact_cfg().with_min_compaction_lag_ms(1_000));
    let p = Partition::open(dir.path(), cfg).unwrap();
    // Segment A [0, 3): old. B [3, 6): one young record. C [6, 8): old. Active [8, ..).
    p.append(&[
        put("k", "1", 1_000),
        put("k", "2", 1_000),
        put("k", "3", 1_000),
    ])
    .unwrap();
    p.roll().unwrap();
    p.append(&[
        put("k", "4", 1_000),
        put("j", "1", 5_000),
        put("j", "2", 1_000),
    ])
    .unwrap();
    p.roll().unwrap();
    p.append(&[put("k", "5", 1_000), put("j", "3", 1_000)])
        .unwrap();
    p.roll().unwrap();
    p.append(&[put("k", "6", 1_000)]).unwrap();
    let (b, c) = (log_bytes(&p, 3), log_bytes(&p, 6));
    // At 5500 B's newest record is 500 ms old: only A is cleanable, and only records that A
    // itself supersedes go.
    let r = p.compact_at(5_500, true).unwrap();
    assert_eq!(r.cleaned_up_to, Offset(3), "{r:?}");
    assert_eq!(offsets(&p), [2, 3, 4, 5, 6, 7, 8]);
    assert_eq!((log_bytes(&p, 3), log_bytes(&p, 6)), (b.clone(), c.clone()));
    // At 5999 still too young; nothing is dirty below it, so no pass runs, forced or not.
    let r = p.compact_at(5_999, true).unwrap();
    assert_eq!((r.passes, r.cleaned_up_to), (0, Offset(3)), "{r:?}");
    assert_eq!((log_bytes(&p, 3), log_bytes(&p, 6)), (b, c));
    // At 6000 B is exactly the lag old: B and C are cleanable, the active segment is not.
    let r = p.compact_at(6_000, true).unwrap();
    assert_eq!(r.cleaned_up_to, Offset(8), "{r:?}");
    assert_eq!(offsets(&p), [6, 7, 8]);
}

#[test]
fn the_active_segment_is_never_compacted() {
    let _g = shared();
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), base_cfg(1 << 20, compact_cfg())).unwrap();
    for i in 0..5 {
        p.append(&[put("a", &i.to_string(), 0)]).unwrap();
    }
    p.append(&[del("b", 0)]).unwrap();
    let before = log_bytes(&p, 0);
    let r = p.compact_at(FAR, true).unwrap();
    assert_eq!(r, CompactionReport::default());
    assert_eq!(offsets(&p), [0, 1, 2, 3, 4, 5]);
    assert_eq!(log_bytes(&p, 0), before);
    // Once sealed it is; a newer record in the new active segment does not count.
    p.roll().unwrap();
    p.append(&[put("a", "new", 0)]).unwrap();
    let before = log_bytes(&p, 6);
    p.compact_at(FAR, true).unwrap();
    assert_eq!(offsets(&p), [4, 6]);
    assert_eq!(log_bytes(&p, 6), before);
}

/// `SyncEachAppend` with small segments, segment files closed and reopened all the time, and
/// tombstones kept forever.
fn sync_cfg() -> PartitionConfig {
    base_cfg(
        2048,
        compact_cfg()
            .with_map_bytes_max(1024)
            .with_delete_retention_ms(u64::MAX),
    )
    .with_durability(Durability::SyncEachAppend)
    // Segments are closed and reopened all the time, under the readers and the cleaner.
    .with_open_segments_max(2)
}

/// Under `SyncEachAppend` the high watermark is published by the fsync, and `roll` does not
/// publish it: after an append and a roll it still names the sealed segment and its size.
/// Compacting that segment must not leave readers a byte position into the new, smaller file;
/// and nothing at or above the watermark may be compacted.
#[test]
fn a_high_watermark_in_a_compacted_segment_still_reads() {
    let _g = shared();
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), sync_cfg()).unwrap();
    for i in 0..10 {
        p.append(&[put("a", &format!("value {i}"), 0)]).unwrap();
    }
    p.roll().unwrap();
    assert_eq!(p.high_watermark(), Offset(10));
    let r = p.compact_at(FAR, true).unwrap();
    assert_eq!(
        (r.cleaned_up_to, r.records_superseded),
        (Offset(10), 9),
        "{r:?}"
    );
    assert_eq!(offsets(&p), [9]);
    assert_eq!(first_record_from(&p, 0, 1 << 20), Some(9));
    assert_eq!(p.offset_for_timestamp(0).unwrap(), Some(Offset(9)));
    p.append(&[put("a", "after", 0)]).unwrap();
    assert_eq!(offsets(&p), [9, 10]);
    let r = p.compact_at(FAR, true).unwrap();
    assert_eq!((r.passes, r.cleaned_up_to), (0, Offset(10)), "{r:?}");
}

#[test]
fn dirty_ratio_threshold_decides_unless_forced() {
    let _g = shared();
    let dir = tempfile::tempdir().unwrap();
    let cfg = |ratio: f64| base_cfg(1 << 20, compact_cfg().with_min_cleanable_dirty_ratio(ratio));
    let p = Partition::open(dir.path(), cfg(0.5)).unwrap();
    for s in 0..4 {
        for i in 0..20 {
            p.append(&[put(&format!("k{}", i % 5), &format!("{s}.{i}"), 0)])
                .unwrap();
        }
        p.roll().unwrap();
    }
    let r = p.compact_at(FAR, false).unwrap();
    assert_eq!(r.passes, 1, "a never-compacted log is all dirty: {r:?}");
    let clean = r.cleaned_up_to;
    for i in 0..3 {
        p.append(&[put(&format!("n{i}"), "x", 0)]).unwrap();
    }
    p.roll().unwrap();
    let infos = p.segment_infos().unwrap();
    let sealed = &infos[..infos.len() - 1];
    let dirty: u64 = sealed
        .iter()
        .filter(|i| i.end_offset > clean)
        .map(|i| i.size_bytes)
        .sum();
    let total: u64 = sealed.iter().map(|i| i.size_bytes).sum();
    let ratio = dirty as f64 / total as f64;
    assert!(0.0 < ratio && ratio < 0.5, "{ratio}");
    p.close().unwrap();
    drop(p);

    // Just above the threshold's reach: no work unless forced.
    let p = Partition::open(dir.path(), cfg(ratio + 1e-9)).unwrap();
    let r = p.compact_at(FAR, false).unwrap();
    assert_eq!((r.passes, r.cleaned_up_to), (0, clean), "{r:?}");
    assert_eq!(p.segment_infos().unwrap(), infos);
    p.close().unwrap();
    drop(p);
    // At the threshold: work.
    let p = Partition::open(dir.path(), cfg(ratio)).unwrap();
    let r = p.compact_at(FAR, false).unwrap();
    assert_eq!(
        (r.passes, r.cleaned_up_to),
        (1, p.log_end_offset()),
        "{r:?}"
    );
    p.close().unwrap();
    drop(p);
    // Forced: work whatever the ratio.
    let p = Partition::open(dir.path(), cfg(1.0)).unwrap();
    p.append(&[put("k0", "last", 0)]).unwrap();
    p.roll().unwrap();
    assert_eq!(p.compact_at(FAR, false).unwrap().passes, 0);
    assert_eq!(p.compact_at(FAR, true).unwrap().passes, 1);
    let latest = latest_of(&read_all(&p));
    assert_eq!(latest.len(), 8);
    assert_eq!(
        latest[b"k0".as_slice()].1.value.as_deref(),
        Some(b"last".as_slice())
    );
}

/// A log of `n` records over `keys` keys (one tombstone in seven), timestamps rising by 1 ms.
fn fill(p: &Partition, n: u64, keys: u64, m: &mut Model) {
    for i in 0..n {
        let h = mix(i);
        let key = format!("key-{:04}", h % keys);
        let rec = Rec {
            key: key.into_bytes(),
            value: (!h.is_multiple_of(7)).then(|| format!("v{i}").into_bytes()),
            ts: TS0 + i as i64,
            headers: Vec::new(),
        };
        let info = p.append(&[rec.record()]).unwrap();
        m.append(info.base_offset.0, &[rec]);
    }
}

#[test]
fn a_key_map_smaller_than_the_key_space_takes_passes_to_the_same_result() {
    let _g = shared();
    let now = TS0 + 600 + 300;
    let run = |map_bytes_max: usize| {
        let dir = tempfile::tempdir().unwrap();
        let cfg = base_cfg(
            2048,
            compact_cfg()
                .with_map_bytes_max(map_bytes_max)
                .with_delete_retention_ms(500),
        );
        let p = Partition::open(dir.path(), cfg).unwrap();
        let mut m = Model::default();
        fill(&p, 600, 80, &mut m);
        p.roll().unwrap();
        m.compacting_at(now, 500);
        let r = p.compact_at(now, false).unwrap();
        m.check_full(&p, &format!("map {map_bytes_max}"));
        (dir, r, read_all(&p))
    };
    let (_d1, small, small_records) = run(1024);
    let (_d2, big, big_records) = run(64 << 20);
    assert!(small.passes >= 4, "{small:?}");
    assert_eq!(big.passes, 1, "{big:?}");
    assert_eq!(small.cleaned_up_to, big.cleaned_up_to);
    assert!(small.tombstones_removed > 0, "{small:?}");
    assert_eq!(small_records, big_records);
}

#[test]
fn rewritten_batches_keep_their_header_fields() {
    let _g = shared();
    let dir = tempfile::tempdir().unwrap();
    let cfg = base_cfg(1 << 20, compact_cfg());
    let p = Partition::open(dir.path(), cfg.clone()).unwrap();
    let meta = |i: i64| {
        BatchMeta::default()
            .with_leader_epoch(3 + i as i32)
            .with_producer(1_000 + i, i as i16, 10 * i as i32)
    };
    // Batches 0-4 lose their first and last records, batch 5 goes whole, batch 6 stays whole.
    for i in 0..5 {
        let u = format!("u{i}");
        p.append_with_meta(
            &[
                put("a", "x", 100 + i),
                put(&u, "y", 200 + i),
                put("a", "z", 300 + i),
            ],
            &meta(i),
        )
        .unwrap();
    }
    p.append_with_meta(&[put("b", "1", 5), put("b", "2", 6)], &meta(5))
        .unwrap();
    p.append_with_meta(&[put("a", "last", 7), put("b", "last", 8)], &meta(6))
        .unwrap();
    p.roll().unwrap();
    let headers = |p: &Partition| -> Vec<seglog::BatchHeader> {
        p.read(Offset(0), 1 << 20)
            .unwrap()
            .batches()
            .iter()
            .map(|b| *b.header())
            .collect()
    };
    let original = headers(&p);
    assert_eq!(original.len(), 7);
    p.compact_at(FAR, true).unwrap();
    let check = |p: &Partition, ctx: &str| {
        let now = headers(p);
        let kept: Vec<usize> = vec![0, 1, 2, 3, 4, 6];
        assert_eq!(now.len(), kept.len(), "{ctx}");
        for (h, &i) in now.iter().zip(&kept) {
            let o = &original[i];
            // Kafka has no "compacted" bit: a rewritten batch keeps its attributes.
            assert_eq!(h.attributes, o.attributes, "{ctx}: batch {i}");
            assert_eq!(
                (h.base_offset, h.last_offset_delta, h.partition_leader_epoch),
                (o.base_offset, o.last_offset_delta, o.partition_leader_epoch),
                "{ctx}: batch {i}"
            );
            assert_eq!(
                (h.producer_id, h.producer_epoch, h.base_sequence),
                (o.producer_id, o.producer_epoch, o.base_sequence),
                "{ctx}: batch {i}"
            );
            let m = meta(i as i64);
            assert_eq!(
                (
                    h.partition_leader_epoch,
                    h.producer_id,
                    h.producer_epoch,
                    h.base_sequence
                ),
                (
                    m.leader_epoch,
                    m.producer_id,
                    m.producer_epoch,
                    m.base_sequence
                )
            );
        }
        for (h, i) in now.iter().zip(0..5) {
            // Only the middle record is left; the original timestamps stay as its bounds (and
            // as the delta base, so the record keeps its bytes).
            assert_eq!(h.record_count, 1, "{ctx}");
            assert_eq!(
                (h.base_timestamp, h.max_timestamp),
                (100 + i, 300 + i),
                "{ctx}"
            );
        }
        let middle: Vec<i64> = p
            .read(Offset(0), 1 << 20)
            .unwrap()
            .batches()
            .iter()
            .take(5)
            .map(|b| b.records().next().unwrap().unwrap().timestamp_ms)
            .collect();
        assert_eq!(middle, [200, 201, 202, 203, 204], "{ctx}");
        assert_eq!(now[5].record_count, 2, "{ctx}");
        let recs: Vec<u64> = offsets(p);
        assert_eq!(recs, [1, 4, 7, 10, 13, 17, 18], "{ctx}");
        // A read at a batch's removed last offset goes on to the next record.
        assert_eq!(first_record_from(p, 2, 1), Some(4), "{ctx}");
        assert_eq!(first_record_from(p, 15, 1 << 20), Some(17), "{ctx}");
    };
    check(&p, "compacted");
    p.close().unwrap();
    drop(p);
    let p = Partition::open(dir.path(), cfg.clone()).unwrap();
    check(&p, "reopened");
    p.simulate_crash();
    fs::remove_file(dir.path().join("recovery-point.checkpoint")).unwrap();
    let p = Partition::open(dir.path(), cfg).unwrap();
    assert!(!p.recovery_report().clean_shutdown);
    check(&p, "recovered by a full scan");
}

#[test]
fn cleanup_policies_decide_between_retention_and_compaction() {
    let _g = shared();
    for policy in [CleanupPolicy::Compact, CleanupPolicy::CompactAndDelete] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = base_cfg(1 << 20, compact_cfg())
            .with_cleanup_policy(policy)
            .with_retention_ms(Some(1_000))
            .with_retention_bytes(Some(100));
        let p = Partition::open(dir.path(), cfg).unwrap();
        p.append(&[put("k1", "a", 1_000), put("k1", "b", 1_000)])
            .unwrap();
        p.roll().unwrap();
        p.append(&[put("k2", "a", 1_000)]).unwrap();
        p.roll().unwrap();
        p.append(&[put("k3", "a", FAR)]).unwrap();
        assert!(matches!(
            p.append(&[put("k4", "a", 0), Record::new("no key")]),
            Err(Error::MissingKey { index: 1 })
        ));
        assert_eq!(
            p.log_end_offset(),
            Offset(4),
            "{policy:?}: a refused batch is not written"
        );
        let plan = p.apply_retention_at(1_000_000).unwrap();
        if policy == CleanupPolicy::Compact {
            assert_eq!(plan.delete_count, 0, "{policy:?}: {plan:?}");
            assert_eq!(p.log_start_offset(), Offset(0));
            assert_eq!(p.segment_count(), 3);
            p.compact_at(FAR, false).unwrap();
            assert_eq!(offsets(&p), [1, 2, 3], "{policy:?}");
        } else {
            assert_eq!(plan.delete_count, 2, "{policy:?}: {plan:?}");
            assert_eq!(p.log_start_offset(), Offset(3));
            p.roll().unwrap();
            p.append(&[put("k3", "b", FAR)]).unwrap();
            p.roll().unwrap();
            p.append(&[put("k3", "c", FAR)]).unwrap();
            p.compact_at(FAR, false).unwrap();
            assert_eq!(offsets(&p), [4, 5], "{policy:?}");
        }
    }
    // Delete: keys are optional and compaction only runs when forced.
    let dir = tempfile::tempdir().unwrap();
    let cfg = base_cfg(1 << 20, compact_cfg()).with_cleanup_policy(CleanupPolicy::Delete);
    let p = Partition::open(dir.path(), cfg).unwrap();
    p.append(&[put("k", "a", 0), put("k", "b", 0), Record::new("no key")])
        .unwrap();
    p.roll().unwrap();
    p.append(&[put("x", "a", 0)]).unwrap();
    let r = p.compact().unwrap();
    assert_eq!(r.passes, 0, "{r:?}");
    assert_eq!(p.compact_at(FAR, false).unwrap().passes, 0);
    let p_off = |p: &Partition| -> Vec<u64> {
        let mut out = Vec::new();
        let mut next = Offset(0);
        while next < p.high_watermark() {
            let r = p.read(next, 1 << 20).unwrap();
            out.extend(r.records().map(|r| r.unwrap().offset.0));
            next = r.next_offset();
        }
        out
    };
    assert_eq!(p_off(&p), [0, 1, 2, 3]);
    assert_eq!(p.compact_at(FAR, true).unwrap().passes, 1);
    assert_eq!(p_off(&p), [1, 2, 3], "forced: keyless records are kept");
}

#[test]
fn readers_holding_batches_from_before_a_compaction_still_read_them() {
    let _g = shared();
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), base_cfg(2048, compact_cfg())).unwrap();
    let mut m = Model::default();
    fill(&p, 300, 10, &mut m);
    p.roll().unwrap();
    let mut held: Vec<ReadBatches> = Vec::new();
    let mut next = Offset(0);
    while next < p.high_watermark() {
        let r = p.read(next, 700).unwrap();
        next = r.next_offset();
        held.push(r);
    }
    let flatten = |held: &[ReadBatches]| -> Vec<(u64, Rec)> {
        held.iter()
            .flat_map(|r| r.records().map(|r| r.unwrap()))
            .map(|r| (r.offset.0, Rec::of(&r)))
            .collect()
    };
    let before = flatten(&held);
    assert_eq!(before.len(), 300);
    let old_bases = p.segment_base_offsets();
    p.compact_at(FAR, true).unwrap();
    fill(&p, 5, 10, &mut m);
    p.roll().unwrap();
    p.compact_at(FAR, true).unwrap();
    m.compacting_at(FAR, 0);
    m.check(&p, "compacted twice");
    let gone = old_bases
        .iter()
        .filter(|b| !segment_path(dir.path(), **b, "log").exists())
        .count();
    assert!(gone > 0, "compaction removed no old segment file");
    assert_eq!(flatten(&held), before);
    for r in &held {
        for b in r.batches() {
            seglog::Batch::decode(b.as_bytes().clone()).unwrap();
        }
    }
}

/// The identity of a record written by `concurrent_appends_reads_and_compaction`.
fn conc_batch(t: u64, seq: u64) -> Vec<Rec> {
    let h = mix((t << 40) ^ seq);
    (0..1 + h % 3)
        .map(|i| {
            let hi = mix(h ^ (i + 7));
            Rec {
                key: format!("k{}", hi % 16).into_bytes(),
                value: (!hi.is_multiple_of(8)).then(|| format!("t{t} s{seq} i{i}").into_bytes()),
                ts: TS0 + seq as i64,
                headers: vec![(b"id".to_vec(), Some(format!("{t} {seq} {i}").into_bytes()))],
            }
        })
        .collect()
}

fn conc_identify(r: &Rec) -> Rec {
    let id = r.headers[0].1.as_ref().expect("id header");
    let f: Vec<u64> = std::str::from_utf8(id)
        .unwrap()
        .split(' ')
        .map(|x| x.parse().unwrap())
        .collect();
    conc_batch(f[0], f[1])[f[2] as usize].clone()
}

/// Two appenders (`SyncEachAppend`, so the high watermark trails the written log), two readers
/// and a cleaner compacting in a loop: every read returns records as written, in increasing
/// offsets; a reader that scans up to the high watermark sees, for every key, at least the
/// newest record acknowledged before its scan began; each compaction ends at or below the high
/// watermark; at the end the log agrees with the model.
#[test]
fn concurrent_appends_reads_and_compaction() {
    let _g = shared();
    const PER_THREAD: u64 = 250;
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), sync_cfg()).unwrap();
    let acked: Mutex<Model> = Mutex::new(Model::default());
    let done = AtomicBool::new(false);
    let (scans, passes) = std::thread::scope(|s| {
        let appenders: Vec<_> = (0..2u64)
            .map(|t| {
                let (p, acked) = (&p, &acked);
                s.spawn(move || {
                    for seq in 0..PER_THREAD {
                        let recs = conc_batch(t, seq);
                        let batch: Vec<Record> = recs.iter().map(Rec::record).collect();
                        let info = p.append(&batch).unwrap();
                        acked.lock().unwrap().append(info.base_offset.0, &recs);
                    }
                })
            })
            .collect();
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (p, acked, done) = (&p, &acked, &done);
                s.spawn(move || {
                    let mut scans = 0;
                    while !done.load(Ordering::Acquire) {
                        let must_see: HashMap<Vec<u8>, u64> = acked.lock().unwrap().latest.clone();
                        let mut seen: HashMap<Vec<u8>, u64> = HashMap::new();
                        let mut next = Offset(0);
                        let mut last = None;
                        while next < p.high_watermark() {
                            let rb = p.read(next, 1024).unwrap();
                            if rb.is_empty() {
                                break;
                            }
                            for r in rb.records() {
                                let r = r.unwrap();
                                assert!(last < Some(r.offset.0), "offsets not increasing");
                                last = Some(r.offset.0);
                                let rec = Rec::of(&r);
                                assert_eq!(conc_identify(&rec), rec, "at {:?}", r.offset);
                                seen.insert(rec.key, r.offset.0);
                            }
                            next = rb.next_offset();
                        }
                        for (k, o) in &must_see {
                            assert!(
                                seen.get(k).is_some_and(|s| s >= o),
                                "scan missed key {k:?}: newest acknowledged at {o}, seen {:?}",
                                seen.get(k)
                            );
                        }
                        scans += 1;
                    }
                    scans
                })
            })
            .collect();
        let cleaner = {
            let (p, done) = (&p, &done);
            s.spawn(move || {
                let mut passes = 0;
                while !done.load(Ordering::Acquire) {
                    let r = p.compact_at(FAR, true).unwrap();
                    assert!(r.cleaned_up_to <= p.high_watermark(), "{r:?}");
                    passes += r.passes;
                }
                passes
            })
        };
        for a in appenders {
            a.join().unwrap();
        }
        done.store(true, Ordering::Release);
        let scans: usize = readers.into_iter().map(|r| r.join().unwrap()).sum();
        (scans, cleaner.join().unwrap())
    });
    eprintln!("{scans} reader scans and {passes} compaction passes ran alongside the appends");
    p.roll().unwrap();
    let r = p.compact_at(FAR, true).unwrap();
    assert_eq!(r.cleaned_up_to, p.log_end_offset(), "{r:?}");
    let m = acked.into_inner().unwrap();
    m.check_full(&p, "after the race");
    let bases = p.segment_base_offsets();
    drop(p);
    let p = Partition::open(dir.path(), sync_cfg()).unwrap();
    assert_eq!(p.segment_base_offsets(), bases);
    m.check(&p, "reopened");
}

#[test]
fn a_read_at_a_removed_offset_returns_the_next_existing_record() {
    // `b:1` (offset 1) is superseded by `b:2` (offset 2); the batch [a:1, b:1] keeps its
    // offset range 0..=1 after compaction, but holds only offset 0. A read at offset 1 must
    // skip it and return offset 2 first, whatever `max_bytes` is.
    let dir = tempfile::tempdir().unwrap();
    let cfg = PartitionConfig::default()
        .with_durability(Durability::NoSync)
        .with_cleanup_policy(CleanupPolicy::Compact);
    let p = Partition::open(dir.path(), cfg).unwrap();
    p.append(&[
        Record::new("1").with_key("a").with_timestamp(1),
        Record::new("1").with_key("b").with_timestamp(1),
    ])
    .unwrap();
    p.roll().unwrap();
    p.append(&[Record::new("2").with_key("b").with_timestamp(1)])
        .unwrap();
    p.roll().unwrap();
    p.compact_at(i64::MAX / 2, true).unwrap();
    for max_bytes in [1, 1 << 20] {
        let r = p.read(Offset(1), max_bytes).unwrap();
        let first = r.records().next().expect("a record").unwrap();
        assert_eq!(first.offset, Offset(2), "max_bytes {max_bytes}");
        assert_eq!(first.value.as_deref(), Some(&b"2"[..]));
    }
}
