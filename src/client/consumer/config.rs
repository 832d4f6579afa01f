//! [`ConsumerConfig`] and [`AutoOffsetReset`].

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::group::assignor::Assignor;
use crate::group::coordinator::{MemberConfig, SESSION_TIMEOUT_MAX};
use crate::group::offset_store::validate_group_id;
use crate::group::sticky::StickyAssignor;

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

/// Configuration of a [`Consumer`](super::Consumer). Build it from [`ConsumerConfig::default`] and the
/// `with_*` methods; [`Consumer::new`](super::Consumer::new) validates it.
#[derive(Clone)]
#[non_exhaustive]
pub struct ConsumerConfig {
    /// Policy for positions with no commit or outside the log. Default
    /// [`AutoOffsetReset::Latest`] (as Kafka).
    pub auto_offset_reset: AutoOffsetReset,
    /// Commit positions automatically: in `poll`, once `auto_commit_interval` has passed since
    /// the previous automatic commit; before giving up partitions in a rebalance; and in
    /// [`close`](super::Consumer::close). Default `true` (as Kafka). A refused or failed
    /// automatic commit is the error of the `poll`, `unsubscribe` or `close` that ran it
    /// (Kafka only logs it): the application learns that records after its last commit will
    /// be delivered again.
    pub enable_auto_commit: bool,
    /// Interval of automatic commits. Zero commits on every `poll`. Default 5 s.
    pub auto_commit_interval: Duration,
    /// Bytes read from one partition at a time (at least one whole batch is read even when it
    /// is larger). Batches read beyond what `max_records` takes are kept, undecoded, for the
    /// next `poll` (a seek drops them). Between 1 and 64 MiB; default 1 MiB.
    pub fetch_max_bytes: usize,
    /// With several partitions, the longest time `poll` waits on one of them before checking
    /// the others (see [`Consumer`](super::Consumer)'s "Waiting"). Between 1 ms and 1 s; default 10 ms.
    pub poll_slice: Duration,
    /// Longest time a waiting group member goes without a coordinator call (which heartbeats
    /// and applies rebalances); a third of `session_timeout` if that is shorter. Between 1 ms
    /// and [`SESSION_TIMEOUT_MAX`]; default 100 ms.
    pub heartbeat_interval: Duration,
    /// Group for [`commit`](super::Consumer::commit) and [`committed`](super::Consumer::committed) with a
    /// manual assignment (Kafka's `group.id` for a standalone consumer: commits are not
    /// fenced). Ignored by [`subscribe`](super::Consumer::subscribe), which names its group. Default
    /// `None`.
    pub group_id: Option<String>,
    /// Group membership: see [`MemberConfig::session_timeout`]. A subscribed consumer
    /// heartbeats from a background thread every `heartbeat_interval` (a third of this if
    /// shorter), so processing for longer than the session timeout does not lose partitions
    /// while the process is alive; `max_poll_interval` bounds the time between polls. Default
    /// 45 s.
    pub session_timeout: Duration,
    /// Longest time between two `poll`s of a subscribed consumer (Kafka's
    /// `max.poll.interval.ms`): past it, the background heartbeat leaves the group, so the
    /// partitions of a stuck consumer go to others; the next `poll` rejoins (calling
    /// `on_lost`). Between 1 ms and [`SESSION_TIMEOUT_MAX`] × 24; default 5 minutes (Kafka's).
    pub max_poll_interval: Duration,
    /// Group membership: see [`MemberConfig::assignor`]. Default [`StickyAssignor`].
    pub assignor: Arc<dyn Assignor>,
    /// Group membership: see [`MemberConfig::client_id`]. Default `"consumer"`.
    pub client_id: String,
    /// Static group membership (Kafka's `group.instance.id`): see
    /// [`MemberConfig::group_instance_id`]. A static member does not leave the group on
    /// `close` or `unsubscribe` (it commits and calls `on_revoked` as usual): its partitions
    /// wait, owned, until a consumer with the same instance id joins again (and gets them
    /// back without a rebalance) or the session times out. Default `None`.
    pub group_instance_id: Option<String>,
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
            .field("max_poll_interval", &self.max_poll_interval)
            .field("group_id", &self.group_id)
            .field("session_timeout", &self.session_timeout)
            .field("assignor", &self.assignor.name())
            .field("client_id", &self.client_id)
            .field("group_instance_id", &self.group_instance_id)
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
            max_poll_interval: Duration::from_secs(5 * 60),
            assignor: Arc::new(StickyAssignor),
            client_id: member.client_id,
            group_instance_id: None,
        }
    }
}

/// Largest accepted [`ConsumerConfig::fetch_max_bytes`].
pub const FETCH_MAX_BYTES_LIMIT: usize = 64 << 20;

// The validation message states this value: keep them in step.
const _: () = assert!(FETCH_MAX_BYTES_LIMIT == 64 << 20);

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
    /// Sets `max_poll_interval`.
    pub fn with_max_poll_interval(mut self, v: Duration) -> Self {
        self.max_poll_interval = v;
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
    /// Sets `group_instance_id`.
    pub fn with_group_instance_id(mut self, v: impl Into<String>) -> Self {
        self.group_instance_id = Some(v.into());
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
                "must be between 1 byte and 64 MiB (FETCH_MAX_BYTES_LIMIT)",
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
            || self.heartbeat_interval > SESSION_TIMEOUT_MAX
        {
            return Err(Error::config(
                "heartbeat_interval",
                format!("{:?}", self.heartbeat_interval),
                "must be between 1 ms and 1 h (SESSION_TIMEOUT_MAX)",
            ));
        }
        if self.max_poll_interval < Duration::from_millis(1)
            || self.max_poll_interval > SESSION_TIMEOUT_MAX * 24
        {
            return Err(Error::config(
                "max_poll_interval",
                format!("{:?}", self.max_poll_interval),
                "must be between 1 ms and 24 h",
            ));
        }
        if let Some(group) = &self.group_id {
            validate_group_id(group)?;
        }
        self.member_config(BTreeSet::new()).validate()
    }

    /// The member configuration of a subscription to `topics`.
    pub(super) fn member_config(&self, topics: BTreeSet<String>) -> MemberConfig {
        MemberConfig {
            topics,
            session_timeout: self.session_timeout,
            assignor: self.assignor.clone(),
            client_id: self.client_id.clone(),
            group_instance_id: self.group_instance_id.clone(),
        }
    }
}
