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

use std::fmt::Write as _;
use std::path::Path;

use crate::error::{Error, IoContext, Result};
use crate::io::checkpoint::{self, sync_dir_in};
use crate::io::fs::Fs;
use crate::log::config::{FieldCodec, PartitionConfig};
use crate::topic::handle::{check_replication, validate_topic_name, TOPIC_PARTITIONS_MAX};
use crate::topic::store::STORE_TOPICS_MAX;

/// Name of the topic metadata file in the data directory.
pub const TOPICS_METADATA_FILE: &str = "topics.meta";
const TOPICS_METADATA_TMP: &str = "topics.meta.tmp";
/// Version 2 since the checksum is CRC-32C (line `crc32c`); version 1 files are refused.
const METADATA_HEADER: &str = "seglog-topics 2";
/// Largest metadata file `open` accepts: a bound on what is read from disk.
const METADATA_BYTES_MAX: u64 = 64 << 20;

/// Delete a temp file left by a metadata write interrupted before its rename: the previous
/// metadata is still current.
pub(super) fn remove_leftover_tmp(fs: &Fs, dir: &Path) -> Result<()> {
    let tmp = dir.join(TOPICS_METADATA_TMP);
    if fs.exists(&tmp).at(&tmp)? {
        fs.remove_file(&tmp).at(&tmp)?;
    }
    Ok(())
}

/// One topic as persisted in `topics.meta`.
#[derive(Debug, Clone)]
pub(crate) struct TopicMeta {
    pub(crate) name: String,
    pub(crate) partitions: u32,
    pub(crate) config: PartitionConfig,
    /// Written only when above 1 (`replication_factor=`), so an unreplicated topic's line is
    /// what it was before replication existed; absent means 1.
    pub(crate) replication_factor: u32,
    /// Written only when above 1 (`min_insync_replicas=`); absent means 1.
    pub(crate) min_insync_replicas: u32,
}

/// A failed metadata write, and whether the rename had already happened.
pub(super) struct WriteFailure {
    pub(super) error: Error,
    pub(super) renamed: bool,
}

/// Replace `topics.meta` atomically: temp file, fsync, rename, directory fsync.
pub(super) fn write_metadata(fs: &Fs, dir: &Path, metas: &[TopicMeta]) -> Result<(), WriteFailure> {
    let not_renamed = |error| WriteFailure {
        error,
        renamed: false,
    };
    let bytes = encode_metadata(metas);
    let tmp = dir.join(TOPICS_METADATA_TMP);
    let path = dir.join(TOPICS_METADATA_FILE);
    checkpoint::replace_file_in(fs, &tmp, &path, &bytes).map_err(not_renamed)?;
    sync_dir_in(fs, dir).map_err(|error| WriteFailure {
        error,
        renamed: true,
    })
}

/// The file's bytes: header line, one line per topic (its name, `partitions=`, then every
/// persisted [`PartitionConfig`] field as `key=value`), the CRC line.
pub(crate) fn encode_metadata(metas: &[TopicMeta]) -> Vec<u8> {
    let mut body = String::new();
    body.push_str(METADATA_HEADER);
    body.push('\n');
    for m in metas {
        body.push_str("topic ");
        body.push_str(&m.name);
        body.push_str(" partitions=");
        m.partitions.encode(&mut body);
        for (key, value) in [
            ("replication_factor", m.replication_factor),
            ("min_insync_replicas", m.min_insync_replicas),
        ] {
            if value != 1 {
                body.push(' ');
                body.push_str(key);
                body.push('=');
                value.encode(&mut body);
            }
        }
        m.config.for_each_field(|key, value| {
            body.push(' ');
            body.push_str(key);
            body.push('=');
            value.encode(&mut body);
        });
        body.push('\n');
    }
    let crc = crate::format::crc::crc32c(body.as_bytes());
    writeln!(body, "crc32c {crc:08x}").expect("writing to a String cannot fail");
    body.into_bytes()
}

/// Read and check `topics.meta`: `Ok(None)` when it does not exist.
pub(super) fn read_metadata(fs: &Fs, path: &Path) -> Result<Option<Vec<TopicMeta>>> {
    let len = match fs.file_len(path) {
        Ok(len) => len,
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
    let bytes = fs.read(path).at(path)?;
    decode_metadata(&bytes)
        .map(Some)
        .map_err(|(line, reason)| corrupt(line, reason))
}

/// Parse a metadata file; an error names the 1-based line (0 for the whole file).
pub(crate) fn decode_metadata(bytes: &[u8]) -> Result<Vec<TopicMeta>, (usize, &'static str)> {
    let text = std::str::from_utf8(bytes).map_err(|_| (0, "not UTF-8"))?;
    if text.starts_with("seglog-topics 1\n") {
        return Err((1, "format version 1 (CRC-32 checksums) is no longer read"));
    }
    let body_end = text
        .strip_suffix('\n')
        .and_then(|t| t.rfind('\n'))
        .ok_or((0, "truncated"))?
        + 1;
    let (body, crc_line) = text.split_at(body_end);
    let crc_hex = crc_line
        .strip_prefix("crc32c ")
        .and_then(|s| s.strip_suffix('\n'))
        .filter(|s| s.len() == 8)
        .ok_or((0, "missing crc32c line"))?;
    let crc = u32::from_str_radix(crc_hex, 16).map_err(|_| (0, "bad crc32c line"))?;
    if crate::format::crc::crc32c(body.as_bytes()) != crc {
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
            return Err((lineno, "more than 100000 topics (STORE_TOPICS_MAX)"));
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
    let (mut replication_factor, mut min_insync_replicas) = (1, 1);
    let mut config = PartitionConfig::default();
    for word in words {
        let (key, value) = word.split_once('=').ok_or("expected key=value")?;
        match key {
            "partitions" => partitions = Some(u32::decode(value)?),
            "replication_factor" => replication_factor = u32::decode(value)?,
            "min_insync_replicas" => min_insync_replicas = u32::decode(value)?,
            _ => config.set_field(key, value)?,
        }
    }
    let partitions = partitions.ok_or("missing partitions")?;
    if !(1..=TOPIC_PARTITIONS_MAX).contains(&partitions) {
        return Err("partition count out of range");
    }
    check_replication(replication_factor, min_insync_replicas).map_err(|(field, _, _)| {
        if field == "replication_factor" {
            "replication factor out of range"
        } else {
            "min_insync_replicas out of range"
        }
    })?;
    Ok(TopicMeta {
        name: name.to_owned(),
        partitions,
        config,
        replication_factor,
        min_insync_replicas,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::log::config::{CleanupPolicy, CompactionConfig, Durability};

    /// A config whose every persisted field differs from the default.
    fn unusual_config() -> PartitionConfig {
        PartitionConfig::default()
            .with_segment_bytes(4096)
            .with_segment_ms(None)
            .with_index_interval_bytes(77)
            .with_index_bytes_max(1024)
            .with_record_bytes_max(1000)
            .with_batch_bytes_max(5000)
            .with_compression(crate::format::compression::Compression::Zstd)
            .with_timestamp_type(crate::format::batch::TimestampType::LogAppendTime)
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
            .with_truncate_corrupt(true)
    }

    fn sample_metas() -> Vec<TopicMeta> {
        let meta = |name: &str, partitions, config| TopicMeta {
            name: name.into(),
            partitions,
            config,
            replication_factor: 1,
            min_insync_replicas: 1,
        };
        vec![
            meta("a.b_c-d", 3, unusual_config()),
            meta("x", 1, PartitionConfig::default()),
            meta(
                "n",
                2,
                PartitionConfig::default()
                    .with_durability(Durability::NoSync)
                    .with_cleanup_policy(CleanupPolicy::Compact),
            ),
        ]
    }

    /// The bytes of format version 2 (its CRC-32C checked by an independent implementation):
    /// the format must not move.
    const GOLDEN: &str = "\
seglog-topics 2\n\
topic a.b_c-d partitions=3 segment_bytes=4096 segment_ms=none index_interval_bytes=77 index_bytes_max=1024 record_bytes_max=1000 batch_bytes_max=5000 durability=sync_threshold:3:none:1500000 preallocate_bytes=0 retention_ms=60000 retention_bytes=1048576 cleanup_policy=compact_delete delete_retention_ms=5 min_compaction_lag_ms=6 min_cleanable_dirty_ratio=0.30000000000000004 map_bytes_max=4096 open_segments_max=9 truncate_corrupt=true compression=zstd timestamp_type=log_append_time\n\
topic x partitions=1 segment_bytes=1073741824 segment_ms=604800000 index_interval_bytes=4096 index_bytes_max=10485760 record_bytes_max=1048576 batch_bytes_max=8388608 durability=sync_each_append preallocate_bytes=4194304 retention_ms=604800000 retention_bytes=none cleanup_policy=delete delete_retention_ms=86400000 min_compaction_lag_ms=0 min_cleanable_dirty_ratio=0.5 map_bytes_max=67108864 open_segments_max=128 truncate_corrupt=false compression=none timestamp_type=create_time\n\
topic n partitions=2 segment_bytes=1073741824 segment_ms=604800000 index_interval_bytes=4096 index_bytes_max=10485760 record_bytes_max=1048576 batch_bytes_max=8388608 durability=no_sync preallocate_bytes=4194304 retention_ms=604800000 retention_bytes=none cleanup_policy=compact delete_retention_ms=86400000 min_compaction_lag_ms=0 min_cleanable_dirty_ratio=0.5 map_bytes_max=67108864 open_segments_max=128 truncate_corrupt=false compression=none timestamp_type=create_time\n\
crc32c c70fecb0\n\
";

    #[test]
    fn format_version_1_is_refused_by_name() {
        let v1 = "seglog-topics 1\ntopic x partitions=1\ncrc32 00000000\n";
        assert_eq!(
            decode_metadata(v1.as_bytes()).unwrap_err(),
            (1, "format version 1 (CRC-32 checksums) is no longer read")
        );
    }

    #[test]
    fn encoding_is_byte_identical_to_format_version_2() {
        assert_eq!(
            String::from_utf8(encode_metadata(&sample_metas())).unwrap(),
            GOLDEN
        );
        let back = decode_metadata(GOLDEN.as_bytes()).unwrap();
        assert_eq!(encode_metadata(&back), GOLDEN.as_bytes());
    }

    #[test]
    fn metadata_roundtrips_every_field() {
        let metas = sample_metas();
        let back = decode_metadata(&encode_metadata(&metas)).unwrap();
        assert_eq!(back.len(), 3);
        assert_eq!(back[0].name, "a.b_c-d");
        assert_eq!(back[0].partitions, 3);
        // Field by field, not through the table: a field missing from the table fails here.
        let (c, b) = (&metas[0].config, &back[0].config);
        assert_eq!(b.segment_bytes, c.segment_bytes);
        assert_eq!(b.segment_ms, c.segment_ms);
        assert_eq!(b.index_interval_bytes, c.index_interval_bytes);
        assert_eq!(b.index_bytes_max, c.index_bytes_max);
        assert_eq!(b.record_bytes_max, c.record_bytes_max);
        assert_eq!(b.batch_bytes_max, c.batch_bytes_max);
        assert_eq!(b.durability, c.durability);
        assert_eq!(b.preallocate_bytes, c.preallocate_bytes);
        assert_eq!(b.retention_ms, c.retention_ms);
        assert_eq!(b.retention_bytes, c.retention_bytes);
        assert_eq!(b.cleanup_policy, c.cleanup_policy);
        assert_eq!(b.compaction, c.compaction);
        assert_eq!(b.open_segments_max, c.open_segments_max);
        assert_eq!(b.truncate_corrupt, c.truncate_corrupt);
        assert_eq!(b.compression, c.compression);
        assert_eq!(b.timestamp_type, c.timestamp_type);
        for (m, b) in metas.iter().zip(&back).skip(1) {
            assert_eq!(format!("{:?}", b.config), format!("{:?}", m.config));
        }
    }

    #[test]
    fn missing_keys_take_defaults_and_unknown_keys_fail() {
        assert_eq!(
            decode_topic("topic old partitions=2 segment_bytes=4096")
                .unwrap()
                .config
                .segment_bytes,
            4096
        );
        let old = decode_topic("topic old partitions=2").unwrap();
        assert_eq!(
            format!("{:?}", old.config),
            format!("{:?}", PartitionConfig::default())
        );
        for (line, reason) in [
            ("topic t partitions=1 colour=red", "unknown key"),
            ("topic t partitions=1 segment_bytes=x", "bad number"),
            ("topic t partitions=1 truncate_corrupt=1", "bad boolean"),
            (
                "topic t partitions=1 cleanup_policy=keep",
                "unknown cleanup policy",
            ),
            (
                "topic t partitions=1 durability=sometimes",
                "unknown durability",
            ),
            (
                "topic t partitions=1 durability=sync_threshold:1:2",
                "bad sync_threshold",
            ),
            ("topic t segment_bytes=4096", "missing partitions"),
        ] {
            assert_eq!(decode_topic(line).err(), Some(reason), "{line}");
        }
    }

    #[test]
    fn replication_settings_roundtrip_and_default_to_one() {
        let old = decode_topic("topic old partitions=2").unwrap();
        assert_eq!((old.replication_factor, old.min_insync_replicas), (1, 1));
        let line = "topic r partitions=2 replication_factor=3 min_insync_replicas=2";
        let r = decode_topic(line).unwrap();
        assert_eq!((r.replication_factor, r.min_insync_replicas), (3, 2));
        let text = String::from_utf8(encode_metadata(&[r])).unwrap();
        assert!(text.contains(" partitions=2 replication_factor=3 min_insync_replicas=2 "));
        for (line, reason) in [
            (
                "topic t partitions=1 replication_factor=0",
                "replication factor out of range",
            ),
            (
                "topic t partitions=1 replication_factor=17",
                "replication factor out of range",
            ),
            (
                "topic t partitions=1 replication_factor=2 min_insync_replicas=3",
                "min_insync_replicas out of range",
            ),
            (
                "topic t partitions=1 min_insync_replicas=0",
                "min_insync_replicas out of range",
            ),
        ] {
            assert_eq!(decode_topic(line).err(), Some(reason), "{line}");
        }
    }

    #[test]
    fn damaged_metadata_is_rejected() {
        let bytes = encode_metadata(&sample_metas()[1..2]);
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
