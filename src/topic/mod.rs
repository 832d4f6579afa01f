//! Layer 5, topics: a [`LogStore`](store::LogStore) owns one data directory of topics, each a
//! set of partitions, with their metadata file, the partitioner that routes records, and the
//! maintenance thread that flushes and applies retention.

pub(crate) mod copies;
pub(crate) mod descriptors;
pub(crate) mod dir_kind;
pub(crate) mod handle;
pub(crate) mod maintenance;
pub(crate) mod metadata;
pub(crate) mod partitioner;
pub(crate) mod store;
pub(crate) mod sweep;
