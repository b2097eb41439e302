//! Multi-process test of worker groups (run by CI under `mpirun -n 1..4`): every task runs
//! exactly once over the groups, failures are recorded as failed, state files mirror the
//! states, a rerun after an interruption runs only what was left (skipping done tasks and
//! keeping failed ones), a retry runs the failed ones, and the in-memory mode works.
//! Exits non-zero on any rank where something mismatched.

use prism_comm::Communicator;
use prism_tasking::batch::{Batch, BatchOptions, BatchReport, TaskState};
use std::path::{Path, PathBuf};

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

/// Runs a batch; each group's body checks its group communicator and records what it ran.
fn run(
    world: &Communicator,
    options: BatchOptions,
    failing: &[usize],
) -> (BatchReport, Vec<usize>) {
    let mut batch = Batch::new(world, names(), options)
        .unwrap_or_else(|e| fail(world, format!("batch setup: {e}")));
    let gsize = batch.group().size();
    let report = batch
        .run(|task, group| {
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

fn main() {
    quiet_deliberate_panics();
    let universe = match prism_comm::init() {
        Ok(u) => u,
        Err(e) => {
            eprintln!("mpitest_batch: init failed: {e}");
            std::process::exit(1);
        }
    };
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

    for group_size in [1, 2.min(size), size] {
        if rank == 0 {
            let _ = std::fs::remove_dir_all(&dir);
        }
        world.barrier();
        let opts = || BatchOptions::new(group_size).state_dir(&dir);

        // First run: tasks 2 (error) and 5 (panic) fail.
        let (r1, ran) = run(&world, opts(), &[2, 5]);
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
        world.barrier();

        // Rerun: only 7 and 8 run; done tasks skipped, failed ones kept.
        let (r2, ran) = run(&world, opts(), &[]);
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
        let (r3, ran) = run(&world, opts().retry_failed(true), &[]);
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
        world.barrier();

        // In node memory, no directory.
        let (r4, ran) = run(&world, BatchOptions::new(group_size), &[4]);
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

    world.barrier();
    if rank == 0 {
        let _ = std::fs::remove_dir_all(&dir);
        println!("mpitest_batch: {size} processes: all checks passed");
    }
}
