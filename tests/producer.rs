//! `Producer`: synchronous sends, batching by size and linger, flush and close, errors.
//!
//! Every test reads the partitions back and checks what the producer reported against what
//! is on disk: offsets, values, and how records were grouped into batches
//! (`read(..).batches()`). Linger-dependent grouping is checked with a linger far longer
//! than the test plus an explicit `flush`, so no assertion depends on timing. Append errors
//! are injected with the fault seam and must reach every handle of the failed batch; close
//! and drop must append everything accepted; several threads sending at once must lose
//! nothing, duplicate nothing, and keep each thread's per-key order.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use seglog::testing::{SimError, SimFs, SimOp};
use seglog::{
    DefaultPartitioner, Durability, Error, LogStore, Offset, Partition, PartitionConfig, Producer,
    ProducerConfig, Record, StoreConfig, TopicConfig,
};

const HOUR: Duration = Duration::from_secs(3600);

fn store() -> (tempfile::TempDir, LogStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(
        dir.path(),
        StoreConfig::default().with_maintenance_interval(None),
    )
    .unwrap();
    (dir, store)
}

fn fast_config() -> PartitionConfig {
    PartitionConfig::default().with_durability(Durability::NoSync)
}

fn create(store: &LogStore, name: &str, partitions: u32) -> Arc<seglog::Topic> {
    store
        .create_topic(
            name,
            TopicConfig::new(partitions).with_partition_config(fast_config()),
        )
        .unwrap()
}

/// `(offset, value)` of every record, and the record count of every batch.
fn contents(p: &Partition) -> (Vec<(u64, String)>, Vec<u32>) {
    let (mut records, mut batches) = (Vec::new(), Vec::new());
    let mut next = p.log_start_offset();
    while next < p.high_watermark() {
        let read = p.read(next, 1 << 20).unwrap();
        batches.extend(read.batches().iter().map(|b| b.record_count()));
        for r in read.records() {
            let r = r.unwrap();
            let value = String::from_utf8(r.value.unwrap().to_vec()).unwrap();
            records.push((r.offset.0, value));
        }
        next = read.next_offset();
    }
    (records, batches)
}

fn values(p: &Partition) -> Vec<String> {
    contents(p).0.into_iter().map(|(_, v)| v).collect()
}

#[test]
fn send_returns_the_partition_and_offset_it_wrote() {
    let (_dir, store) = store();
    let topic = create(&store, "t", 4);
    let producer = Producer::new(&store, ProducerConfig::default()).unwrap();
    for i in 0..20u64 {
        let key = format!("key-{}", i % 3);
        let (p, offset) = producer
            .send("t", Record::new(format!("v{i}")).with_key(key.clone()))
            .unwrap();
        assert_eq!(p, DefaultPartitioner::partition_for_key(key.as_bytes(), 4));
        let read = topic.partition(p).unwrap().read(offset, 1 << 20).unwrap();
        assert_eq!(read.batches().len(), 1, "one batch per send");
        let rec = read.records().next().unwrap().unwrap();
        assert_eq!(rec.value.as_deref(), Some(format!("v{i}").as_bytes()));
    }
    let offset = producer.send_to("t", 3, Record::new("explicit")).unwrap();
    assert_eq!(
        values(&topic.partition(3).unwrap()).last().unwrap(),
        "explicit"
    );
    assert_eq!(offset.next(), topic.partition(3).unwrap().log_end_offset());

    for bad in [4, 100] {
        assert!(matches!(
            producer.send_to("t", bad, Record::new("x")),
            Err(Error::PartitionOutOfRange { partition, partition_count: 4, .. }) if partition == bad
        ));
        assert!(matches!(
            producer.send_batched_to("t", bad, Record::new("x")),
            Err(Error::PartitionOutOfRange { .. })
        ));
    }
    assert!(matches!(
        producer.send("nope", Record::new("x")),
        Err(Error::UnknownTopic { topic }) if topic == "nope"
    ));
    assert!(matches!(
        producer.send_batched("nope", Record::new("x")),
        Err(Error::UnknownTopic { .. })
    ));
}

#[test]
fn records_sent_within_linger_land_in_one_batch() {
    let (_dir, store) = store();
    let topic = create(&store, "t", 1);
    let producer = Producer::new(
        &store,
        ProducerConfig::default()
            .with_linger(HOUR)
            .with_batch_bytes(1 << 20),
    )
    .unwrap();
    let handles: Vec<_> = (0..10)
        .map(|i| {
            producer
                .send_batched("t", Record::new(format!("r{i}")))
                .unwrap()
        })
        .collect();
    // Nothing is appended before the batch is due or flushed.
    assert!(handles.iter().all(|h| !h.is_ready()));
    assert_eq!(topic.partition(0).unwrap().log_end_offset(), Offset(0));
    producer.flush().unwrap();
    for (i, h) in handles.iter().enumerate() {
        assert!(h.is_ready());
        assert_eq!(h.wait().unwrap(), (0, Offset(i as u64)));
        assert_eq!((h.topic(), h.partition()), ("t", 0));
    }
    let (records, batches) = contents(&topic.partition(0).unwrap());
    assert_eq!(batches, [10], "one batch of ten");
    let expected: Vec<(u64, String)> = (0..10).map(|i| (i, format!("r{i}"))).collect();
    assert_eq!(records, expected);
    // Flushing with nothing pending is a no-op.
    producer.flush().unwrap();
    assert_eq!(contents(&topic.partition(0).unwrap()).1, [10]);
}

#[test]
fn batches_are_cut_at_batch_bytes_without_waiting() {
    let (_dir, store) = store();
    let topic = create(&store, "t", 1);
    // 100-byte values are estimated at 136 bytes: three fit in 500, a fourth does not.
    let producer = Producer::new(
        &store,
        ProducerConfig::default()
            .with_linger(HOUR)
            .with_batch_bytes(500),
    )
    .unwrap();
    let handles: Vec<_> = (0..10)
        .map(|i| {
            let value = format!("{i:0>100}");
            producer.send_batched("t", Record::new(value)).unwrap()
        })
        .collect();
    // The first nine went out in full batches as the tenth record arrived; no timer or
    // flush was involved.
    assert!(handles[..9].iter().all(|h| h.is_ready()));
    assert!(!handles[9].is_ready());
    producer.flush().unwrap();
    let (records, batches) = contents(&topic.partition(0).unwrap());
    assert_eq!(batches, [3, 3, 3, 1]);
    assert_eq!(records.len(), 10);
    for (i, h) in handles.iter().enumerate() {
        assert_eq!(h.wait().unwrap().1, Offset(i as u64));
        assert_eq!(records[i].1, format!("{i:0>100}"));
    }
    // A record larger than batch_bytes gets a batch of its own.
    let big = producer
        .send_batched("t", Record::new(vec![b'b'; 2000]))
        .unwrap();
    assert!(big.is_ready());
    assert_eq!(big.wait().unwrap().1, Offset(10));
}

#[test]
fn the_linger_timer_appends_without_flush() {
    let (_dir, store) = store();
    let topic = create(&store, "t", 2);
    let producer = Producer::new(
        &store,
        ProducerConfig::default().with_linger(Duration::from_millis(20)),
    )
    .unwrap();
    let handles: Vec<_> = (0..6)
        .map(|i| {
            producer
                .send_batched("t", Record::new(format!("r{i}")))
                .unwrap()
        })
        .collect();
    // No flush: only the timer can complete these.
    let mut per_partition: HashMap<u32, Vec<u64>> = HashMap::new();
    for h in &handles {
        let (p, off) = h.wait().unwrap();
        per_partition.entry(p).or_default().push(off.0);
    }
    assert_eq!(per_partition[&0], [0, 1, 2]);
    assert_eq!(per_partition[&1], [0, 1, 2]);
    assert_eq!(values(&topic.partition(0).unwrap()), ["r0", "r2", "r4"]);
    // A later batch after the first one was appended is timed again.
    let h = producer.send_batched("t", Record::new("late")).unwrap();
    assert_eq!(h.wait().unwrap(), (0, Offset(3)));
}

#[test]
fn zero_linger_appends_before_send_batched_returns() {
    let (_dir, store) = store();
    let topic = create(&store, "t", 1);
    let producer = Producer::new(
        &store,
        ProducerConfig::default().with_linger(Duration::ZERO),
    )
    .unwrap();
    for i in 0..3 {
        let h = producer.send_batched("t", Record::new("x")).unwrap();
        assert!(h.is_ready());
        assert_eq!(h.wait().unwrap(), (0, Offset(i)));
    }
    assert_eq!(contents(&topic.partition(0).unwrap()).1, [1, 1, 1]);
}

#[test]
fn close_and_drop_append_everything_accepted() {
    let (_dir, store) = store();
    let topic = create(&store, "t", 3);
    let config = ProducerConfig::default()
        .with_linger(HOUR)
        .with_batch_bytes(1 << 20);
    let producer = Producer::new(&store, config.clone()).unwrap();
    let handles: Vec<_> = (0..90)
        .map(|i| {
            producer
                .send_batched("t", Record::new(format!("c{i}")))
                .unwrap()
        })
        .collect();
    producer.close().unwrap();
    assert!(handles.iter().all(|h| h.wait().is_ok()));
    assert!(matches!(
        producer.send_batched("t", Record::new("late")),
        Err(Error::ProducerClosed)
    ));
    assert!(matches!(
        producer.send("t", Record::new("late")),
        Err(Error::ProducerClosed)
    ));
    producer.close().unwrap();

    // Drop without close: the same.
    let producer = Producer::new(&store, config).unwrap();
    let handles: Vec<_> = (0..30)
        .map(|i| {
            producer
                .send_batched("t", Record::new(format!("d{i}")))
                .unwrap()
        })
        .collect();
    drop(producer);
    assert!(handles.iter().all(|h| h.is_ready() && h.wait().is_ok()));

    let mut all: Vec<String> = topic.partitions().iter().flat_map(|p| values(p)).collect();
    all.sort();
    let mut expected: Vec<String> = (0..90)
        .map(|i| format!("c{i}"))
        .chain((0..30).map(|i| format!("d{i}")))
        .collect();
    expected.sort();
    assert_eq!(all, expected);
    for p in topic.partitions() {
        // Round-robin over 3 partitions: each got one close-time batch of 30 and one of 10.
        assert_eq!(contents(&p).1, [30, 10]);
    }
}

#[test]
fn append_errors_reach_every_handle_of_the_batch() {
    // The whole store on the simulation (a store opens its partitions on its own file
    // system).
    let faults = Arc::new(SimFs::new());
    let store = LogStore::open(
        "/data",
        StoreConfig::default()
            .with_maintenance_interval(None)
            .with_file_system(faults.clone()),
    )
    .unwrap();
    let topic = store
        .create_topic(
            "t",
            TopicConfig::new(1).with_partition_config(fast_config()),
        )
        .unwrap();
    let producer = Producer::new(&store, ProducerConfig::default().with_linger(HOUR)).unwrap();
    let ok = producer.send_batched("t", Record::new("ok")).unwrap();
    producer.flush().unwrap();
    assert_eq!(ok.wait().unwrap(), (0, Offset(0)));

    let doomed: Vec<_> = (0..5)
        .map(|i| {
            producer
                .send_batched("t", Record::new(format!("x{i}")))
                .unwrap()
        })
        .collect();
    faults.fail_next(SimOp::Write, SimError::Enospc);
    let err = producer.flush().unwrap_err();
    assert!(
        matches!(&err, Error::SendFailed { topic, partition: 0, source } if topic == "t"
            && matches!(**source, Error::Io { .. })),
        "{err:?}"
    );
    for h in &doomed {
        let e = h.wait().unwrap_err();
        assert!(
            matches!(&e, Error::SendFailed { source, .. } if matches!(**source, Error::Io { .. })),
            "{e:?}"
        );
    }
    // The partition now refuses appends until reopened; later batches say so.
    let after = producer.send_batched("t", Record::new("after")).unwrap();
    assert!(producer.flush().is_err());
    assert!(matches!(
        after.wait(),
        Err(Error::SendFailed { source, .. }) if matches!(*source, Error::PreviousIoFailed)
    ));
    assert!(matches!(
        producer.send("t", Record::new("sync")),
        Err(Error::PreviousIoFailed)
    ));
    assert_eq!(values(&topic.partition(0).unwrap()), ["ok"]);
}

#[test]
fn rejected_records_do_not_spoil_their_batch() {
    let (_dir, store) = store();
    let topic = store
        .create_topic(
            "t",
            TopicConfig::new(1).with_partition_config(fast_config().with_record_bytes_max(100)),
        )
        .unwrap();
    let producer = Producer::new(&store, ProducerConfig::default().with_linger(HOUR)).unwrap();
    let a = producer.send_batched("t", Record::new("a")).unwrap();
    assert!(matches!(
        producer.send_batched("t", Record::new(vec![0u8; 101])),
        Err(Error::RecordTooLarge {
            size: 101,
            limit: 100
        })
    ));
    let b = producer.send_batched("t", Record::new("b")).unwrap();
    producer.flush().unwrap();
    assert_eq!(
        (a.wait().unwrap().1, b.wait().unwrap().1),
        (Offset(0), Offset(1))
    );
    assert_eq!(values(&topic.partition(0).unwrap()), ["a", "b"]);
}

#[test]
fn a_synchronous_send_keeps_order_after_batched_ones() {
    let (_dir, store) = store();
    let topic = create(&store, "t", 1);
    let producer = Producer::new(&store, ProducerConfig::default().with_linger(HOUR)).unwrap();
    let handles: Vec<_> = (0..4)
        .map(|i| {
            producer
                .send_batched("t", Record::new(format!("b{i}")))
                .unwrap()
        })
        .collect();
    let (_, offset) = producer.send("t", Record::new("sync")).unwrap();
    assert_eq!(offset, Offset(4), "the open batch went first");
    assert!(handles.iter().all(|h| h.is_ready()));
    assert_eq!(
        values(&topic.partition(0).unwrap()),
        ["b0", "b1", "b2", "b3", "sync"]
    );
}

#[test]
fn deleted_topics_fail_their_handles_and_recreated_ones_work() {
    let (_dir, store) = store();
    create(&store, "t", 1);
    let producer = Producer::new(&store, ProducerConfig::default().with_linger(HOUR)).unwrap();
    let pending = producer.send_batched("t", Record::new("lost")).unwrap();
    store.delete_topic("t").unwrap();
    assert!(producer.flush().is_err());
    assert!(matches!(
        pending.wait(),
        Err(Error::SendFailed { source, .. }) if matches!(*source, Error::Closed)
    ));
    assert!(matches!(
        producer.send("t", Record::new("x")),
        Err(Error::UnknownTopic { .. })
    ));
    let topic = create(&store, "t", 1);
    let h = producer.send_batched("t", Record::new("new")).unwrap();
    producer.flush().unwrap();
    assert_eq!(h.wait().unwrap(), (0, Offset(0)));
    assert_eq!(
        producer.send("t", Record::new("sync")).unwrap(),
        (0, Offset(1))
    );
    assert_eq!(values(&topic.partition(0).unwrap()), ["new", "sync"]);
}

#[test]
fn closing_the_store_first_fails_buffered_records_instead_of_hanging() {
    let (_dir, store) = store();
    create(&store, "t", 1);
    let producer = Producer::new(&store, ProducerConfig::default().with_linger(HOUR)).unwrap();
    let h = producer.send_batched("t", Record::new("x")).unwrap();
    store.close().unwrap();
    assert!(producer.close().is_err());
    assert!(matches!(
        h.wait(),
        Err(Error::SendFailed { source, .. }) if matches!(*source, Error::Closed)
    ));
}

#[test]
fn concurrent_senders_lose_nothing_and_keep_per_key_order() {
    let (_dir, store) = store();
    let topic = create(&store, "t", 3);
    let producer = Arc::new(
        Producer::new(
            &store,
            ProducerConfig::default()
                .with_linger(Duration::from_millis(2))
                .with_batch_bytes(2048),
        )
        .unwrap(),
    );
    const THREADS: usize = 4;
    const PER_THREAD: usize = 600;
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let producer = producer.clone();
            std::thread::spawn(move || {
                let mut handles = Vec::new();
                for i in 0..PER_THREAD {
                    let key = format!("t{t}-k{}", i % 5);
                    let record = Record::new(format!("{t}:{i}")).with_key(key);
                    if i % 50 == 49 {
                        producer.send("t", record).unwrap();
                    } else {
                        handles.push(producer.send_batched("t", record).unwrap());
                    }
                }
                handles
            })
        })
        .collect();
    let handles: Vec<_> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    producer.close().unwrap();
    let mut reported: Vec<(u32, Offset)> = handles.iter().map(|h| h.wait().unwrap()).collect();
    reported.sort();
    reported.dedup();
    assert_eq!(
        reported.len(),
        handles.len(),
        "no two records share an offset"
    );

    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut total = 0;
    for p in topic.partitions() {
        // Per key (one thread, one partition), sequence numbers only grow with the offset.
        let mut last: HashMap<(usize, usize), usize> = HashMap::new();
        for (_, v) in contents(&p).0 {
            let (t, i) = v.split_once(':').unwrap();
            let (t, i): (usize, usize) = (t.parse().unwrap(), i.parse().unwrap());
            if let Some(prev) = last.insert((t, i % 5), i) {
                assert!(
                    prev < i,
                    "key t{t}-k{} out of order: {prev} then {i}",
                    i % 5
                );
            }
            *seen.entry(v).or_default() += 1;
            total += 1;
        }
    }
    assert_eq!(total, THREADS * PER_THREAD);
    assert!(seen.values().all(|&n| n == 1), "a record was duplicated");
}

#[test]
fn producer_is_shareable() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Producer>();
    assert_send_sync::<LogStore>();
    assert_send_sync::<seglog::SendHandle>();
}
