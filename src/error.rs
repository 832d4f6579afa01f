//! The crate's one error type.
//!
//! Conditions (bad input, disk corruption, failed I/O) are `Err`s; broken internal invariants
//! are assertions. Every variant carries structured fields rather than a formatted string.

use std::path::PathBuf;

use crate::{Offset, TopicPartition};

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

    /// An argument is outside what the current log state allows.
    #[error("invalid argument: offset {offset}: {reason}")]
    InvalidOffset {
        /// The offending offset.
        offset: Offset,
        /// Why it was rejected.
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

/// Attach a path to `std::io::Result`s.
pub(crate) trait IoContext<T> {
    fn at(self, path: &std::path::Path) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: &std::path::Path) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}
