//! The body of the `load_indexes` fuzz target, a plain function that `tests/index_fuzz.rs`
//! also runs (`#[path]` module) so it is built and exercised by `cargo test`.
//!
//! A partition of two sealed segments is written by seglog and closed cleanly; the fuzz input
//! then replaces the first segment's `.index` and `.timeindex` (and, when long enough, is also
//! appended to the `.index` as garbage), and the partition is reopened and read in full.
//! Whatever the index bytes, opening must succeed, never panic, and every read must return
//! exactly the records written, at their offsets, and `offset_for_timestamp` must answer as
//! the records say: indexes are caches, checked against the log and rebuilt on any doubt.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use seglog::{Durability, Offset, Partition, PartitionConfig, Record};

const RECORDS: u64 = 200;

/// A directory of its own, removed on drop (the fuzz crate has no `tempfile`).
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("seglog-fuzz-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn config() -> PartitionConfig {
    PartitionConfig::default()
        .with_durability(Durability::NoSync)
        .with_segment_bytes(1024)
        .with_segment_ms(None)
        .with_index_interval_bytes(256)
}

fn value(o: u64) -> String {
    format!("value-{o}-{}", "v".repeat((o % 23) as usize))
}

fn write_partition(dir: &Path) {
    let p = Partition::open(dir, config()).unwrap();
    for o in (0..RECORDS).step_by(4) {
        let batch: Vec<Record> = (o..o + 4)
            .map(|i| Record::new(value(i)).with_timestamp(1_000 + i as i64 * 10))
            .collect();
        p.append(&batch).unwrap();
    }
    assert!(p.segment_count() >= 3, "several sealed segments");
    p.close().unwrap();
}

/// Replace the first segment's indexes with bytes taken from `data`.
fn damage_indexes(dir: &Path, data: &[u8]) {
    let split = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let (index, time_index) = data.split_at(split);
    fs::write(dir.join("00000000000000000000.index"), index).unwrap();
    fs::write(dir.join("00000000000000000000.timeindex"), time_index).unwrap();
}

fn check_reads(p: &Partition) {
    let mut next = 0;
    while next < RECORDS {
        let read = p.read(Offset(next), 1 << 16).expect("read");
        for r in read.records() {
            let r = r.expect("record");
            assert_eq!(r.offset, Offset(next), "record at the wrong offset");
            assert_eq!(
                r.value.as_deref(),
                Some(value(next).as_bytes()),
                "wrong record"
            );
            next += 1;
        }
    }
    for o in [0, 17, 63, RECORDS - 1] {
        let ts = 1_000 + o as i64 * 10;
        assert_eq!(
            p.offset_for_timestamp(ts).unwrap(),
            Some(Offset(o)),
            "time lookup"
        );
    }
}

/// Open a clean partition whose first segment's indexes are `data`, and read it all.
pub fn load_indexes(data: &[u8]) {
    let scratch = Scratch::new();
    write_partition(&scratch.0);
    damage_indexes(&scratch.0, data);
    let p = Partition::open(&scratch.0, config()).expect("open");
    check_reads(&p);
}
