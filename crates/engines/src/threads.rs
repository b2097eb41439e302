//! [`MultiThreadEngine`]: render threads in this process, `update` on the calling thread.

use crate::apply::Applier;
use crate::engine::{check_one_process, Engine};
use crate::error::{EngineError, Result};
use crate::options::{Options, Schedule};
use crate::outbox::{Msg, Outbox, Release};
use crate::stats::{ProcessStats, RunStats};
use crate::travel::TravelCheck;
use crate::worker::{Crew, Source};
use prism_tasking::{ChunkCounter, ChunkPlan};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Display;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Results the main thread applies between two looks at the rest of its duties.
pub(crate) const APPLY_SLICE: usize = 32;
/// Longest wait of a main thread for a local result when it has nothing else to do.
pub(crate) const IDLE_WAIT: Duration = Duration::from_millis(50);

/// Raysect's `MulticoreEngine` with threads instead of forked processes: `threads` render
/// threads share the task list and the caller's data by reference; the calling thread applies
/// results with `update` while they render, so a slow `update` does not hold them up until
/// their bounded outbox ([`Options::outbox_results`]) is full.
///
/// Threads are started for each run and joined before it returns (a few tens of microseconds,
/// negligible beside a render pass), which lets `render` borrow anything the caller holds.
///
/// In a process that a launcher (`mpirun`, `srun`) started as one of several, a run is
/// refused ([`EngineError::Invalid`]): each process would run every task. Say
/// [`in_each_process`](MultiThreadEngine::in_each_process) when that is what you want.
#[derive(Debug, Clone)]
pub struct MultiThreadEngine {
    threads: usize,
    options: Options,
    in_each_process: bool,
}

impl MultiThreadEngine {
    /// An engine with `threads` render threads; 0 means one per available core.
    pub fn new(threads: usize) -> Self {
        MultiThreadEngine {
            threads: resolve_threads(threads),
            options: Options::default(),
            in_each_process: false,
        }
    }

    /// The same engine, allowed to run in each process of a multi-process job: every process
    /// then runs every task on its own threads and is its own root (for work that is each
    /// process's own, or to compare engines on every rank).
    pub fn in_each_process(mut self) -> Self {
        self.in_each_process = true;
        self
    }

    /// The same engine with other options.
    pub fn with_options(mut self, options: Options) -> Self {
        self.options = options;
        self
    }

    /// The same engine with another schedule.
    pub fn with_schedule(mut self, schedule: Schedule) -> Self {
        self.options.schedule = schedule;
        self
    }

    /// Render threads per run.
    pub fn threads(&self) -> usize {
        self.threads
    }
}

/// `threads`, or the number of available cores when it is 0.
pub(crate) fn resolve_threads(threads: usize) -> usize {
    if threads > 0 {
        threads
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

/// The chunk plan of a dynamic run of `n` tasks over `workers` workers.
pub(crate) fn chunk_plan(n: usize, workers: usize, options: &Options) -> ChunkPlan {
    match options.chunk_size {
        Some(size) => ChunkPlan::fixed(n, workers, size),
        None => ChunkPlan::auto(n, workers),
    }
}

impl Engine for MultiThreadEngine {
    fn worker_count(&self) -> usize {
        self.threads
    }

    fn is_root(&self) -> bool {
        true
    }

    fn options(&self) -> &Options {
        &self.options
    }

    fn run_indexed<T, R, E, F, U>(&self, tasks: &[T], render: F, update: U) -> Result<RunStats>
    where
        T: Serialize + Sync,
        R: Serialize + DeserializeOwned + Send,
        E: Display,
        F: Fn(&T) -> std::result::Result<R, E> + Sync,
        U: FnMut(usize, R) -> std::result::Result<(), E>,
    {
        self.options.validate()?;
        check_one_process("MultiThreadEngine", self.in_each_process)?;
        let start = Instant::now();
        let threads = self.threads;
        let outbox = Outbox::<R>::new(self.options.outbox_results, usize::MAX);
        let stop = AtomicBool::new(false);
        let counter = ChunkCounter::new(chunk_plan(tasks.len(), threads, &self.options));
        let travel = TravelCheck::default();
        let convert = |i: usize, r: R| travel.check(0, i, &r).map(|()| (r, 0));
        let crew = Crew {
            tasks,
            render: &render,
            convert: &convert,
            outbox: &outbox,
            stop: &stop,
            rank: 0,
            threads,
        };
        let mut applier = Applier::new(update, 0);
        let mut failure: Option<EngineError> = None;
        let mut local = ProcessStats {
            threads,
            ..ProcessStats::default()
        };
        std::thread::scope(|s| {
            for thread in 0..threads {
                let source = match self.options.schedule {
                    Schedule::Dynamic => Source::Counter(&counter),
                    Schedule::StaticRoundRobin => Source::Static {
                        worker: thread,
                        workers: threads,
                    },
                };
                let crew = &crew;
                s.spawn(move || crew.run(thread, source));
            }
            let _release = Release {
                outbox: &outbox,
                stop: &stop,
            };
            let mut finished = 0;
            while finished < threads && failure.is_none() {
                for msg in outbox.pop_batch(APPLY_SLICE, IDLE_WAIT) {
                    match msg {
                        Msg::Result(i, r) => {
                            if let Err(e) = applier.apply(i, r) {
                                failure = Some(e);
                                break;
                            }
                        }
                        Msg::Failed(e) => {
                            failure = Some(e);
                            break;
                        }
                        Msg::Finished(totals) => {
                            finished += 1;
                            totals.add_to(&mut local);
                        }
                    }
                }
            }
            if failure.is_some() {
                // Render threads stop before their next task; those waiting on a full outbox
                // are released. The scope then joins them.
                stop.store(true, Ordering::Relaxed);
                outbox.close();
            }
        });
        if let Some(e) = failure {
            return Err(e);
        }
        local.wall = start.elapsed();
        local.update_time = applier.time;
        local.peak_outbox_results = outbox.peak_items();
        Ok(RunStats {
            tasks: tasks.len(),
            workers: threads,
            processes: 1,
            all: vec![local.clone()],
            local,
        })
    }
}
