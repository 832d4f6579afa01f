//! Seglog's index files as Kafka sees them, and Kafka's partition-directory files as seglog
//! sees them: indexes seglog writes pass Kafka 3.8's own index sanity check (DumpLogSegments,
//! `../shared/kafka/dump-log-segments`, or the path in `KAFKA_DUMP_LOG_SEGMENTS`); the files a
//! Kafka broker keeps beside its segments (`.txnindex`, `.snapshot`, `leader-epoch-checkpoint`,
//! `partition.metadata`) survive `Partition::open`, clean or after a crash.

use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::Bytes;
use seglog::{Durability, Offset, Partition, PartitionConfig, Record};

fn config() -> PartitionConfig {
    PartitionConfig::default()
        .with_durability(Durability::NoSync)
        .with_segment_ms(None)
        .with_retention_ms(None)
        .with_retention_bytes(None)
        .with_segment_bytes(16 << 10)
        .with_index_interval_bytes(256)
}

/// Several segments of batches of 1-4 records, timestamps rising with some going back.
fn write_partition(dir: &Path) -> u64 {
    let p = Partition::open(dir, config()).unwrap();
    for i in 0..300u64 {
        let batch: Vec<Record> = (0..1 + i % 4)
            .map(|j| Record {
                key: Some(Bytes::from(format!("k{}", (i + j) % 17))),
                value: Some(Bytes::from(vec![b'v'; (i as usize * 7) % 120])),
                headers: Vec::new(),
                timestamp_ms: 1_700_000_000_000 + (i * 10) as i64 - ((i % 5) * 25) as i64,
            })
            .collect();
        p.append(&batch).unwrap();
    }
    let end = p.log_end_offset().0;
    assert!(p.segment_count() >= 3);
    p.close().unwrap();
    end
}

fn files_with_ext(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

/// Kafka's DumpLogSegments, if it and `java` are on this machine.
fn dump_log_segments() -> Option<PathBuf> {
    let tool = std::env::var_os("KAFKA_DUMP_LOG_SEGMENTS").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/kafka/dump-log-segments"),
        PathBuf::from,
    );
    let java = Command::new("java").arg("-version").output();
    if !tool.exists() || java.is_err() {
        eprintln!(
            "SKIPPED: Kafka's DumpLogSegments needs java and {} (set KAFKA_DUMP_LOG_SEGMENTS)",
            tool.display()
        );
        return None;
    }
    Some(tool)
}

/// Tests here spawn Kafka's tool while others reopen partitions: a child between `fork` and
/// `exec` briefly shares the parent's open files, and with them the directory lock a `close`
/// just released. One at a time, so a reopen never meets a lock held by a half-born child.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Run Kafka's tool with `flag` on every `.index` and `.timeindex` of `dir` in one JVM;
/// returns the file names, stdout and stderr (the tool exits 0 even when it finds problems).
fn dump_indexes(tool: &Path, dir: &Path, flag: &str) -> (Vec<String>, String, String) {
    let mut files = files_with_ext(dir, "index");
    files.extend(files_with_ext(dir, "timeindex"));
    let list: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    let out = Command::new(tool)
        .arg("--files")
        .arg(list.join(","))
        .arg(flag)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stdout}\n{stderr}");
    (list, stdout, stderr)
}

#[test]
fn seglog_indexes_pass_kafkas_index_sanity_check() {
    let _serial = serial();
    let Some(tool) = dump_log_segments() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    write_partition(dir.path());
    let (list, stdout, stderr) = dump_indexes(&tool, dir.path(), "--index-sanity-check");
    // Kafka exits 0 even when it finds problems: judge each file's line.
    for f in &list {
        let verdicts = [
            format!("{f} passed sanity check."),
            format!("{f} is empty."),
        ];
        assert!(
            stdout
                .lines()
                .any(|l| verdicts.iter().any(|v| l.contains(v))),
            "{f}:\n{stdout}\n{stderr}"
        );
    }
    let passed = stdout.matches("passed sanity check").count();
    assert!(passed >= 2 * 3, "the segments have entries: {stdout}");
    assert!(!stderr.contains("Exception"), "{stderr}");
}

#[test]
fn kafka_files_beside_the_segments_survive_open() {
    let _serial = serial();
    for crash in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let end = write_partition(dir.path());
        let bases = {
            let p = Partition::open(dir.path(), config()).unwrap();
            let b = p.segment_base_offsets();
            if crash {
                p.simulate_crash();
            }
            b
        };
        let seg = |base: Offset, ext: &str| seglog::segment_path(dir.path(), base, ext);
        // An aborted transaction (version 0, producer 7, offsets 3..=5, LSO 6).
        let mut txn = 0i16.to_be_bytes().to_vec();
        for v in [7i64, 3, 5, 6] {
            txn.extend_from_slice(&v.to_be_bytes());
        }
        let kept = [
            (seg(bases[0], "txnindex"), txn.clone()),
            // Not a valid index (a partial entry): still kept, not ours to repair.
            (seg(bases[1], "txnindex"), vec![0u8; 35]),
            // No log beside it: not an orphan to delete either.
            (seg(Offset(end + 1000), "txnindex"), txn),
            (seg(bases[1], "snapshot"), b"producer state".to_vec()),
            (
                dir.path().join("leader-epoch-checkpoint"),
                b"0\n1\n0 0\n".to_vec(),
            ),
            (
                dir.path().join("partition.metadata"),
                b"version: 0\ntopic_id: AAAAAAAAAAAAAAAAAAAAAA\n".to_vec(),
            ),
        ];
        for (path, bytes) in &kept {
            std::fs::write(path, bytes).unwrap();
        }
        let p = Partition::open(dir.path(), config()).unwrap();
        assert_eq!(p.segment_base_offsets(), bases, "crash {crash}");
        assert_eq!(p.log_end_offset(), Offset(end), "crash {crash}");
        // Loads every segment (and its .txnindex) on the way.
        let mut next = Offset(0);
        while next.0 < end {
            let read = p.read(next, 64 << 10).unwrap();
            assert_eq!(read.records().next().unwrap().unwrap().offset, next);
            next = read.next_offset();
        }
        p.close().unwrap();
        drop(p);
        let _p = Partition::open(dir.path(), config()).unwrap();
        for (path, bytes) in &kept {
            assert_eq!(
                std::fs::read(path).ok().as_ref(),
                Some(bytes),
                "crash {crash}: {path:?}"
            );
        }
    }
}

/// Kafka's `--verify-index-only` compares every index entry with the log: needs seglog's
/// `.log` to be Kafka record batch v2.
#[test]
fn seglog_indexes_match_their_log_for_kafkas_verify_index_only() {
    let _serial = serial();
    let Some(tool) = dump_log_segments() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    write_partition(dir.path());
    let (list, stdout, stderr) = dump_indexes(&tool, dir.path(), "--verify-index-only");
    for f in &list {
        assert!(stdout.contains(&format!("Dumping {f}")), "{f}:\n{stdout}");
    }
    for bad in [
        "Mismatches",
        "not found",
        "Exception",
        "out of order",
        "error",
    ] {
        assert!(
            !stdout.contains(bad) && !stderr.contains(bad),
            "{bad}:\n{stdout}\n{stderr}"
        );
    }
}
