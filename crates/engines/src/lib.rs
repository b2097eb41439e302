//! `prism-engines`: Raysect-style render engines that run any list of independent tasks on
//! threads, MPI processes, or both, and hand every result to one consumer on the root.
//!
//! The contract is Raysect's `RenderEngine.run(tasks, render, update)` ([`Engine::run`]):
//! `render(&task)` runs on the workers, `update(result)` runs on the root as results arrive,
//! in any order. Tasks and results are any serde types; nothing here knows about rendering.
//!
//! | engine | workers | where `update` runs |
//! | --- | --- | --- |
//! | [`SerialEngine`] | the calling thread | the calling thread, after each task |
//! | [`MultiThreadEngine`] | `threads` threads of this process | the calling thread, while they render |
//! | [`MpiEngine`] | one thread in each process of a communicator | the root's main thread |
//! | [`HybridEngine`] | `threads` threads in each process | the root's main thread |
//!
//! All give the same set of results for the same tasks. Beyond Raysect's MPIEngine (PR #442:
//! blocking sends, a static split, a root that only collects):
//!
//! - the root renders too: its threads render while its main thread, the only thread that
//!   communicates (MPI `Funneled`), serves chunks and runs `update`;
//! - a process other than the root with a single render thread (a rank per core) renders on
//!   its main thread, looking at the network between tasks, instead of keeping a second
//!   thread that would preempt the renderer to poll ([`SingleThread`]); the root keeps its
//!   main thread for the network and `update`;
//! - scheduling is dynamic ([`Schedule::Dynamic`], chunks from `prism_tasking`'s
//!   [`prism_tasking::ChunkCounter`], with chunks requested ahead), with
//!   [`Schedule::StaticRoundRobin`] kept for comparison;
//! - results travel in batches (by count, bytes and age) with non-blocking sends, and memory
//!   for results in flight is bounded: a render thread whose outbox is full waits before its
//!   next task ([`Options`]; by encoded bytes and count on the other processes, by count on
//!   the root and in `MultiThreadEngine`, whose results are not encoded);
//! - a result that stays in its process still goes through the encoding once per run (every
//!   time in builds with debug assertions), so a result type that cannot travel fails the
//!   same way on one process as on many;
//! - the single-process engines warn (once per job) when they run in a process of a
//!   multi-process job, where each process running them would do all the work, unless told
//!   the work is the process's own (`local()`);
//! - a failure or panic in `render` or `update` anywhere ends the run on every process with
//!   the same [`EngineError`], naming process, thread and task; no process hangs;
//! - [`RunStats`] reports wall time, render, update and communication time, messages and
//!   bytes, per process.
//!
//! [`NodeShared`] builds a large read-only structure (a scene) once per node and shares it
//! with every process of the node through `prism_comm`'s node-shared arrays.
//!
//! Work that draws random numbers stays reproducible on every engine when it draws them from
//! a stream keyed by its task, never by thread or process: [`tasking::TaskRng`]`::new(seed,
//! task_id)` (re-exported from `prism_tasking`).
//!
//! # Example
//!
//! Any task type works; here a task is a range of integers and its result their sum of
//! squares, computed on four threads and gathered on the calling thread.
//!
//! ```
//! use prism_engines::{Engine, MultiThreadEngine, Schedule, SerialEngine};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Range { id: usize, from: u64, to: u64 }
//!
//! #[derive(Serialize, Deserialize)]
//! struct Sum { id: usize, value: u64 }
//!
//! fn tasks() -> Vec<Range> {
//!     (0..100).map(|id| Range { id, from: id as u64 * 1000, to: (id as u64 + 1) * 1000 }).collect()
//! }
//!
//! fn render(r: &Range) -> Result<Sum, String> {
//!     Ok(Sum { id: r.id, value: (r.from..r.to).map(|x| x * x % 7).sum() })
//! }
//!
//! fn total(engine: &impl Engine) -> Result<(u64, usize), prism_engines::EngineError> {
//!     let mut sums = vec![None; 100];
//!     let stats = engine.run(tasks(), render, |s: Sum| {
//!         sums[s.id] = Some(s.value); // results arrive in any order: place them by id
//!         Ok(())
//!     })?;
//!     assert_eq!(stats.tasks, 100);
//!     Ok((sums.iter().map(|s| s.expect("every task once")).sum(), stats.workers))
//! }
//!
//! let (serial, _) = total(&SerialEngine::new())?;
//! let (threaded, workers) = total(&MultiThreadEngine::new(4))?;
//! let (fixed, _) = total(&MultiThreadEngine::new(4).with_schedule(Schedule::StaticRoundRobin))?;
//! assert_eq!((serial, workers), (threaded, 4));
//! assert_eq!(serial, fixed);
//!
//! // A failing task ends the run with an error naming it.
//! let err = MultiThreadEngine::new(2)
//!     .run(tasks(), |r: &Range| if r.id == 42 { Err("bad range".to_string()) } else { render(r) },
//!          |_: Sum| Ok(()))
//!     .unwrap_err();
//! assert_eq!(err.task(), Some(42));
//! # Ok::<(), prism_engines::EngineError>(())
//! ```
//!
//! The multi-process engines take a communicator (`prism_comm::init()?.world()`); every
//! process calls `run` with the same task list, and `update` runs on rank 0 only:
//!
#![doc = concat!("```\n", include_str!("../examples/engines_crate_doc.rs"), "```")]

mod any;
mod apply;
mod cluster;
mod engine;
mod error;
mod member;
mod node_shared;
mod options;
mod outbox;
mod protocol;
mod root;
mod serial;
mod stats;
mod threads;
mod travel;
mod worker;

pub use prism_comm as comm;
pub use prism_tasking as tasking;

pub use any::AnyEngine;
pub use cluster::{HybridEngine, MpiEngine};
pub use engine::Engine;
pub use error::{EngineError, Result};
pub use node_shared::{BuildOutput, NodeShared};
pub use options::{Options, Schedule, SingleThread, MAX_PREFETCH_CHUNKS};
pub use serial::SerialEngine;
pub use stats::{ProcessStats, RunStats};
pub use threads::MultiThreadEngine;
