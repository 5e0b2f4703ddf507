//! Which ggml type each tensor gets, by its category in the name table.
//!
//! The presets mirror llama.cpp's choices where llama.cpp has measured them: the `_K` presets
//! are "M" mixes (embedding, output head and a subset of `attn_v` / `ffn_down` layers get
//! Q6_K), norms, biases, position embeddings and the MoE router stay f32, and the vision tower
//! follows its own type (f16 by default) because a few hundred MB of ViT weights buy most of
//! the image quality. When a tensor's rows do not split into a type's blocks, the policy falls
//! back to the nearest type that fits and says so, instead of failing the conversion.

use crate::names::{Category, TensorEntry};
use crate::GgmlType;

/// The language-model type presets of `sail-convert` (`--f32`, `--q4_k`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    F32,
    F16,
    BF16,
    Q8_0,
    Q6K,
    Q5K,
    Q4K,
    Q4_0,
}

impl Preset {
    pub const ALL: [Preset; 8] =
        [Preset::F32, Preset::F16, Preset::BF16, Preset::Q8_0, Preset::Q6K, Preset::Q5K, Preset::Q4K, Preset::Q4_0];

    /// The command-line flag name without dashes (`q4_k`).
    pub fn flag(self) -> &'static str {
        match self {
            Preset::F32 => "f32",
            Preset::F16 => "f16",
            Preset::BF16 => "bf16",
            Preset::Q8_0 => "q8_0",
            Preset::Q6K => "q6_k",
            Preset::Q5K => "q5_k",
            Preset::Q4K => "q4_k",
            Preset::Q4_0 => "q4_0",
        }
    }

    /// The type most matrices get.
    pub fn base_type(self) -> GgmlType {
        match self {
            Preset::F32 => GgmlType::F32,
            Preset::F16 => GgmlType::F16,
            Preset::BF16 => GgmlType::BF16,
            Preset::Q8_0 => GgmlType::Q8_0,
            Preset::Q6K => GgmlType::Q6_K,
            Preset::Q5K => GgmlType::Q5_K,
            Preset::Q4K => GgmlType::Q4_K,
            Preset::Q4_0 => GgmlType::Q4_0,
        }
    }

    /// llama.cpp's `general.file_type` (`enum llama_ftype`) for this preset.
    pub fn llama_ftype(self) -> u32 {
        match self {
            Preset::F32 => 0,
            Preset::F16 => 1,
            Preset::Q4_0 => 2,
            Preset::Q8_0 => 7,
            Preset::Q4K => 15, // Q4_K_M
            Preset::Q5K => 17, // Q5_K_M
            Preset::Q6K => 18,
            Preset::BF16 => 32,
        }
    }

    /// Below 8 bits, the embedding and output head get Q6_K (llama.cpp's rule for both).
    fn boosts_embeddings(self) -> bool {
        matches!(self, Preset::Q4K | Preset::Q5K | Preset::Q4_0)
    }
}

/// `--vision-type`: the type of the tower's and projector's matrices. The K-quants need rows
/// that split into 256-value blocks, which SAIL-ViT's (1536, 4096, 6144 and 2048 wide) do; the
/// patch embedding's rows of 14 fall back to f16 and norms and the position embedding stay f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VisionType {
    F32,
    F16,
    Q8_0,
    Q6K,
    Q5K,
    Q4K,
}

impl VisionType {
    pub const ALL: [VisionType; 6] =
        [VisionType::F32, VisionType::F16, VisionType::Q8_0, VisionType::Q6K, VisionType::Q5K, VisionType::Q4K];

    pub fn ggml(self) -> GgmlType {
        match self {
            VisionType::F32 => GgmlType::F32,
            VisionType::F16 => GgmlType::F16,
            VisionType::Q8_0 => GgmlType::Q8_0,
            VisionType::Q6K => GgmlType::Q6_K,
            VisionType::Q5K => GgmlType::Q5_K,
            VisionType::Q4K => GgmlType::Q4_K,
        }
    }

    /// The `--vision-type` value (`q6_k`).
    pub fn flag(self) -> &'static str {
        self.ggml().name()
    }
}

/// The type chosen for one tensor, and why it differs from what the preset wanted.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    pub ty: GgmlType,
    /// Set when the rows did not fit the wanted type's blocks.
    pub fallback_from: Option<GgmlType>,
}

#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub preset: Preset,
    pub vision: VisionType,
}

/// llama.cpp's `use_more_bits`: the first and last eighth of the layers, and every third one
/// in between, get the higher type for `attn_v` and `ffn_down`.
pub fn use_more_bits(layer: usize, n_layer: usize) -> bool {
    layer < n_layer / 8 || layer >= 7 * n_layer / 8 || (layer - n_layer / 8) % 3 == 2
}

/// The next type whose blocks fit rows of `n0` values (llama.cpp's fallback chain for K-quants).
pub fn fallback(ty: GgmlType, n0: usize) -> GgmlType {
    let mut t = ty;
    loop {
        if n0.is_multiple_of(t.block_size()) {
            return t;
        }
        t = match t {
            GgmlType::Q4_K => GgmlType::Q5_0,
            GgmlType::Q5_K => GgmlType::Q5_1,
            GgmlType::Q6_K => GgmlType::Q8_0,
            _ => GgmlType::F16,
        };
    }
}

impl Policy {
    pub fn new(preset: Preset, vision: VisionType) -> Policy {
        Policy { preset, vision }
    }

    /// What the preset asks for, before the block-size check.
    pub fn wanted(&self, entry: &TensorEntry, ne: &[u64], layer: Option<usize>, n_layer: usize) -> GgmlType {
        let cat = entry.category;
        if cat.always_f32() || ne.len() == 1 {
            return GgmlType::F32;
        }
        if cat == Category::VisionMatrix {
            return self.vision.ggml();
        }
        let base = self.preset.base_type();
        let more = layer.is_some_and(|l| use_more_bits(l, n_layer));
        match cat {
            Category::TokenEmbd | Category::Output if self.preset.boosts_embeddings() => GgmlType::Q6_K,
            Category::AttnV | Category::FfnDown | Category::ExpDown if more && matches!(self.preset, Preset::Q4K | Preset::Q5K) => {
                GgmlType::Q6_K
            }
            _ => base,
        }
    }

    /// The type a tensor gets: the wanted type, or the fallback that fits its rows.
    pub fn choose(&self, entry: &TensorEntry, ne: &[u64], layer: Option<usize>, n_layer: usize) -> Choice {
        let wanted = self.wanted(entry, ne, layer, n_layer);
        let ty = fallback(wanted, ne[0] as usize);
        Choice { ty, fallback_from: (ty != wanted).then_some(wanted) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TENSORS;

    fn entry(gguf: &str) -> &'static TensorEntry {
        TENSORS.iter().find(|e| e.gguf == gguf).unwrap()
    }

    #[test]
    fn q4_k_is_an_m_mix() {
        let p = Policy::new(Preset::Q4K, VisionType::F16);
        let ne = [2048u64, 2048];
        assert_eq!(p.choose(entry("blk.{bid}.attn_q.weight"), &ne, Some(5), 28).ty, GgmlType::Q4_K);
        assert_eq!(p.choose(entry("blk.{bid}.attn_v.weight"), &ne, Some(0), 28).ty, GgmlType::Q6_K);
        assert_eq!(p.choose(entry("blk.{bid}.attn_v.weight"), &ne, Some(4), 28).ty, GgmlType::Q4_K);
        assert_eq!(p.choose(entry("blk.{bid}.attn_v.weight"), &ne, Some(5), 28).ty, GgmlType::Q6_K);
        assert_eq!(p.choose(entry("blk.{bid}.ffn_down.weight"), &[6144, 2048], Some(27), 28).ty, GgmlType::Q6_K);
        assert_eq!(p.choose(entry("token_embd.weight"), &ne, None, 28).ty, GgmlType::Q6_K);
        assert_eq!(p.choose(entry("output.weight"), &ne, None, 28).ty, GgmlType::Q6_K);
        assert_eq!(p.choose(entry("blk.{bid}.attn_norm.weight"), &[2048], Some(0), 28).ty, GgmlType::F32);
        assert_eq!(p.choose(entry("blk.{bid}.ffn_gate_inp.weight"), &[2048, 128], Some(0), 28).ty, GgmlType::F32);
        assert_eq!(p.choose(entry("v.blk.{bid}.attn_qkv.weight"), &[1536, 4608], Some(0), 24).ty, GgmlType::F16);
        assert_eq!(p.choose(entry("v.position_embd.weight"), &[1536, 1024], None, 24).ty, GgmlType::F32);
        // llama.cpp's rule for 28 layers: 0-2, 24-27 and every third from 5: 14 of 28
        let more: Vec<usize> = (0..28).filter(|&l| use_more_bits(l, 28)).collect();
        assert_eq!(more, vec![0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 24, 25, 26, 27]);
    }

    #[test]
    fn rows_that_do_not_fit_fall_back_and_say_so() {
        let p = Policy::new(Preset::Q4K, VisionType::Q8_0);
        let c = p.choose(entry("blk.{bid}.attn_q.weight"), &[64, 64], Some(1), 2);
        assert_eq!(c, Choice { ty: GgmlType::Q5_0, fallback_from: Some(GgmlType::Q4_K) });
        let c = p.choose(entry("blk.{bid}.ffn_down.weight"), &[48, 64], Some(1), 2);
        assert_eq!(c, Choice { ty: GgmlType::F16, fallback_from: Some(GgmlType::Q6_K) });
        // 14-wide conv rows cannot be q8_0
        let c = p.choose(entry("v.patch_embd.weight"), &[14, 14, 3, 1536], None, 24);
        assert_eq!(c.ty, GgmlType::F16);
        assert_eq!(fallback(GgmlType::Q6_K, 2048), GgmlType::Q6_K);
    }

    #[test]
    fn vision_k_quants_cover_the_tower_and_leave_the_patch_embedding_f16() {
        for (vt, ty) in [(VisionType::Q6K, GgmlType::Q6_K), (VisionType::Q5K, GgmlType::Q5_K), (VisionType::Q4K, GgmlType::Q4_K)] {
            let p = Policy::new(Preset::Q4K, vt);
            assert_eq!(vt.flag(), ty.name());
            for (name, ne) in [
                ("v.blk.{bid}.attn_qkv.weight", [1536u64, 4608]),
                ("v.blk.{bid}.attn_out.weight", [1536, 1536]),
                ("v.blk.{bid}.ffn_gate.weight", [1536, 4096]),
                ("v.blk.{bid}.ffn_down.weight", [4096, 1536]),
                ("mm.model.mlp.1.weight", [6144, 2048]),
                ("mm.model.mlp.3.weight", [2048, 2048]),
            ] {
                assert_eq!(p.choose(entry(name), &ne, Some(0), 24), Choice { ty, fallback_from: None }, "{name}");
            }
            let patch = p.choose(entry("v.patch_embd.weight"), &[14, 14, 3, 1536], None, 24);
            assert_eq!(patch, Choice { ty: GgmlType::F16, fallback_from: Some(ty) });
            assert_eq!(p.choose(entry("v.position_embd.weight"), &[1536, 1024], None, 24).ty, GgmlType::F32);
            assert_eq!(p.choose(entry("v.blk.{bid}.ln1.weight"), &[1536], Some(0), 24).ty, GgmlType::F32);
            // a 64-wide test tower cannot hold 256-blocks: the fallback chain decides
            let small = p.choose(entry("v.blk.{bid}.attn_qkv.weight"), &[64, 192], Some(0), 2).ty;
            assert_eq!(small, fallback(ty, 64));
        }
    }

    #[test]
    fn float_presets_are_uniform() {
        for (pre, ty) in [(Preset::F32, GgmlType::F32), (Preset::BF16, GgmlType::BF16), (Preset::Q8_0, GgmlType::Q8_0)] {
            let p = Policy::new(pre, VisionType::F32);
            for l in 0..8 {
                assert_eq!(p.choose(entry("blk.{bid}.attn_v.weight"), &[256, 256], Some(l), 8).ty, ty);
            }
            assert_eq!(p.choose(entry("token_embd.weight"), &[256, 1000], None, 8).ty, ty);
        }
    }
}
