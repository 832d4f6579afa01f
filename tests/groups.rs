//! Consumer groups: proves the assignors keep their contract (conformance suite), balance
//! and stickiness against computed optima over seeded random group histories, and that the
//! coordinator handles join/leave/session timeout, bumps generations, hands partitions over
//! without ever giving one two owners (checked after every step of a churn scenario), fences
//! stale commits, refuses a rebalance whose assignor breaks its contract with a typed error
//! while the group goes on working on its previous assignment, and that consumers in a group
//! see every record exactly once under deterministic member churn while separate groups each
//! see every record.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use seglog::testing::assignor_conformance;
use seglog::{
    Assignment, Assignor, AutoOffsetReset, CommittedOffset, Consumer, ConsumerConfig, Durability,
    Error, GroupCoordinator, LogStore, MemberConfig, MemoryOffsetStore, Offset, OffsetStore,
    PartitionConfig, PartitionCounts, RangeAssignor, RebalanceListener, Record, RoundRobinAssignor,
    StickyAssignor, StoreConfig, Subscriptions, TopicConfig, TopicPartition,
};

const HOUR: Duration = Duration::from_secs(3600);

fn tp(topic: &str, partition: u32) -> TopicPartition {
    TopicPartition::new(topic, partition)
}

fn open_store(dir: &std::path::Path) -> LogStore {
    LogStore::open(dir, StoreConfig::default().with_maintenance_interval(None)).unwrap()
}

fn topic_config(partitions: u32) -> TopicConfig {
    TopicConfig::new(partitions).with_partition_config(
        PartitionConfig::default()
            .with_durability(Durability::NoSync)
            .with_preallocate_bytes(0),
    )
}

fn coordinator(store: &LogStore) -> Arc<GroupCoordinator> {
    Arc::new(GroupCoordinator::for_store(
        store,
        Arc::new(MemoryOffsetStore::new()),
    ))
}

/// Append `n` records `"<p>:<i>"` to every partition of `topic`.
fn fill(store: &LogStore, topic: &str, n: usize) {
    let t = store.topic(topic).unwrap();
    for p in 0..t.partition_count() {
        let records: Vec<Record> = (0..n).map(|i| Record::new(format!("{p}:{i}"))).collect();
        t.append_to(p, &records).unwrap();
    }
}

fn member(topics: &[&str]) -> MemberConfig {
    MemberConfig::new(topics.iter().copied()).with_session_timeout(HOUR)
}

/// Every partition has at most one owner, and owners only own what exists.
fn assert_single_owners(c: &GroupCoordinator, group: &str) {
    let Some(d) = c.describe(group) else { return };
    let mut seen = BTreeMap::new();
    for m in &d.members {
        for p in &m.owned {
            if let Some(other) = seen.insert(p.clone(), m.member_id.clone()) {
                panic!("{p} owned by {other} and {}", m.member_id);
            }
        }
    }
    // The target assignment is itself a partition of the subscribed partitions.
    let mut targets = BTreeSet::new();
    for m in &d.members {
        for p in &m.assigned {
            assert!(targets.insert(p.clone()), "{p} assigned twice");
        }
    }
}

// ----- assignors -----

#[test]
fn shipped_assignors_pass_the_conformance_suite() {
    assignor_conformance(&RangeAssignor);
    assignor_conformance(&RoundRobinAssignor);
    assignor_conformance(&StickyAssignor);
}

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

fn identical(members: &[String], topics: &[&str]) -> Subscriptions {
    let t: BTreeSet<String> = topics.iter().map(|s| s.to_string()).collect();
    members.iter().map(|m| (m.clone(), t.clone())).collect()
}

fn counts_of(a: &Assignment) -> Vec<usize> {
    a.values().map(BTreeSet::len).collect()
}

#[test]
fn roundrobin_and_sticky_are_balanced_range_per_topic() {
    let mut rng = Rng(42);
    for case in 0..200 {
        let m = 1 + rng.below(8) as usize;
        let members: Vec<String> = (0..m).map(|i| format!("m{i}")).collect();
        let topics = ["a", "b", "c"];
        let counts: PartitionCounts = topics
            .iter()
            .map(|t| (t.to_string(), 1 + rng.below(12) as u32))
            .collect();
        let subs = identical(&members, &topics);
        for assignor in [&RoundRobinAssignor as &dyn Assignor, &StickyAssignor] {
            let a = assignor.assign(&subs, &counts, &Assignment::new());
            let c = counts_of(&a);
            let (lo, hi) = (c.iter().min().unwrap(), c.iter().max().unwrap());
            assert!(
                hi - lo <= 1,
                "{} case {case}: counts {c:?}",
                assignor.name()
            );
        }
        let a = RangeAssignor.assign(&subs, &counts, &Assignment::new());
        for t in topics {
            let per: Vec<usize> = a
                .values()
                .map(|s| s.iter().filter(|p| p.topic == t).count())
                .collect();
            let (lo, hi) = (per.iter().min().unwrap(), per.iter().max().unwrap());
            assert!(hi - lo <= 1, "range case {case} topic {t}: {per:?}");
        }
    }
}

/// The fewest partitions that must change owner when going from `previous` (restricted to
/// surviving members and existing partitions) to a balanced assignment of `total` partitions
/// over `members` members with identical subscriptions: the members that held most keep the
/// larger shares.
fn minimal_moves(
    previous: &Assignment,
    members: &[String],
    valid: &BTreeSet<TopicPartition>,
) -> usize {
    let total = valid.len();
    let (q, r) = (total / members.len(), total % members.len());
    let mut held: Vec<usize> = members
        .iter()
        .map(|m| {
            previous
                .get(m)
                .map_or(0, |s| s.iter().filter(|p| valid.contains(*p)).count())
        })
        .collect();
    held.sort_unstable_by(|a, b| b.cmp(a));
    held.iter()
        .enumerate()
        .map(|(i, &h)| h.saturating_sub(if i < r { q + 1 } else { q }))
        .sum()
}

#[test]
fn sticky_moves_only_what_balance_requires() {
    let mut rng = Rng(7);
    let mut members: Vec<String> = vec!["m000".into()];
    let mut next = 1;
    let mut counts: PartitionCounts = [("a".to_string(), 5), ("b".to_string(), 7)].into();
    let mut previous = Assignment::new();
    for step in 0..300 {
        match rng.below(4) {
            0 => {
                members.push(format!("m{next:03}"));
                next += 1;
            }
            1 if members.len() > 1 => {
                let i = rng.below(members.len() as u64) as usize;
                members.remove(i);
            }
            2 => {
                *counts
                    .get_mut(if rng.below(2) == 0 { "a" } else { "b" })
                    .unwrap() += 1
            }
            _ => {}
        }
        let subs = identical(&members, &["a", "b"]);
        let valid: BTreeSet<TopicPartition> = counts
            .iter()
            .flat_map(|(t, &n)| (0..n).map(move |p| TopicPartition::new(t.clone(), p)))
            .collect();
        let a = StickyAssignor.assign(&subs, &counts, &previous);
        let c = counts_of(&a);
        assert!(
            c.iter().max().unwrap() - c.iter().min().unwrap() <= 1,
            "step {step}: {c:?}"
        );
        let moved = previous
            .iter()
            .filter(|(m, _)| subs.contains_key(*m))
            .flat_map(|(m, set)| set.iter().map(move |p| (m, p)))
            .filter(|(m, p)| valid.contains(*p) && !a[*m].contains(*p))
            .count();
        let per_topic: usize = counts
            .keys()
            .map(|t| {
                let of_topic = |p: &&TopicPartition| p.topic == *t;
                let valid_t: BTreeSet<TopicPartition> =
                    valid.iter().filter(of_topic).cloned().collect();
                minimal_moves(&previous, &members, &valid_t)
            })
            .sum();
        for t in counts.keys() {
            let per: Vec<usize> = a
                .values()
                .map(|s| s.iter().filter(|p| p.topic == *t).count())
                .collect();
            let (lo, hi) = (per.iter().min().unwrap(), per.iter().max().unwrap());
            assert!(hi - lo <= 1, "step {step} topic {t}: {per:?}");
        }
        let total = minimal_moves(&previous, &members, &valid);
        // Balance is per topic and in total; the moves are exactly the more of the two lower
        // bounds (on these histories it is reachable).
        assert_eq!(moved, per_topic.max(total), "step {step}");
        previous = a;
    }
}

#[test]
fn sticky_keeps_everything_when_a_member_leaves() {
    let members: Vec<String> = (0..4).map(|i| format!("m{i}")).collect();
    let counts: PartitionCounts = [("t".to_string(), 12)].into();
    let before = StickyAssignor.assign(&identical(&members, &["t"]), &counts, &Assignment::new());
    let after = StickyAssignor.assign(&identical(&members[..3], &["t"]), &counts, &before);
    for m in &members[..3] {
        assert!(before[m].is_subset(&after[m]), "{m} lost a partition");
        assert_eq!(after[m].len(), 4);
    }
}

#[test]
fn sticky_with_different_subscriptions_gives_only_subscribed_topics() {
    let subs: Subscriptions = [
        ("a".to_string(), ["x".to_string()].into()),
        ("b".to_string(), ["x".to_string(), "y".to_string()].into()),
        ("c".to_string(), ["y".to_string()].into()),
    ]
    .into();
    let counts: PartitionCounts = [("x".to_string(), 6), ("y".to_string(), 2)].into();
    let a = StickyAssignor.assign(&subs, &counts, &Assignment::new());
    seglog::validate_assignment(&subs, &counts, &a).unwrap();
    // 8 partitions over 3 members that can all trade: balanced to 3/3/2 or similar.
    let c = counts_of(&a);
    assert!(
        c.iter().max().unwrap() - c.iter().min().unwrap() <= 1,
        "{c:?}"
    );
}

// ----- coordinator -----

#[test]
fn join_sync_leave_and_generations() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    store.create_topic("t", topic_config(4)).unwrap();
    let c = coordinator(&store);

    let a = c.join("g", member(&["t"])).unwrap();
    assert_eq!(c.describe("g").unwrap().generation, 1);
    let s = c.sync("g", &a).unwrap();
    assert_eq!(s.assigned.len(), 4);
    assert_eq!(s.generation, 1);

    let b = c.join("g", member(&["t"])).unwrap();
    assert_eq!(c.heartbeat("g", &a).unwrap(), 2, "a join is a rebalance");
    // b's share is still owned by a: b gets nothing until a releases.
    let sb = c.sync("g", &b).unwrap();
    assert!(sb.assigned.is_empty());
    assert_eq!(sb.pending.len(), 2);
    assert_single_owners(&c, "g");
    let sa = c.sync("g", &a).unwrap();
    assert_eq!(sa.to_revoke, sb.pending);
    c.release("g", &a, &sa.to_revoke).unwrap();
    let sb = c.sync("g", &b).unwrap();
    assert_eq!(sb.assigned.len(), 2);
    assert_single_owners(&c, "g");

    // Leaving releases at once; the other member takes everything on its next sync.
    c.leave("g", &b).unwrap();
    assert_eq!(c.describe("g").unwrap().generation, 3);
    let sa = c.sync("g", &a).unwrap();
    assert_eq!(sa.owned.len(), 4);
    assert!(matches!(c.leave("g", &b), Err(Error::UnknownMember { .. })));
    assert!(matches!(
        c.heartbeat("g", &b),
        Err(Error::UnknownMember { .. })
    ));
    assert!(matches!(
        c.sync("nope", &a),
        Err(Error::UnknownMember { .. })
    ));
}

#[test]
fn session_timeout_removes_a_silent_member() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    store.create_topic("t", topic_config(2)).unwrap();
    let c = coordinator(&store);
    let alive = c.join("g", member(&["t"])).unwrap();
    let silent = c
        .join(
            "g",
            member(&["t"]).with_session_timeout(Duration::from_millis(50)),
        )
        .unwrap();
    c.sync("g", &alive).unwrap();
    c.sync("g", &silent).unwrap();
    assert_single_owners(&c, "g");
    let generation = c.describe("g").unwrap().generation;

    // Deterministic expiry: a clock one second ahead passes 50 ms but not an hour.
    let removed = c.expire_members(Instant::now() + Duration::from_secs(1));
    assert_eq!(removed, vec![("g".to_string(), silent.clone())]);
    let d = c.describe("g").unwrap();
    assert!(d.generation > generation);
    assert_eq!(d.members.len(), 1);
    assert_eq!(c.sync("g", &alive).unwrap().owned.len(), 2);
    assert!(matches!(
        c.heartbeat("g", &silent),
        Err(Error::UnknownMember { .. })
    ));

    // Expiry also happens inside any call on the group, with the real clock.
    let short = c
        .join(
            "g",
            member(&["t"]).with_session_timeout(Duration::from_millis(20)),
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(60));
    c.heartbeat("g", &alive).unwrap();
    assert!(c
        .describe("g")
        .unwrap()
        .members
        .iter()
        .all(|m| m.member_id != short));
}

#[test]
fn topic_changes_rebalance_the_group() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let c = coordinator(&store);
    let a = c.join("g", member(&["later"])).unwrap();
    assert!(
        c.sync("g", &a).unwrap().owned.is_empty(),
        "topic does not exist yet"
    );
    store.create_topic("later", topic_config(2)).unwrap();
    let s = c.sync("g", &a).unwrap();
    assert_eq!(s.assigned, vec![tp("later", 0), tp("later", 1)]);
    let g1 = s.generation;
    store.add_partitions("later", 3).unwrap();
    let s = c.sync("g", &a).unwrap();
    assert!(s.generation > g1);
    assert_eq!(s.assigned, vec![tp("later", 2)]);
    store.delete_topic("later").unwrap();
    let s = c.sync("g", &a).unwrap();
    assert_eq!(
        s.to_revoke.len(),
        3,
        "a deleted topic's partitions are revoked"
    );
}

#[test]
fn join_validates_its_input() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let c = coordinator(&store);
    assert!(matches!(
        c.join("", member(&["t"])),
        Err(Error::InvalidGroupId { .. })
    ));
    assert!(matches!(
        c.join("g", member(&["bad name"])),
        Err(Error::InvalidTopicName { .. })
    ));
    assert!(matches!(
        c.join("g", member(&["t"]).with_session_timeout(Duration::ZERO)),
        Err(Error::InvalidConfig { .. })
    ));
    c.join("g", member(&["t"]).with_assignor(Arc::new(RangeAssignor)))
        .unwrap();
    assert!(matches!(
        c.join(
            "g",
            member(&["t"]).with_assignor(Arc::new(RoundRobinAssignor))
        ),
        Err(Error::InconsistentAssignor { .. })
    ));
}

/// How [`Faulty`] breaks the [`Assignor`] contract once armed.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// The first member's first partition goes to every member too.
    Twice,
    /// An entry for a member that is not in the group.
    UnknownMember,
    /// The last member's greatest partition goes to nobody.
    Unassigned,
}

/// [`RangeAssignor`] while disarmed; once armed, its result broken by `fault`.
struct Faulty {
    fault: Fault,
    armed: Arc<AtomicBool>,
}

impl Assignor for Faulty {
    fn name(&self) -> &'static str {
        "faulty"
    }

    fn assign(
        &self,
        subscriptions: &Subscriptions,
        partition_counts: &PartitionCounts,
        previous: &Assignment,
    ) -> Assignment {
        let mut a = RangeAssignor.assign(subscriptions, partition_counts, previous);
        if !self.armed.load(Ordering::SeqCst) {
            return a;
        }
        match self.fault {
            Fault::Twice => {
                let first = a.values().flatten().next().cloned().expect("a partition");
                for set in a.values_mut() {
                    set.insert(first.clone());
                }
            }
            Fault::UnknownMember => {
                a.insert("intruder".to_owned(), BTreeSet::new());
            }
            Fault::Unassigned => {
                let set = a.values_mut().rev().find(|s| !s.is_empty()).expect("a set");
                set.pop_last();
            }
        }
        a
    }
}

/// A member of `Faulty` assignors sharing `armed`.
fn faulty_member(fault: Fault, armed: &Arc<AtomicBool>) -> MemberConfig {
    member(&["t"]).with_assignor(Arc::new(Faulty {
        fault,
        armed: armed.clone(),
    }))
}

/// `result` is an [`Error::AssignorContract`] for `group`.
fn assert_contract_error(result: Result<impl std::fmt::Debug, Error>, group: &str, fault: Fault) {
    match result {
        Err(Error::AssignorContract { group: g, .. }) => assert_eq!(g, group, "{fault:?}"),
        other => panic!("{fault:?}: expected AssignorContract, got {other:?}"),
    }
}

/// `member` owns exactly `n` partitions, none to revoke, and can commit them at `generation`.
fn assert_owns_and_commits(c: &GroupCoordinator, member: &str, generation: u64, n: usize) {
    let s = c.sync("g", member).unwrap();
    assert_eq!(s.generation, generation);
    assert_eq!(s.owned.len(), n, "{s:?}");
    assert!(s.to_revoke.is_empty(), "{s:?}");
    let offsets: Vec<_> = s
        .owned
        .iter()
        .map(|p| (p.clone(), CommittedOffset::new(Offset(7))))
        .collect();
    c.commit("g", member, generation, &offsets).unwrap();
    for p in &s.owned {
        let committed = c.offset_store().fetch("g", p).unwrap().unwrap();
        assert_eq!(committed.offset, Offset(7));
    }
}

#[test]
fn a_broken_assignor_fails_the_join_and_keeps_the_group() {
    for fault in [Fault::Twice, Fault::UnknownMember, Fault::Unassigned] {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(dir.path());
        store.create_topic("t", topic_config(4)).unwrap();
        let c = coordinator(&store);
        let armed = Arc::new(AtomicBool::new(false));
        let a = c.join("g", faulty_member(fault, &armed)).unwrap();
        let b = c.join("g", faulty_member(fault, &armed)).unwrap();
        let sa = c.sync("g", &a).unwrap();
        c.release("g", &a, &sa.to_revoke).unwrap();
        let generation = c.sync("g", &b).unwrap().generation;

        // The third member's rebalance breaks the contract: refused, nothing changes.
        armed.store(true, Ordering::SeqCst);
        assert_contract_error(c.join("g", faulty_member(fault, &armed)), "g", fault);
        let d = c.describe("g").unwrap();
        assert_eq!(d.generation, generation, "{fault:?}");
        let ids: Vec<&str> = d.members.iter().map(|m| m.member_id.as_str()).collect();
        assert_eq!(ids, [a.as_str(), b.as_str()], "{fault:?}");
        assert_eq!(c.heartbeat("g", &a).unwrap(), generation, "{fault:?}");
        assert_owns_and_commits(&c, &a, generation, 2);
        assert_owns_and_commits(&c, &b, generation, 2);
        assert_single_owners(&c, "g");

        // A first member with a broken assignor creates nothing either (`Twice` needs two).
        if !matches!(fault, Fault::Twice) {
            assert_contract_error(c.join("h", faulty_member(fault, &armed)), "h", fault);
            let h = c.describe("h").unwrap();
            assert_eq!((h.generation, h.members.len()), (0, 0), "{fault:?}");
        }

        // Once the assignor behaves, the group rebalances again.
        armed.store(false, Ordering::SeqCst);
        c.join("g", faulty_member(fault, &armed)).unwrap();
        assert_eq!(c.describe("g").unwrap().generation, generation + 1);
    }
}

#[test]
fn a_broken_assignor_on_leave_and_expiry_keeps_the_assignment_until_it_recovers() {
    // `Twice` needs two members left to break anything; the other faults break with one.
    for fault in [Fault::UnknownMember, Fault::Unassigned] {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(dir.path());
        store.create_topic("t", topic_config(4)).unwrap();
        let c = coordinator(&store);
        let armed = Arc::new(AtomicBool::new(false));
        let a = c.join("g", faulty_member(fault, &armed)).unwrap();
        let b = c.join("g", faulty_member(fault, &armed)).unwrap();
        let minute = faulty_member(fault, &armed).with_session_timeout(Duration::from_secs(60));
        let short = c.join("g", minute).unwrap();
        let sa = c.sync("g", &a).unwrap();
        c.release("g", &a, &sa.to_revoke).unwrap();
        c.sync("g", &b).unwrap();
        let generation = c.sync("g", &short).unwrap().generation;
        assert_owns_and_commits(&c, &a, generation, 2);

        armed.store(true, Ordering::SeqCst);
        // The leaving member is gone, but the group keeps its generation and assignment.
        assert_contract_error(c.leave("g", &b), "g", fault);
        assert!(matches!(
            c.heartbeat("g", &b),
            Err(Error::UnknownMember { .. })
        ));
        // Expiry (a clock ten minutes ahead: past one minute, not an hour) does the same.
        let removed = c.expire_members(Instant::now() + Duration::from_secs(600));
        assert_eq!(removed, vec![("g".to_owned(), short.clone())], "{fault:?}");
        assert_eq!(c.describe("g").unwrap().generation, generation, "{fault:?}");
        assert_eq!(c.heartbeat("g", &a).unwrap(), generation, "{fault:?}");
        assert_owns_and_commits(&c, &a, generation, 2);

        // The next heartbeat after the assignor recovers rebalances; `a` takes everything.
        armed.store(false, Ordering::SeqCst);
        assert_eq!(c.heartbeat("g", &a).unwrap(), generation + 1, "{fault:?}");
        let s = c.sync("g", &a).unwrap();
        assert_eq!(s.assigned.len(), 2, "{s:?}");
        assert_owns_and_commits(&c, &a, generation + 1, 4);
    }
}

#[test]
fn commits_are_fenced_by_ownership_and_hand_over_generation() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    store.create_topic("t", topic_config(2)).unwrap();
    let c = coordinator(&store);
    let at = |o| vec![(tp("t", 0), CommittedOffset::new(Offset(o)))];

    let a = c.join("g", member(&["t"])).unwrap();
    let s = c.sync("g", &a).unwrap();
    c.commit("g", &a, s.generation, &at(5)).unwrap();

    // A rebalance alone fences nothing: a still owns t-0 and commits with the generation it
    // saw (Kafka accepts commits while the group gathers members).
    let b = c.join("g", member(&["t"])).unwrap();
    c.commit("g", &a, s.generation, &at(6)).unwrap();
    // A generation the group never had is refused.
    let ahead = c.commit("g", &a, s.generation + 5, &at(6)).unwrap_err();
    assert!(
        matches!(
            &ahead,
            Error::FencedCommit {
                not_owned: None,
                ..
            }
        ),
        "{ahead:?}"
    );
    // Only owned partitions may be committed.
    let sa = c.sync("g", &a).unwrap();
    c.release("g", &a, &sa.to_revoke).unwrap();
    let sb = c.sync("g", &b).unwrap();
    let lost = sa.to_revoke[0].clone();
    let err = c
        .commit(
            "g",
            &a,
            sa.generation,
            &[(lost.clone(), CommittedOffset::new(Offset(9)))],
        )
        .unwrap_err();
    assert!(
        matches!(&err, Error::FencedCommit { not_owned: Some(p), .. } if *p == lost),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains(&format!("partition {lost}")) && !message.contains("None"),
        "{message}"
    );
    // The new owner cannot commit with a generation from before its hand-over.
    let early = c
        .commit(
            "g",
            &b,
            s.generation,
            &[(lost.clone(), CommittedOffset::new(Offset(9)))],
        )
        .unwrap_err();
    assert!(matches!(&early, Error::FencedCommit { reason, .. } if reason.contains("stale")));
    c.commit(
        "g",
        &b,
        sb.generation,
        &[(lost.clone(), CommittedOffset::new(Offset(9)))],
    )
    .unwrap();

    // A removed member is fenced too.
    c.leave("g", &a).unwrap();
    assert!(matches!(
        c.commit("g", &a, sa.generation, &at(7)),
        Err(Error::FencedCommit { .. })
    ));
    // Nothing fenced was written.
    let store_offsets = c.offset_store();
    let kept = if lost == tp("t", 0) { 9 } else { 6 };
    assert_eq!(
        store_offsets
            .fetch("g", &tp("t", 0))
            .unwrap()
            .unwrap()
            .offset,
        Offset(kept)
    );
}

#[test]
fn consumer_commits_what_it_owns_after_a_rebalance() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    store.create_topic("t", topic_config(2)).unwrap();
    fill(&store, "t", 3);
    let c = coordinator(&store);
    let config = ConsumerConfig::default()
        .with_auto_commit(false)
        .with_auto_offset_reset(AutoOffsetReset::Earliest)
        .with_session_timeout(HOUR);
    let mut first = Consumer::new(&store, c.clone(), config.clone()).unwrap();
    first.subscribe("g", ["t"]).unwrap();
    assert_eq!(first.poll(100, Duration::ZERO).unwrap().len(), 6);
    let mut second = Consumer::new(&store, c.clone(), config).unwrap();
    second.subscribe("g", ["t"]).unwrap();
    // `first` still owns both partitions until its next poll releases one.
    first.commit().unwrap();
    first.poll(100, Duration::ZERO).unwrap();
    assert_eq!(first.assignment().len(), 1);
    first.commit().unwrap();
    for p in 0..2 {
        assert_eq!(
            first.committed(&tp("t", p)).unwrap().unwrap().offset,
            Offset(3)
        );
    }
}

/// Commits in `on_revoked`, after making another member leave the group first: the
/// worst interleaving of members that shut down together.
struct LeaveThenCommit {
    coordinator: Arc<GroupCoordinator>,
    other: Arc<Mutex<Option<String>>>,
    result: Arc<Mutex<Option<Result<(), String>>>>,
}

impl RebalanceListener for LeaveThenCommit {
    fn on_revoked(&mut self, consumer: &mut Consumer, _: &[TopicPartition]) {
        if let Some(other) = self.other.lock().unwrap().take() {
            self.coordinator.leave("g", &other).unwrap();
        }
        let result = consumer.commit().map_err(|e| e.to_string());
        *self.result.lock().unwrap() = Some(result);
    }
}

#[test]
fn members_leaving_together_keep_their_final_commits() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    store.create_topic("t", topic_config(2)).unwrap();
    fill(&store, "t", 4);
    let c = coordinator(&store);
    let config = ConsumerConfig::default()
        .with_auto_commit(false)
        .with_auto_offset_reset(AutoOffsetReset::Earliest)
        .with_session_timeout(HOUR);
    let result = Arc::new(Mutex::new(None));
    let other = Arc::new(Mutex::new(None));
    let mut a = Consumer::new(&store, c.clone(), config).unwrap();
    let listener = LeaveThenCommit {
        coordinator: c.clone(),
        other: other.clone(),
        result: result.clone(),
    };
    a.subscribe_with_listener("g", ["t"], Box::new(listener))
        .unwrap();
    assert_eq!(a.poll(100, Duration::ZERO).unwrap().len(), 8);
    // Another member joins after a's last poll and leaves during a's shutdown.
    *other.lock().unwrap() = Some(c.join("g", member(&["t"])).unwrap());
    a.unsubscribe().unwrap();
    assert!(other.lock().unwrap().is_none(), "the other member left");
    assert_eq!(*result.lock().unwrap(), Some(Ok(())));
    let offsets = c.offset_store();
    for p in 0..2 {
        assert_eq!(
            offsets.fetch("g", &tp("t", p)).unwrap().unwrap().offset,
            Offset(4)
        );
    }
}

#[test]
fn a_refused_auto_commit_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    store.create_topic("t", topic_config(1)).unwrap();
    fill(&store, "t", 2);
    let c = coordinator(&store);
    let config = ConsumerConfig::default()
        .with_auto_offset_reset(AutoOffsetReset::Earliest)
        .with_auto_commit_interval(HOUR)
        .with_session_timeout(Duration::from_secs(60));
    let mut a = Consumer::new(&store, c.clone(), config).unwrap();
    a.subscribe("g", ["t"]).unwrap();
    assert_eq!(a.poll(100, Duration::ZERO).unwrap().len(), 2);
    // The member's session runs out before it closes: its final commit is refused, and
    // `close` says so instead of losing it silently.
    c.expire_members(Instant::now() + Duration::from_secs(120));
    let err = a.close().unwrap_err();
    assert!(matches!(err, Error::FencedCommit { .. }), "{err:?}");
    assert_eq!(c.offset_store().fetch("g", &tp("t", 0)).unwrap(), None);
}

// ----- consumers in groups -----

/// Records which callbacks ran, and commits in `on_revoked` (the at-least-once habit).
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn push(&self, what: &str, partitions: &[TopicPartition]) {
        let names: Vec<String> = partitions.iter().map(ToString::to_string).collect();
        // A poisoned lock means the test already failed; don't panic again in a drop.
        if let Ok(mut log) = self.0.lock() {
            log.push(format!("{what} [{}]", names.join(", ")));
        }
    }
}

impl RebalanceListener for Log {
    fn on_revoked(&mut self, consumer: &mut Consumer, partitions: &[TopicPartition]) {
        let committed = consumer.commit();
        self.push(
            if committed.is_ok() {
                "revoked"
            } else {
                "revoked, commit failed"
            },
            partitions,
        );
    }
    fn on_assigned(&mut self, _: &mut Consumer, partitions: &[TopicPartition]) {
        self.push("assigned", partitions);
    }
    fn on_lost(&mut self, _: &mut Consumer, partitions: &[TopicPartition]) {
        self.push("lost", partitions);
    }
}

#[test]
fn listeners_see_assign_revoke_and_lost_on_poll() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    store.create_topic("t", topic_config(2)).unwrap();
    let c = coordinator(&store);
    let config = ConsumerConfig::default()
        .with_auto_commit(false)
        .with_auto_offset_reset(AutoOffsetReset::Earliest)
        .with_session_timeout(HOUR);
    let log_a = Log::default();
    let mut a = Consumer::new(&store, c.clone(), config.clone()).unwrap();
    a.subscribe_with_listener("g", ["t"], Box::new(log_a.clone()))
        .unwrap();
    assert!(
        log_a.0.lock().unwrap().is_empty(),
        "callbacks wait for poll"
    );
    a.poll(10, Duration::ZERO).unwrap();
    assert_eq!(*log_a.0.lock().unwrap(), ["assigned [t-0, t-1]"]);

    let mut b = Consumer::new(
        &store,
        c.clone(),
        config
            .clone()
            .with_session_timeout(Duration::from_millis(50)),
    )
    .unwrap();
    let log_b = Log::default();
    b.subscribe_with_listener("g", ["t"], Box::new(log_b.clone()))
        .unwrap();
    b.poll(10, Duration::ZERO).unwrap();
    assert!(b.assignment().is_empty(), "a has not released yet");
    a.poll(10, Duration::ZERO).unwrap();
    assert_eq!(log_a.0.lock().unwrap()[1], "revoked [t-1]");
    b.poll(10, Duration::ZERO).unwrap();
    assert_eq!(*log_b.0.lock().unwrap(), ["assigned [t-1]"]);

    // b goes silent past its session timeout: a takes t-1 back; b, polling again, learns it
    // lost t-1, rejoins under a new id and gets a share again after a releases.
    let old_id = b.member_id().unwrap().to_owned();
    c.expire_members(Instant::now() + Duration::from_secs(1));
    a.poll(10, Duration::ZERO).unwrap();
    assert_eq!(a.assignment().len(), 2);
    b.poll(10, Duration::ZERO).unwrap();
    assert_eq!(log_b.0.lock().unwrap()[1], "lost [t-1]");
    assert_ne!(b.member_id().unwrap(), old_id);
    a.poll(10, Duration::ZERO).unwrap();
    b.poll(10, Duration::ZERO).unwrap();
    assert_eq!(a.assignment().len() + b.assignment().len(), 2);
    assert_eq!(b.assignment().len(), 1);
    assert_single_owners(&c, "g");
}

/// A deterministic churn scenario: one thread drives several consumers of one group in turn.
/// Each processes what its poll returned and then commits synchronously; its listener also
/// commits in `on_revoked`. Members join between another member's poll and its commit (the
/// commit still succeeds: the member owns what it processed until its next poll releases
/// it), close, are dropped, time out (an explicit `expire_members` with a
/// clock past one member's 30-minute session but not the others' hour), and the topic gains
/// partitions and records mid-run. Every record must be processed exactly once by the group,
/// and after every step no partition has two owners: a new owner starts from the previous
/// owner's last commit because the previous owner releases only after `on_revoked`.
#[test]
fn every_record_once_per_group_under_churn() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    store.create_topic("t", topic_config(6)).unwrap();
    fill(&store, "t", 40);
    let c = coordinator(&store);
    let config = ConsumerConfig::default()
        .with_auto_commit(false)
        .with_auto_offset_reset(AutoOffsetReset::Earliest)
        .with_session_timeout(HOUR);
    let short_session = Duration::from_secs(30 * 60);

    let mut seen: HashSet<(u32, Offset)> = HashSet::new();
    let process =
        |seen: &mut HashSet<(u32, Offset)>, records: &[seglog::ConsumerRecord], step: usize| {
            for r in records {
                assert!(
                    seen.insert((r.partition, r.offset)),
                    "step {step}: {}-{} delivered twice",
                    r.partition,
                    r.offset
                );
            }
        };
    let join = |members: &mut Vec<Consumer>, session: Duration| {
        let mut m = Consumer::new(
            &store,
            c.clone(),
            config.clone().with_session_timeout(session),
        )
        .unwrap();
        m.subscribe_with_listener("g", ["t"], Box::new(Log::default()))
            .unwrap();
        members.push(m);
    };
    let mut members: Vec<Consumer> = Vec::new();
    join(&mut members, HOUR);
    let mut total = 6 * 40;
    let mut fenced = 0;
    let mut step = 0;
    loop {
        step += 1;
        assert!(step < 5_000, "no progress");
        // Events at the start of a step.
        match step {
            14 => members.remove(0).close().unwrap(),
            23 => {
                let removed = c.expire_members(Instant::now() + Duration::from_secs(45 * 60));
                assert_eq!(removed.len(), 1, "exactly the short-session member");
                // The removed member polls once more: it learns it lost its partitions,
                // rejoins, may take over free partitions and consume; then it is dropped.
                let mut zombie = members.remove(2);
                let records = zombie.poll(7, Duration::ZERO).unwrap();
                process(&mut seen, &records, step);
                zombie.commit().unwrap();
                drop(zombie);
            }
            31 => drop(members.remove(1)),
            _ => {}
        }
        assert_single_owners(&c, "g");
        let i = step % members.len();
        let records = members[i].poll(7, Duration::ZERO).unwrap();
        process(&mut seen, &records, step);
        // Events between processing and the commit. A member that joins polls (and commits)
        // at once, before the member that just processed commits.
        match step {
            5 | 9 | 17 | 35 | 36 | 40 => {
                join(&mut members, if step == 17 { short_session } else { HOUR });
                let newcomer = members.last_mut().unwrap();
                let records = newcomer.poll(7, Duration::ZERO).unwrap();
                process(&mut seen, &records, step);
                newcomer.commit().unwrap();
            }
            27 => {
                store.add_partitions("t", 8).unwrap();
                fill(&store, "t", 15);
                total += 8 * 15;
            }
            _ => {}
        }
        match members[i].commit() {
            Ok(()) => {}
            Err(Error::FencedCommit { .. }) => fenced += 1,
            Err(e) => panic!("step {step}: {e}"),
        }
        assert_single_owners(&c, "g");
        if seen.len() == total && step > 40 {
            break;
        }
    }
    assert_eq!(
        fenced, 0,
        "a rebalance alone fences no commit of owned partitions"
    );
    // Nothing is left: every member's poll comes back empty.
    for m in &mut members {
        assert!(m.poll(100, Duration::ZERO).unwrap().is_empty());
    }
    assert_eq!(seen.len(), total);
}

#[test]
fn groups_progress_independently() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    store.create_topic("t", topic_config(3)).unwrap();
    fill(&store, "t", 10);
    let c = coordinator(&store);
    let config = ConsumerConfig::default()
        .with_auto_commit(false)
        .with_auto_offset_reset(AutoOffsetReset::Earliest);
    let mut fast = Consumer::new(&store, c.clone(), config.clone()).unwrap();
    fast.subscribe("fast", ["t"]).unwrap();
    let mut slow_members: Vec<Consumer> = (0..2)
        .map(|_| {
            let mut m = Consumer::new(&store, c.clone(), config.clone()).unwrap();
            m.subscribe("slow", ["t"]).unwrap();
            m
        })
        .collect();

    // The fast group reads and commits everything.
    let mut fast_seen = BTreeSet::new();
    while fast_seen.len() < 30 {
        for r in fast.poll(100, Duration::from_secs(5)).unwrap() {
            assert!(fast_seen.insert((r.partition, r.offset)));
        }
        fast.commit().unwrap();
    }
    // The slow group has committed nothing and still sees every record, split between its two
    // members (a queue inside the group).
    for p in 0..3 {
        assert_eq!(
            c.offset_store()
                .fetch("fast", &tp("t", p))
                .unwrap()
                .unwrap()
                .offset,
            Offset(10)
        );
        assert_eq!(c.offset_store().fetch("slow", &tp("t", p)).unwrap(), None);
    }
    let mut slow_seen = BTreeSet::new();
    let mut per_member = [0usize; 2];
    for round in 0..200 {
        for (i, m) in slow_members.iter_mut().enumerate() {
            for r in m.poll(4, Duration::ZERO).unwrap() {
                assert!(
                    slow_seen.insert((r.partition, r.offset)),
                    "round {round}: duplicate"
                );
                per_member[i] += 1;
            }
            m.commit().unwrap();
        }
        if slow_seen.len() == 30 {
            break;
        }
    }
    assert_eq!(slow_seen, fast_seen);
    assert!(
        per_member.iter().all(|&n| n > 0),
        "both members got work: {per_member:?}"
    );
    assert_single_owners(&c, "slow");
}

#[test]
fn durable_coordinator_keeps_commits_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let config = ConsumerConfig::default()
        .with_auto_commit(false)
        .with_auto_offset_reset(AutoOffsetReset::Earliest);
    {
        let store = open_store(dir.path());
        store.create_topic("t", topic_config(1)).unwrap();
        fill(&store, "t", 10);
        let c = Arc::new(GroupCoordinator::open(&store).unwrap());
        assert!(
            GroupCoordinator::open(&store).is_err(),
            "one durable coordinator per store at a time"
        );
        let mut consumer = Consumer::new(&store, c, config.clone()).unwrap();
        consumer.subscribe("g", ["t"]).unwrap();
        assert_eq!(consumer.poll(4, Duration::ZERO).unwrap().len(), 4);
        consumer.commit().unwrap();
    }
    assert!(dir.path().join(seglog::OFFSETS_DIR).is_dir());
    let store = open_store(dir.path());
    let c = Arc::new(GroupCoordinator::open(&store).unwrap());
    let mut consumer = Consumer::new(&store, c, config).unwrap();
    consumer.subscribe("g", ["t"]).unwrap();
    assert_eq!(
        consumer.poll(100, Duration::ZERO).unwrap()[0].offset,
        Offset(4)
    );
}

/// Threads: members poll concurrently (processing takes a little while) while others join
/// and leave and a producer appends for about 300 ms. Commits after processing (and in
/// `on_revoked`) give at least once: no record is lost. (Duplicates are possible here: a
/// rebalance between a member's sync and its commit fences the commit; the deterministic test
/// above pins the exactly-once interleavings.)
#[test]
fn concurrent_members_lose_nothing() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open_store(dir.path()));
    store.create_topic("t", topic_config(4)).unwrap();
    fill(&store, "t", 100);
    let c = coordinator(&store);
    let total = 4 * 100 + 30 * 4 * 5;
    let seen: Arc<Mutex<HashSet<(u32, Offset)>>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let ms = Duration::from_millis;
    let member = |delay: Duration, lifetime: Option<Duration>| {
        let (store, c, seen, done) = (store.clone(), c.clone(), seen.clone(), done.clone());
        std::thread::spawn(move || {
            std::thread::sleep(delay);
            let config = ConsumerConfig::default()
                .with_auto_commit(false)
                .with_auto_offset_reset(AutoOffsetReset::Earliest)
                .with_session_timeout(HOUR);
            let mut m = Consumer::new(&store, c, config).unwrap();
            m.subscribe_with_listener("g", ["t"], Box::new(Log::default()))
                .unwrap();
            let start = Instant::now();
            while !done.load(Ordering::Acquire) && lifetime.is_none_or(|l| start.elapsed() < l) {
                let records = m.poll(9, ms(10)).unwrap();
                std::thread::sleep(ms(2)); // processing
                seen.lock()
                    .unwrap()
                    .extend(records.iter().map(|r| (r.partition, r.offset)));
                match m.commit() {
                    Ok(()) | Err(Error::FencedCommit { .. }) => {}
                    Err(e) => panic!("{e}"),
                }
            }
            m.close().unwrap();
        })
    };
    let threads = vec![
        member(ms(0), None),
        member(ms(0), Some(ms(150))),
        member(ms(50), None),
        member(ms(100), Some(ms(150))),
        member(ms(200), None),
    ];
    for _ in 0..30 {
        std::thread::sleep(ms(10));
        fill(&store, "t", 5);
        assert_single_owners(&c, "g");
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while seen.lock().unwrap().len() < total {
        let n = seen.lock().unwrap().len();
        assert!(Instant::now() < deadline, "records lost: {n} of {total}");
        assert_single_owners(&c, "g");
        std::thread::sleep(ms(5));
    }
    done.store(true, Ordering::Release);
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(seen.lock().unwrap().len(), total);
}

#[test]
fn a_manual_consumer_cannot_overwrite_an_active_groups_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    store.create_topic("t", topic_config(2)).unwrap();
    fill(&store, "t", 3);
    let c = coordinator(&store);
    let member = c.join("g", member(&["t"])).unwrap();
    let s = c.sync("g", &member).unwrap();
    let at = |p, o| vec![(tp("t", p), CommittedOffset::new(Offset(o)))];
    c.commit("g", &member, s.generation, &at(0, 2)).unwrap();

    let config = ConsumerConfig::default()
        .with_auto_commit(false)
        .with_group_id("g");
    let mut manual = Consumer::new(&store, c.clone(), config).unwrap();
    manual.assign(vec![tp("t", 0)]).unwrap();
    let err = manual.commit_offsets(&at(0, 0)).unwrap_err();
    assert!(
        matches!(&err, Error::GroupNotEmpty { group, members: 1 } if group == "g"),
        "{err:?}"
    );
    assert!(err.to_string().contains("1 active member"), "{err}");
    assert_eq!(
        c.offset_store()
            .fetch("g", &tp("t", 0))
            .unwrap()
            .unwrap()
            .offset,
        Offset(2)
    );
    // Once the group is empty, the standalone consumer may commit.
    c.leave("g", &member).unwrap();
    manual.commit_offsets(&at(0, 1)).unwrap();
    assert_eq!(
        c.offset_store()
            .fetch("g", &tp("t", 0))
            .unwrap()
            .unwrap()
            .offset,
        Offset(1)
    );
}

#[test]
fn commits_for_partitions_that_do_not_exist_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    store.create_topic("t", topic_config(2)).unwrap();
    let c = coordinator(&store);
    let config = ConsumerConfig::default()
        .with_auto_commit(false)
        .with_group_id("solo");
    let mut manual = Consumer::new(&store, c.clone(), config).unwrap();
    manual.assign(vec![tp("t", 0)]).unwrap();
    let one = |topic: &str, p| vec![(tp(topic, p), CommittedOffset::new(Offset(1)))];
    let err = manual.commit_offsets(&one("t", 2)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::PartitionOutOfRange {
                partition: 2,
                partition_count: 2,
                ..
            }
        ),
        "{err:?}"
    );
    let err = manual.commit_offsets(&one("nope", 0)).unwrap_err();
    assert!(matches!(err, Error::UnknownTopic { .. }), "{err:?}");
    let err = c.commit_unmanaged("solo", &one("nope", 0)).unwrap_err();
    assert!(matches!(err, Error::UnknownTopic { .. }), "{err:?}");
    assert_eq!(c.offset_store().fetch("solo", &tp("t", 2)).unwrap(), None);
    assert_eq!(
        c.offset_store().fetch("solo", &tp("nope", 0)).unwrap(),
        None
    );
    manual.commit_offsets(&one("t", 1)).unwrap();
}

#[test]
fn a_static_member_restarts_into_its_partitions_without_a_rebalance() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    store.create_topic("t", topic_config(4)).unwrap();
    fill(&store, "t", 5);
    let c = coordinator(&store);
    let config = ConsumerConfig::default()
        .with_auto_offset_reset(AutoOffsetReset::Earliest)
        .with_session_timeout(HOUR);
    let mut a = Consumer::new(
        &store,
        c.clone(),
        config.clone().with_group_instance_id("a"),
    )
    .unwrap();
    a.subscribe("g", ["t"]).unwrap();
    let log_b = Log::default();
    let mut b = Consumer::new(&store, c.clone(), config.clone()).unwrap();
    b.subscribe_with_listener("g", ["t"], Box::new(log_b.clone()))
        .unwrap();
    // Settle: a gives two partitions to b.
    for _ in 0..3 {
        a.poll(100, Duration::ZERO).unwrap();
        b.poll(100, Duration::ZERO).unwrap();
    }
    let (a_parts, b_parts) = (a.assignment(), b.assignment());
    assert_eq!((a_parts.len(), b_parts.len()), (2, 2));
    let generation = c.describe("g").unwrap().generation;
    log_b.0.lock().unwrap().clear();

    // a restarts: closing commits but does not leave; the new incarnation takes over.
    a.close().unwrap();
    assert_eq!(
        c.describe("g").unwrap().members.len(),
        2,
        "a is still a member"
    );
    fill(&store, "t", 1);
    let mut a2 = Consumer::new(&store, c.clone(), config.with_group_instance_id("a")).unwrap();
    a2.subscribe("g", ["t"]).unwrap();
    let records = a2.poll(100, Duration::ZERO).unwrap();
    assert_eq!(a2.assignment(), a_parts, "the same partitions");
    assert_eq!(records.len(), 2, "only what arrived since a's final commit");
    let d = c.describe("g").unwrap();
    assert_eq!(d.generation, generation, "no rebalance");
    assert_eq!(d.members.len(), 2);
    assert!(d
        .members
        .iter()
        .any(|m| m.group_instance_id.as_deref() == Some("a")));
    b.poll(100, Duration::ZERO).unwrap();
    assert_eq!(b.assignment(), b_parts);
    assert!(
        !log_b
            .0
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.starts_with("revoked")),
        "b saw no rebalance: {:?}",
        log_b.0.lock().unwrap()
    );
    assert_single_owners(&c, "g");
}

#[test]
fn a_consumer_processing_longer_than_its_session_stays_in_the_group() {
    // Kafka heartbeats from a background thread: a long processing step (no poll) does not
    // cost the member its partitions; only max_poll_interval bounds the time between polls.
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    store.create_topic("t", topic_config(2)).unwrap();
    let c = coordinator(&store);
    let session = Duration::from_millis(900);
    let config = ConsumerConfig::default()
        .with_session_timeout(session)
        .with_heartbeat_interval(Duration::from_millis(20));
    let mut a = Consumer::new(&store, c.clone(), config.clone()).unwrap();
    a.subscribe("g", ["t"]).unwrap();
    a.poll(10, Duration::ZERO).unwrap();
    let member = a.member_id().unwrap().to_owned();
    std::thread::sleep(session * 3); // "processing"
    assert!(
        c.expire_members(Instant::now()).is_empty(),
        "the heartbeat kept a alive"
    );
    a.poll(10, Duration::ZERO).unwrap();
    assert_eq!(a.member_id().unwrap(), member);
    assert_eq!(a.assignment().len(), 2);

    // Past max_poll_interval the heartbeat leaves the group; the next poll rejoins.
    let mut stuck = Consumer::new(
        &store,
        c.clone(),
        config.with_max_poll_interval(Duration::from_millis(100)),
    )
    .unwrap();
    stuck.subscribe("g", ["t"]).unwrap();
    stuck.poll(10, Duration::ZERO).unwrap();
    let stuck_id = stuck.member_id().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    while c
        .describe("g")
        .unwrap()
        .members
        .iter()
        .any(|m| m.member_id == stuck_id)
    {
        assert!(Instant::now() < deadline, "the stuck member never left");
        std::thread::sleep(Duration::from_millis(20));
        a.poll(10, Duration::ZERO).unwrap();
    }
    stuck.poll(10, Duration::ZERO).unwrap();
    assert_ne!(
        stuck.member_id().unwrap(),
        stuck_id,
        "rejoined under a new id"
    );
}

#[test]
fn admin_resets_an_empty_groups_offsets_and_describes_its_lag() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    store.create_topic("t", topic_config(2)).unwrap();
    fill(&store, "t", 10);
    let c = coordinator(&store);
    let parts = [tp("t", 0), tp("t", 1)];
    let member = c.join("g", member(&["t"])).unwrap();
    let s = c.sync("g", &member).unwrap();
    c.commit(
        "g",
        &member,
        s.generation,
        &[(tp("t", 0), CommittedOffset::new(Offset(4)))],
    )
    .unwrap();
    // While the group has members, an administrator may not move its offsets.
    let err = c
        .reset_offsets(&store, "g", &parts, seglog::OffsetResetTarget::Earliest)
        .unwrap_err();
    assert!(matches!(err, Error::GroupNotEmpty { .. }), "{err:?}");
    let lag = c.group_lag(&store, "g").unwrap();
    assert_eq!(lag.len(), 2);
    assert_eq!((lag[0].committed, lag[0].lag), (Some(Offset(4)), Some(6)));
    assert_eq!(lag[0].owner.as_deref(), Some(member.as_str()));
    assert_eq!((lag[1].committed, lag[1].lag), (None, None));
    assert_eq!(lag[1].high_watermark, Offset(10));

    c.leave("g", &member).unwrap();
    use seglog::OffsetResetTarget::{Earliest, Latest, Offset as To};
    let at = |target| {
        c.reset_offsets(&store, "g", &parts, target)
            .unwrap()
            .into_iter()
            .map(|(_, o)| o.get())
            .collect::<Vec<_>>()
    };
    assert_eq!(at(Latest), [10, 10]);
    assert_eq!(at(Earliest), [0, 0]);
    assert_eq!(
        at(To(Offset(99))),
        [10, 10],
        "clamped to the high watermark"
    );
    assert_eq!(at(To(Offset(3))), [3, 3]);
    let lag = c.group_lag(&store, "g").unwrap();
    assert!(lag.iter().all(|l| l.lag == Some(7) && l.owner.is_none()));
    assert!(matches!(
        c.reset_offsets(&store, "g", &[tp("t", 5)], Earliest),
        Err(Error::PartitionOutOfRange { .. })
    ));
}

#[test]
fn admin_deletes_an_empty_groups_offsets_durably() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    store.create_topic("t", topic_config(2)).unwrap();
    let c = GroupCoordinator::open(&store).unwrap();
    let one = |p, o| vec![(tp("t", p), CommittedOffset::new(Offset(o)))];
    let member = c.join("g", member(&["t"])).unwrap();
    let s = c.sync("g", &member).unwrap();
    c.commit("g", &member, s.generation, &one(0, 3)).unwrap();
    c.commit("g", &member, s.generation, &one(1, 4)).unwrap();
    c.commit_unmanaged("other", &one(0, 9)).unwrap();
    assert!(matches!(
        c.delete_group("g"),
        Err(Error::GroupNotEmpty { .. })
    ));
    assert!(matches!(
        c.delete_offsets("g", Some(&[tp("t", 0)])),
        Err(Error::GroupNotEmpty { .. })
    ));
    c.leave("g", &member).unwrap();
    c.delete_offsets("g", Some(&[tp("t", 0)])).unwrap();
    assert_eq!(c.offset_store().fetch("g", &tp("t", 0)).unwrap(), None);
    assert_eq!(
        c.offset_store()
            .fetch("g", &tp("t", 1))
            .unwrap()
            .unwrap()
            .offset,
        Offset(4)
    );
    c.delete_group("g").unwrap();
    assert!(c.offset_store().fetch_group("g").unwrap().is_empty());
    assert!(
        c.describe("g").is_none(),
        "the coordinator forgot the group"
    );
    assert_eq!(
        c.offset_store()
            .fetch("other", &tp("t", 0))
            .unwrap()
            .unwrap()
            .offset,
        Offset(9),
        "other groups keep theirs"
    );
    // Durable: a reopened offset store agrees.
    drop(c);
    let c = GroupCoordinator::open(&store).unwrap();
    assert!(c.offset_store().fetch_group("g").unwrap().is_empty());
    assert_eq!(c.offset_store().fetch_group("other").unwrap().len(), 1);
    // The memory store deletes too; a user store without `delete` says so.
    let memory = MemoryOffsetStore::new();
    memory.commit("g", &one(0, 1)).unwrap();
    memory.delete("g", None).unwrap();
    assert_eq!(memory.fetch("g", &tp("t", 0)).unwrap(), None);
    struct NoDelete;
    impl OffsetStore for NoDelete {
        fn commit(&self, _: &str, _: &[(TopicPartition, CommittedOffset)]) -> seglog::Result<()> {
            Ok(())
        }
        fn fetch(&self, _: &str, _: &TopicPartition) -> seglog::Result<Option<CommittedOffset>> {
            Ok(None)
        }
        fn fetch_group(&self, _: &str) -> seglog::Result<Vec<(TopicPartition, CommittedOffset)>> {
            Ok(Vec::new())
        }
    }
    assert!(matches!(
        NoDelete.delete("g", None),
        Err(Error::Unsupported { .. })
    ));
}

#[test]
fn a_replaced_static_member_is_fenced_instead_of_taking_the_partitions_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    store.create_topic("t", topic_config(2)).unwrap();
    let c = coordinator(&store);
    let config = ConsumerConfig::default()
        .with_session_timeout(HOUR)
        .with_group_instance_id("i");
    let mut old = Consumer::new(&store, c.clone(), config.clone()).unwrap();
    old.subscribe("g", ["t"]).unwrap();
    old.poll(10, Duration::ZERO).unwrap();
    // A second process with the same instance id: it replaces the first.
    let mut new = Consumer::new(&store, c.clone(), config).unwrap();
    new.subscribe("g", ["t"]).unwrap();
    new.poll(10, Duration::ZERO).unwrap();
    assert_eq!(new.assignment().len(), 2);
    for _ in 0..2 {
        let err = old.poll(10, Duration::ZERO).unwrap_err();
        assert!(
            matches!(&err, Error::FencedInstanceId { instance_id, .. } if instance_id == "i"),
            "{err:?}"
        );
    }
    new.poll(10, Duration::ZERO).unwrap();
    assert_eq!(
        new.assignment().len(),
        2,
        "the newer incarnation keeps its partitions"
    );
    assert_eq!(c.describe("g").unwrap().members.len(), 1);
}

/// The measurement of issue 12: 30 members consume everything, then all close at once with
/// auto-commit. Before the fix some final commits were fenced and silently dropped (5 to 7
/// of 30); every partition's committed offset must now be its end.
#[test]
fn thirty_members_closing_together_commit_everything() {
    const MEMBERS: usize = 30;
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    store
        .create_topic("t", topic_config(MEMBERS as u32))
        .unwrap();
    fill(&store, "t", 10);
    let c = coordinator(&store);
    let seen = Arc::new(Mutex::new(HashSet::new()));
    let joined = Arc::new(std::sync::Barrier::new(MEMBERS));
    let done = Arc::new(std::sync::Barrier::new(MEMBERS));
    let threads: Vec<_> = (0..MEMBERS)
        .map(|_| {
            let (store_c, seen, joined, done) =
                (c.clone(), seen.clone(), joined.clone(), done.clone());
            let mut consumer = Consumer::new(
                &store,
                store_c,
                ConsumerConfig::default()
                    .with_auto_offset_reset(AutoOffsetReset::Earliest)
                    .with_auto_commit_interval(HOUR)
                    .with_session_timeout(HOUR),
            )
            .unwrap();
            std::thread::spawn(move || {
                consumer.subscribe("g", ["t"]).unwrap();
                joined.wait();
                let deadline = Instant::now() + Duration::from_secs(60);
                while seen.lock().unwrap().len() < MEMBERS * 10 {
                    assert!(Instant::now() < deadline, "not everything was consumed");
                    let records = consumer.poll(100, Duration::from_millis(5)).unwrap();
                    let mut seen = seen.lock().unwrap();
                    seen.extend(records.iter().map(|r| (r.partition, r.offset)));
                }
                done.wait();
                consumer.close()
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap().unwrap();
    }
    for p in 0..MEMBERS as u32 {
        let committed = c.offset_store().fetch("g", &tp("t", p)).unwrap();
        assert_eq!(
            committed.map(|c| c.offset),
            Some(Offset(10)),
            "partition {p}"
        );
    }
}
