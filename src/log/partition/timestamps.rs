//! Timestamps: the rule for appended record timestamps, and Kafka's `ListOffsets` queries
//! (earliest, latest, max-timestamp, by timestamp) as an enum rather than Kafka's magic
//! timestamps `-2`, `-1`, `-3`.

use crate::error::{Error, Result};
use crate::format::record::Record;
use crate::log::partition::Partition;
use crate::offset::Offset;

/// The timestamp meaning "none" (Kafka's `RecordBatch.NO_TIMESTAMP`): the only negative
/// timestamp an appended record may carry.
pub const NO_TIMESTAMP: i64 = -1;

/// [`Error::InvalidTimestamp`] for the first record with a negative timestamp other than
/// [`NO_TIMESTAMP`]. Kafka's producer refuses those (`ProducerRecord`); so does `append`,
/// since `ListOffsets` gives `-1`, `-2` and `-3` other meanings and a time index cannot order
/// them. Batches already on disk (or replicated) are read whatever their timestamps.
pub(crate) fn check_timestamps(records: &[Record]) -> Result<()> {
    records
        .iter()
        .enumerate()
        .try_for_each(|(index, r)| check_timestamp(r.timestamp_ms, index))
}

/// [`check_timestamps`] of one record, the `index`th of its batch.
#[inline]
pub(crate) fn check_timestamp(timestamp_ms: i64, index: usize) -> Result<()> {
    if timestamp_ms < 0 && timestamp_ms != NO_TIMESTAMP {
        return Err(Error::InvalidTimestamp {
            timestamp_ms,
            index: Some(index),
            reason: "record timestamps are milliseconds since the epoch (>= 0), or -1 for \
                     none, as Kafka requires",
        });
    }
    Ok(())
}

/// What [`Partition::list_offset`] looks up (Kafka's `OffsetSpec`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OffsetSpec {
    /// The log start offset (Kafka's `-2`, `EARLIEST_TIMESTAMP`).
    Earliest,
    /// The high watermark: the offset the next record gets (Kafka's `-1`,
    /// `LATEST_TIMESTAMP`).
    Latest,
    /// The first offset holding the largest record timestamp (Kafka's `-3`,
    /// `MAX_TIMESTAMP`); `None` on an empty log.
    MaxTimestamp,
    /// The first offset whose record timestamp is at least this many milliseconds since the
    /// epoch ([`Partition::offset_for_timestamp`]); `None` if no record is that new.
    Timestamp(i64),
}

impl OffsetSpec {
    /// Kafka's wire convention for a `ListOffsets` timestamp: `-1` latest, `-2` earliest, `-3`
    /// max-timestamp, `>= 0` a timestamp. Any other negative value is
    /// [`Error::InvalidTimestamp`].
    pub fn from_kafka_timestamp(timestamp_ms: i64) -> Result<Self> {
        match timestamp_ms {
            -1 => Ok(OffsetSpec::Latest),
            -2 => Ok(OffsetSpec::Earliest),
            -3 => Ok(OffsetSpec::MaxTimestamp),
            t if t >= 0 => Ok(OffsetSpec::Timestamp(t)),
            t => Err(Error::InvalidTimestamp {
                timestamp_ms: t,
                index: None,
                reason: "a ListOffsets timestamp is -1 (latest), -2 (earliest), -3 (max \
                         timestamp) or a time >= 0",
            }),
        }
    }
}

impl Partition {
    /// Kafka's `ListOffsets` for this partition: see [`OffsetSpec`]. Only visible records
    /// count (from the log start, below the high watermark).
    pub fn list_offset(&self, spec: OffsetSpec) -> Result<Option<Offset>> {
        match spec {
            OffsetSpec::Earliest => Ok(Some(self.log_start_offset())),
            OffsetSpec::Latest => Ok(Some(self.high_watermark())),
            OffsetSpec::Timestamp(t) => self.offset_for_timestamp(t),
            OffsetSpec::MaxTimestamp => self.max_timestamp_offset(),
        }
    }

    /// The first visible offset holding the largest timestamp. The segments' newest
    /// timestamps give a candidate; it is exact unless the record carrying it lies below the
    /// log start or at or above the high watermark, and then a scan of the visible records
    /// decides.
    fn max_timestamp_offset(&self) -> Result<Option<Offset>> {
        let candidate = self
            .segment_infos()?
            .iter()
            .filter_map(|s| s.max_timestamp)
            .max();
        let Some(candidate) = candidate else {
            return Ok(None);
        };
        // No visible record is newer than `candidate`: the first at or after it carries it.
        if let Some(offset) = self.offset_for_timestamp(candidate)? {
            return Ok(Some(offset));
        }
        self.scan_max_timestamp()
    }

    /// The first visible offset holding the largest timestamp, by reading every record.
    fn scan_max_timestamp(&self) -> Result<Option<Offset>> {
        let mut best: Option<(i64, Offset)> = None;
        let mut next = self.log_start_offset();
        loop {
            let read = match self.read(next, 256 << 10) {
                Ok(read) => read,
                Err(Error::OffsetOutOfRange {
                    log_start_offset, ..
                }) if log_start_offset > next => {
                    next = log_start_offset; // retention moved the start: go on from there
                    continue;
                }
                Err(e) => return Err(e),
            };
            if read.is_empty() {
                return Ok(best.map(|(_, o)| o));
            }
            for batch in read.batches() {
                if best.is_some_and(|(t, _)| batch.max_timestamp() <= t) {
                    continue;
                }
                for r in &batch.decoded()? {
                    let r = r?;
                    if r.offset() >= next && best.is_none_or(|(t, _)| r.timestamp_ms() > t) {
                        best = Some((r.timestamp_ms(), r.offset()));
                    }
                }
            }
            next = read.next_offset();
        }
    }
}
