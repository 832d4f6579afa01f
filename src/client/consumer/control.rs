//! Flow control from the application: pausing and resuming partitions, waking a blocked
//! `poll` from another thread ([`Waker`]), and asynchronous commits with a callback.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::client::consumer::Consumer;
use crate::error::{Error, Result};
use crate::group::offset_store::CommittedOffset;
use crate::log::partition::Partition;
use crate::offset::TopicPartition;

/// What [`Consumer::commit_async`] calls with the commit's outcome.
pub type CommitCallback = Box<dyn FnOnce(Result<()>) + Send>;

/// Wakes a [`Consumer`]'s blocked (or next) [`poll`](Consumer::poll), which then fails with
/// [`Error::Wakeup`] — Kafka's `KafkaConsumer.wakeup()`. Get one with
/// [`Consumer::waker`]; it is `Send + Sync + Clone`, the one handle another thread may use
/// while the consumer's own thread polls (the consumer itself is not `Sync`).
#[derive(Clone)]
pub struct Waker(pub(super) Arc<WakeState>);

impl std::fmt::Debug for Waker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waker")
            .field("woken", &self.0.woken.load(Ordering::Acquire))
            .finish()
    }
}

impl Waker {
    /// Make the consumer's current `poll` return [`Error::Wakeup`] at once, or its next one
    /// if none is running. Several calls before that poll count as one.
    pub fn wakeup(&self) {
        let state = &self.0;
        state.woken.store(true, Ordering::Release);
        {
            let _g = state.sleep.lock();
            state.sleep_cond.notify_all();
        }
        if let Some(partition) = state.target.lock().clone() {
            partition.wake_waiters();
        }
    }
}

/// Shared between a consumer and its [`Waker`]s.
#[derive(Default)]
pub(super) struct WakeState {
    woken: AtomicBool,
    /// The partition `poll` is waiting on, if any.
    target: Mutex<Option<Arc<Partition>>>,
    /// For waits without a partition.
    sleep: Mutex<()>,
    sleep_cond: Condvar,
}

impl WakeState {
    /// Consume a pending wakeup: [`Error::Wakeup`] if there was one.
    pub(super) fn check(&self) -> Result<()> {
        if self.woken.swap(false, Ordering::AcqRel) {
            return Err(Error::Wakeup);
        }
        Ok(())
    }

    /// Wait on `partition` for a record at `offset` for at most `slice`, or until woken.
    /// Returns whether data arrived.
    pub(super) fn wait_on(
        &self,
        partition: &Arc<Partition>,
        offset: crate::offset::Offset,
        slice: Duration,
    ) -> bool {
        *self.target.lock() = Some(partition.clone());
        let arrived = partition.wait_for_or_wake(offset, slice, &self.woken);
        *self.target.lock() = None;
        arrived
    }

    /// Sleep for `slice` unless woken.
    pub(super) fn sleep(&self, slice: Duration) {
        let mut g = self.sleep.lock();
        if !self.woken.load(Ordering::Acquire) {
            self.sleep_cond.wait_for(&mut g, slice);
        }
    }
}

impl Consumer {
    /// Stop returning records of `partitions` from [`poll`](Self::poll) until they are
    /// [`resume`](Self::resume)d (Kafka's `pause`). Positions are kept; a group member keeps
    /// owning them and stays in the group. A partition given up in a rebalance and assigned
    /// again later starts unpaused. [`Error::PartitionNotAssigned`] (nothing paused) if one
    /// of them is not assigned to the consumer.
    pub fn pause(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        self.set_paused(partitions, true)
    }

    /// Return records of `partitions` again (Kafka's `resume`); not paused ones are ignored.
    /// [`Error::PartitionNotAssigned`] (nothing resumed) if one is not assigned.
    pub fn resume(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        self.set_paused(partitions, false)
    }

    /// The paused partitions, sorted.
    pub fn paused(&self) -> BTreeSet<TopicPartition> {
        self.parts
            .iter()
            .filter(|p| p.paused)
            .map(|p| p.tp.clone())
            .collect()
    }

    fn set_paused(&mut self, partitions: &[TopicPartition], paused: bool) -> Result<()> {
        let indexes = partitions
            .iter()
            .map(|tp| self.index_of(tp))
            .collect::<Result<Vec<usize>>>()?;
        for i in indexes {
            self.parts[i].paused = paused;
        }
        Ok(())
    }

    /// A handle that wakes this consumer's blocked `poll` from another thread; see
    /// [`Waker`].
    pub fn waker(&self) -> Waker {
        Waker(self.wake.clone())
    }

    /// Commit the current positions (as [`commit`](Self::commit) would) without waiting for
    /// the offset store: the positions are taken now, written at the start of the next
    /// [`poll`](Self::poll) (or by the next `commit`, `unsubscribe` or `close`), and
    /// `callback` is called there, on the consumer's thread, with the outcome — as Kafka
    /// calls `commitAsync` callbacks from `poll`. Commits run in the order they were asked
    /// for. Nothing to commit calls `callback(Ok(()))` at that point too.
    pub fn commit_async(&mut self, callback: impl FnOnce(Result<()>) + Send + 'static) {
        let offsets = self.positions();
        self.pending_commits.push((offsets, Box::new(callback)));
    }

    /// Run the commits [`commit_async`](Self::commit_async) queued, calling their callbacks.
    pub(super) fn run_pending_commits(&mut self) {
        for (offsets, callback) in std::mem::take(&mut self.pending_commits) {
            let result = self.commit_offsets(&offsets);
            callback(result);
        }
    }

    /// The known position of every owned or assigned partition, as commit entries.
    pub(super) fn positions(&self) -> Vec<(TopicPartition, CommittedOffset)> {
        self.parts
            .iter()
            .filter_map(|p| p.position.map(|o| (p.tp.clone(), CommittedOffset::new(o))))
            .collect()
    }
}
