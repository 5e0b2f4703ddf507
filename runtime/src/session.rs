//! The library API: load a model pair, open a session, add images, generate.
//!
//! A [`Model`] (language model in llama.cpp + vision encoder on ggml) is immutable and shared
//! (`Arc`) between sessions; a [`Session`] owns a KV cache and is used by one thread at a time.
//! Prompt tokens and image rows go into llama.cpp in prompt order with continuous positions:
//! text runs as token batches, each image span as an embedding batch at its `<IMG_CONTEXT>`
//! positions. Everything that can be checked (files, hidden sizes, context room, sampler
//! values) is checked before any compute.
//!
//! A session remembers what its KV cache holds (token ids, and an identity per image span), so
//! a new conversation that starts like the cached one — the same system prompt, the same
//! earlier turns, the same images — only computes what differs: the server sends each request's
//! whole history, and this is what keeps that cheap.

use crate::cache::{CacheError, CacheParams, CachedImage, EncoderId, Hit, ImageCache, ImageKey, ImageSource, RowShape};
use crate::text::{Media, Message, Part, Prompt, PromptBuilder, PromptError};
use crate::vision::decode::{load_image, load_image_from_memory_named, DecodedImage, ImageLimits, PreprocessError};
use crate::vision::encoder::{EncoderParams, VisionEncoder, VisionError};
use crate::vision::tiling::{PreprocessConfig, MAX_TILES_LIMIT};
use crate::vision::{decode, preprocess};
use sail_format::gguf::{GgufError, GgufFile};
use sail_format::keys::*;
use sail_format::template as tpl;
use sail_format::{validate, HparamsError, LlmHparams, ValidationError};
use sail_ggml::rpc::{Endpoint, RpcError};
use sail_ggml::{ContextParams, LlamaContext, LlamaError, LlamaModel, Sampler, SamplerError, SamplerParams, MAX_THREADS};
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum SailError {
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error(transparent)]
    Hparams(#[from] HparamsError),
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error(transparent)]
    Vision(#[from] VisionError),
    #[error(transparent)]
    Llama(#[from] LlamaError),
    #[error(transparent)]
    Image(#[from] PreprocessError),
    #[error("{model}: no vision file ({why}); this model can only take text. Convert with sail-convert or pass --mmproj")]
    NoVision { model: PathBuf, why: String },
    #[error("the prompt needs {prompt} tokens ({images} of them image tokens) plus {n_predict} to generate = {}, but the context allows {limit} ({why}); use fewer/smaller images (--max-tiles), a shorter prompt, a smaller -n, or a larger --ctx", total_text(*.total))]
    PromptTooLong { prompt: usize, images: usize, n_predict: usize, total: Option<usize>, limit: usize, why: &'static str },
    #[error("{what} {got} is outside {min}..={max}")]
    OutOfRange { what: &'static str, got: usize, min: usize, max: usize },
    #[error("invalid sampling parameters: {0}")]
    Sampler(#[from] SamplerError),
    #[error(transparent)]
    Prompt(#[from] PromptError),
    #[error("{file}: the vision file makes {vision} tokens per tile but the language file expects {llm}: they belong to different models")]
    TokensPerTile { file: PathBuf, vision: u64, llm: usize },
    #[error("{model}: the template's control token {token:?} is not a single token of this vocabulary")]
    ControlToken { model: PathBuf, token: &'static str },
    #[error("video frames and images cannot be mixed in one question")]
    MixedMedia,
    #[error(transparent)]
    Rpc(#[from] RpcError),
    #[error(transparent)]
    Cache(#[from] CacheError),
}

fn total_text(t: Option<usize>) -> String {
    t.map(|t| t.to_string()).unwrap_or_else(|| "more than the address space".into())
}

/// The default thread count: the machine's cores, within ggml's limit.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(4).clamp(1, MAX_THREADS)
}

/// How to load a model pair.
#[derive(Debug, Clone)]
pub struct ModelParams {
    /// Vision file; default: the one the language file names (`sail.mmproj`), beside it.
    pub mmproj: Option<PathBuf>,
    /// CPU threads, 1..=[`MAX_THREADS`].
    pub n_threads: usize,
    /// ggml device for the vision encoder (None = CPU).
    pub vision_device: Option<String>,
    /// Language-model layers on the offload devices (0: none, −1: all).
    pub n_gpu_layers: i32,
    /// RPC servers (`sail rpc-server`) whose devices join this process's, registered before
    /// loading: they are then usable by name (`RPC0`, …) in `llm_devices` and `vision_device`.
    pub rpc: Vec<Endpoint>,
    /// Offload devices for the language model, in layer order (None: llama.cpp's choice: the
    /// RPC devices, then every GPU).
    pub llm_devices: Option<Vec<String>>,
    /// Share of the offloaded layers per `llm_devices` entry (llama.cpp's tensor split); empty:
    /// by free memory.
    pub tensor_split: Vec<f32>,
    pub use_mmap: bool,
    pub repack: bool,
    /// Activation memory for one vision batch of tiles.
    pub vision_memory_budget: usize,
    /// The image embedding cache (memory per model; disk folder optional).
    pub image_cache: CacheParams,
}

impl Default for ModelParams {
    fn default() -> Self {
        ModelParams {
            mmproj: None,
            n_threads: default_threads(),
            vision_device: None,
            n_gpu_layers: 0,
            rpc: Vec::new(),
            llm_devices: None,
            tensor_split: Vec::new(),
            use_mmap: true,
            repack: true,
            vision_memory_budget: 1 << 30,
            image_cache: CacheParams::default(),
        }
    }
}

/// What the language file says about prompts and image tokens.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub path: PathBuf,
    pub hp: LlmHparams,
    pub template: String,
    pub system_prompt: String,
    pub think_prompt: String,
    pub img_start: i32,
    pub img_end: i32,
    pub img_context: i32,
    /// `<|im_start|>` and `<|im_end|>` as this vocabulary's ids.
    pub im_start: i32,
    pub im_end: i32,
    pub tokens_per_tile: usize,
    /// The language weights are f32 (`general.file_type` 0): sessions default to an f32 KV
    /// cache so results match the reference exactly; quantized models get f16.
    pub f32_weights: bool,
}

/// A loaded model pair, shareable across threads and sessions.
#[derive(Debug)]
pub struct Model {
    pub info: ModelInfo,
    pub llm: Arc<LlamaModel>,
    pub vision: Option<VisionEncoder>,
    pub vision_path: Option<PathBuf>,
    vision_missing: Option<String>,
    pub load_ms: f64,
    pub n_threads: usize,
    pub vision_memory_budget: usize,
    cache: ImageCache,
    /// What the cache keys say about this encoder (None: no vision, or the cache is off).
    encoder_id: Option<EncoderId>,
    encoded_tiles: AtomicU64,
}

/// A token id the validator has placed inside the vocabulary (which fits an i32).
fn meta_id(f: &GgufFile, key: &str, problems: &mut Vec<String>) -> i32 {
    match f.get(key).and_then(|v| v.as_i64()).and_then(|v| i32::try_from(v).ok()) {
        Some(v) => v,
        None => {
            problems.push(format!("{key} is missing"));
            0
        }
    }
}

impl Model {
    /// Loads a model pair. Both files are opened without blocking (regular files only) and
    /// validated completely before llama.cpp or ggml sees them.
    pub fn load(path: &Path, params: &ModelParams) -> Result<Model, SailError> {
        let t0 = Instant::now();
        if !(1..=MAX_THREADS).contains(&params.n_threads) {
            return Err(SailError::OutOfRange { what: "thread count", got: params.n_threads, min: 1, max: MAX_THREADS });
        }
        let f = GgufFile::open(path)?;
        let hp = validate::language(&f)?;
        let mut problems = Vec::new();
        let info = ModelInfo {
            path: path.to_path_buf(),
            template: f.get(SAIL_TEMPLATE).and_then(|v| v.as_str()).unwrap_or(tpl::TEMPLATE_NAME).to_string(),
            system_prompt: f.get(SAIL_SYSTEM_PROMPT).and_then(|v| v.as_str()).unwrap_or(tpl::DEFAULT_SYSTEM_PROMPT).to_string(),
            think_prompt: f.get(SAIL_THINK_PROMPT).and_then(|v| v.as_str()).unwrap_or(tpl::THINK_PROMPT).to_string(),
            img_start: meta_id(&f, SAIL_TOKEN_IMG_START, &mut problems),
            img_end: meta_id(&f, SAIL_TOKEN_IMG_END, &mut problems),
            img_context: meta_id(&f, SAIL_TOKEN_IMG_CONTEXT, &mut problems),
            im_start: -1,
            im_end: -1,
            tokens_per_tile: meta_id(&f, SAIL_TOKENS_PER_TILE, &mut problems) as usize,
            f32_weights: f.get(GENERAL_FILE_TYPE).and_then(|v| v.as_i64()) == Some(0),
            hp,
        };
        if !problems.is_empty() {
            return Err(HparamsError::Keys { file: path.to_path_buf(), problems }.into());
        }
        // a bare file name (the validator refused anything else), so it can only name a
        // file beside the language file
        let named = f.get(SAIL_MMPROJ).and_then(|v| v.as_str()).map(|n| path.with_file_name(n));
        drop(f);
        let (vision_path, vision_missing) = match (&params.mmproj, named) {
            (Some(p), _) => (Some(p.clone()), None),
            (None, Some(p)) if p.exists() => (Some(p), None),
            (None, Some(p)) => (None, Some(format!("{} not found", p.display()))),
            (None, None) => (None, Some("the language file names no vision file".into())),
        };
        for ep in &params.rpc {
            sail_ggml::rpc::add_server(ep)?;
        }
        let llm = Arc::new(LlamaModel::load(
            path,
            &sail_ggml::ModelParams {
                n_gpu_layers: params.n_gpu_layers,
                use_mmap: params.use_mmap,
                repack: params.repack,
                devices: params.llm_devices.clone(),
                tensor_split: params.tensor_split.clone(),
            },
        )?);
        let mut info = info;
        let control = |token: &'static str| match llm.tokenize(token, true)?[..] {
            [id] => Ok(id),
            _ => Err(SailError::ControlToken { model: path.to_path_buf(), token }),
        };
        info.im_start = control(tpl::IM_START)?;
        info.im_end = control(tpl::IM_END)?;
        let vision = match &vision_path {
            Some(p) => Some(VisionEncoder::load(
                p,
                Some(info.hp.n_embd),
                &EncoderParams {
                    n_threads: params.n_threads,
                    memory_budget: params.vision_memory_budget,
                    device: params.vision_device.clone(),
                },
            )?),
            None => None,
        };
        if let (Some(v), Some(p)) = (&vision, &vision_path) {
            if v.hp.tokens_per_tile() != info.tokens_per_tile as u64 {
                return Err(SailError::TokensPerTile { file: p.clone(), vision: v.hp.tokens_per_tile(), llm: info.tokens_per_tile });
            }
        }
        // ggml's connections to RPC servers are open now (weights hold them): bound the wait
        // for a server whose host vanishes
        sail_ggml::rpc::keep_connections_alive();
        let shape = RowShape { tokens_per_tile: info.tokens_per_tile as u32, n_embd: info.hp.n_embd, max_tiles: MAX_TILES_LIMIT + 1 };
        let cache = ImageCache::new(params.image_cache.clone(), shape)?;
        let encoder_id = vision.as_ref().filter(|_| cache.enabled()).map(|v| {
            let device = params.vision_device.as_deref().filter(|d| !d.eq_ignore_ascii_case("cpu")).map(|d| format!("{d}+CPU"));
            EncoderId::new(
                v.file(),
                v.weight_type().name(),
                device.as_deref().unwrap_or("CPU"),
                params.n_threads,
                v.batch_size(params.vision_memory_budget),
            )
        });
        Ok(Model {
            info,
            llm,
            vision,
            vision_path,
            vision_missing,
            load_ms: t0.elapsed().as_secs_f64() * 1e3,
            n_threads: params.n_threads,
            vision_memory_budget: params.vision_memory_budget,
            cache,
            encoder_id,
            encoded_tiles: AtomicU64::new(0),
        })
    }

    fn encoder(&self) -> Result<&VisionEncoder, SailError> {
        self.vision
            .as_ref()
            .ok_or_else(|| SailError::NoVision { model: self.info.path.clone(), why: self.vision_missing.clone().unwrap_or_default() })
    }

    /// SAIL's processor settings for this model (`max_tiles` overrides the file's limit).
    fn tiling(&self, max_tiles: Option<u32>, limits: ImageLimits) -> Result<PreprocessConfig, SailError> {
        let hp = &self.encoder()?.hp;
        let mut cfg = PreprocessConfig::new(hp.image_size, hp.image_mean, hp.image_std, max_tiles.unwrap_or(hp.max_tiles));
        cfg.min_tiles = hp.min_tiles.min(cfg.max_tiles);
        cfg.use_thumbnail = hp.use_thumbnail;
        cfg.limits = limits;
        Ok(cfg)
    }

    /// The cache's answer for `image` under `cfg`.
    fn look_up(&self, cfg: &PreprocessConfig, image: ImageSource<'_>, t: &mut PrepareTimings) -> Lookup {
        let Some(id) = &self.encoder_id else { return Lookup::Miss(None) };
        let t0 = Instant::now();
        let key = ImageKey::new(id, cfg, image);
        t.key_ms = ms(t0);
        let t0 = Instant::now();
        let hit = self.cache.get(&key);
        t.lookup_ms = ms(t0);
        match hit {
            Some((c, hit)) => Lookup::Hit(Box::new(PreparedImage {
                tiles: c.tiles,
                grid: c.grid,
                pixels: Vec::new(),
                rows: Some((c.rows, hit)),
                key: Some(key),
                timings: *t,
            })),
            None => Lookup::Miss(Some(key)),
        }
    }

    fn tile(
        &self,
        img: &DecodedImage,
        cfg: &PreprocessConfig,
        key: Option<ImageKey>,
        mut t: PrepareTimings,
    ) -> Result<PreparedImage, SailError> {
        let t0 = Instant::now();
        let p = preprocess(img, cfg)?;
        t.tile_ms = ms(t0);
        Ok(PreparedImage { tiles: p.tiles, grid: p.grid, pixels: p.pixels, rows: None, key, timings: t })
    }

    /// Tiles an image with SAIL's processor (`max_tiles` overrides the file's limit; 1 gives a
    /// single tile without thumbnail, as used for video frames). `limits` is the same budget the
    /// image was decoded under. Pixels seen before come back encoded, from the cache.
    pub fn prepare_image(&self, img: &DecodedImage, max_tiles: Option<u32>, limits: ImageLimits) -> Result<PreparedImage, SailError> {
        let cfg = self.tiling(max_tiles, limits)?;
        let mut t = PrepareTimings::default();
        match self.look_up(&cfg, ImageSource::Decoded(img), &mut t) {
            Lookup::Hit(hit) => Ok(*hit),
            Lookup::Miss(key) => self.tile(img, &cfg, key, t),
        }
    }

    /// Decodes and tiles an image file held in memory (`name` is what errors call it). An image
    /// seen before (same bytes, same tiling, same encoder) comes back encoded, from the cache,
    /// without being decoded.
    pub fn prepare_image_bytes(
        &self,
        bytes: &[u8],
        name: &str,
        max_tiles: Option<u32>,
        limits: ImageLimits,
    ) -> Result<PreparedImage, SailError> {
        let cfg = self.tiling(max_tiles, limits)?;
        let mut t = PrepareTimings::default();
        let key = match self.look_up(&cfg, ImageSource::File(bytes), &mut t) {
            Lookup::Hit(hit) => return Ok(*hit),
            Lookup::Miss(key) => key,
        };
        let t0 = Instant::now();
        let img = load_image_from_memory_named(bytes, name, limits)?;
        t.decode_ms = ms(t0);
        self.tile(&img, &cfg, key, t)
    }

    /// Loads and tiles an image file under `limits` (through the cache, as
    /// [`Self::prepare_image_bytes`]).
    pub fn prepare_image_file(&self, path: &Path, max_tiles: Option<u32>, limits: ImageLimits) -> Result<PreparedImage, SailError> {
        self.encoder()?;
        let t0 = Instant::now();
        let bytes = decode::read_image_file(path, limits)?;
        let read_ms = ms(t0);
        let mut img = self.prepare_image_bytes(&bytes, &path.display().to_string(), max_tiles, limits)?;
        img.timings.read_ms = read_ms;
        Ok(img)
    }

    /// Decodes and tiles an image file without looking in the cache (for measuring the encoder).
    pub fn tile_image_file(&self, path: &Path, max_tiles: Option<u32>, limits: ImageLimits) -> Result<PreparedImage, SailError> {
        let cfg = self.tiling(max_tiles, limits)?;
        let img = load_image(path, limits)?;
        self.tile(&img, &cfg, None, PrepareTimings::default())
    }

    /// This model's image embedding cache (statistics, clearing).
    pub fn image_cache(&self) -> &ImageCache {
        &self.cache
    }

    /// Tiles encoded by this model's sessions since it was loaded (cache hits encode none).
    pub fn encoded_tiles(&self) -> u64 {
        self.encoded_tiles.load(Ordering::Relaxed)
    }

    /// The prompt builder with this model's default system and thinking prompts.
    pub fn prompt_builder(&self) -> PromptBuilder {
        PromptBuilder::new(self.info.system_prompt.clone(), self.info.think_prompt.clone())
    }

    pub fn has_vision(&self) -> bool {
        self.vision.is_some()
    }
}

/// What the image cache said: the image, already encoded; or the key to store its rows under
/// once encoded (None: the cache is off).
enum Lookup {
    Hit(Box<PreparedImage>),
    Miss(Option<ImageKey>),
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// An image ready for a session: tiled and normalised, or already encoded (from the cache).
#[derive(Debug, Clone)]
pub struct PreparedImage {
    pub tiles: usize,
    pub grid: (u32, u32),
    /// `[tiles, 3, S, S]` normalised tiles; empty when the rows came from the cache. Private:
    /// the cache key was computed from the image these pixels came from, so they must not
    /// change behind it.
    pixels: Vec<f32>,
    rows: Option<(Arc<[f32]>, Hit)>,
    key: Option<ImageKey>,
    pub timings: PrepareTimings,
}

impl PreparedImage {
    /// The normalised tiles, `[tiles, 3, S, S]` (empty after a cache hit).
    pub fn pixels(&self) -> &[f32] {
        &self.pixels
    }

    /// The normalised tiles, moved out.
    pub fn into_pixels(self) -> Vec<f32> {
        self.pixels
    }

    /// Where the rows came from when the image needs no encoding.
    pub fn cache_hit(&self) -> Option<Hit> {
        self.rows.as_ref().map(|(_, h)| *h)
    }
}

/// Milliseconds spent preparing one image (0 for steps that did not run).
#[derive(Debug, Clone, Copy, Default)]
pub struct PrepareTimings {
    pub read_ms: f64,
    /// Hashing the image and its settings into a cache key.
    pub key_ms: f64,
    /// Looking the key up (memory, then disk: read and checksum).
    pub lookup_ms: f64,
    pub decode_ms: f64,
    pub tile_ms: f64,
}

impl PrepareTimings {
    pub fn total_ms(&self) -> f64 {
        self.read_ms + self.key_ms + self.lookup_ms + self.decode_ms + self.tile_ms
    }
}

/// Session settings.
#[derive(Debug, Clone, Default)]
pub struct SessionParams {
    /// Context positions; 0 = what the first request needs (prompt + n_predict).
    pub n_ctx: u32,
    pub n_batch: u32,
    /// 0 = the model's thread count; else 1..=[`MAX_THREADS`].
    pub n_threads: usize,
    /// f32 KV cache (exact parity with the reference); f16 halves its memory.
    pub kv_f32: bool,
    /// None = the model's default system prompt.
    pub system: Option<String>,
    /// Tokenize user and system text with special-token parsing on, as the reference does:
    /// `<|im_end|>` typed in a question then becomes the control token. Off by default, so
    /// user text can never forge a turn or an image slot.
    pub parse_special: bool,
}

/// Generation settings.
#[derive(Debug, Clone)]
pub struct GenerateParams {
    pub n_predict: usize,
    pub sampler: SamplerParams,
    pub ignore_eos: bool,
    /// Append the Thinking variants' CoT instruction to the question.
    pub think: bool,
}

impl Default for GenerateParams {
    fn default() -> Self {
        GenerateParams { n_predict: 512, sampler: SamplerParams::default(), ignore_eos: false, think: false }
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    Eos,
    Length,
    Callback,
}

/// Milliseconds per stage.
#[derive(Debug, Clone, Default)]
pub struct Timings {
    pub load_ms: f64,
    pub vision_ms: f64,
    pub prefill_ms: f64,
    pub decode_ms: f64,
    /// Prompt positions computed this turn (the prompt less `reused_tokens`).
    pub prefill_tokens: usize,
    pub decode_tokens: usize,
    /// Prompt positions the KV cache already held from an earlier turn or request.
    pub reused_tokens: usize,
}

impl Timings {
    pub fn prefill_tok_s(&self) -> f64 {
        self.prefill_tokens as f64 / (self.prefill_ms / 1e3).max(1e-9)
    }
    pub fn decode_tok_s(&self) -> f64 {
        self.decode_tokens as f64 / (self.decode_ms / 1e3).max(1e-9)
    }
}

/// The result of one turn.
#[derive(Debug, Clone)]
pub struct Generation {
    pub tokens: Vec<i32>,
    pub text: String,
    /// This turn's prompt ids, `<IMG_CONTEXT>` placeholders included.
    pub prompt_token_ids: Vec<i32>,
    pub image_tokens: usize,
    pub tiles: usize,
    /// Logits at the last prompt position.
    pub prompt_logits: Vec<f32>,
    /// Projector output rows of this turn's images, in prompt order (images whose span the
    /// KV cache already held are not encoded again and have no rows here).
    pub embeddings: Vec<f32>,
    /// Tiles this turn encoded (images from the cache need none).
    pub tiles_encoded: usize,
    pub stop: StopReason,
    pub timings: Timings,
}

impl Generation {
    /// (reasoning, answer) of a `<think>…</think>` response.
    pub fn split_thinking(&self) -> (Option<String>, String) {
        split_thinking(&self.text)
    }
}

/// (reasoning, answer) of a `<think>…</think>` response text: what precedes `</think>` (after
/// `<think>`, if present) is the reasoning, the rest the answer; both trimmed. Without
/// `</think>` all of it is the answer.
pub fn split_thinking(text: &str) -> (Option<String>, String) {
    match text.find(tpl::THINK_END) {
        Some(end) => {
            let head = &text[..end];
            let reasoning = head.find(tpl::THINK_START).map(|s| &head[s + tpl::THINK_START.len()..]).unwrap_or(head);
            (Some(reasoning.trim().to_string()), text[end + tpl::THINK_END.len()..].trim().to_string())
        }
        None => (None, text.trim().to_string()),
    }
}

/// One piece of a prompt, ready for llama.cpp.
#[derive(Debug, Clone)]
enum Segment {
    Tokens(Vec<i32>),
    Image(usize),
}

/// What one KV cache position holds: a token, or a row of the image with this identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cell {
    Token(i32),
    Image(u64),
}

/// Whether the queued pictures are images or video frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Queued {
    Images,
    Frames,
}

/// A conversation with its own KV cache.
#[derive(Debug)]
pub struct Session {
    model: Arc<Model>,
    params: SessionParams,
    builder: PromptBuilder,
    ctx: Option<LlamaContext>,
    n_past: i32,
    turns: usize,
    images: Vec<PreparedImage>,
    queued: Option<Queued>,
    /// Set when the last reply did not end with `<|im_end|>` in the cache.
    open_reply: bool,
    /// What positions `0..n_past` of the KV cache hold.
    cells: Vec<Cell>,
    /// Keys the image identities (random per session, so nobody can craft a colliding image).
    image_ids: std::collections::hash_map::RandomState,
}

/// Turns UTF-8 bytes arriving token by token into complete characters.
#[derive(Debug, Default)]
struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        match std::str::from_utf8(&self.pending) {
            Ok(s) => {
                let s = s.to_string();
                self.pending.clear();
                s
            }
            Err(e) if e.error_len().is_none() => {
                let n = e.valid_up_to();
                let s = String::from_utf8_lossy(&self.pending[..n]).into_owned();
                self.pending.drain(..n);
                s
            }
            Err(_) => String::from_utf8_lossy(&std::mem::take(&mut self.pending)).into_owned(),
        }
    }
    fn flush(&mut self) -> String {
        String::from_utf8_lossy(&std::mem::take(&mut self.pending)).into_owned()
    }
}

impl Session {
    pub fn new(model: Arc<Model>, params: SessionParams) -> Session {
        let builder = model.prompt_builder();
        Session {
            model,
            params,
            builder,
            ctx: None,
            n_past: 0,
            turns: 0,
            images: Vec::new(),
            queued: None,
            open_reply: false,
            cells: Vec::new(),
            image_ids: Default::default(),
        }
    }

    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    fn queue(&mut self, img: PreparedImage, kind: Queued) -> Result<(), SailError> {
        self.model.encoder()?;
        if self.queued.is_some_and(|q| q != kind) {
            return Err(SailError::MixedMedia);
        }
        self.queued = Some(kind);
        self.images.push(img);
        Ok(())
    }

    /// Queues an image for the next question (placed as `<image>` before the text, or at the
    /// question's own `<image>` placeholders).
    pub fn add_image(&mut self, img: PreparedImage) -> Result<(), SailError> {
        self.queue(img, Queued::Images)
    }

    /// Queues a video frame for the next question (`Frame-k: <image>` lines before the text;
    /// prepare frames with one tile each, as SAIL's video path does).
    pub fn add_frame(&mut self, img: PreparedImage) -> Result<(), SailError> {
        self.queue(img, Queued::Frames)
    }

    /// Positions used so far.
    pub fn n_past(&self) -> usize {
        self.n_past as usize
    }

    /// Turns a rendered prompt into decode segments and the full id list.
    fn tokenize(&self, prompt: &Prompt) -> Result<(Vec<Segment>, Vec<i32>), SailError> {
        if prompt.n_images != self.images.len() {
            return Err(PromptError::PlaceholderCount { markers: prompt.n_images, images: self.images.len() }.into());
        }
        let info = &self.model.info;
        let mut segs: Vec<Segment> = Vec::new();
        let mut ids = Vec::new();
        let push_tokens = |segs: &mut Vec<Segment>, t: Vec<i32>| match segs.last_mut() {
            Some(Segment::Tokens(prev)) => prev.extend(t),
            _ => segs.push(Segment::Tokens(t)),
        };
        for part in &prompt.parts {
            match part {
                Part::Control(c) => {
                    let id = match *c {
                        tpl::IM_START => info.im_start,
                        tpl::IM_END => info.im_end,
                        tpl::IMG_START => info.img_start,
                        tpl::IMG_END => info.img_end,
                        other => return Err(SailError::ControlToken { model: info.path.clone(), token: other }),
                    };
                    ids.push(id);
                    push_tokens(&mut segs, vec![id]);
                }
                Part::Text(t) => {
                    let toks = self.model.llm.tokenize(t, self.params.parse_special)?;
                    ids.extend_from_slice(&toks);
                    push_tokens(&mut segs, toks);
                }
                Part::Image(k) => {
                    let n = self.images[*k].tiles.saturating_mul(info.tokens_per_tile);
                    ids.try_reserve(n).map_err(|_| SailError::OutOfRange { what: "image tokens", got: n, min: 0, max: ids.capacity() })?;
                    ids.extend(std::iter::repeat_n(info.img_context, n));
                    segs.push(Segment::Image(*k));
                }
            }
        }
        Ok((segs, ids))
    }

    /// This turn's prompt for `question` and the queued pictures.
    fn plan(&self, question: &str, think: bool) -> Result<Prompt, SailError> {
        let n = self.images.len();
        let media = match self.queued {
            Some(Queued::Frames) => Media::Frames(n),
            _ => Media::Images(n),
        };
        let user = self.builder.user(question, media, think)?;
        Ok(if self.turns == 0 {
            self.builder.conversation(self.params.system.as_deref(), &[user])?
        } else {
            self.builder.follow_up(&user, self.open_reply)
        })
    }

    /// `needed`: positions in use after this turn, None when that count overflows.
    fn ensure_context(&mut self, needed: Option<usize>, n_predict: usize, image_tokens: usize, prompt: usize) -> Result<(), SailError> {
        // positions are i32 in llama.cpp
        let train = (self.model.info.hp.n_ctx_train as usize).min(i32::MAX as usize);
        let (limit, why) = match (&self.ctx, self.params.n_ctx) {
            (Some(c), _) => (c.n_ctx() as usize, "the session's context (--ctx)"),
            (None, 0) => (train, "the model's training context"),
            (None, n) => ((n as usize).min(train), "--ctx"),
        };
        let Some(needed) = needed.filter(|&n| n <= limit) else {
            return Err(SailError::PromptTooLong { prompt, images: image_tokens, n_predict, total: needed, limit, why });
        };
        if self.ctx.is_none() {
            let n_ctx = if self.params.n_ctx == 0 { needed.div_ceil(256) * 256 } else { self.params.n_ctx as usize }.min(train);
            let threads = if self.params.n_threads == 0 { self.model.n_threads } else { self.params.n_threads };
            if threads > MAX_THREADS {
                return Err(SailError::OutOfRange { what: "thread count", got: threads, min: 1, max: MAX_THREADS });
            }
            let n_batch = if self.params.n_batch == 0 { 512 } else { self.params.n_batch };
            self.ctx = Some(LlamaContext::new(
                self.model.llm.clone(),
                &ContextParams { n_ctx: n_ctx as u32, n_batch, n_threads: threads, kv_f32: self.params.kv_f32 },
            )?);
            sail_ggml::rpc::keep_connections_alive();
        }
        Ok(())
    }

    /// Runs one user turn: prompt (with queued images) in, up to `n_predict` tokens out.
    /// `on_token(id, text)` sees each token as it is sampled; returning false stops.
    pub fn generate(
        &mut self,
        question: &str,
        gp: &GenerateParams,
        on_token: impl FnMut(i32, &str) -> bool,
    ) -> Result<Generation, SailError> {
        gp.sampler.validate()?;
        let prompt = self.plan(question, gp.think)?;
        let base = if self.turns == 0 { 0 } else { self.n_past };
        self.generate_prompt(&prompt, base, gp, on_token)
    }

    /// Runs a whole conversation (rendered by [`PromptBuilder::conversation`]) as a new one:
    /// the server's path, where each request carries its history. The queued images are the
    /// conversation's, in prompt order. What the KV cache already holds of this prompt (the
    /// longest common prefix with the last conversation, whole image spans only) is kept.
    pub fn generate_conversation(
        &mut self,
        system: Option<&str>,
        messages: &[Message],
        gp: &GenerateParams,
        on_token: impl FnMut(i32, &str) -> bool,
    ) -> Result<Generation, SailError> {
        gp.sampler.validate()?;
        let prompt = self.builder.conversation(system, messages)?;
        self.turns = 0;
        self.open_reply = false;
        self.generate_prompt(&prompt, 0, gp, on_token)
    }

    /// The identity of an image's rows: a keyed hash of its tiles, grid and pixels.
    /// The identity of an image's rows in the KV cache: its image-cache key when it has one (a
    /// cache hit carries no pixels) and its pixels.
    fn image_id(&self, img: &PreparedImage) -> u64 {
        use std::hash::Hash;
        let mut h = self.image_ids.build_hasher();
        h.write_usize(img.tiles);
        h.write_u32(img.grid.0);
        h.write_u32(img.grid.1);
        img.key.hash(&mut h);
        for p in img.pixels.chunks(2) {
            h.write_u64(p.iter().fold(0u64, |acc, x| acc << 32 | x.to_bits() as u64));
        }
        h.finish()
    }

    /// How many leading positions of `cells` the cache holds already: the common prefix, never
    /// the whole prompt (the last position must be computed for its logits) and never part of
    /// an image span.
    fn reusable(&self, cells: &[Cell]) -> usize {
        let mut n = self.cells.iter().zip(cells).take_while(|(a, b)| a == b).count().min(cells.len().saturating_sub(1));
        if let Cell::Image(id) = cells[n.min(cells.len() - 1)] {
            while n > 0 && cells[n - 1] == Cell::Image(id) {
                n -= 1;
            }
        }
        n
    }

    /// Decodes `prompt` at positions `base..` (0: a new conversation, which may reuse the
    /// cache's common prefix; else a turn after the cached ones).
    fn generate_prompt(
        &mut self,
        prompt: &Prompt,
        base: i32,
        gp: &GenerateParams,
        mut on_token: impl FnMut(i32, &str) -> bool,
    ) -> Result<Generation, SailError> {
        let (segs, ids) = self.tokenize(prompt)?;
        let tiles: usize = self.images.iter().map(|i| i.tiles).sum();
        let image_tokens = tiles.saturating_mul(self.model.info.tokens_per_tile);
        // checked: `-n 18446744073709551615` once wrapped this sum and ran until the cache filled
        let needed = (base as usize).checked_add(ids.len()).and_then(|n| n.checked_add(gp.n_predict));
        self.ensure_context(needed, gp.n_predict, image_tokens, ids.len())?;
        let mut timings = Timings { load_ms: self.model.load_ms, ..Default::default() };

        // what each prompt position holds, and how much of it the KV cache has
        let mut cells = Vec::with_capacity(ids.len());
        for seg in &segs {
            match seg {
                Segment::Tokens(tok) => cells.extend(tok.iter().map(|&t| Cell::Token(t))),
                Segment::Image(k) => {
                    let img = &self.images[*k];
                    let id = self.image_id(img);
                    cells.extend(std::iter::repeat_n(Cell::Image(id), img.tiles * self.model.info.tokens_per_tile));
                }
            }
        }
        debug_assert_eq!(cells.len(), ids.len());
        let skip = if base == 0 { self.reusable(&cells) } else { 0 };

        // 1. images → rows (before touching the KV cache, so a failure leaves the session usable);
        // images inside the reused prefix are not needed again; rows new to the image cache go
        // to memory now and to disk after the turn
        let t = Instant::now();
        let mut rows: Vec<Arc<[f32]>> = vec![Arc::from(Vec::<f32>::new()); self.images.len()];
        let mut to_disk = Vec::new();
        let mut tiles_encoded = 0;
        let mut off = 0;
        for seg in &segs {
            let k = match seg {
                Segment::Tokens(tok) => {
                    off += tok.len();
                    continue;
                }
                Segment::Image(k) => *k,
            };
            let img = &self.images[k];
            let at = off;
            off += img.tiles * self.model.info.tokens_per_tile;
            if at < skip {
                continue;
            }
            if let Some((r, _)) = &img.rows {
                rows[k] = r.clone();
                continue;
            }
            let r: Arc<[f32]> = self.model.encoder()?.encode(&img.pixels, img.tiles, self.model.vision_memory_budget)?.into();
            tiles_encoded += img.tiles;
            self.model.encoded_tiles.fetch_add(img.tiles as u64, Ordering::Relaxed);
            if let Some(key) = img.key {
                let c = CachedImage { tiles: img.tiles, grid: img.grid, rows: r.clone() };
                self.model.cache.put_memory(&key, &c);
                to_disk.push((key, c));
            }
            rows[k] = r;
        }
        timings.vision_ms = t.elapsed().as_secs_f64() * 1e3;
        let embeddings: Vec<f32> = rows.iter().flat_map(|r| r.iter().copied()).collect();

        // 2. prefill: token runs and image rows from the first position the cache lacks
        let t = Instant::now();
        let ctx = self.ctx.as_mut().expect("context created above");
        let start = base + skip as i32;
        ctx.truncate(start);
        self.cells.truncate(start as usize);
        self.n_past = start;
        let last = segs.len() - 1;
        let mut off = 0;
        let prefill = segs.iter().enumerate().try_for_each(|(i, seg)| {
            let len = match seg {
                Segment::Tokens(tok) => tok.len(),
                Segment::Image(k) => self.images[*k].tiles * self.model.info.tokens_per_tile,
            };
            if off + len > skip {
                let pos = base + off.max(skip) as i32;
                match seg {
                    Segment::Tokens(tok) => ctx.decode_tokens(&tok[skip.saturating_sub(off)..], pos, i == last)?,
                    Segment::Image(k) => ctx.decode_embeddings(&rows[*k], pos, i == last)?,
                }
            }
            off += len;
            Ok::<_, LlamaError>(())
        });
        if let Err(e) = prefill {
            // leave the cache as it was before this turn (less what this prompt did not share)
            ctx.truncate(start);
            return Err(e.into());
        }
        self.n_past = base + ids.len() as i32;
        self.cells.extend_from_slice(&cells[skip..]);
        debug_assert_eq!(self.cells.len(), self.n_past as usize);
        timings.prefill_ms = t.elapsed().as_secs_f64() * 1e3;
        timings.prefill_tokens = ids.len() - skip;
        timings.reused_tokens = skip;
        let prompt_logits = ctx.logits().to_vec();
        self.images.clear();
        self.queued = None;
        self.turns += 1;

        // 3. sample
        let t = Instant::now();
        let mut sampler = Sampler::new(&gp.sampler, self.model.llm.n_vocab())?;
        for &id in &ids {
            if id != self.model.info.img_context {
                sampler.accept(id)?;
            }
        }
        let mut tokens = Vec::new();
        let mut text = String::new();
        let mut utf8 = Utf8Stream::default();
        let mut stop = StopReason::Length;
        while tokens.len() < gp.n_predict {
            let tok = sampler.sample(ctx)?;
            let eog = self.model.llm.is_eog(tok);
            if eog && !gp.ignore_eos {
                // keep <|im_end|> in the cache so the next turn follows a closed reply
                ctx.decode_tokens(&[tok], self.n_past, false)?;
                self.n_past += 1;
                self.cells.push(Cell::Token(tok));
                stop = StopReason::Eos;
                break;
            }
            tokens.push(tok);
            let piece = utf8.push(&self.model.llm.token_bytes(tok, false)?);
            text.push_str(&piece);
            let go_on = on_token(tok, &piece);
            let more = tokens.len() < gp.n_predict && go_on;
            if !go_on {
                stop = StopReason::Callback;
            }
            if !more {
                break;
            }
            ctx.decode_tokens(&[tok], self.n_past, true)?;
            self.n_past += 1;
            self.cells.push(Cell::Token(tok));
        }
        let tail = utf8.flush();
        if !tail.is_empty() {
            on_token(-1, &tail);
            text.push_str(&tail);
        }
        self.open_reply = stop != StopReason::Eos;
        if self.open_reply {
            // the last sampled token was not decoded yet; put it in the cache for the next turn
            if let Some(&tok) = tokens.last() {
                ctx.decode_tokens(&[tok], self.n_past, false)?;
                self.n_past += 1;
                self.cells.push(Cell::Token(tok));
            }
        }
        timings.decode_ms = t.elapsed().as_secs_f64() * 1e3;
        timings.decode_tokens = tokens.len();
        for (key, c) in &to_disk {
            self.model.cache.put_disk(key, c);
        }
        Ok(Generation { tokens, text, prompt_token_ids: ids, image_tokens, tiles, prompt_logits, embeddings, tiles_encoded, stop, timings })
    }

    /// Forgets the conversation and any queued pictures (keeps the context allocation).
    pub fn reset(&mut self) {
        self.reset_cache();
        self.images.clear();
        self.queued = None;
    }

    fn reset_cache(&mut self) {
        if let Some(c) = &mut self.ctx {
            c.truncate(0);
        }
        self.n_past = 0;
        self.cells.clear();
        self.turns = 0;
        self.open_reply = false;
    }
}
