//! Each finding of issue #11 that lives in the file formats, as a file the old code accepted
//! (or crashed on) and the validator now refuses by name.

use super::*;
use crate::fixture::{self, Edit};
use crate::gguf::{GgufError, Value};
use crate::keys::*;
use std::path::{Path, PathBuf};

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sail-validate-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn pair(name: &str, moe: bool) -> (PathBuf, PathBuf) {
    let d = dir(name);
    let llm = fixture::write_pair(&d, "m", moe).unwrap();
    (llm, d.join("m.mmproj.gguf"))
}

/// Writes `e` beside `like` and returns the validation error of the kind `like` is.
fn refused(e: &Edit, like: &Path) -> ValidationError {
    let p = like.with_file_name("edited.gguf");
    e.write(&p).unwrap();
    let f = GgufFile::open(&p).unwrap();
    any(&f).expect_err("the edited file must be refused")
}

fn mentions(e: &ValidationError, needles: &[&str]) {
    let s = e.to_string();
    for n in needles {
        assert!(s.contains(n), "{n:?} not in: {s}");
    }
}

#[test]
fn the_fixture_pairs_pass() {
    for moe in [false, true] {
        let (l, v) = pair(&format!("ok-{moe}"), moe);
        let hp = language(&GgufFile::open(&l).unwrap()).unwrap();
        assert_eq!(hp.moe.is_some(), moe);
        let vh = vision(&GgufFile::open(&v).unwrap()).unwrap();
        assert_eq!(vh.proj_dim, hp.n_embd);
    }
}

#[test]
fn llama_cpp_aborts_become_named_errors() {
    // item 3: each of these made llama.cpp abort the process
    let (l, _) = pair("llm", false);
    let k = |p: &str| arch_key(p, "qwen3");
    type EditFn<'a> = Box<dyn Fn(&mut Edit) + 'a>;
    let cases: Vec<(EditFn<'_>, Vec<&str>)> = vec![
        (
            Box::new(|e: &mut Edit| {
                e.set(&k(LLM_BLOCK_COUNT), Value::U32(0));
            }),
            vec!["qwen3.block_count = 0", "1..=512"],
        ),
        (
            Box::new(|e: &mut Edit| {
                e.set(&k(LLM_BLOCK_COUNT), Value::U32(1_000_000));
            }),
            vec!["block_count = 1000000"],
        ),
        (
            Box::new(|e: &mut Edit| {
                e.set(&k(LLM_RMS_EPS), Value::F32(f32::NAN));
            }),
            vec!["layer_norm_rms_epsilon = NaN"],
        ),
        (
            Box::new(|e: &mut Edit| {
                e.set(&k(LLM_RMS_EPS), Value::F32(-1e-6));
            }),
            vec!["layer_norm_rms_epsilon = -0.000001"],
        ),
        (
            Box::new(|e: &mut Edit| {
                e.set(&k(LLM_EXPERT_COUNT), Value::U32(4));
            }),
            vec!["qwen3.expert_count = 4", "dense"],
        ),
        (
            Box::new(|e: &mut Edit| {
                e.set(&k(LLM_ROPE_DIMENSION_COUNT), Value::U32(4));
            }),
            vec!["rope.dimension_count = 4", "head size 8"],
        ),
        (
            Box::new(|e: &mut Edit| {
                e.set(GENERAL_ALIGNMENT, Value::U32(16));
                e.alignment = 16;
            }),
            vec!["general.alignment = 16", "multiple of 32"],
        ),
        (
            Box::new(|e: &mut Edit| {
                e.set(GENERAL_ALIGNMENT, Value::U32(8));
                e.alignment = 8;
            }),
            vec!["general.alignment = 8"],
        ),
        (
            Box::new(|e: &mut Edit| {
                if let Some(Value::ArrString(t)) = e.kvs.iter_mut().find(|(k, _)| k == TOK_TOKENS).map(|kv| &mut kv.1) {
                    t[7] = t[6].clone();
                }
            }),
            vec!["token 7", "duplicates an earlier token"],
        ),
        (
            Box::new(|e: &mut Edit| {
                if let Some(Value::ArrString(t)) = e.kvs.iter_mut().find(|(k, _)| k == TOK_TOKENS).map(|kv| &mut kv.1) {
                    // llama.cpp renames an empty token "[EMPTY_<id>]", which must not exist
                    t[9] = String::new();
                    t[10] = "[EMPTY_9]".into();
                }
            }),
            vec!["token 10", "duplicates"],
        ),
        (
            Box::new(|e: &mut Edit| {
                e.set(&k(LLM_HEAD_COUNT_KV), Value::U32(3));
            }),
            vec!["head_count_kv = 3", "divisor of the 4 heads"],
        ),
        (
            Box::new(|e: &mut Edit| {
                e.set(&k(LLM_CONTEXT_LENGTH), Value::U32(0));
            }),
            vec!["context_length = 0"],
        ),
        (
            Box::new(|e: &mut Edit| {
                e.set(&k(LLM_VALUE_LENGTH), Value::U32(16));
            }),
            vec!["value_length = 16"],
        ),
        (
            Box::new(|e: &mut Edit| {
                e.set(&k(LLM_BLOCK_COUNT), Value::I32(2));
            }),
            vec!["block_count has type i32, expected u32"],
        ),
        (
            Box::new(|e: &mut Edit| {
                e.set(TOK_EOS_ID, Value::U32(1 << 31));
            }),
            vec!["eos_token_id = 2147483648", "outside"],
        ),
        (
            Box::new(|e: &mut Edit| {
                e.set(SAIL_TOKEN_IMG_CONTEXT, Value::U32(5000));
            }),
            vec!["img_context = 5000"],
        ),
        (
            Box::new(|e: &mut Edit| {
                e.set(SAIL_TOKENS_PER_TILE, Value::U32(0));
            }),
            vec!["tokens_per_tile = 0"],
        ),
        (
            Box::new(|e: &mut Edit| {
                e.set(TOK_MODEL, Value::String("llama".into()));
            }),
            vec!["tokenizer.ggml.model = llama"],
        ),
    ];
    for (i, (edit, needles)) in cases.iter().enumerate() {
        let mut e = Edit::open(&l).unwrap();
        edit(&mut e);
        let err = refused(&e, &l);
        assert!(needles.iter().all(|n| err.to_string().contains(n)), "case {i}: {err}");
    }
}

#[test]
fn moe_expert_limits() {
    let (l, _) = pair("moe", true);
    let k = |p: &str| arch_key(p, "qwen3moe");
    let mut e = Edit::open(&l).unwrap();
    e.set(&k(LLM_EXPERT_COUNT), Value::U32(LLAMA_MAX_EXPERTS + 1));
    mentions(&refused(&e, &l), &["qwen3moe.expert_count = 1025", "1..=1024"]);
    let mut e = Edit::open(&l).unwrap();
    e.set(&k(LLM_EXPERT_USED_COUNT), Value::U32(5));
    mentions(&refused(&e, &l), &["expert_used_count = 5", "1..=4"]);
}

#[test]
fn an_empty_architecture_is_an_error_not_a_panic() {
    // item 2: `general.architecture = ""` reached `unreachable!`
    let (l, _) = pair("arch", false);
    let mut e = Edit::open(&l).unwrap();
    e.set(GENERAL_ARCHITECTURE, Value::String(String::new()));
    mentions(&refused(&e, &l), &["general.architecture = \"\"", "qwen3"]);
    let p = l.with_file_name("edited.gguf");
    let err = crate::LlmHparams::from_gguf(&GgufFile::open(&p).unwrap()).unwrap_err();
    assert!(err.to_string().contains("general.architecture = \"\""), "{err}");
    e.remove(GENERAL_ARCHITECTURE);
    mentions(&refused(&e, &l), &["general.architecture is missing"]);
}

#[test]
fn unknown_type_ids_are_named_without_calling_ggml() {
    // item 1: type id 2^31 crashed `sail info`, 99 printed garbage
    let (l, _) = pair("types", false);
    for id in [1u32 << 31, 99, 4] {
        let mut e = Edit::open(&l).unwrap();
        e.tensor("blk.1.attn_q.weight").type_id = id;
        let p = l.with_file_name(format!("type-{id}.gguf"));
        e.write(&p).unwrap();
        let err = GgufFile::open(&p).unwrap_err();
        assert!(matches!(err, GgufError::UnsupportedType { .. }), "{err}");
        let s = err.to_string();
        assert!(s.contains("blk.1.attn_q.weight") && s.contains(&format!("type#{id}")), "{s}");
    }
}

#[test]
fn offsets_must_be_packed_aligned_and_inside_the_file() {
    let (l, v) = pair("offsets", false);
    // language: llama.cpp wants each tensor exactly after the previous one
    let mut e = Edit::open(&l).unwrap();
    let second = e.tensors[1].name.clone();
    e.tensor(&second).offset = 0;
    mentions(&refused(&e, &l), &[&second, "starts at data offset 0", "packed"]);
    // vision: misaligned and overlapping
    let mut e = Edit::open(&v).unwrap();
    e.tensor("v.post_ln.weight").offset += 4;
    mentions(&refused(&e, &v), &["v.post_ln.weight", "not a multiple of the alignment 32"]);
    let mut e = Edit::open(&v).unwrap();
    let off = e.tensor("v.patch_norm.weight").offset;
    e.tensor("v.post_ln.weight").offset = off;
    mentions(&refused(&e, &v), &["overlap"]);
    // beyond the end: the reader refuses it, naming the tensor
    let mut e = Edit::open(&v).unwrap();
    e.tensor("v.post_ln.weight").offset = u64::MAX - 8;
    let p = v.with_file_name("far.gguf");
    e.write(&p).unwrap();
    let err = GgufFile::open(&p).unwrap_err().to_string();
    assert!(err.contains("v.post_ln.weight") && err.contains("outside the file"), "{err}");
}

#[test]
fn vision_graph_assumptions() {
    // item 5: NaN / negative eps and non-f32 norms or biases aborted inside ggml
    let (_, v) = pair("vision", false);
    for (key, val) in [(CLIP_EPS, f32::NAN), (CLIP_EPS, -1.0), (SAIL_V_PROJ_LN_EPS, f32::INFINITY), (SAIL_V_PROJ_LN_EPS, 0.0)] {
        let mut e = Edit::open(&v).unwrap();
        e.set(key, Value::F32(val));
        mentions(&refused(&e, &v), &[key, "finite epsilon"]);
    }
    for (name, ty) in [
        ("v.blk.0.ln1.weight", GgmlType::F16),
        ("mm.model.mlp.1.bias", GgmlType::BF16),
        ("v.position_embd.weight", GgmlType::F16),
        ("mm.model.mlp.0.weight", GgmlType::BF16),
    ] {
        let d = dir(&format!("vty-{}", name.replace('.', "_")));
        let p = d.join("v.gguf");
        let hp = fixture::vision_hparams(16);
        fixture::write_vision(&p, &hp, &|n, t| if n == name { ty } else { t }).unwrap();
        let err = vision(&GgufFile::open(&p).unwrap()).unwrap_err();
        mentions(&err, &[name, "needs f32"]);
    }
    // matrices may be f16
    let d = dir("vty-ok");
    let p = d.join("v.gguf");
    fixture::write_vision(&p, &fixture::vision_hparams(16), &|n, t| if n.ends_with("attn_qkv.weight") { GgmlType::F16 } else { t })
        .unwrap();
    vision(&GgufFile::open(&p).unwrap()).unwrap();
}

#[test]
fn counts_are_bounded_before_they_size_anything() {
    // item 6: a vision block_count of 10^6 cost 2.8 GB and an 876 MB message
    let (_, v) = pair("counts", false);
    for n in [1_000_000u32, 1 << 31, u32::MAX] {
        let mut e = Edit::open(&v).unwrap();
        e.set(CLIP_BLOCK_COUNT, Value::U32(n));
        let t = std::time::Instant::now();
        let err = refused(&e, &v);
        assert!(t.elapsed().as_secs_f64() < 1.0, "{n}: {:?}", t.elapsed());
        let s = err.to_string();
        assert!(s.len() < 4096, "{n}: message of {} bytes", s.len());
        // no i32 wrap in the message (it said "-2147483648" / "2147483648 blocks" before)
        assert!(s.contains(&format!("block_count = {n}")), "{s}");
        assert!(!s.contains("= -"), "{s}");
    }
    // a language file missing many tensors: still a short message
    let (l, _) = pair("missing", false);
    let mut e = Edit::open(&l).unwrap();
    e.tensors.truncate(1);
    let err = refused(&e, &l);
    assert_eq!(err.problems.len(), MAX_LISTED);
    assert!(err.omitted > 0 && err.to_string().contains("more problems"), "{err}");
}

#[test]
fn metadata_counts_cannot_make_the_reader_allocate() {
    let d = dir("meta");
    let p = d.join("big.gguf");
    // an array that claims 2^40 elements, in a file of a few bytes
    let mut b = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend(0u64.to_le_bytes());
    b.extend(1u64.to_le_bytes());
    b.extend(3u64.to_le_bytes());
    b.extend(b"key");
    b.extend(9u32.to_le_bytes());
    b.extend(7u32.to_le_bytes());
    b.extend((1u64 << 40).to_le_bytes());
    std::fs::write(&p, &b).unwrap();
    let err = GgufFile::open(&p).unwrap_err().to_string();
    assert!(err.contains("count 1099511627776"), "{err}");
    // a bool array of 40 MB would decode to over a GB of values: refused by the budget
    let n = 40usize << 20;
    let mut e = Edit::open(&pair("meta2", false).0).unwrap();
    e.set("x.flags", Value::ArrOther(crate::gguf::ValueType::Bool, vec![]));
    let mut raw = Vec::new();
    crate::gguf::write_raw(&mut raw, &e.kvs, &e.tensors, &e.data, 32).unwrap();
    // patch the empty bool array's count to n and append n bytes: the simplest hostile file
    let key = b"x.flags";
    let at = raw.windows(key.len()).position(|w| w == key).unwrap() + key.len() + 8;
    raw[at..at + 8].copy_from_slice(&(n as u64).to_le_bytes());
    raw.splice(at + 8..at + 8, std::iter::repeat_n(1u8, n));
    std::fs::write(&p, &raw).unwrap();
    let err = GgufFile::open(&p).unwrap_err();
    assert!(matches!(err, GgufError::MetadataTooLarge { .. }), "{err}");
}

#[test]
fn not_gguf_files_are_not_echoed() {
    // item 12: "not a GGUF file (magic [114,111,111,116])" echoed the file's bytes
    let d = dir("notgguf");
    let p = d.join("passwd");
    std::fs::write(&p, b"root:x:0:0:root:/root:/bin/bash\n").unwrap();
    let s = GgufFile::open(&p).unwrap_err().to_string();
    assert!(s.ends_with("passwd: not a GGUF file"), "{s}");
    assert!(!s.contains("magic") && !s.contains("root:x"), "{s}");
    let e = GgufFile::open(Path::new("/dev/zero")).unwrap_err().to_string();
    assert!(e.contains("character device"), "{e}");
}

#[test]
fn mmproj_must_be_a_bare_file_name() {
    let (l, _) = pair("mmproj", false);
    for bad in ["../../etc/passwd", "/dev/zero", "sub/v.gguf", "..", "a\\b"] {
        let mut e = Edit::open(&l).unwrap();
        e.set(SAIL_MMPROJ, Value::String(bad.into()));
        mentions(&refused(&e, &l), &["sail.mmproj"]);
    }
}

#[test]
fn tensors_must_match_the_layout() {
    let (l, _) = pair("layout", false);
    let mut e = Edit::open(&l).unwrap();
    e.tensor("blk.0.attn_k.weight").ne = vec![16, 8];
    e.data.extend(vec![0u8; 1 << 12]);
    let err = refused(&e, &l);
    mentions(&err, &["blk.0.attn_k.weight has shape [16, 8], expected [16, 16]"]);
    let mut e = Edit::open(&l).unwrap();
    e.tensor("blk.1.ffn_up.weight").name = "blk.1.ffn_upx.weight".into();
    mentions(&refused(&e, &l), &["blk.1.ffn_up.weight is missing", "unexpected tensor blk.1.ffn_upx.weight"]);
    let mut e = Edit::open(&l).unwrap();
    e.tensor("blk.1.attn_norm.weight").type_id = GgmlType::F16.id();
    mentions(&refused(&e, &l), &["blk.1.attn_norm.weight is f16"]);
}
