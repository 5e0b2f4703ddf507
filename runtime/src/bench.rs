//! Measuring code behind `sail bench`: each figure is taken in this process, side by side with
//! its yardstick, so ratios stay meaningful on a noisy machine. Printing is the CLI's.

use crate::cache::Hit;
use crate::session::{GenerateParams, Model, PrepareTimings, SailError, Session, SessionParams};
use crate::vision::decode::ImageLimits;
use crate::vision::encoder::{MatmulShape, VisionEncoder, VisionError};
use sail_format::{GgmlType, VisionHparams};
use sail_ggml::{
    quantize, Backend, BackendError, BufferReport, Context, ContextParams, Executor, GraphError, LlamaContext, LlamaError, LlamaModel,
    NodeTime, QuantizeError,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;
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

// ---- memory on small devices and the first token with an image ----

/// Resident memory of this process (Linux `/proc/self/smaps`; zeros where it is missing).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resident {
    pub rss: u64,
    /// Anonymous pages (heap, llama.cpp's buffers, repacked weights).
    pub anon: u64,
    /// Resident pages of the mappings of the files asked about (the model files: weights served
    /// from the page cache).
    pub files: u64,
}

/// Reads `/proc/self/smaps` and sums resident pages; `files` are matched by canonical path.
pub fn resident(files: &[&Path]) -> Resident {
    let want: Vec<PathBuf> = files.iter().filter_map(|f| std::fs::canonicalize(f).ok()).collect();
    let Ok(text) = std::fs::read_to_string("/proc/self/smaps") else { return Resident::default() };
    let kb = |l: &str| l.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) * 1024;
    let mut r = Resident::default();
    let mut in_file = false;
    for line in text.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && first.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            // a mapping header: range perms offset dev inode [path]
            let path = line.split_whitespace().nth(5).map(PathBuf::from);
            in_file = path.is_some_and(|p| want.contains(&p));
        } else if line.starts_with("Rss:") {
            let n = kb(line);
            r.rss += n;
            if in_file {
                r.files += n;
            }
        } else if line.starts_with("Anonymous:") {
            r.anon += kb(line);
        }
    }
    r
}

/// CPU seconds (user + system, all threads) this process has used: on a loaded machine a
/// single-threaded step's CPU time is closer to its quiet-machine wall time than its wall time is.
/// From `/proc/self/stat` at the kernel's usual 100 ticks per second; 0 where it is missing.
pub fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    // fields after the parenthesised command name; utime and stime are the 14th and 15th
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest.split_whitespace().skip(11).take(2).filter_map(|v| v.parse().ok()).collect();
    f.iter().sum::<u64>() as f64 / 100.0
}

/// The 1, 5 and 15 minute load averages (`/proc/loadavg`), to state with figures taken on a
/// shared machine; empty where it is missing.
pub fn load_average() -> Vec<f64> {
    let s = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    s.split_whitespace().take(3).filter_map(|v| v.parse().ok()).collect()
}

/// Resets the peak RSS (VmHWM) to the current RSS, so a phase can be measured on its own
/// (Linux ≥ 4.0; false where it cannot). Keep the earlier peak first if it matters.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", b"5").is_ok()
}

/// Where the memory of a loaded model with one live session goes.
#[derive(Debug, Clone, Default)]
pub struct MemorySplit {
    /// Sizes of the language and vision files.
    pub files_bytes: u64,
    /// Resident pages of those files' mappings (weights served from the page cache).
    pub mapped_weights: u64,
    /// llama.cpp's repacked weights (`CPU_REPACK` model buffers; anonymous memory).
    pub repacked_weights: u64,
    /// Other weights llama.cpp copied out of the mapping (non-`_Mapped` model buffers).
    pub copied_weights: u64,
    pub kv_cache: u64,
    /// llama.cpp's compute and output buffers.
    pub llm_compute: u64,
    /// The vision encoder's compute buffers (kept between images).
    pub vision_compute: u64,
    /// Projector rows held by the model's image cache.
    pub image_rows: u64,
    pub resident: Resident,
}

impl MemorySplit {
    /// `model_buffers`: llama.cpp's reports at load; `context_buffers`: those of the live session.
    pub fn new(model: &Model, model_buffers: &[BufferReport], context_buffers: &[BufferReport]) -> MemorySplit {
        let mut paths: Vec<&Path> = vec![&model.info.path];
        paths.extend(model.vision_path.as_deref());
        let files_bytes = paths.iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum();
        let sum = |v: &[BufferReport], f: &dyn Fn(&BufferReport) -> bool| v.iter().filter(|b| f(b)).map(|b| b.bytes).sum::<u64>();
        let resident = resident(&paths);
        MemorySplit {
            files_bytes,
            mapped_weights: resident.files,
            repacked_weights: sum(model_buffers, &|b| b.kind == "model" && b.name.ends_with("_REPACK")),
            copied_weights: sum(model_buffers, &|b| b.kind == "model" && !b.name.ends_with("_REPACK") && !b.name.ends_with("_Mapped")),
            kv_cache: sum(context_buffers, &|b| b.kind == "KV"),
            llm_compute: sum(context_buffers, &|b| b.kind == "compute" || b.kind == "output"),
            vision_compute: model.vision.as_ref().map_or(0, |v| v.compute_buffer_bytes() as u64),
            image_rows: model.image_cache().stats().memory_bytes,
            resident,
        }
    }

    /// Files + KV cache + compute buffers: what a model needs at least, and the yardstick of the
    /// `--no-repack` memory target.
    pub fn budget(&self) -> u64 {
        self.files_bytes + self.kv_cache + self.llm_compute + self.vision_compute
    }

    /// Resident memory not in any of the parts above (code, heap, vocabulary; negative when
    /// buffers are allocated but not all touched).
    pub fn unattributed(&self) -> i64 {
        let parts = self.mapped_weights
            + self.repacked_weights
            + self.copied_weights
            + self.kv_cache
            + self.llm_compute
            + self.vision_compute
            + self.image_rows;
        self.resident.rss as i64 - parts as i64
    }
}

/// One question about an image as a user sees it, in a new session: from reading the file to
/// the first generated token.
#[derive(Debug, Clone, Default)]
pub struct FirstToken {
    /// Where the rows came from (`None`: encoded now).
    pub hit: Option<Hit>,
    pub tiles: usize,
    pub tiles_encoded: usize,
    pub prepare: PrepareTimings,
    pub encode_ms: f64,
    pub prefill_ms: f64,
    pub prefill_tokens: usize,
    /// Everything else before the first token (context allocation, tokenizing, sampling).
    pub other_ms: f64,
    /// Reading the file to the first token.
    pub ttft_ms: f64,
}

/// Asks `question` about `image` in a new session and times every step up to the first token;
/// `inspect` sees the session after the turn, while its memory is still held.
pub fn first_token(
    model: &Arc<Model>,
    sp: &SessionParams,
    image: &Path,
    max_tiles: Option<u32>,
    limits: ImageLimits,
    question: &str,
    inspect: impl FnOnce(&Session),
) -> Result<FirstToken, SailError> {
    let t0 = Instant::now();
    let img = model.prepare_image_file(image, max_tiles, limits)?;
    let (hit, prepare) = (img.cache_hit(), img.timings);
    let mut s = Session::new(model.clone(), sp.clone());
    s.add_image(img)?;
    let gp = GenerateParams { n_predict: 1, ignore_eos: true, ..Default::default() };
    let mut first = None;
    let g = s.generate(question, &gp, |_, _| {
        first.get_or_insert_with(|| t0.elapsed().as_secs_f64() * 1e3);
        true
    })?;
    inspect(&s);
    let ttft_ms = first.unwrap_or_else(|| t0.elapsed().as_secs_f64() * 1e3);
    let t = &g.timings;
    Ok(FirstToken {
        hit,
        tiles: g.tiles,
        tiles_encoded: g.tiles_encoded,
        prepare,
        encode_ms: t.vision_ms,
        prefill_ms: t.prefill_ms,
        prefill_tokens: t.prefill_tokens,
        other_ms: ttft_ms - prepare.total_ms() - t.vision_ms - t.prefill_ms,
        ttft_ms,
    })
}

/// Prefill and decode speed of two language models (the same file repacked and not, say),
/// measured in alternation: each round prefills `ids` and decodes `n` greedy tokens on A, then
/// on B, so a change in machine load hits both alike. Returns per round
/// (A prefill, A decode, B prefill, B decode) in tok/s.
pub fn alternate(
    a: &Arc<LlamaModel>,
    b: &Arc<LlamaModel>,
    ids: &[i32],
    n: usize,
    rounds: usize,
    threads: usize,
    kv_f32: bool,
) -> Result<Vec<[f64; 4]>, BenchError> {
    let n_ctx = (ids.len() + n + 16) as u32;
    let p = ContextParams { n_ctx, n_batch: 512, n_threads: threads, kv_f32 };
    let mut ctx = [LlamaContext::new(a.clone(), &p)?, LlamaContext::new(b.clone(), &p)?];
    let mut out = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let mut r = [0.0; 4];
        for (i, c) in ctx.iter_mut().enumerate() {
            c.truncate(0);
            let t = Instant::now();
            c.decode_tokens(ids, 0, true)?;
            r[2 * i] = ids.len() as f64 / t.elapsed().as_secs_f64();
            let t = Instant::now();
            for pos in ids.len()..ids.len() + n {
                let l = c.logits();
                let tok = l.iter().enumerate().fold((0, f32::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b }).0 as i32;
                c.decode_tokens(&[tok], pos as i32, true)?;
            }
            r[2 * i + 1] = n as f64 / t.elapsed().as_secs_f64();
        }
        out.push(r);
    }
    Ok(out)
}

/// The median of `v` (NaN for an empty list).
pub fn median(v: &[f64]) -> f64 {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
    s.sort_by(|x, y| x.total_cmp(y));
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
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
