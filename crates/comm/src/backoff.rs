//! Polling with backoff: how every wait in prism-comm avoids burning a core.
//!
//! A blocking MPI wait in Open MPI spins; on a machine with as many ranks as cores that spin
//! steals the core a worker thread needs. Waits here poll a non-blocking test, first in a few
//! one-microsecond spins (a reply already on its way costs no sleep), then sleeping between
//! polls, starting at a microsecond and doubling up to about a millisecond.
//!
//! They never `sched_yield`: with every core busy rendering, a yield hands the core to a
//! worker thread for the rest of its time slice (milliseconds), and a two-step message
//! exchange then took 2-3 ms instead of tens of microseconds.

use std::time::Duration;

const FIRST: Duration = Duration::from_micros(1);
const LAST: Duration = Duration::from_millis(1);
/// Polls before the first sleep: a reply that is already on its way costs no sleep.
const SPINS: u32 = 16;
/// The length of one spin.
const SPIN: Duration = Duration::from_micros(1);

/// The state of one wait.
#[derive(Debug)]
pub(crate) struct Backoff {
    spins: u32,
    sleep: Duration,
}

impl Backoff {
    pub(crate) fn new() -> Self {
        Backoff {
            spins: 0,
            sleep: FIRST,
        }
    }

    /// Waits a little, longer each time.
    pub(crate) fn wait(&mut self) {
        if self.spins < SPINS {
            self.spins += 1;
            let start = std::time::Instant::now();
            while start.elapsed() < SPIN {
                std::hint::spin_loop();
            }
            return;
        }
        std::thread::sleep(self.sleep);
        self.sleep = (self.sleep * 2).min(LAST);
    }

    /// The next sleep (for tests).
    #[cfg(test)]
    fn next_sleep(&self) -> Duration {
        self.sleep
    }
}

/// Polls `f` until it returns `Some`.
pub(crate) fn poll<T>(mut f: impl FnMut() -> Option<T>) -> T {
    let mut backoff = Backoff::new();
    loop {
        if let Some(v) = f() {
            return v;
        }
        backoff.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_a_millisecond_and_stops() {
        let mut b = Backoff::new();
        for _ in 0..SPINS {
            b.wait();
        }
        assert_eq!(b.next_sleep(), FIRST);
        for _ in 0..30 {
            b.wait();
        }
        assert_eq!(b.next_sleep(), LAST);
    }

    #[test]
    fn poll_returns_the_first_some() {
        let mut n = 0;
        let v = poll(|| {
            n += 1;
            (n == 20).then_some(n * 2)
        });
        assert_eq!(v, 40);
    }
}
