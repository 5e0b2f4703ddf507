//! `sail-gen`: command-line front end of the `sail_gen` library (checkpoints and test images),
//! so that fixtures can be rebuilt by hand exactly as the tests rebuild them, and their outputs
//! compared where no Rust toolchain or numpy is installed.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "sail-gen",
    version,
    about = "Deterministic SAIL-VL2 test checkpoints and images (a byte-identical port of gen_ckpt.py / gen_image.py)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once
enum Cmd {
    /// Write a random SAIL-VL2 checkpoint in the Hugging Face layout (gen_ckpt.py's flags)
    #[command(
        infer_long_args = true,
        args_override_self = true,
        long_about = "Write a random SAIL-VL2 checkpoint in the exact Hugging Face layout: config.json, \
preprocessor_config.json, generation_config.json, model.safetensors (or shards + index) and the tokenizer files.\n\n\
Without --preset (or with --preset tiny / tiny-moe) the flags are gen_ckpt.py's, with its defaults, and the \
output is byte-identical to `python gen_ckpt.py` with the same flags. The full-size presets 2b, 8b and moe \
take the layout of the repository's assets/SAIL-VL2-2B (8b and moe with the LLM sizes of the spec) and stream the \
weights (memory: a few 32 MB batches), bf16 by default.\n\n\
Every tensor's values depend only on --seed, its name, shape and --dtype. A JSON summary (argv, sizes, \
sha256 of every file in --out) is printed on stdout.",
        after_help = "Examples:\n  sail-gen ckpt --out /tmp/ck --dtype bfloat16 --vocab-size 151936\n  \
sail-gen ckpt --out /tmp/ck-moe --variant moe --num-experts 8 --top-k 2 --shards 2 --select-layer -2\n  \
sail-gen ckpt --out /tmp/sail-2b --preset 2b"
    )]
    Ckpt(sail_gen::ckpt::CkptFlags),
    /// Write a deterministic RGB test picture as PNG (gen_image.py); prints its sha256
    Image {
        /// Width in pixels
        #[arg(long)]
        width: usize,
        /// Height in pixels
        #[arg(long)]
        height: usize,
        /// Noise seed
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output PNG file
        #[arg(long, value_name = "FILE.png")]
        out: PathBuf,
    },
    /// Compare two f32 .npy files (NMSE, max relative error, argmax) and print JSON
    #[command(long_about = "Compare two little-endian f32 .npy files of the same shape and print one JSON object: \
nmse = Σ(got−ref)²/Σref², max_rel = max|got−ref|/max|ref|, max_abs, the argmax of each and the count of \
non-finite values in GOT. The measures of sail's parity tests, for machines without Rust or numpy.")]
    Compare {
        /// The array under test
        #[arg(value_name = "GOT.npy")]
        got: PathBuf,
        /// The reference array
        #[arg(value_name = "REF.npy")]
        reference: PathBuf,
    },
}

fn main() {
    // Printed by hand: anyhow's Debug output would add a backtrace whenever RUST_BACKTRACE is set.
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.cmd {
        Cmd::Ckpt(flags) => {
            if flags.out.is_none() {
                anyhow::bail!("--out DIR is required");
            }
            let args = flags.resolve()?;
            let start = std::time::Instant::now();
            let summary = sail_gen::generate(&args).with_context(|| format!("generating into {}", args.out.display()))?;
            if args.progress {
                eprintln!("sail-gen: done in {:.1} s", start.elapsed().as_secs_f64());
            }
            println!("{}", summary.to_json_string());
        }
        Cmd::Image { width, height, seed, out } => {
            let sha = sail_gen::write_png(&out, width, height, seed)?;
            println!("{sha}");
        }
        Cmd::Compare { got, reference } => {
            let c = sail_gen::compare::compare(&got, &reference)?;
            println!("{}", serde_json::to_string(&c)?);
        }
    }
    Ok(())
}
