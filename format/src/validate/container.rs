//! The container: alignment, names, and where each tensor's bytes lie.

use super::{shown, Problems};
use crate::gguf::GgufFile;
use crate::GGML_MAX_NAME;

/// ggml's `TENSOR_ALIGNMENT`: the CPU backend asserts that weight memory (the file mapping
/// plus the data offset) is aligned to it.
const TENSOR_ALIGNMENT: usize = 32;

/// `packed`: the data must be laid out exactly as llama.cpp's GGUF reader requires (each
/// tensor at the previous one's end, padded to the alignment, in header order); otherwise
/// tensors only need to be aligned and not overlap.
pub(super) fn check(f: &GgufFile, packed: bool, p: &mut Problems) {
    for k in f.duplicate_keys().into_iter().take(4) {
        p.push(format!("key {} appears more than once", shown(k)));
    }
    for n in f.duplicate_tensors().into_iter().take(4) {
        p.push(format!("tensor {} appears more than once", shown(n)));
    }
    if !f.alignment.is_multiple_of(TENSOR_ALIGNMENT) {
        p.push(format!(
            "general.alignment = {}: expected a multiple of {TENSOR_ALIGNMENT} (ggml maps weights at that alignment)",
            f.alignment
        ));
    }
    for t in &f.tensors {
        if t.name.is_empty() || t.name.len() >= GGML_MAX_NAME {
            p.push(format!("tensor name {} must have 1 to {} bytes", shown(&t.name), GGML_MAX_NAME - 1));
        }
    }
    let align = f.alignment as u64;
    if packed {
        let mut expected = 0u64;
        for t in &f.tensors {
            if t.rel_offset != expected {
                p.push(format!(
                    "tensor {} starts at data offset {}, expected {expected} (llama.cpp wants tensors packed in header order)",
                    shown(&t.name),
                    t.rel_offset
                ));
                return;
            }
            match (t.n_bytes as u64).checked_next_multiple_of(align).and_then(|n| expected.checked_add(n)) {
                Some(e) => expected = e,
                None => {
                    p.push(format!("tensor {} overflows the data section", shown(&t.name)));
                    return;
                }
            }
        }
    } else {
        let mut spans: Vec<(u64, u64, &str)> =
            f.tensors.iter().map(|t| (t.rel_offset, t.rel_offset.saturating_add(t.n_bytes as u64), t.name.as_str())).collect();
        for &(start, _, name) in &spans {
            if !start.is_multiple_of(align) {
                p.push(format!("tensor {} starts at data offset {start}, not a multiple of the alignment {align}", shown(name)));
            }
        }
        spans.sort_unstable();
        for w in spans.windows(2) {
            if w[1].0 < w[0].1 {
                p.push(format!("tensors {} and {} overlap", shown(w[0].2), shown(w[1].2)));
            }
        }
    }
}
