//! The `Offset` newtype: a record's position in a partition.

use std::fmt;

/// The position of a record in a partition: dense, starting at 0, strictly increasing.
///
/// A newtype so offsets cannot be confused with byte positions or counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Offset(pub u64);

impl Offset {
    /// The first offset of every new partition.
    pub const ZERO: Offset = Offset(0);

    /// The offset as a plain integer.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The next offset. Panics on overflow, which no log reaches (2^64 records).
    pub const fn next(self) -> Offset {
        Offset(self.0 + 1)
    }

    /// `self + n`.
    pub const fn plus(self, n: u64) -> Offset {
        Offset(self.0 + n)
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<u64> for Offset {
    fn from(v: u64) -> Self {
        Offset(v)
    }
}

impl From<Offset> for u64 {
    fn from(o: Offset) -> Self {
        o.0
    }
}

/// A partition of a topic: the unit of ordering, assignment and offset commits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    /// The topic's name.
    pub topic: String,
    /// The partition's number, from 0.
    pub partition: u32,
}

impl TopicPartition {
    /// `topic`/`partition`.
    pub fn new(topic: impl Into<String>, partition: u32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}
