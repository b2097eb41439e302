//! `prism render`: a scene on any engine, pass after pass, into PNG (and EXR) files.

use crate::cli::layout::Layout;
use crate::cli::stats::{own_pss_bytes, RunStats};
use crate::cli::{msg, CliError};
use crate::{EngineKind, RenderArgs, ScheduleKind};
use indicatif::{ProgressBar, ProgressStyle};
use prism::engines::{
    AnyEngine, HybridEngine, MpiEngine, MultiThreadEngine, Options, Schedule, SerialEngine,
    SingleThread,
};
use prism::observe::{observe, Hooks, ObserveSettings, PassReport};
use prism::tracer::integrator::RenderSettings;
use prism::tracer::output::{write_error_png, write_exr, write_png, ToneMap};
use prism::tracer::{AdaptiveSampler, Film, Scene, TileResult, TileTask};
use std::io::IsTerminal;
use std::path::Path;
use std::time::Instant;

/// Checks everything that needs no MPI, so that a bad argument fails the same way on every
/// rank before any communication.
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
            return Err(msg(format!("{name} must be at least 1")));
        }
    }
    if args.threads == Some(0) {
        return Err(msg("--threads must be at least 1"));
    }
    if (args.width as u64) * (args.height as u64) > 1 << 31 {
        return Err(msg(format!(
            "--width {} × --height {} is too large (at most 2^31 pixels)",
            args.width, args.height
        )));
    }
    sampler(args).validate()?;
    if matches!(args.engine, EngineKind::Mpi | EngineKind::Hybrid) && !cfg!(feature = "mpi") {
        return Err(msg(format!(
            "--engine {} needs MPI, but this prism was built without it: rebuild with \
             `cargo build --release --features mpi` and launch with mpirun",
            engine_name(args.engine)
        )));
    }
    check_outputs(args)?;
    if args.scene != "cornell" && !Path::new(&args.scene).exists() {
        return Err(msg(format!(
            "scene '{}' not found: give `cornell`, a scene .toml, or a mesh file (.obj, .ply, .stl)",
            args.scene
        )));
    }
    Ok(())
}

/// Output files are checked before the render, not when the first pass is written: a typo in
/// a directory or a `.jpg` name must not cost a pass that may have taken hours. Write
/// permission is left to the first write (it can differ between the ranks' views of a file
/// system; only the root writes).
fn check_outputs(args: &RenderArgs) -> Result<(), CliError> {
    let mut files: Vec<(&str, &Path)> = Vec::new();
    let typed = [
        ("--out", Some(&args.out), Some("png")),
        ("--exr", args.exr.as_ref(), Some("exr")),
        ("--error-image", args.error_image.as_ref(), Some("png")),
        ("--stats-json", args.stats_json.as_ref(), None),
        ("--cache", args.cache.as_ref(), None),
    ];
    for (option, path, extension) in typed {
        let Some(path) = path else { continue };
        if let Some(want) = extension {
            let has = path.extension().and_then(|e| e.to_str()).unwrap_or("");
            if !has.eq_ignore_ascii_case(want) {
                return Err(msg(format!(
                    "{option} {}: this file is written as {}, so its name must end in .{want}",
                    path.display(),
                    want.to_uppercase()
                )));
            }
        }
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        if let Some(dir) = dir {
            if !dir.is_dir() {
                return Err(msg(format!(
                    "{option} {}: the directory {} does not exist",
                    path.display(),
                    dir.display()
                )));
            }
        }
        if let Some((other, _)) = files.iter().find(|(_, p)| *p == path.as_path()) {
            return Err(msg(format!(
                "{option} and {other} name the same file, {}: one would overwrite the other",
                path.display()
            )));
        }
        files.push((option, path.as_path()));
    }
    Ok(())
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

fn make_engine(
    args: &RenderArgs,
    layout: &Layout,
    world: &prism::comm::Communicator,
) -> Result<(AnyEngine, usize), CliError> {
    let kind = match args.engine {
        EngineKind::Auto => match layout.auto_engine() {
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
    let threads = args.threads.unwrap_or(layout.threads_per_rank);
    if matches!(kind, EngineKind::Serial | EngineKind::Threads) && args.render_thread {
        return Err(msg(format!(
            "--render-thread applies to processes of an MPI job (--engine mpi or hybrid), not \
             to --engine {}",
            engine_name(kind)
        )));
    }
    if matches!(kind, EngineKind::Serial | EngineKind::Threads) && world.size() > 1 {
        return Err(msg(format!(
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
        eprintln!("prism: warning: {w}");
    }
    let cached = match &args.cache {
        Some(cache) if cache.exists() => {
            Some(prism::tracer::Geometry::load_cache(cache).map_err(|e| e.to_string())?)
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
                g.write_cache(cache).map_err(|e| e.to_string())?;
            }
            g
        }
    };
    Scene::new(geometry, description.materials, description.camera)
        .and_then(|s| s.with_background(description.background))
        .map_err(|e| format!("{}: {e}", path.display()))
}

pub fn run(args: &RenderArgs) -> Result<(), CliError> {
    validate(args)?;
    let universe = prism::comm::init()?;
    universe.abort_on_panic();
    let world = universe.world();
    let layout = Layout::discover(&universe)?;
    let (engine, threads) = make_engine(args, &layout, &world)?;
    let scene = prism::share_scene(&world, || make_scene(args)).map_err(CliError::Msg)?;

    // Memory after the scene is in place: every rank reads its own PSS at the same moment.
    world.barrier();
    let pss_total: u64 = world
        .gather(0, &own_pss_bytes())?
        .map_or(0, |v| v.iter().sum());

    let root = world.is_root();
    let show_bar = root && !args.quiet && std::io::stderr().is_terminal();
    let bar = show_bar.then(|| {
        let b = ProgressBar::new(0);
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
    };
    let start = Instant::now();
    let mut rays_so_far = 0u64;
    let mut before_pass = |pass: usize, tasks: &[TileTask]| {
        if let Some(b) = &bar {
            b.set_prefix(format!("pass {}", pass + 1));
            b.set_length(tasks.iter().map(|t| t.pixel_count() as u64).sum());
            b.set_position(0);
        }
    };
    let mut on_result = |result: &TileResult| {
        rays_so_far += result.ray_count;
        if let Some(b) = &bar {
            b.inc(result.stats.len() as u64);
            let secs = start.elapsed().as_secs_f64().max(1e-9);
            b.set_message(format!("{:.2} Mrays/s", rays_so_far as f64 / secs / 1e6));
        }
    };
    let mut after_pass = |film: &Film, pass: &PassReport| -> Result<(), String> {
        write_outputs(args, film)?;
        if bar.is_none() && !args.quiet {
            eprintln!(
                "pass {}: {} tiles, {} pixels, {} rays in {:.2} s ({:.2} Mrays/s)",
                pass.pass + 1,
                pass.tasks,
                pass.pixels,
                pass.rays,
                pass.wall.as_secs_f64(),
                pass.rays as f64 / pass.wall.as_secs_f64().max(1e-9) / 1e6
            );
        }
        Ok(())
    };
    let (film, report) = observe(
        &engine,
        &world,
        &scene,
        &settings,
        Hooks {
            after_pass: &mut after_pass,
            before_pass: &mut before_pass,
            on_result: &mut on_result,
            fail_on_rank: args.fail_on_rank,
        },
    )
    .map_err(CliError::Msg)?;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    if let Some(film) = film {
        let secs = report.wall.as_secs_f64().max(1e-9);
        println!(
            "rendered {}x{} in {} passes: {} rays in {:.2} s, {:.2} Mrays/s ({} engine, {} process(es) × {} thread(s)) -> {}",
            film.width(),
            film.height(),
            report.passes.len(),
            report.rays,
            secs,
            report.rays as f64 / secs / 1e6,
            engine.name(),
            world.size(),
            threads,
            args.out.display()
        );
        if let Some(path) = &args.stats_json {
            let stats = RunStats {
                engine: engine.name().to_string(),
                schedule: format!("{:?}", args.schedule).to_lowercase(),
                processes: world.size(),
                threads,
                width: args.width,
                height: args.height,
                passes: report.passes.len(),
                wall_seconds: secs,
                comm_seconds: report.comm.as_secs_f64(),
                rays: report.rays,
                rays_per_second: report.rays as f64 / secs,
                pss_bytes_total: pss_total,
                ranks: report.rank_totals(),
            };
            let text = serde_json::to_string_pretty(&stats).map_err(|e| msg(e.to_string()))?;
            std::fs::write(path, text)
                .map_err(|e| msg(format!("cannot write {}: {e}", path.display())))?;
        }
    }
    Ok(())
}

fn write_outputs(args: &RenderArgs, film: &Film) -> Result<(), String> {
    write_png(film, &args.out, ToneMap::default()).map_err(|e| e.to_string())?;
    if let Some(exr) = &args.exr {
        write_exr(film, exr).map_err(|e| e.to_string())?;
    }
    if let Some(err) = &args.error_image {
        write_error_png(film, err).map_err(|e| e.to_string())?;
    }
    Ok(())
}
