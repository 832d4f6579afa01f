//! The `topics.meta` codec: the list of topics of a data directory, their partition counts
//! and partition configurations, as one checksummed text file replaced atomically.
//!
//! ```text
//! seglog-topics 1
//! topic orders partitions=2 segment_bytes=1073741824 ... durability=sync_each_append ...
//! crc32 1a2b3c4d
//! ```
//!
//! One line per topic, then a CRC-32 line covering every byte before it. The keys and value
//! formats are specified in `docs/format.md` ("Topic metadata"); they must never change
//! meaning, so files written by older versions still open.

use std::fs;
use std::path::Path;
use std::time::Duration;

use crate::error::{Error, IoContext, Result};
use crate::io::checkpoint::{self, sync_dir};
use crate::log::config::{CleanupPolicy, Durability, PartitionConfig};
use crate::topic::handle::{validate_topic_name, TOPIC_PARTITIONS_MAX};
use crate::topic::store::STORE_TOPICS_MAX;

/// Name of the topic metadata file in the data directory.
pub const TOPICS_METADATA_FILE: &str = "topics.meta";
const TOPICS_METADATA_TMP: &str = "topics.meta.tmp";
const METADATA_HEADER: &str = "seglog-topics 1";
/// Largest metadata file `open` accepts: a bound on what is read from disk.
const METADATA_BYTES_MAX: u64 = 64 << 20;

/// Delete a temp file left by a metadata write interrupted before its rename: the previous
/// metadata is still current.
pub(super) fn remove_leftover_tmp(dir: &Path) -> Result<()> {
    let tmp = dir.join(TOPICS_METADATA_TMP);
    if tmp.exists() {
        fs::remove_file(&tmp).at(&tmp)?;
    }
    Ok(())
}

/// One topic as persisted in `topics.meta`.
#[derive(Debug, Clone)]
pub(super) struct TopicMeta {
    pub(super) name: String,
    pub(super) partitions: u32,
    pub(super) config: PartitionConfig,
}

/// A failed metadata write, and whether the rename had already happened.
pub(super) struct WriteFailure {
    pub(super) error: Error,
    pub(super) renamed: bool,
}

/// Replace `topics.meta` atomically: temp file, fsync, rename, directory fsync.
pub(super) fn write_metadata(dir: &Path, metas: &[TopicMeta]) -> Result<(), WriteFailure> {
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
pub(super) fn read_metadata(path: &Path) -> Result<Option<Vec<TopicMeta>>> {
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
    use crate::log::config::CompactionConfig;

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
                CompactionConfig::default()
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
