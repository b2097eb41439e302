//! Multi-process test of the observe loop: the built-in Cornell box rendered with the MPI and
//! Hybrid engines (dynamic and static schedules), with the scene shared once per node, must
//! give a film bit-identical to a serial render done on the root alone — also when the render
//! stops after its first pass and another engine resumes it from the root's film. A stop
//! requested on the root ends the run after the pass in progress, on every rank; so does a
//! panic in a hook of the root's, as an error on every rank. A
//! one-process engine (Serial, MultiThread) renders with a communicator of one process and is
//! refused on every rank with one of several; so is an engine of other processes than the
//! communicator's.
//!
//! Run: `cargo build --features mpi --example mpitest_observe`, then `mpirun -n 3
//! target/debug/examples/mpitest_observe` (any rank count; one process without MPI). Exits
//! non-zero on a mismatch.

use prism::engines::{
    AnyEngine, HybridEngine, MpiEngine, MultiThreadEngine, Schedule, SerialEngine,
};
use prism::observe::{observe, observe_from, End, Hooks, ObserveSettings, PassReport, Start};
use prism::tracer::{cornell::cornell_box, integrator::RenderSettings, AdaptiveSampler, Film};
use prism::tracer::{TileResult, TileTask};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

fn settings() -> ObserveSettings {
    ObserveSettings {
        width: 24,
        height: 20,
        tile: 8,
        samples_per_pass: 2,
        max_passes: 3,
        seed: 11,
        sampler: AdaptiveSampler {
            fraction: 0.3,
            ..AdaptiveSampler::default()
        },
        render: RenderSettings::default(),
        deadline: None,
        stop_requested: None,
    }
}

fn render(
    engine: &AnyEngine,
    world: &prism::comm::Communicator,
    scene: &prism::tracer::Scene,
) -> Result<Option<Film>, String> {
    let mut passes = 0;
    let (mut planned, mut arrived) = (0usize, 0usize);
    let (film, report) = observe(
        engine,
        world,
        scene,
        &settings(),
        Hooks {
            after_pass: &mut |_, _| {
                passes += 1;
                Ok(())
            },
            before_pass: &mut |_, tasks| {
                planned += tasks.iter().map(|t| t.pixel_count()).sum::<usize>()
            },
            on_result: &mut |result| arrived += result.stats.len(),
            fail_on_rank: None,
        },
    )?;
    if world.is_root() && (report.passes.len() != passes || passes < 2) {
        return Err(format!(
            "{} passes reported, after_pass called {passes} times",
            report.passes.len()
        ));
    }
    // The progress hooks see every pixel of every pass once, on the root only.
    let pixels: usize = report.passes.iter().map(|p| p.pixels).sum();
    let expected = if world.is_root() { pixels } else { 0 };
    if planned != expected || arrived != expected {
        return Err(format!(
            "rank {}: before_pass planned {planned} pixels, on_result saw {arrived}, the passes \
             sampled {pixels}",
            world.rank()
        ));
    }
    Ok(film)
}

/// The first pass on `first`; the rest, from the root's film, on `then`.
fn resumed(
    first: &AnyEngine,
    then: &AnyEngine,
    world: &prism::comm::Communicator,
    scene: &prism::tracer::Scene,
    reference: Option<&Film>,
) -> Result<(), String> {
    let mut after = |_: &Film, _: &PassReport| Ok::<(), String>(());
    let mut before = |_: usize, _: &[TileTask]| {};
    let mut each = |_: &TileResult| {};
    macro_rules! hooks {
        () => {
            Hooks {
                after_pass: &mut after,
                before_pass: &mut before,
                on_result: &mut each,
                fail_on_rank: None,
            }
        };
    }
    let one = ObserveSettings {
        max_passes: 1,
        ..settings()
    };
    let (film, _) = observe(first, world, scene, &one, hooks!())?;
    // Only the root holds the film; the others start "fresh" and learn the pass from it.
    let start = match film {
        Some(film) => Start::Resume { film, passes: 1 },
        None => Start::Fresh,
    };
    // A film of another size is refused on every rank, not only on the root.
    let wrong = match &start {
        Start::Resume { .. } => Start::Resume {
            film: Film::new(7, 5).map_err(|e| e.to_string())?,
            passes: 1,
        },
        Start::Fresh => Start::Fresh,
    };
    match observe_from(then, world, scene, &settings(), wrong, hooks!()) {
        Err(e) if e.contains("the film to resume is 7x5 pixels, the render 24x20") => {}
        Err(e) => return Err(format!("rank {}: a wrong film: {e}", world.rank())),
        Ok(_) => return Err(format!("rank {}: a wrong film was resumed", world.rank())),
    }
    // So is a film said to hold more passes than it does (one would be skipped), or fewer (one
    // would be merged twice), or an empty film said to hold one.
    for (claim, empty) in [(2, false), (0, false), (1, true)] {
        let lie = match &start {
            Start::Resume { film, .. } => Start::Resume {
                film: if empty {
                    Film::new(24, 20).map_err(|e| e.to_string())?
                } else {
                    film.clone()
                },
                passes: claim,
            },
            Start::Fresh => Start::Fresh,
        };
        match observe_from(then, world, scene, &settings(), lie, hooks!()) {
            Err(e) if e.contains(&format!("does not hold {claim} whole passes")) => {}
            Err(e) => {
                return Err(format!(
                    "rank {}: a film of 1 pass as {claim}: {e}",
                    world.rank()
                ))
            }
            Ok(_) => {
                return Err(format!(
                    "rank {}: a film of 1 pass was resumed as {claim} (empty: {empty})",
                    world.rank()
                ))
            }
        }
    }
    let (film, report) = observe_from(then, world, scene, &settings(), start, hooks!())?;
    let indices: Vec<usize> = report.passes.iter().map(|p| p.pass).collect();
    if indices != [1, 2] {
        return Err(format!(
            "rank {}: the resumed run rendered passes {indices:?}, not [1, 2]",
            world.rank()
        ));
    }
    match (film, reference) {
        (Some(f), Some(r)) if !f.bit_identical(r) => {
            Err("the film differs from the serial reference".to_string())
        }
        (None, _) if world.is_root() => Err("the root got no film".to_string()),
        _ => Ok(()),
    }
}

/// A stop asked for on the root during the first pass ends the run after it, on every rank;
/// one asked for before the first pass, on the root or on any other rank alone (a user's
/// `kill -USR1` on one rank), keeps it from starting, on every rank.
fn stopped(
    engine: &AnyEngine,
    world: &prism::comm::Communicator,
    scene: &prism::tracer::Scene,
) -> Result<(), String> {
    let stop = Arc::new(AtomicBool::new(false));
    let settings = ObserveSettings {
        stop_requested: Some(stop.clone()),
        ..settings()
    };
    let (film, report) = observe(
        engine,
        world,
        scene,
        &settings,
        Hooks {
            after_pass: &mut |_, _| Ok(()),
            before_pass: &mut |_, _| {},
            on_result: &mut |_| stop.store(true, Ordering::Relaxed),
            fail_on_rank: None,
        },
    )?;
    let rank = world.rank();
    if report.end != End::StopRequested || report.passes.len() != 1 {
        return Err(format!(
            "rank {rank}: ended with {:?} after {} passes, not StopRequested after 1",
            report.end,
            report.passes.len()
        ));
    }
    if let Some(f) = film {
        if f.pixel(0, 0).map(|p| p.count) != Some(2) {
            return Err("the stopped film does not hold its one pass".to_string());
        }
    }
    // Asked for before the first pass, on the last rank alone, then on the root (its flag is
    // still set): no pass runs, on any rank.
    let last = world.size() - 1;
    let on_last = Arc::new(AtomicBool::new(world.rank() == last));
    for (who, flag) in [
        (format!("rank {last}"), on_last),
        ("the root".to_string(), stop),
    ] {
        let settings = ObserveSettings {
            stop_requested: Some(flag),
            ..self::settings()
        };
        let (film, report) = observe(
            engine,
            world,
            scene,
            &settings,
            Hooks {
                after_pass: &mut |_, _| Err(format!("a pass ran after {who}'s stop")),
                before_pass: &mut |_, _| {},
                on_result: &mut |_| {},
                fail_on_rank: None,
            },
        )?;
        if report.end != End::StopRequested || !report.passes.is_empty() {
            return Err(format!(
                "rank {rank}: a stop on {who} before the first pass ended with {:?} after {} \
                 passes",
                report.end,
                report.passes.len()
            ));
        }
        match film {
            Some(f) if f.pixels().iter().any(|p| p.count != 0) => {
                return Err("a render stopped before its first pass has samples".to_string())
            }
            None if world.is_root() => return Err("the root got no film".to_string()),
            _ => {}
        }
    }
    Ok(())
}

/// A panic in a root-only hook ends the run with that error on every rank (the others were
/// already in the pass), even with `abort_on_panic` installed, and the next run works.
fn panicking_hooks(
    engine: &AnyEngine,
    world: &prism::comm::Communicator,
    scene: &prism::tracer::Scene,
) -> Result<(), String> {
    for hook in ["before_pass", "after_pass"] {
        let outcome = observe(
            engine,
            world,
            scene,
            &settings(),
            Hooks {
                after_pass: &mut |_, _| {
                    assert!(hook != "after_pass", "the after_pass hook fails");
                    Ok(())
                },
                before_pass: &mut |_, _| {
                    assert!(hook != "before_pass", "the before_pass hook fails")
                },
                on_result: &mut |_| {},
                fail_on_rank: None,
            },
        );
        match outcome {
            Err(e) if e.contains(&format!("{hook} panicked: the {hook} hook fails")) => {}
            other => {
                return Err(format!(
                    "a panicking {hook} gave {:?}",
                    other.map(|(_, r)| r.end)
                ))
            }
        }
    }
    render(engine, world, scene).map(|_| ())
}

/// A one-process engine is the right one for a one-process communicator and gives the
/// reference's film; with several processes every rank refuses it up front, naming the fix
/// (before, each rank rendered every tile and the others' results met no film). An engine of
/// every process, paired with the root's communicator alone, is refused too.
fn engine_spans_the_communicator(
    world: &prism::comm::Communicator,
    alone: Option<&prism::comm::Communicator>,
    all: &AnyEngine,
    scene: &prism::tracer::Scene,
    reference: Option<&Film>,
) -> Result<(), String> {
    let rank = world.rank();
    let one_process: [(&str, AnyEngine); 2] = [
        ("serial", SerialEngine::new().into()),
        ("threads 2", MultiThreadEngine::new(2).into()),
    ];
    for (name, engine) in &one_process {
        match (render(engine, world, scene), world.size()) {
            (Ok(film), 1) => match (film, reference) {
                (Some(f), Some(r)) if f.bit_identical(r) => {}
                _ => return Err(format!("{name} on one process: not the reference's film")),
            },
            (Err(e), 1) => return Err(format!("{name} on one process: {e}")),
            (Err(e), n)
                if e.contains(&format!("communicator given to observe has {n} processes"))
                    && e.contains("use MpiEngine or HybridEngine") => {}
            (Err(e), n) => {
                return Err(format!("rank {rank}: {name} with {n} processes: {e}"));
            }
            (Ok(_), n) => {
                return Err(format!(
                    "rank {rank}: {name} was accepted with {n} processes"
                ));
            }
        }
    }
    if let (Some(me), n) = (alone, world.size()) {
        match render(all, me, scene) {
            Ok(_) if n == 1 => {}
            Err(e) if n > 1 && e.contains(&format!("the engine spans {n} processes")) => {}
            Ok(_) => return Err(format!("an engine of {n} processes ran on the root alone")),
            Err(e) => return Err(format!("an engine of {n} processes on the root alone: {e}")),
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let universe = prism::comm::init().expect("init");
    universe.abort_on_panic();
    let world = universe.world();
    let rank = world.rank();
    let scene = match prism::share_scene(&world, || Ok(cornell_box())) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("rank {rank}: share_scene failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The reference: the root alone, serial, on its own unshared scene. Splitting is
    // collective, so every rank takes part; only the root gets a communicator.
    let alone = world.split(world.is_root().then_some(0), 0);
    let reference = match &alone {
        Ok(Some(me)) => Some(render(
            &SerialEngine::new().local().into(),
            me,
            &cornell_box(),
        )),
        Ok(None) => None,
        Err(e) => Some(Err(format!("split: {e}"))),
    };
    let alone = alone.ok().flatten();
    let mut failures = Vec::new();
    let reference = match reference {
        Some(Ok(Some(f))) => Some(f),
        Some(Ok(None)) => {
            failures.push("the reference render returned no film".to_string());
            None
        }
        Some(Err(e)) => {
            failures.push(format!("reference render failed: {e}"));
            None
        }
        None => None,
    };
    let engines: Vec<(&str, AnyEngine)> = vec![
        (
            "mpi dynamic",
            MpiEngine::new(&world).expect("mpi engine").into(),
        ),
        (
            "mpi static",
            MpiEngine::new(&world)
                .expect("mpi engine")
                .with_schedule(Schedule::StaticRoundRobin)
                .into(),
        ),
        (
            "hybrid 2 threads",
            HybridEngine::new(&world, 2).expect("hybrid engine").into(),
        ),
    ];
    for (name, engine) in &engines {
        match render(engine, &world, &scene) {
            Ok(Some(film)) => {
                if let Some(r) = &reference {
                    if !film.bit_identical(r) {
                        failures.push(format!("{name}: film differs from the serial reference"));
                    }
                }
            }
            Ok(None) if !world.is_root() => {}
            Ok(None) => failures.push(format!("{name}: the root got no film")),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    if let Err(e) = resumed(
        &engines[0].1,
        &engines[2].1,
        &world,
        &scene,
        reference.as_ref(),
    ) {
        failures.push(format!("resumed: {e}"));
    }
    if let Err(e) = stopped(&engines[2].1, &world, &scene) {
        failures.push(format!("stopped: {e}"));
    }
    if let Err(e) = panicking_hooks(&engines[2].1, &world, &scene) {
        failures.push(format!("panicking hooks: {e}"));
    }
    if let Err(e) = engine_spans_the_communicator(
        &world,
        alone.as_ref(),
        &engines[0].1,
        &scene,
        reference.as_ref(),
    ) {
        failures.push(format!("engine and communicator: {e}"));
    }
    if failures.is_empty() {
        println!("rank {rank}/{}: observe ok", world.size());
        ExitCode::SUCCESS
    } else {
        for f in failures {
            eprintln!("rank {rank}: FAIL: {f}");
        }
        ExitCode::FAILURE
    }
}
