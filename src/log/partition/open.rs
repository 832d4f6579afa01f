//! Opening a partition: directory listing, clean-shutdown fast path, crash recovery.

use std::borrow::Borrow;
use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex, RwLock};

use super::state::{LogBounds, Position, View};
use super::{
    Partition, RecoveryReport, Writer, CLEAN_SHUTDOWN_FILE, DENSE_MARKER_FILE, LOCK_FILE,
    LOG_START_FILE, RECOVERY_POINT_FILE, STATE_FILE,
};
use crate::error::{CorruptKind, IoContext};
use crate::error::{Error, Result};
use crate::format::batch::{BatchHeader, BATCH_HEADER_LEN};
use crate::io::checkpoint;
use crate::io::fs::{Fs, FsFile, FsLock, OpenFlags};
use crate::log::config::PartitionConfig;
use crate::log::index::{OffsetIndex, TimeIndex};
use crate::log::segment::{
    log_len, parse_log_name, segment_path, IndexCursor, LogProbe, Scan, ScanOutcome, Segment,
    SegmentFiles, INDEX_EXT, LOG_EXT, TIME_INDEX_EXT,
};
use crate::log::witness::{Witness, WitnessEntry, WITNESS_EXT};
use crate::offset::Offset;

use super::recover::{
    plan_recovery, sealed_end, ActivePlan, RecoveryInput, RecoveryPlan, SegmentFacts,
};

/// The log as `open` leaves it, before the handle is assembled.
struct Opened {
    segments: Vec<Arc<Segment>>,
    files: Arc<SegmentFiles>,
    cursor: IndexCursor,
    next_offset: u64,
    size: u64,
    first_timestamp: Option<i64>,
    report: RecoveryReport,
}

pub(super) fn open(dir: &Path, mut config: PartitionConfig) -> Result<Partition> {
    config.validate()?;
    let fs = &config.fs;
    checkpoint::create_dir_all_durable(fs, dir)?;
    let lock = lock_dir(fs, dir)?;
    super::compact::complete_swaps(fs, dir)?;
    let bases = list_segments(fs, dir)?;
    let dense = dense_marker(fs, dir, bases.is_empty(), config.cleanup_policy.compacts())?;
    let starts = read_log_starts(fs, dir)?;
    // Gaps no witness confirms are trusted only on the first open of a directory seglog has
    // not witnessed (Kafka's own, or an older seglog's): that open scans it all and gives
    // every segment with gaps a witness (see `log::witness`).
    config.offset_gaps = !dense && !starts.witnessed;
    let fs = &config.fs;
    let clean = take_clean_marker(fs, dir)?;
    // A damaged recovery point only costs a longer scan: start from the beginning.
    let recovery_checkpoint = checkpoint::read(fs, &dir.join(RECOVERY_POINT_FILE))
        .ok()
        .flatten();
    let recovery_point = recovery_checkpoint.unwrap_or(0);
    // Compaction never rewrites past the recovery point seglog wrote, so offsets from there
    // on are dense (see `settle_for_compaction`). Seglog writes one when it creates a
    // partition; without one (a directory another program wrote, or a damaged checkpoint)
    // gaps may be anywhere.
    let dense_from = recovery_checkpoint.unwrap_or(u64::MAX);
    let missing = missing_prefix(dir, &config, &starts, &bases, recovery_point)?;
    let log_start_ckpt = starts.value.unwrap_or(0).max(missing.map_or(0, |m| m.1 .0));

    let opened = if bases.is_empty() {
        create_first(dir, &config, log_start_ckpt)?
    } else {
        let fast = if clean && starts.witnessed {
            open_clean(dir, &config, &bases, recovery_point)?
        } else {
            None
        };
        match fast {
            Some(o) => o,
            None => recover(
                dir,
                &config,
                &bases,
                recovery_point,
                !starts.witnessed,
                dense_from,
            )?,
        }
    };
    let opened = settle_log_start(dir, &config, opened, log_start_ckpt, missing, &starts)?;
    config.offset_gaps = false;
    let clean = opened.report.clean_shutdown;
    let p = assemble(dir, config, lock, opened, log_start_ckpt);
    let replica_state = p
        .init_epochs(recovery_point, clean)
        .and_then(|()| p.init_high_watermark());
    if let Err(e) = replica_state {
        // Not opened: leave the directory as it was (no close, no clean-shutdown marker).
        p.skip_close
            .store(true, std::sync::atomic::Ordering::Release);
        return Err(e);
    }
    Ok(p)
}

/// Whether the last close was clean; its marker is deleted (durably) before anything is
/// written, so a crash from here on is seen as unclean.
fn take_clean_marker(fs: &Fs, dir: &Path) -> Result<bool> {
    let marker = dir.join(CLEAN_SHUTDOWN_FILE);
    let clean = fs.exists(&marker).at(&marker)?;
    if clean {
        fs.remove_file(&marker).at(&marker)?;
        checkpoint::sync_dir_in(fs, dir)?;
    }
    Ok(clean)
}

/// After the log was opened or recovered: restart it at the persisted log start if it ended
/// below it, record the offsets whose segments are missing (persisting the moved start), and
/// end a first open by writing the second log-start copy (which marks the directory
/// witnessed: every segment with gaps has its witness, durably).
fn settle_log_start(
    dir: &Path,
    config: &PartitionConfig,
    opened: Opened,
    log_start_ckpt: u64,
    missing: Option<(Offset, Offset)>,
    starts: &LogStarts,
) -> Result<Opened> {
    let fs = &config.fs;
    let mut opened = if opened.next_offset < log_start_ckpt {
        restart_at(dir, config, opened, log_start_ckpt)?
    } else {
        opened
    };
    opened.report.missing_offsets = missing;
    let first_base = opened.segments.first().map_or(0, |s| s.base_offset().0);
    let log_start = log_start_ckpt.max(first_base).min(opened.next_offset);
    if missing.is_some() || starts.disagree {
        super::write_log_start(fs, dir, log_start.max(starts.value.unwrap_or(0)))?;
    } else if !starts.witnessed {
        checkpoint::write(fs, &dir.join(STATE_FILE), log_start)?;
    }
    Ok(opened)
}

/// The log ended below its persisted log start: `delete_records_before` made the start
/// durable, but the records below it never reached the disk (`NoSync`, a failed fsync). Every
/// record below the start was deleted by the user anyway; restart the log empty at the start
/// (as Kafka does), so no offset below it is handed out again. The old segments are removed
/// first: a crash meanwhile leaves fewer of them, and the next open restarts again.
fn restart_at(dir: &Path, config: &PartitionConfig, old: Opened, start: u64) -> Result<Opened> {
    for seg in &old.segments {
        seg.release_deleted();
        seg.delete_files()?;
    }
    let report = RecoveryReport {
        segments_removed: old.report.segments_removed + old.segments.len(),
        ..old.report
    };
    drop(old.files);
    checkpoint::sync_dir_in(&config.fs, dir)?;
    let mut opened = create_first(dir, config, start)?;
    opened.report = RecoveryReport {
        log_end_offset: Offset(start),
        ..report
    };
    Ok(opened)
}

/// The log start as persisted in its two copies, and whether seglog has witnessed the
/// directory (the second copy, [`STATE_FILE`], exists).
struct LogStarts {
    witnessed: bool,
    value: Option<u64>,
    /// The copies differ (one write of the pair failed or was lost): the value chosen is
    /// written to both again, since the newer copy may be visible without being durable (a
    /// failed directory fsync drops the rename it covered).
    disagree: bool,
}

/// Read both copies of the log start: the larger wins (a copy deleted or damaged cannot bring
/// back records `delete_records_before` removed while the other holds); a damaged copy with
/// no other is an error.
fn read_log_starts(fs: &Fs, dir: &Path) -> Result<LogStarts> {
    let state = dir.join(STATE_FILE);
    let witnessed = fs.exists(&state).at(&state)?;
    let a = checkpoint::read(fs, &dir.join(LOG_START_FILE));
    let b = checkpoint::read(fs, &state);
    let (value, disagree) = match (a, b) {
        (Err(e), Err(_) | Ok(None)) | (Ok(None), Err(e)) => return Err(e),
        (a, b) => {
            let (a, b) = (a.ok().flatten(), b.ok().flatten());
            (a.max(b), witnessed && a != b)
        }
    };
    Ok(LogStarts {
        witnessed,
        value,
        disagree,
    })
}

/// Offsets `[log start, first segment's base)` whose segments are gone: in a witnessed
/// directory the log start is persisted from creation on, and moved (persisted first)
/// before retention deletes a segment, so a first segment starting above it was lost (its
/// files deleted by hand, or a file system losing them). An error
/// ([`Error::MissingSegments`]) unless `truncate_corrupt` (then reported, and the log
/// start moves past them). With no segment at all, what is lost is up to the recovery point.
fn missing_prefix(
    dir: &Path,
    config: &PartitionConfig,
    starts: &LogStarts,
    bases: &[Offset],
    recovery_point: u64,
) -> Result<Option<(Offset, Offset)>> {
    if !starts.witnessed {
        return Ok(None);
    }
    let start = starts.value.unwrap_or(0);
    let first = bases.first().map_or(recovery_point, |b| b.0);
    if first <= start {
        return Ok(None);
    }
    if !config.truncate_corrupt {
        return Err(Error::MissingSegments {
            dir: dir.to_owned(),
            log_start: Offset(start),
            first_segment: Offset(first),
        });
    }
    Ok(Some((Offset(start), Offset(first))))
}

/// Whether the partition's offsets are known dense (see [`DENSE_MARKER_FILE`]): creates the
/// marker for a new partition (`fresh`) that does not compact, removes it when the partition
/// now compacts. Either change is fsynced with the directory before anything is written.
fn dense_marker(fs: &Fs, dir: &Path, fresh: bool, compacts: bool) -> Result<bool> {
    let path = dir.join(DENSE_MARKER_FILE);
    let exists = fs.exists(&path).at(&path)?;
    if compacts {
        if exists {
            fs.remove_file(&path).at(&path)?;
            checkpoint::sync_dir_in(fs, dir)?;
        }
        return Ok(false);
    }
    if fresh && !exists {
        fs.open(&path, OpenFlags::CREATE_TRUNCATE)
            .and_then(|f| f.sync_all())
            .at(&path)?;
        checkpoint::sync_dir_in(fs, dir)?;
        return Ok(true);
    }
    Ok(exists)
}

fn lock_dir(fs: &Fs, dir: &Path) -> Result<FsLock> {
    let path = dir.join(LOCK_FILE);
    fs.try_lock(&path)
        .at(&path)?
        .ok_or_else(|| Error::AlreadyOpen {
            path: dir.to_owned(),
        })
}

/// Base offsets of the segments in `dir`, sorted. Removes leftovers of interrupted writes:
/// temp files (checkpoints, witnesses) and `.index` / `.timeindex` / `.batches` files without
/// a log. Everything else is kept, in particular what a Kafka partition directory holds beside
/// its segments: `.txnindex` (also without a log: it cannot be rebuilt), `*.snapshot`,
/// `leader-epoch-checkpoint`, `partition.metadata`.
fn list_segments(fs: &Fs, dir: &Path) -> Result<Vec<Offset>> {
    let mut bases = Vec::new();
    let mut index_files = Vec::new();
    for name in fs.list_dir(dir).at(dir)? {
        if let Some(base) = parse_log_name(&name) {
            bases.push(base);
        } else if has_ext(&name, "tmp") {
            let p = dir.join(name);
            fs.remove_file(&p).at(&p)?;
        } else if has_ext(&name, INDEX_EXT)
            || has_ext(&name, TIME_INDEX_EXT)
            || has_ext(&name, WITNESS_EXT)
        {
            index_files.push(dir.join(name));
        }
    }
    bases.sort();
    for p in index_files {
        let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        let has_log =
            parse_log_name(&format!("{stem}.log")).is_some_and(|b| bases.binary_search(&b).is_ok());
        if !has_log {
            fs.remove_file(&p).at(&p)?;
        }
    }
    Ok(bases)
}

/// Start a log, empty, at `base`. Its recovery point is written at once: a partition seglog
/// made always has one, so one without it came from elsewhere (see `dense_from` in `open`).
fn create_first(dir: &Path, config: &PartitionConfig, base: u64) -> Result<Opened> {
    let seg = Arc::new(Segment::create_active(
        &config.fs,
        dir,
        Offset(base),
        config.index_bytes_max,
    )?);
    checkpoint::sync_dir_in(&config.fs, dir)?;
    checkpoint::write(&config.fs, &dir.join(RECOVERY_POINT_FILE), base)?;
    let files = seg.loaded_files().expect("new active segment is loaded");
    Ok(Opened {
        segments: vec![seg],
        files,
        cursor: IndexCursor::new(config.index_interval_bytes),
        next_offset: base,
        size: 0,
        first_timestamp: None,
        report: RecoveryReport {
            clean_shutdown: true,
            log_end_offset: Offset(base),
            ..Default::default()
        },
    })
}

fn sealed_prefix(fs: &Fs, dir: &Path, bases: &[Offset], upto: usize) -> Vec<Arc<Segment>> {
    (0..upto)
        .map(|i| Arc::new(Segment::sealed_lazy(fs, dir, bases[i], bases[i + 1])))
        .collect()
}

/// After a clean close: trust everything, touch only the last segment. Returns `None` if the
/// last segment does not look the way a clean close leaves it (then the caller recovers). A
/// clean close leaves the recovery point at the log end: a log ending elsewhere lost (or
/// gained) data since, and recovery must decide. The log end is found by a scan from the
/// last index entry (at most an interval plus a batch).
fn open_clean(
    dir: &Path,
    config: &PartitionConfig,
    bases: &[Offset],
    recovery_point: u64,
) -> Result<Option<Opened>> {
    let last = *bases.last().expect("non-empty");
    let log_path = segment_path(dir, last, LOG_EXT);
    let fs = &config.fs;
    let log = fs.open(&log_path, OpenFlags::READ).at(&log_path)?;
    let size = log_len(&log, &log_path)?;
    let (Ok(index), Ok(time_index)) = (
        OffsetIndex::open_read_only(fs, &segment_path(dir, last, INDEX_EXT)),
        TimeIndex::open_read_only(fs, &segment_path(dir, last, TIME_INDEX_EXT)),
    ) else {
        return Ok(None);
    };
    // The indexes are checked against the log (the active segment has no end offset yet).
    let probe = LogProbe::new(&log, &log_path, size, last.0);
    let Some(next_offset) = log_end_from_index(
        &probe,
        &index,
        (&log, &log_path),
        last.0,
        size,
        (fs, &segment_path(dir, last, WITNESS_EXT)),
    )?
    else {
        return Ok(None);
    };
    if next_offset != recovery_point
        || !probe.time_index_matches(&time_index, &index, next_offset - last.0)?
    {
        return Ok(None);
    }
    let first_timestamp = first_timestamp(&log, &log_path, size)?;
    let cursor = IndexCursor::resume(
        config.index_interval_bytes,
        last,
        index.last(),
        time_index.last(),
        size,
    );
    let (index_entries, time_entries) = (index.len(), time_index.len());
    drop((index, time_index, log));
    let (seg, files) = Segment::open_active(
        fs,
        dir,
        last,
        index_entries,
        time_entries,
        config.index_bytes_max,
    )?;
    let mut segments = sealed_prefix(fs, dir, bases, bases.len() - 1);
    segments.push(Arc::new(seg));
    Ok(Some(Opened {
        segments,
        files,
        cursor,
        next_offset,
        size,
        first_timestamp,
        report: RecoveryReport {
            clean_shutdown: true,
            log_end_offset: Offset(next_offset),
            ..Default::default()
        },
    }))
}

/// The log end of segment `base` (`size` bytes): check the offset index against the log, then
/// scan from its last entry's batch (at most an interval plus a batch), batches following
/// each other exactly where the segment's witness (at `witness.1`) does not list them. `None`
/// if the index does not match or the scan meets damage.
fn log_end_from_index(
    probe: &LogProbe<'_>,
    index: &OffsetIndex,
    (log, log_path): (&FsFile, &Path),
    base: u64,
    size: u64,
    witness: (&Fs, &Path),
) -> Result<Option<u64>> {
    let witness = Witness::load(witness.0, witness.1, base)?.and_then(|w| w.fitted(size, None));
    if !probe.offset_index_matches(index, u64::MAX)? {
        return Ok(None);
    }
    let (start, expected) = match index.last().map(|e| u64::from(e.position)) {
        Some(pos) => match probe.batch_at(pos)? {
            Some(b) => (pos, b.base_offset),
            None => return Ok(None),
        },
        None => (0, base),
    };
    let scan = Scan {
        log,
        path: log_path,
        base_offset: base,
        file_len: size,
        full_check: false,
        gaps: false,
        witness: witness.as_ref(),
    }
    .run(start, expected, &mut |_, _| {})?;
    Ok(scan.damage.is_none().then_some(scan.next_offset))
}

pub(super) fn first_timestamp(log: &FsFile, path: &Path, size: u64) -> Result<Option<i64>> {
    if size < BATCH_HEADER_LEN as u64 {
        return Ok(None);
    }
    let mut head = [0u8; BATCH_HEADER_LEN];
    log.read_exact_at(&mut head, 0).at(path)?;
    Ok(BatchHeader::parse(&head).ok().map(|h| h.first_timestamp()))
}

/// After a crash: scan every segment from the one holding the recovery point (from the
/// first, if `from_start`), plan with [`plan_recovery`], then act.
fn recover(
    dir: &Path,
    config: &PartitionConfig,
    bases: &[Offset],
    recovery_point: u64,
    from_start: bool,
    dense_from: u64,
) -> Result<Opened> {
    // The first segment to scan: the last one starting at or below the recovery point.
    let first_scan = if from_start {
        0
    } else {
        bases
            .partition_point(|b| b.0 <= recovery_point)
            .saturating_sub(1)
    };
    let gaps = config.offset_gaps;
    let mut segments = sealed_prefix(&config.fs, dir, bases, first_scan);
    let mut scanned: Vec<Option<ScannedSegment>> = Vec::new();
    let mut facts: Vec<SegmentFacts> = Vec::new();
    let mut expected = bases[first_scan].0;
    // Compaction rewrites only below `dense_from`: in a segment starting at or above it,
    // batches follow each other without gaps.
    let mut dense_config = config.clone();
    dense_config.offset_gaps = false;
    for (i, &base) in bases.iter().enumerate().skip(first_scan) {
        let scan_config = if base.0 < dense_from {
            config
        } else {
            &dense_config
        };
        let s = scan_segment(dir, scan_config, base, expected, None)?;
        facts.push(s.facts);
        scanned.push(Some(s));
        let f = *facts.last().expect("just pushed");
        if f.ends_log() {
            break;
        }
        if let Some(next) = bases.get(i + 1) {
            expected = sealed_end(&f, next.0, gaps && next.0 <= dense_from);
        }
        // Every plan seals a segment two before the last scanned one exactly so: seal it now
        // and close its files, so recovery holds a bounded number of descriptors.
        if let Some(j) = scanned.len().checked_sub(3) {
            let s = scanned[j].take().expect("sealed once");
            let next = facts[j + 1].base;
            let end_offset = sealed_end(&facts[j], next, gaps && next <= dense_from);
            segments.push(seal_scanned(config, s, end_offset, facts[j].end_position)?);
        }
    }
    let later = unscanned(dir, config, &bases[first_scan + scanned.len()..]);
    let plan = plan_recovery(RecoveryInput {
        scanned: &facts,
        later: &later,
        has_prefix: first_scan > 0,
        recovery_point,
        truncate_corrupt: config.truncate_corrupt,
        gaps,
        dense_from,
    })
    .map_err(|e| Error::CorruptBelowRecoveryPoint {
        path: segment_path(dir, Offset(facts[e.index].base), LOG_EXT),
        offset: Offset(e.offset),
        recovery_point: Offset(recovery_point),
    })?;
    act(dir, config, segments, scanned, &plan)
}

/// Base offset and log length of each segment recovery did not scan (past the tail).
fn unscanned(dir: &Path, config: &PartitionConfig, bases: &[Offset]) -> Vec<(u64, u64)> {
    bases
        .iter()
        .map(|b| {
            let p = segment_path(dir, *b, LOG_EXT);
            (b.0, config.fs.file_len(&p).unwrap_or(0))
        })
        .collect()
}

/// Seal a scanned segment that recovery keeps whole up to `size` bytes, make its log durable
/// and close its files (it loads again on first use).
fn seal_scanned(
    config: &PartitionConfig,
    s: ScannedSegment,
    end_offset: u64,
    size: u64,
) -> Result<Arc<Segment>> {
    cut_log(&s.files, &s.seg, size)?;
    witness_kept(config, &s, size, end_offset)?;
    s.seg.seal(&s.files, &s.cursor, end_offset, size)?;
    rewrite_and_sync(&s.files.log, &s.seg.path(LOG_EXT))?;
    s.seg.sync_indexes()?;
    drop(s.files);
    s.seg.unload();
    Ok(Arc::new(s.seg))
}

/// A segment opened for writing with empty indexes and scanned batch by batch (every record
/// checked), its indexes rebuilt up to the last valid batch. Recovery scans with it, and
/// `truncate_to` rebuilds the segment it cuts with it.
pub(super) struct ScannedSegment {
    pub seg: Segment,
    pub files: Arc<SegmentFiles>,
    pub cursor: IndexCursor,
    pub facts: SegmentFacts,
    /// Every valid batch, where gaps are trusted (a first open): the witness to write if
    /// the segment is kept and its offsets are not dense. `None` where the segment was
    /// scanned as dense (at or above the recovery point): it needs no witness.
    pub batches: Option<Vec<WitnessEntry>>,
}

/// On a first open (gaps trusted), give a segment kept with `size` bytes, whose offsets
/// continue at `next_offset` after them, a witness of its batches if they are not dense:
/// written to a temporary name, fsynced and renamed (the caller fsyncs the directory before
/// the state file that ends the first open).
fn witness_kept(
    config: &PartitionConfig,
    s: &ScannedSegment,
    size: u64,
    next_offset: u64,
) -> Result<()> {
    let (true, Some(batches)) = (config.offset_gaps, &s.batches) else {
        return Ok(());
    };
    let kept = batches.iter().copied();
    let entries = kept.filter(|e| u64::from(e.position) < size).collect();
    let w = Witness::new(s.seg.base_offset().0, entries, size, next_offset);
    if w.is_dense() {
        return Ok(());
    }
    let path = s.seg.path(WITNESS_EXT);
    let tmp = path.with_extension(format!("{WITNESS_EXT}.tmp"));
    w.write_to(&config.fs, &tmp)?;
    config.fs.rename(&tmp, &path).at(&path)?;
    s.files.set_witness(Some(Arc::new(w)));
    Ok(())
}

/// Scan segment `base`, whose first batch must follow `expected` (see [`ScannedSegment`]),
/// after cutting its log to `cut_to` bytes if given.
pub(super) fn scan_segment(
    dir: &Path,
    config: &PartitionConfig,
    base: Offset,
    expected: u64,
    cut_to: Option<u64>,
) -> Result<ScannedSegment> {
    let (seg, files) = Segment::open_active(&config.fs, dir, base, 0, 0, config.index_bytes_max)?;
    if let Some(size) = cut_to {
        cut_log(&files, &seg, size)?;
    }
    let log_path = seg.path(LOG_EXT);
    let file_len = log_len(&files.log, &log_path)?;
    seg.fit_witness(&files, file_len)?;
    let witness = files.witness();
    let mut cursor = IndexCursor::new(config.index_interval_bytes);
    let mut batches = Vec::new();
    let gaps = config.offset_gaps;
    // A segment starts where the previous one ended, or (trusting gaps) later where
    // compaction removed the batches in between (the scan checks the batches themselves).
    let scan = if base.0 == expected || (gaps && base.0 > expected) {
        let scan = Scan {
            log: &files.log,
            path: &log_path,
            base_offset: base.0,
            file_len,
            full_check: true,
            gaps,
            witness: witness.as_deref(),
        };
        scan.run(0, expected, &mut |h, pos| {
            cursor.on_batch(&seg, &files, h, pos);
            if gaps {
                batches.extend(WitnessEntry::of(h, pos, base.0));
            }
        })?
    } else {
        ScanOutcome {
            end_position: 0,
            next_offset: expected,
            damage: Some(CorruptKind::BadOffset),
        }
    };
    // A zero-filled tail is preallocation, not damage.
    let damage = match scan.damage {
        Some(_) if zeros_from(&files.log, &log_path, scan.end_position, file_len)? => None,
        d => d,
    };
    let facts = SegmentFacts {
        base: base.0,
        file_len,
        expected,
        end_position: scan.end_position,
        next_offset: scan.next_offset,
        damage,
    };
    Ok(ScannedSegment {
        seg,
        files,
        cursor,
        facts,
        batches: gaps.then_some(batches),
    })
}

/// Carry out a recovery plan: remove what goes (newest first), cut the tail, seal what stays
/// sealed, and make it durable with the recovery point at the log end.
fn act(
    dir: &Path,
    config: &PartitionConfig,
    mut segments: Vec<Arc<Segment>>,
    mut scanned: Vec<Option<ScannedSegment>>,
    plan: &RecoveryPlan,
) -> Result<Opened> {
    let path_of = |s: &Option<ScannedSegment>| {
        s.as_ref()
            .expect("damage is in a segment still open")
            .seg
            .path(LOG_EXT)
    };
    let report = RecoveryReport {
        segments_scanned: scanned.len(),
        truncated_bytes: plan.truncated_bytes,
        segments_removed: plan.remove_scanned.len() + plan.remove_later.len(),
        damage_at: plan.damage_at.map(|(i, pos)| (path_of(&scanned[i]), pos)),
        log_end_offset: Offset(plan.log_end),
        ..RecoveryReport::default()
    };
    let later = plan.remove_later.iter().rev();
    let fs = &config.fs;
    remove_segments(
        later.map(|&b| Segment::sealed_lazy(fs, dir, Offset(b), Offset(u64::MAX - 1))),
    )?;
    let removed = plan.remove_scanned.iter().rev();
    remove_segments(removed.filter_map(|&i| scanned[i].take().map(|s| s.seg)))?;
    let mut kept = Vec::new();
    for at in &plan.seal {
        // Segments sealed during the scan are already in `segments`, in order.
        let Some(s) = scanned[at.index].take() else {
            continue;
        };
        cut_log(&s.files, &s.seg, at.size)?;
        witness_kept(config, &s, at.size, at.end_offset)?;
        s.seg.seal(&s.files, &s.cursor, at.end_offset, at.size)?;
        // The rebuilt indexes are trusted once the recovery point passes them (as the log is).
        s.seg.sync_indexes()?;
        kept.push(s.files.clone());
        segments.push(Arc::new(s.seg));
    }
    let (active, files, cursor, size) = match plan.active {
        ActivePlan::Scanned { index, size } => {
            let s = scanned[index]
                .take()
                .expect("the active segment is not sealed");
            cut_log(&s.files, &s.seg, size)?;
            witness_kept(config, &s, size, plan.log_end)?;
            (s.seg, s.files, s.cursor, size)
        }
        ActivePlan::ReopenPrevious => {
            let prev = segments.pop().expect("a previous segment exists");
            reopen_sealed(dir, config, prev)?
        }
    };
    kept.push(files.clone());
    settle(&config.fs, dir, &kept, plan.log_end)?;
    let first_timestamp = first_timestamp(&files.log, &active.path(LOG_EXT), size)?;
    segments.push(Arc::new(active));
    Ok(Opened {
        segments,
        files,
        cursor,
        next_offset: plan.log_end,
        size,
        first_timestamp,
        report,
    })
}

/// Cut a segment's log to `size` bytes: everything after goes, and its witness with it.
fn cut_log(files: &SegmentFiles, seg: &Segment, size: u64) -> Result<()> {
    files.log.set_len(size).at(&seg.path(LOG_EXT))?;
    seg.fit_witness(files, size)
}

/// Delete the files of `doomed`, in the order given (newest first, so that a crash part way
/// leaves a shorter log, never one with a hole).
pub(super) fn remove_segments<S: Borrow<Segment>>(doomed: impl Iterator<Item = S>) -> Result<()> {
    for seg in doomed {
        seg.borrow().delete_files()?;
    }
    Ok(())
}

/// Make a changed log durable: rewrite and fsync the logs of `files`, fsync the directory,
/// and write the recovery point at `log_end` (everything below it is on disk now).
///
/// The logs are written again before the fsync because what the scan read may be cached
/// bytes that never reached the disk: after a failed fsync (of this handle, or of a process
/// that died since), Linux marks the dirty pages clean, and a later fsync would succeed
/// without them; the recovery point would then cover a hole. These are the segments from the
/// recovery point on, which recovery has just read anyway.
pub(super) fn settle(fs: &Fs, dir: &Path, files: &[Arc<SegmentFiles>], log_end: u64) -> Result<()> {
    for f in files {
        rewrite_and_sync(&f.log, dir)?;
    }
    checkpoint::sync_dir_in(fs, dir)?;
    checkpoint::write(fs, &dir.join(RECOVERY_POINT_FILE), log_end)
}

/// Write a scanned log's bytes again and fsync it (see [`settle`] for why).
fn rewrite_and_sync(log: &FsFile, path: &Path) -> Result<()> {
    let len = log.len().at(path)?;
    log.rewrite(0, len).at(path)?;
    log.sync_data().at(path)
}

/// Reopen a sealed segment for appending, keeping its (checked) indexes.
fn reopen_sealed(
    dir: &Path,
    config: &PartitionConfig,
    prev: Arc<Segment>,
) -> Result<(Segment, Arc<SegmentFiles>, IndexCursor, u64)> {
    let (entries, time_entries, size, last_time) = {
        let f = prev.files()?;
        let (index, time_index) = (f.index.read(), f.time_index.read());
        (
            index.len(),
            time_index.len(),
            f.sealed_size().expect("sealed"),
            time_index.last(),
        )
    };
    let base = prev.base_offset();
    drop(prev);
    let (seg, files) = Segment::open_active(
        &config.fs,
        dir,
        base,
        entries,
        time_entries,
        config.index_bytes_max,
    )?;
    let last_entry = files.index.read().last();
    let cursor = IndexCursor::resume(
        config.index_interval_bytes,
        base,
        last_entry,
        last_time,
        size,
    );
    Ok((seg, files, cursor, size))
}

/// Whether bytes `[from, to)` of `log` are all zero.
fn zeros_from(log: &FsFile, path: &Path, from: u64, to: u64) -> Result<bool> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut at = from;
    while at < to {
        let n = (to - at).min(buf.len() as u64) as usize;
        log.read_exact_at(&mut buf[..n], at).at(path)?;
        if buf[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        at += n as u64;
    }
    Ok(true)
}

fn assemble(
    dir: &Path,
    config: PartitionConfig,
    lock: FsLock,
    o: Opened,
    log_start_ckpt: u64,
) -> Partition {
    let segments = Arc::new(o.segments);
    let first_base = segments
        .first()
        .expect("at least the active segment")
        .base_offset()
        .0;
    let log_start = log_start_ckpt.max(first_base).min(o.next_offset);
    let active = segments.last().expect("non-empty").clone();
    let end = Position {
        offset: o.next_offset,
        segment_base: active.base_offset().0,
        bytes: o.size,
    };
    // Recovery and a clean open both leave everything they kept on disk.
    let durable = if o.report.clean_shutdown || o.report.segments_scanned > 0 {
        o.next_offset
    } else {
        0
    };
    let writer = Writer {
        segments: segments.clone(),
        active,
        files: o.files,
        cursor: o.cursor,
        next_offset: o.next_offset,
        size: o.size,
        preallocated: o.size,
        first_timestamp: o.first_timestamp,
        unsynced_sealed: Vec::new(),
        dir_dirty: false,
        unsynced_records: 0,
        unsynced_bytes: 0,
        unsynced_since: None,
        recent_ends: VecDeque::new(),
        leading: None,
    };
    let view = View::new(segments, LogBounds::new(log_start, end, durable));
    partition_of(dir, config, lock, writer, view, o.report)
}

/// The partition handle over an assembled writer and view, every other field at rest.
fn partition_of(
    dir: &Path,
    config: PartitionConfig,
    lock: FsLock,
    writer: Writer,
    view: View,
    recovery: RecoveryReport,
) -> Partition {
    Partition {
        dir: dir.to_owned(),
        limits: RwLock::new(super::live::LiveLimits::of(&config)),
        config,
        dir_lock: Mutex::new(Some(lock)),
        writer: Mutex::new(writer),
        view: RwLock::new(view),
        sync: super::sync::GroupCommit::new(),
        retention: Mutex::new(()),
        loaded: Mutex::new(VecDeque::new()),
        failed: AtomicBool::new(false),
        swap_failed: AtomicBool::new(false),
        closed: AtomicBool::new(false),
        skip_close: AtomicBool::new(false),
        pending_appends: AtomicU64::new(0),
        truncations: AtomicU64::new(0),
        waiters: AtomicUsize::new(0),
        notify: Mutex::new(()),
        notify_cond: Condvar::new(),
        recovery,
        epochs: Mutex::new(super::EpochState::default()),
        epoch_file: Mutex::new(()),
        durable_listener: RwLock::new(None),
    }
}

/// Whether file `name` ends in `.ext` (seglog writes lower-case extensions only).
fn has_ext(name: &str, ext: &str) -> bool {
    Path::new(name).extension().is_some_and(|e| e == ext)
}
