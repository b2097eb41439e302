//! Render threads: take tasks from a source, call `render`, hand results to the main thread.
//!
//! Render threads never communicate with other processes (MPI is funneled through the main
//! thread); they only touch the task list, the scheduling source and the outbox.

use crate::error::{panic_message, EngineError};
use crate::outbox::{Msg, Outbox, ThreadTotals};
use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};
use prism_tasking::ChunkCounter;
use std::fmt::Display;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How often a render thread waiting for chunks from its main thread looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(5);
/// Longest a finished result waits in its render thread for the rest of its group.
pub(crate) const GROUP_DELAY: Duration = Duration::from_millis(1);

/// Where a render thread gets its tasks.
pub(crate) enum Source<'a> {
    /// Chunks `(first, count)` from a counter shared with the other threads (and, on the root
    /// of a multi-process run, with the main thread serving other processes).
    Counter(&'a ChunkCounter),
    /// Chunks the main thread received from the root, and the count of them finished (from
    /// which the main thread knows how many of its threads have nothing to do).
    Queue(Receiver<(usize, usize)>, &'a AtomicUsize),
    /// Static round-robin: tasks `worker, worker + workers, ...`.
    Static { worker: usize, workers: usize },
}

impl Source<'_> {
    /// Counts a chunk from this source as finished (only a queue's count is read).
    fn chunk_done(&self) {
        if let Source::Queue(_, finished) = self {
            finished.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The next chunk of task indices, or `None` when there is no more work (or `stop` is set).
    fn next(&mut self, n: usize, stop: &AtomicBool, cursor: &mut usize) -> Option<Chunk> {
        match self {
            Source::Counter(c) => c.next_chunk().map(|(first, count)| Chunk {
                next: first,
                end: first + count,
                step: 1,
            }),
            Source::Queue(rx, _) => loop {
                match rx.recv_timeout(STOP_POLL) {
                    Ok((first, count)) => {
                        return Some(Chunk {
                            next: first,
                            end: first + count,
                            step: 1,
                        })
                    }
                    Err(RecvTimeoutError::Disconnected) => return None,
                    Err(RecvTimeoutError::Timeout) if stop.load(Ordering::Relaxed) => return None,
                    Err(RecvTimeoutError::Timeout) => {}
                }
            },
            Source::Static { worker, workers } => {
                // One "chunk" holding all of this worker's tasks.
                if *cursor > 0 {
                    return None;
                }
                *cursor = 1;
                Some(Chunk {
                    next: *worker,
                    end: n,
                    step: (*workers).max(1),
                })
            }
        }
    }
}

/// What a source has without waiting.
enum Next {
    Chunk(Chunk),
    /// Nothing yet: chunks may still come.
    Later,
    End,
}

impl Source<'_> {
    /// [`Source::next`] without waiting for chunks from the main thread (which, inline, is the
    /// caller itself).
    fn try_next(&mut self, n: usize, cursor: &mut usize) -> Next {
        match self {
            Source::Queue(rx, _) => match rx.try_recv() {
                Ok((first, count)) => Next::Chunk(Chunk {
                    next: first,
                    end: first + count,
                    step: 1,
                }),
                Err(TryRecvError::Empty) => Next::Later,
                Err(TryRecvError::Disconnected) => Next::End,
            },
            // Neither waits.
            _ => match self.next(n, &AtomicBool::new(false), cursor) {
                Some(chunk) => Next::Chunk(chunk),
                None => Next::End,
            },
        }
    }
}

/// Task indices `next, next + step, ...` below `end`.
struct Chunk {
    next: usize,
    end: usize,
    step: usize,
}

impl Iterator for Chunk {
    type Item = usize;
    fn next(&mut self) -> Option<usize> {
        if self.next >= self.end {
            return None;
        }
        let i = self.next;
        self.next += self.step;
        Some(i)
    }
}

/// Everything a render thread shares with its siblings.
pub(crate) struct Crew<'a, T, F, C, P> {
    pub tasks: &'a [T],
    pub render: &'a F,
    /// Turns a result into what travels to the main thread, with its size in bytes.
    pub convert: &'a C,
    pub outbox: &'a Outbox<P>,
    /// Set by anyone who wants the run to stop: render threads stop before their next task.
    pub stop: &'a AtomicBool,
    pub rank: usize,
    /// Render threads sharing the outbox.
    pub threads: usize,
}

impl<T, F, C, P> Crew<'_, T, F, C, P> {
    /// The body of render thread `thread`: runs until the source is exhausted, the stop flag is
    /// set or a task fails. Always ends with a `Finished` message.
    ///
    /// Results of short tasks are handed over in groups (see [`Outbox::group_size`]); a group
    /// goes out when full, when its first result is [`GROUP_DELAY`] old, and at the end of each
    /// chunk, so a result never waits long in the thread's hands.
    pub(crate) fn run<R, E>(&self, thread: usize, mut source: Source<'_>)
    where
        F: Fn(&T) -> Result<R, E> + Sync,
        E: Display,
        C: Fn(usize, R) -> Result<(P, usize), EngineError> + Sync,
    {
        let mut totals = ThreadTotals::default();
        let mut cursor = 0;
        let group_size = self.outbox.group_size(self.threads);
        let mut group: Vec<(Msg<P>, usize)> = Vec::with_capacity(group_size);
        let mut group_since = Instant::now();
        let mut asked = Instant::now();
        'chunks: while let Some(chunk) = source.next(self.tasks.len(), self.stop, &mut cursor) {
            totals.wait_time += asked.elapsed();
            for i in chunk {
                if self.stop.load(Ordering::Relaxed) {
                    break 'chunks;
                }
                let t0 = Instant::now();
                match self.render_task(thread, i, &mut totals) {
                    Ok((payload, bytes)) => {
                        if group.is_empty() {
                            group_since = t0;
                        }
                        group.push((Msg::Result(i, payload), bytes));
                        if (group.len() >= group_size || group_since.elapsed() >= GROUP_DELAY)
                            && !self.outbox.push_group(&mut group)
                        {
                            break 'chunks; // the run ended early
                        }
                    }
                    Err(failure) => {
                        self.stop.store(true, Ordering::Relaxed);
                        group.clear();
                        let _ = self.outbox.push(Msg::Failed(failure), 0, true);
                        break 'chunks;
                    }
                }
            }
            source.chunk_done();
            if !self.outbox.push_group(&mut group) {
                break;
            }
            asked = Instant::now();
        }
        if !self.stop.load(Ordering::Relaxed) {
            self.outbox.push_group(&mut group);
        }
        let _ = self.outbox.push(Msg::Finished(totals), 0, true);
    }
}

impl<T, F, C, P> Crew<'_, T, F, C, P> {
    /// Renders task `i` and converts its result, counting the time in `totals`. A failure of
    /// `render`, or a panic in it or in the result's encoding, is this task's error.
    fn render_task<R, E>(
        &self,
        thread: usize,
        i: usize,
        totals: &mut ThreadTotals,
    ) -> Result<(P, usize), EngineError>
    where
        F: Fn(&T) -> Result<R, E> + Sync,
        E: Display,
        C: Fn(usize, R) -> Result<(P, usize), EngineError> + Sync,
    {
        let t0 = Instant::now();
        // The error's Display is user code too: it runs inside the catch, so a panic there is
        // this task's error rather than a render thread gone without a word.
        // A parallel call from `render` would communicate in the middle of this run: the
        // mark has tasking refuse it (on several processes) instead of hanging.
        let outcome = {
            let _mark = prism_tasking::EngineRenderMark::set();
            prism_comm::catch_panic(|| (self.render)(&self.tasks[i]).map_err(|e| e.to_string()))
        };
        totals.render_time += t0.elapsed();
        match outcome {
            // A result's Serialize impl is user code too: a panic there is a failure of this
            // task, not of the thread.
            Ok(Ok(r)) => {
                let converted =
                    prism_comm::catch_panic(|| (self.convert)(i, r)).unwrap_or_else(|payload| {
                        Err(EngineError::Codec {
                            rank: self.rank,
                            task: Some(i),
                            what: "encoded".to_string(),
                            message: format!("panicked: {}", panic_message(&*payload)),
                        })
                    });
                if converted.is_ok() {
                    totals.rendered += 1;
                }
                converted
            }
            Ok(Err(e)) => Err(EngineError::Render {
                rank: self.rank,
                thread,
                task: i,
                panicked: false,
                message: e,
            }),
            Err(payload) => Err(EngineError::Render {
                rank: self.rank,
                thread,
                task: i,
                panicked: true,
                message: panic_message(&*payload),
            }),
        }
    }
}

/// What [`Inline::step`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Took a chunk, or rendered a task (its result or failure is in the outbox): call again
    /// soon.
    Busy,
    /// No task at hand yet (chunks are on their way from the root).
    Waiting,
    /// No more tasks: the `Finished` message is in the outbox.
    Done,
}

/// The one worker of a process with a single render thread, run by the main thread itself
/// between its other duties: one task per [`Inline::step`].
///
/// A second thread would only take the same core from the renderer: on a machine with a rank
/// per core, the main thread's polls of the network (at least one a millisecond, since MPI
/// cannot wake it) each preempted the render thread. Inline, the network is looked at between
/// tasks at no cost; the price is that a process answers others only between its own tasks
/// (see [`crate::SingleThread`]).
pub(crate) struct Inline<'s> {
    source: Source<'s>,
    chunk: Option<Chunk>,
    cursor: usize,
    totals: ThreadTotals,
    /// Since when the worker has had no task, if it has none.
    idle_since: Option<Instant>,
    done: bool,
}

impl<'s> Inline<'s> {
    pub(crate) fn new(source: Source<'s>) -> Self {
        Inline {
            source,
            chunk: None,
            cursor: 0,
            totals: ThreadTotals::default(),
            idle_since: Some(Instant::now()),
            done: false,
        }
    }

    /// Renders the next task if one is at hand. The caller makes sure the outbox has room
    /// for a result (the push must not wait: only the caller empties the outbox).
    pub(crate) fn step<T, R, E, F, C, P>(&mut self, crew: &Crew<'_, T, F, C, P>) -> Step
    where
        F: Fn(&T) -> Result<R, E> + Sync,
        E: Display,
        C: Fn(usize, R) -> Result<(P, usize), EngineError> + Sync,
    {
        if self.done {
            return Step::Done;
        }
        let stopped = crew.stop.load(Ordering::Relaxed);
        let next = match self.chunk.as_mut().and_then(Iterator::next) {
            _ if stopped => None,
            Some(i) => Some(i),
            None => match self.source.try_next(crew.tasks.len(), &mut self.cursor) {
                Next::Chunk(chunk) => {
                    // Back to the caller before rendering: it asks for the next chunk now,
                    // so that the answer comes while this one renders.
                    self.chunk = Some(chunk);
                    self.end_wait();
                    return Step::Busy;
                }
                Next::Later => return Step::Waiting,
                Next::End => None,
            },
        };
        self.end_wait();
        let Some(i) = next else {
            self.done = true;
            let _ = crew.outbox.push(Msg::Finished(self.totals), 0, true);
            return Step::Done;
        };
        match crew.render_task(0, i, &mut self.totals) {
            Ok((payload, bytes)) => {
                let _ = crew.outbox.push_unwaited(Msg::Result(i, payload), bytes);
            }
            Err(failure) => {
                crew.stop.store(true, Ordering::Relaxed);
                let _ = crew.outbox.push(Msg::Failed(failure), 0, true);
            }
        }
        if self.chunk.as_ref().is_some_and(|c| c.next >= c.end) {
            self.chunk = None;
            self.source.chunk_done();
            self.idle_since = Some(Instant::now());
        }
        Step::Busy
    }

    fn end_wait(&mut self) {
        if let Some(since) = self.idle_since.take() {
            self.totals.wait_time += since.elapsed();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_chunks_stride_over_workers() {
        let stop = AtomicBool::new(false);
        let mut s = Source::Static {
            worker: 1,
            workers: 3,
        };
        let mut cursor = 0;
        let got: Vec<usize> = s.next(10, &stop, &mut cursor).unwrap().collect();
        assert_eq!(got, vec![1, 4, 7]);
        assert!(s.next(10, &stop, &mut cursor).is_none());
    }

    /// What an inline worker put in the outbox: results (task, value), failures, finishes.
    fn drain(outbox: &Outbox<u32>) -> (Vec<(usize, u32)>, usize, usize) {
        let (mut results, mut failed, mut finished) = (Vec::new(), 0, 0);
        for m in outbox.pop_batch(1000, Duration::ZERO) {
            match m {
                Msg::Result(i, v) => results.push((i, v)),
                Msg::Failed(_) => failed += 1,
                Msg::Finished(_) => finished += 1,
            }
        }
        (results, failed, finished)
    }

    /// Results travel as themselves, 4 bytes each.
    type Convert = fn(usize, u32) -> Result<(u32, usize), EngineError>;

    fn crew_of_one<'a, F>(
        tasks: &'a [u32],
        render: &'a F,
        outbox: &'a Outbox<u32>,
        stop: &'a AtomicBool,
    ) -> Crew<'a, u32, F, Convert, u32> {
        const CONVERT: Convert = |_, r| Ok((r, 4));
        Crew {
            tasks,
            render,
            convert: &CONVERT,
            outbox,
            stop,
            rank: 0,
            threads: 1,
        }
    }

    #[test]
    fn inline_worker_takes_a_chunk_then_renders_one_task_a_step() {
        let tasks: Vec<u32> = (0..10).map(|i| i * 10).collect();
        let render = |t: &u32| Ok::<_, String>(t + 1);
        let outbox = Outbox::new(8, usize::MAX);
        let stop = AtomicBool::new(false);
        let crew = crew_of_one(&tasks, &render, &outbox, &stop);
        let (tx, rx) = crossbeam_channel::unbounded();
        let finished = AtomicUsize::new(0);
        let mut w = Inline::new(Source::Queue(rx, &finished));
        // Nothing queued yet: it waits, and renders nothing.
        assert_eq!(w.step(&crew), Step::Waiting);
        tx.send((2, 2)).unwrap();
        tx.send((7, 1)).unwrap();
        // Taking a chunk is a step of its own (so the caller can ask for the next one).
        assert_eq!(w.step(&crew), Step::Busy);
        assert!(drain(&outbox).0.is_empty());
        assert_eq!(w.step(&crew), Step::Busy);
        assert_eq!(drain(&outbox).0, [(2, 21)]);
        // A chunk counts as finished once its last task is rendered, not before.
        assert_eq!(finished.load(Ordering::Relaxed), 0);
        assert_eq!(w.step(&crew), Step::Busy);
        assert_eq!(finished.load(Ordering::Relaxed), 1);
        assert_eq!(w.step(&crew), Step::Busy); // takes (7, 1)
        assert_eq!(w.step(&crew), Step::Busy);
        assert_eq!(finished.load(Ordering::Relaxed), 2);
        assert_eq!(drain(&outbox).0, [(3, 31), (7, 71)]);
        assert_eq!(w.step(&crew), Step::Waiting);
        drop(tx);
        assert_eq!(w.step(&crew), Step::Done);
        assert_eq!(w.step(&crew), Step::Done);
        assert_eq!(drain(&outbox), (vec![], 0, 1));
    }

    #[test]
    fn inline_worker_stops_after_a_failure() {
        let tasks: Vec<u32> = (0..6).collect();
        let render = |t: &u32| {
            if *t == 2 {
                Err("bad".to_string())
            } else {
                Ok(*t)
            }
        };
        let outbox = Outbox::new(8, usize::MAX);
        let stop = AtomicBool::new(false);
        let crew = crew_of_one(&tasks, &render, &outbox, &stop);
        let mut w = Inline::new(Source::Static {
            worker: 0,
            workers: 1,
        });
        while w.step(&crew) != Step::Done {}
        assert!(stop.load(Ordering::Relaxed));
        let (results, failed, finished) = drain(&outbox);
        assert_eq!(results, [(0, 0), (1, 1)]);
        assert_eq!((failed, finished), (1, 1));
    }

    #[test]
    fn queue_source_ends_on_disconnect_or_stop() {
        let stop = AtomicBool::new(false);
        let (tx, rx) = crossbeam_channel::unbounded();
        tx.send((4, 2)).unwrap();
        drop(tx);
        let finished = AtomicUsize::new(0);
        let mut s = Source::Queue(rx, &finished);
        let mut c = 0;
        assert_eq!(
            s.next(10, &stop, &mut c).unwrap().collect::<Vec<_>>(),
            [4, 5]
        );
        assert!(s.next(10, &stop, &mut c).is_none());

        let (_tx, rx) = crossbeam_channel::unbounded::<(usize, usize)>();
        stop.store(true, Ordering::Relaxed);
        assert!(Source::Queue(rx, &finished)
            .next(10, &stop, &mut c)
            .is_none());
    }
}
