//! Retention as a pure plan: which sealed segments to delete, decided from numbers alone.
//!
//! [`plan`] looks only at [`SegmentInfo`]s and the policy; the partition then acts on the plan.
//! Deletion is segment-granular and always a prefix of the log (Kafka's rule): the oldest
//! segments go first, and a segment holding offsets at or above the high watermark never goes.
//! The active (last) segment is never deleted as it is; when every record of the log,
//! including the active segment's, is older than `retention_ms` and below the high watermark,
//! the plan asks for it to be rolled first ([`RetentionPlan::roll_active`]), as Kafka does, so
//! a quiet topic's data does not outlive `retention_ms` by up to `segment_ms`.

use crate::offset::Offset;

/// What retention needs to know about one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentInfo {
    /// First offset the segment may hold.
    pub base_offset: Offset,
    /// One past the last offset the segment holds (the next segment's base offset).
    pub end_offset: Offset,
    /// Size of the `.log` file.
    pub size_bytes: u64,
    /// Newest record timestamp, `None` when the segment holds no records.
    pub max_timestamp: Option<i64>,
}

/// The retention limits; `None` disables a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetentionPolicy {
    /// Delete segments whose newest record is older than this.
    pub retention_ms: Option<u64>,
    /// Keep the log's total size at or below this, deleting whole segments.
    pub retention_bytes: Option<u64>,
}

/// Why a segment was deleted (the strongest reason that applies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetentionReason {
    /// Every record lies below the log start offset.
    LogStart,
    /// The newest record is older than `retention_ms`.
    Age,
    /// The log is larger than `retention_bytes`.
    Size,
}

/// The outcome of [`plan`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct RetentionPlan {
    /// How many of the oldest segments to delete.
    pub delete_count: usize,
    /// For each deleted segment, why.
    pub reasons: Vec<RetentionReason>,
    /// The log start offset once they are gone.
    pub log_start_offset: Offset,
    /// Every sealed segment is deleted by age and the active segment has records, all older
    /// than `retention_ms` and below the high watermark: roll it, then plan again to delete it
    /// too (Kafka's `deleteRetentionMsBreachedSegments` does the same).
    pub roll_active: bool,
}

/// Decide which of `segments` (oldest first, the active one last) to delete.
pub fn plan(
    segments: &[SegmentInfo],
    log_start_offset: Offset,
    high_watermark: Offset,
    now_ms: i64,
    policy: RetentionPolicy,
) -> RetentionPlan {
    let sealed = segments.len().saturating_sub(1);
    // Never past the high watermark: a deletable segment ends at or below it.
    let allowed = segments[..sealed]
        .iter()
        .take_while(|s| s.end_offset <= high_watermark)
        .count();

    let by_start = segments[..allowed]
        .iter()
        .take_while(|s| s.end_offset <= log_start_offset)
        .count();

    let cutoff = policy
        .retention_ms
        .map(|ms| now_ms.saturating_sub(i64::try_from(ms).unwrap_or(i64::MAX)));
    let by_age = cutoff.map_or(0, |cutoff| {
        segments[..allowed]
            .iter()
            .take_while(|s| s.max_timestamp.is_none_or(|t| t < cutoff))
            .count()
    });
    let roll_active = by_age == sealed && active_expired(segments, high_watermark, cutoff);

    let by_size = policy.retention_bytes.map_or(0, |limit| {
        let total: u64 = segments.iter().map(|s| s.size_bytes).sum();
        let mut excess = total.saturating_sub(limit);
        segments[..allowed]
            .iter()
            .take_while(|s| {
                let fits = s.size_bytes <= excess;
                if fits {
                    excess -= s.size_bytes;
                }
                fits
            })
            .count()
    });

    let delete_count = by_start.max(by_age).max(by_size);
    let reasons = (0..delete_count)
        .map(|i| {
            if i < by_start {
                RetentionReason::LogStart
            } else if i < by_age {
                RetentionReason::Age
            } else {
                RetentionReason::Size
            }
        })
        .collect();
    let log_start_offset = match delete_count {
        0 => log_start_offset,
        n => log_start_offset.max(segments[n].base_offset),
    };
    RetentionPlan {
        delete_count,
        reasons,
        log_start_offset,
        roll_active,
    }
}

/// Whether the active (last) segment holds records, all below the high watermark and older
/// than `cutoff`.
fn active_expired(segments: &[SegmentInfo], high_watermark: Offset, cutoff: Option<i64>) -> bool {
    let (Some(active), Some(cutoff)) = (segments.last(), cutoff) else {
        return false;
    };
    active.size_bytes > 0
        && active.end_offset <= high_watermark
        && active.max_timestamp.is_some_and(|t| t < cutoff)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(base: u64, end: u64, size: u64, ts: i64) -> SegmentInfo {
        SegmentInfo {
            base_offset: Offset(base),
            end_offset: Offset(end),
            size_bytes: size,
            max_timestamp: Some(ts),
        }
    }

    fn log() -> Vec<SegmentInfo> {
        vec![
            seg(0, 10, 100, 1_000),
            seg(10, 20, 100, 2_000),
            seg(20, 30, 100, 3_000),
            seg(30, 35, 50, 4_000),
        ]
    }

    const NONE: RetentionPolicy = RetentionPolicy {
        retention_ms: None,
        retention_bytes: None,
    };

    #[test]
    fn nothing_without_limits() {
        let p = plan(&log(), Offset(0), Offset(35), 10_000, NONE);
        assert_eq!(p.delete_count, 0);
        assert_eq!(p.log_start_offset, Offset(0));
    }

    #[test]
    fn by_age_deletes_the_old_prefix_but_never_the_active_segment() {
        let policy = RetentionPolicy {
            retention_ms: Some(1_500),
            ..NONE
        };
        let p = plan(&log(), Offset(0), Offset(35), 4_000, policy);
        assert_eq!(p.delete_count, 2);
        assert_eq!(p.log_start_offset, Offset(20));
        assert_eq!(p.reasons, vec![RetentionReason::Age; 2]);
        assert!(!p.roll_active);
        let all = plan(&log(), Offset(0), Offset(35), 1_000_000, policy);
        assert_eq!(
            all.delete_count, 3,
            "the active segment is not deleted as it is"
        );
        assert!(all.roll_active, "but rolled, to be deleted next");
    }

    #[test]
    fn the_active_segment_is_rolled_only_when_all_of_it_expired_below_the_high_watermark() {
        let policy = RetentionPolicy {
            retention_ms: Some(1_000),
            ..NONE
        };
        // Its newest record (4,000) is not older than the cutoff (4,500 - 1,000).
        assert!(!plan(&log(), Offset(0), Offset(35), 4_500, policy).roll_active);
        assert!(plan(&log(), Offset(0), Offset(35), 5_001, policy).roll_active);
        // Offsets at or above the high watermark are never deleted.
        assert!(!plan(&log(), Offset(0), Offset(34), 5_001, policy).roll_active);
        // An empty active segment has nothing to roll.
        let mut empty = log();
        empty[3] = SegmentInfo {
            base_offset: Offset(30),
            end_offset: Offset(30),
            size_bytes: 0,
            max_timestamp: None,
        };
        assert!(!plan(&empty, Offset(0), Offset(30), 1_000_000, policy).roll_active);
        // Only the age limit rolls.
        let by_size = RetentionPolicy {
            retention_bytes: Some(0),
            ..NONE
        };
        assert!(!plan(&log(), Offset(0), Offset(35), 1_000_000, by_size).roll_active);
    }

    #[test]
    fn by_size_deletes_while_the_excess_covers_a_whole_segment() {
        let policy = RetentionPolicy {
            retention_bytes: Some(200),
            ..NONE
        };
        // Total 350, excess 150: one 100-byte segment fits in the excess, two do not.
        let p = plan(&log(), Offset(0), Offset(35), 0, policy);
        assert_eq!(p.delete_count, 1);
        assert_eq!(p.reasons, vec![RetentionReason::Size]);
    }

    #[test]
    fn by_log_start_and_never_past_the_high_watermark() {
        let p = plan(&log(), Offset(25), Offset(35), 0, NONE);
        assert_eq!(p.delete_count, 2);
        assert_eq!(
            p.log_start_offset,
            Offset(25),
            "explicit start is kept inside a segment"
        );
        let policy = RetentionPolicy {
            retention_ms: Some(1),
            ..NONE
        };
        let p = plan(&log(), Offset(0), Offset(15), 1_000_000, policy);
        assert_eq!(
            p.delete_count, 1,
            "segment [10, 20) holds offsets at the high watermark"
        );
    }
}
