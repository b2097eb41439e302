//! Chunking: how the index range `0..n` is cut into chunks of consecutive indices, and the
//! lock-free counter that hands them out.
//!
//! Automatic sizes follow *guided* scheduling: most of the range goes out in chunks of about
//! `n / (8 W)` indices (`W` workers in all processes, SKIRT's "about 8 chunks per worker"), and
//! once less than a quarter of the range is left the chunks shrink with what remains (half of
//! the remainder shared among the workers, down to an eighth of the base size), so the last
//! chunks, which decide when the slowest worker finishes, are short. An explicit size gives
//! equal chunks (the last one shorter).

use std::sync::atomic::{AtomicUsize, Ordering};

/// Fraction of the base chunk size below which tail chunks do not shrink.
const MIN_CHUNK_DIVISOR: usize = 8;
/// Chunks per worker in the body of the range.
const CHUNKS_PER_WORKER: usize = 8;

/// How chunk sizes are chosen for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkPlan {
    n: usize,
    workers: usize,
    /// Size of chunks in the body of the range (automatic) or of every chunk (explicit).
    base: usize,
    /// Smallest tail chunk (automatic); equal to `base` when explicit.
    min: usize,
    explicit: bool,
}

impl ChunkPlan {
    /// Automatic (guided) chunk sizes for `n` tasks shared by `workers` workers in all.
    pub fn auto(n: usize, workers: usize) -> ChunkPlan {
        let workers = workers.max(1);
        let base = n.div_ceil(CHUNKS_PER_WORKER * workers).max(1);
        let min = (base / MIN_CHUNK_DIVISOR).max(1);
        ChunkPlan {
            n,
            workers,
            base,
            min,
            explicit: false,
        }
    }

    /// Chunks of exactly `size` indices (the last may be shorter). `size` must be at least 1.
    pub fn fixed(n: usize, workers: usize, size: usize) -> ChunkPlan {
        let size = size.max(1);
        ChunkPlan {
            n,
            workers: workers.max(1),
            base: size,
            min: size,
            explicit: true,
        }
    }

    /// Number of task indices.
    pub fn len(&self) -> usize {
        self.n
    }

    /// True if there are no tasks.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Number of workers the sizes were planned for.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// The size of the chunks in the body of the range.
    pub fn base_size(&self) -> usize {
        self.base
    }

    /// Size of the chunk that starts at `next` (0 when `next >= n`).
    pub fn size_at(&self, next: usize) -> usize {
        if next >= self.n {
            return 0;
        }
        let remaining = self.n - next;
        let size = if self.explicit {
            self.base
        } else {
            (remaining / (2 * self.workers)).clamp(self.min, self.base)
        };
        size.min(remaining)
    }

    /// All chunks `(first, count)` in order, as the counter would hand them out.
    pub fn chunks(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        let mut next = 0;
        std::iter::from_fn(move || {
            let size = self.size_at(next);
            if size == 0 {
                return None;
            }
            let chunk = (next, size);
            next += size;
            Some(chunk)
        })
    }
}

/// Hands out the chunks of a [`ChunkPlan`] to any number of threads, each chunk exactly once,
/// with one compare-and-swap per chunk and no lock.
#[derive(Debug)]
pub struct ChunkCounter {
    plan: ChunkPlan,
    next: AtomicUsize,
}

impl ChunkCounter {
    /// A counter at the start of the range.
    pub fn new(plan: ChunkPlan) -> ChunkCounter {
        ChunkCounter {
            plan,
            next: AtomicUsize::new(0),
        }
    }

    /// The plan the chunks follow.
    pub fn plan(&self) -> &ChunkPlan {
        &self.plan
    }

    /// The next chunk `(first, count)`, or `None` when the range is exhausted.
    pub fn next_chunk(&self) -> Option<(usize, usize)> {
        let mut next = self.next.load(Ordering::Relaxed);
        loop {
            let size = self.plan.size_at(next);
            if size == 0 {
                return None;
            }
            // Relaxed suffices: the counter only partitions indices; the data each task
            // touches is published by the thread joins / messages that end the call.
            match self.next.compare_exchange_weak(
                next,
                next + size,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some((next, size)),
                Err(actual) => next = actual,
            }
        }
    }

    /// Marks the range exhausted so later requests get `None` (used to stop after a failure).
    pub fn exhaust(&self) {
        self.next.store(self.plan.n, Ordering::Relaxed);
    }

    /// Indices handed out so far.
    pub fn handed_out(&self) -> usize {
        self.next.load(Ordering::Relaxed).min(self.plan.n)
    }

    /// Chunks left to hand out: exact for fixed sizes, a lower bound for automatic ones
    /// (their sizes only shrink). What a scheduler holding back prefetches near the end of
    /// the range compares with its holders.
    pub fn chunks_left(&self) -> usize {
        let next = self.handed_out();
        match self.plan.size_at(next) {
            0 => 0,
            size => (self.plan.n - next).div_ceil(size),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn covers_once(plan: ChunkPlan) {
        let mut seen = vec![0u8; plan.len()];
        let mut expect_first = 0;
        for (first, count) in plan.chunks() {
            assert_eq!(first, expect_first, "chunks must be consecutive");
            assert!(count >= 1);
            for s in &mut seen[first..first + count] {
                *s += 1;
            }
            expect_first = first + count;
        }
        assert!(seen.iter().all(|&s| s == 1), "{plan:?} misses or repeats");
    }

    #[test]
    fn every_index_exactly_once() {
        for n in [0, 1, 2, 3, 7, 10, 64, 100, 999, 12345] {
            for w in 1..=9 {
                covers_once(ChunkPlan::auto(n, w));
                for size in [1, 2, 5, 1000] {
                    covers_once(ChunkPlan::fixed(n, w, size));
                }
            }
        }
    }

    #[test]
    fn about_eight_chunks_per_worker_with_a_shrinking_tail() {
        let plan = ChunkPlan::auto(1_000_000, 4);
        let sizes: Vec<usize> = plan.chunks().map(|c| c.1).collect();
        assert_eq!(sizes[0], 1_000_000 / 32);
        // The body takes 3/4 of the range in base-size chunks (24 of them), the tail shrinks.
        assert!(
            sizes.len() >= 32 && sizes.len() <= 80,
            "{} chunks",
            sizes.len()
        );
        assert!(sizes.windows(2).all(|w| w[1] <= w[0]), "sizes never grow");
        assert!(*sizes.last().unwrap() <= plan.base_size() / 8 + 1);
    }

    /// Parallel efficiency of the plan when each chunk goes to the worker that frees up
    /// first (what the dynamic counter does), for task costs `cost(i)`.
    fn simulated_efficiency(plan: ChunkPlan, cost: impl Fn(usize) -> f64) -> f64 {
        let mut busy_until = vec![0.0f64; plan.workers()];
        for (first, count) in plan.chunks() {
            let w = (0..busy_until.len())
                .min_by(|&a, &b| busy_until[a].total_cmp(&busy_until[b]))
                .unwrap();
            busy_until[w] += (first..first + count).map(&cost).sum::<f64>();
        }
        let total: f64 = (0..plan.len()).map(&cost).sum();
        let makespan = busy_until.iter().copied().fold(0.0, f64::max);
        total / (plan.workers() as f64 * makespan)
    }

    #[test]
    fn guided_sizes_balance_skewed_costs() {
        // Cost growing as index squared: the dearest tasks come last, where chunks are small.
        for n in [256, 1000, 10_000] {
            for w in [2, 3, 4] {
                let plan = ChunkPlan::auto(n, w);
                let skewed = simulated_efficiency(plan, |i| ((i + 1) * (i + 1)) as f64);
                let flat = simulated_efficiency(plan, |_| 1.0);
                assert!(
                    skewed >= 0.97,
                    "n {n} w {w}: efficiency {skewed} with cost i^2"
                );
                assert!(
                    flat >= 0.99,
                    "n {n} w {w}: efficiency {flat} with equal costs"
                );
            }
        }
        // Equal chunks of the same count do worse on the skewed costs: guided is the point.
        let even = ChunkPlan::fixed(1000, 2, 1000 / 16);
        let skewed_even = simulated_efficiency(even, |i| ((i + 1) * (i + 1)) as f64);
        let skewed_guided =
            simulated_efficiency(ChunkPlan::auto(1000, 2), |i| ((i + 1) * (i + 1)) as f64);
        assert!(
            skewed_guided > skewed_even,
            "{skewed_guided} vs {skewed_even}"
        );
    }

    #[test]
    fn fixed_sizes_are_equal() {
        let plan = ChunkPlan::fixed(10, 3, 4);
        assert_eq!(
            plan.chunks().collect::<Vec<_>>(),
            vec![(0, 4), (4, 4), (8, 2)]
        );
    }

    #[test]
    fn counter_under_contention_hands_out_each_index_once() {
        let n = 200_000;
        let counter = ChunkCounter::new(ChunkPlan::fixed(n, 4, 3));
        let hits: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    while let Some((first, count)) = counter.next_chunk() {
                        for h in &hits[first..first + count] {
                            h.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
        assert_eq!(counter.handed_out(), n);
        assert_eq!(counter.next_chunk(), None);
    }

    #[test]
    fn chunks_left_counts_what_is_left_and_never_more() {
        let counter = ChunkCounter::new(ChunkPlan::fixed(10, 2, 3));
        for left in [4, 3, 2, 1, 0] {
            assert_eq!(counter.chunks_left(), left);
            counter.next_chunk();
        }
        for n in [1usize, 7, 100, 12_345] {
            let counter = ChunkCounter::new(ChunkPlan::auto(n, 3));
            let mut actual = counter.plan().chunks().count();
            loop {
                assert!(counter.chunks_left() <= actual, "n {n}");
                if counter.next_chunk().is_none() {
                    break;
                }
                actual -= 1;
            }
            assert_eq!(counter.chunks_left(), 0);
        }
    }

    #[test]
    fn exhaust_stops_the_counter() {
        let counter = ChunkCounter::new(ChunkPlan::auto(100, 2));
        assert!(counter.next_chunk().is_some());
        counter.exhaust();
        assert_eq!(counter.next_chunk(), None);
    }
}
