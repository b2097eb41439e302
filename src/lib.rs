//! prism: hybrid parallel computing (MPI between processes, threads inside each) and fast,
//! reproducible ray-traced rendering.
//!
//! This facade re-exports the layers; depend on a single layer to get only what you need:
//!
//! | crate | for |
//! | --- | --- |
//! | [`comm`] (`prism-comm`) | the one gate to MPI: messages, collectives, process sets, node-shared arrays, a lock |
//! | [`tasking`] (`prism-tasking`) | SKIRT-style parallel loops over threads, processes or both |
//! | [`engines`] (`prism-engines`) | Raysect-style render engines: Serial, MultiThread, MPI, Hybrid |
//! | [`tracer`] (`prism-tracer`) | BVH kernel, scenes, meshes, path tracer, film |
//!
//! It adds the glue between engines and tracer: the [`observe`] loop (tile tasks, pass after
//! pass, adaptive sampling; [`observe::observe_from`] resumes a render from a
//! [`tracer::checkpoint`]) and [`share_scene`] (one scene copy per node).
//!
//! Render the built-in Cornell box on two threads of one process. A job of several processes
//! (`mpirun -n 4`) needs an engine that spans them, `MpiEngine` or `HybridEngine` made from the
//! same communicator: [`observe`](observe::observe) refuses a one-process engine there, on
//! every rank.
//!
//! ```
//! use prism::engines::MultiThreadEngine;
//! use prism::observe::{observe, Hooks, ObserveSettings};
//! use prism::tracer::{cornell::cornell_box, integrator::RenderSettings, AdaptiveSampler};
//!
//! let universe = prism::comm::init()?;
//! let world = universe.world();
//! let scene = prism::share_scene(&world, || Ok(cornell_box()))?;
//! let settings = ObserveSettings {
//!     width: 32, height: 32, tile: 16, samples_per_pass: 2, max_passes: 2, seed: 1,
//!     sampler: AdaptiveSampler::default(), render: RenderSettings::default(), deadline: None,
//!     stop_requested: None,
//! };
//! let engine = MultiThreadEngine::new(2);
//! let (film, report) = observe(&engine, &world, &scene, &settings, Hooks {
//!     after_pass: &mut |_, _| Ok(()),
//!     before_pass: &mut |_, _| {},
//!     on_result: &mut |_| {},
//!     fail_on_rank: None,
//! })?;
//! let film = film.expect("the root holds the film");
//! assert_eq!(film.width(), 32);
//! assert!(report.rays > 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub use prism_comm as comm;
pub use prism_engines as engines;
pub use prism_tasking as tasking;
pub use prism_tracer as tracer;

pub mod observe;
mod shared_scene;

pub use shared_scene::share_scene;
