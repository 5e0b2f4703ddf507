//! sail-convert: a Hugging Face SAIL-VL2 checkpoint into the two GGUF files sail runs.
//!
//! The language model goes into llama.cpp's own `qwen3`/`qwen3moe` layout so that stock
//! llama.cpp can load it too; the vision tower and projector go into a second file, because
//! llama.cpp refuses a model file with tensors it does not know.

#[cfg(feature = "quantize")]
pub mod convert;
pub mod error;
pub mod hf;
pub mod layout;
pub mod safetensors;
pub mod tokenizer;

#[cfg(feature = "quantize")]
pub use convert::{convert, Options, Report};
pub use error::ConvertError;
pub use layout::vision_path_for;
