//! Overhead and load balance of `Parallel::call`.
//!
//! * `overhead`: 10^6 trivial tasks (one hash each) through `call` on a 2-thread MultiThread
//!   parallel against a plain rayon `par_iter` on a 2-thread pool doing the same hashing.
//! * `balance`: 256 tasks whose cost grows as index², with 1 and 2 threads; parallel
//!   efficiency = t(1) / (2 t(2)).
//!
//! Runs are short (10 samples) so the whole bench stays under a minute.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use prism_tasking::{mix64, ParallelFactory, TaskMode};
use rayon::prelude::*;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const N_TRIVIAL: usize = 1_000_000;

fn overhead(c: &mut Criterion) {
    let mut g = c.benchmark_group("overhead_1e6_trivial_tasks");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let factory = ParallelFactory::single_process(2).expect("2 threads");
    let parallel = factory.parallel(TaskMode::Distributed);
    g.bench_function("prism_call_2_threads", |b| {
        b.iter(|| {
            let total = AtomicU64::new(0);
            parallel
                .call(N_TRIVIAL, |first, count| {
                    let s =
                        (first..first + count).fold(0u64, |a, i| a.wrapping_add(mix64(i as u64)));
                    total.fetch_add(s, Ordering::Relaxed);
                })
                .expect("no task fails");
            black_box(total.load(Ordering::Relaxed))
        })
    });
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .expect("pool");
    g.bench_function("rayon_par_iter_2_threads", |b| {
        b.iter(|| {
            let s = pool.install(|| {
                (0..N_TRIVIAL)
                    .into_par_iter()
                    .map(|i| mix64(i as u64))
                    .reduce(|| 0, u64::wrapping_add)
            });
            black_box(s)
        })
    });
    g.finish();
}

/// Work proportional to `units`: a chain of hashes the optimiser cannot skip.
fn burn(units: u64) -> u64 {
    let mut x = units;
    for _ in 0..units {
        x = mix64(x);
    }
    x
}

fn balance(c: &mut Criterion) {
    let mut g = c.benchmark_group("balance_cost_index_squared");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    let n = 256usize;
    for threads in [1usize, 2] {
        let factory = ParallelFactory::single_process(threads).expect("threads");
        let parallel = factory.parallel(TaskMode::Distributed);
        g.bench_with_input(BenchmarkId::new("threads", threads), &threads, |b, _| {
            b.iter(|| {
                let total = AtomicU64::new(0);
                parallel
                    .call_each(n, |i| {
                        let units = (i as u64 + 1).pow(2) * 4;
                        total.fetch_add(burn(units), Ordering::Relaxed);
                    })
                    .expect("no task fails");
                black_box(total.load(Ordering::Relaxed))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, overhead, balance);
criterion_main!(benches);
