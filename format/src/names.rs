//! The tensor name table: Hugging Face name ↔ GGUF name ↔ expected shape ↔ quant category.
//!
//! Modelled on llama.cpp's `llama-arch.cpp`: one row per tensor kind, with `{bid}` for a block
//! index and `{xid}` for an expert index. Language-model names are llama.cpp's own (`qwen3`,
//! `qwen3moe`), so stock llama.cpp loads the language GGUF. Vision names follow mtmd's mmproj
//! conventions where SAIL-ViT has the same part (`v.blk.N.attn_qkv`, `mm.model.mlp.N`), and add
//! `v.patch_norm` for the RMSNorm that SAIL applies before the position embedding.

use super::hparams::{LlmHparams, VisionHparams};

/// Which of the two output files a tensor lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilePart {
    /// `NAME.gguf`: the language model, llama.cpp layout.
    Llm,
    /// `NAME.mmproj.gguf`: SAIL-ViT and the `mlp1` projector.
    Vision,
}

/// How many instances a row stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Global,
    /// One per LLM layer (`{bid}`).
    LlmBlock,
    /// One GGUF tensor per LLM layer, stacked from one HF tensor per expert (`{bid}`, `{xid}`).
    LlmExperts,
    /// One per ViT block (`{bid}`).
    VisionBlock,
}

/// When a row applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    Always,
    /// Dense FFN layers only.
    Dense,
    /// Sparse-MoE layers only.
    Moe,
    /// Only when lm_head differs from embed_tokens (else the output shares `token_embd`).
    Untied,
}

/// Quantization category: the policy in `sail-quant` maps each to a type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    /// Norm gains: always f32.
    Norm,
    /// Biases: always f32.
    Bias,
    /// Learned position embedding: always f32.
    PosEmbd,
    /// MoE router (`ffn_gate_inp`): f32, as llama.cpp keeps it.
    Router,
    TokenEmbd,
    Output,
    AttnQ,
    AttnK,
    AttnV,
    AttnOut,
    FfnGate,
    FfnUp,
    FfnDown,
    ExpGate,
    ExpUp,
    ExpDown,
    /// Vision-tower and projector matrices: follow `--vision-type`.
    VisionMatrix,
}

impl Category {
    /// Tensors of these categories are never quantized.
    pub fn always_f32(self) -> bool {
        matches!(self, Category::Norm | Category::Bias | Category::PosEmbd | Category::Router)
    }
}

/// A symbolic dimension, resolved against the hyperparameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dim {
    One,
    /// LLM hidden size.
    Embd,
    Vocab,
    /// n_head · head_dim.
    QDim,
    /// n_head_kv · head_dim.
    KvDim,
    HeadDim,
    Ff,
    Experts,
    FfExp,
    /// ViT hidden size.
    VEmbd,
    /// 3 · ViT hidden size (fused qkv).
    VQkv,
    VFf,
    VPatch,
    VChannels,
    /// Number of patches per tile ((S/P)²).
    VPositions,
    /// ViT hidden · scale² (projector input after pixel shuffle).
    ProjIn,
    /// Projector output width (`clip.vision.projection_dim`): the LLM hidden size it feeds.
    ProjOut,
}

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub struct TensorEntry {
    pub hf: &'static str,
    pub gguf: &'static str,
    pub file: FilePart,
    pub scope: Scope,
    pub when: When,
    /// Shape as stored in the HF checkpoint (PyTorch order, outermost first; per expert).
    pub hf_shape: &'static [Dim],
    /// Shape in GGUF, ggml order (ne[0] innermost; experts stacked outermost).
    pub ne: &'static [Dim],
    pub category: Category,
}

macro_rules! t {
    ($hf:expr, $gguf:expr, $file:ident, $scope:ident, $when:ident, [$($h:ident),*], [$($n:ident),*], $cat:ident) => {
        TensorEntry {
            hf: $hf,
            gguf: $gguf,
            file: FilePart::$file,
            scope: Scope::$scope,
            when: When::$when,
            hf_shape: &[$(Dim::$h),*],
            ne: &[$(Dim::$n),*],
            category: Category::$cat,
        }
    };
}

/// Every tensor of a SAIL-VL2 checkpoint.
#[rustfmt::skip]
pub const TENSORS: &[TensorEntry] = &[
    // ---- language model (llama.cpp qwen3 / qwen3moe) ----
    t!("language_model.model.embed_tokens.weight", "token_embd.weight", Llm, Global, Always, [Vocab, Embd], [Embd, Vocab], TokenEmbd),
    t!("language_model.model.norm.weight", "output_norm.weight", Llm, Global, Always, [Embd], [Embd], Norm),
    t!("language_model.lm_head.weight", "output.weight", Llm, Global, Untied, [Vocab, Embd], [Embd, Vocab], Output),
    t!("language_model.model.layers.{bid}.input_layernorm.weight", "blk.{bid}.attn_norm.weight", Llm, LlmBlock, Always, [Embd], [Embd], Norm),
    t!("language_model.model.layers.{bid}.self_attn.q_proj.weight", "blk.{bid}.attn_q.weight", Llm, LlmBlock, Always, [QDim, Embd], [Embd, QDim], AttnQ),
    t!("language_model.model.layers.{bid}.self_attn.k_proj.weight", "blk.{bid}.attn_k.weight", Llm, LlmBlock, Always, [KvDim, Embd], [Embd, KvDim], AttnK),
    t!("language_model.model.layers.{bid}.self_attn.v_proj.weight", "blk.{bid}.attn_v.weight", Llm, LlmBlock, Always, [KvDim, Embd], [Embd, KvDim], AttnV),
    t!("language_model.model.layers.{bid}.self_attn.o_proj.weight", "blk.{bid}.attn_output.weight", Llm, LlmBlock, Always, [Embd, QDim], [QDim, Embd], AttnOut),
    t!("language_model.model.layers.{bid}.self_attn.q_norm.weight", "blk.{bid}.attn_q_norm.weight", Llm, LlmBlock, Always, [HeadDim], [HeadDim], Norm),
    t!("language_model.model.layers.{bid}.self_attn.k_norm.weight", "blk.{bid}.attn_k_norm.weight", Llm, LlmBlock, Always, [HeadDim], [HeadDim], Norm),
    t!("language_model.model.layers.{bid}.post_attention_layernorm.weight", "blk.{bid}.ffn_norm.weight", Llm, LlmBlock, Always, [Embd], [Embd], Norm),
    t!("language_model.model.layers.{bid}.mlp.gate_proj.weight", "blk.{bid}.ffn_gate.weight", Llm, LlmBlock, Dense, [Ff, Embd], [Embd, Ff], FfnGate),
    t!("language_model.model.layers.{bid}.mlp.up_proj.weight", "blk.{bid}.ffn_up.weight", Llm, LlmBlock, Dense, [Ff, Embd], [Embd, Ff], FfnUp),
    t!("language_model.model.layers.{bid}.mlp.down_proj.weight", "blk.{bid}.ffn_down.weight", Llm, LlmBlock, Dense, [Embd, Ff], [Ff, Embd], FfnDown),
    t!("language_model.model.layers.{bid}.mlp.gate.weight", "blk.{bid}.ffn_gate_inp.weight", Llm, LlmBlock, Moe, [Experts, Embd], [Embd, Experts], Router),
    t!("language_model.model.layers.{bid}.mlp.experts.{xid}.gate_proj.weight", "blk.{bid}.ffn_gate_exps.weight", Llm, LlmExperts, Moe, [FfExp, Embd], [Embd, FfExp, Experts], ExpGate),
    t!("language_model.model.layers.{bid}.mlp.experts.{xid}.up_proj.weight", "blk.{bid}.ffn_up_exps.weight", Llm, LlmExperts, Moe, [FfExp, Embd], [Embd, FfExp, Experts], ExpUp),
    t!("language_model.model.layers.{bid}.mlp.experts.{xid}.down_proj.weight", "blk.{bid}.ffn_down_exps.weight", Llm, LlmExperts, Moe, [Embd, FfExp], [FfExp, Embd, Experts], ExpDown),
    // ---- SAIL-ViT ----
    t!("vision_model.preprocessor.patchifier.proj.weight", "v.patch_embd.weight", Vision, Global, Always, [VEmbd, VChannels, VPatch, VPatch], [VPatch, VPatch, VChannels, VEmbd], VisionMatrix),
    t!("vision_model.preprocessor.patchifier.proj.bias", "v.patch_embd.bias", Vision, Global, Always, [VEmbd], [VEmbd], Bias),
    t!("vision_model.preprocessor.patchifier.norm.weight", "v.patch_norm.weight", Vision, Global, Always, [VEmbd], [VEmbd], Norm),
    t!("vision_model.preprocessor.pos_embed", "v.position_embd.weight", Vision, Global, Always, [One, VPositions, VEmbd], [VEmbd, VPositions], PosEmbd),
    t!("vision_model.trunk.blocks.{bid}.norm_1.weight", "v.blk.{bid}.ln1.weight", Vision, VisionBlock, Always, [VEmbd], [VEmbd], Norm),
    t!("vision_model.trunk.blocks.{bid}.attn.qkv.weight", "v.blk.{bid}.attn_qkv.weight", Vision, VisionBlock, Always, [VQkv, VEmbd], [VEmbd, VQkv], VisionMatrix),
    t!("vision_model.trunk.blocks.{bid}.attn.proj.weight", "v.blk.{bid}.attn_out.weight", Vision, VisionBlock, Always, [VEmbd, VEmbd], [VEmbd, VEmbd], VisionMatrix),
    t!("vision_model.trunk.blocks.{bid}.norm_2.weight", "v.blk.{bid}.ln2.weight", Vision, VisionBlock, Always, [VEmbd], [VEmbd], Norm),
    t!("vision_model.trunk.blocks.{bid}.mlp.fc1.weight", "v.blk.{bid}.ffn_gate.weight", Vision, VisionBlock, Always, [VFf, VEmbd], [VEmbd, VFf], VisionMatrix),
    t!("vision_model.trunk.blocks.{bid}.mlp.fc3.weight", "v.blk.{bid}.ffn_up.weight", Vision, VisionBlock, Always, [VFf, VEmbd], [VEmbd, VFf], VisionMatrix),
    t!("vision_model.trunk.blocks.{bid}.mlp.fc2.weight", "v.blk.{bid}.ffn_down.weight", Vision, VisionBlock, Always, [VEmbd, VFf], [VFf, VEmbd], VisionMatrix),
    t!("vision_model.trunk.post_trunk_norm.weight", "v.post_ln.weight", Vision, Global, Always, [VEmbd], [VEmbd], Norm),
    // ---- mlp1 projector: LayerNorm, Linear, GELU (no weights), Linear ----
    t!("mlp1.0.weight", "mm.model.mlp.0.weight", Vision, Global, Always, [ProjIn], [ProjIn], Norm),
    t!("mlp1.0.bias", "mm.model.mlp.0.bias", Vision, Global, Always, [ProjIn], [ProjIn], Bias),
    t!("mlp1.1.weight", "mm.model.mlp.1.weight", Vision, Global, Always, [ProjOut, ProjIn], [ProjIn, ProjOut], VisionMatrix),
    t!("mlp1.1.bias", "mm.model.mlp.1.bias", Vision, Global, Always, [ProjOut], [ProjOut], Bias),
    t!("mlp1.3.weight", "mm.model.mlp.3.weight", Vision, Global, Always, [ProjOut, ProjOut], [ProjOut, ProjOut], VisionMatrix),
    t!("mlp1.3.bias", "mm.model.mlp.3.bias", Vision, Global, Always, [ProjOut], [ProjOut], Bias),
];

/// The model-shape facts the table's dimensions resolve against: the language model's, the
/// vision tower's, or both. A dimension of a part that is absent resolves to 0.
#[derive(Debug, Clone, Copy)]
pub struct Dims<'a> {
    pub llm: Option<&'a LlmHparams>,
    pub vision: Option<&'a VisionHparams>,
}

impl Dims<'_> {
    /// The size of `d`, in u64 arithmetic (hyperparameters are u32, so no product overflows).
    pub fn resolve(&self, d: Dim) -> u64 {
        let llm = |f: fn(&LlmHparams) -> u64| self.llm.map(f).unwrap_or(0);
        let vis = |f: fn(&VisionHparams) -> u64| self.vision.map(f).unwrap_or(0);
        match d {
            Dim::One => 1,
            Dim::Embd => llm(|l| l.n_embd as u64),
            Dim::Vocab => llm(|l| l.n_vocab as u64),
            Dim::QDim => llm(|l| l.n_head as u64 * l.head_dim as u64),
            Dim::KvDim => llm(|l| l.n_head_kv as u64 * l.head_dim as u64),
            Dim::HeadDim => llm(|l| l.head_dim as u64),
            Dim::Ff => llm(|l| l.n_ff as u64),
            Dim::Experts => llm(|l| l.moe.map(|m| m.n_expert as u64).unwrap_or(0)),
            Dim::FfExp => llm(|l| l.moe.map(|m| m.n_ff_exp as u64).unwrap_or(0)),
            Dim::VEmbd => vis(|v| v.n_embd as u64),
            Dim::VQkv => vis(|v| 3 * v.n_embd as u64),
            Dim::VFf => vis(|v| v.n_ff as u64),
            Dim::VPatch => vis(|v| v.patch_size as u64),
            Dim::VChannels => vis(|v| v.n_channels as u64),
            Dim::VPositions => vis(|v| v.n_positions()),
            Dim::ProjIn => vis(|v| v.proj_in()),
            Dim::ProjOut => vis(|v| v.proj_dim as u64),
        }
    }

    pub fn shape(&self, dims: &[Dim]) -> Vec<u64> {
        dims.iter().map(|&d| self.resolve(d)).collect()
    }
}

/// A concrete tensor: a table row with its indices filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    pub entry_index: usize,
    pub gguf: String,
    /// HF names that make up this tensor (one, or one per expert in stacking order).
    pub hf: Vec<String>,
    pub bid: Option<usize>,
}

fn fill(pattern: &str, bid: Option<usize>, xid: Option<usize>) -> String {
    let mut s = pattern.to_string();
    if let Some(b) = bid {
        s = s.replace("{bid}", &b.to_string());
    }
    if let Some(x) = xid {
        s = s.replace("{xid}", &x.to_string());
    }
    s
}

/// Every tensor a model with these hyperparameters has, in table order (blocks in order):
/// the language model's when `llm` is given, the vision file's when `vision` is.
/// `tied`: lm_head equals embed_tokens, so there is no separate `output.weight`; the HF
/// `lm_head` is then still expected in the checkpoint (SAIL-VL2 stores it) but not written.
/// Callers check layer counts before asking (the validator bounds them), since the list has
/// one entry per layer.
pub fn instances(llm: Option<&LlmHparams>, vision: Option<&VisionHparams>, tied: bool) -> Vec<Instance> {
    let mut out = Vec::new();
    for (i, e) in TENSORS.iter().enumerate() {
        let l = match (e.file, llm, vision) {
            (FilePart::Vision, _, None) => continue,
            (FilePart::Llm, None, _) => continue,
            (_, l, _) => l,
        };
        let moe = l.is_some_and(|l| l.moe.is_some());
        match e.when {
            When::Untied if tied => continue,
            When::Dense if moe => continue,
            When::Moe if !moe => continue,
            _ => {}
        }
        match e.scope {
            Scope::Global => out.push(Instance { entry_index: i, gguf: e.gguf.into(), hf: vec![e.hf.into()], bid: None }),
            Scope::LlmBlock | Scope::LlmExperts => {
                let l = l.expect("language rows are skipped without language hparams");
                for b in 0..l.n_layer as usize {
                    let hf = if e.scope == Scope::LlmExperts {
                        let n = l.moe.map(|m| m.n_expert).unwrap_or(0) as usize;
                        (0..n).map(|x| fill(e.hf, Some(b), Some(x))).collect()
                    } else {
                        vec![fill(e.hf, Some(b), None)]
                    };
                    out.push(Instance { entry_index: i, gguf: fill(e.gguf, Some(b), None), hf, bid: Some(b) });
                }
            }
            Scope::VisionBlock => {
                for b in 0..vision.map(|v| v.n_layer).unwrap_or(0) as usize {
                    out.push(Instance {
                        entry_index: i,
                        gguf: fill(e.gguf, Some(b), None),
                        hf: vec![fill(e.hf, Some(b), None)],
                        bid: Some(b),
                    });
                }
            }
        }
    }
    out
}

impl Instance {
    pub fn entry(&self) -> &'static TensorEntry {
        &TENSORS[self.entry_index]
    }
}

/// The HF name of the output head, which may be dropped when it equals the embedding.
pub const HF_LM_HEAD: &str = "language_model.lm_head.weight";
pub const HF_EMBED_TOKENS: &str = "language_model.model.embed_tokens.weight";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hparams::tests::{tiny_llm, tiny_moe, tiny_vision};

    #[test]
    fn gguf_names_fit_ggml_name_limit_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for e in TENSORS {
            assert!(seen.insert(e.gguf), "duplicate {}", e.gguf);
            assert!(fill(e.gguf, Some(999), None).len() < crate::GGML_MAX_NAME);
        }
    }

    #[test]
    fn dense_instance_count_matches_the_2b_checkpoint_layout() {
        // 2B: 28 LLM layers × 11 + 3 globals; 24 ViT blocks × 7 + 5 globals + 6 projector.
        let mut l = tiny_llm();
        l.n_layer = 28;
        let mut v = tiny_vision();
        v.n_layer = 24;
        let untied = instances(Some(&l), Some(&v), false);
        assert_eq!(untied.len(), 28 * 11 + 3 + 24 * 7 + 5 + 6);
        // 490 tensors in the real checkpoint, all present when untied.
        assert_eq!(untied.iter().map(|i| i.hf.len()).sum::<usize>(), 490);
        assert_eq!(instances(Some(&l), Some(&v), true).len(), untied.len() - 1);
    }

    #[test]
    fn moe_experts_stack_into_one_tensor_per_layer() {
        let l = tiny_moe();
        let inst = instances(Some(&l), None, false);
        let gate: Vec<_> = inst.iter().filter(|i| i.gguf == "blk.1.ffn_gate_exps.weight").collect();
        assert_eq!(gate.len(), 1);
        assert_eq!(gate[0].hf.len(), 4);
        assert_eq!(gate[0].hf[3], "language_model.model.layers.1.mlp.experts.3.gate_proj.weight");
        assert!(inst.iter().all(|i| !i.gguf.contains("ffn_gate.weight")));
        let dims = Dims { llm: Some(&l), vision: None };
        assert_eq!(dims.shape(gate[0].entry().ne), vec![64, 32, 4]);
    }

    #[test]
    fn ggml_shape_is_the_reversed_hf_shape_except_stacking_and_pos_embd() {
        let l = tiny_llm();
        let v = tiny_vision();
        let d = Dims { llm: Some(&l), vision: Some(&v) };
        for e in TENSORS {
            let mut hf = d.shape(e.hf_shape);
            hf.reverse();
            let ne = d.shape(e.ne);
            match e.scope {
                Scope::LlmExperts => assert_eq!(&ne[..2], &hf[..]),
                _ if e.category == Category::PosEmbd => assert_eq!(ne, hf[..2].to_vec()),
                _ => assert_eq!(ne, hf, "{}", e.gguf),
            }
        }
    }
}
