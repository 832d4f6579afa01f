//! Group commit: one thread fsyncs on behalf of every appender waiting for durability.
//!
//! Leader and followers. An appender that needs its batch durable (`sync_to`) returns at once
//! if the durable end already covers it. Otherwise, if no fsync is running it becomes the
//! *leader*: it may wait a moment for appenders on their way (`gather`), then captures the log
//! end and fsyncs everything written up to there without holding `writer`. If an fsync is
//! running, it becomes a *follower*: it queues itself (its target offset and its thread) and
//! parks; it takes no lock while parked, and when it is released only its own slot's relay
//! lock (to pass the wake-up on, see `relay_durable`), never `sync`.
//!
//! When the fsync ends, the leader publishes the new durable end (readers see those batches
//! now). Of the followers that wrote after it captured the log end it wakes the oldest one
//! first, which becomes the next leader at once and covers all the others (and whoever wrote
//! meanwhile) with one fsync. Then it tells exactly the followers it covered, as a tree: it
//! wakes two, each of which wakes two more before returning, and so on, so the wake-ups (a
//! futex call each, and often a context switch as the woken thread preempts its waker) are
//! spread over the woken threads instead of stalling the leader one after the other. A failed
//! fsync fences the partition and wakes every follower: those it covered, and the later ones,
//! fail with [`Error::PreviousIoFailed`] (the leader with the fsync's own error); no append
//! is acknowledged that the failed fsync was meant to cover.
//!
//! Appenders signal a gathering leader only when the count it waits for is reached, so a
//! leader wakes once per fsync, not once per appender.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::Thread;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::error::{Error, IoContext, Result};
use crate::io::checkpoint;
use crate::log::config::Durability;

use super::state::Position;
use super::{Appended, Partition, RECOVERY_POINT_FILE};

/// The longest a leader waits for appenders before its fsync.
const GATHER_MAX: Duration = Duration::from_millis(2);
/// `GroupCommit::gather_target` when no leader is gathering.
const NOT_GATHERING: u64 = u64::MAX;

/// The group-commit state of a partition (its `sync` lock and what hangs off it).
pub(super) struct GroupCommit {
    state: Mutex<SyncState>,
    /// A gathering leader waits on this; the appender that completes its count signals it.
    gathered: Condvar,
    /// The pending-append count a gathering leader waits for, or `NOT_GATHERING`.
    gather_target: AtomicU64,
}

impl GroupCommit {
    pub(super) fn new() -> GroupCommit {
        GroupCommit {
            state: Mutex::new(SyncState::default()),
            gathered: Condvar::new(),
            gather_target: AtomicU64::new(NOT_GATHERING),
        }
    }

    /// Take the `sync` lock (the durable end changes only with it held).
    pub(super) fn lock(&self) -> MutexGuard<'_, SyncState> {
        self.state.lock()
    }
}

/// Guarded by the `sync` lock.
#[derive(Default)]
pub(super) struct SyncState {
    /// A thread is fsyncing (or holds the slot, see `claim_sync_slot`); others queue.
    syncing: bool,
    /// Appends the last fsync covered, and how long it took: a leader about to fsync for
    /// concurrent appenders waits a little for them (see `gather`).
    last_covered: u64,
    last_sync: Duration,
    /// Followers parked until an fsync covers their target, in arrival order.
    waiters: Vec<Waiter>,
    #[cfg(feature = "testing")]
    stats: GroupCommitStats,
}

impl SyncState {
    /// The followers to wake after an fsync that made everything below `end` durable: first
    /// the oldest one it did not cover, to lead the next fsync while the others are being
    /// woken (and any `claim_sync_slot` waiting for the slot), then those it covered, told so.
    fn take_covered(&mut self, end: u64) -> Vec<(Arc<Slot>, u8)> {
        let mut wake = Vec::with_capacity(self.waiters.len());
        let mut covered = Vec::with_capacity(self.waiters.len());
        let mut leader_found = false;
        self.waiters.retain(|w| {
            if w.target <= end {
                covered.push((w.slot.clone(), DURABLE));
                false
            } else if w.target == CLAIM || !leader_found {
                leader_found |= w.target != CLAIM;
                wake.push((w.slot.clone(), RECHECK));
                false
            } else {
                true
            }
        });
        wake.append(&mut covered);
        wake
    }

    /// Every follower, to check again (the partition failed, or the slot was released).
    fn take_all(&mut self) -> Vec<(Arc<Slot>, u8)> {
        std::mem::take(&mut self.waiters)
            .into_iter()
            .map(|w| (w.slot, RECHECK))
            .collect()
    }
}

/// A queued follower.
struct Waiter {
    /// Its batch ends below this offset.
    target: u64,
    slot: Arc<Slot>,
}

/// The target of a `claim_sync_slot` waiting for the slot: no fsync covers it.
const CLAIM: u64 = u64::MAX;
/// Still parked.
const WAITING: u8 = 0;
/// An fsync covered the follower's batch: it returns `Ok` at once.
const DURABLE: u8 = 1;
/// Look again under the lock: lead the next fsync, wait again, or fail.
const RECHECK: u8 = 2;

/// Where a parked follower learns its outcome.
struct Slot {
    thread: Thread,
    state: AtomicU8,
    /// Covered followers this one wakes in turn once woken (see `relay_durable`).
    relay: Mutex<Vec<Arc<Slot>>>,
}

impl Slot {
    fn new() -> Slot {
        Slot {
            thread: std::thread::current(),
            state: AtomicU8::new(WAITING),
            relay: Mutex::new(Vec::new()),
        }
    }

    /// Park until woken (`park` may return spuriously, or for an older `unpark`).
    fn wait(&self) -> u8 {
        loop {
            let state = self.state.load(Ordering::Acquire);
            if state != WAITING {
                return state;
            }
            std::thread::park();
        }
    }

    fn wake(&self, state: u8) {
        self.state.store(state, Ordering::Release);
        self.thread.unpark();
    }
}

/// Wake `slots`: those to look again at once, in order (the next leader first), the covered
/// ones as a tree (`relay_durable`).
fn wake_all(slots: Vec<(Arc<Slot>, u8)>) {
    let mut durable = Vec::new();
    for (slot, state) in slots {
        if state == DURABLE {
            durable.push(slot);
        } else {
            slot.wake(state);
        }
    }
    relay_durable(durable);
}

/// Tell covered followers so, as a tree: wake the first of each half of `slots`, handing it
/// the rest of its half to wake the same way once it runs. The wake-ups (a futex call each,
/// and a context switch when the woken thread preempts its waker) are then spread over the
/// woken threads rather than made one after the other by the leader.
fn relay_durable(mut slots: Vec<Arc<Slot>>) {
    let second = slots.split_off(slots.len().div_ceil(2));
    for half in [slots, second] {
        let mut rest = half.into_iter();
        if let Some(head) = rest.next() {
            *head.relay.lock() = rest.collect();
            head.wake(DURABLE);
        }
    }
}

/// Group-commit counters of a partition (feature `testing`): how many fsyncs the appenders'
/// and flushes' group commit made, and how many appends they covered.
#[cfg(feature = "testing")]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupCommitStats {
    /// fsyncs made by `sync_to` (appends under a syncing policy, `flush`, `flush_if_due`).
    pub fsyncs: u64,
    /// Appends those fsyncs covered.
    pub appends: u64,
}

impl Partition {
    /// After the append lock is released: wake readers, fsync if the policy says so.
    pub(super) fn after_append(&self, appended: &Appended) -> Result<()> {
        if self.config.durability != Durability::SyncEachAppend {
            self.notify_waiters();
        }
        // Only an append that started an epoch writes the checkpoint; whoever else changes
        // the cache writes it too, and `sync_now` does before the recovery point passes.
        if appended.new_epoch {
            self.persist_epochs()?;
        }
        if appended.need_sync {
            self.signal_gatherer();
            self.sync_to(appended.end.offset)?;
            if self.truncations.load(Ordering::SeqCst) != appended.truncations {
                return Err(Error::Truncated {
                    offset: appended.info.base_offset,
                });
            }
        }
        Ok(())
    }

    /// Group commit: return once every offset below `target` is on disk (see the module
    /// docs). A follower released by the fsync that covered it does not retake `sync`.
    pub(super) fn sync_to(&self, target: u64) -> Result<()> {
        let mut s = self.sync.lock();
        loop {
            let durable = self.view.read().bounds().durable_end();
            let failed = self.failed.load(Ordering::Acquire);
            if durable >= target || failed {
                // A thread woken to lead the next fsync that leaves instead must hand the turn
                // on, or the followers queued behind it would wait for an fsync nobody makes:
                // on failure (set by a failed write, say, while an fsync ran) every one of them
                // looks again and fails; otherwise the covered ones go and the oldest other
                // one leads.
                let wake = match (s.syncing, failed) {
                    (true, _) => Vec::new(),
                    (false, true) => s.take_all(),
                    (false, false) => s.take_covered(durable),
                };
                drop(s);
                wake_all(wake);
                return if failed && durable < target {
                    Err(Error::PreviousIoFailed)
                } else {
                    Ok(())
                };
            }
            if !s.syncing {
                break;
            }
            let slot = Arc::new(Slot::new());
            s.waiters.push(Waiter {
                target,
                slot: slot.clone(),
            });
            drop(s);
            if slot.wait() == DURABLE {
                relay_durable(std::mem::take(&mut *slot.relay.lock()));
                return Ok(());
            }
            s = self.sync.lock();
        }
        s.syncing = true;
        self.gather(&mut s);
        drop(s);
        let started = Instant::now();
        let result = self.sync_now();
        let (out, wake) = self.finish_sync(result, started.elapsed());
        wake_all(wake);
        self.notify_waiters();
        out.map(|end| self.notify_durable(end))
    }

    /// The leader's fsync returned `result` after `took`: publish the durable end (or fence
    /// the partition) and release the slot. Returns the durable end and the followers to wake.
    fn finish_sync(
        &self,
        result: Result<(Position, u64)>,
        took: Duration,
    ) -> (Result<u64>, Vec<(Arc<Slot>, u8)>) {
        let mut s = self.sync.lock();
        s.syncing = false;
        s.last_sync = took;
        match result {
            Ok((end, covered)) => {
                s.last_covered = covered;
                #[cfg(feature = "testing")]
                {
                    s.stats.fsyncs += 1;
                    s.stats.appends += covered;
                }
                let publish = self.config.durability == Durability::SyncEachAppend;
                self.publish_durable(end, publish);
                (Ok(end.offset), s.take_covered(end.offset))
            }
            Err(e) => {
                self.failed.store(true, Ordering::Release);
                (Err(e), s.take_all())
            }
        }
    }

    /// Before fsyncing on behalf of concurrent appenders, give those that are on their way
    /// (released by the previous fsync, about to append again) a moment to write, so that one
    /// fsync covers them all instead of alternating between one appender and the rest: wait
    /// until as many appends are pending as the previous fsync covered, at most as long as
    /// that fsync took (capped at `GATHER_MAX`), sleeping on a condition variable so the
    /// appenders get the CPU. The count is of batches: a lone appender of one batch at a time
    /// never waits; one alternating between multi-batch appends and fewer may wait once, at
    /// most the bound above. (Waiting for
    /// the followers still queued too, everyone who was appending, gave bigger groups but
    /// idled a slow disk longer: 32 threads lost about 13% on a loaded machine.)
    fn gather(&self, s: &mut MutexGuard<'_, SyncState>) {
        let target = s.last_covered;
        if target < 2 {
            return;
        }
        let deadline = Instant::now() + s.last_sync.min(GATHER_MAX);
        // SeqCst on both sides (`signal_gatherer`): either the appender sees the target or
        // this sees its pending append.
        self.sync.gather_target.store(target, Ordering::SeqCst);
        while self.pending_appends.load(Ordering::SeqCst) < target {
            if self.sync.gathered.wait_until(s, deadline).timed_out() {
                break;
            }
        }
        self.sync
            .gather_target
            .store(NOT_GATHERING, Ordering::SeqCst);
    }

    /// Called by an appender after its write: the one whose append completes the count a
    /// gathering leader waits for wakes it (only that one: the target is taken).
    fn signal_gatherer(&self) {
        let target = self.sync.gather_target.load(Ordering::SeqCst);
        if target == NOT_GATHERING || self.pending_appends.load(Ordering::SeqCst) < target {
            return;
        }
        let gc = &self.sync;
        if gc
            .gather_target
            .compare_exchange(target, NOT_GATHERING, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            // Under the lock: the leader is either before its check or inside its wait.
            let _s = gc.lock();
            gc.gathered.notify_one();
        }
    }

    /// fsync everything written so far; returns the position it covers and how many appends
    /// that is.
    pub(super) fn sync_now(&self) -> Result<(Position, u64)> {
        let (end, covered, sealed, dir_dirty, files) = {
            let mut w = self.writer.lock();
            let covered = self.pending_appends.swap(0, Ordering::AcqRel);
            w.unsynced_records = 0;
            w.unsynced_bytes = 0;
            w.unsynced_since = None;
            (
                w.position(),
                covered,
                std::mem::take(&mut w.unsynced_sealed),
                std::mem::take(&mut w.dir_dirty),
                w.files.clone(),
            )
        };
        for seg in &sealed {
            seg.sync_log()?;
        }
        files.log.sync_data().at(&self.dir)?;
        if dir_dirty {
            checkpoint::sync_dir_in(&self.config.fs, &self.dir)?;
        }
        if !sealed.is_empty() {
            // The epochs of those segments are on disk before the recovery point passes
            // them: recovery rebuilds the cache only from the recovery point on.
            self.persist_epochs()?;
            // Everything before the active segment is now on disk.
            checkpoint::write(
                &self.config.fs,
                &self.dir.join(RECOVERY_POINT_FILE),
                end.segment_base,
            )?;
        }
        Ok((end, covered))
    }

    /// An fsync covered everything below `end`: record it, and with `publish` let readers see
    /// it. The caller holds `sync` (waiters check the durable end under it).
    pub(super) fn publish_durable(&self, end: Position, publish: bool) {
        let mut v = self.view.write();
        let bounds = v.bounds_mut();
        bounds.advance_durable(end.offset);
        if publish && !self.config.high_watermark_external {
            bounds.advance_high_watermark(end);
        }
    }

    /// Wait until no fsync is running and keep others from starting one until the guard drops.
    pub(super) fn claim_sync_slot(&self) -> SyncSlot<'_> {
        let mut s = self.sync.lock();
        while s.syncing {
            // Queued like a follower that no fsync covers: woken to look again when the
            // running fsync ends.
            let slot = Arc::new(Slot::new());
            s.waiters.push(Waiter {
                target: CLAIM,
                slot: slot.clone(),
            });
            drop(s);
            slot.wait();
            s = self.sync.lock();
        }
        s.syncing = true;
        SyncSlot(self)
    }

    /// The group-commit counters so far (feature `testing`): fsyncs made for appends and
    /// flushes, and the appends they covered.
    #[cfg(feature = "testing")]
    pub fn group_commit_stats(&self) -> GroupCommitStats {
        self.sync.lock().stats
    }
}

/// Holds the group-commit slot (see `claim_sync_slot`); its drop lets every queued follower
/// look again.
pub(super) struct SyncSlot<'a>(&'a Partition);

impl Drop for SyncSlot<'_> {
    fn drop(&mut self) {
        let wake = {
            let mut s = self.0.sync.lock();
            s.syncing = false;
            s.take_all()
        };
        wake_all(wake);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(targets: &[u64]) -> (SyncState, Vec<Arc<Slot>>) {
        let slots: Vec<Arc<Slot>> = targets.iter().map(|_| Arc::new(Slot::new())).collect();
        let waiters = targets
            .iter()
            .zip(&slots)
            .map(|(&target, slot)| Waiter {
                target,
                slot: slot.clone(),
            })
            .collect();
        let s = SyncState {
            waiters,
            ..SyncState::default()
        };
        (s, slots)
    }

    /// Which slots (by index) `wake` holds, with their outcome, in order.
    fn woken(wake: &[(Arc<Slot>, u8)], slots: &[Arc<Slot>]) -> Vec<(usize, u8)> {
        wake.iter()
            .map(|(w, state)| {
                let i = slots.iter().position(|s| Arc::ptr_eq(s, w)).unwrap();
                (i, *state)
            })
            .collect()
    }

    #[test]
    fn an_fsync_wakes_the_next_leader_first_then_exactly_the_followers_it_covered() {
        let (mut s, slots) = state(&[5, 12, CLAIM, 20, 10, 11]);
        let wake = s.take_covered(10);
        assert_eq!(
            woken(&wake, &slots),
            [(1, RECHECK), (2, RECHECK), (0, DURABLE), (4, DURABLE)],
            "the oldest uncovered follower (and a claim) to look again, then those below 10"
        );
        let left: Vec<u64> = s.waiters.iter().map(|w| w.target).collect();
        assert_eq!(left, [20, 11], "the others wait for the next fsync");
    }

    #[test]
    fn an_fsync_covering_everyone_leaves_no_leader_to_wake() {
        let (mut s, slots) = state(&[3, 1, 2]);
        let wake = s.take_covered(3);
        assert_eq!(
            woken(&wake, &slots),
            [(0, DURABLE), (1, DURABLE), (2, DURABLE)]
        );
        assert!(s.waiters.is_empty());
    }

    #[test]
    fn a_failure_wakes_every_follower_to_look_again() {
        let (mut s, slots) = state(&[5, 12, CLAIM]);
        let wake = s.take_all();
        assert_eq!(
            woken(&wake, &slots),
            [(0, RECHECK), (1, RECHECK), (2, RECHECK)],
            "none is told its batch is durable"
        );
        assert!(s.waiters.is_empty());
    }

    #[test]
    fn covered_followers_are_woken_as_a_tree_each_exactly_once() {
        let slots: Vec<Arc<Slot>> = (0..11).map(|_| Arc::new(Slot::new())).collect();
        relay_durable(slots.clone());
        let woken = |slots: &[Arc<Slot>]| {
            slots
                .iter()
                .filter(|s| s.state.load(Ordering::Acquire) == DURABLE)
                .count()
        };
        assert_eq!(woken(&slots), 2, "the leader wakes the heads of two halves");
        // Play the followers: each woken one passes its relay on (as `sync_to` does).
        let mut depth = 1;
        loop {
            let relays: Vec<Vec<Arc<Slot>>> = slots
                .iter()
                .filter(|s| s.state.load(Ordering::Acquire) == DURABLE)
                .map(|s| std::mem::take(&mut *s.relay.lock()))
                .filter(|r| !r.is_empty())
                .collect();
            if relays.is_empty() {
                break;
            }
            relays.into_iter().for_each(relay_durable);
            depth += 1;
        }
        assert_eq!(woken(&slots), slots.len(), "every covered follower is told");
        assert!(depth <= 4, "a tree, not a chain: depth {depth}");
    }

    #[test]
    fn a_parked_follower_gets_the_outcome_it_was_woken_with() {
        let slot = Arc::new(Slot::new());
        let waker = {
            let slot = slot.clone();
            std::thread::spawn(move || slot.wake(DURABLE))
        };
        assert_eq!(slot.wait(), DURABLE);
        waker.join().unwrap();
        // Woken before it waits: returns at once.
        let slot = Slot::new();
        slot.wake(RECHECK);
        assert_eq!(slot.wait(), RECHECK);
    }
}
