//! [`FileOffsetStore`]: a durable offset store in one directory, a small compacted log.
//!
//! The design and the crash-recovery rules are documented on [`FileOffsetStore`]; the byte
//! layout is specified in `docs/format.md` ("Consumer offsets") and summarised here.
//!
//! # Format (all integers little-endian)
//!
//! ```text
//! header (32 bytes)
//!   0  4  magic "SLOS"
//!   4  4  format version u32 = 1
//!   8  8  generation u64 (must match the file name)
//!  16  8  snapshot_end u64: byte position where the commit entries start
//!  24  4  reserved, 0
//!  28  4  CRC-32 (IEEE) of bytes [0, 28)
//! entries, from byte 32: snapshot entries up to snapshot_end, then commit entries
//!   0  4  payload_len u32, 1 ..= ENTRY_PAYLOAD_BYTES_MAX (about 46 MB)
//!   4  4  payload_crc u32: CRC-32 of the payload
//!   8  4  header_crc u32: CRC-32 of the entry's bytes [0, 8)
//!  12  payload_len bytes:
//!         kind u8 (1 = snapshot chunk, 2 = commit), count u32 (1 ..= 10 000), then count items:
//!         group_len u16, group (UTF-8), topic_len u16, topic (UTF-8), partition u32,
//!         offset u64, metadata_len u32, metadata (UTF-8)
//! ```
//!
//! A commit is one commit entry; a snapshot is as many snapshot entries as it needs (each of
//! at most 10 000 items).

use std::path::{Path, PathBuf};

use parking_lot::{Mutex, RwLock};

use super::{
    validate_group_id, validate_offset_commit, CommittedOffset, OffsetMap, OffsetStore,
    GROUP_ID_BYTES_MAX, OFFSET_COMMIT_PARTITIONS_MAX, OFFSET_METADATA_BYTES_MAX,
    OFFSET_TOPIC_BYTES_MAX,
};
use crate::error::{CorruptKind, Error, IoContext, Result};
use crate::io::checkpoint::{self, sync_dir_in};
use crate::io::fs::{Fs, FsFile, FsLock, OpenFlags};
use crate::offset::{Offset, TopicPartition};

const LOG_PREFIX: &str = "offsets-";
const LOG_SUFFIX: &str = ".log";
const TMP_SUFFIX: &str = ".log.tmp";
const LOCK_FILE: &str = ".lock";

const MAGIC: &[u8; 4] = b"SLOS";
/// 2 since checksums are CRC-32C (Kafka's); version 1 files are refused as `BadVersion`.
const VERSION: u32 = 2;
const HEADER_LEN: usize = 32;
const HEADER_CRC_START: usize = 28;

const ENTRY_HEADER_LEN: usize = 12;
const KIND_SNAPSHOT: u8 = 1;
const KIND_COMMIT: u8 = 2;
/// kind u8 + count u32.
const PAYLOAD_PREFIX_LEN: usize = 5;
/// The fixed-size fields of an item: `group_len`, `topic_len`, partition, offset, `metadata_len`.
const ITEM_FIXED_LEN: usize = 2 + 2 + 4 + 8 + 4;
const ITEM_BYTES_MAX: usize =
    ITEM_FIXED_LEN + GROUP_ID_BYTES_MAX + OFFSET_TOPIC_BYTES_MAX + OFFSET_METADATA_BYTES_MAX;
/// Items per entry are bounded by the commit limit; snapshot chunks use the same bound.
const ENTRY_ITEMS_MAX: usize = OFFSET_COMMIT_PARTITIONS_MAX;
/// Largest payload a valid entry can have (about 46 MB).
const ENTRY_PAYLOAD_BYTES_MAX: usize = PAYLOAD_PREFIX_LEN + ENTRY_ITEMS_MAX * ITEM_BYTES_MAX;

/// Settings of a [`FileOffsetStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileOffsetStoreConfig {
    /// Compact the log (rewrite it as a snapshot of the live entries) once the commits
    /// appended since the last snapshot take at least this many bytes *and* at least twice
    /// the encoded size of the live entries. Any value is valid; smaller values compact more
    /// often. Default 1 MiB.
    pub compaction_bytes_min: u64,
    /// The file system the store lives on: the real one unless a test installed a simulated
    /// one (`with_file_system`, feature `testing`).
    pub(crate) fs: Fs,
}

impl Default for FileOffsetStoreConfig {
    fn default() -> Self {
        FileOffsetStoreConfig {
            compaction_bytes_min: 1 << 20,
            fs: Fs::Std,
        }
    }
}

impl FileOffsetStoreConfig {
    /// Set [`compaction_bytes_min`](Self::compaction_bytes_min).
    pub fn with_compaction_bytes_min(mut self, bytes: u64) -> Self {
        self.compaction_bytes_min = bytes;
        self
    }

    /// Puts the store on the simulated file system `sim` instead of the real one (feature
    /// `testing`), for power-loss and fault tests.
    #[cfg(feature = "testing")]
    pub fn with_file_system(mut self, sim: std::sync::Arc<crate::io::sim::SimFs>) -> Self {
        self.fs = Fs::Sim(sim);
        self
    }

    /// The same configuration on the file system `fs`.
    pub(crate) fn on(mut self, fs: &Fs) -> Self {
        self.fs = fs.clone();
        self
    }
}

/// A durable [`OffsetStore`]: a small compacted log in a directory of its own.
///
/// Durability: when `commit` returns `Ok`, the commit has been written and fsynced
/// (`fdatasync`): it survives a process crash and, given a disk that honours fsync, a power
/// loss. A crash during a commit leaves either the whole commit or none of it, and never loses
/// an earlier commit. After a failed write or fsync, `commit` returns
/// [`Error::PreviousIoFailed`] until the store is reopened (fetches keep working); the failed
/// commit is not visible before the reopen and may be, whole, after it.
///
/// Commits are serialised, each paying one fsync; fetches are served from memory and do not
/// wait for a commit's fsync. The directory is locked while the store is open: a second
/// `open` of it fails with [`Error::AlreadyOpen`]. The byte layout is specified in the
/// repository's `docs/format.md` ("Consumer offsets") and summarised at the top of
/// `src/group/offset_store/file.rs`.
///
/// # Design
///
/// The store's state (group -> partition -> committed offset) lives in memory; the disk holds
/// a log that rebuilds it. The directory contains one current log file,
/// `offsets-GGGGGGGGGGGGGGGGGGGG.log` (G = generation, 20 digits), plus the `.lock` file. The
/// log starts with a snapshot of every live entry, followed by one entry per commit:
///
/// - **commit** encodes the whole list as one entry (length, CRCs, payload), appends it with
///   one `write`, and `fdatasync`s before returning and before the entry becomes visible in
///   memory. One entry per commit makes the commit atomic; the CRC makes a torn append
///   detectable.
/// - **open** replays the snapshot and then the commit entries in order. Replay stops at a torn
///   tail (see below), which is cut off, so the state is always that of a prefix of the
///   commits that includes every acknowledged one: the previous commit is never lost.
/// - **compaction** bounds the growth: before a commit, when the commit entries take at least
///   [`FileOffsetStoreConfig::compaction_bytes_min`] bytes and at least twice the encoded
///   size of the live entries, the store writes generation G+1 = a snapshot of the live
///   entries to `offsets-(G+1).log.tmp`, fsyncs it, renames it into place, fsyncs the
///   directory and deletes generation G. Open uses the highest generation present (a crash
///   between rename and delete leaves two; the higher one is complete since it was fsynced
///   before its rename), deletes older ones and `*.log.tmp` leftovers. If compaction fails
///   before the rename, the old log stays in use and the commit that triggered it returns the
///   error, unapplied; a failure after the rename is treated like a failed write.
///
/// # Crash recovery and corruption
///
/// Commits are serialised and each one is synced before the next is written, so a crash can
/// damage only the last append: the bytes from the start of the last entry to the end of the
/// file. Each entry header carries its own CRC, so a length is trusted only once checked. At
/// open, a damaged entry is taken for such a torn tail, and cut off, when:
/// - fewer bytes than an entry header remain; or
/// - its header is valid and declares more payload than the file holds; or
/// - its header is valid, its payload ends exactly at the end of the file and fails its CRC; or
/// - its header fails its CRC (a partly written header, or zeros the file system left in place
///   of the data) and no valid entry starts anywhere after it.
///
/// Any other damage (a damaged entry with a valid one after it, a bad file header, a damaged
/// snapshot, a CRC-valid entry that does not decode) cannot come from a crash: `open` returns
/// [`Error::Corrupt`] rather than silently dropping acknowledged commits. Damage confined to
/// the last entry is indistinguishable from a torn append and costs that one commit. Every
/// length read from disk is checked against the format's limits and the bytes present before
/// it is used.
#[derive(Debug)]
pub struct FileOffsetStore {
    dir: PathBuf,
    config: FileOffsetStoreConfig,
    /// Serialises commits; held across the write and fsync of one commit.
    writer: Mutex<Writer>,
    /// What fetches see. Changed only with `writer` held, after the commit is durable.
    live: RwLock<Live>,
    _lock: FsLock,
}

#[derive(Debug)]
struct Writer {
    /// The current generation's log, opened for writing.
    file: FsFile,
    /// Its length: where the next entry is written.
    end: u64,
    path: PathBuf,
    generation: u64,
    /// Bytes of commit entries after the snapshot.
    log_bytes: u64,
    /// A write or fsync failed: refuse commits until reopen.
    failed: bool,
}

#[derive(Debug, Default)]
struct Live {
    map: OffsetMap,
    /// Sum of the encoded sizes of the live entries' items.
    live_bytes: u64,
}

impl Live {
    fn insert(&mut self, group: &str, tp: TopicPartition, committed: CommittedOffset) {
        let key_len = (ITEM_FIXED_LEN + group.len() + tp.topic.len()) as u64;
        self.live_bytes += key_len + committed.metadata.len() as u64;
        if let Some(old) = self.map.insert(group, tp, committed) {
            self.live_bytes -= key_len + old.metadata.len() as u64;
        }
    }
}

impl FileOffsetStore {
    /// Open (creating if needed) the store in `dir` with the default configuration.
    pub fn open(dir: impl AsRef<Path>) -> Result<FileOffsetStore> {
        Self::open_with(dir, FileOffsetStoreConfig::default())
    }

    /// Open (creating if needed) the store in `dir`: replay the log, cut off a torn tail,
    /// remove leftovers of an interrupted compaction.
    pub fn open_with(
        dir: impl AsRef<Path>,
        config: FileOffsetStoreConfig,
    ) -> Result<FileOffsetStore> {
        let dir = dir.as_ref().to_owned();
        let fs = &config.fs;
        checkpoint::create_dir_all_durable(fs, &dir)?;
        let lock = lock_dir(fs, &dir)?;
        let listing = list_dir(fs, &dir)?;
        let mut removed = false;
        for tmp in &listing.tmps {
            fs.remove_file(tmp).at(tmp)?;
            removed = true;
        }
        let (writer, live) = if let Some(&generation) = listing.generations.last() {
            load(fs, &dir, generation)?
        } else {
            let (file, path, end) = write_snapshot(fs, &dir, 0, &OffsetMap::default())?;
            let writer = Writer {
                file,
                end,
                path,
                generation: 0,
                log_bytes: 0,
                failed: false,
            };
            (writer, Live::default())
        };
        for &old in listing
            .generations
            .iter()
            .filter(|&&g| g < writer.generation)
        {
            let path = log_path(&dir, old);
            fs.remove_file(&path).at(&path)?;
            removed = true;
        }
        if removed {
            sync_dir_in(fs, &dir)?;
        }
        Ok(FileOffsetStore {
            dir,
            config,
            writer: Mutex::new(writer),
            live: RwLock::new(live),
            _lock: lock,
        })
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The configuration the store was opened with.
    pub fn config(&self) -> &FileOffsetStoreConfig {
        &self.config
    }

    /// Rewrite the log now as a snapshot of the live entries (commits also do this on their
    /// own, see [`FileOffsetStoreConfig::compaction_bytes_min`]). Durable when it returns;
    /// a crash at any point leaves either the old log or the new one, both complete.
    pub fn compact(&self) -> Result<()> {
        let mut w = self.writer.lock();
        if w.failed {
            return Err(Error::PreviousIoFailed);
        }
        self.compact_locked(&mut w)
    }

    fn compaction_due(&self, w: &Writer) -> bool {
        let live_bytes = self.live.read().live_bytes;
        w.log_bytes > 0
            && w.log_bytes >= self.config.compaction_bytes_min
            && w.log_bytes >= live_bytes.saturating_mul(2)
    }

    /// Replace the log with generation + 1, a snapshot of the live entries. Called with the
    /// writer lock held, so the live state cannot change meanwhile.
    fn compact_locked(&self, w: &mut Writer) -> Result<()> {
        self.rewrite_locked(w, None)
    }

    /// [`compact_locked`](Self::compact_locked) with the snapshot taken from `map` instead of
    /// the live entries (a deletion writes the entries that remain before fetches see it).
    fn rewrite_locked(&self, w: &mut Writer, map: Option<&OffsetMap>) -> Result<()> {
        // Only a crafted file name gets here; never reuse a name (the old file is deleted).
        let next = w.generation.checked_add(1).ok_or_else(|| Error::Corrupt {
            path: w.path.clone(),
            position: 8,
            reason: CorruptKind::BadCheckpoint,
        })?;
        let fs = &self.config.fs;
        let (file, path, end) = match map {
            Some(map) => write_snapshot(fs, &self.dir, next, map),
            None => write_snapshot(fs, &self.dir, next, &self.live.read().map),
        }
        .inspect_err(|_| {
            // The rename may have happened before the directory fsync failed: the next
            // commits cannot tell which file a reopen will use.
            if fs.exists(&log_path(&self.dir, next)).unwrap_or(true) {
                w.failed = true;
            }
        })?;
        let old = std::mem::replace(&mut w.path, path);
        w.file = file;
        w.end = end;
        w.generation = next;
        w.log_bytes = 0;
        // Obsolete now; if the removal fails, the next open removes it.
        let _ = fs.remove_file(&old);
        Ok(())
    }
}

impl OffsetStore for FileOffsetStore {
    fn commit(&self, group: &str, offsets: &[(TopicPartition, CommittedOffset)]) -> Result<()> {
        validate_offset_commit(group, offsets)?;
        if offsets.is_empty() {
            return Ok(());
        }
        let items: Vec<Item<'_>> = offsets.iter().map(|(tp, c)| (group, tp, c)).collect();
        let entry = encode_entry(KIND_COMMIT, &items);
        let mut w = self.writer.lock();
        if w.failed {
            return Err(Error::PreviousIoFailed);
        }
        if self.compaction_due(&w) {
            self.compact_locked(&mut w)?;
        }
        let w = &mut *w;
        let written = w.file.write_all_at(&entry, w.end);
        if let Err(e) = written.and_then(|()| w.file.sync_data()) {
            w.failed = true;
            return Err(Error::io(&w.path, e));
        }
        w.end += entry.len() as u64;
        w.log_bytes += entry.len() as u64;
        // Durable: now make it visible, still under the writer lock so that the order in
        // memory is the order on disk.
        let mut live = self.live.write();
        for (tp, committed) in offsets {
            live.insert(group, tp.clone(), committed.clone());
        }
        Ok(())
    }

    fn fetch(&self, group: &str, partition: &TopicPartition) -> Result<Option<CommittedOffset>> {
        validate_group_id(group)?;
        Ok(self.live.read().map.fetch(group, partition))
    }

    fn fetch_group(&self, group: &str) -> Result<Vec<(TopicPartition, CommittedOffset)>> {
        validate_group_id(group)?;
        Ok(self.live.read().map.fetch_group(group))
    }

    /// Rewrites the log as a snapshot without the removed entries (fsynced, renamed), then
    /// shows the removal: as durable as a commit, and invisible until it is.
    fn delete(&self, group: &str, partitions: Option<&[TopicPartition]>) -> Result<()> {
        validate_group_id(group)?;
        let mut w = self.writer.lock();
        if w.failed {
            return Err(Error::PreviousIoFailed);
        }
        let mut remaining = self.live.read().map.clone();
        if remaining.remove(group, partitions) == 0 {
            return Ok(());
        }
        self.rewrite_locked(&mut w, Some(&remaining))?;
        let mut live = Live::default();
        for (g, tp, c) in remaining.iter() {
            live.insert(g, tp.clone(), c.clone());
        }
        *self.live.write() = live;
        Ok(())
    }
}

fn lock_dir(fs: &Fs, dir: &Path) -> Result<FsLock> {
    checkpoint::try_lock_file(fs, &dir.join(LOCK_FILE))?.ok_or_else(|| Error::AlreadyOpen {
        path: dir.to_owned(),
    })
}

fn log_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("{LOG_PREFIX}{generation:020}{LOG_SUFFIX}"))
}

fn tmp_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("{LOG_PREFIX}{generation:020}{TMP_SUFFIX}"))
}

struct Listing {
    /// Generations of the log files present, ascending.
    generations: Vec<u64>,
    /// Temp files of interrupted compactions.
    tmps: Vec<PathBuf>,
}

fn list_dir(fs: &Fs, dir: &Path) -> Result<Listing> {
    let mut listing = Listing {
        generations: Vec::new(),
        tmps: Vec::new(),
    };
    for name in fs.list_dir(dir).at(dir)? {
        let Some(rest) = name.strip_prefix(LOG_PREFIX) else {
            continue;
        };
        if rest.ends_with(TMP_SUFFIX) {
            listing.tmps.push(dir.join(&name));
        } else if let Some(digits) = rest.strip_suffix(LOG_SUFFIX) {
            if digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()) {
                if let Ok(g) = digits.parse() {
                    listing.generations.push(g);
                }
            }
        }
    }
    listing.generations.sort_unstable();
    Ok(listing)
}

/// Write `map` as generation `generation`: temp file, fsync, rename, directory fsync.
/// Returns the new file, opened for writing, its path and its length.
fn write_snapshot(
    fs: &Fs,
    dir: &Path,
    generation: u64,
    map: &OffsetMap,
) -> Result<(FsFile, PathBuf, u64)> {
    let bytes = encode_snapshot(generation, map);
    let tmp = tmp_path(dir, generation);
    let path = log_path(dir, generation);
    let written = (|| {
        let f = fs.open(&tmp, OpenFlags::CREATE_TRUNCATE)?;
        f.write_all_at(&bytes, 0)?;
        f.sync_all()?;
        fs.rename(&tmp, &path)
    })();
    if let Err(e) = written {
        let _ = fs.remove_file(&tmp);
        return Err(Error::io(&tmp, e));
    }
    sync_dir_in(fs, dir)?;
    let file = fs.open(&path, OpenFlags::WRITE).at(&path)?;
    Ok((file, path, bytes.len() as u64))
}

/// Replay generation `generation`'s log; cut off a torn tail.
fn load(fs: &Fs, dir: &Path, generation: u64) -> Result<(Writer, Live)> {
    let path = log_path(dir, generation);
    let bytes = fs.read(&path).at(&path)?;
    let corrupt = |position: usize, reason: CorruptKind| Error::Corrupt {
        path: path.clone(),
        position: position as u64,
        reason,
    };
    let snapshot_end = parse_header(&bytes, generation).map_err(|k| corrupt(0, k))?;
    let mut live = Live::default();

    // The snapshot was complete before the file got its name: any damage is corruption.
    let mut pos = HEADER_LEN;
    while pos < snapshot_end {
        match read_entry(&bytes[..snapshot_end], pos) {
            EntryRead::Valid { kind, items, end } if kind == KIND_SNAPSHOT => {
                for (group, tp, committed) in items {
                    live.insert(&group, tp, committed);
                }
                pos = end;
            }
            EntryRead::Valid { .. } => return Err(corrupt(pos, CorruptKind::BadRecords)),
            EntryRead::Torn => return Err(corrupt(pos, CorruptKind::Truncated)),
            EntryRead::Bad(kind) => return Err(corrupt(pos, kind)),
        }
    }

    let mut torn_at = None;
    while pos < bytes.len() {
        match read_entry(&bytes, pos) {
            EntryRead::Valid { kind, items, end } if kind == KIND_COMMIT => {
                for (group, tp, committed) in items {
                    live.insert(&group, tp, committed);
                }
                pos = end;
            }
            EntryRead::Valid { .. } => return Err(corrupt(pos, CorruptKind::BadRecords)),
            EntryRead::Torn => {
                torn_at = Some(pos);
                break;
            }
            EntryRead::Bad(kind) => return Err(corrupt(pos, kind)),
        }
    }

    let file = fs.open(&path, OpenFlags::WRITE).at(&path)?;
    if let Some(end) = torn_at {
        file.set_len(end as u64).at(&path)?;
    }
    // The commits replayed may be cached bytes a failed fsync left off the disk (Linux marks
    // the pages clean): write them again so that this fsync covers them before new commits
    // are appended after them.
    file.rewrite(snapshot_end as u64, pos as u64).at(&path)?;
    file.sync_all().at(&path)?;
    let writer = Writer {
        file,
        end: pos as u64,
        path,
        generation,
        log_bytes: (pos - snapshot_end) as u64,
        failed: false,
    };
    Ok((writer, live))
}

/// Check the header; returns `snapshot_end`.
fn parse_header(bytes: &[u8], generation: u64) -> Result<usize, CorruptKind> {
    let Some(header) = bytes.get(..HEADER_LEN) else {
        return Err(CorruptKind::Truncated);
    };
    if &header[..4] != MAGIC {
        return Err(CorruptKind::BadCheckpoint);
    }
    if le_u32(header, 4) != VERSION {
        return Err(CorruptKind::BadVersion);
    }
    if crate::format::crc::crc32c(&header[..HEADER_CRC_START]) != le_u32(header, HEADER_CRC_START) {
        return Err(CorruptKind::Crc);
    }
    if le_u64(header, 8) != generation {
        return Err(CorruptKind::BadCheckpoint);
    }
    let snapshot_end = usize::try_from(le_u64(header, 16)).map_err(|_| CorruptKind::BadLength)?;
    if snapshot_end < HEADER_LEN || snapshot_end > bytes.len() {
        return Err(CorruptKind::BadLength);
    }
    Ok(snapshot_end)
}

type Item<'a> = (&'a str, &'a TopicPartition, &'a CommittedOffset);

/// A decoded item: group, partition, committed offset.
type OwnedItem = (String, TopicPartition, CommittedOffset);

enum EntryRead {
    Valid {
        kind: u8,
        items: Vec<OwnedItem>,
        /// Byte position after the entry.
        end: usize,
    },
    /// The remains of an interrupted append: everything from here to the end of the buffer.
    Torn,
    /// Damage no crash can produce.
    Bad(CorruptKind),
}

/// Read the entry starting at `pos` of `buf` (which ends where the region being read ends).
fn read_entry(buf: &[u8], pos: usize) -> EntryRead {
    let rest = &buf[pos..];
    if rest.len() < ENTRY_HEADER_LEN {
        return EntryRead::Torn;
    }
    if !header_ok(rest) {
        // A torn header is the last thing in the file; corruption has valid entries after it.
        return if (pos + 1..buf.len()).any(|q| entry_ok(&buf[q..])) {
            EntryRead::Bad(CorruptKind::Crc)
        } else {
            EntryRead::Torn
        };
    }
    let len = le_u32(rest, 0) as usize;
    if len == 0 || len > ENTRY_PAYLOAD_BYTES_MAX {
        return EntryRead::Bad(CorruptKind::BadLength);
    }
    let available = rest.len() - ENTRY_HEADER_LEN;
    if len > available {
        return EntryRead::Torn;
    }
    let payload = &rest[ENTRY_HEADER_LEN..ENTRY_HEADER_LEN + len];
    if crate::format::crc::crc32c(payload) != le_u32(rest, 4) {
        // The length is genuine: data after this entry means it was not the last append.
        return if len == available {
            EntryRead::Torn
        } else {
            EntryRead::Bad(CorruptKind::Crc)
        };
    }
    match decode_payload(payload) {
        Some((kind, items)) => EntryRead::Valid {
            kind,
            items,
            end: pos + ENTRY_HEADER_LEN + len,
        },
        None => EntryRead::Bad(CorruptKind::BadRecords),
    }
}

/// The entry header at the start of `rest` (at least `ENTRY_HEADER_LEN` bytes) is intact.
fn header_ok(rest: &[u8]) -> bool {
    crate::format::crc::crc32c(&rest[..8]) == le_u32(rest, 8)
}

/// A whole, CRC-valid entry starts at the start of `rest`.
fn entry_ok(rest: &[u8]) -> bool {
    if rest.len() < ENTRY_HEADER_LEN || !header_ok(rest) {
        return false;
    }
    let len = le_u32(rest, 0) as usize;
    (1..=ENTRY_PAYLOAD_BYTES_MAX).contains(&len)
        && len <= rest.len() - ENTRY_HEADER_LEN
        && crate::format::crc::crc32c(&rest[ENTRY_HEADER_LEN..ENTRY_HEADER_LEN + len])
            == le_u32(rest, 4)
}

fn item_len(group: &str, tp: &TopicPartition, c: &CommittedOffset) -> usize {
    ITEM_FIXED_LEN + group.len() + tp.topic.len() + c.metadata.len()
}

/// Append one entry holding `items` (validated: within the format's limits) to `out`.
fn push_entry(out: &mut Vec<u8>, kind: u8, items: &[Item<'_>]) {
    assert!(!items.is_empty() && items.len() <= ENTRY_ITEMS_MAX);
    let start = out.len();
    out.extend_from_slice(&[0; ENTRY_HEADER_LEN]);
    out.push(kind);
    out.extend_from_slice(&(items.len() as u32).to_le_bytes());
    for &(group, tp, c) in items {
        assert!(group.len() <= GROUP_ID_BYTES_MAX && tp.topic.len() <= OFFSET_TOPIC_BYTES_MAX);
        assert!(c.metadata.len() <= OFFSET_METADATA_BYTES_MAX);
        out.extend_from_slice(&(group.len() as u16).to_le_bytes());
        out.extend_from_slice(group.as_bytes());
        out.extend_from_slice(&(tp.topic.len() as u16).to_le_bytes());
        out.extend_from_slice(tp.topic.as_bytes());
        out.extend_from_slice(&tp.partition.to_le_bytes());
        out.extend_from_slice(&c.offset.0.to_le_bytes());
        out.extend_from_slice(&(c.metadata.len() as u32).to_le_bytes());
        out.extend_from_slice(c.metadata.as_bytes());
    }
    let len = out.len() - start - ENTRY_HEADER_LEN;
    assert!(len <= ENTRY_PAYLOAD_BYTES_MAX);
    let payload_crc = crate::format::crc::crc32c(&out[start + ENTRY_HEADER_LEN..]);
    out[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&payload_crc.to_le_bytes());
    let header_crc = crate::format::crc::crc32c(&out[start..start + 8]);
    out[start + 8..start + 12].copy_from_slice(&header_crc.to_le_bytes());
}

fn encode_entry(kind: u8, items: &[Item<'_>]) -> Vec<u8> {
    let size = ENTRY_HEADER_LEN
        + PAYLOAD_PREFIX_LEN
        + items
            .iter()
            .map(|&(g, tp, c)| item_len(g, tp, c))
            .sum::<usize>();
    let mut out = Vec::with_capacity(size);
    push_entry(&mut out, kind, items);
    out
}

/// A whole log file holding `map` as its snapshot and no commits.
fn encode_snapshot(generation: u64, map: &OffsetMap) -> Vec<u8> {
    let mut out = vec![0; HEADER_LEN];
    let items: Vec<Item<'_>> = map.iter().collect();
    for chunk in items.chunks(ENTRY_ITEMS_MAX) {
        push_entry(&mut out, KIND_SNAPSHOT, chunk);
    }
    let snapshot_end = out.len() as u64;
    out[..4].copy_from_slice(MAGIC);
    out[4..8].copy_from_slice(&VERSION.to_le_bytes());
    out[8..16].copy_from_slice(&generation.to_le_bytes());
    out[16..24].copy_from_slice(&snapshot_end.to_le_bytes());
    let crc = crate::format::crc::crc32c(&out[..HEADER_CRC_START]);
    out[HEADER_CRC_START..HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Decode a CRC-checked payload; `None` if it breaks any rule of the format.
fn decode_payload(payload: &[u8]) -> Option<(u8, Vec<OwnedItem>)> {
    let mut r = Reader(payload);
    let kind = r.take(1)?[0];
    if kind != KIND_SNAPSHOT && kind != KIND_COMMIT {
        return None;
    }
    let count = r.u32()? as usize;
    if count == 0 || count > ENTRY_ITEMS_MAX || count > r.0.len() / ITEM_FIXED_LEN {
        return None;
    }
    let mut items = Vec::with_capacity(count);
    for _ in 0..count {
        let group = r.str16(GROUP_ID_BYTES_MAX)?;
        let topic = r.str16(OFFSET_TOPIC_BYTES_MAX)?;
        if group.is_empty() || topic.is_empty() {
            return None;
        }
        let partition = r.u32()?;
        let offset = Offset(r.u64()?);
        let metadata = r.str32(OFFSET_METADATA_BYTES_MAX)?;
        items.push((
            group.to_owned(),
            TopicPartition::new(topic, partition),
            CommittedOffset {
                offset,
                metadata: metadata.to_owned(),
            },
        ));
    }
    r.0.is_empty().then_some((kind, items))
}

/// A cursor over a payload; every read is bounds-checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    /// A string with a u16 length prefix of at most `max` bytes.
    fn str16(&mut self, max: usize) -> Option<&'a str> {
        let len = usize::from(self.u16()?);
        self.str(len, max)
    }

    /// A string with a u32 length prefix of at most `max` bytes.
    fn str32(&mut self, max: usize) -> Option<&'a str> {
        let len = usize::try_from(self.u32()?).ok()?;
        self.str(len, max)
    }

    fn str(&mut self, len: usize, max: usize) -> Option<&'a str> {
        if len > max {
            return None;
        }
        std::str::from_utf8(self.take(len)?).ok()
    }
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(group: &str, topic: &str, p: u32, o: u64, m: &str) -> OwnedItem {
        (
            group.to_owned(),
            TopicPartition::new(topic, p),
            CommittedOffset::new(Offset(o)).with_metadata(m),
        )
    }

    #[test]
    fn entry_roundtrip() {
        let items = [
            item("g", "t", 0, 5, ""),
            item("g2", "topic", u32::MAX, u64::MAX, "é"),
        ];
        let refs: Vec<Item<'_>> = items.iter().map(|(g, tp, c)| (g.as_str(), tp, c)).collect();
        let bytes = encode_entry(KIND_COMMIT, &refs);
        match read_entry(&bytes, 0) {
            EntryRead::Valid {
                kind,
                items: got,
                end,
            } => {
                assert_eq!(kind, KIND_COMMIT);
                assert_eq!(got, items);
                assert_eq!(end, bytes.len());
            }
            _ => panic!("entry did not decode"),
        }
    }

    #[test]
    fn torn_and_bad_entries() {
        let items = [item("g", "t", 0, 5, "meta")];
        let refs: Vec<Item<'_>> = items.iter().map(|(g, tp, c)| (g.as_str(), tp, c)).collect();
        let one = encode_entry(KIND_COMMIT, &refs);
        // Every proper prefix is a torn tail.
        for cut in 0..one.len() {
            assert!(
                matches!(read_entry(&one[..cut], 0), EntryRead::Torn),
                "cut {cut}"
            );
        }
        // A flipped payload byte in the last entry is torn; with an entry after it, corrupt.
        let mut two = one.clone();
        two.extend_from_slice(&one);
        two[ENTRY_HEADER_LEN + 3] ^= 1;
        assert!(matches!(read_entry(&two[..one.len()], 0), EntryRead::Torn));
        assert!(matches!(
            read_entry(&two, 0),
            EntryRead::Bad(CorruptKind::Crc)
        ));
        // A damaged header: the end of the log if nothing valid follows, else corruption.
        let mut two = one.clone();
        two.extend_from_slice(&one);
        two[1] ^= 1;
        assert!(matches!(read_entry(&two[..one.len()], 0), EntryRead::Torn));
        assert!(matches!(
            read_entry(&two, 0),
            EntryRead::Bad(CorruptKind::Crc)
        ));
        // Zeros (size extended, data lost) are the end.
        assert!(matches!(read_entry(&[0; 64], 0), EntryRead::Torn));
    }

    #[test]
    fn decode_rejects_inconsistent_payloads() {
        // Huge count with few bytes: no allocation, no panic.
        let mut p = vec![KIND_COMMIT];
        p.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_payload(&p).is_none());
        // Unknown kind, zero count, trailing bytes.
        assert!(decode_payload(&[9, 1, 0, 0, 0]).is_none());
        assert!(decode_payload(&[KIND_COMMIT, 0, 0, 0, 0]).is_none());
        let items = [item("g", "t", 0, 5, "")];
        let refs: Vec<Item<'_>> = items.iter().map(|(g, tp, c)| (g.as_str(), tp, c)).collect();
        let mut payload = encode_entry(KIND_COMMIT, &refs)[ENTRY_HEADER_LEN..].to_vec();
        assert!(decode_payload(&payload).is_some());
        payload.push(0);
        assert!(decode_payload(&payload).is_none());
    }

    #[test]
    fn snapshot_header_roundtrip() {
        let mut map = OffsetMap::default();
        map.insert(
            "g",
            TopicPartition::new("t", 1),
            CommittedOffset::new(Offset(3)),
        );
        let bytes = encode_snapshot(7, &map);
        let end = parse_header(&bytes, 7).unwrap();
        assert_eq!(end, bytes.len());
        assert_eq!(parse_header(&bytes, 8), Err(CorruptKind::BadCheckpoint));
        assert_eq!(parse_header(&bytes[..20], 7), Err(CorruptKind::Truncated));
        let mut bad = bytes.clone();
        bad[17] ^= 1;
        assert_eq!(parse_header(&bad, 7), Err(CorruptKind::Crc));
    }
}
