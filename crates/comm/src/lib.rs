//! `prism-comm`: the one crate of prism that talks to MPI.
//!
//! It gives the layers above a small, typed view of a parallel job:
//!
//! - [`init`] / [`Universe`]: MPI initialisation with an explicit, checked thread level, and
//!   finalisation when the guard drops. A build without the `mpi` feature started by a
//!   launcher with several processes refuses to run instead of running N copies.
//! - [`Communicator`]: rank, size, barrier, abort; point-to-point messages of any serde type
//!   (postcard-encoded, unknown size: probe then receive) with tags; non-blocking
//!   [`SendRequest`]/[`RecvRequest`]; broadcast, gather, all-gather and in-place sums of `f64`
//!   and `u64` slices (SKIRT's sumToAll / sumToRoot) of any length.
//! - Process sets named as in MPI 4 Sessions ([`Universe::open`]): `mpi://WORLD`,
//!   `mpi://SELF`, `prism://node`, `prism://node-leaders`; and [`Communicator::split`].
//! - [`SharedArray`]: plain-old-data arrays with one copy per node (pshmem's MPIShared).
//! - [`Lock`]: a first-come-first-served lock across processes (pshmem's MPILock), for what
//!   the ranks share outside MPI, such as a file they append to (see its example).
//!
//! Without the `mpi` feature, or with it in a process not started by an MPI launcher, the
//! world is one process: rank 0 of size 1, collectives are identities, messages to oneself go
//! through an in-process queue, shared arrays are plain allocations. That is a real mode (the
//! embedded default), not a mock.
//!
//! # Threads
//! MPI is initialised `Funneled` by default: only the thread that called [`init`] may make
//! communication calls. Communicators are `Send + Sync` so they can be stored anywhere, but
//! worker threads should hand messages to the communication thread through channels.
//! Waits never spin a core: they poll with non-blocking tests and back off (a few 1 µs spins,
//! then sleeps), and never `sched_yield`, which on a machine whose cores all compute gives the
//! core away for a whole time slice. A [`RecvRequest`] that has matched a large message only
//! moves it along when tested: it never waits for the sender's part of the exchange.
//!
//! # Errors and hangs
//! A rank that returns an error from `main` while the others wait for it in a collective
//! leaves them hanging. On a fatal error call [`Communicator::abort`]; call
//! [`Universe::abort_on_panic`] early so that a panic on any thread ends the whole job.
//!
//! # Example
#![doc = concat!("```\n", include_str!("../examples/comm_crate_doc.rs"), "```")]

#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
mod backoff;
mod comm;
pub mod cpus;
mod error;
mod heap;
mod launcher;
mod local;
mod lock;
#[cfg(feature = "mpi")]
mod mpi_backend;
mod pieces;
mod request;
mod shared;
mod shm;
mod universe;

pub use bytemuck;

pub use comm::{check_round_trip, Communicator, Source, Status, TagSel};
pub use error::{CommError, Result};
pub use heap::release_free_heap;
pub use launcher::{launched_as_job, launched_processes, launcher_rank};
pub use lock::{Lock, LockGuard};
pub use request::{RecvRequest, SendRequest};
pub use shared::SharedArray;
pub use shm::SEGMENT_PREFIX;
pub use universe::{
    catch_panic, init, init_with, panic_message, ThreadLevel, Universe, NODE, NODE_LEADERS, SELF,
    WORLD,
};
