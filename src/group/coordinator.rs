//! The in-process group coordinator: membership, session timeouts, generations, the
//! two-step hand-over of partitions and fenced offset commits.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::assignor::{check_assignment, Assignment, Assignor, PartitionCounts, Subscriptions};
use super::sticky::StickyAssignor;
use crate::error::{Error, Result};
use crate::group::offset_store::{
    validate_group_id, CommittedOffset, FileOffsetStore, FileOffsetStoreConfig, OffsetStore,
};
use crate::offset::TopicPartition;
use crate::topic::handle::validate_topic_name;
use crate::topic::store::{LogStore, WeakStoreHandle};

/// Directory of a store's data directory where [`GroupCoordinator::open`] keeps committed
/// offsets.
pub const OFFSETS_DIR: &str = "__offsets";

/// Most members one group may have.
pub const GROUP_MEMBERS_MAX: usize = 1_000;

/// Most topics one member may subscribe to.
pub const SUBSCRIPTION_TOPICS_MAX: usize = 10_000;

/// Shortest accepted [`MemberConfig::session_timeout`].
pub const SESSION_TIMEOUT_MIN: Duration = Duration::from_millis(1);

/// Longest accepted [`MemberConfig::session_timeout`].
pub const SESSION_TIMEOUT_MAX: Duration = Duration::from_secs(60 * 60);

/// Longest accepted [`MemberConfig::client_id`], in bytes.
pub const CLIENT_ID_BYTES_MAX: usize = 255;

// The validation messages state these values: keep them in step.
const _: () = assert!(SUBSCRIPTION_TOPICS_MAX == 10_000 && CLIENT_ID_BYTES_MAX == 255);
const _: () =
    assert!(SESSION_TIMEOUT_MIN.as_millis() == 1 && SESSION_TIMEOUT_MAX.as_secs() == 3600);

/// Where a [`GroupCoordinator`] learns how many partitions a topic has.
///
/// The coordinator asks on every member call (join, heartbeat, sync) for each subscribed
/// topic, and rebalances the group when an answer changed: a topic created after members
/// subscribed to it, a topic that gained partitions, a topic deleted. Implemented for
/// closures `Fn(&str) -> Option<u32>`; [`GroupCoordinator::for_store`] uses the store's
/// topics.
///
/// Contract: `partition_count` **must** return `None` for a topic that does not exist and
/// `Some(n)` with `n >= 1` otherwise; it **must** be cheap and **must not** call the
/// coordinator (it runs under a group's lock).
pub trait TopicMetadata: Send + Sync {
    /// The partition count of `topic`, or `None` if it does not exist.
    fn partition_count(&self, topic: &str) -> Option<u32>;
}

impl<F: Fn(&str) -> Option<u32> + Send + Sync> TopicMetadata for F {
    fn partition_count(&self, topic: &str) -> Option<u32> {
        self(topic)
    }
}

/// A store's topics, without keeping the store alive.
struct StoreTopics(WeakStoreHandle);

impl TopicMetadata for StoreTopics {
    fn partition_count(&self, topic: &str) -> Option<u32> {
        let store = self.0.upgrade()?;
        let topic = store.topic(topic).ok()?;
        (!topic.is_deleted()).then(|| topic.partition_count())
    }
}

/// How a member joins a group: what it subscribes to, how long it may stay silent, and the
/// assignment strategy.
#[derive(Clone)]
#[non_exhaustive]
pub struct MemberConfig {
    /// The topics the member consumes. Each must be a valid topic name; it need not exist yet
    /// (the group rebalances when it appears). At most [`SUBSCRIPTION_TOPICS_MAX`].
    pub topics: BTreeSet<String>,
    /// The member is removed from the group when it makes no call (poll, heartbeat, commit,
    /// sync) for longer than this: its partitions go to other members. A subscribed
    /// [`Consumer`] heartbeats from a background thread, so this bounds how long a dead
    /// process keeps its partitions (Kafka's `session.timeout.ms`); its
    /// `max_poll_interval` separately bounds the time between polls. Between
    /// [`SESSION_TIMEOUT_MIN`] and [`SESSION_TIMEOUT_MAX`]; default 45 s (Kafka's default).
    ///
    /// [`Consumer`]: crate::Consumer
    pub session_timeout: Duration,
    /// The assignment strategy. Every member of a group must use one of the same
    /// [`Assignor::name`]; the group uses the instance of the member that created it.
    /// Default [`StickyAssignor`].
    pub assignor: Arc<dyn Assignor>,
    /// Prefix of the member id (`<client_id>-<10-digit sequence number>`). 1 to
    /// [`CLIENT_ID_BYTES_MAX`] bytes; default `"consumer"`.
    pub client_id: String,
    /// Static membership (Kafka's `group.instance.id`): a member that joins with the instance
    /// id of a member still in the group (within its session timeout) replaces it without a
    /// rebalance — same generation, same assignment, the partitions handed over at its first
    /// sync — so a restarted process gets its partitions back and nobody else is disturbed.
    /// The replaced member id is fenced ([`Error::FencedInstanceId`]). 1 to
    /// [`CLIENT_ID_BYTES_MAX`] bytes; default `None` (dynamic membership).
    pub group_instance_id: Option<String>,
}

impl std::fmt::Debug for MemberConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberConfig")
            .field("topics", &self.topics)
            .field("session_timeout", &self.session_timeout)
            .field("assignor", &self.assignor.name())
            .field("client_id", &self.client_id)
            .field("group_instance_id", &self.group_instance_id)
            .finish()
    }
}

impl Default for MemberConfig {
    fn default() -> Self {
        MemberConfig {
            topics: BTreeSet::new(),
            session_timeout: Duration::from_secs(45),
            assignor: Arc::new(StickyAssignor),
            client_id: "consumer".to_owned(),
            group_instance_id: None,
        }
    }
}

impl MemberConfig {
    /// A member subscribing to `topics`, with the other fields at their defaults.
    pub fn new<I, S>(topics: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        MemberConfig {
            topics: topics.into_iter().map(Into::into).collect(),
            ..MemberConfig::default()
        }
    }

    /// Sets `session_timeout`.
    pub fn with_session_timeout(mut self, v: Duration) -> Self {
        self.session_timeout = v;
        self
    }

    /// Sets `assignor`.
    pub fn with_assignor(mut self, v: Arc<dyn Assignor>) -> Self {
        self.assignor = v;
        self
    }

    /// Sets `client_id`.
    pub fn with_client_id(mut self, v: impl Into<String>) -> Self {
        self.client_id = v.into();
        self
    }

    /// Sets `group_instance_id`.
    pub fn with_group_instance_id(mut self, v: Option<String>) -> Self {
        self.group_instance_id = v;
        self
    }

    /// Check every field; the first bad one is returned as an error
    /// ([`Error::InvalidTopicName`] for a topic, [`Error::InvalidConfig`] otherwise).
    pub fn validate(&self) -> Result<()> {
        if self.topics.len() > SUBSCRIPTION_TOPICS_MAX {
            return Err(Error::config(
                "topics",
                self.topics.len(),
                "a member subscribes to at most 10000 topics (SUBSCRIPTION_TOPICS_MAX); subscribe to fewer",
            ));
        }
        for topic in &self.topics {
            validate_topic_name(topic)?;
        }
        if !(SESSION_TIMEOUT_MIN..=SESSION_TIMEOUT_MAX).contains(&self.session_timeout) {
            return Err(Error::config(
                "session_timeout",
                format!("{:?}", self.session_timeout),
                "must be between 1 ms and 1 h (SESSION_TIMEOUT_MIN, SESSION_TIMEOUT_MAX)",
            ));
        }
        if let Some(id) = &self.group_instance_id {
            if id.is_empty() || id.len() > CLIENT_ID_BYTES_MAX {
                return Err(Error::config(
                    "group_instance_id",
                    id,
                    "must be 1 to 255 bytes (CLIENT_ID_BYTES_MAX)",
                ));
            }
        }
        if self.client_id.is_empty() || self.client_id.len() > CLIENT_ID_BYTES_MAX {
            return Err(Error::config(
                "client_id",
                &self.client_id,
                "must be 1 to 255 bytes (CLIENT_ID_BYTES_MAX)",
            ));
        }
        Ok(())
    }
}

/// What [`GroupCoordinator::sync`] tells a member.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemberSync {
    /// The group's current generation: the token the member commits with.
    pub generation: u64,
    /// Partitions this call handed to the member (it owns them now).
    pub assigned: Vec<TopicPartition>,
    /// Partitions the member still owns but the current assignment gives to someone else (or
    /// to nobody): it should commit what it processed, then
    /// [`release`](GroupCoordinator::release) them.
    pub to_revoke: Vec<TopicPartition>,
    /// Every partition the member owns after this call (`to_revoke` included).
    pub owned: Vec<TopicPartition>,
    /// Partitions assigned to the member that another member still owns; later syncs hand
    /// them over once released.
    pub pending: Vec<TopicPartition>,
}

/// A member as [`GroupCoordinator::describe`] shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemberDescription {
    /// The member id.
    pub member_id: String,
    /// The subscribed topics, sorted.
    pub topics: Vec<String>,
    /// The member's session timeout.
    pub session_timeout: Duration,
    /// The partitions the member owns now, sorted.
    pub owned: Vec<TopicPartition>,
    /// The partitions the current assignment gives it, sorted.
    pub assigned: Vec<TopicPartition>,
    /// Its static instance id ([`MemberConfig::group_instance_id`]), if any.
    pub group_instance_id: Option<String>,
}

/// A snapshot of a group ([`GroupCoordinator::describe`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupDescription {
    /// The group id.
    pub group: String,
    /// The current generation (0 before the first join; bumped by every rebalance).
    pub generation: u64,
    /// The name of the group's assignor, if it has members.
    pub assignor: Option<String>,
    /// The members, sorted by id.
    pub members: Vec<MemberDescription>,
}

/// The in-process group coordinator: Kafka's group coordinator and consumer-group protocol,
/// without a network.
///
/// # Model
///
/// - A **member** [`join`](Self::join)s a group with a subscription and gets a member id. It
///   stays a member until it [`leave`](Self::leave)s or makes no call for longer than its
///   session timeout. Expiry is checked at the start of every call on the group and by
///   [`expire_members`](Self::expire_members); the coordinator owns no thread.
/// - Every change of membership, of a member's subscription or of a subscribed topic's
///   partition count is a **rebalance**: the generation goes up by one and the group's
///   [`Assignor`] computes the new *assignment* (its previous one as the sticky hint). An
///   assignment that breaks the assignor's contract is never applied: the group keeps its
///   generation and assignment, and the call that caused it (if any) returns
///   [`Error::AssignorContract`] (see [`Assignor`]).
/// - **Ownership** follows the assignment in two steps, like Kafka's cooperative protocol:
///   a partition moving from `A` to `B` stays owned by `A` until `A` calls
///   [`release`](Self::release) (after committing what it processed) or is removed; only
///   then does a [`sync`](Self::sync) by `B` hand it over. So at every instant each
///   partition has at most one owner, and a new owner always starts after the previous
///   owner's last commit.
/// - **Commits** go through [`commit`](Self::commit) and are fenced: they are refused with
///   [`Error::FencedCommit`] unless the member is in the group and owns every partition in
///   the commit, and presents a generation at or after the one in which it took each of them
///   over. The check and the write to the [`OffsetStore`] happen under the group's lock, so
///   no hand-over slips in between. A rebalance by itself fences nothing: a member keeps
///   committing what it still owns until it releases it (see [`commit`](Self::commit)).
///
/// Groups are independent: every group gets every partition of its topics, and commits of
/// one group never affect another (publish-subscribe across groups, queue inside one: each
/// partition is owned by exactly one member of a group at a time).
///
/// # What ships
///
/// - Assignors, behind the [`Assignor`] trait: [`RangeAssignor`], [`RoundRobinAssignor`] and
///   [`StickyAssignor`] (the default).
/// - Offset stores, behind the [`OffsetStore`] trait: [`MemoryOffsetStore`] (volatile) and
///   [`FileOffsetStore`] (durable; what [`open`](Self::open) uses, in
///   `<data dir>/__offsets/`).
/// - Topic metadata, behind the [`TopicMetadata`] trait: a [`LogStore`]'s topics
///   ([`for_store`](Self::for_store)) or any closure.
///
/// A [`Consumer`](crate::Consumer) uses the coordinator for you; its methods are public for
/// custom consumers and for tests.
///
/// [`RangeAssignor`]: crate::RangeAssignor
/// [`RoundRobinAssignor`]: crate::RoundRobinAssignor
/// [`MemoryOffsetStore`]: crate::MemoryOffsetStore
///
/// # Locks
///
/// One lock per group, taken by every call on it and held while the assignor runs and while
/// a commit is written to the offset store; a map lock held only to find the group.
pub struct GroupCoordinator {
    offsets: Arc<dyn OffsetStore>,
    metadata: Arc<dyn TopicMetadata>,
    groups: Mutex<HashMap<String, Arc<Mutex<Group>>>>,
    next_member: AtomicU64,
}

impl std::fmt::Debug for GroupCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCoordinator")
            .field("groups", &self.groups.lock().len())
            .finish_non_exhaustive()
    }
}

struct Group {
    generation: u64,
    assignor: Option<Arc<dyn Assignor>>,
    members: BTreeMap<String, Member>,
    /// The partition counts the current assignment was computed from.
    partition_counts: PartitionCounts,
    /// The current assignment (target ownership).
    assignment: Assignment,
    /// Static members replaced by a newer incarnation: member id -> instance id. Their calls
    /// fail with `FencedInstanceId` instead of rejoining (which would replace the newer one
    /// back). The oldest entries go past `GROUP_MEMBERS_MAX`.
    replaced: BTreeMap<String, String>,
    /// Actual ownership; each partition has at most one owner.
    owners: BTreeMap<TopicPartition, String>,
    /// The generation at which each owned partition was handed to its owner: a commit
    /// presenting an older generation was computed before this ownership began.
    owned_since: BTreeMap<TopicPartition, u64>,
}

struct Member {
    topics: BTreeSet<String>,
    instance_id: Option<String>,
    session_timeout: Duration,
    last_seen: Instant,
    owned: BTreeSet<TopicPartition>,
}

impl GroupCoordinator {
    /// A coordinator committing through `offsets` and learning partition counts from
    /// `metadata`.
    pub fn new(offsets: Arc<dyn OffsetStore>, metadata: Arc<dyn TopicMetadata>) -> Self {
        GroupCoordinator {
            offsets,
            metadata,
            groups: Mutex::new(HashMap::new()),
            next_member: AtomicU64::new(1),
        }
    }

    /// A coordinator for the topics of `store`, committing through `offsets`. It does not
    /// keep the store open: once the store is dropped, every topic reads as absent.
    pub fn for_store(store: &LogStore, offsets: Arc<dyn OffsetStore>) -> Self {
        Self::new(offsets, Arc::new(StoreTopics(store.handle().downgrade())))
    }

    /// A coordinator for the topics of `store` whose commits go to a durable
    /// [`FileOffsetStore`] in `<data dir>/`[`OFFSETS_DIR`], created if needed. Only one may be
    /// open per store at a time (the offset directory is locked).
    pub fn open(store: &LogStore) -> Result<Self> {
        let config = FileOffsetStoreConfig::default().on(store.file_system());
        let offsets = FileOffsetStore::open_with(store.data_dir().join(OFFSETS_DIR), config)?;
        Ok(Self::for_store(store, Arc::new(offsets)))
    }

    /// The offset store commits go to.
    pub fn offset_store(&self) -> &Arc<dyn OffsetStore> {
        &self.offsets
    }

    /// Add a member to `group` (created on first join) and rebalance. Returns the new
    /// member's id. A member with the [`group_instance_id`](MemberConfig::group_instance_id)
    /// of a member still in the group replaces it instead, without a rebalance.
    ///
    /// Errors: [`Error::InvalidGroupId`], an invalid `config` (see
    /// [`MemberConfig::validate`]), [`Error::GroupFull`] past [`GROUP_MEMBERS_MAX`],
    /// [`Error::InconsistentAssignor`] if the group's members use an assignor of another
    /// name, [`Error::AssignorContract`] if the group's assignor breaks its contract for the
    /// new membership (the member is not added; the group keeps its generation and
    /// assignment).
    pub fn join(&self, group: &str, config: MemberConfig) -> Result<String> {
        validate_group_id(group)?;
        config.validate()?;
        let handle = self.group(group, true).expect("created");
        let mut g = handle.lock();
        let now = Instant::now();
        g.expire(group, now);
        if let Some(old) = g.static_member(config.group_instance_id.as_deref()) {
            if let Some(a) = g
                .assignor
                .as_ref()
                .filter(|a| a.name() != config.assignor.name())
            {
                return Err(Error::InconsistentAssignor {
                    group: group.to_owned(),
                    expected: a.name().to_owned(),
                    actual: config.assignor.name().to_owned(),
                });
            }
            let n = self.next_member.fetch_add(1, Ordering::Relaxed);
            let member_id = format!("{}-{n:010}", config.client_id);
            g.replace_static(&old, member_id.clone(), config, now);
            g.refresh(group, &*self.metadata);
            return Ok(member_id);
        }
        if g.members.len() >= GROUP_MEMBERS_MAX {
            return Err(Error::GroupFull {
                group: group.to_owned(),
                limit: GROUP_MEMBERS_MAX,
            });
        }
        let assignor = match &g.assignor {
            Some(a) if !g.members.is_empty() && a.name() != config.assignor.name() => {
                return Err(Error::InconsistentAssignor {
                    group: group.to_owned(),
                    expected: a.name().to_owned(),
                    actual: config.assignor.name().to_owned(),
                });
            }
            Some(a) if !g.members.is_empty() => a.clone(),
            _ => config.assignor.clone(),
        };
        let n = self.next_member.fetch_add(1, Ordering::Relaxed);
        let member_id = format!("{}-{n:010}", config.client_id);
        // Plan with the new member before adding it: a broken assignor changes nothing.
        let mut subscriptions = g.subscriptions();
        subscriptions.insert(member_id.clone(), config.topics.clone());
        let counts = current_counts(&subscriptions, &*self.metadata);
        let assignment = plan(group, &*assignor, &subscriptions, &counts, &g.assignment)?;
        g.assignor = Some(assignor);
        g.members.insert(
            member_id.clone(),
            Member {
                topics: config.topics,
                instance_id: config.group_instance_id,
                session_timeout: config.session_timeout,
                last_seen: now,
                owned: BTreeSet::new(),
            },
        );
        g.apply(counts, assignment);
        Ok(member_id)
    }

    /// Remove `member_id` from `group`: its partitions are released at once (commit first)
    /// and the group rebalances. [`Error::UnknownMember`] if it is not a member.
    /// [`Error::AssignorContract`] if the group's assignor breaks its contract for the
    /// remaining members: the member has left all the same, but the group keeps its
    /// generation and assignment (the released partitions wait, unowned, until a later
    /// heartbeat or sync rebalances successfully).
    pub fn leave(&self, group: &str, member_id: &str) -> Result<()> {
        let handle = self.member_group(group, member_id)?;
        let mut g = handle.lock();
        g.expire(group, Instant::now());
        if !g.remove(member_id) {
            return Err(g.missing(group, member_id));
        }
        g.rebalance(group, &*self.metadata)
    }

    /// Record that `member_id` is alive and return the group's generation (a value above the
    /// member's last one means a rebalance happened: sync to see what changed).
    /// [`Error::UnknownMember`] if it is not (or no longer) a member.
    pub fn heartbeat(&self, group: &str, member_id: &str) -> Result<u64> {
        let handle = self.member_group(group, member_id)?;
        let mut g = handle.lock();
        g.touch(group, member_id, Instant::now())?;
        g.refresh(group, &*self.metadata);
        Ok(g.generation)
    }

    /// Heartbeat, then take over every partition of the member's assignment that no other
    /// member owns, and report what the member must revoke. See [`MemberSync`].
    /// [`Error::UnknownMember`] if it is not (or no longer) a member.
    pub fn sync(&self, group: &str, member_id: &str) -> Result<MemberSync> {
        let handle = self.member_group(group, member_id)?;
        let mut g = handle.lock();
        g.touch(group, member_id, Instant::now())?;
        g.refresh(group, &*self.metadata);
        Ok(g.sync(member_id))
    }

    /// Give up ownership of `partitions` (those the member does not own are ignored), so
    /// the members they are assigned to can take them over. Heartbeats.
    /// [`Error::UnknownMember`] if it is not (or no longer) a member.
    pub fn release(
        &self,
        group: &str,
        member_id: &str,
        partitions: &[TopicPartition],
    ) -> Result<()> {
        let handle = self.member_group(group, member_id)?;
        let mut g = handle.lock();
        g.touch(group, member_id, Instant::now())?;
        for tp in partitions {
            if g.owners.get(tp).is_some_and(|o| o == member_id) {
                g.owners.remove(tp);
                g.owned_since.remove(tp);
                g.members
                    .get_mut(member_id)
                    .expect("touched")
                    .owned
                    .remove(tp);
            }
        }
        Ok(())
    }

    /// Commit `offsets` for `group` on behalf of `member_id`, fenced: the member must be in
    /// the group and own every partition listed, and `generation` must be one the member has
    /// owned each of them since (at least the generation of the sync that handed it over, at
    /// most the group's current one). Otherwise [`Error::FencedCommit`] and nothing is
    /// written. The check and the [`OffsetStore::commit`] happen under the group's lock.
    /// Heartbeats.
    ///
    /// A rebalance alone does not fence a commit: ownership only ends when the member
    /// [`release`](Self::release)s a partition or is removed, so a member that has not
    /// synced since another member joined or left still commits what it owns with the
    /// generation it last saw. This is the analogue of Kafka's classic protocol, where the
    /// generation only changes when a rebalance completes and members commit with the current
    /// one while the group gathers members (`ClassicGroup.validateOffsetCommit`); it is what
    /// lets members that leave together all commit their final positions.
    pub fn commit(
        &self,
        group: &str,
        member_id: &str,
        generation: u64,
        offsets: &[(TopicPartition, CommittedOffset)],
    ) -> Result<()> {
        validate_group_id(group)?;
        let Some(handle) = self.group(group, false) else {
            return Err(fenced(group, member_id, generation, 0, None, NOT_A_MEMBER));
        };
        let mut g = handle.lock();
        if g.touch(group, member_id, Instant::now()).is_err() {
            let current = g.generation;
            return Err(fenced(
                group,
                member_id,
                generation,
                current,
                None,
                NOT_A_MEMBER,
            ));
        }
        g.check_commit(group, member_id, generation, offsets)?;
        self.offsets.commit(group, offsets)
    }

    /// Commit `offsets` for `group` from outside the group's membership: a consumer with a
    /// manual assignment and a `group_id`, or an administrator (Kafka's commit with
    /// generation `-1`). Refused with [`Error::GroupNotEmpty`] while the group has members
    /// (their commits are fenced by ownership; an outsider's would silently overwrite them),
    /// and with [`Error::UnknownTopic`] / [`Error::PartitionOutOfRange`] for a partition that
    /// does not exist (Kafka rejects those too). Nothing is written unless every entry passes.
    pub fn commit_unmanaged(
        &self,
        group: &str,
        offsets: &[(TopicPartition, CommittedOffset)],
    ) -> Result<()> {
        validate_group_id(group)?;
        for (tp, _) in offsets {
            check_partition_exists(&*self.metadata, tp)?;
        }
        self.with_empty_group(group, || self.offsets.commit(group, offsets))
    }

    /// Run `f` under `group`'s lock if the group has no members (after expiring silent
    /// ones), else [`Error::GroupNotEmpty`]. An unknown group is empty.
    pub(crate) fn with_empty_group<T>(
        &self,
        group: &str,
        f: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        let Some(handle) = self.group(group, false) else {
            return f();
        };
        let mut g = handle.lock();
        g.expire(group, Instant::now());
        if !g.members.is_empty() {
            return Err(Error::GroupNotEmpty {
                group: group.to_owned(),
                members: g.members.len(),
            });
        }
        f()
    }

    /// Drop `group` from the coordinator if it has no members.
    pub(crate) fn forget_group(&self, group: &str) {
        let mut groups = self.groups.lock();
        if groups
            .get(group)
            .is_some_and(|g| g.lock().members.is_empty())
        {
            groups.remove(group);
        }
    }

    /// Remove, from every group, the members whose last call is older than their session
    /// timeout at `now`, and rebalance their groups. Returns the removed `(group, member id)`
    /// pairs. Member calls do this for their own group; call it to expire members of groups
    /// nobody calls into (or with a future `now` in tests).
    pub fn expire_members(&self, now: Instant) -> Vec<(String, String)> {
        let groups: Vec<(String, Arc<Mutex<Group>>)> = self
            .groups
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut removed = Vec::new();
        for (name, handle) in groups {
            let mut g = handle.lock();
            for member in g.expire(&name, now) {
                removed.push((name.clone(), member));
            }
            g.refresh(&name, &*self.metadata);
        }
        removed.sort();
        removed
    }

    /// A snapshot of `group`, or `None` if nobody ever joined it. Does not expire members.
    pub fn describe(&self, group: &str) -> Option<GroupDescription> {
        let handle = self.group(group, false)?;
        let g = handle.lock();
        let members = g
            .members
            .iter()
            .map(|(id, m)| MemberDescription {
                member_id: id.clone(),
                topics: m.topics.iter().cloned().collect(),
                session_timeout: m.session_timeout,
                owned: m.owned.iter().cloned().collect(),
                assigned: g
                    .assignment
                    .get(id)
                    .map(|s| s.iter().cloned().collect())
                    .unwrap_or_default(),
                group_instance_id: m.instance_id.clone(),
            })
            .collect();
        Some(GroupDescription {
            group: group.to_owned(),
            generation: g.generation,
            assignor: (!g.members.is_empty())
                .then(|| g.assignor.as_ref().map(|a| a.name().to_owned()))
                .flatten(),
            members,
        })
    }

    /// The ids of every group anyone ever joined, sorted.
    pub fn groups(&self) -> Vec<String> {
        let mut names: Vec<String> = self.groups.lock().keys().cloned().collect();
        names.sort();
        names
    }

    fn group(&self, group: &str, create: bool) -> Option<Arc<Mutex<Group>>> {
        let mut groups = self.groups.lock();
        if let Some(g) = groups.get(group) {
            return Some(g.clone());
        }
        if !create {
            return None;
        }
        let g = Arc::new(Mutex::new(Group {
            generation: 0,
            assignor: None,
            members: BTreeMap::new(),
            partition_counts: PartitionCounts::new(),
            assignment: Assignment::new(),
            replaced: BTreeMap::new(),
            owners: BTreeMap::new(),
            owned_since: BTreeMap::new(),
        }));
        groups.insert(group.to_owned(), g.clone());
        Some(g)
    }

    /// The group of a member call; an unknown group means an unknown member.
    fn member_group(&self, group: &str, member_id: &str) -> Result<Arc<Mutex<Group>>> {
        validate_group_id(group)?;
        self.group(group, false)
            .ok_or_else(|| unknown_member(group, member_id))
    }
}

/// [`Error::UnknownTopic`] or [`Error::PartitionOutOfRange`] unless `tp` exists.
fn check_partition_exists(metadata: &dyn TopicMetadata, tp: &TopicPartition) -> Result<()> {
    match metadata.partition_count(&tp.topic) {
        None => Err(Error::UnknownTopic {
            topic: tp.topic.clone(),
        }),
        Some(count) if tp.partition >= count => Err(Error::PartitionOutOfRange {
            topic: tp.topic.clone(),
            partition: tp.partition,
            partition_count: count,
        }),
        Some(_) => Ok(()),
    }
}

const NOT_A_MEMBER: &str = "not a member of the group (it left or its session timed out)";

/// An [`Error::FencedCommit`].
fn fenced(
    group: &str,
    member_id: &str,
    generation: u64,
    group_generation: u64,
    not_owned: Option<TopicPartition>,
    reason: &'static str,
) -> Error {
    Error::FencedCommit {
        group: group.to_owned(),
        member_id: member_id.to_owned(),
        generation,
        group_generation,
        not_owned,
        reason,
    }
}

fn unknown_member(group: &str, member_id: &str) -> Error {
    Error::UnknownMember {
        group: group.to_owned(),
        member_id: member_id.to_owned(),
    }
}

/// The partition counts of every topic in `subscriptions` that exists, from `metadata`.
fn current_counts(subscriptions: &Subscriptions, metadata: &dyn TopicMetadata) -> PartitionCounts {
    let topics: BTreeSet<&String> = subscriptions.values().flatten().collect();
    topics
        .into_iter()
        .filter_map(|t| metadata.partition_count(t).map(|n| (t.clone(), n)))
        .collect()
}

/// The assignment `assignor` computes for `subscriptions` and `counts`, checked against the
/// [`Assignor`] contract; [`Error::AssignorContract`] for a broken one. Changes nothing.
fn plan(
    group: &str,
    assignor: &dyn Assignor,
    subscriptions: &Subscriptions,
    counts: &PartitionCounts,
    previous: &Assignment,
) -> Result<Assignment> {
    let assignment = assignor.assign(subscriptions, counts, previous);
    check_assignment(subscriptions, counts, &assignment).map_err(|v| v.into_error(group))?;
    Ok(assignment)
}

impl Group {
    /// Expire members silent for longer than their session timeout at `now`, releasing their
    /// partitions and rebalancing if any was removed. Returns the removed ids.
    fn expire(&mut self, group: &str, now: Instant) -> Vec<String> {
        let expired: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| now.saturating_duration_since(m.last_seen) > m.session_timeout)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &expired {
            self.remove(id);
        }
        if !expired.is_empty() {
            // Without metadata at hand, keep the counts the assignment was made from; the
            // next member call refreshes them. A broken assignor's error has nobody to go to
            // (no caller caused the expiry): the group keeps its assignment, and the next
            // heartbeat or sync tries again (`refresh`).
            let counts = self.partition_counts.clone();
            let _ = self.reassign(group, counts);
        }
        expired
    }

    /// Expire others, then check `member_id` is a member and mark it alive at `now`.
    fn touch(&mut self, group: &str, member_id: &str, now: Instant) -> Result<()> {
        self.expire(group, now);
        let Some(member) = self.members.get_mut(member_id) else {
            return Err(self.missing(group, member_id));
        };
        member.last_seen = member.last_seen.max(now);
        Ok(())
    }

    /// The error for a call by `member_id`, not a member: [`Error::FencedInstanceId`] if a
    /// newer incarnation of its static instance replaced it, else [`Error::UnknownMember`].
    fn missing(&self, group: &str, member_id: &str) -> Error {
        match self.replaced.get(member_id) {
            Some(instance_id) => Error::FencedInstanceId {
                group: group.to_owned(),
                member_id: member_id.to_owned(),
                instance_id: instance_id.clone(),
            },
            None => unknown_member(group, member_id),
        }
    }

    /// Remove a member and release what it owns. Returns whether it was a member.
    fn remove(&mut self, member_id: &str) -> bool {
        let Some(member) = self.members.remove(member_id) else {
            return false;
        };
        for tp in member.owned {
            self.owners.remove(&tp);
            self.owned_since.remove(&tp);
        }
        true
    }

    /// The member joined with static `instance_id`, if one is in the group.
    fn static_member(&self, instance_id: Option<&str>) -> Option<String> {
        let instance_id = instance_id?;
        self.members
            .iter()
            .find(|(_, m)| m.instance_id.as_deref() == Some(instance_id))
            .map(|(id, _)| id.clone())
    }

    /// Replace static member `old` by `new` without a rebalance: `new` inherits `old`'s entry
    /// of the assignment and generation; `old`'s partitions are released for `new`'s first
    /// sync to take (nobody else is assigned them). With a changed subscription the entry is
    /// dropped instead, so the caller's `refresh` sees a stale assignment and rebalances.
    fn replace_static(&mut self, old: &str, new: String, config: MemberConfig, now: Instant) {
        let same_topics = self
            .members
            .get(old)
            .is_some_and(|m| m.topics == config.topics);
        self.remove(old);
        if let Some(instance_id) = &config.group_instance_id {
            self.replaced.insert(old.to_owned(), instance_id.clone());
            if self.replaced.len() > GROUP_MEMBERS_MAX {
                self.replaced.pop_first(); // forget an arbitrary old incarnation
            }
        }
        if let Some(assigned) = self.assignment.remove(old) {
            self.assignment.insert(new.clone(), assigned);
        }
        if !same_topics {
            // Mark the assignment stale so that `refresh` rebalances for the new topics.
            self.assignment.remove(&new);
        }
        self.members.insert(
            new,
            Member {
                topics: config.topics,
                instance_id: config.group_instance_id,
                session_timeout: config.session_timeout,
                last_seen: now,
                owned: BTreeSet::new(),
            },
        );
    }

    /// Member id → subscribed topics, for every member.
    fn subscriptions(&self) -> Subscriptions {
        self.members
            .iter()
            .map(|(id, m)| (id.clone(), m.topics.clone()))
            .collect()
    }

    /// Rebalance if the assignment is out of date: a subscribed topic's partition count
    /// changed, or an earlier rebalance failed (the assignment still names members that are
    /// gone). A failure is not reported: the member calling did not cause it, and must be
    /// able to go on polling and committing on the previous assignment.
    fn refresh(&mut self, group: &str, metadata: &dyn TopicMetadata) {
        let counts = current_counts(&self.subscriptions(), metadata);
        let stale = !self.assignment.keys().eq(self.members.keys());
        if stale || counts != self.partition_counts {
            let _ = self.reassign(group, counts);
        }
    }

    /// Rebalance with fresh partition counts.
    fn rebalance(&mut self, group: &str, metadata: &dyn TopicMetadata) -> Result<()> {
        let counts = current_counts(&self.subscriptions(), metadata);
        self.reassign(group, counts)
    }

    /// Recompute the assignment for the members and `counts`; if the assignor keeps its
    /// contract, bump the generation and apply it, else change nothing and return
    /// [`Error::AssignorContract`].
    fn reassign(&mut self, group: &str, counts: PartitionCounts) -> Result<()> {
        let assignment = if self.members.is_empty() {
            Assignment::new()
        } else {
            let assignor = self
                .assignor
                .as_deref()
                .expect("a group with members has an assignor");
            plan(
                group,
                assignor,
                &self.subscriptions(),
                &counts,
                &self.assignment,
            )?
        };
        self.apply(counts, assignment);
        Ok(())
    }

    /// Start a new generation with `assignment`, computed from `counts` and valid for the
    /// current members.
    fn apply(&mut self, counts: PartitionCounts, assignment: Assignment) {
        self.generation += 1;
        self.partition_counts = counts;
        self.assignment = assignment;
    }

    /// Hand `member_id` every free partition of its assignment; report the rest.
    fn sync(&mut self, member_id: &str) -> MemberSync {
        let target = self.assignment.get(member_id).cloned().unwrap_or_default();
        let mut assigned = Vec::new();
        let mut pending = Vec::new();
        for tp in &target {
            match self.owners.get(tp) {
                None => {
                    self.owners.insert(tp.clone(), member_id.to_owned());
                    self.owned_since.insert(tp.clone(), self.generation);
                    assigned.push(tp.clone());
                }
                Some(owner) if owner != member_id => pending.push(tp.clone()),
                Some(_) => {}
            }
        }
        let member = self.members.get_mut(member_id).expect("touched");
        member.owned.extend(assigned.iter().cloned());
        let to_revoke = member.owned.difference(&target).cloned().collect();
        debug_assert!(self.check_ownership());
        MemberSync {
            generation: self.generation,
            assigned,
            to_revoke,
            owned: self.members[member_id].owned.iter().cloned().collect(),
            pending,
        }
    }

    /// Whether `member_id` (a member) may commit `offsets` with `generation`; see
    /// [`GroupCoordinator::commit`].
    fn check_commit(
        &self,
        group: &str,
        member_id: &str,
        generation: u64,
        offsets: &[(TopicPartition, CommittedOffset)],
    ) -> Result<()> {
        let refuse = |tp: Option<&TopicPartition>, reason| {
            fenced(
                group,
                member_id,
                generation,
                self.generation,
                tp.cloned(),
                reason,
            )
        };
        if generation > self.generation {
            return Err(refuse(None, "generation ahead of the group's"));
        }
        for (tp, _) in offsets {
            if self.owners.get(tp).is_none_or(|o| o != member_id) {
                return Err(refuse(Some(tp), "partition not owned by the member"));
            }
            if self
                .owned_since
                .get(tp)
                .is_some_and(|&since| generation < since)
            {
                return Err(refuse(
                    Some(tp),
                    "stale generation: the partition was handed over again since",
                ));
            }
        }
        Ok(())
    }

    /// `owners` and the members' `owned` sets describe the same one-owner map.
    fn check_ownership(&self) -> bool {
        let total: usize = self.members.values().map(|m| m.owned.len()).sum();
        total == self.owners.len()
            && self.owners.keys().eq(self.owned_since.keys())
            && self.members.iter().all(|(id, m)| {
                m.owned
                    .iter()
                    .all(|tp| self.owners.get(tp).is_some_and(|o| o == id))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::offset_store::MemoryOffsetStore;

    fn coordinator(partitions: u32) -> GroupCoordinator {
        GroupCoordinator::new(
            Arc::new(MemoryOffsetStore::new()),
            Arc::new(move |t: &str| (t == "t").then_some(partitions)),
        )
    }

    #[test]
    fn hand_over_waits_for_release() {
        let c = coordinator(2);
        let a = c.join("g", MemberConfig::new(["t"])).unwrap();
        let s = c.sync("g", &a).unwrap();
        assert_eq!(s.assigned.len(), 2);
        let b = c.join("g", MemberConfig::new(["t"])).unwrap();
        let sb = c.sync("g", &b).unwrap();
        assert!(sb.assigned.is_empty(), "a still owns both");
        assert_eq!(sb.pending.len(), 1);
        let sa = c.sync("g", &a).unwrap();
        assert_eq!(sa.to_revoke, sb.pending);
        c.release("g", &a, &sa.to_revoke).unwrap();
        let sb = c.sync("g", &b).unwrap();
        assert_eq!(sb.assigned, sa.to_revoke);
        assert!(sb.pending.is_empty());
    }
}
