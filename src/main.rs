//! The `prism` command: render scenes on any engine, describe the run, benchmark.

mod cli;

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

/// prism: hybrid parallel computing and reproducible ray-traced rendering.
#[derive(Parser)]
#[command(name = "prism", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Render a scene (the built-in Cornell box by default) with any engine.
    Render(RenderArgs),
    /// Print process sets, ranks per node, threads per rank and the engine `auto` picks.
    Info,
    /// Benchmarks: the ray-tracing kernel, and the scaling study.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EngineKind {
    /// Threads in one process; with several processes, hybrid (mpi when each has one thread).
    Auto,
    Serial,
    Threads,
    Mpi,
    Hybrid,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ScheduleKind {
    /// Tasks handed out on demand: a worker that finishes early takes more.
    Dynamic,
    /// Tasks dealt round-robin before the run (Raysect PR #442's split), for comparison.
    Static,
}

/// A duration as a job script gives it: `90s`, `45m`, `2h`, `1h30m`; a number alone is seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TimeLimit(pub std::time::Duration);

impl std::str::FromStr for TimeLimit {
    type Err = String;
    fn from_str(text: &str) -> Result<TimeLimit, String> {
        let bad = || format!("'{text}' is not a duration such as 90s, 45m, 2h or 1h30m");
        let mut seconds = 0.0f64;
        let mut rest = text.trim();
        if rest.is_empty() {
            return Err(bad());
        }
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(rest.len());
            let value: f64 = rest[..digits].parse().map_err(|_| bad())?;
            rest = &rest[digits..];
            let unit = match rest.chars().next() {
                None if seconds == 0.0 => 1.0,
                Some('s') => 1.0,
                Some('m') => 60.0,
                Some('h') => 3600.0,
                _ => return Err(bad()),
            };
            rest = rest.get(1..).unwrap_or("");
            seconds += value * unit;
        }
        // Ten years: past any job's limit, short of what a `Duration` added to now overflows.
        if !(seconds > 0.0 && seconds <= 3.2e8) {
            return Err(format!(
                "'{text}' must be more than zero and at most ten years"
            ));
        }
        Ok(TimeLimit(std::time::Duration::from_secs_f64(seconds)))
    }
}

#[derive(Args, Clone, Debug)]
pub struct RenderArgs {
    /// `cornell` (built in), a scene `.toml`, or a mesh file (`.obj`, `.ply`, `.stl`).
    #[arg(default_value = "cornell")]
    pub scene: String,
    #[arg(long, value_enum, default_value = "auto")]
    pub engine: EngineKind,
    /// Threads per process (default: the cores available to this process, shared among the
    /// ranks of its node).
    #[arg(long)]
    pub threads: Option<usize>,
    #[arg(long, default_value_t = 512)]
    pub width: u32,
    #[arg(long, default_value_t = 512)]
    pub height: u32,
    /// Samples per pixel in each pass.
    #[arg(long, default_value_t = 16)]
    pub spp: u32,
    /// Passes at most: a full first pass, then adaptive passes until converged.
    #[arg(long, default_value_t = 8)]
    pub passes: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// PNG output (sRGB, tone-mapped); rewritten after every pass.
    #[arg(long, default_value = "cornell.png")]
    pub out: PathBuf,
    /// OpenEXR output (linear radiance).
    #[arg(long)]
    pub exr: Option<PathBuf>,
    /// The per-pixel standard error as a PNG image.
    #[arg(long)]
    pub error_image: Option<PathBuf>,
    /// Tile edge in pixels: the unit of work.
    #[arg(long, default_value_t = 16)]
    pub tile: u32,
    #[arg(long, value_enum, default_value = "dynamic")]
    pub schedule: ScheduleKind,
    /// mpi/hybrid with one thread per process: every process renders on a thread of its own
    /// rather than (all but the root) on its main thread, which then only communicates; for
    /// tiles that take seconds.
    #[arg(long)]
    pub render_thread: bool,
    /// Adaptive sampling: fraction of pixels re-sampled each pass (by normalised error).
    #[arg(long, default_value_t = 0.2)]
    pub fraction: f64,
    /// Adaptive sampling: a pixel gets at least max_samples / ratio samples.
    #[arg(long, default_value_t = 10.0)]
    pub ratio: f64,
    /// Adaptive sampling: every pixel gets at least this many samples.
    #[arg(long, default_value_t = 0)]
    pub min_samples: u64,
    /// Adaptive sampling: stop re-sampling pixels whose normalised standard error is below this.
    #[arg(long, default_value_t = 0.0)]
    pub cutoff: f64,
    /// Maximum path depth.
    #[arg(long, default_value_t = 8)]
    pub max_depth: u32,
    /// Use (or create) a scene cache: the built BVH, memory-mapped on the next run (and
    /// rebuilt when the scene changed or another prism version wrote it).
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Keep the render's state in this file after every pass, and resume from it when it
    /// exists: a render stopped by a job's time limit goes on where its last pass ended, with
    /// the same image as a run never stopped. Refused if the file belongs to another render
    /// (other scene, size, --spp, --seed, sampler or depth); --passes may grow between runs.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Start no pass that would end later than this after the start, at the pace of the pass
    /// before it: `90s`, `45m`, `2h`, `1h30m` (a number alone is seconds). For a job's time
    /// limit, with --checkpoint to go on in the next job; the first pass always runs.
    #[arg(long, value_name = "DURATION")]
    pub time_limit: Option<TimeLimit>,
    /// No progress bar or per-pass lines; errors and the summary line still print.
    #[arg(long)]
    pub quiet: bool,
    /// Write the run's measurements (time, rays, communication, memory) as JSON.
    #[arg(long)]
    pub stats_json: Option<PathBuf>,
    /// Testing aid: make this rank's first task fail, to check that a failure ends the run.
    #[arg(long, hide = true)]
    pub fail_on_rank: Option<usize>,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Build time and single-thread Mrays/s of the BVH kernel on a mesh file.
    Trace {
        #[arg(long)]
        mesh: PathBuf,
        /// Rays per measurement.
        #[arg(long, default_value_t = 200_000)]
        rays: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Every engine on every process × thread layout; writes docs/performance.md.
    Scaling(cli::bench::ScalingArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Render(args) => cli::render::run(&args),
        Command::Info => cli::info::run(),
        Command::Bench(BenchCommand::Trace { mesh, rays, seed }) => {
            cli::bench::trace(&mesh, rays, seed)
        }
        Command::Bench(BenchCommand::Scaling(args)) => cli::bench::scaling(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(line) = e.report(prism::comm::launcher_rank()) {
                cli::warn(line.trim_end());
            }
            ExitCode::from(e.exit_status())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TimeLimit;
    use std::time::Duration;

    #[test]
    fn time_limits_read_as_job_scripts_write_them() {
        let secs = |text: &str| text.parse::<TimeLimit>().map(|t| t.0);
        assert_eq!(secs("90"), Ok(Duration::from_secs(90)));
        assert_eq!(secs("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(secs("45m"), Ok(Duration::from_secs(45 * 60)));
        assert_eq!(secs("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(secs("0.5h"), Ok(Duration::from_secs(1800)));
        assert_eq!(secs("2h0m5s"), Ok(Duration::from_secs(7205)));
        for bad in ["", "h", "5x", "1h30", "-5", "1.2.3s", "5 m"] {
            let e = secs(bad).unwrap_err();
            assert!(e.contains("is not a duration"), "{bad}: {e}");
        }
        for out_of_range in ["0", "0s", "400000000"] {
            let e = secs(out_of_range).unwrap_err();
            assert!(
                e.contains("more than zero and at most ten years"),
                "{out_of_range}: {e}"
            );
        }
    }
}
