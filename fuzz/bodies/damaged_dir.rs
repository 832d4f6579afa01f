//! The body of the `damaged_dir` fuzz target, a plain function that `tests/damaged_dir.rs`
//! also runs (`#[path]` module) so it is built and exercised by `cargo test`.
//!
//! A small partition (several segments, a time index, a moved log start) is written by seglog
//! and closed, cleanly or not; the input then damages its directory: bytes changed in any
//! file, files cut, zeroed, extended with garbage or deleted. The partition is opened (with or
//! without `truncate_corrupt`) and read in full. Opening may fail with a typed error; after
//! it succeeds, every read either fails with a typed error or returns records exactly as
//! written, each at its own offset: never a panic, never a wrong record. Time lookups, when
//! they answer, answer with an offset whose record is at or after the time asked.
//!
//! The partition does not compact: every record's value names its offset, and offsets are
//! dense, so a record at a wrong offset cannot pass unnoticed.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use seglog::{Durability, Offset, Partition, PartitionConfig, Record};

const RECORDS: u64 = 60;

/// A directory of its own, removed on drop (the fuzz crate has no `tempfile`).
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("seglog-fuzz-dd-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn config(truncate_corrupt: bool) -> PartitionConfig {
    PartitionConfig::default()
        .with_durability(Durability::NoSync)
        .with_segment_bytes(1024)
        .with_segment_ms(None)
        .with_index_interval_bytes(128)
        .with_truncate_corrupt(truncate_corrupt)
}

fn value(o: u64) -> String {
    format!("value {o} {}", "v".repeat((o % 17) as usize))
}

fn timestamp(o: u64) -> i64 {
    1_000 + i64::try_from(o).expect("small") * 10
}

/// Batches of 1 to 4 records; the log start moved to 3; closed cleanly or dropped after a
/// flush (a crash: recovery scans from the recovery point).
fn write_partition(dir: &Path, clean: bool) {
    let p = Partition::open(dir, config(false)).expect("open a new partition");
    let mut o = 0;
    while o < RECORDS {
        let n = (o % 4 + 1).min(RECORDS - o);
        let batch: Vec<Record> = (o..o + n)
            .map(|i| Record::new(value(i)).with_timestamp(timestamp(i)))
            .collect();
        p.append(&batch).expect("append");
        o += n;
    }
    p.delete_records_before(Offset(3)).expect("delete records");
    if clean {
        p.close().expect("close");
    } else {
        p.flush().expect("flush");
        p.simulate_crash();
    }
}

/// Every file of the directory, sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

/// Apply the damage the input describes: 4 bytes per change (file, kind, two argument bytes).
fn damage(dir: &Path, data: &[u8]) {
    for op in data.chunks_exact(4) {
        let files = files(dir);
        if files.is_empty() {
            return;
        }
        let path = &files[usize::from(op[0]) % files.len()];
        let Ok(mut bytes) = fs::read(path) else {
            continue;
        };
        let arg = usize::from(u16::from_le_bytes([op[2], op[3]]));
        match op[1] % 6 {
            0 | 1 if !bytes.is_empty() => {
                let at = arg % bytes.len();
                bytes[at] ^= op[3].max(1);
            }
            2 => bytes.truncate(arg % (bytes.len() + 1)),
            3 if !bytes.is_empty() => {
                let at = arg % bytes.len();
                let end = (at + usize::from(op[3])).min(bytes.len());
                bytes[at..end].fill(0);
            }
            4 => bytes.extend_from_slice(op),
            5 => {
                let _ = fs::remove_file(path);
                continue;
            }
            _ => {}
        }
        fs::write(path, &bytes).expect("write");
    }
}

/// Read the whole log: whatever is returned is exact.
fn read_all(p: &Partition) {
    let end = p.log_end_offset().0;
    let mut at = p.log_start_offset().0;
    while at < end {
        let Ok(read) = p.read(Offset(at), 700) else {
            // A typed error; skip ahead to try the rest.
            at += 1;
            continue;
        };
        let mut last = None;
        for r in read.records() {
            let Ok(r) = r else { break };
            let o = r.offset.0;
            assert!(o >= at && o < end, "record {o} read at {at}, log end {end}");
            assert!(last.is_none_or(|l| l < o), "offsets out of order at {o}");
            assert_eq!(
                r.value.as_deref(),
                Some(value(o).as_bytes()),
                "wrong record at offset {o}"
            );
            assert_eq!(
                r.timestamp_ms,
                timestamp(o),
                "wrong timestamp at offset {o}"
            );
            last = Some(o);
        }
        at = read.next_offset().0.max(at + 1);
    }
}

fn check_time_lookups(p: &Partition) {
    for o in [0, 5, 50, RECORDS - 1, RECORDS + 5] {
        let ts = timestamp(o);
        let Ok(Some(found)) = p.offset_for_timestamp(ts) else {
            continue;
        };
        assert!(
            found.0 >= o.min(RECORDS),
            "time {ts}: offset {found} holds an earlier record"
        );
        if let Ok(read) = p.read(found, 1) {
            if let Some(Ok(r)) = read.records().next() {
                assert!(
                    r.timestamp_ms >= ts || r.offset > found,
                    "time {ts} answered {found}"
                );
            }
        }
    }
}

/// Write a partition, damage it as `data` says, open it and read everything.
pub fn damaged_dir(data: &[u8]) {
    let scratch = Scratch::new();
    let flags = data.first().copied().unwrap_or(0);
    write_partition(&scratch.0, flags & 1 == 0);
    damage(&scratch.0, data.get(1..).unwrap_or_default());
    let Ok(p) = Partition::open(&scratch.0, config(flags & 2 != 0)) else {
        return;
    };
    assert!(p.log_start_offset() <= p.log_end_offset());
    read_all(&p);
    check_time_lookups(&p);
}
