//! A model's weights as ggml tensors, owned together with the memory they live in.
//!
//! On the CPU the tensors point straight into the GGUF mapping (no copy, and the pages are
//! shared with the page cache); on a GPU backend they are uploaded once from the mapping.

use super::backend::{Backend, BackendError, Buffer};
use super::graph::{Context, GraphError, Tensor};
use super::sys;
use sail_format::gguf::{GgufFile, TensorInfo};
use std::collections::HashMap;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::Arc;

/// Weight tensors, their ggml context and backend buffer, and the file they came from.
#[derive(Debug)]
pub struct Weights {
    // Field order is drop order: the buffer and context go before the mapping they point into.
    buffer: Buffer<'static>,
    index: HashMap<String, NonNull<sys::ggml_tensor>>,
    ctx: Context,
    file: Arc<GgufFile>,
    mapped: bool,
}

// SAFETY: after construction the weights are immutable; ggml compute only reads them, from
// any thread. The raw pointers in `index` point into `ctx`, which lives as long as `self`.
unsafe impl Send for Weights {}
// SAFETY: as above: shared access is read-only.
unsafe impl Sync for Weights {}

impl Weights {
    /// Creates a tensor for each of `tensors` (from `file`) and backs it with memory on
    /// `backend`: the mapping itself for the CPU, an uploaded copy otherwise.
    pub fn load(file: Arc<GgufFile>, tensors: &[&TensorInfo], backend: &Backend) -> Result<Weights, BackendError> {
        let ctx = Context::new(tensors.len() + 1, 0)?;
        let mut made = Vec::with_capacity(tensors.len());
        for info in tensors {
            let ty = info.ty().ok_or_else(|| GraphError::Shape { op: "load weights", why: format!("{}: unknown type", info.name) })?;
            let ne: Vec<i64> = info.ne.iter().map(|&d| d as i64).collect();
            let t = ctx.new_tensor(ty, &ne)?.set_name(&info.name);
            made.push((t, info.offset, info.n_bytes));
        }
        let (buffer, mapped) = if backend.is_cpu() {
            let placements: Vec<(Tensor<'_>, usize)> = made.iter().map(|&(t, off, _)| (t, off)).collect();
            let bytes: &[u8] = file.bytes();
            // SAFETY: `bytes` borrows the mapping owned by `file`, an Arc that `Weights` keeps
            // and drops after `buffer` (field order), so the 'static buffer never outlives it.
            let bytes: &'static [u8] = unsafe { std::slice::from_raw_parts(bytes.as_ptr(), bytes.len()) };
            (Buffer::cpu_from_bytes(bytes, &placements)?, true)
        } else {
            let buf = Buffer::alloc_ctx(&ctx, backend)?;
            for &(t, off, n) in &made {
                t.set_bytes(&file.bytes()[off..off + n])?;
            }
            (buf, false)
        };
        let index = made.iter().map(|(t, _, _)| (t.name(), NonNull::new(t.raw()).expect("non-null tensor"))).collect();
        Ok(Weights { buffer, index, ctx, file, mapped })
    }

    /// The tensor called `name`, if loaded.
    pub fn get(&self, name: &str) -> Option<Tensor<'_>> {
        self.index.get(name).map(|p| Tensor::from_nonnull(*p, PhantomData))
    }

    pub fn file(&self) -> &GgufFile {
        &self.file
    }

    /// Whether the tensors are served from the file mapping (CPU) rather than a copy.
    pub fn is_mapped(&self) -> bool {
        self.mapped
    }

    pub fn bytes(&self) -> usize {
        self.buffer.size()
    }

    pub fn context(&self) -> &Context {
        &self.ctx
    }
}
