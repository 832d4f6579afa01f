//! The body of the `topics_meta` fuzz target, a plain function that `tests/metadata_fuzz.rs`
//! also runs (`#[path]` module) so it is built and exercised by `cargo test`.
//!
//! The input is decoded as a `topics.meta` file three ways: as it is; with a valid checksum
//! line appended (so the parser behind the checksum is reached); and, in addition, behind
//! the current header line. Decoding never panics: it returns the topics or a line and a
//! reason. Whatever decodes also round-trips: encoding the topics and decoding that gives
//! the same topics, and encoding those gives the same bytes.

use seglog::testing::{decode_topics_metadata, encode_topics_metadata, TopicMetadata};

/// CRC-32C (Castagnoli), bit by bit: the metadata file's checksum.
fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0x82F6_3B78 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

/// `body`, ending in a newline, followed by its checksum line.
fn sealed(body: &[u8]) -> Vec<u8> {
    let mut out = body.to_vec();
    if out.last() != Some(&b'\n') {
        out.push(b'\n');
    }
    let line = format!("crc32c {:08x}\n", crc32c(&out));
    out.extend_from_slice(line.as_bytes());
    out
}

/// What a comparison sees of a topic (`PartitionConfig` has no `PartialEq`: its `Debug`
/// lists every persisted field).
fn shape(topics: &[TopicMetadata]) -> Vec<(String, u32, String, u32, u32)> {
    topics
        .iter()
        .map(|(name, partitions, config, rf, min_isr)| {
            (
                name.clone(),
                *partitions,
                format!("{config:?}"),
                *rf,
                *min_isr,
            )
        })
        .collect()
}

fn check(bytes: &[u8]) {
    let Ok(topics) = decode_topics_metadata(bytes) else {
        return;
    };
    let mut names: Vec<&str> = topics.iter().map(|t| t.0.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), topics.len(), "a topic decoded twice");
    assert!(
        topics.iter().all(|t| t.1 >= 1),
        "a topic without partitions"
    );
    assert!(
        topics.iter().all(|t| t.3 >= 1 && (1..=t.3).contains(&t.4)),
        "replication settings out of range"
    );
    let encoded = encode_topics_metadata(&topics);
    let again = decode_topics_metadata(&encoded)
        .unwrap_or_else(|e| panic!("what decoded re-encodes to bytes that do not: {e:?}"));
    assert_eq!(shape(&again), shape(&topics), "round trip");
    assert_eq!(
        encode_topics_metadata(&again),
        encoded,
        "encoding is stable"
    );
}

/// Decode `data` as it is, sealed with a valid checksum, and behind the header.
pub fn topics_meta(data: &[u8]) {
    check(data);
    check(&sealed(data));
    let mut with_header = b"seglog-topics 2\n".to_vec();
    with_header.extend_from_slice(data);
    check(&sealed(&with_header));
}
