//! POSIX shared-memory segments that cannot outlive the processes mapping them.
//!
//! The creator opens a fresh `/dev/shm/prism-…` object and unlinks its name at once, before
//! anyone else attaches: the other processes of the node open it through
//! `/proc/<creator pid>/fd/<fd>`, which reaches the object without a name. Linux frees the
//! memory when the last mapping goes, so nothing is left in /dev/shm after a normal exit, an
//! error, a panic or any signal, even SIGKILL. Only when /proc is unusable (another PID
//! namespace, hardened /proc) does the fallback keep the name until every process has attached
//! (two barriers), which leaves a short window in which a job that is killed leaks the segment:
//! not only when the creator is killed, since a launcher ends every process of a job in which
//! one died, the creator with them, before it can unlink the name.

use std::fs::{File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io;

use memmap2::{MmapMut, MmapOptions};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::mman::{shm_open, shm_unlink};
use nix::sys::stat::Mode;

/// Every segment name starts with this, so tests and operators can find strays.
pub const SEGMENT_PREFIX: &str = "prism-";

/// How the other processes of a node reach the creator's segment.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum Handle {
    /// Through `/proc/<pid>/fd/<fd>`; the name is already gone.
    Proc {
        /// Creator's process id.
        pid: u32,
        /// Creator's descriptor.
        fd: i32,
    },
    /// Through the name, which the creator unlinks once everyone has attached.
    Name(String),
}

/// A mapped segment.
pub(crate) struct Segment {
    map: MmapMut,
    /// The creator keeps the object open until every process has attached.
    file: Option<File>,
    /// A name still to unlink (the fallback route), by the creator.
    name: Option<String>,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("bytes", &self.map.len())
            .field("named", &self.name)
            .finish()
    }
}

fn random_name() -> String {
    // RandomState is seeded from the OS per process; the pid separates processes anyway.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    format!(
        "/{SEGMENT_PREFIX}{}-{:016x}",
        std::process::id(),
        h.finish()
    )
}

fn map(file: &File, bytes: usize) -> io::Result<MmapMut> {
    // SAFETY: the object is private to the processes of one SharedArray: nothing else knows
    // its name (random, and unlinked at once on the default route). It is sized before
    // mapping and never truncated, so no access can fault. Concurrent writes from other
    // processes happen only inside SharedArray::set, between barriers, while no reference
    // into the mapping is handed out.
    let map = unsafe { MmapOptions::new().len(bytes).map_mut(file) }?;
    // Large read-mostly data (a scene's BVH) is read all over by incoherent rays, and huge
    // pages spare most of the TLB misses. Only a hint: /dev/shm gives huge pages only when
    // mounted with `huge=advise` (or the kernel forces them), and small pages work as well.
    // The creator populates its mapping after this hint (see `populate`), so on `huge=advise`
    // the pages are huge from the start.
    #[cfg(target_os = "linux")]
    if bytes >= HUGE_PAGE {
        let _ = map.advise(memmap2::Advice::HugePage);
    }
    Ok(map)
}

/// Free bytes in /dev/shm, if it can be asked.
fn free_bytes() -> Option<u128> {
    let fs = nix::sys::statvfs::statvfs("/dev/shm").ok()?;
    Some(u128::from(fs.blocks_available()) * u128::from(fs.fragment_size()))
}

fn no_space(bytes: usize, free: Option<u128>) -> io::Error {
    let free = free.map_or_else(|| "too few".to_string(), |f| f.to_string());
    io::Error::new(
        io::ErrorKind::StorageFull,
        format!(
            "{bytes} bytes requested but /dev/shm has {free} bytes free (in a container, raise \
             it with e.g. docker run --shm-size)"
        ),
    )
}

/// Allocates every page of the creator's mapping, so that touching them later cannot fault:
/// MADV_POPULATE_WRITE (Linux 5.14) reports running out of space as an error where a touch
/// would be a SIGBUS, and allocates after the huge-page hint, so it gets huge pages where
/// /dev/shm gives them. Older kernels reserve through [`reserve`] instead.
fn populate(map: &MmapMut, file: &File, bytes: usize) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    loop {
        match map.advise(memmap2::Advice::PopulateWrite) {
            Ok(()) => return Ok(()),
            Err(e) => match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EINVAL) => return reserve(file, bytes),
                // EFAULT: a page would have been a SIGBUS (the file system is full).
                Some(libc::EFAULT | libc::ENOMEM | libc::ENOSPC) => {
                    return Err(no_space(bytes, free_bytes()))
                }
                _ => return Err(e),
            },
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = map;
        reserve(file, bytes)
    }
}

/// Allocates every page of the object's first `bytes` bytes, so that touching them later
/// cannot fault. A file system that cannot reserve leaves the free-space check of
/// [`Segment::create`] as the only guard.
fn reserve(file: &File, bytes: usize) -> io::Result<()> {
    let len = libc::off_t::try_from(bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "segment too large"))?;
    #[cfg(target_os = "linux")]
    loop {
        // fallocate(2), not posix_fallocate: where the file system lacks it, glibc's
        // posix_fallocate emulates it by writing every block, which is slow and hides the
        // lack. tmpfs interrupts a long reservation on a signal; the pages kept so far count.
        match nix::fcntl::fallocate(file, nix::fcntl::FallocateFlags::empty(), 0, len) {
            Ok(()) => return Ok(()),
            Err(Errno::EINTR) => continue,
            Err(Errno::ENOSPC) => return Err(no_space(bytes, free_bytes())),
            Err(Errno::EOPNOTSUPP) => return Ok(()),
            Err(e) => return Err(io::Error::from(e)),
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (file, len);
        Ok(())
    }
}

/// Size of an x86-64 or AArch64 (4 KiB granule) transparent huge page.
const HUGE_PAGE: usize = 2 << 20;

impl Segment {
    /// Creates a zero-filled segment of `bytes` (> 0) bytes. With `keep_name` the name stays
    /// until [`Segment::attached`] (the fallback route); otherwise it is unlinked at once.
    pub(crate) fn create(bytes: usize, keep_name: bool) -> io::Result<(Segment, Handle)> {
        // Refusing an impossible size up front spares a reservation that would fill /dev/shm
        // page by page (starving the node's other users) before failing.
        let free = free_bytes();
        if free.is_some_and(|free| bytes as u128 > free) {
            return Err(no_space(bytes, free));
        }
        Self::create_reserved(bytes, keep_name)
    }

    /// [`Segment::create`] without the up-front look at the free space: the reservation alone
    /// refuses a segment that does not fit (the tests reach that path through here).
    fn create_reserved(bytes: usize, keep_name: bool) -> io::Result<(Segment, Handle)> {
        let size = libc::off_t::try_from(bytes)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "segment too large"))?;
        let (fd, name) = loop {
            let name = random_name();
            match shm_open(
                name.as_str(),
                OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR,
                Mode::S_IRUSR | Mode::S_IWUSR,
            ) {
                Ok(fd) => break (fd, name),
                Err(Errno::EEXIST) => continue,
                Err(e) => return Err(io::Error::from(e)),
            }
        };
        if !keep_name {
            shm_unlink(name.as_str()).map_err(io::Error::from)?;
        }
        let cleanup = |e: io::Error| {
            if keep_name {
                let _ = shm_unlink(name.as_str());
            }
            e
        };
        let file = File::from(fd);
        // ftruncate alone gives pages that are only allocated when touched: past the file
        // system's capacity (other segments, other jobs) a touch is a SIGBUS. `populate`
        // allocates them now, where running out is an error.
        nix::unistd::ftruncate(&file, size)
            .map_err(io::Error::from)
            .map_err(cleanup)?;
        let map = map(&file, bytes).map_err(cleanup)?;
        populate(&map, &file, bytes).map_err(cleanup)?;
        let handle = if keep_name {
            Handle::Name(name.clone())
        } else {
            Handle::Proc {
                pid: std::process::id(),
                fd: std::os::fd::AsRawFd::as_raw_fd(&file),
            }
        };
        Ok((
            Segment {
                map,
                file: Some(file),
                name: keep_name.then_some(name),
            },
            handle,
        ))
    }

    /// Attaches to the segment of `bytes` bytes created elsewhere on this node.
    pub(crate) fn attach(handle: &Handle, bytes: usize) -> io::Result<Segment> {
        let file = match handle {
            Handle::Proc { pid, fd } => OpenOptions::new()
                .read(true)
                .write(true)
                .open(format!("/proc/{pid}/fd/{fd}"))?,
            Handle::Name(name) => File::from(
                shm_open(name.as_str(), OFlag::O_RDWR, Mode::empty()).map_err(io::Error::from)?,
            ),
        };
        let actual = file.metadata()?.len();
        if actual != bytes as u64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("segment holds {actual} bytes, expected {bytes}"),
            ));
        }
        let map = map(&file, bytes)?;
        Ok(Segment {
            map,
            file: None,
            name: None,
        })
    }

    /// Called by every process once all have attached: the creator closes its descriptor
    /// and, on the fallback route, unlinks the name.
    pub(crate) fn attached(&mut self) {
        self.file = None;
        if let Some(name) = self.name.take() {
            let _ = shm_unlink(name.as_str());
        }
    }

    pub(crate) fn as_ptr(&self) -> *const u8 {
        self.map.as_ptr()
    }

    pub(crate) fn as_mut_ptr(&mut self) -> *mut u8 {
        self.map.as_mut_ptr()
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        self.attached();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_read(keep_name: bool) {
        write_read_bytes(keep_name, 3 * 4096 + 5);
    }

    fn write_read_bytes(keep_name: bool, bytes: usize) {
        let (mut a, handle) = Segment::create(bytes, keep_name).unwrap();
        assert_eq!(matches!(handle, Handle::Name(_)), keep_name);
        let mut b = Segment::attach(&handle, bytes).unwrap();
        assert!(Segment::attach(&handle, bytes + 1).is_err());
        // SAFETY: both mappings are private to this test and `bytes` long.
        unsafe {
            *a.as_mut_ptr().add(bytes - 1) = 42;
            assert_eq!(*b.as_ptr().add(bytes - 1), 42);
            *b.as_mut_ptr() = 7;
            assert_eq!(*a.as_ptr(), 7);
            assert_eq!(*a.as_ptr().add(4096), 0);
        }
        a.attached();
        b.attached();
        assert_eq!(a.len(), bytes);
    }

    #[test]
    fn two_mappings_share_memory_through_proc() {
        write_read(false);
    }

    #[test]
    fn two_mappings_share_memory_through_the_name() {
        write_read(true);
    }

    #[test]
    fn segments_advised_to_use_huge_pages_share_memory_too() {
        write_read_bytes(false, HUGE_PAGE + 5);
        write_read_bytes(true, 2 * HUGE_PAGE);
    }

    #[test]
    fn nothing_is_left_in_dev_shm() {
        let (seg, Handle::Proc { fd, .. }) = Segment::create(4096, false).unwrap() else {
            panic!("the default route goes through /proc");
        };
        // Unlinked at once: the name is gone while the memory is still mapped.
        let target = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap();
        let target = target.to_string_lossy();
        assert!(target.starts_with("/dev/shm/prism-"), "{target}");
        assert!(target.ends_with(" (deleted)"), "{target}");
        drop(seg);
        let (mut seg, Handle::Name(name)) = Segment::create(4096, true).unwrap() else {
            panic!("the fallback route gives a name");
        };
        assert!(std::path::Path::new(&format!("/dev/shm{name}")).exists());
        seg.attached();
        assert!(!std::path::Path::new(&format!("/dev/shm{name}")).exists());
    }

    #[test]
    fn larger_than_dev_shm_is_an_error() {
        let e = Segment::create(usize::MAX / 4, false).unwrap_err();
        assert!(e.to_string().contains("/dev/shm"), "{e}");
    }

    #[test]
    fn more_than_2_pow_31_bytes() {
        let bytes = (1usize << 31) + 16;
        let (mut seg, _) = Segment::create(bytes, false).unwrap();
        // SAFETY: the mapping is `bytes` long; only the last page is touched.
        unsafe {
            *seg.as_mut_ptr().add(bytes - 1) = 9;
            assert_eq!(*seg.as_ptr().add(bytes - 1), 9);
        }
    }

    /// Runs the test named `name` again in a child, under a private mount namespace whose
    /// /dev/shm is a fresh tmpfs of `mib` MiB, with PRISM_COMM_SMALL_SHM set. Returns false
    /// (after saying why) where that cannot be done: not root, or no `unshare` (util-linux).
    fn rerun_with_small_dev_shm(name: &str, mib: usize) -> bool {
        rerun_with_dev_shm(name, &format!("size={mib}m"))
    }

    /// Runs test `name` again in a child process that sees a tmpfs of its own, mounted with
    /// `options`, as /dev/shm (in a mount namespace: needs root). Returns false, with a note,
    /// where that cannot be done.
    fn rerun_with_dev_shm(name: &str, options: &str) -> bool {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped {name}: mounting a small /dev/shm needs root");
            return false;
        }
        let probe = std::process::Command::new("unshare")
            .args(["-m", "true"])
            .output();
        match probe {
            Err(e) => {
                eprintln!("skipped {name}: cannot run unshare (util-linux): {e}");
                return false;
            }
            Ok(out) if !out.status.success() => {
                // Root without CAP_SYS_ADMIN (an unprivileged container) cannot mount.
                eprintln!(
                    "skipped {name}: unshare -m refused: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                return false;
            }
            Ok(_) => {}
        }
        let exe = std::env::current_exe().unwrap();
        let out = std::process::Command::new("unshare")
            .args([
                "-m",
                "sh",
                "-c",
                &format!("mount -t tmpfs -o {options} tmpfs /dev/shm && exec \"$0\" \"$@\""),
            ])
            .arg(exe)
            .args([name, "--exact", "--nocapture", "--test-threads=1"])
            .env("PRISM_COMM_SMALL_SHM", "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name} under a /dev/shm mounted {options}: {}\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        true
    }

    fn prism_names_in_dev_shm() -> Vec<String> {
        std::fs::read_dir("/dev/shm")
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(SEGMENT_PREFIX))
            .collect()
    }

    /// Two segments that each fit /dev/shm but not together: the second is an error when it
    /// is made, not a SIGBUS when it is filled; a reservation that runs out is an error naming
    /// the sizes and leaves neither a name nor used space behind.
    #[test]
    fn segments_past_dev_shm_capacity_are_errors_not_sigbus() {
        const NAME: &str = "shm::tests::segments_past_dev_shm_capacity_are_errors_not_sigbus";
        const MIB: usize = 1 << 20;
        if std::env::var_os("PRISM_COMM_SMALL_SHM").is_none() {
            rerun_with_small_dev_shm(NAME, 64);
            return;
        }
        // In the child: /dev/shm is a fresh 64 MiB tmpfs of this namespace.
        let (mut a, _) = Segment::create(40 * MIB, false).unwrap();
        let e = Segment::create(40 * MIB, false).unwrap_err().to_string();
        assert!(
            e.contains(&format!("{} bytes requested", 40 * MIB)) && e.contains("bytes free"),
            "{e}"
        );
        // Past the up-front check, the reservation itself refuses, and cleans up.
        for keep_name in [false, true] {
            let before = free_bytes().unwrap();
            let e = Segment::create_reserved(40 * MIB, keep_name)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(&format!("{} bytes requested", 40 * MIB)) && e.contains("bytes free"),
                "{e}"
            );
            assert_eq!(free_bytes().unwrap(), before, "space left reserved");
            assert!(prism_names_in_dev_shm().is_empty(), "a name leaked");
        }
        // Every page of the first is there: filling it cannot fault.
        // SAFETY: the mapping is 40 MiB long and private to this test.
        unsafe { std::ptr::write_bytes(a.as_mut_ptr(), 1, 40 * MIB) };
        drop(a);
        let (b, _) = Segment::create(40 * MIB, true).unwrap();
        drop(b);
        assert!(prism_names_in_dev_shm().is_empty(), "a name leaked");
    }

    /// On a /dev/shm mounted `huge=advise`, a segment of several huge pages gets them from its
    /// creation: the pages are allocated after the huge-page hint, not before it.
    #[cfg(target_os = "linux")]
    #[test]
    fn segments_on_a_huge_advise_dev_shm_get_huge_pages() {
        const NAME: &str = "shm::tests::segments_on_a_huge_advise_dev_shm_get_huge_pages";
        if !std::path::Path::new("/sys/kernel/mm/transparent_hugepage").is_dir() {
            eprintln!("skipped {NAME}: this kernel has no transparent huge pages");
            return;
        }
        if std::env::var_os("PRISM_COMM_SMALL_SHM").is_none() {
            rerun_with_dev_shm(NAME, "size=64m,huge=advise");
            return;
        }
        let huge = || -> u64 {
            let text = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap();
            text.lines()
                .find_map(|l| l.strip_prefix("ShmemPmdMapped:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or(0)
        };
        let before = huge();
        let (segment, _) = Segment::create(8 * HUGE_PAGE, false).unwrap();
        let after = huge();
        assert!(
            after >= before + 4 * (HUGE_PAGE as u64 >> 10),
            "ShmemPmdMapped {before} kB before, {after} kB after creating 16 MiB"
        );
        drop(segment);
    }
}
