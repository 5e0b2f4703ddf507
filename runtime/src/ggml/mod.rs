//! The one place where sail talks to C.
//!
//! Every raw `llama_cpp_sys_2` call and every other `unsafe` block of the project lives in this
//! module, behind types whose safe methods uphold the C API's rules (sizes checked before a
//! pointer crosses, handles freed by `Drop`). Model code above it never sees a raw pointer.
//! Each `unsafe` block states why it is sound in a `// SAFETY:` line.

mod backend;
mod graph;
mod llama;
mod mmap;
mod types;
mod weights;

pub use backend::{devices, Backend, BackendError, Buffer, DeviceInfo, DeviceKind, Scheduler};
pub use graph::{Context, Graph, GraphError, Tensor};
pub use llama::{init as llama_init, ContextParams, LlamaContext, LlamaError, LlamaModel, ModelParams, Sampler, SamplerParams};
pub use mmap::MappedFile;
pub use types::{GgmlType, QuantizeError};
pub use weights::Weights;

use llama_cpp_sys_2 as sys;
use std::ffi::CStr;

/// ggml's `GGUF_DEFAULT_ALIGNMENT` (gguf.h); not exported by bindgen.
pub const GGUF_DEFAULT_ALIGNMENT: usize = 32;
/// ggml's `GGML_MAX_NAME` (ggml.h): tensor names are `[c_char; 64]`, NUL included.
pub const GGML_MAX_NAME: usize = 64;

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
