//! The leader epoch cache: for every leader epoch that wrote to the partition, the offset of its
//! first record, in Kafka's `leader-epoch-checkpoint` text format.
//!
//! A pure structure (no I/O): the partition keeps one behind a lock, persists it with
//! [`encode`](EpochCache::encode) through the file seam and reads it back with
//! [`parse`](EpochCache::parse). Semantics follow Kafka's `LeaderEpochFileCache`:
//!
//! - entries are strictly increasing in both epoch and start offset; assigning an entry that
//!   breaks that removes the entries it contradicts (a newer leader overrides an older tail);
//! - [`end_offset_for`](EpochCache::end_offset_for) answers `OffsetsForLeaderEpoch` (KIP-101 as
//!   amended by KIP-279): the largest epoch at or below the one asked and where it ended;
//! - truncation from the end drops epochs that start at or after the cut; truncation from the
//!   start (retention) drops epochs that ended before the new log start and moves the one
//!   holding it to start there.
//!
//! File layout (UTF-8 text, `\n` line ends), as Kafka writes it:
//!
//! ```text
//! 0              version
//! 2              number of entries
//! 0 0            epoch start_offset
//! 3 120
//! ```
//!
//! **Epochs and terms.** Kafka's epoch is a non-negative `i32` (-1 means "none"). A consensus
//! engine whose term is a `u64` maps term `t` to epoch `t` while `t <= i32::MAX` and must refuse
//! (not wrap) beyond: [`epoch_from_term`] does so. Terms start at 0 or 1 in every engine we know;
//! 2^31 elections are out of reach in practice.

use crate::error::{CorruptKind, Error, Result};

/// Name of the checkpoint file in a partition directory (Kafka's name).
pub const LEADER_EPOCH_CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";

/// The epoch value Kafka uses for "no epoch".
pub const EPOCH_NONE: i32 = -1;

/// Most entries a checkpoint may declare: a bound on what a damaged file can make us allocate.
pub(crate) const ENTRIES_MAX: usize = 1 << 20;

/// The leader epoch for a consensus term, or `None` when the term does not fit Kafka's `i32`
/// epoch. Terms map one to one (`epoch == term`): ordering is kept, so "epochs never go back"
/// is "terms never go back".
pub fn epoch_from_term(term: u64) -> Option<i32> {
    i32::try_from(term).ok()
}

/// One epoch and the offset of its first record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    /// The leader epoch (>= 0).
    pub epoch: i32,
    /// Offset of the first record written in it.
    pub start_offset: u64,
}

/// Epoch → start offset, strictly increasing in both.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct EpochCache {
    entries: Vec<EpochEntry>,
}

impl EpochCache {
    /// The entries, oldest first.
    pub(crate) fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    /// The latest entry.
    pub(crate) fn latest(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    /// The latest epoch, or [`EPOCH_NONE`].
    pub(crate) fn latest_epoch(&self) -> i32 {
        self.latest().map_or(EPOCH_NONE, |e| e.epoch)
    }

    /// Record that `epoch` starts at `start_offset`. Returns whether the cache changed.
    ///
    /// As Kafka: nothing changes when `epoch` is the latest and starts no earlier; otherwise
    /// every entry with an epoch `>= epoch` or a start `>= start_offset` goes, then the entry is
    /// added. Negative epochs are ignored (batches written without an epoch).
    pub(crate) fn assign(&mut self, epoch: i32, start_offset: u64) -> bool {
        if epoch < 0 {
            return false;
        }
        if let Some(last) = self.latest() {
            if last.epoch == epoch && start_offset >= last.start_offset {
                return false;
            }
        }
        self.entries
            .retain(|e| e.epoch < epoch && e.start_offset < start_offset);
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        true
    }

    /// Drop every entry starting at or after `end_offset` (the log was cut there). Returns
    /// whether the cache changed.
    pub(crate) fn truncate_from_end(&mut self, end_offset: u64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < end_offset);
        before != self.entries.len()
    }

    /// The log now starts at `start_offset`: drop entries wholly below it and move the one
    /// holding it to start there. Returns whether the cache changed.
    pub(crate) fn truncate_from_start(&mut self, start_offset: u64) -> bool {
        let holding = self
            .entries
            .partition_point(|e| e.start_offset <= start_offset);
        if holding == 0 {
            return false;
        }
        let changed = holding > 1 || self.entries[0].start_offset != start_offset;
        self.entries.drain(..holding - 1);
        self.entries[0].start_offset = start_offset;
        changed
    }

    /// `OffsetsForLeaderEpoch`: `(epoch, end_offset)` for the `requested` epoch on a log ending at
    /// `log_end`, Kafka's rules:
    ///
    /// - `requested` is [`EPOCH_NONE`], or above every known epoch: `None` (Kafka's undefined
    ///   epoch and offset);
    /// - `requested` is the latest epoch: `(requested, log_end)`;
    /// - otherwise: the largest known epoch `<= requested` and the start offset of the first
    ///   epoch above `requested` (its end). When no epoch `<= requested` is known (older ones
    ///   were removed with the log's head), `(requested, start of the first epoch)`.
    pub(crate) fn end_offset_for(&self, requested: i32, log_end: u64) -> Option<(i32, u64)> {
        if requested < 0 {
            return None;
        }
        let latest = self.latest()?;
        if latest.epoch == requested {
            return Some((requested, log_end));
        }
        let higher = self.entries.partition_point(|e| e.epoch <= requested);
        let next = self.entries.get(higher)?;
        match higher.checked_sub(1).map(|i| self.entries[i]) {
            Some(floor) => Some((floor.epoch, next.start_offset)),
            None => Some((requested, next.start_offset)),
        }
    }

    /// The checkpoint file's bytes (Kafka's format, see the module docs).
    pub(crate) fn encode(&self) -> Vec<u8> {
        use std::fmt::Write as _;
        let mut s = format!("0\n{}\n", self.entries.len());
        for e in &self.entries {
            let _ = writeln!(s, "{} {}", e.epoch, e.start_offset);
        }
        s.into_bytes()
    }

    /// Parse a checkpoint file. Anything but Kafka's version 0 with the declared number of
    /// well-formed, strictly increasing entries is [`CorruptKind::BadCheckpoint`].
    pub(crate) fn parse(bytes: &[u8], path: &std::path::Path) -> Result<EpochCache> {
        let bad = || Error::Corrupt {
            path: path.to_owned(),
            position: 0,
            reason: CorruptKind::BadCheckpoint,
        };
        let text = std::str::from_utf8(bytes).map_err(|_| bad())?;
        let mut lines = text.lines();
        if lines.next().map(str::trim) != Some("0") {
            return Err(bad());
        }
        let count: usize = lines
            .next()
            .and_then(|l| l.trim().parse().ok())
            .filter(|&n| n <= ENTRIES_MAX)
            .ok_or_else(bad)?;
        let mut cache = EpochCache::default();
        for _ in 0..count {
            let line = lines.next().ok_or_else(bad)?;
            let mut fields = line.split_whitespace();
            let epoch: i32 = fields.next().and_then(|f| f.parse().ok()).ok_or_else(bad)?;
            let start: u64 = fields.next().and_then(|f| f.parse().ok()).ok_or_else(bad)?;
            let in_order = cache
                .latest()
                .is_none_or(|l| l.epoch < epoch && l.start_offset < start);
            if fields.next().is_some() || epoch < 0 || start > i64::MAX as u64 || !in_order {
                return Err(bad());
            }
            cache.entries.push(EpochEntry {
                epoch,
                start_offset: start,
            });
        }
        if lines.any(|l| !l.trim().is_empty()) {
            return Err(bad());
        }
        Ok(cache)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, u64)]) -> EpochCache {
        let mut c = EpochCache::default();
        for &(e, o) in entries {
            c.assign(e, o);
        }
        c
    }

    fn pairs(c: &EpochCache) -> Vec<(i32, u64)> {
        c.entries()
            .iter()
            .map(|e| (e.epoch, e.start_offset))
            .collect()
    }

    // Kafka's LeaderEpochFileCacheTest, case by case.

    #[test]
    fn should_add_epoch_and_message_offset_to_cache() {
        let c = cache(&[(2, 10)]);
        assert_eq!(c.latest_epoch(), 2);
        assert_eq!(c.end_offset_for(2, 11), Some((2, 11)));
    }

    #[test]
    fn should_return_log_end_offset_if_latest_epoch_requested() {
        let c = cache(&[(2, 5), (3, 6), (4, 7)]);
        assert_eq!(c.end_offset_for(4, 8), Some((4, 8)));
    }

    #[test]
    fn should_return_undefined_offset_if_undefined_epoch_requested() {
        let c = cache(&[(2, 5)]);
        assert_eq!(c.end_offset_for(EPOCH_NONE, 0), None);
        assert_eq!(EpochCache::default().end_offset_for(EPOCH_NONE, 0), None);
        assert_eq!(EpochCache::default().end_offset_for(0, 0), None);
    }

    #[test]
    fn should_not_overwrite_log_end_offset_for_a_leader_epoch_once_assigned() {
        let mut c = cache(&[(2, 6)]);
        assert!(!c.assign(2, 7));
        assert_eq!(pairs(&c), [(2, 6)]);
    }

    #[test]
    fn should_enforce_monotonically_increasing_start_offsets() {
        let mut c = cache(&[(2, 6)]);
        // An earlier start for a later epoch overrides.
        assert!(c.assign(3, 5));
        assert_eq!(pairs(&c), [(3, 5)]);
        // The same epoch at an earlier start moves it.
        assert!(c.assign(3, 4));
        assert_eq!(pairs(&c), [(3, 4)]);
    }

    #[test]
    fn should_return_first_epoch_start_if_requested_epoch_below_first_epoch() {
        let c = cache(&[(5, 11), (6, 12), (7, 13)]);
        assert_eq!(c.end_offset_for(4, 14), Some((4, 11)));
    }

    #[test]
    fn should_return_previous_epoch_end_offset_for_a_gap_in_epochs() {
        // KIP-279: epochs 2 and 5 known, 3 and 4 never wrote: asking for 3 gives epoch 2 and
        // its end, the start of 5.
        let c = cache(&[(2, 10), (5, 20), (7, 30)]);
        assert_eq!(c.end_offset_for(3, 40), Some((2, 20)));
        assert_eq!(c.end_offset_for(2, 40), Some((2, 20)));
        assert_eq!(c.end_offset_for(5, 40), Some((5, 30)));
        assert_eq!(c.end_offset_for(6, 40), Some((5, 30)));
    }

    #[test]
    fn should_return_undefined_for_an_epoch_above_the_latest() {
        let c = cache(&[(2, 10)]);
        assert_eq!(c.end_offset_for(3, 40), None);
    }

    #[test]
    fn should_drop_entries_with_a_higher_epoch_or_later_start_on_assign() {
        // Kafka replaces epoch 3's entry too: every entry with epoch >= 3 goes.
        let mut c = cache(&[(2, 6), (3, 8), (4, 11)]);
        assert!(c.assign(3, 9));
        assert_eq!(pairs(&c), [(2, 6), (3, 9)]);
        let mut c = cache(&[(2, 6), (3, 8), (4, 11)]);
        assert!(c.assign(5, 7));
        assert_eq!(pairs(&c), [(2, 6), (5, 7)]);
    }

    #[test]
    fn should_truncate_from_end() {
        let mut c = cache(&[(2, 6), (3, 8), (4, 11)]);
        assert!(!c.truncate_from_end(12));
        assert!(c.truncate_from_end(11));
        assert_eq!(pairs(&c), [(2, 6), (3, 8)]);
        assert!(c.truncate_from_end(7));
        assert_eq!(pairs(&c), [(2, 6)]);
        assert!(c.truncate_from_end(0));
        assert!(pairs(&c).is_empty());
    }

    #[test]
    fn should_truncate_from_start() {
        let mut c = cache(&[(2, 6), (3, 8), (4, 11)]);
        assert!(!c.truncate_from_start(5));
        assert!(c.truncate_from_start(9));
        assert_eq!(pairs(&c), [(3, 9), (4, 11)]);
        assert!(c.truncate_from_start(11));
        assert_eq!(pairs(&c), [(4, 11)]);
        assert!(c.truncate_from_start(20));
        assert_eq!(pairs(&c), [(4, 20)]);
        assert!(!c.truncate_from_start(20));
    }

    #[test]
    fn checkpoint_round_trips_in_kafkas_format() {
        let c = cache(&[(0, 0), (3, 120)]);
        let bytes = c.encode();
        assert_eq!(bytes, b"0\n2\n0 0\n3 120\n");
        let p = std::path::Path::new("x");
        assert_eq!(EpochCache::parse(&bytes, p).unwrap(), c);
        assert_eq!(
            EpochCache::parse(b"0\n0\n", p).unwrap(),
            EpochCache::default()
        );
    }

    #[test]
    fn damaged_checkpoints_are_errors() {
        let p = std::path::Path::new("x");
        for bad in [
            &b""[..],
            b"1\n0\n",
            b"0\n",
            b"0\n2\n0 0\n",
            b"0\n1\n0 0 9\n",
            b"0\n1\n-1 0\n",
            b"0\n2\n3 10\n2 20\n",
            b"0\n2\n2 10\n3 10\n",
            b"0\n1\n0 0\nextra\n",
            b"0\n99999999999\n",
            b"0\n1\nx y\n",
            b"\xff\n",
        ] {
            assert!(
                matches!(
                    EpochCache::parse(bad, p),
                    Err(Error::Corrupt {
                        reason: CorruptKind::BadCheckpoint,
                        ..
                    })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn terms_map_to_epochs_without_wrapping() {
        assert_eq!(epoch_from_term(0), Some(0));
        assert_eq!(epoch_from_term(7), Some(7));
        assert_eq!(epoch_from_term(i32::MAX as u64), Some(i32::MAX));
        assert_eq!(epoch_from_term(i32::MAX as u64 + 1), None);
    }
}
