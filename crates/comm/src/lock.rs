//! A cross-process lock (pshmem's MPILock): a ticket lock, so waiters are served first come,
//! first served. With MPI the two counters live in a one-sided window on rank 0 of the
//! communicator and are updated with atomic fetch-and-add; without MPI they are a mutex-guarded
//! pair shared by the process's threads.

use std::sync::{Condvar, Mutex, PoisonError};

use crate::comm::Backend;
use crate::{Communicator, Result};

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
/// thread that initialised MPI, and dropping a `Lock` is collective (MPI_Win_free). Without
/// MPI it also orders the threads of the process.
pub struct Lock {
    kind: Kind,
    comm: Communicator,
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
        })
    }

    /// Waits for this caller's turn (polling with backoff under MPI) and takes the lock.
    pub fn lock(&self) -> Result<LockGuard<'_>> {
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
        Ok(LockGuard {
            lock: self,
            _not_send: std::marker::PhantomData,
        })
    }

    fn release(&self) {
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
