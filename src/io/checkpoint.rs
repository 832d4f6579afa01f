//! Small checkpoint files holding one offset, replaced atomically.
//!
//! Layout (16 bytes): magic `b"SLCK"`, value u64 LE, CRC-32 of the first 12 bytes u32 LE.
//! Written to `NAME.tmp`, fsynced, renamed over `NAME`, then the directory is fsynced, so a
//! crash leaves either the old or the new value, never a torn one.

use std::path::Path;

use crate::error::{CorruptKind, Error, IoContext, Result};
use crate::io::fs::{Fs, FsLock, OpenFlags};

const MAGIC: &[u8; 4] = b"SLCK";
const LEN: usize = 16;

/// Read the checkpoint at `path`: `Ok(None)` when it does not exist.
pub(crate) fn read(fs: &Fs, path: &Path) -> Result<Option<u64>> {
    let bytes = match fs.read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    let corrupt = || Error::Corrupt {
        path: path.to_owned(),
        position: 0,
        reason: CorruptKind::BadCheckpoint,
    };
    if bytes.len() != LEN || &bytes[..4] != MAGIC {
        return Err(corrupt());
    }
    let crc = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes"));
    if crate::format::crc::crc32c(&bytes[..12]) != crc {
        return Err(corrupt());
    }
    Ok(Some(u64::from_le_bytes(
        bytes[4..12].try_into().expect("8 bytes"),
    )))
}

/// Atomically and durably replace the checkpoint at `path` with `value`.
pub(crate) fn write(fs: &Fs, path: &Path, value: u64) -> Result<()> {
    let mut buf = [0u8; LEN];
    buf[..4].copy_from_slice(MAGIC);
    buf[4..12].copy_from_slice(&value.to_le_bytes());
    let crc = crate::format::crc::crc32c(&buf[..12]);
    buf[12..].copy_from_slice(&crc.to_le_bytes());
    replace_file_in(fs, &path.with_extension("tmp"), path, &buf)?;
    sync_dir_in(fs, parent_dir(path))
}

/// Write `bytes` to `tmp`, fsync it and rename it over `path`: a crash leaves the old or the
/// new content, never a mix. The caller fsyncs the directory to make the rename durable.
pub(crate) fn replace_file_in(fs: &Fs, tmp: &Path, path: &Path, bytes: &[u8]) -> Result<()> {
    let f = fs.open(tmp, OpenFlags::CREATE_TRUNCATE).at(tmp)?;
    f.write_all_at(bytes, 0).at(tmp)?;
    f.sync_all().at(tmp)?;
    fs.rename(tmp, path).at(path)
}

/// Take the exclusive lock of the lock file at `path` on `fs` (created if needed):
/// `Ok(None)` when another holder, in this process or another, has it. The lock lasts as
/// long as the returned [`FsLock`].
pub(crate) fn try_lock_file(fs: &Fs, path: &Path) -> Result<Option<FsLock>> {
    fs.try_lock(path).at(path)
}

/// Make the entries of `dir` on `fs` durable (fsync of the directory), with the path in the
/// error.
pub(crate) fn sync_dir_in(fs: &Fs, dir: &Path) -> Result<()> {
    fs.sync_dir(dir).at(dir)
}

/// The directory holding `path`'s entry (`.` for a relative name without one).
pub(crate) fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Create `dir` and its missing parents, durably: each directory created gets its entry
/// made durable by an fsync of its parent before this returns (outermost first, so no
/// synced entry hangs below one that is not). A directory that already exists is not
/// synced again: whoever created it made it durable.
pub(crate) fn create_dir_all_durable(fs: &Fs, dir: &Path) -> Result<()> {
    for created in fs.create_dir_all(dir).at(dir)? {
        sync_dir_in(fs, parent_dir(&created))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_missing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.checkpoint");
        assert_eq!(read(&Fs::Std, &p).unwrap(), None);
        write(&Fs::Std, &p, 42).unwrap();
        assert_eq!(read(&Fs::Std, &p).unwrap(), Some(42));
        write(&Fs::Std, &p, 7).unwrap();
        assert_eq!(read(&Fs::Std, &p).unwrap(), Some(7));
    }

    #[test]
    fn damage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.checkpoint");
        write(&Fs::Std, &p, 42).unwrap();
        let mut b = std::fs::read(&p).unwrap();
        b[5] ^= 1;
        std::fs::write(&p, &b).unwrap();
        assert!(matches!(read(&Fs::Std, &p), Err(Error::Corrupt { .. })));
        std::fs::write(&p, b"short").unwrap();
        assert!(matches!(read(&Fs::Std, &p), Err(Error::Corrupt { .. })));
    }
}
