//! `ParallelFactory`: built once from a communicator and a thread count, it hands out the
//! [`Parallel`] implementation for a task mode and reuses it (and its threads) between calls.
//!
//! | mode | 1 proc, 1 thread | 1 proc, N threads | P procs, 1 thread | P procs, N threads |
//! | --- | --- | --- | --- | --- |
//! | Distributed | Serial | MultiThread | MultiProcess | MultiHybrid |
//! | Duplicated | Serial | MultiThread | Serial, on every proc | MultiThread, on every proc |
//! | RootOnly | Serial | MultiThread | Serial on root, Null elsewhere | MultiThread on root, Null elsewhere |
//! | Local | Serial | MultiThread | Serial, on every proc | MultiThread, on every proc |
//!
//! Local is the one mode whose calls are not collective: each process runs its own loop
//! over its own `n` (a process's share of a decomposition, say) with its own threads, and
//! the processes neither communicate nor wait for one another.
//!
//! Duplicated uses threads even on several processes (SKIRT ran it serially there because its
//! random numbers depended on the thread): with per-task random streams
//! ([`crate::TaskRng`]) every process computes the same results whatever its threads do.

use crate::error::ParallelError;
use crate::parallel::{Imp, Parallel, ParallelKind};
use crate::progress::ProgressConfig;
use prism_comm::Communicator;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// How a loop's tasks are allocated to the processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskMode {
    /// All threads of all processes share the tasks; each index runs once in all.
    Distributed,
    /// Every process runs every task (the results should be identical on all processes).
    Duplicated,
    /// Only the root process runs the tasks (with all its threads); the others skip them.
    RootOnly,
    /// Each process runs its own loop with its own threads, without communicating: `n` may
    /// differ between processes, and a process may call while the others do not (e.g. over
    /// its own subdomain of [`crate::orb()`]). A failure is returned only where it happened.
    /// It runs on the factory's threads: calls made at the same time from several threads
    /// share them, so a Local call may wait for the chunks of another call already running.
    Local,
}

/// Builds and keeps the [`Parallel`] children of a run.
pub struct ParallelFactory {
    comm: Option<Communicator>,
    /// The thread that built the factory (the one allowed to communicate).
    owner: std::thread::ThreadId,
    rank: usize,
    size: usize,
    threads: usize,
    total_workers: usize,
    progress: ProgressConfig,
    pool: Option<Arc<rayon::ThreadPool>>,
    /// By mode, not by kind: Duplicated and RootOnly map to the same kind on the root, but a
    /// call must know its mode to check that every process called in the same one.
    children: Mutex<HashMap<TaskMode, Arc<Parallel>>>,
}

impl std::fmt::Debug for ParallelFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParallelFactory")
            .field("rank", &self.rank)
            .field("size", &self.size)
            .field("threads", &self.threads)
            .field("total_workers", &self.total_workers)
            .finish()
    }
}

/// `max_threads`, with 0 meaning the process's available parallelism.
fn resolve_threads(max_threads: usize) -> usize {
    if max_threads > 0 {
        max_threads
    } else {
        prism_comm::cpus::usable_cores()
    }
}

fn build_pool(threads: usize) -> Result<Arc<rayon::ThreadPool>, ParallelError> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("prism-worker-{i}"))
        .build()
        .map(Arc::new)
        .map_err(|e| ParallelError::Invalid(format!("cannot start {threads} worker threads: {e}")))
}

impl ParallelFactory {
    /// A factory over the processes of `comm` with up to `max_threads` worker threads per
    /// process. 0 gives each process its share of the cores, as SKIRT does: the cores it may
    /// use, divided among the processes of `comm` on its node that may use the same ones
    /// ([`Communicator::cores_per_rank`]), so that unbound ranks fill a node without
    /// oversubscribing it and ranks bound to cores of their own (Slurm's `--cpus-per-task`)
    /// use all of theirs.
    ///
    /// Collective: every rank of `comm` must call it. The factory works on a duplicate of
    /// `comm`, so its messages never mix with the caller's. Progress settings come from the
    /// environment ([`ProgressConfig::from_env`]).
    pub fn new(comm: &Communicator, max_threads: usize) -> Result<ParallelFactory, ParallelError> {
        // Collectives: a rank that fails one (called from a thread that may not use MPI, say)
        // cannot tell the others, who would wait in it forever. Alone, it can just return.
        // After MPI's end no one waits, and nothing could end the job: that error is returned.
        let fatal_if_shared = |c: &Communicator, e: prism_comm::CommError| {
            if c.size() > 1 && !matches!(e, prism_comm::CommError::Finalized { .. }) {
                crate::scheduler::fatal(c, "creating a ParallelFactory", e)
            }
            e
        };
        let comm = comm.duplicate().map_err(|e| fatal_if_shared(comm, e))?;
        let threads = match max_threads {
            0 => comm
                .cores_per_rank()
                .map_err(|e| fatal_if_shared(&comm, e))?,
            n => n,
        };
        let all: Vec<u64> = comm
            .all_gather(&(threads as u64))
            .map_err(|e| fatal_if_shared(&comm, e))?;
        let total_workers = all.iter().map(|&t| t as usize).sum();
        let (rank, size) = (comm.rank(), comm.size());
        let pool = if threads > 1 || size > 1 {
            Some(build_pool(threads)?)
        } else {
            None
        };
        Ok(ParallelFactory {
            comm: Some(comm),
            owner: std::thread::current().id(),
            rank,
            size,
            threads,
            total_workers,
            progress: ProgressConfig::from_env(),
            pool,
            children: Mutex::new(HashMap::new()),
        })
    }

    /// A factory for one process without any communicator (embedding in a program that does
    /// not use prism-comm), with up to `max_threads` threads (0: one per core).
    pub fn single_process(max_threads: usize) -> Result<ParallelFactory, ParallelError> {
        let threads = resolve_threads(max_threads);
        let pool = if threads > 1 {
            Some(build_pool(threads)?)
        } else {
            None
        };
        Ok(ParallelFactory {
            comm: None,
            owner: std::thread::current().id(),
            rank: 0,
            size: 1,
            threads,
            total_workers: threads,
            progress: ProgressConfig::from_env(),
            pool,
            children: Mutex::new(HashMap::new()),
        })
    }

    /// Replaces the progress display settings (for children handed out from now on).
    pub fn with_progress(mut self, progress: ProgressConfig) -> ParallelFactory {
        self.progress = progress;
        self.children = Mutex::new(HashMap::new());
        self
    }

    /// Worker threads per process.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Number of processes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Whether this is the root process (rank 0).
    pub fn is_root(&self) -> bool {
        self.rank == 0
    }

    /// Worker threads summed over all processes.
    pub fn total_workers(&self) -> usize {
        self.total_workers
    }

    /// The factory's private communicator (a duplicate of the one it was built from), or
    /// `None` for [`ParallelFactory::single_process`].
    pub fn communicator(&self) -> Option<&Communicator> {
        self.comm.as_ref()
    }

    /// The kind of [`Parallel`] that `mode` maps to on this process (the table above).
    pub fn kind_for(&self, mode: TaskMode) -> ParallelKind {
        let local = if self.threads > 1 {
            ParallelKind::MultiThread
        } else {
            ParallelKind::Serial
        };
        match mode {
            TaskMode::Distributed if self.size > 1 => {
                if self.threads > 1 {
                    ParallelKind::MultiHybrid
                } else {
                    ParallelKind::MultiProcess
                }
            }
            TaskMode::RootOnly if self.rank != 0 => ParallelKind::Null,
            _ => local,
        }
    }

    /// The [`Parallel`] for `mode`, created on first use and reused afterwards.
    pub fn parallel(&self, mode: TaskMode) -> Arc<Parallel> {
        let mut children = self
            .children
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        children
            .entry(mode)
            .or_insert_with(|| Arc::new(self.make(mode)))
            .clone()
    }

    /// Shorthand for `parallel(TaskMode::Distributed)`.
    pub fn distributed(&self) -> Arc<Parallel> {
        self.parallel(TaskMode::Distributed)
    }

    /// Shorthand for `parallel(TaskMode::Duplicated)`.
    pub fn duplicated(&self) -> Arc<Parallel> {
        self.parallel(TaskMode::Duplicated)
    }

    /// Shorthand for `parallel(TaskMode::RootOnly)`.
    pub fn root_only(&self) -> Arc<Parallel> {
        self.parallel(TaskMode::RootOnly)
    }

    /// Shorthand for `parallel(TaskMode::Local)`: a loop of this process only, on the
    /// factory's threads (no second thread pool), that never communicates.
    pub fn local(&self) -> Arc<Parallel> {
        self.parallel(TaskMode::Local)
    }

    fn make(&self, mode: TaskMode) -> Parallel {
        let kind = self.kind_for(mode);
        let imp = match (kind, &self.pool, &self.comm) {
            (ParallelKind::Null, _, _) => Imp::Null,
            (ParallelKind::MultiThread, Some(pool), _) => Imp::MultiThread(pool.clone()),
            (ParallelKind::MultiProcess | ParallelKind::MultiHybrid, Some(pool), Some(comm)) => {
                Imp::Distributed {
                    comm: comm.clone(),
                    pool: pool.clone(),
                    total_workers: self.total_workers,
                }
            }
            // kind_for only picks the threaded kinds when the pool (and, across processes,
            // the communicator) exists; anything else runs serially.
            _ => Imp::Serial,
        };
        // Across processes every call is collective (if only to agree on its outcome), but
        // for Local's, which are this process's alone.
        let group = self
            .comm
            .as_ref()
            .filter(|c| c.size() > 1 && mode != TaskMode::Local)
            .map(|c| (c.clone(), self.owner));
        Parallel::new(
            kind,
            mode,
            imp,
            self.rank,
            self.rank == 0,
            self.progress.clone(),
            group,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_process_table() {
        let f1 = ParallelFactory::single_process(1).unwrap();
        let f3 = ParallelFactory::single_process(3).unwrap();
        for mode in [
            TaskMode::Distributed,
            TaskMode::Duplicated,
            TaskMode::RootOnly,
            TaskMode::Local,
        ] {
            assert_eq!(f1.parallel(mode).kind(), ParallelKind::Serial);
            assert_eq!(f3.parallel(mode).kind(), ParallelKind::MultiThread);
            assert_eq!(f3.parallel(mode).threads(), 3);
        }
        assert!(
            Arc::ptr_eq(&f3.root_only(), &f3.root_only()),
            "children are reused"
        );
        assert_eq!(f3.duplicated().mode(), TaskMode::Duplicated);
        assert_eq!(f3.root_only().mode(), TaskMode::RootOnly);
        assert_eq!(f3.total_workers(), 3);
        assert!(ParallelFactory::single_process(0).unwrap().threads() >= 1);
    }

    #[test]
    fn factory_from_a_one_process_world() {
        let universe = prism_comm::init().unwrap();
        let f = ParallelFactory::new(&universe.world(), 2).unwrap();
        assert_eq!((f.rank(), f.size(), f.threads()), (0, 1, 2));
        assert_eq!(f.distributed().kind(), ParallelKind::MultiThread);
        assert!(f.communicator().is_some());
    }
}
