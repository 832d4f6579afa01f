//! The `topics_meta` fuzz target's body (`fuzz/bodies/topics_meta.rs`) on proptest's inputs:
//! arbitrary bytes, lines built from the format's own words, and real files with bytes
//! changed. Decoding `topics.meta` never panics, and whatever decodes round-trips.

use proptest::prelude::*;
use seglog::testing::encode_topics_metadata;
use seglog::{CleanupPolicy, Compression, Durability, PartitionConfig};

#[path = "../fuzz/bodies/topics_meta.rs"]
mod fuzz_body;

const WORDS: &[&str] = &[
    "topic",
    "orders",
    "a-1",
    "partitions=",
    "partitions=1",
    "partitions=0",
    "partitions=10001",
    "segment_bytes=",
    "segment_bytes=1024",
    "segment_ms=none",
    "segment_ms=18446744073709551615",
    "durability=no_sync",
    "durability=sync_threshold:1:none:5",
    "durability=sync_threshold::",
    "durability=sync_threshold:none:none:none:none",
    "retention_ms=none",
    "retention_bytes=-1",
    "cleanup_policy=compact_delete",
    "min_cleanable_dirty_ratio=NaN",
    "min_cleanable_dirty_ratio=inf",
    "min_cleanable_dirty_ratio=1e400",
    "compression=zstd",
    "timestamp_type=log_append_time",
    "truncate_corrupt=true",
    "replication_factor=3",
    "replication_factor=0",
    "replication_factor=17",
    "min_insync_replicas=2",
    "min_insync_replicas=4",
    "unknown=1",
    "=",
    "==",
    "x=",
    " ",
    "\n",
    "\r\n",
    "\t",
    "é",
    "\u{0}",
    "seglog-topics 2",
    "seglog-topics 1",
];

fn sample_file() -> Vec<u8> {
    let odd = PartitionConfig::default()
        .with_durability(Durability::SyncThreshold {
            records: Some(3),
            bytes: None,
            interval: Some(std::time::Duration::from_nanos(7)),
        })
        .with_cleanup_policy(CleanupPolicy::Compact)
        .with_compression(Compression::Lz4)
        .with_retention_ms(None);
    encode_topics_metadata(&[
        ("orders".to_owned(), 3, PartitionConfig::default(), 1, 1),
        ("a.b_c-1".to_owned(), 1, odd, 1, 1),
        ("replicated".to_owned(), 2, PartitionConfig::default(), 3, 2),
    ])
}

#[test]
fn real_files_and_their_truncations() {
    let file = sample_file();
    fuzz_body::topics_meta(&file);
    for cut in 0..file.len() {
        fuzz_body::topics_meta(&file[..cut]);
    }
    fuzz_body::topics_meta(b"");
    fuzz_body::topics_meta(b"seglog-topics 2\n");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes(data in prop::collection::vec(any::<u8>(), 0..300)) {
        fuzz_body::topics_meta(&data);
    }

    #[test]
    fn lines_of_the_format_s_own_words(words in prop::collection::vec(0..WORDS.len(), 0..40)) {
        let text: String = words.iter().map(|&i| WORDS[i]).collect::<Vec<_>>().join(" ");
        fuzz_body::topics_meta(text.as_bytes());
    }

    #[test]
    fn real_files_with_bytes_changed(
        edits in prop::collection::vec((any::<usize>(), any::<u8>()), 1..4),
    ) {
        let mut file = sample_file();
        for (at, b) in edits {
            let at = at % file.len();
            file[at] = b;
        }
        fuzz_body::topics_meta(&file);
        // The changed text, with its checksum made valid again.
        let body_end = file.len() - "crc32c 00000000\n".len();
        fuzz_body::topics_meta(&file[..body_end]);
    }
}
