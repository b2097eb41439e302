//! `prism-comm`: the one crate of prism that talks to MPI.
//!
//! (Being built: see docs/architecture.md.)
