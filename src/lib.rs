#![doc = include_str!("../README.md")]
//!
//! # Layers
//!
//! Each folder of `src/` is a layer that uses only the layers below it (see `docs/design.md`):
//! `format` (bytes) → `io` (files, the one memory-map module) → `log` (segments, partitions) →
//! `replication` → `topic` (the store) → `group` (consumer groups, offset stores) → `client`
//! (producer, consumer) → `server` (Kafka's wire protocol, feature `kafka-server`). This file
//! only declares them and re-exports the public API.
#![deny(unsafe_code)]
#![warn(missing_docs, rust_2018_idioms, clippy::pedantic)]
// Pedantic lints this crate opts out of, each for a reason:
#![allow(
    // Every fallible function returns `Error`, whose variants say when they occur.
    clippy::missing_errors_doc,
    // Panics are assertions of internal invariants (bugs), never conditions a caller handles.
    clippy::missing_panics_doc,
    // Builders take `self` by value: an unused result is already a moved-from value.
    clippy::return_self_not_must_use,
    // Getters and pure helpers: `#[must_use]` on each would be noise.
    clippy::must_use_candidate,
    // On-disk integers have fixed widths; lengths are bounded by the format's limits (checked
    // where bytes enter) before they are narrowed.
    clippy::cast_possible_truncation,
    // Bit reinterpretations the formats define: zigzag varints, Kafka's murmur2, signed
    // on-disk fields.
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss,
    // Public calls take records and buffers by value so an implementation may keep them
    // without a copy, whether or not today's does.
    clippy::needless_pass_by_value
)]

mod client;
mod error;
mod format;
mod group;
mod io;
mod log;
mod offset;
mod replication;
#[cfg(feature = "kafka-server")]
pub mod server;
#[cfg(feature = "testing")]
pub mod testing;
mod topic;

pub use client::consumer::{
    AutoOffsetReset, CommitCallback, Consumer, ConsumerConfig, ConsumerRecord, RebalanceListener,
    Waker, FETCH_MAX_BYTES_LIMIT,
};
pub use client::producer::{Producer, ProducerConfig, SendHandle, LINGER_MAX};
pub use error::{CorruptKind, Error, Result};
pub use format::batch::{
    Batch, BatchHeader, BatchMeta, ControlKind, ControlMarker, TimestampType, BATCH_BYTES_LIMIT,
    BATCH_HEADER_LEN, DECOMPRESSED_BYTES_LIMIT, FORMAT_VERSION,
};
pub use format::compression::Compression;
pub use format::decode::{DecodedRecords, HeaderRef, Headers, RecordRef, RecordRefs, Records};
pub use format::record::{now_ms, Header, LogRecord, Record};
pub use group::offset_store::{
    validate_group_id, validate_offset_commit, CommittedOffset, FileOffsetStore,
    FileOffsetStoreConfig, MemoryOffsetStore, OffsetStore, GROUP_ID_BYTES_MAX,
    OFFSET_COMMIT_PARTITIONS_MAX, OFFSET_METADATA_BYTES_MAX, OFFSET_TOPIC_BYTES_MAX,
};
pub use group::{
    validate_assignment, Assignment, Assignor, GroupCoordinator, GroupDescription, MemberConfig,
    MemberDescription, MemberSync, OffsetResetTarget, PartitionCounts, PartitionLag, RangeAssignor,
    RoundRobinAssignor, StickyAssignor, Subscriptions, TopicMetadata, CLIENT_ID_BYTES_MAX,
    GROUP_MEMBERS_MAX, OFFSETS_DIR, SESSION_TIMEOUT_MAX, SESSION_TIMEOUT_MIN,
    SUBSCRIPTION_TOPICS_MAX,
};
pub use log::config::{
    CleanupPolicy, CompactionConfig, Durability, PartitionConfig, SEGMENT_BYTES_MAX,
    SEGMENT_BYTES_MIN,
};
pub use log::epoch::{epoch_from_term, EpochEntry, EPOCH_NONE, LEADER_EPOCH_CHECKPOINT_FILE};
pub use log::partition::{
    AppendInfo, CompactionReport, ConfigUpdate, DurableListener, OffsetSpec, Partition,
    ReadBatches, RecoveryReport, NO_TIMESTAMP,
};
pub use log::retention;
pub use log::segment::segment_path;
pub use offset::{Offset, TopicPartition};
pub use replication::{
    Acks, PendingAppend, ReplicaSet, ReplicaSpec, ReplicationConfig, Replicator, SingleCopy,
    UncleanElection,
};
pub use topic::descriptors::{DESCRIPTORS_PER_PARTITION, DESCRIPTORS_RESERVED};
pub use topic::handle::{
    check_new_topic_name, validate_topic_name, Topic, TopicConfig, REPLICATION_FACTOR_MAX,
    RESERVED_TOPIC_NAMES, TOPIC_NAME_LEN_MAX, TOPIC_PARTITIONS_MAX,
};
pub use topic::maintenance::MaintenanceReport;
pub use topic::metadata::TOPICS_METADATA_FILE;
pub use topic::partitioner::{murmur2, to_positive, DefaultPartitioner, Partitioner};
pub use topic::store::{LogStore, StoreConfig, STORE_TOPICS_MAX};
