#![doc = include_str!("../README.md")]
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod client;
mod error;
mod format;
mod group;
mod io;
mod log;
mod offset;
mod replication;
#[cfg(feature = "testing")]
pub mod testing;
mod topic;

pub use client::consumer::{
    AutoOffsetReset, Consumer, ConsumerConfig, ConsumerRecord, RebalanceListener,
    FETCH_MAX_BYTES_LIMIT,
};
pub use client::producer::{Producer, ProducerConfig, SendHandle, LINGER_MAX};
pub use error::{CorruptKind, Error, Result};
pub use format::batch::{
    check_batch, Batch, BatchHeader, BatchMeta, Records, ATTR_COMPACTED, BATCH_BYTES_LIMIT,
    BATCH_HEADER_LEN, FORMAT_VERSION,
};
pub use format::record::{now_ms, Header, LogRecord, Record};
pub use group::offset_store::{
    validate_group_id, validate_offset_commit, CommittedOffset, FileOffsetStore,
    FileOffsetStoreConfig, MemoryOffsetStore, OffsetStore, GROUP_ID_BYTES_MAX,
    OFFSET_COMMIT_PARTITIONS_MAX, OFFSET_METADATA_BYTES_MAX, OFFSET_TOPIC_BYTES_MAX,
};
pub use group::{
    validate_assignment, Assignment, Assignor, GroupCoordinator, GroupDescription, MemberConfig,
    MemberDescription, MemberSync, PartitionCounts, RangeAssignor, RoundRobinAssignor,
    StickyAssignor, Subscriptions, TopicMetadata, CLIENT_ID_BYTES_MAX, GROUP_MEMBERS_MAX,
    OFFSETS_DIR, SESSION_TIMEOUT_MAX, SESSION_TIMEOUT_MIN, SUBSCRIPTION_TOPICS_MAX,
};
#[doc(hidden)]
pub use io::fault::FaultInjector;
pub use log::config::{
    CleanupPolicy, CompactionConfig, Durability, PartitionConfig, SEGMENT_BYTES_MAX,
    SEGMENT_BYTES_MIN,
};
pub use log::index::{Index, IndexEntry, IndexRecord, OffsetIndex, TimeEntry, TimeIndex};
pub use log::partition::{AppendInfo, CompactionReport, Partition, ReadBatches, RecoveryReport};
pub use log::retention;
pub use log::segment::{segment_path, Segment};
pub use offset::{Offset, TopicPartition};
pub use topic::handle::{
    validate_topic_name, Topic, TopicConfig, TOPIC_NAME_LEN_MAX, TOPIC_PARTITIONS_MAX,
};
pub use topic::maintenance::MaintenanceReport;
pub use topic::metadata::TOPICS_METADATA_FILE;
pub use topic::partitioner::{murmur2, to_positive, DefaultPartitioner, Partitioner};
pub use topic::store::{LogStore, StoreConfig, STORE_TOPICS_MAX};
