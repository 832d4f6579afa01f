//! The in-process replica set: one leader and N followers, each a partition directory of its
//! own (possibly on different disks), with Kafka's acks, in-sync replicas (ISR), high
//! watermark and leader epochs.
//!
//! All decisions are taken under one mutex (`State`) by short steps that a test can call one
//! at a time ([`ReplicaSet::fetch_once`], [`ReplicaSet::update_isr`], [`ReplicaSet::elect`],
//! ...); [`ReplicaSet::start_fetchers`] runs the followers' steps on threads of their own.
//! Partition I/O (appends, fetches, truncation) runs without that mutex; every step re-checks
//! the leader epoch it started under before it counts, so a step that raced a leader change
//! changes nothing.
//!
//! The rules are on [`ReplicaSet`].

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard, RwLock};

use super::{Acks, ReplicationConfig, Replicator};
use crate::error::{Error, Result};
use crate::format::batch::BatchMeta;
use crate::format::record::Record;
use crate::log::config::{Durability, PartitionConfig};
use crate::log::partition::{AppendInfo, Partition};
use crate::offset::Offset;

/// Where one replica lives: its directory and its partition settings (durability, file
/// system, ...). The replica set turns on
/// [`high_watermark_external`](PartitionConfig::high_watermark_external) itself.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ReplicaSpec {
    /// The replica's partition directory.
    pub dir: PathBuf,
    /// Its partition configuration.
    pub config: PartitionConfig,
}

impl ReplicaSpec {
    /// A replica in `dir` with `config`.
    pub fn new(dir: impl Into<PathBuf>, config: PartitionConfig) -> ReplicaSpec {
        ReplicaSpec {
            dir: dir.into(),
            config: config.with_high_watermark_external(true),
        }
    }
}

/// An election that had to pick a replica outside the ISR
/// ([`ReplicationConfig::unclean_leader_election`]): what it lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct UncleanElection {
    /// The epoch it started.
    pub epoch: i32,
    /// The replica elected.
    pub leader: usize,
    /// The high watermark before: records in `[leader_end, high_watermark_before)` were
    /// committed and are lost.
    pub high_watermark_before: Offset,
    /// The new leader's log end.
    pub leader_end: Offset,
}

/// An append written to the leader and waiting for its acks (see [`ReplicaSet::poll`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingAppend {
    /// The offsets the batch got.
    pub info: AppendInfo,
    /// The leader epoch it was written in.
    pub epoch: i32,
}

struct Replica {
    /// Where and how to reopen it (`restart`, feature `testing`).
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    spec: ReplicaSpec,
    partition: Option<Arc<Partition>>,
    /// The acknowledged end last reported by this replica in the current epoch.
    acked_end: u64,
    last_caught_up_ms: u64,
    /// It must find its divergence point before fetching again.
    needs_truncation: bool,
}

struct State {
    replicas: Vec<Replica>,
    leader: Option<usize>,
    epoch: i32,
    isr: BTreeSet<usize>,
    hw: u64,
    unclean: Vec<UncleanElection>,
    /// Bumped by every leader append: fetchers sleep only when it did not move.
    data_version: u64,
    closed: bool,
}

enum Clock {
    System(Instant),
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    Manual(AtomicU64),
}

impl Clock {
    fn now_ms(&self) -> u64 {
        match self {
            Clock::System(start) => u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
            Clock::Manual(ms) => ms.load(Ordering::SeqCst),
        }
    }
}

/// A leader and followers in this process.
///
/// Rules (Kafka's, where Kafka has one):
/// - a replica's *acknowledged end* is its fsynced end under `SyncEachAppend`, its log end
///   under the other policies (which acknowledge appends before fsync, as this one does);
/// - HW = the smallest acknowledged end over the ISR (the leader included), never above the
///   leader's log end, and it only moves forward while the leader does not change uncleanly;
/// - a follower is caught up when a fetch brings it to the leader's log end as of the fetch;
///   one not caught up for `replica_lag_ms` leaves the ISR; it rejoins when its acknowledged
///   end reaches the HW (having truncated and fetched in the current epoch); a crashed replica
///   leaves at once, except the last member, which stays (Kafka never empties the ISR);
/// - a new leader comes from the live ISR; every other replica then finds where it diverged
///   through `OffsetsForLeaderEpoch` (KIP-101, KIP-279) and truncates before fetching.
///
/// Drive it with threads ([`start_fetchers`](ReplicaSet::start_fetchers)) or step by step
/// from one thread ([`fetch_once`](ReplicaSet::fetch_once), [`update_isr`](ReplicaSet::update_isr),
/// [`append_pending`](ReplicaSet::append_pending) and [`poll`](ReplicaSet::poll)): the steps
/// are the same code, so a deterministic test exercises what the threads run.
pub struct ReplicaSet {
    config: ReplicationConfig,
    state: Mutex<State>,
    /// Signalled when the HW, the ISR, the leader or the leader's log end changes.
    changed: Condvar,
    /// Appends hold it shared while they write; leader changes hold it exclusively, so that
    /// no append lands on a replica that has just stopped leading.
    roles: RwLock<()>,
    clock: Clock,
    stop: AtomicBool,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for ReplicaSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.state.lock();
        f.debug_struct("ReplicaSet")
            .field("leader", &st.leader)
            .field("epoch", &st.epoch)
            .field("isr", &st.isr)
            .field("high_watermark", &st.hw)
            .finish_non_exhaustive()
    }
}

/// The end a replica's partition counts toward the HW (see the module docs).
fn acked_end(p: &Partition) -> u64 {
    if p.config().durability == Durability::SyncEachAppend {
        p.durable_end_offset().0
    } else {
        p.log_end_offset().0
    }
}

impl ReplicaSet {
    /// Open every replica (recovering each) and elect a leader: the replica with the newest
    /// leader epoch and, among those, the longest log (the previous leader, or a follower that
    /// has all it had). It starts a new epoch; the ISR starts as the leader alone and the
    /// followers join once they caught up. No thread is started.
    pub fn open(specs: Vec<ReplicaSpec>, config: ReplicationConfig) -> Result<Arc<ReplicaSet>> {
        Self::open_with_clock(specs, config, Clock::System(Instant::now()))
    }

    /// [`open`](ReplicaSet::open) with a clock that moves only by
    /// [`advance_clock`](ReplicaSet::advance_clock), for deterministic tests (feature
    /// `testing`).
    #[cfg(feature = "testing")]
    pub fn open_with_manual_clock(
        specs: Vec<ReplicaSpec>,
        config: ReplicationConfig,
    ) -> Result<Arc<ReplicaSet>> {
        Self::open_with_clock(specs, config, Clock::Manual(AtomicU64::new(0)))
    }

    fn open_with_clock(
        specs: Vec<ReplicaSpec>,
        config: ReplicationConfig,
        clock: Clock,
    ) -> Result<Arc<ReplicaSet>> {
        config.validate()?;
        if specs.is_empty() {
            return Err(Error::config("replicas", 0, "at least one replica"));
        }
        let mut replicas = Vec::with_capacity(specs.len());
        for mut spec in specs {
            spec.config.high_watermark_external = true;
            let p = Arc::new(Partition::open(&spec.dir, spec.config.clone())?);
            replicas.push(Replica {
                spec,
                partition: Some(p),
                acked_end: 0,
                last_caught_up_ms: 0,
                needs_truncation: true,
            });
        }
        let epoch = replicas
            .iter()
            .filter_map(|r| r.partition.as_ref().and_then(|p| p.leader_epoch()))
            .max()
            .unwrap_or(-1);
        let set = Arc::new(ReplicaSet {
            config,
            state: Mutex::new(State {
                replicas,
                leader: None,
                epoch,
                isr: BTreeSet::new(),
                hw: 0,
                unclean: Vec::new(),
                data_version: 0,
                closed: false,
            }),
            changed: Condvar::new(),
            roles: RwLock::new(()),
            clock,
            stop: AtomicBool::new(false),
            threads: Mutex::new(Vec::new()),
        });
        set.elect_most_advanced()?;
        Ok(set)
    }

    /// The first leader after open: the most advanced replica by (epoch, log end).
    fn elect_most_advanced(&self) -> Result<()> {
        let _roles = self.roles.write();
        let mut st = self.state.lock();
        let best = (0..st.replicas.len())
            .max_by_key(|&i| {
                let p = st.replicas[i].partition.as_ref().expect("just opened");
                (
                    p.leader_epoch().unwrap_or(-1),
                    p.log_end_offset().0,
                    usize::MAX - i,
                )
            })
            .expect("at least one replica");
        let p = st.replicas[best].partition.clone().expect("just opened");
        st.hw = p.high_watermark().0;
        st.isr.insert(best);
        self.install_leader(&mut st, best)
    }

    /// Make `new` the leader of a new epoch; the others must truncate before fetching.
    /// Caller holds `roles` exclusively.
    fn install_leader(&self, st: &mut State, new: usize) -> Result<()> {
        let p = st.replicas[new]
            .partition
            .clone()
            .expect("a leader is alive");
        let epoch = st.epoch.max(p.leader_epoch().unwrap_or(-1)) + 1;
        p.assign_leader_epoch(epoch)?;
        st.leader = Some(new);
        st.epoch = epoch;
        let now = self.clock.now_ms();
        let hw = st.hw;
        for (i, r) in st.replicas.iter_mut().enumerate() {
            // What a follower reported in the old epoch may hold records the new leader does
            // not have: only what lies below the HW is known to match.
            r.acked_end = r.acked_end.min(hw);
            r.last_caught_up_ms = now;
            r.needs_truncation = i != new;
        }
        // Everything below the HW is on the new leader (it was in the ISR): keep it visible.
        let target = hw.min(acked_end(&p));
        st.hw = p.set_high_watermark(Offset(target))?.0;
        st.replicas[new].acked_end = acked_end(&p);
        self.advance_hw(st);
        self.changed.notify_all();
        Ok(())
    }

    /// Raise the HW to the smallest acknowledged end over the ISR, if that is higher.
    fn advance_hw(&self, st: &mut State) {
        let Some(leader) = st.leader else { return };
        let Some(p) = st.replicas[leader].partition.clone() else {
            return;
        };
        st.replicas[leader].acked_end = acked_end(&p);
        let min_end = st
            .isr
            .iter()
            .map(|&i| st.replicas[i].acked_end)
            .min()
            .unwrap_or(0)
            .min(p.log_end_offset().0);
        if min_end > st.hw {
            // Every acknowledged end is a batch boundary of the leader's log (followers hold
            // its prefix): a refusal would be a bug, and leaves the HW where it was.
            if let Ok(hw) = p.set_high_watermark(Offset(min_end)) {
                st.hw = hw.0;
                self.changed.notify_all();
            }
        }
    }

    /// Append through the leader without waiting for acks beyond the leader's write: under
    /// [`Acks::None`] not even for the leader's fsync. [`Error::NotEnoughReplicas`] if `acks`
    /// is [`Acks::All`] and too few replicas are in sync; [`Error::NotLeader`] without a
    /// leader. Wait for the rest with [`poll`](ReplicaSet::poll).
    pub fn append_pending(
        &self,
        records: &[Record],
        meta: &BatchMeta,
        acks: Acks,
    ) -> Result<PendingAppend> {
        let roles = self.roles.read();
        let (p, epoch) = {
            let st = self.state.lock();
            let p = Self::leader_of(&st)?;
            if acks == Acks::All && st.isr.len() < self.config.min_insync_replicas {
                return Err(Error::NotEnoughReplicas {
                    in_sync: st.isr.len(),
                    required: self.config.min_insync_replicas,
                });
            }
            (p, st.epoch)
        };
        // The leader's epoch, whatever the caller's meta says: followers refuse older ones.
        let meta = meta.with_leader_epoch(epoch);
        let info = match acks {
            Acks::None => p.append_no_wait(records, &meta)?,
            _ => p.append_with_meta(records, &meta)?,
        };
        drop(roles);
        let mut st = self.state.lock();
        st.data_version += 1;
        if st.epoch == epoch {
            self.advance_hw(&mut st);
        }
        self.changed.notify_all();
        Ok(PendingAppend { info, epoch })
    }

    fn leader_of(st: &State) -> Result<Arc<Partition>> {
        if st.closed {
            return Err(Error::Closed);
        }
        st.leader
            .and_then(|l| st.replicas[l].partition.clone())
            .ok_or(Error::NotLeader { epoch: st.epoch })
    }

    /// Whether an [`Acks::All`] append is settled: `Some(Ok)` once committed (the HW passed
    /// its last offset with at least `min_insync_replicas` in sync), `Some(Err)` once it can
    /// no longer be acknowledged (the leader changed, or the ISR shrank below the minimum),
    /// `None` while it waits.
    pub fn poll(&self, pending: &PendingAppend) -> Option<Result<AppendInfo>> {
        self.status(&self.state.lock(), pending)
    }

    fn status(&self, st: &State, pending: &PendingAppend) -> Option<Result<AppendInfo>> {
        let min = self.config.min_insync_replicas;
        if st.closed {
            return Some(Err(Error::Closed));
        }
        if st.epoch != pending.epoch || st.leader.is_none() {
            return Some(Err(Error::NotLeader { epoch: st.epoch }));
        }
        let short = st.isr.len() < min;
        if short {
            return Some(Err(Error::NotEnoughReplicas {
                in_sync: st.isr.len(),
                required: min,
            }));
        }
        (st.hw > pending.info.last_offset.0).then_some(Ok(pending.info))
    }

    /// Block until `pending` is settled (see [`poll`](ReplicaSet::poll)), checking the ISR for
    /// lagging followers while it waits.
    fn wait_acked(&self, pending: &PendingAppend) -> Result<AppendInfo> {
        let mut st = self.state.lock();
        loop {
            if let Some(r) = self.status(&st, pending) {
                return r;
            }
            let timeout = Duration::from_millis(self.config.replica_lag_ms.clamp(1, 100));
            if self.changed.wait_for(&mut st, timeout).timed_out() {
                self.update_isr_locked(&mut st);
            }
        }
    }

    /// Remove from the ISR every follower not caught up for `replica_lag_ms`. Returns how many
    /// left.
    pub fn update_isr(&self) -> usize {
        let mut st = self.state.lock();
        self.update_isr_locked(&mut st)
    }

    fn update_isr_locked(&self, st: &mut State) -> usize {
        let now = self.clock.now_ms();
        let Some(leader) = st.leader else { return 0 };
        let lag = self.config.replica_lag_ms;
        let lagging: Vec<usize> = st
            .isr
            .iter()
            .copied()
            .filter(|&i| i != leader && now.saturating_sub(st.replicas[i].last_caught_up_ms) > lag)
            .collect();
        for i in &lagging {
            st.isr.remove(i);
        }
        if !lagging.is_empty() {
            self.advance_hw(st);
            self.changed.notify_all();
        }
        lagging.len()
    }

    /// One fetch of follower `id` from the leader: find its divergence point first if the
    /// leader changed (or it restarted), then copy what the leader has past its log end
    /// (at most `fetch_bytes_max`), report its acknowledged end, join the ISR when caught up,
    /// and take the leader's HW. Returns the bytes copied (0 for the leader itself, a crashed
    /// replica, or nothing new).
    pub fn fetch_once(&self, id: usize) -> Result<usize> {
        let (leader, follower, epoch, truncate) = {
            let st = self.state.lock();
            let leader = Self::leader_of(&st)?;
            let r = &st.replicas[id];
            match &r.partition {
                Some(f) if st.leader != Some(id) => {
                    (leader, f.clone(), st.epoch, r.needs_truncation)
                }
                _ => return Ok(0),
            }
        };
        if truncate {
            truncate_to_leader(&leader, &follower)?;
            let mut st = self.state.lock();
            if st.epoch != epoch {
                return Ok(0);
            }
            st.replicas[id].needs_truncation = false;
        }
        // Acks::None appends wait for no fsync: make them count toward the HW.
        if leader.config().durability == Durability::SyncEachAppend
            && leader.durable_end_offset() < leader.log_end_offset()
        {
            leader.flush()?;
        }
        let leader_end = leader.log_end_offset();
        let copied = match self.copy_from(&leader, &follower, leader_end) {
            Ok(n) => n,
            Err(Error::NonContiguousAppend { .. } | Error::LeaderEpochRegression { .. }) => {
                self.state.lock().replicas[id].needs_truncation = true;
                return Ok(0);
            }
            Err(e) => return Err(e),
        };
        self.follower_progress(id, epoch, leader_end, &follower)?;
        Ok(copied)
    }

    /// Copy the leader's batches from the follower's log end (at most `fetch_bytes_max`).
    fn copy_from(
        &self,
        leader: &Partition,
        follower: &Partition,
        leader_end: Offset,
    ) -> Result<usize> {
        let from = follower.log_end_offset();
        if from > leader_end {
            // Longer than the leader: diverged; truncation finds where.
            return Err(Error::NonContiguousAppend {
                expected: leader_end,
                found: from,
            });
        }
        if from == leader_end {
            return Ok(0);
        }
        let read = match leader.read_uncommitted(from, self.config.fetch_bytes_max) {
            Ok(read) => read,
            Err(Error::OffsetOutOfRange { .. }) => {
                let start = leader.log_start_offset();
                if from < start {
                    // The leader deleted what this follower lacks (retention,
                    // `delete_records_before`): as Kafka's follower does, restart the log
                    // empty at the leader's log start and fetch from there (the leader's
                    // start only moves up, towards `leader_end`, so this ends).
                    follower.truncate_fully_and_start_at(start)?;
                    return self.copy_from(leader, follower, leader_end);
                }
                // Otherwise the leader's log moved under us (a truncation): try again later.
                return Ok(0);
            }
            Err(e) => return Err(e),
        };
        let bytes: Vec<u8> = read
            .batches()
            .iter()
            .flat_map(|b| b.as_bytes().iter().copied())
            .collect();
        follower.append_batches(&bytes)?;
        Ok(bytes.len())
    }

    /// Count a follower's fetch: its acknowledged end, caught-up time, ISR membership, and
    /// the HW it may show its own readers.
    fn follower_progress(
        &self,
        id: usize,
        epoch: i32,
        leader_end: Offset,
        follower: &Partition,
    ) -> Result<()> {
        let mut st = self.state.lock();
        if st.epoch != epoch || st.replicas[id].needs_truncation {
            return Ok(());
        }
        let end = acked_end(follower);
        let now = self.clock.now_ms();
        let r = &mut st.replicas[id];
        r.acked_end = end;
        if follower.log_end_offset() >= leader_end {
            r.last_caught_up_ms = now;
        }
        if !st.isr.contains(&id) && end >= st.hw && follower.log_end_offset() >= leader_end {
            st.isr.insert(id);
            self.changed.notify_all();
        }
        self.advance_hw(&mut st);
        let hw = st.hw.min(follower.log_end_offset().0);
        drop(st);
        follower.set_high_watermark(Offset(hw))?;
        Ok(())
    }

    /// Elect a new leader from the live ISR (`preferred` if it is one of them), in a new
    /// epoch. Without a live ISR member: with `unclean_leader_election`, the live replica with
    /// the newest epoch and longest log, recording what was lost
    /// ([`unclean_elections`](ReplicaSet::unclean_elections)); otherwise the set stays without
    /// a leader and this is [`Error::NotLeader`]. Returns the new epoch.
    pub fn elect(&self, preferred: Option<usize>) -> Result<i32> {
        let _roles = self.roles.write();
        let mut st = self.state.lock();
        if st.closed {
            return Err(Error::Closed);
        }
        let alive = |st: &State, i: usize| st.replicas[i].partition.is_some();
        let clean: Vec<usize> = st.isr.iter().copied().filter(|&i| alive(&st, i)).collect();
        let chosen = match preferred.filter(|p| clean.contains(p)) {
            Some(p) => Some(p),
            None => clean.first().copied(),
        };
        let new = match chosen {
            Some(new) => new,
            None if self.config.unclean_leader_election => match Self::unclean_choice(&st) {
                Some(new) => Self::record_unclean(&mut st, new),
                None => return self.no_leader(&mut st),
            },
            None => return self.no_leader(&mut st),
        };
        self.install_leader(&mut st, new)?;
        Ok(st.epoch)
    }

    fn no_leader(&self, st: &mut State) -> Result<i32> {
        st.leader = None;
        self.changed.notify_all();
        Err(Error::NotLeader { epoch: st.epoch })
    }

    fn unclean_choice(st: &State) -> Option<usize> {
        (0..st.replicas.len())
            .filter(|&i| st.replicas[i].partition.is_some())
            .max_by_key(|&i| {
                let p = st.replicas[i].partition.as_ref().expect("alive");
                (
                    p.leader_epoch().unwrap_or(-1),
                    p.log_end_offset().0,
                    usize::MAX - i,
                )
            })
    }

    /// An unclean leader starts a new ISR and may take the HW back to its log end.
    fn record_unclean(st: &mut State, new: usize) -> usize {
        let p = st.replicas[new].partition.clone().expect("alive");
        let end = acked_end(&p);
        st.unclean.push(UncleanElection {
            epoch: st.epoch + 1,
            leader: new,
            high_watermark_before: Offset(st.hw),
            leader_end: Offset(end),
        });
        st.isr = BTreeSet::from([new]);
        st.hw = st.hw.min(end).max(p.high_watermark().0);
        new
    }

    /// The unclean elections so far (empty unless
    /// [`unclean_leader_election`](ReplicationConfig::unclean_leader_election) is on).
    pub fn unclean_elections(&self) -> Vec<UncleanElection> {
        self.state.lock().unclean.clone()
    }

    /// The replicas in sync, the leader included.
    pub fn isr(&self) -> Vec<usize> {
        self.state.lock().isr.iter().copied().collect()
    }

    /// The leader, if any.
    pub fn leader_id(&self) -> Option<usize> {
        self.state.lock().leader
    }

    /// Replica `id`'s partition, `None` while it is down.
    pub fn replica(&self, id: usize) -> Option<Arc<Partition>> {
        self.state
            .lock()
            .replicas
            .get(id)
            .and_then(|r| r.partition.clone())
    }

    /// How many replicas the set has.
    pub fn replica_count(&self) -> usize {
        self.state.lock().replicas.len()
    }

    /// Run every follower's fetches on a thread of its own until [`close`](Replicator::close):
    /// fetch, and when nothing new came, wait (at most `fetch_wait`) for the leader's next
    /// append; check the ISR for lagging followers between fetches. The threads hold the set
    /// weakly: dropping the last `Arc` ends them too.
    pub fn start_fetchers(self: &Arc<Self>) {
        let n = self.replica_count();
        let mut threads = self.threads.lock();
        for id in 0..n {
            let set: Weak<ReplicaSet> = Arc::downgrade(self);
            threads.push(std::thread::spawn(move || fetch_loop(&set, id)));
        }
    }

    fn wait_for_data(&self, version: u64) {
        let mut st = self.state.lock();
        if st.data_version == version && !st.closed {
            self.changed.wait_for(&mut st, self.config.fetch_wait);
        }
    }

    fn data_version(&self) -> u64 {
        self.state.lock().data_version
    }

    fn lock_state(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }
}

/// A follower thread: fetch until the set closes or is dropped.
fn fetch_loop(set: &Weak<ReplicaSet>, id: usize) {
    loop {
        let Some(s) = set.upgrade() else { return };
        if s.stop.load(Ordering::Acquire) {
            return;
        }
        let version = s.data_version();
        let copied = s.fetch_once(id).unwrap_or(0);
        s.update_isr();
        if copied == 0 {
            s.wait_for_data(version);
        }
    }
}

/// Truncate `follower` where its log diverges from `leader`'s, by leader epochs (KIP-101 with
/// KIP-279's rule for an epoch the leader does not know): ask the leader where the follower's
/// latest epoch ends; if the leader answers with an older epoch, the follower's own end of
/// that epoch bounds the cut too. Repeats until a round changes nothing (each other round
/// cuts records or drops an epoch). A follower without epochs falls back to its HW.
fn truncate_to_leader(leader: &Partition, follower: &Partition) -> Result<()> {
    loop {
        let end = follower.log_end_offset();
        let latest = follower.leader_epoch();
        let target = match latest {
            None => follower.high_watermark(),
            Some(epoch) => match leader.end_offset_for_epoch(epoch) {
                None => follower.high_watermark(),
                Some((e, offset)) if e == epoch => offset,
                Some((e, offset)) => {
                    let own = follower
                        .end_offset_for_epoch(e)
                        .map_or(Offset(0), |(_, o)| o);
                    offset.min(own)
                }
            },
        };
        if target > end {
            return Ok(());
        }
        // At the log end this still drops an epoch the follower started there as a leader
        // that wrote nothing: its next batches come in older epochs.
        follower.truncate_to(target)?;
        // Done when nothing changed; a cut record or a dropped epoch needs another round
        // (the follower's latest epoch is now an older one, whose end the leader may see
        // elsewhere).
        if follower.log_end_offset() >= end && follower.leader_epoch() == latest {
            return Ok(());
        }
    }
}

impl Replicator for ReplicaSet {
    fn append(&self, records: &[Record], meta: &BatchMeta, acks: Acks) -> Result<AppendInfo> {
        let pending = self.append_pending(records, meta, acks)?;
        if acks == Acks::All {
            self.wait_acked(&pending)
        } else {
            Ok(pending.info)
        }
    }

    fn leader(&self) -> Result<Arc<Partition>> {
        Self::leader_of(&self.lock_state())
    }

    fn high_watermark(&self) -> Offset {
        Offset(self.lock_state().hw)
    }

    fn in_sync_replicas(&self) -> usize {
        self.lock_state().isr.len()
    }

    fn leader_epoch(&self) -> Option<i32> {
        let st = self.lock_state();
        st.leader.map(|_| st.epoch)
    }

    fn close(&self) -> Result<()> {
        self.stop.store(true, Ordering::Release);
        let partitions: Vec<Arc<Partition>> = {
            let mut st = self.state.lock();
            st.closed = true;
            self.changed.notify_all();
            st.replicas
                .iter()
                .filter_map(|r| r.partition.clone())
                .collect()
        };
        for t in std::mem::take(&mut *self.threads.lock()) {
            let _ = t.join();
        }
        let mut first_error = None;
        for p in partitions {
            if let Err(e) = p.close() {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Failure injection for tests (feature `testing`).
#[cfg(feature = "testing")]
impl ReplicaSet {
    /// Move the manual clock forward (see
    /// [`open_with_manual_clock`](ReplicaSet::open_with_manual_clock)); no-op on the system
    /// clock.
    pub fn advance_clock(&self, ms: u64) {
        if let Clock::Manual(now) = &self.clock {
            now.fetch_add(ms, Ordering::SeqCst);
        }
    }

    /// Kill replica `id` as a crashed process would die
    /// ([`Partition::simulate_crash_shared`]): it leaves the ISR (unless it is the last member)
    /// and, if it led, a new leader is elected from the live ISR. Pair with
    /// [`SimFs::power_loss`](crate::testing::SimFs::power_loss) on its file system for a power
    /// loss. Returns the election's result when one ran.
    pub fn crash(&self, id: usize) -> Option<Result<i32>> {
        let was_leader = {
            let _roles = self.roles.write();
            let mut st = self.state.lock();
            let p = st.replicas[id].partition.take()?;
            p.simulate_crash_shared();
            if st.isr.len() > 1 {
                st.isr.remove(&id);
            }
            let was_leader = st.leader == Some(id);
            if was_leader {
                st.leader = None;
            } else {
                self.advance_hw(&mut st);
            }
            self.changed.notify_all();
            was_leader
        };
        was_leader.then(|| self.elect(None))
    }

    /// Reopen crashed replica `id` (recovering its directory). It truncates to the leader
    /// before it fetches; without a leader, an election runs (it may win if it is the last
    /// ISR member).
    pub fn restart(&self, id: usize) -> Result<()> {
        let no_leader = {
            let _roles = self.roles.write();
            let mut st = self.state.lock();
            if st.replicas[id].partition.is_some() {
                return Ok(());
            }
            let p = Arc::new(Partition::open(
                &st.replicas[id].spec.dir,
                st.replicas[id].spec.config.clone(),
            )?);
            let hw = st.hw;
            let r = &mut st.replicas[id];
            r.acked_end = acked_end(&p).min(hw);
            r.needs_truncation = true;
            r.last_caught_up_ms = self.clock.now_ms();
            r.partition = Some(p);
            st.leader.is_none()
        };
        if no_leader {
            let _ = self.elect(None);
        }
        Ok(())
    }
}
