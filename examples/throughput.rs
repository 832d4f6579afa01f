//! Throughput of seglog against the machine's own limit and against the closest Rust peer,
//! measured in the same run.
//!
//! Every seglog figure is printed beside a plain sequential `write`/`read` (or `write` +
//! `fdatasync`) of the same bytes in the same chunk sizes, and beside commitlog 0.2.0 (an
//! append-only commit log with memory-mapped indexes and a CRC per message) doing the same
//! work, with both ratios. Each measurement is the median of several rounds in which plain,
//! seglog and commitlog take turns going first, so that none always meets a colder page cache.
//!
//! `cargo run --release --example throughput` (add `-- --quick` for a smaller run,
//! `-- --group-only` for the group-commit rows alone).

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use commitlog::message::{MessageBuf, MessageSet};
use commitlog::{CommitLog, LogOptions, ReadLimit};
use seglog::{Durability, Offset, Partition, PartitionConfig, Record};

/// One shape of data: `records` records of `value_len` bytes, appended `batch` at a time.
#[derive(Clone, Copy)]
struct Shape {
    name: &'static str,
    value_len: usize,
    records: usize,
    batch: usize,
}

impl Shape {
    fn appends(&self) -> usize {
        self.records / self.batch
    }

    fn batch(&self) -> Vec<Record> {
        (0..self.batch)
            .map(|i| {
                Record::new(vec![b'v'; self.value_len]).with_timestamp(1_700_000_000_000 + i as i64)
            })
            .collect()
    }

    /// Encoded bytes of one batch, exactly as seglog stores it: the plain write's chunk.
    fn encoded(&self) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let p = Partition::open(dir.path(), config(Durability::NoSync)).unwrap();
        p.append(&self.batch()).unwrap();
        let read = p.read(Offset(0), 1 << 20).unwrap();
        read.batches()[0].as_bytes().to_vec()
    }

    fn megabytes(&self) -> f64 {
        (self.encoded().len() * self.appends()) as f64 / 1e6
    }
}

fn config(durability: Durability) -> PartitionConfig {
    PartitionConfig::default()
        .with_durability(durability)
        .with_retention_ms(None)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn timed(f: impl FnOnce()) -> f64 {
    let start = Instant::now();
    f();
    start.elapsed().as_secs_f64()
}

// ---- the three contenders -------------------------------------------------------------------

fn plain_write(path: &Path, chunk: &[u8], n: usize, fdatasync: bool) -> f64 {
    let mut f = File::create(path).unwrap();
    timed(|| {
        for _ in 0..n {
            f.write_all(chunk).unwrap();
            if fdatasync {
                f.sync_data().unwrap();
            }
        }
    })
}

fn plain_read(path: &Path) -> (f64, u64) {
    let mut f = File::open(path).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    let t = timed(|| loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        total += n as u64;
    });
    (t, total)
}

fn seglog_append(dir: &Path, durability: Durability, shape: &Shape, n: usize) -> f64 {
    let p = Partition::open(dir, config(durability)).unwrap();
    let recs = shape.batch();
    let t = timed(|| {
        for _ in 0..n {
            p.append(&recs).unwrap();
        }
    });
    p.close().unwrap();
    t
}

/// Append the already-encoded batch `chunk` `n` times (a Kafka client's or a leader's batch:
/// checked, then given its offsets in place).
fn seglog_append_encoded(dir: &Path, chunk: &[u8], n: usize) -> f64 {
    let p = Partition::open(dir, config(Durability::NoSync)).unwrap();
    let mut chunk = chunk.to_vec();
    let t = timed(|| {
        for _ in 0..n {
            p.append_encoded(&mut chunk).unwrap();
        }
    });
    p.close().unwrap();
    t
}

/// Read every batch (CRC-checked) without decoding records; returns (seconds, bytes).
fn seglog_read_batches(p: &Partition) -> (f64, u64) {
    let end = p.log_end_offset();
    let (mut next, mut bytes) = (Offset(0), 0u64);
    let t = timed(|| {
        while next < end {
            let r = p.read(next, 1 << 20).unwrap();
            bytes += r.size_bytes() as u64;
            next = r.next_offset();
        }
    });
    (t, bytes)
}

/// Read and decode every record into owned `LogRecord`s; returns (seconds, value bytes).
fn seglog_read_owned(p: &Partition) -> (f64, u64) {
    let end = p.log_end_offset();
    let (mut next, mut values) = (Offset(0), 0u64);
    let t = timed(|| {
        while next < end {
            let r = p.read(next, 1 << 20).unwrap();
            for rec in r.records() {
                values += rec.unwrap().value.map_or(0, |v| v.len() as u64);
            }
            next = r.next_offset();
        }
    });
    (t, values)
}

/// Read and walk every record through borrowed views; returns (seconds, value bytes).
fn seglog_read_views(p: &Partition) -> (f64, u64) {
    let end = p.log_end_offset();
    let (mut next, mut values) = (Offset(0), 0u64);
    let t = timed(|| {
        while next < end {
            let r = p.read(next, 1 << 20).unwrap();
            r.for_each_record(|rec| values += rec.value().map_or(0, |v| v.len() as u64))
                .unwrap();
            next = r.next_offset();
        }
    });
    (t, values)
}

/// Read and walk every record through `read_each_record` (the read walk hands record views
/// straight to the callback: no `Batch` built); returns (seconds, value bytes).
fn seglog_read_each(p: &Partition) -> (f64, u64) {
    let end = p.log_end_offset();
    let (mut next, mut values) = (Offset(0), 0u64);
    let t = timed(|| {
        while next < end {
            next = p
                .read_each_record(next, 1 << 20, |rec| {
                    values += rec.value().map_or(0, |v| v.len() as u64);
                })
                .unwrap();
        }
    });
    (t, values)
}

fn commitlog_open(dir: &Path) -> CommitLog {
    let mut opts = LogOptions::new(dir);
    opts.message_max_bytes(4 << 20);
    CommitLog::new(opts).unwrap()
}

fn commitlog_append(dir: &Path, shape: &Shape) -> f64 {
    let mut log = commitlog_open(dir);
    let mut buf: MessageBuf = (0..shape.batch)
        .map(|_| vec![b'v'; shape.value_len])
        .collect();
    timed(|| {
        for _ in 0..shape.appends() {
            log.append(&mut buf).unwrap();
        }
    })
}

/// Read back every message (commitlog checks each message's CRC as it reads); returns
/// (seconds, payload bytes).
fn commitlog_read(dir: &Path) -> (f64, u64) {
    let log = commitlog_open(dir);
    let end = log.next_offset();
    let (mut next, mut values) = (0u64, 0u64);
    let t = timed(|| {
        while next < end {
            let msgs = log.read(next, ReadLimit::max_bytes(1 << 20)).unwrap();
            for m in msgs.iter() {
                values += m.payload().len() as u64;
                next = m.offset() + 1;
            }
        }
    });
    (t, values)
}

// ---- rounds ---------------------------------------------------------------------------------

/// Medians (MB/s of seglog's encoding) of one shape: append and read, three contenders.
#[derive(Default)]
struct Figures {
    append: [Vec<f64>; 3],
    read: [Vec<f64>; 3],
    read_views: Vec<f64>,
    read_each: Vec<f64>,
    read_batches: Vec<f64>,
    append_encoded: Vec<f64>,
}

/// One round of `shape`: appends in a rotating order, then reads of what each wrote.
fn round(shape: &Shape, chunk: &[u8], round: usize, fig: &mut Figures) {
    let dir = tempfile::tempdir().unwrap();
    let (file, log_dir, cl_dir) = (
        dir.path().join("plain.bin"),
        dir.path().join("seglog"),
        dir.path().join("commitlog"),
    );
    let mb = (chunk.len() * shape.appends()) as f64 / 1e6;
    for k in 0..3 {
        match (round + k) % 3 {
            0 => fig.append[0].push(mb / plain_write(&file, chunk, shape.appends(), false)),
            1 => fig.append[1]
                .push(mb / seglog_append(&log_dir, Durability::NoSync, shape, shape.appends())),
            _ => fig.append[2].push(mb / commitlog_append(&cl_dir, shape)),
        }
    }
    let enc_dir = dir.path().join("encoded");
    fig.append_encoded
        .push(mb / seglog_append_encoded(&enc_dir, chunk, shape.appends()));
    let expected = (shape.records * shape.value_len) as u64;
    let (t, n) = plain_read(&file);
    assert_eq!(n as usize, chunk.len() * shape.appends());
    fig.read[0].push(mb / t);
    let p = Partition::open(&log_dir, config(Durability::NoSync)).unwrap();
    let (t, n) = seglog_read_batches(&p);
    assert_eq!(n as usize, chunk.len() * shape.appends());
    fig.read_batches.push(mb / t);
    let (t, n) = seglog_read_owned(&p);
    assert_eq!(n, expected);
    fig.read[1].push(mb / t);
    let (t, n) = seglog_read_views(&p);
    assert_eq!(n, expected);
    fig.read_views.push(mb / t);
    let (t, n) = seglog_read_each(&p);
    assert_eq!(n, expected);
    fig.read_each.push(mb / t);
    let (t, n) = commitlog_read(&cl_dir);
    assert_eq!(n, expected);
    fig.read[2].push(mb / t);
}

fn measure(shape: &Shape, rounds: usize) -> Figures {
    let chunk = shape.encoded();
    let mut fig = Figures::default();
    for r in 0..rounds {
        round(shape, &chunk, r, &mut fig);
    }
    fig
}

/// Records/s and fsyncs/s of `threads` threads appending single records under
/// SyncEachAppend for `secs` seconds.
fn group_commit(threads: usize, secs: f64) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let p = Arc::new(Partition::open(dir.path(), config(Durability::SyncEachAppend)).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let syncs_before = p.group_commit_stats().fsyncs;
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (p, stop, count) = (p.clone(), stop.clone(), count.clone());
            std::thread::spawn(move || {
                let rec = [Record::new(vec![b'g'; 100])];
                while !stop.load(Ordering::Relaxed) {
                    p.append(&rec).unwrap();
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let syncs = p.group_commit_stats().fsyncs - syncs_before;
    (
        count.load(Ordering::Relaxed) as f64 / elapsed,
        syncs as f64 / elapsed,
    )
}

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

// ---- printing -------------------------------------------------------------------------------

fn header() {
    println!();
    println!(
        "| {:<64} | {:>9} | {:>9} | {:>9} | {:<9} | {:>7} | {:>7} | {:<14} |",
        "workload", "plain", "seglog", "commitlog", "unit", "/plain", "/peer", "target"
    );
    println!(
        "|{:-<66}|{:->11}|{:->11}|{:->11}|{:-<11}|{:->9}|{:->9}|{:-<16}|",
        "", "", "", "", "", "", "", ""
    );
}

fn cell(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| {
        if v >= 1000.0 {
            format!("{v:.0}")
        } else {
            format!("{v:.1}")
        }
    })
}

fn ratio(a: f64, b: Option<f64>) -> String {
    b.map_or("-".into(), |b| format!("{:.2}x", a / b))
}

fn row(name: &str, plain: Option<f64>, seglog: f64, peer: Option<f64>, unit: &str, target: &str) {
    println!(
        "| {name:<64} | {:>9} | {:>9} | {:>9} | {unit:<9} | {:>7} | {:>7} | {target:<14} |",
        cell(plain),
        cell(Some(seglog)),
        cell(peer),
        ratio(seglog, plain),
        ratio(seglog, peer),
    );
}

fn print_shape(shape: &Shape, fig: Figures, targets: [&str; 2]) {
    let [pa, sa, ca] = fig.append.map(median);
    let [pr, sr, cr] = fig.read.map(median);
    row(
        &format!("append {}", shape.name),
        Some(pa),
        sa,
        Some(ca),
        "MB/s",
        targets[0],
    );
    row(
        "  append_encoded: the same batches, already encoded",
        Some(pa),
        median(fig.append_encoded),
        None,
        "MB/s",
        if shape.batch > 1 {
            ">=0.95x plain"
        } else {
            "-"
        },
    );
    row(
        "  read back, every record as an owned LogRecord",
        Some(pr),
        sr,
        Some(cr),
        "MB/s",
        "-",
    );
    row(
        "  read back, every record through borrowed views",
        Some(pr),
        median(fig.read_views),
        Some(cr),
        "MB/s",
        targets[1],
    );
    row(
        "  read back, every record through read_each_record",
        Some(pr),
        median(fig.read_each),
        Some(cr),
        "MB/s",
        "-",
    );
    row(
        "  read back, whole batches (CRC checked), no record decoded",
        Some(pr),
        median(fig.read_batches),
        None,
        "MB/s",
        "-",
    );
}

fn group_rows(secs: f64, rounds: usize) {
    let mut runs: [Vec<(f64, f64)>; 3] = Default::default();
    for _ in 0..rounds {
        for (i, threads) in [1, 8, 64].into_iter().enumerate() {
            runs[i].push(group_commit(threads, secs));
        }
    }
    let med = |v: &Vec<(f64, f64)>| {
        let r = median(v.iter().map(|x| x.0).collect());
        let f = median(v.iter().map(|x| x.1).collect());
        (r, f)
    };
    let (one, _) = med(&runs[0]);
    for (i, (threads, target)) in [(1, "-"), (8, ">=5x 1 thread"), (64, ">=20x 1 thread")]
        .into_iter()
        .enumerate()
    {
        let (r, f) = med(&runs[i]);
        println!(
            "| {:<64} | {:>9} | {:>9.0} | {:>9} | {:<9} | {:>7} | {:>7} | {:<14} |",
            format!(
                "durable 1-record appends, {threads} thread(s): {f:.0} fsyncs/s, {:.1} per fsync",
                r / f.max(1e-9)
            ),
            "-",
            r,
            "-",
            "records/s",
            format!("{:.2}x", r / one),
            "-",
            target
        );
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let rounds = if quick { 3 } else { 5 };
    let group_secs = if quick { 1.0 } else { 2.0 };
    if std::env::args().any(|a| a == "--group-only") {
        header();
        group_rows(group_secs, 5);
        return;
    }
    let scale = if quick { 5 } else { 1 };
    let shapes = [
        Shape {
            name: "1M x 100 B, batches of 100",
            value_len: 100,
            records: 1_000_000 / scale,
            batch: 100,
        },
        Shape {
            name: "200k x 1 KiB, batches of 100",
            value_len: 1024,
            records: 200_000 / scale,
            batch: 100,
        },
        Shape {
            name: "1M x 100 B, one record per append",
            value_len: 100,
            records: 1_000_000 / scale,
            batch: 1,
        },
    ];
    let targets = [
        [">=0.9x, >=1.5x", ">=0.6x, >=2x"],
        ["-", "-"],
        ["peer >=1.2x", "peer >=2x"],
    ];
    println!(
        "seglog vs a plain sequential write/read of the same bytes vs commitlog 0.2.0; \
         page cache, no fsync unless stated; medians of {rounds} interleaved rounds; MB/s of \
         seglog's encoding ({:.1} MB for the first shape)",
        shapes[0].megabytes()
    );
    let anon_start = rss_kib("RssAnon:");
    let figures: Vec<Figures> = shapes.iter().map(|s| measure(s, rounds)).collect();
    let anon_after = rss_kib("RssAnon:");
    header();
    for ((shape, fig), targets) in shapes.iter().zip(figures).zip(targets) {
        print_shape(shape, fig, targets);
    }
    fsync_row(&shapes[0], rounds, if quick { 300 } else { 2_000 });
    group_rows(group_secs, rounds);
    open_row();
    println!(
        "| {:<64} | {:>9} | {:>9} | {:>9} | {:<9} | {:>7} | {:>7} | {:<14} |",
        "anonymous RSS growth over the append/read runs",
        "-",
        anon_after.saturating_sub(anon_start),
        "-",
        "KiB",
        "-",
        "-",
        "flat"
    );
}

/// fsync per batch: seglog (preallocated segment) vs plain write + fdatasync on a growing file.
fn fsync_row(shape: &Shape, rounds: usize, n: usize) {
    let chunk = shape.encoded();
    let (mut plain, mut seg) = (vec![], vec![]);
    for round in 0..rounds {
        let dir = tempfile::tempdir().unwrap();
        let plain_run = || n as f64 / plain_write(&dir.path().join("plain.bin"), &chunk, n, true);
        let log = dir.path().join("log");
        let seg_run = || n as f64 / seglog_append(&log, Durability::SyncEachAppend, shape, n);
        // Alternate which goes first.
        if round % 2 == 0 {
            plain.push(plain_run());
            seg.push(seg_run());
        } else {
            seg.push(seg_run());
            plain.push(plain_run());
        }
    }
    row(
        "append + fsync per batch of 100 (SyncEachAppend)",
        Some(median(plain)),
        median(seg),
        None,
        "batches/s",
        "(peer: no fsync)",
    );
}

/// Clean open of a 1,000-segment partition.
fn open_row() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(Durability::NoSync).with_segment_bytes(16 * 1024);
    {
        let p = Partition::open(dir.path(), cfg.clone()).unwrap();
        let recs: Vec<Record> = (0..10)
            .map(|i| Record::new(vec![b'v'; 100]).with_timestamp(1_700_000_000_000 + i))
            .collect();
        while p.segment_count() < 1_000 {
            p.append(&recs).unwrap();
        }
        p.close().unwrap();
    }
    let open_ms = median(
        (0..7)
            .map(|_| {
                let start = Instant::now();
                let p = Partition::open(dir.path(), cfg.clone()).unwrap();
                let t = start.elapsed().as_secs_f64() * 1e3;
                p.close().unwrap();
                t
            })
            .collect(),
    );
    row(
        "clean open, 1,000 segments",
        None,
        open_ms,
        None,
        "ms",
        "<=20ms",
    );
}
