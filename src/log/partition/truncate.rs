//! Truncation: remove every record at or above an offset (a follower cuts the records its
//! leader does not have).
//!
//! It shares recovery's act: the segment holding the cut is cut and rescanned with
//! `scan_segment` (which rebuilds its indexes), later segments go with `remove_segments`,
//! and `settle` makes the result durable.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::compact::CLEANER_FILE;
use super::open::{first_timestamp, remove_segments, scan_segment, settle};
use super::state::LogBounds;
use super::{Partition, Writer, HIGH_WATERMARK_FILE, RECOVERY_POINT_FILE};
use crate::error::{Error, IoContext, Result};
use crate::io::checkpoint;
use crate::io::fs::OpenFlags;
use crate::log::segment::{IndexCursor, Segment, INDEX_EXT, LOG_EXT, TIME_INDEX_EXT};
use crate::offset::Offset;

/// Where a truncation cuts: a batch boundary in one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cut {
    /// Index of the segment in the segment list.
    segment: usize,
    /// Byte position of the first batch removed (or the end of the data).
    position: u64,
    /// The new log end: one past the last record kept.
    end: u64,
}

impl Partition {
    /// Remove every record at or above `offset`; returns the new log end.
    ///
    /// Batches are never split: when `offset` falls inside a batch, that whole batch goes and
    /// the log ends at its base offset, below `offset` (in a compacted segment, at the end of
    /// the batch before it). Segments after the one holding the cut are deleted; that one is
    /// cut at the batch boundary, its indexes are rebuilt by rescanning it (the scan recovery
    /// uses), and it becomes the active segment. The high watermark and the durable end are
    /// clamped to the new end; the recovery point, high-watermark and cleaner checkpoints are
    /// lowered first to the new end if they lie above (so a crash part way never finds flushed
    /// data missing, records written after the cut committed, or them taken for compacted). Everything is fsynced before
    /// this returns.
    ///
    /// An `offset` above the log end is a no-op; one at the log end removes only the epochs
    /// starting there (see [`assign_leader_epoch`](Partition::assign_leader_epoch)). One below the log start, or inside the
    /// batch holding the log start, fails with [`Error::InvalidOffset`] and changes nothing:
    /// truncation never removes records below the log start (an error rather than a clamp: a
    /// follower asked to cut there has diverged from its leader and must not carry on quietly).
    ///
    /// Nothing a reader holds shrinks: the cut segment's kept prefix is written to a new file
    /// renamed over the old name, its indexes are removed and rebuilt as new files, and later
    /// segments are unlinked, so a [`ReadBatches`] or a map taken before the cut keeps the old
    /// inodes. The replaced `Segment` objects are marked removed, so a reader holding an older
    /// view never loads a newer segment's files under their name. An append waiting for its
    /// fsync when the cut happens fails with [`Error::Truncated`] instead of being acknowledged.
    ///
    /// [`ReadBatches`]: super::ReadBatches
    ///
    /// The leader epoch cache loses the epochs starting at or after the new end, and its
    /// checkpoint is rewritten before the log is cut (a crash in between finds the data and
    /// rebuilds those epochs from the batch headers, from the lowered recovery point on).
    pub fn truncate_to(&self, offset: Offset) -> Result<Offset> {
        let _structure = self.retention.lock();
        self.check_structure()?;
        let _sync_slot = self.claim_sync_slot();
        let mut w = self.writer.lock();
        self.check_writable()?;
        let v = self.view();
        if offset.0 >= v.log_end().offset {
            if offset.0 == v.log_end().offset {
                // No record goes, but an epoch started at the log end (a leadership that
                // wrote nothing) does: the log now continues in an older epoch.
                self.truncate_epochs(offset.0)?;
            }
            return Ok(Offset(v.log_end().offset));
        }
        if offset.0 < v.log_start() {
            return Err(Error::InvalidOffset {
                offset,
                reason: "below the log start",
            });
        }
        let cut = self.locate_cut(&w, offset)?;
        if cut.end < v.log_start() {
            return Err(Error::InvalidOffset {
                offset,
                reason: "inside the batch holding the log start",
            });
        }
        match self.cut_at(&mut w, cut) {
            Ok(()) => Ok(Offset(cut.end)),
            Err(e) => self.fail(e),
        }
    }

    /// Remove every record and restart the log, empty, at `offset` (Kafka's
    /// `truncateFullyAndStartAt`): what a follower does when its log ends below its leader's
    /// log start (the leader deleted the records it lacks, by retention or
    /// [`delete_records_before`](Partition::delete_records_before)), so it can fetch again
    /// from there. The log start, log end, high watermark and durable end all become
    /// `offset`; the leader epoch cache is emptied.
    ///
    /// `offset` must be at or above the log end ([`Error::InvalidOffset`] otherwise: cut
    /// with [`truncate_to`](Partition::truncate_to) first), so that a crash at any point is
    /// recovered: the epoch checkpoint is emptied first, then the log start is persisted (both
    /// copies) before any segment goes, and an open that finds the log ending below its
    /// persisted start restarts it empty there. Then the old segments are deleted, a new
    /// active segment is created at `offset` and the recovery point and the high-watermark
    /// checkpoint are written at `offset`. Everything is fsynced before this returns. A
    /// reader holding older segments keeps their (unlinked) files; an append waiting for its
    /// fsync fails with [`Error::Truncated`].
    pub fn truncate_fully_and_start_at(&self, offset: Offset) -> Result<()> {
        let _structure = self.retention.lock();
        self.check_structure()?;
        let _sync_slot = self.claim_sync_slot();
        let mut w = self.writer.lock();
        self.check_writable()?;
        if offset.0 < w.next_offset {
            return Err(Error::InvalidOffset {
                offset,
                reason: "below the log end: truncate_to it first",
            });
        }
        match self.restart_locked(&mut w, offset.0) {
            Ok(()) => Ok(()),
            Err(e) => self.fail(e),
        }
    }

    /// Carry out a restart at `start`. Caller holds the structure lock, the sync slot and
    /// `writer`.
    fn restart_locked(&self, w: &mut Writer, start: u64) -> Result<()> {
        let fs = &self.config.fs;
        {
            let mut e = self.epochs.lock();
            if e.cache.truncate_from_end(0) {
                e.dirty = true;
            }
        }
        self.persist_epochs()?;
        // The commit point: from here on an open restarts the log at `start`.
        super::write_log_start(fs, &self.dir, start)?;
        self.truncations.fetch_add(1, Ordering::SeqCst);
        let doomed = w.segments.clone();
        for seg in doomed.iter() {
            seg.mark_removed();
            seg.release_deleted();
        }
        w.unsynced_sealed.clear();
        self.loaded.lock().clear();
        remove_segments(doomed.iter().map(|s| &**s))?;
        checkpoint::sync_dir_in(fs, &self.dir)?;
        let active = Arc::new(Segment::create_active(
            fs,
            &self.dir,
            Offset(start),
            self.config.index_bytes_max,
        )?);
        checkpoint::sync_dir_in(fs, &self.dir)?;
        checkpoint::write(fs, &self.dir.join(RECOVERY_POINT_FILE), start)?;
        let hw_path = self.dir.join(HIGH_WATERMARK_FILE);
        if self.config.high_watermark_external || fs.exists(&hw_path).at(&hw_path)? {
            checkpoint::write(fs, &hw_path, start)?;
        }
        w.files = active
            .loaded_files()
            .expect("a new active segment is loaded");
        w.segments = Arc::new(vec![active.clone()]);
        w.active = active;
        w.cursor = IndexCursor::new(self.config.index_interval_bytes);
        w.next_offset = start;
        w.size = 0;
        w.preallocated = 0;
        w.first_timestamp = None;
        w.unsynced_records = 0;
        w.unsynced_bytes = 0;
        w.unsynced_since = None;
        w.dir_dirty = false;
        w.recent_ends.clear();
        self.pending_appends.store(0, Ordering::SeqCst);
        let mut v = self.view.write();
        v.replace_segments(w.segments.clone());
        *v.bounds_mut() = LogBounds::new(start, w.position(), start);
        Ok(())
    }

    /// Find the first batch holding an offset at or above `offset` (scanning its segment from
    /// the start, so that compaction gaps are seen as recovery sees them).
    fn locate_cut(&self, w: &Writer, offset: Offset) -> Result<Cut> {
        let segment = w
            .segments
            .partition_point(|s| s.base_offset() <= offset)
            .saturating_sub(1);
        let seg = &w.segments[segment];
        let (files, size) = if Arc::ptr_eq(seg, &w.active) {
            (w.files.clone(), w.size)
        } else {
            let files = self.segment_files(seg, offset)?;
            let size = files
                .sealed_size()
                .expect("a listed segment other than the active is sealed");
            (files, size)
        };
        let base = seg.base_offset().0;
        let path = seg.path(LOG_EXT);
        let mut kept_end = base;
        let mut cut_at = None;
        let scan = self.scan_headers(seg, &files, size, &mut |h, pos| {
            if cut_at.is_none() {
                if h.last_offset() >= offset.0 {
                    cut_at = Some(pos);
                } else {
                    kept_end = h.last_offset() + 1;
                }
            }
        })?;
        if let Some(reason) = scan.damage {
            return Err(Error::Corrupt {
                path,
                position: scan.end_position,
                reason,
            });
        }
        Ok(Cut {
            segment,
            position: cut_at.unwrap_or(scan.end_position),
            end: kept_end,
        })
    }

    /// Replace the log of `seg` by its first `size` bytes, as a new file renamed over the old
    /// name: readers that mapped the old file keep its (unlinked) inode, so nothing a reader
    /// holds ever shrinks under it. Its index files go first, for the same reason; the rescan
    /// writes new ones. Durable once the caller's `settle` syncs the directory.
    fn rewrite_prefix(&self, seg: &Segment, size: u64) -> Result<()> {
        const CHUNK: u64 = 1 << 20;
        let fs = &self.config.fs;
        let path = seg.path(LOG_EXT);
        let tmp = self
            .dir
            .join(format!("{:020}.{LOG_EXT}.tmp", seg.base_offset().0));
        let old = fs.open(&path, OpenFlags::READ).at(&path)?;
        let new = fs.open(&tmp, OpenFlags::CREATE_TRUNCATE).at(&tmp)?;
        let mut buf = vec![0u8; CHUNK.min(size) as usize];
        let mut at = 0;
        while at < size {
            let n = (size - at).min(CHUNK) as usize;
            old.read_exact_at(&mut buf[..n], at).at(&path)?;
            new.write_all_at(&buf[..n], at).at(&tmp)?;
            at += n as u64;
        }
        new.sync_data().at(&tmp)?;
        for ext in [INDEX_EXT, TIME_INDEX_EXT] {
            let p = seg.path(ext);
            match fs.remove_file(&p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(p, e)),
                _ => {}
            }
        }
        fs.rename(&tmp, &path).at(&path)
    }

    /// Lower the recovery point, high-watermark and cleaner checkpoints to `end` where they
    /// lie above, before records from `end` on go: none may claim them (flushed data found
    /// missing after a crash, records written after the cut shown as committed after a
    /// reopen, or taken for already compacted).
    fn lower_checkpoints(&self, end: u64) -> Result<()> {
        for name in [RECOVERY_POINT_FILE, HIGH_WATERMARK_FILE, CLEANER_FILE] {
            let path = self.dir.join(name);
            let saved = checkpoint::read(&self.config.fs, &path).ok().flatten();
            if saved.is_some_and(|saved| saved > end) {
                checkpoint::write(&self.config.fs, &path, end)?;
            }
        }
        Ok(())
    }

    /// Carry out a cut. Caller holds the structure lock, the sync slot and `writer`.
    fn cut_at(&self, w: &mut Writer, cut: Cut) -> Result<()> {
        self.lower_checkpoints(cut.end)?;
        self.truncate_epochs(cut.end)?;
        // From here on appends waiting for an fsync learn that their batch may be gone.
        self.truncations.fetch_add(1, Ordering::SeqCst);
        let seg = w.segments[cut.segment].clone();
        let base = seg.base_offset();
        for replaced in &w.segments[cut.segment..] {
            replaced.mark_removed();
        }
        remove_segments(w.segments[cut.segment + 1..].iter().rev().map(|s| &**s))?;
        self.rewrite_prefix(&seg, cut.position)?;
        seg.cut_witness(cut.position, cut.end)?;
        let s = scan_segment(&self.dir, &self.config, base, base.0, None)?;
        if s.facts.damage.is_some() || s.facts.next_offset != cut.end {
            return Err(Error::Corrupt {
                path: seg.path(LOG_EXT),
                position: s.facts.end_position,
                reason: s
                    .facts
                    .damage
                    .unwrap_or(crate::error::CorruptKind::BadOffset),
            });
        }
        let first_ts = first_timestamp(&s.files.log, &seg.path(LOG_EXT), cut.position)?;
        let active = Arc::new(s.seg);
        let mut segments = w.segments[..cut.segment].to_vec();
        segments.push(active.clone());
        w.segments = Arc::new(segments);
        w.active = active;
        w.files = s.files;
        w.cursor = s.cursor;
        w.next_offset = cut.end;
        w.size = cut.position;
        w.preallocated = cut.position;
        w.first_timestamp = first_ts;
        w.unsynced_records = 0;
        w.unsynced_bytes = 0;
        w.unsynced_since = None;
        w.dir_dirty = false;
        w.recent_ends.clear();
        self.pending_appends.store(0, Ordering::SeqCst);
        let end = w.position();
        {
            let mut v = self.view.write();
            v.replace_segments(w.segments.clone());
            v.bounds_mut().truncate_to(end);
        }
        for seg in std::mem::take(&mut w.unsynced_sealed) {
            seg.sync_log()?;
        }
        settle(
            &self.config.fs,
            &self.dir,
            std::slice::from_ref(&w.files),
            cut.end,
        )?;
        let _s = self.sync.lock();
        self.publish_durable(end, true);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::record::Record;
    use crate::log::config::{Durability, PartitionConfig, SEGMENT_BYTES_MIN};
    use std::path::Path;

    fn config(durability: Durability) -> PartitionConfig {
        PartitionConfig::default()
            .with_segment_bytes(SEGMENT_BYTES_MIN)
            .with_index_interval_bytes(64)
            .with_segment_ms(None)
            .with_retention_ms(None)
            .with_durability(durability)
    }

    fn value(o: u64) -> String {
        format!("value-{o:04}")
    }

    /// Append batches of `sizes` records each, valued by offset.
    fn fill(p: &Partition, sizes: &[u64]) {
        for &n in sizes {
            let first = p.log_end_offset().0;
            let records: Vec<Record> = (first..first + n).map(|o| Record::new(value(o))).collect();
            p.append(&records).unwrap();
        }
    }

    /// Every record from the log start to the end reads back with its value, and nothing
    /// past `end`.
    fn assert_reads(p: &Partition, end: u64) {
        assert_eq!(p.log_end_offset(), Offset(end));
        assert_eq!(p.high_watermark(), Offset(end));
        let mut next = p.log_start_offset().0;
        while next < end {
            let read = p.read(Offset(next), 4096).unwrap();
            assert!(!read.is_empty(), "nothing at {next} below {end}");
            for r in read.records() {
                let r = r.unwrap();
                assert_eq!(r.offset, Offset(next));
                assert_eq!(r.value.as_deref(), Some(value(next).as_bytes()));
                next += 1;
            }
        }
        assert_eq!(next, end);
        assert!(p.read(Offset(end), 4096).unwrap().is_empty());
    }

    fn log_files(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "log")
            })
            .count()
    }

    #[test]
    fn inside_the_active_segment_cuts_at_the_batch_base() {
        let dir = tempfile::tempdir().unwrap();
        let p = Partition::open(dir.path(), config(Durability::NoSync)).unwrap();
        fill(&p, &[1, 1, 3, 1]);
        assert_eq!(p.segment_count(), 1);
        // Offset 3 is inside the batch 2..=4: the whole batch goes.
        assert_eq!(p.truncate_to(Offset(3)).unwrap(), Offset(2));
        assert_reads(&p, 2);
        fill(&p, &[2]);
        assert_reads(&p, 4);
        // At a batch boundary exactly.
        assert_eq!(p.truncate_to(Offset(3)).unwrap(), Offset(2));
        assert_reads(&p, 2);
    }

    #[test]
    fn across_segments_deletes_later_ones() {
        let dir = tempfile::tempdir().unwrap();
        let p = Partition::open(dir.path(), config(Durability::SyncEachAppend)).unwrap();
        fill(&p, &[2; 40]);
        let bases = p.segment_base_offsets();
        assert!(bases.len() >= 4, "{bases:?}");
        let target = bases[1].0 + 3;
        assert_eq!(p.truncate_to(Offset(target)).unwrap(), Offset(target - 1));
        assert_eq!(p.segment_base_offsets(), bases[..2]);
        assert_eq!(log_files(dir.path()), 2);
        assert_reads(&p, target - 1);
        // At a segment's base: that segment stays, empty and active.
        assert_eq!(p.truncate_to(bases[1]).unwrap(), bases[1]);
        assert_eq!(p.segment_base_offsets(), bases[..2]);
        assert_reads(&p, bases[1].0);
        fill(&p, &[1; 5]);
        assert_reads(&p, bases[1].0 + 5);
    }

    #[test]
    fn at_or_past_the_log_end_is_a_no_op() {
        let dir = tempfile::tempdir().unwrap();
        let p = Partition::open(dir.path(), config(Durability::NoSync)).unwrap();
        fill(&p, &[3, 2]);
        assert_eq!(p.truncate_to(Offset(5)).unwrap(), Offset(5));
        assert_eq!(p.truncate_to(Offset(99)).unwrap(), Offset(5));
        assert_reads(&p, 5);
    }

    #[test]
    fn below_the_log_start_is_an_error_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = Partition::open(dir.path(), config(Durability::NoSync)).unwrap();
        fill(&p, &[2, 3, 2]);
        p.delete_records_before(Offset(3)).unwrap();
        let err = p.truncate_to(Offset(2)).unwrap_err();
        assert!(matches!(err, Error::InvalidOffset { .. }), "{err}");
        // Offset 4 is in the batch 2..=4, which holds the log start.
        let err = p.truncate_to(Offset(4)).unwrap_err();
        assert!(matches!(err, Error::InvalidOffset { .. }), "{err}");
        assert_reads(&p, 7);
        // Down to the log start exactly empties the log.
        assert_eq!(p.truncate_to(Offset(5)).unwrap(), Offset(5));
        assert_reads(&p, 5);
        fill(&p, &[1]);
        assert_reads(&p, 6);
    }

    #[test]
    fn appends_continue_and_reopen_sees_the_truncated_log() {
        for durability in [Durability::NoSync, Durability::SyncEachAppend] {
            let dir = tempfile::tempdir().unwrap();
            let p = Partition::open(dir.path(), config(durability.clone())).unwrap();
            fill(&p, &[3; 30]);
            p.flush().unwrap();
            p.truncate_to(Offset(40)).unwrap();
            assert_reads(&p, 39);
            fill(&p, &[1; 4]);
            assert_reads(&p, 43);
            p.close().unwrap();
            drop(p);
            let p = Partition::open(dir.path(), config(durability.clone())).unwrap();
            assert!(p.recovery_report().clean_shutdown);
            assert_reads(&p, 43);

            // Durable before it returns: a crash right after finds the truncated log.
            p.truncate_to(Offset(20)).unwrap();
            p.simulate_crash();
            let p = Partition::open(dir.path(), config(durability)).unwrap();
            assert!(!p.recovery_report().clean_shutdown);
            assert_eq!(p.recovery_report().truncated_bytes, 0);
            assert_reads(&p, 18);
        }
    }

    #[test]
    fn batches_read_before_a_cut_stay_readable() {
        let dir = tempfile::tempdir().unwrap();
        let p = Partition::open(dir.path(), config(Durability::SyncEachAppend)).unwrap();
        fill(&p, &[3; 30]);
        assert!(p.segment_count() > 2);
        let held = p.read(Offset(0), 1 << 20).unwrap();
        let before: Vec<_> = held.records().map(|r| r.unwrap()).collect();
        assert_eq!(p.truncate_to(Offset(1)).unwrap(), Offset(0));
        fill(&p, &[5; 10]);
        // The held batches map the old, unlinked file: same records, no fault.
        let after: Vec<_> = held.records().map(|r| r.unwrap()).collect();
        assert_eq!(before, after);
        assert_eq!(before[2].value.as_deref(), Some(value(2).as_bytes()));
    }

    #[test]
    fn a_stale_view_never_loads_a_newer_segment_under_an_old_name() {
        let dir = tempfile::tempdir().unwrap();
        let p = Partition::open(dir.path(), config(Durability::NoSync)).unwrap();
        fill(&p, &[3; 30]);
        let stale = p.view().segments().clone();
        assert!(stale.len() > 2);
        for seg in stale.iter() {
            seg.unload();
        }
        p.truncate_to(Offset(1)).unwrap();
        // New appends create segments under the names of the removed ones.
        fill(&p, &[3; 30]);
        for seg in &stale[1..stale.len() - 1] {
            assert!(seg.path(LOG_EXT).exists(), "the name is in use again");
            let loaded = seg.files();
            assert!(
                matches!(loaded, Err(Error::Io { .. })),
                "a removed segment loaded"
            );
        }
        assert_reads(&p, p.log_end_offset().0);
    }

    #[test]
    fn an_append_waiting_for_its_fsync_across_a_cut_is_not_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let p = Partition::open(dir.path(), config(Durability::SyncEachAppend)).unwrap();
        fill(&p, &[2, 2]);
        // Write a batch as `append` does, but stop before its fsync.
        let limits = crate::format::batch::EncodeLimits {
            record_bytes_max: 1 << 20,
            batch_bytes_max: 1 << 20,
        };
        let records = [Record::new(value(4))];
        let meta = crate::format::batch::BatchMeta::default();
        let mut buf = crate::format::batch::encode_batch(
            &records,
            &meta,
            limits,
            crate::format::batch::EncodeOptions::default(),
        )
        .unwrap();
        let header = crate::format::batch::BatchHeader::parse(&buf).unwrap();
        let appended = p
            .append_at_end(&mut buf, &mut [header], &p.live_limits())
            .unwrap();
        assert_eq!(p.truncate_to(Offset(4)).unwrap(), Offset(4));
        fill(&p, &[1]);
        let err = p.after_append(&appended).unwrap_err();
        assert!(
            matches!(err, Error::Truncated { offset: Offset(4) }),
            "{err:?}"
        );
    }
}
