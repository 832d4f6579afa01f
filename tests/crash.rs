//! Crash safety under `Durability::SyncEachAppend` with real processes killed by SIGKILL.
//!
//! The test binary re-executes itself as a child (`crash_child`, inert unless
//! `SEGLOG_CRASH_CHILD_DIR` is set) that appends self-describing batches forever from one or
//! several threads and logs every acknowledged append to a side file. The parent kills it at
//! a seeded random moment (during startup and recovery, or mid-append), reopens the directory
//! and checks: open succeeds, nothing corrupt is returned, offsets are dense, every batch is
//! whole and unique, each writer's batches form a gap-free prefix, every acknowledged record
//! is present with its exact content, and nothing a previous recovery kept is lost. The next
//! child continues on the same directory, so damage would accumulate across kills.
//! `SEGLOG_CRASH_SEED` sets the seed of the random choices (kill delays, thread counts, segment
//! sizes, batch shapes); where a kill lands still depends on scheduling.

mod support;
use support::{kill_after, mix, wait_for_first_ack, Rng};

use std::collections::{HashMap, HashSet};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use seglog::{Durability, Offset, Partition, PartitionConfig, Record};

const ENV_DIR: &str = "SEGLOG_CRASH_CHILD_DIR";
const ENV_ACKS: &str = "SEGLOG_CRASH_CHILD_ACKS";
const ENV_GEN: &str = "SEGLOG_CRASH_CHILD_GEN";
const ENV_THREADS: &str = "SEGLOG_CRASH_CHILD_THREADS";
const ENV_SEGMENT: &str = "SEGLOG_CRASH_CHILD_SEGMENT_BYTES";
const ENV_SEED: &str = "SEGLOG_CRASH_SEED";

const TS_BASE: i64 = 1_700_000_000_000;

/// Identifies a record: child generation, thread, the thread's append sequence number,
/// index within the batch and batch length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Id {
    gen: u64,
    tid: u64,
    seq: u64,
    i: u64,
    n: u64,
}

impl Id {
    fn batch(&self) -> (u64, u64, u64) {
        (self.gen, self.tid, self.seq)
    }

    fn key(&self) -> Vec<u8> {
        format!("t{}", self.tid).into_bytes()
    }

    fn timestamp(&self) -> i64 {
        TS_BASE + (self.gen * 1000 + self.i) as i64
    }

    /// Self-describing value: a parseable prefix and a deterministic filler of varied length.
    fn value(&self) -> Vec<u8> {
        let h = mix((self.gen << 40) ^ (self.tid << 32) ^ (self.seq << 8) ^ self.i);
        let len = (h % 151) as usize;
        let mut v = format!(
            "g{} t{} s{} i{}/{}|",
            self.gen, self.tid, self.seq, self.i, self.n
        )
        .into_bytes();
        v.extend((0..len).map(|j| b'a' + ((h >> (j % 57)) as u8).wrapping_add(j as u8) % 26));
        v
    }

    fn record(&self) -> Record {
        Record::new(self.value())
            .with_key(self.key())
            .with_timestamp(self.timestamp())
    }

    /// Parse the prefix of a value read back; `None` if it is not one we wrote.
    fn parse(value: &[u8]) -> Option<Id> {
        let bar = value.iter().position(|&b| b == b'|')?;
        let prefix = std::str::from_utf8(&value[..bar]).ok()?;
        let mut parts = prefix.split(' ');
        let mut field = |tag: char| -> Option<&str> { parts.next()?.strip_prefix(tag) };
        let gen = field('g')?.parse().ok()?;
        let tid = field('t')?.parse().ok()?;
        let seq = field('s')?.parse().ok()?;
        let (i, n) = field('i')?.split_once('/')?;
        Some(Id {
            gen,
            tid,
            seq,
            i: i.parse().ok()?,
            n: n.parse().ok()?,
        })
    }
}

fn config(segment_bytes: u64) -> PartitionConfig {
    PartitionConfig::default()
        .with_segment_bytes(segment_bytes)
        .with_index_interval_bytes(1024)
        .with_durability(Durability::SyncEachAppend)
}

fn env_u64(name: &str) -> u64 {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} not set"))
        .parse()
        .unwrap_or_else(|_| panic!("{name} is not a number"))
}

/// The child: append forever, logging each acknowledged append. Does nothing in a normal run.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(ENV_DIR) else {
        return;
    };
    // A failure in any thread must end the process, or the parent would only see its SIGKILL.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        std::process::exit(101);
    }));
    let acks_path = std::env::var(ENV_ACKS).expect("acks path");
    let gen = env_u64(ENV_GEN);
    let threads = env_u64(ENV_THREADS);
    let segment_bytes = env_u64(ENV_SEGMENT);

    let p = Partition::open(&dir, config(segment_bytes)).expect("child: open");
    let acks = Mutex::new(
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&acks_path)
            .expect("child: open acks file"),
    );
    std::thread::scope(|s| {
        for tid in 0..threads {
            let (p, acks) = (&p, &acks);
            s.spawn(move || {
                let mut rng = Rng::seeded(gen * 1000 + tid);
                for seq in 0.. {
                    let n = rng.range(1, 50);
                    let records: Vec<Record> = (0..n)
                        .map(|i| {
                            Id {
                                gen,
                                tid,
                                seq,
                                i,
                                n,
                            }
                            .record()
                        })
                        .collect();
                    let info = p.append(&records).expect("child: append");
                    assert_eq!(info.last_offset.0 - info.base_offset.0 + 1, n);
                    // One unbuffered write per line: a kill leaves whole lines.
                    let line = format!(
                        "{} {} {gen} {tid} {seq} {n}\n",
                        info.base_offset.0, info.last_offset.0
                    );
                    acks.lock()
                        .unwrap()
                        .write_all(line.as_bytes())
                        .expect("child: write ack");
                }
            });
        }
    });
}

/// One acknowledged append as the child logged it.
#[derive(Debug, Clone, Copy)]
struct Ack {
    base: u64,
    last: u64,
    gen: u64,
    tid: u64,
    seq: u64,
    n: u64,
}

fn read_acks(path: &Path) -> Vec<Ack> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut out = Vec::new();
    // Only newline-terminated lines are complete.
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    for line in complete.lines() {
        let f: Vec<u64> = line
            .split(' ')
            .map(|x| {
                x.parse()
                    .unwrap_or_else(|_| panic!("bad ack line {line:?}"))
            })
            .collect();
        assert_eq!(f.len(), 6, "bad ack line {line:?}");
        out.push(Ack {
            base: f[0],
            last: f[1],
            gen: f[2],
            tid: f[3],
            seq: f[4],
            n: f[5],
        });
    }
    out
}

/// How the parent chooses when to kill.
#[derive(Debug, Clone, Copy)]
enum KillAt {
    /// A delay after spawning: may land in process startup or in `open`'s recovery.
    AfterSpawn(u64),
    /// A delay after the first acknowledged append: lands mid-append.
    AfterFirstAck(u64),
}

/// Spawn a child for generation `gen`, kill it as `when` says, return its acknowledged appends.
fn run_child(
    dir: &Path,
    acks_path: &Path,
    gen: u64,
    threads: u64,
    segment_bytes: u64,
    when: KillAt,
    ctx: &str,
) -> Vec<Ack> {
    let exe = std::env::current_exe().expect("current_exe");
    let mut child = Command::new(exe)
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(ENV_DIR, dir)
        .env(ENV_ACKS, acks_path)
        .env(ENV_GEN, gen.to_string())
        .env(ENV_THREADS, threads.to_string())
        .env(ENV_SEGMENT, segment_bytes.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn child");
    let delay = match when {
        KillAt::AfterSpawn(ms) => ms,
        KillAt::AfterFirstAck(ms) => {
            wait_for_first_ack(&mut child, acks_path);
            ms
        }
    };
    kill_after(child, Duration::from_millis(delay), ctx);
    read_acks(acks_path)
}

/// Reopen after a kill and check everything; returns the ids by offset (log start is 0).
fn verify(
    dir: &Path,
    segment_bytes: u64,
    acked: &[Ack],
    previous: &[Id],
    ctx: &str,
) -> (Partition, Vec<Id>) {
    let p = Partition::open(dir, config(segment_bytes))
        .unwrap_or_else(|e| panic!("{ctx}: open after kill: {e}"));
    assert_eq!(p.log_start_offset(), Offset(0), "{ctx}");
    let end = p.log_end_offset().0;
    assert_eq!(
        p.high_watermark().0,
        end,
        "{ctx}: high watermark after open"
    );

    let mut ids: Vec<Id> = Vec::with_capacity(end as usize);
    let mut batches_seen = HashSet::new();
    // For each (gen, tid): the next seq expected in offset order.
    let mut next_seq: HashMap<(u64, u64), u64> = HashMap::new();
    let mut offset = 0;
    while offset < end {
        let rb = p
            .read(Offset(offset), 256 << 10)
            .unwrap_or_else(|e| panic!("{ctx}: read at {offset}: {e}"));
        assert!(
            !rb.is_empty(),
            "{ctx}: empty read at {offset} below end {end}"
        );
        for batch in rb.batches() {
            assert_eq!(batch.base_offset().0, offset, "{ctx}: offsets not dense");
            let mut first: Option<Id> = None;
            for (k, r) in batch.records().enumerate() {
                let r = r.unwrap_or_else(|e| panic!("{ctx}: corrupt record near {offset}: {e}"));
                assert_eq!(r.offset.0, offset, "{ctx}: offsets not dense");
                let value = r.value.as_deref().expect("no tombstones written");
                let id = Id::parse(value)
                    .unwrap_or_else(|| panic!("{ctx}: unknown value at {offset}: {value:?}"));
                assert_eq!(value, &id.value()[..], "{ctx}: value at {offset}");
                assert_eq!(
                    r.key.as_deref(),
                    Some(&id.key()[..]),
                    "{ctx}: key at {offset}"
                );
                assert_eq!(
                    r.timestamp_ms,
                    id.timestamp(),
                    "{ctx}: timestamp at {offset}"
                );
                assert_eq!(
                    id.i,
                    k as u64,
                    "{ctx}: batch at {} not whole",
                    batch.base_offset().0
                );
                if let Some(f) = first {
                    assert_eq!(
                        id.batch(),
                        f.batch(),
                        "{ctx}: batch mixes appends at {offset}"
                    );
                } else {
                    first = Some(id);
                }
                ids.push(id);
                offset += 1;
            }
            let f = first.unwrap_or_else(|| panic!("{ctx}: empty batch before {offset}"));
            assert_eq!(
                u64::from(batch.record_count()),
                f.n,
                "{ctx}: batch at {} is partial",
                batch.base_offset().0
            );
            assert_eq!(batch.last_offset().0 + 1, offset, "{ctx}");
            assert!(
                batches_seen.insert(f.batch()),
                "{ctx}: append {:?} stored twice",
                f.batch()
            );
            // A writer's appends are sequential: what survives is a gap-free prefix.
            let next = next_seq.entry((f.gen, f.tid)).or_insert(0);
            assert_eq!(
                f.seq, *next,
                "{ctx}: gen {} thread {} skips an append",
                f.gen, f.tid
            );
            *next += 1;
        }
        assert_eq!(rb.next_offset().0, offset, "{ctx}");
    }

    for a in acked {
        assert_eq!(a.last - a.base + 1, a.n, "{ctx}: ack {a:?}");
        assert!(
            a.last < end,
            "{ctx}: acknowledged {a:?} lost (log end {end})"
        );
        for o in a.base..=a.last {
            let want = Id {
                gen: a.gen,
                tid: a.tid,
                seq: a.seq,
                i: o - a.base,
                n: a.n,
            };
            assert_eq!(ids[o as usize], want, "{ctx}: acknowledged offset {o}");
        }
    }
    // What an earlier recovery kept had been synced by it: it must never change.
    assert!(
        ids.len() >= previous.len(),
        "{ctx}: log shrank below what recovery had kept"
    );
    assert!(
        ids[..previous.len()] == *previous,
        "{ctx}: recovered data changed"
    );
    (p, ids)
}

fn seed(default: u64) -> u64 {
    std::env::var(ENV_SEED)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// `kills` rounds of spawn, kill, verify on one directory, each child appending from
/// `min_threads..=max_threads` threads (more than one: concurrent appends share fsyncs).
/// The kill loops run one at a time: a child forked by one loop briefly holds copies of the
/// other loop's open descriptors (the partition's directory lock among them) until it execs,
/// which could make the other loop's reopen fail with `AlreadyOpen`.
static KILL_LOOPS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn kill_loop(name: &str, default_seed: u64, kills: u64, min_threads: u64, max_threads: u64) {
    let _one_at_a_time = KILL_LOOPS.lock().unwrap_or_else(|e| e.into_inner());
    let seed = seed(default_seed);
    let mut rng = Rng::seeded(seed);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("partition");
    let mut acked: Vec<Ack> = Vec::new();
    let mut ids: Vec<Id> = Vec::new();
    let mut kills_mid_append = 0;
    for gen in 0..kills {
        let threads = rng.range(min_threads, max_threads);
        let segment_bytes = [16 << 10, 32 << 10, 64 << 10][rng.range(0, 2) as usize];
        let when = if rng.range(0, 4) == 0 {
            KillAt::AfterSpawn(rng.range(1, 30))
        } else {
            KillAt::AfterFirstAck(rng.range(2, 50))
        };
        let ctx = format!("{name} seed {seed} round {gen} ({threads} threads, {segment_bytes} B segments, {when:?})");
        let acks_path: PathBuf = tmp.path().join(format!("acks-{gen}"));
        let new_acks = run_child(&dir, &acks_path, gen, threads, segment_bytes, when, &ctx);
        if !new_acks.is_empty() {
            kills_mid_append += 1;
        }
        acked.extend(new_acks);
        let (p, now) = verify(&dir, segment_bytes, &acked, &ids, &ctx);
        ids = now;
        // Leave the directory clean or unclean for the next child, alternately.
        if rng.range(0, 1) == 0 {
            p.close().unwrap_or_else(|e| panic!("{ctx}: close: {e}"));
        } else {
            p.simulate_crash();
        }
    }
    // The suite must actually have killed appenders, not just idle processes.
    assert!(
        kills_mid_append * 2 >= kills,
        "{name}: only {kills_mid_append} of {kills} kills hit appends"
    );
    assert!(!acked.is_empty());
}

#[test]
fn sigkill_single_writer() {
    kill_loop("single writer", 0x5EED_0001, 30, 1, 1);
}

#[test]
fn sigkill_concurrent_writers() {
    kill_loop("concurrent writers", 0x5EED_0002, 30, 2, 4);
}
