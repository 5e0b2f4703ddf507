//! `sail bench`: the numbers that decide whether a model fits a device, measured side by side
//! in one process so ratios are meaningful on a noisy machine.

use crate::args::ModelArgs;
use anyhow::Result;
use clap::Args;
use sail::bench::{llama_alone, matmul_gflops, peak_rss, vision_flops_per_tile};
use sail::format::GgmlType;
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
    /// Synthetic tiles to encode when no --image is given (1..=64).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    tiles: u16,
    /// Prompt tokens for the prefill measurement (at most the model's context).
    #[arg(long = "prompt-tokens", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    prompt_tokens: u32,
    /// Tokens to generate for the decode measurement (prompt + these fit the context).
    #[arg(long = "gen-tokens", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    gen_tokens: u32,
    /// Skip the vision part.
    #[arg(long = "no-vision")]
    no_vision: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

pub(crate) fn bench(a: BenchArgs) -> Result<()> {
    let threads = a.model.threads();
    let t = Instant::now();
    let model = a.model.load()?;
    let load_ms = t.elapsed().as_secs_f64() * 1e3;
    let (tiles, prompt_tokens, gen_tokens) = (a.tiles as usize, a.prompt_tokens as usize, a.gen_tokens as usize);
    let n_ctx = model.info.hp.n_ctx_train as usize;
    // both runs use prompt + generated positions (+ the chat template's): refused before any work
    if prompt_tokens.saturating_add(gen_tokens).saturating_add(64) > n_ctx {
        anyhow::bail!("--prompt-tokens {prompt_tokens} + --gen-tokens {gen_tokens} do not fit the model's context of {n_ctx}");
    }
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
                let img = model.prepare_image_file(p, a.model.max_tiles, a.model.limits())?;
                (img.pixels, img.tiles)
            }
            None => {
                let per = 3 * (hp.image_size * hp.image_size) as usize;
                ((0..per * tiles).map(|i| ((i % 251) as f32 / 125.0) - 1.0).collect(), tiles)
            }
        };
        enc.encode(&pixels[..3 * (hp.image_size * hp.image_size) as usize], 1, model.vision_memory_budget)?; // warm-up
        let t = Instant::now();
        enc.encode(&pixels, tiles, model.vision_memory_budget)?;
        let ms_tile = t.elapsed().as_secs_f64() * 1e3 / tiles as f64;
        let flops = vision_flops_per_tile(hp);
        let achieved = flops / (ms_tile / 1e3) / 1e9;
        let weight_type = enc.weight_type();
        let base = matmul_gflops(hp.n_embd as i64, 3 * hp.n_embd as i64, hp.n_positions() as i64, threads, weight_type, 3)?;
        let base_f16 = if weight_type == GgmlType::F16 {
            base
        } else {
            matmul_gflops(hp.n_embd as i64, 3 * hp.n_embd as i64, hp.n_positions() as i64, threads, GgmlType::F16, 3)?
        };
        report["vision"] = json!({
            "tiles": tiles, "tile_size": hp.image_size, "weight_type": weight_type.name(), "ms_per_tile": ms_tile,
            "gflop_per_tile": flops / 1e9, "achieved_gflops": achieved,
            "ggml_matmul_gflops_same_type": base, "ggml_f16_matmul_gflops": base_f16,
            "ratio_to_matmul_same_type": achieved / base,
        });
    }

    // ---- language model: sail's session between two runs of llama.cpp alone (A/B/A, so a
    // change in machine load shows up as a gap between the two baseline runs) ----
    let text = "The quick brown fox jumps over the lazy dog. ".repeat(prompt_tokens / 8 + 2);
    let mut ids = model.llm.tokenize(&text, false)?;
    ids.truncate(prompt_tokens);
    let mut bytes = Vec::new();
    for &t in &ids {
        bytes.extend(model.llm.token_bytes(t, false)?);
    }
    let prompt = String::from_utf8_lossy(&bytes).into_owned();
    let sp = a.model.session_params(&model, None, None);
    let base1 = llama_alone(&model, &ids, gen_tokens, threads, sp.kv_f32)?;
    let mut s = Session::new(model.clone(), sp.clone());
    let gp = GenerateParams { n_predict: gen_tokens, ignore_eos: true, ..Default::default() };
    let g = s.generate(&prompt, &gp, |_, _| true)?;
    drop(s);
    let base2 = llama_alone(&model, &ids, gen_tokens, threads, sp.kv_f32)?;
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
            report["sail"]["prefill_tok_s"].as_f64().unwrap_or(0.0),
            report["sail"]["prompt_tokens"],
            report["llama_cpp"]["prefill_tok_s"].as_f64().unwrap_or(0.0)
        );
        println!(
            "decode:  {:.1} tok/s ({} tokens); llama.cpp alone {:.1} tok/s (ratio {:.2})",
            report["sail"]["decode_tok_s"].as_f64().unwrap_or(0.0),
            report["sail"]["gen_tokens"],
            llama_decode,
            report["decode_ratio_sail_to_llama_cpp"].as_f64().unwrap_or(0.0)
        );
        println!("peak RSS: {:.0} MiB", peak_rss() as f64 / 1048576.0);
    }
    Ok(())
}
