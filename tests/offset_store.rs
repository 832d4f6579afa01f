//! Offset stores keep the `OffsetStore` contract, and `FileOffsetStore` survives crashes.
//!
//! How: the public conformance suite runs on `MemoryOffsetStore` (also behind
//! `Arc<dyn OffsetStore>`) and on `FileOffsetStore` with the default and with an always-due
//! compaction threshold. A child process (this test binary re-executed as
//! `offsets_crash_child`, inert unless `SEGLOG_OFFSETS_CRASH_DIR` is set) commits in a loop,
//! each commit setting eight partitions to the iteration number and logging the iteration once
//! acknowledged, with compaction due every few commits; the parent SIGKILLs it at seeded
//! random moments, 24 times, and after each kill reopens the store and checks that all eight
//! offsets are equal (atomicity), carry that iteration's metadata, are at least the last
//! acknowledged iteration and at most one beyond it, and never go back. File-level tests cut
//! the log at every length and flip every byte of it: open never panics, cuts and damage to the
//! last entry fall back to exactly the previous commit, other damage is `Error::Corrupt`.
//! Also: leftovers of interrupted compactions, bounded growth, the directory lock.
//! `SEGLOG_CRASH_SEED` sets the seed of the kill timings.

mod support;
use support::{kill_after, wait_for_first_ack, Rng};

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use seglog::testing::{durable_offset_store_conformance, offset_store_conformance};
use seglog::{
    CommittedOffset, Error, FileOffsetStore, FileOffsetStoreConfig, MemoryOffsetStore, Offset,
    OffsetStore, TopicPartition,
};

type Entries = Vec<(TopicPartition, CommittedOffset)>;

/// The tests here run one at a time: a child forked by the SIGKILL test briefly holds copies
/// of every open descriptor (other tests' directory locks among them) until it execs, which
/// could make another test's reopen fail as if the directory were still open.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn tp(topic: &str, partition: u32) -> TopicPartition {
    TopicPartition::new(topic, partition)
}

fn at(offset: u64) -> CommittedOffset {
    CommittedOffset::new(Offset(offset))
}

/// The offset log files in `dir`, sorted by name (= by generation).
fn log_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            name.starts_with("offsets-")
        })
        .collect();
    files.sort();
    files
}

/// The one current log file in `dir`; nothing else (no temp file, no older generation).
fn the_log(dir: &Path) -> PathBuf {
    let files = log_files(dir);
    assert_eq!(files.len(), 1, "expected exactly one log file: {files:?}");
    let f = files.into_iter().next().unwrap();
    assert!(f.extension().is_some_and(|e| e == "log"), "{f:?}");
    f
}

fn generation(log: &Path) -> u64 {
    let name = log.file_name().unwrap().to_str().unwrap();
    name["offsets-".len()..name.len() - ".log".len()]
        .parse()
        .unwrap()
}

fn reopen(store: FileOffsetStore) -> FileOffsetStore {
    let (dir, config) = (store.dir().to_owned(), store.config().clone());
    drop(store);
    FileOffsetStore::open_with(dir, config).expect("reopen")
}

// ---------------------------------------------------------------------------------------------
// Conformance

#[test]
fn memory_store_conforms() {
    let _serial = serial();
    offset_store_conformance(MemoryOffsetStore::new);
    offset_store_conformance(|| Arc::new(MemoryOffsetStore::new()) as Arc<dyn OffsetStore>);
}

fn file_store_conforms_with(config: FileOffsetStoreConfig) {
    let root = tempfile::tempdir().unwrap();
    let mut n = 0;
    durable_offset_store_conformance(
        || {
            n += 1;
            FileOffsetStore::open_with(root.path().join(format!("s{n}")), config.clone()).unwrap()
        },
        reopen,
    );
}

#[test]
fn file_store_conforms() {
    let _serial = serial();
    file_store_conforms_with(FileOffsetStoreConfig::default());
}

#[test]
fn file_store_conforms_while_compacting_constantly() {
    let _serial = serial();
    file_store_conforms_with(FileOffsetStoreConfig::default().with_compaction_bytes_min(0));
}

// ---------------------------------------------------------------------------------------------
// File store: directory handling and growth

#[test]
fn second_open_of_a_directory_is_refused() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let store = FileOffsetStore::open(dir.path()).unwrap();
    assert!(matches!(
        FileOffsetStore::open(dir.path()),
        Err(Error::AlreadyOpen { .. })
    ));
    store.commit("g", &[(tp("t", 0), at(1))]).unwrap();
    drop(store);
    let store = FileOffsetStore::open(dir.path()).unwrap();
    assert_eq!(store.fetch("g", &tp("t", 0)).unwrap(), Some(at(1)));
}

/// Growth is bounded: the log is rewritten as a snapshot once the commits since the last one
/// reach the threshold, and the old generation is removed.
#[test]
fn compaction_bounds_the_log() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let config = FileOffsetStoreConfig::default().with_compaction_bytes_min(4096);
    let store = FileOffsetStore::open_with(dir.path(), config).unwrap();
    let mut last = Entries::new();
    for i in 0..1500u64 {
        last = (0..4)
            .map(|p| (tp("topic", p), at(i * 10 + u64::from(p)).with_metadata("m")))
            .collect();
        store.commit("g", &last).unwrap();
        let size = fs::metadata(the_log(dir.path())).unwrap().len();
        // threshold + header + snapshot of 4 entries + one commit, with room to spare
        assert!(size <= 8192, "commit {i}: log of {size} bytes");
    }
    let generation_before = generation(&the_log(dir.path()));
    assert!(
        generation_before >= 10,
        "only {generation_before} compactions"
    );
    let store = reopen(store);
    assert_eq!(store.fetch_group("g").unwrap(), last);
    store.compact().unwrap();
    assert_eq!(
        generation(&the_log(dir.path())),
        generation_before + 1,
        "explicit compact"
    );
    let store = reopen(store);
    assert_eq!(store.fetch_group("g").unwrap(), last);
}

/// A crash inside a compaction leaves a temp file, or (between rename and delete) two
/// generations; open uses the newest and removes the rest.
#[test]
fn open_removes_leftovers_of_interrupted_compactions() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let store = FileOffsetStore::open(dir.path()).unwrap();
    store.commit("g", &[(tp("t", 0), at(1))]).unwrap();
    store.compact().unwrap();
    let older = the_log(dir.path());
    let older_bytes = fs::read(&older).unwrap();
    store.commit("g", &[(tp("t", 1), at(2))]).unwrap();
    store.compact().unwrap();
    let current = the_log(dir.path());
    let g = generation(&current);
    assert_eq!(generation(&older) + 1, g);
    store.commit("g", &[(tp("t", 0), at(3))]).unwrap();
    let want = store.fetch_group("g").unwrap();
    drop(store);

    // The previous generation is back (crash between rename and delete), a temp file of the
    // next one is half written, and one of an even older one too.
    fs::write(&older, &older_bytes).unwrap();
    let tmp_next = dir.path().join(format!("offsets-{:020}.log.tmp", g + 1));
    fs::write(&tmp_next, b"half a snapshot").unwrap();
    let tmp_old = dir.path().join(format!("offsets-{:020}.log.tmp", 0));
    fs::write(&tmp_old, []).unwrap();

    let store = FileOffsetStore::open(dir.path()).unwrap();
    assert_eq!(store.fetch_group("g").unwrap(), want);
    assert_eq!(the_log(dir.path()), current, "leftovers not removed");
    store.commit("g", &[(tp("t", 2), at(4))]).unwrap();
    let store = reopen(store);
    assert_eq!(store.fetch("g", &tp("t", 2)).unwrap(), Some(at(4)));
}

// ---------------------------------------------------------------------------------------------
// File store: damaged logs

/// A log built by a sequence of commits to group "g", with its length and state after each.
struct Fixture {
    bytes: Vec<u8>,
    file_name: String,
    /// `lens[k]`, `states[k]`: log length and the group's entries after `k` commits.
    lens: Vec<usize>,
    states: Vec<Entries>,
}

fn fixture(with_snapshot: bool) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = FileOffsetStore::open(dir.path()).unwrap();
    if with_snapshot {
        store
            .commit("g", &[(tp("a", 0), at(1)), (tp("b", 0), at(2))])
            .unwrap();
        store.commit("other", &[(tp("a", 0), at(7))]).unwrap();
        store.compact().unwrap();
    }
    let log = the_log(dir.path());
    let len = || fs::metadata(&log).unwrap().len() as usize;
    let mut lens = vec![len()];
    let mut states = vec![store.fetch_group("g").unwrap()];
    let commits: Vec<Entries> = vec![
        vec![(tp("a", 0), at(10))],
        vec![(tp("a", 1), at(11).with_metadata("x".repeat(300)))],
        vec![
            (tp("a", 0), at(12)),
            (tp("c", 3), at(13)),
            (tp("c", 4), at(14)),
        ],
        vec![(tp("a", 1), at(5))],
        vec![(tp("d", 0), at(u64::MAX).with_metadata("last"))],
    ];
    for list in &commits {
        store.commit("g", list).unwrap();
        lens.push(len());
        states.push(store.fetch_group("g").unwrap());
    }
    drop(store);
    Fixture {
        bytes: fs::read(&log).unwrap(),
        file_name: log.file_name().unwrap().to_str().unwrap().to_owned(),
        lens,
        states,
    }
}

/// Replace the log in `dir` with `bytes` and open it. Returns the store's group "g" (or the
/// open error) and the log's length after open.
fn open_damaged(dir: &Path, f: &Fixture, bytes: &[u8]) -> (Result<Entries, Error>, usize) {
    for old in log_files(dir) {
        fs::remove_file(old).unwrap();
    }
    let path = dir.join(&f.file_name);
    fs::write(&path, bytes).unwrap();
    let result = FileOffsetStore::open(dir).map(|s| s.fetch_group("g").unwrap());
    (result, fs::metadata(&path).unwrap().len() as usize)
}

/// Cut the log at every length: below the first commit (header, snapshot) open reports
/// corruption; from there on it keeps exactly the commits that are whole and cuts the rest.
#[test]
fn log_cut_at_every_length() {
    let _serial = serial();
    for with_snapshot in [false, true] {
        let f = fixture(with_snapshot);
        assert_eq!(*f.lens.last().unwrap(), f.bytes.len());
        let dir = tempfile::tempdir().unwrap();
        for cut in 0..=f.bytes.len() {
            let ctx = format!("snapshot {with_snapshot}, cut at {cut}");
            let (result, len_after) = open_damaged(dir.path(), &f, &f.bytes[..cut]);
            if cut < f.lens[0] {
                assert!(
                    matches!(result, Err(Error::Corrupt { .. })),
                    "{ctx}: {result:?}"
                );
                continue;
            }
            let k = f.lens.iter().rposition(|&l| l <= cut).unwrap();
            let entries = result.unwrap_or_else(|e| panic!("{ctx}: open: {e}"));
            assert_eq!(
                entries, f.states[k],
                "{ctx}: expected the state after {k} commits"
            );
            assert_eq!(len_after, f.lens[k], "{ctx}: torn tail not cut off");
        }
        // A store opened on a cut log takes new commits after the cut.
        let cut = f.lens[2] + 5;
        let _ = open_damaged(dir.path(), &f, &f.bytes[..cut]);
        let store = FileOffsetStore::open(dir.path()).unwrap();
        store.commit("g", &[(tp("z", 0), at(99))]).unwrap();
        let store = reopen(store);
        let mut want = f.states[2].clone();
        want.push((tp("z", 0), at(99)));
        assert_eq!(store.fetch_group("g").unwrap(), want);
    }
}

/// Flip each byte of the log in turn: damage to the last entry is a torn tail (the previous
/// commit is what remains); damage anywhere else is reported as corruption. Never a panic,
/// never a state that was not committed.
#[test]
fn log_with_any_byte_flipped() {
    let _serial = serial();
    for with_snapshot in [false, true] {
        let f = fixture(with_snapshot);
        let last_entry = f.lens[f.lens.len() - 2];
        let previous = &f.states[f.states.len() - 2];
        let dir = tempfile::tempdir().unwrap();
        for pos in 0..f.bytes.len() {
            let mut bytes = f.bytes.clone();
            bytes[pos] ^= 1 << (pos % 8);
            let ctx = format!("snapshot {with_snapshot}, byte {pos} flipped");
            let (result, len_after) = open_damaged(dir.path(), &f, &bytes);
            if pos >= last_entry {
                let entries = result.unwrap_or_else(|e| panic!("{ctx}: open: {e}"));
                assert_eq!(&entries, previous, "{ctx}");
                assert_eq!(len_after, last_entry, "{ctx}: damaged entry not cut off");
            } else {
                assert!(
                    matches!(result, Err(Error::Corrupt { .. })),
                    "{ctx}: {result:?}"
                );
            }
        }
    }
}

/// Bytes after the last entry that no append wrote whole (zeros left by a file system that
/// kept the size but not the data, or junk) are cut off; every commit is kept.
#[test]
fn junk_after_the_last_entry_is_cut_off() {
    let _serial = serial();
    let f = fixture(true);
    let dir = tempfile::tempdir().unwrap();
    let junks: [Vec<u8>; 4] = [
        vec![0; 4096],
        vec![0xff; 100],
        vec![1, 2, 3],
        (0..=255).collect(),
    ];
    for junk in junks {
        let mut bytes = f.bytes.clone();
        bytes.extend_from_slice(&junk);
        let (result, len_after) = open_damaged(dir.path(), &f, &bytes);
        assert_eq!(result.unwrap(), *f.states.last().unwrap(), "junk {junk:?}");
        assert_eq!(len_after, f.bytes.len());
    }
}

// ---------------------------------------------------------------------------------------------
// File store: SIGKILL in the middle of commits and compactions

const ENV_DIR: &str = "SEGLOG_OFFSETS_CRASH_DIR";
const ENV_ACKS: &str = "SEGLOG_OFFSETS_CRASH_ACKS";
const ENV_SEED: &str = "SEGLOG_CRASH_SEED";
const CRASH_GROUP: &str = "crash-group";
const KILLS: u64 = 24;

/// Small enough that a compaction is due every few commits.
fn crash_config() -> FileOffsetStoreConfig {
    FileOffsetStoreConfig::default().with_compaction_bytes_min(2048)
}

fn crash_partitions() -> Vec<TopicPartition> {
    let mut v: Vec<TopicPartition> = (0..5).map(|p| tp("orders", p)).collect();
    v.extend((0..3).map(|p| tp("payments", p)));
    v.sort();
    v
}

/// Metadata of iteration `i`, of varied length so that entries have varied sizes.
fn crash_metadata(i: u64) -> String {
    format!("iteration {i} {}", "x".repeat((i % 97) as usize))
}

fn crash_commit(i: u64) -> Entries {
    crash_partitions()
        .into_iter()
        .map(|p| (p, at(i).with_metadata(crash_metadata(i))))
        .collect()
}

/// The child: commit iterations forever from where the store stands, logging each
/// acknowledged one. Does nothing in a normal run.
#[test]
fn offsets_crash_child() {
    let _serial = serial();
    let Ok(dir) = std::env::var(ENV_DIR) else {
        return;
    };
    let acks_path = std::env::var(ENV_ACKS).expect("acks path");
    let store = FileOffsetStore::open_with(&dir, crash_config()).expect("child: open");
    let first = store
        .fetch(CRASH_GROUP, &crash_partitions()[0])
        .expect("child: fetch")
        .map_or(1, |c| c.offset.0 + 1);
    let mut acks = OpenOptions::new()
        .create(true)
        .append(true)
        .open(acks_path)
        .expect("child: open acks file");
    for i in first.. {
        store
            .commit(CRASH_GROUP, &crash_commit(i))
            .expect("child: commit");
        // One unbuffered write per line: a kill leaves whole lines.
        acks.write_all(format!("{i}\n").as_bytes())
            .expect("child: write ack");
    }
}

/// The last acknowledged iteration in an acks file (only newline-terminated lines count).
fn last_ack(path: &Path) -> Option<u64> {
    let text = fs::read_to_string(path).unwrap_or_default();
    let complete = &text[..text.rfind('\n').map_or(0, |e| e + 1)];
    complete
        .lines()
        .map(|l| l.parse().unwrap_or_else(|_| panic!("bad ack line {l:?}")))
        .max()
}

/// Spawn a child, kill it after `delay_ms` (counted from the first ack if `after_ack`).
fn run_crash_child(dir: &Path, acks: &Path, after_ack: bool, delay_ms: u64, ctx: &str) {
    let exe = std::env::current_exe().expect("current_exe");
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "offsets_crash_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ENV_DIR, dir)
        .env(ENV_ACKS, acks)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn child");
    if after_ack {
        wait_for_first_ack(&mut child, acks);
    }
    kill_after(child, Duration::from_millis(delay_ms), ctx);
}

#[test]
fn sigkill_during_commits() {
    let _serial = serial();
    let seed = std::env::var(ENV_SEED)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x00FF_5E75_u64);
    let mut rng = Rng::from_state(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("offsets");
    let partitions: BTreeSet<TopicPartition> = crash_partitions().into_iter().collect();
    // The highest acknowledged iteration so far, and the iteration the last reopen showed.
    let mut acked: Option<u64> = None;
    let mut recovered: Option<u64> = None;
    let mut kills_mid_commit = 0;
    for round in 0..KILLS {
        let after_ack = rng.range(0, 4) != 0;
        let delay = if after_ack {
            rng.range(1, 40)
        } else {
            rng.range(1, 30)
        };
        let ctx = format!("seed {seed} round {round} (after ack {after_ack}, {delay} ms)");
        let acks_path = tmp.path().join(format!("acks-{round}"));
        run_crash_child(&dir, &acks_path, after_ack, delay, &ctx);
        let round_ack = last_ack(&acks_path);
        if round_ack.is_some() {
            kills_mid_commit += 1;
        }
        acked = acked.max(round_ack);

        let store = FileOffsetStore::open_with(&dir, crash_config())
            .unwrap_or_else(|e| panic!("{ctx}: open after kill: {e}"));
        let entries = store.fetch_group(CRASH_GROUP).unwrap();
        let now = if entries.is_empty() {
            None
        } else {
            let got: BTreeSet<TopicPartition> = entries.iter().map(|(p, _)| p.clone()).collect();
            assert_eq!(got, partitions, "{ctx}: a commit is partly visible");
            let i = entries[0].1.offset.0;
            for (p, c) in &entries {
                assert_eq!(c.offset.0, i, "{ctx}: {p} differs: torn commit {entries:?}");
                assert_eq!(c.metadata, crash_metadata(i), "{ctx}: {p} metadata");
            }
            Some(i)
        };
        assert!(now >= acked, "{ctx}: acknowledged {acked:?}, found {now:?}");
        assert!(
            now >= recovered,
            "{ctx}: went back from {recovered:?} to {now:?}"
        );
        // The child commits one iteration at a time: at most one beyond the last ack.
        let in_flight = acked.max(recovered).map_or(1, |i| i + 1);
        assert!(
            now.is_none_or(|i| i <= in_flight),
            "{ctx}: {now:?} was never committed"
        );
        recovered = now;
        // Open removed every leftover of an interrupted compaction.
        the_log(&dir);
    }
    assert!(
        kills_mid_commit * 2 >= KILLS,
        "only {kills_mid_commit} of {KILLS} kills hit commits"
    );
    let log = the_log(&dir);
    assert!(generation(&log) > 0, "no compaction ran during the test");
}
