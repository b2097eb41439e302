//! Non-blocking sends and receives that own their buffers, so a request can be stored, moved
//! and dropped at any time (unlike an rsmpi `Request`, which panics when dropped unfinished).

use std::marker::PhantomData;

use serde::de::DeserializeOwned;

use crate::{Communicator, Result, Source, Status, TagSel};

/// A send in progress. It owns the encoded message; dropping it waits for completion.
#[derive(Debug)]
#[must_use = "a send request completes when tested, waited on or dropped"]
pub struct SendRequest {
    state: SendState,
}

#[derive(Debug)]
enum SendState {
    Done,
    #[cfg(feature = "mpi")]
    Mpi(crate::mpi_backend::PendingSend),
}

impl SendRequest {
    pub(crate) fn done() -> Self {
        SendRequest {
            state: SendState::Done,
        }
    }

    #[cfg(feature = "mpi")]
    pub(crate) fn mpi(pending: crate::mpi_backend::PendingSend) -> Self {
        SendRequest {
            state: SendState::Mpi(pending),
        }
    }

    /// Whether the send has completed (its buffer is free). Never blocks.
    ///
    /// # Panics
    /// With MPI, on a thread other than the one that initialised MPI.
    pub fn test(&mut self) -> bool {
        match &mut self.state {
            SendState::Done => true,
            #[cfg(feature = "mpi")]
            SendState::Mpi(p) => {
                if p.test() {
                    self.state = SendState::Done;
                    true
                } else {
                    false
                }
            }
        }
    }

    /// Waits (polling with backoff) until the send has completed. With MPI, on a thread that
    /// may not call MPI, it returns at once and leaks the buffer (MPI may still read it); so
    /// does dropping the request there.
    pub fn wait(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        match std::mem::replace(&mut self.state, SendState::Done) {
            SendState::Done => {}
            #[cfg(feature = "mpi")]
            SendState::Mpi(p) => p.wait(),
        }
    }
}

impl Drop for SendRequest {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A receive in progress: a matching message is looked for each time it is tested.
#[must_use = "a receive request does nothing until tested or waited on"]
pub struct RecvRequest<T> {
    comm: Communicator,
    source: Source,
    tag: TagSel,
    _value: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for RecvRequest<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvRequest")
            .field("source", &self.source)
            .field("tag", &self.tag)
            .finish()
    }
}

impl<T: DeserializeOwned> RecvRequest<T> {
    pub(crate) fn new(comm: Communicator, source: Source, tag: TagSel) -> Self {
        RecvRequest {
            comm,
            source,
            tag,
            _value: PhantomData,
        }
    }

    /// The value and its status if a matching message has arrived; `Ok(None)` if not yet.
    /// Never blocks. After `Some`, further tests look for another message.
    pub fn test(&mut self) -> Result<Option<(T, Status)>> {
        self.comm.try_recv(self.source, self.tag)
    }

    /// Waits for the message (polling with backoff).
    pub fn wait(self) -> Result<(T, Status)> {
        self.comm.recv(self.source, self.tag)
    }
}
