//! ggml contexts, tensors and graphs with lifetimes: a [`Tensor`] cannot outlive the
//! [`Context`] whose memory holds its header, and every op checks the shape rules ggml would
//! otherwise enforce by aborting the process.

use super::sys;
use crate::quantize::raw_type;
use sail_format::GgmlType;
use std::ffi::CString;
use std::marker::PhantomData;
use std::ptr::NonNull;

/// Shape or usage errors caught before ggml would abort.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("ggml_init failed to allocate {0} bytes of tensor metadata")]
    Init(usize),
    #[error("{op}: {why}")]
    Shape { op: &'static str, why: String },
}

/// A ggml context holding tensor headers only (`no_alloc`): data lives in backend buffers.
///
/// ggml aborts when a context runs out of room for headers or a graph out of node slots, so
/// the context counts the tensors made in it and refuses, with an error, the one that would
/// not fit.
#[derive(Debug)]
pub struct Context {
    ptr: NonNull<sys::ggml_context>,
    made: std::cell::Cell<usize>,
    /// Most tensors this context may make: its header room, and for a graph context also the
    /// graph's node slots (every tensor made here can become a node).
    limit: usize,
}

// SAFETY: a ggml context is a plain arena with no thread affinity; `&mut`/`&` access rules of
// Rust are enough because ggml does not synchronise it internally and we never share it.
unsafe impl Send for Context {}

/// A tensor header inside a [`Context`]. Copyable like the C pointer it wraps; the lifetime
/// ties it to its context.
#[derive(Debug, Clone, Copy)]
pub struct Tensor<'ctx> {
    ptr: NonNull<sys::ggml_tensor>,
    _ctx: PhantomData<&'ctx Context>,
}

impl<'ctx> Tensor<'ctx> {
    fn from_raw(p: *mut sys::ggml_tensor, op: &'static str) -> Tensor<'ctx> {
        Tensor { ptr: NonNull::new(p).unwrap_or_else(|| panic!("ggml {op} returned NULL")), _ctx: PhantomData }
    }

    pub(crate) fn raw(self) -> *mut sys::ggml_tensor {
        self.ptr.as_ptr()
    }

    pub(crate) fn from_nonnull(ptr: NonNull<sys::ggml_tensor>, _ctx: PhantomData<&'ctx Context>) -> Tensor<'ctx> {
        Tensor { ptr, _ctx }
    }

    fn hdr(&self) -> &sys::ggml_tensor {
        // SAFETY: the pointer came from a live context ('ctx) and ggml never frees a tensor
        // header before its context.
        unsafe { self.ptr.as_ref() }
    }

    /// ggml dims, ne[0] innermost.
    pub fn ne(&self) -> [i64; 4] {
        self.hdr().ne
    }

    pub fn nb(&self) -> [usize; 4] {
        self.hdr().nb
    }

    pub fn n_elements(&self) -> i64 {
        self.ne().iter().product()
    }

    pub fn ty(&self) -> Option<GgmlType> {
        GgmlType::from_id(self.hdr().type_)
    }

    pub fn n_bytes(&self) -> usize {
        // SAFETY: reads the header of a live tensor.
        unsafe { sys::ggml_nbytes(self.raw()) }
    }

    pub fn name(&self) -> String {
        let n = &self.hdr().name;
        let bytes: Vec<u8> = n.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Names the tensor (truncated by ggml at 63 bytes), so it can be found after compute.
    pub fn set_name(self, name: &str) -> Self {
        let c = CString::new(name.replace('\0', "")).expect("no NUL");
        // SAFETY: live tensor; ggml copies at most GGML_MAX_NAME-1 bytes from the C string.
        unsafe { sys::ggml_set_name(self.raw(), c.as_ptr()) };
        self
    }

    /// Marks the tensor as a graph input (allocated before the graph runs).
    pub fn set_input(self) -> Self {
        // SAFETY: sets a flag on a live tensor.
        unsafe { sys::ggml_set_input(self.raw()) };
        self
    }

    /// Marks the tensor as a graph output (its memory is not reused by later nodes).
    pub fn set_output(self) -> Self {
        // SAFETY: sets a flag on a live tensor.
        unsafe { sys::ggml_set_output(self.raw()) };
        self
    }

    /// Whether the tensor has memory (after allocation).
    pub fn is_allocated(&self) -> bool {
        !self.hdr().data.is_null() || !self.hdr().buffer.is_null()
    }

    /// Copies f32 data into the tensor's backend memory.
    pub fn set_f32(&self, data: &[f32]) -> Result<(), GraphError> {
        if self.hdr().type_ != sys::GGML_TYPE_F32 || data.len() as i64 != self.n_elements() || !self.is_allocated() {
            return Err(GraphError::Shape {
                op: "tensor_set",
                why: format!("{} values for {:?} ({}), allocated: {}", data.len(), self.ne(), self.name(), self.is_allocated()),
            });
        }
        // SAFETY: the tensor is allocated in a backend buffer, is F32 and holds exactly
        // data.len() elements (checked), so size = its whole byte range.
        unsafe { sys::ggml_backend_tensor_set(self.raw(), data.as_ptr().cast(), 0, data.len() * 4) };
        Ok(())
    }

    /// Copies raw bytes into the tensor's backend memory (whole tensor).
    pub fn set_bytes(&self, data: &[u8]) -> Result<(), GraphError> {
        if data.len() != self.n_bytes() || !self.is_allocated() {
            return Err(GraphError::Shape {
                op: "tensor_set",
                why: format!("{} bytes for {} ({} bytes)", data.len(), self.name(), self.n_bytes()),
            });
        }
        // SAFETY: allocated tensor of exactly data.len() bytes (checked).
        unsafe { sys::ggml_backend_tensor_set(self.raw(), data.as_ptr().cast(), 0, data.len()) };
        Ok(())
    }

    /// Copies integer data into an I32 tensor.
    pub fn set_i32(&self, data: &[i32]) -> Result<(), GraphError> {
        if self.hdr().type_ != sys::GGML_TYPE_I32 || data.len() as i64 != self.n_elements() || !self.is_allocated() {
            return Err(GraphError::Shape { op: "tensor_set", why: format!("{} ints for {:?}", data.len(), self.ne()) });
        }
        // SAFETY: allocated I32 tensor of exactly data.len() elements (checked).
        unsafe { sys::ggml_backend_tensor_set(self.raw(), data.as_ptr().cast(), 0, data.len() * 4) };
        Ok(())
    }

    /// Reads a contiguous F32 tensor back.
    pub fn get_f32(&self) -> Result<Vec<f32>, GraphError> {
        if self.hdr().type_ != sys::GGML_TYPE_F32 || !self.is_allocated() || self.n_bytes() != self.n_elements() as usize * 4 {
            return Err(GraphError::Shape { op: "tensor_get", why: format!("{} is not an allocated contiguous f32 tensor", self.name()) });
        }
        let mut out = vec![0f32; self.n_elements() as usize];
        // SAFETY: allocated F32 tensor whose byte size equals out's (checked).
        unsafe { sys::ggml_backend_tensor_get(self.raw(), out.as_mut_ptr().cast(), 0, out.len() * 4) };
        Ok(out)
    }
}

fn same(op: &'static str, a: &[i64], b: &[i64]) -> Result<(), GraphError> {
    if a != b {
        return Err(GraphError::Shape { op, why: format!("{a:?} vs {b:?}") });
    }
    Ok(())
}

fn can_repeat(op: &'static str, a: Tensor, b: Tensor) -> Result<(), GraphError> {
    let (an, bn) = (a.ne(), b.ne());
    if (0..4).any(|i| bn[i] == 0 || an[i] % bn[i] != 0) {
        return Err(GraphError::Shape { op, why: format!("{bn:?} does not broadcast onto {an:?}") });
    }
    Ok(())
}

type R<'a> = Result<Tensor<'a>, GraphError>;

impl Context {
    /// A metadata-only context with room for `n_tensors` headers and one graph of `graph_size`
    /// nodes.
    pub fn new(n_tensors: usize, graph_size: usize) -> Result<Context, GraphError> {
        // SAFETY: pure size queries.
        let (per_tensor, graph) = unsafe { (sys::ggml_tensor_overhead(), sys::ggml_graph_overhead_custom(graph_size, false)) };
        let size = per_tensor.checked_mul(n_tensors).and_then(|t| t.checked_add(graph)).ok_or(GraphError::Init(usize::MAX))?;
        let params = sys::ggml_init_params { mem_size: size, mem_buffer: std::ptr::null_mut(), no_alloc: true };
        // SAFETY: ggml allocates and owns the arena; freed in Drop.
        let p = unsafe { sys::ggml_init(params) };
        // a graph of `graph_size` slots also holds its leaves, so one slot stays free
        let limit = if graph_size > 0 { n_tensors.min(graph_size - 1) } else { n_tensors };
        NonNull::new(p).map(|ptr| Context { ptr, made: std::cell::Cell::new(0), limit }).ok_or(GraphError::Init(size))
    }

    /// Claims room for one more tensor, or says why there is none.
    fn room(&self, op: &'static str) -> Result<(), GraphError> {
        let n = self.made.get();
        if n >= self.limit {
            return Err(GraphError::Shape { op, why: format!("the context holds at most {} tensors", self.limit) });
        }
        self.made.set(n + 1);
        Ok(())
    }

    pub(crate) fn raw(&self) -> *mut sys::ggml_context {
        self.ptr.as_ptr()
    }

    fn wrap<'a>(&'a self, p: *mut sys::ggml_tensor, op: &'static str) -> Tensor<'a> {
        Tensor::from_raw(p, op)
    }

    /// A new tensor of type `ty` with ggml dims `ne` (1 to 4 of them).
    pub fn new_tensor(&self, ty: GgmlType, ne: &[i64]) -> R<'_> {
        self.room("new_tensor")?;
        if ne.is_empty() || ne.len() > 4 || ne.iter().any(|&d| d <= 0) || ne[0] % ty.block_size() as i64 != 0 {
            return Err(GraphError::Shape { op: "new_tensor", why: format!("{ty} with dims {ne:?}") });
        }
        // SAFETY: ctx is live; ne has ne.len() ≤ 4 positive entries (checked).
        let p = unsafe { sys::ggml_new_tensor(self.raw(), raw_type(ty), ne.len() as i32, ne.as_ptr()) };
        Ok(self.wrap(p, "new_tensor"))
    }

    pub fn new_i32(&self, n: i64) -> R<'_> {
        self.room("new_i32")?;
        // SAFETY: ctx is live.
        let p = unsafe { sys::ggml_new_tensor_1d(self.raw(), sys::GGML_TYPE_I32, n) };
        Ok(self.wrap(p, "new_i32"))
    }

    /// Finds a tensor by name.
    pub fn get(&self, name: &str) -> Option<Tensor<'_>> {
        let c = CString::new(name).ok()?;
        // SAFETY: ctx is live; ggml compares names only.
        let p = unsafe { sys::ggml_get_tensor(self.raw(), c.as_ptr()) };
        NonNull::new(p).map(|ptr| Tensor { ptr, _ctx: PhantomData })
    }

    // ---- ops (each checks what ggml would assert) ----

    /// `a` [k, n] (weights), `b` [k, m, ...] → [n, m, ...].
    pub fn mul_mat<'a>(&'a self, a: Tensor<'a>, b: Tensor<'a>) -> R<'a> {
        self.room("mul_mat")?;
        let (an, bn) = (a.ne(), b.ne());
        if an[0] != bn[0] || bn[2] % an[2] != 0 || bn[3] % an[3] != 0 {
            return Err(GraphError::Shape { op: "mul_mat", why: format!("{an:?} × {bn:?}") });
        }
        // SAFETY: shapes satisfy ggml_can_mul_mat (checked); both tensors live in ctx's lifetime.
        Ok(self.wrap(unsafe { sys::ggml_mul_mat(self.raw(), a.raw(), b.raw()) }, "mul_mat"))
    }

    pub fn add<'a>(&'a self, a: Tensor<'a>, b: Tensor<'a>) -> R<'a> {
        self.room("add")?;
        can_repeat("add", a, b)?;
        // SAFETY: b broadcasts onto a (checked).
        Ok(self.wrap(unsafe { sys::ggml_add(self.raw(), a.raw(), b.raw()) }, "add"))
    }

    pub fn mul<'a>(&'a self, a: Tensor<'a>, b: Tensor<'a>) -> R<'a> {
        self.room("mul")?;
        can_repeat("mul", a, b)?;
        // SAFETY: b broadcasts onto a (checked).
        Ok(self.wrap(unsafe { sys::ggml_mul(self.raw(), a.raw(), b.raw()) }, "mul"))
    }

    pub fn scale<'a>(&'a self, a: Tensor<'a>, s: f32) -> R<'a> {
        self.room("scale")?;
        // SAFETY: elementwise op on a live tensor.
        Ok(self.wrap(unsafe { sys::ggml_scale(self.raw(), a.raw(), s) }, "scale"))
    }

    /// RMSNorm over ne[0], no weight.
    pub fn rms_norm<'a>(&'a self, a: Tensor<'a>, eps: f32) -> R<'a> {
        self.room("rms_norm")?;
        // SAFETY: row op on a live tensor.
        Ok(self.wrap(unsafe { sys::ggml_rms_norm(self.raw(), a.raw(), eps) }, "rms_norm"))
    }

    /// Mean/variance normalisation over ne[0], no affine part.
    pub fn norm<'a>(&'a self, a: Tensor<'a>, eps: f32) -> R<'a> {
        self.room("norm")?;
        // SAFETY: row op on a live tensor.
        Ok(self.wrap(unsafe { sys::ggml_norm(self.raw(), a.raw(), eps) }, "norm"))
    }

    /// Exact (erf) GELU.
    pub fn gelu_erf<'a>(&'a self, a: Tensor<'a>) -> R<'a> {
        self.room("gelu_erf")?;
        // SAFETY: elementwise op on a live tensor.
        Ok(self.wrap(unsafe { sys::ggml_gelu_erf(self.raw(), a.raw()) }, "gelu_erf"))
    }

    /// silu(a) · b.
    pub fn swiglu_split<'a>(&'a self, a: Tensor<'a>, b: Tensor<'a>) -> R<'a> {
        self.room("swiglu_split")?;
        same("swiglu_split", &a.ne(), &b.ne())?;
        // SAFETY: same shapes (checked).
        Ok(self.wrap(unsafe { sys::ggml_swiglu_split(self.raw(), a.raw(), b.raw()) }, "swiglu_split"))
    }

    /// softmax(a · scale) over ne[0], no mask.
    pub fn soft_max_scaled<'a>(&'a self, a: Tensor<'a>, scale: f32) -> R<'a> {
        self.room("soft_max_scaled")?;
        // SAFETY: row op on a live tensor; a NULL mask is allowed.
        Ok(self.wrap(unsafe { sys::ggml_soft_max_ext(self.raw(), a.raw(), std::ptr::null_mut(), scale, 0.0) }, "soft_max_ext"))
    }

    pub fn cont<'a>(&'a self, a: Tensor<'a>) -> R<'a> {
        self.room("cont")?;
        // SAFETY: copies a live tensor into a contiguous one.
        Ok(self.wrap(unsafe { sys::ggml_cont(self.raw(), a.raw()) }, "cont"))
    }

    pub fn reshape<'a>(&'a self, a: Tensor<'a>, ne: &[i64]) -> R<'a> {
        self.room("reshape")?;
        let n: i64 = ne.iter().product();
        // SAFETY: pure query.
        let contiguous = unsafe { sys::ggml_is_contiguous(a.raw()) };
        if n != a.n_elements() || !contiguous || ne.is_empty() || ne.len() > 4 {
            return Err(GraphError::Shape { op: "reshape", why: format!("{:?} → {ne:?} (contiguous: {contiguous})", a.ne()) });
        }
        // SAFETY: same element count and a contiguous source (checked).
        let p = unsafe {
            match ne.len() {
                1 => sys::ggml_reshape_1d(self.raw(), a.raw(), ne[0]),
                2 => sys::ggml_reshape_2d(self.raw(), a.raw(), ne[0], ne[1]),
                3 => sys::ggml_reshape_3d(self.raw(), a.raw(), ne[0], ne[1], ne[2]),
                _ => sys::ggml_reshape_4d(self.raw(), a.raw(), ne[0], ne[1], ne[2], ne[3]),
            }
        };
        Ok(self.wrap(p, "reshape"))
    }

    /// ggml_permute: source axis i goes to position `axes[i]`.
    pub fn permute<'a>(&'a self, a: Tensor<'a>, axes: [i32; 4]) -> R<'a> {
        self.room("permute")?;
        let mut seen = [false; 4];
        for &x in &axes {
            if !(0..4).contains(&x) || seen[x as usize] {
                return Err(GraphError::Shape { op: "permute", why: format!("axes {axes:?}") });
            }
            seen[x as usize] = true;
        }
        // SAFETY: axes are a permutation of 0..4 (checked).
        Ok(self.wrap(unsafe { sys::ggml_permute(self.raw(), a.raw(), axes[0], axes[1], axes[2], axes[3]) }, "permute"))
    }

    /// A 3-D view with explicit strides (bytes) and byte offset.
    pub fn view_3d<'a>(&'a self, a: Tensor<'a>, ne: [i64; 3], nb1: usize, nb2: usize, offset: usize) -> R<'a> {
        self.room("view_3d")?;
        let elt = a.nb()[0];
        let last = offset + ((ne[0] - 1) as usize) * elt + ((ne[1] - 1) as usize) * nb1 + ((ne[2] - 1) as usize) * nb2 + elt;
        if ne.iter().any(|&d| d <= 0) || last > a.n_bytes() {
            return Err(GraphError::Shape { op: "view_3d", why: format!("{ne:?} at {offset} exceeds {} bytes", a.n_bytes()) });
        }
        // SAFETY: the view stays within a's bytes (checked).
        Ok(self.wrap(unsafe { sys::ggml_view_3d(self.raw(), a.raw(), ne[0], ne[1], ne[2], nb1, nb2, offset) }, "view_3d"))
    }

    /// A 4-D view with explicit strides (bytes) and byte offset.
    pub fn view_4d<'a>(&'a self, a: Tensor<'a>, ne: [i64; 4], nb: [usize; 3], offset: usize) -> R<'a> {
        let elt = a.nb()[0];
        let last = offset + ((ne[0] - 1) as usize) * elt + (1..4).map(|i| ((ne[i] - 1) as usize) * nb[i - 1]).sum::<usize>() + elt;
        if ne.iter().any(|&d| d <= 0) || last > a.n_bytes() {
            return Err(GraphError::Shape { op: "view_4d", why: format!("{ne:?} at {offset} exceeds {} bytes", a.n_bytes()) });
        }
        // SAFETY: the view stays within a's bytes (checked).
        let p = unsafe { sys::ggml_view_4d(self.raw(), a.raw(), ne[0], ne[1], ne[2], ne[3], nb[0], nb[1], nb[2], offset) };
        Ok(self.wrap(p, "view_4d"))
    }

    /// Fused attention softmax(scale · Kᵀ Q) V without a mask, accumulated in f32. `q`
    /// [d, n_q, heads, T], `k` [d, n_kv, heads, T], `v` [d_v, n_kv, heads, T] (rows contiguous,
    /// the rest may be strided views) → [d_v, heads, n_q, T], contiguous.
    pub fn flash_attn<'a>(&'a self, q: Tensor<'a>, k: Tensor<'a>, v: Tensor<'a>, scale: f32) -> R<'a> {
        let (qn, kn, vn) = (q.ne(), k.ne(), v.ne());
        let rows_contiguous = [q, k, v].iter().all(|t| t.ty().is_some_and(|ty| t.nb()[0] == ty.type_size()));
        if qn[0] != kn[0] || kn[1] != vn[1] || kn[2] != vn[2] || qn[2] % kn[2] != 0 || qn[3] != kn[3] || qn[3] != vn[3] || !rows_contiguous
        {
            return Err(GraphError::Shape {
                op: "flash_attn_ext",
                why: format!("q {qn:?}, k {kn:?}, v {vn:?} (rows contiguous: {rows_contiguous})"),
            });
        }
        if q.ty() != Some(GgmlType::F32) || k.ty() != v.ty() {
            return Err(GraphError::Shape {
                op: "flash_attn_ext",
                why: format!("q {:?}, k {:?}, v {:?}: q must be f32, k and v alike", q.ty(), k.ty(), v.ty()),
            });
        }
        // SAFETY: shapes and types satisfy ggml_flash_attn_ext's asserts (checked); a NULL mask
        // is allowed with max_bias 0.
        let p = unsafe { sys::ggml_flash_attn_ext(self.raw(), q.raw(), k.raw(), v.raw(), std::ptr::null_mut(), scale, 0.0, 0.0) };
        // SAFETY: p is the FLASH_ATTN_EXT node just created.
        unsafe { sys::ggml_flash_attn_ext_set_prec(p, sys::GGML_PREC_F32) };
        Ok(self.wrap(p, "flash_attn_ext"))
    }

    /// 2-D im2col of `input` [W, H, C, N] for kernel `kernel` [KW, KH, C, OC] with stride =
    /// kernel size and no padding, in f32 (ggml_conv_2d would round pixels to f16).
    pub fn im2col_patches<'a>(&'a self, kernel: Tensor<'a>, input: Tensor<'a>) -> R<'a> {
        self.room("im2col_patches")?;
        let (k, i) = (kernel.ne(), input.ne());
        if k[2] != i[2] || i[0] % k[0] != 0 || i[1] % k[1] != 0 {
            return Err(GraphError::Shape { op: "im2col", why: format!("kernel {k:?} on input {i:?}") });
        }
        // SAFETY: channel counts agree and the image tiles exactly into patches (checked).
        let p = unsafe {
            sys::ggml_im2col(self.raw(), kernel.raw(), input.raw(), k[0] as i32, k[1] as i32, 0, 0, 1, 1, true, sys::GGML_TYPE_F32)
        };
        Ok(self.wrap(p, "im2col"))
    }

    pub fn get_rows<'a>(&'a self, a: Tensor<'a>, ids: Tensor<'a>) -> R<'a> {
        self.room("get_rows")?;
        // SAFETY: ggml checks ids is I32; both live.
        Ok(self.wrap(unsafe { sys::ggml_get_rows(self.raw(), a.raw(), ids.raw()) }, "get_rows"))
    }

    /// A forward graph of up to `size` nodes ending in `outputs`.
    pub fn build_graph<'a>(&'a self, size: usize, outputs: &[Tensor<'a>]) -> Graph<'a> {
        // SAFETY: ctx is live and was sized for a graph of `size` nodes by its creator.
        let g = unsafe { sys::ggml_new_graph_custom(self.raw(), size, false) };
        let g = NonNull::new(g).expect("ggml_new_graph_custom returned NULL");
        for t in outputs {
            // SAFETY: graph and tensors belong to this live context.
            unsafe { sys::ggml_build_forward_expand(g.as_ptr(), t.raw()) };
        }
        Graph { ptr: g, _ctx: PhantomData }
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: the context was created by ggml_init and is freed exactly once; tensors and
        // graphs borrowing it cannot outlive it ('ctx).
        unsafe { sys::ggml_free(self.ptr.as_ptr()) }
    }
}

/// A computation graph inside a context.
#[derive(Debug)]
pub struct Graph<'ctx> {
    ptr: NonNull<sys::ggml_cgraph>,
    _ctx: PhantomData<&'ctx Context>,
}

impl Graph<'_> {
    pub(crate) fn raw(&self) -> *mut sys::ggml_cgraph {
        self.ptr.as_ptr()
    }

    pub fn n_nodes(&self) -> usize {
        // SAFETY: live graph.
        unsafe { sys::ggml_graph_n_nodes(self.raw()) as usize }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ggml aborts the process when a context has no room for one more tensor header, or a
    /// graph no slot for one more node; the wrapper refuses that tensor with an error instead.
    #[test]
    fn a_full_context_is_an_error_not_an_abort() {
        let ctx = Context::new(2, 0).unwrap();
        let a = ctx.new_tensor(GgmlType::F32, &[4]).unwrap();
        let _b = ctx.new_tensor(GgmlType::F32, &[4]).unwrap();
        assert!(ctx.new_tensor(GgmlType::F32, &[4]).is_err());
        assert!(ctx.add(a, a).is_err());
        // a graph context: every tensor may become a node, so they are bounded by the slots
        let g = Context::new(100, 4).unwrap();
        let x = g.new_tensor(GgmlType::F32, &[4]).unwrap();
        let y = g.add(x, x).unwrap();
        let z = g.mul(y, x).unwrap();
        let e = g.add(z, x).unwrap_err();
        assert!(e.to_string().contains("at most 3 tensors"), "{e}");
        let graph = g.build_graph(4, &[z]);
        assert!(graph.n_nodes() <= 4);
    }
}
