//! `sail-convert`: the command-line face of the `sail_convert` library.

use anyhow::Result;
use clap::{ArgGroup, Parser, ValueEnum};
use sail_convert::{convert, Options};
use sail_format::quant::{Preset, VisionType};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum VisionArg {
    F32,
    F16,
    #[value(name = "q8_0")]
    Q8_0,
    #[value(name = "q6_k")]
    Q6K,
    #[value(name = "q5_k")]
    Q5K,
    #[value(name = "q4_k")]
    Q4K,
}

/// Convert a Hugging Face SAIL-VL2 checkpoint (bf16/f16/f32 safetensors, one file or shards)
/// into the two GGUF files sail runs: NAME.gguf (the language model, in llama.cpp's qwen3 /
/// qwen3moe layout with the full tokenizer) and NAME.mmproj.gguf (SAIL-ViT and the projector).
///
/// Weights are read memory-mapped one tensor at a time; outputs are written under temporary
/// names and only appear when both are complete.
#[derive(Debug, Parser)]
#[command(name = "sail-convert", version, group(ArgGroup::new("type").args(["f32", "f16", "bf16", "q8_0", "q6_k", "q5_k", "q4_k", "q4_0"])))]
#[command(
    after_help = "Examples:\n  sail-convert ./SAIL-VL2-2B -o sail-2b.gguf --q4_k\n  sail-convert ./SAIL-VL2-2B -o sail-2b-f16.gguf --f16 --vision-type f16\n\nThe language model type defaults to f16. --q4_k / --q5_k are llama.cpp-style \"M\" mixes:\nembedding and output head, and some attn_v / ffn_down layers, get Q6_K. Norms, biases, the\nposition embedding and the MoE router always stay f32. A tensor whose rows do not fit a\ntype's block size falls back to the closest type that does, and the summary lists it."
)]
struct Args {
    /// Hugging Face checkpoint folder (config.json, preprocessor_config.json, tokenizer.json,
    /// model.safetensors or model-*.safetensors + model.safetensors.index.json).
    input: PathBuf,
    /// Output language-model file, NAME.gguf; the vision file is written beside it as
    /// NAME.mmproj.gguf.
    #[arg(short = 'o', long = "output")]
    output: PathBuf,
    /// Language model in f32.
    #[arg(long)]
    f32: bool,
    /// Language model in f16 (the default).
    #[arg(long)]
    f16: bool,
    /// Language model in bf16.
    #[arg(long)]
    bf16: bool,
    /// Language model in Q8_0.
    #[arg(long = "q8_0")]
    q8_0: bool,
    /// Language model in Q6_K.
    #[arg(long = "q6_k")]
    q6_k: bool,
    /// Language model as a Q5_K_M-style mix.
    #[arg(long = "q5_k")]
    q5_k: bool,
    /// Language model as a Q4_K_M-style mix.
    #[arg(long = "q4_k")]
    q4_k: bool,
    /// Language model in Q4_0 (embedding and output head Q6_K).
    #[arg(long = "q4_0")]
    q4_0: bool,
    /// Type of the vision tower and projector matrices [default: f16, or f32 with --f32].
    #[arg(long = "vision-type", value_enum)]
    vision_type: Option<VisionArg>,
    /// Quantization threads, 1..=1024 [default: all cores].
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=1024))]
    threads: u16,
    /// No progress bar.
    #[arg(long, short = 'q')]
    quiet: bool,
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sail-convert: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let a = Args::parse();
    let preset = [
        (a.f32, Preset::F32),
        (a.f16, Preset::F16),
        (a.bf16, Preset::BF16),
        (a.q8_0, Preset::Q8_0),
        (a.q6_k, Preset::Q6K),
        (a.q5_k, Preset::Q5K),
        (a.q4_k, Preset::Q4K),
        (a.q4_0, Preset::Q4_0),
    ]
    .into_iter()
    .find_map(|(on, p)| on.then_some(p))
    .unwrap_or(Preset::F16);
    let vision_type = match a.vision_type {
        Some(VisionArg::F32) => VisionType::F32,
        Some(VisionArg::F16) => VisionType::F16,
        Some(VisionArg::Q8_0) => VisionType::Q8_0,
        Some(VisionArg::Q6K) => VisionType::Q6K,
        Some(VisionArg::Q5K) => VisionType::Q5K,
        Some(VisionArg::Q4K) => VisionType::Q4K,
        None if preset == Preset::F32 => VisionType::F32,
        None => VisionType::F16,
    };
    let cancel = Arc::new(AtomicBool::new(false));
    {
        let c = cancel.clone();
        // A second Ctrl-C exits at once; the first lets the converter clean up.
        let _ = ctrlc::set_handler(move || {
            if c.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
        });
    }
    let opts = Options { input: a.input, output: a.output, preset, vision_type, threads: a.threads as usize, progress: !a.quiet };
    eprintln!(
        "sail-convert: {} → {} (language {}, vision {})",
        opts.input.display(),
        opts.output.display(),
        preset.flag(),
        vision_type.ggml()
    );
    let report = convert(&opts, &cancel).map_err(|e| {
        if matches!(e, sail_convert::ConvertError::Interrupted) {
            eprintln!("sail-convert: interrupted; no output was kept");
            std::process::exit(130);
        }
        anyhow::Error::new(e)
    })?;
    eprint!("{}", report.summary());
    Ok(())
}
