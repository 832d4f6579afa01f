//! Conformance suites for the crate's traits (feature `testing`).
//!
//! Each suite is a plain function that takes a factory for the implementation under test and
//! panics, with the name of the failed check, when the implementation breaks the trait's
//! documented contract. Call it from a `#[test]` in your own crate:
//!
//! ```
//! # fn main() {
//! seglog::testing::offset_store_conformance(seglog::MemoryOffsetStore::new);
//! # }
//! ```

pub mod assignor;
pub mod offset_store;

pub use crate::io::sim::{SimError, SimFs, SimOp, SECTOR_BYTES};
pub use crate::topic::partitioner::partitioner_conformance;
pub use assignor::assignor_conformance;
pub use offset_store::{durable_offset_store_conformance, offset_store_conformance};
