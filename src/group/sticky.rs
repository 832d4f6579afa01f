//! [`StickyAssignor`]: balanced per topic and in total, moving as few partitions as that
//! balance allows.
//!
//! The work is a plan over member and topic indexes (no string maps in the inner loops), so a
//! first assignment of a million partitions to two thousand members takes well under a second
//! in a release build (`examples/sticky_scale.rs`).

use std::collections::{BTreeSet, HashMap};

use crate::group::assignor::{
    empty_assignment, Assignment, Assignor, PartitionCounts, Subscriptions,
};
use crate::offset::TopicPartition;

/// A balanced assignor that moves as few partitions as balance allows: Kafka's
/// `StickyAssignor` goals (balance first, then stickiness), with its own algorithm.
///
/// Topic by topic, fewest subscribers first (ties by name):
/// 1. **Quotas**: the topic's `P` partitions are shared by its `n` subscribers, each getting
///    `P / n` and `P % n` of them one more. The extra ones go first to subscribers that held
///    more than `P / n` of the topic before (no move), then to those with the fewest
///    partitions so far counting what they held of the topics still to come (balanced
///    totals), then by member id.
/// 2. **Keep**: each subscriber keeps the partitions of `previous` it held (lowest partition
///    numbers first) up to its quota. A partition listed under two members in `previous` counts
///    for the first by member id.
/// 3. **Fill**: the remaining partitions go, in partition order, to the subscribers below their
///    quota, in member id order.
///
/// Then **balance** the totals: while a member has at least two partitions more than another
/// member that subscribes to one of its topics, one moves from the most loaded such member to
/// the least loaded one: of the topic where the giver holds the most more than the taker (with
/// identical subscriptions such a topic keeps both within one after the move), a partition
/// the giver did not hold before if there is one, else its greatest. A first assignment
/// (no `previous`) needs no such move with identical subscriptions.
///
/// Balance: with identical subscriptions, every topic's partitions are spread within one per
/// member, and members' totals differ by at most one (Kafka's `testTopicBalanceAfterReassignment`:
/// two topics of 12 partitions over 2, then 4, then 2 members give every member an equal share
/// of each topic). With different subscriptions the totals are a local optimum: no member can
/// take a partition from one with two or more partitions more (Kafka's
/// `verifyValidityAndBalance` condition).
///
/// Stickiness: a partition changes owner only if its owner left, stopped subscribing, or holds
/// more than its quota. A member leaving hands its partitions to others and nobody else's
/// move; a member joining takes partitions only from members above the new quotas.
///
/// Cost: `O(P + T·n·log n)` for `P` partitions, `T` topics and `n` subscribers per topic, plus
/// the balancing moves with different subscriptions (each scans the members).
///
/// Difference from Kafka: Kafka keeps a member's previous partitions up to its total quota in
/// whatever order it lists them, which balances topics only as a side effect of that order;
/// this assignor makes per-topic balance a rule. Its results are deterministic but not
/// Kafka's partition for partition.
#[derive(Debug, Clone, Copy, Default)]
pub struct StickyAssignor;

impl Assignor for StickyAssignor {
    fn name(&self) -> &'static str {
        "sticky"
    }

    fn assign(
        &self,
        subscriptions: &Subscriptions,
        partition_counts: &PartitionCounts,
        previous: &Assignment,
    ) -> Assignment {
        let mut plan = Plan::new(subscriptions, partition_counts, previous);
        for t in plan.topic_order() {
            plan.assign_topic(t);
        }
        let mut out = plan.into_assignment(subscriptions);
        // Every move lowers the sum of squared counts by at least 2: terminates.
        while let Some((from, to, tp)) = find_move(subscriptions, &out, previous) {
            out.get_mut(&from).expect("member").remove(&tp);
            out.get_mut(&to).expect("member").insert(tp);
        }
        out
    }
}

/// One subscribed topic of a [`Plan`].
struct PlanTopic<'a> {
    name: &'a str,
    count: u32,
    /// Indexes of the members subscribing to it, ascending (member id order).
    subscribers: Vec<usize>,
    /// Previous owner of each partition, if still valid.
    previous: Vec<Option<usize>>,
}

/// The sticky assignment under construction, by member and topic index.
struct Plan<'a> {
    members: Vec<&'a String>,
    topics: Vec<PlanTopic<'a>>,
    /// Partitions given so far, per member.
    totals: Vec<usize>,
    /// Partitions given, per member, as (topic index, partition).
    given: Vec<Vec<(usize, u32)>>,
    /// Per member: partitions it held in `previous` of the topics not assigned yet (what it
    /// will probably keep: a tie-break for the extra partitions).
    future: Vec<usize>,
    /// Scratch, per member: partitions of the current topic held before, and its quota.
    kept: Vec<usize>,
    quota: Vec<usize>,
}

impl<'a> Plan<'a> {
    fn new(
        subscriptions: &'a Subscriptions,
        partition_counts: &'a PartitionCounts,
        previous: &Assignment,
    ) -> Self {
        let members: Vec<&String> = subscriptions.keys().collect();
        let topics: Vec<PlanTopic<'_>> = partition_counts
            .iter()
            .map(|(name, &count)| PlanTopic {
                name,
                count,
                subscribers: subscriptions
                    .values()
                    .enumerate()
                    .filter(|(_, topics)| topics.contains(name))
                    .map(|(m, _)| m)
                    .collect(),
                previous: Vec::new(),
            })
            .filter(|t| !t.subscribers.is_empty())
            .collect();
        let m = members.len();
        let mut plan = Plan {
            members,
            topics,
            totals: vec![0; m],
            future: vec![0; m],
            given: vec![Vec::new(); m],
            kept: vec![0; m],
            quota: vec![0; m],
        };
        plan.load_previous(subscriptions, previous);
        plan
    }

    /// Fill every topic's `previous` owners from the hint: only members still in the group
    /// and subscribed, only partitions that exist, the first member id for a duplicate.
    fn load_previous(&mut self, subscriptions: &Subscriptions, previous: &Assignment) {
        let member_index: HashMap<&str, usize> = self
            .members
            .iter()
            .enumerate()
            .map(|(i, m)| (m.as_str(), i))
            .collect();
        let topic_index: HashMap<&str, usize> = self
            .topics
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name, i))
            .collect();
        for t in &mut self.topics {
            t.previous = vec![None; t.count as usize];
        }
        for (member, partitions) in previous {
            let Some(&m) = member_index.get(member.as_str()) else {
                continue;
            };
            let topics = &subscriptions[member];
            for tp in partitions {
                let Some(&t) = topic_index.get(tp.topic.as_str()) else {
                    continue;
                };
                let topic = &mut self.topics[t];
                if !topics.contains(&tp.topic) || tp.partition >= topic.count {
                    continue;
                }
                let slot = &mut topic.previous[tp.partition as usize];
                if slot.is_none() {
                    *slot = Some(m);
                    self.future[m] += 1;
                }
            }
        }
    }

    /// Topic indexes, fewest subscribers first, then by name.
    fn topic_order(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.topics.len()).collect();
        order.sort_by(|&a, &b| {
            let (a, b) = (&self.topics[a], &self.topics[b]);
            (a.subscribers.len(), a.name).cmp(&(b.subscribers.len(), b.name))
        });
        order
    }

    /// Quotas, keep, fill for topic `t` (see [`StickyAssignor`]).
    fn assign_topic(&mut self, t: usize) {
        let topic = &self.topics[t];
        let n = topic.subscribers.len();
        let count = topic.count as usize;
        let (base, extra) = (count / n, count % n);
        for &m in &topic.subscribers {
            self.kept[m] = 0;
        }
        for m in topic.previous.iter().flatten() {
            self.kept[*m] += 1;
            self.future[*m] -= 1;
        }
        let mut order = topic.subscribers.clone();
        let (totals, future, kept) = (&self.totals, &self.future, &self.kept);
        order.sort_by_key(|&m| (kept[m] <= base, totals[m] + future[m], m));
        for (rank, &m) in order.iter().enumerate() {
            self.quota[m] = base + usize::from(rank < extra);
            self.kept[m] = 0; // now: partitions of this topic given so far
        }
        let mut free = Vec::new();
        for (p, owner) in topic.previous.iter().enumerate() {
            let p = u32::try_from(p).expect("below a u32 partition count");
            match *owner {
                Some(m) if self.kept[m] < self.quota[m] => {
                    self.kept[m] += 1;
                    self.given[m].push((t, p));
                }
                _ => free.push(p),
            }
        }
        let mut free = free.into_iter();
        for &m in &topic.subscribers {
            while self.kept[m] < self.quota[m] {
                let p = free.next().expect("quotas add up to the partition count");
                self.kept[m] += 1;
                self.given[m].push((t, p));
            }
            self.totals[m] += self.quota[m];
        }
    }

    fn into_assignment(self, subscriptions: &Subscriptions) -> Assignment {
        let mut out = empty_assignment(subscriptions);
        for (m, given) in self.given.into_iter().enumerate() {
            let set = out
                .get_mut(self.members[m])
                .expect("every member has an entry");
            set.extend(
                given
                    .into_iter()
                    .map(|(t, p)| TopicPartition::new(self.topics[t].name, p)),
            );
        }
        out
    }
}

/// The next balancing move: `(from, to, partition)`, or `None` when no member can take a
/// partition from one with two or more partitions more. Of `from`'s partitions that `to` may
/// take, picks one of the topic where `from` holds the most more than `to` (so per-topic
/// balance survives the move), preferring one `from` did not hold in `previous`, then the
/// greatest.
fn find_move(
    subscriptions: &Subscriptions,
    out: &Assignment,
    previous: &Assignment,
) -> Option<(String, String, TopicPartition)> {
    let mut receivers: Vec<(&String, usize)> = out.iter().map(|(m, s)| (m, s.len())).collect();
    receivers.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(b.0)));
    let mut donors = receivers.clone();
    donors.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    for &(from, from_count) in &donors {
        for &(to, to_count) in &receivers {
            if to_count + 2 > from_count {
                // Receivers are sorted by count: none further on qualifies either.
                break;
            }
            if let Some(tp) = pick_move(subscriptions, out, previous.get(from), from, to) {
                return Some((from.clone(), to.clone(), tp.clone()));
            }
        }
    }
    None
}

/// The partition [`find_move`] moves from `from` to `to`, if `to` may take any.
fn pick_move<'a>(
    subscriptions: &Subscriptions,
    out: &'a Assignment,
    held: Option<&BTreeSet<TopicPartition>>,
    from: &str,
    to: &str,
) -> Option<&'a TopicPartition> {
    let topics = &subscriptions[to];
    let mut to_counts: HashMap<&str, usize> = HashMap::new();
    for tp in &out[to] {
        *to_counts.entry(tp.topic.as_str()).or_default() += 1;
    }
    // `out[from]` is sorted by topic: count each topic's run.
    let mut best: Option<(isize, &str)> = None;
    let mut run: Option<(&str, usize)> = None;
    let candidates = out[from].iter().filter(|tp| topics.contains(&tp.topic));
    for topic in candidates.map(|tp| Some(tp.topic.as_str())).chain([None]) {
        match (run, topic) {
            (Some((t, n)), Some(u)) if t == u => run = Some((t, n + 1)),
            _ => {
                if let Some((t, n)) = run {
                    let gap =
                        n.cast_signed() - to_counts.get(t).copied().unwrap_or(0).cast_signed();
                    if best.is_none_or(|(b, _)| gap > b) {
                        best = Some((gap, t));
                    }
                }
                run = topic.map(|u| (u, 1));
            }
        }
    }
    let (_, topic) = best?;
    let mut in_topic = out[from].iter().rev().filter(|tp| tp.topic == topic);
    let first = in_topic.clone().next();
    in_topic
        .find(|tp| held.is_none_or(|h| !h.contains(*tp)))
        .or(first)
}
