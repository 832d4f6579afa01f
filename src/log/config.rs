//! Partition configuration: documented defaults, validated in [`Partition::open`](crate::Partition::open).

use std::time::Duration;

use crate::error::{Error, Result};
use crate::format::batch::TimestampType;
use crate::format::compression::Compression;
use crate::io::fs::Fs;

/// When an acknowledged append is on disk.
///
/// Every policy makes an appended batch visible to readers of this process as soon as it is
/// written (for [`Durability::SyncEachAppend`], as soon as it is synced); they differ in what a
/// crash of the machine (power loss) may take away. A crash of the *process* loses nothing
/// that `append` acknowledged under any policy: written data lives in the OS page cache.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// Never fsync on append; the OS writes back when it likes (Kafka's default).
    /// When `append` returns, the batch is in the OS page cache, not necessarily on disk.
    /// [`Partition::flush`](crate::Partition::flush) and a clean close make it durable.
    ///
    /// Resources are bounded as under the other policies: a rolled segment's files close like
    /// any sealed segment's once more than
    /// [`open_segments_max`](PartitionConfig::open_segments_max) are open, without waiting for
    /// an fsync (a later `flush` or `close` reopens them to fsync), and the files of segments
    /// retention deletes are closed at once, so their disk space is freed.
    NoSync,
    /// When `append` returns, the batch and everything before it is on disk (`fdatasync`).
    /// The high watermark only covers synced batches: readers never see a batch a power loss
    /// could take back.
    ///
    /// Concurrent appenders share fsyncs (group commit). An append that finds no fsync running
    /// fsyncs everything written so far, for itself and everyone who wrote before it; one
    /// that finds an fsync running queues behind it, and the next fsync covers everyone who
    /// wrote meanwhile. Each appender returns when an fsync that started after its write
    /// succeeds. A failed fsync fails every append it was to cover (one gets the I/O error,
    /// the others [`Error::PreviousIoFailed`](crate::Error::PreviousIoFailed)), and the
    /// partition then refuses appends until reopened. With several appenders, the thread
    /// about to fsync may first wait for those the previous fsync released, at most as long as
    /// that fsync took (and 2 ms), so that one fsync covers them all. It waits for as many
    /// batches as the previous fsync covered: a lone appender of one batch at a time never
    /// waits, but one whose appends alternate between several batches and fewer (follower
    /// `append_batches`, multi-batch `append_encoded`) may wait once for batches that do not
    /// come.
    SyncEachAppend,
    /// fsync once the unsynced data reaches any of the thresholds (`None` = no threshold).
    /// When `append` returns, everything except at most the last `records - 1` records,
    /// `bytes - 1` bytes or `interval` of appends is on disk. Checked on every append and by
    /// [`Partition::flush_if_due`](crate::Partition::flush_if_due); no background thread is
    /// needed, but the interval is only enforced when one of them runs.
    SyncThreshold {
        /// Sync once this many records are unsynced.
        records: Option<u64>,
        /// Sync once this many bytes are unsynced.
        bytes: Option<u64>,
        /// Sync once the oldest unsynced append is this old.
        interval: Option<Duration>,
    },
}

/// What cleanup removes old records: deletion by retention, keyed compaction, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CleanupPolicy {
    /// Retention deletes whole segments by age and size (Kafka's `delete`).
    #[default]
    Delete,
    /// Compaction keeps at least the newest record of every key; every record needs a key,
    /// and age/size retention is off (Kafka's `compact`).
    Compact,
    /// Both: compaction, and retention by age and size.
    CompactAndDelete,
}

impl CleanupPolicy {
    /// True for the policies that compact.
    pub fn compacts(self) -> bool {
        matches!(
            self,
            CleanupPolicy::Compact | CleanupPolicy::CompactAndDelete
        )
    }

    /// True for the policies that delete by age and size.
    pub fn deletes(self) -> bool {
        matches!(
            self,
            CleanupPolicy::Delete | CleanupPolicy::CompactAndDelete
        )
    }
}

/// Settings of keyed compaction; see [`Partition::compact`](crate::Partition::compact).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CompactionConfig {
    /// Tombstones (records without a value) are removed once their timestamp is this old and
    /// compaction has removed every older value of their key. Default 1 day.
    pub delete_retention_ms: u64,
    /// Segments holding a record younger than this are not compacted yet. Default 0.
    pub min_compaction_lag_ms: u64,
    /// Compact only when at least this share of the cleanable log has never been compacted
    /// (`dirty / (clean + dirty)`). Default 0.5; between 0 and 1.
    pub min_cleanable_dirty_ratio: f64,
    /// Memory budget of the key → newest-offset map, in bytes (key bytes plus a fixed
    /// overhead per key). A dirty section with more keys is compacted in several passes.
    /// Default 64 MiB; at least 1 KiB.
    pub map_bytes_max: usize,
}

impl Default for CompactionConfig {
    fn default() -> Self {
        CompactionConfig {
            delete_retention_ms: DAY_MS,
            min_compaction_lag_ms: 0,
            min_cleanable_dirty_ratio: 0.5,
            map_bytes_max: 64 << 20,
        }
    }
}

impl CompactionConfig {
    /// Sets `delete_retention_ms`.
    pub fn with_delete_retention_ms(mut self, v: u64) -> Self {
        self.delete_retention_ms = v;
        self
    }
    /// Sets `min_compaction_lag_ms`.
    pub fn with_min_compaction_lag_ms(mut self, v: u64) -> Self {
        self.min_compaction_lag_ms = v;
        self
    }
    /// Sets `min_cleanable_dirty_ratio`.
    pub fn with_min_cleanable_dirty_ratio(mut self, v: f64) -> Self {
        self.min_cleanable_dirty_ratio = v;
        self
    }
    /// Sets `map_bytes_max`.
    pub fn with_map_bytes_max(mut self, v: usize) -> Self {
        self.map_bytes_max = v;
        self
    }
}

/// Configuration of one partition. Build it from [`PartitionConfig::default`] and the
/// `with_*` methods; [`Partition::open`](crate::Partition::open) validates it.
#[derive(Clone)]
#[non_exhaustive]
pub struct PartitionConfig {
    /// Roll to a new segment before the active one would exceed this size. A batch larger
    /// than this gets a segment of its own. Default 1 GiB; between 1 KiB and 2 GiB.
    pub segment_bytes: u64,
    /// Roll when the incoming batch's newest timestamp is this many milliseconds past the
    /// active segment's first timestamp. Default 7 days; `None` disables.
    pub segment_ms: Option<u64>,
    /// Add an offset-index entry after about this many bytes of log. Default 4096.
    pub index_interval_bytes: u32,
    /// Preallocated size of each index file; a full index rolls the segment.
    /// Default 10 MiB; at least 64 bytes.
    pub index_bytes_max: u32,
    /// Largest record (key + value + headers). Default 1 MiB.
    pub record_bytes_max: usize,
    /// Largest encoded batch. Default 8 MiB; at most 64 MiB.
    pub batch_bytes_max: usize,
    /// When appended data reaches the disk. Default [`Durability::SyncEachAppend`].
    pub durability: Durability,
    /// Under a policy that fsyncs, zero-fill the active segment's file this far ahead of the
    /// write position, so that an fsync after an append writes data only, not a file-size
    /// change (about twice as fast on ext4). The zeros are trimmed when the segment is sealed
    /// or closed and ignored by recovery. `NoSync` never preallocates: zero-filling is a second
    /// write of every byte. Default 4 MiB; 0 disables.
    pub preallocate_bytes: u64,
    /// Delete sealed segments whose newest record is older than this; when every record of
    /// the log is (the active segment's too, all below the high watermark), the active
    /// segment is rolled and deleted as well, as Kafka does. Default 7 days; `None` keeps data
    /// forever.
    pub retention_ms: Option<u64>,
    /// Delete the oldest sealed segments while the log is larger than this. Default `None`.
    pub retention_bytes: Option<u64>,
    /// Delete by retention, compact by key, or both. Default [`CleanupPolicy::Delete`].
    pub cleanup_policy: CleanupPolicy,
    /// Compaction settings, used when the policy compacts.
    pub compaction: CompactionConfig,
    /// How many sealed segments keep their files open (one descriptor and three maps each);
    /// the least recently loaded are closed beyond this and reopened on demand. Under every
    /// durability policy, segments just rolled count too: one that is not yet fsynced is
    /// closed like any other and reopened by the next fsync (`flush`, `close`, a
    /// `SyncThreshold` sync). Segments deleted by retention are closed at once and do not
    /// count. Default 128; at least 1.
    pub open_segments_max: usize,
    /// On open, truncate at corruption found below the recovery point instead of failing
    /// with [`Error::CorruptBelowRecoveryPoint`]. Default `false`.
    pub truncate_corrupt: bool,
    /// The codec appends compress each batch's records with (Kafka's `compression.type`;
    /// producers writing to the partition use it too). Default [`Compression::None`].
    pub compression: Compression,
    /// Which time record timestamps carry (Kafka's `message.timestamp.type`): under
    /// [`TimestampType::LogAppendTime`] each append stamps its batch's `maxTimestamp` with
    /// the current time and every record reads back with it. Default
    /// [`TimestampType::CreateTime`].
    pub timestamp_type: TimestampType,
    /// The high watermark is set from outside, by a replicator
    /// ([`Partition::set_high_watermark`](crate::Partition::set_high_watermark)), instead of
    /// following appends and fsyncs. Readers (consumers) see only records below it; followers
    /// fetch up to the log end ([`Partition::read_uncommitted`](crate::Partition::read_uncommitted)).
    /// It is persisted as `high-watermark.checkpoint` at close and by
    /// [`Partition::checkpoint_high_watermark`](crate::Partition::checkpoint_high_watermark),
    /// and restored (never above the log end) at open. Default `false`: a single copy, whose
    /// high watermark is its own log end (or durable end under `SyncEachAppend`). Not persisted
    /// in `topics.meta`: the replication layer sets it.
    pub high_watermark_external: bool,
    /// Whether gaps no batch witness confirms are trusted: only while `Partition::open` runs
    /// the first open of a directory seglog has not witnessed (Kafka's; see `log::witness`);
    /// false once the partition is open. Never persisted.
    pub(crate) offset_gaps: bool,
    /// The file system the partition's files live on: the real one unless a test installed
    /// a simulated one (`with_file_system`, feature `testing`).
    pub(crate) fs: Fs,
}

const DAY_MS: u64 = 24 * 60 * 60 * 1000;

impl Default for PartitionConfig {
    fn default() -> Self {
        PartitionConfig {
            segment_bytes: 1 << 30,
            segment_ms: Some(7 * DAY_MS),
            index_interval_bytes: 4096,
            index_bytes_max: 10 << 20,
            record_bytes_max: 1 << 20,
            batch_bytes_max: 8 << 20,
            durability: Durability::SyncEachAppend,
            preallocate_bytes: 4 << 20,
            retention_ms: Some(7 * DAY_MS),
            retention_bytes: None,
            cleanup_policy: CleanupPolicy::Delete,
            compaction: CompactionConfig::default(),
            open_segments_max: 128,
            truncate_corrupt: false,
            compression: Compression::None,
            timestamp_type: TimestampType::CreateTime,
            high_watermark_external: false,
            offset_gaps: false,
            fs: Fs::Std,
        }
    }
}

impl std::fmt::Debug for PartitionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("PartitionConfig");
        self.for_each_field(|name, value| {
            d.field(name, &value);
        });
        d.finish_non_exhaustive()
    }
}

/// Declares the persisted fields of [`PartitionConfig`] once, and generates from that list
/// [`PartitionConfig::for_each_field`] (used by `Debug` and by the `topics.meta` encoder) and
/// [`PartitionConfig::set_field`] (used by the decoder).
macro_rules! persisted_fields {
    ($($name:literal => $($place:ident).+;)+) => {
        impl PartitionConfig {
            /// Call `f` with the name and value of every persisted field, in `topics.meta`
            /// order. Fields that are not persisted (test seams) are not visited.
            pub(crate) fn for_each_field(&self, mut f: impl FnMut(&'static str, &dyn FieldCodec)) {
                $(f($name, &self.$($place).+);)+
            }

            /// Set the persisted field called `name` from its text. Errors: `"unknown key"`,
            /// or the value's parse error.
            pub(crate) fn set_field(&mut self, name: &str, text: &str) -> Result<(), &'static str> {
                match name {
                    $($name => self.$($place).+ = FieldCodec::decode(text)?,)+
                    _ => return Err("unknown key"),
                }
                Ok(())
            }
        }
    };
}

// The one list of persisted fields: name (in `topics.meta` and `Debug`) => place in the
// struct. A new persisted field is one line here (and a `FieldCodec` impl for a new type).
// The names, order and value formats are on-disk format (docs/format.md, "Topic metadata"):
// never rename, reorder or re-encode a field; add new ones at the end.
persisted_fields! {
    "segment_bytes" => segment_bytes;
    "segment_ms" => segment_ms;
    "index_interval_bytes" => index_interval_bytes;
    "index_bytes_max" => index_bytes_max;
    "record_bytes_max" => record_bytes_max;
    "batch_bytes_max" => batch_bytes_max;
    "durability" => durability;
    "preallocate_bytes" => preallocate_bytes;
    "retention_ms" => retention_ms;
    "retention_bytes" => retention_bytes;
    "cleanup_policy" => cleanup_policy;
    "delete_retention_ms" => compaction.delete_retention_ms;
    "min_compaction_lag_ms" => compaction.min_compaction_lag_ms;
    "min_cleanable_dirty_ratio" => compaction.min_cleanable_dirty_ratio;
    "map_bytes_max" => compaction.map_bytes_max;
    "open_segments_max" => open_segments_max;
    "truncate_corrupt" => truncate_corrupt;
    "compression" => compression;
    "timestamp_type" => timestamp_type;
}

/// `none`, `gzip`, `snappy`, `lz4` or `zstd` (Kafka's names).
impl FieldCodec for Compression {
    fn encode(&self, out: &mut String) {
        out.push_str(match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        });
    }
    fn decode(text: &str) -> Result<Self, &'static str> {
        match text {
            "none" => Ok(Compression::None),
            "gzip" => Ok(Compression::Gzip),
            "snappy" => Ok(Compression::Snappy),
            "lz4" => Ok(Compression::Lz4),
            "zstd" => Ok(Compression::Zstd),
            _ => Err("unknown compression"),
        }
    }
}

/// `create_time` or `log_append_time`.
impl FieldCodec for TimestampType {
    fn encode(&self, out: &mut String) {
        out.push_str(match self {
            TimestampType::CreateTime => "create_time",
            TimestampType::LogAppendTime => "log_append_time",
        });
    }
    fn decode(text: &str) -> Result<Self, &'static str> {
        match text {
            "create_time" => Ok(TimestampType::CreateTime),
            "log_append_time" => Ok(TimestampType::LogAppendTime),
            _ => Err("unknown timestamp type"),
        }
    }
}

/// The text form of a persisted [`PartitionConfig`] field's value in `topics.meta`: one
/// word without spaces or `=`. Decoding what `encode` wrote gives the value back.
pub(crate) trait FieldCodec: std::fmt::Debug {
    /// Append the value's text to `out`.
    fn encode(&self, out: &mut String);
    /// Parse a value's text; the error is a short reason.
    fn decode(text: &str) -> Result<Self, &'static str>
    where
        Self: Sized;
}

/// Integers and booleans: their `Display` text.
macro_rules! display_codec {
    ($($t:ty => $err:literal),+) => {$(
        impl FieldCodec for $t {
            fn encode(&self, out: &mut String) {
                out.push_str(&self.to_string());
            }
            fn decode(text: &str) -> Result<Self, &'static str> {
                text.parse().map_err(|_| $err)
            }
        }
    )+};
}

// `Display` of an f64 is the shortest text that parses back to the same value.
display_codec!(u32 => "bad number", u64 => "bad number", usize => "bad number",
    f64 => "bad number", bool => "bad boolean");

/// `none`, or the number.
impl FieldCodec for Option<u64> {
    fn encode(&self, out: &mut String) {
        match self {
            Some(v) => v.encode(out),
            None => out.push_str("none"),
        }
    }
    fn decode(text: &str) -> Result<Self, &'static str> {
        match text {
            "none" => Ok(None),
            v => u64::decode(v).map(Some),
        }
    }
}

/// `delete`, `compact` or `compact_delete`.
impl FieldCodec for CleanupPolicy {
    fn encode(&self, out: &mut String) {
        out.push_str(match self {
            CleanupPolicy::Delete => "delete",
            CleanupPolicy::Compact => "compact",
            CleanupPolicy::CompactAndDelete => "compact_delete",
        });
    }
    fn decode(text: &str) -> Result<Self, &'static str> {
        match text {
            "delete" => Ok(CleanupPolicy::Delete),
            "compact" => Ok(CleanupPolicy::Compact),
            "compact_delete" => Ok(CleanupPolicy::CompactAndDelete),
            _ => Err("unknown cleanup policy"),
        }
    }
}

/// `no_sync`, `sync_each_append`, or `sync_threshold:<records>:<bytes>:<interval ns>`, each
/// threshold a number or `none`.
impl FieldCodec for Durability {
    fn encode(&self, out: &mut String) {
        match self {
            Durability::NoSync => out.push_str("no_sync"),
            Durability::SyncEachAppend => out.push_str("sync_each_append"),
            Durability::SyncThreshold {
                records,
                bytes,
                interval,
            } => {
                let nanos = interval.map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
                out.push_str("sync_threshold:");
                records.encode(out);
                out.push(':');
                bytes.encode(out);
                out.push(':');
                nanos.encode(out);
            }
        }
    }
    fn decode(text: &str) -> Result<Self, &'static str> {
        match text {
            "no_sync" => return Ok(Durability::NoSync),
            "sync_each_append" => return Ok(Durability::SyncEachAppend),
            _ => {}
        }
        let rest = text
            .strip_prefix("sync_threshold:")
            .ok_or("unknown durability")?;
        let parts: Vec<&str> = rest.split(':').collect();
        let [records, bytes, interval] = parts[..] else {
            return Err("bad sync_threshold");
        };
        Ok(Durability::SyncThreshold {
            records: Option::<u64>::decode(records)?,
            bytes: Option::<u64>::decode(bytes)?,
            interval: Option::<u64>::decode(interval)?.map(Duration::from_nanos),
        })
    }
}

/// Smallest allowed `segment_bytes`.
pub const SEGMENT_BYTES_MIN: u64 = 1024;
/// Largest allowed `segment_bytes`: file positions in the index are `u32`.
pub const SEGMENT_BYTES_MAX: u64 = 1 << 31;

impl PartitionConfig {
    /// Sets `segment_bytes`.
    pub fn with_segment_bytes(mut self, v: u64) -> Self {
        self.segment_bytes = v;
        self
    }
    /// Sets `segment_ms`.
    pub fn with_segment_ms(mut self, v: Option<u64>) -> Self {
        self.segment_ms = v;
        self
    }
    /// Sets `index_interval_bytes`.
    pub fn with_index_interval_bytes(mut self, v: u32) -> Self {
        self.index_interval_bytes = v;
        self
    }
    /// Sets `index_bytes_max`.
    pub fn with_index_bytes_max(mut self, v: u32) -> Self {
        self.index_bytes_max = v;
        self
    }
    /// Sets `record_bytes_max`.
    pub fn with_record_bytes_max(mut self, v: usize) -> Self {
        self.record_bytes_max = v;
        self
    }
    /// Sets `batch_bytes_max`.
    pub fn with_batch_bytes_max(mut self, v: usize) -> Self {
        self.batch_bytes_max = v;
        self
    }
    /// Sets `durability`.
    pub fn with_durability(mut self, v: Durability) -> Self {
        self.durability = v;
        self
    }
    /// Sets `preallocate_bytes`.
    pub fn with_preallocate_bytes(mut self, v: u64) -> Self {
        self.preallocate_bytes = v;
        self
    }
    /// Sets `retention_ms`.
    pub fn with_retention_ms(mut self, v: Option<u64>) -> Self {
        self.retention_ms = v;
        self
    }
    /// Sets `retention_bytes`.
    pub fn with_retention_bytes(mut self, v: Option<u64>) -> Self {
        self.retention_bytes = v;
        self
    }
    /// Sets `compression`.
    pub fn with_compression(mut self, v: Compression) -> Self {
        self.compression = v;
        self
    }

    /// Sets `timestamp_type`.
    pub fn with_timestamp_type(mut self, v: TimestampType) -> Self {
        self.timestamp_type = v;
        self
    }

    /// Sets `high_watermark_external`.
    pub fn with_high_watermark_external(mut self, v: bool) -> Self {
        self.high_watermark_external = v;
        self
    }

    /// Sets `cleanup_policy`.
    pub fn with_cleanup_policy(mut self, v: CleanupPolicy) -> Self {
        self.cleanup_policy = v;
        self
    }
    /// Sets `compaction`.
    pub fn with_compaction(mut self, v: CompactionConfig) -> Self {
        self.compaction = v;
        self
    }
    /// Sets `open_segments_max`.
    pub fn with_open_segments_max(mut self, v: usize) -> Self {
        self.open_segments_max = v;
        self
    }
    /// Sets `truncate_corrupt`.
    pub fn with_truncate_corrupt(mut self, v: bool) -> Self {
        self.truncate_corrupt = v;
        self
    }
    /// Puts the partition's files on the simulated file system `sim` instead of the real
    /// one (feature `testing`): every file operation of the partition (segments, indexes,
    /// checkpoints, its lock) then goes to `sim`, which the test keeps to cut the power
    /// ([`SimFs::power_loss`](crate::testing::SimFs::power_loss)) or inject faults
    /// ([`SimFs::fail_nth`](crate::testing::SimFs::fail_nth)). The partition's directory path
    /// only names files inside `sim`. Ignored by a topic store, which opens its partitions
    /// on its own file system
    /// ([`StoreConfig::with_file_system`](crate::StoreConfig::with_file_system)).
    #[cfg(feature = "testing")]
    pub fn with_file_system(mut self, sim: std::sync::Arc<crate::io::sim::SimFs>) -> Self {
        self.fs = Fs::Sim(sim);
        self
    }

    /// Check every field; the first bad one is returned as [`Error::InvalidConfig`].
    pub fn validate(&self) -> Result<()> {
        if !(SEGMENT_BYTES_MIN..=SEGMENT_BYTES_MAX).contains(&self.segment_bytes) {
            return Err(Error::config(
                "segment_bytes",
                self.segment_bytes,
                "must be between 1 KiB and 2 GiB",
            ));
        }
        if self.segment_ms == Some(0) {
            return Err(Error::config("segment_ms", 0, "must be positive"));
        }
        if self.index_interval_bytes == 0 {
            return Err(Error::config("index_interval_bytes", 0, "must be positive"));
        }
        if self.index_bytes_max < 64 {
            return Err(Error::config(
                "index_bytes_max",
                self.index_bytes_max,
                "must be at least 64 bytes",
            ));
        }
        if self.batch_bytes_max > crate::format::batch::BATCH_BYTES_LIMIT
            || self.batch_bytes_max < crate::format::batch::BATCH_HEADER_LEN + 8
        {
            return Err(Error::config(
                "batch_bytes_max",
                self.batch_bytes_max,
                "must be between 69 bytes and 64 MiB",
            ));
        }
        if self.record_bytes_max == 0 || self.record_bytes_max > self.batch_bytes_max {
            return Err(Error::config(
                "record_bytes_max",
                self.record_bytes_max,
                "must be positive and at most batch_bytes_max",
            ));
        }
        self.validate_durability()?;
        self.validate_compaction()?;
        if self.open_segments_max == 0 {
            return Err(Error::config("open_segments_max", 0, "must be at least 1"));
        }
        if self.retention_bytes == Some(0) {
            return Err(Error::config(
                "retention_bytes",
                0,
                "must be positive or None",
            ));
        }
        Ok(())
    }

    fn validate_durability(&self) -> Result<()> {
        if let Durability::SyncThreshold {
            records,
            bytes,
            interval,
        } = &self.durability
        {
            if records.is_none() && bytes.is_none() && interval.is_none() {
                return Err(Error::config(
                    "durability",
                    "SyncThreshold { None, None, None }",
                    "needs at least one threshold (use NoSync for none)",
                ));
            }
            if *records == Some(0) || *bytes == Some(0) {
                return Err(Error::config(
                    "durability",
                    format!("{:?}", self.durability),
                    "thresholds must be positive (use SyncEachAppend)",
                ));
            }
        }
        Ok(())
    }

    fn validate_compaction(&self) -> Result<()> {
        let ratio = self.compaction.min_cleanable_dirty_ratio;
        if !(0.0..=1.0).contains(&ratio) {
            return Err(Error::config(
                "compaction.min_cleanable_dirty_ratio",
                ratio,
                "must be between 0 and 1",
            ));
        }
        if self.compaction.map_bytes_max < 1024 {
            return Err(Error::config(
                "compaction.map_bytes_max",
                self.compaction.map_bytes_max,
                "must be at least 1 KiB",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        PartitionConfig::default().validate().unwrap();
    }

    #[test]
    fn rejects_each_bad_field() {
        let bad = [
            PartitionConfig::default().with_segment_bytes(10),
            PartitionConfig::default().with_segment_bytes(SEGMENT_BYTES_MAX + 1),
            PartitionConfig::default().with_segment_ms(Some(0)),
            PartitionConfig::default().with_index_interval_bytes(0),
            PartitionConfig::default().with_index_bytes_max(8),
            PartitionConfig::default().with_batch_bytes_max(65 << 20),
            PartitionConfig::default().with_record_bytes_max(0),
            PartitionConfig::default().with_retention_bytes(Some(0)),
            PartitionConfig::default().with_open_segments_max(0),
            PartitionConfig::default()
                .with_compaction(CompactionConfig::default().with_min_cleanable_dirty_ratio(1.5)),
            PartitionConfig::default()
                .with_compaction(CompactionConfig::default().with_map_bytes_max(10)),
            PartitionConfig::default().with_durability(Durability::SyncThreshold {
                records: None,
                bytes: None,
                interval: None,
            }),
        ];
        for c in bad {
            assert!(
                matches!(c.validate(), Err(Error::InvalidConfig { .. })),
                "{c:?} accepted"
            );
        }
    }
}
