//! [`MultiThreadEngine`]: render threads in this process, `update` on the calling thread.

use crate::apply::Applier;
use crate::engine::{warn_if_copied, Engine};
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
/// In a process that a launcher (`mpirun`, `srun`) started as one of several, a run warns
/// once (on the launcher's rank 0) that each process running it runs every task, unless the
/// engine is [`local`](MultiThreadEngine::local): this process's own work.
#[derive(Debug, Clone)]
pub struct MultiThreadEngine {
    threads: usize,
    options: Options,
    local: bool,
}

impl MultiThreadEngine {
    /// An engine with `threads` render threads; 0 means one per available core.
    pub fn new(threads: usize) -> Self {
        MultiThreadEngine {
            threads: resolve_threads(threads),
            options: Options::default(),
            local: false,
        }
    }

    /// The same engine, for work that is this process's own in a multi-process job (the
    /// root's post-processing, each rank's own tasks, a reference computed on every rank):
    /// this process runs every task it is given on its threads and is its own root, without
    /// the warning.
    pub fn local(mut self) -> Self {
        self.local = true;
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
        warn_if_copied("MultiThreadEngine", self.local);
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
