//! The MPI transport: every MPI call of prism is in this module.
//!
//! rsmpi (the `mpi` crate) initialises and finalises MPI; everything else goes through its raw
//! `mpi::ffi` bindings, because prism needs what rsmpi's safe layer does not give: requests
//! that own their buffers and never panic when dropped, matched probes with non-blocking
//! receives polled with backoff, non-blocking collectives (so no wait spins a core), one-sided
//! windows, and control over when communicators are freed (never after `MPI_Finalize`, never
//! from a thread that may not call MPI).

mod window;

use std::ffi::{c_int, c_void};
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::thread::ThreadId;

use mpi::ffi;

use crate::backoff::poll;
use crate::pieces::{pieces, reduce_in_pieces, BYTE_PIECE};
use crate::request::SendRequest;
use crate::{CommError, Communicator, Result, Source, Status, TagSel, ThreadLevel};

pub(crate) use window::TicketWindow;

/// What every MPI call needs to know about the (one) initialisation of this process.
struct State {
    thread: ThreadId,
    level: ThreadLevel,
    tag_ub: i32,
}

static STATE: OnceLock<State> = OnceLock::new();
/// Set just before MPI_Finalize: handles dropped later must not call MPI.
static FINALIZED: AtomicBool = AtomicBool::new(false);
/// Communicators dropped on a thread that may not call MPI, freed later by the MPI thread.
static DEFERRED: Mutex<Vec<RawComm>> = Mutex::new(Vec::new());

/// A raw communicator handle that may cross threads (see the SAFETY note on `MpiComm`).
struct RawComm(ffi::MPI_Comm);
// SAFETY: an MPI_Comm is an opaque handle (a pointer into the MPI library's own tables); it is
// only passed back to MPI, by the thread allowed to call MPI.
unsafe impl Send for RawComm {}

fn finalized() -> bool {
    FINALIZED.load(Ordering::Acquire)
}

/// Whether this thread may call MPI now.
fn on_mpi_thread() -> bool {
    match STATE.get() {
        Some(s) => s.level == ThreadLevel::Multiple || s.thread == std::thread::current().id(),
        None => false,
    }
}

/// Refuses MPI calls from the wrong thread or after finalisation.
fn guard(rank: usize, op: &'static str) -> Result<()> {
    if finalized() {
        return Err(CommError::Finalized { rank, op });
    }
    if !on_mpi_thread() {
        return Err(CommError::WrongThread {
            rank,
            op,
            level: STATE.get().map_or(ThreadLevel::Funneled, |s| s.level),
        });
    }
    Ok(())
}

fn check(rank: usize, op: &'static str, code: c_int) -> Result<()> {
    if code == ffi::MPI_SUCCESS as c_int {
        Ok(())
    } else {
        Err(CommError::Mpi { rank, op, code })
    }
}

fn to_raw(level: ThreadLevel) -> mpi::Threading {
    match level {
        ThreadLevel::Single => mpi::Threading::Single,
        ThreadLevel::Funneled => mpi::Threading::Funneled,
        ThreadLevel::Serialized => mpi::Threading::Serialized,
        ThreadLevel::Multiple => mpi::Threading::Multiple,
    }
}

fn from_raw(level: mpi::Threading) -> ThreadLevel {
    match level {
        mpi::Threading::Single => ThreadLevel::Single,
        mpi::Threading::Funneled => ThreadLevel::Funneled,
        mpi::Threading::Serialized => ThreadLevel::Serialized,
        mpi::Threading::Multiple => ThreadLevel::Multiple,
    }
}

/// Frees the communicators other threads dropped. Only on the MPI thread, before finalising.
fn free_deferred() {
    if finalized() || !on_mpi_thread() {
        return;
    }
    let pending = std::mem::take(&mut *DEFERRED.lock().unwrap_or_else(PoisonError::into_inner));
    for mut c in pending {
        // SAFETY: the handle came from MPI_Comm_split/_dup, was not freed before (it left its
        // MpiComm exactly once), MPI is live and this is the MPI thread.
        unsafe { ffi::MPI_Comm_free(&mut c.0) };
    }
}

// ---- the universe ----------------------------------------------------------------------------

/// MPI, initialised. Dropping it finalises MPI (or aborts the job while panicking).
pub(crate) struct MpiUniverse {
    universe: Option<mpi::environment::Universe>,
    level: ThreadLevel,
}

impl MpiUniverse {
    pub(crate) fn init(level: ThreadLevel) -> Result<(MpiUniverse, Communicator)> {
        if STATE.get().is_some()
            || mpi::environment::is_initialized()
            || mpi::environment::is_finalized()
        {
            return Err(CommError::AlreadyInitialized);
        }
        let (universe, granted) =
            mpi::initialize_with_threading(to_raw(level)).ok_or(CommError::AlreadyInitialized)?;
        let granted = from_raw(granted);
        if granted < level {
            drop(universe);
            return Err(CommError::ThreadLevelNotGranted {
                requested: level,
                granted,
            });
        }
        let tag_ub = query_tag_ub();
        if STATE
            .set(State {
                thread: std::thread::current().id(),
                level: granted,
                tag_ub,
            })
            .is_err()
        {
            return Err(CommError::AlreadyInitialized);
        }
        // SAFETY: MPI is initialised; MPI_COMM_WORLD is a predefined handle.
        let world = MpiComm::new(unsafe { ffi::RSMPI_COMM_WORLD }, false)?;
        Ok((
            MpiUniverse {
                universe: Some(universe),
                level: granted,
            },
            Communicator::from_mpi(world),
        ))
    }

    pub(crate) fn thread_level(&self) -> ThreadLevel {
        self.level
    }

    pub(crate) fn processor_name(&self) -> String {
        mpi::environment::processor_name().unwrap_or_else(|_| "unknown".to_string())
    }

    /// Opens a process set other than the world. Collective over `world`.
    pub(crate) fn open(&self, world: &Communicator, name: &str) -> Result<Option<Communicator>> {
        match name {
            crate::universe::SELF => {
                // SAFETY: MPI is initialised; MPI_COMM_SELF is a predefined handle.
                let me = MpiComm::new(unsafe { ffi::RSMPI_COMM_SELF }, false)?;
                Ok(Some(Communicator::from_mpi(me)))
            }
            crate::universe::NODE => world.split_shared().map(Some),
            _ => {
                let node = world.split_shared()?;
                world.split(node.is_root().then_some(0), world.rank() as i32)
            }
        }
    }
}

fn query_tag_ub() -> i32 {
    let mut value: *mut c_int = ptr::null_mut();
    let mut flag: c_int = 0;
    // SAFETY: MPI is initialised; for MPI_TAG_UB the attribute value is a pointer to an int
    // owned by MPI, written into `value`.
    let ok = unsafe {
        ffi::MPI_Comm_get_attr(
            ffi::RSMPI_COMM_WORLD,
            ffi::MPI_TAG_UB as c_int,
            (&mut value as *mut *mut c_int).cast::<c_void>(),
            &mut flag,
        )
    };
    if ok == ffi::MPI_SUCCESS as c_int && flag != 0 && !value.is_null() {
        // SAFETY: MPI set the flag, so `value` points to the attribute's int.
        unsafe { *value }
    } else {
        // The standard guarantees at least this.
        32767
    }
}

impl Drop for MpiUniverse {
    fn drop(&mut self) {
        if std::thread::panicking() && !finalized() {
            // Other ranks may be waiting for this one: finalising could hang them forever.
            // SAFETY: MPI is initialised and not finalised.
            unsafe { ffi::MPI_Abort(ffi::RSMPI_COMM_WORLD, 101) };
        }
        free_deferred();
        FINALIZED.store(true, Ordering::Release);
        // rsmpi's Universe calls MPI_Finalize when dropped.
        self.universe.take();
    }
}

/// Ends the whole job if this thread is unwinding from a panic while MPI is live. Called by
/// the drops that would otherwise need the other ranks (a collective free, a wait for a peer):
/// those ranks may be waiting for this one in a later call it will never make, so the drop
/// would hang the job before the [`MpiUniverse`]'s drop (which aborts the same way) runs.
fn abort_if_panicking(rank: usize, what: &str) {
    if std::thread::panicking() && !finalized() {
        eprintln!(
            "prism-comm: rank {rank}: panicking while {what} is alive; its drop needs the other \
             ranks, so the whole MPI job ends here (MPI_Abort)"
        );
        // SAFETY: MPI is initialised and not finalised; MPI_Abort ends every process of the
        // job and does not return.
        unsafe { ffi::MPI_Abort(ffi::RSMPI_COMM_WORLD, 101) };
    }
}

/// Makes a panic anywhere abort the whole job after the usual message.
pub(crate) fn install_abort_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        previous(info);
        if !finalized() && !crate::universe::panic_is_caught() {
            eprintln!("prism-comm: a panic on this rank ends the whole MPI job (MPI_Abort)");
            // SAFETY: MPI is initialised and not finalised. MPI_Abort may be called from any
            // thread in practice; the job ends either way.
            unsafe { ffi::MPI_Abort(ffi::RSMPI_COMM_WORLD, 101) };
        }
    }));
}

// ---- communicators ------------------------------------------------------------------------

/// An MPI communicator handle with its rank and size.
pub(crate) struct MpiComm {
    raw: ffi::MPI_Comm,
    /// Whether prism created it (and must free it); false for WORLD and SELF.
    owned: bool,
    rank: usize,
    size: usize,
    /// Sends to this rank itself, completed when the rank receives them (see `send_to_self`).
    self_sends: Mutex<Vec<PendingSend>>,
}

// SAFETY: the handle is opaque and only passed to MPI. Every method that calls MPI first
// checks (`guard`) that it runs on the thread allowed to call MPI, so sharing the handle with
// other threads cannot make MPI calls from them.
unsafe impl Send for MpiComm {}
// SAFETY: as for Send; `&MpiComm` allows no mutation of the handle.
unsafe impl Sync for MpiComm {}

impl Drop for MpiComm {
    fn drop(&mut self) {
        let pending = std::mem::take(
            self.self_sends
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for mut p in pending {
            if finalized() || !on_mpi_thread() || !p.test() {
                // Never received: MPI may still read the buffer, so it must not be freed.
                std::mem::forget(std::mem::take(&mut p.bytes));
            }
        }
        if !self.owned || finalized() {
            return;
        }
        // While unwinding from a panic the handle is deferred rather than freed now: the
        // Universe's drop aborts the job if the panic is not caught, and if it is, the handle
        // is freed with the other deferred ones.
        if on_mpi_thread() && !std::thread::panicking() {
            // SAFETY: prism created this handle with split/dup, frees it once, from the MPI
            // thread, while MPI is live; no request on it is pending (requests hold a clone of
            // the Communicator, hence of this handle's Arc).
            unsafe { ffi::MPI_Comm_free(&mut self.raw) };
        } else {
            DEFERRED
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(RawComm(self.raw));
        }
    }
}

/// The raw datatypes and ops, read from MPI's globals.
fn byte_type() -> ffi::MPI_Datatype {
    // SAFETY: reading a predefined handle exported by the MPI library.
    unsafe { ffi::RSMPI_UINT8_T }
}

/// Number types that MPI can sum.
pub(crate) trait Summable: Copy {
    fn datatype() -> ffi::MPI_Datatype;
}

impl Summable for f64 {
    fn datatype() -> ffi::MPI_Datatype {
        // SAFETY: reading a predefined handle exported by the MPI library.
        unsafe { ffi::RSMPI_DOUBLE }
    }
}

impl Summable for u64 {
    fn datatype() -> ffi::MPI_Datatype {
        // SAFETY: reading a predefined handle exported by the MPI library.
        unsafe { ffi::RSMPI_UINT64_T }
    }
}

fn null_request() -> ffi::MPI_Request {
    // SAFETY: reading a predefined handle exported by the MPI library.
    unsafe { ffi::RSMPI_REQUEST_NULL }
}

fn sum_op() -> ffi::MPI_Op {
    // SAFETY: reading a predefined handle exported by the MPI library.
    unsafe { ffi::RSMPI_SUM }
}

fn count(rank: usize, op: &'static str, n: usize) -> Result<c_int> {
    c_int::try_from(n).map_err(|_| CommError::MessageTooLarge {
        rank,
        op,
        bytes: n,
        max: c_int::MAX as usize,
    })
}

/// A request in flight, completed by polling `MPI_Test` with backoff.
fn wait_request(rank: usize, op: &'static str, mut req: ffi::MPI_Request) -> Result<()> {
    let mut code = ffi::MPI_SUCCESS as c_int;
    poll(|| {
        let mut flag: c_int = 0;
        // SAFETY: `req` is a live request started by the caller, whose buffers the caller
        // keeps alive until this returns; MPI_Test sets it to MPI_REQUEST_NULL on completion.
        code = unsafe { ffi::MPI_Test(&mut req, &mut flag, ffi::RSMPI_STATUS_IGNORE) };
        (flag != 0 || code != ffi::MPI_SUCCESS as c_int).then_some(())
    });
    check(rank, op, code)
}

impl MpiComm {
    fn new(raw: ffi::MPI_Comm, owned: bool) -> Result<MpiComm> {
        let (mut rank, mut size): (c_int, c_int) = (0, 0);
        // SAFETY: `raw` is a live communicator; the outputs are plain ints.
        let codes = unsafe {
            [
                ffi::MPI_Comm_rank(raw, &mut rank),
                ffi::MPI_Comm_size(raw, &mut size),
            ]
        };
        let comm = MpiComm {
            raw,
            owned,
            rank: rank as usize,
            size: size as usize,
            self_sends: Mutex::new(Vec::new()),
        };
        for code in codes {
            check(comm.rank, "MPI_Comm_rank/size", code)?;
        }
        Ok(comm)
    }

    pub(crate) fn rank(&self) -> usize {
        self.rank
    }

    pub(crate) fn size(&self) -> usize {
        self.size
    }

    pub(crate) fn max_tag(&self) -> i32 {
        STATE.get().map_or(32767, |s| s.tag_ub)
    }

    pub(crate) fn raw(&self) -> ffi::MPI_Comm {
        self.raw
    }

    /// Refuses MPI calls from the wrong thread or after finalisation.
    pub(crate) fn guard(&self, op: &'static str) -> Result<()> {
        guard(self.rank, op)
    }

    fn source(s: Source) -> c_int {
        match s {
            // SAFETY: reading a predefined constant exported by the MPI library.
            Source::Any => unsafe { ffi::RSMPI_ANY_SOURCE },
            Source::Rank(r) => r as c_int,
        }
    }

    fn tag(t: TagSel) -> c_int {
        match t {
            // SAFETY: reading a predefined constant exported by the MPI library.
            TagSel::Any => unsafe { ffi::RSMPI_ANY_TAG },
            TagSel::Tag(t) => t,
        }
    }

    fn status(&self, op: &'static str, st: &ffi::MPI_Status) -> Result<Status> {
        let mut n: c_int = 0;
        // SAFETY: `st` was filled by a probe on this communicator.
        check(self.rank, op, unsafe {
            ffi::MPI_Get_count(st, byte_type(), &mut n)
        })?;
        Ok(Status {
            source: st.MPI_SOURCE as usize,
            tag: st.MPI_TAG,
            bytes: n.max(0) as usize,
        })
    }

    // ---- point to point --------------------------------------------------------------------

    pub(crate) fn isend(
        &self,
        comm: Communicator,
        dest: usize,
        tag: i32,
        bytes: Vec<u8>,
    ) -> Result<SendRequest> {
        self.guard("isend")?;
        let n = count(self.rank, "isend", bytes.len())?;
        let mut req = null_request();
        // SAFETY: the buffer is heap memory owned by the PendingSend built below, which keeps
        // it (and the communicator) alive and unmoved until MPI reports completion.
        let code = unsafe {
            ffi::MPI_Isend(
                bytes.as_ptr().cast::<c_void>(),
                n,
                byte_type(),
                dest as c_int,
                tag,
                self.raw,
                &mut req,
            )
        };
        check(self.rank, "MPI_Isend", code)?;
        Ok(SendRequest::mpi(PendingSend {
            req,
            bytes,
            comm: Some(comm),
        }))
    }

    /// A send to this rank itself: started, and kept here until received, so that a blocking
    /// `send` to oneself followed by a `recv` works as in the one-process world instead of
    /// waiting forever for a receive that comes after it.
    pub(crate) fn send_to_self(&self, tag: i32, bytes: Vec<u8>) -> Result<()> {
        self.guard("send")?;
        let n = count(self.rank, "send", bytes.len())?;
        let mut req = null_request();
        // SAFETY: as in `isend`: the buffer moves into the PendingSend kept in `self_sends`
        // until MPI reports completion (or is leaked in Drop if never received).
        let code = unsafe {
            ffi::MPI_Isend(
                bytes.as_ptr().cast::<c_void>(),
                n,
                byte_type(),
                self.rank as c_int,
                tag,
                self.raw,
                &mut req,
            )
        };
        check(self.rank, "MPI_Isend", code)?;
        let mut list = self
            .self_sends
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        list.retain_mut(|p| !p.test());
        list.push(PendingSend {
            req,
            bytes,
            comm: None,
        });
        Ok(())
    }

    pub(crate) fn try_probe(&self, source: Source, tag: TagSel) -> Result<Option<Status>> {
        self.guard("try_probe")?;
        let mut flag: c_int = 0;
        // SAFETY: MPI_Status is plain data that MPI fills.
        let mut st: ffi::MPI_Status = unsafe { std::mem::zeroed() };
        // SAFETY: live communicator; outputs are locals.
        let code = unsafe {
            ffi::MPI_Iprobe(
                Self::source(source),
                Self::tag(tag),
                self.raw,
                &mut flag,
                &mut st,
            )
        };
        check(self.rank, "MPI_Iprobe", code)?;
        if flag == 0 {
            return Ok(None);
        }
        self.status("MPI_Iprobe", &st).map(Some)
    }

    pub(crate) fn probe(&self, source: Source, tag: TagSel) -> Result<Status> {
        self.guard("probe")?;
        let mut result = Ok(None);
        poll(|| {
            result = self.try_probe(source, tag);
            match &result {
                Ok(None) => None,
                _ => Some(()),
            }
        });
        result.map(|s| s.expect("poll returned only with a status or an error"))
    }

    /// Starts receiving a matching message if one is there: matched probe, then a
    /// non-blocking receive of the probed size that no other receive can steal. A large message
    /// may need several steps with the sender before it is complete: the caller tests it.
    pub(crate) fn start_recv(
        &self,
        comm: &Communicator,
        source: Source,
        tag: TagSel,
    ) -> Result<Option<PendingRecv>> {
        self.guard("try_recv")?;
        let mut flag: c_int = 0;
        // SAFETY: MPI_Message and MPI_Status are plain data that MPI fills.
        let mut msg: ffi::MPI_Message = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut st: ffi::MPI_Status = unsafe { std::mem::zeroed() };
        // SAFETY: live communicator; outputs are locals.
        let code = unsafe {
            ffi::MPI_Improbe(
                Self::source(source),
                Self::tag(tag),
                self.raw,
                &mut flag,
                &mut msg,
                &mut st,
            )
        };
        check(self.rank, "MPI_Improbe", code)?;
        if flag == 0 {
            return Ok(None);
        }
        let status = self.status("MPI_Improbe", &st)?;
        let mut buf = vec![0u8; status.bytes];
        let mut req = null_request();
        // SAFETY: `msg` is the message just matched, received exactly once into `buf`, which
        // has its probed size; `buf` moves into the PendingRecv below, whose heap storage does
        // not move and is kept until MPI reports completion (or leaked).
        let code = unsafe {
            ffi::MPI_Imrecv(
                buf.as_mut_ptr().cast::<c_void>(),
                status.bytes as c_int,
                byte_type(),
                &mut msg,
                &mut req,
            )
        };
        check(self.rank, "MPI_Imrecv", code)?;
        Ok(Some(PendingRecv {
            req,
            buf,
            status,
            done: false,
            comm: comm.clone(),
        }))
    }

    /// Receives a matching message if one is there, waiting for the whole of it.
    pub(crate) fn try_recv_bytes(
        &self,
        comm: &Communicator,
        source: Source,
        tag: TagSel,
    ) -> Result<Option<(Vec<u8>, Status)>> {
        match self.start_recv(comm, source, tag)? {
            None => Ok(None),
            Some(p) => p.wait().map(Some),
        }
    }

    pub(crate) fn recv_bytes(
        &self,
        comm: &Communicator,
        source: Source,
        tag: TagSel,
    ) -> Result<(Vec<u8>, Status)> {
        self.guard("recv")?;
        let mut result = Ok(None);
        poll(|| {
            result = self.try_recv_bytes(comm, source, tag);
            match &result {
                Ok(None) => None,
                _ => Some(()),
            }
        });
        result.map(|r| r.expect("poll returned only with a message or an error"))
    }

    // ---- collectives -----------------------------------------------------------------------

    pub(crate) fn barrier(&self) -> Result<()> {
        self.guard("barrier")?;
        let mut req = null_request();
        // SAFETY: live communicator; the request is waited on at once.
        check(self.rank, "MPI_Ibarrier", unsafe {
            ffi::MPI_Ibarrier(self.raw, &mut req)
        })?;
        wait_request(self.rank, "MPI_Ibarrier", req)
    }

    pub(crate) fn abort(&self, code: i32) -> ! {
        if !finalized() {
            // SAFETY: MPI is live; MPI_Abort ends every process of the job.
            unsafe { ffi::MPI_Abort(self.raw, code) };
        }
        std::process::exit(code)
    }

    fn ibcast(&self, root: usize, buf: &mut [u8]) -> Result<()> {
        let n = count(self.rank, "broadcast", buf.len())?;
        let mut req = null_request();
        // SAFETY: `buf` is valid for `n` bytes and borrowed until the request is waited on.
        check(self.rank, "MPI_Ibcast", unsafe {
            ffi::MPI_Ibcast(
                buf.as_mut_ptr().cast::<c_void>(),
                n,
                byte_type(),
                root as c_int,
                self.raw,
                &mut req,
            )
        })?;
        wait_request(self.rank, "MPI_Ibcast", req)
    }

    pub(crate) fn broadcast_in_place(&self, root: usize, buf: &mut [u8]) -> Result<()> {
        self.guard("broadcast")?;
        for p in pieces(buf.len(), BYTE_PIECE) {
            self.ibcast(root, &mut buf[p])?;
        }
        Ok(())
    }

    pub(crate) fn broadcast_bytes(
        &self,
        root: usize,
        bytes: Option<&[u8]>,
    ) -> Result<Option<Vec<u8>>> {
        self.guard("broadcast")?;
        let mut header = if self.rank == root {
            bytes.map_or(u64::MAX, |b| b.len() as u64).to_le_bytes()
        } else {
            [0; 8]
        };
        self.ibcast(root, &mut header)?;
        let len = u64::from_le_bytes(header);
        if len == u64::MAX {
            return Ok(None);
        }
        let mut buf = match bytes {
            Some(b) if self.rank == root => b.to_vec(),
            _ => vec![0u8; len as usize],
        };
        self.broadcast_in_place(root, &mut buf)?;
        Ok(Some(buf))
    }

    /// Every rank's `values` (the same count on every rank), rank after rank, on every rank.
    pub(crate) fn all_gather_u64s(&self, values: &[u64]) -> Result<Vec<u64>> {
        self.guard("all_gather")?;
        let n = count(self.rank, "all_gather", values.len())?;
        let mut all = vec![0u64; self.size * values.len()];
        let mut req = null_request();
        // SAFETY: `values` holds `n` and `all` `size * n` u64s, both alive until the wait.
        check(self.rank, "MPI_Iallgather", unsafe {
            ffi::MPI_Iallgather(
                values.as_ptr().cast::<c_void>(),
                n,
                u64::datatype(),
                all.as_mut_ptr().cast::<c_void>(),
                n,
                u64::datatype(),
                self.raw,
                &mut req,
            )
        })?;
        wait_request(self.rank, "MPI_Iallgather", req)?;
        Ok(all)
    }

    /// Every rank's bytes, on `root` (or on every rank when `root` is `None`), in rounds that
    /// each move fewer than 2^31 bytes in total.
    pub(crate) fn gather_bytes(
        &self,
        root: Option<usize>,
        bytes: &[u8],
    ) -> Result<Option<Vec<Vec<u8>>>> {
        self.guard("gather")?;
        let lens = self.all_gather_u64s(&[bytes.len() as u64])?;

        let receives = root.is_none_or(|r| r == self.rank);
        let mut out: Vec<Vec<u8>> = if receives {
            lens.iter()
                .map(|&l| Vec::with_capacity(l as usize))
                .collect()
        } else {
            Vec::new()
        };
        let per_rank = (c_int::MAX as usize / self.size).max(1);
        let longest = lens.iter().copied().max().unwrap_or(0) as usize;
        let mut scratch = Vec::new();
        for round in pieces(longest, per_rank) {
            let part = |len: u64| {
                let len = len as usize;
                round.start.min(len)..round.end.min(len)
            };
            let counts: Vec<c_int> = lens.iter().map(|&l| part(l).len() as c_int).collect();
            let displs: Vec<c_int> = counts
                .iter()
                .scan(0, |acc, &c| {
                    let d = *acc;
                    *acc += c;
                    Some(d)
                })
                .collect();
            let send = &bytes[part(bytes.len() as u64)];
            scratch.clear();
            if receives {
                scratch.resize(counts.iter().map(|&c| c as usize).sum(), 0u8);
            }
            let mut req = null_request();
            // SAFETY: `send` holds counts[rank] bytes; on receiving ranks `scratch` holds the
            // sum of `counts` bytes laid out by `displs`; all live until the wait.
            let code = unsafe {
                match root {
                    None => ffi::MPI_Iallgatherv(
                        send.as_ptr().cast::<c_void>(),
                        send.len() as c_int,
                        byte_type(),
                        scratch.as_mut_ptr().cast::<c_void>(),
                        counts.as_ptr(),
                        displs.as_ptr(),
                        byte_type(),
                        self.raw,
                        &mut req,
                    ),
                    Some(r) => ffi::MPI_Igatherv(
                        send.as_ptr().cast::<c_void>(),
                        send.len() as c_int,
                        byte_type(),
                        scratch.as_mut_ptr().cast::<c_void>(),
                        counts.as_ptr(),
                        displs.as_ptr(),
                        byte_type(),
                        r as c_int,
                        self.raw,
                        &mut req,
                    ),
                }
            };
            check(self.rank, "MPI_Igatherv", code)?;
            wait_request(self.rank, "MPI_Igatherv", req)?;
            if receives {
                for (r, o) in out.iter_mut().enumerate() {
                    let d = displs[r] as usize;
                    o.extend_from_slice(&scratch[d..d + counts[r] as usize]);
                }
            }
        }
        Ok(receives.then_some(out))
    }

    fn sum<E: Summable>(&self, root: Option<usize>, data: &mut [E], max: usize) -> Result<()> {
        self.guard("sum")?;
        let max = max.min(c_int::MAX as usize);
        reduce_in_pieces(data, max, |send, recv| {
            let mut req = null_request();
            // SAFETY: `send` and `recv` are distinct buffers of the same length (below 2^31),
            // both alive until the wait; on non-root ranks of a reduce `recv` is not written.
            let code = unsafe {
                match root {
                    None => ffi::MPI_Iallreduce(
                        send.as_ptr().cast::<c_void>(),
                        recv.as_mut_ptr().cast::<c_void>(),
                        send.len() as c_int,
                        E::datatype(),
                        sum_op(),
                        self.raw,
                        &mut req,
                    ),
                    Some(r) => ffi::MPI_Ireduce(
                        send.as_ptr().cast::<c_void>(),
                        recv.as_mut_ptr().cast::<c_void>(),
                        send.len() as c_int,
                        E::datatype(),
                        sum_op(),
                        r as c_int,
                        self.raw,
                        &mut req,
                    ),
                }
            };
            check(self.rank, "MPI_Iallreduce/MPI_Ireduce", code)?;
            wait_request(self.rank, "MPI_Iallreduce/MPI_Ireduce", req)
        })
    }

    pub(crate) fn sum_f64(&self, root: Option<usize>, data: &mut [f64], max: usize) -> Result<()> {
        self.sum(root, data, max)
    }

    pub(crate) fn sum_u64(&self, root: Option<usize>, data: &mut [u64], max: usize) -> Result<()> {
        self.sum(root, data, max)
    }

    // ---- groups ------------------------------------------------------------------------------

    /// The rank in `other` of each rank of this communicator (`None` for a rank not in
    /// `other`). Local: no other process takes part.
    pub(crate) fn ranks_in(&self, other: &MpiComm) -> Result<Vec<Option<usize>>> {
        const OP: &str = "MPI_Group_translate_ranks";
        self.guard("ranks_in")?;
        let group = |comm: ffi::MPI_Comm| -> Result<ffi::MPI_Group> {
            // SAFETY: reading a predefined handle exported by the MPI library.
            let mut g = unsafe { ffi::RSMPI_GROUP_NULL };
            // SAFETY: a live communicator; `g` receives a new group, freed below.
            check(self.rank, "MPI_Comm_group", unsafe {
                ffi::MPI_Comm_group(comm, &mut g)
            })?;
            Ok(g)
        };
        let free = |mut g: ffi::MPI_Group| {
            // SAFETY: `g` came from MPI_Comm_group and is freed once.
            unsafe { ffi::MPI_Group_free(&mut g) };
        };
        let mine = group(self.raw)?;
        let theirs = match group(other.raw) {
            Ok(g) => g,
            Err(e) => {
                free(mine);
                return Err(e);
            }
        };
        let ranks: Vec<c_int> = (0..self.size as c_int).collect();
        let mut out = vec![0 as c_int; self.size];
        // SAFETY: both groups are live; `ranks` and `out` hold `size` ints, the size of the
        // first group.
        let code = unsafe {
            ffi::MPI_Group_translate_ranks(
                mine,
                ranks.len() as c_int,
                ranks.as_ptr(),
                theirs,
                out.as_mut_ptr(),
            )
        };
        free(mine);
        free(theirs);
        check(self.rank, OP, code)?;
        // SAFETY: reading a predefined constant exported by the MPI library.
        let undefined = unsafe { ffi::RSMPI_UNDEFINED };
        Ok(out
            .into_iter()
            .map(|r| (r != undefined).then(|| usize::try_from(r).ok()).flatten())
            .collect())
    }

    // ---- new communicators -------------------------------------------------------------------

    fn adopt(&self, op: &'static str, code: c_int, raw: ffi::MPI_Comm) -> Result<Option<MpiComm>> {
        check(self.rank, op, code)?;
        // SAFETY: reading a predefined handle exported by the MPI library.
        if raw == unsafe { ffi::RSMPI_COMM_NULL } {
            return Ok(None);
        }
        MpiComm::new(raw, true).map(Some)
    }

    pub(crate) fn split(&self, colour: Option<u32>, key: i32) -> Result<Option<MpiComm>> {
        self.guard("split")?;
        free_deferred();
        // SAFETY: reading a predefined constant exported by the MPI library.
        let colour = colour.map_or(unsafe { ffi::RSMPI_UNDEFINED }, |c| c as c_int);
        // SAFETY: reading a predefined handle exported by the MPI library.
        let mut raw = unsafe { ffi::RSMPI_COMM_NULL };
        // SAFETY: live communicator; `raw` receives the new handle, which `adopt` owns.
        let code = unsafe { ffi::MPI_Comm_split(self.raw, colour, key, &mut raw) };
        self.adopt("MPI_Comm_split", code, raw)
    }

    pub(crate) fn split_shared(&self) -> Result<MpiComm> {
        self.guard("split_shared")?;
        free_deferred();
        // SAFETY: reading a predefined handle exported by the MPI library.
        let mut raw = unsafe { ffi::RSMPI_COMM_NULL };
        // SAFETY: live communicator; `raw` receives the new handle, which `adopt` owns.
        let code = unsafe {
            ffi::MPI_Comm_split_type(
                self.raw,
                ffi::RSMPI_COMM_TYPE_SHARED,
                self.rank as c_int,
                ffi::RSMPI_INFO_NULL,
                &mut raw,
            )
        };
        self.adopt("MPI_Comm_split_type", code, raw)?
            .ok_or_else(|| CommError::InvalidArgument {
                rank: self.rank,
                op: "split_shared",
                message: "MPI returned no shared-memory communicator".to_string(),
            })
    }

    pub(crate) fn duplicate(&self) -> Result<MpiComm> {
        self.guard("duplicate")?;
        free_deferred();
        // SAFETY: reading a predefined handle exported by the MPI library.
        let mut raw = unsafe { ffi::RSMPI_COMM_NULL };
        // SAFETY: live communicator; `raw` receives the new handle, which `adopt` owns.
        let code = unsafe { ffi::MPI_Comm_dup(self.raw, &mut raw) };
        self.adopt("MPI_Comm_dup", code, raw)?
            .ok_or_else(|| CommError::InvalidArgument {
                rank: self.rank,
                op: "duplicate",
                message: "MPI returned a null communicator".to_string(),
            })
    }
}

// ---- sends in flight --------------------------------------------------------------------------

/// An `MPI_Isend` with the buffer it reads from.
pub(crate) struct PendingSend {
    req: ffi::MPI_Request,
    bytes: Vec<u8>,
    comm: Option<Communicator>,
}

impl std::fmt::Debug for PendingSend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingSend")
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

// SAFETY: the request handle is opaque and only tested or waited on through methods that
// check they run on the MPI thread; the buffer is an ordinary Vec.
unsafe impl Send for PendingSend {}
// SAFETY: as for Send; `&PendingSend` gives no access to MPI.
unsafe impl Sync for PendingSend {}

impl PendingSend {
    fn rank(&self) -> usize {
        self.comm.as_ref().map_or(0, Communicator::rank)
    }

    /// Whether the send is complete. After finalisation MPI no longer reads the buffer.
    ///
    /// # Panics
    /// On a thread that may not call MPI (a programming error that would otherwise hang).
    pub(crate) fn test(&mut self) -> bool {
        if finalized() {
            return true;
        }
        assert!(
            on_mpi_thread(),
            "rank {}: SendRequest::test called from a thread that may not call MPI",
            self.rank()
        );
        let mut flag: c_int = 0;
        // SAFETY: a live request whose buffer `self.bytes` is still owned here.
        unsafe { ffi::MPI_Test(&mut self.req, &mut flag, ffi::RSMPI_STATUS_IGNORE) };
        flag != 0
    }

    /// Waits for completion. On a thread that may not call MPI the buffer is leaked instead,
    /// so MPI can never read freed memory.
    pub(crate) fn wait(mut self) {
        if finalized() {
            return;
        }
        if !on_mpi_thread() {
            eprintln!(
                "prism-comm: rank {}: a send request was dropped on a thread that may not call \
                 MPI; its buffer is leaked",
                self.rank()
            );
            std::mem::forget(std::mem::take(&mut self.bytes));
            return;
        }
        if std::thread::panicking() && !self.test() {
            // Completion may need the receiver, which may be waiting for this rank elsewhere.
            abort_if_panicking(self.rank(), "an unfinished send request");
        }
        poll(|| self.test().then_some(()));
    }
}

// ---- receives in flight -----------------------------------------------------------------------

/// An `MPI_Imrecv` of a matched message with the buffer it writes into.
pub(crate) struct PendingRecv {
    req: ffi::MPI_Request,
    buf: Vec<u8>,
    status: Status,
    done: bool,
    comm: Communicator,
}

impl std::fmt::Debug for PendingRecv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingRecv")
            .field("status", &self.status)
            .field("done", &self.done)
            .finish()
    }
}

// SAFETY: as for PendingSend: the request is only tested or waited on through methods that
// check they run on the MPI thread; the buffer is an ordinary Vec.
unsafe impl Send for PendingRecv {}
// SAFETY: as for Send; `&PendingRecv` gives no access to MPI.
unsafe impl Sync for PendingRecv {}

impl PendingRecv {
    /// The matched message's source, tag and size.
    pub(crate) fn status(&self) -> Status {
        self.status
    }

    /// Whether the whole message is in the buffer. Never blocks.
    pub(crate) fn test(&mut self) -> Result<bool> {
        if self.done {
            return Ok(true);
        }
        let rank = self.comm.rank();
        guard(rank, "recv")?;
        let mut flag: c_int = 0;
        // SAFETY: a live request whose buffer `self.buf` is still owned here.
        let code = unsafe { ffi::MPI_Test(&mut self.req, &mut flag, ffi::RSMPI_STATUS_IGNORE) };
        check(rank, "MPI_Test", code)?;
        self.done = flag != 0;
        Ok(self.done)
    }

    fn finish(&mut self) -> Result<()> {
        let mut result = Ok(false);
        poll(|| {
            result = self.test();
            (!matches!(result, Ok(false))).then_some(())
        });
        result.map(|_| ())
    }

    /// Waits (polling with backoff) for the whole message.
    pub(crate) fn wait(mut self) -> Result<(Vec<u8>, Status)> {
        self.finish()?;
        Ok(self.take())
    }

    /// The received bytes; only once `test` has reported completion.
    pub(crate) fn take(&mut self) -> (Vec<u8>, Status) {
        debug_assert!(self.done, "PendingRecv::take before completion");
        (std::mem::take(&mut self.buf), self.status)
    }
}

impl Drop for PendingRecv {
    /// A receive dropped before completion is waited for, so MPI never writes into freed
    /// memory; where that cannot be done (finalised, not the MPI thread) the buffer leaks.
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if std::thread::panicking() && !matches!(self.test(), Ok(true)) && on_mpi_thread() {
            // The rest of the message may need the sender, which may be waiting for this rank
            // elsewhere.
            abort_if_panicking(self.comm.rank(), "an unfinished receive request");
        }
        if self.done || self.finish().is_ok() {
            return;
        }
        std::mem::forget(std::mem::take(&mut self.buf));
    }
}
