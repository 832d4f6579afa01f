//! A segment: one `.log` file of batches plus its `.index` and `.timeindex` (Kafka's formats,
//! see `log::index`), and a `.txnindex` where Kafka wrote one.
//!
//! Files are named by the segment's base offset, zero-padded to 20 digits, so `ls` sorts them.
//! Sealed segments are opened lazily, on first use, so opening a partition of many segments
//! costs one directory listing; a sealed segment's indexes are checked against its log when
//! loaded ([`LogProbe`]) and rebuilt from the log if they are missing or inconsistent.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};

use crate::error::{CorruptKind, IoContext};
use crate::error::{Error, Result};
use crate::format::batch::{self, BatchHeader, BATCH_HEADER_LEN};
use crate::io::fs::{Fs, FsFile, OpenFlags};
use crate::log::index::{
    IndexEntry, OffsetIndex, TimeEntry, TimeIndex, TxnIndex, OFFSET_ENTRY_LEN, RELATIVE_OFFSET_MAX,
    TIME_ENTRY_LEN,
};
use crate::log::witness::{Witness, WITNESS_EXT};
use crate::offset::Offset;

/// Extension of segment data files.
pub const LOG_EXT: &str = "log";
/// Extension of offset-index files.
pub const INDEX_EXT: &str = "index";
/// Extension of time-index files.
pub const TIME_INDEX_EXT: &str = "timeindex";
/// Extension of Kafka's aborted-transaction index files.
pub const TXN_INDEX_EXT: &str = "txnindex";

const UNKNOWN: u64 = u64::MAX;
/// Bytes read at a time when scanning a log file.
const SCAN_CHUNK: usize = 1 << 20;

/// `dir/<base offset, 20 digits>.<ext>`.
pub fn segment_path(dir: &Path, base_offset: Offset, ext: &str) -> PathBuf {
    dir.join(format!("{:020}.{ext}", base_offset.0))
}

/// Parse a segment log file name back into its base offset.
pub(crate) fn parse_log_name(name: &str) -> Option<Offset> {
    let stem = name.strip_suffix(".log")?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok().map(Offset)
}

/// The length of a segment's log, refused as damage beyond the largest segment (Kafka's
/// `i32` positions): a longer file, written elsewhere, would overflow index positions.
pub(crate) fn log_len(log: &FsFile, path: &Path) -> Result<u64> {
    let len = log.len().at(path)?;
    if len > crate::log::config::SEGMENT_BYTES_MAX {
        return Err(Error::Corrupt {
            path: path.to_owned(),
            position: crate::log::config::SEGMENT_BYTES_MAX,
            reason: CorruptKind::BadLength,
        });
    }
    Ok(len)
}

/// The open files of a segment.
pub(crate) struct SegmentFiles {
    pub log: FsFile,
    pub index: RwLock<OffsetIndex>,
    pub time_index: RwLock<TimeIndex>,
    /// The segment's `.txnindex` as found when the files were opened (read-only).
    #[cfg_attr(not(test), allow(dead_code))] // read by transaction support (a later issue)
    pub txn_index: TxnIndex,
    /// The segment's batch witness, if it has one that describes its log (see
    /// `log::witness`): batches it covers must be the ones it lists.
    witness: RwLock<Option<Arc<Witness>>>,
    /// The indexes were rebuilt from a log damaged before its end: what they say of the
    /// segment's newest timestamp covers only the batches before the damage.
    log_damaged: bool,
    /// Size of the log once sealed; `UNKNOWN` while active.
    sealed_size: AtomicU64,
    /// A read-only map of the log, grown (replaced) when readers need more of it.
    map: RwLock<Bytes>,
}

impl SegmentFiles {
    /// The sealed size, or `None` while the segment is active.
    pub fn sealed_size(&self) -> Option<u64> {
        match self.sealed_size.load(Ordering::Acquire) {
            UNKNOWN => None,
            n => Some(n),
        }
    }

    /// The log's bytes `[0, limit)` as one zero-copy buffer. `limit` must not exceed what has
    /// been written; `map_len` (at least `limit`) is how much to map when a new map is needed,
    /// so that a growing active segment is not remapped on every read.
    pub fn mapped(&self, limit: u64, map_len: u64) -> std::io::Result<Bytes> {
        let limit = usize::try_from(limit).expect("segment sizes fit in usize");
        {
            let m = self.map.read();
            if m.len() >= limit {
                return Ok(m.slice(..limit));
            }
        }
        let mut m = self.map.write();
        if m.len() < limit {
            let len = if self.log.maps_are_copies() {
                // A copy of preallocated zeros would not see the appends that replace them.
                limit
            } else {
                usize::try_from(map_len).unwrap_or(usize::MAX).max(limit)
            };
            *m = self.log.map(len)?;
        }
        if m.len() < limit {
            // Only a simulated file system maps no further than the file: it is shorter
            // than what the caller says was written.
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(m.slice(..limit))
    }

    /// The segment's batch witness, if any.
    pub fn witness(&self) -> Option<Arc<Witness>> {
        self.witness.read().clone()
    }

    /// Give the segment the batch witness `w` (just written, or found to describe its log).
    pub fn set_witness(&self, w: Option<Arc<Witness>>) {
        *self.witness.write() = w;
    }

    /// Newest timestamp of a sealed segment: the last time-index entry; any time at all
    /// (`i64::MAX`) if the log is damaged before its end, so that timestamp lookups read the
    /// segment (and meet the damage) rather than skip it.
    pub fn sealed_max_timestamp(&self) -> Option<i64> {
        if self.log_damaged {
            return Some(i64::MAX);
        }
        self.time_index.read().last().map(|e| e.timestamp)
    }
}

/// One segment of a partition.
pub struct Segment {
    base_offset: Offset,
    fs: Fs,
    dir: PathBuf,
    /// One past the last offset once sealed (the next segment's base); `UNKNOWN` while active.
    end_offset: AtomicU64,
    files: Mutex<Option<Arc<SegmentFiles>>>,
    /// Size and newest timestamp once known for a sealed segment; kept when files are unloaded.
    sealed_meta: OnceLock<SealedMeta>,
    /// Replaced on disk by compaction: never unloaded (see [`Segment::retire`]).
    retired: AtomicBool,
    /// Removed by a truncation, whose later segments may reuse this name: never loaded again
    /// (see [`Segment::mark_removed`]).
    removed: AtomicBool,
}

/// What retention and timestamp lookups need of a sealed segment, cached on the segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SealedMeta {
    pub size: u64,
    pub max_timestamp: Option<i64>,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("base_offset", &self.base_offset)
            .field("end_offset", &self.end_offset())
            .finish_non_exhaustive()
    }
}

/// Index-building state carried across the batches of one segment, shared by append,
/// recovery, rebuild and compaction so all place entries by Kafka's rule (`LogSegment.append`):
/// after a batch is written, if more than `index_interval_bytes` were written since the last
/// entry before it (counted from the segment's start, so never for the first batch), the
/// offset index gets (the batch's last offset, its position) and the time index gets (the
/// largest timestamp so far, the last offset of the batch that first carried it) if that
/// timestamp grew. Sealing adds one more time entry the same way.
#[derive(Debug, Clone)]
pub(crate) struct IndexCursor {
    interval: u64,
    bytes_since_entry: u64,
    /// Largest batch max timestamp so far and the last offset of the batch that first
    /// carried it.
    max_timestamp: Option<(i64, u64)>,
}

impl IndexCursor {
    pub fn new(interval_bytes: u32) -> Self {
        IndexCursor {
            interval: u64::from(interval_bytes),
            bytes_since_entry: 0,
            max_timestamp: None,
        }
    }

    /// State for segment `base` reopened for appending at `size` bytes, from its (checked)
    /// indexes' last entries.
    pub fn resume(
        interval_bytes: u32,
        base: Offset,
        last_entry: Option<IndexEntry>,
        last_time: Option<TimeEntry>,
        size: u64,
    ) -> Self {
        let mut cursor = IndexCursor::new(interval_bytes);
        cursor.bytes_since_entry = size - last_entry.map_or(0, |e| u64::from(e.position));
        cursor.max_timestamp =
            last_time.map(|t| (t.timestamp, base.0 + u64::from(t.relative_offset)));
        cursor
    }

    /// The segment's largest timestamp so far.
    pub fn max_timestamp(&self) -> Option<i64> {
        self.max_timestamp.map(|(t, _)| t)
    }

    /// The time-index entry for the largest timestamp so far (none if its offset is beyond
    /// what an entry holds: only in a log written with larger segments than seglog rolls at).
    fn time_entry(&self, seg: &Segment) -> Option<TimeEntry> {
        let (timestamp, offset) = self.max_timestamp?;
        Some(TimeEntry {
            timestamp,
            relative_offset: seg.index_relative(offset)?,
        })
    }

    /// Account for a batch written at `position`; adds index entries when due.
    pub fn on_batch(
        &mut self,
        seg: &Segment,
        files: &SegmentFiles,
        h: &BatchHeader,
        position: u64,
    ) {
        self.on_span(seg, files, BatchSpan::of(h), position);
    }

    /// [`IndexCursor::on_batch`] with only what the indexes need of the header.
    pub fn on_span(&mut self, seg: &Segment, files: &SegmentFiles, h: BatchSpan, position: u64) {
        if self.max_timestamp.is_none_or(|(t, _)| h.max_timestamp > t) {
            self.max_timestamp = Some((h.max_timestamp, h.last_offset));
        }
        if self.bytes_since_entry > self.interval {
            let position = u32::try_from(position).expect("segment size is bounded by i32");
            // A full index only makes lookups scan further; appends roll before that happens,
            // but recovery may meet a log written with a larger `index_bytes_max`.
            let mut index = files.index.write();
            if let Some(relative_offset) = seg.index_relative(h.last_offset) {
                if !index.is_full() {
                    index.push(IndexEntry {
                        relative_offset,
                        position,
                    });
                }
            }
            let mut time_index = files.time_index.write();
            // Keep one slot for the entry that sealing adds.
            if time_index.len() + 1 < time_index.capacity() {
                if let Some(e) = self.time_entry(seg) {
                    time_index.push(e);
                }
            }
            self.bytes_since_entry = 0;
        }
        self.bytes_since_entry += h.len;
    }
}

/// What the indexes need of a batch header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchSpan {
    pub base_offset: u64,
    pub last_offset: u64,
    pub max_timestamp: i64,
    /// Bytes of the whole batch.
    pub len: u64,
}

impl BatchSpan {
    pub fn of(h: &BatchHeader) -> Self {
        BatchSpan {
            base_offset: h.base_offset,
            last_offset: h.last_offset(),
            max_timestamp: h.max_timestamp,
            len: h.total_len() as u64,
        }
    }

    /// The span of the batch header at the front of `buf`, if one parses there.
    pub fn parse(buf: &[u8]) -> Option<Self> {
        BatchHeader::parse(buf).ok().map(|h| BatchSpan::of(&h))
    }
}

/// Checks a segment's indexes against its log (which is the truth) by reading batch headers
/// at the positions they name: one header read per offset-index entry (more only for an entry
/// Kafka's cleaner wrote for several batches), a few per time-index entry, and the batches
/// after the last offset-index entry. I/O errors are errors; any mismatch is `false`, and the
/// caller rebuilds the indexes.
pub(crate) struct LogProbe<'a> {
    log: &'a FsFile,
    path: &'a Path,
    size: u64,
    base: u64,
    parse: fn(&[u8]) -> Option<BatchSpan>,
    /// Most bytes of log after the last offset-index entry's batch an index may leave
    /// unindexed (see [`TAIL_BYTES_MAX`]).
    tail_max: u64,
}

/// An offset index leaving more log than this after its last entry's batch is taken for an
/// emptied or truncated one and rebuilt: lookups through it would still be right, but would
/// scan that far. Kafka's and seglog's default index interval is 4 KiB; with an
/// `index_interval_bytes` above this the rebuild happens at every load (it costs a scan).
pub(crate) const TAIL_BYTES_MAX: u64 = 16 << 20;

impl<'a> LogProbe<'a> {
    /// A probe of `log` (`size` bytes) of the segment with base offset `base`.
    pub fn new(log: &'a FsFile, path: &'a Path, size: u64, base: u64) -> Self {
        LogProbe {
            log,
            path,
            size,
            base,
            parse: BatchSpan::parse,
            tail_max: TAIL_BYTES_MAX,
        }
    }

    /// The batch at `pos`, if a header parses there, its offsets are in the segment and the
    /// batch fits in the log.
    pub fn batch_at(&self, pos: u64) -> Result<Option<BatchSpan>> {
        if pos.saturating_add(BATCH_HEADER_LEN as u64) > self.size {
            return Ok(None);
        }
        let mut head = [0u8; BATCH_HEADER_LEN];
        self.log.read_exact_at(&mut head, pos).at(self.path)?;
        Ok((self.parse)(&head).filter(|b| {
            b.base_offset >= self.base
                && b.last_offset >= b.base_offset
                && b.len >= BATCH_HEADER_LEN as u64
                && pos + b.len <= self.size
        }))
    }

    /// Walk batches from `pos` (a batch boundary) while they start below `limit`, to the first
    /// ending at or after `offset`; that batch if it ends exactly at `offset`.
    fn batch_ending_at(&self, mut pos: u64, limit: u64, offset: u64) -> Result<Option<BatchSpan>> {
        while pos < limit {
            let Some(b) = self.batch_at(pos)? else {
                return Ok(None);
            };
            if b.last_offset >= offset {
                return Ok((b.last_offset == offset).then_some(b));
            }
            pos += b.len;
        }
        Ok(None)
    }

    /// Every offset-index entry `(o, p)` passes [`OffsetIndex::validate`] and names a batch
    /// boundary `p` in the log, and a batch ending at `o` starts at `p` (as the producer path
    /// and seglog write) or after it, before the next entry's position (Kafka's cleaner: one
    /// entry for several batches), with `o` below `relative_end`. So every batch before `p`
    /// ends below `o`: a lookup may start at `p`.
    pub fn offset_index_matches(&self, index: &OffsetIndex, relative_end: u64) -> Result<bool> {
        if !index.validate(self.size)
            || index
                .last()
                .is_some_and(|e| u64::from(e.relative_offset) >= relative_end)
        {
            return Ok(false);
        }
        for i in 0..index.len() {
            let e = index.get(i);
            let limit = if i + 1 < index.len() {
                u64::from(index.get(i + 1).position)
            } else {
                self.size
            };
            let offset = self.base + u64::from(e.relative_offset);
            if self
                .batch_ending_at(u64::from(e.position), limit, offset)?
                .is_none()
            {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Every time-index entry `(t, o)` passes [`TimeIndex::validate`] and names the last offset
    /// `o` of a batch whose max timestamp is `t` (found from the offset index, which must
    /// already match); and the batches from the last offset-index entry's on are whole, none
    /// newer than the last time entry (which the entry sealing adds would otherwise have
    /// recorded), and after the first of them no more than `tail_max` bytes. An empty time
    /// index is only right for an empty log.
    pub fn time_index_matches(
        &self,
        time: &TimeIndex,
        index: &OffsetIndex,
        relative_end: u64,
    ) -> Result<bool> {
        if !time.validate(relative_end) || (self.size > 0 && time.is_empty()) {
            return Ok(false);
        }
        if !self.time_entries_match(time, index)? {
            return Ok(false);
        }
        let newest = time.last().map_or(i64::MIN, |e| e.timestamp);
        let mut pos = index.last().map_or(0, |e| u64::from(e.position));
        let mut tail_from = None;
        while pos < self.size {
            match self.batch_at(pos)? {
                Some(b) if b.max_timestamp <= newest => pos += b.len,
                _ => return Ok(false),
            }
            tail_from.get_or_insert(pos);
        }
        Ok(tail_from.is_none_or(|from| self.size - from <= self.tail_max))
    }

    /// Every time entry names a batch that ends exactly at its offset and carries exactly its
    /// timestamp. One forward walk: entries' offsets increase, so each search starts at the
    /// later of the offset index's floor entry and the batch the previous entry named (an
    /// emptied offset index must not make this quadratic).
    fn time_entries_match(&self, time: &TimeIndex, index: &OffsetIndex) -> Result<bool> {
        let mut cursor = 0u64;
        for i in 0..time.len() {
            let t = time.get(i);
            let floor = index
                .lookup(t.relative_offset)
                .map_or(0, |e| u64::from(e.position));
            let offset = self.base + u64::from(t.relative_offset);
            let mut pos = cursor.max(floor);
            loop {
                let Some(b) = (pos < self.size)
                    .then(|| self.batch_at(pos))
                    .transpose()?
                    .flatten()
                else {
                    return Ok(false);
                };
                if b.last_offset >= offset {
                    if b.last_offset != offset || b.max_timestamp != t.timestamp {
                        return Ok(false);
                    }
                    cursor = pos;
                    break;
                }
                pos += b.len;
            }
        }
        Ok(true)
    }

    /// Both indexes of a sealed segment ending `relative_end` offsets after its base match
    /// the log.
    pub fn indexes_match(
        &self,
        index: &OffsetIndex,
        time: &TimeIndex,
        relative_end: u64,
    ) -> Result<bool> {
        Ok(self.offset_index_matches(index, relative_end)?
            && self.time_index_matches(time, index, relative_end)?)
    }
}

/// Where a read for relative offset `rel` may start in `data` (the segment's log bytes, base
/// offset `base`): the position of the floor offset-index entry and the base offset of the
/// batch there, checked against the log (a cache is never trusted over the log); the start of
/// the segment if there is no entry or it does not hold.
pub(crate) fn index_start(index: &OffsetIndex, data: &[u8], base: u64, rel: u32) -> (usize, u64) {
    index_start_with(index, data, base, rel, BatchSpan::parse)
}

/// [`index_start`] with the header parser given.
fn index_start_with(
    index: &OffsetIndex,
    data: &[u8],
    base: u64,
    rel: u32,
    parse: fn(&[u8]) -> Option<BatchSpan>,
) -> (usize, u64) {
    let start = index.lookup(rel).and_then(|e| {
        let pos = e.position as usize;
        let b = parse(data.get(pos..)?)?;
        let ok = b.base_offset >= base && b.last_offset <= base + u64::from(e.relative_offset);
        ok.then_some((pos, b.base_offset))
    });
    start.unwrap_or((0, base))
}

/// How a scan of a log file ended.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScanOutcome {
    /// Byte position after the last valid batch.
    pub end_position: u64,
    /// Offset after the last valid batch.
    pub next_offset: u64,
    /// Why the scan stopped before the end of the file, if it did.
    pub damage: Option<CorruptKind>,
}

impl Segment {
    fn new(
        fs: &Fs,
        dir: &Path,
        base_offset: Offset,
        end_offset: u64,
        files: Option<Arc<SegmentFiles>>,
    ) -> Self {
        Segment {
            base_offset,
            fs: fs.clone(),
            dir: dir.to_owned(),
            end_offset: AtomicU64::new(end_offset),
            files: Mutex::new(files),
            sealed_meta: OnceLock::new(),
            retired: AtomicBool::new(false),
            removed: AtomicBool::new(false),
        }
    }

    /// A sealed segment ending before `end_offset`, loaded on first use.
    pub(crate) fn sealed_lazy(
        fs: &Fs,
        dir: &Path,
        base_offset: Offset,
        end_offset: Offset,
    ) -> Self {
        Segment::new(fs, dir, base_offset, end_offset.0, None)
    }

    /// Create a new, empty active segment (fails if its log file exists).
    pub(crate) fn create_active(
        fs: &Fs,
        dir: &Path,
        base_offset: Offset,
        index_bytes_max: u32,
    ) -> Result<Self> {
        let seg = Segment::new(fs, dir, base_offset, UNKNOWN, None);
        let path = seg.path(LOG_EXT);
        let log = fs.open(&path, OpenFlags::CREATE_NEW).at(&path)?;
        let files = seg.writable_files(log, 0, 0, index_bytes_max)?;
        *seg.files.lock() = Some(Arc::new(files));
        Ok(seg)
    }

    /// Create the files of a segment that compaction is writing, named with the `suffix`
    /// (`.cleaned`) so that nothing mistakes them for a live segment until they are renamed.
    /// The returned segment reports its final paths; its files are the suffixed ones.
    pub(crate) fn create_cleaned(
        fs: &Fs,
        dir: &Path,
        base_offset: Offset,
        suffix: &str,
        index_bytes_max: u32,
    ) -> Result<(Self, SegmentFiles)> {
        let seg = Segment::new(fs, dir, base_offset, UNKNOWN, None);
        let path = seg.path(&format!("{LOG_EXT}{suffix}"));
        let log = fs.open(&path, OpenFlags::CREATE_TRUNCATE).at(&path)?;
        let files = seg.writable_files_at(suffix, log, 0, 0, index_bytes_max)?;
        Ok((seg, files))
    }

    /// Make a segment out of files written and sealed elsewhere (compaction's output).
    pub(crate) fn with_files(self, files: SegmentFiles) -> (Self, Arc<SegmentFiles>) {
        let files = Arc::new(files);
        *self.files.lock() = Some(files.clone());
        (self, files)
    }

    /// Keep this segment's files loaded for as long as the segment lives: it has been
    /// replaced on disk and can no longer be loaded by name.
    pub(crate) fn retire(&self, files: Arc<SegmentFiles>) {
        let mut slot = self.files.lock();
        self.retired.store(true, Ordering::Release);
        *slot = Some(files);
    }

    /// This segment was removed by a truncation: holders of its loaded files keep them (they
    /// map the old, unlinked inodes), but it is never loaded again by name, because a later
    /// segment may be created under the same name.
    pub(crate) fn mark_removed(&self) {
        let _slot = self.files.lock();
        self.removed.store(true, Ordering::Release);
    }

    /// Retention deleted this segment's files: close them now, retired or not, so the disk
    /// space is freed once readers that still hold them let go, and never load it again.
    pub(crate) fn release_deleted(&self) {
        let mut slot = self.files.lock();
        self.removed.store(true, Ordering::Release);
        *slot = None;
    }

    /// fsync a sealed segment's log, offset index and time index, as Kafka's
    /// `LogSegment.flush` does before the recovery point passes a segment: an open trusts the
    /// indexes of segments below the recovery point, so a power loss must not take back the
    /// entries sealing wrote (the time index's last entry is the segment's newest timestamp,
    /// which retention and `offset_for_timestamp` rely on). The log goes through its loaded
    /// files or, if they were closed to keep within `open_segments_max`, by reopening it (an
    /// fsync covers the file, whichever descriptor wrote it); the indexes by reopening them. A
    /// segment removed since has nothing left to make durable.
    pub(crate) fn sync_log(&self) -> Result<()> {
        let path = self.path(LOG_EXT);
        if let Some(f) = self.loaded_files() {
            f.log.sync_data().at(&path)?;
        } else if !self.sync_file(LOG_EXT)? {
            return Ok(());
        }
        self.sync_indexes()
    }

    /// fsync a sealed segment's offset and time index (by reopening them): recovery and
    /// compaction call it for the indexes they rebuilt before the recovery point passes them.
    pub(crate) fn sync_indexes(&self) -> Result<()> {
        self.sync_indexes_named("")
    }

    /// [`sync_indexes`](Self::sync_indexes) of index files named with `suffix` after their
    /// extension (compaction's `.cleaned` output).
    pub(crate) fn sync_indexes_named(&self, suffix: &str) -> Result<()> {
        for ext in [INDEX_EXT, TIME_INDEX_EXT] {
            self.sync_file(&format!("{ext}{suffix}"))?;
        }
        Ok(())
    }

    /// fsync one of the segment's files by reopening it; `false` if it is gone (removed
    /// segments have nothing left to make durable).
    fn sync_file(&self, ext: &str) -> Result<bool> {
        let path = self.path(ext);
        if self.removed.load(Ordering::Acquire) {
            return Ok(false);
        }
        match self.fs.open(&path, OpenFlags::READ) {
            Ok(f) => f.sync_data().at(&path).map(|()| true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    /// Reopen the last segment for appending, keeping `index_entries` / `time_entries` of its
    /// (already checked) indexes.
    pub(crate) fn open_active(
        fs: &Fs,
        dir: &Path,
        base_offset: Offset,
        index_entries: usize,
        time_entries: usize,
        index_bytes_max: u32,
    ) -> Result<(Self, Arc<SegmentFiles>)> {
        let seg = Segment::new(fs, dir, base_offset, UNKNOWN, None);
        let path = seg.path(LOG_EXT);
        let log = fs.open(&path, OpenFlags::WRITE).at(&path)?;
        let files =
            Arc::new(seg.writable_files(log, index_entries, time_entries, index_bytes_max)?);
        *seg.files.lock() = Some(files.clone());
        Ok((seg, files))
    }

    fn writable_files(
        &self,
        log: FsFile,
        index_entries: usize,
        time_entries: usize,
        index_bytes_max: u32,
    ) -> Result<SegmentFiles> {
        self.writable_files_at("", log, index_entries, time_entries, index_bytes_max)
    }

    /// As `writable_files`, for index files named with `suffix` after the extension.
    fn writable_files_at(
        &self,
        suffix: &str,
        log: FsFile,
        index_entries: usize,
        time_entries: usize,
        index_bytes_max: u32,
    ) -> Result<SegmentFiles> {
        let cap = index_bytes_max as usize;
        let witness = if suffix.is_empty() {
            let size = log.len().at(&self.path(LOG_EXT))?;
            self.load_witness(size, None)?
        } else {
            None
        };
        Ok(SegmentFiles {
            log,
            index: RwLock::new(OffsetIndex::open_writable(
                &self.fs,
                &self.path(&format!("{INDEX_EXT}{suffix}")),
                index_entries,
                cap,
            )?),
            time_index: RwLock::new(TimeIndex::open_writable(
                &self.fs,
                &self.path(&format!("{TIME_INDEX_EXT}{suffix}")),
                time_entries,
                cap / TIME_ENTRY_LEN * TIME_ENTRY_LEN,
            )?),
            txn_index: if suffix.is_empty() {
                TxnIndex::load(
                    &self.fs,
                    &self.path(TXN_INDEX_EXT),
                    self.base_offset.0,
                    None,
                )?
            } else {
                TxnIndex::Absent
            },
            witness: RwLock::new(witness),
            log_damaged: false,
            sealed_size: AtomicU64::new(UNKNOWN),
            map: RwLock::new(Bytes::new()),
        })
    }

    /// The segment's base offset: no record in it is below this.
    pub fn base_offset(&self) -> Offset {
        self.base_offset
    }

    /// One past the last offset of a sealed segment; `None` while active.
    pub fn end_offset(&self) -> Option<Offset> {
        match self.end_offset.load(Ordering::Acquire) {
            UNKNOWN => None,
            n => Some(Offset(n)),
        }
    }

    /// Path of this segment's file with extension `ext`.
    pub fn path(&self, ext: &str) -> PathBuf {
        segment_path(&self.dir, self.base_offset, ext)
    }

    /// `offset - base_offset` as the index's `u32`.
    pub(crate) fn relative(&self, offset: u64) -> u32 {
        u32::try_from(offset - self.base_offset.0)
            .expect("segments roll before relative offsets overflow")
    }

    /// `offset - base_offset` if an index entry can hold it (at most `i32::MAX`, Kafka's).
    fn index_relative(&self, offset: u64) -> Option<u32> {
        (offset - self.base_offset.0 <= RELATIVE_OFFSET_MAX).then(|| self.relative(offset))
    }

    /// The segment's files, loading (and if needed repairing the indexes of) a sealed segment.
    pub(crate) fn files(&self) -> Result<Arc<SegmentFiles>> {
        let mut slot = self.files.lock();
        if let Some(f) = &*slot {
            return Ok(f.clone());
        }
        if self.removed.load(Ordering::Acquire) {
            // The name may belong to a newer segment now: never load it for this one.
            let gone = std::io::Error::from(std::io::ErrorKind::NotFound);
            return Err(Error::io(self.path(LOG_EXT), gone));
        }
        let end = self
            .end_offset()
            .expect("only sealed segments are loaded lazily");
        let files = Arc::new(self.load_sealed(end)?);
        *slot = Some(files.clone());
        Ok(files)
    }

    /// Close the files of a sealed segment (holders of the `Arc` keep theirs); they are
    /// loaded again on next use. The active segment is never unloaded.
    pub(crate) fn unload(&self) {
        // `retired` is read under the same lock `retire` sets it under.
        let mut slot = self.files.lock();
        if self.end_offset().is_some() && !self.retired.load(Ordering::Acquire) {
            *slot = None;
        }
    }

    /// Size and newest timestamp of a sealed segment, from loaded files or, without keeping
    /// anything open, from the log's length and the time index's checked last entry. `None` if
    /// the time index cannot be trusted: load the files (which rebuilds it) and retry.
    pub(crate) fn sealed_meta(&self) -> Result<Option<SealedMeta>> {
        if let Some(m) = self.sealed_meta.get() {
            return Ok(Some(*m));
        }
        let end = self
            .end_offset()
            .expect("only sealed segments have sealed metadata");
        let meta = if let Some(f) = self.loaded_files() {
            SealedMeta {
                size: f.sealed_size().expect("sealed"),
                max_timestamp: f.sealed_max_timestamp(),
            }
        } else {
            let log_path = self.path(LOG_EXT);
            let log = self.fs.open(&log_path, OpenFlags::READ).at(&log_path)?;
            let size = log_len(&log, &log_path)?;
            let probe = LogProbe::new(&log, &log_path, size, self.base_offset.0);
            let t = match self.open_indexes() {
                Some((i, t)) if probe.indexes_match(&i, &t, end.0 - self.base_offset.0)? => t,
                _ => return Ok(None),
            };
            SealedMeta {
                size,
                max_timestamp: t.last().map(|e| e.timestamp),
            }
        };
        Ok(Some(*self.sealed_meta.get_or_init(|| meta)))
    }

    /// Files if already loaded (no I/O).
    pub(crate) fn loaded_files(&self) -> Option<Arc<SegmentFiles>> {
        self.files.lock().clone()
    }

    /// The segment's offset and time indexes, opened read-only; `None` if either cannot be
    /// opened (missing, unreadable): the caller rebuilds them.
    fn open_indexes(&self) -> Option<(OffsetIndex, TimeIndex)> {
        let index = OffsetIndex::open_read_only(&self.fs, &self.path(INDEX_EXT)).ok()?;
        let time_index = TimeIndex::open_read_only(&self.fs, &self.path(TIME_INDEX_EXT)).ok()?;
        Some((index, time_index))
    }

    fn load_sealed(&self, end: Offset) -> Result<SegmentFiles> {
        let log_path = self.path(LOG_EXT);
        let log = self.fs.open(&log_path, OpenFlags::READ).at(&log_path)?;
        let size = log_len(&log, &log_path)?;
        let base = self.base_offset.0;
        let probe = LogProbe::new(&log, &log_path, size, base);
        let witness = self.load_witness(size, Some(end.0))?;
        let (index, time_index, log_damaged) = match self.open_indexes() {
            Some((i, t)) if probe.indexes_match(&i, &t, end.0 - base)? => (i, t, false),
            _ => self.rebuild_indexes(&log, size, witness.as_deref())?,
        };
        let txn_index = TxnIndex::load(&self.fs, &self.path(TXN_INDEX_EXT), base, Some(end.0))?;
        Ok(SegmentFiles {
            log,
            index: RwLock::new(index),
            time_index: RwLock::new(time_index),
            txn_index,
            witness: RwLock::new(witness),
            log_damaged,
            sealed_size: AtomicU64::new(size),
            map: RwLock::new(Bytes::new()),
        })
    }

    /// The segment's batch witness if it describes a log of `size` bytes (of a sealed segment
    /// ending at `sealed_end`): see [`Witness::fitted`]. A missing, damaged or foreign one is
    /// `None`, and the segment is then held to dense offsets.
    pub(crate) fn load_witness(
        &self,
        size: u64,
        sealed_end: Option<u64>,
    ) -> Result<Option<Arc<Witness>>> {
        let w = Witness::load(&self.fs, &self.path(WITNESS_EXT), self.base_offset.0)?;
        Ok(w.and_then(|w| w.fitted(size, sealed_end)).map(Arc::new))
    }

    /// Give `files` the segment's witness fitted to a log of `size` bytes. If the witness
    /// covered more than that (the log was just cut at a batch boundary it lists), the file is
    /// rewritten for the cut log (temporary name, fsync, rename; the caller fsyncs the
    /// directory), or removed if it does not describe it: appends after the cut must not be
    /// checked against the batches that were cut.
    pub(crate) fn fit_witness(&self, files: &SegmentFiles, size: u64) -> Result<()> {
        let path = self.path(WITNESS_EXT);
        let raw = Witness::load(&self.fs, &path, self.base_offset.0)?;
        let cut = raw.as_ref().is_some_and(|w| w.log_len() > size);
        let fitted = raw.and_then(|w| w.fitted(size, None));
        if cut {
            self.replace_witness(fitted.as_ref())?;
        }
        files.set_witness(fitted.map(Arc::new));
        Ok(())
    }

    /// Write `witness` as the segment's witness file (temporary name, fsync, rename; the
    /// caller fsyncs the directory), or with `None` remove the file.
    fn replace_witness(&self, witness: Option<&Witness>) -> Result<()> {
        let path = self.path(WITNESS_EXT);
        match witness {
            Some(w) => {
                let tmp = path.with_extension(format!("{WITNESS_EXT}.tmp"));
                w.write_to(&self.fs, &tmp)?;
                self.fs.rename(&tmp, &path).at(&path)
            }
            None => self.fs.remove_file(&path).at(&path),
        }
    }

    /// Make the segment's witness describe its log cut at `size` bytes ending at offset `end`
    /// ([`Witness::cut`]; temporary name, fsync, rename; the caller fsyncs the directory), or
    /// remove it if it cannot. Without this, a cut that keeps every batch of a compacted
    /// segment would keep the empty offsets the witness lists after them.
    pub(crate) fn cut_witness(&self, size: u64, end: u64) -> Result<()> {
        let path = self.path(WITNESS_EXT);
        let Some(raw) = Witness::load(&self.fs, &path, self.base_offset.0)? else {
            return Ok(());
        };
        self.replace_witness(raw.cut(size, end).as_ref())
    }

    /// Rebuild both indexes of a sealed segment from its log, then seal them. Stops at the first
    /// invalid batch (offsets as `witness` lists them, else dense): reads past it will report
    /// the damage. Says whether it met one.
    fn rebuild_indexes(
        &self,
        log: &FsFile,
        size: u64,
        witness: Option<&Witness>,
    ) -> Result<(OffsetIndex, TimeIndex, bool)> {
        // Capacity for the worst case of one entry per smallest batch, bounded by the file,
        // plus the final time entry and the slot the cursor keeps free for it.
        let max_entries = (size as usize / BATCH_HEADER_LEN + 2).min(u32::MAX as usize / 16);
        let files = SegmentFiles {
            log: log.try_clone().at(&self.path(LOG_EXT))?,
            index: RwLock::new(OffsetIndex::open_writable(
                &self.fs,
                &self.path(INDEX_EXT),
                0,
                max_entries * OFFSET_ENTRY_LEN,
            )?),
            time_index: RwLock::new(TimeIndex::open_writable(
                &self.fs,
                &self.path(TIME_INDEX_EXT),
                0,
                max_entries * TIME_ENTRY_LEN,
            )?),
            txn_index: TxnIndex::Absent,
            witness: RwLock::new(None),
            log_damaged: false,
            sealed_size: AtomicU64::new(UNKNOWN),
            map: RwLock::new(Bytes::new()),
        };
        // Any interval works for a rebuilt index; 4 KiB matches the default.
        let mut cursor = IndexCursor::new(4096);
        let log_path = self.path(LOG_EXT);
        let scan = Scan {
            log: &files.log,
            path: &log_path,
            base_offset: self.base_offset.0,
            file_len: size,
            full_check: false,
            gaps: false,
            witness,
        };
        let scan = scan.run(0, self.base_offset.0, &mut |h, pos| {
            cursor.on_batch(self, &files, h, pos);
        })?;
        self.seal_files(&files, &cursor)?;
        let SegmentFiles {
            index, time_index, ..
        } = files;
        let damaged = scan.damage.is_some();
        Ok((index.into_inner(), time_index.into_inner(), damaged))
    }

    /// Seal as Kafka's `onBecomeInactiveSegment` / `close`: one more time-index entry (the
    /// segment's newest timestamp, if it grew since the last entry), trim and remap indexes.
    fn seal_files(&self, files: &SegmentFiles, cursor: &IndexCursor) -> Result<()> {
        if let Some(e) = cursor.time_entry(self) {
            files.time_index.write().push(e);
        }
        files.index.write().seal()?;
        files.time_index.write().seal()?;
        Ok(())
    }

    /// Seal the active segment at `end_offset` / `size` bytes.
    pub(crate) fn seal(
        &self,
        files: &SegmentFiles,
        cursor: &IndexCursor,
        end_offset: u64,
        size: u64,
    ) -> Result<()> {
        self.seal_files(files, cursor)?;
        files.sealed_size.store(size, Ordering::Release);
        self.end_offset.store(end_offset, Ordering::Release);
        Ok(())
    }

    /// Write out the final time-index entry and trim the indexes of the active segment at a
    /// clean close, leaving it ready to be reopened active.
    pub(crate) fn close_active(
        &self,
        files: &SegmentFiles,
        cursor: &IndexCursor,
        end_offset: u64,
    ) -> Result<()> {
        debug_assert!(end_offset >= self.base_offset.0);
        self.seal_files(files, cursor)
    }

    /// Delete the segment's files. Open handles (readers) keep the data readable.
    pub(crate) fn delete_files(&self) -> Result<()> {
        for ext in [
            LOG_EXT,
            INDEX_EXT,
            TIME_INDEX_EXT,
            TXN_INDEX_EXT,
            WITNESS_EXT,
        ] {
            let p = self.path(ext);
            match self.fs.remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(p, e)),
            }
        }
        Ok(())
    }
}

/// A scan of one log file: checks batch after batch and stops at the first invalid one.
pub(crate) struct Scan<'a> {
    pub log: &'a FsFile,
    pub path: &'a Path,
    /// The segment's base offset: no batch may start below it.
    pub base_offset: u64,
    /// Bytes of the file to consider.
    pub file_len: u64,
    /// Also walk every record, not just the header and CRC.
    pub full_check: bool,
    /// Offsets may have gaps (the partition compacts, or another program wrote it): a batch
    /// may start anywhere above the previous batch's last offset. Otherwise offsets are
    /// dense: each batch starts right after the previous one.
    pub gaps: bool,
    /// The segment's batch witness: batches it covers must be the ones it lists (whatever
    /// `gaps` says), and offsets continue from its `next_offset` after them.
    pub witness: Option<&'a Witness>,
}

impl Scan<'_> {
    /// Scan from byte `start`, where a batch with base offset `expected_offset` must begin,
    /// to the end, calling `visit` with each valid batch and its position.
    pub(crate) fn run(
        &self,
        start: u64,
        expected_offset: u64,
        visit: &mut dyn FnMut(&BatchHeader, u64),
    ) -> Result<ScanOutcome> {
        let Scan {
            log,
            path,
            base_offset,
            file_len,
            full_check,
            gaps,
            witness,
        } = *self;
        scan(
            log,
            path,
            base_offset,
            (file_len, full_check, gaps, witness),
            start,
            expected_offset,
            visit,
        )
    }
}

#[allow(clippy::too_many_arguments)]
fn scan(
    log: &FsFile,
    path: &Path,
    base_offset: u64,
    (file_len, full_check, gaps, witness): (u64, bool, bool, Option<&Witness>),
    start: u64,
    expected_offset: u64,
    visit: &mut dyn FnMut(&BatchHeader, u64),
) -> Result<ScanOutcome> {
    let mut window = Window::new(log, path, file_len);
    let mut pos = start;
    let mut next_offset = start_expected(witness, start, expected_offset);
    let damage = loop {
        if pos >= file_len {
            break None;
        }
        let head = window.get(pos, BATCH_HEADER_LEN)?;
        if head.len() < BATCH_HEADER_LEN {
            break Some(CorruptKind::Truncated);
        }
        let header = match BatchHeader::parse(head) {
            Ok(h) => h,
            Err(kind) => break Some(kind),
        };
        let total = header.total_len();
        let bytes = window.get(pos, total)?;
        if bytes.len() < total {
            break Some(CorruptKind::Truncated);
        }
        let checked = if full_check {
            batch::check_batch(bytes)
        } else {
            batch::check_crc(bytes)
        };
        if let Err(kind) = checked {
            break Some(kind);
        }
        let offsets_ok = header.base_offset >= base_offset
            && admits(witness, pos, next_offset, &header, gaps)
            && header.last_offset() - base_offset < u64::from(u32::MAX);
        if !offsets_ok {
            break Some(CorruptKind::BadOffset);
        }
        visit(&header, pos);
        pos += total as u64;
        next_offset = next_expected(witness, pos, header.last_offset());
    };
    Ok(ScanOutcome {
        end_position: pos,
        next_offset,
        damage,
    })
}

/// Whether the batch `h` at byte `pos` may follow a log whose next offset is `expected`: the
/// batch the witness lists there where the witness covers `pos`, else one that follows
/// (exactly, unless `gaps`).
#[inline]
pub(crate) fn admits(
    witness: Option<&Witness>,
    pos: u64,
    expected: u64,
    h: &BatchHeader,
    gaps: bool,
) -> bool {
    match witness.filter(|w| pos < w.log_len()) {
        Some(w) => w.confirms(pos, h.base_offset, h.last_offset()),
        None => h.follows(expected, gaps),
    }
}

/// The offset the batch after one ending at byte `pos_after` with last offset `last` must
/// start at (see [`Witness::next_after`]).
#[inline]
pub(crate) fn next_expected(witness: Option<&Witness>, pos_after: u64, last: u64) -> u64 {
    witness.map_or(last + 1, |w| w.next_after(pos_after, last))
}

/// The offset a walk starting at byte `start` expects first: `expected`, unless the witness's
/// coverage ends exactly there (then its `next_offset`).
pub(crate) fn start_expected(witness: Option<&Witness>, start: u64, expected: u64) -> u64 {
    match witness {
        Some(w) if w.log_len() == start => w.next_after(start, 0),
        _ => expected,
    }
}

/// A sliding read buffer over a file, so scans issue large reads.
struct Window<'a> {
    file: &'a FsFile,
    path: &'a Path,
    file_len: u64,
    start: u64,
    buf: Vec<u8>,
}

impl<'a> Window<'a> {
    fn new(file: &'a FsFile, path: &'a Path, file_len: u64) -> Self {
        Window {
            file,
            path,
            file_len,
            start: 0,
            buf: Vec::new(),
        }
    }

    /// Up to `len` bytes at `pos` (fewer only at the end of the file).
    fn get(&mut self, pos: u64, len: usize) -> Result<&[u8]> {
        let end = (pos + len as u64).min(self.file_len);
        if pos < self.start || end > self.start + self.buf.len() as u64 {
            let want = (len.max(SCAN_CHUNK) as u64).min(self.file_len - pos) as usize;
            self.buf.resize(want, 0);
            self.file.read_exact_at(&mut self.buf, pos).at(self.path)?;
            self.start = pos;
        }
        let from = (pos - self.start) as usize;
        Ok(&self.buf[from..(end - self.start) as usize])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::sim::SimFs;

    #[test]
    fn mapped_remaps_when_the_map_is_only_as_long_as_the_file() {
        // Under the simulation a map holds no more than the file: a reader asking for more
        // than the last map held must get a new one.
        let fs = Fs::Sim(std::sync::Arc::new(SimFs::new()));
        fs.create_dir_all(Path::new("/d")).unwrap();
        let seg = Segment::create_active(&fs, Path::new("/d"), Offset(0), 1024).unwrap();
        let files = seg.loaded_files().unwrap();
        files.log.write_all_at(&[1u8; 100], 0).unwrap();
        assert_eq!(files.mapped(60, 1 << 20).unwrap().as_ref(), &[1u8; 60]);
        files.log.write_all_at(&[2u8; 100], 100).unwrap();
        let m = files.mapped(150, 1 << 20).unwrap();
        assert_eq!(m.len(), 150);
        assert_eq!(&m[95..105], &[1, 1, 1, 1, 1, 2, 2, 2, 2, 2]);
        assert!(
            files.mapped(300, 1 << 20).is_err(),
            "beyond the file: an error, not a panic"
        );
    }

    #[test]
    fn names_sort_and_parse() {
        let p = segment_path(Path::new("/d"), Offset(42), LOG_EXT);
        assert_eq!(p, Path::new("/d/00000000000000000042.log"));
        assert_eq!(parse_log_name("00000000000000000042.log"), Some(Offset(42)));
        assert_eq!(parse_log_name("42.log"), None);
        assert_eq!(parse_log_name("0000000000000000004x.log"), None);
        assert_eq!(parse_log_name("00000000000000000042.index"), None);
    }
}

#[cfg(test)]
#[path = "segment_kafka_tests.rs"]
mod kafka_tests;
