//! One-process behaviour of every Parallel implementation: coverage, modes, chunk sizes,
//! errors, results, progress and reproducibility.

use prism_tasking::{
    current_worker, CallOptions, ParallelError, ParallelFactory, ParallelKind, ProgressConfig,
    TaskMode, TaskRng, ThreadLocalAcc,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

fn counters(n: usize) -> Vec<AtomicUsize> {
    (0..n).map(|_| AtomicUsize::new(0)).collect()
}

fn factory(threads: usize) -> ParallelFactory {
    ParallelFactory::single_process(threads)
        .unwrap()
        .with_progress(ProgressConfig::quiet())
}

/// Every task mode, for tests that must hold in each.
const MODES: [TaskMode; 4] = [
    TaskMode::Distributed,
    TaskMode::Duplicated,
    TaskMode::RootOnly,
    TaskMode::Local,
];

#[test]
fn every_mode_covers_each_index_once_for_one_to_three_threads() {
    for threads in 1..=3 {
        let f = factory(threads);
        for mode in MODES {
            // Zero tasks, fewer tasks than workers, and many.
            for n in [0, 1, 2, 5, 1000, 4321] {
                let hits = counters(n);
                f.parallel(mode)
                    .call(n, |first, count| {
                        for h in &hits[first..first + count] {
                            h.fetch_add(1, Ordering::Relaxed);
                        }
                    })
                    .unwrap();
                assert!(
                    hits.iter().all(|h| h.load(Ordering::Relaxed) == 1),
                    "{threads} threads, {mode:?}, n = {n}"
                );
            }
        }
    }
}

#[test]
fn explicit_chunk_sizes_are_respected_and_zero_is_refused() {
    let f = factory(2);
    let p = f.distributed();
    let sizes = Mutex::new(Vec::new());
    p.call_with(&CallOptions::new().chunk_size(7), 50, |first, count| {
        sizes.lock().unwrap().push((first, count));
    })
    .unwrap();
    let mut sizes = sizes.into_inner().unwrap();
    sizes.sort();
    let expect: Vec<(usize, usize)> = (0..50).step_by(7).map(|f| (f, 7.min(50 - f))).collect();
    assert_eq!(sizes, expect);
    let err = p
        .call_with(&CallOptions::new().chunk_size(0), 10, |_, _| ())
        .unwrap_err();
    assert!(matches!(err, ParallelError::Invalid(_)), "{err}");
    assert!(p.chunk_size(1600) >= 1 && p.chunk_size(1600) <= 100);
}

#[test]
fn a_failing_task_is_reported_with_thread_and_chunk_and_the_next_call_works() {
    for threads in 1..=3 {
        let f = factory(threads);
        let p = f.distributed();
        let err = p
            .call_with(&CallOptions::new().chunk_size(10), 100, |first, count| {
                if (first..first + count).contains(&42) {
                    Err(format!("index 42 is cursed ({first}+{count})"))
                } else {
                    Ok(())
                }
            })
            .unwrap_err();
        let failure = err.task_failure().expect("a task failure").clone();
        assert_eq!((failure.rank, failure.first, failure.count), (0, 40, 10));
        assert!(failure.thread < threads);
        assert!(!failure.panicked);
        let text = err.to_string();
        assert!(
            text.contains("40..50") && text.contains("process 0") && text.contains("cursed"),
            "{text}"
        );

        let err = p
            .call_each(100, |i| {
                if i == 99 {
                    panic!("boom at {i}");
                }
            })
            .unwrap_err();
        let failure = err.task_failure().unwrap();
        assert!(
            failure.panicked && failure.message.contains("boom at 99"),
            "{err}"
        );

        // Still usable.
        let hits = counters(300);
        p.call_each(300, |i| {
            hits[i].fetch_add(1, Ordering::Relaxed);
        })
        .unwrap();
        assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
    }
}

#[test]
fn call_each_failures_name_the_failing_task() {
    for threads in 1..=3 {
        let f = factory(threads);
        for mode in MODES {
            let p = f.parallel(mode);
            let opts = CallOptions::new().chunk_size(10);
            let err = p
                .call_each_with(
                    &opts,
                    100,
                    |i| if i == 47 { Err("refused") } else { Ok(()) },
                )
                .unwrap_err();
            let failure = err.task_failure().unwrap();
            assert_eq!(
                (failure.task, failure.first, failure.count),
                (Some(47), 40, 10)
            );
            let text = err.to_string();
            assert!(
                text.starts_with("task 47 (in task chunk 40..50) failed on process 0"),
                "{text}"
            );
            let err = p
                .call_each_with(&opts, 100, |i| {
                    if i == 63 {
                        panic!("boom at {i}");
                    }
                })
                .unwrap_err();
            let failure = err.task_failure().unwrap();
            assert!(failure.panicked && failure.task == Some(63), "{err}");
            // A chunk body's failure has no task index.
            let err = p
                .call_with(&CallOptions::new().chunk_size(5), 5, |_, _| {
                    Err("chunk refused")
                })
                .unwrap_err();
            assert_eq!(err.task_failure().unwrap().task, None, "{err}");
            assert!(err.to_string().starts_with("task chunk 0..5"), "{err}");
        }
    }
}

#[test]
fn other_workers_stop_at_their_next_chunk_after_a_failure() {
    let f = factory(3);
    let ran = AtomicUsize::new(0);
    let err = f
        .distributed()
        .call_with(&CallOptions::new().chunk_size(1), 2000, |first, _| {
            ran.fetch_add(1, Ordering::Relaxed);
            if first == 0 {
                return Err("first chunk fails");
            }
            std::thread::sleep(Duration::from_millis(1));
            Ok(())
        })
        .unwrap_err();
    assert_eq!(err.task_failure().unwrap().first, 0);
    // Without stopping all 2000 would run (about 1 s); the others stop within a chunk each
    // (the bound is loose for loaded machines, where the failing thread may be descheduled).
    assert!(
        ran.load(Ordering::Relaxed) < 500,
        "{} chunks ran",
        ran.load(Ordering::Relaxed)
    );
}

#[test]
fn nested_calls_are_refused_with_an_error() {
    let f = factory(2);
    let p = f.distributed();
    let inner_err = Mutex::new(None);
    p.call(4, |_, _| {
        if let Err(e) = p.call(3, |_, _| ()) {
            *inner_err.lock().unwrap() = Some(e.to_string());
        }
    })
    .unwrap();
    let msg = inner_err.into_inner().unwrap().expect("inner call refused");
    assert!(msg.contains("nested"), "{msg}");
}

/// A call from a call_collect result handler: the handler runs on the thread coordinating
/// the call, so the inner call is refused (naming the handler, not a worker) instead of
/// waiting for the pool that waits for the handler; the outer call still completes. Run on
/// another thread so that a hang fails the test instead of stalling the suite.
#[test]
fn calls_from_a_result_handler_are_refused_and_the_outer_call_completes() {
    for threads in 1..=3 {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let f = factory(threads);
            let (outer, inner) = (f.distributed(), f.root_only());
            let mut errors = Vec::new();
            let mut got = 0usize;
            let r = outer.call_collect(
                &CallOptions::new().chunk_size(1),
                200,
                |first, count, out: &mut Vec<usize>| out.extend(first..first + count),
                |_| {
                    got += 1;
                    if got <= 2 {
                        errors.push((inner.call(4, |_, _| ()), current_worker()));
                    }
                },
            );
            let _ = tx.send((r.map_err(|e| e.to_string()), got, errors));
        });
        let (r, got, errors) = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("{threads} threads: the call from the handler hung"));
        assert_eq!(r, Ok(()), "{threads} threads");
        assert_eq!(got, 200, "{threads} threads");
        assert_eq!(errors.len(), 2);
        for (e, worker) in errors {
            let msg = e.expect_err("inner call refused").to_string();
            assert!(
                msg.contains("result handler (on_result)") && !msg.contains("worker thread"),
                "{threads} threads: {msg}"
            );
            assert_eq!(worker, None, "the handler is not a worker");
        }
    }
}

#[test]
fn workers_know_their_index() {
    for threads in 1..=3 {
        let f = factory(threads);
        let seen = Mutex::new(std::collections::BTreeSet::new());
        f.distributed()
            .call_with(&CallOptions::new().chunk_size(1), 64, |_, _| {
                let w = current_worker().expect("inside a worker");
                assert!(w < threads);
                seen.lock().unwrap().insert(w);
                std::thread::sleep(Duration::from_micros(200));
            })
            .unwrap();
        assert!(!seen.into_inner().unwrap().is_empty());
    }
    assert_eq!(current_worker(), None);
}

#[test]
fn collected_results_reach_the_caller_once_each() {
    for threads in 1..=3 {
        let f = factory(threads);
        let mut got = vec![0u32; 777];
        f.distributed()
            .call_collect(
                &CallOptions::new(),
                777,
                |first, count, out: &mut Vec<(usize, u64)>| {
                    for i in first..first + count {
                        out.push((i, (i as u64) * 3));
                    }
                },
                |(i, v)| {
                    assert_eq!(v, i as u64 * 3);
                    got[i] += 1;
                },
            )
            .unwrap();
        assert!(got.iter().all(|&g| g == 1));

        let err = f
            .distributed()
            .call_collect(
                &CallOptions::new(),
                50,
                |first, _count, out: &mut Vec<usize>| out.push(first),
                |r| {
                    if r > 0 {
                        panic!("handler refuses {r}");
                    }
                },
            )
            .unwrap_err();
        let failure = err.task_failure().unwrap();
        assert_eq!(failure.thread, f.threads(), "the coordinating thread");
        assert!(failure.message.contains("result handler"), "{err}");
    }
}

#[test]
fn progress_counts_every_task_across_threads() {
    for threads in 1..=3 {
        let (cfg, lines) = ProgressConfig::capture(Duration::ZERO);
        let f = ParallelFactory::single_process(threads)
            .unwrap()
            .with_progress(cfg);
        f.distributed()
            .call_with(&CallOptions::new().progress("cells"), 5000, |_, _| ())
            .unwrap();
        // Without a label nothing is shown.
        f.distributed().call(5000, |_, _| ()).unwrap();
        let lines = lines.lock().unwrap().clone();
        let last = lines.last().expect("a summary line");
        assert!(last.starts_with("cells: 5000/5000 done"), "{lines:?}");
        assert!(lines.iter().all(|l| l.starts_with("cells")), "{lines:?}");
    }
}

#[test]
fn random_streams_make_results_independent_of_the_split() {
    let run = |threads: usize, chunk: Option<usize>| {
        let f = factory(threads);
        let per_task = (0..1000).map(|_| Mutex::new(0.0f64)).collect::<Vec<_>>();
        let opts = match chunk {
            Some(c) => CallOptions::new().chunk_size(c),
            None => CallOptions::new(),
        };
        f.distributed()
            .call_with(&opts, 1000, |first, count| {
                for (i, slot) in per_task.iter().enumerate().skip(first).take(count) {
                    let mut rng = TaskRng::new(77, i as u64);
                    *slot.lock().unwrap() = (0..10).map(|_| rng.next_f64()).sum();
                }
            })
            .unwrap();
        // Partial sums added in task order: bit-identical whatever the split.
        per_task
            .into_iter()
            .map(|m| m.into_inner().unwrap())
            .fold(0.0f64, |a, b| a + b)
            .to_bits()
    };
    let reference = run(1, None);
    assert_eq!(run(2, None), reference);
    assert_eq!(run(3, Some(1)), reference);
    assert_eq!(run(3, Some(333)), reference);
}

#[test]
fn thread_local_tallies_merge_to_the_exact_total() {
    let f = factory(3);
    let acc = ThreadLocalAcc::new(|| vec![0u64; 3]);
    f.distributed()
        .call(3000, |first, count| {
            acc.with(|a| {
                for i in first..first + count {
                    a[i % 3] += i as u64;
                }
            })
        })
        .unwrap();
    let merged = acc
        .merge(|a, b| a.iter_mut().zip(b).for_each(|(x, y)| *x += y))
        .unwrap();
    let expect: Vec<u64> = (0..3u64)
        .map(|r| (0..3000u64).filter(|i| i % 3 == r).sum())
        .collect();
    assert_eq!(merged, expect);
}

#[test]
fn the_factory_table_in_one_process() {
    let f = factory(1);
    assert_eq!(f.parallel(TaskMode::RootOnly).kind(), ParallelKind::Serial);
    let f = factory(2);
    assert_eq!(
        f.parallel(TaskMode::Duplicated).kind(),
        ParallelKind::MultiThread
    );
    assert_eq!(f.parallel(TaskMode::Duplicated).workers(), 2);
}

#[test]
fn worker_threads_really_run_at_the_same_time() {
    // Each of the first `threads` chunks waits until all of them have started: possible only
    // if that many workers run concurrently (a serialised pool would time out).
    for threads in 2..=3 {
        let f = factory(threads);
        let started = AtomicUsize::new(0);
        let result =
            f.distributed()
                .call_with(&CallOptions::new().chunk_size(1), threads, |_, _| {
                    started.fetch_add(1, Ordering::SeqCst);
                    let t0 = std::time::Instant::now();
                    while started.load(Ordering::SeqCst) < threads {
                        if t0.elapsed() > Duration::from_secs(10) {
                            return Err("the other workers never started");
                        }
                        std::thread::sleep(Duration::from_micros(100));
                    }
                    Ok(())
                });
        assert!(result.is_ok(), "{threads} threads: {result:?}");
    }
}

#[test]
fn progress_lines_come_at_the_configured_interval_even_below_the_wake_up_tick() {
    // 300 tasks of 4 ms on 2 threads take at least 0.6 s: with lines every 20 ms there are
    // dozens, however slow the machine (it only makes the run longer). Waking up only every
    // 200 ms gave at most three.
    let (cfg, lines) = ProgressConfig::capture(Duration::from_millis(20));
    let f = ParallelFactory::single_process(2)
        .unwrap()
        .with_progress(cfg);
    f.distributed()
        .call_with(&CallOptions::new().progress("slow"), 300, |first, count| {
            std::thread::sleep(Duration::from_millis(4 * count as u64));
            let _ = first;
        })
        .unwrap();
    let lines = lines.lock().unwrap().clone();
    assert!(lines.len() >= 6, "{} lines: {lines:?}", lines.len());
}

/// A result type postcard cannot decode (untagged enums need a self-describing format).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
enum Untagged {
    Number(u64),
    Text(String),
}

#[test]
fn results_that_cannot_travel_fail_a_distributed_call_in_one_process_too() {
    for threads in [1, 2] {
        let f = factory(threads);
        let mut got = 0;
        let err = f
            .distributed()
            .call_collect(
                &CallOptions::new(),
                10,
                |first, count, out: &mut Vec<Untagged>| {
                    for i in first..first + count {
                        out.push(if i % 2 == 0 {
                            Untagged::Number(i as u64)
                        } else {
                            Untagged::Text(i.to_string())
                        });
                    }
                },
                |_| got += 1,
            )
            .unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("cannot travel between processes")
                && message.contains("Untagged")
                && message.contains("decoding"),
            "{message}"
        );
        assert_eq!(got, 0, "no result reached the handler");
        // Where results never travel, in Duplicated, RootOnly and Local calls, they are fine.
        for mode in [TaskMode::Duplicated, TaskMode::RootOnly, TaskMode::Local] {
            let mut got = 0;
            f.parallel(mode)
                .call_collect(
                    &CallOptions::new(),
                    10,
                    |first, count, out: &mut Vec<Untagged>| {
                        out.extend((first..first + count).map(|i| Untagged::Number(i as u64)));
                    },
                    |_| got += 1,
                )
                .unwrap();
            assert_eq!(got, 10, "{mode:?}");
        }
        // And a type that travels passes the check.
        let mut sum = 0;
        f.distributed()
            .call_collect(
                &CallOptions::new(),
                10,
                |first, count, out: &mut Vec<u64>| {
                    out.extend((first..first + count).map(|i| i as u64))
                },
                |v| sum += v,
            )
            .unwrap();
        assert_eq!(sum, 45);
    }
}

#[test]
fn local_calls_run_on_the_factory_threads_from_any_thread() {
    let f = factory(2);
    let local = f.local();
    assert_eq!(local.mode(), TaskMode::Local);
    assert_eq!(local.kind(), ParallelKind::MultiThread);
    std::thread::scope(|s| {
        s.spawn(|| {
            let hits = counters(100);
            local
                .call(100, |first, count| {
                    for h in &hits[first..first + count] {
                        h.fetch_add(1, Ordering::Relaxed);
                    }
                })
                .unwrap();
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
        });
    });
}
