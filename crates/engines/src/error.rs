//! Why a run did not complete.
//!
//! A failure anywhere in a multi-process run is reported on every process, so the error type
//! travels between processes (serde) and carries the rank, thread and task index that failed:
//! in a job of N processes an error that only says "failed" is useless.

use serde::{Deserialize, Serialize};

/// Result with [`EngineError`].
pub type Result<T> = std::result::Result<T, EngineError>;

/// Everything that can end a run early. The same error is returned on every process of the run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum EngineError {
    /// `render` returned an error or panicked.
    #[error(
        "render {} on task {task} (process {rank}, thread {thread}): {message}",
        if *panicked { "panicked" } else { "failed" }
    )]
    Render {
        /// Rank of the process that rendered the task (0 for the single-process engines).
        rank: usize,
        /// Index of the render thread within that process.
        thread: usize,
        /// Index of the task in the task list.
        task: usize,
        /// True if `render` panicked rather than returning an error.
        panicked: bool,
        /// The error's or the panic's message.
        message: String,
    },

    /// `update` returned an error or panicked (always on the root).
    #[error(
        "update {} on the result of task {task} (process {rank}): {message}",
        if *panicked { "panicked" } else { "failed" }
    )]
    Update {
        /// Rank of the root process.
        rank: usize,
        /// Index of the task whose result was being applied.
        task: usize,
        /// True if `update` panicked rather than returning an error.
        panicked: bool,
        /// The error's or the panic's message.
        message: String,
    },

    /// A result could not be encoded for sending, or received bytes did not decode as a result.
    #[error(
        "the result of {} (process {rank}) cannot be {what}: {message}",
        task.map_or("a task".to_string(), |t| format!("task {t}"))
    )]
    Codec {
        /// The process whose result it was: where encoding failed, or the sender of the bytes
        /// that the root could not decode.
        rank: usize,
        /// The task whose result it was, when known.
        task: Option<usize>,
        /// "encoded" or "decoded".
        what: String,
        /// postcard's message.
        message: String,
    },

    /// The processes were not given the same task list.
    #[error(
        "process {rank} was given a different task list ({tasks} tasks, fingerprint {fingerprint:016x}) \
         from process 0 ({root_tasks} tasks, fingerprint {root_fingerprint:016x}): every process \
         must call run with the same tasks, which must also encode alike (a task holding a \
         HashMap or HashSet encodes in a different order in each process: use a BTreeMap, a \
         BTreeSet or a Vec)"
    )]
    TaskListMismatch {
        /// The first process whose list differs from the root's.
        rank: usize,
        /// Its number of tasks.
        tasks: usize,
        /// Its fingerprint (a hash of the encoded tasks).
        fingerprint: u64,
        /// The root's number of tasks.
        root_tasks: usize,
        /// The root's fingerprint.
        root_fingerprint: u64,
    },

    /// The builder of a node-shared structure failed or panicked.
    #[error("building the shared data failed on process {rank}: {message}")]
    Build {
        /// Rank (in the communicator the data was built for) of the process that built it.
        rank: usize,
        /// The error's or the panic's message.
        message: String,
    },

    /// The communication layer failed.
    #[error("communication failed on process {rank} during {op}: {message}")]
    Comm {
        /// The process that saw the failure.
        rank: usize,
        /// What the engine was doing.
        op: String,
        /// The communication layer's message.
        message: String,
    },

    /// Options or arguments that cannot work: options out of range, tasks that cannot be
    /// encoded, processes that disagree, a nested run (detected identically on every process
    /// where it concerns them all).
    #[error("invalid engine run: {0}")]
    Invalid(String),
}

impl EngineError {
    /// The task index the error is about, if any.
    pub fn task(&self) -> Option<usize> {
        match self {
            EngineError::Render { task, .. } | EngineError::Update { task, .. } => Some(*task),
            EngineError::Codec { task, .. } => *task,
            _ => None,
        }
    }

    /// The rank of the process where the failure happened, if known.
    pub fn rank(&self) -> Option<usize> {
        match self {
            EngineError::Render { rank, .. }
            | EngineError::Update { rank, .. }
            | EngineError::Codec { rank, .. }
            | EngineError::TaskListMismatch { rank, .. }
            | EngineError::Build { rank, .. }
            | EngineError::Comm { rank, .. } => Some(*rank),
            EngineError::Invalid(_) => None,
        }
    }

    pub(crate) fn comm(rank: usize, op: &str, err: impl std::fmt::Display) -> EngineError {
        EngineError::Comm {
            rank,
            op: op.to_string(),
            message: err.to_string(),
        }
    }
}

pub(crate) use prism_comm::panic_message;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_rank_thread_and_task() {
        let e = EngineError::Render {
            rank: 2,
            thread: 1,
            task: 17,
            panicked: true,
            message: "boom".into(),
        };
        let s = e.to_string();
        assert!(s.contains("task 17") && s.contains("process 2") && s.contains("thread 1"));
        assert!(s.contains("panicked") && s.contains("boom"), "{s}");
        assert_eq!(e.task(), Some(17));
        assert_eq!(e.rank(), Some(2));
    }

    #[test]
    fn travels_between_processes() {
        let e = EngineError::Update {
            rank: 0,
            task: 3,
            panicked: false,
            message: "disk full".into(),
        };
        let bytes = postcard::to_stdvec(&e).unwrap();
        let back: EngineError = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn panic_payloads() {
        let p = std::panic::catch_unwind(|| panic!("at {}", 3)).unwrap_err();
        assert_eq!(panic_message(&*p), "at 3");
        let p = std::panic::catch_unwind(|| panic!("static")).unwrap_err();
        assert_eq!(panic_message(&*p), "static");
    }
}
