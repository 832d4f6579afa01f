//! Smoke test of keyed compaction: latest value per key survives, offsets stay increasing,
//! reopen agrees.

use std::collections::HashMap;

use seglog::{
    CleanupPolicy, CompactionConfig, Durability, Offset, Partition, PartitionConfig, Record,
};

fn read_all(p: &Partition) -> Vec<(u64, Vec<u8>, Option<Vec<u8>>)> {
    let mut out = Vec::new();
    let mut next = p.log_start_offset();
    while next < p.high_watermark() {
        let r = p.read(next, 1 << 20).unwrap();
        for rec in r.records() {
            let rec = rec.unwrap();
            out.push((
                rec.offset.0,
                rec.key.unwrap().to_vec(),
                rec.value.map(|v| v.to_vec()),
            ));
        }
        next = r.next_offset();
    }
    out
}

#[test]
fn compaction_keeps_the_latest_value_per_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = PartitionConfig::default()
        .with_durability(Durability::NoSync)
        .with_segment_bytes(2048)
        .with_cleanup_policy(CleanupPolicy::Compact)
        .with_compaction(
            CompactionConfig::default()
                .with_map_bytes_max(2048)
                .with_delete_retention_ms(0),
        );
    let p = Partition::open(dir.path(), cfg.clone()).unwrap();
    let mut model: HashMap<Vec<u8>, (u64, Option<Vec<u8>>)> = HashMap::new();
    for i in 0..2_000u64 {
        let key = format!("k{}", (i * 7919) % 97).into_bytes();
        let rec = if i % 13 == 0 {
            Record::tombstone(key.clone()).with_timestamp(1_000)
        } else {
            Record::new(format!("v{i}"))
                .with_key(key.clone())
                .with_timestamp(1_000)
        };
        let value = rec.value.clone().map(|v| v.to_vec());
        let a = p.append(&[rec]).unwrap();
        model.insert(key, (a.base_offset.0, value));
    }
    assert!(matches!(
        p.append(&[Record::new("no key")]),
        Err(seglog::Error::MissingKey { index: 0 })
    ));
    let before = p.segment_count();
    let report = p.compact_at(10_000, false).unwrap();
    assert!(report.passes > 1, "{report:?}");
    assert!(
        p.segment_count() < before,
        "{} -> {}",
        before,
        p.segment_count()
    );
    let check = |p: &Partition| {
        let all = read_all(p);
        assert!(all.windows(2).all(|w| w[0].0 < w[1].0));
        let mut latest: HashMap<Vec<u8>, (u64, Option<Vec<u8>>)> = HashMap::new();
        for (o, k, v) in &all {
            latest.insert(k.clone(), (*o, v.clone()));
        }
        for (k, (o, v)) in &model {
            match latest.get(k) {
                Some((lo, lv)) => assert_eq!((lo, lv), (o, v), "key {k:?}"),
                // Only tombstones may disappear.
                None => assert!(v.is_none(), "key {k:?} lost"),
            }
        }
        // A read at a removed offset returns the next record that exists.
        let r = p.read(Offset(1), 1).unwrap();
        assert!(r.records().next().unwrap().unwrap().offset >= Offset(1));
        all.len()
    };
    let n = check(&p);
    assert!(n < 2_000 / 2, "{n} records left");
    p.close().unwrap();
    drop(p);
    let p = Partition::open(dir.path(), cfg.clone()).unwrap();
    assert_eq!(check(&p), n);
    p.simulate_crash();
    let p = Partition::open(dir.path(), cfg).unwrap();
    assert_eq!(check(&p), n);
}
