//! Options shared by the subcommands: how a model is loaded and how tokens are sampled.

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use sail::ggml::{SamplerError, SamplerParams, MAX_THREADS};
use sail::session::{default_threads, GenerateParams, Model, ModelParams, PreparedImage, SailError, SessionParams};
use sail::vision::preprocess::{ImageLimits, DEFAULT_MAX_PIXELS};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum BackendArg {
    Cpu,
    Vulkan,
    Cuda,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq)]
pub(crate) enum KvType {
    Auto,
    F16,
    F32,
}

/// Model loading options shared by the subcommands.
#[derive(Debug, Args)]
pub(crate) struct ModelArgs {
    /// Language model file NAME.gguf (its vision file NAME.mmproj.gguf is found beside it).
    #[arg(short = 'm', long = "model")]
    pub(crate) model: PathBuf,
    /// Vision file, if not the one named in the language file.
    #[arg(long)]
    pub(crate) mmproj: Option<PathBuf>,
    /// CPU threads, 1..=512 (ggml's limit) [default: all cores].
    #[arg(short = 't', long, value_parser = parse_threads)]
    pub(crate) threads: Option<usize>,
    /// Compute backend.
    #[arg(long, value_enum, default_value = "cpu")]
    pub(crate) backend: BackendArg,
    /// Language-model layers to put on the GPU backend (-1: all).
    #[arg(long = "gpu-layers", default_value_t = 0, allow_negative_numbers = true)]
    pub(crate) gpu_layers: i32,
    /// Keep the vision encoder on the CPU even with a GPU --backend.
    #[arg(long = "vision-cpu")]
    pub(crate) vision_cpu: bool,
    /// Maximum image tiles per image [default: the model's max_dynamic_patch].
    #[arg(long = "max-tiles")]
    pub(crate) max_tiles: Option<u32>,
    /// Refuse images with more pixels than this (checked before decoding).
    #[arg(long = "max-pixels", default_value_t = DEFAULT_MAX_PIXELS)]
    pub(crate) max_pixels: u64,
    /// KV cache type [default: f32 for an f32 model file, else f16].
    #[arg(long = "kv-type", value_enum, default_value = "auto")]
    pub(crate) kv_type: KvType,
    /// Parse special tokens in the prompt and system text (the reference's behaviour): then
    /// `<|im_end|>` typed in a prompt ends the turn. Off by default: text stays text.
    #[arg(long)]
    pub(crate) special: bool,
    /// Print llama.cpp's and ggml's log to stderr.
    #[arg(long)]
    pub(crate) verbose: bool,
}

/// `--threads`: 1..=MAX_THREADS. ggml's thread tables have MAX_THREADS slots; above that it
/// fails inside (an abort, or a crash at INT32_MAX).
fn parse_threads(s: &str) -> Result<usize, String> {
    match s.parse::<u64>() {
        Ok(n) if (1..=MAX_THREADS as u64).contains(&n) => Ok(n as usize),
        _ => Err(format!("expected a thread count in 1..={MAX_THREADS} (ggml's limit)")),
    }
}

impl ModelArgs {
    /// The image budget from `--max-pixels`, handed to the decoder and the tiler alike.
    pub(crate) fn limits(&self) -> ImageLimits {
        ImageLimits { max_pixels: self.max_pixels }
    }

    pub(crate) fn threads(&self) -> usize {
        self.threads.unwrap_or_else(default_threads)
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
        // every load error names its file already
        Ok(Arc::new(Model::load(&self.model, &p)?))
    }

    pub(crate) fn session_params(&self, model: &Model, n_ctx: Option<u32>, system: Option<String>) -> SessionParams {
        let kv_f32 = match self.kv_type {
            KvType::F32 => true,
            KvType::F16 => false,
            KvType::Auto => model.info.f32_weights,
        };
        SessionParams { n_ctx: n_ctx.unwrap_or(0), n_batch: 512, n_threads: self.threads(), kv_f32, system, parse_special: self.special }
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
pub(crate) struct SamplingArgs {
    /// Tokens to generate at most.
    #[arg(short = 'n', long = "n-predict", default_value_t = 512)]
    pub(crate) n_predict: usize,
    /// Temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub(crate) temp: f32,
    /// Top-k (0: off).
    #[arg(long = "top-k", default_value_t = 0, allow_negative_numbers = true)]
    pub(crate) top_k: i32,
    /// Top-p (1: off).
    #[arg(long = "top-p", default_value_t = 1.0, allow_negative_numbers = true)]
    pub(crate) top_p: f32,
    /// Min-p (0: off).
    #[arg(long = "min-p", default_value_t = 0.0, allow_negative_numbers = true)]
    pub(crate) min_p: f32,
    /// Repetition penalty (1: off).
    #[arg(long = "repeat-penalty", default_value_t = 1.0, allow_negative_numbers = true)]
    pub(crate) repeat_penalty: f32,
    /// Sampling seed.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u32,
    /// Keep generating past <|im_end|> until -n tokens.
    #[arg(long = "ignore-eos")]
    pub(crate) ignore_eos: bool,
}

/// The command-line flag behind a sampling value the library refused.
fn sampler_flag(e: &SamplerError) -> String {
    match e {
        SamplerError::Temperature(v) => format!("--temp {v} must be ≥ 0"),
        SamplerError::TopK(v) => format!("--top-k {v} must be ≥ 0"),
        SamplerError::TopP(v) => format!("--top-p {v} must be in (0, 1]"),
        SamplerError::MinP(v) => format!("--min-p {v} must be in [0, 1]"),
        SamplerError::RepeatPenalty(v) => format!("--repeat-penalty {v} must be > 0"),
        SamplerError::RepeatLastN(v) => format!("the repetition window {v} must be in 0..={}", SamplerParams::MAX_REPEAT_LAST_N),
    }
}

impl SamplingArgs {
    /// The generation parameters, with sampling values checked and errors named by flag.
    pub(crate) fn checked(&self, think: bool) -> Result<GenerateParams> {
        let gp = self.params(think);
        gp.sampler.validate().map_err(|e| anyhow::anyhow!("invalid sampling parameters: {}", sampler_flag(&e)))?;
        Ok(gp)
    }

    pub(crate) fn params(&self, think: bool) -> GenerateParams {
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

/// `-n` against the context before any image is decoded; the session checks the exact sum
/// (prompt + images + `-n`) before any compute.
pub(crate) fn check_n_predict(n_predict: usize, ctx: Option<u32>, model: &Model) -> Result<()> {
    let train = model.info.hp.n_ctx_train;
    let (limit, why) = match ctx {
        Some(c) if c < train => (c, "--ctx"),
        _ => (train, "the model's training context"),
    };
    if n_predict >= limit as usize {
        bail!("-n {n_predict} asks for more tokens than the context allows ({limit} positions: {why}); use a smaller -n");
    }
    Ok(())
}

/// Decodes and tiles one image file under the `--max-pixels` budget.
pub(crate) fn prepare(model: &Model, a: &ModelArgs, path: &Path, max_tiles: Option<u32>) -> Result<PreparedImage, SailError> {
    model.prepare_image_file(path, max_tiles.or(a.max_tiles), a.limits())
}
