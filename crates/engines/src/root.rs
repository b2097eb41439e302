//! The root's side of a multi-process run.
//!
//! Its render threads take chunks from the counter; its main thread, in one loop that never
//! blocks: applies its threads' results with `update` (a slice at a time), answers the other
//! processes' batches (chunks first, then their results into `update`), and otherwise waits on
//! its threads' outbox with a timeout that backs off to a millisecond, so a result of its own
//! is applied at once and the network is still polled. With [`crate::SingleThread::MainThread`]
//! and one render thread, the main thread renders that thread's tasks itself, one between two
//! rounds of that loop.

use crate::apply::Applier;
use crate::cluster::{fatal, Cluster};
use crate::error::{panic_message, EngineError, Result};
use crate::options::Schedule;
use crate::outbox::{Msg, Outbox, Release};
use crate::protocol::{encoded_size, first_grant, Backoff, Down, Up, DRAIN_WAIT, TAG_DOWN, TAG_UP};
use crate::stats::{ProcessStats, RunStats};
use crate::threads::{chunk_plan, APPLY_SLICE, IDLE_WAIT};
use crate::travel::TravelCheck;
use crate::worker::{Crew, Inline, Source, Step};
use prism_comm::{Communicator, RecvRequest, SendRequest, Source as From, Status};
use prism_tasking::ChunkCounter;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Display;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The longest the root applies its own results with `update` before it looks at the
/// network again (a slice of its results can otherwise take as long as 32 updates).
const SERVE_EVERY: Duration = Duration::from_millis(2);

/// A message from another process, matched and perhaps still arriving.
struct IncomingUp {
    source: usize,
    request: RecvRequest<Up>,
    arrived: Option<(Up, Status)>,
}

/// The root's bookkeeping for one run.
struct Root<'a, U> {
    comm: &'a Communicator,
    seq: u64,
    dynamic: bool,
    applier: Applier<U>,
    /// The first failure anywhere: the run's outcome.
    failure: Option<EngineError>,
    /// Results applied, from every process.
    received: usize,
    /// Which processes have sent their last message.
    finished: Vec<bool>,
    remaining: usize,
    /// Every process's counters, from its last message.
    all: Vec<Option<ProcessStats>>,
    abort_sent: bool,
    /// Chunks the run's render threads can hold: one running and the prefetched ones each.
    holders: usize,
    local_finished: usize,
    sends: Vec<SendRequest>,
    /// Other processes' messages in the order they were matched.
    incoming: Vec<IncomingUp>,
    stats: ProcessStats,
}

impl<U> Root<'_, U> {
    fn fail(&mut self, e: EngineError) {
        if self.failure.is_none() {
            self.failure = Some(e);
        }
    }

    fn send(&mut self, dest: usize, msg: &Down, what: &str) {
        let t0 = Instant::now();
        let bytes = encoded_size(msg);
        match self.comm.isend(dest, TAG_DOWN, msg) {
            Ok(req) => self.sends.push(req),
            Err(e) => fatal(self.comm, what, e),
        }
        self.stats.messages_sent += 1;
        self.stats.bytes_sent += bytes;
        self.stats.comm_time += t0.elapsed();
    }

    /// A message from this process's render threads.
    fn local<R, E>(&mut self, msg: Msg<R>)
    where
        U: FnMut(usize, R) -> std::result::Result<(), E>,
        E: Display,
    {
        match msg {
            Msg::Result(i, r) => {
                if self.failure.is_none() {
                    match self.applier.apply(i, r) {
                        Ok(()) => self.received += 1,
                        Err(e) => self.fail(e),
                    }
                }
            }
            Msg::Failed(e) => self.fail(e),
            Msg::Finished(totals) => {
                self.local_finished += 1;
                totals.add_to(&mut self.stats);
            }
        }
    }

    /// Moves the other processes' messages along and handles those that have arrived;
    /// returns whether there were any. A large batch can need several steps with its sender
    /// (rendezvous) before it has all arrived: it stays in `incoming` meanwhile, so the root
    /// never waits on one process while others, or its own threads, have work for it.
    fn serve<R, E>(&mut self, counter: &ChunkCounter) -> bool
    where
        R: DeserializeOwned,
        U: FnMut(usize, R) -> std::result::Result<(), E>,
        E: Display,
    {
        let t0 = Instant::now();
        for inc in self.incoming.iter_mut().filter(|i| i.arrived.is_none()) {
            match inc.request.test() {
                Ok(got) => inc.arrived = got,
                Err(e) => fatal(self.comm, "receiving from a process", e),
            }
        }
        // Bounded so that a stream of batches cannot starve this process's own results.
        for _ in 0..2 * self.comm.size() {
            let mut request = self.comm.irecv::<Up>(From::Any, TAG_UP);
            let arrived = match request.test() {
                Ok(got) => got,
                Err(e) => fatal(self.comm, "receiving from a process", e),
            };
            let status = arrived.as_ref().map(|(_, st)| *st).or(request.matched());
            let Some(Status { source, .. }) = status else {
                break;
            };
            self.incoming.push(IncomingUp {
                source,
                request,
                arrived,
            });
        }
        self.stats.comm_time += t0.elapsed();

        // Messages of one process are handled in the order they were sent: a batch still
        // arriving holds back that process's later messages (its "finished" above all), but
        // not a request for chunks, whose process's threads may be waiting for it.
        let mut held = vec![false; self.comm.size()];
        let mut ready = Vec::new();
        for inc in std::mem::take(&mut self.incoming) {
            match inc.arrived {
                Some((up, status)) if !held[inc.source] || up.is_request() => {
                    ready.push((up, status));
                }
                _ => {
                    held[inc.source] = true;
                    self.incoming.push(inc);
                }
            }
        }
        // Every process's chunks before anyone's results go through `update`, which may be
        // slow: one process's batch must not keep the others waiting for work.
        for (up, status) in &ready {
            self.answer(up, status.source, counter);
        }
        let any = !ready.is_empty();
        for (up, status) in ready {
            self.handle::<R, E>(up, status);
        }
        any
    }

    /// Checks that a message from process `from` belongs to this run and, if it is a batch,
    /// answers it with chunks: before its results are applied, so that the sender's threads
    /// do not wait for our `update`.
    fn answer(&mut self, up: &Up, from: usize, counter: &ChunkCounter) {
        if up.seq() != self.seq {
            fatal(
                self.comm,
                "engine protocol",
                format!(
                    "message of run {} from process {from} during run {}",
                    up.seq(),
                    self.seq
                ),
            );
        }
        if let Up::Batch {
            count,
            want,
            needed,
            ..
        } = up
        {
            self.grant(from, *want, *needed, *count > 0, counter);
        }
    }

    /// Handles one message from another process, already [answered](Root::answer).
    fn handle<R, E>(&mut self, up: Up, status: Status)
    where
        R: DeserializeOwned,
        U: FnMut(usize, R) -> std::result::Result<(), E>,
        E: Display,
    {
        self.stats.messages_received += 1;
        self.stats.bytes_received += status.bytes as u64;
        let from = status.source;
        match up {
            Up::Batch { count, results, .. } => {
                self.apply_batch::<R, E>(from, count, &results);
            }
            Up::Failed { error, .. } => self.fail(error),
            Up::Finished { stats, .. } => {
                if !self.finished[from] {
                    self.finished[from] = true;
                    self.remaining -= 1;
                }
                self.all[from] = Some(stats);
            }
        }
    }

    /// Answers process `to`'s batch (with or without results) that asked for `want` chunks,
    /// `needed` of them for idle threads. The others are prefetches: granted only while more
    /// chunks are left than the render threads can hold, so that a chunk near the end goes to
    /// a thread that starts it at once rather than into a queue behind a running one.
    fn grant(
        &mut self,
        to: usize,
        want: u32,
        needed: u32,
        had_results: bool,
        counter: &ChunkCounter,
    ) {
        let mut chunks = Vec::new();
        if self.dynamic && self.failure.is_none() {
            while chunks.len() < want as usize {
                if chunks.len() >= needed as usize && counter.chunks_left() <= self.holders {
                    break;
                }
                match counter.next_chunk() {
                    Some((f, c)) => chunks.push((f as u64, c as u64)),
                    None => break,
                }
            }
        }
        let exhausted =
            !self.dynamic || self.failure.is_some() || counter.handed_out() >= counter.plan().len();
        let reply = Down::Chunks {
            seq: self.seq,
            chunks,
            exhausted,
            wanted: want,
            had_results,
        };
        self.send(to, &reply, "answering a batch");
    }

    /// Decodes the results of a batch from process `from` and applies them.
    fn apply_batch<R, E>(&mut self, from: usize, count: u32, mut bytes: &[u8])
    where
        R: DeserializeOwned,
        U: FnMut(usize, R) -> std::result::Result<(), E>,
        E: Display,
    {
        for _ in 0..count {
            if self.failure.is_some() {
                return;
            }
            let t0 = Instant::now();
            // The result's Deserialize impl is user code: a panic is this task's failure.
            let decoded = prism_comm::catch_panic(|| {
                postcard::take_from_bytes::<u64>(bytes)
                    .and_then(|(i, rest)| {
                        postcard::take_from_bytes::<R>(rest).map(|(r, rest)| (i as usize, r, rest))
                    })
                    .map_err(|e| e.to_string())
            })
            .unwrap_or_else(|payload| Err(format!("panicked: {}", panic_message(&*payload))));
            self.stats.comm_time += t0.elapsed();
            match decoded {
                Ok((i, r, rest)) => {
                    bytes = rest;
                    match self.applier.apply(i, r) {
                        Ok(()) => self.received += 1,
                        Err(e) => self.fail(e),
                    }
                }
                Err(e) => {
                    let task = postcard::take_from_bytes::<u64>(bytes)
                        .ok()
                        .map(|(i, _)| i as usize);
                    self.fail(EngineError::Codec {
                        rank: from,
                        task,
                        what: "decoded".to_string(),
                        message: e,
                    });
                }
            }
        }
    }

    fn prune_sends(&mut self) {
        let t0 = Instant::now();
        self.sends.retain_mut(|r| !r.test());
        self.stats.comm_time += t0.elapsed();
    }
}

/// Runs the root's side; returns when every process has finished.
pub(crate) fn run<T, R, E, F, U>(
    cl: &Cluster,
    seq: u64,
    start: Instant,
    stats: ProcessStats,
    tasks: &[T],
    render: &F,
    update: U,
) -> Result<RunStats>
where
    T: Serialize + Sync,
    R: Serialize + DeserializeOwned + Send,
    E: Display,
    F: Fn(&T) -> std::result::Result<R, E> + Sync,
    U: FnMut(usize, R) -> std::result::Result<(), E>,
{
    let comm = &cl.comm;
    let size = comm.size();
    let threads = cl.threads;
    let n = tasks.len();
    let dynamic = cl.options.schedule == Schedule::Dynamic;
    // A worker of another process holds its running chunk and `prefetch_chunks` queued ones:
    // chunks are planned that much smaller, so that the work committed to a worker when the
    // list runs out is no more than under threads alone (measured: with full-size chunks, a
    // process that had queued two expensive chunks ran 30 % longer than the root).
    let holders = cl.workers * (1 + cl.options.prefetch_chunks);
    let counter = ChunkCounter::new(chunk_plan(n, holders, &cl.options));
    // The root's results are applied in this process: not encoded (but for the travel
    // check), so bounded by count only.
    let outbox = Outbox::<R>::new(cl.options.outbox_results, usize::MAX);
    let stop = AtomicBool::new(false);
    let travel = TravelCheck::default();
    let rank = comm.rank();
    let convert = |i: usize, r: R| travel.check(rank, i, &r).map(|()| (r, 0));
    let crew = Crew {
        tasks,
        render,
        convert: &convert,
        outbox: &outbox,
        stop: &stop,
        rank: comm.rank(),
        threads,
    };
    let mut root = Root {
        comm,
        seq,
        dynamic,
        applier: Applier::new(update, comm.rank()),
        failure: None,
        received: 0,
        // The root itself sends no "finished" message.
        finished: (0..size).map(|r| r == 0).collect(),
        remaining: size - 1,
        all: vec![None; size],
        abort_sent: false,
        holders,
        local_finished: 0,
        sends: Vec::new(),
        incoming: Vec::new(),
        stats,
    };

    std::thread::scope(|s| {
        let mut inline = None;
        for thread in 0..threads {
            let source = if dynamic {
                Source::Counter(&counter)
            } else {
                Source::Static {
                    worker: cl.first_worker + thread,
                    workers: cl.workers,
                }
            };
            if cl.renders_inline() {
                inline = Some(Inline::new(source));
            } else {
                let crew = &crew;
                s.spawn(move || crew.run(thread, source));
            }
        }
        let _release = Release {
            outbox: &outbox,
            stop: &stop,
        };
        // Every other process's first chunks, unasked, before this one renders anything.
        if dynamic {
            for r in 1..size {
                root.grant(
                    r,
                    first_grant(cl, r),
                    cl.threads_of[r] as u32,
                    false,
                    &counter,
                );
            }
        }
        let mut backoff = Backoff::new();
        let mut carry: Vec<Msg<R>> = Vec::new();
        loop {
            let mut active = false;
            let msgs = if carry.is_empty() {
                outbox.pop_batch(APPLY_SLICE, Duration::ZERO)
            } else {
                std::mem::take(&mut carry)
            };
            let slice = Instant::now();
            let mut msgs = msgs.into_iter();
            while let Some(m) = msgs.next() {
                active = true;
                root.local(m);
                // A slow `update` must not leave the other processes without chunks: past
                // SERVE_EVERY, the rest of the slice waits until the network has been served.
                if root.remaining > 0 && slice.elapsed() >= SERVE_EVERY {
                    carry.extend(msgs);
                    break;
                }
            }
            // Only the network's own activity makes a quick answer likely: a local result
            // does not, and resetting on it would wake this core every few microseconds.
            let mut network = false;
            if root.remaining > 0 {
                network = root.serve::<R, E>(&counter);
                active |= network;
            }

            if root.failure.is_some() && !root.abort_sent {
                root.abort_sent = true;
                stop.store(true, Ordering::Relaxed);
                counter.exhaust();
                // Threads waiting on a full outbox are released; their results are dropped.
                outbox.close();
                for r in 1..size {
                    if !root.finished[r] {
                        root.send(r, &Down::Abort { seq }, "sending abort");
                    }
                }
            }
            root.prune_sends();

            let local_done = root.local_finished == threads || root.failure.is_some();
            if local_done && root.remaining == 0 {
                break;
            }
            if let Some(worker) = inline.as_mut() {
                if outbox.has_room() && worker.step(&crew) == Step::Busy {
                    active = true;
                }
            }
            if network {
                backoff.reset();
            }
            if !active {
                // Nobody else to listen to: wait for this process's threads only.
                let wait = if root.remaining == 0 {
                    IDLE_WAIT
                } else if local_done {
                    backoff.next().min(DRAIN_WAIT)
                } else {
                    backoff.next()
                };
                if root.failure.is_none() && root.local_finished < threads {
                    carry = outbox.pop_batch(APPLY_SLICE, wait);
                } else {
                    std::thread::sleep(wait);
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        outbox.close();
    });

    if root.failure.is_none() && root.received != n {
        root.failure = Some(EngineError::Comm {
            rank: comm.rank(),
            op: "collecting results".to_string(),
            message: format!("only {} of {n} results arrived", root.received),
        });
    }
    let outcome = root.failure.take();
    let end = Down::End {
        seq,
        outcome: outcome.clone(),
    };
    for r in 1..size {
        root.send(r, &end, "sending the end of the run");
    }
    let t0 = Instant::now();
    // Dropping a request waits for it: nothing of this run stays in flight.
    root.sends.clear();
    root.stats.comm_time += t0.elapsed();
    if let Some(e) = outcome {
        return Err(e);
    }

    let mut stats = root.stats;
    stats.wall = start.elapsed();
    stats.update_time = root.applier.time;
    stats.peak_outbox_results = outbox.peak_items();
    let mut all: Vec<ProcessStats> = root
        .all
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect();
    all[0] = stats.clone();
    Ok(RunStats {
        tasks: n,
        workers: cl.workers,
        processes: size,
        local: stats,
        all,
    })
}
