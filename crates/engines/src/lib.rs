//! `prism-engines`: Raysect-style render engines.
//!
//! (Being built: see docs/architecture.md.)
pub use prism_tasking as tasking;
