//! Layer 4, replication: the seam between a partition and the copies of it kept elsewhere.
//!
//! Empty for now. The partition already offers what a replication scheme needs below this
//! layer (a settable high watermark, truncation to an offset); the `Replicator` trait, its
//! do-nothing implementation and an in-process replica set will live here, between the log
//! and the topic layer.
