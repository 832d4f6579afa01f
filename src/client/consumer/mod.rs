//! [`Consumer`]: reads records from partitions, tracks positions, commits offsets, and shares
//! work inside a consumer group. Split by concern: configuration ([`config`]), the record
//! type ([`record`]), the rebalance listener ([`listener`]), group membership and automatic
//! commits ([`membership`]), fetching and waiting ([`fetch`]).

mod config;
mod control;
mod fetch;
mod heartbeat;
mod listener;
mod membership;
mod record;

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::format::batch::Batch;
use crate::format::decode::Records;
use crate::group::coordinator::GroupCoordinator;
use crate::group::offset_store::CommittedOffset;
use crate::log::partition::Partition;
use crate::offset::{Offset, TopicPartition};
use crate::topic::store::{LogStore, StoreHandle};

pub use config::{AutoOffsetReset, ConsumerConfig, FETCH_MAX_BYTES_LIMIT};
pub use control::{CommitCallback, Waker};
pub use listener::RebalanceListener;
pub use record::ConsumerRecord;

/// Reads records from partitions of a [`LogStore`]'s topics and tracks its position in each.
///
/// A consumer either [`assign`](Consumer::assign)s itself partitions (manual, no group
/// membership) or [`subscribe`](Consumer::subscribe)s to topics as a member of a group run by
/// a [`GroupCoordinator`], which decides what it owns. [`poll`](Consumer::poll) returns
/// records after the consumer's *position* in each partition and advances it; commits store
/// positions in the coordinator's [`OffsetStore`](crate::OffsetStore), where a restarted
/// consumer (or the next owner of a partition) resumes.
///
/// Not `Sync`: one consumer per thread, like Kafka's. It holds the store's topics open, not
/// the store: once the `LogStore` is closed, polls fail.
///
/// A consumer is idle, manually assigned, or a group member; [`unsubscribe`] returns it to
/// idle. Dropping it does what [`close`] does, ignoring errors.
///
/// # Delivery semantics: where to commit
///
/// A committed offset is the next offset to consume (Kafka's convention).
/// - **At most once**: commit *before* processing what `poll` returned. A crash while
///   processing skips the rest of those records.
/// - **At least once**: commit *after* processing (or leave auto-commit on: it commits, at
///   the start of a later `poll`, positions of records returned by earlier polls). A crash
///   after processing and before the commit delivers those records again.
/// - **Exactly once**: store the results and the offsets in one transaction of the same
///   database, through an [`OffsetStore`](crate::OffsetStore) implemented over it; see
///   `examples/exactly_once.rs`.
///
/// # Waiting
///
/// `poll` waits with [`Partition::wait_for`], which sleeps on the partition's condition
/// variable and wakes on appends: no busy loop. A partition offers no way to wait on several
/// at once, so with more than one partition `poll` waits on them in turn, one
/// [`ConsumerConfig::poll_slice`] at a time, and checks all of them after each slice: a
/// record appended to a partition being waited on wakes the consumer at once, one appended
/// elsewhere within one slice. A group member also wakes at least every
/// [`ConsumerConfig::heartbeat_interval`] to stay in the group and take part in rebalances.
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
    /// Shared with the consumer's [`Waker`]s.
    wake: Arc<control::WakeState>,
    /// Commits asked for by `commit_async`, run by the next poll.
    pending_commits: Vec<(Vec<(TopicPartition, CommittedOffset)>, CommitCallback)>,
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
    /// The background heartbeat; `None` if its thread could not start.
    heartbeat: Option<heartbeat::Heartbeat>,
}

struct PartState {
    tp: TopicPartition,
    topic: Arc<str>,
    partition: Arc<Partition>,
    /// Next offset to return; `None` until resolved (a pending seek, the commit or the reset
    /// policy).
    position: Option<Offset>,
    /// A `seek_to_beginning` / `seek_to_end` not resolved yet: the next `poll` (or
    /// `position`) reads the log start or the high watermark at that moment.
    pending_seek: Option<SeekTarget>,
    /// The offset this consumer last committed or read as committed: auto-commit skips
    /// partitions whose position still equals it.
    committed: Option<Offset>,
    /// Paused by [`Consumer::pause`]: `poll` neither returns nor waits for its records.
    paused: bool,
    /// Read ahead: the batch being returned (records below `position` are skipped) and the
    /// batches read after it, not decoded yet. Cleared by a seek.
    read_ahead: ReadAhead,
}

/// Where a lazy seek goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SeekTarget {
    Beginning,
    End,
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
            wake: Arc::default(),
            pending_commits: Vec::new(),
        })
    }

    /// An idle consumer of `store`'s topics that belongs to no shared group coordinator: for
    /// tail-following and manual [`assign`](Self::assign)ment, which need none (Kafka's
    /// consumer without `group.id`). Positions start where `auto_offset_reset` says (or where
    /// [`seek`](Self::seek) puts them). It gets a private coordinator with a
    /// [`MemoryOffsetStore`](crate::MemoryOffsetStore): commits (with `config.group_id`) last
    /// as long as this consumer, and [`subscribe`](Self::subscribe) forms a group of one. Use
    /// [`new`](Self::new) to share committed offsets and groups. Fails if `config` is invalid.
    pub fn standalone(store: &LogStore, config: ConsumerConfig) -> Result<Self> {
        let offsets = Arc::new(crate::group::offset_store::MemoryOffsetStore::new());
        let groups = Arc::new(GroupCoordinator::for_store(store, offsets));
        Self::new(store, groups, config)
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
        let heartbeat = heartbeat::Heartbeat::start(
            self.groups.clone(),
            group,
            &member_id,
            self.config
                .heartbeat_interval
                .min(self.config.session_timeout / 3),
            self.config.max_poll_interval,
        );
        self.mode = Mode::Group(Membership {
            group: group.to_owned(),
            topics,
            member_id,
            generation: 0,
            listener,
            heartbeat,
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
    /// waits (see "Waiting" above) and tries again until `timeout` has passed, then returns an
    /// empty `Vec`. Positions advance past every record returned.
    ///
    /// Paused partitions ([`pause`](Self::pause)) are skipped. Commits queued by
    /// [`commit_async`](Self::commit_async) run first, calling their callbacks.
    ///
    /// Errors: `max_records == 0` ([`Error::InvalidConfig`]); an idle consumer or a call from
    /// a listener ([`Error::InvalidConsumerState`]); [`Error::Wakeup`] once a [`Waker`] woke
    /// the consumer (at once while waiting); the `auto_offset_reset` policy `Error`
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
        if let Mode::Group(Membership {
            heartbeat: Some(h), ..
        }) = &self.mode
        {
            h.polled();
        }
        self.wake.check()?;
        self.run_pending_commits();
        loop {
            self.group_step()?;
            self.maybe_auto_commit()?;
            let out = self.fetch(max_records)?;
            let elapsed = start.elapsed();
            if !out.is_empty() || elapsed >= timeout {
                return Ok(out);
            }
            self.wait(timeout.saturating_sub(elapsed));
            self.wake.check()?;
        }
    }

    /// Set the position of `tp` to `offset`: the next `poll` returns records from there. An
    /// offset outside the log is handled by `auto_offset_reset` at the next fetch.
    /// [`Error::PartitionNotAssigned`] if the consumer does not own `tp`.
    pub fn seek(&mut self, tp: &TopicPartition, offset: Offset) -> Result<()> {
        let part = self.part_mut(tp)?;
        part.position = Some(offset);
        part.pending_seek = None;
        part.read_ahead.clear();
        Ok(())
    }

    /// Seek `tp` to its log start offset (the oldest record kept), lazily as Kafka does: the
    /// log start is read at the next [`poll`](Self::poll) or [`position`](Self::position),
    /// so retention that runs in between moves the seek with it.
    /// [`Error::PartitionNotAssigned`] if the consumer does not own `tp`.
    pub fn seek_to_beginning(&mut self, tp: &TopicPartition) -> Result<()> {
        self.seek_lazily(tp, SeekTarget::Beginning)
    }

    /// Seek `tp` to its high watermark (after the last record), lazily as Kafka does: the
    /// high watermark is read at the next [`poll`](Self::poll) or
    /// [`position`](Self::position), so records appended between this call and that one are
    /// skipped too. [`Error::PartitionNotAssigned`] if the consumer does not own `tp`.
    pub fn seek_to_end(&mut self, tp: &TopicPartition) -> Result<()> {
        self.seek_lazily(tp, SeekTarget::End)
    }

    fn seek_lazily(&mut self, tp: &TopicPartition, target: SeekTarget) -> Result<()> {
        let part = self.part_mut(tp)?;
        part.position = None;
        part.pending_seek = Some(target);
        part.read_ahead.clear();
        Ok(())
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
    /// [`GroupCoordinator::commit`]): it succeeds for the partitions the consumer owns, even
    /// after members joined or left since its last `poll`, and fails with
    /// [`Error::FencedCommit`] once the consumer was removed from the group.
    pub fn commit(&mut self) -> Result<()> {
        self.run_pending_commits();
        let offsets = self.positions();
        self.commit_offsets(&offsets)
    }

    /// Commit `offsets` (each the next offset to consume, with metadata). As a group member
    /// the commit is fenced: every partition must be owned and the generation current, or
    /// [`Error::FencedCommit`]. With a manual assignment it goes to `config.group_id` through
    /// [`GroupCoordinator::commit_unmanaged`]: refused with [`Error::GroupNotEmpty`] while
    /// that group has members, and with [`Error::UnknownTopic`] /
    /// [`Error::PartitionOutOfRange`] for a partition that does not exist. Without a group it
    /// is [`Error::InvalidConsumerState`]. An empty list does nothing.
    pub fn commit_offsets(&mut self, offsets: &[(TopicPartition, CommittedOffset)]) -> Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        if let Mode::Group(m) = &self.mode {
            self.groups
                .commit(&m.group, &m.member_id, m.generation, offsets)?;
        } else {
            let group = self
                .config
                .group_id
                .as_deref()
                .ok_or_else(|| state_error("no group: subscribe or set config.group_id"))?;
            self.groups.commit_unmanaged(group, offsets)?;
        }
        for (tp, committed) in offsets {
            if let Some(p) = self.parts.iter_mut().find(|p| &p.tp == tp) {
                p.committed = Some(committed.offset);
            }
        }
        Ok(())
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
            pending_seek: None,
            paused: false,
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
