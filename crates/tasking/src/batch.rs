//! Worker groups (pshmem's `MPIBatch`): the processes are split into groups of `k`, and named
//! tasks are handed to the groups dynamically — a group that finishes early takes the next
//! open task. Every process of a group runs the group's task together (with the group's own
//! communicator for collectives inside the task).
//!
//! # Task states
//! Each task is `Open`, `Running`, `Done` or `Failed`. The table of states is one small file
//! per run that group leaders read and rewrite under a cross-process [`prism_comm::Lock`]
//! (a ticket lock in an MPI one-sided window, so no process has to answer requests while it
//! computes). Where that file lives:
//!
//! * with [`BatchOptions::state_dir`], in `<dir>`, and every state change is mirrored to
//!   `<dir>/<task>/state` (`OPEN`, `RUNNING`, `DONE`, `FAILED`; a failure's message goes to
//!   `<dir>/<task>/failure`). Files are written to a temporary name and renamed, so a reader
//!   never sees half a file. A rerun reads the `state` files: `DONE` tasks are skipped,
//!   `FAILED` ones stay failed (unless [`BatchOptions::retry_failed`]), and `RUNNING` ones —
//!   a run interrupted while they ran — are opened again. Across nodes, `<dir>` must be on a
//!   filesystem all nodes share.
//!
//!   A state directory belongs to one job at a time: rank 0 takes an exclusive `flock` on
//!   `<dir>/.prism-batch-lock` before it reads the states, and holds it until the run ends.
//!   Another job's batch on the same directory meanwhile gets [`BatchError::InUse`] on every
//!   process, before it changes anything (without the lock it would reopen the first job's
//!   `RUNNING` tasks and run them a second time). The kernel releases the lock however the
//!   holder ends (SIGKILL included), so a killed job's directory can be resumed at once. The
//!   limit: on some network filesystems (NFS mounted with `local_lock`, some FUSE ones)
//!   `flock` only excludes processes on the same node, so two jobs whose rank 0 runs on
//!   different nodes are not kept apart there.
//! * without it, in a private file in node memory (`/dev/shm` where it exists, else the
//!   temporary directory); this needs every process on one node, and refuses to run
//!   otherwise. Rank 0 creates `tasking-batch-<token>` and writes the starting table; the
//!   group leaders open it through `/proc/<rank 0's pid>/fd/<fd>` (checking it is the same
//!   file), and once all have, rank 0 unlinks the name. For the rest of the run the file has
//!   no name: leaders read and write it in place under the lock, and the kernel frees it when
//!   the last process holding it exits, however the job ends (a normal end, an error, a panic,
//!   SIGTERM, SIGKILL, a time limit). Only if `/proc` cannot be used on some process (another
//!   PID namespace, a hardened `/proc`) do the leaders open the file by its name instead; the
//!   name is still unlinked as soon as every leader holds the file, but a job killed during
//!   that setup leaves `tasking-batch-<token>` behind in `/dev/shm`.

use crate::error::panic_message;
use prism_comm::{CommError, Communicator, Lock};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The table's name in a state directory.
const TABLE_FILE: &str = ".prism-batch-table";

/// The file in a state directory that the job using it holds an exclusive `flock` on.
pub const LOCK_FILE: &str = ".prism-batch-lock";

/// The start of the private table's name (in `/dev/shm` or the temporary directory), so tests
/// and operators can find strays.
pub const PRIVATE_TABLE_PREFIX: &str = "tasking-batch-";

/// The state of one task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskState {
    /// Not started (or started by a run that was interrupted).
    Open,
    /// A group is running it.
    Running,
    /// Finished successfully.
    Done,
    /// Its body failed or panicked.
    Failed,
}

impl TaskState {
    /// The word stored in state files.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Open => "OPEN",
            TaskState::Running => "RUNNING",
            TaskState::Done => "DONE",
            TaskState::Failed => "FAILED",
        }
    }

    /// Parses a state file's word (surrounding whitespace ignored).
    pub fn parse(s: &str) -> Option<TaskState> {
        match s.trim() {
            "OPEN" => Some(TaskState::Open),
            "RUNNING" => Some(TaskState::Running),
            "DONE" => Some(TaskState::Done),
            "FAILED" => Some(TaskState::Failed),
            _ => None,
        }
    }

    fn to_byte(self) -> u8 {
        match self {
            TaskState::Open => b'O',
            TaskState::Running => b'R',
            TaskState::Done => b'D',
            TaskState::Failed => b'F',
        }
    }

    fn from_byte(b: u8) -> Option<TaskState> {
        match b {
            b'O' => Some(TaskState::Open),
            b'R' => Some(TaskState::Running),
            b'D' => Some(TaskState::Done),
            b'F' => Some(TaskState::Failed),
            _ => None,
        }
    }
}

/// Why a batch could not be set up or run.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// Invalid options or task names.
    #[error("batch: {0}")]
    Invalid(String),
    /// A state file or directory could not be read or written.
    #[error("batch: {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A state file held something other than a state word.
    #[error(
        "batch: {path}: not a task state: {content:?} (expected OPEN, RUNNING, DONE or FAILED)"
    )]
    BadState {
        /// The file.
        path: PathBuf,
        /// What it held.
        content: String,
    },
    /// Communication failed.
    #[error("batch: {0}")]
    Comm(#[from] CommError),
    /// Another job (or another batch of this one) is using the state directory.
    #[error(
        "batch: state directory {}: another job is using it ({}{}); wait for it to end or use \
         another directory",
        dir.display(),
        LOCK_FILE,
        holder.as_deref().map(|h| format!(" is locked by {h}")).unwrap_or_else(|| " is locked".into())
    )]
    InUse {
        /// The state directory.
        dir: PathBuf,
        /// Who holds the lock, as it recorded itself (process id and host), if readable.
        holder: Option<String>,
    },
}

impl BatchError {
    /// The message without its leading `batch: `, for wrapping in another batch error.
    fn detail(&self) -> String {
        let s = self.to_string();
        match s.strip_prefix("batch: ") {
            Some(rest) => rest.to_string(),
            None => s,
        }
    }
}

/// Why rank 0 could not prepare a state directory, told to everyone.
#[derive(Debug, Serialize, Deserialize)]
enum PrepareError {
    InUse {
        dir: PathBuf,
        holder: Option<String>,
    },
    Other(String),
}

impl From<BatchError> for PrepareError {
    fn from(e: BatchError) -> PrepareError {
        match e {
            BatchError::InUse { dir, holder } => PrepareError::InUse { dir, holder },
            other => PrepareError::Other(other.detail()),
        }
    }
}

impl From<PrepareError> for BatchError {
    fn from(e: PrepareError) -> BatchError {
        match e {
            PrepareError::InUse { dir, holder } => BatchError::InUse { dir, holder },
            PrepareError::Other(m) => BatchError::Invalid(m),
        }
    }
}

/// How to run a batch.
#[derive(Debug, Clone)]
pub struct BatchOptions {
    group_size: usize,
    state_dir: Option<PathBuf>,
    retry_failed: bool,
}

impl BatchOptions {
    /// Groups of `group_size` processes (the last group holds the remainder if the number of
    /// processes is not a multiple).
    pub fn new(group_size: usize) -> BatchOptions {
        BatchOptions {
            group_size,
            state_dir: None,
            retry_failed: false,
        }
    }

    /// Mirrors task states to `<dir>/<task>/state` and resumes from them on a rerun.
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> BatchOptions {
        self.state_dir = Some(dir.into());
        self
    }

    /// Runs tasks recorded as failed again (by default they stay failed).
    pub fn retry_failed(mut self, retry: bool) -> BatchOptions {
        self.retry_failed = retry;
        self
    }
}

/// A task handed to a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchTask {
    /// Its index in the list of names.
    pub index: usize,
    /// Its name (the subdirectory of the state directory).
    pub name: String,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchReport {
    /// The state of every task at the end of the run (identical on every process).
    pub states: Vec<TaskState>,
    /// Tasks this process's group ran in this run, in the order it ran them.
    pub ran_by_group: Vec<usize>,
    /// Tasks found done at the start and skipped.
    pub skipped_done: Vec<usize>,
    /// Tasks found failed at the start and left failed.
    pub kept_failed: Vec<usize>,
    /// Failures of this run: (task index, message), in task order (identical everywhere).
    pub failures: Vec<(usize, String)>,
}

/// What rank 0 found at the start of a run, told to everyone.
#[derive(Debug, Default, Serialize, Deserialize)]
struct StartState {
    skipped_done: Vec<usize>,
    kept_failed: Vec<usize>,
}

/// Where rank 0 created the private table, told to everyone.
#[derive(Debug, Serialize, Deserialize)]
struct PrivateTable {
    /// Its name (unlinked once every leader holds the file).
    path: PathBuf,
    /// Rank 0's process id and descriptor: `/proc/<pid>/fd/<fd>` reaches the file.
    pid: u32,
    fd: i32,
    /// Its device and inode, to check that what a leader opened is this file.
    dev: u64,
    ino: u64,
}

/// The task-state table of a run, as this process reaches it.
enum Table {
    /// `<dir>/.prism-batch-table`, rewritten whole through a temporary file and a rename.
    Dir(PathBuf),
    /// The private table: read and written in place. `file` is `None` on processes that are
    /// not group leaders (they never touch it); `path` is its (by then unlinked) name, for
    /// messages.
    Private {
        file: Option<fs::File>,
        path: PathBuf,
    },
}

impl Table {
    /// The whole table, checked to hold `n` states. Under the lock.
    fn read(&self, n: usize) -> Result<Vec<u8>, BatchError> {
        match self {
            Table::Dir(dir) => read_table(&dir.join(TABLE_FILE), n),
            Table::Private { file, path } => {
                let mut table = vec![0; n];
                private_file(file, path)?
                    .read_exact_at(&mut table, 0)
                    .map_err(|source| BatchError::Io {
                        path: path.clone(),
                        source,
                    })?;
                decode_table(&table, n)?;
                Ok(table)
            }
        }
    }

    /// Replaces the whole table. Under the lock.
    fn write(&self, table: &[u8], tag: usize) -> Result<(), BatchError> {
        match self {
            Table::Dir(dir) => write_atomic(&dir.join(TABLE_FILE), table, tag),
            Table::Private { file, path } => private_file(file, path)?
                .write_all_at(table, 0)
                .map_err(|source| BatchError::Io {
                    path: path.clone(),
                    source,
                }),
        }
    }

    /// The state directory, in that mode.
    fn state_dir(&self) -> Option<&Path> {
        match self {
            Table::Dir(dir) => Some(dir),
            Table::Private { .. } => None,
        }
    }
}

fn private_file<'a>(file: &'a Option<fs::File>, path: &Path) -> Result<&'a fs::File, BatchError> {
    file.as_ref().ok_or_else(|| {
        BatchError::Invalid(format!(
            "{}: the table is held by group leaders only",
            path.display()
        ))
    })
}

/// Rank 0: creates the private table under a fresh name, holding the starting `table`.
fn create_private_table(table: &[u8]) -> Result<(fs::File, PrivateTable), BatchError> {
    let base = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let mut attempts = 0;
    let (file, path) = loop {
        let path = base.join(format!("{PRIVATE_TABLE_PREFIX}{}", private_token()));
        match fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(f) => break (f, path),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempts < 16 => {
                attempts += 1;
            }
            Err(source) => return Err(BatchError::Io { path, source }),
        }
    };
    let described = file
        .write_all_at(table, 0)
        .and_then(|()| file.metadata())
        .map(|meta| PrivateTable {
            path: path.clone(),
            pid: std::process::id(),
            fd: std::os::fd::AsRawFd::as_raw_fd(&file),
            dev: meta.dev(),
            ino: meta.ino(),
        });
    match described {
        Ok(described) => Ok((file, described)),
        Err(source) => {
            let _ = fs::remove_file(&path);
            Err(BatchError::Io { path, source })
        }
    }
}

/// Opens `path` read-write and checks that it is the private table (not, say, another
/// process's descriptor seen through a foreign `/proc`).
fn open_private_table(path: &Path, table: &PrivateTable) -> std::io::Result<fs::File> {
    let file = fs::OpenOptions::new().read(true).write(true).open(path)?;
    let meta = file.metadata()?;
    if meta.dev() != table.dev || meta.ino() != table.ino {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not the batch table {}", table.path.display()),
        ));
    }
    Ok(file)
}

/// Whether leaders must skip `/proc` and open the private table by name (tests of the
/// fallback route).
#[cfg(test)]
fn proc_route_disabled() -> bool {
    tests::FORCE_NAME_ROUTE.with(std::cell::Cell::get)
}

#[cfg(not(test))]
fn proc_route_disabled() -> bool {
    false
}

/// A batch of named tasks over groups of processes.
///
/// ```
/// use prism_tasking::batch::{Batch, BatchOptions, TaskState};
/// let universe = prism_comm::init()?;
/// let names: Vec<String> = (0..5).map(|i| format!("task_{i}")).collect();
/// let mut batch = Batch::new(&universe.world(), names, BatchOptions::new(1))?;
/// let report = batch.run(|task, _group| {
///     if task.index == 3 { Err(format!("{} refused", task.name)) } else { Ok(()) }
/// })?;
/// assert_eq!(report.states[3], TaskState::Failed);
/// assert_eq!(report.states.iter().filter(|s| **s == TaskState::Done).count(), 4);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Batch {
    world: Communicator,
    group: Communicator,
    group_index: usize,
    group_count: usize,
    names: Vec<String>,
    options: BatchOptions,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("tasks", &self.names.len())
            .field("group", &self.group_index)
            .field("groups", &self.group_count)
            .finish()
    }
}

/// Writes `content` to `path` through a temporary file and a rename.
fn write_atomic(path: &Path, content: &[u8], tag: usize) -> Result<(), BatchError> {
    let io = |source| BatchError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file_name = path.file_name().map(|s| s.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(
        ".{}.tmp.{}.{tag}",
        file_name.unwrap_or_default(),
        std::process::id()
    ));
    let mut f = fs::File::create(&tmp).map_err(io)?;
    f.write_all(content).map_err(io)?;
    f.sync_data().map_err(io)?;
    fs::rename(&tmp, path).map_err(io)
}

fn check_names(names: &[String]) -> Result<(), BatchError> {
    let mut seen = std::collections::HashSet::new();
    for (i, n) in names.iter().enumerate() {
        if n.is_empty()
            || n == "."
            || n == ".."
            || n.contains('/')
            || n.contains('\0')
            || n.starts_with('.')
        {
            return Err(BatchError::Invalid(format!(
                "task {i} has name {n:?}: names must be non-empty, must not start with '.' and \
                 must not contain '/' (they become directory names)"
            )));
        }
        if !seen.insert(n) {
            return Err(BatchError::Invalid(format!(
                "task name {n:?} appears twice"
            )));
        }
    }
    Ok(())
}

/// What each process says about a batch in [`Batch::new`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct BatchArgs {
    group_size: u64,
    tasks: u64,
    names_hash: u64,
    problem: Option<String>,
}

/// A hash of the task names (FNV-1a over the names and their lengths), the same in every
/// process of a run.
fn names_hash(names: &[String]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for n in names {
        eat(&(n.len() as u64).to_le_bytes());
        eat(n.as_bytes());
    }
    h
}

/// Where the task name lists of the processes first differ: the index, and each process's name
/// there (at most 16 processes shown), cut to the part around the first character that differs.
fn first_name_difference(all: &[Vec<String>]) -> String {
    let at = first_difference(all);
    let here: Vec<Option<&String>> = all.iter().map(|names| names.get(at)).collect();
    // The first character at which any of the names there differs from another.
    let chars: Vec<Vec<char>> = here.iter().flatten().map(|n| n.chars().collect()).collect();
    let differ_at = first_difference(&chars);
    let shown: Vec<String> = here
        .iter()
        .enumerate()
        .take(16)
        .map(|(r, name)| match name {
            Some(n) => format!("process {r}: {}", quote_name(n, differ_at)),
            None => format!("process {r}: none ({} names)", all[r].len()),
        })
        .collect();
    let more = if all.len() > 16 { ", ..." } else { "" };
    let from = if differ_at > 0 {
        format!(", from character {differ_at}")
    } else {
        String::new()
    };
    format!(
        "the task names differ, first at task {at}{from} ({}{more})",
        shown.join(", ")
    )
}

/// The first index at which the lists differ (one lacking it counts as a difference), or 0.
fn first_difference<T: PartialEq>(lists: &[Vec<T>]) -> usize {
    let longest = lists.iter().map(Vec::len).max().unwrap_or(0);
    (0..longest)
        .find(|&i| lists.iter().any(|l| l.get(i) != lists[0].get(i)))
        .unwrap_or(0)
}

/// A task name for a message, quoted: the part from 20 characters before `differ_at` (the
/// first character that differs between processes), at most 60 characters, with `...` where
/// the name goes on.
fn quote_name(name: &str, differ_at: usize) -> String {
    let start = differ_at.saturating_sub(20);
    let total = name.chars().count();
    let part: String = name.chars().skip(start).take(60).collect();
    let before = if start > 0 { "..." } else { "" };
    let after = if start + 60 < total { "..." } else { "" };
    format!("{before}{part:?}{after}")
}

/// The same verdict on every process: a problem found on any process, or a disagreement.
/// `all_names` (every process's task names) is needed only when the names' hashes differ.
fn agree(all: &[BatchArgs], all_names: Option<&[Vec<String>]>) -> Result<(), BatchError> {
    if let Some(first) = all.iter().find_map(|a| a.problem.as_ref()) {
        if all.iter().all(|a| a.problem.as_ref() == Some(first)) {
            return Err(BatchError::Invalid(first.clone()));
        }
        let list: Vec<String> = all
            .iter()
            .enumerate()
            .filter_map(|(r, a)| a.problem.as_ref().map(|p| format!("process {r}: {p}")))
            .collect();
        return Err(BatchError::Invalid(list.join("; ")));
    }
    let differs = |what: &str, f: &dyn Fn(&BatchArgs) -> String| -> Option<String> {
        let values: Vec<String> = all.iter().map(f).collect();
        if values.iter().all(|v| *v == values[0]) {
            return None;
        }
        let shown: Vec<String> = values
            .iter()
            .enumerate()
            .take(16)
            .map(|(r, v)| format!("process {r}: {v}"))
            .collect();
        let more = if values.len() > 16 { ", ..." } else { "" };
        Some(format!("{what} differs ({}{more})", shown.join(", ")))
    };
    let problems: Vec<String> = [
        differs("group size", &|a| a.group_size.to_string()),
        differs("number of tasks", &|a| a.tasks.to_string()),
    ]
    .into_iter()
    .flatten()
    .chain(
        all.iter()
            .any(|a| a.names_hash != all[0].names_hash)
            .then(|| match all_names {
                Some(names) => first_name_difference(names),
                None => "the task names differ".to_string(),
            }),
    )
    .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(BatchError::Invalid(format!(
            "the processes disagree on the batch (every process must pass the same task names \
             and group size): {}",
            problems.join("; ")
        )))
    }
}

impl Batch {
    /// Splits `world` into groups of `options.group_size` processes for the tasks `names`.
    /// Collective over `world`: every process must pass the same names and group size, or every
    /// process gets [`BatchError::Invalid`] saying what differs (checked before anything runs).
    pub fn new(
        world: &Communicator,
        names: Vec<String>,
        options: BatchOptions,
    ) -> Result<Batch, BatchError> {
        let size = world.size();
        let local = if options.group_size == 0 || options.group_size > size {
            Err(format!(
                "group size {} must be between 1 and the number of processes ({size})",
                options.group_size
            ))
        } else {
            check_names(&names).map_err(|e| match e {
                BatchError::Invalid(m) => m,
                other => other.to_string(),
            })
        };
        let world = world.duplicate()?;
        // Every process must describe the same batch: agree before anything depends on it,
        // so that a mismatch (or a problem on one process only) is an error everywhere.
        let mine = BatchArgs {
            group_size: options.group_size as u64,
            tasks: names.len() as u64,
            names_hash: names_hash(&names),
            problem: local.err(),
        };
        let all: Vec<BatchArgs> = world.all_gather(&mine)?;
        // Only to say which names differ: every process sees the same hashes, so all of them
        // take part in this second gather or none does.
        let all_names = if all.iter().any(|a| a.names_hash != all[0].names_hash) {
            Some(world.all_gather(&names)?)
        } else {
            None
        };
        agree(&all, all_names.as_deref())?;
        let group_index = world.rank() / options.group_size;
        let group_count = size.div_ceil(options.group_size);
        let group = world
            .split(Some(group_index as u32), world.rank() as i32)?
            .ok_or_else(|| {
                BatchError::Invalid("split returned no group for a coloured rank".into())
            })?;
        Ok(Batch {
            world,
            group,
            group_index,
            group_count,
            names,
            options,
        })
    }

    /// The communicator of this process's group.
    pub fn group(&self) -> &Communicator {
        &self.group
    }

    /// Index of this process's group.
    pub fn group_index(&self) -> usize {
        self.group_index
    }

    /// Number of groups.
    pub fn group_count(&self) -> usize {
        self.group_count
    }

    /// Rank of this process within its group (0 is the group's leader).
    pub fn group_rank(&self) -> usize {
        self.group.rank()
    }

    /// The task names.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Reads the states recorded in `dir` for `names` (missing files count as `Open`).
    pub fn read_states(dir: &Path, names: &[String]) -> Result<Vec<TaskState>, BatchError> {
        names
            .iter()
            .map(|n| {
                let path = dir.join(n).join("state");
                match fs::read_to_string(&path) {
                    Ok(s) => TaskState::parse(&s).ok_or(BatchError::BadState { path, content: s }),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(TaskState::Open),
                    Err(source) => Err(BatchError::Io { path, source }),
                }
            })
            .collect()
    }

    /// Runs every open task once: each group's leader claims the next open task, the whole
    /// group runs `body(task, group_communicator)`, and the leader records `Done`, or `Failed`
    /// if the body returned an error or panicked on any process of the group. Collective over
    /// the world; returns when no task is left.
    ///
    /// The body may return `()` or `Result<(), E>` with `E: Display`.
    pub fn run<F, O>(&mut self, body: F) -> Result<BatchReport, BatchError>
    where
        F: FnMut(&BatchTask, &Communicator) -> O,
        O: crate::TaskOutcome,
    {
        let mut body = body;
        let rank = self.world.rank();
        let n = self.names.len();

        // Where the table lives, agreed by everyone; in a state directory, rank 0 locks it
        // against other jobs, reads what earlier runs left and writes the starting table.
        // `_dir_lock` holds the directory until this function returns.
        let mut _dir_lock = None;
        let (table, start) = match &self.options.state_dir {
            Some(dir) => {
                let start: Result<StartState, PrepareError> = if rank == 0 {
                    match self.prepare(dir) {
                        Ok((start, lock)) => {
                            _dir_lock = Some(lock);
                            Ok(start)
                        }
                        Err(e) => Err(e.into()),
                    }
                } else {
                    Ok(StartState::default())
                };
                let start = self.world.broadcast(0, (rank == 0).then_some(start))?;
                (Table::Dir(dir.clone()), start.map_err(BatchError::from)?)
            }
            None => {
                let node = self.world.split_shared()?;
                if node.size() != self.world.size() {
                    return Err(BatchError::Invalid(
                        "a batch across several nodes needs a state directory on a shared \
                         filesystem (BatchOptions::state_dir)"
                            .into(),
                    ));
                }
                (self.attach_private()?, StartState::default())
            }
        };
        let StartState {
            skipped_done,
            kept_failed,
        } = start;

        let lock = Lock::new(&self.world)?;
        let mut ran = Vec::new();
        let mut failures: Vec<(usize, String)> = Vec::new();
        let mut outcome: Result<(), BatchError> = Ok(());
        loop {
            // The leader claims; the group learns the claim (or that none is left, or that
            // the leader hit an I/O error, which ends this group's work).
            let claim: Result<Option<usize>, String> = if self.group.rank() != 0 {
                Ok(None)
            } else if let Err(e) = &outcome {
                Err(e.detail())
            } else {
                self.claim(&lock, &table).map_err(|e| e.detail())
            };
            let claim = self
                .group
                .broadcast(0, (self.group.rank() == 0).then_some(claim))?;
            let index = match claim {
                Ok(Some(i)) => i,
                Ok(None) => break,
                Err(e) => {
                    if outcome.is_ok() {
                        outcome = Err(BatchError::Invalid(format!(
                            "group {}: {e}",
                            self.group_index
                        )));
                    }
                    break;
                }
            };
            let task = BatchTask {
                index,
                name: self.names[index].clone(),
            };
            // `catch_panic`, not `catch_unwind`: under `Universe::abort_on_panic` a panicking
            // task must still end FAILED, not abort the job and leave it RUNNING.
            let result = match prism_comm::catch_panic(|| body(&task, &self.group).into_result()) {
                Ok(r) => r,
                Err(payload) => Err(format!("panicked: {}", panic_message(payload.as_ref()))),
            };
            let mine = result.err().map(|m| format!("process {rank}: {m}"));
            let all: Vec<Option<String>> = self.group.all_gather(&mine)?;
            let failure = all.into_iter().flatten().next();
            ran.push(index);
            if self.group.rank() == 0 {
                let state = if failure.is_some() {
                    TaskState::Failed
                } else {
                    TaskState::Done
                };
                // An error here ends the group's work at the next claim (which tells the
                // whole group), so no process of the group is left waiting.
                if let Err(e) = self.record(&lock, &table, index, state, failure.as_deref()) {
                    outcome = Err(e);
                }
                if let Some(m) = failure {
                    failures.push((index, m));
                }
            }
        }

        // Everyone is past its last claim: the table is final.
        let io_errors: Vec<Option<String>> = self
            .world
            .all_gather(&outcome.as_ref().err().map(BatchError::detail))?;
        let final_table: Result<Vec<u8>, String> = if rank == 0 {
            table.read(n).map_err(|e| e.detail())
        } else {
            Ok(Vec::new())
        };
        let final_table = self
            .world
            .broadcast(0, (rank == 0).then_some(final_table))?;
        let mine = if self.group.rank() == 0 {
            failures
        } else {
            Vec::new()
        };
        let mut failures: Vec<(usize, String)> = self
            .world
            .all_gather(&mine)?
            .into_iter()
            .flatten()
            .collect();
        failures.sort();
        // Every rank is done with the lock (collective drop) and the table. A private table
        // has no name left: it goes when the last process closes it.
        drop(lock);
        drop(table);
        self.world.barrier()?;
        if let Some(e) = io_errors.into_iter().flatten().next() {
            return Err(BatchError::Invalid(e));
        }
        let table = final_table.map_err(BatchError::Invalid)?;
        Ok(BatchReport {
            states: decode_table(&table, n)?,
            ran_by_group: ran,
            skipped_done,
            kept_failed,
            failures,
        })
    }

    /// Rank 0, before any claim: locks `dir` for this job (the returned file holds the lock)
    /// and writes the starting table from the state files of earlier runs.
    fn prepare(&self, dir: &Path) -> Result<(StartState, fs::File), BatchError> {
        if fs::metadata(dir).is_ok_and(|m| !m.is_dir()) {
            return Err(BatchError::Invalid(format!(
                "state directory {}: is not a directory",
                dir.display()
            )));
        }
        fs::create_dir_all(dir).map_err(|source| BatchError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let lock = lock_dir(dir)?;
        let recorded = Batch::read_states(dir, &self.names)?;
        let mut skipped_done = Vec::new();
        let mut kept_failed = Vec::new();
        let mut table = Vec::with_capacity(recorded.len());
        for (i, &state) in recorded.iter().enumerate() {
            let start = match state {
                TaskState::Done => {
                    skipped_done.push(i);
                    TaskState::Done
                }
                TaskState::Failed if !self.options.retry_failed => {
                    kept_failed.push(i);
                    TaskState::Failed
                }
                // Running: the run that started it was interrupted.
                _ => TaskState::Open,
            };
            let file_missing = || !dir.join(&self.names[i]).join("state").exists();
            if start != state || file_missing() {
                self.mirror(dir, i, start, None)?;
            }
            table.push(start.to_byte());
        }
        write_atomic(&dir.join(TABLE_FILE), &table, self.world.rank())?;
        Ok((
            StartState {
                skipped_done,
                kept_failed,
            },
            lock,
        ))
    }

    /// A group leader takes the first open task, under the lock.
    fn claim(&self, lock: &Lock, table: &Table) -> Result<Option<usize>, BatchError> {
        let _guard = lock.lock()?;
        let mut states = table.read(self.names.len())?;
        let Some(i) = states.iter().position(|&b| b == TaskState::Open.to_byte()) else {
            return Ok(None);
        };
        states[i] = TaskState::Running.to_byte();
        table.write(&states, self.world.rank())?;
        if let Some(dir) = table.state_dir() {
            self.mirror(dir, i, TaskState::Running, None)?;
        }
        Ok(Some(i))
    }

    /// A group leader records the end of its task, under the lock.
    fn record(
        &self,
        lock: &Lock,
        table: &Table,
        index: usize,
        state: TaskState,
        failure: Option<&str>,
    ) -> Result<(), BatchError> {
        let _guard = lock.lock()?;
        let mut states = table.read(self.names.len())?;
        states[index] = state.to_byte();
        table.write(&states, self.world.rank())?;
        if let Some(dir) = table.state_dir() {
            self.mirror(dir, index, state, failure)?;
        }
        Ok(())
    }

    /// Collective over the world: rank 0 creates the private table (every task open), the
    /// group leaders open it (through `/proc`, else by name), and rank 0 unlinks the name as
    /// soon as all have.
    fn attach_private(&self) -> Result<Table, BatchError> {
        let rank = self.world.rank();
        let leader = self.group.rank() == 0;
        let starting = vec![TaskState::Open.to_byte(); self.names.len()];
        let (creator, offer) = match (rank == 0).then(|| create_private_table(&starting)) {
            Some(Ok((file, offer))) => (Some(file), Some(Ok(offer))),
            Some(Err(e)) => (None, Some(Err(e.detail()))),
            None => (None, None),
        };
        let offer: PrivateTable = self
            .world
            .broadcast::<Result<PrivateTable, String>>(0, offer)?
            .map_err(BatchError::Invalid)?;
        // From here on rank 0 must unlink the name whatever happens (the name is this run's
        // only, so removing it cannot hurt anyone else).
        let unlink = |result: Result<Table, BatchError>| {
            if rank == 0 {
                let _ = fs::remove_file(&offer.path);
            }
            drop(creator);
            result
        };

        // Every leader (rank 0 included) opens the file through rank 0's descriptor.
        let mut file = None;
        let mut proc_error = None;
        if leader && !proc_route_disabled() {
            let via = PathBuf::from(format!("/proc/{}/fd/{}", offer.pid, offer.fd));
            match open_private_table(&via, &offer) {
                Ok(f) => file = Some(f),
                Err(e) => proc_error = Some(format!("{}: {e}", via.display())),
            }
        }
        let proc_ok = !leader || file.is_some();
        // The all-gather is also the barrier: once it returns, every leader holds the file.
        let everyone = match self.world.all_gather(&proc_ok) {
            Ok(all) => all.into_iter().all(|ok| ok),
            Err(e) => return unlink(Err(e.into())),
        };
        if !everyone {
            // Fallback: the leaders without the file open it by name, which stays until all
            // hold it.
            let mut error = None;
            if leader && file.is_none() {
                match open_private_table(&offer.path, &offer) {
                    Ok(f) => file = Some(f),
                    Err(e) => {
                        let through = proc_error
                            .map(|p| format!(" (and {p})"))
                            .unwrap_or_default();
                        error = Some(format!(
                            "process {rank}: {}: {e}{through}",
                            offer.path.display()
                        ));
                    }
                }
            }
            let errors = match self.world.all_gather(&error) {
                Ok(all) => all,
                Err(e) => return unlink(Err(e.into())),
            };
            if let Some(e) = errors.into_iter().flatten().next() {
                return unlink(Err(BatchError::Invalid(format!(
                    "cannot open the private state table: {e}"
                ))));
            }
        }
        let table = unlink(Ok(Table::Private {
            file,
            path: offer.path.clone(),
        }));
        // No task starts before the name is gone.
        self.world.barrier()?;
        table
    }

    /// Writes `<dir>/<task>/state` (and the failure message, or removes a stale one).
    fn mirror(
        &self,
        dir: &Path,
        index: usize,
        state: TaskState,
        failure: Option<&str>,
    ) -> Result<(), BatchError> {
        let task_dir = dir.join(&self.names[index]);
        fs::create_dir_all(&task_dir).map_err(|source| BatchError::Io {
            path: task_dir.clone(),
            source,
        })?;
        let failure_path = task_dir.join("failure");
        match failure {
            Some(m) => write_atomic(
                &failure_path,
                format!("{m}\n").as_bytes(),
                self.world.rank(),
            )?,
            None if state != TaskState::Failed => {
                let _ = fs::remove_file(&failure_path);
            }
            None => {}
        }
        write_atomic(
            &task_dir.join("state"),
            format!("{}\n", state.as_str()).as_bytes(),
            self.world.rank(),
        )
    }
}

/// Takes the exclusive, non-blocking `flock` on `<dir>/.prism-batch-lock` and records who
/// holds it (for the message another job gets). Held while the returned file is open.
fn lock_dir(dir: &Path) -> Result<fs::File, BatchError> {
    let path = dir.join(LOCK_FILE);
    let io = |source| BatchError::Io {
        path: path.clone(),
        source,
    };
    let mut file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(&path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            let holder = fs::read_to_string(&path)
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty());
            return Err(BatchError::InUse {
                dir: dir.to_path_buf(),
                holder,
            });
        }
        Err(fs::TryLockError::Error(source)) => return Err(io(source)),
    }
    let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let who = format!("process {} on {}\n", std::process::id(), host.trim());
    // Only informative: a failure to record it does not matter.
    let _ = file
        .set_len(0)
        .and_then(|()| file.write_all(who.as_bytes()));
    Ok(file)
}

fn read_table(path: &Path, n: usize) -> Result<Vec<u8>, BatchError> {
    let table = fs::read(path).map_err(|source| BatchError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    decode_table(&table, n)?;
    Ok(table)
}

fn decode_table(table: &[u8], n: usize) -> Result<Vec<TaskState>, BatchError> {
    if table.len() != n {
        return Err(BatchError::Invalid(format!(
            "the state table holds {} tasks, expected {n} (was it changed by another batch?)",
            table.len()
        )));
    }
    table
        .iter()
        .map(|&b| {
            TaskState::from_byte(b)
                .ok_or_else(|| BatchError::Invalid(format!("the state table holds byte {b}")))
        })
        .collect()
}

/// A name for this run's private table: unique per job (time, process id).
fn private_token() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    format!(
        "{:016x}",
        crate::random::stream_key(nanos, &[u64::from(std::process::id())])
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::sync::{Mutex, PoisonError};

    thread_local! {
        /// Makes this thread's batches open the private table by name (the fallback route).
        pub(super) static FORCE_NAME_ROUTE: std::cell::Cell<bool> =
            const { std::cell::Cell::new(false) };
    }

    /// Private runs of different tests must not see each other's names during setup.
    static PRIVATE_RUNS: Mutex<()> = Mutex::new(());

    /// Private tables that have a name, wherever they may be created.
    fn named_private_tables() -> BTreeSet<PathBuf> {
        [PathBuf::from("/dev/shm"), std::env::temp_dir()]
            .iter()
            .filter_map(|d| fs::read_dir(d).ok())
            .flatten()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(PRIVATE_TABLE_PREFIX)
            })
            .map(|e| e.path())
            .collect()
    }

    /// What this process's descriptors open among private tables.
    fn held_private_tables() -> Vec<String> {
        fs::read_dir("/proc/self/fd")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| fs::read_link(e.path()).ok())
            .map(|t| t.to_string_lossy().into_owned())
            .filter(|t| t.contains(&format!("/{PRIVATE_TABLE_PREFIX}")))
            .collect()
    }

    fn world() -> Communicator {
        prism_comm::init().unwrap().world()
    }

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("t{i}")).collect()
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "prism-tasking-batch-test-{tag}-{}",
            private_token()
        ));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn processes_that_disagree_on_the_batch_get_a_clear_error() {
        let args = |gs: u64, names: &[String], problem: Option<&str>| BatchArgs {
            group_size: gs,
            tasks: names.len() as u64,
            names_hash: names_hash(names),
            problem: problem.map(str::to_string),
        };
        let (a, b) = (names(6), names(2));
        assert!(agree(&[args(1, &a, None), args(1, &a, None)], None).is_ok());
        // The verdict on processes with these task names (group size 1, no other problem).
        let differ = |lists: &[&Vec<String>]| {
            let all: Vec<BatchArgs> = lists.iter().map(|l| args(1, l, None)).collect();
            let names: Vec<Vec<String>> = lists.iter().map(|l| (*l).clone()).collect();
            agree(&all, Some(&names)).unwrap_err().to_string()
        };
        let m = differ(&[&a, &b, &a]);
        assert!(
            m.contains("number of tasks differs")
                && m.contains("process 1: 2")
                && m.contains("first at task 2 (process 0: \"t2\", process 1: none (2 names)"),
            "{m}"
        );
        let mut c = names(6);
        c[3] = "other".into();
        let e = differ(&[&a, &c]);
        let want = format!(
            "the task names differ, first at task 3 (process 0: {:?}, process 1: \"other\")",
            a[3]
        );
        assert!(e.contains(&want), "{e}");
        // Long names that differ near their end: shown around the difference.
        let long = |end: &str| vec![format!("{}{end}", "é".repeat(100) + &"x".repeat(1000))];
        let (p, q) = (long("0"), long("1"));
        let e = differ(&[&p, &q]);
        let want = format!(
            "first at task 0, from character 1100 (process 0: ...\"{}0\", process 1: ...\"{}1\")",
            "x".repeat(20),
            "x".repeat(20)
        );
        assert!(e.to_string().contains(&want), "{e}");
        let e = agree(&[args(1, &a, None), args(2, &a, None)], None).unwrap_err();
        assert!(e.to_string().contains("group size differs"), "{e}");
        let e = agree(
            &[args(1, &a, None), args(0, &a, Some("group size 0"))],
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("process 1: group size 0"), "{e}");
        assert_ne!(
            names_hash(&["ab".into()]),
            names_hash(&["a".into(), "b".into()])
        );
    }

    #[test]
    fn bad_options_and_names_are_errors() {
        let w = world();
        let e = Batch::new(&w, names(2), BatchOptions::new(0)).unwrap_err();
        assert!(e.to_string().contains("group size 0"), "{e}");
        let e = Batch::new(&w, names(2), BatchOptions::new(2)).unwrap_err();
        assert!(
            e.to_string()
                .contains("between 1 and the number of processes (1)"),
            "{e}"
        );
        for bad in ["", "a/b", "..", ".hidden"] {
            let e = Batch::new(&w, vec![bad.to_string()], BatchOptions::new(1)).unwrap_err();
            assert!(matches!(e, BatchError::Invalid(_)), "{bad:?}: {e}");
        }
        let e = Batch::new(&w, vec!["x".into(), "x".into()], BatchOptions::new(1)).unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");
    }

    #[test]
    fn rerun_skips_done_keeps_failed_and_reopens_interrupted() {
        let w = world();
        let dir = temp_dir("rerun");
        let opts = || BatchOptions::new(1).state_dir(&dir);
        let mut b = Batch::new(&w, names(5), opts()).unwrap();
        let r = b
            .run(|t, _| {
                if t.index == 1 {
                    panic!("task one explodes");
                }
            })
            .unwrap();
        assert_eq!(r.ran_by_group, vec![0, 1, 2, 3, 4]);
        assert_eq!(r.states[1], TaskState::Failed);
        assert_eq!(r.failures.len(), 1);
        assert!(
            r.failures[0].1.contains("task one explodes"),
            "{:?}",
            r.failures
        );
        assert_eq!(Batch::read_states(&dir, &names(5)).unwrap(), r.states);
        let failure_file = fs::read_to_string(dir.join("t1").join("failure")).unwrap();
        assert!(failure_file.contains("explodes"));

        // t3 was running when the run was interrupted.
        fs::write(dir.join("t3").join("state"), "RUNNING\n").unwrap();
        let mut b = Batch::new(&w, names(5), opts()).unwrap();
        let r = b.run(|_, _| ()).unwrap();
        assert_eq!(r.ran_by_group, vec![3]);
        assert_eq!(r.skipped_done, vec![0, 2, 4]);
        assert_eq!(r.kept_failed, vec![1]);
        assert_eq!(r.states[1], TaskState::Failed);

        let mut b = Batch::new(&w, names(5), opts().retry_failed(true)).unwrap();
        let r = b.run(|_, _| Ok::<(), String>(())).unwrap();
        assert_eq!(r.ran_by_group, vec![1]);
        assert!(r.states.iter().all(|s| *s == TaskState::Done));
        assert!(!dir.join("t1").join("failure").exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_state_directory_in_use_is_refused_until_its_batch_ends() {
        let w = world();
        let dir = temp_dir("in-use");
        let opts = || BatchOptions::new(1).state_dir(&dir);
        let mut outer = Batch::new(&w, names(3), opts()).unwrap();
        let r = outer
            .run(|t, _| {
                // Another batch on the same directory while this one runs: refused before it
                // touches anything (this task stays RUNNING, nothing runs twice).
                let mut inner = Batch::new(&w, names(3), opts()).map_err(|e| e.to_string())?;
                match inner.run(|_, _| -> Result<(), String> { Err("ran twice".into()) }) {
                    Err(e @ BatchError::InUse { .. }) => {
                        let m = e.to_string();
                        let pid = format!("process {}", std::process::id());
                        if !m.contains(&dir.display().to_string())
                            || !m.contains("another job is using it")
                            || !m.contains(&pid)
                            || m.contains("batch: batch:")
                        {
                            return Err(format!("message {m:?}"));
                        }
                    }
                    other => return Err(format!("task {}: inner batch {other:?}", t.index)),
                }
                let states = Batch::read_states(&dir, &names(3)).map_err(|e| e.to_string())?;
                if states[t.index] != TaskState::Running {
                    return Err(format!("states after the refusal {states:?}"));
                }
                Ok(())
            })
            .unwrap();
        assert_eq!(r.failures, Vec::new());
        assert!(r.states.iter().all(|s| *s == TaskState::Done));
        // Ended: the directory is free again.
        let mut again = Batch::new(&w, names(3), opts()).unwrap();
        let r = again.run(|_, _| ()).unwrap();
        assert_eq!(r.skipped_done, vec![0, 1, 2]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_state_directory_that_is_a_file_is_named_once() {
        let w = world();
        let path = temp_dir("a-file");
        fs::write(&path, "not a directory").unwrap();
        let mut b = Batch::new(&w, names(2), BatchOptions::new(1).state_dir(&path)).unwrap();
        let m = b.run(|_, _| ()).unwrap_err().to_string();
        assert_eq!(
            m,
            format!(
                "batch: state directory {}: is not a directory",
                path.display()
            )
        );
        fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_corrupt_state_file_is_reported() {
        let w = world();
        let dir = temp_dir("corrupt");
        fs::create_dir_all(dir.join("t0")).unwrap();
        fs::write(dir.join("t0").join("state"), "HALF-DONE").unwrap();
        let mut b = Batch::new(&w, names(1), BatchOptions::new(1).state_dir(&dir)).unwrap();
        let e = b.run(|_, _| ()).unwrap_err();
        assert!(e.to_string().contains("HALF-DONE"), "{e}");
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A private run: during the tasks the table is held open but has no name, and nothing
    /// is left afterwards (so a kill at any point of the run leaks nothing).
    fn private_run_leaves_no_name(name_route: bool) {
        let _serial = PRIVATE_RUNS.lock().unwrap_or_else(PoisonError::into_inner);
        let before = named_private_tables();
        let w = world();
        let mut b = Batch::new(&w, names(4), BatchOptions::new(1)).unwrap();
        FORCE_NAME_ROUTE.with(|f| f.set(name_route));
        let r = b.run(|t, _| {
            let now = named_private_tables();
            if now != before {
                let new: Vec<_> = now.difference(&before).collect();
                return Err(format!("named during the run: {new:?}"));
            }
            let held = held_private_tables();
            if held.len() != 1 || !held[0].ends_with(" (deleted)") {
                return Err(format!("held during the run: {held:?}"));
            }
            if t.index == 2 {
                return Err("deliberate".to_string());
            }
            Ok(())
        });
        FORCE_NAME_ROUTE.with(|f| f.set(false));
        let r = r.unwrap();
        assert_eq!(r.ran_by_group, vec![0, 1, 2, 3]);
        assert_eq!(r.failures.len(), 1, "{:?}", r.failures);
        assert_eq!(r.failures[0].0, 2, "{:?}", r.failures);
        assert_eq!(
            r.states,
            [
                TaskState::Done,
                TaskState::Done,
                TaskState::Failed,
                TaskState::Done
            ]
        );
        assert_eq!(named_private_tables(), before);
        assert_eq!(held_private_tables(), Vec::<String>::new());
    }

    #[test]
    fn a_private_table_has_no_name_while_the_tasks_run() {
        private_run_leaves_no_name(false);
    }

    #[test]
    fn the_fallback_by_name_also_unlinks_before_the_tasks_run() {
        private_run_leaves_no_name(true);
    }

    #[test]
    fn a_private_run_with_no_tasks() {
        let _serial = PRIVATE_RUNS.lock().unwrap_or_else(PoisonError::into_inner);
        let before = named_private_tables();
        let mut b = Batch::new(&world(), Vec::new(), BatchOptions::new(1)).unwrap();
        let r = b.run(|_, _| ()).unwrap();
        assert!(r.states.is_empty() && r.ran_by_group.is_empty());
        assert_eq!(named_private_tables(), before);
    }

    #[test]
    fn states_round_trip_through_words() {
        for s in [
            TaskState::Open,
            TaskState::Running,
            TaskState::Done,
            TaskState::Failed,
        ] {
            assert_eq!(TaskState::parse(&format!("{}\n", s.as_str())), Some(s));
            assert_eq!(TaskState::from_byte(s.to_byte()), Some(s));
        }
        assert_eq!(TaskState::parse("done"), None);
    }
}
