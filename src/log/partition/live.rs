//! The part of a partition's configuration that can change while it is open: retention and
//! the age roll (Kafka's dynamic topic configs `retention.ms`, `retention.bytes`,
//! `segment.ms`). The rest of [`PartitionConfig`] is fixed at open.

use crate::error::Result;
use crate::log::config::PartitionConfig;
use crate::log::partition::Partition;

/// A change of a live partition's (or topic's) configuration: each `Some` field replaces the
/// current value, `None` leaves it. See [`Partition::update_config`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfigUpdate {
    /// New [`PartitionConfig::retention_ms`].
    pub retention_ms: Option<Option<u64>>,
    /// New [`PartitionConfig::retention_bytes`].
    pub retention_bytes: Option<Option<u64>>,
    /// New [`PartitionConfig::segment_ms`].
    pub segment_ms: Option<Option<u64>>,
}

impl ConfigUpdate {
    /// Sets the new `retention_ms` (`None` in it: keep data forever).
    pub fn with_retention_ms(mut self, v: Option<u64>) -> Self {
        self.retention_ms = Some(v);
        self
    }

    /// Sets the new `retention_bytes`.
    pub fn with_retention_bytes(mut self, v: Option<u64>) -> Self {
        self.retention_bytes = Some(v);
        self
    }

    /// Sets the new `segment_ms`.
    pub fn with_segment_ms(mut self, v: Option<u64>) -> Self {
        self.segment_ms = Some(v);
        self
    }

    /// `config` with this update applied, validated ([`PartitionConfig::validate`]).
    pub fn apply_to(&self, config: &PartitionConfig) -> Result<PartitionConfig> {
        let mut out = config.clone();
        if let Some(v) = self.retention_ms {
            out.retention_ms = v;
        }
        if let Some(v) = self.retention_bytes {
            out.retention_bytes = v;
        }
        if let Some(v) = self.segment_ms {
            out.segment_ms = v;
        }
        out.validate()?;
        Ok(out)
    }
}

/// The live values.
#[derive(Debug, Clone, Copy)]
pub(super) struct LiveLimits {
    pub(super) retention_ms: Option<u64>,
    pub(super) retention_bytes: Option<u64>,
    pub(super) segment_ms: Option<u64>,
}

impl LiveLimits {
    pub(super) fn of(config: &PartitionConfig) -> Self {
        LiveLimits {
            retention_ms: config.retention_ms,
            retention_bytes: config.retention_bytes,
            segment_ms: config.segment_ms,
        }
    }
}

impl Partition {
    /// Change `retention_ms`, `retention_bytes` and `segment_ms` of the open partition: the
    /// next retention pass and the next append's roll decision use the new values. Not
    /// persisted by the partition (a `LogStore` persists its topics' changes:
    /// [`LogStore::update_topic_config`](crate::LogStore::update_topic_config)). Errors as
    /// [`PartitionConfig::validate`]; nothing changes then.
    pub fn update_config(&self, update: &ConfigUpdate) -> Result<()> {
        let mut limits = self.limits.write();
        let current = PartitionConfig {
            retention_ms: limits.retention_ms,
            retention_bytes: limits.retention_bytes,
            segment_ms: limits.segment_ms,
            ..self.config.clone()
        };
        *limits = LiveLimits::of(&update.apply_to(&current)?);
        Ok(())
    }

    /// The configuration in force: the one it was opened with, with
    /// [`update_config`](Self::update_config)'s changes.
    pub fn effective_config(&self) -> PartitionConfig {
        let limits = *self.limits.read();
        PartitionConfig {
            retention_ms: limits.retention_ms,
            retention_bytes: limits.retention_bytes,
            segment_ms: limits.segment_ms,
            ..self.config.clone()
        }
    }

    pub(super) fn live_limits(&self) -> LiveLimits {
        *self.limits.read()
    }
}
