//! The messages of a multi-process run and the pieces both sides share.
//!
//! One run, on a communicator of its own (so no other traffic can match):
//!
//! * **Start.** Every process contributes `(number of tasks, fingerprint of the tasks)` to an
//!   all-gather; a process whose list differs from the root's makes every process fail with
//!   the same [`EngineError::TaskListMismatch`].
//! * **First chunks.** In a dynamic run the root then sends every other process a
//!   [`Down::Chunks`] it did not ask for, with chunks for each of its threads and the queued
//!   ones, so no process starts with a round trip. The queued ones (prefetches) only while
//!   more chunks are left than the run's render threads can hold (one running and
//!   `prefetch_chunks` queued each): a run of a few long tasks gives each thread one rather
//!   than one process two and another none.
//! * **Up** (to the root). [`Up::Batch`] carries finished results, concatenated postcard
//!   encodings of `(task index, result)`, and asks for `want` more chunks, `needed` of them for
//!   threads that have nothing to render (the rest are prefetches, granted under the same rule
//!   as the first ones; a process refused one asks only for idle threads from then on); the root answers
//!   every batch with exactly one [`Down::Chunks`], which is how a process bounds the batches
//!   it has in flight. A batch without results is a request for chunks alone: the root
//!   answers it as soon as it has arrived, even before a larger batch sent earlier has
//!   finished arriving, so answers say which batch they answer. [`Up::Failed`] reports a
//!   failure. [`Up::Finished`] is a process's last message: its threads have ended and all
//!   its results are on their way (it need not wait for the answers to its last batches: the
//!   root handles a process's messages in order, so its batches before its "finished").
//! * **Down** (from the root). [`Down::Abort`] tells a process to stop at its next task;
//!   [`Down::End`] carries the run's outcome and is the last message of the run. The root
//!   sends it once its own threads are done and every process has finished, so nothing of the
//!   run is left in flight when `run` returns anywhere.

use crate::error::EngineError;
use crate::stats::ProcessStats;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Tag of messages to the root.
pub(crate) const TAG_UP: i32 = 201;
/// Tag of messages from the root.
pub(crate) const TAG_DOWN: i32 = 202;

/// A message to the root. `seq` numbers the runs of one engine, checked on receipt.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Up {
    Batch {
        seq: u64,
        /// Results in `results`.
        count: u32,
        /// `count` postcard encodings of `(u64 task index, result)`, back to back.
        #[serde(with = "serde_bytes")]
        results: Vec<u8>,
        /// Chunks wanted.
        want: u32,
        /// How many of `want` are for render threads waiting with nothing to do.
        needed: u32,
    },
    Failed {
        seq: u64,
        error: EngineError,
    },
    Finished {
        seq: u64,
        stats: ProcessStats,
    },
}

/// A message from the root.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Down {
    /// The answer to one batch: up to `want` chunks `(first, count)`; `exhausted` when no more
    /// will come.
    Chunks {
        seq: u64,
        chunks: Vec<(u64, u64)>,
        exhausted: bool,
        /// The answered batch's `want`, and whether it carried results.
        wanted: u32,
        had_results: bool,
    },
    Abort {
        seq: u64,
    },
    End {
        seq: u64,
        outcome: Option<EngineError>,
    },
}

impl Up {
    pub(crate) fn seq(&self) -> u64 {
        match self {
            Up::Batch { seq, .. } | Up::Failed { seq, .. } | Up::Finished { seq, .. } => *seq,
        }
    }

    /// A batch without results: a request for chunks only, which no earlier message of its
    /// process needs to be handled before.
    pub(crate) fn is_request(&self) -> bool {
        matches!(self, Up::Batch { count: 0, .. })
    }
}

impl Down {
    pub(crate) fn seq(&self) -> u64 {
        match self {
            Down::Chunks { seq, .. } | Down::Abort { seq } | Down::End { seq, .. } => *seq,
        }
    }
}

/// The chunks the root hands process `rank` at the start of a dynamic run, unasked, as if
/// answering a batch without results: one for each thread and the queued ones.
pub(crate) fn first_grant(cl: &crate::cluster::Cluster, rank: usize) -> u32 {
    (cl.threads_of[rank] * (1 + cl.options.prefetch_chunks)) as u32
}

/// The size of a message's encoding, for the traffic counters.
pub(crate) fn encoded_size<T: Serialize>(value: &T) -> u64 {
    postcard::experimental::serialized_size(value).map_or(0, |n| n as u64)
}

/// A postcard output that hashes the encoding (FNV-1a, 64 bits) instead of storing it.
struct Fnv(u64);

impl postcard::ser_flavors::Flavor for Fnv {
    type Output = u64;

    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<u64> {
        Ok(self.0)
    }
}

/// A hash of the postcard encoding of `tasks`, equal on every process for equal lists.
pub(crate) fn fingerprint<T: Serialize>(tasks: &[T]) -> Result<u64, String> {
    postcard::serialize_with_flavor(tasks, Fnv(0xcbf2_9ce4_8422_2325)).map_err(|e| e.to_string())
}

/// The root's check of every process's `(tasks, fingerprint)`: the first process that
/// differs from the root, as an error every process returns alike.
pub(crate) fn check_lists(lists: &[(u64, u64)]) -> Result<(), EngineError> {
    let root = lists.first().copied().unwrap_or_default();
    match lists.iter().enumerate().find(|(_, l)| **l != root) {
        None => Ok(()),
        Some((rank, &(tasks, fingerprint))) => Err(EngineError::TaskListMismatch {
            rank,
            tasks: tasks as usize,
            fingerprint,
            root_tasks: root.0 as usize,
            root_fingerprint: root.1,
        }),
    }
}

/// The longest a process whose own render threads have all finished sleeps between polls.
/// Its core has nothing else to do, and the end of every run (and so of every pass of a
/// render) waits on a few message hops: with the 1 ms cap of [`Backoff`] they took 4-9 ms
/// per run between the last tile and the end reaching the other process.
pub(crate) const DRAIN_WAIT: Duration = Duration::from_micros(100);

/// Waits between polls of the network: 100 µs doubling up to a millisecond, so a process
/// waiting on others never spins a core its threads need. Every message restarts the ramp;
/// starting at 5 µs cost nine wake-ups per message, each taking a rendering core, for answers
/// that the other side's own 1 ms cadence delays anyway (interleaved runs: 4 % slower). (No
/// yields first: on a machine with every core busy a yield is a sleep of unknown length, and
/// the waits are mostly taken on the outbox's condition variable, which ends early when a
/// result comes.)
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_micros(100);
    const LAST: Duration = Duration::from_millis(1);

    pub(crate) fn new() -> Self {
        Backoff { next: Self::FIRST }
    }

    pub(crate) fn reset(&mut self) {
        *self = Backoff::new();
    }

    /// How long to wait now.
    pub(crate) fn next(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(Self::LAST);
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_tell_lists_apart() {
        let a = fingerprint(&[1u32, 2, 3]).unwrap();
        assert_eq!(a, fingerprint(&[1u32, 2, 3]).unwrap());
        assert_ne!(a, fingerprint(&[1u32, 3, 2]).unwrap());
        assert_ne!(a, fingerprint(&[1u32, 2]).unwrap());
        assert_ne!(
            fingerprint(&["ab".to_string()]).unwrap(),
            fingerprint(&["ba".to_string()]).unwrap()
        );
    }

    #[test]
    fn the_first_differing_process_is_named() {
        assert!(check_lists(&[(3, 7), (3, 7)]).is_ok());
        let e = check_lists(&[(3, 7), (3, 7), (4, 9), (2, 1)]).unwrap_err();
        assert_eq!(e.rank(), Some(2));
        assert!(e.to_string().contains("4 tasks"), "{e}");
    }

    #[test]
    fn backoff_grows_to_a_millisecond() {
        let mut b = Backoff::new();
        assert_eq!(b.next(), Backoff::FIRST);
        assert_eq!(b.next(), 2 * Backoff::FIRST);
        for _ in 0..20 {
            b.next();
        }
        assert_eq!(b.next(), Backoff::LAST);
        b.reset();
        assert_eq!(b.next(), Backoff::FIRST);
    }

    #[test]
    fn message_sizes_count_the_payload() {
        let up = Up::Batch {
            seq: 1,
            count: 2,
            results: vec![0; 1000],
            want: 1,
            needed: 0,
        };
        let n = encoded_size(&up);
        assert_eq!(n as usize, postcard::to_stdvec(&up).unwrap().len());
        assert!((1000..1020).contains(&n));
    }
}
