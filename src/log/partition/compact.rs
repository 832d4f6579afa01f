//! Keyed compaction: keep at least the newest record of every key.
//!
//! A pass works on the *cleanable* prefix of the log: sealed segments wholly below the high
//! watermark whose newest record is older than `min_compaction_lag_ms` (the active segment is
//! never touched). The cleaner checkpoint splits that prefix into a clean head (compacted
//! before) and a dirty tail. A pass
//!
//! 1. maps every key of the dirty tail, from the checkpoint on, to its newest offset, stopping
//!    at a batch boundary once the map reaches `map_bytes_max` (the map's end is the pass end);
//! 2. rewrites every cleanable segment below the pass end, keeping a record unless the map
//!    holds a newer offset for its key, or it is a tombstone older than
//!    `delete_retention_ms` whose key has no older value left; groups of adjacent segments
//!    whose sizes add up to at most `segment_bytes` become one segment, so the segment count
//!    stays bounded;
//! 3. moves the checkpoint to the pass end. Passes repeat until the dirty tail is done.
//!
//! Rewritten batches keep their base offset, last offset delta, leader epoch and producer
//! fields, and are marked compacted: offsets inside them, and between them and the batch
//! before, may have gaps. Reads at a removed offset return the next record that exists.
//!
//! **Crash safety.** A group is written to `<base>.log.cleaned` (and `.index.cleaned`,
//! `.timeindex.cleaned`) and fsynced. Then a manifest `<base>.swap` holding the end offset of
//! the replaced range is written atomically: that is the commit point. The old files are
//! renamed to `*.deleted`, the cleaned ones to their final names, the segment list is swapped
//! under the append lock (a pointer swap), and the `*.deleted` files and the manifest are
//! removed. `open` finishes any swap whose manifest exists and discards `*.cleaned` files
//! without one, so a crash leaves either the old segments or the new ones, never a mix.
//! Readers holding old segments keep reading the old files: they stay open until dropped.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;

use super::state::Position;
use super::{Partition, RECOVERY_POINT_FILE};
use crate::error::{CorruptKind, IoContext};
use crate::error::{Error, Result};
use crate::format::batch::{self, Batch, BatchHeader};
use crate::format::record::{now_ms, LogRecord};
use crate::io::checkpoint;
use crate::io::fs::Fs;
use crate::log::config::Durability;
use crate::log::index::RELATIVE_OFFSET_MAX;
use crate::log::segment::{
    segment_path, IndexCursor, SealedMeta, Segment, SegmentFiles, INDEX_EXT, LOG_EXT,
    TIME_INDEX_EXT,
};
use crate::log::witness::{Witness, WitnessEntry, WITNESS_EXT};
use crate::offset::Offset;

/// File holding the cleaner checkpoint: offsets below it have been compacted.
pub(crate) const CLEANER_FILE: &str = "cleaner-offset.checkpoint";
/// Suffix of files compaction is writing.
const CLEANED: &str = ".cleaned";
/// Suffix of replaced files waiting to be removed.
const DELETED: &str = ".deleted";
/// Extension of swap manifests: `<base>.swap` holds the end offset of the replaced range.
const SWAP_EXT: &str = "swap";
/// A segment's files, in the order swaps rename them.
const SEGMENT_EXTS: [&str; 4] = [LOG_EXT, INDEX_EXT, TIME_INDEX_EXT, WITNESS_EXT];
/// Bytes charged to the map per key, besides the key's own bytes.
const MAP_ENTRY_OVERHEAD: usize = 64;

/// What a call to [`Partition::compact`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CompactionReport {
    /// Passes run (more than one when the key map's budget was smaller than the dirty tail).
    pub passes: usize,
    /// Segments rewritten (counted once per pass).
    pub segments_cleaned: usize,
    /// Segments written in their place.
    pub segments_written: usize,
    /// Bytes of log read while rewriting.
    pub bytes_read: u64,
    /// Bytes of log written.
    pub bytes_written: u64,
    /// Records read while rewriting.
    pub records_read: u64,
    /// Records dropped because a newer record has the same key.
    pub records_superseded: u64,
    /// Tombstones dropped because they were older than `delete_retention_ms`.
    pub tombstones_removed: u64,
    /// Bytes of dirty log mapped.
    pub dirty_bytes: u64,
    /// The cleaner checkpoint afterwards: everything below it has been compacted.
    pub cleaned_up_to: Offset,
}

/// One cleanable segment, as the pass sees it.
struct Cleanable {
    seg: Arc<Segment>,
    end: u64,
    meta: SealedMeta,
}

impl Partition {
    /// Compact now if the cleanup policy compacts and the dirty ratio calls for it.
    /// See [`Partition::compact_at`].
    pub fn compact(&self) -> Result<CompactionReport> {
        self.compact_at(now_ms(), false)
    }

    /// Compact as if the time were `now_ms` (which decides compaction lag and tombstone
    /// expiry). Unless `force`, nothing happens when the policy does not compact or the dirty
    /// share of the cleanable log is below `min_cleanable_dirty_ratio`.
    ///
    /// Appends and reads go on meanwhile: each swap of rewritten segments holds the append lock
    /// only to replace a pointer. Retention waits for compaction to finish.
    ///
    /// Before rewriting anything it fsyncs everything written, whatever the durability
    /// policy, and rewrites only segments below the recovery point that fsync sets: a record
    /// is never dropped for a newer one that a power loss could still take away, and recovery
    /// knows that offsets above the recovery point were never compacted. On a partition whose
    /// append or fsync failed it fails with [`Error::PreviousIoFailed`] until reopened.
    pub fn compact_at(&self, now_ms: i64, force: bool) -> Result<CompactionReport> {
        let _structure = self.retention.lock();
        self.check_structure()?;
        let cleaner_path = self.dir.join(CLEANER_FILE);
        let mut report = CompactionReport {
            cleaned_up_to: Offset(checkpoint::read(&self.config.fs, &cleaner_path)?.unwrap_or(0)),
            ..Default::default()
        };
        let live = self.live_limits();
        if !force && !live.cleanup_policy.compacts() {
            return Ok(report);
        }
        let view = self.view();
        if report.cleaned_up_to.0 > view.log_end().offset {
            // Only possible if recovery truncated the log below it: whatever the checkpoint
            // claimed about the lost tail means nothing, so compact everything again.
            report.cleaned_up_to = Offset(0);
        }
        let mut first_dirty = report.cleaned_up_to.0.max(view.log_start());
        let cleanable = self.cleanable(now_ms, u64::MAX)?;
        let Some(cleanable_end) = cleanable.last().map(|c| c.end) else {
            return Ok(report);
        };
        if first_dirty >= cleanable_end {
            return Ok(report);
        }
        let dirty: u64 = cleanable
            .iter()
            .filter(|c| c.end > first_dirty)
            .map(|c| c.meta.size)
            .sum();
        let total: u64 = cleanable.iter().map(|c| c.meta.size).sum();
        #[allow(
            clippy::cast_precision_loss,
            reason = "a ratio: 52 bits of mantissa are plenty"
        )]
        let ratio = dirty as f64 / total.max(1) as f64;
        if !force && ratio < live.min_cleanable_dirty_ratio {
            return Ok(report);
        }
        let settled = self.settle_for_compaction()?;
        if !live.cleanup_policy.compacts() {
            // A forced compaction under `delete` may leave offset gaps: the dense-offsets
            // marker goes first (a compacting policy removed it when it took effect).
            self.drop_dense_marker()?;
        }
        let Some(cleanable_end) = self.cleanable(now_ms, settled)?.last().map(|c| c.end) else {
            return Ok(report);
        };
        while first_dirty < cleanable_end {
            let cleanable = self.cleanable(now_ms, settled)?;
            let (map, map_end, mapped) = self.build_map(&cleanable, first_dirty, cleanable_end)?;
            report.dirty_bytes += mapped;
            self.rewrite(&cleanable, &map, map_end, now_ms, &mut report)?;
            checkpoint::write(&self.config.fs, &cleaner_path, map_end)?;
            report.passes += 1;
            report.cleaned_up_to = Offset(map_end);
            first_dirty = map_end;
        }
        Ok(report)
    }

    /// Make everything written durable and set the recovery point to the base of the first
    /// segment not yet fsynced since (the active one after the flush, unless a roll came in
    /// between); returns it. Compaction rewrites only segments that end at or below it, so
    /// that
    /// - offsets at or above the recovery point were never compacted: recovery may hold them
    ///   dense (issue 9: after a power loss under `NoSync`, a sealed segment that had lost its
    ///   data was taken for one compaction had emptied, and the log end skipped the lost
    ///   records);
    /// - a record is never dropped for a newer one of its key that a power loss could still
    ///   take away (the older one may have been acknowledged as durable).
    fn settle_for_compaction(&self) -> Result<u64> {
        // Holding the sync slot: no other fsync runs meanwhile, nor writes an older recovery
        // point after this one.
        let _slot = self.claim_sync_slot();
        if self.failed.load(Ordering::Acquire) {
            return Err(Error::PreviousIoFailed);
        }
        // An fsync even when every offset is durable already: sealing a segment (cutting its
        // preallocated tail) is durable only once the segment is fsynced again.
        let (end, _) = self.sync_now().inspect_err(|_| {
            self.failed.store(true, Ordering::Release);
        })?;
        {
            let _s = self.sync.lock();
            self.publish_durable(end, self.config.durability == Durability::SyncEachAppend);
        }
        self.notify_waiters();
        // A segment's base, not the durable end: the segments below a recovery point are
        // trusted whole, their sealing included, and the active segment is not sealed yet.
        let point = {
            let w = self.writer.lock();
            w.unsynced_sealed
                .first()
                .unwrap_or(&w.active)
                .base_offset()
                .0
        };
        checkpoint::write(&self.config.fs, &self.dir.join(RECOVERY_POINT_FILE), point)?;
        Ok(point)
    }

    /// The cleanable prefix: sealed segments below the high watermark and ending at or below
    /// `up_to`, older than the lag.
    fn cleanable(&self, now_ms: i64, up_to: u64) -> Result<Vec<Cleanable>> {
        let view = self.view();
        let lag = i64::try_from(self.live_limits().min_compaction_lag_ms).unwrap_or(i64::MAX);
        let cutoff = now_ms.saturating_sub(lag);
        let mut out = Vec::new();
        for seg in view.segments().iter() {
            let Some(end) = seg.end_offset() else { break };
            if end.0 > view.high_watermark().offset || end.0 > up_to {
                break;
            }
            let meta = self.sealed_meta(seg, seg.base_offset())?;
            if meta.max_timestamp.is_some_and(|t| t > cutoff) {
                break;
            }
            out.push(Cleanable {
                seg: seg.clone(),
                end: end.0,
                meta,
            });
        }
        Ok(out)
    }

    /// Map each key of `[first_dirty, ..)` to its newest offset until the budget is used up.
    /// Returns the map, the offset where it stops (a batch boundary) and the bytes mapped.
    fn build_map(
        &self,
        cleanable: &[Cleanable],
        first_dirty: u64,
        cleanable_end: u64,
    ) -> Result<(HashMap<Bytes, u64>, u64, u64)> {
        let budget = self.live_limits().map_bytes_max;
        let mut map: HashMap<Bytes, u64> = HashMap::new();
        let mut used = 0usize;
        let mut map_end = first_dirty;
        let mut mapped = 0u64;
        'segments: for c in cleanable.iter().filter(|c| c.end > first_dirty) {
            for batch in self.segment_batches(&c.seg)? {
                let batch = batch?;
                if batch.last_offset().0 < first_dirty {
                    continue;
                }
                // A control batch's key is its marker type, not a user key.
                if batch.header().is_control() {
                    map_end = batch.last_offset().0 + 1;
                    mapped += batch.encoded_len() as u64;
                    continue;
                }
                for r in batch.records() {
                    let r = r?;
                    if let Some(key) = r.key {
                        let len = key.len();
                        if map.insert(key, r.offset.0).is_none() {
                            used += len + MAP_ENTRY_OVERHEAD;
                        }
                    }
                }
                map_end = batch.last_offset().0 + 1;
                mapped += batch.encoded_len() as u64;
                if used >= budget {
                    break 'segments;
                }
            }
            // Gaps left by earlier compaction: the segment covers offsets up to its end.
            map_end = map_end.max(c.end.min(cleanable_end));
        }
        Ok((map, map_end, mapped))
    }

    /// Rewrite every cleanable segment that starts below `map_end`, group by group.
    fn rewrite(
        &self,
        cleanable: &[Cleanable],
        map: &HashMap<Bytes, u64>,
        map_end: u64,
        now_ms: i64,
        report: &mut CompactionReport,
    ) -> Result<()> {
        let targets: Vec<&Cleanable> = cleanable
            .iter()
            .take_while(|c| c.seg.base_offset().0 < map_end)
            .collect();
        let rule = KeepRule {
            map,
            map_end,
            tombstone_horizon: now_ms.saturating_sub(
                i64::try_from(self.live_limits().delete_retention_ms).unwrap_or(i64::MAX),
            ),
        };
        for group in self.groups(&targets) {
            self.rewrite_group(group, &rule, report)?;
        }
        Ok(())
    }

    /// Adjacent segments whose sizes add up to at most `segment_bytes`, one group at least per
    /// segment, with relative offsets that still fit in `u32`.
    fn groups<'a>(&self, targets: &'a [&'a Cleanable]) -> Vec<&'a [&'a Cleanable]> {
        let mut groups = Vec::new();
        let mut start = 0;
        while start < targets.len() {
            let base = targets[start].seg.base_offset().0;
            let mut size = 0u64;
            let mut end = start;
            while end < targets.len() {
                let c = targets[end];
                let fits = size + c.meta.size <= self.live_limits().segment_bytes
                    && c.end - base < RELATIVE_OFFSET_MAX - 1;
                if end > start && !fits {
                    break;
                }
                size += c.meta.size;
                end += 1;
            }
            groups.push(&targets[start..end]);
            start = end;
        }
        groups
    }

    fn rewrite_group(
        &self,
        group: &[&Cleanable],
        rule: &KeepRule<'_>,
        report: &mut CompactionReport,
    ) -> Result<()> {
        let first = &group[0].seg;
        let base = first.base_offset();
        let end = group.last().expect("groups are not empty").end;
        let (new_seg, files) = Segment::create_cleaned(
            &self.config.fs,
            &self.dir,
            base,
            CLEANED,
            self.live_limits().index_bytes_max,
        )?;
        let mut cursor = IndexCursor::new(self.live_limits().index_interval_bytes);
        let mut size = 0u64;
        let mut witnessed = Vec::new();
        for c in group {
            for batch in self.segment_batches(&c.seg)? {
                let batch = batch?;
                report.bytes_read += batch.encoded_len() as u64;
                // Control batches (transaction markers) and empty batches (kept by Kafka for
                // their producer state) are copied as they are.
                if batch.header().is_control() || batch.record_count() == 0 {
                    write_all_at(&files, batch.as_bytes(), size, &new_seg)?;
                    witnessed.push(witness_entry(batch.header(), size, first)?);
                    cursor.on_batch(&new_seg, &files, batch.header(), size);
                    size += batch.encoded_len() as u64;
                    continue;
                }
                let mut kept = Vec::with_capacity(batch.record_count() as usize);
                for r in batch.records() {
                    let r = r?;
                    report.records_read += 1;
                    match rule.decide(&r) {
                        Keep::Yes => kept.push(r),
                        Keep::Superseded => report.records_superseded += 1,
                        Keep::ExpiredTombstone => report.tombstones_removed += 1,
                    }
                }
                if kept.is_empty() {
                    continue;
                }
                // A batch that keeps every record is copied byte for byte.
                let bytes = if kept.len() == batch.record_count() as usize {
                    batch.as_bytes().to_vec()
                } else {
                    batch::encode_compacted(batch.header(), &kept)?
                };
                let header = BatchHeader::parse(&bytes).expect("freshly encoded batch parses");
                write_all_at(&files, &bytes, size, &new_seg)?;
                witnessed.push(witness_entry(&header, size, first)?);
                cursor.on_batch(&new_seg, &files, &header, size);
                size += bytes.len() as u64;
            }
            report.segments_cleaned += 1;
        }
        new_seg.seal(&files, &cursor, end, size)?;
        files.log.sync_data().at(&new_seg.path(LOG_EXT))?;
        new_seg.sync_indexes_named(CLEANED)?;
        self.write_witness(&new_seg, &files, Witness::new(base.0, witnessed, size, end))?;
        report.bytes_written += size;
        report.segments_written += 1;
        self.swap(group, new_seg, files, end)
    }

    /// Every rewritten segment gets a witness of its batches, made durable with the log before
    /// the commit point: their offsets may have gaps, which batches alone cannot vouch for.
    fn write_witness(&self, seg: &Segment, files: &SegmentFiles, w: Witness) -> Result<()> {
        w.write_to(&self.config.fs, &suffixed(&seg.path(WITNESS_EXT), CLEANED))?;
        files.set_witness(Some(Arc::new(w)));
        Ok(())
    }

    /// Replace the group's segments with the new one, on disk and in the segment list.
    fn swap(
        &self,
        group: &[&Cleanable],
        new_seg: Segment,
        files: SegmentFiles,
        end: u64,
    ) -> Result<()> {
        let base = new_seg.base_offset();
        // The cleaned files' names must be durable before the commit point: a manifest that
        // outlived a power loss without them would pair the new log with old index or witness
        // files (a rename may reach the disk before the creations made ahead of it).
        checkpoint::sync_dir_in(&self.config.fs, &self.dir)?;
        // Commit point: once the manifest exists, `open` completes the swap.
        checkpoint::write(
            &self.config.fs,
            &segment_path(&self.dir, base, SWAP_EXT),
            end,
        )?;
        // Past it, a failure must not let this handle go on with the old segments (retention
        // could delete what the next open restores from the manifest): fence the partition.
        self.finish_swap(group, new_seg, files).inspect_err(|_| {
            self.swap_failed.store(true, Ordering::Release);
            self.failed.store(true, Ordering::Release);
        })
    }

    /// The part of a swap after its commit point.
    fn finish_swap(
        &self,
        group: &[&Cleanable],
        new_seg: Segment,
        files: SegmentFiles,
    ) -> Result<()> {
        let base = new_seg.base_offset();
        // Readers that hold the old segments keep their files open, whatever the names become.
        for c in group {
            let old_files = self.segment_files(&c.seg, c.seg.base_offset())?;
            c.seg.retire(old_files);
        }
        let fs = &self.config.fs;
        for c in group {
            for ext in SEGMENT_EXTS {
                rename_if_exists(fs, &c.seg.path(ext), &suffixed(&c.seg.path(ext), DELETED))?;
            }
        }
        for ext in SEGMENT_EXTS {
            let path = new_seg.path(ext);
            rename_if_exists(fs, &suffixed(&path, CLEANED), &path)?;
        }
        let (new_seg, _files) = new_seg.with_files(files);
        let new_seg = Arc::new(new_seg);
        self.replace_segments(group, new_seg.clone());
        self.track_loaded(&new_seg);
        for c in group {
            for ext in SEGMENT_EXTS {
                remove_if_exists(fs, &suffixed(&c.seg.path(ext), DELETED))?;
            }
        }
        checkpoint::sync_dir_in(fs, &self.dir)?;
        remove_if_exists(fs, &segment_path(&self.dir, base, SWAP_EXT))?;
        checkpoint::sync_dir_in(fs, &self.dir)
    }

    /// Swap the group's segments for `new_seg` in the segment list (under the append lock).
    fn replace_segments(&self, group: &[&Cleanable], new_seg: Arc<Segment>) {
        let mut w = self.writer.lock();
        let at = w
            .segments
            .iter()
            .position(|s| Arc::ptr_eq(s, &group[0].seg))
            .expect("compaction holds the structure lock: its segments are still listed");
        let mut segments = Vec::with_capacity(w.segments.len() + 1 - group.len());
        segments.extend_from_slice(&w.segments[..at]);
        segments.push(new_seg);
        segments.extend_from_slice(&w.segments[at + group.len()..]);
        for (c, s) in group.iter().zip(&w.segments[at..]) {
            assert!(
                Arc::ptr_eq(&c.seg, s),
                "compacted segments are adjacent in the list"
            );
        }
        w.segments = Arc::new(segments);
        let mut v = self.view.write();
        v.replace_segments(w.segments.clone());
        // Under `SyncEachAppend` the high watermark may still point into a replaced segment
        // (at its end: only segments wholly below it are compacted). Its byte position means
        // nothing in the new file: point it at the start of the next segment instead.
        let hw = v.high_watermark();
        if group
            .iter()
            .any(|c| c.seg.base_offset().0 == hw.segment_base)
        {
            let end = group.last().expect("groups are not empty").end;
            assert_eq!(hw.offset, end, "the high watermark is at the group's end");
            v.bounds_mut()
                .relocate_high_watermark(Position::segment_start(hw.offset));
        }
    }

    /// Every batch of a sealed segment, CRC-checked, in order.
    fn segment_batches(&self, seg: &Arc<Segment>) -> Result<impl Iterator<Item = Result<Batch>>> {
        let files = self.segment_files(seg, seg.base_offset())?;
        let size = files
            .sealed_size()
            .expect("only sealed segments are compacted");
        let data = files.mapped(size, size).at(&seg.path(LOG_EXT))?;
        let path = seg.path(LOG_EXT);
        let mut pos = 0usize;
        Ok(std::iter::from_fn(move || {
            if pos >= data.len() {
                return None;
            }
            match batch::check_crc(&data[pos..]) {
                Ok(header) => {
                    let total = header.total_len();
                    let b = Batch::from_checked(header, data.slice(pos..pos + total));
                    pos += total;
                    Some(Ok(b))
                }
                Err(reason) => {
                    let e = Error::Corrupt {
                        path: path.clone(),
                        position: pos as u64,
                        reason,
                    };
                    pos = data.len();
                    Some(Err(e))
                }
            }
        }))
    }
}

/// What compaction does with one record.
enum Keep {
    Yes,
    Superseded,
    ExpiredTombstone,
}

/// The decision of one pass, record by record.
struct KeepRule<'a> {
    /// Newest offset of every key in `[first_dirty, map_end)`.
    map: &'a HashMap<Bytes, u64>,
    map_end: u64,
    /// Tombstones older than this may go.
    tombstone_horizon: i64,
}

impl KeepRule<'_> {
    /// Drop a record when the map holds a newer one with its key; drop a tombstone that is
    /// older than the horizon once the pass covers it (every older value of its key is then
    /// gone: below the pass end, all of them are rewritten against a map that knows the
    /// tombstone, or were by an earlier pass).
    fn decide(&self, r: &LogRecord) -> Keep {
        if let Some(newest) = r.key.as_ref().and_then(|k| self.map.get(k)) {
            if *newest > r.offset.0 {
                return Keep::Superseded;
            }
        }
        if r.value.is_none() && r.offset.0 < self.map_end && r.timestamp_ms < self.tombstone_horizon
        {
            return Keep::ExpiredTombstone;
        }
        Keep::Yes
    }
}

/// The witness entry of the batch `h` written at `pos` into the segment replacing `first`
/// (same base offset); offsets that do not fit one (a scan never accepts such) are damage.
fn witness_entry(h: &BatchHeader, pos: u64, first: &Segment) -> Result<WitnessEntry> {
    WitnessEntry::of(h, pos, first.base_offset().0).ok_or(Error::Corrupt {
        path: first.path(LOG_EXT),
        position: pos,
        reason: CorruptKind::BadOffset,
    })
}

fn write_all_at(files: &SegmentFiles, bytes: &[u8], at: u64, seg: &Segment) -> Result<()> {
    files
        .log
        .write_all_at(bytes, at)
        .at(&suffixed(&seg.path(LOG_EXT), CLEANED))
}

fn suffixed(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    s.into()
}

fn rename_if_exists(fs: &Fs, from: &Path, to: &Path) -> Result<()> {
    match fs.rename(from, to) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(from, e)),
        _ => Ok(()),
    }
}

fn remove_if_exists(fs: &Fs, path: &Path) -> Result<()> {
    match fs.remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(path, e)),
        _ => Ok(()),
    }
}

/// At open, before segments are listed: finish every swap whose manifest exists, and discard
/// what interrupted passes left without one.
pub(crate) fn complete_swaps(fs: &Fs, dir: &Path) -> Result<()> {
    let mut manifests = Vec::new();
    let mut leftovers = Vec::new();
    let mut logs = Vec::new();
    for name in fs.list_dir(dir).at(dir)? {
        if let Some(stem) = name.strip_suffix(".swap") {
            if let Ok(base) = stem.parse::<u64>() {
                manifests.push((base, dir.join(&name)));
            }
        } else if name.ends_with(CLEANED) || name.ends_with(DELETED) {
            leftovers.push(dir.join(&name));
        } else if let Some(base) = crate::log::segment::parse_log_name(&name) {
            logs.push(base.0);
        }
    }
    for (base, manifest) in &manifests {
        let end = checkpoint::read(fs, manifest)?.ok_or(Error::Corrupt {
            path: manifest.clone(),
            position: 0,
            reason: CorruptKind::BadCheckpoint,
        })?;
        for ext in SEGMENT_EXTS {
            let path = segment_path(dir, Offset(*base), ext);
            let cleaned = suffixed(&path, CLEANED);
            if fs.exists(&cleaned).at(&cleaned)? {
                // The rename had not happened: what has the final name is the old segment.
                remove_if_exists(fs, &path)?;
                fs.rename(&cleaned, &path).at(&path)?;
            }
        }
        for old in logs.iter().filter(|b| *base < **b && **b < end) {
            for ext in SEGMENT_EXTS {
                remove_if_exists(fs, &segment_path(dir, Offset(*old), ext))?;
            }
        }
    }
    for path in leftovers {
        // Cleaned files of a committed swap were renamed above; the rest are discarded.
        remove_if_exists(fs, &path)?;
    }
    if !manifests.is_empty() {
        checkpoint::sync_dir_in(fs, dir)?;
        for (_, manifest) in &manifests {
            remove_if_exists(fs, manifest)?;
        }
        checkpoint::sync_dir_in(fs, dir)?;
    }
    Ok(())
}
