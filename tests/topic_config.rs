//! Changing a topic's configuration after creation (Kafka's `kafka-configs --alter`): every
//! dynamic field is validated, persisted in `topics.meta` and applied to the live partitions
//! (a new segment size at the next roll, a cleanup policy switch at the next maintenance
//! pass); `durability` is refused with a typed error. The switch to a compacting policy is
//! crash-safe: power losses on the simulated file system right after the switch, after the
//! first compaction and at every operation in between.

use std::collections::BTreeMap;
use std::sync::Arc;

use seglog::testing::SimFs;
use seglog::{
    CleanupPolicy, Compression, ConfigUpdate, Durability, Error, LogStore, Offset, Partition,
    PartitionConfig, Record, StoreConfig, TimestampType, TopicConfig,
};

const STORE: &str = "/srv/store";
const MARKER: &str = "/srv/store/t-0/seglog.partition";

/// Records by offset: (key, value).
type Log = BTreeMap<u64, (Option<Vec<u8>>, Option<Vec<u8>>)>;

fn no_thread() -> StoreConfig {
    StoreConfig::default().with_maintenance_interval(None)
}

fn small_segments() -> PartitionConfig {
    PartitionConfig::default()
        .with_durability(Durability::NoSync)
        .with_preallocate_bytes(0)
        .with_retention_ms(None)
        .with_segment_bytes(64 << 10)
}

fn keyed(key: u64, generation: u64) -> Record {
    Record::new(format!("value-{generation}-{key}-{}", "x".repeat(40)))
        .with_key(format!("key-{key}"))
        .with_timestamp(1_000)
}

/// Every record from the log start to the high watermark: offset → (key, value).
fn read_all(p: &Partition) -> Log {
    let mut out = BTreeMap::new();
    let mut next = p.log_start_offset();
    while next < p.high_watermark() {
        let r = p.read(next, 1 << 16).unwrap();
        if r.is_empty() {
            break;
        }
        for rec in r.records() {
            let rec = rec.unwrap();
            out.insert(
                rec.offset.0,
                (rec.key.map(|k| k.to_vec()), rec.value.map(|v| v.to_vec())),
            );
        }
        next = r.next_offset();
    }
    out
}

/// The newest value of every key.
fn newest(records: &Log) -> BTreeMap<Vec<u8>, Vec<u8>> {
    records
        .values()
        .filter_map(|(k, v)| Some((k.clone()?, v.clone()?)))
        .collect()
}

fn log_sizes(dir: &std::path::Path) -> Vec<u64> {
    let mut sizes: Vec<(String, u64)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().len(),
            )
        })
        .collect();
    sizes.sort();
    sizes.into_iter().map(|(_, len)| len).collect()
}

#[test]
fn a_new_segment_size_applies_at_the_next_roll_and_persists() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path(), no_thread()).unwrap();
    let t = store
        .create_topic(
            "t",
            TopicConfig::new(1).with_partition_config(small_segments()),
        )
        .unwrap();
    let p = t.partition(0).unwrap();
    for i in 0..20 {
        p.append(&[keyed(i, 0)]).unwrap();
    }
    assert_eq!(p.segment_count(), 1, "20 small records fit in 64 KiB");
    let update = ConfigUpdate::default().with_segment_bytes(1024);
    store.update_topic_config("t", &update).unwrap();
    assert_eq!(p.effective_config().segment_bytes, 1024);
    assert_eq!(t.partition_config().segment_bytes, 1024);
    // The active segment already holds more than 1 KiB: the next append rolls it, and every
    // later segment stays within the new size.
    let before = p.segment_count();
    for i in 0..40 {
        p.append(&[keyed(i, 1)]).unwrap();
    }
    assert!(p.segment_count() >= before + 3, "{}", p.segment_count());
    let sizes = log_sizes(&dir.path().join("t-0"));
    assert!(sizes[0] > 1024, "the old segment kept its size: {sizes:?}");
    let sealed = &sizes[1..sizes.len() - 1];
    assert!(sealed.iter().all(|&s| s <= 1024), "{sizes:?}");
    // Persisted: a reopened store opens its partitions with it.
    drop((p, t));
    store.close().unwrap();
    drop(store);
    let store = LogStore::open(dir.path(), no_thread()).unwrap();
    let t = store.topic("t").unwrap();
    assert_eq!(t.partition_config().segment_bytes, 1024);
    assert_eq!(t.partition(0).unwrap().config().segment_bytes, 1024);
    assert_eq!(t.partition(0).unwrap().log_end_offset(), Offset(60));
}

#[test]
fn switching_to_compact_then_back_to_delete_applies_live_and_persists() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path(), no_thread()).unwrap();
    let config = small_segments().with_segment_bytes(1024);
    let t = store
        .create_topic("t", TopicConfig::new(1).with_partition_config(config))
        .unwrap();
    let p = t.partition(0).unwrap();
    let marker = dir.path().join("t-0").join("seglog.partition");
    assert!(marker.exists(), "a delete-only partition is created dense");
    for generation in 0..10 {
        for key in 0..5 {
            p.append(&[keyed(key, generation)]).unwrap();
        }
    }
    let written = read_all(&p);
    assert_eq!(written.len(), 50);
    // Under `delete` nothing compacts, and keyless records are accepted.
    assert_eq!(store.run_maintenance().unwrap().segments_deleted, 0);
    assert_eq!(read_all(&p).len(), 50);

    let compact = ConfigUpdate::default().with_cleanup_policy(CleanupPolicy::Compact);
    store.update_topic_config("t", &compact).unwrap();
    assert!(
        !marker.exists(),
        "the switch removes the dense-offsets marker"
    );
    assert!(matches!(
        p.append(&[Record::new("no key")]),
        Err(Error::MissingKey { index: 0 })
    ));
    store.run_maintenance().unwrap();
    let compacted = read_all(&p);
    assert!(
        compacted.len() < 30,
        "old values of the 5 keys are gone: {} records left",
        compacted.len()
    );
    assert_eq!(
        newest(&compacted),
        newest(&written),
        "the newest value of each key stays"
    );

    // Persisted: the reopened partition compacts (and needs keys).
    drop((p, t));
    store.close().unwrap();
    drop(store);
    let store = LogStore::open(dir.path(), no_thread()).unwrap();
    let t = store.topic("t").unwrap();
    let p = t.partition(0).unwrap();
    assert_eq!(p.config().cleanup_policy, CleanupPolicy::Compact);
    assert_eq!(read_all(&p), compacted);
    assert!(matches!(
        p.append(&[Record::new("no key")]),
        Err(Error::MissingKey { .. })
    ));

    // Back to delete, with a retention the 1970 records are far past.
    let delete = ConfigUpdate::default()
        .with_cleanup_policy(CleanupPolicy::Delete)
        .with_retention_ms(Some(60_000));
    store.update_topic_config("t", &delete).unwrap();
    p.append(&[Record::new("keyless again").with_timestamp(1_000)])
        .unwrap();
    let report = store.run_maintenance().unwrap();
    assert!(report.segments_deleted > 0, "{report:?}");
    assert!(read_all(&p).is_empty(), "every record expired");
    assert!(p.log_start_offset() > Offset(0));
    assert!(
        !marker.exists(),
        "a partition that compacted is never dense again"
    );
    drop((p, t));
    store.close().unwrap();
    drop(store);
    let store = LogStore::open(dir.path(), no_thread()).unwrap();
    let p = store.topic("t").unwrap().partition(0).unwrap();
    assert_eq!(p.config().cleanup_policy, CleanupPolicy::Delete);
    assert_eq!(p.config().retention_ms, Some(60_000));
}

/// One text value per dynamic field, none of them the default.
const CHANGES: &[(&str, &str)] = &[
    ("segment_bytes", "2048"),
    ("segment_ms", "3600000"),
    ("index_interval_bytes", "128"),
    ("index_bytes_max", "8192"),
    ("record_bytes_max", "500"),
    ("batch_bytes_max", "4096"),
    ("preallocate_bytes", "65536"),
    ("retention_ms", "86400000"),
    ("retention_bytes", "1000000"),
    ("cleanup_policy", "compact_delete"),
    ("delete_retention_ms", "1000"),
    ("min_compaction_lag_ms", "5"),
    ("min_cleanable_dirty_ratio", "0.25"),
    ("map_bytes_max", "4096"),
    ("open_segments_max", "7"),
    ("truncate_corrupt", "true"),
    ("compression", "lz4"),
    ("timestamp_type", "log_append_time"),
];

#[test]
fn every_dynamic_field_changes_persists_and_is_refused_when_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path(), no_thread()).unwrap();
    let t = store
        .create_topic(
            "t",
            TopicConfig::new(2).with_partition_config(small_segments()),
        )
        .unwrap();
    let before = format!("{:?}", t.partition_config());
    let mut expected = t.partition_config();
    for &(field, value) in CHANGES {
        let update = ConfigUpdate::default().set(field, value).unwrap();
        let next = update.apply_to(&expected).unwrap();
        assert_ne!(
            format!("{next:?}"),
            format!("{expected:?}"),
            "{field} = {value} changes nothing"
        );
        store.update_topic_config("t", &update).unwrap();
        expected = next;
        assert_eq!(
            format!("{:?}", t.partition(1).unwrap().effective_config()),
            format!("{expected:?}"),
            "{field} applied to the live partition"
        );
    }
    assert_ne!(before, format!("{expected:?}"));
    assert_eq!(
        format!("{:?}", t.partition_config()),
        format!("{expected:?}")
    );

    // Fixed and unknown fields, bad and invalid values: typed errors naming the field, and
    // nothing changes.
    let err = ConfigUpdate::default()
        .set("durability", "no_sync")
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::ConfigNotDynamic {
                field: "durability",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("durability"), "{err}");
    assert!(matches!(
        ConfigUpdate::default().set("segment_bytez", "1"),
        Err(Error::InvalidConfig { .. })
    ));
    assert!(matches!(
        ConfigUpdate::default().set("segment_bytes", "big"),
        Err(Error::InvalidConfig {
            field: "segment_bytes",
            ..
        })
    ));
    let too_small = ConfigUpdate::default().with_segment_bytes(10);
    assert!(matches!(
        store.update_topic_config("t", &too_small),
        Err(Error::InvalidConfig {
            field: "segment_bytes",
            ..
        })
    ));
    assert_eq!(
        format!("{:?}", t.partition_config()),
        format!("{expected:?}")
    );

    drop(t);
    store.close().unwrap();
    drop(store);
    let store = LogStore::open(dir.path(), no_thread()).unwrap();
    let t = store.topic("t").unwrap();
    for p in 0..2 {
        assert_eq!(
            format!("{:?}", t.partition(p).unwrap().config()),
            format!("{expected:?}"),
            "partition {p} reopened with the persisted changes"
        );
    }
}

#[test]
fn record_limits_codec_and_timestamp_type_apply_to_the_next_append() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path(), no_thread()).unwrap();
    let t = store
        .create_topic(
            "t",
            TopicConfig::new(1).with_partition_config(small_segments()),
        )
        .unwrap();
    let p = t.partition(0).unwrap();
    let big = Record::new(vec![7u8; 2000]).with_timestamp(1_000);
    p.append(std::slice::from_ref(&big)).unwrap();
    let update = ConfigUpdate::default()
        .with_record_bytes_max(1000)
        .with_compression(Compression::Lz4)
        .with_timestamp_type(TimestampType::LogAppendTime);
    store.update_topic_config("t", &update).unwrap();
    assert!(matches!(
        p.append(std::slice::from_ref(&big)),
        Err(Error::RecordTooLarge { limit: 1000, .. })
    ));
    p.append(&[Record::new("small").with_timestamp(1_000)])
        .unwrap();
    let batches: Vec<_> = [Offset(0), Offset(1)]
        .into_iter()
        .map(|at| p.read(at, 1 << 20).unwrap().batches()[0].clone())
        .collect();
    assert_eq!(
        batches[0].header().compression(),
        Compression::None,
        "written before"
    );
    assert_eq!(
        batches[0].header().timestamp_type(),
        TimestampType::CreateTime
    );
    assert_eq!(batches[1].header().compression(), Compression::Lz4);
    assert_eq!(
        batches[1].header().timestamp_type(),
        TimestampType::LogAppendTime
    );
    let stamped = batches[1].records().next().unwrap().unwrap();
    assert!(stamped.timestamp_ms > 1_000, "stamped with the append time");
}

fn sim_store(sim: &Arc<SimFs>) -> LogStore {
    LogStore::open(
        STORE,
        StoreConfig::default()
            .with_maintenance_interval(None)
            .with_file_system(sim.clone()),
    )
    .unwrap()
}

/// A topic on `sim` under `delete` with 40 keyed records (8 keys) over several segments,
/// all durable.
fn sim_topic(sim: &Arc<SimFs>) -> (LogStore, BTreeMap<Vec<u8>, Vec<u8>>) {
    let store = sim_store(sim);
    let config = PartitionConfig::default()
        .with_segment_bytes(1024)
        .with_preallocate_bytes(0)
        .with_retention_ms(None);
    let t = store
        .create_topic("t", TopicConfig::new(1).with_partition_config(config))
        .unwrap();
    let p = t.partition(0).unwrap();
    for generation in 0..5 {
        for key in 0..8 {
            p.append(&[keyed(key, generation)]).unwrap();
        }
    }
    assert!(p.segment_count() > 2);
    let newest = newest(&read_all(&p));
    (store, newest)
}

/// Cut the power now: `store` can write nothing more (its close fails), then lose what was
/// not durable.
fn crash(sim: &SimFs, store: LogStore) {
    sim.cut_power_at(1);
    drop(store);
    sim.power_loss();
}

/// After a power loss: the store opens, the partition reads whole with every key's newest
/// value, and appends continue at the log end (the appended record joins `newest_values`).
fn check_reopened(
    sim: &Arc<SimFs>,
    newest_values: &mut BTreeMap<Vec<u8>, Vec<u8>>,
    ctx: &str,
) -> LogStore {
    let store = sim_store(sim);
    let p = store.topic("t").unwrap().partition(0).unwrap();
    let records = read_all(&p);
    assert_eq!(&newest(&records), newest_values, "{ctx}");
    let end = p.log_end_offset();
    let info = p.append(&[keyed(0, 99)]).unwrap();
    assert_eq!(info.base_offset, end, "{ctx}");
    newest_values.insert(
        b"key-0".to_vec(),
        newest(&read_all(&p))[&b"key-0".to_vec()].clone(),
    );
    drop(p);
    store
}

#[test]
fn the_switch_to_compact_survives_power_loss_right_after_it_and_after_the_first_compaction() {
    let sim = Arc::new(SimFs::new());
    let (store, mut newest_values) = sim_topic(&sim);
    assert!(sim.exists(MARKER));
    let compact = ConfigUpdate::default().with_cleanup_policy(CleanupPolicy::Compact);
    store.update_topic_config("t", &compact).unwrap();
    // Right after the switch: the policy and the marker's removal are both durable.
    crash(&sim, store);
    assert!(!sim.exists(MARKER), "the marker's removal was not fsynced");
    let store = check_reopened(&sim, &mut newest_values, "after the switch");
    let p = store.topic("t").unwrap().partition(0).unwrap();
    assert_eq!(p.config().cleanup_policy, CleanupPolicy::Compact);
    let before = read_all(&p).len();
    let report = store.run_maintenance().unwrap();
    assert!(report.segments_compacted > 0, "{report:?}");
    let compacted = read_all(&p);
    assert!(compacted.len() < before);
    drop(p);
    // Right after the first compaction: the gaps it left read back (the witnesses), and no
    // marker makes recovery hold the offsets dense.
    crash(&sim, store);
    assert!(!sim.exists(MARKER));
    let store = check_reopened(&sim, &mut newest_values, "after the first compaction");
    let p = store.topic("t").unwrap().partition(0).unwrap();
    let reread = read_all(&p);
    for (offset, record) in &compacted {
        assert_eq!(reread.get(offset), Some(record), "offset {offset}");
    }
}

#[test]
fn a_power_cut_at_any_operation_of_the_switch_and_the_first_compaction_loses_nothing() {
    // Count the operations of the switch and the compaction in a first run.
    let sim = Arc::new(SimFs::new());
    let (store, newest_values) = sim_topic(&sim);
    let compact = ConfigUpdate::default().with_cleanup_policy(CleanupPolicy::Compact);
    let start = sim.operations();
    store.update_topic_config("t", &compact).unwrap();
    store.run_maintenance().unwrap();
    let ops = sim.operations() - start;
    drop(store);
    assert!(ops > 10, "{ops}");
    for k in 1..=ops {
        let sim = Arc::new(SimFs::new());
        let (store, _) = sim_topic(&sim);
        sim.cut_power_at(k);
        let switched = store.update_topic_config("t", &compact).is_ok();
        let _ = store.run_maintenance();
        drop(store);
        sim.power_loss();
        let ctx = format!("power cut at operation {k} of {ops}");
        if switched {
            assert!(
                !sim.exists(MARKER),
                "{ctx}: switch acknowledged, marker back"
            );
        }
        let store = check_reopened(&sim, &mut newest_values.clone(), &ctx);
        let policy = store.topic("t").unwrap().partition_config().cleanup_policy;
        if switched {
            assert_eq!(policy, CleanupPolicy::Compact, "{ctx}");
        }
        if policy == CleanupPolicy::Compact {
            assert!(
                !sim.exists(MARKER),
                "{ctx}: a compacting partition kept its marker"
            );
        }
        drop(store);
    }
}

#[test]
fn smaller_indexes_apply_from_the_next_segment_and_a_reopen_keeps_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path(), no_thread()).unwrap();
    let config = small_segments().with_index_interval_bytes(1);
    let t = store
        .create_topic("t", TopicConfig::new(1).with_partition_config(config))
        .unwrap();
    let p = t.partition(0).unwrap();
    // One index entry per batch: 100 entries in the active segment's 10 MiB index.
    for i in 0..100 {
        p.append(&[keyed(i, 0)]).unwrap();
    }
    let update = ConfigUpdate::default()
        .with_index_bytes_max(64)
        .with_index_interval_bytes(4096);
    store.update_topic_config("t", &update).unwrap();
    p.append(&[keyed(100, 0)]).unwrap();
    assert_eq!(p.segment_count(), 1, "the active segment keeps its index");
    // Reopened with an index size its active segment's entries do not fit in.
    drop((p, t));
    store.close().unwrap();
    drop(store);
    let store = LogStore::open(dir.path(), no_thread()).unwrap();
    let p = store.topic("t").unwrap().partition(0).unwrap();
    assert_eq!(p.config().index_bytes_max, 64);
    for i in 101..300 {
        p.append(&[keyed(i, 0)]).unwrap();
    }
    let records = read_all(&p);
    assert_eq!(records.len(), 300);
    assert_eq!(
        records.keys().copied().collect::<Vec<_>>(),
        (0..300).collect::<Vec<_>>()
    );
    // Every segment after the change has the small index.
    let index_sizes: Vec<u64> = std::fs::read_dir(dir.path().join("t-0"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".index"))
        .map(|e| e.metadata().unwrap().len())
        .collect();
    assert!(index_sizes.len() > 1, "{index_sizes:?}");
    assert!(
        index_sizes.iter().filter(|&&s| s <= 64).count() >= index_sizes.len() - 1,
        "{index_sizes:?}"
    );
}

#[test]
fn a_forced_compaction_under_delete_removes_the_dense_marker_durably_first() {
    let sim = Arc::new(SimFs::new());
    let config = PartitionConfig::default()
        .with_segment_bytes(1024)
        .with_preallocate_bytes(0)
        .with_retention_ms(None)
        .with_file_system(sim.clone());
    let p = Partition::open("/p", config.clone()).unwrap();
    assert!(sim.exists("/p/seglog.partition"));
    for generation in 0..5 {
        for key in 0..8 {
            p.append(&[keyed(key, generation)]).unwrap();
        }
    }
    let written = read_all(&p);
    let report = p.compact_at(seglog::now_ms(), true).unwrap();
    assert!(report.records_superseded > 0, "{report:?}");
    p.simulate_crash();
    sim.power_loss();
    assert!(!sim.exists("/p/seglog.partition"));
    let p = Partition::open("/p", config).unwrap();
    assert_eq!(newest(&read_all(&p)), newest(&written));
}

#[test]
fn kafka_config_names_and_values_are_accepted() {
    let kafka = [
        ("segment.bytes", "2048"),
        ("segment.ms", "3600000"),
        ("segment.index.bytes", "8192"),
        ("index.interval.bytes", "128"),
        ("max.message.bytes", "4096"),
        ("retention.ms", "-1"),
        ("retention.bytes", "1000000"),
        ("cleanup.policy", "delete,compact"),
        ("delete.retention.ms", "1000"),
        ("min.compaction.lag.ms", "5"),
        ("min.cleanable.dirty.ratio", "0.25"),
        ("compression.type", "zstd"),
        ("message.timestamp.type", "LogAppendTime"),
    ];
    let mut update = ConfigUpdate::default();
    for (name, value) in kafka {
        update = update.set(name, value).unwrap();
    }
    let expected = ConfigUpdate::default()
        .with_segment_bytes(2048)
        .with_segment_ms(Some(3_600_000))
        .with_index_bytes_max(8192)
        .with_index_interval_bytes(128)
        .with_batch_bytes_max(4096)
        .with_record_bytes_max(4096)
        .with_retention_ms(None)
        .with_retention_bytes(Some(1_000_000))
        .with_cleanup_policy(CleanupPolicy::CompactAndDelete)
        .with_delete_retention_ms(1000)
        .with_min_compaction_lag_ms(5)
        .with_min_cleanable_dirty_ratio(0.25)
        .with_compression(Compression::Zstd)
        .with_timestamp_type(TimestampType::LogAppendTime);
    assert_eq!(update, expected);
    // Applied to a topic with the defaults, it validates and persists.
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path(), no_thread()).unwrap();
    store
        .create_topic(
            "t",
            TopicConfig::new(1).with_partition_config(small_segments()),
        )
        .unwrap();
    store.update_topic_config("t", &update).unwrap();
    let config = store.topic("t").unwrap().partition_config();
    assert_eq!(config.batch_bytes_max, 4096);
    assert_eq!(config.cleanup_policy, CleanupPolicy::CompactAndDelete);
    assert_eq!(
        ConfigUpdate::default()
            .set("compression.type", "uncompressed")
            .unwrap()
            .compression,
        Some(Compression::None)
    );
    for (name, value) in [("flush.messages", "1"), ("flush.ms", "1000")] {
        assert!(matches!(
            ConfigUpdate::default().set(name, value),
            Err(Error::ConfigNotDynamic {
                field: "durability",
                ..
            })
        ));
    }
    for (name, value) in [
        ("compression.type", "producer"),
        ("cleanup.policy", "shred"),
        ("message.timestamp.type", "Now"),
        ("retention.ms", "-2"),
    ] {
        assert!(
            matches!(
                ConfigUpdate::default().set(name, value),
                Err(Error::InvalidConfig { .. })
            ),
            "{name} = {value}"
        );
    }
}
