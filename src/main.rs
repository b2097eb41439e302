//! The `prism` command: render scenes on any engine, describe the run, benchmark.

mod cli;

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

/// prism: hybrid parallel computing and reproducible ray-traced rendering.
#[derive(Parser)]
#[command(
    name = "prism",
    version,
    about,
    propagate_version = true,
    args_override_self = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Render a scene (the built-in Cornell box by default) with any engine.
    Render(Box<RenderArgs>),
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

/// A duration: `90s`, `45m`, `2h`, `1h30m`, or as Slurm and PBS write a job's time:
/// `MM:SS`, `HH:MM:SS`, `D-HH[:MM[:SS]]`. A number alone is refused: Slurm reads it as
/// minutes, PBS as seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TimeLimit(pub std::time::Duration);

impl std::str::FromStr for TimeLimit {
    type Err = String;
    fn from_str(text: &str) -> Result<TimeLimit, String> {
        duration(text).map(TimeLimit).map_err(|e| match e {
            DurationError::NoUnit(t) => format!(
                "'{text}' needs a unit: {t}s, {t}m or {t}h (Slurm reads a number alone as \
                 minutes, PBS as seconds)"
            ),
            DurationError::NotADuration => format!(
                "'{text}' is not a duration such as 90s, 45m, 1h30m, 01:30:00 or 2-12:00:00"
            ),
            DurationError::OutOfRange => {
                format!("'{text}' must be more than zero and at most ten years")
            }
        })
    }
}

/// How often something recurs (`--progress-every`): a duration as [`TimeLimit`] reads it,
/// with errors that speak of an interval, not of a batch system's time limit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Interval(pub std::time::Duration);

impl std::str::FromStr for Interval {
    type Err = String;
    fn from_str(text: &str) -> Result<Interval, String> {
        duration(text).map(Interval).map_err(|e| match e {
            DurationError::NoUnit(t) => {
                format!("'{text}' needs a unit: {t}s, {t}m or {t}h")
            }
            DurationError::NotADuration => {
                format!("'{text}' is not a duration such as 30s, 5m or 1h30m")
            }
            DurationError::OutOfRange => {
                format!("'{text}' must be more than zero and at most ten years")
            }
        })
    }
}

/// Why a text is not a duration; each option says it in its own words.
enum DurationError {
    /// A positive number without a unit (the trimmed text).
    NoUnit(String),
    NotADuration,
    OutOfRange,
}

fn duration(text: &str) -> Result<std::time::Duration, DurationError> {
    let t = text.trim();
    let seconds = if t.contains([':', '-']) {
        clock_seconds(t)
    } else {
        unit_seconds(t)
    }
    .ok_or_else(|| {
        let plain = t.chars().all(|c| c.is_ascii_digit() || c == '.');
        match t.parse::<f64>().ok().filter(|_| plain) {
            Some(n) if n > 0.0 => DurationError::NoUnit(t.to_string()),
            Some(_) => DurationError::OutOfRange,
            None => DurationError::NotADuration,
        }
    })?;
    // Ten years: past any job's limit, short of what a `Duration` added to now overflows.
    let limit = (seconds <= 3.2e8).then(|| std::time::Duration::from_secs_f64(seconds));
    match limit {
        Some(d) if !d.is_zero() => Ok(d),
        _ => Err(DurationError::OutOfRange),
    }
}

/// `1h30m15s` and its parts, hours before minutes before seconds, each at most once.
fn unit_seconds(text: &str) -> Option<f64> {
    let mut seconds = 0.0;
    let mut rest = text;
    let mut last_unit = f64::INFINITY;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let value: f64 = rest[..digits].parse().ok()?;
        let unit = match rest[digits..].chars().next() {
            Some('h') => 3600.0,
            Some('m') => 60.0,
            Some('s') => 1.0,
            _ => return None,
        };
        if unit >= last_unit {
            return None;
        }
        last_unit = unit;
        seconds += value * unit;
        rest = &rest[digits + 1..]; // past an ASCII unit
    }
    (!text.is_empty()).then_some(seconds)
}

/// Slurm's and PBS's clock forms: `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM`, `D-HH:MM:SS`.
fn clock_seconds(text: &str) -> Option<f64> {
    let (days, clock) = match text.split_once('-') {
        Some((d, c)) => (Some(d.parse::<u64>().ok()?), c),
        None => (None, text),
    };
    let parts: Vec<u64> = clock
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, s] = match (days, parts.as_slice()) {
        (None, &[m, s]) => [0, m, s],
        (None, &[h, m, s]) | (Some(_), &[h, m, s]) => [h, m, s],
        (Some(_), &[h]) => [h, 0, 0],
        (Some(_), &[h, m]) => [h, m, 0],
        _ => return None,
    };
    let total = days.unwrap_or(0) as f64 * 86400.0 + h as f64 * 3600.0 + m as f64 * 60.0;
    Some(total + s as f64)
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
    #[arg(long, allow_negative_numbers = true)]
    pub threads: Option<usize>,
    #[arg(long, default_value_t = 512, allow_negative_numbers = true)]
    pub width: u32,
    #[arg(long, default_value_t = 512, allow_negative_numbers = true)]
    pub height: u32,
    /// Samples per pixel in each pass.
    #[arg(long, default_value_t = 16, allow_negative_numbers = true)]
    pub spp: u32,
    /// Passes at most: a full first pass, then adaptive passes until converged.
    #[arg(long, default_value_t = 8, allow_negative_numbers = true)]
    pub passes: usize,
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub seed: u64,
    /// PNG output (sRGB, tone-mapped); rewritten after every pass. Default: the scene's name
    /// with .png in the current directory (cornell.png for the built-in box).
    #[arg(long = "out", value_name = "FILE.png")]
    pub out_given: Option<PathBuf>,
    /// `--out`, or its default (see [`RenderArgs::with_output_named`]).
    #[arg(skip)]
    pub out: PathBuf,
    /// OpenEXR output (linear radiance).
    #[arg(long)]
    pub exr: Option<PathBuf>,
    /// Each pixel's normalised standard error (what --cutoff compares) as a grey-scale PNG,
    /// linear: black at 0, white at the 99th percentile of the image's values, which the
    /// summary and the PNG's Comment text give (grey g is an error of g / 255 × white).
    #[arg(long)]
    pub error_image: Option<PathBuf>,
    /// Tile edge in pixels: the unit of work.
    #[arg(long, default_value_t = 16, allow_negative_numbers = true)]
    pub tile: u32,
    #[arg(long, value_enum, default_value = "dynamic")]
    pub schedule: ScheduleKind,
    /// mpi/hybrid with one thread per process: every process renders on a thread of its own
    /// rather than (all but the root) on its main thread, which then only communicates; for
    /// tiles that take seconds.
    #[arg(long)]
    pub render_thread: bool,
    /// Adaptive sampling: fraction of pixels re-sampled each pass, the noisiest by normalised
    /// error (1: every pixel with an error above --cutoff, or above zero).
    #[arg(long, default_value_t = 0.2, allow_negative_numbers = true)]
    pub fraction: f64,
    /// Adaptive sampling: a pixel gets at least max_samples / ratio samples.
    #[arg(long, default_value_t = 10.0, allow_negative_numbers = true)]
    pub ratio: f64,
    /// Adaptive sampling: every pixel gets at least this many samples.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub min_samples: u64,
    /// Adaptive sampling: stop re-sampling pixels whose normalised standard error is below this.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub cutoff: f64,
    /// Maximum path depth.
    #[arg(long, default_value_t = 8, allow_negative_numbers = true)]
    pub max_depth: u32,
    /// Use (or create) a scene cache: the built BVH of a scene file or mesh (not of the
    /// built-in cornell), memory-mapped on the next run (and rebuilt when the scene changed
    /// or another prism version wrote it). Never change a cache in place while a render maps
    /// it (that render dies with SIGBUS): write a new file and rename it over the old one, as
    /// prism does.
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Keep the render's state in this file after every pass, and resume from it when it
    /// exists: a render stopped by a job's time limit goes on where its last pass ended, with
    /// the same image as a run never stopped. Refused if the file belongs to another render
    /// (other scene, size, --spp, --seed, sampler or depth); --passes may grow between runs.
    /// SIGUSR1 stops the render after the pass in progress; on SIGTERM or Ctrl-C the
    /// checkpoint being written is finished first.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Start no pass that would end later than this after the start, at the pace of the pass
    /// before it: `90s`, `45m`, `1h30m`, `01:30:00`, `2-12:00:00`. For a job's time limit,
    /// with --checkpoint to go on in the next job; the first pass always runs.
    #[arg(long, value_name = "DURATION")]
    pub time_limit: Option<TimeLimit>,
    /// When standard error is not a terminal (a batch job's log), a progress line this often
    /// during a pass, with its share of pixels done, rays/s and the time left: `30s`, `5m`.
    /// Default 1m.
    #[arg(long, value_name = "DURATION")]
    pub progress_every: Option<Interval>,
    /// No progress bar, per-pass or progress lines, nor notes on how the render goes (resuming
    /// from --checkpoint, converged, more render threads than CPUs). Errors, the other warnings
    /// and notes (the scene, its cache, removed leftover temporary files, a stop before the
    /// last pass) and the summary line still print.
    #[arg(long)]
    pub quiet: bool,
    /// Write the run's measurements as JSON: time, rays, communication, memory, and each
    /// rank's render, wait and message times in seconds.
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

impl RenderArgs {
    /// The arguments with `out` set: `--out`, else `<scene's file stem>.png` in the current
    /// directory, so that rendering `bunny.ply` writes `bunny.png`, not `cornell.png`.
    fn with_output_named(mut self) -> RenderArgs {
        self.out = match &self.out_given {
            Some(out) => out.clone(),
            None => {
                let stem = std::path::Path::new(&self.scene)
                    .file_stem()
                    .map_or_else(|| "render".into(), |s| s.to_os_string());
                let mut name = stem;
                name.push(".png");
                PathBuf::from(name)
            }
        };
        self
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Every rank of a job gets the same command line: rank 0 alone says what is wrong with
        // it (or prints the help), not one copy per rank.
        Err(e) => {
            let status = e.exit_code().clamp(0, 255) as u8;
            let in_a_job = prism::comm::launcher_rank().is_some();
            if !in_a_job {
                let _ = e.print();
                return ExitCode::from(status);
            }
            // In a job, through the start's agreement (see `with_universe`), the help too: the
            // other ranks may have a command to run, and would wait for this one. An error exit
            // races the launcher, which kills every process once one exits non-zero, rank 0
            // perhaps before it has printed: it prints with MPI up, and MPI's end waits for
            // every process.
            let said = cli::with_universe(Err(e.into()), |_| Ok(()));
            return match said {
                Err(cli::CliError::Reported(status)) => ExitCode::from(status),
                other => {
                    if let Err(e) = other {
                        if let Some(line) = e.report(prism::comm::launcher_rank()) {
                            cli::warn(line.trim_end());
                        }
                    }
                    ExitCode::from(status)
                }
            };
        }
    };
    let result = match cli.command {
        Command::Render(args) => cli::render::run(&args.with_output_named()),
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
    use super::{Interval, TimeLimit};
    use std::time::Duration;

    #[test]
    fn time_limits_read_as_job_scripts_write_them() {
        let secs = |text: &str| text.parse::<TimeLimit>().map(|t| t.0);
        let ok = |text: &str, s: u64| assert_eq!(secs(text), Ok(Duration::from_secs(s)), "{text}");
        ok("90s", 90);
        ok("45m", 45 * 60);
        ok("1h30m", 5400);
        ok("1h30m15s", 5415);
        ok("0.5h", 1800);
        ok("10:00", 600);
        ok("01:30:00", 5400);
        ok("2-12", 2 * 86400 + 12 * 3600);
        ok("1-00:30", 86400 + 1800);
        ok("1-02:03:04", 86400 + 7384);
        assert_eq!(secs("0.001s"), Ok(Duration::from_millis(1)));
        for bad in [
            "", "h", "5x", "1h30", "1m1m", "1s1h", "-5", "1.2.3s", "5 m", "1:2:3:4", "x-1",
        ] {
            let e = secs(bad).unwrap_err();
            assert!(e.contains("is not a duration"), "{bad}: {e}");
        }
        let e = secs("90").unwrap_err();
        assert!(e.contains("'90' needs a unit: 90s, 90m or 90h"), "{e}");
        // An interval reads the same, but how a batch system reads a time limit is beside
        // its point.
        let every = |text: &str| text.parse::<Interval>().map(|t| t.0);
        assert_eq!(every("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(every("0.01s"), Ok(Duration::from_millis(10)));
        assert_eq!(
            every("10").unwrap_err(),
            "'10' needs a unit: 10s, 10m or 10h"
        );
        assert_eq!(
            every("5x").unwrap_err(),
            "'5x' is not a duration such as 30s, 5m or 1h30m"
        );
        assert!(every("0s").unwrap_err().contains("more than zero"));
        for out_of_range in ["0", "0s", "00:00", "0.0000000001s", "400000000s"] {
            let e = secs(out_of_range).unwrap_err();
            assert!(
                e.contains("more than zero and at most ten years"),
                "{out_of_range}: {e}"
            );
        }
    }
}
