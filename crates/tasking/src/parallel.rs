//! `Parallel`: one loop over `n` independent tasks, run serially, on a pool of threads, across
//! processes, or across processes with threads — behind one interface.
//!
//! The caller hands [`Parallel::call`] a body `body(first, count)` that handles the
//! consecutive task indices `first..first + count` (a *chunk*). Chunks are handed out
//! dynamically: a worker that finishes early takes more. Which implementation runs is decided
//! by the [`crate::ParallelFactory`] from the task mode and the resources of the run.

use crate::chunk::{ChunkCounter, ChunkPlan};
use crate::error::{panic_message, ParallelError, TaskFailure, TaskOutcome};
use crate::factory::TaskMode;
use crate::progress::{Progress, ProgressConfig};
use crate::scheduler;
use crate::worker::{
    coordinating, current_worker, in_engine_render, run_chunk, set_current_task, worker_loop, Body,
    CoordinatingMark, Event, Shared, WorkerMark,
};
use prism_comm::{CommError, Communicator, ThreadLevel};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::ThreadId;
use std::time::Duration;

/// Which implementation a [`Parallel`] is (SKIRT's subclasses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParallelKind {
    /// Does nothing: the tasks belong to other processes (RootOnly off the root).
    Null,
    /// One thread, the caller's.
    Serial,
    /// A persistent pool of threads in this process.
    MultiThread,
    /// One worker thread in each of several processes, chunks served by the root.
    MultiProcess,
    /// Several worker threads in each of several processes, chunks served by the root.
    MultiHybrid,
}

/// Per-call options: an explicit chunk size and a progress label.
#[derive(Debug, Clone, Default)]
pub struct CallOptions {
    chunk_size: Option<usize>,
    progress: Option<String>,
}

impl CallOptions {
    /// Automatic chunk sizes, no progress display.
    pub fn new() -> CallOptions {
        CallOptions::default()
    }

    /// Every chunk holds `size` indices (the last may hold fewer). Zero is refused by `call`.
    pub fn chunk_size(mut self, size: usize) -> CallOptions {
        self.chunk_size = Some(size);
        self
    }

    /// Shows progress on the root process under this label (see [`crate::progress`]).
    pub fn progress(mut self, label: impl Into<String>) -> CallOptions {
        self.progress = Some(label.into());
        self
    }

    /// The explicit chunk size, if any.
    pub fn explicit_chunk_size(&self) -> Option<usize> {
        self.chunk_size
    }

    /// The progress label, if any.
    pub fn progress_label(&self) -> Option<&str> {
        self.progress.as_deref()
    }
}

pub(crate) enum Imp {
    Null,
    Serial,
    MultiThread(Arc<rayon::ThreadPool>),
    Distributed {
        comm: Communicator,
        pool: Arc<rayon::ThreadPool>,
        /// Worker threads summed over all processes.
        total_workers: usize,
    },
}

/// Runs loops over independent tasks on the resources it was given. Obtain one from
/// [`crate::ParallelFactory::parallel`].
///
/// What follows holds for the collective modes (Distributed, Duplicated, RootOnly); a
/// [`TaskMode::Local`] `Parallel` never communicates, so any thread may call it, on any
/// process, with any `n`.
///
/// On several processes, all calls must come from the thread that created the factory (with
/// MPI, the thread that initialised it): a call from another thread ends the job with a
/// message naming the rank (`MPI_Abort`), since that rank cannot reach the others, who may be
/// waiting for it already. A lone process does not communicate, so there any thread may call;
/// run a program's tests under `mpirun -n 2` too to catch such calls. On several processes a
/// call from inside a render engine's `render` (which every process runs at once; see
/// [`crate::EngineRenderMark`]) is refused with [`ParallelError::Invalid`]. A call made from inside a
/// task body or a [`Parallel::call_collect`] result handler is refused with
/// [`ParallelError::Invalid`], before any communication (the enclosing call goes on).
///
/// On several processes every call is collective, in every mode (RootOnly included: the
/// other processes' `Null` calls learn the root's outcome): every process must make the same
/// sequence of calls, with the same `n`: take it from data every process shares, not from
/// values that differ by process such as [`Parallel::workers`] or [`Parallel::threads`]
/// (a RootOnly `Parallel` has 0 workers off the root; for "one task per worker" use
/// [`crate::ParallelFactory::total_workers`]). A loop over a process's own share of the
/// work, whose `n` differs by process, is a [`TaskMode::Local`] call. Every call starts by
/// checking that all processes called in the same
/// [`TaskMode`] with the same `n`, chunk size and result type; if not, every process returns
/// the same [`ParallelError::Invalid`] naming the ranks and values that differ, and no task
/// runs. Duplicated and RootOnly calls end by sharing their outcome, so a failure on any
/// process is returned on all. A process that makes no call while the others do is not
/// detected: the others wait for it (a hang), as with any collective operation.
pub struct Parallel {
    kind: ParallelKind,
    mode: TaskMode,
    imp: Imp,
    rank: usize,
    threads: usize,
    show_progress: bool,
    progress: ProgressConfig,
    seq: AtomicU64,
    /// The factory's communicator when it spans several processes (every call is then
    /// collective), with the thread allowed to use it.
    group: Option<(Communicator, ThreadId)>,
}

impl std::fmt::Debug for Parallel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parallel")
            .field("kind", &self.kind)
            .field("rank", &self.rank)
            .field("threads", &self.threads)
            .field("workers", &self.workers())
            .finish()
    }
}

impl Parallel {
    pub(crate) fn new(
        kind: ParallelKind,
        mode: TaskMode,
        imp: Imp,
        rank: usize,
        show_progress: bool,
        progress: ProgressConfig,
        group: Option<(Communicator, ThreadId)>,
    ) -> Parallel {
        let threads = match &imp {
            Imp::Null => 0,
            Imp::Serial => 1,
            Imp::MultiThread(pool) | Imp::Distributed { pool, .. } => pool.current_num_threads(),
        };
        Parallel {
            kind,
            mode,
            imp,
            rank,
            threads,
            show_progress,
            progress,
            seq: AtomicU64::new(0),
            group,
        }
    }

    /// Which implementation this is.
    pub fn kind(&self) -> ParallelKind {
        self.kind
    }

    /// The task mode it was handed out for.
    pub fn mode(&self) -> TaskMode {
        self.mode
    }

    /// Worker threads in this process (0 for `Null`).
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Workers sharing one call's tasks: threads summed over the processes taking part
    /// (0 for `Null`). It differs by process in RootOnly, Duplicated and Local mode: do not
    /// derive a collective call's `n` from it.
    pub fn workers(&self) -> usize {
        match &self.imp {
            Imp::Distributed { total_workers, .. } => *total_workers,
            _ => self.threads,
        }
    }

    /// The chunk plan a call of `n` tasks with these options would use.
    pub fn chunk_plan(&self, n: usize, options: &CallOptions) -> Result<ChunkPlan, ParallelError> {
        let workers = self.workers().max(1);
        match options.chunk_size {
            Some(0) => Err(ParallelError::Invalid(
                "explicit chunk size is 0; it must be at least 1".to_string(),
            )),
            Some(size) => Ok(ChunkPlan::fixed(n, workers, size)),
            None => Ok(ChunkPlan::auto(n, workers)),
        }
    }

    /// The size of the first chunks of a call of `n` tasks (automatic sizes).
    pub fn chunk_size(&self, n: usize) -> usize {
        ChunkPlan::auto(n, self.workers().max(1)).base_size()
    }

    /// Runs `body(first, count)` over chunks covering `0..n` (how often each index runs
    /// depends on the task mode: once in all for Distributed, once per process for
    /// Duplicated, once on the root for RootOnly, never for `Null`).
    ///
    /// The body may return `()` or `Result<(), E>` with `E: Display`. A failure or panic in
    /// any chunk, on any thread of any process, makes the call return
    /// [`ParallelError::Task`] on every process; the other workers stop at their next chunk.
    pub fn call<F, O>(&self, n: usize, body: F) -> Result<(), ParallelError>
    where
        F: Fn(usize, usize) -> O + Sync,
        O: TaskOutcome,
    {
        self.call_with(&CallOptions::default(), n, body)
    }

    /// [`Parallel::call`] with options (chunk size, progress).
    pub fn call_with<F, O>(
        &self,
        options: &CallOptions,
        n: usize,
        body: F,
    ) -> Result<(), ParallelError>
    where
        F: Fn(usize, usize) -> O + Sync,
        O: TaskOutcome,
    {
        let body = |first: usize, count: usize, _: &mut Vec<()>| body(first, count).into_result();
        self.run(options, n, &body, &mut |()| {})
    }

    /// Runs `body(i)` for every task index, one at a time (chunking still applies).
    pub fn call_each<F, O>(&self, n: usize, body: F) -> Result<(), ParallelError>
    where
        F: Fn(usize) -> O + Sync,
        O: TaskOutcome,
    {
        self.call_each_with(&CallOptions::default(), n, body)
    }

    /// [`Parallel::call_each`] with options.
    pub fn call_each_with<F, O>(
        &self,
        options: &CallOptions,
        n: usize,
        body: F,
    ) -> Result<(), ParallelError>
    where
        F: Fn(usize) -> O + Sync,
        O: TaskOutcome,
    {
        self.call_with(options, n, |first, count| {
            for i in first..first + count {
                // Failures (errors and panics) name the task; cleared after success.
                set_current_task(Some(i));
                body(i).into_result()?;
            }
            set_current_task(None);
            Ok::<(), String>(())
        })
    }

    /// Runs `body(first, count, results)` over the tasks and streams what the body pushes
    /// into `results` to `on_result`, which runs on the calling thread of the process that
    /// collects: the root for Distributed (results of every process are shipped to it in
    /// batches, piggybacked on chunk requests), every process for Duplicated and Local, the
    /// root for RootOnly.
    ///
    /// This is the building block for engines that compute results on workers and assemble
    /// them in one place (e.g. image tiles): results are handed over chunk by chunk while the
    /// call runs, so memory stays bounded by the chunks in flight. `on_result` sees the
    /// results of one chunk in the order they were pushed; chunks arrive in completion order.
    /// A panic in `on_result` is reported like a task failure of the process that runs the
    /// handler (thread index = number of worker threads, i.e. the coordinating thread), naming
    /// the chunk whose results it was handling and, if another process computed them, that
    /// process. A parallel call from `on_result` is refused (it would wait for this call).
    /// Results shipped between processes are encoded with postcard: results it cannot encode
    /// or decode (untagged or flattened serde types, `serde_json::Value`), or whose serde
    /// impls panic, fail the call on every process, naming the chunk and the process that
    /// computed them. So that a program tested in one process finds this too, a Distributed
    /// call in one process sends its first result through postcard and back, and fails the
    /// same way if it does not survive the trip.
    ///
    /// ```
    /// use prism_tasking::{CallOptions, ParallelFactory};
    /// let universe = prism_comm::init()?;
    /// let factory = ParallelFactory::new(&universe.world(), 2)?;
    /// // "Render" 64 tiles on all workers; assemble them on the root.
    /// let mut image = vec![0u32; 64];
    /// factory.distributed().call_collect(
    ///     &CallOptions::new(),
    ///     64,
    ///     |first, count, out: &mut Vec<(usize, u32)>| {
    ///         for tile in first..first + count {
    ///             out.push((tile, (tile * tile) as u32));
    ///         }
    ///     },
    ///     |(tile, value)| image[tile] = value,
    /// )?;
    /// if factory.is_root() {
    ///     assert_eq!(image[7], 49);
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn call_collect<R, F, O, C>(
        &self,
        options: &CallOptions,
        n: usize,
        body: F,
        mut on_result: C,
    ) -> Result<(), ParallelError>
    where
        R: Serialize + DeserializeOwned + Send,
        F: Fn(usize, usize, &mut Vec<R>) -> O + Sync,
        O: TaskOutcome,
        C: FnMut(R),
    {
        let body =
            |first: usize, count: usize, out: &mut Vec<R>| body(first, count, out).into_result();
        self.run(options, n, &body, &mut on_result)
    }

    fn run<R>(
        &self,
        options: &CallOptions,
        n: usize,
        body: &Body<'_, R>,
        on_result: &mut dyn FnMut(R),
    ) -> Result<(), ParallelError>
    where
        R: Serialize + DeserializeOwned + Send,
    {
        // Checked first: a serial call's coordinating thread is also its worker 0.
        if coordinating() {
            return Err(ParallelError::Invalid(
                "a parallel call was made from inside the result handler (on_result) of a \
                 call_collect, which runs while that call is still coordinating its workers; \
                 nested calls are not supported: collect the results and make the call after \
                 call_collect returns"
                    .to_string(),
            ));
        }
        if let Some(w) = current_worker() {
            return Err(ParallelError::Invalid(format!(
                "a parallel call was made from inside a task body (worker thread {w}); nested \
                 calls are not supported: run the inner loop serially"
            )));
        }
        if self.group.is_some() && in_engine_render() {
            return Err(ParallelError::Invalid(
                "a parallel call was made from inside a render engine's render or update, while \
                 that engine runs; across processes such nested calls are not supported (they \
                 would communicate in the middle of the run, or from a thread that may not): \
                 run the inner loop serially, or make the call before or after the engine's run"
                    .to_string(),
            ));
        }
        // Before any communication. This rank cannot reach the others from here, and they may
        // be waiting in this call's opening collective already: only ending the job frees
        // them (had every rank called from a wrong thread, none could tell).
        if let Some((comm, owner)) = &self.group {
            if std::thread::current().id() != *owner {
                scheduler::fatal(
                    comm,
                    "a parallel call was made from a thread other than the one that created \
                     the factory; with several processes every call must come from that thread",
                    CommError::WrongThread {
                        rank: self.rank,
                        op: "Parallel::call",
                        level: ThreadLevel::Funneled,
                    },
                );
            }
        }
        let group = self.group.as_ref().map(|(c, _)| c);
        let seq = match group {
            Some(comm) => {
                // Every rank must run the same call: agree first, in every mode, so that a
                // mismatch (or an argument refused on one rank only) is the same error
                // everywhere, not a hang or one rank's message misread as another kind of
                // message. The call number is agreed too: a Parallel recreated on some ranks
                // only (e.g. by `with_progress` on the root) restarts its count, and the
                // scheduler's messages must still carry the same number on every rank.
                let seq = agree_on_call::<R>(
                    comm,
                    self.mode,
                    n,
                    options,
                    self.seq.load(Ordering::Relaxed),
                )?;
                self.seq.store(seq.wrapping_add(1), Ordering::Relaxed);
                seq
            }
            None => self.seq.fetch_add(1, Ordering::Relaxed),
        };
        let plan = self.chunk_plan(n, options);
        let outcome = match plan {
            Err(e) => Err(e),
            Ok(plan) => self.run_local(options, n, seq, plan, body, on_result),
        };
        match (&self.imp, group) {
            (Imp::Distributed { .. }, _) | (_, None) => outcome,
            // Duplicated and RootOnly on several processes: every process returns the
            // failure of any process.
            (_, Some(comm)) => share_outcome(comm, outcome),
        }
    }

    fn run_local<R>(
        &self,
        options: &CallOptions,
        n: usize,
        seq: u64,
        plan: ChunkPlan,
        body: &Body<'_, R>,
        on_result: &mut dyn FnMut(R),
    ) -> Result<(), ParallelError>
    where
        R: Serialize + DeserializeOwned + Send,
    {
        if matches!(self.imp, Imp::Null) {
            return Ok(());
        }
        let mut coord = Coordinator::new(
            self.rank,
            self.threads,
            on_result,
            options
                .progress
                .as_deref()
                .filter(|_| self.show_progress)
                .map(|label| Progress::start(&self.progress, label, n as u64)),
        );
        if self.mode == TaskMode::Distributed && !matches!(self.imp, Imp::Distributed { .. }) {
            coord.check_results_travel();
        }
        match &self.imp {
            Imp::Null => {}
            Imp::Serial => run_serial(self.rank, plan, body, &mut coord),
            Imp::MultiThread(pool) => run_threads(pool, self.rank, plan, body, &mut coord),
            Imp::Distributed { comm, pool, .. } => {
                scheduler::run_distributed(comm, pool, seq, plan, body, &mut coord);
            }
        }
        coord.finish()
    }
}

/// What every rank says about a call before it starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct CallArgs {
    mode: CallMode,
    n: u64,
    chunk_size: Option<u64>,
    result_type: String,
    /// This rank's next call number (not compared: the largest is adopted).
    seq: u64,
}

/// [`TaskMode`] on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum CallMode {
    Distributed,
    Duplicated,
    RootOnly,
    /// Never agreed on (Local calls do not communicate); here for completeness.
    Local,
}

impl From<TaskMode> for CallMode {
    fn from(mode: TaskMode) -> CallMode {
        match mode {
            TaskMode::Distributed => CallMode::Distributed,
            TaskMode::Duplicated => CallMode::Duplicated,
            TaskMode::RootOnly => CallMode::RootOnly,
            TaskMode::Local => CallMode::Local,
        }
    }
}

impl std::fmt::Display for CallMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// "v on rank(s) ..." for each distinct value, in order of first appearance.
fn describe_values<T: PartialEq + std::fmt::Display>(values: &[T]) -> String {
    let mut groups: Vec<(&T, Vec<usize>)> = Vec::new();
    for (rank, v) in values.iter().enumerate() {
        match groups.iter_mut().find(|(g, _)| *g == v) {
            Some((_, ranks)) => ranks.push(rank),
            None => groups.push((v, vec![rank])),
        }
    }
    let parts: Vec<String> = groups
        .iter()
        .take(8)
        .map(|(v, ranks)| {
            let mut list: Vec<String> = ranks.iter().take(8).map(ToString::to_string).collect();
            if ranks.len() > 8 {
                list.push(format!("and {} more", ranks.len() - 8));
            }
            let s = if ranks.len() > 1 { "s" } else { "" };
            format!("{v} on rank{s} {}", list.join(", "))
        })
        .collect();
    let more = if groups.len() > 8 {
        format!("; {} more values", groups.len() - 8)
    } else {
        String::new()
    };
    format!("{}{more}", parts.join("; "))
}

/// Gathers every rank's mode and arguments of a call and checks they agree; then checks them
/// (an explicit chunk size of 0 anywhere is refused everywhere). Same result on all ranks:
/// the call number to use, the largest proposed (`seq`: this rank's next one).
fn agree_on_call<R>(
    comm: &Communicator,
    mode: TaskMode,
    n: usize,
    options: &CallOptions,
    seq: u64,
) -> Result<u64, ParallelError> {
    let mine = CallArgs {
        mode: mode.into(),
        n: n as u64,
        chunk_size: options.chunk_size.map(|c| c as u64),
        result_type: std::any::type_name::<R>().to_string(),
        seq,
    };
    // A failure here may leave other ranks in the collective: fatal, as in the scheduler.
    // After MPI's end no one waits, and nothing could end the job: the error is returned.
    let all: Vec<CallArgs> = comm.all_gather(&mine).map_err(|e| match e {
        CommError::Finalized { .. } => e,
        e => scheduler::fatal(comm, "agreeing on a parallel call", e),
    })?;
    let mut problems = Vec::new();
    let modes: Vec<CallMode> = all.iter().map(|a| a.mode).collect();
    if modes.iter().any(|&m| m != modes[0]) {
        problems.push(format!("task mode differs: {}", describe_values(&modes)));
    }
    let ns: Vec<u64> = all.iter().map(|a| a.n).collect();
    if ns.iter().any(|&x| x != ns[0]) {
        problems.push(format!(
            "number of tasks n differs: {}",
            describe_values(&ns)
        ));
    }
    let chunks: Vec<String> = all
        .iter()
        .map(|a| {
            a.chunk_size
                .map_or("automatic".to_string(), |c| c.to_string())
        })
        .collect();
    if chunks.iter().any(|c| *c != chunks[0]) {
        problems.push(format!("chunk size differs: {}", describe_values(&chunks)));
    }
    let types: Vec<&str> = all.iter().map(|a| a.result_type.as_str()).collect();
    if types.iter().any(|t| *t != types[0]) {
        problems.push(format!("result type differs: {}", describe_values(&types)));
    }
    if !problems.is_empty() {
        return Err(ParallelError::Invalid(format!(
            "the processes disagree on the call (every process must make the same calls, in \
             the same mode, with the same arguments): {}",
            problems.join("; ")
        )));
    }
    if all[0].chunk_size == Some(0) {
        return Err(ParallelError::Invalid(
            "explicit chunk size is 0 on every process; it must be at least 1".to_string(),
        ));
    }
    Ok(all.iter().map(|a| a.seq).max().unwrap_or(seq))
}

/// The end of a Duplicated or RootOnly call on several processes: every rank learns every
/// rank's outcome and returns the first problem (an invalid call, else the failure on the
/// lowest rank), so all return the same result.
fn share_outcome(
    comm: &Communicator,
    outcome: Result<(), ParallelError>,
) -> Result<(), ParallelError> {
    #[derive(Serialize, Deserialize)]
    enum Shared {
        Ok,
        Invalid(String),
        Failed(TaskFailure),
    }
    let mine = match &outcome {
        Ok(()) => Shared::Ok,
        Err(ParallelError::Task(f)) => Shared::Failed(f.clone()),
        Err(ParallelError::Invalid(m)) => Shared::Invalid(m.clone()),
        Err(e) => Shared::Invalid(e.to_string()),
    };
    let all: Vec<Shared> = comm.all_gather(&mine)?;
    if let Some((rank, msg)) = all.iter().enumerate().find_map(|(r, s)| match s {
        Shared::Invalid(m) => Some((r, m)),
        _ => None,
    }) {
        return Err(ParallelError::Invalid(format!("process {rank}: {msg}")));
    }
    match all.into_iter().find_map(|s| match s {
        Shared::Failed(f) => Some(f),
        _ => None,
    }) {
        Some(f) => Err(ParallelError::Task(f)),
        None => Ok(()),
    }
}

/// The coordinating thread's side of a call: receives finished chunks, forwards results,
/// counts progress and keeps the first failure.
pub(crate) struct Coordinator<'a, R> {
    pub(crate) rank: usize,
    /// Index reported for failures of the coordinating thread itself (= worker threads).
    pub(crate) own_thread: usize,
    on_result: &'a mut dyn FnMut(R),
    handler_failed: bool,
    /// Whether the first result still has to be checked for the trip between processes.
    check_wire: bool,
    progress: Option<Progress>,
    local_done: u64,
    remote_done: u64,
    pub(crate) failure: Option<TaskFailure>,
}

impl<'a, R: Serialize + DeserializeOwned> Coordinator<'a, R> {
    pub(crate) fn new(
        rank: usize,
        own_thread: usize,
        on_result: &'a mut dyn FnMut(R),
        progress: Option<Progress>,
    ) -> Self {
        Coordinator {
            rank,
            own_thread,
            on_result,
            handler_failed: false,
            check_wire: false,
            progress,
            local_done: 0,
            remote_done: 0,
            failure: None,
        }
    }

    /// Records a failure; the first one is the call's error. Returns true if it was the first.
    pub(crate) fn fail(&mut self, failure: TaskFailure) -> bool {
        if self.failure.is_none() {
            self.failure = Some(failure);
            true
        } else {
            false
        }
    }

    /// Hands the results of a chunk this process finished to the caller's handler. Returns
    /// true if the handler panicked (a new failure).
    pub(crate) fn chunk_done(&mut self, first: usize, count: usize, results: Vec<R>) -> bool {
        self.handle(self.rank, first, count, results)
    }

    /// Hands over the results of a chunk that process `from` finished.
    pub(crate) fn remote_chunk_done(
        &mut self,
        from: usize,
        first: usize,
        count: usize,
        results: Vec<R>,
    ) -> bool {
        self.handle(from, first, count, results)
    }

    /// Checks the first result the handler gets for the trip between processes (see
    /// [`Parallel::call_collect`]): for a Distributed call that runs in one process, where
    /// nothing travels, but where the same call on several processes would ship its results.
    pub(crate) fn check_results_travel(&mut self) {
        self.check_wire = true;
    }

    fn handle(&mut self, from: usize, first: usize, count: usize, results: Vec<R>) -> bool {
        if self.handler_failed || results.is_empty() {
            return false;
        }
        if std::mem::take(&mut self.check_wire) {
            // User code (serde impls) runs here, on the coordinating thread.
            let _mark = CoordinatingMark::set();
            let (panicked, problem) =
                match prism_comm::catch_panic(|| prism_comm::check_round_trip(&results[0])) {
                    Ok(Ok(())) => (false, None),
                    Ok(Err(e)) => (false, Some(e)),
                    Err(payload) => (true, Some(panic_message(payload.as_ref()))),
                };
            if let Some(problem) = problem {
                self.handler_failed = true;
                return self.fail(TaskFailure {
                    rank: self.rank,
                    thread: self.own_thread,
                    first,
                    count,
                    panicked,
                    task: None,
                    message: format!(
                        "the results (type {}) cannot travel between processes ({problem}); \
                         this call runs in one process, but the same Distributed call on \
                         several would ship them to the root and fail there: use a type that \
                         postcard can encode and decode (no untagged or flattened serde types)",
                        std::any::type_name::<R>()
                    ),
                });
            }
        }
        let handler = &mut *self.on_result;
        // The handler is user code on the thread that coordinates this call: a parallel call
        // from it must be refused, not wait for the call it is part of.
        let _mark = CoordinatingMark::set();
        // Not `catch_unwind`: under `Universe::abort_on_panic` its hook would end the job
        // instead of the panic becoming the call's error on every process.
        let outcome = prism_comm::catch_panic(|| {
            for r in results {
                handler(r);
            }
        });
        match outcome {
            Ok(()) => false,
            Err(payload) => {
                self.handler_failed = true;
                // The failure is where the handler ran; the chunk (and, if another process
                // computed it, that process) says which results it was handling.
                let source = if from == self.rank {
                    String::new()
                } else {
                    format!(" (results computed on process {from})")
                };
                let failure = TaskFailure {
                    rank: self.rank,
                    thread: self.own_thread,
                    first,
                    count,
                    panicked: true,
                    task: None,
                    message: format!(
                        "result handler{source}: {}",
                        panic_message(payload.as_ref())
                    ),
                };
                self.fail(failure)
            }
        }
    }

    /// How often to wake up to update the progress display, if one is running.
    pub(crate) fn progress_tick(&self) -> Option<Duration> {
        self.progress.as_ref().map(Progress::tick)
    }

    /// Counts tasks finished on other processes.
    pub(crate) fn add_remote_progress(&mut self, units: u64) {
        self.remote_done += units;
        self.show_progress();
    }

    /// Sets the number of tasks finished by this process's workers.
    pub(crate) fn set_local_progress(&mut self, units: u64) {
        self.local_done = units;
        self.show_progress();
    }

    fn show_progress(&mut self) {
        if let Some(p) = self.progress.as_mut() {
            p.set(self.local_done + self.remote_done);
        }
    }

    /// Ends the progress display and turns the first failure into the call's result.
    pub(crate) fn finish(mut self) -> Result<(), ParallelError> {
        if let Some(p) = self.progress.take() {
            p.finish();
        }
        match self.failure.take() {
            Some(f) => Err(ParallelError::Task(f)),
            None => Ok(()),
        }
    }
}

fn run_serial<R: Serialize + DeserializeOwned>(
    rank: usize,
    plan: ChunkPlan,
    body: &Body<'_, R>,
    coord: &mut Coordinator<'_, R>,
) {
    let _mark = WorkerMark::set(0);
    let mut results = Vec::new();
    for (first, count) in plan.chunks() {
        match run_chunk(body, rank, 0, first, count, &mut results) {
            Ok(()) => {
                coord.set_local_progress((first + count) as u64);
                if coord.chunk_done(first, count, std::mem::take(&mut results)) {
                    return;
                }
            }
            Err(failure) => {
                coord.fail(failure);
                return;
            }
        }
    }
}

/// The pool's threads pull chunks from one atomic counter; the calling thread coordinates.
fn run_threads<R: Serialize + DeserializeOwned + Send>(
    pool: &rayon::ThreadPool,
    rank: usize,
    plan: ChunkPlan,
    body: &Body<'_, R>,
    coord: &mut Coordinator<'_, R>,
) {
    let threads = pool.current_num_threads();
    let counter = ChunkCounter::new(plan);
    let stop = AtomicBool::new(false);
    let done = AtomicU64::new(0);
    // Bounded: workers wait rather than pile up results faster than the handler takes them.
    let (tx, rx) = crossbeam_channel::bounded::<Event<R>>(4 * threads + 4);
    let next = || counter.next_chunk();
    let shared = Shared {
        stop: &stop,
        done: &done,
        events: &tx,
        report_every_chunk: false,
    };
    pool.in_place_scope(|scope| {
        let (next, shared) = (&next, &shared);
        scope.spawn_broadcast(move |_, ctx| {
            worker_loop(rank, ctx.index(), next, body, shared);
        });
        let mut exited = 0;
        while exited < threads {
            // With a display, wake up now and then to show progress; otherwise sleep until
            // a worker has results, a failure or has left.
            let event = if let Some(tick) = coord.progress_tick() {
                match rx.recv_timeout(tick) {
                    Ok(e) => Some(e),
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => None,
                    Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
                }
            } else {
                match rx.recv() {
                    Ok(e) => Some(e),
                    Err(_) => break,
                }
            };
            coord.set_local_progress(done.load(Ordering::Relaxed));
            match event {
                None => {}
                Some(Event::Done {
                    first,
                    count,
                    results,
                }) => {
                    let handler_failed = coord.chunk_done(first, count, results);
                    if handler_failed {
                        stop.store(true, Ordering::Release);
                        counter.exhaust();
                    }
                }
                Some(Event::Failed(failure)) => {
                    coord.fail(failure);
                    counter.exhaust();
                }
                Some(Event::Exited) => exited += 1,
            }
        }
    });
    coord.set_local_progress(done.load(Ordering::Relaxed));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differing_values_are_listed_with_their_ranks() {
        assert_eq!(
            describe_values(&[10u64, 15, 10, 20]),
            "10 on ranks 0, 2; 15 on rank 1; 20 on rank 3"
        );
        let many: Vec<u64> = (0..20).map(|r| u64::from(r > 0)).collect();
        assert_eq!(
            describe_values(&many),
            "0 on rank 0; 1 on ranks 1, 2, 3, 4, 5, 6, 7, 8, and 11 more"
        );
    }
}
