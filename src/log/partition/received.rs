//! Appending batches that arrive already encoded — from a Kafka client (the network server's
//! produce path) or from another log — checked in full, given offsets and the leader epoch,
//! and written as they are: no decoding into records, no re-encoding.
//!
//! The plan (`check_encoded`, no lock) walks every batch once: header, CRC, the structure of
//! every record, and the partition's policy (record and batch limits, keys on a compacted
//! partition, timestamps). The act is the append's own (`append_at_end`).

use crate::error::{CorruptKind, Error, Result};
use crate::format::batch::{self, BatchHeader, RecordFacts, TimestampType};
use crate::format::decode::corrupt;
use crate::format::record::now_ms;
use crate::log::epoch::EPOCH_NONE;
use crate::log::partition::live::LiveLimits;
use crate::log::partition::timestamps;
use crate::log::partition::{AppendInfo, Partition};

impl Partition {
    /// Append record batches that are already encoded in Kafka's format (magic 2), as a
    /// Kafka producer sends them or another log stores them: `batches` holds one or more
    /// whole batches back to back. They get the next offsets, in order, and are written as
    /// they are: no record is decoded into a [`Record`](crate::Record) or re-encoded, which
    /// makes this the cheapest way in for data that arrives encoded.
    ///
    /// **Checked**, for every batch, before anything is written (any failure writes
    /// nothing):
    /// - the header (magic 2, lengths, attributes), the CRC-32C, and the structure of every
    ///   record (compressed batches are decompressed to check them, bounded by
    ///   [`DECOMPRESSED_BYTES_LIMIT`](crate::DECOMPRESSED_BYTES_LIMIT)):
    ///   [`Error::InvalidBatch`] with the batch's byte position; a codec not compiled in is
    ///   [`Error::CodecUnavailable`];
    /// - offsets: record offset deltas exactly `0, 1, 2, ...` and `lastOffsetDelta` the last
    ///   of them, not a control batch ([`Error::InvalidBatch`] with
    ///   [`CorruptKind::BadOffset`]); at least one record ([`Error::EmptyBatch`]);
    /// - limits: the batch at most `batch_bytes_max` ([`Error::BatchTooLarge`]), each record's
    ///   key, value and headers at most `record_bytes_max` ([`Error::RecordTooLarge`]);
    /// - on a compacted partition, a key on every record ([`Error::MissingKey`]);
    /// - under [`TimestampType::CreateTime`], each record timestamp `>= 0` or `-1` (as for
    ///   [`append`](Partition::append); [`Error::InvalidTimestamp`]). Under `LogAppendTime`
    ///   the records' own timestamps are not read (they are replaced on read).
    ///
    /// **Rewritten** in place in `batches` (and so on disk): each batch's `baseOffset` (the
    /// offset it gets; whatever it held is ignored) and `partitionLeaderEpoch` (the epoch
    /// the partition leads, see [`assign_leader_epoch`](Partition::assign_leader_epoch), or
    /// -1: a sender's epoch is never trusted, as Kafka's broker does); both lie outside the
    /// CRC. Under `LogAppendTime` also the timestamp-type bit (set) and `maxTimestamp` (the
    /// append time), and so the CRC; under `CreateTime`, where a batch's `maxTimestamp` is not
    /// its records' largest timestamp or its timestamp-type bit is set, the bit is cleared and
    /// `maxTimestamp` set to that largest timestamp, and so the CRC — both as Kafka's broker
    /// (`LogValidator`) does, rather than refusing the batch. Everything else — producer id,
    /// epoch and sequence, the transactional bit, the codec, the records — is kept byte for
    /// byte.
    ///
    /// Returns the offsets of the first and last record over all batches. Durability,
    /// visibility and failure handling are [`append`](Partition::append)'s.
    pub fn append_encoded(&self, batches: &mut [u8]) -> Result<AppendInfo> {
        let live = self.live_limits();
        let checked = check_encoded(batches, &live)?;
        self.append_checked(batches, checked, &live)
    }

    /// Append one record batch encoded by a client (Kafka's `ProduceRequest` payload for one
    /// partition): exactly one whole batch with base offset 0, checked and rewritten as
    /// [`append_encoded`](Partition::append_encoded) does. Damage is [`Error::Corrupt`]
    /// (which the server maps to Kafka's error codes) rather than `InvalidBatch`.
    #[cfg(feature = "kafka-server")]
    pub(crate) fn append_received(&self, received: bytes::Bytes) -> Result<AppendInfo> {
        let live = self.live_limits();
        if received.len() > live.batch_bytes_max {
            return Err(Error::BatchTooLarge {
                size: received.len(),
                limit: live.batch_bytes_max,
            });
        }
        let header = BatchHeader::parse(&received).map_err(corrupt)?;
        if header.total_len() != received.len() {
            return Err(corrupt(CorruptKind::BadLength));
        }
        if header.base_offset != 0 {
            return Err(corrupt(CorruptKind::BadOffset));
        }
        // The one copy: offsets and the epoch are written into the batch before it goes to
        // disk.
        let mut buf = received.to_vec();
        let checked = check_encoded(&buf, &live).map_err(|e| match e {
            Error::InvalidBatch { reason, .. } => corrupt(reason),
            e => e,
        })?;
        self.append_checked(&mut buf, checked, &live)
    }

    /// The act of `append_encoded`: stamp what the policy rewrites, then append at the end.
    fn append_checked(
        &self,
        buf: &mut [u8],
        checked: Checked,
        live: &LiveLimits,
    ) -> Result<AppendInfo> {
        let Checked {
            mut headers,
            create_max,
        } = checked;
        let append_time = (live.timestamp_type == TimestampType::LogAppendTime).then(now_ms);
        let mut at = 0;
        for (header, create_max) in headers.iter_mut().zip(create_max) {
            let batch = &mut buf[at..at + header.total_len()];
            at += batch.len();
            let stamp = match (append_time, create_max) {
                (Some(now), _) => Some((TimestampType::LogAppendTime, now)),
                (None, Some(max)) => Some((TimestampType::CreateTime, max)),
                (None, None) => None,
            };
            if let Some((kind, max)) = stamp {
                batch::stamp_timestamps(batch, kind, max);
                *header = BatchHeader::parse(batch).map_err(corrupt)?;
            }
            // A sender's `partitionLeaderEpoch` is never trusted (Kafka's `LogValidator`
            // overwrites it): it would enter the epoch cache and could poison it (an epoch
            // far in the future makes every later `assign_leader_epoch` fail). The append
            // stamps the partition's leading epoch, if any.
            batch::set_partition_leader_epoch(batch, EPOCH_NONE);
            header.partition_leader_epoch = EPOCH_NONE;
        }
        let appended = self.append_at_end(buf, &mut headers, live)?;
        self.after_append(&appended)?;
        Ok(appended.info)
    }
}

/// What the plan of `append_encoded` found: each batch's header and, under `CreateTime`, the
/// largest record timestamp of each batch whose `maxTimestamp` or timestamp type says
/// otherwise (to be stamped, as Kafka's broker does).
struct Checked {
    headers: Vec<BatchHeader>,
    create_max: Vec<Option<i64>>,
}

/// The plan of `append_encoded`: every batch of `buf` checked, its header parsed; at
/// least one batch.
fn check_encoded(buf: &[u8], live: &LiveLimits) -> Result<Checked> {
    let mut checked = Checked {
        headers: Vec::with_capacity(1),
        create_max: Vec::with_capacity(1),
    };
    let mut at = 0;
    while at < buf.len() {
        let (header, create_max) = check_one(&buf[at..], live).map_err(|e| match e {
            Error::Corrupt { reason, .. } => Error::InvalidBatch {
                position: at,
                reason,
            },
            e => e,
        })?;
        at += header.total_len();
        checked.headers.push(header);
        checked.create_max.push(create_max);
    }
    if checked.headers.is_empty() {
        return Err(Error::EmptyBatch);
    }
    Ok(checked)
}

/// Every check of `append_encoded` on the batch at the front of `buf`; with it, under
/// `CreateTime`, the `maxTimestamp` to stamp if the batch's is not its records' largest (or
/// it is marked `LogAppendTime`).
fn check_one(buf: &[u8], live: &LiveLimits) -> Result<(BatchHeader, Option<i64>)> {
    // The size first: a batch past the limit is refused before its CRC is computed.
    let header = BatchHeader::parse(buf).map_err(corrupt)?;
    if header.total_len() > live.batch_bytes_max {
        return Err(Error::BatchTooLarge {
            size: header.total_len(),
            limit: live.batch_bytes_max,
        });
    }
    let keys = live.cleanup_policy.compacts();
    let create_time = live.timestamp_type == TimestampType::CreateTime;
    let mut max_timestamp = None;
    batch::check_batch_records(&header, buf, |r: &RecordFacts| {
        // Dense from 0 (Kafka's `LogValidator` requires it of a client's batch).
        if r.offset_delta != r.index as u64 {
            return Err(corrupt(CorruptKind::BadOffset));
        }
        if r.payload > live.record_bytes_max {
            return Err(Error::RecordTooLarge {
                size: r.payload,
                limit: live.record_bytes_max,
            });
        }
        if keys && !r.has_key {
            return Err(Error::MissingKey { index: r.index });
        }
        if create_time {
            timestamps::check_timestamp(r.timestamp_ms, r.index)?;
            max_timestamp = max_timestamp.max(Some(r.timestamp_ms));
        }
        Ok(())
    })?;
    if header.record_count == 0 {
        return Err(Error::EmptyBatch);
    }
    if header.is_control()
        || u64::from(header.last_offset_delta) + 1 != u64::from(header.record_count)
    {
        return Err(corrupt(CorruptKind::BadOffset));
    }
    // Kafka's `LogValidator` rewrites rather than refuses these two fields: a client that
    // sent another `maxTimestamp` (or the `LogAppendTime` bit) gets the batch stored with the
    // records' largest timestamp under `CreateTime`, which the time index and rolling by age
    // read.
    let stamp = max_timestamp.filter(|&max| {
        create_time
            && (max != header.max_timestamp
                || header.timestamp_type() == TimestampType::LogAppendTime)
    });
    Ok((header, stamp))
}
