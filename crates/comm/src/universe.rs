//! Starting and ending the parallel world: the RAII guard around MPI_Init / MPI_Finalize, the
//! thread level, and the named process sets (MPI 4 Sessions style names).

use crate::{launcher, CommError, Communicator, Result};

/// The MPI thread support levels, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ThreadLevel {
    /// Only one thread exists.
    Single,
    /// Many threads; only the one that initialised MPI calls it.
    Funneled,
    /// Many threads call MPI, never two at once.
    Serialized,
    /// Any thread calls MPI at any time.
    Multiple,
}

/// The world of the whole job (MPI_COMM_WORLD).
pub const WORLD: &str = "mpi://WORLD";
/// Just this process (MPI_COMM_SELF).
pub const SELF: &str = "mpi://SELF";
/// The processes sharing memory with this one (MPI_Comm_split_type SHARED of the world).
pub const NODE: &str = "prism://node";
/// One process per node: the node's lowest world rank.
pub const NODE_LEADERS: &str = "prism://node-leaders";

const SET_NAMES: [&str; 4] = [WORLD, SELF, NODE, NODE_LEADERS];

/// The parallel environment. Created once by [`init`]; dropping it finalises MPI, so keep it
/// alive until the end of `main` (communicators used after that are dead handles).
///
/// On a fatal error a rank should call [`Communicator::abort`] rather than return, since the
/// other ranks may be waiting for it; [`Universe::abort_on_panic`] does that for panics on any
/// thread, and a panic unwinding through the `Universe` itself aborts the job instead of
/// finalising.
pub struct Universe {
    world: Communicator,
    level: ThreadLevel,
    #[cfg(feature = "mpi")]
    mpi: Option<crate::mpi_backend::MpiUniverse>,
}

impl std::fmt::Debug for Universe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Universe")
            .field("mpi", &self.is_mpi())
            .field("size", &self.world.size())
            .field("thread_level", &self.level)
            .finish()
    }
}

/// Starts the parallel world with thread level [`ThreadLevel::Funneled`].
pub fn init() -> Result<Universe> {
    init_with(ThreadLevel::Funneled)
}

/// Starts the parallel world, requiring at least thread level `level`.
///
/// With the `mpi` feature, in a process started by an MPI launcher (`mpirun`, `srun`, …) this
/// initialises MPI; it fails if MPI was already initialised or finalised in this process, or if
/// MPI grants a lower thread level. Otherwise it returns a one-process world and may be called
/// any number of times (unit tests do so from many threads). Without the `mpi` feature a
/// launcher with more than one process is an error: N copies would each do all the work.
pub fn init_with(level: ThreadLevel) -> Result<Universe> {
    init_for(launcher::detect_env(), level)
}

/// [`init_with`] for a given launcher environment.
fn init_for(launch: Option<launcher::Launch>, level: ThreadLevel) -> Result<Universe> {
    #[cfg(feature = "mpi")]
    if let Some(launch) = launch {
        let (mpi, world) = crate::mpi_backend::MpiUniverse::init(level)?;
        if let (Some(size @ 2..), 1) = (launch.size, world.size()) {
            return Err(CommError::LauncherNotConnected {
                size,
                at_least: launch.at_least,
                variable: launch.variable,
            });
        }
        return Ok(Universe {
            world,
            level: mpi.thread_level(),
            mpi: Some(mpi),
        });
    }
    #[cfg(not(feature = "mpi"))]
    if let Some(launcher::Launch {
        variable,
        size: Some(size),
        at_least,
    }) = launch
    {
        if size > 1 {
            return Err(CommError::BuiltWithoutMpi {
                size,
                at_least,
                variable,
            });
        }
    }
    let _ = level;
    Ok(Universe {
        world: Communicator::local(),
        // Without MPI every operation is thread-safe.
        level: ThreadLevel::Multiple,
        #[cfg(feature = "mpi")]
        mpi: None,
    })
}

impl Universe {
    /// All processes of the job.
    pub fn world(&self) -> Communicator {
        self.world.clone()
    }

    /// The names [`Universe::open`] accepts: `mpi://WORLD`, `mpi://SELF`, `prism://node`,
    /// `prism://node-leaders`.
    pub fn process_set_names(&self) -> Vec<String> {
        SET_NAMES.iter().map(|s| s.to_string()).collect()
    }

    /// Opens a process set as a communicator. Collective over the world (every rank must call
    /// it with the same name). Returns `None` on a rank outside the set (every rank but the
    /// node leaders for `prism://node-leaders`).
    pub fn open(&self, name: &str) -> Result<Option<Communicator>> {
        if !SET_NAMES.contains(&name) {
            return Err(CommError::UnknownProcessSet {
                rank: self.world.rank(),
                name: name.to_string(),
                known: self.process_set_names(),
            });
        }
        if name == WORLD {
            return Ok(Some(self.world()));
        }
        #[cfg(feature = "mpi")]
        if let Some(m) = &self.mpi {
            return m.open(&self.world, name);
        }
        Ok(Some(Communicator::local()))
    }

    /// Whether this process runs on a real MPI.
    pub fn is_mpi(&self) -> bool {
        #[cfg(feature = "mpi")]
        if self.mpi.is_some() {
            return true;
        }
        false
    }

    /// The granted thread level (`Multiple` without MPI: every operation is thread-safe).
    pub fn thread_level(&self) -> ThreadLevel {
        self.level
    }

    /// The name of the host (MPI's processor name with MPI).
    pub fn processor_name(&self) -> String {
        #[cfg(feature = "mpi")]
        if let Some(m) = &self.mpi {
            return m.processor_name();
        }
        nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "localhost".to_string())
    }

    /// Makes a panic on any thread end the whole job (MPI_Abort on the world) after the usual
    /// panic message, so that no rank is left waiting for a rank that died. Without MPI the
    /// panic behaves as usual. Call once, early in `main`. Panics inside [`catch_panic`] are
    /// left to it.
    pub fn abort_on_panic(&self) {
        #[cfg(feature = "mpi")]
        if self.mpi.is_some() {
            crate::mpi_backend::install_abort_hook();
        }
    }
}

thread_local! {
    /// How many [`catch_panic`] calls this thread is inside.
    static CATCHING: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// The message a panic carried (its `&str` or `String` payload), for the error that reports
/// a panic [`catch_panic`] caught.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}

/// Runs `f` and catches a panic in it, as [`std::panic::catch_unwind`] does, but without the
/// job-wide abort that [`Universe::abort_on_panic`] installs: for code whose panic is an error
/// to report and go on from (a third-party parser given a bad file, say). The panic message
/// is still printed. Only panics on this thread, inside `f`, are spared; elsewhere they abort.
pub fn catch_panic<R>(f: impl FnOnce() -> R) -> std::thread::Result<R> {
    struct Leave;
    impl Drop for Leave {
        fn drop(&mut self) {
            CATCHING.with(|c| c.set(c.get() - 1));
        }
    }
    CATCHING.with(|c| c.set(c.get() + 1));
    let _leave = Leave;
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
}

/// Whether a panic on this thread now will be caught by [`catch_panic`].
#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
pub(crate) fn panic_is_caught() -> bool {
    CATCHING.with(|c| c.get() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_universes_from_many_threads() {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                std::thread::spawn(|| {
                    let u = init().unwrap();
                    assert!(!u.is_mpi());
                    let w = u.world();
                    w.send(0, 1, &5u32).unwrap();
                    w.recv::<u32>(0, 1).unwrap().0
                })
            })
            .collect();
        for h in handles {
            assert_eq!(h.join().unwrap(), 5);
        }
    }

    #[test]
    fn process_sets_hold_one_process() {
        let u = init_with(ThreadLevel::Multiple).unwrap();
        assert_eq!(u.thread_level(), ThreadLevel::Multiple);
        let names = u.process_set_names();
        assert_eq!(names, vec![WORLD, SELF, NODE, NODE_LEADERS]);
        for n in &names {
            let c = u.open(n).unwrap().expect("every set holds this process");
            assert_eq!((c.rank(), c.size()), (0, 1));
        }
        let e = u.open("mpi://nowhere").unwrap_err().to_string();
        assert!(
            e.contains("mpi://nowhere") && e.contains("prism://node-leaders"),
            "{e}"
        );
        assert!(!u.processor_name().is_empty());
        u.abort_on_panic();
    }

    #[test]
    fn thread_levels_are_ordered() {
        assert!(ThreadLevel::Single < ThreadLevel::Funneled);
        assert!(ThreadLevel::Funneled < ThreadLevel::Serialized);
        assert!(ThreadLevel::Serialized < ThreadLevel::Multiple);
    }

    #[cfg(not(feature = "mpi"))]
    #[test]
    fn launched_with_several_processes_without_mpi_is_an_error() {
        let launch = |size| {
            Some(launcher::Launch {
                variable: "PMI_SIZE".into(),
                size,
                at_least: false,
            })
        };
        let e = init_for(launch(Some(3)), ThreadLevel::Funneled).unwrap_err();
        assert!(matches!(e, CommError::BuiltWithoutMpi { size: 3, .. }));
        assert!(e.to_string().contains("PMI_SIZE"));
        assert!(e.to_string().contains("with 3 processes"), "{e}");
        let from_a_rank = Some(launcher::Launch {
            variable: "PMIX_RANK".into(),
            size: Some(2),
            at_least: true,
        });
        let e = init_for(from_a_rank, ThreadLevel::Funneled).unwrap_err();
        assert!(e.to_string().contains("with at least 2 processes"), "{e}");
        assert!(init_for(launch(Some(1)), ThreadLevel::Funneled).is_ok());
        assert!(init_for(launch(None), ThreadLevel::Funneled).is_ok());
    }

    #[test]
    fn error_message_tells_how_to_fix() {
        let e = CommError::BuiltWithoutMpi {
            size: 4,
            at_least: false,
            variable: "OMPI_COMM_WORLD_SIZE".into(),
        };
        assert!(e.to_string().contains("--features mpi"));
    }
}
