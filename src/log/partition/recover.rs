//! Crash recovery as plan + act, like retention: the scan in `open.rs` gathers
//! [`SegmentFacts`] about each segment it checks, [`plan_recovery`] decides from those facts
//! alone (pure: no files, unit-tested on hand-built facts), and the act in `open.rs` carries the
//! plan out.
//!
//! The rules:
//! - Segments are scanned from the one holding the recovery point. Each must start where the
//!   previous one ended ([`sealed_end`]); the first that does not, or whose scan stops at an
//!   invalid batch, holds the end of the log (the *tail*). Everything after the tail goes.
//! - The tail is cut after its last valid batch. If nothing valid is left in it and a segment
//!   comes before it, it goes too and the previous segment becomes active again.
//! - A segment holding no valid batch whose base lies above where the log ended is past the
//!   tail, whatever its bytes: it goes (issue 9, bug 1: keeping it made the active segment's
//!   base lie above the log end, and acknowledged appends were lost).
//! - If the log would end below the recovery point (data that had been fsynced is damaged), the
//!   plan fails with [`BelowRecoveryPoint`] unless `truncate_corrupt` is set.

use crate::error::CorruptKind;

/// What the scan found in one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SegmentFacts {
    /// The base offset in the file name.
    pub base: u64,
    /// The log file's length in bytes.
    pub file_len: u64,
    /// Where the log before this segment ended: the base offset its first batch had to have.
    pub expected: u64,
    /// Byte position after the last valid batch (0: none).
    pub end_position: u64,
    /// Offset after the last valid batch (`expected` if there is none).
    pub next_offset: u64,
    /// Why the scan stopped before the end of the file; a zero-filled tail (preallocation)
    /// is not damage.
    pub damage: Option<CorruptKind>,
}

impl SegmentFacts {
    /// No valid batch, and the base lies above where the log ended: past the tail.
    pub(super) fn past_tail(&self) -> bool {
        self.end_position == 0 && self.base > self.expected
    }

    /// The log ends in this segment: no later segment can follow it.
    pub(super) fn ends_log(&self) -> bool {
        self.damage.is_some() || self.past_tail()
    }
}

/// Where a segment that does not end the log ends, given the base of the next one. Where
/// offsets may have gaps (`gaps`: the partition gaps or came from elsewhere), compaction may
/// have removed a segment's last batches, or all of them: then it ends where the next one
/// begins. Elsewhere it ends after its last batch (an empty one where it began).
pub(super) fn sealed_end(f: &SegmentFacts, next_base: u64, gaps: bool) -> u64 {
    if gaps {
        f.next_offset.max(next_base)
    } else {
        f.next_offset
    }
}

/// What recovery decides on.
#[derive(Debug, Clone, Copy)]
pub(super) struct RecoveryInput<'a> {
    /// The scanned segments, oldest first, from the one holding the recovery point.
    pub scanned: &'a [SegmentFacts],
    /// Base offset and file length of each later segment the scan did not reach.
    pub later: &'a [(u64, u64)],
    /// Segments below the first scanned one exist (trusted, not scanned).
    pub has_prefix: bool,
    /// Every offset below it had been fsynced.
    pub recovery_point: u64,
    /// Cut damage below the recovery point instead of failing.
    pub truncate_corrupt: bool,
    /// Offsets may have gaps (the partition gaps, or the directory came from elsewhere):
    /// a segment may end where the next begins, and may be empty.
    pub gaps: bool,
    /// Offsets from here on were never compacted: a segment ending above it ends after its
    /// last batch even where `gaps` holds (the recovery point seglog wrote; `u64::MAX`
    /// without one).
    pub dense_from: u64,
}

/// A scanned segment kept as a sealed one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SealAt {
    /// Index into the scanned segments.
    pub index: usize,
    /// One past its last offset.
    pub end_offset: u64,
    /// Its size in bytes (the file is cut there: a zero-filled tail goes).
    pub size: u64,
}

/// Which segment appends continue in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ActivePlan {
    /// A scanned segment, cut to `size` bytes.
    Scanned {
        /// Index into the scanned segments.
        index: usize,
        /// Bytes kept.
        size: u64,
    },
    /// The last of the unscanned segments below the first scanned one, reopened.
    ReopenPrevious,
}

/// What recovery does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RecoveryPlan {
    /// Scanned segments kept sealed, oldest first.
    pub seal: Vec<SealAt>,
    /// Where appends continue.
    pub active: ActivePlan,
    /// Scanned segments removed (indexes into the scanned ones), oldest first.
    pub remove_scanned: Vec<usize>,
    /// Unscanned later segments removed (base offsets), oldest first.
    pub remove_later: Vec<u64>,
    /// The log end offset after recovery.
    pub log_end: u64,
    /// Bytes cut: the damaged tail, and the whole of every removed segment.
    pub truncated_bytes: u64,
    /// The first invalid batch: index into the scanned segments and byte position.
    pub damage_at: Option<(usize, u64)>,
}

/// The log would end below the recovery point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct BelowRecoveryPoint {
    /// The scanned segment holding the tail.
    pub index: usize,
    /// The first offset that could not be recovered.
    pub offset: u64,
}

/// Decide what recovery does from what the scan found. Pure.
///
/// # Panics
/// If `input.scanned` is empty (the scan always checks at least one segment).
pub(super) fn plan_recovery(input: RecoveryInput<'_>) -> Result<RecoveryPlan, BelowRecoveryPoint> {
    let facts = input.scanned;
    assert!(!facts.is_empty(), "recovery scans at least one segment");
    let tail = facts
        .iter()
        .position(SegmentFacts::ends_log)
        .unwrap_or(facts.len() - 1);
    let mut seal: Vec<SealAt> = (0..tail)
        .map(|i| SealAt {
            index: i,
            end_offset: sealed_end(
                &facts[i],
                facts[i + 1].base,
                input.gaps && facts[i + 1].base <= input.dense_from,
            ),
            size: facts[i].end_position,
        })
        .collect();
    let t = &facts[tail];
    let mut truncated_bytes = t.file_len - t.end_position;
    let damage_at = t.damage.map(|_| (tail, t.end_position));
    if damage_at.is_none() && !t.past_tail() {
        // Only a zero-filled tail (preallocation) is cut from an undamaged segment.
        truncated_bytes = 0;
    }
    let mut remove_scanned: Vec<usize> = (tail + 1..facts.len()).collect();
    truncated_bytes += remove_scanned
        .iter()
        .map(|&j| facts[j].file_len)
        .sum::<u64>();
    truncated_bytes += input.later.iter().map(|&(_, len)| len).sum::<u64>();
    let can_fall_back = tail > 0 || input.has_prefix;
    let remove_tail = can_fall_back && t.end_position == 0 && t.ends_log();
    let (active, log_end) = if remove_tail {
        remove_scanned.insert(0, tail);
        match seal.pop() {
            Some(prev) => {
                let active = ActivePlan::Scanned {
                    index: prev.index,
                    size: prev.size,
                };
                (active, t.expected)
            }
            None => (ActivePlan::ReopenPrevious, t.expected),
        }
    } else {
        let active = ActivePlan::Scanned {
            index: tail,
            size: t.end_position,
        };
        // The active segment's base never lies above the log end (the first scanned segment
        // is expected at its own base, so this only guards inconsistent facts).
        (active, t.next_offset.max(t.base))
    };
    if log_end < input.recovery_point && !input.truncate_corrupt {
        return Err(BelowRecoveryPoint {
            index: tail,
            offset: log_end,
        });
    }
    Ok(RecoveryPlan {
        seal,
        active,
        remove_scanned,
        remove_later: input.later.iter().map(|&(base, _)| base).collect(),
        log_end,
        truncated_bytes,
        damage_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A whole, undamaged segment of `base..end` in `len` bytes.
    fn whole(base: u64, end: u64, len: u64) -> SegmentFacts {
        SegmentFacts {
            base,
            file_len: len,
            expected: base,
            end_position: len,
            next_offset: end,
            damage: None,
        }
    }

    fn input(scanned: &[SegmentFacts]) -> RecoveryInput<'_> {
        RecoveryInput {
            scanned,
            later: &[],
            has_prefix: false,
            recovery_point: 0,
            truncate_corrupt: false,
            gaps: false,
            dense_from: u64::MAX,
        }
    }

    #[test]
    fn an_undamaged_log_is_kept_whole() {
        let facts = [whole(0, 10, 1000), whole(10, 25, 1500)];
        let plan = plan_recovery(input(&facts)).unwrap();
        assert_eq!(
            plan.seal,
            [SealAt {
                index: 0,
                end_offset: 10,
                size: 1000
            }]
        );
        assert_eq!(
            plan.active,
            ActivePlan::Scanned {
                index: 1,
                size: 1500
            }
        );
        assert_eq!(plan.log_end, 25);
        assert_eq!(plan.truncated_bytes, 0);
        assert!(plan.remove_scanned.is_empty() && plan.remove_later.is_empty());
        assert_eq!(plan.damage_at, None);
    }

    #[test]
    fn a_torn_tail_is_cut_after_the_last_valid_batch() {
        let torn = SegmentFacts {
            file_len: 1700,
            damage: Some(CorruptKind::Truncated),
            ..whole(10, 25, 1500)
        };
        let facts = [whole(0, 10, 1000), torn];
        let plan = plan_recovery(input(&facts)).unwrap();
        assert_eq!(
            plan.active,
            ActivePlan::Scanned {
                index: 1,
                size: 1500
            }
        );
        assert_eq!(plan.log_end, 25);
        assert_eq!(plan.truncated_bytes, 200);
        assert_eq!(plan.damage_at, Some((1, 1500)));
    }

    #[test]
    fn damage_ends_the_log_and_later_segments_go() {
        let damaged = SegmentFacts {
            file_len: 1400,
            damage: Some(CorruptKind::Crc),
            ..whole(10, 20, 1000)
        };
        let facts = [whole(0, 10, 1000), damaged];
        let plan = plan_recovery(RecoveryInput {
            later: &[(30, 500), (40, 300)],
            ..input(&facts)
        })
        .unwrap();
        assert_eq!(
            plan.active,
            ActivePlan::Scanned {
                index: 1,
                size: 1000
            }
        );
        assert_eq!(plan.remove_later, [30, 40]);
        assert_eq!(plan.truncated_bytes, 400 + 500 + 300);
        assert_eq!(plan.log_end, 20);
    }

    #[test]
    fn nothing_valid_left_makes_the_previous_segment_active() {
        let torn = SegmentFacts {
            damage: Some(CorruptKind::Truncated),
            ..whole(10, 10, 0)
        };
        let torn = SegmentFacts {
            file_len: 40,
            ..torn
        };
        let facts = [whole(0, 10, 1000), torn];
        let plan = plan_recovery(input(&facts)).unwrap();
        assert!(plan.seal.is_empty());
        assert_eq!(
            plan.active,
            ActivePlan::Scanned {
                index: 0,
                size: 1000
            }
        );
        assert_eq!(plan.remove_scanned, [1]);
        assert_eq!((plan.log_end, plan.truncated_bytes), (10, 40));

        // The first scanned segment falls back to the unscanned ones below it.
        let plan = plan_recovery(RecoveryInput {
            has_prefix: true,
            recovery_point: 10,
            ..input(&facts[1..])
        })
        .unwrap();
        assert_eq!(plan.active, ActivePlan::ReopenPrevious);
        assert_eq!(
            (plan.log_end, plan.remove_scanned.as_slice()),
            (10, &[0][..])
        );

        // With nothing below it, an empty damaged segment stays, cut to nothing.
        let plan = plan_recovery(input(&facts[1..])).unwrap();
        assert_eq!(plan.active, ActivePlan::Scanned { index: 0, size: 0 });
        assert!(plan.remove_scanned.is_empty());
    }

    #[test]
    fn an_empty_newest_segment_at_the_log_end_stays_active() {
        let facts = [whole(0, 10, 1000), whole(10, 10, 0)];
        let plan = plan_recovery(input(&facts)).unwrap();
        assert_eq!(plan.active, ActivePlan::Scanned { index: 1, size: 0 });
        assert_eq!(plan.log_end, 10);
        assert!(plan.remove_scanned.is_empty());
    }

    #[test]
    fn an_empty_segment_above_the_log_end_is_past_the_tail() {
        // Issue 9, bug 1: the log ends at 3, an empty segment is named 5.
        let stray = SegmentFacts {
            expected: 3,
            next_offset: 3,
            ..whole(5, 5, 0)
        };
        assert!(stray.past_tail() && stray.ends_log());
        for later in [&[][..], &[(9, 100)][..]] {
            let facts = [whole(0, 3, 300), stray];
            let plan = plan_recovery(RecoveryInput {
                later,
                ..input(&facts)
            })
            .unwrap();
            assert_eq!(
                plan.active,
                ActivePlan::Scanned {
                    index: 0,
                    size: 300
                }
            );
            assert_eq!(plan.log_end, 3);
            assert_eq!(plan.remove_scanned, [1]);
            assert_eq!(plan.remove_later.len(), later.len());
            assert_eq!(plan.damage_at, None);
        }
        // Zero-filled (preallocated) bytes do not make it hold anything.
        let zeros = SegmentFacts {
            file_len: 4096,
            ..stray
        };
        let facts = [whole(0, 3, 300), zeros];
        let plan = plan_recovery(input(&facts)).unwrap();
        assert_eq!(plan.remove_scanned, [1]);
        assert_eq!((plan.log_end, plan.truncated_bytes), (3, 4096));
    }

    #[test]
    fn gaps_only_where_allowed() {
        // The first segment's last batches were compacted away: it ends where the next begins.
        let compacted = whole(0, 8, 700);
        assert_eq!(sealed_end(&compacted, 10, true), 10);
        assert_eq!(sealed_end(&compacted, 10, false), 8);
        let emptied = whole(10, 10, 0);
        assert_eq!(sealed_end(&emptied, 20, true), 20);
        assert_eq!(sealed_end(&emptied, 20, false), 10);
        let facts = [compacted, whole(10, 20, 900)];
        let plan = plan_recovery(RecoveryInput {
            gaps: true,
            dense_from: u64::MAX,
            ..input(&facts)
        })
        .unwrap();
        assert_eq!(plan.seal[0].end_offset, 10);
        assert_eq!(plan.log_end, 20);
    }

    #[test]
    fn an_overlapping_segment_ends_the_log() {
        // The second segment starts below where the first ended: the scan reports it damaged
        // at byte 0 without reading it.
        let overlap = SegmentFacts {
            expected: 10,
            next_offset: 10,
            end_position: 0,
            damage: Some(CorruptKind::BadOffset),
            ..whole(8, 12, 400)
        };
        let facts = [whole(0, 10, 1000), overlap];
        let plan = plan_recovery(input(&facts)).unwrap();
        assert_eq!(
            plan.active,
            ActivePlan::Scanned {
                index: 0,
                size: 1000
            }
        );
        assert_eq!((plan.log_end, plan.truncated_bytes), (10, 400));
        assert_eq!(plan.damage_at, Some((1, 0)));
    }

    #[test]
    fn damage_below_the_recovery_point_fails_unless_truncate_corrupt() {
        let damaged = SegmentFacts {
            file_len: 1400,
            damage: Some(CorruptKind::Crc),
            ..whole(10, 20, 1000)
        };
        let facts = [whole(0, 10, 1000), damaged];
        let strict = RecoveryInput {
            recovery_point: 25,
            ..input(&facts)
        };
        assert_eq!(
            plan_recovery(strict),
            Err(BelowRecoveryPoint {
                index: 1,
                offset: 20
            })
        );
        let plan = plan_recovery(RecoveryInput {
            truncate_corrupt: true,
            ..strict
        })
        .unwrap();
        assert_eq!(plan.log_end, 20);
        // At the recovery point exactly, nothing flushed was lost.
        assert!(plan_recovery(RecoveryInput {
            recovery_point: 20,
            ..strict
        })
        .is_ok());
        // An undamaged log shorter than the recovery point lost flushed data too.
        let short = [whole(0, 10, 1000)];
        assert!(plan_recovery(RecoveryInput {
            recovery_point: 12,
            ..input(&short)
        })
        .is_err());
    }
}
