//! Records as users build them and as reads return them.

use bytes::Bytes;

use crate::format::batch::TimestampType;
use crate::offset::Offset;

/// A record header: a key and an optional value, both raw bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The header's key.
    pub key: Bytes,
    /// The header's value; `None` is distinct from empty.
    pub value: Option<Bytes>,
}

/// A record to append: optional key, optional value (`None` is a tombstone), headers and a
/// timestamp in milliseconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The record's key, used by partitioners and compaction.
    pub key: Option<Bytes>,
    /// The payload; `None` marks a tombstone.
    pub value: Option<Bytes>,
    /// Application headers.
    pub headers: Vec<Header>,
    /// Creation time in milliseconds since the Unix epoch. Retention by age and
    /// `offset_for_timestamp` use it; the log never reads file times.
    pub timestamp_ms: i64,
}

impl Record {
    /// A keyless record holding `value`, stamped with the current time.
    pub fn new(value: impl Into<Bytes>) -> Self {
        Record {
            key: None,
            value: Some(value.into()),
            headers: Vec::new(),
            timestamp_ms: now_ms(),
        }
    }

    /// A tombstone for `key`: a record with no value, stamped with the current time.
    pub fn tombstone(key: impl Into<Bytes>) -> Self {
        Record {
            key: Some(key.into()),
            value: None,
            headers: Vec::new(),
            timestamp_ms: now_ms(),
        }
    }

    /// Sets the key.
    pub fn with_key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sets the timestamp (milliseconds since the Unix epoch).
    pub fn with_timestamp(mut self, timestamp_ms: i64) -> Self {
        self.timestamp_ms = timestamp_ms;
        self
    }

    /// Adds a header.
    pub fn with_header(mut self, key: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        self.headers.push(Header {
            key: key.into(),
            value: Some(value.into()),
        });
        self
    }
}

/// A record read back from the log. Key, value and headers are slices of the batch buffer
/// that was read (or of the batch's decompressed records): no per-record copy.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogRecord {
    /// The record's offset.
    pub offset: Offset,
    /// The record's timestamp in milliseconds since the Unix epoch: its creation time, or
    /// under [`TimestampType::LogAppendTime`] the time the log appended its batch.
    pub timestamp_ms: i64,
    /// Which of the two `timestamp_ms` is (the batch's attributes bit 3).
    pub timestamp_type: TimestampType,
    /// The record's key.
    pub key: Option<Bytes>,
    /// The record's value; `None` for a tombstone.
    pub value: Option<Bytes>,
    /// The record's headers.
    pub headers: Vec<Header>,
}

/// Milliseconds since the Unix epoch, by the system clock (0 if the clock is before 1970).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
