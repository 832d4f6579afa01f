//! Choosing a record's partition: the [`Partitioner`] trait and Kafka's default.
//!
//! [`DefaultPartitioner`] sends a keyed record to `(murmur2(key) & 0x7fffffff) % partitions`
//! with [`murmur2`] computed byte for byte as Kafka's Java client computes it
//! (`org.apache.kafka.common.utils.Utils.murmur2`), so a key lands in the same partition
//! number as it would on a Kafka cluster with the same partition count. Keyless records go
//! round-robin, with one counter per topic.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;

use crate::format::record::Record;

/// Decides which partition of a topic a record goes to.
///
/// A [`Topic`](crate::Topic) asks its partitioner for every record that is not sent to an
/// explicit partition (see [`Producer::send_to`](crate::Producer::send_to)). Implement it to
/// route by something other than the key, or to spread keyless records differently.
///
/// # Contract
///
/// For `partition(topic, record, partition_count)`:
///
/// - The caller guarantees `partition_count >= 1`, and that `topic` is the name of the topic
///   the record is being sent to.
/// - The result **must** lie in `[0, partition_count)`. Callers check it: a value outside that
///   range fails the send with [`Error::PartitionOutOfRange`](crate::Error::PartitionOutOfRange),
///   it is never clamped or wrapped.
/// - For a record with a key (`record.key.is_some()`, an empty key included) the result
///   **must** depend only on the key, the topic and `partition_count` if users are to rely on
///   per-key ordering: every record of one key then lives in one partition, in send order,
///   for as long as the partition count stays the same. A partitioner that deliberately
///   spreads one key over several partitions must say so in its own documentation.
/// - Increasing a topic's partition count ([`LogStore::add_partitions`](crate::LogStore::add_partitions))
///   **may** move keys to other partitions, as it does in Kafka; records already written stay
///   where they are.
/// - The method **must** be safe to call from many threads at once (hence `Send + Sync`), and
///   **should** be cheap and non-blocking: it runs on the send path of every record.
/// - It **may** keep internal state (counters, a sticky choice); it **may** be called for a
///   record whose append later fails, so state must not assume every call is followed by a
///   successful append.
pub trait Partitioner: Send + Sync {
    /// The partition, in `[0, partition_count)`, that `record` goes to in `topic`.
    fn partition(&self, topic: &str, record: &Record, partition_count: u32) -> u32;
}

/// Kafka's Java-client murmur2 hash of `data`, as a signed 32-bit value.
///
/// Seed `0x9747b28c`, mixing constants `m = 0x5bd1e995`, `r = 24`; 4-byte little-endian
/// blocks, then the 1 to 3 trailing bytes, then the final avalanche. Java's `int` arithmetic
/// wraps and its `>>>` is a logical shift, so computing in `u32` and reinterpreting the result
/// as `i32` gives exactly the Java value (the one Kafka's `UtilsTest.testMurmur2` checks).
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;

    // Java: `int h = seed ^ length`, with `length` an int; lengths past i32::MAX cannot exist
    // there, and truncating matches the Java bit pattern for every length it can hash.
    let mut h = SEED ^ (data.len() as u32);
    let mut blocks = data.chunks_exact(4);
    for block in &mut blocks {
        let mut k = u32::from_le_bytes(block.try_into().expect("4-byte block"));
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    // The Java `switch (length % 4)` falls through from case 3 to case 1.
    let tail = blocks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Kafka's `Utils.toPositive`: clears the sign bit (`n & 0x7fffffff`), not `abs`, so that
/// `i32::MIN` maps to 0 rather than overflowing.
pub fn to_positive(n: i32) -> u32 {
    (n as u32) & 0x7fff_ffff
}

/// A map keyed by topic name with a cheap hash: the names come from the application, not
/// from an adversary, and the lookup runs for every record sent.
pub(crate) type NameMap<V> = HashMap<String, V, BuildHasherDefault<NameHasher>>;

/// FNV-1a over the bytes: a few nanoseconds for a topic name, where `SipHash` costs tens.
#[derive(Clone, Copy)]
pub(crate) struct NameHasher(u64);

impl Default for NameHasher {
    fn default() -> Self {
        NameHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for NameHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Kafka's default partitioning: keyed records by murmur2, keyless ones round-robin.
///
/// - A record with a key (an empty key counts as a key, as in Kafka) goes to
///   [`DefaultPartitioner::partition_for_key`]: `to_positive(murmur2(key)) % partition_count`,
///   the partition Kafka's Java producer picks for that key and partition count.
/// - A keyless record goes to the next partition of a round-robin over `[0, partition_count)`,
///   with one counter per topic, starting at partition 0. Over `k * partition_count`
///   consecutive keyless records of one topic every partition gets exactly `k` (also when
///   several threads send at once: the counter is atomic). Round-robin rather than Kafka's
///   sticky choice because a [`Producer`](crate::Producer) batches per partition anyway and
///   round-robin keeps partitions evenly filled record by record.
#[derive(Debug, Default)]
pub struct DefaultPartitioner {
    /// Next keyless partition per topic (taken modulo the partition count at each call).
    counters: RwLock<NameMap<AtomicU64>>,
}

impl DefaultPartitioner {
    /// A partitioner with every round-robin counter at 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// The partition Kafka's Java client picks for `key` among `partition_count` partitions:
    /// `to_positive(murmur2(key)) % partition_count`. Panics if `partition_count` is 0.
    pub fn partition_for_key(key: &[u8], partition_count: u32) -> u32 {
        assert!(partition_count > 0, "a topic has at least one partition");
        to_positive(murmur2(key)) % partition_count
    }

    fn next_keyless(&self, topic: &str, partition_count: u32) -> u32 {
        let n = {
            let counters = self.counters.read();
            counters
                .get(topic)
                .map(|c| c.fetch_add(1, Ordering::Relaxed))
        };
        let n = n.unwrap_or_else(|| {
            self.counters
                .write()
                .entry(topic.to_owned())
                .or_default()
                .fetch_add(1, Ordering::Relaxed)
        });
        // A 64-bit counter never wraps in practice, so the spread stays exactly even.
        (n % u64::from(partition_count)) as u32
    }
}

impl Partitioner for DefaultPartitioner {
    fn partition(&self, topic: &str, record: &Record, partition_count: u32) -> u32 {
        match &record.key {
            Some(key) => Self::partition_for_key(key, partition_count),
            None => self.next_keyless(topic, partition_count),
        }
    }
}

/// Check `partitioner` against the [`Partitioner`] contract; panics with a description of
/// the first violation. Part of the `testing` feature, for implementors.
///
/// It checks, for partition counts 1 to 64 and for topics `"a"` and `"b"`: that every result
/// is in range for keyed records (empty key included) and keyless ones, and that keyed
/// results are deterministic (the same key, topic and count give the same partition, also
/// after keyless calls in between). It cannot prove the absence of hidden state; it catches
/// the usual mistakes (off-by-one ranges, hashes of the value, a random choice for keys).
#[cfg(feature = "testing")]
pub fn partitioner_conformance<P: Partitioner + ?Sized>(partitioner: &P) {
    let keys: Vec<Vec<u8>> = (0..200u32)
        .map(|i| format!("key-{i}").into_bytes())
        .chain([Vec::new(), vec![0u8], vec![0xff; 37]])
        .collect();
    for topic in ["a", "b"] {
        for count in 1..=64u32 {
            let first: Vec<u32> = keys
                .iter()
                .map(|k| {
                    let r = Record::new("v").with_key(k.clone());
                    let p = partitioner.partition(topic, &r, count);
                    assert!(p < count, "keyed record in {topic}: {p} not below {count}");
                    p
                })
                .collect();
            for _ in 0..(2 * count) {
                let p = partitioner.partition(topic, &Record::new("v"), count);
                assert!(
                    p < count,
                    "keyless record in {topic}: {p} not below {count}"
                );
            }
            for (k, expected) in keys.iter().zip(&first) {
                // A different value and timestamp: only the key may matter.
                let r = Record::new("other value")
                    .with_key(k.clone())
                    .with_timestamp(7);
                assert_eq!(
                    partitioner.partition(topic, &r, count),
                    *expected,
                    "key {k:?} in {topic} with {count} partitions moved"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_positive_clears_the_sign_bit() {
        assert_eq!(to_positive(i32::MIN), 0);
        assert_eq!(to_positive(-1), 0x7fff_ffff);
        assert_eq!(to_positive(5), 5);
    }

    #[test]
    fn keyless_counters_are_per_topic() {
        let p = DefaultPartitioner::new();
        let r = Record::new("v");
        assert_eq!(p.partition("a", &r, 3), 0);
        assert_eq!(p.partition("a", &r, 3), 1);
        assert_eq!(p.partition("b", &r, 3), 0);
        assert_eq!(p.partition("a", &r, 3), 2);
        assert_eq!(p.partition("a", &r, 3), 0);
    }
}
