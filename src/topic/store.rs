//! [`LogStore`]: the handle on one data directory of topics, and topic administration
//! (create, delete, add partitions) with `topics.meta` as the commit point.
//!
//! The metadata codec is in [`metadata`](crate::topic::metadata), the sweep of leftover
//! directories in [`sweep`](crate::topic::sweep), the maintenance pass and thread in
//! [`maintenance`](crate::topic::maintenance).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

use crate::error::{Error, IoContext, Result};
use crate::io::checkpoint::{self, sync_dir_in};
use crate::io::fs::{Fs, FsLock};
use crate::log::config::PartitionConfig;
use crate::log::partition::{ConfigUpdate, Partition};
use crate::offset::TopicPartition;
use crate::replication::{ReplicaSet, ReplicaSpec, ReplicationConfig};
use crate::topic::copies::{replica_root, Copies};
use crate::topic::descriptors;
use crate::topic::dir_kind::refuse_partition_dir;
use crate::topic::handle::{
    check_new_topic_name, validate_topic_name, Topic, TopicConfig, TOPIC_PARTITIONS_MAX,
};
use crate::topic::maintenance::{
    self, MaintenanceLog, MaintenanceReport, MaintenanceThread, Schedule,
};
use crate::topic::metadata::{
    read_metadata, remove_leftover_tmp, write_metadata, TopicMeta, TOPICS_METADATA_FILE,
};
use crate::topic::partitioner::DefaultPartitioner;
use crate::topic::sweep::{
    discard, is_partition_dir, not_ours, partition_dir, partition_dirs, remove_deleted,
    remove_orphans,
};

const STORE_LOCK_FILE: &str = ".lock";
/// Most topics one store holds.
pub const STORE_TOPICS_MAX: usize = 100_000;

// The validation messages state this value: keep them in step.
const _: () = assert!(STORE_TOPICS_MAX == 100_000);

/// Configuration of a [`LogStore`]. Build it from [`StoreConfig::default`] and the `with_*`
/// methods; [`LogStore::open`] validates it. Nothing here is persisted.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StoreConfig {
    /// How often the maintenance thread wakes to run [`Partition::flush_if_due`] on every
    /// partition (which enforces [`Durability::SyncThreshold`]'s `interval`). `None` starts
    /// no thread: call [`LogStore::run_maintenance`] yourself. Default 1 s; must be positive.
    ///
    /// [`Durability::SyncThreshold`]: crate::log::config::Durability::SyncThreshold
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
    /// The file system the store lives on: the real one unless a test installed a simulated
    /// one (`with_file_system`, feature `testing`).
    pub(crate) fs: Fs,
    /// File descriptors the store's partitions may hold: `create_topic` and `add_partitions`
    /// that would make the store hold more than this
    /// ([`DESCRIPTORS_PER_PARTITION`](crate::DESCRIPTORS_PER_PARTITION) per partition) fail
    /// with [`Error::DescriptorBudget`], changing nothing. `None` (the default): the process's
    /// open-file limit (`ulimit -n`, read on Linux) less
    /// [`DESCRIPTORS_RESERVED`](crate::DESCRIPTORS_RESERVED); no check where it is unknown.
    /// Partitions stay open while the store is (Kafka keeps its segments open too): size the
    /// limit for them.
    pub descriptors_max: Option<usize>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            maintenance_interval: Some(Duration::from_secs(1)),
            retention_check_interval: Duration::from_secs(5 * 60),
            truncate_corrupt: false,
            fs: Fs::Std,
            descriptors_max: None,
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
    /// Sets `descriptors_max`.
    pub fn with_descriptors_max(mut self, v: Option<usize>) -> Self {
        self.descriptors_max = v;
        self
    }
    /// Sets `truncate_corrupt`.
    pub fn with_truncate_corrupt(mut self, v: bool) -> Self {
        self.truncate_corrupt = v;
        self
    }
    /// Puts the whole store on the simulated file system `sim` instead of the real one
    /// (feature `testing`): the data directory, its lock and `topics.meta`, every
    /// partition (whatever file system its topic's [`PartitionConfig`] names) and the
    /// consumer offsets of [`GroupCoordinator::open`](crate::GroupCoordinator::open). The
    /// test keeps `sim` to cut the power
    /// ([`SimFs::power_loss`](crate::testing::SimFs::power_loss)) or inject faults.
    #[cfg(feature = "testing")]
    pub fn with_file_system(mut self, sim: Arc<crate::io::sim::SimFs>) -> Self {
        self.fs = Fs::Sim(sim);
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
/// The shared state behind a [`LogStore`]; the layers above reach it only through a
/// [`StoreHandle`].
struct StoreInner {
    dir: std::path::PathBuf,
    config: StoreConfig,
    /// The data directory's lock; released by `close` so the directory can be reopened while
    /// stale handles (producers, consumers) linger — they fail with `StoreClosed`.
    dir_lock: Mutex<Option<FsLock>>,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    /// Serialises topic creation, deletion, partition addition and close.
    admin: Mutex<()>,
    closed: AtomicBool,
    maintenance: Arc<MaintenanceLog>,
}

/// What the layers above the topic layer (producers, consumers, the group coordinator) use
/// of a store: topic lookup and the open check. Keeps the store's topics
/// reachable, not the store open: once the [`LogStore`] is closed every call fails with
/// [`Error::StoreClosed`].
#[derive(Clone)]
pub(crate) struct StoreHandle(Arc<StoreInner>);

impl StoreHandle {
    /// The topic called `name`: [`Error::UnknownTopic`], or [`Error::StoreClosed`].
    pub(crate) fn topic(&self, name: &str) -> Result<Arc<Topic>> {
        self.0.topic(name)
    }

    /// [`Error::StoreClosed`] once the store is closed.
    pub(crate) fn check_open(&self) -> Result<()> {
        self.0.check_open()
    }

    /// A handle that does not keep the store's topics alive.
    pub(crate) fn downgrade(&self) -> WeakStoreHandle {
        WeakStoreHandle(Arc::downgrade(&self.0))
    }
}

/// A [`StoreHandle`] that does not keep the store's state alive.
#[derive(Clone)]
pub(crate) struct WeakStoreHandle(Weak<StoreInner>);

impl WeakStoreHandle {
    /// The handle, if the store's state still exists.
    pub(crate) fn upgrade(&self) -> Option<StoreHandle> {
        self.0.upgrade().map(StoreHandle)
    }
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
/// Producers and consumers made from the store keep its topics usable after the `LogStore`
/// is dropped only until it closes: close or drop them first, or their buffered records fail
/// with [`Error::Closed`] and their calls with [`Error::StoreClosed`].
///
/// # On disk
///
/// ```text
/// <dir>/
///   .lock            held locked (flock) while a LogStore has the directory open
///   topics.meta      every topic: name, partition count, partition config, replication
///   orders-0/        partition 0 of topic "orders": a Partition directory
///   orders-1/ ...
///   __replica1/      replica 1 of every replicated topic's partitions (replication factor 2+)
///     events-0/      partition 0 of "events": replica 1's Partition directory
///   __replica2/ ...  replica 2 (replication factor 3+)
///   __offsets/       consumer offsets of GroupCoordinator::open (another layer's state)
/// ```
///
/// A topic with [`replication_factor`](TopicConfig::replication_factor) `r > 1` keeps each
/// partition as an in-process [`ReplicaSet`]: replica 0 in `<dir>/<topic>-<p>/` (where an
/// unreplicated topic keeps its only copy), replica `n` in `<dir>/__replica<n>/<topic>-<p>/`,
/// each with a follower thread. At open the leader is the most advanced replica; followers
/// rejoin the in-sync set once they caught up. A missing replica directory (a lost disk)
/// is recreated empty and refilled from the leader; all of them missing is
/// [`Error::CorruptMetadata`].
///
/// `topics.meta` is a UTF-8 text file, one line per topic and a closing CRC-32 line; its
/// layout is specified in `docs/format.md` (section "Topic metadata"). The file is replaced
/// atomically (written to `topics.meta.tmp`, fsynced, renamed over `topics.meta`, directory
/// fsynced), so a crash leaves the old or the new version; a leftover temp file is deleted at
/// open. Keys missing from a topic line take [`PartitionConfig::default`] values (so files
/// written before a field existed still open); unknown keys are an error
/// ([`Error::CorruptMetadata`]).
///
/// # Topic operations and crashes
///
/// The metadata file is the commit point of every topic operation. Creating a topic or
/// adding partitions creates the partition directories first and then writes the metadata;
/// deleting a topic writes the metadata first, then renames each partition directory to
/// `<topic>-<n>.deleted` and removes it. At open, leftovers of interrupted operations are
/// removed: `.deleted` directories, and partition directories the metadata does not list
/// (only those seglog made: empty, or holding the partition's `.lock` file). Other entries
/// of the directory are left alone: later layers keep their own state there (consumer
/// offsets live in `<dir>/__offsets/`).
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
    /// Fails with [`Error::WrongDirectory`] (changing nothing) if `dir` is a partition
    /// directory, with [`Error::StoreAlreadyOpen`] if another `LogStore` holds `dir`, with
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

    /// Change topic `name`'s configuration (Kafka's dynamic topic configuration,
    /// `kafka-configs --alter`): validated as at creation, persisted in the metadata before
    /// this returns (later opens use it), then applied to every open partition
    /// ([`Partition::update_config`]; [`ConfigUpdate`] says when each field takes effect,
    /// e.g. a new `segment_bytes` at the next roll, a new `cleanup_policy` at the next
    /// maintenance pass). Errors: [`Error::UnknownTopic`], [`Error::InvalidConfig`] (nothing
    /// changes), I/O. `durability` is fixed at creation ([`ConfigUpdate::set`] refuses it
    /// with [`Error::ConfigNotDynamic`]).
    pub fn update_topic_config(&self, name: &str, update: &ConfigUpdate) -> Result<()> {
        self.inner.update_topic_config(name, update)
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
        self.inner.maintenance.runs()
    }

    /// Take the failures the maintenance thread met (the most recent 64 are kept).
    pub fn take_maintenance_failures(&self) -> Vec<(TopicPartition, Error)> {
        self.inner.maintenance.take_failures()
    }

    /// The file system the store lives on (the group layer puts its offsets there too).
    pub(crate) fn file_system(&self) -> &Fs {
        &self.inner.config.fs
    }

    /// The handle producers, consumers and group coordinators keep.
    pub(crate) fn handle(&self) -> StoreHandle {
        StoreHandle(self.inner.clone())
    }

    /// Stop and join the maintenance thread, then close every partition (flush, write the
    /// clean-shutdown markers). Later topic operations fail with [`Error::StoreClosed`].
    /// Returns the first error met; every partition is closed regardless. Dropping the store
    /// does the same, ignoring errors. A second `close` is a no-op.
    pub fn close(&self) -> Result<()> {
        if let Some(thread) = self.maintenance.lock().take() {
            thread.stop();
        }
        self.inner.close()
    }

    fn start_maintenance(&self, interval: Duration) -> Result<()> {
        let schedule = Schedule {
            interval,
            retention_check_interval: self.inner.config.retention_check_interval,
        };
        let inner = self.inner.clone();
        let thread = MaintenanceThread::start(
            &self.inner.dir,
            schedule,
            self.inner.maintenance.clone(),
            move |retention| inner.maintain(retention),
        )?;
        *self.maintenance.lock() = Some(thread);
        Ok(())
    }
}

impl Drop for LogStore {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

impl StoreInner {
    fn open(dir: &Path, config: StoreConfig) -> Result<StoreInner> {
        let fs = &config.fs;
        refuse_partition_dir(fs, dir)?;
        checkpoint::create_dir_all_durable(fs, dir)?;
        let lock = lock_store(fs, dir)?;
        remove_leftover_tmp(fs, dir)?;
        let metas = if let Some(metas) = read_metadata(fs, &dir.join(TOPICS_METADATA_FILE))? {
            metas
        } else {
            if let Some((_, _, orphan)) = partition_dirs(fs, dir)?.live.into_iter().next() {
                return Err(Error::CorruptMetadata {
                    path: orphan,
                    line: 0,
                    reason: "a partition directory exists but topics.meta does not",
                });
            }
            write_metadata(fs, dir, &[]).map_err(|f| f.error)?;
            Vec::new()
        };
        remove_orphans(fs, dir, &metas)?;
        let mut topics = BTreeMap::new();
        for meta in metas {
            let topic = open_topic(fs, dir, &meta, config.truncate_corrupt)?;
            topics.insert(meta.name, Arc::new(topic));
        }
        Ok(StoreInner {
            dir: dir.to_owned(),
            config,
            dir_lock: Mutex::new(Some(lock)),
            topics: RwLock::new(topics),
            admin: Mutex::new(()),
            closed: AtomicBool::new(false),
            maintenance: Arc::new(MaintenanceLog::default()),
        })
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::StoreClosed);
        }
        Ok(())
    }

    fn topic(&self, name: &str) -> Result<Arc<Topic>> {
        self.check_open()?;
        self.topics
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| Error::UnknownTopic {
                topic: name.to_owned(),
            })
    }

    /// [`Error::DescriptorBudget`] unless the store's partitions plus `more` fit the budget.
    fn check_descriptors(&self, more: u32) -> Result<()> {
        let open: usize = self
            .topics
            .read()
            .values()
            .map(|t| t.partition_count() as usize * t.replication_factor() as usize)
            .sum();
        descriptors::check(
            open + more as usize,
            descriptors::budget(self.config.descriptors_max),
        )
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
                config: t.partition_config(),
                replication_factor: t.replication_factor(),
                min_insync_replicas: t.min_insync_replicas(),
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
        check_new_topic_name(name, self.topics.read().keys().map(String::as_str))?;
        self.check_descriptors(config.partitions.saturating_mul(config.replication_factor))?;
        if count >= STORE_TOPICS_MAX {
            return Err(Error::config(
                "topics",
                count + 1,
                "a store holds at most 100000 topics (STORE_TOPICS_MAX); delete topics or use another store",
            ));
        }
        let replication = Replication::of(&config);
        let partitions = self.open_new_partitions(
            name,
            0,
            config.partitions,
            &config.partition_config,
            replication,
        )?;
        let metas = self.metas_with(|m| {
            m.push(TopicMeta {
                name: name.to_owned(),
                partitions: config.partitions,
                config: config.partition_config.clone(),
                replication_factor: config.replication_factor,
                min_insync_replicas: config.min_insync_replicas,
            });
        });
        let dirs = self.copy_dirs(name, 0..config.partitions, replication.factor);
        let committed = self.commit(&metas, &partitions, &dirs);
        let topic = Arc::new(Topic::new(
            name.to_owned(),
            &config,
            partitions,
            config.partitioner.clone(),
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
        if let Err(f) = write_metadata(&self.config.fs, &self.dir, &metas) {
            if !f.renamed {
                return Err(f.error);
            }
        }
        self.topics.write().remove(name);
        topic.mark_deleted();
        // The topic is gone whatever happens next. Its partitions close (a replica set stops
        // its follower threads first); its directories, every replica's, are renamed out of
        // the way at once (so the name can be reused, and a crash leaves unambiguous
        // leftovers for the sweep at open), then removed.
        for copies in topic.all_copies() {
            let _ = copies.close();
        }
        let dirs = self.copy_dirs(name, 0..topic.partition_count(), topic.replication_factor());
        remove_deleted(&self.config.fs, &dirs)
    }

    /// The directories of partitions `range` of topic `name`, every replica's.
    fn copy_dirs(&self, name: &str, range: std::ops::Range<u32>, factor: u32) -> Vec<PathBuf> {
        range
            .flat_map(|n| {
                (0..factor).map(move |r| partition_dir(&replica_root(&self.dir, r), name, n))
            })
            .collect()
    }

    fn update_topic_config(&self, name: &str, update: &ConfigUpdate) -> Result<()> {
        let _admin = self.admin.lock();
        self.check_open()?;
        let topic = self.topic(name)?;
        let config = update.apply_to(&topic.partition_config())?;
        let metas = self.metas_with(|m| {
            if let Some(t) = m.iter_mut().find(|t| t.name == name) {
                t.config = config.clone();
            }
        });
        let committed = match write_metadata(&self.config.fs, &self.dir, &metas) {
            Ok(()) => Ok(()),
            Err(f) if f.renamed => Err(f.error), // committed; the error is still reported
            Err(f) => return Err(f.error),
        };
        topic.set_partition_config(config);
        for copies in &topic.all_copies() {
            for p in copies.live_partitions() {
                p.update_config(update)?;
            }
        }
        committed
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
            return invalid("more than TOPIC_PARTITIONS_MAX = 10000 partitions");
        }
        let replication = Replication::of(&topic.config());
        self.check_descriptors((new_count - current).saturating_mul(replication.factor))?;
        let added = self.open_new_partitions(
            name,
            current,
            new_count,
            &topic.partition_config(),
            replication,
        )?;
        let metas = self.metas_with(|m| {
            if let Some(t) = m.iter_mut().find(|t| t.name == name) {
                t.partitions = new_count;
            }
        });
        let dirs = self.copy_dirs(name, current..new_count, replication.factor);
        match self.commit(&metas, &added, &dirs) {
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

    /// Open empty partitions `from..to` of `name` on the store's file system (every replica
    /// of each), removing leftovers in their directories first (the metadata does not list
    /// them, so nothing in them was ever acknowledged). On failure, the ones opened are
    /// closed and removed again.
    fn open_new_partitions(
        &self,
        name: &str,
        from: u32,
        to: u32,
        config: &PartitionConfig,
        replication: Replication,
    ) -> Result<Vec<Arc<Copies>>> {
        let fs = &self.config.fs;
        let mut config = config.clone();
        config.fs = fs.clone();
        let mut opened = Vec::with_capacity((to - from) as usize);
        let result = (from..to).try_for_each(|n| {
            let dirs = self.copy_dirs(name, n..n + 1, replication.factor);
            for dir in &dirs {
                clear_new_partition_dir(fs, dir)?;
            }
            opened.push(Arc::new(open_copies(&dirs, &config, replication)?));
            Ok(())
        });
        if let Err(e) = result {
            // Only the directories of partitions opened here: the one that failed may be
            // someone else's.
            let done = from + u32::try_from(opened.len()).unwrap_or(0);
            discard(
                fs,
                &opened,
                &self.copy_dirs(name, from..done, replication.factor),
            );
            return Err(e);
        }
        Ok(opened)
    }

    /// Make new partition directories durable (`dirs`, every replica's), then write the
    /// metadata listing them. If the metadata was not replaced, the new partitions are
    /// discarded.
    fn commit(
        &self,
        metas: &[TopicMeta],
        new_partitions: &[Arc<Copies>],
        dirs: &[PathBuf],
    ) -> Result<(), Commit> {
        let fs = &self.config.fs;
        let mut parents: Vec<&Path> = dirs.iter().filter_map(|d| d.parent()).collect();
        parents.dedup();
        if let Err(e) = parents.iter().try_for_each(|p| sync_dir_in(fs, p)) {
            discard(fs, new_partitions, dirs);
            return Err(Commit::NotApplied(e));
        }
        match write_metadata(fs, &self.dir, metas) {
            Ok(()) => Ok(()),
            // Renamed but the directory fsync failed: the change is visible and will most
            // likely survive; keep it, and report the error.
            Err(f) if f.renamed => Err(Commit::Applied(f.error)),
            Err(f) => {
                discard(fs, new_partitions, dirs);
                Err(Commit::NotApplied(f.error))
            }
        }
    }

    /// One maintenance pass over every topic (see [`maintenance::maintain`]).
    fn maintain(&self, retention: bool) -> MaintenanceReport {
        let topics: Vec<Arc<Topic>> = self.topics.read().values().cloned().collect();
        maintenance::maintain(&topics, &self.closed, retention)
    }

    fn close(&self) -> Result<()> {
        let _admin = self.admin.lock();
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let mut result = Ok(());
        for topic in self.topics.read().values() {
            for copies in topic.all_copies() {
                result = result.and(copies.close());
            }
        }
        // Released even when a partition failed to close: every partition is closed (and
        // unlocked) either way, and the store refuses further operations, so the directory
        // can be opened again, which recovers what the failed close left.
        self.dir_lock.lock().take();
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
/// How a topic's partitions are copied.
#[derive(Clone, Copy)]
struct Replication {
    factor: u32,
    min_insync_replicas: u32,
}

impl Replication {
    fn of(config: &TopicConfig) -> Replication {
        Replication {
            factor: config.replication_factor,
            min_insync_replicas: config.min_insync_replicas,
        }
    }
}

/// Remove a leftover in the directory of a partition about to be created (not listed in the
/// metadata: nothing in it was acknowledged), and create its replica root if needed.
fn clear_new_partition_dir(fs: &Fs, dir: &Path) -> Result<()> {
    if fs.exists(dir).at(dir)? {
        if !fs.is_dir(dir).at(dir)? || !is_partition_dir(fs, dir)? {
            return Err(not_ours(dir));
        }
        // Not made durable here: the partition's creation syncs its parent directory.
        fs.remove_dir_all(dir).at(dir)?;
    }
    if let Some(root) = dir.parent() {
        checkpoint::create_dir_all_durable(fs, root)?;
    }
    Ok(())
}

/// Open one partition's copies in `dirs` (replica 0 first): a partition, or a replica set
/// with its follower threads started.
fn open_copies(dirs: &[PathBuf], config: &PartitionConfig, r: Replication) -> Result<Copies> {
    if r.factor == 1 {
        return Ok(Copies::Single(Arc::new(Partition::open(
            &dirs[0],
            config.clone(),
        )?)));
    }
    let specs = dirs
        .iter()
        .map(|d| ReplicaSpec::new(d, config.clone()))
        .collect();
    let replication =
        ReplicationConfig::default().with_min_insync_replicas(r.min_insync_replicas as usize);
    let set = ReplicaSet::open(specs, replication)?;
    set.start_fetchers();
    Ok(Copies::Replicated(set))
}

/// Open the partitions of a topic listed in the metadata. An unreplicated partition's
/// directory must exist; of a replicated one at least one replica's (a missing one is
/// recreated empty and refilled from the leader). `truncate_corrupt` overrides the topic's
/// setting when set (not persisted).
fn open_topic(fs: &Fs, dir: &Path, meta: &TopicMeta, truncate_corrupt: bool) -> Result<Topic> {
    let mut open_config = meta.config.clone();
    open_config.truncate_corrupt |= truncate_corrupt;
    open_config.fs = fs.clone();
    let replication = Replication {
        factor: meta.replication_factor,
        min_insync_replicas: meta.min_insync_replicas,
    };
    let mut partitions = Vec::with_capacity(meta.partitions as usize);
    let result = (0..meta.partitions).try_for_each(|n| {
        let dirs: Vec<PathBuf> = (0..replication.factor)
            .map(|r| partition_dir(&replica_root(dir, r), &meta.name, n))
            .collect();
        if !dirs.iter().any(|d| fs.is_dir(d).unwrap_or(false)) {
            return Err(Error::CorruptMetadata {
                path: dirs[0].clone(),
                line: 0,
                reason: "topics.meta lists a partition whose directory is missing",
            });
        }
        for d in &dirs[1..] {
            if let Some(root) = d.parent() {
                checkpoint::create_dir_all_durable(fs, root)?;
            }
        }
        partitions.push(Arc::new(open_copies(&dirs, &open_config, replication)?));
        Ok(())
    });
    if let Err(e) = result {
        // Stop the follower threads of the partitions already opened.
        for p in &partitions {
            let _ = p.close();
        }
        return Err(e);
    }
    let config = TopicConfig {
        partitions: meta.partitions,
        partition_config: meta.config.clone(),
        partitioner: Arc::new(DefaultPartitioner::new()),
        replication_factor: meta.replication_factor,
        min_insync_replicas: meta.min_insync_replicas,
    };
    Ok(Topic::new(
        meta.name.clone(),
        &config,
        partitions,
        config.partitioner.clone(),
    ))
}

fn lock_store(fs: &Fs, dir: &Path) -> Result<FsLock> {
    checkpoint::try_lock_file(fs, &dir.join(STORE_LOCK_FILE))?.ok_or_else(|| {
        Error::StoreAlreadyOpen {
            path: dir.to_owned(),
        }
    })
}
#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn store_is_send_and_sync() {
        assert_send_sync::<LogStore>();
        assert_send_sync::<StoreHandle>();
        assert_send_sync::<WeakStoreHandle>();
    }
}
