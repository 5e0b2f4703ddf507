//! Fingerprints the sources that decide what the test kit generates (the generator, the
//! converter, the format layer, ggml's quantizers, the model assets), so every test binary of
//! one build shares one scratch folder of checkpoints and conversions, and any change to those
//! sources gets a fresh one.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut all = Vec::new();
    for d in ["gen/src", "convert/src", "format/src", "ggml/src", "assets/SAIL-VL2-2B"] {
        let dir = root.join(d);
        println!("cargo:rerun-if-changed={}", dir.display());
        files(&dir, &mut all);
    }
    all.sort();
    let mut h = Sha256::new();
    for p in &all {
        h.update(p.strip_prefix(&root).unwrap_or(p).to_string_lossy().as_bytes());
        h.update(std::fs::read(p).unwrap_or_default());
    }
    let hex: String = h.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect();
    println!("cargo:rustc-env=SAIL_TESTKIT_SOURCES={hex}");
}
