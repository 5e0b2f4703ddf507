//! `sail info`: what is inside a sail GGUF file, and which compute devices ggml sees.

use anyhow::Result;
use clap::Args;
use sail::format::gguf::GgufFile;
use sail::format::keys::*;
use sail::format::{validate, GgmlType, LlmHparams, VisionHparams};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub(crate) struct InfoArgs {
    /// A NAME.gguf or NAME.mmproj.gguf file.
    file: Option<PathBuf>,
    /// List the compute devices (CPU, Vulkan, CUDA) this build of ggml sees.
    #[arg(long)]
    devices: bool,
    /// With --devices: also the devices of these RPC servers, HOST:PORT[,...].
    #[arg(long, requires = "devices", value_delimiter = ',', value_parser = crate::args::parse_endpoint)]
    rpc: Vec<sail::ggml::rpc::Endpoint>,
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

pub(crate) fn info(a: InfoArgs) -> Result<()> {
    if a.devices {
        sail::ggml::llama_init(false);
        crate::args::connect_rpc(&a.rpc)?;
        println!("devices:");
        for d in sail::ggml::devices() {
            println!(
                "  {}: {} ({:?}) — {}, memory {} free of {}",
                d.index,
                d.name,
                d.kind,
                d.description,
                mib(d.memory_free as u64),
                mib(d.memory_total as u64)
            );
        }
        println!("cpu features: {}", sail::ggml::system_info());
        println!(
            "rpc backend:  {}",
            if sail::ggml::rpc::available() { "yes (sail rpc-server, --rpc)" } else { "no (built without GGML_RPC)" }
        );
        if a.file.is_none() {
            return Ok(());
        }
    }
    let Some(path) = a.file else {
        anyhow::bail!("give a GGUF file (or --devices)");
    };
    // a regular file only, opened without blocking; the error names the file
    let f = GgufFile::open(&path)?;
    // strings from the file are escaped: control characters must not reach the terminal
    let arch = f.get(GENERAL_ARCHITECTURE).and_then(|v| v.as_str()).unwrap_or("?").to_string();
    println!("file:         {} ({}, GGUF v{})", path.display(), mib(f.file_size() as u64), f.version);
    println!("name:         {}", f.get(GENERAL_NAME).and_then(|v| v.as_str()).unwrap_or("?").escape_debug());
    println!("architecture: {}", arch.escape_debug());
    if arch == VISION_ARCH {
        describe_vision(&f);
    } else {
        describe_llm(&f);
    }
    let mut by_type: BTreeMap<String, (usize, u64, u64)> = BTreeMap::new();
    for t in &f.tensors {
        let e = by_type.entry(GgmlType::name_of_id(t.type_id)).or_default();
        e.0 += 1;
        e.1 += t.n_bytes as u64;
        e.2 = e.2.saturating_add(t.n_elements());
    }
    let params = by_type.values().fold(0u64, |a, v| a.saturating_add(v.2));
    println!("tensors:      {} ({:.3} B parameters)", f.tensors.len(), params as f64 / 1e9);
    for (ty, (n, b, p)) in by_type {
        println!("  {ty:<6} {n:>5} tensors {:>12}  {:.2} bits/weight", mib(b), b as f64 * 8.0 / p.max(1) as f64);
    }
    // what sail, llama.cpp and ggml would refuse or trip over, listed rather than hit
    match validate::any(&f) {
        Ok(()) => {
            println!("validation:   ok");
            Ok(())
        }
        Err(e) => {
            println!("validation:   {} problem{}", e.problems.len() + e.omitted, if e.problems.len() + e.omitted == 1 { "" } else { "s" });
            for p in &e.problems {
                println!("  - {p}");
            }
            if e.omitted > 0 {
                println!("  … and {} more", e.omitted);
            }
            anyhow::bail!("{}: not a usable sail {} file (problems listed above)", path.display(), e.what)
        }
    }
}

fn describe_vision(f: &GgufFile) {
    match VisionHparams::from_gguf(f) {
        Err(e) => println!("vision:       unreadable hyperparameters ({e})"),
        Ok(h) => {
            println!(
            "vision:       SAIL-ViT {} blocks, hidden {}, ffn {}, {} heads, patch {}, tile {}×{} ({} tokens/tile after a {}×{} pixel shuffle {})",
            h.n_layer, h.n_embd, h.n_ff, h.n_head, h.patch_size, h.image_size, h.image_size, h.tokens_per_tile(), h.scale(), h.scale(), h.ps_version.as_str()
        );
            println!(
                "              select_layer {}, rms eps {}, projector → {} (LayerNorm eps {})",
                h.select_layer, h.rms_eps, h.proj_dim, h.proj_ln_eps
            );
            println!(
                "preprocess:   tiles {}..={}, thumbnail {}, mean {:?}, std {:?}",
                h.min_tiles, h.max_tiles, h.use_thumbnail, h.image_mean, h.image_std
            );
        }
    }
}

fn describe_llm(f: &GgufFile) {
    match LlmHparams::from_gguf(f) {
        Err(e) => println!("language:     unreadable hyperparameters ({e})"),
        Ok(h) => {
            println!(
                "language:     {} layers, hidden {}, {} heads / {} kv heads × {}, ffn {}, vocab {}, rope θ {}, ctx {}",
                h.n_layer, h.n_embd, h.n_head, h.n_head_kv, h.head_dim, h.n_ff, h.n_vocab, h.rope_theta, h.n_ctx_train
            );
            if let Some(m) = h.moe {
                println!("moe:          {} experts, {} used per token, expert ffn {}", m.n_expert, m.n_expert_used, m.n_ff_exp);
            }
        }
    }
    for k in [SAIL_TEMPLATE, SAIL_MMPROJ, SAIL_TOKENS_PER_TILE, SAIL_TIED_OUTPUT, TOK_PRE] {
        if let Some(v) = f.get(k) {
            println!("{:<13} {}", format!("{}:", k.trim_start_matches("sail.").trim_start_matches("tokenizer.ggml.")), v.summary());
        }
    }
}
