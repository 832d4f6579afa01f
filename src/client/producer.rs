//! [`Producer`]: routes records to partitions and appends them, one at a time or in batches.
//!
//! # Locks (implementation)
//!
//! Each partition buffer has two locks: `state` (the open batch; held only to push a record
//! or cut the batch) and `order`, taken while still holding `state` when a batch is cut and
//! held across its append. Batches of one partition are therefore appended in the order they
//! were cut, which is the order their records were accepted: records sent from one thread to
//! one partition keep their order, whichever thread ends up appending them.

use std::slice;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard, RwLock};

use crate::error::{Error, IoContext, Result};
use crate::format::batch::{BATCH_BYTES_LIMIT, BATCH_HEADER_LEN};
use crate::format::record::Record;
use crate::log::partition::Partition;
use crate::offset::Offset;
use crate::replication::Acks;
use crate::topic::copies::Copies;
use crate::topic::handle::Topic;
use crate::topic::partitioner::NameMap;
use crate::topic::store::{LogStore, StoreHandle};

/// Longest allowed [`ProducerConfig::linger`].
pub const LINGER_MAX: Duration = Duration::from_secs(24 * 60 * 60);

/// Configuration of a [`Producer`]. Build it from [`ProducerConfig::default`] and the
/// `with_*` methods; [`Producer::new`] validates it.
///
/// There is no compression setting here: a producer appends to partitions, and each batch is
/// compressed with its topic's [`PartitionConfig::compression`](crate::PartitionConfig)
/// (Kafka's `compression.type` on the topic), so every writer of a topic writes the same codec.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProducerConfig {
    /// A batched partition buffer is appended once its records' estimated size reaches this
    /// many bytes. The estimate counts keys, values and headers plus the worst-case varint
    /// overhead of the record format, so a batch never exceeds this (plus the batch header)
    /// unless a single record does, and never exceeds the partition's `batch_bytes_max`.
    /// Default 16 KiB (Kafka's `batch.size`); between 1 byte and 64 MiB.
    pub batch_bytes: usize,
    /// How long the first record of a batch may wait for more before the batch is appended
    /// anyway (Kafka's `linger.ms`). Zero appends every `send_batched` at once and starts no
    /// timer thread. Default 5 ms; at most [`LINGER_MAX`].
    pub linger: Duration,
    /// What each append waits for (Kafka's `acks`), on replicated topics
    /// ([`TopicConfig::replication_factor`](crate::TopicConfig::replication_factor) above 1):
    /// [`Acks::None`] the leader's write, [`Acks::Leader`] the leader's append under its
    /// durability, [`Acks::All`] every in-sync replica, refused with
    /// [`Error::NotEnoughReplicas`] when fewer than the topic's `min_insync_replicas` are in
    /// sync. On an unreplicated topic `Leader` and `All` are the partition's `append` and
    /// `None` does not wait for its fsync. Default [`Acks::Leader`] (what a producer did
    /// before replication; unlike Kafka's producer, whose default is `all`).
    pub acks: Acks,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            batch_bytes: 16 << 10,
            linger: Duration::from_millis(5),
            acks: Acks::Leader,
        }
    }
}

impl ProducerConfig {
    /// Sets `batch_bytes`.
    pub fn with_batch_bytes(mut self, v: usize) -> Self {
        self.batch_bytes = v;
        self
    }
    /// Sets `linger`.
    pub fn with_linger(mut self, v: Duration) -> Self {
        self.linger = v;
        self
    }
    /// Sets `acks`.
    pub fn with_acks(mut self, v: Acks) -> Self {
        self.acks = v;
        self
    }

    /// Check every field; the first bad one is returned as [`Error::InvalidConfig`].
    pub fn validate(&self) -> Result<()> {
        if self.batch_bytes == 0 || self.batch_bytes > BATCH_BYTES_LIMIT {
            return Err(Error::config(
                "batch_bytes",
                self.batch_bytes,
                "must be between 1 byte and 64 MiB",
            ));
        }
        if self.linger > LINGER_MAX {
            return Err(Error::config(
                "linger",
                format!("{:?}", self.linger),
                "must be at most one day (LINGER_MAX)",
            ));
        }
        Ok(())
    }
}

/// Sends records to the topics of a [`LogStore`]; made with [`Producer::new`].
///
/// [`send`](Self::send) appends one record as one batch before it returns. The batching
/// mode, [`send_batched`](Self::send_batched), collects records per partition and appends
/// each collection as one batch when it reaches [`ProducerConfig::batch_bytes`] or has
/// waited [`ProducerConfig::linger`], returning a [`SendHandle`] to wait on.
///
/// # Ordering
///
/// `Producer` is `Send + Sync`: share one between threads. Records sent from one thread to
/// one partition are appended in send order, whether they go through [`send`](Self::send),
/// [`send_to`](Self::send_to) or the batching calls (a synchronous send first appends the
/// partition's open batch). Records sent from different threads interleave in some order.
///
/// # Threads
///
/// A producer whose `linger` is positive owns one background thread, the *linger timer*: it
/// sleeps until the oldest open batch is due and appends it. A batch that fills up is
/// appended by the thread whose record filled it, so under load the timer does little and
/// appends happen on the senders' threads (natural back-pressure: a sender waits while its
/// partition's previous batch is written). With `linger` zero there is no thread and every
/// `send_batched` appends before it returns.
///
/// # Closing
///
/// [`close`](Self::close) (or drop) appends every accepted record before returning: nothing
/// accepted is dropped. Close producers before their store; once the store is closed,
/// appends fail with [`Error::Closed`] and waiting handles receive that error.
pub struct Producer {
    shared: Arc<Shared>,
    linger_thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("config", &self.shared.config)
            .field("closed", &self.shared.closed.load(Ordering::Acquire))
            .finish_non_exhaustive()
    }
}

struct Shared {
    store: StoreHandle,
    config: ProducerConfig,
    /// The current entry of each topic this producer has sent to.
    topics: RwLock<NameMap<Arc<TopicEntry>>>,
    /// Entries replaced after their topic was deleted: still flushed, so that records they
    /// accepted get a result (the error of their closed partition). Dropped once drained
    /// (see [`Shared::prune_deleted`]), so delete-and-recreate cycles do not accumulate them.
    retired: Mutex<Vec<Arc<TopicEntry>>>,
    closed: AtomicBool,
    timer: Mutex<TimerState>,
    timer_cond: Condvar,
}

/// What the linger timer is doing, so that senders wake it only when they must.
#[derive(Default)]
struct TimerState {
    /// Bumped when a buffer gets its first record while the timer is scanning: it rescans.
    epoch: u64,
    /// The timer is between reading `epoch` and going to sleep.
    scanning: bool,
    /// The timer sleeps until then (`None`: until notified).
    sleeping_until: Option<Instant>,
    stopped: bool,
}

struct TopicEntry {
    topic: Arc<Topic>,
    name: Arc<str>,
    /// Indexed by partition number; created on first batched send.
    buffers: RwLock<Vec<Option<Arc<PartitionBuffer>>>>,
}

struct PartitionBuffer {
    topic: Arc<str>,
    partition_index: u32,
    /// The partition (of a replicated topic, the leader when the buffer was made): its
    /// configuration's limits.
    partition: Arc<Partition>,
    /// Where batches are appended, with `acks`.
    copies: Arc<Copies>,
    acks: Acks,
    /// `batch_bytes`, capped by the partition's `batch_bytes_max`.
    batch_bytes: usize,
    state: Mutex<BufState>,
    /// Held across the append of a cut batch; see "Locks" at the top of this file.
    order: Mutex<()>,
    /// Batches cut but not yet appended.
    in_flight: AtomicUsize,
}

#[derive(Default)]
struct BufState {
    records: Vec<Record>,
    bytes: usize,
    slot: Option<Arc<BatchSlot>>,
    /// When the open batch is due (its first record's arrival plus `linger`).
    deadline: Option<Instant>,
}

/// A batch cut from a buffer, waiting to be appended.
struct Cut {
    records: Vec<Record>,
    slot: Arc<BatchSlot>,
}

/// Where the outcome of one batch is published to its handles: the base offset, or the
/// append's error shared by every record of the batch.
struct BatchSlot {
    topic: Arc<str>,
    partition: u32,
    result: Mutex<Option<Result<Offset, Arc<Error>>>>,
    done: Condvar,
}

impl BatchSlot {
    fn complete(&self, result: Result<Offset, Arc<Error>>) {
        *self.result.lock() = Some(result);
        self.done.notify_all();
    }
}

/// The pending result of one [`Producer::send_batched`]: resolves once the record's batch
/// has been appended (or has failed).
pub struct SendHandle {
    /// Shared by the batch's handles; holds the topic and partition too.
    slot: Arc<BatchSlot>,
    /// Position of the record within its batch.
    index: u32,
}

impl std::fmt::Debug for SendHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendHandle")
            .field("topic", &self.topic())
            .field("partition", &self.partition())
            .field("ready", &self.is_ready())
            .finish_non_exhaustive()
    }
}

impl SendHandle {
    /// Block until the record's batch is appended; returns the partition and the record's
    /// offset. If the append failed, every handle of the batch gets
    /// [`Error::SendFailed`] wrapping the same error. Waits at most about `linger` unless a
    /// flush or an earlier batch of the partition is slow; may be called more than once.
    pub fn wait(&self) -> Result<(u32, Offset)> {
        let mut result = self.slot.result.lock();
        while result.is_none() {
            self.slot.done.wait(&mut result);
        }
        match result.as_ref().expect("checked above") {
            Ok(base) => Ok((self.slot.partition, base.plus(u64::from(self.index)))),
            Err(e) => Err(Error::SendFailed {
                topic: self.slot.topic.to_string(),
                partition: self.slot.partition,
                source: e.clone(),
            }),
        }
    }

    /// True once [`wait`](Self::wait) would return without blocking.
    pub fn is_ready(&self) -> bool {
        self.slot.result.lock().is_some()
    }

    /// The topic the record was sent to.
    pub fn topic(&self) -> &str {
        &self.slot.topic
    }

    /// The partition the record was routed to.
    pub fn partition(&self) -> u32 {
        self.slot.partition
    }
}

impl Producer {
    /// A producer for the topics of `store`. Starts the linger timer thread if
    /// `config.linger` is positive. [`Error::StoreClosed`] if the store is closed.
    pub fn new(store: &LogStore, config: ProducerConfig) -> Result<Producer> {
        config.validate()?;
        let handle = store.handle();
        handle.check_open()?;
        let shared = Arc::new(Shared {
            store: handle,
            config,
            topics: RwLock::new(NameMap::default()),
            retired: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
            timer: Mutex::new(TimerState::default()),
            timer_cond: Condvar::new(),
        });
        let linger_thread = if shared.config.linger.is_zero() {
            None
        } else {
            let thread_shared = shared.clone();
            let handle = std::thread::Builder::new()
                .name("seglog-producer-linger".into())
                .spawn(move || linger_loop(&thread_shared))
                .at(store.data_dir())?;
            Some(handle)
        };
        Ok(Producer {
            shared,
            linger_thread: Mutex::new(linger_thread),
        })
    }

    /// The configuration the producer was created with.
    pub fn config(&self) -> &ProducerConfig {
        &self.shared.config
    }

    /// Route `record` with the topic's partitioner and append it as a batch of its own.
    /// Returns the partition and offset once the append returned (durable as the topic's
    /// [`Durability`](crate::Durability) says).
    pub fn send(&self, topic: &str, record: Record) -> Result<(u32, Offset)> {
        self.shared.check_open()?;
        let entry = self.shared.entry(topic)?;
        let partition = entry.topic.partition_for(&record)?;
        let offset = Shared::send_sync(&entry, partition, &record, self.shared.config.acks)?;
        Ok((partition, offset))
    }

    /// Append `record` to partition `partition` of `topic` (the partitioner is not asked) as
    /// a batch of its own. [`Error::PartitionOutOfRange`] if the topic has no such partition.
    pub fn send_to(&self, topic: &str, partition: u32, record: Record) -> Result<Offset> {
        self.shared.check_open()?;
        let entry = self.shared.entry(topic)?;
        entry.topic.partition(partition)?;
        Shared::send_sync(&entry, partition, &record, self.shared.config.acks)
    }

    /// Route `record` with the topic's partitioner and add it to that partition's open
    /// batch. Errors known at once (unknown topic, a partition out of range, a record over
    /// the partition's `record_bytes_max`, a closed producer) are returned here; the
    /// append's outcome arrives through the handle.
    pub fn send_batched(&self, topic: &str, record: Record) -> Result<SendHandle> {
        self.shared.check_open()?;
        let entry = self.shared.entry(topic)?;
        let partition = entry.topic.partition_for(&record)?;
        self.shared.enqueue(&entry, partition, record)
    }

    /// [`send_batched`](Self::send_batched) to an explicit partition.
    pub fn send_batched_to(
        &self,
        topic: &str,
        partition: u32,
        record: Record,
    ) -> Result<SendHandle> {
        self.shared.check_open()?;
        let entry = self.shared.entry(topic)?;
        entry.topic.partition(partition)?;
        self.shared.enqueue(&entry, partition, record)
    }

    /// Append every open batch now and wait for batches already being appended. When this
    /// returns, every record accepted before the call has its result. Returns the first
    /// error of the batches this call appended ([`Error::SendFailed`]); their handles carry
    /// it too.
    pub fn flush(&self) -> Result<()> {
        self.shared.flush()
    }

    /// Refuse further sends ([`Error::ProducerClosed`]), stop the linger timer, and flush:
    /// every accepted record is appended (or its handle gets the error) before this returns.
    /// Returns the flush's result. Dropping the producer does the same, ignoring errors.
    pub fn close(&self) -> Result<()> {
        self.shared.closed.store(true, Ordering::SeqCst);
        if let Some(handle) = self.linger_thread.lock().take() {
            self.shared.timer.lock().stopped = true;
            self.shared.timer_cond.notify_all();
            let _ = handle.join();
        }
        self.shared.flush()
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

fn linger_loop(shared: &Shared) {
    loop {
        let seen = {
            let mut t = shared.timer.lock();
            if t.stopped {
                return;
            }
            t.scanning = true;
            t.sleeping_until = None;
            t.epoch
        };
        let next = shared.flush_due(Instant::now());
        let mut t = shared.timer.lock();
        if t.stopped {
            return;
        }
        if t.epoch != seen {
            // A buffer got its first record during the scan: its deadline may be earlier.
            continue;
        }
        t.scanning = false;
        t.sleeping_until = next;
        match next {
            Some(deadline) => {
                shared.timer_cond.wait_until(&mut t, deadline);
            }
            None => shared.timer_cond.wait(&mut t),
        }
    }
}

/// Estimated encoded size of `record`: its payload plus the largest varint overhead the
/// record format can add (length, attributes, timestamp and offset deltas, key and value
/// lengths, header count: 36 bytes; 10 more per header).
fn record_size(record: &Record) -> (usize, usize) {
    let headers: usize = record
        .headers
        .iter()
        .map(|h| h.key.len() + h.value.as_ref().map_or(0, bytes::Bytes::len))
        .sum();
    let payload = record.key.as_ref().map_or(0, bytes::Bytes::len)
        + record.value.as_ref().map_or(0, bytes::Bytes::len)
        + headers;
    (payload, payload + 36 + 10 * record.headers.len())
}

impl Shared {
    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::ProducerClosed);
        }
        Ok(())
    }

    /// The entry of topic `name`, refreshed from the store if its topic was deleted.
    fn entry(&self, name: &str) -> Result<Arc<TopicEntry>> {
        if let Some(e) = self.topics.read().get(name) {
            if !e.topic.is_deleted() {
                return Ok(e.clone());
            }
        }
        let topic = self.store.topic(name)?;
        let mut topics = self.topics.write();
        if let Some(e) = topics.get(name) {
            if !e.topic.is_deleted() {
                return Ok(e.clone());
            }
        }
        let entry = Arc::new(TopicEntry {
            name: Arc::from(name),
            topic,
            buffers: RwLock::new(Vec::new()),
        });
        if let Some(old) = topics.insert(name.to_owned(), entry.clone()) {
            self.retired.lock().push(old);
        }
        drop(topics);
        self.prune_deleted();
        Ok(entry)
    }

    /// Forget the entries of deleted topics whose buffers are drained: no open batch and no
    /// batch being appended. A deleted topic's buffers accept no record (`enqueue` checks
    /// under the buffer lock), so a drained entry stays drained and nothing needs it: a later
    /// send to the name looks the topic up again. Called on every lookup miss and flush.
    fn prune_deleted(&self) {
        self.retired.lock().retain(|e| !e.drained());
        let stale = |e: &Arc<TopicEntry>| e.topic.is_deleted() && e.drained();
        if self.topics.read().values().any(stale) {
            self.topics.write().retain(|_, e| !stale(e));
        }
    }

    /// Topic entries held, current and retired (unit tests: memory stays bounded).
    #[cfg(test)]
    fn entry_count(&self) -> usize {
        self.topics.read().len() + self.retired.lock().len()
    }

    fn buffer(&self, entry: &TopicEntry, partition: u32) -> Result<Arc<PartitionBuffer>> {
        let i = partition as usize;
        if let Some(Some(b)) = entry.buffers.read().get(i) {
            return Ok(b.clone());
        }
        let copies = entry.topic.copies(partition)?;
        let p = copies.leader()?;
        let mut buffers = entry.buffers.write();
        if buffers.len() <= i {
            buffers.resize(i + 1, None);
        }
        let batch_bytes = self
            .config
            .batch_bytes
            .min(
                p.effective_config()
                    .batch_bytes_max
                    .saturating_sub(BATCH_HEADER_LEN),
            )
            .max(1);
        let b = buffers[i].get_or_insert_with(|| {
            Arc::new(PartitionBuffer {
                topic: entry.name.clone(),
                partition_index: partition,
                partition: p,
                copies,
                acks: self.config.acks,
                batch_bytes,
                state: Mutex::new(BufState::default()),
                order: Mutex::new(()),
                in_flight: AtomicUsize::new(0),
            })
        });
        Ok(b.clone())
    }

    /// The buffer of `partition` if one exists.
    fn existing_buffer(entry: &TopicEntry, partition: u32) -> Option<Arc<PartitionBuffer>> {
        entry
            .buffers
            .read()
            .get(partition as usize)
            .and_then(Option::clone)
    }

    fn send_sync(
        entry: &TopicEntry,
        partition: u32,
        record: &Record,
        acks: Acks,
    ) -> Result<Offset> {
        if entry.topic.is_deleted() {
            return Err(Error::UnknownTopic {
                topic: entry.name.to_string(),
            });
        }
        if let Some(buf) = Self::existing_buffer(entry, partition) {
            let mut state = buf.state.lock();
            if !state.records.is_empty() || buf.in_flight.load(Ordering::Acquire) > 0 {
                // Earlier batched records of this partition go first.
                let cut = buf.cut(&mut state);
                let order = buf.order.lock();
                drop(state);
                if let Some(cut) = cut {
                    // Its outcome reaches its handles.
                    let _ = buf.append_cut(cut);
                }
                let info = buf.copies.append(slice::from_ref(record), buf.acks);
                drop(order);
                return Ok(info?.base_offset);
            }
        }
        let info = entry
            .topic
            .copies(partition)?
            .append(slice::from_ref(record), acks)?;
        Ok(info.base_offset)
    }

    fn enqueue(&self, entry: &TopicEntry, partition: u32, record: Record) -> Result<SendHandle> {
        let buf = self.buffer(entry, partition)?;
        let (payload, size) = record_size(&record);
        let limit = buf.partition.effective_config().record_bytes_max;
        if payload > limit {
            return Err(Error::RecordTooLarge {
                size: payload,
                limit,
            });
        }
        let mut state = buf.state.lock();
        // Checked under the buffer lock: a record accepted here is seen by close's flush.
        if self.closed.load(Ordering::SeqCst) {
            return Err(Error::ProducerClosed);
        }
        if entry.topic.is_deleted() {
            return Err(Error::UnknownTopic {
                topic: entry.name.to_string(),
            });
        }
        let mut cuts: [Option<Cut>; 2] = [None, None];
        if !state.records.is_empty() && state.bytes + size > buf.batch_bytes {
            cuts[0] = buf.cut(&mut state);
        }
        let first = state.records.is_empty();
        let index = u32::try_from(state.records.len()).expect("bounded by batch_bytes");
        let slot = state
            .slot
            .get_or_insert_with(|| {
                Arc::new(BatchSlot {
                    topic: buf.topic.clone(),
                    partition,
                    result: Mutex::new(None),
                    done: Condvar::new(),
                })
            })
            .clone();
        state.records.push(record);
        state.bytes += size;
        let linger = self.config.linger;
        if state.bytes >= buf.batch_bytes || linger.is_zero() {
            cuts[1] = buf.cut(&mut state);
        } else if first {
            state.deadline = Some(Instant::now() + linger);
        }
        let handle = SendHandle { slot, index };
        if cuts.iter().any(Option::is_some) {
            let order = buf.order.lock();
            drop(state);
            for cut in cuts.into_iter().flatten() {
                // Failures reach the handles of the batch, this record's included.
                let _ = buf.append_cut(cut);
            }
            drop(order);
        } else {
            let deadline = state.deadline;
            drop(state);
            if let (true, Some(deadline)) = (first, deadline) {
                self.wake_timer_for(deadline);
            }
        }
        Ok(handle)
    }

    /// Make sure the linger timer looks at a batch due at `deadline`. Deadlines only grow
    /// (`now + linger`), so under steady load the timer already sleeps until an earlier one
    /// and nothing needs waking: the common case costs one uncontended lock.
    fn wake_timer_for(&self, deadline: Instant) {
        let mut t = self.timer.lock();
        if t.scanning {
            t.epoch += 1;
        } else if t.sleeping_until.is_none_or(|until| until > deadline) {
            t.epoch += 1;
            self.timer_cond.notify_one();
        }
    }

    /// Every partition buffer, current topics and retired ones.
    fn all_buffers(&self) -> Vec<Arc<PartitionBuffer>> {
        let mut out = Vec::new();
        let mut collect = |e: &TopicEntry| {
            out.extend(e.buffers.read().iter().flatten().cloned());
        };
        for e in self.topics.read().values() {
            collect(e);
        }
        for e in self.retired.lock().iter() {
            collect(e);
        }
        out
    }

    /// Append the batches due at `now`; returns the earliest deadline still pending.
    fn flush_due(&self, now: Instant) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        for buf in self.all_buffers() {
            let mut state = buf.state.lock();
            match state.deadline {
                Some(d) if d <= now => {
                    let cut = buf.cut(&mut state);
                    let _ = buf.append_in_order(state, cut);
                }
                Some(d) => next = Some(next.map_or(d, |n| n.min(d))),
                None => {}
            }
        }
        next
    }

    fn flush(&self) -> Result<()> {
        let mut first_error = None;
        for buf in self.all_buffers() {
            let mut state = buf.state.lock();
            let cut = buf.cut(&mut state);
            if let Err(e) = buf.append_in_order(state, cut) {
                first_error.get_or_insert(Error::SendFailed {
                    topic: buf.topic.to_string(),
                    partition: buf.partition_index,
                    source: e,
                });
            }
        }
        self.prune_deleted();
        first_error.map_or(Ok(()), Err)
    }
}

impl TopicEntry {
    /// No buffer holds an open batch or a batch being appended.
    fn drained(&self) -> bool {
        self.buffers.read().iter().flatten().all(|b| {
            let state = b.state.lock();
            state.records.is_empty() && b.in_flight.load(Ordering::Acquire) == 0
        })
    }
}

impl PartitionBuffer {
    /// Take the open batch, if any, counting it in flight. Caller holds `state`.
    fn cut(&self, state: &mut BufState) -> Option<Cut> {
        if state.records.is_empty() {
            return None;
        }
        // The next batch will likely be as long as this one: one allocation, no regrowth.
        let capacity = state.records.len();
        let records = std::mem::replace(&mut state.records, Vec::with_capacity(capacity));
        state.bytes = 0;
        state.deadline = None;
        let slot = state.slot.take().expect("an open batch has a slot");
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        Some(Cut { records, slot })
    }

    /// Append `cut` after every batch cut before it, then release `state` (taken when the
    /// batch was cut). With `cut` `None` this only waits for batches already in flight.
    fn append_in_order(
        &self,
        state: MutexGuard<'_, BufState>,
        cut: Option<Cut>,
    ) -> Result<(), Arc<Error>> {
        let order = self.order.lock();
        drop(state);
        let result = cut.map_or(Ok(()), |c| self.append_cut(c));
        drop(order);
        result
    }

    /// Append a cut batch and publish the outcome to its handles. Caller holds `order`.
    fn append_cut(&self, cut: Cut) -> Result<(), Arc<Error>> {
        let result = match self.copies.append(&cut.records, self.acks) {
            Ok(info) => Ok(info.base_offset),
            Err(e) => Err(Arc::new(e)),
        };
        cut.slot.complete(result.clone());
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        result.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn producer_and_handles_are_send_and_sync() {
        assert_send_sync::<Producer>();
        assert_send_sync::<SendHandle>();
    }

    /// Issue 9, bug 8: a producer kept an entry for every deleted topic it had sent to, so
    /// memory grew with each delete and recreate.
    #[test]
    fn deleted_topics_do_not_accumulate_entries() {
        use crate::topic::handle::TopicConfig;
        use crate::topic::store::StoreConfig;
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig::default().with_maintenance_interval(None);
        let store = LogStore::open(dir.path(), config).unwrap();
        let linger = ProducerConfig::default().with_linger(Duration::from_secs(3600));
        for producer_config in [ProducerConfig::default(), linger] {
            let producer = Producer::new(&store, producer_config).unwrap();
            for i in 0..20 {
                // The same name recreated, and a new name each time.
                for name in ["again".to_owned(), format!("once-{i}")] {
                    store.create_topic(&name, TopicConfig::new(2)).unwrap();
                    producer.send_to(&name, 0, Record::new("sync")).unwrap();
                    let handle = producer
                        .send_batched_to(&name, 1, Record::new("batched"))
                        .unwrap();
                    if i % 2 == 0 {
                        // Fails for the open batches a previous round's deletion left.
                        let _ = producer.flush();
                        assert_eq!(handle.wait().unwrap().1, Offset(0));
                    }
                    // Odd rounds delete with a batch still open: it is kept until flushed
                    // (and then fails), so its handle gets a result.
                    store.delete_topic(&name).unwrap();
                }
                let held = producer.shared.entry_count();
                assert!(
                    held <= 4,
                    "{held} topic entries held after {} cycles",
                    i + 1
                );
            }
            let _ = producer.flush();
            assert_eq!(producer.shared.entry_count(), 0);
        }
    }

    #[test]
    fn config_validation() {
        ProducerConfig::default().validate().unwrap();
        for bad in [
            ProducerConfig::default().with_batch_bytes(0),
            ProducerConfig::default().with_batch_bytes(BATCH_BYTES_LIMIT + 1),
            ProducerConfig::default().with_linger(LINGER_MAX + Duration::from_secs(1)),
        ] {
            assert!(matches!(bad.validate(), Err(Error::InvalidConfig { .. })));
        }
    }
}
