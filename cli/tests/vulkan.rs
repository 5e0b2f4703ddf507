//! The Vulkan backend (ggml-vulkan) on Mesa's lavapipe: the tiny parity cases run with the
//! vision encoder and every language-model layer on `Vulkan0`, and match the reference within
//! fp16-level tolerances. Built only with `--features vulkan` (scripts/test.sh does that).
#![cfg(feature = "vulkan")]

use sail_format::quant::{Preset, VisionType};
use sail_testkit::{checkpoint, converted, golden::Case, metrics, npy};
use serde_json::Value;
use std::process::Command;

const SAIL: &str = env!("CARGO_BIN_EXE_sail");

/// Runs `sail` on lavapipe. Mesa's on-disk shader cache (its default, ~/.cache) is kept across
/// runs: a cold cache spends minutes compiling ggml-vulkan's pipelines, a warm one a second.
fn sail_vk(args: &[&str]) -> std::process::Output {
    Command::new(SAIL)
        .args(args)
        // ggml-vulkan ignores CPU-type devices (lavapipe) unless one is selected explicitly
        .env("GGML_VK_VISIBLE_DEVICES", "0")
        .output()
        .expect("run sail")
}

#[test]
fn vulkan_device_is_listed() {
    let o = sail_vk(&["info", "--devices"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && out.contains("Vulkan0"), "no Vulkan0 device:\n{out}\n{}", String::from_utf8_lossy(&o.stderr));
}

/// Tolerances: lavapipe runs ggml-vulkan's shaders, which use f16 in places (~3e-4 relative per
/// op on ggml's op checks). Measured here with Mesa 25.0 (bookworm-backports): projector max
/// relative error 5.6e-4 / 5.7e-4 (small-dense / moe-portrait-sharded), logits NMSE 6.5e-8,
/// 1.0e-7 and 3.8e-7 (small-text). Bounds: projector ≤ 3e-3 (about 5× measured; the CPU f32
/// path is at 8e-7, so this allows for fp16 arithmetic in the shaders) and logits NMSE ≤ 1e-6,
/// the same bound as the CPU f32 parity tests: the language model's logits on Vulkan are as
/// close to the reference as on the CPU.
#[test]
fn tiny_parity_cases_on_lavapipe() {
    for name in ["small-dense", "moe-portrait-sharded", "small-text"] {
        let c = Case::load(name).unwrap();
        let argv = c.generator_argv();
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let gguf = converted(&checkpoint(&argv), name, Preset::F32, VisionType::F32);
        let dir = sail_testkit::scratch();
        let lo = dir.join(format!("{name}-vk-logits.npy"));
        let eo = dir.join(format!("{name}-vk-emb.npy"));
        let mut args = vec![
            "run",
            "-m",
            gguf.to_str().unwrap(),
            "-p",
            c.json["prompt"].as_str().unwrap(),
            "--backend",
            "vulkan",
            "--gpu-layers",
            "-1",
            "-n",
            "4",
            "--ignore-eos",
            "--json",
            "--logits-out",
            lo.to_str().unwrap(),
            "--embeddings-out",
            eo.to_str().unwrap(),
        ];
        let img = c.image();
        if let Some(i) = &img {
            args.extend(["--image", i.to_str().unwrap()]);
        }
        let o = sail_vk(&args);
        assert!(o.status.success(), "{name}: {}", String::from_utf8_lossy(&o.stderr));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        let want_ids: Vec<i64> = c.expected()["input_ids"].as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect();
        let ids: Vec<i64> = v["prompt_token_ids"].as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect();
        assert_eq!(ids, want_ids);
        let logits = npy::read_f32(&lo).unwrap().data;
        let nmse = metrics::nmse(&logits, &c.last_logits().unwrap());
        let mut line = format!("{name} on Vulkan0 (lavapipe): logits NMSE {nmse:.3e}");
        if img.is_some() {
            let emb = npy::read_f32(&eo).unwrap();
            let rel = metrics::max_rel(&emb.data, &c.vision_embeds().unwrap().data);
            line += &format!(", projector max rel {rel:.3e}");
            assert!(rel <= 3e-3, "{name}: projector max rel {rel:.3e} > 3e-3");
        }
        eprintln!("{line}");
        assert!(nmse <= 1e-6, "{name}: logits NMSE {nmse:.3e} > 1e-6");
    }
}
