//! Read-only memory maps of segment log files, handed out as [`Bytes`] without copying.
//!
//! Together with `index.rs`, the only place with `unsafe` code. Why it is sound here:
//! - seglog's log files are append-only while a partition has them open (it holds the
//!   directory's lock), so bytes below a published length never change under a map;
//! - a map may extend past the end of the file (the active segment grows into it), but readers
//!   only touch bytes below the published high-watermark position or a sealed segment's size,
//!   which the file always covers;
//! - files are only shortened where no reader can have looked: recovery before any map exists,
//!   and the zero-filled preallocation tail at a roll or close;
//! - deleting a file (retention) leaves existing maps valid.
//!
//! The usual caveat of memory-mapped storage applies: another process truncating a segment
//! file behind seglog's back, or a disk read error, surfaces as `SIGBUS`, not as an `Err`.
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
