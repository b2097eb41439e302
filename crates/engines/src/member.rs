//! The side of a multi-process run on every process but the root.
//!
//! Render threads encode their results (so encoding runs in parallel) into a bounded outbox;
//! the main thread packs them into batches, sends a batch when it is full (by count or bytes),
//! old enough, or the last, and asks for chunks so that [`crate::Options::prefetch_chunks`]
//! chunks wait ahead of the threads: on the same message when the batch is small, in a message
//! of its own otherwise. At most [`crate::Options::batches_in_flight`] batches of results are
//! unanswered; past that the main thread stops taking results from the outbox, the outbox
//! fills, and the render threads wait before their next task: memory stays bounded whatever
//! the root is doing. A process with one render thread may run it on the main thread instead
//! (see [`crate::SingleThread`]): one task at a time, between rounds of the loop below.

use crate::cluster::{fatal, Cluster};
use crate::error::{EngineError, Result};
use crate::options::Schedule;
use crate::outbox::{Msg, Outbox, Release};
use crate::protocol::{encoded_size, first_grant, Backoff, Down, Up, DRAIN_WAIT, TAG_DOWN, TAG_UP};
use crate::stats::{ProcessStats, RunStats};
use crate::threads::APPLY_SLICE;
use crate::worker::{Crew, Inline, Source, Step};
use prism_comm::{Communicator, SendRequest};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Display;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A process's state for one run.
struct Member<'a> {
    comm: &'a Communicator,
    seq: u64,
    sends: Vec<SendRequest>,
    stats: ProcessStats,
}

impl Member<'_> {
    fn send(&mut self, msg: &Up, what: &str) {
        let t0 = Instant::now();
        let bytes = encoded_size(msg);
        match self.comm.isend(0, TAG_UP, msg) {
            Ok(req) => self.sends.push(req),
            Err(e) => fatal(self.comm, what, e),
        }
        self.stats.messages_sent += 1;
        self.stats.bytes_sent += bytes;
        self.stats.comm_time += t0.elapsed();
    }

    fn receive(&mut self) -> Option<Down> {
        let t0 = Instant::now();
        let got = self.comm.try_recv::<Down>(0usize, TAG_DOWN);
        self.stats.comm_time += t0.elapsed();
        match got {
            Ok(Some((down, status))) => {
                self.stats.messages_received += 1;
                self.stats.bytes_received += status.bytes as u64;
                if down.seq() != self.seq {
                    fatal(
                        self.comm,
                        "engine protocol",
                        format!("message of run {} during run {}", down.seq(), self.seq),
                    );
                }
                Some(down)
            }
            Ok(None) => None,
            Err(e) => fatal(self.comm, "receiving from the root", e),
        }
    }

    fn prune_sends(&mut self) {
        let t0 = Instant::now();
        self.sends.retain_mut(|r| !r.test());
        self.stats.comm_time += t0.elapsed();
    }
}

/// The longest this process sleeps while one of its sends is still in flight. Interleaved
/// runs of two processes on two cores: 250 µs beat both 50 µs (each wake-up takes the core
/// from a render thread) and 1 ms (batches, and with them chunk requests, arrive later).
const SEND_PROGRESS_WAIT: Duration = Duration::from_micros(250);

/// The longest an idle main thread of a process other than the root sleeps between looks at
/// its results and the network: short once its render threads are done (the run's end waits
/// on it) or while a send is in flight (see above), else the batch delay, so results wait no
/// longer than promised. Never zero: a zero delay means "send at once", not "never sleep",
/// and a wait of nothing would spin on a core that render threads need.
fn idle_cap(draining: bool, sending: bool, batch_delay: Duration) -> Duration {
    if draining {
        DRAIN_WAIT
    } else if sending {
        SEND_PROGRESS_WAIT
    } else {
        batch_delay.max(DRAIN_WAIT)
    }
}

/// Results (bytes) above which a chunk request travels in a message of its own: well below
/// the size up to which transports send a message in one step (Open MPI: 4 KiB within a node,
/// 12-64 KiB between nodes).
const REQUEST_ALONE_ABOVE: usize = 2048;

/// Runs a non-root process's side; returns the run's outcome as the root sent it.
pub(crate) fn run<T, R, E, F>(
    cl: &Cluster,
    seq: u64,
    start: Instant,
    stats: ProcessStats,
    tasks: &[T],
    render: &F,
) -> Result<RunStats>
where
    T: Serialize + Sync,
    R: Serialize + DeserializeOwned + Send,
    E: Display,
    F: Fn(&T) -> std::result::Result<R, E> + Sync,
{
    let comm = &cl.comm;
    let rank = comm.rank();
    let threads = cl.threads;
    let opts = &cl.options;
    let dynamic = opts.schedule == Schedule::Dynamic;
    let outbox = Outbox::<Vec<u8>>::new(opts.outbox_results, opts.outbox_bytes);
    let stop = AtomicBool::new(false);
    let (chunk_tx, chunk_rx) = crossbeam_channel::unbounded::<(usize, usize)>();
    let convert = |i: usize, r: R| {
        postcard::to_stdvec(&(i as u64))
            .and_then(|head| postcard::to_extend(&r, head))
            .map(|bytes| {
                let len = bytes.len();
                (bytes, len)
            })
            .map_err(|e| EngineError::Codec {
                rank,
                task: Some(i),
                what: "encoded".to_string(),
                message: e.to_string(),
            })
    };
    let crew = Crew {
        tasks,
        render,
        convert: &convert,
        outbox: &outbox,
        stop: &stop,
        rank,
        threads,
    };
    let mut me = Member {
        comm,
        seq,
        sends: Vec::new(),
        stats,
    };
    // Chunks to keep queued beyond the running ones.
    let target = opts.prefetch_chunks * threads;
    // Chunks the render threads finished: with those received, how many threads are idle.
    let finished_chunks = AtomicUsize::new(0);

    let outcome = std::thread::scope(|s| {
        let mut inline = None;
        for thread in 0..threads {
            let source = if dynamic {
                Source::Queue(chunk_rx.clone(), &finished_chunks)
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
        drop(chunk_rx);
        let mut chunk_tx = dynamic.then_some(chunk_tx);
        let mut batch: Vec<u8> = Vec::new();
        let mut batch_count = 0u32;
        let mut batch_since = Instant::now();
        // Batches with results not answered yet; chunks asked for and not received. The
        // root's first chunks come unasked, as if answering a batch without results.
        let mut results_in_flight = 0usize;
        let mut asked = if dynamic {
            first_grant(cl, rank) as usize
        } else {
            0
        };
        let mut exhausted = !dynamic;
        // The root kept back a prefetch (few chunks are left): from then on, chunks are asked
        // for only for threads with nothing to do.
        let mut prefetch_refused = false;
        let mut received_chunks = 0usize;
        // Set on abort or local failure: no more requests, results are dropped.
        let mut stopping = false;
        let mut local_finished = 0;
        let mut finished_sent = false;
        let mut backoff = Backoff::new();

        loop {
            // `active`: something was done, look again at once; `network`: a message came or
            // went, so an answer may come soon (only that resets the backoff).
            let mut active = false;
            let mut network = false;

            while let Some(down) = me.receive() {
                active = true;
                network = true;
                match down {
                    Down::Chunks {
                        chunks,
                        exhausted: ex,
                        wanted,
                        had_results,
                        ..
                    } => {
                        asked = asked.saturating_sub(wanted as usize);
                        results_in_flight =
                            results_in_flight.saturating_sub(usize::from(had_results));
                        exhausted |= ex;
                        prefetch_refused |= !ex && chunks.len() < wanted as usize;
                        if let (Some(tx), false) = (&chunk_tx, stopping) {
                            for (first, count) in chunks {
                                // The threads hold the receiver until this sender is gone.
                                let _ = tx.send((first as usize, count as usize));
                                received_chunks += 1;
                            }
                        }
                    }
                    Down::Abort { .. } => {
                        stopping = true;
                        stop.store(true, Ordering::Relaxed);
                    }
                    Down::End { outcome, .. } => {
                        if !finished_sent {
                            fatal(
                                comm,
                                "engine protocol",
                                "the run ended before this process finished",
                            );
                        }
                        return outcome;
                    }
                }
            }

            // Take results while the batch has room (all of them when stopping: dropped).
            let full = |count: u32, bytes: usize| {
                count as usize >= opts.batch_results || bytes >= opts.batch_bytes
            };
            while stopping || !full(batch_count, batch.len()) {
                let room = if stopping {
                    APPLY_SLICE
                } else {
                    (opts.batch_results - batch_count as usize).min(APPLY_SLICE)
                };
                let msgs = outbox.pop_batch(room, Duration::ZERO);
                if msgs.is_empty() {
                    break;
                }
                active = true;
                for m in msgs {
                    match m {
                        Msg::Result(_, bytes) if !stopping => {
                            if batch_count == 0 {
                                batch_since = Instant::now();
                            }
                            batch.extend_from_slice(&bytes);
                            batch_count += 1;
                        }
                        Msg::Result(..) => {}
                        Msg::Failed(error) => {
                            if !stopping {
                                me.send(&Up::Failed { seq, error }, "reporting a failure");
                            }
                            stopping = true;
                            stop.store(true, Ordering::Relaxed);
                        }
                        Msg::Finished(totals) => {
                            local_finished += 1;
                            totals.add_to(&mut me.stats);
                        }
                    }
                }
            }
            if stopping {
                batch.clear();
                batch_count = 0;
            }
            // No chunk will be queued any more: closing the queue lets idle threads leave.
            if exhausted || stopping {
                chunk_tx = None;
            }

            // A request for chunks rides on the results only when they are few: a large batch
            // crosses in several steps (rendezvous), each waiting for a poll on both sides, and
            // the threads would wait that long for their chunks. A request alone carries no
            // results, so the bound on batches in flight does not hold it back.
            loop {
                if finished_sent {
                    break;
                }
                let queued = chunk_tx.as_ref().map_or(0, |tx| tx.len());
                // Chunks running or queued here, and asked for: a chunk counts as running until
                // its thread says it is done, so a thread is never counted idle too early.
                let held =
                    received_chunks.saturating_sub(finished_chunks.load(Ordering::Relaxed)) + asked;
                let needed = threads.saturating_sub(held);
                let want = if exhausted || stopping {
                    0
                } else if prefetch_refused {
                    needed
                } else {
                    target.saturating_sub(queued + asked).max(needed)
                };
                let room = results_in_flight < opts.batches_in_flight;
                let due = batch_count > 0
                    && (full(batch_count, batch.len())
                        || local_finished == threads
                        || batch_since.elapsed() >= opts.batch_delay);
                let with_results = room
                    && batch_count > 0
                    && (due || (want > 0 && batch.len() <= REQUEST_ALONE_ABOVE));
                if want == 0 && !with_results {
                    break;
                }
                let (count, results) = if with_results {
                    (
                        std::mem::replace(&mut batch_count, 0),
                        std::mem::take(&mut batch),
                    )
                } else {
                    (0, Vec::new())
                };
                let up = Up::Batch {
                    seq,
                    count,
                    results,
                    want: want as u32,
                    needed: needed.min(want) as u32,
                };
                me.send(&up, "sending results");
                results_in_flight += usize::from(with_results);
                asked += want;
                active = true;
                network = true;
            }

            // The answers to the last batches need not be awaited: the root handles this
            // process's messages in order, and its answers all come before the end.
            if !finished_sent && local_finished == threads && batch_count == 0 {
                me.stats.wall = start.elapsed();
                me.stats.peak_outbox_results = outbox.peak_items();
                let up = Up::Finished {
                    seq,
                    stats: me.stats.clone(),
                };
                me.send(&up, "finishing");
                finished_sent = true;
                active = true;
                network = true;
            }
            me.prune_sends();
            // Rendering here waits while results have nowhere to go (back-pressure).
            if let Some(worker) = inline.as_mut() {
                if outbox.has_room() && worker.step(&crew) == Step::Busy {
                    active = true;
                }
            }

            if network {
                backoff.reset();
            }
            if !active {
                // A large batch crosses in several steps (rendezvous), each of which needs this
                // process to call into MPI unless the transport copies by itself: while a send
                // is in flight, poll often so the root never waits on this process's sleep.
                let cap = idle_cap(
                    local_finished == threads,
                    !me.sends.is_empty(),
                    opts.batch_delay,
                );
                let wait = backoff.next().min(cap);
                if !stopping && !full(batch_count, batch.len()) {
                    // Room for results: wake as soon as one comes.
                    outbox.wait_for_items(wait);
                } else {
                    std::thread::sleep(wait);
                }
            }
        }
    });
    let t0 = Instant::now();
    me.sends.clear();
    me.stats.comm_time += t0.elapsed();
    if let Some(e) = outcome {
        return Err(e);
    }
    me.stats.wall = start.elapsed();
    Ok(RunStats {
        tasks: tasks.len(),
        workers: cl.workers,
        processes: comm.size(),
        local: me.stats,
        all: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_main_thread_never_polls_without_sleeping() {
        for draining in [false, true] {
            for sending in [false, true] {
                let cap = idle_cap(draining, sending, Duration::ZERO);
                assert!(cap >= DRAIN_WAIT, "{draining} {sending}: {cap:?}");
            }
        }
        let ms20 = Duration::from_millis(20);
        assert_eq!(idle_cap(false, false, ms20), ms20);
        assert_eq!(idle_cap(false, true, ms20), SEND_PROGRESS_WAIT);
    }
}
