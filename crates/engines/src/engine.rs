//! The engine contract (Raysect's `RenderEngine`): `run(tasks, render, update)`.

use crate::error::Result;
use crate::options::Options;
use crate::stats::RunStats;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Display;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

/// Runs a list of independent tasks on workers and hands their results to one consumer.
///
/// - `render(&task)` runs on the workers, any number at once, each task exactly once.
/// - `update(result)` runs on the root process only, on the thread that called `run`, once per
///   task, as results arrive and in no particular order (a result that must be placed should
///   carry its task's identity, or use [`Engine::run_indexed`]).
/// - Tasks and results are any serde types: the multi-process engines send results (never
///   tasks) between processes.
///
/// **Every process calls `run` with the same task list** (as every rank builds the same scene
/// and the same tiles, Raysect's SPMD model). Only task indices travel; the engine checks at the
/// start of each run that every process holds the same number of tasks with the same encoding
/// (a hash) and fails with [`crate::EngineError::TaskListMismatch`] otherwise. A list that only
/// the root can make is shared first with the communicator's `broadcast`.
///
/// On success every process returns `Ok` after the whole run has completed; if `render` or
/// `update` fails or panics anywhere, every process returns the same error, which names the
/// process, the thread and the task, and the engine can run again. That holds under
/// `prism_comm::Universe::abort_on_panic` too: the engine catches these panics with
/// `prism_comm::catch_panic`, which the abort hook spares. A communication failure in the
/// middle of a run, which would leave the other processes waiting forever, aborts the job with
/// a message.
///
/// With MPI, `run` must be called on the thread that initialised it (the only thread that
/// communicates); render threads never communicate. With several processes a `run` from
/// another thread aborts the job with a message naming the process: that process cannot reach
/// the others, who may already wait for it at the run's start.
pub trait Engine {
    /// Render workers in all processes.
    fn worker_count(&self) -> usize;

    /// True on the process where `update` runs.
    fn is_root(&self) -> bool;

    /// This process's rank (0 for the single-process engines).
    fn rank(&self) -> usize {
        0
    }

    /// Processes taking part in a run.
    fn processes(&self) -> usize {
        1
    }

    /// The engine's scheduling and batching settings.
    fn options(&self) -> &Options;

    /// Like [`Engine::run`], with `update` also given the task's index, and the tasks borrowed.
    fn run_indexed<T, R, E, F, U>(&self, tasks: &[T], render: F, update: U) -> Result<RunStats>
    where
        T: Serialize + Sync,
        R: Serialize + DeserializeOwned + Send,
        E: Display,
        F: Fn(&T) -> std::result::Result<R, E> + Sync,
        U: FnMut(usize, R) -> std::result::Result<(), E>;

    /// Renders every task and applies every result on the root. See the trait's description.
    fn run<T, R, E, F, U>(&self, tasks: Vec<T>, render: F, mut update: U) -> Result<RunStats>
    where
        T: Serialize + Sync,
        R: Serialize + DeserializeOwned + Send,
        E: Display,
        F: Fn(&T) -> std::result::Result<R, E> + Sync,
        U: FnMut(R) -> std::result::Result<(), E>,
    {
        self.run_indexed(&tasks, render, |_, r| update(r))
    }
}

/// Warns, once per process, when a single-process engine (`name`) runs in a process that a
/// launcher started as one of several: if every process runs it, each runs every task and
/// calls `update` for all of them (N copies of the work, N writers of one output), the worst
/// failure and a silent one. Not an error: work that is this process's own (the root's
/// post-processing, each rank's own subdomain) is legitimate, and an error on some ranks only
/// would leave the others waiting in their next collective. `local` is the caller saying the
/// work is this process's own. Said by the launcher's rank 0 only (or a process without one),
/// so a job of N processes prints it once.
pub(crate) fn warn_if_copied(name: &str, local: bool) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    let Some(n) = prism_comm::launched_processes().filter(|&n| n > 1) else {
        return;
    };
    if local || prism_comm::launcher_rank().unwrap_or(0) != 0 || WARNED.swap(true, Relaxed) {
        return;
    }
    eprintln!(
        "prism-engines: warning: {name} runs every task in this process, which a launcher \
         started as one of {n}: if each of them runs it, each runs every task and calls update \
         for all of them. Use MpiEngine or HybridEngine to share the tasks among the processes, \
         or {name}::local() for work that is this process's own (which also ends this warning)"
    );
}
