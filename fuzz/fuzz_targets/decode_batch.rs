//! Fuzz target: see `fuzz/bodies/decode_batch.rs` (the body, also run by `tests/decode.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../bodies/decode_batch.rs"]
mod body;

fuzz_target!(|data: &[u8]| body::decode_batch(data));
