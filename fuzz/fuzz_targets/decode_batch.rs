//! Fuzz target: `Batch::decode`, record iteration and `check_batch` on arbitrary bytes must
//! never panic, and the two checkers must agree on whether a batch is valid. Each input is
//! tried as given, with its CRC recomputed, and with a header forced into shape (length,
//! version, counts, timestamps) plus a recomputed CRC, so the fuzzer spends most of its time
//! in the record parser rather than on the checksum.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use seglog::testing::check_batch;
use seglog::Batch;

/// CRC-32 (IEEE, reflected) lookup table, built at compile time.
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xEDB8_8320
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

fn crc32(data: &[u8]) -> u32 {
    !data.iter().fold(!0u32, |c, &b| {
        CRC_TABLE[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8)
    })
}

/// Rewrite the stored CRC (bytes 12..16) to match bytes [16, 12 + batch_length) as far as
/// they exist.
fn fix_crc(b: &mut [u8]) {
    if b.len() < 16 {
        return;
    }
    let declared = u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize;
    let end = 12usize.saturating_add(declared).min(b.len()).max(16);
    let crc = crc32(&b[16..end]);
    b[12..16].copy_from_slice(&crc.to_le_bytes());
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Make the fixed header pass its checks: length = the whole input, version 1, a small record
/// count, a consistent last offset delta and max timestamp; then recompute the CRC.
fn fix_header(b: &mut [u8]) {
    const HEADER_LEN: usize = seglog::BATCH_HEADER_LEN;
    if b.len() < HEADER_LEN || b.len() > seglog::BATCH_BYTES_LIMIT {
        return;
    }
    let len = (b.len() - 12) as u32;
    b[8..12].copy_from_slice(&len.to_le_bytes());
    b[16] = seglog::FORMAT_VERSION;
    let count = 1 + le_u32(b, 57) % 16;
    b[57..61].copy_from_slice(&count.to_le_bytes());
    let delta = (le_u32(b, 23) % 64).max(count - 1);
    b[23..27].copy_from_slice(&delta.to_le_bytes());
    let first = i64::from_le_bytes(b[27..35].try_into().unwrap());
    let max = i64::from_le_bytes(b[35..43].try_into().unwrap()).max(first);
    b[35..43].copy_from_slice(&max.to_le_bytes());
    // Keep base_offset + last_offset_delta from overflowing.
    let base = u64::from_le_bytes(b[0..8].try_into().unwrap()) >> 1;
    b[0..8].copy_from_slice(&base.to_le_bytes());
    fix_crc(b);
}

fn exercise(data: &[u8]) {
    let checked = check_batch(data);
    let valid = match Batch::decode(Bytes::copy_from_slice(data)) {
        Ok(batch) => {
            assert!(batch.encoded_len() <= data.len());
            let mut ok = true;
            let mut count = 0usize;
            for r in batch.records() {
                assert!(ok, "records() yielded an item after an error");
                match r {
                    Ok(r) => {
                        assert!(batch.base_offset() <= r.offset && r.offset <= batch.last_offset());
                        count += 1;
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
    assert_eq!(
        checked.is_ok(),
        valid,
        "check_batch disagrees with decode + records"
    );
}

fuzz_target!(|data: &[u8]| {
    exercise(data);
    let mut fixed = data.to_vec();
    fix_crc(&mut fixed);
    exercise(&fixed);
    fix_header(&mut fixed);
    exercise(&fixed);
});
