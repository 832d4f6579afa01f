//! Replication wired through the store: a topic with `replication_factor` above 1 runs an
//! in-process replica set per partition (replica `n >= 1` in `<store>/__replica<n>/`), with
//! follower threads; producers choose their acks; consumers in a group read the leader below
//! the high watermark; the replicas resume after a reopen, vanish with the topic, refuse
//! acks=all below `min_insync_replicas`, and fail over when the leader crashes.

mod support;
use support::log_of;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use seglog::{
    Acks, AutoOffsetReset, Consumer, ConsumerConfig, Durability, Error, GroupCoordinator, LogStore,
    MemoryOffsetStore, Offset, PartitionConfig, Producer, ProducerConfig, Record, ReplicaSet,
    Replicator, StoreConfig, Topic, TopicConfig,
};

/// A partition directory's lock file (`Partition::open` creates it first).
const PARTITION_LOCK_FILE: &str = ".lock";

/// Bound on every wait for the follower threads (they fetch every few milliseconds).
const PATIENCE: Duration = Duration::from_secs(60);

fn store_config() -> StoreConfig {
    StoreConfig::default().with_maintenance_interval(None)
}

fn partition_config() -> PartitionConfig {
    PartitionConfig::default()
        .with_durability(Durability::NoSync)
        .with_preallocate_bytes(0)
        .with_retention_ms(None)
}

fn replicated(partitions: u32, factor: u32, min_insync: u32) -> TopicConfig {
    TopicConfig::new(partitions)
        .with_partition_config(partition_config())
        .with_replication_factor(factor)
        .with_min_insync_replicas(min_insync)
}

fn producer(store: &LogStore, acks: Acks) -> Producer {
    let config = ProducerConfig::default()
        .with_acks(acks)
        .with_linger(Duration::ZERO);
    Producer::new(store, config).unwrap()
}

fn set_of(topic: &Topic, partition: u32) -> Arc<ReplicaSet> {
    topic.replica_set(partition).unwrap().expect("replicated")
}

/// Wait (bounded) until `done` holds.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < PATIENCE, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn wait_in_sync(set: &ReplicaSet, n: usize) {
    wait_for("the in-sync replicas", || set.in_sync_replicas() >= n);
}

/// Wait until every replica holds the leader's whole log, then check they are identical.
fn wait_converged(set: &ReplicaSet) {
    wait_for("the replicas to converge", || {
        let leader = set.leader().unwrap();
        (0..set.replica_count()).all(|i| {
            set.replica(i)
                .is_some_and(|p| p.log_end_offset() == leader.log_end_offset())
        }) && set.high_watermark() == leader.log_end_offset()
    });
    let leader = log_of(&set.leader().unwrap());
    for i in 0..set.replica_count() {
        assert_eq!(log_of(&set.replica(i).unwrap()), leader, "replica {i}");
    }
}

/// Consume `n` records of `topic` in group `group`, from the earliest offset.
fn consume(store: &LogStore, group: &str, topic: &str, n: usize) -> Vec<String> {
    let groups = Arc::new(GroupCoordinator::for_store(
        store,
        Arc::new(MemoryOffsetStore::new()),
    ));
    let config = ConsumerConfig::default()
        .with_auto_offset_reset(AutoOffsetReset::Earliest)
        .with_auto_commit(false);
    let mut c = Consumer::new(store, groups, config).unwrap();
    c.subscribe(group, [topic]).unwrap();
    let mut out = Vec::new();
    let start = Instant::now();
    while out.len() < n {
        assert!(start.elapsed() < PATIENCE, "consumed only {}", out.len());
        for r in c.poll(n - out.len(), Duration::from_millis(20)).unwrap() {
            let leader = store.topic(topic).unwrap().partition(r.partition).unwrap();
            // Consumers never see a record the high watermark does not cover.
            assert!(r.offset < leader.high_watermark(), "read above the HW");
            out.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
        }
    }
    assert!(c.poll(10, Duration::from_millis(50)).unwrap().is_empty());
    out.sort();
    out
}

fn replica_dirs(dir: &Path, topic: &str, partition: u32, factor: u32) -> Vec<std::path::PathBuf> {
    (0..factor)
        .map(|r| {
            let name = format!("{topic}-{partition}");
            if r == 0 {
                dir.join(name)
            } else {
                dir.join(format!("__replica{r}")).join(name)
            }
        })
        .collect()
}

#[test]
fn a_replicated_topic_takes_every_acks_mode_and_is_consumed_in_a_group() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path(), store_config()).unwrap();
    let topic = store.create_topic("t", replicated(2, 3, 2)).unwrap();
    assert_eq!(
        (topic.replication_factor(), topic.min_insync_replicas()),
        (3, 2)
    );
    for p in 0..2 {
        for d in replica_dirs(dir.path(), "t", p, 3) {
            assert!(d.join(PARTITION_LOCK_FILE).exists(), "{}", d.display());
        }
        wait_in_sync(&set_of(&topic, p), 3);
    }
    let mut sent = Vec::new();
    for acks in [Acks::None, Acks::Leader, Acks::All] {
        let producer = producer(&store, acks);
        for i in 0..10 {
            let value = format!("{acks:?}-{i}");
            let (p, offset) = producer.send("t", Record::new(value.clone())).unwrap();
            if acks == Acks::All {
                // Committed: below the HW, on every in-sync replica.
                let set = set_of(&topic, p);
                assert!(set.high_watermark() > offset);
                assert!(topic.partition(p).unwrap().high_watermark() > offset);
            }
            sent.push(value);
        }
        let handles: Vec<_> = (0..10)
            .map(|i| {
                let value = format!("{acks:?}-batched-{i}");
                sent.push(value.clone());
                producer.send_batched("t", Record::new(value)).unwrap()
            })
            .collect();
        producer.flush().unwrap();
        for h in handles {
            h.wait().unwrap();
        }
        producer.close().unwrap();
    }
    sent.sort();
    assert_eq!(consume(&store, "g", "t", sent.len()), sent);
    for p in 0..2 {
        wait_converged(&set_of(&topic, p));
    }
    store.close().unwrap();
}

#[test]
fn a_reopened_store_resumes_its_replicas() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = LogStore::open(dir.path(), store_config()).unwrap();
        let topic = store.create_topic("t", replicated(1, 3, 2)).unwrap();
        wait_in_sync(&set_of(&topic, 0), 2);
        let producer = producer(&store, Acks::All);
        for i in 0..20 {
            producer
                .send_to("t", 0, Record::new(format!("a{i:02}")))
                .unwrap();
        }
        wait_converged(&set_of(&topic, 0));
        store.close().unwrap();
    }
    let store = LogStore::open(dir.path(), store_config()).unwrap();
    let topic = store.topic("t").unwrap();
    assert_eq!(
        (topic.replication_factor(), topic.min_insync_replicas()),
        (3, 2)
    );
    let set = set_of(&topic, 0);
    assert_eq!(set.replica_count(), 3);
    // Everything acknowledged under acks=all before the close is readable again.
    assert!(set.high_watermark() >= Offset(20));
    // The followers rejoin the ISR once caught up, and acks=all works again.
    wait_in_sync(&set, 3);
    let producer = producer(&store, Acks::All);
    for i in 20..30 {
        producer
            .send_to("t", 0, Record::new(format!("a{i:02}")))
            .unwrap();
    }
    let expected: Vec<String> = (0..30).map(|i| format!("a{i:02}")).collect();
    assert_eq!(consume(&store, "g", "t", 30), expected);
    wait_converged(&set);
    store.close().unwrap();
}

#[test]
fn deleting_a_replicated_topic_removes_every_replica_directory() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path(), store_config()).unwrap();
    let topic = store.create_topic("t", replicated(2, 3, 1)).unwrap();
    topic.append_to(0, &[Record::new("x")]).unwrap();
    let dirs: Vec<_> = (0..2)
        .flat_map(|p| replica_dirs(dir.path(), "t", p, 3))
        .collect();
    assert!(dirs.iter().all(|d| d.exists()));
    store.delete_topic("t").unwrap();
    for d in &dirs {
        assert!(!d.exists(), "{} left behind", d.display());
        let mut deleted = d.clone().into_os_string();
        deleted.push(".deleted");
        assert!(!Path::new(&deleted).exists());
    }
    assert!(matches!(
        topic.append_to(0, &[Record::new("y")]),
        Err(Error::UnknownTopic { .. })
    ));
    // The name is free again, unreplicated this time, and the store reopens cleanly.
    store.create_topic("t", TopicConfig::new(1)).unwrap();
    store.close().unwrap();
    let store = LogStore::open(dir.path(), store_config()).unwrap();
    assert_eq!(store.topic("t").unwrap().replication_factor(), 1);
    assert!(!dir.path().join("__replica1").join("t-0").exists());
    store.close().unwrap();
}

#[test]
fn leftover_replica_directories_are_swept_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path(), store_config()).unwrap();
    store.create_topic("t", replicated(1, 2, 1)).unwrap();
    store.close().unwrap();
    // A creation interrupted before its commit, and a deletion interrupted before removal.
    let root = dir.path().join("__replica1");
    for leftover in ["ghost-0", "t-1", "old-0.deleted"] {
        std::fs::create_dir_all(root.join(leftover)).unwrap();
        std::fs::write(root.join(leftover).join(PARTITION_LOCK_FILE), b"").unwrap();
    }
    // Not seglog's: left alone.
    std::fs::create_dir_all(root.join("notes")).unwrap();
    let store = LogStore::open(dir.path(), store_config()).unwrap();
    for leftover in ["ghost-0", "t-1", "old-0.deleted"] {
        assert!(!root.join(leftover).exists(), "{leftover} not swept");
    }
    assert!(root.join("t-0").exists());
    assert!(root.join("notes").exists());
    store.close().unwrap();
}

#[test]
fn replication_settings_are_validated() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path(), store_config()).unwrap();
    for (factor, min_insync, field) in [
        (0, 1, "replication_factor"),
        (17, 1, "replication_factor"),
        (2, 3, "min_insync_replicas"),
        (2, 0, "min_insync_replicas"),
    ] {
        let err = store
            .create_topic("t", replicated(1, factor, min_insync))
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidConfig { field: f, .. } if f == field),
            "{factor}/{min_insync}: {err:?}"
        );
    }
    assert!(store.list_topics().is_empty());
    // An unreplicated topic's acks=all is its append: min_insync 1 is always met.
    store.create_topic("single", TopicConfig::new(1)).unwrap();
    assert!(store
        .topic("single")
        .unwrap()
        .replica_set(0)
        .unwrap()
        .is_none());
    let producer = producer(&store, Acks::All);
    producer.send("single", Record::new("x")).unwrap();
    assert!(!dir.path().join("__replica1").exists());
    store.close().unwrap();
}

#[test]
fn acks_all_is_refused_below_min_insync_replicas() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path(), store_config()).unwrap();
    let topic = store.create_topic("t", replicated(1, 2, 2)).unwrap();
    let set = set_of(&topic, 0);
    wait_in_sync(&set, 2);
    let all = producer(&store, Acks::All);
    all.send_to("t", 0, Record::new("committed")).unwrap();
    // The follower dies: the ISR shrinks to the leader alone.
    let follower = 1 - set.leader_id().unwrap();
    assert!(set.crash(follower).is_none());
    assert_eq!(set.in_sync_replicas(), 1);
    let err = all.send_to("t", 0, Record::new("refused")).unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotEnoughReplicas {
                in_sync: 1,
                required: 2
            }
        ),
        "{err:?}"
    );
    // Through the batching path, the handle and flush carry the same typed error.
    let batched = producer(&store, Acks::All);
    let handle = batched
        .send_batched_to("t", 0, Record::new("refused too"))
        .unwrap();
    let err = handle.wait().unwrap_err();
    assert!(
        matches!(&err, Error::SendFailed { source, .. }
            if matches!(**source, Error::NotEnoughReplicas { .. })),
        "{err:?}"
    );
    // acks=leader does not need the follower.
    producer(&store, Acks::Leader)
        .send_to("t", 0, Record::new("leader only"))
        .unwrap();
    // The follower comes back, catches up, rejoins; acks=all works again.
    set.restart(follower).unwrap();
    wait_in_sync(&set, 2);
    all.send_to("t", 0, Record::new("committed again")).unwrap();
    wait_converged(&set);
    let values: Vec<String> = log_of(&topic.partition(0).unwrap())
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(values, ["committed", "leader only", "committed again"]);
    store.close().unwrap();
}

#[test]
fn a_crashed_leader_fails_over_without_losing_acknowledged_records() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path(), store_config()).unwrap();
    let topic = store.create_topic("t", replicated(1, 3, 2)).unwrap();
    let set = set_of(&topic, 0);
    wait_in_sync(&set, 3);
    let all = producer(&store, Acks::All);
    for i in 0..20 {
        all.send_to("t", 0, Record::new(format!("v{i:02}")))
            .unwrap();
    }
    let old = set.leader_id().unwrap();
    let epoch = set.leader_epoch().unwrap();
    let elected = set.crash(old).expect("the leader crashed: an election ran");
    assert!(elected.unwrap() > epoch);
    let new = set.leader_id().unwrap();
    assert_ne!(new, old);
    // The topic's partition is now the new leader's copy.
    assert_eq!(
        topic.partition(0).unwrap().dir(),
        set.replica(new).unwrap().dir()
    );
    wait_in_sync(&set, 2);
    for i in 20..30 {
        all.send_to("t", 0, Record::new(format!("v{i:02}")))
            .unwrap();
    }
    let expected: Vec<String> = (0..30).map(|i| format!("v{i:02}")).collect();
    assert_eq!(consume(&store, "g", "t", 30), expected);
    // The old leader comes back as a follower and converges.
    set.restart(old).unwrap();
    wait_in_sync(&set, 3);
    wait_converged(&set);
    store.close().unwrap();
    // After a reopen everything acknowledged is still there.
    let store = LogStore::open(dir.path(), store_config()).unwrap();
    assert_eq!(consume(&store, "g2", "t", 30), expected);
    store.close().unwrap();
}
