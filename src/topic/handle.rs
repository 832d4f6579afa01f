//! Topics: a named set of partitions and the partitioner that routes records among them.
//!
//! A [`Topic`] is created and owned by a [`LogStore`](crate::LogStore); users get it as an
//! `Arc<Topic>`. Its partition list only grows ([`LogStore::add_partitions`]), so a partition
//! number valid once stays valid until the topic is deleted.
//!
//! [`LogStore::add_partitions`]: crate::LogStore::add_partitions

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::error::{Error, Result};
use crate::format::record::Record;
use crate::log::config::PartitionConfig;
use crate::log::partition::{AppendInfo, Partition};
use crate::offset::Offset;
use crate::replication::Acks;
use crate::topic::copies::Copies;
use crate::topic::partitioner::{DefaultPartitioner, Partitioner};

/// Most partitions one topic may have. Every partition is a directory with open files and
/// mapped indexes, so the count is bounded like every other size in the crate.
pub const TOPIC_PARTITIONS_MAX: u32 = 10_000;

/// Longest topic name: 242 bytes, so that every file name the topic will ever need fits the
/// 255-byte limit of common file systems — the longest is a deleted partition's directory,
/// `<name>-9999.deleted` (13 bytes more, with [`TOPIC_PARTITIONS_MAX`] partitions). Kafka allows
/// 249 characters; a longer name made `delete_topic` fail with "File name too long" after it
/// had committed the deletion.
pub const TOPIC_NAME_LEN_MAX: usize = 242;

/// The longest file name a topic's partitions use, checked at compile time against the
/// 255-byte limit: the name, `-`, the last partition's number, `.deleted`.
const _: () = assert!(TOPIC_NAME_LEN_MAX + "-9999".len() + ".deleted".len() <= 255);
const _: () = assert!(TOPIC_PARTITIONS_MAX == 10_000); // also stated in validation messages

/// Names Kafka reserves for its internal topics: creating them is refused.
pub const RESERVED_TOPIC_NAMES: [&str; 3] = [
    "__consumer_offsets",
    "__transaction_state",
    "__cluster_metadata",
];

/// How to create a topic: its partition count, the configuration of each partition, and the
/// partitioner for records sent without an explicit partition.
///
/// The partition count and the [`PartitionConfig`] are persisted with the topic (except the
/// test-only fault injector); the partitioner is code and is not: a reopened store gives every
/// topic a [`DefaultPartitioner`] until [`Topic::set_partitioner`] installs another one.
#[derive(Clone)]
#[non_exhaustive]
pub struct TopicConfig {
    /// Number of partitions, between 1 and [`TOPIC_PARTITIONS_MAX`]. Default 1.
    pub partitions: u32,
    /// Configuration of every partition of the topic. Default [`PartitionConfig::default`].
    pub partition_config: PartitionConfig,
    /// Routes records among the partitions. Default a new [`DefaultPartitioner`].
    pub partitioner: Arc<dyn Partitioner>,
    /// Copies of each partition kept in this process, between 1 and
    /// [`REPLICATION_FACTOR_MAX`] (Kafka's `replication.factor`). Default 1: one partition
    /// directory, exactly as an unreplicated store. Above 1, each partition is a
    /// [`ReplicaSet`](crate::ReplicaSet) of that many directories (see
    /// [`LogStore`](crate::LogStore), "On disk") with follower threads; producers choose
    /// their [`Acks`](crate::Acks). Fixed at creation.
    pub replication_factor: u32,
    /// An [`Acks::All`](crate::Acks::All) send needs at least this many in-sync replicas
    /// (Kafka's `min.insync.replicas`), between 1 and `replication_factor`. Default 1.
    pub min_insync_replicas: u32,
}

/// Most copies of a partition a replicated topic may keep ([`TopicConfig::replication_factor`]).
pub const REPLICATION_FACTOR_MAX: u32 = 16;

impl Default for TopicConfig {
    fn default() -> Self {
        TopicConfig {
            partitions: 1,
            partition_config: PartitionConfig::default(),
            partitioner: Arc::new(DefaultPartitioner::new()),
            replication_factor: 1,
            min_insync_replicas: 1,
        }
    }
}

impl std::fmt::Debug for TopicConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicConfig")
            .field("partitions", &self.partitions)
            .field("partition_config", &self.partition_config)
            .field("replication_factor", &self.replication_factor)
            .field("min_insync_replicas", &self.min_insync_replicas)
            .finish_non_exhaustive()
    }
}

impl TopicConfig {
    /// `partitions` partitions with the default partition configuration and partitioner.
    pub fn new(partitions: u32) -> Self {
        TopicConfig {
            partitions,
            ..TopicConfig::default()
        }
    }

    /// Sets `partitions`.
    pub fn with_partitions(mut self, partitions: u32) -> Self {
        self.partitions = partitions;
        self
    }

    /// Sets `partition_config`.
    pub fn with_partition_config(mut self, config: PartitionConfig) -> Self {
        self.partition_config = config;
        self
    }

    /// Sets `partitioner`.
    pub fn with_partitioner(mut self, partitioner: Arc<dyn Partitioner>) -> Self {
        self.partitioner = partitioner;
        self
    }

    /// Sets `replication_factor`.
    pub fn with_replication_factor(mut self, v: u32) -> Self {
        self.replication_factor = v;
        self
    }

    /// Sets `min_insync_replicas`.
    pub fn with_min_insync_replicas(mut self, v: u32) -> Self {
        self.min_insync_replicas = v;
        self
    }

    /// Check the partition count, the replication settings and the partition configuration.
    pub fn validate(&self) -> Result<()> {
        if !(1..=TOPIC_PARTITIONS_MAX).contains(&self.partitions) {
            return Err(Error::config(
                "partitions",
                self.partitions,
                "must be between 1 and 10000 (TOPIC_PARTITIONS_MAX)",
            ));
        }
        check_replication(self.replication_factor, self.min_insync_replicas)
            .map_err(|(field, value, reason)| Error::config(field, value, reason))?;
        self.partition_config.validate()
    }
}

/// The replication settings' rule, shared with the metadata decoder: the field, its value and
/// the reason when one is out of range.
pub(crate) fn check_replication(
    replication_factor: u32,
    min_insync_replicas: u32,
) -> Result<(), (&'static str, u32, &'static str)> {
    if !(1..=REPLICATION_FACTOR_MAX).contains(&replication_factor) {
        return Err((
            "replication_factor",
            replication_factor,
            "must be between 1 and 16 (REPLICATION_FACTOR_MAX)",
        ));
    }
    if !(1..=replication_factor).contains(&min_insync_replicas) {
        return Err((
            "min_insync_replicas",
            min_insync_replicas,
            "must be between 1 and the replication factor",
        ));
    }
    Ok(())
}

const _: () = assert!(REPLICATION_FACTOR_MAX == 16); // also stated in validation messages

/// Check `name` against Kafka's topic-name rules: 1 to [`TOPIC_NAME_LEN_MAX`] characters from
/// `[a-zA-Z0-9._-]`, and neither `.` nor `..`. Returns [`Error::InvalidTopicName`] otherwise.
/// (Creating a topic checks more: see [`check_new_topic_name`].)
pub fn validate_topic_name(name: &str) -> Result<()> {
    let invalid = |reason| {
        Err(Error::InvalidTopicName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return invalid("empty");
    }
    if name.len() > TOPIC_NAME_LEN_MAX {
        return invalid(
            "longer than TOPIC_NAME_LEN_MAX = 242 bytes (every partition directory name must fit \
             255 bytes); choose a shorter name",
        );
    }
    if name == "." || name == ".." {
        return invalid("'.' and '..' are not allowed");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return invalid("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

/// Check that a topic called `name` may be created next to `existing` topics: a valid name
/// ([`validate_topic_name`]), not one of Kafka's internal topics ([`RESERVED_TOPIC_NAMES`],
/// [`Error::InvalidTopicName`]), and not colliding with an existing topic once `.` and `_` are
/// treated alike (`a.b` and `a_b`; Kafka forbids both because its metric names replace `.`
/// with `_`): [`Error::TopicCollision`]. An existing topic of exactly that name is left to the
/// caller ([`Error::TopicExists`]).
pub fn check_new_topic_name<'a>(
    name: &str,
    existing: impl IntoIterator<Item = &'a str>,
) -> Result<()> {
    validate_topic_name(name)?;
    if RESERVED_TOPIC_NAMES.contains(&name) {
        return Err(Error::InvalidTopicName {
            name: name.to_owned(),
            reason: "reserved for a Kafka internal topic; choose another name",
        });
    }
    let unified = |n: &str| n.replace('.', "_");
    let key = unified(name);
    if let Some(other) = existing
        .into_iter()
        .find(|other| *other != name && unified(other) == key)
    {
        return Err(Error::TopicCollision {
            topic: name.to_owned(),
            existing: other.to_owned(),
        });
    }
    Ok(())
}

/// A named, ordered set of partitions with a partitioner.
///
/// `Topic` is `Send + Sync`; the store hands it out as `Arc<Topic>`. Partition `n` lives in
/// `<data dir>/<topic>-<n>/` (a replicated topic's other replicas in
/// `<data dir>/__replica<r>/<topic>-<n>/`). Appending through the topic routes records with
/// its partitioner (with [`Acks::Leader`]); appending to a [`Partition`] of an unreplicated
/// topic directly is always allowed too. Of a replicated topic, [`partition`](Topic::partition)
/// is the current leader's copy, which consumers read below the high watermark; append
/// through the topic or a [`Producer`](crate::Producer), not to it.
pub struct Topic {
    name: String,
    /// Replaced by `LogStore::update_topic_config`.
    partition_config: RwLock<PartitionConfig>,
    replication_factor: u32,
    min_insync_replicas: u32,
    /// Replaced (never shrunk) by `add_partitions`; readers clone the `Arc`.
    partitions: RwLock<Arc<Vec<Arc<Copies>>>>,
    /// `partitions.len()`, readable without the lock on the send path.
    partition_count: AtomicU32,
    partitioner: RwLock<Arc<dyn Partitioner>>,
    deleted: AtomicBool,
}

impl std::fmt::Debug for Topic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Topic")
            .field("name", &self.name)
            .field("partitions", &self.partition_count())
            .field("deleted", &self.is_deleted())
            .finish_non_exhaustive()
    }
}

impl Topic {
    pub(crate) fn new(
        name: String,
        config: &TopicConfig,
        partitions: Vec<Arc<Copies>>,
        partitioner: Arc<dyn Partitioner>,
    ) -> Topic {
        assert!(!partitions.is_empty(), "a topic has at least one partition");
        let count = u32::try_from(partitions.len()).expect("bounded by TOPIC_PARTITIONS_MAX");
        Topic {
            name,
            partition_config: RwLock::new(config.partition_config.clone()),
            replication_factor: config.replication_factor,
            min_insync_replicas: config.min_insync_replicas,
            partitions: RwLock::new(Arc::new(partitions)),
            partition_count: AtomicU32::new(count),
            partitioner: RwLock::new(partitioner),
            deleted: AtomicBool::new(false),
        }
    }

    /// The topic's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The configuration of the topic's partitions: the one they were opened with, with
    /// the changes of [`LogStore::update_topic_config`](crate::LogStore::update_topic_config).
    pub fn partition_config(&self) -> PartitionConfig {
        self.partition_config.read().clone()
    }

    /// Record the topic's new partition configuration (already persisted by the store).
    pub(crate) fn set_partition_config(&self, config: PartitionConfig) {
        *self.partition_config.write() = config;
    }

    /// The topic's current configuration: partition count, partition config, partitioner,
    /// replication settings.
    pub fn config(&self) -> TopicConfig {
        TopicConfig {
            partitions: self.partition_count(),
            partition_config: self.partition_config(),
            partitioner: self.partitioner(),
            replication_factor: self.replication_factor,
            min_insync_replicas: self.min_insync_replicas,
        }
    }

    /// Copies kept of each partition (1: not replicated).
    pub fn replication_factor(&self) -> u32 {
        self.replication_factor
    }

    /// The in-sync replicas an [`Acks::All`] append needs.
    pub fn min_insync_replicas(&self) -> u32 {
        self.min_insync_replicas
    }

    /// The in-process replica set of partition `partition` of a replicated topic (`None`
    /// when the replication factor is 1), for its state (leader, ISR, high watermark) and,
    /// with feature `testing`, its failure hooks. [`Error::PartitionOutOfRange`].
    pub fn replica_set(
        &self,
        partition: u32,
    ) -> Result<Option<Arc<crate::replication::ReplicaSet>>> {
        Ok(self.copies(partition)?.replica_set().cloned())
    }

    /// Number of partitions (at least 1; it only grows).
    pub fn partition_count(&self) -> u32 {
        self.partition_count.load(Ordering::Acquire)
    }

    /// Partition `partition` (of a replicated topic: its leader's copy), or
    /// [`Error::PartitionOutOfRange`]; [`Error::NotLeader`] while a replicated partition
    /// has no leader.
    pub fn partition(&self, partition: u32) -> Result<Arc<Partition>> {
        self.copies(partition)?.leader()
    }

    /// The copies of partition `partition`, or [`Error::PartitionOutOfRange`].
    pub(crate) fn copies(&self, partition: u32) -> Result<Arc<Copies>> {
        let partitions = self.partitions.read();
        partitions
            .get(partition as usize)
            .cloned()
            .ok_or_else(|| self.out_of_range(partition, partitions.len()))
    }

    /// Every partition, in partition-number order (a snapshot; of a replicated topic, each
    /// leader's copy, skipping a partition that has no leader now).
    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        self.partitions
            .read()
            .iter()
            .filter_map(|c| c.leader().ok())
            .collect()
    }

    /// The copies of every partition, in partition-number order (a snapshot).
    pub(crate) fn all_copies(&self) -> Vec<Arc<Copies>> {
        Vec::clone(&self.partitions.read())
    }

    /// Append `records` as one batch to partition `partition`, waiting as `acks` says (see
    /// [`Acks`]; on an unreplicated topic `All` is `Leader`). Errors as
    /// [`append_to`](Topic::append_to), and of a replicated partition
    /// [`Error::NotEnoughReplicas`] and [`Error::NotLeader`].
    pub fn append_with_acks(
        &self,
        partition: u32,
        records: &[Record],
        acks: Acks,
    ) -> Result<AppendInfo> {
        self.check_live()?;
        self.copies(partition)?.append(records, acks)
    }

    /// The partitioner used for records without an explicit partition.
    pub fn partitioner(&self) -> Arc<dyn Partitioner> {
        self.partitioner.read().clone()
    }

    /// Replace the partitioner. Sends already routed keep their partition.
    pub fn set_partitioner(&self, partitioner: Arc<dyn Partitioner>) {
        *self.partitioner.write() = partitioner;
    }

    /// True once [`LogStore::delete_topic`](crate::LogStore::delete_topic) removed the topic.
    /// Its partitions are closed: appends fail, reads of what was read before keep working.
    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    /// The partition the partitioner picks for `record`, checked to be in range.
    pub fn partition_for(&self, record: &Record) -> Result<u32> {
        let count = self.partition_count();
        let partition = self.partitioner.read().partition(&self.name, record, count);
        if partition >= count {
            return Err(self.out_of_range(partition, count as usize));
        }
        Ok(partition)
    }

    /// Append `records` as one batch to partition `partition` (an explicit choice: the
    /// partitioner is not asked). A partition number out of range is
    /// [`Error::PartitionOutOfRange`]; a deleted topic is [`Error::UnknownTopic`].
    pub fn append_to(&self, partition: u32, records: &[Record]) -> Result<AppendInfo> {
        self.append_with_acks(partition, records, Acks::Leader)
    }

    /// Route one record with the partitioner and append it as a batch of its own; returns
    /// the partition and the offset it got.
    pub fn append_record(&self, record: &Record) -> Result<(u32, Offset)> {
        self.check_live()?;
        let partition = self.partition_for(record)?;
        let info = self
            .copies(partition)?
            .append(std::slice::from_ref(record), Acks::Leader)?;
        Ok((partition, info.base_offset))
    }

    /// Route each record with the partitioner, then append the records of each partition as
    /// one batch (in their order within `records`). Returns `(partition, offset)` for every
    /// record, in the order of `records`.
    ///
    /// Not atomic across partitions: partitions are appended in increasing number, and on
    /// an error the batches of lower-numbered partitions may already be appended.
    pub fn append(&self, records: &[Record]) -> Result<Vec<(u32, Offset)>> {
        self.check_live()?;
        let mut groups: BTreeMap<u32, (Vec<usize>, Vec<Record>)> = BTreeMap::new();
        for (i, record) in records.iter().enumerate() {
            let partition = self.partition_for(record)?;
            let group = groups.entry(partition).or_default();
            group.0.push(i);
            group.1.push(record.clone());
        }
        let mut out = vec![(0, Offset::ZERO); records.len()];
        for (partition, (indexes, batch)) in groups {
            let info = self.copies(partition)?.append(&batch, Acks::Leader)?;
            for (k, i) in indexes.into_iter().enumerate() {
                out[i] = (partition, info.base_offset.plus(k as u64));
            }
        }
        Ok(out)
    }

    fn check_live(&self) -> Result<()> {
        if self.is_deleted() {
            return Err(Error::UnknownTopic {
                topic: self.name.clone(),
            });
        }
        Ok(())
    }

    fn out_of_range(&self, partition: u32, count: usize) -> Error {
        Error::PartitionOutOfRange {
            topic: self.name.clone(),
            partition,
            partition_count: u32::try_from(count).expect("bounded"),
        }
    }

    /// Publish partitions added by `add_partitions` (appended after the existing ones).
    pub(crate) fn extend_partitions(&self, added: Vec<Arc<Copies>>) {
        let mut slot = self.partitions.write();
        let mut all = Vec::clone(&slot);
        all.extend(added);
        let count = u32::try_from(all.len()).expect("bounded by TOPIC_PARTITIONS_MAX");
        *slot = Arc::new(all);
        // Published after the partitions: a count read anywhere only names existing ones.
        self.partition_count.store(count, Ordering::Release);
    }

    pub(crate) fn mark_deleted(&self) {
        self.deleted.store(true, Ordering::Release);
    }
}
