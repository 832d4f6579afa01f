//! Quickstart: a topic with three partitions in a temporary directory, a batching producer,
//! and a consumer group of two members that share the partitions and commit their progress.
//!
//! Run with `cargo run --example quickstart`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use seglog::{
    AutoOffsetReset, Consumer, ConsumerConfig, GroupCoordinator, LogStore, Offset, Producer,
    ProducerConfig, Record, StoreConfig, TopicConfig, TopicPartition,
};

fn main() -> seglog::Result<()> {
    let dir = tempfile::tempdir().expect("temporary directory");
    println!("data directory: {}", dir.path().display());

    // One store holds every topic; a topic is split into partitions (one directory each).
    let store = LogStore::open(dir.path(), StoreConfig::default())?;
    store.create_topic("orders", TopicConfig::new(3))?;
    println!("topics: {:?}", store.list_topics());

    // Produce: keyed records land on the partition Kafka's Java client would pick for the
    // key; batched sends are appended together, one batch per partition.
    let producer = Producer::new(&store, ProducerConfig::default())?;
    let mut handles = Vec::new();
    for i in 0..30 {
        let record = Record::new(format!("order {i}")).with_key(format!("customer-{}", i % 5));
        handles.push(producer.send_batched("orders", record)?);
    }
    producer.flush()?;
    let mut per_partition = BTreeMap::new();
    for handle in handles {
        let (partition, _offset) = handle.wait()?;
        *per_partition.entry(partition).or_insert(0) += 1;
    }
    println!("produced 30 records, per partition: {per_partition:?}");

    // Consume as a group: the two members split the three partitions between them, and
    // commit what they processed, so a restarted member resumes where it stopped.
    let groups = Arc::new(GroupCoordinator::open(&store)?);
    let config = ConsumerConfig::default().with_auto_offset_reset(AutoOffsetReset::Earliest);
    let mut members: Vec<Consumer> = (0..2)
        .map(|_| {
            let mut c = Consumer::new(&store, groups.clone(), config.clone())?;
            c.subscribe("billing", ["orders"])?;
            Ok(c)
        })
        .collect::<seglog::Result<_>>()?;
    let mut consumed = 0;
    while consumed < 30 {
        for (m, member) in members.iter_mut().enumerate() {
            for record in member.poll(100, Duration::from_millis(50))? {
                consumed += 1;
                if record.offset.0 < 2 {
                    println!(
                        "member {m} got {}-{} offset {}: {:?}",
                        record.topic,
                        record.partition,
                        record.offset,
                        String::from_utf8_lossy(record.value.as_deref().unwrap_or_default())
                    );
                }
            }
            member.commit()?;
        }
    }
    for (m, member) in members.iter().enumerate() {
        let owned: Vec<String> = member
            .assignment()
            .iter()
            .map(|tp| tp.to_string())
            .collect();
        println!("member {m} owns {owned:?}");
    }
    let tp = TopicPartition::new("orders", 0);
    println!(
        "group 'billing' committed offset for orders-0: {:?}",
        groups
            .offset_store()
            .fetch("billing", &tp)?
            .map(|c| c.offset)
    );

    // The layer below: a partition is an offset-addressed log you can read from anywhere.
    let partition = store.partition(&tp)?;
    let read = partition.read(Offset(0), 64 * 1024)?;
    println!(
        "orders-0 holds offsets {}..{} in {} batch(es)",
        partition.log_start_offset(),
        partition.log_end_offset(),
        read.batches().len()
    );

    for member in members {
        member.close()?;
    }
    producer.close()?;
    drop(groups);
    store.close()?;
    drop(store);

    // Everything is on disk: reopening restores the topics, the records and the commits.
    let store = LogStore::open(dir.path(), StoreConfig::default())?;
    let groups = GroupCoordinator::open(&store)?;
    println!(
        "reopened: topics {:?}, orders-0 ends at {}, 'billing' committed {:?}",
        store.list_topics(),
        store.partition(&tp)?.log_end_offset(),
        groups
            .offset_store()
            .fetch("billing", &tp)?
            .map(|c| c.offset)
    );
    Ok(())
}
