//! [`SerialEngine`]: every task rendered and applied in order on the calling thread.

use crate::apply::Applier;
use crate::engine::{warn_if_copied, Engine};
use crate::error::{panic_message, EngineError, Result};
use crate::options::Options;
use crate::stats::{ProcessStats, RunStats};
use crate::travel::TravelCheck;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Display;
use std::time::{Duration, Instant};

/// Renders tasks one after the other on the calling thread, applying each result at once.
/// The reference the other engines are compared with.
///
/// In a process that a launcher (`mpirun`, `srun`) started as one of several, a run warns
/// once (on the launcher's rank 0) that each process running it runs every task, unless the
/// engine is [`local`](SerialEngine::local): this process's own work.
#[derive(Debug, Clone, Default)]
pub struct SerialEngine {
    options: Options,
    local: bool,
}

impl SerialEngine {
    /// A serial engine.
    pub fn new() -> Self {
        SerialEngine::default()
    }

    /// The same engine with other options: kept to be reported by [`Engine::options`], since
    /// a serial engine has nothing to schedule, batch or bound.
    pub fn with_options(mut self, options: Options) -> Self {
        self.options = options;
        self
    }

    /// The same engine, for work that is this process's own in a multi-process job (the
    /// root's post-processing, each rank's own tasks, a reference computed on every rank):
    /// this process runs every task it is given and is its own root, without the warning.
    pub fn local(mut self) -> Self {
        self.local = true;
        self
    }
}

impl Engine for SerialEngine {
    fn worker_count(&self) -> usize {
        1
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
        warn_if_copied("SerialEngine", self.local);
        let start = Instant::now();
        let mut applier = Applier::new(update, 0);
        let mut render_time = Duration::ZERO;
        let travel = TravelCheck::default();
        for (i, task) in tasks.iter().enumerate() {
            let t0 = Instant::now();
            // The error's Display is user code too, so it runs inside the catch.
            let outcome = {
                // As in every engine (see worker.rs): tasking refuses parallel calls from here.
                let _mark = prism_tasking::EngineRenderMark::set();
                prism_comm::catch_panic(|| render(task).map_err(|e| e.to_string()))
            };
            render_time += t0.elapsed();
            let result = match outcome {
                Ok(Ok(r)) => {
                    travel.check(0, i, &r)?;
                    r
                }
                Ok(Err(e)) => return Err(render_failure(i, false, e)),
                Err(p) => return Err(render_failure(i, true, panic_message(&*p))),
            };
            applier.apply(i, result)?;
        }
        let local = ProcessStats {
            rank: 0,
            threads: 1,
            rendered: tasks.len(),
            wall: start.elapsed(),
            render_time,
            update_time: applier.time,
            ..ProcessStats::default()
        };
        Ok(RunStats {
            tasks: tasks.len(),
            workers: 1,
            processes: 1,
            all: vec![local.clone()],
            local,
        })
    }
}

fn render_failure(task: usize, panicked: bool, message: String) -> EngineError {
    EngineError::Render {
        rank: 0,
        thread: 0,
        task,
        panicked,
        message,
    }
}
