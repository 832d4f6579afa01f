//! Sparse offset index and time index: fixed-size entries in a memory-mapped file.
//!
//! An index file belongs to exactly one segment of one open partition (the partition holds
//! an exclusive lock on its directory), so no other handle in this or another cooperating
//! process writes it. While a segment is active its index files are preallocated to
//! `index_bytes_max` and mapped writable; when the segment is sealed they are trimmed to their
//! entries and mapped read-only. Entries are only read below the published entry count, and a
//! file is only resized after its map is dropped. The maps themselves live in `io::mmap`,
//! behind the file seam (`io::fs`); under the simulated file system a writable map is a heap
//! buffer that reaches the file when the index is sealed.
//!
//! Indexes are caches: a sealed index ends with a trailer holding the CRC-32 of its entries
//! ([`OffsetIndex::is_verified`]), [`OffsetIndex::validate`] and [`TimeIndex::validate`] check
//! an index against the log it describes, and the caller rebuilds it from the log on any doubt.

use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::error::{IoContext, Result};
use crate::io::fs::{Fs, FsFile, OpenFlags, WritableMapFs};

/// Bytes of one offset-index entry: relative offset u32 + file position u32.
pub const OFFSET_ENTRY_LEN: usize = 8;
/// Bytes of one time-index entry: timestamp i64 + relative offset u32.
pub const TIME_ENTRY_LEN: usize = 12;

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

/// First bytes of the trailer entry a sealed index file ends with.
const TRAILER_MAGIC: &[u8; 4] = b"SLIX";

/// A file of fixed-size entries, mapped into memory.
///
/// A sealed file ends with one trailer entry: `TRAILER_MAGIC`, the CRC-32 of all entries before
/// it (u32 LE), zero padding. A writable file keeps a slot free for it.
struct IndexFile {
    fs: Fs,
    path: PathBuf,
    /// Bytes per entry.
    entry_len: usize,
    /// Open while writable (sealing resizes it); a read-only map needs no descriptor.
    file: Option<FsFile>,
    map: Map,
    entries: usize,
    /// Opened sealed with a trailer whose checksum matches the entries.
    verified: bool,
}

impl IndexFile {
    /// Open (creating if needed) for appending: preallocate to `capacity_bytes` and map
    /// writable. The first `entries` entries are kept; the caller has checked them.
    fn open_writable(
        fs: &Fs,
        path: &Path,
        entry_len: usize,
        entries: usize,
        capacity_bytes: usize,
    ) -> Result<Self> {
        let file = fs.open(path, OpenFlags::CREATE).at(path)?;
        // Room for the kept entries plus the trailer even if the configured size shrank since
        // they were written (the segment then rolls at its next append).
        let capacity = (capacity_bytes / entry_len).max(entries + 1) * entry_len;
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
            verified: false,
        })
    }

    /// Open a sealed index read-only. Trailing bytes that do not form a whole entry are
    /// ignored; without a matching trailer the index is not `verified` and every entry counts
    /// (the caller decides whether to rebuild).
    fn open_read_only(fs: &Fs, path: &Path, entry_len: usize) -> Result<Self> {
        let file = fs.open(path, OpenFlags::READ).at(path)?;
        let len = file.len().at(path)? as usize;
        let entries = len / entry_len;
        let map = if entries == 0 {
            Map::Empty
        } else {
            // Sealed index files are never written or resized while mapped.
            let map = file.map(entries * entry_len).at(path)?;
            assert_eq!(
                map.len(),
                entries * entry_len,
                "the file holds the mapped entries"
            );
            Map::ReadOnly(map)
        };
        // The map outlives the descriptor: close it, so loaded segments cost no file handles.
        drop(file);
        let mut index = IndexFile {
            fs: fs.clone(),
            path: path.to_owned(),
            entry_len,
            file: None,
            map,
            entries,
            verified: false,
        };
        if entries > 0 {
            let trailer = index.entry(entries - 1);
            let body = &index.map.bytes()[..(entries - 1) * entry_len];
            if trailer[..4] == TRAILER_MAGIC[..]
                && u32_at(trailer, 4) == crc32fast::hash(body)
                && trailer[8..].iter().all(|&b| b == 0)
            {
                index.entries -= 1;
                index.verified = true;
            }
        }
        Ok(index)
    }

    /// Entries that fit, keeping one slot for the trailer.
    fn capacity(&self) -> usize {
        match &self.map {
            Map::Writable(m) => (m.as_slice().len() / self.entry_len).saturating_sub(1),
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
        self.write_slot(self.entries, bytes);
        self.entries += 1;
    }

    fn write_slot(&mut self, i: usize, bytes: &[u8]) {
        match &mut self.map {
            Map::Writable(m) => m.as_mut_slice()[i * self.entry_len..(i + 1) * self.entry_len]
                .copy_from_slice(bytes),
            _ => panic!("write to a sealed index"),
        }
    }

    /// Write the checksum trailer, trim the file to entries plus trailer, remap read-only.
    fn seal(&mut self) -> Result<()> {
        let mut trailer = vec![0u8; self.entry_len];
        trailer[..4].copy_from_slice(TRAILER_MAGIC);
        let crc = crc32fast::hash(&self.map.bytes()[..self.entries * self.entry_len]);
        trailer[4..8].copy_from_slice(&crc.to_le_bytes());
        self.write_slot(self.entries, &trailer);
        if let Map::Writable(m) = &self.map {
            m.write_back((self.entries + 1) * self.entry_len)
                .at(&self.path)?;
        }
        self.map = Map::Empty;
        // Until the read-only map is back, there are no entries to read (lookups then scan
        // from the start of the log), also if what follows fails.
        let entries = std::mem::take(&mut self.entries);
        let len = ((entries + 1) * self.entry_len) as u64;
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

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn i64_at(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_le_bytes(a)
}

/// A fixed-size index entry and its little-endian encoding.
///
/// Contract: `write_to` **must** fill exactly `LEN` bytes and `read_from` **must** invert it;
/// `read_from` **must not** panic on any `LEN` bytes (index files are caches read from disk;
/// the index validates entries after decoding them). `LEN` **must** be at least 8, the size
/// of the checksum trailer's magic and CRC, and at most 12.
pub trait IndexRecord: Copy + std::fmt::Debug {
    /// Encoded size in bytes.
    const LEN: usize;
    /// Encode into `out`, which is exactly `LEN` bytes.
    fn write_to(&self, out: &mut [u8]);
    /// Decode from `b`, which is exactly `LEN` bytes.
    fn read_from(b: &[u8]) -> Self;
}

/// One offset-index entry: a batch starting at `relative_offset` (from the segment's base
/// offset) begins at byte `position` of the segment's log file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    /// Offset of the batch's first record minus the segment's base offset.
    pub relative_offset: u32,
    /// Byte position of the batch in the `.log` file.
    pub position: u32,
}

impl IndexRecord for IndexEntry {
    const LEN: usize = OFFSET_ENTRY_LEN;
    fn write_to(&self, out: &mut [u8]) {
        out[..4].copy_from_slice(&self.relative_offset.to_le_bytes());
        out[4..8].copy_from_slice(&self.position.to_le_bytes());
    }
    fn read_from(b: &[u8]) -> Self {
        IndexEntry {
            relative_offset: u32_at(b, 0),
            position: u32_at(b, 4),
        }
    }
}

/// One time-index entry: every record before `relative_offset` in the segment has a timestamp
/// `<= timestamp`, and `timestamp` is the largest of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    /// Largest timestamp of the records before `relative_offset`.
    pub timestamp: i64,
    /// A batch boundary, relative to the segment's base offset.
    pub relative_offset: u32,
}

impl IndexRecord for TimeEntry {
    const LEN: usize = TIME_ENTRY_LEN;
    fn write_to(&self, out: &mut [u8]) {
        out[..8].copy_from_slice(&self.timestamp.to_le_bytes());
        out[8..12].copy_from_slice(&self.relative_offset.to_le_bytes());
    }
    fn read_from(b: &[u8]) -> Self {
        TimeEntry {
            timestamp: i64_at(b, 0),
            relative_offset: u32_at(b, 8),
        }
    }
}

/// An index file of `E` entries: the sparse offset index ([`OffsetIndex`]) or the time index
/// ([`TimeIndex`]).
pub struct Index<E> {
    file: IndexFile,
    entry: PhantomData<E>,
}

/// The sparse offset index: one entry about every `index_interval_bytes` of log.
pub type OffsetIndex = Index<IndexEntry>;

/// The time index: maps "largest timestamp so far" to the offset where it was reached.
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

    /// True when opened sealed and its checksum trailer matched.
    pub fn is_verified(&self) -> bool {
        self.file.verified
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

    /// True when every entry is strictly above the one before it by `lt`.
    fn increasing(&self, lt: impl Fn(&E, &E) -> bool) -> bool {
        (1..self.len()).all(|i| lt(&self.get(i - 1), &self.get(i)))
    }

    fn push_unchecked(&mut self, entry: E) {
        let mut b = [0u8; TIME_ENTRY_LEN];
        entry.write_to(&mut b[..E::LEN]);
        self.file.push(&b[..E::LEN]);
    }

    /// Write the checksum trailer, trim to the entries and remap read-only.
    pub(crate) fn seal(&mut self) -> Result<()> {
        self.file.seal()
    }
}

impl OffsetIndex {
    /// Append an entry. Entries must grow strictly in both fields.
    pub(crate) fn push(&mut self, entry: IndexEntry) {
        if let Some(last) = self.last() {
            assert!(
                entry.relative_offset > last.relative_offset && entry.position > last.position,
                "offset index entries must increase"
            );
        }
        self.push_unchecked(entry);
    }

    /// Floor lookup: the last entry whose relative offset is `<= relative_offset`.
    pub fn lookup(&self, relative_offset: u32) -> Option<IndexEntry> {
        self.last_where(|e| e.relative_offset <= relative_offset)
    }

    /// Check the entries against a log of `log_len` bytes: both fields strictly increasing,
    /// positions inside the log. Entries are caches; a failed check means "rebuild".
    pub fn validate(&self, log_len: u64) -> bool {
        self.last().is_none_or(|e| u64::from(e.position) < log_len)
            && self
                .increasing(|a, b| a.relative_offset < b.relative_offset && a.position < b.position)
    }
}

impl TimeIndex {
    /// Append an entry unless it adds nothing (timestamp not above the last entry's) or the
    /// index is full. Returns whether it was added.
    pub(crate) fn push(&mut self, entry: TimeEntry) -> bool {
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
    /// may start: the last entry whose timestamp is `< target` (every record before it is older
    /// than `target`), or 0.
    pub fn lookup(&self, target: i64) -> u32 {
        self.last_where(|e| e.timestamp < target)
            .map_or(0, |e| e.relative_offset)
    }

    /// Check the entries: both fields strictly increasing, offsets within `relative_end`.
    pub fn validate(&self, relative_end: u64) -> bool {
        self.last()
            .is_none_or(|e| u64::from(e.relative_offset) <= relative_end)
            && self.increasing(|a, b| {
                a.timestamp < b.timestamp && a.relative_offset < b.relative_offset
            })
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
    fn fills_up_seals_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.index");
        // Room for four entries: three plus the trailer.
        let mut idx =
            OffsetIndex::open_writable(&Fs::Std, &path, 0, 4 * OFFSET_ENTRY_LEN + 5).unwrap();
        for i in 0..3u32 {
            assert!(!idx.is_full());
            idx.push(entry(i, i * 7));
        }
        assert!(idx.is_full());
        idx.seal().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 32);
        let again = OffsetIndex::open_read_only(&Fs::Std, &path).unwrap();
        assert!(again.is_verified());
        assert_eq!(again.len(), 3);
        assert_eq!(again.last(), Some(entry(2, 14)));
    }

    #[test]
    fn any_damage_to_a_sealed_index_fails_its_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.timeindex");
        let mut t = TimeIndex::open_writable(&Fs::Std, &path, 0, 120).unwrap();
        for i in 1..=4u32 {
            t.push(TimeEntry {
                timestamp: i64::from(i) * 100,
                relative_offset: i,
            });
        }
        t.seal().unwrap();
        drop(t);
        let good = std::fs::read(&path).unwrap();
        assert_eq!(good.len(), 5 * TIME_ENTRY_LEN);
        assert!(TimeIndex::open_read_only(&Fs::Std, &path)
            .unwrap()
            .is_verified());
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x10;
            std::fs::write(&path, &bad).unwrap();
            assert!(
                !TimeIndex::open_read_only(&Fs::Std, &path)
                    .unwrap()
                    .is_verified(),
                "byte {i}"
            );
        }
        std::fs::write(&path, &good[..good.len() - 1]).unwrap();
        assert!(!TimeIndex::open_read_only(&Fs::Std, &path)
            .unwrap()
            .is_verified());
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
        assert_eq!(sim.read_file(path).unwrap().len(), 4 * OFFSET_ENTRY_LEN);
        let again = OffsetIndex::open_read_only(&fs, path).unwrap();
        assert!(again.is_verified());
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
        assert_eq!(t.lookup(10), 0);
        assert_eq!(t.lookup(11), 5);
        assert_eq!(t.lookup(21), 9);
        assert!(t.validate(9));
        assert!(!t.validate(8));
    }
}
