//! Layer 2, files: the file seam every byte on disk goes through, the one memory-map module
//! (all of the crate's `unsafe` code), atomically replaced checkpoint files and lock files.

pub(crate) mod checkpoint;
pub(crate) mod fault;
pub(crate) mod mmap;
