//! Fuzz target: see `fuzz/bodies/load_indexes.rs` (the body, also run by `tests/index_fuzz.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../bodies/load_indexes.rs"]
mod body;

fuzz_target!(|data: &[u8]| body::load_indexes(data));
