//! Layer 3, the log: a [`Partition`](partition::Partition) is a directory of segments, each a
//! `.log` file of batches with a sparse `.index` and `.timeindex`. Append, read, sync, recover,
//! retain, compact and truncate live here.

pub(crate) mod config;
pub(crate) mod epoch;
pub(crate) mod index;
pub(crate) mod partition;
pub mod retention;
pub(crate) mod segment;
pub(crate) mod witness;
