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
pub mod offset_store;
pub mod replicator;

pub use crate::format::batch::check_batch;
/// The compression codecs (Kafka's framings, bounded decompression), for benches and fuzz
/// targets.
pub use crate::format::compression::{compress, decompress};
/// The simulated file system and its fault vocabulary.
pub use crate::io::sim::{SimError, SimFs, SimOp, SECTOR_BYTES};
pub use crate::topic::partitioner::partitioner_conformance;
pub use assignor::assignor_conformance;
pub use offset_store::{durable_offset_store_conformance, offset_store_conformance};
pub use replicator::replicator_conformance;
