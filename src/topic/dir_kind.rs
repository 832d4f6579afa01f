//! Refusing to open a store in a directory that is something else: a partition directory,
//! where the store would write its metadata next to segment files.

use std::path::Path;

use crate::error::{Error, IoContext, Result};
use crate::io::fs::Fs;
use crate::log::partition::{DENSE_MARKER_FILE, LOG_START_FILE, RECOVERY_POINT_FILE};
use crate::log::segment::LOG_EXT;

/// [`Error::WrongDirectory`] if `dir` is a file, or holds a partition's files: its checkpoints, its
/// dense-offsets marker or a segment (`<20 digits>.log`). A missing `dir` is fine (the store
/// creates it). Reads only.
pub(crate) fn refuse_partition_dir(fs: &Fs, dir: &Path) -> Result<()> {
    if fs.exists(dir).at(dir)? && !fs.is_dir(dir).at(dir)? {
        return Err(Error::WrongDirectory {
            path: dir.to_owned(),
            expected: "a LogStore data directory",
            found: "a file",
        });
    }
    let names = match fs.list_dir(dir) {
        Ok(names) => names,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    for name in names {
        let name = name.as_str();
        let segment = name
            .strip_suffix(LOG_EXT)
            .and_then(|stem| stem.strip_suffix('.'))
            .is_some_and(|digits| digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()));
        if segment || [DENSE_MARKER_FILE, LOG_START_FILE, RECOVERY_POINT_FILE].contains(&name) {
            return Err(Error::WrongDirectory {
                path: dir.to_owned(),
                expected: "a LogStore data directory",
                found: "a partition directory (it holds segment or checkpoint files)",
            });
        }
    }
    Ok(())
}
