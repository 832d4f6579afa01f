//! Layer 6, consumer groups: the [`GroupCoordinator`] (membership, generations, the
//! two-step hand-over of partitions, fenced commits; its docs hold the group model), the
//! [`Assignor`]s that decide who owns what, and the [`OffsetStore`](offset_store::OffsetStore)s
//! that keep committed offsets.

pub(crate) mod admin;
pub(crate) mod assignor;
pub(crate) mod coordinator;
pub(crate) mod offset_store;
pub(crate) mod sticky;

pub use admin::{OffsetResetTarget, PartitionLag};
pub use assignor::{
    validate_assignment, Assignment, Assignor, PartitionCounts, RangeAssignor, RoundRobinAssignor,
    Subscriptions,
};
pub use coordinator::{
    GroupCoordinator, GroupDescription, MemberConfig, MemberDescription, MemberSync, TopicMetadata,
    CLIENT_ID_BYTES_MAX, GROUP_MEMBERS_MAX, OFFSETS_DIR, SESSION_TIMEOUT_MAX, SESSION_TIMEOUT_MIN,
    SUBSCRIPTION_TOPICS_MAX,
};
pub use sticky::StickyAssignor;
