//! The read path: offset lookup through the sparse index, positioned reads of whole batches.

use super::state::{Position, View};
use super::Partition;
use crate::error::{CorruptKind, Error, IoContext, Result};
use crate::format::batch::{self, Batch, BatchHeader};
use crate::format::decode::{self, RecordRef};
use crate::format::record::LogRecord;
use crate::log::segment::{
    admits, index_start, next_expected, start_expected, Segment, SegmentFiles, LOG_EXT,
};
use crate::log::witness::Witness;
use crate::offset::Offset;
use bytes::Bytes;

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

    /// Call `f` with every data record at or after the requested offset, in order, as a
    /// borrowed [`RecordRef`]: the fast path of [`records`](ReadBatches::records), with no
    /// reference counting and no allocation per record (a compressed batch is decompressed
    /// once, into a buffer that lives while its records are visited). Control batches are
    /// skipped. The first malformed record, or a codec that is not compiled in, ends the walk
    /// with its error (`f` has then seen the records before it).
    ///
    /// ```
    /// # fn total(read: &seglog::ReadBatches) -> seglog::Result<usize> {
    /// let mut bytes = 0;
    /// read.for_each_record(|r| bytes += r.value().map_or(0, <[u8]>::len))?;
    /// # Ok(bytes) }
    /// ```
    pub fn for_each_record(&self, mut f: impl FnMut(RecordRef<'_>)) -> Result<()> {
        for batch in &self.batches {
            if batch.header().is_control() {
                continue;
            }
            decode::visit_records(batch.header(), batch.as_bytes(), self.start, &mut f)?;
        }
        Ok(())
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

    /// The fast path of [`read`](Partition::read) followed by
    /// [`ReadBatches::for_each_record`]: call `f` with every data record at or after `offset`
    /// in the batches that read would return, as a borrowed [`RecordRef`], without building
    /// a [`Batch`] per batch. Returns the offset to read next
    /// ([`ReadBatches::next_offset`] of that read).
    ///
    /// Every check of `read` is made (each batch's CRC, its header, its offsets against the
    /// segment's witness or the batch before it), and a batch's records reach `f` only once
    /// the batch after it (or the end of the visible log) has vouched for its offsets. An
    /// error (those of `read`, or a malformed record as in `for_each_record`) ends the walk:
    /// `f` has then seen the records of the batches before the damage, all at their true
    /// offsets, and the caller should treat the read as failed.
    ///
    /// ```
    /// # fn total(p: &seglog::Partition) -> seglog::Result<usize> {
    /// let mut bytes = 0;
    /// let next = p.read_each_record(p.log_start_offset(), 1 << 20, |r| {
    ///     bytes += r.value().map_or(0, <[u8]>::len);
    /// })?;
    /// assert!(next <= p.high_watermark());
    /// # Ok(bytes) }
    /// ```
    pub fn read_each_record(
        &self,
        offset: Offset,
        max_bytes: usize,
        f: impl FnMut(RecordRef<'_>),
    ) -> Result<Offset> {
        let view = self.view();
        let bound = view.high_watermark();
        let mut sink = EachRecord {
            from: offset,
            f,
            pending: None,
            next: None,
        };
        self.walk_below(&view, bound, offset, max_bytes, &mut sink)?;
        Ok(sink.next.unwrap_or(Offset(bound.offset)))
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
        let mut batches = Vec::new();
        self.walk_below(view, bound, offset, max_bytes, &mut batches)?;
        Ok(ReadBatches {
            start: offset,
            end: Offset(bound.offset),
            batches,
        })
    }

    /// The walk of [`read_below`](Partition::read_below), its batches given to `out`.
    fn walk_below(
        &self,
        view: &View,
        bound: Position,
        offset: Offset,
        max_bytes: usize,
        out: &mut impl Sink,
    ) -> Result<()> {
        let hw = bound.offset;
        if offset.0 < view.log_start() || offset.0 > hw {
            return Err(Error::OffsetOutOfRange {
                offset,
                log_start_offset: Offset(view.log_start()),
                high_watermark: Offset(hw),
            });
        }
        if offset.0 == hw {
            return Ok(());
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
            // CRC) would otherwise put records at wrong offsets. A walk that reaches the last
            // visible byte must end exactly there.
            let end_offset = seg.end_offset().map_or(hw, |e| e.0);
            // The bound's own segment ends at the bound (the high watermark for consumers,
            // the log end for a follower's fetch); every other one at its sealed end.
            let exact_end = if seg.base_offset().0 == bound.segment_base {
                hw
            } else {
                end_offset
            };
            let visible = (limit, end_offset, exact_end);
            self.read_segment(seg, &files, offset, max_bytes, visible, out)?;
            if !out.is_empty() {
                break;
            }
        }
        Ok(())
    }

    /// Append to `out` the batches of `seg` from the one holding `offset`, among those below
    /// `visible.0` bytes, each of which must end below offset `visible.1`; a walk reaching
    /// byte `visible.0` must end at offset `visible.2`. Each batch must be the one the
    /// segment's witness lists at its position, or follow the previous one exactly.
    fn read_segment(
        &self,
        seg: &Segment,
        files: &SegmentFiles,
        offset: Offset,
        max_bytes: usize,
        visible: (u64, u64, u64),
        out: &mut impl Sink,
    ) -> Result<()> {
        let (limit, end_offset, exact_end) = visible;
        let (gaps, witness) = (self.config.offset_gaps, files.witness());
        let witness = witness.as_deref();
        let path = || seg.path(LOG_EXT);
        let corrupt = |position: usize, reason| Error::Corrupt {
            path: path(),
            position: position as u64,
            reason,
        };
        // The active segment is mapped to its full configured size once, not on every read.
        let map_len = files
            .sealed_size()
            .unwrap_or_else(|| self.live_limits().segment_bytes);
        let data = files.mapped(limit, map_len).at(&path())?;
        let base = seg.base_offset().0;
        let rel = u32::try_from(offset.0.saturating_sub(base)).unwrap_or(u32::MAX);
        // The index is a cache, never trusted over the log (see `index_start`).
        let (mut pos, mut expected) = index_start(&files.index.read(), &data, base, rel);
        expected = start_expected(witness, pos as u64, expected);
        let mut taken = 0usize;
        while pos < data.len() {
            let rest = &data[pos..];
            let header = BatchHeader::parse(rest).map_err(|k| corrupt(pos, k))?;
            let total = header.total_len();
            if rest.len() < total {
                return Err(corrupt(pos, CorruptKind::Truncated));
            }
            let at = (pos as u64, expected, end_offset);
            expected = follow(witness, at, &header, gaps).map_err(|k| corrupt(pos, k))?;
            if header.last_offset() >= offset.0 {
                if !out.is_empty() && taken + total > max_bytes {
                    break;
                }
                batch::check_crc_of(&header, &rest[..total]).map_err(|k| corrupt(pos, k))?;
                // Compaction may have removed every record of the batch at or past `offset`:
                // such a batch must not stand in for "the next record that exists".
                if out.is_empty() && !holds_record_from(&header, &data, pos, offset)? {
                    pos += total;
                    continue;
                }
                out.take(header, &data, pos)?;
                taken += total;
                if taken >= max_bytes {
                    // The next batch vouches for this one's offsets (see `check_follower`).
                    let next = (pos + total, expected, (end_offset, exact_end));
                    check_follower(&data, next, gaps, witness)
                        .map_err(|k| corrupt(pos + total, k))?;
                    return out.finish(&data);
                }
            }
            pos += total;
        }
        // The last batch ends where the segment (or the visible log) ends: a batch moved by
        // damage leaves a hole here if nothing after it caught it.
        if pos >= data.len() && expected != exact_end {
            return Err(corrupt(pos, CorruptKind::BadOffset));
        }
        out.finish(&data)
    }

    /// The first offset whose record timestamp is `>= timestamp_ms`, or `None` if no visible
    /// record is that new. Uses the time index to skip segments and to start the scan.
    /// `timestamp_ms` is always a time, even `-1`, `-2` or `-3`: Kafka's special `ListOffsets`
    /// values are [`OffsetSpec`](crate::OffsetSpec)s of [`list_offset`](Self::list_offset).
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
                for r in &b.decoded()? {
                    let r = r?;
                    if r.offset() >= next && r.timestamp_ms() >= timestamp_ms {
                        return Ok(Some(r.offset()));
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

/// Check the batch `h` at byte `at.0`, after a log whose next offset is `at.1`: its base
/// offset (outside the CRC) must be the witness's, or follow the previous batch exactly,
/// and it must end below offset `at.2`. Returns the offset the next batch must start at.
#[inline]
fn follow(
    witness: Option<&Witness>,
    at: (u64, u64, u64),
    h: &BatchHeader,
    gaps: bool,
) -> Result<u64, CorruptKind> {
    let (pos, expected, end_offset) = at;
    if !admits(witness, pos, expected, h, gaps) || h.last_offset() >= end_offset {
        return Err(CorruptKind::BadOffset);
    }
    Ok(next_expected(
        witness,
        pos + h.total_len() as u64,
        h.last_offset(),
    ))
}

/// Where [`Partition::read_segment`] puts the batches it takes, in order: each CRC-checked,
/// its offsets admitted after the batch before it.
///
/// Contract between the walk and a sink: the walk must pass `take` and the next `finish` the
/// same buffer `data`, and must call `finish` before it takes a batch from another buffer.
/// A sink may hold a batch back until the next `take` or `finish`, and must not treat it as
/// vouched for before then (only the next batch, or the walk's last check, vouches for a
/// batch's offsets). `is_empty` must stay false once a batch is taken.
trait Sink {
    /// True until a batch is taken.
    fn is_empty(&self) -> bool;

    /// Take the batch `h` at byte `pos` of `data` (`h.total_len()` bytes, all in `data`).
    /// Its offsets are vouched for only by the next batch taken, or by
    /// [`finish`](Sink::finish).
    fn take(&mut self, h: BatchHeader, data: &Bytes, pos: usize) -> Result<()>;

    /// The walk of `data` passed its last check: every batch taken is vouched for.
    fn finish(&mut self, data: &[u8]) -> Result<()>;
}

impl Sink for Vec<Batch> {
    #[inline]
    fn is_empty(&self) -> bool {
        <[Batch]>::is_empty(self)
    }

    #[inline]
    fn take(&mut self, h: BatchHeader, data: &Bytes, pos: usize) -> Result<()> {
        self.push(Batch::from_checked(h, data.slice(pos..pos + h.total_len())));
        Ok(())
    }

    #[inline]
    fn finish(&mut self, _: &[u8]) -> Result<()> {
        // The batches reach the caller only with the whole read.
        Ok(())
    }
}

/// The sink of [`Partition::read_each_record`]: a batch's records go to `f` once the batch
/// after it is taken (it vouches for their offsets), the last batch's at the end of the walk.
struct EachRecord<F> {
    from: Offset,
    f: F,
    /// The last batch taken (header and position), its records not yet given to `f`.
    pending: Option<(BatchHeader, usize)>,
    /// One past the last batch taken.
    next: Option<Offset>,
}

impl<F: FnMut(RecordRef<'_>)> EachRecord<F> {
    #[inline]
    fn deliver(&mut self, data: &[u8]) -> Result<()> {
        match self.pending.take() {
            Some((h, pos)) if !h.is_control() => {
                let batch = &data[pos..pos + h.total_len()];
                decode::visit_records(&h, batch, self.from, &mut self.f)
            }
            _ => Ok(()),
        }
    }
}

impl<F: FnMut(RecordRef<'_>)> Sink for EachRecord<F> {
    #[inline]
    fn is_empty(&self) -> bool {
        self.next.is_none()
    }

    #[inline]
    fn take(&mut self, h: BatchHeader, data: &Bytes, pos: usize) -> Result<()> {
        self.deliver(data)?;
        self.next = Some(Offset(h.last_offset()).next());
        self.pending = Some((h, pos));
        Ok(())
    }

    #[inline]
    fn finish(&mut self, data: &[u8]) -> Result<()> {
        self.deliver(data)
    }
}

/// Whether the batch `h` at byte `pos` of `data` holds a record at or after `offset`. Only a
/// batch of a log with gaps can fail to (compaction keeps its offset range but not all its
/// records).
fn holds_record_from(h: &BatchHeader, data: &Bytes, pos: usize, offset: Offset) -> Result<bool> {
    // Without decoding: a batch with records all at or above `offset`, or with no gap inside
    // (one record per offset of its range, which reaches `offset`).
    if h.record_count > 0
        && (offset.0 <= h.base_offset || h.record_count == h.last_offset_delta.saturating_add(1))
    {
        return Ok(true);
    }
    let batch = Batch::from_checked(*h, data.slice(pos..pos + h.total_len()));
    for r in &batch.decoded()? {
        if r?.offset() >= offset {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A batch's base offset is outside its CRC; a damaged one moved (where no witness lists
/// it) leaves a hole or an overlap with the batch after it. That batch (if any, at byte
/// `next.0` of `data`) catches it: it must be admitted after offset `next.1` and end below
/// `next.2 .0`; with no batch after it, `next.1` must be where the data ends, `next.2 .1`.
fn check_follower(
    data: &[u8],
    next: (usize, u64, (u64, u64)),
    gaps: bool,
    witness: Option<&Witness>,
) -> Result<(), CorruptKind> {
    let (pos, expected, (end_offset, exact_end)) = next;
    let rest = &data[pos..];
    if rest.is_empty() {
        return if expected == exact_end {
            Ok(())
        } else {
            Err(CorruptKind::BadOffset)
        };
    }
    let next = BatchHeader::parse(rest)?;
    if admits(witness, pos as u64, expected, &next, gaps) && next.last_offset() < end_offset {
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
