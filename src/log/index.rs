//! Kafka's index files: the sparse offset index (`.index`), the time index (`.timeindex`) and
//! the aborted-transaction index (`.txnindex`), byte for byte as Kafka 3.8 writes them.
//!
//! An index file belongs to exactly one segment of one open partition (the partition holds
//! an exclusive lock on its directory), so no other handle in this or another cooperating
//! process writes it. While a segment is active its offset and time indexes are preallocated to
//! `index_bytes_max` (rounded down to a whole number of entries) and mapped writable; when the
//! segment is sealed they are trimmed to their entries and mapped read-only. Entries are only
//! read below the published entry count, and a file is only resized after its map is dropped.
//! The maps themselves live in `io::mmap`, behind the file seam (`io::fs`); under the simulated
//! file system a writable map is a heap buffer that reaches the file when the index is sealed.
//!
//! Offset and time indexes are caches, with no checksum (Kafka's sanity check demands a length
//! that is a multiple of the entry size, so there is no room for a trailer): the checks here
//! ([`OffsetIndex::validate`], [`TimeIndex::validate`]) look at the entries alone, the segment
//! checks them against its log, and the caller rebuilds them from the log on any doubt. The
//! transaction index cannot be rebuilt from one segment's log; [`TxnIndex`] reads and checks it.

use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::error::{IoContext, Result};
use crate::io::fs::{Fs, FsFile, OpenFlags, WritableMapFs};

/// Bytes of one offset-index entry: relative offset i32 BE + file position i32 BE.
pub const OFFSET_ENTRY_LEN: usize = 8;
/// Bytes of one time-index entry: timestamp i64 BE + relative offset i32 BE.
pub const TIME_ENTRY_LEN: usize = 12;
/// Bytes of one transaction-index entry: version i16, producer id i64, first offset i64, last
/// offset i64, last stable offset i64, all BE.
pub const TXN_ENTRY_LEN: usize = 34;

/// Largest relative offset or position an index entry may hold: Kafka reads both as `int32`.
const FIELD_MAX: u32 = i32::MAX as u32;

/// Largest offset a segment may hold above its base: Kafka's indexes store relative offsets
/// as `int32` (segments roll before reaching it).
pub(crate) const RELATIVE_OFFSET_MAX: u64 = FIELD_MAX as u64;

enum Map {
    /// Zero-length file: nothing to map.
    Empty,
    Writable(WritableMapFs),
    ReadOnly(Bytes),
}

impl Map {
    fn bytes(&self) -> &[u8] {
        match self {
            Map::Empty => &[],
            Map::Writable(m) => m.as_slice(),
            Map::ReadOnly(m) => m,
        }
    }
}

/// A file of fixed-size entries, mapped into memory.
struct IndexFile {
    fs: Fs,
    path: PathBuf,
    /// Bytes per entry.
    entry_len: usize,
    /// Open while writable (sealing resizes it); a read-only map needs no descriptor.
    file: Option<FsFile>,
    map: Map,
    entries: usize,
    /// Opened sealed with a length that is a whole number of entries (Kafka's sanity check).
    whole: bool,
}

impl IndexFile {
    /// Open (creating if needed) for appending: preallocate to `capacity_bytes` (rounded down
    /// to whole entries) and map writable. The first `entries` entries are kept; the caller
    /// has checked them.
    fn open_writable(
        fs: &Fs,
        path: &Path,
        entry_len: usize,
        entries: usize,
        capacity_bytes: usize,
    ) -> Result<Self> {
        let file = fs.open(path, OpenFlags::CREATE).at(path)?;
        // Room for the kept entries even if the configured size shrank since they were
        // written (the segment then rolls at its next append).
        let capacity = (capacity_bytes / entry_len).max(entries) * entry_len;
        // Zero everything past the kept entries: stale bytes there must never look like data.
        file.set_len((entries * entry_len) as u64).at(path)?;
        file.set_len(capacity as u64).at(path)?;
        let map = if capacity == 0 {
            Map::Empty
        } else {
            // The file keeps this length until `seal` drops the map before trimming it.
            Map::Writable(file.map_mut(capacity).at(path)?)
        };
        Ok(IndexFile {
            fs: fs.clone(),
            path: path.to_owned(),
            entry_len,
            file: Some(file),
            map,
            entries,
            whole: true,
        })
    }

    /// Open a sealed index read-only. Trailing bytes that do not form a whole entry are
    /// ignored, and the index is then not `whole` (the caller decides whether to rebuild).
    fn open_read_only(fs: &Fs, path: &Path, entry_len: usize) -> Result<Self> {
        let file = fs.open(path, OpenFlags::READ).at(path)?;
        let len = file.len().at(path)?;
        let entries = usize::try_from(len / entry_len as u64).unwrap_or(usize::MAX);
        let map = if entries == 0 {
            Map::Empty
        } else {
            // Sealed index files are never written or resized while mapped.
            let map = file.map(entries * entry_len).at(path)?;
            if map.len() != entries * entry_len {
                // Shrunk under us: not an index to trust.
                return Err(crate::error::Error::io(
                    path.to_owned(),
                    std::io::ErrorKind::UnexpectedEof.into(),
                ));
            }
            Map::ReadOnly(map)
        };
        // The map outlives the descriptor: close it, so loaded segments cost no file handles.
        drop(file);
        Ok(IndexFile {
            fs: fs.clone(),
            path: path.to_owned(),
            entry_len,
            file: None,
            map,
            entries,
            whole: len % entry_len as u64 == 0,
        })
    }

    /// Entries that fit.
    fn capacity(&self) -> usize {
        match &self.map {
            Map::Writable(m) => m.as_slice().len() / self.entry_len,
            _ => self.entries,
        }
    }

    fn is_full(&self) -> bool {
        self.entries >= self.capacity()
    }

    fn entry(&self, i: usize) -> &[u8] {
        assert!(i < self.entries);
        &self.map.bytes()[i * self.entry_len..(i + 1) * self.entry_len]
    }

    fn push(&mut self, bytes: &[u8]) {
        assert!(!self.is_full(), "push to a full index");
        let (i, len) = (self.entries, self.entry_len);
        match &mut self.map {
            Map::Writable(m) => m.as_mut_slice()[i * len..(i + 1) * len].copy_from_slice(bytes),
            _ => panic!("write to a sealed index"),
        }
        self.entries += 1;
    }

    /// Trim the file to its entries and remap read-only.
    fn seal(&mut self) -> Result<()> {
        if let Map::Writable(m) = &self.map {
            m.write_back(self.entries * self.entry_len).at(&self.path)?;
        }
        self.map = Map::Empty;
        // Until the read-only map is back, there are no entries to read (lookups then scan
        // from the start of the log), also if what follows fails.
        let entries = std::mem::take(&mut self.entries);
        let len = (entries * self.entry_len) as u64;
        let file = self.file.take().expect("only writable indexes are sealed");
        file.set_len(len).at(&self.path)?;
        drop(file);
        *self = Self::open_read_only(&self.fs, &self.path, self.entry_len)?;
        Ok(())
    }

    /// First index `i` for which `pred(entry i)` is false, assuming `pred` is true on a prefix.
    fn partition_point(&self, pred: impl Fn(&[u8]) -> bool) -> usize {
        let (mut lo, mut hi) = (0, self.entries);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if pred(self.entry(mid)) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

/// A fixed-size index entry and its big-endian encoding (Kafka's).
///
/// Contract: `write_to` **must** fill exactly `LEN` bytes and `read_from` **must** invert it;
/// `read_from` **must not** panic on any `LEN` bytes (index files are caches read from disk;
/// the index validates entries after decoding them). `LEN` **must** be at most 12.
pub trait IndexRecord: Copy + std::fmt::Debug {
    /// Encoded size in bytes.
    const LEN: usize;
    /// Encode into `out`, which is exactly `LEN` bytes.
    fn write_to(&self, out: &mut [u8]);
    /// Decode from `b`, which is exactly `LEN` bytes.
    fn read_from(b: &[u8]) -> Self;
}

/// One offset-index entry (Kafka's): the batch starting at byte `position` of the segment's log
/// ends at `relative_offset` (from the segment's base offset). An index Kafka's log cleaner
/// wrote may instead hold the last offset of several batches written together, the first of
/// which starts at `position`; either way every batch before `position` ends below the entry's
/// offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    /// Last offset of the batch (or batches) at `position`, minus the segment's base offset.
    pub relative_offset: u32,
    /// Byte position of the batch in the `.log` file.
    pub position: u32,
}

impl IndexRecord for IndexEntry {
    const LEN: usize = OFFSET_ENTRY_LEN;
    fn write_to(&self, out: &mut [u8]) {
        out[..4].copy_from_slice(&self.relative_offset.to_be_bytes());
        out[4..8].copy_from_slice(&self.position.to_be_bytes());
    }
    fn read_from(b: &[u8]) -> Self {
        IndexEntry {
            relative_offset: be_u32(b, 0),
            position: be_u32(b, 4),
        }
    }
}

/// One time-index entry (Kafka's): `timestamp` is the largest timestamp of the segment's records
/// up to and including `relative_offset`, which is the last offset of the batch that first
/// carried it (that batch's max timestamp is `timestamp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    /// Largest timestamp of the records up to `relative_offset`.
    pub timestamp: i64,
    /// Last offset of the batch that first carried `timestamp`, relative to the segment's base.
    pub relative_offset: u32,
}

impl IndexRecord for TimeEntry {
    const LEN: usize = TIME_ENTRY_LEN;
    fn write_to(&self, out: &mut [u8]) {
        out[..8].copy_from_slice(&self.timestamp.to_be_bytes());
        out[8..12].copy_from_slice(&self.relative_offset.to_be_bytes());
    }
    fn read_from(b: &[u8]) -> Self {
        TimeEntry {
            timestamp: be_i64(b, 0),
            relative_offset: be_u32(b, 8),
        }
    }
}

/// An index file of `E` entries: the sparse offset index ([`OffsetIndex`]) or the time index
/// ([`TimeIndex`]).
pub struct Index<E> {
    file: IndexFile,
    entry: PhantomData<E>,
}

/// The sparse offset index: one entry after every `index_interval_bytes` of log.
pub type OffsetIndex = Index<IndexEntry>;

/// The time index: maps "largest timestamp so far" to the batch where it was reached.
pub type TimeIndex = Index<TimeEntry>;

impl<E: IndexRecord> Index<E> {
    /// Open for appending, keeping the first `entries` entries.
    pub(crate) fn open_writable(
        fs: &Fs,
        path: &Path,
        entries: usize,
        capacity_bytes: usize,
    ) -> Result<Self> {
        Ok(Index {
            file: IndexFile::open_writable(fs, path, E::LEN, entries, capacity_bytes)?,
            entry: PhantomData,
        })
    }

    /// Open a sealed index read-only.
    pub(crate) fn open_read_only(fs: &Fs, path: &Path) -> Result<Self> {
        Ok(Index {
            file: IndexFile::open_read_only(fs, path, E::LEN)?,
            entry: PhantomData,
        })
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.file.entries
    }

    /// True when the index holds no entries.
    pub fn is_empty(&self) -> bool {
        self.file.entries == 0
    }

    /// True when no more entries fit: the segment must roll.
    pub fn is_full(&self) -> bool {
        self.file.is_full()
    }

    /// How many entries fit in all.
    pub fn capacity(&self) -> usize {
        self.file.capacity()
    }

    /// Entry `i`.
    pub fn get(&self, i: usize) -> E {
        E::read_from(self.file.entry(i))
    }

    /// The last entry, if any.
    pub fn last(&self) -> Option<E> {
        self.len().checked_sub(1).map(|i| self.get(i))
    }

    /// The last entry for which `pred` holds, assuming it holds on a prefix.
    fn last_where(&self, pred: impl Fn(E) -> bool) -> Option<E> {
        let n = self.file.partition_point(|b| pred(E::read_from(b)));
        n.checked_sub(1).map(|i| self.get(i))
    }

    /// True when each entry relates to the one before it by `ordered`.
    fn ordered(&self, ordered: impl Fn(&E, &E) -> bool) -> bool {
        (1..self.len()).all(|i| ordered(&self.get(i - 1), &self.get(i)))
    }

    fn push_unchecked(&mut self, entry: E) {
        let mut b = [0u8; TIME_ENTRY_LEN];
        entry.write_to(&mut b[..E::LEN]);
        self.file.push(&b[..E::LEN]);
    }

    /// Trim to the entries and remap read-only.
    pub(crate) fn seal(&mut self) -> Result<()> {
        self.file.seal()
    }
}

impl OffsetIndex {
    /// Append an entry. Entries must grow strictly in both fields and fit Kafka's `int32`s.
    pub(crate) fn push(&mut self, entry: IndexEntry) {
        assert!(entry.relative_offset <= FIELD_MAX && entry.position <= FIELD_MAX);
        if let Some(last) = self.last() {
            assert!(
                entry.relative_offset > last.relative_offset && entry.position > last.position,
                "offset index entries must increase"
            );
        }
        self.push_unchecked(entry);
    }

    /// Floor lookup: the last entry whose relative offset is `<= relative_offset`. Every batch
    /// before its position ends below its offset, so a search for `relative_offset` may start
    /// there.
    pub fn lookup(&self, relative_offset: u32) -> Option<IndexEntry> {
        self.last_where(|e| e.relative_offset <= relative_offset)
    }

    /// Check the entries on their own (Kafka's sanity check and more), for a log of `log_len`
    /// bytes: a whole number of entries, both fields strictly increasing and within `int32`,
    /// positions inside the log. The segment also checks each entry against the batch at its
    /// position. Entries are caches; a failed check means "rebuild".
    pub fn validate(&self, log_len: u64) -> bool {
        self.file.whole
            && self.last().is_none_or(|e| {
                u64::from(e.position) < log_len
                    && e.position <= FIELD_MAX
                    && e.relative_offset <= FIELD_MAX
            })
            && self.ordered(|a, b| a.relative_offset < b.relative_offset && a.position < b.position)
    }
}

impl TimeIndex {
    /// Append an entry unless it adds nothing (timestamp not above the last entry's) or the
    /// index is full. Returns whether it was added.
    ///
    /// Kafka's own time index also skips a first entry whose timestamp is not above -1 (its
    /// "no timestamp"); Kafka's producers send no other negative timestamp, seglog's may, so
    /// here any first entry counts. Both write the same bytes for timestamps `>= 0`.
    pub(crate) fn push(&mut self, entry: TimeEntry) -> bool {
        assert!(entry.relative_offset <= FIELD_MAX);
        if let Some(last) = self.last() {
            if entry.timestamp <= last.timestamp {
                return false;
            }
            assert!(
                entry.relative_offset > last.relative_offset,
                "time index offsets must increase"
            );
        }
        if self.is_full() {
            return false;
        }
        self.push_unchecked(entry);
        true
    }

    /// The relative offset where a search for the first record with timestamp `>= target`
    /// may start: one past the last entry whose timestamp is `< target` (every record up to
    /// that entry's offset is older than `target`), or 0. Entries hold at most `i32::MAX`, so
    /// one past them fits.
    pub fn lookup(&self, target: i64) -> u32 {
        self.last_where(|e| e.timestamp < target)
            .map_or(0, |e| e.relative_offset.min(FIELD_MAX) + 1)
    }

    /// Check the entries on their own: a whole number of entries, offsets strictly increasing
    /// and below `relative_end` (inside the segment), timestamps not decreasing. The segment
    /// also checks each entry against the batch it names.
    pub fn validate(&self, relative_end: u64) -> bool {
        self.file.whole
            && self.last().is_none_or(|e| {
                u64::from(e.relative_offset) < relative_end && e.relative_offset <= FIELD_MAX
            })
            && self
                .ordered(|a, b| a.timestamp <= b.timestamp && a.relative_offset < b.relative_offset)
    }
}

/// One aborted transaction, as Kafka's `.txnindex` records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    /// The transactional producer.
    pub producer_id: i64,
    /// Offset of the transaction's first batch (possibly in an earlier segment).
    pub first_offset: u64,
    /// Offset of the ABORT marker, in this segment.
    pub last_offset: u64,
    /// The partition's last stable offset when the transaction completed.
    pub last_stable_offset: u64,
}

/// A segment's `.txnindex`, as found when the segment was loaded.
///
/// Kafka writes one entry per aborted transaction whose marker lands in the segment. The file
/// cannot be rebuilt from the segment's log alone (a transaction's first offset and the last
/// stable offset come from the producer state), so it is never rewritten or deleted as damage:
/// a file that fails the checks is kept on disk untouched and reported as [`TxnIndex::Damaged`].
/// What reads do with aborted transactions belongs to transaction support.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TxnIndex {
    /// No `.txnindex` file: no aborted transaction ends in this segment.
    #[default]
    Absent,
    /// Every entry passed the checks, in file order.
    Loaded(Vec<AbortedTxn>),
    /// The file is there but not a valid index (see [`TxnIndex::parse`]).
    Damaged,
}

impl TxnIndex {
    /// Read the `.txnindex` at `path` of a segment with base offset `base` holding offsets below
    /// `end` (`None` for the active segment).
    pub(crate) fn load(fs: &Fs, path: &Path, base: u64, end: Option<u64>) -> Result<TxnIndex> {
        if !fs.exists(path).at(path)? {
            return Ok(TxnIndex::Absent);
        }
        let file = fs.open(path, OpenFlags::READ).at(path)?;
        let len = file.len().at(path)?;
        // Far more aborted transactions than a segment of the largest size could end, or than
        // a sealed segment has offsets (each entry's marker is a distinct offset of it).
        let entries_max = end.map_or(u64::MAX, |e| e.saturating_sub(base));
        if len > crate::log::config::SEGMENT_BYTES_MAX || len / TXN_ENTRY_LEN as u64 > entries_max {
            return Ok(TxnIndex::Damaged);
        }
        let mut buf = vec![0u8; usize::try_from(len).unwrap_or(0)];
        file.read_exact_at(&mut buf, 0).at(path)?;
        Ok(Self::parse(&buf, base, end))
    }

    /// Check and decode the bytes of a `.txnindex`: a whole number of 34-byte entries, each of
    /// version 0 with a producer id `>= 0`, `first_offset <= last_offset`, the marker
    /// (`last_offset`) inside the segment `[base, end)`, and markers in increasing order.
    pub fn parse(bytes: &[u8], base: u64, end: Option<u64>) -> TxnIndex {
        if !bytes.len().is_multiple_of(TXN_ENTRY_LEN) {
            return TxnIndex::Damaged;
        }
        let mut out: Vec<AbortedTxn> = Vec::with_capacity(bytes.len() / TXN_ENTRY_LEN);
        for e in bytes.chunks_exact(TXN_ENTRY_LEN) {
            let version = i16::from_be_bytes([e[0], e[1]]);
            let field = |at| u64::try_from(be_i64(e, at)).ok();
            let (Some(first), Some(last), Some(lso)) = (field(10), field(18), field(26)) else {
                return TxnIndex::Damaged;
            };
            let txn = AbortedTxn {
                producer_id: be_i64(e, 2),
                first_offset: first,
                last_offset: last,
                last_stable_offset: lso,
            };
            let ok = version == 0
                && txn.producer_id >= 0
                && first <= last
                && last >= base
                && end.is_none_or(|end| last < end)
                && out.last().is_none_or(|p| p.last_offset < last);
            if !ok {
                return TxnIndex::Damaged;
            }
            out.push(txn);
        }
        TxnIndex::Loaded(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(r: u32, p: u32) -> IndexEntry {
        IndexEntry {
            relative_offset: r,
            position: p,
        }
    }

    #[test]
    fn floor_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx =
            OffsetIndex::open_writable(&Fs::Std, &dir.path().join("a.index"), 0, 80).unwrap();
        assert_eq!(idx.lookup(5), None);
        for i in 1..=5u32 {
            idx.push(entry(i * 10, i * 100));
        }
        assert_eq!(idx.lookup(9), None);
        assert_eq!(idx.lookup(10), Some(entry(10, 100)));
        assert_eq!(idx.lookup(29), Some(entry(20, 200)));
        assert_eq!(idx.lookup(u32::MAX), Some(entry(50, 500)));
        assert!(idx.validate(501));
        assert!(!idx.validate(500));
    }

    #[test]
    fn entries_are_big_endian_without_trailer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.index");
        // Room for four entries; a capacity that is not a multiple rounds down.
        let mut idx =
            OffsetIndex::open_writable(&Fs::Std, &path, 0, 4 * OFFSET_ENTRY_LEN + 5).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 32, "preallocated");
        assert_eq!(idx.capacity(), 4);
        for i in 0..4u32 {
            assert!(!idx.is_full());
            idx.push(entry(i + 1, 0x0102_0304 + i));
        }
        assert!(idx.is_full());
        idx.seal().unwrap();
        let raw = std::fs::read(&path).unwrap();
        assert_eq!(raw.len(), 32, "trimmed to the entries, nothing more");
        assert_eq!(&raw[..8], &[0, 0, 0, 1, 1, 2, 3, 4]);
        let again = OffsetIndex::open_read_only(&Fs::Std, &path).unwrap();
        assert_eq!(again.len(), 4);
        assert!(again.validate(u64::MAX));
        assert_eq!(again.last(), Some(entry(4, 0x0102_0307)));
    }

    #[test]
    fn time_entries_are_big_endian() {
        let mut b = [0u8; TIME_ENTRY_LEN];
        let e = TimeEntry {
            timestamp: 0x0102_0304_0506_0708,
            relative_offset: 9,
        };
        e.write_to(&mut b);
        assert_eq!(b, [1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 9]);
        assert_eq!(TimeEntry::read_from(&b), e);
    }

    #[test]
    fn a_partial_entry_or_disorder_fails_validation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.timeindex");
        let good: Vec<u8> = [(100i64, 1u32), (200, 5), (300, 9)]
            .iter()
            .flat_map(|&(t, r)| {
                let mut b = [0u8; TIME_ENTRY_LEN];
                TimeEntry {
                    timestamp: t,
                    relative_offset: r,
                }
                .write_to(&mut b);
                b
            })
            .collect();
        let check = |bytes: &[u8]| {
            std::fs::write(&path, bytes).unwrap();
            TimeIndex::open_read_only(&Fs::Std, &path)
                .unwrap()
                .validate(10)
        };
        assert!(check(&good));
        assert!(
            !check(&good[..good.len() - 1]),
            "length not a multiple of 12"
        );
        let mut swapped = good.clone();
        swapped[TIME_ENTRY_LEN + 11] = 0; // entry 1's offset 5 -> 0: below entry 0's
        assert!(!check(&swapped));
        let mut negative = good.clone();
        negative[2 * TIME_ENTRY_LEN + 8] = 0x80; // offset read as a negative int32
        assert!(!check(&negative));
        let t = TimeIndex::open_read_only(&Fs::Std, &path).unwrap();
        assert!(!t.validate(9), "offset 9 is outside a segment of 9 offsets");
    }

    #[test]
    fn sealing_writes_the_index_back_under_the_simulation() {
        use crate::io::sim::SimFs;
        let sim = std::sync::Arc::new(SimFs::new());
        let fs = Fs::Sim(sim.clone());
        sim.create_dir_all("/d").unwrap();
        let path = Path::new("/d/s.index");
        let mut idx = OffsetIndex::open_writable(&fs, path, 0, 80).unwrap();
        for i in 1..=3u32 {
            idx.push(entry(i, i * 10));
        }
        assert!(
            sim.read_file(path).unwrap().iter().all(|&b| b == 0),
            "a heap map reaches the file only when written back"
        );
        idx.seal().unwrap();
        assert_eq!(sim.read_file(path).unwrap().len(), 3 * OFFSET_ENTRY_LEN);
        let again = OffsetIndex::open_read_only(&fs, path).unwrap();
        assert_eq!(again.last(), Some(entry(3, 30)));
    }

    #[test]
    fn reopening_writable_zeroes_the_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.index");
        {
            let mut idx = OffsetIndex::open_writable(&Fs::Std, &path, 0, 80).unwrap();
            for i in 0..4u32 {
                idx.push(entry(i, i));
            }
        }
        let idx = OffsetIndex::open_writable(&Fs::Std, &path, 2, 80).unwrap();
        assert_eq!(idx.len(), 2);
        let raw = std::fs::read(&path).unwrap();
        assert!(raw[16..].iter().all(|&b| b == 0));
    }

    #[test]
    fn time_index_lookup_and_validation() {
        let dir = tempfile::tempdir().unwrap();
        let mut t =
            TimeIndex::open_writable(&Fs::Std, &dir.path().join("e.timeindex"), 0, 120).unwrap();
        assert_eq!(t.lookup(100), 0);
        assert!(t.push(TimeEntry {
            timestamp: 10,
            relative_offset: 5
        }));
        assert!(
            !t.push(TimeEntry {
                timestamp: 10,
                relative_offset: 6
            }),
            "no growth, no entry"
        );
        assert!(t.push(TimeEntry {
            timestamp: 20,
            relative_offset: 9
        }));
        // Records up to offset 5 are at most 10 old, up to 9 at most 20.
        assert_eq!(t.lookup(10), 0);
        assert_eq!(t.lookup(11), 6);
        assert_eq!(t.lookup(20), 6);
        assert_eq!(t.lookup(21), 10);
        assert!(t.validate(10));
        assert!(!t.validate(9));
    }

    fn txn(version: i16, pid: i64, first: i64, last: i64, lso: i64) -> Vec<u8> {
        let mut b = version.to_be_bytes().to_vec();
        for v in [pid, first, last, lso] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        assert_eq!(b.len(), TXN_ENTRY_LEN);
        b
    }

    #[test]
    fn txn_index_parse_checks_every_entry() {
        let good = [txn(0, 2001, 12, 44, 45), txn(0, 2000, 45, 63, 47)].concat();
        let TxnIndex::Loaded(all) = TxnIndex::parse(&good, 0, Some(76)) else {
            panic!("valid")
        };
        assert_eq!(
            all[1],
            AbortedTxn {
                producer_id: 2000,
                first_offset: 45,
                last_offset: 63,
                last_stable_offset: 47
            }
        );
        assert_eq!(TxnIndex::parse(&[], 0, None), TxnIndex::Loaded(vec![]));
        let damaged = [
            good[..good.len() - 1].to_vec(),
            txn(1, 1, 1, 2, 3),
            txn(0, -1, 1, 2, 3),
            txn(0, 1, 5, 4, 3),
            txn(0, 1, 1, 80, 3),
            txn(0, 1, -2, 2, 3),
            [txn(0, 1, 1, 9, 3), txn(0, 1, 1, 9, 3)].concat(),
        ];
        for (i, d) in damaged.iter().enumerate() {
            assert_eq!(
                TxnIndex::parse(d, 0, Some(76)),
                TxnIndex::Damaged,
                "case {i}"
            );
        }
        assert_eq!(
            TxnIndex::parse(&txn(0, 1, 1, 9, 3), 10, None),
            TxnIndex::Damaged,
            "marker below the segment"
        );
    }
}
