//! Helper for `ci/suites/comm_sigterm.sh`: every rank maps a node-shared array, prints
//! `shm_hold: rank R pid P ready`, then, depending on the first argument:
//! - `exit` (the default): returns normally at once;
//! - `hold SECS`: waits up to SECS seconds (for the suite to kill one rank);
//! - `panic`: rank 1 (or 0 with one rank) panics, which ends the whole job;
//! - `lock-elsewhere`: every rank makes a `Lock`, and rank 1 (or 0) drops it on another
//!   thread, which cannot take part in its collective free: the job must end, not hang.
//!
//! The suite checks that no segment is left in /dev/shm whichever way the job ends.

use std::io::Write;
use std::time::Duration;

use prism_comm::SharedArray;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map(String::as_str).unwrap_or("exit");
    let universe = prism_comm::init().unwrap_or_else(|e| {
        eprintln!("shm_hold: {e}");
        std::process::exit(1)
    });
    universe.abort_on_panic();
    let world = universe.world();
    let mut array = SharedArray::<u64>::new(&world, 1 << 20).unwrap_or_else(|e| {
        eprintln!("shm_hold: {e}");
        world.abort(1)
    });
    let data = [7u64; 16];
    if let Err(e) = array.set(0, world.is_root().then_some(&data[..]), 0) {
        eprintln!("shm_hold: {e}");
        world.abort(1);
    }
    println!(
        "shm_hold: rank {} pid {} ready (node shared: {})",
        world.rank(),
        std::process::id(),
        array.is_node_shared()
    );
    let _ = std::io::stdout().flush();
    match mode {
        "hold" => {
            let secs: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(30);
            std::thread::sleep(Duration::from_secs(secs));
        }
        "panic" => {
            world.barrier().expect("barrier");
            if world.rank() == world.size().min(2) - 1 {
                panic!("shm_hold: deliberate panic on rank {}", world.rank());
            }
            // The others wait for a message that never comes: only the abort ends them.
            let _ = world.recv::<u8>(prism_comm::Source::Any, 1);
        }
        "lock-elsewhere" => {
            let lock = prism_comm::Lock::new(&world).unwrap_or_else(|e| {
                eprintln!("shm_hold: {e}");
                world.abort(1)
            });
            if world.rank() == world.size().min(2) - 1 {
                let _ = std::thread::spawn(move || drop(lock)).join();
            } else {
                drop(lock);
            }
        }
        _ => {}
    }
    world.barrier().expect("barrier");
    if array[0] != 7 {
        eprintln!("shm_hold: rank {} sees {}", world.rank(), array[0]);
        world.abort(1);
    }
}
