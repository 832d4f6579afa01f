//! What any replication scheme needs from a partition: appending batches a leader already
//! gave offsets and epochs (a follower's append), the leader epoch cache and its checkpoint,
//! a high watermark set from outside, reads up to the log end, and durable-end notifications.
//!
//! The follower append is a plan and an act like `append`: every batch is checked (header,
//! size, CRC, records, order) before the append lock is taken; under it the batches must
//! continue the log end and not go back in epoch, and each goes through the shared
//! `write_locked`. The epoch cache changes under `writer` (in memory) and its checkpoint is
//! written after the lock is released (`persist_epochs`), before the recovery point can move
//! past the batch that changed it, so recovery's rescan (from the recovery point) finds every
//! epoch the checkpoint missed.

use std::sync::Arc;

use super::state::Position;
use super::{AppendInfo, Partition, ReadBatches, HIGH_WATERMARK_FILE};
use crate::error::{Error, Result};
use crate::format::batch::{self, BatchHeader};
use crate::io::checkpoint;
use crate::log::epoch::{EpochCache, EpochEntry, LEADER_EPOCH_CHECKPOINT_FILE};
use crate::offset::Offset;

/// Why batch `h` cannot be appended where offset `expected` comes next: a gap (a
/// compacted leader's batches, refused until a follower append writes a batch witness) or an
/// overlap.
fn not_following(expected: u64, h: &BatchHeader) -> Error {
    if h.base_offset > expected {
        Error::OffsetGapUnsupported {
            expected: Offset(expected),
            found: Offset(h.base_offset),
        }
    } else {
        Error::NonContiguousAppend {
            expected: Offset(expected),
            found: Offset(h.base_offset),
        }
    }
}

/// A callback told the new durable end (every offset below it is on disk) after each fsync,
/// on the thread that ran it, with no partition lock held. It must not block for long: the
/// appenders that shared the fsync wait for it.
pub type DurableListener = Arc<dyn Fn(Offset) + Send + Sync>;

impl Partition {
    /// Append batches that already carry their offsets and leader epochs (assigned by a
    /// leader): `bytes` holds whole encoded batches back to back, as a leader's
    /// [`read_uncommitted`](Partition::read_uncommitted) returns them. Returns the offsets
    /// covered, or `None` for empty input.
    ///
    /// Each batch is checked like input before anything is written: header, size (at most
    /// `batch_bytes_max`), CRC and every record. The first must start exactly at the log end,
    /// each next one right after the previous one; epochs may not decrease, nor fall below
    /// the partition's latest epoch. Any failure is a typed error ([`Error::InvalidBatch`],
    /// [`Error::NonContiguousAppend`], [`Error::LeaderEpochRegression`]) and writes nothing.
    ///
    /// Offset gaps (a compacted leader's batches) are refused with
    /// [`Error::OffsetGapUnsupported`]: a gap is accepted only where the segment's batch
    /// witness lists it (see `docs/format.md`, "Batch witness"), and a follower append does
    /// not write one yet, so a compacted leader cannot be followed. The bytes are stored as given
    /// (no re-stamping of offsets, epochs or timestamps), under the partition's durability.
    pub fn append_batches(&self, bytes: &[u8]) -> Result<Option<AppendInfo>> {
        let live = self.live_limits();
        let headers = self.check_follower_batches(bytes, live.batch_bytes_max)?;
        let (Some(first), Some(last)) = (headers.first(), headers.last()) else {
            return Ok(None);
        };
        let info = AppendInfo {
            base_offset: Offset(first.base_offset),
            last_offset: Offset(last.last_offset()),
        };
        let mut w = self.writer.lock();
        self.check_writable()?;
        if !first.follows(w.next_offset, self.config.offset_gaps) {
            return Err(not_following(w.next_offset, first));
        }
        let latest = self.epochs.lock().cache.latest_epoch();
        if first.partition_leader_epoch < latest {
            return Err(Error::LeaderEpochRegression {
                epoch: first.partition_leader_epoch,
                latest,
            });
        }
        let mut at = 0;
        let mut appended = None;
        let mut new_epoch = false;
        for h in &headers {
            let len = h.total_len();
            // Batches follow each other exactly (gaps were refused above).
            w.next_offset = h.base_offset;
            match self.write_locked(&mut w, &bytes[at..at + len], h, &live) {
                Ok(a) => {
                    new_epoch |= a.new_epoch;
                    appended = Some(a);
                }
                Err(e) => return self.fail(e),
            }
            at += len;
        }
        drop(w);
        let mut appended = appended.expect("at least one batch");
        // Any batch may have started an epoch, not only the last.
        appended.new_epoch = new_epoch;
        self.after_append(&appended)?;
        Ok(Some(info))
    }

    /// The plan of `append_batches`: parse and check every batch of `bytes`.
    fn check_follower_batches(&self, bytes: &[u8], limit: usize) -> Result<Vec<BatchHeader>> {
        let mut headers: Vec<BatchHeader> = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let invalid = |reason| Error::InvalidBatch {
                position: at,
                reason,
            };
            let h = batch::check_batch(&bytes[at..]).map_err(invalid)?;
            if h.total_len() > limit {
                return Err(Error::BatchTooLarge {
                    size: h.total_len(),
                    limit,
                });
            }
            if let Some(prev) = headers.last() {
                if !h.follows(prev.last_offset() + 1, self.config.offset_gaps) {
                    return Err(not_following(prev.last_offset() + 1, &h));
                }
                if h.partition_leader_epoch < prev.partition_leader_epoch {
                    return Err(Error::LeaderEpochRegression {
                        epoch: h.partition_leader_epoch,
                        latest: prev.partition_leader_epoch,
                    });
                }
            }
            at += h.total_len();
            headers.push(h);
        }
        Ok(headers)
    }

    /// Read like [`read`](Partition::read), but up to the log end instead of the high
    /// watermark: what a follower fetches from its leader. Records above the high watermark
    /// may still be truncated away by a leader change; consumers must not see them.
    pub fn read_uncommitted(&self, offset: Offset, max_bytes: usize) -> Result<ReadBatches> {
        let view = self.view();
        let bound = view.log_end();
        self.read_below(&view, bound, offset, max_bytes)
    }

    /// Every offset below this is on disk (fsynced).
    pub fn durable_end_offset(&self) -> Offset {
        Offset(self.view.read().bounds().durable_end())
    }

    /// Install (or with `None` remove) the callback told the new durable end after each fsync
    /// (see [`DurableListener`]). Appenders never wait for a listener to be called: it runs
    /// after the fsync on the syncing thread. Under [`Durability::NoSync`] it runs only on
    /// [`flush`](Partition::flush).
    ///
    /// [`Durability::NoSync`]: crate::Durability::NoSync
    pub fn set_durable_listener(&self, listener: Option<DurableListener>) {
        *self.durable_listener.write() = listener;
    }

    pub(super) fn notify_durable(&self, end: u64) {
        let listener = self.durable_listener.read().clone();
        if let Some(f) = listener {
            f(Offset(end));
        }
    }

    /// Whether an append is visible to readers as soon as it is written.
    pub(super) fn visible_on_write(&self) -> bool {
        self.config.durability != crate::log::config::Durability::SyncEachAppend
            && !self.config.high_watermark_external
    }

    /// Start leader epoch `epoch` at the log end: later appends without an epoch of their own
    /// are stamped with it (Kafka's `maybeAssignEpochStartOffset` when a replica becomes
    /// leader). Not persisted: after a reopen, assign it again (the latest epoch is a no-op). The checkpoint is written
    /// before this returns. Re-assigning the latest epoch is a no-op; a lower one is
    /// [`Error::LeaderEpochRegression`]; a negative one [`Error::InvalidOffset`].
    pub fn assign_leader_epoch(&self, epoch: i32) -> Result<()> {
        if epoch < 0 {
            return Err(Error::InvalidOffset {
                offset: Offset(0),
                reason: "a leader epoch is not negative",
            });
        }
        {
            let mut w = self.writer.lock();
            self.check_writable()?;
            let mut e = self.epochs.lock();
            let latest = e.cache.latest_epoch();
            if epoch < latest {
                return Err(Error::LeaderEpochRegression { epoch, latest });
            }
            if e.cache.assign(epoch, w.next_offset) {
                e.dirty = true;
            }
            w.leading = Some(epoch);
        }
        self.persist_epochs()
    }

    /// The latest leader epoch in the cache; `None` before any.
    pub fn leader_epoch(&self) -> Option<i32> {
        self.epochs.lock().cache.latest().map(|e| e.epoch)
    }

    /// The leader epoch cache: each epoch and the offset of its first record, oldest first.
    pub fn leader_epochs(&self) -> Vec<EpochEntry> {
        self.epochs.lock().cache.entries().to_vec()
    }

    /// Kafka's `OffsetsForLeaderEpoch` (KIP-101, KIP-279): the largest epoch at or below
    /// `epoch` that this log knows and the offset where it ends (the start of the next known
    /// epoch, or the log end for the latest). `None` when `epoch` is negative or above every
    /// known epoch. A follower whose last epoch is `e` truncates to the returned offset (if
    /// below its log end) before fetching.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, Offset)> {
        let w = self.writer.lock();
        let e = self.epochs.lock();
        e.cache
            .end_offset_for(epoch, w.next_offset)
            .map(|(ep, o)| (ep, Offset(o)))
    }

    /// Set the high watermark (partitions with
    /// [`high_watermark_external`](crate::PartitionConfig::high_watermark_external)): readers
    /// see records below `offset` from now on. It only moves forward (a lower `offset` is a
    /// no-op) and must lie at a batch boundary at or below the log end; a replicator sets
    /// it to what enough replicas hold. Returns the high watermark after the call.
    pub fn set_high_watermark(&self, offset: Offset) -> Result<Offset> {
        if !self.config.high_watermark_external {
            return Err(Error::InvalidOffset {
                offset,
                reason: "the high watermark follows appends unless high_watermark_external",
            });
        }
        // Held from the lookup to the advance: a truncation in between would leave the
        // watermark above the log end.
        let w = self.writer.lock();
        let v = self.view();
        if offset.0 <= v.high_watermark().offset {
            return Ok(Offset(v.high_watermark().offset));
        }
        if offset.0 > v.log_end().offset {
            return Err(Error::InvalidOffset {
                offset,
                reason: "beyond the log end",
            });
        }
        let at = self.boundary_at_or_below_locked(&w, offset.0)?;
        if at.offset != offset.0 {
            return Err(Error::InvalidOffset {
                offset,
                reason: "not at a batch boundary",
            });
        }
        self.view.write().bounds_mut().advance_high_watermark(at);
        drop(w);
        self.notify_waiters();
        Ok(Offset(self.view.read().high_watermark().offset))
    }

    /// Write the high watermark's checkpoint now (it is written at `close` too); a replicator
    /// calls it from time to time. Reopening restores at most this value.
    pub fn checkpoint_high_watermark(&self) -> Result<()> {
        let hw = self.view.read().high_watermark().offset;
        checkpoint::write(&self.config.fs, &self.dir.join(HIGH_WATERMARK_FILE), hw)
    }

    /// The last batch boundary at or below `offset` (at most the log end) and where it lies:
    /// from the recent batch ends, or by a scan of the segment holding `offset`.
    fn boundary_at_or_below(&self, offset: u64) -> Result<Position> {
        let w = self.writer.lock();
        self.boundary_at_or_below_locked(&w, offset)
    }

    /// [`boundary_at_or_below`](Self::boundary_at_or_below) with `writer` held by the caller
    /// (so no truncation moves the log meanwhile).
    fn boundary_at_or_below_locked(&self, w: &super::Writer, offset: u64) -> Result<Position> {
        if offset >= w.next_offset {
            return Ok(w.position());
        }
        if let Ok(i) = w.recent_ends.binary_search_by_key(&offset, |p| p.offset) {
            return Ok(w.recent_ends[i]);
        }
        let v = self.view();
        let i = v
            .segments()
            .partition_point(|s| s.base_offset().0 <= offset)
            .saturating_sub(1);
        let seg = v.segments()[i].clone();
        let base = seg.base_offset().0;
        if base >= offset {
            return Ok(Position::segment_start(base));
        }
        let files = self.segment_files(&seg, Offset(offset))?;
        let size = match files.sealed_size() {
            Some(size) => size,
            None => v.log_end().bytes,
        };
        let mut found = Position::segment_start(base);
        self.scan_headers(&seg, &files, size, &mut |h, pos| {
            if h.last_offset() < offset {
                found = Position {
                    offset: h.last_offset() + 1,
                    segment_base: base,
                    bytes: pos + h.total_len() as u64,
                };
            }
        })?;
        Ok(found)
    }

    /// Write the epoch checkpoint if the cache changed since it was last written: temp file,
    /// fsync, rename, directory fsync. Never called with `epoch_file` held by the caller.
    pub(super) fn persist_epochs(&self) -> Result<()> {
        let _file = self.epoch_file.lock();
        let bytes = {
            let mut e = self.epochs.lock();
            if !e.dirty {
                return Ok(());
            }
            e.dirty = false;
            e.cache.encode()
        };
        let path = self.dir.join(LEADER_EPOCH_CHECKPOINT_FILE);
        let fs = &self.config.fs;
        let result = checkpoint::replace_file_in(fs, &path.with_extension("tmp"), &path, &bytes)
            .and_then(|()| checkpoint::sync_dir_in(fs, &self.dir));
        if result.is_err() {
            self.epochs.lock().dirty = true;
        }
        result
    }

    /// At open: load the epoch cache from its checkpoint, fit it to the log, and rebuild from
    /// batch headers what a crash may have kept from it (from `recovery_point`, or from the
    /// start when the checkpoint is missing or damaged: it is a cache of the batch headers).
    pub(super) fn init_epochs(&self, recovery_point: u64, clean: bool) -> Result<()> {
        let path = self.dir.join(LEADER_EPOCH_CHECKPOINT_FILE);
        let loaded = match self.config.fs.read(&path) {
            Ok(bytes) => EpochCache::parse(&bytes, &path).ok(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io(path, e)),
        };
        let v = self.view();
        let (log_start, log_end) = (v.log_start(), v.log_end().offset);
        let missing = loaded.is_none();
        let mut cache = loaded.unwrap_or_default();
        let mut dirty = missing;
        dirty |= cache.truncate_from_end(log_end);
        let rescan_from = if missing {
            Some(log_start)
        } else if clean {
            None
        } else {
            // Epochs the checkpoint missed start after its latest entry and (for a
            // partition whose recovery point moved) after the recovery point.
            Some(match cache.latest() {
                Some(l) => l.start_offset.min(recovery_point),
                None if self.config.high_watermark_external => log_start,
                None => recovery_point,
            })
        };
        if let Some(from) = rescan_from {
            dirty |= self.scan_epochs(from, &mut cache)?;
        }
        dirty |= cache.truncate_from_start(log_start);
        *self.epochs.lock() = super::EpochState { cache, dirty };
        self.persist_epochs()
    }

    /// Add to the cache the epochs of the batches in the segments from the one holding
    /// `from` that are newer than its latest: epochs only grow along the log, so what a crash
    /// kept out of the checkpoint is a suffix of epochs, each starting at its first batch. Entries the
    /// checkpoint has are trusted (as Kafka does outside the segments it recovers): a batch of
    /// an older epoch never overrides them. Returns whether the cache changed.
    fn scan_epochs(&self, from: u64, cache: &mut EpochCache) -> Result<bool> {
        let v = self.view();
        let first = v
            .segments()
            .partition_point(|s| s.base_offset().0 <= from)
            .saturating_sub(1);
        let before = cache.clone();
        for seg in &v.segments()[first..] {
            // Segments loaded only for this scan are closed after it (open stays bounded).
            let was_loaded = seg.loaded_files().is_some();
            let files = seg.files()?;
            let size = files.sealed_size().unwrap_or(v.log_end().bytes);
            self.scan_headers(seg, &files, size, &mut |h, _| {
                if h.partition_leader_epoch > cache.latest_epoch() {
                    cache.assign(h.partition_leader_epoch, h.base_offset);
                }
            })?;
            drop(files);
            if !was_loaded {
                seg.unload();
            }
        }
        Ok(*cache != before)
    }

    /// At open, for a partition whose high watermark is external: restore the checkpointed
    /// one (at most the log end; the log start when there is none).
    pub(super) fn init_high_watermark(&self) -> Result<()> {
        if !self.config.high_watermark_external {
            return Ok(());
        }
        let path = self.dir.join(HIGH_WATERMARK_FILE);
        // A damaged checkpoint costs only a lower watermark until the replicator moves it.
        let saved = checkpoint::read(&self.config.fs, &path).ok().flatten();
        let v = self.view();
        let target = saved.unwrap_or(0).clamp(v.log_start(), v.log_end().offset);
        let mut at = self.boundary_at_or_below(target)?;
        // The log start may lie inside a batch: the watermark is never below it.
        at.offset = at.offset.max(v.log_start());
        self.view.write().bounds_mut().restore_high_watermark(at);
        Ok(())
    }

    /// The truncation's share of the epoch cache: drop epochs starting at or after `end` and
    /// write the checkpoint. Caller holds `writer` (`epoch_file` is never held while
    /// `writer` is waited for, so this cannot deadlock).
    pub(super) fn truncate_epochs(&self, end: u64) -> Result<()> {
        {
            let mut e = self.epochs.lock();
            if e.cache.truncate_from_end(end) {
                e.dirty = true;
            }
        }
        self.persist_epochs()
    }
}
