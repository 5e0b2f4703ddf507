//! The library API: load a model pair, open a session, add images, generate.
//!
//! A [`Model`] (language model in llama.cpp + vision encoder on ggml) is immutable and shared
//! (`Arc`) between sessions; a [`Session`] owns a KV cache and is used by one thread at a time.
//! Prompt tokens and image rows go into llama.cpp in prompt order with continuous positions:
//! text runs as token batches, each image span as an embedding batch at its `<IMG_CONTEXT>`
//! positions. Everything that can be checked (files, hidden sizes, context room, sampler
//! values) is checked before any compute.

use crate::ggml::{ContextParams, LlamaContext, LlamaError, LlamaModel, Sampler, SamplerParams};
use crate::gguf::GgufFile;
use crate::model::keys::*;
use crate::model::{HparamsError, LlmHparams};
use crate::text::template::{self as tpl, Role, Turn};
use crate::vision::encoder::{EncoderParams, VisionEncoder, VisionError};
use crate::vision::preprocess::{self, DecodedImage, PreprocessConfig, PreprocessError};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum SailError {
    #[error(transparent)]
    Gguf(#[from] crate::gguf::GgufError),
    #[error(transparent)]
    Hparams(#[from] HparamsError),
    #[error("{0}")]
    Vision(#[from] VisionError),
    #[error("{0}")]
    Llama(#[from] LlamaError),
    #[error("{0}")]
    Image(#[from] PreprocessError),
    #[error("{model}: no vision file ({why}); this model can only take text. Convert with sail-convert or pass --mmproj")]
    NoVision { model: PathBuf, why: String },
    #[error("the prompt needs {prompt} tokens ({images} of them image tokens) plus {n_predict} to generate = {total}, but the context allows {limit} ({why}); use fewer/smaller images (--max-tiles), a shorter prompt, a smaller -n, or a larger --ctx")]
    PromptTooLong { prompt: usize, images: usize, n_predict: usize, total: usize, limit: usize, why: &'static str },
    #[error("invalid sampling parameters: {0}")]
    Sampler(String),
    #[error("{0}")]
    Prompt(String),
}

/// How to load a model pair.
#[derive(Debug, Clone)]
pub struct ModelParams {
    /// Vision file; default: the one the language file names (`sail.mmproj`), beside it.
    pub mmproj: Option<PathBuf>,
    pub n_threads: usize,
    /// ggml device for the vision encoder (None = CPU).
    pub vision_device: Option<String>,
    /// Language-model layers on the GPU backend.
    pub n_gpu_layers: i32,
    pub use_mmap: bool,
    pub repack: bool,
    /// Activation memory for one vision batch of tiles.
    pub vision_memory_budget: usize,
}

impl Default for ModelParams {
    fn default() -> Self {
        ModelParams {
            mmproj: None,
            n_threads: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(4),
            vision_device: None,
            n_gpu_layers: 0,
            use_mmap: true,
            repack: true,
            vision_memory_budget: 1 << 30,
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
}

fn meta_u32(f: &GgufFile, key: &str, problems: &mut Vec<String>) -> i32 {
    match f.get(key).and_then(|v| v.as_i64()) {
        Some(v) => v as i32,
        None => {
            problems.push(format!("{key} is missing"));
            0
        }
    }
}

impl Model {
    pub fn load(path: &Path, params: &ModelParams) -> Result<Model, SailError> {
        let t0 = Instant::now();
        let f = GgufFile::open(path)?;
        let hp = LlmHparams::from_gguf(&f)?;
        let mut problems = Vec::new();
        let info = ModelInfo {
            path: path.to_path_buf(),
            template: f.get(SAIL_TEMPLATE).and_then(|v| v.as_str()).unwrap_or(tpl::TEMPLATE_NAME).to_string(),
            system_prompt: f.get(SAIL_SYSTEM_PROMPT).and_then(|v| v.as_str()).unwrap_or(tpl::DEFAULT_SYSTEM_PROMPT).to_string(),
            think_prompt: f.get(SAIL_THINK_PROMPT).and_then(|v| v.as_str()).unwrap_or(tpl::THINK_PROMPT).to_string(),
            img_start: meta_u32(&f, SAIL_TOKEN_IMG_START, &mut problems),
            img_end: meta_u32(&f, SAIL_TOKEN_IMG_END, &mut problems),
            img_context: meta_u32(&f, SAIL_TOKEN_IMG_CONTEXT, &mut problems),
            tokens_per_tile: meta_u32(&f, SAIL_TOKENS_PER_TILE, &mut problems) as usize,
            f32_weights: f.get(GENERAL_FILE_TYPE).and_then(|v| v.as_i64()) == Some(0),
            hp,
        };
        if !problems.is_empty() {
            return Err(HparamsError::Keys { file: path.to_path_buf(), problems }.into());
        }
        let named = f.get(SAIL_MMPROJ).and_then(|v| v.as_str()).map(|n| path.with_file_name(n));
        drop(f);
        let (vision_path, vision_missing) = match (&params.mmproj, named) {
            (Some(p), _) => (Some(p.clone()), None),
            (None, Some(p)) if p.exists() => (Some(p), None),
            (None, Some(p)) => (None, Some(format!("{} not found", p.display()))),
            (None, None) => (None, Some("the language file names no vision file".into())),
        };
        let llm = Arc::new(LlamaModel::load(
            path,
            &crate::ggml::ModelParams { n_gpu_layers: params.n_gpu_layers, use_mmap: params.use_mmap, repack: params.repack },
        )?);
        let vision = match &vision_path {
            Some(p) => Some(VisionEncoder::load(
                p,
                Some(&info.hp),
                &EncoderParams { n_threads: params.n_threads, memory_budget: params.vision_memory_budget, device: params.vision_device.clone() },
            )?),
            None => None,
        };
        if let Some(v) = &vision {
            if v.hp.tokens_per_tile() as usize != info.tokens_per_tile {
                return Err(SailError::Prompt(format!(
                    "the vision file makes {} tokens per tile but the language file expects {}: they belong to different models",
                    v.hp.tokens_per_tile(),
                    info.tokens_per_tile
                )));
            }
        }
        Ok(Model {
            info,
            llm,
            vision,
            vision_path,
            vision_missing,
            load_ms: t0.elapsed().as_secs_f64() * 1e3,
            n_threads: params.n_threads,
            vision_memory_budget: params.vision_memory_budget,
        })
    }

    fn encoder(&self) -> Result<&VisionEncoder, SailError> {
        self.vision.as_ref().ok_or_else(|| SailError::NoVision {
            model: self.info.path.clone(),
            why: self.vision_missing.clone().unwrap_or_default(),
        })
    }

    /// Tiles an image with SAIL's processor (`max_tiles` overrides the file's limit; 1 gives a
    /// single tile without thumbnail, as used for video frames).
    pub fn prepare_image(&self, img: &DecodedImage, max_tiles: Option<u32>) -> Result<PreparedImage, SailError> {
        let hp = &self.encoder()?.hp;
        let mut cfg = PreprocessConfig::new(hp.image_size, hp.image_mean, hp.image_std, max_tiles.unwrap_or(hp.max_tiles));
        cfg.min_tiles = hp.min_tiles.min(cfg.max_tiles);
        cfg.use_thumbnail = hp.use_thumbnail;
        let p = preprocess::preprocess(img, &cfg)?;
        Ok(PreparedImage { tiles: p.tiles, grid: p.grid, pixels: p.pixels })
    }

    /// Loads and tiles an image file.
    pub fn prepare_image_file(&self, path: &Path, max_tiles: Option<u32>, max_pixels: u64) -> Result<PreparedImage, SailError> {
        self.encoder()?;
        let img = preprocess::load_image(path, max_pixels)?;
        self.prepare_image(&img, max_tiles)
    }

    pub fn has_vision(&self) -> bool {
        self.vision.is_some()
    }
}

/// An image tiled and normalised, not yet encoded.
#[derive(Debug, Clone)]
pub struct PreparedImage {
    pub tiles: usize,
    pub grid: (u32, u32),
    pub pixels: Vec<f32>,
}

/// Session settings.
#[derive(Debug, Clone, Default)]
pub struct SessionParams {
    /// Context positions; 0 = what the first request needs (prompt + n_predict).
    pub n_ctx: u32,
    pub n_batch: u32,
    /// 0 = the model's thread count.
    pub n_threads: usize,
    /// f32 KV cache (exact parity with the reference); f16 halves its memory.
    pub kv_f32: bool,
    /// None = the model's default system prompt.
    pub system: Option<String>,
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
    pub prefill_tokens: usize,
    pub decode_tokens: usize,
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
    /// Projector output rows of this turn's images, in prompt order.
    pub embeddings: Vec<f32>,
    pub stop: StopReason,
    pub timings: Timings,
}

impl Generation {
    /// (reasoning, answer) of a `<think>…</think>` response.
    pub fn split_thinking(&self) -> (Option<String>, String) {
        match self.text.find(tpl::THINK_END) {
            Some(end) => {
                let head = &self.text[..end];
                let reasoning = head.find(tpl::THINK_START).map(|s| &head[s + tpl::THINK_START.len()..]).unwrap_or(head);
                (Some(reasoning.trim().to_string()), self.text[end + tpl::THINK_END.len()..].trim().to_string())
            }
            None => (None, self.text.trim().to_string()),
        }
    }
}

/// One piece of a prompt.
#[derive(Debug, Clone)]
enum Segment {
    Tokens(Vec<i32>),
    Image(usize),
}

/// A conversation with its own KV cache.
#[derive(Debug)]
pub struct Session {
    model: Arc<Model>,
    params: SessionParams,
    ctx: Option<LlamaContext>,
    n_past: i32,
    turns: usize,
    images: Vec<PreparedImage>,
    /// Set when the last reply did not end with `<|im_end|>` in the cache.
    open_reply: bool,
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
        Session { model, params, ctx: None, n_past: 0, turns: 0, images: Vec::new(), open_reply: false }
    }

    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// Queues an image for the next question (placed as `<image>` before the text, or at the
    /// question's own `<image>` markers).
    pub fn add_image(&mut self, img: PreparedImage) -> Result<(), SailError> {
        self.model.encoder()?;
        self.images.push(img);
        Ok(())
    }

    /// Positions used so far.
    pub fn n_past(&self) -> usize {
        self.n_past as usize
    }

    /// Builds this turn's prompt: segments to decode and the full id list.
    fn plan(&self, question: &str, think: bool) -> Result<(Vec<Segment>, Vec<i32>), SailError> {
        let user = tpl::user_text(question, self.images.len(), think);
        let text = if self.turns == 0 {
            tpl::render(self.params.system.as_deref().or(Some(&self.model.info.system_prompt)), &[Turn { role: Role::User, content: user }])
        } else {
            let close = if self.open_reply { tpl::IM_END } else { "" };
            format!("{close}{}user\n{user}{}{}assistant\n", tpl::IM_START, tpl::IM_END, tpl::IM_START)
        };
        let parts: Vec<&str> = text.split("<image>").collect();
        if parts.len() - 1 != self.images.len() {
            return Err(SailError::Prompt(format!("the prompt has {} <image> markers for {} images", parts.len() - 1, self.images.len())));
        }
        let info = &self.model.info;
        let mut segs = Vec::new();
        let mut ids = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                let n = self.images[i - 1].tiles * info.tokens_per_tile;
                segs.push(Segment::Tokens(vec![info.img_start]));
                segs.push(Segment::Image(i - 1));
                segs.push(Segment::Tokens(vec![info.img_end]));
                ids.push(info.img_start);
                ids.extend(std::iter::repeat_n(info.img_context, n));
                ids.push(info.img_end);
            }
            if !part.is_empty() {
                let t = self.model.llm.tokenize(part, true);
                ids.extend_from_slice(&t);
                segs.push(Segment::Tokens(t));
            }
        }
        Ok((segs, ids))
    }

    fn ensure_context(&mut self, needed: usize, n_predict: usize, image_tokens: usize, prompt: usize) -> Result<(), SailError> {
        let train = self.model.info.hp.n_ctx_train as usize;
        let (limit, why) = match (&self.ctx, self.params.n_ctx) {
            (Some(c), _) => (c.n_ctx() as usize, "the session's context (--ctx)"),
            (None, 0) => (train, "the model's training context"),
            (None, n) => ((n as usize).min(train), "--ctx"),
        };
        if needed > limit {
            return Err(SailError::PromptTooLong { prompt, images: image_tokens, n_predict, total: needed, limit, why });
        }
        if self.ctx.is_none() {
            let n_ctx = if self.params.n_ctx == 0 { needed.div_ceil(256) * 256 } else { self.params.n_ctx as usize }.min(train);
            let threads = if self.params.n_threads == 0 { self.model.n_threads } else { self.params.n_threads };
            let n_batch = if self.params.n_batch == 0 { 512 } else { self.params.n_batch };
            self.ctx = Some(LlamaContext::new(
                self.model.llm.clone(),
                &ContextParams { n_ctx: n_ctx as u32, n_batch, n_threads: threads, kv_f32: self.params.kv_f32 },
            )?);
        }
        Ok(())
    }

    /// Runs one user turn: prompt (with queued images) in, up to `n_predict` tokens out.
    /// `on_token(id, text)` sees each token as it is sampled; returning false stops.
    pub fn generate(
        &mut self,
        question: &str,
        gp: &GenerateParams,
        mut on_token: impl FnMut(i32, &str) -> bool,
    ) -> Result<Generation, SailError> {
        gp.sampler.validate().map_err(SailError::Sampler)?;
        let (segs, ids) = self.plan(question, gp.think)?;
        let tiles: usize = self.images.iter().map(|i| i.tiles).sum();
        let image_tokens = tiles * self.model.info.tokens_per_tile;
        let needed = self.n_past as usize + ids.len() + gp.n_predict;
        self.ensure_context(needed, gp.n_predict, image_tokens, ids.len())?;
        let mut timings = Timings { load_ms: self.model.load_ms, ..Default::default() };

        // 1. images → rows (before touching the cache, so a failure leaves the session usable)
        let t = Instant::now();
        let mut rows: Vec<Vec<f32>> = Vec::with_capacity(self.images.len());
        for img in &self.images {
            rows.push(self.model.encoder()?.encode(&img.pixels, img.tiles, self.model.vision_memory_budget)?);
        }
        timings.vision_ms = t.elapsed().as_secs_f64() * 1e3;
        let embeddings: Vec<f32> = rows.concat();

        // 2. prefill: token runs and image rows, positions continuous
        let t = Instant::now();
        let ctx = self.ctx.as_mut().expect("context created above");
        let start = self.n_past;
        let last = segs.len() - 1;
        let n_embd = self.model.llm.n_embd_inp();
        let mut pos = start;
        let prefill = segs.iter().enumerate().try_for_each(|(i, seg)| {
            match seg {
                Segment::Tokens(tok) => ctx.decode_tokens(tok, pos, i == last)?,
                Segment::Image(k) => ctx.decode_embeddings(&rows[*k], pos, i == last)?,
            }
            pos += match seg {
                Segment::Tokens(tok) => tok.len() as i32,
                Segment::Image(k) => (rows[*k].len() / n_embd) as i32,
            };
            Ok::<_, LlamaError>(())
        });
        if let Err(e) = prefill {
            // leave the conversation as it was before this turn
            ctx.truncate(start);
            return Err(e.into());
        }
        self.n_past = pos;
        debug_assert_eq!((self.n_past - start) as usize, ids.len());
        timings.prefill_ms = t.elapsed().as_secs_f64() * 1e3;
        timings.prefill_tokens = ids.len();
        let prompt_logits = ctx.logits().to_vec();
        self.images.clear();
        self.turns += 1;

        // 3. sample
        let t = Instant::now();
        let mut sampler = Sampler::new(&gp.sampler, self.model.llm.n_vocab());
        for &id in &ids {
            if id != self.model.info.img_context {
                sampler.accept(id);
            }
        }
        let mut tokens = Vec::new();
        let mut text = String::new();
        let mut utf8 = Utf8Stream::default();
        let mut stop = StopReason::Length;
        while tokens.len() < gp.n_predict {
            let tok = sampler.sample(ctx);
            let eog = self.model.llm.is_eog(tok);
            if eog && !gp.ignore_eos {
                // keep <|im_end|> in the cache so the next turn follows a closed reply
                ctx.decode_tokens(&[tok], self.n_past, false)?;
                self.n_past += 1;
                stop = StopReason::Eos;
                break;
            }
            tokens.push(tok);
            let piece = utf8.push(&self.model.llm.token_bytes(tok, false));
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
            }
        }
        timings.decode_ms = t.elapsed().as_secs_f64() * 1e3;
        timings.decode_tokens = tokens.len();
        Ok(Generation { tokens, text, prompt_token_ids: ids, image_tokens, tiles, prompt_logits, embeddings, stop, timings })
    }

    /// Forgets the conversation (keeps the context allocation).
    pub fn reset(&mut self) {
        if let Some(c) = &mut self.ctx {
            c.truncate(0);
        }
        self.n_past = 0;
        self.turns = 0;
        self.images.clear();
        self.open_reply = false;
    }
}
