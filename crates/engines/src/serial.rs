//! [`SerialEngine`]: every task rendered and applied in order on the calling thread.

use crate::apply::Applier;
use crate::engine::Engine;
use crate::error::{panic_message, EngineError, Result};
use crate::options::Options;
use crate::stats::{ProcessStats, RunStats};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Display;
use std::time::{Duration, Instant};

/// Renders tasks one after the other on the calling thread, applying each result at once.
/// The reference the other engines are compared with.
#[derive(Debug, Clone, Default)]
pub struct SerialEngine {
    options: Options,
}

impl SerialEngine {
    /// A serial engine.
    pub fn new() -> Self {
        SerialEngine::default()
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
        let start = Instant::now();
        let mut applier = Applier::new(update, 0);
        let mut render_time = Duration::ZERO;
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
                Ok(Ok(r)) => r,
                Ok(Err(e)) => return Err(render_failure(i, false, e)),
                Err(p) => return Err(render_failure(i, true, panic_message(&*p))),
            };
            applier.apply(i, result)?;
        }
        Ok(RunStats {
            tasks: tasks.len(),
            workers: 1,
            processes: 1,
            local: ProcessStats {
                rank: 0,
                threads: 1,
                rendered: tasks.len(),
                wall: start.elapsed(),
                render_time,
                update_time: applier.time,
                ..ProcessStats::default()
            },
            all: Vec::new(),
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
