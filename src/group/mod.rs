//! Layer 6, consumer groups: members share the partitions of the topics they subscribe to, each
//! partition owned by exactly one member at a time (a queue inside a group); every group sees
//! every record (publish-subscribe across groups).
//!
//! - [`Assignor`] decides who owns what; [`RangeAssignor`], [`RoundRobinAssignor`] and
//!   [`StickyAssignor`] ship.
//! - [`GroupCoordinator`] keeps membership, session timeouts and generations, hands
//!   partitions over in two steps (the old owner releases before the new one takes over) and
//!   fences offset commits.
//!
//! - [`OffsetStore`](offset_store::OffsetStore) keeps committed offsets;
//!   [`MemoryOffsetStore`](offset_store::MemoryOffsetStore) and
//!   [`FileOffsetStore`](offset_store::FileOffsetStore) ship.
//!
//! A [`Consumer`](crate::Consumer) uses the coordinator for you; the coordinator's methods are
//! public for custom consumers and for tests.

pub(crate) mod assignor;
pub(crate) mod coordinator;
pub(crate) mod offset_store;

pub use assignor::{
    validate_assignment, Assignment, Assignor, PartitionCounts, RangeAssignor, RoundRobinAssignor,
    StickyAssignor, Subscriptions,
};
pub use coordinator::{
    GroupCoordinator, GroupDescription, MemberConfig, MemberDescription, MemberSync, TopicMetadata,
    CLIENT_ID_BYTES_MAX, GROUP_MEMBERS_MAX, OFFSETS_DIR, SESSION_TIMEOUT_MAX, SESSION_TIMEOUT_MIN,
    SUBSCRIPTION_TOPICS_MAX,
};
