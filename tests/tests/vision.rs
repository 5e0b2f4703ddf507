//! SAIL-ViT + pixel shuffle + mlp1 on ggml against the independent reference's projector
//! output: max relative error (max |diff| / max |ref|) ≤ 1e-5 with an f32 vision tower (fused
//! attention, and the separate products other devices use) and ≤ 1e-2 at f16, over grids from
//! 1×1 to 3×3 + thumbnail, portrait and landscape, and select_layer −1 and −2.

use sail::vision::encoder::{Attention, EncoderParams, VisionEncoder};
use sail::vision::preprocess::{load_image, preprocess, ImageLimits, PreprocessConfig};
use sail_format::quant::{Preset, VisionType};
use sail_testkit::{checkpoint, converted, golden::Case, metrics};

fn run_case(name: &str, vision: VisionType, attention: Attention, bound: f64) {
    let c = Case::load(name).unwrap();
    let argv = c.generator_argv();
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let ck = checkpoint(&argv);
    let preset = if vision == VisionType::F32 { Preset::F32 } else { Preset::F16 };
    let gguf = converted(&ck, name, preset, vision);
    let enc =
        VisionEncoder::load(&sail_convert::vision_path_for(&gguf), None, &EncoderParams { n_threads: 2, ..Default::default() }).unwrap();
    enc.set_attention(attention);
    let hp = &enc.hp;
    let img = load_image(&c.image().expect("case has an image"), ImageLimits::default()).unwrap();
    let cfg = PreprocessConfig::new(hp.image_size, hp.image_mean, hp.image_std, hp.max_tiles);
    let pre = preprocess(&img, &cfg).unwrap();
    assert_eq!(pre.tiles, c.tiles(), "{name}: tile count");
    let got = enc.encode(&pre.pixels, pre.tiles, 1 << 30).unwrap();
    let want = c.vision_embeds().unwrap();
    assert_eq!(got.len(), want.data.len(), "{name}: shape {:?}", want.shape);
    let rel = metrics::max_rel(&got, &want.data);
    let nmse = metrics::nmse(&got, &want.data);
    eprintln!(
        "{name} ({:?}, {attention:?} attention, grid {:?}, {} tiles, select_layer {}): max rel {rel:.3e}, NMSE {nmse:.3e} (bound {bound:.0e})",
        vision, pre.grid, pre.tiles, hp.select_layer
    );
    assert!(rel <= bound, "{name}: max rel {rel:.3e} > {bound:.0e}");
}

const CASES: &[&str] = &["small-dense", "moe-portrait-sharded", "vis-sl2-1x1", "vis-sl2-3x1", "vis-sl2-1x4", "vis-sl2-3x3", "vis-sl1-5x2"];

#[test]
fn projector_output_matches_reference_at_f32() {
    for c in CASES {
        run_case(c, VisionType::F32, Attention::Fused, 1e-5);
    }
}

#[test]
fn projector_output_matches_reference_at_f32_with_separate_attention_products() {
    for c in CASES {
        run_case(c, VisionType::F32, Attention::Products, 1e-5);
    }
}

#[test]
fn projector_output_matches_reference_at_f16() {
    for c in CASES {
        run_case(c, VisionType::F16, Attention::Fused, 1e-2);
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
