//! The root's doorbell: how the processes on the root's node wake its main thread when they
//! send it something, so that it need not poll the network a thousand times a second.
//!
//! MPI cannot wake a thread that waits for a message without spinning a core, so the root's
//! main thread polls. Polling once a millisecond cost about 1.5 % of a core in wake-ups, and
//! each wake-up took the core from a render thread (which then waited for it: 2-4 % of the
//! run on two cores). A process on the root's node rings the doorbell, a datagram on a
//! Linux abstract Unix socket, right after each message it sends; the root listens on a
//! thread of its own that sleeps in the kernel until a datagram comes and then wakes the main
//! thread. The root still polls quickly while a message is arriving in steps, and at most
//! [`QUIET_WAIT`] apart otherwise, so a lost ring (a full socket queue, say) costs a little
//! time, never progress. Processes on other nodes (or in another network namespace) cannot
//! reach the socket: with any of them in the run, the root polls as before.

use std::time::Duration;

/// The longest the root waits between polls when every other process rings.
pub(crate) const QUIET_WAIT: Duration = Duration::from_millis(10);

/// A process's end of the doorbell.
#[derive(Debug, Default)]
pub(crate) enum Doorbell {
    /// No doorbell: a single process, a platform without abstract sockets, or a failure to
    /// make one.
    #[default]
    None,
    /// The root's socket; `all_ring` when every other process can ring it.
    Root { bell: imp::Listener, all_ring: bool },
    /// Another process's way to ring the root's socket.
    Member(imp::Ringer),
}

impl Doorbell {
    /// Collective over `comm`: the root makes a socket, every other process tries to reach it,
    /// and the root learns whether all could. Never fails: without a doorbell the root polls.
    pub(crate) fn new(comm: &prism_comm::Communicator) -> Doorbell {
        if comm.size() == 1 {
            return Doorbell::None;
        }
        let listener = comm.is_root().then(imp::Listener::bind).flatten();
        let name: Option<String> = listener.as_ref().map(|l| l.name().to_string());
        let name = match comm.broadcast(0, comm.is_root().then_some(name)) {
            Ok(n) => n,
            Err(_) => return Doorbell::None,
        };
        let ringer = match (&name, comm.is_root()) {
            (Some(n), false) => imp::Ringer::reach(n),
            _ => None,
        };
        let reached = comm.is_root() || ringer.is_some();
        let all = match comm.all_gather(&reached) {
            Ok(all) => all,
            Err(_) => return Doorbell::None,
        };
        match (listener, ringer) {
            (Some(bell), _) => {
                // The other processes' first rings were only to find out whether they reach.
                bell.drain();
                Doorbell::Root {
                    bell,
                    all_ring: all.iter().all(|&r| r),
                }
            }
            (None, Some(r)) => Doorbell::Member(r),
            _ => Doorbell::None,
        }
    }

    /// Rings the root's doorbell, if this process has a way to.
    pub(crate) fn ring(&self) {
        if let Doorbell::Member(r) = self {
            r.ring();
        }
    }

    /// The root's listener, when every other process rings it.
    pub(crate) fn listener(&self) -> Option<&imp::Listener> {
        match self {
            Doorbell::Root {
                bell,
                all_ring: true,
            } => Some(bell),
            _ => None,
        }
    }
}

/// Stops a listening thread when dropped (also when its scope unwinds, which would otherwise
/// wait forever to join it).
pub(crate) struct StopListening<'a> {
    pub(crate) bell: &'a imp::Listener,
    pub(crate) stop: &'a std::sync::atomic::AtomicBool,
}

impl Drop for StopListening<'_> {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.bell.ring_self();
    }
}

#[cfg(target_os = "linux")]
pub(crate) mod imp {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{SystemTime, UNIX_EPOCH};

    /// The root's socket, bound to an abstract name (nothing in the file system to clean up:
    /// the name goes with the socket).
    #[derive(Debug)]
    pub(crate) struct Listener {
        socket: UnixDatagram,
        addr: SocketAddr,
        name: String,
    }

    impl Listener {
        pub(crate) fn bind() -> Option<Listener> {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let name = format!("prism-engines-{}-{nanos}", std::process::id());
            let addr = SocketAddr::from_abstract_name(name.as_bytes()).ok()?;
            let socket = UnixDatagram::bind_addr(&addr).ok()?;
            Some(Listener { socket, addr, name })
        }

        pub(crate) fn name(&self) -> &str {
            &self.name
        }

        /// Reads every datagram waiting, without blocking.
        pub(crate) fn drain(&self) {
            if self.socket.set_nonblocking(true).is_ok() {
                let mut buf = [0u8; 8];
                while self.socket.recv(&mut buf).is_ok() {}
            }
            let _ = self.socket.set_nonblocking(false);
        }

        /// Calls `wake` after every ring until `stop` is set (and the socket rung once more,
        /// by [`super::StopListening`]). Runs on a thread of its own.
        pub(crate) fn listen(&self, stop: &AtomicBool, wake: impl Fn()) {
            let mut buf = [0u8; 8];
            while !stop.load(Ordering::Relaxed) {
                if self.socket.recv(&mut buf).is_err() {
                    // Not expected on a bound datagram socket; the root still polls.
                    return;
                }
                if !stop.load(Ordering::Relaxed) {
                    wake();
                }
            }
        }

        /// Rings this socket from its own process (to end [`Listener::listen`]).
        pub(crate) fn ring_self(&self) {
            let _ = self.socket.send_to_addr(&[1], &self.addr);
        }
    }

    /// An unbound socket and the root's address.
    #[derive(Debug)]
    pub(crate) struct Ringer {
        socket: UnixDatagram,
        addr: SocketAddr,
    }

    impl Ringer {
        /// Rings `name` once; `None` if it cannot be reached from here.
        pub(crate) fn reach(name: &str) -> Option<Ringer> {
            let addr = SocketAddr::from_abstract_name(name.as_bytes()).ok()?;
            let socket = UnixDatagram::unbound().ok()?;
            // A ring must never block a process: with the root's queue full it is dropped,
            // and the root, which has datagrams to read, wakes anyway.
            socket.set_nonblocking(true).ok()?;
            socket.send_to_addr(&[0], &addr).ok()?;
            Some(Ringer { socket, addr })
        }

        pub(crate) fn ring(&self) {
            let _ = self.socket.send_to_addr(&[0], &self.addr);
        }
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) mod imp {
    use std::sync::atomic::AtomicBool;

    /// No abstract sockets here: never made, so the root polls.
    #[derive(Debug)]
    pub(crate) enum Listener {}

    impl Listener {
        pub(crate) fn bind() -> Option<Listener> {
            None
        }
        pub(crate) fn name(&self) -> &str {
            match *self {}
        }
        pub(crate) fn drain(&self) {
            match *self {}
        }
        pub(crate) fn listen(&self, _stop: &AtomicBool, _wake: impl Fn()) {
            match *self {}
        }
        pub(crate) fn ring_self(&self) {
            match *self {}
        }
    }

    #[derive(Debug)]
    pub(crate) enum Ringer {}

    impl Ringer {
        pub(crate) fn reach(_name: &str) -> Option<Ringer> {
            None
        }
        pub(crate) fn ring(&self) {
            match *self {}
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::imp::{Listener, Ringer};
    use super::StopListening;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn a_ring_wakes_the_listener_and_dropping_the_guard_ends_it() {
        let bell = Listener::bind().expect("an abstract socket");
        let ringer = Ringer::reach(bell.name()).expect("the root's socket is reachable");
        // The probe ring of `reach` is not a wake-up.
        bell.drain();
        let stop = AtomicBool::new(false);
        let wakes = AtomicUsize::new(0);
        let (tx, rx) = mpsc::channel();
        std::thread::scope(|s| {
            s.spawn(|| {
                bell.listen(&stop, || {
                    wakes.fetch_add(1, Ordering::Relaxed);
                    let _ = tx.send(());
                })
            });
            ringer.ring();
            rx.recv_timeout(Duration::from_secs(30))
                .expect("the ring reached the listener");
            assert_eq!(wakes.load(Ordering::Relaxed), 1);
            // Ends the listener; the scope would hang here if it did not.
            drop(StopListening {
                bell: &bell,
                stop: &stop,
            });
        });
        assert_eq!(
            wakes.load(Ordering::Relaxed),
            1,
            "the stopping ring is no wake-up"
        );
    }

    #[test]
    fn a_name_nobody_listens_on_cannot_be_reached() {
        assert!(Ringer::reach("prism-engines-nobody-listens-here").is_none());
    }
}
