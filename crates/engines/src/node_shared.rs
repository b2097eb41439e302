//! [`NodeShared`]: a large read-only structure built once per node and read by every process
//! of the node without copying (the PR #442 review's memory concern: N processes on a node
//! should hold one scene, not N).
//!
//! It sits on `prism_comm::SharedArray`: the builder's output is copied once into the node's
//! shared segment, then every process of the node reads the same pages (a process alone on
//! its node keeps the builder's output itself, uncopied). The data is plain old
//! data (`bytemuck::Pod`), bytes by default, so structures built of flat arrays (a BVH's nodes
//! and triangles, a serialised scene) fit without pointers.

use crate::error::{panic_message, EngineError, Result};
use bytemuck::Pod;
use prism_comm::{Communicator, SharedArray};
use std::fmt::Display;
use std::ops::Deref;

/// What a builder may return: the data, or `Result<data, E>` with a displayable error.
pub trait BuildOutput<T> {
    /// The data or the error's message.
    fn into_data(self) -> std::result::Result<Vec<T>, String>;
}

impl<T> BuildOutput<T> for Vec<T> {
    fn into_data(self) -> std::result::Result<Vec<T>, String> {
        Ok(self)
    }
}

impl<T, E: Display> BuildOutput<T> for std::result::Result<Vec<T>, E> {
    fn into_data(self) -> std::result::Result<Vec<T>, String> {
        self.map_err(|e| e.to_string())
    }
}

/// An array of `T` (bytes by default) with one copy per node, read zero-copy by every
/// process of the node.
///
/// Every constructor is collective over `comm` and must be called on the thread that
/// initialised MPI. A builder that fails or panics makes every process of `comm` return the
/// same [`EngineError::Build`]. The value is `Send + Sync`: share it with render threads by
/// reference or in an `Arc`.
///
/// ```
/// use prism_engines::NodeShared;
///
/// let universe = prism_comm::init()?;
/// let world = universe.world();
/// // One process per node computes the table; every process reads the node's copy.
/// let table = NodeShared::<u32>::build(&world, || (0..1000u32).map(|i| i * i).collect::<Vec<_>>())?;
/// assert_eq!(table[999], 998_001);
/// assert_eq!(table.bytes().len(), 4000);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct NodeShared<T: Pod = u8> {
    array: SharedArray<T>,
    built_here: bool,
    nodes: usize,
}

fn run_builder<T, B: BuildOutput<T>>(
    build: impl FnOnce() -> B,
) -> std::result::Result<Vec<T>, String> {
    // `into_data` formats the builder's error with its Display, user code that may panic too.
    match prism_comm::catch_panic(|| build().into_data()) {
        Ok(out) => out,
        Err(payload) => Err(format!("panicked: {}", panic_message(&*payload))),
    }
}

impl<T: Pod> NodeShared<T> {
    /// Runs `build` on one process of each node of `comm` (the node leader: rank 0 of
    /// `split_shared`) and shares its output with the other processes of that node.
    /// Collective over `comm`.
    ///
    /// While the leader copies its output into the node's segment, both exist: its peak
    /// memory is twice the data (a process alone on its node keeps the output, uncopied).
    /// For data near half a node's memory, allocate a `prism_comm::SharedArray` and fill it
    /// in pieces with `set` instead, which never holds a second copy.
    pub fn build<F, B>(comm: &Communicator, build: F) -> Result<Self>
    where
        F: FnOnce() -> B,
        B: BuildOutput<T>,
    {
        let node = split_shared(comm)?;
        Self::build_with_node(comm, &node, build)
    }

    /// As [`NodeShared::build`], with the processes of `node` treated as one node. The `node`
    /// communicators of all processes must partition `comm` and each must hold processes that
    /// share memory; "virtual nodes" made by splitting `comm` by colour test the
    /// several-node paths on one machine. Collective over `comm`.
    pub fn build_with_node<F, B>(comm: &Communicator, node: &Communicator, build: F) -> Result<Self>
    where
        F: FnOnce() -> B,
        B: BuildOutput<T>,
    {
        let rank = comm.rank();
        // Before any collective on `node`: on node communicators that do not partition
        // `comm` it would pair unrelated calls (a hang, or one process decoding another's
        // message); this check fails on every process alike instead.
        let leaders = comm
            .node_leaders(node)
            .map_err(|e| EngineError::comm(rank, "NodeShared: finding the nodes", e))?;
        let leader = node.is_root();
        let built = leader.then(|| run_builder(build));
        let status: Option<std::result::Result<u64, String>> = built
            .as_ref()
            .map(|b| b.as_ref().map(|v| v.len() as u64).map_err(Clone::clone));
        // Every process learns every leader's outcome, so a failed build anywhere fails
        // everywhere alike, and the size of its own node's data.
        let all: Vec<Option<std::result::Result<u64, String>>> = comm
            .all_gather(&status)
            .map_err(|e| EngineError::comm(rank, "NodeShared: sharing build outcomes", e))?;
        first_failure(&all)?;
        let nodes = all.iter().filter(|s| s.is_some()).count();
        let len = match all.get(leaders[rank]) {
            Some(Some(Ok(len))) => *len,
            _ => {
                return Err(EngineError::comm(
                    rank,
                    "NodeShared: sharing the size",
                    format!("node leader {} reported no build", leaders[rank]),
                ))
            }
        };
        let data = built.and_then(|b| b.ok());
        // The processes of this node, for errors: the node's array numbers them from 0 within
        // the node, which would send a user to the wrong process of the job.
        let members: Vec<usize> = node
            .all_gather(&rank)
            .map_err(|e| EngineError::comm(rank, "NodeShared: naming the node's processes", e))?;
        // The node's array: only this node's processes take part, so nodes may differ in
        // size. The leader hands its data over; `set` ends with every process of the node
        // seeing it.
        let array = fill(node, node, len as usize, data, 0).map_err(|m| on_node(&members, &m));
        agree(comm, array).map(|array| NodeShared {
            array,
            built_here: leader,
            nodes,
        })
    }

    /// Runs `build` on process `root` of `comm` only and copies its output into every node's
    /// shared copy (one copy per node, one build in all). Collective over `comm`.
    pub fn build_once<F, B>(comm: &Communicator, root: usize, build: F) -> Result<Self>
    where
        F: FnOnce() -> B,
        B: BuildOutput<T>,
    {
        let node = split_shared(comm)?;
        Self::build_once_with_node(comm, &node, root, build)
    }

    /// As [`NodeShared::build_once`], with the processes of `node` treated as one node (see
    /// [`NodeShared::build_with_node`]). Collective over `comm`.
    pub fn build_once_with_node<F, B>(
        comm: &Communicator,
        node: &Communicator,
        root: usize,
        build: F,
    ) -> Result<Self>
    where
        F: FnOnce() -> B,
        B: BuildOutput<T>,
    {
        let rank = comm.rank();
        if root >= comm.size() {
            return Err(EngineError::Invalid(format!(
                "NodeShared::build_once: root {root} is not a rank of a communicator of {} processes",
                comm.size()
            )));
        }
        let here = rank == root;
        let built = here.then(|| run_builder(build));
        let status = built
            .as_ref()
            .map(|b| b.as_ref().map(|v| v.len() as u64).map_err(Clone::clone));
        let len = comm
            .broadcast(root, status)
            .map_err(|e| EngineError::comm(rank, "NodeShared: sharing the size", e))?
            .map_err(|message| EngineError::Build {
                rank: root,
                message,
            })?;
        let data = built.and_then(|b| b.ok());
        let array = fill(comm, node, len as usize, data, root);
        let array = agree(comm, array)?;
        let nodes = array.node_count();
        Ok(NodeShared {
            array,
            built_here: here,
            nodes,
        })
    }

    /// The data (this node's copy).
    pub fn as_slice(&self) -> &[T] {
        self.array.as_slice()
    }

    /// The data as bytes, without copying.
    pub fn bytes(&self) -> &[u8] {
        bytemuck::cast_slice(self.array.as_slice())
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.array.len()
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.array.is_empty()
    }

    /// Number of nodes, hence of copies, in the communicator it was built for.
    pub fn node_count(&self) -> usize {
        self.nodes
    }

    /// Whether this process ran the builder.
    pub fn built_here(&self) -> bool {
        self.built_here
    }

    /// Whether this node's copy is a shared-memory segment (false when the process is alone on
    /// its node, or the data is empty: then it is an ordinary allocation).
    pub fn is_node_shared(&self) -> bool {
        self.array.is_node_shared()
    }
}

impl<T: Pod> Deref for NodeShared<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        self.as_slice()
    }
}

impl<T: Pod> AsRef<[T]> for NodeShared<T> {
    fn as_ref(&self) -> &[T] {
        self.as_slice()
    }
}

fn split_shared(comm: &Communicator) -> Result<Communicator> {
    comm.split_shared()
        .map_err(|e| EngineError::comm(comm.rank(), "NodeShared: finding the node", e))
}

/// The first failed build in `all`, as the error every process returns.
fn first_failure(all: &[Option<std::result::Result<u64, String>>]) -> Result<()> {
    for (rank, s) in all.iter().enumerate() {
        if let Some(Err(message)) = s {
            return Err(EngineError::Build {
                rank,
                message: message.clone(),
            });
        }
    }
    Ok(())
}

/// Allocates the array over `comm` with nodes `node` and writes `data` from `from`. A
/// process alone on its node keeps the builder's Vec as its copy: copying it into a fresh
/// array would hold two full copies at once, twice the memory of the one-process-per-node
/// layout.
fn fill<T: Pod>(
    comm: &Communicator,
    node: &Communicator,
    len: usize,
    data: Option<Vec<T>>,
    from: usize,
) -> std::result::Result<SharedArray<T>, String> {
    SharedArray::<T>::with_node_from_vec(comm, node, len, data, from).map_err(|e| e.to_string())
}

/// `message`, about a node whose processes in the job are `members`, in the node's order.
fn on_node(members: &[usize], message: &str) -> String {
    let list: Vec<String> = members.iter().map(usize::to_string).collect();
    format!(
        "on the node of processes {} (numbered 0-{} there, in that order): {message}",
        list.join(", "),
        members.len().saturating_sub(1)
    )
}

/// Makes every process of `comm` return an error if any failed to set up its copy.
fn agree<T: Pod>(
    comm: &Communicator,
    local: std::result::Result<SharedArray<T>, String>,
) -> Result<SharedArray<T>> {
    let rank = comm.rank();
    let mine = local.as_ref().err().cloned();
    let all: Vec<Option<String>> = comm
        .all_gather(&mine)
        .map_err(|e| EngineError::comm(rank, "NodeShared: agreeing on the outcome", e))?;
    if let Some((r, m)) = all
        .iter()
        .enumerate()
        .find_map(|(r, m)| m.as_ref().map(|m| (r, m)))
    {
        return Err(EngineError::comm(
            r,
            "NodeShared: setting up the node's copy",
            m,
        ));
    }
    local.map_err(|m| EngineError::comm(rank, "NodeShared", m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nodes_error_names_its_processes_in_the_job() {
        let m = on_node(&[1, 3], "rank 0: SharedArray::new: failed on rank(s) 1");
        assert!(
            m.starts_with("on the node of processes 1, 3 (numbered 0-1 there"),
            "{m}"
        );
        assert!(m.ends_with("failed on rank(s) 1"), "{m}");
    }

    fn world() -> Communicator {
        prism_comm::init().unwrap().world()
    }

    #[test]
    fn builds_once_and_reads_back() {
        let w = world();
        let mut calls = 0;
        let shared = NodeShared::build(&w, || {
            calls += 1;
            b"scene bytes".to_vec()
        })
        .unwrap();
        assert_eq!(calls, 1);
        assert_eq!(shared.bytes(), b"scene bytes");
        assert!(shared.built_here());
        assert_eq!(shared.node_count(), 1);
        assert_eq!(shared.len(), 11);
    }

    #[test]
    fn typed_data_and_bytes_agree() {
        let w = world();
        let shared = NodeShared::<f64>::build_once(&w, 0, || vec![1.5f64, -2.0]).unwrap();
        assert_eq!(&shared[..], &[1.5, -2.0]);
        assert_eq!(
            shared.bytes(),
            bytemuck::cast_slice::<f64, u8>(&[1.5, -2.0])
        );
    }

    #[test]
    fn failures_and_panics_are_errors_naming_the_builder() {
        let w = world();
        let e = NodeShared::<u8>::build(&w, || Err::<Vec<u8>, _>("no such mesh")).unwrap_err();
        assert!(matches!(&e, EngineError::Build { rank: 0, message } if message == "no such mesh"));
        let e = NodeShared::<u8>::build_once(&w, 0, || -> Vec<u8> { panic!("bad triangle") })
            .unwrap_err();
        assert!(e.to_string().contains("panicked: bad triangle"), "{e}");
        let e = NodeShared::<u8>::build_once(&w, 3, Vec::new).unwrap_err();
        assert!(e.to_string().contains("root 3"), "{e}");
    }

    /// Alone on its node, the builder's Vec is the data: no second copy is made.
    #[test]
    fn a_process_alone_keeps_the_builders_vec() {
        let w = world();
        let mut at = std::ptr::null();
        let shared = NodeShared::<u64>::build(&w, || {
            let v: Vec<u64> = (0..100_000).collect();
            at = v.as_ptr();
            v
        })
        .unwrap();
        assert!(shared.iter().enumerate().all(|(i, &x)| x == i as u64));
        assert_eq!(shared.as_slice().as_ptr(), at, "the data was copied");
        let mut at = std::ptr::null();
        let once = NodeShared::<u8>::build_once(&w, 0, || {
            let v = vec![7u8; 5000];
            at = v.as_ptr();
            v
        })
        .unwrap();
        assert_eq!(once.bytes(), &[7u8; 5000][..]);
        assert_eq!(once.bytes().as_ptr(), at, "the data was copied");
    }

    #[test]
    fn empty_data() {
        let w = world();
        let shared = NodeShared::<u32>::build(&w, Vec::new).unwrap();
        assert!(shared.is_empty());
        assert!(shared.bytes().is_empty());
    }

    #[test]
    fn is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<NodeShared>();
        check::<NodeShared<f32>>();
    }
}
