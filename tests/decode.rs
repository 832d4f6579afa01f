//! The batch decoder against hostile input: `Batch::decode`, record iteration and `check_batch`
//! never panic on arbitrary bytes, on arbitrary bytes under a valid header and CRC, or on real
//! batches (appended to a partition and read back) after bit flips, byte writes, truncation
//! and extension, with or without the CRC recomputed; the two checkers agree with each other,
//! the borrowed record views (`Batch::decoded`) agree with the owned records field by field
//! (and fail where they fail), and every untouched batch read back decodes to exactly the
//! records appended. The fuzz
//! target's body (`fuzz/bodies/decode_batch.rs`) runs here on proptest's inputs too.

mod support;
use bytes::Bytes;
use proptest::prelude::*;
use seglog::testing::check_batch;
use seglog::{
    Batch, BatchMeta, Durability, Error, LogRecord, Offset, Partition, PartitionConfig, Record,
    BATCH_HEADER_LEN, FORMAT_VERSION,
};
use support::RecordSpec;

#[path = "../fuzz/bodies/decode_batch.rs"]
mod fuzz_body;

use fuzz_body::fix_crc;

/// Decode `bytes` every way the crate offers, walking all records. Panics (the failure this
/// file looks for) only through the code under test, or if the two checkers disagree.
/// Returns the records when the batch is fully valid.
fn exercise(bytes: &[u8]) -> Option<Vec<LogRecord>> {
    let checked = check_batch(bytes);
    let decoded = Batch::decode(Bytes::copy_from_slice(bytes));
    let records = match &decoded {
        Ok(batch) => {
            let h = batch.header();
            assert_eq!(batch.encoded_len(), h.total_len());
            assert!(batch.encoded_len() <= bytes.len());
            let mut out = Vec::new();
            let mut failed = false;
            let owned: Vec<seglog::Result<LogRecord>> = batch.records().collect();
            fuzz_body::views_agree(batch, &owned);
            for r in owned {
                assert!(!failed, "records() yielded an item after an error");
                match r {
                    Ok(r) => out.push(r),
                    // A codec that is not compiled in: check_batch stops at the CRC.
                    Err(Error::CodecUnavailable { .. }) => return None,
                    Err(_) => failed = true,
                }
            }
            if failed {
                None
            } else {
                Some(out)
            }
        }
        Err(_) => None,
    };
    assert_eq!(
        checked.is_ok(),
        records.is_some(),
        "check_batch {checked:?} disagrees with decode+records ({})",
        if decoded.is_ok() {
            "decoded"
        } else {
            "not decoded"
        }
    );
    if let (Ok(h), Some(recs), Ok(batch)) = (&checked, &records, &decoded) {
        assert_eq!(h, batch.header());
        assert_eq!(recs.len(), h.record_count as usize, "record count");
        for w in recs.windows(2) {
            assert!(w[0].offset < w[1].offset, "offsets must increase");
        }
        for r in recs {
            assert!(batch.base_offset() <= r.offset && r.offset <= batch.last_offset());
        }
    }
    records
}

fn rec_strategy() -> impl Strategy<Value = RecordSpec> {
    let bytes = |n: usize| prop::collection::vec(any::<u8>(), 0..n);
    (
        prop::option::of(bytes(12)),
        prop::option::weighted(0.85, bytes(200)),
        prop::collection::vec((bytes(6), prop::option::of(bytes(10))), 0..3),
        prop_oneof![
            3 => 1_700_000_000_000i64..1_700_000_100_000,
            1 => any::<i64>(),
            1 => prop_oneof![Just(i64::MIN), Just(i64::MAX), Just(0i64), Just(-1i64)],
        ],
    )
        .prop_map(|(key, value, headers, timestamp_ms)| RecordSpec {
            key,
            value,
            headers,
            timestamp_ms,
        })
}

fn meta_strategy() -> impl Strategy<Value = Option<BatchMeta>> {
    prop::option::of(
        (any::<i32>(), any::<i64>(), any::<i16>(), any::<i32>()).prop_map(
            |(leader_epoch, producer_id, producer_epoch, base_sequence)| {
                BatchMeta::default()
                    .with_leader_epoch(leader_epoch)
                    .with_producer(producer_id, producer_epoch, base_sequence)
            },
        ),
    )
}

#[derive(Debug, Clone)]
enum Mutation {
    FlipBit { at: usize, bit: u8 },
    SetByte { at: usize, value: u8 },
    Truncate { to: usize },
    Extend { tail: Vec<u8> },
}

impl Mutation {
    fn apply(&self, b: &mut Vec<u8>) {
        let n = b.len();
        match self {
            Mutation::FlipBit { at, bit } => b[at % n] ^= 1 << (bit % 8),
            Mutation::SetByte { at, value } => b[at % n] = *value,
            Mutation::Truncate { to } => b.truncate(to % n),
            Mutation::Extend { tail } => b.extend_from_slice(tail),
        }
    }
}

fn mutation_strategy() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<usize>(), any::<u8>()).prop_map(|(at, bit)| Mutation::FlipBit { at, bit }),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(at, value)| Mutation::SetByte { at, value }),
        1 => any::<usize>().prop_map(|to| Mutation::Truncate { to }),
        1 => prop::collection::vec(any::<u8>(), 1..64).prop_map(|tail| Mutation::Extend { tail }),
    ]
}

/// Append each record set as one batch and read every batch back as stored on disk.
fn appended_batches(sets: &[(Vec<RecordSpec>, Option<BatchMeta>)]) -> Vec<(Vec<Record>, Batch)> {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(
        dir.path(),
        PartitionConfig::default()
            .with_durability(Durability::NoSync)
            .with_segment_ms(None),
    )
    .unwrap();
    sets.iter()
        .map(|(specs, meta)| {
            // Appends take timestamps >= 0 or -1 (Kafka's rule); the codec tests keep the
            // full range.
            let records: Vec<Record> = specs
                .iter()
                .map(|s| {
                    let mut r = s.record();
                    r.timestamp_ms = r.timestamp_ms.max(-1);
                    r
                })
                .collect();
            let info = match meta {
                Some(m) => p.append_with_meta(&records, m).unwrap(),
                None => p.append(&records).unwrap(),
            };
            let read = p.read(info.base_offset, 0).unwrap();
            let batch = read.batches()[0].clone();
            assert_eq!(batch.base_offset(), info.base_offset);
            (records, batch)
        })
        .collect()
}

fn assert_same(got: &[LogRecord], want: &[Record], base: Offset) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.offset, base.plus(i as u64));
        assert_eq!(g.timestamp_ms, w.timestamp_ms);
        assert_eq!(g.key, w.key);
        assert_eq!(g.value, w.value);
        assert_eq!(g.headers, w.headers);
    }
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    /// Plain noise: almost always rejected by the CRC, never a panic.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        exercise(&bytes);
    }

    /// The fuzz target's body on arbitrary bytes: as given, CRC fixed, header forced into
    /// shape, and as the compressed records of a batch of each codec.
    #[test]
    fn fuzz_body_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        fuzz_body::decode_batch(&bytes);
    }

    /// Noise under a header that passes every header check and a matching CRC, so the record
    /// parser itself sees the garbage.
    #[test]
    fn garbage_records_under_a_valid_header_never_panic(
        base_offset in any::<u64>(),
        attributes in prop_oneof![Just(0i16), Just(0x08), Just(0x10), Just(0x30), Just(0x40), (0i16..0x10).prop_map(|a| a << 3)],
        count in 1u32..12,
        extra_delta in 0u32..20,
        first_ts in any::<i64>(),
        ts_span in 0i64..1_000,
        body in prop::collection::vec(any::<u8>(), 0..300),
        trailing in prop::collection::vec(any::<u8>(), 0..8),
    ) {
        let mut b = vec![0u8; BATCH_HEADER_LEN];
        b[0..8].copy_from_slice(&(base_offset >> 1).to_be_bytes());
        b[12..16].copy_from_slice(&(-1i32).to_be_bytes());
        b[16] = FORMAT_VERSION;
        b[21..23].copy_from_slice(&attributes.to_be_bytes());
        b[23..27].copy_from_slice(&(count - 1 + extra_delta).to_be_bytes());
        b[27..35].copy_from_slice(&first_ts.to_be_bytes());
        b[35..43].copy_from_slice(&first_ts.saturating_add(ts_span).to_be_bytes());
        b[57..61].copy_from_slice(&count.to_be_bytes());
        b.extend_from_slice(&body);
        let len = (b.len() - 12) as u32;
        b[8..12].copy_from_slice(&len.to_be_bytes());
        fix_crc(&mut b);
        b.extend_from_slice(&trailing);
        exercise(&b);
    }
}

proptest! {
    // Each case opens a partition (a few fsyncs): fewer cases, more batches per case.
    #![proptest_config(ProptestConfig::with_cases((cases() / 4).max(1)))]

    /// Real batches: intact ones decode to what was appended (also with trailing bytes);
    /// mutated ones never panic; a mutation inside the CRC-covered range or a truncation is
    /// always detected unless the CRC is recomputed.
    #[test]
    fn appended_batches_roundtrip_and_survive_mutation(
        sets in prop::collection::vec(
            (prop::collection::vec(rec_strategy(), 1..10), meta_strategy()),
            1..6,
        ),
        mutations in prop::collection::vec((any::<usize>(), mutation_strategy(), any::<bool>()), 1..32),
    ) {
        let batches = appended_batches(&sets);
        for ((records, batch), (_, meta)) in batches.iter().zip(&sets) {
            let bytes = batch.as_bytes();
            let got = exercise(bytes).expect("an appended batch is valid");
            assert_same(&got, records, batch.base_offset());
            let from_read: Vec<LogRecord> = batch.records().collect::<seglog::Result<_>>().unwrap();
            assert_eq!(from_read, got);
            let h = *Batch::decode(bytes.clone()).unwrap().header();
            assert_eq!(h.record_count as usize, records.len());
            assert_eq!(h.base_timestamp, records[0].timestamp_ms);
            assert_eq!(h.max_timestamp, records.iter().map(|r| r.timestamp_ms).max().unwrap());
            let meta = meta.unwrap_or_default();
            assert_eq!(
                (h.partition_leader_epoch, h.producer_id, h.producer_epoch, h.base_sequence),
                (meta.leader_epoch, meta.producer_id, meta.producer_epoch, meta.base_sequence)
            );
            let mut padded = bytes.to_vec();
            padded.extend_from_slice(&[0xAB; 17]);
            let again = exercise(&padded).expect("trailing bytes are ignored");
            assert_eq!(again, got);
        }

        let mut cumulative: Vec<Vec<u8>> = batches.iter().map(|(_, b)| b.as_bytes().to_vec()).collect();
        for (which, mutation, recompute_crc) in &mutations {
            let i = which % batches.len();
            let original = batches[i].1.as_bytes();

            // One mutation on a fresh copy.
            let mut b = original.to_vec();
            mutation.apply(&mut b);
            if *recompute_crc {
                fix_crc(&mut b);
            }
            let result = exercise(&b);
            // Covered: the length and everything from the CRC on (the leader epoch at 12..16
            // is outside the CRC, as in Kafka; a changed magic at 16 is refused by name).
            let changed_covered = b.len() >= original.len()
                && (b[8..12] != original[8..12] || b[16..original.len()] != original[16..]);
            if !*recompute_crc && changed_covered {
                // A changed CRC, or a burst of at most 32 bits inside the same checked range, is always
                // caught; a changed length could in principle match by chance (2^-32).
                assert!(result.is_none(), "undetected {mutation:?}");
            }
            if b.len() < original.len() {
                assert!(result.is_none(), "a truncated batch decoded: {mutation:?}");
            }
            if b.len() >= original.len() && b[..original.len()] == original[..] {
                assert_eq!(result, exercise(original), "trailing bytes changed the result");
            }

            // The same mutation piled onto earlier ones.
            let c = &mut cumulative[i];
            if !c.is_empty() {
                mutation.apply(c);
                if *recompute_crc {
                    fix_crc(c);
                }
                exercise(c);
            }
        }
    }
}
