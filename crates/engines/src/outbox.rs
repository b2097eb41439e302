//! The bounded queue between a process's render threads and its main thread.
//!
//! It is bounded both in items and in bytes, so memory for results not yet applied or sent
//! stays bounded whatever `update` or the network do: a render thread whose result does not fit
//! waits before it takes another task. A single item larger than the byte bound is let into an
//! empty queue, so an outsized result slows the run down but cannot stall it.
//!
//! Messages the main thread has taken in its last [`Outbox::pop_batch`] still count against
//! the bound until it comes back for more, so results being applied count too: a process holds
//! at most `max_items` results between render and `update`, plus one in each render thread's
//! hands.
//!
//! The main thread waits on it with a timeout, which is how it both reacts at once to local
//! results and keeps polling the network without spinning.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// Largest group of results a render thread hands over at once.
const MAX_GROUP: usize = 16;

/// A message from a render thread to its process's main thread.
#[derive(Debug)]
pub(crate) enum Msg<P> {
    /// The result of task `index`, as `P` (the result itself on the root, its encoding
    /// elsewhere).
    Result(usize, P),
    /// The thread stopped on a failure; it takes no more tasks.
    Failed(crate::EngineError),
    /// The thread has finished: no more messages from it.
    Finished(ThreadTotals),
}

/// What one render thread did in a run, handed over with its last message.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ThreadTotals {
    pub rendered: usize,
    pub render_time: Duration,
    /// Time spent waiting for a chunk to be handed out.
    pub wait_time: Duration,
}

impl ThreadTotals {
    pub(crate) fn add_to(&self, stats: &mut crate::stats::ProcessStats) {
        stats.rendered += self.rendered;
        stats.render_time += self.render_time;
        stats.wait_time += self.wait_time;
    }
}

struct State<P> {
    items: VecDeque<(Msg<P>, usize)>,
    bytes: usize,
    /// Messages handed out by the last `pop_batch`: still being handled by the main thread.
    lent: usize,
    lent_bytes: usize,
    /// Set when the main thread stops listening: pushes fail instead of waiting.
    closed: bool,
    peak_items: usize,
    /// Waiters, so that a push or pop only wakes (a system call) when someone sleeps.
    consumer_waiting: bool,
    producers_waiting: usize,
}

/// A bounded multi-producer, single-consumer queue with blocking push and timed pop.
pub(crate) struct Outbox<P> {
    state: Mutex<State<P>>,
    not_full: Condvar,
    not_empty: Condvar,
    max_items: usize,
    max_bytes: usize,
}

impl<P> Outbox<P> {
    pub(crate) fn new(max_items: usize, max_bytes: usize) -> Self {
        Outbox {
            state: Mutex::new(State {
                items: VecDeque::new(),
                bytes: 0,
                lent: 0,
                lent_bytes: 0,
                closed: false,
                peak_items: 0,
                consumer_waiting: false,
                producers_waiting: 0,
            }),
            not_full: Condvar::new(),
            not_empty: Condvar::new(),
            max_items: max_items.max(1),
            max_bytes: max_bytes.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<P>> {
        // A panic while holding this lock can only come from the queue code itself, which
        // leaves the state consistent: go on with it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends a message of `bytes` bytes, waiting while the queue is full. Returns the message
    /// back if the main thread has closed the queue.
    ///
    /// Control messages (failures, finish notices) should pass `force = true`: they never wait,
    /// so a thread can always report how it ended.
    pub(crate) fn push(&self, msg: Msg<P>, bytes: usize, force: bool) -> Result<(), Msg<P>> {
        let mut s = self.lock();
        if !force {
            s = self.wait_for_room(s, 1, bytes);
        }
        self.append(s, msg, bytes, !force)
    }

    /// Appends a result without waiting: for a producer that is also the consumer (it checks
    /// [`Outbox::has_room`] first, since it cannot wait on itself). Counts towards the peak.
    pub(crate) fn push_unwaited(&self, msg: Msg<P>, bytes: usize) -> Result<(), Msg<P>> {
        let s = self.lock();
        self.append(s, msg, bytes, true)
    }

    fn append(
        &self,
        mut s: MutexGuard<'_, State<P>>,
        msg: Msg<P>,
        bytes: usize,
        counted: bool,
    ) -> Result<(), Msg<P>> {
        if s.closed {
            return Err(msg);
        }
        s.items.push_back((msg, bytes));
        s.bytes += bytes;
        if counted {
            s.peak_items = s.peak_items.max(s.items.len() + s.lent);
        }
        self.wake_consumer(s);
        Ok(())
    }

    /// Appends a group of results (drained from `group`) at once, waiting until all fit (or
    /// the queue is empty). Returns false if the main thread has closed the queue.
    ///
    /// Render threads group the results of short tasks: one lock and at most one wake-up per
    /// group instead of per result.
    pub(crate) fn push_group(&self, group: &mut Vec<(Msg<P>, usize)>) -> bool {
        if group.is_empty() {
            return true;
        }
        let bytes: usize = group.iter().map(|(_, b)| b).sum();
        let s = self.lock();
        let mut s = self.wait_for_room(s, group.len(), bytes);
        if s.closed {
            group.clear();
            return false;
        }
        s.items.extend(group.drain(..));
        s.bytes += bytes;
        s.peak_items = s.peak_items.max(s.items.len() + s.lent);
        self.wake_consumer(s);
        true
    }

    /// Waits until `items` messages of `bytes` bytes fit, the queue is empty or closed.
    fn wait_for_room<'a>(
        &'a self,
        mut s: MutexGuard<'a, State<P>>,
        items: usize,
        bytes: usize,
    ) -> MutexGuard<'a, State<P>> {
        while !s.closed
            && s.items.len() + s.lent > 0
            && (s.items.len() + s.lent + items > self.max_items
                || s.bytes + s.lent_bytes + bytes > self.max_bytes)
        {
            s.producers_waiting += 1;
            s = self
                .not_full
                .wait(s)
                .unwrap_or_else(PoisonError::into_inner);
            s.producers_waiting -= 1;
        }
        s
    }

    /// Whether one more result would go in without waiting, as far as its size is known
    /// beforehand (a producer that is also the consumer asks before it renders).
    pub(crate) fn has_room(&self) -> bool {
        let s = self.lock();
        s.closed
            || s.items.len() + s.lent == 0
            || (s.items.len() + s.lent < self.max_items && s.bytes + s.lent_bytes < self.max_bytes)
    }

    fn wake_consumer(&self, s: MutexGuard<'_, State<P>>) {
        let wake = s.consumer_waiting;
        drop(s);
        if wake {
            self.not_empty.notify_one();
        }
    }

    /// How many results a render thread may group, for `threads` threads sharing the queue:
    /// small enough that every thread's group fits twice.
    pub(crate) fn group_size(&self, threads: usize) -> usize {
        (self.max_items / (2 * threads.max(1))).clamp(1, MAX_GROUP)
    }

    /// Takes up to `max` messages, waiting up to `timeout` for the first one. The messages of
    /// the previous call are taken to be handled now.
    pub(crate) fn pop_batch(&self, max: usize, timeout: Duration) -> Vec<Msg<P>> {
        let mut s = self.lock();
        let returned = s.lent > 0;
        s.lent = 0;
        s.lent_bytes = 0;
        if returned && s.producers_waiting > 0 {
            self.not_full.notify_all();
        }
        if s.items.is_empty() && !timeout.is_zero() {
            s.consumer_waiting = true;
            s = self
                .not_empty
                .wait_timeout(s, timeout)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            s.consumer_waiting = false;
        }
        let take = s.items.len().min(max);
        let mut out = Vec::with_capacity(take);
        for _ in 0..take {
            if let Some((m, b)) = s.items.pop_front() {
                s.bytes -= b;
                s.lent += 1;
                s.lent_bytes += b;
                out.push(m);
            }
        }
        out
    }

    /// Waits up to `timeout` for a message, without taking it.
    pub(crate) fn wait_for_items(&self, timeout: Duration) {
        let mut s = self.lock();
        if s.items.is_empty() {
            s.consumer_waiting = true;
            s = self
                .not_empty
                .wait_timeout(s, timeout)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            s.consumer_waiting = false;
        }
    }

    /// Stops accepting messages and wakes every waiting render thread; queued messages are
    /// dropped. Used when a run ends early.
    pub(crate) fn close(&self) {
        let mut s = self.lock();
        s.closed = true;
        s.items.clear();
        s.bytes = 0;
        s.lent = 0;
        s.lent_bytes = 0;
        drop(s);
        self.not_full.notify_all();
    }

    /// The largest number of messages held at once, as seen by bounded pushes.
    pub(crate) fn peak_items(&self) -> usize {
        self.lock().peak_items
    }
}

/// Stops the render threads and releases any waiting on the outbox when dropped: held by a
/// main thread inside its thread scope, so that even if the main thread unwinds, the scope's
/// join cannot wait forever for a render thread blocked on a full outbox.
pub(crate) struct Release<'a, P> {
    pub outbox: &'a Outbox<P>,
    pub stop: &'a std::sync::atomic::AtomicBool,
}

impl<P> Drop for Release<'_, P> {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.outbox.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    fn result(i: usize) -> Msg<usize> {
        Msg::Result(i, i)
    }

    #[test]
    fn bounded_by_items_while_the_consumer_is_slow() {
        let q = Outbox::<usize>::new(3, usize::MAX);
        let pushed = AtomicUsize::new(0);
        std::thread::scope(|s| {
            s.spawn(|| {
                for i in 0..20 {
                    q.push(result(i), 0, false).unwrap();
                    pushed.fetch_add(1, Ordering::SeqCst);
                }
            });
            let mut got = Vec::new();
            while got.len() < 20 {
                std::thread::sleep(Duration::from_millis(2));
                // Never more than the bound plus the one we took.
                assert!(pushed.load(Ordering::SeqCst) <= got.len() + 3);
                for m in q.pop_batch(1, Duration::from_millis(50)) {
                    if let Msg::Result(i, _) = m {
                        got.push(i);
                    }
                }
            }
            assert_eq!(got, (0..20).collect::<Vec<_>>());
        });
        assert_eq!(q.peak_items(), 3);
    }

    #[test]
    fn bounded_by_bytes_but_an_oversized_item_passes_alone() {
        let q = Outbox::<usize>::new(100, 10);
        q.push(result(0), 25, false).unwrap(); // alone: allowed
        let t0 = Instant::now();
        std::thread::scope(|s| {
            s.spawn(|| q.push(result(1), 1, false).unwrap());
            std::thread::sleep(Duration::from_millis(30));
            assert_eq!(q.pop_batch(10, Duration::ZERO).len(), 1);
            let next = q.pop_batch(10, Duration::from_secs(5));
            assert_eq!(next.len(), 1);
        });
        assert!(t0.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn forced_messages_never_wait_and_close_releases_waiters() {
        let q = Outbox::<usize>::new(1, usize::MAX);
        q.push(result(0), 0, false).unwrap();
        q.push(
            Msg::Finished(ThreadTotals {
                rendered: 1,
                ..ThreadTotals::default()
            }),
            0,
            true,
        )
        .unwrap();
        std::thread::scope(|s| {
            let h = s.spawn(|| q.push(result(1), 0, false).is_err());
            std::thread::sleep(Duration::from_millis(10));
            q.close();
            assert!(h.join().unwrap(), "a push into a closed outbox fails");
        });
        assert!(q.pop_batch(10, Duration::ZERO).is_empty());
    }

    #[test]
    fn room_counts_items_lent_and_bytes() {
        let q = Outbox::<usize>::new(2, 10);
        assert!(q.has_room());
        q.push_unwaited(Msg::Result(0, 0), 4).unwrap();
        assert!(q.has_room());
        q.push_unwaited(Msg::Result(1, 1), 4).unwrap();
        assert!(!q.has_room(), "two items of two");
        assert_eq!(q.peak_items(), 2);
        // Taken but not yet handled: still counted until the next pop.
        assert_eq!(q.pop_batch(1, Duration::ZERO).len(), 1);
        assert!(!q.has_room());
        assert_eq!(q.pop_batch(1, Duration::ZERO).len(), 1);
        assert!(q.has_room());
        let _ = q.pop_batch(1, Duration::ZERO);
        q.push_unwaited(Msg::Result(2, 2), 10).unwrap();
        assert!(!q.has_room(), "bytes full");
        q.close();
        assert!(
            q.has_room(),
            "a closed queue refuses pushes at once: nothing to wait for"
        );
        assert!(q.push_unwaited(Msg::Result(3, 3), 1).is_err());
    }

    #[test]
    fn pop_waits_at_most_the_timeout() {
        let q = Outbox::<usize>::new(1, 1);
        let t0 = Instant::now();
        assert!(q.pop_batch(1, Duration::from_millis(20)).is_empty());
        assert!(t0.elapsed() >= Duration::from_millis(15));
    }
}
