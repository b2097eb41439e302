//! What every worker thread does, whatever the implementation: take a chunk, run the body on
//! it with panics caught, report the chunk (its count and results) or the failure to the
//! coordinating thread, and stop at the next chunk once anyone has failed.

use crate::error::{panic_message, TaskFailure};
use crossbeam_channel::Sender;
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The type-erased chunk body: `(first, count, results)`; an `Err` carries the message.
pub(crate) type Body<'a, R> = dyn Fn(usize, usize, &mut Vec<R>) -> Result<(), String> + Sync + 'a;

/// What a worker tells its coordinating thread.
pub(crate) enum Event<R> {
    /// A chunk finished; its results are handed over.
    Done {
        first: usize,
        count: usize,
        results: Vec<R>,
    },
    /// A chunk failed; the worker stops.
    Failed(TaskFailure),
    /// The worker found no more chunks (or was stopped) and has left its loop.
    Exited,
}

thread_local! {
    static WORKER: Cell<Option<usize>> = const { Cell::new(None) };
    /// Set while the calling thread runs user code on behalf of a call it coordinates (a
    /// result handler, the encoding or decoding of results): a parallel call from there would
    /// wait for the call it is part of.
    static COORDINATING: Cell<bool> = const { Cell::new(false) };
    /// The task index a one-task-at-a-time body is running (set by `call_each`), so that a
    /// failure can name it.
    static TASK: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Records that the current thread now runs task `index` (see [`TaskFailure::task`]).
pub(crate) fn set_current_task(index: Option<usize>) {
    TASK.with(|t| t.set(index));
}

thread_local! {
    /// How many [`EngineRenderMark`]s the thread holds: user code of a run that every process
    /// takes part in (a render engine's `render` or `update`), nested engines counted.
    static ENGINE_RENDER: Cell<usize> = const { Cell::new(0) };
}

/// Marks the current thread, until dropped, as running user code for a run in which every
/// process takes part at once, such as a render engine's `render` or `update` (prism-engines
/// sets it).
///
/// A parallel call from there, on several processes, would start its own collective while
/// the other processes are busy with that run: it is refused with
/// [`crate::ParallelError::Invalid`] before any communication, as a call from inside a task
/// body is. A lone process does not communicate, so the mark does not restrict it. Marks
/// nest, in any drop order; a mark stays on its thread (it is not `Send`).
pub struct EngineRenderMark {
    _on_this_thread: std::marker::PhantomData<*const ()>,
}

impl EngineRenderMark {
    /// Sets the mark on the current thread.
    pub fn set() -> EngineRenderMark {
        ENGINE_RENDER.with(|m| m.set(m.get() + 1));
        EngineRenderMark {
            _on_this_thread: std::marker::PhantomData,
        }
    }
}

impl Drop for EngineRenderMark {
    fn drop(&mut self) {
        ENGINE_RENDER.with(|m| m.set(m.get().saturating_sub(1)));
    }
}

/// Whether the current thread runs an engine's user code (see [`EngineRenderMark`]).
pub(crate) fn in_engine_render() -> bool {
    ENGINE_RENDER.with(Cell::get) > 0
}

/// The index of the worker thread running the caller, inside a parallel call; `None` outside.
///
/// Serial calls run on the calling thread, which reports worker 0 for their duration.
pub fn current_worker() -> Option<usize> {
    WORKER.with(Cell::get)
}

/// Marks the current thread as worker `index` until dropped (restoring the previous mark, so
/// the serial implementation can run on a thread that is not otherwise a worker).
pub(crate) struct WorkerMark {
    previous: Option<usize>,
}

impl WorkerMark {
    pub(crate) fn set(index: usize) -> WorkerMark {
        let previous = WORKER.with(|w| w.replace(Some(index)));
        WorkerMark { previous }
    }
}

impl Drop for WorkerMark {
    fn drop(&mut self) {
        WORKER.with(|w| w.set(self.previous));
    }
}

/// Whether the current thread is running user code for a call it coordinates (see
/// [`CoordinatingMark`]).
pub(crate) fn coordinating() -> bool {
    COORDINATING.with(Cell::get)
}

/// Marks the current thread as running user code for the call it coordinates, until dropped.
/// Also clears the worker mark meanwhile: a serial call's coordinating thread is its worker 0
/// too, but the handler is not a task body and must not be told it is.
pub(crate) struct CoordinatingMark {
    previous: bool,
    worker: Option<usize>,
}

impl CoordinatingMark {
    pub(crate) fn set() -> CoordinatingMark {
        let previous = COORDINATING.with(|c| c.replace(true));
        let worker = WORKER.with(|w| w.replace(None));
        CoordinatingMark { previous, worker }
    }
}

impl Drop for CoordinatingMark {
    fn drop(&mut self) {
        COORDINATING.with(|c| c.set(self.previous));
        WORKER.with(|w| w.set(self.worker));
    }
}

/// Runs `body` on one chunk with panics caught; the failure names this rank and thread.
pub(crate) fn run_chunk<R>(
    body: &Body<'_, R>,
    rank: usize,
    thread: usize,
    first: usize,
    count: usize,
    results: &mut Vec<R>,
) -> Result<(), TaskFailure> {
    set_current_task(None);
    // Not `catch_unwind`: under `Universe::abort_on_panic` the hook would end the whole job
    // before the panic could come back as the call's error on every process.
    let outcome = prism_comm::catch_panic(|| body(first, count, results));
    let task = TASK.with(|t| t.replace(None));
    let (panicked, message) = match outcome {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(message)) => (false, message),
        Err(payload) => (true, panic_message(payload.as_ref())),
    };
    Err(TaskFailure {
        rank,
        thread,
        first,
        count,
        panicked,
        task,
        message,
    })
}

/// What the workers of one call share.
pub(crate) struct Shared<'a, R> {
    /// Set by the first failure (or by the coordinator): stop at the next chunk.
    pub(crate) stop: &'a AtomicBool,
    /// Tasks finished by this process's workers (progress, read by the coordinator).
    pub(crate) done: &'a AtomicU64,
    /// Channel to the coordinating thread.
    pub(crate) events: &'a Sender<Event<R>>,
    /// Send a `Done` event for every chunk, even without results (the coordinator needs each
    /// completion, e.g. to keep chunks prefetched); otherwise only chunks with results are
    /// reported, sparing the coordinator a wake-up per chunk.
    pub(crate) report_every_chunk: bool,
}

/// The loop of worker `thread`: chunks come from `next` until it returns `None` or `stop` is
/// set. A failure sets `stop` at once (so this process's other workers stop at their next
/// chunk without waiting for the coordinator) and is reported.
pub(crate) fn worker_loop<R>(
    rank: usize,
    thread: usize,
    next: &dyn Fn() -> Option<(usize, usize)>,
    body: &Body<'_, R>,
    shared: &Shared<'_, R>,
) {
    let (stop, done, events) = (shared.stop, shared.done, shared.events);
    let _mark = WorkerMark::set(thread);
    while !stop.load(Ordering::Acquire) {
        let Some((first, count)) = next() else { break };
        if stop.load(Ordering::Acquire) {
            break;
        }
        let mut results = Vec::new();
        match run_chunk(body, rank, thread, first, count, &mut results) {
            Ok(()) => {
                done.fetch_add(count as u64, Ordering::Relaxed);
                if shared.report_every_chunk || !results.is_empty() {
                    // The coordinator outlives every worker, so the channel is open; if it
                    // were not there would be nobody left to tell.
                    let _ = events.send(Event::Done {
                        first,
                        count,
                        results,
                    });
                }
            }
            Err(failure) => {
                stop.store(true, Ordering::Release);
                let _ = events.send(Event::Failed(failure));
                break;
            }
        }
    }
    let _ = events.send(Event::Exited);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Marks nest and count: dropped in any order, the thread is marked while one is alive.
    #[test]
    fn engine_render_marks_nest_in_any_drop_order() {
        assert!(!in_engine_render());
        let a = EngineRenderMark::set();
        let b = EngineRenderMark::set();
        drop(a);
        assert!(in_engine_render());
        drop(b);
        assert!(!in_engine_render());
        // Another thread's marks are its own.
        let _c = EngineRenderMark::set();
        assert!(!std::thread::spawn(in_engine_render).join().unwrap());
    }
}
