//! Layer 2, files: the file seam every byte on disk goes through (`fs`), the one memory-map
//! module (all of the crate's `unsafe` code), atomically replaced checkpoint files and lock
//! files, and (feature `testing`) a simulated file system that can lose power.

pub(crate) mod checkpoint;
pub(crate) mod fs;
pub(crate) mod mmap;
#[cfg(any(test, feature = "testing"))]
pub(crate) mod sim;
