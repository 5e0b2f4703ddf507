//! `sail bench`: the numbers that decide whether a model fits a device, measured side by side
//! in one process so ratios are meaningful on a noisy machine.

use crate::args::ModelArgs;
use anyhow::Result;
use clap::Args;
use sail::bench::{bench_vision, llama_alone, matmul_gflops, peak_rss, Spread, VisionBench, VisionBenchParams};
use sail::format::GgmlType;
use sail::session::{GenerateParams, Session};
use sail::vision::encoder::Attention;
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
    /// Tiles to time one by one (the median is reported; synthetic tiles unless --image).
    #[arg(long, default_value_t = 3)]
    tiles: usize,
    /// Passes of the matmul yardstick before the tiles and again after them.
    #[arg(long = "yardstick-reps", default_value_t = 5)]
    yardstick_reps: usize,
    /// Also time one tile op by op and print where its time goes.
    #[arg(long)]
    profile: bool,
    /// Also encode the timed tiles batched to the vision memory budget.
    #[arg(long)]
    batched: bool,
    /// Attention kernels of the vision graph [default: fused on the CPU, products elsewhere].
    #[arg(long, value_enum)]
    attention: Option<AttentionArg>,
    /// Prompt tokens for the prefill measurement.
    #[arg(long = "prompt-tokens", default_value_t = 256)]
    prompt_tokens: usize,
    /// Tokens to generate for the decode measurement.
    #[arg(long = "gen-tokens", default_value_t = 32)]
    gen_tokens: usize,
    /// Skip the vision part.
    #[arg(long = "no-vision")]
    no_vision: bool,
    /// Skip the language-model part (prefill, decode).
    #[arg(long = "no-text")]
    no_text: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum AttentionArg {
    /// ggml_flash_attn_ext over views of the QKV projection
    Fused,
    /// Q·Kᵀ, softmax, ·V as separate ops
    Products,
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
    let mut vision = None;
    if let (Some(enc), false) = (&model.vision, a.no_vision) {
        let hp = &enc.hp;
        let pixels = match &a.image {
            Some(p) => model.prepare_image_file(p, a.model.max_tiles, a.model.limits())?.pixels,
            None => {
                let per = 3 * (hp.image_size * hp.image_size) as usize;
                (0..per * a.tiles).map(|i| ((i % 251) as f32 / 125.0) - 1.0).collect()
            }
        };
        if let Some(at) = a.attention {
            enc.set_attention(match at {
                AttentionArg::Fused => Attention::Fused,
                AttentionArg::Products => Attention::Products,
            });
        }
        let params = VisionBenchParams {
            tiles: a.tiles,
            yardstick_reps: a.yardstick_reps,
            profile: a.profile,
            batched_budget: a.batched.then_some(model.vision_memory_budget),
        };
        let v = bench_vision(enc, &pixels, &params)?;
        let base_f16 = if v.weight_type == GgmlType::F16 {
            v.yardstick.all().median
        } else {
            matmul_gflops(hp.n_embd as i64, 3 * hp.n_embd as i64, hp.n_positions() as i64, threads, GgmlType::F16, 3)?
        };
        report["vision"] = vision_json(&v, hp.image_size, enc.attention(), base_f16);
        vision = Some(v);
    }
    // ---- language model: sail's session between two runs of llama.cpp alone (A/B/A, so a
    // change in machine load shows up as a gap between the two baseline runs) ----
    if !a.no_text {
        text_bench(&a, &model, threads, &mut report)?;
    }
    report["peak_rss_bytes"] = json!(peak_rss());

    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!("model:   {} ({})", report["model"].as_str().unwrap_or(""), report["description"].as_str().unwrap_or(""));
    println!("load:    {:.0} ms", load_ms);
    if let Some(v) = &vision {
        print_vision(v, &report["vision"]);
    }
    if !a.no_text {
        let l = &report["llama_cpp"];
        println!(
            "prefill: {:.1} tok/s ({} tokens); llama.cpp alone {:.1} tok/s",
            report["sail"]["prefill_tok_s"].as_f64().unwrap_or(0.0),
            report["sail"]["prompt_tokens"],
            l["prefill_tok_s"].as_f64().unwrap_or(0.0)
        );
        println!(
            "decode:  {:.1} tok/s ({} tokens); llama.cpp alone {:.1} tok/s (ratio {:.2})",
            report["sail"]["decode_tok_s"].as_f64().unwrap_or(0.0),
            report["sail"]["gen_tokens"],
            l["decode_tok_s"].as_f64().unwrap_or(0.0),
            report["decode_ratio_sail_to_llama_cpp"].as_f64().unwrap_or(0.0)
        );
    }
    println!("peak RSS: {:.0} MiB", peak_rss() as f64 / 1048576.0);
    Ok(())
}

/// The language model: sail's session between two runs of llama.cpp alone (A/B/A, so a change
/// in machine load shows up as a gap between the two baseline runs).
fn text_bench(a: &BenchArgs, model: &std::sync::Arc<sail::session::Model>, threads: usize, report: &mut serde_json::Value) -> Result<()> {
    let text = "The quick brown fox jumps over the lazy dog. ".repeat(a.prompt_tokens / 8 + 2);
    let mut ids = model.llm.tokenize(&text, false);
    ids.truncate(a.prompt_tokens);
    let prompt = String::from_utf8_lossy(&ids.iter().flat_map(|&t| model.llm.token_bytes(t, false)).collect::<Vec<u8>>()).into_owned();
    let sp = a.model.session_params(model, None, None);
    let base1 = llama_alone(model, &ids, a.gen_tokens, threads, sp.kv_f32)?;
    let mut s = Session::new(model.clone(), sp.clone());
    let gp = GenerateParams { n_predict: a.gen_tokens, ignore_eos: true, ..Default::default() };
    let g = s.generate(&prompt, &gp, |_, _| true)?;
    drop(s);
    let base2 = llama_alone(model, &ids, a.gen_tokens, threads, sp.kv_f32)?;
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
    Ok(())
}

fn spread_json(s: Spread) -> serde_json::Value {
    json!({ "median": s.median, "min": s.min, "max": s.max, "n": s.n, "relative_spread": s.relative() })
}

fn vision_json(v: &VisionBench, tile_size: u32, attention: Attention, base_f16: f64) -> serde_json::Value {
    let (tiles, yard) = (v.tiles(), v.yardstick.all());
    let mut j = json!({
        "tiles": v.tile_ms.len(), "tile_size": tile_size, "weight_type": v.weight_type.name(),
        "attention": format!("{attention:?}").to_lowercase(),
        "ms_per_tile": tiles.median, "ms_per_tile_runs": v.tile_ms, "ms_per_tile_spread": spread_json(tiles),
        "gflop_per_tile": v.flops_per_tile / 1e9, "achieved_gflops": v.achieved_gflops(),
        "ggml_matmul_gflops_same_type": yard.median, "ggml_f16_matmul_gflops": base_f16,
        "ratio_to_matmul_same_type": v.ratio(),
        "yardstick": {
            "what": "ggml mul_mat of the encoder's own block-0 and projector weights at the tile's shapes, on its backends and threads; GFLOP/s of the tile's mix (shapes weighted by count per tile); passes before and after the tiles",
            "gflops": spread_json(yard),
            "before": v.yardstick.before, "after": v.yardstick.after,
            "shapes": v.yardstick.shapes.iter().zip(&v.yardstick.per_shape).map(|(s, g)| json!({
                "weight": s.name, "type": s.weight_type.name(), "k": s.k, "n": s.n, "m": s.m, "per_tile": s.per_tile, "gflops_median": g,
            })).collect::<Vec<_>>(),
        },
    });
    if let Some((batch, ms)) = v.batched {
        j["batched"] = json!({ "tiles_per_batch": batch, "ms_per_tile": ms });
    }
    if let Some((kinds, total)) = &v.profile {
        j["profile"] = json!({
            "note": "one tile run step by step through ggml's eval callback (RMSNorm timed with the multiply it fuses with); the total exceeds a plain tile by the per-step synchronisation",
            "total_ms": total,
            "kinds": kinds.iter().map(|k| json!({ "kind": k.kind, "ms": k.ms, "share": k.ms / total, "steps": k.steps })).collect::<Vec<_>>(),
        });
    }
    j
}

fn print_vision(v: &VisionBench, j: &serde_json::Value) {
    let (t, y) = (v.tiles(), v.yardstick.all());
    println!(
        "vision:  {:.1} ms/tile median of {} (min {:.1}, max {:.1}; {} weights, {} attention): {:.1} GFLOP/s achieved",
        t.median,
        t.n,
        t.min,
        t.max,
        v.weight_type,
        j["attention"].as_str().unwrap_or(""),
        v.achieved_gflops()
    );
    let med = |x: &[f64]| Spread::of(x).map_or(f64::NAN, |s| s.median);
    println!(
        "         yardstick (ggml {} matmul, tile's shapes): {:.1} GFLOP/s median of {} (min {:.1}, max {:.1}; before {:.1}, after {:.1})",
        v.weight_type,
        y.median,
        y.n,
        y.min,
        y.max,
        med(&v.yardstick.before),
        med(&v.yardstick.after)
    );
    println!("         ratio to matmul {:.2}; f16 matmul {:.1} GFLOP/s", v.ratio(), j["ggml_f16_matmul_gflops"].as_f64().unwrap_or(0.0));
    for (s, g) in v.yardstick.shapes.iter().zip(&v.yardstick.per_shape) {
        println!("           {:<26} {:>5}×{:<5} m {:<5} ×{:<3} {:6.1} GFLOP/s", s.name, s.k, s.n, s.m, s.per_tile, g);
    }
    if let Some((batch, ms)) = v.batched {
        println!("         batched: {ms:.1} ms/tile in batches of {batch}");
    }
    if let Some((kinds, total)) = &v.profile {
        println!("profile: one tile step by step, {total:.1} ms in all");
        for k in kinds {
            println!("           {:<34} {:9.1} ms {:5.1} %  ({} steps)", k.kind, k.ms, 100.0 * k.ms / total, k.steps);
        }
    }
}
