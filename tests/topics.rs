//! `LogStore` topic administration, persistence and maintenance, on real directories.
//!
//! Topics are created, listed, grown, deleted and looked up; every change is checked to
//! survive a reopen (metadata, per-topic configuration and records), a torn metadata temp
//! file is ignored, damaged or missing metadata is a typed error, leftover partition
//! directories of interrupted operations are swept, and names follow Kafka's rules. The
//! maintenance thread is shown to apply retention (tiny segments, records stamped in 1970)
//! and to stop on `close` and on drop (a leaked thread would keep the directory locked, so
//! reopening proves it is gone); `run_maintenance` does the same work without a thread.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use seglog::{
    CleanupPolicy, Durability, Error, LogStore, Offset, Partition, PartitionConfig, Record,
    StoreConfig, TopicConfig, TopicPartition, TOPICS_METADATA_FILE,
};

fn no_thread() -> StoreConfig {
    StoreConfig::default().with_maintenance_interval(None)
}

fn fast_config() -> PartitionConfig {
    PartitionConfig::default().with_durability(Durability::NoSync)
}

fn topic_config(partitions: u32) -> TopicConfig {
    TopicConfig::new(partitions).with_partition_config(fast_config())
}

/// Every record value of a partition, in offset order.
fn values(p: &Partition) -> Vec<String> {
    let mut out = Vec::new();
    let mut next = p.log_start_offset();
    while next < p.high_watermark() {
        let read = p.read(next, 1 << 20).unwrap();
        for r in read.records() {
            out.push(String::from_utf8(r.unwrap().value.unwrap().to_vec()).unwrap());
        }
        next = read.next_offset();
    }
    out
}

#[test]
fn create_list_lookup_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let orders_config = fast_config()
        .with_segment_bytes(4096)
        .with_retention_ms(Some(123_456))
        .with_cleanup_policy(CleanupPolicy::CompactAndDelete);
    {
        let store = LogStore::open(dir.path(), no_thread()).unwrap();
        assert!(store.list_topics().is_empty());
        let orders = store
            .create_topic(
                "orders",
                TopicConfig::new(3).with_partition_config(orders_config.clone()),
            )
            .unwrap();
        store
            .create_topic("audit.log_v2-x", topic_config(1))
            .unwrap();
        assert_eq!(store.list_topics(), ["audit.log_v2-x", "orders"]);
        assert_eq!(orders.name(), "orders");
        assert_eq!(orders.partition_count(), 3);
        for n in 0..3 {
            assert!(dir.path().join(format!("orders-{n}")).is_dir());
            orders
                .append_to(n, &[Record::new(format!("o{n}")).with_key(format!("k{n}"))])
                .unwrap();
        }
        let same = store.topic("orders").unwrap();
        assert!(Arc::ptr_eq(&orders, &same));
        assert!(Arc::ptr_eq(
            &store.partition(&TopicPartition::new("orders", 2)).unwrap(),
            &orders.partition(2).unwrap()
        ));
        store.close().unwrap();
    }
    let store = LogStore::open(dir.path(), no_thread()).unwrap();
    assert_eq!(store.list_topics(), ["audit.log_v2-x", "orders"]);
    let orders = store.topic("orders").unwrap();
    assert_eq!(orders.partition_count(), 3);
    let c = orders.partition_config();
    assert_eq!(c.segment_bytes, 4096);
    assert_eq!(c.retention_ms, Some(123_456));
    assert_eq!(c.durability, Durability::NoSync);
    assert_eq!(c.cleanup_policy, CleanupPolicy::CompactAndDelete);
    for n in 0..3 {
        let p = orders.partition(n).unwrap();
        assert!(p.recovery_report().clean_shutdown);
        assert_eq!(values(&p), [format!("o{n}")]);
    }
    assert_eq!(
        store
            .topic("audit.log_v2-x")
            .unwrap()
            .partition_config()
            .segment_bytes,
        PartitionConfig::default().segment_bytes
    );
}

#[test]
fn unknown_duplicate_and_invalid_requests_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path(), no_thread()).unwrap();
    store.create_topic("t", topic_config(2)).unwrap();
    assert!(matches!(
        store.create_topic("t", topic_config(5)),
        Err(Error::TopicExists { topic }) if topic == "t"
    ));
    assert_eq!(store.topic("t").unwrap().partition_count(), 2);
    assert!(matches!(store.topic("nope"), Err(Error::UnknownTopic { topic }) if topic == "nope"));
    assert!(matches!(
        store.delete_topic("nope"),
        Err(Error::UnknownTopic { .. })
    ));
    assert!(matches!(
        store.add_partitions("nope", 3),
        Err(Error::UnknownTopic { .. })
    ));
    assert!(matches!(
        store.partition(&TopicPartition::new("t", 2)),
        Err(Error::PartitionOutOfRange {
            partition: 2,
            partition_count: 2,
            ..
        })
    ));
    for zero_or_huge in [0, seglog::TOPIC_PARTITIONS_MAX + 1] {
        assert!(matches!(
            store.create_topic("u", topic_config(zero_or_huge)),
            Err(Error::InvalidConfig {
                field: "partitions",
                ..
            })
        ));
    }
    assert!(matches!(
        store.create_topic(
            "u",
            TopicConfig::new(1).with_partition_config(fast_config().with_segment_bytes(1))
        ),
        Err(Error::InvalidConfig {
            field: "segment_bytes",
            ..
        })
    ));
    assert_eq!(store.list_topics(), ["t"]);
    assert!(
        !dir.path().join("u-0").exists(),
        "a rejected topic leaves nothing on disk"
    );
    assert!(matches!(
        LogStore::open(dir.path(), no_thread()),
        Err(Error::StoreAlreadyOpen { .. })
    ));
    assert!(matches!(
        LogStore::open(
            dir.path(),
            StoreConfig::default().with_maintenance_interval(Some(Duration::ZERO))
        ),
        Err(Error::InvalidConfig { .. })
    ));
}

#[test]
fn the_longest_topic_name_can_be_created_grown_and_deleted() {
    // Kafka's 249-character names made delete fail with "File name too long" after the
    // deletion was committed: `<name>-<n>.deleted` exceeded 255 bytes. The limit now leaves
    // room for every file name a topic will need.
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path(), no_thread()).unwrap();
    let name = "n".repeat(seglog::TOPIC_NAME_LEN_MAX);
    store.create_topic(&name, topic_config(2)).unwrap();
    store.add_partitions(&name, 12).unwrap();
    store
        .topic(&name)
        .unwrap()
        .append_to(11, &[Record::new("x")])
        .unwrap();
    store.delete_topic(&name).unwrap();
    assert!(store.list_topics().is_empty());
    assert_eq!(
        fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with('n')
            })
            .count(),
        0,
        "every partition directory is gone"
    );
    let kafka_max = "k".repeat(249);
    let err = store.create_topic(&kafka_max, topic_config(1)).unwrap_err();
    assert!(matches!(err, Error::InvalidTopicName { .. }), "{err:?}");
    assert!(err.to_string().contains("242"), "{err}");
    assert!(store.list_topics().is_empty(), "nothing was created");
}

#[test]
fn topic_names_that_collide_after_dot_to_underscore_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path(), no_thread()).unwrap();
    store.create_topic("t.x", topic_config(1)).unwrap();
    for clash in ["t_x", "t.x".replace('.', "_").as_str()] {
        let err = store.create_topic(clash, topic_config(1)).unwrap_err();
        assert!(
            matches!(&err, Error::TopicCollision { topic, existing } if topic == clash && existing == "t.x"),
            "{err:?}"
        );
    }
    assert!(matches!(
        store.create_topic("t.x", topic_config(1)),
        Err(Error::TopicExists { .. })
    ));
    store.create_topic("t-x", topic_config(1)).unwrap();
    assert_eq!(store.list_topics(), ["t-x", "t.x"]);
    // Once the colliding topic is deleted the name is free.
    store.delete_topic("t.x").unwrap();
    store.create_topic("t_x", topic_config(1)).unwrap();
}

#[test]
fn topic_names_follow_kafkas_rules() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path(), no_thread()).unwrap();
    let long_ok = "a".repeat(seglog::TOPIC_NAME_LEN_MAX);
    for good in ["a", "A-Z_0.9", "..a", "-", "_", long_ok.as_str()] {
        store.create_topic(good, topic_config(1)).unwrap();
        assert!(store.topic(good).is_ok());
    }
    let too_long = "a".repeat(seglog::TOPIC_NAME_LEN_MAX + 1);
    for bad in [
        "",
        ".",
        "..",
        too_long.as_str(),
        "a/b",
        "a b",
        "caf\u{e9}",
        "a\0",
        "../x",
        "a:b",
        "__consumer_offsets",
        "__transaction_state",
    ] {
        let err = store.create_topic(bad, topic_config(1)).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidTopicName { name, .. } if name == bad),
            "{bad:?}: {err:?}"
        );
    }
    assert_eq!(store.list_topics().len(), 6);
    // Topics whose directory names look alike stay apart: "x-1" partition 0 is "x-1-0",
    // topic "x" partition 10 is "x-10".
    store.create_topic("x", topic_config(11)).unwrap();
    store.create_topic("x-1", topic_config(1)).unwrap();
    store
        .topic("x")
        .unwrap()
        .append_to(10, &[Record::new("x10")])
        .unwrap();
    store
        .topic("x-1")
        .unwrap()
        .append_to(0, &[Record::new("x-1/0")])
        .unwrap();
    drop(store);
    let store = LogStore::open(dir.path(), no_thread()).unwrap();
    assert_eq!(
        values(&store.topic("x").unwrap().partition(10).unwrap()),
        ["x10"]
    );
    assert_eq!(
        values(&store.topic("x-1").unwrap().partition(0).unwrap()),
        ["x-1/0"]
    );
}

#[test]
fn add_partitions_only_grows_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = LogStore::open(dir.path(), no_thread()).unwrap();
        let t = store.create_topic("t", topic_config(2)).unwrap();
        t.append_to(1, &[Record::new("before")]).unwrap();
        for bad in [0, 1, 2] {
            assert!(matches!(
                store.add_partitions("t", bad),
                Err(Error::InvalidPartitionCount { current: 2, requested, .. }) if requested == bad
            ));
        }
        assert!(matches!(
            store.add_partitions("t", seglog::TOPIC_PARTITIONS_MAX + 1),
            Err(Error::InvalidPartitionCount { .. })
        ));
        store.add_partitions("t", 5).unwrap();
        // The handle taken before sees the new partitions.
        assert_eq!(t.partition_count(), 5);
        t.append_to(4, &[Record::new("new")]).unwrap();
        assert_eq!(values(&t.partition(1).unwrap()), ["before"]);
    }
    let store = LogStore::open(dir.path(), no_thread()).unwrap();
    let t = store.topic("t").unwrap();
    assert_eq!(t.partition_count(), 5);
    assert_eq!(values(&t.partition(1).unwrap()), ["before"]);
    assert_eq!(values(&t.partition(4).unwrap()), ["new"]);
    assert_eq!(t.partition_config().durability, Durability::NoSync);
}

#[test]
fn delete_removes_data_and_old_handles_fail() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path(), no_thread()).unwrap();
    let old = store.create_topic("gone", topic_config(2)).unwrap();
    old.append_to(0, &[Record::new("old data")]).unwrap();
    let old_partition = old.partition(0).unwrap();
    let read_before = old_partition.read(Offset(0), 1 << 20).unwrap();
    store.create_topic("kept", topic_config(1)).unwrap();

    store.delete_topic("gone").unwrap();
    assert_eq!(store.list_topics(), ["kept"]);
    assert!(old.is_deleted());
    assert!(!dir.path().join("gone-0").exists());
    assert!(!dir.path().join("gone-1").exists());
    assert!(!dir.path().join("gone-0.deleted").exists());
    assert!(matches!(
        store.topic("gone"),
        Err(Error::UnknownTopic { .. })
    ));
    assert!(matches!(
        old.append_to(0, &[Record::new("x")]),
        Err(Error::UnknownTopic { .. })
    ));
    assert!(matches!(
        old_partition.append(&[Record::new("x")]),
        Err(Error::Closed)
    ));
    // A batch read before the deletion is still whole.
    let rec = read_before.records().next().unwrap().unwrap();
    assert_eq!(rec.value.as_deref(), Some(&b"old data"[..]));

    // The name is free again, and the new topic starts empty.
    let new = store.create_topic("gone", topic_config(1)).unwrap();
    assert_eq!(new.partition(0).unwrap().log_end_offset(), Offset(0));
    drop((old, old_partition, new));
    store.delete_topic("gone").unwrap();
    drop(store);
    let store = LogStore::open(dir.path(), no_thread()).unwrap();
    assert_eq!(store.list_topics(), ["kept"]);
}

#[test]
fn torn_temp_file_is_ignored_and_damage_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = LogStore::open(dir.path(), no_thread()).unwrap();
        store.create_topic("t", topic_config(2)).unwrap();
    }
    let meta = dir.path().join(TOPICS_METADATA_FILE);
    let good = fs::read(&meta).unwrap();
    // A crash while writing the next version leaves a torn temp file beside the real one.
    let tmp = dir.path().join("topics.meta.tmp");
    fs::write(&tmp, &good[..good.len() / 2]).unwrap();
    {
        let store = LogStore::open(dir.path(), no_thread()).unwrap();
        assert_eq!(store.list_topics(), ["t"]);
        assert_eq!(store.topic("t").unwrap().partition_count(), 2);
        assert!(!tmp.exists(), "the leftover temp file is removed");
    }
    // Damage to the metadata itself is not guessed around.
    let mut bad = good.clone();
    let i = bad.iter().position(|&b| b == b'=').unwrap() + 1;
    bad[i] = if bad[i] == b'9' { b'8' } else { b'9' };
    fs::write(&meta, &bad).unwrap();
    assert!(matches!(
        LogStore::open(dir.path(), no_thread()),
        Err(Error::CorruptMetadata {
            reason: "CRC mismatch",
            ..
        })
    ));
    fs::write(&meta, &good[..good.len() - 3]).unwrap();
    assert!(matches!(
        LogStore::open(dir.path(), no_thread()),
        Err(Error::CorruptMetadata { .. })
    ));
    // Partition directories without any metadata: refuse rather than start empty.
    fs::remove_file(&meta).unwrap();
    assert!(matches!(
        LogStore::open(dir.path(), no_thread()),
        Err(Error::CorruptMetadata { .. })
    ));
    fs::write(&meta, &good).unwrap();
    // A listed partition whose directory vanished is reported, not recreated empty.
    fs::remove_dir_all(dir.path().join("t-1")).unwrap();
    let err = LogStore::open(dir.path(), no_thread()).unwrap_err();
    assert!(
        matches!(&err, Error::CorruptMetadata { path, .. } if path.ends_with("t-1")),
        "{err:?}"
    );
}

/// A partition directory with one record, as an interrupted create would leave it.
fn leave_partition_dir(dir: &Path, name: &str) {
    let p = Partition::open(dir.join(name), fast_config()).unwrap();
    p.append(&[Record::new("never acknowledged as a topic")])
        .unwrap();
    p.close().unwrap();
}

#[test]
fn leftovers_of_interrupted_operations_are_swept_at_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = LogStore::open(dir.path(), no_thread()).unwrap();
        store.create_topic("t", topic_config(2)).unwrap();
    }
    // A create that never committed, partitions added but not committed, and a directory of
    // another layer that does not look like a partition.
    leave_partition_dir(dir.path(), "ghost-0");
    leave_partition_dir(dir.path(), "t-2");
    fs::create_dir(dir.path().join("ghost-1")).unwrap();
    // A deletion interrupted after the rename.
    leave_partition_dir(dir.path(), "gone-0.deleted");
    fs::create_dir(dir.path().join("__offsets")).unwrap();
    fs::write(dir.path().join("__offsets/x"), b"keep me").unwrap();
    // Someone else's directory that merely looks like a partition's name.
    fs::create_dir(dir.path().join("notes-0")).unwrap();
    fs::write(dir.path().join("notes-0/todo.txt"), b"mine").unwrap();
    {
        let store = LogStore::open(dir.path(), no_thread()).unwrap();
        assert_eq!(store.list_topics(), ["t"]);
        assert_eq!(store.topic("t").unwrap().partition_count(), 2);
        for swept in ["ghost-0", "ghost-1", "t-2", "gone-0.deleted"] {
            assert!(!dir.path().join(swept).exists(), "{swept}");
        }
        assert_eq!(
            fs::read(dir.path().join("__offsets/x")).unwrap(),
            b"keep me"
        );
        assert_eq!(
            fs::read(dir.path().join("notes-0/todo.txt")).unwrap(),
            b"mine"
        );
        // Creating a topic over that foreign directory fails instead of wiping it.
        assert!(matches!(
            store.create_topic("notes", topic_config(1)),
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::AlreadyExists
        ));
        assert_eq!(
            fs::read(dir.path().join("notes-0/todo.txt")).unwrap(),
            b"mine"
        );
        assert!(matches!(
            store.topic("notes"),
            Err(Error::UnknownTopic { .. })
        ));
        // Recreating the swept name starts empty.
        let ghost = store.create_topic("ghost", topic_config(1)).unwrap();
        assert_eq!(ghost.partition(0).unwrap().log_end_offset(), Offset(0));
        store.add_partitions("t", 3).unwrap();
        assert_eq!(
            store
                .topic("t")
                .unwrap()
                .partition(2)
                .unwrap()
                .log_end_offset(),
            Offset(0)
        );
    }
}

/// Issue 9, bug 8: a `close` that failed kept the directory locked until the store was
/// dropped, so it could not be reopened to recover. The fault: a directory squats on the
/// name of the partition's recovery-point temp file, so the checkpoint write in the
/// partition's close fails (EISDIR) after its data was fsynced.
#[test]
fn a_failed_close_releases_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path(), no_thread()).unwrap();
    let t = store.create_topic("t", topic_config(2)).unwrap();
    for n in 0..2 {
        t.append_to(n, &[Record::new(format!("r{n}"))]).unwrap();
    }
    let squatter = dir.path().join("t-0").join("recovery-point.tmp");
    fs::create_dir(&squatter).unwrap();
    assert!(store.close().is_err(), "the injected fault fails close");
    assert!(matches!(store.topic("t"), Err(Error::StoreClosed)));
    fs::remove_dir(&squatter).unwrap();
    // The failed store is still alive: its lock, and its partitions', must be gone.
    let reopened = LogStore::open(dir.path(), no_thread()).unwrap();
    let t = reopened.topic("t").unwrap();
    for n in 0..2 {
        let p = t.partition(n).unwrap();
        assert_eq!(values(&p), [format!("r{n}")]);
        assert_eq!(p.recovery_report().clean_shutdown, n == 1, "partition {n}");
    }
    drop(store);
    reopened.close().unwrap();
}

#[test]
fn operations_after_close_fail() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path(), no_thread()).unwrap();
    let t = store.create_topic("t", topic_config(1)).unwrap();
    store.close().unwrap();
    store.close().unwrap();
    assert!(matches!(
        store.create_topic("u", topic_config(1)),
        Err(Error::StoreClosed)
    ));
    assert!(matches!(store.topic("t"), Err(Error::StoreClosed)));
    assert!(matches!(store.delete_topic("t"), Err(Error::StoreClosed)));
    assert!(matches!(
        store.add_partitions("t", 2),
        Err(Error::StoreClosed)
    ));
    assert!(matches!(store.run_maintenance(), Err(Error::StoreClosed)));
    assert!(matches!(
        seglog::Producer::new(&store, seglog::ProducerConfig::default()),
        Err(Error::StoreClosed)
    ));
    assert!(matches!(
        t.append_to(0, &[Record::new("x")]),
        Err(Error::Closed)
    ));
}

/// A partition config whose segments roll after a few records and whose retention deletes
/// anything stamped before 1971.
fn retained_config() -> PartitionConfig {
    fast_config()
        .with_segment_bytes(1024)
        .with_retention_ms(Some(60_000))
}

/// Append 40 records of ~100 bytes stamped in 1970: several sealed, expired segments.
fn fill_old(topic: &seglog::Topic) {
    for i in 0..40 {
        topic
            .append_to(0, &[Record::new(vec![b'x'; 100]).with_timestamp(1_000 + i)])
            .unwrap();
    }
    assert!(topic.partition(0).unwrap().segment_count() > 3);
}

#[test]
fn the_maintenance_thread_applies_retention_and_stops_on_close() {
    let dir = tempfile::tempdir().unwrap();
    let end = {
        // Filled without a thread, so that only the reopened store's thread can delete.
        let store = LogStore::open(dir.path(), no_thread()).unwrap();
        let t = store
            .create_topic(
                "old",
                TopicConfig::new(1).with_partition_config(retained_config()),
            )
            .unwrap();
        fill_old(&t);
        t.partition(0).unwrap().log_end_offset()
    };
    let config = StoreConfig::default()
        .with_maintenance_interval(Some(Duration::from_millis(5)))
        .with_retention_check_interval(Duration::ZERO);
    let store = LogStore::open(dir.path(), config).unwrap();
    let t = store.topic("old").unwrap();
    let p = t.partition(0).unwrap();
    // Wait (without a timing assertion: the limit only turns a hang into a failure) until
    // the thread has deleted the expired sealed segments.
    let deadline = Instant::now() + Duration::from_secs(30);
    // `maintenance_runs` counts finished passes: wait for the deleting pass to finish too.
    while p.segment_count() > 1 || store.maintenance_runs() == 0 {
        assert!(Instant::now() < deadline, "retention never ran");
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(store.take_maintenance_failures().is_empty());
    // Only the active segment is left; nothing at or past the log end was touched.
    assert!(p.log_start_offset() > Offset(0));
    assert_eq!(p.log_end_offset(), end);
    store.close().unwrap();
    // Closing joined the thread: its count no longer moves, and the directory is free as
    // soon as our own handles are gone.
    let runs = store.maintenance_runs();
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(store.maintenance_runs(), runs);
    drop((t, p, store));
    let store = LogStore::open(dir.path(), no_thread()).unwrap();
    let p = store.topic("old").unwrap().partition(0).unwrap();
    assert_eq!(p.log_end_offset(), end);
    assert_eq!(p.segment_count(), 1);
}

#[test]
fn dropping_the_store_stops_the_thread_and_releases_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..3 {
        let store = LogStore::open(
            dir.path(),
            StoreConfig::default().with_maintenance_interval(Some(Duration::from_millis(1))),
        )
        .unwrap();
        if store.list_topics().is_empty() {
            store.create_topic("t", topic_config(2)).unwrap();
        }
        // If the thread (which holds the store's state) outlived the handle, the next open
        // would fail with StoreAlreadyOpen.
        drop(store);
    }
}

#[test]
fn run_maintenance_works_without_a_thread() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path(), no_thread()).unwrap();
    let old = store
        .create_topic(
            "old",
            TopicConfig::new(1).with_partition_config(retained_config()),
        )
        .unwrap();
    fill_old(&old);
    let segments = old.partition(0).unwrap().segment_count();
    let timed = store
        .create_topic(
            "timed",
            TopicConfig::new(2).with_partition_config(PartitionConfig::default().with_durability(
                Durability::SyncThreshold {
                    records: None,
                    bytes: None,
                    interval: Some(Duration::from_millis(300)),
                },
            )),
        )
        .unwrap();
    timed.append_to(1, &[Record::new("unsynced")]).unwrap();
    // Let the interval pass so that partition 1's flush is due. (It is long enough that the
    // append itself did not find it due and sync.)
    std::thread::sleep(Duration::from_millis(400));

    let report = store.run_maintenance().unwrap();
    assert_eq!(report.partitions, 3);
    // Every record of "old" expired: its active segment is rolled and deleted too.
    assert_eq!(report.segments_deleted, segments);
    assert_eq!(report.flushed, 1, "only the partition with unsynced data");
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(old.partition(0).unwrap().segment_count(), 1);
    // No thread: nothing ran on its own.
    assert_eq!(store.maintenance_runs(), 0);
    let again = store.run_maintenance().unwrap();
    assert_eq!((again.segments_deleted, again.flushed), (0, 0));
}

#[test]
fn concurrent_administration_keeps_metadata_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LogStore::open(dir.path(), no_thread()).unwrap());
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut created = 0;
                for j in 0..5 {
                    let name = format!("t{i}-{j}");
                    store.create_topic(&name, topic_config(1)).unwrap();
                    store.add_partitions(&name, 2).unwrap();
                    // Everyone races for the same shared name: exactly one wins.
                    match store.create_topic(&format!("shared{j}"), topic_config(1)) {
                        Ok(_) => created += 1,
                        Err(Error::TopicExists { .. }) => {}
                        Err(e) => panic!("{e}"),
                    }
                    if j % 2 == 1 {
                        store.delete_topic(&name).unwrap();
                    }
                    let _ = store.list_topics();
                }
                created
            })
        })
        .collect();
    let created: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(created, 5);
    let expected: Vec<String> = {
        let mut v: Vec<String> = (0..4)
            .flat_map(|i| [0, 2, 4].map(|j| format!("t{i}-{j}")))
            .chain((0..5).map(|j| format!("shared{j}")))
            .collect();
        v.sort();
        v
    };
    assert_eq!(store.list_topics(), expected);
    Arc::try_unwrap(store).unwrap().close().unwrap();
    let store = LogStore::open(dir.path(), no_thread()).unwrap();
    assert_eq!(store.list_topics(), expected);
    for name in expected.iter().filter(|n| n.starts_with('t')) {
        assert_eq!(store.topic(name).unwrap().partition_count(), 2);
    }
}

#[test]
fn partitions_beyond_the_descriptor_budget_are_refused_up_front() {
    // Every open partition holds 4 descriptors; the default budget follows `ulimit -n`.
    // Past the budget, create_topic and add_partitions fail cleanly and change nothing
    // (they used to fail half-way with "Too many open files").
    let dir = tempfile::tempdir().unwrap();
    let config = no_thread().with_descriptors_max(Some(4 * 5));
    let store = LogStore::open(dir.path(), config).unwrap();
    store.create_topic("a", topic_config(3)).unwrap();
    let err = store.create_topic("b", topic_config(3)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::DescriptorBudget {
                partitions: 6,
                needed: 24,
                budget: 20
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("ulimit"), "{err}");
    assert_eq!(store.list_topics(), ["a"]);
    let err = store.add_partitions("a", 6).unwrap_err();
    assert!(matches!(err, Error::DescriptorBudget { .. }), "{err:?}");
    assert_eq!(store.topic("a").unwrap().partition_count(), 3);
    store.create_topic("b", topic_config(2)).unwrap();
    assert_eq!(
        fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().is_dir())
            .count(),
        5,
        "no partition directory of a refused operation was left"
    );
}

/// Every entry below `dir`, with file sizes: a snapshot to compare.
fn tree(dir: &std::path::Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        let name = path.to_string_lossy().into_owned();
        if path.is_dir() {
            out.push((name, 0));
            out.extend(tree(&path));
        } else {
            out.push((name, entry.metadata().unwrap().len()));
        }
    }
    out.sort();
    out
}

#[test]
fn opening_the_wrong_kind_of_directory_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path(), no_thread()).unwrap();
    store.create_topic("t", topic_config(1)).unwrap();
    store
        .topic("t")
        .unwrap()
        .append_to(0, &[Record::new("x")])
        .unwrap();
    store.close().unwrap();
    drop(store);
    let before = tree(dir.path());

    // A store on a partition directory.
    let partition_dir = dir.path().join("t-0");
    let err = LogStore::open(&partition_dir, no_thread()).unwrap_err();
    assert!(matches!(err, Error::WrongDirectory { .. }), "{err:?}");
    assert!(err.to_string().contains("partition directory"), "{err}");
    // A partition on a store's data directory.
    let err = seglog::Partition::open(dir.path(), PartitionConfig::default()).unwrap_err();
    assert!(matches!(err, Error::WrongDirectory { .. }), "{err:?}");
    assert!(err.to_string().contains("topics.meta"), "{err}");
    assert_eq!(tree(dir.path()), before, "nothing was written");

    // A file where the data directory should be.
    let file = dir.path().join("not-a-dir");
    fs::write(&file, b"x").unwrap();
    let err = LogStore::open(&file, no_thread()).unwrap_err();
    assert!(
        matches!(&err, Error::WrongDirectory { found, .. } if found.contains("file")),
        "{err:?}"
    );
    assert!(!err.to_string().contains("os error"), "{err}");
    // The right kinds still open.
    LogStore::open(dir.path(), no_thread()).unwrap();
}

#[test]
fn a_topics_retention_can_change_after_creation_and_persists() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path(), no_thread()).unwrap();
    let config = PartitionConfig::default()
        .with_durability(Durability::NoSync)
        .with_preallocate_bytes(0)
        .with_retention_ms(None);
    let t = store
        .create_topic("t", TopicConfig::new(2).with_partition_config(config))
        .unwrap();
    for p in 0..2 {
        t.append_to(p, &[Record::new("old").with_timestamp(1_000)])
            .unwrap();
    }
    // Kept forever: nothing expires.
    assert_eq!(store.run_maintenance().unwrap().segments_deleted, 0);
    let update = seglog::ConfigUpdate::default().with_retention_ms(Some(60_000));
    store.update_topic_config("t", &update).unwrap();
    assert_eq!(t.partition_config().retention_ms, Some(60_000));
    assert_eq!(
        t.partition(0).unwrap().effective_config().retention_ms,
        Some(60_000)
    );
    // The live partitions apply it at once: the 1970 records are gone.
    assert_eq!(store.run_maintenance().unwrap().segments_deleted, 2);
    assert_eq!(t.partition(0).unwrap().log_start_offset(), Offset(1));
    // Invalid values change nothing.
    let bad = seglog::ConfigUpdate::default().with_segment_ms(Some(0));
    assert!(matches!(
        store.update_topic_config("t", &bad),
        Err(Error::InvalidConfig { .. })
    ));
    assert!(matches!(
        store.update_topic_config("nope", &update),
        Err(Error::UnknownTopic { .. })
    ));
    // Persisted: a reopened store uses the new value.
    drop(t);
    store.close().unwrap();
    drop(store);
    let store = LogStore::open(dir.path(), no_thread()).unwrap();
    let t = store.topic("t").unwrap();
    assert_eq!(t.partition_config().retention_ms, Some(60_000));
    assert_eq!(t.partition(1).unwrap().config().retention_ms, Some(60_000));
}
