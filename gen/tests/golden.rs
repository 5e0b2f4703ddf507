//! Byte identity with the Python generators, checked against hashes recorded by them (no
//! Python needed here). Run in release: each golden checkpoint has ~20M parameters.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sail_gen::ckpt::{self, Args};

/// A fresh folder under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("sail-gen-test-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn golden_dir() -> PathBuf {
    sail_gen::workspace_root().expect("the sail workspace").join("tests").join("golden")
}

fn generate(argv: &[&str], out: &Path) -> ckpt::Summary {
    let mut a = Args::from_argv(argv).unwrap();
    a.out = out.to_path_buf();
    ckpt::generate(&a).unwrap()
}

fn check_case(name: &str) {
    let dir = golden_dir().join(name);
    let case: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("case.json")).unwrap()).unwrap();
    let g = &case["generator"];
    assert_eq!(g["generator_version"], ckpt::GENERATOR_VERSION);
    let argv: Vec<&str> = g["argv"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    let tmp = TempDir::new(name);
    let t0 = std::time::Instant::now();
    let s = generate(&argv, &tmp.0);
    eprintln!("{name}: generated in {:.2} s", t0.elapsed().as_secs_f64());
    let want: BTreeMap<String, String> = serde_json::from_value(g["sha256"].clone()).unwrap();
    // Every file, weights and configs alike, is byte-identical to gen_ckpt.py's.
    assert_eq!(s.sha256, want, "{name}");
    assert_eq!(s.num_params, g["num_params"].as_u64().unwrap());
    let files: Vec<String> = serde_json::from_value(g["weight_files"].clone()).unwrap();
    assert_eq!(s.weight_files, files);

    if let Some(img) = case.get("image").filter(|v| !v.is_null()) {
        let p = tmp.0.join("image.png");
        let sha = sail_gen::write_png(
            &p,
            img["width"].as_u64().unwrap() as usize,
            img["height"].as_u64().unwrap() as usize,
            img["seed"].as_u64().unwrap(),
        )
        .unwrap();
        assert_eq!(sha, img["sha256"].as_str().unwrap(), "{name} image");
    }
}

#[test]
fn golden_small_dense() {
    check_case("small-dense");
}

#[test]
fn golden_small_moe() {
    check_case("small-moe");
}

#[test]
fn golden_small_text() {
    check_case("small-text");
}

/// Cases beyond the golden ones (shards, float16, tied/distinct lm_head, MoE options). The
/// hashes were printed by `python3 reference/gen_ckpt.py --out DIR ARGS...` (numpy 2.4.6).
#[test]
fn sharded_and_other_options_match_python() {
    type Case<'a> = (&'a str, &'a [&'a str], &'a [(&'a str, &'a str)]); // tag, argv, (file, sha256)
    let cases: &[Case] = &[
        (
            "moe2",
            &["--variant", "moe", "--shards", "2", "--seed", "7", "--dtype", "bfloat16"],
            &[
                ("config.json", "4960e5a96f0930e980022dc487de96848563c7dd22ccbb239cf483c8cb4f99f3"),
                ("model-00001-of-00002.safetensors", "a697206b11d061dfd38562155581e54c7387205c05412b1649afe29377765137"),
                ("model-00002-of-00002.safetensors", "193da06e13c1c675962e6f89ebc56a1d70633af279d2b31b54b0b137a58fe336"),
                ("model.safetensors.index.json", "4ef577049b17806d8a62900b20a90a037c0e5a938482c44705a18654fd562cdb"),
            ],
        ),
        (
            // four shards asked, three written (greedy cut), tied lm_head copy, negative seed
            "tie",
            &["--tie-word-embeddings", "--dtype", "bfloat16", "--shards", "4", "--seed", "-5"],
            &[
                ("config.json", "63e29e3e98ea3e60336fd4e859297e4f0ca674669fb368d6abfc6afc4bc09466"),
                ("model-00001-of-00003.safetensors", "ff3aa8d68913ebb2a5bfa108c2b5c089958995fb95ec93df9d97ec5cffd35d06"),
                ("model-00002-of-00003.safetensors", "f7735728b3d3902f5e1af71051bf9c28765e6824c5a535f1a7e7d7d25e3b34bb"),
                ("model-00003-of-00003.safetensors", "ae7f1a9e0f24c2efd58306f38f2d566814ed1b07ddc17d3b9465e9249ed5e541"),
                ("model.safetensors.index.json", "dc7792eb472cd6f0014ad0908386edebafb16962c06db3036362c43f79cd7e4c"),
            ],
        ),
        (
            "f16",
            &["--dtype", "float16", "--seed", "3"],
            &[
                ("config.json", "99d7c1fb151cf4ce80a4cd45d3ef8112e7f28ab17b13a90c65fb6271caa1e3ea"),
                ("model.safetensors", "c3074004ced4dd312a4f8238ad1af2ddedaa9d099d9f64b6fc467689e61295e0"),
            ],
        ),
        (
            "moe3",
            &[
                "--variant",
                "moe",
                "--num-experts",
                "8",
                "--top-k",
                "2",
                "--shards",
                "3",
                "--select-layer",
                "-2",
                "--mlp-only-layers",
                "0",
                "--no-norm-topk-prob",
                "--rope-theta",
                "10000.5",
            ],
            &[
                ("config.json", "414ac06eb8886fc59767c1d628938397669d9fdea7563c3c9979da1697113746"),
                ("model-00001-of-00003.safetensors", "6547d59dc293ef2e2146b73a973cb634208088dc03b6851d3be955d11c7d7951"),
                ("model-00002-of-00003.safetensors", "4643676c4107cf41bf33bc582dcee04288d29ba748111ec6163274178d41e565"),
                ("model-00003-of-00003.safetensors", "cf08116325b2142652ff232ec1965e2fc0581e7136de840e27b6fcb2bcb172a4"),
                ("model.safetensors.index.json", "9ca1ba926110d80c9ea637a1b0aa4a6206f8dc07686c4c7995efc95520d724c0"),
            ],
        ),
    ];
    for (tag, argv, want) in cases {
        let tmp = TempDir::new(tag);
        let s = generate(argv, &tmp.0);
        for (file, sha) in *want {
            assert_eq!(s.sha256.get(*file).map(String::as_str), Some(*sha), "{tag}: {file}");
        }
        let weights: Vec<&String> = s.sha256.keys().filter(|k| k.ends_with(".safetensors")).collect();
        assert_eq!(weights.len(), s.weight_files.len(), "{tag}: unexpected weight files");
    }
}

#[test]
fn summary_hashes_match_files_on_disk() {
    use sha2::Digest;
    let tmp = TempDir::new("disk");
    std::fs::write(tmp.0.join("stale.txt"), b"left over").unwrap();
    let s = generate(&["--variant", "moe", "--shards", "2", "--dtype", "bfloat16", "--vocab-size", "151936"], &tmp.0);
    assert!(s.sha256.contains_key("stale.txt"), "python lists every file of the folder");
    for (f, sha) in &s.sha256 {
        let bytes = std::fs::read(tmp.0.join(f)).unwrap();
        assert_eq!(&sail_gen::hex(&sha2::Sha256::digest(&bytes)), sha, "{f}");
    }
}
