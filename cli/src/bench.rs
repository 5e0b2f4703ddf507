//! `sail bench`: the numbers that decide whether a model fits a device, measured side by side
//! in one process so ratios are meaningful on a noisy machine.

use crate::args::ModelArgs;
use anyhow::Result;
use clap::Args;
use sail::bench::{
    alternate, bench_vision, cpu_seconds, first_token, llama_alone, load_average, matmul_gflops, median, peak_rss, reset_peak_rss,
    FirstToken, MemorySplit, RpcTraffic, Spread, VisionBench, VisionBenchParams,
};
use sail::cache::Hit;
use sail::format::GgmlType;
use sail::ggml::{BufferReport, LlamaModel, ModelParams as LlamaParams};
use sail::session::{GenerateParams, Model, Session};
use sail::vision::encoder::Attention;
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Image to encode [default: synthetic tiles].
    #[arg(long)]
    image: Option<PathBuf>,
    /// Tiles to time one by one, 1..=64 (the median is reported; synthetic tiles unless --image,
    /// whose tiles are reused in turn).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=64))]
    tiles: u16,
    /// Passes of the matmul yardstick before the tiles and again after them (1..=50).
    #[arg(long = "yardstick-reps", default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=50))]
    yardstick_reps: u16,
    /// Also time one tile op by op and print where its time goes.
    #[arg(long)]
    profile: bool,
    /// Also encode the timed tiles batched to the vision memory budget.
    #[arg(long)]
    batched: bool,
    /// Attention kernels of the vision graph [default: fused on the CPU, products elsewhere].
    #[arg(long, value_enum)]
    attention: Option<AttentionArg>,
    /// Prompt tokens for the prefill measurement (at most the model's context).
    #[arg(long = "prompt-tokens", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    prompt_tokens: u32,
    /// Tokens to generate for the decode measurement (prompt + these fit the context).
    #[arg(long = "gen-tokens", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    gen_tokens: u32,
    /// Skip the per-tile vision measurement (the first-token path still runs with --image).
    #[arg(long = "no-vision")]
    no_vision: bool,
    /// Skip the language-model measurement (prefill, decode against llama.cpp alone).
    #[arg(long = "no-text")]
    no_text: bool,
    /// With --image, skip the first-token path (first question: decode, tile, encode, prefill;
    /// second question about the same image: from the cache).
    #[arg(long = "no-first-token")]
    no_first_token: bool,
    /// Also load the language model the other way (repacked / --no-repack) and measure both in
    /// alternation, ROUNDS rounds of prefill + decode each (peak_rss_bytes then includes it).
    #[arg(long = "repack-ab", value_name = "ROUNDS")]
    repack_ab: Option<usize>,
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
    let load_average_start = load_average();
    let (t, cpu) = (Instant::now(), cpu_seconds());
    let model = a.model.load()?;
    let load_ms = t.elapsed().as_secs_f64() * 1e3;
    let load_bytes = sail::ggml::rpc::traffic();
    let load_cpu_ms = (cpu_seconds() - cpu) * 1e3;
    let load_buffers = sail::ggml::take_buffer_reports();
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
        "load_cpu_ms": load_cpu_ms,
        "repack": !a.model.no_repack,
        "system_info": sail::ggml::system_info(),
    });

    // ---- vision ----
    let mut vision = None;
    if let (Some(enc), false) = (&model.vision, a.no_vision) {
        let hp = &enc.hp;
        let pixels = match &a.image {
            Some(p) => model.tile_image_file(p, a.model.max_tiles, a.model.limits())?.into_pixels(),
            None => {
                let per = 3 * (hp.image_size * hp.image_size) as usize;
                (0..per * tiles).map(|i| ((i % 251) as f32 / 125.0) - 1.0).collect()
            }
        };
        if let Some(at) = a.attention {
            enc.set_attention(match at {
                AttentionArg::Fused => Attention::Fused,
                AttentionArg::Products => Attention::Products,
            });
        }
        let params = VisionBenchParams {
            tiles,
            yardstick_reps: a.yardstick_reps as usize,
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

    // ---- language model ----
    let rpc = if a.no_text { None } else { text_bench(&a, &model, threads, load_bytes, &mut report)? };
    let peak_before = peak_rss();
    memory_and_first_token(&a, &model, &load_buffers, &mut report)?;
    let peak = peak_rss().max(peak_before);
    report["peak_rss_bytes"] = json!(peak);
    report["load_average"] = json!({"start": load_average_start, "end": load_average()});

    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("model:   {} ({})", report["model"].as_str().unwrap_or(""), report["description"].as_str().unwrap_or(""));
        println!("load:    {:.0} ms ({:.0} ms CPU; repack {})", load_ms, load_cpu_ms, !a.model.no_repack);
        if let Some(v) = &vision {
            print_vision(v, &report["vision"]);
        }
        if !a.no_text {
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
                report["llama_cpp"]["decode_tok_s"].as_f64().unwrap_or(0.0),
                report["decode_ratio_sail_to_llama_cpp"].as_f64().unwrap_or(0.0)
            );
        }
        if let Some(t) = rpc {
            println!(
                "rpc:     {:.0} B sent + {:.0} B received per decoded token; prefill {} B sent + {} B received",
                t.decode_sent_per_token, t.decode_received_per_token, t.prefill_sent, t.prefill_received
            );
        }
        if let Some(ab) = report.get("repack_ab") {
            println!(
                "repack A/B ({} rounds): prefill {:.2}×, decode {:.2}× (repacked to --no-repack, medians of per-round ratios)",
                ab["rounds"],
                ab["median_prefill_ratio_repack_to_no_repack"].as_f64().unwrap_or(0.0),
                ab["median_decode_ratio_repack_to_no_repack"].as_f64().unwrap_or(0.0)
            );
        }
        print_memory_and_first_token(&report);
        println!("peak RSS: {:.0} MiB", peak as f64 / 1048576.0);
    }
    Ok(())
}

/// The language model: sail's session between two runs of llama.cpp alone (A/B/A, so a change
/// in machine load shows up as a gap between the two baseline runs); with --repack-ab the other
/// repacking too. Returns the RPC traffic of the second baseline run, if any.
fn text_bench(
    a: &BenchArgs,
    model: &Arc<Model>,
    threads: usize,
    load_bytes: Option<(u64, u64)>,
    report: &mut serde_json::Value,
) -> Result<Option<RpcTraffic>> {
    let (prompt_tokens, gen_tokens) = (a.prompt_tokens as usize, a.gen_tokens as usize);
    let text = "The quick brown fox jumps over the lazy dog. ".repeat(prompt_tokens / 8 + 2);
    let mut ids = model.llm.tokenize(&text, false)?;
    ids.truncate(prompt_tokens);
    let mut bytes = Vec::new();
    for &t in &ids {
        bytes.extend(model.llm.token_bytes(t, false)?);
    }
    let prompt = String::from_utf8_lossy(&bytes).into_owned();
    let sp = a.model.session_params(model, None, None);
    let base1 = llama_alone(model, &ids, gen_tokens, threads, sp.kv_f32)?;
    let mut s = Session::new(model.clone(), sp.clone());
    let gp = GenerateParams { n_predict: gen_tokens, ignore_eos: true, ..Default::default() };
    let g = s.generate(&prompt, &gp, |_, _| true)?;
    drop(s);
    let base2 = llama_alone(model, &ids, gen_tokens, threads, sp.kv_f32)?;
    report["sail"] = json!({
        "prompt_tokens": g.prompt_token_ids.len(), "prefill_ms": g.timings.prefill_ms, "prefill_tok_s": g.timings.prefill_tok_s(),
        "gen_tokens": g.tokens.len(), "decode_ms": g.timings.decode_ms, "decode_tok_s": g.timings.decode_tok_s(),
        "note": "chat template around the prompt, so more prompt tokens than --prompt-tokens",
    });
    let llama_decode = (base1.decode_tok_s + base2.decode_tok_s) / 2.0;
    report["llama_cpp"] = json!({
        "prompt_tokens": ids.len(),
        "prefill_tok_s": (base1.prefill_tok_s + base2.prefill_tok_s) / 2.0, "decode_tok_s": llama_decode,
        "decode_tok_s_before_after": [base1.decode_tok_s, base2.decode_tok_s],
        "note": "raw llama_decode loop with argmax (no sampler chain, no session), same model, threads and KV type; run before and after sail's",
    });
    if let Some(t) = base2.rpc {
        report["rpc"] = json!({
            "servers": a.model.rpc.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
            "load_bytes_sent": load_bytes.map(|b| b.0),
            "prefill_bytes_sent": t.prefill_sent, "prefill_bytes_received": t.prefill_received,
            "decode_bytes_sent_per_token": t.decode_sent_per_token, "decode_bytes_received_per_token": t.decode_received_per_token,
            "note": "TCP bytes over this process's open connections to the RPC servers (kernel counters): after loading, and during the second llama.cpp-alone run",
        });
    }
    report["decode_ratio_sail_to_llama_cpp"] = json!(g.timings.decode_tok_s() / llama_decode);
    if let Some(rounds) = a.repack_ab {
        report["repack_ab"] = repack_ab(a, model, &ids, rounds, threads, sp.kv_f32)?;
    }
    Ok(base2.rpc)
}

/// This model against the same file loaded with repacking the other way, in alternation.
fn repack_ab(a: &BenchArgs, model: &Arc<Model>, ids: &[i32], rounds: usize, threads: usize, kv_f32: bool) -> Result<serde_json::Value> {
    let repack = !a.model.no_repack;
    let (t, cpu) = (Instant::now(), cpu_seconds());
    let other = Arc::new(LlamaModel::load(&a.model.model, &LlamaParams { repack: !repack, ..Default::default() })?);
    let other_load = (t.elapsed().as_secs_f64() * 1e3, (cpu_seconds() - cpu) * 1e3);
    let r = alternate(&model.llm, &other, ids, a.gen_tokens as usize, rounds.max(1), threads, kv_f32)?;
    // columns of r: this model's prefill, decode, then the other's
    let (on, off) = if repack { (0, 2) } else { (2, 0) };
    let col = |i: usize| r.iter().map(|x| x[i]).collect::<Vec<f64>>();
    let ratio = |i: usize| r.iter().map(|x| x[on + i] / x[off + i]).collect::<Vec<f64>>();
    Ok(json!({
        "rounds": r.len(), "prompt_tokens": ids.len(), "gen_tokens": a.gen_tokens,
        "repack": {"prefill_tok_s": col(on), "decode_tok_s": col(on + 1)},
        "no_repack": {"prefill_tok_s": col(off), "decode_tok_s": col(off + 1)},
        "median_prefill_ratio_repack_to_no_repack": median(&ratio(0)),
        "median_decode_ratio_repack_to_no_repack": median(&ratio(1)),
        "other_load_ms": other_load.0, "other_load_cpu_ms": other_load.1,
        "note": "llama.cpp alone (argmax loop), the two models alternating round by round in one process",
    }))
}

fn first_token_json(f: &FirstToken) -> serde_json::Value {
    let p = &f.prepare;
    json!({
        "source": match f.hit { None => "miss", Some(Hit::Memory) => "memory", Some(Hit::Disk) => "disk" },
        "tiles": f.tiles, "tiles_encoded": f.tiles_encoded,
        "read_ms": p.read_ms, "key_ms": p.key_ms, "lookup_ms": p.lookup_ms, "decode_ms": p.decode_ms, "tile_ms": p.tile_ms,
        "encode_ms": f.encode_ms, "prefill_ms": f.prefill_ms, "prefill_tokens": f.prefill_tokens, "other_ms": f.other_ms,
        "ttft_ms": f.ttft_ms,
    })
}

/// Where memory goes with one live session (after a first question about --image, or a short
/// text question), and with --image the time to the first token: a first question, then a
/// second one about the same image in a new session (memory cache), then with --cache-dir a
/// third from disk.
fn memory_and_first_token(a: &BenchArgs, model: &Arc<Model>, load_buffers: &[BufferReport], report: &mut serde_json::Value) -> Result<()> {
    let sp = a.model.session_params(model, None, None);
    let limits = a.model.limits();
    sail::ggml::take_buffer_reports(); // drop the reports of the contexts measured above
    model.image_cache().clear_memory();
    let reset = reset_peak_rss();
    let mut split = None;
    let mut inspect = |_: &Session| {
        let mut buffers = load_buffers.to_vec();
        let ctx = sail::ggml::take_buffer_reports();
        let m = MemorySplit::new(model, load_buffers, &ctx);
        buffers.extend(ctx);
        split = Some((m, buffers, peak_rss()));
    };
    match (&a.image, a.no_first_token) {
        (Some(image), false) if model.has_vision() => {
            let first = first_token(model, &sp, image, a.model.max_tiles, limits, "Describe this image.", &mut inspect)?;
            let second = first_token(model, &sp, image, a.model.max_tiles, limits, "What colours does it have?", |_| {})?;
            let mut v = json!({
                "image": image.display().to_string(),
                "first": first_token_json(&first),
                "second": first_token_json(&second),
                "ttft_ratio_first_to_second": first.ttft_ms / second.ttft_ms.max(1e-9),
                "note": "each question in a new session, n_predict 1; the second finds the rows in the model's memory cache",
            });
            if a.model.cache_dir.is_some() {
                model.image_cache().clear_memory();
                let disk = first_token(model, &sp, image, a.model.max_tiles, limits, "Is there any text in it?", |_| {})?;
                v["from_disk"] = first_token_json(&disk);
            }
            v["cache"] = json!(format!("{:?}", model.image_cache().stats()));
            report["first_token"] = v;
        }
        _ => {
            let mut s = Session::new(model.clone(), sp);
            let gp = GenerateParams { n_predict: 1, ignore_eos: true, ..Default::default() };
            s.generate("Hello.", &gp, |_, _| true)?;
            inspect(&s);
        }
    }
    let Some((m, buffers, peak)) = split else { return Ok(()) };
    let mib = |b: u64| b as f64 / 1048576.0;
    report["memory"] = json!({
        "repack": !a.model.no_repack,
        "files_bytes": m.files_bytes,
        "mapped_weights_bytes": m.mapped_weights,
        "repacked_weights_bytes": m.repacked_weights,
        "copied_weights_bytes": m.copied_weights,
        "kv_cache_bytes": m.kv_cache,
        "llm_compute_bytes": m.llm_compute,
        "vision_compute_bytes": m.vision_compute,
        "image_rows_bytes": m.image_rows,
        "unattributed_bytes": m.unattributed(),
        "rss_bytes": m.resident.rss,
        "anon_rss_bytes": m.resident.anon,
        "question_peak_rss_bytes": if reset { json!(peak) } else { json!(null) },
        "budget_bytes": m.budget(),
        "question_peak_to_budget": if reset { json!(peak as f64 / m.budget() as f64) } else { json!(null) },
        "llm_buffers": buffers.iter().map(|b| json!({"name": b.name, "kind": b.kind, "mib": mib(b.bytes)})).collect::<Vec<_>>(),
        "note": "taken after the first question (its session alive); question_peak_rss_bytes is the peak RSS during that question alone; budget = files + KV cache + compute buffers",
    });
    Ok(())
}

fn print_memory_and_first_token(r: &serde_json::Value) {
    let mib = |v: &serde_json::Value| v.as_f64().unwrap_or(0.0) / 1048576.0;
    if let Some(m) = r.get("memory") {
        println!(
            "memory:  RSS {:.1} MiB = mapped weights {:.1} + repacked {:.1} + copied {:.1} + KV {:.1} + LLM compute {:.1} + vision compute {:.1} + image rows {:.1} + other {:.1} (repack {})",
            mib(&m["rss_bytes"]), mib(&m["mapped_weights_bytes"]), mib(&m["repacked_weights_bytes"]), mib(&m["copied_weights_bytes"]),
            mib(&m["kv_cache_bytes"]), mib(&m["llm_compute_bytes"]), mib(&m["vision_compute_bytes"]), mib(&m["image_rows_bytes"]),
            mib(&m["unattributed_bytes"]), m["repack"]
        );
        println!(
            "         peak during the question {:.0} MiB = {:.2} × (files {:.0} + KV + compute buffers = {:.0} MiB)",
            mib(&m["question_peak_rss_bytes"]),
            m["question_peak_to_budget"].as_f64().unwrap_or(0.0),
            mib(&m["files_bytes"]),
            mib(&m["budget_bytes"])
        );
    }
    if let Some(f) = r.get("first_token") {
        for k in ["first", "second", "from_disk"] {
            let Some(q) = f.get(k) else { continue };
            let ms = |key: &str| q[key].as_f64().unwrap_or(0.0);
            println!(
                "{k:>9}: first token after {:.0} ms ({}, {} of {} tiles encoded): read {:.1} + key {:.1} + lookup {:.1} + decode {:.1} + tile {:.1} + encode {:.0} + prefill {:.0} + other {:.0} ms",
                ms("ttft_ms"), q["source"].as_str().unwrap_or(""), q["tiles_encoded"], q["tiles"], ms("read_ms"), ms("key_ms"), ms("lookup_ms"),
                ms("decode_ms"), ms("tile_ms"), ms("encode_ms"), ms("prefill_ms"), ms("other_ms")
            );
        }
    }
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
