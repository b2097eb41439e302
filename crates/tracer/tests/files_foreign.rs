//! A large file that is not a checkpoint or a cache, given as one, is refused after a few of
//! its bytes: read whole first, a file of some gigabytes had a memory-limited job killed.
//!
//! One test in a file of its own: it counts the bytes this process reads, which other tests
//! running at the same time would add to. Linux: the count is in /proc/self/io.
#![cfg(target_os = "linux")]

use prism_tracer::{CacheError, Checkpoint, CheckpointError, Geometry};
use std::path::Path;

/// Bytes this process has read through `read` and its kind, from /proc/self/io.
fn bytes_read() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").unwrap();
    let line = io.lines().find_map(|l| l.strip_prefix("rchar:")).unwrap();
    line.trim().parse().unwrap()
}

/// A sparse file of `len` bytes that starts with `head`.
fn sparse(path: &Path, head: &[u8], len: u64) {
    std::fs::write(path, head).unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.set_len(len).unwrap();
}

#[test]
fn a_large_foreign_file_is_refused_after_its_first_bytes() {
    const LEN: u64 = 256 << 20;
    let dir = tempfile::tempdir().unwrap();
    let read_by = |f: &dyn Fn()| {
        let before = bytes_read();
        f();
        bytes_read() - before
    };

    let zeros = dir.path().join("zeros.bin");
    sparse(&zeros, b"", LEN);
    let read = read_by(&|| {
        let e = Checkpoint::read(&zeros).unwrap_err();
        assert!(matches!(e, CheckpointError::NotACheckpoint { .. }), "{e}");
    });
    assert!(read < 1 << 20, "{read} bytes read");
    let read = read_by(&|| {
        let e = Geometry::load_cache(&zeros).unwrap_err();
        assert!(matches!(e, CacheError::BadMagic { .. }), "{e}");
    });
    assert!(read < 1 << 20, "{read} bytes read");

    // A checkpoint's header that declares 100 bytes of payload, in a file far longer.
    let mut head = b"PRISMCKP".to_vec();
    for field in [
        &1u32.to_le_bytes()[..],
        &[0; 4],
        &100u64.to_le_bytes(),
        &[0; 8],
    ] {
        head.extend_from_slice(field);
    }
    let long = dir.path().join("long.ckpt");
    sparse(&long, &head, LEN);
    let read = read_by(&|| {
        let e = Checkpoint::read(&long).unwrap_err();
        assert!(
            e.to_string()
                .contains(&format!("has {LEN} bytes where its header says 132")),
            "{e}"
        );
    });
    assert!(read < 1 << 20, "{read} bytes read");
}
