//! Progress of a long call, shown on the root process only.
//!
//! Workers never touch the display: they report finished chunks (counts, not indices) to the
//! coordinating thread of their process, and processes other than the root piggyback their
//! counts on the chunk requests they send anyway. The root's coordinating thread owns the
//! [`Progress`] and updates it: an [`indicatif`] bar with rate and ETA when stderr is a
//! terminal, else a log line every few seconds (SKIRT's `infoIfElapsed`).
//!
//! The style is chosen by [`ProgressConfig`]; [`ProgressConfig::from_env`] reads
//! `PRISM_PROGRESS` (`auto`, `bar`, `log`, `quiet`) and `PRISM_PROGRESS_INTERVAL` (seconds
//! between log lines, default 5).

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressStyle {
    /// A bar if stderr is a terminal, else log lines.
    Auto,
    /// An indicatif bar on stderr.
    Bar,
    /// A line on stderr every `interval`.
    Log,
    /// Nothing.
    Quiet,
}

/// Where log lines go: stderr, or a shared buffer (for tests and embedding programs).
#[derive(Debug, Clone, Default)]
enum Sink {
    #[default]
    Stderr,
    Memory(Arc<Mutex<Vec<String>>>),
}

/// Progress display settings, shared by every call of a factory's children.
#[derive(Debug, Clone)]
pub struct ProgressConfig {
    /// The display style.
    pub style: ProgressStyle,
    /// Time between log lines (also the bar's minimum redraw interval).
    pub interval: Duration,
    sink: Sink,
}

impl Default for ProgressConfig {
    fn default() -> Self {
        ProgressConfig {
            style: ProgressStyle::Auto,
            interval: Duration::from_secs(5),
            sink: Sink::Stderr,
        }
    }
}

impl ProgressConfig {
    /// Settings from `PRISM_PROGRESS` and `PRISM_PROGRESS_INTERVAL`; unknown values fall back
    /// to the defaults (auto, 5 s) with a warning on stderr.
    pub fn from_env() -> ProgressConfig {
        let mut cfg = ProgressConfig::default();
        if let Ok(v) = std::env::var("PRISM_PROGRESS") {
            cfg.style = match v.trim().to_ascii_lowercase().as_str() {
                "auto" | "" => ProgressStyle::Auto,
                "bar" => ProgressStyle::Bar,
                "log" => ProgressStyle::Log,
                "quiet" | "off" | "none" => ProgressStyle::Quiet,
                other => {
                    eprintln!(
                        "prism-tasking: PRISM_PROGRESS={other:?} is not auto, bar, log or quiet; using auto"
                    );
                    ProgressStyle::Auto
                }
            };
        }
        if let Ok(v) = std::env::var("PRISM_PROGRESS_INTERVAL") {
            match parse_interval(&v) {
                Some(d) => cfg.interval = d,
                None => eprintln!(
                    "prism-tasking: PRISM_PROGRESS_INTERVAL={v:?} is not a number of seconds from 0 to 1.8e19; using 5"
                ),
            }
        }
        cfg
    }

    /// No display at all.
    pub fn quiet() -> ProgressConfig {
        ProgressConfig {
            style: ProgressStyle::Quiet,
            ..ProgressConfig::default()
        }
    }

    /// Log lines on stderr every `interval`.
    pub fn log(interval: Duration) -> ProgressConfig {
        ProgressConfig {
            style: ProgressStyle::Log,
            interval,
            sink: Sink::Stderr,
        }
    }

    /// Log lines every `interval` collected in memory instead of printed; the returned buffer
    /// receives them.
    pub fn capture(interval: Duration) -> (ProgressConfig, Arc<Mutex<Vec<String>>>) {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let cfg = ProgressConfig {
            style: ProgressStyle::Log,
            interval,
            sink: Sink::Memory(buf.clone()),
        };
        (cfg, buf)
    }
}

/// A `PRISM_PROGRESS_INTERVAL` value: seconds, `None` if not a number a `Duration` can hold
/// (negative, NaN, infinite, or too large: `Duration::from_secs_f64` would panic on those).
fn parse_interval(v: &str) -> Option<Duration> {
    Duration::try_from_secs_f64(v.trim().parse::<f64>().ok()?).ok()
}

/// A running progress display for `total` units of work.
#[derive(Debug)]
pub struct Progress {
    label: String,
    total: u64,
    done: u64,
    start: Instant,
    last_line: Instant,
    /// `done` as the last line said it.
    last_logged: u64,
    interval: Duration,
    mode: Mode,
}

/// The longest a waiting caller sleeps between updates of a display (a bar must still move).
const LONGEST_TICK: Duration = Duration::from_millis(200);

/// The longest a log goes without a line while a call runs but nothing finishes.
const HEARTBEAT: Duration = Duration::from_secs(60);

#[derive(Debug)]
enum Mode {
    Quiet,
    Log(Sink),
    Bar(indicatif::ProgressBar),
}

impl Progress {
    /// How often a caller that waits for work should wake up to update this display: its
    /// interval, kept between 10 ms (no spinning) and 200 ms (a bar that still moves).
    pub(crate) fn tick(&self) -> Duration {
        self.interval.clamp(Duration::from_millis(10), LONGEST_TICK)
    }

    /// Starts a display for `total` units labelled `label`.
    pub fn start(config: &ProgressConfig, label: &str, total: u64) -> Progress {
        let style = match config.style {
            ProgressStyle::Auto if std::io::stderr().is_terminal() => ProgressStyle::Bar,
            ProgressStyle::Auto => ProgressStyle::Log,
            s => s,
        };
        let mode = match style {
            ProgressStyle::Quiet => Mode::Quiet,
            ProgressStyle::Bar => {
                let bar = indicatif::ProgressBar::new(total);
                let template =
                    "{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} {per_sec} ETA {eta}";
                if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
                    bar.set_style(style);
                }
                bar.set_message(label.to_string());
                Mode::Bar(bar)
            }
            _ => Mode::Log(config.sink.clone()),
        };
        let now = Instant::now();
        Progress {
            label: label.to_string(),
            total,
            done: 0,
            start: now,
            last_line: now,
            last_logged: 0,
            interval: config.interval,
            mode,
        }
    }

    /// Units done so far.
    pub fn done(&self) -> u64 {
        self.done
    }

    /// Adds `n` finished units.
    pub fn add(&mut self, n: u64) {
        self.set(self.done + n);
    }

    /// Sets the number of finished units; draws or logs if due. Cheap when nothing is due.
    pub fn set(&mut self, done: u64) {
        self.done = done.min(self.total);
        match &self.mode {
            Mode::Quiet => {}
            Mode::Bar(bar) => bar.set_position(self.done),
            Mode::Log(_) => {
                let now = Instant::now();
                let since = now.duration_since(self.last_line);
                // A line that says nothing new is a heartbeat: at most once a minute, or at
                // the interval if that is longer (a short interval must not flood the log).
                let due = since >= self.interval
                    && (self.done != self.last_logged || since >= self.interval.max(HEARTBEAT));
                if due && self.done < self.total {
                    self.last_line = now;
                    self.last_logged = self.done;
                    let line = self.line(now);
                    self.emit(line);
                }
            }
        }
    }

    /// Ends the display with a summary line (or clears the bar).
    pub fn finish(self) {
        match &self.mode {
            Mode::Quiet => {}
            Mode::Bar(bar) => bar.finish_and_clear(),
            Mode::Log(_) => {
                let secs = self.start.elapsed().as_secs_f64();
                let line = format!(
                    "{}: {}/{} done in {:.1} s",
                    self.label, self.done, self.total, secs
                );
                self.emit(line);
            }
        }
    }

    fn line(&self, now: Instant) -> String {
        let secs = now.duration_since(self.start).as_secs_f64().max(1e-9);
        let rate = self.done as f64 / secs;
        let pct = if self.total == 0 {
            100.0
        } else {
            100.0 * self.done as f64 / self.total as f64
        };
        let eta = if rate > 0.0 {
            format!("{:.0} s", (self.total - self.done) as f64 / rate)
        } else {
            "unknown".to_string()
        };
        format!(
            "{}: {:.1}% ({}/{}), {:.3e}/s, ETA {}",
            self.label, pct, self.done, self.total, rate, eta
        )
    }

    fn emit(&self, line: String) {
        match &self.mode {
            Mode::Log(Sink::Stderr) => eprintln!("{line}"),
            Mode::Log(Sink::Memory(buf)) => {
                if let Ok(mut b) = buf.lock() {
                    b.push(line);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_report_fraction_and_summary() {
        let (cfg, buf) = ProgressConfig::capture(Duration::ZERO);
        let mut p = Progress::start(&cfg, "photons", 200);
        p.add(50);
        p.set(100);
        assert_eq!(p.done(), 100);
        p.add(100);
        p.finish();
        let lines = buf.lock().unwrap().clone();
        assert!(lines[0].starts_with("photons: 25.0% (50/200)"), "{lines:?}");
        assert!(
            lines[1].starts_with("photons: 50.0% (100/200)"),
            "{lines:?}"
        );
        assert!(lines
            .last()
            .unwrap()
            .starts_with("photons: 200/200 done in"));
        assert_eq!(lines.len(), 3, "no periodic line at 100%: {lines:?}");
    }

    #[test]
    fn intervals_a_duration_cannot_hold_are_refused() {
        assert_eq!(parse_interval(" 2.5 "), Some(Duration::from_millis(2500)));
        assert_eq!(parse_interval("0"), Some(Duration::ZERO));
        for bad in ["1e20", "-1", "NaN", "inf", "five", ""] {
            assert_eq!(parse_interval(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_short_interval_logs_changes_not_repeats() {
        let (cfg, buf) = ProgressConfig::capture(Duration::ZERO);
        let mut p = Progress::start(&cfg, "x", 10);
        for _ in 0..100 {
            p.set(0); // nothing finished yet: woken up, but nothing new to say
        }
        p.set(3);
        p.set(3);
        p.set(4);
        p.finish();
        let lines = buf.lock().unwrap().clone();
        assert_eq!(lines.len(), 3, "3/10, 4/10 and the summary: {lines:?}");
        assert!(lines[0].starts_with("x: 30.0% (3/10)"), "{lines:?}");
    }

    #[test]
    fn interval_limits_the_lines() {
        let (cfg, buf) = ProgressConfig::capture(Duration::from_secs(3600));
        let mut p = Progress::start(&cfg, "x", 1000);
        for _ in 0..999 {
            p.add(1);
        }
        p.finish();
        assert_eq!(buf.lock().unwrap().len(), 1, "only the summary");
    }
}
