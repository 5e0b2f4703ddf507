//! Deterministic SAIL-VL2 test material in Rust: random checkpoints in the exact Hugging Face
//! layout (`ckpt`) and test pictures (`image`).
//!
//! The golden cases under `../shared/reference/golden/` name their inputs by the arguments of
//! the Python generators (`gen_ckpt.py`, `gen_image.py`) and by sha256. Tests and benchmarks in
//! this workspace must be able to rebuild those inputs without Python, so this crate is a port
//! whose output is byte-identical to the Python scripts' (checked by the tests against recorded
//! hashes). On top of the port it adds full-size presets (2B, 8B, MoE) for benchmarks, generated
//! in parallel and streamed so that memory stays at a few tensor chunks.

pub mod ckpt;
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
    /// The read-only `shared` folder (fixtures, reference models) was not found.
    #[error("shared folder not found at {} ({hint}); set SAIL_SHARED to its path", path.display())]
    MissingShared { path: PathBuf, hint: &'static str },
}

impl Error {
    pub(crate) fn read(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            op: "cannot read",
            path: path.to_path_buf(),
            source,
        }
    }
    pub(crate) fn write(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            op: "cannot write",
            path: path.to_path_buf(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The read-only shared folder (`fixtures/`, `models/`, `reference/`): `$SAIL_SHARED` if set,
/// else `../shared` beside the workspace.
pub fn shared_dir() -> Result<PathBuf> {
    let (path, hint) = match std::env::var_os("SAIL_SHARED") {
        Some(p) if !p.is_empty() => (PathBuf::from(p), "from $SAIL_SHARED"),
        _ => (
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("..")
                .join("shared"),
            "default: <workspace>/../shared",
        ),
    };
    if path.join("fixtures").is_dir() {
        Ok(std::fs::canonicalize(&path).unwrap_or(path))
    } else {
        Err(Error::MissingShared { path, hint })
    }
}

/// Lowercase hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
