//! Combining results of tasks run on many threads: thread-local accumulators merged after a
//! call (SKIRT's `ThreadLocalMember`) and a lock-free atomic add for `f64` (SKIRT's
//! `LockFree::add`). Across processes, combine the merged per-process arrays with
//! `Communicator::sum_to_all_*` / `sum_to_root_*`.
//!
//! Floating-point addition is not associative: sums formed by threads in a scheduling-dependent
//! order differ in the last bits between runs. For bit-identical results, accumulate integers
//! (counts, fixed-point values) or keep per-task partial sums and add them in task order.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

/// An `f64` that many threads can add to without a lock.
///
/// ```
/// use prism_tasking::AtomicF64;
/// let total = AtomicF64::new(0.0);
/// std::thread::scope(|s| {
///     for _ in 0..4 {
///         s.spawn(|| for _ in 0..1000 { total.fetch_add(0.5); });
///     }
/// });
/// assert_eq!(total.load(), 2000.0);
/// ```
#[derive(Debug, Default)]
pub struct AtomicF64 {
    bits: AtomicU64,
}

impl AtomicF64 {
    /// A new cell holding `value`.
    pub fn new(value: f64) -> AtomicF64 {
        AtomicF64 {
            bits: AtomicU64::new(value.to_bits()),
        }
    }

    /// The current value.
    pub fn load(&self) -> f64 {
        f64::from_bits(self.bits.load(Ordering::Relaxed))
    }

    /// Replaces the value.
    pub fn store(&self, value: f64) {
        self.bits.store(value.to_bits(), Ordering::Relaxed);
    }

    /// Adds `delta` atomically and returns the previous value.
    #[inline]
    pub fn fetch_add(&self, delta: f64) -> f64 {
        // Relaxed: the accumulated value is read after the call, whose end synchronises.
        let mut current = self.bits.load(Ordering::Relaxed);
        loop {
            let new = (f64::from_bits(current) + delta).to_bits();
            match self.bits.compare_exchange_weak(
                current,
                new,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(prev) => return f64::from_bits(prev),
                Err(actual) => current = actual,
            }
        }
    }

    /// The value, consuming the cell.
    pub fn into_inner(self) -> f64 {
        f64::from_bits(self.bits.into_inner())
    }
}

/// `len` atomic cells initialised to zero, e.g. a shared histogram.
pub fn atomic_f64_vec(len: usize) -> Vec<AtomicF64> {
    (0..len).map(|_| AtomicF64::new(0.0)).collect()
}

/// The values of a slice of atomic cells.
pub fn atomic_f64_values(cells: &[AtomicF64]) -> Vec<f64> {
    cells.iter().map(AtomicF64::load).collect()
}

/// One accumulator per thread, created on first use by a thread and merged after the call.
///
/// Each thread works on its own copy without synchronisation; [`ThreadLocalAcc::merge`] folds
/// the copies together once the parallel call has returned.
///
/// ```
/// use prism_tasking::{ParallelFactory, TaskMode, ThreadLocalAcc};
/// let factory = ParallelFactory::single_process(3).unwrap();
/// let hist = ThreadLocalAcc::new(|| vec![0u64; 4]);
/// factory.parallel(TaskMode::Distributed).call(1000, |first, count| {
///     hist.with(|h| for i in first..first + count { h[i % 4] += 1 });
/// }).unwrap();
/// let total = hist.merge(|a, b| for (x, y) in a.iter_mut().zip(b) { *x += y });
/// assert_eq!(total, Some(vec![250; 4]));
/// ```
pub struct ThreadLocalAcc<T: Send> {
    slots: thread_local::ThreadLocal<RefCell<T>>,
    init: Box<dyn Fn() -> T + Send + Sync>,
}

impl<T: Send> ThreadLocalAcc<T> {
    /// Accumulators that each start as `init()`.
    pub fn new(init: impl Fn() -> T + Send + Sync + 'static) -> ThreadLocalAcc<T> {
        ThreadLocalAcc {
            slots: thread_local::ThreadLocal::new(),
            init: Box::new(init),
        }
    }

    /// Runs `f` on the calling thread's accumulator (created on first use). Call it once per
    /// chunk rather than once per index to keep the lookup out of the hot loop.
    ///
    /// Re-entrant use from inside `f` on the same thread panics (the accumulator is borrowed).
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let cell = self.slots.get_or(|| RefCell::new((self.init)()));
        f(&mut cell.borrow_mut())
    }

    /// Number of accumulators created so far (at most one per thread alive at a time: a
    /// thread that has exited leaves its accumulator, values included, to later threads).
    pub fn slots_used(&mut self) -> usize {
        self.slots.iter_mut().count()
    }

    /// Folds all threads' accumulators into one with `merge(into, from)`; `None` if no thread
    /// used one, as on a process that ran no chunk of a Distributed call (common when there
    /// are few tasks): see [`ThreadLocalAcc::merge_or_init`]. The fold order is unspecified:
    /// use an order-independent merge (integer sums, maxima) where bit-identical results
    /// matter.
    pub fn merge(self, mut merge: impl FnMut(&mut T, T)) -> Option<T> {
        let mut out: Option<T> = None;
        for cell in self.slots {
            let value = cell.into_inner();
            match out.as_mut() {
                None => out = Some(value),
                Some(acc) => merge(acc, value),
            }
        }
        out
    }

    /// [`ThreadLocalAcc::merge`], or a fresh `init()` if no thread used an accumulator: what
    /// a process contributes to the collective that combines every process's part, whether or
    /// not it ran a chunk.
    ///
    /// ```
    /// use prism_tasking::ThreadLocalAcc;
    /// let hist = ThreadLocalAcc::new(|| vec![0u64; 4]);
    /// // No thread of this process ran a task.
    /// assert_eq!(hist.merge_or_init(|a, b| for (x, y) in a.iter_mut().zip(b) { *x += y }), vec![0; 4]);
    /// ```
    pub fn merge_or_init(self, merge: impl FnMut(&mut T, T)) -> T {
        let init = (self.init)();
        self.merge(merge).unwrap_or(init)
    }

    /// All accumulators, in unspecified order.
    pub fn into_vec(self) -> Vec<T> {
        self.slots.into_iter().map(RefCell::into_inner).collect()
    }
}

impl<T: Send> std::fmt::Debug for ThreadLocalAcc<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadLocalAcc").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_add_under_contention_loses_nothing() {
        let cells = atomic_f64_vec(3);
        std::thread::scope(|s| {
            for t in 0..4 {
                let cells = &cells;
                s.spawn(move || {
                    for i in 0..20_000 {
                        // Dyadic values: exact in any order, so the total is exact.
                        cells[i % 3].fetch_add(0.25 * (t + 1) as f64);
                    }
                });
            }
        });
        let total: f64 = atomic_f64_values(&cells).iter().sum();
        assert_eq!(total, 20_000.0 * 0.25 * 10.0);
        let a = AtomicF64::new(1.5);
        assert_eq!(a.fetch_add(2.0), 1.5);
        a.store(a.load() * 2.0);
        assert_eq!(a.into_inner(), 7.0);
    }

    #[test]
    fn thread_local_accumulators_merge_every_thread() {
        let mut acc = ThreadLocalAcc::new(|| (0u64, 0u64));
        std::thread::scope(|s| {
            for t in 0..3u64 {
                let acc = &acc;
                s.spawn(move || {
                    for _ in 0..1000 {
                        acc.with(|a| {
                            a.0 += 1;
                            a.1 += t;
                        });
                    }
                });
            }
        });
        let slots = acc.slots_used();
        assert!((1..=3).contains(&slots), "{slots} accumulators");
        let merged = acc.merge(|a, b| {
            a.0 += b.0;
            a.1 += b.1;
        });
        assert_eq!(merged, Some((3000, 3000)));
        let empty: ThreadLocalAcc<u8> = ThreadLocalAcc::new(|| 0);
        assert_eq!(empty.merge(|_, _| {}), None);
    }
}
