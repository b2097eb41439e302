//! `prism-tracer`: ray-triangle/BVH kernel, scenes and a physically based path tracer.
//!
//! (Being built: see docs/architecture.md.)

pub mod bench;
pub mod bvh;
pub mod cache;
pub mod camera;
pub mod cornell;
pub mod film;
pub mod geometry;
pub mod integrator;
pub mod io;
pub mod material;
pub mod math;
pub mod mesh;
pub mod output;
pub mod rng;
pub mod sampler;
pub mod scene;
pub mod scene_file;
pub mod stats;
pub mod tile;
pub mod triangle;

pub use cache::{ByteSource, CacheError};
pub use camera::{Camera, CameraFrame};
pub use cornell::cornell_box;
pub use film::{Film, FilmError};
pub use geometry::{Geometry, GeometryError, Hit, Instance};
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
