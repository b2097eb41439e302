//! Multi-process test of collectives and process sets: broadcast, gather, all-gather, sums to
//! all and to root (also in tiny pieces, as for arrays past 2^31 elements), barrier, split by
//! colour, split_shared, duplicate and the named process sets; sums whose ranks pass different
//! lengths or roots are an error on every rank, and so are values that one rank cannot encode
//! or that do not decode (no rank hangs, none succeeds alone). Every result is compared with an
//! expectation computed locally. Run under `mpirun -n 1..4`; exits non-zero on a mismatch.

use prism_comm::{Communicator, Source, Universe};

type Res<T = ()> = Result<T, Box<dyn std::error::Error>>;

macro_rules! ensure {
    ($w:expr, $cond:expr, $($arg:tt)*) => {
        if !$cond {
            eprintln!("rank {}: FAIL: {}", $w.rank(), format!($($arg)*));
            std::process::exit(1);
        }
    };
}

fn broadcasts(w: &Communicator) -> Res {
    for root in 0..w.size() {
        let value = (root, format!("root {root}"), vec![root as u16; root + 1]);
        let got = w.broadcast(root, (w.rank() == root).then(|| value.clone()))?;
        ensure!(w, got == value, "broadcast from {root}: {got:?}");
    }
    // 12 MB from the last rank.
    let big: Vec<u32> = (0..3_000_000).map(|i| i * 7).collect();
    let last = w.size() - 1;
    let got: Vec<u32> = w.broadcast(last, (w.rank() == last).then(|| big.clone()))?;
    ensure!(w, got == big, "large broadcast differs");
    // A root without a value: an error everywhere, not a hang.
    let r = w.broadcast::<u8>(0, None);
    ensure!(w, r.is_err(), "broadcast without a value succeeded: {r:?}");
    Ok(())
}

fn gathers(w: &Communicator) -> Res {
    let (n, r) = (w.size(), w.rank());
    for root in 0..n {
        let got = w.gather(root, &(r * r, format!("{r}")))?;
        if r == root {
            let expect: Vec<_> = (0..n).map(|i| (i * i, format!("{i}"))).collect();
            ensure!(
                w,
                got.as_ref() == Some(&expect),
                "gather to {root}: {got:?}"
            );
        } else {
            ensure!(w, got.is_none(), "gather gave a value off the root");
        }
    }
    // Values of different sizes, one of them empty.
    let mine: Vec<u8> = vec![r as u8; r * 1000];
    let all = w.all_gather(&mine)?;
    let expect: Vec<Vec<u8>> = (0..n).map(|i| vec![i as u8; i * 1000]).collect();
    ensure!(w, all == expect, "all_gather differs");
    Ok(())
}

/// A value whose `Serialize` fails for `u32::MAX` and whose `Deserialize` rejects 13: user
/// code the collectives must not trust to succeed on every rank alike.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Picky(u32);

impl serde::Serialize for Picky {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 == u32::MAX {
            return Err(serde::ser::Error::custom("Picky cannot encode u32::MAX"));
        }
        s.serialize_u32(self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Picky {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match u32::deserialize(d)? {
            13 => Err(serde::de::Error::custom("Picky rejects 13")),
            n => Ok(Picky(n)),
        }
    }
}

fn failing_values(w: &Communicator) -> Res {
    let (n, r, last) = (w.size(), w.rank(), w.size() - 1);
    // The last rank cannot encode its value: every rank gets an error naming it.
    let mine = Picky(if r == last { u32::MAX } else { r as u32 });
    let got = w.all_gather(&mine);
    let text = format!("{got:?}");
    ensure!(w, got.is_err(), "all_gather with a failed encode: {text}");
    ensure!(w, text.contains("all_gather"), "{text}");
    let got = w.gather(0, &mine);
    ensure!(w, (r == 0 || r == last) == got.is_err(), "gather: {got:?}");
    // The root's value cannot be encoded: an error everywhere that says so.
    let got = w.broadcast(0, (r == 0).then_some(Picky(u32::MAX)));
    let text = format!("{got:?}");
    ensure!(w, got.is_err(), "broadcast of an unencodable value: {text}");
    ensure!(
        w,
        !text.contains("no value"),
        "broadcast blames a missing value: {text}"
    );
    // A value that encodes but does not decode fails on every rank, the root's included.
    let got = w.broadcast(last, (r == last).then_some(Picky(13)));
    ensure!(w, got.is_err(), "broadcast of 13 succeeded: {got:?}");
    let got = w.all_gather(&Picky(if r == 0 { 13 } else { 1 }));
    ensure!(w, got.is_err(), "all_gather of 13 succeeded: {got:?}");
    // Nothing is out of step afterwards.
    let all = w.all_gather(&Picky(r as u32 + 100))?;
    let expect: Vec<Picky> = (0..n).map(|i| Picky(i as u32 + 100)).collect();
    ensure!(w, all == expect, "all_gather after failures: {all:?}");
    Ok(())
}

fn sums(w: &Communicator) -> Res {
    let (n, r) = (w.size(), w.rank());
    let len = 1000;
    let mine_f =
        |rank: usize| -> Vec<f64> { (0..len).map(|i| rank as f64 + i as f64 * 0.5).collect() };
    let total_f: Vec<f64> = (0..len)
        .map(|i| (0..n).map(|k| k as f64 + i as f64 * 0.5).sum())
        .collect();
    let mine_u =
        |rank: usize| -> Vec<u64> { (0..len as u64).map(|i| ((rank as u64) << 40) | i).collect() };
    let total_u: Vec<u64> = (0..len as u64)
        .map(|i| {
            (0..n as u64)
                .map(|k| (k << 40) | i)
                .fold(0u64, u64::wrapping_add)
        })
        .collect();

    let mut f = mine_f(r);
    w.sum_to_all_f64(&mut f)?;
    ensure!(w, f == total_f, "sum_to_all_f64 differs");
    let mut u = mine_u(r);
    w.sum_to_all_u64(&mut u)?;
    ensure!(w, u == total_u, "sum_to_all_u64 differs");
    // Pieces of 3 elements: the splitting used past 2^31 elements.
    let mut u = mine_u(r);
    w.sum_to_all_u64_in_pieces(&mut u, 3)?;
    ensure!(w, u == total_u, "sum in pieces of 3 differs");
    // Wrapping, and empty slices.
    let mut big = [u64::MAX];
    w.sum_to_all_u64(&mut big)?;
    ensure!(
        w,
        big[0] == (n as u64).wrapping_mul(u64::MAX),
        "wrapping sum {}",
        big[0]
    );
    w.sum_to_all_f64(&mut [])?;

    for root in 0..n {
        let mut f = mine_f(r);
        w.sum_to_root_f64(root, &mut f)?;
        let expect = if r == root {
            total_f.clone()
        } else {
            mine_f(r)
        };
        ensure!(w, f == expect, "sum_to_root_f64 to {root} differs");
        let mut u = mine_u(r);
        w.sum_to_root_u64(root, &mut u)?;
        let expect = if r == root {
            total_u.clone()
        } else {
            mine_u(r)
        };
        ensure!(w, u == expect, "sum_to_root_u64 to {root} differs");
    }
    Ok(())
}

/// Sums with slices of different lengths, or different roots, on different ranks: MPI does not
/// check them (some ranks got partial sums, another aborted the job with MPI_ERR_TRUNCATE);
/// every rank must return the same error, and later sums still work.
fn mismatched_sums(w: &Communicator) -> Res {
    let (n, r) = (w.size(), w.rank());
    let expect_err = |what: &str, e: Result<(), prism_comm::CommError>, needle: &str| match e {
        Err(e) if n > 1 => {
            let m = e.to_string();
            ensure!(w, m.contains(needle), "{what}: unexpected error: {m}");
        }
        Err(e) => ensure!(w, false, "{what} with one rank failed: {e}"),
        Ok(()) => ensure!(w, n == 1, "{what} with different arguments succeeded"),
    };
    // The last rank passes one element more; with 3+ ranks the middle ones one fewer.
    let len = |rank: usize| {
        if rank == n - 1 {
            11
        } else if rank == 0 {
            10
        } else {
            9
        }
    };
    let mut f = vec![1.0f64; len(r)];
    expect_err(
        "sum_to_all_f64",
        w.sum_to_all_f64(&mut f),
        "different lengths",
    );
    ensure!(w, f.iter().all(|&x| x == 1.0), "a refused sum changed data");
    let mut u = vec![1u64; len(r)];
    expect_err(
        "sum_to_all_u64",
        w.sum_to_all_u64(&mut u),
        "different lengths",
    );
    expect_err(
        "sum_to_all_u64_in_pieces",
        w.sum_to_all_u64_in_pieces(&mut u, 3),
        "different lengths",
    );
    for root in 0..n {
        expect_err(
            "sum_to_root_f64",
            w.sum_to_root_f64(root, &mut f),
            "different lengths",
        );
        expect_err(
            "sum_to_root_u64",
            w.sum_to_root_u64(root, &mut u),
            "different lengths",
        );
    }
    ensure!(w, u.iter().all(|&x| x == 1), "a refused sum changed data");
    // Same lengths, different roots (one of them out of range).
    if n > 1 {
        let mut same = vec![1u64; 4];
        expect_err(
            "sum_to_root_u64 with different roots",
            w.sum_to_root_u64(if r == n - 1 { n } else { 0 }, &mut same),
            "different roots",
        );
    }
    // The same root out of range everywhere: the same error everywhere.
    let e = w.sum_to_root_f64(n, &mut [1.0]);
    ensure!(
        w,
        matches!(e, Err(prism_comm::CommError::InvalidRank { given, .. }) if given == n),
        "root {n} of {n}: {e:?}"
    );
    // Nothing is left half done: a good sum afterwards adds up.
    let mut ok = vec![r as u64 + 1; 5];
    w.sum_to_all_u64(&mut ok)?;
    ensure!(
        w,
        ok == vec![(n * (n + 1) / 2) as u64; 5],
        "sum after refusals: {ok:?}"
    );
    Ok(())
}

fn splits(w: &Communicator) -> Res {
    let (n, r) = (w.size(), w.rank());
    // Two colours, ordered by decreasing world rank.
    let sub = w
        .split(Some((r % 2) as u32), -(r as i32))?
        .ok_or("split gave no communicator")?;
    let members: Vec<usize> = (0..n).filter(|k| k % 2 == r % 2).rev().collect();
    ensure!(w, sub.size() == members.len(), "split size {}", sub.size());
    ensure!(
        w,
        members[sub.rank()] == r,
        "split rank {} for world rank {r}",
        sub.rank()
    );
    let ranks = sub.all_gather(&r)?;
    ensure!(w, ranks == members, "split members {ranks:?}");
    // Messages inside the split stay inside it.
    sub.send(0, 4, &r)?;
    if sub.is_root() {
        let got: Vec<usize> = (0..sub.size())
            .map(|_| sub.recv::<usize>(Source::Any, 4).map(|v| v.0))
            .collect::<Result<_, _>>()?;
        ensure!(
            w,
            got.iter().all(|g| members.contains(g)),
            "split messages {got:?}"
        );
    }
    // Undefined colour.
    let odd = w.split((r % 2 == 0).then_some(1), 0)?;
    ensure!(
        w,
        odd.is_some() == (r % 2 == 0),
        "undefined colour gave {odd:?}"
    );
    // One machine: everyone shares memory.
    let shared = w.split_shared()?;
    ensure!(
        w,
        shared.size() == n && shared.rank() == r,
        "split_shared {shared:?}"
    );
    // A duplicate does not see the original's messages.
    let dup = w.duplicate()?;
    w.send(r, 5, &1u8)?;
    ensure!(
        w,
        dup.try_recv::<u8>(Source::Any, 5)?.is_none(),
        "duplicate saw a message"
    );
    w.recv::<u8>(r, 5)?;
    Ok(())
}

fn process_sets(u: &Universe, w: &Communicator) -> Res {
    let n = w.size();
    let names = u.process_set_names();
    ensure!(w, names.len() == 4, "names {names:?}");
    let world = u.open("mpi://WORLD")?.ok_or("no world")?;
    ensure!(
        w,
        world.size() == n && world.rank() == w.rank(),
        "WORLD {world:?}"
    );
    let me = u.open("mpi://SELF")?.ok_or("no self")?;
    ensure!(w, me.size() == 1 && me.rank() == 0, "SELF {me:?}");
    let node = u.open("prism://node")?.ok_or("no node")?;
    ensure!(
        w,
        node.size() == n,
        "node set holds {} of {n} ranks",
        node.size()
    );
    let leaders = u.open("prism://node-leaders")?;
    let count = w
        .all_gather(&leaders.is_some())?
        .iter()
        .filter(|&&b| b)
        .count();
    ensure!(w, count == 1, "{count} node leaders on one machine");
    if let Some(l) = &leaders {
        ensure!(
            w,
            l.size() == 1 && w.rank() == 0,
            "leader {l:?} on rank {}",
            w.rank()
        );
    }
    ensure!(w, u.open("mpi://nowhere").is_err(), "an unknown set opened");
    ensure!(w, u.is_mpi() == (n > 1 || w.is_mpi()), "is_mpi");
    ensure!(w, !u.processor_name().is_empty(), "no processor name");
    // MPI initialises once per process.
    let again = prism_comm::init();
    ensure!(
        w,
        again.is_err() == u.is_mpi(),
        "a second init gave {again:?}"
    );
    Ok(())
}

fn run(u: &Universe, w: &Communicator) -> Res {
    broadcasts(w)?;
    gathers(w)?;
    failing_values(w)?;
    sums(w)?;
    mismatched_sums(w)?;
    w.barrier().expect("barrier");
    splits(w)?;
    process_sets(u, w)?;
    Ok(())
}

fn main() {
    let universe = prism_comm::init().unwrap_or_else(|e| {
        eprintln!("FAIL: {e}");
        std::process::exit(1)
    });
    universe.abort_on_panic();
    let world = universe.world();
    if let Err(e) = run(&universe, &world) {
        eprintln!("rank {}: FAIL: {e}", world.rank());
        world.abort(1);
    }
    world.barrier().expect("barrier");
    if world.is_root() {
        println!("mpitest_collectives: ok with {} ranks", world.size());
    }
}
