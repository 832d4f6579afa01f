//! Throughput of seglog against the machine's own limit, measured in the same run.
//!
//! Each seglog figure is printed beside a plain sequential `write`/`read` (or `write` +
//! `fdatasync`) of the same bytes in the same chunk sizes, and the ratio between them.
//! Every measurement is the median of several rounds, plain and seglog interleaved.
//!
//! `cargo run --release --example throughput` (add `-- --quick` for a smaller run).

use std::fs::File;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use seglog::{Durability, Offset, Partition, PartitionConfig, Record};

const VALUE_LEN: usize = 100;
const BATCH: usize = 100;

struct Sizes {
    records: usize,
    fsync_batches: usize,
    rounds: usize,
    group_secs: f64,
}

fn config(durability: Durability) -> PartitionConfig {
    PartitionConfig::default()
        .with_durability(durability)
        .with_retention_ms(None)
}

fn batch() -> Vec<Record> {
    (0..BATCH)
        .map(|i| Record::new(vec![b'v'; VALUE_LEN]).with_timestamp(1_700_000_000_000 + i as i64))
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Encoded bytes of one batch of `BATCH` records, as seglog stores them.
fn encoded_batch() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), config(Durability::NoSync)).unwrap();
    p.append(&batch()).unwrap();
    let read = p.read(Offset(0), 1 << 20).unwrap();
    read.batches()[0].as_bytes().to_vec()
}

fn plain_write(path: &std::path::Path, chunk: &[u8], n: usize, fdatasync: bool) -> f64 {
    let mut f = File::create(path).unwrap();
    let start = Instant::now();
    for _ in 0..n {
        f.write_all(chunk).unwrap();
        if fdatasync {
            f.sync_data().unwrap();
        }
    }
    start.elapsed().as_secs_f64()
}

fn plain_read(path: &std::path::Path) -> (f64, u64) {
    let mut f = File::open(path).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    let start = Instant::now();
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    (start.elapsed().as_secs_f64(), total)
}

fn seglog_append(dir: &std::path::Path, durability: Durability, batches: usize) -> f64 {
    let p = Partition::open(dir, config(durability)).unwrap();
    let recs = batch();
    let start = Instant::now();
    for _ in 0..batches {
        p.append(&recs).unwrap();
    }
    let t = start.elapsed().as_secs_f64();
    p.close().unwrap();
    t
}

/// Read every batch (CRC-checked) without decoding records.
fn seglog_read_batches(p: &Partition) -> (f64, u64) {
    let end = p.log_end_offset();
    let start = Instant::now();
    let mut next = Offset(0);
    let mut bytes = 0u64;
    while next < end {
        let r = p.read(next, 1 << 20).unwrap();
        bytes += r.size_bytes() as u64;
        next = r.next_offset();
    }
    (start.elapsed().as_secs_f64(), bytes)
}

fn seglog_read(p: &Partition) -> (f64, u64) {
    let end = p.log_end_offset();
    let start = Instant::now();
    let mut next = Offset(0);
    let mut records = 0u64;
    while next < end {
        let r = p.read(next, 1 << 20).unwrap();
        for rec in r.records() {
            let rec = rec.unwrap();
            records += u64::from(rec.value.is_some());
        }
        next = r.next_offset();
    }
    (start.elapsed().as_secs_f64(), records)
}

/// Records/s of `threads` threads appending single records under SyncEachAppend.
fn group_commit(threads: usize, secs: f64) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let p = Arc::new(Partition::open(dir.path(), config(Durability::SyncEachAppend)).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (p, stop, count) = (p.clone(), stop.clone(), count.clone());
            std::thread::spawn(move || {
                let rec = [Record::new(vec![b'g'; VALUE_LEN])];
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
    count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
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

fn row(name: &str, plain: f64, seglog: f64, unit: &str, target: &str) {
    println!(
        "| {name:<44} | {plain:>12.1} | {seglog:>12.1} | {unit:<9} | {:>5.2}x | {target:<6} |",
        seglog / plain
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    if std::env::args().any(|a| a == "--group-only") {
        for _ in 0..3 {
            let (one, eight) = (group_commit(1, 2.0), group_commit(8, 2.0));
            println!(
                "1 thread {one:.0}/s, 8 threads {eight:.0}/s: {:.2}x",
                eight / one
            );
        }
        return;
    }
    let sizes = if quick {
        Sizes {
            records: 200_000,
            fsync_batches: 300,
            rounds: 3,
            group_secs: 1.0,
        }
    } else {
        Sizes {
            records: 1_000_000,
            fsync_batches: 2_000,
            rounds: 5,
            group_secs: 2.0,
        }
    };
    let batches = sizes.records / BATCH;
    let chunk = encoded_batch();
    let mb = (chunk.len() * batches) as f64 / 1e6;
    println!(
        "{} records of {VALUE_LEN} B in batches of {BATCH} ({} B encoded per batch, {mb:.1} MB); median of {} rounds",
        sizes.records,
        chunk.len(),
        sizes.rounds
    );
    let anon_start = rss_kib("RssAnon:");

    // 1. Page-cache append vs plain write.
    let (mut plain_w, mut seg_w, mut plain_r, mut seg_r) = (vec![], vec![], vec![], vec![]);
    let mut seg_rb = vec![];
    for round in 0..sizes.rounds {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain.bin");
        let log_dir = dir.path().join("log");
        // Alternate which goes first, so neither always meets a colder page cache.
        if round % 2 == 0 {
            plain_w.push(mb / plain_write(&file, &chunk, batches, false));
            seg_w.push(mb / seglog_append(&log_dir, Durability::NoSync, batches));
        } else {
            seg_w.push(mb / seglog_append(&log_dir, Durability::NoSync, batches));
            plain_w.push(mb / plain_write(&file, &chunk, batches, false));
        }
        // 2. Sequential read (page cache) vs plain read of the same bytes.
        let (t, n) = plain_read(&file);
        assert_eq!(n as usize, chunk.len() * batches);
        plain_r.push(mb / t);
        let p = Partition::open(&log_dir, config(Durability::NoSync)).unwrap();
        let (t, n) = seglog_read_batches(&p);
        assert_eq!(n as usize, chunk.len() * batches);
        seg_rb.push(mb / t);
        let (t, n) = seglog_read(&p);
        assert_eq!(n as usize, sizes.records);
        seg_r.push(mb / t);
    }
    let anon_after_rw = rss_kib("RssAnon:");

    // 3. fsync per batch: seglog (preallocated segment) vs plain write + fdatasync on a
    //    growing file.
    let (mut plain_f, mut seg_f) = (vec![], vec![]);
    for _ in 0..sizes.rounds.min(3) {
        let dir = tempfile::tempdir().unwrap();
        let n = sizes.fsync_batches;
        plain_f.push(n as f64 / plain_write(&dir.path().join("plain.bin"), &chunk, n, true));
        seg_f
            .push(n as f64 / seglog_append(&dir.path().join("log"), Durability::SyncEachAppend, n));
    }

    // 4. Group commit: 8 threads vs 1 thread of single-record appends under SyncEachAppend.
    let (mut ones, mut eights) = (vec![], vec![]);
    for _ in 0..3 {
        ones.push(group_commit(1, sizes.group_secs));
        eights.push(group_commit(8, sizes.group_secs));
    }
    let (one, eight) = (median(ones), median(eights));

    // 5. Clean open of a 1,000-segment partition.
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(Durability::NoSync).with_segment_bytes(16 * 1024);
    {
        let p = Partition::open(dir.path(), cfg.clone()).unwrap();
        let recs: Vec<Record> = batch().into_iter().take(10).collect();
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

    println!();
    println!("| measurement                                  |        plain |       seglog | unit      |  ratio | target |");
    println!("|----------------------------------------------|-------------:|-------------:|-----------|-------:|--------|");
    row(
        "append, page cache (NoSync)",
        median(plain_w),
        median(seg_w),
        "MB/s",
        ">=0.9x",
    );
    let plain_r = median(plain_r);
    row(
        "sequential read of batches, CRC checked",
        plain_r,
        median(seg_rb),
        "MB/s",
        ">=0.6x",
    );
    row(
        "  ... and every record decoded",
        plain_r,
        median(seg_r),
        "MB/s",
        "-",
    );
    row(
        "append + fsync per batch (SyncEachAppend)",
        median(plain_f),
        median(seg_f),
        "batches/s",
        ">=1.2x",
    );
    println!(
        "| {:<44} | {:>12.0} | {:>12.0} | {:<9} | {:>5.2}x | {:<6} |",
        "SyncEachAppend 1-record appends: 1 vs 8 threads",
        one,
        eight,
        "records/s",
        eight / one,
        ">=5x"
    );
    println!(
        "| {:<44} | {:>12} | {:>12.2} | {:<9} | {:>6} | {:<6} |",
        "clean open, 1,000 segments", "-", open_ms, "ms", "-", "<=20ms"
    );
    println!(
        "| {:<44} | {:>12} | {:>12} | {:<9} | {:>6} | {:<6} |",
        "anonymous RSS growth over the append/read runs",
        "-",
        anon_after_rw.saturating_sub(anon_start),
        "KiB",
        "-",
        "flat"
    );
}
