//! The root's report of a pass in progress: a bar on a terminal; in a batch job's log, where a
//! bar cannot be drawn, a line every so often — so that a first pass of hours does not leave
//! the log silent until it ends.

use indicatif::ProgressBar;
use prism::tracer::{TileResult, TileTask};
use std::time::{Duration, Instant};

pub struct Progress {
    bar: Option<ProgressBar>,
    /// How often a line is printed, when there is no bar.
    every: Option<Duration>,
    run_start: Instant,
    run_rays: u64,
    pass: usize,
    pass_start: Instant,
    pixels: u64,
    done: u64,
    pass_rays: u64,
    last_line: Instant,
}

impl Progress {
    /// `bar` on a terminal; else, with `every`, a line that often during a pass.
    pub fn new(bar: Option<ProgressBar>, every: Option<Duration>) -> Progress {
        let now = Instant::now();
        Progress {
            bar,
            every,
            run_start: now,
            run_rays: 0,
            pass: 0,
            pass_start: now,
            pixels: 0,
            done: 0,
            pass_rays: 0,
            last_line: now,
        }
    }

    pub fn begin_pass(&mut self, pass: usize, tasks: &[TileTask]) {
        let now = Instant::now();
        self.pass = pass;
        self.pass_start = now;
        self.last_line = now;
        self.pixels = tasks.iter().map(|t| t.pixel_count() as u64).sum();
        self.done = 0;
        self.pass_rays = 0;
        if let Some(b) = &self.bar {
            b.set_prefix(format!("pass {}", pass + 1));
            b.set_length(self.pixels);
            b.set_position(0);
        }
    }

    pub fn result(&mut self, result: &TileResult) {
        self.run_rays += result.ray_count;
        self.pass_rays += result.ray_count;
        self.done += result.stats.len() as u64;
        if let Some(b) = &self.bar {
            b.inc(result.stats.len() as u64);
            let secs = self.run_start.elapsed().as_secs_f64().max(1e-9);
            b.set_message(format!("{:.2} Mrays/s", self.run_rays as f64 / secs / 1e6));
        } else if let Some(every) = self.every {
            if self.last_line.elapsed() >= every && self.done < self.pixels {
                super::warn(&self.line());
                self.last_line = Instant::now();
            }
        }
    }

    /// `pass 1: 42% of its 2073600 pixels after 1m00s, 5.21 Mrays/s, about 1m23s left`.
    fn line(&self) -> String {
        let elapsed = self.pass_start.elapsed();
        let share = self.done as f64 / self.pixels.max(1) as f64;
        let left = if self.done == 0 {
            "no estimate of the time left yet".to_string()
        } else {
            let left = elapsed.as_secs_f64() * (self.pixels - self.done) as f64 / self.done as f64;
            format!("about {} left", clock(Duration::from_secs_f64(left)))
        };
        format!(
            "pass {}: {:.0}% of its {} pixels after {}, {:.2} Mrays/s, {left}",
            self.pass + 1,
            share * 100.0,
            self.pixels,
            clock(elapsed),
            self.pass_rays as f64 / elapsed.as_secs_f64().max(1e-9) / 1e6
        )
    }
}

/// `4.2s`, `42s`, `3m05s`, `2h01m`: a duration as a log reader wants it.
fn clock(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..10 => format!("{:.1}s", d.as_secs_f64()),
        10..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_a_clock() {
        let c = |s| clock(Duration::from_secs(s));
        assert_eq!(c(0), "0.0s");
        assert_eq!(clock(Duration::from_millis(4250)), "4.2s");
        assert_eq!(c(10), "10s");
        assert_eq!(c(59), "59s");
        assert_eq!(c(60), "1m00s");
        assert_eq!(c(185), "3m05s");
        assert_eq!(c(3599), "59m59s");
        assert_eq!(c(3600), "1h00m");
        assert_eq!(c(7260), "2h01m");
        assert_eq!(c(100 * 3600 + 59), "100h00m");
    }
}
