//! ggml backends (CPU, and whatever GPU backends are compiled in), the scheduler that runs a
//! graph across them, and weight buffers — on the CPU, straight over the file mapping.

use super::graph::{Context, Graph, GraphError, Tensor};
use super::llama::MAX_THREADS;
use super::shim;
use super::sys;
use sail_format::GgmlType;
use std::ffi::{c_void, CStr, CString};
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("no ggml device named {0:?} (available: {1})")]
    NoDevice(String, String),
    #[error("ggml could not initialise device {0}")]
    Init(String),
    #[error("ggml could not allocate {what} ({bytes} bytes) on {device}")]
    Alloc { what: String, bytes: usize, device: String },
    #[error("graph computation failed on {device} (ggml status {status})")]
    Compute { device: String, status: i32 },
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error("thread count {0} is outside 1..={MAX_THREADS}")]
    Threads(usize),
    #[error("{what}: ggml raised an exception: {message}")]
    Exception { what: &'static str, message: String },
}

fn threads(n: usize) -> Result<i32, BackendError> {
    if (1..=MAX_THREADS).contains(&n) {
        Ok(n as i32)
    } else {
        Err(BackendError::Threads(n))
    }
}

/// The kind of a ggml device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    Cpu,
    Gpu,
    IntegratedGpu,
    Accelerator,
    /// A device of another machine, through ggml's RPC backend (see [`crate::rpc`]).
    Remote,
    Other,
}

/// What `sail info --devices` lists.
#[derive(Debug, Clone)]
pub struct DeviceInfo {
    pub index: usize,
    pub name: String,
    pub description: String,
    pub kind: DeviceKind,
    pub memory_free: usize,
    pub memory_total: usize,
}

fn cstr(p: *const std::os::raw::c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: ggml returns static or device-owned NUL-terminated strings.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// The names of the backends compiled into this build ("CPU", "Vulkan", "CUDA", "RPC", ...),
/// whether or not a device of that kind is present. A program linking the static archive needs
/// each backend's system library (for example `-lvulkan`), so link lines depend on this list.
pub fn registries() -> Vec<String> {
    // SAFETY: registry queries; indices are within the count.
    let n = unsafe { sys::ggml_backend_reg_count() };
    (0..n)
        .filter_map(|i| {
            // SAFETY: i < reg_count.
            let r = unsafe { sys::ggml_backend_reg_get(i) };
            // SAFETY: r is a registered backend; its name is owned by ggml.
            (!r.is_null()).then(|| cstr(unsafe { sys::ggml_backend_reg_name(r) }))
        })
        .collect()
}

/// Every device ggml registered (compiled-in backends, and RPC servers added with
/// [`crate::rpc::add_server`]).
pub fn devices() -> Vec<DeviceInfo> {
    // SAFETY: registry queries; indices are within the count.
    let n = unsafe { sys::ggml_backend_dev_count() };
    (0..n)
        .filter_map(|i| {
            // SAFETY: i < dev_count.
            let d = unsafe { sys::ggml_backend_dev_get(i) };
            if d.is_null() {
                return None;
            }
            let (mut free, mut total) = (0usize, 0usize);
            // SAFETY: d is a registered device; out-pointers are valid locals.
            unsafe { sys::ggml_backend_dev_memory(d, &mut free, &mut total) };
            // SAFETY: d is a registered device; its registry and name are owned by ggml.
            let remote = cstr(unsafe { sys::ggml_backend_reg_name(sys::ggml_backend_dev_backend_reg(d)) }) == "RPC";
            // SAFETY: d is a registered device.
            let kind = match unsafe { sys::ggml_backend_dev_type(d) } {
                _ if remote => DeviceKind::Remote,
                sys::GGML_BACKEND_DEVICE_TYPE_CPU => DeviceKind::Cpu,
                sys::GGML_BACKEND_DEVICE_TYPE_GPU => DeviceKind::Gpu,
                sys::GGML_BACKEND_DEVICE_TYPE_IGPU => DeviceKind::IntegratedGpu,
                sys::GGML_BACKEND_DEVICE_TYPE_ACCEL => DeviceKind::Accelerator,
                _ => DeviceKind::Other,
            };
            Some(DeviceInfo {
                index: i,
                // SAFETY: d is a registered device.
                name: cstr(unsafe { sys::ggml_backend_dev_name(d) }),
                // SAFETY: d is a registered device.
                description: cstr(unsafe { sys::ggml_backend_dev_description(d) }),
                kind,
                memory_free: free,
                memory_total: total,
            })
        })
        .collect()
}

/// An initialised backend (one device stream).
#[derive(Debug)]
pub struct Backend {
    ptr: NonNull<sys::ggml_backend>,
    name: String,
    is_cpu: bool,
}

// SAFETY: a ggml backend handle may be moved between threads; sail uses each from one thread
// at a time (&mut for compute).
unsafe impl Send for Backend {}

impl Backend {
    /// The CPU backend with `n_threads` threads.
    pub fn cpu(n_threads: usize) -> Result<Backend, BackendError> {
        let n = threads(n_threads)?;
        // SAFETY: creates a new CPU backend, freed in Drop.
        let p = unsafe { sys::ggml_backend_cpu_init() };
        let ptr = NonNull::new(p).ok_or_else(|| BackendError::Init("CPU".into()))?;
        // SAFETY: ptr is a CPU backend; n within ggml's thread limit.
        unsafe { sys::ggml_backend_cpu_set_n_threads(ptr.as_ptr(), n) };
        Ok(Backend { ptr, name: "CPU".into(), is_cpu: true })
    }

    /// The device called `name` (as [`devices`] lists it).
    pub fn by_name(name: &str) -> Result<Backend, BackendError> {
        let c = CString::new(name).map_err(|_| BackendError::NoDevice(name.into(), String::new()))?;
        // SAFETY: registry lookup by a valid C string.
        let d = unsafe { sys::ggml_backend_dev_by_name(c.as_ptr()) };
        if d.is_null() {
            let list = devices().iter().map(|d| d.name.clone()).collect::<Vec<_>>().join(", ");
            return Err(BackendError::NoDevice(name.into(), list));
        }
        // SAFETY: d is a registered device; NULL params are allowed.
        let p = unsafe { sys::ggml_backend_dev_init(d, std::ptr::null()) };
        let ptr = NonNull::new(p).ok_or_else(|| BackendError::Init(name.into()))?;
        // SAFETY: d is a registered device.
        let is_cpu = unsafe { sys::ggml_backend_dev_type(d) } == sys::GGML_BACKEND_DEVICE_TYPE_CPU;
        Ok(Backend { ptr, name: name.into(), is_cpu })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn is_cpu(&self) -> bool {
        self.is_cpu
    }

    pub fn set_threads(&mut self, n: usize) -> Result<(), BackendError> {
        let n = threads(n)?;
        if self.is_cpu {
            // SAFETY: ptr is a CPU backend; n within ggml's thread limit.
            unsafe { sys::ggml_backend_cpu_set_n_threads(self.ptr.as_ptr(), n) };
        }
        Ok(())
    }

    pub(crate) fn raw(&self) -> *mut sys::ggml_backend {
        self.ptr.as_ptr()
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        // SAFETY: created by init, freed once; buffers and schedulers borrowing it are dropped
        // first (they hold `&Backend`).
        unsafe { sys::ggml_backend_free(self.ptr.as_ptr()) }
    }
}

/// Backend memory holding a context's tensors (weights).
#[derive(Debug)]
pub struct Buffer<'a> {
    ptr: NonNull<sys::ggml_backend_buffer>,
    _data: PhantomData<&'a [u8]>,
}

// SAFETY: buffers are plain memory handles; ggml does not tie them to a thread.
unsafe impl Send for Buffer<'_> {}
// SAFETY: after creation a weight buffer is only read (by compute), never mutated.
unsafe impl Sync for Buffer<'_> {}

impl<'a> Buffer<'a> {
    /// Allocates every tensor of `ctx` in `backend`'s default memory (to be filled with
    /// [`Tensor::set_bytes`]).
    pub fn alloc_ctx(ctx: &Context, backend: &Backend) -> Result<Buffer<'static>, BackendError> {
        // SAFETY: ctx holds unallocated tensor headers; ggml allocates one buffer for all.
        let p = unsafe { sys::ggml_backend_alloc_ctx_tensors(ctx.raw(), backend.raw()) };
        let ptr = NonNull::new(p).ok_or_else(|| BackendError::Alloc { what: "weights".into(), bytes: 0, device: backend.name().into() })?;
        // SAFETY: weights buffer: let the scheduler know it holds weights.
        unsafe { sys::ggml_backend_buffer_set_usage(ptr.as_ptr(), sys::GGML_BACKEND_BUFFER_USAGE_WEIGHTS) };
        Ok(Buffer { ptr, _data: PhantomData })
    }

    /// Serves CPU tensors directly from `bytes` (a file mapping): each `(tensor, offset)` gets
    /// the data at `bytes[offset..offset + tensor size]`. No copy; lives as long as `bytes`.
    pub fn cpu_from_bytes<'c>(bytes: &'a [u8], placements: &[(Tensor<'c>, usize)]) -> Result<Buffer<'a>, BackendError> {
        for (t, off) in placements {
            let end = off.checked_add(t.n_bytes());
            // ggml's CPU kernels read weights with plain loads; 32-byte alignment (GGUF's)
            // keeps SIMD loads within the mapping's guarantees.
            if end.is_none_or(|e| e > bytes.len()) || off % 32 != 0 || t.is_allocated() {
                return Err(BackendError::Graph(GraphError::Shape {
                    op: "map weights",
                    why: format!("{} at offset {off} ({} bytes) does not fit a {}-byte mapping", t.name(), t.n_bytes(), bytes.len()),
                }));
            }
        }
        // SAFETY: ggml wraps the memory without taking ownership; the buffer cannot outlive
        // `bytes` ('a). ggml's API takes *mut but weight tensors are only ever read by compute.
        let p = unsafe { sys::ggml_backend_cpu_buffer_from_ptr(bytes.as_ptr() as *mut _, bytes.len()) };
        let ptr = NonNull::new(p).ok_or_else(|| BackendError::Alloc {
            what: "mapped weights".into(),
            bytes: bytes.len(),
            device: "CPU".into(),
        })?;
        // SAFETY: as above.
        unsafe { sys::ggml_backend_buffer_set_usage(ptr.as_ptr(), sys::GGML_BACKEND_BUFFER_USAGE_WEIGHTS) };
        let buf = Buffer { ptr, _data: PhantomData };
        for (t, off) in placements {
            // SAFETY: the tensor is unallocated and [off, off+size) lies inside the buffer
            // (checked above).
            let st = unsafe { sys::ggml_backend_tensor_alloc(ptr.as_ptr(), t.raw(), bytes.as_ptr().add(*off) as *mut _) };
            if st != sys::GGML_STATUS_SUCCESS {
                return Err(BackendError::Alloc { what: t.name(), bytes: t.n_bytes(), device: "CPU".into() });
            }
        }
        Ok(buf)
    }

    pub fn size(&self) -> usize {
        // SAFETY: live buffer.
        unsafe { sys::ggml_backend_buffer_get_size(self.ptr.as_ptr()) }
    }
}

impl Drop for Buffer<'_> {
    fn drop(&mut self) {
        // SAFETY: created by ggml, freed once. For a from_ptr buffer ggml does not free the
        // memory it wraps.
        unsafe { sys::ggml_backend_buffer_free(self.ptr.as_ptr()) }
    }
}

/// Backends and ggml's scheduler over them, owned together: the scheduler keeps its compute
/// buffers between graphs (a graph no larger than the last one needs no new allocation), so an
/// encoder that runs image after image builds them once. The backends are in priority order
/// with the CPU last; the scheduler places each node where its inputs live and falls back to
/// the CPU for ops a GPU backend lacks.
#[derive(Debug)]
pub struct Executor {
    sched: NonNull<sys::ggml_backend_sched>,
    // Dropped after `sched` (Drop frees the scheduler first; fields drop after).
    backends: Vec<Backend>,
    names: String,
}

// SAFETY: the scheduler and its backends move together; ggml does not tie them to a thread and
// `&mut self` serialises every use.
unsafe impl Send for Executor {}

impl Executor {
    /// `backends` in priority order; the last must be the CPU. `graph_size`: the most nodes a
    /// graph it runs will have.
    pub fn new(backends: Vec<Backend>, graph_size: usize) -> Result<Executor, BackendError> {
        if backends.last().is_none_or(|b| !b.is_cpu()) {
            return Err(BackendError::Init("scheduler: the CPU backend must come last".into()));
        }
        let mut raw: Vec<*mut sys::ggml_backend> = backends.iter().map(|b| b.raw()).collect();
        // SAFETY: raw holds live backends, owned by the Executor and freed after the scheduler;
        // NULL bufts selects each backend's default buffer type.
        let p = unsafe { sys::ggml_backend_sched_new(raw.as_mut_ptr(), std::ptr::null_mut(), raw.len() as i32, graph_size, false, true) };
        let sched = NonNull::new(p).ok_or_else(|| BackendError::Init("scheduler".into()))?;
        let names = backends.iter().map(|b| b.name().to_string()).collect::<Vec<_>>().join("+");
        Ok(Executor { sched, backends, names })
    }

    /// The backend that holds weights (the first: a GPU if there is one).
    pub fn primary(&self) -> &Backend {
        &self.backends[0]
    }

    pub fn set_threads(&mut self, n: usize) -> Result<(), BackendError> {
        self.backends.iter_mut().try_for_each(|b| b.set_threads(n))
    }

    /// Allocates the graph's intermediates (reusing the buffers of earlier graphs); inputs can
    /// then be set, and [`Self::compute`] run.
    pub fn alloc(&mut self, g: &Graph<'_>) -> Result<(), BackendError> {
        // SAFETY: resets previous allocations (a different graph may follow) then allocates;
        // through the shim, an exception comes back as −1.
        match unsafe { shim::sail_shim_sched_alloc_graph(self.sched.as_ptr(), g.raw()) } {
            1 => Ok(()),
            0 => Err(BackendError::Alloc { what: "graph".into(), bytes: 0, device: self.names.clone() }),
            _ => Err(BackendError::Exception { what: "ggml_backend_sched_alloc_graph", message: shim::last_exception() }),
        }
    }

    pub fn compute(&mut self, g: &Graph<'_>) -> Result<(), BackendError> {
        // SAFETY: the graph was allocated by this scheduler (alloc) and its inputs set; through
        // the shim, an exception comes back as a status.
        let st = unsafe { shim::sail_shim_sched_graph_compute(self.sched.as_ptr(), g.raw()) };
        match st {
            sys::GGML_STATUS_SUCCESS => Ok(()),
            shim::EXCEPTION => Err(BackendError::Exception { what: "ggml_backend_sched_graph_compute", message: shim::last_exception() }),
            s => Err(BackendError::Compute { device: self.names.clone(), status: s }),
        }
    }

    /// Number of backend splits of the last graph (1 when it ran on one device).
    pub fn n_splits(&self) -> usize {
        // SAFETY: live scheduler.
        unsafe { sys::ggml_backend_sched_get_n_splits(self.sched.as_ptr()) as usize }
    }

    /// Bytes of compute buffers the scheduler holds on each backend, in backend order.
    pub fn buffer_sizes(&self) -> Vec<(String, usize)> {
        self.backends
            .iter()
            .map(|b| {
                // SAFETY: live scheduler and one of its backends.
                let n = unsafe { sys::ggml_backend_sched_get_buffer_size(self.sched.as_ptr(), b.raw()) };
                (b.name().to_string(), n)
            })
            .collect()
    }
}

/// One timed step of a profiled graph run: a node, together with the nodes ggml ran with it
/// (views, which cost nothing, and an RMSNorm, which the CPU backend fuses with the multiply
/// after it: timing them apart would time a graph ggml never runs).
#[derive(Debug, Clone, PartialEq)]
pub struct NodeTime {
    /// The node that ends the step.
    pub name: String,
    /// ggml's description of its op (`MUL_MAT`, `SOFT_MAX`, `FLASH_ATTN_EXT`, `GELU_ERF`, …).
    pub op: String,
    /// The ops of the nodes run in the same step before it (`RMS_NORM`, `RESHAPE`, …).
    pub folded: Vec<String>,
    /// Its first source's type and whether that source is a weight (lives in a weight buffer).
    pub src0: Option<(GgmlType, bool)>,
    pub ns: u64,
}

#[derive(Default)]
struct Recorder {
    start: Option<Instant>,
    folded: Vec<String>,
    steps: Vec<NodeTime>,
}

fn op_desc(t: &sys::ggml_tensor) -> String {
    // SAFETY: t is a live node; ggml_op_desc returns a static string.
    cstr(unsafe { sys::ggml_op_desc(t) })
}

/// The scheduler's eval callback: asked before each node whether to stop after it (yes, except
/// for nodes folded into the next step), then told when the step has run.
unsafe extern "C" fn record_step(t: *mut sys::ggml_tensor, ask: bool, user: *mut c_void) -> bool {
    // SAFETY: `user` is the `Recorder` that `compute_profiled` borrows mutably for the whole
    // compute call, and nothing else touches it meanwhile; `t` is a live node of that graph.
    let (rec, t) = unsafe { (&mut *(user as *mut Recorder), &*t) };
    if ask {
        rec.start.get_or_insert_with(Instant::now);
        let fold =
            matches!(t.op, sys::GGML_OP_NONE | sys::GGML_OP_RESHAPE | sys::GGML_OP_VIEW | sys::GGML_OP_PERMUTE | sys::GGML_OP_TRANSPOSE)
                || t.op == sys::GGML_OP_RMS_NORM;
        if fold {
            rec.folded.push(op_desc(t));
        }
        return !fold;
    }
    let ns = rec.start.take().map_or(0, |s| s.elapsed().as_nanos() as u64);
    // SAFETY: a non-null source of a live node is a live tensor.
    let src0 = unsafe { t.src[0].as_ref() }.and_then(|s| {
        // SAFETY: a non-null buffer of a live tensor is live while the graph is.
        let usage = (!s.buffer.is_null()).then(|| unsafe { sys::ggml_backend_buffer_get_usage(s.buffer) });
        GgmlType::from_id(s.type_).map(|ty| (ty, usage == Some(sys::GGML_BACKEND_BUFFER_USAGE_WEIGHTS)))
    });
    let name: Vec<u8> = t.name.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
    rec.steps.push(NodeTime {
        name: String::from_utf8_lossy(&name).into_owned(),
        op: op_desc(t),
        folded: std::mem::take(&mut rec.folded),
        src0,
        ns,
    });
    true
}

impl Executor {
    /// Like [`Self::compute`], but runs the graph step by step and times each step (see
    /// [`NodeTime`]). Costs a thread synchronisation per step, so the sum exceeds a plain run's
    /// time by a little; the split between ops is what it is for.
    pub fn compute_profiled(&mut self, g: &Graph<'_>) -> Result<Vec<NodeTime>, BackendError> {
        let mut rec = Recorder::default();
        // SAFETY: the callback and `rec` stay valid for the whole compute call; the callback is
        // removed again before `rec` goes out of scope.
        unsafe { sys::ggml_backend_sched_set_eval_callback(self.sched.as_ptr(), Some(record_step), (&mut rec as *mut Recorder).cast()) };
        let result = self.compute(g);
        // SAFETY: as above; NULL removes the callback.
        unsafe { sys::ggml_backend_sched_set_eval_callback(self.sched.as_ptr(), None, std::ptr::null_mut()) };
        result?;
        if let Some(s) = rec.start.take() {
            // folded nodes at the very end of the graph, never reported by ggml
            rec.steps.push(NodeTime {
                name: String::new(),
                op: "(tail)".into(),
                folded: rec.folded,
                src0: None,
                ns: s.elapsed().as_nanos() as u64,
            });
        }
        Ok(rec.steps)
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        // SAFETY: created by sched_new, freed once, before the backends it uses (fields drop
        // after this body).
        unsafe { sys::ggml_backend_sched_free(self.sched.as_ptr()) }
    }
}
