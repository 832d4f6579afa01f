//! The body of the `decode_batch` fuzz target, a plain function that `tests/decode.rs` also
//! runs (`#[path]` module) so it is built and exercised by `cargo test`.
//!
//! `Batch::decode`, record iteration (owned `records()` and borrowed `decoded()` views),
//! `control_marker` and `check_batch` on arbitrary bytes must never panic, the two checkers
//! must agree on whether a batch is valid, and the views must agree with the owned records
//! field by field (same records, same error at the same place). Each input
//! is tried as given, with its CRC recomputed, with a header forced into shape (magic, length,
//! attributes, counts) plus a recomputed CRC so the fuzzer spends its time in the record
//! parser, and as the compressed record section of a batch of each codec (gzip, snappy, lz4,
//! zstd) so the decompressors see it too.

use bytes::Bytes;
use seglog::testing::check_batch;
use seglog::{Batch, LogRecord};

const HEADER_LEN: usize = seglog::BATCH_HEADER_LEN;

/// CRC-32C (Castagnoli, reflected), bitwise: the harness must not share the crate's CRC.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Rewrite the stored CRC (bytes 17..21) to match bytes [21, 12 + batchLength) as far as
/// they exist.
pub fn fix_crc(b: &mut [u8]) {
    if b.len() < 21 {
        return;
    }
    let declared = be_u32(b, 8) as usize;
    let end = 12usize.saturating_add(declared).min(b.len()).max(21);
    let crc = crc32c(&b[21..end]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Make the fixed header pass its checks: magic 2, length = the whole input, attributes
/// `codec` plus bits 3-6 from the input, a small record count, a consistent last offset delta;
/// then recompute the CRC.
fn fix_header(b: &mut [u8], codec: Option<i16>) {
    if b.len() < HEADER_LEN || b.len() > seglog::BATCH_BYTES_LIMIT {
        return;
    }
    let len = (b.len() - 12) as u32;
    b[8..12].copy_from_slice(&len.to_be_bytes());
    b[16] = seglog::FORMAT_VERSION;
    let attributes = i16::from_be_bytes([b[21], b[22]]) & 0x78;
    let attributes = attributes | codec.unwrap_or(0);
    b[21..23].copy_from_slice(&attributes.to_be_bytes());
    let count = be_u32(b, 57) % 16;
    b[57..61].copy_from_slice(&count.to_be_bytes());
    let delta = (be_u32(b, 23) % 64).max(count.saturating_sub(1));
    b[23..27].copy_from_slice(&delta.to_be_bytes());
    // A valid base offset: non-negative as an i64.
    b[0] &= 0x3F;
    fix_crc(b);
}

/// Decode `data` every way the crate offers. Panics only through the code under test, or when
/// the checkers disagree. Returns whether the batch (records included) is valid.
pub fn exercise(data: &[u8]) -> bool {
    let checked = check_batch(data);
    let mut codec_missing = false;
    let valid = match Batch::decode(Bytes::copy_from_slice(data)) {
        Ok(batch) => {
            assert!(batch.encoded_len() <= data.len());
            let _ = batch.control_marker();
            let mut ok = true;
            let mut count = 0usize;
            let owned: Vec<seglog::Result<LogRecord>> = batch.records().collect();
            views_agree(&batch, &owned);
            for r in owned {
                assert!(ok, "records() yielded an item after an error");
                match r {
                    Ok(r) => {
                        assert!(batch.base_offset() <= r.offset && r.offset <= batch.last_offset());
                        count += 1;
                    }
                    Err(seglog::Error::CodecUnavailable { .. }) => {
                        codec_missing = true;
                        ok = false;
                    }
                    Err(_) => ok = false,
                }
            }
            if ok {
                assert_eq!(count, batch.record_count() as usize);
            }
            ok
        }
        Err(_) => false,
    };
    // A codec that is not compiled in: check_batch stops at the CRC, records() says so.
    if !codec_missing {
        assert_eq!(
            checked.is_ok(),
            valid,
            "check_batch disagrees with decode + records"
        );
    }
    valid
}

/// The borrowed views of `batch` (`Batch::decoded`) against its owned records (`owned`, as
/// `records()` yielded them): the same records field by field, an error where the owned path
/// has one (of the same kind), and nothing after it. Also converts each view back to an owned
/// record through `DecodedRecords::to_log_record`, which must give the same record.
pub fn views_agree(batch: &Batch, owned: &[seglog::Result<LogRecord>]) {
    let decoded = match batch.decoded() {
        Ok(d) => d,
        Err(e) => {
            // Decompression failed: the owned path reports the same as its only item.
            assert_eq!(
                owned.len(),
                1,
                "decoded() failed ({e}) but records() did not"
            );
            let same = matches!(
                (&e, &owned[0]),
                (
                    seglog::Error::CodecUnavailable { .. },
                    Err(seglog::Error::CodecUnavailable { .. })
                ) | (
                    seglog::Error::Corrupt { .. },
                    Err(seglog::Error::Corrupt { .. })
                )
            );
            assert!(same, "decoded() error {e:?} vs records() {:?}", owned[0]);
            return;
        }
    };
    let views: Vec<_> = decoded.iter().collect();
    assert_eq!(
        views.len(),
        owned.len(),
        "views and owned records differ in number"
    );
    for (v, o) in views.iter().zip(owned) {
        match (v, o) {
            (Ok(v), Ok(o)) => {
                assert_eq!(v.offset(), o.offset);
                assert_eq!(v.timestamp_ms(), o.timestamp_ms);
                assert_eq!(v.timestamp_type(), o.timestamp_type);
                assert_eq!(v.key(), o.key.as_deref());
                assert_eq!(v.value(), o.value.as_deref());
                assert_eq!(v.header_count(), o.headers.len());
                let headers = v.headers().map(|h| (h.key(), h.value()));
                let want = o.headers.iter().map(|h| (&h.key[..], h.value.as_deref()));
                assert!(headers.eq(want), "headers differ");
                assert_eq!(&decoded.to_log_record(v), o);
            }
            (
                Err(seglog::Error::Corrupt { reason: a, .. }),
                Err(seglog::Error::Corrupt { reason: b, .. }),
            ) => {
                assert_eq!(a, b);
            }
            (v, o) => panic!("view {v:?} vs owned {o:?}"),
        }
    }
}

/// The fuzz target's body.
pub fn decode_batch(data: &[u8]) {
    exercise(data);
    let mut fixed = data.to_vec();
    fix_crc(&mut fixed);
    exercise(&fixed);
    fix_header(&mut fixed, None);
    exercise(&fixed);
    // The input as the compressed records of a batch of each codec.
    for codec in 1..=4i16 {
        let mut b = vec![0u8; HEADER_LEN];
        b[57..61].copy_from_slice(&u32::from(data.first().copied().unwrap_or(1)).to_be_bytes());
        b.extend_from_slice(data);
        fix_header(&mut b, Some(codec));
        exercise(&b);
    }
}
