//! Checkpoints: a film and the passes behind it, kept in a file after every pass, so that a
//! render stopped by a job's time limit (or a node failure, or Ctrl-C) resumes where its last
//! pass ended — and ends with the same bits as a render that was never stopped.
//!
//! That holds because a sample's random numbers depend only on (seed, pixel, pass, sample) and
//! the adaptive sampler's choice only on the film: the film after pass `k`, and the pass index,
//! are the whole state of a render. What else decides the bits — the scene, the image size, the
//! samples per pass, the seed, the sampler's and integrator's settings — is the caller's to
//! name in [`Checkpoint::settings`]; a resume compares them with
//! [`differences`](Checkpoint::differences) and must refuse a checkpoint of another render.
//!
//! The file is little-endian whatever the machine (a checkpoint moves between clusters),
//! checksummed (a damaged file is an error, never a wrong image), and replaced whole after
//! every pass (a run killed while writing leaves the previous checkpoint intact).
//!
//! ```
//! use prism_tracer::checkpoint::Checkpoint;
//! use prism_tracer::Film;
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("render.ckpt");
//! let settings = vec![("seed".to_string(), "7".to_string())];
//! Checkpoint { passes: 3, settings: settings.clone(), film: Film::new(8, 4)? }.write(&path)?;
//!
//! let back = Checkpoint::read(&path)?;
//! assert_eq!(back.passes, 3);
//! assert!(back.differences(&settings).is_empty());
//! let other = vec![("seed".to_string(), "8".to_string())];
//! assert_eq!(back.differences(&other), vec![("seed".to_string(), Some("7".to_string()), Some("8".to_string()))]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::film::Film;
use crate::stats::PixelStats;
use rayon::prelude::*;
use std::io::Read;
use std::path::{Path, PathBuf};
use thiserror::Error;

const MAGIC: [u8; 8] = *b"PRISMCKP";
const VERSION: u32 = 1;
/// Magic, version, a reserved word, the payload's length and checksum.
const HEADER_LEN: usize = 8 + 4 + 4 + 8 + 8;
/// Mean and M2 per channel, the count, the next pass.
const PIXEL_LEN: usize = 6 * 8 + 8 + 4;

/// A render's state after some passes.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    /// Passes merged into the film; a resumed render starts with pass index `passes`.
    pub passes: u32,
    /// Everything besides the film that decides the image, as (name, value) pairs in the
    /// caller's words (`--spp`, `16`).
    pub settings: Vec<(String, String)>,
    pub film: Film,
}

/// A checkpoint that cannot be read or written; names the file.
#[derive(Debug, Error)]
pub enum CheckpointError {
    #[error("{}: cannot {action}: {source}", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a prism checkpoint (the first 8 bytes are not \"PRISMCKP\")", path.display())]
    NotACheckpoint { path: PathBuf },
    #[error("{}: the file is empty", path.display())]
    Empty { path: PathBuf },
    #[error("{}: checkpoint format version {found}, but this prism reads version {VERSION}", path.display())]
    WrongVersion { path: PathBuf, found: u32 },
    #[error("{}: is {kind}, not a regular file", path.display())]
    NotAFile { path: PathBuf, kind: &'static str },
    #[error("{}: truncated: {expected} bytes expected, {actual} present", path.display())]
    Truncated {
        path: PathBuf,
        expected: u64,
        actual: u64,
    },
    #[error("{}: has {actual} bytes where its header says {expected}: not a checkpoint as prism writes it (something added at its end?)", path.display())]
    TooLong {
        path: PathBuf,
        expected: u64,
        actual: u64,
    },
    #[error("{}: checksum mismatch (stored {stored:#018x}, computed {computed:#018x}): the file is damaged", path.display())]
    Checksum {
        path: PathBuf,
        stored: u64,
        computed: u64,
    },
    #[error("{}: corrupt: {what}", path.display())]
    Corrupt { path: PathBuf, what: String },
    #[error("{}: in use by another run ({}, which holds the lock on {}): two runs writing one checkpoint would overwrite each other's passes", path.display(), holder.as_deref().unwrap_or("which one is not recorded"), lock.display())]
    InUse {
        path: PathBuf,
        lock: PathBuf,
        holder: Option<String>,
    },
}

impl Checkpoint {
    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let (header, payload) = encode(self.passes, &self.settings, &self.film);
        [&header[..], &payload].concat()
    }

    /// Writes the checkpoint to `path`, replacing any file there only once the new one is
    /// whole and flushed to disk.
    pub fn write(&self, path: &Path) -> Result<(), CheckpointError> {
        let (header, payload) = encode(self.passes, &self.settings, &self.film);
        write_parts(path, &header, &payload)
    }

    /// Reads a checkpoint from `bytes`; `path` names it in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Checkpoint, CheckpointError> {
        let head = &bytes[..bytes.len().min(HEADER_LEN)];
        let stored = check_header(head, bytes.len() as u64, path)?;
        from_payload(&bytes[HEADER_LEN..], stored, path)
    }

    /// Reads the checkpoint at `path`: a regular file (a FIFO would hang the read, a device
    /// never end it), whose header is checked before the rest is read, so that a large file
    /// of something else costs a few bytes' read, not its size in memory.
    pub fn read(path: &Path) -> Result<Checkpoint, CheckpointError> {
        let failed = |source| CheckpointError::Io {
            path: path.to_path_buf(),
            action: "read",
            source,
        };
        let (mut file, len) = crate::regular::open(path).map_err(|e| match e {
            crate::regular::OpenError::Io(source) => failed(source),
            crate::regular::OpenError::NotAFile(kind) => CheckpointError::NotAFile {
                path: path.to_path_buf(),
                kind,
            },
        })?;
        let head = crate::regular::read_head(&mut file, HEADER_LEN).map_err(failed)?;
        let stored = check_header(&head, len, path)?;
        let want = len - HEADER_LEN as u64;
        let mut payload = Vec::new();
        usize::try_from(want)
            .ok()
            .and_then(|n| payload.try_reserve_exact(n).ok())
            .ok_or_else(|| failed(std::io::ErrorKind::OutOfMemory.into()))?;
        (&mut file)
            .take(want)
            .read_to_end(&mut payload)
            .map_err(failed)?;
        // Shortened since its length was taken.
        if payload.len() as u64 != want {
            return Err(CheckpointError::Truncated {
                path: path.to_path_buf(),
                expected: len,
                actual: HEADER_LEN as u64 + payload.len() as u64,
            });
        }
        from_payload(&payload, stored, path)
    }

    /// The settings that differ between this checkpoint and `settings`, by name, in the
    /// checkpoint's order and then `settings`'s: `(name, the checkpoint's value, the value in
    /// settings)`, `None` for a name one side lacks. Empty when the checkpoint belongs to the
    /// render that `settings` describe.
    pub fn differences(
        &self,
        settings: &[(String, String)],
    ) -> Vec<(String, Option<String>, Option<String>)> {
        let find = |list: &[(String, String)], name: &str| {
            list.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
        };
        let mut out = Vec::new();
        for (name, mine) in &self.settings {
            let theirs = find(settings, name);
            if theirs.as_ref() != Some(mine) {
                out.push((name.clone(), Some(mine.clone()), theirs));
            }
        }
        for (name, theirs) in settings {
            if find(&self.settings, name).is_none() {
                out.push((name.clone(), None, Some(theirs.clone())));
            }
        }
        out
    }
}

/// Writes a render's checkpoints to one file, each on a thread of its own, so that the render
/// goes on while the file is written and flushed to disk (at 1920×1080, 124 MB: about 0.1 s to
/// encode, then 0.5 s to write and flush on the development machine, which every rank would
/// otherwise wait out after every pass). [`save`](CheckpointWriter::save) takes its snapshot of
/// the film at once; at most one write is in flight, and its error (a full disk, say) comes
/// back from the next `save` or from [`finish`](CheckpointWriter::finish). Dropped unfinished
/// (a run that failed), it still waits for the write in flight, so that the last pass's
/// checkpoint is not lost and no temporary file is left behind.
///
/// A process that is about to end on a signal, while its main thread is busy rendering, ends
/// the writer from another thread through its [`CheckpointProgress`].
#[derive(Debug)]
pub struct CheckpointWriter {
    path: PathBuf,
    settings: Vec<(String, String)>,
    pending: Option<std::thread::JoinHandle<Result<(), CheckpointError>>>,
    progress: CheckpointProgress,
}

/// Where a [`CheckpointWriter`]'s writes have got to, shared with other threads: the passes
/// the file holds, whether a write is in flight, and whether the writer has been closed.
#[derive(Clone, Debug, Default)]
pub struct CheckpointProgress {
    state: std::sync::Arc<(std::sync::Mutex<Progress>, std::sync::Condvar)>,
}

#[derive(Debug, Default)]
struct Progress {
    in_flight: bool,
    written: Option<u32>,
    closed: bool,
}

impl CheckpointProgress {
    fn lock(&self) -> std::sync::MutexGuard<'_, Progress> {
        // The lock guards plain flags that a panic cannot leave half-set.
        self.state.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The passes in the last checkpoint this writer completed (`None`: none yet).
    pub fn written(&self) -> Option<u32> {
        self.lock().written
    }

    /// Ends the writer for good: no write starts after this call, and the one in flight, if
    /// any, is waited for — so that a process ending right after it (on SIGTERM, say) leaves a
    /// whole checkpoint and no temporary file. Returns the passes in the last checkpoint the
    /// writer completed. Later calls of [`CheckpointWriter::save`] write nothing.
    pub fn close(&self) -> Option<u32> {
        let mut p = self.lock();
        p.closed = true;
        while p.in_flight {
            p = self.state.1.wait(p).unwrap_or_else(|e| e.into_inner());
        }
        p.written
    }

    /// Marks a write as started, unless the writer is closed (then `false`).
    fn start(&self) -> bool {
        let mut p = self.lock();
        if p.closed {
            return false;
        }
        p.in_flight = true;
        true
    }

    fn done(&self, written: Option<u32>) {
        let mut p = self.lock();
        p.in_flight = false;
        if written.is_some() {
            p.written = written;
        }
        self.state.1.notify_all();
    }
}

impl CheckpointWriter {
    /// A writer of checkpoints of the render that `settings` describe, to `path`.
    pub fn new(path: &Path, settings: Vec<(String, String)>) -> CheckpointWriter {
        CheckpointWriter {
            path: path.to_path_buf(),
            settings,
            pending: None,
            progress: CheckpointProgress::default(),
        }
    }

    /// Saves `film`, which holds `passes` passes: encodes it now, writes it in the background.
    /// Returns the previous write's error, if it failed. Once the writer has been
    /// [closed](CheckpointProgress::close), it writes nothing.
    pub fn save(&mut self, passes: u32, film: &Film) -> Result<(), CheckpointError> {
        self.wait()?;
        let (header, payload) = encode(passes, &self.settings, film);
        if !self.progress.start() {
            return Ok(());
        }
        let path = self.path.clone();
        let progress = self.progress.clone();
        let handle = std::thread::Builder::new()
            .name("prism-checkpoint".into())
            .spawn(move || {
                let result = write_parts(&path, &header, &payload);
                progress.done(result.is_ok().then_some(passes));
                result
            })
            .map_err(|source| {
                self.progress.done(None);
                CheckpointError::Io {
                    path: self.path.clone(),
                    action: "start a thread to write",
                    source,
                }
            })?;
        self.pending = Some(handle);
        Ok(())
    }

    /// The writer's progress, for another thread to read or to [close](CheckpointProgress::close).
    pub fn progress(&self) -> CheckpointProgress {
        self.progress.clone()
    }

    /// Waits for the write in flight, if any; its error, if it failed. A caller that writes
    /// other files of the next pass (its images) calls this first, so that those files are
    /// never more than one pass ahead of the checkpoint on disk.
    pub fn flush(&mut self) -> Result<(), CheckpointError> {
        self.wait()
    }

    /// Waits for the last write; its error, if it failed.
    pub fn finish(mut self) -> Result<(), CheckpointError> {
        self.wait()
    }

    fn wait(&mut self) -> Result<(), CheckpointError> {
        match self.pending.take() {
            None => Ok(()),
            Some(handle) => handle.join().unwrap_or_else(|_| {
                // The thread panicked before it could say so.
                self.progress.done(None);
                Err(CheckpointError::Io {
                    path: self.path.clone(),
                    action: "write",
                    source: std::io::Error::other("the writing thread panicked"),
                })
            }),
        }
    }
}

impl Drop for CheckpointWriter {
    fn drop(&mut self) {
        let _ = self.wait();
    }
}

/// Keeps a second run off a checkpoint while one uses it: an exclusive `flock` on
/// `<checkpoint>.lock`, beside the file that links lead to, held while this value lives.
///
/// Without it, two jobs given the same file (a job array whose jobs all say `run.ckpt`)
/// would each replace the other's checkpoint after every pass, and a resume would find a
/// checkpoint of the other render. The kernel drops the lock however the holder ends
/// (SIGKILL included), so a killed run's checkpoint can be resumed at once; a normal end
/// also removes the lock file. Like every `flock`, it keeps apart runs on one node, and on
/// most shared file systems runs on different nodes too (not on NFS mounted with
/// `local_lock`, nor on some FUSE file systems).
#[derive(Debug)]
pub struct CheckpointLock {
    path: PathBuf,
    // Dropped after `drop` has removed the file: the removal happens under the lock.
    _file: std::fs::File,
}

impl CheckpointLock {
    /// Takes the lock of the checkpoint at `checkpoint` (which need not exist yet), or says
    /// which run holds it.
    pub fn acquire(checkpoint: &Path) -> Result<CheckpointLock, CheckpointError> {
        use std::io::Write;
        let io = |action, source| CheckpointError::Io {
            path: checkpoint.to_path_buf(),
            action,
            source,
        };
        let target =
            crate::replace::final_target(checkpoint).map_err(|e| io("follow the links of", e))?;
        let mut name = target.into_os_string();
        name.push(".lock");
        let path = PathBuf::from(name);
        // A run that ends removes the file while it holds the lock: one that opened the file
        // just before then holds a lock on a file no one else will find, and tries again.
        for _ in 0..100 {
            let opened = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path);
            // A lock file another user's run left (mode 0644) cannot be written by this user,
            // but a read-only descriptor takes a `flock` just as well.
            let opened = match opened {
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    std::fs::File::open(&path).map_err(|_| e)
                }
                other => other,
            };
            let mut file =
                opened.map_err(|e| io("create its lock file", crate::replace::naming(&path, e)))?;
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => {
                    let holder = std::fs::read_to_string(&path)
                        .ok()
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty());
                    return Err(CheckpointError::InUse {
                        path: checkpoint.to_path_buf(),
                        lock: path,
                        holder,
                    });
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(io("lock", crate::replace::naming(&path, e)))
                }
            }
            if !same_file(&file, &path) {
                continue;
            }
            let who = format!(
                "process {} on {}",
                std::process::id(),
                crate::replace::host_name()
            );
            // Only for the message another run gets: a failure to record it does not matter.
            let _ = file
                .set_len(0)
                .and_then(|()| file.write_all(who.as_bytes()));
            return Ok(CheckpointLock { path, _file: file });
        }
        Err(io(
            "lock",
            std::io::Error::other(format!(
                "{} kept being removed by other runs as this one took it",
                path.display()
            )),
        ))
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for CheckpointLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Whether `path` still names the open `file`.
#[cfg(unix)]
fn same_file(file: &std::fs::File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(_: &std::fs::File, path: &Path) -> bool {
    path.exists()
}

/// Checks a checkpoint's header, `head` (the file's first bytes, up to [`HEADER_LEN`]), and
/// the file's length `len` against the length it declares; the payload's stored checksum.
fn check_header(head: &[u8], len: u64, path: &Path) -> Result<u64, CheckpointError> {
    let path = path.to_path_buf();
    // Not "the first 8 bytes are not PRISMCKP": there are none.
    if len == 0 {
        return Err(CheckpointError::Empty { path });
    }
    if head.len() < 8 || head[..8] != MAGIC {
        return Err(CheckpointError::NotACheckpoint { path });
    }
    if head.len() < HEADER_LEN {
        return Err(CheckpointError::Truncated {
            path,
            expected: HEADER_LEN as u64,
            actual: len,
        });
    }
    let mut header = Reader::new(&head[8..HEADER_LEN]);
    let version = header.u32().unwrap_or_default();
    if version != VERSION {
        return Err(CheckpointError::WrongVersion {
            path,
            found: version,
        });
    }
    let _reserved = header.u32();
    let payload_len = header.u64().unwrap_or_default();
    let stored = header.u64().unwrap_or_default();
    let expected = (HEADER_LEN as u64).saturating_add(payload_len);
    if len < expected {
        return Err(CheckpointError::Truncated {
            path,
            expected,
            actual: len,
        });
    }
    if len > expected {
        return Err(CheckpointError::TooLong {
            path,
            expected,
            actual: len,
        });
    }
    Ok(stored)
}

/// The checkpoint in `payload`, whose checksum the header gives as `stored`.
fn from_payload(payload: &[u8], stored: u64, path: &Path) -> Result<Checkpoint, CheckpointError> {
    let path = path.to_path_buf();
    let computed = xxhash_rust::xxh3::xxh3_64(payload);
    if computed != stored {
        return Err(CheckpointError::Checksum {
            path,
            stored,
            computed,
        });
    }
    parse_payload(payload).map_err(|what| CheckpointError::Corrupt { path, what })
}

/// Writes a checkpoint's header and payload to `path`, whole or not at all (header and payload
/// apart: a large film is not copied a second time).
fn write_parts(path: &Path, header: &[u8], payload: &[u8]) -> Result<(), CheckpointError> {
    crate::replace::replace_with_bytes(path, &[header, payload]).map_err(|(action, source)| {
        CheckpointError::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    })
}

/// The file's header and payload.
fn encode(passes: u32, settings: &[(String, String)], film: &Film) -> ([u8; HEADER_LEN], Vec<u8>) {
    let pixels = film.pixels();
    let mut payload = Vec::with_capacity(64 + pixels.len() * PIXEL_LEN);
    payload.extend_from_slice(&passes.to_le_bytes());
    payload.extend_from_slice(&(settings.len() as u32).to_le_bytes());
    for (name, value) in settings {
        for text in [name, value] {
            payload.extend_from_slice(&(text.len() as u32).to_le_bytes());
            payload.extend_from_slice(text.as_bytes());
        }
    }
    payload.extend_from_slice(&film.width().to_le_bytes());
    payload.extend_from_slice(&film.height().to_le_bytes());
    payload.extend_from_slice(&film.ray_count().to_le_bytes());
    // The pixels on all cores: they are nearly all of the bytes.
    let head = payload.len();
    payload.resize(head + pixels.len() * PIXEL_LEN, 0);
    payload[head..]
        .par_chunks_mut(PIXEL_LEN)
        .zip(pixels.par_iter().zip(film.next_passes()))
        .for_each(|(out, (p, next))| {
            let values = p.mean.iter().chain(&p.m2).map(|v| v.to_le_bytes());
            let fields = values.chain([p.count.to_le_bytes()]);
            for (slot, bytes) in out.chunks_exact_mut(8).zip(fields) {
                slot.copy_from_slice(&bytes);
            }
            out[PIXEL_LEN - 4..].copy_from_slice(&next.to_le_bytes());
        });
    let mut header = [0u8; HEADER_LEN];
    let fields = [
        &MAGIC[..],
        &VERSION.to_le_bytes(),
        &0u32.to_le_bytes(),
        &(payload.len() as u64).to_le_bytes(),
        &xxhash_rust::xxh3::xxh3_64(&payload).to_le_bytes(),
    ];
    let mut at = 0;
    for field in fields {
        header[at..at + field.len()].copy_from_slice(field);
        at += field.len();
    }
    (header, payload)
}

fn parse_payload(payload: &[u8]) -> Result<Checkpoint, String> {
    let mut r = Reader::new(payload);
    let short = || "the payload ends early".to_string();
    let passes = r.u32().ok_or_else(short)?;
    let count = r.u32().ok_or_else(short)?;
    let mut settings = Vec::new();
    for i in 0..count {
        let mut text = || -> Result<String, String> {
            let len = r.u32().ok_or_else(short)? as usize;
            let bytes = r.take(len).ok_or_else(short)?;
            String::from_utf8(bytes.to_vec()).map_err(|_| format!("setting {i} is not UTF-8"))
        };
        let name = text()?;
        let value = text()?;
        settings.push((name, value));
    }
    let width = r.u32().ok_or_else(short)?;
    let height = r.u32().ok_or_else(short)?;
    let ray_count = r.u64().ok_or_else(short)?;
    let n = u64::from(width) * u64::from(height);
    if n == 0 || (r.rest() as u64) != n.saturating_mul(PIXEL_LEN as u64) {
        return Err(format!(
            "a film of {width}x{height} pixels needs {} bytes of pixels, the file holds {}",
            n.saturating_mul(PIXEL_LEN as u64),
            r.rest()
        ));
    }
    let mut pixels = Vec::with_capacity(n as usize);
    let mut next_pass = Vec::with_capacity(n as usize);
    let mut samples = 0u64;
    let pixel = |i: u64| {
        let w = u64::from(width);
        format!("pixel {} of row {}", i % w, i / w)
    };
    for i in 0..n {
        let mut p = PixelStats::default();
        for v in p.mean.iter_mut().chain(p.m2.iter_mut()) {
            *v = r.f64().ok_or_else(short)?;
        }
        p.count = r.u64().ok_or_else(short)?;
        let next = r.u32().ok_or_else(short)?;
        // A pixel cannot hold a pass the render has not done.
        if next > passes {
            return Err(format!(
                "{} holds pass {} of a render of {passes} passes",
                pixel(i),
                next - 1
            ));
        }
        check_pixel(&p, next).map_err(|what| format!("{}: {what}", pixel(i)))?;
        samples = samples.checked_add(p.count).ok_or_else(|| {
            format!(
                "{}: with it the film's samples number more than 2^64 - 1",
                pixel(i)
            )
        })?;
        pixels.push(p);
        next_pass.push(next);
    }
    // Every ray a film counts was traced for one of its samples.
    let most = samples.saturating_mul(crate::integrator::MAX_RAYS_PER_SAMPLE);
    if ray_count > most {
        return Err(format!(
            "the film counts {ray_count} rays for {samples} samples, more than they can trace \
             ({} each at most)",
            crate::integrator::MAX_RAYS_PER_SAMPLE
        ));
    }
    let film = Film::from_parts(width, height, pixels, next_pass, ray_count)
        .ok_or_else(|| format!("a film of {width}x{height} pixels is not one prism renders"))?;
    Ok(Checkpoint {
        passes,
        settings,
        film,
    })
}

/// Why the statistics of a pixel that holds passes below `next` cannot be a render's. Samples
/// are finite (the integrator zeroes any other), so their mean is finite and M2, a sum of
/// squares, finite and not negative; a pass adds at most `u32::MAX` samples to a pixel (the
/// most a pass can ask for). Anything else would reach the image as NaN, or overflow a count
/// at the next merge.
fn check_pixel(p: &PixelStats, next: u32) -> Result<(), String> {
    const CHANNELS: [&str; 3] = ["red", "green", "blue"];
    if let Some(c) = p.mean.iter().position(|m| !m.is_finite()) {
        return Err(format!(
            "its {} mean is {}, not a finite number",
            CHANNELS[c], p.mean[c]
        ));
    }
    if let Some(c) = p.m2.iter().position(|m| !(m.is_finite() && *m >= 0.0)) {
        return Err(format!(
            "its {} sum of squared deviations is {}, not a finite number of at least 0",
            CHANNELS[c], p.m2[c]
        ));
    }
    let most = u64::from(next) * u64::from(u32::MAX);
    if p.count > most {
        return Err(format!(
            "it holds {} samples, more than the {next} pass{} it holds can give ({most} at most)",
            p.count,
            if next == 1 { "" } else { "es" }
        ));
    }
    Ok(())
}

/// Little-endian values off the front of a byte slice; `None` past its end.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes }
    }
    fn rest(&self) -> usize {
        self.bytes.len()
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.bytes.len() {
            return None;
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Some(head)
    }
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }
    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }
    fn f64(&mut self) -> Option<f64> {
        self.array().map(f64::from_le_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;

    #[test]
    fn a_checkpoint_in_use_is_refused_until_its_run_ends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.ckpt");
        let lock = dir.path().join("r.ckpt.lock");
        let first = CheckpointLock::acquire(&path).unwrap();
        assert_eq!(first.path(), lock);
        // flock excludes open files, not processes: a second open in this process is
        // refused as another run's would be.
        match CheckpointLock::acquire(&path) {
            Err(CheckpointError::InUse {
                path: p,
                lock: l,
                holder,
            }) => {
                assert_eq!((p, l), (path.clone(), lock.clone()));
                let holder = holder.expect("the holder is recorded");
                assert!(
                    holder.starts_with(&format!("process {} on ", std::process::id())),
                    "{holder}"
                );
            }
            other => panic!("expected InUse, got {other:?}"),
        }
        let e = CheckpointLock::acquire(&path).unwrap_err().to_string();
        assert!(e.contains("r.ckpt: in use by another run (process "), "{e}");
        assert!(e.contains("r.ckpt.lock"), "{e}");
        drop(first);
        assert!(!lock.exists(), "a run that ends removes its lock file");
        let again = CheckpointLock::acquire(&path).unwrap();
        assert!(lock.exists());
        drop(again);
    }

    #[test]
    fn a_lock_file_left_by_a_killed_run_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.ckpt");
        let lock = dir.path().join("r.ckpt.lock");
        std::fs::write(&lock, "process 1 on a node that died, with a long story").unwrap();
        let taken = CheckpointLock::acquire(&path).unwrap();
        // The old holder's words are gone, not overwritten in part.
        assert_eq!(
            std::fs::read_to_string(&lock).unwrap(),
            format!(
                "process {} on {}",
                std::process::id(),
                crate::replace::host_name()
            )
        );
        drop(taken);
    }

    #[cfg(unix)]
    #[test]
    fn a_checkpoint_reached_through_a_link_is_locked_beside_its_target() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("scratch")).unwrap();
        let real = dir.path().join("scratch/r.ckpt");
        let link = dir.path().join("r.ckpt");
        std::os::unix::fs::symlink("scratch/r.ckpt", &link).unwrap();
        let held = CheckpointLock::acquire(&link).unwrap();
        assert_eq!(held.path(), dir.path().join("scratch/r.ckpt.lock"));
        assert!(matches!(
            CheckpointLock::acquire(&real),
            Err(CheckpointError::InUse { .. })
        ));
    }

    #[test]
    fn a_lock_file_removed_after_it_was_opened_is_not_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let file = std::fs::File::create(&path).unwrap();
        assert!(same_file(&file, &path));
        std::fs::remove_file(&path).unwrap();
        assert!(!same_file(&file, &path));
        std::fs::File::create(&path).unwrap();
        assert!(!same_file(&file, &path), "a new file of the same name");
    }

    /// A film after two passes, the second over some of the pixels, holding values whose bits
    /// a text format could lose (negative zero, a subnormal, 2 plus a few units in the last
    /// place).
    fn film() -> Film {
        let pixels = (0..15)
            .map(|i| PixelStats {
                mean: [i as f64 * 0.1, -0.0, f64::MIN_POSITIVE / 3.0],
                m2: [
                    1.0 / (i as f64 + 3.0),
                    f64::from_bits(0x4000_0000_0000_0042),
                    2.5,
                ],
                count: 4 + i,
            })
            .collect();
        let next_pass = (0..15).map(|i| [2, 1][i % 2]).collect();
        Film::from_parts(5, 3, pixels, next_pass, 1234).unwrap()
    }

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            passes: 2,
            settings: vec![
                ("scene".into(), "cornell".into()),
                ("--spp".into(), "16".into()),
                ("note".into(), "ünïcode".into()),
            ],
            film: film(),
        }
    }

    #[test]
    fn a_checkpoint_comes_back_with_the_same_bits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.ckpt");
        let c = checkpoint();
        c.write(&path).unwrap();
        let back = Checkpoint::read(&path).unwrap();
        assert_eq!(back.passes, 2);
        assert_eq!(back.settings, c.settings);
        assert!(back.film.bit_identical(&c.film));
        assert_eq!(back.film.next_passes(), c.film.next_passes());
        assert_eq!(back.film.next_passes()[..3], [2, 1, 2]);
        assert_eq!(back.film.ray_count(), 1234);
        // -0.0 == 0.0: compare bits, not values.
        let p = back.film.pixels()[4];
        assert_eq!(p.mean[1].to_bits(), (-0.0f64).to_bits());
        assert_eq!(p.m2[1].to_bits(), 0x4000_0000_0000_0042);
        assert_eq!(p.mean[2], f64::MIN_POSITIVE / 3.0);
    }

    #[test]
    fn damaged_truncated_and_foreign_files_are_refused_with_the_reason() {
        let path = Path::new("run.ckpt");
        let bytes = checkpoint().to_bytes();
        let err = |b: &[u8]| Checkpoint::from_bytes(b, path).unwrap_err().to_string();

        let mut flipped = bytes.clone();
        let last = flipped.len() - 9;
        flipped[last] ^= 0x10;
        assert!(
            err(&flipped).contains("run.ckpt: checksum mismatch"),
            "{}",
            err(&flipped)
        );
        let cut = &bytes[..bytes.len() - 60];
        assert!(err(cut).contains("run.ckpt: truncated"), "{}", err(cut));
        let n = bytes.len();
        let longer = [&bytes[..], b"x"].concat();
        let said = format!(
            "run.ckpt: has {} bytes where its header says {n}: not a checkpoint",
            n + 1
        );
        assert!(err(&longer).contains(&said), "{}", err(&longer));
        assert!(err(b"P6\n1 1\n255\n").contains("not a prism checkpoint"));
        // It has no first 8 bytes to be other than "PRISMCKP".
        assert_eq!(err(b""), "run.ckpt: the file is empty");
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.ckpt");
        std::fs::write(&empty, b"").unwrap();
        let e = Checkpoint::read(&empty).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{}: the file is empty", empty.display())
        );
        assert!(err(&bytes[..20]).contains("truncated"));
        let mut newer = bytes.clone();
        newer[8] = 2;
        assert!(err(&newer).contains("format version 2"), "{}", err(&newer));
    }

    /// A FIFO used to hang the read (until some writer came), a device such as `/dev/zero`
    /// to be read without end.
    #[cfg(unix)]
    #[test]
    fn only_regular_files_are_read_and_others_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = |p: &Path| Checkpoint::read(p).unwrap_err().to_string();
        let fifo = dir.path().join("f.ckpt");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success());
        // A writer, so that a read of the FIFO would end rather than hang the test.
        let writer = std::thread::spawn({
            let fifo = fifo.clone();
            move || std::fs::write(fifo, b"not a checkpoint")
        });
        let said = err(&fifo);
        // The writer's open waits for a reader; this one does not wait for a writer.
        let _reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(&fifo)
            .unwrap();
        let _ = writer.join().unwrap();
        let name = fifo.display();
        assert_eq!(
            said,
            format!("{name}: is a FIFO (named pipe), not a regular file")
        );
        let said = err(Path::new("/dev/null"));
        assert_eq!(said, "/dev/null: is a character device, not a regular file");
        let said = err(dir.path());
        assert!(
            said.ends_with(": is a directory, not a regular file"),
            "{said}"
        );
    }

    #[test]
    fn a_payload_that_contradicts_itself_is_corrupt_even_with_a_good_checksum() {
        // Pixels that hold a pass beyond the render's passes.
        let mut c = checkpoint();
        c.passes = 1;
        let e = Checkpoint::from_bytes(&c.to_bytes(), Path::new("x.ckpt")).unwrap_err();
        assert!(
            e.to_string()
                .contains("x.ckpt: corrupt: pixel 0 of row 0 holds pass 1 of a render of 1 passes"),
            "{e}"
        );
    }

    /// Each used to be read back, checksum and all, and to wreck the resumed render: a NaN
    /// image, or the next merge's `+=` overflowing (a panic in debug builds, a wrap in release).
    #[test]
    fn statistics_no_render_can_produce_are_corrupt_even_with_a_good_checksum() {
        let err = |c: &Checkpoint| {
            let e = Checkpoint::from_bytes(&c.to_bytes(), Path::new("x.ckpt")).unwrap_err();
            assert!(matches!(e, CheckpointError::Corrupt { .. }), "{e}");
            e.to_string()
        };
        let with = |pixel: usize, change: &dyn Fn(&mut PixelStats)| {
            let c = checkpoint();
            let mut pixels = c.film.pixels().to_vec();
            change(&mut pixels[pixel]);
            let next = c.film.next_passes().to_vec();
            let film = Film::from_parts(5, 3, pixels, next, c.film.ray_count()).unwrap();
            Checkpoint { film, ..c }
        };
        assert_eq!(
            err(&with(7, &|p| p.mean[2] = f64::NAN)),
            "x.ckpt: corrupt: pixel 2 of row 1: its blue mean is NaN, not a finite number"
        );
        assert_eq!(
            err(&with(0, &|p| p.mean[0] = f64::INFINITY)),
            "x.ckpt: corrupt: pixel 0 of row 0: its red mean is inf, not a finite number"
        );
        assert_eq!(
            err(&with(3, &|p| p.m2[1] = -0.5)),
            "x.ckpt: corrupt: pixel 3 of row 0: its green sum of squared deviations is -0.5, \
             not a finite number of at least 0"
        );
        assert!(
            err(&with(3, &|p| p.m2[0] = f64::NAN)).contains("red sum of squared deviations is NaN"),
        );
        // Pixel 1 holds one pass (see `film`).
        assert_eq!(
            err(&with(1, &|p| p.count = u64::MAX)),
            "x.ckpt: corrupt: pixel 1 of row 0: it holds 18446744073709551615 samples, more \
             than the 1 pass it holds can give (4294967295 at most)"
        );
        assert!(err(&with(2, &|p| p.count = 2 * u64::from(u32::MAX) + 1))
            .contains("pixel 2 of row 0: it holds 8589934591 samples, more than the 2 passes"));
        // The most each pixel can hold, but not both.
        let most = u64::from(u32::MAX) * u64::from(u32::MAX);
        let full = PixelStats {
            count: most,
            ..PixelStats::default()
        };
        let film = Film::from_parts(2, 1, vec![full; 2], vec![u32::MAX; 2], 0).unwrap();
        let c = Checkpoint {
            passes: u32::MAX,
            settings: vec![],
            film,
        };
        assert_eq!(
            err(&c),
            "x.ckpt: corrupt: pixel 1 of row 0: with it the film's samples number more than \
             2^64 - 1"
        );
        // More rays than the film's samples can have traced.
        let mut c = checkpoint();
        let samples = c.film.sample_count();
        c.film = Film::from_parts(
            5,
            3,
            c.film.pixels().to_vec(),
            c.film.next_passes().to_vec(),
            u64::MAX,
        )
        .unwrap();
        assert_eq!(
            err(&c),
            format!(
                "x.ckpt: corrupt: the film counts 18446744073709551615 rays for {samples} \
                 samples, more than they can trace (8589934591 each at most)"
            )
        );
        // The largest believable values are still read.
        let mut c = checkpoint();
        let most = samples * crate::integrator::MAX_RAYS_PER_SAMPLE;
        c.film = Film::from_parts(
            5,
            3,
            c.film.pixels().to_vec(),
            c.film.next_passes().to_vec(),
            most,
        )
        .unwrap();
        assert_eq!(
            Checkpoint::from_bytes(&c.to_bytes(), Path::new("x.ckpt")).unwrap(),
            c
        );
    }

    #[test]
    fn the_background_writer_leaves_the_last_checkpoint_and_reports_a_failed_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bg.ckpt");
        let c = checkpoint();
        let mut w = CheckpointWriter::new(&path, c.settings.clone());
        w.save(1, &c.film).unwrap();
        // Once flushed, the file on disk holds the pass saved last.
        w.flush().unwrap();
        assert_eq!(w.progress().written(), Some(1));
        let one = Checkpoint {
            passes: 1,
            ..c.clone()
        };
        assert_eq!(std::fs::read(&path).unwrap(), one.to_bytes());
        w.save(2, &c.film).unwrap();
        w.finish().unwrap();
        let back = Checkpoint::read(&path).unwrap();
        assert_eq!(back.to_bytes(), c.to_bytes());

        // A directory that is not there: the write fails in the background, and the error
        // comes back from the next save, or from finish.
        let lost = dir.path().join("gone").join("bg.ckpt");
        let said = |e: CheckpointError| e.to_string();
        let mut w = CheckpointWriter::new(&lost, c.settings.clone());
        w.save(2, &c.film).unwrap();
        let e = said(w.save(3, &c.film).unwrap_err());
        assert!(
            e.contains("gone/bg.ckpt: cannot create a temporary file"),
            "{e}"
        );
        let mut w = CheckpointWriter::new(&lost, c.settings.clone());
        w.save(2, &c.film).unwrap();
        let e = said(w.finish().unwrap_err());
        assert!(
            e.contains("gone/bg.ckpt: cannot create a temporary file"),
            "{e}"
        );
    }

    #[test]
    fn a_closed_writer_finishes_the_write_in_flight_and_starts_no_other() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("closed.ckpt");
        let c = checkpoint();
        let mut w = CheckpointWriter::new(&path, c.settings.clone());
        let progress = w.progress();
        assert_eq!(progress.written(), None);
        w.save(c.passes, &c.film).unwrap();
        // From another thread, as a signal watcher would: the write in flight is waited for.
        let closer = std::thread::spawn({
            let progress = progress.clone();
            move || progress.close()
        });
        assert_eq!(closer.join().unwrap(), Some(c.passes));
        assert_eq!(Checkpoint::read(&path).unwrap().to_bytes(), c.to_bytes());
        // Nothing is written after the close, and no temporary file appears.
        w.save(c.passes + 1, &c.film).unwrap();
        w.finish().unwrap();
        assert_eq!(Checkpoint::read(&path).unwrap().to_bytes(), c.to_bytes());
        assert_eq!(progress.written(), Some(c.passes));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

        // A failed write counts as none written.
        let lost = dir.path().join("gone").join("x.ckpt");
        let mut w = CheckpointWriter::new(&lost, c.settings.clone());
        w.save(1, &c.film).unwrap();
        assert_eq!(w.progress().close(), None);
        assert!(w.finish().is_err());
    }

    #[test]
    fn differences_name_each_setting_that_changed_appeared_or_went() {
        let c = checkpoint();
        let mut here = c.settings.clone();
        assert!(c.differences(&here).is_empty());
        here[1].1 = "32".into();
        here.remove(2);
        here.push(("--max-depth".into(), "4".into()));
        let s = |v: &str| Some(v.to_string());
        assert_eq!(
            c.differences(&here),
            vec![
                ("--spp".to_string(), s("16"), s("32")),
                ("note".to_string(), s("ünïcode"), None),
                ("--max-depth".to_string(), None, s("4")),
            ]
        );
    }
}
