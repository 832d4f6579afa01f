//! Appending a batch that arrives already encoded, as a Kafka producer sends it: validated,
//! then written as received (no re-encoding). The network server's produce path.

use crate::error::{CorruptKind, Error, Result};
use crate::format::batch::{self, Batch, TimestampType};
use crate::format::record::now_ms;
use crate::log::epoch::EPOCH_NONE;
use crate::log::partition::{AppendInfo, Partition};

impl Partition {
    /// Append one record batch encoded by a client (Kafka's `ProduceRequest` payload for one
    /// partition): exactly one whole batch of magic 2, base offset 0, offsets dense from 0, a
    /// valid CRC and well-formed records. It is written byte for byte as received except for
    /// the base offset and the partition leader epoch (both outside the CRC; the epoch becomes
    /// the partition's leading epoch or none, never the client's) and, under `LogAppendTime`, `maxTimestamp` and the
    /// timestamp-type bit (the CRC is recomputed, as Kafka's broker does). Nothing is written
    /// when a check fails: [`Error::Corrupt`] (CRC, magic, structure, offsets),
    /// [`Error::BatchTooLarge`] past the partition's `batch_bytes_max`, [`Error::MissingKey`]
    /// on a compacted partition, [`Error::EmptyBatch`] for a batch without records.
    pub(crate) fn append_received(&self, received: bytes::Bytes) -> Result<AppendInfo> {
        let corrupt = |reason| Error::Corrupt {
            path: std::path::PathBuf::default(),
            position: 0,
            reason,
        };
        let live = self.live_limits();
        if received.len() > live.batch_bytes_max {
            return Err(Error::BatchTooLarge {
                size: received.len(),
                limit: live.batch_bytes_max,
            });
        }
        let batch = Batch::decode(received.clone())?;
        let header = *batch.header();
        if header.total_len() != received.len() {
            return Err(corrupt(CorruptKind::BadLength));
        }
        if header.base_offset != 0 || header.is_control() {
            return Err(corrupt(CorruptKind::BadOffset));
        }
        if header.record_count == 0 {
            return Err(Error::EmptyBatch);
        }
        if u64::from(header.last_offset_delta) + 1 != u64::from(header.record_count) {
            return Err(corrupt(CorruptKind::BadOffset));
        }
        self.check_received_records(&batch)?;
        // The one copy: the base offset is written into the batch before it goes to disk.
        let mut buf = received.to_vec();
        let header = if live.timestamp_type == TimestampType::LogAppendTime {
            batch::stamp_log_append_time(&mut buf, now_ms());
            batch::check_crc(&buf).map_err(corrupt)?
        } else {
            header
        };
        // A client's `partitionLeaderEpoch` is never trusted (Kafka's `LogValidator` overwrites
        // it): it would enter the epoch cache and could poison it (an epoch far in the future
        // makes every later `assign_leader_epoch` fail). The field is outside the CRC; the
        // append stamps the partition's leading epoch, if any.
        batch::set_partition_leader_epoch(&mut buf, EPOCH_NONE);
        let header = batch::BatchHeader {
            partition_leader_epoch: EPOCH_NONE,
            ..header
        };
        let appended = self.append_encoded(&mut buf, header)?;
        self.after_append(&appended)?;
        Ok(appended.info)
    }

    /// Record-level checks the header cannot make: offset deltas dense from 0 (Kafka's
    /// `LogValidator` requires it of a client's batch) and, on a compacted partition, a key
    /// on every record.
    fn check_received_records(&self, batch: &Batch) -> Result<()> {
        let keys = self.live_limits().cleanup_policy.compacts();
        for (index, record) in batch.records().enumerate() {
            let record = record?;
            // Bounded by the header's count, which the cursor enforces.
            if record.offset.0 != index as u64 {
                return Err(Error::Corrupt {
                    path: std::path::PathBuf::default(),
                    position: 0,
                    reason: CorruptKind::BadOffset,
                });
            }
            if keys && record.key.is_none() {
                return Err(Error::MissingKey { index });
            }
        }
        Ok(())
    }
}
