//! `Partition::append_encoded`: batches that arrive already encoded are checked in full, given
//! the next offsets and the partition's epoch, and written byte for byte otherwise; damaged,
//! oversized, badly stamped or policy-breaking input is a typed error that writes nothing.

use bytes::Bytes;
use seglog::{
    CleanupPolicy, Compression, CorruptKind, Durability, Error, Offset, Partition, PartitionConfig,
    Record, TimestampType,
};

fn quiet() -> PartitionConfig {
    PartitionConfig::default()
        .with_durability(Durability::NoSync)
        .with_segment_ms(None)
        .with_retention_ms(None)
}

fn recs(tag: &str, n: usize, ts: i64) -> Vec<Record> {
    (0..n)
        .map(|i| {
            Record::new(format!("{tag}-{i}"))
                .with_key(format!("k{i}"))
                .with_timestamp(ts + i as i64)
                .with_header("h", tag.to_owned())
        })
        .collect()
}

/// The bytes `append` stores for each batch of `batches`, from a scratch partition.
fn encoded(config: PartitionConfig, batches: &[Vec<Record>]) -> Vec<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), config).unwrap();
    for b in batches {
        p.append(b).unwrap();
    }
    let read = p.read(Offset(0), 1 << 20).unwrap();
    read.batches()
        .iter()
        .map(|b| b.as_bytes().to_vec())
        .collect()
}

fn raw_batches(p: &Partition) -> Vec<Vec<u8>> {
    let read = p.read(Offset(0), 1 << 20).unwrap();
    read.batches()
        .iter()
        .map(|b| b.as_bytes().to_vec())
        .collect()
}

fn values(p: &Partition) -> Vec<(Offset, Option<Bytes>, i64)> {
    let read = p.read(Offset(0), 1 << 20).unwrap();
    read.records()
        .map(|r| {
            let r = r.unwrap();
            (r.offset, r.value, r.timestamp_ms)
        })
        .collect()
}

/// Recompute a batch's CRC-32C after a test changed a field it covers.
fn fix_crc(batch: &mut [u8]) {
    let crc = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, &batch[21..]) as u32;
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

#[test]
fn batches_get_the_next_offsets_and_are_stored_byte_for_byte() {
    let sets = [
        recs("a", 3, 1_000),
        recs("b", 2, 2_000),
        recs("c", 1, 3_000),
    ];
    let want = encoded(quiet(), &sets);
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), quiet()).unwrap();
    // One batch, then two back to back in one call.
    let mut first = want[0].clone();
    let info = p.append_encoded(&mut first).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (Offset(0), Offset(2)));
    let mut rest: Vec<u8> = want[1..].concat();
    let info = p.append_encoded(&mut rest).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (Offset(3), Offset(5)));
    // Offsets and epoch were the same as the scratch partition gave: identical bytes.
    assert_eq!(raw_batches(&p), want);
    assert_eq!(p.log_end_offset(), Offset(6));
    // The caller's buffer holds what was written.
    assert_eq!(rest, want[1..].concat());
}

#[test]
fn base_offset_and_epoch_are_rewritten_and_nothing_else() {
    let want = encoded(quiet(), &[recs("a", 4, 1_000)]).remove(0);
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), quiet()).unwrap();
    p.append(&recs("x", 5, 10)).unwrap();
    p.assign_leader_epoch(3).unwrap();
    let mut input = want.clone();
    input[..8].copy_from_slice(&777u64.to_be_bytes());
    input[12..16].copy_from_slice(&99i32.to_be_bytes());
    let info = p.append_encoded(&mut input).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (Offset(5), Offset(8)));
    let stored = raw_batches(&p).pop().unwrap();
    assert_eq!(stored[..8], 5u64.to_be_bytes());
    assert_eq!(
        stored[12..16],
        3i32.to_be_bytes(),
        "the leading epoch, not the sender's"
    );
    assert_eq!(
        stored[16..],
        want[16..],
        "everything from the magic on is kept"
    );
    assert_eq!(p.leader_epoch(), Some(3));
    // Without a leading epoch, a sender's epoch becomes none.
    let dir = tempfile::tempdir().unwrap();
    let q = Partition::open(dir.path(), quiet()).unwrap();
    let mut input = want.clone();
    input[12..16].copy_from_slice(&99i32.to_be_bytes());
    q.append_encoded(&mut input).unwrap();
    assert_eq!(raw_batches(&q)[0][12..16], (-1i32).to_be_bytes());
    assert_eq!(q.leader_epoch(), None);
}

#[test]
fn compressed_batches_are_checked_and_kept_compressed() {
    let gz = quiet().with_compression(Compression::Gzip);
    let want = encoded(gz, &[recs("z", 20, 5_000)]).remove(0);
    let dir = tempfile::tempdir().unwrap();
    // The partition's own codec does not matter: the batch is stored as it came.
    let p = Partition::open(dir.path(), quiet()).unwrap();
    p.append_encoded(&mut want.clone()).unwrap();
    assert_eq!(raw_batches(&p), vec![want]);
    let got = values(&p);
    assert_eq!(got.len(), 20);
    assert_eq!(got[19].1.as_deref(), Some(&b"z-19"[..]));
}

/// Assert `append_encoded` refuses `input` with an error `check` accepts, writing nothing.
fn refused(p: &Partition, mut input: Vec<u8>, check: impl Fn(&Error) -> bool) {
    let end = p.log_end_offset();
    let err = p.append_encoded(&mut input).unwrap_err();
    assert!(check(&err), "unexpected error {err:?}");
    assert_eq!(p.log_end_offset(), end, "nothing written");
    // The partition still takes appends.
    let info = p
        .append(&[Record::new("v").with_key("k").with_timestamp(1)])
        .unwrap();
    assert_eq!(info.base_offset, end);
}

fn invalid(position: usize, reason: CorruptKind) -> impl Fn(&Error) -> bool {
    move |e| matches!(e, Error::InvalidBatch { position: p, reason: r } if *p == position && *r == reason)
}

#[test]
fn damaged_input_is_refused_with_its_position() {
    let good = encoded(quiet(), &[recs("a", 3, 1_000), recs("b", 3, 2_000)]);
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), quiet()).unwrap();
    // A flipped bit in the second batch's last value: nothing of the first is written.
    let mut two = good.concat();
    let last = two.len() - 3;
    two[last] ^= 0x10;
    refused(&p, two, invalid(good[0].len(), CorruptKind::Crc));
    // A torn second batch.
    let two = good.concat();
    refused(
        &p,
        two[..two.len() - 1].to_vec(),
        invalid(good[0].len(), CorruptKind::Truncated),
    );
    // Another magic.
    let mut v1 = good[0].clone();
    v1[16] = 1;
    refused(&p, v1, invalid(0, CorruptKind::BadVersion));
    // A record length that no longer matches, CRC fixed up: the record walk finds it.
    let mut bad_record = good[0].clone();
    bad_record[61] = bad_record[61].wrapping_add(2);
    fix_crc(&mut bad_record);
    refused(&p, bad_record, invalid(0, CorruptKind::BadRecords));
    // Offsets not dense from 0: lastOffsetDelta past the last record, CRC fixed up.
    let mut gap = good[0].clone();
    gap[23..27].copy_from_slice(&3u32.to_be_bytes());
    fix_crc(&mut gap);
    refused(&p, gap, invalid(0, CorruptKind::BadOffset));
    // No input at all.
    refused(&p, Vec::new(), |e| matches!(e, Error::EmptyBatch));
}

#[test]
fn limits_are_the_partitions() {
    let batch = encoded(quiet(), &[recs("a", 10, 1_000)]).remove(0);
    let dir = tempfile::tempdir().unwrap();
    let tight = quiet()
        .with_batch_bytes_max(batch.len() - 1)
        .with_record_bytes_max(64);
    let p = Partition::open(dir.path(), tight).unwrap();
    let len = batch.len();
    refused(
        &p,
        batch.clone(),
        move |e| matches!(e, Error::BatchTooLarge { size, .. } if *size == len),
    );
    let dir = tempfile::tempdir().unwrap();
    // Each record carries key "kN" (2 B), value "a-N" (3 B) and header "h" = "a" (2 B).
    let p = Partition::open(dir.path(), quiet().with_record_bytes_max(6)).unwrap();
    refused(&p, batch, |e| {
        matches!(e, Error::RecordTooLarge { size: 7, limit: 6 })
    });
}

#[test]
fn a_compacted_partition_wants_keys() {
    let keyless = encoded(quiet(), &[vec![Record::new("v").with_timestamp(5)]]).remove(0);
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(
        dir.path(),
        quiet().with_cleanup_policy(CleanupPolicy::Compact),
    )
    .unwrap();
    let end = p.log_end_offset();
    let err = p.append_encoded(&mut keyless.clone()).unwrap_err();
    assert!(matches!(err, Error::MissingKey { index: 0 }), "{err:?}");
    assert_eq!(p.log_end_offset(), end);
}

#[test]
fn create_time_timestamps_are_checked() {
    let good = encoded(quiet(), &[recs("a", 3, 1_000)]).remove(0);
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), quiet()).unwrap();
    // baseTimestamp moved below zero: every record's timestamp is now negative.
    let mut negative = good.clone();
    negative[27..35].copy_from_slice(&(-5_000i64).to_be_bytes());
    fix_crc(&mut negative);
    refused(&p, negative, |e| {
        matches!(
            e,
            Error::InvalidTimestamp {
                timestamp_ms: -5_000,
                index: Some(0),
                ..
            }
        )
    });
    // No timestamp (-1) is allowed, as for `append`.
    let none = encoded(quiet(), &[vec![Record::new("v").with_timestamp(-1)]]).remove(0);
    p.append_encoded(&mut none.clone()).unwrap();
}

/// Under `CreateTime` a batch whose `maxTimestamp` is not its records' largest, or that is
/// marked `LogAppendTime`, is stored corrected (bit cleared, `maxTimestamp` the largest
/// record timestamp, CRC recomputed), as Kafka's `LogValidator` does, not refused: the time
/// index and rolling by age read that field.
#[test]
fn create_time_max_timestamp_and_type_are_corrected_as_kafka_does() {
    let good = encoded(quiet(), &[recs("a", 3, 1_000)]).remove(0);
    let mut wrong_max = good.clone();
    wrong_max[35..43].copy_from_slice(&9_999_999i64.to_be_bytes());
    fix_crc(&mut wrong_max);
    let mut append_time = good.clone();
    append_time[22] |= 0x08;
    fix_crc(&mut append_time);
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), quiet()).unwrap();
    for (i, mut input) in [wrong_max, append_time, good.clone()]
        .into_iter()
        .enumerate()
    {
        let info = p.append_encoded(&mut input).unwrap();
        let read = p.read(info.base_offset, 1 << 20).unwrap();
        let batch = &read.batches()[0];
        assert_eq!(batch.max_timestamp(), 1_002, "case {i}");
        assert_eq!(
            batch.header().timestamp_type(),
            TimestampType::CreateTime,
            "case {i}"
        );
        // Stored as corrected: the same bytes as the good batch but for offset and epoch.
        assert_eq!(batch.as_bytes()[16..], good[16..], "case {i}");
        let ts: Vec<i64> = read.records().map(|r| r.unwrap().timestamp_ms).collect();
        assert_eq!(ts, [1_000, 1_001, 1_002], "case {i}");
    }
    assert_eq!(p.offset_for_timestamp(1_002).unwrap(), Some(Offset(2)));
}

#[test]
fn log_append_time_stamps_the_batch_and_ignores_record_timestamps() {
    let good = encoded(quiet(), &[recs("a", 3, 1_000)]).remove(0);
    let mut negative = good.clone();
    negative[27..35].copy_from_slice(&(-5_000i64).to_be_bytes());
    fix_crc(&mut negative);
    let dir = tempfile::tempdir().unwrap();
    let config = quiet().with_timestamp_type(TimestampType::LogAppendTime);
    let p = Partition::open(dir.path(), config).unwrap();
    let before = seglog::now_ms();
    p.append_encoded(&mut negative).unwrap();
    let stored = raw_batches(&p).remove(0);
    assert_eq!(stored[22] & 0x08, 0x08, "timestamp type bit set");
    for (_, _, ts) in values(&p) {
        assert!(ts >= before, "every record reads the append time");
    }
    // The CRC was recomputed: the stored batch decodes (CRC checked) on its own.
    assert!(seglog::Batch::decode(Bytes::from(stored)).is_ok());
}
