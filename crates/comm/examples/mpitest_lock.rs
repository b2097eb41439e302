//! Multi-process test of the cross-process lock: every rank increments a counter in a file
//! (read, pause, write: a lost update is likely without the lock) many times, and waiters are
//! served in the order they asked; locking twice on one thread is an error, not a deadlock;
//! locking after MPI was finalised says so. Under `mpirun -n 1`, it also launches itself with
//! 2 ranks (a nested `mpirun`, or `$MPIRUN`) where rank 1 panics while a `Lock` or an unfinished
//! send is alive, and checks that the job ends (MPI_Abort) instead of hanging. Run under
//! `mpirun -n 1..4`; exits non-zero on a mismatch.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use prism_comm::{CommError, Communicator, Lock};

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
    w.barrier().expect("barrier");

    // No lost update.
    for _ in 0..ROUNDS {
        let _held = lock.lock()?;
        let v: u64 = read(&path)?.trim().parse()?;
        std::thread::sleep(Duration::from_micros(200));
        std::fs::write(&path, (v + 1).to_string())?;
    }
    w.barrier().expect("barrier");
    let total: u64 = read(&path)?.trim().parse()?;
    ensure!(
        w,
        total == ROUNDS * n as u64,
        "counter {total}, expected {}",
        ROUNDS * n as u64
    );
    w.barrier().expect("barrier");

    // First come, first served: rank 0 holds the lock while ranks 1.. ask one after the other.
    if w.is_root() {
        std::fs::write(&path, "")?;
    }
    w.barrier().expect("barrier");
    let gap = Duration::from_millis(200);
    if r == 0 {
        let held = lock.lock()?;
        w.barrier().expect("barrier");
        std::thread::sleep(gap * n as u32);
        std::fs::write(&path, "0 ")?;
        drop(held);
    } else {
        w.barrier().expect("barrier");
        std::thread::sleep(gap * r as u32);
        let _held = lock.lock()?;
        let before = read(&path)?;
        std::fs::write(&path, format!("{before}{r} "))?;
    }
    w.barrier().expect("barrier");
    let order = read(&path)?;
    let expect: String = (0..n).map(|k| format!("{k} ")).collect();
    ensure!(
        w,
        order == expect,
        "served in the order {order:?}, expected {expect:?}"
    );
    w.barrier().expect("barrier");
    if w.is_root() {
        std::fs::remove_file(&path)?;
    }

    // Locking again on the thread that holds the lock is an error on every rank, not a
    // deadlock, and leaves the lock usable.
    {
        let held = lock.lock()?;
        let again = lock.lock().map(drop);
        ensure!(
            w,
            matches!(again, Err(CommError::AlreadyHeld { .. })),
            "second lock on one thread: {again:?}"
        );
        let message = again.unwrap_err().to_string();
        ensure!(
            w,
            message.contains("this process already holds the lock"),
            "message: {message}"
        );
        drop(held);
    }
    w.barrier().expect("barrier");
    drop(lock.lock()?);
    w.barrier().expect("barrier");
    Ok(())
}

/// Environment variable that makes this program the panicking child job.
const PANIC_VAR: &str = "PRISM_MPITEST_LOCK_PANIC";

/// The child job: rank 1 panics while `what` is alive, rank 0 waits for it in a broadcast.
/// Without `abort_on_panic`: the drops themselves must end the job.
fn panicking_child(what: &str) {
    let universe = prism_comm::init().expect("init");
    let w = universe.world();
    if w.size() < 2 {
        eprintln!("the panic child needs 2 ranks");
        std::process::exit(2);
    }
    let _lock = (what == "lock").then(|| Lock::new(&w).expect("Lock::new"));
    w.barrier().expect("barrier");
    if w.rank() == 1 {
        // A message larger than any eager limit: it cannot complete without a receive.
        let _send = (what == "send").then(|| w.isend(0, 9, &vec![0u8; 8 << 20]).expect("isend"));
        panic!("deliberate panic on rank 1 with a {what} alive");
    }
    let r: Result<u8, _> = w.broadcast(1, None);
    eprintln!("rank {}: broadcast returned {r:?}", w.rank());
}

/// Launches this program with 2 ranks as the panicking child for `what` and checks that the
/// job ends through prism's MPI_Abort within `limit` (a hang is killed and reported).
fn check_panic_ends_job(what: &str, limit: Duration) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    // `$MPIRUN` is a command line, as ci/test.sh sets it ("mpirun --oversubscribe").
    let mpirun = std::env::var("MPIRUN").unwrap_or_else(|_| "mpirun".to_string());
    let mut words = mpirun.split_whitespace();
    let program = words.next().unwrap_or("mpirun");
    let given: Vec<&str> = words.collect();
    let mut cmd = Command::new(program);
    cmd.args(&given);
    if !given.contains(&"--oversubscribe") {
        cmd.arg("--oversubscribe");
    }
    cmd.args(["-n", "2"]).arg(&exe);
    // The outer launcher's variables would make the nested mpirun think it is one of its
    // processes; keep only the user's settings.
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        let launcher = k.starts_with("PMIX_")
            || k.starts_with("OPAL_")
            || k.starts_with("PRTE_")
            || (k.starts_with("OMPI_")
                && !k.starts_with("OMPI_ALLOW_RUN_AS_ROOT")
                && !k.starts_with("OMPI_MCA_btl"));
        if launcher {
            cmd.env_remove(&k);
        }
    }
    cmd.env(PANIC_VAR, what)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {mpirun}: {e}"))?;
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
            break Some(st);
        }
        if start.elapsed() > limit {
            // SAFETY: plain kill(2) of our own child, which has not been reaped (try_wait saw
            // it running), so the pid is still ours. SIGTERM lets mpirun stop its ranks.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
            std::thread::sleep(Duration::from_secs(3));
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut out);
    }
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    match status {
        None => Err(format!(
            "a panic with a {what} alive hung the job (killed after {limit:?}):\n{out}"
        )),
        Some(st) if st.success() => Err(format!(
            "a panic with a {what} alive: the job exited successfully?\n{out}"
        )),
        Some(_) if !out.contains("the whole MPI job ends here") => Err(format!(
            "a panic with a {what} alive: the job failed but not through prism's abort:\n{out}"
        )),
        Some(_) => Ok(()),
    }
}

fn main() {
    if let Ok(what) = std::env::var(PANIC_VAR) {
        panicking_child(&what);
        return;
    }
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
    world.barrier().expect("barrier");

    // After the Universe is gone, lock() names the cause: MPI was finalised.
    let lock = Lock::new(&world).unwrap_or_else(|e| {
        eprintln!("rank {}: FAIL: {e}", world.rank());
        world.abort(1)
    });
    drop(universe);
    let after = lock.lock().map(drop);
    ensure!(
        world,
        after
            .as_ref()
            .is_err_and(|e| e.to_string().contains("finalised")),
        "lock after the Universe was dropped: {after:?}"
    );

    if world.size() == 1 && world.is_root() {
        for what in ["lock", "send"] {
            if let Err(e) = check_panic_ends_job(what, Duration::from_secs(60)) {
                eprintln!("FAIL: {e}");
                std::process::exit(1);
            }
        }
    }
    if world.is_root() {
        println!("mpitest_lock: ok with {} ranks", world.size());
    }
}
