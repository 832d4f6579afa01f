//! Delivery semantics: where a consumer commits decides what a crash costs.
//!
//! - **At most once**: commit, then process. A crash while processing loses the rest of the
//!   batch: it is never delivered again.
//! - **At least once**: process, then commit. A crash before the commit delivers the batch
//!   again: nothing is lost, some records are processed twice.
//!
//! (Exactly once, storing results and offsets in one transaction, is
//! `examples/exactly_once.rs`.) Each scenario "crashes" by dropping its consumer in the middle
//! of a batch (auto-commit off, so the drop commits nothing) and lets a new member of the same
//! group resume from the committed offset.
//!
//! Run with `cargo run --example delivery_semantics`.

use std::sync::Arc;
use std::time::Duration;

use seglog::{
    AutoOffsetReset, Consumer, ConsumerConfig, GroupCoordinator, LogStore, MemoryOffsetStore,
    Record, StoreConfig, TopicConfig,
};

const RECORDS: usize = 10;
const CRASH_AFTER: usize = 3;

fn main() -> seglog::Result<()> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = LogStore::open(dir.path(), StoreConfig::default())?;
    let events = store.create_topic("events", TopicConfig::new(1))?;
    let batch: Vec<Record> = (0..RECORDS)
        .map(|i| Record::new(format!("event {i}")))
        .collect();
    events.append_to(0, &batch)?;
    let groups = Arc::new(GroupCoordinator::for_store(
        &store,
        Arc::new(MemoryOffsetStore::new()),
    ));
    let config = ConsumerConfig::default()
        .with_auto_commit(false)
        .with_auto_offset_reset(AutoOffsetReset::Earliest);

    for (group, commit_first) in [("at-most-once", true), ("at-least-once", false)] {
        println!(
            "== {group}: commit {} processing",
            if commit_first { "before" } else { "after" }
        );
        let mut processed = Vec::new();

        // First consumer: takes a batch and crashes after processing CRASH_AFTER records.
        let mut consumer = Consumer::new(&store, groups.clone(), config.clone())?;
        consumer.subscribe(group, ["events"])?;
        let records = consumer.poll(RECORDS, Duration::from_secs(1))?;
        if commit_first {
            consumer.commit()?;
        }
        for r in records.iter().take(CRASH_AFTER) {
            processed.push(r.offset.get());
        }
        println!("  processed offsets {processed:?}, then crashed");
        drop(consumer); // the crash: no commit after processing

        // A new member of the group resumes from the committed offset.
        let mut consumer = Consumer::new(&store, groups.clone(), config.clone())?;
        consumer.subscribe(group, ["events"])?;
        loop {
            let records = consumer.poll(RECORDS, Duration::from_millis(100))?;
            if records.is_empty() {
                break;
            }
            if commit_first {
                consumer.commit()?;
            }
            processed.extend(records.iter().map(|r| r.offset.get()));
            if !commit_first {
                consumer.commit()?;
            }
        }
        let mut distinct = processed.clone();
        distinct.sort_unstable();
        distinct.dedup();
        println!("  all processed offsets: {processed:?}");
        println!(
            "  {} of {RECORDS} records processed, {} twice",
            distinct.len(),
            processed.len() - distinct.len()
        );
        if commit_first {
            assert!(
                distinct.len() < RECORDS,
                "at most once loses the crashed batch's rest"
            );
            assert_eq!(distinct.len(), processed.len(), "and never repeats");
        } else {
            assert_eq!(distinct.len(), RECORDS, "at least once loses nothing");
            assert!(
                processed.len() > RECORDS,
                "and repeats what was not committed"
            );
        }
        consumer.close()?;
    }
    Ok(())
}
