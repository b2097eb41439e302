//! `prism bench trace` (the kernel on a mesh file) and `prism bench scaling` (every engine on
//! every layout, written into docs/performance.md).

use crate::cli::scaling::{self, PairedRatio, Row};
use crate::cli::{check_parent_dir, msg, say, shared, warn, with_universe, CliError, StartError};
use clap::Args;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Rays per measurement at most: the two ray sets live in memory at once (about 100 bytes a
/// ray with the hits), so this keeps the benchmark within a couple of gigabytes.
const MAX_RAYS: usize = 10_000_000;

pub fn trace(mesh: &Path, rays: usize, seed: u64) -> Result<(), CliError> {
    let checked = if rays == 0 || rays > MAX_RAYS {
        Err(StartError::from(shared(format!(
            "--rays {rays}: give 1 to {MAX_RAYS} rays per measurement"
        ))))
    } else {
        Ok(())
    };
    // One process measures one thread: under mpirun every copy would measure the same thing.
    with_universe(checked, |universe| match universe.world().size() {
        1 => Ok(()),
        n => Err(shared(format!(
            "prism bench trace measures one thread of one process, but this job has {n} \
             processes: run it without mpirun"
        ))),
    })?;
    let (mesh, warnings) = prism::tracer::io::load_mesh_with_report(mesh)?;
    for w in warnings {
        warn(&format!("prism: warning: {w}"));
    }
    let report = prism::tracer::bench::trace_benchmark(&mesh, rays, seed);
    say(&report.to_string())
}

#[derive(Args, Clone, Debug)]
pub struct ScalingArgs {
    /// The scene every configuration renders.
    #[arg(long, default_value = "cornell")]
    pub scene: String,
    #[arg(long, default_value_t = 256)]
    pub width: u32,
    #[arg(long, default_value_t = 256)]
    pub height: u32,
    /// Samples per pixel per pass: 64 makes a serial run last about 7 s, long enough to
    /// average out a shared machine's swings in speed (±14 % per run at 16 spp here, ±5 % at 64).
    #[arg(long, default_value_t = 64)]
    pub spp: u32,
    #[arg(long, default_value_t = 2)]
    pub passes: usize,
    /// Runs of each configuration (interleaved); the table shows medians. With 6 or more, the
    /// goals' ratios come with 95 % confidence intervals.
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// Triangles of the procedural mesh used for the memory-per-node measurement (0: skip).
    #[arg(long, default_value_t = 1_000_000)]
    pub memory_triangles: usize,
    /// The markdown file the table and plot are written into.
    #[arg(long, default_value = "docs/performance.md")]
    pub out: PathBuf,
}

const BEGIN: &str = "<!-- prism bench scaling: begin -->";
const END: &str = "<!-- prism bench scaling: end -->";

pub fn scaling(args: &ScalingArgs) -> Result<(), CliError> {
    if args.repeats == 0 || args.width == 0 || args.height == 0 {
        return Err(shared("--repeats, --width and --height must be at least 1"));
    }
    if prism::comm::launched_as_job() {
        // Said with MPI up (see `with_universe`): an error exit races the launcher.
        let refused = shared(
            "prism bench scaling launches its own runs (with mpirun where it needs processes): \
             start it directly, not under mpirun or an srun step of several tasks",
        );
        return with_universe(Err(refused.into()), |_| Ok(()));
    }
    // The study takes minutes to hours: a file it cannot write must fail now, not at the end.
    check_study_file(&args.out)?;
    let exe = std::env::current_exe()?;
    let mpi = cfg!(feature = "mpi") && which("mpirun");
    if !mpi {
        warn("prism: note: no MPI in this build (or no mpirun): measuring threads only");
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let work = WorkDir::create(
        std::env::temp_dir().join(format!("prism-scaling-{}", std::process::id())),
    )?;
    let work = work.path();
    let render_args = render_args(&args.scene, args.width, args.height, args.spp, args.passes);
    let mut log = |line: &str| warn(line);
    let configs = scaling::configs(mpi);
    let rows = scaling::measure(&exe, &configs, &render_args, args.repeats, work, &mut log)
        .map_err(CliError::Msg)?;

    // The uneven scene: most of the image is empty, the cost sits in a band three tiles wide.
    let uneven_args = uneven_scene(work, args)?;
    let uneven_configs: Vec<_> = configs
        .iter()
        .filter(|c| {
            (c.engine == "serial" && !c.independent())
                || (c.processes * c.threads == 2 && c.engine != "hybrid")
        })
        .cloned()
        .collect();
    let uneven = scaling::measure(
        &exe,
        &uneven_configs,
        &uneven_args,
        args.repeats,
        work,
        &mut log,
    )
    .map_err(CliError::Msg)?;

    let memory = if mpi && args.memory_triangles > 0 {
        Some(memory_per_node(
            &exe,
            work,
            args.memory_triangles,
            &mut log,
        )?)
    } else {
        None
    };

    let mut block = String::new();
    block.push_str(&format!(
        "Measured by `prism bench scaling` on {} ({} cores), {}: scene `{}`, {}×{} pixels, \
         {} spp × {} passes, {} interleaved rounds (every other one in reverse order; the \
         configurations a goal compares run one after the other). Times are medians; \
         speed-ups and ratios are medians of the ratios within each round (runs seconds \
         apart), which a slow spell of the shared machine does not skew. Parallel efficiency is the speed-up over \
         `serial 1×1` divided by the cores used (at most {cores}). Workers busy is the share \
         of the workers' time spent rendering (the rest is the engine's: waiting for work or \
         for the slowest worker); communication is the root's time in message calls over the \
         run's wall time. {}\n\n",
        hostname(),
        cores,
        today(),
        args.scene,
        args.width,
        args.height,
        args.spp,
        args.passes,
        args.repeats,
        interval_note(args.repeats)
    ));
    block.push_str(&scaling::table(&rows, cores));
    let svg_path = args
        .out
        .parent()
        .unwrap_or(Path::new("."))
        .join("scaling.svg");
    std::fs::write(&svg_path, scaling::svg(&rows, cores))
        .map_err(|e| msg(format!("cannot write {}: {e}", svg_path.display())))?;
    block.push_str("\n![Mrays/s by engine and layout](scaling.svg)\n\n");
    block.push_str(
        "Uneven scene (a column of glass and mirror balls three tiles wide, empty space elsewhere; one pass):\n\n",
    );
    block.push_str(&scaling::table(&uneven, cores));
    block.push_str("\nGoals, as ratios from the same run:\n\n");
    block.push_str(&goals(&rows, &uneven));
    if let Some(m) = &memory {
        let mib = |b: u64| b as f64 / 1048576.0;
        let huge = |h: Option<u64>| h.map_or("?".to_string(), |h| format!("{:.1}", mib(h)));
        block.push_str(&format!(
            "\nMemory with a {}-triangle mesh (summed PSS from /proc/<pid>/smaps_rollup over the \
             ranks, read after the scene was built): 1 rank {:.1} MiB, 4 ranks {:.1} MiB, \
             ratio {:.2} (goal ≤ 1.3). The scene's geometry takes {:.1} MiB, of which the root \
             held {} MiB in huge pages with 1 rank and {} MiB with 4 (node-shared).\n",
            args.memory_triangles,
            mib(m.pss[0]),
            mib(m.pss[1]),
            m.pss[1] as f64 / m.pss[0] as f64,
            mib(m.geometry_bytes),
            huge(m.huge_page_bytes[0]),
            huge(m.huge_page_bytes[1]),
        ));
    }
    scaling::replace_block(&args.out, BEGIN, END, &block)
        .map_err(|e| msg(format!("cannot write {}: {e}", args.out.display())))?;
    say(&format!(
        "{block}\nwritten to {} and {}",
        args.out.display(),
        svg_path.display()
    ))
}

/// The study's file must be a text file that can be written, in a directory that exists;
/// one that is not text would be replaced, not edited, so it is refused.
fn check_study_file(path: &Path) -> Result<(), CliError> {
    check_parent_dir("--out", path)?;
    if path.exists() {
        std::fs::read_to_string(path).map_err(|e| {
            msg(format!(
                "--out {}: cannot read it as text to update its table: {e}",
                path.display()
            ))
        })?;
        std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| msg(format!("--out {}: cannot write it: {e}", path.display())))?;
    }
    Ok(())
}

/// The study's scratch directory, removed however the study ends.
struct WorkDir(PathBuf);

impl WorkDir {
    fn create(path: PathBuf) -> Result<WorkDir, CliError> {
        std::fs::create_dir_all(&path)
            .map_err(|e| msg(format!("cannot create {}: {e}", path.display())))?;
        Ok(WorkDir(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What the goals' figures carry: the study's default of 3 rounds is too few for a 95 %
/// interval, and the text must not promise one that the goals then lack.
fn interval_note(rounds: usize) -> String {
    let needed = scaling::rounds_for_interval();
    if rounds >= needed {
        "A goal's ratio comes with a 95 % confidence interval for its median \
         (distribution-free: order statistics of the per-round ratios)."
            .to_string()
    } else {
        format!(
            "A goal's ratio is a median without a confidence interval: a distribution-free 95 % \
             interval needs {needed} rounds or more (--repeats {needed}), this run had {rounds}."
        )
    }
}

fn find<'a>(rows: &'a [Row], engine: &str, p: usize, t: usize, schedule: &str) -> Option<&'a Row> {
    rows.iter().find(|r| {
        r.config.engine == engine
            && r.config.processes == p
            && r.config.threads == t
            && r.config.schedule == schedule
    })
}

/// "met" or "not met" by the median, and whether the run could tell: when the goal's
/// threshold lies inside the ratio's 95 % interval, another run on the same machine may well
/// give the other answer.
fn verdict(v: &PairedRatio, ok: fn(f64) -> bool) -> String {
    let met = if ok(v.median) { "met" } else { "not met" };
    match v.interval {
        Some((lo, hi)) if ok(lo) != ok(hi) => {
            format!("{met}, but the goal lies within this run's noise (its 95 % interval)")
        }
        _ => met.to_string(),
    }
}

fn goals(rows: &[Row], uneven: &[Row]) -> String {
    let mut s = String::new();
    let line = |s: &mut String,
                name: &str,
                value: Option<PairedRatio>,
                goal: &str,
                ok: fn(f64) -> bool| {
        match value {
            Some(v) => s.push_str(&format!(
                "- {name}: {v} (goal {goal}) — {}\n",
                verdict(&v, ok)
            )),
            None => s.push_str(&format!("- {name}: not measured in this build\n")),
        }
    };
    // Time of `a` over time of `b`, round by round.
    let ratio = |a: Option<&Row>, b: Option<&Row>| Some(scaling::paired(a?, b?));
    let serial = find(rows, "serial", 1, 1, "dynamic");
    line(
        &mut s,
        "hybrid 1×2 time / threads 1×2 time",
        ratio(
            find(rows, "hybrid", 1, 2, "dynamic"),
            find(rows, "threads", 1, 2, "dynamic"),
        ),
        "≤ 1.03",
        |v| v <= 1.03,
    );
    line(
        &mut s,
        "parallel efficiency of mpi 2×1 against serial 1×1",
        ratio(serial, find(rows, "mpi", 2, 1, "dynamic")).map(|x| x.scaled(0.5)),
        "≥ 0.95",
        |v| v >= 0.95,
    );
    // The independent row did two runs' work: its efficiency is the plain time ratio, and
    // mpi 2×1's share of it is (t1 / 2 t_mpi) / (t1 / t_independent).
    if let Some(ceiling) = ratio(serial, find(rows, "serial", 2, 1, "dynamic")) {
        let ceiling = ceiling.median;
        let mpi = ratio(
            find(rows, "serial", 2, 1, "dynamic"),
            find(rows, "mpi", 2, 1, "dynamic"),
        )
        .map(|x| x.scaled(0.5).median);
        s.push_str(&format!(
            "  - the machine's ceiling in this run (two independent serial runs at once): \
             {ceiling:.3}; mpi 2×1 reaches {} of it\n",
            mpi.map_or("an unmeasured share".to_string(), |m| format!("{m:.3}"))
        ));
    }
    line(
        &mut s,
        "communication share of mpi 2×1",
        find(rows, "mpi", 2, 1, "dynamic").map(|r| PairedRatio {
            median: r.comm_fraction,
            interval: None,
        }),
        "< 0.02",
        |v| v < 0.02,
    );
    line(
        &mut s,
        "uneven scene, threads 1×2: static time / dynamic time",
        ratio(
            find(uneven, "threads", 1, 2, "static"),
            find(uneven, "threads", 1, 2, "dynamic"),
        ),
        "> 1",
        |v| v > 1.0,
    );
    line(
        &mut s,
        "uneven scene, mpi 2×1: static time / dynamic time",
        ratio(
            find(uneven, "mpi", 2, 1, "static"),
            find(uneven, "mpi", 2, 1, "dynamic"),
        ),
        "> 1",
        |v| v > 1.0,
    );
    s
}

/// A scene file whose cost is uneven across the image: a column of glass and mirror balls three
/// tiles wide, empty space elsewhere (see the header of `uneven.toml` for why that width).
fn uneven_scene(work: &Path, args: &ScalingArgs) -> Result<Vec<String>, CliError> {
    let path = work.join("uneven.toml");
    std::fs::write(&path, UNEVEN_SCENE)?;
    Ok(render_args(
        &path.display().to_string(),
        args.width,
        args.height,
        args.spp,
        1,
    ))
}

/// The `prism render` arguments of one measured run (seed fixed, so every run does the same
/// work).
fn render_args(scene: &str, width: u32, height: u32, spp: u32, passes: usize) -> Vec<String> {
    [
        scene,
        "--width",
        &width.to_string(),
        "--height",
        &height.to_string(),
        "--spp",
        &spp.to_string(),
        "--passes",
        &passes.to_string(),
        "--seed",
        "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

const UNEVEN_SCENE: &str = include_str!("uneven.toml");

/// Summed PSS of 1 rank and of 4 ranks rendering a mesh of `triangles` triangles, and the
/// geometry they shared.
struct MemoryPerNode {
    pss: [u64; 2],
    geometry_bytes: u64,
    /// Of the geometry, the bytes the root held in huge pages, with 1 rank and with 4.
    huge_page_bytes: [Option<u64>; 2],
}

fn memory_per_node(
    exe: &Path,
    work: &Path,
    triangles: usize,
    log: &mut dyn FnMut(&str),
) -> Result<MemoryPerNode, CliError> {
    let mesh = work.join("memory-mesh.ply");
    write_procedural_ply(&mesh, triangles)?;
    let args = render_args(&mesh.display().to_string(), 32, 32, 1, 1);
    let mut m = MemoryPerNode {
        pss: [0; 2],
        geometry_bytes: 0,
        huge_page_bytes: [None; 2],
    };
    for (i, p) in [1usize, 4].into_iter().enumerate() {
        let cfg = scaling::Config {
            engine: "mpi",
            processes: p,
            threads: 1,
            schedule: "dynamic",
        };
        // glibc raises its mmap threshold as large blocks are freed, after which the BVH
        // build's temporaries stay in malloc's arenas, resident or not by timing: identical
        // runs then differed by 40 MiB. A fixed threshold returns them to the system.
        let env = [("MALLOC_MMAP_THRESHOLD_", "1048576")];
        let s = scaling::run_with_env(exe, &cfg, &args, work, &env).map_err(CliError::Msg)?;
        log(&format!(
            "memory: {p} rank(s), summed PSS {:.1} MiB",
            s.pss_bytes_total as f64 / 1048576.0
        ));
        m.pss[i] = s.pss_bytes_total;
        m.geometry_bytes = s.geometry_bytes;
        m.huge_page_bytes[i] = s.geometry_huge_page_bytes;
    }
    Ok(m)
}

/// A binary little-endian PLY of a bumpy sphere with about `triangles` triangles.
pub fn write_procedural_ply(path: &Path, triangles: usize) -> Result<(), CliError> {
    let rings = ((triangles as f64 / 2.0).sqrt() as usize).max(4);
    let segments = rings.max(4);
    let mut vertices = Vec::with_capacity((rings + 1) * segments);
    for i in 0..=rings {
        let theta = std::f64::consts::PI * i as f64 / rings as f64;
        for j in 0..segments {
            let phi = 2.0 * std::f64::consts::PI * j as f64 / segments as f64;
            let r = 1.0 + 0.05 * (7.0 * theta).sin() * (11.0 * phi).cos();
            vertices.push([
                (r * theta.sin() * phi.cos()) as f32,
                (r * theta.cos()) as f32,
                (r * theta.sin() * phi.sin()) as f32,
            ]);
        }
    }
    let mut faces = Vec::with_capacity(rings * segments * 2);
    for i in 0..rings {
        for j in 0..segments {
            let a = (i * segments + j) as u32;
            let b = (i * segments + (j + 1) % segments) as u32;
            let c = a + segments as u32;
            let d = b + segments as u32;
            faces.push([a, c, b]);
            faces.push([b, c, d]);
        }
    }
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    write!(
        out,
        "ply\nformat binary_little_endian 1.0\nelement vertex {}\nproperty float x\n\
         property float y\nproperty float z\nelement face {}\n\
         property list uchar int vertex_indices\nend_header\n",
        vertices.len(),
        faces.len()
    )?;
    for v in &vertices {
        for c in v {
            out.write_all(&c.to_le_bytes())?;
        }
    }
    for f in &faces {
        out.write_all(&[3u8])?;
        for i in f {
            out.write_all(&(*i as i32).to_le_bytes())?;
        }
    }
    out.flush()?;
    Ok(())
}

fn which(cmd: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file()))
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "this machine".into())
}

fn today() -> String {
    std::process::Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_promises_intervals_only_when_the_goals_have_them() {
        let row = |walls: Vec<f64>| Row {
            config: scaling::Config {
                engine: "serial",
                processes: 1,
                threads: 1,
                schedule: "dynamic",
            },
            seconds: 1.0,
            rays_per_second: 1.0,
            comm_fraction: 0.0,
            busy_fraction: 1.0,
            walls,
        };
        for rounds in 1..=12 {
            let a = row((0..rounds).map(|i| 1.0 + 0.01 * i as f64).collect());
            let b = row(vec![1.0; rounds]);
            let has = scaling::paired(&a, &b).interval.is_some();
            let note = interval_note(rounds);
            assert_eq!(
                note.contains("comes with a 95 % confidence interval"),
                has,
                "{note}"
            );
            if !has {
                assert!(
                    note.contains("needs 6 rounds or more (--repeats 6), this run had"),
                    "{note}"
                );
            }
        }
        // The study's default.
        let default = ScalingArgs::augment_args(clap::Command::new("t"))
            .try_get_matches_from(["t"])
            .unwrap();
        assert_eq!(default.get_one::<usize>("repeats"), Some(&3));
        assert!(interval_note(3).contains("this run had 3"));
    }

    #[test]
    fn a_goal_within_the_runs_noise_says_so() {
        let at_least = |v: f64| v >= 0.95;
        let r = |median, interval| PairedRatio { median, interval };
        assert_eq!(verdict(&r(0.97, Some((0.96, 0.99))), at_least), "met");
        assert_eq!(verdict(&r(0.90, Some((0.85, 0.94))), at_least), "not met");
        assert_eq!(verdict(&r(0.97, None), at_least), "met");
        let within = "the goal lies within this run's noise";
        let met = verdict(&r(0.97, Some((0.90, 1.02))), at_least);
        assert!(met.starts_with("met, but") && met.contains(within), "{met}");
        let missed = verdict(&r(0.93, Some((0.90, 1.02))), at_least);
        assert!(
            missed.starts_with("not met, but") && missed.contains(within),
            "{missed}"
        );
    }
}
