//! The file formats of sail in plain Rust: no FFI, no llama.cpp types.
//!
//! Everything a sail GGUF pair *is* lives here, once: the GGUF container (read over a memory
//! map, written as a stream), the ggml type table, the one tensor-name table, the metadata keys,
//! the typed hyperparameters read from them, the quantization policy that picks a type per
//! tensor category, and the prompt-format constants the converter records. The converter, the
//! loaders and the validator all read these tables, so a name, a shape or a size can only be
//! wrong in one place; and since nothing here calls C, a hostile file can be judged completely
//! before any of it reaches ggml or llama.cpp.
//!
//! The only `unsafe` in the crate is the memory map in [`mmap`].

pub mod files;
pub mod fixture;
pub mod gguf;
pub mod hparams;
pub mod keys;
pub mod mmap;
pub mod names;
pub mod quant;
pub mod template;
pub mod types;
pub mod validate;

pub use hparams::{HparamsError, LlmArch, LlmHparams, MoeHparams, PsVersion, VisionHparams};
pub use mmap::MappedFile;
pub use names::{Category, Dim, FilePart, Scope, TensorEntry, TENSORS};
pub use types::GgmlType;
pub use validate::ValidationError;

/// ggml's `GGUF_DEFAULT_ALIGNMENT` (gguf.h).
pub const GGUF_DEFAULT_ALIGNMENT: usize = 32;
/// ggml's `GGML_MAX_NAME` (ggml.h): tensor names are `[c_char; 64]`, NUL included.
pub const GGML_MAX_NAME: usize = 64;
