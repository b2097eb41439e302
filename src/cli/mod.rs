//! The `prism` command's subcommands, one module each.

pub mod bench;
pub mod info;
pub mod layout;
pub mod progress;
pub mod render;
pub mod scaling;
pub mod signals;
pub mod stats;

use std::io::Write;

/// An error to print as `prism: error: …` before exiting non-zero.
///
/// Deliberately not `std::error::Error`, so that any library error converts into it with `?`.
#[derive(Debug)]
pub enum CliError {
    /// This process's own error: every process that has it prints it, naming its rank in a
    /// job of several.
    Msg(String),
    /// An error every process of the job returns alike (a bad argument, a run that the engine
    /// ended everywhere): rank 0 alone prints it, so a job of N ranks says it once, not N
    /// times interleaved.
    Shared(String),
    /// Standard output was closed by its reader (`prism info | head -1`): end quietly, as
    /// a command killed by SIGPIPE would.
    BrokenPipe,
    /// Already printed while MPI was up (see [`with_universe`]); exit with this status.
    Reported(u8),
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Msg(m) | CliError::Shared(m) => f.write_str(m),
            CliError::BrokenPipe => f.write_str("standard output was closed"),
            CliError::Reported(_) => f.write_str("reported above"),
        }
    }
}

impl<E: std::error::Error> From<E> for CliError {
    fn from(e: E) -> Self {
        CliError::Msg(e.to_string())
    }
}

impl CliError {
    /// The same error, known to be held alike by every process of the job.
    pub fn everywhere(self) -> CliError {
        match self {
            CliError::Msg(m) => CliError::Shared(m),
            other => other,
        }
    }

    /// The line to print on standard error, if this process should print one: `rank` is this
    /// process's rank in a launched job (`None` without a launcher).
    pub fn report(&self, rank: Option<usize>) -> Option<String> {
        match (self, rank) {
            (CliError::BrokenPipe | CliError::Reported(_), _) => None,
            (CliError::Shared(_), Some(r)) if r > 0 => None,
            (CliError::Msg(m), Some(r)) if r > 0 => {
                Some(format!("prism: error on rank {r}: {m}\n"))
            }
            (e, _) => Some(format!("prism: error: {e}\n")),
        }
    }

    /// The exit status: 141 (128 + SIGPIPE) for a closed output, as shells report a command
    /// that a pipe's reader left; 1 otherwise.
    pub fn exit_status(&self) -> u8 {
        match self {
            CliError::BrokenPipe => 141,
            CliError::Reported(status) => *status,
            _ => 1,
        }
    }
}

/// Runs `body` with MPI up and prints its error before MPI ends.
///
/// An error every process holds ([`CliError::Shared`]) is printed by rank 0 before
/// `MPI_Finalize`, which waits for every process: printed after it, the line would race the
/// launcher, which kills the others as soon as one process exits non-zero. An error only this
/// process holds ([`CliError::Msg`]) ends the job with `MPI_Abort` after it is printed: the
/// other processes may be waiting for this one in a collective, and finalising would hang them.
pub fn with_universe(
    body: impl FnOnce(&prism::comm::Universe) -> Result<(), CliError>,
) -> Result<(), CliError> {
    use prism::comm::CommError;
    let universe = prism::comm::init().map_err(|e| match e {
        // Every process of the launch fails alike: said once, by rank 0.
        CommError::BuiltWithoutMpi { .. } | CommError::LauncherNotConnected { .. } => {
            CliError::from(e).everywhere()
        }
        e => e.into(),
    })?;
    universe.abort_on_panic();
    let Err(e) = body(&universe) else {
        return Ok(());
    };
    let world = universe.world();
    let several = world.size() > 1;
    if let Some(line) = e.report(several.then(|| world.rank())) {
        warn(line.trim_end());
    }
    if several && matches!(e, CliError::Msg(_)) {
        world.abort(i32::from(e.exit_status()));
    }
    drop(universe);
    Err(CliError::Reported(e.exit_status()))
}

/// An output file's directory must exist: checked before work that writing it would lose.
pub fn check_parent_dir(option: &str, path: &std::path::Path) -> Result<(), CliError> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) if !dir.is_dir() => {
            let what = if dir.exists() {
                "is not a directory"
            } else {
                "does not exist"
            };
            Err(msg(format!(
                "{option} {}: the directory {} {what}",
                path.display(),
                dir.display()
            )))
        }
        _ => Ok(()),
    }
}

pub fn msg(text: impl Into<String>) -> CliError {
    CliError::Msg(text.into())
}

/// An error about the arguments, which every process of a job finds alike.
pub fn shared(text: impl Into<String>) -> CliError {
    CliError::Shared(text.into())
}

/// Prints `text` and a newline on standard output. A closed pipe or a full disk is an error
/// to report, not a panic as `println!` would make it.
pub fn say(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush())
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::BrokenPipe => CliError::BrokenPipe,
            _ => msg(format!("cannot write to standard output: {e}")),
        })
}

/// Prints one line on standard error in a single write, so that lines from the processes of
/// a job sharing one terminal or pipe do not interleave mid-line. A failure to write is
/// ignored: standard error is where failures would be reported.
pub fn warn(line: &str) {
    let mut text = String::with_capacity(line.len() + 1);
    text.push_str(line);
    text.push('\n');
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_error_is_printed_by_rank_0_only_and_an_own_error_names_its_rank() {
        let shared = shared("--width must be at least 1");
        assert_eq!(
            shared.report(None).as_deref(),
            Some("prism: error: --width must be at least 1\n")
        );
        assert!(shared.report(Some(0)).is_some());
        assert_eq!(shared.report(Some(2)), None);
        let own = msg("cannot read scene.toml");
        assert_eq!(
            own.report(Some(2)).as_deref(),
            Some("prism: error on rank 2: cannot read scene.toml\n")
        );
        assert_eq!(
            own.report(Some(0)).as_deref(),
            Some("prism: error: cannot read scene.toml\n")
        );
        assert_eq!(CliError::BrokenPipe.report(Some(0)), None);
        assert_eq!(CliError::BrokenPipe.exit_status(), 141);
        assert_eq!(own.everywhere().report(Some(1)), None);
    }
}
