//! The engine contract (Raysect's `RenderEngine`): `run(tasks, render, update)`.

use crate::error::{EngineError, Result};
use crate::options::Options;
use crate::stats::RunStats;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Display;

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

/// A single-process engine (`name`) refuses to run in a process that a launcher started as
/// one of several: each would run every task and call `update` for all of them (N copies of
/// the work, N writers of one output), the worst failure, and a silent one. `in_each_process`
/// is the caller saying that is what it wants (say, each rank's own tasks).
pub(crate) fn check_one_process(name: &str, in_each_process: bool) -> Result<()> {
    match prism_comm::launched_processes() {
        Some(n) if n > 1 && !in_each_process => Err(EngineError::Invalid(format!(
            "{name} runs every task in this one process, but a launcher started this process \
             as one of {n}: each of them would run every task and call update for all of \
             them. Use MpiEngine or HybridEngine to share the tasks among the processes, or \
             {name}::in_each_process() if each process should run them all"
        ))),
        _ => Ok(()),
    }
}
