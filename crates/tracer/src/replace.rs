//! Files replaced whole: written under a temporary name beside the target, then renamed over it.
//!
//! A run killed mid-write (a job's time limit, Ctrl-C) then leaves the previous file whole —
//! the last pass's image, a cache, a checkpoint — rather than an empty or cut-off one, and a
//! reader that has the old file open or mapped keeps seeing the old bytes.

use std::path::Path;

/// Writes `path` through `write`, which is given the temporary name to create, then renames
/// that file into place. On any failure the temporary file is removed and the error returned;
/// `rename_failed` turns a failed rename into the caller's error type.
pub(crate) fn replace_atomically<E>(
    path: &Path,
    write: impl FnOnce(&Path) -> Result<(), E>,
    rename_failed: impl FnOnce(std::io::Error) -> E,
) -> Result<(), E> {
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let result = write(&tmp).and_then(|()| std::fs::rename(&tmp, path).map_err(rename_failed));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Writes `parts`, one after the other, to `path` through [`replace_atomically`], flushed to
/// disk before the rename. Errors carry the step that failed ("create a temporary file",
/// "write", "flush to disk", "rename the temporary file into place").
pub(crate) fn replace_with_bytes(
    path: &Path,
    parts: &[&[u8]],
) -> Result<(), (&'static str, std::io::Error)> {
    use std::io::Write;
    replace_atomically(
        path,
        |tmp| {
            let mut f = std::fs::File::create(tmp).map_err(|e| ("create a temporary file", e))?;
            for part in parts {
                f.write_all(part).map_err(|e| ("write", e))?;
            }
            f.sync_all().map_err(|e| ("flush to disk", e))
        },
        |e| ("rename the temporary file into place", e),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.bin");
        replace_with_bytes(&path, &[b"ol", b"d"]).unwrap();
        let r: Result<(), &str> = replace_atomically(
            &path,
            |tmp| {
                std::fs::write(tmp, b"half").unwrap();
                Err("failed midway")
            },
            |_| "rename",
        );
        assert_eq!(r, Err("failed midway"));
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "the temporary file was left behind");
        replace_with_bytes(&path, &[b"new"]).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
    }
}
