//! A job that makes a parallel call from the wrong thread, for `ci/suites/wrong_thread.sh`.
//! With several processes only the thread that created the factory (and initialised MPI) may
//! call; a process that calls from another thread cannot reach the others, who wait for it in
//! the call's opening collective, so the job must end with a message naming that rank rather
//! than hang. A lone process needs no communication, so there the call succeeds.
//!
//! Usage: `tasking_wrong_thread call-one|call-all|factory-one|ok`
//! - `call-one`: the last rank calls from a spawned thread, the others from the main thread;
//! - `call-all`: every rank calls from a spawned thread;
//! - `factory-one`: the last rank creates the factory (a collective) from a spawned thread;
//! - `after-finalize`: every rank calls after dropping the `Universe` (MPI's end): no one
//!   waits then, and nothing could end the job, so the call returns an error, printed, and the
//!   process exits 0 (a non-zero exit would have the launcher kill the others before they
//!   print theirs);
//! - `ok`: every call from the main thread (exit 0), to check the script itself.
//!
//! Prints `tasking_wrong_thread: rank R: ok` when its call returns, and exits 0.

use prism_tasking::{ParallelFactory, ProgressConfig};

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let universe = prism_comm::init().unwrap_or_else(|e| {
        eprintln!("tasking_wrong_thread: {e}");
        std::process::exit(2)
    });
    let world = universe.world();
    let rank = world.rank();
    let last = rank + 1 == world.size();
    let make = || ParallelFactory::new(&world, 1);
    let factory = if mode == "factory-one" && last {
        std::thread::scope(|s| s.spawn(make).join()).unwrap_or_else(|_| std::process::exit(4))
    } else {
        make()
    };
    let factory = match factory {
        Ok(f) => f.with_progress(ProgressConfig::quiet()),
        Err(e) => {
            println!("tasking_wrong_thread: rank {rank}: error: {e}");
            drop(world);
            drop(universe);
            std::process::exit(3)
        }
    };
    let p = factory.distributed();
    if mode == "after-finalize" {
        drop(world);
        drop(universe);
        match p.call(100, |_, _| ()) {
            Ok(()) => println!("tasking_wrong_thread: rank {rank}: ok"),
            Err(e) => println!("tasking_wrong_thread: rank {rank}: error: {e}"),
        }
        // Without the drops, which would need MPI.
        std::process::exit(0)
    }
    let call = || p.call(100, |_, _| ());
    let elsewhere = mode == "call-all" || (mode == "call-one" && last);
    let done = if elsewhere {
        std::thread::scope(|s| s.spawn(call).join()).unwrap_or_else(|_| std::process::exit(4))
    } else {
        call()
    };
    match done {
        Ok(()) => println!("tasking_wrong_thread: rank {rank}: ok"),
        Err(e) => {
            println!("tasking_wrong_thread: rank {rank}: error: {e}");
            // As a program returning the error from main would: MPI is finalised first.
            drop(p);
            drop(factory);
            drop(world);
            drop(universe);
            std::process::exit(3)
        }
    }
}
