//! Helpers shared by the integration tests: a seeded random sequence and the parent side of
//! the SIGKILL crash tests. Each test binary uses part of it.
#![allow(dead_code)]

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use seglog::Partition;

/// A tiny deterministic xorshift64 generator: no extra crates, reproducible from the seed.
pub struct Rng(u64);

impl Rng {
    /// Start from `state` as it is (made odd, so never zero).
    pub fn from_state(state: u64) -> Rng {
        Rng(state | 1)
    }

    /// Start from a well-mixed state derived from `seed` (nearby seeds give unrelated
    /// sequences).
    pub fn seeded(seed: u64) -> Rng {
        Rng::from_state(mix(seed))
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform-ish in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    /// Uniform-ish in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// splitmix64 finaliser.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Wait until the child's acknowledgement file at `acks` is non-empty, the child exits, or a
/// minute passes (then the caller's status check reports what happened).
pub fn wait_for_first_ack(child: &mut Child, acks: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::metadata(acks).is_ok_and(|m| m.len() > 0)
        && child.try_wait().expect("try_wait").is_none()
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// SIGKILL the child after `delay` and check that it died by that signal, not on its own.
pub fn kill_after(mut child: Child, delay: Duration, ctx: &str) {
    std::thread::sleep(delay);
    child.kill().expect("kill child");
    let out = child.wait_with_output().expect("wait for child");
    assert_eq!(
        out.status.signal(),
        Some(9),
        "{ctx}: child did not die by our SIGKILL ({:?})\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every record of `p` up to its log end (a follower's read, past the high watermark): (offset, value).
pub fn log_of(p: &Partition) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    let mut next = p.log_start_offset();
    while next < p.log_end_offset() {
        let read = p.read_uncommitted(next, 1 << 20).unwrap();
        for r in read.records() {
            let r = r.unwrap();
            out.push((
                r.offset.0,
                String::from_utf8(r.value.unwrap().to_vec()).unwrap(),
            ));
        }
        next = read.next_offset();
    }
    out
}
