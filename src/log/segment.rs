//! A segment: one `.log` file of batches plus its `.index` and `.timeindex`.
//!
//! Files are named by the segment's base offset, zero-padded to 20 digits, so `ls` sorts them.
//! Sealed segments are opened lazily, on first use, so opening a partition of many segments
//! costs one directory listing; a sealed segment's indexes are checked against its log when
//! loaded and rebuilt from the log if they are missing or inconsistent.

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
    IndexEntry, OffsetIndex, TimeEntry, TimeIndex, OFFSET_ENTRY_LEN, TIME_ENTRY_LEN,
};
use crate::offset::Offset;

/// Extension of segment data files.
pub const LOG_EXT: &str = "log";
/// Extension of offset-index files.
pub const INDEX_EXT: &str = "index";
/// Extension of time-index files.
pub const TIME_INDEX_EXT: &str = "timeindex";

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

/// The open files of a segment.
pub(crate) struct SegmentFiles {
    pub log: FsFile,
    pub index: RwLock<OffsetIndex>,
    pub time_index: RwLock<TimeIndex>,
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
            let len = usize::try_from(map_len).unwrap_or(usize::MAX).max(limit);
            *m = self.log.map(len)?;
        }
        if m.len() < limit {
            // Only a simulated file system maps no further than the file: it is shorter
            // than what the caller says was written.
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(m.slice(..limit))
    }

    /// Newest timestamp of a sealed segment: the last time-index entry.
    pub fn sealed_max_timestamp(&self) -> Option<i64> {
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
/// recovery and rebuild so all three place entries by the same rule.
#[derive(Debug, Clone)]
pub(crate) struct IndexCursor {
    interval: u64,
    bytes_since_entry: u64,
    max_timestamp: Option<i64>,
}

impl IndexCursor {
    pub fn new(interval_bytes: u32) -> Self {
        IndexCursor {
            interval: u64::from(interval_bytes),
            bytes_since_entry: 0,
            max_timestamp: None,
        }
    }

    /// State for a segment reopened for appending, from its indexes and size.
    pub fn resume(
        interval_bytes: u32,
        last_entry: Option<IndexEntry>,
        size: u64,
        max_ts: Option<i64>,
    ) -> Self {
        IndexCursor {
            interval: u64::from(interval_bytes),
            bytes_since_entry: size - last_entry.map_or(0, |e| u64::from(e.position)),
            max_timestamp: max_ts,
        }
    }

    pub fn max_timestamp(&self) -> Option<i64> {
        self.max_timestamp
    }

    /// Account for a batch written at `position`; adds index entries when due.
    pub fn on_batch(
        &mut self,
        seg: &Segment,
        files: &SegmentFiles,
        h: &BatchHeader,
        position: u64,
    ) {
        if self.bytes_since_entry >= self.interval {
            let rel = seg.relative(h.base_offset);
            let position = u32::try_from(position).expect("segment size is bounded by u32");
            // A full index only makes lookups scan further; appends roll before that happens,
            // but recovery may meet a log written with a larger `index_bytes_max`.
            let mut index = files.index.write();
            if !index.is_full() {
                index.push(IndexEntry {
                    relative_offset: rel,
                    position,
                });
            }
            let mut time_index = files.time_index.write();
            // Keep one slot for the entry that sealing adds.
            if let Some(t) = self
                .max_timestamp
                .filter(|_| time_index.len() + 1 < time_index.capacity())
            {
                time_index.push(TimeEntry {
                    timestamp: t,
                    relative_offset: rel,
                });
            }
            self.bytes_since_entry = 0;
        }
        self.bytes_since_entry += h.total_len() as u64;
        self.max_timestamp = Some(
            self.max_timestamp
                .map_or(h.max_timestamp, |t| t.max(h.max_timestamp)),
        );
    }
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

    /// The segment's files, loading (and if needed repairing the indexes of) a sealed segment.
    pub(crate) fn files(&self) -> Result<Arc<SegmentFiles>> {
        let mut slot = self.files.lock();
        if let Some(f) = &*slot {
            return Ok(f.clone());
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
            let log = self.path(LOG_EXT);
            let size = self.fs.file_len(&log).at(&log)?;
            let t = match TimeIndex::open_read_only(&self.fs, &self.path(TIME_INDEX_EXT)) {
                Ok(t) if t.is_verified() && t.validate(end.0 - self.base_offset.0) => t,
                _ => return Ok(None),
            };
            let max_timestamp = t.last().map(|e| e.timestamp);
            if size > 0 && max_timestamp.is_none() {
                return Ok(None);
            }
            SealedMeta {
                size,
                max_timestamp,
            }
        };
        Ok(Some(*self.sealed_meta.get_or_init(|| meta)))
    }

    /// Files if already loaded (no I/O).
    pub(crate) fn loaded_files(&self) -> Option<Arc<SegmentFiles>> {
        self.files.lock().clone()
    }

    fn load_sealed(&self, end: Offset) -> Result<SegmentFiles> {
        let log_path = self.path(LOG_EXT);
        let log = self.fs.open(&log_path, OpenFlags::READ).at(&log_path)?;
        let size = log.len().at(&log_path)?;
        let relative_end = end.0 - self.base_offset.0;
        let fs = &self.fs;
        let indexes = OffsetIndex::open_read_only(fs, &self.path(INDEX_EXT)).and_then(|i| {
            Ok((
                i,
                TimeIndex::open_read_only(fs, &self.path(TIME_INDEX_EXT))?,
            ))
        });
        let (index, time_index) = match indexes {
            Ok((i, t))
                if i.is_verified()
                    && t.is_verified()
                    && i.validate(size)
                    && t.validate(relative_end)
                    && index_files_whole(fs, &self.path(INDEX_EXT), &self.path(TIME_INDEX_EXT))
                    && (size == 0 || !t.is_empty()) =>
            {
                (i, t)
            }
            _ => self.rebuild_indexes(&log, size)?,
        };
        Ok(SegmentFiles {
            log,
            index: RwLock::new(index),
            time_index: RwLock::new(time_index),
            sealed_size: AtomicU64::new(size),
            map: RwLock::new(Bytes::new()),
        })
    }

    /// Rebuild both indexes of a sealed segment from its log, then seal them. Stops at the first
    /// invalid batch: reads past it will report the damage.
    fn rebuild_indexes(&self, log: &FsFile, size: u64) -> Result<(OffsetIndex, TimeIndex)> {
        // Capacity for the worst case of one entry per smallest batch, bounded by the file.
        // Plus the final time entry and the trailers.
        let max_entries = (size as usize / BATCH_HEADER_LEN + 3).min(u32::MAX as usize / 16);
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
            // Rebuilding indexes of a log already checked: gaps (compaction) are fine.
            gaps: true,
        };
        let outcome = scan.run(0, self.base_offset.0, &mut |h, pos| {
            cursor.on_batch(self, &files, h, pos);
        })?;
        self.seal_files(&files, &cursor, outcome.next_offset)?;
        let SegmentFiles {
            index, time_index, ..
        } = files;
        Ok((index.into_inner(), time_index.into_inner()))
    }

    /// Seal: final time-index entry (the segment's newest timestamp), trim and remap indexes.
    fn seal_files(
        &self,
        files: &SegmentFiles,
        cursor: &IndexCursor,
        end_offset: u64,
    ) -> Result<()> {
        if let Some(t) = cursor.max_timestamp() {
            let rel_end = u32::try_from(end_offset - self.base_offset.0).unwrap_or(u32::MAX);
            files.time_index.write().push(TimeEntry {
                timestamp: t,
                relative_offset: rel_end,
            });
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
        self.seal_files(files, cursor, end_offset)?;
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
        self.seal_files(files, cursor, end_offset)
    }

    /// Delete the segment's files. Open handles (readers) keep the data readable.
    pub(crate) fn delete_files(&self) -> Result<()> {
        for ext in [LOG_EXT, INDEX_EXT, TIME_INDEX_EXT] {
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

fn index_files_whole(fs: &Fs, index: &Path, time_index: &Path) -> bool {
    let len = |p: &Path| fs.file_len(p).ok();
    matches!(
        (len(index), len(time_index)),
        (Some(a), Some(b)) if a % OFFSET_ENTRY_LEN as u64 == 0 && b % TIME_ENTRY_LEN as u64 == 0
    )
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
        } = *self;
        scan(
            log,
            path,
            base_offset,
            (file_len, full_check, gaps),
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
    (file_len, full_check, gaps): (u64, bool, bool),
    start: u64,
    expected_offset: u64,
    visit: &mut dyn FnMut(&BatchHeader, u64),
) -> Result<ScanOutcome> {
    let mut window = Window::new(log, path, file_len);
    let mut pos = start;
    let mut next_offset = expected_offset;
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
            && header.follows(next_offset, gaps)
            && header.last_offset() - base_offset < u64::from(u32::MAX);
        if !offsets_ok {
            break Some(CorruptKind::BadOffset);
        }
        visit(&header, pos);
        pos += total as u64;
        next_offset = header.last_offset() + 1;
    };
    Ok(ScanOutcome {
        end_position: pos,
        next_offset,
        damage,
    })
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
