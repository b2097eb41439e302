//! `prism-tracer`: ray-triangle/BVH kernel, scenes and a physically based path tracer.
//!
//! (Being built: see docs/architecture.md.)

pub mod io;
pub mod math;
pub mod mesh;

pub use io::{load_mesh, LoadError};
pub use math::{Ray, Rgb, Transform, Vec3};
pub use mesh::{Mesh, MeshError};
