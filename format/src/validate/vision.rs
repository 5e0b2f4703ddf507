//! The vision file against the SAIL-ViT graph sail builds with ggml, and the tiler it feeds.

use super::keyed::{eps, typed};
use super::{shown, Problems, LLAMA_MAX_LAYERS};
use crate::gguf::{GgufFile, ValueType};
use crate::keys::*;
use crate::VisionHparams;

/// Largest tile side (pixels).
pub const MAX_IMAGE_SIZE: u32 = 4096;
/// Most patches per tile side: attention over a tile costs (side²)² · heads scores.
pub const MAX_GRID: u32 = 128;
/// Most tiles an image may be cut into (the tiler's own limit).
pub const MAX_TILES: u32 = 64;
/// Most ViT blocks (the graph has a few dozen nodes per block).
pub const MAX_LAYERS: u32 = LLAMA_MAX_LAYERS;
/// Most bytes the normalised tiles of one image may take (f32, thumbnail included): the tile
/// size and tile limit come from the file, and this keeps them from sizing gigabytes.
pub const MAX_IMAGE_BYTES: u64 = 1 << 30;

/// Reads and checks the hyperparameters; `None` when they cannot be trusted enough to derive
/// the expected tensors.
pub(crate) fn hparams(f: &GgufFile, p: &mut Problems) -> Option<VisionHparams> {
    match typed(f, GENERAL_ARCHITECTURE, ValueType::String, true, p).and_then(|v| v.as_str()) {
        Some(VISION_ARCH) => {}
        Some(a) => {
            p.push(format!("{GENERAL_ARCHITECTURE} = {}: expected {VISION_ARCH:?} (a sail vision file)", shown(a)));
            return None;
        }
        None => return None,
    }
    let h = match VisionHparams::from_gguf(f) {
        Ok(h) => h,
        Err(e) => {
            p.push(e.to_string());
            return None;
        }
    };
    let before = p.list.len() + p.omitted;
    check(&h, |s| p.push(s));
    // Each block has 7 tensors: a count the file cannot hold is refused before anything is
    // sized by it.
    if (h.n_layer as u64) * 7 > f.tensors.len() as u64 {
        p.push(format!("{CLIP_BLOCK_COUNT} = {}: the file has only {} tensors", h.n_layer, f.tensors.len()));
    }
    (p.list.len() + p.omitted == before).then_some(h)
}

/// The checks on vision hyperparameters alone, shared with the converter (which has them from
/// a Hugging Face config before anything is written).
pub fn check(h: &VisionHparams, mut push: impl FnMut(String)) {
    if let Err(why) = h.validate() {
        push(why);
    }
    if !(1..=MAX_LAYERS).contains(&h.n_layer) {
        push(format!("{CLIP_BLOCK_COUNT} = {}: expected 1..={MAX_LAYERS}", h.n_layer));
    }
    if !(1..=MAX_IMAGE_SIZE).contains(&h.image_size) {
        push(format!("{CLIP_IMAGE_SIZE} = {}: expected 1..={MAX_IMAGE_SIZE}", h.image_size));
    }
    if h.grid() > MAX_GRID {
        push(format!("{} / {} = {} patches per side: expected at most {MAX_GRID}", h.image_size, h.patch_size, h.grid()));
    }
    if h.n_channels != 3 {
        push(format!("{SAIL_V_CHANNELS} = {}: SAIL-ViT takes RGB (3)", h.n_channels));
    }
    for (key, v) in [(CLIP_EMBEDDING_LENGTH, h.n_embd), (CLIP_FEED_FORWARD_LENGTH, h.n_ff), (CLIP_PROJECTION_DIM, h.proj_dim)] {
        if v == 0 {
            push(format!("{key} = 0: expected a positive width"));
        }
    }
    let mut p = Problems::default();
    eps(CLIP_EPS, h.rms_eps, &mut p);
    eps(SAIL_V_PROJ_LN_EPS, h.proj_ln_eps, &mut p);
    p.list.into_iter().for_each(&mut push);
    if h.image_mean.iter().any(|m| !m.is_finite()) || h.image_std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
        push(format!(
            "{CLIP_IMAGE_MEAN} {:?} / {CLIP_IMAGE_STD} {:?}: expected finite values and positive deviations",
            h.image_mean, h.image_std
        ));
    }
    if h.max_tiles > MAX_TILES {
        push(format!("{SAIL_V_MAX_TILES} = {}: expected at most {MAX_TILES}", h.max_tiles));
    }
    let bytes = (h.max_tiles.min(MAX_TILES) as u64 + 1) * 12 * (h.image_size.min(MAX_IMAGE_SIZE) as u64).pow(2);
    if bytes > MAX_IMAGE_BYTES {
        push(format!(
            "{} tiles of {}×{} pixels take {bytes} bytes per image: expected at most {MAX_IMAGE_BYTES} (fewer or smaller tiles)",
            h.max_tiles + 1,
            h.image_size,
            h.image_size
        ));
    }
    if h.tokens_per_tile() == 0 {
        push("a tile would produce no tokens".to_string());
    }
}
