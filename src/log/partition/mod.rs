//! The partition: an ordered sequence of segments with dense offsets, the heart of seglog.
//!
//! Locks, from outermost to innermost, and what each guards:
//! - `retention`: serialises retention, `delete_records_before`, compaction and truncation;
//! - `writer`: the append lock — active segment, next offset, unsynced bookkeeping;
//! - `sync`: group-commit state and the queue of parked followers (`sync::GroupCommit`); not
//!   held while fsyncing; the durable end changes only with it held (appenders check it
//!   under `sync` before they queue; a queued one is told its outcome by the fsync's leader);
//! - `view`: what readers see: the segment list and the bounds (`state::LogBounds`: log
//!   start, high watermark, durable end, log end), changed only through their methods, which
//!   assert `log_start <= high_watermark <= log_end` and `durable_end <= log_end`. Readers
//!   hold it only to clone an `Arc`; appends hold it only to store a few integers.
//!
//! No fsync ever runs with `writer` held, except in `close` and `truncate_to`, which hold the
//! sync slot (no group commit in flight) and end or rewrite the log anyway.
//!
//! An append is a plan (encode and checksum, no lock) and an act (`write_locked`: one write at
//! the log end under `writer`), which a replication follower's append of already-offset'd
//! batches can share. Recovery is a scan, a pure plan (`recover::plan_recovery`) and an act.

mod compact;
mod dir_kind;
mod live;
mod open;
mod read;
mod received;
mod recover;
mod replica;
mod state;
mod sync;
mod timestamps;
mod truncate;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};

use crate::error::{CorruptKind, Error, IoContext, Result};
use crate::format::batch::{
    self, BatchHeader, BatchMeta, EncodeLimits, EncodeOptions, TimestampType,
};
use crate::format::record::{now_ms, Record};
use crate::io::checkpoint;
use crate::io::fs::{FsLock, OpenFlags};
use crate::log::config::{Durability, PartitionConfig};
use crate::log::epoch::{EpochCache, EPOCH_NONE};
use crate::log::index::RELATIVE_OFFSET_MAX;
use crate::log::retention::{self, RetentionPlan, SegmentInfo};
use crate::log::segment::{
    IndexCursor, Scan, ScanOutcome, SealedMeta, Segment, SegmentFiles, LOG_EXT,
};
use crate::offset::Offset;
use live::LiveLimits;
use state::{Position, View};

pub use compact::CompactionReport;
pub use live::ConfigUpdate;
pub use read::ReadBatches;
pub use replica::DurableListener;
#[cfg(feature = "testing")]
pub use sync::GroupCommitStats;
pub use timestamps::{OffsetSpec, NO_TIMESTAMP};

/// File holding the recovery point: every offset below it had been fsynced.
pub(crate) const RECOVERY_POINT_FILE: &str = "recovery-point.checkpoint";
/// File holding the high watermark a replicator set (`high_watermark_external`).
pub(crate) const HIGH_WATERMARK_FILE: &str = "high-watermark.checkpoint";
/// Batch end positions kept for `set_high_watermark` lookups (it trails the log end closely).
const RECENT_ENDS_MAX: usize = 4096;
/// File holding the log start offset set by `delete_records_before`.
pub(crate) const LOG_START_FILE: &str = "log-start-offset.checkpoint";
/// Written after a fully flushed close; deleted at open.
pub(crate) const CLEAN_SHUTDOWN_FILE: &str = ".clean-shutdown";
/// Held locked (flock) while a `Partition` has the directory open.
pub(crate) const LOCK_FILE: &str = ".lock";
/// Written (empty, fsynced with the directory) when seglog creates a partition under a
/// delete-only cleanup policy, removed the first time it is opened with a policy that
/// compacts: while it exists, offsets are known dense and every batch must start right after
/// the previous one. Without it (compaction, or a directory another program wrote, Kafka
/// included) batches may leave offset gaps.
pub(crate) const DENSE_MARKER_FILE: &str = "seglog.partition";
/// The second copy of the log start (checkpoint format), written when seglog creates the
/// partition or first opens a directory it did not create, and beside
/// [`LOG_START_FILE`] whenever the log start moves. Its presence also says every segment
/// whose offsets are not dense has a batch witness (see `log::witness`).
pub(crate) const STATE_FILE: &str = "seglog.log-start.checkpoint";

/// Persist the log start `offset` in both its copies, before segments below it are deleted.
pub(crate) fn write_log_start(fs: &crate::io::fs::Fs, dir: &Path, offset: u64) -> Result<()> {
    checkpoint::write(fs, &dir.join(LOG_START_FILE), offset)?;
    checkpoint::write(fs, &dir.join(STATE_FILE), offset)
}

/// Offsets assigned to an appended batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct AppendInfo {
    /// Offset of the batch's first record.
    pub base_offset: Offset,
    /// Offset of the batch's last record.
    pub last_offset: Offset,
}

/// What `open` found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// A clean-shutdown marker was present and trusted: no scan was needed.
    pub clean_shutdown: bool,
    /// Segments scanned and checked batch by batch.
    pub segments_scanned: usize,
    /// Bytes cut from the end of the log (a torn tail, or data after corruption).
    pub truncated_bytes: u64,
    /// Whole segments removed because they came after the truncation point.
    pub segments_removed: usize,
    /// Where the first invalid batch was found: file and byte position.
    pub damage_at: Option<(PathBuf, u64)>,
    /// The log end offset after recovery.
    pub log_end_offset: Offset,
    /// Offsets `[from, to)` whose segments were missing at open (the first segment began
    /// above the persisted log start); only with `truncate_corrupt`, which moves the log
    /// start past them (otherwise open fails with [`Error::MissingSegments`]).
    pub missing_offsets: Option<(Offset, Offset)>,
}

/// What the locked step of an append did.
struct Appended {
    info: AppendInfo,
    /// The log end after the batch.
    end: Position,
    /// The policy wants an fsync now.
    need_sync: bool,
    /// A batch started a leader epoch: the epoch checkpoint is to be written.
    new_epoch: bool,
    /// `Partition::truncations` when the batch was written.
    truncations: u64,
}

/// State owned by the append lock.
pub(crate) struct Writer {
    pub segments: Arc<Vec<Arc<Segment>>>,
    pub active: Arc<Segment>,
    pub files: Arc<SegmentFiles>,
    pub cursor: IndexCursor,
    pub next_offset: u64,
    pub size: u64,
    /// The active log file is zero-filled up to here (at least `size`).
    pub preallocated: u64,
    /// First timestamp in the active segment, for time-based rolling.
    pub first_timestamp: Option<i64>,
    /// Sealed segments written but not yet fsynced, oldest first. The segments, not their
    /// files: these stay within `open_segments_max` like any loaded sealed segment, and an
    /// fsync reopens a closed one (see [`Segment::sync_log`]). Retention drops the ones it
    /// deletes, so under `NoSync`, which never fsyncs on its own, nothing waits here for long
    /// but a `Segment` each.
    pub unsynced_sealed: Vec<Arc<Segment>>,
    /// A segment file was created since the last directory fsync.
    pub dir_dirty: bool,
    pub unsynced_records: u64,
    pub unsynced_bytes: u64,
    pub unsynced_since: Option<Instant>,
    /// Where the most recent batches end, oldest first (at most `RECENT_ENDS_MAX`): the high
    /// watermark a replicator sets is looked up here before any scan.
    pub recent_ends: VecDeque<Position>,
    /// The epoch this partition leads in (`assign_leader_epoch`), stamped on appends that
    /// carry none; `None` until then (not persisted: a replicator assigns it again). Kept
    /// here rather than in `EpochState` so that an append reads it without another lock.
    pub leading: Option<i32>,
}

impl Writer {
    fn position(&self) -> Position {
        Position {
            offset: self.next_offset,
            segment_base: self.active.base_offset().0,
            bytes: self.size,
        }
    }
}

/// The leader epoch cache and whether it changed since its checkpoint was written.
#[derive(Debug, Default)]
pub(crate) struct EpochState {
    pub cache: EpochCache,
    pub dirty: bool,
}

/// One partition: an append-only, offset-addressed log in its own directory.
///
/// `Partition` is `Send + Sync`: share it with an `Arc` and append and read from any thread.
/// See the crate docs for the durability and recovery contracts.
pub struct Partition {
    dir: PathBuf,
    config: PartitionConfig,
    /// The configuration values that may change while open (`update_config`).
    limits: RwLock<live::LiveLimits>,
    /// The directory lock; released by a successful `close`, so the directory can be opened
    /// again while stale handles linger (they refuse writes).
    dir_lock: Mutex<Option<FsLock>>,
    writer: Mutex<Writer>,
    view: RwLock<View>,
    /// The `sync` lock and the group-commit queue (see `sync`).
    sync: sync::GroupCommit,
    retention: Mutex<()>,
    /// Sealed segments loaded on demand, oldest load first; bounded by `open_segments_max`.
    loaded: Mutex<VecDeque<Arc<Segment>>>,
    failed: AtomicBool,
    /// A compaction swap failed after its commit point (see `check_structure`).
    pub(crate) swap_failed: AtomicBool,
    closed: AtomicBool,
    /// Set by `simulate_crash`: drop without closing.
    skip_close: AtomicBool,
    /// Appends written since the last fsync captured its position.
    pending_appends: AtomicU64,
    /// Truncations so far: an append waiting for its fsync checks that none happened since it
    /// wrote, or its batch may be gone (and its offsets reused).
    truncations: AtomicU64,
    waiters: AtomicUsize,
    notify: Mutex<()>,
    notify_cond: Condvar,
    recovery: RecoveryReport,
    /// The leader epoch cache (taken inside `writer`, never the other way round).
    epochs: Mutex<EpochState>,
    /// Serialises writes of the epoch checkpoint (taken without `writer`).
    epoch_file: Mutex<()>,
    /// Called with the new durable end after each fsync.
    durable_listener: RwLock<Option<DurableListener>>,
}

impl std::fmt::Debug for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = self.view.read();
        f.debug_struct("Partition")
            .field("dir", &self.dir)
            .field("log_start_offset", &v.log_start())
            .field("high_watermark", &v.high_watermark().offset)
            .field("log_end_offset", &v.log_end().offset)
            .field("segments", &v.segments().len())
            .finish_non_exhaustive()
    }
}

impl Partition {
    /// Open (creating if needed) the partition in `dir`, recovering after a crash.
    ///
    /// After a clean [`close`](Partition::close) this lists the directory and touches only the
    /// last segment. Otherwise it scans from the recovery point: every batch is CRC-checked, a
    /// torn tail is truncated to the last whole valid batch, indexes are rebuilt, segments past
    /// the truncation point are removed. Damage below the recovery point (data that had been
    /// flushed) fails with [`Error::CorruptBelowRecoveryPoint`] unless
    /// [`PartitionConfig::truncate_corrupt`] is set. [`Partition::recovery_report`] tells what
    /// was done. If the log start that [`delete_records_before`](Partition::delete_records_before)
    /// persisted lies past the recovered log end (a power loss took records it had not made
    /// durable), the log restarts empty at that start, as Kafka's does: offsets below the log
    /// start are never handed out again.
    ///
    /// A store's data directory (holding `topics.meta`) is refused with
    /// [`Error::WrongDirectory`] before anything is written.
    pub fn open(dir: impl AsRef<Path>, config: PartitionConfig) -> Result<Partition> {
        dir_kind::refuse_store_root(&config.fs, dir.as_ref())?;
        open::open(dir.as_ref(), config)
    }

    /// The directory this partition lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The configuration it was opened with ([`effective_config`](Self::effective_config)
    /// includes later [`update_config`](Self::update_config) changes).
    pub fn config(&self) -> &PartitionConfig {
        &self.config
    }

    /// What `open` found and did.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// The first readable offset.
    pub fn log_start_offset(&self) -> Offset {
        Offset(self.view.read().log_start())
    }

    /// The offset the next appended record will get.
    pub fn log_end_offset(&self) -> Offset {
        Offset(self.view.read().log_end().offset)
    }

    /// One past the last offset readers may see. Under [`Durability::SyncEachAppend`] it covers
    /// only synced batches; under the other policies every written batch. Replication will move
    /// it by acknowledgements instead.
    pub fn high_watermark(&self) -> Offset {
        Offset(self.view.read().high_watermark().offset)
    }

    /// Number of segments, the active one included.
    pub fn segment_count(&self) -> usize {
        self.view.read().segments().len()
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<Offset> {
        self.view
            .read()
            .segments()
            .iter()
            .map(|s| s.base_offset())
            .collect()
    }

    pub(crate) fn view(&self) -> View {
        self.view.read().clone()
    }

    fn check_writable(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        if self.failed.load(Ordering::Acquire) {
            return Err(Error::PreviousIoFailed);
        }
        Ok(())
    }

    /// Retention and compaction change which segments exist: never on a closed handle (its
    /// directory may belong to another one now), nor after a compaction swap failed past its
    /// commit point (the next open completes it). They do run after an append failed: they
    /// touch nothing at or above the high watermark.
    pub(crate) fn check_structure(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        if self.swap_failed.load(Ordering::Acquire) {
            return Err(Error::PreviousIoFailed);
        }
        Ok(())
    }

    fn fail<T>(&self, e: Error) -> Result<T> {
        self.failed.store(true, Ordering::Release);
        Err(e)
    }

    /// Append `records` as one batch and return the offsets it got.
    ///
    /// When this returns `Ok`, the batch is readable at once (under `SyncEachAppend`, once
    /// synced) and is on disk as far as the configured [`Durability`] says. An `Err` from the
    /// write or the fsync makes the partition refuse further appends until it is reopened.
    pub fn append(&self, records: &[Record]) -> Result<AppendInfo> {
        self.append_with_meta(records, &BatchMeta::default())
    }

    /// [`append`](Partition::append) with leader-epoch and producer metadata for the header.
    ///
    /// The batch's leader epoch is `meta.leader_epoch` as given, or, when that is -1 (none)
    /// and the partition leads an epoch ([`assign_leader_epoch`](Partition::assign_leader_epoch)),
    /// that epoch. An epoch newer than the cache's latest starts an entry; an older one is
    /// written as given and leaves the cache alone.
    pub fn append_with_meta(&self, records: &[Record], meta: &BatchMeta) -> Result<AppendInfo> {
        // The live limits are read once: the whole append follows one configuration.
        let live = self.live_limits();
        // Plan: encode and checksum before taking the append lock.
        let (mut buf, header) = encode_for_append(records, meta, &live)?;
        // Act: one locked write at the next offset, then wake readers and sync as due.
        let appended = self.append_at_end(&mut buf, &mut [header], &live)?;
        self.after_append(&appended)?;
        Ok(appended.info)
    }

    /// The locked step of an append: give the encoded batches in `buf` (back to back, their
    /// parsed headers `headers`, at least one) the next offsets and write them there, each
    /// without an epoch of its own stamped with the leading one. Base offset and epoch lie
    /// outside the CRC: setting them does not re-checksum. Returns the last batch's
    /// `Appended`, its `info` covering every batch.
    fn append_at_end(
        &self,
        buf: &mut [u8],
        headers: &mut [BatchHeader],
        live: &LiveLimits,
    ) -> Result<Appended> {
        let mut w = self.writer.lock();
        self.check_writable()?;
        let first = w.next_offset;
        let mut last = None;
        let mut new_epoch = false;
        let mut at = 0;
        for header in headers.iter_mut() {
            let batch = &mut buf[at..at + header.total_len()];
            at += batch.len();
            header.base_offset = w.next_offset;
            batch::set_base_offset(batch, header.base_offset);
            // A leader stamps a batch without an epoch with its own; a caller's explicit
            // epoch is kept as given.
            if let Some(epoch) = w.leading {
                if header.partition_leader_epoch == EPOCH_NONE {
                    batch::set_partition_leader_epoch(batch, epoch);
                    header.partition_leader_epoch = epoch;
                }
            }
            match self.write_locked(&mut w, batch, header, live) {
                Ok(appended) => {
                    new_epoch |= appended.new_epoch;
                    last = Some(appended);
                }
                Err(e) => return self.fail(e),
            }
        }
        let Some(mut appended) = last else {
            return Err(Error::EmptyBatch);
        };
        appended.info.base_offset = Offset(first);
        appended.new_epoch = new_epoch;
        Ok(appended)
    }

    /// Write a batch that already carries its offsets (starting at the next offset) at the end
    /// of the log: roll if due, write, index, account and publish to readers. Caller holds
    /// `writer` and fails the partition on an error. Shared by every kind of append.
    fn write_locked(
        &self,
        w: &mut Writer,
        buf: &[u8],
        header: &BatchHeader,
        live: &LiveLimits,
    ) -> Result<Appended> {
        assert_eq!(
            header.base_offset, w.next_offset,
            "a batch is written at the log end"
        );
        if should_roll(w, header, live)? {
            self.roll_locked(w, live)?;
        }
        let position = w.size;
        self.preallocate(w, position + buf.len() as u64, live)?;
        self.write_at(&w.files, buf, position)?;
        w.cursor.on_batch(&w.active, &w.files, header, position);
        w.first_timestamp.get_or_insert(header.first_timestamp());
        w.next_offset = header.last_offset() + 1;
        w.size += buf.len() as u64;
        w.unsynced_records += u64::from(header.record_count);
        w.unsynced_bytes += buf.len() as u64;
        // Only an fsync interval reads it: no clock read per append otherwise.
        if matches!(
            self.config.durability,
            Durability::SyncThreshold {
                interval: Some(_),
                ..
            }
        ) {
            w.unsynced_since.get_or_insert_with(Instant::now);
        }
        self.pending_appends.fetch_add(1, Ordering::SeqCst);
        let end = w.position();
        let sync_each = self.config.durability == Durability::SyncEachAppend;
        if w.recent_ends.len() == RECENT_ENDS_MAX {
            w.recent_ends.pop_front();
        }
        w.recent_ends.push_back(end);
        // Only a newer epoch starts an entry: an older one (a caller's explicit epoch) must
        // not rewrite the cache; followers' appends refuse those before getting here. A batch
        // without an epoch (negative) never does: no lock for it.
        let mut new_epoch = false;
        if header.partition_leader_epoch >= 0 {
            let mut e = self.epochs.lock();
            if header.partition_leader_epoch > e.cache.latest_epoch() {
                e.cache
                    .assign(header.partition_leader_epoch, header.base_offset);
                e.dirty = true;
                new_epoch = true;
            }
        }
        self.view
            .write()
            .bounds_mut()
            .advance_end(end, self.visible_on_write());
        Ok(Appended {
            info: AppendInfo {
                base_offset: Offset(header.base_offset),
                last_offset: Offset(header.last_offset()),
            },
            end,
            need_sync: sync_each || self.threshold_reached(w),
            new_epoch,
            truncations: self.truncations.load(Ordering::SeqCst),
        })
    }

    fn write_at(&self, files: &SegmentFiles, buf: &[u8], position: u64) -> Result<()> {
        let path = || self.dir.join("<active segment>");
        files
            .log
            .write_all_at(buf, position)
            .map_err(|e| Error::io(path(), e))
    }

    /// Zero-fill ahead of the write position (see [`PartitionConfig::preallocate_bytes`]).
    fn preallocate(&self, w: &mut Writer, end: u64, live: &LiveLimits) -> Result<()> {
        static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
        let chunk = live.preallocate_bytes;
        if end <= w.preallocated || chunk == 0 || self.config.durability == Durability::NoSync {
            return Ok(());
        }
        let target = end.max((w.preallocated + chunk).min(live.segment_bytes));
        let mut at = w.preallocated.max(w.size);
        while at < target {
            let n = (target - at).min(ZEROS.len() as u64) as usize;
            self.write_at(&w.files, &ZEROS[..n], at)?;
            at += n as u64;
        }
        w.preallocated = target;
        Ok(())
    }

    /// Seal the active segment and start a new one at the next offset. Caller holds `writer`.
    fn roll_locked(&self, w: &mut Writer, live: &LiveLimits) -> Result<()> {
        let end = w.next_offset;
        if w.preallocated > w.size {
            w.files.log.set_len(w.size).at(&w.active.path(LOG_EXT))?;
        }
        w.active.seal(&w.files, &w.cursor, end, w.size)?;
        let new = Arc::new(Segment::create_active(
            &self.config.fs,
            &self.dir,
            Offset(end),
            live.index_bytes_max,
        )?);
        w.files = new.loaded_files().expect("a new active segment is loaded");
        // The sealed segment counts against `open_segments_max` from now on, under every
        // policy: waiting for an fsync does not keep its files open.
        w.unsynced_sealed.push(w.active.clone());
        self.track_loaded(&w.active);
        w.dir_dirty = true;
        let mut segments = Vec::clone(&w.segments);
        segments.push(new.clone());
        w.segments = Arc::new(segments);
        w.active = new;
        w.cursor = IndexCursor::new(live.index_interval_bytes);
        w.size = 0;
        w.preallocated = 0;
        w.first_timestamp = None;
        let mut v = self.view.write();
        v.replace_segments(w.segments.clone());
        v.bounds_mut()
            .advance_end(w.position(), self.visible_on_write());
        Ok(())
    }

    /// Seal the active segment now if it holds any data (a no-op on an empty one).
    pub fn roll(&self) -> Result<()> {
        let mut w = self.writer.lock();
        self.check_writable()?;
        if w.size == 0 {
            return Ok(());
        }
        if let Err(e) = self.roll_locked(&mut w, &self.live_limits()) {
            return self.fail(e);
        }
        Ok(())
    }

    fn threshold_reached(&self, w: &Writer) -> bool {
        match &self.config.durability {
            Durability::SyncThreshold {
                records,
                bytes,
                interval,
            } => {
                records.is_some_and(|n| w.unsynced_records >= n)
                    || bytes.is_some_and(|n| w.unsynced_bytes >= n)
                    || interval.is_some_and(|d| w.unsynced_since.is_some_and(|t| t.elapsed() >= d))
            }
            _ => false,
        }
    }

    /// Make every appended batch durable (fsync), whatever the policy.
    pub fn flush(&self) -> Result<()> {
        let end = self.writer.lock().next_offset;
        self.sync_to(end)
    }

    /// Under [`Durability::SyncThreshold`], fsync if a threshold (including the interval) has
    /// been reached. Returns whether it synced. Call it from a timer if appends may pause for
    /// longer than the interval.
    pub fn flush_if_due(&self) -> Result<bool> {
        let (due, end) = {
            let w = self.writer.lock();
            (self.threshold_reached(&w), w.next_offset)
        };
        if due {
            self.sync_to(end)?;
        }
        Ok(due)
    }

    fn notify_waiters(&self) {
        if self.waiters.load(Ordering::Acquire) > 0 {
            let _g = self.notify.lock();
            self.notify_cond.notify_all();
        }
    }

    /// Block until the high watermark passes `offset` (a record at `offset` is readable) or
    /// `timeout` elapses. Returns whether it did. Wakes on appends, not by polling.
    pub fn wait_for(&self, offset: Offset, timeout: Duration) -> bool {
        self.wait_for_or_wake(offset, timeout, &AtomicBool::new(false))
    }

    /// [`wait_for`](Self::wait_for) that also returns (`false`) once `wake` is set and
    /// [`wake_waiters`](Self::wake_waiters) is called: a consumer's `wakeup`.
    pub(crate) fn wait_for_or_wake(
        &self,
        offset: Offset,
        timeout: Duration,
        wake: &AtomicBool,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        self.waiters.fetch_add(1, Ordering::AcqRel);
        let mut g = self.notify.lock();
        let ok = loop {
            if self.view.read().high_watermark().offset > offset.0 {
                break true;
            }
            if wake.load(Ordering::Acquire) {
                break false;
            }
            if self.closed.load(Ordering::Acquire)
                || self.notify_cond.wait_until(&mut g, deadline).timed_out()
            {
                break self.view.read().high_watermark().offset > offset.0;
            }
        };
        drop(g);
        self.waiters.fetch_sub(1, Ordering::AcqRel);
        ok
    }

    /// Wake every [`wait_for_or_wake`](Self::wait_for_or_wake) so it re-checks its flag.
    pub(crate) fn wake_waiters(&self) {
        let _g = self.notify.lock();
        self.notify_cond.notify_all();
    }

    /// Make `offset` the new log start: records below it are no longer readable, and whole
    /// segments below it are deleted. The new start is persisted (checkpoint written via temp
    /// file, fsync and rename) before this returns, so the records never come back after a
    /// reopen. `offset` may not exceed the high watermark; a lower one than the current start
    /// is a no-op.
    pub fn delete_records_before(&self, offset: Offset) -> Result<Offset> {
        let _r = self.retention.lock();
        self.check_structure()?;
        let v = self.view();
        if offset.0 > v.high_watermark().offset {
            return Err(Error::InvalidOffset {
                offset,
                reason: "beyond the high watermark",
            });
        }
        if offset.0 <= v.log_start() {
            return Ok(Offset(v.log_start()));
        }
        write_log_start(&self.config.fs, &self.dir, offset.0)?;
        self.view.write().bounds_mut().advance_log_start(offset.0);
        if self.epochs.lock().cache.truncate_from_start(offset.0) {
            self.epochs.lock().dirty = true;
            self.persist_epochs()?;
        }
        self.retain_locked(now_ms())?;
        Ok(offset)
    }

    /// Apply `retention_ms` and `retention_bytes` against the current time.
    pub fn apply_retention(&self) -> Result<RetentionPlan> {
        self.apply_retention_at(now_ms())
    }

    /// Apply retention as if the time were `now_ms`: plan with [`retention::plan`], then delete.
    pub fn apply_retention_at(&self, now_ms: i64) -> Result<RetentionPlan> {
        let _r = self.retention.lock();
        self.check_structure()?;
        self.retain_locked(now_ms)
    }

    /// What retention needs to know about every segment (loads sealed segments).
    pub fn segment_infos(&self) -> Result<Vec<SegmentInfo>> {
        let v = self.view();
        let n = v.segments().len();
        v.segments()
            .iter()
            .enumerate()
            .map(|(i, s)| {
                if i + 1 == n || s.base_offset().0 == v.log_end().segment_base {
                    let w = self.writer.lock();
                    if Arc::ptr_eq(&w.active, s) {
                        return Ok(SegmentInfo {
                            base_offset: s.base_offset(),
                            end_offset: Offset(w.next_offset),
                            size_bytes: w.size,
                            max_timestamp: w.cursor.max_timestamp(),
                        });
                    }
                }
                let meta = self.sealed_meta(s, s.base_offset())?;
                Ok(SegmentInfo {
                    base_offset: s.base_offset(),
                    end_offset: s.end_offset().expect("sealed"),
                    size_bytes: meta.size,
                    max_timestamp: meta.max_timestamp,
                })
            })
            .collect()
    }

    fn retain_locked(&self, now_ms: i64) -> Result<RetentionPlan> {
        let v = self.view();
        let infos = self.segment_infos()?;
        let policy = self.live_limits().retention_policy();
        let plan = retention::plan(
            &infos,
            Offset(v.log_start()),
            Offset(v.high_watermark().offset),
            now_ms,
            policy,
        );
        if plan.roll_active && self.roll_expired_active(infos.last())? {
            // The expired records are in a sealed segment now: plan again to delete it.
            return self.retain_locked(now_ms);
        }
        if plan.delete_count == 0 {
            return Ok(plan);
        }
        if plan.log_start_offset.0 > v.log_start() {
            // Persisted (both copies) before any file goes: the removals may reach the disk in
            // any order, and a segment left below a removed one must not be read again after a
            // power loss (deleted records back, and a hole in the offsets after them); a first
            // segment found missing at open is then damage.
            write_log_start(&self.config.fs, &self.dir, plan.log_start_offset.0)?;
        }
        let doomed: Vec<Arc<Segment>> = {
            let mut w = self.writer.lock();
            let keep = w.segments[plan.delete_count..].to_vec();
            let doomed = w.segments[..plan.delete_count].to_vec();
            assert!(
                doomed
                    .iter()
                    .zip(v.segments().iter())
                    .all(|(a, b)| Arc::ptr_eq(a, b)),
                "only retention removes segments, and it is serialised"
            );
            // Deleted segments need no fsync: do not keep them waiting for one.
            let first_kept = keep.first().expect("retention keeps the active segment");
            let first_kept = first_kept.base_offset();
            w.unsynced_sealed.retain(|s| s.base_offset() >= first_kept);
            self.loaded.lock().retain(|s| s.base_offset() >= first_kept);
            w.segments = Arc::new(keep);
            let mut view = self.view.write();
            view.replace_segments(w.segments.clone());
            view.bounds_mut().advance_log_start(plan.log_start_offset.0);
            let mut e = self.epochs.lock();
            if e.cache.truncate_from_start(view.log_start()) {
                e.dirty = true;
            }
            doomed
        };
        // Readers that still hold these segments keep their open file handles; nothing else
        // does, so the space is freed when they let go.
        let removal = doomed
            .iter()
            .try_for_each(|s| {
                s.release_deleted();
                s.delete_files()
            })
            .and_then(|()| checkpoint::sync_dir_in(&self.config.fs, &self.dir));
        if let Err(e) = removal {
            // Segments left out of the list but still on disk, no longer fsynced by `flush`
            // or `close`: a clean close would vouch for them (the recovery point past them)
            // and the next open would bring them back unsynced. Refuse appends and a clean
            // close until reopened; the open recovers them.
            return self.fail(e);
        }
        self.persist_epochs()?; // after the removal: a failure must not skip its fence
        Ok(plan)
    }

    /// Roll the active segment for retention if it is still the one `planned` describes (no
    /// append since the plan: a newer record would not be expired). Returns whether it rolled.
    fn roll_expired_active(&self, planned: Option<&SegmentInfo>) -> Result<bool> {
        let mut w = self.writer.lock();
        if self.check_writable().is_err() {
            return Ok(false); // a closed or failed partition keeps its active segment
        }
        let unchanged = planned.is_some_and(|p| {
            p.base_offset == w.active.base_offset() && p.end_offset == Offset(w.next_offset)
        });
        if !unchanged || w.size == 0 {
            return Ok(false);
        }
        if let Err(e) = self.roll_locked(&mut w, &self.live_limits()) {
            return self.fail(e);
        }
        Ok(true)
    }

    /// The files of `seg`, loading them if needed; at most `open_segments_max` sealed segments
    /// stay loaded. A segment that retention deleted before it could be loaded reads as
    /// [`Error::OffsetOutOfRange`] for `offset`: the log start has moved past it.
    pub(crate) fn segment_files(
        &self,
        seg: &Arc<Segment>,
        offset: Offset,
    ) -> Result<Arc<SegmentFiles>> {
        if let Some(files) = seg.loaded_files() {
            return Ok(files);
        }
        let files = seg
            .files()
            .map_err(|e| self.deleted_under_us(e, seg, offset))?;
        self.track_loaded(seg);
        Ok(files)
    }

    /// Walk the batch headers (and CRCs) of the first `size` bytes of `seg`'s log, as reads see
    /// them (its witness, the partition's gap rule), calling `visit` with each valid batch and
    /// its position; the walk stops at the first invalid batch (the outcome says where and
    /// why). Truncation and the follower's boundary and epoch lookups share it.
    pub(super) fn scan_headers(
        &self,
        seg: &Segment,
        files: &SegmentFiles,
        size: u64,
        visit: &mut dyn FnMut(&BatchHeader, u64),
    ) -> Result<ScanOutcome> {
        let base = seg.base_offset().0;
        let witness = files.witness();
        Scan {
            log: &files.log,
            path: &seg.path(LOG_EXT),
            base_offset: base,
            file_len: size,
            full_check: false,
            gaps: self.config.offset_gaps,
            witness: witness.as_deref(),
        }
        .run(0, base, visit)
    }

    /// Size and newest timestamp of a sealed segment, loading it only if its time index needs
    /// rebuilding.
    pub(crate) fn sealed_meta(&self, seg: &Arc<Segment>, offset: Offset) -> Result<SealedMeta> {
        let meta = seg
            .sealed_meta()
            .map_err(|e| self.deleted_under_us(e, seg, offset))?;
        if let Some(meta) = meta {
            return Ok(meta);
        }
        self.segment_files(seg, offset)?;
        Ok(seg
            .sealed_meta()?
            .expect("loaded files know their metadata"))
    }

    fn track_loaded(&self, seg: &Arc<Segment>) {
        let mut loaded = self.loaded.lock();
        loaded.push_back(seg.clone());
        let max = self.live_limits().open_segments_max;
        while loaded.len() > max {
            if let Some(old) = loaded.pop_front() {
                old.unload();
            }
        }
    }

    fn deleted_under_us(&self, e: Error, seg: &Arc<Segment>, offset: Offset) -> Error {
        let not_found =
            matches!(&e, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound);
        let v = self.view.read();
        if not_found && !v.segments().iter().any(|s| Arc::ptr_eq(s, seg)) {
            return Error::OffsetOutOfRange {
                offset,
                log_start_offset: Offset(v.log_start()),
                high_watermark: Offset(v.high_watermark().offset),
            };
        }
        e
    }

    /// Flush everything, write the clean-shutdown marker, refuse further appends and release
    /// the directory lock. Reads keep working. The next `open` skips recovery. Dropping a
    /// partition closes it the same way, ignoring errors; call `close` to see them.
    ///
    /// A `close` that fails (an fsync or a checkpoint write) still closes the handle and
    /// releases the lock: the directory can be opened again at once, and that open recovers
    /// (scans from the recovery point) since no clean-shutdown marker was written.
    pub fn close(&self) -> Result<()> {
        // Retention and compaction finish first (they check `closed` before starting), and no
        // fsync is in flight: nothing may touch the files once the lock is released.
        let _structure = self.retention.lock();
        let _sync_slot = self.claim_sync_slot();
        let mut w = self.writer.lock();
        let already = self.closed.swap(true, Ordering::AcqRel);
        self.notify_waiters();
        if self.failed.load(Ordering::Acquire) {
            return Err(Error::PreviousIoFailed);
        }
        if already {
            return Ok(());
        }
        let result = (|| {
            let sync = |f: &SegmentFiles| -> Result<()> { f.log.sync_data().at(&self.dir) };
            for seg in std::mem::take(&mut w.unsynced_sealed) {
                seg.sync_log()?;
            }
            if w.preallocated > w.size {
                w.files.log.set_len(w.size).at(&w.active.path(LOG_EXT))?;
            }
            sync(&w.files)?;
            if w.dir_dirty {
                // Segment files created since the last sync must be named on disk before the
                // recovery point passes them (a rename may reach the disk before a creation
                // made ahead of it).
                checkpoint::sync_dir_in(&self.config.fs, &self.dir)?;
                w.dir_dirty = false;
            }
            w.active.close_active(&w.files, &w.cursor, w.next_offset)?;
            // The clean-shutdown marker vouches for the indexes too: make them durable first.
            w.active.sync_indexes()?;
            self.persist_epochs()?;
            if self.config.high_watermark_external {
                let hw = self.view.read().high_watermark().offset;
                checkpoint::write(&self.config.fs, &self.dir.join(HIGH_WATERMARK_FILE), hw)?;
            }
            checkpoint::write(
                &self.config.fs,
                &self.dir.join(RECOVERY_POINT_FILE),
                w.next_offset,
            )?;
            let marker = self.dir.join(CLEAN_SHUTDOWN_FILE);
            self.config
                .fs
                .open(&marker, OpenFlags::CREATE_TRUNCATE)
                .and_then(|f| f.sync_all())
                .at(&marker)?;
            checkpoint::sync_dir_in(&self.config.fs, &self.dir)
        })();
        if result.is_ok() {
            // Everything is on disk: appenders waiting for an fsync are done, readers may see it.
            let end = w.position();
            let _s = self.sync.lock();
            self.publish_durable(end, true);
        } else {
            self.failed.store(true, Ordering::Release);
        }
        // Closed either way: this handle writes nothing more (appends, fsyncs, retention and
        // compaction all refuse), so the directory may be opened again at once, and a failed
        // close is recovered by that open.
        self.dir_lock.lock().take();
        result
    }

    /// Drop without closing, as if the process had died: no flush, no marker, the directory
    /// lock released (feature `testing`). Pair it with
    /// [`SimFs::power_loss`](crate::testing::SimFs::power_loss) to lose what was not durable.
    #[cfg(feature = "testing")]
    pub fn simulate_crash(self) {
        self.skip_close.store(true, Ordering::Release);
    }

    /// [`simulate_crash`](Partition::simulate_crash) of a shared handle (feature `testing`):
    /// from now on every handle refuses changes (as after `close`), nothing more is written
    /// (no flush, no marker), and the directory lock is released so that the directory can be
    /// reopened, as by a restarted process. Appends and fsyncs already past their checks may
    /// still finish, as in a process that dies a moment later.
    #[cfg(feature = "testing")]
    pub fn simulate_crash_shared(&self) {
        let _w = self.writer.lock();
        self.skip_close.store(true, Ordering::Release);
        self.closed.store(true, Ordering::Release);
        self.dir_lock.lock().take();
        self.notify_waiters();
    }

    /// [`append_with_meta`](Partition::append_with_meta) without waiting for the policy's
    /// fsync: the batch is written and its offsets returned; a later `flush` (or another
    /// append's fsync) makes it durable. For acks=none appends of a replicator.
    pub(crate) fn append_no_wait(
        &self,
        records: &[Record],
        meta: &BatchMeta,
    ) -> Result<AppendInfo> {
        let live = self.live_limits();
        let (mut buf, header) = encode_for_append(records, meta, &live)?;
        let appended = self.append_at_end(&mut buf, &mut [header], &live)?;
        self.notify_waiters();
        if appended.new_epoch {
            self.persist_epochs()?;
        }
        Ok(appended.info)
    }
}

/// The plan of an append: check the records against the policy, encode and checksum.
fn encode_for_append(
    records: &[Record],
    meta: &BatchMeta,
    live: &LiveLimits,
) -> Result<(Vec<u8>, BatchHeader)> {
    let limits = EncodeLimits {
        record_bytes_max: live.record_bytes_max,
        batch_bytes_max: live.batch_bytes_max,
    };
    if live.cleanup_policy.compacts() {
        if let Some(index) = records.iter().position(|r| r.key.is_none()) {
            return Err(Error::MissingKey { index });
        }
    }
    timestamps::check_timestamps(records)?;
    let options = EncodeOptions {
        compression: live.compression,
        // Stamped before the CRC is computed: the CRC covers maxTimestamp.
        log_append_time: (live.timestamp_type == TimestampType::LogAppendTime).then(now_ms),
    };
    let buf = batch::encode_batch(records, meta, limits, options)?;
    let header = BatchHeader::parse(&buf).expect("freshly encoded batch parses");
    Ok((buf, header))
}

/// Whether `h` must go into a new segment. An active segment based above the log end is
/// a bug recovery must not leave behind: a typed error rather than a wrapped subtraction.
fn should_roll(w: &Writer, h: &BatchHeader, live: &LiveLimits) -> Result<bool> {
    if w.size == 0 {
        return Ok(false);
    }
    let len = h.total_len() as u64;
    let too_big = w.size + len > live.segment_bytes;
    let too_old = match (live.segment_ms, w.first_timestamp) {
        (Some(ms), Some(first)) => {
            h.max_timestamp.saturating_sub(first) >= i64::try_from(ms).unwrap_or(i64::MAX)
        }
        _ => false,
    };
    // Relative offsets are Kafka's i32 in the indexes; keep one spare.
    let relative_last = (w.next_offset + u64::from(h.last_offset_delta))
        .checked_sub(w.active.base_offset().0)
        .ok_or_else(|| Error::Corrupt {
            path: w.active.path(LOG_EXT),
            position: 0,
            reason: CorruptKind::BadOffset,
        })?;
    let offsets_full = relative_last >= RELATIVE_OFFSET_MAX - 1;
    // The time index keeps room for the entry sealing adds.
    let index_full = w.files.index.read().is_full() || {
        let t = w.files.time_index.read();
        t.len() + 1 >= t.capacity()
    };
    Ok(too_big || too_old || offsets_full || index_full)
}

impl Drop for Partition {
    fn drop(&mut self) {
        if !self.skip_close.load(Ordering::Acquire) && !self.failed.load(Ordering::Acquire) {
            let _ = self.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn partition_is_send_and_sync() {
        assert_send_sync::<Partition>();
    }

    #[test]
    fn recovery_keeps_a_bounded_number_of_segments_open() {
        let dir = tempfile::tempdir().unwrap();
        let config = PartitionConfig::default()
            .with_durability(Durability::NoSync)
            .with_segment_bytes(crate::log::config::SEGMENT_BYTES_MIN)
            .with_segment_ms(None);
        let p = Partition::open(dir.path(), config.clone()).unwrap();
        for i in 0..400 {
            p.append(&[Record::new(vec![b'x'; 300]).with_timestamp(i)])
                .unwrap();
        }
        let segments = p.segment_count();
        assert!(segments > 50, "{segments} segments");
        // No flush: the recovery point is still 0, so recovery scans every segment.
        p.simulate_crash();
        let p = Partition::open(dir.path(), config).unwrap();
        assert_eq!(p.recovery_report().segments_scanned, segments);
        let loaded = p
            .view()
            .segments()
            .iter()
            .filter(|s| s.loaded_files().is_some())
            .count();
        assert!(
            loaded <= 3,
            "{loaded} of {segments} segments left open by recovery"
        );
        assert_eq!(p.log_end_offset(), Offset(400));
    }
}
