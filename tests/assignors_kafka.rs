//! The assignors against Kafka's own test cases. Range and round-robin: `RangeAssignorTest` and
//! `RoundRobinAssignorTest` inputs with Kafka's exact expected assignments. Sticky:
//! `AbstractStickyAssignorTest` inputs with Kafka's expected outputs where the test states them
//! (per-topic shares, exact moves), else Kafka's `verifyValidityAndBalance` rule (no member
//! could take a partition from one with two or more partitions more) and its no-cycle
//! stickiness check.

use std::collections::BTreeSet;

use seglog::{
    validate_assignment, Assignment, Assignor, PartitionCounts, RangeAssignor, RoundRobinAssignor,
    StickyAssignor, Subscriptions, TopicPartition,
};

fn subs(members: &[(&str, &[&str])]) -> Subscriptions {
    members
        .iter()
        .map(|(m, topics)| {
            let topics = topics.iter().map(|t| (*t).to_owned()).collect();
            ((*m).to_owned(), topics)
        })
        .collect()
}

fn counts(topics: &[(&str, u32)]) -> PartitionCounts {
    topics.iter().map(|(t, n)| ((*t).to_owned(), *n)).collect()
}

fn per_topic(a: &Assignment, member: &str, topic: &str) -> usize {
    a[member].iter().filter(|tp| tp.topic == topic).count()
}

/// Kafka's `verifyValidityAndBalance`: valid, and whenever two members' counts differ by more
/// than one, the larger holds nothing the smaller subscribes to.
fn verify_validity_and_balance(s: &Subscriptions, c: &PartitionCounts, a: &Assignment) {
    validate_assignment(s, c, a).unwrap();
    for (m1, p1) in a {
        for (m2, p2) in a {
            if p1.len() > p2.len() + 1 {
                let takeable = p1.iter().find(|tp| s[m2].contains(&tp.topic));
                assert!(
                    takeable.is_none(),
                    "{m1} has {} and {m2} has {}, yet {m2} could take {:?}",
                    p1.len(),
                    p2.len(),
                    takeable
                );
            }
        }
    }
}

fn fully_balanced(a: &Assignment) -> bool {
    let sizes: Vec<usize> = a.values().map(BTreeSet::len).collect();
    sizes.iter().max().unwrap_or(&0) - sizes.iter().min().unwrap_or(&0) <= 1
}

/// Partitions that changed owner between `before` and `after`, among members in both.
fn moved(before: &Assignment, after: &Assignment) -> usize {
    before
        .iter()
        .filter_map(|(m, set)| after.get(m).map(|now| set.difference(now).count()))
        .sum()
}

#[test]
fn topic_balance_after_reassignment() {
    let all: &[&str] = &["topic1", "topic2"];
    let c = counts(&[("topic1", 12), ("topic2", 12)]);
    let s = subs(&[("consumer1", all)]);
    let a = StickyAssignor.assign(&s, &c, &Assignment::new());
    verify_validity_and_balance(&s, &c, &a);
    assert_eq!(per_topic(&a, "consumer1", "topic1"), 12);
    assert_eq!(per_topic(&a, "consumer1", "topic2"), 12);

    let s = subs(&[("consumer1", all), ("consumer2", all)]);
    let b = StickyAssignor.assign(&s, &c, &a);
    verify_validity_and_balance(&s, &c, &b);
    for m in ["consumer1", "consumer2"] {
        assert_eq!(per_topic(&b, m, "topic1"), 6, "{m}: {b:?}");
        assert_eq!(per_topic(&b, m, "topic2"), 6, "{m}: {b:?}");
    }
    assert!(fully_balanced(&b));
    assert_eq!(moved(&a, &b), 12, "only consumer2's share moves");

    let s = subs(&[
        ("consumer1", all),
        ("consumer2", all),
        ("consumer3", all),
        ("consumer4", all),
    ]);
    let d = StickyAssignor.assign(&s, &c, &b);
    verify_validity_and_balance(&s, &c, &d);
    for m in s.keys() {
        assert_eq!(per_topic(&d, m, "topic1"), 3);
        assert_eq!(per_topic(&d, m, "topic2"), 3);
    }
    assert_eq!(moved(&b, &d), 12);

    let s = subs(&[("consumer3", all), ("consumer4", all)]);
    let e = StickyAssignor.assign(&s, &c, &d);
    verify_validity_and_balance(&s, &c, &e);
    for m in s.keys() {
        assert_eq!(per_topic(&e, m, "topic1"), 6);
        assert_eq!(per_topic(&e, m, "topic2"), 6);
        assert!(d[m].is_subset(&e[m]), "{m} kept what it had");
    }
}

#[test]
fn add_remove_two_consumers_two_topics() {
    // testAddRemoveTwoConsumersTwoTopics: topic1 has 3, topic2 4 partitions.
    let all: &[&str] = &["topic1", "topic2"];
    let c = counts(&[("topic1", 3), ("topic2", 4)]);
    let s = subs(&[("consumer1", all), ("consumer2", all)]);
    let a = StickyAssignor.assign(&s, &c, &Assignment::new());
    verify_validity_and_balance(&s, &c, &a);
    assert!(fully_balanced(&a));
    let s4 = subs(&[
        ("consumer1", all),
        ("consumer2", all),
        ("consumer3", all),
        ("consumer4", all),
    ]);
    let b = StickyAssignor.assign(&s4, &c, &a);
    verify_validity_and_balance(&s4, &c, &b);
    assert!(fully_balanced(&b));
    // Kafka moves 3 partitions to the two newcomers (7 over 4 members: 2, 2, 2, 1).
    assert_eq!(moved(&a, &b), 3);
    let s2 = subs(&[("consumer3", all), ("consumer4", all)]);
    let d = StickyAssignor.assign(&s2, &c, &b);
    verify_validity_and_balance(&s2, &c, &d);
    assert!(fully_balanced(&d));
    assert!(b["consumer3"].is_subset(&d["consumer3"]));
    assert!(b["consumer4"].is_subset(&d["consumer4"]));
}

#[test]
fn poor_round_robin_assignment_scenario() {
    // testPoorRoundRobinAssignmentScenario: topicN has (N % 2) + 1 partitions.
    let c: PartitionCounts = (1..=5)
        .map(|i| (format!("topic{i}"), (i % 2) + 1))
        .collect();
    let five: &[&str] = &["topic1", "topic2", "topic3", "topic4", "topic5"];
    let odd: &[&str] = &["topic1", "topic3", "topic5"];
    let s = subs(&[
        ("consumer1", five),
        ("consumer2", odd),
        ("consumer3", odd),
        ("consumer4", five),
    ]);
    let a = StickyAssignor.assign(&s, &c, &Assignment::new());
    verify_validity_and_balance(&s, &c, &a);
    // Kafka's documented sticky result gives every consumer two partitions.
    assert!(a.values().all(|p| p.len() == 2), "{a:?}");
}

fn name(prefix: &str, i: usize, max: usize) -> String {
    // Kafka's getTopicName / getConsumerName: zero-padded to the width of `max`.
    let width = max.to_string().len();
    format!("{prefix}{i:0width$}")
}

#[test]
fn reassignment_after_one_consumer_leaves() {
    // testReassignmentAfterOneConsumerLeaves: topic i has i partitions; consumer i subscribes
    // to topics 1..=i.
    let c: PartitionCounts = (1..20).map(|i| (name("topic", i, 20), i as u32)).collect();
    let s: Subscriptions = (1..20)
        .map(|i| {
            let topics = (1..=i).map(|j| name("topic", j, 20)).collect();
            (name("consumer", i, 20), topics)
        })
        .collect();
    let a = StickyAssignor.assign(&s, &c, &Assignment::new());
    verify_validity_and_balance(&s, &c, &a);
    let mut s2 = s.clone();
    s2.remove(&name("consumer", 10, 20));
    let b = StickyAssignor.assign(&s2, &c, &a);
    verify_validity_and_balance(&s2, &c, &b);
    assert_sticky(&a, &b);
}

/// Kafka's `isSticky` (`PartitionMovements`): among the partitions that moved between
/// members present before and after, no topic's moves form a cycle (`A -> B -> ... -> A`):
/// such a cycle could have been left out, so it is a needless move.
fn assert_sticky(before: &Assignment, after: &Assignment) {
    let mut owner_after = std::collections::BTreeMap::new();
    for (m, set) in after {
        for tp in set {
            owner_after.insert(tp.clone(), m.clone());
        }
    }
    let mut edges: BTreeSet<(String, String, String)> = BTreeSet::new();
    for (m, set) in before.iter().filter(|(m, _)| after.contains_key(*m)) {
        for tp in set {
            if let Some(to) = owner_after.get(tp).filter(|to| *to != m) {
                edges.insert((tp.topic.clone(), m.clone(), to.clone()));
            }
        }
    }
    // A cycle exists iff some edge's target reaches its source within the same topic.
    for (topic, from, to) in &edges {
        let mut seen = BTreeSet::new();
        let mut stack = vec![to.clone()];
        while let Some(x) = stack.pop() {
            assert!(&x != from, "moves of {topic} cycle through {from}");
            if seen.insert(x.clone()) {
                for (t, a, b) in &edges {
                    if t == topic && *a == x {
                        stack.push(b.clone());
                    }
                }
            }
        }
    }
}

#[test]
fn reassignment_after_one_consumer_added() {
    let c = counts(&[("topic", 20)]);
    let mut s: Subscriptions = (1..10)
        .map(|i| (name("consumer", i, 10), ["topic".to_owned()].into()))
        .collect();
    let a = StickyAssignor.assign(&s, &c, &Assignment::new());
    verify_validity_and_balance(&s, &c, &a);
    s.insert(name("consumer", 10, 10), ["topic".to_owned()].into());
    let b = StickyAssignor.assign(&s, &c, &a);
    verify_validity_and_balance(&s, &c, &b);
    // 20 over 10: the two members holding 3 give one each.
    assert_eq!(moved(&a, &b), 2);
}

#[test]
fn same_subscriptions() {
    let c: PartitionCounts = (1..15).map(|i| (name("topic", i, 15), i as u32)).collect();
    let topics: BTreeSet<String> = c.keys().cloned().collect();
    let mut s: Subscriptions = (1..9)
        .map(|i| (name("consumer", i, 9), topics.clone()))
        .collect();
    let a = StickyAssignor.assign(&s, &c, &Assignment::new());
    verify_validity_and_balance(&s, &c, &a);
    s.remove(&name("consumer", 5, 9));
    let b = StickyAssignor.assign(&s, &c, &a);
    verify_validity_and_balance(&s, &c, &b);
    assert_sticky(&a, &b);
    for m in s.keys() {
        for t in c.keys() {
            let n = per_topic(&b, m, t);
            let share = c[t] as usize / s.len();
            assert!(n == share || n == share + 1, "{m} {t}: {n}");
        }
    }
}

#[test]
fn an_unchanged_group_keeps_its_assignment() {
    let c: PartitionCounts = (0..7).map(|i| (format!("t{i}"), 3 + i)).collect();
    let topics: BTreeSet<String> = c.keys().cloned().collect();
    let s: Subscriptions = (0..5).map(|i| (format!("m{i}"), topics.clone())).collect();
    let a = StickyAssignor.assign(&s, &c, &Assignment::new());
    let b = StickyAssignor.assign(&s, &c, &a);
    assert_eq!(a, b);
}

#[test]
fn large_uniform_group_is_valid_and_balanced() {
    // Kafka's large-scale case, scaled down for a debug-build test (the full 1M x 2,000 is
    // `examples/sticky_scale.rs`).
    let c: PartitionCounts = (0..20).map(|i| (name("topic", i, 20), 500)).collect();
    let topics: BTreeSet<String> = c.keys().cloned().collect();
    let s: Subscriptions = (0..200)
        .map(|i| (name("consumer", i, 200), topics.clone()))
        .collect();
    let a = StickyAssignor.assign(&s, &c, &Assignment::new());
    verify_validity_and_balance(&s, &c, &a);
    assert!(a.values().all(|p| p.len() == 50));
    let b = StickyAssignor.assign(&s, &c, &a);
    assert_eq!(a, b);
    let _ = TopicPartition::new("x", 0);
}

/// `(inputs, expected)` of one Kafka case: member -> expected partitions as "topic-p".
fn check_case(
    assignor: &dyn Assignor,
    members: &[(&str, &[&str])],
    topics: &[(&str, u32)],
    expected: &[(&str, &[&str])],
) {
    let s = subs(members);
    let c = counts(topics);
    let a = assignor.assign(&s, &c, &Assignment::new());
    validate_assignment(&s, &c, &a).unwrap();
    for (member, want) in expected {
        let got: BTreeSet<String> = a[*member].iter().map(ToString::to_string).collect();
        let want: BTreeSet<String> = want.iter().map(|w| (*w).to_owned()).collect();
        assert_eq!(got, want, "{} {member}", assignor.name());
    }
}

#[test]
fn range_assignor_matches_kafkas_cases() {
    let r = &RangeAssignor;
    // testOneConsumerNoTopic, testOneConsumerNonexistentTopic
    check_case(r, &[("c", &[])], &[], &[("c", &[])]);
    check_case(r, &[("c", &["topic"])], &[], &[("c", &[])]);
    // testOneConsumerOneTopic, testOnlyAssignsPartitionsFromSubscribedTopics
    let all3: &[&str] = &["topic-0", "topic-1", "topic-2"];
    check_case(r, &[("c", &["topic"])], &[("topic", 3)], &[("c", all3)]);
    check_case(
        r,
        &[("c", &["topic"])],
        &[("topic", 3), ("other", 3)],
        &[("c", all3)],
    );
    // testOneConsumerMultipleTopics
    let both: &[&str] = &["topic1", "topic2"];
    check_case(
        r,
        &[("c", both)],
        &[("topic1", 1), ("topic2", 2)],
        &[("c", &["topic1-0", "topic2-0", "topic2-1"])],
    );
    // testTwoConsumersOneTopicOnePartition, testTwoConsumersOneTopicTwoPartitions
    let one: &[&str] = &["topic"];
    check_case(
        r,
        &[("c1", one), ("c2", one)],
        &[("topic", 1)],
        &[("c1", &["topic-0"]), ("c2", &[])],
    );
    check_case(
        r,
        &[("c1", one), ("c2", one)],
        &[("topic", 2)],
        &[("c1", &["topic-0"]), ("c2", &["topic-1"])],
    );
    // testMultipleConsumersMixedTopics
    check_case(
        r,
        &[("c1", &["topic1"]), ("c2", both), ("c3", &["topic1"])],
        &[("topic1", 3), ("topic2", 2)],
        &[
            ("c1", &["topic1-0"]),
            ("c2", &["topic1-1", "topic2-0", "topic2-1"]),
            ("c3", &["topic1-2"]),
        ],
    );
    // testTwoConsumersTwoTopicsSixPartitions
    check_case(
        r,
        &[("c1", both), ("c2", both)],
        &[("topic1", 3), ("topic2", 3)],
        &[
            ("c1", &["topic1-0", "topic1-1", "topic2-0", "topic2-1"]),
            ("c2", &["topic1-2", "topic2-2"]),
        ],
    );
}

#[test]
fn round_robin_assignor_matches_kafkas_cases() {
    let rr = &RoundRobinAssignor;
    let one: &[&str] = &["topic"];
    let both: &[&str] = &["topic1", "topic2"];
    check_case(rr, &[("c", &[])], &[], &[("c", &[])]);
    check_case(
        rr,
        &[("c", one)],
        &[("topic", 3), ("other", 3)],
        &[("c", &["topic-0", "topic-1", "topic-2"])],
    );
    check_case(
        rr,
        &[("c1", one), ("c2", one)],
        &[("topic", 1)],
        &[("c1", &["topic-0"]), ("c2", &[])],
    );
    check_case(
        rr,
        &[("c1", one), ("c2", one)],
        &[("topic", 2)],
        &[("c1", &["topic-0"]), ("c2", &["topic-1"])],
    );
    // testMultipleConsumersMixedTopics
    check_case(
        rr,
        &[("c1", &["topic1"]), ("c2", both), ("c3", &["topic1"])],
        &[("topic1", 3), ("topic2", 2)],
        &[
            ("c1", &["topic1-0"]),
            ("c2", &["topic1-1", "topic2-0", "topic2-1"]),
            ("c3", &["topic1-2"]),
        ],
    );
    // testTwoConsumersTwoTopicsSixPartitions
    check_case(
        rr,
        &[("c1", both), ("c2", both)],
        &[("topic1", 3), ("topic2", 3)],
        &[
            ("c1", &["topic1-0", "topic1-2", "topic2-1"]),
            ("c2", &["topic1-1", "topic2-0", "topic2-2"]),
        ],
    );
}
