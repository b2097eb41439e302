//! A cross-process lock (pshmem's MPILock): a ticket lock, so waiters are served first come,
//! first served. With MPI the two counters live in a one-sided window on rank 0 of the
//! communicator and are updated with atomic fetch-and-add; without MPI they are a mutex-guarded
//! pair shared by the process's threads.

use std::sync::{Condvar, Mutex, PoisonError};
use std::thread::ThreadId;

use crate::comm::Backend;
use crate::{CommError, Communicator, Result};

/// Tickets handed out and the ticket being served.
#[derive(Debug, Default)]
struct Tickets {
    next: u64,
    serving: u64,
}

#[derive(Debug, Default)]
struct LocalLock {
    tickets: Mutex<Tickets>,
    turn: Condvar,
}

enum Kind {
    Local(LocalLock),
    #[cfg(feature = "mpi")]
    Mpi(crate::mpi_backend::TicketWindow),
}

/// A lock over the ranks of a communicator: one holder at a time, waiters served in the order
/// they asked.
///
/// With MPI, `lock` and the guard's release make MPI calls, so they must come from the
/// thread that initialised MPI, and dropping a `Lock` is collective (MPI_Win_free): drop it
/// on that thread too (a drop elsewhere ends the job with a message, since the free cannot
/// happen there and the other ranks would wait for it). Without MPI it also orders the
/// threads of the process.
///
/// It guards what the ranks share outside MPI: a file they append to, a device, a directory
/// they update, a stretch of output that must not interleave. (A [`crate::SharedArray`] needs
/// none: it is written only through its collective `set`.)
///
/// ```
/// use prism_comm::{init, Lock};
/// use std::io::Write;
///
/// let universe = init()?;
/// let world = universe.world();
/// // The root names a file; every rank appends its line to it, one rank at a time.
/// let path: std::path::PathBuf = world.broadcast(
///     0,
///     world.is_root().then(|| {
///         std::env::temp_dir().join(format!("prism-lock-{}.log", std::process::id()))
///     }),
/// )?;
/// let lock = Lock::new(&world)?;
/// {
///     let _held = lock.lock()?; // released when the guard drops
///     let mut log = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
///     writeln!(log, "rank {} of {}", world.rank(), world.size())?;
/// }
/// world.barrier()?;
/// if world.is_root() {
///     assert_eq!(std::fs::read_to_string(&path)?.lines().count(), world.size());
///     std::fs::remove_file(&path)?;
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Lock {
    kind: Kind,
    comm: Communicator,
    /// The thread of this process that holds the lock, if one does: a second `lock` from it
    /// is an error instead of a wait for itself.
    holder: Mutex<Option<ThreadId>>,
}

impl std::fmt::Debug for Lock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lock")
            .field("ranks", &self.comm.size())
            .finish()
    }
}

/// Holds a [`Lock`]; releases it when dropped. Not `Send`: with MPI the release is an MPI
/// call, which must happen on the thread that took the lock.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard<'a> {
    lock: &'a Lock,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl std::fmt::Debug for LockGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LockGuard")
    }
}

impl Lock {
    /// A lock over `comm`'s ranks. Collective.
    pub fn new(comm: &Communicator) -> Result<Lock> {
        let kind = match &comm.inner.backend {
            Backend::Local(_) => Kind::Local(LocalLock::default()),
            #[cfg(feature = "mpi")]
            Backend::Mpi(m) => Kind::Mpi(crate::mpi_backend::TicketWindow::new(m)?),
        };
        Ok(Lock {
            kind,
            comm: comm.clone(),
            holder: Mutex::new(None),
        })
    }

    fn holder(&self) -> std::sync::MutexGuard<'_, Option<ThreadId>> {
        // A plain Option: consistent after any panic.
        self.holder.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for this caller's turn (polling with backoff under MPI) and takes the lock.
    ///
    /// # Errors
    /// [`CommError::AlreadyHeld`] if this thread already holds the lock (its guard is alive),
    /// which would otherwise wait for itself forever; with MPI, the errors of a refused MPI
    /// call (wrong thread, MPI finalised).
    pub fn lock(&self) -> Result<LockGuard<'_>> {
        let me = std::thread::current().id();
        if *self.holder() == Some(me) {
            return Err(CommError::AlreadyHeld {
                rank: self.comm.rank(),
                op: "Lock::lock",
            });
        }
        match &self.kind {
            Kind::Local(l) => {
                let mut t = l.tickets.lock().unwrap_or_else(PoisonError::into_inner);
                let mine = t.next;
                t.next += 1;
                while t.serving != mine {
                    t = l.turn.wait(t).unwrap_or_else(PoisonError::into_inner);
                }
            }
            #[cfg(feature = "mpi")]
            Kind::Mpi(w) => w.acquire()?,
        }
        *self.holder() = Some(me);
        Ok(LockGuard {
            lock: self,
            _not_send: std::marker::PhantomData,
        })
    }

    fn release(&self) {
        *self.holder() = None;
        match &self.kind {
            Kind::Local(l) => {
                l.tickets
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .serving += 1;
                l.turn.notify_all();
            }
            #[cfg(feature = "mpi")]
            Kind::Mpi(w) => w.release(),
        }
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        self.lock.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn no_lost_updates_between_threads() {
        let lock = Arc::new(Lock::new(&Communicator::local()).unwrap());
        // A counter that is deliberately not atomic as a whole: read, pause, write.
        let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (lock, counter) = (lock.clone(), counter.clone());
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        let _g = lock.lock().unwrap();
                        let v = counter.load(std::sync::atomic::Ordering::Relaxed);
                        std::thread::yield_now();
                        counter.store(v + 1, std::sync::atomic::Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(counter.load(std::sync::atomic::Ordering::Relaxed), 800);
    }

    #[test]
    fn waiters_are_served_in_order() {
        let lock = Arc::new(Lock::new(&Communicator::local()).unwrap());
        let order = Arc::new(Mutex::new(Vec::new()));
        let guard = lock.lock().unwrap();
        let mut threads = Vec::new();
        for i in 0..4 {
            let (l, o) = (lock.clone(), order.clone());
            threads.push(std::thread::spawn(move || {
                let _g = l.lock().unwrap();
                o.lock().unwrap().push(i);
            }));
            // Wait until thread i holds its ticket before starting the next one.
            while lock_next(&lock) != i + 2 {
                std::thread::yield_now();
            }
        }
        drop(guard);
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3]);
    }

    #[test]
    fn locking_twice_on_one_thread_is_an_error() {
        let lock = Lock::new(&Communicator::local()).unwrap();
        let first = lock.lock().unwrap();
        let e = lock.lock().unwrap_err();
        assert!(matches!(e, CommError::AlreadyHeld { .. }), "{e:?}");
        assert!(
            e.to_string()
                .contains("this process already holds the lock"),
            "{e}"
        );
        // Another thread still waits its turn, and gets it once the guard is dropped.
        std::thread::scope(|s| {
            let other = s.spawn(|| lock.lock().map(drop).is_ok());
            std::thread::sleep(std::time::Duration::from_millis(20));
            assert!(!other.is_finished());
            drop(first);
            assert!(other.join().unwrap());
        });
        // And the lock works again on this thread.
        drop(lock.lock().unwrap());
        drop(lock.lock().unwrap());
    }

    #[test]
    fn lock_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Lock>();
    }

    fn lock_next(lock: &Lock) -> u64 {
        match &lock.kind {
            Kind::Local(l) => l.tickets.lock().unwrap().next,
            #[cfg(feature = "mpi")]
            Kind::Mpi(_) => unreachable!("local communicator"),
        }
    }
}
