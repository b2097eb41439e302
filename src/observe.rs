//! The observe loop: render a scene's tile tasks on any engine, pass after pass.
//!
//! A full first pass samples every pixel; each later pass samples only the pixels the adaptive
//! sampler picks from the film so far, until it picks none (converged) or the pass limit is
//! reached. Only the root holds the film; it makes the choice and broadcasts it, so every rank
//! builds the same task list for the next pass (the engines' SPMD contract).
//!
//! Every pixel is sampled by exactly one tile per pass, with random numbers keyed by (seed,
//! pixel, pass, sample), so the film — and the image files — are bit-identical whichever
//! engine, schedule, process count or thread count rendered them. For the same reason a render
//! can stop after any pass and go on later from its film ([`observe_from`]), on another engine
//! or job shape, and still end with the same bits.

use prism_comm::Communicator;
use prism_engines::{Engine, ProcessStats};
use prism_tracer::integrator::{render_tile, RenderSettings};
use prism_tracer::{
    pass_tasks, AdaptiveSampler, Film, PassSpec, PixelSelection, Scene, TileResult, TileTask,
};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to render and how.
#[derive(Clone, Debug)]
pub struct ObserveSettings {
    pub width: u32,
    pub height: u32,
    /// Tile edge in pixels.
    pub tile: u32,
    /// Samples per selected pixel in each pass.
    pub samples_per_pass: u32,
    /// Passes at most (the first is full).
    pub max_passes: usize,
    pub seed: u64,
    pub sampler: AdaptiveSampler,
    pub render: RenderSettings,
    /// On the root: no pass starts that would end after this instant at the pace of the pass
    /// before it (its render time per pixel × the next pass's pixels, plus the rest of its
    /// cycle: images, checkpoint), so that a job's time limit ends a render between passes, not
    /// inside one. The first pass of a run always starts.
    pub deadline: Option<Instant>,
    /// On any rank: once this is set (by a signal handler, say: `prism render` sets it on
    /// SIGUSR1), the render ends on every rank after the pass in progress, as after a deadline
    /// — or before the first, if set before it starts. Read between passes only (every rank
    /// tells the root then), so the film always holds whole passes.
    pub stop_requested: Option<Arc<AtomicBool>>,
}

/// What one pass did; handed to the root's callback after the pass.
#[derive(Clone, Debug, Default)]
pub struct PassReport {
    pub pass: usize,
    pub tasks: usize,
    pub pixels: usize,
    pub rays: u64,
    pub wall: Duration,
    /// Communication time on the root's engine (sends, receives, encoding), this pass.
    pub comm: Duration,
    /// Every process's engine counters for this pass, in rank order (on the root).
    pub ranks: Vec<ProcessStats>,
}

/// Callbacks of the root, and a testing aid.
pub struct Hooks<'a> {
    /// Called on the root after every pass (write images, print a line); an error from it
    /// ends the run on every rank.
    pub after_pass: &'a mut dyn FnMut(&Film, &PassReport) -> Result<(), String>,
    /// Called on the root before every pass with the pass's index and tasks (progress bars).
    pub before_pass: &'a mut dyn FnMut(usize, &[TileTask]),
    /// Called on the root for every tile result as it arrives (progress bars).
    pub on_result: &'a mut dyn FnMut(&TileResult),
    /// Make every task rendered on this rank fail: checks that a failure ends the run.
    pub fail_on_rank: Option<usize>,
}

/// Why a render ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum End {
    /// It rendered `max_passes` passes (or the film held them already).
    #[default]
    PassLimit,
    /// The adaptive sampler picked no pixel.
    Converged,
    /// The next pass would have ended past [`ObserveSettings::deadline`].
    Deadline,
    /// [`ObserveSettings::stop_requested`] was set.
    StopRequested,
}

/// The whole run, on every rank (film and totals are the root's).
#[derive(Debug, Default)]
pub struct ObserveReport {
    /// Why the run ended; the same on every rank.
    pub end: End,
    pub passes: Vec<PassReport>,
    pub rays: u64,
    pub wall: Duration,
    pub comm: Duration,
}

impl ObserveReport {
    /// Every process's engine counters summed over the passes, in rank order (on the root).
    pub fn rank_totals(&self) -> Vec<ProcessStats> {
        let mut totals: Vec<ProcessStats> = Vec::new();
        for pass in &self.passes {
            if totals.len() < pass.ranks.len() {
                totals.resize_with(pass.ranks.len(), ProcessStats::default);
            }
            for (t, p) in totals.iter_mut().zip(&pass.ranks) {
                t.accumulate(p);
            }
        }
        totals
    }
}

/// Where a render starts.
#[derive(Clone, Debug, Default)]
pub enum Start {
    /// An empty film, pass 0.
    #[default]
    Fresh,
    /// A film that already holds `passes` passes of this render (a checkpoint's): the render
    /// goes on with pass `passes`, as if it had never stopped. Given on the root; the other
    /// ranks pass [`Start::Fresh`] and learn the pass from the root.
    Resume { film: Film, passes: usize },
}

/// Renders `scene` pass after pass on `engine`. Collective: every rank of `comm` calls it with
/// the same settings. Returns the film on the root and `None` elsewhere.
pub fn observe<E: Engine>(
    engine: &E,
    comm: &Communicator,
    scene: &Scene,
    settings: &ObserveSettings,
    hooks: Hooks<'_>,
) -> Result<(Option<Film>, ObserveReport), String> {
    observe_from(engine, comm, scene, settings, Start::Fresh, hooks)
}

/// [`observe`] from `start`: a resumed render ends with the same film, bit for bit, as one
/// that ran all its passes at once, since a pass's samples depend only on (seed, pixel, pass,
/// sample) and the adaptive choice only on the film. Passes already in the film count towards
/// `max_passes`; with none left, the film is returned as it is.
pub fn observe_from<E: Engine>(
    engine: &E,
    comm: &Communicator,
    scene: &Scene,
    settings: &ObserveSettings,
    start: Start,
    hooks: Hooks<'_>,
) -> Result<(Option<Film>, ObserveReport), String> {
    let Hooks {
        after_pass,
        before_pass,
        on_result,
        fail_on_rank,
    } = hooks;
    settings.sampler.validate().map_err(|e| e.to_string())?;
    check_engine_spans(engine, comm)?;
    // The root's film and first pass; a film of the wrong size is an error on every rank.
    let (mut film, first) = if comm.is_root() {
        let (film, first) = match start {
            Start::Fresh => (Film::new(settings.width, settings.height), 0),
            Start::Resume { film, passes } => (Ok(film), passes),
        };
        let film = film.map_err(|e| e.to_string()).and_then(|f| {
            // The results reach the engine's root and the film is on the communicator's: they
            // must be one process. Only the root can tell, so it says so through the broadcast.
            if !engine.is_root() {
                return Err(
                    "the engine's root is not rank 0 of the communicator given to observe: \
                     make the engine from that communicator (rank 0 holds the film, the \
                     engine's root applies the results)"
                        .to_string(),
                );
            }
            if (f.width(), f.height()) != (settings.width, settings.height) {
                return Err(format!(
                    "the film to resume is {}x{} pixels, the render {}x{}",
                    f.width(),
                    f.height(),
                    settings.width,
                    settings.height
                ));
            }
            // A wrong count would skip passes or render one twice (found only at the merge).
            let (lo, hi) = f.passes_merged();
            let whole = if first == 0 {
                hi == 0
            } else {
                lo >= 1 && hi == first
            };
            if !whole {
                return Err(format!(
                    "the film to resume does not hold {first} whole passes: its pixels have \
                     merged {lo} to {hi}"
                ));
            }
            Ok(f)
        });
        let first = comm
            .broadcast(0, Some(film.as_ref().map(|_| first).map_err(Clone::clone)))
            .map_err(|e| e.to_string())??;
        (Some(film?), first)
    } else {
        let first: Result<usize, String> = comm.broadcast(0, None).map_err(|e| e.to_string())?;
        (None, first?)
    };
    let mut report = ObserveReport::default();
    let start = Instant::now();
    let rank = comm.rank();
    // The last pass's whole cycle (choice, render, images, checkpoint): when it started, its
    // pixels and its render time. The pace a deadline is judged by.
    let mut last_cycle: Option<(Instant, usize, Duration)> = None;
    for pass in first..settings.max_passes {
        let cycle_start = Instant::now();
        // A stop asked of any rank counts (a user's `kill -USR1` finds whichever process `ps`
        // shows first): every rank tells the root, each pass, whatever its settings say.
        let stop = comm
            .gather(0, &stop_requested(settings))
            .map_err(|e| e.to_string())?
            .is_some_and(|all| all.contains(&true));
        // The root decides for every rank: the pixels of the next pass (none: all of them, in
        // the first pass), or why there is none.
        let next: Option<Result<Option<PixelSelection>, End>> = film.as_ref().map(|f| {
            if pass == 0 {
                // Only a stop asked for before it keeps the full first pass from starting.
                return if stop {
                    Err(End::StopRequested)
                } else {
                    Ok(None)
                };
            }
            match settings.sampler.select(f) {
                None => Err(End::Converged),
                Some(_) if stop => Err(End::StopRequested),
                Some(sel) if past_deadline(settings.deadline, last_cycle, &sel) => {
                    Err(End::Deadline)
                }
                Some(sel) => Ok(Some(sel)),
            }
        });
        let selection = match comm.broadcast(0, next).map_err(|e| e.to_string())? {
            Ok(selection) => selection,
            Err(end) => {
                report.end = end;
                break;
            }
        };
        let spec = PassSpec {
            index: pass as u32,
            samples_per_pixel: settings.samples_per_pass,
            seed: settings.seed,
        };
        let tasks = pass_tasks(
            settings.width,
            settings.height,
            settings.tile,
            &spec,
            selection.as_ref(),
        )
        .map_err(|e| e.to_string())?;
        let mut pass_error: Option<String> = None;
        // The hooks run on the root alone, while the other ranks go on into the pass: a panic
        // there must become the pass's error, which every rank learns after the pass, not an
        // unwinding root that leaves them waiting (when no abort-on-panic hook ends the job).
        if comm.is_root() {
            if let Err(p) = prism_comm::catch_panic(|| before_pass(pass, &tasks)) {
                pass_error = Some(format!(
                    "before_pass panicked: {}",
                    prism_comm::panic_message(&*p)
                ));
            }
        }
        let pass_start = Instant::now();
        let mut rays = 0u64;
        let stats = engine
            .run_indexed(
                &tasks,
                |task| {
                    if fail_on_rank == Some(rank) {
                        return Err(format!("injected failure (--fail-on-rank {rank})"));
                    }
                    Ok(render_tile(scene, &settings.render, task))
                },
                |_, result| {
                    rays += result.ray_count;
                    on_result(&result);
                    match film.as_mut() {
                        Some(f) => f.merge(&result).map_err(|e| e.to_string()),
                        None => Err("update ran on a rank without the film".to_string()),
                    }
                },
            )
            .map_err(|e| e.to_string())?;
        let pass_report = PassReport {
            pass,
            tasks: tasks.len(),
            pixels: tasks.iter().map(|t| t.pixel_count()).sum(),
            rays,
            wall: pass_start.elapsed(),
            comm: stats.local.comm_time,
            ranks: if stats.all.is_empty() {
                vec![stats.local.clone()]
            } else {
                stats.all.clone()
            },
        };
        report.rays += rays;
        report.comm += pass_report.comm;
        if let (Some(f), None) = (film.as_ref(), &pass_error) {
            pass_error = match prism_comm::catch_panic(|| after_pass(f, &pass_report)) {
                Ok(outcome) => outcome.err(),
                Err(p) => Some(format!(
                    "after_pass panicked: {}",
                    prism_comm::panic_message(&*p)
                )),
            };
        }
        last_cycle = Some((cycle_start, pass_report.pixels, pass_report.wall));
        report.passes.push(pass_report);
        // A failure on the root's side (say, an unwritable output file) must stop every rank.
        let failed = comm
            .broadcast(0, comm.is_root().then(|| pass_error.clone()))
            .map_err(|e| e.to_string())?;
        if let Some(e) = failed {
            return Err(e);
        }
    }
    report.wall = start.elapsed();
    Ok((film, report))
}

/// The engine must span exactly the communicator's processes. A one-process engine under a
/// job of several would have every rank render every tile on its own and apply the results
/// where there is no film, and an engine of other processes would wait for ranks that never
/// call it. Both sizes are the same on every rank, so every rank refuses alike, before any
/// communication.
fn check_engine_spans<E: Engine>(engine: &E, comm: &Communicator) -> Result<(), String> {
    match (engine.processes(), comm.size()) {
        (e, c) if e == c => Ok(()),
        (1, c) => Err(format!(
            "this engine runs in one process, but the communicator given to observe has {c} \
             processes: use MpiEngine or HybridEngine (made from that communicator) to render \
             on several processes, or run one process (without mpirun)"
        )),
        (e, c) => Err(format!(
            "the engine spans {e} processes, but the communicator given to observe has {c}: \
             make the engine from the communicator that observe renders on"
        )),
    }
}

fn stop_requested(settings: &ObserveSettings) -> bool {
    settings
        .stop_requested
        .as_ref()
        .is_some_and(|stop| stop.load(Ordering::Relaxed))
}

/// Whether a pass over `next` would end after `deadline`, at the pace of the last pass's whole
/// cycle (`(its start, its pixels, its render time)`): its render time per pixel × the next
/// pass's pixels, plus the rest of its cycle (the choice of pixels, the images, the
/// checkpoint), which does not shrink with fewer pixels. Without a pass to go by, it would not.
fn past_deadline(
    deadline: Option<Instant>,
    last_cycle: Option<(Instant, usize, Duration)>,
    next: &PixelSelection,
) -> bool {
    let (Some(deadline), Some((start, pixels, render))) = (deadline, last_cycle) else {
        return false;
    };
    let rest = start.elapsed().saturating_sub(render);
    let per_pixel = render.as_secs_f64() / pixels.max(1) as f64;
    let expected = rest + Duration::from_secs_f64(per_pixel * next.count() as f64);
    Instant::now() + expected > deadline
}
