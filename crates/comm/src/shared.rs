//! Node-shared arrays (pshmem's MPIShared): one copy of a plain-old-data array per node, read
//! zero-copy by every rank of the node and written only by the collective [`SharedArray::set`].

use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::atomic::{fence, Ordering};

use bytemuck::Pod;
use serde::{Deserialize, Serialize};

use crate::pieces::{pieces, BYTE_PIECE};
use crate::shm::{Handle, Segment};
use crate::{CommError, Communicator, Result};

/// Set to `name` to skip the nameless `/proc/<pid>/fd` route (for tests of the fallback).
const ROUTE_VAR: &str = "PRISM_COMM_SHM_ROUTE";

enum Storage<T> {
    /// One rank on its node (or nothing to share): an ordinary zeroed allocation.
    Plain(Vec<T>),
    /// The node's one copy, mapped by every rank of the node.
    Shm(Segment),
}

/// A zeroed array of `len` elements of `T` with one copy per node.
///
/// Every rank reads its node's copy through `Deref<Target = [T]>` without copying. Writes go
/// through the collective [`SharedArray::set`], which replicates one rank's piece into every
/// node's copy. On a node with several ranks the copy is a POSIX shared-memory segment whose
/// name is removed as soon as it exists, so nothing is left in /dev/shm whatever way the job
/// ends; with one rank per node it is a plain allocation.
pub struct SharedArray<T> {
    len: usize,
    storage: Storage<T>,
    comm: Communicator,
    node: Communicator,
    /// The node leaders (node rank 0), on leaders only.
    leaders: Option<Communicator>,
    /// For every rank of `comm`: the rank of its node's leader in `leaders`.
    leader_of: Vec<usize>,
    nodes: usize,
    _elements: PhantomData<T>,
}

impl<T> fmt::Debug for SharedArray<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedArray")
            .field("len", &self.len)
            .field("type", &std::any::type_name::<T>())
            .field("nodes", &self.nodes)
            .field("node_shared", &matches!(self.storage, Storage::Shm(_)))
            .finish()
    }
}

/// What every rank tells the others when an array is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Member {
    len: u64,
    /// Rank in `comm` of this rank's node leader.
    leader: u64,
    node_rank: u64,
    node_size: u64,
    /// A fingerprint of the node's ranks in `comm`, in node order: ranks that name the same
    /// leader but hold different node communicators differ here.
    group: u64,
}

/// FNV-1a over the ranks: the same on every rank of one build, unlike `std`'s hashers.
fn fingerprint(ranks: &[u64]) -> u64 {
    ranks
        .iter()
        .flat_map(|r| r.to_le_bytes())
        .fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
}

/// How this rank sees its node, from `node`'s group alone: no collective on `node`, which
/// may not be a node at all.
fn describe_node(
    comm: &Communicator,
    node: &Communicator,
    len: usize,
) -> std::result::Result<Member, String> {
    let ranks = node.ranks_in(comm).map_err(|e| e.to_string())?;
    let ranks = ranks
        .iter()
        .enumerate()
        .map(|(k, r)| {
            r.map(|r| r as u64).ok_or_else(|| {
                format!(
                    "rank {k} of its node communicator is not in the array's communicator: \
                     the node communicator is not a partition of the array's communicator"
                )
            })
        })
        .collect::<std::result::Result<Vec<u64>, String>>()?;
    Ok(Member {
        len: len as u64,
        leader: ranks[0],
        node_rank: node.rank() as u64,
        node_size: node.size() as u64,
        group: fingerprint(&ranks),
    })
}

/// Every rank's [`Member`], gathered over `comm` and checked together before any collective
/// on `node`: on node communicators that do not partition `comm`, such a collective would
/// pair up unrelated calls (a hang, or one rank decoding another's message). Returns them with
/// the leaders' comm ranks in increasing order; every rank returns the same error.
fn gather_members(
    comm: &Communicator,
    node: &Communicator,
    len: usize,
    op: &'static str,
) -> Result<(Vec<Member>, Vec<usize>)> {
    let me = describe_node(comm, node, len);
    let all: Vec<std::result::Result<Member, String>> = comm.all_gather(&me)?;
    let invalid = |message| CommError::InvalidArgument {
        rank: comm.rank(),
        op,
        message,
    };
    if let Some((r, m)) = all
        .iter()
        .enumerate()
        .find_map(|(r, m)| m.as_ref().err().map(|m| (r, m)))
    {
        return Err(invalid(format!("on rank {r}: {m}")));
    }
    let members: Vec<Member> = all.into_iter().filter_map(|m| m.ok()).collect();
    let leaders = check_members(&members).map_err(invalid)?;
    Ok((members, leaders))
}

impl Communicator {
    /// For every rank of this communicator, the rank (in this communicator) of its node's
    /// leader: rank 0 of the `node` communicator that rank passed. Collective over this
    /// communicator, and over it only: it checks that the `node` communicators of all ranks
    /// partition this one, and every rank returns the same error if they do not, so a caller
    /// can use `node` for collectives afterwards without hanging.
    pub fn node_leaders(&self, node: &Communicator) -> Result<Vec<usize>> {
        let (members, _) = gather_members(self, node, 0, "node_leaders")?;
        Ok(members.iter().map(|m| m.leader as usize).collect())
    }
}

/// What the sending rank of a write passes.
#[derive(Clone, Copy)]
enum Piece<'a, T> {
    /// Elements to copy in.
    Slice(&'a [T]),
    /// This many elements already in the sender's copy at the offset (a Vec it handed over).
    InPlace(usize),
}

/// The header of a `set`, from the sending rank.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
enum Header {
    Piece { offset: u64, len: u64 },
    Missing,
}

/// Checks that the members describe a partition of `comm` into nodes, each with one leader,
/// and agree on the length. Returns the leaders' comm ranks in increasing order.
fn check_members(members: &[Member]) -> std::result::Result<Vec<usize>, String> {
    let len = members[0].len;
    if let Some((r, m)) = members.iter().enumerate().find(|(_, m)| m.len != len) {
        return Err(format!(
            "rank {r} asked for {} elements, rank 0 for {len}",
            m.len
        ));
    }
    for (r, m) in members.iter().enumerate() {
        let leader = usize::try_from(m.leader).unwrap_or(usize::MAX);
        let Some(l) = members.get(leader) else {
            return Err(format!(
                "rank {r} names rank {leader} as its node leader, which does not exist"
            ));
        };
        if l.leader != m.leader || l.node_rank != 0 {
            return Err(format!(
                "rank {r} names rank {leader} as its node leader, which is not one"
            ));
        }
        if m.node_rank == 0 && leader != r {
            return Err(format!(
                "rank {r} has node rank 0 but names {leader} as leader"
            ));
        }
        if m.group != l.group {
            return Err(format!(
                "rank {r} and its node leader, rank {leader}, passed node communicators of \
                 different ranks: the node communicator is not a partition of the array's \
                 communicator"
            ));
        }
    }
    let mut leaders = Vec::new();
    for (r, m) in members.iter().enumerate().filter(|(_, m)| m.node_rank == 0) {
        let count = members.iter().filter(|o| o.leader == m.leader).count() as u64;
        if count != m.node_size {
            return Err(format!(
                "the node led by rank {r} has {} ranks but {count} ranks name it: the node \
                 communicator is not a partition of the array's communicator",
                m.node_size
            ));
        }
        leaders.push(r);
    }
    Ok(leaders)
}

/// Why the ranks' `from_rank` arguments to `set` cannot be used.
#[derive(Debug, PartialEq, Eq)]
enum FromRankError {
    /// Every rank passed this rank, which does not exist.
    OutOfRange { given: u64, size: usize },
    /// The ranks passed different ranks.
    Differ(String),
}

impl FromRankError {
    fn into_error(self, rank: usize, op: &'static str) -> CommError {
        match self {
            FromRankError::OutOfRange { given, size } => CommError::InvalidRank {
                rank,
                op,
                given: usize::try_from(given).unwrap_or(usize::MAX),
                size,
            },
            FromRankError::Differ(message) => CommError::InvalidArgument { rank, op, message },
        }
    }
}

/// Checks that every rank passed the same `from_rank` (one entry per rank) and that it is a
/// rank of a communicator of `size`.
fn check_from_ranks(froms: &[u64], size: usize) -> std::result::Result<(), FromRankError> {
    let Some(&first) = froms.first() else {
        return Ok(());
    };
    if froms.iter().any(|&f| f != first) {
        let list = froms
            .iter()
            .enumerate()
            .map(|(r, f)| {
                let note = if *f >= size as u64 {
                    " (out of range)"
                } else {
                    ""
                };
                format!("rank {r}: {f}{note}")
            })
            .collect::<Vec<_>>()
            .join(", ");
        return Err(FromRankError::Differ(format!(
            "the ranks passed different from_rank values ({list}); every rank must pass the \
             same rank of a communicator of size {size}"
        )));
    }
    if first >= size as u64 {
        return Err(FromRankError::OutOfRange { given: first, size });
    }
    Ok(())
}

impl<T: Pod> SharedArray<T> {
    /// A zeroed array of `len` elements, one copy per node of `comm` (the nodes are the groups
    /// of [`Communicator::split_shared`]). Collective over `comm`.
    pub fn new(comm: &Communicator, len: usize) -> Result<Self> {
        let node = comm.split_shared()?;
        Self::with_node(comm, &node, len)
    }

    /// As [`SharedArray::new`], treating the ranks of `node` as one node. `node` must contain
    /// this rank, and the `node` communicators of all ranks must partition `comm` (for tests:
    /// "virtual nodes" made by splitting `comm` by colour). Ranks of one node must share
    /// memory. Collective over `comm`; every rank returns the same error if the arguments
    /// disagree or a rank fails to attach.
    pub fn with_node(comm: &Communicator, node: &Communicator, len: usize) -> Result<Self> {
        Self::make(comm, node, len, None)
    }

    /// As [`SharedArray::with_node`] followed by a [`SharedArray::set`] of all `len` elements
    /// from `from_rank`, which passes them as `Some(data)` (the others pass `None`). Where
    /// `from_rank` is alone on its node, `data` becomes its node's copy as it is: no zeroed
    /// copy is made and filled, which would double that rank's peak memory.
    pub fn with_node_from_vec(
        comm: &Communicator,
        node: &Communicator,
        len: usize,
        data: Option<Vec<T>>,
        from_rank: usize,
    ) -> Result<Self> {
        let keep = node.size() == 1
            && comm.rank() == from_rank
            && data.as_ref().is_some_and(|d| d.len() == len);
        let (own, data) = if keep { (data, None) } else { (None, data) };
        let in_place = own.is_some();
        let mut array = Self::make(comm, node, len, own)?;
        let piece = match &data {
            Some(d) => Some(Piece::Slice(&d[..])),
            None if in_place => Some(Piece::InPlace(len)),
            None => None,
        };
        array.write(0, piece, from_rank)?;
        Ok(array)
    }

    /// [`SharedArray::with_node`], with `own` (of `len` elements) as this rank's copy if it
    /// is alone on its node.
    fn make(
        comm: &Communicator,
        node: &Communicator,
        len: usize,
        own: Option<Vec<T>>,
    ) -> Result<Self> {
        const OP: &str = "SharedArray::new";
        let elem = std::mem::size_of::<T>();
        let bytes = len.checked_mul(elem);
        comm.agree(
            OP,
            match bytes {
                Some(b) if b <= isize::MAX as usize => Ok(()),
                _ => Err(format!(
                    "{len} elements of {elem} bytes overflow the address space"
                )),
            },
        )?;
        let bytes = bytes.unwrap_or(0);

        let (members, leader_ranks) = gather_members(comm, node, len, OP)?;
        let leader_of = members
            .iter()
            .map(|m| {
                leader_ranks
                    .binary_search(&(m.leader as usize))
                    .unwrap_or_default()
            })
            .collect();
        // Leaders ordered by comm rank, so a leader's rank in `leaders` is its index above.
        let leaders = comm.split(node.is_root().then_some(0), comm.rank() as i32)?;

        let storage = Self::node_storage(comm, node, len, bytes, own)?;
        Ok(SharedArray {
            len,
            storage,
            comm: comm.clone(),
            node: node.clone(),
            leaders,
            leader_of,
            nodes: leader_ranks.len(),
            _elements: PhantomData,
        })
    }

    /// The node's copy: a plain allocation for an empty array or on a node of one rank
    /// (`own` if given), otherwise a segment that the leader creates and the others attach
    /// to; once every rank of `comm` has attached the leader lets go of the name and
    /// descriptor. Every rank of `comm` takes part in each attempt, so all agree on success or
    /// on the error, also where only some ranks cannot allocate.
    fn node_storage(
        comm: &Communicator,
        node: &Communicator,
        len: usize,
        bytes: usize,
        own: Option<Vec<T>>,
    ) -> Result<Storage<T>> {
        const OP: &str = "SharedArray::new";
        if bytes == 0 {
            // Nothing to allocate: an empty array, or elements of no size.
            return Ok(Storage::Plain(own.unwrap_or_else(|| {
                bytemuck::allocation::try_zeroed_vec(len).unwrap_or_default()
            })));
        }
        let alone = node.size() == 1;
        let plain = if alone {
            match own {
                Some(v) => Ok(v),
                // Zeroed by the allocator (fresh pages for a large array): nothing is touched.
                None => bytemuck::allocation::try_zeroed_vec(len).map_err(|()| {
                    format!(
                        "{bytes} bytes requested for this rank's copy ({len} elements of {} \
                         bytes) but the allocation failed: not enough memory or address space",
                        std::mem::size_of::<T>()
                    )
                }),
            }
        } else {
            Ok(Vec::new())
        };
        let by_name_only = std::env::var(ROUTE_VAR).is_ok_and(|v| v == "name");
        let routes: &[bool] = if by_name_only {
            &[true]
        } else {
            &[false, true]
        };
        let mut last_error = None;
        for &keep_name in routes {
            let local: std::result::Result<Option<Segment>, String> = if alone {
                plain.as_ref().map(|_| None).map_err(String::clone)
            } else {
                Self::create_or_attach(node, bytes, keep_name)?.map(Some)
            };
            let status = local.as_ref().map(|_| ()).map_err(String::clone);
            match comm.agree(OP, status) {
                Ok(()) => {
                    let shm_error = |message| CommError::Shm {
                        rank: comm.rank(),
                        op: OP,
                        message,
                    };
                    if alone {
                        return plain.map(Storage::Plain).map_err(shm_error);
                    }
                    let mut seg = local
                        .map_err(shm_error)?
                        .ok_or_else(|| shm_error("no segment".to_string()))?;
                    seg.attached();
                    return Ok(Storage::Shm(seg));
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or(CommError::Shm {
            rank: comm.rank(),
            op: OP,
            message: "no route to shared memory".to_string(),
        }))
    }

    /// One attempt on a node of several ranks: the outer error is a failed collective, the
    /// inner one this rank's failure to create or attach.
    #[allow(clippy::type_complexity)]
    fn create_or_attach(
        node: &Communicator,
        bytes: usize,
        keep_name: bool,
    ) -> Result<std::result::Result<Segment, String>> {
        let mut local = Err(String::new());
        let created = if node.is_root() {
            match Segment::create(bytes, keep_name) {
                Ok((seg, handle)) => {
                    local = Ok(seg);
                    Some(handle)
                }
                Err(e) => {
                    local = Err(format!("cannot create a segment of {bytes} bytes: {e}"));
                    None
                }
            }
        } else {
            None
        };
        let handle: Option<Handle> = node.broadcast(0, node.is_root().then_some(created))?;
        if !node.is_root() {
            local = match &handle {
                Some(h) => Segment::attach(h, bytes)
                    .map_err(|e| format!("cannot attach to the node's segment {h:?}: {e}")),
                None => Err("the node leader could not create the segment".to_string()),
            };
        }
        Ok(local)
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether this node's copy is shared memory (false for a plain allocation on a node with
    /// one rank, or an empty array).
    pub fn is_node_shared(&self) -> bool {
        matches!(self.storage, Storage::Shm(_))
    }

    /// The number of nodes, hence of copies.
    pub fn node_count(&self) -> usize {
        self.nodes
    }

    /// The node's copy.
    pub fn as_slice(&self) -> &[T] {
        match &self.storage {
            Storage::Plain(v) => v,
            Storage::Shm(seg) => {
                // SAFETY: the mapping is `len * size_of::<T>()` bytes long, page-aligned (so
                // aligned for T) and lives as long as `self`. Other processes write it only
                // inside `set`, which every rank of the node calls together, between
                // barriers, and which takes `&mut self` here, so no write overlaps this
                // borrow. Any bit pattern is a valid T (Pod).
                let bytes = unsafe { std::slice::from_raw_parts(seg.as_ptr(), seg.len()) };
                bytemuck::cast_slice(bytes)
            }
        }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        match &mut self.storage {
            Storage::Plain(v) => bytemuck::cast_slice_mut(v.as_mut_slice()),
            Storage::Shm(seg) => {
                // SAFETY: as in `as_slice`; `&mut self` and the barriers of `set` make this
                // process the only writer of its node's copy while the slice lives.
                unsafe { std::slice::from_raw_parts_mut(seg.as_mut_ptr(), seg.len()) }
            }
        }
    }

    /// Writes `data`, held by rank `from_rank` of the array's communicator, at element
    /// `offset` of every node's copy. Collective: every rank calls it with the same
    /// `from_rank`; only `from_rank` passes `Some(data)` (and its `offset` is the one used).
    /// When it returns, every rank sees the new values. A missing piece or a piece past the
    /// end is reported as an error on every rank.
    pub fn set(&mut self, offset: usize, data: Option<&[T]>, from_rank: usize) -> Result<()> {
        self.write(offset, data.map(Piece::Slice), from_rank)
    }

    fn write(&mut self, offset: usize, data: Option<Piece<'_, T>>, from_rank: usize) -> Result<()> {
        const OP: &str = "SharedArray::set";
        let rank = self.comm.rank();
        // Every rank must name the same sender, or the broadcast below would have different
        // roots on different ranks: check it together, so all return the same error.
        let froms: Vec<u64> = self.comm.all_gather(&(from_rank as u64))?;
        check_from_ranks(&froms, self.comm.size()).map_err(|e| e.into_error(rank, OP))?;
        let header = (rank == from_rank).then_some(match data {
            Some(d) => Header::Piece {
                offset: offset as u64,
                len: match d {
                    Piece::Slice(d) => d.len(),
                    Piece::InPlace(len) => len,
                } as u64,
            },
            None => Header::Missing,
        });
        let (offset, count) = match self.comm.broadcast(from_rank, header)? {
            Header::Missing => {
                return Err(CommError::InvalidArgument {
                    rank,
                    op: OP,
                    message: format!("rank {from_rank} passed no data"),
                })
            }
            Header::Piece { offset, len } => (offset as usize, len as usize),
        };
        if offset.checked_add(count).is_none_or(|end| end > self.len) {
            return Err(CommError::InvalidArgument {
                rank,
                op: OP,
                message: format!(
                    "rank {from_rank} writes {count} elements at offset {offset}, past the end \
                     of an array of {}",
                    self.len
                ),
            });
        }
        let elem = std::mem::size_of::<T>();
        if count == 0 || elem == 0 {
            return Ok(());
        }
        let range = offset * elem..(offset + count) * elem;

        // Everyone on the node has stopped reading before the sender writes.
        self.node_barrier()?;
        if rank == from_rank {
            if let Some(Piece::Slice(d)) = data {
                self.bytes_mut()[range.clone()].copy_from_slice(bytemuck::cast_slice(d));
            }
        }
        // The sender's node leader sees the piece; every node is inside `set`.
        self.node_barrier()?;
        if self.nodes > 1 {
            if let Some(leaders) = self.leaders.clone() {
                let root = self.leader_of[from_rank];
                let piece = &mut self.bytes_mut()[range];
                for p in pieces(piece.len(), BYTE_PIECE) {
                    leaders.broadcast_in_place(root, &mut piece[p])?;
                }
            }
        }
        // Every rank of every node sees the piece.
        self.node_barrier()?;
        Ok(())
    }

    fn node_barrier(&self) -> Result<()> {
        fence(Ordering::SeqCst);
        self.node.barrier()?;
        fence(Ordering::SeqCst);
        Ok(())
    }
}

impl<T: Pod> Deref for SharedArray<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        self.as_slice()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world() -> Communicator {
        Communicator::local()
    }

    #[test]
    fn one_process_array_is_plain() {
        let w = world();
        let mut a = SharedArray::<f64>::new(&w, 10).unwrap();
        assert_eq!(a.len(), 10);
        assert!(!a.is_empty() && !a.is_node_shared());
        assert_eq!(a.node_count(), 1);
        assert!(a.iter().all(|&x| x == 0.0));
        a.set(3, Some(&[1.0, 2.0]), 0).unwrap();
        assert_eq!(&a[2..6], &[0.0, 1.0, 2.0, 0.0]);
    }

    #[test]
    fn empty_array() {
        let w = world();
        let mut a = SharedArray::<u32>::new(&w, 0).unwrap();
        assert!(a.is_empty());
        assert_eq!(a.as_slice(), &[] as &[u32]);
        a.set(0, Some(&[]), 0).unwrap();
        assert!(a.set(0, Some(&[1]), 0).is_err());
    }

    #[test]
    fn bad_sets_are_errors() {
        let w = world();
        let mut a = SharedArray::<u8>::new(&w, 4).unwrap();
        let e = a.set(3, Some(&[1, 2]), 0).unwrap_err().to_string();
        assert!(e.contains("past the end") && e.contains("offset 3"), "{e}");
        assert!(a.set(usize::MAX, Some(&[1]), 0).is_err());
        assert!(a
            .set(0, None, 0)
            .unwrap_err()
            .to_string()
            .contains("no data"));
        assert!(matches!(
            a.set(0, Some(&[1]), 1),
            Err(CommError::InvalidRank { .. })
        ));
        assert_eq!(a.as_slice(), &[0, 0, 0, 0]);
    }

    #[test]
    fn ranks_must_agree_on_from_rank() {
        assert_eq!(check_from_ranks(&[1, 1, 1], 3), Ok(()));
        assert_eq!(
            check_from_ranks(&[3, 3, 3], 3),
            Err(FromRankError::OutOfRange { given: 3, size: 3 })
        );
        // One rank out of range, the others not: an error for all, naming the culprit.
        let Err(FromRankError::Differ(m)) = check_from_ranks(&[0, 3, 0], 3) else {
            panic!("differing from_rank accepted");
        };
        assert!(m.contains("rank 1: 3 (out of range)"), "{m}");
        assert!(matches!(
            check_from_ranks(&[0, 1], 2),
            Err(FromRankError::Differ(_))
        ));
        let e = FromRankError::OutOfRange { given: 3, size: 3 }.into_error(0, "op");
        assert!(matches!(e, CommError::InvalidRank { given: 3, .. }));
    }

    #[test]
    fn too_large_is_an_error_not_an_abort() {
        let w = world();
        assert!(SharedArray::<u64>::new(&w, usize::MAX / 4).is_err());
    }

    #[test]
    fn more_than_2_pow_31_elements() {
        let w = world();
        let len = (1usize << 31) + 16;
        let mut a = SharedArray::<u8>::new(&w, len).unwrap();
        a.set(len - 2, Some(&[7, 8]), 0).unwrap();
        assert_eq!(a[len - 1], 8);
        assert_eq!(a[len - 3], 0);
    }

    #[test]
    fn structs_of_plain_data() {
        #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
        #[repr(C)]
        struct P {
            x: f32,
            id: u32,
        }
        let w = world();
        let mut a = SharedArray::<P>::new(&w, 3).unwrap();
        a.set(1, Some(&[P { x: 1.5, id: 9 }]), 0).unwrap();
        assert_eq!(a[1], P { x: 1.5, id: 9 });
    }

    #[test]
    fn arrays_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<SharedArray<f64>>();
        check::<Communicator>();
    }

    #[test]
    fn members_must_partition_the_communicator() {
        // The leader stands in for the fingerprint of a node's ranks.
        let m = |leader, node_rank, node_size| Member {
            len: 5,
            leader,
            node_rank,
            node_size,
            group: leader,
        };
        // Two nodes: {0, 2} and {1, 3}.
        let good = [m(0, 0, 2), m(1, 0, 2), m(0, 1, 2), m(1, 1, 2)];
        assert_eq!(check_members(&good).unwrap(), vec![0, 1]);
        let mut bad = good;
        bad[3] = m(0, 1, 2);
        assert!(check_members(&bad).unwrap_err().contains("not a partition"));
        let mut bad = good;
        bad[2].len = 6;
        assert!(check_members(&bad)
            .unwrap_err()
            .contains("rank 2 asked for 6"));
        let mut bad = good;
        bad[3] = m(2, 1, 2);
        assert!(check_members(&bad).unwrap_err().contains("not one"));
        // The right leader and sizes, but another communicator's ranks.
        let mut bad = good;
        bad[3].group = 7;
        assert!(check_members(&bad).unwrap_err().contains("not a partition"));
    }

    #[test]
    fn fingerprints_tell_rank_lists_apart() {
        assert_eq!(fingerprint(&[0, 2]), fingerprint(&[0, 2]));
        assert_ne!(fingerprint(&[0, 2]), fingerprint(&[0, 3]));
        assert_ne!(fingerprint(&[0, 2]), fingerprint(&[2, 0]));
        let w = world();
        assert_eq!(w.node_leaders(&w).unwrap(), vec![0]);
    }

    /// A plain allocation that cannot be made (more than the address space, yet below
    /// isize::MAX bytes) is an error naming the size, not a panic in the allocator's unwrap.
    #[test]
    fn plain_allocation_failure_is_an_error() {
        let w = world();
        let bytes = 1usize << 62;
        let e = SharedArray::<u8>::new(&w, bytes).unwrap_err().to_string();
        assert!(
            e.contains(&format!("{bytes} bytes requested")) && e.contains("rank 0"),
            "{e}"
        );
        let e = SharedArray::<u64>::with_node_from_vec(&w, &w, bytes / 8, None, 0).unwrap_err();
        assert!(e.to_string().contains("bytes requested"), "{e}");
    }

    /// A rank alone on its node hands its Vec over: the array is that allocation.
    #[test]
    fn a_vec_from_a_rank_alone_on_its_node_is_kept() {
        let w = world();
        let data: Vec<f64> = (0..1000).map(f64::from).collect();
        let ptr = data.as_ptr();
        let mut a = SharedArray::with_node_from_vec(&w, &w, 1000, Some(data), 0).unwrap();
        assert_eq!(a.as_ptr(), ptr, "the data was copied");
        assert!(a.iter().enumerate().all(|(i, &x)| x == i as f64));
        a.set(2, Some(&[-1.0]), 0).unwrap();
        assert_eq!(&a[..4], &[0.0, 1.0, -1.0, 3.0]);
        // A Vec of the wrong length is refused, as by set.
        let e = SharedArray::with_node_from_vec(&w, &w, 3, Some(vec![1u8; 4]), 0).unwrap_err();
        assert!(e.to_string().contains("past the end"), "{e}");
        assert!(SharedArray::<u8>::with_node_from_vec(&w, &w, 3, None, 0).is_err());
        let z = SharedArray::<u8>::with_node_from_vec(&w, &w, 0, Some(Vec::new()), 0).unwrap();
        assert!(z.is_empty());
    }
}
