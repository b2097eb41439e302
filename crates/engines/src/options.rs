//! How tasks are scheduled and how results are batched and bounded.

use crate::error::{EngineError, Result};
use std::time::Duration;

/// How tasks are assigned to workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Schedule {
    /// Workers take chunks of consecutive tasks from one shared counter as they become free
    /// (chunks shrink towards the end of the list, see `prism_tasking::ChunkPlan`); processes
    /// other than the root keep chunks requested ahead so their threads never wait for a
    /// round trip, and in a multi-process run chunks are planned for the chunks so held
    /// (`workers × (1 + prefetch_chunks)`), so none is left holding much at the end. Uneven
    /// task costs balance out.
    #[default]
    Dynamic,
    /// Worker `w` of `W` renders tasks `w, w + W, w + 2W, ...` (Raysect PR #442's split,
    /// extended to threads). No scheduling messages at all; kept for comparison.
    StaticRoundRobin,
}

/// Tuning of an engine: scheduling, batching of results and the bounds on results in flight.
///
/// The defaults suit tasks that take between microseconds and seconds and results from a few
/// bytes to a few hundred kilobytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Dynamic or static assignment of tasks.
    pub schedule: Schedule,
    /// Tasks per chunk under [`Schedule::Dynamic`]; `None` chooses guided sizes (about eight
    /// chunks per worker, shrinking at the end).
    pub chunk_size: Option<usize>,
    /// A process other than the root sends its results when this many are ready ...
    pub batch_results: usize,
    /// ... or when they hold this many encoded bytes ...
    pub batch_bytes: usize,
    /// ... or when the oldest has waited this long, so that `update` sees results as they come.
    pub batch_delay: Duration,
    /// Results a process may hold between its render threads and its main thread. A render
    /// thread whose result does not fit waits before it takes another task (back-pressure).
    /// On the root and in [`crate::MultiThreadEngine`], whose results are never encoded, this
    /// count is the only bound: with large results (megabytes each) lower it, since up to
    /// this many may wait there for a slow `update`.
    pub outbox_results: usize,
    /// Encoded bytes a process other than the root may hold there (a single result larger
    /// than this is still let through alone, so the run cannot stall on it). Results that
    /// stay in their process (the root's, a `MultiThreadEngine`'s) are not encoded, and are
    /// bounded by `outbox_results` only.
    pub outbox_bytes: usize,
    /// Batches a process may have sent that the root has not answered yet.
    pub batches_in_flight: usize,
    /// Chunks a process other than the root keeps queued ahead of each of its render threads,
    /// so that a thread finds its next chunk there instead of waiting for a round trip to the
    /// root. Chunks are planned smaller by the same factor (see [`Schedule::Dynamic`]); one
    /// suffices where a chunk takes longer than a round trip (microseconds within a node).
    pub prefetch_chunks: usize,
    /// Where a process of a multi-process run whose only worker is one render thread runs
    /// it: see [`SingleThread`].
    pub single_thread: SingleThread,
}

/// Where a process of a multi-process run with a single render thread renders.
///
/// On its main thread, the process has one thread per core instead of two: the main thread,
/// which must poll MPI about every millisecond (MPI cannot wake it), no longer preempts the
/// renderer thousands of times a second, and it looks at the network between tasks at no
/// cost. The price: it answers and applies results only between two of its tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SingleThread {
    /// On a thread of its own; the main thread only communicates (and runs `update` on the
    /// root). For tasks so long that waiting for one to end would leave others idle.
    OwnThread,
    /// On the main thread on every process but the root, which keeps a render thread: its
    /// main thread answers the others at once, and `update` never holds up its rendering.
    #[default]
    MainThreadExceptRoot,
    /// On the main thread everywhere: on the root, `update` runs between two of its tasks,
    /// and the other processes' requests wait for the end of the root's current task (with
    /// tiles of a few milliseconds, a rank waited 7-160 ms for chunks in a 1-2 s render,
    /// against 1-7 ms by default). For tasks of short, even cost and a cheap `update`.
    MainThread,
}

impl Options {
    /// The options every process of a run must share, as words for an error message: the
    /// schedule and the chunking decide which process renders which task, so a process that
    /// differs would render tasks twice or never.
    pub(crate) fn shared_part(&self) -> String {
        let chunks = self
            .chunk_size
            .map_or("guided chunks".to_string(), |c| format!("chunks of {c}"));
        format!(
            "schedule {:?}, {chunks}, {} chunks prefetched",
            self.schedule, self.prefetch_chunks
        )
    }
}

/// The most chunks [`Options::prefetch_chunks`] may queue per render thread.
pub const MAX_PREFETCH_CHUNKS: usize = 1024;

impl Default for Options {
    fn default() -> Self {
        Options {
            schedule: Schedule::Dynamic,
            chunk_size: None,
            batch_results: 64,
            batch_bytes: 256 * 1024,
            batch_delay: Duration::from_millis(20),
            outbox_results: 256,
            outbox_bytes: 32 * 1024 * 1024,
            batches_in_flight: 2,
            prefetch_chunks: 1,
            single_thread: SingleThread::MainThreadExceptRoot,
        }
    }
}

impl Options {
    /// The defaults with another schedule.
    pub fn with_schedule(schedule: Schedule) -> Options {
        Options {
            schedule,
            ..Options::default()
        }
    }

    /// Rejects settings under which a run could not make progress.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("chunk_size", self.chunk_size.unwrap_or(1)),
            ("batch_results", self.batch_results),
            ("batch_bytes", self.batch_bytes),
            ("outbox_results", self.outbox_results),
            ("outbox_bytes", self.outbox_bytes),
            ("batches_in_flight", self.batches_in_flight),
            ("prefetch_chunks", self.prefetch_chunks),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(EngineError::Invalid(format!(
                    "Options::{name} must be at least 1"
                )));
            }
        }
        // Chunks are planned for workers × (1 + prefetch) holders, and grants travel as u32.
        if self.prefetch_chunks > MAX_PREFETCH_CHUNKS {
            return Err(EngineError::Invalid(format!(
                "Options::prefetch_chunks is {}: at most {MAX_PREFETCH_CHUNKS} (each queued \
                 chunk makes every chunk smaller; a few hide a round trip)",
                self.prefetch_chunks
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefetch_too_large_to_plan_with_is_refused() {
        let ok = Options {
            prefetch_chunks: MAX_PREFETCH_CHUNKS,
            ..Options::default()
        };
        ok.validate().unwrap();
        for prefetch_chunks in [MAX_PREFETCH_CHUNKS + 1, usize::MAX / 2, usize::MAX] {
            let bad = Options {
                prefetch_chunks,
                ..Options::default()
            };
            let e = bad.validate().unwrap_err().to_string();
            assert!(
                e.contains("prefetch_chunks") && e.contains("at most 1024"),
                "{e}"
            );
        }
    }

    #[test]
    fn defaults_are_valid_and_zeros_are_named() {
        Options::default().validate().unwrap();
        let bad = Options {
            batches_in_flight: 0,
            ..Options::default()
        };
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.contains("batches_in_flight"), "{e}");
        let bad = Options {
            chunk_size: Some(0),
            ..Options::default()
        };
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("chunk_size"));
    }
}
