//! One way to write a file: atomically. Every file lmbench writes whole (result JSON,
//! comparison JSON and PNG, `report.html`) goes through [`write_atomic`]: a temporary file in
//! the same folder is written and fsynced, then moved over the target, so a reader sees the old
//! file or the new one, never a part, and a crash leaves no half-written result behind.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// What to do when the target exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Replace it (reports, comparisons: regenerated on every call).
    Replace,
    /// Fail with [`io::ErrorKind::AlreadyExists`] (result files are never overwritten).
    Keep,
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Write `bytes` to `path` atomically (see the module docs). With [`Existing::Keep`] an
/// existing `path` is never replaced, even by a writer racing this one.
pub fn write_atomic(path: &Path, bytes: &[u8], existing: Existing) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?
        .to_string_lossy()
        .into_owned();
    if existing == Existing::Keep && path.exists() {
        return Err(exists(path));
    }
    let (tmp, file) = create_temp(&dir, &name)?;
    let persisted = persist(file, bytes, &tmp, path, existing);
    // After a rename the temp name is gone; after a hard link or a failure it must go.
    let _ = fs::remove_file(&tmp);
    persisted?;
    sync_dir(&dir);
    Ok(())
}

fn persist(
    mut file: File,
    bytes: &[u8],
    tmp: &Path,
    path: &Path,
    existing: Existing,
) -> io::Result<()> {
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    match existing {
        Existing::Replace => fs::rename(tmp, path),
        Existing::Keep => link_no_clobber(tmp, path),
    }
}

/// Moves `tmp` to `path` only if `path` does not exist. A hard link fails atomically when the
/// target exists, which a check followed by a rename cannot guarantee; the check+rename is
/// only the fallback for filesystems without hard links.
fn link_no_clobber(tmp: &Path, path: &Path) -> io::Result<()> {
    match fs::hard_link(tmp, path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(exists(path)),
        Err(_) if path.exists() => Err(exists(path)),
        Err(_) => fs::rename(tmp, path),
    }
}

fn exists(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("{} already exists", path.display()),
    )
}

/// A new hidden file `.<name>.<pid>.<n>.tmp` in `dir`.
fn create_temp(dir: &Path, name: &str) -> io::Result<(PathBuf, File)> {
    loop {
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Makes a rename or link durable. Best effort: not every platform or filesystem allows
/// fsyncing a directory, and the data itself is already synced.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut n: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        n.sort();
        n
    }

    #[test]
    fn replace_and_keep() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("a.bin");
        write_atomic(&path, b"one", Existing::Replace).unwrap();
        write_atomic(&path, b"two", Existing::Replace).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let err = write_atomic(&path, b"three", Existing::Keep).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&path).unwrap(), b"two");
        write_atomic(&tmp.path().join("b.bin"), b"", Existing::Keep).unwrap();
        // No temporary file is left behind.
        assert_eq!(names(tmp.path()), ["a.bin", "b.bin"]);
    }
}
