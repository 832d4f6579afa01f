//! Fuzz target: see `fuzz/bodies/damaged_dir.rs` (the body, also run by
//! `tests/damaged_dir.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../bodies/damaged_dir.rs"]
mod body;

fuzz_target!(|data: &[u8]| body::damaged_dir(data));
