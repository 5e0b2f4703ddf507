//! The one place where sail talks to C.
//!
//! Every raw `llama_cpp_sys_2` call and every `unsafe` block of the runtime lives in this
//! crate, behind types whose safe methods uphold the C API's rules (sizes checked before a
//! pointer crosses, handles freed by `Drop`, lifetimes tying a tensor to its context and a
//! llama.cpp context to its model). Model code above it never sees a raw pointer. Each
//! `unsafe` block states why it is sound in a `// SAFETY:` line.

mod backend;
mod graph;
mod llama;
mod quantize;
pub mod rpc;
mod shim;
mod weights;

pub use backend::{devices, registries, Backend, BackendError, Buffer, DeviceInfo, DeviceKind, Executor, NodeTime};
pub use graph::{Context, Graph, GraphError, Tensor};
pub use llama::{
    check_threads, init as llama_init, take_buffer_reports, BufferReport, ContextParams, LlamaContext, LlamaError, LlamaModel, ModelParams,
    Sampler, SamplerError, SamplerParams, MAX_THREADS,
};
pub use quantize::{dequantize, quantize, QuantizeError};
pub use sail_format::{GgmlType, MappedFile, GGML_MAX_NAME, GGUF_DEFAULT_ALIGNMENT};
pub use weights::Weights;

use llama_cpp_sys_2 as sys;
use std::ffi::CStr;

/// ggml's CPU feature line (e.g. `AVX2 = 1 | NEON = 0 | ...`), as llama.cpp prints it.
pub fn system_info() -> String {
    // SAFETY: llama_print_system_info returns a pointer to a static, NUL-terminated buffer
    // owned by llama.cpp; we copy it out immediately.
    let p = unsafe { sys::llama_print_system_info() };
    if p.is_null() {
        return String::new();
    }
    // SAFETY: non-null, NUL-terminated (see above).
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}
