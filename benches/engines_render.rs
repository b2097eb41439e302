//! The Cornell box rendered through the observe loop on each single-process engine, side by
//! side: Serial, MultiThread(2) and Hybrid with one process and 2 threads (whose overhead over
//! MultiThread is the engines' cost of being ready for MPI). `cargo bench --bench engines_render`.

use criterion::{criterion_group, criterion_main, Criterion};
use prism::engines::{AnyEngine, HybridEngine, MultiThreadEngine, SerialEngine};
use prism::observe::{observe, Hooks, ObserveSettings};
use prism::tracer::{cornell::cornell_box, integrator::RenderSettings, AdaptiveSampler};
use std::time::Duration;

fn bench(c: &mut Criterion) {
    let universe = prism::comm::init().expect("init");
    let world = universe.world();
    let scene = cornell_box();
    let settings = ObserveSettings {
        width: 96,
        height: 96,
        tile: 16,
        samples_per_pass: 4,
        max_passes: 1,
        seed: 1,
        sampler: AdaptiveSampler::default(),
        render: RenderSettings::default(),
        deadline: None,
        stop_requested: None,
    };
    let engines: Vec<(&str, AnyEngine)> = vec![
        ("serial", SerialEngine::new().into()),
        ("threads-2", MultiThreadEngine::new(2).into()),
        (
            "hybrid-1x2",
            HybridEngine::new(&world, 2).expect("hybrid").into(),
        ),
    ];
    let mut group = c.benchmark_group("cornell_96x96x4");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(4));
    for (name, engine) in &engines {
        group.bench_function(*name, |b| {
            b.iter(|| {
                observe(
                    engine,
                    &world,
                    &scene,
                    &settings,
                    Hooks {
                        after_pass: &mut |_, _| Ok(()),
                        before_pass: &mut |_, _| {},
                        on_result: &mut |_| {},
                        fail_on_rank: None,
                    },
                )
                .expect("render")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
