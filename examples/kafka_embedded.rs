//! The embedded half of `.ci/interop-kafka-clients.sh`: what an in-process application does
//! with a data directory that Kafka clients also use through `examples/kafka_server.rs` (run
//! while that server is stopped: one process opens a directory at a time).
//!
//! ```text
//! kafka_embedded produce DIR TOPIC PARTITIONS COUNT   # Producer: keys k<i>, values v<i>
//! kafka_embedded consume DIR TOPIC                    # Consumer: "partition offset key value"
//! kafka_embedded resume DIR GROUP TOPIC               # where a group member starts: "partition offset"
//! ```
//!
//! Keys and values print as UTF-8 (lossy), a missing one as `-`. `resume` joins GROUP with
//! the embedded `GroupCoordinator` over the store's file offset store (`<DIR>/__offsets`, the
//! one the server commits to by default) and prints the position of every partition it gets.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use seglog::{
    AutoOffsetReset, Consumer, ConsumerConfig, GroupCoordinator, LogStore, Producer,
    ProducerConfig, Record, StoreConfig, TopicConfig, TopicPartition,
};

fn text(b: Option<&[u8]>) -> String {
    b.map_or_else(
        || "-".to_owned(),
        |b| String::from_utf8_lossy(b).into_owned(),
    )
}

fn produce(store: &LogStore, topic: &str, partitions: u32, count: usize) -> seglog::Result<()> {
    if store.topic(topic).is_err() {
        store.create_topic(topic, TopicConfig::new(partitions))?;
    }
    let producer = Producer::new(store, ProducerConfig::default())?;
    for i in 0..count {
        producer.send(
            topic,
            Record::new(format!("v{i}")).with_key(format!("k{i}")),
        )?;
    }
    producer.close()
}

fn consume(store: &LogStore, topic: &str) -> seglog::Result<()> {
    let groups = Arc::new(GroupCoordinator::open(store)?);
    let mut consumer = Consumer::new(store, groups, ConsumerConfig::default())?;
    let partitions = store.topic(topic)?.partition_count();
    let tps: Vec<TopicPartition> = (0..partitions)
        .map(|p| TopicPartition::new(topic, p))
        .collect();
    consumer.assign(tps.clone())?;
    let mut left: u64 = 0;
    for tp in &tps {
        consumer.seek_to_beginning(tp)?;
        left += consumer.lag(tp)?;
    }
    while left > 0 {
        let records = consumer.poll(1000, Duration::from_secs(5))?;
        if records.is_empty() {
            break;
        }
        for r in records {
            left -= 1;
            println!(
                "{} {} {} {}",
                r.partition,
                r.offset.0,
                text(r.key.as_deref()),
                text(r.value.as_deref())
            );
        }
    }
    Ok(())
}

fn resume(store: &LogStore, group: &str, topic: &str) -> seglog::Result<()> {
    let groups = Arc::new(GroupCoordinator::open(store)?);
    let config = ConsumerConfig::default().with_auto_offset_reset(AutoOffsetReset::Latest);
    let mut consumer = Consumer::new(store, groups, config)?;
    consumer.subscribe(group, [topic])?;
    // The first poll joins the group; `committed` then reads the shared offset store.
    consumer.poll(1, Duration::from_millis(100))?;
    let mut assigned = consumer.assignment();
    assigned.sort();
    for tp in assigned {
        let committed = consumer.committed(&tp)?.map(|c| c.offset.0);
        println!(
            "{} {}",
            tp.partition,
            committed.map_or_else(|| "-".to_owned(), |o| o.to_string())
        );
    }
    consumer.close()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).map(String::as_str).ok_or("missing argument");
    let store = LogStore::open(Path::new(arg(1)?), StoreConfig::default())?;
    match arg(0)? {
        "produce" => produce(&store, arg(2)?, arg(3)?.parse()?, arg(4)?.parse()?)?,
        "consume" => consume(&store, arg(2)?)?,
        "resume" => resume(&store, arg(2)?, arg(3)?)?,
        other => return Err(format!("unknown command {other}").into()),
    }
    store.close()?;
    Ok(())
}
