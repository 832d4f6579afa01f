//! Consumer `poll` over a warm topic against raw partition reads of the same records.
//!
//! One partition of 200,000 records of 100 B (2,000 batches of 100) under `NoSync`, read
//! from offset 0 to the end, every record's value touched:
//!
//! - `raw_partition_read`: `Partition::read(next, 1 MiB)` and `records()`;
//! - `consumer_poll`: a manually assigned `Consumer` seeking to 0 and `poll(10_000, 0)` until
//!   the end.
//!
//! Criterion reports both as records per second; the target is `consumer_poll` at ≥ 0.8× of
//! `raw_partition_read`. Quick run: `cargo bench --bench consumer -- --quick`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use seglog::{
    Consumer, ConsumerConfig, Durability, GroupCoordinator, LogStore, MemoryOffsetStore, Offset,
    PartitionConfig, Record, StoreConfig, TopicConfig, TopicPartition,
};

const RECORDS: u64 = 200_000;

fn warm_topic() -> (tempfile::TempDir, LogStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(
        dir.path(),
        StoreConfig::default().with_maintenance_interval(None),
    )
    .unwrap();
    let config = PartitionConfig::default()
        .with_durability(Durability::NoSync)
        .with_retention_ms(None);
    let topic = store
        .create_topic("t", TopicConfig::new(1).with_partition_config(config))
        .unwrap();
    let batch: Vec<Record> = (0..100)
        .map(|i| Record::new(vec![b'v'; 100]).with_timestamp(1_700_000_000_000 + i))
        .collect();
    for _ in 0..RECORDS / 100 {
        topic.append_to(0, &batch).unwrap();
    }
    (dir, store)
}

fn poll_vs_read(c: &mut Criterion) {
    let (_dir, store) = warm_topic();
    let tp = TopicPartition::new("t", 0);
    let partition = store.partition(&tp).unwrap();
    let groups = Arc::new(GroupCoordinator::for_store(
        &store,
        Arc::new(MemoryOffsetStore::new()),
    ));
    let mut consumer = Consumer::new(
        &store,
        groups,
        ConsumerConfig::default().with_auto_commit(false),
    )
    .unwrap();
    consumer.assign(vec![tp.clone()]).unwrap();

    let mut group = c.benchmark_group("consume_200k_records");
    group.throughput(Throughput::Elements(RECORDS));
    group.bench_function("raw_partition_read", |b| {
        b.iter(|| {
            let mut next = Offset(0);
            let mut bytes = 0usize;
            while next.0 < RECORDS {
                let read = partition.read(next, 1 << 20).unwrap();
                for r in read.records() {
                    bytes += r.unwrap().value.map_or(0, |v| v.len());
                }
                next = read.next_offset();
            }
            black_box(bytes)
        })
    });
    group.bench_function("consumer_poll", |b| {
        b.iter(|| {
            consumer.seek(&tp, Offset(0)).unwrap();
            let mut seen = 0u64;
            let mut bytes = 0usize;
            while seen < RECORDS {
                for r in consumer.poll(10_000, Duration::ZERO).unwrap() {
                    bytes += r.value.map_or(0, |v| v.len());
                    seen += 1;
                }
            }
            black_box(bytes)
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = poll_vs_read
}
criterion_main!(benches);
