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

/// A matched message on its way in.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// Already complete (the one-process world's queue).
    Ready(Vec<u8>, Status),
    #[cfg(feature = "mpi")]
    Mpi(crate::mpi_backend::PendingRecv),
}

impl Incoming {
    fn status(&self) -> Status {
        match self {
            Incoming::Ready(_, st) => *st,
            #[cfg(feature = "mpi")]
            Incoming::Mpi(p) => p.status(),
        }
    }

    /// The bytes once they have all arrived; never blocks.
    fn try_take(&mut self) -> Result<Option<(Vec<u8>, Status)>> {
        match self {
            Incoming::Ready(bytes, st) => Ok(Some((std::mem::take(bytes), *st))),
            #[cfg(feature = "mpi")]
            Incoming::Mpi(p) => Ok(p.test()?.then(|| p.take())),
        }
    }

    fn wait(self) -> Result<(Vec<u8>, Status)> {
        match self {
            Incoming::Ready(bytes, st) => Ok((bytes, st)),
            #[cfg(feature = "mpi")]
            Incoming::Mpi(p) => p.wait(),
        }
    }
}

/// A receive in progress. Until it has matched a message, each test looks for one; once
/// matched, tests move that message along without waiting for its sender, and [`test`]
/// returns it when it has all arrived. Dropping a request in the middle of a message waits
/// for the rest, so the buffer is never freed under MPI.
///
/// [`test`]: RecvRequest::test
#[must_use = "a receive request does nothing until tested or waited on"]
pub struct RecvRequest<T> {
    comm: Communicator,
    source: Source,
    tag: TagSel,
    incoming: Option<Incoming>,
    _value: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for RecvRequest<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvRequest")
            .field("source", &self.source)
            .field("tag", &self.tag)
            .field("matched", &self.matched())
            .finish()
    }
}

impl<T> RecvRequest<T> {
    /// The status (source, tag, size) of the message this request has matched and is still
    /// receiving; `None` before a match and after the value was returned.
    pub fn matched(&self) -> Option<Status> {
        self.incoming.as_ref().map(Incoming::status)
    }
}

impl<T: DeserializeOwned> RecvRequest<T> {
    pub(crate) fn new(comm: Communicator, source: Source, tag: TagSel) -> Self {
        RecvRequest {
            comm,
            source,
            tag,
            incoming: None,
            _value: PhantomData,
        }
    }

    /// The value and its status once a matching message has wholly arrived; `Ok(None)` if not
    /// yet. Never blocks. After `Some`, the request looks for another message.
    pub fn test(&mut self) -> Result<Option<(T, Status)>> {
        self.comm.check_selection("irecv", self.source, self.tag)?;
        if self.incoming.is_none() {
            self.incoming = self.comm.start_recv(self.source, self.tag)?;
        }
        let Some(incoming) = self.incoming.as_mut() else {
            return Ok(None);
        };
        let Some((bytes, st)) = incoming.try_take()? else {
            return Ok(None);
        };
        self.incoming = None;
        let value = self.comm.decode("irecv", &bytes, st.source, st.tag)?;
        Ok(Some((value, st)))
    }

    /// Waits for the message (polling with backoff).
    pub fn wait(mut self) -> Result<(T, Status)> {
        match self.incoming.take() {
            Some(incoming) => {
                let (bytes, st) = incoming.wait()?;
                Ok((self.comm.decode("irecv", &bytes, st.source, st.tag)?, st))
            }
            None => self.comm.recv(self.source, self.tag),
        }
    }
}
