//! The partition's bounds in one place: log start, high watermark, durable end and log end.
//!
//! Every change goes through a method of [`LogBounds`] that asserts the invariants
//! `log_start <= high_watermark <= log_end` and `durable_end <= log_end`. A violation is a bug
//! in seglog, not a condition of the disk, so it panics.

use std::sync::Arc;

use crate::log::segment::Segment;

/// Where the visible (or synced) log ends: an offset and the byte position it maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Position {
    /// The offset one past the last record.
    pub offset: u64,
    /// Base offset of the segment `bytes` counts in.
    pub segment_base: u64,
    /// Bytes of that segment up to `offset`.
    pub bytes: u64,
}

impl Position {
    /// The start of a segment based at `offset`, empty.
    pub(crate) fn segment_start(offset: u64) -> Position {
        Position {
            offset,
            segment_base: offset,
            bytes: 0,
        }
    }
}

/// Log start, high watermark, durable end and log end of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LogBounds {
    log_start: u64,
    high_watermark: Position,
    durable_end: u64,
    log_end: Position,
}

impl LogBounds {
    /// Bounds of a log just opened: everything up to `end` is visible; `durable_end` of it is
    /// known to be on disk.
    pub(crate) fn new(log_start: u64, end: Position, durable_end: u64) -> LogBounds {
        let b = LogBounds {
            log_start,
            high_watermark: end,
            durable_end,
            log_end: end,
        };
        b.check();
        b
    }

    /// The first readable offset.
    pub(crate) fn log_start(&self) -> u64 {
        self.log_start
    }

    /// One past the last offset readers may see, and where it lies.
    pub(crate) fn high_watermark(&self) -> Position {
        self.high_watermark
    }

    /// Every offset below this is on disk.
    pub(crate) fn durable_end(&self) -> u64 {
        self.durable_end
    }

    /// The offset the next record gets, and where it will be written.
    pub(crate) fn log_end(&self) -> Position {
        self.log_end
    }

    fn check(&self) {
        assert!(
            self.log_start <= self.high_watermark.offset
                && self.high_watermark.offset <= self.log_end.offset
                && self.durable_end <= self.log_end.offset,
            "partition bounds violated: {self:?}"
        );
    }

    /// The log grew (an append) or moved on to a new segment (a roll): `end` never lies below
    /// the current log end. With `publish`, readers see it at once (the high watermark follows).
    pub(crate) fn advance_end(&mut self, end: Position, publish: bool) {
        assert!(
            end.offset >= self.log_end.offset,
            "the log end only moves down by truncation: {end:?} below {self:?}"
        );
        self.log_end = end;
        if publish {
            self.high_watermark = end;
        }
        self.check();
    }

    /// Readers may see up to `to`, if that is further than they do now.
    pub(crate) fn advance_high_watermark(&mut self, to: Position) {
        if to.offset > self.high_watermark.offset {
            self.high_watermark = to;
        }
        self.check();
    }

    /// At open, a replicated partition's high watermark is the one its replicator last
    /// checkpointed, not the log end: it may only move down here, never later.
    pub(crate) fn restore_high_watermark(&mut self, to: Position) {
        assert!(
            to.offset <= self.high_watermark.offset,
            "a restored high watermark lies at or below the log end: {to:?} above {self:?}"
        );
        self.high_watermark = to;
        self.check();
    }

    /// The high watermark stays at its offset but lies elsewhere in bytes (compaction replaced
    /// the segment it pointed into).
    pub(crate) fn relocate_high_watermark(&mut self, to: Position) {
        assert_eq!(
            to.offset, self.high_watermark.offset,
            "relocating keeps the offset"
        );
        self.high_watermark = to;
        self.check();
    }

    /// Everything below `offset` is on disk, if that is further than known.
    pub(crate) fn advance_durable(&mut self, offset: u64) {
        self.durable_end = self.durable_end.max(offset);
        self.check();
    }

    /// Records below `offset` are gone, if that is further than the current start.
    pub(crate) fn advance_log_start(&mut self, offset: u64) {
        self.log_start = self.log_start.max(offset);
        self.check();
    }

    /// Every record at or above `end.offset` is removed: the log end moves down to `end`, the
    /// high watermark and durable end are clamped to it. `end` may not lie below the log start.
    pub(crate) fn truncate_to(&mut self, end: Position) {
        assert!(
            end.offset <= self.log_end.offset,
            "truncation moves the log end down: {end:?} above {self:?}"
        );
        self.log_end = end;
        if self.high_watermark.offset >= end.offset {
            self.high_watermark = end;
        }
        self.durable_end = self.durable_end.min(end.offset);
        self.check();
    }
}

/// The readers' snapshot: the segment list and the bounds. Readers hold the lock only to clone
/// it; every change goes through a method.
#[derive(Clone)]
pub(crate) struct View {
    segments: Arc<Vec<Arc<Segment>>>,
    bounds: LogBounds,
}

impl View {
    /// A view of `segments` (non-empty, oldest first) within `bounds`.
    pub(crate) fn new(segments: Arc<Vec<Arc<Segment>>>, bounds: LogBounds) -> View {
        assert!(!segments.is_empty(), "a partition has an active segment");
        View { segments, bounds }
    }

    /// The segments, oldest first; the last is the active one.
    pub(crate) fn segments(&self) -> &Arc<Vec<Arc<Segment>>> {
        &self.segments
    }

    /// The bounds.
    pub(crate) fn bounds(&self) -> &LogBounds {
        &self.bounds
    }

    /// Change the bounds (each method asserts the invariants).
    pub(crate) fn bounds_mut(&mut self) -> &mut LogBounds {
        &mut self.bounds
    }

    /// The first readable offset.
    pub(crate) fn log_start(&self) -> u64 {
        self.bounds.log_start()
    }

    /// One past the last offset readers may see, and where it lies.
    pub(crate) fn high_watermark(&self) -> Position {
        self.bounds.high_watermark()
    }

    /// The offset the next record gets, and where it will be written.
    pub(crate) fn log_end(&self) -> Position {
        self.bounds.log_end()
    }

    /// A new segment list (a roll, retention, compaction or truncation changed it).
    pub(crate) fn replace_segments(&mut self, segments: Arc<Vec<Arc<Segment>>>) {
        assert!(!segments.is_empty(), "a partition has an active segment");
        self.segments = segments;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(offset: u64) -> Position {
        Position {
            offset,
            segment_base: 0,
            bytes: offset * 100,
        }
    }

    #[test]
    fn appends_publish_or_wait_for_the_sync() {
        let mut b = LogBounds::new(0, at(0), 0);
        b.advance_end(at(3), true);
        assert_eq!((b.high_watermark(), b.log_end()), (at(3), at(3)));
        b.advance_end(at(5), false);
        assert_eq!((b.high_watermark(), b.log_end()), (at(3), at(5)));
        b.advance_durable(5);
        b.advance_high_watermark(at(5));
        assert_eq!((b.durable_end(), b.high_watermark()), (5, at(5)));
        // An older sync finishing late moves nothing back.
        b.advance_durable(4);
        b.advance_high_watermark(at(4));
        assert_eq!((b.durable_end(), b.high_watermark()), (5, at(5)));
    }

    #[test]
    fn a_roll_keeps_the_offset_and_moves_to_the_new_segment() {
        let mut b = LogBounds::new(0, at(4), 4);
        b.advance_end(Position::segment_start(4), false);
        assert_eq!(b.log_end(), Position::segment_start(4));
        assert_eq!(b.high_watermark(), at(4));
        b.relocate_high_watermark(Position::segment_start(4));
        assert_eq!(b.high_watermark(), Position::segment_start(4));
    }

    #[test]
    fn log_start_only_moves_forward_up_to_the_high_watermark() {
        let mut b = LogBounds::new(2, at(8), 8);
        b.advance_log_start(5);
        b.advance_log_start(3);
        assert_eq!(b.log_start(), 5);
        b.advance_log_start(8);
        assert_eq!(b.log_start(), 8);
    }

    #[test]
    fn truncation_clamps_the_high_watermark_and_durable_end() {
        let mut b = LogBounds::new(1, at(10), 9);
        b.advance_end(at(12), false);
        b.truncate_to(at(6));
        assert_eq!(
            (b.log_end(), b.high_watermark(), b.durable_end()),
            (at(6), at(6), 6)
        );
        // Below the high watermark nothing else moves.
        let mut b = LogBounds::new(0, at(4), 2);
        b.advance_end(at(9), false);
        b.truncate_to(at(7));
        assert_eq!(
            (b.log_end(), b.high_watermark(), b.durable_end()),
            (at(7), at(4), 2)
        );
        b.truncate_to(at(7));
        assert_eq!(b.log_end(), at(7));
    }

    #[test]
    #[should_panic(expected = "bounds violated")]
    fn log_start_above_the_high_watermark_panics() {
        let mut b = LogBounds::new(0, at(4), 4);
        b.advance_end(at(6), false);
        b.advance_log_start(5);
    }

    #[test]
    #[should_panic(expected = "bounds violated")]
    fn opening_with_the_start_past_the_end_panics() {
        LogBounds::new(5, at(4), 0);
    }

    #[test]
    #[should_panic(expected = "bounds violated")]
    fn durable_past_the_end_panics() {
        let mut b = LogBounds::new(0, at(4), 4);
        b.advance_durable(5);
    }

    #[test]
    #[should_panic(expected = "bounds violated")]
    fn high_watermark_past_the_end_panics() {
        let mut b = LogBounds::new(0, at(4), 4);
        b.advance_high_watermark(at(5));
    }

    #[test]
    #[should_panic(expected = "only moves down by truncation")]
    fn the_end_moving_back_without_truncation_panics() {
        let mut b = LogBounds::new(0, at(4), 4);
        b.advance_end(at(3), true);
    }

    #[test]
    #[should_panic(expected = "bounds violated")]
    fn truncating_below_the_log_start_panics() {
        let mut b = LogBounds::new(3, at(4), 4);
        b.truncate_to(at(2));
    }
}
