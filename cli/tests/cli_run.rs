//! `sail run` end to end on tiny random checkpoints against the independent reference: prompt
//! ids (system prompt included), image token count, last-prompt-position logits (NMSE ≤ 1e-6
//! at f32) and the greedy tokens; quantized conversions within stated bounds; and the errors a
//! user can run into.

use sail_format::quant::{Preset, VisionType};
use sail_testkit::{checkpoint, converted, golden::Case, metrics, npy};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SAIL: &str = env!("CARGO_BIN_EXE_sail");

fn model_for(case: &Case, name: &str, preset: Preset) -> PathBuf {
    let argv = case.generator_argv();
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let vision = if preset == Preset::F32 { VisionType::F32 } else { VisionType::F16 };
    converted(&checkpoint(&argv), name, preset, vision)
}

/// The built `sail`, behind `SAIL_BIN_RUNNER` when that is set (e.g. `qemu-aarch64-static -L
/// /usr/aarch64-linux-gnu`, by scripts/test-aarch64.sh): a cross-built test binary runs under
/// user-mode QEMU, and without a binfmt_misc handler (containers, CI) it cannot exec an ARM
/// binary itself.
fn sail_command() -> Command {
    let runner = std::env::var("SAIL_BIN_RUNNER").unwrap_or_default();
    let mut words = runner.split_whitespace();
    match words.next() {
        Some(prog) => {
            let mut c = Command::new(prog);
            c.args(words).arg(SAIL);
            c
        }
        None => Command::new(SAIL),
    }
}

fn sail(args: &[&str]) -> Output {
    sail_command().args(args).output().expect("run sail")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sail-run-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs the case through `sail run --temp 0 --ignore-eos --json` and returns (json, logits).
fn run_case(name: &str, preset: Preset) -> (Value, Vec<f32>, Case) {
    let c = Case::load(name).unwrap();
    let gguf = model_for(&c, name, preset);
    let logits = tmp(name).join(format!("logits-{}.npy", preset.flag()));
    let n = c.expected()["generated_ids"].as_array().unwrap().len().to_string();
    let mut args = vec![
        "run",
        "-m",
        gguf.to_str().unwrap(),
        "-p",
        c.json["prompt"].as_str().unwrap(),
        "--temp",
        "0",
        "--ignore-eos",
        "--json",
        "-n",
        &n,
        "--logits-out",
        logits.to_str().unwrap(),
        "-t",
        "2",
    ];
    let img = c.image();
    if let Some(i) = &img {
        args.extend(["--image", i.to_str().unwrap()]);
    }
    let o = sail(&args);
    assert!(o.status.success(), "{name}: {}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{name}: stdout is not JSON ({e}): {}", String::from_utf8_lossy(&o.stdout)));
    (v, npy::read_f32(&logits).unwrap().data, c)
}

/// Compares tokens with the reference while its recorded top-1 margin is safely above our
/// logit error (golden README's rule: margin > 5·√2·max(rms(L−R), √1e-7·rms(R))).
fn check_tokens(name: &str, got: &[i64], c: &Case, logits: &[f32], want_logits: &[f32]) -> usize {
    let want: Vec<i64> = c.expected()["generated_ids"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
    let margins: Vec<f64> = c.expected()["step_top1_margins"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    let diff: Vec<f32> = logits.iter().zip(want_logits).map(|(a, b)| a - b).collect();
    let bound = 5.0 * 2f64.sqrt() * metrics::rms(&diff).max(1e-7f64.sqrt() * metrics::rms(want_logits));
    let n = margins.iter().take_while(|&&m| m > bound).count();
    assert_eq!(&got[..n], &want[..n], "{name}: greedy tokens differ within the safe prefix of {n}");
    n
}

fn check_f32(name: &str) {
    let (v, logits, c) = run_case(name, Preset::F32);
    let e = c.expected();
    let ids: Vec<i64> = v["prompt_token_ids"].as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect();
    let want_ids: Vec<i64> = e["input_ids"].as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect();
    assert_eq!(ids, want_ids, "{name}: prompt token ids");
    assert_eq!(v["prompt_tokens"].as_u64().unwrap() as usize, want_ids.len());
    assert_eq!(v["image_tokens"].as_u64().unwrap(), e["image_tokens"].as_u64().unwrap(), "{name}: image tokens");
    assert_eq!(v["tiles"].as_u64().unwrap(), e["tiles"].as_u64().unwrap_or(0), "{name}: tiles");
    let want = c.last_logits().unwrap();
    let nmse = metrics::nmse(&logits, &want);
    let got: Vec<i64> = v["tokens"].as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect();
    let n = check_tokens(name, &got, &c, &logits, &want);
    eprintln!(
        "{name}: logits NMSE {nmse:.3e}; {n}/{} greedy tokens compared and equal; all equal: {}",
        got.len(),
        got == e["generated_ids"].as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect::<Vec<_>>()
    );
    assert!(nmse <= 1e-6, "{name}: NMSE {nmse:.3e}");
    for k in ["text", "timings"] {
        assert!(v.get(k).is_some(), "--json lacks {k}");
    }
    for k in ["load", "vision", "prefill", "decode"] {
        assert!(v["timings"][k].is_number(), "timings.{k}");
    }
}

#[test]
fn dense_multi_tile_image_matches_reference() {
    check_f32("small-dense");
}

#[test]
fn moe_sharded_portrait_image_matches_reference() {
    check_f32("moe-portrait-sharded");
}

#[test]
fn text_only_matches_reference() {
    check_f32("small-text");
}

/// q8_0 and q4_k on a model whose rows fit K-quant blocks. Bounds: q8_0 ≤ 1e-3 and q4_k ≤
/// 2e-2 logits NMSE (the starting points; the llama.cpp-level test in
/// tests/tests/llm_gguf.rs measured 3.2e-4 and 1.5e-2 on this model).
#[test]
fn quantized_runs_stay_within_bounds() {
    for (preset, bound) in [(Preset::Q8_0, 1e-3), (Preset::Q4K, 2e-2)] {
        let (_, logits, c) = run_case("dense-k256-text", preset);
        let nmse = metrics::nmse(&logits, &c.last_logits().unwrap());
        eprintln!("dense-k256-text {}: logits NMSE {nmse:.3e} (bound {bound:.0e})", preset.flag());
        assert!(nmse <= bound);
    }
}

#[test]
fn embeddings_out_is_the_projector_output() {
    let c = Case::load("small-dense").unwrap();
    let gguf = model_for(&c, "small-dense", Preset::F32);
    let out = tmp("emb").join("e.npy");
    let o = sail(&[
        "run",
        "-m",
        gguf.to_str().unwrap(),
        "--image",
        c.image().unwrap().to_str().unwrap(),
        "-p",
        "x",
        "-n",
        "1",
        "--embeddings-out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let got = npy::read_f32(&out).unwrap();
    let want = c.vision_embeds().unwrap();
    assert_eq!(got.shape, want.shape);
    assert!(metrics::max_rel(&got.data, &want.data) < 1e-4);
}

fn fails_with(args: &[&str], needles: &[&str]) {
    let o = sail(args);
    let e = stderr(&o);
    assert!(!o.status.success(), "expected failure: {args:?}\n{e}");
    assert!(!e.contains("panicked"), "{e}");
    for n in needles {
        assert!(e.contains(n), "stderr lacks {n:?}:\n{e}");
    }
}

fn small_dense() -> (Case, PathBuf) {
    let c = Case::load("small-dense").unwrap();
    let g = model_for(&c, "small-dense", Preset::F32);
    (c, g)
}

#[test]
fn prompt_too_long_is_refused_with_numbers() {
    let (c, g) = small_dense();
    let img = c.image().unwrap();
    fails_with(
        &["run", "-m", g.to_str().unwrap(), "--image", img.to_str().unwrap(), "-p", "hi", "--ctx", "100", "-n", "16"],
        &["the prompt needs 156 tokens (112 of them image tokens) plus 16 to generate = 172", "allows 100", "--ctx"],
    );
}

#[test]
fn missing_mmproj() {
    let (c, g) = small_dense();
    let d = tmp("nommproj");
    let lone = d.join("lone.gguf");
    std::fs::copy(&g, &lone).unwrap();
    fails_with(
        &["run", "-m", lone.to_str().unwrap(), "--image", c.image().unwrap().to_str().unwrap(), "-p", "hi"],
        &["no vision file", "not found", "--mmproj"],
    );
    fails_with(&["run", "-m", g.to_str().unwrap(), "--mmproj", "/nonexistent/x.mmproj.gguf", "-p", "hi"], &["no such vision file"]);
}

#[test]
fn mmproj_from_another_model_is_refused() {
    let (_, g) = small_dense();
    let other = model_for(&Case::load("dense-k256-text").unwrap(), "dense-k256-text", Preset::F32);
    let other_mmproj = sail_convert::vision_path_for(&other);
    fails_with(
        &["run", "-m", g.to_str().unwrap(), "--mmproj", other_mmproj.to_str().unwrap(), "-p", "hi"],
        &["projects to 256 dimensions", "hidden size is 64", "another model"],
    );
}

#[test]
fn image_with_a_text_only_gguf() {
    let (c, g) = small_dense();
    let d = tmp("textonly");
    let lone = d.join("textonly.gguf");
    std::fs::copy(&g, &lone).unwrap();
    // without an image the same file runs
    let o = sail(&["run", "-m", lone.to_str().unwrap(), "-p", "hi", "-n", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    fails_with(
        &["run", "-m", lone.to_str().unwrap(), "--image", c.image().unwrap().to_str().unwrap(), "-p", "hi"],
        &["can only take text"],
    );
}

#[test]
fn unreadable_image() {
    let (_, g) = small_dense();
    let d = tmp("badimg");
    let bad = d.join("bad.png");
    std::fs::write(&bad, b"\x89PNG\r\n\x1a\nthis is not a png").unwrap();
    fails_with(&["run", "-m", g.to_str().unwrap(), "--image", bad.to_str().unwrap(), "-p", "hi"], &["bad.png"]);
    fails_with(
        &["run", "-m", g.to_str().unwrap(), "--image", "/nonexistent/photo.jpg", "-p", "hi"],
        &["/nonexistent/photo.jpg", "no such image"],
    );
}

/// One budget from `--max-pixels` to the decoder and the tiler: a 9000×8000 PNG (72 M pixels) is
/// over the default budget of 64 Mi pixels and refused from its header with the message printed
/// once; with `--max-pixels 100000000` the same file is decoded and tiled.
#[test]
fn max_pixels_reaches_the_decoder_and_the_tiler() {
    let (c, g) = small_dense();
    let big = sail_testkit::grey_ramp_png(9000, 8000);
    let img = big.to_str().unwrap();
    let o = sail(&["run", "-m", g.to_str().unwrap(), "--image", img, "-p", "hi", "-n", "1", "--json", "--max-pixels", "100000000"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    // The tiles the reference's processor makes for this size, with the case's settings.
    let p = &c.json["preprocess"];
    let n = |k: &str| p[k].as_u64().unwrap() as u32;
    let grid = sail::vision::tiling::select_grid(9000, 8000, n("image_size"), n("min_tiles"), n("max_tiles"));
    let want = sail::vision::tiling::tile_count(grid, p["thumbnail"].as_bool().unwrap());
    assert!(want > 1, "a 9000x8000 image should need several tiles");
    assert_eq!(v["tiles"].as_u64().unwrap(), want as u64);

    let o = sail(&["run", "-m", g.to_str().unwrap(), "--image", img, "-p", "hi", "-n", "1"]);
    let e = stderr(&o);
    assert!(!o.status.success(), "the default budget should refuse {img}");
    let msg = "9000x8000 is 72000000 pixels, over the budget of 67108864";
    assert_eq!(e.matches(msg).count(), 1, "{e}");
    assert_eq!(e.matches(img).count(), 1, "the file should be named once: {e}");
}

#[test]
fn invalid_sampler_values() {
    let (_, g) = small_dense();
    let m = g.to_str().unwrap();
    fails_with(&["run", "-m", m, "-p", "hi", "--temp", "-1"], &["--temp -1", "≥ 0"]);
    fails_with(&["run", "-m", m, "-p", "hi", "--top-p", "1.5"], &["--top-p 1.5"]);
    fails_with(&["run", "-m", m, "-p", "hi", "--top-p", "0"], &["--top-p 0"]);
    fails_with(&["run", "-m", m, "-p", "hi", "--min-p", "2"], &["--min-p 2"]);
    fails_with(&["run", "-m", m, "-p", "hi", "--top-k", "-3"], &["--top-k -3"]);
    fails_with(&["run", "-m", m, "-p", "hi", "--repeat-penalty", "0"], &["--repeat-penalty 0"]);
}

#[test]
fn think_splits_reasoning_from_answer_and_frames_make_one_tile_each() {
    let (c, g) = small_dense();
    let o = sail(&["run", "-m", g.to_str().unwrap(), "-p", "hi", "-n", "4", "--think", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v.get("answer").is_some() && v.get("reasoning").is_some());
    // the CoT instruction is appended to the question (directly, no space)
    let ids = v["prompt_tokens"].as_u64().unwrap();
    assert!(ids > 40, "think prompt not appended: {ids} tokens");
    // frames: 3 frames → 3 tiles, "Frame-k: <image>" lines
    let d = tmp("frames");
    for i in 0..5 {
        std::fs::copy(c.image().unwrap(), d.join(format!("f{i}.png"))).unwrap();
    }
    let o = sail(&[
        "run",
        "-m",
        g.to_str().unwrap(),
        "--frames",
        d.to_str().unwrap(),
        "--n-frames",
        "3",
        "-p",
        "what happens?",
        "-n",
        "1",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["tiles"].as_u64().unwrap(), 3);
    assert_eq!(v["image_tokens"].as_u64().unwrap(), 3 * 16);
}

#[allow(dead_code)]
fn exists(p: &Path) -> bool {
    p.exists()
}

/// `sail info FILE | head -1`: the reader is gone before `sail` writes (a pipe whose read end is
/// already closed), so every write fails with EPIPE. `sail` ends with 141, as if stopped by
/// SIGPIPE, and prints no panic.
#[test]
fn closed_stdout_ends_quietly() {
    let (_, g) = small_dense();
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let o = sail_command().args(["info", g.to_str().unwrap()]).stdout(writer).output().expect("run sail");
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(141), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn device_listing_and_missing_backends() {
    let o = sail(&["info", "--devices"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("CPU"), "no CPU device listed: {out}");
    assert!(out.contains("cpu features:"), "{out}");
    let (_, g) = small_dense();
    for (b, name) in [("vulkan", "Vulkan"), ("cuda", "CUDA")] {
        let has = out.lines().any(|l| l.contains(&format!(": {name}")));
        if has {
            continue; // this build has the backend and a device: nothing to refuse
        }
        fails_with(
            &["run", "-m", g.to_str().unwrap(), "-p", "hi", "--backend", b],
            &[&format!("--backend {b}: no {name} device"), "--backend cpu"],
        );
    }
}

#[test]
fn chat_keeps_history_and_attaches_images() {
    use std::io::Write;
    let (c, g) = small_dense();
    let mut child = sail_command()
        .args(["chat", "-m", g.to_str().unwrap(), "-n", "4", "--ignore-eos", "-t", "2"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let script = format!("/image {}\nWhat is this?\nAnd now?\n/image /nonexistent.png\n/exit\n", c.image().unwrap().display());
    child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    let e = stderr(&o);
    assert!(o.status.success(), "{e}");
    assert!(e.contains("image attached: 7 tiles"), "{e}");
    assert!(e.contains("/nonexistent.png"), "bad /image path not reported: {e}");
    // two answers of 4 tokens; the second turn continues the same cache (positions grow)
    let ctx: Vec<usize> = e.lines().filter_map(|l| l.split("context ").nth(1)).filter_map(|s| s.split('/').next()?.parse().ok()).collect();
    assert_eq!(ctx.len(), 2, "{e}");
    assert!(ctx[1] > ctx[0] + 4, "second turn did not extend the first: {ctx:?}");
}

#[test]
fn a_second_question_about_the_same_image_encodes_nothing() {
    use std::io::Write;
    let (c, g) = small_dense();
    let image = c.image().unwrap();
    // chat: the same photo after /reset comes from the model's memory cache
    let mut child = sail_command()
        .args(["chat", "-m", g.to_str().unwrap(), "-n", "2", "--ignore-eos", "-t", "2"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let script = format!("/image {0}\nWhat is this?\n/reset\n/image {0}\nAnd the colours?\n/exit\n", image.display());
    child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    let e = stderr(&o);
    assert!(o.status.success(), "{e}");
    assert!(e.contains("(image attached: 7 tiles)") && e.contains("(image attached: 7 tiles, encoded before: from the cache)"), "{e}");
    assert!(e.contains("; 7 of 7 tiles encoded in") && e.contains("; 0 of 7 tiles encoded in"), "{e}");

    // run: a second process finds the rows in --cache-dir; same rows, same answer
    let d = tmp("cache-dir");
    let cache = d.join("cache");
    let _ = std::fs::remove_dir_all(&cache);
    let run = |n: usize| {
        let emb = d.join(format!("emb{n}.npy"));
        let o = sail(&[
            "run",
            "-m",
            g.to_str().unwrap(),
            "--image",
            image.to_str().unwrap(),
            "-p",
            "Describe.",
            "-n",
            "4",
            "--ignore-eos",
            "--json",
            "-t",
            "2",
            "--cache-dir",
            cache.to_str().unwrap(),
            "--embeddings-out",
            emb.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        (v, std::fs::read(&emb).unwrap())
    };
    let (first, emb_first) = run(1);
    assert_eq!(first["tiles_encoded"], 7, "{first}");
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 1);
    let (second, emb_second) = run(2);
    assert_eq!(second["tiles_encoded"], 0, "{second}");
    assert_eq!(first["tokens"], second["tokens"]);
    assert!(emb_first == emb_second, "rows from --cache-dir differ from the fresh ones");
}
