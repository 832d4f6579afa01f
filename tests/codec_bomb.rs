//! A decompression bomb is refused without the memory its output would take: each codec reads
//! 64 MiB of compressed zeros under a 1 MiB limit while the process's peak resident memory
//! (Linux `VmHWM`, reset through `/proc/self/clear_refs`) is watched, so libzstd's own
//! allocations count too. This file holds one test: nothing else runs meanwhile.

use std::fs;

use seglog::testing::{compress, decompress};
use seglog::{Compression, CorruptKind, Error};

const BOMB_BYTES: usize = 64 << 20;
const LIMIT: usize = 1 << 20;
/// What a codec may hold besides the output: zstd's window (2 MiB at level 3) and contexts,
/// an LZ4 block, a deflate window, and the output vector's last reallocation.
const STATE_BYTES_MAX: usize = 8 << 20;

/// A `/proc/self/status` field in bytes (`VmRSS`, `VmHWM`), where there is one.
fn status_bytes(field: &str) -> Option<usize> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Reset the peak resident set to the current one (Linux: `echo 5 > /proc/self/clear_refs`).
fn reset_peak() -> bool {
    fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn compiled_codecs() -> Vec<Compression> {
    let mut codecs = vec![Compression::None];
    for (on, codec) in [
        (cfg!(feature = "gzip"), Compression::Gzip),
        (cfg!(feature = "snappy"), Compression::Snappy),
        (cfg!(feature = "lz4"), Compression::Lz4),
        (cfg!(feature = "zstd"), Compression::Zstd),
    ] {
        if on {
            codecs.push(codec);
        }
    }
    codecs
}

#[test]
fn bombs_are_refused_within_the_limit_plus_codec_state() {
    for codec in compiled_codecs() {
        let mut bomb = Vec::new();
        compress(codec, &vec![0u8; BOMB_BYTES], &mut bomb).unwrap();
        let before = reset_peak().then(|| status_bytes("VmRSS:")).flatten();
        let result = decompress(codec, &bomb, LIMIT);
        assert!(
            matches!(
                result,
                Err(Error::Corrupt {
                    reason: CorruptKind::DecompressedTooLarge,
                    ..
                })
            ),
            "{codec:?}: {result:?}"
        );
        match (before, status_bytes("VmHWM:")) {
            (Some(before), Some(peak)) => {
                let grew = peak.saturating_sub(before);
                eprintln!(
                    "{codec:?}: {} bytes compressed, peak grew {grew} bytes",
                    bomb.len()
                );
                assert!(
                    grew <= LIMIT + STATE_BYTES_MAX,
                    "{codec:?}: resident memory grew {grew} bytes decompressing a bomb"
                );
            }
            _ => eprintln!("{codec:?}: peak memory not measured here (no /proc/self)"),
        }
    }
}
