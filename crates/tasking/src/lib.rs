//! `prism-tasking`: SKIRT-style parallel loops over threads, processes and both.
//!
//! (Being built: see docs/architecture.md.)
pub use prism_comm as comm;
