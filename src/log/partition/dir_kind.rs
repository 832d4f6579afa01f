//! Refusing to open a partition in a directory that is something else: a store's data
//! directory (which holds its topic metadata), where a partition would scatter segment files.

use std::path::Path;

use crate::error::{Error, IoContext, Result};
use crate::io::fs::Fs;

/// Files whose presence marks a `LogStore` data directory. The name is the topic layer's
/// `TOPICS_METADATA_FILE` (and its temp file); repeated here because the log layer sits below
/// the topic layer and may not import it.
const STORE_MARKERS: [&str; 2] = ["topics.meta", "topics.meta.tmp"];

/// [`Error::WrongDirectory`] if `dir` is a store's data directory. Reads only.
pub(super) fn refuse_store_root(fs: &Fs, dir: &Path) -> Result<()> {
    for marker in STORE_MARKERS {
        let path = dir.join(marker);
        if fs.exists(&path).at(&path)? {
            return Err(Error::WrongDirectory {
                path: dir.to_owned(),
                expected: "a partition directory",
                found: "a LogStore data directory (it holds topics.meta)",
            });
        }
    }
    Ok(())
}
