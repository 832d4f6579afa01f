//! The [`Assignor`] conformance suite.
//!
//! [`assignor_conformance`] runs an assignor over fixed edge cases and a seeded random series
//! of groups (members joining and leaving, subscriptions differing, topics appearing and
//! growing, the previous assignment fed back in, and deliberately odd `previous` hints) and
//! checks every result against the contract with [`validate_assignment`], and determinism by
//! calling twice.
//!
//! ```
//! # fn main() {
//! seglog::testing::assignor_conformance(&seglog::StickyAssignor);
//! # }
//! ```

use std::collections::{BTreeMap, BTreeSet};

use crate::group::assignor::{
    validate_assignment, Assignment, Assignor, PartitionCounts, Subscriptions,
};
use crate::offset::TopicPartition;

/// Run every check of the [`Assignor`] contract on `assignor`. Panics, naming the case, on
/// the first violation.
pub fn assignor_conformance<A: Assignor + ?Sized>(assignor: &A) {
    assert!(!assignor.name().is_empty(), "name: must not be empty");
    for (case, subs, counts, previous) in edge_cases() {
        check(assignor, case, &subs, &counts, &previous);
    }
    random_groups(assignor);
}

fn check(
    assignor: &(impl Assignor + ?Sized),
    case: &str,
    subs: &Subscriptions,
    counts: &PartitionCounts,
    previous: &Assignment,
) -> Assignment {
    let first = assignor.assign(subs, counts, previous);
    if let Err(violation) = validate_assignment(subs, counts, &first) {
        panic!("{case}: invalid assignment: {violation}\nsubscriptions {subs:?}\ncounts {counts:?}\nprevious {previous:?}\nresult {first:?}");
    }
    let second = assignor.assign(subs, counts, previous);
    assert_eq!(first, second, "{case}: not deterministic");
    first
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(std::string::ToString::to_string).collect()
}

fn tp(topic: &str, partition: u32) -> TopicPartition {
    TopicPartition::new(topic, partition)
}

type Case = (&'static str, Subscriptions, PartitionCounts, Assignment);

fn edge_cases() -> Vec<Case> {
    let counts: PartitionCounts = [("a".to_string(), 3), ("b".to_string(), 1)].into();
    let two: Subscriptions = [
        ("m1".to_string(), set(&["a", "b"])),
        ("m2".to_string(), set(&["a"])),
    ]
    .into();
    let mut odd_previous: Assignment = BTreeMap::new();
    // A gone member, a partition past the count, an unknown topic, an unsubscribed topic
    // and a partition listed twice.
    odd_previous.insert("gone".into(), [tp("a", 0)].into());
    odd_previous.insert("m1".into(), [tp("a", 1), tp("a", 7), tp("zz", 0)].into());
    odd_previous.insert("m2".into(), [tp("a", 1), tp("b", 0)].into());
    vec![
        (
            "no members",
            Subscriptions::new(),
            counts.clone(),
            Assignment::new(),
        ),
        (
            "member without topics",
            [("m1".to_string(), set(&[]))].into(),
            counts.clone(),
            Assignment::new(),
        ),
        (
            "subscribed topic missing from counts",
            [("m1".to_string(), set(&["a", "missing"]))].into(),
            counts.clone(),
            Assignment::new(),
        ),
        (
            "counts list an unsubscribed topic",
            [("m1".to_string(), set(&["b"]))].into(),
            counts.clone(),
            Assignment::new(),
        ),
        (
            "different subscriptions",
            two.clone(),
            counts.clone(),
            Assignment::new(),
        ),
        ("odd previous hint", two, counts.clone(), odd_previous),
        (
            "more members than partitions",
            (0..10).map(|i| (format!("m{i:02}"), set(&["b"]))).collect(),
            counts,
            Assignment::new(),
        ),
        (
            "one big topic",
            [
                ("m1".to_string(), set(&["big"])),
                ("m2".to_string(), set(&["big"])),
            ]
            .into(),
            [("big".to_string(), 1000)].into(),
            Assignment::new(),
        ),
    ]
}

/// A small deterministic generator (xorshift64*), so the suite needs no dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

/// 300 rebalances of evolving groups, each fed the previous result as its hint.
fn random_groups(assignor: &(impl Assignor + ?Sized)) {
    let topics = ["t0", "t1", "t2", "t3"];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut subs = Subscriptions::new();
    let mut counts = PartitionCounts::new();
    let mut previous = Assignment::new();
    let mut next_member = 0;
    for step in 0..300 {
        match rng.below(5) {
            0 | 1 => {
                let mine: BTreeSet<String> = topics
                    .iter()
                    .filter(|_| rng.below(2) == 0)
                    .map(std::string::ToString::to_string)
                    .collect();
                subs.insert(format!("member-{next_member:04}"), mine);
                next_member += 1;
            }
            2 if !subs.is_empty() => {
                let k = rng.below(subs.len() as u64) as usize;
                let gone = subs.keys().nth(k).cloned().expect("in range");
                subs.remove(&gone);
            }
            3 => {
                let t = topics[rng.below(topics.len() as u64) as usize];
                let grow = 1 + rng.below(4) as u32;
                *counts.entry(t.to_string()).or_insert(0) += grow;
            }
            _ => {
                let t = topics[rng.below(topics.len() as u64) as usize];
                counts.remove(t);
            }
        }
        previous = check(
            assignor,
            &format!("random step {step}"),
            &subs,
            &counts,
            &previous,
        );
    }
}
