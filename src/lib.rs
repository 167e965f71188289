//! Astromesh: an AI-agent runtime in one binary.
//!
//! The library holds everything; `main.rs` is a thin CLI over it, and tests and benchmarks
//! drive the same code the daemon runs. `App::build` (in `app`) is the one composition root.

pub mod config;
pub mod providers;
