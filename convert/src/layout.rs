//! The checkpoint against the name table, before anything is written: every expected tensor
//! present with its shape, nothing unexpected. Plain Rust, so the fuzz targets can run it.

use crate::error::{bounded, ConvertError};
use crate::hf::HfConfig;
use crate::safetensors::Checkpoint;
use sail_format::names::{instances, Dims, Instance, HF_EMBED_TOKENS, HF_LM_HEAD};
use sail_format::validate;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// `NAME.gguf` → `NAME.mmproj.gguf`.
pub fn vision_path_for(llm: &Path) -> PathBuf {
    let name = llm.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let stem = name.strip_suffix(".gguf").unwrap_or(&name);
    llm.with_file_name(format!("{stem}.mmproj.gguf"))
}

/// What the check found: whether the output head is the embedding, and every output tensor.
#[derive(Debug)]
pub struct Layout {
    pub tied: bool,
    pub instances: Vec<Instance>,
}

/// Whether the stored lm_head is byte-identical to embed_tokens (then it is written once).
fn lm_head_is_tied(ck: &Checkpoint) -> bool {
    match (ck.tensors.get(HF_LM_HEAD), ck.tensors.get(HF_EMBED_TOKENS)) {
        (Some(h), Some(e)) if h.dtype == e.dtype && h.shape == e.shape => {
            // compared in slices, each given back to the kernel at once, so the check does not
            // page in both tensors (1.2 GB for the 2B) at the same time
            let (a, b) = (ck.bytes(h), ck.bytes(e));
            let step = 64 << 20;
            let mut same = true;
            for off in (0..a.len()).step_by(step) {
                let end = (off + step).min(a.len());
                same = a[off..end] == b[off..end];
                for t in [h, e] {
                    ck.release_rows(t, 1, off / t.dtype.size(), (end - off) / t.dtype.size());
                }
                if !same {
                    break;
                }
            }
            same
        }
        (Some(_), Some(_)) => false,
        (None, Some(_)) => true,
        _ => false,
    }
}

/// Checks the checkpoint's tensors against the name table for `cfg` (whose counts
/// [`HfConfig::load`] has bounded), reporting every problem at once, briefly.
pub fn check_layout(cfg: &HfConfig, ck: &Checkpoint) -> Result<Layout, ConvertError> {
    let tied = lm_head_is_tied(ck);
    let lm_head_absent_ok = cfg.tie_word_embeddings && !ck.tensors.contains_key(HF_LM_HEAD);
    let insts = instances(Some(&cfg.llm), Some(&cfg.vision), tied);
    let dims = Dims { llm: Some(&cfg.llm), vision: Some(&cfg.vision) };
    let mut problems = Vec::new();
    let mut used: BTreeSet<&str> = BTreeSet::new();
    if tied && !lm_head_absent_ok {
        used.insert(HF_LM_HEAD);
    }
    for inst in &insts {
        let want = dims.shape(inst.entry().hf_shape);
        for hf in &inst.hf {
            used.insert(hf.as_str());
            match ck.tensors.get(hf) {
                None => problems.push(format!("missing tensor {hf} (expected shape {want:?})")),
                Some(t) if t.shape != want => problems.push(format!("tensor {hf} has shape {:?}, expected {want:?}", t.shape)),
                Some(_) => {}
            }
        }
    }
    if !lm_head_absent_ok && !ck.tensors.contains_key(HF_LM_HEAD) {
        problems.push(format!("missing tensor {HF_LM_HEAD}"));
    }
    for name in ck.tensors.keys() {
        if !used.contains(name.as_str()) {
            problems.push(format!("unexpected tensor {name} (not part of SAIL-VL2 with this config)"));
        }
    }
    if !problems.is_empty() {
        let (problems, omitted) = bounded(problems, validate::MAX_LISTED);
        return Err(ConvertError::Layout { problems, omitted });
    }
    Ok(Layout { tied, instances: insts })
}
