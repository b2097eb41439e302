//! Files that prism reads — checkpoints, caches, meshes — opened only when they are regular
//! files.
//!
//! Such a path is any name the user gives. Opening a FIFO for reading blocks until a writer
//! comes (a render that hangs); a device such as `/dev/zero` gives bytes without end (read
//! whole, it eats memory until the process is killed); a directory or a socket is no file to
//! read either.

use std::fs::File;
use std::path::Path;

/// Why a file was not opened.
#[derive(Debug)]
pub(crate) enum OpenError {
    Io(std::io::Error),
    /// What the path is instead: "a FIFO (named pipe)", "a directory", ...
    NotAFile(&'static str),
}

/// Opens `path` for reading if it is a regular file (after following symbolic links), with its
/// length. Anything else is refused, saying what it is, and is not opened.
pub(crate) fn open(path: &Path) -> Result<(File, u64), OpenError> {
    let seen = std::fs::metadata(path).map_err(OpenError::Io)?;
    if !seen.is_file() {
        return Err(OpenError::NotAFile(kind(&seen.file_type())));
    }
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    // Should the file be swapped for a FIFO between that look and the open, the open still
    // returns (and the check below refuses it). Reads of a regular file ignore the flag.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, nix::libc::O_NONBLOCK);
    let file = options.open(path).map_err(OpenError::Io)?;
    let opened = file.metadata().map_err(OpenError::Io)?;
    if !opened.is_file() {
        return Err(OpenError::NotAFile(kind(&opened.file_type())));
    }
    Ok((file, opened.len()))
}

/// The whole of `path`, a regular file (see [`open`]).
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, OpenError> {
    use std::io::Read;
    let (mut file, len) = open(path)?;
    let mut bytes = Vec::new();
    // The length only sizes the buffer: the file may have grown since it was taken.
    bytes
        .try_reserve_exact(usize::try_from(len).unwrap_or(usize::MAX))
        .map_err(|_| OpenError::Io(std::io::ErrorKind::OutOfMemory.into()))?;
    file.read_to_end(&mut bytes).map_err(OpenError::Io)?;
    Ok(bytes)
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Io(e) => write!(f, "cannot read: {e}"),
            OpenError::NotAFile(kind) => write!(f, "is {kind}, not a regular file"),
        }
    }
}

/// What a file that is not a regular file is, for a message: "is {kind}, not a regular file".
fn kind(t: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if t.is_dir() {
        "a directory"
    } else {
        "something else"
    }
}

/// Up to `n` bytes from the start of `file`: fewer only if the file is shorter.
pub(crate) fn read_head(file: &mut File, n: usize) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut head = Vec::with_capacity(n);
    file.take(n as u64).read_to_end(&mut head)?;
    Ok(head)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_are_opened_and_others_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"12345").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let (mut f, len) = open(&link).unwrap();
        assert_eq!(len, 5);
        assert_eq!(read_head(&mut f, 3).unwrap(), b"123");
        assert_eq!(read_head(&mut f, 9).unwrap(), b"45");

        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success());
        let not = |p: &Path| match open(p) {
            Err(OpenError::NotAFile(kind)) => kind,
            other => panic!("{}: {other:?}", p.display()),
        };
        assert_eq!(not(&fifo), "a FIFO (named pipe)");
        assert_eq!(not(dir.path()), "a directory");
        assert_eq!(not(Path::new("/dev/zero")), "a character device");
        assert!(matches!(
            open(&dir.path().join("absent")),
            Err(OpenError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound
        ));
    }
}
