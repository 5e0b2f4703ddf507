//! The sail runtime: everything between a pair of sail GGUF files and an answer.
//!
//! Crates depend downward only: `sail-format` (files, names, hyperparameters; plain Rust) →
//! `sail-ggml` (every `unsafe` line: RAII wrappers over ggml and llama.cpp) → this crate, the
//! engine (images to projector rows, the one prompt builder, sessions) → the front ends (the
//! `sail` CLI, the C API, the server), each thin over [`session`].

#[cfg(feature = "engine")]
pub mod bench;
pub mod cache;
pub mod npy;
#[cfg(feature = "engine")]
pub mod session;
pub mod text;
pub mod vision;

pub use sail_format as format;
#[cfg(feature = "engine")]
pub use sail_ggml as ggml;
