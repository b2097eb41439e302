//! `prism-tasking`: loops over independent tasks on whatever a run has — one thread, many
//! threads, many MPI processes, or processes with threads — behind one interface (SKIRT's
//! `Parallel` / `ParallelFactory`), plus the pieces such loops need: thread-local and atomic
//! accumulators, random streams indexed by task, progress display, worker groups with
//! restartable task states, and domain decomposition by orthogonal recursive bisection.
//!
//! It renders nothing and knows nothing of rendering: any simulation can embed it.
//!
//! # The model
//! A [`ParallelFactory`] is built once from a communicator and a thread count. For a
//! [`TaskMode`] it hands out a [`Parallel`], whose [`Parallel::call`] runs `body(first,
//! count)` over chunks of consecutive indices covering `0..n`:
//!
//! * `Distributed`: every index once in all, shared by all threads of all processes;
//! * `Duplicated`: every process runs every index;
//! * `RootOnly`: only the root process runs them;
//! * `Local`: each process runs its own loop (its own `n`, its own share of the work) on its
//!   own threads, without communicating.
//!
//! Calls in the first three modes are collective: every process makes the same calls with
//! the same `n` (checked at the start of each call).
//!
//! Chunks are handed out dynamically with guided sizes (see [`chunk`]). Across processes the
//! root's threads compute too while its calling thread serves chunk requests; the other
//! processes prefetch chunks so their workers do not wait a round trip; nobody spins a core
//! while waiting. MPI is used only through `prism-comm`, only from the calling thread.
//!
//! A failure or panic in any task on any thread of any process makes the call return
//! [`ParallelError::Task`] on every process, naming the process, thread and chunk; the
//! `Parallel` stays usable. Engines that compute results on workers and assemble them in one
//! place use [`Parallel::call_collect`], which streams results to a callback on the root.
//!
//! # Reproducibility
//! Draw random numbers from [`TaskRng`] keyed by the task index (never from a per-thread
//! generator), and sum integers or per-task partial sums in task order: the results are then
//! bit-identical for any number of threads and processes.
//!
//! # Example
//! A Monte Carlo estimate of π, identical for every split of the work:
#![doc = concat!("```\n", include_str!("../examples/tasking_crate_doc.rs"), "```")]

pub mod accum;
pub mod batch;
pub mod chunk;
pub mod error;
pub mod factory;
pub mod orb;
pub mod parallel;
pub mod progress;
pub mod random;
mod scheduler;
mod worker;

pub use prism_comm as comm;

pub use accum::{atomic_f64_values, atomic_f64_vec, AtomicF64, ThreadLocalAcc};
pub use batch::{Batch, BatchOptions, BatchReport, BatchTask, TaskState};
pub use chunk::{ChunkCounter, ChunkPlan};
pub use error::{ParallelError, TaskFailure, TaskOutcome};
pub use factory::{ParallelFactory, TaskMode};
pub use orb::{orb, orb_weighted, OrbError, Subdomain, MAX_EMPTY_PARTS};
pub use parallel::{CallOptions, Parallel, ParallelKind};
pub use progress::{Progress, ProgressConfig, ProgressStyle};
pub use random::{mix64, stream_key, TaskRng};
pub use worker::{current_worker, EngineRenderMark};
