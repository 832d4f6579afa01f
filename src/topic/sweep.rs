//! The data directory's partition directories: their names, and the sweep at open that
//! removes leftovers of topic operations interrupted by a crash (see [`LogStore`]'s
//! "Topic operations and crashes").
//!
//! [`LogStore`]: crate::topic::store::LogStore

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, IoContext, Result};
use crate::io::checkpoint::sync_dir_in;
use crate::io::fs::Fs;
use crate::log::partition::LOCK_FILE as PARTITION_LOCK_FILE;
use crate::topic::copies::{Copies, REPLICA_ROOT_PREFIX};
use crate::topic::handle::validate_topic_name;
use crate::topic::metadata::TopicMeta;

/// Suffix a partition directory gets when its topic is deleted, before it is removed.
const DELETED_SUFFIX: &str = ".deleted";

/// Close partitions that will not be published and remove their directories (`dirs`, every
/// replica's). Best effort: whatever is left is an orphan, removed by the next open (nothing
/// lists them).
pub(super) fn discard(fs: &Fs, partitions: &[Arc<Copies>], dirs: &[PathBuf]) {
    for p in partitions {
        let _ = p.close();
    }
    for dir in dirs {
        let _ = fs.remove_dir_all(dir);
    }
}

/// The replica roots present in the data directory (`__replica<n>`, `n >= 1`), by number.
pub(super) fn replica_roots(fs: &Fs, dir: &Path) -> Result<Vec<(u32, PathBuf)>> {
    let mut roots = Vec::new();
    for name in fs.list_dir(dir).at(dir)? {
        let Some(n) = name.strip_prefix(REPLICA_ROOT_PREFIX) else {
            continue;
        };
        let Ok(replica) = n.parse::<u32>() else {
            continue;
        };
        let path = dir.join(&name);
        if replica >= 1 && replica.to_string() == n && fs.is_dir(&path).at(&path)? {
            roots.push((replica, path));
        }
    }
    roots.sort();
    Ok(roots)
}

/// `<dir>/<topic>-<n>`.
pub(super) fn partition_dir(dir: &Path, topic: &str, partition: u32) -> PathBuf {
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
pub(super) fn is_partition_dir(fs: &Fs, path: &Path) -> Result<bool> {
    let names = fs.list_dir(path).at(path)?;
    Ok(names.is_empty() || names.iter().any(|n| n == PARTITION_LOCK_FILE))
}

/// The subdirectories of a data directory that seglog made.
#[derive(Default)]
pub(super) struct PartitionDirs {
    /// Partition directories: topic, partition number, path.
    pub(super) live: Vec<(String, u32, PathBuf)>,
    /// Directories of deleted partitions (`<topic>-<n>.deleted`).
    pub(super) deleted: Vec<PathBuf>,
}

pub(super) fn partition_dirs(fs: &Fs, dir: &Path) -> Result<PartitionDirs> {
    let mut found = PartitionDirs::default();
    for name in fs.list_dir(dir).at(dir)? {
        let path = dir.join(&name);
        let deleted = name
            .strip_suffix(DELETED_SUFFIX)
            .is_some_and(|stem| parse_partition_dir(stem).is_some());
        let live = !deleted && parse_partition_dir(&name).is_some();
        if !(deleted || live) || !fs.is_dir(&path).at(&path)? {
            continue;
        }
        if deleted {
            found.deleted.push(path);
        } else if is_partition_dir(fs, &path)? {
            if let Some((topic, n)) = parse_partition_dir(&name) {
                found.live.push((topic, n, path));
            }
        }
    }
    Ok(found)
}

/// Remove partition directories the metadata does not list, in the data directory and in
/// every replica root: leftovers of a topic creation or partition addition interrupted
/// before its commit, and of deletions. Durable (each directory swept is synced) before it
/// returns.
pub(super) fn remove_orphans(fs: &Fs, dir: &Path, metas: &[TopicMeta]) -> Result<()> {
    remove_orphans_in(fs, dir, 0, metas)?;
    for (replica, root) in replica_roots(fs, dir)? {
        remove_orphans_in(fs, &root, replica, metas)?;
    }
    Ok(())
}

/// [`remove_orphans`] in the root of replica `replica`: a directory is listed if its topic
/// has the partition and keeps that replica.
fn remove_orphans_in(fs: &Fs, dir: &Path, replica: u32, metas: &[TopicMeta]) -> Result<()> {
    let PartitionDirs { live, deleted } = partition_dirs(fs, dir)?;
    let mut removed = false;
    for (topic, n, path) in live {
        let listed = metas
            .iter()
            .any(|m| m.name == topic && n < m.partitions && replica < m.replication_factor);
        if !listed {
            fs.remove_dir_all(&path).at(&path)?;
            removed = true;
        }
    }
    for path in deleted {
        fs.remove_dir_all(&path).at(&path)?;
        removed = true;
    }
    if removed {
        sync_dir_in(fs, dir)?;
    }
    Ok(())
}

/// `<dir>/<topic>-<n>.deleted`: where a deleted partition's directory is renamed before its
/// removal, so that the name can be reused at once and a crash leaves an unambiguous leftover.
pub(super) fn deleted_path(partition_dir: &Path) -> PathBuf {
    let mut renamed = partition_dir.to_owned().into_os_string();
    renamed.push(DELETED_SUFFIX);
    PathBuf::from(renamed)
}

/// Rename each directory of a deleted topic's partitions (`dirs`, every replica's, already
/// closed) out of the way, sync their parent directories, then remove them and sync again.
/// A replica directory that does not exist is skipped. Returns the first error; continues
/// past failures.
pub(super) fn remove_deleted(fs: &Fs, dirs: &[PathBuf]) -> Result<()> {
    let mut result = Ok(());
    let mut doomed = Vec::new();
    let mut parents: Vec<PathBuf> = Vec::new();
    for dir in dirs {
        if !fs.exists(dir).unwrap_or(true) {
            continue;
        }
        if let Some(parent) = dir.parent() {
            if !parents.iter().any(|p| p == parent) {
                parents.push(parent.to_owned());
            }
        }
        let renamed = deleted_path(dir);
        // A leftover of an earlier deletion of the same name whose removal failed.
        if fs.exists(&renamed).unwrap_or(false) {
            let _ = fs.remove_dir_all(&renamed);
        }
        match fs.rename(dir, &renamed).at(dir) {
            Ok(()) => doomed.push(renamed),
            Err(e) => result = result.and(Err(e)),
        }
    }
    for parent in &parents {
        result = result.and(sync_dir_in(fs, parent));
    }
    for path in doomed {
        if let Err(e) = fs.remove_dir_all(&path).at(&path) {
            result = result.and(Err(e));
        }
    }
    for parent in &parents {
        result = result.and(sync_dir_in(fs, parent));
    }
    result
}

/// An error for a directory named like a partition that seglog did not make.
pub(super) fn not_ours(dir: &Path) -> Error {
    Error::io(
        dir,
        std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "a directory seglog did not create is in the way",
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn deleted_path_appends_the_suffix() {
        let p = deleted_path(Path::new("/data/orders-3"));
        assert_eq!(p, Path::new("/data/orders-3.deleted"));
        let name = p.file_name().unwrap().to_str().unwrap();
        let stem = name.strip_suffix(DELETED_SUFFIX).unwrap();
        assert_eq!(parse_partition_dir(stem), Some(("orders".to_owned(), 3)));
    }
}
