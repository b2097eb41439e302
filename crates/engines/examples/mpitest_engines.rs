//! Multi-process test of the engines (run by CI under `mpirun -n 1..4`).
//!
//! For `MpiEngine` and `HybridEngine` (2 threads, and uneven thread counts), dynamic and
//! static, with default and with tiny batches (so batching, prefetch and back-pressure across
//! processes are exercised): every task's result reaches `update` on the root exactly once and
//! equals the serial result; a task type that is not a render; a render error and a render
//! panic on a non-root process and an update error on the root end the run with the same
//! error on every process,
//! and the engine works again afterwards; different task lists are refused everywhere; a
//! parallel call (prism-tasking) from inside render is refused on several processes; as many
//! long tasks as render threads run one per thread.
//! Exits non-zero on any process where something mismatched.

use prism_comm::Communicator;
use prism_engines::{
    AnyEngine, Engine, EngineError, HybridEngine, MpiEngine, MultiThreadEngine, Options, Schedule,
    SerialEngine, SingleThread,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

fn fail(world: &Communicator, what: String) -> ! {
    eprintln!("mpitest_engines: process {}: FAILED: {what}", world.rank());
    world.abort(1)
}

macro_rules! check {
    ($world:expr, $cond:expr, $($fmt:tt)+) => {
        if !$cond {
            fail($world, format!($($fmt)+));
        }
    };
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Tile {
    id: usize,
    spp: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TileResult {
    id: usize,
    radiance: Vec<f64>,
}

fn tiles(n: usize) -> Vec<Tile> {
    (0..n)
        .map(|id| Tile {
            id,
            spp: 1 + (id % 5) as u32,
        })
        .collect()
}

/// Uneven, deterministic work; a short sleep so every process gets a share under
/// oversubscription.
fn shade(t: &Tile) -> Result<TileResult, String> {
    if t.id.is_multiple_of(16) {
        std::thread::sleep(Duration::from_micros(300));
    }
    let radiance = (0..t.spp * 3)
        .map(|k| ((t.id as f64) * 0.37 + f64::from(k)).cos())
        .collect();
    Ok(TileResult { id: t.id, radiance })
}

fn engines(world: &Communicator) -> Vec<(String, AnyEngine)> {
    let tiny = Options {
        batch_results: 3,
        batch_bytes: 200,
        outbox_results: 2,
        outbox_bytes: 300,
        batches_in_flight: 1,
        prefetch_chunks: 1,
        chunk_size: Some(2),
        ..Options::default()
    };
    let uneven = if world.rank() == 0 { 1 } else { 2 };
    let mut v: Vec<(String, AnyEngine)> = Vec::new();
    for schedule in [Schedule::Dynamic, Schedule::StaticRoundRobin] {
        let mk = |r: Result<AnyEngine, EngineError>| {
            r.unwrap_or_else(|e| fail(world, format!("making an engine: {e}")))
        };
        v.push((
            format!("mpi {schedule:?}"),
            // Batches cut by count only (no age limit), so the messages can be counted exactly.
            mk(MpiEngine::new(world).map(|e| {
                e.with_options(Options {
                    schedule,
                    batch_delay: Duration::from_secs(600),
                    ..Options::default()
                })
                .into()
            })),
        ));
        // A single render thread runs on the main thread of every process but the root by
        // default: also on its own thread everywhere, and on the main thread everywhere, with
        // tight bounds (a main thread that renders cannot wait on its own outbox).
        for (label, single_thread) in [
            ("own thread", SingleThread::OwnThread),
            ("main thread, tiny batches", SingleThread::MainThread),
        ] {
            let base = if single_thread == SingleThread::MainThread {
                tiny.clone()
            } else {
                Options::default()
            };
            v.push((
                format!("mpi {schedule:?} {label}"),
                mk(MpiEngine::new(world).map(|e| {
                    e.with_options(Options {
                        schedule,
                        single_thread,
                        ..base
                    })
                    .into()
                })),
            ));
        }
        v.push((
            format!("hybrid(2) {schedule:?}"),
            mk(HybridEngine::new(world, 2).map(|e| e.with_schedule(schedule).into())),
        ));
        v.push((
            format!("hybrid(2) {schedule:?} tiny batches"),
            mk(HybridEngine::new(world, 2).map(|e| {
                e.with_options(Options {
                    schedule,
                    ..tiny.clone()
                })
                .into()
            })),
        ));
        v.push((
            format!("hybrid(uneven) {schedule:?}"),
            mk(HybridEngine::new(world, uneven).map(|e| e.with_schedule(schedule).into())),
        ));
    }
    v
}

fn main() {
    let universe = match prism_comm::init() {
        Ok(u) => u,
        Err(e) => {
            eprintln!("mpitest_engines: init failed: {e}");
            std::process::exit(1);
        }
    };
    let world = universe.world();
    let (rank, size) = (world.rank(), world.size());
    // The panics below are expected: keep their messages out of the log.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = info.to_string();
        if !text.contains("NaN in tile") && !text.contains("grumpy result") {
            default_hook(info);
        }
    }));
    let n = 203;
    let tasks = tiles(n);

    let mut reference: Vec<Option<TileResult>> = vec![None; n];
    // Every rank makes the reference for itself.
    SerialEngine::new()
        .local()
        .run(tasks.clone(), shade, |r: TileResult| {
            let id = r.id;
            reference[id] = Some(r);
            Ok(())
        })
        .unwrap_or_else(|e| fail(&world, format!("serial: {e}")));

    // Without local(), the single-process engines still run every task in each process,
    // but with several processes the job's rank 0 warns once (ci/suites/examples_smoke.sh
    // counts the warnings).
    let single: [(&str, AnyEngine); 2] = [
        ("SerialEngine", SerialEngine::new().into()),
        ("MultiThreadEngine", MultiThreadEngine::new(2).into()),
    ];
    for (name, engine) in single {
        let mut applied = 0;
        let outcome = engine.run(tasks.clone(), shade, |_: TileResult| {
            applied += 1;
            Ok(())
        });
        check!(
            &world,
            outcome.is_ok() && applied == n,
            "{name} in one of {size} processes: {outcome:?}, {applied} of {n} applied"
        );
    }

    for (name, engine) in engines(&world) {
        check!(&world, engine.processes() == size, "{name}: processes");
        check!(&world, engine.is_root() == (rank == 0), "{name}: is_root");

        // 1. Every result once, equal to the serial one.
        for round in 0..2 {
            let mut seen = vec![0u32; n];
            let mut wrong = Vec::new();
            let stats = engine
                .run_indexed(&tasks, shade, |i, r: TileResult| {
                    seen[i] += 1;
                    if Some(&r) != reference[i].as_ref() || r.id != i {
                        wrong.push(i);
                    }
                    Ok(())
                })
                .unwrap_or_else(|e| fail(&world, format!("{name}: run {round}: {e}")));
            if rank == 0 {
                let bad: Vec<usize> = (0..n).filter(|&i| seen[i] != 1).collect();
                check!(
                    &world,
                    bad.is_empty(),
                    "{name}: tasks not seen exactly once: {bad:?}"
                );
                check!(
                    &world,
                    wrong.is_empty(),
                    "{name}: results differ from serial: {wrong:?}"
                );
                check!(
                    &world,
                    stats.all.len() == size,
                    "{name}: stats of {} processes",
                    stats.all.len()
                );
                let rendered: usize = stats.all.iter().map(|p| p.rendered).sum();
                check!(&world, rendered == n, "{name}: {rendered} rendered in all");
                if size > 1 {
                    check!(
                        &world,
                        stats.messages_sent() > 0,
                        "{name}: no messages counted"
                    );
                }
                if name == "mpi StaticRoundRobin" {
                    // Batched: results go up 64 to a message. (A process's counters travel in
                    // its finish notice, so they do not count that message itself.)
                    let batch = Options::default().batch_results;
                    for p in &stats.all[1..] {
                        let want = p.rendered.div_ceil(batch) as u64;
                        check!(
                            &world,
                            p.messages_sent == want,
                            "{name}: process {} sent {} messages for {} results",
                            p.rank,
                            p.messages_sent,
                            p.rendered
                        );
                    }
                }
                if round == 0 {
                    let per: Vec<usize> = stats.all.iter().map(|p| p.rendered).collect();
                    println!(
                        "{name}: rendered per process {per:?}, {} messages, {} bytes, comm {:.2}%",
                        stats.messages_sent(),
                        stats.bytes_sent(),
                        100.0 * stats.comm_fraction()
                    );
                }
            } else {
                check!(
                    &world,
                    seen.iter().all(|&s| s == 0),
                    "{name}: update ran off the root"
                );
            }
            check!(&world, stats.tasks == n, "{name}: stats.tasks");
            check!(
                &world,
                stats.workers == engine.worker_count(),
                "{name}: workers"
            );
        }

        // 2. A task type that is not a render: strings in, lengths out, summed on the root.
        let words: Vec<String> = (0..57).map(|i| "ab".repeat(i % 9)).collect();
        let mut total = 0usize;
        let mut count = 0usize;
        engine
            .run(
                words.clone(),
                |w: &String| Ok::<_, String>(w.len()),
                |len| {
                    total += len;
                    count += 1;
                    Ok(())
                },
            )
            .unwrap_or_else(|e| fail(&world, format!("{name}: words: {e}")));
        if rank == 0 {
            let expect: usize = words.iter().map(String::len).sum();
            check!(
                &world,
                (total, count) == (expect, 57),
                "{name}: words gave {total} in {count}"
            );
        }

        // 3. A render error, then a render panic, on the task of the last worker. Under the
        //    static schedule that worker belongs to the last process (not the root when there
        //    are several); under the dynamic one, whichever process rendered it is named.
        let k = engine.worker_count() - 1;
        for panics in [false, true] {
            let rendered_k = AtomicBool::new(false);
            let r = engine.run(
                tasks.clone(),
                |t: &Tile| {
                    if t.id == k {
                        rendered_k.store(true, Ordering::Relaxed);
                        if panics {
                            panic!("NaN in tile {k}");
                        }
                        return Err(format!("broken tile {k}"));
                    }
                    shade(t)
                },
                |_| Ok(()),
            );
            let flags: Vec<bool> = world
                .all_gather(&rendered_k.load(Ordering::Relaxed))
                .unwrap_or_else(|e| fail(&world, e.to_string()));
            let renderer = flags.iter().position(|&f| f);
            if name.contains("StaticRoundRobin") {
                check!(
                    &world,
                    renderer == Some(size - 1),
                    "{name}: task {k} rendered by {renderer:?}"
                );
            }
            let want = if panics {
                format!("NaN in tile {k}")
            } else {
                format!("broken tile {k}")
            };
            check!(
                &world,
                matches!(&r, Err(EngineError::Render { rank: r, task, panicked, message, .. })
                    if Some(*r) == renderer && *task == k && *panicked == panics && *message == want),
                "{name}: render failure (panic: {panics}) gave {r:?}, renderer {renderer:?}"
            );
        }

        // 4. An update error on the root: every process gets it.
        let r = engine.run(tasks.clone(), shade, |t: TileResult| {
            if t.id == 77 {
                Err("cannot write tile 77".to_string())
            } else {
                Ok(())
            }
        });
        check!(
            &world,
            matches!(
                &r,
                Err(EngineError::Update {
                    rank: 0,
                    task: 77,
                    ..
                })
            ),
            "{name}: update failure gave {r:?}"
        );

        // 5. Still usable.
        let mut seen = 0;
        engine
            .run(tasks.clone(), shade, |_| {
                seen += 1;
                Ok(())
            })
            .unwrap_or_else(|e| fail(&world, format!("{name}: run after failures: {e}")));
        check!(
            &world,
            rank != 0 || seen == n,
            "{name}: {seen} results after failures"
        );
    }

    // 6. Different task lists are refused on every process.
    if size > 1 {
        let engine = MpiEngine::new(&world).unwrap_or_else(|e| fail(&world, e.to_string()));
        let mine = if rank == 1 { tiles(n - 1) } else { tiles(n) };
        let r = engine.run(mine, shade, |_| Ok(()));
        check!(
            &world,
            matches!(&r, Err(EngineError::TaskListMismatch { rank: 1, .. })),
            "mismatched lists gave {r:?}"
        );
    }

    // 6a. Processes that differ in schedule are refused on every process (a static process
    // among dynamic ones would render its round-robin share and the root would hand those
    // tasks out again).
    if size > 1 {
        let schedule = if rank == size - 1 {
            Schedule::StaticRoundRobin
        } else {
            Schedule::Dynamic
        };
        let engine = MpiEngine::new(&world)
            .unwrap_or_else(|e| fail(&world, e.to_string()))
            .with_options(Options {
                schedule,
                ..Options::default()
            });
        let r = engine.run(tiles(n), shade, |_| Ok(()));
        let said = r
            .as_ref()
            .err()
            .map(ToString::to_string)
            .unwrap_or_default();
        check!(
            &world,
            matches!(&r, Err(EngineError::Invalid(_)))
                && said.contains(&format!("process {}", size - 1))
                && said.contains("same schedule"),
            "mismatched schedules gave {r:?}"
        );
    }

    // 6b. A result whose encoding panics on a non-root process fails the run everywhere.
    if size > 1 {
        struct Grumpy(u32);
        impl Serialize for Grumpy {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                assert!(self.0 != 1, "grumpy result {}", self.0);
                s.serialize_u32(self.0)
            }
        }
        impl<'de> Deserialize<'de> for Grumpy {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                u32::deserialize(d).map(Grumpy)
            }
        }
        let engine = MpiEngine::new(&world)
            .unwrap_or_else(|e| fail(&world, e.to_string()))
            .with_schedule(Schedule::StaticRoundRobin);
        let r = engine.run(
            (0..20u32).collect(),
            |&i| Ok::<_, String>(Grumpy(i)),
            |_| Ok(()),
        );
        check!(
            &world,
            matches!(&r, Err(EngineError::Codec { rank: 1, task: Some(1), message, .. }) if message.contains("grumpy result 1")),
            "panicking encoding gave {:?}",
            r.map(|s| s.tasks)
        );
    }

    // 6c. A run called from inside a render (nested) leaves the engine usable: the next run
    //     of every process is the same run, not one process a run ahead of the others. (A run
    //     from a thread other than MPI's on one process of several ends the job instead, as
    //     the others may wait for it: ci/suites/wrong_thread.sh.)
    {
        let engine = HybridEngine::new(&world, 2).unwrap_or_else(|e| fail(&world, e.to_string()));
        let inline = MpiEngine::new(&world)
            .unwrap_or_else(|e| fail(&world, e.to_string()))
            .with_options(Options {
                single_thread: SingleThread::MainThread,
                ..Options::default()
            });
        let r = inline.run(
            tiles(9),
            |t: &Tile| {
                if t.id == 4 {
                    let inner = inline.run(tiles(2), shade, |_| Ok(()));
                    let said = inner.err().map(|e| e.to_string()).unwrap_or_default();
                    return Err(said);
                }
                shade(t)
            },
            |_| Ok(()),
        );
        check!(
            &world,
            matches!(&r, Err(EngineError::Render { task: 4, message, .. }) if message.contains("already running")),
            "a nested run gave {r:?}"
        );
        let mut seen = 0;
        engine
            .run(tasks.clone(), shade, |_| {
                seen += 1;
                Ok(())
            })
            .unwrap_or_else(|e| fail(&world, format!("after a refused run: {e}")));
        let mut seen_inline = 0;
        inline
            .run(tasks.clone(), shade, |_| {
                seen_inline += 1;
                Ok(())
            })
            .unwrap_or_else(|e| fail(&world, format!("after a nested run: {e}")));
        check!(
            &world,
            rank != 0 || (seen, seen_inline) == (n, n),
            "{seen} and {seen_inline} results after refused runs"
        );
    }

    // 7. The engines' results combine like the serial ones, whatever the split (order-free
    //    check of the whole run via a map on the root).
    let engine = HybridEngine::new(&world, 2).unwrap_or_else(|e| fail(&world, e.to_string()));
    let mut by_id = BTreeMap::new();
    engine
        .run(tasks.clone(), shade, |r: TileResult| {
            by_id.insert(r.id, r.radiance.iter().sum::<f64>());
            Ok(())
        })
        .unwrap_or_else(|e| fail(&world, e.to_string()));
    if rank == 0 {
        check!(&world, by_id.len() == n, "map has {}", by_id.len());
        for (id, sum) in &by_id {
            let want: f64 = reference[*id]
                .as_ref()
                .map_or(0.0, |r| r.radiance.iter().sum());
            check!(&world, *sum == want, "tile {id}: {sum} != {want}");
        }
    }

    // 8. A parallel call from inside render: across processes it would start a collective in
    //    the middle of the engine's run, so it is refused (the same error on every process),
    //    from render threads, from a main thread that renders and from the root's update
    //    alike; alone it just runs.
    let factory = prism_tasking::ParallelFactory::new(&world, 1)
        .unwrap_or_else(|e| fail(&world, format!("factory: {e}")))
        .with_progress(prism_tasking::ProgressConfig::quiet());
    let inner = factory.duplicated();
    for (label, engine) in [
        (
            "hybrid(2)",
            HybridEngine::new(&world, 2).map(AnyEngine::from),
        ),
        (
            "mpi, main thread",
            MpiEngine::new(&world).map(|e| {
                e.with_options(Options {
                    single_thread: SingleThread::MainThread,
                    ..Options::default()
                })
                .into()
            }),
        ),
    ] {
        let engine = engine.unwrap_or_else(|e| fail(&world, format!("{label}: {e}")));
        let from_render = engine.run(
            tasks[..8].to_vec(),
            |t: &Tile| inner.call(4, |_, _| ()).map(|()| t.id),
            |_| Ok(()),
        );
        // `update` runs on the root's MPI thread, mid-run: refused alike.
        let from_update = engine.run(
            tasks[..8].to_vec(),
            |t: &Tile| Ok::<_, prism_tasking::ParallelError>(t.id),
            |_| inner.call(4, |_, _| ()),
        );
        for (what, r) in [("render", from_render), ("update", from_update)] {
            if size > 1 {
                check!(
                    &world,
                    r.as_ref().is_err_and(|e| e
                        .to_string()
                        .contains("from inside a render engine's render or update")),
                    "{label}: a parallel call from {what}: {r:?}"
                );
            } else {
                check!(
                    &world,
                    r.is_ok(),
                    "{label}: a parallel call from {what} alone: {r:?}"
                );
            }
        }
    }
    let r = inner.call(4, |_, _| ());
    check!(
        &world,
        r.is_ok(),
        "a parallel call after the refused ones: {r:?}"
    );

    // 0 threads: each process's share of its node's cores, which together fill the node's CPUs
    // (or one per process) and no more (this machine is one node).
    let auto = HybridEngine::new(&world, 0)
        .unwrap_or_else(|e| fail(&world, format!("hybrid with 0 threads: {e}")));
    let cpus = std::fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|l| prism_comm::cpus::parse_cpu_list(l.trim()))
        .map_or(1, |c| c.len());
    check!(
        &world,
        (size..=cpus.max(size)).contains(&auto.worker_count()),
        "hybrid with 0 threads: {} threads in all on {size} processes and {cpus} CPUs",
        auto.worker_count()
    );

    // As many long tasks as render threads: one each, on every dynamic layout. A process's
    // first grant used to include its prefetch, leaving another process with nothing.
    // With chunks of 2, twice as many tasks as threads: one chunk each (the rule counts
    // chunks, not tasks).
    let pairs = Options {
        chunk_size: Some(2),
        ..Options::default()
    };
    let layouts: [(&str, usize, Result<AnyEngine, EngineError>); 5] = [
        ("mpi", 1, MpiEngine::new(&world).map(Into::into)),
        (
            "mpi, own thread",
            1,
            MpiEngine::new(&world).map(|e| {
                e.with_options(Options {
                    single_thread: SingleThread::OwnThread,
                    ..Options::default()
                })
                .into()
            }),
        ),
        ("hybrid(2)", 1, HybridEngine::new(&world, 2).map(Into::into)),
        (
            "mpi, chunks of 2",
            2,
            MpiEngine::new(&world).map(|e| e.with_options(pairs.clone()).into()),
        ),
        (
            "hybrid(2), chunks of 2",
            2,
            HybridEngine::new(&world, 2).map(|e| e.with_options(pairs.clone()).into()),
        ),
    ];
    for (label, per_worker, engine) in layouts {
        let engine = engine.unwrap_or_else(|e| fail(&world, format!("{label}: {e}")));
        let workers = engine.worker_count();
        let n = workers * per_worker;
        let mut per_rank = vec![0usize; size];
        engine
            .run(
                (0..n).collect::<Vec<usize>>(),
                |_| {
                    std::thread::sleep(Duration::from_millis(800 / per_worker as u64));
                    Ok::<usize, String>(rank)
                },
                |r: usize| {
                    per_rank[r] += 1;
                    Ok::<(), String>(())
                },
            )
            .unwrap_or_else(|e| fail(&world, format!("{label}: long tasks: {e}")));
        if rank == 0 {
            let want = n / size;
            check!(
                &world,
                per_rank.iter().all(|&k| k == want),
                "{label}: {n} long tasks on {workers} workers ran {per_rank:?} per process"
            );
        }
    }

    world.barrier().expect("barrier");
    if rank == 0 {
        println!("mpitest_engines: {size} processes: all checks passed");
    }
}
