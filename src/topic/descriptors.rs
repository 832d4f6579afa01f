//! The file-descriptor budget of a store: every open partition holds
//! [`DESCRIPTORS_PER_PARTITION`] descriptors for as long as it is open, so creating topics or
//! partitions beyond what the process may open is refused up front with a clear error rather
//! than failing later, half done, with "Too many open files".

use crate::error::{Error, Result};

/// Descriptors an open partition always holds: its lock file and its active segment's
/// `.log`, `.index` and `.timeindex`. Sealed segments read since open add up to three each,
/// bounded by [`PartitionConfig::open_segments_max`](crate::PartitionConfig).
pub const DESCRIPTORS_PER_PARTITION: usize = 4;

/// Descriptors left to the rest of the process (the application, the offset store, sockets)
/// when the budget is derived from the open-file limit.
pub const DESCRIPTORS_RESERVED: usize = 64;

/// The budget: `configured` if set, else the process's soft open-file limit (read from
/// `/proc/self/limits` on Linux) less [`DESCRIPTORS_RESERVED`]; `None` when neither is known
/// (no check).
pub(crate) fn budget(configured: Option<usize>) -> Option<usize> {
    configured
        .or_else(|| open_files_limit().map(|limit| limit.saturating_sub(DESCRIPTORS_RESERVED)))
}

/// The soft `RLIMIT_NOFILE`, from `/proc/self/limits` (a kernel pseudo-file, not engine
/// data: read directly, not through the file seam). `None` elsewhere or when unlimited.
fn open_files_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// [`Error::DescriptorBudget`] unless `partitions` open partitions fit in `budget`.
pub(crate) fn check(partitions: usize, budget: Option<usize>) -> Result<()> {
    let Some(budget) = budget else {
        return Ok(());
    };
    let needed = partitions.saturating_mul(DESCRIPTORS_PER_PARTITION);
    if needed > budget {
        return Err(Error::DescriptorBudget {
            partitions,
            needed,
            budget,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_counts_four_descriptors_per_partition() {
        check(10, Some(40)).unwrap();
        let err = check(11, Some(40)).unwrap_err();
        assert!(matches!(
            err,
            Error::DescriptorBudget {
                partitions: 11,
                needed: 44,
                budget: 40
            }
        ));
        check(usize::MAX, None).unwrap();
        assert_eq!(budget(Some(7)), Some(7));
        if let Some(limit) = open_files_limit() {
            assert_eq!(
                budget(None),
                Some(limit.saturating_sub(DESCRIPTORS_RESERVED))
            );
        }
    }
}
