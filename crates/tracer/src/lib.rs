//! `prism-tracer`: ray-triangle/BVH kernel, scenes and a path tracer.
//!
//! (Being built: see docs/architecture.md.)
