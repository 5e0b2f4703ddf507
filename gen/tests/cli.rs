//! The `sail-gen` binary end to end: output, summary JSON on stdout, errors.

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sail-gen"))
}

#[test]
fn image_prints_the_sha256() {
    let out = std::env::temp_dir().join(format!("sail-gen-cli-{}.png", std::process::id()));
    let r = bin().args(["image", "--width", "120", "--height", "120", "--seed", "12", "--out"]).arg(&out).output().unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    // golden/small-moe/case.json "image"
    assert_eq!(String::from_utf8(r.stdout).unwrap().trim(), "c5f52c7c05c8f21b33f91823b4d29fd43092d8d7cec24aed0ca3b0b077dac6cf");
    let _ = std::fs::remove_file(out);
}

#[test]
fn ckpt_prints_a_summary() {
    let out = std::env::temp_dir().join(format!("sail-gen-cli-{}-ck", std::process::id()));
    let r = bin()
        .args(["ckpt", "--preset", "tiny", "--dtype", "bfloat16", "--llm-layers", "1", "--vit-layers", "1", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let s: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(s["weight_files"][0], "model.safetensors");
    assert_eq!(s["vocab_size"], 151678);
    assert_eq!(s["num_image_token_per_tile"], 16);
    assert!(out.join("model.safetensors").is_file() && out.join("tokenizer.json").is_file());
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn errors_are_clear() {
    let r = bin().args(["ckpt", "--out", "/tmp/never", "--image-size", "100"]).output().unwrap();
    assert!(!r.status.success());
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("image_size/patch_size must be an even integer"), "{err}");
    let r = bin().args(["ckpt", "--seed", "1"]).output().unwrap();
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("--out"));
    let r = bin().args(["ckpt", "--help"]).output().unwrap();
    assert!(r.status.success());
    assert!(String::from_utf8_lossy(&r.stdout).contains("--preset"));
}

/// `--assets DIR` replaces the compile-time path of the repository's assets/SAIL-VL2-2B (a
/// binary moved to another machine): the templates are read from DIR, which a marker in a
/// copied file shows, and a folder without them is a clear error that names it.
#[test]
fn ckpt_takes_the_assets_folder_from_assets() {
    let base = std::env::temp_dir().join(format!("sail-gen-cli-{}-assets", std::process::id()));
    let assets = base.join("SAIL-VL2-2B");
    std::fs::create_dir_all(&assets).unwrap();
    let repo = sail_gen::model_assets_dir().unwrap();
    for e in std::fs::read_dir(&repo).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, assets.join(p.file_name().unwrap())).unwrap();
    }
    let marker = "{\n  \"marker\": \"from --assets\"\n}\n";
    std::fs::write(assets.join("generation_config.json"), marker).unwrap();
    let out = base.join("ck");
    let r =
        bin().args(["ckpt", "--llm-layers", "1", "--vit-layers", "1", "--assets"]).arg(&assets).arg("--out").arg(&out).output().unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(std::fs::read_to_string(out.join("generation_config.json")).unwrap(), marker);
    assert_eq!(std::fs::read(out.join("tokenizer.json")).unwrap(), std::fs::read(repo.join("tokenizer.json")).unwrap());

    let missing = base.join("nowhere");
    let r = bin().args(["ckpt", "--preset", "2b", "--assets"]).arg(&missing).arg("--out").arg(base.join("ck2")).output().unwrap();
    assert!(!r.status.success());
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("nowhere") && err.contains("--assets"), "{err}");
    assert!(!base.join("ck2").exists(), "nothing is written when the assets are missing");
    let _ = std::fs::remove_dir_all(base);
}

/// `sail-gen compare` prints the parity measures as JSON and fails clearly on a shape mismatch.
#[test]
fn compare_prints_measures_as_json() {
    let d = std::env::temp_dir().join(format!("sail-gen-cli-{}-cmp", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let npy = |name: &str, shape: &str, data: &[f32]| {
        let mut h = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
        h.push_str(&" ".repeat((64 - (11 + h.len()) % 64) % 64));
        h.push('\n');
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend((h.len() as u16).to_le_bytes());
        b.extend(h.as_bytes());
        data.iter().for_each(|v| b.extend(v.to_le_bytes()));
        let p = d.join(name);
        std::fs::write(&p, b).unwrap();
        p
    };
    let got = npy("got.npy", "(4,)", &[0.0, 3.0, 1.0, -2.0]);
    let want = npy("ref.npy", "(4,)", &[0.0, 4.0, 1.0, -2.0]);
    let r = bin().arg("compare").arg(&got).arg(&want).output().unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(v["nmse"].as_f64().unwrap(), 1.0 / 21.0);
    assert_eq!(v["max_rel"].as_f64().unwrap(), 0.25);
    assert_eq!(v["argmax_got"], 1);
    assert_eq!(v["shape"], serde_json::json!([4]));
    let other = npy("other.npy", "(2, 2)", &[0.0; 4]);
    let r = bin().arg("compare").arg(&other).arg(&want).output().unwrap();
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("shape [2, 2] differs"));
    let _ = std::fs::remove_dir_all(d);
}
