//! Files replaced whole: written under a temporary name beside the target, then renamed over it.
//!
//! A run killed mid-write (a job's time limit, Ctrl-C) then leaves the previous file whole —
//! the last pass's image, a cache, a checkpoint — rather than an empty or cut-off one, and a
//! reader that has the old file open or mapped keeps seeing the old bytes.
//!
//! The temporary name is `<name>.tmp-<host>-<pid>`: unique among the writers of one shared
//! file system, and enough for a later run to tell a temporary file that a killed process
//! left behind (its host is this one, its process is gone) from one still being written
//! ([`remove_stale_temporaries`]).
//!
//! A path that is a symbolic link is written through the link: the temporary file goes beside
//! the link's target, which the rename replaces, so the link keeps pointing at the new file.

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The names of the temporary files this process is writing right now. Its own pid in a
/// temporary's name does not make the file its own: in a container every run may be pid 1,
/// so a file a killed earlier run left can carry this process's pid. Names, not paths: one
/// directory can be spelt many ways, and a stale file that is kept is only reported later,
/// where one being written that is removed fails the write.
static WRITING: Mutex<BTreeSet<OsString>> = Mutex::new(BTreeSet::new());

/// Marks a temporary file as being written by this process until dropped.
struct Writing(Option<OsString>);

impl Writing {
    fn start(tmp: &Path) -> Writing {
        let name = tmp.file_name().unwrap_or_default().to_os_string();
        // The set holds plain names that a panic cannot leave half-changed.
        let mut set = WRITING.lock().unwrap_or_else(|p| p.into_inner());
        // Only the first of two writers of one name in this process unregisters it.
        Writing(set.insert(name.clone()).then_some(name))
    }
}

impl Drop for Writing {
    fn drop(&mut self) {
        if let Some(tmp) = self.0.take() {
            WRITING
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&tmp);
        }
    }
}

fn being_written(name: &OsStr) -> bool {
    WRITING
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .contains(name)
}

/// Symbolic links followed in a row before giving up, as Linux's MAXSYMLINKS.
const MAX_LINKS: usize = 40;

/// The file that writing `path` should replace: `path` itself, or, where it is a symbolic
/// link, the file at the end of its chain of links — also one that does not exist yet (a
/// dangling link). Replacing the link itself by a file would leave its target stale.
pub fn final_target(path: &Path) -> std::io::Result<PathBuf> {
    let mut at = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = std::fs::read_link(&at)?;
                // A relative target is relative to the link's directory.
                at = match at.parent() {
                    Some(dir) if target.is_relative() => dir.join(target),
                    _ => target,
                };
            }
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => return Ok(at),
        }
    }
    Err(std::io::Error::other(format!(
        "more than {MAX_LINKS} symbolic links in a row from {} (a loop?)",
        path.display()
    )))
}

/// This machine's name as the kernel has it (empty where it cannot be read).
pub(crate) fn host_name() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    name.trim().to_string()
}

/// This machine's name as it goes into temporary names: only characters that are safe in a
/// file name on any file system.
fn host_tag() -> String {
    let tag: String = host_name()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if tag.is_empty() {
        "localhost".to_string()
    } else {
        tag
    }
}

/// `<name>.tmp-<host>-`: the start of every temporary name of `path` written on this host.
fn temporary_prefix(path: &Path) -> OsString {
    let mut prefix = path.file_name().unwrap_or_default().to_os_string();
    prefix.push(format!(".tmp-{}-", host_tag()));
    prefix
}

/// What [`remove_stale_temporaries`] did: the files it removed, those it could not remove,
/// and the directory, if it could not be read through.
#[derive(Debug, Default)]
pub struct Sweep {
    pub removed: Vec<PathBuf>,
    pub failed: Vec<(PathBuf, std::io::Error)>,
    pub unreadable: Option<(PathBuf, std::io::Error)>,
}

/// Removes the temporary files of `path` (of its [`final_target`]) that a process of this host
/// left behind when it was killed mid-write (SIGKILL after a job's time limit, say): those
/// whose process no longer exists, or that carry this process's pid but are not being written
/// by it. Files of other hosts, of live processes (also those of other users, which a process
/// may not signal), and names this module does not make are left alone. A file that cannot
/// be removed does not stop the sweep.
pub fn remove_stale_temporaries(path: &Path) -> Sweep {
    let mut sweep = Sweep::default();
    let path = match final_target(path) {
        Ok(target) => target,
        Err(e) => {
            sweep.unreadable = Some((path.to_path_buf(), e));
            return sweep;
        }
    };
    let path = path.as_path();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let prefix = temporary_prefix(path);
    let prefix = prefix.as_encoded_bytes();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return sweep,
        Err(e) => {
            sweep.unreadable = Some((dir.to_path_buf(), e));
            return sweep;
        }
    };
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                sweep.unreadable = Some((dir.to_path_buf(), e));
                continue;
            }
        };
        let name = entry.file_name();
        let Some(pid) = name
            .as_encoded_bytes()
            .strip_prefix(prefix)
            .and_then(pid_of)
        else {
            continue;
        };
        let ours = pid == std::process::id();
        if (ours && being_written(&name)) || (!ours && process_exists(pid)) {
            continue;
        }
        let shown = path.with_file_name(&name);
        match std::fs::remove_file(entry.path()) {
            Ok(()) => sweep.removed.push(shown),
            // Another run swept it first.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => sweep.failed.push((shown, e)),
        }
    }
    sweep
}

/// The process id that ends a temporary name, written as this module writes it: decimal
/// digits, no sign, no leading zero, within the range of process ids.
fn pid_of(digits: &[u8]) -> Option<u32> {
    let plain = !digits.is_empty()
        && digits.len() <= 10
        && digits[0] != b'0'
        && digits.iter().all(u8::is_ascii_digit);
    let pid: u32 = std::str::from_utf8(digits)
        .ok()
        .filter(|_| plain)?
        .parse()
        .ok()?;
    (pid <= i32::MAX as u32).then_some(pid)
}

/// Whether process `pid` exists on this host: signal 0 tests it without sending anything. A
/// process of another user answers "not permitted" — it exists — where `/proc/<pid>` may be
/// hidden (`hidepid`). Where that cannot be asked, every process is taken to exist.
fn process_exists(pid: u32) -> bool {
    #[cfg(unix)]
    {
        use nix::errno::Errno;
        let pid = nix::unistd::Pid::from_raw(pid as i32);
        !matches!(nix::sys::signal::kill(pid, None), Err(Errno::ESRCH))
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

/// Whether `path` can be replaced here, found by creating and removing its temporary file:
/// what a write needs is to create a file in its directory (the rename then works even over
/// a read-only file). Meant for a check before long work whose result would go there. An
/// error names the temporary file, which may be what is in the way.
pub fn check_replaceable(path: &Path) -> std::io::Result<()> {
    let tmp = temporary_path(&final_target(path)?);
    let _writing = Writing::start(&tmp);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(|e| naming(&tmp, e))?;
    std::fs::remove_file(&tmp).map_err(|e| naming(&tmp, e))
}

/// `e`, with `file` named in its message and its kind kept.
pub(crate) fn naming(file: &Path, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{}: {e}", file.display()))
}

fn temporary_path(path: &Path) -> PathBuf {
    let mut tmp_name = temporary_prefix(path);
    tmp_name.push(std::process::id().to_string());
    path.with_file_name(tmp_name)
}

/// Writes `path` (its [`final_target`]) through `write`, which is given the temporary name to
/// create, then renames that file into place. On any failure the temporary file is removed
/// and the error returned; `failed` turns a failure of this function's own steps ("follow the
/// symbolic link", "rename the temporary file into place") into the caller's error type.
pub(crate) fn replace_atomically<E>(
    path: &Path,
    write: impl FnOnce(&Path) -> Result<(), E>,
    failed: impl FnOnce(&'static str, std::io::Error) -> E,
) -> Result<(), E> {
    let target = match final_target(path) {
        Ok(target) => target,
        Err(e) => return Err(failed("follow the symbolic link", e)),
    };
    let tmp = temporary_path(&target);
    let _writing = Writing::start(&tmp);
    let result = write(&tmp).and_then(|()| {
        std::fs::rename(&tmp, &target).map_err(|e| {
            let e = std::io::Error::new(
                e.kind(),
                format!("{} to {}: {e}", tmp.display(), target.display()),
            );
            failed("rename the temporary file into place", e)
        })
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Writes `parts`, one after the other, to `path` (its [`final_target`]) whole or not at all:
/// into the temporary file, flushed to disk, then renamed into place; while it is written,
/// [`remove_stale_temporaries`] leaves the temporary file alone. Errors carry the step that
/// failed ("follow the symbolic link", "create a temporary file", "write", "flush to disk",
/// "rename the temporary file into place").
pub fn replace_with_bytes(
    path: &Path,
    parts: &[&[u8]],
) -> Result<(), (&'static str, std::io::Error)> {
    use std::io::Write;
    replace_atomically(
        path,
        |tmp| {
            let mut f = std::fs::File::create(tmp)
                .map_err(|e| ("create a temporary file", naming(tmp, e)))?;
            for part in parts {
                f.write_all(part).map_err(|e| ("write", e))?;
            }
            f.sync_all().map_err(|e| ("flush to disk", e))
        },
        |action, e| (action, e),
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
            |_, _| "rename",
        );
        assert_eq!(r, Err("failed midway"));
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "the temporary file was left behind");
        replace_with_bytes(&path, &[b"new"]).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
    }

    #[test]
    fn a_replaceable_path_is_checked_without_leaving_anything() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.png");
        check_replaceable(&path).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let missing = dir.path().join("no").join("x.png");
        assert!(check_replaceable(&missing).is_err());
        // sysfs refuses new files to everyone, root included (who may write anywhere else).
        let sys = Path::new("/sys");
        if sys.is_dir() {
            let e = check_replaceable(&sys.join("prism-check.png")).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied);
        }
    }

    #[test]
    fn only_temporaries_of_dead_processes_of_this_host_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.ckpt");
        let ours = temporary_prefix(&path).into_string().unwrap();
        // A process that has exited: its pid is free (until reused, which a test cannot
        // rule out, but not within these few lines on a quiet machine).
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let names = [
            format!("{ours}{dead}"),                 // left by a killed run: swept
            format!("{ours}{}", std::process::id()), // this pid's, not being written: swept
            format!("{ours}1"),                      // pid 1 is alive
            format!("c.ckpt.tmp-other-host-{dead}"), // another node's, maybe being written
            format!("{ours}{dead}x"),                // not a temporary name
            format!("d.ckpt.tmp-{}{dead}", &ours["c.ckpt.tmp-".len()..]), // another file's
            "c.ckpt".to_string(),
        ];
        for name in &names {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        let mut sweep = remove_stale_temporaries(&path);
        sweep.removed.sort();
        let mut stale = vec![dir.path().join(&names[0]), dir.path().join(&names[1])];
        stale.sort();
        assert_eq!(sweep.removed, stale);
        assert!(sweep.failed.is_empty(), "{:?}", sweep.failed);
        for name in &names[2..] {
            assert!(dir.path().join(name).exists(), "{name} was removed");
        }
        assert!(remove_stale_temporaries(&path).removed.is_empty());
        // A directory that does not exist holds nothing stale.
        let gone = dir.path().join("gone").join("c.ckpt");
        let sweep = remove_stale_temporaries(&gone);
        assert!(sweep.removed.is_empty() && sweep.failed.is_empty() && sweep.unreadable.is_none());
    }

    /// In a container every run may have the same pid (1, say): a file that a killed earlier
    /// run left then carries this process's pid, and must not block this run's writes.
    #[test]
    fn a_temporary_with_this_process_pid_is_stale_unless_this_process_is_writing_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.png");
        let tmp = temporary_path(&path);
        std::fs::write(&tmp, b"left by a killed run").unwrap();
        let sweep = remove_stale_temporaries(&path);
        assert_eq!(sweep.removed, vec![tmp.clone()]);
        check_replaceable(&path).unwrap();

        // While this process writes it, it is not stale.
        let r: Result<(), String> = replace_atomically(
            &path,
            |t| {
                std::fs::write(t, b"new").map_err(|e| e.to_string())?;
                let sweep = remove_stale_temporaries(&path);
                assert!(sweep.removed.is_empty(), "{sweep:?}");
                assert!(t.exists());
                Ok(())
            },
            |action, e| format!("{action}: {e}"),
        );
        r.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert!(!tmp.exists());
        // Done writing, a file under its name is stale again.
        std::fs::write(&tmp, b"x").unwrap();
        assert_eq!(remove_stale_temporaries(&path).removed, vec![tmp]);
    }

    #[test]
    fn a_file_in_the_way_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.png");
        let tmp = temporary_path(&path);
        // What the sweep cannot remove as a file: a directory under the temporary's name.
        std::fs::create_dir(&tmp).unwrap();
        let e = check_replaceable(&path).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
        let name = tmp.display().to_string();
        assert!(e.to_string().contains(&name), "{e}");
        let (action, e) = replace_with_bytes(&path, &[b"x"]).unwrap_err();
        assert_eq!(action, "create a temporary file");
        assert!(e.to_string().contains(&name), "{e}");
        assert!(!path.exists() && tmp.is_dir());
    }

    #[cfg(unix)]
    #[test]
    fn a_symbolic_link_is_written_through_to_its_target() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("scratch")).unwrap();
        let link = dir.path().join("run.ckpt");
        let target = dir.path().join("scratch").join("run.ckpt");
        // Relative to the link's directory; dangling until the first write.
        symlink("scratch/run.ckpt", &link).unwrap();
        assert_eq!(final_target(&link).unwrap(), target);
        check_replaceable(&link).unwrap();
        replace_with_bytes(&link, &[b"one"]).unwrap();
        replace_with_bytes(&link, &[b"two"]).unwrap();
        assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read(&target).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);

        // A chain of links, the last absolute.
        let chain = dir.path().join("chain");
        symlink(&link, &chain).unwrap();
        replace_with_bytes(&chain, &[b"three"]).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"three");
        assert!(chain.symlink_metadata().unwrap().file_type().is_symlink());

        // The sweep looks beside the target.
        let stale = temporary_prefix(&target).into_string().unwrap() + "2000000000";
        let stale = target.with_file_name(stale);
        std::fs::write(&stale, b"x").unwrap();
        assert_eq!(remove_stale_temporaries(&link).removed, vec![stale]);

        // A loop is an error that says so, not a hang.
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        symlink("b", &a).unwrap();
        symlink("a", &b).unwrap();
        let (action, e) = replace_with_bytes(&a, &[b"x"]).unwrap_err();
        assert_eq!(action, "follow the symbolic link");
        assert!(e.to_string().contains("symbolic links in a row"), "{e}");
        assert!(check_replaceable(&a).is_err());
        assert!(a.symlink_metadata().unwrap().file_type().is_symlink());
    }

    #[test]
    fn a_file_that_cannot_be_removed_does_not_stop_the_sweep() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.png");
        let ours = temporary_prefix(&path).into_string().unwrap();
        // Pids far above any live one; a directory under a temporary's name cannot be removed
        // as a file.
        let stale: Vec<String> = (0..5)
            .map(|i| format!("{ours}{}", 2_000_000_000 + i))
            .collect();
        for (i, name) in stale.iter().enumerate() {
            if i == 2 {
                std::fs::create_dir(dir.path().join(name)).unwrap();
            } else {
                std::fs::write(dir.path().join(name), b"x").unwrap();
            }
        }
        let sweep = remove_stale_temporaries(&path);
        assert_eq!(sweep.removed.len(), 4, "{sweep:?}");
        assert_eq!(sweep.failed.len(), 1, "{sweep:?}");
        assert_eq!(sweep.failed[0].0, dir.path().join(&stale[2]));
        assert!(sweep.removed.iter().all(|p| p.parent() == Some(dir.path())));
    }

    #[test]
    fn pids_are_read_only_as_written() {
        assert_eq!(pid_of(b"123"), Some(123));
        assert_eq!(pid_of(b"2147483647"), Some(2147483647));
        for bad in [
            &b""[..],
            b"0",
            b"012",
            b"+12",
            b"-12",
            b" 12",
            b"12 ",
            b"2147483648",
            b"99999999999",
        ] {
            assert_eq!(pid_of(bad), None, "{}", String::from_utf8_lossy(bad));
        }
        assert!(process_exists(std::process::id()));
        assert!(process_exists(1));
    }

    #[test]
    fn the_temporary_name_says_host_and_process() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.bin");
        let mut seen = None;
        let _: Result<(), ()> = replace_atomically(
            &path,
            |tmp| {
                seen = Some(tmp.to_path_buf());
                std::fs::write(tmp, b"x").map_err(|_| ())
            },
            |_, _| (),
        );
        let name = seen
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let host = host_tag();
        assert_eq!(name, format!("f.bin.tmp-{host}-{}", std::process::id()));
        assert!(!host.contains('/') && !host.is_empty());
    }
}
