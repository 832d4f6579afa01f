//! Criterion benches for the partition log: append, sequential and random reads, clean open.
//!
//! Appends run under `Durability::NoSync` (page cache: the cost of seglog itself); the fsync
//! policies are measured by `examples/throughput.rs` against the disk's own limit.

use std::hint::black_box;
use std::io::{Seek, Write};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use seglog::{Durability, Offset, Partition, PartitionConfig, Record};

fn config() -> PartitionConfig {
    PartitionConfig::default()
        .with_durability(Durability::NoSync)
        .with_segment_bytes(256 << 20)
        .with_retention_ms(None)
}

fn records(n: usize, value_len: usize) -> Vec<Record> {
    (0..n)
        .map(|i| Record::new(vec![b'x'; value_len]).with_timestamp(1_700_000_000_000 + i as i64))
        .collect()
}

fn append(c: &mut Criterion) {
    let mut group = c.benchmark_group("append");
    for &(value_len, batch) in &[(100usize, 1usize), (100, 100), (1024, 1), (1024, 100)] {
        let recs = records(batch, value_len);
        group.throughput(Throughput::Bytes((value_len * batch) as u64));
        group.bench_with_input(
            BenchmarkId::new(format!("{value_len}B"), format!("batch{batch}")),
            &recs,
            |b, recs| {
                let dir = tempfile::tempdir().unwrap();
                let p = Partition::open(dir.path(), config()).unwrap();
                b.iter(|| p.append(black_box(recs)).unwrap());
            },
        );
    }
    group.finish();
}

/// The encoded bytes `append` writes for `recs` (one batch).
fn encoded(recs: &[Record]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), config()).unwrap();
    p.append(recs).unwrap();
    p.read(Offset(0), 1 << 20).unwrap().batches()[0]
        .as_bytes()
        .to_vec()
}

/// Issue 11's append comparisons, 100 B values: `append` of records, `append_encoded` of the
/// same batch already encoded, commitlog 0.2.0's `append` of the same payloads (its message
/// buffer built in the loop, as `append` encodes in it), and a plain sequential `write` of
/// the bytes `append` writes (the machine's limit). Same throughput unit for all: ratios of
/// the medians are ratios of time.
fn append_vs_peers(c: &mut Criterion) {
    let mut group = c.benchmark_group("append_vs");
    for batch in [100usize, 1] {
        let recs = records(batch, 100);
        let bytes = encoded(&recs);
        group.throughput(Throughput::Bytes((100 * batch) as u64));
        group.bench_function(BenchmarkId::new("seglog_append", batch), |b| {
            let dir = tempfile::tempdir().unwrap();
            let p = Partition::open(dir.path(), config()).unwrap();
            b.iter(|| p.append(black_box(&recs)).unwrap());
        });
        group.bench_function(BenchmarkId::new("seglog_append_encoded", batch), |b| {
            let dir = tempfile::tempdir().unwrap();
            let p = Partition::open(dir.path(), config()).unwrap();
            // Rewritten in place (base offset, epoch): the same buffer serves every append.
            let mut buf = bytes.clone();
            b.iter(|| p.append_encoded(black_box(&mut buf)).unwrap());
        });
        group.bench_function(BenchmarkId::new("commitlog_append", batch), |b| {
            let dir = tempfile::tempdir().unwrap();
            let mut opts = commitlog::LogOptions::new(dir.path());
            opts.segment_max_bytes(256 << 20);
            let mut log = commitlog::CommitLog::new(opts).unwrap();
            b.iter(|| {
                let mut buf = commitlog::message::MessageBuf::default();
                for r in &recs {
                    buf.push(r.value.as_ref().unwrap()).unwrap();
                }
                log.append(black_box(&mut buf)).unwrap()
            });
        });
        group.bench_function(BenchmarkId::new("plain_write", batch), |b| {
            let dir = tempfile::tempdir().unwrap();
            let mut f = std::fs::File::create(dir.path().join("plain")).unwrap();
            let mut written = 0u64;
            b.iter(|| {
                // Restart before the file outgrows a segment, as the logs roll theirs.
                if written > 256 << 20 {
                    f.set_len(0).unwrap();
                    f.seek(std::io::SeekFrom::Start(0)).unwrap();
                    written = 0;
                }
                f.write_all(black_box(&bytes)).unwrap();
                written += bytes.len() as u64;
            });
        });
    }
    group.finish();
}

/// A partition of `batches` batches of 100 records of 100 B.
fn filled(batches: usize) -> (tempfile::TempDir, Partition) {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), config()).unwrap();
    let recs = records(100, 100);
    for _ in 0..batches {
        p.append(&recs).unwrap();
    }
    (dir, p)
}

fn reads(c: &mut Criterion) {
    let (_dir, p) = filled(2_000);
    let end = p.log_end_offset().0;
    let mut group = c.benchmark_group("read");
    group.throughput(Throughput::Elements(end));
    group.bench_function("sequential_all_records_1MiB_fetches", |b| {
        b.iter(|| {
            let mut next = Offset(0);
            let mut n = 0u64;
            while next.0 < end {
                let r = p.read(next, 1 << 20).unwrap();
                for rec in r.records() {
                    n += rec.unwrap().value.map_or(0, |v| v.len()) as u64;
                }
                next = r.next_offset();
            }
            black_box(n)
        })
    });
    group.throughput(Throughput::Elements(1));
    group.bench_function("random_offset_one_record", |b| {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        b.iter(|| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let r = p.read(Offset(x % end), 1).unwrap();
            let first = r.records().next().unwrap().unwrap().offset;
            black_box(first)
        })
    });
    group.finish();
}

fn open_clean(c: &mut Criterion) {
    let mut group = c.benchmark_group("open_clean");
    for &segments in &[10usize, 1_000] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config().with_segment_bytes(16 * 1024);
        {
            let p = Partition::open(dir.path(), cfg.clone()).unwrap();
            let recs = records(10, 100);
            while p.segment_count() < segments {
                p.append(&recs).unwrap();
            }
            p.close().unwrap();
        }
        // Time `open` alone; the close that writes the next clean-shutdown marker is untimed.
        group.bench_function(BenchmarkId::from_parameter(segments), |b| {
            b.iter_custom(|iters| {
                let mut total = std::time::Duration::ZERO;
                for _ in 0..iters {
                    let start = std::time::Instant::now();
                    let p = Partition::open(dir.path(), cfg.clone()).unwrap();
                    total += start.elapsed();
                    assert!(p.recovery_report().clean_shutdown);
                    p.close().unwrap();
                }
                total
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = append, append_vs_peers, reads, open_clean
}
criterion_main!(benches);
