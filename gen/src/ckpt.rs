//! Port of `reference/gen_ckpt.py`, plus full-size presets.
//!
//! Golden cases record the Python generator's argv and the sha256 of every file it wrote, so
//! this port takes the same flags (parsed the way argparse does: abbreviations, negative
//! numbers, `nargs="*"`) and reproduces the same bytes: weights, safetensors headers, shard
//! split and index, and the config files (`serde_json` values, written as `json.dumps` writes
//! them by `pyjson`).
//!
//! The full-size presets exist for benchmarks. They keep `gen_ckpt.py`'s per-tensor values
//! (a tensor's bytes depend only on seed, name, shape and dtype) but take their layout from the
//! real SAIL-VL2-2B files in `assets/SAIL-VL2-2B`: `2b` reuses its config, tokenizer and
//! shard map verbatim; `8b` and `moe` derive the config from it with the LLM sizes of spec §1,
//! §3.2 and §3.3 and split the weights into ~5 GB shards.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use serde_json::{json, Map, Value};

use crate::pyjson::{self, Style};
use crate::safetensors::{Progress, TensorSource};
pub use crate::weights::Dtype;
use crate::{assets_dir_at, model_assets_dir, Error, Result};

/// Files copied from the tokenizer folder (`gen_ckpt.TOKENIZER_FILES`).
pub const TOKENIZER_FILES: [&str; 7] = [
    "tokenizer.json",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
];
/// sha256 of SAIL-VL2-2B's `tokenizer.json`.
pub const SAIL_VL2_TOKENIZER_JSON_SHA256: &str = "fc7a4004b65007afc1409bed6f57ca23287da9c8889b79974ba6ccb077d30eb9";
/// `gen_ckpt.GENERATOR_VERSION` this port reproduces.
pub const GENERATOR_VERSION: u32 = 1;
/// Target shard size of the `8b` and `moe` presets.
pub const FULL_SHARD_BYTES: u64 = 5_000_000_000;

/// `--variant`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Variant {
    #[default]
    Dense,
    Moe,
}

/// `--lm-head`: with `--tie-word-embeddings`, the stored lm_head is a copy of embed_tokens or
/// its own draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LmHead {
    #[default]
    Copy,
    Distinct,
}

/// `--preset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    /// gen_ckpt.py's defaults (dense, ~20M params with the full tokenizer vocab).
    Tiny,
    /// gen_ckpt.py --variant moe defaults.
    TinyMoe,
    /// SAIL-VL2-2B at full size: real config, tokenizer and shard map (5.5 GB in bf16).
    #[value(name = "2b")]
    Sail2b,
    /// SAIL-VL2-8B at full size (Qwen3-8B LLM, spec §3.2; 17.8 GB in bf16).
    #[value(name = "8b")]
    Sail8b,
    /// SAIL-VL2-30B-A3B at full size (Qwen3-30B-A3B MoE LLM, spec §3.3; ~62 GB in bf16).
    Moe,
}

/// The full-size layouts (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FullSize {
    Sail2b,
    Sail8b,
    SailMoe,
}

impl FullSize {
    pub fn preset_name(self) -> &'static str {
        match self {
            FullSize::Sail2b => "2b",
            FullSize::Sail8b => "8b",
            FullSize::SailMoe => "moe",
        }
    }
}

/// Everything `gen_ckpt.py` takes, with its defaults (`Args::default()`), plus the full-size
/// layout choice.
#[derive(Debug, Clone, PartialEq)]
pub struct Args {
    /// Output folder (`--out`), created if missing.
    pub out: PathBuf,
    /// `Some` for the `2b`, `8b`, `moe` presets; then only `seed`, `dtype`, `shards` (8b/moe),
    /// `lm_head` (2b) and `progress` are used.
    pub full: Option<FullSize>,
    pub variant: Variant,
    pub seed: i64,
    pub dtype: Dtype,
    pub shards: i64,
    pub image_size: usize,
    pub patch_size: usize,
    pub vit_hidden: usize,
    pub vit_layers: usize,
    pub vit_heads: usize,
    pub vit_intermediate: usize,
    pub select_layer: i64,
    pub llm_hidden: usize,
    pub llm_layers: usize,
    pub llm_heads: usize,
    pub llm_kv_heads: usize,
    pub llm_head_dim: usize,
    pub llm_intermediate: usize,
    pub rope_theta: f64,
    pub num_experts: usize,
    pub top_k: usize,
    pub moe_intermediate: usize,
    pub no_norm_topk_prob: bool,
    pub mlp_only_layers: Vec<i64>,
    /// `None` (or 0, as in Python): the tokenizer size.
    pub vocab_size: Option<usize>,
    pub tie_word_embeddings: bool,
    pub lm_head: LmHead,
    /// `None`: the repository's `assets/SAIL-VL2-2B`.
    pub tokenizer_dir: Option<PathBuf>,
    /// The SAIL-VL2-2B config/tokenizer folder (templates of every preset). `None`: the
    /// repository's `assets/SAIL-VL2-2B`, found through the path the binary was compiled at.
    pub assets_dir: Option<PathBuf>,
    /// Accepted for make_tiny.py compatibility; no effect.
    pub meta_shapes: bool,
    /// Progress lines on stderr (on by default for the full-size presets).
    pub progress: bool,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            out: PathBuf::new(),
            full: None,
            variant: Variant::Dense,
            seed: 0,
            dtype: Dtype::Float32,
            shards: 1,
            image_size: 112,
            patch_size: 14,
            vit_hidden: 64,
            vit_layers: 2,
            vit_heads: 4,
            vit_intermediate: 128,
            select_layer: -1,
            llm_hidden: 64,
            llm_layers: 2,
            llm_heads: 4,
            llm_kv_heads: 2,
            llm_head_dim: 16,
            llm_intermediate: 128,
            rope_theta: 1_000_000.0,
            num_experts: 4,
            top_k: 2,
            moe_intermediate: 32,
            no_norm_topk_prob: false,
            mlp_only_layers: Vec::new(),
            vocab_size: None,
            tie_word_embeddings: false,
            lm_head: LmHead::Copy,
            tokenizer_dir: None,
            assets_dir: None,
            meta_shapes: false,
            progress: false,
        }
    }
}

/// The `ckpt` flags as given on a command line (every field optional, so that a preset can
/// supply the defaults). `Args::from_argv` and the `sail-gen ckpt` subcommand both parse this.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CkptFlags {
    /// Output folder (created if missing)
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Starting point: tiny (gen_ckpt defaults), tiny-moe (--variant moe defaults), or the
    /// full-size 2b, 8b, moe (shapes fixed; only --seed, --dtype, --shards, --lm-head apply)
    #[arg(long, value_enum)]
    pub preset: Option<Preset>,
    /// LLM kind [default: dense]
    #[arg(long, value_enum)]
    pub variant: Option<Variant>,
    /// Seed of every tensor stream [default: 0]
    #[arg(long, allow_negative_numbers = true)]
    pub seed: Option<i64>,
    /// Storage dtype of the safetensors [default: float32; bfloat16 for full-size presets]
    #[arg(long, value_enum)]
    pub dtype: Option<Dtype>,
    /// >1: model-0000i-of-0000n.safetensors + model.safetensors.index.json [default: 1]
    #[arg(long, allow_negative_numbers = true)]
    pub shards: Option<i64>,
    /// [default: 112]
    #[arg(long)]
    pub image_size: Option<usize>,
    /// [default: 14]
    #[arg(long)]
    pub patch_size: Option<usize>,
    /// [default: 64]
    #[arg(long)]
    pub vit_hidden: Option<usize>,
    /// [default: 2]
    #[arg(long)]
    pub vit_layers: Option<usize>,
    /// [default: 4]
    #[arg(long)]
    pub vit_heads: Option<usize>,
    /// [default: 128]
    #[arg(long)]
    pub vit_intermediate: Option<usize>,
    /// [default: -1]
    #[arg(long, allow_negative_numbers = true)]
    pub select_layer: Option<i64>,
    /// [default: 64]
    #[arg(long)]
    pub llm_hidden: Option<usize>,
    /// [default: 2]
    #[arg(long)]
    pub llm_layers: Option<usize>,
    /// [default: 4]
    #[arg(long)]
    pub llm_heads: Option<usize>,
    /// [default: 2]
    #[arg(long)]
    pub llm_kv_heads: Option<usize>,
    /// [default: 16]
    #[arg(long)]
    pub llm_head_dim: Option<usize>,
    /// [default: 128]
    #[arg(long)]
    pub llm_intermediate: Option<usize>,
    /// [default: 1000000.0]
    #[arg(long, allow_negative_numbers = true)]
    pub rope_theta: Option<f64>,
    /// MoE experts [default: 4]
    #[arg(long)]
    pub num_experts: Option<usize>,
    /// MoE experts per token [default: 2]
    #[arg(long)]
    pub top_k: Option<usize>,
    /// MoE expert FFN size [default: 32]
    #[arg(long)]
    pub moe_intermediate: Option<usize>,
    /// MoE: norm_topk_prob false (default true)
    #[arg(long)]
    pub no_norm_topk_prob: bool,
    /// MoE: layers with a dense FFN [default: none]
    #[arg(long, num_args = 0.., allow_negative_numbers = true, value_name = "LAYER")]
    pub mlp_only_layers: Option<Vec<i64>>,
    /// LLM vocab rows [default: tokenizer size 151678]
    #[arg(long)]
    pub vocab_size: Option<usize>,
    /// llm_config.tie_word_embeddings true; lm_head is still stored (see --lm-head)
    #[arg(long)]
    pub tie_word_embeddings: bool,
    /// With --tie-word-embeddings: stored lm_head = copy of embed_tokens or its own draw [default: copy]
    #[arg(long, value_enum)]
    pub lm_head: Option<LmHead>,
    /// Tokenizer files to copy [default: the repository's assets/SAIL-VL2-2B]
    #[arg(long, value_name = "DIR")]
    pub tokenizer_dir: Option<PathBuf>,
    /// SAIL-VL2-2B's config and tokenizer files, the templates of every preset [default: the
    /// repository's assets/SAIL-VL2-2B, at the path this binary was built from]; for a binary
    /// moved to another machine
    #[arg(long, value_name = "DIR")]
    pub assets: Option<PathBuf>,
    /// Accepted for make_tiny.py compatibility (no effect: tensors are streamed)
    #[arg(long)]
    pub meta_shapes: bool,
    /// No progress lines on stderr
    #[arg(long)]
    pub quiet: bool,
}

#[derive(clap::Parser)]
#[command(name = "gen_ckpt.py", no_binary_name = true, infer_long_args = true, args_override_self = true)]
struct ArgvParser {
    #[command(flatten)]
    flags: CkptFlags,
}

impl Args {
    /// The arguments a preset starts from.
    pub fn preset(preset: Preset) -> Args {
        let full = |f: FullSize| Args { full: Some(f), dtype: Dtype::Bfloat16, progress: true, ..Args::default() };
        match preset {
            Preset::Tiny => Args::default(),
            Preset::TinyMoe => Args { variant: Variant::Moe, ..Args::default() },
            Preset::Sail2b => Args { tie_word_embeddings: true, ..full(FullSize::Sail2b) },
            Preset::Sail8b => full(FullSize::Sail8b),
            Preset::Moe => Args { variant: Variant::Moe, ..full(FullSize::SailMoe) },
        }
    }

    /// Parses `gen_ckpt.py`-style arguments (as recorded in golden cases' `generator.argv`;
    /// `--out` may be left out and set afterwards). `--preset` and `--quiet` are accepted too.
    pub fn from_argv<S: AsRef<str>>(argv: &[S]) -> Result<Args> {
        use clap::Parser as _;
        let parsed = ArgvParser::try_parse_from(argv.iter().map(|s| s.as_ref().to_string()))
            .map_err(|e| Error::InvalidArgs(e.to_string().trim_end().to_string()))?;
        parsed.flags.resolve()
    }

    /// A `gen_ckpt.py` command line for these arguments (non-default flags only; full-size
    /// presets as `--preset NAME`, which only this port understands).
    pub fn to_argv(&self) -> Vec<String> {
        let base = match self.full {
            Some(FullSize::Sail2b) => Args::preset(Preset::Sail2b),
            Some(FullSize::Sail8b) => Args::preset(Preset::Sail8b),
            Some(FullSize::SailMoe) => Args::preset(Preset::Moe),
            None => Args::default(),
        };
        let mut v: Vec<String> = Vec::new();
        let mut push = |k: &str, val: String| {
            v.push(k.to_string());
            v.push(val);
        };
        if !self.out.as_os_str().is_empty() {
            push("--out", self.out.display().to_string());
        }
        if let Some(f) = self.full {
            push("--preset", f.preset_name().into());
        }
        macro_rules! flag {
            ($field:ident, $name:literal) => {
                if self.$field != base.$field {
                    push($name, self.$field.to_string());
                }
            };
        }
        if self.variant != base.variant {
            push("--variant", if self.variant == Variant::Moe { "moe" } else { "dense" }.into());
        }
        flag!(seed, "--seed");
        if self.dtype != base.dtype {
            push("--dtype", self.dtype.name().into());
        }
        flag!(shards, "--shards");
        flag!(image_size, "--image-size");
        flag!(patch_size, "--patch-size");
        flag!(vit_hidden, "--vit-hidden");
        flag!(vit_layers, "--vit-layers");
        flag!(vit_heads, "--vit-heads");
        flag!(vit_intermediate, "--vit-intermediate");
        flag!(select_layer, "--select-layer");
        flag!(llm_hidden, "--llm-hidden");
        flag!(llm_layers, "--llm-layers");
        flag!(llm_heads, "--llm-heads");
        flag!(llm_kv_heads, "--llm-kv-heads");
        flag!(llm_head_dim, "--llm-head-dim");
        flag!(llm_intermediate, "--llm-intermediate");
        if self.rope_theta != base.rope_theta {
            push("--rope-theta", format!("{:?}", self.rope_theta));
        }
        flag!(num_experts, "--num-experts");
        flag!(top_k, "--top-k");
        flag!(moe_intermediate, "--moe-intermediate");
        if self.no_norm_topk_prob {
            v.push("--no-norm-topk-prob".into());
        }
        if !self.mlp_only_layers.is_empty() {
            v.push("--mlp-only-layers".into());
            v.extend(self.mlp_only_layers.iter().map(|l| l.to_string()));
        }
        if let Some(n) = self.vocab_size {
            v.push("--vocab-size".into());
            v.push(n.to_string());
        }
        if self.tie_word_embeddings && self.full.is_none() {
            v.push("--tie-word-embeddings".into());
        }
        if self.lm_head != base.lm_head {
            v.push("--lm-head".into());
            v.push(if self.lm_head == LmHead::Distinct { "distinct" } else { "copy" }.into());
        }
        if let Some(d) = &self.tokenizer_dir {
            v.push("--tokenizer-dir".into());
            v.push(d.display().to_string());
        }
        if let Some(d) = &self.assets_dir {
            v.push("--assets".into());
            v.push(d.display().to_string());
        }
        if self.meta_shapes {
            v.push("--meta-shapes".into());
        }
        v
    }
}

impl CkptFlags {
    /// Applies the flags over the preset's arguments (gen_ckpt defaults without a preset).
    pub fn resolve(self) -> Result<Args> {
        let preset = self.preset.unwrap_or(Preset::Tiny);
        let mut a = Args::preset(preset);
        if let Some(full) = a.full {
            let name = full.preset_name();
            let mut fixed: Vec<&str> = Vec::new();
            macro_rules! deny {
                ($($field:ident => $flag:literal),*) => {$( if self.$field.is_some() { fixed.push($flag); } )*};
            }
            deny!(variant => "--variant", image_size => "--image-size", patch_size => "--patch-size",
                  vit_hidden => "--vit-hidden", vit_layers => "--vit-layers", vit_heads => "--vit-heads",
                  vit_intermediate => "--vit-intermediate", select_layer => "--select-layer",
                  llm_hidden => "--llm-hidden", llm_layers => "--llm-layers", llm_heads => "--llm-heads",
                  llm_kv_heads => "--llm-kv-heads", llm_head_dim => "--llm-head-dim",
                  llm_intermediate => "--llm-intermediate", rope_theta => "--rope-theta",
                  num_experts => "--num-experts", top_k => "--top-k", moe_intermediate => "--moe-intermediate",
                  mlp_only_layers => "--mlp-only-layers", vocab_size => "--vocab-size", tokenizer_dir => "--tokenizer-dir");
            if self.no_norm_topk_prob {
                fixed.push("--no-norm-topk-prob");
            }
            if self.tie_word_embeddings {
                fixed.push("--tie-word-embeddings");
            }
            if full == FullSize::Sail2b && self.shards.is_some() {
                fixed.push("--shards (2b keeps the real shard map)");
            }
            if full != FullSize::Sail2b && self.lm_head.is_some() {
                fixed.push("--lm-head (8b and moe have untied lm_heads)");
            }
            if !fixed.is_empty() {
                return Err(Error::InvalidArgs(format!("--preset {name} is a full-size layout; it does not take {}", fixed.join(", "))));
            }
        }
        macro_rules! set {
            ($($field:ident),*) => {$( if let Some(v) = self.$field { a.$field = v; } )*};
        }
        set!(
            variant,
            seed,
            dtype,
            shards,
            image_size,
            patch_size,
            vit_hidden,
            vit_layers,
            vit_heads,
            vit_intermediate,
            select_layer,
            llm_hidden,
            llm_layers,
            llm_heads,
            llm_kv_heads,
            llm_head_dim,
            llm_intermediate,
            rope_theta,
            num_experts,
            top_k,
            moe_intermediate,
            mlp_only_layers,
            lm_head
        );
        if let Some(out) = self.out {
            a.out = out;
        }
        if self.vocab_size.is_some() {
            a.vocab_size = self.vocab_size;
        }
        if self.tokenizer_dir.is_some() {
            a.tokenizer_dir = self.tokenizer_dir;
        }
        if self.assets.is_some() {
            a.assets_dir = self.assets;
        }
        a.no_norm_topk_prob |= self.no_norm_topk_prob;
        a.tie_word_embeddings |= self.tie_word_embeddings;
        a.meta_shapes |= self.meta_shapes;
        if self.quiet {
            a.progress = false;
        }
        Ok(a)
    }
}

/// What `generate` printed / returned (`gen_ckpt.generate`'s dict, `numpy` replaced by `preset`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Summary {
    pub generator: String,
    pub generator_version: u32,
    pub argv: Vec<String>,
    pub preset: Option<String>,
    pub tokenizer_json_sha256: String,
    pub vocab_size: usize,
    pub num_tensors: usize,
    pub num_params: u64,
    pub num_image_token_per_tile: usize,
    pub weight_files: Vec<String>,
    /// Every file in the output folder (sorted by name), not only the ones written.
    pub sha256: BTreeMap<String, String>,
}

impl Summary {
    /// As `gen_ckpt.py` prints it: `json.dumps(summary, indent=1)`.
    pub fn to_json_string(&self) -> String {
        pyjson::dumps(self, Style { indent: Some(1), ensure_ascii: true })
    }
}

/// Where a small output file's bytes come from.
#[derive(Debug, Clone, PartialEq)]
pub enum FileSource {
    Copy(PathBuf),
    Text(String),
}

/// Everything `generate` will write, computed and validated before anything is written.
#[derive(Debug, Clone)]
pub struct Plan {
    /// config.json's content (parsed), for shapes and for callers.
    pub config: Value,
    /// Non-weight files in the order they are written: (file name, source).
    pub files: Vec<(String, FileSource)>,
    /// All tensors in name order.
    pub tensors: Vec<TensorSource>,
    /// Weight files in order, with their tensor names.
    pub weight_files: Vec<(String, Vec<String>)>,
    /// `model.safetensors.index.json`'s text when sharded.
    pub index: Option<String>,
    pub vocab_size: usize,
    pub tokenizer_json: PathBuf,
    pub num_image_token_per_tile: usize,
}

impl Plan {
    pub fn num_params(&self) -> u64 {
        self.tensors.iter().map(TensorSource::numel).sum()
    }
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::read(path, e))?;
    serde_json::from_str(&text).map_err(|e| bad(path, e.to_string()))
}

fn bad(path: &Path, msg: impl Into<String>) -> Error {
    Error::BadInput { path: path.to_path_buf(), msg: msg.into() }
}

/// `gen_ckpt.tokenizer_size`: max(len(vocab.json), max(added_tokens.json ids) + 1).
pub fn tokenizer_size(dir: &Path) -> Result<usize> {
    let vp = dir.join("vocab.json");
    let vocab = read_json(&vp)?;
    let n = vocab.as_object().ok_or_else(|| bad(&vp, "not an object"))?.len();
    let ap = dir.join("added_tokens.json");
    let added = read_json(&ap)?;
    let items = added.as_object().ok_or_else(|| bad(&ap, "not an object"))?;
    let mut max_id = None::<i64>;
    for (k, v) in items {
        let id = v.as_i64().ok_or_else(|| bad(&ap, format!("{k}: id is not an integer")))?;
        max_id = Some(max_id.map_or(id, |m| m.max(id)));
    }
    let max_id = max_id.ok_or_else(|| bad(&ap, "no added tokens"))?;
    Ok(n.max(usize::try_from(max_id.saturating_add(1)).map_err(|_| bad(&ap, "negative token id"))?))
}

/// Python's `round()` of a float (ties to even) as an integer.
fn py_round(x: f64) -> i64 {
    x.round_ties_even() as i64
}

/// `gen_ckpt.tensor_specs(cfg)`: every tensor name (sorted) and shape.
pub fn tensor_specs(cfg: &Value) -> Result<Vec<(String, Vec<usize>)>, String> {
    let obj = |j: &Value, k: &str| -> Result<Value, String> { j.get(k).cloned().ok_or_else(|| format!("missing \"{k}\"")) };
    let int = |j: &Value, k: &str| -> Result<usize, String> {
        j.get(k)
            .and_then(Value::as_u64)
            .and_then(|i| usize::try_from(i).ok())
            .ok_or_else(|| format!("\"{k}\" is missing or not a non-negative integer"))
    };
    // `d.get(k) or default` for ints
    let int_or = |j: &Value, k: &str, d: usize| -> Result<usize, String> {
        match j.get(k) {
            None | Some(Value::Null) => Ok(d),
            Some(v) if v.as_i64() == Some(0) => Ok(d),
            Some(_) => int(j, k),
        }
    };
    let v = obj(cfg, "vision_config")?;
    let l = obj(cfg, "llm_config")?;
    let (c, i_vit, p) = (int(&v, "hidden_size")?, int(&v, "intermediate_size")?, int(&v, "patch_size")?);
    let s = int_or(cfg, "force_image_size", 0)?;
    let s = if s == 0 { int(&v, "image_size")? } else { s };
    if p == 0 {
        return Err("patch_size is 0".into());
    }
    let npatch = (s / p) * (s / p);
    let (h, vocab) = (int(&l, "hidden_size")?, int(&l, "vocab_size")?);
    let (nh, nkv) = (int(&l, "num_attention_heads")?, int(&l, "num_key_value_heads")?);
    if nh == 0 {
        return Err("num_attention_heads is 0".into());
    }
    let hd = int_or(&l, "head_dim", h / nh)?;
    let ratio = cfg.get("downsample_ratio").and_then(Value::as_f64).ok_or("\"downsample_ratio\" missing")?;
    let r = usize::try_from(py_round(1.0 / ratio)).map_err(|_| "bad downsample_ratio")?;
    let nch = int_or(&v, "num_channels", 3)?;
    let mut sp: Vec<(String, Vec<usize>)> = vec![
        ("vision_model.preprocessor.patchifier.proj.weight".into(), vec![c, nch, p, p]),
        ("vision_model.preprocessor.patchifier.proj.bias".into(), vec![c]),
        ("vision_model.preprocessor.patchifier.norm.weight".into(), vec![c]),
        ("vision_model.preprocessor.pos_embed".into(), vec![1, npatch, c]),
        ("vision_model.trunk.post_trunk_norm.weight".into(), vec![c]),
        ("mlp1.0.weight".into(), vec![c * r * r]),
        ("mlp1.0.bias".into(), vec![c * r * r]),
        ("mlp1.1.weight".into(), vec![h, c * r * r]),
        ("mlp1.1.bias".into(), vec![h]),
        ("mlp1.3.weight".into(), vec![h, h]),
        ("mlp1.3.bias".into(), vec![h]),
        ("language_model.model.embed_tokens.weight".into(), vec![vocab, h]),
        ("language_model.model.norm.weight".into(), vec![h]),
        ("language_model.lm_head.weight".into(), vec![vocab, h]),
    ];
    for i in 0..int(&v, "num_hidden_layers")? {
        let b = format!("vision_model.trunk.blocks.{i}.");
        for (n, shape) in [
            ("norm_1.weight", vec![c]),
            ("attn.qkv.weight", vec![3 * c, c]),
            ("attn.proj.weight", vec![c, c]),
            ("norm_2.weight", vec![c]),
            ("mlp.fc1.weight", vec![i_vit, c]),
            ("mlp.fc3.weight", vec![i_vit, c]),
            ("mlp.fc2.weight", vec![c, i_vit]),
        ] {
            sp.push((format!("{b}{n}"), shape));
        }
    }
    let moe = l.get("model_type").and_then(Value::as_str) == Some("qwen3_moe");
    let num_experts = int_or(&l, "num_experts", 0)?;
    let mlp_only: Vec<i64> = match l.get("mlp_only_layers") {
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_i64).collect(),
        _ => Vec::new(),
    };
    let step = match l.get("decoder_sparse_step") {
        None => 1,
        Some(_) => int(&l, "decoder_sparse_step")?,
    };
    for i in 0..int(&l, "num_hidden_layers")? {
        let b = format!("language_model.model.layers.{i}.");
        for (n, shape) in [
            ("input_layernorm.weight", vec![h]),
            ("post_attention_layernorm.weight", vec![h]),
            ("self_attn.q_proj.weight", vec![nh * hd, h]),
            ("self_attn.k_proj.weight", vec![nkv * hd, h]),
            ("self_attn.v_proj.weight", vec![nkv * hd, h]),
            ("self_attn.o_proj.weight", vec![h, nh * hd]),
            ("self_attn.q_norm.weight", vec![hd]),
            ("self_attn.k_norm.weight", vec![hd]),
        ] {
            sp.push((format!("{b}{n}"), shape));
        }
        let sparse = moe && num_experts > 0 && !mlp_only.contains(&(i as i64)) && step != 0 && (i + 1) % step == 0;
        if sparse {
            let im = int(&l, "moe_intermediate_size")?;
            sp.push((format!("{b}mlp.gate.weight"), vec![num_experts, h]));
            for e in 0..num_experts {
                sp.push((format!("{b}mlp.experts.{e}.gate_proj.weight"), vec![im, h]));
                sp.push((format!("{b}mlp.experts.{e}.up_proj.weight"), vec![im, h]));
                sp.push((format!("{b}mlp.experts.{e}.down_proj.weight"), vec![h, im]));
            }
        } else {
            let id = int(&l, "intermediate_size")?;
            sp.push((format!("{b}mlp.gate_proj.weight"), vec![id, h]));
            sp.push((format!("{b}mlp.up_proj.weight"), vec![id, h]));
            sp.push((format!("{b}mlp.down_proj.weight"), vec![h, id]));
        }
    }
    sp.sort_by(|a, b| a.0.cmp(&b.0));
    sp.dedup_by(|a, b| a.0 == b.0);
    Ok(sp)
}

/// `gen_ckpt.shard_groups`: sorted names, greedy cut at total/shards bytes.
pub fn shard_groups(tensors: &[(String, u64)], shards: i64) -> Vec<Vec<String>> {
    if shards <= 1 {
        return vec![tensors.iter().map(|t| t.0.clone()).collect()];
    }
    let total: u64 = tensors.iter().map(|t| t.1).sum();
    let per = total as f64 / shards as f64;
    let (mut groups, mut cur, mut acc) = (Vec::new(), Vec::new(), 0u64);
    for (name, nb) in tensors {
        if !cur.is_empty() && (acc + nb) as f64 > per && (groups.len() as i64) < shards - 1 {
            groups.push(std::mem::take(&mut cur));
            acc = 0;
        }
        cur.push(name.clone());
        acc += nb;
    }
    groups.push(cur);
    groups
}

/// `rope_theta` as `make_config` stores it: an int when integral. Python would also write
/// `Infinity`/`NaN` and integers of any size; JSON values here are finite and 64-bit (see
/// `pyjson`), so those are refused.
fn theta_json(theta: f64) -> Result<Value> {
    let refuse = |why: &str| Err(Error::InvalidArgs(format!("--rope-theta {theta} is {why}")));
    if !theta.is_finite() {
        return refuse("not finite");
    }
    if theta.fract() != 0.0 {
        return Ok(Value::from(theta));
    }
    // the ranges of u64 and i64 (powers of two are exact in f64, and so are the casts)
    let (two64, two63) = (2f64.powi(64), 2f64.powi(63));
    if (0.0..two64).contains(&theta) {
        Ok(Value::from(theta as u64))
    } else if (-two63..0.0).contains(&theta) {
        Ok(Value::from(theta as i64))
    } else {
        refuse("too large")
    }
}

/// `gen_ckpt.make_config(a, vocab)`.
fn make_config(a: &Args, template: &Value, vocab: usize, path: &Path) -> Result<Value> {
    let mut cfg = template.as_object().cloned().ok_or_else(|| bad(path, "not an object"))?;
    let sub = |k: &str| cfg.get(k).and_then(Value::as_object).cloned().ok_or_else(|| bad(path, format!("no {k}")));
    let (mut llm, mut vis) = (sub("llm_config")?, sub("vision_config")?);
    let moe = a.variant == Variant::Moe;
    let arch = if moe { "Qwen3MoeForCausalLM" } else { "Qwen3ForCausalLM" };
    for (k, v) in [
        ("architectures", json!([arch])),
        ("model_type", (if moe { "qwen3_moe" } else { "qwen3" }).into()),
        ("head_dim", a.llm_head_dim.into()),
        ("hidden_size", a.llm_hidden.into()),
        ("intermediate_size", a.llm_intermediate.into()),
        ("max_window_layers", a.llm_layers.into()),
        ("num_attention_heads", a.llm_heads.into()),
        ("num_hidden_layers", a.llm_layers.into()),
        ("num_key_value_heads", a.llm_kv_heads.into()),
        ("rope_theta", theta_json(a.rope_theta)?),
        ("tie_word_embeddings", a.tie_word_embeddings.into()),
        ("torch_dtype", a.dtype.name().into()),
        ("vocab_size", vocab.into()),
    ] {
        llm.insert(k.into(), v);
    }
    if moe {
        for (k, v) in [
            ("decoder_sparse_step", json!(1)),
            ("mlp_only_layers", a.mlp_only_layers.clone().into()),
            ("moe_intermediate_size", a.moe_intermediate.into()),
            ("norm_topk_prob", (!a.no_norm_topk_prob).into()),
            ("num_experts", a.num_experts.into()),
            ("num_experts_per_tok", a.top_k.into()),
            ("output_router_logits", false.into()),
            ("router_aux_loss_coef", json!(0.001)),
        ] {
            llm.insert(k.into(), v);
        }
    }
    for (k, v) in [
        ("hidden_size", a.vit_hidden.into()),
        ("image_size", a.image_size.into()),
        ("intermediate_size", a.vit_intermediate.into()),
        ("num_attention_heads", a.vit_heads.into()),
        ("num_hidden_layers", a.vit_layers.into()),
        ("patch_size", a.patch_size.into()),
        ("torch_dtype", a.dtype.name().into()),
    ] {
        vis.insert(k.into(), v);
    }
    cfg.insert("force_image_size".into(), a.image_size.into());
    cfg.insert("select_layer".into(), a.select_layer.into());
    cfg.insert("torch_dtype".into(), a.dtype.name().into());
    llm.sort_keys();
    vis.sort_keys();
    cfg.insert("llm_config".into(), llm.into());
    cfg.insert("vision_config".into(), vis.into());
    cfg.sort_keys();
    Ok(cfg.into())
}

/// Sets `key` keeping an existing key's place; a new key goes before the first greater key (the
/// 2B config is nearly sorted, and stays readable that way).
fn set_sorted(obj: &mut Map<String, Value>, key: &str, value: Value) {
    match obj.get_mut(key) {
        Some(slot) => *slot = value,
        None => {
            let at = obj.keys().position(|k| k.as_str() > key).unwrap_or(obj.len());
            obj.shift_insert(at, key.into(), value);
        }
    }
}

/// The config of a full-size preset: SAIL-VL2-2B's, with the LLM sizes changed for 8b/moe.
fn full_config(full: FullSize, dtype: Dtype, base: &Value, path: &Path) -> Result<Value> {
    let mut cfg = base.as_object().cloned().ok_or_else(|| bad(path, "not an object"))?;
    let llm = cfg.get_mut("llm_config").and_then(Value::as_object_mut).ok_or_else(|| bad(path, "no llm_config"))?;
    let mut sets: Vec<(&str, Value)> = Vec::new();
    match full {
        FullSize::Sail2b => {}
        FullSize::Sail8b => sets.extend([
            ("hidden_size", json!(4096)),
            ("intermediate_size", json!(12288)),
            ("num_hidden_layers", json!(36)),
            ("max_window_layers", json!(36)),
            ("num_attention_heads", json!(32)),
            ("num_key_value_heads", json!(8)),
            ("head_dim", json!(128)),
            ("tie_word_embeddings", json!(false)),
        ]),
        FullSize::SailMoe => sets.extend([
            ("architectures", json!(["Qwen3MoeForCausalLM"])),
            ("model_type", "qwen3_moe".into()),
            ("hidden_size", json!(2048)),
            ("num_hidden_layers", json!(48)),
            ("max_window_layers", json!(48)),
            ("num_attention_heads", json!(32)),
            ("num_key_value_heads", json!(4)),
            ("head_dim", json!(128)),
            ("tie_word_embeddings", json!(false)),
            ("decoder_sparse_step", json!(1)),
            ("mlp_only_layers", json!([])),
            ("moe_intermediate_size", json!(768)),
            ("norm_topk_prob", json!(true)),
            ("num_experts", json!(128)),
            ("num_experts_per_tok", json!(8)),
            ("output_router_logits", json!(false)),
            ("router_aux_loss_coef", json!(0.001)),
        ]),
    }
    sets.push(("torch_dtype", dtype.name().into()));
    for (k, v) in sets {
        set_sorted(llm, k, v);
    }
    if let Some(vis) = cfg.get_mut("vision_config").and_then(Value::as_object_mut) {
        vis.insert("torch_dtype".into(), dtype.name().into());
    }
    cfg.insert("torch_dtype".into(), dtype.name().into());
    Ok(cfg.into())
}

fn sha256_file(path: &Path) -> Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| Error::read(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::read(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(crate::hex(&h.finalize()))
}

fn index_json(tensors: &[TensorSource], weight_files: &[(String, Vec<String>)], dtype: Dtype) -> String {
    let total: u64 = tensors.iter().map(|t| t.numel() * dtype.size() as u64).sum();
    let mut wm: Map<String, Value> =
        weight_files.iter().flat_map(|(f, names)| names.iter().map(move |n| (n.clone(), Value::from(f.as_str())))).collect();
    wm.sort_keys();
    pyjson::dumps(&json!({"metadata": {"total_size": total}, "weight_map": wm}), Style::indented(2)) + "\n"
}

/// Computes and validates everything `generate` will write (no file is written).
pub fn plan(a: &Args) -> Result<Plan> {
    // The reference generator's tokenizer fixtures and config templates are byte-identical
    // to the real model's files, so one committed folder serves every preset.
    let model_dir = match &a.assets_dir {
        Some(dir) => assets_dir_at(dir)?,
        None => model_assets_dir()?,
    };
    let template_dir = model_dir.clone();
    let tok_dir = a.tokenizer_dir.clone().unwrap_or_else(|| model_dir.clone());
    let mut files: Vec<(String, FileSource)> = TOKENIZER_FILES.iter().map(|f| (f.to_string(), FileSource::Copy(tok_dir.join(f)))).collect();
    for (name, src) in &files {
        if let FileSource::Copy(p) = src {
            if !p.is_file() {
                return Err(Error::InvalidArgs(format!("tokenizer file {name} not found in {}", tok_dir.display())));
            }
        }
    }
    let tok_size = tokenizer_size(&tok_dir)?;

    let (config, vocab, copy_head) = match a.full {
        None => {
            if a.patch_size == 0 || !a.image_size.is_multiple_of(a.patch_size) || !(a.image_size / a.patch_size).is_multiple_of(2) {
                return Err(Error::InvalidArgs("image_size/patch_size must be an even integer (pixel shuffle 0.5)".into()));
            }
            if a.variant == Variant::Moe && !(0 < a.top_k && a.top_k <= a.num_experts) {
                return Err(Error::InvalidArgs("need 0 < top_k <= num_experts".into()));
            }
            let vocab = a.vocab_size.filter(|&v| v != 0).unwrap_or(tok_size);
            if vocab < tok_size {
                return Err(Error::InvalidArgs(format!("--vocab-size {vocab} < tokenizer size {tok_size}")));
            }
            let tp = template_dir.join("config.json");
            let cfg = make_config(a, &read_json(&tp)?, vocab, &tp)?;
            files.push(("config.json".into(), FileSource::Text(pyjson::dumps(&cfg, Style::indented(2)) + "\n")));
            let pp_path = template_dir.join("preprocessor_config.json");
            let mut pp = read_json(&pp_path)?;
            let pp_obj = pp.as_object_mut().ok_or_else(|| bad(&pp_path, "not an object"))?;
            pp_obj.insert("image_size".into(), a.image_size.into());
            pp_obj.insert("patch_size".into(), a.patch_size.into());
            files.push(("preprocessor_config.json".into(), FileSource::Text(pyjson::dumps(&pp, Style::indented(4)) + "\n")));
            files.push(("generation_config.json".into(), FileSource::Copy(template_dir.join("generation_config.json"))));
            (cfg, vocab, a.tie_word_embeddings && a.lm_head == LmHead::Copy)
        }
        Some(full) => {
            let cp = model_dir.join("config.json");
            let base = read_json(&cp)?;
            let cfg = full_config(full, a.dtype, &base, &cp)?;
            let text = if cfg == base {
                FileSource::Copy(cp.clone())
            } else {
                // the 2B file is json.dumps(indent=2) without a final newline
                FileSource::Text(pyjson::dumps(&cfg, Style::indented(2)))
            };
            files.push(("config.json".into(), text));
            files.push(("preprocessor_config.json".into(), FileSource::Copy(model_dir.join("preprocessor_config.json"))));
            files.push(("generation_config.json".into(), FileSource::Copy(model_dir.join("generation_config.json"))));
            let vocab = cfg
                .get("llm_config")
                .and_then(|l| l.get("vocab_size"))
                .and_then(Value::as_u64)
                .and_then(|v| usize::try_from(v).ok())
                .ok_or_else(|| bad(&cp, "llm_config.vocab_size missing"))?;
            let tie = cfg.get("llm_config").and_then(|l| l.get("tie_word_embeddings")) == Some(&Value::Bool(true));
            (cfg, vocab, tie && a.lm_head == LmHead::Copy)
        }
    };
    for (_, src) in &files {
        if let FileSource::Copy(p) = src {
            if !p.is_file() {
                return Err(Error::InvalidArgs(format!("{} not found", p.display())));
            }
        }
    }

    let specs = tensor_specs(&config).map_err(|m| Error::InvalidArgs(format!("config.json: {m}")))?;
    let tensors: Vec<TensorSource> = specs
        .into_iter()
        .map(|(name, shape)| {
            let source = if name == "language_model.lm_head.weight" && copy_head {
                "language_model.model.embed_tokens.weight".to_string()
            } else {
                name.clone()
            };
            TensorSource { name, shape, source }
        })
        .collect();
    let elem = a.dtype.size() as u64;
    let sizes: Vec<(String, u64)> = tensors.iter().map(|t| (t.name.clone(), t.numel() * elem)).collect();
    let total: u64 = sizes.iter().map(|s| s.1).sum();

    let (weight_files, sharded) = if a.full == Some(FullSize::Sail2b) {
        let ip = model_dir.join("model.safetensors.index.json");
        let idx = read_json(&ip)?;
        let wm = idx.get("weight_map").and_then(Value::as_object).ok_or_else(|| bad(&ip, "no weight_map"))?;
        let mut by_file: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in wm {
            let f = v.as_str().ok_or_else(|| bad(&ip, format!("{k}: file name is not a string")))?;
            by_file.entry(f.to_string()).or_default().push(k.clone());
        }
        let mut listed: Vec<&String> = wm.iter().map(|(k, _)| k).collect();
        listed.sort();
        if listed.len() != tensors.len() || listed.iter().zip(&tensors).any(|(k, t)| **k != t.name) {
            return Err(bad(&ip, "weight_map does not list exactly the tensors of config.json"));
        }
        let groups = by_file
            .into_iter()
            .map(|(f, mut names)| {
                names.sort();
                (f, names)
            })
            .collect();
        (groups, true)
    } else {
        let shards = match a.full {
            Some(_) if a.shards == Args::default().shards => total.div_ceil(FULL_SHARD_BYTES).max(1) as i64,
            _ => a.shards,
        };
        let groups = shard_groups(&sizes, shards);
        if groups.len() == 1 && shards <= 1 {
            (vec![("model.safetensors".to_string(), groups.into_iter().next().unwrap_or_default())], false)
        } else {
            let n = groups.len();
            let named = groups.into_iter().enumerate().map(|(i, g)| (format!("model-{:05}-of-{:05}.safetensors", i + 1, n), g)).collect();
            (named, true)
        }
    };
    let index = sharded.then(|| index_json(&tensors, &weight_files, a.dtype));

    let grid = {
        let v = config.get("vision_config");
        let s = config.get("force_image_size").and_then(Value::as_i64).filter(|&s| s != 0);
        let s = s.or_else(|| v.and_then(|v| v.get("image_size")).and_then(Value::as_i64)).unwrap_or(0);
        let p = v.and_then(|v| v.get("patch_size")).and_then(Value::as_i64).unwrap_or(1).max(1);
        (s / p) as usize
    };
    Ok(Plan {
        config,
        files,
        tensors,
        weight_files,
        index,
        vocab_size: vocab,
        tokenizer_json: tok_dir.join("tokenizer.json"),
        num_image_token_per_tile: grid * grid / 4,
    })
}

/// `gen_ckpt.generate`: writes the checkpoint into `a.out` and returns the summary.
pub fn generate(a: &Args) -> Result<Summary> {
    if a.out.as_os_str().is_empty() {
        return Err(Error::InvalidArgs("--out is required".into()));
    }
    let p = plan(a)?;
    let out = &a.out;
    std::fs::create_dir_all(out).map_err(|e| Error::write(out, e))?;

    let mut written: BTreeMap<String, String> = BTreeMap::new();
    for (name, src) in &p.files {
        let dst = out.join(name);
        let bytes = match src {
            FileSource::Copy(from) => std::fs::read(from).map_err(|e| Error::read(from, e))?,
            FileSource::Text(t) => t.clone().into_bytes(),
        };
        std::fs::write(&dst, &bytes).map_err(|e| Error::write(&dst, e))?;
        written.insert(name.clone(), crate::hex(&Sha256::digest(&bytes)));
    }
    let tok_sha = written["tokenizer.json"].clone();
    if tok_sha != SAIL_VL2_TOKENIZER_JSON_SHA256 {
        eprintln!("WARNING: tokenizer.json sha256 {tok_sha} is not SAIL-VL2-2B's");
    }

    let by_name: BTreeMap<&str, &TensorSource> = p.tensors.iter().map(|t| (t.name.as_str(), t)).collect();
    let elem = a.dtype.size() as u64;
    let total: u64 = p.tensors.iter().map(|t| t.numel() * elem).sum();
    let mut progress = Progress::new(a.progress, total);
    if a.progress {
        eprintln!(
            "sail-gen: {} tensors, {} params, {:.2} GB in {} file(s) -> {}",
            p.tensors.len(),
            p.num_params(),
            total as f64 / 1e9,
            p.weight_files.len(),
            out.display()
        );
    }
    for (file, names) in &p.weight_files {
        let ts: Vec<TensorSource> = names.iter().map(|n| by_name[n.as_str()].clone()).collect();
        let sha = crate::safetensors::write(&out.join(file), &ts, a.dtype, a.seed, &mut progress)?;
        written.insert(file.clone(), sha);
    }
    if let Some(index) = &p.index {
        let dst = out.join("model.safetensors.index.json");
        std::fs::write(&dst, index).map_err(|e| Error::write(&dst, e))?;
        written.insert("model.safetensors.index.json".into(), crate::hex(&Sha256::digest(index.as_bytes())));
    }

    // Python hashes everything in the folder, including files an earlier run left there.
    let mut sha256 = BTreeMap::new();
    let rd = std::fs::read_dir(out).map_err(|e| Error::read(out, e))?;
    for entry in rd {
        let entry = entry.map_err(|e| Error::read(out, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if !path.is_file() {
            continue;
        }
        let sha = match written.get(&name) {
            Some(s) => s.clone(),
            None => {
                if name.ends_with(".safetensors") || name == "model.safetensors.index.json" {
                    eprintln!("WARNING: {} is left over from an earlier run", path.display());
                }
                sha256_file(&path)?
            }
        };
        sha256.insert(name, sha);
    }
    Ok(Summary {
        generator: "sail-gen".into(),
        generator_version: GENERATOR_VERSION,
        argv: a.to_argv(),
        preset: a.full.map(|f| f.preset_name().to_string()),
        tokenizer_json_sha256: tok_sha,
        vocab_size: p.vocab_size,
        num_tensors: p.tensors.len(),
        num_params: p.num_params(),
        num_image_token_per_tile: p.num_image_token_per_tile,
        weight_files: p.weight_files.iter().map(|w| w.0.clone()).collect(),
        sha256,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rope_theta_as_make_config_stores_it() {
        // json.dumps(int(t) if float(t).is_integer() else float(t)) in Python 3
        for (theta, want) in [
            (1e19, "10000000000000000000"),
            (-(2f64.powi(63)), "-9223372036854775808"),
            (1e4, "10000"),
            (10000.5, "10000.5"),
            (-0.0, "0"),
            (1e-7, "1e-07"),
        ] {
            assert_eq!(pyjson::dumps(&theta_json(theta).unwrap(), Style::compact()), want);
        }
        for theta in [f64::INFINITY, f64::NAN, 1.8446744073709552e19, -9.3e18] {
            assert!(theta_json(theta).is_err(), "{theta}");
        }
    }
}
