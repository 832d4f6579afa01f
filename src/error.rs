//! The crate's one error type.
//!
//! Conditions (bad input, disk corruption, failed I/O) are `Err`s; broken internal invariants
//! are assertions. Every variant carries structured fields rather than a formatted string.

use std::path::PathBuf;

use crate::offset::{Offset, TopicPartition};

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in seglog.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system I/O error, with the file it concerned.
    #[error("I/O error on {path:?}: {source}")]
    Io {
        /// The file or directory the operation touched.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A write or fsync failed earlier; the partition (or file offset store) refuses writes
    /// until it is reopened, because the OS may have dropped data it had accepted.
    #[error("a previous write or fsync failed; reopen to continue")]
    PreviousIoFailed,

    /// The partition was closed.
    #[error("the partition is closed")]
    Closed,

    /// Bytes read from disk (or handed to a decoder) are not a valid batch.
    #[error("corrupt data in {path:?} at byte {position}: {reason}")]
    Corrupt {
        /// The file holding the bad bytes (empty when decoding a buffer).
        path: PathBuf,
        /// Byte position of the bad batch within the file or buffer.
        position: u64,
        /// What check failed.
        reason: CorruptKind,
    },

    /// Recovery found damaged data below the recovery point: data that had been flushed and
    /// acknowledged. Open with [`PartitionConfig::truncate_corrupt`](crate::PartitionConfig)
    /// set to truncate the log at `offset` and continue.
    #[error("corruption below the recovery point {recovery_point} in {path:?}: log valid up to offset {offset}")]
    CorruptBelowRecoveryPoint {
        /// The segment file where the damage starts.
        path: PathBuf,
        /// The first offset that could not be recovered.
        offset: Offset,
        /// The recovery point: every offset below it had been flushed.
        recovery_point: Offset,
    },

    /// Segments at the front of the log are missing: the first segment begins above the log
    /// start persisted since the partition's creation (its files were deleted or lost).
    /// Open with [`PartitionConfig::truncate_corrupt`](crate::PartitionConfig) set to move
    /// the log start past them (reported in the recovery report's `missing_offsets`).
    #[error("segments missing in {dir:?}: the log starts at {log_start} but its first segment at {first_segment}")]
    MissingSegments {
        /// The partition directory.
        dir: PathBuf,
        /// The persisted log start.
        log_start: Offset,
        /// Where the first remaining segment begins (the recovery point if none is left).
        first_segment: Offset,
    },

    /// A read asked for an offset outside `[log_start_offset, high_watermark]`.
    #[error("offset {offset} is out of range [{log_start_offset}, {high_watermark}]")]
    OffsetOutOfRange {
        /// The requested offset.
        offset: Offset,
        /// The first readable offset.
        log_start_offset: Offset,
        /// One past the last readable offset.
        high_watermark: Offset,
    },

    /// A single record exceeds `record_bytes_max`.
    #[error("record of {size} bytes exceeds the limit of {limit} bytes")]
    RecordTooLarge {
        /// Encoded size of the record.
        size: usize,
        /// The configured limit.
        limit: usize,
    },

    /// A batch exceeds `batch_bytes_max`.
    #[error("batch of {size} bytes exceeds the limit of {limit} bytes")]
    BatchTooLarge {
        /// Encoded size of the batch.
        size: usize,
        /// The configured limit.
        limit: usize,
    },

    /// `append` was called with no records.
    #[error("a batch must hold at least one record")]
    EmptyBatch,

    /// A batch holds more records than the format allows.
    #[error("a batch holds {count} records, more than the limit of {limit}")]
    TooManyRecords {
        /// Records in the batch.
        count: usize,
        /// The format's limit.
        limit: usize,
    },

    /// The batch uses a compression codec whose cargo feature is not enabled in this build.
    #[error("compression codec {codec} is not enabled in this build (cargo feature `{codec}`)")]
    CodecUnavailable {
        /// The codec's name, as Kafka's `compression.type` spells it (`gzip`, `snappy`, ...).
        codec: &'static str,
    },

    /// The appended batch was removed by a truncation of the log before it was made durable:
    /// it is not acknowledged, and its offsets may be given to other records.
    #[error("the batch appended at {offset} was truncated before it was made durable")]
    Truncated {
        /// The batch's base offset.
        offset: Offset,
    },

    /// Batches appended as a follower do not continue the log: their first base offset lies
    /// below the log end (an overlap), or one batch does not follow the previous one. A gap
    /// is [`Error::OffsetGapUnsupported`].
    #[error("batch at offset {found} does not follow the log end {expected}")]
    NonContiguousAppend {
        /// The offset the next batch had to start at.
        expected: Offset,
        /// The base offset it had.
        found: Offset,
    },

    /// Batches appended as a follower leave a gap in the offsets (a compacted leader's log):
    /// not supported yet, because a gap is only accepted where the segment's batch witness
    /// lists it (see `docs/format.md`, "Batch witness"), and a follower append does not
    /// write one. A compacted leader cannot be followed; nothing was written.
    #[error(
        "batch at offset {found} leaves a gap after {expected}: a follower append does not \
         accept offset gaps yet (a compacted leader cannot be followed)"
    )]
    OffsetGapUnsupported {
        /// The offset the next batch would start at without a gap.
        expected: Offset,
        /// The base offset it had.
        found: Offset,
    },

    /// A batch carries a leader epoch below the partition's latest epoch: a stale leader's
    /// data, refused.
    #[error("leader epoch {epoch} is below the partition's latest epoch {latest}")]
    LeaderEpochRegression {
        /// The batch's (or the requested) epoch.
        epoch: i32,
        /// The partition's latest epoch.
        latest: i32,
    },

    /// An encoded batch handed to the partition (a follower append) failed validation: its
    /// header, size, CRC or records.
    #[error("invalid batch at byte {position} of the input: {reason}")]
    InvalidBatch {
        /// Byte position of the batch in the input.
        position: usize,
        /// Which check failed.
        reason: CorruptKind,
    },

    /// An acks=all append was refused, or failed while waiting, because fewer replicas than
    /// `min_insync_replicas` are in sync.
    #[error("not enough in-sync replicas: {in_sync} in sync, {required} required")]
    NotEnoughReplicas {
        /// Replicas in sync (the leader included).
        in_sync: usize,
        /// `min_insync_replicas`.
        required: usize,
    },

    /// The replica asked to lead or to take an append is not the leader (any more), or no
    /// leader is available.
    #[error("not the leader (leader epoch {epoch})")]
    NotLeader {
        /// The replica set's current leader epoch.
        epoch: i32,
    },

    /// A configuration value is out of its allowed range.
    #[error("invalid configuration: {field} = {value}: {reason}")]
    InvalidConfig {
        /// The field's name.
        field: &'static str,
        /// The rejected value, formatted.
        value: String,
        /// Why it was rejected.
        reason: &'static str,
    },

    /// A configuration field that cannot change while the partition is open (see
    /// `ConfigUpdate::set`): set it when creating the topic or opening the partition.
    #[error("configuration field {field} cannot change after creation: {reason}")]
    ConfigNotDynamic {
        /// The field's name.
        field: &'static str,
        /// Why it cannot change live, and what to do instead.
        reason: &'static str,
    },

    /// An argument is outside what the current log state allows.
    #[error("invalid argument: offset {offset}: {reason}")]
    InvalidOffset {
        /// The offending offset.
        offset: Offset,
        /// Why it was rejected.
        reason: &'static str,
    },

    /// A timestamp outside what Kafka allows: a record appended with a negative timestamp
    /// other than `-1` ("none"), or a `ListOffsets` timestamp below `-3`.
    #[error("invalid timestamp {timestamp_ms}{}: {reason}", timestamp_index(*.index))]
    InvalidTimestamp {
        /// The rejected timestamp.
        timestamp_ms: i64,
        /// The position of the record in the appended batch, for a record.
        index: Option<usize>,
        /// The rule it breaks.
        reason: &'static str,
    },

    /// A record without a key was appended to a partition whose cleanup policy compacts:
    /// compaction keeps records by key, so every record needs one.
    #[error("record {index} of the batch has no key, but the partition is compacted")]
    MissingKey {
        /// Position of the keyless record in the appended batch.
        index: usize,
    },

    /// Another `Partition` handle holds this directory open.
    #[error("partition directory {path:?} is already open")]
    AlreadyOpen {
        /// The directory.
        path: PathBuf,
    },

    /// A consumer group id is empty or longer than
    /// [`GROUP_ID_BYTES_MAX`](crate::GROUP_ID_BYTES_MAX) bytes.
    #[error("invalid group id {group:?}: {reason}")]
    InvalidGroupId {
        /// The rejected group id.
        group: String,
        /// Why it was rejected.
        reason: &'static str,
    },

    /// An offset commit names a topic that is empty or longer than
    /// [`OFFSET_TOPIC_BYTES_MAX`](crate::OFFSET_TOPIC_BYTES_MAX) bytes.
    #[error("invalid topic name {topic:?} in an offset commit: {reason}")]
    InvalidCommitTopic {
        /// The rejected topic name.
        topic: String,
        /// Why it was rejected.
        reason: &'static str,
    },

    /// Offset commit metadata is longer than
    /// [`OFFSET_METADATA_BYTES_MAX`](crate::OFFSET_METADATA_BYTES_MAX) bytes.
    #[error(
        "offset metadata of {size} bytes for {topic_partition} exceeds the limit of {limit} bytes"
    )]
    OffsetMetadataTooLarge {
        /// The partition whose entry carries the metadata.
        topic_partition: TopicPartition,
        /// The metadata's length in bytes.
        size: usize,
        /// The limit.
        limit: usize,
    },

    /// An offset commit lists more entries than
    /// [`OFFSET_COMMIT_PARTITIONS_MAX`](crate::OFFSET_COMMIT_PARTITIONS_MAX).
    #[error("offset commit of {count} entries exceeds the limit of {limit}")]
    OffsetCommitTooLarge {
        /// Entries in the commit.
        count: usize,
        /// The limit.
        limit: usize,
    },

    /// A topic name breaks Kafka's rules: 1 to
    /// [`TOPIC_NAME_LEN_MAX`](crate::TOPIC_NAME_LEN_MAX) characters from `[a-zA-Z0-9._-]`,
    /// neither `.` nor `..`, and (to create it) not a Kafka internal topic's name.
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopicName {
        /// The rejected name.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },

    /// `create_topic` for a name that already exists.
    #[error("topic {topic:?} already exists")]
    TopicExists {
        /// The topic's name.
        topic: String,
    },

    /// A new topic's name differs from an existing topic's only by `.` versus `_` (Kafka
    /// forbids such pairs: its metric names replace `.` with `_`).
    #[error("topic {topic:?} collides with existing topic {existing:?} ('.' and '_' count as the same character); choose another name")]
    TopicCollision {
        /// The rejected name.
        topic: String,
        /// The existing topic it collides with.
        existing: String,
    },

    /// No topic by this name (or it was deleted).
    #[error("unknown topic {topic:?}")]
    UnknownTopic {
        /// The requested name.
        topic: String,
    },

    /// A partition number outside `[0, partition_count)` of its topic: asked for explicitly,
    /// or returned by a partitioner that broke its contract.
    #[error(
        "partition {partition} of topic {topic:?} does not exist (the topic has {partition_count})"
    )]
    PartitionOutOfRange {
        /// The topic.
        topic: String,
        /// The rejected partition number.
        partition: u32,
        /// The topic's partition count.
        partition_count: u32,
    },

    /// `add_partitions` with a count that does not increase the topic's, or is too large.
    #[error("cannot change topic {topic:?} from {current} to {requested} partitions: {reason}")]
    InvalidPartitionCount {
        /// The topic.
        topic: String,
        /// Its current partition count.
        current: u32,
        /// The requested count.
        requested: u32,
        /// Why it was rejected.
        reason: &'static str,
    },

    /// Creating a topic or partitions would make the store's open partitions hold more file
    /// descriptors than its budget ([`StoreConfig::descriptors_max`](crate::StoreConfig)).
    /// Nothing was created.
    #[error("{partitions} open partitions would need {needed} file descriptors (4 each: the lock file and the active segment's .log, .index and .timeindex), over the store's budget of {budget} (StoreConfig::descriptors_max, by default `ulimit -n` less 64): raise the limit or use fewer partitions")]
    DescriptorBudget {
        /// Partitions the store would hold open.
        partitions: usize,
        /// Descriptors they need.
        needed: usize,
        /// The budget.
        budget: usize,
    },

    /// The store's topic metadata is damaged, or disagrees with the directories on disk.
    #[error("corrupt topic metadata {path:?} (line {line}): {reason}")]
    CorruptMetadata {
        /// The metadata file, or the directory the problem concerns.
        path: PathBuf,
        /// The 1-based line of the metadata file at fault; 0 for the whole file.
        line: usize,
        /// What check failed.
        reason: &'static str,
    },

    /// A directory of another kind than the one being opened: a `LogStore` on a partition
    /// directory, or a `Partition` on a store's data directory. Nothing was changed.
    #[error("{path:?} is {found}, not {expected}: open a LogStore on a data directory and a Partition on one of its <topic>-<n> directories (nothing was changed)")]
    WrongDirectory {
        /// The directory.
        path: PathBuf,
        /// What the caller opens.
        expected: &'static str,
        /// What the directory holds.
        found: &'static str,
    },

    /// Another `LogStore` holds this data directory open.
    #[error("store directory {path:?} is already open")]
    StoreAlreadyOpen {
        /// The data directory.
        path: PathBuf,
    },

    /// The `LogStore` was closed.
    #[error("the store is closed")]
    StoreClosed,

    /// The `Producer` was closed.
    #[error("the producer is closed")]
    ProducerClosed,

    /// The batch holding a record sent with `Producer::send_batched` failed to append; every
    /// record of that batch reports the same underlying error.
    #[error("appending the batch to {topic}-{partition} failed: {source}")]
    SendFailed {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// The append's error, shared by every handle of the batch.
        #[source]
        source: std::sync::Arc<Error>,
    },

    /// A group call named a member that is not in the group: it left, was removed after its
    /// session timeout, or never joined. A consumer joins again on its next poll.
    #[error("{member_id} is not a member of group {group:?}")]
    UnknownMember {
        /// The group.
        group: String,
        /// The member id.
        member_id: String,
    },

    /// A call by a static member that a newer incarnation (same `group_instance_id`) has
    /// replaced: the old one must stop (Kafka's `FENCED_INSTANCE_ID`); it does not rejoin,
    /// which would take the partitions back from the newer one.
    #[error("{member_id} of group {group:?} was replaced by a newer member with instance id {instance_id:?}; stop this consumer (two processes share one group_instance_id)")]
    FencedInstanceId {
        /// The group.
        group: String,
        /// The replaced member id.
        member_id: String,
        /// The static instance id.
        instance_id: String,
    },

    /// An offset commit by a group member was refused, and nothing was written: the member is
    /// no longer in the group, does not own a partition of the commit, or presents a
    /// generation older than the hand-over of one of them (or newer than the group's).
    #[error("commit by {member_id} in group {group:?} refused: {reason}{}; generation presented {generation}, group at {group_generation}; poll to rejoin or to learn the current generation, then commit again", fenced_partition(.not_owned.as_ref()))]
    FencedCommit {
        /// The group.
        group: String,
        /// The committing member.
        member_id: String,
        /// The generation the member presented.
        generation: u64,
        /// The group's current generation.
        group_generation: u64,
        /// The partition of the commit that caused the refusal, if one did (not owned, or
        /// handed over after `generation`).
        not_owned: Option<TopicPartition>,
        /// Why the commit was refused.
        reason: &'static str,
    },

    /// A commit from outside a group's membership (a manually assigned consumer with a
    /// `group_id`, an administrator) or an administrative change of a group while the group
    /// has members: their commits would be overwritten.
    #[error("group {group:?} has {members} active member(s): its offsets belong to them; stop its consumers (or let their sessions time out) or use another group id")]
    GroupNotEmpty {
        /// The group.
        group: String,
        /// How many members it has.
        members: usize,
    },

    /// A member tried to join a group whose members use an assignor of another name.
    #[error("group {group:?} uses assignor {expected:?}, not {actual:?}")]
    InconsistentAssignor {
        /// The group.
        group: String,
        /// The name of the group's assignor.
        expected: String,
        /// The name of the joining member's assignor.
        actual: String,
    },

    /// A group's [`Assignor`](crate::Assignor) returned an assignment that breaks the trait's
    /// contract (see [`validate_assignment`](crate::validate_assignment)). The rebalance was
    /// not applied: the group keeps its previous generation and assignment. (The assignor's
    /// name is the group's, in [`GroupDescription`](crate::GroupDescription); it is not
    /// repeated here, to keep `Error` small.)
    #[error("the assignor of group {group:?} broke the Assignor contract: {reason} (member {member:?}, partition {topic_partition:?})")]
    AssignorContract {
        /// The group.
        group: String,
        /// Which rule of the contract the assignment breaks.
        reason: &'static str,
        /// The member whose entry breaks it, if one does.
        member: Option<String>,
        /// The partition concerned, if one is.
        topic_partition: Option<TopicPartition>,
    },

    /// A group already has the most members allowed.
    #[error("group {group:?} already has {limit} members, the most one group may have (GROUP_MEMBERS_MAX); start fewer consumers or split them over groups")]
    GroupFull {
        /// The group.
        group: String,
        /// The limit, `GROUP_MEMBERS_MAX`.
        limit: usize,
    },

    /// A consumer call that its current state does not allow (e.g. `poll` before `assign` or
    /// `subscribe`, `assign` while subscribed, `poll` inside a rebalance callback).
    #[error("consumer: {reason}")]
    InvalidConsumerState {
        /// What was wrong.
        reason: &'static str,
    },

    /// The operation is not implemented by this implementation of a trait (e.g. a user
    /// `OffsetStore` without `delete`).
    #[error("{operation} is not supported by this implementation")]
    Unsupported {
        /// The operation.
        operation: &'static str,
    },

    /// A consumer's `poll` was interrupted by [`Waker::wakeup`](crate::Waker::wakeup) from
    /// another thread (Kafka's `WakeupException`). The consumer is intact: poll again, or
    /// close it.
    #[error("the consumer was woken up by Waker::wakeup; poll again or close it")]
    Wakeup,

    /// A consumer call named a partition the consumer is not assigned (or does not own).
    #[error("partition {topic_partition} is not assigned to this consumer")]
    PartitionNotAssigned {
        /// The partition.
        topic_partition: TopicPartition,
    },

    /// A consumer with `AutoOffsetReset::Error` found no committed offset for a partition.
    #[error("no committed offset for {topic_partition} and auto_offset_reset is Error")]
    NoOffsetForPartition {
        /// The partition.
        topic_partition: TopicPartition,
    },
}

/// Which check a corrupt batch failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CorruptKind {
    /// Fewer bytes remain than the header or the declared length needs.
    #[error("truncated batch")]
    Truncated,
    /// The declared batch length is smaller than a header or larger than the format limit.
    #[error("batch length out of bounds")]
    BadLength,
    /// The CRC32 does not match the bytes.
    #[error("CRC mismatch")]
    Crc,
    /// An unknown format version.
    #[error("unknown format version")]
    BadVersion,
    /// Header fields contradict each other or the record bytes.
    #[error("inconsistent batch header or records")]
    BadRecords,
    /// Offsets go backwards or jump relative to the previous batch or the segment.
    #[error("offsets out of sequence")]
    BadOffset,
    /// A checkpoint file is damaged.
    #[error("damaged checkpoint")]
    BadCheckpoint,
    /// A compressed batch's payload does not decompress.
    #[error("compressed payload does not decompress")]
    Compression,
    /// A compressed batch decompresses to more than the batch size limit allows.
    #[error("decompressed payload over the limit")]
    DecompressedTooLarge,
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn config(field: &'static str, value: impl ToString, reason: &'static str) -> Self {
        Error::InvalidConfig {
            field,
            value: value.to_string(),
            reason,
        }
    }
}

/// `" of record 3 of the batch"` for a record's timestamp, nothing for a query.
fn timestamp_index(index: Option<usize>) -> String {
    index
        .map(|i| format!(" of record {i} of the batch"))
        .unwrap_or_default()
}

/// `" (partition t-0)"` for the partition a fenced commit names, nothing without one.
fn fenced_partition(tp: Option<&TopicPartition>) -> String {
    tp.map(|tp| format!(" (partition {tp})"))
        .unwrap_or_default()
}

/// Attach a path to `std::io::Result`s.
pub(crate) trait IoContext<T> {
    fn at(self, path: &std::path::Path) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: &std::path::Path) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}
