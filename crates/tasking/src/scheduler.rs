//! The cross-process dynamic scheduler behind `MultiProcess` and `MultiHybrid`.
//!
//! Reused by every Distributed call on several processes, including
//! [`crate::Parallel::call_collect`], which the render engines build on. The protocol:
//!
//! * **Root.** Its worker threads pull chunks from a local [`ChunkCounter`]. Its calling
//!   thread is the communication thread: it answers the other ranks' chunk requests from the
//!   *same* counter, hands their results and progress to the [`Coordinator`], and waits
//!   (polling MPI, blocking on its workers' event channel with a timeout that backs off from
//!   microseconds to a millisecond) so it never spins a core.
//! * **Other ranks.** The calling thread keeps `threads + PREFETCH` chunks assigned to the
//!   rank (running, queued or requested), so a worker finishing a chunk finds the next one
//!   already there instead of waiting a round trip. A request says how many of its chunks are
//!   such prefetches; the root grants those only while more chunks are left than the job's
//!   workers can hold (one running and `PREFETCH` queued each), so that near the end (or in a
//!   call of a few long tasks) a chunk goes to a worker with nothing to do rather than into
//!   another rank's queue. A rank refused a prefetch asks from then on only for idle threads. Progress and results ride on the chunk
//!   requests; results also go up on their own when no request is due. The results of each
//!   chunk travel in a message of their own (tag `TAG_RESULTS`), started just before the
//!   request that lists their chunk and received by the root as soon as it reads that list:
//!   results that fail to encode or decode (a type postcard cannot handle, a panicking serde
//!   impl) are then a failure of that chunk, reported like a task failure, while the request
//!   itself, which the protocol needs, always arrives intact.
//! * **Termination.** A request made after the counter ran out is answered with no chunks and
//!   `exhausted`. A rank whose workers have all left and whose requests are all answered sends
//!   `finished`, then waits for `End`. The root sends `End` (carrying the call's outcome) to
//!   every rank once its own workers are done and every rank has finished: then no message of
//!   the call is left in flight, and the next call starts clean. Every message also carries
//!   the call's sequence number, checked on receipt.
//! * **Errors.** A failing worker stops its own process's workers at once and reports; a
//!   failure on another rank travels up with the next message. The root keeps the first
//!   failure, exhausts the counter, answers later requests with nothing and sends `Abort` to
//!   the ranks still running (which stop at their next chunk). `End` carries the failure, so
//!   every process returns the same error naming rank, thread and chunk.
//!
//! A communication error (which would leave the other ranks waiting forever) aborts the job
//! with a message: a hang is the one outcome that must not happen.

use crate::chunk::{ChunkCounter, ChunkPlan};
use crate::error::{panic_message, TaskFailure};
use crate::parallel::Coordinator;
use crate::worker::{worker_loop, Body, CoordinatingMark, Event, Shared};
use prism_comm::{CommError, Communicator, Source};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Tag of messages to the root (requests, results, progress, failures, finished).
const TAG_UP: i32 = 101;
/// Tag of messages from the root (chunks, abort, end).
const TAG_DOWN: i32 = 102;
/// Tag of the results of one chunk, sent to the root (a `Vec<R>`).
const TAG_RESULTS: i32 = 103;
/// Chunks a non-root rank keeps assigned beyond one per worker thread.
const PREFETCH: usize = 1;
/// Longest wait between two polls of the network.
const MAX_BACKOFF: Duration = Duration::from_millis(1);
/// First sleep after the polls without one.
const FIRST_BACKOFF: Duration = Duration::from_micros(2);
/// Polls that only yield before the first sleep.
const SPIN_POLLS: u32 = 8;

/// A message from a rank to the root.
#[derive(Debug, Serialize, Deserialize)]
struct Up {
    seq: u64,
    /// Chunks wanted (0: none, this message only carries news).
    want: usize,
    /// How many of `want` are prefetches, beyond one per thread with nothing to do.
    prefetch: usize,
    /// Tasks finished since the previous message.
    done: u64,
    /// Chunks (first, count) finished since the previous message whose results follow, one
    /// `TAG_RESULTS` message each, in this order: a failing result handler, or results that
    /// do not decode, can then be blamed on their chunk.
    results: Vec<(usize, usize)>,
    failure: Option<TaskFailure>,
    /// Last message of the call from this rank.
    finished: bool,
}

/// A message from the root to a rank.
#[derive(Debug, Serialize, Deserialize)]
enum Down {
    /// The answer to one request: up to `want` chunks; `exhausted` when no more will come.
    Chunks {
        seq: u64,
        chunks: Vec<(usize, usize)>,
        exhausted: bool,
    },
    /// Stop at the next chunk: a task failed somewhere.
    Abort { seq: u64 },
    /// The call is over everywhere, with this outcome.
    End {
        seq: u64,
        failure: Option<TaskFailure>,
    },
}

/// Sleeps between polls: a few yields, then microseconds doubling up to a millisecond.
struct Backoff {
    polls: u32,
    sleep: Duration,
}

impl Backoff {
    fn new() -> Backoff {
        Backoff {
            polls: 0,
            sleep: FIRST_BACKOFF,
        }
    }

    fn reset(&mut self) {
        self.polls = 0;
        self.sleep = FIRST_BACKOFF;
    }

    /// How long to wait now (zero: just yield).
    fn next(&mut self) -> Duration {
        if self.polls < SPIN_POLLS {
            self.polls += 1;
            return Duration::ZERO;
        }
        let d = self.sleep;
        self.sleep = (self.sleep * 2).min(MAX_BACKOFF);
        d
    }
}

/// Waits for a worker event for at most the backoff's next interval.
fn wait_event<R>(
    rx: &crossbeam_channel::Receiver<Event<R>>,
    backoff: &mut Backoff,
) -> Option<Event<R>> {
    let d = backoff.next();
    if d.is_zero() {
        std::thread::yield_now();
        rx.try_recv().ok()
    } else {
        rx.recv_timeout(d).ok()
    }
}

/// Ends the job after a communication failure: the protocol cannot recover, and returning
/// would leave the other ranks waiting for messages that never come.
pub(crate) fn fatal(comm: &Communicator, what: &str, err: impl std::fmt::Display) -> ! {
    eprintln!(
        "prism-tasking: rank {}: {what}: {err}; aborting the job (the other ranks could not \
         otherwise finish this parallel call)",
        comm.rank()
    );
    comm.abort(70)
}

/// Runs one Distributed call on all ranks of `comm` (every rank must call it with the same
/// plan). Results and progress reach `coord` on the root; on the other ranks `coord` receives
/// the call's outcome only.
pub(crate) fn run_distributed<R>(
    comm: &Communicator,
    pool: &rayon::ThreadPool,
    seq: u64,
    plan: ChunkPlan,
    body: &Body<'_, R>,
    coord: &mut Coordinator<'_, R>,
) where
    R: Serialize + DeserializeOwned + Send,
{
    if comm.is_root() {
        root(comm, pool, seq, plan, body, coord);
    } else {
        non_root(comm, pool, seq, body, coord);
    }
}

fn root<R>(
    comm: &Communicator,
    pool: &rayon::ThreadPool,
    seq: u64,
    plan: ChunkPlan,
    body: &Body<'_, R>,
    coord: &mut Coordinator<'_, R>,
) where
    R: Serialize + DeserializeOwned + Send,
{
    let threads = pool.current_num_threads();
    let size = comm.size();
    // Every worker's running chunk and its prefetched ones: while no more chunks than that are
    // left, only workers with nothing to do get one.
    let holders = plan.workers() * (1 + PREFETCH);
    let counter = ChunkCounter::new(plan);
    let stop = AtomicBool::new(false);
    let done = AtomicU64::new(0);
    let (tx, rx) = crossbeam_channel::bounded::<Event<R>>(4 * threads + 4);
    let next = || counter.next_chunk();
    let shared = Shared {
        stop: &stop,
        done: &done,
        events: &tx,
        report_every_chunk: false,
    };
    pool.in_place_scope(|scope| {
        let (next_ref, shared_ref) = (&next, &shared);
        let rank = comm.rank();
        scope.spawn_broadcast(move |_, ctx| {
            worker_loop(rank, ctx.index(), next_ref, body, shared_ref);
        });

        let mut exited = 0;
        let mut finished = vec![false; size];
        finished[0] = true;
        let mut remaining = size - 1;
        let mut abort_sent = false;
        let mut backoff = Backoff::new();
        let mut pending: Option<Event<R>> = None;

        while exited < threads || remaining > 0 {
            let mut active = false;

            // Local workers: finished chunks, failures, exits.
            while let Some(event) = pending.take().or_else(|| rx.try_recv().ok()) {
                active = true;
                match event {
                    Event::Done {
                        first,
                        count,
                        results,
                    } => {
                        if coord.chunk_done(first, count, results) {
                            stop.store(true, Ordering::Release);
                            counter.exhaust();
                        }
                    }
                    Event::Failed(failure) => {
                        coord.fail(failure);
                        counter.exhaust();
                    }
                    Event::Exited => exited += 1,
                }
            }

            // Other ranks: requests, news, failures, finished.
            loop {
                let got = comm.try_recv::<Up>(Source::Any, TAG_UP);
                let (up, status) = match got {
                    Ok(Some(m)) => m,
                    Ok(None) => break,
                    Err(e) => fatal(comm, "receiving a chunk request", e),
                };
                active = true;
                let from = status.source;
                if up.seq != seq {
                    fatal(
                        comm,
                        "scheduler protocol",
                        format!(
                            "message of call {} from rank {from} during call {seq}",
                            up.seq
                        ),
                    );
                }
                coord.add_remote_progress(up.done);
                for (first, count) in up.results {
                    let failed = match recv_results::<R>(comm, from, first, count, coord.own_thread)
                    {
                        Ok(results) => coord.remote_chunk_done(from, first, count, results),
                        Err(failure) => coord.fail(failure),
                    };
                    if failed {
                        stop.store(true, Ordering::Release);
                        counter.exhaust();
                    }
                }
                if let Some(failure) = up.failure {
                    coord.fail(failure);
                    stop.store(true, Ordering::Release);
                    counter.exhaust();
                }
                if up.want > 0 {
                    let mut chunks = Vec::with_capacity(up.want);
                    let needed = up.want - up.prefetch.min(up.want);
                    if !stop.load(Ordering::Acquire) {
                        while chunks.len() < up.want {
                            // A prefetch while few chunks are left could take one from a worker
                            // that would start it at once.
                            if chunks.len() >= needed && counter.chunks_left() <= holders {
                                break;
                            }
                            match counter.next_chunk() {
                                Some(c) => chunks.push(c),
                                None => break,
                            }
                        }
                    }
                    let exhausted = stop.load(Ordering::Acquire)
                        || counter.handed_out() >= counter.plan().len();
                    let reply = Down::Chunks {
                        seq,
                        chunks,
                        exhausted,
                    };
                    if let Err(e) = comm.send(from, TAG_DOWN, &reply) {
                        fatal(comm, "sending chunks", e);
                    }
                }
                if up.finished && !finished[from] {
                    finished[from] = true;
                    remaining -= 1;
                }
            }

            if coord.failure.is_some() && !abort_sent {
                abort_sent = true;
                stop.store(true, Ordering::Release);
                counter.exhaust();
                for (r, &done) in finished.iter().enumerate() {
                    if !done {
                        if let Err(e) = comm.send(r, TAG_DOWN, &Down::Abort { seq }) {
                            fatal(comm, "sending abort", e);
                        }
                    }
                }
            }

            coord.set_local_progress(done.load(Ordering::Relaxed));
            if active {
                backoff.reset();
            } else if exited < threads || remaining > 0 {
                pending = wait_event(&rx, &mut backoff);
            }
        }
    });
    coord.set_local_progress(done.load(Ordering::Relaxed));

    let end = Down::End {
        seq,
        failure: coord.failure.clone(),
    };
    for r in 1..size {
        if let Err(e) = comm.send(r, TAG_DOWN, &end) {
            fatal(comm, "sending the end of the call", e);
        }
    }
}

/// Receives the results of chunk `first..first + count` from rank `from` (sent right after
/// the request listing it). Results that do not decode (or whose Deserialize impl panics)
/// become a failure of that chunk; the message itself was received whole, so the protocol
/// goes on.
fn recv_results<R: DeserializeOwned>(
    comm: &Communicator,
    from: usize,
    first: usize,
    count: usize,
    own_thread: usize,
) -> Result<Vec<R>, TaskFailure> {
    let got = {
        // User code (a Deserialize impl) runs here, on the coordinating thread.
        let _mark = CoordinatingMark::set();
        prism_comm::catch_panic(|| comm.recv::<Vec<R>>(from, TAG_RESULTS))
    };
    let (panicked, message) = match got {
        Ok(Ok((results, _))) => return Ok(results),
        Ok(Err(CommError::Deserialize { message, .. })) => (false, message),
        Ok(Err(e)) => fatal(comm, "receiving the results of a chunk", e),
        Err(payload) => (true, panic_message(payload.as_ref())),
    };
    Err(chunk_failure(
        from,
        own_thread,
        first..first + count,
        panicked,
        format!(
            "decoding the results (type {}) computed on process {from}, on the root (process \
             {}): {message}",
            std::any::type_name::<R>(),
            comm.rank()
        ),
    ))
}

/// A failure of the results of chunk `chunk` (their encoding or decoding), charged to
/// `rank`: no single task is to blame.
fn chunk_failure(
    rank: usize,
    thread: usize,
    chunk: std::ops::Range<usize>,
    panicked: bool,
    message: String,
) -> TaskFailure {
    TaskFailure {
        rank,
        thread,
        first: chunk.start,
        count: chunk.len(),
        panicked,
        task: None,
        message,
    }
}

/// Starts sending the results of chunk `first..first + count` to the root. Results that do
/// not encode (or whose Serialize impl panics) become a failure of that chunk, before
/// anything is sent.
fn send_results<R: Serialize>(
    comm: &Communicator,
    first: usize,
    count: usize,
    own_thread: usize,
    results: &[R],
) -> Result<prism_comm::SendRequest, TaskFailure> {
    let sent = {
        // User code (a Serialize impl) runs here, on the coordinating thread.
        let _mark = CoordinatingMark::set();
        prism_comm::catch_panic(|| comm.isend(0, TAG_RESULTS, results))
    };
    let (panicked, message) = match sent {
        Ok(Ok(request)) => return Ok(request),
        Ok(Err(CommError::Serialize { message, .. })) => (false, message),
        Ok(Err(e)) => fatal(comm, "sending the results of a chunk", e),
        Err(payload) => (true, panic_message(payload.as_ref())),
    };
    Err(chunk_failure(
        comm.rank(),
        own_thread,
        first..first + count,
        panicked,
        format!(
            "encoding the results (type {}) to send them to the root: {message}",
            std::any::type_name::<R>()
        ),
    ))
}

fn non_root<R>(
    comm: &Communicator,
    pool: &rayon::ThreadPool,
    seq: u64,
    body: &Body<'_, R>,
    coord: &mut Coordinator<'_, R>,
) where
    R: Serialize + DeserializeOwned + Send,
{
    let threads = pool.current_num_threads();
    let stop = AtomicBool::new(false);
    let (tx, rx) = crossbeam_channel::bounded::<Event<R>>(4 * threads + 4);
    let (chunk_tx, chunk_rx) = crossbeam_channel::unbounded::<(usize, usize)>();
    let next = || chunk_rx.recv().ok();
    let done = AtomicU64::new(0);
    let shared = Shared {
        stop: &stop,
        done: &done,
        events: &tx,
        // Each completion frees a slot to request a chunk into, at once.
        report_every_chunk: true,
    };
    let rank = comm.rank();
    let send_up = |up: &Up| {
        if let Err(e) = comm.send(0, TAG_UP, up) {
            fatal(comm, "sending to the root", e);
        }
    };

    let end_failure = pool.in_place_scope(|scope| {
        let (next_ref, shared_ref) = (&next, &shared);
        scope.spawn_broadcast(move |_, ctx| {
            worker_loop(rank, ctx.index(), next_ref, body, shared_ref);
        });

        let mut chunk_tx = Some(chunk_tx);
        let mut exited = 0;
        // Chunks received and not yet finished, and chunks asked for and not yet answered.
        let mut assigned = 0usize;
        let mut wants: VecDeque<usize> = VecDeque::new();
        let mut asked = 0usize;
        let mut exhausted = false;
        // The root kept back a prefetch: few chunks are left (and fewer later), so from now on
        // ask only for threads with nothing to do.
        let mut prefetch_refused = false;
        let mut done_units = 0u64;
        let mut results: Vec<(usize, usize, Vec<R>)> = Vec::new();
        let mut sending: Vec<prism_comm::SendRequest> = Vec::new();
        let mut sent_chunks: Vec<(usize, usize)> = Vec::new();
        let mut failure: Option<TaskFailure> = None;
        let mut finished_sent = false;
        let mut backoff = Backoff::new();
        let mut pending: Option<Event<R>> = None;

        loop {
            let mut active = false;

            while let Some(event) = pending.take().or_else(|| rx.try_recv().ok()) {
                active = true;
                match event {
                    Event::Done {
                        first,
                        count,
                        results: r,
                    } => {
                        assigned = assigned.saturating_sub(1);
                        done_units += count as u64;
                        if !r.is_empty() {
                            results.push((first, count, r));
                        }
                    }
                    Event::Failed(f) => {
                        assigned = assigned.saturating_sub(1);
                        failure = Some(f);
                    }
                    Event::Exited => exited += 1,
                }
            }

            loop {
                let got = comm.try_recv::<Down>(0usize, TAG_DOWN);
                let down = match got {
                    Ok(Some((d, _))) => d,
                    Ok(None) => break,
                    Err(e) => fatal(comm, "receiving from the root", e),
                };
                active = true;
                match down {
                    Down::Chunks {
                        seq: s,
                        chunks,
                        exhausted: ex,
                    } if s == seq => {
                        let want = wants.pop_front().unwrap_or(0);
                        asked = asked.saturating_sub(want);
                        exhausted |= ex;
                        prefetch_refused |= !ex && chunks.len() < want;
                        match chunk_tx.as_ref() {
                            Some(ctx) if !stop.load(Ordering::Acquire) => {
                                for c in chunks {
                                    assigned += 1;
                                    // Workers hold the receiver until they exit, which
                                    // needs this sender closed first: the send succeeds.
                                    let _ = ctx.send(c);
                                }
                            }
                            _ => {}
                        }
                    }
                    Down::Abort { seq: s } if s == seq => {
                        stop.store(true, Ordering::Release);
                    }
                    Down::End { seq: s, failure: f } if s == seq && finished_sent => {
                        return f;
                    }
                    other => fatal(
                        comm,
                        "scheduler protocol",
                        format!("unexpected {other:?} in call {seq}"),
                    ),
                }
            }

            if finished_sent {
                if !active {
                    pending = wait_event(&rx, &mut backoff);
                }
                continue;
            }

            // Past the end of the chunks, or stopping: no chunk will be queued any more, so
            // closing the queue lets idle workers leave.
            if (exhausted || stop.load(Ordering::Acquire)) && chunk_tx.is_some() {
                chunk_tx = None;
            }

            // Results go up with the next request, which is due whenever there are results.
            for (first, count, r) in std::mem::take(&mut results) {
                match send_results(comm, first, count, threads, &r) {
                    Ok(request) => {
                        sending.push(request);
                        sent_chunks.push((first, count));
                    }
                    Err(f) => {
                        stop.store(true, Ordering::Release);
                        failure.get_or_insert(f);
                        // The later chunks' results are dropped: the call fails anyway.
                        break;
                    }
                }
            }

            let stopping = stop.load(Ordering::Acquire) || failure.is_some();
            let mut up = Up {
                seq,
                want: 0,
                prefetch: 0,
                done: 0,
                results: Vec::new(),
                failure: failure.take(),
                finished: false,
            };
            if !stopping && !exhausted {
                let held = assigned + asked;
                let target = threads + if prefetch_refused { 0 } else { PREFETCH };
                if held < target {
                    up.want = target - held;
                    up.prefetch = up.want - threads.saturating_sub(held).min(up.want);
                }
            }
            if exited == threads && wants.is_empty() {
                up.finished = true;
            }
            if up.want > 0 || up.failure.is_some() || up.finished || !sent_chunks.is_empty() {
                up.done = std::mem::take(&mut done_units);
                up.results = std::mem::take(&mut sent_chunks);
                if up.want > 0 {
                    wants.push_back(up.want);
                    asked += up.want;
                }
                finished_sent = up.finished;
                send_up(&up);
                // The root receives the results as soon as it reads this request.
                for request in sending.drain(..) {
                    request.wait();
                }
                active = true;
            }

            if active {
                backoff.reset();
            } else {
                pending = wait_event(&rx, &mut backoff);
            }
        }
    });

    if let Some(f) = end_failure {
        coord.fail(f);
    }
}
