//! Multi-process test of `NodeShared` (run by CI under `mpirun -n 1..4`).
//!
//! - Real nodes (one machine): the builder runs once in all (counted with a sum over the
//!   processes), every process sees the same bytes (checked with an all-gather of a checksum),
//!   and there is one node.
//! - Virtual nodes (the world split in two by rank parity): each virtual node builds once
//!   (two builds when there are two or more processes), and each process sees its own node's
//!   data; the build-once variant builds once and every node sees the root's data.
//! - A failing builder on one node fails every process alike.
//! - Render threads of an engine read the shared data.
//!
//! Exits non-zero on any process where something mismatched.

use prism_comm::Communicator;
use prism_engines::{Engine, EngineError, HybridEngine, NodeShared};

fn fail(world: &Communicator, what: String) -> ! {
    eprintln!(
        "mpitest_node_shared: process {}: FAILED: {what}",
        world.rank()
    );
    world.abort(1)
}

macro_rules! check {
    ($world:expr, $cond:expr, $($fmt:tt)+) => {
        if !$cond {
            fail($world, format!($($fmt)+));
        }
    };
}

/// A "scene" that names the process that built it.
fn scene(builder: usize, len: usize) -> Vec<u8> {
    let mut v: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
    v[..8].copy_from_slice(&(builder as u64).to_le_bytes());
    v
}

fn builder_of(bytes: &[u8]) -> usize {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(b) as usize
}

fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Builds run on all processes together.
fn total(world: &Communicator, local: u64) -> u64 {
    let mut v = [local];
    world
        .sum_to_all_u64(&mut v)
        .unwrap_or_else(|e| fail(world, format!("sum: {e}")));
    v[0]
}

fn main() {
    let universe = match prism_comm::init() {
        Ok(u) => u,
        Err(e) => {
            eprintln!("mpitest_node_shared: init failed: {e}");
            std::process::exit(1);
        }
    };
    let world = universe.world();
    let (rank, size) = (world.rank(), world.size());
    let len = 1 << 20;

    // Real nodes: this machine is one node.
    let mut builds = 0u64;
    let shared = NodeShared::build(&world, || {
        builds += 1;
        scene(rank, len)
    })
    .unwrap_or_else(|e| fail(&world, format!("build: {e}")));
    check!(
        &world,
        total(&world, builds) == 1,
        "{} builds on one node",
        total(&world, builds)
    );
    check!(
        &world,
        shared.node_count() == 1,
        "node count {}",
        shared.node_count()
    );
    check!(&world, shared.len() == len, "length {}", shared.len());
    check!(
        &world,
        builder_of(shared.bytes()) == 0,
        "built by {}",
        builder_of(shared.bytes())
    );
    check!(
        &world,
        shared.bytes() == scene(0, len).as_slice(),
        "bytes differ from the build"
    );
    let sums: Vec<u64> = world
        .all_gather(&checksum(shared.bytes()))
        .unwrap_or_else(|e| fail(&world, e.to_string()));
    check!(
        &world,
        sums.iter().all(|&s| s == sums[0]),
        "processes see different bytes: {sums:?}"
    );
    check!(
        &world,
        shared.is_node_shared() == (size > 1),
        "node-shared: {}",
        shared.is_node_shared()
    );
    let leaders = universe
        .open(prism_comm::NODE_LEADERS)
        .unwrap_or_else(|e| fail(&world, e.to_string()));
    let leader_count = total(&world, u64::from(leaders.is_some()));
    check!(
        &world,
        leader_count == 1,
        "{leader_count} node leaders on one machine"
    );

    // Render threads read it directly.
    let engine = HybridEngine::new(&world, 2).unwrap_or_else(|e| fail(&world, e.to_string()));
    let data = shared.bytes();
    let mut sum = 0u64;
    engine
        .run_indexed(
            &(0..64usize).collect::<Vec<_>>(),
            |&i| Ok::<_, String>(u64::from(data[8 + i * 1000])),
            |_, v| {
                sum += v;
                Ok(())
            },
        )
        .unwrap_or_else(|e| fail(&world, e.to_string()));
    if rank == 0 {
        let expect: u64 = (0..64)
            .map(|i| u64::from(scene(0, len)[8 + i * 1000]))
            .sum();
        check!(
            &world,
            sum == expect,
            "render threads read {sum}, expected {expect}"
        );
    }

    // Virtual nodes: even and odd ranks.
    let colour = (rank % 2) as u32;
    let node = world
        .split(Some(colour), rank as i32)
        .unwrap_or_else(|e| fail(&world, e.to_string()))
        .unwrap_or_else(|| fail(&world, "split gave no communicator".to_string()));
    let nodes = size.min(2);
    let mut builds = 0u64;
    let per_node = NodeShared::build_with_node(&world, &node, || {
        builds += 1;
        scene(rank, 4096 + 8 * colour as usize)
    })
    .unwrap_or_else(|e| fail(&world, format!("virtual build: {e}")));
    let all_builds = total(&world, builds);
    check!(
        &world,
        all_builds == nodes as u64,
        "{all_builds} builds on {nodes} virtual nodes"
    );
    check!(
        &world,
        per_node.node_count() == nodes,
        "virtual node count {}",
        per_node.node_count()
    );
    let by = builder_of(per_node.bytes());
    check!(
        &world,
        by % 2 == rank % 2 && by == rank % 2,
        "process {rank} sees data built by {by}"
    );
    check!(
        &world,
        per_node.len() == 4096 + 8 * colour as usize,
        "virtual length {}",
        per_node.len()
    );
    check!(
        &world,
        per_node.built_here() == (node.rank() == 0),
        "built_here"
    );

    // Build once, copy to every virtual node.
    let mut builds = 0u64;
    let root = size - 1;
    let once = NodeShared::<u8>::build_once_with_node(&world, &node, root, || {
        builds += 1;
        scene(rank, 10_000)
    })
    .unwrap_or_else(|e| fail(&world, format!("build once: {e}")));
    check!(
        &world,
        total(&world, builds) == 1,
        "build once ran {} times",
        total(&world, builds)
    );
    check!(
        &world,
        builder_of(once.bytes()) == root,
        "build once: data of {}",
        builder_of(once.bytes())
    );
    check!(
        &world,
        once.bytes() == scene(root, 10_000).as_slice(),
        "build once: bytes differ"
    );
    check!(
        &world,
        once.node_count() == nodes,
        "build once: {} nodes",
        once.node_count()
    );

    // A builder failing on the odd node fails every process.
    let r = NodeShared::<u8>::build_with_node(&world, &node, || {
        if colour == 1 {
            Err(format!("cannot read mesh on process {rank}"))
        } else {
            Ok(scene(rank, 100))
        }
    });
    if size > 1 {
        check!(
            &world,
            matches!(&r, Err(EngineError::Build { rank: 1, message }) if message == "cannot read mesh on process 1"),
            "failing build gave {r:?}"
        );
    } else {
        check!(&world, r.is_ok(), "one process: {r:?}");
    }

    // Node communicators that do not partition the world (rank 0 names the whole world as
    // its node, the others their parity's): every process gets the same error, no hang.
    if size > 1 {
        let whole = world
            .split(Some(0), rank as i32)
            .unwrap_or_else(|e| fail(&world, e.to_string()))
            .unwrap_or_else(|| fail(&world, "split gave no communicator".to_string()));
        let mine = if rank == 0 { &whole } else { &node };
        let r = NodeShared::<u8>::build_with_node(&world, mine, || scene(rank, 10));
        let said = r
            .as_ref()
            .err()
            .map(ToString::to_string)
            .unwrap_or_default();
        check!(
            &world,
            said.contains("not a partition"),
            "overlapping nodes gave {:?}",
            r.map(|t| t.len())
        );
    }

    world.barrier().expect("barrier");
    if rank == 0 {
        println!("mpitest_node_shared: {size} processes: all checks passed");
    }
}
