//! `tokenizer.json` → llama.cpp's GGUF tokenizer keys (byte-level BPE, `qwen2` pre-tokenizer).
//!
//! llama.cpp's `gpt2` model wants the byte-level token strings exactly as `tokenizer.json`
//! spells them, merges as "a b" strings, and a type per token: added special tokens are
//! CONTROL, other added tokens (`<think>`, `<tool_call>`, …) USER_DEFINED, and the embedding
//! rows past the tokenizer (151678..151935 in SAIL-VL2) UNUSED placeholders.

use crate::error::ConvertError;
use crate::hf::read_json;
use sail_format::gguf::Value;
use sail_format::keys::*;
use sail_format::template as t;
use std::collections::HashMap;
use std::path::Path;

/// llama.cpp `enum llama_token_type` values.
pub const TOKEN_NORMAL: i32 = 1;
pub const TOKEN_CONTROL: i32 = 3;
pub const TOKEN_USER_DEFINED: i32 = 4;
pub const TOKEN_UNUSED: i32 = 5;

/// The tokenizer as GGUF wants it, plus the ids sail needs.
#[derive(Debug, Clone)]
pub struct Vocab {
    pub tokens: Vec<String>,
    pub types: Vec<i32>,
    pub merges: Vec<String>,
    pub ids: HashMap<String, u32>,
    /// Tokens the tokenizer defines (the rest, up to the embedding rows, are padding).
    pub n_real: usize,
}

impl Vocab {
    pub fn load(file: &Path, n_vocab: usize) -> Result<Vocab, ConvertError> {
        let err = |why: String| ConvertError::Tokenizer { file: file.to_path_buf(), why };
        if !file.exists() {
            return Err(err("tokenizer.json is missing".into()));
        }
        let j = read_json(file)?;
        let model = j.get("model").ok_or_else(|| err("no \"model\" section".into()))?;
        let mtype = model.get("type").and_then(|v| v.as_str()).unwrap_or("");
        if mtype != "BPE" {
            return Err(err(format!("model type {mtype:?}; SAIL-VL2 uses a byte-level BPE")));
        }
        let mut tokens: Vec<Option<String>> = vec![None; n_vocab];
        let mut types = vec![TOKEN_UNUSED; n_vocab];
        let mut ids = HashMap::new();
        let vocab = model.get("vocab").and_then(|v| v.as_object()).ok_or_else(|| err("no model.vocab".into()))?;
        // llama.cpp maps every token string to one id and aborts on a string that appears
        // twice, so a string may name one id only, and an id hold one string (an added token
        // may repeat its own vocabulary entry).
        let mut put = |tok: &str, id: u64, ty: i32, tokens: &mut Vec<Option<String>>| -> Result<(), ConvertError> {
            let i = usize::try_from(id).ok().filter(|&i| i < n_vocab);
            let Some(i) = i else {
                return Err(err(format!("token {tok:?} has id {id}, beyond the model's {n_vocab} embedding rows")));
            };
            if let Some(&other) = ids.get(tok).filter(|&&other| other as usize != i) {
                return Err(err(format!("token {tok:?} appears twice (ids {other} and {id}); llama.cpp needs each token string once")));
            }
            if let Some(old) = tokens[i].as_deref().filter(|old| *old != tok) {
                return Err(err(format!("id {id} is given to both {old:?} and {tok:?}")));
            }
            tokens[i] = Some(tok.to_string());
            types[i] = ty;
            ids.insert(tok.to_string(), i as u32);
            Ok(())
        };
        for (tok, id) in vocab {
            let id = id.as_u64().ok_or_else(|| err(format!("vocab entry {tok:?} has no integer id")))?;
            put(tok, id, TOKEN_NORMAL, &mut tokens)?;
        }
        if let Some(added) = j.get("added_tokens").and_then(|v| v.as_array()) {
            for a in added {
                let tok = a.get("content").and_then(|v| v.as_str()).ok_or_else(|| err("added token without content".into()))?;
                let id = a.get("id").and_then(|v| v.as_u64()).ok_or_else(|| err(format!("added token {tok:?} without id")))?;
                let special = a.get("special").and_then(|v| v.as_bool()).unwrap_or(false);
                put(tok, id, if special { TOKEN_CONTROL } else { TOKEN_USER_DEFINED }, &mut tokens)?;
            }
        }
        let n_real = tokens.iter().rposition(|t| t.is_some()).map(|i| i + 1).unwrap_or(0);
        let tokens: Vec<String> = tokens.into_iter().enumerate().map(|(i, t)| t.unwrap_or_else(|| format!("[PAD{i}]"))).collect();
        // a placeholder (or llama.cpp's name for an empty token) must not repeat a real token
        let mut seen = std::collections::HashSet::with_capacity(tokens.len());
        for (i, t) in tokens.iter().enumerate() {
            let key = if t.is_empty() { format!("[EMPTY_{i}]") } else { t.clone() };
            if !seen.insert(key) {
                return Err(err(format!("token {t:?} (id {i}) repeats another token's string; llama.cpp needs each token string once")));
            }
        }

        let merges_json = model.get("merges").and_then(|v| v.as_array()).ok_or_else(|| err("no model.merges".into()))?;
        let mut merges = Vec::with_capacity(merges_json.len());
        for m in merges_json {
            let s = match m {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Array(p) if p.len() == 2 => {
                    let a = p[0].as_str().unwrap_or_default();
                    let b = p[1].as_str().unwrap_or_default();
                    if a.contains(' ') || b.contains(' ') {
                        return Err(err(format!("merge ({a:?}, {b:?}) contains a space, which GGUF merges cannot encode")));
                    }
                    format!("{a} {b}")
                }
                other => return Err(err(format!("merge {other} is neither \"a b\" nor [a, b]"))),
            };
            merges.push(s);
        }
        let v = Vocab { tokens, types, merges, ids, n_real };
        for needed in [t::IM_START, t::IM_END, t::ENDOFTEXT, t::IMG_START, t::IMG_END, t::IMG_CONTEXT] {
            if !v.ids.contains_key(needed) {
                return Err(err(format!("the tokenizer lacks SAIL-VL2's {needed} token")));
            }
        }
        Ok(v)
    }

    pub fn id(&self, tok: &str) -> u32 {
        self.ids[tok]
    }

    /// llama.cpp tokenizer keys.
    pub fn to_kvs(&self) -> Vec<(String, Value)> {
        vec![
            (TOK_MODEL.into(), Value::String("gpt2".into())),
            (TOK_PRE.into(), Value::String("qwen2".into())),
            (TOK_TOKENS.into(), Value::ArrString(self.tokens.clone())),
            (TOK_TOKEN_TYPE.into(), Value::ArrI32(self.types.clone())),
            (TOK_MERGES.into(), Value::ArrString(self.merges.clone())),
            (TOK_EOS_ID.into(), Value::U32(self.id(t::IM_END))),
            (TOK_PAD_ID.into(), Value::U32(self.id(t::ENDOFTEXT))),
            // Qwen has no BOS; llama.cpp needs an id, and never adds it with add_bos false.
            (TOK_BOS_ID.into(), Value::U32(self.id(t::ENDOFTEXT))),
            (TOK_ADD_BOS.into(), Value::Bool(false)),
            (TOK_ADD_EOS.into(), Value::Bool(false)),
            (TOK_CHAT_TEMPLATE.into(), Value::String(t::CHAT_TEMPLATE_JINJA.into())),
        ]
    }
}
