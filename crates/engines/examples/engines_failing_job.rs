//! A job whose run fails, for `ci/suites/engines_failure.sh`: every process must report the
//! same error (naming the process and task) and the job must end with a non-zero status, with
//! no process left behind and no hang.
//!
//! Usage: `engines_failing_job render|update|panic|ok`
//! - `render`: render fails on task 150 (or the first task the last process renders);
//! - `update`: update fails on the root for task 42;
//! - `panic`: render panics on the last process, with `abort_on_panic` installed: MPI aborts
//!   the job;
//! - `ok`: no failure (exit 0), to check the script itself.

use prism_engines::{Engine, HybridEngine, Schedule};
use std::sync::Mutex;

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let universe = match prism_comm::init() {
        Ok(u) => u,
        Err(e) => {
            eprintln!("engines_failing_job: init failed: {e}");
            std::process::exit(2);
        }
    };
    if mode == "panic" {
        universe.abort_on_panic();
    }
    let world = universe.world();
    let (rank, size) = (world.rank(), world.size());
    let engine = match HybridEngine::new(&world, 2) {
        Ok(e) => e.with_schedule(Schedule::Dynamic),
        Err(e) => {
            eprintln!("engines_failing_job: process {rank}: {e}");
            world.abort(2)
        }
    };
    let first = Mutex::new(None);
    let result = engine.run(
        (0..400u64).collect(),
        |&t| {
            std::thread::sleep(std::time::Duration::from_micros(200));
            if rank == size - 1 {
                let mut f = first.lock().unwrap_or_else(|p| p.into_inner());
                if f.is_none() {
                    *f = Some(t);
                }
                if *f == Some(t) {
                    match mode.as_str() {
                        "render" => return Err(format!("cannot shade task {t}")),
                        "panic" => panic!("render panicked on task {t}"),
                        _ => {}
                    }
                }
            }
            Ok(t * 2)
        },
        |v| {
            if mode == "update" && v == 84 {
                return Err("cannot write the result of task 42".to_string());
            }
            Ok(())
        },
    );
    match result {
        Ok(_) => println!("engines_failing_job: process {rank}: ok"),
        Err(e) => {
            println!("engines_failing_job: process {rank}: error: {e}");
            // Every process returned the error: finalise MPI in order, then fail.
            drop(engine);
            drop(world);
            drop(universe);
            std::process::exit(3);
        }
    }
}
