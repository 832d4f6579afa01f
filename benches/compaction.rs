//! Criterion benches for keyed compaction: throughput in MB/s of dirty log processed, and the
//! cost of a compaction running in another thread to appends (latency) and reads (throughput),
//! each measured against the same partition with no compaction running.
//!
//! Besides criterion's numbers, `append_latency_during_compaction` prints the latency
//! distribution of single appends (p50, p99, p99.9, max) idle and under a cleaner that never
//! stops: a compaction only takes the append lock to swap a segment list, so the worst case
//! should stay near the idle one. Partitions use `Durability::NoSync` (the cost of seglog
//! itself; fsyncs of the cleaner still happen).

use std::hint::black_box;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use seglog::{CleanupPolicy, CompactionConfig, Durability, Partition, PartitionConfig, Record};

const TS: i64 = 1_700_000_000_000;
/// Compaction time past every record: nothing is protected by lag.
const LATER: i64 = TS + 1_000_000_000;

fn config(segment_bytes: u64, map_bytes_max: usize) -> PartitionConfig {
    PartitionConfig::default()
        .with_durability(Durability::NoSync)
        .with_segment_bytes(segment_bytes)
        .with_segment_ms(None)
        .with_cleanup_policy(CleanupPolicy::Compact)
        .with_compaction(
            CompactionConfig::default()
                .with_min_cleanable_dirty_ratio(0.0)
                .with_delete_retention_ms(0)
                .with_map_bytes_max(map_bytes_max),
        )
}

fn record(key: u64, value_len: usize) -> Record {
    Record::new(vec![b'v'; value_len])
        .with_key(format!("key-{key:010}"))
        .with_timestamp(TS)
}

/// Append `n` records of 100 B in batches of 100, key `i % keys`, then roll.
fn fill(p: &Partition, n: u64, keys: u64) {
    for chunk in 0..n / 100 {
        let batch: Vec<Record> = (0..100)
            .map(|i| record((chunk * 100 + i) % keys, 100))
            .collect();
        p.append(&batch).unwrap();
    }
    p.roll().unwrap();
}

fn log_bytes(p: &Partition) -> u64 {
    p.segment_infos()
        .unwrap()
        .iter()
        .map(|s| s.size_bytes)
        .sum()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// One forced compaction of a never-compacted ~16 MiB log, timed alone (a fresh copy of the
/// log is made and opened untimed before each). Throughput is the dirty bytes processed.
fn throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("compaction");
    let records = 120_000u64;
    // (name, distinct keys, key-map budget)
    let cases = [
        ("1k_keys_one_pass", 1_000u64, 64usize << 20),
        ("all_keys_unique_one_pass", records, 64 << 20),
        ("all_keys_unique_2MiB_map", records, 2 << 20),
    ];
    for (name, keys, map_bytes) in cases {
        let template = tempfile::tempdir().unwrap();
        let cfg = config(4 << 20, map_bytes);
        let dirty = {
            let p = Partition::open(template.path(), cfg.clone()).unwrap();
            fill(&p, records, keys);
            let bytes = log_bytes(&p);
            p.close().unwrap();
            bytes
        };
        group.throughput(Throughput::Bytes(dirty));
        let mut printed = false;
        group.bench_function(BenchmarkId::new("throughput", name), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let work = tempfile::tempdir().unwrap();
                    copy_dir(template.path(), work.path());
                    let p = Partition::open(work.path(), cfg.clone()).unwrap();
                    let start = Instant::now();
                    let report = p.compact_at(LATER, true).unwrap();
                    total += start.elapsed();
                    assert_eq!(report.dirty_bytes, dirty);
                    if !std::mem::replace(&mut printed, true) {
                        println!(
                            "compaction/throughput/{name}: {dirty} dirty bytes, {} passes, \
                             {} bytes written",
                            report.passes, report.bytes_written
                        );
                    }
                    black_box(report);
                }
                total
            })
        });
    }
    group.finish();
}

/// Keys of the live set of `live_partition`.
const LIVE_KEYS: u64 = 60_000;

/// A ~8 MiB log of `LIVE_KEYS` keys in 1 MiB segments: every compaction rewrites all of it.
fn live_partition() -> (tempfile::TempDir, Partition) {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), config(1 << 20, 64 << 20)).unwrap();
    fill(&p, LIVE_KEYS, LIVE_KEYS);
    p.compact_at(LATER, true).unwrap();
    (dir, p)
}

/// What runs beside the measured operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Beside {
    /// Nothing.
    Idle,
    /// A cleaner compacting whenever a segment has been sealed since its last pass; the
    /// measured appends make the dirty data.
    Cleaner,
    /// A cleaner that itself appends 1 MiB of updates, rolls and compacts, without pause, so
    /// that a compaction is always running even when the measured operation writes nothing.
    FedCleaner,
}

impl Beside {
    fn label(self) -> &'static str {
        match self {
            Beside::Idle => "idle",
            Beside::Cleaner | Beside::FedCleaner => "while_compacting",
        }
    }
}

/// Runs `f` with `beside` going on in another thread. Returns `f`'s result and the passes
/// the cleaner ran.
fn with_cleaner<T>(p: &Partition, beside: Beside, f: impl FnOnce(&AtomicU64) -> T) -> (T, u64) {
    let stop = AtomicBool::new(false);
    let passes = AtomicU64::new(0);
    let out = std::thread::scope(|s| {
        if beside != Beside::Idle {
            s.spawn(|| {
                let mut key = 0u64;
                while !stop.load(Ordering::Acquire) {
                    if beside == Beside::FedCleaner {
                        for _ in 0..80 {
                            let batch: Vec<Record> = (0..100)
                                .map(|_| {
                                    key += 7_919;
                                    record(key % LIVE_KEYS, 100)
                                })
                                .collect();
                            p.append(&batch).unwrap();
                        }
                        p.roll().unwrap();
                    }
                    let r = p.compact_at(LATER, true).unwrap();
                    passes.fetch_add(r.passes as u64, Ordering::Relaxed);
                    if r.passes == 0 {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            });
        }
        let out = f(&passes);
        stop.store(true, Ordering::Release);
        out
    });
    (out, passes.into_inner())
}

fn append_and_read_while_compacting(c: &mut Criterion) {
    let mut next_key = 0u64;
    let mut group = c.benchmark_group("during_compaction");
    for (appends, reads) in [
        (Beside::Idle, Beside::Idle),
        (Beside::Cleaner, Beside::FedCleaner),
    ] {
        // A fresh log for each mode: idle appends would otherwise leave the busy run a
        // backlog.
        let (_dir, p) = live_partition();
        group.throughput(Throughput::Elements(1));
        let ((), passes) = with_cleaner(&p, appends, |_| {
            group.bench_function(BenchmarkId::new("append_1x100B", appends.label()), |b| {
                b.iter(|| {
                    next_key += 1;
                    p.append(&[record(next_key % LIVE_KEYS, 100)]).unwrap()
                })
            });
        });
        if appends != Beside::Idle {
            println!("during_compaction/append: {passes} compaction passes ran alongside");
        }
        let scan_bytes = 4u64 << 20;
        group.throughput(Throughput::Bytes(scan_bytes));
        let ((), passes) = with_cleaner(&p, reads, |_| {
            group.bench_function(
                BenchmarkId::new("read_4MiB_in_1MiB_fetches", reads.label()),
                |b| {
                    b.iter(|| {
                        let mut next = p.log_start_offset();
                        let mut bytes = 0u64;
                        while bytes < scan_bytes {
                            let r = p.read(next, 1 << 20).unwrap();
                            if r.is_empty() {
                                next = p.log_start_offset();
                                continue;
                            }
                            for batch in r.batches() {
                                bytes += batch.encoded_len() as u64;
                                black_box(batch.records().count());
                            }
                            next = r.next_offset();
                        }
                        black_box(bytes)
                    })
                },
            );
        });
        if reads != Beside::Idle {
            println!("during_compaction/read: {passes} compaction passes ran alongside");
        }
    }
    group.finish();
}

/// Not a criterion measurement: the latency distribution of single appends, idle (200,000
/// appends) and while a cleaner compacts what they write (until it has run 5 passes), printed.
fn append_latency_during_compaction(_c: &mut Criterion) {
    for beside in [Beside::Idle, Beside::Cleaner] {
        let (_dir, p) = live_partition();
        let (mut lat, passes) = with_cleaner(&p, beside, |passes| {
            let mut lat = Vec::with_capacity(1 << 20);
            let deadline = Instant::now() + Duration::from_secs(20);
            for i in 0u64.. {
                let done = match beside {
                    Beside::Idle => i >= 200_000,
                    _ => passes.load(Ordering::Relaxed) >= 5 || Instant::now() > deadline,
                };
                if done {
                    break;
                }
                let rec = [record(i % LIVE_KEYS, 100)];
                let start = Instant::now();
                p.append(&rec).unwrap();
                lat.push(start.elapsed());
            }
            lat
        });
        lat.sort_unstable();
        let q = |f: f64| lat[((lat.len() - 1) as f64 * f) as usize];
        println!(
            "append latency {}: {} appends, p50 {:?} p99 {:?} p99.9 {:?} max {:?} \
             ({passes} compaction passes)",
            beside.label(),
            lat.len(),
            q(0.5),
            q(0.99),
            q(0.999),
            lat[lat.len() - 1],
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    targets = throughput, append_and_read_while_compacting, append_latency_during_compaction
}
criterion_main!(benches);
