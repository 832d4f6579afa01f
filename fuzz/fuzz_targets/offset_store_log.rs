//! Fuzz target: see `fuzz/bodies/offset_store_log.rs` (the body, also run by
//! `tests/offset_store_fuzz.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../bodies/offset_store_log.rs"]
mod body;

fuzz_target!(|data: &[u8]| body::offset_store_log(data));
