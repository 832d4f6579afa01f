//! Group commit under `Durability::SyncEachAppend`: 1, 8 and 64 threads each appending one
//! 100-byte record at a time to one partition, every append waiting for its fsync. Prints,
//! per thread count, the median over interleaved rounds of records/s, fsyncs/s, appends per
//! fsync and the ratio to one thread, and the one-thread append latency (median and p99).
//!
//! `cargo bench --bench group_commit -- [--secs S] [--rounds N] [--threads 1,8,64]`. The
//! partition lives in a temporary directory (set `TMPDIR` to pick the disk). Numbers are the
//! disk's as much as seglog's: compare ratios measured in one run, on a quiet machine.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use seglog::{Durability, Partition, PartitionConfig, Record};

const VALUE_LEN: usize = 100;

/// One run of `threads` appenders for `secs`.
#[derive(Debug, Clone, Copy, Default)]
struct Run {
    records_per_sec: f64,
    fsyncs_per_sec: f64,
    appends_per_fsync: f64,
    /// Process CPU time (user + system, every thread) per append, microseconds.
    cpu_us_per_append: f64,
    /// One-thread runs only: median and p99 append latency, microseconds.
    latency_p50_us: f64,
    latency_p99_us: f64,
}

fn run(threads: usize, secs: f64) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let config = PartitionConfig::default()
        .with_durability(Durability::SyncEachAppend)
        .with_retention_ms(None);
    let p = Arc::new(Partition::open(dir.path(), config).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let before = p.group_commit_stats();
    let cpu_before = cpu_secs();
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (p, stop, count) = (p.clone(), stop.clone(), count.clone());
            std::thread::spawn(move || {
                let rec = [Record::new(vec![b'g'; VALUE_LEN])];
                let mut latencies = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    p.append(&rec).unwrap();
                    if threads == 1 {
                        latencies.push(t.elapsed());
                    }
                    count.fetch_add(1, Ordering::Relaxed);
                }
                latencies
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    let mut latencies: Vec<Duration> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = cpu_secs() - cpu_before;
    let after = p.group_commit_stats();
    let fsyncs = (after.fsyncs - before.fsyncs) as f64;
    let appends = (after.appends - before.appends) as f64;
    latencies.sort();
    let pct = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1e6)
    };
    let records = count.load(Ordering::Relaxed) as f64;
    Run {
        records_per_sec: records / elapsed,
        cpu_us_per_append: cpu * 1e6 / records.max(1.0),
        fsyncs_per_sec: fsyncs / elapsed,
        appends_per_fsync: if fsyncs > 0.0 { appends / fsyncs } else { 0.0 },
        latency_p50_us: pct(0.5),
        latency_p99_us: pct(0.99),
    }
}

/// CPU time of this process so far (user + system, all threads), from `/proc/self/stat`
/// (clock ticks of 10 ms: fine over runs of a second or more); 0 where it does not exist.
fn cpu_secs() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which ends with the last ')'): utime and stime are the
    // 12th and 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let ticks: u64 = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse::<u64>().ok())
        .sum();
    ticks as f64 / 100.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let secs: f64 = arg("--secs").map_or(2.0, |s| s.parse().unwrap());
    let rounds: usize = arg("--rounds").map_or(3, |s| s.parse().unwrap());
    let threads: Vec<usize> = arg("--threads").map_or(vec![1, 8, 64], |s| {
        s.split(',').map(|t| t.parse().unwrap()).collect()
    });
    // Interleaved: every thread count once per round, so a noisy moment hits all of them.
    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); threads.len()];
    for round in 0..rounds {
        for (i, &t) in threads.iter().enumerate() {
            let r = run(t, secs);
            eprintln!(
                "round {round} threads {t:>3}: {:>9.0} records/s {:>7.0} fsyncs/s {:>6.2} appends/fsync {:>6.1} CPU us/append",
                r.records_per_sec, r.fsyncs_per_sec, r.appends_per_fsync, r.cpu_us_per_append
            );
            runs[i].push(r);
        }
    }
    let med = |i: usize, f: fn(&Run) -> f64| median(runs[i].iter().map(f).collect());
    let base = med(0, |r| r.records_per_sec);
    println!(
        "\ngroup commit, SyncEachAppend, one {VALUE_LEN} B record per append, medians of {rounds} rounds of {secs} s"
    );
    println!(
        "| threads | records/s | fsyncs/s | appends/fsync | CPU us/append | vs {} thread(s) |",
        threads[0]
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    for (i, &t) in threads.iter().enumerate() {
        let rate = med(i, |r| r.records_per_sec);
        println!(
            "| {t} | {rate:.0} | {:.0} | {:.2} | {:.1} | {:.2}x |",
            med(i, |r| r.fsyncs_per_sec),
            med(i, |r| r.appends_per_fsync),
            med(i, |r| r.cpu_us_per_append),
            rate / base
        );
    }
    if let Some(i) = threads.iter().position(|&t| t == 1) {
        println!(
            "\none thread: append latency median {:.0} us, p99 {:.0} us",
            med(i, |r| r.latency_p50_us),
            med(i, |r| r.latency_p99_us)
        );
    }
}
