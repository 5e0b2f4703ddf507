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
