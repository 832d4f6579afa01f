//! Kafka's large-scale sticky assignor case (`AbstractStickyAssignorTest.
//! testLargeAssignmentAndGroupWithUniformSubscription`): 500 topics of 2,000 partitions (one
//! million partitions) over 2,000 members with identical subscriptions, assigned from scratch
//! and then again with the first result as the sticky hint; Kafka's test allows 30 s for
//! both. Then the same group after one member leaves, and the group coordinator's first
//! rebalance of 100,000 partitions over 1,000 members (its member limit).
//!
//! Run with `cargo run --release --example sticky_scale`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use seglog::{
    validate_assignment, Assignment, Assignor, GroupCoordinator, MemberConfig, MemoryOffsetStore,
    PartitionCounts, StickyAssignor, Subscriptions,
};

fn group(topics: usize, partitions: u32, members: usize) -> (Subscriptions, PartitionCounts) {
    let counts: PartitionCounts = (0..topics)
        .map(|i| (format!("topic{i:03}"), partitions))
        .collect();
    let names: BTreeSet<String> = counts.keys().cloned().collect();
    let subs = (0..members)
        .map(|i| (format!("consumer{i:04}"), names.clone()))
        .collect();
    (subs, counts)
}

fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    println!("{what}: {:.2} s", start.elapsed().as_secs_f64());
    out
}

fn main() {
    let (subs, counts) = group(500, 2_000, 2_000);
    let first = timed("1M partitions x 2,000 members, first assignment", || {
        StickyAssignor.assign(&subs, &counts, &Assignment::new())
    });
    let again = timed("same group, previous assignment as hint", || {
        StickyAssignor.assign(&subs, &counts, &first)
    });
    assert_eq!(first, again, "an unchanged group keeps its assignment");
    let mut fewer = subs.clone();
    fewer.pop_first();
    let after = timed("one member left", || {
        StickyAssignor.assign(&fewer, &counts, &first)
    });
    timed("validate_assignment", || {
        validate_assignment(&fewer, &counts, &after).expect("valid");
    });
    let sizes: Vec<usize> = after.values().map(BTreeSet::len).collect();
    println!(
        "after the leave: {}..={} partitions per member",
        sizes.iter().min().unwrap(),
        sizes.iter().max().unwrap()
    );

    // The coordinator: 100 topics x 1,000 partitions, 1,000 members joining one by one
    // (each join is a rebalance under the group lock); timed: the last join.
    let topics: Vec<String> = (0..100).map(|i| format!("topic{i:03}")).collect();
    let c = GroupCoordinator::new(
        Arc::new(MemoryOffsetStore::new()),
        Arc::new(|t: &str| t.starts_with("topic").then_some(1_000)),
    );
    let config = MemberConfig::new(topics.clone());
    for _ in 0..999 {
        c.join("g", config.clone()).expect("join");
    }
    timed(
        "coordinator: 1,000th member joins (100,000 partitions)",
        || c.join("g", config.clone()).expect("join"),
    );
}
