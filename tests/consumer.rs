//! Consumer behaviour on real partitions: proves manual assignment reads every record in
//! order per partition, `max_records` is honoured without losing the rest, seeks (offset,
//! beginning, end, timestamp) move the position, `auto_offset_reset` applies to positions
//! without a commit and below the log start or past the end, commits (sync, explicit,
//! automatic on an interval and at close) are what a new consumer resumes from, `lag` is
//! the high watermark minus the position, and `poll` blocks until an append wakes it (one
//! partition and several), or returns empty at its timeout. No timing assertions: waits are
//! only checked to return.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use seglog::{
    AutoOffsetReset, CommittedOffset, Consumer, ConsumerConfig, Durability, Error,
    GroupCoordinator, LogStore, MemoryOffsetStore, Offset, OffsetStore, PartitionConfig, Record,
    StoreConfig, TopicConfig, TopicPartition,
};

const LONG: Duration = Duration::from_secs(30);

fn tp(topic: &str, partition: u32) -> TopicPartition {
    TopicPartition::new(topic, partition)
}

struct Env {
    _dir: tempfile::TempDir,
    store: LogStore,
    groups: Arc<GroupCoordinator>,
}

/// A store with topic `t` of `partitions` partitions (no fsync, no maintenance thread).
fn env(partitions: u32) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(
        dir.path(),
        StoreConfig::default().with_maintenance_interval(None),
    )
    .unwrap();
    store
        .create_topic(
            "t",
            TopicConfig::new(partitions).with_partition_config(
                // Timestamps are 1000 * offset (1970): without this, retention (run by
                // `delete_records_before`) would find every record expired.
                PartitionConfig::default()
                    .with_durability(Durability::NoSync)
                    .with_preallocate_bytes(0)
                    .with_retention_ms(None),
            ),
        )
        .unwrap();
    let groups = Arc::new(GroupCoordinator::for_store(
        &store,
        Arc::new(MemoryOffsetStore::new()),
    ));
    Env {
        _dir: dir,
        store,
        groups,
    }
}

impl Env {
    fn consumer(&self, config: ConsumerConfig) -> Consumer {
        Consumer::new(&self.store, self.groups.clone(), config).unwrap()
    }

    /// Append values `"<p>:<from>"`..`"<p>:<to - 1>"` to partition `p`, one batch, with
    /// timestamps `1000 * i`.
    fn append(&self, p: u32, from: usize, to: usize) {
        let records: Vec<Record> = (from..to)
            .map(|i| Record::new(format!("{p}:{i}")).with_timestamp(1000 * i as i64))
            .collect();
        self.store
            .topic("t")
            .unwrap()
            .append_to(p, &records)
            .unwrap();
    }
}

fn earliest() -> ConsumerConfig {
    ConsumerConfig::default()
        .with_auto_offset_reset(AutoOffsetReset::Earliest)
        .with_auto_commit(false)
}

fn values(records: &[seglog::ConsumerRecord]) -> Vec<String> {
    records
        .iter()
        .map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap())
        .collect()
}

/// Poll until `n` records have arrived.
fn poll_n(c: &mut Consumer, n: usize) -> Vec<seglog::ConsumerRecord> {
    let mut out = Vec::new();
    while out.len() < n {
        let got = c.poll(n - out.len(), LONG).unwrap();
        assert!(!got.is_empty(), "poll timed out with {} of {n}", out.len());
        out.extend(got);
    }
    out
}

#[test]
fn manual_assignment_reads_everything_in_order() {
    let e = env(3);
    for p in 0..3 {
        e.append(p, 0, 10);
        e.append(p, 10, 25);
    }
    let mut c = e.consumer(earliest());
    c.assign(vec![tp("t", 0), tp("t", 1), tp("t", 2)]).unwrap();
    let records = poll_n(&mut c, 75);
    let mut per: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for r in &records {
        assert_eq!(&*r.topic, "t");
        assert_eq!(
            String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap(),
            format!("{}:{}", r.partition, r.offset)
        );
        assert_eq!(r.timestamp_ms, 1000 * r.offset.get() as i64);
        per.entry(r.partition).or_default().push(r.offset.get());
    }
    for p in 0..3 {
        assert_eq!(per[&p], (0..25).collect::<Vec<_>>(), "partition {p}");
    }
    assert!(c.poll(10, Duration::ZERO).unwrap().is_empty());
}

#[test]
fn max_records_is_honoured_and_nothing_is_skipped() {
    let e = env(1);
    e.append(0, 0, 50);
    let mut c = e.consumer(earliest());
    c.assign(vec![tp("t", 0)]).unwrap();
    let mut offsets = Vec::new();
    for _ in 0..10 {
        let got = c.poll(7, Duration::ZERO).unwrap();
        assert!(got.len() <= 7);
        offsets.extend(got.iter().map(|r| r.offset.get()));
    }
    assert_eq!(offsets, (0..50).collect::<Vec<_>>());
    assert_eq!(c.position(&tp("t", 0)).unwrap(), Offset(50));
}

#[test]
fn several_partitions_are_served_in_turn() {
    let e = env(2);
    e.append(0, 0, 100);
    e.append(1, 0, 100);
    let mut c = e.consumer(earliest());
    c.assign(vec![tp("t", 0), tp("t", 1)]).unwrap();
    let first = c.poll(10, Duration::ZERO).unwrap();
    let second = c.poll(10, Duration::ZERO).unwrap();
    assert_ne!(
        first[0].partition, second[0].partition,
        "the second poll starts at the other partition"
    );
}

#[test]
fn seek_variants() {
    let e = env(1);
    e.append(0, 0, 20);
    let t0 = tp("t", 0);
    let mut c = e.consumer(earliest());
    c.assign(vec![t0.clone()]).unwrap();
    c.seek(&t0, Offset(15)).unwrap();
    assert_eq!(
        values(&c.poll(2, Duration::ZERO).unwrap()),
        ["0:15", "0:16"]
    );
    c.seek_to_beginning(&t0).unwrap();
    assert_eq!(c.poll(1, Duration::ZERO).unwrap()[0].offset, Offset(0));
    c.seek_to_end(&t0).unwrap();
    assert_eq!(c.position(&t0).unwrap(), Offset(20));
    assert!(c.poll(10, Duration::ZERO).unwrap().is_empty());
    // Timestamps are 1000 * offset: the first record at or after 7500 is offset 8.
    assert_eq!(c.seek_to_timestamp(&t0, 7_500).unwrap(), Offset(8));
    assert_eq!(c.poll(1, Duration::ZERO).unwrap()[0].offset, Offset(8));
    // Newer than every record: the end.
    assert_eq!(c.seek_to_timestamp(&t0, 1_000_000).unwrap(), Offset(20));
    // A seek discards what was read ahead.
    c.seek(&t0, Offset(3)).unwrap();
    assert_eq!(c.poll(1, Duration::ZERO).unwrap()[0].offset, Offset(3));
    assert!(matches!(
        c.seek(&tp("t", 9), Offset(0)),
        Err(Error::PartitionNotAssigned { .. })
    ));
}

#[test]
fn seek_to_end_and_beginning_resolve_at_the_next_poll() {
    // Kafka's seekToEnd / seekToBeginning are lazy: the offset is looked up by the next poll
    // (or position), not by the seek.
    let e = env(1);
    e.append(0, 0, 5);
    let t0 = tp("t", 0);
    let mut c = e.consumer(earliest());
    c.assign(vec![t0.clone()]).unwrap();
    c.seek_to_end(&t0).unwrap();
    e.append(0, 5, 8);
    assert!(
        c.poll(10, Duration::ZERO).unwrap().is_empty(),
        "records appended between the seek and the poll are past the end"
    );
    assert_eq!(c.position(&t0).unwrap(), Offset(8));
    e.append(0, 8, 9);
    assert_eq!(values(&c.poll(10, Duration::ZERO).unwrap()), ["0:8"]);

    // seek_to_beginning follows the log start as it is at the poll.
    c.seek_to_beginning(&t0).unwrap();
    e.store
        .topic("t")
        .unwrap()
        .partition(0)
        .unwrap()
        .delete_records_before(Offset(3))
        .unwrap();
    assert_eq!(c.poll(1, Duration::ZERO).unwrap()[0].offset, Offset(3));
    // A plain seek cancels a pending lazy one.
    c.seek_to_end(&t0).unwrap();
    c.seek(&t0, Offset(4)).unwrap();
    assert_eq!(c.poll(1, Duration::ZERO).unwrap()[0].offset, Offset(4));
}

#[test]
fn auto_offset_reset_without_a_commit() {
    let e = env(1);
    e.append(0, 0, 10);
    let t0 = tp("t", 0);
    let reset = |policy| {
        let mut c = e.consumer(
            ConsumerConfig::default()
                .with_auto_offset_reset(policy)
                .with_auto_commit(false)
                .with_group_id("g"),
        );
        c.assign(vec![t0.clone()]).unwrap();
        c
    };
    assert_eq!(
        reset(AutoOffsetReset::Earliest).position(&t0).unwrap(),
        Offset(0)
    );
    assert_eq!(
        reset(AutoOffsetReset::Latest).position(&t0).unwrap(),
        Offset(10)
    );
    let mut strict = reset(AutoOffsetReset::Error);
    assert!(matches!(
        strict.poll(1, Duration::ZERO),
        Err(Error::NoOffsetForPartition { .. })
    ));
    // A commit takes precedence over every policy.
    e.groups
        .offset_store()
        .commit("g", &[(t0.clone(), CommittedOffset::new(Offset(4)))])
        .unwrap();
    for policy in [
        AutoOffsetReset::Earliest,
        AutoOffsetReset::Latest,
        AutoOffsetReset::Error,
    ] {
        let mut c = reset(policy);
        assert_eq!(c.poll(1, Duration::ZERO).unwrap()[0].offset, Offset(4));
    }
}

#[test]
fn auto_offset_reset_outside_the_log() {
    let e = env(1);
    e.append(0, 0, 10);
    let t0 = tp("t", 0);
    let partition = e.store.partition(&t0).unwrap();
    partition.delete_records_before(Offset(6)).unwrap();
    let consumer = |policy| {
        let mut c = e.consumer(ConsumerConfig::default().with_auto_offset_reset(policy));
        c.assign(vec![t0.clone()]).unwrap();
        c
    };

    // Below the log start.
    let mut c = consumer(AutoOffsetReset::Earliest);
    c.seek(&t0, Offset(2)).unwrap();
    assert_eq!(c.poll(1, Duration::ZERO).unwrap()[0].offset, Offset(6));
    let mut c = consumer(AutoOffsetReset::Latest);
    c.seek(&t0, Offset(2)).unwrap();
    assert!(c.poll(1, Duration::ZERO).unwrap().is_empty());
    assert_eq!(c.position(&t0).unwrap(), Offset(10));
    let mut c = consumer(AutoOffsetReset::Error);
    c.seek(&t0, Offset(2)).unwrap();
    match c.poll(1, Duration::ZERO) {
        Err(Error::OffsetOutOfRange {
            offset,
            log_start_offset,
            high_watermark,
        }) => {
            assert_eq!(
                (offset, log_start_offset, high_watermark),
                (Offset(2), Offset(6), Offset(10))
            );
        }
        other => panic!("expected OffsetOutOfRange, got {other:?}"),
    }

    // Past the end.
    let mut c = consumer(AutoOffsetReset::Earliest);
    c.seek(&t0, Offset(99)).unwrap();
    assert_eq!(c.poll(1, Duration::ZERO).unwrap()[0].offset, Offset(6));
    let mut c = consumer(AutoOffsetReset::Error);
    c.seek(&t0, Offset(99)).unwrap();
    assert!(matches!(
        c.poll(1, Duration::ZERO),
        Err(Error::OffsetOutOfRange { .. })
    ));
}

#[test]
fn commit_committed_position_and_resume() {
    let e = env(2);
    e.append(0, 0, 10);
    e.append(1, 0, 10);
    let (t0, t1) = (tp("t", 0), tp("t", 1));
    let config = earliest().with_group_id("g");
    let mut c = e.consumer(config.clone());
    c.assign(vec![t0.clone(), t1.clone()]).unwrap();
    assert_eq!(c.committed(&t0).unwrap(), None);
    c.seek(&t0, Offset(3)).unwrap();
    c.seek(&t1, Offset(7)).unwrap();
    c.commit().unwrap();
    assert_eq!(c.committed(&t0).unwrap().unwrap().offset, Offset(3));
    assert_eq!(c.committed(&t1).unwrap().unwrap().offset, Offset(7));
    c.commit_offsets(&[(
        t0.clone(),
        CommittedOffset::new(Offset(5)).with_metadata("m"),
    )])
    .unwrap();
    assert_eq!(
        c.committed(&t0).unwrap(),
        Some(CommittedOffset::new(Offset(5)).with_metadata("m"))
    );
    // Positions are the consumer's own: a commit does not move them.
    assert_eq!(c.position(&t0).unwrap(), Offset(3));
    drop(c);

    // A new consumer resumes from the commits.
    let mut d = e.consumer(config);
    d.assign(vec![t0.clone(), t1.clone()]).unwrap();
    assert_eq!(d.position(&t0).unwrap(), Offset(5));
    assert_eq!(d.position(&t1).unwrap(), Offset(7));

    // Without a group there is nothing to commit to.
    let mut nogroup = e.consumer(earliest());
    nogroup.assign(vec![t0.clone()]).unwrap();
    nogroup.poll(1, Duration::ZERO).unwrap();
    assert!(matches!(
        nogroup.commit(),
        Err(Error::InvalidConsumerState { .. })
    ));
    assert!(matches!(
        nogroup.committed(&t0),
        Err(Error::InvalidConsumerState { .. })
    ));
}

#[test]
fn auto_commit_on_interval_and_at_close() {
    let e = env(1);
    e.append(0, 0, 10);
    let t0 = tp("t", 0);
    let committed = |c: &Consumer| c.committed(&t0).unwrap().map(|c| c.offset);

    // Interval zero: every poll first commits what earlier polls returned.
    let mut c = e.consumer(
        earliest()
            .with_group_id("g")
            .with_auto_commit(true)
            .with_auto_commit_interval(Duration::ZERO),
    );
    c.assign(vec![t0.clone()]).unwrap();
    assert_eq!(c.poll(4, Duration::ZERO).unwrap().len(), 4);
    assert_eq!(committed(&c), None, "nothing was returned before this poll");
    c.poll(3, Duration::ZERO).unwrap();
    assert_eq!(committed(&c), Some(Offset(4)));
    c.close().unwrap();
    let store = e.groups.offset_store();
    assert_eq!(
        store.fetch("g", &t0).unwrap().unwrap().offset,
        Offset(7),
        "close commits"
    );

    // A long interval: no commit from poll, but close still commits.
    let mut c = e.consumer(
        earliest()
            .with_group_id("h")
            .with_auto_commit(true)
            .with_auto_commit_interval(Duration::from_secs(3600)),
    );
    c.assign(vec![t0.clone()]).unwrap();
    c.poll(5, Duration::ZERO).unwrap();
    c.poll(5, Duration::ZERO).unwrap();
    assert_eq!(store.fetch("h", &t0).unwrap(), None);
    drop(c);
    assert_eq!(
        store.fetch("h", &t0).unwrap().unwrap().offset,
        Offset(10),
        "drop commits"
    );
}

#[test]
fn lag_is_high_watermark_minus_position() {
    let e = env(1);
    e.append(0, 0, 10);
    let t0 = tp("t", 0);
    let mut c = e.consumer(earliest());
    c.assign(vec![t0.clone()]).unwrap();
    assert_eq!(c.lag(&t0).unwrap(), 10);
    c.poll(4, Duration::ZERO).unwrap();
    assert_eq!(c.lag(&t0).unwrap(), 6);
    e.append(0, 10, 15);
    assert_eq!(c.lag(&t0).unwrap(), 11);
    c.seek_to_end(&t0).unwrap();
    assert_eq!(c.lag(&t0).unwrap(), 0);
    c.seek(&t0, Offset(100)).unwrap();
    assert_eq!(c.lag(&t0).unwrap(), 0, "past the end is no lag");
}

#[test]
fn poll_blocks_until_an_append_wakes_it() {
    let e = env(1);
    let mut c = e.consumer(ConsumerConfig::default().with_auto_commit(false));
    c.assign(vec![tp("t", 0)]).unwrap();
    assert!(
        c.poll(1, Duration::from_millis(20)).unwrap().is_empty(),
        "timeout: empty"
    );
    let topic = e.store.topic("t").unwrap();
    // This (the polling) thread as the kernel sees it: `<pid>/task/<tid>`.
    let me = std::fs::read_link("/proc/thread-self").expect("Linux /proc");
    let status = std::path::Path::new("/proc").join(me).join("status");
    let writer = std::thread::spawn(move || {
        // Append only once the poller has been seen asleep, and not woken even once, across
        // 100 ms: a poll that spins (always runnable) or wakes itself up to check (its
        // context switches grow) is never seen so, and the test fails; no timing is assumed.
        let mut blocked = false;
        for _ in 0..100 {
            let before = sched_of(&status);
            std::thread::sleep(Duration::from_millis(100));
            if let (Some(('S', a)), Some(('S', b))) = (before, sched_of(&status)) {
                if a == b {
                    blocked = true;
                    break;
                }
            }
        }
        topic.append_to(0, &[Record::new("late")]).unwrap();
        blocked
    });
    let got = c.poll(10, LONG).unwrap();
    assert_eq!(values(&got), ["late"]);
    assert!(
        writer.join().unwrap(),
        "poll never slept undisturbed for 100 ms: it spins or wakes itself up"
    );
}

/// A thread's state letter (`S`: sleeping) and its context switches so far, voluntary and
/// not, from its `/proc/<pid>/task/<tid>/status`.
fn sched_of(status: &std::path::Path) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(status).ok()?;
    let mut state = None;
    let mut switches = 0;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("State:") {
            state = v.trim().chars().next();
        } else if let Some(v) = line
            .strip_prefix("voluntary_ctxt_switches:")
            .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
        {
            switches += v.trim().parse::<u64>().ok()?;
        }
    }
    Some((state?, switches))
}

#[test]
fn poll_over_several_partitions_wakes_for_any_of_them() {
    let e = env(4);
    let mut c = e.consumer(ConsumerConfig::default().with_auto_commit(false));
    c.assign((0..4).map(|p| tp("t", p)).collect()).unwrap();
    assert!(c.poll(1, Duration::from_millis(30)).unwrap().is_empty());
    for p in [3, 1] {
        let topic = e.store.topic("t").unwrap();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            topic
                .append_to(p, &[Record::new(format!("to {p}"))])
                .unwrap();
        });
        let got = c.poll(10, LONG).unwrap();
        assert_eq!(values(&got), [format!("to {p}")]);
        writer.join().unwrap();
    }
}

#[test]
fn group_member_poll_wakes_on_append() {
    let e = env(2);
    let mut c = e.consumer(ConsumerConfig::default().with_auto_commit(false));
    c.subscribe("g", ["t"]).unwrap();
    assert!(c.poll(1, Duration::from_millis(20)).unwrap().is_empty());
    assert_eq!(
        c.assignment().len(),
        2,
        "the first poll joined and took both partitions"
    );
    let topic = e.store.topic("t").unwrap();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        topic.append_to(1, &[Record::new("hello")]).unwrap();
    });
    assert_eq!(values(&c.poll(10, LONG).unwrap()), ["hello"]);
    writer.join().unwrap();
}

#[test]
fn consumers_move_between_threads_and_coordinators_are_shared() {
    fn send<T: Send>() {}
    fn send_sync<T: Send + Sync>() {}
    send::<Consumer>();
    send_sync::<GroupCoordinator>();
}

#[test]
fn an_unbounded_timeout_still_returns_on_data() {
    let e = env(1);
    let mut c = e.consumer(earliest());
    c.assign(vec![tp("t", 0)]).unwrap();
    let topic = e.store.topic("t").unwrap();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        topic.append_to(0, &[Record::new("x")]).unwrap();
    });
    assert_eq!(values(&c.poll(1, Duration::MAX).unwrap()), ["x"]);
    writer.join().unwrap();
}

#[test]
fn misuse_is_a_typed_error() {
    let e = env(1);
    let mut c = e.consumer(ConsumerConfig::default());
    assert!(matches!(
        c.poll(1, Duration::ZERO),
        Err(Error::InvalidConsumerState { .. })
    ));
    assert!(matches!(
        c.assign(vec![tp("nope", 0)]),
        Err(Error::UnknownTopic { .. })
    ));
    assert!(matches!(
        c.assign(vec![tp("t", 5)]),
        Err(Error::PartitionOutOfRange { .. })
    ));
    c.assign(vec![tp("t", 0)]).unwrap();
    assert!(matches!(
        c.poll(0, Duration::ZERO),
        Err(Error::InvalidConfig { .. })
    ));
    assert!(matches!(
        c.subscribe("g", ["t"]),
        Err(Error::InvalidConsumerState { .. })
    ));
    c.unsubscribe().unwrap();
    assert!(c.assignment().is_empty());
    c.subscribe("g", ["t"]).unwrap();
    assert!(matches!(
        c.assign(vec![tp("t", 0)]),
        Err(Error::InvalidConsumerState { .. })
    ));
    assert!(matches!(
        Consumer::new(
            &e.store,
            e.groups.clone(),
            ConsumerConfig::default().with_fetch_max_bytes(0)
        ),
        Err(Error::InvalidConfig { .. })
    ));
}

mod review_regressions {
    //! Regressions found in review: a failed poll must lose nothing, a failed `assign` must
    //! change nothing, and a gap compaction leaves at the end of the log must not stall.

    use std::sync::Arc;
    use std::time::Duration;

    use seglog::{
        AutoOffsetReset, CleanupPolicy, CompactionConfig, Consumer, ConsumerConfig, Durability,
        GroupCoordinator, LogStore, MemoryOffsetStore, Offset, PartitionConfig, Record,
        StoreConfig, TopicConfig, TopicPartition,
    };

    fn env(
        config: PartitionConfig,
        partitions: u32,
    ) -> (tempfile::TempDir, LogStore, Arc<GroupCoordinator>) {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(
            dir.path(),
            StoreConfig::default().with_maintenance_interval(None),
        )
        .unwrap();
        store
            .create_topic(
                "t",
                TopicConfig::new(partitions).with_partition_config(config),
            )
            .unwrap();
        let groups = Arc::new(GroupCoordinator::for_store(
            &store,
            Arc::new(MemoryOffsetStore::new()),
        ));
        (dir, store, groups)
    }

    fn plain() -> PartitionConfig {
        PartitionConfig::default().with_durability(Durability::NoSync)
    }

    #[test]
    fn a_failed_poll_loses_no_record_of_another_partition() {
        let (_d, store, groups) = env(plain(), 2);
        let t = store.topic("t").unwrap();
        for i in 0..5 {
            t.append_to(0, &[Record::new(format!("p0-{i}"))]).unwrap();
            t.append_to(1, &[Record::new(format!("p1-{i}"))]).unwrap();
        }
        let config = ConsumerConfig::default()
            .with_auto_offset_reset(AutoOffsetReset::Error)
            .with_auto_commit(false);
        let mut c = Consumer::new(&store, groups, config).unwrap();
        let (p0, p1) = (TopicPartition::new("t", 0), TopicPartition::new("t", 1));
        c.assign(vec![p0.clone(), p1.clone()]).unwrap();
        c.seek(&p0, Offset(0)).unwrap();
        c.seek(&p1, Offset(100)).unwrap();
        assert!(c.poll(100, Duration::from_millis(10)).is_err());
        assert_eq!(
            c.position(&p0).unwrap(),
            Offset(0),
            "the failed poll moved p0"
        );
        c.seek(&p1, Offset(0)).unwrap();
        let got = c.poll(100, Duration::from_millis(10)).unwrap();
        assert_eq!(got.iter().filter(|r| r.partition == 0).count(), 5);
        assert_eq!(got.iter().filter(|r| r.partition == 1).count(), 5);
    }

    #[test]
    fn a_failed_assign_changes_nothing() {
        let (_d, store, groups) = env(plain(), 1);
        let t = store.topic("t").unwrap();
        for i in 0..5 {
            t.append_to(0, &[Record::new(format!("x{i}"))]).unwrap();
        }
        let config = ConsumerConfig::default().with_auto_offset_reset(AutoOffsetReset::Earliest);
        let mut c = Consumer::new(&store, groups, config).unwrap();
        let p0 = TopicPartition::new("t", 0);
        c.assign(vec![p0.clone()]).unwrap();
        assert_eq!(c.poll(2, Duration::from_millis(10)).unwrap().len(), 2);
        assert!(c
            .assign(vec![p0.clone(), TopicPartition::new("zz", 0)])
            .is_err());
        assert_eq!(c.assignment(), vec![p0.clone()]);
        assert_eq!(c.position(&p0).unwrap(), Offset(2));
    }

    #[test]
    fn a_gap_compaction_left_at_the_end_is_passed_over() {
        let config = plain()
            .with_cleanup_policy(CleanupPolicy::Compact)
            .with_compaction(CompactionConfig::default().with_delete_retention_ms(0));
        let (_d, store, groups) = env(config, 1);
        let tp = TopicPartition::new("t", 0);
        let p = store.partition(&tp).unwrap();
        p.append(&[Record::new("v").with_key("k").with_timestamp(1)])
            .unwrap();
        p.append(&[Record::tombstone("k").with_timestamp(1)])
            .unwrap();
        p.roll().unwrap();
        p.compact_at(i64::MAX / 2, true).unwrap();
        // Both records are gone: offsets 0 and 1 hold nothing, the high watermark is 2.
        let read = p.read(Offset(0), 1 << 20).unwrap();
        assert!(read.is_empty());
        assert_eq!(read.next_offset(), Offset(2));
        let config = ConsumerConfig::default().with_auto_offset_reset(AutoOffsetReset::Earliest);
        let mut c = Consumer::new(&store, groups, config).unwrap();
        c.assign(vec![tp.clone()]).unwrap();
        c.seek(&tp, Offset(0)).unwrap();
        assert!(c.poll(10, Duration::from_millis(20)).unwrap().is_empty());
        assert_eq!(c.position(&tp).unwrap(), Offset(2));
        assert_eq!(c.lag(&tp).unwrap(), 0);
        // New records after the gap arrive.
        p.append(&[Record::new("w").with_key("k").with_timestamp(2)])
            .unwrap();
        let got = c.poll(10, Duration::from_millis(200)).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].offset, Offset(2));
    }
}

#[test]
fn paused_partitions_are_skipped_until_resumed() {
    let e = env(2);
    e.append(0, 0, 3);
    e.append(1, 0, 3);
    let (t0, t1) = (tp("t", 0), tp("t", 1));
    let mut c = e.consumer(earliest());
    c.assign(vec![t0.clone(), t1.clone()]).unwrap();
    c.pause(std::slice::from_ref(&t0)).unwrap();
    assert_eq!(c.paused(), std::collections::BTreeSet::from([t0.clone()]));
    let got = c.poll(100, Duration::from_millis(20)).unwrap();
    assert_eq!(values(&got), ["1:0", "1:1", "1:2"]);
    // Only the paused partition has data: the poll waits it out and returns nothing.
    assert!(c.poll(100, Duration::from_millis(20)).unwrap().is_empty());
    assert!(matches!(
        c.pause(&[tp("t", 7)]),
        Err(Error::PartitionNotAssigned { .. })
    ));
    c.resume(std::slice::from_ref(&t0)).unwrap();
    assert!(c.paused().is_empty());
    assert_eq!(
        values(&c.poll(100, Duration::ZERO).unwrap()),
        ["0:0", "0:1", "0:2"]
    );
}

#[test]
fn wakeup_interrupts_a_blocked_poll_from_another_thread() {
    let e = env(1);
    let mut c = e.consumer(earliest());
    c.assign(vec![tp("t", 0)]).unwrap();
    // Before a poll: the next poll fails at once, the one after works.
    let waker = c.waker();
    waker.wakeup();
    assert!(matches!(
        c.poll(10, Duration::from_secs(30)),
        Err(Error::Wakeup)
    ));
    assert!(c.poll(10, Duration::ZERO).unwrap().is_empty());
    // During a poll blocked on an empty partition (and, below, with no partition at all):
    // without the wakeup it would return empty after 30 s, failing the match.
    for assigned in [true, false] {
        if !assigned {
            c.pause(&[tp("t", 0)]).unwrap();
        }
        let w = c.waker();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            rx.recv().unwrap();
            std::thread::sleep(Duration::from_millis(50));
            w.wakeup();
        });
        tx.send(()).unwrap();
        let got = c.poll(10, Duration::from_secs(30));
        assert!(matches!(got, Err(Error::Wakeup)), "{got:?}");
        t.join().unwrap();
    }
}

#[test]
fn commit_async_runs_at_the_next_poll_and_calls_back() {
    let e = env(1);
    e.append(0, 0, 5);
    let t0 = tp("t", 0);
    let mut c = e.consumer(earliest().with_group_id("g"));
    c.assign(vec![t0.clone()]).unwrap();
    assert_eq!(c.poll(3, Duration::ZERO).unwrap().len(), 3);
    let outcome = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = outcome.clone();
    c.commit_async(move |r| log.lock().unwrap().push(r.map_err(|e| e.to_string())));
    assert!(outcome.lock().unwrap().is_empty(), "not run yet");
    c.poll(10, Duration::ZERO).unwrap();
    assert_eq!(*outcome.lock().unwrap(), [Ok(())]);
    assert_eq!(
        c.committed(&t0).unwrap().unwrap().offset,
        Offset(3),
        "the position at the call"
    );
    // A failing one reports its error: the group gets a member, so the outsider is refused.
    let member = e
        .groups
        .join("g", seglog::MemberConfig::new(["t"]))
        .unwrap();
    let log = outcome.clone();
    c.commit_async(move |r| log.lock().unwrap().push(r.map_err(|e| e.to_string())));
    c.close().unwrap();
    let last = outcome.lock().unwrap().last().cloned().unwrap();
    assert!(last.unwrap_err().contains("active member"));
    e.groups.leave("g", &member).unwrap();
}

#[test]
fn a_standalone_consumer_tails_a_topic_without_a_coordinator() {
    let e = env(1);
    e.append(0, 0, 2);
    let mut c = Consumer::standalone(&e.store, earliest()).unwrap();
    c.assign(vec![tp("t", 0)]).unwrap();
    assert_eq!(values(&c.poll(10, Duration::ZERO).unwrap()), ["0:0", "0:1"]);
    e.append(0, 2, 3);
    assert_eq!(
        values(&c.poll(10, Duration::from_secs(30)).unwrap()),
        ["0:2"]
    );
    assert!(
        matches!(c.commit(), Err(Error::InvalidConsumerState { .. })),
        "no group id"
    );
}
