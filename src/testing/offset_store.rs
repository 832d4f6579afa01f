//! The [`OffsetStore`] conformance suite.
//!
//! [`offset_store_conformance`] checks the contract every store must keep (validation and its
//! exact limits, atomicity, ordering, group independence, sorted consistent `fetch_group`,
//! concurrent use, `delete` where supported); [`durable_offset_store_conformance`] adds the
//! checks of a durable store: everything acknowledged (commits and deletions) survives a
//! reopen, whole and in order, checked against a model over a seeded random sequence of
//! commits.
//!
//! ```
//! use seglog::{FileOffsetStore, FileOffsetStoreConfig};
//!
//! # fn main() {
//! let root = tempfile::tempdir().unwrap();
//! let mut n = 0;
//! seglog::testing::durable_offset_store_conformance(
//!     || {
//!         n += 1;
//!         FileOffsetStore::open(root.path().join(n.to_string())).unwrap()
//!     },
//!     |store| {
//!         let dir = store.dir().to_owned();
//!         drop(store);
//!         FileOffsetStore::open(dir).unwrap()
//!     },
//! );
//! # }
//! ```

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};
use crate::group::offset_store::{
    CommittedOffset, OffsetStore, GROUP_ID_BYTES_MAX, OFFSET_COMMIT_PARTITIONS_MAX,
    OFFSET_METADATA_BYTES_MAX, OFFSET_TOPIC_BYTES_MAX,
};
use crate::offset::{Offset, TopicPartition};

type Entries = Vec<(TopicPartition, CommittedOffset)>;

/// Run every check of the [`OffsetStore`] contract that does not involve a restart.
///
/// `new_store` must return a fresh, empty store each time it is called; the suite calls it
/// once per check. Panics, naming the check, on the first violation.
pub fn offset_store_conformance<S: OffsetStore>(mut new_store: impl FnMut() -> S) {
    missing_entry_is_none(&new_store());
    commit_then_fetch(&new_store());
    later_commit_overwrites(&new_store());
    last_duplicate_in_a_list_wins(&new_store());
    multi_partition_commit_is_atomic(&new_store());
    groups_are_independent(&new_store());
    metadata_round_trips(&new_store());
    empty_commit_is_a_no_op(&new_store());
    extreme_values_round_trip(&new_store());
    fetch_group_is_sorted(&new_store());
    group_id_limits(&new_store());
    topic_name_limits(&new_store());
    metadata_limit(&new_store());
    commit_size_limit(&new_store());
    concurrent_commits(&new_store());
    delete_removes_only_what_it_names(&new_store());
}

/// Run [`offset_store_conformance`], then the checks of a durable store.
///
/// `reopen` takes a store and returns the same store reopened: close it (or drop it) and open
/// it again on the same storage. Everything acknowledged must be there, exactly.
pub fn durable_offset_store_conformance<S: OffsetStore>(
    mut new_store: impl FnMut() -> S,
    mut reopen: impl FnMut(S) -> S,
) {
    offset_store_conformance(&mut new_store);
    reopen_empty(new_store(), &mut reopen);
    reopen_keeps_every_commit(new_store(), &mut reopen);
    reopen_keeps_nothing_rejected(new_store(), &mut reopen);
    reopen_after_concurrent_commits(new_store(), &mut reopen);
    random_commits_match_a_model(new_store(), &mut reopen);
    reopen_keeps_a_deletion(new_store(), &mut reopen);
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn ok<T>(r: Result<T>, check: &str, what: &str) -> T {
    r.unwrap_or_else(|e| panic!("offset store conformance: {check}: {what} failed: {e}"))
}

fn tp(topic: &str, partition: u32) -> TopicPartition {
    TopicPartition::new(topic, partition)
}

fn at(offset: u64) -> CommittedOffset {
    CommittedOffset::new(Offset(offset))
}

fn commit<S: OffsetStore>(
    s: &S,
    check: &str,
    group: &str,
    list: &[(TopicPartition, CommittedOffset)],
) {
    ok(
        s.commit(group, list),
        check,
        &format!("commit to {group:?}"),
    );
}

fn fetch<S: OffsetStore>(
    s: &S,
    check: &str,
    group: &str,
    p: &TopicPartition,
) -> Option<CommittedOffset> {
    ok(s.fetch(group, p), check, &format!("fetch {group:?} {p}"))
}

fn fetch_group<S: OffsetStore>(s: &S, check: &str, group: &str) -> Entries {
    ok(
        s.fetch_group(group),
        check,
        &format!("fetch_group {group:?}"),
    )
}

/// What `fetch_group` must return for a model of one group.
fn sorted(model: &BTreeMap<TopicPartition, CommittedOffset>) -> Entries {
    model.iter().map(|(p, c)| (p.clone(), c.clone())).collect()
}

fn expect_err<T: std::fmt::Debug>(
    r: Result<T>,
    check: &str,
    what: &str,
    matches: impl FnOnce(&Error) -> bool,
) {
    match r {
        Err(e) if matches(&e) => {}
        other => panic!("offset store conformance: {check}: {what}: unexpected {other:?}"),
    }
}

/// Seeded xorshift64: the model check is reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

// ---------------------------------------------------------------------------------------------
// Checks on any store

fn missing_entry_is_none<S: OffsetStore>(s: &S) {
    let c = "missing_entry_is_none";
    assert_eq!(fetch(s, c, "g", &tp("t", 0)), None, "{c}: empty store");
    assert!(fetch_group(s, c, "g").is_empty(), "{c}: unknown group");
    commit(s, c, "g", &[(tp("t", 0), at(5))]);
    assert_eq!(fetch(s, c, "g", &tp("t", 1)), None, "{c}: other partition");
    assert_eq!(fetch(s, c, "g", &tp("u", 0)), None, "{c}: other topic");
    assert_eq!(fetch(s, c, "h", &tp("t", 0)), None, "{c}: other group");
}

fn commit_then_fetch<S: OffsetStore>(s: &S) {
    let c = "commit_then_fetch";
    let committed = at(42).with_metadata("processed up to 41");
    commit(s, c, "g", &[(tp("t", 3), committed.clone())]);
    assert_eq!(
        fetch(s, c, "g", &tp("t", 3)),
        Some(committed.clone()),
        "{c}"
    );
    assert_eq!(fetch_group(s, c, "g"), vec![(tp("t", 3), committed)], "{c}");
}

fn later_commit_overwrites<S: OffsetStore>(s: &S) {
    let c = "later_commit_overwrites";
    let p = tp("t", 0);
    commit(s, c, "g", &[(p.clone(), at(10).with_metadata("first"))]);
    commit(s, c, "g", &[(p.clone(), at(20).with_metadata("second"))]);
    assert_eq!(
        fetch(s, c, "g", &p),
        Some(at(20).with_metadata("second")),
        "{c}: higher offset"
    );
    // No monotonicity: a consumer that seeks back commits a lower offset.
    commit(s, c, "g", &[(p.clone(), at(7))]);
    assert_eq!(
        fetch(s, c, "g", &p),
        Some(at(7)),
        "{c}: lower offset, metadata replaced"
    );
    // Overwriting one partition leaves the others alone.
    commit(s, c, "g", &[(tp("t", 1), at(1))]);
    commit(s, c, "g", &[(p.clone(), at(8))]);
    assert_eq!(
        fetch_group(s, c, "g"),
        vec![(p, at(8)), (tp("t", 1), at(1))],
        "{c}: other partition unchanged"
    );
}

fn last_duplicate_in_a_list_wins<S: OffsetStore>(s: &S) {
    let c = "last_duplicate_in_a_list_wins";
    let p = tp("t", 0);
    commit(
        s,
        c,
        "g",
        &[
            (p.clone(), at(5)),
            (tp("t", 1), at(1)),
            (p.clone(), at(3).with_metadata("last")),
        ],
    );
    assert_eq!(
        fetch(s, c, "g", &p),
        Some(at(3).with_metadata("last")),
        "{c}"
    );
    assert_eq!(fetch_group(s, c, "g").len(), 2, "{c}");
}

fn multi_partition_commit_is_atomic<S: OffsetStore>(s: &S) {
    let c = "multi_partition_commit_is_atomic";
    let list: Entries = vec![
        (tp("a", 0), at(1)),
        (tp("a", 1), at(2)),
        (tp("b", 0), at(3).with_metadata("m")),
    ];
    commit(s, c, "g", &list);
    assert_eq!(fetch_group(s, c, "g"), list, "{c}: whole list visible");
    // A list with one invalid entry is rejected whole, whatever its position.
    let too_long = "x".repeat(OFFSET_METADATA_BYTES_MAX + 1);
    let rejected: Entries = vec![
        (tp("a", 0), at(100)),
        (tp("c", 0), at(100)),
        (tp("b", 0), at(100).with_metadata(too_long)),
    ];
    expect_err(
        s.commit("g", &rejected),
        c,
        "list with oversized metadata",
        |e| matches!(e, Error::OffsetMetadataTooLarge { .. }),
    );
    assert_eq!(
        fetch_group(s, c, "g"),
        list,
        "{c}: rejected list left a trace"
    );
    let rejected: Entries = vec![(tp("a", 0), at(100)), (tp("", 0), at(100))];
    expect_err(
        s.commit("g", &rejected),
        c,
        "list with an empty topic",
        |e| matches!(e, Error::InvalidCommitTopic { .. }),
    );
    assert_eq!(
        fetch_group(s, c, "g"),
        list,
        "{c}: rejected list left a trace"
    );
}

fn groups_are_independent<S: OffsetStore>(s: &S) {
    let c = "groups_are_independent";
    let p = tp("t", 0);
    commit(s, c, "g1", &[(p.clone(), at(1))]);
    commit(s, c, "g2", &[(p.clone(), at(2))]);
    commit(s, c, "g1", &[(tp("t", 1), at(11))]);
    assert_eq!(fetch(s, c, "g1", &p), Some(at(1)), "{c}");
    assert_eq!(fetch(s, c, "g2", &p), Some(at(2)), "{c}");
    assert_eq!(fetch_group(s, c, "g2"), vec![(p.clone(), at(2))], "{c}");
    // Group ids are compared exactly: no case folding, no trimming, no prefix matching.
    for other in ["G1", "g1 ", "g", "g10"] {
        assert_eq!(fetch(s, c, other, &p), None, "{c}: group {other:?}");
    }
}

fn metadata_round_trips<S: OffsetStore>(s: &S) {
    let c = "metadata_round_trips";
    let values = [
        String::new(),
        "plain".to_owned(),
        "ünïcødé ✓ 日本語".to_owned(),
        "line\nbreak\ttab\0nul".to_owned(),
        "m".repeat(OFFSET_METADATA_BYTES_MAX),
    ];
    let list: Entries = values
        .iter()
        .enumerate()
        .map(|(i, m)| (tp("t", i as u32), at(i as u64).with_metadata(m.clone())))
        .collect();
    commit(s, c, "g", &list);
    for (p, want) in &list {
        assert_eq!(fetch(s, c, "g", p).as_ref(), Some(want), "{c}: {p}");
    }
}

fn empty_commit_is_a_no_op<S: OffsetStore>(s: &S) {
    let c = "empty_commit_is_a_no_op";
    commit(s, c, "g", &[]);
    assert!(fetch_group(s, c, "g").is_empty(), "{c}: on an empty group");
    commit(s, c, "g", &[(tp("t", 0), at(4))]);
    commit(s, c, "g", &[]);
    assert_eq!(fetch_group(s, c, "g"), vec![(tp("t", 0), at(4))], "{c}");
    // The group id is still validated.
    expect_err(s.commit("", &[]), c, "empty list, empty group", |e| {
        matches!(e, Error::InvalidGroupId { .. })
    });
}

fn extreme_values_round_trip<S: OffsetStore>(s: &S) {
    let c = "extreme_values_round_trip";
    let list: Entries = vec![
        (tp("t", 0), at(0)),
        (tp("t", u32::MAX), at(u64::MAX)),
        (tp("topic/with spaces.and-ümlaut", 7), at(1 << 40)),
    ];
    let group = "group with spaces/ümlaut";
    commit(s, c, group, &list);
    for (p, want) in &list {
        assert_eq!(fetch(s, c, group, p).as_ref(), Some(want), "{c}: {p}");
    }
}

fn fetch_group_is_sorted<S: OffsetStore>(s: &S) {
    let c = "fetch_group_is_sorted";
    commit(s, c, "g", &[(tp("b", 1), at(1)), (tp("a", 10), at(2))]);
    commit(s, c, "g", &[(tp("a", 2), at(3)), (tp("b", 0), at(4))]);
    let want = vec![
        (tp("a", 2), at(3)),
        (tp("a", 10), at(2)),
        (tp("b", 0), at(4)),
        (tp("b", 1), at(1)),
    ];
    assert_eq!(fetch_group(s, c, "g"), want, "{c}");
}

fn group_id_limits<S: OffsetStore>(s: &S) {
    let c = "group_id_limits";
    let p = tp("t", 0);
    let longest = "g".repeat(GROUP_ID_BYTES_MAX);
    // Multi-byte characters count in bytes.
    let longest_multibyte = format!("{}x", "é".repeat((GROUP_ID_BYTES_MAX - 1) / 2));
    assert_eq!(longest_multibyte.len(), GROUP_ID_BYTES_MAX);
    for group in [&longest, &longest_multibyte] {
        commit(s, c, group, &[(p.clone(), at(1))]);
        assert_eq!(fetch(s, c, group, &p), Some(at(1)), "{c}: longest id");
    }
    let too_long = "g".repeat(GROUP_ID_BYTES_MAX + 1);
    let too_long_multibyte = "é".repeat(GROUP_ID_BYTES_MAX / 2 + 1);
    for group in ["", &too_long, &too_long_multibyte] {
        let bad = |e: &Error| matches!(e, Error::InvalidGroupId { .. });
        expect_err(s.commit(group, &[(p.clone(), at(1))]), c, "commit", bad);
        expect_err(s.fetch(group, &p), c, "fetch", bad);
        expect_err(s.fetch_group(group), c, "fetch_group", bad);
    }
}

fn topic_name_limits<S: OffsetStore>(s: &S) {
    let c = "topic_name_limits";
    let longest = tp(&"t".repeat(OFFSET_TOPIC_BYTES_MAX), 0);
    commit(s, c, "g", &[(longest.clone(), at(1))]);
    assert_eq!(fetch(s, c, "g", &longest), Some(at(1)), "{c}: longest name");
    for topic in [String::new(), "t".repeat(OFFSET_TOPIC_BYTES_MAX + 1)] {
        expect_err(
            s.commit("g", &[(tp(&topic, 0), at(1))]),
            c,
            "bad topic",
            |e| matches!(e, Error::InvalidCommitTopic { .. }),
        );
    }
    assert_eq!(fetch_group(s, c, "g"), vec![(longest, at(1))], "{c}");
}

fn metadata_limit<S: OffsetStore>(s: &S) {
    let c = "metadata_limit";
    let p = tp("t", 0);
    let longest = "é".repeat(OFFSET_METADATA_BYTES_MAX / 2);
    commit(
        s,
        c,
        "g",
        &[(p.clone(), at(1).with_metadata(longest.clone()))],
    );
    assert_eq!(
        fetch(s, c, "g", &p),
        Some(at(1).with_metadata(longest)),
        "{c}"
    );
    let too_long = format!("{}x", "é".repeat(OFFSET_METADATA_BYTES_MAX / 2));
    match s.commit("g", &[(p.clone(), at(2).with_metadata(too_long))]) {
        Err(Error::OffsetMetadataTooLarge {
            topic_partition,
            size,
            limit,
        }) => {
            assert_eq!(topic_partition, p, "{c}: error names the partition");
            assert_eq!(size, OFFSET_METADATA_BYTES_MAX + 1, "{c}: size in bytes");
            assert_eq!(limit, OFFSET_METADATA_BYTES_MAX, "{c}: limit");
        }
        other => panic!("offset store conformance: {c}: oversized metadata: unexpected {other:?}"),
    }
    assert_eq!(
        fetch(s, c, "g", &p).map(|e| e.offset),
        Some(Offset(1)),
        "{c}: unchanged"
    );
}

fn commit_size_limit<S: OffsetStore>(s: &S) {
    let c = "commit_size_limit";
    let list =
        |n: usize| -> Entries { (0..n).map(|i| (tp("t", i as u32), at(i as u64))).collect() };
    expect_err(
        s.commit("g", &list(OFFSET_COMMIT_PARTITIONS_MAX + 1)),
        c,
        "too many",
        |e| {
            matches!(e, Error::OffsetCommitTooLarge { count, limit }
            if *count == OFFSET_COMMIT_PARTITIONS_MAX + 1 && *limit == OFFSET_COMMIT_PARTITIONS_MAX)
        },
    );
    assert!(
        fetch_group(s, c, "g").is_empty(),
        "{c}: rejected list left a trace"
    );
    let largest = list(OFFSET_COMMIT_PARTITIONS_MAX);
    commit(s, c, "g", &largest);
    assert_eq!(fetch_group(s, c, "g"), largest, "{c}: largest list");
}

const WRITERS: u32 = 4;
const WRITER_COMMITS: u64 = 50;
const WRITER_PARTITIONS: u32 = 3;

/// Writer `w` commits `WRITER_COMMITS` times, each commit setting all of topic `w{w}`'s
/// partitions to the same offset, while a reader checks every snapshot it sees: per topic,
/// no partition or all of them, equal offsets (atomicity), never going back (ordering).
fn concurrent_commits<S: OffsetStore>(s: &S) {
    let c = "concurrent_commits";
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| scope.spawn(move || writer_commits(s, c, w)))
            .collect();
        let reader = scope.spawn(|| {
            let mut seen = vec![0u64; WRITERS as usize];
            let mut last_pass = false;
            loop {
                check_snapshot(c, &fetch_group(s, c, "conc"), &mut seen);
                if last_pass {
                    return seen;
                }
                last_pass = done.load(Ordering::Acquire);
            }
        });
        for w in writers {
            w.join().expect("writer thread panicked");
        }
        done.store(true, Ordering::Release);
        let seen = reader.join().expect("reader thread panicked");
        assert!(
            seen.iter().all(|&o| o == WRITER_COMMITS),
            "{c}: final snapshot {seen:?}"
        );
    });
    for w in 0..WRITERS {
        let want = at(WRITER_COMMITS).with_metadata(format!("{w}:{WRITER_COMMITS}"));
        assert_eq!(
            fetch(s, c, &format!("conc-{w}"), &tp(&format!("w{w}"), 0)),
            Some(want),
            "{c}"
        );
        assert_eq!(fetch_group(s, c, &format!("conc-{w}")).len(), 1, "{c}");
    }
}

/// Writer `w` of [`concurrent_commits`]: its commits to group `conc`, each followed by one
/// to its own group.
fn writer_commits<S: OffsetStore>(s: &S, c: &str, w: u32) {
    for i in 1..=WRITER_COMMITS {
        let list: Entries = (0..WRITER_PARTITIONS)
            .map(|p| {
                (
                    tp(&format!("w{w}"), p),
                    at(i).with_metadata(format!("{w}:{i}")),
                )
            })
            .collect();
        commit(s, c, "conc", &list);
        // Other groups in between: independent.
        commit(s, c, &format!("conc-{w}"), &list[..1]);
    }
}

/// Check one snapshot of group `conc` seen by the reader of [`concurrent_commits`]: every
/// writer's topic whole, with equal offsets and its own metadata, not behind `seen`, which
/// is then advanced.
fn check_snapshot(c: &str, snapshot: &[(TopicPartition, CommittedOffset)], seen: &mut [u64]) {
    let mut by_topic: BTreeMap<&str, Vec<&CommittedOffset>> = BTreeMap::new();
    for (p, e) in snapshot {
        by_topic.entry(p.topic.as_str()).or_default().push(e);
    }
    for (topic, entries) in by_topic {
        let w: usize = topic[1..].parse().expect("writer topic");
        assert_eq!(
            entries.len(),
            WRITER_PARTITIONS as usize,
            "{c}: torn commit seen: {snapshot:?}"
        );
        let offset = entries[0].offset.0;
        for e in &entries {
            assert_eq!(e.offset.0, offset, "{c}: torn commit seen: {snapshot:?}");
            assert_eq!(e.metadata, format!("{w}:{offset}"), "{c}: metadata");
        }
        assert!(
            offset >= seen[w],
            "{c}: {topic} went back from {} to {offset}",
            seen[w]
        );
        seen[w] = offset;
    }
}

// ---------------------------------------------------------------------------------------------
// Checks on durable stores

/// Seed two groups for the deletion checks: `g` with three partitions, `other` with one.
/// Returns `false` (and checks nothing more) for a store that does not support `delete`.
fn seed_for_delete<S: OffsetStore>(s: &S, c: &str) -> bool {
    commit(
        s,
        c,
        "g",
        &[
            (tp("a", 0), at(1)),
            (tp("a", 1), at(2)),
            (tp("b", 0), at(3)),
        ],
    );
    commit(s, c, "other", &[(tp("a", 0), at(9))]);
    match s.delete("g", Some(&[tp("a", 1), tp("zz", 7)])) {
        Err(Error::Unsupported { .. }) => false,
        r => {
            ok(
                r,
                c,
                "delete of g's a-1 (and a partition it never committed)",
            );
            true
        }
    }
}

/// `delete` removes exactly the named entries (unknown ones ignored), or the whole group.
fn delete_removes_only_what_it_names<S: OffsetStore>(s: &S) {
    let c = "delete_removes_only_what_it_names";
    if !seed_for_delete(s, c) {
        return;
    }
    assert_eq!(fetch(s, c, "g", &tp("a", 1)), None, "{c}: deleted entry");
    assert_eq!(
        fetch_group(s, c, "g"),
        vec![(tp("a", 0), at(1)), (tp("b", 0), at(3))],
        "{c}: the rest of the group"
    );
    ok(s.delete("g", None), c, "delete of all of g");
    assert!(fetch_group(s, c, "g").is_empty(), "{c}: whole group");
    assert_eq!(
        fetch_group(s, c, "other"),
        vec![(tp("a", 0), at(9))],
        "{c}: another group"
    );
    ok(s.delete("never", None), c, "delete of an unknown group");
    commit(s, c, "g", &[(tp("a", 1), at(5))]);
    assert_eq!(
        fetch(s, c, "g", &tp("a", 1)),
        Some(at(5)),
        "{c}: commit after"
    );
}

/// A deletion a durable store acknowledged survives a reopen.
fn reopen_keeps_a_deletion<S: OffsetStore>(s: S, reopen: &mut impl FnMut(S) -> S) {
    let c = "reopen_keeps_a_deletion";
    if !seed_for_delete(&s, c) {
        return;
    }
    let s = reopen(s);
    assert_eq!(
        fetch_group(&s, c, "g"),
        vec![(tp("a", 0), at(1)), (tp("b", 0), at(3))],
        "{c}: after reopen"
    );
    assert_eq!(
        fetch_group(&s, c, "other"),
        vec![(tp("a", 0), at(9))],
        "{c}"
    );
}

fn reopen_empty<S: OffsetStore>(s: S, reopen: &mut impl FnMut(S) -> S) {
    let c = "reopen_empty";
    let s = reopen(s);
    assert!(fetch_group(&s, c, "g").is_empty(), "{c}");
    commit(&s, c, "g", &[]);
    let s = reopen(s);
    assert!(
        fetch_group(&s, c, "g").is_empty(),
        "{c}: after an empty commit"
    );
    commit(&s, c, "g", &[(tp("t", 0), at(1))]);
    let s = reopen(s);
    assert_eq!(
        fetch_group(&s, c, "g"),
        vec![(tp("t", 0), at(1))],
        "{c}: first commit after reopen"
    );
}

fn reopen_keeps_every_commit<S: OffsetStore>(s: S, reopen: &mut impl FnMut(S) -> S) {
    let c = "reopen_keeps_every_commit";
    commit(
        &s,
        c,
        "g1",
        &[
            (tp("a", 0), at(1)),
            (tp("a", 1), at(2).with_metadata("meta")),
        ],
    );
    commit(&s, c, "g2", &[(tp("a", 0), at(100))]);
    commit(
        &s,
        c,
        "g1",
        &[(tp("a", 0), at(3)), (tp("b", 5), at(u64::MAX))],
    );
    commit(&s, c, "g1", &[(tp("a", 1), at(0))]);
    let want_g1 = vec![
        (tp("a", 0), at(3)),
        (tp("a", 1), at(0)),
        (tp("b", 5), at(u64::MAX)),
    ];
    let want_g2 = vec![(tp("a", 0), at(100))];
    let s = reopen(s);
    assert_eq!(fetch_group(&s, c, "g1"), want_g1, "{c}: g1");
    assert_eq!(fetch_group(&s, c, "g2"), want_g2, "{c}: g2");
    // Still writable, and a second reopen keeps both generations of commits.
    commit(
        &s,
        c,
        "g2",
        &[(tp("a", 0), at(101).with_metadata("after reopen"))],
    );
    let s = reopen(s);
    assert_eq!(
        fetch_group(&s, c, "g1"),
        want_g1,
        "{c}: g1 after second reopen"
    );
    assert_eq!(
        fetch_group(&s, c, "g2"),
        vec![(tp("a", 0), at(101).with_metadata("after reopen"))],
        "{c}: g2 after second reopen"
    );
}

fn reopen_keeps_nothing_rejected<S: OffsetStore>(s: S, reopen: &mut impl FnMut(S) -> S) {
    let c = "reopen_keeps_nothing_rejected";
    commit(&s, c, "g", &[(tp("t", 0), at(1))]);
    let too_long = "x".repeat(OFFSET_METADATA_BYTES_MAX + 1);
    let _ = s.commit(
        "g",
        &[
            (tp("t", 0), at(9)),
            (tp("t", 1), at(9).with_metadata(too_long)),
        ],
    );
    let _ = s.commit("", &[(tp("t", 0), at(9))]);
    let s = reopen(s);
    assert_eq!(fetch_group(&s, c, "g"), vec![(tp("t", 0), at(1))], "{c}");
}

fn reopen_after_concurrent_commits<S: OffsetStore>(s: S, reopen: &mut impl FnMut(S) -> S) {
    let c = "reopen_after_concurrent_commits";
    concurrent_commits(&s);
    let before = fetch_group(&s, c, "conc");
    let s = reopen(s);
    assert_eq!(fetch_group(&s, c, "conc"), before, "{c}");
    for w in 0..WRITERS {
        let group = format!("conc-{w}");
        assert_eq!(fetch_group(&s, c, &group).len(), 1, "{c}: {group}");
    }
}

const MODEL_GROUPS: [&str; 3] = ["m0", "m1", "m2"];
const MODEL_OPS: usize = 400;
const MODEL_REOPEN_EVERY: usize = 40;

/// Seeded random commits (overwrites, duplicates, metadata of varied size, a few rejected
/// lists) checked against a `BTreeMap` model after every commit and after every reopen.
fn random_commits_match_a_model<S: OffsetStore>(mut s: S, reopen: &mut impl FnMut(S) -> S) {
    let c = "random_commits_match_a_model";
    let mut rng = Rng(0x0FF5_E7C0_FFEE_D00D);
    let mut model: BTreeMap<&str, BTreeMap<TopicPartition, CommittedOffset>> = BTreeMap::new();
    for op in 0..MODEL_OPS {
        let group = MODEL_GROUPS[rng.below(MODEL_GROUPS.len() as u64) as usize];
        let n = 1 + rng.below(5) as usize;
        let list: Entries = (0..n)
            .map(|_| {
                let p = tp(
                    ["a", "b", "long-topic-name"][rng.below(3) as usize],
                    rng.below(6) as u32,
                );
                let meta_len = [0, 1, 10, 200, OFFSET_METADATA_BYTES_MAX][rng.below(5) as usize];
                let meta: String = (0..meta_len)
                    .map(|i| (b'a' + ((op + i) % 26) as u8) as char)
                    .collect();
                (p, at(rng.below(1 << 20)).with_metadata(meta))
            })
            .collect();
        if rng.below(20) == 0 {
            // Rejected: one oversized metadata anywhere in the list.
            let mut list = list;
            let k = rng.below(n as u64) as usize;
            list[k].1.metadata = "x".repeat(OFFSET_METADATA_BYTES_MAX + 1);
            expect_err(
                s.commit(group, &list),
                c,
                &format!("op {op}: oversized"),
                |e| matches!(e, Error::OffsetMetadataTooLarge { .. }),
            );
        } else {
            commit(&s, c, group, &list);
            let m = model.entry(group).or_default();
            for (p, e) in list {
                m.insert(p, e);
            }
        }
        let m = model.get(group).cloned().unwrap_or_default();
        assert_eq!(fetch_group(&s, c, group), sorted(&m), "{c}: op {op}");
        if (op + 1) % MODEL_REOPEN_EVERY == 0 {
            s = reopen(s);
            for g in MODEL_GROUPS {
                let m = model.get(g).cloned().unwrap_or_default();
                assert_eq!(
                    fetch_group(&s, c, g),
                    sorted(&m),
                    "{c}: group {g} after reopen at op {op}"
                );
                for (p, e) in &m {
                    assert_eq!(
                        fetch(&s, c, g, p).as_ref(),
                        Some(e),
                        "{c}: fetch {g} {p} after reopen"
                    );
                }
            }
        }
    }
}
