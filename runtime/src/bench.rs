//! Measuring code behind `sail bench`: each figure is taken in this process, side by side with
//! its yardstick, so ratios stay meaningful on a noisy machine. Printing is the CLI's.

use crate::session::Model;
use crate::vision::encoder::{MatmulShape, VisionEncoder, VisionError};
use sail_format::{GgmlType, VisionHparams};
use sail_ggml::{
    quantize, Backend, BackendError, Context, ContextParams, Executor, GraphError, LlamaContext, LlamaError, NodeTime, QuantizeError,
};
use std::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error(transparent)]
    Quantize(#[from] QuantizeError),
    #[error(transparent)]
    Llama(#[from] LlamaError),
    #[error(transparent)]
    Vision(#[from] VisionError),
    #[error("the vision benchmark needs at least one tile of {per} values; got {got} values")]
    NoTiles { per: usize, got: usize },
}

/// Peak resident set size of this process (VmHWM), in bytes; 0 where /proc is unavailable.
pub fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok()))
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// ggml's own matmul throughput on the CPU backend for a [k×n] weight of type `ty` times [k×m]
/// f32 activations (the shape of a ViT projection), in GFLOP/s: one warm-up, then `reps` timed
/// runs averaged.
pub fn matmul_gflops(k: i64, n: i64, m: i64, threads: usize, ty: GgmlType, reps: usize) -> Result<f64, BenchError> {
    let ctx = Context::new(8, 16)?;
    let w = ctx.new_tensor(ty, &[k, n])?.set_input();
    let x = ctx.new_tensor(GgmlType::F32, &[k, m])?.set_input();
    let y = ctx.mul_mat(w, x)?.set_output();
    let g = ctx.build_graph(16, &[y]);
    let mut exec = Executor::new(vec![Backend::cpu(threads)?], 16)?;
    exec.alloc(&g)?;
    let wv: Vec<f32> = (0..k * n).map(|i| ((i % 97) as f32 - 48.0) / 97.0).collect();
    w.set_bytes(&quantize(ty, &wv, k as usize)?)?;
    x.set_f32(&(0..k * m).map(|i| ((i % 89) as f32 - 44.0) / 89.0).collect::<Vec<_>>())?;
    exec.compute(&g)?; // warm-up
    let reps = reps.max(1);
    let t = Instant::now();
    for _ in 0..reps {
        exec.compute(&g)?;
    }
    let s = t.elapsed().as_secs_f64() / reps as f64;
    Ok(2.0 * (k * n * m) as f64 / s / 1e9)
}

/// Floating-point operations of one tile through the tower and projector (matmuls and the
/// attention products; norms and activations are a rounding error).
pub fn vision_flops_per_tile(hp: &VisionHparams) -> f64 {
    let (n, c, f, l) = (hp.n_positions() as f64, hp.n_embd as f64, hp.n_ff as f64, hp.n_layer as f64);
    let p2 = (3 * hp.patch_size * hp.patch_size) as f64;
    let out_tok = hp.tokens_per_tile() as f64;
    2.0 * n * p2 * c
        + l * (2.0 * n * c * 3.0 * c + 4.0 * n * n * c + 2.0 * n * c * c + 6.0 * n * c * f)
        + 2.0 * out_tok * (hp.proj_in() as f64 * hp.proj_dim as f64 + (hp.proj_dim as f64).powi(2))
}

/// llama.cpp alone: prefill `ids`, then `n` greedy single-token decodes with a raw argmax (no
/// sampler chain, no session). Returns tok/s (prefill, decode).
pub fn llama_alone(model: &Model, ids: &[i32], n: usize, threads: usize, kv_f32: bool) -> Result<(f64, f64), BenchError> {
    let n_ctx = (ids.len() + n + 16) as u32;
    let mut ctx = LlamaContext::new(model.llm.clone(), &ContextParams { n_ctx, n_batch: 512, n_threads: threads, kv_f32 })?;
    let t = Instant::now();
    ctx.decode_tokens(ids, 0, true)?;
    let prefill = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for pos in ids.len()..ids.len() + n {
        let l = ctx.logits();
        let tok = l.iter().enumerate().fold((0, f32::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b }).0 as i32;
        ctx.decode_tokens(&[tok], pos as i32, true)?;
    }
    Ok((ids.len() as f64 / prefill, n as f64 / t.elapsed().as_secs_f64()))
}

/// Median, minimum and maximum of repeated measurements.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

impl Spread {
    /// None for no samples.
    pub fn of(samples: &[f64]) -> Option<Spread> {
        let mut v: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let k = v.len();
        let median = if !k.is_multiple_of(2) { v[k / 2] } else { (v[k / 2 - 1] + v[k / 2]) / 2.0 };
        Some(Spread { median, min: v[0], max: v[k - 1], n: k })
    }

    /// (max − min) / median.
    pub fn relative(&self) -> f64 {
        (self.max - self.min) / self.median
    }
}

/// What `sail bench` measures of the vision tower.
#[derive(Debug, Clone, Copy)]
pub struct VisionBenchParams {
    /// Timed tiles, each encoded on its own (at least 1; 3 or more for a meaningful median).
    pub tiles: usize,
    /// Yardstick passes before the tiles and again after them.
    pub yardstick_reps: usize,
    /// Also time one tile op by op.
    pub profile: bool,
    /// Also encode the timed tiles in batches of as many as this much activation memory holds
    /// (None: skip).
    pub batched_budget: Option<usize>,
}

/// The yardstick: ggml's matmul of the encoder's own weights at the tile's shapes.
#[derive(Debug, Clone)]
pub struct Yardstick {
    pub shapes: Vec<MatmulShape>,
    /// GFLOP/s of each pass, over the tile's mix of shapes (each weighted by its count per
    /// tile), before and after the tiles.
    pub before: Vec<f64>,
    pub after: Vec<f64>,
    /// Median GFLOP/s of each shape alone, in `shapes` order.
    pub per_shape: Vec<f64>,
}

impl Yardstick {
    pub fn all(&self) -> Spread {
        Spread::of(&[self.before.as_slice(), self.after.as_slice()].concat()).unwrap_or(Spread {
            median: f64::NAN,
            min: f64::NAN,
            max: f64::NAN,
            n: 0,
        })
    }
}

/// Time of one op kind in a profiled tile.
#[derive(Debug, Clone, PartialEq)]
pub struct OpKindTime {
    pub kind: String,
    pub ms: f64,
    pub steps: usize,
}

#[derive(Debug, Clone)]
pub struct VisionBench {
    pub weight_type: GgmlType,
    pub flops_per_tile: f64,
    /// Milliseconds of each timed tile.
    pub tile_ms: Vec<f64>,
    pub yardstick: Yardstick,
    /// Op kinds of one profiled tile, slowest first, and the profiled run's total.
    pub profile: Option<(Vec<OpKindTime>, f64)>,
    /// Tiles per batch and milliseconds per tile when the timed tiles run batched.
    pub batched: Option<(usize, f64)>,
}

impl VisionBench {
    pub fn tiles(&self) -> Spread {
        Spread::of(&self.tile_ms).unwrap_or(Spread { median: f64::NAN, min: f64::NAN, max: f64::NAN, n: 0 })
    }

    /// GFLOP/s of the median tile.
    pub fn achieved_gflops(&self) -> f64 {
        self.flops_per_tile / (self.tiles().median / 1e3) / 1e9
    }

    /// The median tile's throughput over the median yardstick.
    pub fn ratio(&self) -> f64 {
        self.achieved_gflops() / self.yardstick.all().median
    }
}

fn yardstick_pass(enc: &VisionEncoder) -> Result<(f64, Vec<f64>), BenchError> {
    let times = enc.time_matmuls()?;
    let flops: f64 = times.iter().map(|(s, _)| s.flops() * s.per_tile as f64).sum();
    let ns: f64 = times.iter().map(|(s, ns)| *ns as f64 * s.per_tile as f64).sum();
    let per_shape = times.iter().map(|(s, ns)| s.flops() / *ns as f64).collect();
    Ok((flops / ns, per_shape))
}

/// The op kind a profiled step counts under (`sail bench --profile`).
pub fn op_kind(step: &NodeTime) -> String {
    if step.name.starts_with("mlp1.") {
        return "projector".into();
    }
    if step.name.starts_with("patch.") {
        return "patch embedding".into();
    }
    let norm = |op: &str| matches!(op, "RMS_NORM" | "NORM" | "GROUP_NORM" | "L2_NORM");
    if norm(&step.op) || step.folded.iter().any(|f| norm(f)) {
        return "norms (RMSNorm · w, fused)".into();
    }
    match step.op.as_str() {
        "MUL_MAT" => match step.src0 {
            Some((ty, true)) => format!("matmul {ty}"),
            _ => "attention: Q·Kᵀ, P·V products".into(),
        },
        "FLASH_ATTN_EXT" => "attention: fused".into(),
        "SOFT_MAX" => "attention: softmax".into(),
        "CPY" | "CONT" | "DUP" | "RESHAPE" | "VIEW" | "PERMUTE" | "TRANSPOSE" | "(tail)" => "copies/permutes".into(),
        "ADD" | "MUL" | "SCALE" | "ADD1" | "SUB" | "DIV" => "adds/muls".into(),
        "SWIGLU" | "GEGLU" | "GELU" | "GELU_ERF" | "SILU" | "GEGLU_ERF" | "RELU" => "activations".into(),
        other => format!("other ({other})"),
    }
}

/// Sums profiled steps by [`op_kind`], slowest first; also returns the total in ms.
pub fn profile_by_kind(steps: &[NodeTime]) -> (Vec<OpKindTime>, f64) {
    let mut kinds: Vec<OpKindTime> = Vec::new();
    for st in steps {
        let kind = op_kind(st);
        let ms = st.ns as f64 / 1e6;
        match kinds.iter_mut().find(|k| k.kind == kind) {
            Some(k) => {
                k.ms += ms;
                k.steps += 1;
            }
            None => kinds.push(OpKindTime { kind, ms, steps: 1 }),
        }
    }
    kinds.sort_by(|a, b| b.ms.total_cmp(&a.ms));
    let total = kinds.iter().map(|k| k.ms).sum();
    (kinds, total)
}

/// Times `tiles` ([T, 3, S, S] pixels, T ≥ 1; tiles are reused round-robin when fewer than
/// `params.tiles`) one by one, between two sets of yardstick passes (A/B/A: a change of machine
/// load during the run shows up as a gap between the two sets), after one warm-up tile and one
/// warm-up pass.
pub fn bench_vision(enc: &VisionEncoder, pixels: &[f32], params: &VisionBenchParams) -> Result<VisionBench, BenchError> {
    let s = enc.hp.image_size as usize;
    let per = 3 * s * s;
    let have = pixels.len() / per;
    if have == 0 || !pixels.len().is_multiple_of(per) {
        return Err(BenchError::NoTiles { per, got: pixels.len() });
    }
    let tile = |i: usize| &pixels[(i % have) * per..(i % have + 1) * per];
    enc.encode(tile(0), 1, usize::MAX)?;
    yardstick_pass(enc)?;
    let reps = params.yardstick_reps.max(1);
    let mut per_shape: Vec<Vec<f64>> = Vec::new();
    let mut pass = |out: &mut Vec<f64>| -> Result<(), BenchError> {
        let (g, shapes) = yardstick_pass(enc)?;
        out.push(g);
        per_shape.resize(shapes.len(), Vec::new());
        for (acc, x) in per_shape.iter_mut().zip(shapes) {
            acc.push(x);
        }
        Ok(())
    };
    let (mut before, mut after) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        pass(&mut before)?;
    }
    let mut tile_ms = Vec::new();
    for i in 0..params.tiles.max(1) {
        let t = Instant::now();
        enc.encode(tile(i), 1, usize::MAX)?;
        tile_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let batched = match params.batched_budget {
        Some(budget) => {
            let n = params.tiles.max(1);
            let all: Vec<f32> = (0..n).flat_map(|i| tile(i).iter().copied()).collect();
            let t = Instant::now();
            enc.encode(&all, n, budget)?;
            Some((enc.batch_size(budget).min(n), t.elapsed().as_secs_f64() * 1e3 / n as f64))
        }
        None => None,
    };
    for _ in 0..reps {
        pass(&mut after)?;
    }
    let profile = if params.profile { Some(profile_by_kind(&enc.profile_tile(tile(0))?)) } else { None };
    let per_shape = per_shape.iter().map(|v| Spread::of(v).map_or(f64::NAN, |s| s.median)).collect();
    Ok(VisionBench {
        weight_type: enc.weight_type(),
        flops_per_tile: vision_flops_per_tile(&enc.hp),
        tile_ms,
        yardstick: Yardstick { shapes: enc.matmul_shapes(), before, after, per_shape },
        profile,
        batched,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_median_min_max() {
        let s = Spread::of(&[3.0, 1.0, 2.0, f64::NAN]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.n), (2.0, 1.0, 3.0, 3));
        assert_eq!(Spread::of(&[4.0, 1.0, 2.0, 10.0]).unwrap().median, 3.0);
        assert!(Spread::of(&[]).is_none());
        assert!((Spread::of(&[1.0, 2.0, 3.0]).unwrap().relative() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn steps_are_grouped_by_kind() {
        let step = |name: &str, op: &str, folded: &[&str], src0: Option<(GgmlType, bool)>, ns: u64| NodeTime {
            name: name.into(),
            op: op.into(),
            folded: folded.iter().map(|s| s.to_string()).collect(),
            src0,
            ns,
        };
        let steps = [
            step("", "MUL_MAT", &[], Some((GgmlType::F16, true)), 5_000_000),
            step("", "MUL_MAT", &[], Some((GgmlType::F32, false)), 1_000_000),
            step("", "MUL", &["RMS_NORM"], Some((GgmlType::F32, false)), 500_000),
            step("mlp1.1.matmul", "MUL_MAT", &[], Some((GgmlType::F16, true)), 2_000_000),
            step("", "MUL_MAT", &["RESHAPE"], Some((GgmlType::F16, true)), 5_000_000),
            step("", "CONT", &[], None, 250_000),
        ];
        let (kinds, total) = profile_by_kind(&steps);
        let names: Vec<&str> = kinds.iter().map(|k| k.kind.as_str()).collect();
        assert_eq!(names, ["matmul f16", "projector", "attention: Q·Kᵀ, P·V products", "norms (RMSNorm · w, fused)", "copies/permutes"]);
        assert_eq!((kinds[0].steps, kinds[0].ms), (2, 10.0));
        assert!((total - 13.75).abs() < 1e-9);
    }
}
