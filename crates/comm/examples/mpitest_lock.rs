//! Multi-process test of the cross-process lock: every rank increments a counter in a file
//! (read, pause, write: a lost update is likely without the lock) many times, and waiters are
//! served in the order they asked. Run under `mpirun -n 1..4`; exits non-zero on a mismatch.

use std::path::PathBuf;
use std::time::Duration;

use prism_comm::{Communicator, Lock};

type Res<T = ()> = Result<T, Box<dyn std::error::Error>>;

macro_rules! ensure {
    ($w:expr, $cond:expr, $($arg:tt)*) => {
        if !$cond {
            eprintln!("rank {}: FAIL: {}", $w.rank(), format!($($arg)*));
            std::process::exit(1);
        }
    };
}

const ROUNDS: u64 = 40;

fn read(path: &PathBuf) -> Res<String> {
    Ok(std::fs::read_to_string(path)?)
}

fn run(w: &Communicator) -> Res {
    let (n, r) = (w.size(), w.rank());
    let path: PathBuf = w.broadcast(
        0,
        w.is_root()
            .then(|| std::env::temp_dir().join(format!("prism-lock-test-{}", std::process::id()))),
    )?;
    if w.is_root() {
        std::fs::write(&path, "0")?;
    }
    let lock = Lock::new(w)?;
    w.barrier();

    // No lost update.
    for _ in 0..ROUNDS {
        let _held = lock.lock()?;
        let v: u64 = read(&path)?.trim().parse()?;
        std::thread::sleep(Duration::from_micros(200));
        std::fs::write(&path, (v + 1).to_string())?;
    }
    w.barrier();
    let total: u64 = read(&path)?.trim().parse()?;
    ensure!(
        w,
        total == ROUNDS * n as u64,
        "counter {total}, expected {}",
        ROUNDS * n as u64
    );
    w.barrier();

    // First come, first served: rank 0 holds the lock while ranks 1.. ask one after the other.
    if w.is_root() {
        std::fs::write(&path, "")?;
    }
    w.barrier();
    let gap = Duration::from_millis(200);
    if r == 0 {
        let held = lock.lock()?;
        w.barrier();
        std::thread::sleep(gap * n as u32);
        std::fs::write(&path, "0 ")?;
        drop(held);
    } else {
        w.barrier();
        std::thread::sleep(gap * r as u32);
        let _held = lock.lock()?;
        let before = read(&path)?;
        std::fs::write(&path, format!("{before}{r} "))?;
    }
    w.barrier();
    let order = read(&path)?;
    let expect: String = (0..n).map(|k| format!("{k} ")).collect();
    ensure!(
        w,
        order == expect,
        "served in the order {order:?}, expected {expect:?}"
    );
    w.barrier();
    if w.is_root() {
        std::fs::remove_file(&path)?;
    }
    Ok(())
}

fn main() {
    let universe = prism_comm::init().unwrap_or_else(|e| {
        eprintln!("FAIL: {e}");
        std::process::exit(1)
    });
    universe.abort_on_panic();
    let world = universe.world();
    if let Err(e) = run(&world) {
        eprintln!("rank {}: FAIL: {e}", world.rank());
        world.abort(1);
    }
    world.barrier();
    if world.is_root() {
        println!("mpitest_lock: ok with {} ranks", world.size());
    }
}
