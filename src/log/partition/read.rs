//! The read path: offset lookup through the sparse index, positioned reads of whole batches.

use super::state::{Position, View};
use super::Partition;
use crate::error::{CorruptKind, Error, IoContext, Result};
use crate::format::batch::{self, Batch, BatchHeader};
use crate::format::record::LogRecord;
use crate::log::segment::{index_start, Segment, SegmentFiles, LOG_EXT};
use crate::offset::Offset;

/// The result of [`Partition::read`]: whole, CRC-checked batches, the first of which holds the
/// requested offset.
#[derive(Debug, Clone, Default)]
pub struct ReadBatches {
    start: Offset,
    /// Where an empty read leaves the reader: the high watermark it saw.
    end: Offset,
    batches: Vec<Batch>,
}

impl ReadBatches {
    /// The batches read, in offset order: every batch, control batches included (see
    /// [`Batch::control_marker`]).
    pub fn batches(&self) -> &[Batch] {
        &self.batches
    }

    /// True when nothing was read (the offset was at the high watermark).
    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// Total encoded size of the batches.
    pub fn size_bytes(&self) -> usize {
        self.batches.iter().map(Batch::encoded_len).sum()
    }

    /// The offset to read next: one past the last batch; when empty, the high watermark the
    /// read saw (no record exists between the requested offset and it: compaction can leave
    /// such a gap at the end of the log).
    pub fn next_offset(&self) -> Offset {
        self.batches
            .last()
            .map_or(self.end, |b| b.last_offset().next())
    }

    /// The data records at or after the requested offset, in order: control batches
    /// (transaction markers) are skipped, so consumers never see them. Keys, values and
    /// headers are slices of the read buffers (of the decompressed records for a compressed
    /// batch, decompressed once here). An item is an error for a malformed record inside a
    /// batch whose CRC matched, or a codec that is not compiled in.
    pub fn records(&self) -> impl Iterator<Item = Result<LogRecord>> + '_ {
        let start = self.start;
        self.batches
            .iter()
            .filter(|b| !b.header().is_control())
            .flat_map(Batch::records)
            .filter(move |r| r.as_ref().map_or(true, |r| r.offset >= start))
    }
}

impl Partition {
    /// Read whole batches starting with the one that holds `offset`, up to about `max_bytes`:
    /// at least one whole batch even when it is larger, and then only batches that fit.
    ///
    /// Reading at the high watermark returns an empty result; below the log start or past the
    /// high watermark is [`Error::OffsetOutOfRange`]. A batch failing its CRC is
    /// [`Error::Corrupt`]. Reads never block appends.
    pub fn read(&self, offset: Offset, max_bytes: usize) -> Result<ReadBatches> {
        let view = self.view();
        let bound = view.high_watermark();
        self.read_below(&view, bound, offset, max_bytes)
    }

    /// [`read`](Partition::read) of the records below `bound` (the high watermark for
    /// consumers, the log end for followers) in `view`.
    pub(super) fn read_below(
        &self,
        view: &View,
        bound: Position,
        offset: Offset,
        max_bytes: usize,
    ) -> Result<ReadBatches> {
        let hw = bound.offset;
        if offset.0 < view.log_start() || offset.0 > hw {
            return Err(Error::OffsetOutOfRange {
                offset,
                log_start_offset: Offset(view.log_start()),
                high_watermark: Offset(hw),
            });
        }
        let mut out = ReadBatches {
            start: offset,
            end: Offset(hw),
            batches: Vec::new(),
        };
        if offset.0 == hw {
            return Ok(out);
        }
        let first = view
            .segments()
            .partition_point(|s| s.base_offset() <= offset)
            .saturating_sub(1);
        for seg in &view.segments()[first..] {
            if seg.base_offset().0 > bound.segment_base {
                break;
            }
            let files = self.segment_files(seg, offset)?;
            let limit = visible_bytes(bound, seg, &files);
            // No batch of this segment may end at or past its end (sealed) or the high
            // watermark (active): a base offset moved upwards by damage (it is outside the
            // CRC) and accepted as a gap would otherwise put records at wrong offsets.
            let end_offset = seg.end_offset().map_or(hw, |e| e.0);
            let visible = (limit, end_offset);
            let next_offset =
                self.read_segment(seg, &files, offset, max_bytes, visible, &mut out.batches)?;
            if !out.batches.is_empty() {
                break;
            }
            // Moving on to the next segment: this one must end where the next one begins, or
            // offsets in between would be skipped silently — unless gaps are allowed
            // (compaction may remove a segment's last batches, or all of them).
            if let Some(expected_end) = seg
                .end_offset()
                .filter(|_| limit == files.sealed_size().unwrap_or(0))
            {
                if next_offset != expected_end.0 && !self.config.offset_gaps {
                    return Err(Error::Corrupt {
                        path: seg.path(LOG_EXT),
                        position: limit,
                        reason: CorruptKind::BadOffset,
                    });
                }
            }
        }
        Ok(out)
    }

    /// Append to `out` the batches of `seg` from the one holding `offset`, among those below
    /// `visible.0` bytes, each of which must end below offset `visible.1`. Says where it
    /// stopped: the offset after the last batch looked at.
    fn read_segment(
        &self,
        seg: &Segment,
        files: &SegmentFiles,
        offset: Offset,
        max_bytes: usize,
        visible: (u64, u64),
        out: &mut Vec<Batch>,
    ) -> Result<u64> {
        let (limit, end_offset) = visible;
        let gaps = self.config.offset_gaps;
        let path = || seg.path(LOG_EXT);
        let corrupt = |position: usize, reason| Error::Corrupt {
            path: path(),
            position: position as u64,
            reason,
        };
        // The active segment is mapped to its full configured size once, not on every read.
        let map_len = files.sealed_size().unwrap_or(self.config.segment_bytes);
        let data = files.mapped(limit, map_len).at(&path())?;
        let base = seg.base_offset().0;
        let rel = u32::try_from(offset.0.saturating_sub(base)).unwrap_or(u32::MAX);
        // The index is a cache, never trusted over the log (see `index_start`).
        let (mut pos, mut expected) = index_start(&files.index.read(), &data, base, rel);
        let mut taken = 0usize;
        while pos < data.len() {
            let rest = &data[pos..];
            let header = BatchHeader::parse(rest).map_err(|k| corrupt(pos, k))?;
            let total = header.total_len();
            if rest.len() < total {
                return Err(corrupt(pos, CorruptKind::Truncated));
            }
            // Offsets are dense, or have gaps compaction left: the base offset (outside the
            // CRC) must follow the previous batch.
            if !header.follows(expected, gaps) || header.last_offset() >= end_offset {
                return Err(corrupt(pos, CorruptKind::BadOffset));
            }
            expected = header.last_offset() + 1;
            if header.last_offset() >= offset.0 {
                if !out.is_empty() && taken + total > max_bytes {
                    break;
                }
                batch::check_crc(&rest[..total]).map_err(|k| corrupt(pos, k))?;
                let batch = Batch::from_checked(header, data.slice(pos..pos + total));
                // Compaction may have removed every record of the batch at or past `offset`:
                // such a batch must not stand in for "the next record that exists".
                if out.is_empty() && self.config.offset_gaps && !holds_record_from(&batch, offset)?
                {
                    pos += total;
                    continue;
                }
                out.push(batch);
                taken += total;
                if taken >= max_bytes {
                    // The next batch vouches for this one's offsets (see `check_follower`).
                    check_follower(&data[pos + total..], expected, gaps, end_offset)
                        .map_err(|k| corrupt(pos + total, k))?;
                    break;
                }
            }
            pos += total;
        }
        Ok(expected)
    }

    /// The first offset whose record timestamp is `>= timestamp_ms`, or `None` if no visible
    /// record is that new. Uses the time index to skip segments and to start the scan.
    pub fn offset_for_timestamp(&self, timestamp_ms: i64) -> Result<Option<Offset>> {
        let (view, start) = loop {
            let view = self.view();
            match self.time_lookup_start(&view, timestamp_ms) {
                Ok(start) => break (view, start),
                // Retention deleted (and closed) a segment of this view: look again.
                Err(Error::OffsetOutOfRange {
                    log_start_offset, ..
                }) if log_start_offset.0 > view.log_start() => {}
                Err(e) => return Err(e),
            }
        };
        let Some(start) = start else { return Ok(None) };
        let mut next = Offset(start.max(view.log_start()));
        loop {
            let read = match self.read(next, 256 << 10) {
                Ok(r) => r,
                // Retention moved the log start past us: continue from there.
                Err(Error::OffsetOutOfRange {
                    log_start_offset, ..
                }) if log_start_offset > next => {
                    next = log_start_offset;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if read.is_empty() {
                return Ok(None);
            }
            for b in read.batches() {
                if b.max_timestamp() < timestamp_ms {
                    continue;
                }
                for r in b.records() {
                    let r = r?;
                    if r.offset >= next && r.timestamp_ms >= timestamp_ms {
                        return Ok(Some(r.offset));
                    }
                }
            }
            next = read.next_offset();
        }
    }

    /// Where the scan for `timestamp_ms` starts in `view`: the time index's entry in the
    /// first segment that may hold so new a record, or `None` if none may.
    fn time_lookup_start(&self, view: &View, timestamp_ms: i64) -> Result<Option<u64>> {
        for seg in view.segments().iter() {
            let base = seg.base_offset();
            if base.0 > view.high_watermark().segment_base {
                break;
            }
            // Skip whole sealed segments by their newest timestamp, without loading them.
            if base.0 < view.high_watermark().segment_base
                && self
                    .sealed_meta(seg, base)?
                    .max_timestamp
                    .is_none_or(|t| t < timestamp_ms)
            {
                continue;
            }
            let files = self.segment_files(seg, base)?;
            let rel = files.time_index.read().lookup(timestamp_ms);
            return Ok(Some(base.0 + u64::from(rel)));
        }
        Ok(None)
    }
}

/// Whether `batch` holds a record at or after `offset`. Only a batch of a log with gaps can
/// fail to (compaction keeps its offset range but not all its records).
fn holds_record_from(batch: &Batch, offset: Offset) -> Result<bool> {
    let h = batch.header();
    // Without decoding: a batch with records all at or above `offset`, or with no gap inside
    // (one record per offset of its range, which reaches `offset`).
    if h.record_count > 0
        && (offset.0 <= h.base_offset || h.record_count == h.last_offset_delta.saturating_add(1))
    {
        return Ok(true);
    }
    for r in batch.records() {
        if r?.offset >= offset {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A batch's base offset is outside its CRC; where gaps are allowed, a damaged one moved
/// upwards within a gap would read as valid. The batch after it (if any, in `rest`) catches
/// that: it must start above the last offset `expected - 1` and end below `end_offset`.
fn check_follower(
    rest: &[u8],
    expected: u64,
    gaps: bool,
    end_offset: u64,
) -> Result<(), CorruptKind> {
    if rest.is_empty() {
        return Ok(());
    }
    let next = BatchHeader::parse(rest)?;
    if next.follows(expected, gaps) && next.last_offset() < end_offset {
        Ok(())
    } else {
        Err(CorruptKind::BadOffset)
    }
}

/// How many bytes of `seg` readers may see; `seg` starts at or below the high watermark's
/// segment, so every segment before that one is sealed.
fn visible_bytes(hw: Position, seg: &Segment, files: &SegmentFiles) -> u64 {
    if seg.base_offset().0 == hw.segment_base {
        hw.bytes
    } else {
        files
            .sealed_size()
            .expect("segments below the watermark's are sealed")
    }
}
