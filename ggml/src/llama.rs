//! The language model through llama.cpp's C API, in safe owning types.
//!
//! llama-cpp-2's safe API cannot decode embedding batches (image rows) and hides its raw
//! context, so sail drives llama.cpp directly here: model, context, batch and sampler chain,
//! each freed by `Drop`. A context holds an `Arc` of its model, so a model shared between
//! sessions (and threads) lives until the last session is gone.

use super::shim;
use super::sys;
use std::ffi::{c_char, c_void, CStr, CString};
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once};

#[derive(Debug, thiserror::Error)]
pub enum LlamaError {
    #[error("{path}: llama.cpp could not load the model{}", fmt_log(.log))]
    Load { path: String, log: Vec<String> },
    #[error("llama.cpp could not create a context (n_ctx {n_ctx}){}", fmt_log(.log))]
    Context { n_ctx: u32, log: Vec<String> },
    #[error("llama_decode failed with status {status} at position {pos}{}", fmt_log(.log))]
    Decode { status: i32, pos: i32, log: Vec<String> },
    #[error("decoding aborted")]
    Aborted,
    #[error("{what}: {got} values, expected {expected}")]
    Size { what: &'static str, got: usize, expected: usize },
    #[error("the context holds {n_ctx} positions; {needed} are needed")]
    ContextFull { n_ctx: u32, needed: usize },
    #[error("no ggml device named {name:?} for the language model (this process sees: {available})")]
    NoDevice { name: String, available: String },
    #[error("tensor split {split:?}: {why}")]
    TensorSplit { split: Vec<f32>, why: String },
    #[error("{what}: llama.cpp raised an exception: {message}")]
    Exception { what: &'static str, message: String },
    #[error("{what} {got} is outside 1..={max}")]
    OutOfRange { what: &'static str, got: usize, max: usize },
    #[error(transparent)]
    Sampler(#[from] SamplerError),
}

/// The most threads ggml runs a graph with (`GGML_MAX_N_THREADS` in ggml.h): its thread
/// tables have this many slots, and larger counts fail inside ggml.
pub const MAX_THREADS: usize = 512;

/// Checks a thread count against [`MAX_THREADS`].
pub fn check_threads(n: usize) -> Result<usize, LlamaError> {
    if (1..=MAX_THREADS).contains(&n) {
        Ok(n)
    } else {
        Err(LlamaError::OutOfRange { what: "thread count", got: n, max: MAX_THREADS })
    }
}

fn exception(what: &'static str) -> LlamaError {
    LlamaError::Exception { what, message: shim::last_exception() }
}

fn fmt_log(log: &[String]) -> String {
    if log.is_empty() {
        String::new()
    } else {
        format!(": {}", log.join(" | "))
    }
}

static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// Characters of one llama.cpp log line kept for an error message.
const MAX_LOG_LINE: usize = 300;
static VERBOSE: AtomicBool = AtomicBool::new(false);
static BUFFERS: Mutex<Vec<BufferReport>> = Mutex::new(Vec::new());

/// A buffer llama.cpp allocated, as its log announces it (`CPU_REPACK model buffer size =
/// 512.00 MiB`): the C API has no other way to tell the repacked weights, the KV cache and the
/// compute buffers apart. Sizes are llama.cpp's (allocated, to 0.01 MiB), not resident pages.
#[derive(Debug, Clone, PartialEq)]
pub struct BufferReport {
    /// The buffer type (`CPU`, `CPU_Mapped`, `CPU_REPACK`, `CUDA0`, …).
    pub name: String,
    /// What it holds: `model`, `KV`, `compute`, `output`, ….
    pub kind: String,
    pub bytes: u64,
}

impl BufferReport {
    fn parse(line: &str) -> Option<BufferReport> {
        let (head, tail) = line.split_once(" buffer size = ")?;
        let mut words = head.rsplit(' ').filter(|w| !w.is_empty());
        let kind = words.next()?.to_string();
        let name = words.next()?.to_string();
        let mib: f64 = tail.split_whitespace().next()?.parse().ok()?;
        tail.contains("MiB").then(|| BufferReport { name, kind, bytes: (mib * 1048576.0).round() as u64 })
    }
}

/// The buffers llama.cpp announced since the last call (oldest first), and forgets them.
pub fn take_buffer_reports() -> Vec<BufferReport> {
    BUFFERS.lock().map(|mut b| std::mem::take(&mut *b)).unwrap_or_default()
}

unsafe extern "C" fn log_cb(level: sys::ggml_log_level, text: *const c_char, _user: *mut c_void) {
    if text.is_null() {
        return;
    }
    // SAFETY: llama.cpp passes a NUL-terminated message valid for the call.
    let s = unsafe { CStr::from_ptr(text) }.to_string_lossy();
    if VERBOSE.load(Ordering::Relaxed) {
        eprint!("{s}");
    }
    if level == sys::GGML_LOG_LEVEL_INFO {
        if let (Some(r), Ok(mut b)) = (BufferReport::parse(s.trim()), BUFFERS.lock()) {
            if b.len() < 256 {
                b.push(r);
            }
        }
    }
    // Errors only: llama.cpp warns about ordinary vocabularies (token attributes and the like),
    // and such lines would bury the reason a load failed.
    if level == sys::GGML_LOG_LEVEL_ERROR {
        if let Ok(mut l) = LOG.lock() {
            // bounded: llama.cpp echoes values from the file (a 70 kB pre-tokenizer name did)
            let mut line: String = s.trim().chars().take(MAX_LOG_LINE).collect();
            if line.len() < s.trim().len() {
                line.push('…');
            }
            if !line.is_empty() {
                l.push(line);
                let n = l.len();
                if n > 8 {
                    l.drain(..n - 8);
                }
            }
        }
    }
}

fn take_log() -> Vec<String> {
    LOG.lock().map(|mut l| std::mem::take(&mut *l)).unwrap_or_default()
}

/// Why a shim call that returns NULL failed: llama.cpp's kept log lines, then the C++
/// exception the shim caught, if any.
fn failure_log() -> Vec<String> {
    let mut log = take_log();
    let e = shim::last_exception();
    if !e.is_empty() {
        log.push(e);
    }
    log
}

/// Initialises llama.cpp once per process and routes its log (to stderr only when verbose;
/// warnings and errors are kept for error messages).
pub fn init(verbose: bool) {
    VERBOSE.store(verbose || std::env::var_os("SAIL_VERBOSE").is_some(), Ordering::Relaxed);
    ensure_init();
}

/// Initialises llama.cpp if nothing has yet, leaving the verbosity as the caller of [`init`]
/// set it.
fn ensure_init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: registers a callback with static lifetime and initialises llama.cpp's global
        // state exactly once (Once).
        unsafe {
            sys::llama_log_set(Some(log_cb), std::ptr::null_mut());
            sys::ggml_log_set(Some(log_cb), std::ptr::null_mut());
            sys::llama_backend_init();
        }
    });
}

/// How to load the language model.
#[derive(Debug, Clone)]
pub struct ModelParams {
    /// Layers to offload to the GPU backend (0: CPU only; −1: all).
    pub n_gpu_layers: i32,
    pub use_mmap: bool,
    /// Let the CPU backend repack quantized weights for speed (costs anonymous memory).
    pub repack: bool,
    /// The devices offloaded layers go to, by ggml name, in order: the first gets the
    /// earliest offloaded layers, the last the output layer. None: llama.cpp's own choice (RPC
    /// devices, then every GPU).
    pub devices: Option<Vec<String>>,
    /// Share of the offloaded layers per entry of `devices` (llama.cpp's `tensor_split`, any
    /// scale); empty: in proportion to each device's free memory.
    pub tensor_split: Vec<f32>,
}

impl Default for ModelParams {
    fn default() -> Self {
        ModelParams { n_gpu_layers: 0, use_mmap: true, repack: true, devices: None, tensor_split: Vec::new() }
    }
}

/// ggml device handles for `names`, NULL-terminated as llama_model_params wants them.
fn device_list(names: &[String]) -> Result<Vec<sys::ggml_backend_dev_t>, LlamaError> {
    let mut out = Vec::with_capacity(names.len() + 1);
    for n in names {
        let d = CString::new(n.as_str())
            .ok()
            // SAFETY: registry lookup by a NUL-terminated name.
            .map(|c| unsafe { sys::ggml_backend_dev_by_name(c.as_ptr()) })
            .filter(|d| !d.is_null());
        match d {
            Some(d) => out.push(d),
            None => {
                let available = crate::devices().iter().map(|d| d.name.clone()).collect::<Vec<_>>().join(", ");
                return Err(LlamaError::NoDevice { name: n.clone(), available });
            }
        }
    }
    out.push(std::ptr::null_mut());
    Ok(out)
}

/// `split` checked and padded to llama.cpp's fixed array of `llama_max_devices()` floats.
fn split_array(split: &[f32], n_devices: Option<usize>) -> Result<Vec<f32>, LlamaError> {
    let err = |why: String| LlamaError::TensorSplit { split: split.to_vec(), why };
    // SAFETY: a constant query.
    let max = unsafe { sys::llama_max_devices() };
    if let Some(n) = n_devices.filter(|&n| n != split.len()) {
        return Err(err(format!("one share per offload device is needed ({n})")));
    }
    if split.len() > max {
        return Err(err(format!("llama.cpp takes at most {max} devices")));
    }
    if split.iter().any(|v| !v.is_finite() || *v < 0.0) || split.iter().sum::<f32>() <= 0.0 {
        return Err(err("shares must be finite, ≥ 0 and not all 0".into()));
    }
    let mut out = split.to_vec();
    out.resize(max, 0.0);
    Ok(out)
}

/// A loaded language model. Immutable after loading, so shareable across threads.
#[derive(Debug)]
pub struct LlamaModel {
    ptr: NonNull<sys::llama_model>,
    vocab: NonNull<sys::llama_vocab>,
}

// SAFETY: llama.cpp documents a model as shareable between contexts on different threads; all
// methods here only read it.
unsafe impl Send for LlamaModel {}
// SAFETY: as above.
unsafe impl Sync for LlamaModel {}

impl LlamaModel {
    pub fn load(path: &Path, params: &ModelParams) -> Result<LlamaModel, LlamaError> {
        ensure_init();
        let err = |log| LlamaError::Load { path: path.display().to_string(), log };
        let c = CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| err(vec!["path contains NUL".into()]))?;
        // SAFETY: default params are a plain struct; we only change scalar fields.
        let mut p = unsafe { sys::llama_model_default_params() };
        p.n_gpu_layers = params.n_gpu_layers;
        p.load_mode = if params.use_mmap { sys::LLAMA_LOAD_MODE_MMAP } else { sys::LLAMA_LOAD_MODE_NONE };
        p.use_extra_bufts = params.repack;
        // Both arrays outlive the load call, the only time llama.cpp reads them.
        let mut devices = params.devices.as_deref().map(device_list).transpose()?;
        if let Some(d) = &mut devices {
            p.devices = d.as_mut_ptr();
        }
        let split = match params.tensor_split.is_empty() {
            true => None,
            false => Some(split_array(&params.tensor_split, devices.as_ref().map(|d| d.len() - 1))?),
        };
        if let Some(s) = &split {
            p.tensor_split = s.as_ptr();
        }
        take_log();
        // SAFETY: valid C path; params by value, its device list NULL-terminated and its split
        // array llama_max_devices() long, both alive until the call returns; the returned model
        // is owned and freed in Drop. Through the shim: an exception comes back as NULL.
        let m = unsafe { shim::sail_shim_model_load(c.as_ptr(), p) };
        let ptr = NonNull::new(m).ok_or_else(|| err(failure_log()))?;
        // SAFETY: the vocab belongs to the live model and lives as long as it.
        let vocab = NonNull::new(unsafe { sys::llama_model_get_vocab(ptr.as_ptr()) } as *mut _)
            .ok_or_else(|| err(vec!["model has no vocabulary".into()]))?;
        Ok(LlamaModel { ptr, vocab })
    }

    fn raw(&self) -> *mut sys::llama_model {
        self.ptr.as_ptr()
    }

    pub fn n_embd(&self) -> usize {
        // SAFETY: live model.
        unsafe { sys::llama_model_n_embd(self.raw()) as usize }
    }

    /// Width of input embedding rows (what an embedding batch carries).
    pub fn n_embd_inp(&self) -> usize {
        // SAFETY: live model.
        unsafe { sys::llama_model_n_embd_inp(self.raw()) as usize }
    }

    pub fn n_vocab(&self) -> usize {
        // SAFETY: live vocab.
        unsafe { sys::llama_vocab_n_tokens(self.vocab.as_ptr()) as usize }
    }

    pub fn n_ctx_train(&self) -> u32 {
        // SAFETY: live model.
        unsafe { sys::llama_model_n_ctx_train(self.raw()) as u32 }
    }

    pub fn n_params(&self) -> u64 {
        // SAFETY: live model.
        unsafe { sys::llama_model_n_params(self.raw()) }
    }

    /// Bytes of weights.
    pub fn size(&self) -> u64 {
        // SAFETY: live model.
        unsafe { sys::llama_model_size(self.raw()) }
    }

    /// llama.cpp's one-line description (e.g. `qwen3 1.7B Q4_K - Medium`).
    pub fn desc(&self) -> String {
        let mut buf = vec![0u8; 256];
        // SAFETY: buf is writable for its length; llama.cpp NUL-terminates within it.
        let n = unsafe { sys::llama_model_desc(self.raw(), buf.as_mut_ptr().cast(), buf.len()) };
        buf.truncate(n.max(0) as usize);
        String::from_utf8_lossy(&buf).into_owned()
    }

    /// Tokenizes `text` (no BOS); `parse_special` lets `<|im_start|>` etc. map to their ids.
    pub fn tokenize(&self, text: &str, parse_special: bool) -> Result<Vec<i32>, LlamaError> {
        let len = i32::try_from(text.len()).map_err(|_| LlamaError::OutOfRange {
            what: "text bytes",
            got: text.len(),
            max: i32::MAX as usize,
        })?;
        let mut out = Vec::new();
        let mut cap = text.len().saturating_add(8).min(i32::MAX as usize);
        loop {
            out.try_reserve_exact(cap).map_err(|_| LlamaError::OutOfRange { what: "token buffer", got: cap, max: out.capacity() })?;
            out.resize(cap, 0);
            // SAFETY: text pointer/len describe a valid UTF-8 buffer of `len` bytes; `out` has
            // room for out.len() (≤ i32::MAX) tokens; a negative return asks for a larger buffer.
            let n = unsafe {
                shim::sail_shim_tokenize(
                    self.vocab.as_ptr(),
                    text.as_ptr().cast(),
                    len,
                    out.as_mut_ptr(),
                    out.len() as i32,
                    false,
                    parse_special,
                )
            };
            if n == i32::MIN {
                return Err(exception("llama_tokenize"));
            }
            if n >= 0 {
                out.truncate(n as usize);
                return Ok(out);
            }
            cap = n.unsigned_abs() as usize;
        }
    }

    /// The bytes a token stands for (special tokens rendered when `special`).
    pub fn token_bytes(&self, token: i32, special: bool) -> Result<Vec<u8>, LlamaError> {
        let mut buf = vec![0u8; 64];
        loop {
            // SAFETY: buf is writable for its length; a negative return is the size needed.
            let n = unsafe {
                shim::sail_shim_token_to_piece(self.vocab.as_ptr(), token, buf.as_mut_ptr().cast(), buf.len() as i32, 0, special)
            };
            if n == i32::MIN {
                return Err(exception("llama_token_to_piece"));
            }
            if n >= 0 {
                buf.truncate(n as usize);
                return Ok(buf);
            }
            let need = n.unsigned_abs() as usize;
            buf.try_reserve_exact(need).map_err(|_| LlamaError::OutOfRange {
                what: "token piece bytes",
                got: need,
                max: buf.capacity(),
            })?;
            buf.resize(need, 0);
        }
    }

    /// End of generation (`<|im_end|>`, `<|endoftext|>`, …); false for an id outside the
    /// vocabulary.
    pub fn is_eog(&self, token: i32) -> bool {
        // SAFETY: live vocab; an out-of-range id makes llama.cpp throw, which the shim catches.
        unsafe { shim::sail_shim_is_eog(self.vocab.as_ptr(), token) == 1 }
    }

    /// A metadata string value from the GGUF.
    pub fn meta(&self, key: &str) -> Option<String> {
        let k = CString::new(key).ok()?;
        let mut buf = vec![0u8; 1024];
        // SAFETY: buf writable for its length; returns the full length or −1.
        let n = unsafe { sys::llama_model_meta_val_str(self.raw(), k.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            return None;
        }
        if n as usize >= buf.len() {
            buf.resize(n as usize + 1, 0);
            // SAFETY: as above, with a buffer of the reported size.
            unsafe { sys::llama_model_meta_val_str(self.raw(), k.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        }
        buf.truncate(n as usize);
        String::from_utf8(buf).ok()
    }
}

impl Drop for LlamaModel {
    fn drop(&mut self) {
        // SAFETY: loaded by llama_model_load_from_file, freed once; contexts hold an Arc to
        // the model, so none outlives it.
        unsafe { sys::llama_model_free(self.ptr.as_ptr()) }
    }
}

/// Context (KV cache) settings.
#[derive(Debug, Clone)]
pub struct ContextParams {
    pub n_ctx: u32,
    pub n_batch: u32,
    pub n_threads: usize,
    /// f32 KV cache (exact parity); f16 otherwise (half the memory).
    pub kv_f32: bool,
}

/// A decoding context over a shared model; one thread at a time.
#[derive(Debug)]
pub struct LlamaContext {
    ptr: NonNull<sys::llama_context>,
    n_ctx: u32,
    n_batch: u32,
    abort: Arc<AtomicBool>,
    // After ptr in drop order: the context is freed before the model reference goes.
    model: Arc<LlamaModel>,
}

// SAFETY: a llama_context may move between threads; &mut self serialises use.
unsafe impl Send for LlamaContext {}

unsafe extern "C" fn abort_cb(data: *mut c_void) -> bool {
    // SAFETY: `data` is the AtomicBool inside the context's Arc, alive while the context is.
    unsafe { (*(data as *const AtomicBool)).load(Ordering::Relaxed) }
}

/// An owned llama_batch, freed on drop.
struct Batch(sys::llama_batch);

impl Drop for Batch {
    fn drop(&mut self) {
        // SAFETY: allocated by llama_batch_init, freed once.
        unsafe { sys::llama_batch_free(self.0) }
    }
}

impl LlamaContext {
    pub fn new(model: Arc<LlamaModel>, p: &ContextParams) -> Result<LlamaContext, LlamaError> {
        let threads = check_threads(p.n_threads)? as i32;
        // SAFETY: default params are a plain struct; we set scalar fields only.
        let mut cp = unsafe { sys::llama_context_default_params() };
        cp.n_ctx = p.n_ctx;
        cp.n_batch = p.n_batch.min(p.n_ctx);
        cp.n_ubatch = cp.n_batch;
        cp.n_seq_max = 1;
        cp.n_threads = threads;
        cp.n_threads_batch = threads;
        cp.no_perf = true;
        if p.kv_f32 {
            cp.type_k = sys::GGML_TYPE_F32;
            cp.type_v = sys::GGML_TYPE_F32;
        }
        let abort = Arc::new(AtomicBool::new(false));
        cp.abort_callback = Some(abort_cb);
        cp.abort_callback_data = Arc::as_ptr(&abort) as *mut c_void;
        take_log();
        // SAFETY: model is live (we keep an Arc); params by value; freed in Drop. Through the
        // shim: an exception comes back as NULL.
        let c = unsafe { shim::sail_shim_init_from_model(model.raw(), cp) };
        let ptr = NonNull::new(c).ok_or_else(|| LlamaError::Context { n_ctx: p.n_ctx, log: failure_log() })?;
        // SAFETY: live context.
        let n_ctx = unsafe { sys::llama_n_ctx(ptr.as_ptr()) };
        Ok(LlamaContext { ptr, n_ctx, n_batch: cp.n_batch, abort, model })
    }

    pub fn model(&self) -> &Arc<LlamaModel> {
        &self.model
    }

    pub fn n_ctx(&self) -> u32 {
        self.n_ctx
    }

    /// A flag that, once set, makes the running decode return [`LlamaError::Aborted`].
    pub fn abort_flag(&self) -> Arc<AtomicBool> {
        self.abort.clone()
    }

    pub fn set_threads(&mut self, n: usize) -> Result<(), LlamaError> {
        let n = check_threads(n)? as i32;
        // SAFETY: live context; n within ggml's thread limit.
        unsafe { sys::llama_set_n_threads(self.ptr.as_ptr(), n, n) };
        Ok(())
    }

    fn check_room(&self, pos0: i32, n: usize) -> Result<(), LlamaError> {
        let needed = usize::try_from(pos0).unwrap_or(usize::MAX).saturating_add(n);
        if pos0 < 0 || needed > self.n_ctx as usize {
            return Err(LlamaError::ContextFull { n_ctx: self.n_ctx, needed });
        }
        Ok(())
    }

    fn run(&mut self, batch: &Batch, pos: i32) -> Result<(), LlamaError> {
        take_log();
        // SAFETY: live context; the batch's arrays hold n_tokens valid entries (filled by
        // the callers below). Through the shim: an exception comes back as a status.
        let st = unsafe { shim::sail_shim_decode(self.ptr.as_ptr(), batch.0) };
        match st {
            0 => Ok(()),
            shim::EXCEPTION => Err(exception("llama_decode")),
            2 if self.abort.load(Ordering::Relaxed) => Err(LlamaError::Aborted),
            s => Err(LlamaError::Decode { status: s, pos, log: take_log() }),
        }
    }

    /// Decodes `tokens` at positions `pos0..`; logits are kept for the last one if `logits`.
    pub fn decode_tokens(&mut self, tokens: &[i32], pos0: i32, logits: bool) -> Result<(), LlamaError> {
        self.check_room(pos0, tokens.len())?;
        let nb = self.n_batch as usize;
        for (ci, chunk) in tokens.chunks(nb).enumerate() {
            // SAFETY: allocates token/pos/seq/logits arrays for chunk.len() entries.
            let b = Batch(unsafe { sys::llama_batch_init(chunk.len() as i32, 0, 1) });
            let start = pos0 + (ci * nb) as i32;
            let last_chunk = (ci + 1) * nb >= tokens.len();
            for (i, &t) in chunk.iter().enumerate() {
                // SAFETY: i < chunk.len(), the capacity the batch was created with; seq_id[i]
                // points to an array of n_seq_max (1) ids.
                unsafe {
                    *b.0.token.add(i) = t;
                    *b.0.pos.add(i) = start + i as i32;
                    *b.0.n_seq_id.add(i) = 1;
                    **b.0.seq_id.add(i) = 0;
                    *b.0.logits.add(i) = (logits && last_chunk && i + 1 == chunk.len()) as i8;
                }
            }
            let mut b = b;
            b.0.n_tokens = chunk.len() as i32;
            self.run(&b, start)?;
        }
        Ok(())
    }

    /// Decodes `n` embedding rows (`rows` = n × n_embd_inp floats) at positions `pos0..`.
    pub fn decode_embeddings(&mut self, rows: &[f32], pos0: i32, logits: bool) -> Result<(), LlamaError> {
        let d = self.model.n_embd_inp();
        if !rows.len().is_multiple_of(d) {
            return Err(LlamaError::Size { what: "embedding rows", got: rows.len(), expected: rows.len() / d * d });
        }
        let n = rows.len() / d;
        self.check_room(pos0, n)?;
        let nb = self.n_batch as usize;
        for ci in 0..n.div_ceil(nb) {
            let s = ci * nb;
            let m = nb.min(n - s);
            // SAFETY: allocates embd (m × d floats), pos/seq/logits for m entries.
            let mut b = Batch(unsafe { sys::llama_batch_init(m as i32, d as i32, 1) });
            // SAFETY: embd has room for m·d floats; the source slice has exactly that many.
            unsafe { std::ptr::copy_nonoverlapping(rows[s * d..(s + m) * d].as_ptr(), b.0.embd, m * d) };
            for i in 0..m {
                // SAFETY: i < m, the batch capacity; one seq id per token.
                unsafe {
                    *b.0.pos.add(i) = pos0 + (s + i) as i32;
                    *b.0.n_seq_id.add(i) = 1;
                    **b.0.seq_id.add(i) = 0;
                    *b.0.logits.add(i) = (logits && s + i + 1 == n) as i8;
                }
            }
            b.0.n_tokens = m as i32;
            self.run(&b, pos0 + s as i32)?;
        }
        Ok(())
    }

    /// Logits of the last decoded position that asked for them.
    pub fn logits(&self) -> &[f32] {
        // SAFETY: llama.cpp returns a buffer of n_vocab floats owned by the context, valid
        // until the next decode, which needs &mut self.
        unsafe {
            let p = sys::llama_get_logits_ith(self.ptr.as_ptr(), -1);
            if p.is_null() {
                return &[];
            }
            std::slice::from_raw_parts(p, self.model.n_vocab())
        }
    }

    /// Forgets positions `pos..` (all with 0).
    pub fn truncate(&mut self, pos: i32) {
        // SAFETY: live context; its memory module removes a range of sequence 0.
        unsafe {
            let mem = sys::llama_get_memory(self.ptr.as_ptr());
            if pos <= 0 {
                sys::llama_memory_clear(mem, true);
            } else {
                sys::llama_memory_seq_rm(mem, 0, pos, -1);
            }
        }
    }

    pub(crate) fn raw(&self) -> *mut sys::llama_context {
        self.ptr.as_ptr()
    }
}

impl Drop for LlamaContext {
    fn drop(&mut self) {
        // SAFETY: created by llama_init_from_model, freed once, before the model Arc drops.
        unsafe { sys::llama_free(self.ptr.as_ptr()) }
    }
}

/// Sampling settings (llama.cpp's sampler chain).
#[derive(Debug, Clone, PartialEq)]
pub struct SamplerParams {
    /// 0 = greedy.
    pub temperature: f32,
    /// 0 = off.
    pub top_k: i32,
    /// 1 = off.
    pub top_p: f32,
    /// 0 = off.
    pub min_p: f32,
    /// 1 = off.
    pub repeat_penalty: f32,
    pub repeat_last_n: i32,
    pub seed: u32,
}

impl Default for SamplerParams {
    fn default() -> Self {
        SamplerParams { temperature: 0.0, top_k: 0, top_p: 1.0, min_p: 0.0, repeat_penalty: 1.0, repeat_last_n: 64, seed: 0 }
    }
}

/// A sampling value llama.cpp would misbehave on, named by its field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SamplerError {
    #[error("temperature {0} must be finite and ≥ 0")]
    Temperature(f32),
    #[error("top_k {0} must be ≥ 0")]
    TopK(i32),
    #[error("top_p {0} must be in (0, 1]")]
    TopP(f32),
    #[error("min_p {0} must be in [0, 1]")]
    MinP(f32),
    #[error("repeat_penalty {0} must be finite and > 0")]
    RepeatPenalty(f32),
    #[error("repeat_last_n {0} must be in 0..={max}", max = SamplerParams::MAX_REPEAT_LAST_N)]
    RepeatLastN(i32),
}

impl SamplerParams {
    /// The longest penalty window: llama.cpp allocates a ring buffer of this many tokens.
    pub const MAX_REPEAT_LAST_N: i32 = 1 << 16;

    /// Rejects values llama.cpp would misbehave on (or abort on), naming the field.
    pub fn validate(&self) -> Result<(), SamplerError> {
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return Err(SamplerError::Temperature(self.temperature));
        }
        if self.top_k < 0 {
            return Err(SamplerError::TopK(self.top_k));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(SamplerError::TopP(self.top_p));
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return Err(SamplerError::MinP(self.min_p));
        }
        if !(self.repeat_penalty.is_finite() && self.repeat_penalty > 0.0) {
            return Err(SamplerError::RepeatPenalty(self.repeat_penalty));
        }
        if !(0..=Self::MAX_REPEAT_LAST_N).contains(&self.repeat_last_n) {
            return Err(SamplerError::RepeatLastN(self.repeat_last_n));
        }
        Ok(())
    }
}

/// A llama.cpp sampler chain.
#[derive(Debug)]
pub struct Sampler {
    ptr: NonNull<sys::llama_sampler>,
}

// SAFETY: a sampler is plain state; &mut self serialises use.
unsafe impl Send for Sampler {}

impl Sampler {
    /// The chain for `p` (checked with [`SamplerParams::validate`] first).
    pub fn new(p: &SamplerParams, n_vocab: usize) -> Result<Sampler, LlamaError> {
        p.validate()?;
        let sp = shim::SamplerParams {
            n_vocab: i32::try_from(n_vocab).unwrap_or(i32::MAX),
            temperature: p.temperature,
            top_k: p.top_k,
            top_p: p.top_p,
            min_p: p.min_p,
            repeat_penalty: p.repeat_penalty,
            repeat_last_n: p.repeat_last_n,
            seed: p.seed,
        };
        // SAFETY: sp is a valid struct for the call; the chain owns every sampler added to it
        // and is freed in Drop; an exception comes back as NULL (nothing leaked).
        let chain = unsafe { shim::sail_shim_sampler_chain(&sp) };
        NonNull::new(chain).map(|ptr| Sampler { ptr }).ok_or_else(|| exception("llama_sampler_chain"))
    }

    /// Samples from the context's last logits and records the token in the chain's history.
    pub fn sample(&mut self, ctx: &LlamaContext) -> Result<i32, LlamaError> {
        let mut tok = 0;
        // SAFETY: live sampler and context; idx −1 = the last logits row; `tok` is writable.
        match unsafe { shim::sail_shim_sampler_sample(self.ptr.as_ptr(), ctx.raw(), -1, &mut tok) } {
            0 => Ok(tok),
            _ => Err(exception("llama_sampler_sample")),
        }
    }

    /// Records a token that was not sampled (prompt tokens, for the repetition penalty).
    pub fn accept(&mut self, token: i32) -> Result<(), LlamaError> {
        // SAFETY: live sampler.
        match unsafe { shim::sail_shim_sampler_accept(self.ptr.as_ptr(), token) } {
            0 => Ok(()),
            _ => Err(exception("llama_sampler_accept")),
        }
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        // SAFETY: the chain was created by chain_init and owns its samplers; freed once.
        unsafe { sys::llama_sampler_free(self.ptr.as_ptr()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The log is process-wide: tests that read it or make llama.cpp log take turns.
    static LOG_USERS: Mutex<()> = Mutex::new(());

    /// Issue #11 item 12: llama.cpp's warnings about ordinary vocabularies ("control token …
    /// is not marked as EOG", eight of them) came before the reason a load failed.
    #[test]
    fn only_errors_reach_error_messages() {
        let _g = LOG_USERS.lock().unwrap_or_else(|e| e.into_inner());
        take_log();
        let warn = c"load: control token: 151677 '</box>' is not marked as EOG\n";
        let error = c"llama_model_load: error loading model: something broke\n";
        // SAFETY: NUL-terminated strings valid for the calls; user data unused.
        unsafe {
            log_cb(sys::GGML_LOG_LEVEL_WARN, warn.as_ptr(), std::ptr::null_mut());
            log_cb(sys::GGML_LOG_LEVEL_ERROR, error.as_ptr(), std::ptr::null_mut());
        }
        assert_eq!(take_log(), vec!["llama_model_load: error loading model: something broke".to_string()]);
        // a value from a hostile file, echoed by llama.cpp, is cut short
        let long = std::ffi::CString::new(format!("unknown pre-tokenizer type: '{}'", "x".repeat(70_000))).unwrap();
        // SAFETY: as above.
        unsafe { log_cb(sys::GGML_LOG_LEVEL_ERROR, long.as_ptr(), std::ptr::null_mut()) };
        let kept = take_log();
        assert!(kept[0].chars().count() <= MAX_LOG_LINE + 1 && kept[0].ends_with('…'), "{}", kept[0].len());
    }

    #[test]
    fn thread_counts_are_bounded() {
        assert!(check_threads(0).is_err());
        assert!(check_threads(MAX_THREADS + 1).is_err());
        assert!(check_threads(i32::MAX as usize).is_err());
        assert_eq!(check_threads(MAX_THREADS).unwrap(), MAX_THREADS);
    }

    /// llama.cpp throws std::out_of_range for a token id outside the vocabulary; through the
    /// shim that is an error value, where it used to abort the process ("Rust cannot catch
    /// foreign exceptions").
    #[test]
    fn cpp_exceptions_become_errors() {
        let _g = LOG_USERS.lock().unwrap_or_else(|e| e.into_inner());
        let dir = std::env::temp_dir().join(format!("sail-ggml-shim-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = sail_format::fixture::write_pair(&dir, "m", false).unwrap();
        init(false);
        let m = LlamaModel::load(&path, &ModelParams::default()).unwrap();
        let e = m.token_bytes(10_000_000, false).unwrap_err();
        assert!(matches!(e, LlamaError::Exception { what: "llama_token_to_piece", .. }), "{e}");
        assert!(!m.is_eog(-7));
        assert_eq!(m.tokenize("<|im_end|>", true).unwrap().len(), 1);
        assert!(m.tokenize("<|im_end|>", false).unwrap().len() > 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn buffer_lines_parse() {
        let r = |l: &str| BufferReport::parse(l).map(|b| (b.name, b.kind, b.bytes));
        let mib = 1u64 << 20;
        assert_eq!(
            r("load_tensors:   CPU_REPACK model buffer size =   512.00 MiB"),
            Some(("CPU_REPACK".into(), "model".into(), 512 * mib))
        );
        assert_eq!(r("llama_kv_cache:        CPU KV buffer size =    56.00 MiB"), Some(("CPU".into(), "KV".into(), 56 * mib)));
        assert_eq!(r("llama_context:        CPU  output buffer size =     0.50 MiB"), Some(("CPU".into(), "output".into(), mib / 2)));
        assert_eq!(r("llama_kv_cache: size =   56.00 MiB (  1024 cells,  28 layers,  1/1 seqs)"), None);
        assert_eq!(r("buffer size = 3 MiB"), None);
    }
}
