//! The engines in one process: Serial, MultiThread, and the multi-process engines in the
//! one-process world (which run the root's whole machinery without messages).

use prism_engines::{
    AnyEngine, Engine, EngineError, HybridEngine, MpiEngine, MultiThreadEngine, Options, RunStats,
    Schedule, SerialEngine, SingleThread,
};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread::ThreadId;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Tile {
    id: usize,
    x: u32,
    y: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Pixels {
    id: usize,
    values: Vec<f32>,
}

fn tiles(n: usize) -> Vec<Tile> {
    (0..n)
        .map(|id| Tile {
            id,
            x: (id % 7) as u32,
            y: (id / 7) as u32,
        })
        .collect()
}

/// Deterministic work whose cost grows with the tile id.
fn shade(t: &Tile) -> Result<Pixels, String> {
    let len = 4 + t.id % 13;
    let values = (0..len)
        .map(|k| ((t.x * 31 + t.y * 17 + k as u32) as f32).sin())
        .collect();
    Ok(Pixels { id: t.id, values })
}

fn world() -> prism_comm::Communicator {
    prism_comm::init().unwrap().world()
}

fn every_engine() -> Vec<(String, AnyEngine)> {
    let mut v: Vec<(String, AnyEngine)> = vec![("serial".into(), SerialEngine::new().into())];
    for schedule in [Schedule::Dynamic, Schedule::StaticRoundRobin] {
        for threads in [1, 2, 4] {
            v.push((
                format!("threads({threads}) {schedule:?}"),
                MultiThreadEngine::new(threads)
                    .with_schedule(schedule)
                    .into(),
            ));
        }
        v.push((
            format!("mpi {schedule:?}"),
            MpiEngine::new(&world())
                .unwrap()
                .with_schedule(schedule)
                .into(),
        ));
        v.push((
            format!("hybrid(3) {schedule:?}"),
            HybridEngine::new(&world(), 3)
                .unwrap()
                .with_schedule(schedule)
                .into(),
        ));
    }
    v
}

/// Runs `tasks` and returns the results by task index, checking each arrives once.
fn collect(engine: &impl Engine, tasks: &[Tile]) -> Vec<Pixels> {
    let mut got: Vec<Option<Pixels>> = vec![None; tasks.len()];
    let stats = engine
        .run_indexed(tasks, shade, |i, p: Pixels| {
            assert_eq!(i, p.id, "update is given the task's own index");
            assert!(got[i].replace(p).is_none(), "task {i} applied twice");
            Ok(())
        })
        .unwrap();
    assert_eq!(stats.tasks, tasks.len());
    assert_eq!(stats.local.rendered, tasks.len());
    assert_eq!(stats.workers, engine.worker_count());
    got.into_iter()
        .enumerate()
        .map(|(i, p)| p.unwrap_or_else(|| panic!("task {i} never applied")))
        .collect()
}

#[test]
fn every_engine_gives_the_serial_results() {
    let tasks = tiles(301);
    let reference = collect(&SerialEngine::new(), &tasks);
    for (name, engine) in every_engine() {
        assert_eq!(collect(&engine, &tasks), reference, "{name}");
        // Reusable: a second run on the same engine gives the same.
        assert_eq!(
            collect(&engine, &tasks[..17]),
            reference[..17],
            "{name} again"
        );
    }
}

/// Options set on an `AnyEngine` reach the engine inside it, which keeps its kind.
#[test]
fn an_any_engine_takes_options_and_a_schedule() {
    let tasks = tiles(40);
    let reference = collect(&SerialEngine::new(), &tasks);
    let engines: [AnyEngine; 2] = [SerialEngine::new().into(), MultiThreadEngine::new(2).into()];
    for engine in engines {
        let name = engine.name();
        let engine = engine
            .with_options(Options {
                outbox_results: 3,
                ..Options::default()
            })
            .with_schedule(Schedule::StaticRoundRobin);
        assert_eq!(engine.name(), name);
        assert_eq!(engine.options().schedule, Schedule::StaticRoundRobin);
        assert_eq!(engine.options().outbox_results, 3, "{name}");
        assert_eq!(collect(&engine, &tasks), reference, "{name}");
        // A single-process engine is its own root: its counters are the whole run's.
        let stats = engine
            .run(tasks.clone(), |t: &Tile| Ok::<_, String>(t.id), |_| Ok(()))
            .unwrap();
        assert_eq!(stats.all, vec![stats.local.clone()], "{name}");
    }
}

#[test]
fn empty_and_single_task_lists() {
    for (name, engine) in every_engine() {
        let stats = engine
            .run(Vec::<Tile>::new(), shade, |_| {
                Err("no result expected".to_string())
            })
            .unwrap();
        assert_eq!(stats.tasks, 0, "{name}");
        assert_eq!(collect(&engine, &tiles(1)).len(), 1, "{name}");
    }
}

/// A task type with nothing to do with rendering: words in, letter histograms out.
#[test]
fn any_serde_task_type() {
    #[derive(Serialize, Deserialize)]
    enum Job {
        Count(String),
        Skip,
    }
    let words = ["alpha", "beta", "gamma", "delta", "epsilon"];
    let jobs: Vec<Job> = (0..100)
        .map(|i| {
            if i % 10 == 0 {
                Job::Skip
            } else {
                Job::Count(words[i % 5].repeat(i % 3 + 1))
            }
        })
        .collect();
    let count = |job: &Job| -> Result<HashMap<char, u32>, String> {
        let mut h = HashMap::new();
        if let Job::Count(w) = job {
            for c in w.chars() {
                *h.entry(c).or_insert(0) += 1;
            }
        }
        Ok(h)
    };
    let mut expected: HashMap<char, u32> = HashMap::new();
    for j in &jobs {
        for (c, k) in count(j).unwrap() {
            *expected.entry(c).or_insert(0) += k;
        }
    }
    for (name, engine) in every_engine() {
        let mut total: HashMap<char, u32> = HashMap::new();
        let mut updates = 0;
        engine
            .run_indexed(&jobs, count, |_, h| {
                updates += 1;
                for (c, k) in h {
                    *total.entry(c).or_insert(0) += k;
                }
                Ok(())
            })
            .unwrap();
        assert_eq!(updates, jobs.len(), "{name}");
        assert_eq!(total, expected, "{name}");
    }
}

#[test]
fn a_failing_render_names_its_task_and_the_engine_stays_usable() {
    let tasks = tiles(200);
    for (name, engine) in every_engine() {
        let err = engine
            .run(
                tasks.clone(),
                |t: &Tile| {
                    if t.id == 123 {
                        Err(format!("no light in tile {}", t.id))
                    } else {
                        shade(t)
                    }
                },
                |_| Ok(()),
            )
            .unwrap_err();
        match &err {
            EngineError::Render {
                rank: 0,
                task: 123,
                panicked: false,
                message,
                ..
            } => assert_eq!(message, "no light in tile 123", "{name}"),
            other => panic!("{name}: {other:?}"),
        }
        assert!(err.to_string().contains("task 123"), "{name}: {err}");
        assert_eq!(
            collect(&engine, &tasks).len(),
            200,
            "{name} after a failure"
        );
    }
}

#[test]
fn a_panicking_render_is_an_error_not_a_crash() {
    for (name, engine) in every_engine() {
        let err = engine
            .run(
                tiles(60),
                |t: &Tile| {
                    if t.id == 7 {
                        panic!("NaN in tile {}", t.id);
                    }
                    shade(t)
                },
                |_| Ok(()),
            )
            .unwrap_err();
        assert!(
            matches!(&err, EngineError::Render { task: 7, panicked: true, message, .. } if message == "NaN in tile 7"),
            "{name}: {err:?}"
        );
    }
}

/// An error whose `Display` panics: user code the engines must not trust either.
#[derive(Debug)]
struct Unprintable;

impl std::fmt::Display for Unprintable {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        panic!("Unprintable cannot be printed")
    }
}

#[test]
fn an_error_that_panics_when_printed_is_still_the_tasks_error() {
    for (name, engine) in every_engine() {
        let err = engine
            .run(
                tiles(40),
                |t: &Tile| {
                    if t.id == 9 {
                        Err(Unprintable)
                    } else {
                        Ok(t.id)
                    }
                },
                |_| Ok::<(), Unprintable>(()),
            )
            .unwrap_err();
        assert!(
            matches!(&err, EngineError::Render { task: 9, panicked: true, message, .. } if message == "Unprintable cannot be printed"),
            "{name}: {err:?}"
        );
        let err = engine
            .run(
                tiles(40),
                |t: &Tile| shade(t).map_err(|_| Unprintable),
                |p: Pixels| {
                    if p.id == 4 {
                        Err(Unprintable)
                    } else {
                        Ok(())
                    }
                },
            )
            .unwrap_err();
        assert!(
            matches!(
                &err,
                EngineError::Update {
                    task: 4,
                    panicked: true,
                    ..
                }
            ),
            "{name}: {err:?}"
        );
        assert_eq!(collect(&engine, &tiles(30)).len(), 30, "{name} afterwards");
    }
    let err = prism_engines::NodeShared::<u32>::build(&world(), || Err::<Vec<u32>, _>(Unprintable))
        .unwrap_err();
    assert!(
        err.to_string().contains("Unprintable cannot be printed"),
        "{err}"
    );
}

#[test]
fn a_failing_update_names_its_task_and_stops_the_run() {
    for (name, engine) in every_engine() {
        let rendered = AtomicUsize::new(0);
        let err = engine
            .run(
                tiles(2000),
                |t: &Tile| {
                    rendered.fetch_add(1, Ordering::Relaxed);
                    shade(t)
                },
                |p: Pixels| {
                    if p.id == 5 {
                        Err("film is full".to_string())
                    } else {
                        Ok(())
                    }
                },
            )
            .unwrap_err();
        assert!(
            matches!(&err, EngineError::Update { task: 5, panicked: false, message, .. } if message == "film is full"),
            "{name}: {err:?}"
        );
        let panicked = engine
            .run(tiles(10), shade, |p: Pixels| {
                assert!(p.id != 3, "bad pixel");
                Ok::<(), String>(())
            })
            .unwrap_err();
        assert!(
            matches!(
                &panicked,
                EngineError::Update {
                    task: 3,
                    panicked: true,
                    ..
                }
            ),
            "{name}: {panicked:?}"
        );
        assert_eq!(
            collect(&engine, &tiles(30)).len(),
            30,
            "{name} after a failure"
        );
    }
}

#[test]
fn invalid_options_are_refused() {
    let bad = Options {
        batch_results: 0,
        ..Options::default()
    };
    let e = MultiThreadEngine::new(2)
        .with_options(bad.clone())
        .run(tiles(3), shade, |_| Ok(()))
        .unwrap_err();
    assert!(e.to_string().contains("batch_results"), "{e}");
    let e = HybridEngine::new(&world(), 2)
        .unwrap()
        .with_options(bad)
        .run(tiles(3), shade, |_| Ok(()))
        .unwrap_err();
    assert!(e.to_string().contains("batch_results"), "{e}");
}

/// Runs `n` tiles with an `update` that takes 200 µs. Returns the statistics, the most results
/// rendered but not yet applied at any call of `update`, and whether any task was rendered
/// off the calling thread.
fn run_with_slow_update(engine: &impl Engine, n: usize) -> (RunStats, usize, bool) {
    let rendered = AtomicUsize::new(0);
    let mut applied = 0;
    let mut worst = 0;
    let caller = std::thread::current().id();
    let off_caller = AtomicBool::new(false);
    let stats = engine
        .run(
            tiles(n),
            |t: &Tile| {
                rendered.fetch_add(1, Ordering::SeqCst);
                if std::thread::current().id() != caller {
                    off_caller.store(true, Ordering::SeqCst);
                }
                shade(t)
            },
            |_| {
                std::thread::sleep(Duration::from_micros(200));
                applied += 1;
                worst = worst.max(rendered.load(Ordering::SeqCst) - applied);
                Ok::<(), String>(())
            },
        )
        .unwrap();
    assert_eq!(applied, n, "every result applied once");
    (stats, worst, off_caller.into_inner())
}

/// With a slow `update` and a small outbox, render threads wait: results rendered but not yet
/// applied never exceed the outbox plus what each thread holds (one result, or a group of
/// results of short tasks: at most outbox / (2 threads), up to 16).
#[test]
fn back_pressure_bounds_results_in_flight() {
    for (threads, outbox) in [(3usize, 4usize), (2, 32)] {
        let group = (outbox / (2 * threads)).clamp(1, 16);
        let options = Options {
            outbox_results: outbox,
            ..Options::default()
        };
        let engines: Vec<AnyEngine> = vec![
            MultiThreadEngine::new(threads)
                .with_options(options.clone())
                .into(),
            HybridEngine::new(&world(), threads)
                .unwrap()
                .with_options(options)
                .into(),
        ];
        for engine in engines {
            let (stats, worst, _) = run_with_slow_update(&engine, 150);
            let name = engine.name();
            let bound = outbox + threads * group;
            assert!(
                worst <= bound,
                "{name} {threads}/{outbox}: {worst} in flight > {bound}"
            );
            assert!(
                worst >= outbox,
                "{name} {threads}/{outbox}: bound never reached ({worst})"
            );
            assert!(stats.local.peak_outbox_results <= outbox);
        }
    }
}

/// A root with one render thread renders on its main thread only when asked to (then it applies
/// each result before it renders the next task: nothing piles up); every result arrives.
#[test]
fn one_thread_renders_inline_without_backlog() {
    for single_thread in [
        SingleThread::MainThread,
        SingleThread::MainThreadExceptRoot,
        SingleThread::OwnThread,
    ] {
        // This process is the root.
        let inline = single_thread == SingleThread::MainThread;
        let engine = HybridEngine::new(&world(), 1)
            .unwrap()
            .with_options(Options {
                outbox_results: 4,
                single_thread,
                ..Options::default()
            });
        let (stats, worst, off_main) = run_with_slow_update(&engine, 60);
        assert_eq!(stats.local.rendered, 60);
        assert_eq!(off_main, !inline);
        if inline {
            assert_eq!(worst, 0, "a result waited while the main thread rendered");
        } else {
            assert!(worst <= 4 + 2, "{worst} in flight");
        }
        assert!(stats.local.peak_outbox_results <= 4);
    }
}

/// `update` runs on the caller's thread while the render threads go on: with room in the
/// outbox, a slow `update` does not hold the renders up.
#[test]
fn a_slow_update_does_not_stall_rendering() {
    let start = Instant::now();
    let last_render = Mutex::new(Duration::ZERO);
    let stats = MultiThreadEngine::new(2)
        .run(
            tiles(40),
            |t: &Tile| {
                let r = shade(t);
                *last_render.lock().unwrap() = start.elapsed();
                r
            },
            |_| {
                std::thread::sleep(Duration::from_millis(3));
                Ok::<(), String>(())
            },
        )
        .unwrap();
    let total = start.elapsed();
    let last = *last_render.lock().unwrap();
    assert!(stats.local.update_time >= Duration::from_millis(100));
    assert!(
        last < total / 2,
        "rendering ended at {last:?} of {total:?}: it waited for update"
    );
}

/// Which thread rendered each task.
fn owners(engine: &impl Engine, n: usize, slow: usize) -> Vec<ThreadId> {
    let owner = Mutex::new(vec![None; n]);
    engine
        .run_indexed(
            &(0..n).collect::<Vec<usize>>(),
            |&i| {
                if i == slow {
                    std::thread::sleep(Duration::from_millis(150));
                }
                owner.lock().unwrap()[i] = Some(std::thread::current().id());
                Ok::<_, String>(i)
            },
            |_, _| Ok(()),
        )
        .unwrap();
    owner
        .into_inner()
        .unwrap()
        .into_iter()
        .map(Option::unwrap)
        .collect()
}

#[test]
fn static_round_robin_assigns_task_i_to_worker_i_mod_w() {
    for threads in [2, 3] {
        let engine = MultiThreadEngine::new(threads).with_schedule(Schedule::StaticRoundRobin);
        let o = owners(&engine, 30, 0);
        for i in 0..30 {
            for j in 0..30 {
                assert_eq!(
                    o[i] == o[j],
                    i % threads == j % threads,
                    "tasks {i} and {j}"
                );
            }
        }
    }
}

/// One slow task: under the dynamic schedule the other thread takes over the rest of the work,
/// under the static one it cannot.
#[test]
fn dynamic_scheduling_balances_an_uneven_load() {
    let n = 64;
    let per_thread = |engine: &MultiThreadEngine| {
        let o = owners(engine, n, 0);
        o.iter().filter(|t| **t == o[0]).count()
    };
    let fixed = MultiThreadEngine::new(2).with_schedule(Schedule::StaticRoundRobin);
    assert_eq!(per_thread(&fixed), n / 2);
    let dynamic = MultiThreadEngine::new(2).with_options(Options {
        chunk_size: Some(1),
        ..Options::default()
    });
    let slow_thread_tasks = per_thread(&dynamic);
    assert!(
        slow_thread_tasks < n / 4,
        "the slow thread still ran {slow_thread_tasks} tasks"
    );
}

#[test]
fn stats_account_for_the_run() {
    let engine = HybridEngine::new(&world(), 2).unwrap();
    let stats = engine
        .run(
            tiles(50),
            |t: &Tile| {
                std::thread::sleep(Duration::from_millis(1));
                shade(t)
            },
            |_| Ok(()),
        )
        .unwrap();
    assert_eq!((stats.tasks, stats.workers, stats.processes), (50, 2, 1));
    assert_eq!(stats.all.len(), 1);
    assert_eq!(stats.all[0].rendered, 50);
    assert!(stats.local.render_time >= Duration::from_millis(50));
    assert!(stats.local.wall >= Duration::from_millis(25));
    // One process: no messages.
    assert_eq!(stats.messages_sent(), 0);
    assert!(stats.comm_fraction() < 0.5);
    assert_eq!(engine.processes(), 1);
    assert!(engine.is_root());
}
