//! Batch semantics through a partition: LogAppendTime stamping, the compression setting,
//! control batches (transaction markers) kept out of record reads and consumers, and where
//! offset gaps are accepted (compacting or foreign partitions) or refused (a partition seglog
//! created under a delete-only policy, marked by `seglog.partition`).

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use seglog::{
    CleanupPolicy, Compression, Consumer, ConsumerConfig, Durability, Error, GroupCoordinator,
    LogStore, MemoryOffsetStore, Offset, Partition, PartitionConfig, Record, StoreConfig,
    TimestampType, TopicConfig, TopicPartition,
};

/// The dense-offsets marker file seglog writes into a partition it creates (docs/format.md).
const MARKER: &str = "seglog.partition";

/// The first 15 batches of Kafka's `transactional` fixture (written by Apache Kafka 3.8.0,
/// Apache-2.0; see tests/data/kafka-batches/README.md): offsets 0-73, control batches at 37, 44, 63, 73.
const TRANSACTIONAL_LOG: &[u8] = include_bytes!("data/kafka-batches/transactional-0-13765.log");
const CONTROL_OFFSETS: [u64; 4] = [37, 44, 63, 73];

fn quiet() -> PartitionConfig {
    PartitionConfig::default()
        .with_durability(Durability::NoSync)
        .with_segment_ms(None)
        .with_preallocate_bytes(0)
}

fn read_all(p: &Partition) -> Vec<seglog::LogRecord> {
    p.read(Offset(0), 1 << 30)
        .unwrap()
        .records()
        .collect::<seglog::Result<_>>()
        .unwrap()
}

/// A partition directory holding only Kafka's transactional log (indexes rebuilt at open).
fn kafka_transactional_dir(dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join("00000000000000000000.log"), TRANSACTIONAL_LOG).unwrap();
}

#[test]
fn log_append_time_stamps_the_batch_and_every_record_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(
        dir.path(),
        quiet().with_timestamp_type(TimestampType::LogAppendTime),
    )
    .unwrap();
    let before = seglog::now_ms();
    p.append(&[
        Record::new("a").with_timestamp(5),
        Record::new("b").with_timestamp(9),
    ])
    .unwrap();
    let after = seglog::now_ms();
    let read = p.read(Offset(0), 1 << 20).unwrap();
    let h = *read.batches()[0].header();
    assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
    assert_eq!(
        h.base_timestamp, 5,
        "records keep their own timestamps in the bytes"
    );
    assert!((before..=after).contains(&h.max_timestamp));
    for r in read.records() {
        let r = r.unwrap();
        assert_eq!(r.timestamp_type, TimestampType::LogAppendTime);
        assert_eq!(r.timestamp_ms, h.max_timestamp);
    }
    // CreateTime (the default) keeps the producer's timestamps.
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), quiet()).unwrap();
    p.append(&[Record::new("a").with_timestamp(5)]).unwrap();
    let r = &read_all(&p)[0];
    assert_eq!(
        (r.timestamp_ms, r.timestamp_type),
        (5, TimestampType::CreateTime)
    );
}

#[test]
fn a_compressing_partition_roundtrips_or_names_the_missing_codec() {
    for codec in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let p = Partition::open(dir.path(), quiet().with_compression(codec)).unwrap();
        let records: Vec<Record> = (0..50)
            .map(|i| {
                Record::new(format!("value {i} value value value"))
                    .with_key(format!("k{i}"))
                    .with_header("h", "x")
                    .with_timestamp(1_000 + i)
            })
            .collect();
        match p.append(&records) {
            Ok(_) => {
                let read = p.read(Offset(0), 1 << 20).unwrap();
                assert_eq!(read.batches()[0].header().compression(), codec);
                let back = read_all(&p);
                assert_eq!(back.len(), records.len(), "{codec:?}");
                for (g, w) in back.iter().zip(&records) {
                    assert_eq!(
                        (&g.key, &g.value, &g.headers, g.timestamp_ms),
                        (&w.key, &w.value, &w.headers, w.timestamp_ms),
                        "{codec:?}"
                    );
                }
            }
            Err(Error::CodecUnavailable { codec: c }) => {
                assert_eq!(c, codec.name());
                assert!(!compiled_in(codec), "{codec:?} is compiled in");
            }
            Err(e) => panic!("{codec:?}: {e}"),
        }
    }
}

#[test]
fn control_batches_are_read_as_batches_but_never_as_records() {
    let dir = tempfile::tempdir().unwrap();
    kafka_transactional_dir(dir.path());
    let p = Partition::open(dir.path(), quiet()).unwrap();
    let read = p.read(Offset(0), 1 << 30).unwrap();
    assert_eq!(read.batches().len(), 14);
    let markers: Vec<(u64, seglog::ControlKind)> = read
        .batches()
        .iter()
        .filter_map(|b| {
            b.control_marker()
                .unwrap()
                .map(|m| (b.base_offset().0, m.kind))
        })
        .collect();
    use seglog::ControlKind::{Abort, Commit};
    assert_eq!(
        markers,
        [(37, Commit), (44, Abort), (63, Abort), (73, Commit)]
    );
    let offsets: Vec<u64> = read.records().map(|r| r.unwrap().offset.0).collect();
    let want: Vec<u64> = (0..74).filter(|o| !CONTROL_OFFSETS.contains(o)).collect();
    assert_eq!(offsets, want);
    assert_eq!(read.next_offset(), Offset(74));
}

#[test]
fn consumers_step_over_control_batches() {
    let dir = tempfile::tempdir().unwrap();
    let store_config = StoreConfig::default().with_maintenance_interval(None);
    let store = LogStore::open(dir.path(), store_config.clone()).unwrap();
    store
        .create_topic("t", TopicConfig::new(1).with_partition_config(quiet()))
        .unwrap();
    store.close().unwrap();
    drop(store);
    // Replace the partition's files with Kafka's (a directory seglog did not write).
    let part = dir.path().join("t-0");
    for entry in fs::read_dir(&part).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if name.starts_with("000") || name == MARKER {
            fs::remove_file(&path).unwrap();
        }
    }
    kafka_transactional_dir(&part);
    let store = LogStore::open(dir.path(), store_config).unwrap();
    let groups = Arc::new(GroupCoordinator::for_store(
        &store,
        Arc::new(MemoryOffsetStore::new()),
    ));
    let mut c = Consumer::new(
        &store,
        groups,
        ConsumerConfig::default().with_auto_commit(false),
    )
    .unwrap();
    let tp = TopicPartition::new("t", 0);
    c.assign(vec![tp.clone()]).unwrap();
    c.seek(&tp, Offset(0)).unwrap();
    let mut got = Vec::new();
    // Small polls, so that some end right before a control batch.
    for _ in 0..200 {
        let polled = c.poll(3, Duration::from_millis(1)).unwrap();
        if polled.is_empty() && got.len() >= 70 {
            break;
        }
        got.extend(polled.into_iter().map(|r| r.offset.0));
    }
    let want: Vec<u64> = (0..74).filter(|o| !CONTROL_OFFSETS.contains(o)).collect();
    assert_eq!(got, want);
    assert_eq!(c.position(&tp).unwrap(), Offset(74));
}

/// Append three batches (offsets 0-1, 2-3, 4-5), close, and move the last two batches' base
/// offsets up by 10 (outside the CRC): a gap of 10 offsets after offset 1.
fn partition_with_a_gap(dir: &Path, config: &PartitionConfig) {
    let p = Partition::open(dir, config.clone()).unwrap();
    for i in 0..3 {
        p.append(&[
            Record::new("v").with_key(format!("a{i}")),
            Record::new("v").with_key(format!("b{i}")),
        ])
        .unwrap();
    }
    p.close().unwrap();
    drop(p);
    let log = dir.join("00000000000000000000.log");
    let mut bytes = fs::read(&log).unwrap();
    let mut pos = 0;
    while pos < bytes.len() {
        let len = u32::from_be_bytes(bytes[pos + 8..pos + 12].try_into().unwrap()) as usize;
        let base = u64::from_be_bytes(bytes[pos..pos + 8].try_into().unwrap());
        if base > 0 {
            bytes[pos..pos + 8].copy_from_slice(&(base + 10).to_be_bytes());
        }
        pos += 12 + len;
    }
    fs::write(&log, bytes).unwrap();
    // The indexes still name the old offsets: let open rebuild them from the log.
    fs::remove_file(dir.join("00000000000000000000.index")).unwrap();
    fs::remove_file(dir.join("00000000000000000000.timeindex")).unwrap();
    fs::remove_file(dir.join("recovery-point.checkpoint")).unwrap();
}

#[test]
fn a_gap_in_a_delete_only_seglog_partition_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    partition_with_a_gap(dir.path(), &quiet());
    assert!(dir.path().join(MARKER).exists());
    // No recovery point (removed above): recovery scans from the start and stops at the gap,
    // keeping offsets 0-1 only.
    let p = Partition::open(dir.path(), quiet()).unwrap();
    let offsets: Vec<u64> = read_all(&p).iter().map(|r| r.offset.0).collect();
    assert_eq!(offsets, [0, 1]);
    assert!(p.recovery_report().truncated_bytes > 0);
}

/// A gap is accepted where a batch witness lists it (compaction writes them), or on the
/// first open of a directory seglog has not witnessed (another program wrote it: no
/// `seglog.log-start.checkpoint`), which trusts it and witnesses it from then on. A gap that
/// appears later in seglog's own directory, whatever the cleanup policy, is damage: a base
/// offset (outside the CRC) moved (issue 9, bug 3).
#[test]
fn gaps_are_accepted_where_witnessed_or_on_a_first_open() {
    // Seglog's own partition, later compacting: the marker goes, but an unwitnessed gap is
    // still damage (no recovery point: recovery cuts it like a torn tail).
    let dir = tempfile::tempdir().unwrap();
    partition_with_a_gap(dir.path(), &quiet());
    let compacting = quiet().with_cleanup_policy(CleanupPolicy::Compact);
    let p = Partition::open(dir.path(), compacting.clone()).unwrap();
    assert!(!dir.path().join(MARKER).exists());
    let offsets: Vec<u64> = read_all(&p).iter().map(|r| r.offset.0).collect();
    assert_eq!(offsets, [0, 1]);
    assert!(p.recovery_report().truncated_bytes > 0);
    p.close().unwrap();
    drop(p);

    // A directory another program wrote (no marker, no seglog state), under delete.
    let dir = tempfile::tempdir().unwrap();
    partition_with_a_gap(dir.path(), &quiet());
    fs::remove_file(dir.path().join(MARKER)).unwrap();
    fs::remove_file(dir.path().join("seglog.log-start.checkpoint")).unwrap();
    let p = Partition::open(dir.path(), quiet()).unwrap();
    assert_eq!(p.recovery_report().truncated_bytes, 0);
    let offsets: Vec<u64> = read_all(&p).iter().map(|r| r.offset.0).collect();
    assert_eq!(offsets, [0, 1, 12, 13, 14, 15]);
    assert_eq!(
        p.read(Offset(5), 1 << 20).unwrap().batches()[0].base_offset(),
        Offset(12)
    );
    // Appends continue after the last offset.
    assert_eq!(
        p.append(&[Record::new("x")]).unwrap().base_offset,
        Offset(16)
    );
    p.close().unwrap();
    drop(p);
    // Witnessed from the first open on: reopening (any policy) keeps the gap.
    assert!(dir.path().join("00000000000000000000.batches").exists());
    for cfg in [quiet(), compacting] {
        let p = Partition::open(dir.path(), cfg).unwrap();
        let offsets: Vec<u64> = read_all(&p).iter().map(|r| r.offset.0).collect();
        assert_eq!(offsets, [0, 1, 12, 13, 14, 15, 16]);
        p.close().unwrap();
    }
}

#[test]
fn a_partition_created_under_compaction_has_no_marker() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(
        dir.path(),
        quiet().with_cleanup_policy(CleanupPolicy::Compact),
    )
    .unwrap();
    assert!(!dir.path().join(MARKER).exists());
    drop(p);
    let dir = tempfile::tempdir().unwrap();
    let _p = Partition::open(dir.path(), quiet()).unwrap();
    assert!(dir.path().join(MARKER).exists());
}

/// Whether this build has `codec`'s cargo feature.
fn compiled_in(codec: Compression) -> bool {
    match codec {
        Compression::Gzip => cfg!(feature = "gzip"),
        Compression::Snappy => cfg!(feature = "snappy"),
        Compression::Lz4 => cfg!(feature = "lz4"),
        Compression::Zstd => cfg!(feature = "zstd"),
        _ => true,
    }
}

#[test]
fn a_base_offset_moved_up_by_damage_is_never_read_as_a_gap() {
    // Base offsets are outside the CRC. In a partition with gaps a batch may start anywhere
    // above the previous one, so a flipped byte there must still be caught: no batch may end
    // at or past its segment's end or the high watermark.
    let dir = tempfile::tempdir().unwrap();
    let config = quiet().with_cleanup_policy(CleanupPolicy::Compact);
    let p = Partition::open(dir.path(), config).unwrap();
    for b in 0..3u64 {
        let records: Vec<Record> = (0..5)
            .map(|i| Record::new(format!("v{}", b * 5 + i)).with_key(format!("k{}", b * 5 + i)))
            .collect();
        p.append(&records).unwrap();
    }
    let log = dir.path().join("00000000000000000000.log");
    let bytes = std::fs::read(&log).unwrap();
    // The middle batch starts where the first ends: its base offset's low byte is at +7.
    let first_len = 12 + u32::from_be_bytes(bytes[8..12].try_into().unwrap()) as usize;
    assert_eq!(bytes[first_len + 7], 5, "the middle batch's base offset");
    let mut damaged = bytes.clone();
    damaged[first_len + 7] = 8; // 5..=9 would read as 8..=12: the next batch (10..) overlaps
    std::fs::write(&log, &damaged).unwrap();
    assert!(matches!(p.read(Offset(5), 1), Err(Error::Corrupt { .. })));
    assert!(matches!(
        p.read(Offset(0), 1 << 20),
        Err(Error::Corrupt { .. })
    ));
    damaged[first_len + 7] = 13; // 5..=9 would read as 13..=17, past the end (15)
    std::fs::write(&log, &damaged).unwrap();
    assert!(matches!(p.read(Offset(5), 1), Err(Error::Corrupt { .. })));
    // The last batch moved up runs past the high watermark.
    let second_len =
        12 + u32::from_be_bytes(bytes[first_len + 8..first_len + 12].try_into().unwrap()) as usize;
    let mut damaged = bytes.clone();
    damaged[first_len + second_len + 7] = 11; // 10..=14 would read as 11..=15
    std::fs::write(&log, &damaged).unwrap();
    assert!(matches!(p.read(Offset(10), 1), Err(Error::Corrupt { .. })));
    std::fs::write(&log, &bytes).unwrap();
    assert_eq!(p.read(Offset(0), 1 << 20).unwrap().records().count(), 15);
}
