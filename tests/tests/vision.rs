//! SAIL-ViT + pixel shuffle + mlp1 on ggml against the independent reference's projector
//! output: max relative error (max |diff| / max |ref|) ≤ 1e-5 with an f32 vision tower (fused
//! attention, and the separate products other devices use) and ≤ 1e-2 at f16, over grids from
//! 1×1 to 3×3 + thumbnail, portrait and landscape, and select_layer −1 and −2. Quantized vision
//! types stay within measured bounds.

use sail::vision::decode::{load_image, ImageLimits};
use sail::vision::encoder::{Attention, EncoderParams, VisionEncoder};
use sail::vision::preprocess;
use sail::vision::tiling::PreprocessConfig;
use sail_format::quant::{Preset, VisionType};
use sail_format::GgmlType;
use sail_testkit::{checkpoint, converted, golden::Case, metrics};
use std::path::Path;

/// Projector rows of `ckpt` converted with `vision` weights, for the image of golden case
/// `image_of`.
struct Encoded {
    rows: Vec<f32>,
    tiles: usize,
    grid: (u32, u32),
    select_layer: i32,
    /// The type of the tower's matrices in the converted file.
    weight_type: GgmlType,
}

fn encode(ckpt: &Path, name: &str, vision: VisionType, attention: Attention, image_of: &Case) -> Encoded {
    let preset = if vision == VisionType::F32 { Preset::F32 } else { Preset::F16 };
    let gguf = converted(ckpt, name, preset, vision);
    let enc =
        VisionEncoder::load(&sail_convert::vision_path_for(&gguf), None, &EncoderParams { n_threads: 2, ..Default::default() }).unwrap();
    enc.set_attention(attention);
    let hp = &enc.hp;
    let img = load_image(&image_of.image().expect("case has an image"), ImageLimits::default()).unwrap();
    let pre = preprocess(&img, &PreprocessConfig::new(hp.image_size, hp.image_mean, hp.image_std, hp.max_tiles)).unwrap();
    let rows = enc.encode(&pre.pixels, pre.tiles, 1 << 30).unwrap();
    Encoded { rows, tiles: pre.tiles, grid: pre.grid, select_layer: hp.select_layer, weight_type: enc.weight_type() }
}

/// (max rel, NMSE) of golden case `name` converted with `vision` against the reference.
fn run_case(name: &str, vision: VisionType, attention: Attention) -> (f64, f64) {
    let c = Case::load(name).unwrap();
    let argv = c.generator_argv();
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let e = encode(&checkpoint(&argv), name, vision, attention, &c);
    assert_eq!(e.tiles, c.tiles(), "{name}: tile count");
    let want = c.vision_embeds().unwrap();
    assert_eq!(e.rows.len(), want.data.len(), "{name}: shape {:?}", want.shape);
    let (rel, nmse) = (metrics::max_rel(&e.rows, &want.data), metrics::nmse(&e.rows, &want.data));
    eprintln!(
        "{name} ({} weights as {}, {attention:?} attention, grid {:?}, {} tiles, select_layer {}): max rel {rel:.3e}, NMSE {nmse:.3e}",
        vision.flag(),
        e.weight_type,
        e.grid,
        e.tiles,
        e.select_layer
    );
    (rel, nmse)
}

const CASES: &[&str] = &["small-dense", "moe-portrait-sharded", "vis-sl2-1x1", "vis-sl2-3x1", "vis-sl2-1x4", "vis-sl2-3x3", "vis-sl1-5x2"];

fn all_cases_within(vision: VisionType, attention: Attention, bound: f64) {
    for c in CASES {
        let (rel, _) = run_case(c, vision, attention);
        assert!(rel <= bound, "{c} {}: max rel {rel:.3e} > {bound:.0e}", vision.flag());
    }
}

#[test]
fn projector_output_matches_reference_at_f32() {
    all_cases_within(VisionType::F32, Attention::Fused, 1e-5);
}

#[test]
fn projector_output_matches_reference_at_f32_with_separate_attention_products() {
    all_cases_within(VisionType::F32, Attention::Products, 1e-5);
}

#[test]
fn projector_output_matches_reference_at_f16() {
    all_cases_within(VisionType::F16, Attention::Fused, 1e-2);
}

/// The golden towers are 64 wide, too narrow for 256-value K-quant blocks, so there `--vision-type
/// q6_k|q5_k|q4_k` falls back to q8_0 / q5_1 / q5_0 for the tower (the 256-wide projector input
/// does get the K-quant). Bounds on max relative error and NMSE against the reference, ordered
/// by bits per weight, about 2× the worst case this test measured when it was written: max rel
/// q8_0 2.2e-2, q6_k 3.0e-2, q5_k 8.9e-2, q4_k 1.4e-1; NMSE 3.4e-4, 6.9e-4, 7.3e-3, 1.1e-2. A
/// scrambled layout or a broken quantizer gives NMSE near 1.
#[test]
fn quantized_vision_types_stay_within_bounds_on_the_golden_cases() {
    for (vt, rel_bound, nmse_bound) in
        [(VisionType::Q8_0, 4e-2, 7e-4), (VisionType::Q6K, 6e-2, 1.5e-3), (VisionType::Q5K, 0.15, 1.5e-2), (VisionType::Q4K, 0.25, 2.5e-2)]
    {
        for c in CASES {
            let (rel, nmse) = run_case(c, vt, Attention::Fused);
            assert!(rel <= rel_bound, "{c} {}: max rel {rel:.3e} > {rel_bound:.0e}", vt.flag());
            assert!(nmse <= nmse_bound, "{c} {}: NMSE {nmse:.3e} > {nmse_bound:.0e}", vt.flag());
        }
    }
}

/// A 256-wide tower, where every matrix but the patch embedding holds whole K-quant blocks:
/// each vision type against the same checkpoint converted at f32 (which matches the reference
/// to ~1e-6 on the golden cases). The converted file must really hold the K-quant. Bounds about
/// 2× what this test measured when it was written: max rel f16 6.5e-4, q8_0 1.8e-2, q6_k
/// 4.3e-2, q5_k 7.9e-2, q4_k 1.4e-1; NMSE 5.0e-7, 3.4e-4, 2.0e-3, 7.5e-3, 2.7e-2.
#[test]
fn vision_k_quants_stay_within_bounds_on_a_256_wide_tower() {
    let argv = [
        "--variant",
        "dense",
        "--llm-hidden",
        "256",
        "--llm-intermediate",
        "512",
        "--llm-heads",
        "4",
        "--llm-kv-heads",
        "2",
        "--llm-head-dim",
        "64",
        "--vit-hidden",
        "256",
        "--vit-intermediate",
        "512",
        "--vit-heads",
        "4",
        "--vit-layers",
        "3",
        "--dtype",
        "float32",
        "--seed",
        "41",
    ];
    let ck = checkpoint(&argv);
    let image = Case::load("vis-sl2-3x3").unwrap();
    let reference = encode(&ck, "vit256", VisionType::F32, Attention::Fused, &image);
    assert_eq!(reference.weight_type, GgmlType::F32);
    for (vt, rel_bound, nmse_bound) in [
        (VisionType::F16, 1.5e-3, 1e-6),
        (VisionType::Q8_0, 4e-2, 7e-4),
        (VisionType::Q6K, 8e-2, 4e-3),
        (VisionType::Q5K, 0.15, 1.5e-2),
        (VisionType::Q4K, 0.3, 5e-2),
    ] {
        let e = encode(&ck, "vit256", vt, Attention::Fused, &image);
        assert_eq!(e.weight_type, vt.ggml(), "the tower should hold {} itself, not a fallback", vt.flag());
        let (rel, nmse) = (metrics::max_rel(&e.rows, &reference.rows), metrics::nmse(&e.rows, &reference.rows));
        eprintln!("256-wide tower, {} tiles, {}: max rel {rel:.3e}, NMSE {nmse:.3e} against f32", e.tiles, vt.flag());
        assert!(rel <= rel_bound, "{}: max rel {rel:.3e} > {rel_bound:.0e}", vt.flag());
        assert!(nmse <= nmse_bound, "{}: NMSE {nmse:.3e} > {nmse_bound:.0e}", vt.flag());
    }
}

#[test]
fn batching_tiles_does_not_change_the_result() {
    let c = Case::load("vis-sl2-3x3").unwrap();
    let argv = c.generator_argv();
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let gguf = converted(&checkpoint(&argv), "vis-sl2-3x3", Preset::F32, VisionType::F32);
    let enc = VisionEncoder::load(&sail_convert::vision_path_for(&gguf), None, &EncoderParams::default()).unwrap();
    let hp = &enc.hp;
    let img = load_image(&c.image().unwrap(), ImageLimits::default()).unwrap();
    let pre = preprocess(&img, &PreprocessConfig::new(hp.image_size, hp.image_mean, hp.image_std, hp.max_tiles)).unwrap();
    let all = enc.encode(&pre.pixels, pre.tiles, usize::MAX).unwrap();
    let one_by_one = enc.encode(&pre.pixels, pre.tiles, 1).unwrap();
    assert_eq!(enc.batch_size(1), 1);
    assert!(metrics::max_rel(&one_by_one, &all) < 1e-6);
    assert!(enc.weights_are_mapped(), "CPU weights should be served from the mapping");
}
