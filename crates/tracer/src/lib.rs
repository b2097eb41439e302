//! `prism-tracer`: all of light transport and none of the parallelism across processes.
//!
//! A watertight ray-triangle test and a binned-SAH BVH4 ([`Geometry`]: meshes, instances, a
//! two-level structure in plain arrays that can be cached, memory-mapped or node-shared), mesh
//! readers ([`io`]: OBJ, PLY, STL) and TOML scene files ([`scene_file`]), and a physically based
//! path tracer (next-event estimation with MIS, Russian roulette; Lambertian, emissive, mirror
//! and dielectric materials) whose unit of work is an image tile: a [`TileTask`] in, a
//! [`TileResult`] out, both serde types, merged into a [`Film`] of per-pixel statistics. A
//! sample's random numbers depend only on (seed, pixel, pass, sample), so an image is
//! bit-identical however its tiles were split among threads or processes. Usable alone, with
//! rayon inside one process; `prism-engines` ships the same tiles between processes.
//!
//! Render the built-in Cornell box, two passes (the second adaptive), with rayon:
//!
//! ```
//! use prism_tracer::integrator::{render_tile, RenderSettings};
//! use prism_tracer::{cornell::cornell_box, pass_tasks, AdaptiveSampler, Film, PassSpec};
//! use rayon::prelude::*;
//!
//! let scene = cornell_box();
//! let settings = RenderSettings::default();
//! let mut film = Film::new(32, 32)?;
//! let sampler = AdaptiveSampler { min_samples: 0, ..AdaptiveSampler::default() };
//! let mut selection = None;
//! for pass in 0..2 {
//!     let spec = PassSpec { index: pass, samples_per_pixel: 4, seed: 7 };
//!     let tasks = pass_tasks(32, 32, 16, &spec, selection.as_ref())?;
//!     let results: Vec<_> = tasks.par_iter().map(|t| render_tile(&scene, &settings, t)).collect();
//!     for r in &results {
//!         film.merge(r)?;
//!     }
//!     selection = sampler.select(&film);
//! }
//! assert!(film.ray_count() > 0);
//! assert!(film.mean_image().iter().all(|c| c.is_finite()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Trace rays directly (for many rays in a row, trace them through one [`Query`] from
//! [`Geometry::query`], which sets up once instead of per ray):
//!
//! ```
//! use prism_tracer::{Geometry, Instance, Mesh, Ray, Transform, Vec3};
//!
//! let quad = Mesh::new(
//!     vec![Vec3::new(-1.0, -1.0, 0.0), Vec3::new(1.0, -1.0, 0.0), Vec3::new(1.0, 1.0, 0.0), Vec3::new(-1.0, 1.0, 0.0)],
//!     vec![[0, 1, 2], [0, 2, 3]],
//! )?;
//! let instance = Instance { mesh: 0, material: 0, transform: Transform::IDENTITY };
//! let geometry = Geometry::build(vec![quad], vec![instance])?;
//! let hit = geometry.intersect(&Ray::new(Vec3::new(0.2, 0.3, 5.0), Vec3::new(0.0, 0.0, -1.0))).unwrap();
//! assert!((hit.t - 5.0).abs() < 1e-5);
//! assert!(geometry.occluded(&Ray::segment(Vec3::new(0.0, 0.0, 1.0), Vec3::new(0.0, 0.0, -1.0), 0.0, 2.0)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod bench;
pub mod bvh;
pub mod cache;
pub mod camera;
pub mod checkpoint;
pub mod cornell;
pub mod film;
pub mod geometry;
pub mod integrator;
pub mod io;
pub mod material;
pub mod math;
mod memory;
pub mod mesh;
pub mod output;
mod regular;
pub mod replace;
pub mod rng;
pub mod sampler;
pub mod scene;
pub mod scene_file;
pub mod stats;
pub mod tile;
pub mod triangle;

pub use cache::{ByteSource, CacheError};
pub use camera::{Camera, CameraFrame};
pub use checkpoint::{
    Checkpoint, CheckpointError, CheckpointLock, CheckpointProgress, CheckpointWriter,
};
pub use cornell::cornell_box;
pub use film::{Film, FilmError};
pub use geometry::{Geometry, GeometryError, Hit, Instance, Query};
pub use integrator::{render_tile, RenderSettings};
pub use io::{load_mesh, LoadError};
pub use material::Material;
pub use math::{Ray, Rgb, Transform, Vec3};
pub use mesh::{Mesh, MeshError};
pub use output::{write_error_exr, write_error_png, write_exr, write_png, OutputError, ToneMap};
pub use rng::SampleRng;
pub use sampler::{AdaptiveSampler, PixelSelection, SamplerError};
pub use scene::{Scene, SceneError};
pub use scene_file::{load_scene, SceneFileError};
pub use stats::PixelStats;
pub use tile::{
    pass_tasks, PassSpec, PixelMask, TileError, TileId, TileRect, TileResult, TileTask,
};
