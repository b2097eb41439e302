//! Errors of a parallel call: which task failed where, and failures of the machinery itself.

use serde::{Deserialize, Serialize};
use std::fmt;

/// One failed chunk: the process, the worker thread and the chunk of task indices in which a
/// task body returned an error or panicked.
///
/// It travels between processes (a failure on any rank is reported on every rank), hence the
/// serde derives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskFailure {
    /// Rank of the failing process in the communicator the factory was built from.
    pub rank: usize,
    /// Index of the worker thread within that process (0 for a serial run).
    pub thread: usize,
    /// First task index of the failing chunk.
    pub first: usize,
    /// Number of task indices in the failing chunk.
    pub count: usize,
    /// True if the body panicked, false if it returned an error.
    pub panicked: bool,
    /// The failing task's index, when known (calls that run one task at a time, such as
    /// [`crate::Parallel::call_each`], know it; chunk bodies do not).
    #[serde(default)]
    pub task: Option<usize>,
    /// The error's or the panic's message.
    pub message: String,
}

impl fmt::Display for TaskFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.panicked { "panicked" } else { "failed" };
        if let Some(task) = self.task {
            write!(f, "task {task} (in ")?;
        }
        write!(
            f,
            "task chunk {}..{}{} {what} on process {} thread {}: {}",
            self.first,
            self.first + self.count,
            if self.task.is_some() { ")" } else { "" },
            self.rank,
            self.thread,
            self.message
        )
    }
}

/// Why a parallel call did not complete.
#[derive(Debug, thiserror::Error)]
pub enum ParallelError {
    /// A task body failed or panicked (on this or another process).
    #[error("{0}")]
    Task(TaskFailure),
    /// The communication layer failed (its message names the operation).
    #[error("communication failed: {0}")]
    Comm(#[from] prism_comm::CommError),
    /// The call's arguments were invalid (e.g. an explicit chunk size of zero).
    #[error("invalid parallel call: {0}")]
    Invalid(String),
}

impl ParallelError {
    /// The task failure, if that is what this error is.
    pub fn task_failure(&self) -> Option<&TaskFailure> {
        match self {
            ParallelError::Task(f) => Some(f),
            _ => None,
        }
    }
}

pub(crate) use prism_comm::panic_message;

/// What a task body may return: `()` for bodies that cannot fail, or `Result<(), E>` for any
/// displayable error `E`. Lets one `call` accept both kinds of closures.
pub trait TaskOutcome {
    /// `Ok` or the error's message.
    fn into_result(self) -> Result<(), String>;
}

impl TaskOutcome for () {
    fn into_result(self) -> Result<(), String> {
        Ok(())
    }
}

impl<E: fmt::Display> TaskOutcome for Result<(), E> {
    fn into_result(self) -> Result<(), String> {
        self.map_err(|e| e.to_string())
    }
}
