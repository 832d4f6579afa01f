//! Consumers: read records from partitions, track positions, commit offsets, and share work
//! inside a consumer group.
//!
//! A [`Consumer`] either [`assign`](Consumer::assign)s itself partitions (manual, no group
//! membership) or [`subscribe`](Consumer::subscribe)s to topics as a member of a group run by a
//! [`GroupCoordinator`], which decides what it owns. [`poll`](Consumer::poll) returns records
//! after the consumer's *position* in each partition and advances it; commits store positions
//! in the coordinator's [`OffsetStore`], where a restarted consumer (or the next owner of a
//! partition) resumes.
//!
//! # Delivery semantics: where to commit
//!
//! A committed offset is the next offset to consume (Kafka's convention).
//! - **At most once**: commit *before* processing what `poll` returned. A crash while
//!   processing skips the rest of those records.
//! - **At least once**: commit *after* processing (or leave auto-commit on: it commits, at the
//!   start of a later `poll`, positions of records returned by earlier polls). A crash after
//!   processing and before the commit delivers those records again.
//! - **Exactly once**: store the results and the offsets in one transaction of the same
//!   database, through an [`OffsetStore`] implemented over it; see
//!   `examples/exactly_once.rs`.
//!
//! # Waiting
//!
//! `poll` waits with [`Partition::wait_for`], which sleeps on the partition's condition
//! variable and wakes on appends: no busy loop. A partition offers no way to wait on several
//! at once, so with more than one partition `poll` waits on them in turn, one
//! [`ConsumerConfig::poll_slice`] at a time, and checks all of them after each slice: a record
//! appended to a partition being waited on wakes the consumer at once, one appended elsewhere
//! within one slice. A group member also wakes at least every
//! [`ConsumerConfig::heartbeat_interval`] to stay in the group and take part in rebalances.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::format::batch::{Batch, Records};
use crate::format::record::Header;
use crate::group::assignor::{Assignor, StickyAssignor};
use crate::group::coordinator::{GroupCoordinator, MemberConfig};
use crate::group::offset_store::{CommittedOffset, OffsetStore};
use crate::log::partition::{Partition, ReadBatches};
use crate::offset::{Offset, TopicPartition};
use crate::topic::store::{LogStore, StoreHandle};

/// What a consumer does for a partition that has no committed offset, or whose position is
/// outside the log (below the log start after retention, or past the end).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AutoOffsetReset {
    /// Start from the log start offset: every record still kept.
    Earliest,
    /// Start from the high watermark: only records appended from now on. Kafka's default.
    #[default]
    Latest,
    /// Fail the `poll` (or `position`) with [`Error::NoOffsetForPartition`] (no commit) or
    /// [`Error::OffsetOutOfRange`] (position outside the log).
    Error,
}

/// Configuration of a [`Consumer`]. Build it from [`ConsumerConfig::default`] and the
/// `with_*` methods; [`Consumer::new`] validates it.
#[derive(Clone)]
#[non_exhaustive]
pub struct ConsumerConfig {
    /// Policy for positions with no commit or outside the log. Default
    /// [`AutoOffsetReset::Latest`] (as Kafka).
    pub auto_offset_reset: AutoOffsetReset,
    /// Commit positions automatically: in `poll`, once `auto_commit_interval` has passed since
    /// the previous automatic commit; before giving up partitions in a rebalance; and in
    /// [`close`](Consumer::close). Default `true` (as Kafka).
    pub enable_auto_commit: bool,
    /// Interval of automatic commits. Zero commits on every `poll`. Default 5 s.
    pub auto_commit_interval: Duration,
    /// Bytes read from one partition at a time (at least one whole batch is read even when it
    /// is larger). Batches read beyond what `max_records` takes are kept, undecoded, for the
    /// next `poll` (a seek drops them). Between 1 and 64 MiB; default 1 MiB.
    pub fetch_max_bytes: usize,
    /// With several partitions, the longest time `poll` waits on one of them before checking
    /// the others (see the module docs). Between 1 ms and 1 s; default 10 ms.
    pub poll_slice: Duration,
    /// Longest time a waiting group member goes without a coordinator call (which heartbeats
    /// and applies rebalances); a third of `session_timeout` if that is shorter. Between 1 ms
    /// and [`SESSION_TIMEOUT_MAX`](crate::SESSION_TIMEOUT_MAX); default 100 ms.
    pub heartbeat_interval: Duration,
    /// Group for [`commit`](Consumer::commit) and [`committed`](Consumer::committed) with a
    /// manual assignment (Kafka's `group.id` for a standalone consumer: commits are not
    /// fenced). Ignored by [`subscribe`](Consumer::subscribe), which names its group. Default
    /// `None`.
    pub group_id: Option<String>,
    /// Group membership: see [`MemberConfig::session_timeout`]. Default 45 s.
    pub session_timeout: Duration,
    /// Group membership: see [`MemberConfig::assignor`]. Default [`StickyAssignor`].
    pub assignor: Arc<dyn Assignor>,
    /// Group membership: see [`MemberConfig::client_id`]. Default `"consumer"`.
    pub client_id: String,
}

impl std::fmt::Debug for ConsumerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerConfig")
            .field("auto_offset_reset", &self.auto_offset_reset)
            .field("enable_auto_commit", &self.enable_auto_commit)
            .field("auto_commit_interval", &self.auto_commit_interval)
            .field("fetch_max_bytes", &self.fetch_max_bytes)
            .field("poll_slice", &self.poll_slice)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("group_id", &self.group_id)
            .field("session_timeout", &self.session_timeout)
            .field("assignor", &self.assignor.name())
            .field("client_id", &self.client_id)
            .finish()
    }
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        let member = MemberConfig::default();
        ConsumerConfig {
            auto_offset_reset: AutoOffsetReset::default(),
            enable_auto_commit: true,
            auto_commit_interval: Duration::from_secs(5),
            fetch_max_bytes: 1 << 20,
            poll_slice: Duration::from_millis(10),
            heartbeat_interval: Duration::from_millis(100),
            group_id: None,
            session_timeout: member.session_timeout,
            assignor: Arc::new(StickyAssignor),
            client_id: member.client_id,
        }
    }
}

/// Largest accepted [`ConsumerConfig::fetch_max_bytes`].
pub const FETCH_MAX_BYTES_LIMIT: usize = 64 << 20;

impl ConsumerConfig {
    /// Sets `auto_offset_reset`.
    pub fn with_auto_offset_reset(mut self, v: AutoOffsetReset) -> Self {
        self.auto_offset_reset = v;
        self
    }
    /// Sets `enable_auto_commit`.
    pub fn with_auto_commit(mut self, v: bool) -> Self {
        self.enable_auto_commit = v;
        self
    }
    /// Sets `auto_commit_interval`.
    pub fn with_auto_commit_interval(mut self, v: Duration) -> Self {
        self.auto_commit_interval = v;
        self
    }
    /// Sets `fetch_max_bytes`.
    pub fn with_fetch_max_bytes(mut self, v: usize) -> Self {
        self.fetch_max_bytes = v;
        self
    }
    /// Sets `poll_slice`.
    pub fn with_poll_slice(mut self, v: Duration) -> Self {
        self.poll_slice = v;
        self
    }
    /// Sets `heartbeat_interval`.
    pub fn with_heartbeat_interval(mut self, v: Duration) -> Self {
        self.heartbeat_interval = v;
        self
    }
    /// Sets `group_id`.
    pub fn with_group_id(mut self, v: impl Into<String>) -> Self {
        self.group_id = Some(v.into());
        self
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

    /// Check every field; the first bad one is returned as an error.
    pub fn validate(&self) -> Result<()> {
        if !(1..=FETCH_MAX_BYTES_LIMIT).contains(&self.fetch_max_bytes) {
            return Err(Error::config(
                "fetch_max_bytes",
                self.fetch_max_bytes,
                "must be between 1 and FETCH_MAX_BYTES_LIMIT",
            ));
        }
        if !(Duration::from_millis(1)..=Duration::from_secs(1)).contains(&self.poll_slice) {
            return Err(Error::config(
                "poll_slice",
                format!("{:?}", self.poll_slice),
                "must be between 1 ms and 1 s",
            ));
        }
        if self.heartbeat_interval < Duration::from_millis(1)
            || self.heartbeat_interval > crate::group::coordinator::SESSION_TIMEOUT_MAX
        {
            return Err(Error::config(
                "heartbeat_interval",
                format!("{:?}", self.heartbeat_interval),
                "must be between 1 ms and SESSION_TIMEOUT_MAX",
            ));
        }
        if let Some(group) = &self.group_id {
            crate::group::offset_store::validate_group_id(group)?;
        }
        self.member_config(BTreeSet::new()).validate()
    }

    fn member_config(&self, topics: BTreeSet<String>) -> MemberConfig {
        MemberConfig {
            topics,
            session_timeout: self.session_timeout,
            assignor: self.assignor.clone(),
            client_id: self.client_id.clone(),
        }
    }
}

/// A record returned by [`Consumer::poll`]: where it is and what it holds. Key, value and
/// header bytes are slices of the buffers read from the log (no per-record copy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// The topic; shared between the records of one partition (an `Arc`, not a `String` per
    /// record).
    pub topic: Arc<str>,
    /// The partition number.
    pub partition: u32,
    /// The record's offset in its partition.
    pub offset: Offset,
    /// The record's timestamp, in milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// The key.
    pub key: Option<Bytes>,
    /// The value; `None` for a tombstone.
    pub value: Option<Bytes>,
    /// The headers.
    pub headers: Vec<Header>,
}

impl ConsumerRecord {
    /// The record's topic and partition.
    pub fn topic_partition(&self) -> TopicPartition {
        TopicPartition::new(&*self.topic, self.partition)
    }
}

/// Callbacks on changes of a group member's partitions, Kafka's
/// `ConsumerRebalanceListener`. Every method defaults to doing nothing.
///
/// They run inside [`Consumer::poll`] (and `close`/`unsubscribe` for `on_revoked`), on the
/// polling thread, with the consumer itself as an argument: a listener may
/// [`commit`](Consumer::commit), [`commit_offsets`](Consumer::commit_offsets),
/// [`seek`](Consumer::seek) and query positions, but `poll`, `assign`, `subscribe`,
/// `unsubscribe` fail there with [`Error::InvalidConsumerState`].
///
/// Partitions change hands in two steps (see [`GroupCoordinator`]): `on_revoked` runs while
/// the consumer still owns the partitions, so a commit made in it is the one the next owner
/// starts from; ownership is given up right after it returns.
pub trait RebalanceListener: Send {
    /// The consumer is about to give up `partitions` (a rebalance moved them, or the consumer
    /// is leaving). Commit what was processed here. With auto-commit on, the consumer has
    /// already committed their positions when this runs.
    fn on_revoked(&mut self, consumer: &mut Consumer, partitions: &[TopicPartition]) {
        let _ = (consumer, partitions);
    }

    /// The consumer now owns `partitions`, in addition to those it kept. Their positions
    /// resolve at the next fetch (committed offset, else `auto_offset_reset`) unless set here
    /// with a `seek`.
    fn on_assigned(&mut self, consumer: &mut Consumer, partitions: &[TopicPartition]) {
        let _ = (consumer, partitions);
    }

    /// The consumer lost `partitions` without a chance to commit: it was removed from the
    /// group (session timeout) and other members may already own them. The consumer then
    /// joins the group again as a new member. Unlike Kafka's default, this does not call
    /// `on_revoked`: commits for lost partitions would be fenced anyway.
    fn on_lost(&mut self, consumer: &mut Consumer, partitions: &[TopicPartition]) {
        let _ = (consumer, partitions);
    }
}

/// Reads records from partitions of a [`LogStore`]'s topics and tracks its position in each.
///
/// Not `Sync`: one consumer per thread, like Kafka's. It holds the store's topics open, not
/// the store: once the `LogStore` is closed, polls fail.
///
/// A consumer is idle, manually assigned, or a group member; [`unsubscribe`] returns it to
/// idle. Dropping it does what [`close`] does, ignoring errors.
///
/// [`unsubscribe`]: Consumer::unsubscribe
/// [`close`]: Consumer::close
pub struct Consumer {
    store: StoreHandle,
    groups: Arc<GroupCoordinator>,
    config: ConsumerConfig,
    mode: Mode,
    /// Owned or assigned partitions, sorted by partition.
    parts: Vec<PartState>,
    /// Where the next fetch starts (round-robin over `parts`).
    next_fetch: usize,
    /// Which partition the next wait sleeps on.
    next_wait: usize,
    last_auto_commit: Instant,
    in_callback: bool,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("mode", &self.mode)
            .field("assignment", &self.assignment())
            .finish_non_exhaustive()
    }
}

enum Mode {
    Idle,
    Manual,
    Group(Membership),
}

impl std::fmt::Debug for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mode::Idle => f.write_str("Idle"),
            Mode::Manual => f.write_str("Manual"),
            Mode::Group(m) => f
                .debug_struct("Group")
                .field("group", &m.group)
                .field("member_id", &m.member_id)
                .field("generation", &m.generation)
                .finish(),
        }
    }
}

struct Membership {
    group: String,
    topics: BTreeSet<String>,
    member_id: String,
    generation: u64,
    listener: Option<Box<dyn RebalanceListener>>,
}

struct PartState {
    tp: TopicPartition,
    topic: Arc<str>,
    partition: Arc<Partition>,
    /// Next offset to return; `None` until resolved (commit or reset policy).
    position: Option<Offset>,
    /// The offset this consumer last committed or read as committed: auto-commit skips
    /// partitions whose position still equals it.
    committed: Option<Offset>,
    /// Read ahead: the batch being returned (records below `position` are skipped) and the
    /// batches read after it, not decoded yet. Cleared by a seek.
    read_ahead: ReadAhead,
}

#[derive(Default)]
struct ReadAhead {
    current: Option<Records>,
    batches: VecDeque<Batch>,
}

impl ReadAhead {
    fn clear(&mut self) {
        self.current = None;
        self.batches.clear();
    }
}

#[derive(Clone, Copy)]
enum Callback {
    Revoked,
    Assigned,
    Lost,
}

impl Consumer {
    /// An idle consumer of `store`'s topics whose group membership and commits go through
    /// `groups`. Fails if `config` is invalid.
    pub fn new(
        store: &LogStore,
        groups: Arc<GroupCoordinator>,
        config: ConsumerConfig,
    ) -> Result<Self> {
        config.validate()?;
        Ok(Consumer {
            store: store.handle(),
            groups,
            config,
            mode: Mode::Idle,
            parts: Vec::new(),
            next_fetch: 0,
            next_wait: 0,
            last_auto_commit: Instant::now(),
            in_callback: false,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ConsumerConfig {
        &self.config
    }

    /// Consume exactly `partitions` (manual assignment, no group membership), replacing any
    /// previous manual assignment; positions of partitions kept are kept. Errors:
    /// [`Error::InvalidConsumerState`] while subscribed to a group (unsubscribe first) or in
    /// a listener callback; [`Error::UnknownTopic`] / [`Error::PartitionOutOfRange`] for a
    /// partition that does not exist (nothing changes then).
    pub fn assign(&mut self, partitions: Vec<TopicPartition>) -> Result<()> {
        self.check_not_in_callback()?;
        if matches!(self.mode, Mode::Group(_)) {
            return Err(state_error(
                "subscribed to a group: unsubscribe before assigning",
            ));
        }
        let wanted: BTreeSet<TopicPartition> = partitions.into_iter().collect();
        // Open the new partitions first: if one fails, nothing has changed.
        let mut opened = Vec::new();
        for tp in &wanted {
            if !self.parts.iter().any(|p| &p.tp == tp) {
                opened.push(self.open_partition(tp.clone())?);
            }
        }
        let mut next = Vec::with_capacity(wanted.len());
        for tp in wanted {
            if let Some(i) = self.parts.iter().position(|p| p.tp == tp) {
                next.push(self.parts.swap_remove(i));
            }
        }
        next.extend(opened);
        next.sort_by(|a, b| a.tp.cmp(&b.tp));
        self.parts = next;
        self.mode = Mode::Manual;
        Ok(())
    }

    /// Join `group` as a member consuming `topics` (which may not exist yet). Partitions
    /// arrive on the following polls. A consumer already in a group leaves it first (see
    /// [`unsubscribe`](Self::unsubscribe)). Errors: [`Error::InvalidConsumerState`] with a
    /// manual assignment or in a listener callback; the coordinator's
    /// [`join`](GroupCoordinator::join) errors.
    pub fn subscribe<I, S>(&mut self, group: &str, topics: I) -> Result<()>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.subscribe_inner(group, topics.into_iter().map(Into::into).collect(), None)
    }

    /// [`subscribe`](Self::subscribe) with a [`RebalanceListener`].
    pub fn subscribe_with_listener<I, S>(
        &mut self,
        group: &str,
        topics: I,
        listener: Box<dyn RebalanceListener>,
    ) -> Result<()>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.subscribe_inner(
            group,
            topics.into_iter().map(Into::into).collect(),
            Some(listener),
        )
    }

    fn subscribe_inner(
        &mut self,
        group: &str,
        topics: BTreeSet<String>,
        listener: Option<Box<dyn RebalanceListener>>,
    ) -> Result<()> {
        self.check_not_in_callback()?;
        if matches!(self.mode, Mode::Manual) {
            return Err(state_error(
                "manually assigned: unsubscribe before subscribing to a group",
            ));
        }
        if matches!(self.mode, Mode::Group(_)) {
            self.shutdown()?;
        }
        let member_id = self
            .groups
            .join(group, self.config.member_config(topics.clone()))?;
        self.mode = Mode::Group(Membership {
            group: group.to_owned(),
            topics,
            member_id,
            generation: 0,
            listener,
        });
        Ok(())
    }

    /// Leave the group (after an automatic commit if enabled, and `on_revoked` for every
    /// owned partition) or drop the manual assignment. The consumer is idle afterwards.
    /// Returns the first error met; the consumer is idle regardless.
    pub fn unsubscribe(&mut self) -> Result<()> {
        self.check_not_in_callback()?;
        self.shutdown()
    }

    /// Commit (if auto-commit is on) and leave, like [`unsubscribe`](Self::unsubscribe).
    pub fn close(mut self) -> Result<()> {
        self.shutdown()
    }

    /// The partitions the consumer owns (group) or was assigned (manual), sorted.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.parts.iter().map(|p| p.tp.clone()).collect()
    }

    /// The group this consumer commits to: its subscription's, else `config.group_id`.
    pub fn group_id(&self) -> Option<&str> {
        match &self.mode {
            Mode::Group(m) => Some(&m.group),
            _ => self.config.group_id.as_deref(),
        }
    }

    /// The member id, while subscribed.
    pub fn member_id(&self) -> Option<&str> {
        match &self.mode {
            Mode::Group(m) => Some(&m.member_id),
            _ => None,
        }
    }

    /// The group generation the consumer last saw (0 before its first poll), while
    /// subscribed.
    pub fn generation(&self) -> Option<u64> {
        match &self.mode {
            Mode::Group(m) => Some(m.generation),
            _ => None,
        }
    }

    /// Return up to `max_records` records, waiting up to `timeout` for the first one.
    ///
    /// Each call first takes part in the group (heartbeat; revoke, commit and release
    /// partitions that moved away, calling the listener; take over newly assigned ones) and
    /// runs a due automatic commit. It then fetches from the partitions in turn, starting after
    /// the one the previous call ended on, and returns as soon as it has records; otherwise it
    /// waits (see the module docs) and tries again until `timeout` has passed, then returns an
    /// empty `Vec`. Positions advance past every record returned.
    ///
    /// Errors: `max_records == 0` ([`Error::InvalidConfig`]); an idle consumer or a call from
    /// a listener ([`Error::InvalidConsumerState`]); the `auto_offset_reset` policy `Error`
    /// ([`Error::NoOffsetForPartition`], [`Error::OffsetOutOfRange`]); read errors
    /// ([`Error::Corrupt`], I/O).
    pub fn poll(&mut self, max_records: usize, timeout: Duration) -> Result<Vec<ConsumerRecord>> {
        self.check_not_in_callback()?;
        if max_records == 0 {
            return Err(Error::config("max_records", 0, "must be at least 1"));
        }
        if matches!(self.mode, Mode::Idle) {
            return Err(state_error("neither assigned nor subscribed"));
        }
        let start = Instant::now();
        loop {
            self.group_step()?;
            self.maybe_auto_commit()?;
            let out = self.fetch(max_records)?;
            let elapsed = start.elapsed();
            if !out.is_empty() || elapsed >= timeout {
                return Ok(out);
            }
            self.wait(timeout - elapsed);
        }
    }

    /// Set the position of `tp` to `offset`: the next `poll` returns records from there. An
    /// offset outside the log is handled by `auto_offset_reset` at the next fetch.
    /// [`Error::PartitionNotAssigned`] if the consumer does not own `tp`.
    pub fn seek(&mut self, tp: &TopicPartition, offset: Offset) -> Result<()> {
        let part = self.part_mut(tp)?;
        part.position = Some(offset);
        part.read_ahead.clear();
        Ok(())
    }

    /// Seek `tp` to its log start offset (the oldest record kept). Returns the offset.
    pub fn seek_to_beginning(&mut self, tp: &TopicPartition) -> Result<Offset> {
        let offset = self.part_mut(tp)?.partition.log_start_offset();
        self.seek(tp, offset)?;
        Ok(offset)
    }

    /// Seek `tp` to its high watermark (after the last record). Returns the offset.
    pub fn seek_to_end(&mut self, tp: &TopicPartition) -> Result<Offset> {
        let offset = self.part_mut(tp)?.partition.high_watermark();
        self.seek(tp, offset)?;
        Ok(offset)
    }

    /// Seek `tp` to the first record with a timestamp at or after `timestamp_ms`
    /// ([`Partition::offset_for_timestamp`]), or to the end if there is none. Returns the
    /// offset.
    pub fn seek_to_timestamp(&mut self, tp: &TopicPartition, timestamp_ms: i64) -> Result<Offset> {
        let partition = self.part_mut(tp)?.partition.clone();
        let offset = match partition.offset_for_timestamp(timestamp_ms)? {
            Some(offset) => offset,
            None => partition.high_watermark(),
        };
        self.seek(tp, offset)?;
        Ok(offset)
    }

    /// The offset of the next record `poll` returns from `tp`, resolving it first if needed
    /// (committed offset, else `auto_offset_reset`). [`Error::PartitionNotAssigned`] if the
    /// consumer does not own `tp`.
    pub fn position(&mut self, tp: &TopicPartition) -> Result<Offset> {
        let i = self.index_of(tp)?;
        self.resolve(i)
    }

    /// How far `tp`'s position is behind its high watermark (0 when caught up or past it).
    /// Resolves the position like [`position`](Self::position).
    pub fn lag(&mut self, tp: &TopicPartition) -> Result<u64> {
        let i = self.index_of(tp)?;
        let position = self.resolve(i)?;
        let hw = self.parts[i].partition.high_watermark();
        Ok(hw.get().saturating_sub(position.get()))
    }

    /// The offset the consumer's group last committed for `tp` (any partition, owned or not),
    /// or `None`. [`Error::InvalidConsumerState`] without a group (see
    /// [`group_id`](Self::group_id)).
    pub fn committed(&self, tp: &TopicPartition) -> Result<Option<CommittedOffset>> {
        let group = self
            .group_id()
            .ok_or_else(|| state_error("no group: subscribe or set config.group_id"))?;
        self.groups.offset_store().fetch(group, tp)
    }

    /// Commit the position of every owned (or assigned) partition whose position is known,
    /// synchronously: when this returns `Ok`, the commit is in the offset store with that
    /// store's durability. As a group member the commit is fenced (see
    /// [`GroupCoordinator::commit`]): after a rebalance it fails with
    /// [`Error::FencedCommit`] until the next `poll`.
    pub fn commit(&mut self) -> Result<()> {
        let offsets: Vec<(TopicPartition, CommittedOffset)> = self
            .parts
            .iter()
            .filter_map(|p| p.position.map(|o| (p.tp.clone(), CommittedOffset::new(o))))
            .collect();
        self.commit_offsets(&offsets)
    }

    /// Commit `offsets` (each the next offset to consume, with metadata). As a group member
    /// the commit is fenced: every partition must be owned and the generation current, or
    /// [`Error::FencedCommit`]. With a manual assignment it goes to `config.group_id`
    /// unfenced; without a group it is [`Error::InvalidConsumerState`]. An empty list does
    /// nothing.
    pub fn commit_offsets(&mut self, offsets: &[(TopicPartition, CommittedOffset)]) -> Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        match &self.mode {
            Mode::Group(m) => self
                .groups
                .commit(&m.group, &m.member_id, m.generation, offsets)?,
            _ => {
                let group = self
                    .config
                    .group_id
                    .as_deref()
                    .ok_or_else(|| state_error("no group: subscribe or set config.group_id"))?;
                self.groups.offset_store().commit(group, offsets)?;
            }
        }
        for (tp, committed) in offsets {
            if let Some(p) = self.parts.iter_mut().find(|p| &p.tp == tp) {
                p.committed = Some(committed.offset);
            }
        }
        Ok(())
    }

    // ----- group membership -----

    /// Heartbeat and apply the coordinator's view: revoke (auto-commit, callback, release),
    /// then take over new partitions (callback). Rejoins after being removed.
    fn group_step(&mut self) -> Result<()> {
        let Mode::Group(m) = &self.mode else {
            return Ok(());
        };
        let (group, member_id) = (m.group.clone(), m.member_id.clone());
        let sync = match self.groups.sync(&group, &member_id) {
            Ok(sync) => sync,
            Err(Error::UnknownMember { .. }) => {
                self.rejoin()?;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        if let Mode::Group(m) = &mut self.mode {
            m.generation = sync.generation;
        }
        if !sync.to_revoke.is_empty() {
            let revoke = sync.to_revoke.clone();
            if self.config.enable_auto_commit {
                self.commit_changed(Some(&revoke))?;
            }
            self.callback(Callback::Revoked, &revoke);
            self.parts.retain(|p| !revoke.contains(&p.tp));
            match self.groups.release(&group, &member_id, &revoke) {
                Ok(()) => {}
                Err(Error::UnknownMember { .. }) => return self.rejoin(),
                Err(e) => return Err(e),
            }
        }
        if !sync.assigned.is_empty() {
            let mut added = Vec::new();
            for tp in &sync.assigned {
                // A topic deleted since the assignment: the next sync revokes it.
                if let Ok(part) = self.open_partition(tp.clone()) {
                    added.push(tp.clone());
                    self.parts.push(part);
                }
            }
            self.parts.sort_by(|a, b| a.tp.cmp(&b.tp));
            self.callback(Callback::Assigned, &added);
        }
        let owned: BTreeSet<&TopicPartition> = sync
            .owned
            .iter()
            .filter(|tp| !sync.to_revoke.contains(tp))
            .collect();
        self.parts.retain(|p| owned.contains(&p.tp));
        Ok(())
    }

    /// After removal by the coordinator: report the partitions lost, join again.
    fn rejoin(&mut self) -> Result<()> {
        let lost: Vec<TopicPartition> = self.assignment();
        self.parts.clear();
        if !lost.is_empty() {
            self.callback(Callback::Lost, &lost);
        }
        let Mode::Group(m) = &self.mode else {
            return Ok(());
        };
        let (group, topics) = (m.group.clone(), m.topics.clone());
        let member_id = self
            .groups
            .join(&group, self.config.member_config(topics))?;
        if let Mode::Group(m) = &mut self.mode {
            m.member_id = member_id;
            m.generation = 0;
        }
        Ok(())
    }

    fn callback(&mut self, which: Callback, partitions: &[TopicPartition]) {
        if partitions.is_empty() {
            return;
        }
        let Mode::Group(m) = &mut self.mode else {
            return;
        };
        let Some(mut listener) = m.listener.take() else {
            return;
        };
        self.in_callback = true;
        match which {
            Callback::Revoked => listener.on_revoked(self, partitions),
            Callback::Assigned => listener.on_assigned(self, partitions),
            Callback::Lost => listener.on_lost(self, partitions),
        }
        self.in_callback = false;
        if let Mode::Group(m) = &mut self.mode {
            m.listener = Some(listener);
        }
    }

    /// Leave the group or drop the manual assignment; idle afterwards.
    fn shutdown(&mut self) -> Result<()> {
        let mut result = Ok(());
        if let Mode::Group(m) = &mut self.mode {
            // Ownership only changes through this consumer's own polls (or its removal), so
            // what it holds is still its own: commit with the current generation even if a
            // rebalance happened since the last poll. The coordinator still checks ownership.
            if let Ok(generation) = self.groups.heartbeat(&m.group, &m.member_id) {
                m.generation = generation;
            }
        }
        if self.config.enable_auto_commit && self.group_id().is_some() {
            result = self.commit_changed(None);
        }
        if let Mode::Group(m) = &self.mode {
            let (group, member_id) = (m.group.clone(), m.member_id.clone());
            let owned = self.assignment();
            self.callback(Callback::Revoked, &owned);
            match self.groups.leave(&group, &member_id) {
                Ok(()) | Err(Error::UnknownMember { .. }) => {}
                Err(e) => result = result.and(Err(e)),
            }
        }
        self.mode = Mode::Idle;
        self.parts.clear();
        result
    }

    // ----- commits -----

    /// Commit positions that moved since their last commit, of `only` partitions or all.
    /// A commit fenced by a concurrent rebalance is skipped: those records will be delivered
    /// again (at least once).
    fn commit_changed(&mut self, only: Option<&[TopicPartition]>) -> Result<()> {
        let offsets: Vec<(TopicPartition, CommittedOffset)> = self
            .parts
            .iter()
            .filter(|p| only.is_none_or(|o| o.contains(&p.tp)))
            .filter_map(|p| match p.position {
                Some(o) if p.committed != Some(o) => Some((p.tp.clone(), CommittedOffset::new(o))),
                _ => None,
            })
            .collect();
        match self.commit_offsets(&offsets) {
            Ok(()) | Err(Error::FencedCommit { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn maybe_auto_commit(&mut self) -> Result<()> {
        if !self.config.enable_auto_commit
            || self.group_id().is_none()
            || self.last_auto_commit.elapsed() < self.config.auto_commit_interval
        {
            return Ok(());
        }
        self.last_auto_commit = Instant::now();
        self.commit_changed(None)
    }

    // ----- fetching -----

    /// Take up to `max_records` from the partitions, round-robin.
    fn fetch(&mut self, max_records: usize) -> Result<Vec<ConsumerRecord>> {
        let n = self.parts.len();
        let mut out = Vec::with_capacity(max_records.min(4096));
        // Where each partition stood, so that a failure returns nothing and loses nothing.
        let mut before = Vec::new();
        for k in 0..n {
            let i = (self.next_fetch + k) % n;
            before.push((i, self.parts[i].position));
            if let Err(e) = self.fill(i, max_records - out.len(), &mut out) {
                for (j, position) in before {
                    let part = &mut self.parts[j];
                    part.position = position;
                    part.read_ahead.clear();
                }
                return Err(e);
            }
            if out.len() == max_records {
                self.next_fetch = (i + 1) % n;
                return Ok(out);
            }
        }
        if n > 0 {
            self.next_fetch = (self.next_fetch + 1) % n;
        }
        Ok(out)
    }

    /// Move up to `want` records of partition `i` into `out`: from what was read ahead, else
    /// from one new read. Batches are decoded as records are returned, straight into `out`.
    fn fill(&mut self, i: usize, want: usize, out: &mut Vec<ConsumerRecord>) -> Result<()> {
        let mut position = self.resolve(i)?;
        let mut taken = 0;
        let mut read_once = false;
        while taken < want {
            let part = &mut self.parts[i];
            if let Some(records) = &mut part.read_ahead.current {
                match records.next() {
                    Some(Ok(r)) if r.offset < position => {}
                    Some(Ok(r)) => {
                        position = r.offset.next();
                        part.position = Some(position);
                        out.push(ConsumerRecord {
                            topic: part.topic.clone(),
                            partition: part.tp.partition,
                            offset: r.offset,
                            timestamp_ms: r.timestamp_ms,
                            key: r.key,
                            value: r.value,
                            headers: r.headers,
                        });
                        taken += 1;
                    }
                    Some(Err(e)) => {
                        // Read again from the position next time (and meet the error again)
                        // rather than skip the rest of the batch.
                        part.read_ahead.clear();
                        return Err(e);
                    }
                    None => part.read_ahead.current = None,
                }
                continue;
            }
            if let Some(batch) = part.read_ahead.batches.pop_front() {
                part.read_ahead.current = Some(batch.records());
                continue;
            }
            if read_once || taken > 0 {
                break;
            }
            read_once = true;
            let Some(read) = self.read_at(i, position)? else {
                break;
            };
            let part = &mut self.parts[i];
            if read.is_empty() {
                // Nothing up to the high watermark the read saw (compaction can leave such a
                // gap at the end of the log): move past it rather than read it again and again.
                part.position = Some(read.next_offset());
                break;
            }
            position = part.position.expect("resolved");
            part.read_ahead
                .batches
                .extend(read.batches().iter().cloned());
        }
        Ok(())
    }

    /// Read from `position`; a position outside the log is reset by policy and read again.
    /// `None` if the log moved out of range again in between (the next poll retries).
    fn read_at(&mut self, i: usize, position: Offset) -> Result<Option<ReadBatches>> {
        let max_bytes = self.config.fetch_max_bytes;
        match self.parts[i].partition.read(position, max_bytes) {
            Err(Error::OffsetOutOfRange {
                offset,
                log_start_offset,
                high_watermark,
            }) => {
                let reset = match self.config.auto_offset_reset {
                    AutoOffsetReset::Earliest => log_start_offset,
                    AutoOffsetReset::Latest => high_watermark,
                    AutoOffsetReset::Error => {
                        return Err(Error::OffsetOutOfRange {
                            offset,
                            log_start_offset,
                            high_watermark,
                        })
                    }
                };
                self.parts[i].position = Some(reset);
                match self.parts[i].partition.read(reset, max_bytes) {
                    Err(Error::OffsetOutOfRange { .. }) => Ok(None),
                    other => other.map(Some),
                }
            }
            other => other.map(Some),
        }
    }

    /// The position of partition `i`, resolving it from the committed offset or the reset
    /// policy if unknown.
    fn resolve(&mut self, i: usize) -> Result<Offset> {
        if let Some(position) = self.parts[i].position {
            return Ok(position);
        }
        let committed = match self.group_id() {
            Some(group) => self
                .groups
                .offset_store()
                .fetch(group, &self.parts[i].tp)?
                .map(|c| c.offset),
            None => None,
        };
        let part = &mut self.parts[i];
        let position = match (committed, self.config.auto_offset_reset) {
            (Some(offset), _) => {
                part.committed = Some(offset);
                offset
            }
            (None, AutoOffsetReset::Earliest) => part.partition.log_start_offset(),
            (None, AutoOffsetReset::Latest) => part.partition.high_watermark(),
            (None, AutoOffsetReset::Error) => {
                return Err(Error::NoOffsetForPartition {
                    topic_partition: part.tp.clone(),
                })
            }
        };
        part.position = Some(position);
        Ok(position)
    }

    /// Sleep until data may have arrived, at most `remaining`; see the module docs.
    fn wait(&mut self, remaining: Duration) {
        // Bounded so that `Instant + slice` cannot overflow; `poll` loops for longer timeouts.
        let mut slice = remaining.min(Duration::from_secs(60));
        if matches!(self.mode, Mode::Group(_)) {
            slice = slice
                .min(self.config.heartbeat_interval)
                .min(self.config.session_timeout / 3);
        }
        if self.parts.len() > 1 {
            slice = slice.min(self.config.poll_slice);
        }
        let target = if self.parts.is_empty() {
            None
        } else {
            let i = self.next_wait % self.parts.len();
            self.next_wait = self.next_wait.wrapping_add(1);
            let p = &self.parts[i];
            p.position.map(|o| (p.partition.clone(), o))
        };
        let start = Instant::now();
        let woken = target.is_some_and(|(partition, offset)| partition.wait_for(offset, slice));
        // `wait_for` returns early without data only for a closed partition: sleep out the
        // slice rather than spin.
        if !woken {
            if let Some(rest) = slice.checked_sub(start.elapsed()) {
                std::thread::sleep(rest);
            }
        }
    }

    // ----- helpers -----

    fn open_partition(&self, tp: TopicPartition) -> Result<PartState> {
        let topic = self.store.topic(&tp.topic)?;
        let partition = topic.partition(tp.partition)?;
        Ok(PartState {
            topic: Arc::from(tp.topic.as_str()),
            tp,
            partition,
            position: None,
            committed: None,
            read_ahead: ReadAhead::default(),
        })
    }

    fn index_of(&self, tp: &TopicPartition) -> Result<usize> {
        self.parts
            .binary_search_by(|p| p.tp.cmp(tp))
            .map_err(|_| Error::PartitionNotAssigned {
                topic_partition: tp.clone(),
            })
    }

    fn part_mut(&mut self, tp: &TopicPartition) -> Result<&mut PartState> {
        let i = self.index_of(tp)?;
        Ok(&mut self.parts[i])
    }

    fn check_not_in_callback(&self) -> Result<()> {
        if self.in_callback {
            return Err(state_error("not allowed in a rebalance listener"));
        }
        Ok(())
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        if !matches!(self.mode, Mode::Idle) {
            let _ = self.shutdown();
        }
    }
}

fn state_error(reason: &'static str) -> Error {
    Error::InvalidConsumerState { reason }
}
