//! Multi-process test of worker groups (run by CI under `mpirun -n 1..4`): every task runs
//! exactly once over the groups, failures are recorded as failed, state files mirror the
//! states, a rerun after an interruption runs only what was left (skipping done tasks and
//! keeping failed ones), a retry runs the failed ones, and the in-memory mode works without
//! leaving (or, while its tasks run, even showing) a `tasking-batch-*` name in /dev/shm.
//! A batch started on a state directory another batch is using is refused on every process
//! of its group (and runs nothing); once the first ends the directory is usable again.
//! Runs under `Universe::abort_on_panic`: a task's deliberate panic must still end FAILED
//! instead of aborting the job. Exits non-zero on any rank where something mismatched.
//!
//! With `MPITEST_BATCH_TASK_MS=<ms>`, every task of the in-memory runs sleeps that long and
//! rank 0 announces each in-memory run on stderr: a window to kill a rank in and check that
//! /dev/shm is left clean.

use prism_comm::Communicator;
use prism_tasking::batch::{
    Batch, BatchError, BatchOptions, BatchReport, TaskState, PRIVATE_TABLE_PREFIX,
};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn fail(world: &Communicator, what: String) -> ! {
    eprintln!("mpitest_batch: rank {}: FAILED: {what}", world.rank());
    world.abort(1)
}

macro_rules! check {
    ($world:expr, $cond:expr, $($fmt:tt)+) => {
        if !$cond {
            fail($world, format!($($fmt)+));
        }
    };
}

const TASKS: usize = 9;

fn names() -> Vec<String> {
    (0..TASKS).map(|i| format!("task_{i:02}")).collect()
}

/// Private batch tables that have a name (all ranks are on one node for in-memory runs).
fn named_private_tables() -> BTreeSet<PathBuf> {
    [PathBuf::from("/dev/shm"), std::env::temp_dir()]
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(PRIVATE_TABLE_PREFIX)
        })
        .map(|e| e.path())
        .collect()
}

/// For in-memory runs: the named tables before the run, and how long each task sleeps.
struct InMemory {
    before: BTreeSet<PathBuf>,
    sleep: Duration,
}

/// Runs a batch; each group's body checks its group communicator and records what it ran.
fn run(
    world: &Communicator,
    options: BatchOptions,
    failing: &[usize],
    in_memory: Option<&InMemory>,
) -> (BatchReport, Vec<usize>) {
    let mut batch = Batch::new(world, names(), options)
        .unwrap_or_else(|e| fail(world, format!("batch setup: {e}")));
    let gsize = batch.group().size();
    let report = batch
        .run(|task, group| {
            if let Some(m) = in_memory {
                // The table has no name while tasks run: a kill now leaks nothing.
                let now = named_private_tables();
                if now != m.before {
                    let new: Vec<_> = now.difference(&m.before).collect();
                    return Err(format!("named table during task {}: {new:?}", task.index));
                }
                std::thread::sleep(m.sleep);
            }
            // A collective inside the task: the whole group takes part.
            let ranks: Vec<u64> = group
                .all_gather(&(world.rank() as u64))
                .map_err(|e| e.to_string())?;
            if ranks.len() != gsize {
                return Err(format!("group of {} in task {}", ranks.len(), task.index));
            }
            if failing.contains(&task.index) && group.rank() == group.size() - 1 {
                if task.index % 2 == 0 {
                    return Err(format!("deliberate failure of {}", task.name));
                }
                panic!("deliberate panic in {}", task.name);
            }
            Ok(())
        })
        .unwrap_or_else(|e| fail(world, format!("batch run: {e}")));
    // Tasks run by each group, from the group leaders.
    let mine: Vec<usize> = if batch.group_rank() == 0 {
        report.ran_by_group.clone()
    } else {
        Vec::new()
    };
    let mut all: Vec<usize> = world
        .all_gather(&mine)
        .unwrap_or_else(|e| fail(world, e.to_string()))
        .into_iter()
        .flatten()
        .collect();
    all.sort();
    (report, all)
}

fn state_files(dir: &Path) -> Vec<TaskState> {
    Batch::read_states(dir, &names()).unwrap_or_default()
}

/// Deliberate panics are expected here: report them in one line instead of a backtrace.
fn quiet_deliberate_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if !msg.starts_with("deliberate") {
            default(info);
        }
    }));
}

/// Processes that pass different task names or group sizes: the same clear error on every
/// process, before anything runs (no panic, no hang).
fn mismatch_checks(world: &Communicator) {
    let (rank, size) = (world.rank(), world.size());
    let last = size - 1;
    let invalid = |r: &Result<Batch, prism_tasking::batch::BatchError>, what: &str| match r {
        Err(prism_tasking::batch::BatchError::Invalid(m)) => m.contains(what),
        _ => false,
    };
    // The last process has fewer names; then one with a name changed.
    let n = if rank == last { 2 } else { 6 };
    let short: Vec<String> = (0..n).map(|i| format!("t{i}")).collect();
    let r = Batch::new(world, short, BatchOptions::new(1));
    if size > 1 {
        check!(
            world,
            invalid(&r, "number of tasks differs") && invalid(&r, &format!("process {last}: 2")),
            "names of different lengths: {r:?}"
        );
    } else {
        check!(world, r.is_ok(), "one process, 2 names: {r:?}");
    }
    let mut renamed = names();
    if rank == last {
        renamed[3] = "other".to_string();
    }
    let r = Batch::new(world, renamed, BatchOptions::new(1));
    check!(
        world,
        size == 1
            || invalid(
                &r,
                &format!(
                    "the task names differ, first at task 3 (process 0: {:?}, ",
                    names()[3]
                )
            ) && invalid(&r, &format!("process {last}: \"other\"")),
        "different names: {r:?}"
    );
    // A group size that differs, and one that is invalid on one process only.
    let gs = if rank == last && size > 1 { 2 } else { 1 };
    let r = Batch::new(world, names(), BatchOptions::new(gs));
    check!(
        world,
        size == 1 || invalid(&r, "group size differs"),
        "different group sizes: {r:?}"
    );
    let gs = if rank == last { 0 } else { 1 };
    let r = Batch::new(world, names(), BatchOptions::new(gs));
    check!(
        world,
        invalid(&r, "group size 0"),
        "group size 0 on process {last}: {r:?}"
    );
    // And a batch that agrees still runs.
    let r = Batch::new(world, names(), BatchOptions::new(1)).and_then(|mut b| b.run(|_, _| ()));
    check!(
        world,
        r.as_ref()
            .is_ok_and(|r| r.states.iter().all(|s| *s == TaskState::Done)),
        "batch after the mismatches: {:?}",
        r.map(|r| r.states)
    );
}

/// A batch over all processes whose one task starts a second batch on the same state
/// directory (on its group's communicator): refused with `InUse` on every process before it
/// changes anything; after the first ends, the directory runs batches again.
fn busy_dir_checks(world: &Communicator, dir: &Path) {
    if world.rank() == 0 {
        let _ = std::fs::remove_dir_all(dir);
    }
    world.barrier().expect("barrier");
    let opts = || BatchOptions::new(world.size()).state_dir(dir);
    let one = vec!["busy".to_string()];
    let mut outer = Batch::new(world, one.clone(), opts())
        .unwrap_or_else(|e| fail(world, format!("busy: outer setup: {e}")));
    let r = outer.run(|_, group| {
        let r = Batch::new(group, names(), BatchOptions::new(1).state_dir(dir))
            .and_then(|mut b| b.run(|_, _| -> Result<(), String> { Err("ran".into()) }));
        match r {
            Err(e @ BatchError::InUse { .. })
                if e.to_string().contains(&format!(
                    "state directory {}: another job is using it",
                    dir.display()
                )) =>
            {
                Ok(())
            }
            other => Err(format!("second batch on a busy directory: {other:?}")),
        }
    });
    check!(
        world,
        r.as_ref()
            .is_ok_and(|r| r.failures.is_empty() && r.states == [TaskState::Done]),
        "busy directory: {r:?}"
    );
    let r = Batch::new(world, names(), BatchOptions::new(1).state_dir(dir))
        .and_then(|mut b| b.run(|_, _| ()));
    check!(
        world,
        r.as_ref()
            .is_ok_and(|r| r.states.iter().all(|s| *s == TaskState::Done)),
        "batch on the directory after the busy one ended: {r:?}"
    );
}

fn main() {
    quiet_deliberate_panics();
    let universe = match prism_comm::init() {
        Ok(u) => u,
        Err(e) => {
            eprintln!("mpitest_batch: init failed: {e}");
            std::process::exit(1);
        }
    };
    universe.abort_on_panic();
    let world = universe.world();
    let (rank, size) = (world.rank(), world.size());
    // A fresh state directory per job, named by the root.
    let token = format!(
        "prism-mpitest-batch-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let dir: String = world
        .broadcast(
            0,
            (rank == 0).then(|| std::env::temp_dir().join(token).display().to_string()),
        )
        .unwrap_or_else(|e| fail(&world, e.to_string()));
    let dir = PathBuf::from(dir);
    let task_ms: u64 = std::env::var("MPITEST_BATCH_TASK_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);

    for group_size in [1, 2.min(size), size] {
        if rank == 0 {
            let _ = std::fs::remove_dir_all(&dir);
        }
        world.barrier().expect("barrier");
        let opts = || BatchOptions::new(group_size).state_dir(&dir);

        // First run: tasks 2 (error) and 5 (panic) fail.
        let (r1, ran) = run(&world, opts(), &[2, 5], None);
        check!(
            &world,
            ran == (0..TASKS).collect::<Vec<_>>(),
            "group size {group_size}: ran {ran:?}"
        );
        for (i, s) in r1.states.iter().enumerate() {
            let want = if i == 2 || i == 5 {
                TaskState::Failed
            } else {
                TaskState::Done
            };
            check!(&world, *s == want, "run 1 task {i}: {s:?}");
        }
        check!(
            &world,
            r1.failures.len() == 2 && r1.failures[0].0 == 2 && r1.failures[1].0 == 5,
            "run 1 failures {:?}",
            r1.failures
        );
        check!(
            &world,
            r1.failures[1].1.contains("panicked") && r1.failures[1].1.contains("task_05"),
            "panic message {:?}",
            r1.failures[1].1
        );
        if rank == 0 {
            check!(
                &world,
                state_files(&dir) == r1.states,
                "state files {:?}",
                state_files(&dir)
            );
            let msg =
                std::fs::read_to_string(dir.join("task_02").join("failure")).unwrap_or_default();
            check!(
                &world,
                msg.contains("deliberate failure of task_02"),
                "failure file {msg:?}"
            );
            // An interruption: task 7 was running, task 8 never started.
            std::fs::write(dir.join("task_07").join("state"), "RUNNING\n")
                .unwrap_or_else(|e| fail(&world, e.to_string()));
            std::fs::write(dir.join("task_08").join("state"), "OPEN\n")
                .unwrap_or_else(|e| fail(&world, e.to_string()));
        }
        world.barrier().expect("barrier");

        // Rerun: only 7 and 8 run; done tasks skipped, failed ones kept.
        let (r2, ran) = run(&world, opts(), &[], None);
        check!(&world, ran == vec![7, 8], "rerun ran {ran:?}");
        check!(
            &world,
            r2.kept_failed == vec![2, 5],
            "kept failed {:?}",
            r2.kept_failed
        );
        check!(
            &world,
            r2.skipped_done == vec![0, 1, 3, 4, 6],
            "skipped {:?}",
            r2.skipped_done
        );
        check!(
            &world,
            r2.states == r1.states,
            "rerun states {:?}",
            r2.states
        );

        // Retry the failed ones: everything done.
        let (r3, ran) = run(&world, opts().retry_failed(true), &[], None);
        check!(&world, ran == vec![2, 5], "retry ran {ran:?}");
        check!(
            &world,
            r3.states.iter().all(|s| *s == TaskState::Done),
            "retry states {:?}",
            r3.states
        );
        if rank == 0 {
            check!(
                &world,
                state_files(&dir).iter().all(|s| *s == TaskState::Done),
                "files after retry"
            );
            check!(
                &world,
                !dir.join("task_02").join("failure").exists(),
                "stale failure file"
            );
        }
        world.barrier().expect("barrier");

        // In node memory, no directory and no name left in /dev/shm.
        let in_memory = InMemory {
            before: named_private_tables(),
            sleep: Duration::from_millis(task_ms),
        };
        world.barrier().expect("barrier");
        if rank == 0 && task_ms > 0 {
            eprintln!("mpitest_batch: in-memory run, group size {group_size}");
        }
        let (r4, ran) = run(
            &world,
            BatchOptions::new(group_size),
            &[4],
            Some(&in_memory),
        );
        world.barrier().expect("barrier");
        let after = named_private_tables();
        check!(
            &world,
            after == in_memory.before,
            "named tables after the in-memory run: {after:?}, before {:?}",
            in_memory.before
        );
        check!(
            &world,
            ran == (0..TASKS).collect::<Vec<_>>(),
            "in-memory ran {ran:?}"
        );
        check!(
            &world,
            r4.states[4] == TaskState::Failed
                && r4.states.iter().filter(|s| **s == TaskState::Done).count() == TASKS - 1,
            "in-memory states {:?}",
            r4.states
        );
    }

    mismatch_checks(&world);
    busy_dir_checks(&world, &dir);

    world.barrier().expect("barrier");
    if rank == 0 {
        let _ = std::fs::remove_dir_all(&dir);
        println!("mpitest_batch: {size} processes: all checks passed");
    }
}
