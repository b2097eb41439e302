//! What one `prism render` run measured, written with `--stats-json` for the scaling study.

use serde::{Deserialize, Serialize};
use std::path::Path;

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
    pub ranks: Vec<RankStats>,
    /// Proportional set size summed over every rank, read after the scene was built (before
    /// the film exists: the scene's memory).
    pub pss_bytes_total: u64,
    /// The same, read after the last pass: the root's film (the whole image's statistics,
    /// held by the root alone) included.
    #[serde(default)]
    pub pss_bytes_total_end: u64,
    /// Bytes of the scene's geometry (BVH and triangles).
    #[serde(default)]
    pub geometry_bytes: u64,
    /// How many of them the root holds in huge pages (`None`: cannot be read here).
    #[serde(default)]
    pub geometry_huge_page_bytes: Option<u64>,
}

/// One rank's engine counters, summed over the passes, with times in seconds (the engine's
/// own [`ProcessStats`](prism::engines::ProcessStats) holds `Duration`s, which serde writes as
/// `{secs, nanos}`: exact on the wire between ranks, awkward in a file read by scripts).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct RankStats {
    pub rank: usize,
    pub threads: usize,
    /// Tiles it rendered.
    pub rendered: usize,
    /// Wall time of its engine runs.
    pub wall_seconds: f64,
    /// Time its render threads spent rendering, summed over threads.
    pub render_seconds: f64,
    /// Time its render threads waited for work, summed over threads.
    pub wait_seconds: f64,
    /// Time its main thread spent in `update` (the root only).
    pub update_seconds: f64,
    /// Time its main thread spent in message calls, encoding and decoding.
    pub comm_seconds: f64,
    /// Time in the runs' opening collectives (mostly waiting for the last rank).
    pub sync_seconds: f64,
    pub messages_sent: u64,
    pub bytes_sent: u64,
    pub messages_received: u64,
    pub bytes_received: u64,
    /// Most results held at once between its render threads and its main thread.
    pub peak_outbox_results: usize,
}

impl From<&prism::engines::ProcessStats> for RankStats {
    fn from(p: &prism::engines::ProcessStats) -> Self {
        RankStats {
            rank: p.rank,
            threads: p.threads,
            rendered: p.rendered,
            wall_seconds: p.wall.as_secs_f64(),
            render_seconds: p.render_time.as_secs_f64(),
            wait_seconds: p.wait_time.as_secs_f64(),
            update_seconds: p.update_time.as_secs_f64(),
            comm_seconds: p.comm_time.as_secs_f64(),
            sync_seconds: p.sync_time.as_secs_f64(),
            messages_sent: p.messages_sent,
            bytes_sent: p.bytes_sent,
            messages_received: p.messages_received,
            bytes_received: p.bytes_received,
            peak_outbox_results: p.peak_outbox_results,
        }
    }
}

impl RunStats {
    /// The share of its workers' time the run spent rendering: render time summed over every
    /// thread of every rank, over the run's span (the longest rank's engine wall time, which
    /// is the root's: it ends with the last result) × the threads. What is missing is the
    /// engines' own cost: waiting for work, for the slowest worker, for messages.
    pub fn busy_fraction(&self) -> f64 {
        let render: f64 = self.ranks.iter().map(|p| p.render_seconds).sum();
        let span = self
            .ranks
            .iter()
            .map(|p| p.wall_seconds)
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

/// Writes `bytes` to `path` whole or not at all, as every output of a render is written
/// (through a temporary file renamed into place, a symbolic link written through).
pub fn write_replacing(path: &Path, bytes: &[u8]) -> Result<(), String> {
    prism::tracer::replace::replace_with_bytes(path, &[bytes])
        .map_err(|(step, e)| format!("{}: cannot {step}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_replaced_whole_through_a_temporary_that_the_sweep_knows() {
        let dir = std::env::temp_dir().join(format!("prism-stats-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("run.json");
        std::fs::write(&path, b"old").unwrap();
        // A reader holding the old file (a hard link here) keeps its bytes: replaced, not
        // rewritten in place.
        let held = dir.join("held.json");
        std::fs::hard_link(&path, &held).unwrap();
        write_replacing(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(std::fs::read(&held).unwrap(), b"old");
        // A write that fails leaves nothing behind.
        let e = write_replacing(&dir.join("missing").join("run.json"), b"x").unwrap_err();
        assert!(e.contains("cannot create a temporary file"), "{e}");
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn pss_is_read_from_smaps_rollup_format() {
        let t = "00400000-7fff [rollup]\nRss:  2048 kB\nPss:  1536 kB\nPss_Anon: 12 kB\n";
        assert_eq!(parse_pss_kib(t), Some(1536));
        assert_eq!(parse_pss_kib("Rss: 5 kB\n"), None);
    }

    #[test]
    fn busy_fraction_weighs_ranks_by_threads() {
        let rank = |threads, wall_ms: u64, render_ms: u64| RankStats {
            threads,
            wall_seconds: wall_ms as f64 / 1000.0,
            render_seconds: render_ms as f64 / 1000.0,
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
    fn rank_times_are_written_in_seconds() {
        let p = prism::engines::ProcessStats {
            rank: 1,
            threads: 2,
            wall: std::time::Duration::from_millis(1500),
            wait_time: std::time::Duration::from_micros(250),
            ..Default::default()
        };
        let json = serde_json::to_value(RankStats::from(&p)).unwrap();
        assert_eq!(json["rank"], 1);
        assert_eq!(json["wall_seconds"], 1.5);
        assert_eq!(json["wait_seconds"], 0.00025);
        assert!(json.get("wall").is_none(), "{json}");
    }

    #[test]
    fn this_process_has_a_pss_on_linux() {
        if std::path::Path::new("/proc/self/smaps_rollup").exists() {
            assert!(own_pss_bytes() > 0);
        }
    }
}
