//! `prism render`: a scene on any engine, pass after pass, into PNG (and EXR) files.

use crate::cli::layout::Layout;
use crate::cli::progress::Progress;
use crate::cli::stats::{own_pss_bytes, RankStats, RunStats};
use crate::cli::{
    check_parent_dir, msg, say, shared, signals, warn, with_universe, CliError, StartError,
};
use crate::{EngineKind, RenderArgs, ScheduleKind};
use indicatif::{ProgressBar, ProgressStyle};
use prism::comm::Universe;
use prism::engines::{
    AnyEngine, HybridEngine, MpiEngine, MultiThreadEngine, Options, Schedule, SerialEngine,
    SingleThread,
};
use prism::observe::{observe_from, End, Hooks, ObserveSettings, PassReport, Start};
use prism::tracer::integrator::RenderSettings;
use prism::tracer::output::{write_error_png, write_exr, write_png, ToneMap};
use prism::tracer::{
    AdaptiveSampler, Checkpoint, CheckpointError, CheckpointLock, CheckpointWriter, Film, Scene,
    TileResult, TileTask,
};
use std::cell::RefCell;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Threads per process at most: far above any node's cores, far below what makes spawning
/// them a hang (`--threads 4294967295`).
const MAX_THREADS: usize = 4096;

/// Checks everything that needs no MPI, so that a bad argument fails the same way on every
/// rank before any communication (and is printed once, by rank 0).
fn validate(args: &RenderArgs) -> Result<(), CliError> {
    let positive = [
        ("--width", args.width as u64),
        ("--height", args.height as u64),
        ("--spp", args.spp as u64),
        ("--passes", args.passes as u64),
        ("--tile", args.tile as u64),
    ];
    for (name, v) in positive {
        if v == 0 {
            return Err(shared(format!("{name} must be at least 1")));
        }
    }
    match args.threads {
        Some(0) => return Err(shared("--threads must be at least 1")),
        Some(t) if t > MAX_THREADS => {
            return Err(shared(format!(
                "--threads {t} is more than prism runs in one process (at most {MAX_THREADS})"
            )))
        }
        _ => {}
    }
    check_engine_threads(args.engine, args.threads)?;
    if (args.width as u64) * (args.height as u64) > 1 << 31 {
        return Err(shared(format!(
            "--width {} × --height {} is too large (at most 2^31 pixels)",
            args.width, args.height
        )));
    }
    sampler(args)
        .validate()
        .map_err(|e| shared(e.to_string()))?;
    if matches!(args.engine, EngineKind::Mpi | EngineKind::Hybrid) && !cfg!(feature = "mpi") {
        return Err(shared(format!(
            "--engine {} needs MPI, but this prism was built without it: rebuild with \
             `cargo build --release --features mpi` and launch with mpirun",
            engine_name(args.engine)
        )));
    }
    if args.cache.is_some() && args.scene == "cornell" {
        return Err(shared(
            "--cache keeps the built geometry of a scene file or mesh; the built-in cornell \
             box builds in a millisecond and has none",
        ));
    }
    check_output_names(args).map_err(CliError::everywhere)?;
    // Only the root reads the scene and writes the files, so only its view of the file system
    // counts (other nodes may not see the root's scratch directory).
    if prism::comm::launcher_rank().unwrap_or(0) == 0 {
        check_output_dirs(args)?;
        if args.scene != "cornell" && !Path::new(&args.scene).exists() {
            return Err(msg(format!(
                "scene '{}' not found: give `cornell`, a scene .toml, or a mesh file (.obj, \
                 .ply, .stl)",
                args.scene
            )));
        }
    }
    Ok(())
}

/// Output files are checked before the render, not when the first pass is written: a typo in
/// a directory or a `.jpg` name must not cost a pass that may have taken hours. Write
/// permission is left to the first write (it can differ between the ranks' views of a file
/// system; only the root writes).
fn check_output_dirs(args: &RenderArgs) -> Result<(), CliError> {
    for (option, path) in output_files(args) {
        check_parent_dir(option, path)?;
        if path.is_dir() {
            return Err(msg(format!("{option} {}: is a directory", path.display())));
        }
    }
    Ok(())
}

fn output_files(args: &RenderArgs) -> impl Iterator<Item = (&'static str, &Path)> {
    [
        ("--out", Some(&args.out)),
        ("--exr", args.exr.as_ref()),
        ("--error-image", args.error_image.as_ref()),
        ("--stats-json", args.stats_json.as_ref()),
        ("--cache", args.cache.as_ref()),
        ("--checkpoint", args.checkpoint.as_ref()),
    ]
    .into_iter()
    .filter_map(|(option, path)| Some((option, path?.as_path())))
}

/// What the names alone say: the extensions, no file named twice, and not the scene's.
fn check_output_names(args: &RenderArgs) -> Result<(), CliError> {
    let scene = (args.scene != "cornell").then(|| file_identity(Path::new(&args.scene)));
    let mut seen: Vec<(&str, std::path::PathBuf)> = Vec::new();
    for (option, path) in output_files(args) {
        let want = match option {
            "--out" | "--error-image" => Some("png"),
            "--exr" => Some("exr"),
            "--stats-json" => Some("json"),
            _ => None,
        };
        if let Some(want) = want {
            let has = path.extension().and_then(|e| e.to_str()).unwrap_or("");
            if !has.eq_ignore_ascii_case(want) {
                return Err(msg(format!(
                    "{option} {}: this file is written as {}, so its name must end in .{want}",
                    path.display(),
                    want.to_uppercase()
                )));
            }
        }
        let identity = file_identity(path);
        if scene.as_ref() == Some(&identity) {
            return Err(msg(format!(
                "{option} {} names the scene file: it would be overwritten",
                path.display()
            )));
        }
        if let Some((other, _)) = seen.iter().find(|(_, p)| *p == identity) {
            return Err(msg(format!(
                "{option} and {other} name the same file, {}: one would overwrite the other",
                path.display()
            )));
        }
        seen.push((option, identity));
    }
    Ok(())
}

/// What a name refers to, so that `x.png`, `./x.png`, `/abs/x.png` and a link to it count as
/// one file: the file's real path if it exists, else its directory's real path and its name
/// (else the name made absolute).
fn file_identity(path: &Path) -> std::path::PathBuf {
    if let Ok(real) = path.canonicalize() {
        return real;
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    match (dir.canonicalize(), path.file_name()) {
        (Ok(dir), Some(name)) => dir.join(name),
        _ => std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
    }
}

/// `--threads` with an engine that has exactly one thread per process is a mistake to report,
/// not an option to drop: the user expects the threads they asked for.
fn check_engine_threads(engine: EngineKind, threads: Option<usize>) -> Result<(), CliError> {
    match (engine, threads) {
        (EngineKind::Serial, Some(t)) if t != 1 => Err(shared(format!(
            "--engine serial renders on one thread, so --threads {t} does not apply: use \
             --engine threads (or hybrid under mpirun)"
        ))),
        (EngineKind::Mpi, Some(t)) if t != 1 => Err(shared(format!(
            "--engine mpi renders on one thread per process, so --threads {t} does not apply: \
             use --engine hybrid for {t} threads in each process"
        ))),
        _ => Ok(()),
    }
}

fn engine_name(kind: EngineKind) -> &'static str {
    match kind {
        EngineKind::Auto => "auto",
        EngineKind::Serial => "serial",
        EngineKind::Threads => "threads",
        EngineKind::Mpi => "mpi",
        EngineKind::Hybrid => "hybrid",
    }
}

fn sampler(args: &RenderArgs) -> AdaptiveSampler {
    AdaptiveSampler {
        fraction: args.fraction,
        ratio: args.ratio,
        min_samples: args.min_samples,
        cutoff: args.cutoff,
    }
}

/// What is wrong with how this rank's render threads sit on its CPUs, if anything (the rest
/// of a warning that starts with the rank): more threads than its CPUs; its threads and those
/// of the node's ranks on the same CPUs more than those CPUs (unbound ranks, `--bind-to
/// none`, each given `--threads`); or a hybrid job that the launcher's binding held to one
/// thread per rank on a node with cores to spare (Open MPI binds each of up to two ranks to
/// one core). `launched`: an MPI launcher started this process (so a binding may be its).
fn crowding(
    layout: &Layout,
    threads: usize,
    engine: &str,
    threads_given: bool,
    launched: bool,
) -> Option<String> {
    let (c, sharing) = (layout.cpus, layout.sharing);
    // Bound to fewer CPUs than the node has: the binding is what to change.
    let bound = launched && c < layout.node_cpus;
    let fits = (c / sharing).max(1);
    if threads == 1 && sharing > c {
        // More ranks than CPUs (`mpirun --oversubscribe`): no thread count helps.
        return Some(format!(
            "and the {} other rank(s) of its node that run on the same {c} CPU(s) are more \
             processes than CPUs, so they share cores: launch at most {c} rank(s) there \
             (mpirun -n, Slurm's --ntasks-per-node), with threads for the other cores",
            sharing - 1
        ));
    }
    if threads > c || (threads > 1 && threads * sharing > c) {
        let what = if sharing > 1 {
            format!(
                "and the {} other rank(s) of its node that run on the same {c} CPU(s) run {} \
                 render threads there ({threads} each)",
                sharing - 1,
                threads * sharing
            )
        } else {
            format!("runs {threads} render threads on {c} CPU(s)")
        };
        let how = if bound && sharing == 1 {
            "launch with `mpirun --bind-to none` (or Slurm's --cpus-per-task) to give it more \
             CPUs, or give fewer --threads"
                .to_string()
        } else {
            format!(
                "give --threads {fits} or fewer (ranks × threads per node should equal its cores)"
            )
        };
        return Some(format!("{what}, so they share cores: {how}"));
    }
    if engine == "hybrid"
        && bound
        && !threads_given
        && threads == 1
        && c == 1
        && layout.node_cpus > layout.ranks_per_node
    {
        return Some(format!(
            "may run on 1 CPU only (bound to it: Open MPI binds each rank to one core by \
             default), so hybrid renders with 1 thread per rank while its node has {} CPUs for \
             {} rank(s): launch with `mpirun --bind-to none` (or `--map-by ...:PE=N`, Slurm's \
             --cpus-per-task) to give each rank's threads cores of their own",
            layout.node_cpus, layout.ranks_per_node
        ));
    }
    None
}

fn make_engine(
    args: &RenderArgs,
    layout: &Layout,
    world: &prism::comm::Communicator,
) -> Result<(AnyEngine, usize), CliError> {
    let threads = args.threads.unwrap_or(layout.threads_per_rank);
    let kind = match args.engine {
        EngineKind::Auto => match layout.auto_engine_for(threads) {
            "threads" => EngineKind::Threads,
            "hybrid" => EngineKind::Hybrid,
            _ => EngineKind::Mpi,
        },
        k => k,
    };
    let schedule = match args.schedule {
        ScheduleKind::Dynamic => Schedule::Dynamic,
        ScheduleKind::Static => Schedule::StaticRoundRobin,
    };
    let cluster = Options {
        schedule,
        single_thread: if args.render_thread {
            SingleThread::OwnThread
        } else {
            SingleThread::default()
        },
        ..Options::default()
    };
    if matches!(kind, EngineKind::Serial | EngineKind::Threads) && args.render_thread {
        let chosen = match args.engine {
            EngineKind::Auto => format!(
                "the {} engine that --engine auto chose for this one process",
                engine_name(kind)
            ),
            _ => format!("--engine {}", engine_name(kind)),
        };
        return Err(shared(format!(
            "--render-thread applies to processes of an MPI job (--engine mpi or hybrid), not \
             to {chosen}"
        )));
    }
    if args.render_thread && kind == EngineKind::Hybrid && threads > 1 {
        return Err(shared(format!(
            "--render-thread applies to processes with one render thread (--engine mpi, or \
             hybrid with --threads 1); this hybrid run has {threads} threads per process, which \
             render on threads of their own anyway"
        )));
    }
    if matches!(kind, EngineKind::Serial | EngineKind::Threads) && world.size() > 1 {
        return Err(shared(format!(
            "--engine {} runs in one process, but this job has {} processes: use --engine mpi \
             or hybrid, or launch without mpirun",
            engine_name(kind),
            world.size()
        )));
    }
    Ok(match kind {
        EngineKind::Serial => (SerialEngine::new().into(), 1),
        EngineKind::Threads => (
            MultiThreadEngine::new(threads)
                .with_schedule(schedule)
                .into(),
            threads,
        ),
        EngineKind::Mpi => (MpiEngine::new(world)?.with_options(cluster).into(), 1),
        _ => (
            HybridEngine::new(world, threads)?
                .with_options(cluster)
                .into(),
            threads,
        ),
    })
}

/// The root's scene: the built-in Cornell box, or a file (through the cache when asked).
fn make_scene(args: &RenderArgs) -> Result<Scene, String> {
    if args.scene == "cornell" {
        return Ok(prism::tracer::cornell::cornell_box());
    }
    let path = Path::new(&args.scene);
    let aspect = args.width as f32 / args.height as f32;
    let description = prism::tracer::scene_file::read_scene_description(path, aspect)
        .map_err(|e| e.to_string())?;
    for w in &description.warnings {
        warn(&format!("prism: warning: {w}"));
    }
    // The scene file itself is refused with the other names (`check_output_names`); the mesh
    // files it reads are known only now. `--cache` and `--checkpoint` take any name, and a
    // cache that is not one would be taken for a damaged cache to remove.
    for mesh in &description.mesh_files {
        let mesh_id = file_identity(mesh);
        for (option, out) in output_files(args) {
            if file_identity(out) == mesh_id {
                return Err(format!(
                    "{option} {} names the mesh file {} of the scene: it would be overwritten",
                    out.display(),
                    mesh.display()
                ));
            }
        }
    }
    let cached = match &args.cache {
        Some(cache) if cache.exists() => {
            use prism::tracer::CacheError;
            // The meshes are read anyway (for the materials and camera); the cache saves the
            // build. A cache of other input — a mesh or a placement edited since — is rebuilt,
            // never used for the wrong scene; so is one this build cannot read because another
            // version of prism (or a machine of the other byte order) wrote it. A damaged
            // cache stays an error: it may be a sign of a failing disk, not of an old file.
            let usable = match prism::tracer::Geometry::load_cache(cache) {
                Ok(g) => {
                    let key = prism::tracer::Geometry::input_key(
                        &description.meshes,
                        &description.instances,
                    );
                    if g.source_key() == key {
                        Ok(g)
                    } else {
                        // The key covers the meshes as read and their placement, so the
                        // change may be in a mesh file the scene names, not the scene file.
                        Err(format!(
                            "was built from other geometry than {} now gives (its meshes or \
                             their placement changed)",
                            path.display()
                        ))
                    }
                }
                Err(CacheError::WrongVersion {
                    found, expected, ..
                }) => Err(format!(
                    "is in cache format version {found}, this prism reads version {expected}"
                )),
                Err(CacheError::WrongByteOrder { .. }) => {
                    Err("was written on a machine of the other byte order".to_string())
                }
                // Advice to remove only what is recognisably a cache of ours: the file could be
                // a checkpoint holding hours of work, a mesh, or a device.
                Err(e) if e.is_prism_cache() => {
                    return Err(format!(
                        "--cache {e}; remove it (or name another --cache) to have it rebuilt"
                    ))
                }
                Err(e) => return Err(format!("--cache {e}")),
            };
            match usable {
                Ok(g) => Some(g),
                Err(why) => {
                    warn(&format!(
                        "prism: note: {} {why}: rebuilding it",
                        cache.display()
                    ));
                    None
                }
            }
        }
        _ => None,
    };
    let geometry = match cached {
        Some(g) => g,
        None => {
            let g = prism::tracer::Geometry::build(
                description.meshes.clone(),
                description.instances.clone(),
            )
            .map_err(|e| format!("{}: {e}", path.display()))?;
            if let Some(cache) = &args.cache {
                // The build is done: a cache that cannot be written (a read-only shared
                // directory, a full disk) must not cost it, so the render goes on without.
                let what = if cache.exists() { "update" } else { "write" };
                if let Err(e) = g.write_cache(cache) {
                    warn(&format!(
                        "prism: warning: could not {what} the cache ({e}): rendering without \
                         it; the next run builds the scene again"
                    ));
                }
            }
            g
        }
    };
    let scene = Scene::new(geometry, description.materials, description.camera)
        .and_then(|s| s.with_background(description.background))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if let Some(w) = scene.precision_warning() {
        warn(&format!("prism: warning: {}: {w}", path.display()));
    }
    Ok(scene)
}

pub fn run(args: &RenderArgs) -> Result<(), CliError> {
    // A job's time limit counts from its start: MPI's start and the scene's build count too.
    let started = Instant::now();
    // Before anything slow (MPI's start, the scene's build): from here on a batch system's
    // SIGUSR1 no longer kills a rank.
    let stop = signals::stop_on_usr1().map_err(|e| msg(format!("cannot catch SIGUSR1: {e}")))?;
    // Checked before MPI's start, reported after it: an error exit races the launcher, which
    // kills every process once one exits non-zero, rank 0 perhaps before it has printed; with
    // MPI up, rank 0 prints and MPI's end waits for every process.
    let checked = validate(args).map_err(StartError::from);
    with_universe(checked, |universe| render(args, universe, started, stop))
}

fn render(
    args: &RenderArgs,
    universe: &Universe,
    started: Instant,
    stop: Arc<AtomicBool>,
) -> Result<(), CliError> {
    let world = universe.world();
    // Only the root writes, so only its view of the file system counts: its answer is every
    // rank's, and a refusal ends the job on every rank alike (said once), before the scene's
    // build and the first pass.
    let refusal = world.is_root().then(|| {
        remove_stale_temporaries(args);
        check_outputs_writable(args).err().map(|e| e.to_string())
    });
    if let Some(refusal) = world.broadcast(0, refusal)? {
        return Err(CliError::Shared(refusal));
    }
    let layout = Layout::discover(universe)?;
    let (engine, threads) = make_engine(args, &layout, &world)?;
    // Render threads that share cores, or a hybrid run held to one thread per rank by the
    // launcher's binding, quietly cost speed. Each rank judges its own; the root says the
    // first such rank's, once.
    let crowded = world.gather(
        0,
        &crowding(
            &layout,
            threads,
            engine.name(),
            args.threads.is_some(),
            prism::comm::launched_as_job(),
        ),
    )?;
    if let (Some(all), false) = (crowded, args.quiet) {
        if let Some((rank, Some(note))) = all.iter().enumerate().find(|(_, c)| c.is_some()) {
            let who = if all.len() == 1 {
                "this process".to_string()
            } else {
                format!("rank {rank}")
            };
            warn(&format!("prism: warning: {who} {note}"));
        }
    }
    // The root reads the scene; a failure reaches every rank alike. The mesh readers turn a
    // panic of a third-party parser into an error; under MPI it must not abort the job first.
    let read = || {
        prism::comm::catch_panic(|| make_scene(args)).unwrap_or_else(|p| {
            Err(format!(
                "reading the scene failed: {}",
                prism::comm::panic_message(&*p)
            ))
        })
    };
    let scene = prism::share_scene(&world, read).map_err(CliError::Shared)?;

    // The root reads the checkpoint; a checkpoint that cannot be used stops every rank alike.
    let keep = match &args.checkpoint {
        Some(path) if world.is_root() => Some((path, checkpoint_settings(args, &scene))),
        _ => None,
    };
    // One run at a time on a checkpoint: locked before it is read, held until this run ends.
    let mut _checkpoint_lock = None;
    let from = if let Some((path, settings)) = &keep {
        match CheckpointLock::acquire(path) {
            Ok(lock) => {
                _checkpoint_lock = Some(lock);
                start_from_checkpoint(args, path, settings)
            }
            Err(e @ CheckpointError::InUse { .. }) => Err(format!(
                "--checkpoint {e}. Wait for that run to end, or give this one another \
                 --checkpoint"
            )),
            Err(e) => Err(format!("--checkpoint {e}")),
        }
    } else {
        Ok(Start::Fresh)
    };
    let refused: Option<String> =
        world.broadcast(0, world.is_root().then(|| from.as_ref().err().cloned()))?;
    if let Some(e) = refused {
        return Err(CliError::Shared(e));
    }
    let from = from.map_err(CliError::Shared)?;
    let passes_resumed = match &from {
        Start::Resume { passes, .. } => *passes,
        Start::Fresh => 0,
    };

    // Memory after the scene is in place: every rank reads its own PSS at the same moment.
    world.barrier()?;
    let pss_total: u64 = world
        .gather(0, &own_pss_bytes())?
        .map_or(0, |v| v.iter().sum());

    let root = world.is_root();
    let show_bar = root && !args.quiet && std::io::stderr().is_terminal();
    let bar = show_bar.then(|| {
        // Length 1 until the first pass sets it: a bar of length 0 would first show 100 %.
        let b = ProgressBar::new(1);
        b.set_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {percent:>3}% of its pixels {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    });
    let settings = ObserveSettings {
        width: args.width,
        height: args.height,
        tile: args.tile,
        samples_per_pass: args.spp,
        max_passes: args.passes,
        seed: args.seed,
        sampler: sampler(args),
        render: RenderSettings {
            max_depth: args.max_depth,
            ..RenderSettings::default()
        },
        deadline: args.time_limit.map(|limit| started + limit.0),
        stop_requested: Some(stop),
    };
    // Without a bar (a batch job's log), a line every minute during a pass, unless --quiet.
    let every = (root && !args.quiet).then(|| {
        args.progress_every
            .as_ref()
            .map_or(Duration::from_secs(60), |d| d.0)
    });
    let progress = RefCell::new(Progress::new(bar.clone(), every));
    let mut before_pass =
        |pass: usize, tasks: &[TileTask]| progress.borrow_mut().begin_pass(pass, tasks);
    let mut on_result = |result: &TileResult| progress.borrow_mut().result(result);
    // The root's checkpoints, written while the next pass renders.
    let mut checkpoints = keep.map(|(path, settings)| CheckpointWriter::new(path, settings));
    // What a SIGTERM waits for: the files of the pass being saved.
    let saving = signals::Saving::default();
    // The white level of the error image last written, for the summary.
    let error_white = std::cell::Cell::new(None);
    if root {
        let checkpoint = checkpoints
            .as_ref()
            .zip(args.checkpoint.as_ref())
            .map(|(w, path)| signals::CheckpointNote {
                path: path.clone(),
                progress: w.progress(),
                resumed: passes_resumed,
            });
        signals::finish_on_exit(checkpoint, args.out.clone(), saving.clone(), bar.clone())
            .map_err(|e| msg(format!("cannot catch SIGTERM and SIGINT: {e}")))?;
    }
    let mut after_pass = |film: &Film, pass: &PassReport| -> Result<(), String> {
        {
            let _writing = saving.writing();
            // The previous pass's checkpoint is on disk before this pass's images go out, so
            // that a job killed now leaves images at most one pass ahead of its checkpoint,
            // and loses at most the pass whose checkpoint was being written.
            if let Some(w) = checkpoints.as_mut() {
                w.flush().map_err(|e| format!("--checkpoint {e}"))?;
            }
            error_white.set(write_outputs(args, film)?);
            saving.images_hold(pass.pass + 1);
            if let Some(w) = checkpoints.as_mut() {
                w.save(pass.pass as u32 + 1, film)
                    .map_err(|e| format!("--checkpoint {e}"))?;
            }
        }
        if bar.is_none() && !args.quiet {
            warn(&format!(
                "pass {}: {} tiles, {} pixels, {} rays in {:.2} s ({:.2} Mrays/s)",
                pass.pass + 1,
                pass.tasks,
                pass.pixels,
                pass.rays,
                pass.wall.as_secs_f64(),
                pass.rays as f64 / pass.wall.as_secs_f64().max(1e-9) / 1e6
            ));
        }
        Ok(())
    };
    let (film, report) = observe_from(
        &engine,
        &world,
        &scene,
        &settings,
        from,
        Hooks {
            after_pass: &mut after_pass,
            before_pass: &mut before_pass,
            on_result: &mut on_result,
            fail_on_rank: args.fail_on_rank,
        },
    )
    // Every rank holds the run's failure (the engine ends the run everywhere with the same
    // error, naming the rank and task where it happened).
    .map_err(CliError::Shared)?;
    // Memory again, the root's film included: every rank, at the same moment.
    world.barrier()?;
    let pss_total_end: u64 = world
        .gather(0, &own_pss_bytes())?
        .map_or(0, |v| v.iter().sum());
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    if let Some(w) = checkpoints {
        w.finish().map_err(|e| msg(format!("--checkpoint {e}")))?;
    }
    if matches!(report.end, End::PassLimit | End::Converged) {
        saving.rendered();
    }
    if let Some(film) = film {
        // Passes in the film: those resumed and those rendered.
        let done = passes_resumed + report.passes.len();
        if report.end == End::Converged && !report.passes.is_empty() && !args.quiet {
            warn(&format!(
                "prism: converged after pass {done} of {}: the adaptive sampler left no pixel \
                 to sample again",
                args.passes
            ));
        }
        let why = match report.end {
            End::Deadline => {
                Some("the next would have ended past --time-limit at the pace of the last")
            }
            End::StopRequested => Some("SIGUSR1 asked for a stop"),
            End::PassLimit | End::Converged => None,
        };
        // Stopped before a first pass: there is no image to write, nor a render to go on with.
        let nothing = done == 0;
        if let Some(why) = why {
            let later = match &args.checkpoint {
                _ if nothing => "nothing was rendered".to_string(),
                Some(path) => format!(
                    "run the same command again to go on from {}",
                    path.display()
                ),
                None => "with --checkpoint, a later run could have gone on from here".to_string(),
            };
            let when = if nothing {
                "before pass 1".to_string()
            } else {
                format!("after pass {done}")
            };
            warn(&format!(
                "prism: stopped {when} of {}: {why}; {later}",
                args.passes
            ));
        }
        // A checkpoint that already held every pass (or a converged film): its image, written
        // again in case the files are gone or named anew.
        if report.passes.is_empty() && !nothing {
            let _writing = saving.writing();
            error_white.set(write_outputs(args, &film).map_err(msg)?);
        }
        let secs = report.wall.as_secs_f64().max(1e-9);
        // The files first: a closed standard output must not cost them.
        if let Some(path) = &args.stats_json {
            let stats = RunStats {
                engine: engine.name().to_string(),
                schedule: format!("{:?}", args.schedule).to_lowercase(),
                processes: world.size(),
                threads,
                width: args.width,
                height: args.height,
                passes: report.passes.len(),
                passes_resumed,
                end: format!("{:?}", report.end),
                wall_seconds: secs,
                comm_seconds: report.comm.as_secs_f64(),
                rays: report.rays,
                rays_per_second: report.rays as f64 / secs,
                pss_bytes_total: pss_total,
                pss_bytes_total_end: pss_total_end,
                geometry_bytes: scene.geometry.as_bytes().len() as u64,
                geometry_huge_page_bytes: scene.geometry.huge_page_bytes(),
                ranks: report.rank_totals().iter().map(RankStats::from).collect(),
            };
            let text = serde_json::to_string_pretty(&stats).map_err(|e| msg(e.to_string()))?;
            crate::cli::stats::write_replacing(path, text.as_bytes())
                .map_err(|e| msg(format!("--stats-json {e}")))?;
        }
        if nothing {
            return Ok(());
        }
        let resumed = match (&args.checkpoint, passes_resumed) {
            (Some(path), n) if n > 0 => {
                format!(" (resumed after pass {n}, from {})", path.display())
            }
            _ => String::new(),
        };
        say(&format!(
            "rendered {}x{} in {} pass{}{resumed}: {} rays in {:.2} s, {:.2} Mrays/s ({} engine, {} process(es) × {} thread(s)) -> {}",
            film.width(),
            film.height(),
            report.passes.len(),
            if report.passes.len() == 1 { "" } else { "es" },
            report.rays,
            secs,
            report.rays as f64 / secs / 1e6,
            engine.name(),
            world.size(),
            threads,
            args.out.display()
        ))?;
        if let (Some(err), Some(white)) = (&args.error_image, error_white.get()) {
            say(&format!(
                "{}: linear grey levels, 255 (white) for a normalised error of {white:.4e} or \
                 more",
                err.display(),
            ))?;
        }
    }
    Ok(())
}

/// Everything besides the film that decides the image's bits, named as the user gives it; a
/// checkpoint of other settings is another render's. The tile size, the engine and the
/// number of processes and threads are not among them (the image does not depend on them),
/// nor is `--passes`, which may grow between runs.
fn checkpoint_settings(args: &RenderArgs, scene: &Scene) -> Vec<(String, String)> {
    let sampler = sampler(args);
    [
        ("prism", env!("CARGO_PKG_VERSION").to_string()),
        ("scene", format!("{:016x}", scene.content_key())),
        ("--width", args.width.to_string()),
        ("--height", args.height.to_string()),
        ("--spp", args.spp.to_string()),
        ("--seed", args.seed.to_string()),
        // `+ 0.0` makes -0 read 0: the sampler treats them alike.
        ("--fraction", (sampler.fraction + 0.0).to_string()),
        ("--ratio", (sampler.ratio + 0.0).to_string()),
        ("--min-samples", sampler.min_samples.to_string()),
        ("--cutoff", (sampler.cutoff + 0.0).to_string()),
        ("--max-depth", args.max_depth.to_string()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_string(), value))
    .collect()
}

/// Where the render starts: afresh, or from the checkpoint at `path` when that file exists
/// and belongs to this render (`settings`). On the root.
fn start_from_checkpoint(
    args: &RenderArgs,
    path: &Path,
    settings: &[(String, String)],
) -> Result<Start, String> {
    // A missing file, or a link to one, is a fresh start: checkpoints are written through a
    // link to its target (`replace::final_target`), so a link to scratch space stays one.
    // Other errors (a loop of links, no permission) are reported by `Checkpoint::read`.
    if matches!(std::fs::metadata(path), Err(e) if e.kind() == std::io::ErrorKind::NotFound) {
        return Ok(Start::Fresh);
    }
    let checkpoint = Checkpoint::read(path).map_err(|e| format!("--checkpoint {e}"))?;
    let differences = checkpoint.differences(settings);
    if !differences.is_empty() {
        let what: Vec<String> = differences
            .iter()
            .map(|(name, there, here)| match name.as_str() {
                "scene" => "the scene (its geometry, materials, camera or background)".to_string(),
                "prism" => format!(
                    "prism {} wrote it, this is prism {}",
                    there.as_deref().unwrap_or("?"),
                    here.as_deref().unwrap_or("?")
                ),
                _ => format!(
                    "{name} {} there, {} here",
                    there.as_deref().unwrap_or("unset"),
                    here.as_deref().unwrap_or("unset")
                ),
            })
            .collect();
        return Err(format!(
            "--checkpoint {} belongs to another render; it differs in {}. Run with the same \
             settings to resume it, or remove it (or name another file) to start afresh",
            path.display(),
            what.join("; ")
        ));
    }
    let passes = checkpoint.passes as usize;
    // The header's count and the pixels' must agree, or the resume would skip a pass or
    // render one twice; the observe loop would refuse it too, but without the file's name.
    let (lo, hi) = checkpoint.film.passes_merged();
    if (passes == 0 && hi != 0) || (passes > 0 && (lo < 1 || hi != passes)) {
        return Err(format!(
            "--checkpoint {}: corrupt: it says {passes} passes are done, but its pixels have \
             merged passes {lo} to {hi}; remove it (or name another file) to start afresh",
            path.display()
        ));
    }
    // Its film already holds those passes: a smaller --passes cannot take them back.
    if passes > args.passes {
        return Err(format!(
            "--checkpoint {} holds {passes} passes, more than --passes {} asks for: give \
             --passes {passes} or more to use it, or remove it (or name another file) to \
             render {} passes afresh",
            path.display(),
            args.passes,
            args.passes
        ));
    }
    if !args.quiet {
        let plan = if passes == args.passes {
            "as many as --passes asks: writing its image".to_string()
        } else if sampler(args).select(&checkpoint.film).is_none() {
            "and the image has converged: writing it".to_string()
        } else {
            format!("going on with pass {}", passes + 1)
        };
        warn(&format!(
            "prism: resuming from {}: {passes} pass(es) done, {plan}",
            path.display()
        ));
    }
    Ok(Start::Resume {
        film: checkpoint.film,
        passes,
    })
}

/// Every file the run will write can be created where it goes (a read-only or foreign
/// directory shows now rather than after the first pass). `--cache` is left out: a cache that
/// is valid is only read, and may well sit where this user cannot write.
fn check_outputs_writable(args: &RenderArgs) -> Result<(), CliError> {
    for (option, path) in output_files(args).filter(|(o, _)| *o != "--cache") {
        if let Err(e) = prism::tracer::replace::check_replaceable(path) {
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            return Err(msg(format!(
                "{option} {}: cannot create files in {}: {e}",
                path.display(),
                dir.display()
            )));
        }
    }
    Ok(())
}

/// Removes the temporary files that a run killed while writing an output (a checkpoint, an
/// image, a cache) left beside it, and says so — also under --quiet, which hides progress: a
/// file went from the user's directory. On the root, which alone writes them.
fn remove_stale_temporaries(args: &RenderArgs) {
    for (option, path) in output_files(args) {
        let sweep = prism::tracer::replace::remove_stale_temporaries(path);
        for stale in &sweep.removed {
            warn(&format!(
                "prism: note: removed {}, left by a run killed while writing {}",
                stale.display(),
                path.display()
            ));
        }
        let unreadable = sweep.unreadable.iter().map(|(dir, e)| {
            let what = format!(
                "cannot look in {} for files a killed run left",
                dir.display()
            );
            (what, e)
        });
        let failed = sweep.failed.iter().map(|(file, e)| {
            let what = format!("cannot remove {}, left by a killed run", file.display());
            (what, e)
        });
        for (what, e) in unreadable.chain(failed) {
            warn(&format!(
                "prism: warning: {option} {}: {what}: {e}",
                path.display()
            ));
        }
    }
}

/// Writes the images of `film`; returns the error image's white level, if it has one.
fn write_outputs(args: &RenderArgs, film: &Film) -> Result<Option<f64>, String> {
    write_png(film, &args.out, ToneMap::default()).map_err(|e| format!("--out: {e}"))?;
    if let Some(exr) = &args.exr {
        write_exr(film, exr).map_err(|e| format!("--exr: {e}"))?;
    }
    args.error_image
        .as_ref()
        .map(|err| write_error_png(film, err).map_err(|e| format!("--error-image: {e}")))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(world: usize, per_node: usize, cpus: usize, sharing: usize, node: usize) -> Layout {
        Layout {
            world_size: world,
            nodes: world.div_ceil(per_node),
            ranks_per_node: per_node,
            threads_per_rank: (cpus / sharing).max(1),
            cpus,
            sharing,
            node_cpus: node,
        }
    }

    #[test]
    fn threads_that_share_cores_or_a_bound_hybrid_run_are_named() {
        // One process, more threads than its CPUs.
        let one = layout(1, 1, 2, 1, 2);
        let w = crowding(&one, 4, "threads", true, false).unwrap();
        assert!(
            w.contains("runs 4 render threads on 2 CPU(s)") && w.contains("--threads 2"),
            "{w}"
        );
        assert!(!w.contains("mpirun"), "{w}");
        assert_eq!(crowding(&one, 2, "threads", true, false), None);
        // Two unbound ranks on 2 cores, 2 or 3 threads each: the advice is a thread count.
        let unbound = layout(2, 2, 2, 2, 2);
        for t in [2, 3] {
            let w = crowding(&unbound, t, "hybrid", true, true).unwrap();
            assert!(w.contains(&format!("run {} render threads", 2 * t)), "{w}");
            assert!(
                w.contains("--threads 1 or fewer") && !w.contains("--bind-to"),
                "{w}"
            );
        }
        assert_eq!(crowding(&unbound, 1, "mpi", false, true), None);
        // Four unbound ranks of one thread on 2 cores (--oversubscribe): fewer ranks.
        let over = layout(4, 4, 2, 4, 2);
        for engine in ["mpi", "hybrid"] {
            let w = crowding(&over, 1, engine, false, true).unwrap();
            assert!(
                w.contains("the 3 other rank(s)") && w.contains("launch at most 2 rank(s)"),
                "{w}"
            );
        }
        // Slurm, 2 ranks per node each confined to 16 of 32 cores: 16 threads each is right;
        // more is the binding's to change.
        let confined = layout(4, 2, 16, 1, 32);
        assert_eq!(crowding(&confined, 16, "hybrid", false, true), None);
        let w = crowding(&confined, 17, "hybrid", true, true).unwrap();
        assert!(w.contains("--bind-to none"), "{w}");
        // mpirun -n 1 binds the rank to one core of a 2-core node: hybrid gets 1 thread.
        let bound = layout(1, 1, 1, 1, 2);
        let w = crowding(&bound, 1, "hybrid", false, true).unwrap();
        assert!(
            w.contains("--bind-to none") && w.contains("2 CPUs for 1 rank(s)"),
            "{w}"
        );
        // ... but not when no launcher bound it (taskset, a cgroup), nor when one thread was
        // asked for, nor with a rank per core, nor for mpi.
        assert_eq!(crowding(&bound, 1, "hybrid", false, false), None);
        assert_eq!(crowding(&bound, 1, "hybrid", true, true), None);
        assert_eq!(
            crowding(&layout(2, 2, 1, 1, 2), 1, "hybrid", false, true),
            None
        );
        assert_eq!(crowding(&bound, 1, "mpi", false, true), None);
    }
}
