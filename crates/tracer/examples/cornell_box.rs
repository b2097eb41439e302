//! Renders the built-in Cornell box with rayon (no render engine) and writes PNG and EXR.
//!
//! ```text
//! cargo run --release -p prism-tracer --example cornell_box -- [--size N] [--spp N]
//!     [--passes N] [--seed N] [--out PREFIX]
//! ```
//! Pass 0 samples every pixel; later passes re-sample the pixels the adaptive sampler picks.
//! Writes `PREFIX.png` (sRGB), `PREFIX.exr` (linear), `PREFIX_error.png` and
//! `PREFIX_error.exr` (standard error), PREFIX defaulting to `cornell`.

use prism_tracer::{
    cornell_box, pass_tasks, render_tile, write_error_exr, write_error_png, write_exr, write_png,
    AdaptiveSampler, Film, PassSpec, RenderSettings, TileResult, ToneMap,
};
use rayon::prelude::*;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

struct Args {
    size: u32,
    spp: u32,
    passes: u32,
    seed: u64,
    out: String,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        size: 512,
        spp: 64,
        passes: 4,
        seed: 1,
        out: "cornell".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: '{v}' is not a non-negative integer"))
        };
        let small = |v: &str| {
            number(v).and_then(|n| {
                u32::try_from(n)
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("{flag}: {n} is out of range (1 to 2^32 - 1)"))
            })
        };
        match flag.as_str() {
            "--size" => args.size = small(&value)?,
            "--spp" => args.spp = small(&value)?,
            "--passes" => args.passes = small(&value)?,
            "--seed" => args.seed = number(&value)?,
            "--out" => args.out = value,
            _ => {
                return Err(format!(
                    "unknown argument {flag}; use --size, --spp, --passes, --seed, --out"
                ))
            }
        }
    }
    Ok(args)
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let scene = cornell_box();
    let settings = RenderSettings::default();
    let sampler = AdaptiveSampler {
        fraction: 0.2,
        ratio: 10.0,
        min_samples: u64::from(args.spp),
        cutoff: 0.01,
    };
    let mut film = Film::new(args.size, args.size)?;
    let start = Instant::now();
    for pass in 0..args.passes {
        let selection = if pass == 0 {
            None
        } else {
            match sampler.select(&film) {
                Some(s) => Some(s),
                None => {
                    println!("converged after {pass} passes");
                    break;
                }
            }
        };
        let spec = PassSpec {
            index: pass,
            samples_per_pixel: args.spp,
            seed: args.seed,
        };
        let tasks = pass_tasks(args.size, args.size, 32, &spec, selection.as_ref())?;
        let results: Vec<TileResult> = tasks
            .par_iter()
            .map(|t| render_tile(&scene, &settings, t))
            .collect();
        for r in &results {
            film.merge(r)?;
        }
        let pixels: usize = tasks.iter().map(|t| t.pixel_count()).sum();
        let secs = start.elapsed().as_secs_f64();
        println!(
            "pass {pass}: {pixels} pixels x {} spp; total {:.2} s, {:.2} Mrays/s",
            args.spp,
            secs,
            film.ray_count() as f64 / secs / 1e6
        );
    }
    let path = |suffix: &str| PathBuf::from(format!("{}{suffix}", args.out));
    write_png(&film, &path(".png"), ToneMap::Clamp { exposure: 1.0 })?;
    write_exr(&film, &path(".exr"))?;
    let white = write_error_png(&film, &path("_error.png"))?;
    write_error_exr(&film, &path("_error.exr"))?;
    println!(
        "wrote {0}.png, {0}.exr, {0}_error.png (white = normalised error {white:.4}), {0}_error.exr",
        args.out
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cornell_box: {e}");
            ExitCode::FAILURE
        }
    }
}
