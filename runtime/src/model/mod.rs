//! What a SAIL-VL2 model is made of, in one place: the tensor name table, the metadata keys,
//! and the typed hyperparameters read from them. The converter writes from these tables, the
//! loaders check against them, and the quantizer picks types by their categories, so a name or
//! a shape can only be wrong in one place.

pub mod hparams;
pub mod keys;
pub mod names;

pub use hparams::{HparamsError, LlmArch, LlmHparams, MoeHparams, PsVersion, VisionHparams};
pub use names::{Category, Dim, FilePart, Scope, TensorEntry, TENSORS};
