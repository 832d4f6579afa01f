//! Criterion benches for the compression codecs: records/s read from Kafka-written compressed
//! batches (decompress the records and walk their lengths, as iterating a batch does), and
//! records/s compressed for a 100-record batch of 100-byte values.
//!
//! The batches are `tests/data/kafka/compressed-<codec>/00000000000000000000.log`, written by
//! Apache Kafka 3.8.0: 12 batches, 246 records of about 1 KiB, the same records in each codec.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use seglog::testing::{compress, decompress};
use seglog::Compression;

/// Decompression limit: far above any fixture batch.
const LIMIT: usize = 16 << 20;

const CODECS: [(&str, Compression); 5] = [
    ("none", Compression::None),
    ("gzip", Compression::Gzip),
    ("snappy", Compression::Snappy),
    ("lz4", Compression::Lz4),
    ("zstd", Compression::Zstd),
];

/// (records count, compressed records) of every batch of the Kafka-written segment for `name`;
/// for "none", the gzip fixture's records decompressed.
fn kafka_payloads(name: &str) -> Vec<(usize, Vec<u8>)> {
    let file = if name == "none" { "gzip" } else { name };
    let path = format!(
        "{}/tests/data/kafka/compressed-{file}/00000000000000000000.log",
        env!("CARGO_MANIFEST_DIR")
    );
    let log = std::fs::read(&path).unwrap();
    let mut batches = Vec::new();
    let mut at = 0;
    while at < log.len() {
        let be32 = |i: usize| i32::from_be_bytes(log[at + i..at + i + 4].try_into().unwrap());
        let length = usize::try_from(be32(8)).unwrap();
        let payload = log[at + 61..at + 12 + length].to_vec();
        let payload = if name == "none" {
            decompress(Compression::Gzip, &payload, LIMIT).unwrap()
        } else {
            payload
        };
        batches.push((usize::try_from(be32(57)).unwrap(), payload));
        at += 12 + length;
    }
    batches
}

/// Read one zigzag varint at `at`; returns (value, next position).
fn varint(buf: &[u8], mut at: usize) -> (i64, usize) {
    let mut raw = 0u64;
    let mut shift = 0;
    loop {
        let b = buf[at];
        at += 1;
        raw |= u64::from(b & 0x7F) << shift;
        if b & 0x80 == 0 {
            return ((raw >> 1) as i64 ^ -((raw & 1) as i64), at);
        }
        shift += 7;
    }
}

/// Count the records of a decompressed batch by walking their length prefixes.
fn walk(records: &[u8]) -> usize {
    let (mut at, mut count) = (0, 0);
    while at < records.len() {
        let (length, next) = varint(records, at);
        at = next + usize::try_from(length).unwrap();
        count += 1;
    }
    count
}

fn decompress_and_walk(c: &mut Criterion) {
    let mut group = c.benchmark_group("decompress_walk");
    for (name, codec) in CODECS {
        let batches = kafka_payloads(name);
        let records: usize = batches.iter().map(|(count, _)| count).sum();
        group.throughput(Throughput::Elements(records as u64));
        group.bench_with_input(BenchmarkId::new("kafka", name), &batches, |b, batches| {
            b.iter(|| {
                let mut walked = 0;
                for (_, payload) in batches {
                    let out = decompress(codec, black_box(payload), LIMIT).unwrap();
                    walked += walk(&out);
                }
                assert_eq!(walked, records);
            });
        });
    }
    group.finish();
}

/// A batch's records section: `count` Kafka records (no key, no header) of `value_len`-byte
/// values of text that compresses as event payloads do.
fn records_section(count: usize, value_len: usize) -> Vec<u8> {
    fn put_varint(out: &mut Vec<u8>, v: i64) {
        let mut raw = ((v << 1) ^ (v >> 63)) as u64;
        while raw >= 0x80 {
            out.push((raw as u8) | 0x80);
            raw >>= 7;
        }
        out.push(raw as u8);
    }
    let mut out = Vec::new();
    for i in 0..count {
        let mut value = format!(
            "{{\"user\":{},\"event\":\"click\",\"page\":\"/item/{}\"",
            i * 7919 % 1000,
            i
        );
        value.extend(std::iter::repeat_n(
            ' ',
            value_len.saturating_sub(value.len() + 1),
        ));
        value.push('}');
        let mut body = vec![0u8]; // attributes
        put_varint(&mut body, i as i64); // timestamp delta
        put_varint(&mut body, i as i64); // offset delta
        put_varint(&mut body, -1); // no key
        put_varint(&mut body, value.len() as i64);
        body.extend_from_slice(value.as_bytes());
        put_varint(&mut body, 0); // no headers
        put_varint(&mut out, body.len() as i64);
        out.extend_from_slice(&body);
    }
    out
}

fn compress_batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("compress");
    let records = records_section(100, 100);
    group.throughput(Throughput::Elements(100));
    for (name, codec) in CODECS {
        let mut out = Vec::with_capacity(records.len() * 2);
        group.bench_function(BenchmarkId::new("100B", format!("batch100/{name}")), |b| {
            b.iter(|| {
                out.clear();
                compress(codec, black_box(&records), &mut out).unwrap();
            });
        });
        let mut packed = Vec::new();
        compress(codec, &records, &mut packed).unwrap();
        println!(
            "compress/100B/batch100/{name}: {} -> {} bytes",
            records.len(),
            packed.len()
        );
    }
    group.finish();
}

criterion_group!(benches, decompress_and_walk, compress_batch);
criterion_main!(benches);
