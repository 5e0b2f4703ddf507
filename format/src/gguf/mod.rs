//! GGUF, the container both sail files use, read and written in plain Rust.
//!
//! The converter streams multi-gigabyte tensors straight to disk, which ggml's in-memory
//! `gguf_*` writer cannot do without holding them; and reading metadata in Rust gives errors
//! that name the key and the file. The layout follows ggml's `gguf.h` (version 3, little
//! endian, 32-byte aligned tensor data).

mod read;
mod value;
mod write;

pub use read::{GgufError, GgufFile, TensorInfo};
pub use value::{Value, ValueType};
pub use write::{write_raw, GgufWriter, PlannedTensor, RawTensor};

pub const GGUF_MAGIC: &[u8; 4] = b"GGUF";
pub const GGUF_VERSION: u32 = 3;
