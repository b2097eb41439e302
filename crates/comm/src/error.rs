//! The one error type of the crate. Every message names the rank and the operation that failed,
//! because in a multi-process job a bare "failed" printed by one of N processes is useless.

/// Result with [`CommError`].
pub type Result<T> = std::result::Result<T, CommError>;

/// Everything that can go wrong in `prism-comm`.
#[derive(Debug, thiserror::Error)]
pub enum CommError {
    /// A launcher started several processes, but this build has no MPI: each process would
    /// silently do all the work on its own.
    #[error(
        "launched by an MPI launcher with {}{size} processes ({variable} is set) but prism was \
         built without the `mpi` feature: rebuild with --features mpi (or run a single process)",
        if *.at_least { "at least " } else { "" }
    )]
    BuiltWithoutMpi {
        /// Number of processes the launcher reported.
        size: usize,
        /// `size` is only a lower bound: the launcher gave this process's rank, not the size.
        at_least: bool,
        /// The environment variable that revealed the launcher.
        variable: String,
    },

    /// A launcher started several processes, but MPI sees each as a world of its own: the MPI
    /// library cannot talk to the launcher, and every process would do all the work alone.
    #[error(
        "launched as {}{size} processes ({variable} is set) but MPI sees a world of 1 process: \
         this MPI library cannot reach the launcher (under Slurm, run with srun --mpi=pmix or \
         --mpi=pmi2, whichever your MPI was built for, or start the job with mpirun)",
        if *.at_least { "at least " } else { "" }
    )]
    LauncherNotConnected {
        /// Number of processes the launcher reported.
        size: usize,
        /// `size` is only a lower bound.
        at_least: bool,
        /// The environment variable that revealed the launcher.
        variable: String,
    },

    /// The MPI library granted a lower thread level than requested.
    #[error("MPI granted thread level {granted:?}, lower than the requested {requested:?}")]
    ThreadLevelNotGranted {
        /// What was asked for.
        requested: crate::ThreadLevel,
        /// What MPI provided.
        granted: crate::ThreadLevel,
    },

    /// MPI was initialised before (by an earlier [`crate::Universe`] or by another library).
    #[error("MPI is already initialised (or was finalised) in this process: only one Universe may exist, once")]
    AlreadyInitialized,

    /// A process set name that is not one of [`crate::Universe::process_set_names`].
    #[error("rank {rank}: unknown process set {name:?}; known sets: {}", known.join(", "))]
    UnknownProcessSet {
        /// World rank of the caller.
        rank: usize,
        /// The name asked for.
        name: String,
        /// The names that exist.
        known: Vec<String>,
    },

    /// A rank argument outside `0..size`.
    #[error("rank {rank}: {op}: rank {given} is out of range for a communicator of size {size}")]
    InvalidRank {
        /// Caller's rank.
        rank: usize,
        /// Operation.
        op: &'static str,
        /// The rank passed.
        given: usize,
        /// Communicator size.
        size: usize,
    },

    /// A tag outside `0..=max`.
    #[error("rank {rank}: {op}: tag {tag} is outside 0..={max}")]
    InvalidTag {
        /// Caller's rank.
        rank: usize,
        /// Operation.
        op: &'static str,
        /// The tag passed.
        tag: i32,
        /// Largest tag MPI accepts.
        max: i32,
    },

    /// A value could not be encoded with postcard.
    #[error("rank {rank}: {op}: cannot serialise the value: {message}")]
    Serialize {
        /// Caller's rank.
        rank: usize,
        /// Operation.
        op: &'static str,
        /// postcard's message.
        message: String,
    },

    /// Received bytes did not decode as the expected type.
    #[error(
        "rank {rank}: {op}: cannot deserialise {bytes} bytes from rank {source_rank} (tag {tag}) \
         as {type_name}: {message}"
    )]
    Deserialize {
        /// Caller's rank.
        rank: usize,
        /// Operation.
        op: &'static str,
        /// Sender's rank.
        source_rank: usize,
        /// Message tag (-1 for collectives).
        tag: i32,
        /// Message size.
        bytes: usize,
        /// The type asked for.
        type_name: &'static str,
        /// postcard's message.
        message: String,
    },

    /// A message too large for one MPI call.
    #[error("rank {rank}: {op}: a message of {bytes} bytes exceeds the limit of {max} bytes")]
    MessageTooLarge {
        /// Caller's rank.
        rank: usize,
        /// Operation.
        op: &'static str,
        /// Its size.
        bytes: usize,
        /// The limit.
        max: usize,
    },

    /// Another rank failed in a collective call, so every rank returns an error rather than
    /// some ranks hanging.
    #[error("rank {rank}: {op}: failed on rank(s) {}", describe_peers(failures))]
    Peer {
        /// Caller's rank.
        rank: usize,
        /// Operation.
        op: &'static str,
        /// (rank, message) of each rank that failed.
        failures: Vec<(usize, String)>,
    },

    /// Invalid arguments to a collective, detected consistently on every rank.
    #[error("rank {rank}: {op}: {message}")]
    InvalidArgument {
        /// Caller's rank.
        rank: usize,
        /// Operation.
        op: &'static str,
        /// What was wrong.
        message: String,
    },

    /// An MPI call returned an error code.
    #[error("rank {rank}: {op}: MPI error code {code}")]
    Mpi {
        /// Caller's rank.
        rank: usize,
        /// The MPI function.
        op: &'static str,
        /// Its return code.
        code: i32,
    },

    /// An MPI call made from a thread other than the one that initialised MPI.
    #[error(
        "rank {rank}: {op}: called from a thread that did not initialise MPI (thread level \
         {level:?} allows MPI calls only from the initialising thread)"
    )]
    WrongThread {
        /// Caller's rank.
        rank: usize,
        /// Operation.
        op: &'static str,
        /// Granted level.
        level: crate::ThreadLevel,
    },

    /// A communication call made after the [`crate::Universe`] was dropped (MPI finalised).
    #[error("rank {rank}: {op}: MPI was already finalised (the Universe was dropped)")]
    Finalized {
        /// Caller's rank.
        rank: usize,
        /// Operation.
        op: &'static str,
    },

    /// [`crate::Lock::lock`] called by the thread that already holds the lock (its guard is
    /// alive): waiting would wait for itself forever.
    #[error(
        "rank {rank}: {op}: this process already holds the lock (this thread's earlier guard is \
         still alive): drop it before locking again"
    )]
    AlreadyHeld {
        /// Caller's rank.
        rank: usize,
        /// Operation.
        op: &'static str,
    },

    /// Shared-memory setup failed.
    #[error("rank {rank}: {op}: shared memory: {message}")]
    Shm {
        /// Caller's rank.
        rank: usize,
        /// Operation.
        op: &'static str,
        /// What failed, with the OS error.
        message: String,
    },
}

fn describe_peers(failures: &[(usize, String)]) -> String {
    failures
        .iter()
        .map(|(r, m)| format!("{r} ({m})"))
        .collect::<Vec<_>>()
        .join("; ")
}
