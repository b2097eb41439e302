//! Multi-process test of `Parallel` (run by CI under `mpirun -n 1..4`): every cell of the
//! factory table with 1-3 threads, coverage of each mode (per-index counters summed over the
//! processes), zero tasks and fewer tasks than workers, a task failing and panicking on a
//! non-root rank (every rank gets the error, the next call works), results streamed to the
//! root, progress counted across processes, and random streams independent of the split.
//! Ranks calling in different modes get the same error; a result handler's panic names the
//! chunk and the process that computed it. A call from a result handler is refused without
//! a hang; Parallel objects recreated on the root only still agree on the call number;
//! results that fail to encode or decode are a failure on every rank, not an abort; Local
//! calls differ by process and stay on theirs. Runs
//! under `Universe::abort_on_panic` (as prism-comm recommends), so every deliberate panic also
//! checks that a task's panic comes back as the call's error instead of aborting the job.
//! As many long tasks as workers run one per worker, none queued behind another; 0 threads
//! share the node's cores among its processes.
//! Exits non-zero on any rank where something mismatched.

use prism_comm::Communicator;
use prism_tasking::{
    CallOptions, ParallelError, ParallelFactory, ParallelKind, ProgressConfig, TaskMode, TaskRng,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

fn fail(world: &Communicator, what: String) -> ! {
    eprintln!("mpitest_tasking: rank {}: FAILED: {what}", world.rank());
    world.abort(1)
}

macro_rules! check {
    ($world:expr, $cond:expr, $($fmt:tt)+) => {
        if !$cond {
            fail($world, format!($($fmt)+));
        }
    };
}

fn expected_kind(mode: TaskMode, size: usize, rank: usize, threads: usize) -> ParallelKind {
    let local = if threads > 1 {
        ParallelKind::MultiThread
    } else {
        ParallelKind::Serial
    };
    match mode {
        TaskMode::Distributed if size > 1 && threads > 1 => ParallelKind::MultiHybrid,
        TaskMode::Distributed if size > 1 => ParallelKind::MultiProcess,
        TaskMode::RootOnly if rank != 0 => ParallelKind::Null,
        _ => local,
    }
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

/// Ranks that disagree on a call, failures in Duplicated / RootOnly on one rank, a call from
/// another thread of a lone process, and failing task indices: every rank returns the same error, no hang,
/// and the next call works.
fn agreement_and_outcome_checks(world: &Communicator, factory: &ParallelFactory, threads: usize) {
    let (rank, size) = (world.rank(), world.size());
    let last = size - 1;
    let p = factory.distributed();

    // An explicit chunk size of 0 on the last rank only: Invalid everywhere.
    let cs = if rank == last { 0 } else { 10 };
    let r = p.call_with(&CallOptions::new().chunk_size(cs), 100, |_, _| ());
    check!(
        world,
        matches!(&r, Err(ParallelError::Invalid(m)) if m.contains("chunk size")),
        "{threads} threads, chunk size 0 on rank {last}: {r:?}"
    );

    // Different n on every rank: Invalid everywhere, naming the ranks and values; no task ran.
    let n = 10 + 5 * rank;
    let ran = AtomicU64::new(0);
    let r = p.call_each(n, |_| {
        ran.fetch_add(1, Ordering::Relaxed);
    });
    if size > 1 {
        check!(
            world,
            matches!(&r, Err(ParallelError::Invalid(m))
                if m.contains("n differs") && m.contains("10 on rank 0")
                    && m.contains(&format!("{} on rank {last}", 10 + 5 * last))),
            "{threads} threads, n = 10 + 5 * rank: {r:?}"
        );
        check!(
            world,
            ran.load(Ordering::Relaxed) == 0,
            "tasks ran after a mismatch"
        );
    } else {
        check!(world, r.is_ok(), "one process, n = 10: {r:?}");
    }

    // A failure on one rank only in Duplicated and RootOnly: every rank returns it.
    for (mode, culprit) in [(TaskMode::Duplicated, last), (TaskMode::RootOnly, 0)] {
        let r = factory.parallel(mode).call_each(100, |i| {
            if rank == culprit && i == 50 {
                panic!("deliberate panic in duplicated task {i}");
            }
        });
        let f = r.as_ref().err().and_then(ParallelError::task_failure);
        check!(
            world,
            f.is_some_and(|f| f.rank == culprit && f.task == Some(50) && f.panicked),
            "{threads} threads, {mode:?} failure on rank {culprit}: {r:?}"
        );
        check!(
            world,
            r.as_ref()
                .err()
                .is_some_and(|e| e.to_string().contains(&format!("process {culprit}"))),
            "{mode:?}: error text {r:?}"
        );
        let r = factory.parallel(mode).call_each(10, |_| ());
        check!(world, r.is_ok(), "{mode:?} after a failure: {r:?}");
    }

    // call_each names the failing task.
    let r = p.call_each(200, |i| {
        if i == 123 {
            Err("deliberate refusal")
        } else {
            Ok(())
        }
    });
    let f = r.as_ref().err().and_then(ParallelError::task_failure);
    check!(
        world,
        f.is_some_and(|f| f.task == Some(123) && f.first <= 123 && 123 < f.first + f.count),
        "failing task index: {r:?}"
    );
    check!(
        world,
        r.as_ref()
            .err()
            .is_some_and(|e| e.to_string().starts_with("task 123 (in task chunk")),
        "failing task text: {r:?}"
    );

    // A call from another thread works alone, where it needs no communication; with several
    // processes it ends the job (ci/suites/wrong_thread.sh).
    if size == 1 {
        let r = std::thread::scope(|s| s.spawn(|| p.call(10, |_, _| ())).join());
        let Ok(r) = r else {
            fail(world, "call from another thread panicked".to_string())
        };
        check!(world, r.is_ok(), "call from another thread: {r:?}");
    }
    let r = p.call_each(10, |_| ());
    check!(world, r.is_ok(), "call after the checks: {r:?}");

    mode_mismatch_checks(world, factory, threads);
    remote_handler_panic_check(world, factory, threads);
    handler_call_check(world, factory, threads);
    recreated_parallel_check(world, threads);
    result_codec_checks(world, factory, threads);
    local_checks(world, factory, threads);
}

/// Local calls are each process's own: a different `n` on every process, calls made by some
/// processes only, from another thread, and a failure seen only where it happened; then a
/// collective call still agrees (Local calls sent nothing the others could mistake for it).
fn local_checks(world: &Communicator, factory: &ParallelFactory, threads: usize) {
    let (rank, size) = (world.rank(), world.size());
    let local = factory.local();
    check!(
        world,
        local.kind() == expected_kind(TaskMode::Local, size, rank, threads)
            && local.workers() == threads,
        "{threads} threads: local {:?} with {} workers",
        local.kind(),
        local.workers()
    );
    // This process's share: 100 + 37 * rank tasks, each counted once, here.
    let n = 100 + 37 * rank;
    let hits: Vec<AtomicU64> = (0..n).map(|_| AtomicU64::new(0)).collect();
    let r = local.call(n, |first, count| {
        for h in &hits[first..first + count] {
            h.fetch_add(1, Ordering::Relaxed);
        }
    });
    check!(
        world,
        r.is_ok() && hits.iter().all(|h| h.load(Ordering::Relaxed) == 1),
        "local call of {n} tasks: {r:?}"
    );
    // Odd ranks make extra calls, from another thread, one of which fails: only here.
    if rank % 2 == 1 {
        let r = std::thread::scope(|s| {
            s.spawn(|| {
                local.call(5, |_, _| ())?;
                local.call_each(9, |i| if i == 4 { Err("local refusal") } else { Ok(()) })
            })
            .join()
        });
        let f = r
            .as_ref()
            .ok()
            .and_then(|r| r.as_ref().err())
            .and_then(ParallelError::task_failure);
        check!(
            world,
            f.is_some_and(|f| f.rank == rank && f.task == Some(4) && f.message == "local refusal"),
            "local failure on rank {rank}: {r:?}"
        );
    }
    // Results stay on the process that computed them, whatever their type.
    let mut got = 0u64;
    let r = local.call_collect(
        &CallOptions::new(),
        n,
        |first, count, out: &mut Vec<Untagged>| {
            out.extend((first..first + count).map(|i| Untagged::Int(i as u64)));
        },
        |v| {
            if let Untagged::Int(i) = v {
                got += i;
            }
        },
    );
    let want = (n * (n - 1) / 2) as u64;
    check!(
        world,
        r.is_ok() && got == want,
        "local call_collect: {r:?}, sum {got} (wanted {want})"
    );
    let r = factory.distributed().call(17, |_, _| ());
    check!(world, r.is_ok(), "collective call after local ones: {r:?}");
}

/// A parallel call from the root's result handler is refused at once (naming the handler),
/// the handler goes on, and the outer call completes on every rank: no hang (the root's inner
/// call used to wait in its agreement for ranks that wait for the outer call's end).
fn handler_call_check(world: &Communicator, factory: &ParallelFactory, threads: usize) {
    let (outer, inner) = (factory.distributed(), factory.root_only());
    let mut refusals = Vec::new();
    let mut got = 0usize;
    let r = outer.call_collect(
        &CallOptions::new().chunk_size(2),
        100,
        |first, count, out: &mut Vec<usize>| out.extend(first..first + count),
        |_| {
            got += 1;
            if got <= 2 {
                refusals.push(inner.call(4, |_, _| ()));
            }
        },
    );
    check!(
        world,
        r.is_ok(),
        "{threads} threads, outer call of a handler call: {r:?}"
    );
    if world.rank() == 0 {
        check!(
            world,
            got == 100,
            "{threads} threads: root got {got} of 100 results"
        );
        check!(
            world,
            refusals.len() == 2
                && refusals
                    .iter()
                    .all(|r| matches!(r, Err(ParallelError::Invalid(m))
                    if m.contains("result handler (on_result)"))),
            "{threads} threads, calls from a result handler: {refusals:?}"
        );
    }
    let r = outer.call(10, |_, _| ());
    check!(
        world,
        r.is_ok(),
        "{threads} threads, call after a handler call: {r:?}"
    );
}

/// Parallel objects recreated on the root only (`with_progress`, natural since progress shows
/// there only) restart their call count: the next Distributed calls still work everywhere
/// (they used to end the job with a scheduler protocol error).
fn recreated_parallel_check(world: &Communicator, threads: usize) {
    let mut factory = match ParallelFactory::new(world, threads) {
        Ok(f) => f.with_progress(ProgressConfig::quiet()),
        Err(e) => fail(world, format!("factory with {threads} threads: {e}")),
    };
    for round in 0..3 {
        let r = factory.distributed().call(10, |_, _| ());
        check!(world, r.is_ok(), "{threads} threads, round {round}: {r:?}");
        let mut got = 0usize;
        let r = factory.distributed().call_collect(
            &CallOptions::new().chunk_size(1),
            20,
            |first, count, out: &mut Vec<usize>| out.extend(first..first + count),
            |_| got += 1,
        );
        let want = if world.rank() == 0 { 20 } else { 0 };
        check!(
            world,
            r.is_ok() && got == want,
            "{threads} threads, round {round}, collect after recreating: {r:?}, {got} results"
        );
        if world.rank() == 0 {
            factory = factory.with_progress(ProgressConfig::quiet());
        }
    }
}

/// Results postcard cannot decode (an untagged enum).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
enum Untagged {
    Int(u64),
    Text(String),
}

/// Results postcard cannot encode (a sequence of unknown length).
#[derive(Debug, serde::Deserialize)]
struct UnknownLength(Vec<u64>);

impl serde::Serialize for UnknownLength {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().filter(|_| true))
    }
}

/// Results whose Serialize impl panics.
#[derive(Debug, serde::Deserialize)]
struct PanicsOnEncode(u64);

impl serde::Serialize for PanicsOnEncode {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        panic!("deliberate panic encoding result {}", self.0)
    }
}

/// One call_collect of `n` results of type `R` made by `make`; the root is slow so that the
/// other ranks surely compute some chunks.
fn collect_with<R>(
    world: &Communicator,
    factory: &ParallelFactory,
    make: fn(usize) -> R,
) -> (Result<(), ParallelError>, usize)
where
    R: serde::Serialize + serde::de::DeserializeOwned + Send,
{
    let rank = world.rank();
    let mut got = 0usize;
    let r = factory.distributed().call_collect(
        &CallOptions::new().chunk_size(3),
        300,
        |first, count, out: &mut Vec<R>| {
            if rank == 0 {
                std::thread::sleep(Duration::from_millis(20));
            }
            out.extend((first..first + count).map(make));
        },
        |_| got += 1,
    );
    (r, got)
}

/// Results that fail to encode on a rank or to decode on the root (or whose serde impl
/// panics) are a task failure reported on every rank, naming the type, the process that
/// computed them and what failed; the job goes on (it used to be aborted) and the next
/// call works. In one process the first result makes a round trip through postcard: the
/// calls fail there too.
fn result_codec_checks(world: &Communicator, factory: &ParallelFactory, threads: usize) {
    let size = world.size();
    let untagged = |i: usize| {
        if i.is_multiple_of(2) {
            Untagged::Int(i as u64)
        } else {
            Untagged::Text(i.to_string())
        }
    };
    let cases: [(&str, Result<(), ParallelError>, &str, bool); 3] = [
        (
            "untagged enum",
            collect_with(world, factory, untagged).0,
            "decoding the results (type mpitest_tasking::Untagged)",
            false,
        ),
        (
            "unknown length",
            collect_with(world, factory, |i| UnknownLength(vec![i as u64; 3])).0,
            "encoding the results (type mpitest_tasking::UnknownLength)",
            false,
        ),
        (
            "panicking Serialize",
            collect_with(world, factory, |i| PanicsOnEncode(i as u64)).0,
            "encoding the results (type mpitest_tasking::PanicsOnEncode)",
            true,
        ),
    ];
    for (what, r, want, panicked) in cases {
        if size == 1 {
            // Nothing travels, but the first result is sent through postcard and back so
            // that the failure shows in one process too.
            let f = r.as_ref().err().and_then(ParallelError::task_failure);
            check!(
                world,
                f.is_some_and(|f| f.rank == 0
                    && f.thread == threads
                    && f.panicked == panicked
                    && f.message.contains("cannot travel between processes")),
                "{threads} threads, {what} in one process: {r:?}"
            );
            continue;
        }
        let f = r.as_ref().err().and_then(ParallelError::task_failure);
        check!(
            world,
            f.is_some_and(|f| f.rank != 0
                && f.rank < size
                && f.thread == threads
                && f.panicked == panicked
                && f.count == 3
                && f.message.contains(want)),
            "{threads} threads, {what}: {r:?} (wanted a failure of another rank saying {want:?})"
        );
    }
    let (r, got) = collect_with(world, factory, |i| i as u64);
    let want = if world.rank() == 0 { 300 } else { 0 };
    check!(
        world,
        r.is_ok() && got == want,
        "{threads} threads, call after result codec failures: {r:?}, {got} results"
    );
}

/// Rank 0 calls in one mode, the others in another: the same Invalid on every rank, naming
/// the modes and ranks (with any n, including the ones whose messages used to decode as each
/// other's), no task runs, and the next call works.
fn mode_mismatch_checks(world: &Communicator, factory: &ParallelFactory, threads: usize) {
    let (rank, size) = (world.rank(), world.size());
    if size == 1 {
        return;
    }
    let others = if size == 2 { "rank 1" } else { "ranks 1" };
    for (mode0, mode_rest) in [
        (TaskMode::Distributed, TaskMode::Duplicated),
        (TaskMode::RootOnly, TaskMode::Distributed),
        (TaskMode::Duplicated, TaskMode::RootOnly),
    ] {
        for n in [0usize, 1, 10] {
            let mode = if rank == 0 { mode0 } else { mode_rest };
            let ran = AtomicU64::new(0);
            let r = factory.parallel(mode).call(n, |_, count| {
                ran.fetch_add(count as u64, Ordering::Relaxed);
            });
            let want = format!("task mode differs: {mode0:?} on rank 0; {mode_rest:?} on {others}");
            check!(
                world,
                matches!(&r, Err(ParallelError::Invalid(m))
                    if m.contains("processes disagree on the call") && m.contains(&want)),
                "{threads} threads, {mode0:?} on rank 0 and {mode_rest:?} elsewhere, n = {n}: \
                 {r:?} (wanted {want:?})"
            );
            check!(
                world,
                ran.load(Ordering::Relaxed) == 0,
                "tasks ran after a mode mismatch"
            );
            for m in [mode0, mode_rest] {
                let r = factory.parallel(m).call(n, |_, _| ());
                check!(world, r.is_ok(), "{m:?} call after a mode mismatch: {r:?}");
            }
        }
    }
}

/// The root's result handler panics on a result computed by the last rank: every rank gets
/// the failure, which names the chunk holding that result and the process that computed it.
fn remote_handler_panic_check(world: &Communicator, factory: &ParallelFactory, threads: usize) {
    let (rank, size) = (world.rank(), world.size());
    if size == 1 {
        return;
    }
    let last = size - 1;
    let r = factory.distributed().call_collect(
        &CallOptions::new().chunk_size(3),
        300,
        |first, count, out: &mut Vec<(u64, u64)>| {
            // The root is slow, so the last rank surely computes some chunks.
            let pause = if rank == 0 { 20 } else { 1 };
            std::thread::sleep(Duration::from_millis(pause));
            out.extend((first..first + count).map(|i| (i as u64, rank as u64)));
        },
        |(i, from)| {
            if from == last as u64 {
                panic!("deliberate handler panic on result {i} from rank {from}");
            }
        },
    );
    let f = r.as_ref().err().and_then(ParallelError::task_failure);
    let Some(f) = f else {
        fail(
            world,
            format!("{threads} threads, remote handler panic: {r:?}"),
        )
    };
    // The index of the result the handler panicked on lies in the reported chunk.
    let index: Option<usize> = f
        .message
        .split("on result ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|t| t.parse().ok());
    check!(
        world,
        f.rank == 0
            && f.thread == threads
            && f.panicked
            && f.count == 3
            && index.is_some_and(|i| f.first <= i && i < f.first + f.count)
            && f.message
                .contains(&format!("results computed on process {last}")),
        "{threads} threads, remote handler panic: {f:?}"
    );
    let r = factory.distributed().call(10, |_, _| ());
    check!(world, r.is_ok(), "call after a handler panic: {r:?}");
}

fn main() {
    quiet_deliberate_panics();
    let universe = match prism_comm::init() {
        Ok(u) => u,
        Err(e) => {
            eprintln!("mpitest_tasking: init failed: {e}");
            std::process::exit(1);
        }
    };
    universe.abort_on_panic();
    let world = universe.world();
    let (rank, size) = (world.rank(), world.size());

    // max_threads 0: each process's share of its node's cores. This machine is one node: the
    // threads of all processes together fill its CPUs (or one per process) and no more.
    match ParallelFactory::new(&world, 0) {
        Ok(auto) => {
            let cpus = std::fs::read_to_string("/sys/devices/system/cpu/online")
                .ok()
                .and_then(|l| prism_comm::cpus::parse_cpu_list(l.trim()))
                .map_or(1, |c| c.len());
            let total = auto.total_workers();
            check!(
                &world,
                total >= size && total <= cpus.max(size),
                "max_threads 0: {total} threads in all on {size} processes and {cpus} CPUs"
            );
            if size == 1 {
                check!(
                    &world,
                    total == prism_comm::cpus::usable_cores(),
                    "max_threads 0 alone: {total} threads"
                );
            }
        }
        Err(e) => fail(&world, format!("factory with max_threads 0: {e}")),
    }

    for threads in 1..=3usize {
        let factory = match ParallelFactory::new(&world, threads) {
            Ok(f) => f.with_progress(ProgressConfig::quiet()),
            Err(e) => fail(&world, format!("factory with {threads} threads: {e}")),
        };
        check!(
            &world,
            factory.total_workers() == threads * size,
            "total workers {}",
            factory.total_workers()
        );

        for mode in [
            TaskMode::Distributed,
            TaskMode::Duplicated,
            TaskMode::RootOnly,
            TaskMode::Local,
        ] {
            let p = factory.parallel(mode);
            let want = expected_kind(mode, size, rank, threads);
            check!(
                &world,
                p.kind() == want,
                "{mode:?} with {threads} threads: {:?}, expected {want:?}",
                p.kind()
            );

            for n in [0usize, 1, 2, 3, 7, 1000] {
                for chunk in [None, Some(1), Some(64)] {
                    let hits: Vec<AtomicU64> = (0..n).map(|_| AtomicU64::new(0)).collect();
                    let opts = match chunk {
                        Some(c) => CallOptions::new().chunk_size(c),
                        None => CallOptions::new(),
                    };
                    let r = p.call_with(&opts, n, |first, count| {
                        for h in &hits[first..first + count] {
                            h.fetch_add(1, Ordering::Relaxed);
                        }
                    });
                    check!(&world, r.is_ok(), "{mode:?} n={n}: {r:?}");
                    let local: Vec<u64> = hits.iter().map(|h| h.load(Ordering::Relaxed)).collect();
                    let mut total = local.clone();
                    if let Err(e) = world.sum_to_all_u64(&mut total) {
                        fail(&world, format!("sum_to_all: {e}"));
                    }
                    let (want_local, want_total) = match mode {
                        TaskMode::Distributed => (None, 1),
                        TaskMode::RootOnly => (Some(u64::from(rank == 0)), 1),
                        TaskMode::Duplicated | TaskMode::Local => (Some(1), size as u64),
                    };
                    check!(
                        &world,
                        total.iter().all(|&t| t == want_total),
                        "{mode:?} {threads} threads n={n} chunk={chunk:?}: totals {:?}",
                        &total[..total.len().min(20)]
                    );
                    if let Some(w) = want_local {
                        check!(
                            &world,
                            local.iter().all(|&l| l == w),
                            "{mode:?} {threads} threads n={n}: local counts {:?}",
                            &local[..local.len().min(20)]
                        );
                    }
                }
            }
        }

        // As many long tasks as workers: one each. A rank's prefetch used to take a second
        // task while another rank got none and sat idle.
        if threads == 1 {
            let ran = AtomicU64::new(0);
            let r = factory.distributed().call_with(
                &CallOptions::new().chunk_size(1),
                size,
                |_, count| {
                    ran.fetch_add(count as u64, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(800));
                },
            );
            check!(&world, r.is_ok(), "long tasks: {r:?}");
            let mut per_rank = vec![0u64; size];
            per_rank[rank] = ran.load(Ordering::Relaxed);
            if let Err(e) = world.sum_to_all_u64(&mut per_rank) {
                fail(&world, format!("sum_to_all: {e}"));
            }
            check!(
                &world,
                per_rank.iter().all(|&n| n == 1),
                "{size} long tasks on {size} workers ran {per_rank:?} per rank"
            );
        }

        // A failure on a non-root rank (the root itself when alone): every rank gets it.
        let culprit = size - 1;
        let p = factory.distributed();
        for panics in [false, true] {
            let r = p.call_with(&CallOptions::new().chunk_size(1), 300, |first, _| {
                // The root is slow, so the culprit surely gets chunks however loaded the
                // machine is (the root alone would need seconds for all of them).
                let pause = if rank == 0 && size > 1 { 20_000 } else { 300 };
                std::thread::sleep(Duration::from_micros(pause));
                if rank == culprit {
                    if panics {
                        panic!("deliberate panic in task {first}");
                    }
                    return Err(format!("deliberate error in task {first}"));
                }
                Ok(())
            });
            let Err(err) = r else {
                fail(
                    &world,
                    format!("{threads} threads: the failing call returned Ok"),
                );
            };
            let Some(f) = err.task_failure() else {
                fail(&world, format!("not a task failure: {err}"));
            };
            check!(
                &world,
                f.rank == culprit && f.thread < threads && f.count == 1 && f.panicked == panics,
                "failure {f:?} (culprit {culprit}, {threads} threads)"
            );
            check!(
                &world,
                f.message.contains("deliberate") && f.message.contains(&f.first.to_string()),
                "failure message {:?}",
                f.message
            );
            let text = err.to_string();
            check!(
                &world,
                text.contains(&format!("process {culprit}")),
                "error text {text}"
            );

            // The next call works and covers everything once.
            let hits: Vec<AtomicU64> = (0..500).map(|_| AtomicU64::new(0)).collect();
            let r = p.call_each(500, |i| {
                hits[i].fetch_add(1, Ordering::Relaxed);
            });
            check!(&world, r.is_ok(), "call after a failure: {r:?}");
            let mut total: Vec<u64> = hits.iter().map(|h| h.load(Ordering::Relaxed)).collect();
            world
                .sum_to_all_u64(&mut total)
                .unwrap_or_else(|e| fail(&world, e.to_string()));
            check!(
                &world,
                total.iter().all(|&t| t == 1),
                "coverage after a failure"
            );
        }

        agreement_and_outcome_checks(&world, &factory, threads);

        // Results streamed to the root, once each; nothing reaches the others.
        let mut got = vec![0u32; 2000];
        let mut received = 0usize;
        let r = p.call_collect(
            &CallOptions::new(),
            2000,
            |first, count, out: &mut Vec<(u32, u64)>| {
                for i in first..first + count {
                    out.push((i as u32, TaskRng::new(5, i as u64).next_u64()));
                }
            },
            |(i, v)| {
                received += 1;
                if v == TaskRng::new(5, u64::from(i)).next_u64() {
                    got[i as usize] += 1;
                }
            },
        );
        check!(&world, r.is_ok(), "call_collect: {r:?}");
        if rank == 0 {
            check!(
                &world,
                got.iter().all(|&g| g == 1),
                "root did not get every result once"
            );
        } else {
            check!(&world, received == 0, "rank {rank} got {received} results");
        }

        // Progress counted across processes, shown on the root only.
        let (cfg, lines) = ProgressConfig::capture(Duration::ZERO);
        let factory = factory.with_progress(cfg);
        let r =
            factory
                .distributed()
                .call_with(&CallOptions::new().progress("work"), 3000, |_, _| ());
        check!(&world, r.is_ok(), "progress call: {r:?}");
        let lines = lines.lock().map(|l| l.clone()).unwrap_or_default();
        if rank == 0 {
            let last = lines.last().cloned().unwrap_or_default();
            check!(
                &world,
                last.starts_with("work: 3000/3000 done"),
                "progress lines {lines:?}"
            );
        } else {
            check!(
                &world,
                lines.is_empty(),
                "non-root showed progress {lines:?}"
            );
        }

        // Random streams: an integer tally identical to the serial one.
        let tally = AtomicU64::new(0);
        let r = factory.distributed().call(4000, |first, count| {
            let s: u64 = (first..first + count)
                .map(|i| TaskRng::new(11, i as u64).next_u64() >> 20)
                .sum();
            tally.fetch_add(s, Ordering::Relaxed);
        });
        check!(&world, r.is_ok(), "tally call: {r:?}");
        let mut t = [tally.load(Ordering::Relaxed)];
        world
            .sum_to_all_u64(&mut t)
            .unwrap_or_else(|e| fail(&world, e.to_string()));
        let serial: u64 = (0..4000u64)
            .map(|i| TaskRng::new(11, i).next_u64() >> 20)
            .sum();
        check!(&world, t[0] == serial, "tally {} vs serial {serial}", t[0]);
    }

    world.barrier().expect("barrier");
    if rank == 0 {
        println!("mpitest_tasking: {size} processes: all checks passed");
    }
}
