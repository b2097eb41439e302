//! What a run cost: times, tasks and traffic, per process and (on the root) for every process.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Counters of one process for one run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessStats {
    /// Rank of the process.
    pub rank: usize,
    /// Render threads it ran.
    pub threads: usize,
    /// Tasks it rendered.
    pub rendered: usize,
    /// Wall-clock time of its `run` call.
    pub wall: Duration,
    /// Time its render threads spent in `render`, summed over threads.
    pub render_time: Duration,
    /// Time its render threads spent waiting for work to be handed out, summed over threads:
    /// under dynamic scheduling on a process other than the root, the latency of chunk
    /// requests that prefetching did not hide.
    pub wait_time: Duration,
    /// Time its main thread spent in `update` (root only).
    pub update_time: Duration,
    /// Time its main thread spent communicating: message calls, encoding and decoding of
    /// batches, completing sends at the end. Waiting with nothing to do is not counted, nor
    /// is the opening collective (see `sync_time`).
    pub comm_time: Duration,
    /// Time in the run's opening collective (every process compares task lists), which is
    /// mostly waiting for the last process to arrive: a measure of skew between processes.
    pub sync_time: Duration,
    /// Messages it sent. (On a process other than the root, these counters travel to the root
    /// in its last message, which they therefore do not count.)
    pub messages_sent: u64,
    /// Payload bytes it sent.
    pub bytes_sent: u64,
    /// Messages it received.
    pub messages_received: u64,
    /// Payload bytes it received.
    pub bytes_received: u64,
    /// Largest number of results held at once between its render threads and main thread.
    pub peak_outbox_results: usize,
}

impl ProcessStats {
    /// Adds another run's counters of the same process (times, counts and traffic summed; the
    /// outbox peak is the larger of the two).
    pub fn accumulate(&mut self, other: &ProcessStats) {
        self.rank = other.rank;
        self.threads = other.threads;
        self.rendered += other.rendered;
        self.wall += other.wall;
        self.render_time += other.render_time;
        self.wait_time += other.wait_time;
        self.update_time += other.update_time;
        self.comm_time += other.comm_time;
        self.sync_time += other.sync_time;
        self.messages_sent += other.messages_sent;
        self.bytes_sent += other.bytes_sent;
        self.messages_received += other.messages_received;
        self.bytes_received += other.bytes_received;
        self.peak_outbox_results = self.peak_outbox_results.max(other.peak_outbox_results);
    }
}

/// The outcome of a successful run on one process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Tasks in the run (on every process).
    pub tasks: usize,
    /// Render workers in all processes.
    pub workers: usize,
    /// Processes in the run.
    pub processes: usize,
    /// This process's counters.
    pub local: ProcessStats,
    /// Every process's counters, in rank order, on the root; empty elsewhere.
    pub all: Vec<ProcessStats>,
}

impl RunStats {
    /// Wall-clock time of this process's run.
    pub fn wall(&self) -> Duration {
        self.local.wall
    }

    /// Communication time as a fraction of wall time, summed over every process (on the
    /// root), or for this process alone (elsewhere). 0 for an empty run.
    pub fn comm_fraction(&self) -> f64 {
        let procs: &[ProcessStats] = if self.all.is_empty() {
            std::slice::from_ref(&self.local)
        } else {
            &self.all
        };
        let comm: f64 = procs.iter().map(|p| p.comm_time.as_secs_f64()).sum();
        let wall: f64 = procs.iter().map(|p| p.wall.as_secs_f64()).sum();
        if wall > 0.0 {
            comm / wall
        } else {
            0.0
        }
    }

    /// Messages sent by every process (root) or by this one (elsewhere).
    pub fn messages_sent(&self) -> u64 {
        if self.all.is_empty() {
            self.local.messages_sent
        } else {
            self.all.iter().map(|p| p.messages_sent).sum()
        }
    }

    /// Bytes sent by every process (root) or by this one (elsewhere).
    pub fn bytes_sent(&self) -> u64 {
        if self.all.is_empty() {
            self.local.bytes_sent
        } else {
            self.all.iter().map(|p| p.bytes_sent).sum()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions_and_sums_over_processes() {
        let p = |rank, comm_ms, msgs| ProcessStats {
            rank,
            wall: Duration::from_millis(100),
            comm_time: Duration::from_millis(comm_ms),
            messages_sent: msgs,
            bytes_sent: msgs * 10,
            ..ProcessStats::default()
        };
        let mut s = RunStats {
            local: p(0, 2, 3),
            ..RunStats::default()
        };
        assert!((s.comm_fraction() - 0.02).abs() < 1e-12);
        assert_eq!(s.messages_sent(), 3);
        s.all = vec![p(0, 2, 3), p(1, 6, 5)];
        assert!((s.comm_fraction() - 0.04).abs() < 1e-12);
        assert_eq!(s.messages_sent(), 8);
        assert_eq!(s.bytes_sent(), 80);
        assert_eq!(RunStats::default().comm_fraction(), 0.0);
    }

    #[test]
    fn accumulate_sums_runs_and_keeps_the_peak() {
        let run = |ms, peak| ProcessStats {
            rank: 2,
            threads: 3,
            rendered: 4,
            wall: Duration::from_millis(ms),
            wait_time: Duration::from_millis(1),
            comm_time: Duration::from_millis(ms / 10),
            messages_sent: 5,
            peak_outbox_results: peak,
            ..ProcessStats::default()
        };
        let mut total = ProcessStats::default();
        total.accumulate(&run(100, 7));
        total.accumulate(&run(50, 3));
        assert_eq!((total.rank, total.threads, total.rendered), (2, 3, 8));
        assert_eq!(total.wall, Duration::from_millis(150));
        assert_eq!(total.wait_time, Duration::from_millis(2));
        assert_eq!(total.comm_time, Duration::from_millis(15));
        assert_eq!(total.messages_sent, 10);
        assert_eq!(total.peak_outbox_results, 7);
    }
}
