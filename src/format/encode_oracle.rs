//! Test-only oracle: the batch encoder as it was before the two-pass encoder of issue 11
//! (one record at a time, limits checked as each record is written, every byte pushed), kept
//! to prove the fast encoder writes the same bytes and refuses the same inputs.

use bytes::Bytes;
use proptest::prelude::*;

use crate::error::{Error, Result};
use crate::format::batch::{
    encode_batch, BatchMeta, EncodeLimits, EncodeOptions, BATCH_BYTES_LIMIT, BATCH_HEADER_LEN,
    FORMAT_VERSION, LENGTH_PREFIX_LEN,
};
use crate::format::compression::Compression;
use crate::format::crc::crc32c;
use crate::format::record::{Header, Record};
use crate::format::varint;

/// The old `encode_batch`, uncompressed only.
fn oracle_batch(
    records: &[Record],
    meta: &BatchMeta,
    limits: EncodeLimits,
    log_append_time: Option<i64>,
) -> Result<Vec<u8>> {
    let first = records.first().ok_or(Error::EmptyBatch)?;
    let base_timestamp = first.timestamp_ms;
    let mut max_timestamp = records.iter().map(|r| r.timestamp_ms).max().unwrap_or(0);
    let mut attributes: i16 = 0;
    if let Some(now) = log_append_time {
        attributes |= 0x08;
        max_timestamp = now;
    }
    let limit = limits.batch_bytes_max.min(BATCH_BYTES_LIMIT);
    let mut out = vec![0; BATCH_HEADER_LEN];
    for (i, r) in records.iter().enumerate() {
        oracle_record(
            &mut out,
            r,
            base_timestamp,
            i as i32,
            limits.record_bytes_max,
        )?;
        if out.len() > limit {
            let rest: usize = records[i + 1..].iter().map(estimate).sum();
            return Err(Error::BatchTooLarge {
                size: out.len() + rest,
                limit,
            });
        }
    }
    let batch_length = (out.len() - LENGTH_PREFIX_LEN) as u32;
    let mut header = Vec::with_capacity(BATCH_HEADER_LEN);
    header.extend_from_slice(&0u64.to_be_bytes());
    header.extend_from_slice(&batch_length.to_be_bytes());
    header.extend_from_slice(&meta.leader_epoch.to_be_bytes());
    header.push(FORMAT_VERSION);
    header.extend_from_slice(&[0; 4]);
    header.extend_from_slice(&attributes.to_be_bytes());
    header.extend_from_slice(&(records.len() as u32 - 1).to_be_bytes());
    header.extend_from_slice(&base_timestamp.to_be_bytes());
    header.extend_from_slice(&max_timestamp.to_be_bytes());
    header.extend_from_slice(&meta.producer_id.to_be_bytes());
    header.extend_from_slice(&meta.producer_epoch.to_be_bytes());
    header.extend_from_slice(&meta.base_sequence.to_be_bytes());
    header.extend_from_slice(&(records.len() as u32).to_be_bytes());
    out[..BATCH_HEADER_LEN].copy_from_slice(&header);
    let crc = crc32c(&out[21..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

fn estimate(r: &Record) -> usize {
    let len = |b: &Option<Bytes>| b.as_ref().map_or(0, Bytes::len);
    let headers: usize = r
        .headers
        .iter()
        .map(|h| h.key.len() + len(&h.value) + 10)
        .sum();
    len(&r.key) + len(&r.value) + headers
}

fn put_opt(out: &mut Vec<u8>, b: Option<&Bytes>) {
    match b {
        None => varint::put_i32(out, -1),
        Some(b) => {
            varint::put_i32(out, b.len() as i32);
            out.extend_from_slice(b);
        }
    }
}

/// The old `encode_record`: the body is built apart, then prefixed with its length.
fn oracle_record(
    out: &mut Vec<u8>,
    r: &Record,
    base_timestamp: i64,
    offset_delta: i32,
    record_bytes_max: usize,
) -> Result<()> {
    let payload = estimate(r) - 10 * r.headers.len();
    if payload > record_bytes_max {
        return Err(Error::RecordTooLarge {
            size: payload,
            limit: record_bytes_max,
        });
    }
    let mut body = vec![0u8];
    varint::put_i64(&mut body, r.timestamp_ms.wrapping_sub(base_timestamp));
    varint::put_i32(&mut body, offset_delta);
    put_opt(&mut body, r.key.as_ref());
    put_opt(&mut body, r.value.as_ref());
    varint::put_i32(&mut body, r.headers.len() as i32);
    for h in &r.headers {
        varint::put_i32(&mut body, h.key.len() as i32);
        body.extend_from_slice(&h.key);
        put_opt(&mut body, h.value.as_ref());
    }
    let mut framed = Vec::new();
    varint::put_i32(&mut framed, body.len() as i32);
    if framed.len() + body.len() > record_bytes_max.saturating_add(64) {
        return Err(Error::RecordTooLarge {
            size: framed.len() + body.len(),
            limit: record_bytes_max,
        });
    }
    out.extend_from_slice(&framed);
    out.extend_from_slice(&body);
    Ok(())
}

fn bytes_of(max: usize) -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

fn timestamp() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(-1i64),
        0i64..2_000_000_000_000,
        any::<i64>(),
        Just(i64::MIN),
        Just(i64::MAX)
    ]
}

fn record() -> impl Strategy<Value = Record> {
    let header = (bytes_of(20), prop::option::of(bytes_of(40)))
        .prop_map(|(key, value)| Header { key, value });
    (
        prop::option::of(bytes_of(200)),
        prop::option::weighted(0.9, bytes_of(1_000)),
        prop_oneof![
            3 => Just(Vec::new()),
            1 => prop::collection::vec(header, 0..6),
        ],
        timestamp(),
    )
        .prop_map(|(key, value, headers, timestamp_ms)| Record {
            key,
            value,
            headers,
            timestamp_ms,
        })
}

fn meta() -> impl Strategy<Value = BatchMeta> {
    (any::<i32>(), any::<i64>(), any::<i16>(), any::<i32>()).prop_map(|(e, p, pe, s)| {
        BatchMeta::default()
            .with_leader_epoch(e)
            .with_producer(p, pe, s)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// The fast encoder writes exactly the old encoder's bytes, and refuses what it refused
    /// with the same error (limits small enough to be hit now and then).
    #[test]
    fn fast_encoder_matches_the_old_byte_for_byte(
        records in prop::collection::vec(record(), 0..40),
        meta in meta(),
        log_append_time in prop::option::of(any::<i64>()),
        record_bytes_max in prop_oneof![Just(1usize << 20), 0usize..1_500],
        batch_bytes_max in prop_oneof![Just(8usize << 20), 0usize..20_000],
    ) {
        let limits = EncodeLimits { record_bytes_max, batch_bytes_max };
        let options = EncodeOptions { compression: Compression::None, log_append_time };
        let fast = encode_batch(&records, &meta, limits, options);
        let old = oracle_batch(&records, &meta, limits, log_append_time);
        match (fast, old) {
            (Ok(fast), Ok(old)) => prop_assert_eq!(fast, old),
            (Err(fast), Err(old)) => prop_assert_eq!(format!("{fast:?}"), format!("{old:?}")),
            (fast, old) => prop_assert!(false, "fast {:?} but old {:?}", fast.map(|b| b.len()), old.map(|b| b.len())),
        }
    }
}

/// Compressed batches compress the same records section: the fast encoder's plain section
/// under a codec decompresses to the old encoder's.
#[cfg(feature = "gzip")]
#[test]
fn compressed_batches_hold_the_old_records_section() {
    use crate::format::batch::Batch;
    let records: Vec<Record> = (0..50)
        .map(|i| {
            Record::new(vec![b'x'; i * 7])
                .with_key(format!("k{i}"))
                .with_timestamp(1_700_000_000_000 - i as i64)
                .with_header("h", vec![b'y'; i])
        })
        .collect();
    let limits = EncodeLimits {
        record_bytes_max: 1 << 20,
        batch_bytes_max: 8 << 20,
    };
    let options = EncodeOptions {
        compression: Compression::Gzip,
        log_append_time: None,
    };
    let meta = BatchMeta::default();
    let gz = encode_batch(&records, &meta, limits, options).unwrap();
    let batch = Batch::decode(Bytes::from(gz)).unwrap();
    let plain = crate::format::compression::decompress(
        Compression::Gzip,
        &batch.as_bytes()[BATCH_HEADER_LEN..],
        1 << 30,
    )
    .unwrap();
    let old = oracle_batch(&records, &meta, limits, None).unwrap();
    assert_eq!(plain, old[BATCH_HEADER_LEN..]);
}
