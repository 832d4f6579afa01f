//! Record reads, every record decoded: seglog's owned records against its borrowed views,
//! commitlog 0.2.0 (the closest Rust peer) and a plain read of the same bytes (issue 11).
//!
//! 100,000 records of 100 B, written once per layout and read back from the page cache from
//! offset 0 to the end in reads of 1 MiB, every record's value length summed:
//!
//! - `plain_read`: `read` of the partition's `.log` files into a 1 MiB buffer (no decoding);
//! - `owned`: `Partition::read` + `ReadBatches::records()` (a `LogRecord` per record, `Bytes`
//!   slices for key and value);
//! - `view`: `Partition::read` + `ReadBatches::for_each_record` (a borrowed `RecordRef`);
//! - `sink`: `Partition::read_each_record` (the same views, fed by the read walk: no `Batch`
//!   per batch);
//! - `commitlog`: `CommitLog::read` (which checks every message's CRC) + iterating the
//!   messages of each `MessageBuf`; its log holds the same 100,000 payloads.
//!
//! Two groups: `batches_of_100` and `batches_of_1` (one record per seglog batch; commitlog
//! frames every message alone in both). `decode_only/*` decodes in-memory batches (no read)
//! to isolate the decoder: the batches of one 1 MiB read, in cache as after a read. Quick run: `cargo bench --bench records -- --quick`.

use std::fs::File;
use std::hint::black_box;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use commitlog::message::{MessageBuf, MessageSet};
use commitlog::{CommitLog, LogOptions, ReadLimit};
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use seglog::{Batch, Durability, Offset, Partition, PartitionConfig, Record};

const RECORDS: u64 = 100_000;
const VALUE_BYTES: usize = 100;
const READ_BYTES: usize = 1 << 20;

fn seglog_partition(dir: &Path, per_batch: u64) -> Partition {
    let config = PartitionConfig::default()
        .with_durability(Durability::NoSync)
        .with_retention_ms(None)
        .with_segment_ms(None);
    let p = Partition::open(dir, config).unwrap();
    let mut i = 0;
    while i < RECORDS {
        let batch: Vec<Record> = (i..i + per_batch)
            .map(|n| {
                let ts = 1_700_000_000_000 + i64::try_from(n).unwrap();
                Record::new(vec![b'v'; VALUE_BYTES]).with_timestamp(ts)
            })
            .collect();
        p.append(&batch).unwrap();
        i += per_batch;
    }
    p
}

fn commitlog(dir: &Path) -> CommitLog {
    let mut log = CommitLog::new(LogOptions::new(dir)).unwrap();
    let value = vec![b'v'; VALUE_BYTES];
    for _ in 0..RECORDS / 100 {
        let mut buf: MessageBuf = (0..100).map(|_| &value).collect();
        log.append(&mut buf).unwrap();
    }
    log.flush().unwrap();
    log
}

fn seglog_owned(p: &Partition) -> usize {
    let (mut next, mut sum) = (Offset(0), 0);
    while next.0 < RECORDS {
        let read = p.read(next, READ_BYTES).unwrap();
        for r in read.records() {
            sum += r.unwrap().value.map_or(0, |v| v.len());
        }
        next = read.next_offset();
    }
    sum
}

fn seglog_view(p: &Partition) -> usize {
    let (mut next, mut sum) = (Offset(0), 0);
    while next.0 < RECORDS {
        let read = p.read(next, READ_BYTES).unwrap();
        read.for_each_record(|r| sum += r.value().map_or(0, <[u8]>::len))
            .unwrap();
        next = read.next_offset();
    }
    sum
}

fn seglog_sink(p: &Partition) -> usize {
    let (mut next, mut sum) = (Offset(0), 0);
    while next.0 < RECORDS {
        next = p
            .read_each_record(next, READ_BYTES, |r| {
                sum += r.value().map_or(0, <[u8]>::len);
            })
            .unwrap();
    }
    sum
}

fn commitlog_read(log: &CommitLog) -> usize {
    let (mut next, mut sum) = (0, 0);
    while next < RECORDS {
        let buf = log.read(next, ReadLimit::max_bytes(READ_BYTES)).unwrap();
        for m in buf.iter() {
            sum += m.payload().len();
            next = m.offset() + 1;
        }
    }
    sum
}

fn plain_read(files: &[std::path::PathBuf], buf: &mut [u8]) -> usize {
    let mut sum = 0;
    for path in files {
        let mut f = File::open(path).unwrap();
        loop {
            let n = f.read(buf).unwrap();
            if n == 0 {
                break;
            }
            sum += n;
        }
    }
    sum
}

fn log_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files
}

fn configure(g: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    g.throughput(Throughput::Elements(RECORDS));
    g.sample_size(15);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(4));
}

fn reads(c: &mut Criterion) {
    let peer_dir = tempfile::tempdir().unwrap();
    let peer = commitlog(peer_dir.path());
    assert_eq!(commitlog_read(&peer), RECORDS as usize * VALUE_BYTES);
    for per_batch in [100u64, 1] {
        let dir = tempfile::tempdir().unwrap();
        let p = seglog_partition(dir.path(), per_batch);
        assert_eq!(seglog_owned(&p), RECORDS as usize * VALUE_BYTES);
        assert_eq!(seglog_view(&p), RECORDS as usize * VALUE_BYTES);
        assert_eq!(seglog_sink(&p), RECORDS as usize * VALUE_BYTES);
        let files = log_files(dir.path());
        let mut buf = vec![0u8; READ_BYTES];
        let mut g = c.benchmark_group(format!("batches_of_{per_batch}"));
        configure(&mut g);
        g.bench_function("plain_read", |b| {
            b.iter(|| black_box(plain_read(&files, &mut buf)));
        });
        g.bench_function("owned", |b| b.iter(|| black_box(seglog_owned(&p))));
        g.bench_function("view", |b| b.iter(|| black_box(seglog_view(&p))));
        g.bench_function("sink", |b| b.iter(|| black_box(seglog_sink(&p))));
        g.bench_function("commitlog", |b| b.iter(|| black_box(commitlog_read(&peer))));
        g.finish();
    }
}

fn decode_only(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode_only");
    configure(&mut g);
    for per_batch in [100u64, 1] {
        let dir = tempfile::tempdir().unwrap();
        let p = seglog_partition(dir.path(), per_batch);
        // One read's worth (1 MiB): the batches stay in cache, as they are right after a read.
        let batches: Vec<Batch> = p.read(Offset(0), READ_BYTES).unwrap().batches().to_vec();
        let count: u64 = batches.iter().map(|b| u64::from(b.record_count())).sum();
        g.throughput(Throughput::Elements(count));
        g.bench_function(format!("owned_batches_of_{per_batch}"), |b| {
            b.iter(|| {
                let mut sum = 0;
                for batch in &batches {
                    for r in batch.records() {
                        sum += r.unwrap().value.map_or(0, |v| v.len());
                    }
                }
                black_box(sum)
            });
        });
        g.bench_function(format!("view_batches_of_{per_batch}"), |b| {
            b.iter(|| {
                let mut sum = 0;
                for batch in &batches {
                    for r in &batch.decoded().unwrap() {
                        sum += r.unwrap().value().map_or(0, <[u8]>::len);
                    }
                }
                black_box(sum)
            });
        });
    }
    g.finish();
}

criterion_group!(benches, reads, decode_only);
criterion_main!(benches);
