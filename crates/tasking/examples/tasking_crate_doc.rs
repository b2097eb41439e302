// The crate-level example of prism-tasking (its lib.rs shows this file): run by `cargo test
// --doc` in one process and by CI under `mpirun -n 1..4`.
use prism_tasking::{CallOptions, ParallelFactory, TaskMode, TaskRng, ThreadLocalAcc};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let universe = prism_comm::init()?;
    let world = universe.world();
    let factory = ParallelFactory::new(&world, 2)?;
    let hits = ThreadLocalAcc::new(|| 0u64);
    let n = 100_000;
    factory.parallel(TaskMode::Distributed).call_with(
        &CallOptions::new().progress("samples"),
        n,
        |first, count| {
            let mut local = 0;
            for i in first..first + count {
                let mut rng = TaskRng::new(2024, i as u64);
                let (x, y) = (rng.next_f64(), rng.next_f64());
                local += u64::from(x * x + y * y < 1.0);
            }
            hits.with(|h| *h += local);
        },
    )?;
    // Per-process totals, then the sum over processes.
    let mut total = [hits.merge_or_init(|a, b| *a += b)];
    world.sum_to_all_u64(&mut total)?;
    let pi = 4.0 * total[0] as f64 / n as f64;
    assert!((pi - std::f64::consts::PI).abs() < 0.02);
    // Exactly the count of one thread: the random numbers belong to the tasks, not the workers.
    let one_thread = (0..n)
        .filter(|&i| {
            let mut rng = TaskRng::new(2024, i as u64);
            let (x, y) = (rng.next_f64(), rng.next_f64());
            x * x + y * y < 1.0
        })
        .count();
    assert_eq!(total[0], one_thread as u64);

    // Errors name where they happened (the same error on every process), and the next call
    // works.
    let parallel = factory.distributed();
    let err = parallel.call_each(10, |i| if i == 7 { Err("bad input") } else { Ok(()) });
    let failure = err.unwrap_err();
    let at = failure.task_failure().expect("a task failed");
    assert_eq!((at.task, at.message.as_str()), (Some(7), "bad input"));
    assert!(at.rank < world.size(), "the process that ran task 7");
    parallel.call_each(10, |_| ())?;
    Ok(())
}
