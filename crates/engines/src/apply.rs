//! Calling `update` on the root: timing it and turning an error or panic into an
//! [`EngineError::Update`] naming the task.

use crate::error::{panic_message, EngineError};
use std::fmt::Display;
use std::time::{Duration, Instant};

/// Wraps the user's `update` and counts what it applied.
pub(crate) struct Applier<U> {
    update: U,
    rank: usize,
    /// Results applied.
    pub applied: usize,
    /// Time spent inside `update`.
    pub time: Duration,
}

impl<U> Applier<U> {
    pub(crate) fn new(update: U, rank: usize) -> Self {
        Applier {
            update,
            rank,
            applied: 0,
            time: Duration::ZERO,
        }
    }

    /// Applies the result of task `task`.
    pub(crate) fn apply<R, E>(&mut self, task: usize, result: R) -> Result<(), EngineError>
    where
        U: FnMut(usize, R) -> Result<(), E>,
        E: Display,
    {
        let t0 = Instant::now();
        // The error's Display is user code too, so it runs inside the catch. The mark has
        // tasking refuse a parallel call from `update`, which would communicate mid-run.
        let outcome = {
            let _mark = prism_tasking::EngineRenderMark::set();
            prism_comm::catch_panic(|| (self.update)(task, result).map_err(|e| e.to_string()))
        };
        self.time += t0.elapsed();
        let (panicked, message) = match outcome {
            Ok(Ok(())) => {
                self.applied += 1;
                return Ok(());
            }
            Ok(Err(e)) => (false, e),
            Err(payload) => (true, panic_message(&*payload)),
        };
        Err(EngineError::Update {
            rank: self.rank,
            task,
            panicked,
            message,
        })
    }
}
