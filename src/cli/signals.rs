//! How `prism render` answers the signals that batch systems and users send, so that a render
//! stopped from outside keeps what it has done.
//!
//! - **SIGUSR1 asks for a stop after the pass in progress** (Slurm's `--signal=USR1@300` some
//!   minutes before a job's limit, `scancel --signal=USR1`, `kill -USR1`; `mpirun` forwards it
//!   to every rank). The render then ends as at `--time-limit`: images and checkpoint of whole
//!   passes, a note, status 0. Every rank catches it, since its default action would kill the
//!   process; only the root's counts (it decides for every rank between passes).
//! - **SIGTERM and SIGINT still end the process, as they would have** (a job's time limit,
//!   `scancel`, Ctrl-C), with one difference on the root of a render with `--checkpoint`: it
//!   first lets the checkpoint and the images being written reach the disk (no temporary file
//!   is left) and says what the checkpoint holds. A second signal ends it at once. Without
//!   `--checkpoint` nothing is changed.

use indicatif::ProgressBar;
use prism::tracer::CheckpointProgress;
use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Catches SIGUSR1 from now on: the flag it sets asks the render to stop between passes.
pub fn stop_on_usr1() -> std::io::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(SIGUSR1, stop.clone())?;
    Ok(stop)
}

/// On SIGTERM or SIGINT: closes the checkpoint writer whose `progress` this is (waiting for
/// the write in flight), waits for the images being written (the main thread holds `files`
/// while it writes them), says what `path` holds (`resumed`: the passes it held before this
/// run), then ends the process by the signal's default action, so that the launcher and the
/// batch system see the signal they sent. A second signal ends the process at once.
pub fn finish_checkpoint_on_exit(
    path: PathBuf,
    progress: CheckpointProgress,
    files: Arc<Mutex<()>>,
    resumed: usize,
    bar: Option<ProgressBar>,
) -> std::io::Result<()> {
    let ending = Arc::new(AtomicBool::new(false));
    for signal in [SIGTERM, SIGINT] {
        // Registered first, so that it runs before the watcher hears of the signal: once the
        // first signal is being handled, the next one takes the default action.
        signal_hook::flag::register_conditional_default(signal, ending.clone())?;
    }
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])?;
    std::thread::Builder::new()
        .name("prism-signals".into())
        .spawn(move || {
            let Some(signal) = signals.forever().next() else {
                return;
            };
            ending.store(true, Ordering::SeqCst);
            let name = if signal == SIGINT {
                "SIGINT"
            } else {
                "SIGTERM"
            };
            let held = progress.close().map_or(resumed, |passes| passes as usize);
            // Held until the process ends: no file write starts after this one.
            let _writing = files.lock().unwrap_or_else(|p| p.into_inner());
            let note = if held == 0 {
                format!(
                    "prism: {name}: ending the render before its first checkpoint; {} was not \
                     written",
                    path.display()
                )
            } else {
                format!(
                    "prism: {name}: ending the render; {} holds {held} pass(es): run the same \
                     command again to go on from there",
                    path.display()
                )
            };
            match &bar {
                Some(b) => b.suspend(|| super::warn(&note)),
                None => super::warn(&note),
            }
            let _ = signal_hook::low_level::emulate_default_handler(signal);
            // Only if the default action did not end the process (it always should).
            std::process::exit(128 + signal);
        })?;
    Ok(())
}
