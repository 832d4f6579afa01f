#![doc = include_str!("../README.md")]
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod batch;
mod checkpoint;
mod config;
mod consumer;
mod error;
mod fault;
mod group;
mod index;
mod logmap;
mod offset;
mod offsets;
mod partition;
mod partitioner;
mod producer;
mod record;
pub mod retention;
mod segment;
mod store;
#[cfg(feature = "testing")]
pub mod testing;
mod topic;
mod varint;

pub use batch::{
    check_batch, Batch, BatchHeader, BatchMeta, Records, ATTR_COMPACTED, BATCH_BYTES_LIMIT,
    BATCH_HEADER_LEN, FORMAT_VERSION,
};
pub use config::{
    CleanupPolicy, CompactionConfig, Durability, PartitionConfig, SEGMENT_BYTES_MAX,
    SEGMENT_BYTES_MIN,
};
pub use consumer::{
    AutoOffsetReset, Consumer, ConsumerConfig, ConsumerRecord, RebalanceListener,
    FETCH_MAX_BYTES_LIMIT,
};
pub use error::{CorruptKind, Error, Result};
#[doc(hidden)]
pub use fault::FaultInjector;
pub use group::{
    validate_assignment, Assignment, Assignor, GroupCoordinator, GroupDescription, MemberConfig,
    MemberDescription, MemberSync, PartitionCounts, RangeAssignor, RoundRobinAssignor,
    StickyAssignor, Subscriptions, TopicMetadata, CLIENT_ID_BYTES_MAX, GROUP_MEMBERS_MAX,
    OFFSETS_DIR, SESSION_TIMEOUT_MAX, SESSION_TIMEOUT_MIN, SUBSCRIPTION_TOPICS_MAX,
};
pub use index::{Index, IndexEntry, IndexRecord, OffsetIndex, TimeEntry, TimeIndex};
pub use offset::{Offset, TopicPartition};
pub use offsets::{
    validate_group_id, validate_offset_commit, CommittedOffset, FileOffsetStore,
    FileOffsetStoreConfig, MemoryOffsetStore, OffsetStore, GROUP_ID_BYTES_MAX,
    OFFSET_COMMIT_PARTITIONS_MAX, OFFSET_METADATA_BYTES_MAX, OFFSET_TOPIC_BYTES_MAX,
};
pub use partition::{AppendInfo, CompactionReport, Partition, ReadBatches, RecoveryReport};
pub use partitioner::{murmur2, to_positive, DefaultPartitioner, Partitioner};
pub use producer::{Producer, ProducerConfig, SendHandle, LINGER_MAX};
pub use record::{now_ms, Header, LogRecord, Record};
pub use segment::{segment_path, Segment};
pub use store::{LogStore, MaintenanceReport, StoreConfig, STORE_TOPICS_MAX, TOPICS_METADATA_FILE};
pub use topic::{
    validate_topic_name, Topic, TopicConfig, TOPIC_NAME_LEN_MAX, TOPIC_PARTITIONS_MAX,
};
