//! Monte Carlo radiative transfer in miniature (SKIRT's photon life cycle), with nothing but
//! prism-tasking and prism-comm.
//!
//! Photon packets enter a plane-parallel slab of optical depth `tau` at normal incidence.
//! Each packet travels an optical path drawn from e^-x, then either leaves the slab
//! (transmitted through the far side or reflected back out of the near side) or interacts:
//! it scatters isotropically with probability `albedo` and is absorbed otherwise. For pure
//! absorption the transmitted fraction must be e^-tau.
//!
//! Packets are the tasks of a Distributed call; packet `i` draws from its own random stream
//! `(seed, i)`; tallies are integers kept per thread, merged, then summed over processes. The
//! output is therefore bit-identical for any number of threads and processes:
//!
//! ```text
//! cargo run -p prism-tasking --example mcrt_slab -- --photons 200000 --tau 1 --albedo 0.5 --threads 2
//! cargo build -p prism-tasking --features mpi --example mcrt_slab
//! mpirun -n 3 target/debug/examples/mcrt_slab --photons 200000 --tau 1 --albedo 0.5
//! ```
//!
//! Options (or environment variables MCRT_THREADS, MCRT_PHOTONS, MCRT_TAU, MCRT_ALBEDO,
//! MCRT_SEED): `--threads N` (per process, default 1), `--photons N` (default 200000),
//! `--tau X` (default 1), `--albedo A` in [0, 1] (default 0), `--seed S` (default 1).

use prism_tasking::{CallOptions, ParallelFactory, TaskMode, TaskRng, ThreadLocalAcc};

/// Depth bins of the absorption profile.
const BINS: usize = 10;

#[derive(Debug, Clone, Copy)]
struct Settings {
    threads: usize,
    photons: usize,
    tau: f64,
    albedo: f64,
    seed: u64,
}

const USAGE: &str =
    "usage: mcrt_slab [--threads N] [--photons N] [--tau X] [--albedo A] [--seed S]";

fn parse_args() -> Result<Settings, String> {
    let mut s = Settings {
        threads: 1,
        photons: 200_000,
        tau: 1.0,
        albedo: 0.0,
        seed: 1,
    };
    let mut set = |key: &str, value: &str| -> Result<(), String> {
        let bad = |what: &str| format!("{key} {value:?}: expected {what}");
        match key {
            "threads" => s.threads = value.parse().map_err(|_| bad("a thread count"))?,
            "photons" => {
                s.photons = value
                    .parse()
                    .map_err(|_| bad("a number of photon packets"))?
            }
            "tau" => s.tau = value.parse().map_err(|_| bad("an optical depth"))?,
            "albedo" => s.albedo = value.parse().map_err(|_| bad("an albedo in [0, 1]"))?,
            "seed" => s.seed = value.parse().map_err(|_| bad("an unsigned integer seed"))?,
            _ => return Err(format!("unknown option --{key}")),
        }
        Ok(())
    };
    for key in ["threads", "photons", "tau", "albedo", "seed"] {
        if let Ok(v) = std::env::var(format!("MCRT_{}", key.to_uppercase())) {
            set(key, &v)?;
        }
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let Some(key) = a.strip_prefix("--") else {
            return Err(format!("unexpected argument {a:?}"));
        };
        let value = it.next().ok_or_else(|| format!("--{key} needs a value"))?;
        set(key, value)?;
    }
    if !(s.tau.is_finite() && s.tau >= 0.0) {
        return Err(format!("--tau {}: must be finite and >= 0", s.tau));
    }
    if !(0.0..=1.0).contains(&s.albedo) {
        return Err(format!("--albedo {}: must be in [0, 1]", s.albedo));
    }
    if s.threads == 0 {
        return Err("--threads 0: need at least one thread".into());
    }
    Ok(s)
}

/// Integer tallies: identical whatever order they are added in.
#[derive(Debug, Clone, Default)]
struct Tally {
    transmitted: u64,
    reflected: u64,
    absorbed: u64,
    scatterings: u64,
    absorbed_at: [u64; BINS],
}

impl Tally {
    fn add(&mut self, o: &Tally) {
        self.transmitted += o.transmitted;
        self.reflected += o.reflected;
        self.absorbed += o.absorbed;
        self.scatterings += o.scatterings;
        for (a, b) in self.absorbed_at.iter_mut().zip(&o.absorbed_at) {
            *a += b;
        }
    }

    fn to_vec(&self) -> Vec<u64> {
        let mut v = vec![
            self.transmitted,
            self.reflected,
            self.absorbed,
            self.scatterings,
        ];
        v.extend_from_slice(&self.absorbed_at);
        v
    }

    fn from_vec(v: &[u64]) -> Tally {
        let mut t = Tally {
            transmitted: v[0],
            reflected: v[1],
            absorbed: v[2],
            scatterings: v[3],
            ..Tally::default()
        };
        t.absorbed_at.copy_from_slice(&v[4..4 + BINS]);
        t
    }
}

/// The life of packet `index`: returns how it ended into `tally`.
fn life_cycle(s: &Settings, index: u64, tally: &mut Tally) {
    let mut rng = TaskRng::new(s.seed, index);
    let (mut z, mut mu) = (0.0f64, 1.0f64);
    loop {
        let path = -rng.next_f64_nonzero().ln();
        z += path * mu;
        if z >= s.tau {
            tally.transmitted += 1;
            return;
        }
        if z < 0.0 {
            tally.reflected += 1;
            return;
        }
        if rng.next_f64() < s.albedo {
            tally.scatterings += 1;
            mu = 2.0 * rng.next_f64() - 1.0;
        } else {
            tally.absorbed += 1;
            let bin = ((z / s.tau) * BINS as f64) as usize;
            tally.absorbed_at[bin.min(BINS - 1)] += 1;
            return;
        }
    }
}

fn main() {
    let settings = match parse_args() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mcrt_slab: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let universe = match prism_comm::init() {
        Ok(u) => u,
        Err(e) => {
            eprintln!("mcrt_slab: {e}");
            std::process::exit(1);
        }
    };
    let world = universe.world();
    let factory = match ParallelFactory::new(&world, settings.threads) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("mcrt_slab: {e}");
            world.abort(1);
        }
    };

    let tallies = ThreadLocalAcc::new(Tally::default);
    let parallel = factory.parallel(TaskMode::Distributed);
    let run = parallel.call_with(
        &CallOptions::new().progress("photon packets"),
        settings.photons,
        |first, count| {
            tallies.with(|t| {
                for i in first..first + count {
                    life_cycle(&settings, i as u64, t);
                }
            })
        },
    );
    if let Err(e) = run {
        eprintln!("mcrt_slab: {e}");
        world.abort(1);
    }
    let mut local = tallies.merge_or_init(|a, b| a.add(&b)).to_vec();
    if let Err(e) = world.sum_to_all_u64(&mut local) {
        eprintln!("mcrt_slab: {e}");
        world.abort(1);
    }
    let total = Tally::from_vec(&local);

    if world.is_root() {
        let n = settings.photons as f64;
        let frac = |k: u64| {
            if settings.photons == 0 {
                0.0
            } else {
                k as f64 / n
            }
        };
        println!(
            "# mcrt_slab: {} packets, tau {}, albedo {}, seed {}, {} process(es) x {} thread(s) ({:?})",
            settings.photons,
            settings.tau,
            settings.albedo,
            settings.seed,
            world.size(),
            factory.threads(),
            parallel.kind()
        );
        println!(
            "transmitted {} fraction {:.17e}",
            total.transmitted,
            frac(total.transmitted)
        );
        println!(
            "reflected {} fraction {:.17e}",
            total.reflected,
            frac(total.reflected)
        );
        println!(
            "absorbed {} fraction {:.17e}",
            total.absorbed,
            frac(total.absorbed)
        );
        println!("scatterings {}", total.scatterings);
        let profile: Vec<String> = total.absorbed_at.iter().map(u64::to_string).collect();
        println!("absorption profile {}", profile.join(" "));
        if settings.albedo == 0.0 && settings.photons > 0 {
            let expect = (-settings.tau).exp();
            let sigma = (expect * (1.0 - expect) / n).sqrt();
            let dev = (frac(total.transmitted) - expect).abs();
            let within = dev <= 4.0 * sigma + 1e-12;
            println!(
                "pure absorption: e^-tau {expect:.6} measured {:.6} deviation {:.2} sigma within-4-sigma {}",
                frac(total.transmitted),
                if sigma > 0.0 { dev / sigma } else { 0.0 },
                if within { "yes" } else { "no" }
            );
        }
    }
}
