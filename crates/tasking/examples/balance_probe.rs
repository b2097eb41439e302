//! Load-balance probe: tasks whose cost grows as index² (the last tasks are the dearest)
//! through a Distributed call; prints the wall time. Parallel efficiency with P workers is
//! t(1 worker) / (P t(P workers)); compare e.g.
//!
//! ```text
//! cargo build --release -p prism-tasking --features mpi --example balance_probe
//! target/release/examples/balance_probe --threads 1
//! target/release/examples/balance_probe --threads 2
//! mpirun -n 2 target/release/examples/balance_probe --threads 1
//! ```
//!
//! Options: `--threads N` (per process, default 1), `--tasks N` (default 256), `--scale K`
//! (work units per index², default 40), `--repeat R` (default 3; the median is printed).

use prism_tasking::{mix64, CallOptions, ParallelFactory, ProgressConfig};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

fn burn(units: u64) -> u64 {
    let mut x = units;
    for _ in 0..units {
        x = mix64(x);
    }
    x
}

fn main() {
    let mut threads = 1usize;
    let mut tasks = 256usize;
    let mut scale = 40u64;
    let mut repeat = 3usize;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let v = it.next().and_then(|v| v.parse::<u64>().ok());
        match (a.as_str(), v) {
            ("--threads", Some(v)) if v > 0 => threads = v as usize,
            ("--tasks", Some(v)) => tasks = v as usize,
            ("--scale", Some(v)) => scale = v,
            ("--repeat", Some(v)) if v > 0 => repeat = v as usize,
            _ => {
                eprintln!("balance_probe: bad argument {a:?}\nusage: balance_probe [--threads N] [--tasks N] [--scale K] [--repeat R]");
                std::process::exit(2);
            }
        }
    }
    let universe = prism_comm::init().unwrap_or_else(|e| {
        eprintln!("balance_probe: {e}");
        std::process::exit(1)
    });
    let world = universe.world();
    let factory = ParallelFactory::new(&world, threads)
        .unwrap_or_else(|e| {
            eprintln!("balance_probe: {e}");
            world.abort(1)
        })
        .with_progress(ProgressConfig::quiet());
    let p = factory.distributed();
    let mut times = Vec::new();
    let mut check = 0;
    for _ in 0..repeat {
        world.barrier().expect("barrier");
        let t0 = Instant::now();
        let sum = AtomicU64::new(0);
        let r = p.call_with(&CallOptions::new(), tasks, |first, count| {
            for i in first..first + count {
                let units = (i as u64 + 1).pow(2) * scale;
                sum.fetch_add(burn(units) & 0xff, Ordering::Relaxed);
            }
        });
        world.barrier().expect("barrier");
        times.push(t0.elapsed().as_secs_f64());
        if let Err(e) = r {
            eprintln!("balance_probe: {e}");
            world.abort(1);
        }
        let mut s = [sum.load(Ordering::Relaxed)];
        let _ = world.sum_to_all_u64(&mut s);
        check = s[0];
    }
    times.sort_by(f64::total_cmp);
    if world.is_root() {
        println!(
            "balance_probe: {} process(es) x {} thread(s) ({:?}), {} tasks: median {:.4} s (runs {:?}) check {}",
            world.size(),
            threads,
            p.kind(),
            tasks,
            times[times.len() / 2],
            times.iter().map(|t| format!("{t:.4}")).collect::<Vec<_>>(),
            check
        );
    }
}
