//! `prism bench scaling`: one scene on every process × thread layout the machine allows, with
//! every engine, written as a markdown table and an SVG plot into docs/performance.md.
//!
//! Each configuration is a child `prism render` (under `mpirun` when it has more than one
//! process) that writes its measurements as JSON; configurations are interleaved and repeated
//! so that the ratios come from runs taken side by side on the same, noisy machine.

use crate::cli::stats::RunStats;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

/// One layout of the run: engine, processes, threads per process, schedule.
#[derive(Clone, Debug)]
pub struct Config {
    pub engine: &'static str,
    pub processes: usize,
    pub threads: usize,
    pub schedule: &'static str,
}

impl Config {
    /// Several serial runs started at once, each its own process with no communication: how
    /// much the machine itself slows one worker when the others are busy (its ceiling on
    /// parallel efficiency, whatever the engine).
    pub fn independent(&self) -> bool {
        self.engine == "serial" && self.processes > 1
    }

    pub fn label(&self) -> String {
        format!(
            "{} {}×{}{}",
            self.engine,
            self.processes,
            self.threads,
            if self.schedule == "static" {
                " static"
            } else if self.independent() {
                " independent"
            } else {
                ""
            }
        )
    }
    pub fn oversubscribed(&self, cores: usize) -> bool {
        self.processes * self.threads > cores
    }
}

/// The layouts measured: every engine at 1 and 2 workers, plus oversubscribed ones (marked).
pub fn configs(mpi: bool) -> Vec<Config> {
    let c = |engine, processes, threads, schedule| Config {
        engine,
        processes,
        threads,
        schedule,
    };
    let mut v = vec![
        c("serial", 1, 1, "dynamic"),
        c("serial", 2, 1, "dynamic"),
        c("threads", 1, 1, "dynamic"),
        c("threads", 1, 2, "dynamic"),
        c("threads", 1, 2, "static"),
    ];
    if mpi {
        v.extend([
            c("mpi", 1, 1, "dynamic"),
            c("mpi", 2, 1, "dynamic"),
            c("mpi", 2, 1, "static"),
            c("hybrid", 1, 2, "dynamic"),
            c("hybrid", 2, 1, "dynamic"),
            c("mpi", 4, 1, "dynamic"),
            c("hybrid", 2, 2, "dynamic"),
        ]);
    }
    v
}

/// Runs `prism render` for one configuration and reads back its statistics.
pub fn run_one(
    exe: &Path,
    cfg: &Config,
    render_args: &[String],
    work: &Path,
) -> Result<RunStats, String> {
    run_with_env(exe, cfg, render_args, work, &[])
}

/// [`run_one`] with extra environment variables for the run (every rank on this node sees
/// them).
pub fn run_with_env(
    exe: &Path,
    cfg: &Config,
    render_args: &[String],
    work: &Path,
    env: &[(&str, &str)],
) -> Result<RunStats, String> {
    if cfg.independent() {
        return run_independent(exe, cfg, render_args, work);
    }
    let stats_path = work.join(format!(
        "{}-{}x{}-{}.json",
        cfg.engine, cfg.processes, cfg.threads, cfg.schedule
    ));
    let mut cmd = command(
        exe,
        cfg,
        render_args,
        &work.join("scaling.png"),
        &stats_path,
    );
    // Processes mpirun starts on this node inherit its environment.
    cmd.envs(env.iter().copied());
    let out = cmd
        .output()
        .map_err(|e| format!("could not start {:?}: {e}", cmd.get_program()))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed ({}): {}",
            cfg.label(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    read_stats(cfg, &stats_path)
}

/// `cfg.processes` serial runs started together; their statistics combined as one run that
/// ends with the last of them.
fn run_independent(
    exe: &Path,
    cfg: &Config,
    render_args: &[String],
    work: &Path,
) -> Result<RunStats, String> {
    let one = Config {
        processes: 1,
        ..cfg.clone()
    };
    let mut children = Vec::new();
    for i in 0..cfg.processes {
        let stats_path = work.join(format!("independent-{i}.json"));
        let png = work.join(format!("independent-{i}.png"));
        let mut cmd = command(exe, &one, render_args, &png, &stats_path);
        cmd.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        let child = cmd
            .spawn()
            .map_err(|e| format!("could not start {:?}: {e}", cmd.get_program()))?;
        children.push((child, stats_path));
    }
    let mut runs = Vec::new();
    let mut failure = None;
    for (child, stats_path) in children {
        // Every child is waited for, even after a failure: none is left running.
        match child.wait_with_output() {
            Ok(out) if out.status.success() => runs.push(read_stats(cfg, &stats_path)),
            Ok(out) => {
                failure.get_or_insert(format!(
                    "{} failed ({}): {}",
                    cfg.label(),
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            Err(e) => {
                failure.get_or_insert(format!("{}: {e}", cfg.label()));
            }
        }
    }
    if let Some(f) = failure {
        return Err(f);
    }
    let runs = runs.into_iter().collect::<Result<Vec<_>, _>>()?;
    let mut all = runs[0].clone();
    all.processes = runs.len();
    all.wall_seconds = runs.iter().map(|r| r.wall_seconds).fold(0.0, f64::max);
    all.rays = runs.iter().map(|r| r.rays).sum();
    all.rays_per_second = all.rays as f64 / all.wall_seconds.max(1e-9);
    all.comm_seconds = 0.0;
    all.ranks = runs
        .iter()
        .enumerate()
        .flat_map(|(i, r)| {
            r.ranks.iter().cloned().map(move |mut p| {
                p.rank = i;
                p
            })
        })
        .collect();
    Ok(all)
}

/// The command line of one configuration's run (under `mpirun` for the MPI engines).
fn command(
    exe: &Path,
    cfg: &Config,
    render_args: &[String],
    out_png: &Path,
    stats_path: &Path,
) -> Command {
    let mut cmd = if cfg.engine == "mpi" || cfg.engine == "hybrid" {
        let mut c = Command::new(std::env::var("MPIRUN_BIN").unwrap_or_else(|_| "mpirun".into()));
        // prism's waits already back off; Open MPI's own yield-when-idle would add
        // milliseconds of lost CPU to every empty poll and distort the timings.
        c.env("OMPI_MCA_mpi_yield_when_idle", "0");
        c.args(["--oversubscribe", "--bind-to", "none", "-n"])
            .arg(cfg.processes.to_string())
            .arg(exe);
        c
    } else {
        Command::new(exe)
    };
    cmd.arg("render")
        .args(render_args)
        .args([
            "--engine",
            cfg.engine,
            "--schedule",
            cfg.schedule,
            "--quiet",
        ])
        .args(["--threads", &cfg.threads.to_string()])
        .arg("--out")
        .arg(out_png)
        .arg("--stats-json")
        .arg(stats_path);
    cmd
}

fn read_stats(cfg: &Config, stats_path: &Path) -> Result<RunStats, String> {
    let text = std::fs::read_to_string(stats_path).map_err(|e| {
        format!(
            "{}: no statistics at {}: {e}",
            cfg.label(),
            stats_path.display()
        )
    })?;
    serde_json::from_str(&text).map_err(|e| format!("{}: bad statistics: {e}", cfg.label()))
}

/// The measured medians of one configuration.
pub struct Row {
    pub config: Config,
    pub seconds: f64,
    pub rays_per_second: f64,
    pub comm_fraction: f64,
    pub busy_fraction: f64,
    /// Wall time of each round, in order: rounds run side by side, so ratios between two
    /// configurations are taken round by round (see [`paired_ratio`]).
    pub walls: Vec<f64>,
}

/// The median over rounds of `a`'s time over `b`'s time in the same round: each ratio comes
/// from two runs seconds apart, so a slow spell of the machine cancels instead of landing in
/// one configuration's median and not the other's.
pub fn paired_ratio(a: &Row, b: &Row) -> f64 {
    paired(a, b).median
}

/// A ratio of two configurations' times, from the per-round ratios: their median and a
/// distribution-free 95 % confidence interval for it (`None` below six rounds, where no pair
/// of order statistics reaches 95 %). On a shared machine one run's ratio moves by ±10 %;
/// the interval says whether a goal's threshold lies within that noise.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PairedRatio {
    pub median: f64,
    pub interval: Option<(f64, f64)>,
}

impl PairedRatio {
    /// The same ratio times a constant (a speed-up over workers is an efficiency).
    pub fn scaled(self, k: f64) -> PairedRatio {
        PairedRatio {
            median: self.median * k,
            interval: self.interval.map(|(lo, hi)| (lo * k, hi * k)),
        }
    }
}

/// "0.944, 95 % interval 0.924-0.995", or the median alone.
impl std::fmt::Display for PairedRatio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.3}", self.median)?;
        if let Some((lo, hi)) = self.interval {
            write!(f, ", 95 % interval {lo:.3}-{hi:.3}")?;
        }
        Ok(())
    }
}

/// [`paired_ratio`] with its confidence interval.
pub fn paired(a: &Row, b: &Row) -> PairedRatio {
    let mut v: Vec<f64> = a.walls.iter().zip(&b.walls).map(|(x, y)| x / y).collect();
    v.sort_by(|a, b| a.total_cmp(b));
    PairedRatio {
        median: sorted_median(&v),
        interval: median_interval(&v),
    }
}

/// The order-statistic confidence interval for a median: `[x(k), x(n+1-k)]` of the sorted
/// sample, with the largest `k` whose coverage, `1 - 2 P(Binomial(n, ½) < k)`, is at least
/// 95 %. It assumes only that the rounds are independent draws, not any shape of the noise.
pub fn median_interval(sorted: &[f64]) -> Option<(f64, f64)> {
    let n = sorted.len();
    // P(Binomial(n, ½) ≤ j), accumulated term by term: C(n, i) / 2^n.
    let mut term = 0.5f64.powi(n as i32);
    let mut cdf = 0.0;
    let mut k = 0;
    for j in 0..n / 2 {
        cdf += term;
        term *= (n - j) as f64 / (j + 1) as f64;
        if 2.0 * cdf <= 0.05 {
            k = j + 1;
        } else {
            break;
        }
    }
    (k > 0).then(|| (sorted[k - 1], sorted[n - k]))
}

/// The fewest rounds whose ratios give a median a 95 % interval ([`median_interval`]).
pub fn rounds_for_interval() -> usize {
    (1..)
        .find(|&n| median_interval(&vec![1.0; n]).is_some())
        .unwrap_or(usize::MAX)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    sorted_median(&v)
}

fn sorted_median(v: &[f64]) -> f64 {
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// The order configurations run in within a round: those the goals compare run next to each
/// other (serial 1×1, mpi 2×1 and the independent serial runs; threads 1×2 and hybrid 1×2),
/// seconds apart rather than half a round; the rest follow in table order.
pub fn run_order(configs: &[Config]) -> Vec<usize> {
    let is = |c: &Config, engine: &str, p: usize, t: usize| {
        c.engine == engine && c.processes == p && c.threads == t && c.schedule != "static"
    };
    let group = |c: &Config| {
        if is(c, "serial", 1, 1) {
            0
        } else if is(c, "mpi", 2, 1) {
            1
        } else if c.independent() {
            2
        } else if is(c, "threads", 1, 2) {
            3
        } else if is(c, "hybrid", 1, 2) {
            4
        } else {
            5
        }
    };
    let mut order: Vec<usize> = (0..configs.len()).collect();
    // A stable sort keeps the table order within each group.
    order.sort_by_key(|&i| group(&configs[i]));
    order
}

/// Runs every configuration `repeats` times, interleaved, and returns the medians. Every
/// other round runs in reverse order, so that a machine speeding up or slowing down steadily
/// over a round favours one of two neighbours in one round and the other in the next, and the
/// median of their ratios does not lean either way.
pub fn measure(
    exe: &Path,
    configs: &[Config],
    render_args: &[String],
    repeats: usize,
    work: &Path,
    log: &mut dyn FnMut(&str),
) -> Result<Vec<Row>, String> {
    let mut samples: Vec<Vec<RunStats>> = vec![Vec::new(); configs.len()];
    let order = run_order(configs);
    for round in 0..repeats {
        let this_round: Vec<usize> = if round % 2 == 0 {
            order.clone()
        } else {
            order.iter().rev().copied().collect()
        };
        for i in this_round {
            let cfg = &configs[i];
            let s = run_one(exe, cfg, render_args, work)?;
            log(&format!(
                "round {}/{repeats}: {:<18} {:>8.3} s {:>10.3} Mrays/s",
                round + 1,
                cfg.label(),
                s.wall_seconds,
                s.rays_per_second / 1e6
            ));
            samples[i].push(s);
        }
    }
    Ok(configs
        .iter()
        .zip(samples)
        .map(|(cfg, s)| Row {
            config: cfg.clone(),
            seconds: median(s.iter().map(|r| r.wall_seconds).collect()),
            rays_per_second: median(s.iter().map(|r| r.rays_per_second).collect()),
            comm_fraction: median(s.iter().map(|r| r.comm_fraction()).collect()),
            busy_fraction: median(s.iter().map(|r| r.busy_fraction()).collect()),
            walls: s.iter().map(|r| r.wall_seconds).collect(),
        })
        .collect())
}

/// Markdown table: time, rays/s, speed-up and parallel efficiency against serial 1×1 (paired
/// by round), the workers' busy share and the communication share.
pub fn table(rows: &[Row], cores: usize) -> String {
    let base = rows
        .iter()
        .find(|r| r.config.engine == "serial" && !r.config.independent());
    let mut s = String::from(
        "| engine | processes × threads | schedule | time (s) | Mrays/s | speed-up | parallel efficiency | workers busy | communication | note |\n\
         | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n",
    );
    for r in rows {
        let workers = (r.config.processes * r.config.threads) as f64;
        // Independent runs each did the whole job: together, `processes` times the work.
        let jobs = if r.config.independent() {
            r.config.processes as f64
        } else {
            1.0
        };
        let speedup = jobs * base.map_or(f64::NAN, |b| paired_ratio(b, r));
        let mut notes = Vec::new();
        if r.config.independent() {
            notes.push("separate runs at once, no communication: the machine's ceiling");
        }
        if r.config.oversubscribed(cores) {
            notes.push("oversubscribed");
        }
        let _ = writeln!(
            s,
            "| {} | {} × {} | {} | {:.3} | {:.3} | {:.2} | {:.2} | {:.1} % | {:.2} % | {} |",
            r.config.engine,
            r.config.processes,
            r.config.threads,
            if r.config.independent() {
                "independent"
            } else {
                r.config.schedule
            },
            r.seconds,
            r.rays_per_second / 1e6,
            speedup,
            speedup / workers.min(cores as f64),
            100.0 * r.busy_fraction,
            100.0 * r.comm_fraction,
            notes.join("; ")
        );
    }
    s
}

/// A bar chart of Mrays/s per configuration, as a self-contained SVG.
pub fn svg(rows: &[Row], cores: usize) -> String {
    let w = 760.0;
    let bar_h = 22.0;
    let left = 190.0;
    let h = 40.0 + bar_h * rows.len() as f64 + 30.0;
    let max = rows
        .iter()
        .map(|r| r.rays_per_second)
        .fold(0.0f64, f64::max)
        .max(1.0);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"10\" y=\"20\" font-size=\"14\">prism bench scaling: Mrays/s by engine and layout (hatched: oversubscribed)</text>\n"
    );
    for (i, r) in rows.iter().enumerate() {
        let y = 35.0 + bar_h * i as f64;
        let len = (w - left - 90.0) * r.rays_per_second / max;
        let colour = match r.config.engine {
            "serial" if r.config.independent() => "#bbbbbb",
            "serial" => "#888888",
            "threads" => "#4477aa",
            "mpi" => "#228833",
            _ => "#cc6677",
        };
        let opacity = if r.config.oversubscribed(cores) {
            0.45
        } else {
            1.0
        };
        let _ = writeln!(
            s,
            "<text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"end\">{}</text>\
             <rect x=\"{left}\" y=\"{:.0}\" width=\"{len:.1}\" height=\"{:.0}\" fill=\"{colour}\" fill-opacity=\"{opacity}\"/>\
             <text x=\"{:.0}\" y=\"{:.0}\">{:.2}</text>",
            left - 8.0,
            y + 15.0,
            r.config.label(),
            y + 3.0,
            bar_h - 6.0,
            left + len + 6.0,
            y + 15.0,
            r.rays_per_second / 1e6
        );
    }
    s.push_str("</svg>\n");
    s
}

/// Replaces the text between two marker lines of a file (or appends the block).
pub fn replace_block(path: &Path, begin: &str, end: &str, block: &str) -> std::io::Result<()> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let new = match (text.find(begin), text.find(end)) {
        (Some(a), Some(b)) if b > a => {
            format!("{}{begin}\n{block}{}", &text[..a], &text[b..])
        }
        _ => format!("{text}\n{begin}\n{block}{end}\n"),
    };
    std::fs::write(path, new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(engine: &'static str, p: usize, t: usize, secs: f64) -> Row {
        Row {
            config: Config {
                engine,
                processes: p,
                threads: t,
                schedule: "dynamic",
            },
            seconds: secs,
            rays_per_second: 1e6 / secs,
            comm_fraction: 0.01,
            busy_fraction: 0.5,
            walls: vec![secs * 1.1, secs, secs * 0.9],
        }
    }

    #[test]
    fn efficiency_is_speedup_over_workers_and_oversubscription_is_marked() {
        let rows = [
            row("serial", 1, 1, 2.0),
            row("mpi", 2, 1, 1.25),
            row("mpi", 4, 1, 1.0),
        ];
        let t = table(&rows, 2);
        assert!(
            t.contains(
                "| mpi | 2 × 1 | dynamic | 1.250 | 0.800 | 1.60 | 0.80 | 50.0 % | 1.00 % |  |"
            ),
            "{t}"
        );
        assert!(
            t.contains(
                "| mpi | 4 × 1 | dynamic | 1.000 | 1.000 | 2.00 | 1.00 | 50.0 % | 1.00 % | oversubscribed |"
            ),
            "{t}"
        );
        let s = svg(&rows, 2);
        assert_eq!(s.matches("<rect x=").count(), 3);
    }

    #[test]
    fn the_configurations_a_goal_compares_run_next_to_each_other() {
        for mpi in [false, true] {
            let configs = configs(mpi);
            let order = run_order(&configs);
            let mut seen = order.clone();
            seen.sort();
            assert_eq!(
                seen,
                (0..configs.len()).collect::<Vec<_>>(),
                "each runs once"
            );
            let at = |label: &str| {
                order
                    .iter()
                    .position(|&i| configs[i].label() == label)
                    .unwrap_or_else(|| panic!("{label} not run"))
            };
            assert_eq!(at("serial 1×1"), 0);
            assert_eq!(at("serial 2×1 independent"), if mpi { 2 } else { 1 });
            if mpi {
                assert_eq!(at("mpi 2×1"), 1);
                assert_eq!(at("hybrid 1×2"), at("threads 1×2") + 1);
            }
        }
    }

    #[test]
    fn median_intervals_are_the_order_statistics_with_95_percent_coverage() {
        let sample = |n: usize| (1..=n).map(|i| i as f64).collect::<Vec<_>>();
        // Below six rounds even the extremes cover less than 95 % (n = 5: 1 - 2/32).
        assert_eq!(median_interval(&sample(5)), None);
        // n = 6: 1 - 2/64 = 96.9 % with the extremes.
        assert_eq!(median_interval(&sample(6)), Some((1.0, 6.0)));
        // n = 9: the 2nd and 8th (1 - 2·10/512 = 96.1 %; the 3rd and 7th give 82 %).
        assert_eq!(median_interval(&sample(9)), Some((2.0, 8.0)));
        // n = 25: the 8th and 18th (P(B ≤ 7) = 2.16 %, P(B ≤ 8) = 5.39 %).
        assert_eq!(median_interval(&sample(25)), Some((8.0, 18.0)));
    }

    #[test]
    fn paired_ratios_carry_their_interval_through_scaling() {
        let mut a = row("serial", 1, 1, 2.0);
        let mut b = row("mpi", 2, 1, 1.0);
        a.walls = (0..9).map(|i| 2.0 + 0.1 * i as f64).collect();
        b.walls = vec![1.0; 9];
        let r = paired(&a, &b);
        assert!((r.median - 2.4).abs() < 1e-12, "{r:?}");
        let (lo, hi) = r.interval.unwrap();
        assert!(
            (lo - 2.1).abs() < 1e-12 && (hi - 2.7).abs() < 1e-12,
            "{r:?}"
        );
        let e = r.scaled(0.5);
        assert!((e.median - 1.2).abs() < 1e-12);
        assert_eq!(e.interval.map(|(l, h)| (l * 2.0, h * 2.0)), r.interval);
        assert_eq!(paired_ratio(&a, &b), r.median);
        assert_eq!(e.to_string(), "1.200, 95 % interval 1.050-1.350");
        let alone = PairedRatio {
            median: 0.005,
            interval: None,
        };
        assert_eq!(alone.to_string(), "0.005");
    }

    #[test]
    fn ratios_are_paired_by_round() {
        let mut a = row("serial", 1, 1, 2.0);
        let mut b = row("mpi", 2, 1, 1.0);
        // A slow spell in round 2 hits both: the paired ratio stays 2, while the ratio of
        // medians (2.0 / 1.5) would not.
        a.walls = vec![2.0, 6.0, 2.0];
        b.walls = vec![1.0, 3.0, 1.0];
        assert_eq!(paired_ratio(&a, &b), 2.0);
        // Round by round 2, 2/3 and 6: the median is 2.
        a.walls = vec![2.0, 2.0, 6.0];
        assert_eq!(paired_ratio(&a, &b), 2.0);
    }

    #[test]
    fn independent_runs_are_labelled_as_the_machine_ceiling() {
        let rows = [row("serial", 1, 1, 2.0), row("serial", 2, 1, 2.2)];
        assert!(rows[1].config.independent() && !rows[0].config.independent());
        assert_eq!(rows[1].config.label(), "serial 2×1 independent");
        let t = table(&rows, 2);
        assert!(
            t.contains("| serial | 2 × 1 | independent | 2.200 |"),
            "{t}"
        );
        assert!(t.contains("the machine's ceiling"), "{t}");
    }

    #[test]
    fn median_of_even_and_odd_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn blocks_are_replaced_between_markers_and_appended_otherwise() {
        let dir = std::env::temp_dir().join(format!("prism-scaling-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("perf.md");
        std::fs::write(&f, "intro\n").unwrap();
        replace_block(&f, "<!-- a -->", "<!-- b -->", "one\n").unwrap();
        replace_block(&f, "<!-- a -->", "<!-- b -->", "two\n").unwrap();
        let text = std::fs::read_to_string(&f).unwrap();
        assert_eq!(text, "intro\n\n<!-- a -->\ntwo\n<!-- b -->\n");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
