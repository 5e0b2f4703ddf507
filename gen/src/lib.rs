//! Deterministic SAIL-VL2 test material in Rust: random checkpoints in the exact Hugging Face
//! layout (`ckpt`) and test pictures (`image`).
//!
//! The golden cases under `tests/golden/` name their inputs by the arguments of the team's
//! Python reference generators (`gen_ckpt.py`, `gen_image.py`) and by sha256. Tests and benchmarks in
//! this workspace must be able to rebuild those inputs without Python, so this crate is a port
//! whose output is byte-identical to the Python scripts' (checked by the tests against recorded
//! hashes). On top of the port it adds full-size presets (2B, 8B, MoE) for benchmarks, generated
//! in parallel and streamed so that memory stays at a few tensor chunks.

pub mod ckpt;
pub mod compare;
pub mod image;
pub mod pyjson;
pub mod rng;
pub mod safetensors;
pub mod weights;

use std::path::{Path, PathBuf};

pub use ckpt::{generate, Args, Summary};
pub use image::write_png;

/// Errors of the generators.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory could not be read or written.
    #[error("{op} {}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A JSON input (config template, tokenizer vocab, index) could not be parsed or lacks a key.
    #[error("{}: {msg}", path.display())]
    BadInput { path: PathBuf, msg: String },
    /// Arguments that the Python generator would reject (or that make no sense here).
    #[error("{0}")]
    InvalidArgs(String),
    /// The repository's `assets/SAIL-VL2-2B` folder (config and tokenizer files) is missing.
    #[error("{}: the SAIL-VL2-2B config/tokenizer files are missing (they ship in the repository's assets/SAIL-VL2-2B folder; pass --assets DIR where that folder lies elsewhere)", path.display())]
    MissingAssets { path: PathBuf },
}

impl Error {
    pub(crate) fn read(path: &Path, source: std::io::Error) -> Self {
        Error::Io { op: "cannot read", path: path.to_path_buf(), source }
    }
    pub(crate) fn write(path: &Path, source: std::io::Error) -> Self {
        Error::Io { op: "cannot write", path: path.to_path_buf(), source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The SAIL-VL2-2B configuration, tokenizer and weight-index files committed in the repository
/// (`assets/SAIL-VL2-2B`, no weights): the tokenizer and config templates of every preset.
/// The path is the one the crate was compiled at: a binary moved to another machine takes the
/// folder from `--assets` instead (`assets_dir_at`).
pub fn model_assets_dir() -> Result<PathBuf> {
    assets_dir_at(&Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("assets").join("SAIL-VL2-2B"))
}

/// `dir` if it holds the SAIL-VL2-2B config/tokenizer files (checked by its `config.json`).
pub fn assets_dir_at(dir: &Path) -> Result<PathBuf> {
    if dir.join("config.json").is_file() {
        Ok(std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf()))
    } else {
        Err(Error::MissingAssets { path: dir.to_path_buf() })
    }
}

/// Lowercase hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
