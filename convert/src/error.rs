//! Everything that can go wrong in a conversion, each naming the file, key or tensor at fault.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("{dir}: not a folder (give the Hugging Face checkpoint folder)")]
    NotAFolder { dir: PathBuf },
    #[error("{dir}: no config.json (is this a Hugging Face SAIL-VL2 checkpoint folder?)")]
    MissingConfig { dir: PathBuf },
    #[error("{file}: {why}")]
    BadJson { file: PathBuf, why: String },
    #[error("{file}: key {key}: {why}")]
    BadConfig { file: PathBuf, key: String, why: String },
    #[error("{file}: model_type {found:?} is not a SAIL-VL2 checkpoint (expected \"sailvl\")")]
    UnknownModelType { file: PathBuf, found: String },
    #[error("{file}: language model {found:?} is not supported (sail converts Qwen3ForCausalLM and Qwen3MoeForCausalLM)")]
    UnknownLlmArch { file: PathBuf, found: String },
    #[error("{file}: {what} cannot be represented in llama.cpp's {arch} graph: {why}")]
    Unrepresentable { file: PathBuf, arch: String, what: String, why: String },
    #[error("{dir}: no model.safetensors and no model.safetensors.index.json")]
    NoWeights { dir: PathBuf },
    #[error("{file}: missing shard (named in {index})")]
    MissingShard { file: PathBuf, index: PathBuf },
    #[error("{file}: corrupt safetensors: {why}")]
    CorruptSafetensors { file: PathBuf, why: String },
    #[error("{file}: tensor {tensor} has dtype {dtype}; sail-convert reads BF16, F16 and F32")]
    UnsupportedDtype { tensor: String, dtype: String, file: PathBuf },
    #[error("checkpoint does not match the SAIL-VL2 layout:\n  {}{}", .problems.join("\n  "), more(*.omitted))]
    Layout { problems: Vec<String>, omitted: usize },
    #[error("{file}: {}{}", .problems.join("; "), more(*.omitted))]
    BadHparams { file: PathBuf, problems: Vec<String>, omitted: usize },
    #[error("{file}: tensor {tensor} holds {nan} NaN and {inf} infinite values (of {total})")]
    NonFinite { tensor: String, file: PathBuf, nan: usize, inf: usize, total: usize },
    #[error("{file}: tokenizer: {why}")]
    Tokenizer { file: PathBuf, why: String },
    #[error("{path}: no space left on the device while writing the output (nothing was kept)")]
    DiskFull { path: PathBuf },
    // the I/O error is part of the message, not a `source`, so a chain prints it once
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error(transparent)]
    Output(#[from] sail_format::files::OutputError),
    #[error(transparent)]
    Gguf(#[from] sail_format::gguf::GgufError),
    #[error("the converted file failed validation (a bug in sail-convert; nothing was kept): {0}")]
    InvalidOutput(#[from] sail_format::ValidationError),
    #[cfg(feature = "quantize")]
    #[error("{0}")]
    Quantize(#[from] sail_ggml::QuantizeError),
    #[error("interrupted (no output was kept)")]
    Interrupted,
}

impl ConvertError {
    /// An I/O error on `path`; a full disk gets its own message.
    pub fn io(path: &Path, e: std::io::Error) -> ConvertError {
        if e.kind() == std::io::ErrorKind::StorageFull || e.raw_os_error() == Some(28) {
            ConvertError::DiskFull { path: path.to_path_buf() }
        } else {
            ConvertError::Io { path: path.to_path_buf(), error: e }
        }
    }
}

fn more(n: usize) -> String {
    if n == 0 {
        String::new()
    } else {
        format!("\n  … and {n} more")
    }
}

/// Keeps the first `max` problems and counts the rest, so a checkpoint with a million
/// problems still gets a short message.
pub(crate) fn bounded(mut problems: Vec<String>, max: usize) -> (Vec<String>, usize) {
    let omitted = problems.len().saturating_sub(max);
    problems.truncate(max);
    (problems, omitted)
}
