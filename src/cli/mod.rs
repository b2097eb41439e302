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
/// `ready` is what this process found before MPI's start (its command line's checks, or
/// clap's answer). First every process learns every other's, and its command line: processes
/// launched with different command lines (`mpirun -n 1 prism render : -n 1 prism render
/// --passes 3`, or `--help` on one rank), which would leave some waiting in a collective the
/// others never join or check differently, all stop here, and rank 0 says why, naming the
/// rank.
///
/// An error every process holds ([`CliError::Shared`]) is printed by rank 0 before
/// `MPI_Finalize`, which waits for every process: printed after it, the line would race the
/// launcher, which kills the others as soon as one process exits non-zero. An error only this
/// process holds ([`CliError::Msg`]) ends the job with `MPI_Abort` after it is printed: the
/// other processes may be waiting for this one in a collective, and finalising would hang them.
pub fn with_universe(
    ready: Result<(), StartError>,
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
    let world = universe.world();
    let outcome = agree_on_start(&world, &command_line(), ready).and_then(|()| body(&universe));
    let Err(e) = outcome else {
        return Ok(());
    };
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

/// Why a process cannot start its command: the text to print (a `prism: error: ...` line, or
/// clap's message with its usage) and the exit status.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct StartError {
    pub status: u8,
    pub text: String,
}

impl From<CliError> for StartError {
    fn from(e: CliError) -> StartError {
        StartError {
            status: e.exit_status(),
            text: format!("prism: error: {e}"),
        }
    }
}

impl From<clap::Error> for StartError {
    fn from(e: clap::Error) -> StartError {
        StartError {
            status: e.exit_code().clamp(0, 255) as u8,
            text: e.render().to_string().trim_end().to_string(),
        }
    }
}

/// This process's arguments (without the program's path, which may differ between nodes),
/// as a shell would show them.
fn command_line() -> String {
    let words: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| {
            let a = a.to_string_lossy().into_owned();
            if a.is_empty() || a.contains(char::is_whitespace) {
                format!("'{a}'")
            } else {
                a
            }
        })
        .collect();
    words.join(" ")
}

/// The start's agreement (see [`with_universe`]): `Ok` on every process, or the same
/// [`CliError::Reported`] on every process once rank 0 has said what stopped the job.
fn agree_on_start(
    world: &prism::comm::Communicator,
    command: &str,
    ready: Result<(), StartError>,
) -> Result<(), CliError> {
    let all: Vec<(String, Option<StartError>)> =
        world.all_gather(&(command.to_string(), ready.err()))?;
    let failed = all
        .iter()
        .enumerate()
        .find_map(|(r, (_, e))| e.as_ref().map(|e| (r, e)));
    let (status, line) = if let Some((rank, e)) = failed {
        // The same answer everywhere (one command line for the whole job) is said once, as a
        // lone process would say it: a failure, or the help or version asked for.
        let alike = all
            .iter()
            .all(|(_, o)| o.as_ref().map(|o| &o.text) == Some(&e.text));
        // Rank 0 alone checks what only the root uses (the scene file, the outputs'
        // directories): its refusal is the job's, said as a lone process would.
        let root_only = rank == 0
            && e.status != 0
            && all[1..].iter().all(|(c, o)| o.is_none() && *c == all[0].0);
        let line = if alike || root_only || world.size() == 1 {
            if e.status == 0 {
                if world.is_root() {
                    let _ = say(&e.text);
                }
                return Err(CliError::Reported(0));
            }
            e.text.clone()
        } else if e.status == 0 {
            format!(
                "prism: error: rank {rank} was asked for the help or the version (`{}`), unlike \
                 rank {}; every process must run the same command",
                all[rank].0,
                usize::from(rank == 0)
            )
        } else {
            let text = ["prism: error: ", "error: "]
                .iter()
                .find_map(|p| e.text.strip_prefix(p))
                .unwrap_or(&e.text);
            format!("prism: error on rank {rank}: {text}")
        };
        (e.status.max(1), line)
    } else if let Some((rank, (other, _))) =
        all.iter().enumerate().find(|(_, (c, _))| *c != all[0].0)
    {
        let line = format!(
            "prism: error: the processes of this job were given different command lines: rank 0 \
             `{}`, rank {rank} `{other}`; every process must run the same command",
            all[0].0
        );
        (1, line)
    } else {
        return Ok(());
    };
    if world.is_root() {
        warn(&line);
    }
    Err(CliError::Reported(status))
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
