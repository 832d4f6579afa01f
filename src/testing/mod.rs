//! Conformance suites for the crate's traits, and a simulated file system (feature
//! `testing`).
//!
//! [`SimFs`] is an in-memory file system that tracks what is durable, can lose power
//! (dropping what was not, or keeping torn sector-aligned prefixes) and can fail operations
//! with `EIO` or `ENOSPC`; put a partition on it with
//! [`PartitionConfig::with_file_system`](crate::PartitionConfig::with_file_system).
//!
//! Each suite is a plain function that takes a factory for the implementation under test and
//! panics, with the name of the failed check, when the implementation breaks the trait's
//! documented contract. Call it from a `#[test]` in your own crate:
//!
//! ```
//! # fn main() {
//! seglog::testing::offset_store_conformance(seglog::MemoryOffsetStore::new);
//! # }
//! ```

pub mod assignor;
#[cfg(feature = "kafka-server")]
mod kafka;
pub mod offset_store;
pub mod replicator;

use crate::log::config::PartitionConfig;
use crate::topic::metadata::{decode_metadata, encode_metadata, TopicMeta};

pub use crate::format::batch::check_batch;
/// The compression codecs (Kafka's framings, bounded decompression), for benches and fuzz
/// targets.
pub use crate::format::compression::{compress, decompress};
/// The simulated file system and its fault vocabulary.
pub use crate::io::sim::{SimError, SimFs, SimOp, SECTOR_BYTES};
/// What [`Partition::group_commit_stats`](crate::Partition::group_commit_stats) returns.
pub use crate::log::partition::GroupCommitStats;
pub use crate::topic::partitioner::partitioner_conformance;
pub use assignor::assignor_conformance;
#[cfg(feature = "kafka-server")]
pub use kafka::kafka_request_decodes;
pub use offset_store::{durable_offset_store_conformance, offset_store_conformance};

/// One topic of a `topics.meta` file: name, partition count, partition configuration,
/// replication factor, `min_insync_replicas`.
pub type TopicMetadata = (String, u32, PartitionConfig, u32, u32);

/// Decode the bytes of a `topics.meta` file as [`LogStore::open`](crate::LogStore::open)
/// does (for fuzz targets): every topic, or the 1-based line (0: the whole file) and the
/// reason it is refused. Decoded configurations are not validated; opening their partitions
/// does that.
///
/// # Errors
/// The line and reason of the first problem found.
pub fn decode_topics_metadata(bytes: &[u8]) -> Result<Vec<TopicMetadata>, (usize, &'static str)> {
    Ok(decode_metadata(bytes)?
        .into_iter()
        .map(|m| {
            (
                m.name,
                m.partitions,
                m.config,
                m.replication_factor,
                m.min_insync_replicas,
            )
        })
        .collect())
}

/// Encode topics as the bytes of a `topics.meta` file, checksum line included, exactly as
/// the store writes them.
pub fn encode_topics_metadata(topics: &[TopicMetadata]) -> Vec<u8> {
    let metas: Vec<TopicMeta> = topics
        .iter()
        .map(|(name, partitions, config, rf, min_isr)| TopicMeta {
            name: name.clone(),
            partitions: *partitions,
            config: config.clone(),
            replication_factor: *rf,
            min_insync_replicas: *min_isr,
        })
        .collect();
    encode_metadata(&metas)
}
pub use replicator::replicator_conformance;
