#![doc = include_str!("../README.md")]
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod batch;
mod checkpoint;
mod config;
mod error;
mod fault;
mod index;
mod logmap;
mod offset;
mod offsets;
mod partition;
mod record;
pub mod retention;
mod segment;
#[cfg(feature = "testing")]
pub mod testing;
mod varint;

pub use batch::{
    check_batch, Batch, BatchHeader, BatchMeta, Records, BATCH_BYTES_LIMIT, BATCH_HEADER_LEN,
    FORMAT_VERSION,
};
pub use config::{
    CleanupPolicy, CompactionConfig, Durability, PartitionConfig, SEGMENT_BYTES_MAX,
    SEGMENT_BYTES_MIN,
};
pub use error::{CorruptKind, Error, Result};
#[doc(hidden)]
pub use fault::FaultInjector;
pub use index::{Index, IndexEntry, IndexRecord, OffsetIndex, TimeEntry, TimeIndex};
pub use offset::{Offset, TopicPartition};
pub use offsets::{
    validate_group_id, validate_offset_commit, CommittedOffset, FileOffsetStore,
    FileOffsetStoreConfig, MemoryOffsetStore, OffsetStore, GROUP_ID_BYTES_MAX,
    OFFSET_COMMIT_PARTITIONS_MAX, OFFSET_METADATA_BYTES_MAX, OFFSET_TOPIC_BYTES_MAX,
};
pub use partition::{AppendInfo, CompactionReport, Partition, ReadBatches, RecoveryReport};
pub use record::{now_ms, Header, LogRecord, Record};
pub use segment::{segment_path, Segment};
