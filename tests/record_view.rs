//! The borrowed record views (`Batch::decoded`, `ReadBatches::for_each_record`,
//! `Partition::read_each_record`) against the records appended and against the owned path
//! (`Batch::records`, `ReadBatches::records`): random records of every field shape (null and
//! empty keys and values, headers with null values, any timestamp), appended to partitions of
//! every codec and both timestamp types, are read back and compared field by field, from the
//! start and from an offset inside a batch.

mod support;
use bytes::Bytes;
use proptest::prelude::*;
use seglog::{
    Compression, Durability, Header, LogRecord, Offset, Partition, PartitionConfig, Record,
    RecordRef, TimestampType,
};
use support::RecordSpec;

fn spec() -> impl Strategy<Value = RecordSpec> {
    let bytes = |n: usize| prop::collection::vec(any::<u8>(), 0..n);
    (
        prop::option::of(bytes(10)),
        prop::option::weighted(0.8, bytes(300)),
        prop::collection::vec((bytes(5), prop::option::of(bytes(8))), 0..4),
        prop_oneof![
            Just(-1i64),
            0i64..1_000,
            1_700_000_000_000i64..1_700_000_001_000
        ],
    )
        .prop_map(|(key, value, headers, timestamp_ms)| RecordSpec {
            key,
            value,
            headers,
            timestamp_ms,
        })
}

fn codec() -> impl Strategy<Value = Compression> {
    prop_oneof![
        Just(Compression::None),
        Just(Compression::Gzip),
        Just(Compression::Snappy),
        Just(Compression::Lz4),
        Just(Compression::Zstd),
    ]
}

/// A view's fields as an owned record, to compare with what was appended.
fn view_fields(r: &RecordRef<'_>) -> (Option<Vec<u8>>, Option<Vec<u8>>, Vec<Header>) {
    let headers = r
        .headers()
        .map(|h| Header {
            key: Bytes::copy_from_slice(h.key()),
            value: h.value().map(Bytes::copy_from_slice),
        })
        .collect();
    (
        r.key().map(<[u8]>::to_vec),
        r.value().map(<[u8]>::to_vec),
        headers,
    )
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn views_agree_with_appended_and_owned_records(
        codec in codec(),
        log_append_time in any::<bool>(),
        sets in prop::collection::vec(prop::collection::vec(spec(), 1..8), 1..5),
        from in any::<prop::sample::Index>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let timestamp_type = if log_append_time {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        };
        let p = Partition::open(
            dir.path(),
            PartitionConfig::default()
                .with_durability(Durability::NoSync)
                .with_segment_ms(None)
                .with_compression(codec)
                .with_timestamp_type(timestamp_type),
        )
        .unwrap();
        let mut appended = Vec::new();
        for set in &sets {
            let records: Vec<Record> = set.iter().map(RecordSpec::record).collect();
            p.append(&records).unwrap();
            appended.extend(records);
        }
        let read = p.read(Offset(0), usize::MAX >> 8).unwrap();
        let mut i = 0;
        for batch in read.batches() {
            prop_assert_eq!(batch.header().compression(), codec);
            let decoded = batch.decoded().unwrap();
            let owned: Vec<LogRecord> = batch.records().collect::<seglog::Result<_>>().unwrap();
            let views: Vec<RecordRef<'_>> = decoded.iter().collect::<seglog::Result<_>>().unwrap();
            prop_assert_eq!(views.len(), owned.len());
            for (v, o) in views.iter().zip(&owned) {
                let want = &appended[i];
                prop_assert_eq!(v.offset(), Offset(i as u64));
                prop_assert_eq!(v.timestamp_type(), timestamp_type);
                if !log_append_time {
                    prop_assert_eq!(v.timestamp_ms(), want.timestamp_ms);
                }
                let (key, value, headers) = view_fields(v);
                prop_assert_eq!(key.as_deref(), want.key.as_deref());
                prop_assert_eq!(value.as_deref(), want.value.as_deref());
                prop_assert_eq!(&headers, &want.headers);
                prop_assert_eq!(v.header_count(), want.headers.len());
                // The owned path: same fields, and the view made owned is the same record.
                prop_assert_eq!(
                    (o.offset, o.timestamp_ms, o.timestamp_type),
                    (v.offset(), v.timestamp_ms(), v.timestamp_type())
                );
                prop_assert_eq!(&o.key, &want.key);
                prop_assert_eq!(&o.value, &want.value);
                prop_assert_eq!(&o.headers, &want.headers);
                prop_assert_eq!(&decoded.to_log_record(v), o);
                if let Some(value) = v.value() {
                    prop_assert_eq!(&decoded.bytes_of(value)[..], value);
                }
                i += 1;
            }
        }
        prop_assert_eq!(i, appended.len());

        // The whole-read walk, from an offset that may fall inside a batch, matches the owned
        // walk of the same read.
        let start = Offset(from.index(appended.len()) as u64);
        let read = p.read(start, usize::MAX >> 8).unwrap();
        let owned: Vec<LogRecord> = read.records().collect::<seglog::Result<_>>().unwrap();
        let mut seen = Vec::new();
        read.for_each_record(|r| {
            let (key, value, headers) = view_fields(&r);
            seen.push((r.offset(), r.timestamp_ms(), key, value, headers));
        })
        .unwrap();
        // The same read fed straight from the walk (`read_each_record`).
        let mut sunk = Vec::new();
        let next = p
            .read_each_record(start, usize::MAX >> 8, |r| {
                let (key, value, headers) = view_fields(&r);
                sunk.push((r.offset(), r.timestamp_ms(), key, value, headers));
            })
            .unwrap();
        prop_assert_eq!(next, read.next_offset());
        prop_assert_eq!(&sunk, &seen);
        let want: Vec<_> = owned
            .iter()
            .map(|o| {
                (
                    o.offset,
                    o.timestamp_ms,
                    o.key.as_ref().map(|b| b.to_vec()),
                    o.value.as_ref().map(|b| b.to_vec()),
                    o.headers.clone(),
                )
            })
            .collect();
        prop_assert_eq!(seen.first().map(|s| s.0), Some(start));
        prop_assert_eq!(seen.len() as u64, appended.len() as u64 - start.0);
        prop_assert_eq!(seen, want);
    }
}
