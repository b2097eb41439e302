//! Multi-process test of point-to-point messages: typed values of 0 bytes, structs, 100 MB,
//! unknown sizes, tag selection, any-source receives, non-blocking sends and a non-blocking
//! receive completed while computing. Run under `mpirun -n 1..4`; exits non-zero on a mismatch.

use std::time::{Duration, Instant};

use prism_comm::{CommError, Communicator, Source, TagSel};
use serde::{Deserialize, Serialize};

type Res<T = ()> = Result<T, Box<dyn std::error::Error>>;

macro_rules! ensure {
    ($w:expr, $cond:expr, $($arg:tt)*) => {
        if !$cond {
            eprintln!("rank {}: FAIL: {}", $w.rank(), format!($($arg)*));
            std::process::exit(1);
        }
    };
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Parcel {
    from: usize,
    label: String,
    values: Vec<f64>,
    nested: Option<(u8, i64)>,
}

fn parcel(from: usize) -> Parcel {
    Parcel {
        from,
        label: format!("parcel from {from}"),
        values: (0..from * 3 + 1).map(|i| i as f64 * -0.25).collect(),
        nested: from
            .is_multiple_of(2)
            .then_some((from as u8, -(from as i64) * 1_000_000_007)),
    }
}

fn ring(w: &Communicator) -> Res {
    let (n, r) = (w.size(), w.rank());
    // A non-blocking send, then a blocking receive: no deadlock even with one rank.
    let req = w.isend((r + 1) % n, 1, &parcel(r))?;
    let (got, st): (Parcel, _) = w.recv((r + n - 1) % n, 1)?;
    req.wait();
    let from = (r + n - 1) % n;
    ensure!(w, got == parcel(from), "ring: got {got:?}");
    ensure!(w, st.source == from && st.tag == 1, "ring status {st:?}");
    Ok(())
}

fn empty_messages_any_source(w: &Communicator) -> Res {
    let req = w.isend(0, 2, &())?;
    if w.is_root() {
        let mut seen = vec![false; w.size()];
        for _ in 0..w.size() {
            let ((), st) = w.recv(Source::Any, 2)?;
            ensure!(w, st.bytes == 0, "a unit value is {} bytes", st.bytes);
            ensure!(w, !seen[st.source], "two empty messages from {}", st.source);
            seen[st.source] = true;
        }
    }
    req.wait();
    Ok(())
}

fn unknown_sizes(w: &Communicator) -> Res {
    let r = w.rank();
    let mine: Vec<u32> = (0..(1000 * r + 7) as u32).map(|i| i ^ r as u32).collect();
    let req = w.isend(0, 3, &mine)?;
    if w.is_root() {
        for _ in 0..w.size() {
            let st = w.probe(Source::Any, 3);
            let (v, st2): (Vec<u32>, _) = w.recv(st.source, 3)?;
            ensure!(w, st == st2, "probe {st:?} vs receive {st2:?}");
            let expect: Vec<u32> = (0..(1000 * st.source + 7) as u32)
                .map(|i| i ^ st.source as u32)
                .collect();
            ensure!(w, v == expect, "vector from {} differs", st.source);
        }
    }
    req.wait();
    Ok(())
}

fn tags_select(w: &Communicator) -> Res {
    let (n, r) = (w.size(), w.rank());
    let to = (r + 1) % n;
    let a = w.isend(to, 10, &"first")?;
    let b = w.isend(to, 11, &"second".to_string())?;
    // Take the later tag first.
    let from = (r + n - 1) % n;
    let (s11, _): (String, _) = w.recv(from, 11)?;
    let (s10, st): (String, _) = w.recv(Source::Any, TagSel::Any)?;
    ensure!(
        w,
        s11 == "second" && s10 == "first" && st.tag == 10,
        "tags: {s11} {s10} {st:?}"
    );
    a.wait();
    b.wait();
    // A value of the wrong type is an error naming source and tag, not a crash.
    let c = w.isend(to, 12, &7u8)?;
    match w.recv::<Parcel>(from, 12) {
        Err(e @ CommError::Deserialize { .. }) => {
            let text = e.to_string();
            ensure!(
                w,
                text.contains("tag 12") && text.contains(&format!("rank {from}")),
                "{text}"
            );
        }
        other => ensure!(w, false, "decoding a u8 as Parcel gave {other:?}"),
    }
    c.wait();
    ensure!(
        w,
        w.send(n, 0, &1u8).is_err(),
        "sending to rank {n} succeeded"
    );
    ensure!(
        w,
        w.try_recv::<u8>(Source::Any, 99)?.is_none(),
        "a message nobody sent"
    );
    Ok(())
}

fn hundred_megabytes(w: &Communicator) -> Res {
    let (n, r) = (w.size(), w.rank());
    let len = 100 * 1024 * 1024;
    let make = || -> Vec<u8> { (0..len).map(|i| (i % 251) as u8).collect() };
    let (src, dst) = (0, n - 1);
    let mut req = None;
    if r == src {
        let mut q = w.isend(dst, 20, &make())?;
        // The request owns its buffer; testing does not block.
        let _ = q.test();
        req = Some(q);
    }
    if r == dst {
        let (v, st): (Vec<u8>, _) = w.recv(src, 20)?;
        ensure!(w, st.bytes > len, "status says {} bytes", st.bytes);
        ensure!(w, v.len() == len && v == make(), "100 MB differ");
    }
    if let Some(q) = req {
        q.wait();
    }
    Ok(())
}

fn receive_while_computing(w: &Communicator) -> Res {
    let (n, r) = (w.size(), w.rank());
    let last = n - 1;
    let mut pending = None;
    if r == 0 {
        pending = Some(w.irecv::<Vec<u64>>(last, 30));
    }
    if r == last && n > 1 {
        std::thread::sleep(Duration::from_millis(300));
        w.send(0, 30, &vec![42u64; 1000])?;
    }
    if let Some(mut req) = pending {
        let start = Instant::now();
        let mut work = 0u64;
        let mut polls = 0u64;
        let got = loop {
            // Some computation between tests.
            for i in 0..10_000u64 {
                work = work.wrapping_mul(6364136223846793005).wrapping_add(i);
            }
            polls += 1;
            if n == 1 && polls == 50 {
                w.send(0, 30, &vec![42u64; 1000])?;
            }
            if let Some(v) = req.test()? {
                break v;
            }
            ensure!(
                w,
                start.elapsed() < Duration::from_secs(60),
                "receive never completed"
            );
        };
        ensure!(
            w,
            got.0 == vec![42u64; 1000],
            "non-blocking receive got other data"
        );
        ensure!(
            w,
            polls > 1,
            "the receive completed before any computation ({polls} polls)"
        );
        std::hint::black_box(work);
        println!("rank 0: received after {polls} rounds of computation");
    }
    Ok(())
}

/// With MPI (Funneled), another thread may hold a communicator but not call MPI through it.
fn other_threads_are_refused(w: &Communicator) -> Res {
    let c = w.clone();
    let r = std::thread::spawn(move || c.send(0, 40, &1u8))
        .join()
        .map_err(|_| "thread panicked")?;
    if w.is_mpi() {
        ensure!(
            w,
            matches!(r, Err(CommError::WrongThread { .. })),
            "send from a worker thread: {r:?}"
        );
    } else {
        ensure!(w, r.is_ok(), "send from a thread without MPI: {r:?}");
        w.recv::<u8>(0, 40)?;
    }
    Ok(())
}

/// Under `abort_on_panic`, a panic that `catch_panic` catches is an error on that rank, not
/// the end of the job: the ranks then still meet in a collective.
fn caught_panics_do_not_abort(w: &Communicator) -> Res {
    let caught = prism_comm::catch_panic(|| {
        if w.rank() == w.size() - 1 {
            panic!("expected: a parser's panic on the last rank");
        }
        w.rank()
    });
    let mine = caught.is_err();
    ensure!(w, mine == (w.rank() == w.size() - 1), "caught: {mine}");
    let all: Vec<bool> = w.all_gather(&mine)?;
    ensure!(
        w,
        all.iter().filter(|&&c| c).count() == 1,
        "caught on {all:?}"
    );
    Ok(())
}

fn run(w: &Communicator) -> Res {
    caught_panics_do_not_abort(w)?;
    other_threads_are_refused(w)?;
    ring(w)?;
    empty_messages_any_source(w)?;
    unknown_sizes(w)?;
    tags_select(w)?;
    w.barrier().expect("barrier");
    hundred_megabytes(w)?;
    receive_while_computing(w)?;
    matched_receive_never_waits_for_its_sender(w)?;
    Ok(())
}

/// A large message crosses in several steps, and unless the transport copies by itself each
/// step needs the sender to call into MPI. Here the sender makes no MPI call at all until the
/// receiver has seen the message matched but incomplete (it learns that through a file, not
/// through MPI): a `test` that waited for the rest of the message would wait forever.
fn matched_receive_never_waits_for_its_sender(w: &Communicator) -> Res {
    let (n, r) = (w.size(), w.rank());
    if n < 2 {
        return Ok(());
    }
    let last = n - 1;
    let flag = std::env::temp_dir().join(format!("prism-mpitest-{}.go", std::process::id()));
    let flag: std::path::PathBuf = w.broadcast(0, (r == 0).then_some(flag))?;
    let len = 8 * 1024 * 1024;
    let make = || -> Vec<u8> { (0..len).map(|i| (i % 253) as u8).collect() };
    let deadline = Instant::now() + Duration::from_secs(60);
    if r == last {
        let send = w.isend(0, 40, &make())?;
        while !flag.exists() {
            ensure!(w, Instant::now() < deadline, "the receiver never signalled");
            std::thread::sleep(Duration::from_millis(1));
        }
        send.wait();
    }
    if r == 0 {
        let mut req = w.irecv::<Vec<u8>>(Source::Rank(last), 40);
        let mut seen_incomplete = false;
        let got = loop {
            if let Some(v) = req.test()? {
                break v;
            }
            if let Some(st) = req.matched() {
                ensure!(w, st.source == last && st.bytes > len, "matched {st:?}");
                if !seen_incomplete {
                    seen_incomplete = true;
                    std::fs::write(&flag, b"go")?;
                }
            }
            ensure!(w, Instant::now() < deadline, "the message never arrived");
        };
        if !seen_incomplete {
            // The transport moved the whole message at once (single-copy shared memory):
            // the sender only needs to be let go.
            std::fs::write(&flag, b"go")?;
        }
        ensure!(w, got.0 == make(), "8 MB differ");
        ensure!(w, req.matched().is_none(), "still matched after completion");
        println!("rank 0: 8 MB arrived; seen matched but incomplete: {seen_incomplete}");
    }
    w.barrier().expect("barrier");
    if r == 0 {
        let _ = std::fs::remove_file(&flag);
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
    if let Err(e) = run(&world) {
        eprintln!("rank {}: FAIL: {e}", world.rank());
        world.abort(1);
    }
    world.barrier().expect("barrier");
    if world.is_root() {
        println!("mpitest_messages: ok with {} ranks", world.size());
    }
}
