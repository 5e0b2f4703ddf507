//! Judging a GGUF pair before ggml or llama.cpp sees it.
//!
//! llama.cpp and ggml trust what they load: many values they do not expect end in a
//! `GGML_ASSERT` (the whole process aborts) or an out-of-range read rather than an error — a
//! block count of 0, a NaN epsilon, an expert count on a dense model, a RoPE width that is not
//! the head size, a duplicated token string, a norm stored as f16 where ggml's binary ops want
//! f32. Apps load model files that came from elsewhere, so sail checks, in plain Rust and
//! before any count drives an allocation or a loop, everything those libraries will assume:
//!
//! * the container: known tensor types whose rows fit their blocks, aligned, in-file,
//!   non-overlapping data (laid out exactly as llama.cpp's reader requires for the language
//!   file), `general.alignment` as llama.cpp requires it, no duplicated keys or names;
//! * the hyperparameters, with the exact GGUF types llama.cpp reads (see [`llm`], [`vision`]);
//! * every tensor the hyperparameters imply present, with its shape and a type the graph can
//!   use, and none unexpected;
//! * the tokenizer and the ids sail uses (language file).
//!
//! Every problem names the key or tensor and what was expected; the list is bounded so a file
//! with millions of problems still gets a short message. The converter runs the same checks on
//! what it reads and on the files it writes.

mod container;
pub mod llm;
pub mod vision;

use crate::gguf::GgufFile;
use crate::names::{instances, Category, Dims, FilePart};
use crate::{GgmlType, LlmHparams, VisionHparams};
use std::collections::HashSet;
use std::path::PathBuf;

/// llama.cpp's `LLAMA_MAX_LAYERS` (llama-hparams.h of the pinned llama-cpp-sys-2 0.1.161).
pub const LLAMA_MAX_LAYERS: u32 = 512;
/// llama.cpp's `LLAMA_MAX_EXPERTS` (llama-hparams.h of the pinned llama-cpp-sys-2 0.1.161).
pub const LLAMA_MAX_EXPERTS: u32 = 1024;
/// Problems listed in one message; the rest are counted.
pub const MAX_LISTED: usize = 12;
/// Longest rendering of one problem (names from a file can be long).
const MAX_PROBLEM_CHARS: usize = 240;

/// A file that does not fit what sail, llama.cpp or the vision graph assume.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}: not a usable sail {what} file: {}{}", .problems.join("; "), more(*.omitted))]
pub struct ValidationError {
    pub file: PathBuf,
    /// "language model" or "vision".
    pub what: &'static str,
    /// The first [`MAX_LISTED`] problems.
    pub problems: Vec<String>,
    /// How many more there were.
    pub omitted: usize,
}

fn more(n: usize) -> String {
    if n == 0 {
        String::new()
    } else {
        format!("; and {n} more problem{}", if n == 1 { "" } else { "s" })
    }
}

/// Problems collected so far, bounded in count and length.
#[derive(Debug, Default)]
pub(crate) struct Problems {
    list: Vec<String>,
    omitted: usize,
}

impl Problems {
    pub(crate) fn push(&mut self, p: impl Into<String>) {
        if self.list.len() >= MAX_LISTED {
            self.omitted += 1;
            return;
        }
        let mut p: String = p.into();
        if p.chars().count() > MAX_PROBLEM_CHARS {
            p = p.chars().take(MAX_PROBLEM_CHARS).collect::<String>() + "…";
        }
        self.list.push(p);
    }

    fn finish(self, f: &GgufFile, what: &'static str) -> Result<(), ValidationError> {
        if self.list.is_empty() {
            Ok(())
        } else {
            Err(ValidationError { file: f.path().to_path_buf(), what, problems: self.list, omitted: self.omitted })
        }
    }
}

/// A name from the file for a message: shortened, and quoted with escapes unless it is plain
/// (so control characters in a hostile key cannot rewrite the terminal).
pub(crate) fn shown(s: &str) -> String {
    let short: String = s.chars().take(80).collect();
    let plain = !short.is_empty() && short.chars().all(|c| c.is_ascii_alphanumeric() || "._-+:[]#".contains(c));
    let mut out = if plain { short.clone() } else { format!("{short:?}") };
    if short.len() < s.len() {
        out.push('…');
    }
    out
}

/// Checks a language-model file against what llama.cpp assumes for `qwen3` / `qwen3moe` and
/// what sail's sessions use; returns its hyperparameters.
pub fn language(f: &GgufFile) -> Result<LlmHparams, ValidationError> {
    let mut p = Problems::default();
    container::check(f, true, &mut p);
    let hp = llm::hparams(f, &mut p);
    if let Some(hp) = &hp {
        tensors(f, Dims { llm: Some(hp), vision: None }, FilePart::Llm, &mut p);
        llm::tokenizer(f, hp, &mut p);
        llm::sail_keys(f, hp, &mut p);
    }
    p.finish(f, "language model")?;
    Ok(hp.expect("hyperparameters were read when nothing failed"))
}

/// Checks a vision file against the SAIL-ViT graph; returns its hyperparameters.
pub fn vision(f: &GgufFile) -> Result<VisionHparams, ValidationError> {
    let mut p = Problems::default();
    container::check(f, false, &mut p);
    let hp = vision::hparams(f, &mut p);
    if let Some(hp) = &hp {
        tensors(f, Dims { llm: None, vision: Some(hp) }, FilePart::Vision, &mut p);
    }
    p.finish(f, "vision")?;
    Ok(hp.expect("hyperparameters were read when nothing failed"))
}

/// Which check applies to `f`, by its `general.architecture`.
pub fn any(f: &GgufFile) -> Result<(), ValidationError> {
    match f.get(crate::keys::GENERAL_ARCHITECTURE).and_then(|v| v.as_str()) {
        Some(crate::keys::VISION_ARCH) => vision(f).map(|_| ()),
        _ => language(f).map(|_| ()),
    }
}

/// The types a tensor of `cat` may have in a file ggml computes with.
fn type_allowed(cat: Category, ty: GgmlType) -> bool {
    match cat {
        // Operands of ggml_mul / ggml_add next to f32 activations: ggml's CPU binary ops
        // abort on any other combination.
        Category::Norm | Category::Bias | Category::PosEmbd => ty == GgmlType::F32,
        // Matrices go through ggml_mul_mat / ggml_get_rows, which take every type sail knows.
        _ => true,
    }
}

/// Every tensor the hyperparameters imply, present with its shape and an allowed type, and
/// nothing else. The caller has bounded the layer counts, so the expected list is small.
fn tensors(f: &GgufFile, dims: Dims<'_>, part: FilePart, p: &mut Problems) {
    let tied = part == FilePart::Llm && f.tensor("output.weight").is_none();
    let expected = instances(dims.llm, dims.vision, tied);
    let mut names = HashSet::with_capacity(expected.len());
    for inst in expected.iter().filter(|i| i.entry().file == part) {
        names.insert(inst.gguf.as_str());
        let e = inst.entry();
        let want = dims.shape(e.ne);
        match f.tensor(&inst.gguf) {
            None => p.push(format!("tensor {} is missing (expected shape {want:?})", inst.gguf)),
            Some(t) if t.ne != want => p.push(format!("tensor {} has shape {:?}, expected {want:?}", inst.gguf, t.ne)),
            Some(t) => {
                let ty = t.ty().expect("the reader accepts only types sail knows");
                if !type_allowed(e.category, ty) {
                    p.push(format!("tensor {} is {ty}; ggml needs f32 for this kind of tensor", inst.gguf));
                }
            }
        }
    }
    for t in &f.tensors {
        if !names.contains(t.name.as_str()) {
            p.push(format!("unexpected tensor {} (not part of this model's layout)", shown(&t.name)));
        }
    }
}

/// Key and type facts shared by the two files' checks.
pub(crate) mod keyed {
    use super::Problems;
    use crate::gguf::{GgufFile, Value, ValueType};

    /// The value of `key` if it has exactly type `want` (llama.cpp reads keys by exact type).
    pub(crate) fn typed<'a>(f: &'a GgufFile, key: &str, want: ValueType, required: bool, p: &mut Problems) -> Option<&'a Value> {
        match f.get(key) {
            None => {
                if required {
                    p.push(format!("{key} is missing"));
                }
                None
            }
            Some(v) if v.value_type() == want && v.array_len().is_none() => Some(v),
            Some(v) => {
                p.push(format!("{key} has type {}, expected {}", type_name(v), name(want)));
                None
            }
        }
    }

    pub(crate) fn name(t: ValueType) -> &'static str {
        match t {
            ValueType::U8 => "u8",
            ValueType::I8 => "i8",
            ValueType::U16 => "u16",
            ValueType::I16 => "i16",
            ValueType::U32 => "u32",
            ValueType::I32 => "i32",
            ValueType::F32 => "f32",
            ValueType::Bool => "bool",
            ValueType::String => "string",
            ValueType::Array => "array",
            ValueType::U64 => "u64",
            ValueType::I64 => "i64",
            ValueType::F64 => "f64",
        }
    }

    pub(crate) fn type_name(v: &Value) -> String {
        match v {
            Value::ArrU8(_) => "array of u8".into(),
            Value::ArrI32(_) => "array of i32".into(),
            Value::ArrU32(_) => "array of u32".into(),
            Value::ArrF32(_) => "array of f32".into(),
            Value::ArrString(_) => "array of string".into(),
            Value::ArrOther(t, _) => format!("array of {}", name(*t)),
            v => name(v.value_type()).into(),
        }
    }

    /// A finite, positive epsilon (ggml asserts `eps >= 0`; NaN fails it, 0 divides by zero).
    pub(crate) fn eps(key: &str, v: f32, p: &mut Problems) {
        if !(v.is_finite() && v > 0.0 && v < 1.0) {
            p.push(format!("{key} = {v}: expected a finite epsilon in (0, 1)"));
        }
    }
}

#[cfg(test)]
mod tests;
