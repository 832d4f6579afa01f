//! The part of a partition's configuration that can change while it is open (Kafka's dynamic
//! topic configs, `kafka-configs --alter`): every persisted field of [`PartitionConfig`]
//! except [`durability`](PartitionConfig::durability). See [`ConfigUpdate`] for when each
//! change takes effect.

use crate::error::{Error, IoContext, Result};
use crate::format::batch::TimestampType;
use crate::format::compression::Compression;
use crate::io::checkpoint;
use crate::log::config::{CleanupPolicy, PartitionConfig};
use crate::log::partition::{Partition, DENSE_MARKER_FILE};
use crate::log::retention::RetentionPolicy;

/// Why a persisted field cannot change on a live partition (a typed
/// [`Error::ConfigNotDynamic`] from [`ConfigUpdate::set`]).
const DURABILITY_FIXED: &str =
    "the durability policy decides how the open partition publishes its high watermark \
     and groups fsyncs; reopen the partition (or recreate the topic) with the new policy";

/// Declares the dynamic fields once: `ConfigUpdate`'s fields and setters, the live copy
/// (`LiveLimits`) and the mapping to [`PartitionConfig`] places.
macro_rules! dynamic_fields {
    ($($key:literal $name:ident $with:ident: $ty:ty => $($place:ident).+;)+) => {
        /// A change of a live partition's (or topic's) configuration: each `Some` field
        /// replaces the current value, `None` leaves it. See [`Partition::update_config`]
        /// and [`LogStore::update_topic_config`](crate::LogStore::update_topic_config).
        ///
        /// When a change takes effect (as in Kafka):
        /// - `retention_ms`, `retention_bytes`, `cleanup_policy` and the compaction settings:
        ///   at the next retention or compaction pass. Switching to a policy that compacts
        ///   first removes the partition's dense-offsets marker (`seglog.partition`, fsynced
        ///   in the directory) so that compaction's offset gaps are accepted after a crash;
        ///   records appended without a key before the switch are kept by compaction (Kafka's
        ///   cleaner drops them). Appends need a key from the switch on.
        /// - `segment_ms`, `segment_bytes`: at the next append's roll decision (a smaller
        ///   `segment_bytes` rolls the active segment at the next append that would pass it).
        /// - `index_interval_bytes`, `index_bytes_max`: from the next segment (the active
        ///   segment's index file was sized and mapped when it was created).
        /// - `record_bytes_max`, `batch_bytes_max`, `compression`, `timestamp_type`: at the
        ///   next append (batches already written keep their codec and timestamp type).
        /// - `preallocate_bytes`, `open_segments_max`: at the next append, roll or load.
        /// - `truncate_corrupt`: at the next open (it is only read there).
        ///
        /// [`durability`](PartitionConfig::durability) cannot change on an open partition
        /// ([`Error::ConfigNotDynamic`]).
        #[derive(Debug, Clone, Default, PartialEq)]
        #[non_exhaustive]
        pub struct ConfigUpdate {
            $(
                #[doc = concat!("New value of `", $key, "` (see [`PartitionConfig`]).")]
                pub $name: Option<$ty>,
            )+
        }

        impl ConfigUpdate {
            $(
                #[doc = concat!("Sets the new `", $key, "`.")]
                #[must_use]
                pub fn $with(mut self, v: $ty) -> Self {
                    self.$name = Some(v);
                    self
                }
            )+

            /// Sets the field called `field` (its name in `topics.meta`, as listed in
            /// docs/format.md "Topic metadata") from its text there, as
            /// `kafka-configs --alter --add-config` does. Kafka's topic config names and
            /// values are accepted too: `segment.bytes`, `segment.ms`, `segment.index.bytes`,
            /// `index.interval.bytes`, `max.message.bytes` (`batch_bytes_max` and
            /// `record_bytes_max`),
            /// `retention.ms` and `retention.bytes` (`-1`: none), `cleanup.policy`
            /// (`delete`, `compact`, `compact,delete`), `delete.retention.ms`,
            /// `min.compaction.lag.ms`, `min.cleanable.dirty.ratio`, `compression.type`
            /// (`uncompressed` is `none`; `producer` has no equivalent: seglog compresses
            /// with the topic's codec) and `message.timestamp.type` (`CreateTime`,
            /// `LogAppendTime`); `flush.messages` and `flush.ms` are the durability policy
            /// and refused as it is. Errors:
            /// [`Error::ConfigNotDynamic`] for `durability`, [`Error::InvalidConfig`] for an
            /// unknown field or a value that does not parse.
            pub fn set(mut self, field: &str, value: &str) -> Result<Self> {
                if field == "max.message.bytes" {
                    // Kafka's one limit bounds the batch, and so every record in it.
                    return self
                        .set("batch_bytes_max", value)?
                        .set("record_bytes_max", value);
                }
                if let Some((name, text)) = from_kafka(field, value)? {
                    return self.set(name, &text);
                }
                let mut parsed = PartitionConfig::default();
                match field {
                    $($key => {
                        parsed
                            .set_field(field, value)
                            .map_err(|reason| Error::config($key, value, reason))?;
                        self.$name = Some(parsed.$($place).+);
                    })+
                    "durability" => {
                        return Err(Error::ConfigNotDynamic {
                            field: "durability",
                            reason: DURABILITY_FIXED,
                        })
                    }
                    _ => return Err(Error::config("field", field, "no such topic configuration field")),
                }
                Ok(self)
            }

            /// `config` with this update applied, validated ([`PartitionConfig::validate`]).
            pub fn apply_to(&self, config: &PartitionConfig) -> Result<PartitionConfig> {
                let mut out = config.clone();
                $(
                    if let Some(v) = self.$name {
                        out.$($place).+ = v;
                    }
                )+
                out.validate()?;
                Ok(out)
            }
        }

        /// The live values.
        #[derive(Debug, Clone, Copy)]
        pub(super) struct LiveLimits {
            $(pub(super) $name: $ty,)+
        }

        impl LiveLimits {
            pub(super) fn of(config: &PartitionConfig) -> Self {
                LiveLimits {
                    $($name: config.$($place).+,)+
                }
            }

            /// `config` with the live values in place of its own.
            fn into_config(self, mut config: PartitionConfig) -> PartitionConfig {
                $(config.$($place).+ = self.$name;)+
                config
            }
        }
    };
}

dynamic_fields! {
    "segment_bytes" segment_bytes with_segment_bytes: u64 => segment_bytes;
    "segment_ms" segment_ms with_segment_ms: Option<u64> => segment_ms;
    "index_interval_bytes" index_interval_bytes with_index_interval_bytes: u32 => index_interval_bytes;
    "index_bytes_max" index_bytes_max with_index_bytes_max: u32 => index_bytes_max;
    "record_bytes_max" record_bytes_max with_record_bytes_max: usize => record_bytes_max;
    "batch_bytes_max" batch_bytes_max with_batch_bytes_max: usize => batch_bytes_max;
    "preallocate_bytes" preallocate_bytes with_preallocate_bytes: u64 => preallocate_bytes;
    "retention_ms" retention_ms with_retention_ms: Option<u64> => retention_ms;
    "retention_bytes" retention_bytes with_retention_bytes: Option<u64> => retention_bytes;
    "cleanup_policy" cleanup_policy with_cleanup_policy: CleanupPolicy => cleanup_policy;
    "delete_retention_ms" delete_retention_ms with_delete_retention_ms: u64 => compaction.delete_retention_ms;
    "min_compaction_lag_ms" min_compaction_lag_ms with_min_compaction_lag_ms: u64 => compaction.min_compaction_lag_ms;
    "min_cleanable_dirty_ratio" min_cleanable_dirty_ratio with_min_cleanable_dirty_ratio: f64 => compaction.min_cleanable_dirty_ratio;
    "map_bytes_max" map_bytes_max with_map_bytes_max: usize => compaction.map_bytes_max;
    "open_segments_max" open_segments_max with_open_segments_max: usize => open_segments_max;
    "truncate_corrupt" truncate_corrupt with_truncate_corrupt: bool => truncate_corrupt;
    "compression" compression with_compression: Compression => compression;
    "timestamp_type" timestamp_type with_timestamp_type: TimestampType => timestamp_type;
}

/// A Kafka topic config `name = value` as the seglog field and text it sets; `None` for a
/// name that is not Kafka's.
fn from_kafka(name: &str, value: &str) -> Result<Option<(&'static str, String)>> {
    let same = |field: &'static str| Ok(Some((field, value.to_owned())));
    let none_if_negative = |field: &'static str| {
        let text = if value == "-1" { "none" } else { value };
        Ok(Some((field, text.to_owned())))
    };
    match name {
        "segment.bytes" => same("segment_bytes"),
        "segment.ms" => same("segment_ms"),
        "segment.index.bytes" => same("index_bytes_max"),
        "index.interval.bytes" => same("index_interval_bytes"),
        "retention.ms" => none_if_negative("retention_ms"),
        "retention.bytes" => none_if_negative("retention_bytes"),
        "delete.retention.ms" => same("delete_retention_ms"),
        "min.compaction.lag.ms" => same("min_compaction_lag_ms"),
        "min.cleanable.dirty.ratio" => same("min_cleanable_dirty_ratio"),
        "cleanup.policy" => {
            let mut parts: Vec<&str> = value.split(',').map(str::trim).collect();
            parts.sort_unstable();
            let policy = match parts.as_slice() {
                ["delete"] => "delete",
                ["compact"] => "compact",
                ["compact", "delete"] => "compact_delete",
                _ => return Err(Error::config("cleanup.policy", value, "unknown cleanup policy")),
            };
            Ok(Some(("cleanup_policy", policy.to_owned())))
        }
        "compression.type" => match value {
            "uncompressed" => Ok(Some(("compression", "none".to_owned()))),
            "producer" => Err(Error::config(
                "compression.type",
                value,
                "seglog compresses with the topic's codec: name one (none, gzip, snappy, lz4, zstd)",
            )),
            _ => same("compression"),
        },
        "message.timestamp.type" => match value {
            "CreateTime" => Ok(Some(("timestamp_type", "create_time".to_owned()))),
            "LogAppendTime" => Ok(Some(("timestamp_type", "log_append_time".to_owned()))),
            _ => Err(Error::config(
                "message.timestamp.type",
                value,
                "must be CreateTime or LogAppendTime",
            )),
        },
        "flush.messages" | "flush.ms" => Err(Error::ConfigNotDynamic {
            field: "durability",
            reason: DURABILITY_FIXED,
        }),
        _ => Ok(None),
    }
}

impl LiveLimits {
    /// What retention deletes by: nothing under a compact-only policy, which keeps its keys
    /// forever (only the log start deletes there).
    pub(super) fn retention_policy(&self) -> RetentionPolicy {
        let deletes = self.cleanup_policy.deletes();
        RetentionPolicy {
            retention_ms: self.retention_ms.filter(|_| deletes),
            retention_bytes: self.retention_bytes.filter(|_| deletes),
        }
    }
}

impl Partition {
    /// Change the open partition's configuration (see [`ConfigUpdate`] for when each field
    /// takes effect). Not persisted by the partition (a `LogStore` persists its topics'
    /// changes: [`LogStore::update_topic_config`](crate::LogStore::update_topic_config)).
    /// Errors as [`PartitionConfig::validate`] (nothing changes then), or I/O removing the
    /// dense-offsets marker when the policy switches to one that compacts (the policy then
    /// stays as it was).
    pub fn update_config(&self, update: &ConfigUpdate) -> Result<()> {
        let mut limits = self.limits.write();
        let current = limits.into_config(self.config.clone());
        let next = update.apply_to(&current)?;
        if next.cleanup_policy.compacts() && !current.cleanup_policy.compacts() {
            // Before any compaction may leave gaps: durable, so that no crash finds the
            // marker beside a compacted segment.
            self.drop_dense_marker()?;
        }
        *limits = LiveLimits::of(&next);
        Ok(())
    }

    /// The configuration in force: the one it was opened with, with
    /// [`update_config`](Self::update_config)'s changes.
    pub fn effective_config(&self) -> PartitionConfig {
        self.live_limits().into_config(self.config.clone())
    }

    pub(super) fn live_limits(&self) -> LiveLimits {
        *self.limits.read()
    }

    /// Remove the dense-offsets marker ([`DENSE_MARKER_FILE`]) if present, durably (the
    /// directory is fsynced). Called before the first compaction of a partition seglog
    /// created under a delete-only policy.
    pub(super) fn drop_dense_marker(&self) -> Result<()> {
        let fs = &self.config.fs;
        let path = self.dir.join(DENSE_MARKER_FILE);
        if !fs.exists(&path).at(&path)? {
            return Ok(());
        }
        match fs.remove_file(&path) {
            // A concurrent caller (compaction and a config switch) removed it first.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            r => r.at(&path)?,
        }
        checkpoint::sync_dir_in(fs, &self.dir)
    }
}
