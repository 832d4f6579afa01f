//! [`ConsumerRecord`]: what [`Consumer::poll`](super::Consumer::poll) returns.

use std::sync::Arc;

use bytes::Bytes;

use crate::format::record::Header;
use crate::offset::{Offset, TopicPartition};

/// A record returned by [`Consumer::poll`](super::Consumer::poll): where it is and what it holds. Key, value and
/// header bytes are slices of the buffers read from the log (no per-record copy).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsumerRecord {
    /// The topic; shared between the records of one partition (an `Arc`, not a `String` per
    /// record).
    pub topic: Arc<str>,
    /// The partition number.
    pub partition: u32,
    /// The record's offset in its partition.
    pub offset: Offset,
    /// The record's timestamp, in milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// The key.
    pub key: Option<Bytes>,
    /// The value; `None` for a tombstone.
    pub value: Option<Bytes>,
    /// The headers.
    pub headers: Vec<Header>,
}

impl ConsumerRecord {
    /// The record's topic and partition.
    pub fn topic_partition(&self) -> TopicPartition {
        TopicPartition::new(&*self.topic, self.partition)
    }
}
