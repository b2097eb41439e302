//! Multi-process test of node-shared arrays: `set` from each rank in turn, seen bit-exactly by
//! every rank; one physical copy per node, on the real node and on "virtual nodes" (the world
//! split by colour, rank % 2); sizes 0 and 2^31 + 16; no name left in /dev/shm while arrays
//! are alive or after. Node communicators that do not partition the world, and a failed
//! plain allocation on some nodes only, are errors on every rank; a rank alone on its node
//! keeps the Vec it hands over. Run under `mpirun -n 1..4`; exits non-zero on a mismatch.

use prism_comm::{Communicator, SharedArray, SEGMENT_PREFIX};

type Res<T = ()> = Result<T, Box<dyn std::error::Error>>;

macro_rules! ensure {
    ($w:expr, $cond:expr, $($arg:tt)*) => {
        if !$cond {
            eprintln!("rank {}: FAIL: {}", $w.rank(), format!($($arg)*));
            std::process::exit(1);
        }
    };
}

/// Awkward bit patterns: signed zeros, NaN payloads, subnormals, infinities.
fn piece(from: usize, len: usize) -> Vec<f64> {
    (0..len)
        .map(|i| match (i + from) % 5 {
            0 => -0.0,
            1 => f64::from_bits(0x7ff8_0000_0000_0000 | (from as u64 * 1000 + i as u64)),
            2 => f64::from_bits(1 + i as u64),
            3 => f64::NEG_INFINITY,
            _ => (from * 1000 + i) as f64 / 3.0,
        })
        .collect()
}

/// The mapping of /proc/self/maps that holds `addr`: (inode, path).
fn mapping_of(addr: usize) -> Option<(u64, String)> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines().find_map(|line| {
        let mut f = line.split_whitespace();
        let range = f.next()?;
        let (lo, hi) = range.split_once('-')?;
        let (lo, hi) = (
            usize::from_str_radix(lo, 16).ok()?,
            usize::from_str_radix(hi, 16).ok()?,
        );
        if !(lo..hi).contains(&addr) {
            return None;
        }
        let _perms = f.next()?;
        let _offset = f.next()?;
        let _dev = f.next()?;
        let inode = f.next()?.parse().ok()?;
        Some((inode, f.collect::<Vec<_>>().join(" ")))
    })
}

/// Segments in /dev/shm named after one of `pids` (there must be none: names go at once).
fn named_segments(pids: &[u32]) -> Vec<String> {
    std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| {
                    pids.iter()
                        .any(|p| n.starts_with(&format!("{SEGMENT_PREFIX}{p}-")))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Sets a piece from every rank in turn and checks the whole array on every rank each time.
fn set_from_each_rank(w: &Communicator, a: &mut SharedArray<f64>, what: &str) -> Res {
    let n = w.size();
    let chunk = a.len() / n;
    let mut expect = vec![0.0f64; a.len()];
    for from in 0..n {
        let data = piece(from, chunk + from % 2);
        let offset = from * chunk;
        a.set(offset, (w.rank() == from).then_some(&data[..]), from)?;
        expect[offset..offset + data.len()].copy_from_slice(&data);
        let same = a
            .iter()
            .zip(&expect)
            .all(|(x, y)| x.to_bits() == y.to_bits());
        ensure!(
            w,
            same,
            "{what}: after the set from rank {from} the array differs"
        );
    }
    Ok(())
}

/// Checks that the array is one physical copy per node: `colour` names the node.
fn one_copy_per_node(
    w: &Communicator,
    a: &SharedArray<f64>,
    colour: usize,
    node_size: usize,
) -> Res {
    let here = if a.is_node_shared() {
        let (inode, path) =
            mapping_of(a.as_ptr() as usize).ok_or("the array is not in /proc/self/maps")?;
        ensure!(
            w,
            path.starts_with(&format!("/dev/shm/{SEGMENT_PREFIX}")) && path.ends_with("(deleted)"),
            "the array maps {path:?}"
        );
        Some(inode)
    } else {
        None
    };
    ensure!(
        w,
        a.is_node_shared() == (node_size > 1),
        "node of {node_size} ranks, shared: {}",
        a.is_node_shared()
    );
    let all: Vec<(usize, Option<u64>)> = w.all_gather(&(colour, here))?;
    for (r, (c, inode)) in all.iter().enumerate() {
        for (c2, inode2) in &all[r + 1..] {
            if inode.is_some() && inode2.is_some() {
                ensure!(
                    w,
                    (c == c2) == (inode == inode2),
                    "nodes {c}, {c2} and segments {inode:?}, {inode2:?}"
                );
            }
        }
    }
    let mut segments: Vec<u64> = all.iter().filter_map(|x| x.1).collect();
    segments.sort_unstable();
    segments.dedup();
    let shared_nodes = {
        let mut sizes = std::collections::HashMap::new();
        for (c, _) in &all {
            *sizes.entry(*c).or_insert(0) += 1;
        }
        sizes.values().filter(|&&s| s > 1).count()
    };
    ensure!(
        w,
        segments.len() == shared_nodes,
        "{} segments for {shared_nodes} shared nodes",
        segments.len()
    );
    Ok(())
}

fn run(w: &Communicator) -> Res {
    let (n, r) = (w.size(), w.rank());
    let pids: Vec<u32> = w.all_gather(&std::process::id())?;

    // The real node: every rank of this machine.
    let mut a = SharedArray::<f64>::new(w, 1000 * n + 3)?;
    ensure!(
        w,
        a.node_count() == 1,
        "{} nodes on one machine",
        a.node_count()
    );
    one_copy_per_node(w, &a, 0, n)?;
    set_from_each_rank(w, &mut a, "real node")?;

    // Virtual nodes: ranks 0, 2 and 1, 3.
    let colour = r % 2;
    let node = w
        .split(Some(colour as u32), r as i32)?
        .ok_or("no virtual node")?;
    let mut v = SharedArray::<f64>::with_node(w, &node, 500 * n + 1)?;
    ensure!(
        w,
        v.node_count() == n.min(2),
        "{} virtual nodes",
        v.node_count()
    );
    one_copy_per_node(w, &v, colour, node.size())?;
    set_from_each_rank(w, &mut v, "virtual nodes")?;
    ensure!(
        w,
        named_segments(&pids).is_empty(),
        "names left in /dev/shm: {:?}",
        named_segments(&pids)
    );

    // Errors reach every rank instead of hanging some.
    let last = n - 1;
    let e = v.set(v.len(), (r == last).then_some(&[1.0][..]), last);
    ensure!(w, e.is_err(), "a set past the end succeeded");
    let e = v.set(0, None, last);
    ensure!(w, e.is_err(), "a set without data succeeded");
    let lengths_differ = SharedArray::<u8>::new(w, 10 + r % 2);
    ensure!(
        w,
        lengths_differ.is_err() == (n > 1),
        "different lengths: {lengths_differ:?}"
    );

    // Size 0.
    let mut z = SharedArray::<u64>::with_node(w, &node, 0)?;
    ensure!(w, z.is_empty() && z.as_slice().is_empty(), "empty array");
    z.set(0, (r == 0).then_some(&[][..]), 0)?;

    // More than 2^31 elements: untouched pages cost nothing.
    let len = (1usize << 31) + 16;
    for (what, on) in [("real node", None), ("virtual nodes", Some(&node))] {
        let mut big = match on {
            None => SharedArray::<u8>::new(w, len)?,
            Some(node) => SharedArray::<u8>::with_node(w, node, len)?,
        };
        let tail = [1u8, 2, 3, (r % 256) as u8];
        big.set(len - 4, (r == last).then_some(&tail[..]), last)?;
        let want = [1u8, 2, 3, (last % 256) as u8];
        ensure!(
            w,
            big[len - 4..] == want,
            "{what}: tail {:?}",
            &big[len - 4..]
        );
        ensure!(
            w,
            big[len - 5] == 0 && big[0] == 0,
            "{what}: untouched elements changed"
        );
    }

    drop((a, v, z));
    w.barrier().expect("barrier");
    ensure!(
        w,
        named_segments(&pids).is_empty(),
        "names left in /dev/shm after drop"
    );
    Ok(())
}

/// `set` with a `from_rank` that differs between ranks, out of range on one of them: every
/// rank returns an error (none hangs in a broadcast with a root the others do not use), and
/// the array is unchanged and still usable.
fn disagreeing_from_rank(w: &Communicator) -> Res {
    let (n, r) = (w.size(), w.rank());
    let mut a = SharedArray::<u32>::new(w, 4)?;
    // The last rank names a rank that does not exist; the others name rank 0.
    let from = if r == n - 1 { n } else { 0 };
    let result = a.set(0, Some(&[1]), from);
    ensure!(
        w,
        result.is_err(),
        "set with from_rank {from} on rank {r} (0 on the others) succeeded"
    );
    let message = result.unwrap_err().to_string();
    if n > 1 {
        ensure!(
            w,
            message.contains("different from_rank"),
            "unexpected error: {message}"
        );
    }
    // Every rank in range but different (with 2+ ranks): also an error on every rank.
    if n > 1 {
        let result = a.set(0, Some(&[2]), r % 2);
        ensure!(
            w,
            result.is_err(),
            "set with from_rank {} on rank {r} succeeded",
            r % 2
        );
    }
    ensure!(w, a[..] == [0, 0, 0, 0], "array changed: {:?}", &a[..]);
    a.set(1, (r == n - 1).then_some(&[7][..]), n - 1)?;
    ensure!(w, a[..] == [0, 7, 0, 0], "after a good set: {:?}", &a[..]);
    Ok(())
}

/// Node communicators that do not partition the world (rank 0 passes the whole world, the
/// others their parity group): every rank returns the "not a partition" error, none hangs in
/// a collective on its mismatched node, and none decodes another's message.
fn not_a_partition(w: &Communicator) -> Res {
    let (n, r) = (w.size(), w.rank());
    let parity = w
        .split(Some((r % 2) as u32), r as i32)?
        .ok_or("no parity group")?;
    let leaders = w.node_leaders(&parity)?;
    let expect: Vec<usize> = (0..n).map(|k| k % 2).collect();
    ensure!(w, leaders == expect, "parity leaders {leaders:?}");
    if n == 1 {
        return Ok(());
    }
    let node = if r == 0 { w.clone() } else { parity };
    let a = SharedArray::<u32>::with_node(w, &node, 10);
    let message = a.map(|_| ()).unwrap_err_or_ok();
    ensure!(
        w,
        message.contains("not a partition"),
        "with_node on overlapping nodes: {message}"
    );
    let message = w.node_leaders(&node).map(|_| ()).unwrap_err_or_ok();
    ensure!(
        w,
        message.contains("not a partition"),
        "node_leaders on overlapping nodes: {message}"
    );
    let message = SharedArray::with_node_from_vec(w, &node, 3, (r == 0).then(|| vec![1u8; 3]), 0)
        .map(|_| ())
        .unwrap_err_or_ok();
    ensure!(
        w,
        message.contains("not a partition"),
        "with_node_from_vec on overlapping nodes: {message}"
    );
    Ok(())
}

trait ErrText {
    fn unwrap_err_or_ok(self) -> String;
}

impl ErrText for Result<(), prism_comm::CommError> {
    fn unwrap_err_or_ok(self) -> String {
        self.map_or_else(|e| e.to_string(), |()| "Ok".to_string())
    }
}

/// A rank alone on its node whose plain allocation fails while other nodes' segments are
/// made: every rank returns the error (none returns Ok, none panics). The allocation is made
/// to fail by an address-space limit on the ranks alone on their node.
fn plain_allocation_fails_on_some_nodes(w: &Communicator) -> Res {
    let r = w.rank();
    let node = w
        .split(Some((r % 2) as u32), r as i32)?
        .ok_or("no virtual node")?;
    let alone: Vec<bool> = w.all_gather(&(node.size() == 1))?;
    if !alone.iter().any(|&a| a) {
        return Ok(());
    }
    let bytes = 256usize << 20;
    let limit = |cur: libc::rlim_t| -> Res<libc::rlimit> {
        let mut old = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `old` is a valid rlimit to fill; the new one only lowers the soft limit
        // (or puts back the one read), which any process may do.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_AS, &mut old) != 0 {
                return Err("getrlimit".into());
            }
            let new = libc::rlimit {
                rlim_cur: cur,
                rlim_max: old.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &new) != 0 {
                return Err("setrlimit".into());
            }
        }
        Ok(old)
    };
    let vm_kib: u64 = std::fs::read_to_string("/proc/self/status")?
        .lines()
        .find_map(|l| l.strip_prefix("VmSize:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or("no VmSize")?;
    let old = if node.size() == 1 {
        // Room for MPI's allocations and a panic's backtrace (a new malloc arena reserves
        // 64 MiB), not for the array.
        Some(limit((vm_kib << 10) + (bytes as u64) * 3 / 4)?)
    } else {
        None
    };
    let a = SharedArray::<u8>::with_node(w, &node, bytes);
    if let Some(old) = old {
        limit(old.rlim_cur)?;
    }
    let message = a.map(|_| ()).unwrap_err_or_ok();
    ensure!(
        w,
        message.contains(&format!("{bytes} bytes requested")),
        "an allocation refused on a rank alone on its node: {message}"
    );
    // Without the limit the same array is made everywhere.
    let a = SharedArray::<u8>::with_node(w, &node, bytes)?;
    ensure!(w, a.len() == bytes, "array of {} bytes", a.len());
    Ok(())
}

/// `with_node_from_vec` from each rank in turn: every rank sees the data, and a sender alone
/// on its node keeps its Vec as its node's copy (no second allocation).
fn from_vec(w: &Communicator) -> Res {
    let (n, r) = (w.size(), w.rank());
    let virtual_node = w
        .split(Some((r % 2) as u32), r as i32)?
        .ok_or("no virtual node")?;
    let real_node = w.split_shared()?;
    for (what, node) in [("real node", &real_node), ("virtual nodes", &virtual_node)] {
        for from in 0..n {
            let data = piece(from, 300 * n + from);
            let len = data.len();
            let ptr = data.as_ptr();
            let a =
                SharedArray::with_node_from_vec(w, node, len, (r == from).then_some(data), from)?;
            let expect = piece(from, len);
            ensure!(
                w,
                a.iter()
                    .zip(&expect)
                    .all(|(x, y)| x.to_bits() == y.to_bits()),
                "{what}: data from rank {from} differs"
            );
            if r == from {
                ensure!(
                    w,
                    (a.as_ptr() == ptr) == (node.size() == 1),
                    "{what}: sender alone on its node: {}, its Vec kept: {}",
                    node.size() == 1,
                    a.as_ptr() == ptr
                );
            }
            ensure!(
                w,
                a.is_node_shared() == (node.size() > 1),
                "{what}: node of {} shared: {}",
                node.size(),
                a.is_node_shared()
            );
        }
    }
    Ok(())
}

fn main() {
    let universe = prism_comm::init().unwrap_or_else(|e| {
        eprintln!("FAIL: {e}");
        std::process::exit(1)
    });
    universe.abort_on_panic();
    let world = universe.world();
    let all = run(&world)
        .and_then(|()| disagreeing_from_rank(&world))
        .and_then(|()| not_a_partition(&world))
        .and_then(|()| plain_allocation_fails_on_some_nodes(&world))
        .and_then(|()| from_vec(&world));
    if let Err(e) = all {
        eprintln!("rank {}: FAIL: {e}", world.rank());
        world.abort(1);
    }
    world.barrier().expect("barrier");
    if world.is_root() {
        println!("mpitest_shared: ok with {} ranks", world.size());
    }
}
