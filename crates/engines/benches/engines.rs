//! Engines on synthetic CPU-bound tasks (`cargo bench -p prism-engines`), figures in
//! `docs/performance.md`.
//!
//! - `uneven`: 256 tasks with heavy-tailed costs (`1/u^2` for a hashed uniform `u`, capped at
//!   200 units, mean 24; about 2 µs per unit): Serial, MultiThread(2) dynamic and
//!   static, and Hybrid(2) in the one-process world (the root's whole machinery, no messages).
//! - `tiny`: 20,000 empty tasks: the per-task overhead of each engine.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use prism_engines::{AnyEngine, Engine, HybridEngine, MultiThreadEngine, Schedule, SerialEngine};
use std::hint::black_box;
use std::time::Duration;

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// CPU work proportional to `units`.
fn burn(seed: u64, units: u64) -> u64 {
    let mut h = seed;
    for _ in 0..units * 1024 {
        h = mix(h);
    }
    h
}

/// Heavy-tailed cost in units: `1/u^2` for `u` uniform in (0, 1], capped at 200.
fn cost(i: u64) -> u64 {
    let u = ((mix(i) >> 11) + 1) as f64 / (1u64 << 53) as f64;
    (1.0 / (u * u)).min(200.0) as u64
}

fn engines() -> Vec<(&'static str, AnyEngine)> {
    let world = prism_comm::init().expect("init").world();
    vec![
        ("serial", SerialEngine::new().into()),
        ("threads2-dynamic", MultiThreadEngine::new(2).into()),
        (
            "threads2-static",
            MultiThreadEngine::new(2)
                .with_schedule(Schedule::StaticRoundRobin)
                .into(),
        ),
        (
            "hybrid2-dynamic",
            HybridEngine::new(&world, 2).expect("hybrid").into(),
        ),
    ]
}

fn run(engine: &AnyEngine, tasks: &[u64], units: impl Fn(u64) -> u64 + Sync) -> u64 {
    let mut acc = 0u64;
    engine
        .run_indexed(
            tasks,
            |&i| Ok::<_, String>(burn(i, units(i))),
            |_, h| {
                acc ^= h;
                Ok(())
            },
        )
        .expect("run");
    acc
}

fn uneven(c: &mut Criterion) {
    let tasks: Vec<u64> = (0..256).collect();
    let mut g = c.benchmark_group("uneven");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    for (name, engine) in engines() {
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| black_box(run(&engine, &tasks, cost)))
        });
    }
    g.finish();
}

fn tiny(c: &mut Criterion) {
    let tasks: Vec<u64> = (0..20_000).collect();
    let mut g = c.benchmark_group("tiny");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    for (name, engine) in engines() {
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| black_box(run(&engine, &tasks, |_| 0)))
        });
    }
    g.finish();
}

criterion_group!(benches, uneven, tiny);
criterion_main!(benches);
