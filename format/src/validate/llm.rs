//! The language file against what llama.cpp's `qwen3` / `qwen3moe` loader and graph assume,
//! and what sail's sessions read from it.

use super::keyed::{eps, typed};
use super::{shown, Problems, LLAMA_MAX_EXPERTS, LLAMA_MAX_LAYERS};
use crate::gguf::{GgufFile, Value, ValueType};
use crate::keys::*;
use crate::{LlmArch, LlmHparams};
use std::collections::HashSet;

/// Longest token string accepted. Real vocabularies stay under a few hundred bytes; llama.cpp
/// aborts on pieces longer than `INT32_MAX` when rendering them.
pub const MAX_TOKEN_BYTES: usize = 1 << 16;
/// Most tokens a vocabulary may have: sail's own bound (the largest released vocabularies
/// have about 256k), so a count from a file cannot size gigabytes of token strings.
pub const MAX_VOCAB: u32 = 1 << 22;
/// Most image-context tokens one tile may stand for.
pub const MAX_TOKENS_PER_TILE: u64 = 1 << 16;

/// Reads and checks the hyperparameters; `None` when they cannot be trusted enough to derive
/// the expected tensors (the reasons are in `p`).
pub(crate) fn hparams(f: &GgufFile, p: &mut Problems) -> Option<LlmHparams> {
    let before = p_len(p);
    let arch = match typed(f, GENERAL_ARCHITECTURE, ValueType::String, true, p).and_then(|v| v.as_str()) {
        Some(a) => match LlmArch::from_gguf_name(a) {
            Some(a) => a,
            None => {
                p.push(format!("{GENERAL_ARCHITECTURE} = {}: sail runs qwen3 and qwen3moe language models", shown(a)));
                return None;
            }
        },
        None => return None,
    };
    let moe = arch == LlmArch::Qwen3Moe;
    let k = |pat: &str| arch_key(pat, arch.gguf_name());
    // llama.cpp reads each key with exactly this GGUF type and refuses others.
    let u32_keys: [(&str, bool); 13] = [
        (LLM_CONTEXT_LENGTH, true),
        (LLM_EMBEDDING_LENGTH, true),
        (LLM_BLOCK_COUNT, true),
        (LLM_FEED_FORWARD_LENGTH, !moe),
        (LLM_HEAD_COUNT, true),
        (LLM_HEAD_COUNT_KV, true),
        (LLM_KEY_LENGTH, false),
        (LLM_VALUE_LENGTH, false),
        (LLM_ROPE_DIMENSION_COUNT, false),
        (LLM_VOCAB_SIZE, false),
        (LLM_EXPERT_COUNT, moe),
        (LLM_EXPERT_USED_COUNT, moe),
        (LLM_EXPERT_FF_LENGTH, moe),
    ];
    for (key, required) in u32_keys {
        typed(f, &k(key), ValueType::U32, required, p);
    }
    for key in [LLM_RMS_EPS, LLM_ROPE_FREQ_BASE] {
        typed(f, &k(key), ValueType::F32, true, p);
    }
    if p_len(p) > before {
        return None;
    }
    let hp = match LlmHparams::from_gguf(f) {
        Ok(h) => h,
        Err(e) => {
            p.push(e.to_string());
            return None;
        }
    };
    let u32_of = |key: &str| f.get(&k(key)).and_then(|v| v.as_i64());
    check(&hp, |s| p.push(s));
    if u32_of(LLM_KEY_LENGTH).is_none() && hp.n_head > 0 && !hp.n_embd.is_multiple_of(hp.n_head) {
        p.push(format!(
            "{} = {} is not divisible by {} heads (and no key_length says the head size)",
            k(LLM_EMBEDDING_LENGTH),
            hp.n_embd,
            hp.n_head
        ));
    }
    if let Some(v) = u32_of(LLM_VALUE_LENGTH).filter(|&v| v != hp.head_dim as i64) {
        p.push(format!("{} = {v}: expected the key length {} (qwen3 asserts they are equal)", k(LLM_VALUE_LENGTH), hp.head_dim));
    }
    if let Some(r) = u32_of(LLM_ROPE_DIMENSION_COUNT).filter(|&r| r != hp.head_dim as i64) {
        p.push(format!("{} = {r}: expected the head size {} (qwen3 rotates whole heads)", k(LLM_ROPE_DIMENSION_COUNT), hp.head_dim));
    }
    if hp.moe.is_none() {
        for key in [LLM_EXPERT_COUNT, LLM_EXPERT_USED_COUNT] {
            if let Some(n) = u32_of(key).filter(|&n| n != 0) {
                p.push(format!("{} = {n}: a dense qwen3 model has no experts (expected 0 or no key)", k(key)));
            }
        }
    }
    (p_len(p) == before).then_some(hp)
}

/// The checks on language hyperparameters alone, shared with the converter (which has them
/// from a Hugging Face config before anything is written).
pub fn check(hp: &LlmHparams, mut push: impl FnMut(String)) {
    let k = |pat: &str| arch_key(pat, hp.arch.gguf_name());
    if !(1..=LLAMA_MAX_LAYERS).contains(&hp.n_layer) {
        push(format!("{} = {}: expected 1..={LLAMA_MAX_LAYERS} (llama.cpp's limit)", k(LLM_BLOCK_COUNT), hp.n_layer));
    }
    if hp.n_embd == 0 {
        push(format!("{} = 0: expected a positive width", k(LLM_EMBEDDING_LENGTH)));
    }
    if hp.n_head == 0 {
        push(format!("{} = 0: expected at least one head", k(LLM_HEAD_COUNT)));
    }
    if hp.n_head_kv == 0 || !hp.n_head.is_multiple_of(hp.n_head_kv.max(1)) {
        push(format!("{} = {}: expected a divisor of the {} heads", k(LLM_HEAD_COUNT_KV), hp.n_head_kv, hp.n_head));
    }
    if hp.head_dim == 0 || !hp.head_dim.is_multiple_of(2) {
        push(format!("{} = {}: expected an even, positive head size (RoPE rotates pairs)", k(LLM_KEY_LENGTH), hp.head_dim));
    }
    if (hp.n_head as u64) * (hp.head_dim as u64) > u32::MAX as u64 {
        push(format!("{} heads × {} overflows llama.cpp's 32-bit widths", hp.n_head, hp.head_dim));
    }
    let mut p = Problems::default();
    eps(&k(LLM_RMS_EPS), hp.rms_eps, &mut p);
    p.list.into_iter().for_each(&mut push);
    if !(hp.rope_theta.is_finite() && hp.rope_theta > 0.0) {
        push(format!("{} = {}: expected a finite, positive RoPE base", k(LLM_ROPE_FREQ_BASE), hp.rope_theta));
    }
    if hp.n_ctx_train == 0 {
        push(format!("{} = 0: expected a positive context length", k(LLM_CONTEXT_LENGTH)));
    }
    if !(1..=MAX_VOCAB).contains(&hp.n_vocab) {
        push(format!("a vocabulary of {} tokens: expected 1..={MAX_VOCAB}", hp.n_vocab));
    }
    match hp.moe {
        None if hp.n_ff == 0 => push(format!("{} = 0: expected a positive FFN width", k(LLM_FEED_FORWARD_LENGTH))),
        None => {}
        Some(m) => {
            if !(1..=LLAMA_MAX_EXPERTS).contains(&m.n_expert) {
                push(format!("{} = {}: expected 1..={LLAMA_MAX_EXPERTS} (llama.cpp's limit)", k(LLM_EXPERT_COUNT), m.n_expert));
            }
            if m.n_expert_used == 0 || m.n_expert_used > m.n_expert {
                push(format!("{} = {}: expected 1..={}", k(LLM_EXPERT_USED_COUNT), m.n_expert_used, m.n_expert));
            }
            if m.n_ff_exp == 0 {
                push(format!("{} = 0: expected a positive expert width", k(LLM_EXPERT_FF_LENGTH)));
            }
        }
    }
}

fn p_len(p: &Problems) -> usize {
    p.list.len() + p.omitted
}

/// The tokenizer llama.cpp builds its vocabulary from.
pub(crate) fn tokenizer(f: &GgufFile, hp: &LlmHparams, p: &mut Problems) {
    match typed(f, TOK_MODEL, ValueType::String, true, p).and_then(|v| v.as_str()) {
        Some("gpt2") | None => {}
        Some(m) => p.push(format!("{TOK_MODEL} = {}: expected \"gpt2\" (Qwen's byte-level BPE)", shown(m))),
    }
    typed(f, TOK_PRE, ValueType::String, false, p);
    let n = hp.n_vocab as usize;
    match f.get(TOK_TOKENS) {
        None => p.push(format!("{TOK_TOKENS} is missing")),
        Some(Value::ArrString(tokens)) => {
            if tokens.len() != n {
                p.push(format!("{TOK_TOKENS} has {} entries, expected {n} (the embedding rows)", tokens.len()));
            }
            // llama.cpp maps each string to its id and asserts every string is unique; an empty
            // token becomes "[EMPTY_<id>]" first, which must be unique too.
            let mut seen: HashSet<std::borrow::Cow<'_, str>> = HashSet::with_capacity(tokens.len());
            for (i, t) in tokens.iter().enumerate() {
                if t.len() > MAX_TOKEN_BYTES {
                    p.push(format!("token {i} has {} bytes, more than {MAX_TOKEN_BYTES}", t.len()));
                }
                let key: std::borrow::Cow<'_, str> = if t.is_empty() { format!("[EMPTY_{i}]").into() } else { t.as_str().into() };
                if !seen.insert(key) {
                    p.push(format!("token {i} {} duplicates an earlier token (llama.cpp needs unique strings)", shown(t)));
                }
            }
        }
        Some(v) => p.push(format!("{TOK_TOKENS} has type {}, expected an array of strings", super::keyed::type_name(v))),
    }
    for (key, want) in [(TOK_TOKEN_TYPE, "i32"), ("tokenizer.ggml.scores", "f32")] {
        let len = match (f.get(key), want) {
            (None, _) => continue,
            (Some(Value::ArrI32(a)), "i32") => a.len(),
            (Some(Value::ArrF32(a)), "f32") => a.len(),
            (Some(v), _) => {
                p.push(format!("{key} has type {}, expected an array of {want}", super::keyed::type_name(v)));
                continue;
            }
        };
        if len != n {
            p.push(format!("{key} has {len} entries, expected {n} (one per token)"));
        }
    }
    match f.get(TOK_MERGES) {
        None => p.push(format!("{TOK_MERGES} is missing (a BPE tokenizer needs its merges)")),
        Some(Value::ArrString(_)) => {}
        Some(v) => p.push(format!("{TOK_MERGES} has type {}, expected an array of strings", super::keyed::type_name(v))),
    }
    for (key, v) in &f.kvs {
        if key.starts_with("tokenizer.ggml.") && key.ends_with("_token_id") {
            match v {
                Value::U32(id) if (*id as usize) < n => {}
                Value::U32(id) => p.push(format!("{} = {id}: outside the {n}-token vocabulary", shown(key))),
                v => p.push(format!("{} has type {}, expected u32", shown(key), super::keyed::type_name(v))),
            }
        }
    }
    for key in [TOK_ADD_BOS, TOK_ADD_EOS] {
        typed(f, key, ValueType::Bool, false, p);
    }
    if f.get(TOK_ADD_BOS).and_then(|v| v.as_bool()) == Some(true) && f.get(TOK_BOS_ID).is_none() {
        p.push(format!("{TOK_ADD_BOS} is true but {TOK_BOS_ID} is missing"));
    }
}

/// What sail itself reads from the language file.
pub(crate) fn sail_keys(f: &GgufFile, hp: &LlmHparams, p: &mut Problems) {
    for key in [SAIL_TOKEN_IMG_START, SAIL_TOKEN_IMG_END, SAIL_TOKEN_IMG_CONTEXT] {
        match f.get(key).map(|v| (v, v.as_i64())) {
            None => p.push(format!("{key} is missing")),
            Some((_, Some(id))) if (0..hp.n_vocab as i64).contains(&id) => {}
            Some((_, Some(id))) => p.push(format!("{key} = {id}: outside the {}-token vocabulary", hp.n_vocab)),
            Some((v, None)) => p.push(format!("{key} has type {}, expected u32", super::keyed::type_name(v))),
        }
    }
    match f.get(SAIL_TOKENS_PER_TILE).map(|v| v.as_i64()) {
        None => p.push(format!("{SAIL_TOKENS_PER_TILE} is missing")),
        Some(Some(n)) if (1..=MAX_TOKENS_PER_TILE as i64).contains(&n) => {}
        Some(n) => p.push(format!(
            "{SAIL_TOKENS_PER_TILE} = {}: expected 1..={MAX_TOKENS_PER_TILE}",
            n.map(|n| n.to_string()).unwrap_or("?".into())
        )),
    }
    for key in [SAIL_TEMPLATE, SAIL_SYSTEM_PROMPT, SAIL_THINK_PROMPT] {
        typed(f, key, ValueType::String, false, p);
    }
    if let Some(name) = typed(f, SAIL_MMPROJ, ValueType::String, false, p).and_then(|v| v.as_str()) {
        if let Err(why) = bare_file_name(name) {
            p.push(format!("{SAIL_MMPROJ} = {}: {why}", shown(name)));
        }
    }
}

/// `sail.mmproj` names a file beside the language file, nothing else: no folders, no `..`.
pub fn bare_file_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name == "." || name == ".." {
        return Err("expected a file name");
    }
    if name.contains(['/', '\\', '\0']) {
        return Err("expected a bare file name beside the language file (no folders)");
    }
    if name.len() > 255 {
        return Err("file name too long");
    }
    Ok(())
}
