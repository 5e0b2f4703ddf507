//! Declarations of `shim.cpp`: the llama.cpp / ggml calls that can throw a C++ exception,
//! wrapped so that an exception comes back as an error value instead of aborting the process.

use super::sys;
use std::ffi::{c_char, CStr};

/// Returned by the wrappers of calls that return a status when an exception was caught.
pub(crate) const EXCEPTION: i32 = -1000;

/// `sail_shim_sampler_params` in shim.cpp.
#[repr(C)]
pub(crate) struct SamplerParams {
    pub n_vocab: i32,
    pub temperature: f32,
    pub top_k: i32,
    pub top_p: f32,
    pub min_p: f32,
    pub repeat_penalty: f32,
    pub repeat_last_n: i32,
    pub seed: u32,
}

extern "C" {
    fn sail_shim_last_exception() -> *const c_char;
    pub(crate) fn sail_shim_model_load(path: *const c_char, params: sys::llama_model_params) -> *mut sys::llama_model;
    pub(crate) fn sail_shim_init_from_model(model: *mut sys::llama_model, params: sys::llama_context_params) -> *mut sys::llama_context;
    pub(crate) fn sail_shim_decode(ctx: *mut sys::llama_context, batch: sys::llama_batch) -> i32;
    pub(crate) fn sail_shim_tokenize(
        vocab: *const sys::llama_vocab,
        text: *const c_char,
        text_len: i32,
        tokens: *mut sys::llama_token,
        n_tokens_max: i32,
        add_special: bool,
        parse_special: bool,
    ) -> i32;
    pub(crate) fn sail_shim_token_to_piece(
        vocab: *const sys::llama_vocab,
        token: sys::llama_token,
        buf: *mut c_char,
        length: i32,
        lstrip: i32,
        special: bool,
    ) -> i32;
    pub(crate) fn sail_shim_is_eog(vocab: *const sys::llama_vocab, token: sys::llama_token) -> i32;
    pub(crate) fn sail_shim_sampler_chain(p: *const SamplerParams) -> *mut sys::llama_sampler;
    pub(crate) fn sail_shim_sampler_sample(
        smpl: *mut sys::llama_sampler,
        ctx: *mut sys::llama_context,
        idx: i32,
        out: *mut sys::llama_token,
    ) -> i32;
    pub(crate) fn sail_shim_sampler_accept(smpl: *mut sys::llama_sampler, token: sys::llama_token) -> i32;
    pub(crate) fn sail_shim_sched_alloc_graph(sched: sys::ggml_backend_sched_t, graph: *mut sys::ggml_cgraph) -> i32;
    pub(crate) fn sail_shim_sched_graph_compute(sched: sys::ggml_backend_sched_t, graph: *mut sys::ggml_cgraph) -> i32;
}

/// The message of the last C++ exception the shim caught on this thread.
pub(crate) fn last_exception() -> String {
    // SAFETY: the shim returns its thread-local, always NUL-terminated buffer.
    let p = unsafe { sail_shim_last_exception() };
    if p.is_null() {
        return String::new();
    }
    // SAFETY: non-NULL and NUL-terminated (above); copied out at once.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}
