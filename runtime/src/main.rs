//! `sail`: the on-device command line over the `sail` library (run, chat, bench, info).

use anyhow::{bail, Context as _, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use sail::ggml::SamplerParams;
use sail::session::{GenerateParams, Generation, Model, ModelParams, PreparedImage, Session, SessionParams, StopReason};
use sail::vision::preprocess::DEFAULT_MAX_PIXELS;
use serde_json::json;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

mod bench;
mod info;

/// Run SAIL-VL2 vision-language models on this machine.
#[derive(Debug, Parser)]
#[command(name = "sail", version, after_help = "Convert a Hugging Face checkpoint first:\n  sail-convert ./SAIL-VL2-2B -o sail-2b.gguf --q4_k\nthen:\n  sail run -m sail-2b.gguf --image photo.jpg -p \"Describe this image.\"")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Answer one prompt (with images or video frames), streaming the answer to stdout.
    Run(RunArgs),
    /// Interactive multi-turn chat; `/image PATH` attaches an image to the next question.
    Chat(ChatArgs),
    /// Measure load time, vision ms/tile, prefill and decode speed and peak memory.
    Bench(bench::BenchArgs),
    /// Describe a sail GGUF file (architecture, hyperparameters, tensor types, sizes).
    Info(info::InfoArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum BackendArg {
    Cpu,
    Vulkan,
    Cuda,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq)]
enum KvType {
    Auto,
    F16,
    F32,
}

/// Model loading options shared by the subcommands.
#[derive(Debug, Args)]
pub(crate) struct ModelArgs {
    /// Language model file NAME.gguf (its vision file NAME.mmproj.gguf is found beside it).
    #[arg(short = 'm', long = "model")]
    model: PathBuf,
    /// Vision file, if not the one named in the language file.
    #[arg(long)]
    mmproj: Option<PathBuf>,
    /// CPU threads [default: all cores].
    #[arg(short = 't', long)]
    threads: Option<usize>,
    /// Compute backend.
    #[arg(long, value_enum, default_value = "cpu")]
    backend: BackendArg,
    /// Language-model layers to put on the GPU backend (-1: all).
    #[arg(long = "gpu-layers", default_value_t = 0, allow_negative_numbers = true)]
    gpu_layers: i32,
    /// Keep the vision encoder on the CPU even with a GPU --backend.
    #[arg(long = "vision-cpu")]
    vision_cpu: bool,
    /// Maximum image tiles per image [default: the model's max_dynamic_patch].
    #[arg(long = "max-tiles")]
    max_tiles: Option<u32>,
    /// Refuse images with more pixels than this (checked before decoding).
    #[arg(long = "max-pixels", default_value_t = DEFAULT_MAX_PIXELS)]
    max_pixels: u64,
    /// KV cache type [default: f32 for an f32 model file, else f16].
    #[arg(long = "kv-type", value_enum, default_value = "auto")]
    kv_type: KvType,
    /// Print llama.cpp's and ggml's log to stderr.
    #[arg(long)]
    verbose: bool,
}

impl ModelArgs {
    pub(crate) fn threads(&self) -> usize {
        self.threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(4))
    }

    pub(crate) fn load(&self) -> Result<Arc<Model>> {
        sail::ggml::llama_init(self.verbose);
        let vision_device = match self.backend {
            BackendArg::Cpu => None,
            BackendArg::Vulkan | BackendArg::Cuda => {
                let d = gpu_device(self.backend)?;
                (!self.vision_cpu).then_some(d)
            }
        };
        let n_gpu_layers = if matches!(self.backend, BackendArg::Cpu) { 0 } else { self.gpu_layers };
        let p = ModelParams { mmproj: self.mmproj.clone(), n_threads: self.threads(), vision_device, n_gpu_layers, ..Default::default() };
        if !self.model.exists() {
            bail!("{}: no such model file", self.model.display());
        }
        if let Some(m) = &self.mmproj {
            if !m.exists() {
                bail!("{}: no such vision file (--mmproj)", m.display());
            }
        }
        Ok(Arc::new(Model::load(&self.model, &p).with_context(|| format!("loading {}", self.model.display()))?))
    }

    pub(crate) fn session_params(&self, model: &Model, n_ctx: Option<u32>, system: Option<String>) -> SessionParams {
        let kv_f32 = match self.kv_type {
            KvType::F32 => true,
            KvType::F16 => false,
            KvType::Auto => model.info.f32_weights,
        };
        SessionParams { n_ctx: n_ctx.unwrap_or(0), n_batch: 512, n_threads: self.threads(), kv_f32, system }
    }
}

/// The first device of the asked-for GPU backend, or a clear error.
fn gpu_device(b: BackendArg) -> Result<String> {
    let want = match b {
        BackendArg::Vulkan => "Vulkan",
        BackendArg::Cuda => "CUDA",
        BackendArg::Cpu => return Ok("CPU".into()),
    };
    let devs = sail::ggml::devices();
    match devs.iter().find(|d| d.name.starts_with(want)) {
        Some(d) => Ok(d.name.clone()),
        None => bail!(
            "--backend {}: no {want} device (this build sees: {}). Build with `--features {}` and check the driver, or use --backend cpu",
            want.to_lowercase(),
            devs.iter().map(|d| d.name.as_str()).collect::<Vec<_>>().join(", "),
            want.to_lowercase()
        ),
    }
}

#[derive(Debug, Args)]
struct SamplingArgs {
    /// Tokens to generate at most.
    #[arg(short = 'n', long = "n-predict", default_value_t = 512)]
    n_predict: usize,
    /// Temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    temp: f32,
    /// Top-k (0: off).
    #[arg(long = "top-k", default_value_t = 0, allow_negative_numbers = true)]
    top_k: i32,
    /// Top-p (1: off).
    #[arg(long = "top-p", default_value_t = 1.0, allow_negative_numbers = true)]
    top_p: f32,
    /// Min-p (0: off).
    #[arg(long = "min-p", default_value_t = 0.0, allow_negative_numbers = true)]
    min_p: f32,
    /// Repetition penalty (1: off).
    #[arg(long = "repeat-penalty", default_value_t = 1.0, allow_negative_numbers = true)]
    repeat_penalty: f32,
    /// Sampling seed.
    #[arg(long, default_value_t = 0)]
    seed: u32,
    /// Keep generating past <|im_end|> until -n tokens.
    #[arg(long = "ignore-eos")]
    ignore_eos: bool,
}

impl SamplingArgs {
    fn params(&self, think: bool) -> GenerateParams {
        GenerateParams {
            n_predict: self.n_predict,
            sampler: SamplerParams {
                temperature: self.temp,
                top_k: self.top_k,
                top_p: self.top_p,
                min_p: self.min_p,
                repeat_penalty: self.repeat_penalty,
                repeat_last_n: 64,
                seed: self.seed,
            },
            ignore_eos: self.ignore_eos,
            think,
        }
    }
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Image file (repeatable: several images in one question).
    #[arg(long = "image")]
    images: Vec<PathBuf>,
    /// Video frames: a folder of images or image files; one tile each, sampled uniformly.
    #[arg(long = "frames", num_args = 1..)]
    frames: Vec<PathBuf>,
    /// Frames sampled from --frames.
    #[arg(long = "n-frames", default_value_t = 16)]
    n_frames: usize,
    /// The question.
    #[arg(short = 'p', long = "prompt")]
    prompt: String,
    /// System prompt [default: the model's].
    #[arg(long)]
    system: Option<String>,
    /// Ask for reasoning in <think>…</think> (Thinking variants); --json separates it.
    #[arg(long)]
    think: bool,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// Context positions [default: what the prompt and -n need].
    #[arg(long = "ctx")]
    ctx: Option<u32>,
    /// Print one JSON object at the end instead of streaming text.
    #[arg(long)]
    json: bool,
    /// Write the projector output (f32 [image_tokens, n_embd]) as .npy.
    #[arg(long = "embeddings-out")]
    embeddings_out: Option<PathBuf>,
    /// Write the logits at the last prompt position (f32 [n_vocab]) as .npy.
    #[arg(long = "logits-out")]
    logits_out: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ChatArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[arg(long)]
    system: Option<String>,
    #[arg(long)]
    think: bool,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// Context positions for the whole conversation.
    #[arg(long = "ctx", default_value_t = 8192)]
    ctx: u32,
}

static STOP: AtomicBool = AtomicBool::new(false);

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let _ = ctrlc::set_handler(|| {
        if STOP.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
    });
    let r = match cli.cmd {
        Cmd::Run(a) => run(a),
        Cmd::Chat(a) => chat(a),
        Cmd::Bench(a) => bench::bench(a),
        Cmd::Info(a) => info::info(a),
    };
    match r {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sail: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

const IMAGE_EXTS: &[&str] = &["jpg", "jpeg", "png", "webp", "bmp", "gif"];

/// Frames from folders and files, in name order, `n` sampled at segment midpoints.
fn frame_list(inputs: &[PathBuf], n: usize) -> Result<Vec<PathBuf>> {
    let mut all = Vec::new();
    for p in inputs {
        if p.is_dir() {
            let mut v: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("{}: cannot list frames", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().and_then(|e| e.to_str()).is_some_and(|e| IMAGE_EXTS.contains(&e.to_ascii_lowercase().as_str())))
                .collect();
            v.sort();
            all.extend(v);
        } else {
            all.push(p.clone());
        }
    }
    if all.is_empty() {
        bail!("--frames: no image files in {}", inputs.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "));
    }
    if n == 0 || all.len() <= n {
        return Ok(all);
    }
    Ok((0..n).map(|i| all[((i as f64 + 0.5) * all.len() as f64 / n as f64) as usize].clone()).collect())
}

fn prepare(model: &Model, a: &ModelArgs, path: &Path, max_tiles: Option<u32>) -> Result<PreparedImage> {
    Ok(model.prepare_image_file(path, max_tiles.or(a.max_tiles), a.max_pixels)?)
}

fn run(a: RunArgs) -> Result<()> {
    let gp = a.sampling.params(a.think);
    gp.sampler.validate().map_err(|e| anyhow::anyhow!("invalid sampling parameters: {e}"))?;
    for p in a.images.iter() {
        if !p.exists() {
            bail!("{}: no such image file", p.display());
        }
    }
    let model = a.model.load()?;
    let mut session = Session::new(model.clone(), a.model.session_params(&model, a.ctx, a.system.clone()));
    for p in &a.images {
        session.add_image(prepare(&model, &a.model, p, None)?)?;
    }
    let mut prompt = a.prompt.clone();
    if !a.frames.is_empty() {
        let frames = frame_list(&a.frames, a.n_frames)?;
        let mut head = String::new();
        for (i, f) in frames.iter().enumerate() {
            session.add_image(prepare(&model, &a.model, f, Some(1))?)?;
            head.push_str(&format!("Frame-{}: <image>\n", i + 1));
        }
        if !a.images.is_empty() {
            bail!("--frames and --image cannot be combined");
        }
        prompt = head + &prompt;
    }
    let stream = !a.json;
    let mut out = std::io::stdout().lock();
    let g = session.generate(&prompt, &gp, |_, piece| {
        if stream {
            let _ = out.write_all(piece.as_bytes());
            let _ = out.flush();
        }
        !STOP.load(Ordering::Relaxed)
    })?;
    if stream {
        let _ = writeln!(out);
    }
    drop(out);
    write_dumps(&a, &g, &model)?;
    if a.json {
        println!("{}", serde_json::to_string(&result_json(&g, a.think))?);
    } else if g.stop == StopReason::Callback {
        eprintln!("sail: stopped");
    }
    Ok(())
}

fn write_dumps(a: &RunArgs, g: &Generation, model: &Model) -> Result<()> {
    if let Some(p) = &a.embeddings_out {
        let d = model.llm.n_embd_inp();
        sail::npy::write_f32(p, &[g.embeddings.len() / d.max(1), d], &g.embeddings).with_context(|| format!("writing {}", p.display()))?;
    }
    if let Some(p) = &a.logits_out {
        sail::npy::write_f32(p, &[g.prompt_logits.len()], &g.prompt_logits).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}

fn result_json(g: &Generation, think: bool) -> serde_json::Value {
    let t = &g.timings;
    let mut v = json!({
        "tokens": g.tokens,
        "text": g.text,
        "prompt_tokens": g.prompt_token_ids.len(),
        "prompt_token_ids": g.prompt_token_ids,
        "image_tokens": g.image_tokens,
        "tiles": g.tiles,
        "stop": match g.stop { StopReason::Eos => "eos", StopReason::Length => "length", StopReason::Callback => "interrupted" },
        "timings": {
            "load": t.load_ms, "vision": t.vision_ms, "prefill": t.prefill_ms, "decode": t.decode_ms,
            "prefill_tok_s": t.prefill_tok_s(), "decode_tok_s": t.decode_tok_s(),
        },
    });
    if think {
        let (reasoning, answer) = g.split_thinking();
        v["reasoning"] = json!(reasoning);
        v["answer"] = json!(answer);
    }
    v
}

fn chat(a: ChatArgs) -> Result<()> {
    let gp = a.sampling.params(a.think);
    gp.sampler.validate().map_err(|e| anyhow::anyhow!("invalid sampling parameters: {e}"))?;
    let model = a.model.load()?;
    let mut session = Session::new(model.clone(), a.model.session_params(&model, Some(a.ctx), a.system.clone()));
    eprintln!("sail chat: type a question; /image PATH attaches an image, /reset forgets, /exit quits.");
    let stdin = std::io::stdin();
    let mut line = String::new();
    loop {
        eprint!("> ");
        line.clear();
        if stdin.lock().read_line(&mut line)? == 0 {
            break;
        }
        let q = line.trim();
        if q.is_empty() {
            continue;
        }
        if q == "/exit" || q == "/quit" {
            break;
        }
        if q == "/reset" {
            session.reset();
            eprintln!("(conversation cleared)");
            continue;
        }
        if let Some(p) = q.strip_prefix("/image") {
            match prepare(&model, &a.model, Path::new(p.trim()), None).and_then(|img| {
                let t = img.tiles;
                session.add_image(img)?;
                Ok(t)
            }) {
                Ok(t) => eprintln!("(image attached: {t} tiles)"),
                Err(e) => eprintln!("sail: {e:#}"),
            }
            continue;
        }
        STOP.store(false, Ordering::SeqCst);
        let mut out = std::io::stdout().lock();
        let r = session.generate(q, &gp, |_, piece| {
            let _ = out.write_all(piece.as_bytes());
            let _ = out.flush();
            !STOP.load(Ordering::Relaxed)
        });
        let _ = writeln!(out);
        match r {
            Ok(g) => eprintln!(
                "({} tokens, {:.1} tok/s; context {}/{})",
                g.tokens.len(),
                g.timings.decode_tok_s(),
                session.n_past(),
                a.ctx
            ),
            Err(e) => eprintln!("sail: {e:#}"),
        }
    }
    Ok(())
}
