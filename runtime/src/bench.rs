//! `sail bench`: the numbers that decide whether a model fits a device, measured side by side
//! in one process so ratios are meaningful on a noisy machine.

use crate::ModelArgs;
use anyhow::Result;
use clap::Args;
use sail::ggml::{Backend, Context, ContextParams, GgmlType, LlamaContext, Scheduler};
use sail::session::{GenerateParams, Session};
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Image to encode [default: synthetic tiles].
    #[arg(long)]
    image: Option<PathBuf>,
    /// Synthetic tiles to encode when no --image is given.
    #[arg(long, default_value_t = 2)]
    tiles: usize,
    /// Prompt tokens for the prefill measurement.
    #[arg(long = "prompt-tokens", default_value_t = 256)]
    prompt_tokens: usize,
    /// Tokens to generate for the decode measurement.
    #[arg(long = "gen-tokens", default_value_t = 32)]
    gen_tokens: usize,
    /// Skip the vision part.
    #[arg(long = "no-vision")]
    no_vision: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Peak resident set size of this process (VmHWM), in bytes.
pub(crate) fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok()))
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// ggml's own f16 matmul throughput on the CPU backend for a [k×n] weight times [k×m]
/// activations (the shape of a ViT projection), in GFLOP/s.
fn ggml_matmul_gflops(k: i64, n: i64, m: i64, threads: usize, ty: GgmlType) -> Result<f64> {
    let backend = Backend::cpu(threads)?;
    let ctx = Context::new(8, 16)?;
    let w = ctx.new_tensor(ty, &[k, n])?.set_input();
    let x = ctx.new_tensor(GgmlType::F32, &[k, m])?.set_input();
    let y = ctx.mul_mat(w, x)?.set_output();
    let g = ctx.build_graph(16, &[y]);
    let mut sched = Scheduler::new(&[&backend], 16)?;
    sched.alloc(&g)?;
    let wv: Vec<f32> = (0..k * n).map(|i| ((i % 97) as f32 - 48.0) / 97.0).collect();
    w.set_bytes(&ty.quantize(&wv, k as usize)?)?;
    x.set_f32(&(0..k * m).map(|i| ((i % 89) as f32 - 44.0) / 89.0).collect::<Vec<_>>())?;
    sched.compute(&g)?; // warm-up
    let reps = 3;
    let t = Instant::now();
    for _ in 0..reps {
        sched.compute(&g)?;
    }
    let s = t.elapsed().as_secs_f64() / reps as f64;
    Ok(2.0 * (k * n * m) as f64 / s / 1e9)
}

pub(crate) fn bench(a: BenchArgs) -> Result<()> {
    let threads = a.model.threads();
    let t = Instant::now();
    let model = a.model.load()?;
    let load_ms = t.elapsed().as_secs_f64() * 1e3;
    let mut report = json!({
        "model": a.model.model.display().to_string(),
        "description": model.llm.desc(),
        "threads": threads,
        "load_ms": load_ms,
        "system_info": sail::ggml::system_info(),
    });

    // ---- vision ----
    if let (Some(enc), false) = (&model.vision, a.no_vision) {
        let hp = &enc.hp;
        let (pixels, tiles) = match &a.image {
            Some(p) => {
                let img = model.prepare_image_file(p, a.model.max_tiles, a.model.max_pixels)?;
                (img.pixels, img.tiles)
            }
            None => {
                let per = 3 * (hp.image_size * hp.image_size) as usize;
                ((0..per * a.tiles).map(|i| ((i % 251) as f32 / 125.0) - 1.0).collect(), a.tiles)
            }
        };
        enc.encode(&pixels[..3 * (hp.image_size * hp.image_size) as usize], 1, model.vision_memory_budget)?; // warm-up
        let t = Instant::now();
        enc.encode(&pixels, tiles, model.vision_memory_budget)?;
        let ms_tile = t.elapsed().as_secs_f64() * 1e3 / tiles as f64;
        let (n, c, f, l) = (hp.n_positions() as f64, hp.n_embd as f64, hp.n_ff as f64, hp.n_layer as f64);
        let p2 = (3 * hp.patch_size * hp.patch_size) as f64;
        let out_tok = hp.tokens_per_tile() as f64;
        let flops = 2.0 * n * p2 * c
            + l * (2.0 * n * c * 3.0 * c + 4.0 * n * n * c + 2.0 * n * c * c + 6.0 * n * c * f)
            + 2.0 * out_tok * (hp.proj_in() as f64 * hp.proj_dim as f64 + (hp.proj_dim as f64).powi(2));
        let achieved = flops / (ms_tile / 1e3) / 1e9;
        let weight_type = enc_weight_type(&model);
        let base = ggml_matmul_gflops(hp.n_embd as i64, 3 * hp.n_embd as i64, hp.n_positions() as i64, threads, weight_type)?;
        let base_f16 = if weight_type == GgmlType::F16 { base } else { ggml_matmul_gflops(hp.n_embd as i64, 3 * hp.n_embd as i64, hp.n_positions() as i64, threads, GgmlType::F16)? };
        report["vision"] = json!({
            "tiles": tiles, "tile_size": hp.image_size, "weight_type": weight_type.name(), "ms_per_tile": ms_tile,
            "gflop_per_tile": flops / 1e9, "achieved_gflops": achieved,
            "ggml_matmul_gflops_same_type": base, "ggml_f16_matmul_gflops": base_f16,
            "ratio_to_matmul_same_type": achieved / base,
        });
    }

    // ---- language model: sail's session between two runs of llama.cpp alone (A/B/A, so a
    // change in machine load shows up as a gap between the two baseline runs) ----
    let text = "The quick brown fox jumps over the lazy dog. ".repeat(a.prompt_tokens / 8 + 2);
    let mut ids = model.llm.tokenize(&text, false);
    ids.truncate(a.prompt_tokens);
    let prompt = String::from_utf8_lossy(&ids.iter().flat_map(|&t| model.llm.token_bytes(t, false)).collect::<Vec<u8>>()).into_owned();
    let sp = a.model.session_params(&model, None, None);
    let base1 = llama_alone(&model, &ids, a.gen_tokens, threads, sp.kv_f32)?;
    let mut s = Session::new(model.clone(), sp.clone());
    let gp = GenerateParams { n_predict: a.gen_tokens, ignore_eos: true, ..Default::default() };
    let g = s.generate(&prompt, &gp, |_, _| true)?;
    drop(s);
    let base2 = llama_alone(&model, &ids, a.gen_tokens, threads, sp.kv_f32)?;
    report["sail"] = json!({
        "prompt_tokens": g.prompt_token_ids.len(), "prefill_ms": g.timings.prefill_ms, "prefill_tok_s": g.timings.prefill_tok_s(),
        "gen_tokens": g.tokens.len(), "decode_ms": g.timings.decode_ms, "decode_tok_s": g.timings.decode_tok_s(),
        "note": "chat template around the prompt, so more prompt tokens than --prompt-tokens",
    });
    let llama_decode = (base1.1 + base2.1) / 2.0;
    report["llama_cpp"] = json!({
        "prompt_tokens": ids.len(),
        "prefill_tok_s": (base1.0 + base2.0) / 2.0, "decode_tok_s": llama_decode,
        "decode_tok_s_before_after": [base1.1, base2.1],
        "note": "raw llama_decode loop with argmax (no sampler chain, no session), same model, threads and KV type; run before and after sail's",
    });
    report["decode_ratio_sail_to_llama_cpp"] = json!(g.timings.decode_tok_s() / llama_decode);
    report["peak_rss_bytes"] = json!(peak_rss());

    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("model:   {} ({})", report["model"].as_str().unwrap_or(""), report["description"].as_str().unwrap_or(""));
        println!("load:    {:.0} ms", load_ms);
        if let Some(v) = report.get("vision") {
            println!(
                "vision:  {:.1} ms/tile ({} tiles of {}², {}): {:.1} GFLOP/s achieved; ggml {} matmul {:.1} GFLOP/s (ratio {:.2}); f16 matmul {:.1}",
                v["ms_per_tile"].as_f64().unwrap_or(0.0), v["tiles"], v["tile_size"], v["weight_type"].as_str().unwrap_or(""),
                v["achieved_gflops"].as_f64().unwrap_or(0.0), v["weight_type"].as_str().unwrap_or(""),
                v["ggml_matmul_gflops_same_type"].as_f64().unwrap_or(0.0), v["ratio_to_matmul_same_type"].as_f64().unwrap_or(0.0),
                v["ggml_f16_matmul_gflops"].as_f64().unwrap_or(0.0)
            );
        }
        println!(
            "prefill: {:.1} tok/s ({} tokens); llama.cpp alone {:.1} tok/s",
            report["sail"]["prefill_tok_s"].as_f64().unwrap_or(0.0), report["sail"]["prompt_tokens"],
            report["llama_cpp"]["prefill_tok_s"].as_f64().unwrap_or(0.0)
        );
        println!(
            "decode:  {:.1} tok/s ({} tokens); llama.cpp alone {:.1} tok/s (ratio {:.2})",
            report["sail"]["decode_tok_s"].as_f64().unwrap_or(0.0), report["sail"]["gen_tokens"], llama_decode,
            report["decode_ratio_sail_to_llama_cpp"].as_f64().unwrap_or(0.0)
        );
        println!("peak RSS: {:.0} MiB", peak_rss() as f64 / 1048576.0);
    }
    Ok(())
}

/// llama.cpp alone: prefill `ids`, then `n` greedy single-token decodes. Returns tok/s
/// (prefill, decode).
fn llama_alone(model: &sail::session::Model, ids: &[i32], n: usize, threads: usize, kv_f32: bool) -> Result<(f64, f64)> {
    let n_ctx = (ids.len() + n + 16) as u32;
    let mut ctx = LlamaContext::new(model.llm.clone(), &ContextParams { n_ctx, n_batch: 512, n_threads: threads, kv_f32 })?;
    let t = Instant::now();
    ctx.decode_tokens(ids, 0, true)?;
    let prefill = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut pos = ids.len() as i32;
    for _ in 0..n {
        let l = ctx.logits();
        let tok = l.iter().enumerate().fold((0, f32::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b }).0 as i32;
        ctx.decode_tokens(&[tok], pos, true)?;
        pos += 1;
    }
    Ok((ids.len() as f64 / prefill, n as f64 / t.elapsed().as_secs_f64()))
}

fn enc_weight_type(model: &sail::session::Model) -> GgmlType {
    model
        .vision_path
        .as_ref()
        .and_then(|p| sail::gguf::GgufFile::open(p).ok())
        .and_then(|f| f.tensor("v.blk.0.attn_qkv.weight").and_then(|t| t.ty()))
        .unwrap_or(GgmlType::F16)
}
