//! The C ABI of sail (`include/sail.h`), for hosts that are not Rust: Android/iOS apps, C and
//! C++ programs, other languages' FFI.
//!
//! Why it looks the way it does:
//! * C cannot be trusted to pass valid values, and a Rust panic must never unwind into C
//!   frames. So every export runs its body inside [`std::panic::catch_unwind`], checks every
//!   pointer for NULL and every size before reading, and turns each failure into a stable
//!   integer status plus a per-thread message.
//! * A model handle is a box around an `Arc<Model>` and every session holds its own `Arc`, so
//!   `sail_model_free` can never pull weights out from under a live session: it only drops the
//!   caller's reference.
//! * A session sits behind a mutex taken with `try_lock`, so the "one thread at a time" rule is
//!   enforced (`SAIL_ERR_BUSY`) rather than left to undefined behaviour, including re-entry from
//!   the session's own token callback.
//! * The exports are the only `unsafe` outside `sail::ggml`: raw pointers are unavoidable at
//!   this boundary, and each block states what the caller guarantees.
//! * Values a host passes are range-checked here or by the library before anything reaches
//!   llama.cpp (thread counts, sampling windows, context sizes), and the llama.cpp calls that
//!   can throw a C++ exception go through `sail-ggml`'s try/catch shim, so neither a Rust panic
//!   nor a C++ exception ever reaches the host.
//!
//! `tests/header_sync.rs` keeps `sail.h` and the `#[no_mangle]` items here in step.

#![allow(non_camel_case_types)]

use sail::cache::{self, CacheParams};
use sail::format::gguf::GgufError;
use sail::ggml::rpc::RpcError;
use sail::ggml::{LlamaError, SamplerParams, MAX_THREADS};
use sail::session::{GenerateParams, Model, ModelParams, SailError, Session, SessionParams, StopReason};
use sail::vision::decode::{self, ImageLimits, PreprocessError, DEFAULT_MAX_PIXELS};
use std::cell::RefCell;
use std::ffi::{c_char, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

/// A status code; values are part of the ABI (checked against `sail.h` by the tests).
pub type sail_status = i32;

pub const SAIL_OK: sail_status = 0;
pub const SAIL_ERR_INVALID_ARGUMENT: sail_status = 1;
pub const SAIL_ERR_FILE_NOT_FOUND: sail_status = 2;
pub const SAIL_ERR_BAD_MODEL: sail_status = 3;
pub const SAIL_ERR_NO_VISION: sail_status = 4;
pub const SAIL_ERR_BAD_IMAGE: sail_status = 5;
pub const SAIL_ERR_CONTEXT_FULL: sail_status = 6;
pub const SAIL_ERR_GENERATION_FAILED: sail_status = 7;
pub const SAIL_ERR_BUSY: sail_status = 8;
pub const SAIL_ERR_INTERNAL: sail_status = 9;
pub const SAIL_ERR_RPC: sail_status = 10;

/// The most CPU threads (ggml's `GGML_MAX_N_THREADS`).
pub const SAIL_MAX_THREADS: i32 = 512;
const _: () = assert!(SAIL_MAX_THREADS as usize == MAX_THREADS);

pub const SAIL_KV_AUTO: i32 = 0;
pub const SAIL_KV_F16: i32 = 1;
pub const SAIL_KV_F32: i32 = 2;

pub const SAIL_STOP_NONE: i32 = 0;
pub const SAIL_STOP_EOS: i32 = 1;
pub const SAIL_STOP_LENGTH: i32 = 2;
pub const SAIL_STOP_CALLBACK: i32 = 3;

/// `struct sail_model_params`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct sail_model_params {
    pub mmproj_path: *const c_char,
    pub vision_device: *const c_char,
    pub n_threads: i32,
    pub n_gpu_layers: i32,
    pub use_mmap: bool,
    pub verbose: bool,
    pub rpc_servers: *const c_char,
    pub tensor_split: *const f32,
    pub n_tensor_split: i32,
    pub cache_dir: *const c_char,
    pub cache_disk_bytes: u64,
    pub cache_memory_bytes: u64,
    pub repack: bool,
}

/// `struct sail_session_params`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct sail_session_params {
    pub system_prompt: *const c_char,
    pub max_pixels: u64,
    pub n_ctx: u32,
    pub n_batch: u32,
    pub n_threads: i32,
    pub max_tiles: i32,
    pub kv_type: i32,
    pub parse_special: bool,
}

/// `struct sail_generate_params`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct sail_generate_params {
    pub n_predict: i32,
    pub temperature: f32,
    pub top_k: i32,
    pub top_p: f32,
    pub min_p: f32,
    pub repeat_penalty: f32,
    pub repeat_last_n: i32,
    pub seed: u32,
    pub ignore_eos: bool,
    pub think: bool,
}

/// `struct sail_generation_info`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct sail_generation_info {
    pub n_tokens: i32,
    pub n_prompt_tokens: i32,
    pub n_image_tokens: i32,
    pub n_tiles: i32,
    pub stop_reason: i32,
    pub n_past: i32,
    pub vision_ms: f64,
    pub prefill_ms: f64,
    pub decode_ms: f64,
    pub n_tiles_encoded: i32,
}

/// `sail_token_callback`: (token id, NUL-terminated UTF-8 piece, user data) → continue?
pub type sail_token_callback = Option<unsafe extern "C" fn(token: i32, piece: *const c_char, user_data: *mut c_void) -> bool>;

/// `sail_model`: the caller's reference to shared weights.
#[derive(Debug)]
pub struct sail_model {
    model: Arc<Model>,
}

/// `sail_session`: a conversation, used by one call at a time.
#[derive(Debug)]
pub struct sail_session {
    state: Mutex<SessionState>,
}

#[derive(Debug)]
struct SessionState {
    session: Session,
    max_tiles: Option<u32>,
    limits: ImageLimits,
    last_tokens: Vec<i32>,
    last_text: CString,
    last_info: sail_generation_info,
}

impl SessionState {
    fn clear_last(&mut self) {
        self.last_tokens.clear();
        self.last_text = CString::default();
        self.last_info = sail_generation_info::default();
    }
}

// The threading contract in sail.h rests on these: a model shared by threads, a session that
// may move between threads (its mutex gives one caller at a time).
const _: () = {
    const fn shareable<T: Send + Sync>() {}
    shareable::<sail_model>();
    shareable::<sail_session>();
};

// ---------------------------------------------------------------------------------------------
// Failures, the panic guard and the per-thread message

/// A failed call: its status and the message `sail_last_error_message` will return.
#[derive(Debug)]
struct Failure {
    status: sail_status,
    message: String,
}

impl Failure {
    fn new(status: sail_status, message: impl Into<String>) -> Failure {
        Failure { status, message: message.into() }
    }
    fn invalid(message: impl Into<String>) -> Failure {
        Failure::new(SAIL_ERR_INVALID_ARGUMENT, message)
    }
}

/// Where a library error happened; the same error means different things at load and later.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Load,
    Image,
    Generate,
}

fn not_found(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::NotFound
}

fn status_of(e: &SailError, phase: Phase) -> sail_status {
    match e {
        SailError::Gguf(GgufError::Io { error, .. }) if not_found(error) => SAIL_ERR_FILE_NOT_FOUND,
        SailError::Gguf(_) | SailError::Hparams(_) | SailError::Invalid(_) => SAIL_ERR_BAD_MODEL,
        SailError::Vision(_) if phase == Phase::Load => SAIL_ERR_BAD_MODEL,
        SailError::Vision(_) => SAIL_ERR_GENERATION_FAILED,
        SailError::Llama(LlamaError::Load { .. }) => SAIL_ERR_BAD_MODEL,
        SailError::Llama(LlamaError::ContextFull { .. }) | SailError::PromptTooLong { .. } => SAIL_ERR_CONTEXT_FULL,
        SailError::Llama(LlamaError::NoDevice { .. } | LlamaError::TensorSplit { .. }) => SAIL_ERR_INVALID_ARGUMENT,
        SailError::Llama(_) => SAIL_ERR_GENERATION_FAILED,
        SailError::Image(PreprocessError::Io { error, .. }) if not_found(error) => SAIL_ERR_FILE_NOT_FOUND,
        SailError::Image(PreprocessError::InvalidConfig(_)) => SAIL_ERR_INVALID_ARGUMENT,
        SailError::Image(_) => SAIL_ERR_BAD_IMAGE,
        SailError::NoVision { .. } => SAIL_ERR_NO_VISION,
        SailError::Sampler(_) => SAIL_ERR_INVALID_ARGUMENT,
        SailError::Prompt(_) | SailError::MixedMedia | SailError::OutOfRange { .. } => SAIL_ERR_INVALID_ARGUMENT,
        SailError::TokensPerTile { .. } | SailError::ControlToken { .. } => SAIL_ERR_BAD_MODEL,
        SailError::Rpc(RpcError::BadEndpoint { .. }) => SAIL_ERR_INVALID_ARGUMENT,
        SailError::Rpc(_) => SAIL_ERR_RPC,
        SailError::Cache(_) => SAIL_ERR_INVALID_ARGUMENT,
    }
}

fn failed(phase: Phase) -> impl Fn(SailError) -> Failure {
    move |e| Failure::new(status_of(&e, phase), e.to_string())
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: &str) {
    let c = CString::new(message.replace('\0', " ")).unwrap_or_default();
    // A thread being torn down has no slot left; the status alone must do then.
    let _ = LAST_ERROR.try_with(|e| *e.borrow_mut() = c);
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    let what = p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned());
    format!("internal error (a bug in sail): {}", what.unwrap_or_else(|| "panic".into()))
}

/// Runs `f`, catching panics; returns the status and records the message of a failure.
fn guard(f: impl FnOnce() -> Result<(), Failure>) -> sail_status {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => SAIL_OK,
        Ok(Err(e)) => {
            set_last_error(&e.message);
            e.status
        }
        Err(p) => {
            set_last_error(&panic_message(p.as_ref()));
            SAIL_ERR_INTERNAL
        }
    }
}

/// [`guard`] for calls that return a value: `fallback` on failure or panic.
fn guard_value<T>(fallback: T, f: impl FnOnce() -> Result<T, Failure>) -> T {
    let mut out = None;
    let st = guard(|| {
        out = Some(f()?);
        Ok(())
    });
    match out {
        Some(v) if st == SAIL_OK => v,
        _ => fallback,
    }
}

/// [`guard`] for constructors: a new handle, or NULL, with the status for `*err`.
fn guard_new<T>(f: impl FnOnce() -> Result<Box<T>, Failure>) -> (sail_status, *mut T) {
    let mut out = None;
    let st = guard(|| {
        out = Some(f()?);
        Ok(())
    });
    match out {
        Some(b) if st == SAIL_OK => (st, Box::into_raw(b)),
        _ => (st, std::ptr::null_mut()),
    }
}

/// Stores a constructor's status where the caller asked (nowhere for NULL).
///
/// # Safety
/// `err` is NULL or valid for writing one `sail_status`.
unsafe fn report<T>(err: *mut sail_status, (st, handle): (sail_status, *mut T)) -> *mut T {
    if !err.is_null() {
        // SAFETY: non-NULL, and the caller guarantees it is writable.
        unsafe { err.write(st) };
    }
    handle
}

// ---------------------------------------------------------------------------------------------
// Reading arguments

/// # Safety
/// `p` is NULL or a NUL-terminated string that stays valid for `'a`.
unsafe fn c_str<'a>(p: *const c_char, what: &str) -> Result<&'a CStr, Failure> {
    if p.is_null() {
        return Err(Failure::invalid(format!("{what} is NULL")));
    }
    // SAFETY: non-NULL, and the caller guarantees a NUL-terminated string alive for 'a.
    Ok(unsafe { CStr::from_ptr(p) })
}

/// # Safety
/// As [`c_str`].
unsafe fn utf8<'a>(p: *const c_char, what: &str) -> Result<&'a str, Failure> {
    // SAFETY: forwarded contract.
    let c = unsafe { c_str(p, what) }?;
    c.to_str().map_err(|_| Failure::invalid(format!("{what} is not valid UTF-8")))
}

/// # Safety
/// As [`c_str`].
unsafe fn path(p: *const c_char, what: &str) -> Result<PathBuf, Failure> {
    // SAFETY: forwarded contract.
    let c = unsafe { c_str(p, what) }?;
    if c.is_empty() {
        return Err(Failure::invalid(format!("{what} is empty")));
    }
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        Ok(PathBuf::from(std::ffi::OsStr::from_bytes(c.to_bytes())))
    }
    #[cfg(not(unix))]
    {
        c.to_str().map(PathBuf::from).map_err(|_| Failure::invalid(format!("{what} is not valid UTF-8")))
    }
}

/// # Safety
/// `p` is NULL or points to a live `sail_model` from `sail_model_load`.
unsafe fn model_ref<'a>(p: *const sail_model) -> Result<&'a sail_model, Failure> {
    // SAFETY: NULL or a live handle (caller's contract); `as_ref` handles NULL.
    unsafe { p.as_ref() }.ok_or_else(|| Failure::invalid("model is NULL"))
}

/// # Safety
/// `p` is NULL or points to a live `sail_session` from `sail_session_new`.
unsafe fn session_ref<'a>(p: *const sail_session) -> Result<&'a sail_session, Failure> {
    // SAFETY: NULL or a live handle (caller's contract); `as_ref` handles NULL.
    unsafe { p.as_ref() }.ok_or_else(|| Failure::invalid("session is NULL"))
}

const BUSY: &str = "the session is in use by another call (another thread, or its own token callback)";
const POISONED: &str = "an earlier call on this session failed internally; sail_session_reset() makes it usable again";

fn lock(s: &sail_session) -> Result<MutexGuard<'_, SessionState>, Failure> {
    match s.state.try_lock() {
        Ok(g) => Ok(g),
        Err(TryLockError::WouldBlock) => Err(Failure::new(SAIL_ERR_BUSY, BUSY)),
        Err(TryLockError::Poisoned(_)) => Err(Failure::new(SAIL_ERR_INTERNAL, POISONED)),
    }
}

/// A thread count: 0 (the default) or 1..=MAX_THREADS (ggml's limit; INT32_MAX used to crash
/// the host inside ggml).
fn threads(n: i32, what: &str) -> Result<usize, Failure> {
    match usize::try_from(n) {
        Ok(n) if n <= MAX_THREADS => Ok(n),
        _ => Err(Failure::invalid(format!("{what} {n} is outside 0..={MAX_THREADS} (0 means the default)"))),
    }
}

// ---------------------------------------------------------------------------------------------
// Status text and defaults

/// `const char *sail_status_string(sail_status)`.
#[no_mangle]
pub extern "C" fn sail_status_string(status: sail_status) -> *const c_char {
    let s: &'static CStr = match status {
        SAIL_OK => c"ok",
        SAIL_ERR_INVALID_ARGUMENT => c"invalid argument",
        SAIL_ERR_FILE_NOT_FOUND => c"file not found",
        SAIL_ERR_BAD_MODEL => c"bad model file",
        SAIL_ERR_NO_VISION => c"the model has no vision file",
        SAIL_ERR_BAD_IMAGE => c"bad image",
        SAIL_ERR_CONTEXT_FULL => c"context full",
        SAIL_ERR_GENERATION_FAILED => c"generation failed",
        SAIL_ERR_BUSY => c"session busy",
        SAIL_ERR_INTERNAL => c"internal error",
        SAIL_ERR_RPC => c"RPC server unreachable or incompatible",
        _ => c"unknown status",
    };
    s.as_ptr()
}

/// `const char *sail_last_error_message(void)`.
#[no_mangle]
pub extern "C" fn sail_last_error_message() -> *const c_char {
    // The CString's heap buffer stays put until the next failure on this thread replaces it.
    LAST_ERROR.try_with(|e| e.borrow().as_ptr()).unwrap_or(c"".as_ptr())
}

fn default_model_params() -> sail_model_params {
    sail_model_params {
        mmproj_path: std::ptr::null(),
        vision_device: std::ptr::null(),
        n_threads: 0,
        n_gpu_layers: 0,
        use_mmap: true,
        verbose: false,
        rpc_servers: std::ptr::null(),
        tensor_split: std::ptr::null(),
        n_tensor_split: 0,
        cache_dir: std::ptr::null(),
        cache_disk_bytes: cache::DEFAULT_DISK_BYTES,
        cache_memory_bytes: cache::DEFAULT_MEMORY_BYTES as u64,
        repack: true,
    }
}

fn default_session_params() -> sail_session_params {
    sail_session_params {
        system_prompt: std::ptr::null(),
        max_pixels: DEFAULT_MAX_PIXELS,
        n_ctx: 0,
        n_batch: 512,
        n_threads: 0,
        max_tiles: 0,
        kv_type: SAIL_KV_AUTO,
        parse_special: false,
    }
}

fn default_generate_params() -> sail_generate_params {
    let g = GenerateParams::default();
    let s = &g.sampler;
    sail_generate_params {
        n_predict: g.n_predict.try_into().unwrap_or(i32::MAX),
        temperature: s.temperature,
        top_k: s.top_k,
        top_p: s.top_p,
        min_p: s.min_p,
        repeat_penalty: s.repeat_penalty,
        repeat_last_n: s.repeat_last_n,
        seed: s.seed,
        ignore_eos: g.ignore_eos,
        think: g.think,
    }
}

/// `struct sail_model_params sail_model_default_params(void)`.
#[no_mangle]
pub extern "C" fn sail_model_default_params() -> sail_model_params {
    guard_value(default_model_params(), || Ok(default_model_params()))
}

/// `struct sail_session_params sail_session_default_params(void)`.
#[no_mangle]
pub extern "C" fn sail_session_default_params() -> sail_session_params {
    guard_value(default_session_params(), || Ok(default_session_params()))
}

/// `struct sail_generate_params sail_generate_default_params(void)`.
#[no_mangle]
pub extern "C" fn sail_generate_default_params() -> sail_generate_params {
    guard_value(default_generate_params(), || Ok(default_generate_params()))
}

// ---------------------------------------------------------------------------------------------
// Model

fn load_model(
    path: PathBuf,
    p: &sail_model_params,
    mmproj: Option<PathBuf>,
    device: Option<String>,
    rpc: Option<String>,
    tensor_split: Vec<f32>,
    cache_dir: Option<PathBuf>,
) -> Result<Box<sail_model>, Failure> {
    sail::ggml::llama_init(p.verbose);
    if !path.exists() {
        return Err(Failure::new(SAIL_ERR_FILE_NOT_FOUND, format!("{}: no such model file", path.display())));
    }
    if let Some(m) = &mmproj {
        if !m.exists() {
            return Err(Failure::new(SAIL_ERR_FILE_NOT_FOUND, format!("{}: no such vision file (mmproj_path)", m.display())));
        }
    }
    let rpc = match &rpc {
        Some(list) => sail::ggml::rpc::parse_endpoints(list).map_err(|e| Failure::invalid(format!("rpc_servers: {e}")))?,
        None => Vec::new(),
    };
    for ep in &rpc {
        sail::ggml::rpc::add_server(ep).map_err(|e| failed(Phase::Load)(e.into()))?;
    }
    let device = device.filter(|d| !d.eq_ignore_ascii_case("cpu"));
    if let Some(d) = &device {
        let devs = sail::ggml::devices();
        if !devs.iter().any(|x| &x.name == d) {
            let names: Vec<&str> = devs.iter().map(|x| x.name.as_str()).collect();
            return Err(Failure::invalid(format!("vision_device {d:?}: no such ggml device (this build sees: {})", names.join(", "))));
        }
    }
    let memory_bytes = usize::try_from(p.cache_memory_bytes).unwrap_or(usize::MAX);
    let image_cache = CacheParams { memory_bytes, dir: cache_dir, disk_bytes: p.cache_disk_bytes };
    let mut mp = ModelParams {
        mmproj,
        vision_device: device,
        n_gpu_layers: p.n_gpu_layers,
        use_mmap: p.use_mmap,
        rpc,
        tensor_split,
        repack: p.repack,
        image_cache,
        ..Default::default()
    };
    let n = threads(p.n_threads, "n_threads")?;
    if n > 0 {
        mp.n_threads = n;
    }
    let model = Model::load(&path, &mp).map_err(failed(Phase::Load))?;
    Ok(Box::new(sail_model { model: Arc::new(model) }))
}

/// `sail_model *sail_model_load(const char *path, struct sail_model_params, sail_status *err)`.
///
/// # Safety
/// `path` and the params' strings are NULL or NUL-terminated; `tensor_split` is NULL or holds
/// `n_tensor_split` floats; `err` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn sail_model_load(path: *const c_char, params: sail_model_params, err: *mut sail_status) -> *mut sail_model {
    let made = guard_new(|| {
        // SAFETY: the strings are NULL or NUL-terminated and live for this call.
        let file = unsafe { self::path(path, "path") }?;
        let mmproj = match params.mmproj_path.is_null() {
            true => None,
            // SAFETY: as above.
            false => Some(unsafe { self::path(params.mmproj_path, "mmproj_path") }?),
        };
        let device = match params.vision_device.is_null() {
            true => None,
            // SAFETY: as above.
            false => Some(unsafe { utf8(params.vision_device, "vision_device") }?.to_string()),
        };
        let rpc = match params.rpc_servers.is_null() {
            true => None,
            // SAFETY: as above.
            false => Some(unsafe { utf8(params.rpc_servers, "rpc_servers") }?.to_string()),
        };
        let split = match (params.tensor_split.is_null(), params.n_tensor_split) {
            (_, 0) => Vec::new(),
            (true, n) => return Err(Failure::invalid(format!("tensor_split is NULL but n_tensor_split is {n}"))),
            (false, n) if !(1..=64).contains(&n) => return Err(Failure::invalid(format!("n_tensor_split {n} is not in 0..=64"))),
            // SAFETY: non-NULL and, by the caller's contract, n_tensor_split readable floats.
            (false, n) => unsafe { std::slice::from_raw_parts(params.tensor_split, n as usize) }.to_vec(),
        };

        let cache_dir = match params.cache_dir.is_null() {
            true => None,
            // SAFETY: as above.
            false => Some(unsafe { self::path(params.cache_dir, "cache_dir") }?),
        };
        load_model(file, &params, mmproj, device, rpc, split, cache_dir)
    });
    // SAFETY: `err` is NULL or writable (caller's contract).
    unsafe { report(err, made) }
}

/// `bool sail_model_has_vision(const sail_model *)`.
///
/// # Safety
/// `model` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn sail_model_has_vision(model: *const sail_model) -> bool {
    guard_value(false, || {
        // SAFETY: NULL or a live handle.
        Ok(unsafe { model_ref(model) }?.model.has_vision())
    })
}

/// `void sail_model_free(sail_model *)`: drops the caller's reference only.
///
/// # Safety
/// `model` is NULL or a live handle that no other thread is using, not freed before.
#[no_mangle]
pub unsafe extern "C" fn sail_model_free(model: *mut sail_model) {
    guard(|| {
        if !model.is_null() {
            // SAFETY: a handle made by Box::into_raw in sail_model_load, freed once (caller's
            // contract). Sessions keep their own Arc, so the weights outlive them.
            drop(unsafe { Box::from_raw(model) });
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------------
// Session

fn new_session(m: &sail_model, p: &sail_session_params, system: Option<String>) -> Result<Box<sail_session>, Failure> {
    let kv_f32 = match p.kv_type {
        SAIL_KV_AUTO => m.model.info.f32_weights,
        SAIL_KV_F16 => false,
        SAIL_KV_F32 => true,
        k => return Err(Failure::invalid(format!("kv_type {k} is not a sail_kv_type"))),
    };
    let max_tiles = match p.max_tiles {
        0 => None,
        n if n > 0 => Some(n as u32),
        n => return Err(Failure::invalid(format!("max_tiles {n} is negative (0 means the model's)"))),
    };
    let sp = SessionParams {
        n_ctx: p.n_ctx,
        n_batch: if p.n_batch == 0 { 512 } else { p.n_batch },
        n_threads: threads(p.n_threads, "n_threads")?,
        kv_f32,
        system,
        parse_special: p.parse_special,
    };
    let state = SessionState {
        session: Session::new(m.model.clone(), sp),
        max_tiles,
        limits: ImageLimits { max_pixels: if p.max_pixels == 0 { DEFAULT_MAX_PIXELS } else { p.max_pixels } },
        last_tokens: Vec::new(),
        last_text: CString::default(),
        last_info: sail_generation_info::default(),
    };
    Ok(Box::new(sail_session { state: Mutex::new(state) }))
}

/// `sail_session *sail_session_new(const sail_model *, struct sail_session_params, sail_status *err)`.
///
/// # Safety
/// `model` is NULL or a live handle; `params.system_prompt` NULL or NUL-terminated; `err` NULL
/// or writable.
#[no_mangle]
pub unsafe extern "C" fn sail_session_new(
    model: *const sail_model,
    params: sail_session_params,
    err: *mut sail_status,
) -> *mut sail_session {
    let made = guard_new(|| {
        // SAFETY: NULL or a live handle.
        let m = unsafe { model_ref(model) }?;
        let system = match params.system_prompt.is_null() {
            true => None,
            // SAFETY: NUL-terminated, alive for this call; copied.
            false => Some(unsafe { utf8(params.system_prompt, "system_prompt") }?.to_string()),
        };
        new_session(m, &params, system)
    });
    // SAFETY: `err` is NULL or writable (caller's contract).
    unsafe { report(err, made) }
}

/// Decodes and queues an image file (`frame`: as a one-tile video frame).
///
/// # Safety
/// `session` is NULL or a live handle; `path` NULL or NUL-terminated.
unsafe fn add_file(session: *mut sail_session, path: *const c_char, frame: bool) -> sail_status {
    guard(|| {
        // SAFETY: NULL or a live handle.
        let mut st = lock(unsafe { session_ref(session) }?)?;
        // SAFETY: NULL or NUL-terminated, alive for this call.
        let file = unsafe { self::path(path, "path") }?;
        if !file.exists() {
            return Err(Failure::new(SAIL_ERR_FILE_NOT_FOUND, format!("{}: no such image file", file.display())));
        }
        let model = st.session.model().clone();
        let tiles = if frame { Some(1) } else { st.max_tiles };
        let img = model.prepare_image_file(&file, tiles, st.limits).map_err(failed(Phase::Image))?;
        if frame {
            st.session.add_frame(img).map_err(failed(Phase::Image))
        } else {
            st.session.add_image(img).map_err(failed(Phase::Image))
        }
    })
}

/// `sail_status sail_session_add_image_file(sail_session *, const char *path)`.
///
/// # Safety
/// `session` is NULL or a live handle; `path` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn sail_session_add_image_file(session: *mut sail_session, path: *const c_char) -> sail_status {
    // SAFETY: the caller's contract, passed on.
    unsafe { add_file(session, path, false) }
}

/// `sail_status sail_session_add_frame_file(sail_session *, const char *path)`.
///
/// # Safety
/// `session` is NULL or a live handle; `path` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn sail_session_add_frame_file(session: *mut sail_session, path: *const c_char) -> sail_status {
    // SAFETY: the caller's contract, passed on.
    unsafe { add_file(session, path, true) }
}

/// Checks a strided RGB buffer's geometry; returns (row bytes, stride, bytes that will be read).
fn rgb_layout(len: usize, width: i32, height: i32, stride: usize) -> Result<(usize, usize, usize), Failure> {
    if width <= 0 || height <= 0 {
        return Err(Failure::invalid(format!("image size {width}x{height}: width and height must be positive")));
    }
    let (w, h) = (width as usize, height as usize);
    let too_big = || Failure::invalid(format!("image size {width}x{height} (stride {stride}) overflows the address space"));
    let row = w.checked_mul(3).ok_or_else(too_big)?;
    let stride = if stride == 0 { row } else { stride };
    if stride < row {
        return Err(Failure::invalid(format!("stride {stride} is shorter than a row of {width} RGB pixels ({row} bytes)")));
    }
    let needed = stride.checked_mul(h - 1).and_then(|n| n.checked_add(row)).filter(|&n| n <= isize::MAX as usize).ok_or_else(too_big)?;
    if len < needed {
        return Err(Failure::invalid(format!(
            "RGB buffer of {len} bytes is too short for {width}x{height} (stride {stride}): {needed} bytes needed"
        )));
    }
    Ok((row, stride, needed))
}

/// `sail_status sail_session_add_image_rgb(sail_session *, const uint8_t *rgb, size_t len,
/// int32_t width, int32_t height, size_t stride)`.
///
/// # Safety
/// `session` is NULL or a live handle; `rgb` is NULL or readable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn sail_session_add_image_rgb(
    session: *mut sail_session,
    rgb: *const u8,
    len: usize,
    width: i32,
    height: i32,
    stride: usize,
) -> sail_status {
    guard(|| {
        // SAFETY: NULL or a live handle.
        let mut st = lock(unsafe { session_ref(session) }?)?;
        if rgb.is_null() {
            return Err(Failure::invalid("rgb is NULL"));
        }
        let (row, stride, needed) = rgb_layout(len, width, height, stride)?;
        // the budget before copying: the tiler checks it again, from the same value
        decode::check_dimensions("<memory>", width as u32, height as u32, st.limits.max_pixels)
            .map_err(|e| failed(Phase::Image)(e.into()))?;
        // SAFETY: rgb is non-NULL and readable for `len` bytes (caller's contract); we read
        // `needed` ≤ len bytes, and needed ≤ isize::MAX (checked in rgb_layout).
        let buf = unsafe { std::slice::from_raw_parts(rgb, needed) };
        let mut data = Vec::with_capacity(row * height as usize);
        for r in 0..height as usize {
            data.extend_from_slice(&buf[r * stride..r * stride + row]);
        }
        let img = decode::from_rgb8(width as u32, height as u32, &data).map_err(|e| failed(Phase::Image)(e.into()))?;
        let model = st.session.model().clone();
        let prepared = model.prepare_image(&img, st.max_tiles, st.limits).map_err(failed(Phase::Image))?;
        st.session.add_image(prepared).map_err(failed(Phase::Image))
    })
}

fn generate_params(p: &sail_generate_params) -> Result<GenerateParams, Failure> {
    let n_predict = usize::try_from(p.n_predict).map_err(|_| Failure::invalid(format!("n_predict {} is negative", p.n_predict)))?;
    let sampler = SamplerParams {
        temperature: p.temperature,
        top_k: p.top_k,
        top_p: p.top_p,
        min_p: p.min_p,
        repeat_penalty: p.repeat_penalty,
        repeat_last_n: p.repeat_last_n,
        seed: p.seed,
    };
    sampler.validate().map_err(|e| Failure::invalid(format!("invalid sampling parameters: {e}")))?;
    Ok(GenerateParams { n_predict, sampler, ignore_eos: p.ignore_eos, think: p.think })
}

/// `sail_status sail_session_generate(sail_session *, const char *prompt, const struct
/// sail_generate_params *, sail_token_callback, void *user_data)`.
///
/// # Safety
/// `session` NULL or live; `prompt` NULL or NUL-terminated; `params` NULL or readable;
/// `callback` NULL or a function that returns normally; `user_data` is passed through.
#[no_mangle]
pub unsafe extern "C" fn sail_session_generate(
    session: *mut sail_session,
    prompt: *const c_char,
    params: *const sail_generate_params,
    callback: sail_token_callback,
    user_data: *mut c_void,
) -> sail_status {
    guard(|| {
        // SAFETY: NULL or a live handle.
        let mut st = lock(unsafe { session_ref(session) }?)?;
        // SAFETY: NULL or NUL-terminated, alive for this call.
        let prompt = unsafe { utf8(prompt, "prompt") }?;
        // SAFETY: NULL or a readable struct (caller's contract); copied out.
        let gp = match unsafe { params.as_ref() } {
            Some(p) => generate_params(p)?,
            None => generate_params(&default_generate_params())?,
        };
        st.clear_last();
        let on_token = |id: i32, piece: &str| -> bool {
            let Some(cb) = callback else { return true };
            let text = CString::new(piece.replace('\0', "")).unwrap_or_default();
            // SAFETY: a C function pointer supplied by the caller for this call, which must
            // return normally; `text` outlives the call; user_data is the caller's, untouched.
            unsafe { cb(id, text.as_ptr(), user_data) }
        };
        let g = st.session.generate(prompt, &gp, on_token).map_err(failed(Phase::Generate))?;
        let n_past = st.session.n_past();
        let clamp = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
        st.last_info = sail_generation_info {
            n_tokens: clamp(g.tokens.len()),
            n_prompt_tokens: clamp(g.prompt_token_ids.len()),
            n_image_tokens: clamp(g.image_tokens),
            n_tiles: clamp(g.tiles),
            stop_reason: match g.stop {
                StopReason::Eos => SAIL_STOP_EOS,
                StopReason::Length => SAIL_STOP_LENGTH,
                StopReason::Callback => SAIL_STOP_CALLBACK,
            },
            n_past: clamp(n_past),
            vision_ms: g.timings.vision_ms,
            prefill_ms: g.timings.prefill_ms,
            decode_ms: g.timings.decode_ms,
            n_tiles_encoded: clamp(g.tiles_encoded),
        };
        st.last_text = CString::new(g.text.replace('\0', "")).unwrap_or_default();
        st.last_tokens = g.tokens;
        Ok(())
    })
}

/// `sail_status sail_session_last_info(sail_session *, struct sail_generation_info *)`.
///
/// # Safety
/// `session` NULL or live; `info` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn sail_session_last_info(session: *mut sail_session, info: *mut sail_generation_info) -> sail_status {
    guard(|| {
        // SAFETY: NULL or a live handle.
        let st = lock(unsafe { session_ref(session) }?)?;
        if info.is_null() {
            return Err(Failure::invalid("info is NULL"));
        }
        // SAFETY: non-NULL and writable (caller's contract).
        unsafe { info.write(st.last_info) };
        Ok(())
    })
}

/// `size_t sail_session_last_tokens(sail_session *, int32_t *out, size_t capacity)`.
///
/// # Safety
/// `session` NULL or live; `out` NULL or writable for `capacity` ids.
#[no_mangle]
pub unsafe extern "C" fn sail_session_last_tokens(session: *mut sail_session, out: *mut i32, capacity: usize) -> usize {
    guard_value(0, || {
        // SAFETY: NULL or a live handle.
        let st = lock(unsafe { session_ref(session) }?)?;
        let n = st.last_tokens.len().min(capacity);
        if !out.is_null() && n > 0 {
            // SAFETY: `out` is writable for `capacity` ≥ n ids (caller's contract) and cannot
            // overlap our own vector.
            unsafe { std::ptr::copy_nonoverlapping(st.last_tokens.as_ptr(), out, n) };
        }
        Ok(st.last_tokens.len())
    })
}

/// `const char *sail_session_last_text(sail_session *)`.
///
/// # Safety
/// `session` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn sail_session_last_text(session: *mut sail_session) -> *const c_char {
    guard_value(std::ptr::null(), || {
        // SAFETY: NULL or a live handle.
        let st = lock(unsafe { session_ref(session) }?)?;
        // The CString's buffer lives in the session until the next generate/reset/free.
        Ok(st.last_text.as_ptr())
    })
}

/// `sail_status sail_session_reset(sail_session *)`: also recovers a session whose earlier call
/// panicked (the reset puts every counter and the cache back to empty).
///
/// # Safety
/// `session` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn sail_session_reset(session: *mut sail_session) -> sail_status {
    guard(|| {
        // SAFETY: NULL or a live handle.
        let s = unsafe { session_ref(session) }?;
        let mut st = match s.state.try_lock() {
            Ok(g) => g,
            Err(TryLockError::WouldBlock) => return Err(Failure::new(SAIL_ERR_BUSY, BUSY)),
            Err(TryLockError::Poisoned(p)) => {
                s.state.clear_poison();
                p.into_inner()
            }
        };
        st.session.reset();
        st.clear_last();
        Ok(())
    })
}

/// `void sail_session_free(sail_session *)`. A session that is in use right now (e.g. freed
/// from its own token callback) is left alone, with a message, rather than freed under its user.
///
/// # Safety
/// `session` is NULL or a live handle, not freed before, that no other thread is using.
#[no_mangle]
pub unsafe extern "C" fn sail_session_free(session: *mut sail_session) {
    guard(|| {
        if session.is_null() {
            return Ok(());
        }
        // SAFETY: a live handle (caller's contract).
        let s = unsafe { &*session };
        if matches!(s.state.try_lock(), Err(TryLockError::WouldBlock)) {
            return Err(Failure::new(SAIL_ERR_BUSY, "sail_session_free: the session is in use by another call; not freed"));
        }
        // SAFETY: made by Box::into_raw in sail_session_new, freed once (caller's contract);
        // the probe lock above is released, and no call of ours is using the session.
        drop(unsafe { Box::from_raw(session) });
        Ok(())
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rgb_layout_checks() {
        assert_eq!(rgb_layout(12, 2, 2, 0).unwrap(), (6, 6, 12));
        assert_eq!(rgb_layout(14, 2, 2, 8).unwrap(), (6, 8, 14));
        assert!(rgb_layout(11, 2, 2, 0).is_err());
        assert!(rgb_layout(13, 2, 2, 8).is_err());
        assert!(rgb_layout(100, 2, 2, 5).is_err());
        assert!(rgb_layout(100, 0, 2, 0).is_err());
        assert!(rgb_layout(100, 2, -1, 0).is_err());
        assert!(rgb_layout(usize::MAX, i32::MAX, i32::MAX, usize::MAX).is_err());
    }

    #[test]
    fn panics_become_internal_errors() {
        let st = guard(|| panic!("boom"));
        assert_eq!(st, SAIL_ERR_INTERNAL);
        // SAFETY: the library's own NUL-terminated per-thread string.
        let msg = unsafe { CStr::from_ptr(sail_last_error_message()) }.to_str().unwrap().to_string();
        assert!(msg.contains("boom"), "{msg}");
    }

    #[test]
    fn defaults_match_the_library() {
        let g = sail_generate_default_params();
        assert_eq!(g.n_predict, 512);
        assert_eq!(g.temperature, 0.0);
        assert!(!g.ignore_eos);
        let s = sail_session_default_params();
        assert_eq!(s.max_pixels, DEFAULT_MAX_PIXELS);
        assert_eq!(s.kv_type, SAIL_KV_AUTO);
        assert!(sail_model_default_params().use_mmap);
    }
}
