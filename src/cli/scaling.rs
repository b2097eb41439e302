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
    fn label(&self) -> String {
        format!(
            "{} {}×{}{}",
            self.engine,
            self.processes,
            self.threads,
            if self.schedule == "static" {
                " static"
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
    let stats_path = work.join(format!(
        "{}-{}x{}-{}.json",
        cfg.engine, cfg.processes, cfg.threads, cfg.schedule
    ));
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
        .arg(work.join("scaling.png"))
        .arg("--stats-json")
        .arg(&stats_path);
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
    let text = std::fs::read_to_string(&stats_path).map_err(|e| {
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
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
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

/// Runs every configuration `repeats` times, interleaved, and returns the medians.
pub fn measure(
    exe: &Path,
    configs: &[Config],
    render_args: &[String],
    repeats: usize,
    work: &Path,
    log: &mut dyn FnMut(&str),
) -> Result<Vec<Row>, String> {
    let mut samples: Vec<Vec<RunStats>> = vec![Vec::new(); configs.len()];
    for round in 0..repeats {
        for (i, cfg) in configs.iter().enumerate() {
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
        })
        .collect())
}

/// Markdown table: time, rays/s, parallel efficiency against serial 1×1, communication share.
pub fn table(rows: &[Row], cores: usize) -> String {
    let base = rows
        .iter()
        .find(|r| r.config.engine == "serial")
        .map(|r| r.seconds)
        .unwrap_or(f64::NAN);
    let mut s = String::from(
        "| engine | processes × threads | schedule | time (s) | Mrays/s | speed-up | parallel efficiency | communication | note |\n\
         | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |\n",
    );
    for r in rows {
        let workers = (r.config.processes * r.config.threads) as f64;
        let speedup = base / r.seconds;
        let _ = writeln!(
            s,
            "| {} | {} × {} | {} | {:.3} | {:.3} | {:.2} | {:.2} | {:.2} % | {} |",
            r.config.engine,
            r.config.processes,
            r.config.threads,
            r.config.schedule,
            r.seconds,
            r.rays_per_second / 1e6,
            speedup,
            speedup / workers.min(cores as f64),
            100.0 * r.comm_fraction,
            if r.config.oversubscribed(cores) {
                "oversubscribed"
            } else {
                ""
            }
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
            t.contains("| mpi | 2 × 1 | dynamic | 1.250 | 0.800 | 1.60 | 0.80 | 1.00 % |  |"),
            "{t}"
        );
        assert!(
            t.contains(
                "| mpi | 4 × 1 | dynamic | 1.000 | 1.000 | 2.00 | 1.00 | 1.00 % | oversubscribed |"
            ),
            "{t}"
        );
        let s = svg(&rows, 2);
        assert_eq!(s.matches("<rect x=").count(), 3);
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
