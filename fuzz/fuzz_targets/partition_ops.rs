//! Fuzz target: see `fuzz/bodies/partition_ops.rs` (the body, also run by `tests/model.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../bodies/partition_ops.rs"]
mod body;

fuzz_target!(|data: &[u8]| body::partition_ops(data));
