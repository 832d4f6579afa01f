//! Memory maps of files: read-only maps of segment logs and sealed indexes handed out as
//! [`Bytes`] without copying, and writable fixed-size maps of active index files.
//!
//! The only module with `unsafe` code. Why it is sound here:
//! - every mapped file belongs to one open partition, which holds its directory's lock, so no
//!   other cooperating handle, in this process or another, writes or resizes it;
//! - log files are append-only while open, so bytes below a published length never change
//!   under a read-only map;
//! - a read-only map may extend past the end of the file (the active segment grows into it),
//!   but readers only touch bytes below the published high-watermark position or a sealed
//!   segment's size, which the file always covers;
//! - files are only shortened where no reader can have looked: recovery before any map exists,
//!   the zero-filled preallocation tail at a roll or close, and an index file after its
//!   writable map was dropped;
//! - a writable map is the only view of its index file's bytes while it lives (the index
//!   reads its entries through it) and the file keeps the mapped length until it is dropped;
//! - deleting a file (retention) leaves existing maps valid.
//!
//! The usual caveat of memory-mapped storage applies: another process truncating a file behind
//! seglog's back, or a disk read error, surfaces as `SIGBUS`, not as an `Err`.
#![allow(unsafe_code)]

use std::fs::File;

use bytes::Bytes;
use memmap2::MmapOptions;

/// Map the first `len` bytes of `file` read-only.
pub(crate) fn map(file: &File, len: usize) -> std::io::Result<Bytes> {
    if len == 0 {
        return Ok(Bytes::new());
    }
    // SAFETY: see the module docs: the mapped range below the readable limit is never
    // modified or truncated while this partition has the file open.
    let map = unsafe { MmapOptions::new().len(len).map(file) }?;
    Ok(Bytes::from_owner(map))
}

/// A writable shared map of the first bytes of a file, of fixed length.
pub(crate) struct MapMut(memmap2::MmapMut);

impl MapMut {
    /// Map the first `len` bytes of `file` (at least that long) read-write. `len` must not be 0.
    pub(crate) fn new(file: &File, len: usize) -> std::io::Result<Self> {
        assert!(len > 0, "an empty writable map");
        // SAFETY: see the module docs: the file is exclusively this index's, and it keeps at
        // least `len` bytes until this map is dropped.
        let map = unsafe { MmapOptions::new().len(len).map_mut(file) }?;
        Ok(MapMut(map))
    }

    /// The mapped bytes.
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.0
    }

    /// The mapped bytes, writable; writes reach the file through the page cache.
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.0
    }
}
