//! Producer batching against direct batch appends, measured in one run.
//!
//! Both sides write 100-byte keyless records to a one-partition topic under
//! `Durability::NoSync` (the page cache: the cost of seglog itself, not of the disk):
//!
//! - `send_batched`: one `Producer::send_batched` call per record (handle dropped), the
//!   producer cutting 16 KiB batches; the final `flush` is inside the measured time, so every
//!   record counted has been appended;
//! - `append_100`: `Partition::append` of a pre-built 100-record batch per call.
//!
//! Criterion reports both as records per second. After the criterion groups a plain
//! comparison runs both for the same record count (best of three) and prints the ratio;
//! the target is `send_batched` at ≥ 0.5× the throughput of `append_100`.
//!
//! Each measurement opens a fresh store in a temporary directory, so the disk use is
//! bounded by one sample. Quick run: `cargo bench --bench producer -- --quick`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion, Throughput};
use seglog::{
    Durability, LogStore, PartitionConfig, Producer, ProducerConfig, Record, StoreConfig,
    TopicConfig,
};

const VALUE_BYTES: usize = 100;
const BATCH: usize = 100;

/// A fresh store with topic "t" of one partition; the tempdir must outlive the store.
fn fresh() -> (tempfile::TempDir, LogStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(
        dir.path(),
        StoreConfig::default().with_maintenance_interval(None),
    )
    .unwrap();
    let partition_config = PartitionConfig::default()
        .with_durability(Durability::NoSync)
        .with_segment_bytes(256 << 20)
        .with_retention_ms(None);
    store
        .create_topic(
            "t",
            TopicConfig::new(1).with_partition_config(partition_config),
        )
        .unwrap();
    (dir, store)
}

fn record(i: u64) -> Record {
    Record::new(vec![b'x'; VALUE_BYTES]).with_timestamp(1_700_000_000_000 + i as i64)
}

/// Time `n` records sent one `send_batched` call each, flush included.
fn time_send_batched(n: u64) -> Duration {
    let (_dir, store) = fresh();
    let producer = Producer::new(&store, ProducerConfig::default()).unwrap();
    let template = record(0);
    let start = Instant::now();
    for _ in 0..n {
        black_box(producer.send_batched("t", template.clone()).unwrap());
    }
    producer.flush().unwrap();
    let elapsed = start.elapsed();
    assert_eq!(
        store
            .topic("t")
            .unwrap()
            .partition(0)
            .unwrap()
            .log_end_offset()
            .0,
        n
    );
    elapsed
}

/// Time `n` records (rounded up to whole batches) appended as pre-built 100-record batches.
fn time_append_100(n: u64) -> Duration {
    let (_dir, store) = fresh();
    let partition = store.topic("t").unwrap().partition(0).unwrap();
    let batch: Vec<Record> = (0..BATCH as u64).map(record).collect();
    let calls = n.div_ceil(BATCH as u64);
    let start = Instant::now();
    for _ in 0..calls {
        black_box(partition.append(black_box(&batch)).unwrap());
    }
    start.elapsed()
}

fn produce(c: &mut Criterion) {
    let mut group = c.benchmark_group("produce_100B_records");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Elements(1));
    group.bench_function("send_batched_single_record", |b| {
        b.iter_custom(time_send_batched)
    });
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("append_prebuilt_100_record_batch", |b| {
        b.iter_custom(|iters| time_append_100(iters * BATCH as u64))
    });
    group.finish();
}

/// The same work both ways, best of three, and the ratio of throughputs.
fn compare() {
    const N: u64 = 300_000;
    let best = |f: fn(u64) -> Duration| (0..3).map(|_| f(N)).min().unwrap();
    let batched = best(time_send_batched);
    let direct = best(time_append_100);
    let rate = |d: Duration| N as f64 / d.as_secs_f64();
    let ratio = rate(batched) / rate(direct);
    println!(
        "\ncomparison over {N} records of {VALUE_BYTES} B (best of 3):\n  \
         send_batched (one call per record): {:>12.0} records/s\n  \
         append of pre-built 100-record batches: {:>12.0} records/s\n  \
         ratio {ratio:.2} (target >= 0.50): {}",
        rate(batched),
        rate(direct),
        if ratio >= 0.5 { "met" } else { "NOT met" }
    );
}

criterion_group!(benches, produce);

fn main() {
    benches();
    compare();
    Criterion::default().configure_from_args().final_summary();
}
