//! The smallest complete sail GGUF pair: every check accepts it, llama.cpp loads it, and the
//! vision graph runs it. Hostile-input tests, fuzz seeds and the mutation script start from
//! these files and break one thing at a time, so each test shows exactly what a check catches.
//!
//! Weights are small deterministic values (not a trained model): the files are for loading,
//! validation and graph tests, not for output quality.

use crate::gguf::{GgufWriter, PlannedTensor, Value};
use crate::keys::*;
use crate::names::{instances, Dims, FilePart};
use crate::template as tpl;
use crate::{GgmlType, LlmArch, LlmHparams, MoeHparams, PsVersion, VisionHparams};
use std::io::Write;
use std::path::Path;

/// A tiny dense (or MoE) language model: 2 layers, width 16, 4 heads of 8 (2 KV heads).
pub fn llm_hparams(moe: bool, n_vocab: u32) -> LlmHparams {
    LlmHparams {
        arch: if moe { LlmArch::Qwen3Moe } else { LlmArch::Qwen3 },
        n_vocab,
        n_embd: 16,
        n_layer: 2,
        n_head: 4,
        n_head_kv: 2,
        head_dim: 8,
        n_ff: if moe { 0 } else { 32 },
        n_ctx_train: 4096,
        rope_theta: 1e6,
        rms_eps: 1e-6,
        moe: moe.then_some(MoeHparams { n_expert: 4, n_expert_used: 2, n_ff_exp: 16 }),
    }
}

/// A tiny SAIL-ViT: 28-pixel tiles of 2×2 patches, one token per tile after the 2×2 shuffle.
pub fn vision_hparams(proj_dim: u32) -> VisionHparams {
    VisionHparams {
        image_size: 28,
        patch_size: 14,
        n_channels: 3,
        n_embd: 8,
        n_ff: 16,
        n_layer: 2,
        n_head: 2,
        rms_eps: 1e-5,
        select_layer: -1,
        ps_version: PsVersion::V2,
        downsample_ratio: 0.5,
        proj_ln_eps: 1e-5,
        proj_dim,
        image_mean: [0.485, 0.456, 0.406],
        image_std: [0.229, 0.224, 0.225],
        max_tiles: 4,
        min_tiles: 1,
        use_thumbnail: true,
    }
}

/// The tokens of the fixture vocabulary: SAIL's control and image tokens, then the 256 byte
/// tokens of byte-level BPE (GPT-2's byte-to-character map), so any text tokenizes.
pub fn vocabulary() -> Vec<String> {
    let mut v: Vec<String> = [tpl::IM_START, tpl::IM_END, tpl::ENDOFTEXT, tpl::IMG_START, tpl::IMG_END, tpl::IMG_CONTEXT]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let printable = |b: u32| (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || (0xae..=0xff).contains(&b);
    let mut extra = 0;
    for b in 0..256u32 {
        let c = if printable(b) {
            b
        } else {
            extra += 1;
            255 + extra
        };
        v.push(char::from_u32(c).expect("a valid char").to_string());
    }
    v
}

fn token_types(tokens: &[String]) -> Vec<i32> {
    // control tokens are type 3, the rest normal (1)
    tokens.iter().enumerate().map(|(i, _)| if i < 6 { 3 } else { 1 }).collect()
}

/// The language file's metadata, tokenizer and sail keys included.
pub fn llm_kvs(hp: &LlmHparams, mmproj: Option<&str>) -> Vec<(String, Value)> {
    let tokens = vocabulary();
    let id = |t: &str| tokens.iter().position(|x| x == t).expect("fixture token") as u32;
    let mut kv = hp.to_kvs();
    kv.insert(1, (GENERAL_NAME.into(), Value::String("sail fixture".into())));
    kv.insert(2, (GENERAL_FILE_TYPE.into(), Value::U32(0)));
    kv.extend([
        (TOK_MODEL.into(), Value::String("gpt2".into())),
        (TOK_PRE.into(), Value::String("qwen2".into())),
        (TOK_TOKEN_TYPE.into(), Value::ArrI32(token_types(&tokens))),
        (TOK_MERGES.into(), Value::ArrString(vec!["Ġ a".into()])),
        (TOK_EOS_ID.into(), Value::U32(id(tpl::IM_END))),
        (TOK_PAD_ID.into(), Value::U32(id(tpl::ENDOFTEXT))),
        (TOK_BOS_ID.into(), Value::U32(id(tpl::ENDOFTEXT))),
        (TOK_ADD_BOS.into(), Value::Bool(false)),
        (TOK_ADD_EOS.into(), Value::Bool(false)),
        (SAIL_TEMPLATE.into(), Value::String(tpl::TEMPLATE_NAME.into())),
        (SAIL_TOKEN_IMG_START.into(), Value::U32(id(tpl::IMG_START))),
        (SAIL_TOKEN_IMG_END.into(), Value::U32(id(tpl::IMG_END))),
        (SAIL_TOKEN_IMG_CONTEXT.into(), Value::U32(id(tpl::IMG_CONTEXT))),
        (SAIL_TOKENS_PER_TILE.into(), Value::U32(vision_hparams(hp.n_embd).tokens_per_tile() as u32)),
        (SAIL_TIED_OUTPUT.into(), Value::Bool(true)),
    ]);
    // the token list last: the first keys stay at fixed, small offsets for byte-level tools
    kv.push((TOK_TOKENS.into(), Value::ArrString(tokens)));
    if let Some(m) = mmproj {
        kv.push((SAIL_MMPROJ.into(), Value::String(m.into())));
    }
    kv
}

/// Small deterministic values: norms near 1, everything else in ±0.05.
fn values(name: &str, n: usize, norm: bool) -> Vec<f32> {
    let seed = name.bytes().fold(2166136261u32, |h, b| (h ^ b as u32).wrapping_mul(16777619));
    (0..n)
        .map(|i| {
            let x = (seed.wrapping_add(i as u32).wrapping_mul(2654435761) >> 8) as f32 / (1u32 << 24) as f32 - 0.5;
            if norm {
                1.0 + 0.1 * x
            } else {
                0.1 * x
            }
        })
        .collect()
}

fn encode(ty: GgmlType, v: &[f32]) -> Vec<u8> {
    match ty {
        GgmlType::F32 => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        // f16 by truncating an f32 (exact for the values used here is not needed)
        GgmlType::F16 => v.iter().flat_map(|x| f32_to_f16(*x).to_le_bytes()).collect(),
        GgmlType::BF16 => v.iter().flat_map(|x| ((x.to_bits() >> 16) as u16).to_le_bytes()).collect(),
        other => panic!("the fixture writes f32, f16 or bf16, not {other}"),
    }
}

fn f32_to_f16(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xff) as i32 - 127 + 15;
    let man = (b >> 13) & 0x3ff;
    if exp <= 0 {
        sign
    } else if exp >= 31 {
        sign | 0x7c00
    } else {
        sign | ((exp as u16) << 10) | man as u16
    }
}

/// Writes one file of `part` with every tensor of `dims`; `ty(name, default)` may change a
/// tensor's type (f32, f16 or bf16).
fn write(
    path: &Path,
    kvs: &[(String, Value)],
    dims: Dims<'_>,
    part: FilePart,
    ty: &dyn Fn(&str, GgmlType) -> GgmlType,
) -> std::io::Result<()> {
    let mut planned = Vec::new();
    let mut data = Vec::new();
    for inst in instances(dims.llm, dims.vision, true).iter().filter(|i| i.entry().file == part) {
        let e = inst.entry();
        let ne = dims.shape(e.ne);
        let t = ty(&inst.gguf, GgmlType::F32);
        let n = ne.iter().product::<u64>() as usize;
        data.push(encode(t, &values(&inst.gguf, n, e.category == crate::Category::Norm)));
        planned.push(PlannedTensor { name: inst.gguf.clone(), ne, ty: t });
    }
    let mut w = GgufWriter::start(std::io::BufWriter::new(std::fs::File::create(path)?), kvs, planned.clone())?;
    for (t, d) in planned.iter().zip(&data) {
        w.write_tensor(&t.name, d)?;
    }
    let (mut out, _) = w.finish()?;
    out.flush()
}

/// Writes the language file (`mmproj`: the vision file's name to record, if any).
pub fn write_llm(path: &Path, hp: &LlmHparams, mmproj: Option<&str>) -> std::io::Result<()> {
    write(path, &llm_kvs(hp, mmproj), Dims { llm: Some(hp), vision: None }, FilePart::Llm, &|_, t| t)
}

/// Writes the vision file; `ty` picks each tensor's type (by name; f32, f16 or bf16).
pub fn write_vision(path: &Path, hp: &VisionHparams, ty: &dyn Fn(&str, GgmlType) -> GgmlType) -> std::io::Result<()> {
    let mut kvs = hp.to_kvs();
    kvs.insert(1, (GENERAL_NAME.into(), Value::String("sail fixture vision".into())));
    write(path, &kvs, Dims { llm: None, vision: Some(hp) }, FilePart::Vision, ty)
}

/// Writes `NAME.gguf` and `NAME.mmproj.gguf` into `dir`; returns the language file's path.
pub fn write_pair(dir: &Path, name: &str, moe: bool) -> std::io::Result<std::path::PathBuf> {
    let llm = llm_hparams(moe, vocabulary().len() as u32);
    let vis = vision_hparams(llm.n_embd);
    let mmproj = format!("{name}.mmproj.gguf");
    let path = dir.join(format!("{name}.gguf"));
    write_llm(&path, &llm, Some(&mmproj))?;
    write_vision(&dir.join(&mmproj), &vis, &|_, t| t)?;
    Ok(path)
}

/// A GGUF file taken apart for editing: tests change a key, a tensor's type or offset, then
/// write the result byte-exact with [`crate::gguf::write_raw`], without any of the writer's
/// checks.
#[derive(Debug, Clone)]
pub struct Edit {
    pub kvs: Vec<(String, Value)>,
    pub tensors: Vec<crate::gguf::RawTensor>,
    /// The data section.
    pub data: Vec<u8>,
    pub alignment: usize,
}

impl Edit {
    pub fn open(path: &Path) -> Result<Edit, crate::gguf::GgufError> {
        let f = crate::gguf::GgufFile::open(path)?;
        let tensors = f
            .tensors
            .iter()
            .map(|t| crate::gguf::RawTensor { name: t.name.clone(), ne: t.ne.clone(), type_id: t.type_id, offset: t.rel_offset })
            .collect();
        Ok(Edit { kvs: f.kvs.clone(), tensors, data: f.bytes()[f.data_offset..].to_vec(), alignment: f.alignment })
    }

    /// Sets (or adds) a key.
    pub fn set(&mut self, key: &str, v: Value) -> &mut Self {
        match self.kvs.iter_mut().find(|(k, _)| k == key) {
            Some(kv) => kv.1 = v,
            None => self.kvs.push((key.to_string(), v)),
        }
        self
    }

    pub fn remove(&mut self, key: &str) -> &mut Self {
        self.kvs.retain(|(k, _)| k != key);
        self
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.kvs.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn tensor(&mut self, name: &str) -> &mut crate::gguf::RawTensor {
        self.tensors.iter_mut().find(|t| t.name == name).unwrap_or_else(|| panic!("no tensor {name}"))
    }

    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        crate::gguf::write_raw(std::io::BufWriter::new(std::fs::File::create(path)?), &self.kvs, &self.tensors, &self.data, self.alignment)
    }
}
