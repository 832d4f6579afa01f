//! The file seam: every file operation of the log layer goes through [`Fs`] and [`FsFile`].
//!
//! Two implementations: [`StdFs`], the real file system through `std::fs` (the default), and,
//! for tests (feature `testing`), the in-memory [`SimFs`](crate::io::sim::SimFs), which can
//! lose power and inject faults. [`Fs`] and [`FsFile`] are concrete enums over them rather
//! than trait objects: the std arm of every `match` is the `std` call itself, inlined, so the
//! hot path (a positioned write, an fdatasync, a map) issues exactly the syscalls it did
//! before the seam existed, with no boxing, no copy and no virtual call. Without the `testing`
//! feature the enums have a single variant.
//!
//! # Contract ([`FileSystem`] and [`FileHandle`])
//!
//! What an implementation **must** do:
//! - a positioned write (`write_all_at`) writes all its bytes or fails; the bytes are visible
//!   to every later read and map of the file at once, through any handle;
//! - a write, `set_len` and a file's creation are *durable* (survive a power loss) only after
//!   `sync_data` or `sync_all` of that file returns `Ok` — and a file's *name* only after
//!   `sync_dir` of its directory returns `Ok`: a new name, a rename or a removal is durable
//!   once its directory is synced, and until then a power loss may undo it;
//! - `set_len` shortens a file, or extends it with zero bytes;
//! - `create_dir_all` makes every directory it creates durable before it returns (the std
//!   implementation fsyncs the parent of each directory it created), so that a partition's
//!   files are never lost with a directory entry that was never synced;
//! - `map(len)` returns the file's first `len` bytes as `Bytes`; it may be longer than the
//!   file (the caller reads only below the file's written length) or, in the simulation, no
//!   longer than the file: callers map again when they need more;
//! - a writable map (`map_mut`) shows the file's bytes and takes writes into them; the file
//!   holds them once [`WritableMap::write_back`] covers them (a no-op for a real shared map,
//!   whose writes reach the page cache directly);
//! - `try_lock` takes an exclusive lock on a lock file, `Ok(None)` when another holder has it;
//!   the lock lasts as long as the returned [`FsLock`];
//! - a removed or renamed file stays readable and writable through handles opened before.
//!
//! What it **may** do: fail any operation with an `std::io::Error` (the log turns every
//! failure into an [`Error::Io`](crate::error::Error::Io) and refuses further writes); after
//! a power loss, keep any part of what was not durable, in any order of sectors.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
#[cfg(any(test, feature = "testing"))]
use std::sync::Arc;

use bytes::Bytes;

use crate::io::mmap::{self, MapMut};
#[cfg(any(test, feature = "testing"))]
use crate::io::sim::{SimFile, SimFs, SimLock, SimMapMut};

/// How to open a file. Files are always opened readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[allow(
    clippy::struct_excessive_bools,
    reason = "the flags of std::fs::OpenOptions, one each"
)]
pub(crate) struct OpenFlags {
    /// Open for writing too.
    pub write: bool,
    /// Create the file if it does not exist.
    pub create: bool,
    /// Create the file, failing with `AlreadyExists` if it exists.
    pub create_new: bool,
    /// Cut the file to zero bytes.
    pub truncate: bool,
}

impl OpenFlags {
    /// Read only; the file must exist.
    pub const READ: OpenFlags = OpenFlags {
        write: false,
        create: false,
        create_new: false,
        truncate: false,
    };
    /// Read and write; the file must exist.
    pub const WRITE: OpenFlags = OpenFlags {
        write: true,
        ..OpenFlags::READ
    };
    /// Read and write, created if missing, contents kept.
    pub const CREATE: OpenFlags = OpenFlags {
        create: true,
        ..OpenFlags::WRITE
    };
    /// Read and write, created if missing, cut to zero bytes.
    pub const CREATE_TRUNCATE: OpenFlags = OpenFlags {
        truncate: true,
        ..OpenFlags::CREATE
    };
    /// Read and write, a new file: fails if it exists.
    pub const CREATE_NEW: OpenFlags = OpenFlags {
        create_new: true,
        ..OpenFlags::WRITE
    };
}

/// The directory and naming operations the log performs. See the module docs for the
/// contract.
pub(crate) trait FileSystem {
    /// An open file.
    type File: FileHandle;
    /// A held lock file.
    type Lock;
    /// Open (or create, by `flags`) the file at `path`.
    fn open(&self, path: &Path, flags: OpenFlags) -> io::Result<Self::File>;
    /// Create `dir` and its missing parents, durably.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Names of the entries of `dir` that are valid UTF-8 (no others are seglog's).
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Remove the file at `path`; durable after `sync_dir` of its directory.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Rename a file, replacing `to`; durable after `sync_dir` of the directory.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Make the entries of `dir` (creations, renames, removals) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Whether a file or directory exists at `path`.
    fn exists(&self, path: &Path) -> io::Result<bool>;
    /// Length of the file at `path`.
    fn file_len(&self, path: &Path) -> io::Result<u64>;
    /// The whole content of the file at `path`.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Take the exclusive lock of the lock file at `path` (created if needed).
    fn try_lock(&self, path: &Path) -> io::Result<Option<Self::Lock>>;
}

/// The operations on one open file. See the module docs for the contract.
pub(crate) trait FileHandle: Sized {
    /// A writable map of the file.
    type MapMut: WritableMap;
    /// Write all of `buf` at byte `pos`.
    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()>;
    /// Fill `buf` from byte `pos`; `UnexpectedEof` if the file is shorter.
    fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()>;
    /// The file's length.
    fn len(&self) -> io::Result<u64>;
    /// Shorten, or extend with zeros, to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Make the file's data (and the length it needs) durable: fdatasync.
    fn sync_data(&self) -> io::Result<()>;
    /// Make the file's data and metadata durable: fsync.
    fn sync_all(&self) -> io::Result<()>;
    /// The first `len` bytes, read-only (see the contract on length).
    fn map(&self, len: usize) -> io::Result<Bytes>;
    /// A writable map of the first `len` bytes (`len > 0`; the file is at least that long).
    fn map_mut(&self, len: usize) -> io::Result<Self::MapMut>;
    /// Another handle to the same file.
    fn try_clone(&self) -> io::Result<Self>;
}

/// A writable map of the first bytes of a file.
pub(crate) trait WritableMap {
    /// The mapped bytes.
    fn as_slice(&self) -> &[u8];
    /// The mapped bytes, writable.
    fn as_mut_slice(&mut self) -> &mut [u8];
    /// Make sure the file holds the first `len` mapped bytes (a no-op for a shared map).
    fn write_back(&self, len: usize) -> io::Result<()>;
}

/// The real file system, through `std::fs`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct StdFs;

impl FileSystem for StdFs {
    type File = File;
    type Lock = File;

    fn open(&self, path: &Path, flags: OpenFlags) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(flags.write)
            .create(flags.create)
            .create_new(flags.create_new)
            .truncate(flags.truncate)
            .open(path)
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        // The outermost missing directory: its parent and everything below it get fsynced.
        let mut first_missing = None;
        for a in dir.ancestors() {
            if a.as_os_str().is_empty() || a.try_exists()? {
                break;
            }
            first_missing = Some(a);
        }
        let Some(first) = first_missing else {
            return Ok(());
        };
        std::fs::create_dir_all(dir)?;
        for a in dir.ancestors() {
            let parent = a.parent().filter(|p| !p.as_os_str().is_empty());
            self.sync_dir(parent.unwrap_or(Path::new(".")))?;
            if a == first {
                break;
            }
        }
        Ok(())
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir).and_then(|d| d.sync_all())
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        path.try_exists()
    }

    fn file_len(&self, path: &Path) -> io::Result<u64> {
        std::fs::metadata(path).map(|m| m.len())
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn try_lock(&self, path: &Path) -> io::Result<Option<File>> {
        let file = self.open(path, OpenFlags::CREATE)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(file)),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }
}

impl FileHandle for File {
    type MapMut = MapMut;

    #[inline]
    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        FileExt::write_all_at(self, buf, pos)
    }

    #[inline]
    fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        FileExt::read_exact_at(self, buf, pos)
    }

    fn len(&self) -> io::Result<u64> {
        self.metadata().map(|m| m.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }

    #[inline]
    fn sync_data(&self) -> io::Result<()> {
        File::sync_data(self)
    }

    fn sync_all(&self) -> io::Result<()> {
        File::sync_all(self)
    }

    #[inline]
    fn map(&self, len: usize) -> io::Result<Bytes> {
        mmap::map(self, len)
    }

    fn map_mut(&self, len: usize) -> io::Result<MapMut> {
        MapMut::new(self, len)
    }

    fn try_clone(&self) -> io::Result<Self> {
        File::try_clone(self)
    }
}

impl WritableMap for MapMut {
    fn as_slice(&self) -> &[u8] {
        MapMut::as_slice(self)
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        MapMut::as_mut_slice(self)
    }

    fn write_back(&self, _len: usize) -> io::Result<()> {
        // A shared map writes into the page cache: the file already holds the bytes.
        Ok(())
    }
}

/// The file system a partition uses: the real one, or (feature `testing`) a simulated one.
#[derive(Clone, Default)]
pub(crate) enum Fs {
    /// `std::fs`.
    #[default]
    Std,
    /// An in-memory simulation shared with the test that made it.
    #[cfg(any(test, feature = "testing"))]
    Sim(Arc<SimFs>),
}

impl std::fmt::Debug for Fs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fs::Std => f.write_str("Std"),
            #[cfg(any(test, feature = "testing"))]
            Fs::Sim(_) => f.write_str("Sim"),
        }
    }
}

/// Forward a call to the implementation behind an `Fs`, `FsFile` or `WritableMapFs`.
macro_rules! dispatch {
    ($on:expr, $x:ident => $call:expr, $wrap_std:path, $wrap_sim:path) => {
        match $on {
            Fs::Std => {
                let $x = &StdFs;
                $call.map($wrap_std)
            }
            #[cfg(any(test, feature = "testing"))]
            Fs::Sim(s) => {
                let $x = &**s;
                $call.map($wrap_sim)
            }
        }
    };
    ($on:expr, $x:ident => $call:expr) => {
        match $on {
            Fs::Std => {
                let $x = &StdFs;
                $call
            }
            #[cfg(any(test, feature = "testing"))]
            Fs::Sim(s) => {
                let $x = &**s;
                $call
            }
        }
    };
}

impl Fs {
    /// Open (or create, by `flags`) the file at `path`.
    pub(crate) fn open(&self, path: &Path, flags: OpenFlags) -> io::Result<FsFile> {
        dispatch!(self, fs => FileSystem::open(fs, path, flags), FsFile::Std, FsFile::Sim)
    }

    /// Create `dir` and its missing parents, durably.
    pub(crate) fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        dispatch!(self, fs => FileSystem::create_dir_all(fs, dir))
    }

    /// UTF-8 names of the entries of `dir`.
    pub(crate) fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        dispatch!(self, fs => FileSystem::list_dir(fs, dir))
    }

    /// Remove a file; durable after `sync_dir`.
    pub(crate) fn remove_file(&self, path: &Path) -> io::Result<()> {
        dispatch!(self, fs => FileSystem::remove_file(fs, path))
    }

    /// Rename a file over `to`; durable after `sync_dir`.
    pub(crate) fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        dispatch!(self, fs => FileSystem::rename(fs, from, to))
    }

    /// Make the entries of `dir` durable.
    pub(crate) fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        dispatch!(self, fs => FileSystem::sync_dir(fs, dir))
    }

    /// Whether something exists at `path`.
    pub(crate) fn exists(&self, path: &Path) -> io::Result<bool> {
        dispatch!(self, fs => FileSystem::exists(fs, path))
    }

    /// Length of the file at `path`.
    pub(crate) fn file_len(&self, path: &Path) -> io::Result<u64> {
        dispatch!(self, fs => FileSystem::file_len(fs, path))
    }

    /// The whole content of the file at `path`.
    pub(crate) fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        dispatch!(self, fs => FileSystem::read(fs, path))
    }

    /// Take the exclusive lock file at `path`; `Ok(None)` when someone else holds it.
    pub(crate) fn try_lock(&self, path: &Path) -> io::Result<Option<FsLock>> {
        match self {
            Fs::Std => Ok(FileSystem::try_lock(&StdFs, path)?.map(FsLock::Std)),
            #[cfg(any(test, feature = "testing"))]
            Fs::Sim(s) => Ok(FileSystem::try_lock(&**s, path)?.map(FsLock::Sim)),
        }
    }
}

/// An open file of an [`Fs`].
#[derive(Debug)]
pub(crate) enum FsFile {
    /// A real file.
    Std(File),
    /// A simulated one.
    #[cfg(any(test, feature = "testing"))]
    Sim(SimFile),
}

/// Forward a call to the handle behind an `FsFile`.
macro_rules! on_file {
    ($on:expr, $f:ident => $call:expr) => {
        match $on {
            FsFile::Std($f) => $call,
            #[cfg(any(test, feature = "testing"))]
            FsFile::Sim($f) => $call,
        }
    };
}

impl FsFile {
    /// Write all of `buf` at byte `pos`.
    #[inline]
    pub(crate) fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        on_file!(self, f => FileHandle::write_all_at(f, buf, pos))
    }

    /// Fill `buf` from byte `pos`.
    #[inline]
    pub(crate) fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        on_file!(self, f => FileHandle::read_exact_at(f, buf, pos))
    }

    /// The file's length.
    pub(crate) fn len(&self) -> io::Result<u64> {
        on_file!(self, f => FileHandle::len(f))
    }

    /// Shorten, or extend with zeros.
    pub(crate) fn set_len(&self, len: u64) -> io::Result<()> {
        on_file!(self, f => FileHandle::set_len(f, len))
    }

    /// fdatasync.
    #[inline]
    pub(crate) fn sync_data(&self) -> io::Result<()> {
        on_file!(self, f => FileHandle::sync_data(f))
    }

    /// fsync.
    pub(crate) fn sync_all(&self) -> io::Result<()> {
        on_file!(self, f => FileHandle::sync_all(f))
    }

    /// The first `len` bytes, read-only: zero-copy on the real file system.
    #[inline]
    pub(crate) fn map(&self, len: usize) -> io::Result<Bytes> {
        on_file!(self, f => FileHandle::map(f, len))
    }

    /// A read-only map is a snapshot (the simulated file system copies): it does not see
    /// later writes, so mapping ahead of the data written (a preallocated tail) is useless
    /// and a reader must map again for every new byte it needs.
    #[inline]
    pub(crate) fn maps_are_snapshots(&self) -> bool {
        match self {
            FsFile::Std(_) => false,
            #[cfg(any(test, feature = "testing"))]
            FsFile::Sim(_) => true,
        }
    }

    /// A writable map of the first `len` bytes (`len > 0`).
    pub(crate) fn map_mut(&self, len: usize) -> io::Result<WritableMapFs> {
        match self {
            FsFile::Std(f) => FileHandle::map_mut(f, len).map(WritableMapFs::Std),
            #[cfg(any(test, feature = "testing"))]
            FsFile::Sim(f) => FileHandle::map_mut(f, len).map(WritableMapFs::Sim),
        }
    }

    /// Another handle to the same file.
    pub(crate) fn try_clone(&self) -> io::Result<FsFile> {
        match self {
            FsFile::Std(f) => FileHandle::try_clone(f).map(FsFile::Std),
            #[cfg(any(test, feature = "testing"))]
            FsFile::Sim(f) => FileHandle::try_clone(f).map(FsFile::Sim),
        }
    }
}

/// A writable map of an [`FsFile`].
pub(crate) enum WritableMapFs {
    /// A shared memory map.
    Std(MapMut),
    /// A heap buffer written back to the simulated file.
    #[cfg(any(test, feature = "testing"))]
    Sim(SimMapMut),
}

impl WritableMapFs {
    /// The mapped bytes.
    #[inline]
    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            WritableMapFs::Std(m) => WritableMap::as_slice(m),
            #[cfg(any(test, feature = "testing"))]
            WritableMapFs::Sim(m) => WritableMap::as_slice(m),
        }
    }

    /// The mapped bytes, writable.
    #[inline]
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        match self {
            WritableMapFs::Std(m) => WritableMap::as_mut_slice(m),
            #[cfg(any(test, feature = "testing"))]
            WritableMapFs::Sim(m) => WritableMap::as_mut_slice(m),
        }
    }

    /// Make sure the file holds the first `len` bytes.
    pub(crate) fn write_back(&self, len: usize) -> io::Result<()> {
        match self {
            WritableMapFs::Std(m) => WritableMap::write_back(m, len),
            #[cfg(any(test, feature = "testing"))]
            WritableMapFs::Sim(m) => WritableMap::write_back(m, len),
        }
    }
}

/// A held lock file of an [`Fs`]; dropping it releases the lock.
#[derive(Debug)]
pub(crate) enum FsLock {
    /// A `flock`ed file.
    Std(#[allow(dead_code)] File),
    /// A path in the simulation's set of held locks.
    #[cfg(any(test, feature = "testing"))]
    Sim(#[allow(dead_code)] SimLock),
}
