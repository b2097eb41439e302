//! The ticket lock's counters in an MPI one-sided window on rank 0: `[next ticket, now
//! serving]`. Taking a ticket and advancing "now serving" are atomic fetch-and-adds, so every
//! rank is served in the order it took its ticket; a waiter polls "now serving" with backoff.
//! A passive-target epoch (`MPI_Win_lock_all`) is open for the window's whole life.

use std::ffi::{c_int, c_void};
use std::ptr;

use mpi::ffi;

use super::{abort_if_panicking, check, finalized, on_mpi_thread, sum_op, MpiComm, Summable};
use crate::backoff::Backoff;
use crate::Result;

const NEXT: ffi::MPI_Aint = 0;
const SERVING: ffi::MPI_Aint = 1;

pub(crate) struct TicketWindow {
    win: ffi::MPI_Win,
    rank: usize,
}

// SAFETY: the window handle is opaque; every MPI call on it checks that it runs on the MPI
// thread (`guard`), so sharing the handle cannot make MPI calls from other threads.
unsafe impl Send for TicketWindow {}
// SAFETY: as for Send.
unsafe impl Sync for TicketWindow {}

impl TicketWindow {
    /// Collective over `comm`.
    pub(crate) fn new(comm: &MpiComm) -> Result<TicketWindow> {
        comm.guard("Lock::new")?;
        // Rank 0 holds the two counters; the others expose one word, since zero-size
        // windows break some fabrics.
        let words: usize = if comm.rank() == 0 { 2 } else { 1 };
        let mut base: *mut u64 = ptr::null_mut();
        // SAFETY: reading a predefined handle exported by the MPI library.
        let mut win = unsafe { ffi::RSMPI_WIN_NULL };
        // SAFETY: MPI allocates `words` u64s, stores their address in `base` and the window
        // in `win`; the memory lives until MPI_Win_free in Drop.
        let code = unsafe {
            ffi::MPI_Win_allocate(
                (words * 8) as ffi::MPI_Aint,
                8,
                ffi::RSMPI_INFO_NULL,
                comm.raw(),
                (&mut base as *mut *mut u64).cast::<c_void>(),
                &mut win,
            )
        };
        check(comm.rank(), "MPI_Win_allocate", code)?;
        let w = TicketWindow {
            win,
            rank: comm.rank(),
        };
        // SAFETY: `base` points to `words` u64s owned by the window, not yet visible to any
        // one-sided operation (no epoch is open anywhere before the barrier below).
        unsafe { ptr::write_bytes(base, 0, words) };
        comm.barrier()?;
        // SAFETY: live window; opens a shared passive-target epoch to every rank.
        check(w.rank, "MPI_Win_lock_all", unsafe {
            ffi::MPI_Win_lock_all(0, w.win)
        })?;
        Ok(w)
    }

    /// Refuses MPI calls after finalisation or from the wrong thread, naming which.
    fn guard(&self, op: &'static str) -> Result<()> {
        super::guard(self.rank, op)
    }

    /// Atomically adds `add` to counter `which` on rank 0 and returns its old value.
    fn fetch_add(&self, which: ffi::MPI_Aint, add: u64) -> Result<u64> {
        let mut old: u64 = 0;
        // SAFETY: live window inside the lock_all epoch; `add` and `old` are locals alive
        // until the flush completes the operation.
        let code = unsafe {
            ffi::MPI_Fetch_and_op(
                (&add as *const u64).cast::<c_void>(),
                (&mut old as *mut u64).cast::<c_void>(),
                u64::datatype(),
                0,
                which,
                sum_op(),
                self.win,
            )
        };
        check(self.rank, "MPI_Fetch_and_op", code)?;
        // SAFETY: completes the operation above at origin and target.
        check(self.rank, "MPI_Win_flush", unsafe {
            ffi::MPI_Win_flush(0 as c_int, self.win)
        })?;
        Ok(old)
    }

    pub(crate) fn acquire(&self) -> Result<()> {
        self.guard("Lock::lock")?;
        let ticket = self.fetch_add(NEXT, 1)?;
        let mut backoff = Backoff::new();
        while self.fetch_add(SERVING, 0)? != ticket {
            backoff.wait();
        }
        Ok(())
    }

    pub(crate) fn release(&self) {
        if self.guard("Lock release").is_ok() {
            // MPI's default error handler aborts the job on failure, so there is nothing to
            // report here.
            let _ = self.fetch_add(SERVING, 1);
        }
    }
}

impl Drop for TicketWindow {
    fn drop(&mut self) {
        if finalized() {
            return;
        }
        if !on_mpi_thread() {
            // Skipping the free would leave the other ranks in MPI_Win_free forever.
            eprintln!(
                "prism-comm: rank {}: a Lock was dropped on a thread that may not call MPI; its \
                 free is collective (MPI_Win_free) and cannot happen there, so the whole MPI job \
                 ends here (MPI_Abort). Drop a Lock on the thread that initialised MPI.",
                self.rank
            );
            // SAFETY: MPI is initialised and not finalised; MPI_Abort ends every process of
            // the job and does not return (from any thread, in practice, as for panics).
            unsafe { ffi::MPI_Abort(ffi::RSMPI_COMM_WORLD, 102) };
        }
        // MPI_Win_free is collective: while this rank unwinds, the others may be waiting for it
        // in another call, and would never join the free.
        abort_if_panicking(self.rank, "a Lock (an MPI window, freed collectively)");
        // SAFETY: live window with the epoch opened in `new`; MPI_Win_free is collective and
        // releases the memory MPI allocated.
        unsafe {
            ffi::MPI_Win_unlock_all(self.win);
            ffi::MPI_Win_free(&mut self.win);
        }
    }
}
