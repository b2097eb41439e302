//! Multi-process test (run by CI under `mpirun -n 1..4`): waiting costs no core. Tasks that
//! only sleep run through a Distributed call; the CPU time each process uses meanwhile (its
//! communication thread serving or requesting chunks, its workers waiting) must stay a small
//! fraction of the wall time. A communication thread that spun would use about 100%.
//! Linux only (reads /proc/self/stat); elsewhere it checks only that the call succeeds.

use prism_tasking::{CallOptions, ParallelFactory, ProgressConfig};
use std::time::{Duration, Instant};

/// User + system CPU time of this process in clock ticks (usually 1/100 s).
fn cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn main() {
    let universe = prism_comm::init().unwrap_or_else(|e| {
        eprintln!("mpitest_idle_cpu: {e}");
        std::process::exit(1)
    });
    let world = universe.world();
    let rank = world.rank();
    for threads in [1usize, 2] {
        let factory = ParallelFactory::new(&world, threads)
            .unwrap_or_else(|e| {
                eprintln!("mpitest_idle_cpu: {e}");
                world.abort(1)
            })
            .with_progress(ProgressConfig::quiet());
        let p = factory.distributed();
        // About 0.6 s of sleeping per worker whatever the number of workers.
        let n = 60 * factory.total_workers();
        world.barrier().expect("barrier");
        let (t0, c0) = (Instant::now(), cpu_ticks());
        let r = p.call_with(&CallOptions::new().chunk_size(1), n, |_, _| {
            std::thread::sleep(Duration::from_millis(10));
        });
        let (wall, c1) = (t0.elapsed(), cpu_ticks());
        if let Err(e) = r {
            eprintln!("mpitest_idle_cpu: rank {rank}: {e}");
            world.abort(1);
        }
        if let (Some(c0), Some(c1)) = (c0, c1) {
            let cpu = (c1 - c0) as f64 / 100.0;
            let frac = cpu / wall.as_secs_f64();
            println!(
                "mpitest_idle_cpu: rank {rank}, {threads} thread(s): {cpu:.2} s CPU in {:.2} s wall ({:.0}%)",
                wall.as_secs_f64(),
                100.0 * frac
            );
            // Generous: the machine may be oversubscribed and tick accounting is coarse.
            if frac > 0.35 {
                eprintln!(
                    "mpitest_idle_cpu: rank {rank}: FAILED: waiting used {:.0}% of a core",
                    100.0 * frac
                );
                world.abort(1);
            }
        }
    }
    world.barrier().expect("barrier");
    if rank == 0 {
        println!(
            "mpitest_idle_cpu: {} processes: all checks passed",
            world.size()
        );
    }
}
