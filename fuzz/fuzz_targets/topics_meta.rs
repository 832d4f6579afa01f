//! Fuzz target: see `fuzz/bodies/topics_meta.rs` (the body, also run by
//! `tests/metadata_fuzz.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../bodies/topics_meta.rs"]
mod body;

fuzz_target!(|data: &[u8]| body::topics_meta(data));
