//! Loading a language GGUF in stock llama.cpp (through llama-cpp-2's safe API) to check that
//! what sail-convert writes is a valid llama.cpp model on its own.

use anyhow::{anyhow, Result};
use llama_cpp_2::context::params::{KvCacheType, LlamaContextParams};
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::OnceLock;

/// llama.cpp's backend may be initialised once per process.
pub fn backend() -> &'static LlamaBackend {
    static B: OnceLock<LlamaBackend> = OnceLock::new();
    B.get_or_init(|| {
        let mut b = LlamaBackend::init().expect("llama backend");
        b.void_logs();
        b
    })
}

pub fn load(path: &Path) -> Result<LlamaModel> {
    LlamaModel::load_from_file(backend(), path, &LlamaModelParams::default())
        .map_err(|e| anyhow!("llama.cpp could not load {}: {e}", path.display()))
}

/// Logits at the last position of `tokens`, one decode, f32 KV cache.
pub fn last_logits(model: &LlamaModel, tokens: &[i32]) -> Result<Vec<f32>> {
    let n = tokens.len();
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new((n as u32 + 16).max(64)))
        .with_n_batch(n as u32 + 16)
        .with_n_ubatch(n as u32 + 16)
        .with_type_k(KvCacheType::F32)
        .with_type_v(KvCacheType::F32)
        .with_n_threads(2)
        .with_n_threads_batch(2);
    let mut ctx = model.new_context(backend(), params)?;
    let mut batch = LlamaBatch::new(n, 1);
    for (i, &t) in tokens.iter().enumerate() {
        batch.add(LlamaToken(t), i as i32, &[0], i == n - 1)?;
    }
    ctx.decode(&mut batch)?;
    Ok(ctx.get_logits_ith(n as i32 - 1).to_vec())
}
