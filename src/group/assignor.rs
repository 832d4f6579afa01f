//! Deciding which member of a consumer group owns which partition: the [`Assignor`] trait and
//! the three shipped strategies, [`RangeAssignor`], [`RoundRobinAssignor`] and
//! [`StickyAssignor`](crate::StickyAssignor) (in `sticky`).

use std::collections::{BTreeMap, BTreeSet};

use crate::error::Error;
use crate::offset::TopicPartition;

/// The members of a group and what each subscribes to: member id → topic names.
pub type Subscriptions = BTreeMap<String, BTreeSet<String>>;

/// Topic name → partition count, for the topics the group's members subscribe to that exist.
pub type PartitionCounts = BTreeMap<String, u32>;

/// Who owns what: member id → the partitions assigned to it.
pub type Assignment = BTreeMap<String, BTreeSet<TopicPartition>>;

/// Decides which member of a consumer group owns each partition of the topics the group
/// subscribes to.
///
/// The [`GroupCoordinator`](crate::GroupCoordinator) calls it on every rebalance: when a
/// member joins, leaves or times out, and when a subscribed topic appears, disappears or
/// gains partitions. It is a seam so applications can place partitions by their own rules
/// (rack, capacity); the crate ships [`RangeAssignor`] (Kafka's default), [`RoundRobinAssignor`]
/// and [`StickyAssignor`](crate::StickyAssignor) (the coordinator's default), and
/// `testing::assignor_conformance` (feature `testing`) checks an implementation against this
/// contract.
///
/// # Contract
///
/// The caller guarantees, for `assign(subscriptions, partition_counts, previous)`:
/// - `subscriptions` lists every member of the group once (it may be empty; a member's topic
///   set may be empty).
/// - `partition_counts` maps topics to their partition counts, each at least 1. It lists at
///   least every subscribed topic that exists; a subscribed topic missing from it has no
///   partitions (not created yet, or deleted). It **may** list topics nobody subscribes to.
/// - `previous` is the assignment this group had before (empty on the first rebalance). It
///   **may** name members that are gone, partitions that no longer exist, topics a member no
///   longer subscribes to, and even a partition under two members; it is a hint, not a
///   valid assignment.
///
/// The result:
/// - **must** have exactly one entry per member of `subscriptions` (an empty set for a member
///   that gets nothing) and no other entry;
/// - **must** contain every partition `(t, p)` with `t` in `partition_counts`, `t` subscribed
///   by at least one member and `p` in `[0, partition_counts[t])`, in exactly one member's set,
///   and that member **must** subscribe to `t`;
/// - **must not** contain any other partition (of an unsubscribed or unknown topic, or with
///   `p >= partition_counts[t]`);
/// - **must** be deterministic: a pure function of the three arguments, never of time,
///   randomness, hash-map iteration order or earlier calls;
/// - **may** use `previous` to keep partitions where they were (stickiness);
/// - **may** be unbalanced; each implementation documents how balanced it is.
///
/// [`validate_assignment`] checks the first three points. The coordinator runs it on every
/// result before it changes anything (an invalid assignment would let two members own one
/// partition), and reports a violation as [`Error::AssignorContract`]: the rebalance is not
/// applied, and the group keeps its previous generation and assignment, so its members go on
/// polling and committing what they own. Who sees the error depends on what caused the
/// rebalance:
/// - a [`join`](crate::GroupCoordinator::join): it returns the error and the member is not
///   added;
/// - a [`leave`](crate::GroupCoordinator::leave): it returns the error, but the member has
///   left (its partitions are released, and stay unassigned until a rebalance succeeds);
/// - a session timeout or a change of a subscribed topic: nobody (no caller caused it); the
///   group stays on its previous assignment.
///
/// While the assignment is out of date (its members or partition counts are not the group's),
/// every heartbeat and sync tries the rebalance again.
///
/// `assign` runs under the group's lock, on the thread of whichever member call caused the
/// rebalance: it **should** be fast and **must not** call back into the coordinator.
pub trait Assignor: Send + Sync {
    /// The strategy's name (`"range"`, `"roundrobin"`, `"sticky"`). Members of one group must
    /// use assignors of the same name (Kafka's `partition.assignment.strategy` agreement).
    fn name(&self) -> &str;

    /// Compute the group's new assignment. See the trait's contract.
    fn assign(
        &self,
        subscriptions: &Subscriptions,
        partition_counts: &PartitionCounts,
        previous: &Assignment,
    ) -> Assignment;
}

/// Check `assignment` against the [`Assignor`] contract's output rules for `subscriptions` and
/// `partition_counts`: one entry per member and no other, every subscribed partition owned by
/// exactly one member that subscribes to its topic, no other partition. Returns a description
/// of the first violation found.
pub fn validate_assignment(
    subscriptions: &Subscriptions,
    partition_counts: &PartitionCounts,
    assignment: &Assignment,
) -> Result<(), String> {
    check_assignment(subscriptions, partition_counts, assignment).map_err(|v| v.to_string())
}

/// The first way an assignment breaks the [`Assignor`] contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Violation {
    /// Which rule it breaks.
    pub(crate) reason: &'static str,
    /// The member whose entry breaks it, if one does.
    pub(crate) member: Option<String>,
    /// The partition concerned, if one is.
    pub(crate) topic_partition: Option<TopicPartition>,
}

impl Violation {
    fn new(reason: &'static str, member: Option<&str>, tp: Option<&TopicPartition>) -> Self {
        Violation {
            reason,
            member: member.map(str::to_owned),
            topic_partition: tp.cloned(),
        }
    }

    /// The error the coordinator reports for this violation by the assignor of `group`.
    pub(crate) fn into_error(self, group: &str) -> Error {
        Error::AssignorContract {
            group: group.to_owned(),
            reason: self.reason,
            member: self.member,
            topic_partition: self.topic_partition,
        }
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.reason)?;
        if let Some(member) = &self.member {
            write!(f, ": member {member:?}")?;
        }
        if let Some(tp) = &self.topic_partition {
            write!(f, ": partition {tp}")?;
        }
        Ok(())
    }
}

/// [`validate_assignment`] with the violation as a value.
pub(crate) fn check_assignment(
    subscriptions: &Subscriptions,
    partition_counts: &PartitionCounts,
    assignment: &Assignment,
) -> Result<(), Violation> {
    if let Some(member) = subscriptions.keys().find(|m| !assignment.contains_key(*m)) {
        return Err(Violation::new("a member has no entry", Some(member), None));
    }
    let mut owner: BTreeSet<&TopicPartition> = BTreeSet::new();
    for (member, partitions) in assignment {
        let Some(topics) = subscriptions.get(member) else {
            return Err(Violation::new(
                "an entry names a non-member",
                Some(member),
                None,
            ));
        };
        for tp in partitions {
            let violation = |reason| Violation::new(reason, Some(member), Some(tp));
            if !topics.contains(&tp.topic) {
                return Err(violation(
                    "partition given to a member that does not subscribe to its topic",
                ));
            }
            match partition_counts.get(&tp.topic) {
                Some(&count) if tp.partition < count => {}
                _ => return Err(violation("partition does not exist")),
            }
            if !owner.insert(tp) {
                return Err(violation("partition given to two members"));
            }
        }
    }
    match subscribed_partitions(subscriptions, partition_counts)
        .into_iter()
        .find(|tp| !owner.contains(tp))
    {
        Some(tp) => Err(Violation::new("partition not assigned", None, Some(&tp))),
        None => Ok(()),
    }
}

/// Every partition of every topic that some member subscribes to and that exists, sorted.
pub(crate) fn subscribed_partitions(
    subscriptions: &Subscriptions,
    partition_counts: &PartitionCounts,
) -> BTreeSet<TopicPartition> {
    partition_counts
        .iter()
        .filter(|(topic, _)| subscriptions.values().any(|t| t.contains(*topic)))
        .flat_map(|(topic, &count)| (0..count).map(|p| TopicPartition::new(topic.clone(), p)))
        .collect()
}

/// An entry with an empty set for every member.
pub(crate) fn empty_assignment(subscriptions: &Subscriptions) -> Assignment {
    subscriptions
        .keys()
        .map(|m| (m.clone(), BTreeSet::new()))
        .collect()
}

/// Kafka's `RangeAssignor`: topic by topic, the members subscribed to the topic, sorted by
/// id, get consecutive ranges of its partitions; the first `partitions % members` members get
/// one extra.
///
/// Balance: per topic, members' shares differ by at most one. Across topics the extras all go
/// to the first members, so a member can end up with one partition more per topic than
/// another (co-partitioned topics stay aligned, which is why Kafka uses it). Ignores
/// `previous`.
#[derive(Debug, Clone, Copy, Default)]
pub struct RangeAssignor;

impl Assignor for RangeAssignor {
    fn name(&self) -> &'static str {
        "range"
    }

    fn assign(
        &self,
        subscriptions: &Subscriptions,
        partition_counts: &PartitionCounts,
        _previous: &Assignment,
    ) -> Assignment {
        let mut out = empty_assignment(subscriptions);
        for (topic, &count) in partition_counts {
            let members: Vec<&String> = subscriptions
                .iter()
                .filter(|(_, topics)| topics.contains(topic))
                .map(|(m, _)| m)
                .collect();
            if members.is_empty() {
                continue;
            }
            let n = members.len();
            let count = count as usize;
            let (share, extra) = (count / n, count % n);
            let mut next = 0usize;
            for (i, member) in members.into_iter().enumerate() {
                let take = share + usize::from(i < extra);
                let set = out.get_mut(member).expect("every member has an entry");
                for p in next..next + take {
                    let p = u32::try_from(p).expect("below a u32 partition count");
                    set.insert(TopicPartition::new(topic.clone(), p));
                }
                next += take;
            }
        }
        out
    }
}

/// Kafka's `RoundRobinAssignor`: every partition of every subscribed topic, sorted by topic
/// then partition, dealt in turn to the members sorted by id, skipping members that do not
/// subscribe to the partition's topic.
///
/// Balance: with identical subscriptions members' counts differ by at most one. With
/// different subscriptions it is as balanced as the dealing order allows, not optimal.
/// Ignores `previous`.
#[derive(Debug, Clone, Copy, Default)]
pub struct RoundRobinAssignor;

impl Assignor for RoundRobinAssignor {
    fn name(&self) -> &'static str {
        "roundrobin"
    }

    fn assign(
        &self,
        subscriptions: &Subscriptions,
        partition_counts: &PartitionCounts,
        _previous: &Assignment,
    ) -> Assignment {
        let mut out = empty_assignment(subscriptions);
        let members: Vec<(&String, &BTreeSet<String>)> = subscriptions.iter().collect();
        let mut cursor = 0usize;
        for (topic, &count) in partition_counts {
            if !members.iter().any(|(_, topics)| topics.contains(topic)) {
                continue;
            }
            for p in 0..count {
                // Terminates: some member subscribes to `topic`.
                loop {
                    let (member, topics) = members[cursor];
                    cursor = (cursor + 1) % members.len();
                    if topics.contains(topic) {
                        let set = out.get_mut(member).expect("every member has an entry");
                        set.insert(TopicPartition::new(topic.clone(), p));
                        break;
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subs(members: &[(&str, &[&str])]) -> Subscriptions {
        members
            .iter()
            .map(|(m, topics)| {
                (
                    m.to_string(),
                    topics
                        .iter()
                        .map(std::string::ToString::to_string)
                        .collect(),
                )
            })
            .collect()
    }

    fn counts(topics: &[(&str, u32)]) -> PartitionCounts {
        topics.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    fn names(a: &Assignment, member: &str) -> Vec<String> {
        a[member].iter().map(ToString::to_string).collect()
    }

    #[test]
    fn range_matches_kafka() {
        // Kafka's RangeAssignor doc example: t0, t1 with 3 partitions, C0 and C1.
        let s = subs(&[("C0", &["t0", "t1"]), ("C1", &["t0", "t1"])]);
        let c = counts(&[("t0", 3), ("t1", 3)]);
        let a = RangeAssignor.assign(&s, &c, &Assignment::new());
        assert_eq!(names(&a, "C0"), ["t0-0", "t0-1", "t1-0", "t1-1"]);
        assert_eq!(names(&a, "C1"), ["t0-2", "t1-2"]);
        validate_assignment(&s, &c, &a).unwrap();
    }

    #[test]
    fn roundrobin_matches_kafka() {
        // Kafka's RoundRobinAssignor doc example with different subscriptions.
        let s = subs(&[
            ("C0", &["t0"]),
            ("C1", &["t0", "t1"]),
            ("C2", &["t0", "t1", "t2"]),
        ]);
        let c = counts(&[("t0", 1), ("t1", 2), ("t2", 3)]);
        let a = RoundRobinAssignor.assign(&s, &c, &Assignment::new());
        assert_eq!(names(&a, "C0"), ["t0-0"]);
        assert_eq!(names(&a, "C1"), ["t1-0"]);
        assert_eq!(names(&a, "C2"), ["t1-1", "t2-0", "t2-1", "t2-2"]);
        validate_assignment(&s, &c, &a).unwrap();
    }

    #[test]
    fn validate_finds_violations() {
        let s = subs(&[("a", &["t"]), ("b", &["t"])]);
        let c = counts(&[("t", 2)]);
        let tp = |p| TopicPartition::new("t", p);
        let mut a: Assignment = BTreeMap::new();
        a.insert("a".into(), [tp(0)].into());
        assert!(validate_assignment(&s, &c, &a).is_err(), "missing member b");
        a.insert("b".into(), [tp(0)].into());
        assert!(
            validate_assignment(&s, &c, &a).is_err(),
            "t-0 twice, t-1 unassigned"
        );
        a.insert("b".into(), [tp(1)].into());
        validate_assignment(&s, &c, &a).unwrap();
        a.insert("b".into(), [tp(1), tp(2)].into());
        assert!(
            validate_assignment(&s, &c, &a).is_err(),
            "t-2 does not exist"
        );
        a.insert("c".into(), BTreeSet::new());
        a.insert("b".into(), [tp(1)].into());
        assert!(
            validate_assignment(&s, &c, &a).is_err(),
            "c is not a member"
        );
    }

    #[test]
    fn check_names_the_rule_member_and_partition() {
        let members = subs(&[("a", &["t"]), ("b", &["t", "u"])]);
        let partitions = counts(&[("t", 2), ("u", 1)]);
        let tp = |topic: &str, p| TopicPartition::new(topic, p);
        let some = |member: &str| Some(member.to_owned());
        let violation = |assignment: &Assignment| {
            let found = check_assignment(&members, &partitions, assignment).unwrap_err();
            (found.reason, found.member, found.topic_partition)
        };
        let mut a: Assignment = [("a".into(), [tp("t", 0)].into())].into();
        let no_entry = ("a member has no entry", some("b"), None);
        assert_eq!(violation(&a), no_entry);
        a.insert("b".into(), [tp("t", 0), tp("u", 0)].into());
        let twice = (
            "partition given to two members",
            some("b"),
            Some(tp("t", 0)),
        );
        assert_eq!(violation(&a), twice);
        a.insert("b".into(), [tp("u", 0)].into());
        let unassigned = ("partition not assigned", None, Some(tp("t", 1)));
        assert_eq!(violation(&a), unassigned);
        a.insert("a".into(), [tp("t", 0), tp("t", 1), tp("u", 0)].into());
        let unsubscribed = "partition given to a member that does not subscribe to its topic";
        assert_eq!(violation(&a), (unsubscribed, some("a"), Some(tp("u", 0))));
        a.insert("a".into(), [tp("t", 0), tp("t", 1), tp("t", 2)].into());
        let missing = ("partition does not exist", some("a"), Some(tp("t", 2)));
        assert_eq!(violation(&a), missing);
        a.insert("a".into(), [tp("t", 0), tp("t", 1)].into());
        check_assignment(&members, &partitions, &a).unwrap();
        a.insert("x".into(), BTreeSet::new());
        let intruder = ("an entry names a non-member", some("x"), None);
        assert_eq!(violation(&a), intruder);
        let error = check_assignment(&members, &partitions, &a)
            .unwrap_err()
            .into_error("g");
        assert!(
            matches!(&error, Error::AssignorContract { group, member: Some(m), .. }
                if group == "g" && m == "x"),
            "{error:?}"
        );
    }
}
