//! The sail runtime: everything between a pair of sail GGUF files and an answer.
//!
//! `ggml` is the only module with `unsafe`: it wraps the ggml/llama.cpp C API (reached through
//! `llama-cpp-sys-2`, the one copy of ggml in the process) and memory maps in RAII types. The
//! rest is ordinary safe Rust: `gguf` reads and writes the container format, `model` holds the
//! one table of tensor names and hyperparameter keys that the converter, the quantizer and the
//! loaders share.

pub mod ggml;
pub mod gguf;
pub mod model;
pub mod npy;
pub mod session;
pub mod text;
pub mod vision;
