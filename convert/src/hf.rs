//! Reading a Hugging Face SAIL-VL2 folder's configuration into sail's typed hyperparameters.
//!
//! Values come from the checkpoint's own files; where SAIL's processor ignores a config value
//! (it hard-codes `min_num = 1` and the thumbnail, and takes `max_dynamic_patch` from
//! `preprocessor_config.json`, not from `config.json`), we follow the processor, because that
//! is what the released model was evaluated with.

use crate::error::{bounded, ConvertError};
use sail_format::validate::{self, LLAMA_MAX_EXPERTS, LLAMA_MAX_LAYERS};
use sail_format::{LlmArch, LlmHparams, MoeHparams, PsVersion, VisionHparams};
use serde_json::Value as J;
use std::path::Path;

/// What the converter needs from `config.json` and `preprocessor_config.json`.
#[derive(Debug, Clone)]
pub struct HfConfig {
    pub llm: LlmHparams,
    pub vision: VisionHparams,
    pub template: String,
    pub tie_word_embeddings: bool,
}

struct Cfg<'a> {
    file: &'a Path,
    root: &'a J,
}

impl<'a> Cfg<'a> {
    fn err(&self, key: &str, why: impl Into<String>) -> ConvertError {
        ConvertError::BadConfig { file: self.file.to_path_buf(), key: key.into(), why: why.into() }
    }
    fn get(&self, path: &str) -> Option<&'a J> {
        path.split('.').try_fold(self.root, |v, k| v.get(k)).filter(|v| !v.is_null())
    }
    fn u32(&self, path: &str) -> Result<u32, ConvertError> {
        let v = self.get(path).ok_or_else(|| self.err(path, "missing"))?;
        v.as_u64().and_then(|x| u32::try_from(x).ok()).ok_or_else(|| self.err(path, format!("{v} is not a non-negative integer")))
    }
    fn u32_or(&self, path: &str, default: u32) -> Result<u32, ConvertError> {
        if self.get(path).is_some() {
            self.u32(path)
        } else {
            Ok(default)
        }
    }
    fn i32(&self, path: &str) -> Result<i32, ConvertError> {
        let v = self.get(path).ok_or_else(|| self.err(path, "missing"))?;
        v.as_i64().and_then(|x| i32::try_from(x).ok()).ok_or_else(|| self.err(path, format!("{v} is not an integer")))
    }
    fn f64(&self, path: &str) -> Result<f64, ConvertError> {
        let v = self.get(path).ok_or_else(|| self.err(path, "missing"))?;
        v.as_f64().ok_or_else(|| self.err(path, format!("{v} is not a number")))
    }
    fn f64_or(&self, path: &str, default: f64) -> Result<f64, ConvertError> {
        if self.get(path).is_some() {
            self.f64(path)
        } else {
            Ok(default)
        }
    }
    fn bool_or(&self, path: &str, default: bool) -> Result<bool, ConvertError> {
        match self.get(path) {
            None => Ok(default),
            Some(v) => v.as_bool().ok_or_else(|| self.err(path, format!("{v} is not a boolean"))),
        }
    }
    fn str_or(&self, path: &str, default: &str) -> Result<String, ConvertError> {
        match self.get(path) {
            None => Ok(default.into()),
            Some(v) => v.as_str().map(String::from).ok_or_else(|| self.err(path, format!("{v} is not a string"))),
        }
    }
    fn f32x3(&self, path: &str) -> Result<[f32; 3], ConvertError> {
        let v = self.get(path).ok_or_else(|| self.err(path, "missing"))?;
        let a: Option<Vec<f32>> = v.as_array().and_then(|a| a.iter().map(|x| x.as_f64().map(|f| f as f32)).collect());
        match a {
            Some(a) if a.len() == 3 => Ok([a[0], a[1], a[2]]),
            _ => Err(self.err(path, format!("{v} is not a list of 3 numbers"))),
        }
    }
}

/// Largest JSON file read (a 256k-token tokenizer.json is about 30 MB; parsed JSON takes
/// several times its size in memory).
const MAX_JSON_BYTES: u64 = 256 << 20;

/// Reads a JSON file: a regular file (opened without blocking) of bounded size.
pub(crate) fn read_json(file: &Path) -> Result<J, ConvertError> {
    let bytes = sail_format::files::read_input(file, MAX_JSON_BYTES).map_err(|e| ConvertError::io(file, e))?;
    serde_json::from_slice(&bytes).map_err(|e| ConvertError::BadJson { file: file.to_path_buf(), why: e.to_string() })
}

fn unrepresentable(file: &Path, arch: LlmArch, what: &str, why: &str) -> ConvertError {
    ConvertError::Unrepresentable { file: file.to_path_buf(), arch: arch.gguf_name().into(), what: what.into(), why: why.into() }
}

impl HfConfig {
    pub fn load(dir: &Path) -> Result<HfConfig, ConvertError> {
        if !dir.is_dir() {
            return Err(ConvertError::NotAFolder { dir: dir.to_path_buf() });
        }
        let cfg_path = dir.join("config.json");
        if !cfg_path.exists() {
            return Err(ConvertError::MissingConfig { dir: dir.to_path_buf() });
        }
        let root = read_json(&cfg_path)?;
        let c = Cfg { file: &cfg_path, root: &root };
        let mt = c.str_or("model_type", "")?;
        if mt != "sailvl" {
            return Err(ConvertError::UnknownModelType { file: cfg_path, found: mt });
        }
        let llm_arch_name = c
            .get("llm_config.architectures")
            .and_then(|a| a.get(0))
            .and_then(|a| a.as_str())
            .map(String::from)
            .unwrap_or(c.str_or("llm_config.model_type", "")?);
        let arch = match llm_arch_name.as_str() {
            "Qwen3ForCausalLM" | "qwen3" => LlmArch::Qwen3,
            "Qwen3MoeForCausalLM" | "qwen3_moe" => LlmArch::Qwen3Moe,
            _ => return Err(ConvertError::UnknownLlmArch { file: cfg_path, found: llm_arch_name }),
        };
        let vmt = c.str_or("vision_config.model_type", "")?;
        if vmt != "sailvit" {
            return Err(c.err("vision_config.model_type", format!("{vmt:?} is not SAIL-ViT (\"sailvit\")")));
        }

        // ---- language model ----
        if c.bool_or("llm_config.attention_bias", false)? {
            return Err(unrepresentable(&cfg_path, arch, "attention_bias = true", "qwen3 has no attention biases"));
        }
        if c.bool_or("llm_config.use_sliding_window", false)? {
            return Err(unrepresentable(&cfg_path, arch, "use_sliding_window = true", "qwen3 has no sliding window"));
        }
        if c.get("llm_config.rope_scaling").is_some() {
            return Err(unrepresentable(&cfg_path, arch, "rope_scaling", "SAIL-VL2 uses plain RoPE; scaled RoPE is not converted"));
        }
        let n_embd = c.u32("llm_config.hidden_size")?;
        let n_head = c.u32("llm_config.num_attention_heads")?;
        if n_head == 0 {
            return Err(c.err("llm_config.num_attention_heads", "must be > 0"));
        }
        let head_dim = c.u32_or("llm_config.head_dim", n_embd / n_head)?;
        let moe = if arch == LlmArch::Qwen3Moe {
            if !c.bool_or("llm_config.norm_topk_prob", false)? {
                return Err(unrepresentable(
                    &cfg_path,
                    arch,
                    "norm_topk_prob = false",
                    "llama.cpp always renormalises the top-k expert weights",
                ));
            }
            if c.u32_or("llm_config.decoder_sparse_step", 1)? != 1
                || c.get("llm_config.mlp_only_layers").and_then(|v| v.as_array()).is_some_and(|a| !a.is_empty())
            {
                return Err(unrepresentable(
                    &cfg_path,
                    arch,
                    "dense layers in a MoE model (decoder_sparse_step / mlp_only_layers)",
                    "every layer must be sparse",
                ));
            }
            let m = MoeHparams {
                n_expert: c.u32("llm_config.num_experts")?,
                n_expert_used: c.u32("llm_config.num_experts_per_tok")?,
                n_ff_exp: c.u32("llm_config.moe_intermediate_size")?,
            };
            if m.n_expert_used == 0 || m.n_expert_used > m.n_expert {
                return Err(c.err("llm_config.num_experts_per_tok", format!("{} is not in 1..={}", m.n_expert_used, m.n_expert)));
            }
            Some(m)
        } else {
            None
        };
        let llm = LlmHparams {
            arch,
            n_vocab: c.u32("llm_config.vocab_size")?,
            n_embd,
            n_layer: c.u32("llm_config.num_hidden_layers")?,
            n_head,
            n_head_kv: c.u32_or("llm_config.num_key_value_heads", n_head)?,
            head_dim,
            n_ff: if moe.is_some() { c.u32_or("llm_config.intermediate_size", 0)? } else { c.u32("llm_config.intermediate_size")? },
            n_ctx_train: c.u32_or("llm_config.max_position_embeddings", 40960)?,
            rope_theta: c.f64_or("llm_config.rope_theta", 1e6)? as f32,
            rms_eps: c.f64_or("llm_config.rms_norm_eps", 1e-6)? as f32,
            moe,
        };
        if llm.n_head_kv == 0 || !llm.n_head.is_multiple_of(llm.n_head_kv) {
            return Err(c.err("llm_config.num_key_value_heads", format!("{} does not divide {} heads", llm.n_head_kv, llm.n_head)));
        }

        // ---- vision ----
        if c.bool_or("vision_config.qkv_bias", false)? || c.bool_or("vision_config.use_bias", false)? {
            return Err(c.err("vision_config.qkv_bias / use_bias", "SAIL-ViT with biases in qkv or the MLP is not supported"));
        }
        let image_size = match c.get("force_image_size") {
            Some(_) => c.u32("force_image_size")?,
            None => c.u32("vision_config.image_size")?,
        };
        let ps = c.str_or("ps_version", "v1")?;
        let ps_version = PsVersion::parse(&ps).ok_or_else(|| c.err("ps_version", format!("{ps:?} is not v1 or v2")))?;

        let pp_path = dir.join("preprocessor_config.json");
        if !pp_path.exists() {
            return Err(ConvertError::BadJson {
                file: pp_path,
                why: "missing: it holds the image mean/std and the tile limit the model was trained with".into(),
            });
        }
        let pp_root = read_json(&pp_path)?;
        let pp = Cfg { file: &pp_path, root: &pp_root };
        if let Some(s) = pp.get("image_size") {
            if s.as_u64() != Some(image_size as u64) {
                return Err(pp.err("image_size", format!("{s} disagrees with config.json's tile size {image_size}")));
            }
        }
        let vision = VisionHparams {
            image_size,
            patch_size: c.u32("vision_config.patch_size")?,
            n_channels: c.u32_or("vision_config.num_channels", 3)?,
            n_embd: c.u32("vision_config.hidden_size")?,
            n_ff: c.u32("vision_config.intermediate_size")?,
            n_layer: c.u32("vision_config.num_hidden_layers")?,
            n_head: c.u32("vision_config.num_attention_heads")?,
            rms_eps: c.f64_or("vision_config.rms_norm_eps", 1e-5)? as f32,
            select_layer: c.i32("select_layer")?,
            ps_version,
            downsample_ratio: c.f64("downsample_ratio")? as f32,
            // nn.LayerNorm's default; SAIL's mlp1 does not set it.
            proj_ln_eps: 1e-5,
            proj_dim: n_embd,
            image_mean: pp.f32x3("image_mean")?,
            image_std: pp.f32x3("image_std")?,
            // SAILVLImageProcessor: max_num from preprocessor_config (class default 10),
            // min_num 1 and use_thumbnail True hard-coded.
            max_tiles: pp.u32_or("max_dynamic_patch", 10)?,
            min_tiles: 1,
            use_thumbnail: true,
        };
        vision.validate().map_err(|why| c.err("vision_config", why))?;
        if vision.n_channels != 3 {
            return Err(c.err("vision_config.num_channels", "SAIL-ViT takes RGB (3 channels)"));
        }
        // Counts are bounded before any of them sizes a tensor list or a vocabulary.
        if !(1..=LLAMA_MAX_LAYERS).contains(&llm.n_layer) {
            return Err(
                c.err("llm_config.num_hidden_layers", format!("{} is not in 1..={LLAMA_MAX_LAYERS} (llama.cpp's limit)", llm.n_layer))
            );
        }
        if !(1..=validate::vision::MAX_LAYERS).contains(&vision.n_layer) {
            let max = validate::vision::MAX_LAYERS;
            return Err(c.err("vision_config.num_hidden_layers", format!("{} is not in 1..={max}", vision.n_layer)));
        }
        if !(1..=validate::llm::MAX_VOCAB).contains(&llm.n_vocab) {
            return Err(c.err("llm_config.vocab_size", format!("{} is not in 1..={}", llm.n_vocab, validate::llm::MAX_VOCAB)));
        }
        if let Some(m) = llm.moe.filter(|m| !(1..=LLAMA_MAX_EXPERTS).contains(&m.n_expert)) {
            return Err(c.err("llm_config.num_experts", format!("{} is not in 1..={LLAMA_MAX_EXPERTS} (llama.cpp's limit)", m.n_expert)));
        }
        // everything else llama.cpp and the vision graph assume, named by GGUF key
        let mut problems = Vec::new();
        validate::llm::check(&llm, |p| problems.push(p));
        validate::vision::check(&vision, |p| problems.push(p));
        if !problems.is_empty() {
            let (problems, omitted) = bounded(problems, validate::MAX_LISTED);
            return Err(ConvertError::BadHparams { file: cfg_path, problems, omitted });
        }
        Ok(HfConfig {
            llm,
            vision,
            template: c.str_or("template", "univl-chat")?,
            tie_word_embeddings: c.bool_or("llm_config.tie_word_embeddings", false)?,
        })
    }
}
