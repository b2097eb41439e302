//! Communicators: ranks, typed point-to-point messages and collectives.
//!
//! Values travel as postcard bytes, so any serde type can be sent and the receiver learns the
//! size by probing first. Every wait polls with backoff (see `backoff`), so a rank waiting on
//! the network leaves its core to worker threads.

use std::any::type_name;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::local::LocalComm;
use crate::request::{Incoming, RecvRequest, SendRequest};
use crate::{CommError, Result};

/// The first byte of a rank's part of a collective: a value's bytes follow.
const PART_VALUE: u8 = 0;
/// The first byte of a rank's part of a collective: why it holds no value follows.
const PART_FAILED: u8 = 1;

/// Which sender a receive or probe accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Any rank.
    Any,
    /// Only this rank.
    Rank(usize),
}

impl From<usize> for Source {
    fn from(rank: usize) -> Self {
        Source::Rank(rank)
    }
}

/// Which tag a receive or probe accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagSel {
    /// Any tag.
    Any,
    /// Only this tag.
    Tag(i32),
}

impl From<i32> for TagSel {
    fn from(tag: i32) -> Self {
        TagSel::Tag(tag)
    }
}

impl TagSel {
    pub(crate) fn matches(self, tag: i32) -> bool {
        match self {
            TagSel::Any => true,
            TagSel::Tag(t) => t == tag,
        }
    }
}

/// What a probe or receive found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// The sender's rank in this communicator.
    pub source: usize,
    /// The message tag.
    pub tag: i32,
    /// The size of the encoded message in bytes.
    pub bytes: usize,
}

/// The transport under a communicator.
pub(crate) enum Backend {
    /// One process, no MPI.
    Local(LocalComm),
    /// A real MPI communicator.
    #[cfg(feature = "mpi")]
    Mpi(crate::mpi_backend::MpiComm),
}

pub(crate) struct Inner {
    pub(crate) backend: Backend,
    rank: usize,
    size: usize,
}

/// A group of processes that exchange messages: a handle to an MPI communicator, or the
/// one-process world without MPI.
///
/// Cloning is cheap (an `Arc`). A `Communicator` is `Send + Sync` so it can live in structs
/// shared with worker threads, but **with MPI, only the thread that called [`crate::init`]
/// may call its communication methods** (thread level `Funneled`): hand work to that thread
/// through channels. Calls from another thread return [`CommError::WrongThread`] (or panic,
/// for the methods that return no `Result`). Without MPI every method works from any thread.
#[derive(Clone)]
pub struct Communicator {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Communicator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Communicator")
            .field("rank", &self.rank())
            .field("size", &self.size())
            .field("mpi", &self.is_mpi())
            .finish()
    }
}

/// Whether `value` survives the encoding that messages use (postcard): encoded, then decoded
/// as `T`. A program tested in one process never sends anything, so a type that cannot travel
/// (an untagged or flattened serde enum, say) would otherwise fail only across processes;
/// calling this on one value in tests (or on the first result, as prism-tasking does) finds it
/// at once. The error is the encoder's or decoder's message.
pub fn check_round_trip<T: Serialize + DeserializeOwned>(
    value: &T,
) -> std::result::Result<(), String> {
    let bytes = postcard::to_stdvec(value).map_err(|e| format!("encoding: {e}"))?;
    postcard::from_bytes::<T>(&bytes)
        .map(drop)
        .map_err(|e| format!("decoding: {e}"))
}

impl Communicator {
    /// A fresh one-process communicator.
    pub(crate) fn local() -> Self {
        Communicator {
            inner: Arc::new(Inner {
                backend: Backend::Local(LocalComm::default()),
                rank: 0,
                size: 1,
            }),
        }
    }

    #[cfg(feature = "mpi")]
    pub(crate) fn from_mpi(comm: crate::mpi_backend::MpiComm) -> Self {
        let (rank, size) = (comm.rank(), comm.size());
        Communicator {
            inner: Arc::new(Inner {
                backend: Backend::Mpi(comm),
                rank,
                size,
            }),
        }
    }

    /// This process's rank, `0..size`.
    pub fn rank(&self) -> usize {
        self.inner.rank
    }

    /// The number of processes.
    pub fn size(&self) -> usize {
        self.inner.size
    }

    /// Whether this is rank 0.
    pub fn is_root(&self) -> bool {
        self.inner.rank == 0
    }

    /// Whether messages go through MPI (false for the one-process world).
    pub fn is_mpi(&self) -> bool {
        !matches!(self.inner.backend, Backend::Local(_))
    }

    /// Waits until every rank has called `barrier`.
    ///
    /// Fails when called from a thread other than the one that initialised MPI
    /// ([`CommError::WrongThread`]) or after the [`Universe`](crate::Universe) was dropped
    /// ([`CommError::Finalized`]).
    pub fn barrier(&self) -> Result<()> {
        match &self.inner.backend {
            Backend::Local(_) => Ok(()),
            #[cfg(feature = "mpi")]
            Backend::Mpi(m) => m.barrier(),
        }
    }

    /// Ends the whole job (every rank of every communicator) with exit code `code`.
    ///
    /// Call this on a fatal error instead of returning from `main`: a rank that returns while
    /// the others wait for it in a collective would leave them hanging.
    pub fn abort(&self, code: i32) -> ! {
        match &self.inner.backend {
            Backend::Local(_) => std::process::exit(code),
            #[cfg(feature = "mpi")]
            Backend::Mpi(m) => m.abort(code),
        }
    }

    // ---- argument checks ---------------------------------------------------------------

    fn check_rank(&self, op: &'static str, given: usize) -> Result<()> {
        if given < self.size() {
            Ok(())
        } else {
            Err(CommError::InvalidRank {
                rank: self.rank(),
                op,
                given,
                size: self.size(),
            })
        }
    }

    fn max_tag(&self) -> i32 {
        match &self.inner.backend {
            Backend::Local(_) => i32::MAX,
            #[cfg(feature = "mpi")]
            Backend::Mpi(m) => m.max_tag(),
        }
    }

    fn check_tag(&self, op: &'static str, tag: i32) -> Result<()> {
        let max = self.max_tag();
        if (0..=max).contains(&tag) {
            Ok(())
        } else {
            Err(CommError::InvalidTag {
                rank: self.rank(),
                op,
                tag,
                max,
            })
        }
    }

    pub(crate) fn check_selection(
        &self,
        op: &'static str,
        source: Source,
        tag: TagSel,
    ) -> Result<()> {
        if let Source::Rank(r) = source {
            self.check_rank(op, r)?;
        }
        if let TagSel::Tag(t) = tag {
            self.check_tag(op, t)?;
        }
        Ok(())
    }

    pub(crate) fn encode<T: Serialize + ?Sized>(
        &self,
        op: &'static str,
        value: &T,
    ) -> Result<Vec<u8>> {
        postcard::to_stdvec(value).map_err(|e| CommError::Serialize {
            rank: self.rank(),
            op,
            message: e.to_string(),
        })
    }

    pub(crate) fn decode<T: DeserializeOwned>(
        &self,
        op: &'static str,
        bytes: &[u8],
        source_rank: usize,
        tag: i32,
    ) -> Result<T> {
        postcard::from_bytes(bytes).map_err(|e| CommError::Deserialize {
            rank: self.rank(),
            op,
            source_rank,
            tag,
            bytes: bytes.len(),
            type_name: type_name::<T>(),
            message: e.to_string(),
        })
    }

    // ---- point to point ------------------------------------------------------------------

    /// Sends `value` to rank `dest` with `tag` (0 up to at least 32767). Returns once the
    /// buffer may be reused; waits by polling, not spinning.
    ///
    /// A send to this rank itself returns at once (the message waits for the matching receive),
    /// so `send` to oneself then `recv` works with any number of ranks.
    pub fn send<T: Serialize + ?Sized>(&self, dest: usize, tag: i32, value: &T) -> Result<()> {
        #[cfg(feature = "mpi")]
        if let Backend::Mpi(m) = &self.inner.backend {
            if dest == self.rank() {
                self.check_tag("send", tag)?;
                return m.send_to_self(tag, self.encode("send", value)?);
            }
        }
        self.isend(dest, tag, value)?.wait();
        Ok(())
    }

    /// Starts sending `value` to `dest`; the request owns the encoded bytes. With MPI, waiting
    /// on a send to oneself before receiving it may wait forever (as in MPI itself): receive
    /// first, or use [`Communicator::send`], which handles that case.
    pub fn isend<T: Serialize + ?Sized>(
        &self,
        dest: usize,
        tag: i32,
        value: &T,
    ) -> Result<SendRequest> {
        self.check_rank("isend", dest)?;
        self.check_tag("isend", tag)?;
        let bytes = self.encode("isend", value)?;
        match &self.inner.backend {
            Backend::Local(l) => {
                l.push(tag, bytes);
                Ok(SendRequest::done())
            }
            #[cfg(feature = "mpi")]
            Backend::Mpi(m) => m.isend(self.clone(), dest, tag, bytes),
        }
    }

    /// Receives a value of unknown size: probes for a matching message, then receives it.
    pub fn recv<T: DeserializeOwned>(
        &self,
        source: impl Into<Source>,
        tag: impl Into<TagSel>,
    ) -> Result<(T, Status)> {
        let (source, tag) = (source.into(), tag.into());
        self.check_selection("recv", source, tag)?;
        let (bytes, st) = match &self.inner.backend {
            Backend::Local(l) => l
                .take(tag, true)
                .ok_or_else(|| self.internal("recv", "the local queue lost a message"))?,
            #[cfg(feature = "mpi")]
            Backend::Mpi(m) => m.recv_bytes(self, source, tag)?,
        };
        Ok((self.decode("recv", &bytes, st.source, st.tag)?, st))
    }

    /// Receives a matching message if one has arrived, without waiting.
    pub fn try_recv<T: DeserializeOwned>(
        &self,
        source: impl Into<Source>,
        tag: impl Into<TagSel>,
    ) -> Result<Option<(T, Status)>> {
        let (source, tag) = (source.into(), tag.into());
        self.check_selection("try_recv", source, tag)?;
        self.try_recv_checked(source, tag)
    }

    pub(crate) fn try_recv_checked<T: DeserializeOwned>(
        &self,
        source: Source,
        tag: TagSel,
    ) -> Result<Option<(T, Status)>> {
        let got = match &self.inner.backend {
            Backend::Local(l) => l.take(tag, false),
            #[cfg(feature = "mpi")]
            Backend::Mpi(m) => m.try_recv_bytes(self, source, tag)?,
        };
        #[cfg(not(feature = "mpi"))]
        let _ = source;
        match got {
            None => Ok(None),
            Some((bytes, st)) => Ok(Some((
                self.decode("try_recv", &bytes, st.source, st.tag)?,
                st,
            ))),
        }
    }

    /// Starts matching and receiving a message, if one has arrived, without waiting for the
    /// whole of it (a large message may need several steps with its sender).
    pub(crate) fn start_recv(&self, source: Source, tag: TagSel) -> Result<Option<Incoming>> {
        #[cfg(not(feature = "mpi"))]
        let _ = source;
        match &self.inner.backend {
            Backend::Local(l) => Ok(l.take(tag, false).map(|(b, st)| Incoming::Ready(b, st))),
            #[cfg(feature = "mpi")]
            Backend::Mpi(m) => Ok(m.start_recv(self, source, tag)?.map(Incoming::Mpi)),
        }
    }

    /// Starts a receive that completes in [`RecvRequest::test`] or [`RecvRequest::wait`], so
    /// the caller can keep computing. The message is matched when the request is first tested
    /// and finds one, not when the request is made: a blocking `recv` in between with the same
    /// selection may take it. Once matched, later tests only move that message along: a
    /// large message never makes a test wait for its sender.
    pub fn irecv<T: DeserializeOwned>(
        &self,
        source: impl Into<Source>,
        tag: impl Into<TagSel>,
    ) -> RecvRequest<T> {
        RecvRequest::new(self.clone(), source.into(), tag.into())
    }

    /// Waits for a matching message and returns its status without receiving it.
    ///
    /// # Panics
    /// On a source rank out of range or a negative tag (programming errors), and with MPI when
    /// called from a thread other than the one that initialised MPI.
    pub fn probe(&self, source: impl Into<Source>, tag: impl Into<TagSel>) -> Status {
        let (source, tag) = (source.into(), tag.into());
        self.check_selection("probe", source, tag)
            .unwrap_or_else(|e| panic!("{e}"));
        match &self.inner.backend {
            Backend::Local(l) => l
                .probe(tag, true)
                .unwrap_or_else(|| panic!("{}", self.internal("probe", "woke without a message"))),
            #[cfg(feature = "mpi")]
            Backend::Mpi(m) => m.probe(source, tag).unwrap_or_else(|e| panic!("{e}")),
        }
    }

    /// The status of a matching message if one has arrived.
    ///
    /// # Panics
    /// As [`Communicator::probe`].
    pub fn try_probe(&self, source: impl Into<Source>, tag: impl Into<TagSel>) -> Option<Status> {
        let (source, tag) = (source.into(), tag.into());
        self.check_selection("try_probe", source, tag)
            .unwrap_or_else(|e| panic!("{e}"));
        match &self.inner.backend {
            Backend::Local(l) => l.probe(tag, false),
            #[cfg(feature = "mpi")]
            Backend::Mpi(m) => m.try_probe(source, tag).unwrap_or_else(|e| panic!("{e}")),
        }
    }

    fn internal(&self, op: &'static str, message: &str) -> CommError {
        CommError::InvalidArgument {
            rank: self.rank(),
            op,
            message: message.to_string(),
        }
    }

    // ---- collectives -----------------------------------------------------------------------

    /// Broadcasts the root's value to every rank. The root passes `Some(value)`, the others
    /// `None`. Every rank gets the same outcome: the value as decoded from the bytes sent (the
    /// root decodes them too, so a value that does not survive the trip fails everywhere), or
    /// one error when the root passes `None` or its value cannot be encoded (none hangs).
    pub fn broadcast<T: Serialize + DeserializeOwned>(
        &self,
        root: usize,
        value: Option<T>,
    ) -> Result<T> {
        self.check_rank("broadcast", root)?;
        let no_value = || CommError::Peer {
            rank: self.rank(),
            op: "broadcast",
            failures: vec![(root, "the root passed no value".to_string())],
        };
        // One rank too goes through the bytes: a value that fails there fails alike on one.
        let part = match (self.rank() == root, &value) {
            (true, Some(v)) => Some(self.encode_part("broadcast", v)),
            _ => None,
        };
        drop(value);
        match self.broadcast_bytes(root, part.as_deref())? {
            Some(part) => self.decode_part("broadcast", &part, root),
            None => Err(no_value()),
        }
    }

    /// Broadcasts bytes from `root` (which passes `Some`); `None` from the root reaches every
    /// rank as `None`.
    #[cfg_attr(not(feature = "mpi"), allow(unused_variables))]
    pub(crate) fn broadcast_bytes(
        &self,
        root: usize,
        bytes: Option<&[u8]>,
    ) -> Result<Option<Vec<u8>>> {
        match &self.inner.backend {
            Backend::Local(_) => Ok(bytes.map(<[u8]>::to_vec)),
            #[cfg(feature = "mpi")]
            Backend::Mpi(m) => m.broadcast_bytes(root, bytes),
        }
    }

    /// Broadcasts `buf` in place from `root`: every rank passes a buffer of the same length.
    pub(crate) fn broadcast_in_place(&self, root: usize, buf: &mut [u8]) -> Result<()> {
        match &self.inner.backend {
            Backend::Local(_) => {
                let _ = (root, buf);
                Ok(())
            }
            #[cfg(feature = "mpi")]
            Backend::Mpi(m) => m.broadcast_in_place(root, buf),
        }
    }

    #[cfg_attr(not(feature = "mpi"), allow(unused_variables))]
    fn gather_bytes(&self, root: Option<usize>, bytes: Vec<u8>) -> Result<Option<Vec<Vec<u8>>>> {
        match &self.inner.backend {
            Backend::Local(_) => Ok(Some(vec![bytes])),
            #[cfg(feature = "mpi")]
            Backend::Mpi(m) => m.gather_bytes(root, &bytes),
        }
    }

    /// One rank's part of a collective: a marker byte, then the value's bytes or, when the
    /// value cannot be encoded, why. A rank whose value fails to encode still takes part, so
    /// no peer waits for it, and every rank learns of the failure.
    fn encode_part<T: Serialize + ?Sized>(&self, op: &'static str, value: &T) -> Vec<u8> {
        postcard::to_extend(value, vec![PART_VALUE]).unwrap_or_else(|e| {
            let why = CommError::Serialize {
                rank: self.rank(),
                op,
                message: e.to_string(),
            };
            let mut part = vec![PART_FAILED];
            part.extend_from_slice(why.to_string().as_bytes());
            part
        })
    }

    /// The value in `part` from rank `from`, or the failure it carries.
    fn decode_part<T: DeserializeOwned>(
        &self,
        op: &'static str,
        part: &[u8],
        from: usize,
    ) -> Result<T> {
        match part.split_first() {
            Some((&PART_VALUE, bytes)) => self.decode(op, bytes, from, -1),
            _ => Err(self.part_failure(op, part, from)),
        }
    }

    /// The error a part that holds no value stands for.
    fn part_failure(&self, op: &'static str, part: &[u8], from: usize) -> CommError {
        match part.split_first() {
            Some((&PART_FAILED, why)) => CommError::Peer {
                rank: self.rank(),
                op,
                failures: vec![(from, String::from_utf8_lossy(why).into_owned())],
            },
            _ => self.internal(op, &format!("a malformed part from rank {from}")),
        }
    }

    /// Every part's value, in rank order; when some ranks could not encode theirs, one error
    /// naming all of them (the same on every rank that holds the same parts).
    fn decode_parts<T: DeserializeOwned>(
        &self,
        op: &'static str,
        parts: Vec<Vec<u8>>,
    ) -> Result<Vec<T>> {
        let failures: Vec<(usize, String)> = parts
            .iter()
            .enumerate()
            .filter_map(|(r, p)| match p.split_first() {
                Some((&PART_FAILED, why)) => Some((r, String::from_utf8_lossy(why).into_owned())),
                _ => None,
            })
            .collect();
        if !failures.is_empty() {
            return Err(CommError::Peer {
                rank: self.rank(),
                op,
                failures,
            });
        }
        parts
            .iter()
            .enumerate()
            .map(|(r, p)| self.decode_part(op, p, r))
            .collect()
    }

    /// Gathers every rank's value on `root`: `Some(values in rank order)` there, `None`
    /// elsewhere. A rank whose value cannot be encoded still takes part and returns its error;
    /// the root then returns an error naming every such rank.
    pub fn gather<T: Serialize + DeserializeOwned>(
        &self,
        root: usize,
        value: &T,
    ) -> Result<Option<Vec<T>>> {
        self.check_rank("gather", root)?;
        let part = self.encode_part("gather", value);
        let own_failure = (part.first() == Some(&PART_FAILED)).then(|| part.clone());
        match (self.gather_bytes(Some(root), part)?, own_failure) {
            (Some(parts), _) => self.decode_parts("gather", parts).map(Some),
            (None, Some(part)) => Err(self.part_failure("gather", &part, self.rank())),
            (None, None) => Ok(None),
        }
    }

    /// Every rank's value, in rank order, on every rank. When some rank's value cannot be
    /// encoded, every rank returns the same error naming it.
    pub fn all_gather<T: Serialize + DeserializeOwned>(&self, value: &T) -> Result<Vec<T>> {
        let part = self.encode_part("all_gather", value);
        let parts = self
            .gather_bytes(None, part)?
            .ok_or_else(|| self.internal("all_gather", "no result on a rank"))?;
        self.decode_parts("all_gather", parts)
    }

    /// Every rank's `values` (the same count on every rank), rank after rank, on every rank.
    fn all_gather_u64s(&self, values: &[u64]) -> Result<Vec<u64>> {
        match &self.inner.backend {
            Backend::Local(_) => Ok(values.to_vec()),
            #[cfg(feature = "mpi")]
            Backend::Mpi(m) => m.all_gather_u64s(values),
        }
    }

    /// Checks together that every rank passed a slice of the same length and, for a sum to a
    /// root, the same root: MPI does not, and a mismatch gives some ranks partial sums and
    /// aborts the job on another (MPI_ERR_TRUNCATE). Every rank returns the same error.
    fn check_sum_args(&self, op: &'static str, root: Option<usize>, len: usize) -> Result<()> {
        if self.size() == 1 {
            return root.map_or(Ok(()), |r| self.check_rank(op, r));
        }
        let root_code = root.map_or(u64::MAX, |r| r as u64);
        let all = self.all_gather_u64s(&[len as u64, root_code])?;
        let lens: Vec<u64> = all.iter().step_by(2).copied().collect();
        let roots: Vec<u64> = all.iter().skip(1).step_by(2).copied().collect();
        let invalid = |message| CommError::InvalidArgument {
            rank: self.rank(),
            op,
            message,
        };
        if let Some(list) = disagreement(&roots) {
            return Err(invalid(format!(
                "the ranks passed different roots ({list}); every rank must pass the same rank \
                 of a communicator of size {}",
                self.size()
            )));
        }
        if let Some(r) = root {
            self.check_rank(op, r)?;
        }
        if let Some(list) = disagreement(&lens) {
            return Err(invalid(format!(
                "the ranks passed slices of different lengths ({list}); every rank must pass \
                 the same length"
            )));
        }
        Ok(())
    }

    /// Replaces `data` on every rank by the element-wise sum over all ranks (SKIRT's
    /// sumToAll). Every rank passes a slice of the same length (checked: every rank returns
    /// an error otherwise); any length works (long slices go in pieces below MPI's
    /// 2^31-element limit).
    pub fn sum_to_all_f64(&self, data: &mut [f64]) -> Result<()> {
        self.check_sum_args("sum_to_all_f64", None, data.len())?;
        match &self.inner.backend {
            Backend::Local(_) => Ok(()),
            #[cfg(feature = "mpi")]
            Backend::Mpi(m) => m.sum_f64(None, data, crate::pieces::SUM_PIECE),
        }
    }

    /// As [`Communicator::sum_to_all_f64`], for `u64` (wrapping on overflow).
    pub fn sum_to_all_u64(&self, data: &mut [u64]) -> Result<()> {
        self.check_sum_args("sum_to_all_u64", None, data.len())?;
        self.sum_to_all_u64_unchecked(data, crate::pieces::SUM_PIECE)
    }

    #[cfg_attr(not(feature = "mpi"), allow(unused_variables))]
    fn sum_to_all_u64_unchecked(&self, data: &mut [u64], max_piece: usize) -> Result<()> {
        match &self.inner.backend {
            Backend::Local(_) => Ok(()),
            #[cfg(feature = "mpi")]
            Backend::Mpi(m) => m.sum_u64(None, data, max_piece),
        }
    }

    /// Replaces `data` on `root` by the element-wise sum over all ranks (SKIRT's sumToRoot).
    /// The other ranks' slices are left unchanged. Every rank passes the same root and a
    /// slice of the same length (checked, as for [`Communicator::sum_to_all_f64`]).
    pub fn sum_to_root_f64(&self, root: usize, data: &mut [f64]) -> Result<()> {
        self.check_sum_args("sum_to_root_f64", Some(root), data.len())?;
        match &self.inner.backend {
            Backend::Local(_) => Ok(()),
            #[cfg(feature = "mpi")]
            Backend::Mpi(m) => m.sum_f64(Some(root), data, crate::pieces::SUM_PIECE),
        }
    }

    /// As [`Communicator::sum_to_root_f64`], for `u64`.
    pub fn sum_to_root_u64(&self, root: usize, data: &mut [u64]) -> Result<()> {
        self.check_sum_args("sum_to_root_u64", Some(root), data.len())?;
        match &self.inner.backend {
            Backend::Local(_) => Ok(()),
            #[cfg(feature = "mpi")]
            Backend::Mpi(m) => m.sum_u64(Some(root), data, crate::pieces::SUM_PIECE),
        }
    }

    /// [`Communicator::sum_to_all_u64`] with messages of at most `max_piece` elements: for
    /// tests of the splitting that MPI's 2^31 count limit requires.
    #[doc(hidden)]
    pub fn sum_to_all_u64_in_pieces(&self, data: &mut [u64], max_piece: usize) -> Result<()> {
        self.check_sum_args("sum_to_all_u64_in_pieces", None, data.len())?;
        self.sum_to_all_u64_unchecked(data, max_piece)
    }

    /// Whether every rank passed `ok`; when some did not, every rank returns
    /// [`CommError::Peer`] naming them and their messages. Collective.
    pub(crate) fn agree(
        &self,
        op: &'static str,
        local: std::result::Result<(), String>,
    ) -> Result<()> {
        if self.size() == 1 {
            return local.map_err(|m| CommError::Peer {
                rank: self.rank(),
                op,
                failures: vec![(0, m)],
            });
        }
        let mut flag = [u64::from(local.is_err())];
        // One element on every rank by construction: no need to check the lengths.
        self.sum_to_all_u64_unchecked(&mut flag, 1)?;
        if flag[0] == 0 {
            return Ok(());
        }
        let all: Vec<Option<String>> = self.all_gather(&local.err())?;
        Err(CommError::Peer {
            rank: self.rank(),
            op,
            failures: all
                .into_iter()
                .enumerate()
                .filter_map(|(r, m)| m.map(|m| (r, m)))
                .collect(),
        })
    }

    /// The rank in `other` of each rank of this communicator (`None` for a rank not in
    /// `other`). Local: no other process takes part.
    pub(crate) fn ranks_in(&self, other: &Communicator) -> Result<Vec<Option<usize>>> {
        match (&self.inner.backend, &other.inner.backend) {
            #[cfg(feature = "mpi")]
            (Backend::Mpi(a), Backend::Mpi(b)) => a.ranks_in(b),
            // Every communicator a process holds contains that process: one of one process
            // maps it to its rank in `other`...
            _ if self.size() == 1 => Ok(vec![Some(other.rank())]),
            // ...and `other`, the one-process world, holds only this process.
            _ => Ok((0..self.size())
                .map(|r| (r == self.rank()).then_some(0))
                .collect()),
        }
    }

    // ---- new communicators ---------------------------------------------------------------

    /// Splits into one communicator per colour, ordered by `key` (ties by rank). A rank that
    /// passes `None` gets `None` (MPI_UNDEFINED). Collective; colours must be below 2^31
    /// (every rank returns an error otherwise).
    pub fn split(&self, colour: Option<u32>, key: i32) -> Result<Option<Communicator>> {
        let valid = colour.is_none_or(|c| c <= i32::MAX as u32);
        self.agree(
            "split",
            if valid {
                Ok(())
            } else {
                Err(format!("colour {colour:?} is not below 2^31"))
            },
        )?;
        match &self.inner.backend {
            Backend::Local(_) => {
                let _ = key;
                Ok(colour.map(|_| Communicator::local()))
            }
            #[cfg(feature = "mpi")]
            Backend::Mpi(m) => Ok(m.split(colour, key)?.map(Communicator::from_mpi)),
        }
    }

    /// The ranks of this communicator that share memory with this one (MPI_Comm_split_type
    /// with MPI_COMM_TYPE_SHARED), ordered by rank. Collective.
    pub fn split_shared(&self) -> Result<Communicator> {
        match &self.inner.backend {
            Backend::Local(_) => Ok(Communicator::local()),
            #[cfg(feature = "mpi")]
            Backend::Mpi(m) => Ok(Communicator::from_mpi(m.split_shared()?)),
        }
    }

    /// A new communicator with the same ranks whose messages never match this one's (for a
    /// library layer that must not see its caller's messages). Collective.
    pub fn duplicate(&self) -> Result<Communicator> {
        match &self.inner.backend {
            Backend::Local(_) => Ok(Communicator::local()),
            #[cfg(feature = "mpi")]
            Backend::Mpi(m) => Ok(Communicator::from_mpi(m.duplicate()?)),
        }
    }
}

/// `None` when every value is the same; otherwise the values of the ranks that differ from
/// rank 0's (the first few), for an error message.
fn disagreement(values: &[u64]) -> Option<String> {
    const SHOWN: usize = 8;
    let first = *values.first()?;
    let differ: Vec<usize> = (0..values.len()).filter(|&r| values[r] != first).collect();
    if differ.is_empty() {
        return None;
    }
    let show = |v: u64| {
        if v == u64::MAX {
            "none".to_string()
        } else {
            v.to_string()
        }
    };
    let mut list = vec![format!("rank 0: {}", show(first))];
    list.extend(
        differ
            .iter()
            .take(SHOWN)
            .map(|&r| format!("rank {r}: {}", show(values[r]))),
    );
    if differ.len() > SHOWN {
        list.push(format!("{} more differ", differ.len() - SHOWN));
    }
    Some(list.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Tile {
        id: u32,
        name: String,
        data: Vec<f64>,
    }

    fn world() -> Communicator {
        Communicator::local()
    }

    #[test]
    fn one_process_world() {
        let w = world();
        assert_eq!(
            (w.rank(), w.size(), w.is_root(), w.is_mpi()),
            (0, 1, true, false)
        );
        w.barrier().unwrap();
    }

    #[test]
    fn send_to_self_then_receive() {
        let w = world();
        let tile = Tile {
            id: 3,
            name: "a".into(),
            data: vec![1.5, -2.0],
        };
        w.send(0, 5, &tile).unwrap();
        w.send(0, 6, &()).unwrap();
        let st = w.probe(Source::Any, 6);
        assert_eq!((st.source, st.tag, st.bytes), (0, 6, 0));
        let (got, st): (Tile, _) = w.recv(0, 5).unwrap();
        assert_eq!(got, tile);
        assert_eq!(st.tag, 5);
        let ((), st) = w.recv(Source::Any, TagSel::Any).unwrap();
        assert_eq!(st.bytes, 0);
        assert!(w.try_probe(Source::Any, TagSel::Any).is_none());
        assert!(w.try_recv::<u8>(0, 1).unwrap().is_none());
    }

    #[test]
    fn unsized_values_send() {
        let w = world();
        w.send(0, 1, "hello").unwrap();
        w.send(0, 2, &[1u16, 2, 3][..]).unwrap();
        assert_eq!(w.recv::<String>(0, 1).unwrap().0, "hello");
        assert_eq!(w.recv::<Vec<u16>>(0, 2).unwrap().0, vec![1, 2, 3]);
    }

    #[test]
    fn bad_arguments_are_errors() {
        let w = world();
        assert!(matches!(
            w.send(1, 0, &1u8),
            Err(CommError::InvalidRank {
                given: 1,
                size: 1,
                ..
            })
        ));
        assert!(matches!(
            w.send(0, -1, &1u8),
            Err(CommError::InvalidTag { tag: -1, .. })
        ));
        assert!(matches!(
            w.recv::<u8>(2, 0),
            Err(CommError::InvalidRank { .. })
        ));
        assert!(matches!(
            w.broadcast::<u8>(1, Some(1)),
            Err(CommError::InvalidRank { .. })
        ));
        assert!(w.broadcast::<u8>(0, None).is_err());
    }

    #[test]
    fn wrong_type_names_source_and_tag() {
        let w = world();
        w.send(0, 9, &1u8).unwrap();
        let e = w.recv::<String>(0, 9).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("rank 0") && text.contains("tag 9") && text.contains("String"),
            "{text}"
        );
    }

    #[test]
    fn collectives_are_identities() {
        let w = world();
        assert_eq!(w.broadcast(0, Some(vec![1, 2])).unwrap(), vec![1, 2]);
        assert_eq!(w.gather(0, &7u8).unwrap(), Some(vec![7]));
        assert_eq!(
            w.all_gather(&"x".to_string()).unwrap(),
            vec!["x".to_string()]
        );
        let mut f = [1.5, 2.5];
        w.sum_to_all_f64(&mut f).unwrap();
        w.sum_to_root_f64(0, &mut f).unwrap();
        assert_eq!(f, [1.5, 2.5]);
        let mut u = [u64::MAX, 3];
        w.sum_to_all_u64(&mut u).unwrap();
        w.sum_to_root_u64(0, &mut u).unwrap();
        assert_eq!(u, [u64::MAX, 3]);
        assert!(w.sum_to_root_u64(1, &mut u).is_err());
    }

    #[test]
    fn split_gives_new_worlds() {
        let w = world();
        assert!(w.split(None, 0).unwrap().is_none());
        let s = w.split(Some(4), 0).unwrap().unwrap();
        assert_eq!((s.rank(), s.size()), (0, 1));
        // A new communicator does not see the old one's messages.
        w.send(0, 1, &1u8).unwrap();
        assert!(s.try_recv::<u8>(0, 1).unwrap().is_none());
        assert_eq!(w.split_shared().unwrap().size(), 1);
        assert_eq!(w.duplicate().unwrap().size(), 1);
        assert!(w.split(Some(u32::MAX), 0).is_err());
    }

    #[test]
    fn isend_and_irecv() {
        let w = world();
        let mut r = w.irecv::<Vec<u8>>(0, 3);
        assert!(r.test().unwrap().is_none());
        assert!(r.matched().is_none());
        let mut s = w.isend(0, 3, &vec![1u8; 10]).unwrap();
        assert!(s.test());
        s.wait();
        let (v, st) = r.wait().unwrap();
        assert_eq!(v, vec![1u8; 10]);
        assert_eq!(st.source, 0);
    }

    #[test]
    fn agree_reports_the_failure() {
        let w = world();
        assert!(w.agree("t", Ok(())).is_ok());
        let e = w.agree("t", Err("boom".into())).unwrap_err().to_string();
        assert!(e.contains("boom") && e.contains("rank 0"), "{e}");
    }

    #[test]
    fn disagreements_name_the_ranks_that_differ() {
        assert_eq!(disagreement(&[3, 3, 3]), None);
        assert_eq!(disagreement(&[]), None);
        assert_eq!(
            disagreement(&[3, 4, 3, u64::MAX]).unwrap(),
            "rank 0: 3, rank 1: 4, rank 3: none"
        );
        let many: Vec<u64> = (0..20).collect();
        assert!(disagreement(&many)
            .unwrap()
            .ends_with("rank 8: 8, 11 more differ"));
    }

    #[test]
    fn communicator_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Communicator>();
    }
}
