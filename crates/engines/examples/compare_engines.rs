//! Interleaved comparison of the engines on the benchmark's workloads (see
//! `benches/engines.rs`): each round runs every engine once, in turn, so a machine whose load
//! drifts (a shared build machine) affects all engines alike; medians over rounds and their
//! ratios to the serial engine are printed as a markdown table.
//!
//! `cargo run --release -p prism-engines --example compare_engines [ROUNDS]`
//!
//! Under `mpirun -n N` (built with `--features mpi`) it compares the multi-process engines
//! instead, and also prints the fraction of time in communication summed over processes.
//! With `COMPARE_VERBOSE` set in the environment, every run's per-process counters are printed.

use prism_engines::{
    AnyEngine, Engine, HybridEngine, MpiEngine, MultiThreadEngine, Schedule, SerialEngine,
};
use std::time::{Duration, Instant};

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn burn(seed: u64, units: u64) -> u64 {
    let mut h = seed;
    for _ in 0..units * 1024 {
        h = mix(h);
    }
    h
}

/// The same heavy-tailed cost as the benchmark.
fn cost(i: u64) -> u64 {
    let u = ((mix(i) >> 11) + 1) as f64 / (1u64 << 53) as f64;
    (1.0 / (u * u)).min(200.0) as u64
}

/// Work units of task `i`.
type Cost = dyn Fn(u64) -> u64 + Sync;

fn run(engine: &AnyEngine, tasks: &[u64], units: &Cost) -> (Duration, f64, u64) {
    let mut acc = 0u64;
    let t0 = Instant::now();
    let stats = engine
        .run_indexed(
            tasks,
            |&i| Ok::<_, String>(burn(i, units(i))),
            |_, h| {
                acc ^= h;
                Ok(())
            },
        )
        .expect("run");
    std::hint::black_box(acc);
    if std::env::var_os("COMPARE_VERBOSE").is_some() && !stats.all.is_empty() {
        eprintln!("{:#?}", stats.all);
    }
    (t0.elapsed(), stats.comm_fraction(), stats.messages_sent())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rounds: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(15);
    let universe = prism_comm::init()?;
    let world = universe.world();
    let many = world.size() > 1;
    let engines: Vec<(&str, AnyEngine)> = if many {
        vec![
            ("mpi dynamic", MpiEngine::new(&world)?.into()),
            (
                "mpi static",
                MpiEngine::new(&world)?
                    .with_schedule(Schedule::StaticRoundRobin)
                    .into(),
            ),
            ("hybrid(1) dynamic", HybridEngine::new(&world, 1)?.into()),
        ]
    } else {
        vec![
            ("serial", SerialEngine::new().into()),
            ("threads(2) dynamic", MultiThreadEngine::new(2).into()),
            (
                "threads(2) static",
                MultiThreadEngine::new(2)
                    .with_schedule(Schedule::StaticRoundRobin)
                    .into(),
            ),
            (
                "hybrid(2) dynamic, 1 process",
                HybridEngine::new(&world, 2)?.into(),
            ),
        ]
    };
    let uneven: Vec<u64> = (0..256).collect();
    let tiny: Vec<u64> = (0..20_000).collect();
    let workloads: [(&str, &[u64], &Cost); 2] = [
        ("uneven (256 heavy-tailed tasks)", &uneven, &cost),
        ("tiny (20,000 empty tasks)", &tiny, &|_| 0),
    ];
    let root = world.is_root();
    if root {
        println!(
            "{} processes, load average before: {}",
            world.size(),
            load()
        );
    }
    for (label, tasks, units) in workloads {
        let mut times = vec![Vec::new(); engines.len()];
        let mut comm = vec![Vec::new(); engines.len()];
        let mut messages = vec![0; engines.len()];
        for _ in 0..rounds {
            for (k, (_, e)) in engines.iter().enumerate() {
                let (t, c, m) = run(e, tasks, units);
                times[k].push(t);
                comm[k].push(Duration::from_secs_f64(c));
                messages[k] = m;
            }
        }
        if !root {
            continue;
        }
        let medians: Vec<Duration> = times.into_iter().map(median).collect();
        let comm: Vec<Duration> = comm.into_iter().map(median).collect();
        println!("\n{label}, median of {rounds} interleaved rounds\n");
        println!("| engine | median | first / this | time in communication | messages |");
        println!("| --- | ---: | ---: | ---: | ---: |");
        for (k, (name, _)) in engines.iter().enumerate() {
            println!(
                "| {name} | {:.2} ms | {:.2} | {:.2} % | {} |",
                medians[k].as_secs_f64() * 1e3,
                medians[0].as_secs_f64() / medians[k].as_secs_f64(),
                comm[k].as_secs_f64() * 100.0,
                messages[k]
            );
        }
    }
    if root {
        println!("\nload average after: {}", load());
    }
    Ok(())
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_string())
}
