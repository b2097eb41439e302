//! prism: hybrid parallel computing and reproducible ray-traced rendering.
//!
//! The facade re-exports the layers; depend on a single layer to get only what you need.
pub use prism_comm as comm;
pub use prism_engines as engines;
pub use prism_tasking as tasking;
pub use prism_tracer as tracer;
