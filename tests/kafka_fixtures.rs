//! seglog opens partition directories that Kafka 3.8.0 wrote (`tests/data/kafka/`, copied from
//! `shared/kafka/fixtures`) and returns exactly the records Kafka's own reader decodes from
//! them (`expected.jsonl`): offsets, timestamps and their type, keys, values, headers, producer
//! fields, leader epochs, compression, transactional and control markers. The torn-tail copy
//! recovers to the last whole batch, to the same bytes Kafka's own recovery left.

use std::fs;
use std::path::{Path, PathBuf};

use seglog::{
    Batch, Compression, ControlKind, LogRecord, Offset, Partition, PartitionConfig, TimestampType,
};
use serde_json::Value;

fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/kafka")
        .join(name)
}

/// A scratch copy of a fixture's segment files (`.log`, `.index`, `.timeindex`, `.txnindex`).
fn copy_fixture(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in fs::read_dir(fixture_dir(name)).unwrap() {
        let path = entry.unwrap().path();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if ["log", "index", "timeindex", "txnindex"].contains(&ext) {
            fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    dir
}

fn expected(name: &str) -> Vec<Value> {
    let text = fs::read_to_string(fixture_dir(name).join("expected.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn hex(bytes: Option<&[u8]>) -> Value {
    match bytes {
        None => Value::Null,
        Some(b) => Value::String(b.iter().map(|x| format!("{x:02x}")).collect()),
    }
}

fn compression_name(c: Compression) -> &'static str {
    match c {
        Compression::None => "none",
        Compression::Gzip => "gzip",
        Compression::Snappy => "snappy",
        Compression::Lz4 => "lz4",
        Compression::Zstd => "zstd",
        _ => "unknown",
    }
}

/// One record as `expected.jsonl` describes it, built from what seglog returned.
fn describe(batch: &Batch, record: &LogRecord, control: Option<(&str, i32)>) -> Value {
    let h = batch.header();
    let delta = record.offset.0 - h.base_offset;
    let sequence = if h.base_sequence < 0 {
        -1
    } else {
        // Kafka's `Record.sequence()`: base sequence + offset delta, wrapping past i32::MAX.
        ((i64::from(h.base_sequence) + delta as i64) % (i64::from(i32::MAX) + 1)) as i32
    };
    let headers: Vec<Value> = record
        .headers
        .iter()
        .map(|hd| {
            Value::Array(vec![
                Value::String(String::from_utf8(hd.key.to_vec()).unwrap()),
                hex(hd.value.as_deref()),
            ])
        })
        .collect();
    serde_json::json!({
        "offset": record.offset.0,
        "timestamp": record.timestamp_ms,
        "timestamp_type": match record.timestamp_type {
            TimestampType::CreateTime => "CreateTime",
            TimestampType::LogAppendTime => "LogAppendTime",
        },
        "key_hex": hex(record.key.as_deref()),
        "value_hex": hex(record.value.as_deref()),
        "headers": headers,
        "batch_base_offset": h.base_offset,
        "batch_last_offset": h.last_offset(),
        "producer_id": h.producer_id,
        "producer_epoch": h.producer_epoch,
        "base_sequence": h.base_sequence,
        "partition_leader_epoch": h.partition_leader_epoch,
        "is_transactional": h.is_transactional(),
        "is_control": h.is_control(),
        "compression": compression_name(h.compression()),
        "control_type": control.map(|c| c.0),
        "coordinator_epoch": control.map(|c| c.1),
        "sequence": sequence,
    })
}

/// Every record of the partition, control records included, described as `expected.jsonl`.
fn read_all(p: &Partition) -> Vec<Value> {
    let mut out = Vec::new();
    let mut at = p.log_start_offset();
    while at < p.high_watermark() {
        let read = p.read(at, 1 << 20).unwrap();
        assert!(read.next_offset() > at, "a read at {at:?} made no progress");
        for batch in read.batches() {
            let marker = batch.control_marker().unwrap();
            let control = marker.map(|m| {
                let kind = match m.kind {
                    ControlKind::Commit => "COMMIT",
                    ControlKind::Abort => "ABORT",
                    _ => "unknown",
                };
                (kind, m.coordinator_epoch)
            });
            for record in batch.records() {
                let record = record.unwrap();
                if record.offset >= at {
                    out.push(describe(batch, &record, control));
                }
            }
        }
        at = read.next_offset();
    }
    out
}

/// The fields of `expected.jsonl` this test compares (the file also has segment positions).
const FIELDS: &[&str] = &[
    "offset",
    "timestamp",
    "timestamp_type",
    "key_hex",
    "value_hex",
    "headers",
    "batch_base_offset",
    "batch_last_offset",
    "producer_id",
    "producer_epoch",
    "base_sequence",
    "partition_leader_epoch",
    "is_transactional",
    "is_control",
    "compression",
    "control_type",
    "coordinator_epoch",
    "sequence",
];

fn assert_matches(name: &str, got: &[Value], want: &[Value]) {
    assert_eq!(got.len(), want.len(), "{name}: record count");
    for (g, w) in got.iter().zip(want) {
        for field in FIELDS {
            assert_eq!(
                g[field], w[field],
                "{name}: field {field} of the record at offset {}",
                w["offset"]
            );
        }
    }
}

fn check_fixture(name: &str) {
    let dir = copy_fixture(name);
    let p = Partition::open(dir.path(), PartitionConfig::default()).unwrap();
    let want = expected(name);
    let last = want.last().unwrap()["batch_last_offset"].as_u64().unwrap();
    assert_eq!(p.log_end_offset(), Offset(last + 1), "{name}: log end");
    assert_matches(name, &read_all(&p), &want);
    p.close().unwrap();
    // And again after seglog's own clean close and reopen.
    let p = Partition::open(dir.path(), PartitionConfig::default()).unwrap();
    assert_matches(name, &read_all(&p), &want);
}

#[test]
fn plain() {
    check_fixture("plain");
}

#[test]
fn multi_segment() {
    check_fixture("multi-segment");
}

#[test]
fn compressed_gzip() {
    check_fixture("compressed-gzip");
}

#[test]
fn compressed_snappy() {
    check_fixture("compressed-snappy");
}

#[test]
fn compressed_lz4() {
    check_fixture("compressed-lz4");
}

#[test]
fn compressed_zstd() {
    check_fixture("compressed-zstd");
}

#[test]
fn idempotent() {
    check_fixture("idempotent");
}

#[test]
fn transactional_with_control_batches() {
    check_fixture("transactional");
    // Consumers see data records only: `ReadBatches::records` skips the control batches.
    let dir = copy_fixture("transactional");
    let p = Partition::open(dir.path(), PartitionConfig::default()).unwrap();
    let want: Vec<u64> = expected("transactional")
        .iter()
        .filter(|r| r["is_control"] == Value::Bool(false))
        .map(|r| r["offset"].as_u64().unwrap())
        .collect();
    let mut got = Vec::new();
    let mut at = Offset(0);
    while at < p.high_watermark() {
        let read = p.read(at, 1 << 20).unwrap();
        got.extend(read.records().map(|r| r.unwrap().offset.0));
        at = read.next_offset();
    }
    assert_eq!(got, want);
    assert!(
        got.len() < expected("transactional").len(),
        "the fixture has control records"
    );
}

#[test]
fn log_append_time() {
    check_fixture("log-append-time");
}

#[test]
fn compacted_with_gaps() {
    check_fixture("compacted-gaps");
}

#[test]
fn torn_tail_recovers_to_the_last_whole_batch() {
    let dir = copy_fixture("torn-tail");
    let p = Partition::open(dir.path(), PartitionConfig::default()).unwrap();
    assert_eq!(p.log_end_offset(), Offset(572));
    assert_eq!(p.recovery_report().truncated_bytes, 1179);
    assert_matches("torn-tail", &read_all(&p), &expected("torn-tail"));
    p.close().unwrap();
    // The recovered log is byte for byte what Kafka's own recovery left.
    let log = "00000000000000000000.log";
    assert_eq!(
        fs::read(dir.path().join(log)).unwrap(),
        fs::read(fixture_dir("torn-tail-recovered").join(log)).unwrap()
    );
}
