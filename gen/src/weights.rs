//! Tensor values of `gen_ckpt.py`, element for element.
//!
//! Each tensor has its own PCG64 stream (seeded from sha256 of `"{seed}:{name}"`), and each
//! element is a pure function of one raw 64-bit word, computed with integer ops and single
//! correctly rounded f64 operations in the same order as NumPy evaluates them, then one
//! f64 -> f32 rounding. That makes the values independent of libm, SIMD and thread count, and
//! lets a tensor be filled in independent chunks (`Pcg64::advance`) on all cores.

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::rng::Pcg64;

/// Storage dtype of the safetensors files (`--dtype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    Float32,
    Bfloat16,
    Float16,
}

impl Dtype {
    /// The `--dtype` / `torch_dtype` spelling.
    pub fn name(self) -> &'static str {
        match self {
            Dtype::Float32 => "float32",
            Dtype::Bfloat16 => "bfloat16",
            Dtype::Float16 => "float16",
        }
    }
    /// The safetensors header spelling.
    pub fn st_name(self) -> &'static str {
        match self {
            Dtype::Float32 => "F32",
            Dtype::Bfloat16 => "BF16",
            Dtype::Float16 => "F16",
        }
    }
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::Float32 => 4,
            Dtype::Bfloat16 | Dtype::Float16 => 2,
        }
    }
}

/// How a tensor is initialised (`gen_ckpt.init_rule`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// Norm gains: `0.5 + U[0, 1)`.
    Gain,
    /// Irwin-Hall "normal" times this scale.
    Normal(f64),
}

/// `gen_ckpt.init_rule(name, shape)`.
pub fn init_rule(name: &str, shape: &[usize]) -> Init {
    if name.ends_with("norm.weight")
        || name.contains(".norm_1.")
        || name.contains(".norm_2.")
        || name.ends_with("layernorm.weight")
        || name == "mlp1.0.weight"
    {
        return Init::Gain;
    }
    if name.ends_with(".bias") {
        return Init::Normal(0.1);
    }
    if name.ends_with("pos_embed") {
        return Init::Normal(0.5);
    }
    if name.ends_with("embed_tokens.weight") {
        return Init::Normal(1.0);
    }
    let fan_in: usize = if shape.len() > 1 { shape[1..].iter().product() } else { 1 };
    Init::Normal(1.0 / (fan_in as f64).sqrt())
}

/// `gen_ckpt.tensor_seed`: the first 8 bytes (little-endian) of sha256(`"{seed}:{name}"`).
pub fn tensor_seed(seed: i64, name: &str) -> u64 {
    let d = Sha256::digest(format!("{seed}:{name}").as_bytes());
    u64::from_le_bytes(d[..8].try_into().expect("8 bytes"))
}

fn ih_inv_std() -> f64 {
    1.0 / ((65536.0f64 * 65536.0 - 1.0) / 3.0).sqrt()
}

/// Round-to-nearest-even f32 -> bf16 bits (`gen_ckpt.f32_to_bf16_bits`). Python computes in
/// 64 bits and truncates to 16; the bit that 32-bit wrapping drops is truncated anyway.
#[inline(always)]
pub fn f32_to_bf16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    (b.wrapping_add(0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

/// Elements from raw words (the `normal_like` / `uniform01` formulas), encoded into `out`.
/// Integer parts go through i32/i64 before f64 only because those conversions vectorise; the
/// values are exact either way, so the result is the same as NumPy's.
fn encode(init: Init, dtype: Dtype, raw: &[u64], out: &mut [u8]) {
    let inv_std = ih_inv_std();
    let mut vals = [0f32; BLOCK];
    for (chunk, bytes) in raw.chunks(BLOCK).zip(out.chunks_mut(BLOCK * dtype.size())) {
        let vals = &mut vals[..chunk.len()];
        match init {
            Init::Gain => {
                for (v, &r) in vals.iter_mut().zip(chunk) {
                    *v = (0.5 + ((r >> 11) as i64) as f64 * (1.0 / 9_007_199_254_740_992.0)) as f32;
                }
            }
            Init::Normal(scale) => {
                for (v, &r) in vals.iter_mut().zip(chunk) {
                    let s = (r & 0xffff) + ((r >> 16) & 0xffff) + ((r >> 32) & 0xffff) + (r >> 48);
                    // s - 131070 is exact in both integer and f64 arithmetic
                    *v = ((f64::from(s as i32 - 131_070) * inv_std) * scale) as f32;
                }
            }
        }
        match dtype {
            Dtype::Float32 => {
                for (c, v) in bytes.chunks_exact_mut(4).zip(vals.iter()) {
                    c.copy_from_slice(&v.to_le_bytes());
                }
            }
            Dtype::Bfloat16 => {
                for (c, v) in bytes.chunks_exact_mut(2).zip(vals.iter()) {
                    c.copy_from_slice(&f32_to_bf16_bits(*v).to_le_bytes());
                }
            }
            Dtype::Float16 => {
                for (c, v) in bytes.chunks_exact_mut(2).zip(vals.iter()) {
                    c.copy_from_slice(&half::f16::from_f32(*v).to_bits().to_le_bytes());
                }
            }
        }
    }
}

/// Raw words per encode step.
const BLOCK: usize = 256;
/// Independent streams stepped in lockstep: one LCG step depends on the previous one, so a
/// single stream is latency-bound; four interleaved ones keep the multiplier busy.
const LANES: usize = 4;

/// Fills `out` with elements `start ..` of `base`'s stream.
fn fill_piece(base: &Pcg64, start: u128, init: Init, dtype: Dtype, out: &mut [u8]) {
    let elem = dtype.size();
    let n = out.len() / elem;
    let lane_len = n / LANES;
    let mut raw = [[0u64; BLOCK]; LANES];
    let mut done = 0;
    let mut rng = base.clone();
    if lane_len >= BLOCK {
        let mut rngs: [Pcg64; LANES] = std::array::from_fn(|k| {
            let mut r = base.clone();
            r.advance(start + (k * lane_len) as u128);
            r
        });
        let mut j = 0;
        while j < lane_len {
            let m = BLOCK.min(lane_len - j);
            // index loops on purpose: the lanes must advance in lockstep
            #[allow(clippy::needless_range_loop)]
            for i in 0..m {
                for k in 0..LANES {
                    raw[k][i] = rngs[k].next_u64();
                }
            }
            for (k, lane) in raw.iter().enumerate() {
                let off = (k * lane_len + j) * elem;
                encode(init, dtype, &lane[..m], &mut out[off..off + m * elem]);
            }
            j += m;
        }
        done = LANES * lane_len;
        // the last lane now stands exactly at the start of the remainder
        rng = rngs[LANES - 1].clone();
    } else {
        rng.advance(start);
    }
    while done < n {
        let m = BLOCK.min(n - done);
        for r in raw[0][..m].iter_mut() {
            *r = rng.next_u64();
        }
        encode(init, dtype, &raw[0][..m], &mut out[done * elem..(done + m) * elem]);
        done += m;
    }
}

/// Elements per independently seeked piece of work.
const PIECE: usize = 1 << 18;

/// Writes elements `start .. start + out.len() / dtype.size()` of tensor `name`'s stream, encoded
/// as `dtype` (little-endian), into `out`, in parallel. `out.len()` must be a multiple of the
/// element size.
pub fn fill(name: &str, init: Init, seed: i64, dtype: Dtype, start: u64, out: &mut [u8]) {
    let elem = dtype.size();
    assert_eq!(out.len() % elem, 0, "buffer is not a whole number of elements");
    let base = Pcg64::from_seed(u128::from(tensor_seed(seed, name)));
    out.par_chunks_mut(PIECE * elem).enumerate().for_each(|(i, piece)| {
        fill_piece(&base, u128::from(start) + (i * PIECE) as u128, init, dtype, piece);
    });
}

/// `gen_ckpt.draw(name, shape, seed)` as f32 values (before the storage-dtype rounding), for
/// tests that want the expected tensor without reading a file.
pub fn draw(name: &str, shape: &[usize], seed: i64) -> Vec<f32> {
    let n: usize = shape.iter().product();
    let mut bytes = vec![0u8; n * 4];
    fill(name, init_rule(name, shape), seed, Dtype::Float32, 0, &mut bytes);
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect()
}

/// The values a stored tensor decodes to: `draw` rounded through the storage dtype.
pub fn draw_stored(name: &str, shape: &[usize], seed: i64, dtype: Dtype) -> Vec<f32> {
    let v = draw(name, shape, seed);
    match dtype {
        Dtype::Float32 => v,
        Dtype::Bfloat16 => v.into_iter().map(|x| f32::from_bits(u32::from(f32_to_bf16_bits(x)) << 16)).collect(),
        Dtype::Float16 => v.into_iter().map(|x| half::f16::from_f32(x).to_f32()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert_eq!(init_rule("language_model.model.layers.0.self_attn.q_norm.weight", &[16]), Init::Gain);
        assert_eq!(init_rule("vision_model.trunk.blocks.1.norm_2.weight", &[64]), Init::Gain);
        assert_eq!(init_rule("mlp1.0.weight", &[256]), Init::Gain);
        assert_eq!(init_rule("mlp1.0.bias", &[256]), Init::Normal(0.1));
        assert_eq!(init_rule("vision_model.preprocessor.pos_embed", &[1, 64, 64]), Init::Normal(0.5));
        assert_eq!(init_rule("language_model.model.embed_tokens.weight", &[10, 64]), Init::Normal(1.0));
        assert_eq!(init_rule("vision_model.preprocessor.patchifier.proj.weight", &[64, 3, 14, 14]), Init::Normal(1.0 / 588f64.sqrt()));
    }

    #[test]
    fn values_match_numpy() {
        // gen_ckpt.tensor_seed(104, "language_model.model.embed_tokens.weight")
        assert_eq!(tensor_seed(104, "language_model.model.embed_tokens.weight"), 11947834262877212401);
        // gen_ckpt.draw(name, shape, 104).ravel()[[0, 1, 2, 4095]].view("u4")
        let v = draw("mlp1.1.weight", &[64, 256], 104);
        let want: [u32; 4] = WANT_MLP11;
        assert_eq!([v[0].to_bits(), v[1].to_bits(), v[2].to_bits(), v[4095].to_bits()], want);
        let g = draw("mlp1.0.weight", &[256], 104);
        assert_eq!([g[0].to_bits(), g[255].to_bits()], WANT_MLP10);
        // chunked parallel fill equals one sequential pass, from any start
        let mut all = vec![0u8; 2 * 3 * PIECE + 2 * 77];
        fill("x", Init::Normal(0.3), 1, Dtype::Bfloat16, 0, &mut all);
        let mut tail = vec![0u8; all.len() - 2 * 1001];
        fill("x", Init::Normal(0.3), 1, Dtype::Bfloat16, 1001, &mut tail);
        assert_eq!(&all[2 * 1001..], &tail[..]);
    }

    const WANT_MLP11: [u32; 4] = [0xbcc0cc85, 0xbce25490, 0xbd3b2d30, 0x3da38dbb];
    const WANT_MLP10: [u32; 2] = [0x3f895697, 0x3f516bec];

    #[test]
    fn bf16_rounding() {
        assert_eq!(f32_to_bf16_bits(1.0), 0x3f80);
        assert_eq!(f32_to_bf16_bits(f32::from_bits(0x3f80_8000)), 0x3f80); // tie -> even
        assert_eq!(f32_to_bf16_bits(f32::from_bits(0x3f81_8000)), 0x3f82); // tie -> even
        assert_eq!(f32_to_bf16_bits(f32::from_bits(0x3f80_8001)), 0x3f81);
        assert_eq!(f32_to_bf16_bits(-2.0), 0xc000);
    }
}
