//! A simulated file system, in memory, that can lose power and inject faults (feature
//! `testing`). Public as `seglog::testing::SimFs`; install it in a partition with
//! `PartitionConfig::with_file_system`.
//!
//! The model is documented on [`SimFs`] (public as `seglog::testing::SimFs`).

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Component, Path, PathBuf};
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
const EINVAL: i32 = 22;
const ENOSPC: i32 = 28;
const ENOTEMPTY: i32 = 39;

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
    /// Listing a directory, or asking whether a path exists (or is a directory).
    List,
    /// Removing a file, or a directory tree.
    Remove,
    /// Renaming a file or a directory.
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
    /// What reads and maps see.
    data: Vec<u8>,
    /// What survives a power loss.
    durable: Vec<u8>,
    /// Changes since the last sync, in order: what the next sync applies to `durable` (and a
    /// torn power loss a subset of). Without a failed sync, `durable` plus these is `data`;
    /// a failed sync drops them, and `data` keeps showing bytes that are not on disk (Linux
    /// marks the dirty pages clean after a writeback error) until they are written again.
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

    /// Apply the pending changes to the durable bytes.
    fn sync(&mut self) {
        for change in std::mem::take(&mut self.pending) {
            match change {
                Change::Write { at, bytes } => write_into(&mut self.durable, at, &bytes),
                Change::SetLen(len) => set_len_of(&mut self.durable, len),
            }
        }
    }

    /// A sync failed: the pending changes never reach the disk, and a later sync succeeds
    /// without them.
    fn sync_failed(&mut self) {
        self.pending.clear();
    }

    /// After a power loss: the file holds `data`, durably, and nothing is pending.
    fn reset(&mut self, data: Vec<u8>) {
        self.durable.clone_from(&data);
        self.data = data;
        self.pending.clear();
    }

    /// The durable bytes plus a subset, chosen by `rng`, of the pending changes cut into
    /// sector-sized pieces (a write is split where it crosses a sector boundary), applied in
    /// the order they were made.
    fn torn(&self, rng: &mut Rng) -> Vec<u8> {
        let mut data = self.durable.clone();
        for change in &self.pending {
            match change {
                Change::SetLen(len) => {
                    if rng.below(2) == 1 {
                        set_len_of(&mut data, *len);
                    }
                }
                Change::Write { at, bytes } => {
                    let mut off = 0usize;
                    while off < bytes.len() {
                        let pos = at + off as u64;
                        let room = (SECTOR_BYTES - pos % SECTOR_BYTES) as usize;
                        let n = room.min(bytes.len() - off);
                        if rng.below(2) == 1 {
                            write_into(&mut data, pos, &bytes[off..off + n]);
                        }
                        off += n;
                    }
                }
            }
        }
        data
    }
}

/// splitmix64: small, deterministic, good enough to pick what a power loss keeps.
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

/// A directory: its entries (name to node) now, and as a power loss would leave them.
#[derive(Default, Clone)]
struct Dir {
    entries: BTreeMap<String, u64>,
    durable: BTreeMap<String, u64>,
}

enum Node {
    File(Inode),
    Dir(Dir),
}

/// One directory change not yet durable: entries set (`Some`) or removed (`None`) together
/// (a rename is one change of two entries). A power loss keeps none of them, or (torn) a
/// random subset of the changes, each whole.
type DirChange = Vec<(u64, String, Option<u64>)>;

const ROOT: u64 = 1;

struct State {
    nodes: BTreeMap<u64, Node>,
    /// Directory changes not yet made durable, in order.
    undurable: Vec<DirChange>,
    next_inode: u64,
    /// Held lock files and the token of their holder.
    locks: BTreeMap<PathBuf, u64>,
    next_token: u64,
    /// Bumped by a power loss: handles of an earlier epoch are dead.
    epoch: u64,
    operations: u64,
    /// Operations from this count on fail with `EIO` until the next power loss.
    power_cut_at: Option<u64>,
    faults: Vec<Fault>,
    /// How long each file sync takes (see [`SimFs::set_sync_delay`]).
    sync_delay: std::time::Duration,
}

impl Default for State {
    fn default() -> Self {
        let mut nodes = BTreeMap::new();
        nodes.insert(ROOT, Node::Dir(Dir::default()));
        State {
            nodes,
            undurable: Vec::new(),
            next_inode: ROOT,
            locks: BTreeMap::new(),
            next_token: 0,
            epoch: 0,
            operations: 0,
            power_cut_at: None,
            faults: Vec::new(),
            sync_delay: std::time::Duration::ZERO,
        }
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file or directory", path.display()),
    )
}

fn errno(n: i32) -> io::Error {
    io::Error::from_raw_os_error(n)
}

/// The names along `path` from the root (`/a/b`, `a/b` and `./a/b` are the same path).
fn components(path: &Path) -> io::Result<Vec<&str>> {
    let mut names = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(s) => names.push(s.to_str().ok_or_else(|| errno(EINVAL))?),
            Component::ParentDir => {
                names.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Ok(names)
}

impl State {
    /// Count one operation of kind `op` and fail it if a fault fires or the power is cut.
    fn begin(&mut self, op: SimOp) -> io::Result<()> {
        self.operations += 1;
        if self.power_cut_at.is_some_and(|n| self.operations >= n) {
            return Err(errno(EIO));
        }
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

    fn dir(&self, ino: u64) -> Option<&Dir> {
        match self.nodes.get(&ino) {
            Some(Node::Dir(d)) => Some(d),
            _ => None,
        }
    }

    fn dir_mut(&mut self, ino: u64) -> Option<&mut Dir> {
        match self.nodes.get_mut(&ino) {
            Some(Node::Dir(d)) => Some(d),
            _ => None,
        }
    }

    /// The node at `path`.
    fn lookup(&self, path: &Path) -> Option<u64> {
        let mut at = ROOT;
        for name in components(path).ok()? {
            at = *self.dir(at)?.entries.get(name)?;
        }
        Some(at)
    }

    fn is_dir(&self, path: &Path) -> bool {
        self.lookup(path).is_some_and(|i| self.dir(i).is_some())
    }

    /// The directory holding `path`'s entry, and the entry's name.
    fn parent<'p>(&self, path: &'p Path) -> io::Result<(u64, &'p str)> {
        let mut names = components(path)?;
        let name = names.pop().ok_or_else(|| errno(EINVAL))?;
        let mut at = ROOT;
        for n in names {
            let next = *self
                .dir(at)
                .and_then(|d| d.entries.get(n))
                .ok_or_else(|| not_found(path))?;
            at = next;
        }
        if self.dir(at).is_none() {
            return Err(errno(ENOTDIR));
        }
        Ok((at, name))
    }

    /// Set (or, `None`, remove) entries now; durable once their directories are synced.
    fn change(&mut self, change: DirChange) {
        for (dir, name, value) in &change {
            if let Some(d) = self.dir_mut(*dir) {
                match value {
                    Some(ino) => d.entries.insert(name.clone(), *ino),
                    None => d.entries.remove(name),
                };
            }
        }
        self.undurable.push(change);
    }

    fn new_node(&mut self, node: Node) -> u64 {
        self.next_inode += 1;
        self.nodes.insert(self.next_inode, node);
        self.next_inode
    }

    fn open(&mut self, path: &Path, flags: OpenFlags) -> io::Result<u64> {
        let (dir, name) = self.parent(path)?;
        let existing = self.dir(dir).and_then(|d| d.entries.get(name)).copied();
        let ino = match existing {
            Some(_) if flags.create_new => return Err(errno(EEXIST)),
            Some(ino) if self.dir(ino).is_some() => return Err(errno(EISDIR)),
            Some(ino) => ino,
            None if flags.create || flags.create_new => {
                let ino = self.new_node(Node::File(Inode::default()));
                self.change(vec![(dir, name.to_owned(), Some(ino))]);
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
        match self.nodes.get_mut(&ino) {
            Some(Node::File(i)) => Ok(i),
            Some(Node::Dir(_)) => Err(errno(EISDIR)),
            None => Err(errno(EIO)),
        }
    }

    fn named(&mut self, path: &Path) -> io::Result<&mut Inode> {
        let ino = self.lookup(path).ok_or_else(|| not_found(path))?;
        self.inode(ino)
    }

    /// Create the missing directories of `dir`, outermost first; returns them.
    fn create_dir_all(&mut self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        let mut created = Vec::new();
        let mut at = ROOT;
        let mut path = PathBuf::from("/");
        for name in components(dir)? {
            path.push(name);
            let existing = self.dir(at).and_then(|d| d.entries.get(name)).copied();
            at = match existing {
                Some(ino) if self.dir(ino).is_some() => ino,
                Some(_) => return Err(errno(ENOTDIR)),
                None => {
                    let ino = self.new_node(Node::Dir(Dir::default()));
                    self.change(vec![(at, name.to_owned(), Some(ino))]);
                    created.push(path.clone());
                    ino
                }
            };
        }
        Ok(created)
    }

    fn sync_dir(&mut self, dir: &Path) -> io::Result<()> {
        let ino = self.lookup(dir).ok_or_else(|| not_found(dir))?;
        let d = self.dir_mut(ino).ok_or_else(|| errno(ENOTDIR))?;
        d.durable.clone_from(&d.entries);
        for change in &mut self.undurable {
            change.retain(|(d, _, _)| *d != ino);
        }
        self.undurable.retain(|c| !c.is_empty());
        Ok(())
    }

    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        let (from_dir, from_name) = self.parent(from)?;
        let ino = *self
            .dir(from_dir)
            .and_then(|d| d.entries.get(from_name))
            .ok_or_else(|| not_found(from))?;
        let (to_dir, to_name) = self.parent(to)?;
        if let Some(&target) = self.dir(to_dir).and_then(|d| d.entries.get(to_name)) {
            if target == ino {
                return Ok(());
            }
            if let Some(d) = self.dir(target) {
                if self.dir(ino).is_none() {
                    return Err(errno(EISDIR));
                }
                if !d.entries.is_empty() {
                    return Err(errno(ENOTEMPTY));
                }
            } else if self.dir(ino).is_some() {
                return Err(errno(ENOTDIR));
            }
        }
        if self.dir(ino).is_some() && self.lookup(to).is_none() && to.starts_with(from) {
            return Err(errno(EINVAL));
        }
        self.change(vec![
            (from_dir, from_name.to_owned(), None),
            (to_dir, to_name.to_owned(), Some(ino)),
        ]);
        Ok(())
    }

    fn remove_file(&mut self, path: &Path) -> io::Result<()> {
        let (dir, name) = self.parent(path)?;
        let ino = self
            .dir(dir)
            .and_then(|d| d.entries.get(name))
            .copied()
            .ok_or_else(|| not_found(path))?;
        if self.dir(ino).is_some() {
            return Err(errno(EISDIR));
        }
        self.change(vec![(dir, name.to_owned(), None)]);
        Ok(())
    }

    /// Remove the directory at `path` and everything in it, as `rm -r` does: the entries
    /// inside first, each its own change, then the directory's own entry.
    fn remove_dir_all(&mut self, path: &Path) -> io::Result<()> {
        let (parent, name) = self.parent(path)?;
        let ino = self.lookup(path).ok_or_else(|| not_found(path))?;
        if self.dir(ino).is_none() {
            return Err(errno(ENOTDIR));
        }
        self.remove_tree(ino);
        self.change(vec![(parent, name.to_owned(), None)]);
        Ok(())
    }

    fn remove_tree(&mut self, dir: u64) {
        let entries: Vec<(String, u64)> = self
            .dir(dir)
            .map(|d| d.entries.iter().map(|(n, i)| (n.clone(), *i)).collect())
            .unwrap_or_default();
        for (name, ino) in entries {
            if self.dir(ino).is_some() {
                self.remove_tree(ino);
            }
            self.change(vec![(dir, name, None)]);
        }
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let ino = self.lookup(dir).ok_or_else(|| not_found(dir))?;
        let d = self.dir(ino).ok_or_else(|| errno(ENOTDIR))?;
        Ok(d.entries.keys().cloned().collect())
    }

    fn lose_power(&mut self, mut rng: Option<Rng>) {
        for node in self.nodes.values_mut() {
            if let Node::Dir(d) = node {
                d.entries.clone_from(&d.durable);
            }
        }
        let undurable = std::mem::take(&mut self.undurable);
        if let Some(r) = &mut rng {
            for change in undurable {
                if r.below(2) == 1 {
                    for (dir, name, value) in change {
                        if let Some(d) = self.dir_mut(dir) {
                            match value {
                                Some(ino) => d.entries.insert(name, ino),
                                None => d.entries.remove(&name),
                            };
                        }
                    }
                }
            }
        }
        self.drop_unreachable();
        for node in self.nodes.values_mut() {
            if let Node::File(inode) = node {
                let data = match &mut rng {
                    Some(r) => inode.torn(r),
                    None => inode.durable.clone(),
                };
                inode.reset(data);
            }
        }
        self.locks.clear();
        self.power_cut_at = None;
        self.epoch += 1;
    }

    /// Forget the nodes no directory reaches from the root any more; what is reachable is
    /// durable from now on.
    fn drop_unreachable(&mut self) {
        let mut live = BTreeSet::from([ROOT]);
        let mut todo = vec![ROOT];
        while let Some(ino) = todo.pop() {
            if let Some(d) = self.dir_mut(ino) {
                d.durable.clone_from(&d.entries);
                let children: Vec<u64> = d.entries.values().copied().collect();
                for c in children {
                    if live.insert(c) {
                        todo.push(c);
                    }
                }
            }
        }
        self.nodes.retain(|ino, _| live.contains(ino));
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
/// - A directory is a node too, holding names that point to nodes (files or directories),
///   and the *durable* set of its names: a creation (of a file or a directory), rename or
///   removal becomes durable when the directory holding the name is synced
///   ([`SimFs::sync_dir`]). A new directory's own entry is durable only once its parent is
///   synced: until then a power loss takes it, with everything in it.
/// - [`SimFs::power_loss`] drops everything that is not durable: every directory's names revert
///   to its durable set (a file whose name never became durable is gone, a rename not yet
///   synced is undone), every file's bytes revert to its durable bytes, and every lock is
///   released. [`SimFs::power_loss_torn`] is harsher and closer to a disk: each file also
///   keeps a random subset of its unsynced sectors, and each directory change not yet synced
///   (a creation, removal or rename, each whole) survives or not at random.
///   Handles opened before the power loss fail with `EIO` from then on, as a process
///   that died cannot write any more. Operations by path are not fenced that way: drop (or
///   `simulate_crash`) a partition opened before a power loss rather than keep using it.
/// - A failed file sync (an injected fault of kind [`SimOp::Sync`]) is what Linux does after
///   a writeback error: the writes since the last good sync are dropped — reads still see
///   them, but a later sync succeeds *without* them, and only writing them again makes them
///   durable. Every other failed operation changes nothing.
/// - Memory maps are copies: a read-only map is a copy of (at most) the file's current bytes,
///   so readers map again when they need more; a writable map (an index file) is a heap buffer
///   that reaches the file only when the index writes it back, when it is sealed. Under the
///   simulation an index is therefore durable only after that write-back and a later sync, and
///   an active segment's index is lost by a crash: indexes are caches, rebuilt from the log
///   when in doubt.
/// - Faults: [`SimFs::fail_nth`] and [`SimFs::fail_every`] make an operation fail with `EIO`
///   or `ENOSPC` (a real `std::io::Error` with that raw OS error);
///   [`SimFs::cut_power_at`] fails every operation from the nth on, until the power loss the
///   test then calls. Every operation, of a file or of the file system, counts one
///   ([`SimFs::operations`]), in call order, so the same test fails at the same place every
///   run.
///
/// Share it as an `Arc<SimFs>` between the partition
/// ([`PartitionConfig::with_file_system`](crate::PartitionConfig::with_file_system)) or the
/// store ([`StoreConfig::with_file_system`](crate::StoreConfig::with_file_system)) and the
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
            .field("nodes", &s.nodes.len())
            .field("operations", &s.operations)
            .finish_non_exhaustive()
    }
}

impl SimFs {
    /// An empty file system: only the root directory, no faults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Make every file sync (`sync_data`/`sync_all` on a handle) take `delay` before it
    /// happens, as a real disk does, so that concurrent appenders queue behind an fsync in
    /// progress (group commit). Zero (the default) makes syncs instant.
    pub fn set_sync_delay(&self, delay: std::time::Duration) {
        self.state.lock().sync_delay = delay;
    }

    /// Drop everything that is not durable: unsynced writes, and names not made durable by a
    /// directory sync; release all locks; kill every open handle; end a
    /// [`cut_power_at`](SimFs::cut_power_at).
    pub fn power_loss(&self) {
        self.state.lock().lose_power(None);
    }

    /// As [`power_loss`](SimFs::power_loss), but each file keeps a subset, chosen at random
    /// from `seed`, of its unsynced changes cut at [`SECTOR_BYTES`] boundaries (a write
    /// crossing a sector boundary may survive in part, a later sector without an earlier
    /// one), and each unsynced directory change (creation, removal, rename: each whole)
    /// survives or not at random. The same seed and history give the same result.
    pub fn power_loss_torn(&self, seed: u64) {
        self.state.lock().lose_power(Some(Rng(seed)));
    }

    /// Cut the power at the `n`th operation from now (1: the next one): it and every later
    /// operation fail with `EIO`, changing nothing, until [`power_loss`](SimFs::power_loss)
    /// or [`power_loss_torn`](SimFs::power_loss_torn). With [`operations`](SimFs::operations)
    /// counted over a first run, a test can cut the power at every operation of a workload.
    pub fn cut_power_at(&self, n: u64) {
        assert!(n > 0, "operations are counted from 1");
        let mut s = self.state.lock();
        s.power_cut_at = Some(s.operations + n);
    }

    /// Whether a [`cut_power_at`](SimFs::cut_power_at) has been reached.
    pub fn power_is_cut(&self) -> bool {
        self.state.lock().power_is_cut()
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

    /// Create `dir` and its missing parents (one [`SimOp::CreateDir`] operation). Each new
    /// directory's entry is durable once its parent is synced.
    pub fn create_dir_all(&self, dir: impl AsRef<Path>) -> io::Result<()> {
        FileSystem::create_dir_all(self, dir.as_ref()).map(drop)
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
        let ino = s.lookup(path.as_ref());
        if let Err(e) = s.begin(SimOp::Sync) {
            if let (false, Some(ino)) = (s.power_is_cut(), ino) {
                s.inode(ino)?.sync_failed();
            }
            return Err(e);
        }
        s.named(path.as_ref())?.sync();
        Ok(())
    }

    /// Make the names in `dir` durable (one [`SimOp::SyncDir`] operation).
    pub fn sync_dir(&self, dir: impl AsRef<Path>) -> io::Result<()> {
        let mut s = self.state.lock();
        s.begin(SimOp::SyncDir)?;
        s.sync_dir(dir.as_ref())
    }

    /// Rename a file or directory over `to` (one [`SimOp::Rename`] operation); durable once
    /// the directories are synced.
    pub fn rename(&self, from: impl AsRef<Path>, to: impl AsRef<Path>) -> io::Result<()> {
        let mut s = self.state.lock();
        s.begin(SimOp::Rename)?;
        s.rename(from.as_ref(), to.as_ref())
    }

    /// Remove a file (one [`SimOp::Remove`] operation); durable once the directory is synced.
    pub fn remove_file(&self, path: impl AsRef<Path>) -> io::Result<()> {
        let mut s = self.state.lock();
        s.begin(SimOp::Remove)?;
        s.remove_file(path.as_ref())
    }

    /// Remove a directory and everything in it (one [`SimOp::Remove`] operation); durable
    /// once its parent is synced (until then a power loss may bring back any part of it).
    pub fn remove_dir_all(&self, dir: impl AsRef<Path>) -> io::Result<()> {
        FileSystem::remove_dir_all(self, dir.as_ref())
    }

    /// Whether a file or directory exists at `path` now. An inspection: not counted, never
    /// fails.
    pub fn exists(&self, path: impl AsRef<Path>) -> bool {
        self.state.lock().lookup(path.as_ref()).is_some()
    }

    /// The names in `dir` now, sorted (none if it is not a directory). An inspection: not
    /// counted, never fails.
    pub fn file_names(&self, dir: impl AsRef<Path>) -> Vec<String> {
        self.state.lock().list(dir.as_ref()).unwrap_or_default()
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

impl State {
    fn power_is_cut(&self) -> bool {
        self.power_cut_at.is_some_and(|n| self.operations >= n)
    }
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

    fn create_dir_all(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        let mut s = self.state.lock();
        s.begin(SimOp::CreateDir)?;
        s.create_dir_all(dir)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut s = self.state.lock();
        s.begin(SimOp::List)?;
        s.list(dir)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        SimFs::remove_file(self, path)
    }

    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.state.lock();
        s.begin(SimOp::Remove)?;
        s.remove_dir_all(dir)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        SimFs::rename(self, from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        SimFs::sync_dir(self, dir)
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        let mut s = self.state.lock();
        s.begin(SimOp::List)?;
        Ok(s.lookup(path).is_some())
    }

    fn is_dir(&self, path: &Path) -> io::Result<bool> {
        let mut s = self.state.lock();
        s.begin(SimOp::List)?;
        Ok(s.is_dir(path))
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
        if let Err(e) = s.begin(op) {
            // A failed fsync may have dropped the dirty pages (see the model).
            if op == SimOp::Sync && s.epoch == self.epoch && !s.power_is_cut() {
                s.inode(self.ino)?.sync_failed();
            }
            return Err(e);
        }
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
        let delay = self.state.lock().sync_delay;
        if !delay.is_zero() {
            // Outside the lock: other threads keep writing while this one "waits for the disk".
            std::thread::sleep(delay);
        }
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
