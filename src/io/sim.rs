//! A simulated file system, in memory, that can lose power and inject faults (feature
//! `testing`). Public as `seglog::testing::SimFs`; install it in a partition with
//! `PartitionConfig::with_file_system`.
//!
//! The model is documented on [`SimFs`] (public as `seglog::testing::SimFs`).

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

use crate::io::fs::{FileHandle, FileSystem, OpenFlags, WritableMap};

/// Size of a sector: a torn write keeps whole sectors.
pub const SECTOR_BYTES: u64 = 512;

// Linux error numbers.
const EIO: i32 = 5;
const EBADF: i32 = 9;
const EEXIST: i32 = 17;
const ENOTDIR: i32 = 20;
const EISDIR: i32 = 21;
const ENOSPC: i32 = 28;

/// A kind of file-system operation, to restrict a fault to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SimOp {
    /// Opening or creating a file (and taking a lock file).
    Open,
    /// Reading a file, or its length.
    Read,
    /// A positioned write.
    Write,
    /// Truncating or extending a file.
    SetLen,
    /// `sync_data` or `sync_all` of a file.
    Sync,
    /// Mapping a file.
    Map,
    /// Creating directories.
    CreateDir,
    /// Listing a directory, or asking whether a path exists.
    List,
    /// Removing a file.
    Remove,
    /// Renaming a file.
    Rename,
    /// Syncing a directory.
    SyncDir,
}

/// The error an injected fault fails an operation with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SimError {
    /// `EIO`: the device failed.
    Eio,
    /// `ENOSPC`: the disk is full (`ErrorKind::StorageFull`).
    Enospc,
}

impl SimError {
    fn to_io(self) -> io::Error {
        io::Error::from_raw_os_error(match self {
            SimError::Eio => EIO,
            SimError::Enospc => ENOSPC,
        })
    }
}

struct Fault {
    op: Option<SimOp>,
    error: SimError,
    /// Matching operations left until it fires (1: the next one).
    countdown: u64,
    /// Fires again every this many matching operations.
    every: Option<u64>,
}

/// A change to a file not yet made durable.
enum Change {
    Write { at: u64, bytes: Vec<u8> },
    SetLen(u64),
}

#[derive(Default)]
struct Inode {
    data: Vec<u8>,
    durable: Vec<u8>,
    pending: Vec<Change>,
}

fn write_into(data: &mut Vec<u8>, at: u64, bytes: &[u8]) {
    let at = usize::try_from(at).expect("simulated files fit in memory");
    if data.len() < at + bytes.len() {
        resize_zeroed(data, at + bytes.len());
    }
    data[at..at + bytes.len()].copy_from_slice(bytes);
}

fn set_len_of(data: &mut Vec<u8>, len: u64) {
    resize_zeroed(
        data,
        usize::try_from(len).expect("simulated files fit in memory"),
    );
}

/// `data.resize(len, 0)`, growing by a zeroed allocation and a copy when the growth is large:
/// index files are preallocated to megabytes, and `resize` fills byte by byte in unoptimised
/// test builds.
fn resize_zeroed(data: &mut Vec<u8>, len: usize) {
    if len <= data.len() {
        data.truncate(len);
    } else if len - data.len() > 64 * 1024 {
        let mut grown = vec![0u8; len];
        grown[..data.len()].copy_from_slice(data);
        *data = grown;
    } else {
        // Small growth (appends): amortised by `Vec`'s doubling.
        data.resize(len, 0);
    }
}

impl Inode {
    fn write(&mut self, at: u64, bytes: &[u8]) {
        write_into(&mut self.data, at, bytes);
        self.pending.push(Change::Write {
            at,
            bytes: bytes.to_vec(),
        });
    }

    fn set_len(&mut self, len: u64) {
        set_len_of(&mut self.data, len);
        self.pending.push(Change::SetLen(len));
    }

    fn sync(&mut self) {
        self.durable.clone_from(&self.data);
        self.pending.clear();
    }

    /// The durable bytes plus a prefix, chosen by `rng`, of the pending changes cut into
    /// sector-sized pieces (a write is split where it crosses a sector boundary).
    fn torn(&self, rng: &mut Rng) -> Vec<u8> {
        let mut pieces: Vec<(u64, Option<&[u8]>)> = Vec::new();
        for change in &self.pending {
            match change {
                Change::SetLen(len) => pieces.push((*len, None)),
                Change::Write { at, bytes } => {
                    let mut off = 0usize;
                    while off < bytes.len() {
                        let pos = at + off as u64;
                        let room = (SECTOR_BYTES - pos % SECTOR_BYTES) as usize;
                        let n = room.min(bytes.len() - off);
                        pieces.push((pos, Some(&bytes[off..off + n])));
                        off += n;
                    }
                }
            }
        }
        let keep = rng.below(pieces.len() as u64 + 1) as usize;
        let mut data = self.durable.clone();
        for (at, bytes) in &pieces[..keep] {
            match bytes {
                Some(b) => write_into(&mut data, *at, b),
                None => set_len_of(&mut data, *at),
            }
        }
        data
    }
}

/// splitmix64: small, deterministic, good enough to pick torn prefixes.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n
    }
}

#[derive(Default)]
struct State {
    inodes: BTreeMap<u64, Inode>,
    names: BTreeMap<PathBuf, u64>,
    durable_names: BTreeMap<PathBuf, u64>,
    dirs: BTreeSet<PathBuf>,
    next_inode: u64,
    /// Held lock files and the token of their holder.
    locks: BTreeMap<PathBuf, u64>,
    next_token: u64,
    /// Bumped by a power loss: handles of an earlier epoch are dead.
    epoch: u64,
    operations: u64,
    faults: Vec<Fault>,
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file", path.display()),
    )
}

impl State {
    /// Count one operation of kind `op` and fail it if a fault fires.
    fn begin(&mut self, op: SimOp) -> io::Result<()> {
        self.operations += 1;
        let mut fired = None;
        self.faults.retain_mut(|f| {
            if f.op.is_some_and(|o| o != op) {
                return true;
            }
            f.countdown -= 1;
            if f.countdown > 0 {
                return true;
            }
            fired.get_or_insert(f.error);
            match f.every {
                Some(n) => {
                    f.countdown = n;
                    true
                }
                None => false,
            }
        });
        fired.map_or(Ok(()), |e| Err(e.to_io()))
    }

    fn dir_exists(&self, dir: &Path) -> bool {
        dir.as_os_str().is_empty() || self.dirs.contains(dir)
    }

    fn check_parent(&self, path: &Path) -> io::Result<()> {
        match path.parent() {
            Some(p) if !self.dir_exists(p) => Err(not_found(p)),
            _ => Ok(()),
        }
    }

    fn open(&mut self, path: &Path, flags: OpenFlags) -> io::Result<u64> {
        self.check_parent(path)?;
        if self.dirs.contains(path) {
            return Err(io::Error::from_raw_os_error(EISDIR));
        }
        let ino = match self.names.get(path) {
            Some(_) if flags.create_new => return Err(io::Error::from_raw_os_error(EEXIST)),
            Some(&ino) => ino,
            None if flags.create || flags.create_new => {
                self.next_inode += 1;
                let ino = self.next_inode;
                self.inodes.insert(ino, Inode::default());
                self.names.insert(path.to_owned(), ino);
                ino
            }
            None => return Err(not_found(path)),
        };
        if flags.truncate && flags.write {
            self.inode(ino)?.set_len(0);
        }
        Ok(ino)
    }

    fn inode(&mut self, ino: u64) -> io::Result<&mut Inode> {
        self.inodes
            .get_mut(&ino)
            .ok_or_else(|| io::Error::from_raw_os_error(EIO))
    }

    fn named(&mut self, path: &Path) -> io::Result<&mut Inode> {
        let ino = *self.names.get(path).ok_or_else(|| not_found(path))?;
        self.inode(ino)
    }

    fn create_dir_all(&mut self, dir: &Path) -> io::Result<()> {
        for a in dir.ancestors() {
            if self.names.contains_key(a) {
                return Err(io::Error::from_raw_os_error(ENOTDIR));
            }
        }
        for a in dir.ancestors().filter(|a| !a.as_os_str().is_empty()) {
            self.dirs.insert(a.to_owned());
        }
        Ok(())
    }

    fn sync_dir(&mut self, dir: &Path) -> io::Result<()> {
        if !self.dir_exists(dir) {
            return Err(not_found(dir));
        }
        let in_dir = |p: &PathBuf| p.parent() == Some(dir);
        self.durable_names.retain(|p, _| !in_dir(p));
        let current: Vec<_> = self
            .names
            .iter()
            .filter(|(p, _)| in_dir(p))
            .map(|(p, i)| (p.clone(), *i))
            .collect();
        self.durable_names.extend(current);
        Ok(())
    }

    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        self.check_parent(to)?;
        if self.dirs.contains(to) {
            return Err(io::Error::from_raw_os_error(EISDIR));
        }
        let ino = self.names.remove(from).ok_or_else(|| not_found(from))?;
        self.names.insert(to.to_owned(), ino);
        Ok(())
    }

    fn lose_power(&mut self, mut rng: Option<Rng>) {
        self.names = self.durable_names.clone();
        let live: BTreeSet<u64> = self.names.values().copied().collect();
        self.inodes.retain(|ino, _| live.contains(ino));
        for inode in self.inodes.values_mut() {
            inode.data = match &mut rng {
                Some(r) => inode.torn(r),
                None => inode.durable.clone(),
            };
            inode.sync();
        }
        self.locks.clear();
        self.epoch += 1;
    }
}

/// An in-memory file system that tracks what is durable, can lose power and can fail
/// operations on demand.
///
/// # Model
/// - A file is an inode holding two byte strings: what was written (what every read and map
///   sees) and what is *durable*. `sync_data`/`sync_all` of a file (or [`SimFs::sync_file`])
///   makes its written bytes durable. Writes since the last sync are also kept, in order, for
///   [`SimFs::power_loss_torn`].
/// - A directory holds names that point to inodes, and the *durable* set of its names: a
///   creation, rename or removal becomes durable when its directory is synced
///   ([`SimFs::sync_dir`]). Directories themselves are durable as soon as they are created
///   (the seam's `create_dir_all` promises that; the std implementation fsyncs the parents).
/// - [`SimFs::power_loss`] drops everything that is not durable: every directory's names revert
///   to its durable set (a file whose name never became durable is gone, a rename not yet
///   synced is undone), every file's bytes revert to its durable bytes, and every lock is
///   released. Handles opened before the power loss fail with `EIO` from then on, as a process
///   that died cannot write any more. Operations by path are not fenced that way: drop (or
///   `simulate_crash`) a partition opened before a power loss rather than keep using it.
/// - Memory maps are copies: a read-only map is a copy of (at most) the file's current bytes,
///   so readers map again when they need more; a writable map (an index file) is a heap buffer
///   that reaches the file only when the index writes it back, when it is sealed. Under the
///   simulation an index is therefore durable only after that write-back and a later sync, and
///   an active segment's index is lost by a crash: indexes are caches, rebuilt from the log
///   when in doubt.
/// - Faults: [`SimFs::fail_nth`] and [`SimFs::fail_every`] make an operation fail with `EIO`
///   or `ENOSPC` (a real `std::io::Error` with that raw OS error). Every operation, of a file
///   or of the file system, counts one ([`SimFs::operations`]), in call order, so the same test
///   fails at the same place every run. A failed operation changes nothing.
///
/// Share it as an `Arc<SimFs>` between the partition
/// ([`PartitionConfig::with_file_system`](crate::PartitionConfig::with_file_system)) and the
/// test, which drives power losses and faults and may inspect or change files directly with
/// the methods below. Paths are only names inside the simulation: nothing touches the disk.
///
/// ```
/// # fn main() -> seglog::Result<()> {
/// use std::sync::Arc;
/// use seglog::testing::SimFs;
/// use seglog::{Partition, PartitionConfig, Record};
///
/// let sim = Arc::new(SimFs::new());
/// // The default durability, `SyncEachAppend`, fsyncs before acknowledging.
/// let config = PartitionConfig::default().with_file_system(sim.clone());
/// let p = Partition::open("/data/p0", config.clone())?;
/// p.append(&[Record::new("acknowledged")])?;
/// p.simulate_crash();
/// sim.power_loss();
/// let p = Partition::open("/data/p0", config)?;
/// assert_eq!(p.log_end_offset().0, 1);
/// # Ok(())
/// # }
/// ```
#[derive(Default)]
pub struct SimFs {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for SimFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.state.lock();
        f.debug_struct("SimFs")
            .field("files", &s.names.len())
            .field("operations", &s.operations)
            .finish_non_exhaustive()
    }
}

impl SimFs {
    /// An empty file system: no files, no directories, no faults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Drop everything that is not durable: unsynced writes, and names not made durable by a
    /// directory sync; release all locks; kill every open handle.
    pub fn power_loss(&self) {
        self.state.lock().lose_power(None);
    }

    /// As [`power_loss`](SimFs::power_loss), but each file keeps a prefix, chosen at random
    /// from `seed`, of its unsynced changes in the order they were made, torn at
    /// [`SECTOR_BYTES`] boundaries: a write crossing a sector boundary may survive in part.
    /// The same seed and history give the same result.
    pub fn power_loss_torn(&self, seed: u64) {
        self.state.lock().lose_power(Some(Rng(seed)));
    }

    /// Fail the `n`th operation from now (1: the next one) with `error`; with `op`, count only
    /// operations of that kind.
    pub fn fail_nth(&self, n: u64, op: Option<SimOp>, error: SimError) {
        self.add_fault(n, op, error, None);
    }

    /// Fail every `n`th operation from now on (the `n`th, `2n`th, ...) with `error`; with `op`,
    /// count only operations of that kind. Lasts until [`clear_faults`](SimFs::clear_faults).
    pub fn fail_every(&self, n: u64, op: Option<SimOp>, error: SimError) {
        self.add_fault(n, op, error, Some(n));
    }

    /// Fail the next operation of kind `op` with `error` (once).
    pub fn fail_next(&self, op: SimOp, error: SimError) {
        self.fail_nth(1, Some(op), error);
    }

    fn add_fault(&self, n: u64, op: Option<SimOp>, error: SimError, every: Option<u64>) {
        assert!(n > 0, "operations are counted from 1");
        self.state.lock().faults.push(Fault {
            op,
            error,
            countdown: n,
            every,
        });
    }

    /// Remove every pending fault.
    pub fn clear_faults(&self) {
        self.state.lock().faults.clear();
    }

    /// Operations performed so far (failed ones included).
    pub fn operations(&self) -> u64 {
        self.state.lock().operations
    }

    /// Create `dir` and its parents (one [`SimOp::CreateDir`] operation).
    pub fn create_dir_all(&self, dir: impl AsRef<Path>) -> io::Result<()> {
        let mut s = self.state.lock();
        s.begin(SimOp::CreateDir)?;
        s.create_dir_all(dir.as_ref())
    }

    /// Write `bytes` at byte `at` of the file at `path`, creating it if needed (one
    /// [`SimOp::Write`] operation). Not durable until synced.
    pub fn write_file(&self, path: impl AsRef<Path>, at: u64, bytes: &[u8]) -> io::Result<()> {
        let mut s = self.state.lock();
        s.begin(SimOp::Write)?;
        let ino = s.open(path.as_ref(), OpenFlags::CREATE)?;
        s.inode(ino)?.write(at, bytes);
        Ok(())
    }

    /// The current (not necessarily durable) bytes of the file at `path` (one
    /// [`SimOp::Read`] operation).
    pub fn read_file(&self, path: impl AsRef<Path>) -> io::Result<Vec<u8>> {
        let mut s = self.state.lock();
        s.begin(SimOp::Read)?;
        Ok(s.named(path.as_ref())?.data.clone())
    }

    /// Make the file's bytes durable, as `sync_all` does (one [`SimOp::Sync`] operation).
    pub fn sync_file(&self, path: impl AsRef<Path>) -> io::Result<()> {
        let mut s = self.state.lock();
        s.begin(SimOp::Sync)?;
        s.named(path.as_ref())?.sync();
        Ok(())
    }

    /// Make the names in `dir` durable (one [`SimOp::SyncDir`] operation).
    pub fn sync_dir(&self, dir: impl AsRef<Path>) -> io::Result<()> {
        let mut s = self.state.lock();
        s.begin(SimOp::SyncDir)?;
        s.sync_dir(dir.as_ref())
    }

    /// Rename a file over `to` (one [`SimOp::Rename`] operation); durable once the directory
    /// is synced.
    pub fn rename(&self, from: impl AsRef<Path>, to: impl AsRef<Path>) -> io::Result<()> {
        let mut s = self.state.lock();
        s.begin(SimOp::Rename)?;
        s.rename(from.as_ref(), to.as_ref())
    }

    /// Remove a file (one [`SimOp::Remove`] operation); durable once the directory is synced.
    pub fn remove_file(&self, path: impl AsRef<Path>) -> io::Result<()> {
        let mut s = self.state.lock();
        s.begin(SimOp::Remove)?;
        s.names
            .remove(path.as_ref())
            .map(drop)
            .ok_or_else(|| not_found(path.as_ref()))
    }

    /// Whether a file or directory exists at `path` now. An inspection: not counted, never
    /// fails.
    pub fn exists(&self, path: impl AsRef<Path>) -> bool {
        let s = self.state.lock();
        let path = path.as_ref();
        s.names.contains_key(path) || s.dirs.contains(path)
    }

    /// The names in `dir` now, sorted. An inspection: not counted, never fails.
    pub fn file_names(&self, dir: impl AsRef<Path>) -> Vec<String> {
        list(&self.state.lock(), dir.as_ref())
    }

    fn handle(&self, ino: u64, epoch: u64, writable: bool) -> SimFile {
        SimFile {
            state: self.state.clone(),
            ino,
            epoch,
            writable,
        }
    }
}

fn list(s: &State, dir: &Path) -> Vec<String> {
    let files = s.names.keys().filter(|p| p.parent() == Some(dir));
    let dirs = s.dirs.iter().filter(|p| p.parent() == Some(dir));
    let names: BTreeSet<String> = files
        .chain(dirs)
        .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
        .collect();
    names.into_iter().collect()
}

impl FileSystem for SimFs {
    type File = SimFile;
    type Lock = SimLock;

    fn open(&self, path: &Path, flags: OpenFlags) -> io::Result<SimFile> {
        let mut s = self.state.lock();
        s.begin(SimOp::Open)?;
        let ino = s.open(path, flags)?;
        Ok(self.handle(ino, s.epoch, flags.write))
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        SimFs::create_dir_all(self, dir)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut s = self.state.lock();
        s.begin(SimOp::List)?;
        if !s.dir_exists(dir) {
            return Err(not_found(dir));
        }
        Ok(list(&s, dir))
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        SimFs::remove_file(self, path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        SimFs::rename(self, from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        SimFs::sync_dir(self, dir)
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        self.state.lock().begin(SimOp::List)?;
        Ok(SimFs::exists(self, path))
    }

    fn file_len(&self, path: &Path) -> io::Result<u64> {
        let mut s = self.state.lock();
        s.begin(SimOp::Read)?;
        Ok(s.named(path)?.data.len() as u64)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.read_file(path)
    }

    fn try_lock(&self, path: &Path) -> io::Result<Option<SimLock>> {
        let mut s = self.state.lock();
        s.begin(SimOp::Open)?;
        s.open(path, OpenFlags::CREATE)?;
        if s.locks.contains_key(path) {
            return Ok(None);
        }
        s.next_token += 1;
        let token = s.next_token;
        s.locks.insert(path.to_owned(), token);
        Ok(Some(SimLock {
            state: self.state.clone(),
            path: path.to_owned(),
            token,
        }))
    }
}

/// An open file of a [`SimFs`].
pub(crate) struct SimFile {
    state: Arc<Mutex<State>>,
    ino: u64,
    epoch: u64,
    writable: bool,
}

impl std::fmt::Debug for SimFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimFile")
            .field("ino", &self.ino)
            .finish_non_exhaustive()
    }
}

impl SimFile {
    /// Count an operation and run `f` on the inode, if this handle is still alive.
    fn with<T>(&self, op: SimOp, f: impl FnOnce(&mut Inode) -> io::Result<T>) -> io::Result<T> {
        let mut s = self.state.lock();
        s.begin(op)?;
        if s.epoch != self.epoch {
            return Err(io::Error::from_raw_os_error(EIO));
        }
        let writes = matches!(op, SimOp::Write | SimOp::SetLen);
        if writes && !self.writable {
            return Err(io::Error::from_raw_os_error(EBADF));
        }
        f(s.inode(self.ino)?)
    }
}

impl FileHandle for SimFile {
    type MapMut = SimMapMut;

    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        self.with(SimOp::Write, |i| {
            i.write(pos, buf);
            Ok(())
        })
    }

    fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        self.with(SimOp::Read, |i| {
            let from = usize::try_from(pos).unwrap_or(usize::MAX);
            let src = i
                .data
                .get(from..)
                .and_then(|d| d.get(..buf.len()))
                .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
            buf.copy_from_slice(src);
            Ok(())
        })
    }

    fn len(&self) -> io::Result<u64> {
        self.with(SimOp::Read, |i| Ok(i.data.len() as u64))
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.with(SimOp::SetLen, |i| {
            i.set_len(len);
            Ok(())
        })
    }

    fn sync_data(&self) -> io::Result<()> {
        self.with(SimOp::Sync, |i| {
            i.sync();
            Ok(())
        })
    }

    fn sync_all(&self) -> io::Result<()> {
        self.sync_data()
    }

    fn map(&self, len: usize) -> io::Result<Bytes> {
        self.with(SimOp::Map, |i| {
            Ok(Bytes::copy_from_slice(&i.data[..len.min(i.data.len())]))
        })
    }

    fn map_mut(&self, len: usize) -> io::Result<SimMapMut> {
        let mut buf = self.with(SimOp::Map, |i| Ok(i.data[..len.min(i.data.len())].to_vec()))?;
        resize_zeroed(&mut buf, len);
        Ok(SimMapMut {
            buf,
            file: self.try_clone()?,
        })
    }

    fn try_clone(&self) -> io::Result<Self> {
        Ok(SimFile {
            state: self.state.clone(),
            ino: self.ino,
            epoch: self.epoch,
            writable: self.writable,
        })
    }
}

/// A writable "map" of a [`SimFile`]: a heap buffer, written to the file by `write_back`.
pub(crate) struct SimMapMut {
    buf: Vec<u8>,
    file: SimFile,
}

impl WritableMap for SimMapMut {
    fn as_slice(&self) -> &[u8] {
        &self.buf
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.buf
    }

    fn write_back(&self, len: usize) -> io::Result<()> {
        self.file.write_all_at(&self.buf[..len], 0)
    }
}

/// A lock file held in a [`SimFs`]; dropping it releases the lock.
#[derive(Debug)]
pub(crate) struct SimLock {
    state: Arc<Mutex<State>>,
    path: PathBuf,
    token: u64,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SimFs state")
    }
}

impl Drop for SimLock {
    fn drop(&mut self) {
        let mut s = self.state.lock();
        if s.locks.get(&self.path) == Some(&self.token) {
            s.locks.remove(&self.path);
        }
    }
}
