//! Worker groups and ORB domain decomposition, with restartable task states.
//!
//! A cloud of particles (the same on every process, drawn from per-particle random streams) is
//! cut into subdomains of equal particle counts by orthogonal recursive bisection. Each
//! subdomain is a named task of a batch over groups of processes: the group that takes a
//! subdomain shares its particles among its processes, each computing the pair potential
//! energy of its share inside the subdomain; the group leader adds the per-particle energies
//! in particle order and writes `<dir>/<task>/result`. Task states live in `<dir>/<task>/state`.
//!
//! A rerun resumes: done subdomains are skipped, failed ones stay failed unless `--retry`.
//! When every subdomain is done the root prints the total energy, added in subdomain order,
//! so it is identical however the work was split, interrupted and resumed.
//!
//! ```text
//! cargo build -p prism-tasking --features mpi --example groups_orb
//! mpirun -n 4 target/debug/examples/groups_orb --dir /tmp/orb --group-size 2 --crash-task 3
//! mpirun -n 4 target/debug/examples/groups_orb --dir /tmp/orb --group-size 2   # resumes
//! ```
//!
//! Options: `--dir DIR` (required), `--particles N` (default 6000), `--subdomains S`
//! (default 8), `--group-size K` (default 1), `--fail-task T` (task T returns an error),
//! `--crash-task T` (the whole job aborts when task T starts: an interruption), `--retry`
//! (run failed tasks again), `--seed S` (default 3), `--task-ms MS` (every task first sleeps
//! MS milliseconds: a long run to start a second job or a kill in). The root prints its process
//! id (`# root pid N`), the process that holds the state directory's lock.

use prism_comm::Communicator;
use prism_tasking::batch::{Batch, BatchOptions, TaskState};
use prism_tasking::{orb, TaskRng};
use std::path::PathBuf;

struct Settings {
    dir: PathBuf,
    particles: usize,
    subdomains: usize,
    group_size: usize,
    fail_task: Option<usize>,
    crash_task: Option<usize>,
    retry: bool,
    seed: u64,
    task_ms: u64,
}

const USAGE: &str =
    "usage: groups_orb --dir DIR [--particles N] [--subdomains S] [--group-size K] \
                     [--fail-task T] [--crash-task T] [--retry] [--seed S] [--task-ms MS]";

fn parse_args() -> Result<Settings, String> {
    let mut dir = None;
    let mut s = Settings {
        dir: PathBuf::new(),
        particles: 6000,
        subdomains: 8,
        group_size: 1,
        fail_task: None,
        crash_task: None,
        retry: false,
        seed: 3,
        task_ms: 0,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--retry" {
            s.retry = true;
            continue;
        }
        let mut value = |what: &str| -> Result<String, String> {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{a} needs {what}"))
        };
        let number = |v: String, what: &str| -> Result<usize, String> {
            v.parse().map_err(|_| format!("{a} {v:?}: expected {what}"))
        };
        match a.as_str() {
            "--dir" => dir = Some(PathBuf::from(value("a directory")?)),
            "--particles" => s.particles = number(value("a count")?, "a count")?,
            "--subdomains" => s.subdomains = number(value("a count")?, "a count")?,
            "--group-size" => s.group_size = number(value("a count")?, "a count")?,
            "--fail-task" => s.fail_task = Some(number(value("a task index")?, "a task index")?),
            "--crash-task" => s.crash_task = Some(number(value("a task index")?, "a task index")?),
            "--seed" => s.seed = number(value("a seed")?, "a seed")? as u64,
            "--task-ms" => s.task_ms = number(value("milliseconds")?, "milliseconds")? as u64,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    s.dir = dir.ok_or("--dir is required")?;
    if s.subdomains == 0 {
        return Err("--subdomains 0: need at least one".into());
    }
    Ok(s)
}

/// Writes `line` to standard error in one write, so that lines of several processes do not
/// interleave mid-line (`eprintln!` writes its pieces one by one).
fn say(line: &str) {
    use std::io::Write;
    let _ = std::io::stderr().write_all(line.as_bytes());
}

fn die(world: &Communicator, msg: String) -> ! {
    say(&format!("groups_orb: rank {}: {msg}\n", world.rank()));
    world.abort(1)
}

/// Pair energy 1/r (softened) of particle `i` with every other particle of `members`.
fn energy_of(points: &[[f64; 3]], members: &[usize], i: usize) -> f64 {
    let p = points[i];
    members
        .iter()
        .filter(|&&j| j != i)
        .map(|&j| {
            let q = points[j];
            let r2 = (p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2) + (p[2] - q[2]).powi(2);
            1.0 / (r2 + 1e-4).sqrt()
        })
        .sum::<f64>()
        * 0.5
}

fn main() {
    let s = match parse_args() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("groups_orb: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let universe = prism_comm::init().unwrap_or_else(|e| {
        eprintln!("groups_orb: {e}");
        std::process::exit(1)
    });
    let world = universe.world();

    let points: Vec<[f64; 3]> = (0..s.particles as u64)
        .map(|i| {
            let mut r = TaskRng::new(s.seed, i);
            // A flattened, clumpy cloud: x twice as long as y, z thin.
            let clump = (r.next_u64() % 4) as f64;
            [clump * 0.5 + r.next_f64(), r.next_f64(), 0.2 * r.next_f64()]
        })
        .collect();
    let subdomains = orb(&points, s.subdomains).unwrap_or_else(|e| die(&world, e.to_string()));
    let names: Vec<String> = (0..s.subdomains)
        .map(|i| format!("subdomain_{i:02}"))
        .collect();

    let options = BatchOptions::new(s.group_size)
        .state_dir(&s.dir)
        .retry_failed(s.retry);
    let mut batch = match Batch::new(&world, names.clone(), options) {
        Ok(batch) => batch,
        Err(e) => {
            // Every process holds this error (the batch agrees before it returns), so all of
            // them end here together: each says why, and MPI_Finalize waits for all of them.
            // Aborting instead would let the first abort kill the others before they print.
            say(&format!("groups_orb: rank {}: {e}\n", world.rank()));
            drop(world);
            drop(universe);
            std::process::exit(1)
        }
    };
    if world.is_root() {
        let counts: Vec<String> = subdomains
            .iter()
            .map(|d| d.indices.len().to_string())
            .collect();
        println!(
            "# {} particles in {} subdomains (counts {}), {} group(s) of {}",
            s.particles,
            s.subdomains,
            counts.join(" "),
            batch.group_count(),
            s.group_size
        );
        println!("# root pid {}", std::process::id());
    }

    let report = batch
        .run(|task, group| {
            if s.crash_task == Some(task.index) {
                eprintln!("groups_orb: simulated crash in {}", task.name);
                world.abort(3);
            }
            std::thread::sleep(std::time::Duration::from_millis(s.task_ms));
            if s.fail_task == Some(task.index) {
                return Err(format!("simulated failure in {}", task.name));
            }
            let members = &subdomains[task.index].indices;
            // Contiguous shares of the subdomain's particles, one per group process.
            let (gr, gs) = (group.rank(), group.size());
            let lo = members.len() * gr / gs;
            let hi = members.len() * (gr + 1) / gs;
            let mine: Vec<f64> = members[lo..hi]
                .iter()
                .map(|&i| energy_of(&points, members, i))
                .collect();
            let all: Vec<Vec<f64>> = group.all_gather(&mine).map_err(|e| e.to_string())?;
            if gr == 0 {
                // In particle order, whatever the group size: the same bits every time.
                let energy: f64 = all.iter().flatten().fold(0.0, |a, e| a + e);
                let path = s.dir.join(&task.name).join("result");
                std::fs::write(&path, format!("{:.17e}\n", energy))
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
            Ok(())
        })
        .unwrap_or_else(|e| die(&world, e.to_string()));

    if world.is_root() {
        let count = |st: TaskState| report.states.iter().filter(|&&x| x == st).count();
        println!(
            "tasks: done {} failed {} open {} | this run: skipped done {}, kept failed {}, failures {}",
            count(TaskState::Done),
            count(TaskState::Failed),
            count(TaskState::Open),
            report.skipped_done.len(),
            report.kept_failed.len(),
            report.failures.len()
        );
        for (i, msg) in &report.failures {
            println!("failed: {} ({msg})", names[*i]);
        }
        if report.states.iter().all(|&x| x == TaskState::Done) {
            let mut total = 0.0f64;
            for n in &names {
                let path = s.dir.join(n).join("result");
                let text = std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| die(&world, format!("{}: {e}", path.display())));
                let e: f64 = text
                    .trim()
                    .parse()
                    .unwrap_or_else(|_| die(&world, format!("{}: not a number", path.display())));
                total += e;
            }
            println!("total energy {total:.17e}");
        } else {
            println!("incomplete: rerun to resume (add --retry to run failed subdomains again)");
        }
    }
}
