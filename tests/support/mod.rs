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

/// The fields of a record a property test generates, as plain vectors (strategies build it;
/// `record` makes the [`seglog::Record`] to append).
#[derive(Debug, Clone)]
pub struct RecordSpec {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    pub timestamp_ms: i64,
}

impl RecordSpec {
    /// The record to append.
    pub fn record(&self) -> seglog::Record {
        use bytes::Bytes;
        seglog::Record {
            key: self.key.clone().map(Bytes::from),
            value: self.value.clone().map(Bytes::from),
            headers: self
                .headers
                .iter()
                .map(|(k, v)| seglog::Header {
                    key: Bytes::from(k.clone()),
                    value: v.clone().map(Bytes::from),
                })
                .collect(),
            timestamp_ms: self.timestamp_ms,
        }
    }
}

/// A small partition for damage tests: 1 KiB segments, an index entry every 100 bytes, no
/// fsync, no retention, and under a compacting `policy` compaction that runs at once and
/// keeps tombstones.
pub fn small_partition_config(policy: seglog::CleanupPolicy) -> seglog::PartitionConfig {
    seglog::PartitionConfig::default()
        .with_durability(seglog::Durability::NoSync)
        .with_segment_bytes(1024)
        .with_segment_ms(None)
        .with_retention_ms(None)
        .with_index_interval_bytes(100)
        .with_index_bytes_max(4096)
        .with_cleanup_policy(policy)
        .with_compaction(
            seglog::CompactionConfig::default()
                .with_min_cleanable_dirty_ratio(0.0)
                .with_min_compaction_lag_ms(0)
                .with_delete_retention_ms(u64::MAX / 4),
        )
}
