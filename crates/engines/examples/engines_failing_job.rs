//! A job whose run fails, for `ci/suites/engines_failure.sh`: every process must report the
//! same error (naming the process and task) and the job must end with a non-zero status, with
//! no process left behind and no hang.
//!
//! Usage: `engines_failing_job render|update|panic|ok`
//! - `render`: render fails on task 2N - 1 of N processes, the task of thread 1 of the last
//!   process under the static schedule;
//! - `update`: update fails on the root for task 42;
//! - `panic`: render panics on that task, with `abort_on_panic` installed: the engine catches
//!   the panic all the same, and every process reports it as the error;
//! - `wrong-thread`: the last process calls `run` from a thread that did not initialise MPI;
//!   it cannot reach the others, so the job must end (aborted, with a message naming it)
//!   rather than leave them waiting at the run's start;
//! - `ok`: no failure (exit 0), to check the script itself.

use prism_engines::{Engine, HybridEngine, Schedule};

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
    let rank = world.rank();
    // Static: task W - 1 belongs to the last worker, thread 1 of the last process.
    let engine = match HybridEngine::new(&world, 2) {
        Ok(e) => e.with_schedule(Schedule::StaticRoundRobin),
        Err(e) => {
            eprintln!("engines_failing_job: process {rank}: {e}");
            world.abort(2)
        }
    };
    let bad = engine.worker_count() as u64 - 1;
    let from_another_thread = mode == "wrong-thread" && rank + 1 == world.size();
    let run = || {
        engine.run(
            (0..400u64).collect(),
            |&t| {
                std::thread::sleep(std::time::Duration::from_micros(200));
                if t == bad {
                    match mode.as_str() {
                        "render" => return Err(format!("cannot shade task {t}")),
                        "panic" => panic!("render panicked on task {t}"),
                        _ => {}
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
        )
    };
    let result = if from_another_thread {
        std::thread::scope(|s| s.spawn(run).join()).unwrap_or_else(|_| {
            eprintln!("engines_failing_job: process {rank}: the run's thread panicked");
            std::process::exit(4)
        })
    } else {
        run()
    };
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
