//! The body of the `offset_store_log` fuzz target, a plain function that
//! `tests/offset_store_fuzz.rs` also runs (`#[path]` module) so it is built and exercised by
//! `cargo test`.
//!
//! The file offset store's log is replaced by bytes derived from the input, three ways: the
//! raw input; a valid file header followed by the input wrapped as entries whose lengths and
//! CRCs are right (so the item decoder behind the checksums is reached); and a real log of
//! commits with the input's damage applied (bytes changed, a cut, garbage appended). Opening
//! never panics: it fails with a typed error or succeeds, and then
//! - for a real log, the state is that of a prefix of its commits: never an offset that was
//!   not committed, never an older one for a newer;
//! - the store works: a new commit is fetched back, also after a reopen.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use seglog::{CommittedOffset, FileOffsetStore, Offset, OffsetStore, TopicPartition};

/// A directory of its own, removed on drop (the fuzz crate has no `tempfile`).
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("seglog-fuzz-os-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// CRC-32C (Castagnoli), bit by bit: the log's checksum.
fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0x82F6_3B78 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

const COMMITS: u64 = 12;
const GROUP: &str = "g";

fn tp(p: u32) -> TopicPartition {
    TopicPartition::new("t", p)
}

/// Commit `i`: partition `i % 3` at offset `10 * i + 1`, with metadata of its own.
fn commit(i: u64) -> Vec<(TopicPartition, CommittedOffset)> {
    let p = u32::try_from(i % 3).expect("small");
    vec![(
        tp(p),
        CommittedOffset::new(Offset(10 * i + 1)).with_metadata(format!("m{i}")),
    )]
}

/// The group's offsets after the first `k` commits.
fn state_after(k: u64) -> Vec<(TopicPartition, CommittedOffset)> {
    let mut by_partition = std::collections::BTreeMap::new();
    for i in 0..k {
        for (tp, c) in commit(i) {
            by_partition.insert(tp.partition, (tp, c));
        }
    }
    by_partition.into_values().collect()
}

/// The only log file in `dir`.
fn log_file(dir: &Path) -> PathBuf {
    fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .find(|p| p.to_string_lossy().ends_with(".log"))
        .expect("a log file")
}

/// A store with `commits` commits, closed; returns its log's path.
fn write_store(dir: &Path, commits: u64) -> PathBuf {
    let store = FileOffsetStore::open(dir).expect("open a new store");
    for i in 0..commits {
        store.commit(GROUP, &commit(i)).expect("commit");
    }
    drop(store);
    log_file(dir)
}

/// Apply the input's damage to `file`: (position, byte) changes, then a cut, then garbage.
fn damage(file: &mut Vec<u8>, data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut chunks = rest.chunks_exact(3);
    for c in chunks.by_ref().take(usize::from(mode % 4)) {
        if file.is_empty() {
            break;
        }
        let at = usize::from(u16::from_le_bytes([c[0], c[1]])) % file.len();
        file[at] ^= c[2].max(1);
    }
    if mode & 0x10 != 0 && !file.is_empty() {
        let cut = usize::from(rest.first().copied().unwrap_or(0)) * 7 % file.len();
        file.truncate(file.len() - cut);
    }
    if mode & 0x20 != 0 {
        file.extend_from_slice(chunks.remainder());
    }
}

/// The entry framing: payload length, payload CRC, header CRC, payload.
fn entry(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + payload.len());
    out.extend_from_slice(&u32::try_from(payload.len()).expect("small").to_le_bytes());
    out.extend_from_slice(&crc32c(payload).to_le_bytes());
    let header_crc = crc32c(&out[..8]);
    out.extend_from_slice(&header_crc.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// A store that opened: a new commit is fetched back, and again after a reopen.
fn check_works(dir: &Path, store: FileOffsetStore) {
    let marker = vec![(
        TopicPartition::new("after", 0),
        CommittedOffset::new(Offset(77)),
    )];
    let fetch = |s: &FileOffsetStore| s.fetch("after-fuzz", &TopicPartition::new("after", 0));
    match store.commit("after-fuzz", &marker) {
        Ok(()) => {
            assert_eq!(fetch(&store).expect("fetch"), Some(marker[0].1.clone()));
            drop(store);
            let again = FileOffsetStore::open(dir).expect("reopen after a commit");
            assert_eq!(fetch(&again).expect("fetch"), Some(marker[0].1.clone()));
        }
        // The damage may leave the log unwritable (an error, never a panic).
        Err(_) => drop(store),
    }
}

/// Open a store whose log is derived from `data` (see the module docs).
pub fn offset_store_log(data: &[u8]) {
    let scratch = Scratch::new();
    let dir = &scratch.0;
    let selector = data.first().copied().unwrap_or(0);
    let data = data.get(1..).unwrap_or_default();
    match selector % 3 {
        0 => {
            let log = write_store(dir, 0);
            fs::write(&log, data).expect("write");
            if let Ok(store) = FileOffsetStore::open(dir) {
                check_works(dir, store);
            }
        }
        1 => {
            let log = write_store(dir, 0);
            let mut bytes = fs::read(&log).expect("read");
            bytes.truncate(32);
            for payload in data.split(|&b| b == 0xff) {
                bytes.extend_from_slice(&entry(payload));
            }
            fs::write(&log, &bytes).expect("write");
            if let Ok(store) = FileOffsetStore::open(dir) {
                check_works(dir, store);
            }
        }
        _ => {
            let log = write_store(dir, COMMITS);
            let mut bytes = fs::read(&log).expect("read");
            damage(&mut bytes, data);
            fs::write(&log, &bytes).expect("write");
            let Ok(store) = FileOffsetStore::open(dir) else {
                return;
            };
            let got = store.fetch_group(GROUP).expect("fetch");
            assert!(
                (0..=COMMITS).any(|k| state_after(k) == got),
                "a state no prefix of the commits gives: {got:?}"
            );
            check_works(dir, store);
        }
    }
}
