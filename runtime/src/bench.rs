//! Measuring code behind `sail bench`: each figure is taken in this process, side by side with
//! its yardstick, so ratios stay meaningful on a noisy machine. Printing is the CLI's.

use crate::session::Model;
use sail_format::{GgmlType, VisionHparams};
use sail_ggml::{quantize, Backend, BackendError, Context, ContextParams, Executor, GraphError, LlamaContext, LlamaError, QuantizeError};
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

/// What [`llama_alone`] measured.
#[derive(Debug, Clone, Copy)]
pub struct Alone {
    pub prefill_tok_s: f64,
    pub decode_tok_s: f64,
    /// With RPC servers: bytes over their connections, see [`RpcTraffic`].
    pub rpc: Option<RpcTraffic>,
}

/// Bytes this process moved over its RPC connections (sent = acknowledged by the servers),
/// from the kernel's TCP counters: the whole prefill, and per decoded token.
#[derive(Debug, Clone, Copy, Default)]
pub struct RpcTraffic {
    pub prefill_sent: u64,
    pub prefill_received: u64,
    pub decode_sent_per_token: f64,
    pub decode_received_per_token: f64,
}

/// llama.cpp alone: prefill `ids`, then `n` greedy single-token decodes with a raw argmax (no
/// sampler chain, no session).
pub fn llama_alone(model: &Model, ids: &[i32], n: usize, threads: usize, kv_f32: bool) -> Result<Alone, BenchError> {
    let n_ctx = (ids.len() + n + 16) as u32;
    let mut ctx = LlamaContext::new(model.llm.clone(), &ContextParams { n_ctx, n_batch: 512, n_threads: threads, kv_f32 })?;
    let bytes0 = sail_ggml::rpc::traffic();
    let t = Instant::now();
    ctx.decode_tokens(ids, 0, true)?;
    // reading the logits waits for backends that compute asynchronously (GPU, RPC)
    let _ = ctx.logits();
    let prefill = t.elapsed().as_secs_f64();
    let bytes1 = sail_ggml::rpc::traffic();
    let t = Instant::now();
    for pos in ids.len()..ids.len() + n {
        let l = ctx.logits();
        let tok = l.iter().enumerate().fold((0, f32::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b }).0 as i32;
        ctx.decode_tokens(&[tok], pos as i32, true)?;
    }
    let _ = ctx.logits();
    let decode = t.elapsed().as_secs_f64();
    let rpc = match (bytes0, bytes1, sail_ggml::rpc::traffic()) {
        (Some(a), Some(b), Some(c)) => Some(RpcTraffic {
            prefill_sent: b.0.saturating_sub(a.0),
            prefill_received: b.1.saturating_sub(a.1),
            decode_sent_per_token: c.0.saturating_sub(b.0) as f64 / n.max(1) as f64,
            decode_received_per_token: c.1.saturating_sub(b.1) as f64 / n.max(1) as f64,
        }),
        _ => None,
    };
    Ok(Alone { prefill_tok_s: ids.len() as f64 / prefill, decode_tok_s: n as f64 / decode, rpc })
}
