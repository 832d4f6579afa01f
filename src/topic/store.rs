//! The top-level handle: one data directory holding many topics, and its maintenance thread.
//!
//! # On disk
//!
//! ```text
//! <dir>/
//!   .lock            held locked (flock) while a LogStore has the directory open
//!   topics.meta      every topic: name, partition count, partition config (see below)
//!   orders-0/        partition 0 of topic "orders": a Partition directory
//!   orders-1/ ...
//! ```
//!
//! `topics.meta` is UTF-8 text, one line per topic, ending with a CRC-32 line:
//!
//! ```text
//! seglog-topics 1
//! topic orders partitions=2 segment_bytes=1073741824 ... durability=sync_each_append ...
//! crc32 1a2b3c4d
//! ```
//!
//! The CRC covers every byte before the `crc32` line. The file is replaced atomically
//! (written to `topics.meta.tmp`, fsynced, renamed over `topics.meta`, directory fsynced), so
//! a crash leaves the old or the new version; a leftover temp file is deleted at open.
//! Keys missing from a topic line take [`PartitionConfig::default`] values (so files written
//! before a field existed still open); unknown keys are an error.
//!
//! The metadata file is the commit point of every topic operation. Creating a topic or
//! adding partitions creates the partition directories first and then writes the metadata;
//! deleting a topic writes the metadata first, then renames each partition directory to
//! `<topic>-<n>.deleted` and removes it. At open, leftovers of interrupted operations are
//! removed: `.deleted` directories, and partition directories the metadata does not list
//! (only those seglog made: empty, or holding the partition's `.lock` file). Other entries
//! of the directory are left alone: later layers keep their own state there (consumer
//! offsets will live in `<dir>/__offsets/`).

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};

use crate::error::{Error, IoContext, Result};
use crate::io::checkpoint::{self, sync_dir};
use crate::log::config::{CleanupPolicy, Durability, PartitionConfig};
use crate::log::partition::{Partition, LOCK_FILE as PARTITION_LOCK_FILE};
use crate::offset::TopicPartition;
use crate::topic::handle::{validate_topic_name, Topic, TopicConfig, TOPIC_PARTITIONS_MAX};
use crate::topic::partitioner::DefaultPartitioner;

/// Name of the topic metadata file in the data directory.
pub const TOPICS_METADATA_FILE: &str = "topics.meta";
const TOPICS_METADATA_TMP: &str = "topics.meta.tmp";
const STORE_LOCK_FILE: &str = ".lock";
/// Suffix a partition directory gets when its topic is deleted, before it is removed.
const DELETED_SUFFIX: &str = ".deleted";
const METADATA_HEADER: &str = "seglog-topics 1";
/// Largest metadata file `open` accepts: a bound on what is read from disk.
const METADATA_BYTES_MAX: u64 = 64 << 20;
/// Most topics one store holds.
pub const STORE_TOPICS_MAX: usize = 100_000;
/// Failures of the maintenance thread kept for [`LogStore::take_maintenance_failures`].
const FAILURES_KEPT: usize = 64;

/// Configuration of a [`LogStore`]. Build it from [`StoreConfig::default`] and the `with_*`
/// methods; [`LogStore::open`] validates it. Nothing here is persisted.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StoreConfig {
    /// How often the maintenance thread wakes to run [`Partition::flush_if_due`] on every
    /// partition (which enforces [`Durability::SyncThreshold`]'s `interval`). `None` starts
    /// no thread: call [`LogStore::run_maintenance`] yourself. Default 1 s; must be positive.
    pub maintenance_interval: Option<Duration>,
    /// How often the maintenance thread also applies retention
    /// ([`Partition::apply_retention`]) and compaction ([`Partition::compact`], a no-op
    /// unless the topic's cleanup policy compacts) to every partition: on the first wake-up
    /// at least this long after the previous pass (and on the first wake-up after open).
    /// Default 5 minutes, Kafka's `log.retention.check.interval.ms`.
    pub retention_check_interval: Duration,
    /// Open every partition with [`PartitionConfig::truncate_corrupt`] set, whatever its
    /// topic's configuration says: the way to open a store whose partition has corruption
    /// below its recovery point. Not persisted. Default `false`.
    pub truncate_corrupt: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            maintenance_interval: Some(Duration::from_secs(1)),
            retention_check_interval: Duration::from_secs(5 * 60),
            truncate_corrupt: false,
        }
    }
}

impl StoreConfig {
    /// Sets `maintenance_interval` (`None`: no thread).
    pub fn with_maintenance_interval(mut self, v: Option<Duration>) -> Self {
        self.maintenance_interval = v;
        self
    }
    /// Sets `retention_check_interval`.
    pub fn with_retention_check_interval(mut self, v: Duration) -> Self {
        self.retention_check_interval = v;
        self
    }
    /// Sets `truncate_corrupt`.
    pub fn with_truncate_corrupt(mut self, v: bool) -> Self {
        self.truncate_corrupt = v;
        self
    }

    /// Check every field; the first bad one is returned as [`Error::InvalidConfig`].
    pub fn validate(&self) -> Result<()> {
        if self.maintenance_interval == Some(Duration::ZERO) {
            return Err(Error::config(
                "maintenance_interval",
                "0s",
                "must be positive (use None for no thread)",
            ));
        }
        Ok(())
    }
}

/// What one maintenance pass did ([`LogStore::run_maintenance`]).
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct MaintenanceReport {
    /// Partitions visited.
    pub partitions: usize,
    /// Partitions whose [`Partition::flush_if_due`] fsynced.
    pub flushed: usize,
    /// Segments deleted by retention, over all partitions.
    pub segments_deleted: usize,
    /// Segments rewritten by compaction ([`Partition::compact`]), over all partitions.
    pub segments_compacted: usize,
    /// Partitions where flushing or retention failed, with the error. A failure on one
    /// partition does not stop the pass.
    pub failures: Vec<(TopicPartition, Error)>,
}

/// The shared state behind a [`LogStore`]; producers hold it too.
pub(crate) struct StoreInner {
    dir: PathBuf,
    config: StoreConfig,
    /// The data directory's lock; released by `close` so the directory can be reopened while
    /// stale handles (producers, consumers) linger — they fail with `StoreClosed`.
    dir_lock: Mutex<Option<File>>,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    /// Serialises topic creation, deletion, partition addition and close.
    admin: Mutex<()>,
    closed: AtomicBool,
    maintenance_runs: AtomicU64,
    failures: Mutex<VecDeque<(TopicPartition, Error)>>,
}

/// Signals the maintenance thread to stop.
#[derive(Default)]
struct StopSignal {
    stopped: Mutex<bool>,
    cond: Condvar,
}

struct MaintenanceThread {
    stop: Arc<StopSignal>,
    handle: JoinHandle<()>,
}

/// One data directory holding many topics: Kafka's broker, in-process.
///
/// `LogStore` is `Send + Sync`: share it with an `Arc` and create topics, look them up and
/// produce from any thread. It owns an optional maintenance thread (see
/// [`StoreConfig::maintenance_interval`]) that flushes and applies retention to every
/// partition; [`close`](LogStore::close) or drop stops and joins it, then closes every
/// partition. Without the thread, [`run_maintenance`](LogStore::run_maintenance) does the
/// same work on demand.
///
/// Producers created from the store keep its topics usable after the `LogStore` is dropped
/// only until it closes: close or drop producers first, or their buffered records fail with
/// [`Error::Closed`].
pub struct LogStore {
    inner: Arc<StoreInner>,
    maintenance: Mutex<Option<MaintenanceThread>>,
}

impl std::fmt::Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore")
            .field("dir", &self.inner.dir)
            .field("topics", &self.list_topics())
            .field("closed", &self.inner.closed.load(Ordering::Acquire))
            .finish_non_exhaustive()
    }
}

impl LogStore {
    /// Open (creating if needed) the store in `dir`, restoring every topic listed in its
    /// metadata and recovering each partition (see [`Partition::open`]).
    ///
    /// Fails with [`Error::StoreAlreadyOpen`] if another `LogStore` holds `dir`, with
    /// [`Error::CorruptMetadata`] if the metadata file is damaged, missing while partition
    /// directories exist, or lists a partition whose directory is gone.
    pub fn open(dir: impl AsRef<Path>, config: StoreConfig) -> Result<LogStore> {
        config.validate()?;
        let inner = Arc::new(StoreInner::open(dir.as_ref(), config)?);
        let store = LogStore {
            inner,
            maintenance: Mutex::new(None),
        };
        if let Some(interval) = store.inner.config.maintenance_interval {
            store.start_maintenance(interval)?;
        }
        Ok(store)
    }

    /// The data directory. Topics live in `<topic>-<n>/` subdirectories; names that do not
    /// look like that are free for other layers (consumer offsets use `__offsets/`).
    pub fn data_dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The configuration the store was opened with.
    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    /// Create topic `name` with `config.partitions` empty partitions, persisted before this
    /// returns. Errors: [`Error::InvalidTopicName`], [`Error::InvalidConfig`],
    /// [`Error::TopicExists`], [`Error::StoreClosed`], I/O errors (nothing is created then).
    pub fn create_topic(&self, name: &str, config: TopicConfig) -> Result<Arc<Topic>> {
        self.inner.create_topic(name, config)
    }

    /// The topic called `name`, or [`Error::UnknownTopic`].
    pub fn topic(&self, name: &str) -> Result<Arc<Topic>> {
        self.inner.topic(name)
    }

    /// The partition `tp`: [`Error::UnknownTopic`] or [`Error::PartitionOutOfRange`] if it
    /// does not exist.
    pub fn partition(&self, tp: &TopicPartition) -> Result<Arc<Partition>> {
        self.inner.topic(&tp.topic)?.partition(tp.partition)
    }

    /// Names of every topic, sorted.
    pub fn list_topics(&self) -> Vec<String> {
        self.inner.topics.read().keys().cloned().collect()
    }

    /// Delete topic `name`: the removal is persisted first, then its partitions are closed
    /// (appends through old handles fail) and their directories removed. Readers holding
    /// batches already read keep them. [`Error::UnknownTopic`] if there is no such topic.
    pub fn delete_topic(&self, name: &str) -> Result<()> {
        self.inner.delete_topic(name)
    }

    /// Grow topic `name` to `new_count` partitions (new ones are empty), persisted before
    /// this returns. The count only increases: `new_count` at or below the current count, or
    /// above [`TOPIC_PARTITIONS_MAX`], is [`Error::InvalidPartitionCount`]. Existing `Topic`
    /// handles see the new partitions at once; keyed records may map to other partitions
    /// from now on, as in Kafka.
    pub fn add_partitions(&self, name: &str, new_count: u32) -> Result<()> {
        self.inner.add_partitions(name, new_count)
    }

    /// Run [`Partition::flush_if_due`], [`Partition::apply_retention`] and
    /// [`Partition::compact`] on every partition
    /// of every topic now, in the calling thread. This is what the maintenance thread does;
    /// call it yourself when the store runs without one.
    pub fn run_maintenance(&self) -> Result<MaintenanceReport> {
        self.inner.check_open()?;
        Ok(self.inner.maintain(true))
    }

    /// Completed passes of the maintenance thread since open.
    pub fn maintenance_runs(&self) -> u64 {
        self.inner.maintenance_runs.load(Ordering::Acquire)
    }

    /// Take the failures the maintenance thread met (the most recent 64 are kept).
    pub fn take_maintenance_failures(&self) -> Vec<(TopicPartition, Error)> {
        self.inner.failures.lock().drain(..).collect()
    }

    pub(crate) fn inner(&self) -> &Arc<StoreInner> {
        &self.inner
    }

    /// Stop and join the maintenance thread, then close every partition (flush, write the
    /// clean-shutdown markers). Later topic operations fail with [`Error::StoreClosed`].
    /// Returns the first error met; every partition is closed regardless. Dropping the store
    /// does the same, ignoring errors. A second `close` is a no-op.
    pub fn close(&self) -> Result<()> {
        self.stop_maintenance();
        self.inner.close()
    }

    fn start_maintenance(&self, interval: Duration) -> Result<()> {
        let stop = Arc::new(StopSignal::default());
        let inner = self.inner.clone();
        let thread_stop = stop.clone();
        let handle = std::thread::Builder::new()
            .name("seglog-maintenance".into())
            .spawn(move || maintenance_loop(&inner, &thread_stop, interval))
            .at(&self.inner.dir)?;
        *self.maintenance.lock() = Some(MaintenanceThread { stop, handle });
        Ok(())
    }

    fn stop_maintenance(&self) {
        let Some(thread) = self.maintenance.lock().take() else {
            return;
        };
        *thread.stop.stopped.lock() = true;
        thread.stop.cond.notify_all();
        // A panic inside the thread has already been reported by the panic hook; the store
        // closes regardless.
        let _ = thread.handle.join();
    }
}

impl Drop for LogStore {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

fn maintenance_loop(inner: &StoreInner, stop: &StopSignal, interval: Duration) {
    let mut last_retention: Option<Instant> = None;
    loop {
        {
            let mut stopped = stop.stopped.lock();
            if !*stopped {
                stop.cond.wait_for(&mut stopped, interval);
            }
            if *stopped {
                return;
            }
        }
        let retention =
            last_retention.is_none_or(|t| t.elapsed() >= inner.config.retention_check_interval);
        let report = inner.maintain(retention);
        if retention {
            last_retention = Some(Instant::now());
        }
        if !report.failures.is_empty() {
            let mut kept = inner.failures.lock();
            for f in report.failures {
                if kept.len() == FAILURES_KEPT {
                    kept.pop_front();
                }
                kept.push_back(f);
            }
        }
        inner.maintenance_runs.fetch_add(1, Ordering::AcqRel);
    }
}

impl StoreInner {
    fn open(dir: &Path, config: StoreConfig) -> Result<StoreInner> {
        fs::create_dir_all(dir).at(dir)?;
        let lock = lock_store(dir)?;
        let tmp = dir.join(TOPICS_METADATA_TMP);
        if tmp.exists() {
            // A write interrupted before its rename: the previous metadata is still current.
            fs::remove_file(&tmp).at(&tmp)?;
        }
        let path = dir.join(TOPICS_METADATA_FILE);
        let metas = match read_metadata(&path)? {
            Some(metas) => metas,
            None => {
                if let Some((_, _, orphan)) = partition_dirs(dir)?.live.into_iter().next() {
                    return Err(Error::CorruptMetadata {
                        path: orphan,
                        line: 0,
                        reason: "a partition directory exists but topics.meta does not",
                    });
                }
                write_metadata(dir, &[]).map_err(|f| f.error)?;
                Vec::new()
            }
        };
        remove_orphans(dir, &metas)?;
        let mut topics = BTreeMap::new();
        for meta in metas {
            let mut open_config = meta.config.clone();
            open_config.truncate_corrupt |= config.truncate_corrupt;
            let mut partitions = Vec::with_capacity(meta.partitions as usize);
            for n in 0..meta.partitions {
                let pdir = partition_dir(dir, &meta.name, n);
                if !pdir.is_dir() {
                    return Err(Error::CorruptMetadata {
                        path: pdir,
                        line: 0,
                        reason: "topics.meta lists a partition whose directory is missing",
                    });
                }
                partitions.push(Arc::new(Partition::open(&pdir, open_config.clone())?));
            }
            let topic = Topic::new(
                meta.name.clone(),
                meta.config,
                partitions,
                Arc::new(DefaultPartitioner::new()),
            );
            topics.insert(meta.name, Arc::new(topic));
        }
        Ok(StoreInner {
            dir: dir.to_owned(),
            config,
            dir_lock: Mutex::new(Some(lock)),
            topics: RwLock::new(topics),
            admin: Mutex::new(()),
            closed: AtomicBool::new(false),
            maintenance_runs: AtomicU64::new(0),
            failures: Mutex::new(VecDeque::new()),
        })
    }

    pub(crate) fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::StoreClosed);
        }
        Ok(())
    }

    pub(crate) fn topic(&self, name: &str) -> Result<Arc<Topic>> {
        self.check_open()?;
        self.topics
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| Error::UnknownTopic {
                topic: name.to_owned(),
            })
    }

    /// The metadata of every current topic, with `change` applied to the list.
    fn metas_with(&self, change: impl FnOnce(&mut Vec<TopicMeta>)) -> Vec<TopicMeta> {
        let mut metas: Vec<TopicMeta> = self
            .topics
            .read()
            .values()
            .map(|t| TopicMeta {
                name: t.name().to_owned(),
                partitions: t.partition_count(),
                config: t.partition_config().clone(),
            })
            .collect();
        change(&mut metas);
        metas
    }

    fn create_topic(&self, name: &str, config: TopicConfig) -> Result<Arc<Topic>> {
        validate_topic_name(name)?;
        config.validate()?;
        let _admin = self.admin.lock();
        self.check_open()?;
        let count = self.topics.read().len();
        if self.topics.read().contains_key(name) {
            return Err(Error::TopicExists {
                topic: name.to_owned(),
            });
        }
        if count >= STORE_TOPICS_MAX {
            return Err(Error::config(
                "topics",
                count + 1,
                "a store holds at most STORE_TOPICS_MAX topics",
            ));
        }
        let partitions =
            self.open_new_partitions(name, 0, config.partitions, &config.partition_config)?;
        let metas = self.metas_with(|m| {
            m.push(TopicMeta {
                name: name.to_owned(),
                partitions: config.partitions,
                config: config.partition_config.clone(),
            })
        });
        let committed = self.commit(&metas, &partitions);
        let topic = Arc::new(Topic::new(
            name.to_owned(),
            config.partition_config,
            partitions,
            config.partitioner,
        ));
        match committed {
            Ok(()) => {
                self.topics.write().insert(name.to_owned(), topic.clone());
                Ok(topic)
            }
            Err(Commit::Applied(e)) => {
                self.topics.write().insert(name.to_owned(), topic);
                Err(e)
            }
            Err(Commit::NotApplied(e)) => Err(e),
        }
    }

    fn delete_topic(&self, name: &str) -> Result<()> {
        let _admin = self.admin.lock();
        self.check_open()?;
        let topic = self.topic(name)?;
        let metas = self.metas_with(|m| m.retain(|t| t.name != name));
        if let Err(f) = write_metadata(&self.dir, &metas) {
            if !f.renamed {
                return Err(f.error);
            }
        }
        self.topics.write().remove(name);
        topic.mark_deleted();
        // The topic is gone whatever happens next. Its directories are renamed out of the
        // way at once (so the name can be reused, and a crash leaves unambiguous leftovers
        // for the sweep at open), then removed.
        let mut result = Ok(());
        let mut doomed = Vec::new();
        for p in topic.partitions() {
            let _ = p.close();
            let dir = p.dir().to_owned();
            let mut renamed = dir.clone().into_os_string();
            renamed.push(DELETED_SUFFIX);
            let renamed = PathBuf::from(renamed);
            // A leftover of an earlier deletion of the same name whose removal failed.
            if renamed.exists() {
                let _ = fs::remove_dir_all(&renamed);
            }
            match fs::rename(&dir, &renamed).at(&dir) {
                Ok(()) => doomed.push(renamed),
                Err(e) => result = result.and(Err(e)),
            }
        }
        result = result.and(sync_dir(&self.dir));
        for path in doomed {
            if let Err(e) = fs::remove_dir_all(&path).at(&path) {
                result = result.and(Err(e));
            }
        }
        result.and(sync_dir(&self.dir))
    }

    fn add_partitions(&self, name: &str, new_count: u32) -> Result<()> {
        let _admin = self.admin.lock();
        self.check_open()?;
        let topic = self.topic(name)?;
        let current = topic.partition_count();
        let invalid = |reason| {
            Err(Error::InvalidPartitionCount {
                topic: name.to_owned(),
                current,
                requested: new_count,
                reason,
            })
        };
        if new_count <= current {
            return invalid("the partition count can only increase");
        }
        if new_count > TOPIC_PARTITIONS_MAX {
            return invalid("more than TOPIC_PARTITIONS_MAX partitions");
        }
        let added = self.open_new_partitions(name, current, new_count, topic.partition_config())?;
        let metas = self.metas_with(|m| {
            if let Some(t) = m.iter_mut().find(|t| t.name == name) {
                t.partitions = new_count;
            }
        });
        match self.commit(&metas, &added) {
            Ok(()) => {
                topic.extend_partitions(added);
                Ok(())
            }
            Err(Commit::Applied(e)) => {
                topic.extend_partitions(added);
                Err(e)
            }
            Err(Commit::NotApplied(e)) => Err(e),
        }
    }

    /// Open empty partitions `from..to` of `name`, removing leftovers in their directories
    /// first (the metadata does not list them, so nothing in them was ever acknowledged).
    /// On failure, the ones opened are closed and removed again.
    fn open_new_partitions(
        &self,
        name: &str,
        from: u32,
        to: u32,
        config: &PartitionConfig,
    ) -> Result<Vec<Arc<Partition>>> {
        let mut opened = Vec::with_capacity((to - from) as usize);
        let result = (from..to).try_for_each(|n| {
            let dir = partition_dir(&self.dir, name, n);
            if dir.exists() {
                if !is_partition_dir(&dir)? {
                    return Err(Error::io(
                        &dir,
                        std::io::Error::new(
                            std::io::ErrorKind::AlreadyExists,
                            "a directory seglog did not create is in the way",
                        ),
                    ));
                }
                fs::remove_dir_all(&dir).at(&dir)?;
            }
            opened.push(Arc::new(Partition::open(&dir, config.clone())?));
            Ok(())
        });
        if let Err(e) = result {
            discard(&opened);
            return Err(e);
        }
        Ok(opened)
    }

    /// Make new partition directories durable, then write the metadata listing them. If the
    /// metadata was not replaced, the new partitions are discarded.
    fn commit(&self, metas: &[TopicMeta], new_partitions: &[Arc<Partition>]) -> Result<(), Commit> {
        if let Err(e) = sync_dir(&self.dir) {
            discard(new_partitions);
            return Err(Commit::NotApplied(e));
        }
        match write_metadata(&self.dir, metas) {
            Ok(()) => Ok(()),
            // Renamed but the directory fsync failed: the change is visible and will most
            // likely survive; keep it, and report the error.
            Err(f) if f.renamed => Err(Commit::Applied(f.error)),
            Err(f) => {
                discard(new_partitions);
                Err(Commit::NotApplied(f.error))
            }
        }
    }

    pub(crate) fn maintain(&self, retention: bool) -> MaintenanceReport {
        let topics: Vec<Arc<Topic>> = self.topics.read().values().cloned().collect();
        let mut report = MaintenanceReport::default();
        for topic in topics {
            for (n, p) in topic.partitions().iter().enumerate() {
                if topic.is_deleted() || self.closed.load(Ordering::Acquire) {
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

    fn close(&self) -> Result<()> {
        let _admin = self.admin.lock();
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let mut result = Ok(());
        for topic in self.topics.read().values() {
            for p in topic.partitions() {
                result = result.and(p.close());
            }
        }
        if result.is_ok() {
            self.dir_lock.lock().take();
        }
        result
    }
}

/// How a metadata commit failed.
enum Commit {
    /// The new metadata is in place (only the directory fsync failed).
    Applied(Error),
    /// Nothing changed.
    NotApplied(Error),
}

/// Close partitions that will not be published and remove their directories. Best effort:
/// whatever is left is an orphan, removed by the next open.
fn discard(partitions: &[Arc<Partition>]) {
    for p in partitions {
        let _ = p.close();
        let _ = fs::remove_dir_all(p.dir());
    }
}

fn lock_store(dir: &Path) -> Result<File> {
    checkpoint::try_lock_file(&dir.join(STORE_LOCK_FILE))?.ok_or_else(|| Error::StoreAlreadyOpen {
        path: dir.to_owned(),
    })
}

/// `<dir>/<topic>-<n>`.
pub(crate) fn partition_dir(dir: &Path, topic: &str, partition: u32) -> PathBuf {
    dir.join(format!("{topic}-{partition}"))
}

/// Split a directory name `<topic>-<n>` into its topic and partition number. The topic may
/// itself contain `-`; the partition is the canonical decimal after the last one.
fn parse_partition_dir(name: &str) -> Option<(String, u32)> {
    let (topic, n) = name.rsplit_once('-')?;
    let partition: u32 = n.parse().ok()?;
    (partition.to_string() == n && validate_topic_name(topic).is_ok())
        .then(|| (topic.to_owned(), partition))
}

/// True if `path` is a partition directory seglog made: empty (created, not yet locked) or
/// holding the partition lock file, which `Partition::open` creates first. Anything else
/// named like a partition directory is not ours to remove.
fn is_partition_dir(path: &Path) -> Result<bool> {
    let mut entries = fs::read_dir(path).at(path)?.peekable();
    if entries.peek().is_none() {
        return Ok(true);
    }
    for entry in entries {
        if entry.at(path)?.file_name() == PARTITION_LOCK_FILE {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The subdirectories of a data directory that seglog made.
#[derive(Default)]
struct PartitionDirs {
    /// Partition directories: topic, partition number, path.
    live: Vec<(String, u32, PathBuf)>,
    /// Directories of deleted partitions (`<topic>-<n>.deleted`).
    deleted: Vec<PathBuf>,
}

fn partition_dirs(dir: &Path) -> Result<PartitionDirs> {
    let mut found = PartitionDirs::default();
    for entry in fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let path = entry.path();
        if !entry.file_type().at(&path)?.is_dir() {
            continue;
        }
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if let Some(stem) = name.strip_suffix(DELETED_SUFFIX) {
            if parse_partition_dir(stem).is_some() {
                found.deleted.push(path);
            }
        } else if let Some((topic, n)) = parse_partition_dir(&name) {
            if is_partition_dir(&path)? {
                found.live.push((topic, n, path));
            }
        }
    }
    Ok(found)
}

/// Remove partition directories the metadata does not list: leftovers of a topic creation
/// or partition addition interrupted before its commit, and of deletions.
fn remove_orphans(dir: &Path, metas: &[TopicMeta]) -> Result<()> {
    let PartitionDirs { live, deleted } = partition_dirs(dir)?;
    let mut removed = false;
    for (topic, n, path) in live {
        let listed = metas.iter().any(|m| m.name == topic && n < m.partitions);
        if !listed {
            fs::remove_dir_all(&path).at(&path)?;
            removed = true;
        }
    }
    for path in deleted {
        fs::remove_dir_all(&path).at(&path)?;
        removed = true;
    }
    if removed {
        sync_dir(dir)?;
    }
    Ok(())
}

/// One topic as persisted in `topics.meta`.
#[derive(Debug, Clone)]
struct TopicMeta {
    name: String,
    partitions: u32,
    config: PartitionConfig,
}

/// A failed metadata write, and whether the rename had already happened.
struct WriteFailure {
    error: Error,
    renamed: bool,
}

/// Replace `topics.meta` atomically: temp file, fsync, rename, directory fsync.
fn write_metadata(dir: &Path, metas: &[TopicMeta]) -> Result<(), WriteFailure> {
    let not_renamed = |error| WriteFailure {
        error,
        renamed: false,
    };
    let bytes = encode_metadata(metas);
    let tmp = dir.join(TOPICS_METADATA_TMP);
    let path = dir.join(TOPICS_METADATA_FILE);
    checkpoint::replace_file(&tmp, &path, &bytes).map_err(not_renamed)?;
    sync_dir(dir).map_err(|error| WriteFailure {
        error,
        renamed: true,
    })
}

fn encode_metadata(metas: &[TopicMeta]) -> Vec<u8> {
    let mut body = String::new();
    body.push_str(METADATA_HEADER);
    body.push('\n');
    for m in metas {
        let c = &m.config;
        body.push_str(&format!(
            "topic {} partitions={} segment_bytes={} segment_ms={} index_interval_bytes={} \
             index_bytes_max={} record_bytes_max={} batch_bytes_max={} durability={} \
             preallocate_bytes={} retention_ms={} retention_bytes={} cleanup_policy={} \
             delete_retention_ms={} min_compaction_lag_ms={} min_cleanable_dirty_ratio={} \
             map_bytes_max={} open_segments_max={} truncate_corrupt={}\n",
            m.name,
            m.partitions,
            c.segment_bytes,
            opt(c.segment_ms),
            c.index_interval_bytes,
            c.index_bytes_max,
            c.record_bytes_max,
            c.batch_bytes_max,
            encode_durability(&c.durability),
            c.preallocate_bytes,
            opt(c.retention_ms),
            opt(c.retention_bytes),
            encode_cleanup_policy(c.cleanup_policy),
            c.compaction.delete_retention_ms,
            c.compaction.min_compaction_lag_ms,
            // Display of an f64 is the shortest text that parses back to the same value.
            c.compaction.min_cleanable_dirty_ratio,
            c.compaction.map_bytes_max,
            c.open_segments_max,
            c.truncate_corrupt,
        ));
    }
    let crc = crc32fast::hash(body.as_bytes());
    body.push_str(&format!("crc32 {crc:08x}\n"));
    body.into_bytes()
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "none".to_owned(), |v| v.to_string())
}

fn encode_cleanup_policy(p: CleanupPolicy) -> &'static str {
    match p {
        CleanupPolicy::Delete => "delete",
        CleanupPolicy::Compact => "compact",
        CleanupPolicy::CompactAndDelete => "compact_delete",
    }
}

fn encode_durability(d: &Durability) -> String {
    match d {
        Durability::NoSync => "no_sync".to_owned(),
        Durability::SyncEachAppend => "sync_each_append".to_owned(),
        Durability::SyncThreshold {
            records,
            bytes,
            interval,
        } => format!(
            "sync_threshold:{}:{}:{}",
            opt(*records),
            opt(*bytes),
            opt(interval.map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)))
        ),
    }
}

/// Read and check `topics.meta`: `Ok(None)` when it does not exist.
fn read_metadata(path: &Path) -> Result<Option<Vec<TopicMeta>>> {
    let len = match fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    let corrupt = |line, reason| Error::CorruptMetadata {
        path: path.to_owned(),
        line,
        reason,
    };
    if len > METADATA_BYTES_MAX {
        return Err(corrupt(0, "larger than the 64 MiB limit"));
    }
    let bytes = fs::read(path).at(path)?;
    decode_metadata(&bytes)
        .map(Some)
        .map_err(|(line, reason)| corrupt(line, reason))
}

/// Parse a metadata file; an error names the 1-based line (0 for the whole file).
fn decode_metadata(bytes: &[u8]) -> Result<Vec<TopicMeta>, (usize, &'static str)> {
    let text = std::str::from_utf8(bytes).map_err(|_| (0, "not UTF-8"))?;
    let body_end = text
        .strip_suffix('\n')
        .and_then(|t| t.rfind('\n'))
        .ok_or((0, "truncated"))?
        + 1;
    let (body, crc_line) = text.split_at(body_end);
    let crc_hex = crc_line
        .strip_prefix("crc32 ")
        .and_then(|s| s.strip_suffix('\n'))
        .filter(|s| s.len() == 8)
        .ok_or((0, "missing crc32 line"))?;
    let crc = u32::from_str_radix(crc_hex, 16).map_err(|_| (0, "bad crc32 line"))?;
    if crc32fast::hash(body.as_bytes()) != crc {
        return Err((0, "CRC mismatch"));
    }
    let mut lines = body.lines();
    if lines.next() != Some(METADATA_HEADER) {
        return Err((1, "unknown header or version"));
    }
    let mut metas: Vec<TopicMeta> = Vec::new();
    for (i, line) in lines.enumerate() {
        let lineno = i + 2;
        if metas.len() >= STORE_TOPICS_MAX {
            return Err((lineno, "more than STORE_TOPICS_MAX topics"));
        }
        let meta = decode_topic(line).map_err(|reason| (lineno, reason))?;
        if metas.iter().any(|m| m.name == meta.name) {
            return Err((lineno, "topic listed twice"));
        }
        metas.push(meta);
    }
    Ok(metas)
}

fn decode_topic(line: &str) -> Result<TopicMeta, &'static str> {
    let mut words = line.split(' ');
    if words.next() != Some("topic") {
        return Err("expected a topic line");
    }
    let name = words.next().ok_or("missing topic name")?;
    validate_topic_name(name).map_err(|_| "invalid topic name")?;
    let mut partitions = None;
    let mut c = PartitionConfig::default();
    for word in words {
        let (key, value) = word.split_once('=').ok_or("expected key=value")?;
        let num = || value.parse::<u64>().map_err(|_| "bad number");
        let opt_num = || match value {
            "none" => Ok(None),
            v => v.parse::<u64>().map(Some).map_err(|_| "bad number"),
        };
        match key {
            "partitions" => partitions = Some(value.parse::<u32>().map_err(|_| "bad number")?),
            "segment_bytes" => c.segment_bytes = num()?,
            "segment_ms" => c.segment_ms = opt_num()?,
            "index_interval_bytes" => {
                c.index_interval_bytes = value.parse().map_err(|_| "bad number")?
            }
            "index_bytes_max" => c.index_bytes_max = value.parse().map_err(|_| "bad number")?,
            "record_bytes_max" => c.record_bytes_max = value.parse().map_err(|_| "bad number")?,
            "batch_bytes_max" => c.batch_bytes_max = value.parse().map_err(|_| "bad number")?,
            "durability" => c.durability = decode_durability(value)?,
            "preallocate_bytes" => c.preallocate_bytes = num()?,
            "retention_ms" => c.retention_ms = opt_num()?,
            "retention_bytes" => c.retention_bytes = opt_num()?,
            "cleanup_policy" => {
                c.cleanup_policy = match value {
                    "delete" => CleanupPolicy::Delete,
                    "compact" => CleanupPolicy::Compact,
                    "compact_delete" => CleanupPolicy::CompactAndDelete,
                    _ => return Err("unknown cleanup policy"),
                }
            }
            "delete_retention_ms" => c.compaction.delete_retention_ms = num()?,
            "min_compaction_lag_ms" => c.compaction.min_compaction_lag_ms = num()?,
            "min_cleanable_dirty_ratio" => {
                c.compaction.min_cleanable_dirty_ratio = value.parse().map_err(|_| "bad number")?
            }
            "map_bytes_max" => {
                c.compaction.map_bytes_max = value.parse().map_err(|_| "bad number")?
            }
            "open_segments_max" => c.open_segments_max = value.parse().map_err(|_| "bad number")?,
            "truncate_corrupt" => c.truncate_corrupt = value.parse().map_err(|_| "bad boolean")?,
            _ => return Err("unknown key"),
        }
    }
    let partitions = partitions.ok_or("missing partitions")?;
    if !(1..=TOPIC_PARTITIONS_MAX).contains(&partitions) {
        return Err("partition count out of range");
    }
    Ok(TopicMeta {
        name: name.to_owned(),
        partitions,
        config: c,
    })
}

fn decode_durability(v: &str) -> Result<Durability, &'static str> {
    match v {
        "no_sync" => return Ok(Durability::NoSync),
        "sync_each_append" => return Ok(Durability::SyncEachAppend),
        _ => {}
    }
    let rest = v
        .strip_prefix("sync_threshold:")
        .ok_or("unknown durability")?;
    let parts: Vec<&str> = rest.split(':').collect();
    let [records, bytes, interval] = parts[..] else {
        return Err("bad sync_threshold");
    };
    let opt_num = |s: &str| match s {
        "none" => Ok(None),
        s => s.parse::<u64>().map(Some).map_err(|_| "bad number"),
    };
    Ok(Durability::SyncThreshold {
        records: opt_num(records)?,
        bytes: opt_num(bytes)?,
        interval: opt_num(interval)?.map(Duration::from_nanos),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn store_is_send_and_sync() {
        assert_send_sync::<LogStore>();
    }

    #[test]
    fn partition_dir_names_parse_back() {
        assert_eq!(parse_partition_dir("a-1-0"), Some(("a-1".to_owned(), 0)));
        assert_eq!(
            parse_partition_dir("orders-12"),
            Some(("orders".to_owned(), 12))
        );
        assert_eq!(parse_partition_dir("orders-012"), None);
        assert_eq!(parse_partition_dir("__offsets"), None);
        assert_eq!(parse_partition_dir("-3"), None);
        assert_eq!(parse_partition_dir("x-"), None);
    }

    #[test]
    fn metadata_roundtrips_every_field() {
        let config = PartitionConfig::default()
            .with_segment_bytes(4096)
            .with_segment_ms(None)
            .with_index_interval_bytes(77)
            .with_index_bytes_max(1024)
            .with_record_bytes_max(1000)
            .with_batch_bytes_max(5000)
            .with_durability(Durability::SyncThreshold {
                records: Some(3),
                bytes: None,
                interval: Some(Duration::from_micros(1500)),
            })
            .with_preallocate_bytes(0)
            .with_retention_ms(Some(60_000))
            .with_retention_bytes(Some(1 << 20))
            .with_cleanup_policy(CleanupPolicy::CompactAndDelete)
            .with_compaction(
                crate::CompactionConfig::default()
                    .with_delete_retention_ms(5)
                    .with_min_compaction_lag_ms(6)
                    .with_min_cleanable_dirty_ratio(0.1 + 0.2)
                    .with_map_bytes_max(4096),
            )
            .with_open_segments_max(9)
            .with_truncate_corrupt(true);
        let metas = vec![
            TopicMeta {
                name: "a.b_c-d".into(),
                partitions: 3,
                config: config.clone(),
            },
            TopicMeta {
                name: "x".into(),
                partitions: 1,
                config: PartitionConfig::default(),
            },
        ];
        let bytes = encode_metadata(&metas);
        let back = decode_metadata(&bytes).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].name, "a.b_c-d");
        assert_eq!(back[0].partitions, 3);
        assert_eq!(format!("{:?}", back[0].config), format!("{config:?}"));
        assert_eq!(
            format!("{:?}", back[1].config),
            format!("{:?}", PartitionConfig::default())
        );
    }

    #[test]
    fn damaged_metadata_is_rejected() {
        let metas = vec![TopicMeta {
            name: "t".into(),
            partitions: 2,
            config: PartitionConfig::default(),
        }];
        let bytes = encode_metadata(&metas);
        for cut in 0..bytes.len() {
            assert!(decode_metadata(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x01;
            assert!(decode_metadata(&b).is_err(), "flip at {i}");
        }
    }
}
