//! How `prism render` answers the signals that batch systems and users send, so that a render
//! stopped from outside keeps what it has done.
//!
//! - **SIGUSR1 asks for a stop after the pass in progress** (Slurm's `--signal=USR1@300` some
//!   minutes before a job's limit, `scancel --signal=USR1`, `kill -USR1`; `mpirun` forwards it
//!   to every rank). The render then ends as at `--time-limit`: images and checkpoint of whole
//!   passes, a note, status 0. Every rank catches it from its start, before MPI's, since its
//!   default action would kill the process; a signal to any one rank stops them all (the
//!   root, told by every rank between passes, decides for every rank).
//! - **SIGTERM and SIGINT still end the process, as they would have** (a job's time limit,
//!   `scancel`, Ctrl-C), with one difference on the root of a render: it first lets the images
//!   (and the checkpoint, with `--checkpoint`) of the pass being saved reach the disk (no
//!   temporary file is left) and says what they hold, so that a job's log tells why it ended
//!   and what it kept. A second signal ends it at once.

use indicatif::ProgressBar;
use prism::tracer::CheckpointProgress;
use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Catches SIGUSR1 from now on: the flag it sets asks the render to stop between passes.
pub fn stop_on_usr1() -> std::io::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(SIGUSR1, stop.clone())?;
    Ok(stop)
}

/// What the root's signal thread must know of the main thread's saving: when it writes files,
/// and whether the render is over.
#[derive(Clone, Debug, Default)]
pub struct Saving {
    files: Arc<Mutex<()>>,
    rendered: Arc<AtomicBool>,
    /// Passes the images on disk hold (0: none written by this run).
    images: Arc<AtomicUsize>,
}

impl Saving {
    /// Held while the root writes a pass's images and hands its checkpoint to the writer:
    /// a SIGTERM then waits for both. Nothing else (no printing) may happen under it.
    pub fn writing(&self) -> MutexGuard<'_, ()> {
        self.files.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every pass the render will do is done and saved.
    pub fn rendered(&self) {
        self.rendered.store(true, Ordering::SeqCst);
    }

    /// The images now on disk hold `passes` passes.
    pub fn images_hold(&self, passes: usize) {
        self.images.store(passes, Ordering::SeqCst);
    }
}

/// A render's checkpoint, for the note a SIGTERM prints: its path, the writer's progress, and
/// the passes it held before this run.
pub struct CheckpointNote {
    pub path: PathBuf,
    pub progress: CheckpointProgress,
    pub resumed: usize,
}

/// On SIGTERM or SIGINT: waits for the files of the pass being saved (`saving`), closes the
/// checkpoint writer if there is one (waiting for the write in flight), says what the
/// checkpoint holds, or without one what the image `out` holds, then ends the process by the
/// signal's default action, so that the launcher and the batch system see the signal they
/// sent. A second signal ends the process at once.
pub fn finish_on_exit(
    checkpoint: Option<CheckpointNote>,
    out: PathBuf,
    saving: Saving,
    bar: Option<ProgressBar>,
) -> std::io::Result<()> {
    let ending = Arc::new(AtomicBool::new(false));
    for signal in [SIGTERM, SIGINT] {
        // In the handler itself, in this order: a signal that finds the flag set (a second
        // one) takes the default action at once; the first sets it.
        signal_hook::flag::register_conditional_default(signal, ending.clone())?;
        signal_hook::flag::register(signal, ending.clone())?;
    }
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])?;
    std::thread::Builder::new()
        .name("prism-signals".into())
        .spawn(move || {
            let Some(signal) = signals.forever().next() else {
                return;
            };
            // Under mpirun, a SIGINT or SIGTERM sent to the launcher (or to another rank, which
            // then ends) reaches this rank as the launcher's SIGTERM.
            let name = if signal == SIGINT {
                "SIGINT"
            } else {
                "SIGTERM (from the launcher, the batch system or a user)"
            };
            // Held until the process ends: no file write starts after the pass being saved.
            let _writing = saving.writing();
            let rendered = saving.rendered.load(Ordering::SeqCst);
            let Some(CheckpointNote {
                path,
                progress,
                resumed,
            }) = checkpoint
            else {
                let held = saving.images.load(Ordering::SeqCst);
                let note = if held == 0 {
                    format!(
                        "prism: {name}: ending the render before its first pass was saved; {} \
                         was not written",
                        out.display()
                    )
                } else if rendered {
                    format!(
                        "prism: {name}: ending after the render; {} holds its {held} pass(es)",
                        out.display()
                    )
                } else {
                    format!(
                        "prism: {name}: ending the render; {} holds {held} pass(es) (a render \
                         with --checkpoint could go on from there)",
                        out.display()
                    )
                };
                say_briefly(note, bar);
                let _ = signal_hook::low_level::emulate_default_handler(signal);
                std::process::exit(128 + signal);
            };
            let held = progress.close().map_or(resumed, |passes| passes as usize);
            let note = if held == 0 {
                format!(
                    "prism: {name}: ending the render before its first checkpoint; {} was not \
                     written",
                    path.display()
                )
            } else if rendered {
                format!(
                    "prism: {name}: ending after the render; {} holds its {held} pass(es)",
                    path.display()
                )
            } else {
                format!(
                    "prism: {name}: ending the render; {} holds {held} pass(es): run the same \
                     command again to go on from there",
                    path.display()
                )
            };
            say_briefly(note, bar);
            let _ = signal_hook::low_level::emulate_default_handler(signal);
            // Only if the default action did not end the process (it always should).
            std::process::exit(128 + signal);
        })?;
    Ok(())
}

/// Prints `note` on standard error, giving it at most two seconds: a full pipe or a stopped
/// reader must not keep a process alive that was told to end.
fn say_briefly(note: String, bar: Option<ProgressBar>) {
    let (done, printed) = std::sync::mpsc::channel();
    let printer = std::thread::Builder::new().spawn(move || {
        match &bar {
            Some(b) => b.suspend(|| super::warn(&note)),
            None => super::warn(&note),
        }
        let _ = done.send(());
    });
    if printer.is_ok() {
        let _ = printed.recv_timeout(Duration::from_secs(2));
    }
}
