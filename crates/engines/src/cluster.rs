//! [`MpiEngine`] and [`HybridEngine`]: processes of a communicator, each with render threads.
//!
//! Both are the same machine: every process runs render threads, and its main thread (the
//! thread that initialised MPI, the only one that communicates) moves results and chunks. On
//! the root the main thread also serves the other processes' chunk requests from the counter
//! its own threads take chunks from, and runs `update`. See `protocol` for the messages,
//! `root` and `member` for the two sides.

use crate::engine::Engine;
use crate::error::{panic_message, EngineError, Result};
use crate::options::{Options, Schedule, SingleThread};
use crate::protocol::{check_lists, fingerprint};
use crate::stats::{ProcessStats, RunStats};
use prism_comm::Communicator;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Display;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// The state shared by the multi-process engines.
#[derive(Debug)]
pub(crate) struct Cluster {
    /// A duplicate of the caller's communicator: the engine's messages never meet the caller's.
    pub comm: Communicator,
    /// Render threads of this process.
    pub threads: usize,
    /// Global index of this process's first worker (for the static schedule).
    pub first_worker: usize,
    /// Workers in all processes.
    pub workers: usize,
    /// Render threads of every process.
    pub threads_of: Vec<usize>,
    pub options: Options,
    /// Runs started so far; every message carries its run's number. Only a run that got
    /// through the opening collective counts, on every process alike: a call refused on one
    /// process alone (from another thread, or nested) must not put it a run ahead.
    seq: AtomicU64,
    /// Whether a run is in progress in this process: a `run` from inside `render` or `update`
    /// is refused before it sends anything.
    busy: AtomicBool,
}

/// Clears [`Cluster::busy`] however the run ends.
struct NotBusy<'a>(&'a AtomicBool);

impl Drop for NotBusy<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl Cluster {
    /// Collective over `comm`: duplicates it and learns every process's thread count.
    fn new(comm: &Communicator, threads: usize) -> Result<Cluster> {
        let rank = comm.rank();
        let comm = comm
            .duplicate()
            .map_err(|e| EngineError::comm(rank, "creating the engine's communicator", e))?;
        let all: Vec<u64> = comm
            .all_gather(&(threads as u64))
            .map_err(|e| EngineError::comm(rank, "exchanging thread counts", e))?;
        let first_worker = all[..rank].iter().sum::<u64>() as usize;
        let workers = all.iter().sum::<u64>() as usize;
        Ok(Cluster {
            comm,
            threads,
            first_worker,
            workers,
            threads_of: all.iter().map(|&t| t as usize).collect(),
            options: Options::default(),
            seq: AtomicU64::new(0),
            busy: AtomicBool::new(false),
        })
    }

    /// Whether this process's one worker is its main thread (see [`SingleThread`]).
    pub(crate) fn renders_inline(&self) -> bool {
        self.threads == 1
            && match self.options.single_thread {
                SingleThread::OwnThread => false,
                SingleThread::MainThreadExceptRoot => !self.comm.is_root(),
                SingleThread::MainThread => true,
            }
    }

    fn run_indexed<T, R, E, F, U>(&self, tasks: &[T], render: F, update: U) -> Result<RunStats>
    where
        T: Serialize + Sync,
        R: Serialize + DeserializeOwned + Send,
        E: Display,
        F: Fn(&T) -> std::result::Result<R, E> + Sync,
        U: FnMut(usize, R) -> std::result::Result<(), E>,
    {
        let start = Instant::now();
        let rank = self.comm.rank();
        if self.busy.swap(true, Ordering::Acquire) {
            return Err(EngineError::Invalid(format!(
                "process {rank}: run called while this engine is already running (from render, \
                 update or another thread): use another engine inside a task, such as \
                 MultiThreadEngine::new(n).local()"
            )));
        }
        let _not_busy = NotBusy(&self.busy);
        let seq = self.seq.load(Ordering::Relaxed);
        // Invalid options and unencodable tasks go through the start's all-gather too, so
        // every process fails alike instead of some waiting for one that gave up.
        let mine: std::result::Result<(u64, u64, String), String> = self
            .options
            .validate()
            .map_err(|e| e.to_string())
            .and_then(|()| {
                // The tasks' Serialize impl is user code: a panic must not leave the other
                // processes waiting in the all-gather below.
                prism_comm::catch_panic(|| fingerprint(tasks))
                    .unwrap_or_else(|p| Err(format!("panicked: {}", panic_message(&*p))))
                    .map(|f| (tasks.len() as u64, f, self.options.shared_part()))
                    .map_err(|m| format!("cannot encode its tasks: {m}"))
            });
        // A rank that cannot take part (called from a thread that may not use MPI, say)
        // cannot tell the others, who would wait in the all-gather forever: with several
        // processes that ends the job, as a failure later in the run does.
        let lists: Vec<std::result::Result<(u64, u64, String), String>> =
            self.comm.all_gather(&mine).map_err(|e| {
                // After MPI's end no one waits, and nothing could end the job.
                if self.comm.size() > 1 && !matches!(e, prism_comm::CommError::Finalized { .. }) {
                    fatal(&self.comm, "comparing task lists at the start of a run", e)
                }
                EngineError::comm(rank, "comparing task lists", e)
            })?;
        self.seq.store(seq + 1, Ordering::Relaxed);
        let mut checked = Vec::with_capacity(lists.len());
        let mut shared = Vec::with_capacity(lists.len());
        for (r, l) in lists.into_iter().enumerate() {
            let (n, f, options) =
                l.map_err(|m| EngineError::Invalid(format!("process {r}: {m}")))?;
            checked.push((n, f));
            shared.push(options);
        }
        check_lists(&checked)?;
        check_options(&shared)?;
        let local = ProcessStats {
            rank,
            threads: self.threads,
            sync_time: start.elapsed(),
            ..ProcessStats::default()
        };
        if self.comm.is_root() {
            crate::root::run(self, seq, start, local, tasks, &render, update)
        } else {
            crate::member::run(self, seq, start, local, tasks, &render)
        }
    }
}

/// The first process whose shared options differ from the root's, as an error every process
/// returns alike.
fn check_options(all: &[String]) -> Result<()> {
    match all.iter().enumerate().find(|(_, o)| *o != &all[0]) {
        None => Ok(()),
        Some((rank, theirs)) => Err(EngineError::Invalid(format!(
            "process {rank} runs with {theirs}, process 0 with {}: every process of a run must \
             use the same schedule and chunking",
            all[0]
        ))),
    }
}

/// Prints why the job cannot go on and ends every process of it.
///
/// Used for communication failures in the middle of a run: the protocol cannot recover from
/// a lost message, and returning would leave the other processes waiting forever.
pub(crate) fn fatal(comm: &Communicator, what: &str, err: impl Display) -> ! {
    eprintln!(
        "prism-engines: process {}: {what}: {err}; aborting the job (the other processes \
         could not otherwise finish the run)",
        comm.rank()
    );
    comm.abort(70)
}

macro_rules! cluster_engine_common {
    () => {
        /// The same engine with other options. Every process must use the same options.
        pub fn with_options(mut self, options: Options) -> Self {
            self.cluster.options = options;
            self
        }

        /// The same engine with another schedule (the same on every process).
        pub fn with_schedule(mut self, schedule: Schedule) -> Self {
            self.cluster.options.schedule = schedule;
            self
        }

        /// The engine's own communicator (a duplicate of the one it was made from).
        pub fn communicator(&self) -> &Communicator {
            &self.cluster.comm
        }

        /// Render threads in this process.
        pub fn threads(&self) -> usize {
            self.cluster.threads
        }
    };
}

macro_rules! cluster_engine_impl {
    ($ty:ty) => {
        impl Engine for $ty {
            fn worker_count(&self) -> usize {
                self.cluster.workers
            }

            fn is_root(&self) -> bool {
                self.cluster.comm.is_root()
            }

            fn rank(&self) -> usize {
                self.cluster.comm.rank()
            }

            fn processes(&self) -> usize {
                self.cluster.comm.size()
            }

            fn options(&self) -> &Options {
                &self.cluster.options
            }

            fn run_indexed<T, R, E, F, U>(
                &self,
                tasks: &[T],
                render: F,
                update: U,
            ) -> Result<RunStats>
            where
                T: Serialize + Sync,
                R: Serialize + DeserializeOwned + Send,
                E: Display,
                F: Fn(&T) -> std::result::Result<R, E> + Sync,
                U: FnMut(usize, R) -> std::result::Result<(), E>,
            {
                self.cluster.run_indexed(tasks, render, update)
            }
        }
    };
}

/// One render worker per process of a communicator (Raysect PR #442's `MPIEngine`, with the
/// root rendering too and results flowing without blocking anyone).
///
/// Each process runs one render thread; its main thread communicates. On the root the main
/// thread also serves chunks and runs `update`, so the root renders as much as any other
/// process. Every process of the communicator must call every method that says "collective",
/// and `run`, in the same order; with MPI they must be called on the thread that initialised
/// it.
#[derive(Debug)]
pub struct MpiEngine {
    cluster: Cluster,
}

impl MpiEngine {
    /// An engine over the processes of `comm`. Collective over `comm`.
    pub fn new(comm: &Communicator) -> Result<Self> {
        Ok(MpiEngine {
            cluster: Cluster::new(comm, 1)?,
        })
    }

    cluster_engine_common!();
}

cluster_engine_impl!(MpiEngine);

/// Processes × threads: the processes of a communicator, each running `threads` render threads
/// that share its memory (the PR #442 review's hybrid, with threads instead of forked
/// processes). One process per node with a thread per core holds one copy of the scene per
/// node; see [`crate::NodeShared`] to get the same with several processes per node.
#[derive(Debug)]
pub struct HybridEngine {
    cluster: Cluster,
}

impl HybridEngine {
    /// An engine over the processes of `comm` with `threads` render threads in this process.
    /// 0 gives each process its share of its cores: those it may use, divided among the
    /// processes of `comm` on its node that may use the same ones
    /// ([`Communicator::cores_per_rank`]), so that unbound processes fill a node without
    /// oversubscribing it. Processes may have different thread counts. Collective over `comm`.
    pub fn new(comm: &Communicator, threads: usize) -> Result<Self> {
        let threads = match threads {
            0 => comm
                .cores_per_rank()
                .map_err(|e| EngineError::comm(comm.rank(), "sharing the node's cores", e))?,
            n => n,
        };
        Ok(HybridEngine {
            cluster: Cluster::new(comm, threads)?,
        })
    }

    cluster_engine_common!();
}

cluster_engine_impl!(HybridEngine);
