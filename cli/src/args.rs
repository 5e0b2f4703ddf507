//! Options shared by the subcommands: how a model is loaded and how tokens are sampled.

use anyhow::{bail, Context as _, Result};
use clap::{Args, ValueEnum};
use sail::cache::CacheParams;
use sail::ggml::rpc::Endpoint;
use sail::ggml::{SamplerError, SamplerParams, MAX_THREADS};
use sail::session::{default_threads, GenerateParams, Model, ModelParams, PreparedImage, SailError, SessionParams};
use sail::vision::decode::{ImageLimits, DEFAULT_MAX_PIXELS};
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
    /// Language-model layers to put on the offload devices: the --rpc servers' and the GPU
    /// --backend's (-1: all) [default: 0; -1 with --rpc].
    #[arg(long = "gpu-layers", allow_negative_numbers = true)]
    pub(crate) gpu_layers: Option<i32>,
    /// RPC servers (`sail rpc-server`) whose devices join this machine's, HOST:PORT[,...]. Their
    /// devices are named RPC0, RPC1, … in this order (`sail info --devices --rpc ...`).
    #[arg(long, value_delimiter = ',', value_parser = parse_endpoint)]
    pub(crate) rpc: Vec<Endpoint>,
    /// Share of the offloaded layers per offload device, in order: the --rpc devices, then the
    /// GPU --backend (e.g. 1,3) [default: by free memory].
    #[arg(long = "tensor-split", value_delimiter = ',', allow_negative_numbers = true)]
    pub(crate) tensor_split: Vec<f32>,
    /// Device for the vision encoder, named as `sail info --devices` lists it (CPU, Vulkan0,
    /// RPC0, …) [default: the GPU --backend, else CPU].
    #[arg(long = "vision-device", conflicts_with = "vision_cpu")]
    pub(crate) vision_device: Option<String>,
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
    /// Keep image embeddings (projector rows) in this folder too, so a later run asking about the
    /// same image skips decoding and encoding it.
    #[arg(long = "cache-dir")]
    pub(crate) cache_dir: Option<PathBuf>,
    /// Size cap of --cache-dir in MiB; least recently used entries are removed beyond it.
    #[arg(long = "cache-size", default_value_t = sail::cache::DEFAULT_DISK_BYTES >> 20)]
    pub(crate) cache_size: u64,
    /// Size cap of the in-memory image embedding cache in MiB (0: off).
    #[arg(long = "cache-mem", default_value_t = (sail::cache::DEFAULT_MEMORY_BYTES >> 20) as u64)]
    pub(crate) cache_mem: u64,
    /// Serve every weight from the file mapping (page cache) instead of repacking quantized
    /// language weights into anonymous memory: less memory and a faster load, slower decode.
    #[arg(long = "no-repack")]
    pub(crate) no_repack: bool,
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
        if !self.model.exists() {
            bail!("{}: no such model file", self.model.display());
        }
        if let Some(m) = &self.mmproj {
            if !m.exists() {
                bail!("{}: no such vision file (--mmproj)", m.display());
            }
        }
        let remote = connect_rpc(&self.rpc)?;
        let local_gpu = match self.backend {
            BackendArg::Cpu => None,
            BackendArg::Vulkan | BackendArg::Cuda => Some(gpu_device(self.backend)?),
        };
        let vision_device = match &self.vision_device {
            Some(d) => Some(device_named(d, "--vision-device")?),
            None if self.vision_cpu => None,
            None => local_gpu.clone(),
        };
        // Without --rpc, llama.cpp picks the GPU devices itself, as before; with it, the layer
        // order is explicit: remote devices first, then the local GPU (which gets the output).
        let offload: Vec<String> = remote.iter().cloned().chain(local_gpu.clone()).collect();
        let llm_devices = (!self.rpc.is_empty() || !self.tensor_split.is_empty()).then(|| offload.clone());
        if !self.tensor_split.is_empty() && self.tensor_split.len() != offload.len() {
            bail!(
                "--tensor-split has {} shares but there are {} offload devices ({}): one share per device",
                self.tensor_split.len(),
                offload.len(),
                if offload.is_empty() { "none without --rpc or a GPU --backend".to_string() } else { offload.join(", ") }
            );
        }
        let n_gpu_layers = match self.gpu_layers {
            _ if offload.is_empty() => 0,
            Some(n) => n,
            None if !self.rpc.is_empty() => -1,
            None => 0,
        };
        let image_cache = CacheParams {
            memory_bytes: usize::try_from(self.cache_mem.saturating_mul(1 << 20)).unwrap_or(usize::MAX),
            dir: self.cache_dir.clone(),
            disk_bytes: self.cache_size.saturating_mul(1 << 20),
        };
        let p = ModelParams {
            mmproj: self.mmproj.clone(),
            n_threads: self.threads(),
            vision_device,
            n_gpu_layers,
            rpc: self.rpc.clone(),
            llm_devices,
            tensor_split: self.tensor_split.clone(),
            repack: !self.no_repack,
            image_cache,
            ..Default::default()
        };
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

pub(crate) fn parse_endpoint(s: &str) -> Result<Endpoint, String> {
    s.parse().map_err(|e: sail::ggml::rpc::RpcError| e.to_string())
}

/// Registers the RPC servers' devices (each checked with the protocol's hello first) and
/// returns their names in order. From here on a broken connection ends the process with a
/// message naming the server: ggml's RPC client has no way to report it as an error.
pub(crate) fn connect_rpc(servers: &[Endpoint]) -> Result<Vec<String>> {
    if servers.is_empty() {
        return Ok(Vec::new());
    }
    sail::ggml::rpc::exit_on_rpc_failure("sail: error: ");
    let mut names = Vec::new();
    for ep in servers {
        names.extend(sail::ggml::rpc::add_server(ep).context("--rpc")?);
    }
    Ok(names)
}

/// `name` if ggml has a device called that (case as ggml lists it), or a clear error.
fn device_named(name: &str, flag: &str) -> Result<String> {
    let devs = sail::ggml::devices();
    match devs.iter().find(|d| d.name.eq_ignore_ascii_case(name)) {
        Some(d) => Ok(d.name.clone()),
        None => bail!(
            "{flag} {name}: no such device (this process sees: {}; remote devices appear with --rpc)",
            devs.iter().map(|d| d.name.as_str()).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// The first device of the asked-for GPU backend, or a clear error.
fn gpu_device(b: BackendArg) -> Result<String> {
    Ok(backend_devices(b)?.swap_remove(0))
}

/// Every device of the asked-for backend, or a clear error.
pub(crate) fn backend_devices(b: BackendArg) -> Result<Vec<String>> {
    let want = match b {
        BackendArg::Vulkan => "Vulkan",
        BackendArg::Cuda => "CUDA",
        BackendArg::Cpu => return Ok(vec!["CPU".into()]),
    };
    let devs = sail::ggml::devices();
    let found: Vec<String> = devs.iter().filter(|d| d.name.starts_with(want)).map(|d| d.name.clone()).collect();
    match found.is_empty() {
        false => Ok(found),
        true => bail!(
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
