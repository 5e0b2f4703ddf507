//! SAIL-ViT + pixel shuffle + `mlp1` as a ggml graph, from `NAME.mmproj.gguf`.
//!
//! The graph follows SAIL's `modeling_sailvit.py` / `extract_feature` step by step and names
//! each step's output (`patch_embd`, `blk.N.out`, `shuffle`, `mlp1.out`, …) so parity tools can
//! dump it. Deliberate choices, each measured against the reference (spec §7):
//! - the patch embedding is im2col in f32 + matmul (`ggml_conv_2d` rounds pixels to f16);
//! - RMSNorm, then the position embedding (SAIL's order, not mtmd's);
//! - attention through ggml's fused attention on the CPU, with f32 K/V read straight out of the
//!   QKV projection (no copies, no score matrix; exact to ~1e-7, where f16 K/V cost ~1e-3), and
//!   as matmul + softmax in f32 on other devices, whose fused kernels are not measured here;
//! - exact erf GELU in the projector.

use sail_format::gguf::{GgufError, GgufFile};
use sail_format::names::instances;
use sail_format::{validate, FilePart, GgmlType, HparamsError, PsVersion, ValidationError, VisionHparams};
use sail_ggml::{Backend, BackendError, Context, Executor, GraphError, NodeTime, Tensor, Weights};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(Debug, thiserror::Error)]
pub enum VisionError {
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error(transparent)]
    Hparams(#[from] HparamsError),
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("{file}: this vision file projects to {proj_dim} dimensions but the language model's hidden size is {llm_embd}: it belongs to another model")]
    WrongModel { file: PathBuf, proj_dim: u32, llm_embd: u32 },
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error("pixel buffer of {got} values, expected {tiles} tiles × 3 × {size} × {size}")]
    Pixels { got: usize, tiles: usize, size: u32 },
    #[error("{tiles} tiles of {size}×{size} would need more memory than can be reserved")]
    TooLarge { tiles: usize, size: u32 },
}

/// A named intermediate of the graph: (name, ggml dims, values), for parity tools.
pub type Dump = (String, Vec<i64>, Vec<f32>);

/// Where and how the encoder runs.
#[derive(Debug, Clone)]
pub struct EncoderParams {
    pub n_threads: usize,
    /// Activation memory per batch of tiles; tiles are encoded in batches that fit.
    pub memory_budget: usize,
    /// ggml device name (`CPU`, `Vulkan0`, `CUDA0`, …); None = CPU.
    pub device: Option<String>,
}

impl Default for EncoderParams {
    fn default() -> Self {
        EncoderParams {
            n_threads: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(4),
            memory_budget: 1 << 30,
            device: None,
        }
    }
}

/// How the graph computes attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attention {
    /// ggml's fused attention (`ggml_flash_attn_ext`) over f32 views of the QKV projection.
    Fused,
    /// Q·Kᵀ, softmax and ·V as separate ops with the score matrix in memory.
    Products,
}

/// One matrix shape of the tower as ggml multiplies it: the weight `name` ([k, n]) times [k, m]
/// activations, `per_tile` times per tile.
#[derive(Debug, Clone, PartialEq)]
pub struct MatmulShape {
    pub name: &'static str,
    pub weight_type: GgmlType,
    pub k: i64,
    pub n: i64,
    pub m: i64,
    pub per_tile: u32,
}

impl MatmulShape {
    pub fn flops(&self) -> f64 {
        2.0 * (self.k * self.n * self.m) as f64
    }
}

#[derive(Debug)]
struct Runner {
    exec: Executor,
    attention: Attention,
}

/// A loaded vision tower.
#[derive(Debug)]
pub struct VisionEncoder {
    pub hp: VisionHparams,
    weights: Weights,
    // After the weights: their buffer is freed before its backend. A backend computes one graph
    // at a time, so sessions on other threads take turns through the lock (which also makes a
    // shared `Model` `Sync`); the scheduler inside keeps its compute buffers between images.
    runner: Mutex<Runner>,
}

impl VisionEncoder {
    /// Loads `NAME.mmproj.gguf` (a regular file, opened without blocking), validated against
    /// the graph before ggml sees any of it. `llm_embd`, when given, is the language model's
    /// hidden size, which the projector must produce.
    pub fn load(path: &Path, llm_embd: Option<u32>, params: &EncoderParams) -> Result<VisionEncoder, VisionError> {
        let file = Arc::new(GgufFile::open(path)?);
        let hp = validate::vision(&file)?;
        if let Some(e) = llm_embd.filter(|&e| e != hp.proj_dim) {
            return Err(VisionError::WrongModel { file: path.to_path_buf(), proj_dim: hp.proj_dim, llm_embd: e });
        }
        let infos: Vec<_> = instances(None, Some(&hp), true)
            .iter()
            .filter(|i| i.entry().file == FilePart::Vision)
            .filter_map(|i| file.tensor(&i.gguf))
            .collect();
        let mut backends = Vec::new();
        if let Some(d) = params.device.as_deref().filter(|d| !d.eq_ignore_ascii_case("cpu")) {
            backends.push(Backend::by_name(d)?);
        }
        backends.push(Backend::cpu(params.n_threads)?);
        let weights = Weights::load(file.clone(), &infos, &backends[0])?;
        let attention = if backends[0].is_cpu() { Attention::Fused } else { Attention::Products };
        let exec = Executor::new(backends, Self::graph_size(&hp))?;
        Ok(VisionEncoder { hp, weights, runner: Mutex::new(Runner { exec, attention }) })
    }

    fn runner(&self) -> std::sync::MutexGuard<'_, Runner> {
        self.runner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn attention(&self) -> Attention {
        self.runner().attention
    }

    /// Chooses the attention kernels for later graphs (for comparisons; the default is
    /// [`Attention::Fused`] on the CPU and [`Attention::Products`] elsewhere).
    pub fn set_attention(&self, a: Attention) {
        self.runner().attention = a;
    }

    fn graph_size(hp: &VisionHparams) -> usize {
        64 + 32 * hp.n_layer as usize
    }

    /// The type of the tower's matrices (`v.blk.0.attn_qkv.weight`).
    pub fn weight_type(&self) -> GgmlType {
        self.weights.get("v.blk.0.attn_qkv.weight").and_then(|t| t.ty()).unwrap_or(GgmlType::F16)
    }

    /// The file the weights came from.
    pub fn file(&self) -> &GgufFile {
        self.weights.file()
    }

    pub fn set_threads(&mut self, n: usize) -> Result<(), VisionError> {
        Ok(self.runner.get_mut().unwrap_or_else(|e| e.into_inner()).exec.set_threads(n)?)
    }

    pub fn weights_are_mapped(&self) -> bool {
        self.weights.is_mapped()
    }

    /// Bytes of compute buffers the encoder holds between images (all backends).
    pub fn compute_buffer_bytes(&self) -> usize {
        self.runner.lock().unwrap_or_else(|e| e.into_inner()).exec.buffer_sizes().iter().map(|(_, n)| n).sum()
    }

    fn w(&self, name: &str) -> Tensor<'_> {
        self.weights.get(name).unwrap_or_else(|| panic!("weight {name} checked at load"))
    }

    /// Activation bytes one tile needs at peak (with separate products, the attention scores
    /// dominate); saturates.
    pub fn bytes_per_tile(&self) -> usize {
        let n = self.hp.n_positions();
        let (c, f, h) = (self.hp.n_embd as u64, self.hp.n_ff as u64, self.hp.n_head as u64);
        let scores = match self.attention() {
            Attention::Products => n.saturating_mul(n).saturating_mul(h).saturating_mul(8),
            Attention::Fused => 0,
        };
        let acts = n.saturating_mul(c.saturating_mul(9).saturating_add(f.saturating_mul(3))).saturating_mul(4);
        usize::try_from(scores.saturating_add(acts)).unwrap_or(usize::MAX)
    }

    /// Tiles per graph under the memory budget (at least one).
    pub fn batch_size(&self, budget: usize) -> usize {
        (budget / self.bytes_per_tile().max(1)).max(1)
    }

    /// Encodes `n_tiles` normalised tiles (`pixels` = [T, 3, S, S], planar) into
    /// [T · tokens_per_tile, proj_dim] rows, in tile order.
    pub fn encode(&self, pixels: &[f32], n_tiles: usize, memory_budget: usize) -> Result<Vec<f32>, VisionError> {
        let s = self.hp.image_size;
        let per = 3 * (s as usize) * (s as usize);
        if Some(pixels.len()) != n_tiles.checked_mul(per) || n_tiles == 0 {
            return Err(VisionError::Pixels { got: pixels.len(), tiles: n_tiles, size: s });
        }
        let batch = self.batch_size(memory_budget).min(n_tiles);
        let rows = (self.hp.tokens_per_tile() as usize).checked_mul(self.hp.proj_dim as usize).and_then(|r| r.checked_mul(n_tiles));
        let mut out = Vec::new();
        rows.and_then(|r| out.try_reserve_exact(r).ok()).ok_or(VisionError::TooLarge { tiles: n_tiles, size: s })?;
        for start in (0..n_tiles).step_by(batch) {
            let n = batch.min(n_tiles - start);
            out.extend(self.run(&pixels[start * per..(start + n) * per], n, None)?.0);
        }
        Ok(out)
    }

    /// Encodes one batch and also returns the named intermediates in `dump` (for parity tools).
    pub fn encode_with_dumps(&self, pixels: &[f32], n_tiles: usize, dump: &[&str]) -> Result<(Vec<f32>, Vec<Dump>), VisionError> {
        let s = self.hp.image_size as usize;
        if Some(pixels.len()) != n_tiles.checked_mul(3 * s * s) || n_tiles == 0 {
            return Err(VisionError::Pixels { got: pixels.len(), tiles: n_tiles, size: self.hp.image_size });
        }
        self.run(pixels, n_tiles, Some(dump))
    }

    /// Encodes one tile step by step, timing each step (see [`NodeTime`]): where a tile's time
    /// goes. Steps of the projector are named `mlp1.*`, those of the patch embedding `patch.*`.
    pub fn profile_tile(&self, pixels: &[f32]) -> Result<Vec<NodeTime>, VisionError> {
        let s = self.hp.image_size as usize;
        if pixels.len() != 3 * s * s {
            return Err(VisionError::Pixels { got: pixels.len(), tiles: 1, size: self.hp.image_size });
        }
        let mut runner = self.runner();
        let graph_size = Self::graph_size(&self.hp);
        let ctx = Context::new(graph_size * 2, graph_size)?;
        let (input, out) = self.build(&ctx, 1, runner.attention)?;
        let graph = ctx.build_graph(graph_size, &[out]);
        runner.exec.alloc(&graph)?;
        input.set_f32(pixels)?;
        Ok(runner.exec.compute_profiled(&graph)?)
    }

    /// The distinct matrix shapes of one tile (block 0's weights stand for every block's).
    pub fn matmul_shapes(&self) -> Vec<MatmulShape> {
        let hp = &self.hp;
        let blocks = self.run_blocks() as u32;
        let (n, toks) = (hp.n_positions() as i64, hp.tokens_per_tile() as i64);
        let shape = |name: &'static str, m: i64, per_tile: u32| {
            let w = self.w(name);
            let [k, out, _, _] = w.ne();
            MatmulShape { name, weight_type: w.ty().unwrap_or(GgmlType::F32), k, n: out, m, per_tile }
        };
        vec![
            shape("v.blk.0.attn_qkv.weight", n, blocks),
            shape("v.blk.0.attn_out.weight", n, blocks),
            shape("v.blk.0.ffn_gate.weight", n, blocks),
            shape("v.blk.0.ffn_up.weight", n, blocks),
            shape("v.blk.0.ffn_down.weight", n, blocks),
            shape("mm.model.mlp.1.weight", toks, 1),
            shape("mm.model.mlp.3.weight", toks, 1),
        ]
    }

    /// ggml's own matmul on this encoder's weights, backends and threads: each of
    /// [`Self::matmul_shapes`] once, times `n` (in that order). The yardstick a tile's
    /// throughput is measured against.
    pub fn time_matmuls(&self) -> Result<Vec<(MatmulShape, u64)>, VisionError> {
        let shapes = self.matmul_shapes();
        let mut runner = self.runner();
        let ctx = Context::new(4 * shapes.len() + 8, 64)?;
        let mut ins = Vec::new();
        let mut outs = Vec::new();
        for (i, sh) in shapes.iter().enumerate() {
            let x = ctx.new_tensor(GgmlType::F32, &[sh.k, sh.m])?.set_input();
            outs.push(ctx.mul_mat(self.w(sh.name), x)?.set_name(&format!("yardstick.{i}")).set_output());
            ins.push(x);
        }
        let graph = ctx.build_graph(64, &outs);
        runner.exec.alloc(&graph)?;
        for (x, sh) in ins.iter().zip(&shapes) {
            x.set_f32(&(0..sh.k * sh.m).map(|i| ((i * 7919 % 2001) as f32 - 1000.0) / 1000.0).collect::<Vec<_>>())?;
        }
        let steps = runner.exec.compute_profiled(&graph)?;
        let mut times = Vec::new();
        for (i, sh) in shapes.into_iter().enumerate() {
            let name = format!("yardstick.{i}");
            let ns = steps.iter().filter(|st| st.name == name).map(|st| st.ns).sum();
            times.push((sh, ns));
        }
        Ok(times)
    }

    fn run_blocks(&self) -> i64 {
        let hp = &self.hp;
        let last_block = if hp.select_layer < 0 { hp.n_layer as i64 + hp.select_layer as i64 } else { hp.select_layer as i64 };
        if hp.select_layer == -1 {
            hp.n_layer as i64
        } else {
            last_block + 1
        }
    }

    fn run(&self, pixels: &[f32], t: usize, dump: Option<&[&str]>) -> Result<(Vec<f32>, Vec<Dump>), VisionError> {
        // Held for the whole run: graphs read the shared weight tensors and compute on the
        // shared backends.
        let mut runner = self.runner();
        let graph_size = Self::graph_size(&self.hp);
        let ctx = Context::new(graph_size * 2, graph_size)?;
        let (input, out) = self.build(&ctx, t, runner.attention)?;
        let mut outputs = vec![out];
        if let Some(names) = dump {
            for n in names {
                if let Some(x) = ctx.get(n) {
                    outputs.push(x.set_output());
                }
            }
        }
        let graph = ctx.build_graph(graph_size, &outputs);
        runner.exec.alloc(&graph)?;
        input.set_f32(pixels)?;
        runner.exec.compute(&graph)?;
        let result = out.get_f32()?;
        let mut dumps = Vec::new();
        for x in &outputs[1..] {
            dumps.push((x.name(), x.ne().to_vec(), x.get_f32()?));
        }
        Ok((result, dumps))
    }

    /// The graph for `t` tiles; returns (pixel input, projector output).
    fn build<'a>(&'a self, ctx: &'a Context, t: usize, attention: Attention) -> Result<(Tensor<'a>, Tensor<'a>), VisionError> {
        let hp = &self.hp;
        let (s, p, c) = (hp.image_size as i64, hp.patch_size as i64, hp.n_embd as i64);
        let g = s / p; // patches per side
        let n = g * g; // tokens per tile
        let t = t as i64;
        let heads = hp.n_head as i64;
        let hd = c / heads;
        let eps = hp.rms_eps;

        // 0. pixels [S(x), S(y), 3, T]
        let input = ctx.new_tensor(GgmlType::F32, &[s, s, 3, t])?.set_name("pixels").set_input();

        // 1. patch embedding: im2col (f32) · proj.weight + proj.bias → [C, N, T]
        let kernel = self.w("v.patch_embd.weight"); // [P, P, 3, C]
        let cols = ctx.im2col_patches(kernel, input)?.set_name("patch.im2col"); // [3·P·P, G, G, T]
        let cols = ctx.reshape(cols, &[3 * p * p, n * t])?;
        let k2 = ctx.reshape(kernel, &[3 * p * p, c])?;
        let x = ctx.mul_mat(k2, cols)?.set_name("patch.matmul"); // [C, N·T]
        let x = ctx.add(x, self.w("v.patch_embd.bias"))?.set_name("patch.bias");
        let x = ctx.reshape(x, &[c, n, t])?.set_name("patch_embd");

        // 2. patchifier.norm (RMSNorm), then 3. + pos_embed (first N rows, no interpolation)
        let x = ctx.mul(ctx.rms_norm(x, eps)?, self.w("v.patch_norm.weight"))?;
        let x = x.set_name("patch_norm");
        let mut x = ctx.add(x, self.w("v.position_embd.weight"))?.set_name("embeddings");

        // 4. blocks; select_layer picks the raw output of block k, or (−1) the post-normed last
        for i in 0..self.run_blocks() {
            let b = |n: &str| format!("v.blk.{i}.{n}");
            // 4a. attention: x += proj(MHA(norm_1(x)))
            let h = ctx.mul(ctx.rms_norm(x, eps)?, self.w(&b("ln1.weight")))?;
            let qkv = ctx.mul_mat(self.w(&b("attn_qkv.weight")), h)?; // [3C, N, T]
            let attn = match attention {
                Attention::Fused => {
                    // Q, K, V as [hd, N, heads, T] views of the projection: no copies
                    let nb = qkv.nb();
                    let head = |k: i64| ctx.view_4d(qkv, [hd, n, heads, t], [nb[1], hd as usize * 4, nb[2]], (k * c) as usize * 4);
                    ctx.flash_attn(head(0)?, head(1)?, head(2)?, 1.0 / (hd as f32).sqrt())?
                    // [hd, heads, N, T]
                }
                Attention::Products => {
                    let row = qkv.nb()[1];
                    let split = |k: i64| -> Result<Tensor<'a>, GraphError> {
                        // columns [k·C, (k+1)·C) of qkv, as [hd, heads, N, T] then [hd, N, heads, T]
                        let v = ctx.view_3d(qkv, [c, n, t], row, qkv.nb()[2], (k * c) as usize * 4)?;
                        let v = ctx.cont(v)?;
                        let v = ctx.reshape(v, &[hd, heads, n, t])?;
                        ctx.permute(v, [0, 2, 1, 3])
                    };
                    let (q, k, v) = (split(0)?, split(1)?, split(2)?);
                    let scores = ctx.mul_mat(k, q)?; // [N_k, N_q, heads, T]
                    let probs = ctx.soft_max_scaled(scores, 1.0 / (hd as f32).sqrt())?;
                    let vt = ctx.cont(ctx.permute(v, [1, 0, 2, 3])?)?; // [N, hd, heads, T]
                    let attn = ctx.mul_mat(vt, probs)?; // [hd, N_q, heads, T]
                    ctx.cont(ctx.permute(attn, [0, 2, 1, 3])?)? // [hd, heads, N, T]
                }
            };
            let attn = ctx.reshape(attn, &[c, n, t])?;
            let attn = ctx.mul_mat(self.w(&b("attn_out.weight")), attn)?;
            x = ctx.add(x, attn)?.set_name(&format!("blk.{i}.attn_out"));
            // 4b. MLP: x += fc2(silu(fc1(h)) · fc3(h)), h = norm_2(x)
            let h = ctx.mul(ctx.rms_norm(x, eps)?, self.w(&b("ln2.weight")))?;
            let gate = ctx.mul_mat(self.w(&b("ffn_gate.weight")), h)?;
            let up = ctx.mul_mat(self.w(&b("ffn_up.weight")), h)?;
            let down = ctx.mul_mat(self.w(&b("ffn_down.weight")), ctx.swiglu_split(gate, up)?)?;
            x = ctx.add(x, down)?.set_name(&format!("blk.{i}.out"));
        }
        // 5. post_trunk_norm only for select_layer −1
        if hp.select_layer == -1 {
            x = ctx.mul(ctx.rms_norm(x, eps)?, self.w("v.post_ln.weight"))?.set_name("post_norm");
        }

        // 6. pixel shuffle (scale r): [C, G(x), G(y), T] → [C·r², G/r, G/r, T]
        let r = hp.scale() as i64;
        let mut f = ctx.reshape(x, &[c, g, g, t])?;
        if hp.ps_version == PsVersion::V1 {
            // v1 skips the final transpose: the same shuffle on the transposed grid
            f = ctx.cont(ctx.permute(f, [0, 2, 1, 3])?)?;
        }
        let f = ctx.reshape(f, &[c * r, g / r, r, (g / r) * t])?; // [(x%r)·C + c, x2, y%r, y2·T]
        let f = ctx.cont(ctx.permute(f, [0, 2, 1, 3])?)?; // [(x%r)·C + c, y%r, x2, y2·T]
        let f = ctx.reshape(f, &[c * r * r, (g / r) * (g / r) * t])?; // channel (y%r)·rC + (x%r)·C + c
        let f = f.set_name("shuffle");

        // 7. mlp1: LayerNorm → Linear → GELU(erf) → Linear
        let y = ctx.norm(f, hp.proj_ln_eps)?.set_name("mlp1.norm");
        let y = ctx.mul(y, self.w("mm.model.mlp.0.weight"))?.set_name("mlp1.0.mul");
        let y = ctx.add(y, self.w("mm.model.mlp.0.bias"))?.set_name("mlp1.0.add");
        let y = ctx.mul_mat(self.w("mm.model.mlp.1.weight"), y)?.set_name("mlp1.1.matmul");
        let y = ctx.add(y, self.w("mm.model.mlp.1.bias"))?.set_name("mlp1.1.add");
        let y = ctx.gelu_erf(y)?.set_name("mlp1.gelu");
        let y = ctx.mul_mat(self.w("mm.model.mlp.3.weight"), y)?.set_name("mlp1.3.matmul");
        let y = ctx.add(y, self.w("mm.model.mlp.3.bias"))?;
        let y = y.set_name("mlp1.out").set_output();
        Ok((input, y))
    }
}
