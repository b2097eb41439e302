//! Reproducibility: the same render split into tiles of different sizes, rendered in different
//! orders, on different threads, shipped through serde, gives bit-identical films.

use prism_tracer::{
    cornell_box, pass_tasks, render_tile, AdaptiveSampler, Film, PassSpec, PixelSelection,
    RenderSettings, Scene, TileResult, TileTask,
};

const SIZE: u32 = 24;
const SPP: u32 = 3;
const SEED: u64 = 0x5eed;
const PASSES: u32 = 3;

fn sampler() -> AdaptiveSampler {
    AdaptiveSampler {
        fraction: 0.3,
        ratio: 10.0,
        min_samples: 1,
        cutoff: 0.0,
    }
}

/// How the tasks of a pass are rendered and merged.
#[derive(Clone, Copy, Debug)]
enum Schedule {
    InOrder,
    Reversed,
    Shuffled(u64),
    /// Round-robin over this many worker threads; their results merged worker by worker.
    Workers(usize),
    /// Tasks and results go through JSON, as between processes.
    Serialised,
}

fn shuffle<T>(v: &mut [T], mut state: u64) {
    // Fisher-Yates driven by a 64-bit LCG: deterministic, so a failure reproduces.
    for i in (1..v.len()).rev() {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let j = (state >> 33) as usize % (i + 1);
        v.swap(i, j);
    }
}

fn run_pass(
    scene: &Scene,
    settings: &RenderSettings,
    tasks: &[TileTask],
    schedule: Schedule,
) -> Vec<TileResult> {
    match schedule {
        Schedule::InOrder => tasks
            .iter()
            .map(|t| render_tile(scene, settings, t))
            .collect(),
        Schedule::Reversed => tasks
            .iter()
            .rev()
            .map(|t| render_tile(scene, settings, t))
            .collect(),
        Schedule::Shuffled(seed) => {
            let mut order: Vec<&TileTask> = tasks.iter().collect();
            shuffle(&mut order, seed);
            order
                .into_iter()
                .map(|t| render_tile(scene, settings, t))
                .collect()
        }
        Schedule::Workers(n) => std::thread::scope(|s| {
            let handles: Vec<_> = (0..n)
                .map(|w| {
                    s.spawn(move || {
                        tasks
                            .iter()
                            .skip(w)
                            .step_by(n)
                            .map(|t| render_tile(scene, settings, t))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            // Last worker first: arrival order differs from task order.
            handles
                .into_iter()
                .rev()
                .flat_map(|h| h.join().expect("worker thread panicked"))
                .collect()
        }),
        Schedule::Serialised => {
            let wire = serde_json::to_string(tasks).unwrap();
            let received: Vec<TileTask> = serde_json::from_str(&wire).unwrap();
            assert_eq!(received, tasks);
            let results: Vec<TileResult> = received
                .iter()
                .map(|t| render_tile(scene, settings, t))
                .collect();
            let wire = serde_json::to_string(&results).unwrap();
            serde_json::from_str(&wire).unwrap()
        }
    }
}

/// Renders `PASSES` passes (pass 0 full, then adaptive) and returns the film after each pass
/// and the selection each adaptive pass used.
fn render(
    scene: &Scene,
    tile_size: u32,
    schedule: Schedule,
) -> (Vec<Film>, Vec<Option<PixelSelection>>) {
    let settings = RenderSettings::default();
    let mut film = Film::new(SIZE, SIZE).unwrap();
    let mut films = Vec::new();
    let mut selections = Vec::new();
    for pass in 0..PASSES {
        let selection = if pass == 0 {
            None
        } else {
            Some(
                sampler()
                    .select(&film)
                    .expect("a pass with cutoff 0 always selects"),
            )
        };
        let spec = PassSpec {
            index: pass,
            samples_per_pixel: SPP,
            seed: SEED,
        };
        let tasks = pass_tasks(SIZE, SIZE, tile_size, &spec, selection.as_ref()).unwrap();
        for result in run_pass(scene, &settings, &tasks, schedule) {
            film.merge(&result).unwrap();
        }
        films.push(film.clone());
        selections.push(selection);
    }
    (films, selections)
}

#[test]
fn films_are_bit_identical_however_the_work_is_split() {
    let scene = cornell_box();
    let (reference, selections) = render(&scene, 8, Schedule::InOrder);
    // The adaptive passes really are partial, and the film really has content.
    for sel in selections.iter().flatten() {
        let n = sel.count();
        assert!(n > 0 && n < (SIZE * SIZE) as usize, "selected {n}");
    }
    let last = reference.last().unwrap();
    assert!(last.pixels().iter().any(|p| p.count == u64::from(SPP)));
    assert!(last.pixels().iter().any(|p| p.count > u64::from(SPP)));
    assert!(last.pixels().iter().any(|p| p.mean[0] > 0.0));
    assert!(last.pixels().iter().any(|p| p.variance()[1] > 0.0));

    let variants = [
        (8, Schedule::Reversed),
        (8, Schedule::Shuffled(1)),
        (8, Schedule::Shuffled(2)),
        (8, Schedule::Workers(3)),
        (8, Schedule::Serialised),
        // Other tilings: a pixel's samples do not depend on which tile it is in.
        (5, Schedule::Shuffled(3)),
        (24, Schedule::InOrder),
        (1, Schedule::Workers(2)),
    ];
    for (tile, schedule) in variants {
        let (films, _) = render(&scene, tile, schedule);
        for (pass, (a, b)) in reference.iter().zip(&films).enumerate() {
            assert!(
                a.bit_identical(b),
                "tile size {tile}, {schedule:?}: film differs after pass {pass}"
            );
        }
    }
}

#[test]
fn a_different_seed_gives_a_different_film() {
    let scene = cornell_box();
    let settings = RenderSettings::default();
    let film = |seed| {
        let spec = PassSpec {
            index: 0,
            samples_per_pixel: 2,
            seed,
        };
        let mut f = Film::new(8, 8).unwrap();
        for t in pass_tasks(8, 8, 4, &spec, None).unwrap() {
            f.merge(&render_tile(&scene, &settings, &t)).unwrap();
        }
        f
    };
    assert!(film(1).bit_identical(&film(1)));
    assert!(!film(1).bit_identical(&film(2)));
}
