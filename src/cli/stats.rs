//! What one `prism render` run measured, written with `--stats-json` for the scaling study.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct RunStats {
    pub engine: String,
    pub schedule: String,
    pub processes: usize,
    pub threads: usize,
    pub width: u32,
    pub height: u32,
    /// Passes this run rendered.
    pub passes: usize,
    /// Passes a `--checkpoint` already held when this run began (0: a fresh render).
    #[serde(default)]
    pub passes_resumed: usize,
    /// Why the render ended: `PassLimit`, `Converged` or `Deadline` (`--time-limit`).
    #[serde(default)]
    pub end: String,
    /// Wall time of the render loop on the root (scene setup excluded).
    pub wall_seconds: f64,
    /// Time the root's engine spent in communication (sends, receives, waits).
    pub comm_seconds: f64,
    pub rays: u64,
    pub rays_per_second: f64,
    /// Every rank's engine counters summed over the passes (render, wait, communication).
    #[serde(default)]
    pub ranks: Vec<prism::engines::ProcessStats>,
    /// Proportional set size summed over every rank, read after the scene was built.
    pub pss_bytes_total: u64,
    /// Bytes of the scene's geometry (BVH and triangles).
    #[serde(default)]
    pub geometry_bytes: u64,
    /// How many of them the root holds in huge pages (`None`: cannot be read here).
    #[serde(default)]
    pub geometry_huge_page_bytes: Option<u64>,
}

impl RunStats {
    /// The share of its workers' time the run spent rendering: render time summed over every
    /// thread of every rank, over the run's span (the longest rank's engine wall time, which
    /// is the root's: it ends with the last result) × the threads. What is missing is the
    /// engines' own cost: waiting for work, for the slowest worker, for messages.
    pub fn busy_fraction(&self) -> f64 {
        let render: f64 = self.ranks.iter().map(|p| p.render_time.as_secs_f64()).sum();
        let span = self
            .ranks
            .iter()
            .map(|p| p.wall.as_secs_f64())
            .fold(0.0, f64::max);
        let threads: usize = self.ranks.iter().map(|p| p.threads).sum();
        let capacity = span * threads as f64;
        if capacity > 0.0 {
            render / capacity
        } else {
            0.0
        }
    }

    pub fn comm_fraction(&self) -> f64 {
        if self.wall_seconds > 0.0 {
            self.comm_seconds / self.wall_seconds
        } else {
            0.0
        }
    }
}

/// This process's proportional set size in bytes (`Pss:` of /proc/self/smaps_rollup), or 0
/// where the kernel does not provide it. Shared pages count once in total across processes.
pub fn own_pss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/smaps_rollup")
        .ok()
        .and_then(|t| parse_pss_kib(&t))
        .map_or(0, |kib| kib * 1024)
}

fn parse_pss_kib(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pss_is_read_from_smaps_rollup_format() {
        let t = "00400000-7fff [rollup]\nRss:  2048 kB\nPss:  1536 kB\nPss_Anon: 12 kB\n";
        assert_eq!(parse_pss_kib(t), Some(1536));
        assert_eq!(parse_pss_kib("Rss: 5 kB\n"), None);
    }

    #[test]
    fn busy_fraction_weighs_ranks_by_threads() {
        use std::time::Duration;
        let rank = |threads, wall_ms, render_ms| prism::engines::ProcessStats {
            threads,
            wall: Duration::from_millis(wall_ms),
            render_time: Duration::from_millis(render_ms),
            ..Default::default()
        };
        let mut s = RunStats::default();
        assert_eq!(s.busy_fraction(), 0.0);
        // 3 threads over the root's 100 ms; 150 + 90 ms rendered. The other rank's own wall
        // ended earlier: it waited for nothing, but its thread idled to the end of the run.
        s.ranks = vec![rank(2, 100, 150), rank(1, 95, 90)];
        assert!((s.busy_fraction() - 0.8).abs() < 1e-12);
    }

    #[test]
    fn this_process_has_a_pss_on_linux() {
        if std::path::Path::new("/proc/self/smaps_rollup").exists() {
            assert!(own_pss_bytes() > 0);
        }
    }
}
