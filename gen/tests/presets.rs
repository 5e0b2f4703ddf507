//! Argument parsing (argparse-compatible) and the full-size presets' layouts, checked through
//! `ckpt::plan` so that no gigabytes are written.

use std::path::PathBuf;

use sail_gen::ckpt::{self, Args, Dtype, FileSource, FullSize, LmHead, Preset, Variant};
use serde_json::{json, Value};

#[test]
fn argv_like_argparse() {
    assert_eq!(Args::from_argv::<&str>(&[]).unwrap(), Args::default());
    let a = Args::from_argv(&[
        "--out=/tmp/x",
        "--vocab",
        "151936",
        "--select-layer",
        "-2",
        "--mlp-only-layers",
        "0",
        "-1",
        "--seed",
        "1",
        "--seed",
        "3",
        "--variant",
        "moe",
        "--rope-theta",
        "1e4",
        "--tie-word-embeddings",
        "--lm-head",
        "distinct",
    ])
    .unwrap();
    assert_eq!(a.out, PathBuf::from("/tmp/x"));
    assert_eq!(a.vocab_size, Some(151936));
    assert_eq!(a.select_layer, -2);
    assert_eq!(a.mlp_only_layers, vec![0, -1]);
    assert_eq!(a.seed, 3, "the last occurrence wins, as in argparse");
    assert_eq!(a.variant, Variant::Moe);
    assert_eq!(a.rope_theta, 1e4);
    assert!(a.tie_word_embeddings);
    assert_eq!(a.lm_head, LmHead::Distinct);
    assert_eq!(Args::from_argv(&a.to_argv()).unwrap(), a, "to_argv round trip");

    assert!(Args::from_argv(&["--bogus"]).is_err());
    assert!(Args::from_argv(&["--dtype", "float64"]).is_err());
    let e = Args::from_argv(&["--preset", "2b", "--llm-hidden", "8"]).unwrap_err().to_string();
    assert!(e.contains("--llm-hidden"), "{e}");
    let tm = Args::from_argv(&["--preset", "tiny-moe", "--shards", "2"]).unwrap();
    assert_eq!(tm, Args { variant: Variant::Moe, shards: 2, ..Args::default() });
    assert_eq!(tm.to_argv(), ["--variant", "moe", "--shards", "2"]);
    let p = Args::from_argv(&["--preset", "8b", "--seed", "2", "--quiet"]).unwrap();
    assert_eq!((p.full, p.seed, p.dtype, p.progress), (Some(FullSize::Sail8b), 2, Dtype::Bfloat16, false));
}

#[test]
fn bad_arguments_are_refused_before_writing() {
    let out = std::env::temp_dir().join(format!("sail-gen-test-{}-refused", std::process::id()));
    for argv in [
        &["--image-size", "100"][..],
        &["--image-size", "126"],
        &["--variant", "moe", "--top-k", "5"],
        &["--vocab-size", "1000"],
        &["--tokenizer-dir", "/nonexistent"],
        // gen_ckpt.py would write `Infinity`, `NaN` or a 21-digit integer; see pyjson's doc
        &["--rope-theta", "inf"],
        &["--rope-theta", "nan"],
        &["--rope-theta", "1e20"],
    ] {
        let mut a = Args::from_argv(argv).unwrap();
        a.out = out.clone();
        assert!(ckpt::generate(&a).is_err(), "{argv:?}");
        assert!(!out.exists(), "{argv:?} wrote output");
    }
    assert!(ckpt::generate(&Args::default()).is_err(), "no --out");
}

fn llm(cfg: &Value, key: &str) -> Value {
    cfg.get("llm_config").unwrap().get(key).unwrap().clone()
}

#[test]
fn full_2b_reuses_the_real_layout() {
    let model = sail_gen::model_assets_dir().unwrap();
    let p = ckpt::plan(&Args::preset(Preset::Sail2b)).unwrap();
    assert_eq!(p.num_params(), 2_730_565_120, "spec §1");
    assert_eq!(p.tensors.len(), 490);
    let names: Vec<&str> = p.weight_files.iter().map(|w| w.0.as_str()).collect();
    assert_eq!(names, ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]);
    // The index is byte-identical to the real one (same weight_map, same total_size).
    let real_index = std::fs::read_to_string(model.join("model.safetensors.index.json")).unwrap();
    assert_eq!(p.index.as_deref(), Some(real_index.as_str()));
    for f in ["config.json", "preprocessor_config.json", "generation_config.json", "tokenizer.json"] {
        let src = &p.files.iter().find(|(n, _)| n == f).unwrap().1;
        assert_eq!(src, &FileSource::Copy(model.join(f)), "{f} copied verbatim");
    }
    let head = p.tensors.iter().find(|t| t.name == "language_model.lm_head.weight").unwrap();
    assert_eq!(head.source, "language_model.model.embed_tokens.weight", "tied: lm_head is a copy");

    // Another dtype rewrites torch_dtype but keeps the rest of the 2B config.
    let p32 = ckpt::plan(&Args { dtype: Dtype::Float32, ..Args::preset(Preset::Sail2b) }).unwrap();
    assert_eq!(llm(&p32.config, "torch_dtype"), json!("float32"));
    assert_eq!(llm(&p32.config, "hidden_size"), json!(2048));
}

#[test]
fn full_8b_and_moe_layouts() {
    let p = ckpt::plan(&Args::preset(Preset::Sail8b)).unwrap();
    assert_eq!(p.num_params(), 8_914_730_496, "spec §1");
    assert_eq!(p.tensors.len(), 578);
    assert_eq!(p.weight_files.len(), 4);
    assert_eq!(llm(&p.config, "hidden_size"), json!(4096));
    assert_eq!(llm(&p.config, "num_hidden_layers"), json!(36));
    assert_eq!(llm(&p.config, "tie_word_embeddings"), json!(false));
    let head = p.tensors.iter().find(|t| t.name == "language_model.lm_head.weight").unwrap();
    assert_eq!((head.shape.as_slice(), head.source.as_str()), (&[151936, 4096][..], "language_model.lm_head.weight"));
    let q = p.tensors.iter().find(|t| t.name == "language_model.model.layers.35.self_attn.k_proj.weight").unwrap();
    assert_eq!(q.shape, [1024, 4096]);
    assert_eq!(p.tensors.iter().find(|t| t.name == "mlp1.1.weight").unwrap().shape, [4096, 6144]);

    let p = ckpt::plan(&Args::preset(Preset::Moe)).unwrap();
    assert_eq!(p.num_params(), 31_230_947_840);
    assert_eq!(p.tensors.len(), 19046);
    assert_eq!(p.weight_files.len(), 13, "~5 GB shards");
    assert_eq!(llm(&p.config, "model_type"), json!("qwen3_moe"));
    assert_eq!(llm(&p.config, "num_experts"), json!(128));
    assert_eq!(llm(&p.config, "num_experts_per_tok"), json!(8));
    assert_eq!(llm(&p.config, "norm_topk_prob"), json!(true));
    let e = p.tensors.iter().find(|t| t.name == "language_model.model.layers.47.mlp.experts.127.down_proj.weight").unwrap();
    assert_eq!(e.shape, [2048, 768]);
    let g = p.tensors.iter().find(|t| t.name == "language_model.model.layers.0.mlp.gate.weight").unwrap();
    assert_eq!(g.shape, [128, 2048]);
}
