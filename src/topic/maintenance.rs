//! Store maintenance: one pass over every partition (flush if due, retention, compaction),
//! and the optional background thread that runs passes on a timer.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::error::{Error, IoContext, Result};
use crate::offset::TopicPartition;
use crate::topic::handle::Topic;

/// Failures of the maintenance thread kept for
/// [`LogStore::take_maintenance_failures`](crate::topic::store::LogStore::take_maintenance_failures).
const FAILURES_KEPT: usize = 64;

/// What one maintenance pass did
/// ([`LogStore::run_maintenance`](crate::topic::store::LogStore::run_maintenance)).
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct MaintenanceReport {
    /// Partitions visited.
    pub partitions: usize,
    /// Partitions whose [`Partition::flush_if_due`] fsynced.
    ///
    /// [`Partition::flush_if_due`]: crate::log::partition::Partition::flush_if_due
    pub flushed: usize,
    /// Segments deleted by retention, over all partitions.
    pub segments_deleted: usize,
    /// Segments rewritten by compaction
    /// ([`Partition::compact`](crate::log::partition::Partition::compact)), over all
    /// partitions.
    pub segments_compacted: usize,
    /// Partitions where flushing or retention failed, with the error. A failure on one
    /// partition does not stop the pass.
    pub failures: Vec<(TopicPartition, Error)>,
}

/// One pass over `topics`: flush what is due and, if `retention`, apply retention and
/// compaction. Stops early once `closed` is set; skips topics deleted meanwhile.
pub(super) fn maintain(
    topics: &[Arc<Topic>],
    closed: &AtomicBool,
    retention: bool,
) -> MaintenanceReport {
    let mut report = MaintenanceReport::default();
    for topic in topics {
        // Every live copy of a replicated partition is maintained, as Kafka does.
        let copies = topic.all_copies();
        let partitions = copies
            .iter()
            .enumerate()
            .flat_map(|(n, c)| c.live_partitions().into_iter().map(move |p| (n, p)));
        for (n, p) in partitions {
            if topic.is_deleted() || closed.load(Ordering::Acquire) {
                break;
            }
            report.partitions += 1;
            let tp = || TopicPartition::new(topic.name(), n as u32);
            match p.flush_if_due() {
                Ok(true) => report.flushed += 1,
                Ok(false) => {}
                Err(e) => report.failures.push((tp(), e)),
            }
            if retention {
                match p.apply_retention() {
                    Ok(plan) => report.segments_deleted += plan.delete_count,
                    Err(e) => report.failures.push((tp(), e)),
                }
                // A no-op unless the cleanup policy compacts and enough of the log is dirty.
                match p.compact() {
                    Ok(c) => report.segments_compacted += c.segments_cleaned,
                    Err(e) => report.failures.push((tp(), e)),
                }
            }
        }
    }
    report
}

/// What the maintenance thread has done: completed passes and recent failures.
#[derive(Default)]
pub(super) struct MaintenanceLog {
    runs: AtomicU64,
    failures: Mutex<VecDeque<(TopicPartition, Error)>>,
}

impl MaintenanceLog {
    /// Count a completed pass and keep its failures (the most recent [`FAILURES_KEPT`]).
    fn record(&self, report: MaintenanceReport) {
        if !report.failures.is_empty() {
            let mut kept = self.failures.lock();
            for f in report.failures {
                if kept.len() == FAILURES_KEPT {
                    kept.pop_front();
                }
                kept.push_back(f);
            }
        }
        self.runs.fetch_add(1, Ordering::AcqRel);
    }

    /// Completed passes.
    pub(super) fn runs(&self) -> u64 {
        self.runs.load(Ordering::Acquire)
    }

    /// Take the failures kept.
    pub(super) fn take_failures(&self) -> Vec<(TopicPartition, Error)> {
        self.failures.lock().drain(..).collect()
    }
}

/// Signals the maintenance thread to stop.
#[derive(Default)]
struct StopSignal {
    stopped: Mutex<bool>,
    cond: Condvar,
}

/// The background maintenance thread of a store.
pub(super) struct MaintenanceThread {
    stop: Arc<StopSignal>,
    handle: JoinHandle<()>,
}

/// When the maintenance thread runs its passes.
#[derive(Clone, Copy)]
pub(super) struct Schedule {
    /// Time between passes.
    pub(super) interval: Duration,
    /// Least time between passes that also apply retention and compaction.
    pub(super) retention_check_interval: Duration,
}

impl MaintenanceThread {
    /// Start a thread that runs `pass(retention)` per `schedule` and records each report in
    /// `log`, until [`stop`](Self::stop). `dir` names the store in a spawn error.
    pub(super) fn start(
        dir: &Path,
        schedule: Schedule,
        log: Arc<MaintenanceLog>,
        pass: impl Fn(bool) -> MaintenanceReport + Send + 'static,
    ) -> Result<Self> {
        let stop = Arc::new(StopSignal::default());
        let thread_stop = stop.clone();
        let handle = std::thread::Builder::new()
            .name("seglog-maintenance".into())
            .spawn(move || maintenance_loop(&thread_stop, schedule, &log, pass))
            .at(dir)?;
        Ok(MaintenanceThread { stop, handle })
    }

    /// Stop the thread and wait for it.
    pub(super) fn stop(self) {
        *self.stop.stopped.lock() = true;
        self.stop.cond.notify_all();
        // A panic inside the thread has already been reported by the panic hook; the store
        // closes regardless.
        let _ = self.handle.join();
    }
}

fn maintenance_loop(
    stop: &StopSignal,
    schedule: Schedule,
    log: &MaintenanceLog,
    pass: impl Fn(bool) -> MaintenanceReport,
) {
    let mut last_retention: Option<Instant> = None;
    loop {
        {
            let mut stopped = stop.stopped.lock();
            if !*stopped {
                stop.cond.wait_for(&mut stopped, schedule.interval);
            }
            if *stopped {
                return;
            }
        }
        let retention =
            last_retention.is_none_or(|t| t.elapsed() >= schedule.retention_check_interval);
        let report = pass(retention);
        if retention {
            last_retention = Some(Instant::now());
        }
        log.record(report);
    }
}
